//! Settings: resolved once, in one place, before any work starts.
//!
//! Order: command-line flag > environment > config file > default.
//! The config file is `$XDG_CONFIG_HOME/auditq/config.toml` (or `~/.config/auditq/…`), or
//! the file named by `AUDITQ_CONFIG`:
//!
//! ```toml
//! archive = "/srv/auditq/archive"
//! org = "b2c1…"          # the organization `sync` and `follow` read when --org is not given
//!
//! [s3]                    # for `archive = "s3://bucket/prefix"` (AWS_* variables also apply)
//! endpoint = "https://minio.internal:9000"
//! region = "eu-central-1"
//! allow_http = false      # plain http to a store on another machine (as --allow-http)
//! virtual_hosted_style = false
//!
//! signing_key = "/etc/auditq/seal.key"  # seal each commit (AUDITQ_SIGNING_KEY wins)
//! auto_compact = true     # writers merge small files after their commits (--no-compact)
//! auto_vacuum = true      # writers delete old file versions every 100 versions
//! ```
//!
//! [`run_query`] is the one path from query text to output, for `auditq query` and the
//! REPL alike: warnings, format, destination.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive::Archive;
use crate::error::{Error, Result};
use crate::lang::macros::{Expanded, Library};

/// What the config file may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub archive: Option<PathBuf>,
    pub org: Option<String>,
    /// How to reach an archive on S3.
    pub s3: Option<crate::archive::store::S3Options>,
    /// The private key that seals each commit (`auditq key generate`).
    pub signing_key: Option<PathBuf>,
    /// Whether writers compact the small files of the days they touched (default true).
    pub auto_compact: Option<bool>,
    /// Whether writers vacuum files removed longer ago than the archive's time-travel
    /// window, every checkpoint interval (default true).
    pub auto_vacuum: Option<bool>,
}

impl ConfigFile {
    /// The config file's path, whether or not it exists.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("AUDITQ_CONFIG") {
            return Some(PathBuf::from(p));
        }
        Some(crate::paths::config_dir()?.join("config.toml"))
    }

    pub fn load(path: &Path) -> Result<ConfigFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| Error::Config {
                path: path.to_owned(),
                message: e.message().to_owned(),
            }),
            // No file there (also: a path through something that is not a directory).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(ConfigFile::default())
            }
            Err(e) => Err(Error::Config {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        }
    }
}

/// `--color`: colour on a terminal (unless `NO_COLOR` is set), always, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to a stream that `terminal` says is (or is not) one.
    pub fn on(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// The archive given as `--archive`, `AUDITQ_ARCHIVE` or in the config file: a path, a
/// `file://` URL or `s3://bucket/prefix`. Any other URL is an error naming what is
/// accepted, never a local directory named after it (`gs://b/p` would otherwise be
/// `./gs:/b/p`).
pub fn archive_location(given: PathBuf, s3: &crate::archive::store::S3Options) -> Result<Archive> {
    let Some(text) = given.to_str().filter(|t| t.contains("://")) else {
        return Ok(Archive::at(given));
    };
    // Never shown whole: a URL may carry credentials (refused, see `Remote::open`).
    let shown = crate::archive::store::redact_url(text);
    let text = shown.as_str();
    let given_url = given.to_str().unwrap_or_default();
    let url = url::Url::parse(given_url)
        .map_err(|e| Error::Usage(format!("the archive `{text}` is not a valid URL: {e}")))?;
    match url.scheme() {
        "file" => url.to_file_path().map(Archive::at).map_err(|()| {
            Error::Usage(format!(
                "the archive `{text}` is not a local file URL (`file:///path`, no host)"
            ))
        }),
        "s3" | "s3a" => crate::archive::store::Remote::open(&url, s3)
            .map(Archive::on)
            .map_err(|e| Error::Usage(e.to_string())),
        "gs" | "az" | "abfs" | "abfss" | "adl" | "http" | "https" => Err(Error::Usage(format!(
            "the archive `{text}` is on an object store auditq does not read or write: \
             give a path, a `file://` URL or `s3://bucket/prefix` (S3 and S3-compatible stores)"
        ))),
        other => Err(Error::Usage(format!(
            "the archive `{text}` has the scheme `{other}`: an archive is a path, a \
             `file://` URL or `s3://bucket/prefix`"
        ))),
    }
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub archive: Archive,
    /// `--archive` (or `AUDITQ_ARCHIVE`) was given, not the config file or the default.
    pub archive_given: bool,
    /// The organization from the config file (`--org` and `ATLASSIAN_ORG_ID` win).
    pub org: Option<String>,
    pub quiet: bool,
    pub verbose: u8,
    /// Progress bars: stderr is a terminal and not `--quiet`.
    pub progress: bool,
    /// Colour on stderr (diagnostics) and on stdout (tables, charts).
    pub color_err: bool,
    pub color_out: bool,
    /// How to reach archives on S3 (the config file's `[s3]`, `--allow-http`).
    pub s3: crate::archive::store::S3Options,
    /// `--macros` (or `AUDITQ_MACROS`); see [`macros`].
    pub macros: Option<PathBuf>,
}

/// What the command line gives every command.
#[derive(Debug, Default)]
pub struct Given {
    /// `--archive`, which already folds in `AUDITQ_ARCHIVE` (clap reads the env).
    pub archive: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: u8,
    pub color: ColorChoice,
    pub allow_http: bool,
    pub macros: Option<PathBuf>,
    /// `--no-compact`.
    pub no_compact: bool,
}

/// The signing key in the file at `path`. Its text is never shown, not even in part.
pub fn signer(path: &Path) -> Result<crate::note::Signer> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("signing key `{}`: {e}", path.display())))?;
    crate::note::Signer::from_text(&text)
        .map_err(|why| Error::Usage(format!("signing key `{}`: {why}", path.display())))
}

