//! Scan on push: a repository with `scan_on_push` audits each image
//! manifest pushed to it (its config and layers, as `estiba audit image`
//! does) before the manifest is stored. Findings at a `block_on` severity
//! refuse the push; otherwise they are stored beside the image as a
//! referrer artifact (`FINDINGS_ARTIFACT`), which the referrers API lists
//! and any OCI client can pull.

use std::io::Read;
use std::time::SystemTime;

use estiba_audit::{Finding, Severity, Target, TargetKind};
use serde_json::{json, Value};

use crate::digest::{Algorithm, Digest};
use crate::error::{Code, Error, Result};
use crate::manifest::{ParsedManifest, MANIFEST_OCI};
use crate::storage::{Descriptor, Storage};

/// The artifact type of a scan's findings.
pub const FINDINGS_ARTIFACT: &str = "application/vnd.estiba.audit.findings.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// Image configs the scan reads; anything else (an artifact, a signature)
/// is not an image and is not scanned.
const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The findings for an image manifest; None for what is not an image.
pub fn scan(s: &dyn Storage, name: &str, manifest: &[u8]) -> Result<Option<Vec<Finding>>> {
    let m: Value = serde_json::from_slice(manifest).unwrap_or(Value::Null);
    let config_type = m.pointer("/config/mediaType").and_then(Value::as_str);
    if !config_type.is_some_and(|t| IMAGE_CONFIGS.contains(&t)) || m.get("artifactType").is_some() {
        return Ok(None);
    }
    let digest_at = |v: &Value| -> Result<Digest> {
        let d = v.get("digest").and_then(Value::as_str).unwrap_or_default();
        Ok(d.parse()?)
    };
    let config_digest = digest_at(&m["config"])?;
    let config: Value = serde_json::from_slice(&read_all(s, &config_digest)?)
        .map_err(|e| Error::api(Code::ManifestInvalid, format!("the image config: {e}")))?;
    let mut layers: Vec<Box<dyn Read>> = Vec::new();
    for layer in m["layers"].as_array().into_iter().flatten() {
        let digest = digest_at(layer)?;
        let Some(blob) = s.open_blob(&digest)? else {
            return Err(Error::api(
                Code::ManifestBlobUnknown,
                format!("blob {digest} is missing"),
            ));
        };
        let (_, reader) = estiba_oci::decompress(blob.reader)
            .map_err(|e| Error::api(Code::ManifestInvalid, format!("layer {digest}: {e}")))?;
        layers.push(reader);
    }
    let input = estiba_audit::image::Input {
        name: name.to_string(),
        config,
        layers,
        now: SystemTime::now(),
    };
    let findings = estiba_audit::image::audit(input)
        .map_err(|e| Error::api(Code::ManifestInvalid, format!("scanning on push: {e}")))?;
    Ok(Some(findings))
}

/// Why the findings refuse the push, if a `block_on` severity is among them.
pub fn refusal(findings: &[Finding], block_on: &[String]) -> Option<String> {
    let blocking: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            block_on
                .iter()
                .any(|b| Severity::parse(b) == Some(f.rule.severity))
        })
        .collect();
    if blocking.is_empty() {
        return None;
    }
    let what: Vec<String> = blocking
        .iter()
        .map(|f| format!("{} ({}): {}", f.rule.id, f.rule.severity.name(), f.message))
        .collect();
    Some(format!(
        "push refused by the repository's scan: {}",
        what.join("; ")
    ))
}

fn read_all(s: &dyn Storage, digest: &Digest) -> Result<Vec<u8>> {
    let Some(mut blob) = s.open_blob(digest)? else {
        return Err(Error::api(
            Code::ManifestBlobUnknown,
            format!("blob {digest} is missing"),
        ));
    };
    let mut data = Vec::new();
    blob.reader
        .read_to_end(&mut data)
        .map_err(|e| Error::api(Code::ManifestInvalid, format!("reading {digest}: {e}")))?;
    Ok(data)
}

/// Stores the findings as an artifact whose subject is the image: the
/// findings (the audit's JSON report) as its one layer, OCI's empty
/// config, and a referrer entry on the image.
pub fn store_findings(
    s: &dyn Storage,
    repo: &str,
    name: &str,
    subject: &Descriptor,
    findings: Vec<Finding>,
) -> Result<Digest> {
    let mut report = estiba_audit::report::Report::default();
    report.add(Target::new(TargetKind::Image, name), findings);
    let body = serde_json::to_vec_pretty(&report.json()).unwrap_or_default();
    let body_digest = put(s, repo, &body)?;
    let empty = put(s, repo, b"{}")?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "artifactType": FINDINGS_ARTIFACT,
        "config": {"mediaType": EMPTY_CONFIG, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": FINDINGS_ARTIFACT, "digest": body_digest.to_string(), "size": body.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
        "annotations": {
            "org.opencontainers.image.created":
                humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "dev.estiba.audit.score": report.score().to_string(),
        },
    });
    let data = serde_json::to_vec(&manifest).unwrap_or_default();
    let digest = Digest::compute(Algorithm::Sha256, &data);
    let parsed = ParsedManifest::parse(&data, Some(MANIFEST_OCI))?;
    s.put_blob(&digest, &data)?;
    let link = crate::storage::ManifestLink {
        media_type: MANIFEST_OCI.into(),
        size: data.len() as u64,
        pushed: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    };
    s.put_manifest_link(repo, &digest, &link)?;
    s.add_referrer(
        repo,
        &subject.digest,
        &parsed.descriptor(&digest, data.len() as u64),
    )?;
    Ok(digest)
}

/// Stores small content in the repository; its digest.
fn put(s: &dyn Storage, repo: &str, data: &[u8]) -> Result<Digest> {
    let digest = Digest::compute(Algorithm::Sha256, data);
    s.put_blob(&digest, data)?;
    s.link_blob(repo, &digest)?;
    Ok(digest)
}
