//! The language's expressions -> DataFusion expressions: filters, fields and the
//! helpers stages plan with (`stage/`). A whole query is planned by `plan.rs`, a loop
//! over its stages (through the DataFrame API, never SQL text).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::functions::expr_fn::{coalesce, date_bin, lower, regexp_like};
use datafusion::functions_aggregate::expr_fn::{
    array_agg, count, count_distinct, first_value, last_value, max, min,
};
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{ExprFunctionExt, SortExpr};
use datafusion::prelude::{Expr, col, lit};

use super::fields::{self, Kind, Target};
use super::udf::{Matcher, glob_regex, ip_in_cidr, list_match};
use crate::diag::{Diagnostic, did_you_mean};
use crate::event::{self, col as c};
use crate::lang::ast::{self, AggFn, CmpOp, Field, Query, Value};
use crate::lang::time::{Clock, Range, time_range};

/// The literal DataFusion counts rows with (`count(*)`): statistics answer a bare
/// `| count` only when the literal is exactly this one.
pub(super) const COUNT_STAR: i64 = 1;

type R<T> = Result<T, Diagnostic>;

pub(super) fn ts(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

pub(super) fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Predicates of a time range: on `time`, and on the `date` partition so whole days are
/// pruned before any file is opened.
pub(super) fn range_predicates(r: &Range) -> Vec<Expr> {
    let mut out = Vec::new();
    if let Some(s) = r.start {
        out.push(col(c::TIME).gt_eq(ts(s)));
        out.push(col(c::DATE).gt_eq(lit(event::utc_date(s))));
    }
    if let Some(e) = r.end {
        out.push(col(c::TIME).lt(ts(e)));
        out.push(col(c::DATE).lt_eq(lit(event::utc_date(e - 1))));
    }
    out
}

// ----------------------------------------------------------------------- filters

/// A string column compared with a matcher-like operation.
/// The longest glob or regex compiled: longer ones are refused before the regex engine
/// spends time and memory on them (its own limit is on the compiled size).
const LONGEST_PATTERN: usize = 64 * 1024;

/// The regex of a glob value, or E0312 when it is too large for the engine (Arrow's
/// `LIKE` compiles the same regex, with the same size limit, when the query runs).
fn checked_glob(v: &Value) -> R<regex::Regex> {
    // Longer globs are refused before the regex engine spends memory on them.
    if v.text().len() > LONGEST_PATTERN {
        return Err(Diagnostic::at("E0312", "pattern too large", v.span())
            .label(format!("longer than {} KiB", LONGEST_PATTERN >> 10))
            .help("use fewer wildcards, or several shorter patterns joined with `or`"));
    }
    glob_regex(v.text()).map_err(|e| {
        let why = match e {
            regex::Error::CompiledTooBig(limit) => {
                format!(
                    "it compiles to more than the engine's limit of {} MB",
                    limit >> 20
                )
            }
            other => other.to_string(),
        };
        Diagnostic::at("E0312", "pattern too large", v.span())
            .label(why)
            .help("use fewer wildcards, or several shorter patterns joined with `or`")
    })
}

fn like(expr: Expr, glob: &str) -> Expr {
    let mut pattern = String::new();
    for ch in glob.chars() {
        match ch {
            '*' => pattern.push('%'),
            '?' => pattern.push('_'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(ch);
            }
            ch => pattern.push(ch),
        }
    }
    Expr::Like(Like::new(
        false,
        Box::new(expr),
        Box::new(lit(pattern)),
        Some('\\'),
        true,
    ))
}

fn regex_pattern(re: &str, flags: &str) -> String {
    if flags.is_empty() {
        re.to_owned()
    } else {
        format!("(?{flags}){re}")
    }
}

fn is_negative(op: CmpOp) -> bool {
    matches!(op, CmpOp::Ne | CmpOp::ExactNe | CmpOp::NotMatch)
}

/// The longest `in` list compiled to SQL's `IN (…)`; longer ones are
/// [`super::fold::matches_any`].
const SQL_IN_LIST: usize = 64;

/// Join many conditions as a balanced tree (depth log2 n), not a chain n deep: a
/// thousand `or`s must not recurse a thousand frames deep in planning.
pub(super) fn balanced(mut parts: Vec<Expr>, join: fn(Expr, Expr) -> Expr) -> Expr {
    assert!(!parts.is_empty(), "one or more conditions");
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => join(a, b),
                None => a,
            });
        }
        parts = next;
    }
    parts.pop().expect("one left")
}

