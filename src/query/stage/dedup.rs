//! `| dedup f`: the first event (or row) of each value; `| dedup f within 1h` (in
//! `follow`): the first of each value per hour of event time.

use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{Expr, col};

use super::{Def, Flow, Plan, R, Step, Stream, refuse};
use crate::diag::Diagnostic;
use crate::event::col as c;
use crate::lang::ast::{Dedup, Field, Span};
use crate::lang::time::Clock;
use crate::query::compile::df_err;

impl Def for Dedup {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.fields);
        true
    }

    fn windowed(&self) -> bool {
        self.within.is_some()
    }

    fn batch(&self) -> R<()> {
        if self.within.is_none() {
            return Ok(());
        }
        Err(Diagnostic::at(
            "E0410",
            "`dedup … within` is for `auditq follow`",
            self.span,
        )
        .help("over stored events, `dedup f` keeps the first event of each value"))
    }

    fn stream(&self) -> R<Flow> {
        match self.within {
            Some(_) => Ok(Flow::Pass),
            None => Err(refuse(
                self,
                "`dedup` without `within` remembers every value for ever",
                "bound it: `| dedup actor within 1h`",
            )),
        }
    }

    // `dedup … within` was refused by the check.
    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let on = self
            .fields
            .iter()
            .map(|f| Ok(p.cx.output(f)?.1))
            .collect::<R<Vec<_>>>()?;
        let mut sorts: Vec<SortExpr> = on.iter().map(|o| o.clone().sort(true, false)).collect();
        if p.cx.table.is_none() {
            sorts.push(col(c::TIME).sort(true, false));
        }
        p.with(|_, df| {
            let select: Vec<Expr> = df
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            df.distinct_on(on, select, Some(sorts))
                .map_err(|e| df_err(e, self.span))
        })
    }

    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let Some(within) = &self.within else {
            return Err(self.stream().expect_err("refused without `within`"));
        };
        let keys = self
            .fields
            .iter()
            .map(|f| s.output(f))
            .collect::<R<Vec<_>>>()?;
        s.steps.push(Step::Dedup {
            keys,
            within: Clock::duration(within, self.span)?,
            slot: s.dedups,
        });
        s.dedups += 1;
        Ok(())
    }
}
