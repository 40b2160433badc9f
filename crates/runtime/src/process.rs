//! Process plumbing shared by the foreground paths: forwarding signals to a
//! child and turning wait statuses into docker's exit codes.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

use crate::error::SysContext;
use crate::Result;

/// Forwards INT, TERM, HUP, QUIT, USR1 and USR2 to `pid` until dropped.
pub struct SignalForwarder {
    handle: Option<Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn forward_signals(pid: u32) -> SignalForwarder {
    catch_signals().forward_to(pid)
}

/// Signals caught (and queued) before there is a pid to forward them to.
/// Installing the handlers starts no thread, so a process that must stay
/// single-threaded until its container starts can catch signals from the
/// first moment: one that arrives in between is forwarded, not fatal.
pub struct CaughtSignals(Option<Signals>);

pub fn catch_signals() -> CaughtSignals {
    match Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]) {
        Ok(s) => CaughtSignals(Some(s)),
        Err(_) => {
            tracing::warn!("cannot install signal handlers: signals will not be forwarded");
            CaughtSignals(None)
        }
    }
}

impl CaughtSignals {
    /// Forwards what was caught, and what comes, to `pid` until dropped.
    pub fn forward_to(self, pid: u32) -> SignalForwarder {
        let Some(signals) = self.0 else {
            return SignalForwarder {
                handle: None,
                thread: None,
            };
        };
        forward_from(signals, pid)
    }
}

fn forward_from(mut signals: Signals, pid: u32) -> SignalForwarder {
    let handle = signals.handle();
    let thread = std::thread::spawn(move || {
        for sig in signals.forever() {
            if let (Ok(pid), Ok(sig)) = (i32::try_from(pid), Signal::try_from(sig)) {
                tracing::debug!(?sig, pid, "forwarding signal");
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            }
        }
    });
    SignalForwarder {
        handle: Some(handle),
        thread: Some(thread),
    }
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.close();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Docker's convention: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(255),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        _ => 255,
    }
}

/// Waits for a process that is our child (directly or as subreaper).
pub fn wait_pid(pid: i32) -> Result<u8> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(u8::try_from(code & 0xff).unwrap_or(255)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Ok(u8::try_from(128 + sig as i32).unwrap_or(255))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).sys("waiting for the container"),
        }
    }
}
