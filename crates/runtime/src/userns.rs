//! Rootless mode: estiba re-executes itself inside a user namespace where it
//! is root over the ids it was given. The outer process only waits.
//!
//! As podman does, one long-lived *pause* process per user holds that user
//! namespace (`estiba internal-pause`, its pid in `$RUNROOT/pause.pid`). The
//! first rootless command creates it and maps its ids; every command then
//! joins it with setns(2). All of a user's containers, monitors and commands
//! thus share one namespace, so a later `estiba stop` may signal a container
//! started by an earlier `estiba run -d`.
//!
//! Mapping: 0 inside is the user outside. With a range in /etc/subuid and
//! /etc/subgid and Debian's `newuidmap`/`newgidmap`, ids 1..=65536 map to the
//! start of that range; otherwise only the user's own id is mapped.
//!
//! The two processes hand over through two FIFOs in a private directory
//! rather than inherited file descriptors, so no descriptor can leak into the
//! container and no unsafe code is needed.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{self as rfs, OFlags};
use rustix::io::Errno;

use nix::sched::CloneFlags;

use crate::error::IoContext;
use crate::{Error, Result};

/// Set in the pause process: the directory holding the hand-over FIFOs.
const HANDOVER_ENV: &str = "_ESTIBA_USERNS_HANDOVER";
/// Set in a re-executed command: the pid of the pause process to join.
pub const JOIN_ENV: &str = "_ESTIBA_USERNS_JOIN";
/// The hidden command the pause process runs.
pub const PAUSE_COMMAND: &str = "internal-pause";

/// How many ids beyond the user's own we map when /etc/subuid allows.
pub const SUBID_COUNT: u32 = 65536;

/// What the caller of [`enter`] must do next.
#[derive(Debug)]
pub enum Entered {
    /// We are now the child, root inside a fresh user and mount namespace.
    Inside,
    /// We are the outer process: exit with this code.
    ExitWith(u8),
}

/// Moves the process into its own user namespace unless it is root on the
/// host or already inside one. Call first thing in `main`, while the process
/// is single-threaded.
pub fn enter(runtime_dir: &Path) -> Result<Entered> {
    let estiba = std::env::current_exe().ctx("finding", "/proc/self/exe")?;
    enter_with(runtime_dir, &estiba)
}

/// [`enter`] for a program that is not estiba itself (a tool built on the
/// engine): it re-executes itself inside the namespace as `enter` does,
/// but the user's pause process, if one must be started, runs as the
/// `estiba` binary given.
pub fn enter_with(runtime_dir: &Path, estiba: &Path) -> Result<Entered> {
    if let Some(dir) = std::env::var_os(HANDOVER_ENV) {
        child_handover(Path::new(&dir))?;
        return Ok(Entered::Inside);
    }
    if let Some(pid) = std::env::var_os(JOIN_ENV) {
        join(&pid.to_string_lossy())?;
        return Ok(Entered::Inside);
    }
    if rustix::process::geteuid().is_root() {
        return Ok(Entered::Inside);
    }
    parent(runtime_dir, estiba).map(Entered::ExitWith)
}

fn fifo_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("unshared"), dir.join("mapped"))
}

fn child_handover(dir: &Path) -> Result<()> {
    let (unshared, mapped) = fifo_paths(dir);
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| Error::UserNamespace(format!("unshare: {e}")))?;
    File::options()
        .write(true)
        .open(&unshared)
        .ctx("opening", &unshared)?
        .write_all(b"u")
        .ctx("writing", &unshared)?;
    let mut ok = [0u8; 1];
    File::open(&mapped)
        .ctx("opening", &mapped)?
        .read_exact(&mut ok)
        .ctx("reading", &mapped)?;
    if ok != *b"m" {
        return Err(Error::UserNamespace(
            "the outer process could not map ids".into(),
        ));
    }
    Ok(())
}

