//! The split files of a dataset folder: `user<TAB>item` (or `user,item`) lines, checked
//! line by line, and the user and item counts they imply.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::{examples, file_kind};
use super::{DataConfig, DataError, DuplicatePolicy, Pairs};

/// Names of the three split files a dataset folder must hold.
pub const SPLIT_FILES: [&str; 3] = ["train.tsv", "valid.tsv", "test.tsv"];

/// The three split files of `dir`, read as `cfg` says, with the user and item counts
/// (declared, or inferred over all splits).
pub(super) fn read_splits(cfg: &DataConfig, dir: &Path) -> Result<Splits, DataError> {
    let declared_users = (cfg.n_users != 0).then_some(cfg.n_users);
    let declared_items = (cfg.n_items != 0).then_some(cfg.n_items);
    // Every file is checked to exist before any is parsed, so a missing one is reported
    // first rather than after a long read.
    let paths = SPLIT_FILES.map(|f| dir.join(f));
    for p in &paths {
        check_split_file(p)?;
    }
    let columns = cfg
        .split_columns()
        .map_err(|(value, reason)| DataError::Config {
            key: "data.columns".into(),
            reason: format!("= {value} {reason}"),
        })?;
    let mut splits = Vec::with_capacity(3);
    for p in &paths {
        splits.push(read_split(
            p,
            declared_users,
            declared_items,
            cfg.duplicates,
            columns,
        )?);
    }
    let interactions = splits.iter().map(|s| s.pairs.len()).sum();
    check_declared("data.n_users", declared_users, interactions)?;
    check_declared("data.n_items", declared_items, interactions)?;

    let n_users = match declared_users {
        Some(n) => n,
        None => inferred_count(&paths, &splits, "user", |s| s.max_user, |&(u, _)| u)?,
    };
    let n_items = match declared_items {
        Some(n) => n,
        None => inferred_count(&paths, &splits, "item", |s| s.max_item, |&(_, i)| i)?,
    };
    warn_unseen(&paths, &splits, n_users, n_items);
    let mut splits = splits.into_iter().map(|s| s.pairs);
    Ok(Splits {
        train: splits.next().unwrap_or_default(),
        valid: splits.next().unwrap_or_default(),
        test: splits.next().unwrap_or_default(),
        n_users,
        n_items,
    })
}

/// The split files of a dataset folder, read.
pub(super) struct Splits {
    pub(super) train: Pairs,
    pub(super) valid: Pairs,
    pub(super) test: Pairs,
    pub(super) n_users: usize,
    pub(super) n_items: usize,
}

/// Ids a declared count may have beyond [`IDS_PER_INTERACTION`] per interaction.
pub(super) const SLACK_IDS: usize = 1000;

/// Ids a declared count may have per interaction in the split files: far more than any
/// real dataset's share of users (items) without an interaction, yet small enough that the
/// per-id tables stay a few times the size of the files themselves.
pub(super) const IDS_PER_INTERACTION: usize = 64;

/// Absolute bound on a declared count (node ids of the graph are u32).
const MAX_DECLARED: usize = 1 << 31;

/// Refuses a declared count that the split files cannot plausibly need, before anything of
/// that size is allocated: ids are checked against it, but every per-user (per-item)
/// table is sized by it.
fn check_declared(
    key: &'static str,
    declared: Option<usize>,
    interactions: usize,
) -> Result<(), DataError> {
    let limit = interactions
        .saturating_mul(IDS_PER_INTERACTION)
        .saturating_add(SLACK_IDS)
        .min(MAX_DECLARED);
    match declared {
        Some(n) if n > limit => Err(DataError::AbsurdCount {
            key,
            declared: n,
            limit,
            interactions,
        }),
        _ => Ok(()),
    }
}

/// Warns (without failing) about ids a model cannot learn or that no split uses: users and
/// items of valid/test that never occur in train, and ids below the count that occur in no
/// split (a stray large id creates that many phantom users or items).
fn warn_unseen(paths: &[PathBuf; 3], splits: &[SplitRead], n_users: usize, n_items: usize) {
    warn_unseen_ids(paths, splits, "user", n_users, |&(u, _)| u);
    warn_unseen_ids(paths, splits, "item", n_items, |&(_, i)| i);
}

