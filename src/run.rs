//! Settings: resolved once, in one place, before any work starts.
//!
//! Order: command-line flag > environment > config file > default.
//! The config file is `$XDG_CONFIG_HOME/auditq/config.toml` (or `~/.config/auditq/…`), or
//! the file named by `AUDITQ_CONFIG`:
//!
//! ```toml
//! archive = "/srv/auditq/archive"
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive::Archive;
use crate::error::{Error, Result};

/// What the config file may say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub archive: Option<PathBuf>,
    pub org: Option<String>,
}

impl ConfigFile {
    /// The config file's path, whether or not it exists.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("AUDITQ_CONFIG") {
            return Some(PathBuf::from(p));
        }
        Some(config_dir()?.join("config.toml"))
    }

    pub fn load(path: &Path) -> Result<ConfigFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| Error::Config {
                path: path.to_owned(),
                message: e.message().to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(Error::Config {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The default archive: `$XDG_DATA_HOME/auditq/archive` (or `~/.local/share/auditq/archive`).
pub fn default_archive() -> PathBuf {
    data_dir().join("archive")
}

/// auditq's data directory: `$XDG_DATA_HOME/auditq` (or `~/.local/share/auditq`).
pub fn data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("auditq")
}

/// auditq's config directory: `$XDG_CONFIG_HOME/auditq` (or `~/.config/auditq`).
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))
        .map(|p| p.join("auditq"))
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub archive: Archive,
    pub quiet: bool,
    pub verbose: bool,
    /// Progress bars: stderr is a terminal and not `--quiet`.
    pub progress: bool,
    /// Colour: stderr is a terminal and `NO_COLOR` is unset.
    pub color: bool,
}

impl Settings {
    /// Resolve. `archive_flag` already folds in `AUDITQ_ARCHIVE` (clap reads the env).
    pub fn resolve(archive_flag: Option<PathBuf>, quiet: bool, verbose: bool) -> Result<Settings> {
        let archive = match archive_flag {
            Some(p) => p,
            None => {
                let config = match ConfigFile::path() {
                    Some(path) => ConfigFile::load(&path)?,
                    None => ConfigFile::default(),
                };
                config.archive.unwrap_or_else(default_archive)
            }
        };
        let terminal = std::io::stderr().is_terminal();
        Ok(Settings {
            archive: Archive::at(archive),
            quiet,
            verbose,
            progress: terminal && !quiet,
            color: terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        })
    }
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
            std::fs::read_to_string(path).map_err(io)?
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
