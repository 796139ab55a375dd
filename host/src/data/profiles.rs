//! Profile embeddings (`[data.profiles]`): two `.npy` float32 tables (row i = user / item
//! i), checked from their header before anything is allocated, or seeded standard-normal
//! ones.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::error::{examples, file_kind};
use super::{npy, DataConfig, DataError};

/// Dense user and item profile embeddings (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    /// Embedding dimension.
    pub dim: usize,
    /// `n_users × dim` values.
    pub users: Vec<f32>,
    /// `n_items × dim` values.
    pub items: Vec<f32>,
}

/// The profiles `cfg.profiles` asks for, for a dataset of `n_users` × `n_items`: `None`
/// when it names no source, else the two files (resolved against `data.path`) or seeded
/// random profiles.
pub fn load_profiles(
    cfg: &DataConfig,
    n_users: usize,
    n_items: usize,
) -> Result<Option<Profiles>, DataError> {
    let p = &cfg.profiles;
    if let Some((key, _, reason)) = p.problem() {
        return Err(DataError::Config {
            key: key.into(),
            reason,
        });
    }
    if p.random_dim > 0 {
        return random_profiles(n_users, n_items, p.random_dim, p.random_seed).map(Some);
    }
    if !p.is_set() {
        return Ok(None);
    }
    let users_path = resolve_profile_path(cfg, &p.users);
    let items_path = resolve_profile_path(cfg, &p.items);
    let (users, dim) = read_profile_table(&users_path, "data.profiles.users", "user", n_users)?;
    let (items, item_dim) =
        read_profile_table(&items_path, "data.profiles.items", "item", n_items)?;
    if item_dim != dim {
        return Err(DataError::BadProfiles {
            path: items_path,
            key: "data.profiles.items",
            reason: format!(
                "has dimension {item_dim} but the user profiles ({}) have dimension {dim}: \
                 both tables must come from the same embedding model",
                users_path.display()
            ),
        });
    }
    Ok(Some(Profiles { dim, users, items }))
}

/// Profile files live beside the splits, so a relative path means "in the dataset folder";
/// with no `data.path` (the synthetic dataset) it stays relative to `data.root`, the
/// working directory by default.
fn resolve_profile_path(cfg: &DataConfig, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cfg.dir().join(p)
    }
}

