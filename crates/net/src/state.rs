//! The networks' state files (leases, published ports) and the store lock:
//! JSON documents changed under an exclusive flock and replaced atomically,
//! so concurrent commands never lose an update and a crash never leaves half
//! a file.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, IoContext, Result};

/// Holds an exclusive lock on `path` (created if missing) until dropped.
pub(crate) fn lock(path: &Path) -> Result<estiba_os::LockFile> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    Ok(estiba_os::LockFile::exclusive(path)?)
}

fn malformed(path: &Path, e: serde_json::Error) -> Error {
    Error::Invalid {
        what: "state file",
        value: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Runs `f` on the document at `path` under its lock (`path` with the
/// extension `lock`). If `f` changed it, it is saved and `changed` runs,
/// still under the lock.
pub(crate) fn update<T, R>(
    path: &Path,
    f: impl FnOnce(&mut T) -> Result<R>,
    changed: impl FnOnce(&T) -> Result<()>,
) -> Result<R>
where
    T: Default + Serialize + DeserializeOwned,
{
    let _lock = lock(&path.with_extension("lock"))?;
    let mut doc: T = match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| malformed(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
        Err(e) => return Err(e).ctx("reading", path),
    };
    let before = serde_json::to_vec_pretty(&doc).map_err(|e| malformed(path, e))?;
    let out = f(&mut doc)?;
    let after = serde_json::to_vec_pretty(&doc).map_err(|e| malformed(path, e))?;
    if after != before {
        estiba_os::write_atomic(path, &after)?;
        changed(&doc)?;
    }
    Ok(out)
}
