//! A query -> its DataFrame over the archive's table: the head (time range and filter),
//! then a loop over the stages, each adding its own plan (`stage/`).

use datafusion::dataframe::DataFrame;
use datafusion::prelude::col;

use super::compile::{
    Compiler, DEFAULT_VIEW, column, df_err, fields_of, head_predicate, project, resort, time_order,
};
use super::fields;
use super::stage;
use crate::diag::Diagnostic;
use crate::lang::ast::{self, AggFn, Query, Stage};
use crate::lang::time::{Clock, Range, time_range};

type R<T> = Result<T, Diagnostic>;

/// Whether a query starts with `count by action` over every event (no filter, no time):
/// then the archive's summary holds the answer to that stage, and [`compile`] can start
/// from it instead of scanning (see `counts` there).
pub fn starts_with_action_counts(q: &Query) -> bool {
    if q.filter.is_some() || !q.time.is_empty() {
        return false;
    }
    matches!(
        q.stages.first(),
        Some(Stage::Stats(ast::Stats { aggs, by, window: None, .. }))
            if aggs.len() == 1
                && aggs[0].func == AggFn::Count
                && aggs[0].field.is_none()
                && by.len() == 1
                && fields::resolve(&by[0].name).is_some_and(|d| d.name == "action")
    )
}

/// What is known of the archive beside its table.
#[derive(Default)]
pub struct Input<'a> {
    /// Every value of `action` in `events`.
    pub actions: Option<&'a [&'a str]>,
    /// For a query that [`starts_with_action_counts`], the number of events of each
    /// action (columns `action`, `count`; a null action too), from the archive's
    /// summary: it answers the first stage without reading `events`.
    pub counts: Option<DataFrame>,
    /// The archive's first and last event time (µs): a `timechart` without a time
    /// clause fills the buckets between them.
    pub extent: Option<(i64, i64)>,
}

/// Build the DataFrame of a query over `events` (the archive's table), and its time range.
pub fn compile(
    q: &Query,
    events: DataFrame,
    clock: &Clock,
    input: Input<'_>,
) -> R<(DataFrame, Range)> {
    let Input {
        actions,
        counts,
        extent,
    } = input;
    super::check::check(q, super::check::Mode::Batch)?;
    let mut cx = Compiler::new(clock);
    if let Some(actions) = actions {
        cx = cx.with_actions(actions);
    }
    let range = time_range(q, clock)?;
    for s in &q.stages {
        stage::of(s).precheck()?;
    }
    let mut df = events;
    let whole = ast::Span::default();
    // A stage that learns from every earlier event (`first_seen`): the time range
    // applies to what it reports, not to what it reads.
    let learns = q.stages.iter().any(|s| stage::of(s).learns());
    let head = if learns {
        q.filter.as_ref().map(|f| cx.filter(f)).transpose()?
    } else {
        head_predicate(q, &cx)?
    };
    if let Some(p) = head {
        df = df.filter(p).map_err(|e| df_err(e, whole))?;
    }
    let mut done = 0;
    if let (Some(counts), true) = (counts, starts_with_action_counts(q)) {
        let Stage::Stats(ast::Stats { aggs, by, .. }) = &q.stages[0] else {
            unreachable!("checked above")
        };
        let e = |e| df_err(e, q.stages[0].span());
        df = counts
            .select(vec![
                col("action").alias(&by[0].name),
                col("count").alias(aggs[0].column()),
            ])
            .map_err(e)?
            .sort(vec![column(&by[0].name).sort(true, false)])
            .map_err(e)?;
        cx.now_table(&df, &q.stages[0].to_string());
        done = 1;
    }
    let mut p = stage::Plan {
        cx,
        df: Some(df),
        view: fields_of(DEFAULT_VIEW),
        ordered: false,
        range,
        extent,
    };
    for s in &q.stages[done..] {
        stage::of(s).plan(&mut p)?;
    }
    if p.cx.table.is_none() {
        // The events, in time order unless sorted, as the view shows them.
        if !p.ordered {
            p.with(|_, df| resort(df, time_order()).map_err(|e| df_err(e, whole)))?;
        }
        let view = std::mem::take(&mut p.view);
        p.with(|cx, df| project(cx, df, &view, "fields"))?;
    }
    Ok((p.df.expect("a plan"), p.range))
}
