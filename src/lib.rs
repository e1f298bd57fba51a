//! auditq: archive, query and stream Atlassian organization audit logs.
//!
//! Data flows one way: input (API pages, files) -> [`event`] (JSON -> Arrow) ->
//! [`archive`] (Delta Lake). [`cli`] is a thin shell over these stages.

pub mod api;
pub mod archive;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod demo;
pub mod detect;
pub mod diag;
pub mod error;
pub mod event;
pub mod follow;
pub mod generate;
pub mod import;
pub mod ingest;
pub mod lang;
pub mod log;
pub mod pipeline;
pub mod query;
pub mod repl;
pub mod run;
pub mod sync;
pub mod userfile;

pub use error::Error;
