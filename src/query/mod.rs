//! Running queries: parse, compile to a DataFusion plan over the archive, execute as a
//! stream, write. `auditq query`, `auditq explain`, the REPL and `follow` all come
//! through here.

pub mod chart;
pub mod check;
pub mod compile;
pub mod fields;
pub mod fold;
pub mod lookup;
pub mod output;
pub mod plan;
pub mod remote;
pub mod sequence;
pub mod stage;
pub mod udf;

use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;

use crate::archive::summary::{self, Summary};
use crate::archive::{Archive, read};
use crate::diag::Diagnostic;
pub use crate::lang::time::Clock;
use crate::lang::{self, Query};

type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong running a query once it has compiled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the archive's table")]
    Table(#[source] DataFusionError),
    #[error("planning the query")]
    Plan(#[source] DataFusionError),
    #[error("running the query")]
    Execute(#[source] DataFusionError),
    /// A value the output format cannot hold (Arrow, Parquet or JSON encoding).
    #[error("writing the result")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The destination refused the bytes (a closed pipe is this, with `BrokenPipe`).
    #[error("{what}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A query that does not parse or compile: its text and diagnostics, rendered by the
    /// caller in the style and colour it chose.
    #[error(transparent)]
    Rejected(Box<crate::diag::Rejected>),
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    /// The archive names a cluster, and no engine for clusters is installed
    /// ([`remote::install`]).
    #[error("this auditq was built without the `cluster` feature (cargo build --features cluster)")]
    NoCluster,
    /// `sequence` is auditq's own operator, which a cluster's executors do not have.
    #[error(
        "`sequence` does not run on a cluster: it is auditq's own operator, which the executors do not have"
    )]
    SequenceOnCluster,
    /// The cluster engine's own error.
    #[error(transparent)]
    Cluster(remote::BoxError),
}

/// A refused query.
pub fn rejected(src: &str, diags: Vec<Diagnostic>) -> Error {
    Error::Rejected(Box::new(crate::diag::Rejected::new(src, diags)))
}

/// Every function auditq adds to DataFusion, the one registry of them (sessions and the
/// cluster engine register them; `explain` notes SQL
/// that calls them, which other engines cannot run).
pub fn own_functions() -> Vec<datafusion::logical_expr::ScalarUDF> {
    vec![
        udf::fingerprint_udf(),
        lookup::network_of_udf(),
        fold::eq_fold_udf(),
        udf::ip_in_cidr_udf(),
        udf::list_match_udf(),
        udf::json_get_udf(),
        chart::bucket_times_udf(),
        chart::bucket_values_udf(),
    ]
}

/// A session over the archive's current version, with auditq's functions registered.
pub async fn session(archive: &Archive) -> Result<SessionContext> {
    Ok(open(archive).await?.0)
}

/// A session over the archive's current version (or the one it is read as of), and the
/// summary of that version.
/// The summary is `None` when a live file is missing or changed since it was committed:
/// then nothing is answered from metadata (see [`read::changed_files`]).
pub async fn open(archive: &Archive) -> Result<(SessionContext, Option<Summary>)> {
    let engine = match archive.cluster() {
        Some(scheduler) => Some((scheduler, remote::installed().ok_or(Error::NoCluster)?)),
        None => None,
    };
    let table = archive.table_for_reading().await?;
    let files = read::live_files(archive, &table)?;
    let changed = read::changed_files(archive, &files);
    let (summary, aids) = if changed.is_empty() {
        let version = table.version().map_or(-1, |v| v as i64);
        let summary = summary::summarize(archive, &files, version)?;
        (Some(summary), summary::file_aids(archive, &files, version))
    } else {
        tracing::warn!(
            target: "auditq::archive",
            "{} live files are missing or changed since their commit (first: {}); answering from the data only",
            changed.len(),
            changed[0].rel
        );
        (None, None)
    };
    let ctx = match engine {
        None => {
            let ctx =
                crate::archive::session::session(archive, &table, aids.as_ref(), summary.is_some())
                    .await?;
            // DataFusion's planner, which also plans `| sequence`.
            let state = datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
                .with_query_planner(std::sync::Arc::new(sequence::Planner))
                .build();
            SessionContext::new_with_state(state)
        }
        Some((scheduler, engine)) => {
            let functions = own_functions();
            let trust = summary.is_some();
            (engine
                .session(scheduler, archive, &table, trust, functions)
                .await)
                .map_err(Error::Cluster)?
        }
    };
    for f in own_functions() {
        ctx.register_udf(f);
    }
    ctx.add_optimizer_rule(std::sync::Arc::new(fold::FoldEq));
    Ok((ctx, summary))
}

/// A parsed and planned query.
pub struct Planned {
    pub query: Query,
    pub frame: DataFrame,
    pub range: crate::lang::time::Range,
}

/// Parse and plan `src` against the session's `events` table. `clock.tz` is the zone
/// of dates unless the query names one (`tz "…"`). With the archive's `summary` (of the
/// same version), comparisons on `action` use its set of actions.
pub async fn plan(
    ctx: &SessionContext,
    src: &str,
    clock: Clock,
    summary: Option<&Summary>,
) -> Result<Planned> {
    plan_with(ctx, src, clock, summary, true).await
}

