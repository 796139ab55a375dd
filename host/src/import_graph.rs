//! The host's top-level modules (`config`, `data`, `augment`, …) import one another in no
//! circle: the test below reads every `crate::…` path of their non-test code into a graph
//! and fails naming the first circle it finds, so that a new one fails `cargo test`.
//!
//! Only top-level modules are nodes: a submodule and its parent name each other by design
//! (re-exports one way, `super::` the other). Test modules are left out; nothing imports
//! them, so they cannot close a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module → the other top-level modules its non-test code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The host's import graph, read from `host/src`.
fn host_graph() -> Result<Graph, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = code_of(&read(&src.join("lib.rs"))?);
    let modules = declared_modules(&lib);
    let mut graph = Graph::new();
    for name in &modules {
        let mut named = BTreeSet::new();
        for file in module_files(&src, name)? {
            named.extend(crate_paths(&read(&file)?));
        }
        named.retain(|m| m != name && modules.contains(m));
        graph.insert(name.clone(), named);
    }
    Ok(graph)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The files of top-level module `name`: its own, then those of every submodule declared
/// outside `#[cfg(test)]`.
fn module_files(src: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut pending = vec![mod_file(src, name)?];
    while let Some((file, children_dir)) = pending.pop() {
        for child in declared_modules(&code_of(&read(&file)?)) {
            pending.push(mod_file(&children_dir, &child)?);
        }
        files.push(file);
    }
    Ok(files)
}

/// `dir/name.rs` or `dir/name/mod.rs`, with the folder its own submodules live in.
fn mod_file(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let flat = dir.join(format!("{name}.rs"));
    let nested = dir.join(name).join("mod.rs");
    match (flat.is_file(), nested.is_file()) {
        (true, _) => Ok((flat, dir.join(name))),
        (false, true) => Ok((nested, dir.join(name))),
        _ => Err(format!(
            "module `{name}`: neither {} nor {} exists",
            flat.display(),
            nested.display()
        )),
    }
}

/// The `mod NAME;` declarations of `code` (already stripped of test code), in order.
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<&str> = code.split_whitespace().collect();
    for pair in words.windows(2) {
        if pair[0] == "mod" {
            if let Some(name) = pair[1].strip_suffix(';') {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The first segment of every `crate::` path in the non-test code of `text`, including the
/// members of a `crate::{a, b::c}` group.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code = code_of(text);
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let preceded_by_ident = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if preceded_by_ident {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => out.extend(group_heads(group)),
            None => out.extend(ident_at(rest)),
        }
    }
    out
}

/// The first identifier of each member of a `{…}` group, up to its closing brace.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut member_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => member_start = true,
            c if member_start && !c.is_whitespace() => {
                member_start = false;
                heads.extend(ident_at(&group[i..]));
            }
            _ => {}
        }
    }
    heads
}

fn ident_at(text: &str) -> Option<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_string())
}

/// `text` with comments, string and character literals blanked and every item under
/// `#[cfg(test)]` removed, so that only code that is compiled into the library remains.
fn code_of(text: &str) -> String {
    strip_test_items(&blank_literals(text))
}