/// Joins the pause process's user and mount namespaces.
fn join(pid: &str) -> Result<()> {
    for (ns, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{pid}/ns/{ns}");
        let file = File::open(&path).ctx("opening", &path)?;
        nix::sched::setns(&file, flag)
            .map_err(|e| Error::UserNamespace(format!("joining {path}: {e}")))?;
    }
    Ok(())
}

fn parent(runtime_dir: &Path, estiba: &Path) -> Result<u8> {
    let uid = rustix::process::getuid().as_raw();
    private_dir(runtime_dir, uid)?;
    let pause = pause_process(runtime_dir, uid, estiba)?;
    let exe = std::env::current_exe().ctx("finding", "/proc/self/exe")?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut child = Command::new(exe)
        .args(args)
        .env(JOIN_ENV, pause.to_string())
        .spawn()
        .ctx("re-executing", "estiba")?;
    let forwarder = crate::process::forward_signals(child.id());
    let status = child.wait().ctx("waiting for", "estiba");
    drop(forwarder);
    Ok(crate::process::exit_code(status?))
}

/// The pid of this user's pause process, started (and its ids mapped) if
/// none is alive. A lock keeps two commands from starting one each.
fn pause_process(runtime_dir: &Path, uid: u32, estiba: &Path) -> Result<u32> {
    let lock_path = runtime_dir.join("pause.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx("opening", &lock_path)?;
    rfs::flock(&lock, rfs::FlockOperation::LockExclusive).ctx("locking", &lock_path)?;
    let pid_file = runtime_dir.join("pause.pid");
    if let Some(pid) = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        if is_pause(pid, uid) {
            return Ok(pid);
        }
    }
    let pid = start_pause(runtime_dir, uid, estiba)?;
    crate::write_file_atomic(&pid_file, pid.to_string().as_bytes())?;
    Ok(pid)
}

/// True if `pid` is a live pause process of ours (not a recycled pid).
fn is_pause(pid: u32, uid: u32) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_ours = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next() == Some(&uid.to_string()))
            })
        })
        .unwrap_or(false);
    is_ours
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == PAUSE_COMMAND.as_bytes())
}

