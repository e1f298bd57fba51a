//! A filter on one text field is computed once per distinct value of a batch.
//!
//! `event ~ "*permission*"` becomes `action IN (…30 actions…)`; `ip in 10.0.0.0/8`,
//! `country in (…)`, a regex or a glob on `actor.name` each look at one text column.
//! DataFusion computes them row by row: for an `IN` list, it hashes every row's text.
//! The archive's text columns are dictionary-encoded, and the Parquet reader gives the
//! rows of one value the same 16-byte view, so a batch of 8,192 rows holds a few
//! hundred distinct views. `PerValue` computes the condition on those distinct values
//! and hands each row its value's answer.
//!
//! Only a condition that lowers or matches text (see [`costly`]) and is a function of
//! the one column's value is rewritten: no
//! other column, nothing volatile (`random()`), nothing that changes while the query
//! runs (a dynamic filter). When a batch's first rows are mostly distinct (message
//! texts, ids), the condition runs row by row as before.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringViewArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, config::ConfigOptions};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, LikeExpr};
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};
use datafusion::physical_expr::{PhysicalExpr, conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use super::count_by::ViewTable;

/// Batches smaller than this are computed row by row.
const SMALL_BATCH: usize = 256;

/// `IN` lists up to this long are computed row by row.
const SHORT_LIST: usize = 4;

/// Rows looked at before giving up on a batch whose values are mostly distinct.
const PROBE: usize = 1024;

#[derive(Debug)]
pub struct PerValue {
    /// The condition over the input's columns.
    inner: Arc<dyn PhysicalExpr>,
    /// The same condition over a batch of the one column.
    local: Arc<dyn PhysicalExpr>,
    /// The column's index in the input.
    column: usize,
    /// The batch of the one column.
    schema: SchemaRef,
}

impl PartialEq for PerValue {
    fn eq(&self, other: &Self) -> bool {
        self.inner.eq(&other.inner)
    }
}

impl Eq for PerValue {}

impl std::hash::Hash for PerValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl std::fmt::Display for PerValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "per_value({})", self.inner)
    }
}

impl PerValue {
    /// `inner` computed per distinct value, when it is a function of one text column
    /// of `input`.
    fn try_new(inner: &Arc<dyn PhysicalExpr>, input: &Schema) -> Result<Option<Self>> {
        let Some(column) = one_column(inner)? else {
            return Ok(None);
        };
        let field = input.field(column);
        if field.data_type() != &DataType::Utf8View || !costly(inner)? {
            return Ok(None);
        }
        let schema = Arc::new(Schema::new(vec![Field::new(
            field.name(),
            DataType::Utf8View,
            true,
        )]));
        Ok(Some(Self {
            inner: Arc::clone(inner),
            local: local(inner)?,
            column,
            schema,
        }))
    }

    /// For each row, the index of its value in `firsts` (the first row of each
    /// distinct value); `None` when the values are mostly distinct.
    fn distinct(keys: &StringViewArray) -> Option<(Vec<u32>, Vec<u32>)> {
        let mut table = ViewTable::default();
        table.start(keys.data_buffers());
        let (mut firsts, mut index, mut null) = (Vec::new(), Vec::with_capacity(keys.len()), None);
        for (row, &view) in keys.views().iter().enumerate() {
            if row == PROBE && firsts.len() * 2 > PROBE {
                return None;
            }
            let next = firsts.len() as u32;
            let at = if keys.is_null(row) {
                *null.get_or_insert(next)
            } else {
                match table.get(view) {
                    Some(at) => at,
                    None => {
                        table.insert(view, next);
                        next
                    }
                }
            };
            if at == next {
                firsts.push(row as u32);
            }
            index.push(at);
        }
        Some((firsts, index))
    }
}

/// The one column `expr` reads, when its answer depends on that column's value alone
/// (see [`fixed`]).
fn one_column(expr: &Arc<dyn PhysicalExpr>) -> Result<Option<usize>> {
    let columns = collect_columns(expr);
    let [column] = columns.iter().collect::<Vec<_>>()[..] else {
        return Ok(None);
    };
    Ok(fixed(expr)?.then(|| column.index()))
}

/// `expr`, a function of one column, over a batch of that column alone.
fn local(expr: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    let local = Arc::clone(expr).transform(|e| {
        Ok(match e.downcast_ref::<Column>() {
            Some(c) => Transformed::yes(Arc::new(Column::new(c.name(), 0)) as _),
            None => Transformed::no(e),
        })
    })?;
    Ok(local.data)
}

