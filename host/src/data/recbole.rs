//! RecBole atomic files (`data.kind = "recbole"`): `NAME.inter` with a typed header
//! (`user_id:token item_id:token rating:float timestamp:float`, any column order, any extra
//! fields), optional `NAME.user` / `NAME.item` whose rows fix the order of the contiguous
//! ids, a rating threshold, and either a seeded per-user ratio split or RecBole's pre-split
//! `NAME.train.inter` / `.valid.inter` / `.test.inter`.
//!
//! Tokens get ids in the order of the `.user` (`.item`) file, then in order of first
//! appearance in the kept interactions (train, valid, test for pre-split files). A copy of
//! a 0-based TSV dataset whose `.user` and `.item` list the ids in order therefore loads
//! to exactly the TSV dataset. Every bad line is reported with its file and 1-based line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::pairs::{check_split_file, shorten};
use super::{DataConfig, DataError, DuplicatePolicy, IdMaps, Pairs};
use crate::config::{RecboleConfig, RecboleOrder, RecboleSplit};

/// The interactions of a RecBole dataset, split, with the token of every id.
pub(super) struct RecboleSplits {
    pub(super) train: Pairs,
    pub(super) valid: Pairs,
    pub(super) test: Pairs,
    pub(super) ids: IdMaps,
}

/// The atomic files `cfg` reads, in reading order: the `.user` / `.item` files that
/// exist, then the interaction file(s). The augmentation cache hashes them.
pub fn input_files(cfg: &DataConfig) -> Vec<PathBuf> {
    let (dir, stem) = (cfg.dir(), stem(cfg));
    let mut files: Vec<PathBuf> = ["user", "item"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .filter(|p| p.is_file())
        .collect();
    files.extend(inter_files(cfg).into_iter().map(|(p, _)| p));
    files
}

fn stem(cfg: &DataConfig) -> String {
    if cfg.recbole.name.is_empty() {
        super::folder_name(&cfg.dir())
    } else {
        cfg.recbole.name.clone()
    }
}

/// The interaction files and why each is needed.
fn inter_files(cfg: &DataConfig) -> Vec<(PathBuf, String)> {
    let (dir, stem) = (cfg.dir(), stem(cfg));
    match cfg.recbole.split {
        RecboleSplit::Ratio => vec![(
            dir.join(format!("{stem}.inter")),
            "data.kind = \"recbole\" reads NAME.inter, NAME = data.recbole.name or the folder's name".into(),
        )],
        RecboleSplit::Presplit => ["train", "valid", "test"]
            .iter()
            .map(|s| {
                (
                    dir.join(format!("{stem}.{s}.inter")),
                    "data.recbole.split = \"presplit\" reads NAME.train.inter, NAME.valid.inter \
                     and NAME.test.inter"
                        .into(),
                )
            })
            .collect(),
    }
}

/// Reads and splits the atomic files of `cfg.dir()`.
pub(super) fn read_recbole(cfg: &DataConfig) -> Result<RecboleSplits, DataError> {
    let rb = &cfg.recbole;
    if let Some((key, value, reason)) = rb.problem() {
        return Err(DataError::Config {
            key: key.into(),
            reason: format!("= {value} {reason}"),
        });
    }
    let files = inter_files(cfg);
    for (path, why) in &files {
        if !path.exists() {
            return Err(DataError::MissingAtomic {
                path: path.clone(),
                why: why.clone(),
            });
        }
        check_split_file(path)?;
    }
    let (dir, stem) = (cfg.dir(), stem(cfg));
    let mut users = Interner::default();
    let mut items = Interner::default();
    read_entities(
        &dir.join(format!("{stem}.user")),
        &rb.user_field,
        &mut users,
    )?;
    read_entities(
        &dir.join(format!("{stem}.item")),
        &rb.item_field,
        &mut items,
    )?;
    let mut read = Vec::with_capacity(files.len());
    let mut kept_rows = 0;
    for (path, _) in &files {
        let rows = read_inter(path, rb)?;
        let kept = keep_rated(path, rows, rb.min_rating);
        kept_rows += kept.len();
        read.push(map_rows(
            path,
            kept,
            &mut users,
            &mut items,
            cfg.duplicates,
        )?);
    }
    let (train, valid, test) = match rb.split {
        RecboleSplit::Presplit => {
            let mut it = read
                .into_iter()
                .map(|r| r.into_iter().map(|x| x.pair).collect());
            let mut next = || it.next().unwrap_or_default();
            (next(), next(), next())
        }
        RecboleSplit::Ratio => {
            let rows = read.into_iter().next().unwrap_or_default();
            split_by_user(rows, users.len(), rb)
        }
    };
    let splits = [("train", &train), ("valid", &valid), ("test", &test)];
    for ((split, pairs), (path, _)) in splits.into_iter().zip(files.iter().cycle()) {
        if pairs.is_empty() {
            return Err(DataError::EmptyRecboleSplit {
                path: path.clone(),
                split,
                why: empty_split_reason(rb, split, kept_rows),
            });
        }
    }
    Ok(RecboleSplits {
        train,
        valid,
        test,
        ids: IdMaps {
            users: users.tokens,
            items: items.tokens,
        },
    })
}

/// Why a split came out empty, in terms of the settings that made it so.
fn empty_split_reason(rb: &RecboleConfig, split: &str, kept_rows: usize) -> String {
    match (rb.min_rating, rb.split) {
        (Some(min), _) if kept_rows == 0 => {
            format!("no interaction is rated at least data.recbole.min_rating = {min}")
        }
        (_, RecboleSplit::Presplit) => match rb.min_rating {
            Some(min) => format!(
                "the file holds no interaction rated at least data.recbole.min_rating = {min}"
            ),
            None => "the file holds no interaction".into(),
        },
        (_, RecboleSplit::Ratio) => format!(
            "data.recbole.ratios = {:?} gives no user a {split} interaction: a user's share \
             must reach one interaction (or a fraction of one while train keeps two)",
            rb.ratios
        ),
    }
}

/// Tokens to contiguous ids, in order of first insertion.
#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
    tokens: Vec<String>,
}

