//! Macros: `let NAME = TEXT;` names a piece of a query — a filter, a list of values, a
//! pipeline — and `$NAME` stands for it.
//!
//! Definitions come from a macros file (`$XDG_CONFIG_HOME/auditq/macros.aq`, or
//! `--macros FILE`), from statements at the start of a query or a query file, and in
//! the REPL from `let` lines. Expansion is textual, before parsing, on the lexer's tokens
//! (a `$` inside a string or a comment is not a macro):
//! - a body with a `|` outside parentheses (a pipeline) or already in parentheses (a
//!   list, a group) is put in as it is; any other body is put in parentheses, so that
//!   `not $admins` negates the whole filter;
//! - a body may use macros defined before it, never itself (a cycle is an error).
//!
//! The expanded text keeps a map back to where each piece was written, so that an error
//! inside a macro is drawn at its use in the query and at its definition.

use super::lex::{self, Kind};
use crate::diag::{Diagnostic, Site, did_you_mean};

/// Where text was written: a file's name (or "the query", "the REPL") and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Macro {
    pub name: String,
    /// The body: `source.text[start..end]`.
    pub source: std::sync::Arc<Source>,
    pub start: usize,
    pub end: usize,
}

impl Macro {
    pub fn body(&self) -> &str {
        &self.source.text[self.start..self.end]
    }
}

/// The macros in scope, later definitions shadowing earlier ones.
#[derive(Debug, Clone, Default)]
pub struct Library {
    defs: Vec<Macro>,
}

/// How deep macros may use macros.
const MAX_DEPTH: usize = 16;

/// How many tokens a query may hold once its macros are expanded: lists of thousands of
/// values fit; a macro that uses another ten times, nested, is stopped before it can
/// grow past what the parser and planner answer in a second or two.
pub const MAX_TOKENS: usize = 20_000;

impl Library {
    /// Add the `let` statements of a macros file; only statements (and comments) may be
    /// in it.
    pub fn add_file(&mut self, name: &str, text: &str) -> Result<(), Vec<Diagnostic>> {
        let source = std::sync::Arc::new(Source {
            name: name.to_owned(),
            text: text.to_owned(),
        });
        let rest = self.statements(&source)?;
        if !text[rest..].trim().is_empty() {
            let at = rest + (text[rest..].len() - text[rest..].trim_start().len());
            return Err(vec![
                Diagnostic::error(
                    "E0441",
                    format!("`{name}` holds a query; a macros file holds only `let` statements"),
                    at,
                    text.len(),
                )
                .help("`let admins = event ~ \"*admin*\";`"),
            ]);
        }
        Ok(())
    }

    /// Add the `let` statements at the start of `text` (a REPL line): the offset where
    /// what follows them starts.
    pub fn add_statements(&mut self, name: &str, text: &str) -> Result<usize, Vec<Diagnostic>> {
        let source = std::sync::Arc::new(Source {
            name: name.to_owned(),
            text: text.to_owned(),
        });
        self.statements(&source)
    }

