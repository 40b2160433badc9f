//! `/images/…`: list, inspect, history, tag and remove. Image names hold
//! slashes, so `/images/{name}/json` and the like are routed by suffix.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use estiba_store::ImageRecord;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::query::{self, flag};
use crate::Api;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save))
        .route("/images/prune", post(prune))
        .route(
            "/build",
            post(crate::build::build).layer(axum::extract::DefaultBodyLimit::max(
                crate::build::MAX_CONTEXT as usize,
            )),
        )
        .route("/images/{*rest}", any(by_suffix))
}

fn config_of(api: &Api, r: &ImageRecord) -> Value {
    api.engine
        .blocking()
        .store
        .read_blob(&r.id)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn summary(api: &Api, r: &ImageRecord) -> Value {
    let config = config_of(api, r);
    json!({
        "Id": r.id.to_string(),
        "ParentId": "",
        "RepoTags": r.names,
        "RepoDigests": [],
        "Created": query::unix_secs(r.created.as_deref()),
        "Size": r.size,
        "VirtualSize": r.size,
        "SharedSize": -1,
        "Labels": config["config"]["Labels"],
        "Containers": -1,
    })
}

async fn list(
    State(api): State<Arc<Api>>,
    Query(q): Query<query::Query>,
) -> ApiResult<Json<Vec<Value>>> {
    let filters = query::filters(&q, &["dangling", "reference", "label", "before", "since"])?;
    let images = api.engine.blocking().store.images()?;
    let dangling = filters
        .get("dangling")
        .and_then(|d| d.first())
        .map(|d| d == "true" || d == "1");
    let references = filters.get("reference");
    let out = images
        .iter()
        .filter(|r| dangling.is_none_or(|d| d == r.names.is_empty()))
        .filter(|r| {
            references.is_none_or(|refs| {
                refs.iter().any(|pattern| {
                    r.names.iter().any(|n| {
                        n == pattern
                            || n.split_once(':').is_some_and(|(repo, _)| repo == pattern)
                            || glob_match(pattern, n)
                    })
                })
            })
        })
        .map(|r| summary(&api, r))
        .filter(|v| {
            let labels: std::collections::BTreeMap<String, String> =
                serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
            query::labels_match(filters.get("label"), &labels)
        })
        .collect();
    Ok(Json(out))
}

/// `*` in a reference filter, as docker's `busybox:*`.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => false,
        Some((head, tail)) => name.starts_with(head) && name[head.len()..].ends_with(tail),
    }
}

/// `fromImage` pulls; `fromSrc` (an import) is not served.
async fn create(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    match (q.get("fromImage"), q.get("fromSrc")) {
        (Some(from), _) if !from.is_empty() => {
            crate::registry::pull(api, &headers, from, q.get("tag").map(String::as_str)).await
        }
        (_, Some(_)) => Err(ApiError::not_implemented(
            "image import (fromSrc); use `estiba import`",
        )),
        _ => Err(ApiError::bad_request(
            "give fromImage (a pull) to /images/create",
        )),
    }
}

