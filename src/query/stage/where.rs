//! `| where FILTER`: the events (or rows) the filter accepts; in `follow`, a filter on
//! each batch.

use super::{Def, Flow, Plan, R, Step, Stream, expr_fields};
use crate::lang::ast::{Field, Span, Where};
use crate::query::compile::df_err;

impl Def for Where {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        expr_fields(&self.filter, out);
        true
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::Pass)
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let f = p.cx.filter(&self.filter)?;
        p.with(|_, df| df.filter(f).map_err(|e| df_err(e, self.span)))
    }

    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let f = s.phys(s.cx.filter(&self.filter)?)?;
        s.steps.push(Step::Filter(f));
        Ok(())
    }
}