impl Interner {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The token's id; `None` when a new one would not fit in a u32 (node ids are u32).
    fn id(&mut self, token: &str) -> Option<u32> {
        if let Some(&id) = self.index.get(token) {
            return Some(id);
        }
        let id = u32::try_from(self.tokens.len())
            .ok()
            .filter(|&id| id < u32::MAX)?;
        self.index.insert(token.to_owned(), id);
        self.tokens.push(token.to_owned());
        Some(id)
    }
}

/// The typed header of an atomic file: each field's name and type.
struct Header {
    fields: Vec<(String, String)>,
}

const TYPES: [&str; 4] = ["token", "token_seq", "float", "float_seq"];

impl Header {
    fn parse(path: &Path, line: &str) -> Result<Header, DataError> {
        let mut fields = Vec::new();
        for f in line.split('\t') {
            let Some((name, ty)) = f.rsplit_once(':') else {
                return Err(malformed(
                    path,
                    1,
                    format!("header field `{f}` is not `name:type` (RecBole's typed header)"),
                    line,
                ));
            };
            if !TYPES.contains(&ty) {
                return Err(malformed(
                    path,
                    1,
                    format!(
                        "header field `{f}` has type `{ty}`; RecBole's types are {}",
                        TYPES.join(", ")
                    ),
                    line,
                ));
            }
            if fields.iter().any(|(n, _)| n == name) {
                return Err(malformed(
                    path,
                    1,
                    format!("header names field `{name}` twice"),
                    line,
                ));
            }
            fields.push((name.to_owned(), ty.to_owned()));
        }
        Ok(Header { fields })
    }

    /// The column of field `name`, which must have type `ty` (`key` names the setting).
    fn column(
        &self,
        path: &Path,
        header: &str,
        (key, name): (&str, &str),
        ty: &str,
    ) -> Result<usize, DataError> {
        let Some(at) = self.fields.iter().position(|(n, _)| n == name) else {
            let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
            return Err(malformed(
                path,
                1,
                format!(
                    "no field `{name}` ({key}); the header has {}",
                    names.join(", ")
                ),
                header,
            ));
        };
        if self.fields[at].1 != ty {
            return Err(malformed(
                path,
                1,
                format!(
                    "field `{name}` ({key}) has type `{}`, expected `{ty}`",
                    self.fields[at].1
                ),
                header,
            ));
        }
        Ok(at)
    }
}

fn too_many(path: &Path, line: usize, what: &str) -> DataError {
    malformed(
        path,
        line,
        format!("more distinct {what} tokens than ids fit in 32 bits"),
        "",
    )
}

