//! Command-line arguments (clap) -> Settings -> library calls. No logic of its own.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::archive::maintain;
use crate::error::{Error, Result};
use crate::generate::{Config, Generator};
use crate::import;
use crate::ingest::Input;
use crate::lang::time::parse_duration;
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
    Import {
        /// Input files; `-` reads standard input
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// Events per atomic commit
        #[arg(long, default_value_t = 40_000, value_name = "N")]
        batch_size: usize,
    },
    /// Pull the organization's audit log from the Atlassian Admin API into the archive
    ///
    /// The key comes from ATLASSIAN_API_KEY or --token-file, never from the command line.
    /// The first run reads --since back; later runs resume from the checkpoint.
    Sync {
        /// Organization id [env: ATLASSIAN_ORG_ID; config: org]
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// API root
        #[arg(long, default_value = "https://api.atlassian.com", value_name = "URL")]
        api_url: String,
        /// How far back the first run reaches
        #[arg(long, default_value = "180d", value_name = "DURATION")]
        since: String,
        /// A file holding the API key (mode 0600), instead of ATLASSIAN_API_KEY
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Events per page (at most 500)
        #[arg(long, default_value_t = 500, value_name = "N")]
        page_size: usize,
        /// Pages per atomic commit
        #[arg(long, default_value_t = 20, value_name = "N")]
        commit_pages: usize,
        /// Attempts per request before giving up (5xx, network, unreadable pages)
        #[arg(long, default_value_t = 6, value_name = "N")]
        attempts: u32,
        /// Time limit per request
        #[arg(long, default_value = "120s", value_name = "DURATION")]
        timeout: String,
    },
    /// Serve a fake Atlassian audit-log API on 127.0.0.1 (for trials and tests)
    FakeApi {
        /// Port (0 picks a free one)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Organization id (default: the generator's)
        #[arg(long)]
        org: Option<String>,
        /// The key clients must send (default: derived from the seed)
        #[arg(long)]
        token: Option<String>,
        /// Events to serve
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Days they span, ending now
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Serve without rate limits
        #[arg(long)]
        no_rate_limit: bool,
        /// Inject a fault: `KIND[xCOUNT][@FROM]`, e.g. `429x20@3`, `503x5`, `truncatex10@2`, `htmlx100`
        #[arg(long, value_name = "SPEC")]
        fault: Vec<String>,
    },
    /// Try auditq on generated data: a fake API on this machine, a sync, five queries
    Demo {
        /// Events to generate
        #[arg(long, default_value_t = 50_000)]
        events: u64,
        /// Days they span, ending now
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Where the demo archive goes (default: --archive when given, else auditq-demo)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write synthetic events in the API's event shape as NDJSON (deterministic per seed)
    Generate {
        /// Number of events
        #[arg(long, value_name = "N")]
        events: u64,
        /// Days the events span, ending at --end
        #[arg(long, default_value_t = 90, value_name = "D")]
        days: u32,
        /// End of the span (RFC 3339; default: now)
        #[arg(long, value_name = "TIME")]
        end: Option<String>,
        /// Random seed
        #[arg(long, default_value_t = 1, value_name = "S")]
        seed: u64,
        /// Write to a file instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Inspect and maintain the archive
    Archive {
        #[command(subcommand)]
        action: ArchiveCommand,
    },
    /// Run a Ballista scheduler or executor for `query --cluster` (`cluster` feature)
    Cluster {
        #[command(subcommand)]
        role: ClusterCommand,
    },
    /// Run a query over the archive and print the result.
    ///
    /// Example: auditq query 'actor = "x" and event ~ "permission*" since 7d | count by actor'
    Query {
        /// The query (or --file, --saved). It may start with `-` (`-actor:svc-* …`).
        #[arg(
            value_name = "QUERY",
            required_unless_present_any = ["file", "saved"],
            allow_hyphen_values = true
        )]
        query: Option<String>,
        /// Read the query from a file (`#` comments allowed); `-` reads standard input.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["query", "saved"])]
        file: Option<String>,
        /// Run a query saved in the REPL (`.save NAME`).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["query", "file"])]
        saved: Option<String>,
        /// Output format: table on a terminal, else CSV; from -o's extension when given.
        #[arg(long, value_enum)]
        format: Option<crate::query::output::Format>,
        /// Write the result to a file instead of stdout (it appears only when complete;
        /// .csv .json .ndjson .jsonl .parquet .txt).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// On a terminal, print every row (by default a screenful and a count of the rest).
        #[arg(long)]
        all: bool,
        /// "Now" for relative times (default: AUDITQ_NOW, else the clock).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// How to print errors in the query: text (with a caret) or json (one object a line).
        #[arg(long, value_enum, default_value = "text")]
        errors: ErrorsArg,
        /// Run it on the Ballista cluster whose scheduler is at HOST:PORT (`cluster`
        /// feature; the archive must be on S3)
        #[arg(long, value_name = "HOST:PORT")]
        cluster: Option<String>,
    },
    /// Backtest a rule pack over the archive in one pass: per rule, its hits, the first
    /// and last, and the keys that hit most.
    ///
    /// Rules are `.aq` files with a header (`# name: …`, `# severity: low|medium|high|
    /// critical`, `# description: …`, `# tags: a, b`); they run as `follow --rules DIR`
    /// would have run them on the archived events, in time order. Example:
    /// auditq detect examples/detections --since 90d
    Detect {
        /// The directory of rules
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// How far back (from now)
        #[arg(long, default_value = "30d", value_name = "DURATION")]
        since: String,
        /// How long windows and sequences wait for late events
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        lateness: String,
        /// table on a terminal, csv when piped, or json
        #[arg(long, value_enum)]
        format: Option<crate::detect::Format>,
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Show how a query runs: canonical text, plans (partitions pruned) and equivalent SQL.
    Explain {
        #[arg(value_name = "QUERY", allow_hyphen_values = true)]
        query: String,
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// Also run the query and show each operator's metrics (rows, time, files and
        /// row groups pruned).
        #[arg(long)]
        analyze: bool,
        #[arg(long, value_enum, default_value = "text")]
        errors: ErrorsArg,
        /// Plan it for the Ballista cluster at HOST:PORT and show the distributed stages
        #[arg(long, value_name = "HOST:PORT")]
        cluster: Option<String>,
    },
    /// Run a query on events as they arrive: matches and window alerts go to sinks.
    ///
    /// Sources: the API (--org; the key from ATLASSIAN_API_KEY or --token-file), --stdin
    /// (NDJSON or API pages), or --file PATH (-F keeps following it, like tail -F).
    /// Example: auditq follow --org ORG 'event:user_login_failed | count by actor over 5m > 10'
    /// With no source given, the API of the organization in ATLASSIAN_ORG_ID or the config
    /// file's `org`.
    #[command(group(clap::ArgGroup::new("source").args(["org", "stdin", "file"])))]
    Follow {
        /// The query: filters, `where`, `dedup … within`, `first_seen`, then `fields …`, a
        /// windowed aggregate (`| count by actor over 5m > 10`) or a sequence
        #[arg(
            value_name = "QUERY",
            allow_hyphen_values = true,
            required_unless_present = "rules"
        )]
        query: Option<String>,
        /// Run every rule (`.aq` file with a `# name:`/`# severity:` header) of DIR
        /// instead of one query; each alert carries its rule
        #[arg(long, value_name = "DIR", conflicts_with = "query")]
        rules: Option<PathBuf>,
        /// Read the organization's audit log from the API
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Read events from standard input until it closes
        #[arg(long)]
        stdin: bool,
        /// Read events from a file (NDJSON or one API page a line)
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// With --file: keep reading as it grows, across rotation (like tail -F)
        #[arg(short = 'F', long = "follow-file", requires = "file")]
        follow_file: bool,
        /// Where matches go: stdout, file:PATH, webhook:URL, splunk-hec:URL (repeatable;
        /// splunk-hec takes its token from SPLUNK_HEC_TOKEN)
        #[arg(long, value_name = "SINK", default_value = "stdout")]
        sink: Vec<String>,
        /// Checkpoint directory (default: one per query and source under
        /// $XDG_DATA_HOME/auditq/follow; stdin keeps none unless given)
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// How long windows wait for events that arrive late
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        lateness: String,
        /// How often the API is asked for new events
        #[arg(long, default_value = "15s", value_name = "DURATION")]
        poll: String,
        /// With --org: where the first run starts (unless the archive has a sync checkpoint)
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        since: String,
        /// API root
        #[arg(long, default_value = "https://api.atlassian.com", value_name = "URL")]
        api_url: String,
        /// A file holding the API key (mode 0600), instead of ATLASSIAN_API_KEY
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Events per API page (at most 500)
        #[arg(long, default_value_t = 500, value_name = "N")]
        page_size: usize,
        /// Batches queued per sink before reading waits
        #[arg(long, default_value_t = 16, value_name = "N")]
        queue: usize,
        /// Rotate file: sinks at this many bytes
        #[arg(long, default_value_t = 100 << 20, value_name = "BYTES")]
        rotate_bytes: u64,
        /// How often a checkpoint is taken while events flow
        #[arg(long, default_value = "1s", value_name = "DURATION")]
        checkpoint_every: String,
        /// "Now" for time clauses (default: AUDITQ_NOW, else the clock)
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        errors: ErrorsArg,
    },
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
            Some(
                Command::Query { errors, .. }
                | Command::Explain { errors, .. }
                | Command::Follow { errors, .. },
            ) => (*errors).into(),
            _ => crate::diag::Style::Text,
        }
    }

    /// Whether messages on stderr are coloured.
    pub fn color_errors(&self) -> bool {
        self.color.on(std::io::stderr().is_terminal())
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
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

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Events, days, time range, files, bytes, top actions
    Stats {
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// How many top actions to list
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: usize,
    },
    /// Check every live file opens, matches the schema and that ids are unique
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Rewrite each day held in several files as one file sorted by time (one commit)
    Compact,
    /// Remove the later copies of ids archived more than once (one commit); the removed
    /// copies are kept in quarantine/conflict/
    Repair {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete data files no live version references (never live data)
    Vacuum {
        /// Keep files removed or orphaned less than this long ago (at least 1h without
        /// --force)
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        older_than: String,
        /// Only list what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Take an --older-than under 1h for files removed from the table (old versions'
        /// readers may fail); unreferenced files are still kept 1h, and any written since
        /// a writer in flight began
        #[arg(long)]
        force: bool,
    },
}

/// Parse the command line.
pub fn parse() -> Result<Args> {
    Ok(Args::try_parse()?)
}

/// Resolve settings, run the command.
pub fn run(args: Args) -> Result<()> {
    let settings = Settings::resolve(
        args.archive.clone(),
        args.quiet,
        args.verbose,
        args.color,
        args.allow_http,
    )?;
    crate::log::init(args.verbose, settings.color_err);
    let macros = args.macros.clone();
    let archive_given = settings.archive_given;
    let command = match args.command {
        Some(c) => c,
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Command::Repl { now: None }
        }
        None => {
            use clap::CommandFactory;
            return Err(Error::Clap(Args::command().error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is needed when input or output is not a terminal (`auditq --help`)",
            )));
        }
    };
    match command {
        Command::Generate {
            events,
            days,
            end,
            seed,
            output,
        } => generate(events, days, end, seed, output),
        Command::Import { files, batch_size } => {
            let inputs: Vec<Input> = files.iter().map(|f| Input::parse(f)).collect();
            let opts = import::Options {
                batch_size,
                progress: settings.progress,
                verbose: settings.verbose > 0,
            };
            let report = runtime()?.block_on(import::import(&settings.archive, &inputs, &opts))?;
            if !settings.quiet {
                say(&report.summary(&settings.archive))?;
            }
            Ok(())
        }
        Command::Archive { action } => archive(&settings, action),
        Command::Cluster { role } => cluster(&settings, role),
        Command::Sync {
            org,
            api_url,
            since,
            token_file,
            page_size,
            commit_pages,
            attempts,
            timeout,
        } => {
            let org = settings.org(org)?;
            let token = crate::run::api_token(token_file.as_deref())?;
            let mut opts = crate::sync::Options::new(&org, &api_url, token);
            opts.since = parse_duration(&since).map_err(Error::Usage)?;
            opts.api.page_size = page_size.clamp(1, 500);
            opts.commit_pages = commit_pages.max(1);
            opts.progress = settings.progress;
            opts.api.limits.attempts = attempts.max(1);
            opts.api.limits.total_timeout = parse_duration(&timeout).map_err(Error::Usage)?;
            let report = runtime()?.block_on(crate::sync::sync(&settings.archive, &opts))?;
            if !settings.quiet {
                say(&report.summary())?;
            }
            Ok(())
        }
        Command::FakeApi {
            port,
            org,
            token,
            events,
            days,
            seed,
            no_rate_limit,
            fault,
        } => {
            let faults = fault
                .iter()
                .map(|f| crate::api::fake::Fault::parse(f.trim()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::Usage)?;
            let opts = crate::api::fake::Options {
                org: org.unwrap_or_default(),
                token: token.unwrap_or_default(),
                events,
                days,
                seed,
                rate_limit: !no_rate_limit,
                faults,
                ..Default::default()
            };
            runtime()?.block_on(async {
                let api = crate::api::fake::FakeApi::start(opts, port)
                    .await
                    .map_err(|source| Error::Io {
                        what: "starting the fake API".into(),
                        source,
                    })?;
                say(&format!(
                    "url   {}\norg   {}\ntoken {}",
                    api.url, api.org, api.token
                ))?;
                api.wait().await;
                Ok(())
            })
        }
        Command::Demo { events, days, dir } => {
            // --dir, else --archive (or AUDITQ_ARCHIVE), else ./auditq-demo.
            let archive = match (dir, archive_given) {
                (Some(d), _) => crate::archive::Archive::at(d),
                (None, true) => settings.archive.clone(),
                (None, false) => crate::archive::Archive::at("auditq-demo"),
            };
            runtime()?.block_on(crate::demo::demo(&archive, events, days, settings.progress))
        }
        Command::Query {
            query,
            file,
            saved,
            format,
            output,
            all,
            now,
            errors,
            cluster,
        } => {
            let settings = Settings {
                archive: settings.archive.clone().with_cluster(cluster),
                ..settings.clone()
            };
            let text = match (query, file, saved) {
                (Some(q), _, _) => q,
                (None, Some(path), _) if path == "-" => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(
                        |source| Error::Io {
                            what: "reading the query from standard input".into(),
                            source,
                        },
                    )?;
                    text
                }
                (None, Some(path), _) => {
                    std::fs::read_to_string(&path).map_err(|source| Error::Io {
                        what: format!("reading `{path}`"),
                        source,
                    })?
                }
                (None, None, Some(name)) => crate::run::saved_query(&name)?,
                (None, None, None) => {
                    return Err(Error::Usage("give a query, --file or --saved".into()));
                }
            };
            let expanded = crate::run::expand(macros.as_deref(), &text)?;
            run_query(
                &settings,
                &expanded,
                format,
                output,
                all,
                now.as_deref(),
                errors.into(),
            )
        }
        // `--errors` is read by `main` (Args::error_style), which renders diagnostics.
        Command::Detect {
            dir,
            since,
            lateness,
            format,
            now,
        } => {
            let dur = |flag: &str, v: &str| {
                parse_duration(v)
                    .map(|d| d.as_micros() as i64)
                    .map_err(|e| Error::Usage(format!("--{flag}: {e}")))
            };
            let now = crate::query::now(now.as_deref())?;
            let library = crate::run::macros(macros.as_deref())?;
            let rules = crate::follow::pack::load(&dir, &library)?;
            let report = runtime()?.block_on(crate::detect::detect(
                &settings.archive,
                rules,
                crate::query::Clock::utc(now),
                dur("since", &since)?,
                dur("lateness", &lateness)?,
            ))?;
            let format = format.unwrap_or(if std::io::stdout().is_terminal() {
                crate::detect::Format::Table
            } else {
                crate::detect::Format::Csv
            });
            let text = crate::detect::render(&report, format, settings.color_out)?;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|source| Error::Io {
                    what: "writing output".into(),
                    source,
                })
        }
        Command::Explain {
            query,
            now,
            analyze,
            errors: _,
            cluster,
        } => {
            let now = crate::query::now(now.as_deref())?;
            let expanded = crate::run::expand(macros.as_deref(), &query)?;
            let text = runtime()?
                .block_on(crate::query::explain(
                    &settings.archive.clone().with_cluster(cluster),
                    &expanded.text,
                    crate::query::Clock::utc(now),
                    analyze,
                ))
                .map_err(|e| crate::run::restore(&expanded, e))?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).map_err(|source| Error::Io {
                what: "writing output".into(),
                source,
            })
        }
        Command::Follow {
            query,
            rules,
            org,
            stdin,
            file,
            follow_file,
            sink,
            state,
            lateness,
            poll,
            since,
            api_url,
            token_file,
            page_size,
            queue,
            rotate_bytes,
            checkpoint_every,
            now,
            errors: _,
        } => {
            let dur = |flag: &str, v: &str| {
                parse_duration(v).map_err(|e| Error::Usage(format!("--{flag}: {e}")))
            };
            let org = match (org, stdin, &file) {
                (None, false, None) => Some(settings.org(None)?),
                (org, _, _) => org,
            };
            let from = match (org, stdin, file) {
                (Some(org), _, _) => {
                    let limits = crate::api::client::Limits::default();
                    crate::follow::From::Api(crate::follow::source::Api {
                        api: crate::pipeline::api::Api {
                            org,
                            api_url,
                            token: crate::run::api_token(token_file.as_deref())?,
                            page_size: page_size.clamp(1, 500),
                            limits,
                        },
                        poll: dur("poll", &poll)?,
                    })
                }
                (None, true, _) => crate::follow::From::Stdin,
                (None, false, Some(path)) => crate::follow::From::File {
                    path,
                    follow: follow_file,
                },
                (None, false, None) => {
                    return Err(Error::Usage("give --org, --stdin or --file".into()));
                }
            };
            let sinks = sink
                .iter()
                .map(|s| crate::follow::sink::Spec::parse(s))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::Usage)?;
            let hec_token = std::env::var("SPLUNK_HEC_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(crate::api::client::Secret::new);
            let dead_letter = state
                .clone()
                .unwrap_or_else(|| crate::run::data_dir().join("follow"))
                .join("dead-letter.ndjson");
            let library = crate::run::macros(macros.as_deref())?;
            let query = query.unwrap_or_default();
            let expanded = library
                .expand(&query)
                .map_err(|d| Error::rejected(&query, d))?;
            let rules = match rules {
                Some(dir) => crate::follow::pack::load(&dir, &library)?,
                None => Vec::new(),
            };
            let opts = crate::follow::Options {
                query: expanded.text.clone(),
                rules,
                from,
                sinks,
                sink: crate::follow::sink::Options {
                    queue,
                    http_batch: 500,
                    rotate_bytes,
                    keep: 5,
                    hec_token,
                    compact: std::io::stdout().is_terminal(),
                    dead_letter,
                    backoff_base: std::time::Duration::from_millis(500),
                    backoff_cap: std::time::Duration::from_secs(30),
                },
                // --archive (or AUDITQ_ARCHIVE) given: every event read is archived too.
                archive: archive_given.then(|| settings.archive.clone()),
                state,
                lateness: dur("lateness", &lateness)?,
                since: dur("since", &since)?,
                overlap: std::time::Duration::from_secs(600),
                checkpoint_every: dur("checkpoint-every", &checkpoint_every)?,
                now: crate::query::now(now.as_deref())?,
                shutdown_grace: std::time::Duration::from_millis(4500),
            };
            let report = runtime()?
                .block_on(crate::follow::follow(opts))
                .map_err(|e| crate::run::restore(&expanded, e))?;
            if !settings.quiet {
                eprintln!("{}", report.summary());
            }
            if report.undelivered {
                return Err(crate::follow::error::Error::Undelivered.into());
            }
            Ok(())
        }
        Command::Fields { json } => fields(json),
        Command::Repl { now } => {
            let now = now.or_else(|| std::env::var("AUDITQ_NOW").ok().filter(|s| !s.is_empty()));
            crate::repl::run(
                settings.archive.clone(),
                settings.s3.clone(),
                now.as_deref(),
                settings.color_out,
                crate::run::macros(macros.as_deref())?,
            )
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "auditq", &mut out);
            write_stdout(&out)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Args::command())
                .render(&mut out)
                .map_err(|source| Error::Io {
                    what: "rendering the manual page".into(),
                    source,
                })?;
            write_stdout(&out)
        }
    }
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

