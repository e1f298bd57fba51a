//! One module per stage. Each implements [`Def`] once: what it checks before anything is
//! compiled, the fields of events it reads, whether `query` and `follow` can run it, its
//! DataFusion plan (for `query`, `explain` and `detect`; `explain`'s SQL is that plan's)
//! and its streaming form (for `follow`, or the refusal that says why not).
//! `plan.rs` (a query's DataFrame), `check.rs` and `follow`'s
//! engine are loops over [`of`]; the parser reads a stage's text into its node in
//! `lang::ast`.
//!
//! A new stage: its node in `lang/ast.rs` (the `stages!` list), its production and
//! dispatch in `lang/parse.rs`, `grammar/auditq.ebnf`, a module here with a line in
//! [`of`], its tests and the README.

mod bucket;
mod dedup;
mod distinct;
mod fields;
mod first_seen;
mod head;
pub mod lookup;
mod rename;
mod sequence;
mod sort;
pub mod stats;
mod timechart;
mod top;
mod r#where;

use std::fmt::Display;
use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{Expr, SessionContext};

use super::compile::Compiler;
use super::sequence::Shape;
use crate::diag::Diagnostic;
use crate::event;
use crate::lang::ast::{self, Field, Span, Stage};
use crate::lang::time::Range;

pub type R<T> = Result<T, Diagnostic>;

/// A physical expression, evaluated on each batch of a stream.
pub type Phys = Arc<dyn PhysicalExpr>;

/// What a stream does after a stage (see [`Def::stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Events go on through it (a filter, `dedup … within`, a lookup).
    Pass,
    /// Its records are named columns: only a stage [`Def::after_columns`] allows may follow.
    Columns,
    /// Its records are the output (a window's alerts, sequences).
    End,
}

/// A stage, as `query`, `explain`, `detect` and `follow` use it.
pub trait Def: Display {
    fn span(&self) -> Span;

    /// A stage that reads events whole (their time, id and fields), which only `where`
    /// may come before: its name for E0413.
    fn reads_events(&self) -> Option<&'static str> {
        None
    }

    /// What is wrong with it whatever the command (E0208 …), before anything is compiled.
    fn check(&self) -> R<()> {
        Ok(())
    }

    /// Push the fields of events it reads, in the order written; `false` when what
    /// comes after reads its output (an aggregate's columns), not events.
    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool;

    /// It windows on event time: the query needs a stream.
    fn windowed(&self) -> bool {
        false
    }

    /// Whether stored events can go through it.
    fn batch(&self) -> R<()> {
        Ok(())
    }

    /// Whether a stream can go through it, and what the stream is after it.
    fn stream(&self) -> R<Flow>;

    /// It may follow a stage whose records are named columns ([`Flow::Columns`]).
    fn after_columns(&self) -> bool {
        false
    }

    /// Checks of a batch plan made before any stage is planned (E0407).
    fn precheck(&self) -> R<()> {
        Ok(())
    }

    /// It learns from every earlier event: the time range applies to what it reports,
    /// not to what it reads.
    fn learns(&self) -> bool {
        false
    }

    /// A Ballista cluster can run its plan (auditq's own operators cannot be shipped).
    fn on_cluster(&self) -> bool {
        true
    }

    /// Its rows are a chart's series (`query` draws them).
    fn chart(&self) -> bool {
        false
    }

    /// Add it to a batch plan.
    fn plan(&self, p: &mut Plan<'_>) -> R<()>;

    /// Add it to a stream (refused by `check.rs` first unless it runs there).
    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let _ = s;
        Err(Diagnostic::at(
            "E0411",
            format!("`{self}` cannot run in `auditq follow`"),
            self.span(),
        ))
    }
}

/// The fields a filter compares, in the order written.
pub fn expr_fields<'a>(e: &'a ast::Expr, out: &mut Vec<&'a Field>) {
    match e {
        ast::Expr::Or(items, _) | ast::Expr::And(items, _) => {
            for i in items {
                expr_fields(i, out);
            }
        }
        ast::Expr::Not(inner, _) => expr_fields(inner, out),
        ast::Expr::Cmp { field, .. } | ast::Expr::In { field, .. } | ast::Expr::Has(field, _) => {
            out.push(field)
        }
        ast::Expr::Text(..) => {}
    }
}

/// The module of `stage`.
pub fn of(stage: &Stage) -> &dyn Def {
    match stage {
        Stage::Where(s) => s,
        Stage::Fields(s) => s,
        Stage::Sort(s) => s,
        Stage::Head(s) => s,
        Stage::Stats(s) => s,
        Stage::Top(s) => s,
        Stage::Distinct(s) => s,
        Stage::Dedup(s) => s,
        Stage::Timechart(s) => s,
        Stage::Bucket(s) => s,
        Stage::Sequence(s) => s,
        Stage::Lookup(s) => s,
        Stage::FirstSeen(s) => s,
        Stage::Rename(s) => s,
    }
}

