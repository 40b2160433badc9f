//! The helper processes networks run (DNS responders, port forwarders,
//! slirp4netns), each recorded in a file as its pid and start time: the
//! pair names one process for good, even once the pid is reused.

use std::path::{Path, PathBuf};

use crate::{Error, IoContext, Result};

/// The recorded process's pid, if it still runs (and is not a zombie).
pub fn alive(path: &Path) -> Option<i32> {
    alive_as(&std::fs::read_to_string(path).ok()?)
}

/// The pid in `pid starttime` if that process still runs.
fn alive_as(text: &str) -> Option<i32> {
    let (pid, started) = text.trim().split_once(' ')?;
    let (pid, started): (i32, u64) = (pid.parse().ok()?, started.parse().ok()?);
    (estiba_os::process::live_start_time(pid) == Some(started)).then_some(pid)
}

/// Records process `pid` at `path`.
pub fn record(path: &Path, pid: i32) -> Result<()> {
    let started = estiba_os::process::start_time(pid).ok_or_else(|| {
        Error::Unsupported(format!("the process for {} exited at once", path.display()))
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    estiba_os::write_atomic(path, format!("{pid} {started}\n").as_bytes())?;
    Ok(())
}

/// Stops the recorded process, if it runs, and forgets it.
pub fn stop(path: &Path) {
    if let Some(pid) = alive(path).and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = std::fs::remove_file(path);
}

/// Like [`stop`], and waits (up to two seconds) until the process is gone:
/// what it held open must be free before it is removed.
pub fn stop_and_wait(path: &Path) {
    let recorded = std::fs::read_to_string(path).ok();
    stop(path);
    let Some(text) = recorded else { return };
    for _ in 0..40 {
        if alive_as(&text).is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A directory of helpers of one kind, one per key (a network's name, a
/// container's id), each with a lock for starting and stopping it.
pub struct Helpers {
    dir: PathBuf,
}

impl Helpers {
    pub fn new(dir: PathBuf) -> Helpers {
        Helpers { dir }
    }

    pub fn pidfile(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.pid"))
    }

    pub fn log(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.log"))
    }

    pub fn lock(&self, key: &str) -> Result<estiba_os::LockFile> {
        crate::state::lock(&self.dir.join(format!("{key}.lock")))
    }

    pub fn running(&self, key: &str) -> Option<i32> {
        alive(&self.pidfile(key))
    }

    /// Records a started helper (the helper itself, while its starter
    /// holds the lock).
    pub fn record(&self, key: &str, pid: i32) -> Result<()> {
        record(&self.pidfile(key), pid)
    }

    /// Forgets the helper if `pid` is the one recorded (None: any).
    pub fn forget(&self, key: &str, pid: Option<i32>) {
        let path = self.pidfile(key);
        let recorded = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok());
        if pid.is_none() || recorded == pid {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Stops the helper, if one runs, and removes its files.
    pub fn stop(&self, key: &str) -> Result<()> {
        let _lock = self.lock(key)?;
        stop(&self.pidfile(key));
        let _ = std::fs::remove_file(self.log(key));
        let _ = std::fs::remove_file(self.dir.join(format!("{key}.lock")));
        Ok(())
    }
}
