//! Small file helpers shared by the registry's modules.

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes an owner-only file (0600) through a temp file and a rename.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", estiba_store::random_hex(4)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.ctx("writing", path)
}
