//! The per-container monitor: what conmon is to podman, in one small
//! process per detached container, started as `estiba internal-monitor ID`.
//!
//! It holds the container's stdout and stderr and writes them to the log,
//! records when the container starts and exits, and restarts it as its
//! policy says, with an exponential backoff so a crashing container never
//! spins the CPU. It lives in its own session and mount namespace, so the
//! container's root filesystem stays mounted exactly as long as it runs.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use estiba_runtime::{ContainerIo, Runtime};
use rustix::event::{PollFd, PollFlags};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::error::IoContext;
use crate::logs::{LogWriter, MAX_LOG_BYTES};
use crate::prepare::ContainerDirs;
use crate::record::{ContainerRecord, RestartPolicy, Status};
use crate::{Engine, Error, Result};

/// The hidden command a monitor runs as.
pub const MONITOR_COMMAND: &str = "internal-monitor";

/// Backoff between restarts: doubles from the first to the cap, and starts
/// over once a run lasted longer than the reset time.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// How long a start's wait trusts an unchanged record stamp.
const RECHECK: Duration = Duration::from_millis(50);

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl Engine {
    /// Starts the monitor for a created or exited container and waits until
    /// the container runs (or failed to).
    pub fn start_detached(&self, id: &str) -> Result<()> {
        self.records.update(id, |r| {
            r.state.stop_requested = false;
            r.state.error = None;
            r.state.paused = false;
            r.state.status = Status::Created;
        })?;
        let exe = self.exe.clone();
        // The monitor's own diagnostics (not the container's output).
        let diag_path = self.dirs(id).root.join("monitor.log");
        let diag = File::create(&diag_path).ctx("creating", &diag_path)?;
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(exe)
                .args(self.global_args())
                .args([MONITOR_COMMAND, id])
                // Already in the user's namespace: nothing to join.
                .env_remove(estiba_runtime::userns::JOIN_ENV)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(diag)
                .process_group(0)
                .spawn()
                .ctx("starting the monitor for", id)?
        };
        // The monitor records the outcome; a monitor that dies first failed.
        // The record is parsed only when its file changed (a node starting
        // tens of containers at once spent a core parsing them every 2 ms),
        // and at least every RECHECK, should a save keep the same stamp.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen: Option<(crate::record::Stamp, Instant)> = None;
        loop {
            let stamp = self.records.stamp(id);
            let unchanged = matches!((seen, stamp), (Some((was, at)), Some(now)) if was == now && at.elapsed() < RECHECK);
            if unchanged {
                // A monitor that died is seen at the next parse, at most
                // RECHECK from now, where its last words are read first.
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            seen = stamp.map(|s| (s, Instant::now()));
            let r = self.records.load(id)?;
            if let Some(message) = r.state.error.clone() {
                let code = u8::try_from(r.state.exit_code).unwrap_or(125);
                if r.options.auto_remove {
                    // The monitor left that to us (see `monitor`).
                    let _ = child.wait();
                    self.remove_files(&r)?;
                }
                return Err(Error::StartFailed {
                    id: id.to_string(),
                    code,
                    message,
                });
            }
            if r.state.status != Status::Created {
                reap_later(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                // It may have recorded why just before it exited.
                if self.records.stamp(id) == stamp {
                    return Err(self.monitor_died(id, status, &diag_path));
                }
                continue;
            }
            if Instant::now() > deadline {
                return Err(Error::StartFailed {
                    id: id.to_string(),
                    code: 125,
                    message: "timed out waiting for the container to start".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A start's error when its monitor exited before it recorded an outcome.
    fn monitor_died(&self, id: &str, status: std::process::ExitStatus, diag: &Path) -> Error {
        let said = std::fs::read_to_string(diag).unwrap_or_default();
        Error::StartFailed {
            id: id.to_string(),
            code: 125,
            message: format!("the monitor exited with {status}: {}", said.trim()),
        }
    }

    /// The monitor's body. Returns when the container will not run again.
    /// `resume` is set when the small monitor hands a container's exit back.
    pub fn monitor(&self, id: &str, resume: Option<Resume>) -> Result<()> {
        let _ = std::env::set_current_dir("/");
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .ctx("becoming subreaper for", id)?;
        let record = self.records.load(id)?;
        let first_start = resume.is_none();
        let result = self.supervise(&record, resume);
        self.dirs(id).unmount();
        self.volumes.close_for(&record);
        // A --rm container that failed to start is removed by whoever
        // started it, once it has read why: removed here, the record could
        // go before the starter sees the error.
        let mut starter_removes = false;
        if let Err(e) = &result {
            let code = i32::from(e.exit_code());
            let message = e.to_string();
            let was_running = self
                .records
                .load(id)
                .is_ok_and(|r| r.state.status == Status::Running);
            self.records.update(id, |r| {
                r.state.status = Status::Exited;
                r.state.exit_code = code;
                r.state.error = Some(message);
                r.state.finished_at = Some(now());
                r.state.monitor_pid = 0;
            })?;
            // A container that was started and is now given up on died.
            if was_running {
                self.died(&record, code, false);
            }
            starter_removes = first_start && !was_running;
        } else {
            self.records.update(id, |r| r.state.monitor_pid = 0)?;
        }
        if record.options.auto_remove && !starter_removes {
            self.remove_files(&record)?;
        }
        result
    }

    fn supervise(&self, record: &ContainerRecord, resume: Option<Resume>) -> Result<()> {
        let id = record.id.as_str();
        let dirs = self.dirs(id);
        let image = self.store.find_image(&record.image_id)?;
        // A resumed monitor is the same process: its mounts are still there.
        if resume.is_none() {
            crate::prepare::set_up(self, &image, record, &dirs)?;
        }
        let runtime = self.runtime(record)?;
        let mut backoff = resume.as_ref().map_or(BACKOFF_FIRST, |r| r.backoff);
        let mut pending = resume.map(|r| (r.code, r.ran));
        loop {
            let (code, ran) = match pending.take() {
                Some(exit) => exit,
                None => self.run_once(record, &image, &dirs, runtime.as_ref(), backoff)?,
            };
            // Before the runtime deletes the cgroup, which says if it was.
            let oom = crate::stats::oom_killed(id);
            let _ = runtime.delete(id, true);
            let (policy, stop_requested, restarts) = self.records.update(id, |r| {
                r.state.status = Status::Exited;
                r.state.exit_code = i32::from(code);
                r.state.finished_at = Some(now());
                r.state.pid = 0;
                (
                    r.options.restart,
                    r.state.stop_requested,
                    r.state.restart_count,
                )
            })?;
            self.died(record, i32::from(code), oom);
            if !should_restart(policy, code, stop_requested, restarts) {
                return Ok(());
            }
            if ran > BACKOFF_RESET {
                backoff = BACKOFF_FIRST;
            }
            self.records
                .update(id, |r| r.state.status = Status::Restarting)?;
            if !self.sleep_unless_stopped(id, backoff) {
                self.records
                    .update(id, |r| r.state.status = Status::Exited)?;
                return Ok(());
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            self.records.update(id, |r| r.state.restart_count += 1)?;
            self.container_event(estiba_events::Action::Restart, record);
        }
    }

    /// Starts the container once and waits for its exit: in this process, or
    /// (never returning) in the small static monitor that replaces it.
    fn run_once(
        &self,
        record: &ContainerRecord,
        image: &estiba_store::ImageRecord,
        dirs: &ContainerDirs,
        runtime: &dyn Runtime,
        backoff: Duration,
    ) -> Result<(u8, Duration)> {
        let id = record.id.as_str();
        let mut log = LogWriter::open(&dirs.log(), MAX_LOG_BYTES).ctx("opening", dirs.log())?;
        for w in crate::prepare::write_bundle(self, image, record, dirs)? {
            let _ = log.write(1, format!("WARNING: {w}\n").as_bytes());
        }
        let ContainerStreams {
            out: out_r,
            err: err_r,
            input,
            resize,
            pid,
        } = create_with_io(record, dirs, runtime)?;
        let started = Instant::now();
        runtime.start(id)?;
        let estiba_os::ProcessId {
            pid: monitor_pid,
            started: monitor_started,
        } = estiba_os::ProcessId::this();
        let health = record
            .options
            .health
            .as_ref()
            .map(|_| crate::health::Health {
                status: "starting".into(),
                ..Default::default()
            });
        self.records.update(id, |r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.monitor_pid = monitor_pid;
            r.state.monitor_started = monitor_started;
            r.state.started_at = Some(now());
            r.state.error = None;
            r.state.health = health;
        })?;
        // Once the record says running, so a follower that reads it on
        // `start` finds the pid.
        self.container_event(estiba_events::Action::Start, record);
        drop(log);
        if let Some(small) = small_monitor() {
            let streams = [&out_r, &err_r];
            let fifos = [input.as_ref(), resize.as_ref()];
            let err = self.exec_small_monitor(&small, record, pid, streams, fifos, backoff);
            tracing::warn!(error = %err, "the small monitor did not start; monitoring in this process");
        }
        let mut log = LogWriter::open(&dirs.log(), MAX_LOG_BYTES).ctx("opening", dirs.log())?;
        let checks = self.start_health_checks(record);
        if let Some(fifo) = input {
            crate::stdin::copy_to_terminal(fifo, &out_r)?;
        }
        if let Some(fifo) = resize {
            crate::terminal::follow_resizes(fifo, &out_r)?;
        }
        pump(&mut log, out_r, err_r);
        let code = estiba_runtime::process::wait_pid(pid);
        if let Some((stop, thread)) = checks {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = thread.join();
        }
        Ok((code?, started.elapsed()))
    }

    /// Replaces this process with the small monitor; returns only on failure.
    fn exec_small_monitor(
        &self,
        small: &std::path::Path,
        record: &ContainerRecord,
        pid: i32,
        [out, err]: [&OwnedFd; 2],
        [input, resize]: [Option<&OwnedFd>; 2],
        backoff: Duration,
    ) -> std::io::Error {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        for inherited in std::iter::once(err).chain(input).chain(resize) {
            if let Err(e) = rustix::io::fcntl_setfd(inherited, rustix::io::FdFlags::empty()) {
                return e.into();
            }
        }
        // Output comes in as the small monitor's stdin (a terminal's
        // master cannot be reopened through /proc as a pipe can).
        let out = match out.try_clone() {
            Ok(fd) => fd,
            Err(e) => return e,
        };
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return e,
        };
        let health_ms = record
            .options
            .health
            .as_ref()
            .filter(|h| h.command().is_some())
            .map_or(0, |h| h.interval_ms);
        Command::new(small)
            .stdin(Stdio::from(out))
            .arg(pid.to_string())
            .arg("0")
            .arg(err.as_raw_fd().to_string())
            .arg(input.map_or("-".into(), |fd| fd.as_raw_fd().to_string()))
            .arg(resize.map_or("-".into(), |fd| fd.as_raw_fd().to_string()))
            .arg(self.dirs(&record.id).log())
            .arg(MAX_LOG_BYTES.to_string())
            .arg(health_ms.to_string())
            .arg(backoff.as_millis().to_string())
            .arg(exe)
            .arg(&record.id)
            .args(self.global_args())
            .exec()
    }

    /// The flags a re-executed estiba needs to find this store.
    fn global_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.data.display().to_string(),
            "--runroot".into(),
            self.run.display().to_string(),
            "--log-level".into(),
            self.log_level.clone(),
        ]
    }

    /// Runs the container's health checks on a thread while it runs.
    fn start_health_checks(
        &self,
        record: &ContainerRecord,
    ) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
        let config = record.options.health.clone()?;
        let engine = Engine::new(self.host.clone(), self.data.clone(), self.run.clone()).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (id, flag) = (record.id.clone(), Arc::clone(&stop));
        let thread =
            std::thread::spawn(move || crate::health::run_checks(engine, id, config, flag));
        Some((stop, thread))
    }

    /// Sleeps for the backoff; false if a stop was asked for meanwhile.
    fn sleep_unless_stopped(&self, id: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self
                .records
                .load(id)
                .map(|r| r.state.stop_requested)
                .unwrap_or(true)
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
        true
    }
}

/// A container's exit, handed back by the small monitor.
#[derive(Clone, Copy, Debug)]
pub struct Resume {
    pub code: u8,
    /// How long the container ran.
    pub ran: Duration,
    /// The backoff the next restart waits.
    pub backoff: Duration,
}

/// The small static monitor next to the estiba binary (`ESTIBA_MONITOR`
/// overrides; `none` keeps monitoring in estiba itself).
pub(crate) fn small_monitor() -> Option<std::path::PathBuf> {
    match std::env::var_os("ESTIBA_MONITOR") {
        Some(v) if v == "none" => None,
        Some(v) => Some(v.into()),
        None => std::env::current_exe()
            .ok()?
            .parent()
            .map(|d| d.join("estiba-monitor"))
            .filter(|p| p.is_file()),
    }
}

fn should_restart(policy: RestartPolicy, code: u8, stop_requested: bool, restarts: u32) -> bool {
    if stop_requested {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
    }
}

/// What the monitor holds of a created container.
struct ContainerStreams {
    /// Its stdout, or its terminal's master.
    out: OwnedFd,
    /// Its stderr (with a terminal, a pipe nothing writes to).
    err: OwnedFd,
    /// With `-it`, the stdin FIFO the monitor copies into the terminal.
    input: Option<OwnedFd>,
    /// With `-t`, the FIFO of window sizes for the terminal.
    resize: Option<OwnedFd>,
    pid: i32,
}

/// Creates the container with its streams: pipes for stdout and stderr,
/// or (`-t`) the terminal's master for both; with `-i`, the stdin FIFO
/// (`stdin.rs`), read by the container itself or, with a terminal, by
/// the monitor.
fn create_with_io(
    record: &ContainerRecord,
    dirs: &ContainerDirs,
    runtime: &dyn Runtime,
) -> Result<ContainerStreams> {
    let id = record.id.as_str();
    let o = &record.options;
    let pipe = || pipe_with(PipeFlags::CLOEXEC).ctx("creating a pipe for", id);
    let _ = runtime.delete(id, true);
    let mut io = ContainerIo::new(Stdio::null(), Stdio::null());
    if o.interactive && !o.tty {
        io.stdin = Stdio::from(crate::stdin::open_for_container(
            &dirs.stdin_fifo(),
            !o.stdin_once,
        )?);
    }
    if o.tty {
        let console = crate::terminal::ConsoleSocket::listen(&dirs.bundle())?;
        io.console_socket = Some(console.name.clone());
        let pid = match runtime.create(id, &dirs.bundle(), io) {
            Ok(pid) => pid,
            Err(e) => {
                console.abandon();
                return Err(e.into());
            }
        };
        let master = console.master()?;
        let resize = Some(crate::terminal::open_resizes(&dirs.resize_fifo())?);
        // Nothing comes on stderr: the terminal carries both streams.
        let (err_r, _) = pipe()?;
        let input = o
            .interactive
            .then(|| crate::stdin::open_for_terminal(&dirs.stdin_fifo()))
            .transpose()?;
        return Ok(ContainerStreams {
            out: master,
            err: err_r,
            input,
            resize,
            pid,
        });
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    io.stdout = Stdio::from(out_w);
    io.stderr = Stdio::from(err_w);
    let pid = runtime.create(id, &dirs.bundle(), io)?;
    Ok(ContainerStreams {
        out: out_r,
        err: err_r,
        input: None,
        resize: None,
        pid,
    })
}

/// Copies the container's stdout and stderr into the log until both close,
/// which happens when the container (its whole pid namespace) is gone.
fn pump(log: &mut LogWriter, out: OwnedFd, err: OwnedFd) {
    let mut streams = [Some(File::from(out)), Some(File::from(err))];
    let mut buf = vec![0u8; 32 * 1024];
    while streams.iter().any(Option::is_some) {
        let mut fds: Vec<(usize, PollFd<'_>)> = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|f| (i, PollFd::new(f, PollFlags::IN))))
            .collect();
        let mut polled: Vec<PollFd<'_>> = fds.iter().map(|(_, p)| p.clone()).collect();
        if rustix::event::poll(&mut polled, None).is_err() {
            continue;
        }
        let ready: Vec<usize> = fds
            .drain(..)
            .zip(&polled)
            .filter(|(_, p)| !p.revents().is_empty())
            .map(|((i, _), _)| i)
            .collect();
        for i in ready {
            let Some(file) = streams[i].as_mut() else {
                continue;
            };
            match file.read(&mut buf) {
                Ok(0) | Err(_) => streams[i] = None,
                Ok(n) => {
                    let _ = log.write(i, &buf[..n]);
                }
            }
        }
    }
    let _ = log.flush();
}

/// Waits for a running container's monitor on a small thread of its own,
/// so a long-lived caller (the agent, the Docker API server) is left no
/// zombie when the monitor exits. A short-lived CLI exits first, and the
/// monitor is reparented as before.
fn reap_later(mut monitor: std::process::Child) {
    if let Ok(Some(_)) = monitor.try_wait() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("monitor-reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = monitor.wait();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot wait for a monitor: it stays a zombie when it exits");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_decisions() {
        assert!(!should_restart(RestartPolicy::No, 1, false, 0));
        assert!(should_restart(RestartPolicy::Always, 0, false, 9));
        assert!(
            !should_restart(RestartPolicy::Always, 0, true, 0),
            "a stop wins"
        );
        assert!(should_restart(RestartPolicy::OnFailure(3), 1, false, 2));
        assert!(!should_restart(RestartPolicy::OnFailure(3), 1, false, 3));
        assert!(!should_restart(RestartPolicy::OnFailure(3), 0, false, 0));
        assert!(should_restart(RestartPolicy::OnFailure(0), 2, false, 100));
    }
}