/// `auditq fields [--json]`.
fn fields(json: bool) -> Result<()> {
    let fields = crate::query::fields::FIELDS;
    if json {
        let list: Vec<serde_json::Value> = fields
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "type": f.type_name(),
                    "aliases": f.aliases,
                    "about": f.about,
                })
            })
            .collect();
        return say_json(&list);
    }
    let mut lines = String::new();
    for f in fields {
        let aliases = if f.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also {})", f.aliases.join(", "))
        };
        lines.push_str(&format!(
            "{:<16} {:<34} {}{aliases}\n",
            f.name,
            f.type_name(),
            f.about
        ));
    }
    say(lines.trim_end())
}

fn run_query(
    settings: &Settings,
    text: &crate::lang::macros::Expanded,
    format: Option<crate::query::output::Format>,
    output: Option<PathBuf>,
    all: bool,
    now: Option<&str>,
    style: crate::diag::Style,
) -> Result<()> {
    use crate::query::output::{Dest, Format, Screen};
    let now = crate::query::now(now)?;
    let terminal = output.is_none() && std::io::stdout().is_terminal();
    let format = match (format, &output) {
        (Some(f), _) => f,
        (None, Some(path)) => Format::from_path(path).map_err(Error::Usage)?,
        (None, None) if terminal => Format::Table,
        (None, None) => Format::Csv,
    };
    // On a terminal: the screen's width, and a screenful of rows unless --all.
    let screen = if terminal {
        let (width, height) = crate::run::screen_size();
        Screen {
            width: Some(width),
            max_rows: (!all).then_some(height.saturating_sub(7).max(10)),
            bars: false,
            color: settings.color_out,
        }
    } else {
        Screen::default()
    };
    let view = crate::run::View {
        format,
        dest: output.clone().map_or(Dest::Stdout, Dest::File),
        screen,
        warn: !settings.quiet,
        style,
        color: settings.color_err,
    };
    let outcome = runtime()?.block_on(crate::run::run_query(
        &settings.archive,
        text,
        crate::query::Clock::utc(now),
        &view,
    ))?;
    let (rows, shown) = (outcome.written.rows, outcome.written.shown);
    if format == Format::Table && output.is_none() {
        let plural = if rows == 1 { "" } else { "s" };
        let line = if shown < rows {
            format!(
                "{rows} row{plural}, {shown} shown: --all prints every row, -o FILE writes them to a file"
            )
        } else {
            format!("{rows} row{plural}")
        };
        say(&line)?;
    }
    Ok(())
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

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|source| Error::Io {
        what: "writing output".into(),
        source,
    })
}

