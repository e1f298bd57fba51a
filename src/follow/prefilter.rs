//! A literal prefilter: the raw bytes of a document are searched for the words a
//! matching event must contain, before the document is parsed. `event:user_login_failed`
//! can only match a line that holds `user_login_failed`; most lines do not, and are
//! never parsed. This is what grep-like tools do, and it is exact:
//!
//! - Only comparisons whose value appears verbatim in the event's JSON give a word:
//!   `=`, `==`, `~` globs (their longest literal run), `in (…)` and free text, on fields
//!   copied from the JSON as they are (not `time`, `ip`, `actor.type`, `org`). Regexes,
//!   negations and ranges give none. `and` needs any one of its words, `or` all of its
//!   branches' (one word each).
//! - Words are ASCII letters, digits and `_ . @ : -`: JSON writes those as themselves,
//!   unless a producer spells them `\uXXXX`. A document holding `\u` is always parsed.
//! - Case-insensitive comparisons search case-insensitively in ASCII; a document with a
//!   byte outside ASCII is always parsed (Unicode case folding can turn other characters
//!   into ASCII letters).
//! - Only the filters before any `dedup` count: a `dedup` must see every event its
//!   key might take.

use crate::lang::ast::{CmpOp, Expr, Query, Stage, Value};
use crate::query::fields::{self, Kind, Target};

enum Need {
    Word(Word),
    All(Vec<Need>),
    Any(Vec<Need>),
}

enum Word {
    Exact(Box<memchr::memmem::Finder<'static>>),
    Caseless(regex::bytes::Regex),
}

impl Need {
    fn holds(&self, doc: &[u8]) -> bool {
        match self {
            Need::Word(Word::Exact(f)) => f.find(doc).is_some(),
            Need::Word(Word::Caseless(r)) => r.is_match(doc),
            Need::All(v) => v.iter().all(|n| n.holds(doc)),
            Need::Any(v) => v.iter().any(|n| n.holds(doc)),
        }
    }
}

/// What a document must contain to be worth parsing.
pub struct Prefilter {
    need: Need,
}

impl Prefilter {
    /// The prefilter of a query, if its filters require any word.
    pub fn of(q: &Query) -> Option<Prefilter> {
        let mut needs: Vec<Need> = q.filter.iter().filter_map(need).collect();
        for stage in &q.stages {
            match stage {
                Stage::Where(w) => needs.extend(need(&w.filter)),
                _ => break,
            }
        }
        match needs.len() {
            0 => None,
            1 => needs.pop().map(|need| Prefilter { need }),
            _ => Some(Prefilter {
                need: Need::All(needs),
            }),
        }
    }

    /// Whether a document (its raw bytes) may hold a matching event.
    pub fn keep(&self, doc: &[u8]) -> bool {
        self.need.holds(doc) || !doc.is_ascii() || memchr::memmem::find(doc, b"\\u").is_some()
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.@:-".contains(c)
}

/// Whether a field's values are copied from the event JSON unchanged.
fn verbatim(name: &str) -> Option<bool> {
    let def = fields::resolve(name)?;
    match def.target {
        Target::Column(c, kind) => {
            let derived = [crate::event::col::ACTOR_TYPE, crate::event::col::ORG_ID];
            match kind {
                Kind::Text => (!derived.contains(&c)).then_some(true),
                Kind::Exact => (!derived.contains(&c)).then_some(false),
                _ => None,
            }
        }
        Target::Actor | Target::List { .. } => Some(true),
    }
}

/// The longest run of word characters a value must contain (`~` globs: between
/// wildcards), if it is all word characters otherwise.
fn word(v: &Value, glob: bool, caseless: bool) -> Option<Need> {
    let (Value::Str(text, _) | Value::Num(text, _)) = v else {
        return None;
    };
    let parts: Vec<&str> = if glob {
        text.split(['*', '?']).collect()
    } else {
        vec![text.as_str()]
    };
    if !parts.iter().all(|p| p.chars().all(word_char)) {
        return None;
    }
    let best = parts.into_iter().max_by_key(|p| p.len())?;
    if best.len() < 3 {
        return None;
    }
    Some(Need::Word(if caseless {
        Word::Caseless(regex::bytes::Regex::new(&format!("(?i-u){}", regex::escape(best))).ok()?)
    } else {
        Word::Exact(Box::new(
            memchr::memmem::Finder::new(best.as_bytes()).into_owned(),
        ))
    }))
}

fn need(e: &Expr) -> Option<Need> {
    match e {
        Expr::And(items, _) => {
            let mut v: Vec<Need> = items.iter().filter_map(need).collect();
            match v.len() {
                0 => None,
                1 => v.pop(),
                _ => Some(Need::All(v)),
            }
        }
        Expr::Or(items, _) => items
            .iter()
            .map(need)
            .collect::<Option<Vec<_>>>()
            .map(Need::Any),
        Expr::Cmp {
            field, op, value, ..
        } => {
            let text = verbatim(&field.name)?;
            match op {
                CmpOp::Eq => word(value, false, text),
                CmpOp::ExactEq => word(value, false, false),
                CmpOp::Match => word(value, true, true),
                _ => None,
            }
        }
        Expr::In {
            field,
            negated: false,
            values,
            ..
        } => {
            let text = verbatim(&field.name)?;
            values
                .iter()
                .map(|v| {
                    let glob = v.text().contains(['*', '?']);
                    word(v, glob, text || glob)
                })
                .collect::<Option<Vec<_>>>()
                .map(Need::Any)
        }
        Expr::Text(t, span) => word(&Value::Str(t.clone(), *span), false, true),
        Expr::Not(..) | Expr::Has(..) | Expr::In { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(q: &str, doc: &str) -> bool {
        let q = crate::lang::parse(q).unwrap();
        Prefilter::of(&q).is_none_or(|p| p.keep(doc.as_bytes()))
    }

    #[test]
    fn documents_without_the_words_are_skipped_and_nothing_else() {
        let line = r#"{"id":"e1","attributes":{"action":"user_login","actor":{"email":"ada@example.com"}}}"#;
        assert!(keep("event:user_login", line));
        assert!(keep("event:USER_LOGIN", line), "= ignores case");
        assert!(!keep("event:user_login_failed", line));
        assert!(!keep("action == User_Login", line), "== does not");
        assert!(keep("actor ~ \"ADA*\" and event:user_*", line));
        assert!(!keep("actor ~ \"ada*\" and event:*delete*", line));
        assert!(keep("event:*delete* or actor:ada@example.com", line));
        assert!(
            keep("not event:group_created", line),
            "negations need nothing"
        );
        assert!(keep(
            "event:group_created | where country:DE",
            r#"{"a":"\u0067roup_created"}"#
        ));
        assert!(keep(
            "event:kelvin_sign",
            "{\"action\":\"\u{212A}elvin_sign\"}"
        ));
        assert!(!keep("event:x_y_z | where actor:bob", line));
        // After a dedup, a where stage may not drop events.
        assert!(keep(
            "| dedup actor within 1h | where event:group_created",
            line
        ));
        assert!(keep("ip in 10.0.0.0/8", line));
    }
}
