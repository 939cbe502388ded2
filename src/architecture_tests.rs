//! The layering rules of the README's architecture section, checked on the source: which
//! top-level module imports which (`crate::…` paths outside test code), no circle among them,
//! and the edges the rules forbid. A new import that breaks a rule fails here with its file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports the layering forbids, with the reason each one is kept out.
const FORBIDDEN: [(&str, &str, &str); 9] = [
    ("actors", "http", "the gateway is above the actors; they reach it through messages"),
    ("cluster", "actors", "the cluster carries messages between nodes; it does not run actors"),
    ("cluster", "http", "the cluster is below the gateway"),
    ("transcode", "storage", "the transcoder works on bytes it is given, in the sandbox"),
    ("audio_copy", "storage", "the audio copy works on bytes it is given, in the sandbox"),
    ("node", "actors", "a node is what the actors are built from"),
    ("node", "http", "a node is what the gateway is built from"),
    ("node", "cluster", "a node is what the cluster links"),
    ("client", "storage", "the client knows the HTTP API, not the server's storage"),
];

/// Top-level module -> the top-level modules it imports.
type Graph = BTreeMap<String, BTreeSet<(String, PathBuf)>>;

#[test]
fn no_module_imports_one_it_must_not() {
    let graph = import_graph();
    let broken: Vec<String> = FORBIDDEN
        .iter()
        .flat_map(|(from, to, why)| {
            let edges = graph.get(*from).into_iter().flatten();
            edges
                .filter(move |(target, _)| target == to)
                .map(move |(_, file)| format!("{} imports {to}: {why}", file.display()))
        })
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
    assert!(graph["actors"].iter().any(|(to, _)| to == "node"), "the check reads the imports");
}

#[test]
fn no_circle_of_imports_between_modules() {
    let graph = import_graph();
    let modules: BTreeMap<&str, BTreeSet<&str>> =
        graph.iter().map(|(from, edges)| (from.as_str(), edges.iter().map(|(to, _)| to.as_str()).collect())).collect();
    for start in modules.keys() {
        if let Some(circle) = path_back(&modules, start) {
            panic!("an import circle: {}", circle.join(" -> "));
        }
    }
}

/// A path of imports from `start` back to itself, if there is one (depth-first).
fn path_back<'a>(modules: &BTreeMap<&'a str, BTreeSet<&'a str>>, start: &'a str) -> Option<Vec<&'a str>> {
    let mut stack = vec![vec![start]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last().expect("paths are never empty");
        for &next in modules.get(last).into_iter().flatten() {
            if next == start {
                return Some([&path[..], &[start]].concat());
            }
            if seen.insert(next) {
                stack.push([&path[..], &[next]].concat());
            }
        }
    }
    None
}

/// Every top-level module's imports of other top-level modules, from the files under `src/`
/// (test-only files and `#[cfg(test)]` modules left out: a test may reach across).
fn import_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("under src").to_path_buf();
        let Some(module) = top_module(&relative) else { continue };
        let code = without_tests(&without_comments(&std::fs::read_to_string(&file).expect("readable")));
        let imports = graph.entry(module.clone()).or_default();
        for target in crate_paths(&code) {
            if target != module && src_has_module(&src, &target) {
                imports.insert((target, relative.clone()));
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file belongs to; None for the crate roots and test-only files.
fn top_module(relative: &Path) -> Option<String> {
    let name = relative.file_name()?.to_str()?;
    if name.ends_with("_tests.rs") || name == "test_media.rs" || matches!(name, "lib.rs" | "main.rs") {
        return None;
    }
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

fn src_has_module(src: &Path, name: &str) -> bool {
    src.join(format!("{name}.rs")).exists() || src.join(name).join("mod.rs").exists()
}

/// The first segment after every `crate::`, including each item of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else {
            found.insert(identifier(rest).to_owned());
        }
    }
    found
}

/// The first identifier of each item at the top level of a `{…}` use group.
fn group_heads(group: &str) -> Vec<String> {
    let (mut depth, mut heads, mut at_item_start) = (0, Vec::new(), true);
    for (index, character) in group.char_indices() {
        match character {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                heads.push(identifier(&group[index..]).to_owned());
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn identifier(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The code without `//` and `/* */` comments (strings that contain them do not occur in an
/// import, and at worst add an edge that the rules then show).
fn without_comments(code: &str) -> String {
    let mut kept = String::with_capacity(code.len());
    let mut rest = code;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else {
            let next = rest.chars().next().expect("not empty");
            kept.push(next);
            rest = &rest[next.len_utf8()..];
        }
    }
    kept
}

/// The code without its `#[cfg(test)] mod name { … }` blocks.
fn without_tests(code: &str) -> String {
    let mut kept = code.to_owned();
    while let Some(start) = kept.find("#[cfg(test)]") {
        let after = &kept[start..];
        let block = after.find('{').filter(|&open| after[..open].contains("mod ") && !after[..open].contains(';'));
        let end = match block {
            Some(open) => matching_brace(after, open).map_or(kept.len(), |close| start + close + 1),
            // `#[cfg(test)] mod name;` or an item: drop the attribute and its line.
            None => after.find('\n').map_or(kept.len(), |end| start + end),
        };
        kept.replace_range(start..end, "");
    }
    kept
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (index, character) in text[open..].char_indices() {
        match character {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + index);
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn the_reader_finds_grouped_and_plain_imports_and_skips_comments_and_tests() {
    let code = "use crate::{a::B, c, d::{e, f}};\nuse crate::g::H; // crate::x\nfn f() { crate::i::j(); }\n\
                #[cfg(test)]\nmod tests { use crate::t; }\n";
    let found = crate_paths(&without_tests(&without_comments(code)));
    assert_eq!(found, ["a", "c", "d", "g", "i"].map(String::from).into_iter().collect());
}
