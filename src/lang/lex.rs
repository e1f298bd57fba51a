//! The lexer: query text -> tokens with spans.
//!
//! One reading of quotes, regexes, comments and parentheses for everything that looks
//! at a query's structure: the parser's first pass (unclosed literals, parentheses, the
//! `|` between stages) and its recovery, the parser itself (its layout, strings, quoted
//! names and regexes are the tokens [`next`] reads where it stands), and the REPL's
//! validator (is the query still being typed?) and highlighter. They used to re-derive
//! it each in its own way, and had drifted: one skipped `/* … */` comments, another took
//! `\` as an escape in `'…'`, which the language does not.
//!
//! Words are the parser's to split: `actor:alice` is a field, `:` and a value, and
//! `since7d`'s keyword ends where its letters do, so the parser reads the grammar's
//! identifiers, numbers and durations inside a word token; where any other lexeme ends
//! is decided here alone.
//!
//! The lexemes are the grammar's (`grammar/auditq.ebnf`):
//! - `"…"` with `\` escapes (which escapes exist is the parser's business),
//!   `'…'` without escapes, `` `…` `` a quoted field name;
//! - a regex `/…/flags`, only where the parser reads an operand that may be one: after
//!   `~`, `!~` or `in`, and first in an item of a list (`in (…)`, `field:(…)`);
//! - comments `# …` to the end of the line and `/* … */`;
//! - words: letters, digits and `_.@*?+-/:` (`alice@example.com`, `svc-*`,
//!   `10.0.0.0/8`, `2026-02-16T08:00:00Z`, `actor:alice`);
//! - `$name` (a macro), `(`, `)`, `[`, `]`, `|`, `,`, and runs of operator characters (`=`, `!=`, `~`, `<=`).
//!
//! A literal that is never closed is a token too ([`Kind::Str`] with `closed: false`):
//! the parser turns it into a diagnostic, the REPL waits for the rest of the line.

use super::ast::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Space,
    Comment,
    /// A run of word characters.
    Word,
    /// `"…"` or `'…'`.
    Str {
        quote: char,
        closed: bool,
    },
    /// `` `…` ``: a field name with any characters.
    Field {
        closed: bool,
    },
    /// `/…/flags` after `~` or `!~`.
    Regex {
        closed: bool,
    },
    LParen,
    RParen,
    /// `[` and `]`, around the steps of a sequence.
    LBracket,
    RBracket,
    Pipe,
    Comma,
    /// A run of `=!<>~`.
    Op,
    /// `$name`: a macro's use (see `macros.rs`).
    Var,
    /// Any other character.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    pub kind: Kind,
    pub span: Span,
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.span.start..self.span.end]
    }

    /// Whether the token is only layout (space or a comment).
    pub fn is_layout(&self) -> bool {
        matches!(self.kind, Kind::Space | Kind::Comment)
    }

    /// The literal that is never closed, if this is one.
    pub fn unclosed(&self) -> bool {
        matches!(
            self.kind,
            Kind::Str { closed: false, .. }
                | Kind::Field { closed: false }
                | Kind::Regex { closed: false }
        )
    }
}

/// Characters of a word (the grammar's bare values, field paths and keywords).
pub fn is_bare_char(c: char) -> bool {
    c.is_alphanumeric() || "_.@*?+-/:".contains(c)
}

fn is_op_char(c: char) -> bool {
    "=!<>~".contains(c)
}

