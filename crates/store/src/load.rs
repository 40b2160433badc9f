//! Loading images from docker-archive, oci-archive and OCI layout, and
//! importing rootfs tarballs.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use estiba_oci::{media, Compression, Digest, DigestReader, Reference};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;
use serde_json::json;

use crate::archive::Source;
use crate::blobs::TempFile;
use crate::error::IoContext;
use crate::{Error, ImageRecord, Result, Store};

/// An image that a load or import made visible.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub names: Vec<String>,
}

/// One entry of docker-archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn parse_json<T: for<'de> Deserialize<'de>>(what: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::Malformed {
        what: what.to_string(),
        source: e,
    })
}

/// The OCI name of this machine's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

impl Store {
    /// Loads every image of an archive or layout. `progress` receives one
    /// line per step.
    pub fn load(&self, path: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<Loaded>> {
        let _lock = self.lock_shared()?;
        let mut _decompressed = None;
        let source = if path.is_dir() {
            Source::Dir(path.to_path_buf())
        } else {
            let mut file = File::open(path).ctx("opening", path)?;
            let mut head = [0u8; 4];
            let n = file.read(&mut head).ctx("reading", path)?;
            if Compression::detect(&head[..n]) == Compression::None {
                Source::tar(path)?
            } else {
                let (tmp, mut out) = TempFile::new(self, ".tar")?;
                let (_, mut reader) =
                    estiba_oci::decompress(File::open(path).ctx("opening", path)?)
                        .ctx("decompressing", path)?;
                io::copy(&mut reader, &mut out).ctx("decompressing", path)?;
                let source = Source::tar(tmp.path())?;
                _decompressed = Some(tmp);
                source
            }
        };
        let loaded = if source.exists("manifest.json") {
            self.load_docker(&source, progress)?
        } else if source.exists("index.json") {
            self.load_oci(&source, progress)?
        } else {
            return Err(Error::UnknownArchive {
                path: path.to_path_buf(),
                why: "it has neither manifest.json nor index.json".into(),
            });
        };
        for image in &loaded {
            self.image_event(
                estiba_events::Action::Load,
                &image.id,
                image.names.first().map(String::as_str),
            );
        }
        Ok(loaded)
    }

    fn load_docker(&self, source: &Source, progress: &mut dyn FnMut(&str)) -> Result<Vec<Loaded>> {
        let entries: Vec<DockerEntry> =
            parse_json("manifest.json", &source.read_small("manifest.json")?)?;
        let mut loaded = Vec::new();
        for entry in entries {
            let config_bytes = source.read_small(&entry.config)?;
            let config_digest = self.put_blob_bytes(&config_bytes)?;
            let config: ImageConfiguration = parse_json(&entry.config, &config_bytes)?;
            let diff_ids = diff_ids(&config)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(Error::Invalid(format!(
                    "image config {} lists {} layers but the archive has {}",
                    entry.config,
                    diff_ids.len(),
                    entry.layers.len()
                )));
            }
            let mut layers = Vec::new();
            for (i, (layer, diff_id)) in entry.layers.iter().zip(&diff_ids).enumerate() {
                progress(&format!(
                    "Loading layer {}/{} {}",
                    i + 1,
                    diff_ids.len(),
                    diff_id.short()
                ));
                let (digest, size) = self.put_blob(&mut source.open(layer)?, None)?;
                let compression = self.blob_compression(&digest)?;
                if compression == Compression::None && digest != *diff_id {
                    return Err(Error::DiffIdMismatch {
                        image: entry.config.clone(),
                        index: i,
                        expected: diff_id.clone(),
                        actual: digest,
                    });
                }
                layers.push(json!({
                    "mediaType": compression.layer_media_type(),
                    "digest": digest.to_string(),
                    "size": size,
                }));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "config": {
                    "mediaType": media::OCI_CONFIG,
                    "digest": config_digest.to_string(),
                    "size": config_bytes.len(),
                },
                "layers": layers,
            });
            let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Malformed {
                what: "manifest".into(),
                source: e,
            })?;
            let manifest_digest = self.put_blob_bytes(&manifest_bytes)?;
            let names = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| t.parse::<Reference>().map(|r| r.canonical()))
                .collect::<Result<Vec<_>, _>>()?;
            loaded.push(self.commit_image(manifest_digest, names)?);
        }
        Ok(loaded)
    }

    fn load_oci(&self, source: &Source, progress: &mut dyn FnMut(&str)) -> Result<Vec<Loaded>> {
        let index: ImageIndex = parse_json("index.json", &source.read_small("index.json")?)?;
        let mut loaded = Vec::new();
        self.load_index(source, &index, 0, &mut loaded, progress)?;
        if loaded.is_empty() {
            return Err(Error::NoPlatform(format!("linux/{}", host_arch())));
        }
        Ok(loaded)
    }

    fn load_index(
        &self,
        source: &Source,
        index: &ImageIndex,
        depth: u32,
        loaded: &mut Vec<Loaded>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        if depth > 4 {
            return Err(Error::Invalid("image indexes nested deeper than 4".into()));
        }
        for desc in index.manifests() {
            let digest: Digest = desc.digest().to_string().parse()?;
            let platform_ok = desc.platform().as_ref().is_none_or(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
            });
            if !platform_ok {
                continue;
            }
            let bytes = self.copy_blob(source, &digest)?;
            let media_type = desc.media_type().to_string();
            if media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST {
                let nested: ImageIndex = parse_json(&digest.to_string(), &bytes)?;
                self.load_index(source, &nested, depth + 1, loaded, progress)?;
                continue;
            }
            let manifest: ImageManifest = parse_json(&digest.to_string(), &bytes)?;
            let config: Digest = manifest.config().digest().to_string().parse()?;
            self.copy_blob(source, &config)?;
            let total = manifest.layers().len();
            for (i, layer) in manifest.layers().iter().enumerate() {
                let layer: Digest = layer.digest().to_string().parse()?;
                progress(&format!(
                    "Loading layer {}/{total} {}",
                    i + 1,
                    layer.short()
                ));
                if !self.has_blob(&layer) {
                    self.put_blob(&mut source.open(&Source::blob_name(&layer))?, Some(&layer))?;
                }
            }
            let annotations = desc.annotations().clone().unwrap_or_default();
            let name = annotations.get(CONTAINERD_NAME).or_else(|| {
                annotations
                    .get(REF_NAME)
                    .filter(|n| n.contains(':') || n.contains('/'))
            });
            let names = match name {
                Some(n) => vec![n.parse::<Reference>()?.canonical()],
                None => vec![],
            };
            loaded.push(self.commit_image(digest, names)?);
        }
        Ok(())
    }

    /// Copies a small blob from the archive, verifying its digest, and returns it.
    fn copy_blob(&self, source: &Source, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = source.read_small(&Source::blob_name(digest))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(estiba_oci::Error::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            }
            .into());
        }
        self.put_blob_bytes(&bytes)?;
        Ok(bytes)
    }

    fn blob_compression(&self, digest: &Digest) -> Result<Compression> {
        let mut head = [0u8; 4];
        let mut file = self.open_blob(digest)?;
        let n = file
            .read(&mut head)
            .ctx("reading", self.blob_path(digest))?;
        Ok(Compression::detect(&head[..n]))
    }

    /// Unpacks the layers of a manifest already in the store, then makes the
    /// image visible under `names`. This is the commit point of a load.
    pub fn commit_image(&self, manifest_digest: Digest, names: Vec<String>) -> Result<Loaded> {
        let manifest: ImageManifest = parse_json("manifest", &self.read_blob(&manifest_digest)?)?;
        let id: Digest = manifest.config().digest().to_string().parse()?;
        let config: ImageConfiguration = parse_json("image config", &self.read_blob(&id)?)?;
        let diff_ids = diff_ids(&config)?;
        let layer_blobs = manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string().parse::<Digest>())
            .collect::<Result<Vec<_>, _>>()?;
        if layer_blobs.len() != diff_ids.len() {
            return Err(Error::Invalid(format!(
                "manifest {manifest_digest} has {} layers but its config lists {}",
                layer_blobs.len(),
                diff_ids.len()
            )));
        }
        let mut size = 0;
        for (i, (blob, diff_id)) in layer_blobs.iter().zip(&diff_ids).enumerate() {
            size += self.blob_size(blob)?;
            self.ensure_layer(blob, diff_id).map_err(|e| match e {
                Error::DiffIdMismatch {
                    expected, actual, ..
                } => Error::DiffIdMismatch {
                    image: manifest_digest.to_string(),
                    index: i,
                    expected,
                    actual,
                },
                other => other,
            })?;
        }
        let record = ImageRecord {
            id: id.clone(),
            manifest: manifest_digest,
            names: names.clone(),
            created: config.created().clone(),
            size,
            layer_blobs,
            diff_ids,
        };
        self.add_image(record)?;
        Ok(Loaded { id, names })
    }

    /// Imports a rootfs tarball (plain, gzip or zstd) as a one-layer image,
    /// like `docker import`.
    pub fn import(&self, tarball: &Path, name: Option<&str>) -> Result<Loaded> {
        let _lock = self.lock_shared()?;
        let names = match name {
            Some(n) => vec![n.parse::<Reference>()?.canonical()],
            None => vec![],
        };
        let mut file = File::open(tarball).ctx("opening", tarball)?;
        let (blob, _) = self.put_blob(&mut file, None)?;
        let diff_id = match self.blob_compression(&blob)? {
            Compression::None => blob.clone(),
            _ => {
                let (_, reader) =
                    estiba_oci::decompress(self.open_blob(&blob)?).ctx("decompressing", tarball)?;
                let mut hashing = DigestReader::new(reader);
                io::copy(&mut hashing, &mut io::sink()).ctx("decompressing", tarball)?;
                hashing.digest()
            }
        };
        let created = now_rfc3339();
        let config = json!({
            "created": created,
            "architecture": host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [{ "created": created, "comment": "Imported from tarball" }],
        });
        let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Malformed {
            what: "config".into(),
            source: e,
        })?;
        let config_digest = self.put_blob_bytes(&config_bytes)?;
        let compression = self.blob_compression(&blob)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": { "mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len() },
            "layers": [{ "mediaType": compression.layer_media_type(), "digest": blob.to_string(), "size": self.blob_size(&blob)? }],
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Malformed {
            what: "manifest".into(),
            source: e,
        })?;
        let manifest_digest = self.put_blob_bytes(&manifest_bytes)?;
        let loaded = self.commit_image(manifest_digest, names)?;
        self.image_event(
            estiba_events::Action::Import,
            &loaded.id,
            loaded.names.first().map(String::as_str),
        );
        Ok(loaded)
    }

    /// The parsed config of an image.
    pub fn image_config(&self, image: &ImageRecord) -> Result<ImageConfiguration> {
        parse_json("image config", &self.read_blob(&image.id)?)
    }
}

fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>().map_err(Error::from))
        .collect()
}