fn warn_unseen_ids(
    paths: &[PathBuf; 3],
    splits: &[SplitRead],
    what: &str,
    n: usize,
    id_of: fn(&(u32, u32)) -> u32,
) {
    let mut in_train = vec![false; n];
    mark(&mut in_train, splits[0].pairs.iter().map(id_of));
    for (path, split) in paths.iter().zip(splits).skip(1) {
        let mut cold: Vec<u32> = split
            .pairs
            .iter()
            .map(id_of)
            .filter(|&id| !in_train.get(id as usize).copied().unwrap_or(false))
            .collect();
        cold.sort_unstable();
        cold.dedup();
        if !cold.is_empty() {
            tracing::warn!(
                file = %path.display(),
                "{} {what}(s) occur here but never in {}: a model cannot learn them, \
                 so they only count as misses (e.g. {what} {})",
                cold.len(),
                paths[0].display(),
                examples(&cold)
            );
        }
    }
    let mut anywhere = in_train;
    for split in &splits[1..] {
        mark(&mut anywhere, split.pairs.iter().map(id_of));
    }
    let gaps: Vec<usize> = (0..n).filter(|&id| !anywhere[id]).collect();
    if !gaps.is_empty() {
        tracing::warn!(
            "{} of the {n} {what} ids 0..{n} occur in no split file (e.g. {}): each is a \
             phantom {what} with a learned embedding but no data; a stray large id causes this",
            gaps.len(),
            examples(&gaps)
        );
    }
}

fn mark(seen: &mut [bool], ids: impl Iterator<Item = u32>) {
    for id in ids {
        if let Some(s) = seen.get_mut(id as usize) {
            *s = true;
        }
    }
}

/// max id + 1 over all splits, refused when it is far above the number of distinct ids.
fn inferred_count(
    paths: &[PathBuf; 3],
    splits: &[SplitRead],
    what: &'static str,
    max_of: impl Fn(&SplitRead) -> Option<(u32, usize)>,
    id_of: impl Fn(&(u32, u32)) -> u32,
) -> Result<usize, DataError> {
    let Some((file, (id, line))) = splits
        .iter()
        .enumerate()
        .filter_map(|(f, s)| max_of(s).map(|m| (f, m)))
        .max_by_key(|&(f, (id, _))| (id, std::cmp::Reverse(f)))
    else {
        return Ok(0);
    };
    let n = id as usize + 1;
    // Cheap check first: only count distinct ids when the count could be implausible.
    if n > 1000 {
        let distinct: HashSet<u32> = splits
            .iter()
            .flat_map(|s| s.pairs.iter().map(&id_of))
            .collect();
        if n > 1000 + 4 * distinct.len() {
            return Err(DataError::SparseIds {
                path: paths[file].clone(),
                line,
                what,
                id,
                distinct: distinct.len(),
            });
        }
    }
    Ok(n)
}

/// One parsed split file plus where its largest ids are (for error messages).
pub(super) struct SplitRead {
    pairs: Pairs,
    max_user: Option<(u32, usize)>,
    max_item: Option<(u32, usize)>,
}

/// Reads one interaction file. `n_users` / `n_items`, when given, bound the ids.
pub fn read_pairs(
    path: &Path,
    n_users: Option<usize>,
    n_items: Option<usize>,
    duplicates: DuplicatePolicy,
) -> Result<Pairs, DataError> {
    read_split(path, n_users, n_items, duplicates, None).map(|s| s.pairs)
}

