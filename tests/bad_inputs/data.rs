//! Bad-input cases: split files, profile tables (.npy), dataset folders, sizes taken from input.
//!
//! Each case builds a small dataset folder (3 users, 4 items) in a temporary folder, spoils
//! one thing, and runs `promax data stats DIR` or `promax train CONFIG` (one epoch) on it.

use std::path::{Path, PathBuf};

use crate::common::{fails, promax_in, repo, text};

const TRAIN: &str = "0\t0\n0\t1\n1\t1\n1\t2\n2\t2\n2\t3\n";
const VALID: &str = "0\t2\n1\t0\n";
const TEST: &str = "0\t3\n2\t0\n";

/// A dataset folder `dir/data` with the three splits.
fn dataset(dir: &Path, train: &[u8], valid: &[u8], test: &[u8]) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (name, body) in [
        ("train.tsv", train),
        ("valid.tsv", valid),
        ("test.tsv", test),
    ] {
        std::fs::write(data.join(name), body).unwrap();
    }
    data
}

fn good(dir: &Path) -> PathBuf {
    dataset(dir, TRAIN.as_bytes(), VALID.as_bytes(), TEST.as_bytes())
}

/// A train file that is the good one plus `line` as its line 7.
fn train_with(dir: &Path, line: &[u8]) -> PathBuf {
    let mut train = TRAIN.as_bytes().to_vec();
    train.extend_from_slice(line);
    train.push(b'\n');
    dataset(dir, &train, VALID.as_bytes(), TEST.as_bytes())
}

fn stats(data: &Path) -> std::process::Output {
    promax_in(
        data.parent().unwrap(),
        &["data", "stats", data.to_str().unwrap()],
    )
}

fn stats_fails(data: &Path) -> String {
    fails(&stats(data))
}

/// `promax train` of the quick start, one epoch, on the files in `data`; `extra` is TOML
/// appended inside `[data]` (it may open `[data.profiles]`).
fn train(dir: &Path, data: &Path, extra: &str) -> std::process::Output {
    let quick = repo().join("configs/experiments/quickstart.toml");
    let cfg = dir.join("quick.toml");
    let body = format!(
        "extends = {:?}\n[train]\nmax_epochs = 1\n[data]\nkind = \"files\"\nname = \"bad\"\npath = {:?}\n{extra}\n",
        quick.display().to_string(),
        data.display().to_string()
    );
    std::fs::write(&cfg, body).unwrap();
    let out = dir.join("run");
    promax_in(
        dir,
        &[
            "train",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

fn train_fails(dir: &Path, data: &Path, extra: &str) -> String {
    let err = fails(&train(dir, data, extra));
    assert!(!dir.join("run").join("metrics.json").exists(), "{err}");
    err
}

/// A bad train line 7, read by `data stats`: the message names the file, the line, the
/// line's text and `needle`.
fn bad_line(line: &[u8], needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = train_with(tmp.path(), line);
    let err = stats_fails(&data);
    assert!(err.contains("train.tsv:7:"), "{line:?}: {err}");
    assert!(err.contains(needle), "{line:?}: {err}");
}

#[test]
fn a_third_column() {
    bad_line(b"2\t1\t5", "3 fields, expected 2 (user, item)");
    bad_line(b"2\t1\t5", "\"2\t1\t5\"");
}

#[test]
fn mixed_delimiters() {
    bad_line(b"2,1\t5", "mixes tab and comma");
}

#[test]
fn a_plus_sign() {
    bad_line(b"+2\t1", "`+2` has a sign");
}

#[test]
fn a_negative_id() {
    bad_line(b"2\t-1", "is negative");
}

#[test]
fn a_hex_id() {
    bad_line(b"0x2\t1", "`0x2` is hexadecimal");
}

#[test]
fn a_float_id() {
    bad_line(b"2.0\t1", "`2.0` is not an integer");
}

#[test]
fn a_space_inside_a_field() {
    bad_line(b"2\t 1", "has spaces around it");
}

#[test]
fn non_ascii_digits() {
    bad_line("\u{662}\t1".as_bytes(), "non-ASCII digits");
}

#[test]
fn not_utf8() {
    bad_line(b"2\t\xff\xfe", "not UTF-8");
}

#[test]
fn an_empty_field() {
    bad_line(b"2\t", "the item id is empty");
}

#[test]
fn an_id_beyond_u32() {
    bad_line(b"4294967296\t1", "too large");
}

#[test]
fn an_id_out_of_the_declared_range() {
    let tmp = tempfile::tempdir().unwrap();
    let data = train_with(tmp.path(), b"3\t1");
    let err = train_fails(tmp.path(), &data, "n_users = 3");
    assert!(
        err.contains("train.tsv:7:")
            && err.contains("user id 3")
            && err.contains("data.n_users = 3"),
        "{err}"
    );
}

#[test]
fn a_huge_declared_count() {
    let tmp = tempfile::tempdir().unwrap();
    let data = good(tmp.path());
    // Within the key's range, but absurd for a file of this size.
    let err = train_fails(tmp.path(), &data, "n_users = 4000000000");
    assert!(
        err.contains("`data.n_users` = 4000000000") && err.contains("limit of 1640"),
        "{err}"
    );
    // Beyond any id a split file can hold: refused with the config key's range.
    let err = train_fails(tmp.path(), &data, "n_users = 1000000000000");
    assert!(
        err.contains("`data.n_users` = 1000000000000") && err.contains("4294967295"),
        "{err}"
    );
}

#[test]
fn a_stray_huge_id_with_inferred_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = train_with(tmp.path(), b"4000000000\t1");
    let err = stats_fails(&data);
    assert!(
        err.contains("train.tsv:7:") && err.contains("4000000000") && err.contains("data.n_users"),
        "{err}"
    );
}

#[test]
fn an_empty_split() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), TRAIN.as_bytes(), b"\n \n", TEST.as_bytes());
    let err = stats_fails(&data);
    assert!(
        err.contains("valid.tsv") && err.contains("no interactions"),
        "{err}"
    );
}

