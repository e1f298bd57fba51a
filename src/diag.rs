//! Diagnostics: how errors read. Depends on nothing.
//!
//! One renderer for every query diagnostic: the headline, the query line, a caret under
//! the span with a label, and `= help:` lines; or, for scripts, one JSON object each.

use serde::Serialize;

/// An error and its chain of causes on one line, each cause once: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.replace('\n', " ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A problem with a span of the query text (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, e.g. `E0101`.
    pub code: &'static str,
    pub message: String,
    pub start: usize,
    pub end: usize,
    /// Written after the caret.
    pub label: String,
    pub help: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, start: usize, end: usize) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            start,
            end: end.max(start),
            label: String::new(),
            help: Vec::new(),
        }
    }
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        start: usize,
        end: usize,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, start, end)
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }
}

/// Line (1-based), column (1-based, in characters) and the line's text at byte `at`.
fn locate(src: &str, at: usize) -> (usize, usize, &str) {
    let at = floor_char_boundary(src, at.min(src.len()));
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[at..].find('\n').map_or(src.len(), |i| at + i);
    let line_no = src[..line_start].matches('\n').count() + 1;
    let col = src[line_start..at].chars().count() + 1;
    (line_no, col, &src[line_start..line_end])
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Draw diagnostics under the query text, rustc style.
pub fn render(src: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{kind}[{}]: {}\n", d.code, d.message));
        let (line_no, col, line) = locate(src, d.start);
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        // The caret covers the span on its first line (at least one column).
        let (end_line, _, _) = locate(src, d.end);
        let span_chars = if end_line == line_no {
            src[floor_char_boundary(src, d.start.min(src.len()))
                ..floor_char_boundary(src, d.end.min(src.len()))]
                .chars()
                .count()
        } else {
            line.chars().count().saturating_sub(col - 1)
        };
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{line_no} | {line}\n"));
        out.push_str(&format!(
            "{pad} | {}{}{}\n",
            " ".repeat(col - 1),
            "^".repeat(span_chars.max(1)),
            if d.label.is_empty() {
                String::new()
            } else {
                format!(" {}", d.label)
            }
        ));
        if !d.help.is_empty() {
            out.push_str(&format!("{pad} |\n"));
        }
        for h in &d.help {
            out.push_str(&format!("{pad} = help: {h}\n"));
        }
    }
    out
}

#[derive(Serialize)]
struct JsonSpan {
    start: usize,
    end: usize,
    line: usize,
    col: usize,
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    span: JsonSpan,
    help: &'a [String],
}

/// One JSON object per line: `{severity, code, message, span:{start,end,line,col}, help}`.
pub fn render_json(src: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| {
            let (line, col, _) = locate(src, d.start);
            let j = JsonDiag {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                span: JsonSpan {
                    start: d.start,
                    end: d.end,
                    line,
                    col,
                },
                help: &d.help,
            };
            serde_json::to_string(&j).expect("diagnostics serialise") + "\n"
        })
        .collect()
}

/// The candidate closest to `word` if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&w, c), c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading `x`")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let e = Outer(std::io::Error::other("disk\non fire"));
        assert_eq!(super::chain(&e), "reading `x`: disk on fire");
    }

    #[test]
    fn caret_sits_under_the_span() {
        let src = "acter = \"x\" since 7d";
        let d = Diagnostic::error("E0101", "unknown field `acter`", 0, 5)
            .label("not a field or alias")
            .help("did you mean `actor`?");
        assert_eq!(
            render(src, &[d]),
            "error[E0101]: unknown field `acter`\n  |\n1 | acter = \"x\" since 7d\n  | ^^^^^ not a field or alias\n  |\n  = help: did you mean `actor`?\n"
        );
    }

    #[test]
    fn json_has_line_and_column() {
        let src = "a\nbc d";
        let d = Diagnostic::error("E1", "m", 5, 6);
        assert_eq!(
            render_json(src, &[d]),
            "{\"severity\":\"error\",\"code\":\"E1\",\"message\":\"m\",\"span\":{\"start\":5,\"end\":6,\"line\":2,\"col\":4},\"help\":[]}\n"
        );
    }

    #[test]
    fn suggestions_are_close_words_only() {
        assert_eq!(did_you_mean("acter", ["actor", "action"]), Some("actor"));
        assert_eq!(did_you_mean("cuont", ["count", "top"]), Some("count"));
        assert_eq!(did_you_mean("zzz", ["count", "top"]), None);
    }
}
