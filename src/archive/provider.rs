//! The table provider queries read: DataFusion's own Parquet scan over the live files of
//! the archive's current Delta version.
//!
//! delta-rs's provider plans each scan through the Delta kernel and wraps the Parquet
//! scan in its own operators. For an archive that auditq writes (partitioned by `date`,
//! no deletion vectors, no column mapping) the Delta log only has to say which files are
//! live; the rest is a plain partitioned Parquet scan, which DataFusion plans itself:
//! row-group statistics, bloom filters and page indexes prune, and filters on `date` drop
//! whole files before anything is opened. Tables outside that shape keep delta-rs's
//! provider (see [`super::session::session`]).

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
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_datasource::compute_all_files_statistics;
use deltalake::DeltaTable;

use super::summary::FileAids;
use crate::event::col;

/// One live data file.
#[derive(Debug, Clone)]
struct DataFile {
    location: Path,
    /// Its path relative to the table, as the log names it.
    rel: String,
    size: u64,
    date: String,
    rows: Option<usize>,
    /// Where its `id` bloom filters lie (offset, length), when known.
    id_blooms: Option<Vec<(u64, u64)>>,
    /// Its first and last `time` (µs), when known.
    time: Option<(i64, i64)>,
}

/// The archive's events as a DataFusion table: the live files of one Delta version.
#[derive(Debug)]
pub struct ArchiveTable {
    /// Data columns then `date`.
    schema: SchemaRef,
    /// The columns stored in the files (all but `date`).
    file_schema: SchemaRef,
    files: Vec<DataFile>,
    /// The archive, whose recorded checksums each file read is checked against.
    archive: super::Archive,
    /// Where DataFusion finds the files: the local disk, or the archive's bucket.
    store_url: ObjectStoreUrl,
    /// The Delta version whose live files these are.
    version: i64,
    /// Whether the files' row counts in the log are claimed as exact.
    trust_stats: bool,
    /// Whether `file_schema` has the strings in lists and structs as views too, and is
    /// given to the reader as each file's schema (the table is auditq's own, see
    /// [`nested_views`]).
    nested_views: bool,
}

impl ArchiveTable {
    /// The provider for a table auditq can scan directly, or `None` when the table uses a
    /// Delta feature (deletion vectors, column mapping, other partitioning) that only the
    /// Delta kernel reads correctly. `aids` (from the archive's summary cache) let point
    /// lookups skip files without opening them and time-ordered reads merge files.
    pub fn try_new(
        table: &DeltaTable,
        archive: &super::Archive,
        aids: Option<&FileAids>,
        trust_stats: bool,
    ) -> Option<Self> {
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
        // A file written before schema version 2 lacks `leaf` (its statistics name every
        // column it has): then each file is read with its own shape.
        let leafless = || {
            arrow.field_with_name(col::LEAF).is_ok()
                && (state.log_data().iter())
                    .any(|f| f.stats().is_some_and(|s| !s.contains("\"leaf\"")))
        };
        let nested = nested_views(&arrow) && !leafless();
        let file_fields: Vec<Field> = arrow
            .fields()
            .iter()
            .filter(|f| f.name() != col::DATE)
            .map(|f| read_field(f.as_ref(), nested))
            .collect();
        let mut all = file_fields.clone();
        all.push(Field::new(col::DATE, DataType::Utf8, false));
        let (base, store_url) = match archive.remote() {
            None => {
                let local = std::path::absolute(archive.events_dir()).ok()?;
                (
                    Path::from_absolute_path(&local).ok()?,
                    ObjectStoreUrl::local_filesystem(),
                )
            }
            Some(r) => (
                r.path("events"),
                ObjectStoreUrl::parse(r.bucket_url().as_str().trim_end_matches('/')).ok()?,
            ),
        };
        let mut files = Vec::new();
        for f in state.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return None;
            }
            let rel = f.object_store_path();
            let date = f.partition_values_map().get(col::DATE).cloned().flatten()?;
            let rel_text = rel.to_string();
            let aid = aids.and_then(|a| a.get(&rel_text));
            files.push(DataFile {
                location: base.parts().chain(rel.parts()).collect(),
                rel: rel_text.clone(),
                id_blooms: aid.and_then(|a| a.id_blooms.clone()),
                time: aid.and_then(|a| a.time),
                size: f.size().max(0) as u64,
                date,
                rows: f.num_records().filter(|_| trust_stats),
            });
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Some(Self {
            schema: Arc::new(Schema::new(all)),
            file_schema: Arc::new(Schema::new(file_fields)),
            nested_views: nested,
            files,
            archive: archive.clone(),
            store_url,
            version: state.version() as i64,
            trust_stats,
        })
    }

    /// The archive the table is of.
    pub fn archive(&self) -> &super::Archive {
        &self.archive
    }

    /// The Delta version whose live files it scans.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Whether it claims the log's row counts as exact.
    pub fn trusts_stats(&self) -> bool {
        self.trust_stats
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

/// The type a column is read as: strings as views, which the Parquet reader fills
/// without copying each value out of the decoded pages. Inside lists and structs only
/// with `nested`: DataFusion's Parquet source makes top-level strings views by itself,
/// nested ones only when the file's read schema says so (see [`nested_views`]).
fn read_field(f: &Field, nested: bool) -> Field {
    let t = match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::List(item) if nested => DataType::List(Arc::new(read_field(item, true))),
        DataType::Struct(fields) if nested => {
            DataType::Struct(fields.iter().map(|f| read_field(f, true)).collect())
        }
        other => other.clone(),
    };
    f.clone().with_data_type(t)
}

