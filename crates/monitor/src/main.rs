//! `estiba-monitor`: what stays resident for each detached container.
//!
//! estiba's monitor sets a container up (mounts, runtime, record), then
//! replaces itself with this small static binary for the idle part: copy the
//! container's stdout and stderr into its json-file log, start a health check
//! (a short-lived `estiba internal-health`) every interval, and wait for the
//! container's exit. Then it replaces itself with estiba again
//! (`internal-monitor ID --resume CODE …`) to record the exit and apply the
//! restart policy. Memory held per container is this process only.
//!
//! Usage (by estiba only):
//! `estiba-monitor PID OUT_FD ERR_FD IN_FD RESIZE_FD LOG MAX_BYTES HEALTH_MS BACKOFF_MS ESTIBA ID [GLOBAL_ARGS...]`
//!
//! IN_FD is `-`, or (a container with `-it`) the stdin FIFO, whose input
//! is copied into the terminal's master. RESIZE_FD is `-`, or (with `-t`)
//! the FIFO of `ROWS COLS` lines set on the master as its window size.
//!
//! The same binary is a container's init when it asks for one
//! (`estiba-monitor --init CMD…`, bind-mounted as /sbin/estiba-init; see
//! `init.rs`): it is static, so it runs in any image.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, WaitOptions};

struct Args {
    pid: i32,
    streams: [String; 2],
    input: Option<String>,
    resize: Option<String>,
    log: PathBuf,
    max_bytes: u64,
    health: Option<Duration>,
    backoff_ms: String,
    estiba: String,
    id: String,
    global: Vec<String>,
}

fn parse_args() -> Option<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 11 {
        return None;
    }
    let health_ms: u64 = a[7].parse().ok()?;
    Some(Args {
        pid: a[0].parse().ok()?,
        streams: [a[1].clone(), a[2].clone()],
        input: (a[3] != "-").then(|| a[3].clone()),
        resize: (a[4] != "-").then(|| a[4].clone()),
        log: PathBuf::from(&a[5]),
        max_bytes: a[6].parse().ok()?,
        health: (health_ms > 0).then(|| Duration::from_millis(health_ms)),
        backoff_ms: a[8].clone(),
        estiba: a[9].clone(),
        id: a[10].clone(),
        global: a[11..].to_vec(),
    })
}

/// docker's json-file log, written a line at a time, with one rotation.
struct Log {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    pending: [Vec<u8>; 2],
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

impl Log {
    fn open(path: &Path, max: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Log {
            path: path.to_path_buf(),
            file,
            size,
            max,
            pending: [Vec::new(), Vec::new()],
        })
    }

    fn write(&mut self, stream: usize, data: &[u8]) {
        self.pending[stream].extend_from_slice(data);
        while let Some(pos) = self.pending[stream].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending[stream].drain(..=pos).collect();
            self.emit(stream, &line);
        }
        if self.pending[stream].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.pending[stream]);
            self.emit(stream, &line);
        }
    }

    fn flush(&mut self) {
        for stream in 0..2 {
            let line = std::mem::take(&mut self.pending[stream]);
            if !line.is_empty() {
                self.emit(stream, &line);
            }
        }
    }

    fn emit(&mut self, stream: usize, line: &[u8]) {
        let mut out = String::from("{\"log\":\"");
        escape(&String::from_utf8_lossy(line), &mut out);
        out.push_str("\",\"stream\":\"");
        out.push_str(if stream == 0 { "stdout" } else { "stderr" });
        out.push_str("\",\"time\":\"");
        out.push_str(&humantime::format_rfc3339_nanos(SystemTime::now()).to_string());
        out.push_str("\"}\n");
        if self.size + out.len() as u64 > self.max && self.size > 0 {
            let _ = fs::rename(&self.path, self.path.with_extension("log.1"));
            if let Ok(f) = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                self.file = f;
                self.size = 0;
            }
        }
        if self.file.write_all(out.as_bytes()).is_ok() {
            self.size += out.len() as u64;
        }
    }
}

/// Reaps finished health checks; returns the container's status if it exited.
fn reap(pid: i32) -> Option<u8> {
    let mut code = None;
    while let Ok(Some((who, status))) = rustix::process::wait(WaitOptions::NOHANG) {
        if who.as_raw_nonzero().get() == pid {
            code = Some(exit_code(status));
        }
    }
    code
}

fn exit_code(status: rustix::process::WaitStatus) -> u8 {
    if let Some(c) = status.exit_status() {
        return u8::try_from(c & 0xff).unwrap_or(255);
    }
    status
        .terminating_signal()
        .map_or(255, |s| u8::try_from(128 + s).unwrap_or(255))
}

