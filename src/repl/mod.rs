//! `auditq repl`: the analyst's prompt. Every query goes through [`crate::query::run`],
//! the path `auditq query` takes; the prompt only adds editing, meta commands and a
//! screen-sized view of the result.

pub mod helper;
pub mod values;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono_tz::Tz;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, EditMode, Editor};

use crate::Error as AnyError;
use crate::archive::Archive;
use crate::error::Prompt as Error;
use crate::error::Result;
use crate::query::output::{Dest, Format, Screen};
use crate::query::{self, Clock};
use helper::ReplHelper;
use values::Values;

const PROMPT: &str = "auditq> ";

const HELP: &str = "\
Type a query and press Enter; a line ending in `|` or with an open `(` or quote goes on.
  actor = \"alice@example.com\" and event ~ \"user_*\" since 7d | count by event
  \"delete\" last 24h | top 10 actor
Tab completes fields, stages (after `|`), units (`since 7<Tab>`) and values
(`event ~ \"user_<Tab>`, `actor:<Tab>`, `country = <Tab>`). Ctrl-R searches history.
Ctrl-C cancels a running query or clears the line; Ctrl-D quits.

  .help                   this text
  .fields                 the fields, their types and an example each
  .actions [GLOB]         the archive's actions with their counts
  .format table|csv|json|ndjson
  .output FILE | .output  write results to FILE (format from its extension) / the screen
  .timing on|off          row count and elapsed time after each result
  .explain QUERY          how QUERY runs (plans, pruning, SQL)
  .archive DIR|URL        query another archive (a path or s3://bucket/prefix)
  .cluster HOST:PORT | .cluster  run queries on a Ballista cluster / here again
  .as-of VERSION|TIME | .as-of   answer from an earlier version of the archive / the latest
  .now TIME | .now        fix \"now\" for relative times / back to the clock
  .tz ZONE | .tz          the zone of dates and `@d` snapping / back to UTC
  .save NAME [QUERY]      save QUERY (default: the last one) as NAME
  .run NAME | .run        run a saved query / list them
  .quit                   leave (also .exit, Ctrl-D)";

/// The REPL's state between lines.
struct Repl {
    archive: Archive,
    format: Format,
    output: Option<PathBuf>,
    timing: bool,
    now: Option<i64>,
    tz: Tz,
    last: Option<String>,
    rt: tokio::runtime::Runtime,
    values: Arc<Mutex<Values>>,
    color: bool,
    /// How `.archive s3://…` reaches S3.
    s3: crate::archive::store::S3Options,
    /// The macros file's, then those of `let` lines typed here.
    macros: crate::lang::macros::Library,
}

/// Run the prompt until `.quit` or Ctrl-D; `color` for the screen.
pub fn run(
    archive: Archive,
    s3: crate::archive::store::S3Options,
    now: Option<&str>,
    color: bool,
    macros: crate::lang::macros::Library,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| AnyError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    let values = Arc::new(Mutex::new(Values::new(
        archive.clone(),
        rt.handle().clone(),
    )));
    let mut repl = Repl {
        archive,
        format: Format::Table,
        output: None,
        timing: true,
        now: now.map(|t| crate::run::now(Some(t))).transpose()?,
        tz: Tz::UTC,
        last: None,
        rt,
        values: values.clone(),
        color,
        s3,
        macros,
    };
    let config = Config::builder()
        .edit_mode(EditMode::Emacs)
        .completion_type(CompletionType::List)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .map_err(Error::Setup)?
        .max_history_size(10_000)
        .map_err(Error::Setup)?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ReplHelper, FileHistory> =
        Editor::with_config(config).map_err(Error::Setup)?;
    editor.set_helper(Some(ReplHelper::new(values, color)));
    let history = history_path();
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.load_history(&history);
    println!(
        "auditq {} — archive {}. `.help` for help, Ctrl-D to leave.",
        env!("CARGO_PKG_VERSION"),
        repl.archive.root().display()
    );
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if !is_secret(line) {
                    let _ = editor.add_history_entry(line);
                    let _ = editor.append_history(&history);
                }
                match repl.line(line) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => repl.show_error(&e),
                }
                repl.values
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forget(None);
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Read(e).into()),
        }
    }
    Ok(())
}

/// Lines that look like they carry a secret are never written to the history.
fn is_secret(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    [
        "token", "api_key", "api-key", "apikey", "secret", "password", "passwd", "bearer",
    ]
    .iter()
    .any(|w| {
        lower.match_indices(w).any(|(i, _)| {
            lower[i + w.len()..].trim_start().starts_with(['=', ':']) || *w == "bearer"
        })
    })
}