/// Missing values satisfy negative comparisons (two-valued logic).
fn or_missing(e: Expr, positive: Expr) -> Expr {
    e.clone().is_null().or(positive.is_not_true())
}

/// The compiler of one query against the archive's columns or an aggregate's output.
pub struct Compiler<'a> {
    pub clock: &'a Clock,
    /// Set after an aggregating stage: the columns it produced and the stage text.
    pub(super) table: Option<(Vec<(String, DataType)>, String)>,
    /// Every value of `action` in the data queried, when known (from the archive's
    /// summary): comparisons on `action` then become exact set membership.
    actions: Option<&'a [&'a str]>,
    /// Columns a `lookup` added to the events.
    pub(super) added: Vec<(String, DataType)>,
}

impl<'a> Compiler<'a> {
    pub fn new(clock: &'a Clock) -> Self {
        Compiler {
            clock,
            table: None,
            actions: None,
            added: Vec::new(),
        }
    }

    /// The same compiler, told every value `action` takes in the data queried.
    pub fn with_actions(mut self, actions: &'a [&'a str]) -> Self {
        self.actions = Some(actions);
        self
    }

    /// A comparison on `action` as membership in the set of archived actions it
    /// accepts: `event ~ "user_*"` becomes `action IN ('user_created', …)`. Exact
    /// comparisons on the stored values are cheaper than lowering or pattern-matching
    /// every row, and give the same rows because the set is complete.
    fn known_action(&self, op: CmpOp, v: &Value) -> R<Option<Expr>> {
        let Some(actions) = self.actions else {
            return Ok(None);
        };
        if !matches!(
            op,
            CmpOp::Eq
                | CmpOp::ExactEq
                | CmpOp::Match
                | CmpOp::Ne
                | CmpOp::ExactNe
                | CmpOp::NotMatch
        ) {
            return Ok(None);
        }
        let matcher = Self::matcher(op, v)?;
        let accepted: Vec<Expr> = actions
            .iter()
            .filter(|a| matcher.is_match(a))
            .map(|a| lit(*a))
            .collect();
        let e = col(c::ACTION);
        let positive = if accepted.is_empty() {
            lit(false)
        } else {
            e.clone().in_list(accepted, false)
        };
        Ok(Some(if is_negative(op) {
            or_missing(e, positive)
        } else {
            positive
        }))
    }

    /// From here on, fields name the columns of `df`, produced by `stage`.
    pub(super) fn now_table(&mut self, df: &DataFrame, stage: &str) {
        let cols = df.schema().fields().iter();
        let cols = cols
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        self.table = Some((cols, stage.to_owned()));
    }

    /// A field of the archive (before any aggregation).
    fn field(&self, f: &Field) -> R<&'static fields::FieldDef> {
        fields::resolve(&f.name).ok_or_else(|| fields::unknown(f))
    }

    /// A field that is not in the archive's catalogue: a column of an aggregate's
    /// output (after an aggregating stage), `raw.PATH`, or a column a `lookup` added.
    /// `None`: a field of the catalogue.
    fn column_of(&self, f: &Field) -> R<Option<(Expr, Kind)>> {
        if self.table.is_some() {
            return self.table_column(f).map(Some);
        }
        if let Some(e) = self.raw_path(f) {
            return Ok(Some((e, Kind::Text)));
        }
        Ok(self
            .added
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&f.name))
            .map(|(n, ty)| (column(n), kind_of(ty))))
    }

    /// A column of the aggregate output (after an aggregating stage).
    fn table_column(&self, f: &Field) -> R<(Expr, Kind)> {
        let (cols, after) = self.table.as_ref().expect("in table mode");
        let found = cols.iter().find(|(n, _)| n.eq_ignore_ascii_case(&f.name));
        match found {
            Some((name, ty)) => Ok((column(name), kind_of(ty))),
            None => {
                let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
                let mut d = Diagnostic::at(
                    "E0420",
                    format!("unknown column `{}` after `{after}`", f.name),
                    f.span,
                )
                .help(format!("columns available here: {}", names.join(", ")));
                if let Some(m) = did_you_mean(&f.name, names.iter().copied()) {
                    d = d.help(format!("did you mean `{m}`?"));
                }
                Err(d)
            }
        }
    }

    /// One comparison of a single column.
    fn compare(&self, e: Expr, kind: Kind, op: CmpOp, v: &Value, field: &Field) -> R<Expr> {
        let text = v.text();
        if let Value::Regex(re, flags, span) = v {
            if !matches!(op, CmpOp::Match | CmpOp::NotMatch) {
                return Err(Diagnostic::at("E0311", "a regex needs `~` or `!~`", *span));
            }
            // Compiled here as the engine will, so that an invalid or too large regex
            // is a caret now, not a failure while running.
            Self::matcher(op, v)?;
            let m = regexp_like(e.clone(), lit(regex_pattern(re, flags)), None);
            return Ok(if op == CmpOp::Match {
                m
            } else {
                or_missing(e, m)
            });
        }
        match kind {
            Kind::Time => {
                let Some((t, date_only)) = self.clock.parse_at(text) else {
                    return Err(Diagnostic::at(
                        "E0206",
                        format!("`{text}` is not a time"),
                        v.span(),
                    )
                    .help("write 2026-02-16 or 2026-02-16T08:00:00Z"));
                };
                let next = if date_only {
                    self.clock.day_after(t)
                } else {
                    t + 1
                };
                Ok(match op {
                    CmpOp::Eq | CmpOp::ExactEq => e.clone().gt_eq(ts(t)).and(e.lt(ts(next))),
                    CmpOp::Ne | CmpOp::ExactNe => {
                        or_missing(e.clone(), e.clone().gt_eq(ts(t)).and(e.lt(ts(next))))
                    }
                    CmpOp::Lt => e.lt(ts(t)),
                    CmpOp::Le => e.lt(ts(next)),
                    CmpOp::Gt => e.gt_eq(ts(next)),
                    CmpOp::Ge => e.gt_eq(ts(t)),
                    CmpOp::Match | CmpOp::NotMatch => {
                        return Err(Diagnostic::at(
                            "E0104",
                            format!("`~` does not apply to the time field `{}`", field.name),
                            field.span,
                        )
                        .help("use since/until/between, or `time >= 2026-02-16`"));
                    }
                })
            }
            Kind::Ip if text.contains('/') && matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                super::udf::Cidr::parse(text).map_err(|why| {
                    Diagnostic::at("E0320", format!("invalid CIDR `{text}`"), v.span()).label(why)
                })?;
                let m = ip_in_cidr(e.clone(), text);
                Ok(if op == CmpOp::Eq { m } else { or_missing(e, m) })
            }
            _ => {
                let value = match (kind, v) {
                    (Kind::Number, Value::Num(n, _)) => lit(n.parse::<f64>().unwrap_or(0.0)),
                    (Kind::Number, _) => {
                        return Err(Diagnostic::at(
                            "E0105",
                            format!("`{}` holds numbers", field.name),
                            v.span(),
                        )
                        .label("not a number"));
                    }
                    _ => lit(text),
                };
                let folded = kind == Kind::Text;
                Ok(match op {
                    CmpOp::Eq if folded => lower(e).eq(lit(text.to_lowercase())),
                    CmpOp::Ne if folded => {
                        or_missing(e.clone(), lower(e).eq(lit(text.to_lowercase())))
                    }
                    CmpOp::Eq | CmpOp::ExactEq => e.eq(value),
                    CmpOp::Ne | CmpOp::ExactNe => or_missing(e.clone(), e.eq(value)),
                    CmpOp::Lt => e.lt(value),
                    CmpOp::Le => e.lt_eq(value),
                    CmpOp::Gt => e.gt(value),
                    CmpOp::Ge => e.gt_eq(value),
                    CmpOp::Match => {
                        checked_glob(v)?;
                        like(e, text)
                    }
                    CmpOp::NotMatch => {
                        checked_glob(v)?;
                        or_missing(e.clone(), like(e, text))
                    }
                })
            }
        }
    }

    fn matcher(op: CmpOp, v: &Value) -> R<Matcher> {
        Ok(match (op, v) {
            (_, Value::Regex(re, _, span)) if re.len() > LONGEST_PATTERN => {
                return Err(Diagnostic::at("E0312", "pattern too large", *span)
                    .label(format!("longer than {} KiB", LONGEST_PATTERN >> 10))
                    .help("split it into several shorter patterns joined with `or`"));
            }
            (_, Value::Regex(re, flags, span)) => {
                Matcher::Re(regex::Regex::new(&regex_pattern(re, flags)).map_err(|e| {
                    Diagnostic::at("E0310", "invalid regular expression", *span)
                        .label(e.to_string())
                })?)
            }
            (CmpOp::Match | CmpOp::NotMatch, v) => Matcher::Re(checked_glob(v)?),
            (CmpOp::ExactEq | CmpOp::ExactNe, v) => Matcher::Exact(v.text().to_owned()),
            (_, v) => Matcher::Eq(v.text().to_lowercase()),
        })
    }

    /// `raw.PATH`: the value at PATH in the event's JSON, as text.
    fn raw_path(&self, f: &Field) -> Option<Expr> {
        let path = fields::raw_path(&f.name)?;
        Some(super::udf::json_get(col(c::RAW), path))
    }

    fn cmp(&self, field: &Field, op: CmpOp, v: &Value) -> R<Expr> {
        if let Some((e, kind)) = self.column_of(field)? {
            return self.compare(e, kind, op, v, field);
        }
        match self.field(field)?.target {
            Target::Column(name, kind) => {
                if name == c::ACTION
                    && let Some(e) = self.known_action(op, v)?
                {
                    return Ok(e);
                }
                self.compare(col(name), kind, op, v, field)
            }
            Target::Actor => {
                let parts = [
                    (c::ACTOR_ID, Kind::Text),
                    (c::ACTOR_EMAIL, Kind::Text),
                    (c::ACTOR_NAME, Kind::Text),
                ]
                .iter()
                .map(|(n, k)| self.compare(col(*n), *k, op, v, field))
                .collect::<R<Vec<_>>>()?;
                let join = if is_negative(op) { Expr::and } else { Expr::or };
                Ok(parts.into_iter().reduce(join).expect("three parts"))
            }
            Target::List { column, type_part } => {
                if matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge) {
                    return Err(Diagnostic::at(
                        "E0103",
                        format!("`{}` does not apply to `{}`", op.symbol(), field.name),
                        field.span,
                    )
                    .help("compare list fields with =, ==, ~ or in"));
                }
                let m = list_match(col(column), type_part, &Self::matcher(op, v)?);
                Ok(if is_negative(op) { m.is_not_true() } else { m })
            }
        }
    }

    /// `field in (values)` (or `not in`) as one set membership, when every value is
    /// plain text and the field one text column of the archive: `lower(f) IN (…)`, a hash
    /// set at run time, planned in one step whatever the number of values. `None` when
    /// the values or the field need the general path (globs, regexes, CIDRs, numbers,
    /// `actor`, lists, an aggregate's columns).
    fn text_set(&self, field: &Field, values: &[&Value], negated: bool) -> R<Option<Expr>> {
        let plain = values
            .iter()
            .all(|v| matches!(v, Value::Str(..)) && !v.text().contains(['*', '?']));
        if !plain || self.column_of(field)?.is_some() {
            return Ok(None);
        }
        let Target::Column(name, Kind::Text) = self.field(field)?.target else {
            return Ok(None);
        };
        let mut wanted: Vec<String> = values.iter().map(|v| v.text().to_lowercase()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let e = col(name);
        let positive = match (name == c::ACTION, self.actions) {
            // The archived actions any value names, exactly (see `known_action`).
            (true, Some(actions)) => {
                let accepted: Vec<Expr> = actions
                    .iter()
                    .filter(|a| wanted.binary_search(&a.to_lowercase()).is_ok())
                    .map(|a| lit(*a))
                    .collect();
                if accepted.is_empty() {
                    lit(false)
                } else {
                    e.clone().in_list(accepted, false)
                }
            }
            // A short list stays SQL's `IN` (which `explain` prints as it is); a long
            // one is one function holding the set.
            _ if wanted.len() <= SQL_IN_LIST => {
                lower(e.clone()).in_list(wanted.into_iter().map(lit).collect(), false)
            }
            _ => {
                let lowered = wanted.iter().cloned().collect();
                let patterns = super::fold::Patterns::Text {
                    lowered,
                    globs: None,
                };
                super::fold::matches_any(e.clone(), patterns, wanted)
            }
        };
        Ok(Some(if negated {
            or_missing(e, positive)
        } else {
            positive
        }))
    }

    /// A long `in (…)` list of globs (text) or networks (ip) on one column as one
    /// [`super::fold::matches_any`]: one regex set or one table of networks, one pass.
    /// `None` for short lists (kept as SQL), regexes, other fields.
    fn pattern_set(&self, field: &Field, values: &[&Value], negated: bool) -> R<Option<Expr>> {
        use super::fold::{Patterns, matches_any};
        if values.len() <= SQL_IN_LIST
            || self.column_of(field)?.is_some()
            || values.iter().any(|v| matches!(v, Value::Regex(..)))
        {
            return Ok(None);
        }
        let Target::Column(name, kind) = self.field(field)?.target else {
            return Ok(None);
        };
        let texts: Vec<String> = values.iter().map(|v| v.text().to_owned()).collect();
        let is_glob = |t: &str| t.contains(['*', '?']);
        let patterns = match kind {
            Kind::Text => {
                let mut globs = Vec::new();
                let mut lowered = std::collections::HashSet::new();
                for v in values {
                    if is_glob(v.text()) {
                        checked_glob(v)?;
                        globs.push(super::udf::glob_pattern(v.text()));
                    } else {
                        lowered.insert(v.text().to_lowercase());
                    }
                }
                // The engine's limit is per pattern; the set of them may use more.
                let set = regex::RegexSetBuilder::new(&globs)
                    .size_limit(globs.len().max(1) * (10 << 20))
                    .dfa_size_limit(64 << 20)
                    .build()
                    .map_err(|e| {
                        let (first, last) = (values[0].span(), values[values.len() - 1].span());
                        Diagnostic::at(
                            "E0312",
                            "pattern list too large",
                            ast::Span::new(first.start, last.end),
                        )
                        .label(e.to_string())
                        .help("split the list into several `in (…)` joined with `or`")
                    })?;
                Patterns::Text {
                    lowered,
                    globs: Some(set),
                }
            }
            Kind::Ip if !texts.iter().any(|t| is_glob(t)) => {
                let mut cidrs = Vec::new();
                let mut exact = std::collections::HashSet::new();
                for v in values {
                    let t = v.text();
                    if t.contains('/') {
                        cidrs.push(super::udf::Cidr::parse(t).map_err(|why| {
                            Diagnostic::at("E0320", format!("invalid CIDR `{t}`"), v.span())
                                .label(why)
                        })?);
                    } else {
                        exact.insert(t.to_owned());
                    }
                }
                Patterns::Networks {
                    table: super::udf::NetworkTable::new(&cidrs),
                    exact,
                }
            }
            _ => return Ok(None),
        };
        let e = col(name);
        let positive = matches_any(e.clone(), patterns, texts);
        Ok(Some(if negated {
            or_missing(e, positive)
        } else {
            positive
        }))
    }

    /// The items of an `or`: runs of `f = "v"` on the same text column become one set
    /// membership (`f in (…)`), the rest compile one by one.
    fn any_of(&self, items: &[ast::Expr]) -> R<Vec<Expr>> {
        let mut by_field: Vec<(&Field, Vec<&Value>)> = Vec::new();
        let mut rest = Vec::new();
        for item in items {
            match item {
                ast::Expr::Cmp {
                    field,
                    op: CmpOp::Eq,
                    value,
                    ..
                } if !matches!(value, Value::Regex(..)) => {
                    match by_field.iter_mut().find(|(f, _)| f.name == field.name) {
                        Some((_, vs)) => vs.push(value),
                        None => by_field.push((field, vec![value])),
                    }
                }
                other => rest.push(other),
            }
        }
        let mut out = Vec::new();
        for (field, values) in by_field {
            match self.text_set(field, &values, false)? {
                Some(set) if values.len() > 1 => out.push(set),
                _ => {
                    for v in values {
                        out.push(self.cmp(field, CmpOp::Eq, v)?);
                    }
                }
            }
        }
        for item in rest {
            out.push(self.filter(item)?);
        }
        Ok(out)
    }

    /// A boolean filter.
    pub fn filter(&self, e: &ast::Expr) -> R<Expr> {
        Ok(match e {
            ast::Expr::Or(items, _) => balanced(self.any_of(items)?, Expr::or),
            ast::Expr::And(items, _) => balanced(self.all(items)?, Expr::and),
            ast::Expr::Not(inner, _) => self.filter(inner)?.is_not_true(),
            ast::Expr::Cmp {
                field, op, value, ..
            } => self.cmp(field, *op, value)?,
            ast::Expr::In {
                field,
                negated,
                values,
                ..
            } => {
                let all: Vec<&Value> = values.iter().collect();
                if let Some(set) = self.text_set(field, &all, *negated)? {
                    return Ok(set);
                }
                if let Some(set) = self.pattern_set(field, &all, *negated)? {
                    return Ok(set);
                }
                let parts = values
                    .iter()
                    .map(|v| {
                        let glob = matches!(v, Value::Regex(..)) || v.text().contains(['*', '?']);
                        let op = match (glob, negated) {
                            (true, false) => CmpOp::Match,
                            (true, true) => CmpOp::NotMatch,
                            (false, false) => CmpOp::Eq,
                            (false, true) => CmpOp::Ne,
                        };
                        self.cmp(field, op, v)
                    })
                    .collect::<R<Vec<_>>>()?;
                let join = if *negated { Expr::and } else { Expr::or };
                if parts.is_empty() {
                    lit(*negated)
                } else {
                    balanced(parts, join)
                }
            }
            ast::Expr::Has(field, _) => {
                if let Some((e, _)) = self.column_of(field)? {
                    return Ok(e.is_not_null());
                }
                let present = |n: &str| col(n).is_not_null().and(col(n).not_eq(lit("")));
                match self.field(field)?.target {
                    Target::Column(n, Kind::Time) => col(n).is_not_null(),
                    Target::Column(n, _) => present(n),
                    Target::Actor => present(c::ACTOR_ID)
                        .or(present(c::ACTOR_EMAIL))
                        .or(present(c::ACTOR_NAME)),
                    Target::List { column, type_part } => {
                        list_match(col(column), type_part, &Matcher::Any)
                    }
                }
            }
            ast::Expr::Text(t, span) => {
                if self.table.is_some() {
                    return Err(Diagnostic::at(
                        "E0421",
                        "free text searches events, not an aggregate's rows",
                        *span,
                    )
                    .help("move it before the aggregating stage"));
                }
                // The text becomes `LIKE '%text%'`: refused here if too large for it.
                checked_glob(&Value::Str(format!("*{t}*"), *span))?;
                let mut parts: Vec<Expr> = [
                    c::ACTOR_NAME,
                    c::ACTOR_EMAIL,
                    c::ACTOR_ID,
                    c::ACTION,
                    c::MESSAGE,
                ]
                .iter()
                .map(|n| like(col(*n), &format!("*{t}*")))
                .collect();
                for list in [c::CONTEXT, c::CONTAINER] {
                    parts.push(list_match(
                        col(list),
                        false,
                        &Matcher::Contains(t.to_lowercase()),
                    ));
                }
                parts.into_iter().reduce(Expr::or).expect("several columns")
            }
        })
    }

    fn all(&self, items: &[ast::Expr]) -> R<Vec<Expr>> {
        items.iter().map(|e| self.filter(e)).collect()
    }

    // ---------------------------------------------------------------- projection

    /// A field as an output column: (name, expression).
    pub fn output(&self, f: &Field) -> R<(String, Expr)> {
        if let Some((e, _)) = self.column_of(f)? {
            return Ok((f.name.clone(), e));
        }
        let e = match self.field(f)?.target {
            Target::Column(n, _) => col(n),
            Target::Actor => coalesce(vec![
                col(c::ACTOR_EMAIL),
                col(c::ACTOR_NAME),
                col(c::ACTOR_ID),
            ]),
            Target::List { column, .. } => col(column),
        };
        Ok((f.name.clone(), e))
    }
}

