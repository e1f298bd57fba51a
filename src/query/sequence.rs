//! `| sequence [by K] within D [s1] [s2] … [until [u]]`: ordered steps per key, EQL's
//! semantics, with stages after it.
//!
//! Events are taken in time order, ties by event id. Per key, the [`Machine`] keeps at
//! most one pending sequence ending at each step but the last — the latest one:
//! - an event matching step 0 starts a pending sequence, replacing an older one;
//! - an event matching step `i > 0` extends the pending sequence of step `i − 1` to
//!   step `i` (replacing the one there), if that sequence began at most `D` before it;
//! - reaching the last step completes the sequence: one output row.
//!
//! Steps are tried from the last to the first, so one event is never two steps of one
//! sequence, but may extend one sequence and start another. An event matching `until`
//! drops the key's pending sequences and is no step. Events without a key take no part.
//!
//! The same machine runs under `query` ([`SequenceExec`], over the candidate events
//! sorted by time and id) and under `follow` (over events its reorder buffer releases
//! in the same order), so both find the same sequences, with the same ids.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{
    DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// What a sequence looks for, once its text is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Shape {
    pub steps: usize,
    /// The longest time from the first event to the last (µs).
    pub within: i64,
    /// The stage's canonical text: part of each sequence's id.
    pub text: String,
}

/// One event of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ev {
    pub time: i64,
    pub id: String,
    pub event: Option<String>,
}

/// The pending sequences of every key; serializable, for the follow checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Per key: the pending sequence ending at each step but the last.
    keys: HashMap<String, Vec<Option<Vec<Ev>>>>,
    /// Events taken since keys were last swept.
    taken: usize,
}

/// Keys are swept of sequences too old to complete after this many events.
const SWEEP_EVERY: usize = 1 << 16;

