//! Plans that run elsewhere: the seam between `query` and a layer above it that runs
//! plans on a cluster (`cluster`, behind the cargo feature of that name).
//!
//! `query` owns the function registry ([`super::own_functions`]) and hands it to
//! the engine; the command line installs the engine once at start-up. With none
//! installed, a query on an archive that names a cluster is refused
//! ([`super::Error::NoCluster`]).

use std::sync::{Arc, OnceLock};

use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::archive::Archive;

/// An engine's own error, kept whole for the message and the exit code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where plans over the archive run when not in this process.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// A session whose queries run on the cluster at `scheduler`, with the archive's
    /// `events` table at `table`'s version and `functions` registered.
    async fn session(
        &self,
        scheduler: &str,
        archive: &Archive,
        table: &deltalake::DeltaTable,
        trust_stats: bool,
        functions: Vec<ScalarUDF>,
    ) -> Result<SessionContext, BoxError>;

    /// The stages the cluster makes of `plan` (an optimized logical plan), for `explain`.
    async fn stages(
        &self,
        plan: &LogicalPlan,
        functions: Vec<ScalarUDF>,
    ) -> Result<String, BoxError>;
}

static ENGINE: OnceLock<Arc<dyn Engine>> = OnceLock::new();

/// Run the plans of archives that name a cluster on `engine` (the first call wins).
pub fn install(engine: Arc<dyn Engine>) {
    let _ = ENGINE.set(engine);
}

/// The installed engine, if any.
pub(super) fn installed() -> Option<&'static Arc<dyn Engine>> {
    ENGINE.get()
}
