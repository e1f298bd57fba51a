//! `| head N` (`limit N`): the first N rows; of events, the first N in time order
//! unless a `sort` came before.

use super::{Def, Flow, Plan, R, needs_whole};
use crate::lang::ast::{Field, Head, Span};
use crate::query::compile::{df_err, resort, time_order};

impl Def for Head {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, _: &mut Vec<&'a Field>) -> bool {
        true
    }

    fn stream(&self) -> R<Flow> {
        Err(needs_whole(self))
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let e = |e| df_err(e, self.span);
        if p.cx.table.is_none() && !p.ordered {
            p.with(|_, df| resort(df, time_order()).map_err(e))?;
            p.ordered = true;
        }
        let n = self.n as usize;
        p.with(|_, df| df.limit(0, Some(n)).map_err(e))
    }
}
