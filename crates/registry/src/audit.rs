//! The audit log: one JSON line per auth decision, push and delete, with
//! who, what, when and the outcome. Appended with O_APPEND, so concurrent
//! writers and a crash never interleave or truncate lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::{IoContext, Result};

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub time: String,
    pub who: &'a str,
    pub remote: &'a str,
    /// `auth`, `push`, `delete`, `mount`, `token`, `gc`, `lifecycle`, `settings`.
    pub action: &'a str,
    pub repository: &'a str,
    /// A tag, a digest, or a scope.
    pub target: &'a str,
    /// `allowed`, `denied`, `ok`, or an error.
    pub outcome: &'a str,
}

pub struct Audit {
    file: Mutex<File>,
}

impl Audit {
    pub fn open(path: &Path) -> Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .ctx("opening", path)?;
        Ok(Audit {
            file: Mutex::new(file),
        })
    }

    pub fn record(
        &self,
        who: &str,
        remote: &str,
        action: &str,
        repository: &str,
        target: &str,
        outcome: &str,
    ) {
        let event = Event {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            who,
            remote,
            action,
            repository,
            target,
            outcome,
        };
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!(error = %e, "writing the audit log");
        }
    }
}
