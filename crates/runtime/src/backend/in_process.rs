//! youki's `libcontainer`, run in-process: no runtime binary to start.
//!
//! libcontainer clones the container's processes itself, which is only sound
//! in a single-threaded process and never inside an async runtime. So
//! creation happens in a helper: estiba re-executes itself with a hidden
//! command (`internal-libcontainer`), a fresh single-threaded process that
//! builds the container, and for `run` also starts and waits for it. State
//! lives under the backend's root like runc's, so start, kill, state and
//! delete can load the container from any process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;

use super::{ContainerIo, Runtime, State};
use crate::error::{IoContext, SysContext};
use crate::{Error, Result};

/// The hidden command the helper runs as: `estiba internal-libcontainer OP ROOT BUNDLE ID`.
pub const HELPER_COMMAND: &str = "internal-libcontainer";

/// Written into the bundle by a helper that failed, so the parent can tell
/// the helper's error from the container's own exit status.
const HELPER_ERROR: &str = "helper-error.json";

#[derive(Debug)]
pub struct InProcess {
    state_root: PathBuf,
}

impl InProcess {
    pub fn new(state_root: &Path) -> Self {
        InProcess {
            state_root: state_root.join("libcontainer"),
        }
    }

    fn err(op: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Runtime {
            runtime: "libcontainer".into(),
            op,
            message: e.to_string(),
        }
    }

    fn load(&self, id: &str) -> Result<Container> {
        Container::load(self.state_root.join(id)).map_err(|e| Self::err("load the container", e))
    }

    /// Runs the helper for `op` and returns its exit status, or the error it recorded.
    fn helper(&self, op: &str, id: &str, bundle: &Path, io: ContainerIo) -> Result<u8> {
        if io.console_socket.is_some() {
            return Err(Self::err(
                "give the container a terminal",
                "the in-process backend has none: use --runtime runc",
            ));
        }
        let error_file = error_file(bundle);
        let _ = fs::remove_file(&error_file);
        let caught = crate::process::catch_signals();
        let mut child = Command::new("/proc/self/exe")
            .arg(HELPER_COMMAND)
            .arg(op)
            .arg(&self.state_root)
            .arg(bundle)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(io.stdout)
            .stderr(io.stderr)
            .spawn()
            .ctx("starting", "the libcontainer helper")?;
        let forwarder = caught.forward_to(child.id());
        let status = child.wait().ctx("waiting for", "the libcontainer helper");
        drop(forwarder);
        let code = crate::process::exit_code(status?);
        match fs::read_to_string(&error_file) {
            Ok(text) => Err(decode_error(&text)),
            Err(_) => Ok(code),
        }
    }
}

/// Our stdout and stderr for the container, except the host's /dev/null.
///
/// libcontainer 0.7's init replaces any stdio descriptor that is the host's
/// /dev/null with the container's /dev/null, opened read-only, so every
/// write fails with EBADF (`echo hi >/dev/null` exits 1; runc opens it
/// read-write). /dev/zero discards writes exactly as /dev/null does and is
/// another device, so it is left alone. (A closed descriptor is the same
/// case: Rust's runtime opens /dev/null on a closed stdin, stdout or stderr
/// before `main`.)
fn inherit_writable() -> ContainerIo {
    let stream = |fd: u32| match host_null(fd) {
        true => fs::OpenOptions::new()
            .write(true)
            .open("/dev/zero")
            .map_or_else(|_| std::process::Stdio::inherit(), Into::into),
        false => std::process::Stdio::inherit(),
    };
    ContainerIo::new(stream(1), stream(2))
}

/// The same fix for a container run in this process: our own stdout and
/// stderr, where they are the host's /dev/null, become /dev/zero (what we
/// write to them is discarded either way).
fn discard_into_zero() -> Result<()> {
    let zero = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/zero")
            .ctx("opening", "/dev/zero")
    };
    if host_null(1) {
        rustix::stdio::dup2_stdout(zero()?).ctx("redirecting", "stdout")?;
    }
    if host_null(2) {
        rustix::stdio::dup2_stderr(zero()?).ctx("redirecting", "stderr")?;
    }
    Ok(())
}

/// True if this process has one thread: libcontainer may clone from it.
fn single_threaded() -> bool {
    fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// True if our descriptor `fd` is the host's /dev/null.
fn host_null(fd: u32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (Ok(ours), Ok(null)) = (
        fs::metadata(format!("/proc/self/fd/{fd}")),
        fs::metadata("/dev/null"),
    ) else {
        return false;
    };
    ours.file_type().is_char_device() && ours.rdev() == null.rdev()
}

/// Where a helper records its failure: in the bundle, or beside a process JSON.
fn error_file(bundle_or_process: &Path) -> PathBuf {
    if bundle_or_process.is_dir() {
        bundle_or_process.join(HELPER_ERROR)
    } else {
        bundle_or_process.with_extension("error.json")
    }
}

fn exec_in_helper(state_root: &Path, process: &Path, id: &str, detach: bool) -> Result<u8> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(std::io::Error::from)
        .sys("becoming subreaper")?;
    let pid = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state_root)
        .map_err(|e| InProcess::err("prepare the exec", e))?
        .with_executor(DefaultExecutor {})
        .as_tenant()
        .with_process(Some(process))
        .with_detach(detach)
        .build()
        .map_err(|e| InProcess::err("exec in the container", e))?;
    if detach {
        return Ok(0);
    }
    let forwarder = crate::process::forward_signals(pid.as_raw() as u32);
    let code = crate::process::wait_pid(pid.as_raw());
    drop(forwarder);
    code
}

