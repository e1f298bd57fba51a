//! "The latest N events that match": read the newest files first.
//!
//! DataFusion's own sort pushdown reverses the scan under a `TopK` (`sort -time | head
//! N`) only when the sort sits directly on the scan. A query with a filter puts a
//! `FilterExec` between them, so the scan reads oldest first and the `TopK` replaces its
//! rows until the very end: every file of the range is read. This rule looks through
//! filters: the scan is asked for the sort's order (the files and row groups in reverse),
//! the filters are rebuilt over it, and the `TopK` stays (its rows are still sorted by it).
//! The `TopK`'s dynamic filter (`time > the Nth newest so far`) then skips, by their time
//! statistics, the older files once N rows are found.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::SortOrderPushdownResult;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};
use datafusion_datasource::source::DataSourceExec;

#[derive(Debug, Default)]
pub struct NewestFirst;

/// `plan` (filters over a scan) with the scan reading in `order` as far as it can, or
/// `None` when it is not filters over a scan that can.
fn read_in_order(
    plan: &Arc<dyn ExecutionPlan>,
    order: &[PhysicalSortExpr],
    fetch: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let Some(input) = read_in_order(filter.input(), order, fetch)? else {
            return Ok(None);
        };
        // A filter gathers its rows into batches of 8192 before passing them on: the
        // TopK would learn its threshold only after 8192 matches (a dozen files for an
        // actor with 2% of the events), too late to skip anything. Batches of the
        // fetch let the first N matches set it.
        let filter = filter.with_batch_size(fetch.clamp(1, filter.batch_size()))?;
        return Ok(Some(replace_children_if_necessary(
            Arc::new(filter),
            vec![input],
        )?));
    }
    if plan.downcast_ref::<DataSourceExec>().is_none() {
        return Ok(None);
    }
    Ok(match plan.try_pushdown_sort(order)? {
        SortOrderPushdownResult::Exact { inner } | SortOrderPushdownResult::Inexact { inner } => {
            Some(inner)
        }
        SortOrderPushdownResult::Unsupported => None,
    })
}

impl PhysicalOptimizerRule for NewestFirst {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.enable_sort_pushdown {
            return Ok(plan);
        }
        plan.transform_down(|node: Arc<dyn ExecutionPlan>| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            // Only a TopK over filters: a sort directly over the scan is DataFusion's.
            let Some(fetch) = sort.fetch() else {
                return Ok(Transformed::no(node));
            };
            if sort.input().downcast_ref::<FilterExec>().is_none() {
                return Ok(Transformed::no(node));
            }
            match read_in_order(sort.input(), sort.expr(), fetch)? {
                Some(input) => Ok(Transformed::yes(replace_children_if_necessary(
                    node,
                    vec![input],
                )?)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "auditq_newest_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
