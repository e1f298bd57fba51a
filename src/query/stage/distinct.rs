//! `| distinct a, b`: each combination of values once, sorted.

use super::{Def, Flow, Plan, R, needs_whole};
use crate::lang::ast::{Distinct, Field, Span};
use crate::query::compile::group;

impl Def for Distinct {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.fields);
        false
    }

    fn stream(&self) -> R<Flow> {
        Err(needs_whole(self))
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let groups = self
            .fields
            .iter()
            .map(|f| p.cx.output(f))
            .collect::<R<Vec<_>>>()?;
        let text = self.to_string();
        p.with(|cx, df| group(cx, df, groups, vec![], &text))
    }
}
