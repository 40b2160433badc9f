//! The filesystem backend.
//!
//! ```text
//! ROOT/blobs/<alg>/<hex[..2]>/<hex>          content, verified before the rename
//! ROOT/uploads/<id>/data, repo               uploads in progress
//! ROOT/repositories/<name>/_manifests/<alg>/<hex>.json   ManifestLink
//! ROOT/repositories/<name>/_tags/<tag>                   the digest it names
//! ROOT/repositories/<name>/_layers/<alg>/<hex>           an empty link
//! ROOT/repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>.json  Descriptor
//! ROOT/repositories/<name>/_settings.json
//! ```
//!
//! Names and tags are validated by the server before they reach a path, and
//! a name's components never start with `_`, so a repository `a` and a
//! repository `a/b` live side by side.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use estiba_os::{random_hex, write_atomic};

use super::{BlobReader, Descriptor, ManifestLink, Storage};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Code, Error, IoContext, Result};

/// The hash of an upload's bytes so far, kept in memory so that finishing
/// an upload does not read it again. After a restart it is rebuilt from
/// the file.
struct UploadState {
    offset: u64,
    hasher: Hasher,
}

pub struct FsStorage {
    root: PathBuf,
    uploads: Mutex<HashMap<String, Arc<Mutex<Option<UploadState>>>>>,
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("removing", path),
    }
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    write_atomic(path, data)?;
    Ok(())
}

fn upload_unknown(id: &str) -> Error {
    Error::api(Code::BlobUploadUnknown, format!("upload {id} is unknown"))
}

impl FsStorage {
    pub fn open(root: &Path) -> Result<Self> {
        for dir in ["blobs", "uploads", "repositories"] {
            fs::create_dir_all(root.join(dir)).ctx("creating", root.join(dir))?;
        }
        Ok(FsStorage {
            root: root.to_path_buf(),
            uploads: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo)
    }

    fn manifest_path(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(d.algorithm().name())
            .join(format!("{}.json", d.hex()))
    }

    fn layer_path(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_layers")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    fn referrers_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm().name())
            .join(subject.hex())
    }

    fn upload_dir(&self, id: &str) -> Result<PathBuf> {
        // Ids are ours (hex); anything else cannot name an upload.
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(upload_unknown(id));
        }
        Ok(self.root.join("uploads").join(id))
    }

    fn upload_state(&self, id: &str) -> Arc<Mutex<Option<UploadState>>> {
        let mut map = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(id.to_string()).or_default())
    }

    fn forget_upload(&self, id: &str) {
        let mut map = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// Hashes an upload's file from the start: after a restart, or for an
    /// algorithm other than the one hashed on the way in.
    fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Hasher, u64)> {
        let mut file = File::open(path).ctx("opening", path)?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).ctx("reading", path)?;
            if n == 0 {
                return Ok((hasher, size));
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    }
}

