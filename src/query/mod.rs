//! Running queries: parse, compile to a DataFusion plan over the archive, execute, write.
//! `auditq query`, `auditq explain` (and later the REPL and `follow`) all come through here.

pub mod compile;
pub mod fields;
pub mod output;
pub mod udf;

use chrono_tz::Tz;
use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

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

/// A query that failed to parse or compile: its diagnostics, rendered.
pub fn bad_query(src: &str, diags: &[Diagnostic], style: ErrorStyle) -> Error {
    Error::BadQuery(match style {
        ErrorStyle::Text => crate::diag::render(src, diags),
        ErrorStyle::Json => crate::diag::render_json(src, diags),
    })
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
    let table = archive.open_table().await?;
    let ctx = read::session(archive, &table).await?;
    ctx.register_udf(udf::ip_in_cidr_udf());
    ctx.register_udf(udf::list_match_udf());
    Ok(ctx)
}

/// A parsed and planned query.
pub struct Planned {
    pub query: Query,
    pub frame: DataFrame,
}

/// Parse and plan `src` against the session's `events` table.
pub async fn plan(ctx: &SessionContext, src: &str, now: i64, style: ErrorStyle) -> Result<Planned> {
    let query = lang::parse(src).map_err(|d| bad_query(src, &d, style))?;
    let tz = compile::query_tz(&query, Tz::UTC).map_err(|d| bad_query(src, &[d], style))?;
    let clock = Clock { now, tz };
    let events = ctx
        .table("events")
        .await
        .map_err(|e| Error::Runtime(format!("opening the archive's table: {e}")))?;
    let frame =
        compile::compile(&query, events, &clock).map_err(|d| bad_query(src, &[d], style))?;
    Ok(Planned { query, frame })
}

/// Run a query to completion.
pub async fn run(
    archive: &Archive,
    src: &str,
    now: i64,
    style: ErrorStyle,
) -> Result<Vec<RecordBatch>> {
    let ctx = session(archive).await?;
    let planned = plan(&ctx, src, now, style).await?;
    planned
        .frame
        .collect()
        .await
        .map_err(|e| Error::Runtime(format!("running the query: {e}")))
}

/// `auditq explain`: canonical text, logical plan, physical plan, and equivalent SQL.
pub async fn explain(archive: &Archive, src: &str, now: i64, style: ErrorStyle) -> Result<String> {
    let ctx = session(archive).await?;
    let planned = plan(&ctx, src, now, style).await?;
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
    let sql = match datafusion::sql::unparser::plan_to_sql(&optimized) {
        Ok(s) => s.to_string(),
        Err(e) => format!("(no SQL form: {e})"),
    };
    Ok(format!(
        "query:\n  {}\n\nlogical plan:\n{}\n\noptimized logical plan:\n{}\n\nphysical plan:\n{}\nsql:\n  {sql}\n",
        planned.query,
        indent(&logical.display_indent().to_string()),
        indent(&optimized.display_indent().to_string()),
        indent(&physical.to_string()),
    ))
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}
