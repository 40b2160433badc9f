//! Network namespaces, in-process: entering one from a thread, running
//! work there, and making or removing one kept by a bind mount.
//!
//! Namespaces are per thread: a thread that enters one (setns) takes its
//! sockets and the processes it spawns along, and the rest of the process
//! stays where it was. So work "inside" a namespace runs on a short-lived
//! scoped thread instead of an `nsenter` process.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::CloneFlags;
use rustix::mount::{MountPropagationFlags, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::{Error, IoContext, Result};

/// Moves the calling thread into the network namespace at `path`. Threads
/// started afterwards inherit it.
pub fn enter(path: &Path) -> Result<()> {
    let file = File::open(path).ctx("opening", path)?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(std::io::Error::from)
        .ctx("entering the network namespace", path)
}

/// Runs `f` inside the network namespace at `ns` (None: right here).
pub fn within<T: Send>(ns: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let Some(ns) = ns else {
        return f();
    };
    on_thread(|| {
        enter(ns)?;
        f()
    })
}

/// Runs `f` on a thread of its own, so what it changes of its namespaces
/// goes when it ends.
fn on_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(f).join().unwrap_or_else(|_| {
            Err(Error::Unsupported(
                "a namespace thread panicked".to_string(),
            ))
        })
    })
}

/// Runs `f` in the mount namespace `mounts` (this process's own if None),
/// where namespace bind mounts must be made to outlive the process.
fn in_mounts<T: Send>(mounts: Option<&File>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let Some(mounts) = mounts else {
        return f();
    };
    on_thread(|| {
        // setns into a mount namespace refuses a thread that shares its
        // root and working directory with others: give it its own first.
        let own_fs = |e: nix::Error| Error::Command {
            command: "setns(CLONE_NEWNS)".into(),
            stderr: e.to_string(),
        };
        nix::sched::unshare(CloneFlags::CLONE_FS).map_err(own_fs)?;
        nix::sched::setns(mounts.as_fd(), CloneFlags::CLONE_NEWNS).map_err(own_fs)?;
        f()
    })
}

/// How namespace mounts in a directory propagate: `Shared` where `ip
/// netns` expects it (/run/netns), `Private` in a user's own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Shared,
    Private,
}

/// True if `dir` is a mount point (its own entry in mountinfo).
fn is_mount_point(dir: &Path) -> bool {
    let d = dir.to_string_lossy();
    // This thread's view: it may have entered the mount namespace the
    // process started in, which /proc/self (the main thread) has left.
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(d.as_ref()))
}

/// Makes a new network namespace and keeps it by a bind mount on `path`,
/// in the mount namespace `mounts`; the directory becomes a mount of its
/// own with the given propagation, as `ip netns add` does for /run/netns.
pub fn create(path: &Path, mounts: Option<&File>, propagation: Propagation) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    in_mounts(mounts, || {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
        if !is_mount_point(dir) {
            rustix::mount::mount_bind(dir, dir)
                .map_err(std::io::Error::from)
                .ctx("bind-mounting", dir)?;
        }
        let flags = match propagation {
            Propagation::Shared => MountPropagationFlags::SHARED,
            Propagation::Private => MountPropagationFlags::PRIVATE,
        };
        rustix::mount::mount_change(dir, flags)
            .map_err(std::io::Error::from)
            .ctx("setting the propagation of", dir)?;
        if !path.exists() {
            File::create(path).ctx("creating", path)?;
        }
        // The namespace is made on a thread of its own, which ends with it
        // and leaves the bind mount holding it.
        on_thread(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Command {
                command: "unshare(CLONE_NEWNET)".into(),
                stderr: e.to_string(),
            })?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)
                .map_err(std::io::Error::from)
                .ctx("keeping the network namespace at", path)
        })
    })
}

/// Unmounts and removes a namespace made by `create` (a missing one is
/// fine).
pub fn remove(path: &Path, mounts: Option<&File>) -> Result<()> {
    in_mounts(mounts, || {
        if crate::host::is_namespace(path) {
            rustix::mount::unmount(path, UnmountFlags::DETACH)
                .map_err(std::io::Error::from)
                .ctx("unmounting", path)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("removing", path),
            _ => Ok(()),
        }
    })
}