/// Whether the table's stored columns are exactly those auditq writes (names, types,
/// nullability, list items' names). Each file is then read with the one schema that
/// has every string as a view, the strings of `context` and `container` too: the
/// Parquet reader checks a given schema against each file's own and fails the read on
/// any difference, so a table whose files another writer may have shaped otherwise
/// keeps the reader's own choice (nested strings copied out as `Utf8`).
fn nested_views(arrow: &Schema) -> bool {
    let stored = |s: &Schema| -> Vec<Field> {
        s.fields()
            .iter()
            // `leaf` is a plain integer, and absent from tables of schema version 1.
            .filter(|f| f.name() != col::DATE && f.name() != col::LEAF)
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect()
    };
    stored(arrow) == stored(&crate::event::schema())
}

/// Whether any of the filters reads one of `columns`.
fn reads_any(filters: &[Expr], columns: &[&str]) -> bool {
    filters.iter().any(|f| {
        let mut found = false;
        let _ = f.apply(|e| {
            if let Expr::Column(c) = e
                && columns.contains(&c.name.as_str())
            {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    })
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

/// The text of a string literal (through casts, which type coercion adds).
pub(crate) fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Cast(c) => literal_text(&c.expr),
        _ => None,
    }
}

/// The ids a scan's filters restrict `id` to (`id = 'x'`, `id IN (…)`, or an `OR` of
/// them), if one filter does.
fn wanted_ids(filters: &[Expr]) -> Option<Vec<String>> {
    fn is_id(e: &Expr) -> bool {
        match e {
            Expr::Column(c) => c.name == col::ID,
            Expr::Cast(c) => is_id(&c.expr),
            _ => false,
        }
    }
    fn ids(e: &Expr) -> Option<Vec<String>> {
        match e {
            Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                if is_id(&b.left) {
                    Some(vec![literal_text(&b.right)?])
                } else if is_id(&b.right) {
                    Some(vec![literal_text(&b.left)?])
                } else {
                    None
                }
            }
            Expr::BinaryExpr(b) if b.op == Operator::Or => {
                let mut out = ids(&b.left)?;
                out.extend(ids(&b.right)?);
                Some(out)
            }
            Expr::InList(l) if !l.negated && is_id(&l.expr) => {
                l.list.iter().map(literal_text).collect()
            }
            _ => None,
        }
    }
    filters.iter().find_map(ids)
}

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
        let mut files: Vec<&DataFile> = days.into_values().flatten().collect();
        if let Some(ids) = wanted_ids(filters) {
            let blooms: Vec<_> = files
                .iter()
                .map(|f| (f.rel.as_str(), f.id_blooms.as_deref()))
                .collect();
            let keep = super::summary::may_hold_any(&self.archive, &blooms, &ids);
            let mut keep = keep.into_iter();
            files.retain(|_| keep.next().unwrap_or(true));
        }
        // Damage is an error naming the file, before anything is read from it.
        let mut checker = super::checksum::Checker::new(&self.archive);
        for f in &files {
            checker
                .check(&f.rel, false)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        }
        checker.finish(&self.files.iter().map(|f| f.rel.as_str()).collect());
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let time_index = self.file_schema.index_of(col::TIME).ok();
        // Every file is sorted by time (the writer and compaction sort it). With each
        // file's time range known, DataFusion reads a group of files whose ranges do not
        // overlap as one stream in time order: "events in time order" is then a merge,
        // not a sort of everything (an export of the whole archive in bounded memory).
        let ordered = time_index.is_some() && files.iter().all(|f| f.time.is_some());
        let file_stats = |f: &DataFile| {
            let mut s = Statistics::new_unknown(&self.file_schema);
            s.total_byte_size = Precision::Inexact(f.size as usize);
            if let Some(rows) = f.rows {
                s.num_rows = Precision::Exact(rows);
            }
            if let (Some((first, last)), Some(t)) = (f.time, time_index) {
                let ts = |v| ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into()));
                s.column_statistics[t].min_value = Precision::Exact(ts(first));
                s.column_statistics[t].max_value = Precision::Exact(ts(last));
                s.column_statistics[t].null_count = Precision::Exact(0);
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
                            let file = PartitionedFile::new_from_meta(ObjectMeta {
                                location: f.location.clone(),
                                last_modified: chrono::DateTime::UNIX_EPOCH,
                                size: f.size,
                                e_tag: None,
                                version: None,
                            })
                            .with_partition_values(vec![ScalarValue::Utf8(Some(f.date.clone()))])
                            .with_statistics(file_stats(f));
                            if self.nested_views {
                                file.with_arrow_schema(self.file_schema.clone())
                            } else {
                                file
                            }
                        })
                        .collect(),
                )
            })
            .collect();
        let (file_groups, total) =
            compute_all_files_statistics(file_groups, self.schema.clone(), true, false)?;
        // Pruning aids that cost a read per file are only read when a filter can use
        // them: the page index for `time` (rows are sorted by it, so pages hold time
        // ranges; any other column is spread over every page), bloom filters for the
        // columns that have them.
        let mut global = state.config_options().execution.parquet.clone();
        global.enable_page_index &= reads_any(filters, &[col::TIME]);
        global.bloom_filter_on_read &= reads_any(filters, &[col::ID, col::ACTOR_ID, col::IP]);
        let options = TableParquetOptions {
            global,
            ..Default::default()
        };
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![self.date_field()])
            .build();
        let source = ParquetSource::new(table_schema).with_table_parquet_options(options);
        let mut builder = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(file_groups)
            .with_statistics(total);
        if ordered && let Some(t) = time_index {
            use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
            let time = datafusion::physical_expr::expressions::Column::new(col::TIME, t);
            let asc = datafusion::arrow::compute::SortOptions {
                descending: false,
                nulls_first: false,
            };
            builder = builder.with_output_ordering(
                LexOrdering::new(vec![PhysicalSortExpr::new(Arc::new(time), asc)])
                    .into_iter()
                    .collect(),
            );
        }
        let config = builder
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;

    use super::ArchiveTable;
    use crate::archive::{Archive, write};
    use crate::event::{BatchBuilder, col};

    /// The strings in `context` are read as views, and read right: the same values as
    /// the events that were archived.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nested_strings_are_read_as_views() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::at(dir.path().join("archive"));
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events.ndjson"),
        )
        .unwrap();
        let mut b = BatchBuilder::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            b.push_event(line).unwrap();
        }
        let written = b.finish();
        let mut w = write::Writer::open(&archive).await.unwrap();
        w.commit(std::slice::from_ref(&written), "test")
            .await
            .unwrap();
        drop(w);
        let table = archive.open_table().await.unwrap();

        let scan = ArchiveTable::try_new(&table, &archive, None, true).unwrap();
        let context = scan.file_schema.field_with_name(col::CONTEXT).unwrap();
        let DataType::List(item) = context.data_type() else {
            panic!("context is {}", context.data_type());
        };
        let DataType::Struct(parts) = item.data_type() else {
            panic!("an element of context is {}", item.data_type());
        };
        assert!(parts.iter().all(|p| p.data_type() == &DataType::Utf8View));
        assert!(scan.nested_views);

        let ctx = super::super::session::session(&archive, &table, None, true)
            .await
            .unwrap();
        let batches = ctx
            .sql("SELECT id, context FROM events")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let names = |ids: Vec<String>, lists: &dyn Array| -> Vec<(String, Vec<Option<String>>)> {
            let lists = lists.as_list::<i32>();
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| {
                    let items = lists.value(i);
                    let items = items.as_struct();
                    let name = items.column_by_name("name").unwrap();
                    let name = datafusion::arrow::compute::cast(name, &DataType::Utf8).unwrap();
                    let name = name.as_string::<i32>();
                    (id, name.iter().map(|s| s.map(str::to_owned)).collect())
                })
                .collect()
        };
        let ids = |a: &dyn Array| -> Vec<String> {
            let a = datafusion::arrow::compute::cast(a, &DataType::Utf8).unwrap();
            a.as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_owned())
                .collect()
        };
        let mut read_back = Vec::new();
        for batch in &batches {
            assert_eq!(batch.column(1).data_type(), context.data_type());
            read_back.extend(names(ids(batch.column(0)), batch.column(1)));
        }
        let mut expected = names(
            ids(written.column_by_name(col::ID).unwrap()),
            written.column_by_name(col::CONTEXT).unwrap(),
        );
        read_back.sort();
        expected.sort();
        assert_eq!(read_back, expected);
        assert!(expected.iter().any(|(_, names)| !names.is_empty()));
    }
}
