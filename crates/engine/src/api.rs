//! The engine as a library, for the programs that drive containers: the
//! CLI, the cluster's node agent and the Docker API server.
//!
//! [`Engine`] is the blocking API; every method takes typed values and
//! returns typed values or a typed [`Error`]. [`AsyncEngine`] is the same
//! for tokio programs: each call runs on tokio's blocking pool, and the
//! event journal arrives on a channel. Nothing here forks inside the async
//! runtime: a container is started by spawning its monitor (`estiba
//! internal-monitor`, a process of its own), which does the mounts and
//! the runtime calls that need a single-threaded process.
//!
//! Rootless, the program must already be inside the user's namespace:
//! call `estiba_runtime::userns::enter_with` first thing in `main`, while
//! it is single-threaded (the estiba binary does).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use estiba_events::{Event, Filter, Start};
use nix::sys::signal::Signal;

use crate::health::HealthFlags;
use crate::logs::LogLine;
use crate::ops::ExecOptions;
use crate::record::{ContainerRecord, CreateOptions, Status};
use crate::stats::Usage;
use crate::{Engine, Error, Result};

/// What to create: the image, an optional name, the options, and health
/// flags to merge with the image's HEALTHCHECK.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    pub options: CreateOptions,
    pub health: HealthFlags,
}

impl CreateRequest {
    /// A detached container of `image` with default options.
    pub fn new(image: impl Into<String>) -> CreateRequest {
        CreateRequest {
            image: image.into(),
            options: CreateOptions {
                detached: true,
                ..CreateOptions::default()
            },
            ..CreateRequest::default()
        }
    }
}

/// Which log lines to return.
#[derive(Clone, Debug, Default)]
pub struct LogsOptions {
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only the last N lines (after `since`).
    pub tail: Option<usize>,
}

impl Engine {
    /// Starts a created or exited container under its monitor and returns
    /// its record once it runs. Journals `start`.
    pub fn start(&self, wanted: &str) -> Result<ContainerRecord> {
        let r = self.find(wanted)?;
        if matches!(r.state.status, Status::Running | Status::Restarting) {
            return Err(Error::AlreadyRunning { name: r.name });
        }
        self.start_detached(&r.id)?;
        self.find(&r.id)
    }

    /// The container's record, reconciled with what is alive.
    pub fn inspect(&self, wanted: &str) -> Result<ContainerRecord> {
        self.find(wanted)
    }

    /// The container's log lines.
    pub fn logs(&self, wanted: &str, options: &LogsOptions) -> Result<Vec<LogLine>> {
        let r = self.find(wanted)?;
        let mut lines = crate::logs::read_all(&self.log_path(&r.id));
        if let Some(since) = options.since {
            lines.retain(|l| humantime::parse_rfc3339_weak(&l.time).is_ok_and(|t| t >= since));
        }
        if let Some(n) = options.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        Ok(lines)
    }

    /// CPU, memory and process counts of a running container, sampled over
    /// `window`.
    pub fn stats(&self, wanted: &str, window: Duration) -> Result<Usage> {
        let r = self.find(wanted)?;
        if r.state.status != Status::Running {
            return Err(Error::NotRunning { name: r.name });
        }
        Ok(crate::stats::usage(r.state.pid, window))
    }
}

/// The engine for tokio programs. Cheap to clone.
#[derive(Clone)]
pub struct AsyncEngine {
    engine: Arc<Engine>,
}

impl AsyncEngine {
    pub fn new(engine: Engine) -> AsyncEngine {
        AsyncEngine {
            engine: Arc::new(engine),
        }
    }

    /// The blocking engine underneath.
    pub fn blocking(&self) -> &Engine {
        &self.engine
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| Error::Invalid {
                what: "engine call",
                value: String::new(),
                why: e.to_string(),
            })?
    }

    /// See [`Engine::create`].
    pub async fn create(&self, request: CreateRequest) -> Result<ContainerRecord> {
        self.run(move |e| e.create(request)).await
    }

    /// See [`Engine::start`].
    pub async fn start(&self, id: &str) -> Result<ContainerRecord> {
        let id = id.to_string();
        self.run(move |e| e.start(&id)).await
    }

    /// See [`Engine::stop`].
    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<ContainerRecord> {
        let id = id.to_string();
        self.run(move |e| e.stop(&id, timeout)).await
    }

    /// See [`Engine::kill`].
    pub async fn kill(&self, id: &str, signal: Signal) -> Result<ContainerRecord> {
        let id = id.to_string();
        self.run(move |e| e.kill(&id, signal)).await
    }

    /// See [`Engine::remove`].
    pub async fn remove(&self, id: &str, force: bool) -> Result<ContainerRecord> {
        let id = id.to_string();
        self.run(move |e| e.remove(&id, force)).await
    }

    /// See [`Engine::inspect`].
    pub async fn inspect(&self, id: &str) -> Result<ContainerRecord> {
        let id = id.to_string();
        self.run(move |e| e.inspect(&id)).await
    }

    /// Every container, newest first.
    pub async fn list(&self) -> Result<Vec<ContainerRecord>> {
        self.run(|e| e.list()).await
    }

    /// See [`Engine::wait`].
    pub async fn wait(&self, id: &str) -> Result<i32> {
        let id = id.to_string();
        self.run(move |e| e.wait(&id)).await
    }

    /// See [`Engine::exec`].
    pub async fn exec(&self, id: &str, options: ExecOptions) -> Result<u8> {
        let id = id.to_string();
        self.run(move |e| e.exec(&id, &options)).await
    }

    /// See [`Engine::logs`].
    pub async fn logs(&self, id: &str, options: LogsOptions) -> Result<Vec<LogLine>> {
        let id = id.to_string();
        self.run(move |e| e.logs(&id, &options)).await
    }

    /// See [`Engine::stats`].
    pub async fn stats(&self, id: &str, window: Duration) -> Result<Usage> {
        let id = id.to_string();
        self.run(move |e| e.stats(&id, window)).await
    }

    /// The journal's events that pass `filter`, from `start` on, as they
    /// are written. A thread follows the journal; it ends soon after the
    /// receiver is dropped.
    pub fn events(
        &self,
        filter: Filter,
        start: Start,
    ) -> Result<tokio::sync::mpsc::Receiver<Event>> {
        let mut follower = self.engine.events.follow(start)?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        std::thread::spawn(move || loop {
            match follower.next_timeout(Duration::from_millis(500)) {
                Ok(Some(e)) if filter.matches(&e) => {
                    if tx.blocking_send(e).is_err() {
                        return;
                    }
                }
                Ok(_) if tx.is_closed() || filter.past_until(SystemTime::now()) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "following the event journal");
                    return;
                }
            }
        });
        Ok(rx)
    }
}
