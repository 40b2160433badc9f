//! `estiba sign` and `estiba verify`: cosign simple-signing signatures kept
//! as OCI artifacts whose `subject` is the signed manifest. A registry with
//! the referrers API lists them; for one without it, the client keeps the
//! spec's fallback tag `sha256-<hex>`, an index of the referrers.

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::pull::{fetch_manifest, ACCEPT_ALL};
use super::{remote_error, to_error, Client, RemoteRef};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{INDEX_OCI, MANIFEST_OCI};
use crate::trust::{
    self, PrivateKey, PublicKey, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT, SIMPLE_SIGNING,
};

const EMPTY_JSON: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Uploads small content unless the registry has it.
async fn put_blob(client: &Client, repo: &str, scope: &str, data: &[u8]) -> Result<Digest> {
    let digest = Digest::sha256(data);
    let head = client
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            scope,
            |r| r,
        )
        .await?;
    if head.status().is_success() {
        return Ok(digest);
    }
    let path = format!("/v2/{repo}/blobs/uploads/");
    let r = client
        .send(Method::POST, &path, scope, |r| {
            r.header(CONTENT_LENGTH, "0")
        })
        .await?;
    if !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Http("the registry gave no upload location".into()))?
        .to_string();
    let mut url = reqwest::Url::parse(&client.url(&location))
        .map_err(|e| Error::Http(format!("upload location {location:?}: {e}")))?;
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let body = data.to_vec();
    let r = client
        .send(Method::PUT, url.as_str(), scope, |r| {
            r.header(CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await?;
    if !r.status().is_success() {
        return Err(remote_error(url.as_str(), r).await);
    }
    Ok(digest)
}

/// The fallback tag for a subject: `sha256-<hex>`.
fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().name(), subject.hex())
}

/// Signs the manifest `image` names; returns the signature's digest.
pub async fn sign(client: &Client, image: &RemoteRef, key: &PrivateKey) -> Result<String> {
    let repo = &image.repository;
    let scope = format!("repository:{repo}:pull,push");
    let target = fetch_manifest(client, repo, image.reference(), &scope).await?;
    let payload = trust::payload(&image.docker_reference(), &target.digest);
    let signature = key.sign(&payload)?;
    let payload_digest = put_blob(client, repo, &scope, &payload).await?;
    let config_digest = put_blob(client, repo, &scope, EMPTY_JSON).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "artifactType": SIGNATURE_ARTIFACT,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config_digest, "size": EMPTY_JSON.len()},
        "layers": [{
            "mediaType": SIMPLE_SIGNING,
            "digest": payload_digest,
            "size": payload.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }],
        "subject": {"mediaType": target.media_type, "digest": target.digest, "size": target.data.len()},
        "annotations": {
            "org.opencontainers.image.created":
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        },
    });
    let data = serde_json::to_vec(&manifest).map_err(|e| Error::Signature(e.to_string()))?;
    let digest = Digest::sha256(&data);
    let path = format!("/v2/{repo}/manifests/{digest}");
    let body = data.clone();
    let r = client
        .send(Method::PUT, &path, &scope, |r| {
            r.header(CONTENT_TYPE, MANIFEST_OCI).body(body.clone())
        })
        .await?;
    if !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    // No OCI-Subject: the registry does not index referrers; keep the
    // fallback tag ourselves.
    if r.headers().get("OCI-Subject").is_none() {
        add_to_fallback(client, repo, &scope, &target.digest, &digest, data.len()).await?;
    }
    Ok(digest.to_string())
}

async fn add_to_fallback(
    client: &Client,
    repo: &str,
    scope: &str,
    subject: &Digest,
    signature: &Digest,
    size: usize,
) -> Result<()> {
    let tag = fallback_tag(subject);
    let mut index = match fetch_manifest(client, repo, &tag, scope).await {
        Ok(f) => serde_json::from_slice::<serde_json::Value>(&f.data).unwrap_or_else(
            |_| serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_OCI, "manifests": []}),
        ),
        Err(_) => serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_OCI, "manifests": []}),
    };
    if let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) {
        list.push(serde_json::json!({
            "mediaType": MANIFEST_OCI,
            "artifactType": SIGNATURE_ARTIFACT,
            "digest": signature,
            "size": size,
        }));
    }
    let data = serde_json::to_vec(&index).map_err(|e| Error::Signature(e.to_string()))?;
    let path = format!("/v2/{repo}/manifests/{tag}");
    let r = client
        .send(Method::PUT, &path, scope, |r| {
            r.header(CONTENT_TYPE, INDEX_OCI).body(data.clone())
        })
        .await?;
    if !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    Ok(())
}