/// Refuses a split path that is missing or is not a regular file, before it is opened:
/// reading a FIFO would block, and a directory is not "not found".
pub(super) fn check_split_file(path: &Path) -> Result<(), DataError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory, not a file".to_string()
    } else {
        format!(
            "not a regular file ({}); split files must be plain text files",
            file_kind(&meta)
        )
    };
    Err(DataError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

/// Reads one split file. `columns`: which fields hold the user and item ids (`None`:
/// exactly two fields per line).
pub(super) fn read_split(
    path: &Path,
    n_users: Option<usize>,
    n_items: Option<usize>,
    duplicates: DuplicatePolicy,
    columns: Option<[usize; 2]>,
) -> Result<SplitRead, DataError> {
    check_split_file(path)?;
    let bytes = std::fs::read(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = SplitRead {
        pairs: Vec::new(),
        max_user: None,
        max_item: None,
    };
    let mut first_seen: HashMap<(u32, u32), usize> = HashMap::new();
    let mut dropped: Vec<(usize, usize)> = Vec::new();

    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if index == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let malformed = |reason: String| DataError::Malformed {
            path: path.to_path_buf(),
            line: line_no,
            reason,
            text: shorten(&String::from_utf8_lossy(raw)),
        };
        let line = std::str::from_utf8(raw).map_err(|_| malformed("not UTF-8 text".into()))?;
        // Only spaces make a line blank: a tab separates (empty) fields.
        if line.trim_matches(' ').is_empty() {
            continue;
        }
        let (user_field, item_field) = split_fields(line, columns).map_err(&malformed)?;
        let user = parse_id(user_field, "user").map_err(&malformed)?;
        let item = parse_id(item_field, "item").map_err(&malformed)?;
        for (what, id, declared) in [("user", user, n_users), ("item", item, n_items)] {
            if let Some(declared) = declared {
                if id as usize >= declared {
                    return Err(DataError::IdOutOfRange {
                        path: path.to_path_buf(),
                        line: line_no,
                        what,
                        id,
                        declared,
                    });
                }
            }
        }
        if let Some(&first_line) = first_seen.get(&(user, item)) {
            match duplicates {
                DuplicatePolicy::Error => {
                    return Err(DataError::DuplicatePair {
                        path: path.to_path_buf(),
                        line: line_no,
                        first_line,
                        user,
                        item,
                    });
                }
                DuplicatePolicy::Drop => {
                    dropped.push((line_no, first_line));
                    continue;
                }
            }
        }
        first_seen.insert((user, item), line_no);
        if out.max_user.is_none_or(|(m, _)| user > m) {
            out.max_user = Some((user, line_no));
        }
        if out.max_item.is_none_or(|(m, _)| item > m) {
            out.max_item = Some((item, line_no));
        }
        out.pairs.push((user, item));
    }

    if out.pairs.is_empty() {
        return Err(DataError::EmptySplit {
            path: path.to_path_buf(),
        });
    }
    if !dropped.is_empty() {
        let examples: Vec<String> = dropped
            .iter()
            .take(5)
            .map(|(l, f)| format!("line {l} (first at {f})"))
            .collect();
        tracing::warn!(
            file = %path.display(),
            "dropped {} duplicate (user, item) line(s): {}{}",
            dropped.len(),
            examples.join(", "),
            if dropped.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(out)
}

/// The user and item fields of a non-blank line. A line uses one delimiter, tab or comma,
/// and has exactly two fields unless `columns` names which of its fields hold the ids:
/// a stray third column or a mix of delimiters is a sign of a different file format,
/// whose ids would otherwise be read from the wrong place.
fn split_fields(line: &str, columns: Option<[usize; 2]>) -> Result<(&str, &str), String> {
    let delim = match (line.contains('\t'), line.contains(',')) {
        (true, true) => {
            return Err("mixes tab and comma delimiters; a line must use one of them".into())
        }
        (true, false) => '\t',
        (false, true) => ',',
        (false, false) => {
            let hint = if line.contains(' ') {
                " (spaces do not separate fields)"
            } else {
                ""
            };
            return Err(format!(
                "expected `user<TAB>item` or `user,item`, found one field{hint}"
            ));
        }
    };
    let n = line.matches(delim).count() + 1;
    let [u, i] = match columns {
        None if n == 2 => [0, 1],
        None => {
            return Err(format!(
                "{n} fields, expected 2 (user, item); set data.columns = [USER, ITEM] \
                 (0-based) to read two columns of a wider file"
            ))
        }
        Some([u, i]) if n > u.max(i) => [u, i],
        Some([u, i]) => {
            return Err(format!(
                "{n} field(s), but data.columns = [{u}, {i}] needs at least {}",
                u.max(i) + 1
            ))
        }
    };
    let field = |k: usize| line.split(delim).nth(k).unwrap_or("");
    Ok((field(u), field(i)))
}

/// A plain non-negative decimal id: ASCII digits only, no sign, no spaces, no radix prefix,
/// no fraction. Rust's `parse::<u32>` alone would accept `+5`.
fn parse_id(field: &str, what: &str) -> Result<u32, String> {
    if field.is_empty() {
        return Err(format!("the {what} id is empty"));
    }
    if field.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: the only way left to fail is overflow.
        return field
            .parse::<u32>()
            .map_err(|_| format!("the {what} id {field} is too large (ids must be below 2^32)"));
    }
    Err(format!("the {what} id `{field}` {}", not_an_id(field)))
}

/// Why a field that is not all ASCII digits is not an id, for the error message.
fn not_an_id(field: &str) -> &'static str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if field.trim() != field {
        "has spaces around it; fields are not trimmed"
    } else if field.strip_prefix('-').is_some_and(digits) {
        "is negative; ids are 0-based"
    } else if field.starts_with('+') {
        "has a sign; ids are plain digits"
    } else if field.starts_with("0x") || field.starts_with("0X") {
        "is hexadecimal; ids are plain decimal digits"
    } else if field.chars().any(|c| !c.is_ascii() && c.is_numeric()) {
        "holds non-ASCII digits; ids are written with 0-9"
    } else if field.parse::<f64>().is_ok() {
        "is not an integer; ids are whole numbers"
    } else {
        "is not a non-negative integer"
    }
}

