//! `| timechart 1h [agg] [by f]`: a series per value of `f`, one row per bucket of the
//! time range (0, or null, where nothing happened), drawn as a chart.

use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{Expr, col, lit};

use super::{Def, Flow, Plan, R, needs_whole};
use crate::diag::Diagnostic;
use crate::lang::ast::{self, AggFn, Field, Span, Timechart};
use crate::lang::time::Clock;
use crate::query::chart::{self, Grid, MAX_BUCKETS};
use crate::query::compile::{COUNT_STAR, Compiler, aggregate, bucket_expr, column, df_err, group};

impl Def for Timechart {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(self.agg.iter().filter_map(|a| a.field.as_ref()));
        out.extend(&self.by);
        false
    }

    fn stream(&self) -> R<Flow> {
        Err(needs_whole(self))
    }

    fn chart(&self) -> bool {
        true
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let span = self.span;
        let bucket = bucket_expr(&p.cx, &self.span_text, span)?;
        let mut groups = vec![("time".to_owned(), bucket)];
        if let Some(b) = &self.by {
            groups.push(p.cx.output(b)?);
        }
        let counting = self
            .agg
            .as_ref()
            .is_none_or(|a| matches!(a.func, AggFn::Count | AggFn::Dc));
        let aggs = match &self.agg {
            Some(a) => vec![aggregate(&p.cx, a)?],
            None => vec![count(lit(COUNT_STAR)).alias("count")],
        };
        let keyed = groups.len() > 1;
        let text = self.to_string();
        p.with(|cx, df| group(cx, df, groups, aggs, &text))?;
        // Every bucket of the range, 0 (or null) where nothing happened.
        let start = p.range.start.or(p.extent.map(|e| e.0));
        let end = p.range.end.or(p.extent.map(|e| e.1 + 1));
        let (Some(start), Some(end)) = (start, end) else {
            return Ok(());
        };
        let step = Clock::duration(&self.span_text, span)?;
        let grid = Grid::covering(start, end, step);
        if grid.n > MAX_BUCKETS {
            return Err(Diagnostic::at(
                "E0209",
                format!(
                    "this timechart has {} buckets; at most {} are drawn",
                    grid.n, MAX_BUCKETS
                ),
                span,
            )
            .label("too short for the time range")
            .help("use a longer span, or a shorter time range (`since 30d`)"));
        }
        p.with(|cx, df| fill_buckets(cx, df, keyed, grid, counting, &text))
    }
}

/// The filled series of an aggregate `(time, [key], value)` over `grid`: the aggregate is
/// gathered into lists per key, spread over the grid, and unnested (see `chart.rs`).
fn fill_buckets(
    cx: &mut Compiler<'_>,
    df: DataFrame,
    keyed: bool,
    grid: Grid,
    counting: bool,
    stage: &str,
) -> R<DataFrame> {
    use datafusion::functions_aggregate::expr_fn::array_agg;
    let whole = ast::Span::default();
    let e = |e| df_err(e, whole);
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (time, value) = (&names[0], &names[names.len() - 1]);
    let keys: Vec<Expr> = if keyed {
        vec![column(&names[1])]
    } else {
        Vec::new()
    };
    let df = df
        .aggregate(
            keys.clone(),
            vec![
                array_agg(column(time)).alias("__times"),
                array_agg(column(value)).alias("__values"),
            ],
        )
        .map_err(e)?;
    let default = if counting {
        lit(0i64)
    } else {
        lit(ScalarValue::Null)
    };
    let mut select = keys.clone();
    select.push(
        chart::filled(
            false,
            col("__times"),
            col("__values"),
            grid,
            default.clone(),
        )
        .alias(time),
    );
    select.push(chart::filled(true, col("__times"), col("__values"), grid, default).alias(value));
    let df = df.select(select).map_err(e)?;
    let df = df
        .unnest_columns(&[time.as_str(), value.as_str()])
        .map_err(e)?;
    let ordered: Vec<Expr> = names.iter().map(|n| column(n)).collect();
    let df = df.select(ordered).map_err(e)?;
    let sorts: Vec<SortExpr> = names[..names.len() - 1]
        .iter()
        .map(|n| column(n).sort(true, false))
        .collect();
    let df = df.sort(sorts).map_err(e)?;
    cx.now_table(&df, stage);
    Ok(df)
}