/// Reads one `.npy` profile table: a 2-D float32 array (C or Fortran order, either byte
/// order) with `expected_rows` rows, every value finite, no degenerate rows. Returns the
/// values row-major and the dimension. The header is checked against the file's length
/// before anything is allocated for the data.
pub fn read_profile_table(
    path: &Path,
    key: &'static str,
    what: &str,
    expected_rows: usize,
) -> Result<(Vec<f32>, usize), DataError> {
    let bad = |reason: String| DataError::BadProfiles {
        path: path.to_path_buf(),
        key,
        reason,
    };
    let (mut file, rows, dim) = open_profile_table(path, key, what)?;
    if rows != expected_rows {
        return Err(bad(format!(
            "has {rows} rows but the dataset has {expected_rows} {what}s (row i must be the \
             profile of {what} i)"
        )));
    }
    if dim == 0 {
        return Err(bad(format!(
            "has shape {}: no columns",
            py_shape(&[rows, dim])
        )));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    // Read with a dynamic dimension: the rank was checked above, and ndarray-npy then
    // handles byte order and Fortran order.
    let arr = ArrayD::<f32>::read_npy(std::io::BufReader::new(file))
        .map_err(|e| bad(npy_error_reason(e)))?;
    // Fortran-order files come back column-major; `iter` walks the logical row-major order.
    let values: Vec<f32> = if arr.is_standard_layout() {
        let (v, offset) = arr.into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        v
    } else {
        arr.iter().copied().collect()
    };
    // A NaN or infinity would silently poison every cosine and PCA downstream.
    if let Some(pos) = values.iter().position(|x| !x.is_finite()) {
        return Err(bad(format!(
            "row {}, column {} (0-based; row = {what} id) is {}; profiles must be finite",
            pos / dim,
            pos % dim,
            values[pos]
        )));
    }
    if let Some(reason) = degenerate_rows(&values, dim, what) {
        return Err(bad(reason));
    }
    Ok((values, dim))
}

/// The number of rows of a `.npy` profile table, from its header alone (checked like
/// [`read_profile_table`]'s: float32, 2-D, as many data bytes as the shape needs).
pub fn profile_table_rows(path: &Path, key: &'static str, what: &str) -> Result<usize, DataError> {
    open_profile_table(path, key, what).map(|(_, rows, _)| rows)
}

/// Opens a profile table and checks its header: a regular file holding a 2-D float32
/// array whose shape accounts for exactly the bytes after the header. Returns the file and
/// the shape; nothing of the data is read or allocated.
fn open_profile_table(
    path: &Path,
    key: &'static str,
    what: &str,
) -> Result<(std::fs::File, usize, usize), DataError> {
    let bad = |reason: String| DataError::BadProfiles {
        path: path.to_path_buf(),
        key,
        reason,
    };
    let io = |e: std::io::Error| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    // Metadata before opening: opening a FIFO would block until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingProfiles {
            path: path.to_path_buf(),
            key,
        },
        _ => io(e),
    })?;
    if meta.is_dir() {
        return Err(bad("is a folder, not a .npy file".into()));
    }
    if !meta.is_file() {
        return Err(bad(format!(
            "is not a regular file ({}); profile tables must be .npy files",
            file_kind(&meta)
        )));
    }
    let file_len = meta.len();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let header = npy::read_header(&mut std::io::BufReader::new(&mut file), file_len)
        .map_err(|e| bad(format!("not a .npy file: {e}")))?;
    let code = header.descr.trim_start_matches(['<', '>', '=', '|']);
    if code != "f4" {
        let desc = format!("'{}'", header.descr);
        return Err(bad(format!(
            "holds {} values (dtype {desc}), not float32; profile tables must be \
             float32 '<f4' (np.save(path, a.astype(np.float32)))",
            dtype_name(&desc)
        )));
    }
    let shape = &header.shape;
    if shape.len() != 2 {
        return Err(bad(format!(
            "holds a {}-D float32 array of shape {}, not a 2-D ({what}s × dimension) table",
            shape.len(),
            py_shape(shape)
        )));
    }
    let available = file_len.saturating_sub(header.data_offset);
    match header.data_bytes(4) {
        Some(need) if need == available => Ok((file, shape[0], shape[1])),
        Some(need) if need < available => Err(bad(format!(
            "has {} bytes after the array its header describes (shape {})",
            available - need,
            py_shape(shape)
        ))),
        need => Err(bad(format!(
            "its header claims shape {} ({} of float32 data) but the file is only {file_len} \
             bytes: the file is truncated or corrupt",
            py_shape(shape),
            need.map_or_else(
                || "more than 2^64 bytes".to_string(),
                |n| format!("{n} bytes")
            )
        ))),
    }
}

/// ndarray-npy's errors in words; the header was checked already, so these are rare.
fn npy_error_reason(e: ReadNpyError) -> String {
    match e {
        ReadNpyError::WrongDescriptor(desc) => {
            let desc = desc.to_string();
            format!(
                "holds {} values (dtype {desc}), not float32; profile tables must be \
                 float32 '<f4' (np.save(path, a.astype(np.float32)))",
                dtype_name(&desc)
            )
        }
        ReadNpyError::ParseHeader(e) => format!("not a .npy file: {e}"),
        ReadNpyError::MissingData => {
            "is truncated: it holds less data than its header's shape promises".into()
        }
        ReadNpyError::ExtraBytes(n) => {
            format!("has {n} bytes after the array its header describes")
        }
        ReadNpyError::Io(e) => format!("cannot read it as .npy: {e}"),
        other => format!("cannot read it as .npy: {other}"),
    }
}