#[test]
fn a_duplicate_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let data = train_with(tmp.path(), b"1,2");
    let err = stats_fails(&data);
    assert!(
        err.contains("train.tsv:7:") && err.contains("first at line 4"),
        "{err}"
    );
}

#[test]
fn a_missing_split_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = good(tmp.path());
    std::fs::remove_file(data.join("test.tsv")).unwrap();
    let err = stats_fails(&data);
    assert!(err.contains("test.tsv not found"), "{err}");
}

#[test]
fn a_split_path_that_is_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = good(tmp.path());
    std::fs::remove_file(data.join("valid.tsv")).unwrap();
    std::fs::create_dir(data.join("valid.tsv")).unwrap();
    let err = stats_fails(&data);
    assert!(
        err.contains("valid.tsv is a directory, not a file"),
        "{err}"
    );
}

#[test]
fn a_split_path_that_is_a_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let data = good(tmp.path());
    std::fs::remove_file(data.join("train.tsv")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(data.join("train.tsv"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    // Reading it would block forever: the test itself hangs if the check is missing.
    let err = stats_fails(&data);
    assert!(
        err.contains("train.tsv is not a regular file (a FIFO)"),
        "{err}"
    );
}

#[test]
fn bad_data_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = good(tmp.path());
    for (columns, needle) in [("[1, 1]", "data.columns"), ("[0]", "data.columns")] {
        let err = train_fails(tmp.path(), &data, &format!("columns = {columns}"));
        assert!(
            err.contains(needle) && err.contains("distinct"),
            "{columns}: {err}"
        );
    }
    // Named columns beyond a line's fields: file and line.
    let err = train_fails(tmp.path(), &data, "columns = [0, 2]");
    assert!(
        err.contains("train.tsv:1:") && err.contains("data.columns = [0, 2] needs at least 3"),
        "{err}"
    );
}

#[test]
fn named_columns_read_a_wider_file() {
    let tmp = tempfile::tempdir().unwrap();
    let wide = |text: &str| {
        text.lines()
            .map(|l| format!("{}\t5.0\t881250949\n", l))
            .collect::<String>()
    };
    let data = dataset(
        tmp.path(),
        wide(TRAIN).as_bytes(),
        wide(VALID).as_bytes(),
        wide(TEST).as_bytes(),
    );
    let err = stats_fails(&data);
    assert!(
        err.contains("train.tsv:1:") && err.contains("4 fields"),
        "{err}"
    );
    let o = train(tmp.path(), &data, "columns = [0, 1]");
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
}

// ---- profile tables ----

fn write_npy(path: &Path, rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) {
    let a = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| f(r, c));
    ndarray_npy::write_npy(path, &a).unwrap();
}

fn grid(r: usize, c: usize) -> f32 {
    (r * 10 + c) as f32
}

/// The good dataset plus good `user_profiles.npy` (3 × 4) and `item_profiles.npy` (4 × 4).
fn with_profiles(dir: &Path) -> PathBuf {
    let data = good(dir);
    write_npy(&data.join("user_profiles.npy"), 3, 4, grid);
    write_npy(&data.join("item_profiles.npy"), 4, 4, grid);
    data
}

/// `data stats` and `train` (through `[data.profiles]`) on the dataset with `spoil` applied
/// to its `file`; both messages must name the file and contain `needle`.
fn bad_profiles(file: &str, spoil: impl Fn(&Path), needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_profiles(tmp.path());
    spoil(&data.join(file));
    let err = stats_fails(&data);
    assert!(
        err.contains(file) && err.contains(needle),
        "data stats: {err}"
    );
    let err = train_fails(
        tmp.path(),
        &data,
        "[data.profiles]\nusers = \"user_profiles.npy\"\nitems = \"item_profiles.npy\"",
    );
    let key = if file.starts_with("user") {
        "data.profiles.users"
    } else {
        "data.profiles.items"
    };
    assert!(
        err.contains(file) && err.contains(key) && err.contains(needle),
        "train: {err}"
    );
}

