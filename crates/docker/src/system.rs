//! `_ping`, `version`, `info`, `events` and `system/df`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use estiba_events::{Filter, Start};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::query;
use crate::version::{API_VERSION, MIN_API_VERSION};
use crate::{stream, Api};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/system/df", get(df))
        .route("/auth", post(crate::registry::auth))
}

async fn ping() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
        ],
        "OK",
    )
        .into_response()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": {"Name": "estiba"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch(),
            "KernelVersion": kernel(),
        }}],
        "Version": v, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": arch(),
        "KernelVersion": kernel(), "BuildTime": "",
    }))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

async fn info(State(api): State<Arc<Api>>) -> ApiResult<Json<Value>> {
    let containers = api.engine.list().await?;
    let engine = api.engine.blocking();
    let images = engine.store.images()?.len();
    let count =
        |s: estiba_engine::Status| containers.iter().filter(|r| r.state.status == s).count();
    let running = count(estiba_engine::Status::Running);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut security = vec!["name=seccomp,profile=builtin".to_string()];
    if engine.host.rootless {
        security.push("name=rootless".into());
    }
    Ok(Json(json!({
        "ID": "estiba",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [],
        "DockerRootDir": engine.data,
        "MemTotal": mem_total(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "OperatingSystem": "estiba",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": kernel(),
        "Name": hostname.trim(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "SecurityOptions": security,
        "CgroupDriver": "cgroupfs",
        "LoggingDriver": "json-file",
        "Runtimes": {"runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "LiveRestoreEnabled": true,
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"], "Authorization": null},
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "Labels": [],
        "Warnings": [],
    })))
}

/// `since`/`until` as seconds since the epoch (or any form the journal's
/// filters read).
fn time_bound(q: &query::Query, key: &str) -> ApiResult<Option<std::time::SystemTime>> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            estiba_events::time::parse(v, std::time::SystemTime::now())
                .map_err(|e| ApiError::bad_request(format!("invalid value for {key}: {e}")))
        })
        .transpose()
}

async fn events(State(api): State<Arc<Api>>, Query(q): Query<query::Query>) -> ApiResult<Response> {
    let filters = query::filters(
        &q,
        &[
            "container",
            "event",
            "type",
            "image",
            "network",
            "volume",
            "label",
            "daemon",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
            "scope",
        ],
    )?;
    let mut filter = Filter::default();
    for (key, values) in &filters {
        if matches!(
            key.as_str(),
            "label" | "daemon" | "plugin" | "node" | "service" | "secret" | "config" | "scope"
        ) {
            continue;
        }
        for v in values {
            filter
                .add(&format!("{key}={v}"))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
    }
    filter.since = time_bound(&q, "since")?;
    filter.until = time_bound(&q, "until")?;
    let start = if filter.since.is_some() {
        Start::Beginning
    } else {
        Start::End
    };
    let mut rx = api.engine.events(filter, start)?;
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    tokio::spawn(async move {
        let _busy = busy;
        while let Some(e) = rx.recv().await {
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            // Clients before the typed fields read these.
            v["status"] = json!(e.action.name());
            v["id"] = json!(e.actor.id);
            if let Some(image) = e.attribute("image") {
                v["from"] = json!(image);
            }
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn df(State(api): State<Arc<Api>>) -> ApiResult<Json<Value>> {
    let engine = api.engine.blocking();
    let images: Vec<Value> = engine
        .store
        .images()?
        .iter()
        .map(|r| json!({"Id": r.id.to_string(), "RepoTags": r.names, "Size": r.size, "SharedSize": 0, "Containers": 0}))
        .collect();
    let containers: Vec<Value> = engine
        .list()?
        .iter()
        .map(|r| json!({"Id": r.id, "Names": [format!("/{}", r.name)], "Image": r.image, "SizeRw": 0, "State": estiba_engine::status_name(r.state.status)}))
        .collect();
    let volumes: Vec<Value> = engine
        .volumes
        .list()
        .iter()
        .map(|v| json!({"Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint, "UsageData": {"Size": -1, "RefCount": -1}}))
        .collect();
    Ok(Json(
        json!({"LayersSize": 0, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}),
    ))
}
