//! The table's versions as its log tells them: when each was committed (the commit time
//! auditq's writer records in the entry's `commitInfo`, never a file's modification time,
//! which copies and restores change), what it did, and the evidence sealed with it; and
//! the version an `--as-of` names.

use std::collections::HashMap;

use super::{Archive, Error, Result};

/// One version of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version {
    pub version: u64,
    /// The commit time (RFC 3339, UTC), from the entry's `commitInfo.timestamp`.
    pub time: Option<String>,
    #[serde(skip)]
    pub millis: Option<i64>,
    /// Delta's name for it: WRITE, OPTIMIZE, DELETE, CREATE TABLE, …
    pub operation: String,
    pub files_added: u64,
    pub files_removed: u64,
    pub events_added: u64,
    /// Events in the files it removed (unknown for a file added before the oldest entry
    /// the log still holds).
    pub events_removed: Option<u64>,
    /// The evidence log's size after it, when the commit recorded it.
    pub tree_size: Option<u64>,
    /// The size of the checkpoint that sealed this version, if any.
    pub checkpoint: Option<u64>,
}

/// Every version whose log entry is still there, oldest first.
pub fn history(a: &Archive) -> Result<Vec<Version>> {
    let Some(names) = a.all_log_names()? else {
        return Err(Error::Missing {
            path: a.root().to_owned(),
        });
    };
    let mut versions: Vec<u64> = names
        .iter()
        .filter(|n| n.len() == 25 && n.ends_with(".json"))
        .filter_map(|n| n[..20].parse().ok())
        .collect();
    versions.sort_unstable();
    let sealed = super::evidence::sealed_versions(a)?;
    let mut rows: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(versions.len());
    for version in versions {
        let bytes = a
            .read_log(&super::commit_file(version))
            .map_err(|e| Error::DamagedLog {
                path: a
                    .events_dir()
                    .join("_delta_log")
                    .join(super::commit_file(version)),
                reason: format!("cannot be read: {e}"),
            })?;
        let mut v = Version {
            version,
            time: None,
            millis: None,
            operation: String::new(),
            files_added: 0,
            files_removed: 0,
            events_added: 0,
            events_removed: Some(0),
            tree_size: None,
            checkpoint: sealed.get(&version).copied(),
        };
        for line in bytes.split(|&b| b == b'\n') {
            let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(info) = action.get("commitInfo") {
                v.millis = info["timestamp"].as_i64();
                v.time = v.millis.and_then(rfc3339);
                v.operation = info["operation"].as_str().unwrap_or_default().to_owned();
                v.tree_size = info[super::evidence::LEAVES_KEY].as_u64();
            } else if let Some(add) = action.get("add") {
                let n = add["stats"]
                    .as_str()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|s| s["numRecords"].as_u64())
                    .unwrap_or(0);
                v.files_added += 1;
                v.events_added += n;
                if let Some(path) = add["path"].as_str() {
                    rows.insert(path.to_owned(), n);
                }
            } else if let Some(remove) = action.get("remove") {
                v.files_removed += 1;
                let n = remove["path"].as_str().and_then(|p| rows.remove(p));
                v.events_removed = match (v.events_removed, n) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
        }
        out.push(v);
    }
    Ok(out)
}

fn rfc3339(millis: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The version `--as-of` names: a version number that the log holds, or a time (RFC 3339,
/// or a date, taken as its start in UTC): the last version committed at or before it.
pub fn resolve(a: &Archive, as_of: &str) -> Result<u64> {
    let bad = |why: String| Error::AsOf {
        given: as_of.to_owned(),
        why,
    };
    let versions = history(a)?;
    let (first, last) = match (versions.first(), versions.last()) {
        (Some(f), Some(l)) => (f.version, l.version),
        _ => return Err(bad("the log holds no version".into())),
    };
    if let Ok(v) = as_of.trim().parse::<u64>() {
        return match versions.iter().any(|x| x.version == v) {
            true => Ok(v),
            false if v > last => Err(bad(format!("the latest version is {last}"))),
            false => Err(bad(format!(
                "the log holds versions {first}..={last} (older entries were cleaned up)"
            ))),
        };
    }
    let text = as_of.trim();
    let micros = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(d) => d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros()),
        Err(_) => crate::event::parse_time(text),
    };
    let millis = micros
        .ok_or_else(|| {
            bad(
                "neither a version number nor a time (RFC 3339 with a zone, or YYYY-MM-DD in UTC)"
                    .into(),
            )
        })?
        .div_euclid(1000);
    versions
        .iter()
        .rev()
        .find(|v| v.millis.is_some_and(|m| m <= millis))
        .map(|v| v.version)
        .ok_or_else(|| {
            bad(format!(
                "before the first version the log holds ({first}, committed {})",
                versions[0].time.as_deref().unwrap_or("at an unknown time")
            ))
        })
}
