//! The writer lock: an advisory lock (`flock`) on `ARCHIVE/LOCK`.
//!
//! The kernel releases it when the holder exits, however it exits (SIGKILL included), so a
//! crashed writer never leaves the archive locked. The file's content (pid and start time
//! of the holder) only serves the message a second writer gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{Error, Result};

/// Held for as long as it lives.
#[derive(Debug)]
pub struct Lock {
    /// `None` for an archive on object storage, which has no lock file.
    file: Option<File>,
}

impl Lock {
    /// No lock: for an archive on object storage.
    pub fn none() -> Lock {
        Lock { file: None }
    }

    pub fn acquire(path: &Path) -> Result<Lock> {
        let io = |action| {
            let path = path.to_owned();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("opening lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: path.parent().unwrap_or(path).to_owned(),
                    holder: (!holder.is_empty()).then(|| holder.to_owned()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("locking")(e)),
        }
        let note = format!(
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        file.set_len(0).map_err(io("writing lock file"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io("writing lock file"))?;
        file.write_all(note.as_bytes())
            .map_err(io("writing lock file"))?;
        Ok(Lock { file: Some(file) })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let first = Lock::acquire(&path).unwrap();
        match Lock::acquire(&path) {
            Err(Error::Locked {
                holder: Some(h), ..
            }) => {
                assert!(h.contains(&format!("pid {}", std::process::id())), "{h}")
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        Lock::acquire(&path).unwrap();
    }
}
