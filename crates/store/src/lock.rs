//! Store-wide locking with flock(2): content writers share the lock, prune
//! takes it exclusively so it never deletes a blob a load is still linking.

use estiba_os::LockFile;

use crate::{Result, Store};

/// Held for as long as the operation runs; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: LockFile,
}

impl Store {
    /// Taken by anything that adds content.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        Ok(StoreLock {
            _file: LockFile::shared(&self.root.join("lock"))?,
        })
    }

    /// Taken by prune.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        Ok(StoreLock {
            _file: LockFile::exclusive(&self.root.join("lock"))?,
        })
    }

    /// Serialises read-modify-write cycles of `images.json`.
    pub(crate) fn lock_index(&self) -> Result<StoreLock> {
        Ok(StoreLock {
            _file: LockFile::exclusive(&self.root.join("index.lock"))?,
        })
    }
}
