//! Blob endpoints: GET/HEAD (with Range), DELETE, and uploads (monolithic,
//! streamed, chunked, cross-repository mount).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::http::{header, Method};
use axum::response::Response;
use futures_util::StreamExt;

use super::{respond, Ctx};
use crate::auth::{Action, Need};
use crate::digest::Digest;
use crate::error::{Code, Error, Result};
use crate::names::validate_name;
use crate::storage::BlobReader;

fn blob_unknown(digest: &Digest) -> Error {
    Error::api(
        Code::BlobUnknown,
        format!("blob {digest} is unknown to this repository"),
    )
}

/// `/v2/<name>/blobs/<digest>`
pub async fn blob(ctx: &Ctx, name: &str, digest: &str) -> Result<Response> {
    let digest: Digest = digest.parse()?;
    match ctx.method {
        Method::GET | Method::HEAD => get_blob(ctx, name, digest).await,
        Method::DELETE => {
            let (repo, d) = (name.to_string(), digest.clone());
            let removed = ctx
                .app
                .blocking(move |s| {
                    if !s.blob_linked(&repo, &d)? {
                        return Ok(false);
                    }
                    // Only this repository's link: the content may be shared,
                    // and garbage collection frees it when nothing needs it.
                    s.unlink_blob(&repo, &d)?;
                    Ok(true)
                })
                .await?;
            if !removed {
                return Err(blob_unknown(&digest));
            }
            ctx.audit("delete", name, &digest.to_string(), "ok");
            Ok(respond::empty(
                202,
                &[("Docker-Content-Digest", digest.to_string())],
            ))
        }
        _ => Err(Error::api(
            Code::Unsupported,
            "method not allowed on a blob",
        )),
    }
}

