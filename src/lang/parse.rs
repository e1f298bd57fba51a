//! The parser: query text -> [`Query`], with a span on every node.
//!
//! nom does the lexemes (words, strings, numbers, durations, regexes); the productions
//! of `grammar/auditq.ebnf` are methods of `Parser`, each quoting the production it
//! implements. Errors are [`Diagnostic`]s. Recovery: the query is cut at top-level `|`
//! and each part parsed on its own, and a parenthesised group that fails is skipped to
//! its `)`, so one run reports several errors. Nesting is limited to [`MAX_DEPTH`].

use std::cell::{Cell, RefCell};

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, digit1, satisfy};
use nom::combinator::{opt, recognize};
use nom::multi::many1;
use nom::sequence::pair;
use nom::{IResult, Parser as _};

use super::ast::*;
use super::lex::{self, is_bare_char};
use crate::diag::{Diagnostic, did_you_mean};

/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 64;

/// Words that end a filter or have a meaning of their own; never bare values.
pub const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "has",
    "since",
    "until",
    "between",
    "on",
    "last",
    "today",
    "yesterday",
    "tz",
    "now",
    "ago",
    "by",
    "as",
];

/// Words that start a time clause.
const TIME_WORDS: &[&str] = &[
    "since",
    "until",
    "between",
    "on",
    "last",
    "today",
    "yesterday",
    "tz",
];

/// Stage names (after `|`), with their aliases.
pub const STAGES: &[&str] = &[
    "where",
    "fields",
    "sort",
    "head",
    "limit",
    "count",
    "stats",
    "top",
    "rare",
    "distinct",
    "dedup",
    "timechart",
    "bucket",
    "sequence",
    "first_seen",
    "lookup",
    "rename",
];

/// Units of a duration; snap units.
pub const DURATION_UNITS: &[&str] = &["s", "m", "h", "d", "w"];
pub const SNAP_UNITS: &[&str] = &["s", "m", "h", "d", "w", "mo", "y"];

type Res<'a, T> = Result<(&'a str, T), Diagnostic>;

/// Parse a query; every problem found, or the tree.
pub fn parse(src: &str) -> Result<Query, Vec<Diagnostic>> {
    let p = Parser {
        src,
        depth: Cell::new(0),
        errors: RefCell::new(Vec::new()),
    };
    let parts = split_stages(src, &lex::tokens(src)).map_err(|d| vec![d])?;
    let query = p.query(&parts);
    let errors = p.errors.into_inner();
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors)
    }
}

struct Parser<'a> {
    src: &'a str,
    depth: Cell<usize>,
    errors: RefCell<Vec<Diagnostic>>,
}

// ------------------------------------------------------------------------ lexemes

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// ident = ( letter | "_" ) , { letter | digit | "_" } ;
fn ident(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(is_word_char),
    ))
    .parse(i)
}

/// The dotted form of a path (the quoted form is a token: see [`Parser::field_then`]).
fn dotted(i: &str) -> IResult<&str, &str> {
    recognize(pair(ident, nom::multi::many0(pair(char('.'), ident)))).parse(i)
}

/// duration = duration_part , { duration_part } ;
/// duration_part = digit , { digit } , unit ;
fn duration(i: &str) -> IResult<&str, &str> {
    recognize(many1(pair(
        digit1,
        alt((tag("s"), tag("m"), tag("h"), tag("d"), tag("w"))),
    )))
    .parse(i)
    .and_then(|(rest, d)| {
        // `7days` or `10m5` is not a duration.
        if rest.starts_with(is_word_char) {
            Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )))
        } else {
            Ok((rest, d))
        }
    })
}

/// number = digit , { digit } , [ "." , digit , { digit } ] ;
fn number(i: &str) -> IResult<&str, &str> {
    let (rest, n) = recognize(pair(digit1, opt(pair(char('.'), digit1)))).parse(i)?;
    if rest.starts_with(is_bare_char) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((rest, n))
}

/// The word at the start of `i` (letters, digits, `_`), lower-cased, if any.
fn word(i: &str) -> Option<String> {
    let n = i.find(|c: char| !is_word_char(c)).unwrap_or(i.len());
    (n > 0).then(|| i[..n].to_ascii_lowercase())
}

/// Whether `i` starts with keyword `kw` (case-insensitive, whole word).
fn at_keyword(i: &str, kw: &str) -> bool {
    word(i).is_some_and(|w| w == kw)
}

/// The offsets of `(`, `)` and `|` outside literals and comments (see [`lex`]); or the
/// literal that is never closed.
fn structure(src: &str, tokens: &[lex::Token]) -> Result<Vec<(usize, u8)>, Diagnostic> {
    let mut out = Vec::new();
    for t in tokens {
        let start = t.span.start;
        match t.kind {
            lex::Kind::Str {
                quote,
                closed: false,
            } => {
                let mut d =
                    Diagnostic::error("E0002", "unterminated string literal", start, src.len())
                        .label("this is never closed");
                if quote == '"' {
                    d = d.help("close it with `\"`; a `\"` inside a string is written `\\\"`");
                }
                return Err(d);
            }
            lex::Kind::Field { closed: false } => {
                return Err(Diagnostic::error(
                    "E0002",
                    "unterminated field name literal",
                    start,
                    src.len(),
                )
                .label("this is never closed"));
            }
            lex::Kind::Regex { closed: false } => {
                return Err(Diagnostic::error(
                    "E0003",
                    "unterminated regular expression",
                    start,
                    src.len(),
                )
                .label("this `/` is never closed")
                .help("end the regex with `/`, e.g. event ~ /login_(failed|succeeded)/"));
            }
            lex::Kind::LParen => out.push((start, b'(')),
            lex::Kind::RParen => out.push((start, b')')),
            lex::Kind::LBracket => out.push((start, b'[')),
            lex::Kind::RBracket => out.push((start, b']')),
            lex::Kind::Pipe => out.push((start, b'|')),
            _ => {}
        }
    }
    Ok(out)
}

/// Check quotes and parentheses before parsing, so the root cause is reported first;
/// then cut the query at `|` outside parentheses: (start offset, text) of each part.
fn split_stages<'s>(
    src: &'s str,
    tokens: &[lex::Token],
) -> Result<Vec<(usize, &'s str)>, Diagnostic> {
    // The `(` and `[` open at each point, innermost last.
    let mut open: Vec<(usize, u8)> = Vec::new();
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, c) in structure(src, tokens)? {
        match c {
            b'(' | b'[' => open.push((at, c)),
            b')' | b']' => {
                let opener = if c == b')' { b'(' } else { b'[' };
                match open.pop() {
                    Some((_, o)) if o == opener => {}
                    Some((_, o)) => {
                        let close = if o == b'(' { ')' } else { ']' };
                        return Err(Diagnostic::error(
                            "E0005",
                            format!("`{}` closes a `{}`", c as char, o as char),
                            at,
                            at + 1,
                        )
                        .label(format!("expected `{close}`"))
                        .help(format!(
                            "a `{}` is still open here: close it with `{close}` first",
                            o as char
                        )));
                    }
                    None => {
                        return Err(Diagnostic::error(
                            "E0005",
                            format!("unmatched `{}`", c as char),
                            at,
                            at + 1,
                        )
                        .label(format!("no `{}` before it", opener as char))
                        .help(format!(
                            "remove it, or add the `{}` it closes",
                            opener as char
                        )));
                    }
                }
            }
            b'|' if open.is_empty() => {
                parts.push((start, &src[start..at]));
                start = at + 1;
            }
            _ => {}
        }
    }
    if let Some(&(at, o)) = open.first() {
        let close = if o == b'(' { ')' } else { ']' };
        return Err(
            Diagnostic::error("E0004", format!("unclosed `{}`", o as char), at, at + 1)
                .label("opened here, never closed")
                .help(format!("insert the missing `{close}`")),
        );
    }
    parts.push((start, &src[start..]));
    Ok(parts)
}