async fn by_suffix(
    State(api): State<Arc<Api>>,
    method: Method,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    let rest = rest.trim_start_matches('/');
    if method == Method::DELETE {
        return remove(&api, rest, flag(&q, "force")).map(IntoResponse::into_response);
    }
    let (name, action) = rest
        .rsplit_once('/')
        .ok_or_else(|| ApiError::not_found("page not found"))?;
    match (method, action) {
        (Method::GET, "json") => Ok(Json(inspect(&api, name)?).into_response()),
        (Method::GET, "history") => Ok(Json(history(&api, name)?).into_response()),
        (Method::GET, "get") => save_names(api, vec![name.to_string()]).await,
        (Method::POST, "tag") => tag(&api, name, &q).map(IntoResponse::into_response),
        (Method::POST, "push") => {
            crate::registry::push(
                Arc::clone(&api),
                &headers,
                name,
                q.get("tag").map(String::as_str),
            )
            .await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

fn find(api: &Api, name: &str) -> ApiResult<ImageRecord> {
    Ok(api.engine.blocking().store.find_image(name)?)
}

fn inspect(api: &Api, name: &str) -> ApiResult<Value> {
    let r = find(api, name)?;
    let config = config_of(api, &r);
    Ok(json!({
        "Id": r.id.to_string(),
        "RepoTags": r.names,
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": r.created,
        "Container": "",
        "DockerVersion": "",
        "Author": config["author"],
        "Config": config["config"],
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Size": r.size,
        "VirtualSize": r.size,
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": r.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
}

fn history(api: &Api, name: &str) -> ApiResult<Value> {
    let r = find(api, name)?;
    let config = config_of(api, &r);
    let mut out: Vec<Value> = config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            json!({
                "Id": "<missing>",
                "Created": query::unix_secs(h["created"].as_str()),
                "CreatedBy": h["created_by"].as_str().unwrap_or(""),
                "Tags": null,
                "Size": 0,
                "Comment": h["comment"].as_str().unwrap_or(""),
            })
        })
        .collect();
    out.reverse();
    if let Some(top) = out.first_mut() {
        top["Id"] = json!(r.id.to_string());
        top["Tags"] = json!(r.names);
    }
    Ok(Value::Array(out))
}

fn tag(api: &Api, name: &str, q: &query::Query) -> ApiResult<StatusCode> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name must be given (repo=)"))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    };
    api.engine.blocking().store.tag(name, &target)?;
    Ok(StatusCode::CREATED)
}

fn remove(api: &Api, name: &str, force: bool) -> ApiResult<Json<Vec<Value>>> {
    let r = find(api, name)?;
    let users: Vec<String> = api
        .engine
        .blocking()
        .list()?
        .into_iter()
        .filter(|c| c.image_id == r.id.to_string())
        .map(|c| c.id[..12].to_string())
        .collect();
    if !users.is_empty() && !force {
        return Err(ApiError::conflict(format!(
            "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
            users[0],
            r.id.short()
        )));
    }
    let lines = api.engine.blocking().store.remove_image(name, force)?;
    Ok(Json(
        lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix("Untagged: ")
                    .map(|n| json!({"Untagged": n}))
                    .or_else(|| l.strip_prefix("Deleted: ").map(|d| json!({"Deleted": d})))
            })
            .collect(),
    ))
}

async fn prune(State(api): State<Arc<Api>>) -> ApiResult<Json<Value>> {
    let pruned = api.engine.blocking().store.prune()?;
    Ok(Json(json!({
        "ImagesDeleted": pruned.images.iter().map(|i| json!({"Deleted": i.to_string()})).collect::<Vec<_>>(),
        "SpaceReclaimed": pruned.reclaimed,
    })))
}

/// A scratch file under the store's data directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scratch(api: &Api, what: &str) -> ApiResult<Scratch> {
    let dir = api.engine.blocking().data.join("api-transfers");
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("creating {}: {e}", dir.display()),
        )
    })?;
    Ok(Scratch(
        dir.join(format!("{what}-{}.tar", estiba_os::random_hex(8))),
    ))
}

/// `POST /images/load`: a docker-archive, oci-archive or OCI layout tar,
/// spooled to disk (the store indexes archives by offset), then loaded.
async fn load(State(api): State<Arc<Api>>, body: axum::body::Body) -> ApiResult<Response> {
    use futures_util::TryStreamExt;
    let file = scratch(&api, "load")?;
    let mut out = tokio::fs::File::create(&file.0)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    tokio::io::copy(&mut reader, &mut out)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
    drop(out);
    let store = api.engine.blocking().store.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let result = store.load(&file.0, &mut |_| {});
        drop(file);
        result
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut text = String::new();
    for l in loaded {
        if l.names.is_empty() {
            text.push_str(&json!({"stream": format!("Loaded image ID: {}\n", l.id)}).to_string());
        }
        for n in &l.names {
            text.push_str(&json!({"stream": format!("Loaded image: {n}\n")}).to_string());
        }
        text.push('\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

/// `GET /images/get?names=A&names=B`.
async fn save(State(api): State<Arc<Api>>, req: axum::extract::Request) -> ApiResult<Response> {
    let names: Vec<String> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "names")
            .map(|(_, v)| v.into_owned())
            .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("give the images to save (names=)"));
    }
    save_names(api, names).await
}

async fn save_names(api: Arc<Api>, names: Vec<String>) -> ApiResult<Response> {
    let store = api.engine.blocking().store.clone();
    let mut images = Vec::new();
    for n in &names {
        let record = store.find_image(n)?;
        let label = record
            .names
            .iter()
            .find(|x| x.starts_with(n.as_str()))
            .cloned();
        images.push((record, label));
    }
    let file = scratch(&api, "save")?;
    let file = tokio::task::spawn_blocking(move || store.save(&images, &file.0).map(|()| file))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let opened = tokio::fs::File::open(&file.0)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // Open, the file can go: the stream reads the inode.
    drop(file);
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-tar")],
        body,
    )
        .into_response())
}