fn malformed(path: &Path, line: usize, reason: String, text: &str) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
        text: shorten(text),
    }
}

/// An atomic file split into its header (parsed, and as written) and its rows.
struct Table<'t> {
    header: Header,
    head: &'t str,
    /// `(1-based line, fields)` of every non-blank line after the header.
    rows: Vec<(usize, Vec<&'t str>)>,
}

/// The lines of a file after its header, blank lines skipped, every line checked to have
/// the header's number of fields.
fn body_lines<'t>(path: &Path, text: &'t str) -> Result<Table<'t>, DataError> {
    let mut lines = text.split('\n').enumerate();
    let Some((_, head)) = lines.next() else {
        return Err(DataError::EmptySplit {
            path: path.to_path_buf(),
        });
    };
    let head = head.strip_prefix('\u{feff}').unwrap_or(head);
    let head = head.strip_suffix('\r').unwrap_or(head);
    let header = Header::parse(path, head)?;
    let mut rows = Vec::new();
    for (index, raw) in lines {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim_matches(' ').is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split('\t').collect();
        if fields.len() != header.fields.len() {
            return Err(malformed(
                path,
                index + 1,
                format!(
                    "{} tab-separated fields, the header has {}",
                    fields.len(),
                    header.fields.len()
                ),
                raw,
            ));
        }
        rows.push((index + 1, fields));
    }
    Ok(Table { header, head, rows })
}

fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        malformed(path, line, "not UTF-8 text".into(), "")
    })
}

/// A `.user` / `.item` file, when present: its rows' tokens get the first ids, in order.
fn read_entities(path: &Path, field: &str, ids: &mut Interner) -> Result<(), DataError> {
    if !path.exists() {
        return Ok(());
    }
    check_split_file(path)?;
    let text = read_text(path)?;
    let Table { header, head, rows } = body_lines(path, &text)?;
    let key = if path.extension().is_some_and(|e| e == "user") {
        "data.recbole.user_field"
    } else {
        "data.recbole.item_field"
    };
    let col = header.column(path, head, (key, field), "token")?;
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (line, fields) in &rows {
        let token = fields[col];
        if token.is_empty() {
            return Err(malformed(
                path,
                *line,
                format!("the `{field}` is empty"),
                token,
            ));
        }
        if let Some(f) = first.insert(token, *line) {
            return Err(malformed(
                path,
                *line,
                format!("`{field}` {token:?} repeats line {f}"),
                token,
            ));
        }
        if ids.id(token).is_none() {
            return Err(too_many(path, *line, field));
        }
    }
    Ok(())
}

/// One interaction as read: its line, tokens, rating and timestamp (NaN when absent).
struct Row {
    line: usize,
    user: String,
    item: String,
    rating: f64,
    time: f64,
}

/// The interactions of one `.inter` file, in file order.
fn read_inter(path: &Path, rb: &RecboleConfig) -> Result<Vec<Row>, DataError> {
    let text = read_text(path)?;
    let Table { header, head, rows } = body_lines(path, &text)?;
    let user = header.column(
        path,
        head,
        ("data.recbole.user_field", &rb.user_field),
        "token",
    )?;
    let item = header.column(
        path,
        head,
        ("data.recbole.item_field", &rb.item_field),
        "token",
    )?;
    let rating = match rb.min_rating {
        Some(_) => Some(header.column(
            path,
            head,
            (
                "data.recbole.rating_field, read by data.recbole.min_rating",
                &rb.rating_field,
            ),
            "float",
        )?),
        None => None,
    };
    let time = match (rb.split, rb.order) {
        (RecboleSplit::Ratio, RecboleOrder::Time) => Some(header.column(
            path,
            head,
            (
                "data.recbole.timestamp_field, read by data.recbole.order = \"time\"",
                &rb.timestamp_field,
            ),
            "float",
        )?),
        _ => None,
    };
    let mut out = Vec::with_capacity(rows.len());
    for (line, fields) in rows {
        // The line as read, for error messages only.
        let text = || fields.join("\t");
        for (col, name) in [(user, &rb.user_field), (item, &rb.item_field)] {
            if fields[col].is_empty() {
                return Err(malformed(
                    path,
                    line,
                    format!("the `{name}` is empty"),
                    &text(),
                ));
            }
        }
        let number = |col: Option<usize>, name: &str| -> Result<f64, DataError> {
            let Some(c) = col else { return Ok(f64::NAN) };
            match fields[c].parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(malformed(
                    path,
                    line,
                    format!("the `{name}` {:?} is not a finite number", fields[c]),
                    &text(),
                )),
            }
        };
        out.push(Row {
            line,
            user: fields[user].to_owned(),
            item: fields[item].to_owned(),
            rating: number(rating, &rb.rating_field)?,
            time: number(time, &rb.timestamp_field)?,
        });
    }
    Ok(out)
}

