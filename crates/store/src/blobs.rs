//! Content-addressed blobs, verified while written and committed by rename.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use estiba_oci::{Digest, DigestWriter};

use crate::error::IoContext;
use crate::{Error, Result, Store};

/// A temp file in `ingest/`, removed on drop unless persisted.
pub(crate) struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    pub(crate) fn new(store: &Store, suffix: &str) -> Result<(Self, File)> {
        let path = store
            .root
            .join("ingest")
            .join(format!("{}{suffix}", random_hex(8)));
        let file = fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .ctx("creating", &path)?;
        Ok((TempFile { path, keep: false }, file))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest`; it is then no longer removed on drop.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest).ctx("committing", dest)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// When process `pid` started (field 22 of /proc/PID/stat, in clock ticks
/// since boot). With the pid it names one process for good: a pid that is
/// reused gets another start time. None if there is no such process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command: state is field 3, starttime field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Like [`process_start_time`], but None for a process that has exited
/// and waits to be reaped (a zombie).
pub fn live_process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Random hex from the kernel, for temp names and container ids.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Streams `reader` into the store. When `expected` is given, a mismatch
    /// fails and nothing becomes visible. Returns the digest and size.
    pub fn put_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let (tmp, file) = TempFile::new(self, ".blob")?;
        let mut writer = DigestWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
        io::copy(reader, &mut writer).ctx("writing", tmp.path())?;
        let (digest, size, buffered) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("writing", tmp.path())?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(estiba_oci::Error::DigestMismatch {
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                }
                .into());
            }
        }
        let dest = self.blob_path(&digest);
        if dest.exists() {
            return Ok((digest, size));
        }
        file.sync_all().ctx("syncing", tmp.path())?;
        tmp.persist(&dest)?;
        Ok((digest, size))
    }

    /// Verifies a file already in `ingest/` (a download) against `expected`
    /// and moves it into place; a mismatch removes it. Returns the size.
    pub fn adopt_blob(&self, path: &Path, expected: &Digest) -> Result<u64> {
        let ingest = self.root.join("ingest");
        if path.parent() != Some(ingest.as_path()) {
            return Err(Error::Invalid(format!(
                "{} is not in the store's ingest directory",
                path.display()
            )));
        }
        let mut reader = estiba_oci::DigestReader::new(File::open(path).ctx("opening", path)?);
        let size = io::copy(&mut reader, &mut io::sink()).ctx("reading", path)?;
        let actual = reader.digest();
        if actual != *expected {
            let _ = fs::remove_file(path);
            return Err(estiba_oci::Error::DigestMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            }
            .into());
        }
        let dest = self.blob_path(expected);
        if dest.exists() {
            let _ = fs::remove_file(path);
            return Ok(size);
        }
        File::open(path)
            .and_then(|f| f.sync_all())
            .ctx("syncing", path)?;
        fs::rename(path, &dest).ctx("committing", &dest)?;
        Ok(size)
    }

    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<Digest> {
        let expected = Digest::of(data);
        if !self.has_blob(&expected) {
            self.put_blob(&mut &data[..], Some(&expected))?;
        }
        Ok(expected)
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingBlob(digest.clone()),
            _ => Error::Io {
                op: "opening",
                path,
                source: e,
            },
        })
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .ctx("reading", self.blob_path(digest))?;
        Ok(data)
    }

    pub(crate) fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        Ok(fs::metadata(&path).ctx("reading", &path)?.len())
    }
}

/// Writes `data` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", random_hex(4)));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.ctx("writing", path)
}
