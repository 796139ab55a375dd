//! Property tests of the two file readers: whatever bytes a split file or an `.npy` table
//! holds, reading returns Ok or Err (no panic, no allocation abort), and valid files
//! round-trip exactly.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::npy::read_header;
use super::pairs::read_split;
use super::{profile_table_rows, read_pairs, read_profile_table, DuplicatePolicy};

/// 256 cases per property keeps all of them together to a few seconds.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// One line's worth of layout for a valid split file.
#[derive(Debug, Clone)]
struct LineStyle {
    comma: bool,
    crlf: bool,
    blank_before: Option<&'static str>,
}

fn line_style() -> impl Strategy<Value = LineStyle> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.2, prop::sample::select(vec!["", "  ", " "])),
    )
        .prop_map(|(comma, crlf, blank_before)| LineStyle {
            comma,
            crlf,
            blank_before,
        })
}

/// Unique pairs, in the order they are written (ids across the whole u32 range and small
/// ones, so that both long and short numbers occur).
fn unique_pairs() -> impl Strategy<Value = Vec<(u32, u32)>> {
    let id = prop_oneof![0u32..20, any::<u32>()];
    prop::collection::vec((id.clone(), id), 1..40).prop_map(|v| {
        let mut seen = HashSet::new();
        v.into_iter().filter(|p| seen.insert(*p)).collect()
    })
}

fn split_text(pairs: &[(u32, u32)], styles: &[LineStyle], bom: bool, final_nl: bool) -> Vec<u8> {
    let mut out = String::new();
    if bom {
        out.push('\u{feff}');
    }
    for (k, &(u, i)) in pairs.iter().enumerate() {
        let st = &styles[k % styles.len()];
        if let Some(blank) = st.blank_before {
            out.push_str(blank);
            out.push('\n');
        }
        out.push_str(&format!("{u}{}{i}", if st.comma { ',' } else { '\t' }));
        let last = k + 1 == pairs.len();
        if !last || final_nl {
            out.push_str(if st.crlf { "\r\n" } else { "\n" });
        }
    }
    out.into_bytes()
}

/// An `.npy` file: the real magic and version, a header dict with `descr` and `shape`, and
/// `data_len` bytes after it.
fn npy_file(version: u8, descr: &str, shape: &[u64], fortran: bool, data_len: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n");
    let mut v = b"\x93NUMPY".to_vec();
    v.extend([version, 0]);
    if version == 1 {
        v.extend((dict.len() as u16).to_le_bytes());
    } else {
        v.extend((dict.len() as u32).to_le_bytes());
    }
    v.extend(dict.into_bytes());
    v.extend((0..data_len).map(|k| (k * 31 + 7) as u8));
    v
}

fn dimension() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..6, any::<u64>(), Just(u64::MAX), Just(1 << 40)]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_as_a_split_file_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        text in "[0-9\t,\r\n +\\-x.]{0,80}",
        columns in prop::option::of((0usize..4, 0usize..4)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("split.tsv");
        for content in [bytes, text.into_bytes()] {
            fs::write(&p, &content).unwrap();
            let _ = read_pairs(&p, None, None, DuplicatePolicy::Error);
            let _ = read_pairs(&p, Some(3), Some(3), DuplicatePolicy::Drop);
            let columns = columns.filter(|(u, i)| u != i).map(|(u, i)| [u, i]);
            let _ = read_split(&p, None, None, DuplicatePolicy::Error, columns);
        }
    }

    #[test]
    fn valid_split_files_round_trip(
        pairs in unique_pairs(),
        styles in prop::collection::vec(line_style(), 1..8),
        bom in any::<bool>(),
        final_nl in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("split.tsv");
        fs::write(&p, split_text(&pairs, &styles, bom, final_nl)).unwrap();
        let read = read_pairs(&p, None, None, DuplicatePolicy::Error);
        prop_assert_eq!(read.map_err(|e| e.to_string()), Ok(pairs));
    }

    #[test]
    fn arbitrary_bytes_as_an_npy_file_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        with_magic in any::<bool>(),
        rows in 0usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let mut content = if with_magic { b"\x93NUMPY\x01\x00".to_vec() } else { Vec::new() };
        content.extend(bytes);
        fs::write(&p, &content).unwrap();
        let _ = read_profile_table(&p, "data.profiles.users", "user", rows);
        let _ = profile_table_rows(&p, "data.profiles.users", "user");
    }

    #[test]
    fn header_shapes_never_allocate_beyond_the_file(
        version in 1u8..4,
        descr in prop::sample::select(vec!["<f4", ">f4", "=f4", "|f4", "<f8", "<i4", "|u1", "<f2", "O"]),
        shape in prop::collection::vec(dimension(), 0..4),
        fortran in any::<bool>(),
        data_len in 0usize..256,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let content = npy_file(version, descr, &shape, fortran, data_len);
        fs::write(&p, &content).unwrap();
        let file_len = content.len() as u64;
        let header = read_header(&mut content.as_slice(), file_len).unwrap();
        prop_assert_eq!(&header.shape, &shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
        // Accepted only when the shape accounts for exactly the bytes there are, so the
        // reader's allocation is bounded by the file's size.
        if let Ok(rows) = profile_table_rows(&p, "data.profiles.users", "user") {
            let need = header.data_bytes(4).unwrap();
            prop_assert_eq!(header.data_offset + need, file_len);
            prop_assert_eq!(rows, shape[0] as usize);
        }
        let rows = shape.first().map_or(0, |&d| d as usize);
        if let Ok((values, _)) = read_profile_table(&p, "data.profiles.users", "user", rows) {
            prop_assert!(values.len() as u64 * 4 <= file_len);
        }
    }

    #[test]
    fn valid_f32_tables_round_trip(
        (rows, cols, values) in (1usize..12, 1usize..9).prop_flat_map(|(r, c)| {
            (Just(r), Just(c), prop::collection::vec(-1e6f32..1e6, r * c))
        }),
        fortran in any::<bool>(),
    ) {
        prop_assume!(super::profiles::degenerate_rows(&values, cols, "user").is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let a = ndarray::Array2::from_shape_vec((rows, cols), values.clone()).unwrap();
        if fortran {
            let f = a.t().as_standard_layout().reversed_axes().to_owned();
            ndarray_npy::write_npy(&p, &f).unwrap();
        } else {
            ndarray_npy::write_npy(&p, &a).unwrap();
        }
        let read = read_profile_table(&p, "data.profiles.users", "user", rows);
        prop_assert_eq!(read.map_err(|e| e.to_string()), Ok((values, cols)));
        prop_assert_eq!(profile_table_rows(&p, "data.profiles.users", "user").ok(), Some(rows));
    }
}

#[test]
fn the_file_helpers_write_what_numpy_would() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.npy");
    fs::write(&p, npy_file(1, "<f4", &[2, 3], false, 24)).unwrap();
    assert_eq!(
        profile_table_rows(&p, "data.profiles.users", "user").unwrap(),
        2
    );
    let q: &Path = &dir.path().join("s.tsv");
    let styles = [LineStyle {
        comma: true,
        crlf: true,
        blank_before: Some(" "),
    }];
    fs::write(q, split_text(&[(1, 2), (3, 4)], &styles, true, false)).unwrap();
    assert_eq!(fs::read(q).unwrap(), "\u{feff} \n1,2\r\n \n3,4".as_bytes());
}