/// The token at the start of `rest` (not empty): its kind and length. A `/` (not `/*`)
/// starts a regex when `operand` (the reader is where a regex may stand). The parser
/// reads its tokens with this, from where it stands; [`tokens`] reads a whole text.
pub fn next(rest: &str, operand: bool) -> (Kind, usize) {
    let c = rest.chars().next().expect("a token to read");
    match c {
        c if c.is_whitespace() => (
            Kind::Space,
            rest.find(|c: char| !c.is_whitespace())
                .unwrap_or(rest.len()),
        ),
        '#' => (Kind::Comment, rest.find('\n').unwrap_or(rest.len())),
        '/' if rest.starts_with("/*") => (
            Kind::Comment,
            rest[2..].find("*/").map_or(rest.len(), |n| n + 4),
        ),
        '/' if operand => {
            let (end, closed) = closing(rest, '/', true);
            let flags = if closed {
                rest[end..]
                    .find(|c: char| !"isxm".contains(c))
                    .unwrap_or(rest.len() - end)
            } else {
                0
            };
            (Kind::Regex { closed }, end + flags)
        }
        '"' | '\'' => {
            let (end, closed) = closing(rest, c, c == '"');
            (Kind::Str { quote: c, closed }, end)
        }
        '`' => {
            let (end, closed) = closing(rest, '`', false);
            (Kind::Field { closed }, end)
        }
        '$' if rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => (
            Kind::Var,
            1 + rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1),
        ),
        '(' => (Kind::LParen, 1),
        ')' => (Kind::RParen, 1),
        '[' => (Kind::LBracket, 1),
        ']' => (Kind::RBracket, 1),
        '|' => (Kind::Pipe, 1),
        ',' => (Kind::Comma, 1),
        c if is_op_char(c) => (
            Kind::Op,
            rest.find(|c: char| !is_op_char(c)).unwrap_or(rest.len()),
        ),
        c if is_bare_char(c) => (
            Kind::Word,
            rest.find(|c: char| !is_bare_char(c)).unwrap_or(rest.len()),
        ),
        c => (Kind::Other, c.len_utf8()),
    }
}

/// The tokens of `src`, covering it from start to end.
pub fn tokens(src: &str) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    let mut at = 0;
    // A `/` starts a regex only where the parser reads an operand that may be one (layout
    // between): after a matching operator (`~`, `!~`), after `in`, and first in an item
    // of a list (`in (…)`, or a qualifier's `field:(…)`); `/*` is always a comment (no
    // regex starts with `*`).
    let mut after_match = false;
    let mut depth = 0usize;
    // The depth of the list the text is in; whether the last token (layout aside) was
    // the word `in`; where the last word ended, if it ended with `:` (a qualifier).
    let (mut list, mut after_in): (Option<usize>, bool) = (None, false);
    let mut qualifier: Option<usize> = None;
    while at < src.len() {
        let (kind, len) = next(&src[at..], after_match);
        let token = Token {
            kind,
            span: Span::new(at, at + len),
        };
        match kind {
            Kind::Space | Kind::Comment => {}
            Kind::Op => after_match = token.text(src).ends_with('~'),
            Kind::LParen => {
                depth += 1;
                if (after_in || qualifier == Some(at)) && list.is_none() {
                    list = Some(depth);
                }
                after_match = list == Some(depth);
            }
            Kind::Comma => after_match = list == Some(depth),
            Kind::RParen => {
                if list == Some(depth) {
                    list = None;
                }
                depth = depth.saturating_sub(1);
                after_match = false;
            }
            Kind::Word => after_match = token.text(src).eq_ignore_ascii_case("in"),
            _ => after_match = false,
        }
        if !matches!(kind, Kind::Space | Kind::Comment) {
            after_in = kind == Kind::Word && token.text(src).eq_ignore_ascii_case("in");
            qualifier = (kind == Kind::Word && token.text(src).ends_with(':')).then_some(at + len);
        }
        out.push(token);
        at += len;
    }
    out
}

/// The end of the literal that opens at the start of `s` with `quote` (just after
/// its closing quote), and whether it is closed; `\` escapes the next character when
/// `escapes`.
fn closing(s: &str, quote: char, escapes: bool) -> (usize, bool) {
    let mut chars = s.char_indices().skip(1);
    while let Some((k, c)) = chars.next() {
        if escapes && c == '\\' {
            chars.next();
        } else if c == quote {
            return (k + c.len_utf8(), true);
        }
    }
    (s.len(), false)
}