/// How a column of `ty` compares.
fn kind_of(ty: &DataType) -> Kind {
    match ty {
        DataType::Timestamp(..) => Kind::Time,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Kind::Text,
        _ => Kind::Number,
    }
}

/// The columns shown for events when the query does not choose any.
pub const DEFAULT_VIEW: &[&str] = &[
    "time",
    "action",
    "actor.name",
    "actor.email",
    "ip",
    "country",
    "message",
    "id",
];

pub(super) fn fields_of(names: &[&str]) -> Vec<Field> {
    names
        .iter()
        .map(|n| Field {
            name: (*n).to_owned(),
            span: ast::Span::default(),
        })
        .collect()
}

pub(super) fn df_err(e: datafusion::error::DataFusionError, span: ast::Span) -> Diagnostic {
    Diagnostic::at("E0900", format!("cannot plan this: {e}"), span)
}

/// Events in time order: the order of a query without `sort`. Only `time`: the archive's
/// files are sorted by it, so over files whose time ranges do not overlap (a compacted
/// archive) this is a merge of streams, not a sort of every row; a tie-breaker such as
/// `id` would force a full sort, in memory, of everything selected. Ties keep the order
/// of the files (deterministic for one version of the archive).
pub(super) fn time_order() -> Vec<SortExpr> {
    vec![col(c::TIME).sort(true, false)]
}