fn decode_error(text: &str) -> Error {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let message = v["message"].as_str().unwrap_or("failed").to_string();
    match v["code"].as_u64() {
        Some(127) => Error::CommandNotFound(message),
        Some(126) => Error::CommandNotExecutable(message),
        _ => InProcess::err("run the container", message),
    }
}

impl Runtime for InProcess {
    fn name(&self) -> &str {
        "libcontainer"
    }

    fn create(&self, id: &str, bundle: &Path, io: ContainerIo) -> Result<i32> {
        self.helper("create", id, bundle, io)?;
        let c = self.load(id)?;
        c.pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| Self::err("report the container pid", "no pid"))
    }

    fn start(&self, id: &str) -> Result<()> {
        self.load(id)?
            .start()
            .map_err(|e| Self::err("start the container", e))
    }

    fn state(&self, id: &str) -> Result<State> {
        let c = self.load(id)?;
        Ok(State {
            id: id.to_string(),
            status: c.status().to_string(),
            pid: c.pid().map_or(0, |p| p.as_raw()),
        })
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let signal = Signal::try_from(signal).map_err(|e| Self::err("signal the container", e))?;
        self.load(id)?
            .kill(signal, true)
            .map_err(|e| Self::err("signal the container", e))
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        if !self.state_root.join(id).join("state.json").exists() {
            return Ok(());
        }
        self.load(id)?
            .delete(force)
            .map_err(|e| Self::err("delete the container", e))
    }

    fn exec(&self, id: &str, process: &Path, detach: bool, _stdin: bool) -> Result<u8> {
        // The helper inherits all of our stdio.
        let op = if detach { "exec-detached" } else { "exec" };
        self.helper(op, id, process, ContainerIo::inherit())
    }

    fn run(&self, id: &str, bundle: &Path, started: super::Started<'_>) -> Result<u8> {
        if single_threaded() {
            // No helper to start: this process is what libcontainer needs.
            discard_into_zero()?;
            return run_here(&self.state_root, bundle, id, started);
        }
        let pid_file = bundle.join(super::PID_FILE);
        super::watch_pid_file(&pid_file, started, || {
            self.helper("run", id, bundle, inherit_writable())
        })
    }
}

/// The helper process's body. Must be called while single-threaded. For
/// the exec operations, `bundle` is the path of the process JSON.
pub fn helper_main(op: &str, state_root: &Path, bundle: &Path, id: &str) -> u8 {
    let result = match op {
        "create" => build(state_root, bundle, id).map(|_| 0),
        "run" => run_in_helper(state_root, bundle, id),
        "exec" => exec_in_helper(state_root, bundle, id, false),
        "exec-detached" => exec_in_helper(state_root, bundle, id, true),
        other => Err(InProcess::err(
            "run the helper",
            format!("unknown operation {other:?}"),
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let record = serde_json::json!({ "code": e.exit_code(), "message": e.to_string() });
            let _ = fs::write(error_file(bundle), record.to_string());
            e.exit_code()
        }
    }
}

fn build(state_root: &Path, bundle: &Path, id: &str) -> Result<Container> {
    fs::create_dir_all(state_root).ctx("creating", state_root)?;
    ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state_root)
        .map_err(|e| InProcess::err("prepare the container", e))?
        .with_executor(DefaultExecutor {})
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| InProcess::err("create the container", e))
}

fn run_in_helper(state_root: &Path, bundle: &Path, id: &str) -> Result<u8> {
    // Tell estiba where the container is (for stop, kill, exec).
    let pid_file = bundle.join(super::PID_FILE);
    let started = |pid: i32| {
        let _ = fs::write(&pid_file, pid.to_string());
    };
    run_here(state_root, bundle, id, &started)
}

/// Builds, starts and waits for the container in this process, which must
/// be single-threaded until the container runs.
fn run_here(state_root: &Path, bundle: &Path, id: &str, started: super::Started<'_>) -> Result<u8> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(std::io::Error::from)
        .sys("becoming subreaper")?;
    // Caught from now on: a signal that lands between the container's start
    // and the forwarder would otherwise kill this helper and orphan it.
    let caught = crate::process::catch_signals();
    let mut container = build(state_root, bundle, id)?;
    let result = container
        .start()
        .map_err(|e| InProcess::err("start the container", e))
        .and_then(|()| {
            container
                .pid()
                .ok_or_else(|| InProcess::err("start the container", "no pid"))
        })
        .and_then(|pid| {
            started(pid.as_raw());
            // Threads are fine now: the container's processes exist.
            let forwarder = caught.forward_to(pid.as_raw() as u32);
            let code = crate::process::wait_pid(pid.as_raw());
            drop(forwarder);
            code
        });
    let deleted = container
        .delete(true)
        .map_err(|e| InProcess::err("delete the container", e));
    let code = result?;
    deleted?;
    Ok(code)
}