impl Storage for FsStorage {
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        Ok(not_found_is_none(fs::metadata(&path))
            .ctx("reading", &path)?
            .map(|m| m.len()))
    }

    fn open_blob(&self, digest: &Digest) -> Result<Option<BlobReader>> {
        let path = self.blob_path(digest);
        let Some(file) = not_found_is_none(File::open(&path)).ctx("opening", &path)? else {
            return Ok(None);
        };
        let size = file.metadata().ctx("reading", &path)?.len();
        Ok(Some(BlobReader {
            reader: Box::new(file),
            size,
        }))
    }

    fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<()> {
        if Digest::compute(digest.algorithm(), data) != *digest {
            return Err(Error::api(
                Code::DigestInvalid,
                format!("content does not match {digest}"),
            ));
        }
        let path = self.blob_path(digest);
        if path.exists() {
            return self.touch_blob(digest);
        }
        write_file(&path, data)
    }

    fn delete_blob(&self, digest: &Digest) -> Result<()> {
        remove_if_present(&self.blob_path(digest)).map(drop)
    }

    fn touch_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        match File::options().write(true).open(&path) {
            Ok(f) => f.set_modified(SystemTime::now()).ctx("touching", &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("touching", &path),
        }
    }

    fn blobs(&self) -> Result<Vec<(Digest, SystemTime)>> {
        let mut out = Vec::new();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let base = self.root.join("blobs").join(algorithm.name());
            for prefix in read_dir_names(&base)? {
                for name in read_dir_names(&base.join(&prefix))? {
                    let Ok(digest) = format!("{}:{name}", algorithm.name()).parse::<Digest>()
                    else {
                        continue;
                    };
                    let path = base.join(&prefix).join(&name);
                    if let Some(meta) =
                        not_found_is_none(fs::metadata(&path)).ctx("reading", &path)?
                    {
                        out.push((digest, meta.modified().ctx("reading", &path)?));
                    }
                }
            }
        }
        Ok(out)
    }

    fn blobs_last_used(&self, digest: &Digest) -> Result<Option<SystemTime>> {
        let path = self.blob_path(digest);
        match not_found_is_none(fs::metadata(&path)).ctx("reading", &path)? {
            Some(m) => Ok(Some(m.modified().ctx("reading", &path)?)),
            None => Ok(None),
        }
    }

    fn start_upload(&self, repo: &str) -> Result<String> {
        let id = random_hex(16);
        let dir = self.root.join("uploads").join(&id);
        fs::create_dir_all(&dir).ctx("creating", &dir)?;
        File::create(dir.join("data")).ctx("creating", dir.join("data"))?;
        // Written last: an upload without it is unknown, never misattributed.
        write_atomic(&dir.join("repo"), repo.as_bytes())?;
        Ok(id)
    }

    fn upload_repo(&self, id: &str) -> Result<Option<String>> {
        let path = self.upload_dir(id)?.join("repo");
        not_found_is_none(fs::read_to_string(&path)).ctx("reading", &path)
    }

    fn upload_offset(&self, id: &str) -> Result<u64> {
        let path = self.upload_dir(id)?.join("data");
        not_found_is_none(fs::metadata(&path))
            .ctx("reading", &path)?
            .map(|m| m.len())
            .ok_or_else(|| upload_unknown(id))
    }

    fn append_upload(&self, id: &str, start: Option<u64>, data: &mut dyn Read) -> Result<u64> {
        let path = self.upload_dir(id)?.join("data");
        let state = self.upload_state(id);
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = match OpenOptions::new().append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(upload_unknown(id)),
            Err(e) => return Err(e).ctx("opening", &path),
        };
        let offset = file.metadata().ctx("reading", &path)?.len();
        if let Some(start) = start {
            if start != offset {
                return Err(Error::api(
                    Code::RangeInvalid,
                    format!("the chunk starts at {start}, but the upload is at {offset}"),
                ));
            }
        }
        // The in-memory hash is good only if it covers exactly the file.
        let mut current = match state.take() {
            Some(s) if s.offset == offset => s,
            _ => {
                let (hasher, size) = Self::hash_file(&path, Algorithm::Sha256)?;
                UploadState {
                    offset: size,
                    hasher,
                }
            }
        };
        // Whole 1 MiB writes, and the disk starts writing early (see Flusher).
        let mut buf = vec![0u8; 1 << 20];
        let mut flusher = Flusher::default();
        let result = loop {
            let (filled, received) = fill(data, &mut buf);
            if filled > 0 {
                if let Err(e) = file.write_all(&buf[..filled]) {
                    // A short write leaves the hash behind the file: rebuilt next time.
                    return Err(e).ctx("writing", &path);
                }
                current.hasher.update(&buf[..filled]);
                current.offset += filled as u64;
                flusher.wrote(&file, filled as u64);
            }
            match received {
                Err(e) => break Err(e).ctx("receiving the chunk for", &path),
                Ok(true) => break Ok(()),
                Ok(false) => {}
            }
        };
        let offset = current.offset;
        *state = Some(current);
        result.map(|()| offset)
    }

    fn finish_upload(&self, id: &str, expected: &Digest) -> Result<u64> {
        let dir = self.upload_dir(id)?;
        let path = dir.join("data");
        let state = self.upload_state(id);
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let size = not_found_is_none(fs::metadata(&path))
            .ctx("reading", &path)?
            .ok_or_else(|| upload_unknown(id))?
            .len();
        let actual = match state.take() {
            Some(s) if s.offset == size && s.hasher.algorithm() == expected.algorithm() => {
                s.hasher.finish()
            }
            _ => Self::hash_file(&path, expected.algorithm())?.0.finish(),
        };
        if actual != *expected {
            return Err(Error::api(
                Code::DigestInvalid,
                format!("the upload's digest is {actual}, not {expected}"),
            ));
        }
        let dest = self.blob_path(expected);
        if dest.exists() {
            self.touch_blob(expected)?;
        } else {
            let file = File::open(&path).ctx("opening", &path)?;
            file.sync_all().ctx("syncing", &path)?;
            // The upload was written long ago, perhaps: the blob is new now.
            file.set_modified(SystemTime::now())
                .ctx("touching", &path)?;
            let parent = dest.parent().unwrap_or(&self.root);
            fs::create_dir_all(parent).ctx("creating", parent)?;
            fs::rename(&path, &dest).ctx("committing", &dest)?;
        }
        fs::remove_dir_all(&dir).ctx("removing", &dir)?;
        drop(state);
        self.forget_upload(id);
        Ok(size)
    }

    fn cancel_upload(&self, id: &str) -> Result<()> {
        let dir = self.upload_dir(id)?;
        if !dir.exists() {
            return Err(upload_unknown(id));
        }
        fs::remove_dir_all(&dir).ctx("removing", &dir)?;
        self.forget_upload(id);
        Ok(())
    }

    fn uploads(&self) -> Result<Vec<(String, SystemTime)>> {
        let base = self.root.join("uploads");
        let mut out = Vec::new();
        for id in read_dir_names(&base)? {
            let path = base.join(&id).join("data");
            // Before its data file exists (being created, or killed then),
            // an upload is as old as its directory.
            let dir = base.join(&id);
            let meta = match not_found_is_none(fs::metadata(&path)).ctx("reading", &path)? {
                Some(m) => Some(m),
                None => not_found_is_none(fs::metadata(&dir)).ctx("reading", &dir)?,
            };
            let Some(meta) = meta else { continue };
            let modified = meta.modified().ctx("reading", &path)?;
            out.push((id, modified));
        }
        Ok(out)
    }

    fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        collect_repositories(&self.root.join("repositories"), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn repository_exists(&self, repo: &str) -> Result<bool> {
        let dir = self.repo_dir(repo);
        Ok(["_manifests", "_layers", "_tags", "_settings.json"]
            .iter()
            .any(|p| dir.join(p).exists()))
    }

    fn create_repository(&self, repo: &str) -> Result<()> {
        let dir = self.repo_dir(repo).join("_manifests");
        fs::create_dir_all(&dir).ctx("creating", &dir)
    }

    fn delete_repository(&self, repo: &str) -> Result<()> {
        let dir = self.repo_dir(repo);
        // Only this repository's own entries: `repo/sub` may be another one.
        for entry in read_dir_names(&dir)? {
            if entry.starts_with('_') {
                let path = dir.join(&entry);
                let result = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                result.ctx("removing", &path)?;
            }
        }
        // Empty parents go too, up to the repositories directory.
        let top = self.root.join("repositories");
        let mut dir = dir.as_path();
        while dir != top && fs::remove_dir(dir).is_ok() {
            dir = match dir.parent() {
                Some(p) => p,
                None => break,
            };
        }
        Ok(())
    }

    fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        let path = self.layer_path(repo, digest);
        if path.exists() {
            return Ok(());
        }
        write_file(&path, b"")
    }

    fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.layer_path(repo, digest).exists() || self.manifest_path(repo, digest).exists())
    }

    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        remove_if_present(&self.layer_path(repo, digest)).map(drop)
    }

    fn prune_blob_links(&self, repo: &str) -> Result<usize> {
        let mut removed = 0;
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.repo_dir(repo).join("_layers").join(algorithm.name());
            for hex in read_dir_names(&dir)? {
                let Ok(digest) = format!("{}:{hex}", algorithm.name()).parse::<Digest>() else {
                    continue;
                };
                if !self.blob_path(&digest).exists() && remove_if_present(&dir.join(&hex))? {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn put_manifest_link(&self, repo: &str, digest: &Digest, link: &ManifestLink) -> Result<()> {
        let data = serde_json::to_vec(link).map_err(|e| Error::Malformed {
            what: "manifest link".into(),
            why: e.to_string(),
        })?;
        write_file(&self.manifest_path(repo, digest), &data)
    }

    fn manifest_link(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestLink>> {
        let path = self.manifest_path(repo, digest);
        let Some(data) = not_found_is_none(fs::read(&path)).ctx("reading", &path)? else {
            return Ok(None);
        };
        parse_json(&path, &data).map(Some)
    }

    fn manifests(&self, repo: &str) -> Result<Vec<(Digest, ManifestLink)>> {
        let mut out = Vec::new();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self
                .repo_dir(repo)
                .join("_manifests")
                .join(algorithm.name());
            for name in read_dir_names(&dir)? {
                let Some(hex) = name.strip_suffix(".json") else {
                    continue;
                };
                let Ok(digest) = format!("{}:{hex}", algorithm.name()).parse::<Digest>() else {
                    continue;
                };
                if let Some(link) = self.manifest_link(repo, &digest)? {
                    out.push((digest, link));
                }
            }
        }
        Ok(out)
    }

    fn delete_manifest_link(&self, repo: &str, digest: &Digest) -> Result<bool> {
        remove_if_present(&self.manifest_path(repo, digest))
    }

    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let path = self.tag_path(repo, tag);
        let Some(text) = not_found_is_none(fs::read_to_string(&path)).ctx("reading", &path)? else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| Error::Malformed {
            what: path.display().to_string(),
            why: "not a digest".into(),
        })
    }

    fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        write_file(&self.tag_path(repo, tag), digest.to_string().as_bytes())
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        remove_if_present(&self.tag_path(repo, tag))
    }

    fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let mut tags: Vec<String> = read_dir_names(&self.repo_dir(repo).join("_tags"))?
            .into_iter()
            .filter(|t| crate::names::valid_tag(t))
            .collect();
        tags.sort();
        Ok(tags)
    }

    fn add_referrer(&self, repo: &str, subject: &Digest, referrer: &Descriptor) -> Result<()> {
        let path = self.referrers_dir(repo, subject).join(format!(
            "{}-{}.json",
            referrer.digest.algorithm().name(),
            referrer.digest.hex()
        ));
        let data = serde_json::to_vec(referrer).map_err(|e| Error::Malformed {
            what: "descriptor".into(),
            why: e.to_string(),
        })?;
        write_file(&path, &data)
    }

    fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()> {
        let path = self.referrers_dir(repo, subject).join(format!(
            "{}-{}.json",
            referrer.algorithm().name(),
            referrer.hex()
        ));
        remove_if_present(&path).map(drop)
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(repo, subject);
        let mut out = Vec::new();
        for name in read_dir_names(&dir)? {
            if !name.ends_with(".json") {
                continue;
            }
            let path = dir.join(&name);
            if let Some(data) = not_found_is_none(fs::read(&path)).ctx("reading", &path)? {
                out.push(parse_json(&path, &data)?);
            }
        }
        out.sort_by(|a: &Descriptor, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn repository_settings(&self, repo: &str) -> Result<Option<Vec<u8>>> {
        let path = self.repo_dir(repo).join("_settings.json");
        not_found_is_none(fs::read(&path)).ctx("reading", &path)
    }

    fn set_repository_settings(&self, repo: &str, data: &[u8]) -> Result<()> {
        write_file(&self.repo_dir(repo).join("_settings.json"), data)
    }
}

/// Reads until `buf` is full or the data ends. Returns how much was read and
/// whether the data ended (or the error that stopped it: what was read
/// before it is still returned, to be written).
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> (usize, io::Result<bool>) {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => return (filled, Ok(true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Err(e)),
        }
    }
    (filled, Ok(false))
}