/// Why a table's rows cannot serve as profiles, if they cannot: an all-zero row has no
/// direction (its cosine to anything is undefined), a row holding one value in every
/// column carries nothing but a norm, and a table whose rows are all the same makes every
/// user (item) look alike: all signs of a failed or placeholder embedding run.
pub(super) fn degenerate_rows(values: &[f32], dim: usize, what: &str) -> Option<String> {
    let rows: Vec<&[f32]> = values.chunks_exact(dim).collect();
    let zero: Vec<usize> = (0..rows.len())
        .filter(|&r| rows[r].iter().all(|&x| x == 0.0))
        .collect();
    if !zero.is_empty() {
        return Some(format!(
            "{} row(s) are all zeros (0-based row = {what} id: {}); every profile needs a \
             non-zero embedding",
            zero.len(),
            examples(&zero)
        ));
    }
    // With one column every row is "constant"; that says nothing about the embedding.
    if dim >= 2 {
        let constant: Vec<usize> = (0..rows.len())
            .filter(|&r| rows[r].iter().all(|&x| x == rows[r][0]))
            .collect();
        if !constant.is_empty() {
            return Some(format!(
                "{} row(s) hold one value in every column (0-based row = {what} id: {}); \
                 a constant row is not an embedding",
                constant.len(),
                examples(&constant)
            ));
        }
    }
    if rows.len() >= 2 && rows.iter().all(|r| *r == rows[0]) {
        return Some(format!(
            "all {} rows are identical (rows 0..{}): the table cannot tell one {what} from \
             another",
            rows.len(),
            rows.len()
        ));
    }
    None
}

/// A numpy dtype descriptor (`'<f8'`) in words, for error messages.
fn dtype_name(desc: &str) -> &'static str {
    let code = desc
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '=', '|']);
    match code {
        "f8" => "float64",
        "f2" => "float16",
        "f4" => "float32 of an unsupported byte order",
        "i1" | "i2" | "i4" | "i8" | "u1" | "u2" | "u4" | "u8" => "integer",
        "b1" => "boolean",
        "O" => "Python object",
        _ => "non-float32",
    }
}

/// A shape as numpy prints it: `(5,)`, `(3, 4)`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Rows per independently seeded chunk of random profiles.
const RANDOM_CHUNK_ROWS: usize = 64;

/// Seeded standard-normal profiles, `n_users × dim` then `n_items × dim`.
///
/// Each chunk of [`RANDOM_CHUNK_ROWS`] rows draws from its own ChaCha8 stream of `seed`
/// (users: streams 0, 1, …; items: streams 2³² + 0, 1, …), filled in parallel; the values
/// therefore depend only on (seed, table, row, dim), never on the thread count, and a
/// user's profile does not change with the number of items.
pub fn random_profiles(
    n_users: usize,
    n_items: usize,
    dim: usize,
    seed: u64,
) -> Result<Profiles, DataError> {
    let table = |n: usize, stream_base: u64| -> Result<Vec<f32>, DataError> {
        let too_big = || DataError::Config {
            key: "data.profiles.random_dim".into(),
            reason: format!("= {dim}: {n} rows × {dim} f32 values do not fit in memory"),
        };
        let len = n.checked_mul(dim).ok_or_else(too_big)?;
        // try_reserve: an absurd dimension is a config error, not an allocation abort.
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| too_big())?;
        out.resize(len, 0.0f32);
        if dim > 0 {
            out.par_chunks_mut(RANDOM_CHUNK_ROWS * dim)
                .enumerate()
                .for_each(|(k, chunk)| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(stream_base + k as u64);
                    fill_standard_normal(chunk, &mut rng);
                });
        }
        Ok(out)
    };
    Ok(Profiles {
        dim,
        users: table(n_users, 0)?,
        items: table(n_items, 1 << 32)?,
    })
}

