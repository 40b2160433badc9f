//! Lock files held with flock(2): released when the holder drops them or
//! dies, so a `kill -9` never leaves a lock behind.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::{IoContext, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockFile {
    file: File,
}

impl LockFile {
    /// Waits for the exclusive lock on `path`, creating the file (not its
    /// directory) if missing.
    pub fn exclusive(path: &Path) -> Result<LockFile> {
        Self::take(path, FlockOperation::LockExclusive)
    }

    /// Waits for a shared lock on `path`.
    pub fn shared(path: &Path) -> Result<LockFile> {
        Self::take(path, FlockOperation::LockShared)
    }

    /// The exclusive lock on `path` if nobody holds it, else None.
    pub fn try_exclusive(path: &Path) -> Result<Option<LockFile>> {
        match Self::take(path, FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(crate::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn take(path: &Path, op: FlockOperation) -> Result<LockFile> {
        // The directory is not created: a lock inside something removed
        // (a container's directory) must fail, not bring it back.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx("opening lock", path)?;
        flock(&file, op).ctx("locking", path)?;
        Ok(LockFile { file })
    }

    /// The open lock file, for callers that keep other state in it.
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exclusive_lock_excludes_and_shared_locks_share() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = LockFile::shared(&p).unwrap();
        let b = LockFile::shared(&p).unwrap();
        let try_exclusive = || {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok()
        };
        assert!(!try_exclusive());
        drop((a, b));
        assert!(try_exclusive());
        let _held = LockFile::exclusive(&p).unwrap();
        assert!(!try_exclusive());
        assert!(LockFile::try_exclusive(&p).unwrap().is_none());
        drop(_held);
        assert!(LockFile::try_exclusive(&p).unwrap().is_some());
    }
}