/// The predicate of a query's head on events: its time range and its filter (`None`:
/// every event).
pub fn head_predicate(q: &Query, cx: &Compiler<'_>) -> R<Option<Expr>> {
    let range = time_range(q, cx.clock)?;
    let mut predicates = range_predicates(&range);
    if let Some(f) = &q.filter {
        predicates.push(cx.filter(f)?);
    }
    Ok(predicates.into_iter().reduce(Expr::and))
}

/// `df` sorted by `sorts`, ties kept in the order `df` already had. A sort over a sort
/// (directly, or through filters) becomes one sort by both keys, the new ones first: the
/// plan says what the answer is (its SQL has one `ORDER BY`, not the inner one), and ties
/// never depend on how the engine ran.
pub(super) fn resort(
    df: DataFrame,
    mut sorts: Vec<SortExpr>,
) -> Result<DataFrame, datafusion::error::DataFusionError> {
    use datafusion::logical_expr::{Filter, LogicalPlan};
    /// The plan without its sort (under any filters), and that sort's keys.
    fn unsorted(plan: &LogicalPlan) -> Option<(LogicalPlan, Vec<SortExpr>)> {
        match plan {
            LogicalPlan::Sort(s) if s.fetch.is_none() => {
                Some((s.input.as_ref().clone(), s.expr.clone()))
            }
            LogicalPlan::Filter(f) => {
                let (input, keys) = unsorted(&f.input)?;
                let f = Filter::try_new(f.predicate.clone(), std::sync::Arc::new(input)).ok()?;
                Some((LogicalPlan::Filter(f), keys))
            }
            _ => None,
        }
    }
    match unsorted(df.logical_plan()) {
        Some((input, earlier)) => {
            for k in earlier {
                if !sorts.iter().any(|s| s.expr == k.expr) {
                    sorts.push(k);
                }
            }
            let (state, _) = df.into_parts();
            DataFrame::new(state, input).sort(sorts)
        }
        None => df.sort(sorts),
    }
}