impl Settings {
    /// Resolve: the command line, the environment, the config file, the defaults.
    pub fn resolve(given: Given) -> Result<Settings> {
        let config = match ConfigFile::path() {
            Some(path) => ConfigFile::load(&path)?,
            None => ConfigFile::default(),
        };
        let mut s3 = config.s3.unwrap_or_default();
        s3.allow_http |= given.allow_http;
        let archive_given = given.archive.is_some();
        let archive = match given.archive.or(config.archive) {
            Some(given) => archive_location(given, &s3)?,
            None => Archive::at(crate::paths::default_archive()),
        };
        let key = std::env::var_os("AUDITQ_SIGNING_KEY")
            .filter(|k| !k.is_empty())
            .map(PathBuf::from)
            .or(config.signing_key);
        let archive = match key {
            Some(path) => archive.with_signer(Some(std::sync::Arc::new(signer(&path)?))),
            None => archive,
        };
        let archive =
            archive.with_auto_compact(!given.no_compact && config.auto_compact.unwrap_or(true));
        let archive = archive.with_auto_vacuum(config.auto_vacuum.unwrap_or(true));
        let terminal = std::io::stderr().is_terminal();
        Ok(Settings {
            archive,
            archive_given,
            org: config.org.filter(|o| !o.trim().is_empty()),
            quiet: given.quiet,
            verbose: given.verbose,
            progress: terminal && !given.quiet,
            color_err: given.color.on(terminal),
            color_out: given.color.on(std::io::stdout().is_terminal()),
            s3,
            macros: given.macros,
        })
    }

    /// The organization: `--org`, else `ATLASSIAN_ORG_ID`, else the config file's `org`.
    pub fn org(&self, flag: Option<String>) -> Result<String> {
        flag.or_else(|| std::env::var("ATLASSIAN_ORG_ID").ok().filter(|o| !o.trim().is_empty()))
            .or_else(|| self.org.clone())
            .ok_or_else(|| {
                Error::Usage(
                    "no organization: pass --org ORG, set ATLASSIAN_ORG_ID, or put `org = \"…\"` in the config file".into(),
                )
            })
    }
}

/// "Now" for relative times: `--now`, else `AUDITQ_NOW`, else the clock.
pub fn now(flag: Option<&str>) -> Result<i64> {
    let text = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("AUDITQ_NOW").ok().filter(|s| !s.is_empty()));
    match text {
        None => Ok(chrono::Utc::now().timestamp_micros()),
        Some(t) => crate::event::parse_time(&t).ok_or_else(|| {
            Error::Usage(format!(
                "`{t}` is not a time for --now / AUDITQ_NOW (expected e.g. 2026-02-16T12:00:00Z)"
            ))
        }),
    }
}

/// The screen's columns and rows (`COLUMNS` / `LINES` win).
pub fn screen_size() -> (usize, usize) {
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

/// The most a macros file may hold.
pub const MAX_MACROS_BYTES: u64 = 1 << 20;

/// The macros of `--macros FILE`, else of `$XDG_CONFIG_HOME/auditq/macros.aq` when there
/// is one.
pub fn macros(flag: Option<&Path>) -> Result<Library> {
    let (path, given) = match (flag, crate::paths::config_dir()) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(dir)) => (dir.join("macros.aq"), false),
        (None, None) => return Ok(Library::default()),
    };
    let text = match crate::userfile::read_text(&path, MAX_MACROS_BYTES) {
        Ok(t) => t,
        Err(e) if !given && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Library::default());
        }
        // Not a file of text at all (a device, a FIFO, too large): a usage error.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ) =>
        {
            return Err(Error::Usage(format!(
                "the macros file `{}` is refused: {e}",
                path.display()
            )));
        }
        Err(source) => {
            return Err(Error::Io {
                what: format!("reading the macros file `{}`", path.display()),
                source,
            });
        }
    };
    let mut lib = Library::default();
    lib.add_file(&path.display().to_string(), &text)
        .map_err(|d| Error::rejected(&text, d))?;
    Ok(lib)
}

