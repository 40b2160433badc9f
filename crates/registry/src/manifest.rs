//! Reading pushed manifests: which media types are accepted, what content
//! they reference, and their subject. The bytes themselves are stored as
//! pushed; this is only a validating view of them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Code, Error, Result};
use crate::storage::Descriptor;

pub const MANIFEST_OCI: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_OCI: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_DOCKER: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const LIST_DOCKER: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest accepted (the issue asks for at least 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs to know of a manifest.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub media_type: String,
    /// Blobs it references that must be in the repository: the config and
    /// the distributable layers.
    pub blobs: Vec<Digest>,
    /// Manifests an index references.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// The config's media type, the artifact type of an image without one.
    pub config_media_type: Option<String>,
}

fn invalid(why: impl Into<String>) -> Error {
    Error::api(Code::ManifestInvalid, why)
}

/// Layers the registry is not expected to hold: pushed elsewhere, by URL.
fn non_distributable(media_type: Option<&str>, urls: &[String]) -> bool {
    let t = media_type.unwrap_or("");
    t.contains(".nondistributable.")
        || t.contains(".foreign.")
        || (!urls.is_empty() && t.contains("nondistributable"))
}

fn descriptor_digest(d: &RawDescriptor, what: &str) -> Result<Digest> {
    if d.size < 0 {
        return Err(invalid(format!("{what} has a negative size")));
    }
    d.digest
        .parse()
        .map_err(|_| invalid(format!("{what} has an invalid digest {:?}", d.digest)))
}

impl ParsedManifest {
    /// Parses and checks a manifest. `content_type` is the request's; when
    /// the manifest names its own media type, the two must agree.
    pub fn parse(data: &[u8], content_type: Option<&str>) -> Result<ParsedManifest> {
        let raw: RawManifest = serde_json::from_slice(data)
            .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(invalid("only schemaVersion 2 manifests are accepted"));
        }
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
            .filter(|c| !c.is_empty());
        let media_type = match (&raw.media_type, &content_type) {
            (Some(m), Some(c)) if m != c && c != "application/json" => {
                return Err(invalid(format!(
                    "the manifest says its media type is {m}, the request says {c}"
                )))
            }
            (Some(m), _) => m.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => return Err(invalid("the manifest has no media type")),
        };
        let is_index = match media_type.as_str() {
            MANIFEST_OCI | MANIFEST_DOCKER => false,
            INDEX_OCI | LIST_DOCKER => true,
            other => {
                return Err(invalid(format!(
                    "media type {other:?} is not a manifest or index"
                )))
            }
        };
        let mut parsed = ParsedManifest {
            media_type,
            blobs: Vec::new(),
            manifests: Vec::new(),
            subject: None,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
            config_media_type: None,
        };
        if is_index {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(invalid("an index has no config or layers"));
            }
            for (i, m) in raw.manifests.unwrap_or_default().iter().enumerate() {
                parsed
                    .manifests
                    .push(descriptor_digest(m, &format!("manifests[{i}]"))?);
            }
        } else {
            let config = raw
                .config
                .ok_or_else(|| invalid("the manifest has no config"))?;
            parsed.blobs.push(descriptor_digest(&config, "config")?);
            parsed.config_media_type = config.media_type;
            let layers = raw
                .layers
                .ok_or_else(|| invalid("the manifest has no layers"))?;
            for (i, l) in layers.iter().enumerate() {
                let digest = descriptor_digest(l, &format!("layers[{i}]"))?;
                if !non_distributable(l.media_type.as_deref(), &l.urls) {
                    parsed.blobs.push(digest);
                }
            }
            parsed.blobs.dedup();
        }
        if let Some(subject) = raw.subject {
            parsed.subject = Some(descriptor_digest(&subject, "subject")?);
        }
        Ok(parsed)
    }

    /// The descriptor the referrers API lists for this manifest.
    pub fn descriptor(&self, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: digest.clone(),
            size,
            artifact_type: self
                .artifact_type
                .clone()
                .or_else(|| self.config_media_type.clone()),
            annotations: self.annotations.clone(),
        }
    }

    pub fn is_index(&self) -> bool {
        self.media_type == INDEX_OCI || self.media_type == LIST_DOCKER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn accepts_images_indexes_and_artifacts() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{EMPTY}","size":2}},"layers":[],"subject":{{"mediaType":"{MANIFEST_OCI}","digest":"{EMPTY}","size":2}},"newUnspecifiedField":null}}"#
        );
        let m = ParsedManifest::parse(image.as_bytes(), Some(MANIFEST_OCI)).unwrap();
        assert_eq!(m.blobs.len(), 1);
        assert!(m.subject.is_some());
        assert_eq!(
            m.descriptor(&Digest::sha256(b"x"), 1)
                .artifact_type
                .as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        // No mediaType field: the request's Content-Type says what it is.
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{EMPTY}","size":2}},"layers":[]}}"#
        );
        assert_eq!(
            ParsedManifest::parse(bare.as_bytes(), Some(MANIFEST_OCI))
                .unwrap()
                .media_type,
            MANIFEST_OCI
        );
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX_OCI}","manifests":[]}}"#);
        assert!(ParsedManifest::parse(index.as_bytes(), None)
            .unwrap()
            .is_index());
    }

    #[test]
    fn refuses_malformed_manifests() {
        let cases = [
            "",
            "{",
            "[]",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2}"#,
            r#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz","size":1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1},"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"../../x","size":1}]}"#,
        ];
        for case in cases {
            let err = ParsedManifest::parse(case.as_bytes(), None).unwrap_err();
            assert_eq!(err.code(), Some(Code::ManifestInvalid), "{case}");
        }
        let mismatch = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX_OCI}","manifests":[]}}"#);
        assert!(ParsedManifest::parse(mismatch.as_bytes(), Some(MANIFEST_OCI)).is_err());
    }
}