/// A batch plan as stages are added to it.
pub struct Plan<'c> {
    pub cx: Compiler<'c>,
    /// The plan so far (taken while a stage changes it: see [`Plan::with`]).
    pub df: Option<DataFrame>,
    /// The event columns shown at the end, while no stage has made a table.
    pub view: Vec<Field>,
    /// Events come in time order unless a `sort` says otherwise (so `head` means "first").
    pub ordered: bool,
    /// The query's time range.
    pub range: Range,
    /// The archive's first and last event time (µs), when known.
    pub extent: Option<(i64, i64)>,
}

impl<'c> Plan<'c> {
    /// Change the plan with `f` (given the compiler, which the plan's columns inform).
    pub fn with(&mut self, f: impl FnOnce(&mut Compiler<'c>, DataFrame) -> R<DataFrame>) -> R<()> {
        let df = self.df.take().expect("a plan between stages");
        self.df = Some(f(&mut self.cx, df)?);
        Ok(())
    }
}

/// E0411: `follow` cannot run `stage`, `why`, and what to write instead.
pub fn refuse(stage: &dyn Def, why: &str, help: &str) -> Diagnostic {
    Diagnostic::at("E0411", why.to_owned(), stage.span()).help(help.to_owned())
}

/// E0411 for a stage that needs every row before it can answer.
fn needs_whole(stage: &dyn Def) -> Diagnostic {
    refuse(
        stage,
        &format!("`{stage}` needs the whole input, which `follow` never has"),
        "`follow` emits events as they arrive; to aggregate, add a window: `| count by actor over 5m > 10`",
    )
}

/// One step a stream's events go through, in order.
pub enum Step {
    Filter(Phys),
    Dedup {
        keys: Vec<Phys>,
        within: i64,
        /// Index into the engine's dedup state.
        slot: usize,
    },
    /// `lookup`: the file's columns added to each event.
    Lookup(Box<lookup::Index>),
    /// `first_seen`: the key's and values' expressions, the learning span.
    FirstSeen {
        parts: Vec<Phys>,
        after: Option<i64>,
        /// Index into the engine's first-seen state.
        slot: usize,
    },
}

/// What a stream's records are.
pub enum Out {
    /// The event's own JSON.
    Events,
    /// Named columns, as `query --format ndjson` prints them.
    Fields(Vec<(String, Phys)>),
    Window {
        spec: stats::WindowSpec,
        keys: Vec<Phys>,
        vals: Vec<Option<Phys>>,
    },
    /// `| sequence …`: the keys and their names, a flag per step, the cancelling flag.
    Sequence {
        keys: Vec<Phys>,
        names: Vec<String>,
        steps: Vec<Phys>,
        until: Option<Phys>,
        shape: Shape,
    },
}

/// A stream as stages are added to it: expressions made physical against the events'
/// columns (and those lookups add).
pub struct Stream<'c> {
    pub cx: Compiler<'c>,
    ctx: SessionContext,
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    pub steps: Vec<Step>,
    pub out: Out,
    /// The canonical query text (part of each alert's id).
    pub query: String,
    /// How long windows wait for late events (µs).
    pub lateness: i64,
    pub dedups: usize,
    pub seen: usize,
}

fn df_err(e: datafusion::error::DataFusionError) -> Diagnostic {
    Diagnostic::error("E0900", format!("cannot plan this: {e}"), 0, 0)
}

impl<'c> Stream<'c> {
    pub fn new(cx: Compiler<'c>, query: String, lateness: i64) -> Stream<'c> {
        Stream {
            cx,
            ctx: SessionContext::new(),
            schema: event::schema(),
            steps: Vec::new(),
            out: Out::Events,
            query,
            lateness,
            dedups: 0,
            seen: 0,
        }
    }

    /// Coerced and simplified as the optimizer would (the physical planner expects
    /// `coalesce` and friends already rewritten), then physical.
    pub fn phys(&self, e: Expr) -> R<Phys> {
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone()).map_err(df_err)?;
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build(),
        );
        let e = simplifier.coerce(e, &df_schema).map_err(df_err)?;
        let e = simplifier.simplify(e).map_err(df_err)?;
        let e = super::fold::rewrite(e).map_err(df_err)?.data;
        self.ctx.create_physical_expr(e, &df_schema).map_err(df_err)
    }

    /// A field's column, physical.
    pub fn output(&self, f: &Field) -> R<Phys> {
        let e = self.cx.output(f)?.1;
        self.phys(e)
    }
}