/// `text` with the macros of `--macros` (or the default file) and its own expanded.
pub fn expand(flag: Option<&Path>, text: &str) -> Result<Expanded> {
    macros(flag)?
        .expand(text)
        .map_err(|d| Error::rejected(text, d))
}

/// An error about an expanded query as one about what the user wrote (see
/// [`Expanded::restore`]).
pub fn restore(text: &Expanded, e: impl Into<Error>) -> Error {
    match e.into() {
        Error::BadQuery(r) if r.src == text.text => Error::rejected(
            &text.original,
            r.diags.into_iter().map(|d| text.restore(d)).collect(),
        ),
        e => e,
    }
}

/// The saved queries' directory: `$XDG_CONFIG_HOME/auditq/queries`.
pub fn saved_dir() -> Result<PathBuf> {
    crate::paths::config_dir()
        .map(|d| d.join("queries"))
        .ok_or_else(|| Error::Usage("no config directory: set HOME or XDG_CONFIG_HOME".into()))
}

/// The file of the saved query `name` (letters, digits, `_` and `-`).
pub fn saved_path(name: &str) -> Result<PathBuf> {
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

/// The text of the saved query `name`.
pub fn saved_query(name: &str) -> Result<String> {
    let path = saved_path(name)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Usage(format!(
            "no saved query `{name}` (save one in the REPL with `.save {name}`; `.run` lists them)"
        ))),
        Err(source) => Err(Error::Io {
            what: format!("reading `{}`", path.display()),
            source,
        }),
    }
}

/// How a result is shown.
#[derive(Debug, Clone)]
pub struct View {
    pub format: crate::query::output::Format,
    pub dest: crate::query::output::Dest,
    /// A table's screen: width, rows, colour.
    pub screen: crate::query::output::Screen,
    /// Look for warnings (and print them on stderr).
    pub warn: bool,
    /// How warnings are drawn, and whether in colour.
    pub style: crate::diag::Style,
    pub color: bool,
}

/// What [`run_query`] did.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub written: crate::query::output::Written,
    /// The time the result covers, see [`crate::query::Answer::covers`].
    pub covers: Option<(i64, i64)>,
}

/// Run a query and write its result as it comes: warnings on stderr, rows in `view`'s
/// format to its destination. A query ending in `timechart` shown as a table on stdout
/// draws a bar beside each bucket, and shows every bucket.
pub async fn run_query(
    archive: &Archive,
    text: &Expanded,
    clock: crate::query::Clock,
    view: &View,
) -> Result<Outcome> {
    run_query_tapped(archive, text, clock, view, |_| {}).await
}

/// [`run_query`], each batch also shown to `tap` before it is written.
async fn run_query_tapped(
    archive: &Archive,
    text: &Expanded,
    clock: crate::query::Clock,
    view: &View,
    mut tap: impl FnMut(&datafusion::arrow::array::RecordBatch),
) -> Result<Outcome> {
    use crate::query::output::{Dest, Format, Writer};
    let mut answer = crate::query::run(archive, &text.text, clock, view.warn)
        .await
        .map_err(|e| restore(text, e))?;
    if !answer.warnings.is_empty() {
        let warnings: Vec<_> = answer
            .warnings
            .iter()
            .cloned()
            .map(|d| text.restore(d))
            .collect();
        eprint!(
            "{}",
            crate::diag::render_as(&text.original, &warnings, view.style, view.color)
        );
    }
    let mut screen = view.screen;
    if answer.chart && view.format == Format::Table && matches!(view.dest, Dest::Stdout) {
        screen.bars = true;
        screen.max_rows = None;
    }
    let covers = answer.covers;
    let mut writer = Writer::new(view.format, &answer.schema, &view.dest, screen)?;
    while let Some(b) = answer.next().await? {
        tap(&b);
        writer.write(&b)?;
    }
    Ok(Outcome {
        written: writer.finish()?,
        covers,
    })
}

/// What `query --evidence DIR` wrote.
#[derive(Debug)]
pub struct Bundle {
    pub outcome: Outcome,
    pub result: PathBuf,
    pub proofs: usize,
}

/// The verifier script an evidence bundle carries (the auditor may use their own copy).
const VERIFY_PY: &str = include_str!("../examples/verify/verify.py");