fn generate(
    events: u64,
    days: u32,
    end: Option<String>,
    seed: u64,
    output: Option<PathBuf>,
) -> Result<()> {
    let end_micros = match end {
        Some(text) => crate::event::parse_time(&text).ok_or_else(|| {
            Error::Usage(format!(
                "--end: `{text}` is not a time (expected RFC 3339, e.g. 2026-11-01T00:00:00Z)"
            ))
        })?,
        None => chrono::Utc::now().timestamp() * 1_000_000,
    };
    let mut generator = Generator::new(Config::new(events, days, end_micros, seed));
    let werr = |source| Error::Io {
        what: "writing events".into(),
        source,
    };
    match output {
        Some(path) => {
            generator.write_ndjson(&mut create(&path)?).map_err(werr)?;
        }
        None => {
            generator
                .write_ndjson(&mut std::io::stdout().lock())
                .map_err(werr)?;
        }
    }
    Ok(())
}

#[cfg(feature = "cluster")]
fn cluster(settings: &Settings, role: ClusterCommand) -> Result<()> {
    let s3 = settings.s3.clone();
    let rt = runtime()?;
    match role {
        ClusterCommand::Scheduler { bind } => {
            if !settings.quiet {
                eprintln!("auditq cluster scheduler on {bind}");
            }
            rt.block_on(crate::cluster::scheduler(&bind, s3))?
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            port,
            grpc_port,
            vcores,
        } => {
            if !settings.quiet {
                eprintln!("auditq cluster executor on {bind}:{port} for {scheduler}");
            }
            rt.block_on(crate::cluster::executor(
                &scheduler, &bind, port, grpc_port, vcores, s3,
            ))?
        }
    }
    Ok(())
}

