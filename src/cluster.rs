//! Queries on an Apache DataFusion Ballista cluster (cargo feature `cluster`).
//!
//! `auditq cluster scheduler` and `auditq cluster executor` run Ballista's scheduler and
//! executor inside the auditq binary, with auditq's functions registered and object
//! stores for `s3://` built from the process's AWS settings. `query --cluster` plans the
//! query here as always (the same parser, compiler and logical optimizer), then Ballista
//! ships the logical plan to the scheduler, which plans it physically and splits it into
//! stages for the executors.
//!
//! The `events` table travels as what identifies it: the archive's URL and the Delta
//! version this client read, so the scheduler scans exactly the files of that version.
//! It opens the archive itself (its checksum checks and partition pruning run there);
//! the executors read the Parquet files straight from the bucket. auditq's own physical
//! operators (the view-keyed `count by`, read-ahead, per-value filters) are local
//! optimisations and are not installed on the cluster: it runs DataFusion's own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::object_store::ObjectStore;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use serde::{Deserialize, Serialize};

use crate::archive::provider::ArchiveTable;
use crate::archive::store::{Remote, S3Options};
use crate::archive::{self, Archive};
use crate::query::remote::BoxError;

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--cluster needs the archive on storage every executor reaches (`s3://bucket/prefix`); `{}` is a local path",
        .0.display()
    )]
    LocalArchive(PathBuf),
    #[error(
        "the archive's table uses a Delta feature (deletion vectors, column mapping) that only a local query reads"
    )]
    NotScannable,
    #[error("`{0}` is not HOST:PORT")]
    Address(String),
    #[error("the cluster: {0}")]
    Ballista(String),
    #[error(transparent)]
    Archive(#[from] archive::Error),
}

/// How this process reaches S3 (the scheduler opens archives, executors read files):
/// the command's settings, set once at its start.
static S3: OnceLock<S3Options> = OnceLock::new();

fn s3_options() -> &'static S3Options {
    S3.get_or_init(S3Options::default)
}

/// What stands for the `events` table in a plan sent to the cluster.
#[derive(Debug, Serialize, Deserialize)]
struct TableRef {
    archive: String,
    version: i64,
    trust_stats: bool,
}

const TAG: &[u8] = b"auditq-events:";

/// Ballista's logical codec, plus auditq's `events` table.
#[derive(Debug, Default)]
pub struct Codec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for Codec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[datafusion::logical_expr::LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<datafusion::logical_expr::Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(
        &self,
        node: &datafusion::logical_expr::Extension,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: datafusion::arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let Some(json) = buf.strip_prefix(TAG) else {
            return self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let wanted: TableRef =
            serde_json::from_slice(json).map_err(|e| DataFusionError::External(e.into()))?;
        let table = crate::archive::store::wait(open_table(wanted))
            .map_err(|e| DataFusionError::External(e.into()))?;
        Ok(table)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let Some(table) = node.downcast_ref::<ArchiveTable>() else {
            return self.inner.try_encode_table_provider(table_ref, node, buf);
        };
        let archive = table.archive();
        let Some(remote) = archive.remote() else {
            return Err(DataFusionError::External(
                Error::LocalArchive(archive.root().to_owned()).into(),
            ));
        };
        buf.extend_from_slice(TAG);
        let wanted = TableRef {
            archive: remote.url.to_string(),
            version: table.version(),
            trust_stats: table.trusts_stats(),
        };
        serde_json::to_writer(buf, &wanted).map_err(|e| DataFusionError::External(e.into()))
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The scheduler's side of [`Codec`]: the archive's table at the client's version.
async fn open_table(wanted: TableRef) -> Result<Arc<dyn TableProvider>, Error> {
    let url = url::Url::parse(&wanted.archive).map_err(|e| Error::Ballista(e.to_string()))?;
    let remote = Remote::open(&url, s3_options()).map_err(|e| Error::Ballista(e.to_string()))?;
    let archive = Archive::on(remote);
    let table = archive
        .open_table_at(u64::try_from(wanted.version).ok())
        .await?;
    let scan = ArchiveTable::try_new(&table, &archive, None, wanted.trust_stats)
        .ok_or(Error::NotScannable)?;
    Ok(Arc::new(scan))
}

/// Object stores by URL; an `s3://bucket` not registered yet is opened with this
/// process's AWS settings.
#[derive(Debug, Default)]
struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> DfResult<Arc<dyn ObjectStore>> {
        match self.known.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" => {
                let remote = Remote::open(url, s3_options())
                    .map_err(|e| DataFusionError::External(e.into()))?;
                self.known.register_store(url, remote.store.clone());
                Ok(remote.store.clone())
            }
            Err(e) => Err(e),
        }
    }
}

fn runtime_env() -> DfResult<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(Stores::default()))
        .build_arc()
}

fn config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(Codec::default()))
}

/// A session of the cluster (scheduler or executor): auditq's functions and stores.
fn state(config: SessionConfig, functions: &[ScalarUDF]) -> DfResult<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime_env()?)
        .with_default_features()
        .build();
    for f in functions {
        state.register_udf(Arc::new(f.clone()))?;
    }
    Ok(state)
}