impl Machine {
    /// Take the next event (in time order, ties by id) of `key`: `matches[i]` whether it
    /// matches step `i`, `until` whether it matches the cancelling filter. Returns the
    /// sequence it completes, if any.
    pub fn push(
        &mut self,
        shape: &Shape,
        key: &str,
        ev: Ev,
        matches: &[bool],
        until: bool,
    ) -> Option<Vec<Ev>> {
        let n = shape.steps;
        self.taken += 1;
        if self.taken >= SWEEP_EVERY {
            self.sweep(shape, ev.time);
        }
        if until {
            self.keys.remove(key);
            return None;
        }
        if !matches.iter().any(|m| *m) {
            return None;
        }
        let pending = self
            .keys
            .entry(key.to_owned())
            .or_insert_with(|| vec![None; n - 1]);
        // A sequence that began more than the span ago can never complete.
        for p in pending.iter_mut() {
            if p.as_ref()
                .is_some_and(|s| ev.time - s[0].time > shape.within)
            {
                *p = None;
            }
        }
        let mut done = None;
        for i in (0..n).rev().filter(|&i| matches[i]) {
            if i == 0 {
                pending[0] = Some(vec![ev.clone()]);
            } else if let Some(mut s) = pending[i - 1].take() {
                s.push(ev.clone());
                if i == n - 1 {
                    done = Some(s);
                } else {
                    pending[i] = Some(s);
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            self.keys.remove(key);
        }
        done
    }

    /// Forget keys whose pending sequences all began more than the span before `now`.
    pub fn sweep(&mut self, shape: &Shape, now: i64) {
        self.taken = 0;
        self.keys.retain(|_, pending| {
            pending
                .iter()
                .flatten()
                .any(|s| now - s[0].time <= shape.within)
        });
    }

    /// Keys with a pending sequence.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A completed sequence's stable id: the stage's text and its events' ids, hashed. The
/// same in `query` and `follow`, and across runs.
pub fn sequence_id(shape: &Shape, events: &[Ev]) -> String {
    let mut text = shape.text.clone();
    for e in events {
        text.push('\u{1f}');
        text.push_str(&e.id);
    }
    format!("seq-{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// The key of each of `rows` rows as text (values joined by U+001F), or `None` when a
/// value is missing. Without keys, every row has the same (empty) key.
pub fn key_texts(keys: &[ArrayRef], rows: usize) -> Result<Vec<Option<String>>> {
    let texts = keys
        .iter()
        .map(|k| cast(k, &DataType::Utf8))
        .collect::<Result<Vec<_>, _>>()?;
    let texts: Vec<_> = texts.iter().map(|t| t.as_string::<i32>()).collect();
    Ok((0..rows)
        .map(|i| {
            let mut key = String::new();
            for (j, t) in texts.iter().enumerate() {
                if t.is_null(i) {
                    return None;
                }
                if j > 0 {
                    key.push('\u{1f}');
                }
                key.push_str(t.value(i));
            }
            Some(key)
        })
        .collect())
}

/// The output columns after the keys, for `steps` steps (the schema of both commands).
pub fn columns(steps: usize, time: &DataType) -> Vec<ArrowField> {
    let mut out = vec![
        ArrowField::new("sequence", DataType::Utf8, false),
        ArrowField::new("first", time.clone(), false),
        ArrowField::new("last", time.clone(), false),
    ];
    for i in 1..=steps {
        out.push(ArrowField::new(
            format!("step{i}_time"),
            time.clone(),
            false,
        ));
        out.push(ArrowField::new(
            format!("step{i}_id"),
            DataType::Utf8,
            false,
        ));
        out.push(ArrowField::new(
            format!("step{i}_event"),
            DataType::Utf8,
            true,
        ));
    }
    out
}

// ------------------------------------------------------------------ the logical node

/// The sequence stage in a logical plan. Its input's columns: the keys, `time`, `id`,
/// `action`, then one boolean per step and, with `until`, one more.
#[derive(Debug, Clone)]
pub struct SequenceNode {
    pub input: LogicalPlan,
    pub shape: Shape,
    pub keys: usize,
    pub until: bool,
    schema: DFSchemaRef,
}

impl SequenceNode {
    pub fn try_new(input: LogicalPlan, shape: Shape, keys: usize, until: bool) -> Result<Self> {
        let fields = input.schema().fields();
        let expected = keys + 3 + shape.steps + usize::from(until);
        if fields.len() != expected {
            return Err(DataFusionError::Internal(format!(
                "SequenceNode: {} input columns, {expected} expected",
                fields.len()
            )));
        }
        let time = fields[keys].data_type().clone();
        let mut out: Vec<ArrowField> = fields[..keys]
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(false))
            .collect();
        out.extend(columns(shape.steps, &time));
        let schema = Arc::new(DFSchema::try_from(Schema::new(out))?);
        Ok(SequenceNode {
            input,
            shape,
            keys,
            until,
            schema,
        })
    }

    fn same(&self) -> (&LogicalPlan, &Shape, usize, bool) {
        (&self.input, &self.shape, self.keys, self.until)
    }
}

impl PartialEq for SequenceNode {
    fn eq(&self, other: &Self) -> bool {
        self.same() == other.same()
    }
}

impl Eq for SequenceNode {}

impl Hash for SequenceNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.same().hash(state);
    }
}

impl PartialOrd for SequenceNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let (a, b) = (self.same(), other.same());
        match (a.1, a.2, a.3).partial_cmp(&(b.1, b.2, b.3)) {
            Some(std::cmp::Ordering::Equal) => a.0.partial_cmp(b.0),
            other => other,
        }
    }
}

impl UserDefinedLogicalNodeCore for SequenceNode {
    fn name(&self) -> &str {
        "Sequence"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Sequence: {}", self.shape.text)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("SequenceNode: no input".into()))?;
        SequenceNode::try_new(input, self.shape.clone(), self.keys, self.until)
    }
}

/// The session's query planner: DataFusion's, which also plans [`SequenceNode`]s.
#[derive(Debug, Default)]
pub struct Planner;

#[async_trait]
impl QueryPlanner for Planner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(Sequences)])
            .create_physical_plan(plan, session)
            .await
    }
}

struct Sequences;

