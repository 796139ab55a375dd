//! The on-disk response cache: one file per distinct request, written atomically.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::LlmError;

/// Raw successful response bodies under `{dir}/{first 2 hex}/{sha256 hex}.json`.
#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// Makes temporary names unique among this process's threads.
    tmp_counter: AtomicU64,
}

impl DiskCache {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tmp_counter: AtomicU64::new(0),
        }
    }

    /// The file that holds (or will hold) the answer for `key`.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The stored body for `key`, `None` when there is none.
    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, LlmError> {
        let path = self.path(key);
        match fs::read_to_string(&path) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LlmError::Io { path, source }),
        }
    }

    /// Stores `body` for `key`. Written to a temporary file in the same folder, then
    /// renamed over the final name: the rename is atomic, so a run killed mid-write leaves
    /// at worst a stray `.tmp` file, never a truncated `.json` that reads as a hit.
    pub(crate) fn put(&self, key: &str, body: &str) -> Result<(), LlmError> {
        let path = self.path(key);
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LlmError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
        let written = fs::File::create(&tmp).and_then(|mut f| f.write_all(body.as_bytes()));
        if let Err(source) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(LlmError::Io { path, source });
        }
        Ok(())
    }
}

/// The cache key of a request: sha256 (hex) of the endpoint path and the canonical body.
pub(crate) fn cache_key(endpoint: &str, canonical_body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(endpoint.as_bytes());
    // A separator that cannot occur in a path keeps ("a", "bc") and ("ab", "c") apart.
    hasher.update([0u8]);
    hasher.update(canonical_body.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON text with object keys sorted at every level, so that equal requests give equal
/// bytes (and keys) whatever order their fields were built in.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's own text (shortest round-trip numbers, escaped strings).
        scalar => out.push_str(&scalar.to_string()),
    }
}
