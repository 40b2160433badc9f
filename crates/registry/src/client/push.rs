//! `estiba push`: blobs first (in parallel, skipped when the registry has
//! them, mounted from another repository when it may), then the manifest.
//! Large blobs go in chunks, and a broken transfer resumes from the offset
//! the registry reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{remote_error, to_error, Client, ProgressSink, RemoteRef};
use crate::error::IoContext;
use crate::error::{Error, Result};
use crate::manifest::MANIFEST_OCI;

/// Blobs up to this size go in one request; larger ones in chunks of it.
const CHUNK: u64 = 32 * 1024 * 1024;
const ATTEMPTS: usize = 4;

struct Blob {
    digest: String,
    path: PathBuf,
    size: u64,
}

/// Pushes a local image; returns the manifest digest.
pub async fn push(
    client: &Client,
    store: &estiba_store::Store,
    image: &str,
    dest: &RemoteRef,
    progress: Arc<dyn ProgressSink>,
) -> Result<String> {
    let record = store.find_image(image)?;
    let manifest = store.read_blob(&record.manifest)?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| MANIFEST_OCI.to_string());
    let mut blobs = Vec::new();
    for d in std::iter::once(&record.id).chain(record.layer_blobs.iter()) {
        let path = store.blob_path(d);
        let size = std::fs::metadata(&path).ctx("reading", &path)?.len();
        blobs.push(Blob {
            digest: d.to_string(),
            path,
            size,
        });
    }
    // The image's other names on the same registry: blobs can be mounted
    // from there instead of uploaded again.
    let sources: Vec<String> = record
        .names
        .iter()
        .filter_map(|n| RemoteRef::parse(n).ok())
        .filter(|r| r.registry == dest.registry && r.repository != dest.repository)
        .map(|r| r.repository)
        .collect();
    let mut scope = format!("repository:{}:pull,push", dest.repository);
    for s in &sources {
        scope.push_str(&format!(" repository:{s}:pull"));
    }
    let results: Vec<Result<()>> = futures_util::stream::iter(blobs.iter())
        .map(|b| {
            push_blob(
                client,
                &dest.repository,
                &scope,
                &sources,
                b,
                Arc::clone(&progress),
            )
        })
        .buffer_unordered(client.parallel)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let path = format!("/v2/{}/manifests/{}", dest.repository, dest.reference());
    let digest = record.manifest.to_string();
    let r = client
        .send(Method::PUT, &path, &scope, |req| {
            req.header(CONTENT_TYPE, media_type.as_str())
                .body(manifest.clone())
        })
        .await?;
    if r.status() != StatusCode::CREATED && !r.status().is_success() {
        return Err(remote_error(&client.url(&path), r).await);
    }
    if let Some(echoed) = r
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
    {
        if echoed != digest {
            return Err(Error::Remote {
                url: client.url(&path),
                status: r.status().as_u16(),
                message: format!("the registry stored {echoed}, not {digest}"),
            });
        }
    }
    store.image_event(
        estiba_events::Action::Push,
        &record.id,
        Some(&dest.to_string()),
    );
    Ok(digest)
}

async fn push_blob(
    client: &Client,
    repo: &str,
    scope: &str,
    sources: &[String],
    blob: &Blob,
    progress: Arc<dyn ProgressSink>,
) -> Result<()> {
    let short = blob.digest.get(7..19).unwrap_or(&blob.digest).to_string();
    let head = client
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{}", blob.digest),
            scope,
            |r| r,
        )
        .await?;
    if head.status().is_success() {
        progress.finish(&short, "Layer already exists");
        return Ok(());
    }
    let mut location = None;
    for source in sources {
        let path = format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={source}",
            blob.digest
        );
        let r = client
            .send(Method::POST, &path, scope, |r| {
                r.header(CONTENT_LENGTH, "0")
            })
            .await?;
        if r.status() == StatusCode::CREATED {
            progress.finish(&short, &format!("Mounted from {source}"));
            return Ok(());
        }
        // 202: the registry opened an upload instead; use it.
        if r.status() == StatusCode::ACCEPTED {
            location = location_of(&r).ok();
            break;
        }
    }
    progress.start(&short, blob.size);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match upload(
            client,
            repo,
            scope,
            blob,
            &mut location,
            &short,
            progress.as_ref(),
        )
        .await
        {
            Ok(()) => {
                progress.finish(&short, "Pushed");
                return Ok(());
            }
            // The registry said no: trying again will not help.
            Err(
                e @ Error::Remote {
                    status: 400..=499, ..
                },
            ) if location.is_none() => return Err(e),
            Err(e) => {
                tracing::warn!(blob = %blob.digest, error = %e, "blob upload failed; resuming");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Http("upload failed".into())))
}

