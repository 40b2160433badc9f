//! Encrypted volumes (`volume create --encrypt`): what is written in one
//! reaches the disk only as ciphertext.
//!
//! The backend is gocryptfs (FUSE), for root and rootless alike: inside
//! the user namespace estiba is root of its own mount namespace, where
//! FUSE mounts are allowed. LUKS2 needs the kernel's device-mapper, which
//! these machines' kernels lack; asking for it is refused with that reason.
//!
//! The volume's key is 32 random bytes, sealed with the secrets key
//! (`Secrets::seal`) in `key.sealed` beside the ciphertext (`cipher/`). It
//! is handed to gocryptfs on a pipe, never written in clear.
//!
//! A volume opens when a container using it starts and closes when the
//! last one stops. Opening happens in the mount namespace all estiba
//! commands share, before the monitor takes its private one, so every
//! container sees the same mount: a daemon (`gocryptfs -fg`, in a process
//! group of its own so a terminal's ^C does not reach it) serves it. Each
//! process holding a container that uses it leaves a file in `holders/`,
//! named by its pid and start time; the last one out sends the daemon
//! SIGTERM, on which gocryptfs unmounts. A holder killed with -9 leaves a
//! file of a dead process, which the next open or close drops.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{Error, Result};

/// How an encrypted volume is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Gocryptfs,
    Luks2,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gocryptfs" => Ok(Backend::Gocryptfs),
            "luks2" | "luks" => Ok(Backend::Luks2),
            _ => Err(Error::Invalid {
                what: "encryption",
                value: s.to_string(),
                why: "is gocryptfs or luks2".into(),
            }),
        }
    }
}

/// What `volume create --encrypt` asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Encryption {
    pub backend: Backend,
    /// `--size`, for a backend of fixed size; gocryptfs grows with its
    /// content and keeps it only as information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// FUSE's filesystem magic, as statfs reports it.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// How long a daemon may take to mount.
const MOUNT_DEADLINE: Duration = Duration::from_secs(20);

/// The files of one encrypted volume, in its directory.
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    fn cipher(&self) -> PathBuf {
        self.dir.join("cipher")
    }
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("key.sealed")
    }
    fn plain(&self) -> PathBuf {
        self.dir.join("_data")
    }
    fn holders(&self) -> PathBuf {
        self.dir.join("holders")
    }
    fn daemon(&self) -> PathBuf {
        self.dir.join("daemon")
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    fn daemon_log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }
}