#[test]
fn good_profiles_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_profiles(tmp.path());
    let o = stats(&data);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("profiles: dimension 4"), "{out}");
}

#[test]
fn a_truncated_npy() {
    bad_profiles(
        "user_profiles.npy",
        |p| {
            let b = std::fs::read(p).unwrap();
            std::fs::write(p, &b[..b.len() - 6]).unwrap();
        },
        "truncated",
    );
}

/// A 128-byte `.npy` whose header claims a (10^12, 10^6) float32 array (4 * 10^18 bytes).
fn huge_claim(p: &Path) {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000), }";
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend(118u16.to_le_bytes());
    v.extend(format!("{dict:<117}\n").into_bytes());
    assert_eq!(v.len(), 128);
    std::fs::write(p, v).unwrap();
}

#[test]
fn an_npy_claiming_a_huge_shape() {
    bad_profiles(
        "item_profiles.npy",
        huge_claim,
        "claims shape (1000000000000, 1000000) (4000000000000000000 bytes of float32 data) but the file is only 128 bytes",
    );
}

#[test]
fn augment_reads_a_huge_claimed_shape_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_profiles(tmp.path());
    huge_claim(&data.join("user_profiles.npy"));
    let o = promax_in(
        tmp.path(),
        &[
            "augment",
            data.to_str().unwrap(),
            "--set",
            "data.profiles.users=user_profiles.npy",
            "--set",
            "data.profiles.items=item_profiles.npy",
            "--out",
            tmp.path().join("aug.tsv").to_str().unwrap(),
        ],
    );
    let err = fails(&o);
    assert!(
        err.contains("user_profiles.npy") && err.contains("only 128 bytes"),
        "{err}"
    );
    assert!(!tmp.path().join("aug.tsv").exists());
}

#[test]
fn a_float64_npy() {
    bad_profiles(
        "item_profiles.npy",
        |p| {
            let a = ndarray::Array2::from_shape_fn((4, 4), |(r, c)| grid(r, c) as f64);
            ndarray_npy::write_npy(p, &a).unwrap();
        },
        "float64",
    );
}

#[test]
fn a_wrong_row_count() {
    bad_profiles(
        "user_profiles.npy",
        |p| write_npy(p, 5, 4, grid),
        "has 5 rows but the dataset has 3 users",
    );
}

#[test]
fn a_wrong_dimension() {
    bad_profiles(
        "item_profiles.npy",
        |p| write_npy(p, 4, 6, grid),
        "has dimension 6",
    );
}

#[test]
fn a_nan_in_a_table() {
    bad_profiles(
        "item_profiles.npy",
        |p| {
            write_npy(p, 4, 4, |r, c| {
                if (r, c) == (3, 2) {
                    f32::NAN
                } else {
                    grid(r, c)
                }
            })
        },
        "row 3, column 2",
    );
}

#[test]
fn an_all_zero_row() {
    bad_profiles(
        "user_profiles.npy",
        |p| write_npy(p, 3, 4, |r, c| if r == 1 { 0.0 } else { grid(r, c) }),
        "1 row(s) are all zeros (0-based row = user id: 1)",
    );
}

#[test]
fn a_constant_table() {
    bad_profiles(
        "item_profiles.npy",
        |p| write_npy(p, 4, 4, |_, _| 0.5),
        "4 row(s) hold one value in every column (0-based row = item id: 0, 1, 2, 3)",
    );
    bad_profiles(
        "item_profiles.npy",
        |p| write_npy(p, 4, 4, |_, c| c as f32),
        "all 4 rows are identical",
    );
}

#[test]
fn a_profile_path_that_is_a_directory() {
    bad_profiles(
        "user_profiles.npy",
        |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        },
        "is a folder",
    );
}

#[test]
fn not_an_npy_at_all() {
    bad_profiles(
        "user_profiles.npy",
        |p| std::fs::write(p, "0.1\t0.2\n").unwrap(),
        "not a .npy file",
    );
}

// ---- warnings ----

#[test]
fn users_only_in_test_and_id_gaps_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    // User 3 and item 6 only in test; users 4..=9 and item 5 nowhere (a stray id 10).
    let data = dataset(
        tmp.path(),
        TRAIN.as_bytes(),
        format!("{VALID}10\t4\n").as_bytes(),
        format!("{TEST}3\t6\n").as_bytes(),
    );
    let o = stats(&data);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("test.tsv")
            && err.contains("1 user(s) occur here but never in")
            && err.contains("(e.g. user 3)"),
        "{err}"
    );
    assert!(
        err.contains("valid.tsv") && err.contains("(e.g. user 10)"),
        "{err}"
    );
    assert!(
        err.contains("6 of the 11 user ids 0..11 occur in no split file (e.g. 4, 5, 6, 7, 8, ...)"),
        "{err}"
    );
    assert!(
        err.contains("1 of the 7 item ids 0..7 occur in no split file (e.g. 5)"),
        "{err}"
    );
    // Training goes ahead with the same warnings.
    let o = train(tmp.path(), &data, "");
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("occur in no split file"), "{err}");
}
