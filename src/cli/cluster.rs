//! `auditq cluster scheduler|executor` (cargo feature `cluster`).

use clap::Subcommand;

#[cfg(not(feature = "cluster"))]
use crate::error::Error;
use crate::error::Result;
use crate::run::Settings;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The scheduler: plans queries and hands their stages to the executors
    Scheduler {
        #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
        bind: String,
    },
    /// An executor: runs stages, reading the archive's files from the bucket
    Executor {
        /// The scheduler to work for
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// The address to listen on (and that the scheduler and other executors use)
        #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
        bind: String,
        /// Port of its Arrow Flight server (results and shuffles)
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port of its gRPC server (tasks)
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (default: the machine's cores)
        #[arg(long, value_name = "N")]
        vcores: Option<usize>,
    },
}

#[cfg(feature = "cluster")]
pub fn run(settings: &Settings, role: Command) -> Result<()> {
    let s3 = settings.s3.clone();
    let rt = super::runtime()?;
    match role {
        Command::Scheduler { bind } => {
            if !settings.quiet {
                eprintln!("auditq cluster scheduler on {bind}");
            }
            let functions = crate::query::own_functions();
            rt.block_on(crate::cluster::scheduler(&bind, s3, functions))?
        }
        Command::Executor {
            scheduler,
            bind,
            port,
            grpc_port,
            vcores,
        } => {
            if !settings.quiet {
                eprintln!("auditq cluster executor on {bind}:{port} for {scheduler}");
            }
            let at = crate::cluster::Executor {
                scheduler,
                bind,
                port,
                grpc_port,
                vcores,
            };
            let functions = crate::query::own_functions();
            rt.block_on(crate::cluster::executor(at, s3, functions))?
        }
    }
    Ok(())
}

#[cfg(not(feature = "cluster"))]
pub fn run(_: &Settings, _: Command) -> Result<()> {
    Err(Error::Usage(
        "this auditq was built without the `cluster` feature (cargo build --features cluster)"
            .into(),
    ))
}