/// `$XDG_DATA_HOME/auditq/history`.
fn history_path() -> PathBuf {
    crate::paths::data_dir().join("history")
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> AnyError {
    move |source| AnyError::Io { what, source }
}

impl Repl {
    /// Handle one line; `false` means leave.
    fn line(&mut self, line: &str) -> Result<bool> {
        if let Some(meta) = line.strip_prefix('.') {
            let (cmd, arg) = meta
                .split_once(char::is_whitespace)
                .map_or((meta, ""), |(c, a)| (c, a.trim()));
            return self.meta(cmd, arg);
        }
        // `let NAME = …;` lines define macros for the rest of the session; a query
        // may follow them on the same line.
        let rest = self
            .macros
            .add_statements("the REPL", line)
            .map_err(|d| AnyError::rejected(line, d))?;
        if line[rest..].trim().is_empty() {
            return Ok(true);
        }
        self.query(line)?;
        self.last = Some(line.to_owned());
        Ok(true)
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self
                .now
                .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
            tz: self.tz,
        }
    }

    fn show_error(&self, e: &AnyError) {
        match e {
            AnyError::BadQuery(r) => {
                eprint!("{}", crate::diag::render(&r.src, &r.diags, self.color))
            }
            e => eprintln!("error: {}", e.render()),
        }
    }

    /// Run a query; Ctrl-C cancels it.
    fn query(&mut self, text: &str) -> Result<()> {
        let started = Instant::now();
        let clock = self.clock();
        let (width, height) = crate::run::screen_size();
        let view = match &self.output {
            Some(path) => crate::run::View {
                format: match Format::from_path(path) {
                    Ok(f) => f,
                    Err(_) => self.format,
                },
                dest: Dest::File(path.clone()),
                screen: Screen::default(),
                warn: true,
                style: crate::diag::Style::Text,
                color: self.color,
            },
            None => crate::run::View {
                format: self.format,
                dest: Dest::Stdout,
                screen: Screen {
                    width: Some(width),
                    max_rows: Some(height.saturating_sub(8).max(10)),
                    bars: false,
                    color: self.color,
                },
                warn: true,
                style: crate::diag::Style::Text,
                color: self.color,
            },
        };
        // On a task of its own, so that Ctrl-C returns to the prompt at once even while
        // the query is planning (CPU work that does not yield); the task is aborted.
        let expanded = self
            .macros
            .expand(text)
            .map_err(|d| AnyError::rejected(text, d))?;
        let (archive, owned) = (self.archive.clone(), expanded);
        let interrupted = crate::pipeline::interrupted();
        let outcome = self.rt.block_on(async move {
            let mut task =
                tokio::spawn(
                    async move { crate::run::run_query(&archive, &owned, clock, &view).await },
                );
            tokio::select! {
                outcome = &mut task => Some(outcome),
                _ = interrupted => {
                    task.abort();
                    None
                }
            }
        });
        let outcome = match outcome {
            None => {
                eprintln!("cancelled");
                return Ok(());
            }
            Some(Err(e)) => return Err(Error::Stopped(e).into()),
            Some(Ok(outcome)) => outcome?,
        };
        let elapsed = started.elapsed();
        let (rows, shown) = (outcome.written.rows, outcome.written.shown);
        if let Some(path) = &self.output {
            println!("wrote {rows} rows to {}", path.display());
            return Ok(());
        }
        if shown < rows {
            println!(
                "… {} more rows not shown ({rows} in all): `.output FILE` writes them all, `| head N` asks for fewer",
                rows - shown
            );
        }
        if self.timing && self.format == Format::Table {
            let mut footer = format!(
                "{rows} row{} in {:.3} s",
                if rows == 1 { "" } else { "s" },
                elapsed.as_secs_f64()
            );
            if let Some((start, end)) = outcome.covers {
                footer.push_str(&format!(" · {}", covered(start, end, clock.now)));
            }
            println!("{footer}");
        } else if self.timing {
            let plural = if rows == 1 { "" } else { "s" };
            eprintln!("{rows} row{plural} in {:.3} s", elapsed.as_secs_f64());
        }
        Ok(())
    }

    fn meta(&mut self, cmd: &str, arg: &str) -> Result<bool> {
        match cmd {
            "quit" | "exit" | "q" => return Ok(false),
            "help" | "h" | "?" => println!("{HELP}"),
            "fields" => self.fields()?,
            "actions" => self.actions(arg)?,
            "format" if arg.is_empty() => println!("format: {:?}", self.format),
            "format" => {
                self.format = Format::named(arg).filter(|f| f.is_text()).ok_or_else(|| {
                    let names = Format::text_names();
                    AnyError::Usage(format!("`{arg}` is not a format: {names}"))
                })?;
                println!("format: {arg}");
            }
            "output" | "o" => {
                let path = PathBuf::from(arg);
                // A file without an extension takes `.format`; an extension auditq does
                // not write is refused, never written in another format.
                if path.extension().is_some() {
                    Format::from_path(&path).map_err(AnyError::Usage)?;
                }
                self.output = (!arg.is_empty()).then_some(path);
                match &self.output {
                    Some(p) => println!("results go to {}", p.display()),
                    None => println!("results go to the screen"),
                }
            }
            "timing" => {
                self.timing = match arg {
                    "on" => true,
                    "off" => false,
                    _ => return Err(AnyError::Usage("`.timing on` or `.timing off`".into())),
                }
            }
            "explain" => {
                if arg.is_empty() {
                    return Err(AnyError::Usage("`.explain QUERY`".into()));
                }
                let clock = self.clock();
                let text = self
                    .rt
                    .block_on(query::explain(&self.archive, arg, clock, false))?;
                print!("{text}");
            }
            "archive" => self.switch_archive(arg)?,
            "cluster" => {
                let scheduler = (!arg.is_empty()).then(|| arg.to_owned());
                self.archive = self.archive.clone().with_cluster(scheduler);
                match self.archive.cluster() {
                    Some(at) => println!("queries run on the cluster at {at}"),
                    None => println!("queries run here"),
                }
            }
            "as-of" => {
                let version = match arg {
                    "" | "off" => None,
                    given => Some(crate::archive::history::resolve(&self.archive, given)?),
                };
                self.archive = self.archive.clone().as_of(version);
                match version {
                    Some(v) => println!("queries answer as of version {v}"),
                    None => println!("queries answer from the latest version"),
                }
            }
            "now" => {
                self.now = if arg.is_empty() {
                    None
                } else {
                    Some(crate::run::now(Some(arg))?)
                };
                println!(
                    "now: {}",
                    match self.now {
                        Some(t) => crate::event::format_time(t),
                        None => "the clock".to_owned(),
                    }
                );
            }
            "tz" => {
                self.tz = if arg.is_empty() {
                    Tz::UTC
                } else {
                    arg.trim_matches('"').parse::<Tz>().map_err(|_| {
                        AnyError::Usage(format!(
                            "`{arg}` is not a time zone (e.g. Europe/Berlin, UTC)"
                        ))
                    })?
                };
                println!("tz: {}", self.tz.name());
            }
            "save" => self.save(arg)?,
            "run" if arg.is_empty() => self.list_saved()?,
            "run" => self.run_saved(arg)?,
            other => {
                let names = helper::META.iter().map(|m| &m[1..]);
                let hint = crate::diag::did_you_mean(other, names)
                    .map(|m| format!(": did you mean `.{m}`?"))
                    .unwrap_or_default();
                return Err(AnyError::Usage(format!(
                    "`.{other}` is not a command{hint} (`.help` lists them)"
                )));
            }
        }
        Ok(true)
    }

    /// `.archive [DIR|URL]`: show the archive, or query another (on the same cluster).
    fn switch_archive(&mut self, arg: &str) -> Result<()> {
        if !arg.is_empty() {
            let cluster = self.archive.cluster().map(str::to_owned);
            self.archive =
                crate::run::archive_location(PathBuf::from(arg), &self.s3)?.with_cluster(cluster);
            self.values
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget(Some(self.archive.clone()));
        }
        println!("archive: {}", self.archive.root().display());
        Ok(())
    }

    /// `.run NAME`: the saved query, shown, then run.
    fn run_saved(&mut self, name: &str) -> Result<()> {
        let path = crate::run::saved_path(name)?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AnyError::Usage(format!("no saved query `{name}` (`.run` lists them)"))
            } else {
                AnyError::Io {
                    what: format!("reading `{}`", path.display()),
                    source: e,
                }
            }
        })?;
        let text = text.trim().to_owned();
        println!("{text}");
        self.query(&text)?;
        self.last = Some(text);
        Ok(())
    }

    fn fields(&self) -> Result<()> {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(["field", "type", "also", "example", "about"]);
        for f in query::fields::FIELDS {
            t.add_row([
                f.name.to_owned(),
                f.type_name().to_owned(),
                f.aliases.join(", "),
                example(f.name),
                f.about.to_owned(),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    fn actions(&self, glob: &str) -> Result<()> {
        let (_, summary) = self.rt.block_on(query::open(&self.archive))?;
        let summary = summary.unwrap_or_default();
        let matcher = match glob.trim_matches('"') {
            "" => None,
            g => match query::udf::glob_regex(g) {
                Ok(re) => Some(re),
                Err(e) => {
                    println!("not a usable pattern: {e}");
                    return Ok(());
                }
            },
        };
        let mut actions: Vec<(&String, &u64)> = summary
            .actions
            .iter()
            .filter(|(a, _)| matcher.as_ref().is_none_or(|m| m.is_match(a)))
            .collect();
        actions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(["action", "events"]);
        for (a, n) in &actions {
            t.add_row([a.to_string(), n.to_string()]);
        }
        println!("{t}");
        println!("{} actions", actions.len());
        Ok(())
    }

    fn save(&self, arg: &str) -> Result<()> {
        let (name, text) = arg
            .split_once(char::is_whitespace)
            .map_or((arg, None), |(n, q)| (n, Some(q.trim())));
        let text = match text.or(self.last.as_deref()) {
            Some(t) => t,
            None => {
                return Err(AnyError::Usage(
                    "`.save NAME QUERY` (no query ran yet)".into(),
                ));
            }
        };
        // Refuse what does not parse: a saved query should run.
        crate::lang::parse(text).map_err(|d| AnyError::rejected(text, d))?;
        let path = crate::run::saved_path(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(io_err(format!("creating `{}`", dir.display())))?;
        }
        std::fs::write(&path, format!("{text}\n"))
            .map_err(io_err(format!("writing `{}`", path.display())))?;
        println!("saved `{name}`: {text}");
        Ok(())
    }

    fn list_saved(&self) -> Result<()> {
        let dir = crate::run::saved_dir()?;
        let mut names: Vec<(String, String)> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "aq"))
                .map(|p| (stem(&p), std::fs::read_to_string(&p).unwrap_or_default()))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        if names.is_empty() {
            println!("no saved queries yet (`.save NAME` saves the last query)");
        }
        for (name, text) in names {
            println!("{name:<16} {}", text.trim());
        }
        Ok(())
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// "2026-08-28 → 2026-11-26 (90 days ago → today)".
fn covered(start: i64, end: i64, now: i64) -> String {
    let day = |t: i64| crate::event::format_time(t)[..10].to_owned();
    let last = end - 1;
    format!(
        "{} → {} ({} → {})",
        day(start),
        day(last),
        ago(start, now),
        ago(last, now)
    )
}

/// How long before `now` `t` is, in words.
fn ago(t: i64, now: i64) -> String {
    let secs = (now - t) / 1_000_000;
    let days = secs.div_euclid(86_400);
    match secs {
        s if s < 0 => "in the future".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        _ if days == 1 => "yesterday".to_owned(),
        _ => format!("{days} days ago"),
    }
}

/// An example filter on a field.
fn example(name: &str) -> String {
    match name {
        "time" => "time >= 2026-02-16T08:00:00Z".into(),
        "processed_at" => "processed_at > 2026-02-16".into(),
        "id" => "id = \"3c1f…\"".into(),
        "action" => "action ~ \"user_*\"".into(),
        "actor" => "actor:alice*".into(),
        "actor.email" => "actor.email ~ \"*@example.com\"".into(),
        "ip" => "ip in 10.0.0.0/8".into(),
        "country" => "country != \"Germany\"".into(),
        "message" => "message ~ /password/".into(),
        "context" | "container" => format!("{name} ~ \"engineering*\""),
        "auth" => "auth = \"api-token\"".into(),
        other => format!("has {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.help` names the formats `.format` takes.
    #[test]
    fn help_lists_the_text_formats() {
        let names: Vec<&str> = (Format::ALL.into_iter())
            .filter(|f| f.is_text())
            .map(Format::name)
            .collect();
        assert!(HELP.contains(&format!(".format {}\n", names.join("|"))));
    }

    #[test]
    fn secrets_are_recognised() {
        assert!(is_secret("token = abc"));
        assert!(is_secret(".set api_key: x"));
        assert!(is_secret("Authorization: Bearer abc"));
        assert!(!is_secret("actor = \"token-bot\" | count"));
        assert!(!is_secret("event ~ \"api_token_*\""));
    }

    #[test]
    fn relative_times_read_naturally() {
        let day = 86_400_000_000i64;
        let now = 100 * day;
        assert_eq!(ago(now - 30 * 60_000_000, now), "30 min ago");
        assert_eq!(ago(now - day, now), "yesterday");
        assert_eq!(ago(now - 90 * day, now), "90 days ago");
        assert!(covered(now - 2 * day, now, now).ends_with("(2 days ago → 0 min ago)"));
    }
}
