//! `estiba pull`: the manifest (the host's platform from an index), its
//! signature when asked to verify, then the blobs in parallel into the
//! store's ingest directory, resuming a broken download with a Range
//! request. Digests are verified before anything becomes visible, and the
//! image is committed to the store last.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, RANGE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{remote_error, to_error, Client, ProgressSink, RemoteRef};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{INDEX_OCI, LIST_DOCKER, MANIFEST_DOCKER, MANIFEST_OCI};
use crate::trust::PublicKey;

const ATTEMPTS: usize = 4;

pub(crate) const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Default)]
pub struct PullOptions {
    /// Refuse the image unless a signature by one of these keys is attached.
    pub verify_keys: Vec<PublicKey>,
    /// Mark a verified image signed in the store, for the admission policy
    /// at run: only when `verify_keys` are the policy's trusted keys.
    pub mark_signed: bool,
    /// Pull an image whose signature does not verify all the same, saying
    /// why in [`Pulled::unverified`] (a policy that only warns).
    pub accept_unverified: bool,
}

#[derive(Debug)]
pub struct Pulled {
    /// The manifest digest the reference resolved to (an index's, if it is one).
    pub digest: String,
    pub name: Option<String>,
    pub id: String,
    /// Why the signature did not verify, when that was accepted.
    pub unverified: Option<String>,
}

/// A manifest as fetched: bytes, media type and verified digest.
pub(crate) struct Fetched {
    pub data: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// GETs a manifest and checks its digest against the reference (when it is
/// a digest) and the registry's `Docker-Content-Digest`.
pub(crate) async fn fetch_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    scope: &str,
) -> Result<Fetched> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let r = client
        .send(Method::GET, &path, scope, |r| r.header(ACCEPT, ACCEPT_ALL))
        .await?;
    if !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
    };
    let content_type = header("content-type");
    let echoed = header("docker-content-digest");
    let data = r.bytes().await.map_err(to_error)?.to_vec();
    if data.len() > crate::manifest::MAX_MANIFEST_BYTES {
        return Err(Error::Http(format!(
            "{path}: the manifest is larger than 4 MiB"
        )));
    }
    let wanted: Option<Digest> = if reference.contains(':') {
        Some(reference.parse()?)
    } else {
        echoed.as_deref().and_then(|e| e.parse().ok())
    };
    let digest = match wanted {
        Some(w) => {
            let actual = Digest::compute(w.algorithm(), &data);
            if actual != w {
                return Err(Error::Http(format!(
                    "{path}: the registry sent content with digest {actual}, not {w}"
                )));
            }
            w
        }
        None => Digest::sha256(&data),
    };
    let media_type = serde_json::from_slice::<serde_json::Value>(&data)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .or(content_type)
        .unwrap_or_else(|| MANIFEST_OCI.to_string());
    Ok(Fetched {
        data,
        media_type,
        digest,
    })
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct ImageManifest {
    config: Layer,
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    digest: String,
    size: u64,
}

pub async fn pull(
    client: &Client,
    store: &estiba_store::Store,
    src: &RemoteRef,
    opts: &PullOptions,
    progress: Arc<dyn ProgressSink>,
) -> Result<Pulled> {
    // As a load does: prune waits, so it never removes a download or a blob
    // this pull is about to reference.
    let _lock = store.lock_shared()?;
    let repo = &src.repository;
    let scope = format!("repository:{repo}:pull");
    let top = fetch_manifest(client, repo, src.reference(), &scope).await?;
    let top_digest = top.digest.clone();
    let mut unverified = None;
    if !opts.verify_keys.is_empty() {
        match super::sign::verify_digest(client, src, &top.digest, &opts.verify_keys).await {
            Err(Error::Signature(why)) if opts.accept_unverified => unverified = Some(why),
            other => {
                other?;
            }
        }
    }
    let image = if top.media_type == INDEX_OCI || top.media_type == LIST_DOCKER {
        let index: Index = serde_json::from_slice(&top.data)
            .map_err(|e| Error::Http(format!("the index of {src} is malformed: {e}")))?;
        let arch = estiba_store::host_arch();
        let entry = index
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| Error::Http(format!("{src} has no image for linux/{arch}")))?;
        fetch_manifest(client, repo, &entry.digest, &scope).await?
    } else {
        top
    };
    if image.media_type != MANIFEST_OCI && image.media_type != MANIFEST_DOCKER {
        return Err(Error::Http(format!(
            "{src} is a {}, not an image",
            image.media_type
        )));
    }
    let manifest: ImageManifest = serde_json::from_slice(&image.data)
        .map_err(|e| Error::Http(format!("the manifest of {src} is malformed: {e}")))?;
    let ingest = store.root().join("ingest");
    let wanted: Vec<&Layer> = std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .collect();
    let results: Vec<Result<()>> = futures_util::stream::iter(wanted)
        .map(|l| {
            fetch_blob(
                client,
                store,
                repo,
                &scope,
                l,
                &ingest,
                Arc::clone(&progress),
            )
        })
        .buffer_unordered(client.parallel)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let local = |d: &Digest| -> Result<estiba_oci::Digest> {
        d.to_string()
            .parse()
            .map_err(|_| Error::Http(format!("{d}: the local store keeps sha256 content only")))
    };
    let manifest_digest = local(&image.digest)?;
    let name = src
        .tag
        .as_ref()
        .filter(|_| src.digest.is_none())
        .map(|t| format!("{}/{}:{t}", src.registry, src.repository));
    let store2 = store.clone();
    let (data, names) = (image.data, name.clone().into_iter().collect::<Vec<_>>());
    let loaded = tokio::task::spawn_blocking(move || {
        let d = store2.put_blob_bytes(&data)?;
        if d != manifest_digest {
            return Err(Error::Http(format!(
                "manifest digest {d} is not {manifest_digest}"
            )));
        }
        Ok(store2.commit_image(manifest_digest, names)?)
    })
    .await
    .map_err(|e| Error::Http(e.to_string()))??;
    if opts.mark_signed && !opts.verify_keys.is_empty() && unverified.is_none() {
        store.mark_signed(&loaded.id, &top_digest.to_string())?;
    }
    store.image_event(
        estiba_events::Action::Pull,
        &loaded.id,
        Some(&src.to_string()),
    );
    Ok(Pulled {
        digest: top_digest.to_string(),
        name,
        id: loaded.id.to_string(),
        unverified,
    })
}

