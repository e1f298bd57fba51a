//! The command line: arguments (clap) -> each command's options -> one library call.
//!
//! [`run`] is a match of one line per command. Each command has a file here holding its
//! arguments and the function that resolves them, with the [`Settings`] every command
//! shares, into its module's `Options` (fixed values come from their `Default`), calls
//! the module and says what it did. Nothing below this layer knows of flags.

mod archive;
mod cluster;
mod demo;
mod detect;
mod fake_api;
mod follow;
mod generate;
mod import;
mod key;
mod query;
mod sync;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::run::Settings;

const AFTER_HELP: &str = "\
Exit codes:
  0   success (also when the reader of the output closes the pipe)
  1   runtime failure (archive, input, output); `archive verify` found problems
  2   usage error: bad arguments, config file, duration or time; a query that does
      not parse or compile (its errors are drawn under the query)
  65  data error: an API page stayed unreadable (its bytes are in the quarantine)
  75  temporary failure: the archive is locked by another auditq process; the API
      kept failing (5xx, network, rate limits) — run again, nothing is lost
  77  the API refused the key (401/403) or does not know the organization (404)
  130 interrupted (SIGINT); 143 terminated (SIGTERM): nothing half-written

Environment:
  AUDITQ_ARCHIVE   archive directory, file:// URL or s3://bucket/prefix
                   (default: $XDG_DATA_HOME/auditq/archive)
  AWS_*            for an archive on S3: credentials (or the ~/.aws profile, AWS_PROFILE),
                   AWS_REGION, AWS_ENDPOINT_URL for S3-compatible stores
  AUDITQ_CONFIG    config file (default: $XDG_CONFIG_HOME/auditq/config.toml)
  AUDITQ_NOW       the time that now means in queries (like --now)
  AUDITQ_MACROS    the macros file (like --macros)
  ATLASSIAN_API_KEY  the organization API key `sync` sends (or --token-file)
  ATLASSIAN_ORG_ID the organization (like --org; also `org = \"…\"` in the config file)
  AUDITQ_SIGNING_KEY  the private key file that seals each commit (`auditq key
                   generate`; also `signing_key = \"…\"` in the config file)
  NO_COLOR         no colour (as --color never)
  RUST_LOG         what to log on stderr, e.g. `auditq=debug` (as -v, -vv)";

/// Archive, query and stream Atlassian organization audit logs.
#[derive(Debug, Parser)]
#[command(name = "auditq", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// Archive directory, file:// URL or s3://bucket/prefix [env: AUDITQ_ARCHIVE]
    #[arg(
        long,
        global = true,
        env = "AUDITQ_ARCHIVE",
        value_name = "DIR|URL",
        hide_env = true
    )]
    pub archive: Option<PathBuf>,
    /// Allow a plain-http S3 endpoint on another machine (loopback is always allowed)
    #[arg(long, global = true)]
    pub allow_http: bool,
    /// No progress bars and no summaries; errors only
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log what auditq does on stderr: -v requests, commits and plans; -vv more
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour in messages and tables: auto (on a terminal, unless NO_COLOR), always, never
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: crate::run::ColorChoice,
    /// Writers (import, sync, follow, demo) do not compact small files after their
    /// commits (also `auto_compact = false` in the config file)
    #[arg(long, global = true)]
    pub no_compact: bool,
    /// Macros (`let NAME = …;`) for queries [default: $XDG_CONFIG_HOME/auditq/macros.aq]
    #[arg(
        long,
        global = true,
        env = "AUDITQ_MACROS",
        value_name = "FILE",
        hide_env = true
    )]
    pub macros: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Archive events from files: API pages, single events, JSON arrays or NDJSON (`-` = stdin)
    Import(import::Args),
    /// Pull the organization's audit log from the Atlassian Admin API into the archive
    ///
    /// The key comes from ATLASSIAN_API_KEY or --token-file, never from the command line.
    /// The first run reads --since back; later runs resume from the checkpoint.
    Sync(sync::Args),
    /// Serve a fake Atlassian audit-log API on 127.0.0.1 (for trials and tests)
    FakeApi(fake_api::Args),
    /// Try auditq on generated data: a fake API on this machine, a sync, five queries
    Demo(demo::Args),
    /// Write synthetic events in the API's event shape as NDJSON (deterministic per seed)
    Generate(generate::Args),
    /// Keys that sign the archive's checkpoints
    Key {
        #[command(subcommand)]
        action: key::Command,
    },
    /// Inspect and maintain the archive
    Archive {
        #[command(subcommand)]
        action: archive::Command,
    },
    /// Run a Ballista scheduler or executor for `query --cluster` (`cluster` feature)
    Cluster {
        #[command(subcommand)]
        role: cluster::Command,
    },
    /// Run a query over the archive and print the result.
    ///
    /// Example: auditq query 'actor = "x" and event ~ "permission*" since 7d | count by actor'
    Query(query::Args),
    /// Backtest a rule pack over the archive in one pass: per rule, its hits, the first
    /// and last, and the keys that hit most.
    ///
    /// Rules are `.aq` files with a header (`# name: …`, `# severity: low|medium|high|
    /// critical`, `# description: …`, `# tags: a, b`); they run as `follow --rules DIR`
    /// would have run them on the archived events, in time order. Example:
    /// auditq detect examples/detections --since 90d
    Detect(detect::Args),
    /// Show how a query runs: canonical text, plans (partitions pruned) and equivalent SQL.
    Explain(query::ExplainArgs),
    /// Run a query on events as they arrive: matches and window alerts go to sinks.
    ///
    /// Sources: the API (--org; the key from ATLASSIAN_API_KEY or --token-file), --stdin
    /// (NDJSON or API pages), or --file PATH (-F keeps following it, like tail -F).
    /// Example: auditq follow --org ORG 'event:user_login_failed | count by actor over 5m > 10'
    /// With no source given, the API of the organization in ATLASSIAN_ORG_ID or the config
    /// file's `org`.
    Follow(follow::Args),
    /// List the fields queries can use: type, aliases, what each means.
    Fields {
        /// Print JSON (one object a field)
        #[arg(long)]
        json: bool,
    },
    /// The interactive prompt (also plain `auditq` on a terminal): history, completion,
    /// highlighting, meta commands (`.help`).
    Repl {
        /// "Now" for relative times (default: AUDITQ_NOW, else the clock).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Print a shell completion script: `auditq completions bash > /etc/bash_completion.d/auditq`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `auditq man | man -l -`
    Man,
}

