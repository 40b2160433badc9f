//! `/volumes/…`: create, list, inspect, remove and prune.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use estiba_engine::volumes::Volume;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::query::{self, flag};
use crate::Api;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn shape(v: &Volume) -> Value {
    let options = match &v.encryption {
        Some(e) => json!({"encrypt": e.backend}),
        None => json!({}),
    };
    json!({
        "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at, "Labels": {}, "Scope": "local", "Options": options,
    })
}

async fn list(
    State(api): State<Arc<Api>>,
    Query(q): Query<query::Query>,
) -> ApiResult<Json<Value>> {
    let filters = query::filters(&q, &["name", "dangling", "driver", "label"])?;
    let volumes = api.engine.blocking().volumes.list();
    let names = filters.get("name");
    let out: Vec<Value> = volumes
        .iter()
        .filter(|v| names.is_none_or(|n| n.iter().any(|n| v.name.contains(n.as_str()))))
        .map(shape)
        .collect();
    Ok(Json(json!({"Volumes": out, "Warnings": []})))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    /// `-o encrypt=gocryptfs` (or `true`): an encrypted volume.
    driver_opts: std::collections::BTreeMap<String, String>,
}

async fn create(State(api): State<Arc<Api>>, body: Bytes) -> ApiResult<Response> {
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if !matches!(body.driver.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!(
            "volume driver {:?} is not available: estiba has the local driver",
            body.driver
        )));
    }
    let name = if body.name.is_empty() {
        estiba_os::random_hex(32)
    } else {
        body.name
    };
    let mut encryption = None;
    for (key, value) in &body.driver_opts {
        match (key.as_str(), value.as_str()) {
            ("encrypt", "true" | "") => encryption = Some("gocryptfs"),
            ("encrypt", backend) => encryption = Some(backend),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "volume option {key:?} is not supported: estiba's local driver takes encrypt"
                )))
            }
        }
    }
    let encryption = encryption
        .map(|b| -> estiba_engine::Result<_> {
            Ok(estiba_engine::crypt::Encryption {
                backend: b.parse()?,
                size: None,
            })
        })
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (volume, _) = api
        .engine
        .blocking()
        .volumes
        .create_with(&name, encryption)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(shape(&volume))).into_response())
}

async fn inspect(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let v = api
        .engine
        .blocking()
        .volumes
        .get(&name)
        .map_err(|_| ApiError::not_found(format!("get {name}: no such volume")))?;
    Ok(Json(shape(&v)))
}

async fn remove(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let engine = api.engine.blocking();
    engine
        .volumes
        .get(&name)
        .map_err(|_| ApiError::not_found(format!("get {name}: no such volume")))?;
    let users = engine.list()?;
    engine
        .volumes
        .remove(&name, &users, flag(&q, "force"))
        .map_err(|e| {
            if users.iter().any(|u| estiba_engine::volumes::uses(u, &name)) {
                ApiError::conflict(format!("remove {name}: volume is in use - {e}"))
            } else {
                ApiError::from(e)
            }
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(api): State<Arc<Api>>) -> ApiResult<Json<Value>> {
    let engine = api.engine.blocking();
    let users = engine.list()?;
    let mut deleted = Vec::new();
    for v in engine.volumes.list() {
        if engine.volumes.remove(&v.name, &users, false).is_ok() {
            deleted.push(v.name);
        }
    }
    Ok(Json(
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}
