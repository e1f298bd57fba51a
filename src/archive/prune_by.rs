//! A scan's predicate keeps only what can skip data.
//!
//! DataFusion gives the Parquet scan a copy of the query's filters even when the
//! `FilterExec` above it applies them (filter pushdown off, as here): the scan uses it
//! to skip files, row groups and pages by their statistics. To do so it builds a
//! pruning predicate per file, twice (once against the file's statistics, once against
//! its row groups'), and that costs as much as the condition is long. For
//! `event ~ "*permission*"` (an `IN` list of 30 actions) over 365 files, building them
//! took an eighth of the query's CPU, and could never skip anything: every day's file
//! holds every action, every country, and a couple of thousand actors.
//!
//! What can skip data in the archive: `time` (files and rows are sorted by it), the
//! columns with bloom filters (`id`, `actor_id`, `ip`), the `date` of the partition, and
//! the dynamic filters DataFusion adds while the query runs (a `TopK`'s threshold). A
//! conjunct that reads none of them is dropped from the scan's predicate; the filter
//! above still applies it to every row.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};
use datafusion::physical_expr::{PhysicalExpr, conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::source::DataSourceExec;

use crate::event::col;

/// Columns whose statistics or bloom filters can skip files, row groups or pages.
const PRUNING: [&str; 5] = [col::TIME, col::ID, col::ACTOR_ID, col::IP, col::DATE];

#[derive(Debug, Default)]
pub struct PruneBy;

/// Whether `conjunct` can skip data (see the module's documentation).
fn can_skip(conjunct: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    let columns = collect_columns(conjunct);
    if columns.is_empty() || columns.iter().any(|c| PRUNING.contains(&c.name())) {
        return Ok(true);
    }
    let mut dynamic = false;
    conjunct.apply(|e| {
        if e.snapshot()?.is_some() {
            dynamic = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(dynamic)
}

/// `scan` with a predicate of only the conjuncts that can skip data, or `None` when it
/// has nothing to drop (or its predicate also filters rows).
fn narrowed(scan: &DataSourceExec) -> Result<Option<DataSourceExec>> {
    let Some((config, parquet)) = scan.downcast_to_file_source::<ParquetSource>() else {
        return Ok(None);
    };
    // Pushed down, the predicate is the filter itself: every conjunct stays.
    if parquet.table_parquet_options().global.pushdown_filters {
        return Ok(None);
    }
    let Some(predicate) = datafusion_datasource::file::FileSource::filter(parquet) else {
        return Ok(None);
    };
    let conjuncts = split_conjunction(&predicate);
    let mut kept = Vec::with_capacity(conjuncts.len());
    for c in &conjuncts {
        if can_skip(c)? {
            kept.push(Arc::clone(c));
        }
    }
    if kept.len() == conjuncts.len() {
        return Ok(None);
    }
    let mut config = config.clone();
    // An empty conjunction is `true`, which skips nothing and costs nothing.
    config.file_source = Arc::new(parquet.with_predicate(conjunction(kept)));
    Ok(Some(scan.clone().with_data_source(Arc::new(config))))
}

impl PhysicalOptimizerRule for PruneBy {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node: Arc<dyn ExecutionPlan>| {
            let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match narrowed(scan)? {
                Some(scan) => Transformed::yes(Arc::new(scan) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "auditq_prune_by"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    /// A Parquet file of 3 row groups: `time` rising, `action` and `ip` varied.
    fn write(path: &std::path::Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                col::TIME,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new(col::ACTION, DataType::Utf8, false),
            Field::new(col::IP, DataType::Utf8, true),
        ]));
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
                .unwrap();
        let n = 3000;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("action_{}", i % 7)),
            )),
            Arc::new(StringArray::from_iter((0..n).map(|i| {
                (i % 5 != 0).then(|| format!("10.0.{}.{}", i % 3, i % 250))
            }))),
        ];
        w.write(&RecordBatch::try_new(schema, columns).unwrap())
            .unwrap();
        w.close().unwrap();
    }

    /// The rows and the plan of `sql` over the file, with or without the rule.
    async fn run(path: &std::path::Path, sql: &str, rule: bool) -> (String, String) {
        let file = SessionContext::new()
            .read_parquet(path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let rule = rule.then(|| Arc::new(PruneBy) as _);
        crate::archive::count_by::tests::run(rule, file.into_view(), sql).await
    }

    /// The scan's predicate in `plan` (its line, up to what the scan says after it).
    fn predicate(plan: &str) -> &str {
        let Some(p) = plan.split("predicate=").nth(1) else {
            return "";
        };
        let p = p.lines().next().unwrap_or(p);
        [", pruning", ", dynamic_rg_pruning", ", schema="]
            .iter()
            .filter_map(|end| p.find(end))
            .min()
            .map_or(p, |end| &p[..end])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeps_only_what_can_skip_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write(&path);
        let list = "('action_1', 'action_2', 'action_3', 'action_4', 'action_5')";
        let cases = [
            // (query, what the scan's predicate keeps, what it drops)
            (
                format!(
                    "SELECT count(*) FROM t WHERE action IN {list} AND time >= TIMESTAMP '1970-01-01 00:00:00.0015'"
                ),
                vec!["time"],
                vec!["action"],
            ),
            (
                format!("SELECT count(*) FROM t WHERE action IN {list} AND ip = '10.0.1.7'"),
                vec!["ip"],
                vec!["action"],
            ),
            (
                format!(
                    "SELECT count(*) FROM t WHERE action IN {list} OR time < TIMESTAMP '1970-01-01 00:00:00.00001'"
                ),
                vec!["action", "time"],
                vec![],
            ),
            // The TopK's dynamic filter on `time` stays.
            (
                format!(
                    "SELECT time, action FROM t WHERE action IN {list} ORDER BY time DESC LIMIT 3"
                ),
                vec!["DynamicFilter"],
                vec!["action"],
            ),
        ];
        for (sql, kept, dropped) in cases {
            let (ours, plan) = run(&path, &sql, true).await;
            let (theirs, before) = run(&path, &sql, false).await;
            assert_eq!(ours, theirs, "{sql}");
            let p = predicate(&plan);
            for k in kept {
                assert!(p.contains(k), "{sql}: {k} not kept in {plan}");
            }
            for d in dropped {
                assert!(predicate(&before).contains(d), "{sql}: {before}");
                assert!(!p.contains(d), "{sql}: {d} not dropped in {plan}");
            }
        }
    }
}
