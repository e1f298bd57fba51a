//! `| top [N] f [by g]` and `| rare …`: the N most (least) frequent values of `f`, per
//! value of `g`.

use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{ExprFunctionExt, SortExpr};
use datafusion::prelude::{Expr, lit};

use super::{Def, Flow, Plan, R, needs_whole};
use crate::lang::ast::{Field, Span, Top};
use crate::query::compile::{COUNT_STAR, column, df_err, group, resort};

impl Def for Top {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.by);
        out.push(&self.field);
        false
    }

    fn stream(&self) -> R<Flow> {
        Err(needs_whole(self))
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let e = |e| df_err(e, self.span);
        let (rare, n, field, by) = (self.rare, self.n, &self.field, &self.by);
        let mut groups = by.iter().map(|f| p.cx.output(f)).collect::<R<Vec<_>>>()?;
        let (name, value) = p.cx.output(field)?;
        // Events without the field are not a value of it.
        p.with(|_, df| df.filter(value.clone().is_not_null()).map_err(e))?;
        groups.push((name, value));
        let count_expr = count(lit(COUNT_STAR)).alias("count");
        let text = self.to_string();
        p.with(|cx, df| group(cx, df, groups.clone(), vec![count_expr], &text))?;
        let order = vec![
            column("count").sort(rare, false),
            column(&field.name).sort(true, false),
        ];
        if by.is_empty() {
            return p.with(|_, df| {
                resort(df, order)
                    .map_err(e)?
                    .limit(0, Some(n as usize))
                    .map_err(e)
            });
        }
        let partition: Vec<Expr> = by.iter().map(|f| column(&f.name)).collect();
        let rank = datafusion::functions_window::expr_fn::row_number()
            .partition_by(partition.clone())
            .order_by(order)
            .build()
            .map_err(e)?
            .alias("__rank");
        let mut all: Vec<Expr> = groups.iter().map(|(n, _)| column(n)).collect();
        all.push(column("count"));
        let mut with_rank = all.clone();
        with_rank.push(rank);
        let mut sorts: Vec<SortExpr> = partition.into_iter().map(|p| p.sort(true, false)).collect();
        sorts.push(column("count").sort(rare, false));
        sorts.push(column(&field.name).sort(true, false));
        p.with(|_, df| {
            let df = df
                .select(with_rank)
                .map_err(e)?
                .filter(column("__rank").lt_eq(lit(n as i64)))
                .map_err(e)?
                .select(all)
                .map_err(e)?;
            resort(df, sorts).map_err(e)
        })
    }
}