/// Whether `expr` does per row what costs more than finding the row's value: lowers
/// or matches text (`lower`, `LIKE`, a regex, a pattern set), or looks it up in a
/// long `IN` list (which hashes the text; `event ~ "*permission*" | count` on 10M
/// events: 0.184 → 0.174 s, `event ~ "user_*" | stats … by action` 0.35 → 0.30 s).
/// A plain comparison, a short `IN` list, `eq_fold` (compares without lowering) and
/// `ip_in_cidr` (on addresses, which are mostly distinct) cost less than the lookup:
/// measured on 10M events, `ip in 10.20.0.0/16` took 0.19 s row by row and 0.25 s per
/// value.
fn costly(expr: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    let mut costly = false;
    expr.apply(|e| {
        let function = e
            .downcast_ref::<ScalarFunctionExpr>()
            .is_some_and(|f| !matches!(f.name(), "eq_fold" | "ip_in_cidr"));
        let matching = e.downcast_ref::<BinaryExpr>().is_some_and(|b| {
            use datafusion::logical_expr::Operator::*;
            matches!(
                b.op(),
                RegexMatch
                    | RegexIMatch
                    | RegexNotMatch
                    | RegexNotIMatch
                    | LikeMatch
                    | ILikeMatch
                    | NotLikeMatch
                    | NotILikeMatch
            )
        });
        // A long list hashes every row's text (a glob on `event` is 10 to 40 actions).
        let long_list = e
            .downcast_ref::<InListExpr>()
            .is_some_and(|l| l.list().len() > SHORT_LIST);
        if function || matching || long_list || e.downcast_ref::<LikeExpr>().is_some() {
            costly = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(costly)
}

/// Whether `expr` answers the same for the same values: nothing volatile, nothing
/// that changes while the query runs.
fn fixed(expr: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    if datafusion::physical_expr_common::physical_expr::is_volatile(expr) {
        return Ok(false);
    }
    let mut fixed = true;
    expr.apply(|e| {
        if e.snapshot()?.is_some() {
            fixed = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(fixed)
}

impl PhysicalExpr for PerValue {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.inner.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.inner.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let keys = batch
            .column(self.column)
            .as_any()
            .downcast_ref::<StringViewArray>();
        let Some((keys, (firsts, index))) = keys
            .filter(|k| k.len() >= SMALL_BATCH)
            .and_then(|k| Some((k, Self::distinct(k)?)))
        else {
            return self.inner.evaluate(batch);
        };
        let values = take(keys, &UInt32Array::from(firsts), None)?;
        let rows = values.len();
        let values = RecordBatch::try_new(Arc::clone(&self.schema), vec![values])?;
        let answers = self.local.evaluate(&values)?.into_array(rows)?;
        Ok(ColumnarValue::Array(take(
            &answers,
            &UInt32Array::from(index),
            None,
        )?))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        // Rebuilt over the new condition only if it still reads the same column.
        let inner = &children[0];
        if one_column(inner)? != Some(self.column) {
            return Ok(Arc::clone(inner));
        }
        Ok(Arc::new(Self {
            inner: Arc::clone(inner),
            local: local(inner)?,
            column: self.column,
            schema: Arc::clone(&self.schema),
        }))
    }

    fn fmt_sql(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt_sql(f)
    }
}

/// Computes each filter's conditions on one text column per distinct value.
#[derive(Debug, Default)]
pub struct PerValueFilters;

impl PhysicalOptimizerRule for PerValueFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node: Arc<dyn ExecutionPlan>| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let input = filter.input().schema();
            let mut changed = false;
            let mut parts = vec![];
            for part in split_conjunction(filter.predicate()) {
                if part.downcast_ref::<PerValue>().is_none()
                    && let Some(per_value) = PerValue::try_new(part, &input)?
                {
                    changed = true;
                    parts.push(Arc::new(per_value) as Arc<dyn PhysicalExpr>);
                } else {
                    parts.push(Arc::clone(part));
                }
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            let rebuilt = FilterExecBuilder::new(conjunction(parts), Arc::clone(filter.input()))
                .apply_projection_by_ref(filter.projection().as_ref())?
                .with_default_selectivity(filter.default_selectivity())
                .with_batch_size(filter.batch_size())
                .with_fetch(filter.fetch())
                .build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "auditq_per_value"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::count_by::tests::{run, table};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_as_row_by_row() {
        let queries = [
            "SELECT k FROM t WHERE lower(k) IN ('c5', 'actor-000000000000000000000007') ORDER BY k",
            "SELECT count(*) FROM t WHERE k ILIKE 'ACTOR-%1'",
            "SELECT k FROM t WHERE k LIKE 'c1%' AND k NOT LIKE 'c10%' ORDER BY k",
            // A condition true for the null key, and one on views into other texts.
            "SELECT count(*) FROM t WHERE (lower(k) = 'c5') IS NOT TRUE",
            "SELECT count(*) FROM t WHERE lower(substr(k, 3)) = 'tor-000000000000000000000001'",
            "SELECT count(*) FROM t WHERE regexp_like(k, '[37]$')",
            // A long list, with a null among the keys.
            "SELECT count(*) FROM t WHERE k IN ('c5', 'c10', 'c15', 'c20', 'actor-000000000000000000000007')",
            "SELECT count(*) FROM t WHERE k NOT IN ('c5', 'c10', 'c15', 'c20', 'actor-000000000000000000000007')",
        ];
        // Few values per batch; then mostly distinct ones, computed row by row.
        for (rows, distinct) in [(50_000, 300), (50_000, 40_000)] {
            for sql in queries {
                let rule = Arc::new(PerValueFilters) as _;
                let (ours, plan) = run(Some(rule), table(rows, distinct), sql).await;
                let (theirs, _) = run(None, table(rows, distinct), sql).await;
                assert!(plan.contains("per_value("), "{sql}: {plan}");
                assert_eq!(ours, theirs, "{sql} over {rows} rows, {distinct} values");
            }
        }
        // Cheap conditions, and volatile ones, stay as they are.
        for sql in [
            "SELECT count(*) FROM t WHERE k IN ('c5', 'c10')",
            "SELECT count(*) FROM t WHERE lower(k) > CAST(random() AS VARCHAR)",
        ] {
            let (_, plan) = run(Some(Arc::new(PerValueFilters) as _), table(1000, 10), sql).await;
            assert!(!plan.contains("per_value("), "{sql}: {plan}");
        }
    }
}