/// Fills `out` with N(0, 1) draws: Box–Muller, both outputs of each pair (rand 0.8 has no
/// normal distribution without the extra rand_distr crate).
fn fill_standard_normal(out: &mut [f32], rng: &mut ChaCha8Rng) {
    for pair in out.chunks_mut(2) {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = (r * c) as f32;
        if let Some(x) = pair.get_mut(1) {
            *x = (r * s) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataKind, ProfilesConfig, SyntheticConfig};
    use crate::data::testutil::{files_cfg, grid, shared_data, tiny_with_profiles};
    use crate::data::{load_dataset, stats};
    use std::fs;

    fn profile_err(dir: &Path, users: &dyn Fn(&Path), items: &dyn Fn(&Path)) -> DataError {
        let cfg = tiny_with_profiles(dir);
        users(&dir.join("u.npy"));
        items(&dir.join("i.npy"));
        load_dataset(&cfg).unwrap_err()
    }

    #[test]
    fn profiles_load_from_npy_relative_to_the_dataset_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiny_with_profiles(dir.path());
        ndarray_npy::write_npy(dir.path().join("u.npy"), &grid(3, 5)).unwrap();
        // Fortran order reads back in logical (row-major) order.
        let f = grid(4, 5)
            .reversed_axes()
            .as_standard_layout()
            .reversed_axes()
            .to_owned();
        assert!(!f.is_standard_layout());
        ndarray_npy::write_npy(dir.path().join("i.npy"), &f).unwrap();
        let ds = load_dataset(&cfg).unwrap();
        let p = ds.profiles.as_ref().unwrap();
        assert_eq!(p.dim, 5);
        assert_eq!(p.users, grid(3, 5).into_raw_vec_and_offset().0);
        assert_eq!(p.items, grid(4, 5).into_raw_vec_and_offset().0);
        assert!(stats(&ds).to_string().contains("profiles: dimension 5"));

        // An absolute path is taken as is.
        let abs = DataConfig {
            profiles: ProfilesConfig {
                users: dir.path().join("u.npy"),
                items: dir.path().join("i.npy"),
                ..ProfilesConfig::default()
            },
            ..cfg.clone()
        };
        assert_eq!(load_dataset(&abs).unwrap().profiles, ds.profiles);
        // No profiles configured: none, and no stats line.
        let none = DataConfig {
            profiles: ProfilesConfig::default(),
            ..cfg
        };
        let ds = load_dataset(&none).unwrap();
        assert!(ds.profiles.is_none());
        assert!(!stats(&ds).to_string().contains("profiles"));
    }

    #[test]
    fn bad_profile_files_are_named_with_the_reason() {
        let ok_users = |p: &Path| ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();

        // Wrong row count: both counts said.
        let dir = tempfile::tempdir().unwrap();
        let err = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &grid(2, 4)).unwrap(),
            &ok_items,
        );
        let msg = err.to_string();
        assert!(matches!(err, DataError::BadProfiles { .. }), "{msg}");
        assert!(
            msg.contains("u.npy") && msg.contains("2 rows") && msg.contains("3 users"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(5, 4)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("5 rows") && msg.contains("4 items"),
            "{msg}"
        );

        // NaN and infinity: file, 0-based row and column.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            let mut a = grid(4, 4);
            a[[2, 1]] = f32::NAN;
            ndarray_npy::write_npy(p, &a).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("row 2, column 1") && msg.contains("NaN"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let mut a = grid(3, 4);
                a[[1, 3]] = f32::NEG_INFINITY;
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("row 1, column 3") && msg.contains("inf"),
            "{msg}"
        );

        // A 1-D array: its shape said.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &ndarray::Array1::<f32>::zeros(12)).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("1-D") && msg.contains("(12,)"),
            "{msg}"
        );

        // float64: the dtype said.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(4, 4).mapv(f64::from)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("float64") && msg.contains("'<f8'"),
            "{msg}"
        );

        // The two dimensions differ: both files named.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(4, 6)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy")
                && msg.contains("u.npy")
                && msg.contains("dimension 6")
                && msg.contains("dimension 4"),
            "{msg}"
        );

        // Missing file, and a file that is not .npy at all.
        let dir = tempfile::tempdir().unwrap();
        let err = profile_err(dir.path(), &ok_users, &|_| {});
        let msg = err.to_string();
        assert!(matches!(err, DataError::MissingProfiles { .. }), "{msg}");
        assert!(
            msg.contains("i.npy") && msg.contains("data.profiles.items"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| fs::write(p, "0.1\t0.2\n").map(drop).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("not a .npy file"),
            "{msg}"
        );
    }

    /// An `.npy` file of exactly 128 bytes whose header claims `shape`.
    fn npy_claiming(shape: &str) -> Vec<u8> {
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        let len = 128 - 10;
        v.extend((len as u16).to_le_bytes());
        v.extend(format!("{dict:<width$}", width = len - 1).into_bytes());
        v.push(b'\n');
        v
    }

    #[test]
    fn npy_headers_are_checked_against_the_file_size_before_allocation() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        // 10^12 × 10^6 float32 = 4 * 10^18 bytes claimed by a 128-byte file.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| fs::write(p, npy_claiming("(1000000000000, 1000000)")).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy")
                && msg.contains("(1000000000000, 1000000)")
                && msg.contains("4000000000000000000 bytes")
                && msg.contains("only 128 bytes"),
            "{msg}"
        );
        // rows × cols × 4 overflows u64.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                fs::write(
                    p,
                    npy_claiming("(18446744073709551615, 18446744073709551615)"),
                )
                .unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("more than 2^64 bytes"), "{msg}");
        // Truncated and padded files.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..b.len() - 5]).unwrap();
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("u.npy") && msg.contains("truncated"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
                let mut b = fs::read(p).unwrap();
                b.extend([0u8; 7]);
                fs::write(p, b).unwrap();
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("7 bytes after the array"), "{msg}");
        // The header alone gives the row count (what `promax augment` needs first).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        ndarray_npy::write_npy(&p, &grid(7, 3)).unwrap();
        assert_eq!(
            profile_table_rows(&p, "data.profiles.users", "user").unwrap(),
            7
        );
        fs::write(&p, npy_claiming("(1000000000000, 1000000)")).unwrap();
        assert!(profile_table_rows(&p, "data.profiles.users", "user").is_err());
    }

    #[test]
    fn degenerate_profile_rows_are_named() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let mut a = grid(3, 4);
                a.row_mut(0).fill(0.0);
                a.row_mut(2).fill(-0.0);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("2 row(s) are all zeros") && msg.contains("0, 2"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &grid(3, 4)).unwrap(),
            &|p| {
                let mut a = grid(4, 4);
                a.row_mut(3).fill(0.25);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
        )
        .to_string();
        assert!(
            msg.contains("i.npy")
                && msg.contains("1 row(s) hold one value")
                && msg.contains(": 3)"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let a = ndarray::Array2::from_shape_fn((3, 4), |(_, c)| c as f32 + 1.0);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("all 3 rows are identical"), "{msg}");
        // One column: rows are single numbers, and differing ones are fine.
        assert_eq!(degenerate_rows(&[1.0, 2.0, 3.0], 1, "user"), None);
        assert!(degenerate_rows(&[1.0, 1.0], 1, "user").is_some());
    }

    #[test]
    fn a_profile_path_that_is_not_a_file_says_so() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &|p| fs::create_dir(p).unwrap(), &ok_items).to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("is a folder"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let made = std::cell::Cell::new(false);
        let err = profile_err(
            dir.path(),
            &|p| {
                let s = std::process::Command::new("mkfifo").arg(p).status();
                made.set(s.is_ok_and(|s| s.success()));
            },
            &ok_items,
        );
        if made.get() {
            let msg = err.to_string();
            assert!(msg.contains("u.npy") && msg.contains("(a FIFO)"), "{msg}");
        }
    }

    #[test]
    fn profile_settings_conflict_or_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiny_with_profiles(dir.path());
        let both = DataConfig {
            profiles: ProfilesConfig {
                random_dim: 8,
                ..cfg.profiles.clone()
            },
            ..cfg.clone()
        };
        let msg = load_dataset(&both).unwrap_err().to_string();
        assert!(
            msg.contains("data.profiles.random_dim") && msg.contains("data.profiles.users"),
            "{msg}"
        );
        let half = DataConfig {
            profiles: ProfilesConfig {
                items: PathBuf::new(),
                ..cfg.profiles.clone()
            },
            ..cfg.clone()
        };
        let msg = load_dataset(&half).unwrap_err().to_string();
        assert!(
            msg.contains("data.profiles.users") && msg.contains("data.profiles.items"),
            "{msg}"
        );
        // Synthetic: checked too, though the generator has its own profiles.
        let syn = DataConfig {
            kind: DataKind::Synthetic,
            ..both
        };
        assert!(load_dataset(&syn).is_err());
    }

    #[test]
    fn random_profiles_are_seeded_standard_normal() {
        let a = random_profiles(300, 200, 64, 5).unwrap();
        assert_eq!(
            (a.dim, a.users.len(), a.items.len()),
            (64, 300 * 64, 200 * 64)
        );
        assert_eq!(a, random_profiles(300, 200, 64, 5).unwrap());
        let b = random_profiles(300, 200, 64, 6).unwrap();
        assert_ne!(a.users, b.users);
        assert_ne!(
            a.users[..64],
            a.items[..64],
            "users and items draw different streams"
        );
        // A user's profile does not depend on the number of items or users after it.
        let c = random_profiles(100, 7, 64, 5).unwrap();
        assert_eq!(c.users[..], a.users[..100 * 64]);
        // Nor on the thread count.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| random_profiles(300, 200, 64, 5).unwrap()),
            a
        );

        let all: Vec<f64> = a
            .users
            .iter()
            .chain(&a.items)
            .map(|&x| f64::from(x))
            .collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let var = all.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let kurt = all
            .iter()
            .map(|x| ((x - mean) * (x - mean)).powi(2))
            .sum::<f64>()
            / n
            / (var * var);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt} (normal: 3)");
        let within_1sd = all.iter().filter(|x| x.abs() < 1.0).count() as f64 / n;
        assert!((within_1sd - 0.6827).abs() < 0.01, "{within_1sd}");
        // Odd sizes use the last Box–Muller pair's first half only.
        let odd = random_profiles(3, 1, 5, 1).unwrap();
        assert!(odd
            .users
            .iter()
            .chain(&odd.items)
            .all(|x| x.is_finite() && *x != 0.0));
    }

    #[test]
    fn random_profiles_replace_the_synthetic_ones_only_when_asked() {
        let base = DataConfig {
            kind: DataKind::Synthetic,
            ..DataConfig::default()
        };
        let ds = load_dataset(&base).unwrap();
        assert_eq!(
            ds.profiles.as_ref().unwrap().dim,
            SyntheticConfig::default().profile_dim
        );
        let cfg = DataConfig {
            profiles: ProfilesConfig {
                random_dim: 12,
                random_seed: 3,
                ..ProfilesConfig::default()
            },
            ..base
        };
        let ds2 = load_dataset(&cfg).unwrap();
        assert_eq!(ds2.train, ds.train, "profiles never move the interactions");
        assert_eq!(
            ds2.profiles,
            Some(random_profiles(ds.n_users, ds.n_items, 12, 3).unwrap())
        );
        assert!(stats(&ds2).to_string().contains("profiles: dimension 12"));

        // Files dataset with random profiles.
        let dir = tempfile::tempdir().unwrap();
        let files = DataConfig {
            profiles: cfg.profiles.clone(),
            ..tiny_with_profiles(dir.path())
        };
        let ds3 = load_dataset(&files).unwrap();
        assert_eq!(ds3.profiles, Some(random_profiles(3, 4, 12, 3).unwrap()));
    }

    #[test]
    fn real_ml100k_profiles_load() {
        let dir = shared_data("ml100k");
        if !dir.is_dir() {
            eprintln!("skipped: {} not present", dir.display());
            return;
        }
        let cfg = DataConfig {
            n_users: 943,
            n_items: 1574,
            profiles: ProfilesConfig {
                users: "user_profiles.npy".into(),
                items: "item_profiles.npy".into(),
                ..ProfilesConfig::default()
            },
            ..files_cfg(&dir)
        };
        let ds = load_dataset(&cfg).unwrap();
        let p = ds.profiles.as_ref().unwrap();
        assert_eq!(p.dim, 384);
        assert_eq!((p.users.len() / p.dim, p.items.len() / p.dim), (943, 1574));
        // The README: every vector is L2-normalised.
        for row in p.users.chunks(p.dim).chain(p.items.chunks(p.dim)) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        assert!(stats(&ds).to_string().contains("profiles: dimension 384"));
        // Rows checked against the dataset: the item table is not a user table.
        let swapped = DataConfig {
            profiles: ProfilesConfig {
                users: "item_profiles.npy".into(),
                items: "user_profiles.npy".into(),
                ..ProfilesConfig::default()
            },
            ..cfg
        };
        let msg = load_dataset(&swapped).unwrap_err().to_string();
        assert!(
            msg.contains("item_profiles.npy")
                && msg.contains("1574 rows")
                && msg.contains("943 users"),
            "{msg}"
        );
    }

    /// `cargo test --release -p promax --lib random_profiles_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn random_profiles_timing() {
        let t = std::time::Instant::now();
        let p = random_profiles(11_000, 9_332, 1536, 2025).unwrap();
        println!(
            "random profiles 11,000 x 1536 + 9,332 x 1536 on {} threads: {:.3} s",
            rayon::current_num_threads(),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(p.items.len(), 9_332 * 1536);
    }
}