/// Copies the stdin FIFO (an inherited descriptor; reopening it through
/// /proc does not wait, as the inherited one is also a writer) into the
/// terminal's master, on a thread: a container that does not read its
/// terminal blocks the write, and must not stall the copying of output.
fn type_into(fifo_fd: &str, master: &File) {
    let fifo = File::open(format!("/proc/self/fd/{fifo_fd}"));
    match (fifo, master.try_clone()) {
        (Ok(mut fifo), Ok(mut master)) => {
            std::thread::spawn(move || std::io::copy(&mut fifo, &mut master));
        }
        (Err(e), _) | (_, Err(e)) => eprintln!("estiba-monitor: the terminal's input: {e}"),
    }
}

/// Sets each `ROWS COLS` line of the resize FIFO (inherited, reopened
/// through /proc as `type_into` does) on the terminal's master as its
/// window size; the kernel then signals the container's foreground
/// processes (SIGWINCH).
fn follow_resizes(fifo_fd: &str, master: &File) {
    use std::io::BufRead;
    let fifo = File::open(format!("/proc/self/fd/{fifo_fd}"));
    match (fifo, master.try_clone()) {
        (Ok(fifo), Ok(master)) => {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(fifo).lines() {
                    let Ok(line) = line else { break };
                    if let Some(size) = window_size(&line) {
                        let _ = rustix::termios::tcsetwinsize(&master, size);
                    }
                }
            });
        }
        (Err(e), _) | (_, Err(e)) => eprintln!("estiba-monitor: the terminal's size: {e}"),
    }
}

/// `ROWS COLS`, as estiba writes it.
fn window_size(line: &str) -> Option<rustix::termios::Winsize> {
    let (rows, cols) = line.trim().split_once(' ')?;
    Some(rustix::termios::Winsize {
        ws_row: rows.parse().ok()?,
        ws_col: cols.parse().ok()?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

mod init;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "--init") {
        return init::main(&argv[1..]);
    }
    let Some(args) = parse_args() else {
        eprintln!("estiba-monitor is started by estiba, not by hand");
        return ExitCode::from(2);
    };
    // The container's init is our child; keep collecting orphans too.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let started = Instant::now();
    let mut log = match Log::open(&args.log, args.max_bytes) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("estiba-monitor: opening {}: {e}", args.log.display());
            return ExitCode::from(1);
        }
    };
    // The streams arrive as inherited descriptors. Stdout's is our stdin,
    // taken as it is: a terminal's master, reopened through /proc, would
    // be a new terminal. A pipe reopens through /proc as itself, which
    // needs no unsafe code.
    let mut streams: [Option<File>; 2] = args.streams.clone().map(|fd| match fd.as_str() {
        "0" => std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from),
        _ => File::open(format!("/proc/self/fd/{fd}")).ok(),
    });
    if let (Some(fd), Some(master)) = (&args.input, &streams[0]) {
        type_into(fd, master);
    }
    if let (Some(fd), Some(master)) = (&args.resize, &streams[0]) {
        follow_resizes(fd, master);
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut next_check = args.health.map(|d| Instant::now() + d);
    let mut exited = None;
    while streams.iter().any(Option::is_some) {
        let timeout = next_check.map(|t| t.saturating_duration_since(Instant::now()));
        let ts = timeout.map(|d| Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut fds: Vec<PollFd<'_>> = streams
            .iter()
            .flatten()
            .map(|f| PollFd::new(f, PollFlags::IN))
            .collect();
        let _ = rustix::event::poll(&mut fds, ts.as_ref());
        drop(fds);
        for (i, slot) in streams.iter_mut().enumerate() {
            let Some(file) = slot.as_mut() else { continue };
            let mut ready = [PollFd::new(&*file, PollFlags::IN)];
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if rustix::event::poll(&mut ready, Some(&zero)).unwrap_or(0) == 0 {
                continue;
            }
            match file.read(&mut buf) {
                Ok(0) | Err(_) => *slot = None,
                Ok(n) => log.write(i, &buf[..n]),
            }
        }
        if let Some(t) = next_check {
            if Instant::now() >= t {
                let _ = Command::new(&args.estiba)
                    .args(&args.global)
                    .args(["internal-health", &args.id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn();
                next_check = args.health.map(|d| Instant::now() + d);
            }
        }
        if exited.is_none() {
            exited = reap(args.pid);
        }
    }
    log.flush();
    let code = match exited {
        Some(c) => c,
        None => match rustix::process::waitpid(Pid::from_raw(args.pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => exit_code(status),
            _ => 255,
        },
    };
    // Back to estiba to record the exit and apply the restart policy.
    let err = Command::new(&args.estiba)
        .args(&args.global)
        .args([
            "internal-monitor",
            &args.id,
            "--resume",
            &code.to_string(),
            "--ran-ms",
            &started.elapsed().as_millis().to_string(),
            "--backoff-ms",
            &args.backoff_ms,
        ])
        // Not the container's output (or its terminal) as stdin.
        .stdin(Stdio::null())
        .exec();
    eprintln!("estiba-monitor: returning to {}: {err}", args.estiba);
    ExitCode::from(1)
}
