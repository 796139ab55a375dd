//! The lock of a run folder while a process trains in it: `train.lock`, held with an
//! exclusive `flock(2)` for the life of the process. The kernel releases it when the
//! process ends however it ends (SIGKILL included), so a lock left by a killed run is never
//! mistaken for a live one, and two processes can never both hold it. The file names the
//! holder (pid and host) for error messages only.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = "train.lock";

/// A held lock; dropping it removes the file and releases the lock.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
}

/// The holder a lock file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    /// What the holder wrote: `pid` (and `host` when known); empty when unreadable.
    pub pid: String,
}

/// Tries an exclusive, non-blocking flock on `f`: `Ok(false)` when another open file
/// holds it.
fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid open descriptor owned by `f`.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether `f` is still the file at `path` (another process may have removed the lock
/// file between our open and our flock, and a third created a new one).
fn still_at(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn holder_of(path: &Path) -> Owner {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Owner {
        pid: text.trim().to_owned(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The holder of `dir`'s lock when a live process holds it.
pub fn live_owner(dir: &Path) -> Option<Owner> {
    let path = dir.join(LOCK_FILE);
    let f = File::open(&path).ok()?;
    match try_lock(&f) {
        // Free: ours for an instant, released when `f` closes.
        Ok(true) => None,
        Ok(false) => Some(holder_of(&path)),
        Err(_) => None,
    }
}

impl Lock {
    /// Takes the lock of `dir` (created if needed), refusing when a live process holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // Retried only when the file was replaced under us between open and flock.
        for _ in 0..8 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            if !try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                bail!(
                    "{} is locked by process {} that is still training there; wait for it or \
                     stop it",
                    dir.display(),
                    text.trim()
                );
            }
            if !still_at(&file, &path) {
                continue;
            }
            let me = format!("{} on {}\n", std::process::id(), host_name());
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(me.as_bytes()))
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(Lock { path, file });
        }
        bail!(
            "{}: the lock file keeps being replaced by other processes",
            path.display()
        )
    }

    /// Releases the lock now.
    pub fn release(self) {}
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, and only if it is still our file: a process that
        // opened it meanwhile sees the file gone and retries on a fresh one.
        if still_at(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
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
        assert!(live_owner(dir.path())
            .unwrap()
            .pid
            .starts_with(&std::process::id().to_string()));
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        assert!(live_owner(dir.path()).is_none());
    }

    #[test]
    fn a_lock_file_nobody_holds_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed process leaves: the file, without the lock.
        std::fs::write(dir.path().join(LOCK_FILE), "12345 on elsewhere\n").unwrap();
        assert!(live_owner(dir.path()).is_none());
        let _lock = Lock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.starts_with(&std::process::id().to_string()), "{text}");
    }

    #[test]
    fn a_replaced_lock_file_is_not_removed_by_the_old_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(dir.path()).unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "someone else\n").unwrap();
        drop(lock);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else\n");
    }
}
