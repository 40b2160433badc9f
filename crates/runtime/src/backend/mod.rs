//! Runtime backends behind one trait. A backend takes a bundle (a directory
//! with `config.json`) and runs it; estiba never execs the container itself.

#[cfg(feature = "libcontainer")]
pub mod in_process;
mod oci_binary;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use oci_binary::OciBinary;

use crate::host::{CgroupMode, Host};
use crate::{Error, Result};

/// Written into the bundle by a foreground `run` once the container's init
/// exists: its pid in our pid namespace.
pub const PID_FILE: &str = "init.pid";

/// Told the pid of a foreground container's init once it runs (so stop,
/// kill and exec from another terminal can reach it).
pub type Started<'a> = &'a (dyn Fn(i32) + Sync);

/// Calls `started` with the pid a runtime writes to `pid_file`, while
/// `run` runs: a runtime process (runc, the libcontainer helper) writes the
/// file once the init exists. The watcher ends with `run`, so `started`
/// never runs after `run` has returned.
pub(crate) fn watch_pid_file<T>(
    pid_file: &Path,
    started: Started<'_>,
    run: impl FnOnce() -> T,
) -> T {
    let _ = std::fs::remove_file(pid_file);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let pid = std::fs::read_to_string(pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok());
                if let Some(pid) = pid {
                    started(pid);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let out = run();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

/// Where a created container's stdin, stdout and stderr come from and go.
/// With a terminal (`process.terminal` in the spec), the runtime instead
/// sends the terminal's master to `console_socket`, and the container's
/// three streams are its other end.
#[derive(Debug)]
pub struct ContainerIo {
    /// Empty unless the container keeps stdin open (`-i`).
    pub stdin: std::process::Stdio,
    pub stdout: std::process::Stdio,
    pub stderr: std::process::Stdio,
    /// The socket's path relative to the bundle, where the runtime is
    /// started (a unix socket's path is at most 107 bytes).
    pub console_socket: Option<PathBuf>,
}

impl ContainerIo {
    /// The caller's own stdout and stderr.
    pub fn inherit() -> Self {
        ContainerIo::new(
            std::process::Stdio::inherit(),
            std::process::Stdio::inherit(),
        )
    }

    /// Output to `stdout` and `stderr`, an empty stdin, no terminal.
    pub fn new(stdout: std::process::Stdio, stderr: std::process::Stdio) -> Self {
        ContainerIo {
            stdin: std::process::Stdio::null(),
            stdout,
            stderr,
            console_socket: None,
        }
    }
}

/// A container's state as the runtime reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub pid: i32,
}

/// The runc CLI contract: create, start, state, kill, delete; plus a
/// foreground `run` whose stdio passes through and which returns the exit
/// code docker would (the command's, or 128 + the signal that killed it).
pub trait Runtime {
    fn name(&self) -> &str;
    /// Creates the container, leaving its init waiting for `start`, with
    /// `io` as its stdout and stderr. Returns the init's pid (in our pid
    /// namespace). The caller should be the init's subreaper to wait for it.
    fn create(&self, id: &str, bundle: &Path, io: ContainerIo) -> Result<i32>;
    fn start(&self, id: &str) -> Result<()>;
    fn state(&self, id: &str) -> Result<State>;
    fn kill(&self, id: &str, signal: i32) -> Result<()>;
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// Freezes every process of the container (the cgroup freezer).
    fn pause(&self, id: &str) -> Result<()> {
        Err(crate::Error::Runtime {
            runtime: self.name().to_string(),
            op: "pause the container",
            message: format!("{id}: this backend cannot pause containers"),
        })
    }
    /// Thaws what `pause` froze.
    fn resume(&self, id: &str) -> Result<()> {
        Err(crate::Error::Runtime {
            runtime: self.name().to_string(),
            op: "resume the container",
            message: format!("{id}: this backend cannot pause containers"),
        })
    }
    /// Runs a process (an OCI `process.json`) in the running container's
    /// namespaces and cgroup, under its seccomp profile. In the foreground
    /// its stdout and stderr are ours, and its stdin too with `stdin`
    /// (otherwise empty), and its exit code is returned; detached, 0.
    fn exec(&self, id: &str, process: &Path, detach: bool, stdin: bool) -> Result<u8>;

    /// Runs a container in the foreground and removes it from the runtime
    /// afterwards; `started` hears the init's pid once it runs. The default
    /// drives create/start/wait/delete, with estiba as the subreaper that
    /// collects the container's exit status.
    fn run(&self, id: &str, bundle: &Path, started: Started<'_>) -> Result<u8> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .map_err(std::io::Error::from)
            .map_err(|e| Error::Sys {
                op: "becoming subreaper",
                source: e,
            })?;
        let pid = self.create(id, bundle, ContainerIo::inherit())?;
        let forwarder = crate::process::forward_signals(pid as u32);
        let result = self.start(id).and_then(|()| {
            started(pid);
            crate::process::wait_pid(pid)
        });
        drop(forwarder);
        let deleted = self.delete(id, true);
        let code = result?;
        deleted?;
        Ok(code)
    }
}

/// Picks a runtime: `libcontainer` (in-process), a name (`runc`, `crun`,
/// `youki`) or a path, or by default
/// the fastest one that works here for this user.
pub fn select(choice: Option<&str>, host: &Host, state_root: &Path) -> Result<Box<dyn Runtime>> {
    if let Some(choice) = choice {
        #[cfg(feature = "libcontainer")]
        if choice == "libcontainer" {
            return Ok(Box::new(in_process::InProcess::new(state_root)));
        }
        let path = if choice.contains('/') {
            PathBuf::from(choice)
        } else {
            estiba_os::which(choice).ok_or_else(|| Error::InvalidOption {
                what: "runtime",
                value: choice.to_string(),
                why: "not found in $PATH".into(),
            })?
        };
        return Ok(Box::new(OciBinary::new(path, state_root)));
    }
    // In-process libcontainer is the fastest; it needs root on cgroup v1 hosts.
    #[cfg(feature = "libcontainer")]
    if !host.rootless {
        return Ok(Box::new(in_process::InProcess::new(state_root)));
    }
    // crun 1.8 refuses hybrid cgroup hosts, so it is tried only on pure v2.
    let mut candidates = vec!["runc", "youki"];
    if host.cgroup == CgroupMode::V2 {
        candidates.insert(0, "crun");
    }
    candidates
        .into_iter()
        .find_map(estiba_os::which)
        .map(|p| Box::new(OciBinary::new(p, state_root)) as Box<dyn Runtime>)
        .ok_or(Error::NoRuntime)
}
