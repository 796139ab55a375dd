//! The text side: item metadata, `id<TAB>text` tables, and the JSON answers.

use std::path::Path;

use serde_json::Value;

use super::{list_ids, ProfileError};

/// One item of the metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMeta {
    pub title: String,
    /// The fields after the title, non-empty ones joined by `"; "` (may be empty).
    pub description: String,
}

/// The lines of a text file with their 1-based numbers, blank ones skipped (a UTF-8 BOM
/// and `\r\n` endings are accepted).
fn lines(path: &Path) -> Result<Vec<(usize, String)>, ProfileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProfileError::Input(format!("{}: {e}", path.display())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

/// Lines `id<TAB>rest` into a table indexed by id, every id from 0 to the largest present.
/// Errors name the file and line of a malformed line or a repeated id, and the first ids
/// that have no line.
fn id_table(path: &Path) -> Result<Vec<String>, ProfileError> {
    let mut rows: Vec<(usize, String, usize)> = Vec::new();
    for (no, line) in lines(path)? {
        let bad = |why: String| ProfileError::Input(format!("{}:{no}: {why}", path.display()));
        let (id, rest) = line
            .split_once('\t')
            .ok_or_else(|| bad("expected `id<TAB>text`".into()))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{id}` is not an id")))?;
        rows.push((id as usize, rest.to_string(), no));
    }
    rows.sort_by_key(|r| (r.0, r.2));
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ProfileError::Input(format!(
            "{}:{}: id {} appears twice (first on line {})",
            path.display(),
            w[1].2,
            w[1].0,
            w[0].2
        )));
    }
    let n = rows.last().map_or(0, |r| r.0 + 1);
    if rows.len() < n {
        let mut gaps = Vec::new();
        let mut next = 0;
        for r in &rows {
            gaps.extend((next..r.0).take(10).map(|i| i as u32));
            next = r.0 + 1;
            if gaps.len() >= 10 {
                break;
            }
        }
        return Err(ProfileError::Input(format!(
            "{}: {} of the ids 0..{n} have no line (first: {}); every id up to the largest \
             needs one",
            path.display(),
            n - rows.len(),
            list_ids(&gaps, 10)
        )));
    }
    Ok(rows.into_iter().map(|r| r.1).collect())
}

/// The item metadata file, `id<TAB>title<TAB>free text…` (several tab-separated fields may
/// follow the title; a title is required). Row i = item i; every id up to the largest
/// needs a line. The description joins the non-empty fields of `columns` (file columns,
/// 0 = the id), in that order, or of every column after the title when it is empty; a
/// line without one of those columns just has no text there.
pub fn read_items(path: &Path, columns: &[usize]) -> Result<Vec<ItemMeta>, ProfileError> {
    let rows = id_table(path)?;
    rows.into_iter()
        .enumerate()
        .map(|(id, rest)| {
            // `rest` starts at column 1 (the title).
            let fields: Vec<&str> = rest.split('\t').map(str::trim).collect();
            let title = fields.first().copied().unwrap_or("").to_string();
            if title.is_empty() {
                return Err(ProfileError::Input(format!(
                    "{}: item {id} has an empty title",
                    path.display()
                )));
            }
            let chosen: Vec<&str> = if columns.is_empty() {
                fields[1..].to_vec()
            } else {
                columns
                    .iter()
                    .filter_map(|&c| c.checked_sub(1).and_then(|i| fields.get(i)).copied())
                    .collect()
            };
            let description = chosen
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            Ok(ItemMeta { title, description })
        })
        .collect()
}

/// An `id<TAB>text` file (profiles) into a table indexed by id. Every id up to the largest
/// must have a line whose text is not blank; errors name the file and line, or the first
/// ids without a text.
pub fn read_text_table(path: &Path) -> Result<Vec<String>, ProfileError> {
    let rows = id_table(path)?;
    let empty: Vec<u32> = rows
        .iter()
        .enumerate()
        .filter(|(_, t)| t.trim().is_empty())
        .map(|(i, _)| i as u32)
        .collect();
    if !empty.is_empty() {
        return Err(ProfileError::Input(format!(
            "{}: {} ids have an empty text (ids {}); every id needs one",
            path.display(),
            empty.len(),
            list_ids(&empty, 10)
        )));
    }
    if rows.is_empty() {
        return Err(ProfileError::Input(format!(
            "{}: no `id<TAB>text` lines",
            path.display()
        )));
    }
    Ok(rows)
}

/// The profile in an answer: the `summarization` of the first JSON object that has a
/// non-empty one (code fences and prose around it are ignored), on one line.
pub fn parse_summary(content: &str) -> Result<String, String> {
    let mut objects = 0;
    for map in crate::llm::json_objects(content) {
        objects += 1;
        if let Some(Value::String(s)) = map.get("summarization") {
            let s = one_line(s);
            if !s.is_empty() {
                return Ok(s);
            }
        }
    }
    Err(if objects == 0 {
        "no JSON object".into()
    } else {
        "no JSON object with a non-empty \"summarization\" string".into()
    })
}

/// `text` on one line: runs of whitespace (newlines and tabs included) become one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of `text`, marked with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// `id<TAB>text` lines, row i = id i.
pub(crate) fn texts_tsv(texts: &[String]) -> String {
    let mut s = String::with_capacity(texts.iter().map(|t| t.len() + 8).sum());
    for (id, t) in texts.iter().enumerate() {
        s.push_str(&format!("{id}\t{}\n", one_line(t)));
    }
    s
}