#[async_trait]
impl ExtensionPlanner for Sequences {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<SequenceNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal("SequenceNode: one input".into()));
        };
        Ok(Some(Arc::new(SequenceExec::new(Arc::clone(input), node))))
    }
}

// ------------------------------------------------------------------ execution

/// Runs the [`Machine`] over its input, one partition sorted by time and id.
#[derive(Debug)]
pub struct SequenceExec {
    input: Arc<dyn ExecutionPlan>,
    shape: Shape,
    keys: usize,
    until: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SequenceExec {
    fn new(input: Arc<dyn ExecutionPlan>, node: &SequenceNode) -> SequenceExec {
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        SequenceExec::with(input, node.shape.clone(), node.keys, node.until, schema)
    }

    fn with(
        input: Arc<dyn ExecutionPlan>,
        shape: Shape,
        keys: usize,
        until: bool,
        schema: SchemaRef,
    ) -> SequenceExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        SequenceExec {
            input,
            shape,
            keys,
            until,
            schema,
            properties,
        }
    }
}

impl DisplayAs for SequenceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceExec: {}", self.shape.text)
    }
}

impl ExecutionPlan for SequenceExec {
    fn name(&self) -> &str {
        "SequenceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let schema = self.input.schema();
        let by = |i: usize| {
            PhysicalSortRequirement::new(
                Arc::new(datafusion::physical_expr::expressions::Column::new(
                    schema.field(i).name(),
                    i,
                )) as Arc<dyn PhysicalExpr>,
                Some(Default::default()),
            )
        };
        let order = LexRequirement::new([by(self.keys), by(self.keys + 1)]);
        vec![order.map(OrderingRequirements::new)]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::archive::one_child("SequenceExec", children)?;
        Ok(Arc::new(SequenceExec::with(
            input,
            self.shape.clone(),
            self.keys,
            self.until,
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (shape, keys, until) = (self.shape.clone(), self.keys, self.until);
        let schema = Arc::clone(&self.schema);
        let mut machine = Machine::default();
        let out = input
            .map(move |batch| {
                batch.and_then(|b| run(&shape, keys, until, &mut machine, &b, &schema))
            })
            .filter(|r| std::future::ready(r.as_ref().map_or(true, |b| b.num_rows() > 0)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            out,
        )))
    }
}

/// One batch of candidate events through the machine: the sequences it completes.
fn run(
    shape: &Shape,
    keys: usize,
    until: bool,
    machine: &mut Machine,
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let cols = batch.columns();
    let texts = key_texts(&cols[..keys], batch.num_rows())?;
    let times = cols[keys].as_primitive::<TimestampMicrosecondType>();
    let ids = cast(&cols[keys + 1], &DataType::Utf8)?;
    let ids = ids.as_string::<i32>();
    let events = cast(&cols[keys + 2], &DataType::Utf8)?;
    let events = events.as_string::<i32>();
    let flags: Vec<_> = cols[keys + 3..]
        .iter()
        .map(|c| c.as_boolean().clone())
        .collect();
    let mut rows = Vec::new();
    let mut done = Vec::new();
    let mut matches = vec![false; shape.steps];
    for (i, key) in texts.iter().enumerate() {
        let Some(key) = key else { continue };
        for (s, m) in matches.iter_mut().enumerate() {
            *m = flags[s].value(i);
        }
        let cancel = until && flags[shape.steps].value(i);
        let ev = Ev {
            time: times.value(i),
            id: ids.value(i).to_owned(),
            event: events.is_valid(i).then(|| events.value(i).to_owned()),
        };
        if let Some(s) = machine.push(shape, key, ev, &matches, cancel) {
            rows.push(i as u32);
            done.push(s);
        }
    }
    let rows = UInt32Array::from(rows);
    let mut out: Vec<ArrayRef> = cols[..keys]
        .iter()
        .map(|k| take(k, &rows, None))
        .collect::<Result<_, _>>()?;
    let tz = match schema.field(keys + 1).data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, tz) => tz.clone(),
        other => {
            return Err(DataFusionError::Internal(format!(
                "SequenceExec: time is {other}"
            )));
        }
    };
    let time_column = |values: &mut dyn Iterator<Item = i64>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone());
        b.extend(values.map(Some));
        Arc::new(b.finish())
    };
    let mut seq = StringBuilder::new();
    for s in &done {
        seq.append_value(sequence_id(shape, s));
    }
    out.push(Arc::new(seq.finish()));
    out.push(time_column(&mut done.iter().map(|s| s[0].time)));
    out.push(time_column(&mut done.iter().map(|s| s[s.len() - 1].time)));
    for step in 0..shape.steps {
        out.push(time_column(&mut done.iter().map(|s| s[step].time)));
        let mut id = StringBuilder::new();
        let mut event = StringBuilder::new();
        for s in &done {
            id.append_value(&s[step].id);
            event.append_option(s[step].event.as_deref());
        }
        out.push(Arc::new(id.finish()));
        out.push(Arc::new(event.finish()));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(steps: usize, within: i64) -> Shape {
        Shape {
            steps,
            within,
            text: "sequence within 10s [a] [b]".into(),
        }
    }

    fn ev(time: i64, id: &str) -> Ev {
        Ev {
            time,
            id: id.into(),
            event: None,
        }
    }

    /// Feed (time, id, key, steps matched, until) and collect the completed ids.
    fn feed(shape: &Shape, events: &[(i64, &str, &str, &[usize], bool)]) -> Vec<Vec<String>> {
        let mut m = Machine::default();
        let mut out = Vec::new();
        for (t, id, key, steps, until) in events {
            let matches: Vec<bool> = (0..shape.steps).map(|s| steps.contains(&s)).collect();
            if let Some(s) = m.push(shape, key, ev(*t, id), &matches, *until) {
                out.push(s.into_iter().map(|e| e.id).collect());
            }
        }
        out
    }

    #[test]
    fn steps_in_order_within_the_span_per_key() {
        let s = shape(2, 10);
        let got = feed(
            &s,
            &[
                (0, "a1", "k", &[0], false),
                (1, "a2", "k", &[0], false), // replaces a1: the latest start
                (5, "b1", "j", &[1], false), // other key: nothing pending
                (6, "b2", "k", &[1], false), // completes a2, b2
                (7, "b3", "k", &[1], false), // nothing pending any more
                (20, "a3", "k", &[0], false),
                (31, "b4", "k", &[1], false), // 11 after a3: too late
                (40, "a4", "k", &[0], false),
                (41, "x", "k", &[], true), // until: cancelled
                (42, "b5", "k", &[1], false),
                (50, "ab", "k", &[0, 1], false), // starts, cannot finish itself
                (51, "ab2", "k", &[0, 1], false), // finishes ab, starts again
            ],
        );
        assert_eq!(got, vec![vec!["a2", "b2"], vec!["ab", "ab2"]]);
    }

    #[test]
    fn three_steps_keep_the_latest_at_each_step() {
        let s = shape(3, 100);
        let got = feed(
            &s,
            &[
                (0, "a1", "k", &[0], false),
                (1, "b1", "k", &[1], false),
                (2, "a2", "k", &[0], false),
                (3, "b2", "k", &[1], false), // a2,b2 replaces a1,b1 at step 1
                (4, "c1", "k", &[2], false),
                (5, "c2", "k", &[2], false),
            ],
        );
        assert_eq!(got, vec![vec!["a2", "b2", "c1"]]);
    }

    #[test]
    fn sweeping_forgets_only_what_cannot_complete() {
        let s = shape(2, 10);
        let mut m = Machine::default();
        m.push(&s, "old", ev(0, "a"), &[true, false], false);
        m.push(&s, "new", ev(15, "b"), &[true, false], false);
        m.sweep(&s, 20);
        assert_eq!(m.len(), 1);
        let done = m.push(&s, "new", ev(25, "c"), &[false, true], false);
        assert!(done.is_some());
        assert!(m.is_empty());
    }
}
