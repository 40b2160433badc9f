//! Random access to the files of an image archive: a tar file (indexed once,
//! then read by offset) or an OCI layout directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use estiba_oci::Digest;

use crate::error::IoContext;
use crate::{Error, Result};

/// The files of an image archive, by their path inside it.
pub(crate) enum Source {
    Tar {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
    Dir(PathBuf),
}

/// Archive paths are compared without a leading `./`.
fn clean(path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_string()
}

impl Source {
    /// Indexes an uncompressed tar: each regular file's data offset and size.
    /// Symlinks to other members (older `docker save` output) are followed.
    pub(crate) fn tar(path: &Path) -> Result<Self> {
        let file = File::open(path).ctx("opening", path)?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        let bad = |e: io::Error| Error::UnknownArchive {
            path: path.to_path_buf(),
            why: e.to_string(),
        };
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            if kind.is_file() {
                entries.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    links.push((name, target, kind.is_symlink()));
                }
            }
        }
        for (name, target, relative) in links {
            let resolved = if relative {
                let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                normalize(&base.join(&target))
            } else {
                clean(&target)
            };
            if let Some(found) = entries.get(&resolved).copied() {
                entries.insert(name, found);
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Source::Tar { entries, .. } => entries.contains_key(&clean(name)),
            Source::Dir(root) => safe_join(root, name).is_some_and(|p| p.is_file()),
        }
    }

    pub(crate) fn open(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        match self {
            Source::Tar { path, entries } => {
                let (offset, size) = *entries
                    .get(&clean(name))
                    .ok_or_else(|| Error::MissingEntry(name.to_string()))?;
                let mut file = File::open(path).ctx("opening", path)?;
                file.seek(SeekFrom::Start(offset)).ctx("reading", path)?;
                Ok(Box::new(io::BufReader::with_capacity(
                    256 * 1024,
                    file.take(size),
                )))
            }
            Source::Dir(root) => {
                let p =
                    safe_join(root, name).ok_or_else(|| Error::MissingEntry(name.to_string()))?;
                let file = File::open(&p).map_err(|_| Error::MissingEntry(name.to_string()))?;
                Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
            }
        }
    }

    /// Reads a small metadata file, refusing anything over 8 MiB.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        const LIMIT: u64 = 8 << 20;
        let mut data = Vec::new();
        self.open(name)?
            .take(LIMIT + 1)
            .read_to_end(&mut data)
            .ctx("reading", name)?;
        if data.len() as u64 > LIMIT {
            return Err(Error::Invalid(format!("{name} is larger than 8 MiB")));
        }
        Ok(data)
    }

    /// Path of a blob in an OCI layout.
    pub(crate) fn blob_name(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm(), digest.hex())
    }
}

/// Resolves `a/b/../c` lexically; `..` past the top is dropped.
fn normalize(p: &Path) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.to_str().unwrap_or("").split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Joins an archive path to a layout directory, refusing `..` and absolute paths.
fn safe_join(root: &Path, name: &str) -> Option<PathBuf> {
    let name = clean(name);
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return None;
    }
    Some(root.join(name))
}
