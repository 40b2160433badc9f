//! Writing images out (`image save`, an oci-archive) and pruning what no
//! image references.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use estiba_oci::{media, Digest};
use serde_json::json;

use crate::archive::Source;
use crate::error::IoContext;
use crate::{Error, ImageRecord, Result, Store};
use estiba_os::random_hex;

/// What prune removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub images: Vec<Digest>,
    pub reclaimed: u64,
}

fn tar_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

impl Store {
    /// Writes `images` (with the names they were asked by) as an oci-archive,
    /// through a temp file renamed into place.
    pub fn save(&self, images: &[(ImageRecord, Option<String>)], out: &Path) -> Result<()> {
        let tmp = out.with_file_name(format!(
            ".{}.tmp-{}",
            out.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
            random_hex(4)
        ));
        let result = self
            .write_oci_archive(images, &tmp)
            .and_then(|()| fs::rename(&tmp, out).ctx("writing", out));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_oci_archive(
        &self,
        images: &[(ImageRecord, Option<String>)],
        path: &Path,
    ) -> Result<()> {
        let file = File::create(path).ctx("creating", path)?;
        let mut builder = tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, file));
        let mut add = |name: &str, size: u64, data: &mut dyn io::Read| -> Result<()> {
            let mut h = tar_header(size);
            builder.append_data(&mut h, name, data).ctx("writing", path)
        };
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add("oci-layout", layout.len() as u64, &mut &layout[..])?;
        let mut written = HashSet::new();
        let mut manifests = Vec::new();
        for (image, name) in images {
            let mut blobs = vec![image.manifest.clone(), image.id.clone()];
            blobs.extend(image.layer_blobs.iter().cloned());
            for blob in blobs {
                if written.insert(blob.clone()) {
                    let size = self.blob_size(&blob)?;
                    add(&Source::blob_name(&blob), size, &mut self.open_blob(&blob)?)?;
                }
            }
            let mut desc = json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": image.manifest.to_string(),
                "size": self.blob_size(&image.manifest)?,
            });
            if let Some(name) = name.clone().or_else(|| image.names.first().cloned()) {
                desc["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
            }
            manifests.push(desc);
        }
        let index =
            json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests });
        let index = serde_json::to_vec(&index).map_err(|e| Error::Malformed {
            what: "index".into(),
            source: e,
        })?;
        add("index.json", index.len() as u64, &mut &index[..])?;
        let buffered = builder.into_inner().ctx("writing", path)?;
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("writing", path)?;
        file.sync_all().ctx("syncing", path)
    }

    /// Removes dangling images, then every blob, layer and temp file that no
    /// remaining image references (including leftovers of a killed load).
    pub fn prune(&self) -> Result<Pruned> {
        let _lock = self.lock_exclusive()?;
        let mut pruned = Pruned::default();
        let kept = self.update_index(|index| {
            pruned.images = index
                .images
                .iter()
                .filter(|i| i.names.is_empty())
                .map(|i| i.id.clone())
                .collect();
            index.images.retain(|i| !i.names.is_empty());
            Ok(index.images.clone())
        })?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for image in &kept {
            blobs.insert(image.manifest.hex().to_string());
            blobs.insert(image.id.hex().to_string());
            blobs.extend(image.layer_blobs.iter().map(|d| d.hex().to_string()));
            layers.extend(image.diff_ids.iter().map(|d| d.hex().to_string()));
        }
        pruned.reclaimed += remove_unlisted(&self.root.join("blobs/sha256"), &blobs)?;
        pruned.reclaimed += remove_unlisted(&self.root.join("layers"), &layers)?;
        pruned.reclaimed += remove_unlisted(&self.root.join("ingest"), &HashSet::new())?;
        Ok(pruned)
    }
}

/// Removes every entry of `dir` whose name is not in `keep`; returns the bytes
/// of removed files (directories count as zero).
fn remove_unlisted(dir: &Path, keep: &HashSet<String>) -> Result<u64> {
    let mut freed = 0;
    for entry in fs::read_dir(dir).ctx("listing", dir)? {
        let entry = entry.ctx("listing", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let meta = entry.metadata().ctx("reading", entry.path())?;
        if meta.is_dir() {
            estiba_os::remove_tree(&entry.path()).ctx("removing", entry.path())?;
        } else {
            freed += meta.len();
            fs::remove_file(entry.path()).ctx("removing", entry.path())?;
        }
    }
    Ok(freed)
}
