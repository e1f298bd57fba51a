//! The layers of `src/` hold: a module uses only the modules below it in the list at the
//! top of `src/lib.rs`. Read from the source text: every `crate::` path of every file
//! (`use` lines, grouped `use crate::{a, b}` across lines, paths inside code and tests),
//! comments aside.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One `crate::` path: where it is written, and the two top-level modules it joins.
#[derive(Debug, Clone, PartialEq)]
struct Use {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The layer list of `lib.rs`'s `## Layers` section (top first), and its root
/// re-exports (`pub use error::Error;` makes `crate::Error` a use of `error`).
fn layers(lib: &str) -> (Vec<String>, HashMap<String, String>) {
    let mut order = Vec::new();
    let mut in_block = false;
    let mut seen_heading = false;
    for line in lib.lines() {
        let text = line.trim_start_matches("//!").trim();
        if text == "## Layers" {
            seen_heading = true;
        } else if seen_heading && text.starts_with("```") {
            if in_block {
                break;
            }
            in_block = true;
        } else if in_block && let Some(name) = text.split_whitespace().next() {
            order.push(name.to_owned());
        }
    }
    let reexports = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
        .filter_map(|l| {
            let path = l.trim_end_matches(';');
            let (module, name) = path.split_once("::")?;
            Some((name.rsplit("::").next()?.to_owned(), module.to_owned()))
        })
        .collect();
    (order, reexports)
}

/// The top-level module a file under `src/` belongs to (`None` for the crate roots).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::` path of one file's text, as the top-level names it names.
fn uses_in(file: &str, from: &str, text: &str, reexports: &HashMap<String, String>) -> Vec<Use> {
    // Comments out (a `//` that starts a line's text: doc and plain comments alike).
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut push = |line: usize, name: &str| {
        let to = reexports.get(name).map_or(name, String::as_str);
        if !to.is_empty() && to != from {
            out.push(Use {
                file: file.to_owned(),
                line: line + 1,
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
    };
    for (n, line) in lines.iter().enumerate() {
        let mut rest = *line;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` and `auditq_crate::` are not this crate's paths.
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if rest.starts_with('{') {
                // A group, possibly over several lines: its top-level items.
                let mut group = String::new();
                let mut depth = 0usize;
                'gather: for l in std::iter::once(rest).chain(lines[n + 1..].iter().copied()) {
                    for c in l.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break 'gather;
                                }
                            }
                            _ if depth == 1 => group.push(c),
                            _ => {}
                        }
                    }
                    group.push(',');
                }
                for item in group.split(',') {
                    push(n, ident(item.trim()));
                }
            } else {
                push(n, ident(rest));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The uses that break the order: each names its file, line, and both modules.
fn upward(order: &[String], uses: &[Use]) -> Vec<String> {
    let rank = |m: &str| order.iter().position(|o| o == m);
    uses.iter()
        .filter_map(|u| match (rank(&u.from), rank(&u.to)) {
            (Some(from), Some(to)) if to > from => None,
            (Some(_), Some(_)) => Some(format!(
                "{}:{}: `{}` uses `crate::{}`, which is above it in src/lib.rs's layers",
                u.file, u.line, u.from, u.to
            )),
            (None, _) => Some(format!(
                "{}:{}: `{}` is not in src/lib.rs's layer list",
                u.file, u.line, u.from
            )),
            (_, None) => Some(format!(
                "{}:{}: `crate::{}` is not in src/lib.rs's layer list",
                u.file, u.line, u.to
            )),
        })
        .collect()
}

fn src_uses(src: &Path, reexports: &HashMap<String, String>) -> Vec<Use> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut uses = Vec::new();
    for path in files {
        let rel = path.strip_prefix(src).unwrap();
        let Some(from) = module_of(rel) else { continue };
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = format!("src/{}", rel.display());
        uses.extend(uses_in(&shown, &from, &text, reexports));
    }
    uses
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let (order, reexports) = layers(&lib);
    assert!(order.len() >= 20, "the layer list of src/lib.rs: {order:?}");
    // Every module the crate declares is in the list, once.
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            let n = order.iter().filter(|o| *o == name).count();
            assert_eq!(n, 1, "`{name}` is in src/lib.rs's layer list {n} times");
        }
    }
    let uses = src_uses(&src, &reexports);
    // The reader sees the paths it must (it is not vacuously passing).
    assert!(uses.len() > 300, "{} uses", uses.len());
    assert!(
        uses.iter()
            .any(|u| u.from == "query" && u.to == "archive" && u.file == "src/query/mod.rs")
    );
    let bad = upward(&order, &uses);
    assert!(bad.is_empty(), "imports that point up:\n{}", bad.join("\n"));
}

#[test]
fn a_planted_upward_import_is_named() {
    let (order, reexports) = layers(
        "//! ## Layers\n//!\n//! ```text\n//! cli   top\n//! query mid\n//! archive bottom\n//! ```\npub use query::Answer;\n",
    );
    assert_eq!(order, ["cli", "query", "archive"]);
    let text = "//! uses crate::cli in a comment, which is no use\n\
                use crate::archive::Archive;\n\
                use crate::{\n    archive::read,\n    cli::Args,\n};\n\
                fn f() { let _ = crate::Answer::new(); $crate::cli::x(); }\n";
    let uses = uses_in("src/archive/x.rs", "archive", text, &reexports);
    let bad = upward(&order, &uses);
    assert_eq!(
        bad,
        [
            "src/archive/x.rs:3: `archive` uses `crate::cli`, which is above it in src/lib.rs's layers",
            "src/archive/x.rs:7: `archive` uses `crate::query`, which is above it in src/lib.rs's layers",
        ]
    );
    // Downward uses pass.
    let down = uses_in(
        "src/cli.rs",
        "cli",
        "use crate::query::x;\nuse crate::archive;\n",
        &reexports,
    );
    assert!(upward(&order, &down).is_empty());
}

/// README's "Layout" is a map of the tree: every path it names exists (a file named in
/// a directory's row, in that directory), and every module of `src/lib.rs` is on it.
#[test]
fn the_readme_map_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = &readme[readme.find("\n## Layout\n").expect("a Layout section")..];
    let layout = match layout[1..].find("\n## ") {
        Some(end) => &layout[..end + 1],
        None => layout,
    };
    let ticked = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut missing = Vec::new();
    for line in layout.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        // A directory's row: the files it names after it are in that directory.
        let dir = match cells.first().map(|c| ticked(c)) {
            Some(first) if first.len() == 1 && first[0].ends_with('/') => Some(first[0].clone()),
            _ => None,
        };
        for path in ticked(line) {
            let full = if path.contains('/') {
                root.join(&path)
            } else if let (Some(d), true) = (&dir, path.ends_with(".rs")) {
                root.join(d).join(&path)
            } else {
                continue;
            };
            if !full.exists() {
                missing.push(path);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README's Layout names paths that do not exist: {missing:?}"
    );
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            let (file, dir) = (format!("`src/{name}.rs`"), format!("`src/{name}/`"));
            assert!(
                layout.contains(&file) || layout.contains(&dir),
                "README's Layout does not name the module `{name}`"
            );
        }
    }
}
