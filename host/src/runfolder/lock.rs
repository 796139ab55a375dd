//! The lock of a run folder while a process trains in it: `train.lock` holds the owner's pid
//! and start time, so that a second `promax train` (or a compare resuming the cell) refuses
//! a folder a live process writes into, and a lock left by a killed process is recognised
//! as stale and taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = "train.lock";

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

/// The owner a lock file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub pid: u32,
    /// The process start time (clock ticks since boot, `/proc/PID/stat` field 22): a pid
    /// reused by another process after a kill has another start time.
    pub start: Option<u64>,
}

impl Owner {
    fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start = it.next().and_then(|s| s.parse().ok());
        Some(Owner { pid, start })
    }

    /// Whether the process that wrote the lock still runs.
    pub fn is_alive(&self) -> bool {
        if !Path::new("/proc/self").exists() {
            // Without /proc the owner cannot be checked: assume it lives (the user is told
            // which file to delete).
            return true;
        }
        match (start_time(self.pid), self.start) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        }
    }
}

/// Field 22 of `/proc/PID/stat`, or `None` when the process does not exist or has ended:
/// a killed child whose parent died too stays a zombie until someone reaps it, and in a
/// container nobody may.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The live owner of `dir`'s lock, if any (a stale lock counts as none).
pub fn live_owner(dir: &Path) -> Option<Owner> {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    Owner::parse(&text).filter(Owner::is_alive)
}

impl Lock {
    /// Takes the lock of `dir` (created if needed), refusing when a live process holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // Two tries: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let me = Owner::me();
                    let line = format!("{} {}\n", me.pid, me.start.unwrap_or(0));
                    f.write_all(line.as_bytes())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match Owner::parse(&text) {
                        Some(owner) if owner.is_alive() => bail!(
                            "{} is locked by process {} that is still training there; wait \
                             for it or stop it (if that process is not promax, delete {})",
                            dir.display(),
                            owner.pid,
                            path.display()
                        ),
                        _ => {
                            tracing::warn!(
                                "taking over the stale lock {} (its process has ended)",
                                path.display()
                            );
                            std::fs::remove_file(&path)
                                .with_context(|| format!("removing {}", path.display()))?;
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        bail!(
            "{}: another process took the lock at the same time",
            path.display()
        )
    }

    /// Releases the lock now (before its folder is renamed).
    pub fn release(self) {}
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_refuses_and_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(dir.path()).unwrap();
        let err = format!("{:#}", Lock::acquire(dir.path()).unwrap_err());
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert_eq!(live_owner(dir.path()).unwrap().pid, std::process::id());
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        assert!(live_owner(dir.path()).is_none());
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // This process's pid with another start time: a pid reused after a kill.
        let me = Owner::me();
        let stale = format!("{} {}\n", me.pid, me.start.unwrap_or(0) + 1);
        std::fs::write(dir.path().join(LOCK_FILE), stale).unwrap();
        assert!(live_owner(dir.path()).is_none());
        let _lock = Lock::acquire(dir.path()).unwrap();
        assert_eq!(live_owner(dir.path()), Some(me));
    }

    #[test]
    fn garbage_in_a_lock_file_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "not a pid").unwrap();
        let _lock = Lock::acquire(dir.path()).unwrap();
    }
}
