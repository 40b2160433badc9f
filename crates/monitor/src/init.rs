//! `estiba-monitor --init CMD ARGS…`: a container's pid 1 when it asks for
//! an init (`--init`, ECS's `initProcessEnabled`), as docker's tini is.
//!
//! The kernel delivers to a pid 1 only the signals it handles, and orphans
//! become its children; a shell or a server that was never meant to be
//! pid 1 neither stops on SIGTERM nor reaps. This init runs the command as
//! its child, passes every terminating signal on to it, reaps whatever
//! exits, and exits as the command did (128 + the signal if one killed it).

use std::process::{Command, ExitCode};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// What is passed on to the command.
const FORWARDED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn main(command: &[String]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("estiba-init: no command given");
        return ExitCode::from(2);
    };
    // The command starts first: a child inherits its parent's signal
    // mask, and the command must see its signals as usual.
    let child = match Command::new(program).args(args).spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("estiba-init: {program}: {e}");
            // As a shell answers a command it cannot find or run.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return ExitCode::from(code);
        }
    };
    // Then blocked here and waited for one at a time. (A signal in the
    // moment between is lost, as it is to any pid 1 without a handler.)
    let mut set = SigSet::empty();
    for s in FORWARDED.iter().chain([&Signal::SIGCHLD]) {
        set.add(*s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("estiba-init: blocking signals: {e}");
        return ExitCode::from(1);
    }
    // The command may have exited before SIGCHLD was blocked.
    if let Some(code) = reap(child) {
        return ExitCode::from(code);
    }
    loop {
        let signal = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        if let Some(code) = reap(child) {
            return ExitCode::from(code);
        }
    }
}

/// Reaps every exited child; the command's exit code once it is among them.
fn reap(child: Pid) -> Option<u8> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return Some(code as u8),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                return Some(128u8.wrapping_add(signal as u8))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