async fn get_blob(ctx: &Ctx, name: &str, digest: Digest) -> Result<Response> {
    let (repo, d) = (name.to_string(), digest.clone());
    let found = ctx
        .app
        .blocking(move |s| {
            if !s.blob_linked(&repo, &d)? {
                return Ok(None);
            }
            s.open_blob(&d)
        })
        .await?;
    let Some(blob) = found else {
        return Err(blob_unknown(&digest));
    };
    let size = blob.size;
    let mut headers = vec![
        ("Docker-Content-Digest", digest.to_string()),
        ("Content-Type", "application/octet-stream".to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let range = match ctx.header(header::RANGE) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            Error::api(
                Code::RangeInvalid,
                format!("range {r:?} is not satisfiable for {size} bytes"),
            )
        })?),
        None => None,
    };
    let (status, start, len) = match range {
        Some((start, end)) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
            (206, start, end - start + 1)
        }
        None => (200, 0, size),
    };
    headers.push(("Content-Length", len.to_string()));
    if ctx.method == Method::HEAD {
        return Ok(respond::empty(status, &headers));
    }
    let mut r = Response::new(stream_blob(blob, start, len));
    *r.status_mut() = respond::status(status);
    respond::set_headers(&mut r, &headers);
    Ok(r)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` → inclusive (start, end).
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().ok()?.min(size - 1)
        };
        (start, end)
    };
    (start <= end && start < size).then_some((start, end))
}

/// Streams `len` bytes from `start` through a channel filled by a blocking
/// reader thread, so any storage backend's reader can be served.
fn stream_blob(blob: BlobReader, start: u64, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = blob.reader;
        if let Err(e) = reader.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; left.min(256 * 1024) as usize];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A request body as a blocking reader for storage. An async task forwards
/// the body's own buffers in batches of about 1 MiB, so the blocking side is
/// woken once per MiB rather than once per network read, and nothing is
/// copied on the way.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<Bytes>>>,
    batch: std::collections::VecDeque<Bytes>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.batch.front_mut() {
                Some(current) if !current.is_empty() => {
                    let n = buf.len().min(current.len());
                    buf[..n].copy_from_slice(&current[..n]);
                    *current = current.slice(n..);
                    return Ok(n);
                }
                Some(_) => {
                    self.batch.pop_front();
                }
                None => match self.rx.blocking_recv() {
                    Some(Ok(batch)) => self.batch = batch.into(),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(0),
                },
            }
        }
    }
}

const PIECE: usize = 1 << 20;

/// Streams the body into an upload; returns the new offset.
async fn append_body(ctx: &Ctx, id: &str, start: Option<u64>, body: Body) -> Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<Bytes>>>(4);
    let (storage, id) = (std::sync::Arc::clone(&ctx.app.storage), id.to_string());
    let writer = tokio::task::spawn_blocking(move || {
        let before = storage.upload_offset(&id)?;
        let mut reader = ChannelReader {
            rx,
            batch: Default::default(),
        };
        storage
            .append_upload(&id, start, &mut reader)
            .map(|after| (before, after))
    });
    let mut stream = body.into_data_stream();
    let (mut batch, mut batched) = (Vec::new(), 0);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e))).await;
                break;
            }
        };
        batched += chunk.len();
        batch.push(chunk);
        if batched >= PIECE {
            batched = 0;
            // The writer stopped (an error): it says why below.
            if tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                break;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
    drop(tx);
    let (before, after) = writer
        .await
        .map_err(|e| Error::Http(format!("an upload task failed: {e}")))??;
    ctx.app
        .metrics
        .bytes_in
        .fetch_add(after.saturating_sub(before), Ordering::Relaxed);
    Ok(after)
}

/// `start-end` (docker's form, no unit), or `bytes start-end[/size]`.
fn parse_content_range(value: &str) -> Result<(u64, u64)> {
    let bad = || {
        Error::api(
            Code::BlobUploadInvalid,
            format!("bad Content-Range {value:?}"),
        )
    };
    let v = value.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (a, b) = v.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// The start a chunk claims, checked against its length.
fn chunk_start(ctx: &Ctx) -> Result<Option<u64>> {
    let Some(range) = ctx.header(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let (start, end) = parse_content_range(range)?;
    if let Some(len) = ctx
        .header(header::CONTENT_LENGTH)
        .and_then(|l| l.parse::<u64>().ok())
    {
        if len != end - start + 1 {
            return Err(Error::api(
                Code::BlobUploadInvalid,
                format!("Content-Range {range} does not match Content-Length {len}"),
            ));
        }
    }
    Ok(Some(start))
}

fn upload_headers(name: &str, id: &str, offset: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", format!("0-{}", offset.saturating_sub(1))),
        ("Docker-Upload-UUID", id.to_string()),
    ]
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    respond::empty(
        201,
        &[
            ("Location", format!("/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

/// `POST /v2/<name>/blobs/uploads/`: a mount, a monolithic upload, or a new
/// session.
pub async fn start_upload(ctx: &Ctx, name: &str, body: Body) -> Result<Response> {
    if ctx.method != Method::POST {
        return Err(Error::api(Code::Unsupported, "uploads start with POST"));
    }
    if let Some(mount) = ctx.param("mount") {
        let digest: Digest = mount.parse()?;
        if try_mount(ctx, name, &digest).await? {
            ctx.audit("mount", name, &digest.to_string(), "ok");
            return Ok(blob_created(name, &digest));
        }
    }
    let repo = name.to_string();
    let id = ctx.app.blocking(move |s| s.start_upload(&repo)).await?;
    let Some(digest) = ctx.param("digest") else {
        return Ok(respond::empty(202, &upload_headers(name, &id, 0)));
    };
    // Monolithic: the whole blob in this request.
    let digest: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => {
            cancel(ctx, &id).await;
            return Err(e.into());
        }
    };
    let result = finish(ctx, name, &id, &digest, Some(body), None).await;
    // The client never saw this upload's location: nothing can resume it.
    if result.is_err() {
        cancel(ctx, &id).await;
    }
    result
}

async fn cancel(ctx: &Ctx, id: &str) {
    let id = id.to_string();
    let _ = ctx.app.blocking(move |s| s.cancel_upload(&id)).await;
}

/// Links an existing blob into `name` if the client may read it where it
/// is. False means: fall back to an upload (202), as the spec asks.
async fn try_mount(ctx: &Ctx, name: &str, digest: &Digest) -> Result<bool> {
    let from = ctx.param("from").map(str::to_string);
    let sources: Vec<String> = match from {
        Some(from) => {
            if validate_name(&from).is_err() || !ctx.may(Need::Repo(from.clone(), Action::Pull)) {
                return Ok(false);
            }
            vec![from]
        }
        // Without `from`: any repository holding it that this client may pull.
        None => {
            let d = digest.clone();
            let holders = ctx
                .app
                .blocking(move |s| {
                    let mut out = Vec::new();
                    for repo in s.repositories()? {
                        if s.blob_linked(&repo, &d)? {
                            out.push(repo);
                        }
                    }
                    Ok(out)
                })
                .await?;
            holders
                .into_iter()
                .filter(|r| ctx.identity_may(&Need::Repo(r.clone(), Action::Pull)))
                .take(1)
                .collect()
        }
    };
    let (repo, d) = (name.to_string(), digest.clone());
    let _guard = ctx.app.gc_lock.read().await;
    ctx.app
        .blocking(move |s| {
            for source in &sources {
                if s.blob_linked(source, &d)? && s.blob_size(&d)?.is_some() {
                    s.touch_blob(&d)?;
                    s.link_blob(&repo, &d)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
}

/// Appends `body` (if any), verifies the digest, and makes the blob visible
/// in `name`.
async fn finish(
    ctx: &Ctx,
    name: &str,
    id: &str,
    digest: &Digest,
    body: Option<Body>,
    start: Option<u64>,
) -> Result<Response> {
    if let Some(body) = body {
        append_body(ctx, id, start, body).await?;
    }
    let _guard = ctx.app.gc_lock.read().await;
    let (repo, id2, d) = (name.to_string(), id.to_string(), digest.clone());
    let result = ctx
        .app
        .blocking(move |s| {
            s.finish_upload(&id2, &d)?;
            s.link_blob(&repo, &d)
        })
        .await;
    match result {
        Ok(()) => {
            ctx.audit("push", name, &digest.to_string(), "ok");
            Ok(blob_created(name, digest))
        }
        Err(e) => {
            ctx.audit("push", name, &digest.to_string(), &e.to_string());
            Err(e)
        }
    }
}

/// `/v2/<name>/blobs/uploads/<id>`: GET (status), PATCH (a chunk), PUT
/// (the end), DELETE (cancel).
pub async fn upload(ctx: &Ctx, name: &str, id: &str, body: Body) -> Result<Response> {
    let id_owned = id.to_string();
    let owner = ctx.app.blocking(move |s| s.upload_repo(&id_owned)).await?;
    if owner.as_deref() != Some(name) {
        return Err(Error::api(
            Code::BlobUploadUnknown,
            format!("upload {id} is unknown"),
        ));
    }
    let offset = || {
        let id = id.to_string();
        ctx.app.blocking(move |s| s.upload_offset(&id))
    };
    match ctx.method {
        Method::GET | Method::HEAD => {
            let at = offset().await?;
            Ok(respond::empty(204, &upload_headers(name, id, at)))
        }
        Method::PATCH => {
            let start = chunk_start(ctx)?;
            match append_body(ctx, id, start, body).await {
                Ok(at) => Ok(respond::empty(202, &upload_headers(name, id, at))),
                Err(e) if e.code() == Some(Code::RangeInvalid) => {
                    let at = offset().await?;
                    let mut r = respond::error(&e);
                    respond::set_headers(&mut r, &upload_headers(name, id, at));
                    Ok(r)
                }
                Err(e) => Err(e),
            }
        }
        Method::PUT => {
            let digest: Digest = ctx
                .param("digest")
                .ok_or_else(|| Error::api(Code::DigestInvalid, "the final PUT needs ?digest="))?
                .parse()?;
            let start = chunk_start(ctx)?;
            finish(ctx, name, id, &digest, Some(body), start).await
        }
        Method::DELETE => {
            cancel_or_unknown(ctx, id).await?;
            Ok(respond::empty(204, &[]))
        }
        _ => Err(Error::api(
            Code::Unsupported,
            "method not allowed on an upload",
        )),
    }
}

async fn cancel_or_unknown(ctx: &Ctx, id: &str) -> Result<()> {
    let id = id.to_string();
    ctx.app.blocking(move |s| s.cancel_upload(&id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=500-1499", 2048), Some((500, 1499)));
        assert_eq!(parse_range("bytes=500-", 2048), Some((500, 2047)));
        assert_eq!(parse_range("bytes=-500", 2048), Some((1548, 2047)));
        assert_eq!(parse_range("bytes=2000-5000", 2048), Some((2000, 2047)));
        assert_eq!(parse_range("bytes=500-0", 2048), None);
        assert_eq!(parse_range("bytes=5000-10000", 2048), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 2048), None);
        assert_eq!(parse_range("items=0-1", 2048), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-21").unwrap(), (0, 21));
        assert_eq!(parse_content_range("bytes 22-41/42").unwrap(), (22, 41));
        for bad in ["", "a-b", "5-1", "-1", "1-"] {
            assert_eq!(
                parse_content_range(bad).unwrap_err().code(),
                Some(Code::BlobUploadInvalid),
                "{bad}"
            );
        }
    }
}
