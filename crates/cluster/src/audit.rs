//! The audit log: one JSON line per mutating call — who, what, when, and
//! the outcome — appended to `<data>/audit.log` (mode 0600). Each line is
//! one write to a file opened for appending, so lines from concurrent
//! requests never interleave.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::Result;

#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    file: Mutex<File>,
}

/// One line of the log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    /// Epoch seconds.
    pub time: f64,
    /// The user, or `-` when the request was not authenticated.
    pub user: &'a str,
    pub access_key_id: &'a str,
    pub remote: &'a str,
    /// `ecs:RunTask`.
    pub action: &'a str,
    pub resource: &'a str,
    /// `allowed`, or the exception it was refused with.
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

impl Audit {
    pub fn open(path: &Path) -> Result<Audit> {
        let file = estiba_os::fs::open_append(path, 0o600)?;
        Ok(Audit {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry. A failure is logged, not returned: the call it
    /// records has already happened.
    pub fn record(&self, entry: &Entry<'_>) {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let written = match self.file.lock() {
            Ok(mut f) => f.write_all(&line),
            Err(_) => Ok(()),
        };
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), "audit log: {e}");
        }
    }
}