/// Starts writeback of an upload's file while it is still being received
/// (an `fdatasync` on a clone, in the background, every 32 MiB), so the
/// `fsync` that commits the blob has only the tail left to wait for.
#[derive(Default)]
struct Flusher {
    since: u64,
    running: Option<std::thread::JoinHandle<()>>,
}

const FLUSH_EVERY: u64 = 32 << 20;

impl Flusher {
    fn wrote(&mut self, file: &File, n: u64) {
        self.since += n;
        if self.since < FLUSH_EVERY || self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        if let Ok(clone) = file.try_clone() {
            self.since = 0;
            self.running = Some(std::thread::spawn(move || {
                let _ = clone.sync_data();
            }));
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::Malformed {
        what: path.display().to_string(),
        why: e.to_string(),
    })
}

/// The names in a directory (none if it does not exist), skipping temp files.
fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("listing", dir),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.ctx("listing", dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            if !name.contains(".tmp-") {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn collect_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    for name in read_dir_names(dir)? {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        let repo = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let holds_content = ["_manifests", "_layers", "_settings.json"]
            .iter()
            .any(|p| path.join(p).exists());
        if holds_content {
            out.push(repo.clone());
        }
        collect_repositories(&path, &repo, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_resume_after_a_restart_and_verify_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let id = s.start_upload("a/b").unwrap();
        assert_eq!(
            s.append_upload(&id, Some(0), &mut &b"hello "[..]).unwrap(),
            6
        );
        let err = s.append_upload(&id, Some(3), &mut &b"x"[..]).unwrap_err();
        assert_eq!(err.code(), Some(Code::RangeInvalid));
        // A new process: no hash in memory, rebuilt from the file.
        let s = FsStorage::open(dir.path()).unwrap();
        assert_eq!(s.upload_offset(&id).unwrap(), 6);
        s.append_upload(&id, Some(6), &mut &b"world"[..]).unwrap();
        let wrong = Digest::sha256(b"hello");
        assert_eq!(
            s.finish_upload(&id, &wrong).unwrap_err().code(),
            Some(Code::DigestInvalid)
        );
        assert!(s.blob_size(&wrong).unwrap().is_none());
        let right = Digest::compute(Algorithm::Sha512, b"hello world");
        assert_eq!(s.finish_upload(&id, &right).unwrap(), 11);
        assert_eq!(s.blob_size(&right).unwrap(), Some(11));
        assert_eq!(
            s.upload_offset(&id).unwrap_err().code(),
            Some(Code::BlobUploadUnknown)
        );
    }

    #[test]
    fn repositories_nest_and_delete_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let d = Digest::sha256(b"x");
        s.put_blob(&d, b"x").unwrap();
        for repo in ["a", "a/b", "c/d/e"] {
            s.create_repository(repo).unwrap();
            s.set_tag(repo, "t", &d).unwrap();
        }
        assert_eq!(s.repositories().unwrap(), ["a", "a/b", "c/d/e"]);
        s.delete_repository("a").unwrap();
        assert_eq!(s.repositories().unwrap(), ["a/b", "c/d/e"]);
        assert_eq!(s.tag("a/b", "t").unwrap(), Some(d));
        s.delete_repository("c/d/e").unwrap();
        assert!(!dir.path().join("repositories/c").exists());
    }

    #[test]
    fn an_upload_being_created_is_new_not_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        // What a concurrent GC may see: the directory, no data file yet.
        std::fs::create_dir_all(dir.path().join("uploads/abcd")).unwrap();
        let uploads = s.uploads().unwrap();
        let age = SystemTime::now().duration_since(uploads[0].1).unwrap();
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");
    }

    #[test]
    fn upload_ids_cannot_name_paths() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        for bad in ["../x", "", "a/b", "..", "zz"] {
            assert_eq!(
                s.upload_offset(bad).unwrap_err().code(),
                Some(Code::BlobUploadUnknown)
            );
        }
    }
}