/// The location with `key=value` added to its query.
fn with_param(client: &Client, location: &str, key: &str, value: &str) -> Result<String> {
    let mut url = reqwest::Url::parse(&client.url(location))
        .map_err(|e| Error::Http(format!("upload location {location:?}: {e}")))?;
    url.query_pairs_mut().append_pair(key, value);
    Ok(url.to_string())
}

fn location_of(r: &reqwest::Response) -> Result<String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| Error::Http("the registry gave no upload location".into()))
}

/// How far an upload got, from its status: `Range: 0-N` means N+1 bytes.
async fn offset(client: &Client, scope: &str, location: &str) -> Result<(u64, String)> {
    let r = client.send(Method::GET, location, scope, |r| r).await?;
    if r.status() != StatusCode::NO_CONTENT && !r.status().is_success() {
        return Err(remote_error(location, r).await);
    }
    let loc = location_of(&r).unwrap_or_else(|_| location.to_string());
    let end = r
        .headers()
        .get("Range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once('-'))
        .and_then(|(_, e)| e.parse::<i64>().ok());
    Ok((end.map_or(0, |e| u64::try_from(e + 1).unwrap_or(0)), loc))
}

/// `len` bytes of a file from `start`, streamed. Progress is counted per
/// request once it succeeds.
async fn file_body(path: &Path, start: u64, len: u64) -> Result<reqwest::Body> {
    let io_err = |e| {
        Error::from(estiba_os::Error::Io {
            op: "reading",
            path: path.into(),
            source: e,
        })
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io_err)?;
    Ok(reqwest::Body::wrap_stream(ReaderStream::with_capacity(
        file.take(len),
        256 * 1024,
    )))
}

async fn upload(
    client: &Client,
    repo: &str,
    scope: &str,
    blob: &Blob,
    location: &mut Option<String>,
    id: &str,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let (mut at, mut loc) = match location.clone() {
        Some(loc) => offset(client, scope, &loc).await?,
        None => {
            let path = format!("/v2/{repo}/blobs/uploads/");
            let r = client
                .send(Method::POST, &path, scope, |r| {
                    r.header(CONTENT_LENGTH, "0")
                })
                .await?;
            if r.status() != StatusCode::ACCEPTED && !r.status().is_success() {
                return Err(remote_error(&client.url(&path), r).await);
            }
            (0, location_of(&r)?)
        }
    };
    *location = Some(loc.clone());
    // Small blobs: the whole body with the final PUT.
    if blob.size <= CHUNK && at == 0 {
        let url = with_param(client, &loc, "digest", &blob.digest)?;
        let body = file_body(&blob.path, 0, blob.size).await?;
        let r = client
            .request(Method::PUT, &url, scope)
            .await?
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, blob.size)
            .body(body)
            .send()
            .await
            .map_err(to_error)?;
        if r.status() != StatusCode::CREATED && !r.status().is_success() {
            return Err(remote_error(&url, r).await);
        }
        progress.advance(id, blob.size);
        return Ok(());
    }
    while at < blob.size {
        let len = CHUNK.min(blob.size - at);
        let body = file_body(&blob.path, at, len).await?;
        let r = client
            .request(Method::PATCH, &loc, scope)
            .await?
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, format!("{at}-{}", at + len - 1))
            .body(body)
            .send()
            .await
            .map_err(to_error)?;
        if r.status() != StatusCode::ACCEPTED && !r.status().is_success() {
            return Err(remote_error(&loc, r).await);
        }
        loc = location_of(&r).unwrap_or(loc);
        *location = Some(loc.clone());
        at += len;
        progress.advance(id, len);
    }
    let url = with_param(client, &loc, "digest", &blob.digest)?;
    let r = client
        .send(Method::PUT, &url, scope, |r| r.header(CONTENT_LENGTH, "0"))
        .await?;
    if r.status() != StatusCode::CREATED && !r.status().is_success() {
        return Err(remote_error(&url, r).await);
    }
    Ok(())
}
