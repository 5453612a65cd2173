//! The layering, checked: module dependencies in `shared/src` and `local/src` run one way (no
//! import cycle between files), the domain depends on nothing, and no use case or edge (HTTP,
//! consumer) imports an adapter or the start-up wiring. Read from the sources, so adding a cycle
//! or a forbidden `use` fails this test; the checker's own tests feed it a cycle and a forbidden
//! import to show that it can fail.
//!
//! Also checked here: every Rust file of the workspace opens with a `//!` comment (saying why the
//! file exists, the house rule; a test can only see that something is said).
//!
//! A file's dependencies are the `crate::…`, `super::…` and `self::…` paths in its code outside
//! `#[cfg(test)]` modules (unit tests may use any adapter). A `mod.rs` naming its own children
//! (declaring and re-exporting them) is not a dependency: that is how a folder shows its contents.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules of the library each top-level module may use. Anything not listed is
/// refused; `startup` is the composition root and may use everything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("functions", &[]),
    // Settings parse into domain values (a projection version) where they are read.
    ("configuration", &["domain"]),
    ("telemetry", &[]),
    // Spans across the asynchronous hops: ambient like `tracing` itself, so every layer but the
    // domain may ask it for the current trace position or hang a span under another one.
    ("traces", &["domain", "telemetry"]),
    ("application", &["domain", "functions", "traces"]),
    (
        "http",
        &["domain", "application", "functions", "telemetry", "traces"],
    ),
    (
        "consumer",
        &["domain", "application", "functions", "telemetry", "traces"],
    ),
    // The scheduled edge of relay-outbox: a relay run within its deadline, and its metrics.
    (
        "relay",
        &["domain", "application", "functions", "telemetry", "traces"],
    ),
    (
        "adapters",
        &[
            "domain",
            "application",
            "functions",
            "consumer",
            "configuration",
            "traces",
        ],
    ),
    (
        "startup",
        &[
            "domain",
            "application",
            "functions",
            "adapters",
            "configuration",
            "telemetry",
            "http",
            "consumer",
            "traces",
        ],
    ),
];

/// A module: its path from the crate root (`["http", "request"]`), empty for the root.
type ModulePath = Vec<String>;

/// The file modules of a crate and, for each, the modules its code refers to.
#[derive(Debug, Default)]
struct Crate {
    dependencies: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

impl Crate {
    /// Reads every `.rs` file under `src` (whose root file is `root_file`, `lib.rs` or `main.rs`).
    fn read(src: &Path) -> Crate {
        let mut files = Vec::new();
        collect_files(src, &mut files);
        let sources: Vec<(ModulePath, String)> = files
            .iter()
            .map(|file| {
                let text = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                (module_of(src, file), text)
            })
            .collect();
        Crate::from_sources(&sources)
    }

    fn from_sources(sources: &[(ModulePath, String)]) -> Crate {
        let modules: BTreeSet<ModulePath> = sources.iter().map(|(m, _)| m.clone()).collect();
        let mut dependencies = BTreeMap::new();
        for (module, text) in sources {
            let code = without_tests(&without_comments(text));
            let mut targets = BTreeSet::new();
            for path in referenced_paths(&code) {
                let Some(absolute) = absolute(module, &path) else {
                    continue;
                };
                let target = longest_module(&modules, &absolute);
                // A folder naming its own contents, or a file naming itself, is no dependency.
                if target.starts_with(module) {
                    continue;
                }
                targets.insert(target);
            }
            dependencies.insert(module.clone(), targets);
        }
        Crate { dependencies }
    }

    /// Every cycle between file modules (each as the modules of one strongly connected component).
    fn cycles(&self) -> Vec<Vec<ModulePath>> {
        strongly_connected(&self.dependencies)
            .into_iter()
            .filter(|component| component.len() > 1)
            .collect()
    }

