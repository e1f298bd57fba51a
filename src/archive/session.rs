//! The DataFusion session over the archive: auditq's scan of the live files, its
//! physical rules (newest files first, read-ahead, `count by` on views, per-value
//! filters, pruning by partition values) and the object store the files are read from.
//! The file reader ([`super::read`]) knows none of this.

use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use super::summary::FileAids;
use super::{Archive, Error, Result};

/// A DataFusion session with the archive's table registered as `events`: auditq's own
/// scan of the live files where the table allows it (see [`super::provider`]), else
/// delta-rs's provider. `AUDITQ_DELTA_PROVIDER=1` forces the latter, for comparisons.
///
/// With `trust_stats` false (a live file is missing or changed, see
/// [`super::read::changed_files`]), the scan claims no row counts, so `| count` reads the
/// data rather than the log.
pub async fn session(
    archive: &Archive,
    table: &DeltaTable,
    aids: Option<&FileAids>,
    trust_stats: bool,
) -> Result<SessionContext> {
    // Each partition reads its group of files in time order, which the scan declares.
    // A partition that finishes early may otherwise take files from another's group
    // (work stealing), and once the limit of `| head N` is pushed into the scan
    // DataFusion no longer keeps the order: the merge then answered `sort time | head N`
    // from the wrong files. Filters under a `sort … | head N` read the newest (or
    // oldest) files first.
    let config = datafusion::prelude::SessionConfig::new().set_bool(
        "datafusion.execution.enable_file_stream_work_stealing",
        false,
    );
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(std::sync::Arc::new(super::newest_first::NewestFirst))
        .with_physical_optimizer_rule(std::sync::Arc::new(super::read_ahead::ReadAhead))
        .with_physical_optimizer_rule(std::sync::Arc::new(super::count_by::CountBy))
        .with_physical_optimizer_rule(std::sync::Arc::new(super::per_value::PerValueFilters))
        .with_physical_optimizer_rule(std::sync::Arc::new(super::prune_by::PruneBy))
        .build();
    let ctx = SessionContext::new_with_state(state);
    match archive.remote() {
        Some(r) => {
            ctx.register_object_store(&r.bucket_url(), r.store.clone());
        }
        None => {
            let url = url::Url::parse("file://").expect("a valid URL");
            ctx.register_object_store(
                &url,
                std::sync::Arc::new(super::local_reads::LocalReads::new()),
            );
        }
    }
    let provider: std::sync::Arc<dyn datafusion::datasource::TableProvider> =
        match super::provider::ArchiveTable::try_new(table, archive, aids, trust_stats) {
            Some(direct) if std::env::var_os("AUDITQ_DELTA_PROVIDER").is_none() => {
                std::sync::Arc::new(direct)
            }
            _ => table.table_provider().await.map_err(|e| Error::Query {
                path: archive.events_dir(),
                source: Box::new(e),
            })?,
        };
    ctx.register_table("events", provider)
        .map_err(|e| Error::Query {
            path: archive.events_dir(),
            source: Box::new(e),
        })?;
    Ok(ctx)
}
