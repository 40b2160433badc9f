//! Image records and names (`images.json`).

use estiba_oci::{Digest, Reference};
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{Error, Result, Store};
use estiba_os::write_atomic;

/// One image: its manifest, config and names. The image id is the config
/// digest, as docker shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    /// Canonical `repo:tag` names; empty for a dangling image.
    pub names: Vec<String>,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
    /// Sum of the layer blob sizes, as stored.
    pub size: u64,
    /// Layer blobs, bottom to top.
    pub layer_blobs: Vec<Digest>,
    /// Layer diff ids (uncompressed digests), bottom to top.
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub images: Vec<ImageRecord>,
}

impl Store {
    /// Records that a pull verified a signature of the image (its manifest
    /// `manifest`), for the admission policy when it later runs.
    pub fn mark_signed(&self, id: &Digest, manifest: &str) -> Result<()> {
        let dir = self.root.join("signed");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        Ok(write_atomic(&dir.join(id.hex()), manifest.as_bytes())?)
    }

    /// True if a pull verified a signature of the image.
    pub fn is_signed(&self, id: &Digest) -> bool {
        self.root.join("signed").join(id.hex()).is_file()
    }

    fn index_path(&self) -> std::path::PathBuf {
        self.root.join("images.json")
    }

    pub(crate) fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Malformed {
                what: path.display().to_string(),
                source: e,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e).ctx("reading", path),
        }
    }

    /// Read-modify-write of the index under its lock, committed atomically.
    pub(crate) fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        let data = serde_json::to_vec_pretty(&index).map_err(|e| Error::Malformed {
            what: "image index".into(),
            source: e,
        })?;
        write_atomic(&self.index_path(), &data)?;
        Ok(out)
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut images = self.read_index()?.images;
        images.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(images)
    }

    /// Finds an image by name, full id, id prefix or `name@digest`.
    pub fn find_image(&self, wanted: &str) -> Result<ImageRecord> {
        find_in(&self.read_index()?.images, wanted).cloned()
    }

    /// Records an image; its names move away from any image that had them.
    pub fn add_image(&self, record: ImageRecord) -> Result<()> {
        self.update_index(|index| {
            for other in &mut index.images {
                other.names.retain(|n| !record.names.contains(n));
            }
            match index.images.iter_mut().find(|i| i.id == record.id) {
                Some(existing) => {
                    for n in record.names {
                        if !existing.names.contains(&n) {
                            existing.names.push(n);
                        }
                    }
                    existing.manifest = record.manifest;
                }
                None => index.images.push(record),
            }
            Ok(())
        })
    }

    /// Adds `target` as a name of the image `source` names.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let name = target.parse::<Reference>()?;
        if name.digest().is_some() {
            return Err(Error::Invalid(format!(
                "cannot tag with a digest: {target}"
            )));
        }
        let mut record = self.find_image(source)?;
        record.names = vec![name.canonical()];
        let id = record.id.clone();
        self.add_image(record)?;
        self.image_event(estiba_events::Action::Tag, &id, Some(&name.canonical()));
        Ok(())
    }

    /// Removes a name, or a whole image when given its id. Returns what was
    /// untagged and what was deleted, as docker prints them.
    pub fn remove_image(&self, wanted: &str, force: bool) -> Result<Vec<String>> {
        let id = self.find_image(wanted)?.id;
        let out = self.remove_image_entries(wanted, force)?;
        for line in &out {
            if let Some(name) = line.strip_prefix("Untagged: ") {
                self.image_event(estiba_events::Action::Untag, &id, Some(name));
            } else if line.starts_with("Deleted: ") {
                self.image_event(estiba_events::Action::Delete, &id, None);
            }
        }
        Ok(out)
    }

    fn remove_image_entries(&self, wanted: &str, force: bool) -> Result<Vec<String>> {
        self.update_index(|index| {
            let record = find_in(&index.images, wanted)?.clone();
            let mut out = Vec::new();
            let name = canonical_name(wanted).filter(|n| record.names.contains(n));
            let delete = match &name {
                Some(name) => {
                    out.push(format!("Untagged: {name}"));
                    record.names.len() == 1
                }
                None if record.names.len() > 1 && !force => {
                    return Err(Error::ImageHasNames {
                        id: record.id.short().to_string(),
                        names: record.names.join(", "),
                    });
                }
                None => {
                    out.extend(record.names.iter().map(|n| format!("Untagged: {n}")));
                    true
                }
            };
            if delete {
                index.images.retain(|i| i.id != record.id);
                out.push(format!("Deleted: {}", record.id));
            } else if let Some(r) = index.images.iter_mut().find(|i| i.id == record.id) {
                r.names.retain(|n| Some(n) != name.as_ref());
            }
            Ok(out)
        })
    }
}