/// `time` rounded down to multiples of a duration since the Unix epoch.
pub(super) fn bucket_expr(cx: &Compiler<'_>, span_text: &ast::Dur, span: ast::Span) -> R<Expr> {
    let micros = Clock::duration(span_text, span)?;
    if micros <= 0 {
        return Err(Diagnostic::at(
            "E0208",
            "a bucket must be longer than zero",
            span,
        ));
    }
    let time = if cx.table.is_some() {
        column("time")
    } else {
        col(c::TIME)
    };
    // `date_bin` answers in nanoseconds; buckets are times like any other (µs, UTC).
    Ok(datafusion::logical_expr::cast(
        date_bin(
            lit(ScalarValue::new_interval_mdn(0, 0, micros * 1000)),
            time,
            ts(0),
        ),
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        ),
    ))
}

pub(super) fn aggregate(cx: &Compiler<'_>, a: &ast::Agg) -> R<Expr> {
    let field = match &a.field {
        Some(f) => Some(cx.output(f)?.1),
        None => None,
    };
    let by_time = || {
        if cx.table.is_none() {
            vec![col(c::TIME).sort(true, false)]
        } else {
            vec![]
        }
    };
    let e = match (a.func, field) {
        (AggFn::Count, None) => count(lit(COUNT_STAR)),
        (AggFn::Count, Some(f)) => count(f),
        (AggFn::Dc, Some(f)) => count_distinct(f),
        (AggFn::Min, Some(f)) => min(f),
        (AggFn::Max, Some(f)) => max(f),
        (AggFn::First, Some(f)) => first_value(f, by_time()),
        (AggFn::Last, Some(f)) => last_value(f, by_time()),
        (AggFn::Values, Some(f)) => array_agg(f.clone())
            .distinct()
            .filter(f.clone().is_not_null())
            .order_by(vec![f.sort(true, false)])
            .build()
            .map_err(|e| df_err(e, a.span))?,
        (func, None) => {
            return Err(Diagnostic::at(
                "E0406",
                format!("`{}` needs a field", func.name()),
                a.span,
            ));
        }
    };
    Ok(e.alias(a.column()))
}