fn address(text: &str) -> Result<SocketAddr, Error> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Address(text.to_owned()))
}

/// Run a scheduler on `bind` until the process is stopped; its sessions know
/// `functions` (auditq's, from `query`).
pub async fn scheduler(bind: &str, s3: S3Options, functions: Vec<ScalarUDF>) -> Result<(), Error> {
    let _ = S3.set(s3);
    let addr = address(bind)?;
    let config = ballista_scheduler::config::SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        override_config_producer: Some(Arc::new(config)),
        override_session_builder: Some(Arc::new(move |c| state(c, &functions))),
        override_logical_codec: Some(Arc::new(Codec::default())),
        ..Default::default()
    };
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| Error::Ballista(e.to_string()))?;
    ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|e| Error::Ballista(e.to_string()))
}

/// Where an executor listens and works.
pub struct Executor {
    /// The scheduler to work for (HOST:PORT).
    pub scheduler: String,
    pub bind: String,
    pub port: u16,
    pub grpc_port: u16,
    pub vcores: Option<usize>,
}

/// Run an executor until the process is stopped; its tasks know `functions` (auditq's,
/// from `query`).
pub async fn executor(e: Executor, s3: S3Options, functions: Vec<ScalarUDF>) -> Result<(), Error> {
    let Executor {
        scheduler,
        bind,
        port,
        grpc_port,
        vcores,
    } = e;
    let scheduler = scheduler.as_str();
    let _ = S3.set(s3);
    let at = address(scheduler)?;
    let mut registry = BallistaFunctionRegistry::default();
    for f in functions {
        registry
            .scalar_functions
            .insert(f.name().to_owned(), Arc::new(f));
    }
    let mut config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: bind.to_owned(),
        external_host: Some(bind.to_owned()),
        port,
        grpc_port,
        scheduler_host: at.ip().to_string(),
        scheduler_port: at.port(),
        print_thread_info: false,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(Arc::new(|_: &SessionConfig| runtime_env())),
        override_config_producer: Some(Arc::new(config)),
        override_logical_codec: Some(Arc::new(Codec::default())),
        ..Default::default()
    };
    if let Some(n) = vcores {
        config.vcores = n;
    }
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::Ballista(e.to_string()))
}

/// Ballista as `query`'s engine for archives that name a cluster.
pub struct Ballista;

#[async_trait::async_trait]
impl crate::query::remote::Engine for Ballista {
    async fn session(
        &self,
        scheduler: &str,
        archive: &Archive,
        table: &deltalake::DeltaTable,
        trust_stats: bool,
        functions: Vec<ScalarUDF>,
    ) -> Result<SessionContext, BoxError> {
        Ok(session(scheduler, archive, table, trust_stats, functions).await?)
    }

    async fn stages(
        &self,
        plan: &LogicalPlan,
        functions: Vec<ScalarUDF>,
    ) -> Result<String, BoxError> {
        Ok(stages(plan, &functions).await?)
    }
}

/// A session whose queries run on the cluster at `scheduler`, with the archive's
/// `events` table at `table`'s version.
async fn session(
    scheduler: &str,
    archive: &Archive,
    table: &deltalake::DeltaTable,
    trust_stats: bool,
    functions: Vec<ScalarUDF>,
) -> Result<SessionContext, Error> {
    if archive.remote().is_none() {
        return Err(Error::LocalArchive(archive.root().to_owned()));
    }
    address(scheduler)?;
    let state = SessionStateBuilder::new()
        .with_config(config())
        .with_runtime_env(runtime_env().map_err(|e| Error::Ballista(e.to_string()))?)
        .with_default_features()
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://{scheduler}"), state)
        .await
        .map_err(|e| Error::Ballista(e.to_string()))?;
    let scan =
        ArchiveTable::try_new(table, archive, None, trust_stats).ok_or(Error::NotScannable)?;
    ctx.register_table("events", Arc::new(scan))
        .map_err(|e| Error::Ballista(e.to_string()))?;
    for f in functions {
        ctx.register_udf(f);
    }
    Ok(ctx)
}

/// The stages the scheduler makes of `plan` (an optimized logical plan over the
/// archive's `events`): the physical plan its session makes, split where data moves
/// between executors. For `explain --cluster`.
async fn stages(plan: &LogicalPlan, functions: &[ScalarUDF]) -> Result<String, Error> {
    use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
    let ballista = |e: DataFusionError| Error::Ballista(e.to_string());
    let state = state(config(), functions).map_err(ballista)?;
    let physical = state.create_physical_plan(plan).await.map_err(ballista)?;
    let job = ballista_core::JobId::new("explain");
    let stages = DefaultDistributedPlanner::new()
        .plan_query_stages(&job, physical, state.config_options())
        .map_err(|e| Error::Ballista(e.to_string()))?;
    let mut out = String::new();
    for stage in stages {
        let text = datafusion::physical_plan::displayable(stage.as_ref() as &dyn ExecutionPlan)
            .indent(true)
            .to_string();
        out.push_str(&format!("stage {}:\n", stage.stage_id()));
        for line in text.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}