/// The offset in `s` of the `)` that closes the `(` at its start.
pub fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for t in tokens(s) {
        match t.kind {
            Kind::LParen => depth += 1,
            Kind::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(t.span.start);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each token as "kind:text".
    fn show(src: &str) -> Vec<String> {
        tokens(src)
            .iter()
            .filter(|t| t.kind != Kind::Space)
            .map(|t| format!("{:?}:{}", t.kind, t.text(src)))
            .collect()
    }

    #[test]
    fn covers_the_text_in_order() {
        for src in [
            r#"actor = "x" and event ~ "permission*" since 7d | count by actor"#,
            "event ~ /^(jira|confluence)_.*/i | timechart 1d",
            "ip not in (10.0.0.0/8, 172.16.0.0/12) # office\n| top 10 ip",
            "`odd field` = 'a\\' /* (not a paren */ | head 3",
            "actor = \"never closed",
            "ünïcode:wörds | fields *",
        ] {
            let ts = tokens(src);
            let mut at = 0;
            for t in &ts {
                assert_eq!(t.span.start, at, "{src}: {ts:?}");
                assert!(t.span.end > t.span.start, "{src}: {ts:?}");
                at = t.span.end;
            }
            assert_eq!(at, src.len(), "{src}");
        }
    }

    #[test]
    fn reads_literals_as_the_grammar_does() {
        assert_eq!(
            show(r#"a = "x\"(" | b"#),
            [
                "Word:a",
                "Op:=",
                "Str { quote: '\"', closed: true }:\"x\\\"(\"",
                "Pipe:|",
                "Word:b"
            ]
        );
        // No escapes in '…': the backslash is a character, the quote closes.
        assert_eq!(
            show(r"a = 'x\' )"),
            [
                "Word:a",
                "Op:=",
                "Str { quote: '\\'', closed: true }:'x\\'",
                "RParen:)"
            ]
        );
        // A regex only where an operand may be one; elsewhere `/` is part of a word.
        assert_eq!(
            show(r"event !~ /a\/(b|c)/i ip in 10.0.0.0/8"),
            [
                "Word:event",
                "Op:!~",
                "Regex { closed: true }:/a\\/(b|c)/i",
                "Word:ip",
                "Word:in",
                "Word:10.0.0.0/8"
            ]
        );
        // And first in an item of an `in (…)` list, as the parser takes it there.
        assert_eq!(
            show(r"event in (/a(b/i, x) | ip in (10.0.0.0/8, /* nets */ 192.168.0.0/16)"),
            [
                "Word:event",
                "Word:in",
                "LParen:(",
                "Regex { closed: true }:/a(b/i",
                "Comma:,",
                "Word:x",
                "RParen:)",
                "Pipe:|",
                "Word:ip",
                "Word:in",
                "LParen:(",
                "Word:10.0.0.0/8",
                "Comma:,",
                "Comment:/* nets */",
                "Word:192.168.0.0/16",
                "RParen:)"
            ]
        );
        // `/*` is a comment even after `~`, as the parser reads it.
        assert_eq!(
            show("a ~ /* c */ /x/"),
            [
                "Word:a",
                "Op:~",
                "Comment:/* c */",
                "Regex { closed: true }:/x/"
            ]
        );
        assert_eq!(
            show("a # (x\n/* | ) */ b"),
            ["Word:a", "Comment:# (x", "Comment:/* | ) */", "Word:b"]
        );
        assert!(tokens("event ~ /abc").last().unwrap().unclosed());
        assert!(tokens("`field").last().unwrap().unclosed());
        assert!(!tokens("'it''s'").iter().any(Token::unclosed));
    }

    /// After `in` and in a qualifier's list the parser reads a regex too: so does the
    /// lexer (`event in /a b/` was three words, `event:(/a(b/)` an unclosed `(`).
    #[test]
    fn a_regex_after_in_and_in_a_qualifiers_list() {
        assert_eq!(
            show(r"event in /a b/i"),
            ["Word:event", "Word:in", "Regex { closed: true }:/a b/i"]
        );
        assert_eq!(
            show(r"event:(/a(b/, /c/) ip:10.0.0.0/8"),
            [
                "Word:event:",
                "LParen:(",
                "Regex { closed: true }:/a(b/",
                "Comma:,",
                "Regex { closed: true }:/c/",
                "RParen:)",
                "Word:ip:10.0.0.0/8"
            ]
        );
        // Not a qualifier's list when a space comes between (the parser refuses it).
        assert_eq!(
            show(r"a: (/x)"),
            ["Word:a:", "LParen:(", "Word:/x", "RParen:)"]
        );
    }

    #[test]
    fn matching_paren_skips_literals_and_comments() {
        assert_eq!(matching_paren("(a = \")\" or b = 1) | x"), Some(17));
        assert_eq!(matching_paren("(a ~ /\\)/ # )\n)"), Some(14));
        assert_eq!(matching_paren("((a)"), None);
        assert_eq!(matching_paren("(event in (/a)b/, c))"), Some(20));
    }
}
