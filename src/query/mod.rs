//! Running queries: parse, compile to a DataFusion plan over the archive, execute, write.
//! `auditq query`, `auditq explain` (and later the REPL and `follow`) all come through here.

pub mod compile;
pub mod fields;
pub mod output;
pub mod udf;

use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use crate::archive::summary::{self, Summary};
use crate::archive::{Archive, read};
use crate::diag::Diagnostic;
use crate::error::{Error, Result};
use crate::lang::{self, Query};
pub use compile::Clock;

/// How problems with the query text are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    #[default]
    Text,
    Json,
}

/// Diagnostics drawn under the query, or as JSON lines.
pub fn render(src: &str, diags: &[Diagnostic], style: ErrorStyle) -> String {
    match style {
        ErrorStyle::Text => crate::diag::render(src, diags),
        ErrorStyle::Json => crate::diag::render_json(src, diags),
    }
}

/// A query that failed to parse or compile: its diagnostics, rendered.
pub fn bad_query(src: &str, diags: &[Diagnostic], style: ErrorStyle) -> Error {
    Error::BadQuery(render(src, diags, style))
}

/// "Now" for relative times: `--now`, else `AUDITQ_NOW`, else the clock.
pub fn now(flag: Option<&str>) -> Result<i64> {
    let text = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("AUDITQ_NOW").ok().filter(|s| !s.is_empty()));
    match text {
        None => Ok(chrono::Utc::now().timestamp_micros()),
        Some(t) => crate::event::parse_time(&t).ok_or_else(|| {
            Error::Usage(format!(
                "`{t}` is not a time for --now / AUDITQ_NOW (expected e.g. 2026-02-16T12:00:00Z)"
            ))
        }),
    }
}

/// A session over the archive's current version, with auditq's functions registered.
pub async fn session(archive: &Archive) -> Result<SessionContext> {
    Ok(open(archive).await?.0)
}

/// A session over the archive's current version, and the summary of that version.
pub async fn open(archive: &Archive) -> Result<(SessionContext, Summary)> {
    let table = archive.open_table().await?;
    let files = read::live_files(archive, &table)?;
    let summary = summary::summarize(archive, &files)?;
    let blooms = summary::id_blooms(archive, &files);
    let ctx = read::session(archive, &table, blooms.as_ref()).await?;
    ctx.register_udf(udf::ip_in_cidr_udf());
    ctx.register_udf(udf::list_match_udf());
    Ok((ctx, summary))
}

/// A parsed and planned query.
pub struct Planned {
    pub query: Query,
    pub frame: DataFrame,
    pub range: compile::Range,
}

/// Parse and plan `src` against the session's `events` table. `clock.tz` is the zone
/// of dates unless the query names one (`tz "…"`). With the archive's `summary` (of the
/// same version), comparisons on `action` use its set of actions.
pub async fn plan(
    ctx: &SessionContext,
    src: &str,
    clock: Clock,
    style: ErrorStyle,
    summary: Option<&Summary>,
) -> Result<Planned> {
    let query = lang::parse(src).map_err(|d| bad_query(src, &d, style))?;
    let tz = compile::query_tz(&query, clock.tz).map_err(|d| bad_query(src, &[d], style))?;
    let clock = Clock { now: clock.now, tz };
    let events = ctx
        .table("events")
        .await
        .map_err(|e| Error::Runtime(format!("opening the archive's table: {e}")))?;
    let actions: Option<Vec<&str>> =
        summary.map(|s| s.actions.keys().map(String::as_str).collect());
    let counts = match summary {
        Some(s) if compile::starts_with_action_counts(&query) => Some(action_counts(ctx, s)?),
        _ => None,
    };
    let (frame, range) = compile::compile(&query, events, &clock, actions.as_deref(), counts)
        .map_err(|d| bad_query(src, &[d], style))?;
    Ok(Planned {
        query,
        frame,
        range,
    })
}

