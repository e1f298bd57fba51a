//! The line editor's helper: completion, hints, highlighting and the multi-line validator.
//! It reads the language's own word lists (fields, stages, keywords, units), so the
//! prompt offers exactly what the parser accepts.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::lang::lex::{self, Kind};
use crate::lang::parse::{DURATION_UNITS, KEYWORDS, STAGES};
use crate::query::fields;

use super::values::Values;

/// Meta commands, for completion at the start of a line.
pub const META: &[&str] = &[
    ".help", ".fields", ".actions", ".format", ".output", ".timing", ".explain", ".archive",
    ".cluster", ".as-of", ".now", ".tz", ".save", ".run", ".quit", ".exit",
];

pub struct ReplHelper {
    pub values: Arc<Mutex<Values>>,
    pub colour: bool,
    history: HistoryHinter,
}

impl ReplHelper {
    pub fn new(values: Arc<Mutex<Values>>, colour: bool) -> ReplHelper {
        ReplHelper {
            values,
            colour,
            history: HistoryHinter::new(),
        }
    }
}

impl Helper for ReplHelper {}

/// Why `input` cannot run yet (the user is still typing it), if so. `Err` when it can
/// never run as typed (a `)` without `(`).
pub fn incomplete(input: &str) -> Result<Option<&'static str>, &'static str> {
    if input.trim_start().starts_with('.') {
        return Ok(None);
    }
    let tokens = lex::tokens(input);
    // The `(` and `[` still open, innermost last.
    let mut open: Vec<Kind> = Vec::new();
    for t in &tokens {
        match t.kind {
            Kind::LParen | Kind::LBracket => open.push(t.kind),
            // A closer takes the innermost opener off (in the guard); the wrong one is an error.
            Kind::RParen if open.pop() != Some(Kind::LParen) => {
                return Err("this `)` has no `(` before it");
            }
            Kind::RBracket if open.pop() != Some(Kind::LBracket) => {
                return Err("this `]` has no `[` before it");
            }
            Kind::Str { closed: false, .. } | Kind::Field { closed: false } => {
                return Ok(Some("a string is still open: close it with its quote"));
            }
            Kind::Regex { closed: false } => {
                return Ok(Some("a regex is still open: close it with `/`"));
            }
            _ => {}
        }
    }
    let last = tokens.iter().rev().find(|t| !t.is_layout());
    Ok(if open.last() == Some(&Kind::LParen) {
        Some("a `(` is still open: close it with `)`")
    } else if open.last() == Some(&Kind::LBracket) {
        Some("a `[` is still open: close the step with `]`")
    } else if last.is_some_and(|t| t.kind == Kind::Pipe) {
        Some("a stage follows `|`")
    } else {
        None
    })
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(match incomplete(ctx.input()) {
            Ok(None) => ValidationResult::Valid(None),
            Ok(Some(_)) => ValidationResult::Incomplete,
            Err(why) => ValidationResult::Invalid(Some(format!("  ← {why}"))),
        })
    }
}

impl Hinter for ReplHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        if let Ok(Some(why)) = incomplete(line) {
            return Some(format!("   (Enter continues: {why})"));
        }
        self.history.hint(line, pos, ctx)
    }
}