#[cfg(not(feature = "cluster"))]
fn cluster(_: &Settings, _: ClusterCommand) -> Result<()> {
    Err(Error::Usage(
        "this auditq was built without the `cluster` feature (cargo build --features cluster)"
            .into(),
    ))
}

fn archive(settings: &Settings, action: ArchiveCommand) -> Result<()> {
    let archive = &settings.archive;
    let rt = runtime()?;
    match action {
        ArchiveCommand::Stats { json: as_json, top } => {
            let stats = rt.block_on(maintain::stats(archive, top))?;
            if as_json {
                return say_json(&stats);
            }
            let mut lines = vec![
                format!("archive      {}", stats.archive),
                format!("version      {}", stats.version),
                format!(
                    "events       {} ({} distinct ids)",
                    stats.events, stats.distinct_ids
                ),
                format!("days         {}", stats.days),
                format!("first        {}", stats.first.as_deref().unwrap_or("-")),
                format!("last         {}", stats.last.as_deref().unwrap_or("-")),
                format!(
                    "files        {} ({})",
                    stats.files,
                    human_bytes(stats.bytes)
                ),
                format!(
                    "quarantine   {} invalid, {} conflicting duplicates",
                    stats.quarantined_invalid, stats.quarantined_conflicts
                ),
                "top actions".to_owned(),
            ];
            lines.extend(
                stats
                    .top_actions
                    .iter()
                    .map(|(a, n)| format!("  {n:>10}  {a}")),
            );
            say(&lines.join("\n"))
        }
        ArchiveCommand::Verify { json: as_json } => {
            let report = rt.block_on(maintain::verify(archive))?;
            if as_json {
                say_json(&report)?;
            } else if report.problems.is_empty() {
                say(&format!(
                    "ok: version {}, {} files, {} events, every id once",
                    report.version, report.files, report.rows
                ))?;
            } else {
                for p in &report.problems {
                    eprintln!(
                        "problem: {}: {}",
                        p.file.as_deref().unwrap_or("archive"),
                        p.what
                    );
                }
            }
            match report.problems.len() {
                0 => Ok(()),
                n => Err(Error::VerifyFailed { problems: n }),
            }
        }
        ArchiveCommand::Compact => {
            let r = rt.block_on(maintain::compact(archive))?;
            if !settings.quiet {
                say(&match r.days_compacted {
                    0 => format!(
                        "nothing to compact: every day is one file (version {})",
                        r.version
                    ),
                    d => format!(
                        "compacted {d} days: {} files -> {} files (version {})",
                        r.files_removed, r.files_added, r.version
                    ),
                })?;
            }
            Ok(())
        }
        ArchiveCommand::Repair { json: as_json } => {
            let r = rt.block_on(crate::archive::repair::repair(archive))?;
            if as_json {
                say_json(&r)?;
            } else if !settings.quiet {
                say(&match r.copies_removed {
                    0 => format!(
                        "nothing to repair: every id is archived once (version {})",
                        r.version
                    ),
                    n => format!(
                        "removed {n} later copies of {} ids from {} files (version {}); the copies are in quarantine/conflict/",
                        r.ids, r.files_rewritten, r.version
                    ),
                })?;
            }
            Ok(())
        }
        ArchiveCommand::Vacuum {
            older_than,
            dry_run,
            force,
        } => {
            let age = parse_duration(&older_than)
                .map_err(|e| Error::Usage(format!("--older-than: {e}")))?;
            let r = rt.block_on(maintain::vacuum(archive, age, dry_run, force))?;
            if !settings.quiet {
                say(&vacuum_summary(&r, dry_run, settings.verbose > 0))?;
            }
            Ok(())
        }
    }
}

/// What `archive vacuum` says it did (or would do, in a dry run).
fn vacuum_summary(r: &maintain::VacuumReport, dry_run: bool, verbose: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines = vec![format!(
        "{verb} {} unreferenced files",
        r.files_deleted.len()
    )];
    if r.stale_leases > 0 {
        let verb = if dry_run { "would remove" } else { "removed" };
        lines.push(format!(
            "{verb} {} leases of writers that died over 24 hours ago",
            r.stale_leases
        ));
    }
    if !r.writers_in_flight.is_empty() {
        let who: Vec<String> = r
            .writers_in_flight
            .iter()
            .map(|w| format!("{} (pid {})", w.what, w.pid))
            .collect();
        lines.push(format!(
            "kept every file written since the oldest of {} writers in flight began: {}",
            who.len(),
            who.join(", ")
        ));
    }
    if verbose || dry_run {
        lines.extend(r.files_deleted.iter().map(|f| format!("  {f}")));
    }
    lines.join("\n")
}

/// Print a report as pretty JSON.
fn say_json(report: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|source| Error::Encode {
        what: "the report",
        source,
    })?;
    say(&text)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