/// Aggregate (or, without aggregates, take distinct groups); rows sorted by the groups.
pub(super) fn group(
    cx: &mut Compiler<'_>,
    df: DataFrame,
    groups: Vec<(String, Expr)>,
    aggs: Vec<Expr>,
    stage: &str,
) -> R<DataFrame> {
    let whole = ast::Span::default();
    // Aggregate the bare expressions and name the columns in a projection above, as
    // SQL planning does: optimizer rules look for unaliased aggregates (a lone
    // `dc(f) by g` becomes two cheap group-bys instead of one hash set per group).
    let mut names: Vec<String> = groups.iter().map(|(n, _)| n.clone()).collect();
    let keys: Vec<Expr> = groups.into_iter().map(|(_, e)| e).collect();
    // The same aggregate under two names (`stats count, count as n`) is computed once.
    let mut unique: Vec<Expr> = Vec::new();
    let mut which: Vec<usize> = (0..keys.len()).collect();
    for a in aggs {
        let bare = match a {
            Expr::Alias(alias) => {
                names.push(alias.name);
                *alias.expr
            }
            other => {
                names.push(other.schema_name().to_string());
                other
            }
        };
        let at = match unique.iter().position(|u| *u == bare) {
            Some(at) => at,
            None => {
                unique.push(bare);
                unique.len() - 1
            }
        };
        which.push(keys.len() + at);
    }
    let sorts: Vec<SortExpr> = names[..keys.len()]
        .iter()
        .map(|n| column(n).sort(true, false))
        .collect();
    let df = df.aggregate(keys, unique).map_err(|e| df_err(e, whole))?;
    let columns = df.schema().columns();
    let named: Vec<Expr> = which
        .iter()
        .zip(&names)
        .map(|(&c, n)| {
            let column = columns.get(c).ok_or_else(|| {
                Diagnostic::at(
                    "E0900",
                    format!("cannot plan this: the column `{n}` of `{stage}` is missing"),
                    whole,
                )
            })?;
            Ok(Expr::Column(column.clone()).alias(n))
        })
        .collect::<R<_>>()?;
    let df = df.select(named).map_err(|e| df_err(e, whole))?;
    let df = if sorts.is_empty() {
        df
    } else {
        df.sort(sorts).map_err(|e| df_err(e, whole))?
    };
    cx.now_table(&df, stage);
    Ok(df)
}

