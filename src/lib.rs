//! auditq: archive, query and stream Atlassian organization audit logs.
//!
//! Data flows one way: input (API pages, files) -> [`event`] (JSON -> Arrow) ->
//! [`archive`] (Delta Lake) -> [`query`] (the language on DataFusion) -> output.
//! [`cli`] only dispatches.
//!
//! ## Layers
//!
//! A module uses only the modules below it in this list (top first). Each layer returns
//! its own error type; [`error`] lifts them into the one the exit codes are decided on.
//! `tests/it/layers.rs` reads every `crate::` path under `src/` and fails, naming the
//! file and line, on one that points up or sideways.
//!
//! ```text
//! cli       arguments -> each command's options -> one call per command
//! repl      the analyst's prompt
//! demo      the built-in demo: a fake API on this machine, a sync, five queries
//! run       settings (flags, environment, config file), query text -> output
//! error     the top-level error, exit codes, errors worded in terms of flags
//! detect    rule packs backtested over the archive
//! follow    the stream processor: sources -> engine -> sinks
//! sync      the API into the archive
//! import    files into the archive
//! pipeline  ingestion: the API source, the archive sink, signals
//! cluster   plans on a Ballista cluster (cargo feature `cluster`)
//! query     the language compiled to DataFusion plans, run, written out
//! lang      the language: tokens, syntax tree, parser, checks, macros, time
//! ingest    reading files and standard input: formats, events -> batches
//! api       the Atlassian Admin API: client and fake server
//! archive   the Delta Lake table: write, read, maintain, on disk or S3
//! generate  synthetic events
//! event     the event model: API JSON -> Arrow rows
//! merkle    RFC 9162 Merkle trees: roots, inclusion and consistency proofs
//! note      C2SP signed notes with Ed25519 keys
//! diag      diagnostics and spans
//! paths     auditq's own directories
//! rng       seedable random numbers
//! userfile  files the user names: regular, bounded, text
//! log       what auditq logs on stderr
//! ```

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
pub mod merkle;
pub mod note;
pub mod paths;
pub mod pipeline;
pub mod query;
pub mod repl;
pub mod rng;
pub mod run;
pub mod sync;
pub mod userfile;

pub use error::Error;