/// The number of events of each action (a row for events without one, if any), from
/// the archive's summary: the answer of `| count by action` without reading the data.
fn action_counts(ctx: &SessionContext, s: &Summary) -> Result<DataFrame> {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut names: Vec<Option<&str>> = s.actions.keys().map(|a| Some(a.as_str())).collect();
    let mut counts: Vec<i64> = s.actions.values().map(|&n| n as i64).collect();
    let without = s.rows.saturating_sub(s.actions.values().sum::<u64>());
    if without > 0 {
        names.push(None);
        counts.push(without as i64);
    }
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("action", DataType::Utf8, true),
        Field::new("count", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(StringArray::from(names)),
            std::sync::Arc::new(Int64Array::from(counts)),
        ],
    )
    .map_err(|e| Error::Runtime(format!("action counts: {e}")))?;
    ctx.read_batch(batch)
        .map_err(|e| Error::Runtime(format!("action counts: {e}")))
}

/// Warnings about a query: a time range starting before the archive's first event;
/// action values or globs that match no archived action (naming the nearest ones).
/// They come from the archive's [`Summary`], not from a scan.
pub fn warnings(summary: &Summary, planned: &Planned) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let (Some(start), Some(clause), Some(first)) = (
        planned.range.start,
        planned.query.time.first(),
        summary.first,
    ) && start < first
    {
        let span = clause.span();
        out.push(
            Diagnostic::warning(
                "W0240",
                format!(
                    "the time range starts before the archive's first event ({})",
                    crate::event::format_time(first)
                ),
                span.start,
                span.end,
            )
            .label("earlier than anything archived")
            .help("results cover only what the archive holds; sync or import older events to see more"),
        );
    }
    let values = action_values(&planned.query);
    if values.is_empty() || summary.actions.is_empty() {
        return out;
    }
    let actions: Vec<&String> = summary.actions.keys().collect();
    for (text, glob, span) in values {
        let re = udf::glob_regex(&text);
        let matches = |a: &str| {
            if glob {
                re.is_match(a)
            } else {
                a.eq_ignore_ascii_case(&text)
            }
        };
        if actions.iter().any(|a| matches(a.as_str())) {
            continue;
        }
        let needle = text.trim_matches(['*', '?']).to_ascii_lowercase();
        let mut near: Vec<&str> = actions
            .iter()
            .filter(|a| !needle.is_empty() && a.contains(needle.as_str()))
            .map(|a| a.as_str())
            .take(3)
            .collect();
        if near.is_empty()
            && let Some(m) = crate::diag::did_you_mean(&needle, actions.iter().map(|a| a.as_str()))
        {
            near.push(m);
        }
        let what = if glob { " (an anchored glob)" } else { "" };
        let mut d = Diagnostic::warning(
            "W0010",
            format!("no archived action matches `{text}`{what}"),
            span.start,
            span.end,
        );
        if !near.is_empty() {
            d = d.help(format!("actions that come close: {}", near.join(", ")));
        }
        if glob && !text.starts_with('*') {
            d = d.help(format!(
                "to match anywhere in the name use `*{}`",
                text.trim_start_matches('*')
            ));
        }
        out.push(d);
    }
    out
}

