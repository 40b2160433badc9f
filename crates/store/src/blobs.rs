//! Content-addressed blobs, verified while written and committed by rename.

use std::fs::{self, File};
use std::io::{self, Read};
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
            .join(format!("{}{suffix}", estiba_os::random_hex(8)));
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
            _ => Error::Os(estiba_os::Error::Io {
                op: "opening",
                path,
                source: e,
            }),
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
