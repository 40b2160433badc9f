//! `GET`, `HEAD` and `PUT /containers/{id}/archive?path=`: what `docker
//! cp` uses. Paths are resolved inside the running container's root
//! (`/proc/PID/root`, with `openat2(RESOLVE_IN_ROOT)`), so a symlink in
//! the container cannot point the copy at the host; what is put is
//! unpacked by the image layers' safe unpacker into that directory.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::TryStreamExt;
use rustix::fs::{FileType, OFlags};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::{query, stream, Api};

/// The container's root and the wanted path opened in it.
async fn open(api: &Api, id: &str, q: &query::Query) -> ApiResult<(String, OwnedFd)> {
    let path = q
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("give the path in the container (path=)"))?;
    let r = api.engine.inspect(id).await?;
    if r.state.status != estiba_engine::Status::Running || r.state.pid <= 0 {
        return Err(ApiError::conflict(format!(
            "container {} is not running: estiba copies to and from running containers",
            r.name
        )));
    }
    let root = PathBuf::from(format!("/proc/{}/root", r.state.pid));
    let fd = estiba_runtime::rootfs::open_in_root(&root, &path, OFlags::PATH).map_err(|e| {
        ApiError::not_found(format!(
            "Could not find the file {path} in container {}: {e}",
            r.name
        ))
    })?;
    Ok((path, fd))
}

fn base_name(path: &str) -> String {
    std::path::Path::new(path.trim_end_matches('/'))
        .file_name()
        .map_or_else(|| ".".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Docker's `X-Docker-Container-Path-Stat`: base64 JSON with Go's mode
/// bits (a directory is 1<<31).
fn path_stat(path: &str, fd: &OwnedFd) -> ApiResult<(HeaderValue, bool)> {
    let st = rustix::fs::fstat(fd).map_err(|e| ApiError::not_found(format!("stat {path}: {e}")))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let dir = kind == FileType::Directory;
    let mut mode = st.st_mode & 0o7777;
    if dir {
        mode |= 1 << 31;
    }
    let mtime = humantime::format_rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(st.st_mtime.max(0) as u64),
    );
    let v = json!({"name": base_name(path), "size": st.st_size, "mode": mode, "mtime": mtime.to_string(), "linkTarget": ""});
    let encoded = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let header =
        HeaderValue::from_str(&encoded).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((header, dir))
}

pub async fn head(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    let (path, fd) = open(&api, &id, &q).await?;
    let (stat, _) = path_stat(&path, &fd)?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert("x-docker-container-path-stat", stat);
    Ok(r)
}

/// Sends what a writer writes as body chunks.
struct ChannelWriter(tokio::sync::mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn get(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    let (path, fd) = open(&api, &id, &q).await?;
    let (stat, dir) = path_stat(&path, &fd)?;
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    let name = base_name(&path);
    tokio::task::spawn_blocking(move || {
        let _busy = busy;
        // Through the descriptor opened inside the root: the walk starts
        // there, and entries below are archived as they are (links as
        // links, never followed).
        let at = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let mut tar = tar::Builder::new(ChannelWriter(tx));
        tar.follow_symlinks(false);
        let done = if dir {
            tar.append_dir_all(&name, &at)
        } else {
            tar.append_path_with_name(&at, &name)
        };
        if let Err(e) = done.and_then(|()| tar.finish()) {
            tracing::warn!(error = %e, path = %path, "archiving from the container");
        }
        drop(fd);
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-tar"),
    );
    r.headers_mut().insert("x-docker-container-path-stat", stat);
    Ok(r)
}

pub async fn put(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
    req: Request,
) -> ApiResult<StatusCode> {
    let (path, fd) = open(&api, &id, &q).await?;
    let (_, dir) = path_stat(&path, &fd)?;
    if !dir {
        return Err(ApiError::bad_request(format!(
            "extraction point is not a directory: {path}"
        )));
    }
    let rootless = api.engine.blocking().host.rootless;
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
    tokio::task::spawn_blocking(move || {
        let at = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let result = estiba_oci::unpack::unpack(
            reader,
            &at,
            estiba_oci::unpack::Options {
                whiteouts: estiba_oci::unpack::Whiteouts::Apply,
                rootless,
            },
        );
        drop(fd);
        result
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::bad_request(format!("copying into {path}: {e}")))?;
    Ok(StatusCode::OK)
}
