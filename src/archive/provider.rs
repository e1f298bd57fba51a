//! The table provider queries read: DataFusion's own Parquet scan over the live files of
//! the archive's current Delta version.
//!
//! delta-rs's provider plans each scan through the Delta kernel and wraps the Parquet
//! scan in its own operators. For an archive that auditq writes (partitioned by `date`,
//! no deletion vectors, no column mapping) the Delta log only has to say which files are
//! live; the rest is a plain partitioned Parquet scan, which DataFusion plans itself:
//! row-group statistics, bloom filters and page indexes prune, and filters on `date` drop
//! whole files before anything is opened. Tables outside that shape keep delta-rs's
//! provider (see [`super::read::session`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_datasource::compute_all_files_statistics;
use deltalake::DeltaTable;

use crate::event::col;

/// One live data file.
#[derive(Debug, Clone)]
struct DataFile {
    location: Path,
    size: u64,
    date: String,
    rows: Option<usize>,
}

/// The archive's events as a DataFusion table: the live files of one Delta version.
#[derive(Debug)]
pub struct ArchiveTable {
    /// Data columns then `date`.
    schema: SchemaRef,
    /// The columns stored in the files (all but `date`).
    file_schema: SchemaRef,
    files: Vec<DataFile>,
}

impl ArchiveTable {
    /// The provider for a table auditq can scan directly, or `None` when the table uses a
    /// Delta feature (deletion vectors, column mapping, other partitioning) that only the
    /// Delta kernel reads correctly.
    pub fn try_new(table: &DeltaTable, table_dir: &std::path::Path) -> Option<Self> {
        let state = table.snapshot().ok()?;
        let metadata = state.metadata();
        if !metadata
            .partition_columns()
            .iter()
            .map(String::as_str)
            .eq([col::DATE])
        {
            return None;
        }
        let config = metadata.configuration();
        let plain = |key: &str| config.get(key).is_none_or(|v| v == "none" || v == "false");
        if !plain("delta.columnMapping.mode") || !plain("delta.enableDeletionVectors") {
            return None;
        }
        let snapshot = state.snapshot();
        let arrow = snapshot.arrow_schema();
        let date = arrow.field_with_name(col::DATE).ok()?;
        if date.data_type() != &DataType::Utf8 {
            return None;
        }
        let file_fields: Vec<Field> = arrow
            .fields()
            .iter()
            .filter(|f| f.name() != col::DATE)
            .map(|f| read_type(f.as_ref()))
            .collect();
        let mut all = file_fields.clone();
        all.push(Field::new(col::DATE, DataType::Utf8, false));
        let base = std::path::absolute(table_dir).ok()?;
        let base = Path::from_absolute_path(base).ok()?;
        let mut files = Vec::new();
        for f in state.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return None;
            }
            let rel = f.object_store_path();
            let date = f.partition_values_map().get(col::DATE).cloned().flatten()?;
            files.push(DataFile {
                location: base.parts().chain(rel.parts()).collect(),
                size: f.size().max(0) as u64,
                date,
                rows: f.num_records(),
            });
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Some(Self {
            schema: Arc::new(Schema::new(all)),
            file_schema: Arc::new(Schema::new(file_fields)),
            files,
        })
    }

    fn date_field(&self) -> Arc<Field> {
        Arc::new(Field::new(col::DATE, DataType::Utf8, false))
    }

    /// The days whose files a scan with these filters must read: the filters that
    /// reference `date` alone are evaluated on each day.
    fn days(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> datafusion::common::Result<BTreeMap<&str, Vec<&DataFile>>> {
        let mut days: BTreeMap<&str, Vec<&DataFile>> = BTreeMap::new();
        for f in &self.files {
            days.entry(f.date.as_str()).or_default().push(f);
        }
        let on_date: Vec<Expr> = filters.iter().filter(|e| only_date(e)).cloned().collect();
        let Some(predicate) = conjunction(on_date) else {
            return Ok(days);
        };
        let schema = Arc::new(Schema::new(vec![self.date_field().as_ref().clone()]));
        let df_schema = DFSchema::try_from(schema.clone())?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let names: Vec<&str> = days.keys().copied().collect();
        let column: ArrayRef = Arc::new(StringArray::from(names.clone()));
        let batch = RecordBatch::try_new(schema, vec![column])?;
        let keep = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let keep = keep.as_boolean();
        for (i, name) in names.iter().enumerate() {
            if !(keep.is_valid(i) && keep.value(i)) {
                days.remove(name);
            }
        }
        Ok(days)
    }
}

/// The type a column is read as: top-level strings as views, which the Parquet reader
/// fills without copying each value out of the decoded pages.
fn read_type(f: &Field) -> Field {
    match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => f.clone().with_data_type(DataType::Utf8View),
        _ => f.clone(),
    }
}

/// Whether an expression references the `date` column and no other, deterministically.
fn only_date(expr: &Expr) -> bool {
    let (mut date, mut other) = (false, false);
    let _ = expr.apply(|e| {
        if let Expr::Column(c) = e {
            if c.name == col::DATE {
                date = true;
            } else {
                other = true;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    date && !other && !expr.is_volatile()
}

/// Files dealt into `n` groups of about equal bytes, each group in path order.
fn groups(files: Vec<&DataFile>, n: usize) -> Vec<Vec<&DataFile>> {
    let n = n.clamp(1, files.len().max(1));
    let mut by_size = files;
    by_size.sort_by(|a, b| b.size.cmp(&a.size).then(a.location.cmp(&b.location)));
    let mut groups: Vec<(u64, Vec<&DataFile>)> = vec![(0, Vec::new()); n];
    for f in by_size {
        let (bytes, members) = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        *bytes += f.size;
        members.push(f);
    }
    groups
        .into_iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(_, mut m)| {
            m.sort_by(|a, b| a.location.cmp(&b.location));
            m
        })
        .collect()
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if only_date(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let days = self.days(state, filters)?;
        let files: Vec<&DataFile> = days.into_values().flatten().collect();
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let file_stats = |f: &DataFile| {
            let mut s = Statistics::new_unknown(&self.file_schema);
            s.total_byte_size = Precision::Inexact(f.size as usize);
            if let Some(rows) = f.rows {
                s.num_rows = Precision::Exact(rows);
            }
            Arc::new(s)
        };
        let file_groups: Vec<FileGroup> = groups(files, state.config().target_partitions())
            .into_iter()
            .map(|members| {
                FileGroup::new(
                    members
                        .into_iter()
                        .map(|f| {
                            PartitionedFile::new_from_meta(ObjectMeta {
                                location: f.location.clone(),
                                last_modified: chrono::DateTime::UNIX_EPOCH,
                                size: f.size,
                                e_tag: None,
                                version: None,
                            })
                            .with_partition_values(vec![ScalarValue::Utf8(Some(f.date.clone()))])
                            .with_statistics(file_stats(f))
                        })
                        .collect(),
                )
            })
            .collect();
        let (file_groups, total) =
            compute_all_files_statistics(file_groups, self.schema.clone(), true, false)?;
        let options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..Default::default()
        };
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![self.date_field()])
            .build();
        let source = ParquetSource::new(table_schema).with_table_parquet_options(options);
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(file_groups)
                .with_statistics(total)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
