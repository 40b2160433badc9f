//! Any OCI runtime binary (runc, crun, youki) driven through the runc CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ContainerIo, Runtime, State};
use crate::error::IoContext;
use crate::{Error, Result};

#[derive(Debug)]
pub struct OciBinary {
    path: PathBuf,
    name: String,
    /// The runtime's `--root`: where it keeps container state.
    state_root: PathBuf,
}

impl OciBinary {
    pub fn new(path: PathBuf, state_root: &Path) -> Self {
        let name = path
            .file_name()
            .map_or_else(|| "runtime".into(), |n| n.to_string_lossy().into_owned());
        OciBinary {
            path,
            name,
            state_root: state_root.to_path_buf(),
        }
    }

    fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.state_root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        cmd
    }

    /// Runs a short runtime command with captured output.
    fn simple(&self, op: &'static str, args: &[&str]) -> Result<String> {
        let out = self
            .command(None)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ctx("running", &self.path)?;
        if !out.status.success() {
            return Err(Error::Runtime {
                runtime: self.name.clone(),
                op,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a foreground runtime command: its stdio is ours and signals are
    /// forwarded. The exit code alone cannot tell a runtime failure from the
    /// command's own exit status; the runtime's JSON log can.
    fn attached(&self, mut cmd: Command, stdin: Stdio, log: &Path, op: &'static str) -> Result<u8> {
        let caught = crate::process::catch_signals();
        // Without `-i` the container's stdin is empty, as docker's is.
        // Inherited from a terminal, a rootless runc (which relays stdio
        // through pipes) would read it from a background process group and
        // spin on SIGTTIN: `-i` is for a caller that hands over a pipe.
        cmd.stdin(stdin);
        let mut child = cmd.spawn().ctx("running", &self.path)?;
        let forwarder = caught.forward_to(child.id());
        let status = child.wait().ctx("waiting for", &self.path);
        drop(forwarder);
        let code = crate::process::exit_code(status?);
        let failed = fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(r#""level":"error""#) || l.contains(r#""level":"fatal""#));
        if failed {
            return Err(self.failure(op, log));
        }
        Ok(code)
    }

    /// The runtime's error from its JSON log, mapped to docker's exit codes
    /// where it says the command could not be found or run.
    fn failure(&self, op: &'static str, log: &Path) -> Error {
        let text = fs::read_to_string(log).unwrap_or_default();
        let message = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error" || v["level"] == "fatal")
            .find_map(|v| v["msg"].as_str().map(str::to_string))
            .unwrap_or_else(|| "failed without a message".into());
        if message.contains("executable file not found")
            || message.contains("no such file or directory") && message.contains("exec")
        {
            return Error::CommandNotFound(message);
        }
        if message.contains("permission denied") && message.contains("exec") {
            return Error::CommandNotExecutable(message);
        }
        Error::Runtime {
            runtime: self.name.clone(),
            op,
            message,
        }
    }
}

impl Runtime for OciBinary {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, id: &str, bundle: &Path, io: ContainerIo) -> Result<i32> {
        let log = bundle.join("runtime.log");
        let pid_file = bundle.join(super::PID_FILE);
        let mut cmd = self.command(Some(&log));
        cmd.arg("create").arg("--bundle").arg(bundle);
        if let Some(socket) = &io.console_socket {
            cmd.current_dir(bundle).arg("--console-socket").arg(socket);
        }
        let status = cmd
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(io.stdin)
            .stdout(io.stdout)
            .stderr(io.stderr)
            .status()
            .ctx("running", &self.path)?;
        if !status.success() {
            return Err(self.failure("create the container", &log));
        }
        let pid = fs::read_to_string(&pid_file).ctx("reading", &pid_file)?;
        pid.trim().parse().map_err(|_| Error::Runtime {
            runtime: self.name.clone(),
            op: "report the container pid",
            message: format!("bad pid file content {pid:?}"),
        })
    }

    fn start(&self, id: &str) -> Result<()> {
        self.simple("start the container", &["start", id]).map(drop)
    }

    fn state(&self, id: &str) -> Result<State> {
        let out = self.simple("report state", &["state", id])?;
        serde_json::from_str(&out).map_err(|e| Error::Runtime {
            runtime: self.name.clone(),
            op: "report state",
            message: e.to_string(),
        })
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.simple("signal the container", &["kill", id, &signal.to_string()])
            .map(drop)
    }

    fn pause(&self, id: &str) -> Result<()> {
        self.simple("pause the container", &["pause", id]).map(drop)
    }

    fn resume(&self, id: &str) -> Result<()> {
        self.simple("resume the container", &["resume", id])
            .map(drop)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        // runc, crun and youki keep a container's state in `<root>/<id>`;
        // without it there is nothing to delete (`runc run` deletes its
        // own), and no runtime process need start to say so.
        if !self.state_root.join(id).exists() {
            return Ok(());
        }
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.simple("delete the container", &args).map(drop)
    }

    fn exec(&self, id: &str, process: &Path, detach: bool, stdin: bool) -> Result<u8> {
        let log = process.with_extension("log");
        let mut cmd = self.command(Some(&log));
        cmd.arg("exec").arg("--process").arg(process);
        if detach {
            cmd.arg("--detach");
        }
        cmd.arg(id);
        let stdin = if stdin && !detach {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let result = self.attached(cmd, stdin, &log, "exec in the container");
        let _ = fs::remove_file(&log);
        result
    }

    /// `runc run` does create, start, wait and delete in one process: one
    /// runtime start instead of three on the hot path.
    fn run(&self, id: &str, bundle: &Path, started: super::Started<'_>) -> Result<u8> {
        let log = bundle.join("runtime.log");
        let pid_file = bundle.join(super::PID_FILE);
        let mut cmd = self.command(Some(&log));
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        super::watch_pid_file(&pid_file, started, || {
            self.attached(cmd, Stdio::null(), &log, "run the container")
        })
    }
}
