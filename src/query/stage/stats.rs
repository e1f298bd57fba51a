//! `| stats count, dc(ip) by actor` (or `| count by actor`): an aggregate per group;
//! with a window on event time (`over 5m [every 1m] [> 10]`), `follow`'s alerts.

use super::{Def, Flow, Out, Plan, R, Stream, refuse};
use crate::diag::Diagnostic;
use crate::lang::ast::{AggFn, CmpOp, Field, Span, Stats, Window};
use crate::lang::time::Clock;
use crate::query::compile::{aggregate, group, named_once};

/// What a window computes.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    /// The canonical query text (part of each alert's id).
    pub query: String,
    pub over: i64,
    pub every: Option<i64>,
    pub lateness: i64,
    /// Compared with the first aggregate (a count or a distinct count).
    pub threshold: Option<(CmpOp, f64)>,
    /// Key column names.
    pub keys: Vec<String>,
    /// Aggregates and their column names; `vals[i]` of a row feeds `aggs[i]`.
    pub aggs: Vec<(AggFn, bool, String)>,
}

/// A window's length and step in µs (E0203/E0210 when one is too long).
pub fn lengths(w: &Window) -> R<(i64, Option<i64>)> {
    let over = Clock::duration(&w.over, w.span)?;
    let every = w
        .every
        .as_ref()
        .map(|e| Clock::duration(e, w.span))
        .transpose()?;
    Ok((over, every))
}

impl Def for Stats {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(&self.by);
        out.extend(self.aggs.iter().filter_map(|a| a.field.as_ref()));
        false
    }

    fn windowed(&self) -> bool {
        self.window.is_some()
    }

    fn batch(&self) -> R<()> {
        let Some(w) = &self.window else {
            return Ok(());
        };
        Err(Diagnostic::at(
            "E0410",
            "a window (`over …`) is for `auditq follow`",
            w.span,
        )
        .help("over stored events, bucket by time instead: `| timechart 5m count by actor`"))
    }

    fn stream(&self) -> R<Flow> {
        let Some(w) = &self.window else {
            return Err(refuse(
                self,
                "an aggregate without a window needs the whole input, which `follow` never has",
                &format!(
                    "add a window: `| {0} over 5m > 10` (an alert per key) or `| {0} over 5m every 5m` (a row per key and window)",
                    self.to_string().trim_start_matches("stats ")
                ),
            ));
        };
        let (over, every) = lengths(w)?;
        let at = |code, message: &str| Diagnostic::at(code, message.to_owned(), w.span);
        if over <= 0 || every.is_some_and(|e| e <= 0) {
            return Err(at("E0208", "a window must be longer than zero"));
        }
        if w.threshold.is_some() && !matches!(self.aggs[0].func, AggFn::Count | AggFn::Dc) {
            return Err(at(
                "E0412",
                "a threshold compares a count: the first aggregate must be `count` or `dc(…)`",
            ));
        }
        if every.is_none() && w.threshold.is_none() {
            return Err(
                at("E0412", "a sliding window needs a threshold to alert on").help(format!(
                    "alert: `over {} > 10`; one row per key and window: `over {} every {}`",
                    w.over, w.over, w.over
                )),
            );
        }
        Ok(Flow::End)
    }

    fn precheck(&self) -> R<()> {
        named_once(&self.by, &self.aggs)
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let groups = self
            .by
            .iter()
            .map(|f| p.cx.output(f))
            .collect::<R<Vec<_>>>()?;
        let aggs = self
            .aggs
            .iter()
            .map(|a| aggregate(&p.cx, a))
            .collect::<R<Vec<_>>>()?;
        let text = self.to_string();
        p.with(|cx, df| group(cx, df, groups, aggs, &text))
    }

    /// The window and the values it counts.
    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let Some(w) = &self.window else {
            return Err(self.stream().expect_err("refused without a window"));
        };
        // Lengths and threshold as the check accepted them.
        let (over, every) = lengths(w)?;
        let threshold = w.threshold.as_ref().map(|(op, n)| (*op, n.value));
        let keys = self
            .by
            .iter()
            .map(|f| s.cx.output(f))
            .collect::<R<Vec<_>>>()?;
        let vals = self
            .aggs
            .iter()
            .map(|a| a.field.as_ref().map(|f| s.output(f)).transpose())
            .collect::<R<Vec<_>>>()?;
        let spec = WindowSpec {
            query: s.query.clone(),
            over,
            every,
            lateness: s.lateness,
            threshold,
            keys: keys.iter().map(|(n, _)| n.clone()).collect(),
            aggs: self
                .aggs
                .iter()
                .map(|a| (a.func, a.field.is_some(), a.column()))
                .collect(),
        };
        let keys = keys
            .into_iter()
            .map(|(_, e)| s.phys(e))
            .collect::<R<Vec<_>>>()?;
        s.out = Out::Window { spec, keys, vals };
        Ok(())
    }
}
