//! The query's syntax tree. Every node carries the span of the text it came from;
//! `Display` prints canonical query text, and `parse(display(q)) == q`.

use std::fmt;

pub use crate::diag::Span;

/// A field as written (`event`, `actor.email`); resolved against the catalogue later.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub span: Span,
}

/// A literal. Bare words, IP addresses, CIDRs and timestamps are strings; what they mean
/// depends on the field they meet (a CIDR against `ip` is containment).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String, Span),
    Num(String, Span),
    /// `/pattern/flags`
    Regex(String, String, Span),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Str(_, s) | Value::Num(_, s) | Value::Regex(_, _, s) => *s,
        }
    }
    /// The text of a string or number.
    pub fn text(&self) -> &str {
        match self {
            Value::Str(t, _) | Value::Num(t, _) | Value::Regex(t, _, _) => t,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`: case-insensitive equality.
    Eq,
    /// `!=`: its complement (true for a missing value).
    Ne,
    /// `==`: exact.
    ExactEq,
    /// `!==`
    ExactNe,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: anchored case-insensitive glob, or regex search with `/re/`.
    Match,
    /// `!~`
    NotMatch,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::ExactEq => "==",
            CmpOp::ExactNe => "!==",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Match => "~",
            CmpOp::NotMatch => "!~",
        }
    }
}

/// A boolean filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>, Span),
    And(Vec<Expr>, Span),
    Not(Box<Expr>, Span),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Value,
        span: Span,
    },
    In {
        field: Field,
        negated: bool,
        values: Vec<Value>,
        span: Span,
    },
    /// `has field`: present and not empty.
    Has(Field, Span),
    /// A bare string: free text over actor, action, message, context and container names.
    Text(String, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Or(_, s) | Expr::And(_, s) | Expr::Not(_, s) | Expr::Has(_, s) => *s,
            Expr::Text(_, s) => *s,
            Expr::Cmp { span, .. } | Expr::In { span, .. } => *span,
        }
    }
}

/// A duration as written (`7d`, `1h30m`) and its length in µs, worked out once by the
/// parser; `None` when it is longer than 64 bits of µs hold (an error where it is used).
#[derive(Debug, Clone, PartialEq)]
pub struct Dur {
    pub text: String,
    pub us: Option<i64>,
}

impl Dur {
    /// `text` must be a duration by the grammar (`duration` in grammar/auditq.ebnf).
    pub fn new(text: &str) -> Dur {
        let us = super::duration::parse_duration(text)
            .ok()
            .and_then(|d| i64::try_from(d.as_micros()).ok());
        Dur {
            text: text.to_owned(),
            us,
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A number as written (`10`, `2.5`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    pub text: String,
    pub value: f64,
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A point in time as written.
#[derive(Debug, Clone, PartialEq)]
pub enum TimePoint {
    /// `7d` (ago), optionally snapped: `7d@d`.
    Ago {
        duration: Dur,
        snap: Option<String>,
        span: Span,
    },
    /// `now`, `now@h`.
    Now { snap: Option<String>, span: Span },
    /// `@d`: now snapped.
    Snap(String, Span),
    /// `2026-02-16`, `2026-02-16T08:00:00Z`, `"2026-02-16 08:00+02:00"`.
    At(String, Span),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimeClause {
    Since(TimePoint, Span),
    Until(TimePoint, Span),
    Between(TimePoint, TimePoint, Span),
    On(String, Span),
    Last(Dur, Span),
    Today(Span),
    Yesterday(Span),
    Tz(String, Span),
}

impl TimeClause {
    pub fn span(&self) -> Span {
        match self {
            TimeClause::Since(_, s)
            | TimeClause::Until(_, s)
            | TimeClause::Between(_, _, s)
            | TimeClause::On(_, s)
            | TimeClause::Last(_, s)
            | TimeClause::Today(s)
            | TimeClause::Yesterday(s)
            | TimeClause::Tz(_, s) => *s,
        }
    }
}

/// An aggregate function of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Count,
    Dc,
    Min,
    Max,
    First,
    Last,
    Values,
}

impl AggFn {
    pub const ALL: [(&'static str, AggFn); 7] = [
        ("count", AggFn::Count),
        ("dc", AggFn::Dc),
        ("min", AggFn::Min),
        ("max", AggFn::Max),
        ("first", AggFn::First),
        ("last", AggFn::Last),
        ("values", AggFn::Values),
    ];
    pub fn name(self) -> &'static str {
        AggFn::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every function is listed")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub func: AggFn,
    pub field: Option<Field>,
    pub alias: Option<String>,
    pub span: Span,
}

impl Agg {
    /// The output column: the alias, else `count`, `dc_country`, …
    pub fn column(&self) -> String {
        match (&self.alias, &self.field) {
            (Some(a), _) => a.clone(),
            (None, None) => self.func.name().to_owned(),
            (None, Some(f)) => format!("{}_{}", self.func.name(), f.name.replace('.', "_")),
        }
    }
}

/// The window of a streaming aggregation: `over 5m` slides with each event (then a
/// threshold is required); `over 5m every 1m` hops (tumbles when both are equal). The
/// threshold compares the first aggregate: `| count by actor over 5m > 10`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub over: Dur,
    pub every: Option<Dur>,
    pub threshold: Option<(CmpOp, Number)>,
    pub span: Span,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "over {}", self.over)?;
        if let Some(e) = &self.every {
            write!(f, " every {e}")?;
        }
        if let Some((op, n)) = &self.threshold {
            write!(f, " {} {n}", op.symbol())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: Field,
    pub desc: bool,
}

/// One bracketed filter of a sequence: `[event:user_deleted]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqStep {
    pub filter: Expr,
    pub span: Span,
}

/// `sequence [by k] within D [a] [b] … [until [c]]`: per key, an event of each step in
/// order, the first and last within `D` (EQL's sequences; see `query/stage/sequence.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub by: Vec<Field>,
    pub within: Dur,
    pub steps: Vec<SeqStep>,
    /// An event matching it cancels the key's pending sequences.
    pub until: Option<SeqStep>,
    pub span: Span,
}

/// `lookup FILE on f [= column | cidr column] [fields a, b]`: a left join of a CSV,
/// Parquet or NDJSON file; its columns become fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub file: String,
    pub on: Field,
    /// The file's column to match (else the one named like `on`).
    pub column: Option<Field>,
    /// `cidr`: the column holds networks, matched by containment (the longest prefix).
    pub cidr: bool,
    /// The file's columns to add (else all but the matched one).
    pub fields: Vec<Field>,
    pub span: Span,
}

