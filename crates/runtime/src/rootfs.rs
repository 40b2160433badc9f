//! A container's root filesystem: overlayfs over the image's shared layer
//! directories with a private upper directory, or a flattened copy where
//! overlayfs is unavailable. Also safe lookups inside a rootfs (the command,
//! users and groups), which resolve every path within it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::mount::{self, MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::{IoContext, SysContext};
use crate::{Error, Result};

/// Gives this process a mount namespace of its own, so the container's
/// mounts vanish with it and never leak into the host's table (or, rootless,
/// into the namespace every command of the user shares).
pub fn private_mount_namespace() -> Result<()> {
    {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(std::io::Error::from)
            .sys("unsharing the mount namespace")?;
    }
    mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .sys("making mounts private")
}

/// Mounts overlayfs at `target` with `layers` (bottom to top) below `upper`.
/// How an overlay is mounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Rootless: overlay's own xattrs in the `user.` namespace.
    pub userxattr: bool,
    /// For an upper dir that is thrown away with the container (`--rm`, a
    /// build step that is committed from it): overlay skips every sync of
    /// the upper file system, which an unmount otherwise waits for. After
    /// a kernel crash such an upper cannot be mounted again, so its
    /// workdir is made fresh at each mount.
    pub volatile: bool,
}

pub fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    how: Overlay,
) -> Result<()> {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if how.userxattr {
        options.push_str(",userxattr");
    }
    if how.volatile {
        options.push_str(",volatile");
    }
    let options = std::ffi::CString::new(options).map_err(|_| Error::InvalidOption {
        what: "layer path",
        value: target.display().to_string(),
        why: "contains a NUL byte".into(),
    })?;
    mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .ctx("mounting overlay on", target)
}

pub fn unmount(target: &Path) -> Result<()> {
    match mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).ctx("unmounting", target),
    }
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` resolved inside `root` (symlinks and `..` cannot leave it).
pub fn open_in_root(
    root: &Path,
    path: &str,
    flags: OFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let dir = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rfs::openat2(
        &dir,
        path.trim_start_matches('/'),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// Reads a small file of the rootfs (such as /etc/passwd), resolved inside it.
pub fn read_in_root(root: &Path, path: &str) -> Option<String> {
    let fd = open_in_root(root, path, OFlags::RDONLY).ok()?;
    let mut text = String::new();
    File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Checks that the command exists and can be executed, the way docker's
/// exit codes distinguish: 127 for not found, 126 for not executable.
pub fn check_command(root: &Path, command: &str, env: &[String]) -> Result<()> {
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.to_string()]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
            .collect()
    };
    let mut found_unexecutable = false;
    for candidate in &candidates {
        let Ok(fd) = open_in_root(root, candidate, OFlags::PATH) else {
            continue;
        };
        let Ok(st) = rfs::fstat(&fd) else { continue };
        let is_file = rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile;
        if is_file && st.st_mode & 0o111 != 0 {
            return Ok(());
        }
        found_unexecutable = true;
    }
    if found_unexecutable {
        Err(Error::CommandNotExecutable(command.to_string()))
    } else {
        Err(Error::CommandNotFound(command.to_string()))
    }
}

/// A user resolved against the image's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Resolves docker's `user[:group]` (names or numbers) inside the rootfs.
pub fn resolve_user(root: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(root, "/etc/passwd").unwrap_or_default();
    let group = read_in_root(root, "/etc/group").unwrap_or_default();
    resolve_user_in(&passwd, &group, spec)
}

fn resolve_user_in(passwd: &str, group: &str, spec: &str) -> Result<User> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user);
    let by_id = user
        .parse::<u32>()
        .ok()
        .and_then(|id| entries.iter().find(|f| f[2].parse() == Ok(id)));
    let (uid, mut gid, home, name) = match (by_name.or(by_id), user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            Some(f[0]),
        ),
        (None, Ok(id)) => (id, id, "/".to_string(), None),
        (None, Err(_)) => return Err(Error::NoSuchUser(user.to_string())),
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::NoSuchGroup(g.to_string()))?,
        };
    } else if by_name.or(by_id).is_none() {
        gid = 0;
    }
    let additional_gids = match name {
        Some(n) if grp.is_none() => groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        _ => vec![],
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\n";

    #[test]
    fn users_resolve_like_docker() {
        let u = resolve_user_in(PASSWD, GROUP, "alice").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), u.home.as_str()),
            (1000, 1000, vec![10], "/home/alice")
        );
        let u = resolve_user_in(PASSWD, GROUP, "1000:10").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user_in(PASSWD, GROUP, "4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        let u = resolve_user_in("", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(matches!(
            resolve_user_in(PASSWD, GROUP, "bob"),
            Err(Error::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve_user_in(PASSWD, GROUP, "alice:nogroup"),
            Err(Error::NoSuchGroup(_))
        ));
    }

    #[test]
    fn command_lookup_stays_in_root_and_maps_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(root.join("bin/data"), "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        // A symlink that points at the host's /bin/sh must not count.
        std::os::unix::fs::symlink("/bin/sh", root.join("bin/sh")).unwrap();
        let env = vec!["PATH=/bin".to_string()];
        assert!(check_command(root, "tool", &env).is_ok());
        assert!(check_command(root, "/bin/tool", &env).is_ok());
        assert!(matches!(
            check_command(root, "data", &env),
            Err(Error::CommandNotExecutable(_))
        ));
        assert!(matches!(
            check_command(root, "nope", &env),
            Err(Error::CommandNotFound(_))
        ));
        assert!(matches!(
            check_command(root, "sh", &env),
            Err(Error::CommandNotFound(_))
        ));
        assert!(matches!(
            check_command(root, "/bin", &env),
            Err(Error::CommandNotExecutable(_))
        ));
    }
}
