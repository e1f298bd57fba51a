//! `| sort -count, actor`: rows in that order (ties keep the order they had).

use datafusion::logical_expr::SortExpr;

use super::{Def, Flow, Plan, R, needs_whole};
use crate::lang::ast::{Field, Sort, Span};
use crate::query::compile::{df_err, resort};

impl Def for Sort {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(self.keys.iter().map(|k| &k.field));
        true
    }

    fn stream(&self) -> R<Flow> {
        Err(needs_whole(self))
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let sorts = self
            .keys
            .iter()
            .map(|k| Ok(p.cx.output(&k.field)?.1.sort(!k.desc, false)))
            .collect::<R<Vec<SortExpr>>>()?;
        p.with(|_, df| resort(df, sorts).map_err(|e| df_err(e, self.span)))?;
        p.ordered = true;
        Ok(())
    }
}
