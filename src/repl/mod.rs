//! `auditq repl`: the analyst's prompt. Every query goes through [`crate::query::run`],
//! the path `auditq query` takes; the prompt only adds editing, meta commands and a
//! screen-sized view of the result.

pub mod helper;
pub mod values;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono_tz::Tz;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, EditMode, Editor};

use crate::archive::Archive;
use crate::error::{Error, Result};
use crate::query::output::{self, Format};
use crate::query::{self, Clock, ErrorStyle};
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
  .archive DIR            query another archive
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
}

/// Run the prompt until `.quit` or Ctrl-D.
pub fn run(archive: Archive, now: Option<&str>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let values = Arc::new(Mutex::new(Values::new(
        archive.clone(),
        rt.handle().clone(),
    )));
    let mut repl = Repl {
        archive,
        format: Format::Table,
        output: None,
        timing: true,
        now: now.map(|t| query::now(Some(t))).transpose()?,
        tz: Tz::UTC,
        last: None,
        rt,
        values: values.clone(),
    };
    let config = Config::builder()
        .edit_mode(EditMode::Emacs)
        .completion_type(CompletionType::List)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .map_err(|e| Error::Runtime(format!("setting up the prompt: {e}")))?
        .max_history_size(10_000)
        .map_err(|e| Error::Runtime(format!("setting up the prompt: {e}")))?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ReplHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| Error::Runtime(format!("setting up the prompt: {e}")))?;
    editor.set_helper(Some(ReplHelper::new(values, colour)));
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
            Err(e) => return Err(Error::Runtime(format!("reading input: {e}"))),
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
    crate::run::data_dir().join("history")
}

/// The saved queries' directory: `$XDG_CONFIG_HOME/auditq/queries`.
fn saved_dir() -> Result<PathBuf> {
    crate::run::config_dir()
        .map(|d| d.join("queries"))
        .ok_or_else(|| Error::Usage("no config directory: set HOME or XDG_CONFIG_HOME".into()))
}

