//! Writes that a crash cannot leave half done, creation that never
//! replaces, and removal that never follows a symlink out of the tree.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::{random_hex, IoContext, Result};

/// A temp file's name beside `path`: same directory, so a rename is atomic.
fn temp_beside(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!("tmp-{}", random_hex(4)))
}

/// Writes `data` to a new file at `tmp` with `mode`, synced unless `sync`
/// says otherwise.
fn write_new(tmp: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

/// Replaces `path` with `data`: a temp file in the same directory, synced,
/// then renamed over it. Readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, 0o644, true)
}

/// Like [`write_atomic`], without the sync: still whole or absent after a
/// `kill -9` of the writer (the page cache outlives it), but not promised
/// through a power loss. For files that a reboot makes stale anyway: a
/// bundle rebuilt at every start, the record of a container removed when it
/// exits. Each sync costs about half a millisecond on these disks.
pub fn write_atomic_unsynced(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, 0o644, false)
}

/// Like [`write_atomic`], for an owner-only file (0600): keys, credentials.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, 0o600, true)
}

fn replace(path: &Path, data: &[u8], mode: u32, sync: bool) -> Result<()> {
    let tmp = temp_beside(path);
    let result = write_new(&tmp, data, mode, sync).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.ctx("writing", path)
}

/// Creates `path` with `data` and `mode` unless it exists. Returns false,
/// leaving the file alone, when another writer got there first. The file
/// appears whole or not at all: it is written beside, then hard-linked in,
/// and a link never replaces.
pub fn create_exclusive(path: &Path, data: &[u8], mode: u32) -> Result<bool> {
    let tmp = temp_beside(path);
    let result = write_new(&tmp, data, mode, true).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    result.ctx("creating", path)
}

/// Removes `name` in `dir`, recursively if it is a directory, never
/// following symlinks.
pub fn remove_all_at(dir: impl AsFd, name: &Path) -> rustix::io::Result<()> {
    match rfs::unlinkat(&dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        other => return other,
    }
    let sub = rfs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(&sub)? {
        use std::os::unix::ffi::OsStrExt;
        remove_all_at(&sub, Path::new(std::ffi::OsStr::from_bytes(&child)))?;
    }
    rfs::unlinkat(&dir, name, AtFlags::REMOVEDIR)
}

/// The names in `dir`, without `.` and `..`.
pub fn list_dir(dir: impl AsFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// Removes a directory tree (or a file) without following symlinks. A path
/// that does not exist is already removed.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no parent",
        ));
    };
    let parent = match rfs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::NOENT) => return Ok(()),
        other => other?,
    };
    match remove_all_at(&parent, Path::new(name)) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens `path` for appending, creating it (and its directory) if missing.
pub fn open_append(path: &Path, mode: u32) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .ctx("opening", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doc.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        write_private(&dir.path().join("key"), b"k").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn exclusive_creation_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        assert!(create_exclusive(&p, b"first", 0o600).unwrap());
        assert!(!create_exclusive(&p, b"second", 0o600).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn trees_go_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"x").unwrap();
        let tree = dir.path().join("tree/a/b");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        remove_tree(&dir.path().join("tree")).unwrap();
        assert!(!dir.path().join("tree").exists());
        assert!(outside.join("keep").exists());
        remove_tree(&dir.path().join("tree")).unwrap();
        remove_tree(&dir.path().join("no/such/parent")).unwrap();
    }
}