    /// The names defined, latest first.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in self.defs.iter().rev() {
            if !out.contains(&m.name.as_str()) {
                out.push(&m.name);
            }
        }
        out
    }

    fn get(&self, name: &str) -> Option<&Macro> {
        self.defs.iter().rev().find(|m| m.name == name)
    }

    /// Read the `let NAME = BODY;` statements at the start of `source` into the library;
    /// the offset where what follows them starts.
    fn statements(&mut self, source: &std::sync::Arc<Source>) -> Result<usize, Vec<Diagnostic>> {
        let text = &source.text;
        let tokens = lex::tokens(text);
        let mut i = 0;
        let mut rest = 0;
        loop {
            while tokens.get(i).is_some_and(|t| t.is_layout()) {
                i += 1;
            }
            let Some(t) = tokens.get(i) else {
                return Ok(text.len());
            };
            if !(t.kind == Kind::Word && t.text(text).eq_ignore_ascii_case("let")) {
                return Ok(rest.max(t.span.start));
            }
            let let_at = t.span.start;
            let next = |i: &mut usize| {
                *i += 1;
                while tokens.get(*i).is_some_and(|t| t.is_layout()) {
                    *i += 1;
                }
                tokens.get(*i)
            };
            let name = match next(&mut i) {
                Some(t) if t.kind == Kind::Word && is_ident(t.text(text)) => t,
                Some(t) => {
                    return Err(vec![
                        Diagnostic::error(
                            "E0440",
                            "expected a macro name after `let`",
                            t.span.start,
                            t.span.end,
                        )
                        .label("not a name")
                        .help("`let admins = event ~ \"*admin*\";`"),
                    ]);
                }
                None => {
                    return Err(vec![Diagnostic::error(
                        "E0440",
                        "expected a macro name after `let`",
                        text.len(),
                        text.len(),
                    )]);
                }
            };
            match next(&mut i) {
                Some(t) if t.kind == Kind::Op && t.text(text) == "=" => {}
                other => {
                    let at = other.map_or(text.len(), |t| t.span.start);
                    return Err(vec![
                        Diagnostic::error(
                            "E0440",
                            "expected `=` after the macro's name",
                            at,
                            at + 1,
                        )
                        .label("expected `=`"),
                    ]);
                }
            }
            let start = tokens.get(i + 1).map_or(text.len(), |t| t.span.start);
            let mut j = i + 1;
            while tokens
                .get(j)
                .is_some_and(|t| !(t.kind == Kind::Other && t.text(text) == ";"))
            {
                j += 1;
            }
            let Some(semi) = tokens.get(j) else {
                return Err(vec![
                    Diagnostic::error(
                        "E0440",
                        "a `let` statement ends with `;`",
                        let_at,
                        text.len(),
                    )
                    .label("never ended")
                    .help("`let admins = event ~ \"*admin*\";` then the query"),
                ]);
            };
            let body = text[start..semi.span.start].trim_end();
            if body.trim().is_empty() {
                return Err(vec![Diagnostic::error(
                    "E0440",
                    format!("the macro `{}` is empty", name.text(text)),
                    name.span.start,
                    name.span.end,
                )]);
            }
            self.defs.push(Macro {
                name: name.text(text).to_owned(),
                source: std::sync::Arc::clone(source),
                start: start + (text[start..].len() - text[start..].trim_start().len()),
                end: start + body.len(),
            });
            i = j + 1;
            rest = semi.span.end;
        }
    }

    /// `src` with its leading `let` statements added to (a copy of) the library and every
    /// `$NAME` replaced; or where a name is unknown, a cycle, or a statement malformed.
    pub fn expand(&self, src: &str) -> Result<Expanded, Vec<Diagnostic>> {
        let mut lib = self.clone();
        let source = std::sync::Arc::new(Source {
            name: "the query".to_owned(),
            text: src.to_owned(),
        });
        let from = lib.statements(&source)?;
        let mut out = Expanded {
            original: src.to_owned(),
            text: String::new(),
            pieces: Vec::new(),
            tokens: 0,
        };
        lib.put(&mut out, src, from, src.len(), None, 0)
            .map_err(|d| vec![d])?;
        Ok(out)
    }

    /// Append `text[from..to]` to `out`, macros expanded. `inside`: the use (span in the
    /// query) and the macro whose body `text` is, when it is one.
    fn put(
        &self,
        out: &mut Expanded,
        text: &str,
        from: usize,
        to: usize,
        inside: Option<(usize, usize, &Macro)>,
        depth: usize,
    ) -> Result<(), Diagnostic> {
        let mut at = from;
        for t in lex::tokens(&text[..to]) {
            if t.span.start < from {
                continue;
            }
            // The span of the outermost use, in the query the user typed.
            let (use_start, use_end) = match inside {
                Some((s, e, _)) => (s, e),
                None => (t.span.start, t.span.end),
            };
            // Tokens put in by macros are counted (the query's own are what was typed).
            if inside.is_some() && !matches!(t.kind, Kind::Space | Kind::Comment) {
                out.tokens += 1;
            }
            if out.tokens > MAX_TOKENS {
                let outer = &out.original[use_start..use_end];
                return Err(Diagnostic::error(
                    "E0444",
                    format!("`{outer}` expands to more than {MAX_TOKENS} tokens"),
                    use_start,
                    use_end,
                )
                .label("expands too far")
                .help("a macro that uses another several times, nested, grows as a power of that count: use each once, or list the values in one macro"));
            }
            if t.kind != Kind::Var {
                continue;
            }
            out.copy(text, at, t.span.start, inside);
            at = t.span.end;
            let name = &text[t.span.start + 1..t.span.end];
            let Some(m) = self.get(name) else {
                let mut d = Diagnostic::error(
                    "E0442",
                    format!("unknown macro `${name}`"),
                    use_start,
                    use_end,
                )
                .label("not defined");
                if let Some(m) = did_you_mean(name, self.names()) {
                    d = d.help(format!("did you mean `${m}`?"));
                }
                return Err(
                    d.help("define it first: `let name = …;`, in the query or in the macros file")
                );
            };
            if depth >= MAX_DEPTH {
                return Err(Diagnostic::error(
                    "E0443",
                    format!("`${name}` uses macros {MAX_DEPTH} deep (a macro that uses itself?)"),
                    use_start,
                    use_end,
                ));
            }
            let body = m.body();
            let wrap = !(pipeline(body) || grouped(body));
            if wrap {
                out.text.push('(');
            }
            let m = m.clone();
            self.put(
                out,
                &m.source.text,
                m.start,
                m.end,
                Some((use_start, use_end, &m)),
                depth + 1,
            )?;
            if wrap {
                out.text.push(')');
            }
        }
        out.copy(text, at, to, inside);
        Ok(())
    }
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a body has a `|` outside parentheses and brackets.
fn pipeline(body: &str) -> bool {
    let mut depth = 0i32;
    for t in lex::tokens(body) {
        match t.kind {
            Kind::LParen | Kind::LBracket => depth += 1,
            Kind::RParen | Kind::RBracket => depth -= 1,
            Kind::Pipe if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Whether a body is one group in parentheses: `(10.0.0.0/8, 192.168.0.0/16)`.
fn grouped(body: &str) -> bool {
    let b = body.trim();
    b.starts_with('(') && lex::matching_paren(b) == Some(b.len() - 1)
}

/// A query with its macros expanded, and where each piece came from.
#[derive(Debug, Clone)]
pub struct Expanded {
    /// What the user wrote.
    pub original: String,
    /// What is parsed.
    pub text: String,
    /// Pieces of `text` copied from elsewhere: (start in `text`, length, origin).
    pieces: Vec<(usize, usize, Origin)>,
    /// Tokens put in by macros so far (see [`MAX_TOKENS`]).
    tokens: usize,
}

#[derive(Debug, Clone)]
enum Origin {
    /// From the query, at this offset.
    Query(usize),
    /// From the body of a macro used at `use_span` of the query, at this offset of its
    /// source.
    Macro {
        use_start: usize,
        use_end: usize,
        name: String,
        source: std::sync::Arc<Source>,
        at: usize,
    },
}

impl Expanded {
    /// The query as it is, when nothing needs expanding.
    pub fn plain(src: &str) -> Expanded {
        Expanded {
            original: src.to_owned(),
            text: src.to_owned(),
            pieces: vec![(0, src.len(), Origin::Query(0))],
            tokens: 0,
        }
    }

    fn copy(&mut self, text: &str, from: usize, to: usize, inside: Option<(usize, usize, &Macro)>) {
        if from >= to {
            return;
        }
        let origin = match inside {
            None => Origin::Query(from),
            Some((use_start, use_end, m)) => Origin::Macro {
                use_start,
                use_end,
                name: m.name.clone(),
                source: std::sync::Arc::clone(&m.source),
                at: from,
            },
        };
        self.pieces.push((self.text.len(), to - from, origin));
        self.text.push_str(&text[from..to]);
    }

    /// A diagnostic about [`Expanded::text`] as one about [`Expanded::original`]: its
    /// span moved back to where it was written, or — inside a macro — to the macro's
    /// use, with the definition as its [`Site`].
    pub fn restore(&self, mut d: Diagnostic) -> Diagnostic {
        if self.text == self.original && d.site.is_none() {
            return d;
        }
        let piece = self
            .pieces
            .iter()
            .find(|(s, n, _)| d.start >= *s && d.start < s + n.max(&1))
            .or_else(|| self.pieces.last().filter(|(s, n, _)| d.start == s + n));
        match piece {
            Some((s, n, Origin::Query(at))) => {
                let shift = |x: usize| at + x.saturating_sub(*s).min(*n);
                let (start, end) = (shift(d.start), shift(d.end.max(d.start)));
                d.start = start;
                d.end = end.max(start);
            }
            Some((
                s,
                n,
                Origin::Macro {
                    use_start,
                    use_end,
                    name,
                    source,
                    at,
                },
            )) => {
                let shift = |x: usize| at + x.saturating_sub(*s).min(*n);
                d.site = Some(Box::new(Site {
                    name: name.clone(),
                    place: source.name.clone(),
                    text: source.text.clone(),
                    start: shift(d.start),
                    end: shift(d.end.max(d.start)).max(shift(d.start)),
                }));
                d.start = *use_start;
                d.end = *use_end;
            }
            // Between pieces (a parenthesis added around a body): the end of the query.
            None => {
                d.start = self.original.len();
                d.end = self.original.len();
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(text: &str) -> Library {
        let mut l = Library::default();
        l.add_file("macros.aq", text).unwrap();
        l
    }

    #[test]
    fn filters_lists_and_pipelines_expand_in_place() {
        let l = lib(
            "# shared\nlet admins = event ~ \"*admin*\" or event:added_org_admin;\n\
             let corp = (10.0.0.0/8, 192.168.0.0/16);\nlet top = | count by actor | sort -count | head 5;\n\
             let outside = ip not in $corp;",
        );
        let e = l.expand("not $admins $outside since 7d $top").unwrap();
        assert_eq!(
            e.text,
            "not (event ~ \"*admin*\" or event:added_org_admin) (ip not in (10.0.0.0/8, 192.168.0.0/16)) since 7d | count by actor | sort -count | head 5"
        );
        // A `$` in a string is text.
        assert_eq!(
            l.expand("message = \"$admins\"").unwrap().text,
            "message = \"$admins\""
        );
        // Statements in the query itself, shadowing the file's.
        let e = l
            .expand("let admins = actor:root;\n$admins | count")
            .unwrap();
        assert_eq!(e.text, "(actor:root) | count");
    }

    /// Issue 27, item 3: ten uses a level, seven levels deep, was 10^7 copies of the
    /// first body (an abort on a 2.4 GB allocation); it stops at the cap, at the use.
    #[test]
    fn an_expansion_that_grows_as_a_power_is_stopped_at_its_use() {
        let mut text = String::from("let a0 = actor = \"x\";\n");
        for i in 1..=7 {
            let uses = vec![format!("$a{}", i - 1); 10].join(" or ");
            text.push_str(&format!("let a{i} = {uses};\n"));
        }
        let query = format!("{text}$a7 | count");
        let d = Library::default().expand(&query).unwrap_err();
        assert_eq!(d[0].code, "E0444");
        assert_eq!(&query[d[0].start..d[0].end], "$a7");
        assert!(d[0].message.contains("20000 tokens"), "{}", d[0].message);
        // Three levels (a thousand copies) expand as before.
        let ok = format!("{text}$a3 | count");
        let e = Library::default().expand(&ok).unwrap();
        assert_eq!(e.text.matches("actor").count(), 1000);
    }

    #[test]
    fn unknown_names_and_cycles_are_errors_at_the_use() {
        let l = lib("let admins = event:x;");
        let d = l.expand("$admin | count").unwrap_err().remove(0);
        assert_eq!((d.code, d.start, d.end), ("E0442", 0, 6));
        assert!(d.help.iter().any(|h| h.contains("$admins")));
        let l = lib("let a = $a;");
        assert_eq!(l.expand("$a").unwrap_err()[0].code, "E0443");
        assert_eq!(
            Library::default().expand("let x = a").unwrap_err()[0].code,
            "E0440"
        );
    }

    #[test]
    fn an_error_inside_a_macro_points_at_its_use_and_its_definition() {
        let l = lib("let bad = actr:alice;");
        let e = l.expand("since 1d $bad | count").unwrap();
        let at = e.text.find("actr").unwrap();
        let d = e.restore(Diagnostic::error(
            "E0101",
            "unknown field `actr`",
            at,
            at + 4,
        ));
        assert_eq!((d.start, d.end), (9, 13));
        let site = d.site.expect("the definition");
        assert_eq!(&site.text[site.start..site.end], "actr");
        assert_eq!(site.place, "macros.aq");
        // Outside macros, spans move back by what the expansion added before them.
        let e = l.expand("$bad | cuont").unwrap();
        let at = e.text.find("cuont").unwrap();
        let d = e.restore(Diagnostic::error("E0401", "unknown stage", at, at + 5));
        assert_eq!(&"$bad | cuont"[d.start..d.end], "cuont");
    }
}
