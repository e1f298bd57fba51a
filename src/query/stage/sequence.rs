//! `| sequence [by k] within D [a] [b] … [until [c]]`: per key, an event of each step in
//! order, the first and the last within `D` (EQL's sequences). The operator is
//! `query/sequence.rs`'s (batch) and `follow/sequence.rs`'s (stream).

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{Expr, col};

use super::{Def, Flow, Out, Plan, R, Stream, expr_fields};
use crate::diag::Diagnostic;
use crate::event::col as c;
use crate::lang::ast::{Field, SeqStep, Sequence, Span};
use crate::lang::time::Clock;
use crate::query::compile::{Compiler, balanced, df_err, named_once};
use crate::query::sequence::{SequenceNode, Shape};

impl Def for Sequence {
    fn span(&self) -> Span {
        self.span
    }

    fn reads_events(&self) -> Option<&'static str> {
        Some("a sequence")
    }

    fn check(&self) -> R<()> {
        if Clock::duration(&self.within, self.span)? <= 0 {
            return Err(Diagnostic::at(
                "E0208",
                "a sequence's span must be longer than zero",
                self.span,
            ));
        }
        Ok(())
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.by);
        for step in self.steps.iter().chain(&self.until) {
            expr_fields(&step.filter, out);
        }
        false
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::End)
    }

    fn on_cluster(&self) -> bool {
        false
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let text = self.to_string();
        p.with(|cx, df| plan(cx, df, self, &text))
    }

    /// Its keys, step flags and shape.
    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let (names, keys): (Vec<String>, Vec<Expr>) = self
            .by
            .iter()
            .map(|f| s.cx.output(f))
            .collect::<R<Vec<_>>>()?
            .into_iter()
            .unzip();
        let flag = |s: &Stream<'_>, step: &SeqStep| s.phys(s.cx.filter(&step.filter)?.is_true());
        let keys = keys.into_iter().map(|e| s.phys(e)).collect::<R<Vec<_>>>()?;
        let steps = self
            .steps
            .iter()
            .map(|step| flag(s, step))
            .collect::<R<Vec<_>>>()?;
        let until = self.until.as_ref().map(|u| flag(s, u)).transpose()?;
        s.out = Out::Sequence {
            keys,
            names,
            steps,
            until,
            shape: Shape {
                steps: self.steps.len(),
                within: Clock::duration(&self.within, self.span)?,
                text: self.to_string(),
            },
        };
        Ok(())
    }
}

/// The sequences of `df`'s events (see `sequence.rs`): its candidate events — those
/// matching a step or `until`, with every key — as the keys, `time`, `id`, `action`
/// and a flag per step, through a [`SequenceNode`].
fn plan(cx: &mut Compiler<'_>, df: DataFrame, q: &Sequence, text: &str) -> R<DataFrame> {
    let span = q.span;
    use datafusion::logical_expr::{Extension, LogicalPlan};
    let e = |e| df_err(e, span);
    named_once(&q.by, &[])?;
    let keys = q.by.iter().map(|f| cx.output(f)).collect::<R<Vec<_>>>()?;
    let flag = |s: &SeqStep| cx.filter(&s.filter).map(Expr::is_true);
    let steps = q.steps.iter().map(flag).collect::<R<Vec<_>>>()?;
    let until = q.until.as_ref().map(flag).transpose()?;
    let mut candidates = balanced(steps.iter().chain(&until).cloned().collect(), Expr::or);
    for (_, k) in &keys {
        candidates = candidates.and(k.clone().is_not_null());
    }
    let mut select: Vec<Expr> = keys.iter().map(|(n, k)| k.clone().alias(n)).collect();
    // The node reads its columns by position; named apart from the keys, which may be
    // `id`, `time` or `action` themselves (`sequence by id` was an "ambiguous" error).
    select.extend([
        col(c::TIME).alias("__seq_time"),
        col(c::ID).alias("__seq_id"),
        col(c::ACTION).alias("__seq_action"),
    ]);
    for (i, s) in steps.into_iter().enumerate() {
        select.push(s.alias(format!("__step{i}")));
    }
    if let Some(u) = &until {
        select.push(u.clone().alias("__until"));
    }
    let shape = Shape {
        steps: q.steps.len(),
        within: Clock::duration(&q.within, span)?,
        text: text.to_owned(),
    };
    let (state, plan) = df
        .filter(candidates)
        .map_err(e)?
        .select(select)
        .map_err(e)?
        .into_parts();
    let node = SequenceNode::try_new(plan, shape, keys.len(), until.is_some()).map_err(e)?;
    let plan = LogicalPlan::Extension(Extension {
        node: std::sync::Arc::new(node),
    });
    let df = DataFrame::new(state, plan);
    cx.now_table(&df, text);
    Ok(df)
}