fn saved_path(name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(Error::Usage(format!(
            "`{name}` is not a name for a saved query (letters, digits, `_` and `-`)"
        )));
    }
    Ok(saved_dir()?.join(format!("{name}.aq")))
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
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

    fn show_error(&self, e: &Error) {
        match e {
            Error::BadQuery(rendered) => eprint!("{rendered}"),
            e => eprintln!("error: {}", e.render()),
        }
    }

    /// Run a query; Ctrl-C cancels it.
    fn query(&mut self, text: &str) -> Result<()> {
        let started = Instant::now();
        let clock = self.clock();
        // On a task of its own, so that Ctrl-C returns to the prompt at once even while
        // the query is planning (CPU work that does not yield); the task is aborted.
        let (archive, owned) = (self.archive.clone(), text.to_owned());
        let answer = self.rt.block_on(async move {
            let mut task = tokio::spawn(async move {
                query::run(&archive, &owned, clock, ErrorStyle::Text, true).await
            });
            tokio::select! {
                answer = &mut task => Some(answer),
                _ = tokio::signal::ctrl_c() => {
                    task.abort();
                    None
                }
            }
        });
        let answer = match answer {
            None => {
                eprintln!("cancelled");
                return Ok(());
            }
            Some(Err(e)) => return Err(Error::Runtime(format!("the query stopped: {e}"))),
            Some(Ok(answer)) => answer?,
        };
        let elapsed = started.elapsed();
        if !answer.warnings.is_empty() {
            eprint!(
                "{}",
                query::render(text, &answer.warnings, ErrorStyle::Text)
            );
        }
        let rows: usize = answer.batches.iter().map(|b| b.num_rows()).sum();
        if let Some(path) = &self.output {
            let format = Format::from_path(path).unwrap_or(self.format);
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .map_err(io_err(format!("creating `{}`", path.display())))?,
            );
            output::write(&mut file, format, &answer.schema, &answer.batches, None)?;
            file.flush()
                .map_err(io_err(format!("writing `{}`", path.display())))?;
            println!("wrote {rows} rows to {}", path.display());
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let shown = if self.format == Format::Table {
            let (width, height) = screen();
            let fit = height.saturating_sub(8).max(10);
            output::write_fitted_table(&mut out, &answer.schema, &answer.batches, width, fit)?
        } else {
            output::write(&mut out, self.format, &answer.schema, &answer.batches, None)?;
            rows
        };
        out.flush().map_err(io_err("writing output".into()))?;
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
            if let Some((start, end)) = answer.covers {
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
            "format" => {
                self.format = match arg {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    "ndjson" => Format::Ndjson,
                    "" => {
                        println!("format: {:?}", self.format);
                        return Ok(true);
                    }
                    other => {
                        return Err(Error::Usage(format!(
                            "`{other}` is not a format: table, csv, json or ndjson"
                        )));
                    }
                };
                println!("format: {arg}");
            }
            "output" | "o" => {
                self.output = (!arg.is_empty()).then(|| PathBuf::from(arg));
                match &self.output {
                    Some(p) => println!("results go to {}", p.display()),
                    None => println!("results go to the screen"),
                }
            }
            "timing" => {
                self.timing = match arg {
                    "on" => true,
                    "off" => false,
                    _ => return Err(Error::Usage("`.timing on` or `.timing off`".into())),
                }
            }
            "explain" => {
                if arg.is_empty() {
                    return Err(Error::Usage("`.explain QUERY`".into()));
                }
                let clock = self.clock();
                let text = self.rt.block_on(query::explain(
                    &self.archive,
                    arg,
                    clock,
                    ErrorStyle::Text,
                    false,
                ))?;
                print!("{text}");
            }
            "archive" => {
                if arg.is_empty() {
                    println!("archive: {}", self.archive.root().display());
                } else {
                    self.archive = Archive::at(PathBuf::from(arg));
                    self.values
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .forget(Some(self.archive.clone()));
                    println!("archive: {}", self.archive.root().display());
                }
            }
            "now" => {
                self.now = if arg.is_empty() {
                    None
                } else {
                    Some(query::now(Some(arg))?)
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
                        Error::Usage(format!(
                            "`{arg}` is not a time zone (e.g. Europe/Berlin, UTC)"
                        ))
                    })?
                };
                println!("tz: {}", self.tz.name());
            }
            "save" => self.save(arg)?,
            "run" => {
                if arg.is_empty() {
                    self.list_saved()?;
                } else {
                    let path = saved_path(arg)?;
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Error::Usage(format!("no saved query `{arg}` (`.run` lists them)"))
                        } else {
                            Error::Io {
                                what: format!("reading `{}`", path.display()),
                                source: e,
                            }
                        }
                    })?;
                    let text = text.trim().to_owned();
                    println!("{text}");
                    self.query(&text)?;
                    self.last = Some(text);
                }
            }
            other => {
                let names = helper::META.iter().map(|m| &m[1..]);
                let hint = crate::diag::did_you_mean(other, names)
                    .map(|m| format!(": did you mean `.{m}`?"))
                    .unwrap_or_default();
                return Err(Error::Usage(format!(
                    "`.{other}` is not a command{hint} (`.help` lists them)"
                )));
            }
        }
        Ok(true)
    }

    fn fields(&self) -> Result<()> {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(["field", "type", "also", "example", "about"]);
        for f in query::fields::FIELDS {
            t.add_row([
                f.name.to_owned(),
                kind_name(f).to_owned(),
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
        let matcher = (!glob.is_empty()).then(|| query::udf::glob_regex(glob.trim_matches('"')));
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
            None => return Err(Error::Usage("`.save NAME QUERY` (no query ran yet)".into())),
        };
        // Refuse what does not parse: a saved query should run.
        crate::lang::parse(text).map_err(|d| query::bad_query(text, &d, ErrorStyle::Text))?;
        let path = saved_path(name)?;
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
        let dir = saved_dir()?;
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

/// The screen's columns and rows (`COLUMNS` / `LINES` win).
fn screen() -> (usize, usize) {
    let size = terminal_size::terminal_size();
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let width = env("COLUMNS")
        .or(size.map(|(w, _)| usize::from(w.0)))
        .unwrap_or(100);
    let height = env("LINES")
        .or(size.map(|(_, h)| usize::from(h.0)))
        .unwrap_or(40);
    (width, height)
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

fn kind_name(f: &query::fields::FieldDef) -> &'static str {
    use query::fields::{Kind, Target};
    match f.target {
        Target::Column(_, Kind::Text) => "text",
        Target::Column(_, Kind::Exact) => "exact text",
        Target::Column(_, Kind::Time) => "time",
        Target::Column(_, Kind::Ip) => "ip",
        Target::Column(_, Kind::Number) => "number",
        Target::Actor => "text (id, email or name)",
        Target::List {
            type_part: true, ..
        } => "text (any element's type)",
        Target::List { .. } => "text (any element's id or name)",
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