/// [`plan`]; with `shortcuts` false, a first `| count by action` is planned as the
/// aggregate it is rather than answered from the summary (for `explain`'s SQL).
async fn plan_with(
    ctx: &SessionContext,
    src: &str,
    clock: Clock,
    summary: Option<&Summary>,
    shortcuts: bool,
) -> Result<Planned> {
    let query = lang::parse(src).map_err(|d| rejected(src, d))?;
    let tz = crate::lang::time::query_tz(&query, clock.tz).map_err(|d| rejected(src, vec![d]))?;
    let clock = Clock { now: clock.now, tz };
    let events = ctx.table("events").await.map_err(Error::Table)?;
    let actions: Option<Vec<&str>> =
        summary.map(|s| s.actions.keys().map(String::as_str).collect());
    let counts = match summary {
        Some(s) if shortcuts && plan::starts_with_action_counts(&query) => {
            Some(action_counts(ctx, s)?)
        }
        _ => None,
    };
    let extent = summary.and_then(|s| Some((s.first?, s.last?)));
    let input = plan::Input {
        actions: actions.as_deref(),
        counts,
        extent,
    };
    let (frame, range) =
        plan::compile(&query, events, &clock, input).map_err(|d| rejected(src, vec![d]))?;
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
    .map_err(|e| Error::Plan(e.into()))?;
    ctx.read_batch(batch).map_err(Error::Plan)
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
        // A glob too large to compile is refused when the query is compiled.
        let Ok(re) = udf::glob_regex(&text) else {
            continue;
        };
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

/// A query's result as it comes, and the warnings about it.
pub struct Answer {
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    /// The rows, batch by batch, as execution produces them.
    pub stream: SendableRecordBatchStream,
    pub warnings: Vec<Diagnostic>,
    /// The time the result covers (µs, `[start, end)`): the query's range cut to the
    /// archive's first and last event; `None` when the archive is empty or they miss.
    pub covers: Option<(i64, i64)>,
    /// The query ends in `timechart`: a table on a screen draws bars.
    pub chart: bool,
}

impl Answer {
    /// The next batch, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(b) => Ok(Some(b.map_err(Error::Execute)?)),
        }
    }

    /// Every batch (for small results and tests).
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await? {
            out.push(b);
        }
        Ok(out)
    }

    /// Write the whole result with `w`, batch by batch as execution produces them.
    pub async fn write(mut self, mut w: output::Writer) -> Result<output::Written> {
        while let Some(b) = self.next().await? {
            w.write(&b)?;
        }
        w.finish()
    }
}

/// `sequence` is auditq's own operator, which a Ballista cluster cannot ship to its
/// executors: such a query is refused there rather than failing half-way.
fn local_only(archive: &Archive, q: &Query) -> Result<()> {
    let own = q.stages.iter().any(|s| !stage::of(s).on_cluster());
    if archive.cluster().is_some() && own {
        return Err(Error::SequenceOnCluster);
    }
    Ok(())
}

/// Start a query; with `warn`, also look for [`warnings`]. Rows come from
/// [`Answer::next`] as DataFusion produces them: memory does not grow with the result.
pub async fn run(archive: &Archive, src: &str, clock: Clock, warn: bool) -> Result<Answer> {
    let (ctx, summary) = open(archive).await?;
    // A cluster runs plans of the archive's table only, not of rows made here.
    let shortcuts = archive.cluster().is_none();
    let planned = plan_with(&ctx, src, clock, summary.as_ref(), shortcuts).await?;
    local_only(archive, &planned.query)?;
    tracing::info!(
        target: "auditq::query",
        "query `{}`: logical plan\n{}",
        planned.query,
        planned.frame.logical_plan().display_indent()
    );
    let schema = std::sync::Arc::new(planned.frame.schema().as_arrow().clone());
    let chart = (planned.query.stages.last()).is_some_and(|s| stage::of(s).chart());
    let stream = planned
        .frame
        .clone()
        .execute_stream()
        .await
        .map_err(Error::Execute)?;
    let warnings = match (&summary, warn) {
        (Some(summary), true) => warnings(summary, &planned),
        _ => Vec::new(),
    };
    let extent = summary.as_ref().map_or((None, None), |s| (s.first, s.last));
    let covers = match extent {
        (Some(first), Some(last)) => {
            let start = planned.range.start.map_or(first, |s| s.max(first));
            let end = planned.range.end.map_or(last + 1, |e| e.min(last + 1));
            (start < end).then_some((start, end))
        }
        _ => None,
    };
    Ok(Answer {
        schema,
        stream,
        warnings,
        covers,
        chart,
    })
}

