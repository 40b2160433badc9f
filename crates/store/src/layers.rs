//! Unpacked layers: one directory per diff id, shared by every image that
//! has the layer, in overlayfs form (whiteouts as 0/0 character devices).

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use estiba_oci::unpack::{self, Options, Whiteouts};
use estiba_oci::Digest;

use crate::error::IoContext;
use crate::{Error, ImageRecord, Result, Store};
use estiba_os::random_hex;

impl Store {
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn unpack_options(&self, whiteouts: Whiteouts) -> Options {
        Options {
            whiteouts,
            rootless: self.rootless,
        }
    }

    /// Unpacks the layer blob unless its directory exists. The directory is
    /// renamed into place only once the unpacked stream matched `diff_id`.
    pub fn ensure_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.layer_path(diff_id);
        if dest.exists() {
            return Ok(dest);
        }
        let tmp = self
            .root
            .join("layers")
            .join(format!(".tmp-{}", random_hex(8)));
        fs::create_dir(&tmp).ctx("creating", &tmp)?;
        let result = (|| {
            let file = self.open_blob(blob)?;
            let opts = self.unpack_options(Whiteouts::Overlay {
                userxattr: self.rootless,
            });
            let report = unpack::unpack(BufReader::new(file), &tmp, opts)?;
            if report.diff_id != *diff_id {
                return Err(Error::DiffIdMismatch {
                    image: blob.to_string(),
                    index: 0,
                    expected: diff_id.clone(),
                    actual: report.diff_id,
                });
            }
            match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(()),
                // Another process unpacked the same layer first.
                Err(_) if dest.exists() => {
                    let _ = estiba_os::remove_tree(&tmp);
                    Ok(())
                }
                Err(e) => Err(e).ctx("committing layer", &dest),
            }
        })();
        if result.is_err() {
            let _ = estiba_os::remove_tree(&tmp);
        }
        result.map(|()| dest)
    }

    /// The layer directories of an image, bottom to top, unpacking any missing.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>> {
        image
            .layer_blobs
            .iter()
            .zip(&image.diff_ids)
            .map(|(blob, diff_id)| self.ensure_layer(blob, diff_id))
            .collect()
    }

    /// Flattens an image into `dest` by applying its layers in order: the
    /// copy-based root filesystem for hosts without overlayfs.
    pub fn flatten_into(&self, image: &ImageRecord, dest: &Path) -> Result<()> {
        for blob in &image.layer_blobs {
            let file = self.open_blob(blob)?;
            unpack::unpack(
                BufReader::new(file),
                dest,
                self.unpack_options(Whiteouts::Apply),
            )?;
        }
        Ok(())
    }
}