/// Where a completion goes and what it offers.
#[derive(Debug, PartialEq)]
pub enum Want<'a> {
    /// A value of `field`; `quoted` when its opening quote is typed.
    Value {
        field: &'a str,
        prefix: &'a str,
        quoted: bool,
    },
    Stage(&'a str),
    Unit(&'a str),
    Word(&'a str),
    Meta(&'a str),
}

/// What to complete at the end of `before` (the text before the cursor), and where the
/// replaced text starts. Read from the lexer's tokens, as the parser reads the query: a
/// string still open is a value being typed, whatever it holds.
pub fn want(before: &str) -> (usize, Want<'_>) {
    if before.starts_with('.') && !before.contains(char::is_whitespace) {
        return (0, Want::Meta(before));
    }
    let tokens = lex::tokens(before);
    // The token under the cursor: a word or an open string ending there; after a space
    // or an operator, a new (empty) word starts at the end.
    let (start, prefix, quoted, rest) = match tokens.last() {
        Some(t)
            if t.span.end == before.len() && matches!(t.kind, Kind::Str { closed: false, .. }) =>
        {
            (
                t.span.start,
                &before[t.span.start + 1..],
                true,
                &tokens[..tokens.len() - 1],
            )
        }
        Some(t) if t.span.end == before.len() && t.kind == Kind::Word => (
            t.span.start,
            t.text(before),
            false,
            &tokens[..tokens.len() - 1],
        ),
        _ => (before.len(), "", false, &tokens[..]),
    };
    // A qualifier is one word: `actor:svc`, `-actor:svc`.
    if !quoted
        && let Some((field, value)) = prefix.split_once(':')
        && !field.trim_start_matches('-').is_empty()
    {
        return (
            start + prefix.len() - value.len(),
            Want::Value {
                field: field.trim_start_matches('-'),
                prefix: value,
                quoted: false,
            },
        );
    }
    let mut previous = rest.iter().rev().filter(|t| !t.is_layout());
    let (p1, p2) = (previous.next(), previous.next());
    let text = |t: Option<&lex::Token>| t.map(|t| t.text(before));
    fn value<'a>(field: &'a str, prefix: &'a str, quoted: bool) -> Want<'a> {
        Want::Value {
            field: field.trim_start_matches('-'),
            prefix,
            quoted,
        }
    }
    match (p1.map(|t| t.kind), text(p1), p2.map(|t| t.kind), text(p2)) {
        (Some(Kind::Op), Some("=" | "!=" | "==" | "~" | "!~"), Some(Kind::Word), Some(field)) => {
            (start, value(field, prefix, quoted))
        }
        (Some(Kind::Word), Some(w), ..) if quoted && w.len() > 1 && w.ends_with(':') => {
            (start, value(&w[..w.len() - 1], prefix, quoted))
        }
        _ if quoted => (start, value("", prefix, quoted)),
        (Some(Kind::Pipe), ..) => (start, Want::Stage(prefix)),
        (Some(Kind::Word), Some("since" | "last" | "over" | "within"), ..)
            if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_digit()) =>
        {
            (start, Want::Unit(prefix))
        }
        _ => (start, Want::Word(prefix)),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A value as the query would need it written: bare when it is a plain word.
fn value_text(v: &str, quoted: bool) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-' | '*'))
        && !KEYWORDS.contains(&v);
    if plain && !quoted {
        v.to_owned()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The candidates for `want`, given the archive's values.
pub fn candidates(want: &Want<'_>, values: &mut Values) -> Vec<Pair> {
    let pair = |display: String, replacement: String| Pair {
        display,
        replacement,
    };
    match *want {
        Want::Meta(p) => META
            .iter()
            .filter(|m| m.starts_with(p))
            .map(|m| pair(m.to_string(), format!("{m} ")))
            .collect(),
        Want::Stage(p) => STAGES
            .iter()
            .filter(|s| starts_with_ci(s, p))
            .map(|s| pair(s.to_string(), format!("{s} ")))
            .collect(),
        Want::Unit(n) => DURATION_UNITS
            .iter()
            .map(|u| pair(format!("{n}{u}"), format!("{n}{u} ")))
            .collect(),
        Want::Word(p) => {
            let mut out: Vec<Pair> = fields::all_names()
                .chain(KEYWORDS.iter().copied())
                .filter(|w| starts_with_ci(w, p))
                .map(|w| pair(w.to_owned(), w.to_owned()))
                .collect();
            out.sort_by(|a, b| a.display.cmp(&b.display));
            out.dedup_by(|a, b| a.display == b.display);
            out
        }
        Want::Value {
            field,
            prefix,
            quoted,
        } => values
            .for_field(field)
            .into_iter()
            .filter(|v| starts_with_ci(v, prefix))
            .take(200)
            .map(|v| pair(v.clone(), value_text(&v, quoted)))
            .collect(),
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, want) = want(&line[..pos]);
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Ok((start, candidates(&want, &mut values)))
    }
}

/// Colours of the parts of a query.
mod paint {
    pub const KEYWORD: &str = "\x1b[35m";
    pub const STAGE: &str = "\x1b[1;34m";
    pub const FIELD: &str = "\x1b[36m";
    pub const STRING: &str = "\x1b[32m";
    pub const NUMBER: &str = "\x1b[33m";
    pub const ERROR: &str = "\x1b[1;31m";
    pub const HINT: &str = "\x1b[2m";
    pub const RESET: &str = "\x1b[0m";
}

/// `line` with ANSI colours: keywords, stage names, known fields, strings, numbers;
/// unknown fields before an operator and unclosed strings in red.
pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut after_pipe = false;
    let paint = |out: &mut String, colour: &str, text: &str| {
        out.push_str(&format!("{colour}{text}{}", paint::RESET));
    };
    for t in lex::tokens(line) {
        let text = t.text(line);
        match t.kind {
            _ if t.unclosed() => paint(&mut out, paint::ERROR, text),
            Kind::Str { .. } | Kind::Field { .. } | Kind::Regex { .. } => {
                paint(&mut out, paint::STRING, text)
            }
            Kind::Word => {
                // A sign is not part of the name: `sort -time`, `-actor:svc-*`.
                let name = text.trim_start_matches(['-', '+']);
                out.push_str(&text[..text.len() - name.len()]);
                let text = name;
                let lower = text.to_ascii_lowercase();
                let next = line[t.span.end..].trim_start();
                let before_op = ["=", "!=", "~", "!~", "<", ">", "in "]
                    .iter()
                    .any(|op| next.starts_with(op));
                let colour = if after_pipe && STAGES.contains(&lower.as_str()) {
                    Some(paint::STAGE)
                } else if KEYWORDS.contains(&lower.as_str())
                    || matches!(lower.as_str(), "over" | "every" | "within")
                {
                    Some(paint::KEYWORD)
                } else if fields::resolve(&lower).is_some() {
                    Some(paint::FIELD)
                } else if text.starts_with(|c: char| c.is_ascii_digit()) {
                    Some(paint::NUMBER)
                } else if before_op && !text.contains(':') {
                    Some(paint::ERROR)
                } else {
                    None
                };
                match colour {
                    Some(colour) => paint(&mut out, colour, text),
                    None => out.push_str(text),
                }
            }
            _ => out.push_str(text),
        }
        match t.kind {
            Kind::Pipe => after_pipe = true,
            _ if t.is_layout() => {}
            _ => after_pipe = false,
        }
    }
    out
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.colour && !line.starts_with('.') {
            Cow::Owned(highlight(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.colour {
            Cow::Owned(format!("{}{hint}{}", paint::HINT, paint::RESET))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.colour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_input_says_why() {
        assert_eq!(incomplete("actor = x"), Ok(None));
        assert!(incomplete("actor = x |").unwrap().is_some());
        assert!(incomplete("(actor = x or").unwrap().is_some());
        assert!(incomplete("actor = \"x").unwrap().is_some());
        assert_eq!(incomplete("actor = \"(\""), Ok(None));
        assert_eq!(incomplete("actor = \"a\\\"b\""), Ok(None));
        assert!(incomplete("actor = x)").is_err());
        assert!(
            incomplete("| sequence within 1h [event:a] [event:b")
                .unwrap()
                .is_some_and(|why| why.contains('['))
        );
        assert_eq!(
            incomplete("| sequence within 1h [event:a] [(event:b)]"),
            Ok(None)
        );
        assert!(incomplete("| sequence within 1h [event:a)").is_err());
        assert_eq!(incomplete(".help |"), Ok(None));
        assert_eq!(incomplete("actor = x # (comment"), Ok(None));
        // As the parser reads them: `'…'` has no escapes, `/* … */` is a comment,
        // a regex after `~` hides its parentheses, a quoted field name is a literal.
        assert_eq!(incomplete(r"actor = 'a\' | count"), Ok(None));
        assert_eq!(incomplete("actor = x /* ( */"), Ok(None));
        assert_eq!(incomplete("event ~ /a[(]b/ | count"), Ok(None));
        assert!(incomplete("event ~ /a(b").unwrap().is_some());
        assert!(incomplete("`actor.na").unwrap().is_some());
        assert!(incomplete("actor = x | # a comment").unwrap().is_some());
    }

    #[test]
    fn completion_knows_where_it_is() {
        assert_eq!(want("act"), (0, Want::Word("act")));
        assert_eq!(want("actor = x | co"), (12, Want::Stage("co")));
        assert_eq!(want("x |"), (3, Want::Stage("")));
        assert_eq!(want("actor = x since 7"), (16, Want::Unit("7")));
        assert_eq!(
            want("event ~ \"user_"),
            (
                8,
                Want::Value {
                    field: "event",
                    prefix: "user_",
                    quoted: true
                }
            )
        );
        assert_eq!(
            want("a = b and -actor:svc"),
            (
                17,
                Want::Value {
                    field: "actor",
                    prefix: "svc",
                    quoted: false
                }
            )
        );
        assert_eq!(want(".fo"), (0, Want::Meta(".fo")));
        // Inside a string, spaces and `|` are the value's.
        assert_eq!(
            want("actor.name = \"Ada Ng"),
            (
                13,
                Want::Value {
                    field: "actor.name",
                    prefix: "Ada Ng",
                    quoted: true
                }
            )
        );
        assert_eq!(
            want("message = \"a | b"),
            (
                10,
                Want::Value {
                    field: "message",
                    prefix: "a | b",
                    quoted: true
                }
            )
        );
        assert_eq!(
            want("country:\"Uni"),
            (
                8,
                Want::Value {
                    field: "country",
                    prefix: "Uni",
                    quoted: true
                }
            )
        );
        assert_eq!(want("actor = x | sequence within 1"), (28, Want::Unit("1")));
    }

    /// `rename`: the stage name after `|`, then fields, `as`, and the next pair.
    #[test]
    fn rename_completes() {
        let words = |text: &str| -> Vec<String> {
            let (_, w) = want(text);
            candidates(&w, &mut Values::default())
                .into_iter()
                .map(|p| p.replacement)
                .collect()
        };
        assert_eq!(words("actor = x | ren"), ["rename "]);
        assert!(words("| rename actor.em").contains(&"actor.email".to_owned()));
        assert!(words("| rename actor.email a").contains(&"as".to_owned()));
        assert!(words("| rename ip as source_ip, countr").contains(&"country".to_owned()));
    }

    #[test]
    fn words_complete_to_fields_stages_and_units() {
        let mut values = Values::default();
        let words = |w: Want| -> Vec<String> {
            candidates(&w, &mut Values::default())
                .into_iter()
                .map(|p| p.replacement)
                .collect()
        };
        assert!(words(Want::Word("coun")).contains(&"country".to_owned()));
        assert!(words(Want::Stage("ti")).contains(&"timechart ".to_owned()));
        assert!(words(Want::Unit("7")).contains(&"7d ".to_owned()));
        values.set_for_tests("action", &["user_login", "user_logout", "group_created"]);
        let got: Vec<String> = candidates(
            &Want::Value {
                field: "event",
                prefix: "user_",
                quoted: true,
            },
            &mut values,
        )
        .into_iter()
        .map(|p| p.replacement)
        .collect();
        assert_eq!(got, vec!["\"user_login\"", "\"user_logout\""]);
    }

    #[test]
    fn highlighting_marks_unknown_fields_and_open_strings() {
        let h = highlight("actr = \"x");
        assert!(h.starts_with(&format!("{}actr", paint::ERROR)), "{h:?}");
        assert!(
            h.ends_with(&format!("{}\"x{}", paint::ERROR, paint::RESET)),
            "{h:?}"
        );
        let h = highlight("actor = \"x\" | count by actor");
        assert!(h.contains(&format!("{}count", paint::STAGE)), "{h:?}");
        assert!(h.contains(&format!("{}\"x\"", paint::STRING)), "{h:?}");
        // A sign before a field, a regex, and every character kept.
        let line = "| sort -time | where event ~ /a(b)/i";
        let h = highlight(line);
        assert!(h.contains(&format!("-{}time", paint::FIELD)), "{h:?}");
        assert!(h.contains(&format!("{}/a(b)/i", paint::STRING)), "{h:?}");
        let plain: String = h
            .split('\x1b')
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    p
                } else {
                    p.split_once('m').map_or("", |(_, rest)| rest)
                }
            })
            .collect();
        assert_eq!(plain, line);
    }
}