fn canonical_name(s: &str) -> Option<String> {
    s.parse::<Reference>()
        .ok()
        .filter(|r| r.digest().is_none())
        .map(|r| r.canonical())
}

fn find_in<'a>(images: &'a [ImageRecord], wanted: &str) -> Result<&'a ImageRecord> {
    if let Some(name) = canonical_name(wanted) {
        if let Some(r) = images.iter().find(|i| i.names.contains(&name)) {
            return Ok(r);
        }
    }
    if let Ok(r) = wanted.parse::<Reference>() {
        if let Some(d) = r.digest() {
            if let Some(found) = images.iter().find(|i| i.manifest == *d) {
                return Ok(found);
            }
        }
    }
    let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    let is_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let hits: Vec<_> = images
            .iter()
            .filter(|i| i.id.hex().starts_with(hex))
            .collect();
        match hits.len() {
            1 => return Ok(hits[0]),
            0 => {}
            n => {
                return Err(Error::Ambiguous {
                    reference: wanted.to_string(),
                    count: n,
                })
            }
        }
    }
    Err(Error::NoSuchImage(wanted.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: &str, names: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::of(seed.as_bytes()),
            manifest: Digest::of(format!("m{seed}").as_bytes()),
            names: names.iter().map(|s| s.to_string()).collect(),
            created: None,
            size: 0,
            layer_blobs: vec![],
            diff_ids: vec![],
        }
    }

    #[test]
    fn names_move_and_removal_follows_docker() {
        let dir = tempfile::tempdir().unwrap();
        // The journal sits beside the store: keep both in the temp dir.
        let store = Store::open(&dir.path().join("storage"), false).unwrap();
        store.add_image(record("a", &["busybox:latest"])).unwrap();
        store.add_image(record("b", &["busybox:latest"])).unwrap();
        let a = store.find_image(Digest::of(b"a").short()).unwrap();
        assert!(a.names.is_empty(), "the name moved to the newer image");
        assert_eq!(store.find_image("busybox").unwrap().id, Digest::of(b"b"));

        store.tag("busybox", "other:1").unwrap();
        assert!(matches!(
            store.remove_image(Digest::of(b"b").hex(), false),
            Err(Error::ImageHasNames { .. })
        ));
        let out = store.remove_image("other:1", false).unwrap();
        assert_eq!(out, vec!["Untagged: other:1"]);
        let out = store.remove_image("busybox", false).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(
            store.find_image("busybox"),
            Err(Error::NoSuchImage(_))
        ));
        // Each change was journaled, by id and name.
        let journal = estiba_events::Journal::new(dir.path());
        let seen: Vec<(String, Option<String>)> = journal
            .read_all()
            .into_iter()
            .map(|e| (e.action.name(), e.attribute("name").map(str::to_string)))
            .collect();
        let b = Some("busybox:latest".to_string());
        assert_eq!(
            seen,
            [
                ("tag".to_string(), Some("other:1".to_string())),
                ("untag".to_string(), Some("other:1".to_string())),
                ("untag".to_string(), b),
                ("delete".to_string(), None),
            ]
        );
    }

    /// An imported rootfs becomes a one-layer image whose layer is
    /// unpacked once and whose import is journaled.
    #[test]
    fn an_import_is_an_image_with_one_unpacked_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("storage"), false).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        // Our own ids: the unpacker keeps owners, which only root may change.
        h.set_uid(rustix::process::getuid().as_raw().into());
        h.set_gid(rustix::process::getgid().as_raw().into());
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, "etc/motd", &b"hello\n"[..])
            .unwrap();
        let path = dir.path().join("rootfs.tar");
        std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
        let loaded = store.import(&path, Some("tiny:1")).unwrap();
        let image = store.find_image("tiny:1").unwrap();
        assert_eq!(image.id, loaded.id);
        let layers = store.layer_dirs(&image).unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            std::fs::read(layers[0].join("etc/motd")).unwrap(),
            b"hello\n"
        );
        let events = estiba_events::Journal::new(dir.path()).read_all();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action.name(), "import");
        assert_eq!(events[0].attribute("name"), Some("tiny:1"));
    }
}