/// The rows rated at least `min_rating` (all when unset); the count left out is logged.
fn keep_rated(path: &Path, rows: Vec<Row>, min_rating: Option<f64>) -> Vec<Row> {
    let Some(min) = min_rating else { return rows };
    let before = rows.len();
    let kept: Vec<Row> = rows.into_iter().filter(|r| r.rating >= min).collect();
    tracing::info!(
        file = %path.display(),
        "data.recbole.min_rating = {min}: kept {} of {before} interactions ({} rated below)",
        kept.len(),
        before - kept.len()
    );
    kept
}

/// An interaction with ids, and what a ratio split orders it by.
struct Mapped {
    pair: (u32, u32),
    time: f64,
}

/// Tokens to ids (new tokens in order of appearance); a repeated (user, item) within the
/// file follows `data.duplicates`.
fn map_rows(
    path: &Path,
    rows: Vec<Row>,
    users: &mut Interner,
    items: &mut Interner,
    duplicates: DuplicatePolicy,
) -> Result<Vec<Mapped>, DataError> {
    let mut first: HashMap<(u32, u32), usize> = HashMap::new();
    let mut dropped = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let pair = match (users.id(&r.user), items.id(&r.item)) {
            (Some(u), Some(i)) => (u, i),
            (None, _) => return Err(too_many(path, r.line, "user")),
            (_, None) => return Err(too_many(path, r.line, "item")),
        };
        if let Some(&f) = first.get(&pair) {
            match duplicates {
                DuplicatePolicy::Error => {
                    return Err(malformed(
                        path,
                        r.line,
                        format!(
                            "user {:?} and item {:?} repeat line {f} (data.duplicates = \"drop\" keeps the first)",
                            r.user, r.item
                        ),
                        &format!("{}\t{}", r.user, r.item),
                    ))
                }
                DuplicatePolicy::Drop => {
                    dropped.push(r.line);
                    continue;
                }
            }
        }
        first.insert(pair, r.line);
        out.push(Mapped { pair, time: r.time });
    }
    if !dropped.is_empty() {
        tracing::warn!(
            file = %path.display(),
            "dropped {} repeated (user, item) line(s), e.g. line {}",
            dropped.len(),
            dropped[0]
        );
    }
    Ok(out)
}

/// How many of `n` interactions go to train, valid and test: RecBole's rule (each share
/// rounded down, train takes the rest, then a held-out split whose share is a fraction
/// of one interaction still gets one while train keeps more than one).
pub(super) fn split_counts(n: usize, ratios: &[f64]) -> [usize; 3] {
    let total: f64 = ratios.iter().sum();
    let share = |k: usize| ratios[k] / total;
    let mut cnt = [
        0,
        (share(1) * n as f64) as usize,
        (share(2) * n as f64) as usize,
    ];
    cnt[0] = n - cnt[1] - cnt[2];
    for k in [2, 1] {
        if cnt[0] <= 1 {
            break;
        }
        let want = share(k) * n as f64;
        if 0.0 < want && want < 1.0 {
            cnt[k] += 1;
            cnt[0] -= 1;
        }
    }
    cnt
}

