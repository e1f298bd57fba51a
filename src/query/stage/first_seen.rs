//! `| first_seen country by actor.id [after 30d]`: the events whose value (tuple) is new
//! for their key, against every earlier event that passes the same filters; the first
//! `after` of the archive only learns.

use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{Expr, col, lit};

use super::{Def, Flow, Plan, R, Step, Stream};
use crate::diag::Diagnostic;
use crate::event::col as c;
use crate::lang::ast::{Field, FirstSeen, Span};
use crate::lang::time::Clock;
use crate::query::compile::{Compiler, balanced, column, df_err, range_predicates, ts};

impl Def for FirstSeen {
    fn span(&self) -> Span {
        self.span
    }

    fn reads_events(&self) -> Option<&'static str> {
        Some("`first_seen`")
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.by);
        out.extend(&self.fields);
        true
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::Pass)
    }

    fn learns(&self) -> bool {
        true
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let mut report = range_predicates(&p.range);
        if let Some(after) = &self.after {
            let Some((first, _)) = p.extent else {
                return Err(Diagnostic::at(
                    "E0414",
                    "`after` counts from the archive's first event, which is unknown here",
                    self.span,
                )
                .help("the archive's summary is unavailable: `auditq archive verify` says why"));
            };
            let learn = Clock::duration(after, self.span)?;
            report.push(col(c::TIME).gt_eq(ts(first.saturating_add(learn))));
        }
        p.with(|cx, df| firsts(cx, df, &self.fields, &self.by, report))
    }

    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let parts = self
            .by
            .iter()
            .chain(&self.fields)
            .map(|f| s.output(f))
            .collect::<R<Vec<_>>>()?;
        let after = self
            .after
            .as_ref()
            .map(|a| Clock::duration(a, self.span))
            .transpose()?;
        s.steps.push(Step::FirstSeen {
            parts,
            after,
            slot: s.seen,
        });
        s.seen += 1;
        Ok(())
    }
}

/// The events of `df` whose values of `fields` are new for their values of `by` (the
/// first of each tuple in time order, ties by id), among those that pass `report`.
/// Events with any of them missing take no part.
fn firsts(
    cx: &Compiler<'_>,
    df: DataFrame,
    fields: &[Field],
    by: &[Field],
    report: Vec<Expr>,
) -> Result<DataFrame, Diagnostic> {
    let parts = by
        .iter()
        .chain(fields)
        .map(|f| Ok(cx.output(f)?.1))
        .collect::<R<Vec<Expr>>>()?;
    let span = fields[0].span;
    let e = |e| df_err(e, span);
    let present = balanced(
        parts.iter().map(|p| p.clone().is_not_null()).collect(),
        Expr::and,
    );
    // The window reads only the id, the time and the tuple, texts as their fingerprints,
    // worked out first: `first_seen raw` sorted every event's whole JSON (5 GB at 1.5M
    // events).
    let mut slim = vec![col(c::ID), col(c::TIME)];
    let mut keys = Vec::with_capacity(parts.len());
    for (i, p) in parts.into_iter().enumerate() {
        use datafusion::logical_expr::ExprSchemable;
        let text = p
            .get_type(df.schema())
            .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8));
        let p = if text {
            crate::query::udf::fingerprint_udf().call(vec![p])
        } else {
            p
        };
        slim.push(p.alias(format!("__part{i}")));
        keys.push(column(&format!("__part{i}")));
    }
    let first = datafusion::functions_window::expr_fn::row_number()
        .partition_by(keys)
        .order_by(vec![
            col(c::TIME).sort(true, false),
            col(c::ID).sort(true, false),
        ])
        .build()
        .map_err(e)?;
    let firsts = df
        .clone()
        .filter(present)
        .map_err(e)?
        .select(slim)
        .map_err(e)?
        .select(vec![col(c::ID).alias("__first_id"), first.alias("__first")])
        .map_err(e)?
        .filter(column("__first").eq(lit(1u64)))
        .map_err(e)?
        .select(vec![column("__first_id")])
        .map_err(e)?;
    let df = match report.into_iter().reduce(Expr::and) {
        Some(p) => df.filter(p).map_err(e)?,
        None => df,
    };
    // `id IN (…)`: the optimizer makes it a semi join; the SQL writer keeps it a subquery.
    let firsts = std::sync::Arc::new(firsts.into_unoptimized_plan());
    df.filter(datafusion::logical_expr::expr_fn::in_subquery(
        col(c::ID),
        firsts,
    ))
    .map_err(e)
}
