//! Store-wide locking with flock(2): content writers share the lock, prune
//! takes it exclusively so it never deletes a blob a load is still linking.

use std::fs::{File, OpenOptions};

use rustix::fs::{flock, FlockOperation};

use crate::error::IoContext;
use crate::{Result, Store};

/// Held for as long as the operation runs; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Store {
    fn lock(&self, name: &str, op: FlockOperation) -> Result<StoreLock> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("opening lock", &path)?;
        flock(&file, op).ctx("locking", &path)?;
        Ok(StoreLock { _file: file })
    }

    /// Taken by anything that adds content.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock("lock", FlockOperation::LockShared)
    }

    /// Taken by prune.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock("lock", FlockOperation::LockExclusive)
    }

    /// Serialises read-modify-write cycles of `images.json`.
    pub(crate) fn lock_index(&self) -> Result<StoreLock> {
        self.lock("index.lock", FlockOperation::LockExclusive)
    }
}
