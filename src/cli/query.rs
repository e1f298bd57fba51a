//! `auditq query`, `auditq explain`, `auditq fields`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::lang::macros::Expanded;
use crate::query::output::{Dest, Format, Screen};
use crate::run::{Settings, View};

#[derive(Debug, clap::Args)]
pub struct Args {
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
    format: Option<Format>,
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
    pub errors: super::ErrorsArg,
    /// Run it on the Ballista cluster whose scheduler is at HOST:PORT (`cluster`
    /// feature; the archive must be on S3)
    #[arg(long, value_name = "HOST:PORT")]
    cluster: Option<String>,
    /// Answer from an earlier version of the archive: a version number (`archive
    /// history`) or a time (RFC 3339, or YYYY-MM-DD in UTC): the last version committed
    /// by then
    #[arg(long, value_name = "VERSION|TIME")]
    as_of: Option<String>,
    /// Write an evidence bundle to DIR: the result (result.EXT in --format, default
    /// ndjson), an inclusion proof per result row that is an event, the checkpoint, the
    /// verifier key and how to check them offline
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    evidence: Option<PathBuf>,
    /// The verifier key for --evidence (`name+id+base64` or a file holding it); default:
    /// the configured signing key's
    #[arg(long, value_name = "KEY", requires = "evidence")]
    verifier_key: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[arg(value_name = "QUERY", allow_hyphen_values = true)]
    query: String,
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Also run the query and show each operator's metrics (rows, time, files and
    /// row groups pruned).
    #[arg(long)]
    analyze: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub errors: super::ErrorsArg,
    /// Plan it for the Ballista cluster at HOST:PORT and show the distributed stages
    #[arg(long, value_name = "HOST:PORT")]
    cluster: Option<String>,
    /// Answer from an earlier version of the archive: a version number (`archive
    /// history`) or a time (RFC 3339, or YYYY-MM-DD in UTC): the last version committed
    /// by then
    #[arg(long, value_name = "VERSION|TIME")]
    as_of: Option<String>,
}

/// The query's text: as given, from a file (`-`: standard input), or saved.
fn text(args: &Args) -> Result<String> {
    match (&args.query, &args.file, &args.saved) {
        (Some(q), _, _) => Ok(q.clone()),
        (None, Some(path), _) if path == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
                Error::Io {
                    what: "reading the query from standard input".into(),
                    source,
                }
            })?;
            Ok(text)
        }
        (None, Some(path), _) => std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: format!("reading `{path}`"),
            source,
        }),
        (None, None, Some(name)) => crate::run::saved_query(name),
        (None, None, None) => Err(Error::Usage("give a query, --file or --saved".into())),
    }
}

/// How the result is shown: the format (from --format, -o's extension, or whether
/// stdout is a terminal), the destination, the screen.
fn view(settings: &Settings, args: &Args) -> Result<View> {
    let to_file = args.output.is_some() || args.evidence.is_some();
    let terminal = !to_file && std::io::stdout().is_terminal();
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, None) if args.evidence.is_some() => Format::Ndjson,
        (None, Some(path)) => Format::from_path(path).map_err(Error::Usage)?,
        (None, None) if terminal => Format::Table,
        (None, None) => Format::Csv,
    };
    // On a terminal: the screen's width, and a screenful of rows unless --all.
    let screen = if terminal {
        let (width, height) = crate::run::screen_size();
        Screen {
            width: Some(width),
            max_rows: (!args.all).then_some(height.saturating_sub(7).max(10)),
            bars: false,
            color: settings.color_out,
        }
    } else {
        Screen::default()
    };
    Ok(View {
        format,
        dest: args.output.clone().map_or(Dest::Stdout, Dest::File),
        screen,
        warn: !settings.quiet,
        style: args.errors.into(),
        color: settings.color_err,
    })
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let text: Expanded = crate::run::expand(settings.macros.as_deref(), &text(&args)?)?;
    let now = crate::run::now(args.now.as_deref())?;
    let view = view(settings, &args)?;
    let archive = super::as_of(settings, args.as_of.as_deref())?.with_cluster(args.cluster);
    let clock = crate::query::Clock::utc(now);
    if let Some(dir) = &args.evidence {
        return evidence(
            settings,
            &archive,
            &text,
            clock,
            view,
            dir,
            args.verifier_key.as_deref(),
        );
    }
    let run = crate::run::run_query(&archive, &text, clock, &view);
    let outcome = super::runtime()?.block_on(run)?;
    let (rows, shown) = (outcome.written.rows, outcome.written.shown);
    if view.format == Format::Table && args.output.is_none() {
        let plural = if rows == 1 { "" } else { "s" };
        let line = if shown < rows {
            format!(
                "{rows} row{plural}, {shown} shown: --all prints every row, -o FILE writes them to a file"
            )
        } else {
            format!("{rows} row{plural}")
        };
        super::say(&line)?;
    }
    Ok(())
}

/// `query --evidence DIR`.
fn evidence(
    settings: &Settings,
    archive: &crate::archive::Archive,
    text: &Expanded,
    clock: crate::query::Clock,
    view: View,
    dir: &std::path::Path,
    verifier_key: Option<&str>,
) -> Result<()> {
    let verifier = match verifier_key {
        Some(key) => super::archive::verifier(key)?,
        None => archive.signer().map(|s| s.verifier()).ok_or_else(|| {
            Error::Usage(
                "--evidence needs the verifier key: --verifier-key KEY, or a configured signing key".into(),
            )
        })?,
    };
    let run = crate::run::run_query_with_evidence(archive, text, clock, &view, dir, &verifier);
    let bundle = super::runtime()?.block_on(run)?;
    if !settings.quiet {
        super::say(&format!(
            "wrote {} rows to {} and {} proofs, the checkpoint, the verifier key and a README to {}",
            bundle.outcome.written.rows,
            bundle.result.display(),
            bundle.proofs,
            dir.display()
        ))?;
    }
    Ok(())
}

pub fn explain(settings: &Settings, args: ExplainArgs) -> Result<()> {
    let now = crate::run::now(args.now.as_deref())?;
    let expanded = crate::run::expand(settings.macros.as_deref(), &args.query)?;
    let archive = super::as_of(settings, args.as_of.as_deref())?.with_cluster(args.cluster);
    let clock = crate::query::Clock::utc(now);
    let text = super::runtime()?
        .block_on(crate::query::explain(
            &archive,
            &expanded.text,
            clock,
            args.analyze,
        ))
        .map_err(|e| crate::run::restore(&expanded, e))?;
    let text = match archive.read_version() {
        Some(v) => format!("As of version {v}\n\n{text}"),
        None => text,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(|source| Error::Io {
        what: "writing output".into(),
        source,
    })
}

/// `auditq fields [--json]`.
pub fn fields(json: bool) -> Result<()> {
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
        return super::say_json(&list);
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
    super::say(lines.trim_end())
}
