//! The container lifecycle, with no long-lived daemon.
//!
//! A container is a record (`record`) plus a directory under
//! `<data>/containers/<id>/`: its writable layer, its bundle, its logs. A
//! foreground `run` drives the runtime itself. A detached container gets a
//! small monitor process (`monitor`), which mounts its root filesystem,
//! creates and starts it with a runtime backend, writes its output to the
//! log (`logs`), records its exit, and applies the restart policy. Every other
//! command (ps, stop, kill, rm, wait, logs, inspect) works from the records
//! and signals; after a crash of any process, reading a record reconciles it
//! with what is really alive (`ops`).
//!
//! This crate does not parse command lines (that is the binary) and does not
//! know how images are stored or containers isolated (the store and runtime).
#![forbid(unsafe_code)]

pub mod api;
pub mod build;
pub mod crypt;
mod error;
mod events;
pub mod health;
mod legacy;
pub mod logs;
pub mod monitor;
pub mod net_helpers;
pub mod network;
mod ops;
pub mod options;
pub mod pods;
pub mod prepare;
pub mod record;
pub mod secrets;
pub mod stats;
mod stdin;
mod terminal;
pub mod tuning;
pub mod volumes;

use std::path::PathBuf;

pub use api::{AsyncEngine, CreateRequest, LogsOptions};
pub use error::Error;
pub use ops::{human_since, parse_signal, status_name, status_text, ExecOptions};
pub use record::{ContainerRecord, CreateOptions, NetworkMode, RestartPolicy, State, Status};

use estiba_runtime::{Host, Runtime};
use estiba_store::Store;
use prepare::ContainerDirs;
use record::Records;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The lifecycle for one user's store.
pub struct Engine {
    pub host: Host,
    /// Persistent data: images and containers.
    pub data: PathBuf,
    /// Volatile state: runtime state, pause process.
    pub run: PathBuf,
    pub store: Store,
    pub volumes: volumes::Volumes,
    pub secrets: secrets::Secrets,
    /// The event journal (`estiba events`): every change this engine makes
    /// is appended here by the process that makes it.
    pub events: estiba_events::Journal,
    /// Passed on to the processes estiba starts for itself (monitors).
    pub log_level: String,
    /// The estiba binary that monitors and network helpers run as: this
    /// program by default; a library caller that is not estiba names it
    /// with [`Engine::with_binary`].
    pub exe: PathBuf,
    /// Judges a container before its record is written (the admission
    /// policy, which the caller builds): warnings to show, or a refusal.
    pub admission: Option<Admission>,
    pub(crate) records: Records,
}

/// Given the record about to be written and the image's config: Ok with
/// warnings, or Err with why the container is refused.
pub type Admission = std::sync::Arc<
    dyn Fn(&ContainerRecord, &serde_json::Value) -> std::result::Result<Vec<String>, String>
        + Send
        + Sync,
>;

impl Engine {
    pub fn new(host: Host, data: PathBuf, run: PathBuf) -> Result<Self> {
        let store = Store::open(&data.join("storage"), host.rootless)?;
        let records = Records::new(&data);
        let volumes = volumes::Volumes::new(&data);
        let secrets = secrets::Secrets::new(&data);
        let events = estiba_events::Journal::new(&data);
        Ok(Engine {
            host,
            data,
            run,
            store,
            volumes,
            secrets,
            events,
            log_level: "warn".into(),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("estiba")),
            admission: None,
            records,
        })
    }

    /// The same engine, starting monitors and helpers as `estiba`.
    pub fn with_binary(mut self, estiba: PathBuf) -> Self {
        self.exe = estiba;
        self
    }

    pub fn dirs(&self, id: &str) -> ContainerDirs {
        ContainerDirs {
            root: self.records.dir(id),
            run: self.run.join("containers").join(id),
        }
    }

    fn runtime(&self, record: &ContainerRecord) -> Result<Box<dyn Runtime>> {
        Ok(estiba_runtime::backend::select(
            record.options.runtime.as_deref(),
            &self.host,
            &self.run.join("runtime"),
        )?)
    }
}