/// E0407 when two columns of a `stats` have one name (`stats count as action by
/// action`, `stats count, count`): the table could not say which is which.
pub(super) fn named_once(by: &[Field], aggs: &[ast::Agg]) -> R<()> {
    let named = by
        .iter()
        .map(|f| (f.name.clone(), f.span, "group by it once"))
        .chain(aggs.iter().map(|a| {
            let help = "name one of them with `as`, e.g. `count as events`";
            (a.column(), a.span, help)
        }));
    let mut seen: Vec<String> = Vec::new();
    for (name, span, help) in named {
        if seen.contains(&name) {
            return Err(Diagnostic::at(
                "E0407",
                format!("the column `{name}` is named twice"),
                span,
            )
            .help(help));
        }
        seen.push(name);
    }
    Ok(())
}

/// `fields *`: every column.
pub fn is_star(fields: &[Field]) -> bool {
    matches!(fields, [f] if f.name == "*")
}

/// The archive's columns `fields *` shows: all but the internal fingerprint, the place
/// in the evidence log (`archive prove` gives it) and the partition column (the day of
/// `time`).
fn all_columns() -> Vec<Expr> {
    event::schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| ![c::RAW_HASH, c::LEAF, c::DATE].contains(n))
        .map(col)
        .collect()
}

/// Select fields as named output columns (`*`: the archive's columns, by their names).
pub(super) fn project(
    cx: &mut Compiler<'_>,
    df: DataFrame,
    fields: &[Field],
    stage: &str,
) -> R<DataFrame> {
    let exprs = if is_star(fields) && cx.table.is_none() {
        let mut all = all_columns();
        all.extend(cx.added.iter().map(|(n, _)| column(n)));
        all
    } else {
        fields
            .iter()
            .map(|f| cx.output(f).map(|(n, e)| e.alias(n)))
            .collect::<R<Vec<_>>>()?
    };
    let df = df
        .select(exprs)
        .map_err(|e| df_err(e, ast::Span::default()))?;
    cx.now_table(&df, stage);
    Ok(df)
}