/// A signature that verified.
#[derive(Debug)]
pub struct Verified {
    pub signature: String,
    pub payload: String,
}

/// The signature artifacts attached to `subject`.
async fn signature_manifests(
    client: &Client,
    repo: &str,
    scope: &str,
    subject: &Digest,
) -> Result<Vec<String>> {
    let mut url = reqwest::Url::parse(&client.url(&format!("/v2/{repo}/referrers/{subject}")))
        .map_err(|e| Error::Http(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("artifactType", SIGNATURE_ARTIFACT);
    let path = url.to_string();
    let r = client
        .send(Method::GET, &path, scope, |r| r.header(ACCEPT, INDEX_OCI))
        .await?;
    let index: serde_json::Value = if r.status() == StatusCode::OK {
        r.json().await.map_err(to_error)?
    } else {
        match fetch_manifest(client, repo, &fallback_tag(subject), scope).await {
            Ok(f) => serde_json::from_slice(&f.data).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    };
    let list = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(list
        .iter()
        .filter(|d| d.get("artifactType").and_then(|a| a.as_str()) == Some(SIGNATURE_ARTIFACT))
        .filter_map(|d| d.get("digest")?.as_str().map(str::to_string))
        .collect())
}

async fn fetch_blob(client: &Client, repo: &str, scope: &str, digest: &Digest) -> Result<Vec<u8>> {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = client.send(Method::GET, &path, scope, |r| r).await?;
    if !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    let data = r.bytes().await.map_err(to_error)?;
    if data.len() > 1 << 20 || Digest::compute(digest.algorithm(), &data) != *digest {
        return Err(Error::Signature(format!(
            "payload {digest} does not match its digest"
        )));
    }
    Ok(data.to_vec())
}

/// Checks that `digest` in `image`'s repository has a valid signature by
/// one of `keys`; the error says why not.
pub(crate) async fn verify_digest(
    client: &Client,
    image: &RemoteRef,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<Vec<Verified>> {
    let repo = &image.repository;
    let scope = format!("repository:{repo}:pull");
    let mut verified = Vec::new();
    let candidates = signature_manifests(client, repo, &scope, digest).await?;
    for sig in &candidates {
        let Ok(manifest) = fetch_manifest(client, repo, sig, &scope).await else {
            continue;
        };
        for (payload_digest, signature) in trust::signature_layers(&manifest.data) {
            let Ok(payload_digest) = payload_digest.to_string().parse::<Digest>() else {
                continue;
            };
            let Ok(payload) = fetch_blob(client, repo, &scope, &payload_digest).await else {
                continue;
            };
            if trust::check_signature(&payload, &signature, digest, keys) {
                verified.push(Verified {
                    signature: sig.clone(),
                    payload: String::from_utf8_lossy(&payload).into_owned(),
                });
            }
        }
    }
    if verified.is_empty() {
        return Err(Error::Signature(if candidates.is_empty() {
            format!("{image} ({digest}) is not signed")
        } else {
            format!(
                "none of the {} signatures of {image} ({digest}) verifies with the given key",
                candidates.len()
            )
        }));
    }
    Ok(verified)
}

/// `estiba verify`: resolves `image` and checks its signatures.
pub async fn verify(
    client: &Client,
    image: &RemoteRef,
    keys: &[PublicKey],
) -> Result<(Digest, Vec<Verified>)> {
    let scope = format!("repository:{}:pull", image.repository);
    let r = client
        .send(
            Method::HEAD,
            &format!("/v2/{}/manifests/{}", image.repository, image.reference()),
            &scope,
            |r| r.header(ACCEPT, ACCEPT_ALL),
        )
        .await?;
    let digest = match r
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
    {
        Some(d) if r.status().is_success() && image.digest.is_none() => d,
        _ => {
            fetch_manifest(client, &image.repository, image.reference(), &scope)
                .await?
                .digest
        }
    };
    let verified = verify_digest(client, image, &digest, keys).await?;
    Ok((digest, verified))
}