/// `where FILTER`.
#[derive(Debug, Clone, PartialEq)]
pub struct Where {
    pub filter: Expr,
    pub span: Span,
}

/// `fields a, b` (keep), `fields -a, -b` (drop), `fields *` (every column).
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub exclude: bool,
    pub fields: Vec<Field>,
    pub span: Span,
}

/// `sort -count, actor`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub keys: Vec<SortKey>,
    pub span: Span,
}

/// `head N` (or `limit N`).
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub n: u64,
    pub span: Span,
}

/// `stats count, dc(ip) by actor [over 5m …]` (or `| count by actor`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub aggs: Vec<Agg>,
    pub by: Vec<Field>,
    /// `over 5m [every 1m] [> 10]`: a window on event time (for `follow`).
    pub window: Option<Window>,
    pub span: Span,
}

/// `top [N] f [by g]`, `rare [N] f [by g]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub rare: bool,
    pub n: u64,
    pub field: Field,
    pub by: Vec<Field>,
    pub span: Span,
}

/// `distinct a, b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Distinct {
    pub fields: Vec<Field>,
    pub span: Span,
}

/// `dedup f` or `dedup f within 1h` (the first of each value per hour of event time).
#[derive(Debug, Clone, PartialEq)]
pub struct Dedup {
    pub fields: Vec<Field>,
    pub within: Option<Dur>,
    pub span: Span,
}

/// `timechart 1h [agg] [by f]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Timechart {
    pub span_text: Dur,
    pub agg: Option<Agg>,
    pub by: Option<Field>,
    pub span: Span,
}

/// `bucket time SPAN`: `time` rounded down to a multiple of the span.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub every: Dur,
    pub span: Span,
}

/// `first_seen country by actor.id [after 30d]`: the events whose value (tuple) is
/// new for their key, against every earlier event; the first `after` of the archive
/// only learns.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstSeen {
    pub fields: Vec<Field>,
    pub by: Vec<Field>,
    pub after: Option<Dur>,
    pub span: Span,
}

/// `rename a as b, c as d`: columns under other names (for exports and lookups).
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    /// (the column, its new name)
    pub pairs: Vec<(Field, Field)>,
    pub span: Span,
}

/// The stages: one variant per stage, each holding its own node (its text is its
/// `Display`). What a stage means lives in its module under `query/stage/`.
macro_rules! stages {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        pub enum Stage {
            $($name($name),)*
        }

        impl Stage {
            pub fn span(&self) -> Span {
                match self {
                    $(Stage::$name(s) => s.span,)*
                }
            }
        }

        impl fmt::Display for Stage {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Stage::$name(s) => s.fmt(f),)*
                }
            }
        }
    };
}

stages!(
    Where, Fields, Sort, Head, Stats, Top, Distinct, Dedup, Timechart, Bucket, Sequence, Lookup,
    FirstSeen, Rename,
);

/// A whole query: time clauses and a filter, then stages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub filter: Option<Expr>,
    pub time: Vec<TimeClause>,
    pub stages: Vec<Stage>,
}

// ------------------------------------------------------------------ canonical display

/// A string literal in double quotes with `\"`, `\\`, `\n`, `\t` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s, _) => f.write_str(&quote(s)),
            Value::Num(n, _) => f.write_str(n),
            Value::Regex(re, flags, _) => write!(f, "/{}/{flags}", re.replace('/', "\\/")),
        }
    }
}