/// `query --evidence DIR`: the result as `view.format` writes it, an inclusion proof per
/// result row that is an event (the rows with an `id`), the latest checkpoint, the
/// verifier key, the verifier script and a README saying how to check them offline.
/// Every event of the result must be sealed.
pub async fn run_query_with_evidence(
    archive: &Archive,
    text: &Expanded,
    clock: crate::query::Clock,
    view: &View,
    dir: &Path,
    verifier: &crate::note::Verifier,
) -> Result<Bundle> {
    let io = |what: String| move |source| Error::Io { what, source };
    std::fs::create_dir_all(dir).map_err(io(format!("creating `{}`", dir.display())))?;
    let ext = match view.format {
        crate::query::output::Format::Table => "txt",
        f => f.name(),
    };
    let result = dir.join(format!("result.{ext}"));
    let mut view = view.clone();
    view.dest = crate::query::output::Dest::File(result.clone());
    let mut ids: Vec<String> = Vec::new();
    let outcome = run_query_tapped(archive, text, clock, &view, |b| {
        if let Some(col) = b.column_by_name("id")
            && let Ok(col) =
                datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)
        {
            use datafusion::arrow::array::{Array, AsArray};
            let col = col.as_string::<i32>();
            ids.extend(
                (0..col.len())
                    .filter(|&i| col.is_valid(i))
                    .map(|i| col.value(i).to_owned()),
            );
        }
    })
    .await?;
    let proofs = crate::archive::evidence::prove(archive, Some(verifier), &ids).await?;
    let mut lines = String::new();
    let mut failed = Vec::new();
    for p in proofs {
        match p {
            Ok(p) => {
                lines.push_str(&serde_json::to_string(&p).expect("serializable"));
                lines.push('\n');
            }
            Err(why) => failed.push(why),
        }
    }
    if !failed.is_empty() {
        return Err(Error::Usage(format!(
            "--evidence: {} of {} result rows have no proof (first: {}); the result is in `{}`, no proofs were written",
            failed.len(),
            ids.len(),
            failed[0],
            result.display()
        )));
    }
    let checkpoint = crate::archive::evidence::latest(archive, Some(verifier))?
        .map(|c| c.text)
        .unwrap_or_default();
    let readme = bundle_readme(&result, ids.len(), &verifier.to_string());
    for (name, bytes) in [
        ("proofs.ndjson", lines.as_str()),
        ("checkpoint", checkpoint.as_str()),
        ("verifier.key", &format!("{verifier}\n")),
        ("verify.py", VERIFY_PY),
        ("README.txt", readme.as_str()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(format!("writing `{}`", path.display())))?;
    }
    Ok(Bundle {
        outcome,
        result,
        proofs: ids.len(),
    })
}

fn bundle_readme(result: &Path, proofs: usize, verifier: &str) -> String {
    let name = result
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!(
        "Evidence for a query over an auditq archive.

{name}        the query's result
proofs.ndjson   {proofs} inclusion proofs (RFC 9162), one per result row that is an event:
                its id, raw JSON as archived, leaf index, audit path and the signed
                checkpoint of the tree it is in
checkpoint      the archive's latest signed checkpoint (C2SP signed note)
verifier.key    the public key that signed it: {verifier}
verify.py       a checker written from RFC 9162 and the C2SP texts (Python 3 standard
                library and `cryptography`); you may use your own instead

Check it offline, with a verifier key you obtained from the archive's owner by another
channel (compare it with verifier.key):

  python3 verify.py --key 'KEY' checkpoint checkpoint
  python3 verify.py --key 'KEY' inclusion proofs.ndjson

Each proof shows that an event with exactly that id and raw JSON is leaf N of the tree
the key signed. To check that the archive only grew since a checkpoint you kept, ask
for `auditq archive prove --consistency OLD_SIZE` and run
`python3 verify.py --key 'KEY' consistency OLD_CHECKPOINT PROOF.json`.
"
    )
}

/// The Atlassian API key: from `--token-file` (which must not be readable by others),
/// else `ATLASSIAN_API_KEY`. Never from the command line, never printed.
pub fn api_token(file: Option<&Path>) -> Result<crate::api::client::Secret> {
    use std::os::unix::fs::PermissionsExt;
    let text = match file {
        Some(path) => {
            let io = |source| Error::Io {
                what: format!("reading the key file `{}`", path.display()),
                source,
            };
            let meta = std::fs::metadata(path).map_err(io)?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(Error::Usage(format!(
                    "the key file `{}` is readable by others; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )));
            }
            crate::userfile::read_text(path, 64 << 10).map_err(io)?
        }
        None => std::env::var("ATLASSIAN_API_KEY").map_err(|_| {
            Error::Usage(
                "no API key: set ATLASSIAN_API_KEY or pass --token-file FILE (an organization API key from admin.atlassian.com)".into(),
            )
        })?,
    };
    let key = text.trim();
    if key.is_empty() {
        return Err(Error::Usage("the API key is empty".into()));
    }
    Ok(crate::api::client::Secret::new(key))
}
