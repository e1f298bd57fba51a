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

/// Every function of `src/` and its length in lines (its `fn` line to its closing
/// brace), read with comments, strings and character literals skipped.
fn function_lengths(text: &str) -> Vec<(String, usize, usize)> {
    let b = text.as_bytes();
    let (mut i, mut line, mut depth) = (0, 1usize, 0usize);
    // Functions whose body is open: name, first line, depth inside the body.
    let mut open: Vec<(String, usize, usize)> = Vec::new();
    // A `fn NAME` seen, its body not yet opened.
    let mut pending: Option<(String, usize)> = None;
    let mut out = Vec::new();
    let word = |k: usize| {
        b.get(k)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'r' if !word(i.wrapping_sub(1)) && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                // A raw string: r"…", r#"…"#.
                let hashes = b[i + 1..].iter().take_while(|&&h| h == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let close: Vec<u8> = std::iter::once(b'"')
                        .chain(std::iter::repeat_n(b'#', hashes))
                        .collect();
                    i += 2 + hashes;
                    while i < b.len() && !b[i..].starts_with(&close) {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                    i += close.len();
                    continue;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    line += usize::from(b[i] == b'\n');
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            // A character literal ('x', '\n', '{'); a lifetime ('a) is left alone.
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'f' if !word(i.wrapping_sub(1)) && b[i..].starts_with(b"fn ") => {
                let name: String = text[i + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                pending = Some((name, line));
            }
            b';' if pending.is_some() && open.last().is_none_or(|o| o.2 <= depth) => {
                // A declaration without a body (in a trait), or `fn` in a type.
                pending = None;
            }
            b'{' => {
                depth += 1;
                if let Some((name, first)) = pending.take() {
                    open.push((name, first, depth));
                }
            }
            b'}' => {
                if open.last().is_some_and(|o| o.2 == depth) {
                    let (name, first, _) = open.pop().expect("checked");
                    out.push((name, first, line - first + 1));
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The house rule: no function longer than 120 lines.
#[test]
fn no_function_is_longer_than_120_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let (mut long, mut seen) = (Vec::new(), 0);
    for path in files {
        let rel = format!("src/{}", path.strip_prefix(&src).unwrap().display());
        for (name, first, len) in function_lengths(&std::fs::read_to_string(&path).unwrap()) {
            seen += 1;
            if len > 120 {
                long.push(format!(
                    "{rel}:{first}: `{name}` is {len} lines (at most 120)"
                ));
            }
        }
    }
    assert!(seen > 1000, "{seen} functions read");
    assert!(long.is_empty(), "functions too long:\n{}", long.join("\n"));
}

#[test]
fn function_lengths_skip_strings_comments_and_chars() {
    let text = "fn a() {\n    let s = \"}\"; // }\n    let c = '{';\n    let r = r#\"}\"#;\n    /* } */\n}\n\
                trait T { fn b(&self); }\nfn c<'x>(v: &'x str) -> &'x str {\n    v\n}\n";
    assert_eq!(
        function_lengths(text),
        [("a".to_owned(), 1, 6), ("c".to_owned(), 8, 3)]
    );
}