/// `auditq explain`: canonical text, logical plan, physical plan, and equivalent SQL;
/// with `analyze`, the plan as run, with each operator's metrics.
pub async fn explain(archive: &Archive, src: &str, clock: Clock, analyze: bool) -> Result<String> {
    let (ctx, summary) = open(archive).await?;
    let shortcuts = archive.cluster().is_none();
    let planned = plan_with(&ctx, src, clock, summary.as_ref(), shortcuts).await?;
    local_only(archive, &planned.query)?;
    let rt = Error::Plan;
    let logical = planned.frame.logical_plan().clone();
    let optimized = ctx.state().optimize(&logical).map_err(rt)?;
    let physical = planned
        .frame
        .clone()
        .create_physical_plan()
        .await
        .map_err(rt)?;
    let physical = datafusion::physical_plan::displayable(physical.as_ref()).indent(true);
    // The SQL of the query itself: a first `| count by action` answered from the
    // summary is a table only auditq has.
    let sql = if shortcuts && plan::starts_with_action_counts(&planned.query) {
        let direct = plan_with(&ctx, src, clock, summary.as_ref(), false).await?;
        format!(
            "{}\n-- (auditq answers the first stage from the archive's summary, not a scan)",
            sql_of(direct.frame.logical_plan())
        )
    } else {
        sql_of(&logical)
    };
    let mut text = format!(
        "query:\n  {}\n\nlogical plan:\n{}\n\noptimized logical plan:\n{}\n\nphysical plan:\n{}\nsql:\n  {sql}\n",
        planned.query,
        indent(&logical.display_indent().to_string()),
        indent(&optimized.display_indent().to_string()),
        indent(&physical.to_string()),
    );
    if let (Some(_), Some(engine)) = (archive.cluster(), remote::installed()) {
        let stages = (engine.stages(&optimized, own_functions()).await).map_err(Error::Cluster)?;
        text.push_str("\nstages on the cluster (as its scheduler plans them):\n");
        text.push_str(&indent(&stages));
    }
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
            .map_err(|e| Error::Plan(e.into()))?;
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

/// The plan as SQL, with a note when it is not portable as printed: it calls auditq's own
/// functions. A plan the unparser cannot express says so instead.
fn sql_of(plan: &datafusion::logical_expr::LogicalPlan) -> String {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    // A node SQL cannot name: auditq's own operator, or a table other than the archive's.
    let mut unnamed = None;
    let _ = plan.apply(|p| {
        unnamed = match p {
            LogicalPlan::Extension(_) => {
                Some("`sequence` is auditq's own operator; SQL has no equivalent of it")
            }
            LogicalPlan::TableScan(t) if t.table_name.table() != "events" => {
                Some("`lookup` joins a file auditq reads into memory, which the SQL would not find")
            }
            _ => None,
        };
        Ok(if unnamed.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    if let Some(why) = unnamed {
        return format!("(no SQL form: {why})");
    }
    let sql = match datafusion::sql::unparser::plan_to_sql(plan) {
        Ok(mut s) => {
            unqualify(&mut s);
            s.to_string()
        }
        Err(e) => return format!("(no SQL form: {e})"),
    };
    let (scalars, ordered_aggregates) = functions(plan);
    if !ordered_aggregates.is_empty() {
        // The unparser drops `ORDER BY` inside an aggregate: `first(f)` would read any row.
        return format!(
            "(no faithful SQL form: {} need the order of rows inside the aggregate, which the SQL writer leaves out)",
            ordered_aggregates
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // SQL that calls auditq's own functions runs in auditq's session (and
    // `explained_sql_runs_and_agrees` checks that it agrees), but not in other engines.
    let own: Vec<String> = own_functions()
        .iter()
        .map(|f| f.name().to_owned())
        .chain(["matches_any".to_owned()])
        .filter(|f| scalars.contains(f))
        .collect();
    let mut notes = Vec::new();
    if !own.is_empty() {
        notes.push(format!(
            "calls auditq's own {} {} (DuckDB, Spark and Trino lack them)",
            if own.len() == 1 {
                "function"
            } else {
                "functions"
            },
            own.join(", ")
        ));
    }
    if scalars.contains("date_bin") {
        notes.push("`date_bin` is DataFusion's (DuckDB: `time_bucket`)".to_owned());
    }
    if notes.is_empty() {
        sql
    } else {
        format!("{sql}\n-- approximate outside auditq: {}", notes.join("; "))
    }
}

/// `events.x` as plain `x`. The unparser qualifies columns with the table's name also
/// outside the derived tables it makes (`SELECT events.id FROM (SELECT * FROM events …)`),
/// which DataFusion accepts and standard SQL engines refuse. auditq's plans read one
/// table, so a bare name is never ambiguous.
fn unqualify(stmt: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{Expr, visit_expressions_mut};
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && parts[0].value == "events"
        {
            *e = Expr::Identifier(parts[1].clone());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// The names of the scalar functions a plan calls, and of its aggregates that order
/// their input (`first_value(f ORDER BY time)`).
fn functions(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    let mut names = std::collections::BTreeSet::new();
    let mut ordered = std::collections::BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::ScalarFunction(f) => {
                        names.insert(f.name().to_owned());
                    }
                    Expr::AggregateFunction(f) if !f.params.order_by.is_empty() => {
                        ordered.insert(f.func.name().to_owned());
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    (names, ordered)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}