/// `--errors`: how a query's errors are drawn.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ErrorsArg {
    Text,
    Json,
}

impl From<ErrorsArg> for crate::diag::Style {
    fn from(e: ErrorsArg) -> Self {
        match e {
            ErrorsArg::Text => crate::diag::Style::Text,
            ErrorsArg::Json => crate::diag::Style::Json,
        }
    }
}

impl Args {
    /// How this command's query errors are drawn (`--errors`).
    pub fn error_style(&self) -> crate::diag::Style {
        match &self.command {
            Some(Command::Query(a)) => a.errors.into(),
            Some(Command::Explain(a)) => a.errors.into(),
            Some(Command::Follow(a)) => a.errors.into(),
            _ => crate::diag::Style::Text,
        }
    }

    /// Whether messages on stderr are coloured.
    pub fn color_errors(&self) -> bool {
        self.color.on(std::io::stderr().is_terminal())
    }
}

/// Parse the command line.
pub fn parse() -> Result<Args> {
    Ok(Args::try_parse()?)
}

/// Resolve the settings every command shares, then run the command.
pub fn run(args: Args) -> Result<()> {
    let settings = Settings::resolve(crate::run::Given {
        archive: args.archive,
        quiet: args.quiet,
        verbose: args.verbose,
        color: args.color,
        allow_http: args.allow_http,
        macros: args.macros,
        no_compact: args.no_compact,
    })?;
    crate::log::init(settings.verbose, settings.color_err);
    // Archives that name a cluster run their plans on Ballista.
    #[cfg(feature = "cluster")]
    crate::query::remote::install(std::sync::Arc::new(crate::cluster::Ballista));
    match args.command.map_or_else(default_command, Ok)? {
        Command::Import(a) => import::run(&settings, a),
        Command::Sync(a) => sync::run(&settings, a),
        Command::FakeApi(a) => fake_api::run(a),
        Command::Demo(a) => demo::run(&settings, a),
        Command::Generate(a) => generate::run(a),
        Command::Archive { action } => archive::run(&settings, action),
        Command::Key { action } => key::run(action),
        Command::Cluster { role } => cluster::run(&settings, role),
        Command::Query(a) => query::run(&settings, a),
        // `--errors` is read by `main` (Args::error_style), which renders diagnostics.
        Command::Detect(a) => detect::run(&settings, a),
        Command::Explain(a) => query::explain(&settings, a),
        Command::Follow(a) => follow::run(&settings, a),
        Command::Fields { json } => query::fields(json),
        Command::Repl { now } => repl(&settings, now),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
    }
}

/// No command: the REPL on a terminal, else a usage error.
fn default_command() -> Result<Command> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return Ok(Command::Repl { now: None });
    }
    Err(Error::Clap(Args::command().error(
        clap::error::ErrorKind::MissingSubcommand,
        "a command is needed when input or output is not a terminal (`auditq --help`)",
    )))
}

fn repl(settings: &Settings, now: Option<String>) -> Result<()> {
    let now = now.or_else(|| std::env::var("AUDITQ_NOW").ok().filter(|s| !s.is_empty()));
    crate::repl::run(
        settings.archive.clone(),
        settings.s3.clone(),
        now.as_deref(),
        settings.color_out,
        crate::run::macros(settings.macros.as_deref())?,
    )
}

fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "auditq", &mut out);
    write_stdout(&out)
}

fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Args::command())
        .render(&mut out)
        .map_err(|source| Error::Io {
            what: "rendering the manual page".into(),
            source,
        })?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            what: "writing output".into(),
            source,
        })
}

/// The settings' archive read as of the version `--as-of` names (the latest without
/// one); says which on stderr unless --quiet.
fn as_of(settings: &Settings, given: Option<&str>) -> Result<crate::archive::Archive> {
    let Some(given) = given else {
        return Ok(settings.archive.clone());
    };
    let version = crate::archive::history::resolve(&settings.archive, given)?;
    if !settings.quiet {
        eprintln!("as of version {version}");
    }
    Ok(settings.archive.clone().as_of(Some(version)))
}

/// A new file to write, buffered.
fn create(path: &std::path::Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let file = std::fs::File::create(path).map_err(|source| Error::Io {
        what: format!("creating `{}`", path.display()),
        source,
    })?;
    Ok(std::io::BufWriter::new(file))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting the async runtime".into(),
            source,
        })
}

/// A line on standard output.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|source| Error::Io {
        what: "writing output".into(),
        source,
    })
}

/// A report as pretty JSON on standard output.
fn say_json(report: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|source| Error::Encode {
        what: "the report",
        source,
    })?;
    say(&text)
}

/// A duration flag's value, or a usage error naming the flag.
fn duration(flag: &str, value: &str) -> Result<std::time::Duration> {
    crate::lang::duration::parse_duration(value).map_err(|e| Error::Usage(format!("--{flag}: {e}")))
}
