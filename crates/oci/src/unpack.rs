//! Safe layer unpacking.
//!
//! Every path in a layer is resolved relative to the destination with
//! `openat2(RESOLVE_IN_ROOT)`, so symlinks and `..` inside the tree can never
//! lead outside it: the kernel resolves `/` and `..` to the destination itself.
//! On top of that, entries whose names contain `..` or are absolute are refused
//! outright, so a hostile layer gets a clear error rather than a silent rewrite.
//! The final component of every entry is created with an `*at` call on the
//! resolved parent, without following symlinks.
//!
//! Whiteouts are either turned into overlayfs whiteouts (a per-layer diff
//! directory to stack with overlayfs) or applied by deleting what they name (a
//! flattened root filesystem, the copy fallback).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

use crate::digest::ParallelDigestReader;
use crate::{decompress, Compression, Digest, Error, Result};

/// What a whiteout entry becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Write overlayfs whiteouts and opaque markers: the destination is one
    /// layer of a stack. `userxattr` selects the `user.overlay.*` namespace that
    /// overlayfs uses inside a user namespace.
    Overlay { userxattr: bool },
    /// Delete what the whiteout names: the destination is a flattened rootfs.
    Apply,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub whiteouts: Whiteouts,
    /// Running without CAP_MKNOD in the initial user namespace: device nodes
    /// are skipped with a warning instead of failing the layer.
    pub rootless: bool,
}

/// What unpacking found.
#[derive(Debug)]
pub struct Report {
    /// The sha256 of the uncompressed tar stream (the layer's diff id).
    pub diff_id: Digest,
    pub compression: Compression,
    pub entries: u64,
    pub skipped_devices: u64,
    /// Entries whose owner is not mapped in our user namespace: left owned by
    /// the unpacking user.
    pub unmapped_owners: u64,
    pub skipped_xattrs: u64,
}

/// Unpacks a (possibly compressed) layer into `dest`, which must exist.
pub fn unpack(layer: impl Read, dest: &Path, opts: Options) -> Result<Report> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| entry_err(dest, e))?;
    let (compression, stream) = decompress(layer).map_err(Error::ReadLayer)?;
    let mut hashing = ParallelDigestReader::new(stream);
    let mut unpacker = Unpacker {
        root: root.as_fd(),
        opts,
        parent_cache: None,
        own_ids: (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        ),
        report: Report {
            diff_id: Digest::of(b""),
            compression,
            entries: 0,
            skipped_devices: 0,
            unmapped_owners: 0,
            skipped_xattrs: 0,
        },
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(Error::ReadLayer)? {
            let entry = entry.map_err(Error::ReadLayer)?;
            unpacker.entry(entry)?;
        }
    }
    // The diff id covers the whole stream, including the end-of-archive padding.
    io::copy(&mut hashing, &mut io::sink()).map_err(Error::ReadLayer)?;
    let mut report = unpacker.report;
    report.diff_id = hashing.digest().map_err(Error::ReadLayer)?;
    if report.skipped_devices > 0 {
        tracing::warn!(
            count = report.skipped_devices,
            "device nodes skipped: creating them needs root on the host"
        );
    }
    if report.unmapped_owners > 0 {
        tracing::warn!(
            count = report.unmapped_owners,
            "files owned by ids outside this user namespace's mapping were left owned by root; add a range to /etc/subuid and /etc/subgid"
        );
    }
    Ok(report)
}

/// A layer path split into checked components.
struct EntryPath {
    display: String,
    parent: Vec<Vec<u8>>,
    /// `None` for the root directory itself (`./`).
    name: Option<Vec<u8>>,
}

/// Splits a tar path into components, refusing absolute paths and `..`.
fn split_path(raw: &[u8]) -> Result<EntryPath> {
    let display = String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(Error::Escape {
            path: display,
            why: "absolute path",
        });
    }
    let mut parts = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Escape {
                    path: display,
                    why: "'..' component",
                })
            }
            _ => parts.push(c.to_vec()),
        }
    }
    let name = parts.pop();
    Ok(EntryPath {
        display,
        parent: parts,
        name,
    })
}