/// The values and globs the query compares `action` with (positively).
fn action_values(q: &Query) -> Vec<(String, bool, crate::lang::ast::Span)> {
    use crate::lang::ast::{CmpOp, Expr, Field, Span, Value};
    fn is_action(f: &Field) -> bool {
        fields::resolve(&f.name).is_some_and(|d| d.name == "action")
    }
    fn walk(e: &Expr, out: &mut Vec<(String, bool, Span)>) {
        match e {
            Expr::Or(items, _) | Expr::And(items, _) => items.iter().for_each(|i| walk(i, out)),
            Expr::Cmp {
                field,
                op,
                value: Value::Str(v, span),
                ..
            } if is_action(field) => match op {
                CmpOp::Eq | CmpOp::ExactEq => out.push((v.clone(), false, *span)),
                CmpOp::Match => out.push((v.clone(), true, *span)),
                _ => {}
            },
            Expr::In {
                field,
                negated: false,
                values,
                ..
            } if is_action(field) => {
                for v in values {
                    if let Value::Str(t, span) = v {
                        out.push((t.clone(), t.contains(['*', '?']), *span));
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(f) = &q.filter {
        walk(f, &mut out);
    }
    out
}

/// A query's result, and the warnings about it.
pub struct Answer {
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub warnings: Vec<Diagnostic>,
    /// The time the result covers (µs, `[start, end)`): the query's range cut to the
    /// archive's first and last event; `None` when the archive is empty or they miss.
    pub covers: Option<(i64, i64)>,
}

/// Run a query to completion; with `warn`, also look for [`warnings`].
pub async fn run(
    archive: &Archive,
    src: &str,
    clock: Clock,
    style: ErrorStyle,
    warn: bool,
) -> Result<Answer> {
    let (ctx, summary) = open(archive).await?;
    let planned = plan(&ctx, src, clock, style, Some(&summary)).await?;
    let schema = std::sync::Arc::new(planned.frame.schema().as_arrow().clone());
    let batches = planned
        .frame
        .clone()
        .collect()
        .await
        .map_err(|e| Error::Runtime(format!("running the query: {e}")))?;
    let warnings = if warn {
        warnings(&summary, &planned)
    } else {
        Vec::new()
    };
    let covers = match (summary.first, summary.last) {
        (Some(first), Some(last)) => {
            let start = planned.range.start.map_or(first, |s| s.max(first));
            let end = planned.range.end.map_or(last + 1, |e| e.min(last + 1));
            (start < end).then_some((start, end))
        }
        _ => None,
    };
    Ok(Answer {
        schema,
        batches,
        warnings,
        covers,
    })
}

/// `auditq explain`: canonical text, logical plan, physical plan, and equivalent SQL;
/// with `analyze`, the plan as run, with each operator's metrics.
pub async fn explain(
    archive: &Archive,
    src: &str,
    clock: Clock,
    style: ErrorStyle,
    analyze: bool,
) -> Result<String> {
    let (ctx, summary) = open(archive).await?;
    let planned = plan(&ctx, src, clock, style, Some(&summary)).await?;
    let rt = |e: datafusion::error::DataFusionError| Error::Runtime(format!("planning: {e}"));
    let logical = planned.frame.logical_plan().clone();
    let optimized = ctx.state().optimize(&logical).map_err(rt)?;
    let physical = planned
        .frame
        .clone()
        .create_physical_plan()
        .await
        .map_err(rt)?;
    let physical = datafusion::physical_plan::displayable(physical.as_ref()).indent(true);
    let sql = match datafusion::sql::unparser::plan_to_sql(&logical) {
        Ok(s) => s.to_string(),
        Err(e) => format!("(no SQL form: {e})"),
    };
    let mut text = format!(
        "query:\n  {}\n\nlogical plan:\n{}\n\noptimized logical plan:\n{}\n\nphysical plan:\n{}\nsql:\n  {sql}\n",
        planned.query,
        indent(&logical.display_indent().to_string()),
        indent(&optimized.display_indent().to_string()),
        indent(&physical.to_string()),
    );
    if analyze {
        let run = planned.frame.clone().explain(false, true).map_err(rt)?;
        let batches = run.collect().await.map_err(rt)?;
        text.push_str("\nanalyzed plan:\n");
        for b in &batches {
            // Columns: plan_type, plan.
            let plans = datafusion::arrow::compute::cast(
                b.column(b.num_columns() - 1),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .map_err(|e| Error::Runtime(format!("planning: {e}")))?;
            let plans = plans
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .expect("cast to Utf8 gives a StringArray");
            for p in plans.iter().flatten() {
                text.push_str(&indent(p));
                text.push('\n');
            }
        }
    }
    Ok(text)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}
