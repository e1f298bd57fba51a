//! Diagnostics: how errors read, and the spans they point at. Depends on nothing.
//!
//! One renderer for every query diagnostic: the headline, the query line, a caret under
//! the span with a label, and `= help:` lines; or, for scripts, one JSON object each.

use serde::Serialize;

/// Byte offsets `start..end` into the query text.
///
/// Spans never take part in equality: two trees are equal when they mean the same text,
/// wherever it was written (this is what makes the display round trip testable).
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

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
    /// When the span is the use of a macro: where in its definition the problem is.
    pub site: Option<Box<Site>>,
}

/// A span of a macro's definition (see `lang/macros.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The macro.
    pub name: String,
    /// The file (or "the query") it is defined in, and that text.
    pub place: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
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
            site: None,
        }
    }
    /// An error over the query text of `span`.
    pub fn at(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic::error(code, message, span.start, span.end)
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

/// A query that was refused: its text and its diagnostics, carried as values up to the
/// edge (`main`, the REPL), which renders them in the style and colour it chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub src: String,
    pub diags: Vec<Diagnostic>,
}

impl Rejected {
    pub fn new(src: &str, diags: Vec<Diagnostic>) -> Rejected {
        Rejected {
            src: src.to_owned(),
            diags,
        }
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.diags.first() {
            Some(d) => write!(f, "invalid query: {}", d.message),
            None => f.write_str("invalid query"),
        }
    }
}

impl std::error::Error for Rejected {}

/// How diagnostics are shown: drawn under the query, or one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    #[default]
    Text,
    Json,
}

/// Diagnostics in `style`; `color` adds ANSI colours to the text style.
pub fn render_as(src: &str, diags: &[Diagnostic], style: Style, color: bool) -> String {
    match style {
        Style::Text => render(src, diags, color),
        Style::Json => render_json(src, diags),
    }
}

/// ANSI colours of the text style (nothing when colour is off).
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `error` as the head of a one-line error, red and bold with `color`.
pub fn error_head(color: bool) -> String {
    Paint(color).paint("1;31", "error")
}

/// Draw diagnostics under the query text, rustc style; `color` for a terminal.
pub fn render(src: &str, diags: &[Diagnostic], color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for d in diags {
        let (kind, tone) = match d.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        out.push_str(&format!(
            "{}{}\n",
            p.paint(tone, &format!("{kind}[{}]", d.code)),
            p.paint("1", &format!(": {}", d.message))
        ));
        out.push_str(&snippet(src, d.start, d.end, &d.label, tone, p));
        let gutter = locate(src, d.start).0.to_string().len();
        let pad = " ".repeat(gutter);
        let bar = p.paint("1;34", &format!("{pad} |"));
        if !d.help.is_empty() {
            out.push_str(&format!("{bar}\n"));
        }
        for h in &d.help {
            out.push_str(&format!(
                "{} {h}\n",
                p.paint("1;36", &format!("{pad} = help:"))
            ));
        }
        if let Some(site) = &d.site {
            out.push_str(&format!(
                "{} in `${}`, defined in {}:\n",
                p.paint("1;36", &format!("{pad} = note:")),
                site.name,
                site.place
            ));
            out.push_str(&snippet(&site.text, site.start, site.end, "", tone, p));
        }
    }
    out
}

/// The line of `src` holding `start`, with a caret under `start..end` and `label`.
fn snippet(src: &str, start: usize, end: usize, label: &str, tone: &str, p: Paint) -> String {
    let (line_no, col, line) = locate(src, start);
    let gutter = line_no.to_string().len();
    let pad = " ".repeat(gutter);
    // The caret covers the span on its first line (at least one column).
    let (end_line, _, _) = locate(src, end);
    let span_chars = if end_line == line_no {
        src[floor_char_boundary(src, start.min(src.len()))
            ..floor_char_boundary(src, end.min(src.len()))]
            .chars()
            .count()
    } else {
        line.chars().count().saturating_sub(col - 1)
    };
    // A long line (a query of a hundred thousand values) is shown around the span.
    let (line, col, span_chars) = window(line, col, span_chars);
    let bar = p.paint("1;34", &format!("{pad} |"));
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(" {label}")
    };
    format!(
        "{bar}\n{} {line}\n{bar} {}{}\n",
        p.paint("1;34", &format!("{line_no} |")),
        " ".repeat(col - 1),
        p.paint(tone, &format!("{}{label}", "^".repeat(span_chars.max(1))))
    )
}

/// The widest source line drawn; a longer one is cut around the span, with `…`.
const LINE_WIDTH: usize = 120;

/// `line` cut to [`LINE_WIDTH`] characters around column `col` (1-based), with the
/// column and caret length within what is shown.
fn window(line: &str, col: usize, span: usize) -> (String, usize, usize) {
    let n = line.chars().count();
    if n <= LINE_WIDTH {
        return (line.to_owned(), col, span);
    }
    let from = col.saturating_sub(1).saturating_sub(LINE_WIDTH / 3).min(n);
    let to = (from + LINE_WIDTH).min(n);
    let mut shown = String::new();
    if from > 0 {
        shown.push('…');
    }
    shown.extend(line.chars().skip(from).take(to - from));
    if to < n {
        shown.push('…');
    }
    let col = col - from + usize::from(from > 0);
    let span = span.min((to - from + usize::from(from > 0) + 1).saturating_sub(col));
    (shown, col, span.max(1))
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

    /// A query of megabytes on one line is drawn around the span, not whole.
    #[test]
    fn a_long_line_is_cut_around_the_span() {
        let src = format!("actor in ({}) | frob", "\"x\",".repeat(100_000));
        let start = src.find("frob").unwrap();
        let d = Diagnostic::error("E0401", "unknown stage", start, start + 4).label("here");
        let text = render(&src, &[d], false);
        assert!(text.len() < 600, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let shown = lines[2];
        let caret = lines[3];
        assert!(shown.contains("| frob") && shown.contains('…'), "{text}");
        // The caret is under `frob`.
        let at = |l: &str, pat: &str| l[..l.find(pat).unwrap()].chars().count();
        assert_eq!(at(caret, "^^^^ here"), at(shown, "frob"), "{text}");
    }

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
            render(src, &[d], false),
            "error[E0101]: unknown field `acter`\n  |\n1 | acter = \"x\" since 7d\n  | ^^^^^ not a field or alias\n  |\n  = help: did you mean `actor`?\n"
        );
    }

    #[test]
    fn colour_wraps_the_same_text() {
        let src = "acter = 1";
        let d = Diagnostic::error("E0101", "unknown field `acter`", 0, 5).help("h");
        let plain = render(src, std::slice::from_ref(&d), false);
        let coloured = render(src, &[d], true);
        assert!(
            coloured.contains("\x1b[1;31merror[E0101]\x1b[0m"),
            "{coloured}"
        );
        let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
            .unwrap()
            .replace_all(&coloured, "");
        assert_eq!(stripped, plain);
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