impl<'a> Parser<'a> {
    fn at(&self, i: &str) -> usize {
        // `i` is always a suffix of the part being parsed, itself a slice of `src`.
        i.as_ptr() as usize - self.src.as_ptr() as usize
    }

    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.at(from), self.at(to))
    }

    /// The token `lex.rs` reads at the start of `i` (none at its end), a `/` a regex
    /// when `operand`. The parser reads layout, literals, quoted names and regexes only
    /// through it: where each ends is the lexer's business alone.
    fn token(&self, i: &str, operand: bool) -> Option<lex::Token> {
        if i.is_empty() {
            return None;
        }
        let (kind, len) = lex::next(i, operand);
        let at = self.at(i);
        Some(lex::Token {
            kind,
            span: Span::new(at, at + len),
        })
    }

    /// Whether a string literal starts `t`.
    fn is_string(&self, t: &str) -> bool {
        self.token(t, false)
            .is_some_and(|k| matches!(k.kind, lex::Kind::Str { .. }))
    }

    /// whitespace = { " " | "\t" | "\n" | "\r" | comment } ;
    /// comment = "#" , { character - newline } | "/*" , { character } , "*/" ;
    ///
    /// `i` after its layout tokens.
    fn ws<'s>(&self, mut i: &'s str) -> &'s str {
        while !i.is_empty() {
            let (kind, len) = lex::next(i, false);
            if !matches!(kind, lex::Kind::Space | lex::Kind::Comment) {
                break;
            }
            i = &i[len..];
        }
        i
    }

    fn error(&self, d: Diagnostic) {
        self.errors.borrow_mut().push(d);
    }

    /// A diagnostic for "expected X" at the start of `i`.
    fn expected(&self, i: &str, what: &str) -> Diagnostic {
        let i = self.ws(i);
        let at = self.at(i);
        let found = match i.chars().next() {
            None => "the end of the query".to_owned(),
            Some(_) => {
                let n = i
                    .find(|c: char| c.is_whitespace())
                    .unwrap_or(i.len())
                    .min(20);
                let n = (0..=n).rev().find(|&k| i.is_char_boundary(k)).unwrap_or(0);
                format!(
                    "`{}`",
                    &i[..n.max(i.chars().next().map_or(0, char::len_utf8))]
                )
            }
        };
        let width = i.chars().next().map_or(0, char::len_utf8);
        Diagnostic::error(
            "E0001",
            format!("expected {what}, found {found}"),
            at,
            at + width,
        )
        .label(format!("expected {what}"))
    }

    /// query = [ head ] , { "|" , stage } ;
    fn query(&self, parts: &[(usize, &'a str)]) -> Query {
        let mut q = Query::default();
        let (_, head) = parts[0];
        if let Some((filter, time)) = self.head(head) {
            q.filter = filter;
            q.time = time;
        }
        for &(_, text) in &parts[1..] {
            match self.stage(text) {
                Ok(stage) => q.stages.push(stage),
                Err(d) => self.error(d),
            }
        }
        q
    }

    /// head = { time_clause } , [ filter , { time_clause } ] ;
    fn head(&self, text: &'a str) -> Option<(Option<Expr>, Vec<TimeClause>)> {
        let mut time = Vec::new();
        let mut filter = None;
        let mut i = self.ws(text);
        while !i.is_empty() {
            if TIME_WORDS.iter().any(|w| at_keyword(i, w)) {
                match self.time_clause(i) {
                    Ok((rest, t)) => {
                        time.push(t);
                        i = self.ws(rest);
                    }
                    Err(d) => {
                        self.error(d);
                        return None;
                    }
                }
            } else if filter.is_none() {
                match self.filter(i) {
                    Ok((rest, e)) => {
                        filter = Some(e);
                        i = self.ws(rest);
                    }
                    Err(d) => {
                        self.error(d);
                        return None;
                    }
                }
            } else {
                self.error(
                    self.expected(i, "a time clause or `|`").help(
                        "the filter comes first, time clauses after it: `actor:alice since 7d`",
                    ),
                );
                return None;
            }
        }
        Some((filter, time))
    }

    /// filter = or_expr ;
    /// or_expr = and_expr , { "or" , and_expr } ;
    fn filter(&self, i: &'a str) -> Res<'a, Expr> {
        let start = self.ws(i);
        let (mut i, first) = self.and_expr(start)?;
        let mut items = vec![first];
        loop {
            let t = self.ws(i);
            if !at_keyword(t, "or") {
                break;
            }
            let (rest, e) = self.and_expr(&t[2..])?;
            items.push(e);
            i = rest;
        }
        Ok(if items.len() == 1 {
            (i, items.pop().expect("one item"))
        } else {
            (i, Expr::Or(items, self.span(start, i)))
        })
    }

    /// Whether a unary can start at `t` (juxtaposition = `and`).
    fn starts_unary(t: &str) -> bool {
        match t.chars().next() {
            None | Some(')') | Some(']') | Some('|') | Some(',') => false,
            _ => !["or", "and"]
                .iter()
                .chain(TIME_WORDS)
                .any(|k| at_keyword(t, k)),
        }
    }

    /// and_expr = unary , { [ "and" ] , unary } ;
    fn and_expr(&self, i: &'a str) -> Res<'a, Expr> {
        let start = self.ws(i);
        let (mut i, first) = self.unary(start)?;
        let mut items = vec![first];
        loop {
            let mut t = self.ws(i);
            if at_keyword(t, "and") {
                t = &t[3..];
            } else if !Self::starts_unary(t) {
                break;
            }
            let (rest, e) = self.unary(t)?;
            items.push(e);
            i = rest;
        }
        Ok(if items.len() == 1 {
            (i, items.pop().expect("one item"))
        } else {
            (i, Expr::And(items, self.span(start, i)))
        })
    }

    fn deeper(&self, i: &str) -> Result<(), Diagnostic> {
        if self.depth.get() >= MAX_DEPTH {
            let at = self.at(self.ws(i));
            return Err(Diagnostic::error(
                "E0006",
                format!("the query nests deeper than {MAX_DEPTH} levels"),
                at,
                at + 1,
            )
            .label("too deep")
            .help("flatten the parentheses or `not`s"));
        }
        self.depth.set(self.depth.get() + 1);
        Ok(())
    }

    /// unary = "not" , unary | "!" , unary | "-" , qualifier | atom ;
    fn unary(&self, i: &'a str) -> Res<'a, Expr> {
        let start = self.ws(i);
        self.deeper(start)?;
        let result = if at_keyword(start, "not") {
            self.unary(&start[3..])
                .map(|(rest, e)| (rest, Expr::Not(Box::new(e), self.span(start, rest))))
        } else if let Some(rest) = start.strip_prefix('!').filter(|r| !r.starts_with('=')) {
            self.unary(rest)
                .map(|(rest, e)| (rest, Expr::Not(Box::new(e), self.span(start, rest))))
        } else if let Some(rest) = start
            .strip_prefix('-')
            .filter(|r| r.starts_with(is_word_char))
        {
            match self.field_then(rest) {
                Some((field, after)) if after.starts_with(':') => self
                    .qualifier(field, after)
                    .map(|(rest, e)| (rest, Expr::Not(Box::new(e), self.span(start, rest)))),
                _ => Err(self
                    .expected(rest, "a qualifier such as `actor:alice` after `-`")
                    .help("`-` negates a qualifier: `-actor:svc-*`; use `not` for anything else")),
            }
        } else {
            self.atom(start)
        };
        self.depth.set(self.depth.get() - 1);
        result
    }

    /// path = ident , { "." , ident } | "`" , { character - "`" } , "`" ;
    ///
    /// A field and the input after it, if a path starts at `i`.
    fn field_then(&self, i: &'a str) -> Option<(Field, &'a str)> {
        let quoted = self.token(i, false).filter(|t| {
            t.kind == lex::Kind::Field { closed: true } && t.span.end - t.span.start > 2
        });
        let (rest, name) = match quoted {
            Some(t) => {
                let n = t.span.end - t.span.start;
                (&i[n..], &i[1..n - 1])
            }
            None => dotted(i).ok()?,
        };
        let name = name.to_owned();
        Some((
            Field {
                name,
                span: self.span(i, rest),
            },
            rest,
        ))
    }

    /// atom = "(" , filter , ")" | "has" , path | comparison | qualifier | string ;
    fn atom(&self, i: &'a str) -> Res<'a, Expr> {
        let start = self.ws(i);
        if let Some(inner) = start.strip_prefix('(') {
            return match self.filter(inner) {
                Ok((rest, e)) => match self.ws(rest).strip_prefix(')') {
                    Some(rest) => Ok((rest, e)),
                    None => Err(self.expected(rest, "`)`")),
                },
                Err(d) => {
                    // Recover at the matching `)`: report, skip the group, go on.
                    self.error(d);
                    let close = lex::matching_paren(start).unwrap_or(start.len());
                    let rest = &start[(close + 1).min(start.len())..];
                    Ok((rest, Expr::Text(String::new(), self.span(start, rest))))
                }
            };
        }
        if self.is_string(start) {
            let (rest, text) = self.string(start)?;
            return Ok((rest, Expr::Text(text, self.span(start, rest))));
        }
        if at_keyword(start, "has") {
            let after = self.ws(&start[3..]);
            let Some((field, rest)) = self.field_then(after) else {
                return Err(self.expected(after, "a field after `has`"));
            };
            return Ok((rest, Expr::Has(field, self.span(start, rest))));
        }
        let Some((field, after)) = self.field_then(start) else {
            return Err(self.expected(start, "a filter").help(
                "e.g. `actor:alice`, `event ~ \"user_*\"`, `ip in 10.0.0.0/8` or `\"free text\"`",
            ));
        };
        if after.starts_with(':') {
            return self.qualifier(field, after);
        }
        self.comparison(field, start, after)
    }

    /// comparison = path , cmp_op , operand | path , [ "not" ] , "in" , set ;
    fn comparison(&self, field: Field, start: &'a str, after: &'a str) -> Res<'a, Expr> {
        let t = self.ws(after);
        let negated = at_keyword(t, "not") && at_keyword(self.ws(&t[3..]), "in");
        let in_at = if negated { self.ws(&t[3..]) } else { t };
        if at_keyword(in_at, "in") {
            let (rest, values) = self.set(&in_at[2..])?;
            return Ok((
                rest,
                Expr::In {
                    field,
                    negated,
                    values,
                    span: self.span(start, rest),
                },
            ));
        }
        let ops: [(&str, CmpOp); 10] = [
            ("!==", CmpOp::ExactNe),
            ("==", CmpOp::ExactEq),
            ("!=", CmpOp::Ne),
            ("!~", CmpOp::NotMatch),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("=", CmpOp::Eq),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
            ("~", CmpOp::Match),
        ];
        let Some((sym, op)) = ops.iter().find(|(s, _)| t.starts_with(s)) else {
            let mut d = self.expected(t, "an operator (`=`, `~`, `in`, `:` …)");
            // Not an operator but the start of something else: a bare word was written
            // where a filter was expected (`alice since 7d`).
            if t.is_empty() || t.starts_with(|c: char| c.is_alphanumeric() || "\"'|()-".contains(c))
            {
                // `alice since 7d`: a bare word where a filter was expected.
                d = Diagnostic::error(
                    "E0102",
                    format!("bare word `{}` is not a filter", field.name),
                    field.span.start,
                    field.span.end,
                )
                .label("not a filter");
                let lower = field.name.to_ascii_lowercase();
                d = if STAGES.contains(&lower.as_str()) {
                    // `count by action`: a stage written without its `|`.
                    let rest = self.src[field.span.start..].trim_end();
                    d.label("a stage, but stages come after `|`")
                        .help(format!("stages start with `|`: did you mean `| {rest}`?"))
                } else {
                    d.help(format!(
                        "did you mean `actor:{0}` or the free-text search `\"{0}\"`?",
                        field.name
                    ))
                };
            }
            return Err(d);
        };
        let (rest, value) = self.operand(
            &t[sym.len()..],
            matches!(op, CmpOp::Match | CmpOp::NotMatch),
        )?;
        Ok((
            rest,
            Expr::Cmp {
                field,
                op: *op,
                value,
                span: self.span(start, rest),
            },
        ))
    }

    /// qualifier = path , ":" , qvalue ;
    /// qvalue = ( "<=" | ">=" | "<" | ">" ) , scalar | "(" , scalar , { "," , scalar } , ")"
    ///        | "*" | scalar ;
    fn qualifier(&self, field: Field, colon: &'a str) -> Res<'a, Expr> {
        let start = &self.src[field.span.start..];
        let v = &colon[1..];
        if v.starts_with(char::is_whitespace) || v.is_empty() {
            return Err(self
                .expected(v, "a value right after `:`")
                .help(format!("write `{}:value` without a space", field.name)));
        }
        for (sym, op) in [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ] {
            if let Some(rest) = v.strip_prefix(sym) {
                let (rest, value) = self.scalar(rest)?;
                let span = self.span(start, rest);
                return Ok((
                    rest,
                    Expr::Cmp {
                        field,
                        op,
                        value,
                        span,
                    },
                ));
            }
        }
        if v.starts_with('(') {
            let (rest, values) = self.set(v)?;
            let span = self.span(start, rest);
            return Ok((
                rest,
                Expr::In {
                    field,
                    negated: false,
                    values,
                    span,
                },
            ));
        }
        if let Some(rest) = v.strip_prefix('*')
            && !rest.starts_with(is_bare_char)
        {
            let span = self.span(start, rest);
            return Ok((rest, Expr::Has(field, span)));
        }
        let (rest, value) = self.scalar(v)?;
        let op = if value.text().contains(['*', '?']) {
            CmpOp::Match
        } else {
            CmpOp::Eq
        };
        let span = self.span(start, rest);
        Ok((
            rest,
            Expr::Cmp {
                field,
                op,
                value,
                span,
            },
        ))
    }

    /// set = "(" , operand , { "," , operand } , ")" | operand ;
    fn set(&self, i: &'a str) -> Res<'a, Vec<Value>> {
        let t = self.ws(i);
        let Some(mut rest) = t.strip_prefix('(') else {
            let (rest, v) = self.operand(t, true)?;
            return Ok((rest, vec![v]));
        };
        let mut values = Vec::new();
        loop {
            let (r, v) = self.operand(rest, true)?;
            values.push(v);
            let r = self.ws(r);
            if let Some(r) = r.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = r.strip_prefix(')') {
                return Ok((r, values));
            } else {
                return Err(self.expected(r, "`,` or `)`"));
            }
        }
    }

    /// operand = regex | scalar ;
    ///
    /// A regex only after `~`, `!~` and in `in (…)`.
    fn operand(&self, i: &'a str, regex_ok: bool) -> Res<'a, Value> {
        let t = self.ws(i);
        let regex = self
            .token(t, true)
            .is_some_and(|t| matches!(t.kind, lex::Kind::Regex { .. }));
        if regex_ok && regex {
            return self.regex(t);
        }
        self.scalar(t)
    }

    /// regex = "/" , { character - "/" | "\/" } , "/" , { "i" | "s" | "m" | "x" } ;
    fn regex(&self, t: &'a str) -> Res<'a, Value> {
        // Where it ends is the lexer's: the token `/…/flags` (flags never hold a `/`).
        let Some(token) = self
            .token(t, true)
            .filter(|k| k.kind == lex::Kind::Regex { closed: true })
        else {
            return Err(self.expected(&t[t.len()..], "`/` closing the regex"));
        };
        let text = &t[..token.span.end - token.span.start];
        let close = text
            .rfind('/')
            .expect("a closed regex ends with `/` and flags");
        let pattern = text[1..close].replace("\\/", "/");
        let after = &text[close + 1..];
        let flags_len = after.len();
        let rest = &t[text.len()..];
        let span = self.span(t, rest);
        if let Err(e) = regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .build()
        {
            let reason = e.to_string();
            let last = reason.lines().last().unwrap_or("").trim().to_owned();
            return Err(Diagnostic::error(
                "E0310",
                "invalid regular expression",
                span.start,
                span.end,
            )
            .label(last.trim_start_matches("error: ").to_owned())
            .help(
                "escape a literal parenthesis as `\\(`, or use a glob: event ~ \"permission*\"",
            ));
        }
        Ok((
            rest,
            Value::Regex(pattern, after[..flags_len].to_owned(), span),
        ))
    }

    /// scalar = string | number | bare_word ;
    fn scalar(&self, i: &'a str) -> Res<'a, Value> {
        let t = self.ws(i);
        if self.is_string(t) {
            let (rest, s) = self.string(t)?;
            return Ok((rest, Value::Str(s, self.span(t, rest))));
        }
        if let Ok((rest, n)) = number(t) {
            return Ok((rest, Value::Num(n.to_owned(), self.span(t, rest))));
        }
        let n = t.find(|c: char| !is_bare_char(c)).unwrap_or(t.len());
        let w = &t[..n];
        if n == 0 || KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) {
            return Err(self.expected(t, "a value"));
        }
        let rest = &t[n..];
        Ok((rest, Value::Str(w.to_owned(), self.span(t, rest))))
    }

    /// string = '"' , { character - '"' - "\" | escape } , '"' | "'" , { character - "'" } , "'" ;
    /// escape = "\" , ( '"' | "\" | "n" | "t" ) ;
    fn string(&self, t: &'a str) -> Res<'a, String> {
        // Where it ends is the lexer's; what its escapes mean, the parser's.
        let Some(lex::Token {
            kind:
                lex::Kind::Str {
                    quote,
                    closed: true,
                },
            span,
        }) = self.token(t, false)
        else {
            let at = self.at(t);
            return Err(Diagnostic::error(
                "E0002",
                "unterminated string literal",
                at,
                self.src.len(),
            ));
        };
        let len = span.end - span.start;
        let rest = &t[len..];
        let mut out = String::new();
        let mut chars = t[..len - 1].char_indices().skip(1);
        while let Some((_, c)) = chars.next() {
            if c == '\\' && quote == '"' {
                match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((j, other)) => {
                        let at = self.at(t) + j - 1;
                        return Err(Diagnostic::error(
                            "E0007",
                            format!("unknown escape `\\{other}`"),
                            at,
                            at + 1 + other.len_utf8(),
                        )
                        .label("not an escape")
                        .help("escapes are \\\" \\\\ \\n \\t; for regexes and paths use '…' (no escapes)"));
                    }
                    None => break,
                }
            } else {
                out.push(c);
            }
        }
        Ok((rest, out))
    }

    // -------------------------------------------------------------------- time

    /// time_clause = "since" , time_point | "until" , time_point
    ///             | "between" , time_point , "and" , time_point | "on" , date
    ///             | "last" , duration | "today" | "yesterday" | "tz" , string ;
    fn time_clause(&self, t: &'a str) -> Res<'a, TimeClause> {
        let w = word(t).expect("at a keyword");
        let after = &t[w.len()..];
        match w.as_str() {
            "since" | "until" => {
                let (rest, p) = self.time_point(after)?;
                let span = self.span(t, rest);
                Ok((
                    rest,
                    if w == "since" {
                        TimeClause::Since(p, span)
                    } else {
                        TimeClause::Until(p, span)
                    },
                ))
            }
            "between" => {
                let (rest, a) = self.time_point(after)?;
                let r = self.ws(rest);
                if !at_keyword(r, "and") {
                    return Err(self.expected(r, "`and` between the two times"));
                }
                let (rest, b) = self.time_point(&r[3..])?;
                Ok((rest, TimeClause::Between(a, b, self.span(t, rest))))
            }
            "on" => {
                let (rest, v) = self.scalar(after)?;
                Ok((
                    rest,
                    TimeClause::On(v.text().to_owned(), self.span(t, rest)),
                ))
            }
            "last" => {
                let a = self.ws(after);
                let (rest, d) = self.duration(a)?;
                Ok((rest, TimeClause::Last(d, self.span(t, rest))))
            }
            "today" => Ok((after, TimeClause::Today(self.span(t, after)))),
            "yesterday" => Ok((after, TimeClause::Yesterday(self.span(t, after)))),
            _ => {
                let a = self.ws(after);
                if !self.is_string(a) {
                    return Err(self.expected(a, "a quoted time zone such as \"Europe/Berlin\""));
                }
                let (rest, z) = self.string(a)?;
                Ok((rest, TimeClause::Tz(z, self.span(t, rest))))
            }
        }
    }

    /// A duration, or an error that says what is wrong with it.
    fn duration(&self, a: &'a str) -> Res<'a, Dur> {
        if let Ok((rest, d)) = duration(a) {
            return Ok((rest, Dur::new(d)));
        }
        let digits = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let at = self.at(a);
        if digits > 0 {
            let unit_len = a[digits..]
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(a.len() - digits);
            return Err(if unit_len == 0 {
                Diagnostic::error(
                    "E0203",
                    format!("expected a duration unit after `{}`", &a[..digits]),
                    at,
                    at + digits,
                )
                .label("add a unit")
                .help(format!(
                    "units are s, m, h, d, w — e.g. `{}d`",
                    &a[..digits]
                ))
            } else {
                let unit = &a[digits..digits + unit_len];
                let mut d = Diagnostic::error(
                    "E0204",
                    format!("unknown duration unit `{unit}`"),
                    at + digits,
                    at + digits + unit_len,
                )
                .label("not a unit");
                if let Some(s) = did_you_mean(unit, DURATION_UNITS.iter().copied()) {
                    d = d.help(format!("did you mean `{}{s}`?", &a[..digits]));
                }
                d.help("units are s, m, h, d, w")
            });
        }
        Err(self.expected(a, "a duration such as `7d` or `24h`"))
    }

    /// snap = "@" , ( "s" | "m" | "h" | "d" | "w" | "mo" | "y" ) ;
    fn snap(&self, t: &'a str) -> Res<'a, Option<String>> {
        let Some(after) = t.strip_prefix('@') else {
            return Ok((t, None));
        };
        let n = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let unit = &after[..n];
        if !SNAP_UNITS.contains(&unit) {
            let at = self.at(t);
            return Err(Diagnostic::error(
                "E0205",
                format!("unknown snap unit `@{unit}`"),
                at,
                at + 1 + n,
            )
            .label("not a snap unit")
            .help("snap to the start of a unit: @s, @m, @h, @d, @w (Monday), @mo, @y"));
        }
        Ok((&after[n..], Some(unit.to_owned())))
    }

    /// time_point = "now" , [ snap ] | snap | string | timestamp | duration , [ snap ] , [ "ago" ] ;
    fn time_point(&self, i: &'a str) -> Res<'a, TimePoint> {
        let t = self.ws(i);
        if at_keyword(t, "now") {
            let (rest, snap) = self.snap(&t[3..])?;
            return Ok((
                rest,
                TimePoint::Now {
                    snap,
                    span: self.span(t, rest),
                },
            ));
        }
        if t.starts_with('@') {
            let (rest, snap) = self.snap(t)?;
            return Ok((
                rest,
                TimePoint::Snap(snap.expect("starts with @"), self.span(t, rest)),
            ));
        }
        if self.is_string(t) {
            let (rest, s) = self.string(t)?;
            return Ok((rest, TimePoint::At(s, self.span(t, rest))));
        }
        // A timestamp starts with four digits and a dash.
        let b = t.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
            let n = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || ":.+-".contains(c)))
                .unwrap_or(t.len());
            let rest = &t[n..];
            return Ok((rest, TimePoint::At(t[..n].to_owned(), self.span(t, rest))));
        }
        let (rest, d) = self.duration(t)?;
        let (rest, snap) = self.snap(rest)?;
        let r = self.ws(rest);
        let rest = if at_keyword(r, "ago") { &r[3..] } else { rest };
        Ok((
            rest,
            TimePoint::Ago {
                duration: d,
                snap,
                span: self.span(t, rest),
            },
        ))
    }

    // ------------------------------------------------------------------- stages

    /// stage = "where" , filter
    ///       | fields
    ///       | sort
    ///       | ( "head" | "limit" ) , number
    ///       | stats
    ///       | ( "top" | "rare" ) , [ number ] , path , [ "by" , path_list ]
    ///       | "distinct" , path_list
    ///       | "dedup" , path_list , [ "within" , duration ]
    ///       | "timechart" , duration , [ agg_item ] , [ "by" , path ]
    ///       | "bucket" , "time" , duration
    ///       | sequence
    ///       | lookup
    ///       | "first_seen" , path_list , [ "by" , path_list ] , [ "after" , duration ]
    ///       | rename ;
    fn stage(&self, text: &'a str) -> Result<Stage, Diagnostic> {
        let t = self.ws(text);
        let Some(name) = word(t) else {
            return Err(self
                .expected(t, "a stage name after `|`")
                .help(format!("stages: {}", STAGES.join(", "))));
        };
        let after = &t[name.len()..];
        let (rest, stage) = match name.as_str() {
            "where" => {
                let (rest, e) = self.filter(after)?;
                (
                    rest,
                    Stage::Where(Where {
                        filter: e,
                        span: self.span(t, rest),
                    }),
                )
            }
            "fields" => self.fields(t, after)?,
            "sort" => self.sort(t, after)?,
            "head" | "limit" => {
                let (rest, n) = self.count_arg(after, true)?;
                (
                    rest,
                    Stage::Head(Head {
                        n: n.expect("required"),
                        span: self.span(t, rest),
                    }),
                )
            }
            "stats" => self.stats(t, after)?,
            // An aggregate without `stats`: `| count by actor`, `| dc(ip) by actor`.
            n if AggFn::ALL.iter().any(|(a, _)| *a == n) => self.stats(t, t)?,
            "top" | "rare" => self.top(t, after, name == "rare")?,
            "distinct" => {
                let (rest, fields) = self.field_list(after)?;
                (
                    rest,
                    Stage::Distinct(Distinct {
                        fields,
                        span: self.span(t, rest),
                    }),
                )
            }
            "dedup" => self.dedup(t, after)?,
            "timechart" => self.timechart(t, after)?,
            "sequence" => self.sequence(t, after)?,
            "lookup" => self.lookup(t, after)?,
            "rename" => self.rename(t, after)?,
            "first_seen" => self.first_seen(t, after)?,
            "bucket" => {
                let a = self.ws(after);
                if !at_keyword(a, "time") {
                    return Err(self
                        .expected(a, "`time`")
                        .help("`bucket time 1h` rounds `time` down to the hour"));
                }
                let (rest, d) = self.duration(self.ws(&a[4..]))?;
                (
                    rest,
                    Stage::Bucket(Bucket {
                        every: d,
                        span: self.span(t, rest),
                    }),
                )
            }
            _ => {
                let s = self.at(t);
                let mut d = Diagnostic::error(
                    "E0401",
                    format!("unknown stage `{name}`"),
                    s,
                    s + name.len(),
                );
                if let Some(m) = did_you_mean(&name, STAGES.iter().copied()) {
                    d = d.help(format!("did you mean `{m}`?"));
                }
                return Err(d.help(format!("stages: {}", STAGES.join(", "))));
            }
        };
        let rest = self.ws(rest);
        if !rest.is_empty() {
            return Err(self.expected(rest, "`|` or the end of the query"));
        }
        Ok(stage)
    }

    /// sequence = "sequence" , [ "by" , path_list ] , "within" , duration , step , step , { step } , [ "until" , step ] ;
    fn sequence(&self, t: &'a str, after: &'a str) -> Result<(&'a str, Stage), Diagnostic> {
        let (rest, by) = self.by_clause(after)?;
        let r = self.ws(rest);
        if !at_keyword(r, "within") {
            return Err(self.expected(r, "`within` and a duration").help(
                "a sequence is bounded in time: `| sequence by actor within 1h [event:a] [event:b]`",
            ));
        }
        let (mut rest, within) = self.duration(self.ws(&r[6..]))?;
        let mut steps = Vec::new();
        while self.ws(rest).starts_with('[') {
            let (r, step) = self.step(self.ws(rest))?;
            steps.push(step);
            rest = r;
        }
        if steps.len() < 2 {
            let r = self.ws(rest);
            return Err(self
                .expected(r, "a step: a filter in brackets")
                .help("a sequence has two steps or more: `[event:group_user_added] [event ~ \"*delete*\"]`"));
        }
        let mut until = None;
        let r = self.ws(rest);
        if at_keyword(r, "until") {
            let r = self.ws(&r[5..]);
            if !r.starts_with('[') {
                return Err(self.expected(r, "`[`").help(
                    "`until [filter]`: an event matching it cancels the key's pending sequences",
                ));
            }
            let (r, step) = self.step(r)?;
            until = Some(step);
            rest = r;
        }
        let q = Sequence {
            by,
            within,
            steps,
            until,
            span: self.span(t, rest),
        };
        Ok((rest, Stage::Sequence(q)))
    }

    /// lookup = "lookup" , ( string | bare_word ) , "on" , path , [ "=" , path | "cidr" , path ] , [ "fields" , path_list ] ;
    fn lookup(&self, t: &'a str, after: &'a str) -> Result<(&'a str, Stage), Diagnostic> {
        let a = self.ws(after);
        let (rest, file) = if self.is_string(a) {
            self.string(a)?
        } else {
            let n = a.find(|c: char| !is_bare_char(c)).unwrap_or(a.len());
            if n == 0 {
                return Err(self.expected(a, "a file").help(
                    "`| lookup hr.csv on actor.email = email`: a .csv, .parquet or .ndjson file",
                ));
            }
            (&a[n..], a[..n].to_owned())
        };
        let r = self.ws(rest);
        if !at_keyword(r, "on") {
            return Err(self
                .expected(r, "`on` and the field to match")
                .help("`| lookup hr.csv on actor.email = email`"));
        }
        let Some((on, mut rest)) = self.field_then(self.ws(&r[2..])) else {
            return Err(self.expected(self.ws(&r[2..]), "a field name"));
        };
        let mut column = None;
        let mut cidr = false;
        let r = self.ws(rest);
        let by = if r.starts_with('=') && !r.starts_with("==") {
            Some(&r[1..])
        } else if at_keyword(r, "cidr") {
            cidr = true;
            Some(&r[4..])
        } else {
            None
        };
        if let Some(by) = by {
            let Some((c, r)) = self.field_then(self.ws(by)) else {
                return Err(self.expected(self.ws(by), "a column of the file"));
            };
            column = Some(c);
            rest = r;
        }
        let mut fields = Vec::new();
        let r = self.ws(rest);
        if at_keyword(r, "fields") {
            let (r, f) = self.field_list(&r[6..])?;
            fields = f;
            rest = r;
        }
        let l = Lookup {
            file,
            on,
            column,
            cidr,
            fields,
            span: self.span(t, rest),
        };
        Ok((rest, Stage::Lookup(l)))
    }

    /// The `dedup` stage: `| dedup actor within 1h`.
    fn dedup(&self, t: &'a str, after: &'a str) -> Res<'a, Stage> {
        let (mut rest, fields) = self.field_list(after)?;
        let mut within = None;
        let r = self.ws(rest);
        if at_keyword(r, "within") {
            let (r, d) = self.duration(self.ws(&r[6..]))?;
            within = Some(d);
            rest = r;
        }
        let span = self.span(t, rest);
        Ok((
            rest,
            Stage::Dedup(Dedup {
                fields,
                within,
                span,
            }),
        ))
    }

    /// The `first_seen` stage: `| first_seen country by actor.id after 30d`.
    fn first_seen(&self, t: &'a str, after: &'a str) -> Res<'a, Stage> {
        let (rest, fields) = self.field_list(after)?;
        let (mut rest, by) = self.by_clause(rest)?;
        let mut learn = None;
        let r = self.ws(rest);
        if at_keyword(r, "after") {
            let (r, d) = self.duration(self.ws(&r[5..]))?;
            learn = Some(d);
            rest = r;
        }
        let stage = Stage::FirstSeen(FirstSeen {
            fields,
            by,
            after: learn,
            span: self.span(t, rest),
        });
        Ok((rest, stage))
    }

    /// rename = "rename" , path , "as" , path , { "," , path , "as" , path } ;
    fn rename(&self, t: &'a str, after: &'a str) -> Res<'a, Stage> {
        let mut rest = after;
        let mut pairs = Vec::new();
        loop {
            let r = self.ws(rest);
            let Some((from, r)) = self.field_then(r) else {
                return Err(self.expected(r, "a column to rename"));
            };
            let r = self.ws(r);
            if !at_keyword(r, "as") {
                return Err(self
                    .expected(r, "`as` and the new name")
                    .help("`| rename actor.email as email, ip as source_ip`"));
            }
            let Some((to, r)) = self.field_then(self.ws(&r[2..])) else {
                return Err(self.expected(self.ws(&r[2..]), "the new name"));
            };
            pairs.push((from, to));
            match self.ws(r).strip_prefix(',') {
                Some(r) => rest = r,
                None => {
                    rest = r;
                    break;
                }
            }
        }
        let span = self.span(t, rest);
        Ok((rest, Stage::Rename(Rename { pairs, span })))
    }

    /// step = "[" , filter , "]" ;
    fn step(&self, t: &'a str) -> Res<'a, SeqStep> {
        let inner = self.ws(&t[1..]);
        if inner.starts_with(']') {
            return Err(self
                .expected(inner, "a filter")
                .help("a step is a filter: `[event:user_deleted]`"));
        }
        let (rest, filter) = self.filter(inner)?;
        let r = self.ws(rest);
        let Some(rest) = r.strip_prefix(']') else {
            return Err(self.expected(r, "`]` after the step's filter"));
        };
        Ok((
            rest,
            SeqStep {
                filter,
                span: self.span(t, rest),
            },
        ))
    }

    /// The `top` and `rare` stages: `| top 10 actor by country`.
    fn top(&self, t: &'a str, after: &'a str, rare: bool) -> Res<'a, Stage> {
        let (rest, n) = self.count_arg(after, false)?;
        let (rest, fields) = self.field_list(rest)?;
        if fields.len() != 1 {
            let s = fields[1].span;
            return Err(Diagnostic::error(
                "E0402",
                format!("`{}` takes one field", if rare { "rare" } else { "top" }),
                s.start,
                s.end,
            )
            .help("for combinations use `| count by a, b | sort -count | head N`"));
        }
        let (rest, by) = self.by_clause(rest)?;
        let field = fields.into_iter().next().expect("one field");
        Ok((
            rest,
            Stage::Top(Top {
                rare,
                n: n.unwrap_or(10),
                field,
                by,
                span: self.span(t, rest),
            }),
        ))
    }

    /// The `timechart` stage: `| timechart 1h count by event`.
    fn timechart(&self, t: &'a str, after: &'a str) -> Res<'a, Stage> {
        let (rest, d) = self.duration(self.ws(after))?;
        let r = self.ws(rest);
        let (rest, agg) = if word(r).is_some_and(|w| w != "by") {
            let (rest, a) = self.agg_item(r)?;
            (rest, Some(a))
        } else {
            (rest, None)
        };
        let (rest, by) = self.by_clause(rest)?;
        if by.len() > 1 {
            let s = by[1].span;
            return Err(Diagnostic::error(
                "E0402",
                "`timechart` splits by one field",
                s.start,
                s.end,
            ));
        }
        Ok((
            rest,
            Stage::Timechart(Timechart {
                span_text: d,
                agg,
                by: by.into_iter().next(),
                span: self.span(t, rest),
            }),
        ))
    }

    /// fields = "fields" , ( "*" | [ "-" ] , path , { "," , [ "-" ] , path } ) ;
    fn fields(&self, t: &'a str, after: &'a str) -> Result<(&'a str, Stage), Diagnostic> {
        // `fields *`: every column.
        if let Some(r) = self.ws(after).strip_prefix('*')
            && !r.starts_with(is_bare_char)
        {
            let star = self.ws(after);
            let field = Field {
                name: "*".to_owned(),
                span: self.span(star, r),
            };
            return Ok((
                r,
                Stage::Fields(Fields {
                    exclude: false,
                    fields: vec![field],
                    span: self.span(t, r),
                }),
            ));
        }
        let mut rest = after;
        let mut fields = Vec::new();
        let mut exclude = None;
        loop {
            let r = self.ws(rest);
            let (minus, r) = match r.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, r),
            };
            if exclude.is_some_and(|e| e != minus) {
                let at = self.at(self.ws(rest));
                return Err(Diagnostic::error(
                    "E0403",
                    "`fields` either keeps or drops fields, not both",
                    at,
                    at + 1,
                )
                .help("write `fields a, b` to keep, `fields -a, -b` to drop"));
            }
            exclude = Some(minus);
            let Some((f, r)) = self.field_then(r) else {
                return Err(self.expected(r, "a field name"));
            };
            fields.push(f);
            match self.ws(r).strip_prefix(',') {
                Some(r) => rest = r,
                None => {
                    rest = r;
                    break;
                }
            }
        }
        Ok((
            rest,
            Stage::Fields(Fields {
                exclude: exclude.unwrap_or(false),
                fields,
                span: self.span(t, rest),
            }),
        ))
    }

    /// sort = "sort" , [ "by" ] , sort_key , { "," , sort_key } ;
    /// sort_key = [ "-" | "+" ] , path , [ "asc" | "desc" ] ;
    fn sort(&self, t: &'a str, after: &'a str) -> Result<(&'a str, Stage), Diagnostic> {
        let mut rest = self.ws(after);
        if at_keyword(rest, "by") {
            rest = &rest[2..];
        }
        let mut keys = Vec::new();
        loop {
            let r = self.ws(rest);
            let (mut desc, r) = match r.as_bytes().first() {
                Some(b'-') => (true, &r[1..]),
                Some(b'+') => (false, &r[1..]),
                _ => (false, r),
            };
            let Some((field, r)) = self.field_then(r) else {
                return Err(self.expected(r, "a field to sort by"));
            };
            let mut r2 = self.ws(r);
            let mut r = r;
            if at_keyword(r2, "desc") {
                desc = true;
                r2 = &r2[4..];
                r = r2;
            } else if at_keyword(r2, "asc") {
                r2 = &r2[3..];
                r = r2;
            }
            keys.push(SortKey { field, desc });
            match self.ws(r).strip_prefix(',') {
                Some(r) => rest = r,
                None => {
                    rest = r;
                    break;
                }
            }
        }
        Ok((
            rest,
            Stage::Sort(Sort {
                keys,
                span: self.span(t, rest),
            }),
        ))
    }

    /// An optional (or required) count: `head 10`, `top 5 actor`.
    fn count_arg(&self, after: &'a str, required: bool) -> Res<'a, Option<u64>> {
        let a = self.ws(after);
        match number(a) {
            Ok((rest, n)) => match n.parse::<u64>() {
                Ok(n) => Ok((rest, Some(n))),
                Err(_) => {
                    let s = self.span(a, rest);
                    Err(Diagnostic::error(
                        "E0404",
                        format!("`{n}` is not a whole number of rows"),
                        s.start,
                        s.end,
                    ))
                }
            },
            Err(_) if !required => Ok((after, None)),
            Err(_) => Err(self.expected(a, "a number of rows")),
        }
    }

    /// path_list = path , { "," , path } ;
    fn field_list(&self, i: &'a str) -> Res<'a, Vec<Field>> {
        let mut rest = i;
        let mut fields = Vec::new();
        loop {
            let r = self.ws(rest);
            let Some((f, r)) = self.field_then(r) else {
                return Err(self.expected(r, "a field name"));
            };
            fields.push(f);
            match self.ws(r).strip_prefix(',') {
                Some(r) => rest = r,
                None => return Ok((r, fields)),
            }
        }
    }

    /// [ "by" , path_list ]
    fn by_clause(&self, i: &'a str) -> Res<'a, Vec<Field>> {
        let r = self.ws(i);
        if at_keyword(r, "by") {
            self.field_list(&r[2..])
        } else {
            Ok((i, Vec::new()))
        }
    }

    /// stats = [ "stats" ] , agg_item , { "," , agg_item } , [ "by" , path_list ] , [ window ] ;
    fn stats(&self, t: &'a str, from: &'a str) -> Result<(&'a str, Stage), Diagnostic> {
        let mut rest = from;
        let mut aggs = Vec::new();
        loop {
            let (r, a) = self.agg_item(rest)?;
            aggs.push(a);
            match self.ws(r).strip_prefix(',') {
                Some(r) => rest = r,
                None => {
                    rest = r;
                    break;
                }
            }
        }
        let (rest, by) = self.by_clause(rest)?;
        let (rest, window) = self.window(rest)?;
        Ok((
            rest,
            Stage::Stats(Stats {
                aggs,
                by,
                window,
                span: self.span(t, rest),
            }),
        ))
    }

    /// window = "over" , duration , [ "every" , duration ] , [ threshold ] ;
    /// threshold = ( ">=" | "<=" | "!=" | ">" | "<" | "=" ) , number ;
    fn window(&self, i: &'a str) -> Res<'a, Option<Window>> {
        let start = self.ws(i);
        if !at_keyword(start, "over") {
            return Ok((i, None));
        }
        let (mut rest, over) = self.duration(self.ws(&start[4..]))?;
        let mut every = None;
        let r = self.ws(rest);
        if at_keyword(r, "every") {
            let (r, d) = self.duration(self.ws(&r[5..]))?;
            every = Some(d);
            rest = r;
        }
        let mut threshold = None;
        let r = self.ws(rest);
        let ops = [
            (">=", CmpOp::Ge),
            ("<=", CmpOp::Le),
            ("!=", CmpOp::Ne),
            (">", CmpOp::Gt),
            ("<", CmpOp::Lt),
            ("=", CmpOp::Eq),
        ];
        if let Some((sym, op)) = ops.iter().find(|(sym, _)| r.starts_with(sym)) {
            let a = self.ws(&r[sym.len()..]);
            let Ok((r, n)) = number(a) else {
                return Err(self
                    .expected(a, "a number to compare the first aggregate with")
                    .help("e.g. `| count by actor over 5m > 10`"));
            };
            let value = n.parse().expect("the grammar's number is a float");
            threshold = Some((
                *op,
                Number {
                    text: n.to_owned(),
                    value,
                },
            ));
            rest = r;
        }
        Ok((
            rest,
            Some(Window {
                over,
                every,
                threshold,
                span: self.span(start, rest),
            }),
        ))
    }

    /// agg_item = agg_fn , [ "(" , path , ")" ] , [ "as" , ident ] ;
    fn agg_item(&self, i: &'a str) -> Res<'a, Agg> {
        let t = self.ws(i);
        let Some(name) = word(t) else {
            return Err(self.expected(t, "an aggregate such as `count` or `dc(ip)`"));
        };
        let Some(&(_, func)) = AggFn::ALL.iter().find(|(n, _)| *n == name) else {
            let s = self.at(t);
            let mut d = Diagnostic::error(
                "E0405",
                format!("unknown aggregate `{name}`"),
                s,
                s + name.len(),
            );
            if let Some(m) = did_you_mean(&name, AggFn::ALL.iter().map(|(n, _)| *n)) {
                d = d.help(format!("did you mean `{m}`?"));
            }
            return Err(d.help("aggregates: count, dc, min, max, first, last, values"));
        };
        let mut rest = &t[name.len()..];
        let mut field = None;
        if let Some(r) = self.ws(rest).strip_prefix('(') {
            let r = self.ws(r);
            if let Some(r2) = r.strip_prefix(')') {
                rest = r2;
            } else {
                let Some((f, r)) = self.field_then(r) else {
                    return Err(self.expected(r, "a field"));
                };
                let Some(r) = self.ws(r).strip_prefix(')') else {
                    return Err(self.expected(r, "`)`"));
                };
                field = Some(f);
                rest = r;
            }
        }
        if func != AggFn::Count && field.is_none() {
            let s = self.span(t, rest);
            return Err(Diagnostic::error(
                "E0406",
                format!("`{name}` needs a field"),
                s.start,
                s.end,
            )
            .help(format!("e.g. `{name}(actor)`")));
        }
        let mut alias = None;
        let r = self.ws(rest);
        if at_keyword(r, "as") {
            let a = self.ws(&r[2..]);
            let Ok((r2, name)) = ident(a) else {
                return Err(self.expected(a, "a column name after `as`"));
            };
            alias = Some(name.to_owned());
            rest = r2;
        }
        Ok((
            rest,
            Agg {
                func,
                field,
                alias,
                span: self.span(t, rest),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queries that parse; each must survive `parse(display(q)) == q`.
    pub const VALID: &[&str] = &[
        r#"actor = "x" and event ~ "permission*" since 7d"#,
        "actor:alice@example.com since 24h",
        "today",
        "event:user_login_failed since 1h | count by ip | sort -count",
        "-actor:svc-* event:*delete* since 30d",
        "ip not in (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) since 7d | top 10 ip",
        "country not in (US, CA, DE) since 30d | count by actor, country | sort -count",
        "event ~ /^(jira|confluence)_.*(admin|permission)/i since 90d@d | timechart 1d count by action",
        "actor.email == \"Ada@Example.com\" or (not has country and action != user_login)",
        "\"space\" since 2026-01-01T00:00:00Z until \"2026-02-01 08:00+02:00\"",
        "between 2026-02-01 and 2026-02-16 | stats count, dc(ip) as ips, min(time), max(time) by actor",
        "on 2026-02-16 tz \"Europe/Berlin\" | fields time, actor.email, event, ip",
        "yesterday | fields -message, -city | head 5",
        "last 24h | distinct actor, country",
        "since @w | dedup actor | sort time desc, actor asc",
        "time:>2026-01-01 time:<=2026-01-31 | rare 3 action by country",
        "action:(user_login, user_logout) | bucket time 1h | count by time",
        "| count",
        "since now@d | values(ip) by actor | limit 3",
        "context:FIN container.type ~ \"site*\" ! actor.id = x",
        "# a comment\nevent:user_login /* and a block */ since 7d",
        "ip in \"2001:db8::/32\" | first(time) as first_seen, last(time) by actor",
        "since 2h ago until now",
        "actor:'O\\Brien' since 3w2d",
    ];

    #[test]
    fn valid_queries_round_trip_through_display() {
        for q in VALID {
            let ast =
                parse(q).unwrap_or_else(|e| panic!("{q}: {}", crate::diag::render(q, &e, false)));
            let text = ast.to_string();
            let again = parse(&text)
                .unwrap_or_else(|e| panic!("{text}: {}", crate::diag::render(&text, &e, false)));
            assert_eq!(ast, again, "{q}\n -> {text}");
            // Display is a fixed point.
            assert_eq!(text, again.to_string());
        }
    }

    /// The first pass reads a regex where the parser does: after `in` and in a
    /// qualifier's list, a parenthesis inside it is the regex's (E0005 before).
    #[test]
    fn a_regex_after_in_keeps_its_parentheses() {
        for q in ["message in /[(]/ | count", "message:(/[(]/, x) | count"] {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
            assert_eq!(parsed.stages.len(), 1, "{q}");
        }
    }

    #[test]
    fn precedence_is_not_and_or() {
        let q = parse("a:1 b:2 or not c:3 and d:4").unwrap();
        assert_eq!(
            q.filter.unwrap().to_string(),
            r#"a = 1 and b = 2 or not c = 3 and d = 4"#
        );
        let q = parse("(a:1 or b:2) c:3").unwrap();
        assert_eq!(
            q.filter.unwrap().to_string(),
            r#"(a = 1 or b = 2) and c = 3"#
        );
        // `-q` and `not q` are the same tree.
        assert_eq!(parse("-actor:x").unwrap(), parse("not actor = x").unwrap());
        assert_eq!(parse("actor:x*").unwrap(), parse("actor ~ \"x*\"").unwrap());
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "(".repeat(10_000) + "a:1" + &")".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        assert_eq!(e[0].code, "E0006");
        let nots = "not ".repeat(10_000) + "a:1";
        assert_eq!(parse(&nots).unwrap_err()[0].code, "E0006");
        let unclosed = "(".repeat(10_000);
        assert_eq!(parse(&unclosed).unwrap_err()[0].code, "E0004");
    }

    #[test]
    fn several_errors_are_reported_in_one_run() {
        let e = parse("acter = | cuont by actor | head x").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        let e = parse("(a = ) or (b ~ /x(/) c:1").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    /// The structure check reads literals and comments as the parser does (one lexer):
    /// a `(` in a `/* … */` comment or a regex, a `)` in a `'…'` string after a
    /// backslash, a `|` in a quoted field name.
    #[test]
    fn structure_ignores_what_the_parser_ignores() {
        for q in [
            "actor = x /* ( */ | count",
            "event ~ /a[(]b/ | count by action",
            r"actor = 'a\' and (event ~ user_*) | count",
            "`actor.name` = \"a|b\" | head 1",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q).err());
        }
    }

    /// The productions `name = … ;` in `text`: (name, body with single spaces). In
    /// doc comments (`doc`), only those that start a `///` line.
    fn productions(text: &str, doc: bool) -> Vec<(String, String)> {
        let mut source = String::new();
        if doc {
            // Each doc line, with a marker where a production may start.
            for line in text.lines() {
                let Some(l) = line.trim_start().strip_prefix("///") else {
                    source.push('\u{1}');
                    continue;
                };
                let l = l.trim();
                let starts = l.split_once(" = ").is_some_and(|(n, _)| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                source.push_str(if starts { "\u{2}" } else { " " });
                source.push_str(l);
            }
        } else {
            let mut rest = text;
            while let Some(open) = rest.find("(*") {
                source.push_str(&rest[..open]);
                rest = &rest[rest[open..].find("*)").map_or(rest.len(), |n| open + n + 2)..];
            }
            source.push_str(rest);
            source = source.replace(';', ";\u{2}");
            source.insert(0, '\u{2}');
        }
        let mut out = Vec::new();
        for piece in source.split('\u{2}').skip(1) {
            let Some(end) = piece.find(';') else { continue };
            let piece = &piece[..end];
            if piece.contains('\u{1}') {
                continue;
            }
            let Some((name, body)) = piece.split_once(" = ").or(piece.split_once('=')) else {
                continue;
            };
            let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push((name.trim().to_owned(), body));
        }
        out
    }

    /// Every production quoted above a parser function is the grammar's, word for word.
    #[test]
    fn quoted_productions_are_the_grammars() {
        let grammar: std::collections::HashMap<String, String> =
            productions(include_str!("../../grammar/auditq.ebnf"), false)
                .into_iter()
                .collect();
        let quoted = productions(include_str!("parse.rs"), true);
        for (name, body) in &quoted {
            assert_eq!(
                grammar.get(name),
                Some(body),
                "`{name}` as quoted in parse.rs differs from grammar/auditq.ebnf"
            );
        }
        let names: Vec<&str> = quoted.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "query",
            "stage",
            "time_point",
            "string",
            "regex",
            "path",
            "fields",
        ] {
            assert!(names.contains(&name), "{name} not quoted: {names:?}");
        }
        assert!(quoted.len() >= 30, "{names:?}");
    }

    /// Durations and thresholds reach the compiler as values, with their text.
    #[test]
    fn literals_are_typed() {
        let q = parse("last 1h30m | count by actor over 5m every 1m >= 2.5").unwrap();
        let TimeClause::Last(d, _) = &q.time[0] else {
            panic!("{q:?}")
        };
        assert_eq!((d.text.as_str(), d.us), ("1h30m", Some(5_400_000_000)));
        let Stage::Stats(Stats {
            window: Some(w), ..
        }) = &q.stages[0]
        else {
            panic!("{q:?}")
        };
        assert_eq!(w.over.us, Some(300_000_000));
        assert_eq!(w.every.as_ref().and_then(|e| e.us), Some(60_000_000));
        let (op, n) = w.threshold.as_ref().unwrap();
        assert_eq!((*op, n.value, n.text.as_str()), (CmpOp::Ge, 2.5, "2.5"));
        // Longer than 64 bits of µs: no value (an error where it is used).
        let q = parse("since 999999999d").unwrap();
        let TimeClause::Since(TimePoint::Ago { duration, .. }, _) = &q.time[0] else {
            panic!("{q:?}")
        };
        assert_eq!(duration.us, None);
        assert_eq!(q.to_string(), "since 999999999d");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::rng::Rng::new(11);
        let pieces = [
            "a",
            ":",
            "=",
            "~",
            "\"",
            "'",
            "(",
            ")",
            "|",
            " ",
            "since",
            "7d",
            "@",
            "/",
            "\\",
            "-",
            "not",
            "in",
            ",",
            "count",
            "by",
            "é",
            "*",
            "2026-01-01",
            "#",
            "\n",
            "between",
            "and",
        ];
        for _ in 0..20_000 {
            let n = rng.below(12) as usize;
            let q: String = (0..n)
                .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                .collect();
            if let Err(diags) = parse(&q) {
                let _ = crate::diag::render(&q, &diags, false);
                let _ = crate::diag::render_json(&q, &diags);
            }
        }
        for _ in 0..5_000 {
            let bytes: Vec<u8> = (0..rng.below(30)).map(|_| rng.below(256) as u8).collect();
            let q = String::from_utf8_lossy(&bytes);
            if let Err(diags) = parse(&q) {
                let _ = crate::diag::render(&q, &diags, false);
            }
        }
    }
}

#[cfg(test)]
mod grammar_examples {
    /// Every `query:` example of the normative grammar parses and round-trips.
    #[test]
    fn grammar_queries_parse() {
        let grammar = include_str!("../../grammar/auditq.ebnf");
        let examples: Vec<&str> = grammar
            .lines()
            .filter_map(|l| l.trim().strip_prefix("(* query:"))
            .map(|l| l.trim().trim_end_matches("*)").trim())
            .collect();
        assert!(examples.len() >= 25, "{} examples", examples.len());
        for q in examples {
            let ast = super::parse(q).unwrap_or_else(|e| {
                panic!(
                    "grammar example `{q}`:\n{}",
                    crate::diag::render(q, &e, false)
                )
            });
            assert_eq!(super::parse(&ast.to_string()).unwrap(), ast, "{q}");
        }
    }
}

#[cfg(test)]
mod round_trip_property {
    use crate::rng::Rng;

    fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
        xs[rng.below(xs.len() as u64) as usize]
    }

    /// A random filter from the grammar, `depth` levels deep at most.
    fn filter(rng: &mut Rng, depth: u32) -> String {
        let fields = [
            "actor",
            "event",
            "ip",
            "country",
            "actor.email",
            "context",
            "time",
            "message",
        ];
        let values = [
            "alice",
            "\"a b\"",
            "10.0.0.0/8",
            "2026-02-16",
            "'x\\y'",
            "\"q\\\"t\"",
            "42",
            "svc-*",
        ];
        match rng.below(if depth == 0 { 5 } else { 9 }) {
            0 => format!(
                "{} {} {}",
                pick(rng, &fields),
                pick(rng, &["=", "!=", "==", "!==", "<", ">=", "~", "!~"]),
                pick(rng, &values)
            ),
            1 => format!(
                "{}:{}",
                pick(rng, &fields),
                pick(rng, &["alice", "svc-*", ">=5", "(a, b)", "*"])
            ),
            2 => format!(
                "{} {}in ({}, {})",
                pick(rng, &fields),
                pick(rng, &["", "not "]),
                pick(rng, &values),
                pick(rng, &values)
            ),
            3 => format!("has {}", pick(rng, &fields)),
            4 => format!(
                "{} ~ /{}/{}",
                pick(rng, &fields),
                pick(rng, &["a.b", "^x$", "(a|b)", "a\\/b"]),
                pick(rng, &["", "i"])
            ),
            5 => format!("not {}", filter(rng, depth - 1)),
            6 => format!("({} or {})", filter(rng, depth - 1), filter(rng, depth - 1)),
            7 => format!("{} and {}", filter(rng, depth - 1), filter(rng, depth - 1)),
            _ => format!("{} {}", filter(rng, depth - 1), filter(rng, depth - 1)),
        }
    }

    fn query(rng: &mut Rng) -> String {
        let mut q = String::new();
        if rng.below(4) > 0 {
            q.push_str(&filter(rng, 3));
        }
        for _ in 0..rng.below(3) {
            q.push(' ');
            q.push_str(pick(
                rng,
                &[
                    "since 7d",
                    "since 7d@d",
                    "until now",
                    "last 24h",
                    "today",
                    "on 2026-02-16",
                    "between 2026-01-01 and 2026-02-01",
                    "tz \"UTC\"",
                    "since @w",
                ],
            ));
        }
        for _ in 0..rng.below(4) {
            q.push_str(" | ");
            q.push_str(pick(
                rng,
                &[
                    "count",
                    "count by actor, ip",
                    "stats dc(ip) as n, first(time) by actor",
                    "top 3 action by country",
                    "rare action",
                    "sort -count, actor",
                    "head 5",
                    "fields -message",
                    "fields time, actor",
                    "distinct ip",
                    "dedup actor",
                    "timechart 1h",
                    "timechart 1d max(time) by actor",
                    "bucket time 15m",
                    "where count > 3",
                ],
            ));
            if rng.below(3) == 0 {
                q.push_str(&format!(" | where {}", filter(rng, 2)));
            }
        }
        q
    }

    /// Random queries from the grammar survive `parse(display(q)) == q`.
    #[test]
    fn random_queries_round_trip() {
        let mut rng = Rng::new(2026);
        for _ in 0..5_000 {
            let q = query(&mut rng);
            let ast = super::parse(&q)
                .unwrap_or_else(|e| panic!("`{q}`:\n{}", crate::diag::render(&q, &e, false)));
            let text = ast.to_string();
            let again = super::parse(&text)
                .unwrap_or_else(|e| panic!("`{text}`:\n{}", crate::diag::render(&text, &e, false)));
            assert_eq!(ast, again, "{q}\n -> {text}");
        }
    }
}