/// Refuses what this host cannot do, with the reason.
pub(crate) fn check_backend(backend: Backend) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Invalid {
            what: "encryption",
            value: format!("{backend:?}").to_lowercase(),
            why,
        })
    };
    match backend {
        Backend::Luks2 if !Path::new("/dev/mapper/control").exists() => refuse(
            "LUKS2 needs the kernel's device-mapper (dm-crypt), and this kernel has none \
             (/dev/mapper/control is missing); use --encryption gocryptfs"
                .into(),
        ),
        // Not built: no machine of ours has device-mapper to test it on.
        Backend::Luks2 => {
            refuse("LUKS2 volumes are not supported yet; use --encryption gocryptfs".into())
        }
        Backend::Gocryptfs => {
            if find_program("gocryptfs").is_none() || find_program("fusermount3").is_none() {
                return refuse(
                    "gocryptfs and fusermount3 are not installed (Debian: apt install gocryptfs fuse3)"
                        .into(),
                );
            }
            if let Err(e) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/fuse")
            {
                return refuse(format!(
                    "/dev/fuse cannot be opened ({e}); unprivileged users need it mode 0666, \
                     as Debian's udev rule for fuse3 sets it"
                ));
            }
            Ok(())
        }
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Makes a new volume's key and ciphertext directory.
pub(crate) fn init(
    layout: &Layout,
    enc: &Encryption,
    secrets: &crate::secrets::Secrets,
) -> Result<()> {
    check_backend(enc.backend)?;
    let key = estiba_os::random_hex(32);
    fs::create_dir_all(layout.cipher()).ctx("creating", layout.cipher())?;
    // Our key is random, not a password: the KDF needs no hardening.
    gocryptfs(
        &["-init", "-q", "-scryptn", "10", "-passfile", "/dev/stdin"],
        &[layout.cipher()],
        &key,
    )?;
    estiba_os::create_exclusive(
        &layout.key(),
        secrets.seal(key.as_bytes(), "volume key")?.as_bytes(),
        0o600,
    )?;
    Ok(())
}

/// Runs gocryptfs to completion with the key on its stdin.
fn gocryptfs(args: &[&str], paths: &[PathBuf], key: &str) -> Result<()> {
    let mut child = Command::new("gocryptfs")
        .args(args)
        .args(paths)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ctx("running", Path::new("gocryptfs"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(key.as_bytes());
    }
    let out = child
        .wait_with_output()
        .ctx("running", Path::new("gocryptfs"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Invalid {
        what: "encrypted volume",
        value: paths
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        why: format!(
            "gocryptfs {}: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// True if the volume's plaintext is served (in this mount namespace).
pub(crate) fn is_open(layout: &Layout) -> bool {
    mounted(&layout.plain())
}

fn mounted(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == FUSE_SUPER_MAGIC)
}

/// The holder file of this process.
fn holder_name(me: estiba_os::ProcessId) -> String {
    format!("{}-{}", me.pid, me.started)
}

/// The live holders, after dropping the files of dead ones.
fn live_holders(layout: &Layout) -> Vec<String> {
    let Ok(entries) = fs::read_dir(layout.holders()) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let alive = name
            .split_once('-')
            .and_then(|(pid, started)| {
                Some(estiba_os::ProcessId {
                    pid: pid.parse().ok()?,
                    started: started.parse().ok()?,
                })
            })
            .is_some_and(|p| p.alive());
        if alive {
            live.push(name);
        } else {
            let _ = fs::remove_file(entry.path());
        }
    }
    live
}

fn daemon(layout: &Layout) -> Option<estiba_os::ProcessId> {
    let line = fs::read_to_string(layout.daemon()).ok()?;
    estiba_os::ProcessId::parse(&line).filter(|p| p.alive())
}

/// Opens the volume for this process (mounting it if nobody has); its
/// plaintext is then at `_data`. The caller must be in the mount
/// namespace containers' monitors inherit.
pub(crate) fn open(layout: &Layout, secrets: &crate::secrets::Secrets, name: &str) -> Result<()> {
    let _lock = estiba_os::LockFile::exclusive(&layout.lock())?;
    fs::create_dir_all(layout.holders()).ctx("creating", layout.holders())?;
    live_holders(layout); // drops the files of holders killed with -9
    let alive = daemon(layout);
    if !(alive.is_some() && mounted(&layout.plain())) {
        stop_daemon(layout);
        // A daemon killed with -9 leaves a mount that answers nothing.
        let _ = rustix::mount::unmount(layout.plain(), rustix::mount::UnmountFlags::DETACH);
        mount(layout, secrets, name)?;
    }
    let me = holder_name(estiba_os::ProcessId::this());
    let path = layout.holders().join(me);
    fs::write(&path, b"").ctx("writing", &path)?;
    Ok(())
}

/// Starts the daemon and waits until the plaintext is mounted.
fn mount(layout: &Layout, secrets: &crate::secrets::Secrets, name: &str) -> Result<()> {
    let sealed = fs::read_to_string(layout.key()).ctx("reading", layout.key())?;
    let key = secrets.unseal(&sealed, "volume key")?;
    fs::create_dir_all(layout.plain()).ctx("creating", layout.plain())?;
    let log = fs::File::create(layout.daemon_log()).ctx("creating", layout.daemon_log())?;
    let mut child = Command::new("gocryptfs")
        .args([
            "-fg",
            "-q",
            "-nosyslog",
            "-allow_other",
            "-passfile",
            "/dev/stdin",
        ])
        .arg(layout.cipher())
        .arg(layout.plain())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .ctx("running", Path::new("gocryptfs"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&key);
    }
    let deadline = Instant::now() + MOUNT_DEADLINE;
    while !mounted(&layout.plain()) {
        let gone = child.try_wait().ok().flatten().is_some();
        if gone || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(layout.daemon_log()).unwrap_or_default();
            return Err(Error::Invalid {
                what: "encrypted volume",
                value: name.to_string(),
                why: format!("could not be opened: {}", log.trim()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let id = estiba_os::ProcessId::of(pid).unwrap_or(estiba_os::ProcessId { pid, started: 0 });
    estiba_os::write_atomic(&layout.daemon(), id.to_line().as_bytes())?;
    Ok(())
}

/// This process is done with the volume; the last one out closes it.
pub(crate) fn close(layout: &Layout) -> Result<()> {
    let Ok(_lock) = estiba_os::LockFile::exclusive(&layout.lock()) else {
        return Ok(()); // removed meanwhile
    };
    let me = holder_name(estiba_os::ProcessId::this());
    let _ = fs::remove_file(layout.holders().join(me));
    if live_holders(layout).is_empty() {
        stop_daemon(layout);
    }
    Ok(())
}

/// True if a container's process holds the volume open.
pub(crate) fn in_use(layout: &Layout) -> bool {
    let Ok(_lock) = estiba_os::LockFile::exclusive(&layout.lock()) else {
        return false;
    };
    !live_holders(layout).is_empty()
}

/// Closes the volume whoever holds it, for `volume rm`.
pub(crate) fn shut(layout: &Layout) {
    if let Ok(_lock) = estiba_os::LockFile::exclusive(&layout.lock()) {
        stop_daemon(layout);
        let _ = fs::remove_dir_all(layout.holders());
    }
    // Never walk into plaintext while removing the directory.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mounted(&layout.plain()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rustix::mount::unmount(layout.plain(), rustix::mount::UnmountFlags::DETACH);
}

/// SIGTERM to the daemon: gocryptfs unmounts and exits.
fn stop_daemon(layout: &Layout) {
    if let Some(d) = daemon(layout) {
        if let Some(pid) = rustix::process::Pid::from_raw(d.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let _ = fs::remove_file(layout.daemon());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_by_name() {
        assert_eq!("gocryptfs".parse::<Backend>().unwrap(), Backend::Gocryptfs);
        assert_eq!("luks2".parse::<Backend>().unwrap(), Backend::Luks2);
        assert!("rot13".parse::<Backend>().is_err());
    }

    #[test]
    fn holders_of_dead_processes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.holders()).unwrap();
        let me = holder_name(estiba_os::ProcessId::this());
        fs::write(layout.holders().join(&me), b"").unwrap();
        fs::write(layout.holders().join("999999999-1"), b"").unwrap();
        fs::write(layout.holders().join("junk"), b"").unwrap();
        assert_eq!(live_holders(&layout), vec![me]);
        assert_eq!(fs::read_dir(layout.holders()).unwrap().count(), 1);
    }

    #[test]
    fn luks2_is_refused() {
        let e = check_backend(Backend::Luks2).unwrap_err().to_string();
        assert!(e.contains("LUKS2"), "{e}");
    }
}
