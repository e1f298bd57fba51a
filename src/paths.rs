//! Where auditq keeps its own files: the XDG data and config directories. Depends on
//! nothing.

use std::path::PathBuf;

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