impl Expr {
    /// Precedence: 0 = or, 1 = and, 2 = unary and atoms.
    fn level(&self) -> u8 {
        match self {
            Expr::Or(..) => 0,
            Expr::And(..) => 1,
            _ => 2,
        }
    }
    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.level() < min {
            write!(f, "(")?;
            self.fmt_at(f, 0)?;
            return write!(f, ")");
        }
        let list = |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, lvl: u8| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                e.fmt_at(f, lvl)?;
            }
            Ok(())
        };
        match self {
            Expr::Or(items, _) => list(f, items, " or ", 1),
            Expr::And(items, _) => list(f, items, " and ", 2),
            Expr::Not(inner, _) => {
                f.write_str("not ")?;
                inner.fmt_at(f, 2)
            }
            Expr::Cmp {
                field, op, value, ..
            } => write!(f, "{field} {} {value}", op.symbol()),
            Expr::In {
                field,
                negated,
                values,
                ..
            } => {
                write!(f, "{field} {}in (", if *negated { "not " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Expr::Has(field, _) => write!(f, "has {field}"),
            Expr::Text(t, _) => f.write_str(&quote(t)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 0)
    }
}

impl fmt::Display for TimePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = |s: &Option<String>| s.as_ref().map(|s| format!("@{s}")).unwrap_or_default();
        match self {
            TimePoint::Ago {
                duration, snap: s, ..
            } => write!(f, "{duration}{}", snap(s)),
            TimePoint::Now { snap: s, .. } => write!(f, "now{}", snap(s)),
            TimePoint::Snap(s, _) => write!(f, "@{s}"),
            TimePoint::At(t, _) => f.write_str(&quote(t)),
        }
    }
}

impl fmt::Display for TimeClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeClause::Since(p, _) => write!(f, "since {p}"),
            TimeClause::Until(p, _) => write!(f, "until {p}"),
            TimeClause::Between(a, b, _) => write!(f, "between {a} and {b}"),
            TimeClause::On(d, _) => write!(f, "on {}", quote(d)),
            TimeClause::Last(d, _) => write!(f, "last {d}"),
            TimeClause::Today(_) => f.write_str("today"),
            TimeClause::Yesterday(_) => f.write_str("yesterday"),
            TimeClause::Tz(z, _) => write!(f, "tz {}", quote(z)),
        }
    }
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.func.name())?;
        if let Some(field) = &self.field {
            write!(f, "({field})")?;
        }
        if let Some(a) = &self.alias {
            write!(f, " as {a}")?;
        }
        Ok(())
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn by(fields: &[Field]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(" by {}", join(fields))
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "where {}", self.filter)
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.exclude { "-" } else { "" };
        let list: Vec<String> = self.fields.iter().map(|x| format!("{sign}{x}")).collect();
        write!(f, "fields {}", list.join(", "))
    }
}

impl fmt::Display for Sort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}{}", if k.desc { "-" } else { "" }, k.field))
            .collect();
        write!(f, "sort {}", list.join(", "))
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "head {}", self.n)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stats {}{}", join(&self.aggs), by(&self.by))?;
        if let Some(w) = &self.window {
            write!(f, " {w}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Top {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.rare { "rare" } else { "top" };
        write!(f, "{name} {} {}{}", self.n, self.field, by(&self.by))
    }
}

impl fmt::Display for Distinct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "distinct {}", join(&self.fields))
    }
}

impl fmt::Display for Dedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dedup {}", join(&self.fields))?;
        if let Some(w) = &self.within {
            write!(f, " within {w}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bucket time {}", self.every)
    }
}

impl fmt::Display for FirstSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "first_seen {}{}", join(&self.fields), by(&self.by))?;
        if let Some(a) = &self.after {
            write!(f, " after {a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lookup {} on {}", quote(&self.file), self.on)?;
        match (&self.column, self.cidr) {
            (Some(c), true) => write!(f, " cidr {c}")?,
            (Some(c), false) => write!(f, " = {c}")?,
            (None, _) => {}
        }
        if !self.fields.is_empty() {
            write!(f, " fields {}", join(&self.fields))?;
        }
        Ok(())
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sequence{} within {}", by(&self.by), self.within)?;
        for s in &self.steps {
            write!(f, " [{}]", s.filter)?;
        }
        if let Some(u) = &self.until {
            write!(f, " until [{}]", u.filter)?;
        }
        Ok(())
    }
}

impl fmt::Display for Timechart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timechart {}", self.span_text)?;
        if let Some(a) = &self.agg {
            write!(f, " {a}")?;
        }
        if let Some(b) = &self.by {
            write!(f, " by {b}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Rename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .pairs
            .iter()
            .map(|(a, b)| format!("{a} as {b}"))
            .collect();
        write!(f, "rename {}", list.join(", "))
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(e) = &self.filter {
            parts.push(e.to_string());
        }
        parts.extend(self.time.iter().map(ToString::to_string));
        let mut text = parts.join(" ");
        for s in &self.stages {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("| {s}"));
        }
        f.write_str(&text)
    }
}