async fn fetch_blob(
    client: &Client,
    store: &estiba_store::Store,
    repo: &str,
    scope: &str,
    layer: &Layer,
    ingest: &Path,
    progress: Arc<dyn ProgressSink>,
) -> Result<()> {
    let digest: estiba_oci::Digest = layer.digest.parse().map_err(|_| {
        Error::Http(format!(
            "{}: the local store keeps sha256 content only",
            layer.digest
        ))
    })?;
    let short = digest.short().to_string();
    if store.has_blob(&digest) {
        progress.finish(&short, "Already exists");
        return Ok(());
    }
    progress.start(&short, layer.size);
    // Named by digest, so a pull that was interrupted resumes it.
    let partial: PathBuf = ingest.join(format!("pull-{}.partial", digest.hex()));
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match download(
            client,
            repo,
            scope,
            &layer.digest,
            layer.size,
            &partial,
            &short,
            progress.as_ref(),
        )
        .await
        {
            Ok(()) => {
                last = None;
                break;
            }
            Err(
                e @ Error::Remote {
                    status: 400..=499, ..
                },
            ) => return Err(e),
            Err(e) => {
                tracing::warn!(blob = %layer.digest, error = %e, "download failed; resuming");
                last = Some(e);
            }
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    let (store, partial2, d) = (store.clone(), partial.clone(), digest.clone());
    tokio::task::spawn_blocking(move || store.adopt_blob(&partial2, &d))
        .await
        .map_err(|e| Error::Http(e.to_string()))??;
    progress.finish(&short, "Pull complete");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn download(
    client: &Client,
    repo: &str,
    scope: &str,
    digest: &str,
    size: u64,
    partial: &Path,
    id: &str,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let have = tokio::fs::metadata(partial).await.map_or(0, |m| m.len());
    if have == size && size > 0 {
        return Ok(());
    }
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = client
        .send(Method::GET, &path, scope, |r| {
            if have > 0 && have < size {
                r.header(RANGE, format!("bytes={have}-"))
            } else {
                r
            }
        })
        .await?;
    let append = match r.status() {
        StatusCode::PARTIAL_CONTENT => true,
        s if s.is_success() => false,
        _ => return Err(remote_error(&client.url(&path), r).await),
    };
    let io_err = |e| {
        Error::from(estiba_os::Error::Io {
            op: "writing",
            path: partial.into(),
            source: e,
        })
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(partial)
        .await
        .map_err(io_err)?;
    let mut stream = r.bytes_stream();
    let mut written = if append { have } else { 0 };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(to_error)?;
        written += chunk.len() as u64;
        if written > size {
            drop(file);
            let _ = tokio::fs::remove_file(partial).await;
            return Err(Error::Http(format!(
                "{digest}: the registry sent more than {size} bytes"
            )));
        }
        file.write_all(&chunk).await.map_err(io_err)?;
        progress.advance(id, chunk.len() as u64);
    }
    file.flush().await.map_err(io_err)?;
    if written != size {
        return Err(Error::Http(format!(
            "{digest}: got {written} of {size} bytes"
        )));
    }
    Ok(())
}