fn entry_err(path: impl Into<PathBuf>, e: Errno) -> Error {
    Error::UnpackEntry {
        path: path.into(),
        source: e.into(),
    }
}

fn join(parts: &[Vec<u8>]) -> PathBuf {
    let mut p = PathBuf::from(".");
    for c in parts {
        p.push(OsStr::from_bytes(c));
    }
    p
}

fn name_path(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    opts: Options,
    /// The last resolved parent directory: layers list a directory's entries
    /// together, so this saves most resolutions. A cached fd stays inside the
    /// root even if the directory is later replaced, so reuse is safe.
    parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    /// Our effective uid and gid: what new files get without a chown.
    own_ids: (u32, u32),
    report: Report,
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Unpacker<'_> {
    fn resolve_in_root(&self, parts: &[Vec<u8>]) -> rustix::io::Result<OwnedFd> {
        rfs::openat2(
            self.root,
            join(parts),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
    }

    /// The parent directory of an entry, created as needed, never outside
    /// root. Taken out of the cache; [`Self::keep_parent`] puts it back.
    fn take_parent(&mut self, parts: &[Vec<u8>], display: &str) -> Result<(Vec<Vec<u8>>, OwnedFd)> {
        if let Some((key, fd)) = self.parent_cache.take() {
            if key.as_slice() == parts {
                return Ok((key, fd));
            }
        }
        let fd = match self.resolve_in_root(parts) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.create_parents(parts, display)?,
            Err(e) => return Err(entry_err(display, e)),
        };
        Ok((parts.to_vec(), fd))
    }

    fn keep_parent(&mut self, parent: (Vec<Vec<u8>>, OwnedFd)) {
        self.parent_cache = Some(parent);
    }

    fn create_parents(&self, parts: &[Vec<u8>], display: &str) -> Result<OwnedFd> {
        let mut dir = self
            .resolve_in_root(&[])
            .map_err(|e| entry_err(display, e))?;
        for i in 0..parts.len() {
            dir = match self.resolve_in_root(&parts[..=i]) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&dir, name_path(&parts[i]), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(entry_err(display, e)),
                    }
                    self.resolve_in_root(&parts[..=i])
                        .map_err(|e| entry_err(display, e))?
                }
                Err(e) => return Err(entry_err(display, e)),
            };
        }
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.report.entries += 1;
        let path = split_path(&entry.path_bytes())?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(Error::ReadLayer)? & 0o7777;
        let uid = header.uid().map_err(Error::ReadLayer)?;
        let gid = header.gid().map_err(Error::ReadLayer)?;
        let mtime = header.mtime().unwrap_or(0);
        let dev = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let xattrs = pax_xattrs(&mut entry);

        let Some(name) = path.name.clone() else {
            // `./` itself: only its metadata can change.
            if kind.is_dir() {
                let root = self
                    .resolve_in_root(&[])
                    .map_err(|e| entry_err(&path.display, e))?;
                let dir = rfs::openat(
                    &root,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| entry_err(&path.display, e))?;
                self.set_owner(&dir, "", uid, gid, &path.display)?;
                rfs::fchmod(&dir, Mode::from_raw_mode(mode))
                    .map_err(|e| entry_err(&path.display, e))?;
            }
            return Ok(());
        };
        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(&path, target);
        }

        let display = path.display.clone();
        let opts = self.opts;
        let (key, parent) = self.take_parent(&path.parent, &display)?;
        let name_p = name_path(&name);
        let err = |e: Errno| entry_err(&display, e);

        match kind {
            EntryType::Directory => {
                match rfs::mkdirat(&parent, name_p, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st =
                            rfs::statat(&parent, name_p, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            estiba_os::fs::remove_all_at(&parent, name_p).map_err(err)?;
                            rfs::mkdirat(&parent, name_p, Mode::from_raw_mode(0o700))
                                .map_err(err)?;
                        }
                    }
                    Err(e) => return Err(err(e)),
                }
                let dir = rfs::openat(
                    &parent,
                    name_p,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(err)?;
                self.set_owner(&dir, "", uid, gid, &display)?;
                rfs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(err)?;
                self.set_xattrs(&dir, &xattrs);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let create = || rfs::openat(&parent, name_p, flags, Mode::from_raw_mode(0o600));
                // Most entries are new: create first, replace only on conflict.
                let fd = match create() {
                    Err(Errno::EXIST) => {
                        replace_existing(&parent, name_p).map_err(err)?;
                        create()
                    }
                    other => other,
                }
                .map_err(err)?;
                let mut file = File::from(fd);
                copy_data(&mut entry, &mut file).map_err(|e| Error::UnpackEntry {
                    path: display.clone().into(),
                    source: e,
                })?;
                // The file was just created by us: chown only to someone else.
                if (uid, gid) != (u64::from(self.own_ids.0), u64::from(self.own_ids.1)) {
                    self.set_owner(&file, "", uid, gid, &display)?;
                }
                rfs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(err)?;
                self.set_xattrs(&file, &xattrs);
                let t = timestamps(mtime);
                rfs::futimens(&file, &t).map_err(err)?;
            }
            EntryType::Symlink => {
                let target = link.ok_or_else(|| Error::UnsupportedEntry {
                    path: display.clone(),
                    kind: "symlink without target".into(),
                })?;
                let link = || rfs::symlinkat(OsStr::from_bytes(&target), &parent, name_p);
                match link() {
                    Err(Errno::EXIST) => {
                        replace_existing(&parent, name_p).map_err(err)?;
                        link()
                    }
                    other => other,
                }
                .map_err(err)?;
                self.set_owner(&parent, name_p, uid, gid, &display)?;
                let t = timestamps(mtime);
                rfs::utimensat(&parent, name_p, &t, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| Error::UnsupportedEntry {
                    path: display.clone(),
                    kind: "hardlink without target".into(),
                })?;
                let target = split_path(&target)?;
                let target_name = target.name.clone().ok_or_else(|| Error::Escape {
                    path: display.clone(),
                    why: "hardlink to the root directory",
                })?;
                replace_existing(&parent, name_p).map_err(err)?;
                let target_parent = self
                    .resolve_in_root(&target.parent)
                    .map_err(|e| entry_err(&target.display, e))?;
                rfs::linkat(
                    &target_parent,
                    name_path(&target_name),
                    &parent,
                    name_p,
                    AtFlags::empty(),
                )
                .map_err(err)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if opts.rootless && file_type != FileType::Fifo {
                    tracing::warn!(path = %path.display, "skipping device node: rootless");
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                replace_existing(&parent, name_p).map_err(err)?;
                rfs::mknodat(
                    &parent,
                    name_p,
                    file_type,
                    Mode::from_raw_mode(mode),
                    rfs::makedev(dev.0, dev.1),
                )
                .map_err(err)?;
                self.set_owner(&parent, name_p, uid, gid, &display)?;
                rfs::chmodat(&parent, name_p, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(err)?;
            }
            // Metadata-only entries that the tar crate has already folded in.
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => {
                return Err(Error::UnsupportedEntry {
                    path: display,
                    kind: format!("{other:?}"),
                });
            }
        }
        self.keep_parent((key, parent));
        Ok(())
    }

    fn whiteout(&mut self, path: &EntryPath, target: &[u8]) -> Result<()> {
        let display = path.display.clone();
        let opts = self.opts;
        let (key, parent) = self.take_parent(&path.parent, &display)?;
        let err = |e: Errno| entry_err(&display, e);
        if target == b".wh..opq" {
            let dir = rfs::openat(
                &parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(err)?;
            match opts.whiteouts {
                Whiteouts::Overlay { userxattr } => {
                    let key = if userxattr {
                        "user.overlay.opaque"
                    } else {
                        "trusted.overlay.opaque"
                    };
                    rfs::fsetxattr(&dir, key, b"y", XattrFlags::empty()).map_err(err)?;
                }
                Whiteouts::Apply => {
                    for name in estiba_os::fs::list_dir(&dir).map_err(err)? {
                        estiba_os::fs::remove_all_at(&dir, name_path(&name)).map_err(err)?;
                    }
                }
            }
            self.keep_parent((key, parent));
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(Error::Escape {
                path: display,
                why: "whiteout names no entry of its directory",
            });
        }
        let target = name_path(target);
        match opts.whiteouts {
            Whiteouts::Overlay { .. } => {
                replace_existing(&parent, target).map_err(err)?;
                rfs::mknodat(
                    &parent,
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .map_err(err)?;
            }
            Whiteouts::Apply => match estiba_os::fs::remove_all_at(&parent, target) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(err(e)),
            },
        }
        self.keep_parent((key, parent));
        Ok(())
    }

    /// Sets the owner of `name` in `dir` (or of `dir` itself when `name` is
    /// empty). Ids this user namespace cannot represent are counted, not fatal.
    fn set_owner(
        &mut self,
        dir: impl AsFd,
        name: impl AsRef<Path>,
        uid: u64,
        gid: u64,
        display: &str,
    ) -> Result<()> {
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            self.report.unmapped_owners += 1;
            return Ok(());
        };
        let name = name.as_ref();
        let flags = if name.as_os_str().is_empty() {
            AtFlags::EMPTY_PATH
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let owner = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
        match rfs::chownat(dir, name, owner.0, owner.1, flags) {
            Ok(()) => Ok(()),
            Err(Errno::INVAL) if self.opts.rootless => {
                self.report.unmapped_owners += 1;
                Ok(())
            }
            Err(e) => Err(entry_err(display, e)),
        }
    }

    fn set_xattrs(&mut self, fd: impl AsFd, xattrs: &[(String, Vec<u8>)]) {
        for (key, value) in xattrs {
            if let Err(e) = rfs::fsetxattr(&fd, key.as_str(), value, XattrFlags::empty()) {
                tracing::warn!(xattr = %key, error = %e, "extended attribute not set");
                self.report.skipped_xattrs += 1;
            }
        }
    }
}

/// Copies file data with a larger buffer than `io::copy`'s 8 KiB: fewer
/// syscalls for big layers.
fn copy_data(from: &mut impl Read, to: &mut File) -> io::Result<()> {
    use std::io::Write;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = rfs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Extended attributes carried in PAX headers (`SCHILY.xattr.NAME`).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    exts.filter_map(|e| e.ok())
        .filter_map(|e| {
            let key = e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
            Some((key, e.value_bytes().to_vec()))
        })
        .collect()
}

/// Removes a non-directory at `name`, or a whole directory tree, so that a new
/// entry can take its place. Missing is fine.
fn replace_existing(dir: impl AsFd, name: &Path) -> rustix::io::Result<()> {
    match estiba_os::fs::remove_all_at(dir, name) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Self {
            Layer(tar::Builder::new(Vec::new()))
        }

        fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(rustix::process::getuid().as_raw().into());
            h.set_gid(rustix::process::getgid().as_raw().into());
            h.set_mtime(1_000_000);
            h
        }

        fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
            self.0.append_data(&mut h, path, data).unwrap();
            self
        }

        fn dir(mut self, path: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
            self.0.append_data(&mut h, path, &b""[..]).unwrap();
            self
        }

        fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
            let mut h = Self::header(kind, 0o777, 0);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn opts(whiteouts: Whiteouts) -> Options {
        Options {
            whiteouts,
            rootless: !rustix::process::geteuid().is_root(),
        }
    }

    #[test]
    fn unpacks_files_links_and_modes_and_reports_the_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let layer = Layer::new()
            .dir("bin/")
            .file("bin/tool", b"#!/bin/sh\n", 0o4755)
            .link(tar::EntryType::Symlink, "bin/sh", "tool")
            .link(tar::EntryType::Link, "bin/hard", "bin/tool")
            .file("deep/er/file", b"parents are created", 0o600)
            .bytes();
        let report = unpack(&layer[..], dir.path(), opts(Whiteouts::Apply)).unwrap();
        assert_eq!(report.diff_id, Digest::of(&layer));
        assert_eq!(report.compression, Compression::None);
        let tool = fs::metadata(dir.path().join("bin/tool")).unwrap();
        assert_eq!(
            tool.permissions().mode() & 0o7777,
            0o4755,
            "setuid kept after chown"
        );
        assert_eq!(tool.mtime(), 1_000_000);
        assert_eq!(tool.nlink(), 2, "hardlink");
        assert_eq!(
            fs::read_link(dir.path().join("bin/sh")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("deep/er/file")).unwrap(),
            "parents are created"
        );
    }

    #[test]
    fn gzip_layers_unpack_and_hash_the_uncompressed_stream() {
        let dir = tempfile::tempdir().unwrap();
        let layer = Layer::new().file("a", b"x", 0o644).bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &layer).unwrap();
        let report = unpack(
            &gz.finish().unwrap()[..],
            dir.path(),
            opts(Whiteouts::Apply),
        )
        .unwrap();
        assert_eq!(report.compression, Compression::Gzip);
        assert_eq!(report.diff_id, Digest::of(&layer));
    }

    #[test]
    fn whiteouts_apply_by_deleting() {
        let dir = tempfile::tempdir().unwrap();
        let lower = Layer::new()
            .file("etc/a", b"a", 0o644)
            .file("etc/b", b"b", 0o644)
            .file("opq/old", b"o", 0o644)
            .bytes();
        unpack(&lower[..], dir.path(), opts(Whiteouts::Apply)).unwrap();
        let upper = Layer::new()
            .file("etc/.wh.a", b"", 0o644)
            .dir("opq/")
            .file("opq/.wh..wh..opq", b"", 0o644)
            .file("opq/new", b"n", 0o644)
            .bytes();
        unpack(&upper[..], dir.path(), opts(Whiteouts::Apply)).unwrap();
        assert!(!dir.path().join("etc/a").exists());
        assert!(dir.path().join("etc/b").exists());
        assert!(!dir.path().join("opq/old").exists());
        assert!(dir.path().join("opq/new").exists());
    }

    #[test]
    fn whiteouts_become_overlay_devices() {
        let dir = tempfile::tempdir().unwrap();
        let layer = Layer::new().file("etc/.wh.gone", b"", 0o644).bytes();
        unpack(
            &layer[..],
            dir.path(),
            opts(Whiteouts::Overlay { userxattr: true }),
        )
        .unwrap();
        let meta = fs::symlink_metadata(dir.path().join("etc/gone")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), 0);
    }

    #[test]
    fn escapes_are_refused_with_a_clear_error() {
        for bad in ["../x", "a/../../x", "/etc/x"] {
            let err = split_path(bad.as_bytes()).err().unwrap();
            assert!(
                err.to_string().contains("would escape the root"),
                "{bad}: {err}"
            );
        }
        let ok = split_path(b"./a//b/./c").unwrap();
        assert_eq!(ok.parent, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ok.name, Some(b"c".to_vec()));
        assert!(split_path(b"./").unwrap().name.is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut junk = vec![0x55u8; 1024];
        junk[0] = b'x';
        assert!(unpack(&junk[..], dir.path(), opts(Whiteouts::Apply)).is_err());
        let truncated = &Layer::new().file("a", &[1u8; 4096], 0o644).bytes()[..1000];
        assert!(unpack(truncated, dir.path(), opts(Whiteouts::Apply)).is_err());
    }
}