    /// Every dependency between top-level modules that [`ALLOWED`] does not allow.
    fn layering_violations(&self) -> Vec<String> {
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
        let mut violations = Vec::new();
        for (module, targets) in &self.dependencies {
            let Some(layer) = module.first() else {
                continue;
            };
            for target in targets {
                let Some(target_layer) = target.first() else {
                    violations.push(format!("{} uses the crate root", module.join("::")));
                    continue;
                };
                if target_layer == layer {
                    continue;
                }
                let permitted = allowed
                    .get(layer.as_str())
                    .is_some_and(|may| may.contains(&target_layer.as_str()));
                if !permitted {
                    violations.push(format!(
                        "{} uses {} ({layer} may not depend on {target_layer})",
                        module.join("::"),
                        target.join("::")
                    ));
                }
            }
        }
        violations
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The text with `//` comments blanked (doc comments name paths without depending on them).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.trim_start().starts_with("//") {
            true => "",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text without its `#[cfg(test)]` items: the attribute and the braced item that follows.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(open) = after.find(['{', ';']) else {
            rest = "";
            break;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let end = matching_brace(after, open);
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// The index just past the brace that closes the one at `open`, skipping string and char literals.
fn matching_brace(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' if i + 2 < bytes.len() && (bytes[i + 2] == b'\'' || bytes[i + 1] == b'\\') => {
                i += if bytes[i + 1] == b'\\' { 3 } else { 2 };
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Every path starting with `crate`, `super` or `self` in the code, with `use` groups expanded:
/// `use super::{a, b::C}` gives `super::a` and `super::b::C`.
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut paths = Vec::new();
    for start in ["crate::", "super::", "self::"]
        .iter()
        .flat_map(|prefix| code.match_indices(prefix).map(|(i, _)| i))
    {
        let preceded_by_ident = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || (bytes[start - 1] == b':' && start > 1 && bytes[start - 2] == b':'));
        if preceded_by_ident {
            continue;
        }
        let mut cursor = start;
        paths.extend(use_tree(code, &mut cursor, Vec::new()));
    }
    paths
}

/// Parses a use tree at `cursor`: `a::b::{c, d::e}` or `a::b::*`, prefixed with `prefix`.
fn use_tree(code: &str, cursor: &mut usize, prefix: Vec<String>) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut path = prefix;
    loop {
        skip_spaces(bytes, cursor);
        let begin = *cursor;
        while *cursor < bytes.len()
            && (bytes[*cursor].is_ascii_alphanumeric() || bytes[*cursor] == b'_')
        {
            *cursor += 1;
        }
        if *cursor > begin {
            path.push(code[begin..*cursor].to_owned());
        } else if *cursor < bytes.len() && bytes[*cursor] == b'{' {
            *cursor += 1;
            let mut all = Vec::new();
            loop {
                all.extend(use_tree(code, cursor, path.clone()));
                skip_spaces(bytes, cursor);
                match bytes.get(*cursor) {
                    Some(b',') => {
                        *cursor += 1;
                        skip_spaces(bytes, cursor);
                        if bytes.get(*cursor) == Some(&b'}') {
                            *cursor += 1;
                            return all;
                        }
                    }
                    Some(b'}') => {
                        *cursor += 1;
                        return all;
                    }
                    _ => return all,
                }
            }
        }
        // `*` and anything else end the path.
        if code[*cursor..].starts_with("::") {
            *cursor += 2;
            continue;
        }
        return vec![path];
    }
}

fn skip_spaces(bytes: &[u8], cursor: &mut usize) {
    while *cursor < bytes.len() && bytes[*cursor].is_ascii_whitespace() {
        *cursor += 1;
    }
}

/// A path made absolute from `module`: `crate::a` → `a`, `super::b` → the parent's `b`.
fn absolute(module: &ModulePath, path: &[String]) -> Option<ModulePath> {
    let mut segments = path.iter().peekable();
    let mut base: ModulePath = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("self") => {
            segments.next();
            module.clone()
        }
        _ => module.clone(),
    };
    while segments.peek().map(|s| s.as_str()) == Some("super") {
        segments.next();
        base.pop()?;
    }
    base.extend(segments.cloned());
    Some(base)
}

/// The deepest module of `modules` that `path` starts with (at worst the crate root).
fn longest_module(modules: &BTreeSet<ModulePath>, path: &[String]) -> ModulePath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// Tarjan's algorithm: the strongly connected components of the dependency graph.
fn strongly_connected(graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<&'g ModulePath, usize>,
        low: BTreeMap<&'g ModulePath, usize>,
        stack: Vec<&'g ModulePath>,
        on_stack: BTreeSet<&'g ModulePath>,
        components: Vec<Vec<ModulePath>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g ModulePath) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let Some((next, _)) = state.graph.get_key_value(next) else {
                continue;
            };
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            state.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.components
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn describe(cycles: &[Vec<ModulePath>]) -> String {
    cycles
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_library_has_no_import_cycle() {
    let library = Crate::read(&workspace().join("shared/src"));
    assert!(library.dependencies.len() > 40, "the sources were read");
    let cycles = library.cycles();
    assert!(cycles.is_empty(), "import cycles: {}", describe(&cycles));
}

#[test]
fn the_local_stack_has_no_import_cycle() {
    let local = Crate::read(&workspace().join("local/src"));
    let cycles = local.cycles();
    assert!(cycles.is_empty(), "import cycles: {}", describe(&cycles));
}

#[test]
fn no_use_case_or_edge_imports_an_adapter_and_the_domain_imports_nothing() {
    let library = Crate::read(&workspace().join("shared/src"));
    let violations = library.layering_violations();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

fn sources(files: &[(&str, &str)]) -> Vec<(ModulePath, String)> {
    files
        .iter()
        .map(|(module, text)| {
            let path = match *module {
                "" => Vec::new(),
                m => m.split("::").map(str::to_owned).collect(),
            };
            (path, (*text).to_owned())
        })
        .collect()
}

#[test]
fn the_checker_finds_a_cycle_between_siblings_and_ignores_tests_and_facades() {
    let graph = Crate::from_sources(&sources(&[
        ("", "pub mod http;"),
        (
            "http",
            "mod problem; mod request; pub use request::{json_body, X};",
        ),
        ("http::problem", "use super::request::RequestMeta;"),
        (
            "http::request",
            "use super::{problem::HttpError, Y};\n#[cfg(test)]\nmod tests { use crate::http::problem; fn f() { let _ = \"}\"; } }",
        ),
    ]));
    let cycles = graph.cycles();
    assert_eq!(describe(&cycles), "http::request <-> http::problem");

    let without = Crate::from_sources(&sources(&[
        ("", "pub mod http;"),
        (
            "http",
            "mod problem; mod request; pub use request::json_body;",
        ),
        ("http::problem", "pub struct HttpError;"),
        (
            "http::request",
            "use super::problem::HttpError;\n#[cfg(test)]\nmod tests { use super::super::request; }",
        ),
    ]));
    assert!(without.cycles().is_empty());
}

#[test]
fn the_checker_refuses_an_edge_importing_an_adapter() {
    let graph = Crate::from_sources(&sources(&[
        ("", "pub mod adapters; pub mod consumer; pub mod domain;"),
        ("adapters", "pub mod memory;"),
        ("adapters::memory", "pub trait BatchHandler {}"),
        ("domain", "pub struct Activity;"),
        (
            "consumer",
            "use crate::domain::Activity;\nfn f() { let _ = crate::adapters::memory::BatchHandler::x(); }",
        ),
    ]));
    assert_eq!(
        graph.layering_violations(),
        ["consumer uses adapters::memory (consumer may not depend on adapters)"]
    );
}

/// The folders whose Rust files must each open with a `//!` comment saying why the file exists.
const COMMENTED_FOLDERS: &[&str] = &["shared", "local", "functions", "tests", "bench", "admin"];

/// The files (relative to `root`) of `folders` whose first line is not a `//!` comment with
/// something in it. Build output (`target/`) is not source.
fn files_without_opening_comment(root: &Path, folders: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    for folder in folders {
        collect_files(&root.join(folder), &mut files);
    }
    let mut missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let relative = file.strip_prefix(root).unwrap();
            !relative.components().any(|c| c.as_os_str() == "target")
        })
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let first = text.lines().next().unwrap_or_default();
            first
                .strip_prefix("//!")
                .is_none_or(|said| said.trim().is_empty())
        })
        .map(|file| file.strip_prefix(root).unwrap().display().to_string())
        .collect();
    missing.sort();
    missing
}

#[test]
fn every_source_file_opens_with_a_comment_saying_why_it_exists() {
    let missing = files_without_opening_comment(&workspace(), COMMENTED_FOLDERS);
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` comment saying why they exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_opening_comment_check_finds_a_file_without_one() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("opening-comments");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("src/nested")).unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "//! Why the crate exists.\nmod nested;\n",
    )
    .unwrap();
    std::fs::write(root.join("src/nested/mod.rs"), "// A plain comment.\n").unwrap();
    std::fs::write(root.join("src/nested/empty.rs"), "//!\nfn f() {}\n").unwrap();
    std::fs::write(root.join("src/nested/late.rs"), "\n//! Too late.\n").unwrap();
    assert_eq!(
        files_without_opening_comment(&root, &["src"]),
        [
            "src/nested/empty.rs",
            "src/nested/late.rs",
            "src/nested/mod.rs"
        ]
    );
}