/// Starts the pause process in a new user and mount namespace and maps its
/// ids, handing over through two FIFOs.
fn start_pause(runtime_dir: &Path, uid: u32, estiba: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let gid = rustix::process::getgid().as_raw();
    let dir = runtime_dir.join(format!("userns-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).ctx("creating", &dir)?;
    let result = (|| {
        let (unshared, mapped) = fifo_paths(&dir);
        for fifo in [&unshared, &mapped] {
            rfs::mknodat(
                rfs::CWD,
                fifo.as_path(),
                rfs::FileType::Fifo,
                rfs::Mode::from_raw_mode(0o600),
                0,
            )
            .ctx("creating fifo", fifo.as_path())?;
        }
        let exe = estiba.to_path_buf();
        let mut child = Command::new(exe)
            .arg(PAUSE_COMMAND)
            .env(HANDOVER_ENV, &dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .ctx("starting", "the rootless pause process")?;
        let pid = child.id();
        if !wait_for_byte(&unshared, &mut child)? {
            return Err(Error::UserNamespace(
                "the pause process died before unsharing".into(),
            ));
        }
        let mapping = map_ids(pid, uid, gid);
        send_byte(
            &mapped,
            if mapping.is_ok() { b'm' } else { b'x' },
            &mut child,
        )?;
        mapping?;
        Ok(pid)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// The pause process's body: hold the namespaces until killed.
pub fn pause_forever() -> ! {
    // Hold no directory busy.
    let _ = std::env::set_current_dir("/");
    loop {
        std::thread::park();
    }
}

/// Creates (or checks) a directory only `uid` may use. The runtime dir can
/// fall back to a path under /tmp, where another user could have made it
/// first to plant symlinks: refuse one we do not own.
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        return Err(e).ctx("creating", dir);
    }
    let meta = fs::symlink_metadata(dir).ctx("checking", dir)?;
    if meta.uid() != uid || !meta.is_dir() {
        return Err(Error::UserNamespace(format!(
            "{} is not a directory owned by uid {uid}; set XDG_RUNTIME_DIR or --runroot",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).ctx("securing", dir)?;
    }
    Ok(())
}

/// Waits for the child's byte on `fifo`; false if the child died first.
fn wait_for_byte(fifo: &Path, child: &mut Child) -> Result<bool> {
    let fd = rfs::open(
        fifo,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rfs::Mode::empty(),
    )
    .ctx("opening", fifo)?;
    let mut byte = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e).ctx("waiting on", fifo),
        }
        match rustix::io::read(&fd, &mut byte) {
            Ok(1) => return Ok(true),
            Ok(_) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(e) => return Err(e).ctx("reading", fifo),
        }
        if child.try_wait().ctx("waiting for", "estiba")?.is_some() {
            return Ok(false);
        }
    }
}

/// Writes one byte to `fifo` once the child opened it for reading.
fn send_byte(fifo: &Path, byte: u8, child: &mut Child) -> Result<()> {
    loop {
        match rfs::open(
            fifo,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            rfs::Mode::empty(),
        ) {
            Ok(fd) => {
                rustix::io::write(&fd, &[byte]).ctx("writing", fifo)?;
                return Ok(());
            }
            Err(Errno::NXIO) | Err(Errno::INTR) => {
                if child.try_wait().ctx("waiting for", "estiba")?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(e).ctx("opening", fifo),
        }
    }
}

/// The first range of `name`'s (or `id`'s) subordinate ids, if any.
fn subid_range(file: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let (who, start, count) = (f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        (who == name || who == id.to_string()).then_some((start, count))
    })
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn map_ids(pid: u32, uid: u32, gid: u32) -> Result<()> {
    let name = user_name(uid);
    let ranges = (
        subid_range("/etc/subuid", &name, uid),
        subid_range("/etc/subgid", &name, uid),
    );
    let helpers = estiba_os::which("newuidmap").zip(estiba_os::which("newgidmap"));
    match (ranges, helpers) {
        ((Some(u), Some(g)), Some((newuidmap, newgidmap))) => {
            run_map(&newuidmap, pid, uid, u)?;
            run_map(&newgidmap, pid, gid, g)
        }
        _ => {
            tracing::info!("no /etc/subuid range or newuidmap: mapping only uid {uid}");
            let proc = PathBuf::from(format!("/proc/{pid}"));
            fs::write(proc.join("setgroups"), "deny").ctx("writing", proc.join("setgroups"))?;
            fs::write(proc.join("uid_map"), format!("0 {uid} 1\n"))
                .ctx("writing", proc.join("uid_map"))?;
            fs::write(proc.join("gid_map"), format!("0 {gid} 1\n"))
                .ctx("writing", proc.join("gid_map"))
        }
    }
}

fn run_map(helper: &Path, pid: u32, own: u32, (start, count): (u32, u32)) -> Result<()> {
    let count = count.min(SUBID_COUNT);
    let out = Command::new(helper)
        .args([
            pid.to_string(),
            "0".into(),
            own.to_string(),
            "1".into(),
            "1".into(),
            start.to_string(),
            count.to_string(),
        ])
        .output()
        .ctx("running", helper)?;
    if !out.status.success() {
        return Err(Error::UserNamespace(format!(
            "{} failed: {}",
            helper.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_ranges_parse() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        fs::write(&f, "alice:100000:65536\n1001:200000:1000\n").unwrap();
        let f = f.to_str().unwrap();
        assert_eq!(subid_range(f, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subid_range(f, "bob", 1001), Some((200000, 1000)));
        assert_eq!(subid_range(f, "carol", 1002), None);
    }
}
