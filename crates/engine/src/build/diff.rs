//! A build step's layer: the overlayfs upper directory written out as a
//! layer tar, overlay whiteouts turned back into `.wh.` entries.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|key| {
            let mut buf = [0u8; 4];
            rustix::fs::lgetxattr(dir, *key, &mut buf).is_ok_and(|n| n == 1 && buf[0] == b'y')
        })
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Writes the tree under `upper` as a layer tar into `out`.
pub fn write_layer<W: Write>(upper: &Path, out: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(&mut builder, upper, "", &mut links)?;
    builder.into_inner()
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the file was deleted in this step.
            let (parent, base) = name
                .rsplit_once('/')
                .map_or(("", name.as_str()), |(p, b)| (p, b));
            let wh = if parent.is_empty() {
                format!(".wh.{base}")
            } else {
                format!("{parent}/.wh.{base}")
            };
            let mut h = header(&meta, tar::EntryType::Regular);
            b.append_data(&mut h, wh, std::io::empty())?;
        } else if ft.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            if is_opaque(&path) {
                let mut h = header(&meta, tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{name}/.wh..wh..opq"), std::io::empty())?;
            }
            walk(b, &path, &format!("{name}/"), links)?;
        } else if ft.is_symlink() {
            let mut h = header(&meta, tar::EntryType::Symlink);
            b.append_link(&mut h, &name, fs::read_link(&path)?)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let mut h = header(&meta, tar::EntryType::Link);
                    b.append_link(&mut h, &name, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &name, fs::File::open(&path)?)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header(&meta, kind);
            let dev = meta.rdev();
            h.set_device_major(rustix::fs::major(dev))?;
            h.set_device_minor(rustix::fs::minor(dev))?;
            b.append_data(&mut h, &name, std::io::empty())?;
        }
    }
    Ok(())
}