/// Error messages quote the line; a runaway line (a binary file, say) is cut short.
pub(super) fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::load_dataset;
    use crate::data::testutil::{files_cfg, write};
    use std::fs;

    fn err_of(
        text: &str,
        n_users: Option<usize>,
        n_items: Option<usize>,
        policy: DuplicatePolicy,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "split.tsv", text);
        read_pairs(&p, n_users, n_items, policy)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_tabs_commas_bom_crlf_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.tsv",
            "\u{feff}0\t1\n\n1,2\r\n2\t3\n  \n007,4\n\n",
        );
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Error).unwrap();
        assert_eq!(pairs, vec![(0, 1), (1, 2), (2, 3), (7, 4)]);
    }

    #[test]
    fn extra_columns_are_errors_unless_data_columns_names_them() {
        let text = "0\t1\n2\t3\t5.0\t881250949\n";
        let msg = err_of(text, None, None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:2:")
                && msg.contains("4 fields, expected 2 (user, item)")
                && msg.contains("data.columns")
                && msg.contains("881250949"),
            "{msg}"
        );
        // Named columns: the others are not looked at, whatever they hold.
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "wide.tsv", "x\t1\t0\t4.5\ny\t3\t2\t\n");
        let s = read_split(&p, None, None, DuplicatePolicy::Error, Some([2, 1])).unwrap();
        assert_eq!(s.pairs, vec![(0, 1), (2, 3)]);
        let p = write(dir.path(), "short.tsv", "x\t1\t0\n9\t1\n");
        let msg = read_split(&p, None, None, DuplicatePolicy::Error, Some([2, 1]))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("short.tsv:2:") && msg.contains("needs at least 3"),
            "{msg}"
        );
        // Through the config, checked there too.
        write(dir.path(), "train.tsv", "a,0,0\nb,1,1\n");
        write(dir.path(), "valid.tsv", "c,0,1\n");
        write(dir.path(), "test.tsv", "d,1,0\n");
        let cfg = DataConfig {
            columns: vec![1, 2],
            ..files_cfg(dir.path())
        };
        assert_eq!(load_dataset(&cfg).unwrap().train, vec![(0, 0), (1, 1)]);
        for columns in [vec![1], vec![1, 1], vec![0, 1, 2]] {
            let cfg = DataConfig {
                columns,
                ..files_cfg(dir.path())
            };
            let msg = load_dataset(&cfg).unwrap_err().to_string();
            assert!(msg.contains("data.columns"), "{msg}");
        }
    }

    #[test]
    fn ids_are_plain_decimal_digits() {
        let cases = [
            ("0\t1\n+5\t1\n", "`+5` has a sign"),
            ("0\t1\n 5\t1\n", "` 5` has spaces"),
            ("0\t1\n5 \t1\n", "has spaces"),
            ("0\t1\n5\t 1\n", "has spaces"),
            ("0\t1\n0x5\t1\n", "`0x5` is hexadecimal"),
            ("0\t1\n5.0\t1\n", "`5.0` is not an integer"),
            ("0\t1\n1e3\t1\n", "`1e3` is not an integer"),
            ("0\t1\n\u{665}\t1\n", "non-ASCII digits"),
            ("0\t1\n5\t\u{ff11}\n", "non-ASCII digits"),
            ("0\t1\n-0\t1\n", "negative"),
            ("0\t1\n1\t2,3\n", "mixes tab and comma"),
            ("0\t1\n1,2\t3\n", "mixes tab and comma"),
            ("0\t1\n1,2,3\n", "3 fields, expected 2"),
            ("0\t1\n\t\n", "the user id is empty"),
            ("0\t1\n1\t4294967296\n", "too large"),
        ];
        for (text, needle) in cases {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(msg.contains("split.tsv:2:"), "{text:?}: {msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "max.tsv", "4294967295\t0\n");
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Error).unwrap();
        assert_eq!(pairs, vec![(u32::MAX, 0)]);
    }

    #[test]
    fn a_split_path_that_is_not_a_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t1\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        fs::create_dir(dir.path().join("valid.tsv")).unwrap();
        let err = load_dataset(&files_cfg(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::NotAFile { .. }), "{msg}");
        assert!(
            msg.contains("valid.tsv is a directory, not a file"),
            "{msg}"
        );
        let err = read_pairs(
            &dir.path().join("valid.tsv"),
            None,
            None,
            DuplicatePolicy::Error,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::NotAFile { .. }), "{err}");
        // A FIFO is never opened (opening one would block until a writer comes).
        fs::remove_dir(dir.path().join("valid.tsv")).unwrap();
        let fifo = dir.path().join("valid.tsv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let msg = load_dataset(&files_cfg(dir.path()))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("valid.tsv is not a regular file (a FIFO)"),
                "{msg}"
            );
        }
        #[cfg(unix)]
        {
            let msg = read_pairs(Path::new("/dev/null"), None, None, DuplicatePolicy::Error)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("not a regular file (a device)"), "{msg}");
        }
    }

    #[test]
    fn absurd_declared_counts_are_refused_before_allocation() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "1\t0\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        for (n_users, n_items, key) in [
            (1_000_000_000_000, 0, "data.n_users"),
            (0, usize::MAX, "data.n_items"),
            (1257, 2, "data.n_users"),
        ] {
            let cfg = DataConfig {
                n_users,
                n_items,
                ..files_cfg(dir.path())
            };
            let err = load_dataset(&cfg).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DataError::AbsurdCount { .. }), "{msg}");
            assert!(
                msg.contains(&format!("`{key}`")) && msg.contains("limit of 1256"),
                "{msg}"
            );
        }
        // At the limit: accepted (users without data are a warning, not an error).
        let cfg = DataConfig {
            n_users: 1256,
            ..files_cfg(dir.path())
        };
        assert_eq!(load_dataset(&cfg).unwrap().n_users, 1256);
    }

    #[test]
    fn malformed_lines_name_file_line_and_text() {
        let cases = [
            ("0\t1\n0 1\n", "spaces"),
            ("0\t1\n7\n", "one field"),
            ("0\t1\nabc\t1\n", "`abc`"),
            ("0\t1\n-3\t1\n", "negative"),
            ("0\t1\n1\t99999999999\n", "too large"),
            ("0\t1\n1\t\n", "empty"),
            ("0\t1\n1\t2.5\n", "`2.5`"),
        ];
        for (text, needle) in cases {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(msg.contains("split.tsv:2:"), "{text:?}: {msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.tsv");
        fs::write(&p, b"0\t1\n\xff\xfe\t1\n").unwrap();
        let msg = read_pairs(&p, None, None, DuplicatePolicy::Error)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bin.tsv:2:") && msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn id_out_of_declared_range() {
        let msg = err_of("0\t1\n5\t1\n", Some(5), None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:2:") && msg.contains("user id 5") && msg.contains("= 5"),
            "{msg}"
        );
        let msg = err_of("0\t1\n\n4\t10\n", Some(5), Some(10), DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:3:") && msg.contains("item id 10") && msg.contains("= 10"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ok.tsv", "4\t9\n");
        assert!(read_pairs(&p, Some(5), Some(10), DuplicatePolicy::Error).is_ok());
    }

    #[test]
    fn empty_split_is_an_error() {
        for text in ["", "\n\n  \n"] {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(
                msg.contains("split.tsv") && msg.contains("no interactions"),
                "{msg}"
            );
        }
    }

    #[test]
    fn duplicate_pairs_error_or_drop() {
        let text = "0\t1\n1\t1\n0,1\n2\t2\n1\t1\n";
        let msg = err_of(text, None, None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:3:") && msg.contains("first at line 1"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.tsv", text);
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Drop).unwrap();
        assert_eq!(pairs, vec![(0, 1), (1, 1), (2, 2)]);
    }

    #[test]
    fn missing_file_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_pairs(
            &dir.path().join("nope.tsv"),
            None,
            None,
            DuplicatePolicy::Error,
        )
        .unwrap_err();
        assert!(
            matches!(err, DataError::MissingFile { .. }) && err.to_string().contains("nope.tsv")
        );

        write(dir.path(), "train.tsv", "0\t1\n");
        write(dir.path(), "test.tsv", "0\t2\n");
        let err = load_dataset(&files_cfg(dir.path())).unwrap_err();
        assert!(err.to_string().contains("valid.tsv"), "{err}");

        let err = load_dataset(&files_cfg(&dir.path().join("absent"))).unwrap_err();
        assert!(
            matches!(err, DataError::MissingDir { .. }) && err.to_string().contains("absent"),
            "{err}"
        );

        let err = load_dataset(&DataConfig::default()).unwrap_err();
        assert!(err.to_string().contains("data.path"), "{err}");
    }

    #[test]
    fn counts_are_inferred_over_all_splits_or_declared() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "2\t1\n");
        write(dir.path(), "test.tsv", "1\t6\n");
        let ds = load_dataset(&files_cfg(dir.path())).unwrap();
        assert_eq!((ds.n_users, ds.n_items), (3, 7));
        assert_eq!(ds.dir.as_deref(), Some(dir.path()));
        assert_eq!(ds.name, dir.path().file_name().unwrap().to_string_lossy());
        assert!(ds.profiles.is_none());

        let cfg = DataConfig {
            n_users: 10,
            n_items: 8,
            name: "tiny".into(),
            ..files_cfg(dir.path())
        };
        let ds = load_dataset(&cfg).unwrap();
        assert_eq!((ds.n_users, ds.n_items, ds.name.as_str()), (10, 8, "tiny"));

        let cfg = DataConfig {
            n_items: 6,
            ..files_cfg(dir.path())
        };
        let msg = load_dataset(&cfg).unwrap_err().to_string();
        assert!(
            msg.contains("test.tsv:1:") && msg.contains("item id 6"),
            "{msg}"
        );
    }

    #[test]
    fn absurd_inferred_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "1\t1\n\n4000000000\t0\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        let msg = load_dataset(&files_cfg(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("valid.tsv:3:") && msg.contains("4000000000"),
            "{msg}"
        );
    }
}