/// Each user's interactions (in file order, then shuffled or sorted by time) cut by
/// [`split_counts`]; users in id order.
fn split_by_user(rows: Vec<Mapped>, n_users: usize, rb: &RecboleConfig) -> (Pairs, Pairs, Pairs) {
    let mut per_user: Vec<Vec<Mapped>> = (0..n_users).map(|_| Vec::new()).collect();
    for r in rows {
        per_user[r.pair.0 as usize].push(r);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(rb.seed);
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for mut list in per_user {
        match rb.order {
            RecboleOrder::Random => list.shuffle(&mut rng),
            RecboleOrder::Time => list.sort_by(|a, b| a.time.total_cmp(&b.time)),
        }
        let [a, b, _] = split_counts(list.len(), &rb.ratios);
        for (k, r) in list.into_iter().enumerate() {
            let to = if k < a {
                &mut train
            } else if k < a + b {
                &mut valid
            } else {
                &mut test
            };
            to.push(r.pair);
        }
    }
    (train, valid, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataKind;
    use crate::data::load_dataset;
    use crate::data::testutil::write;

    fn cfg(dir: &Path, rb: RecboleConfig) -> DataConfig {
        DataConfig {
            kind: DataKind::Recbole,
            path: dir.to_path_buf(),
            recbole: RecboleConfig {
                name: "toy".into(),
                ..rb
            },
            ..DataConfig::default()
        }
    }

    fn err(dir: &Path, rb: RecboleConfig) -> String {
        match load_dataset(&cfg(dir, rb)) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn split_counts_follow_recbole() {
        // Hand-computed with RecBole's _calcu_split_ids over [0.8, 0.1, 0.1].
        let r = [0.8, 0.1, 0.1];
        assert_eq!(split_counts(10, &r), [8, 1, 1]);
        assert_eq!(split_counts(5, &r), [3, 1, 1]); // 0.5 each: one apiece
        assert_eq!(split_counts(2, &r), [1, 0, 1]); // train keeps one
        assert_eq!(split_counts(1, &r), [1, 0, 0]);
        assert_eq!(split_counts(25, &r), [21, 2, 2]);
        assert_eq!(split_counts(7, &[0.8, 0.2, 0.0]), [6, 1, 0]); // 1.4 is not a fraction of one
    }

    #[test]
    fn reads_any_column_order_and_maps_tokens() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "toy.train.inter",
            "rating:float\titem_id:token\tuser_id:token\n5\tb\tann\n4\ta\tbob\n\n1\tc\tann\n",
        );
        write(
            dir.path(),
            "toy.valid.inter",
            "user_id:token\titem_id:token\nbob\tb\n",
        );
        write(
            dir.path(),
            "toy.test.inter",
            "user_id:token\titem_id:token\ncid\tc\n",
        );
        write(
            dir.path(),
            "toy.item",
            "item_id:token\tname:token_seq\nc\tx y\na\tz\n",
        );
        let rb = RecboleConfig {
            split: RecboleSplit::Presplit,
            ..RecboleConfig::default()
        };
        let ds = load_dataset(&cfg(dir.path(), rb.clone())).unwrap();
        let ids = ds.ids.as_ref().unwrap();
        assert_eq!(ids.users, ["ann", "bob", "cid"]);
        assert_eq!(ids.items, ["c", "a", "b"], "the .item file's order first");
        assert_eq!(ds.train, vec![(0, 2), (1, 1), (0, 0)]);
        assert_eq!(ds.valid, vec![(1, 2)]);
        assert_eq!(ds.test, vec![(2, 0)]);
        assert_eq!((ds.n_users, ds.n_items), (3, 3));
        // A threshold reads the rating field of every file: valid has none.
        let rated = RecboleConfig {
            min_rating: Some(3.0),
            ..rb
        };
        let msg = err(dir.path(), rated);
        assert!(
            msg.contains("toy.valid.inter:1") && msg.contains("no field `rating`"),
            "{msg}"
        );
    }

    #[test]
    fn a_ratio_split_is_seeded_and_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let mut text =
            String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
        for u in 0..6 {
            for i in 0..10 {
                text += &format!("u{u}\ti{}\t{}\t{}\n", (u + i) % 12, i % 5, 100 - i);
            }
        }
        write(dir.path(), "toy.inter", &text);
        let rb = RecboleConfig::default();
        let a = load_dataset(&cfg(dir.path(), rb.clone())).unwrap();
        let b = load_dataset(&cfg(dir.path(), rb.clone())).unwrap();
        assert_eq!(a, b, "same seed, same split");
        assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (48, 6, 6));
        for u in 0..6u32 {
            let n = |p: &Pairs| p.iter().filter(|x| x.0 == u).count();
            assert_eq!((n(&a.train), n(&a.valid), n(&a.test)), (8, 1, 1));
        }
        let c = load_dataset(&cfg(
            dir.path(),
            RecboleConfig {
                seed: 7,
                ..rb.clone()
            },
        ))
        .unwrap();
        assert_ne!(a.train, c.train, "another seed, another split");
        // By time: the timestamps fall along the file, so the first line of each user
        // (the latest) is its test item.
        let t = load_dataset(&cfg(
            dir.path(),
            RecboleConfig {
                order: RecboleOrder::Time,
                ..rb.clone()
            },
        ))
        .unwrap();
        let ids = t.ids.as_ref().unwrap();
        for &(u, i) in &t.test {
            let want = format!("i{}", u % 12);
            assert_eq!(
                ids.items[i as usize], want,
                "user {}",
                ids.users[u as usize]
            );
        }
        // min_rating 3 keeps ratings 3 and 4: 4 of each user's 10.
        let r = load_dataset(&cfg(
            dir.path(),
            RecboleConfig {
                min_rating: Some(3.0),
                ..rb
            },
        ))
        .unwrap();
        assert_eq!(r.train.len() + r.valid.len() + r.test.len(), 24);
    }

    #[test]
    fn bad_files_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let rb = RecboleConfig::default();
        let cases = [
            (
                "user_id\titem_id:token\nu\ti\n",
                "toy.inter:1: header field `user_id` is not `name:type`",
            ),
            ("user_id:int\titem_id:token\nu\ti\n", "has type `int`"),
            (
                "uid:token\titem_id:token\nu\ti\n",
                "no field `user_id` (data.recbole.user_field)",
            ),
            (
                "user_id:float\titem_id:token\n1\ti\n",
                "field `user_id` (data.recbole.user_field) has type `float`",
            ),
            (
                "user_id:token\titem_id:token\nu\ti\nu\n",
                "toy.inter:3: 1 tab-separated fields, the header has 2",
            ),
            (
                "user_id:token\titem_id:token\nu\ti\n\ti\n",
                "toy.inter:3: the `user_id` is empty",
            ),
            (
                "user_id:token\titem_id:token\nu\ti\nu\ti\n",
                "toy.inter:3: user \"u\" and item \"i\" repeat line 2",
            ),
        ];
        for (text, want) in cases {
            write(dir.path(), "toy.inter", text);
            let msg = err(dir.path(), rb.clone());
            assert!(msg.contains(want), "{text:?}\n{msg}");
        }
        write(
            dir.path(),
            "toy.inter",
            "user_id:token\titem_id:token\trating:float\nu\ti\tNaN\n",
        );
        let msg = err(
            dir.path(),
            RecboleConfig {
                min_rating: Some(1.0),
                ..rb.clone()
            },
        );
        assert!(
            msg.contains("toy.inter:2: the `rating` \"NaN\" is not a finite number"),
            "{msg}"
        );
        write(
            dir.path(),
            "toy.inter",
            "user_id:token\titem_id:token\nu\ti\n",
        );
        write(dir.path(), "toy.user", "user_id:token\nu\nu\n");
        let msg = err(dir.path(), rb.clone());
        assert!(
            msg.contains("toy.user:3: `user_id` \"u\" repeats line 2"),
            "{msg}"
        );
        std::fs::remove_file(dir.path().join("toy.user")).unwrap();
        let msg = err(
            dir.path(),
            RecboleConfig {
                split: RecboleSplit::Presplit,
                ..rb.clone()
            },
        );
        assert!(
            msg.contains("toy.train.inter not found (data.recbole.split = \"presplit\""),
            "{msg}"
        );
        let msg = err(
            dir.path(),
            RecboleConfig {
                ratios: vec![0.9, 0.1],
                ..rb.clone()
            },
        );
        assert!(msg.contains("data.recbole.ratios"), "{msg}");
        // Splits that come out empty say which setting emptied them.
        write(
            dir.path(),
            "toy.inter",
            "user_id:token\titem_id:token\trating:float\nu\ti\t1\nu\tj\t2\n",
        );
        let msg = err(dir.path(), rb.clone());
        assert!(
            msg.contains(
                "toy.inter: the valid split is empty: data.recbole.ratios = [0.8, 0.1, 0.1]"
            ),
            "{msg}"
        );
        let strict = RecboleConfig {
            min_rating: Some(4.0),
            ..rb.clone()
        };
        let msg = err(dir.path(), strict);
        assert!(
            msg.contains("the train split is empty: no interaction is rated at least data.recbole.min_rating = 4"),
            "{msg}"
        );
        let no_test = RecboleConfig {
            ratios: vec![0.9, 0.1, 0.0],
            ..rb
        };
        assert!(no_test
            .problem()
            .is_some_and(|(k, _, r)| k == "data.recbole.ratios" && r.contains("each > 0")));
    }
}