/// Comments and the contents of string and character literals replaced by spaces (so that
/// a `{` or `crate::` inside them is not read as code).
fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let skip = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            block_comment_len(rest)
        } else if rest[0] == '"' {
            quoted_len(rest)
        } else if let Some(n) = raw_string_len(rest, i > 0 && is_ident(chars[i - 1])) {
            n
        } else if let Some(n) = char_literal_len(rest) {
            n
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        out.extend(
            rest[..skip]
                .iter()
                .map(|&c| if c == '\n' { '\n' } else { ' ' }),
        );
        i += skip;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn block_comment_len(rest: &[char]) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while i < rest.len() {
        if rest[i..].starts_with(&['/', '*']) {
            depth += 1;
            i += 2;
        } else if rest[i..].starts_with(&['*', '/']) {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    rest.len()
}

/// Length of a `"…"` literal at the start of `rest`, escapes included.
fn quoted_len(rest: &[char]) -> usize {
    let mut i = 1;
    while i < rest.len() {
        match rest[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    rest.len()
}

/// Length of an `r"…"` / `r#"…"#` (or `br…`) literal at the start of `rest`; `None` when
/// there is none (`after_ident`: the `r` ends an identifier such as `for`).
fn raw_string_len(rest: &[char], after_ident: bool) -> Option<usize> {
    let start = match rest {
        ['b', 'r', ..] => 2,
        ['r', ..] => 1,
        _ => return None,
    };
    if after_ident {
        return None;
    }
    let hashes = rest[start..].iter().take_while(|&&c| c == '#').count();
    if rest.get(start + hashes) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
    let body = start + hashes + 1;
    (body..rest.len())
        .find(|&j| rest[j..].starts_with(&close))
        .map(|j| j + close.len())
        .or(Some(rest.len()))
}

/// Length of a character literal (`'{'`, `'\n'`, `'\u{7d}'`) at the start of `rest`;
/// `None` for a lifetime (`'a`).
fn char_literal_len(rest: &[char]) -> Option<usize> {
    match rest {
        ['\'', '\\', ..] => rest[2..].iter().position(|&c| c == '\'').map(|p| p + 3),
        ['\'', _, '\'', ..] => Some(3),
        _ => None,
    }
}

/// `code` without the items that follow a `#[cfg(test)]` attribute (a `mod tests { … }`
/// block, a `mod props;` declaration, a test-only function).
fn strip_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + MARK.len()..]);
    }
    out.push_str(rest);
    out
}

/// What follows the item at the start of `code`: past its `;` or its `{ … }` block,
/// whichever comes first outside brackets (further attributes included).
fn skip_item(code: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => return &code[i + 1..],
            '{' if depth == 0 => return past_block(&code[i..]),
            _ => {}
        }
    }
    ""
}

/// What follows the `{ … }` block at the start of `code`.
fn past_block(code: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// The first circle of `graph`, as its modules in import order with the first repeated
/// at the end; `None` when there is none.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    let mut done = BTreeSet::new();
    for start in graph.keys() {
        let mut path = Vec::new();
        if let Some(circle) = circle_from(graph, start, &mut path, &mut done) {
            return Some(circle);
        }
    }
    None
}

/// Depth-first from `node` with `path` the modules above it; `done` holds the modules
/// from which no circle is reachable.
fn circle_from(
    graph: &Graph,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(pos) = path.iter().position(|m| m == node) {
        let mut circle = path[pos..].to_vec();
        circle.push(node.to_string());
        return Some(circle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(circle) = circle_from(graph, next, path, done) {
            return Some(circle);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn no_import_circle_between_the_host_modules() {
    let graph = host_graph().unwrap();
    assert!(graph.len() >= 15, "{graph:?}");
    assert!(
        graph["data"].contains("config"),
        "imports are read: {graph:?}"
    );
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "import circle between host modules: {} (graph: {graph:?})",
            circle.join(" → ")
        );
    }
}

#[test]
fn config_depends_on_no_other_host_module() {
    let graph = host_graph().unwrap();
    assert_eq!(graph["config"], BTreeSet::new(), "{graph:?}");
}

#[test]
fn a_circle_is_found_and_named() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")];
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(find_circle(&graph).unwrap().join(" → "), "a → b → c → a");
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_circle(&graph), None);
}

#[test]
fn paths_in_literals_comments_and_test_code_are_not_imports() {
    let text = r##"
        use crate::{data::{Pairs, Profiles}, llm};
        use crate::config::Config; // crate::commented
        /* crate::blocked { */
        const S: &str = "crate::quoted } {";
        const R: &str = r#"crate::raw "#;
        const C: char = '{';
        fn f<'a>(x: &'a str) -> &'a str { crate::trainer::run(x) }
        #[cfg(test)]
        mod tests {
            use crate::compare;
            fn g() { let _ = '}'; }
        }
        #[cfg(test)]
        mod props;
        mod sections;
        use mycrate::other;
    "##;
    let found: Vec<String> = crate_paths(text).into_iter().collect();
    assert_eq!(found, ["config", "data", "llm", "trainer"]);
    assert_eq!(declared_modules(&code_of(text)), ["sections"]);
}
