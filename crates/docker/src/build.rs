//! `POST /build`: the classic builder's API. The body is the context as
//! a tar (compressed or not); it is unpacked by the same safe unpacker as
//! image layers (no path leaves the directory, links included), then built
//! by the engine's builder, whose progress goes back as Docker's JSON
//! stream (`{"stream": …}`, `{"aux": {"ID": …}}`, `{"error": …}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use futures_util::TryStreamExt;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::{stream, Api};

/// The largest context accepted: bigger ones are refused with 413.
pub const MAX_CONTEXT: u64 = 512 << 20;

/// The query, where `t` may repeat.
struct Params {
    tags: Vec<String>,
    dockerfile: Option<String>,
    target: Option<String>,
    build_args: Vec<(String, String)>,
    network: String,
}

fn params(query: Option<&str>) -> ApiResult<Params> {
    let mut p = Params {
        tags: Vec::new(),
        dockerfile: None,
        target: None,
        build_args: Vec::new(),
        network: "none".into(),
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "t" if !v.is_empty() => p.tags.push(v.into_owned()),
            "dockerfile" if !v.is_empty() => p.dockerfile = Some(v.into_owned()),
            "target" if !v.is_empty() => p.target = Some(v.into_owned()),
            "networkmode" => {
                p.network = match v.as_ref() {
                    "" | "default" | "none" => "none".into(),
                    "host" => "host".into(),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "networkmode {other:?}: RUN steps have no network, or the host's"
                        )))
                    }
                }
            }
            "buildargs" if !v.is_empty() => {
                let args: HashMap<String, Option<String>> = serde_json::from_str(&v)
                    .map_err(|e| ApiError::bad_request(format!("invalid buildargs: {e}")))?;
                p.build_args = args
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
            }
            "remote" if !v.is_empty() => {
                return Err(ApiError::not_implemented("a remote build context"))
            }
            _ => {}
        }
    }
    Ok(p)
}

/// A Dockerfile path inside the context, never outside it.
fn inside(file: &str) -> ApiResult<std::path::PathBuf> {
    let path = std::path::Path::new(file);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ApiError::bad_request(format!(
            "dockerfile {file:?} must be a path inside the context"
        )));
    }
    Ok(path.to_path_buf())
}

pub async fn build(State(api): State<Arc<Api>>, req: Request) -> ApiResult<Response> {
    let p = params(req.uri().query())?;
    let file = p.dockerfile.as_deref().map(inside).transpose()?;
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_CONTEXT)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the build context is larger than {} MiB", MAX_CONTEXT >> 20),
        ));
    }
    let engine = api.engine.clone();
    let dir = tempfile_in(&engine.blocking().data)?;
    // The body streams into the unpacker on a blocking thread.
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let reader = Limited {
        inner: tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body)),
        left: MAX_CONTEXT,
    };
    let (dest, rootless) = (dir.clone(), engine.blocking().host.rootless);
    tokio::task::spawn_blocking(move || {
        estiba_oci::unpack::unpack(
            reader,
            &dest,
            estiba_oci::unpack::Options {
                whiteouts: estiba_oci::unpack::Whiteouts::Apply,
                rootless,
            },
        )
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        let _ = estiba_os::remove_tree(&dir);
        let message = e.to_string();
        if message.contains(TOO_LARGE) {
            ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, message)
        } else {
            ApiError::bad_request(format!("the build context is not a tar archive: {message}"))
        }
    })?;
    let opts = estiba_engine::build::BuildOptions {
        context: dir.clone(),
        file: file.map(|f| dir.join(f)),
        tags: p.tags,
        build_args: p.build_args,
        target: p.target,
        network: p.network,
    };
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    // A thread of its own, not the blocking pool's: the builder takes a
    // private mount namespace for the thread that runs it, which must end
    // with the build (a reused thread would no longer see the network
    // namespaces that monitors mount later).
    std::thread::spawn(move || {
        let _busy = busy;
        let send = |v: serde_json::Value| {
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            let _ = tx.blocking_send(line);
        };
        let result = engine.blocking().build(&opts, &mut |line| {
            send(json!({"stream": format!("{line}\n")}))
        });
        match result {
            Ok(loaded) => {
                send(json!({"aux": {"ID": loaded.id.to_string()}}));
                send(json!({"stream": format!("Successfully built {}\n", loaded.id.short())}));
                for name in &loaded.names {
                    send(json!({"stream": format!("Successfully tagged {name}\n")}));
                }
            }
            Err(e) => {
                let message = e.to_string();
                send(json!({"errorDetail": {"message": message}, "error": message}));
            }
        }
        let _ = estiba_os::remove_tree(&opts.context);
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty())))
}

/// A fresh directory for one context, under the store's data directory
/// (the same file system as the layers the build writes).
fn tempfile_in(data: &std::path::Path) -> ApiResult<std::path::PathBuf> {
    let dir = data.join("build-contexts").join(estiba_os::random_hex(16));
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("creating {}: {e}", dir.display()),
        )
    })?;
    Ok(dir)
}

/// The body as the unpacker reads it: blocking, and cut off past
/// [`MAX_CONTEXT`] with an error that says so.
struct Limited<R> {
    inner: R,
    left: u64,
}

const TOO_LARGE: &str = "the build context is too large";

impl<R: std::io::Read> std::io::Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| std::io::Error::other(TOO_LARGE))?;
        Ok(n)
    }
}
