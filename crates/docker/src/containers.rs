//! `/containers/…`: list, create, inspect, start, stop, restart, kill,
//! wait, attach, logs, top, stats, remove and prune.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use estiba_engine::logs::LogLine;
use estiba_engine::{ContainerRecord, Status};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::query::{self, flag, number};
use crate::stream::{self, frame, LogFollower, Stream};
use crate::Api;

type S = State<Arc<Api>>;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route(
            "/containers/{id}/archive",
            get(crate::archive::get)
                .head(crate::archive::head)
                .put(crate::archive::put),
        )
        .route("/containers/{id}", delete(remove))
}

fn running(r: &ContainerRecord) -> bool {
    matches!(r.state.status, Status::Running | Status::Restarting)
}

/// One entry of `GET /containers/json`.
fn summary(api: &Api, r: &ContainerRecord) -> Value {
    let o = &r.options;
    let ports: Vec<Value> = if running(r) {
        api.engine
            .blocking()
            .ports_of(&r.id)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                json!({"IP": p.map.host_ip.to_string(), "PrivatePort": p.map.container_port,
                       "PublicPort": p.map.host_port, "Type": p.map.proto.as_str()})
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut command = o.entrypoint.iter().cloned().collect::<Vec<_>>();
    command.extend(o.command.iter().cloned());
    let networks: serde_json::Map<String, Value> = o
        .network
        .name()
        .into_iter()
        .map(str::to_string)
        .chain(o.extra_networks.iter().cloned())
        .map(|n| (n, json!({})))
        .collect();
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command.join(" "),
        "Created": query::unix_secs(Some(&r.created)),
        "Ports": ports,
        "Labels": o.labels,
        "State": estiba_engine::status_name(r.state.status),
        "Status": estiba_engine::status_text(r),
        "HostConfig": {"NetworkMode": o.network.as_str()},
        "NetworkSettings": {"Networks": networks},
        "Mounts": [],
    })
}

/// `status` filter: estiba's containers are never paused, removing or dead.
/// docker's `NetworkSettings.Ports`: `{"80/tcp": [{"HostIp", "HostPort"}]}`,
/// with the host ports really taken while the container runs.
fn published_ports(api: &Api, r: &ContainerRecord) -> Value {
    let mut out = serde_json::Map::new();
    let mut add = |port: u16, proto: &str, ip: String, host: u16| {
        if let Value::Array(list) = out
            .entry(format!("{port}/{proto}"))
            .or_insert_with(|| json!([]))
        {
            list.push(json!({"HostIp": ip, "HostPort": host.to_string()}));
        }
    };
    if running(r) {
        for p in api.engine.blocking().ports_of(&r.id).unwrap_or_default() {
            add(
                p.map.container_port,
                p.map.proto.as_str(),
                p.map.host_ip.to_string(),
                p.map.host_port,
            );
        }
    } else {
        for m in &r.options.publish {
            add(
                m.container_port,
                m.proto.as_str(),
                m.host_ip.to_string(),
                m.host_port,
            );
        }
    }
    Value::Object(out)
}

fn status_matches(r: &ContainerRecord, wanted: &str) -> bool {
    estiba_engine::status_name(r.state.status) == wanted
}

async fn list(State(api): S, Query(q): Query<query::Query>) -> ApiResult<Json<Vec<Value>>> {
    let filters = query::filters(
        &q,
        &["id", "name", "label", "status", "ancestor", "network"],
    )?;
    if let Some(bad) = filters.get("status").into_iter().flatten().find(|s| {
        ![
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ]
        .contains(&s.as_str())
    }) {
        return Err(ApiError::bad_request(format!(
            "invalid filter 'status={bad}'"
        )));
    }
    let all = flag(&q, "all") || filters.contains_key("status");
    // -1 (the Python SDK's default) or 0: no limit.
    let limit = number::<i64>(&q, "limit")?.and_then(|l| usize::try_from(l).ok());
    let records = api.engine.list().await?;
    let any = |key: &str, f: &dyn Fn(&str) -> bool| {
        filters.get(key).is_none_or(|v| v.iter().any(|x| f(x)))
    };
    let mut out = Vec::new();
    for r in records.iter().filter(|r| all || running(r)) {
        let keep = any("id", &|v| r.id.starts_with(v))
            && any("name", &|v| r.name.contains(v.trim_start_matches('/')))
            && any("status", &|v| status_matches(r, v))
            && any("ancestor", &|v| r.image == v || r.image_id.contains(v))
            && any("network", &|v| {
                r.options.network.as_str() == v || r.options.extra_networks.iter().any(|n| n == v)
            })
            && query::labels_match(filters.get("label"), &r.options.labels);
        if keep {
            out.push(summary(&api, r));
        }
        if limit.is_some_and(|l| l > 0 && out.len() >= l) {
            break;
        }
    }
    Ok(Json(out))
}

async fn create(State(api): S, Query(q): Query<query::Query>, body: Bytes) -> ApiResult<Response> {
    let name = q.get("name").filter(|n| !n.is_empty()).cloned();
    let request = crate::create::request(crate::create::parse(&body)?, name)?;
    let record = api.engine.create(request).await?;
    tracing::info!(container = %record.id, name = %record.name, "created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": record.id, "Warnings": []})),
    )
        .into_response())
}

async fn inspect(State(api): S, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r = api.engine.inspect(&id).await?;
    let mut v = api.engine.blocking().inspect_json(&r);
    v["Driver"] = json!("overlay2");
    v["Platform"] = json!("linux");
    v["Config"]["StdinOnce"] = json!(r.options.stdin_once);
    v["Config"]["AttachStdin"] = json!(false);
    v["Config"]["Env"] = json!(r.options.env);
    v["HostConfig"]["LogConfig"] = json!({"Type": "json-file", "Config": {}});
    v["NetworkSettings"]["Ports"] = published_ports(&api, &r);
    Ok(Json(v))
}

/// The container's terminal to `h` rows and `w` columns (the docker CLI
/// sends its own at attach and at each change).
async fn resize(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let (rows, cols) = query::window(&q)?;
    api.call(move |e| e.resize(&id, rows, cols)).await?;
    Ok(StatusCode::OK)
}

async fn pause(State(api): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.call(move |e| e.pause(&id))
        .await
        .map_err(not_paused_conflict)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(api): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.call(move |e| e.unpause(&id))
        .await
        .map_err(not_paused_conflict)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Docker answers 409 for pausing a paused (or unpausing a running)
/// container; a runtime that cannot freeze (rootless on cgroup v1) is a
/// 500 that says so.
fn not_paused_conflict(e: ApiError) -> ApiError {
    if e.message.contains("already paused") || e.message.contains("is not paused") {
        ApiError::conflict(e.message)
    } else {
        e
    }
}

async fn rename(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("give the new name (name=)"))?;
    api.call(move |e| e.rename(&id, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(State(api): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    api.engine.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout(q: &query::Query) -> ApiResult<Duration> {
    Ok(Duration::from_secs(number::<u64>(q, "t")?.unwrap_or(10)))
}

async fn stop(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let r = api.engine.inspect(&id).await?;
    if !running(&r) {
        return Err(ApiError::new(StatusCode::NOT_MODIFIED, "already stopped"));
    }
    api.engine.stop(&r.id, timeout(&q)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let r = api.engine.inspect(&id).await?;
    let t = timeout(&q)?;
    api.call(move |e| e.restart(&r.id, t)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map_or("SIGKILL", String::as_str);
    let signal =
        estiba_engine::parse_signal(signal).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let r = api.engine.inspect(&id).await?;
    if !running(&r) {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            r.id
        )));
    }
    api.engine.kill(&r.id, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<StatusCode> {
    let r = api.engine.inspect(&id).await?;
    if running(&r) && !flag(&q, "force") {
        return Err(ApiError::conflict(format!(
            "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
            r.id
        )));
    }
    api.engine.remove(&r.id, flag(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(api): S) -> ApiResult<Json<Value>> {
    let mut deleted = Vec::new();
    for r in api.engine.list().await? {
        let stopped = r.state.status == Status::Exited;
        if stopped && api.engine.remove(&r.id, false).await.is_ok() {
            deleted.push(r.id);
        }
    }
    Ok(Json(
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `condition`: `not-running` (the default), `next-exit` or `removed`.
/// The headers go out once the wait is registered (the docker CLI starts
/// the container only then); the body follows at the exit.
async fn wait(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    let condition = q
        .get("condition")
        .map_or("not-running", String::as_str)
        .to_string();
    if !["not-running", "next-exit", "removed", ""].contains(&condition.as_str()) {
        return Err(ApiError::bad_request(format!(
            "invalid condition: {condition:?}"
        )));
    }
    let mut exits = api.exits(&id)?;
    let r = api.engine.inspect(&id).await?;
    let done = |code: i32| Json(json!({"StatusCode": code, "Error": null})).into_response();
    if matches!(condition.as_str(), "not-running" | "") && !running(&r) {
        return Ok(done(r.state.exit_code));
    }
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    tokio::spawn(async move {
        let _busy = busy;
        let mut code = r.state.exit_code;
        while let Some(e) = exits.recv().await {
            if let Some(c) = e.attribute("exitCode").and_then(|c| c.parse().ok()) {
                code = c;
            }
            let finished = match condition.as_str() {
                "removed" => e.action == estiba_events::Action::Destroy,
                _ => true,
            };
            if finished {
                break;
            }
        }
        let _ = tx
            .send(
                json!({"StatusCode": code, "Error": null})
                    .to_string()
                    .into_bytes(),
            )
            .await;
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default())
}

/// Which streams to send, and how each line becomes bytes.
fn renderer(q: &query::Query, tty: bool, timestamps: bool) -> impl Fn(LogLine) -> Option<Vec<u8>> {
    let (stdout, stderr) = (flag(q, "stdout"), flag(q, "stderr"));
    move |line: LogLine| {
        let stream = Stream::of(&line);
        let wanted = match stream {
            Stream::Stdout => stdout,
            Stream::Stderr => stderr,
        };
        wanted.then(|| {
            let text = if timestamps {
                format!("{} {}", line.time, line.log)
            } else {
                line.log
            };
            frame(stream, text.as_bytes(), tty)
        })
    }
}

/// `attach`: the output from now on, and (with `stdin=1` on an
/// interactive container) the client's input into the container's stdin,
/// over the connection the client hands over.
async fn attach(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
    req: Request,
) -> ApiResult<Response> {
    let exits = api.exits(&id)?;
    let r = api.engine.inspect(&id).await?;
    let follower = LogFollower::at_end(api.engine.blocking().log_path(&r.id));
    // With a terminal, what is written goes to the container's monitor,
    // which types it into the terminal.
    let stdin = if flag(&q, "stdin") && r.options.interactive {
        Some(api.engine.blocking().attach_stdin(&r.id)?)
    } else {
        None
    };
    let tty = r.options.tty;
    let render = renderer(&q, tty, false);
    let busy = api.activity.busy();
    let api = Arc::clone(&api);
    Ok(stream::hijack(req, tty, move |conn| async move {
        let _busy = busy;
        let (read, mut write) = tokio::io::split(conn);
        if let Some(fifo) = stdin {
            tokio::spawn(pump_stdin(
                read,
                fifo,
                api,
                r.id.clone(),
                r.state.started_at.clone(),
            ));
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let writer = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        stream::follow_until_exit(follower, exits, render, &tx).await;
        drop(tx);
        let _ = writer.await;
    }))
}

/// Copies the client's input into the container's stdin FIFO. At the
/// client's end of input the FIFO is closed, but only once the container
/// holds its own end: closing the last descriptor of a FIFO drops what
/// is still in it.
async fn pump_stdin(
    mut read: tokio::io::ReadHalf<stream::Upgraded>,
    fifo: std::fs::File,
    api: Arc<Api>,
    id: String,
    started_before: Option<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut fifo = fifo;
        for chunk in rx {
            if fifo.write_all(&chunk).is_err() {
                break;
            }
        }
        fifo
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let fifo = writer.await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        match api.engine.inspect(&id).await {
            Ok(r) if running(&r) || r.state.started_at != started_before => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => break,
        }
    }
    drop(fifo);
}

/// `since`/`until` as the API gives them: seconds since the epoch, with
/// an optional fraction.
fn epoch(q: &query::Query, key: &str) -> ApiResult<Option<SystemTime>> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let secs: f64 = v
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))?;
    Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0))))
}

async fn logs(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    if !flag(&q, "stdout") && !flag(&q, "stderr") {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let (since, until) = (epoch(&q, "since")?, epoch(&q, "until")?);
    let tail: Option<usize> = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => Some(
            n.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid value for tail: {n:?}")))?,
        ),
    };
    let exits = api.exits(&id)?;
    let r = api.engine.inspect(&id).await?;
    let follow = flag(&q, "follow") && running(&r) && until.is_none();
    let (mut lines, follower) = LogFollower::everything(api.engine.blocking().log_path(&r.id));
    let at = |l: &LogLine| humantime::parse_rfc3339_weak(&l.time).ok();
    lines.retain(|l| {
        since.is_none_or(|s| at(l).is_some_and(|t| t >= s))
            && until.is_none_or(|u| at(l).is_some_and(|t| t <= u))
    });
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let render = renderer(&q, r.options.tty, flag(&q, "timestamps"));
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    tokio::spawn(async move {
        let _busy = busy;
        for line in lines {
            if let Some(bytes) = render(line) {
                if tx.send(bytes).await.is_err() {
                    return;
                }
            }
        }
        if follow {
            stream::follow_until_exit(follower, exits, render, &tx).await;
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, stream::content_type(r.options.tty))
        .body(body)
        .unwrap_or_default())
}

async fn top(State(api): S, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r = api.engine.inspect(&id).await?;
    if !running(&r) {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            r.id
        )));
    }
    let processes: Vec<Value> = estiba_engine::stats::processes(&r)
        .into_iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("?")
                    .to_string()
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            json!([field("Uid:"), pid.to_string(), field("PPid:"), cmd])
        })
        .collect();
    Ok(Json(
        json!({"Titles": ["UID", "PID", "PPID", "CMD"], "Processes": processes}),
    ))
}

/// Docker's stats shape from one sample: the CLI's CPU percentage is
/// cpu delta / system delta × CPUs × 100, so the sample is written as
/// that ratio over one CPU and one second.
fn stats_json(r: &ContainerRecord, u: &estiba_engine::stats::Usage) -> Value {
    let now = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let cpu = u.cpu_percent.unwrap_or(0.0) / 100.0 * 1e9;
    json!({
        "read": now, "preread": now, "id": r.id, "name": format!("/{}", r.name),
        "cpu_stats": {"cpu_usage": {"total_usage": cpu as u64}, "system_cpu_usage": 1_000_000_000u64, "online_cpus": 1},
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 1},
        "memory_stats": {"usage": u.memory.unwrap_or(0), "limit": u.memory_limit.unwrap_or(0), "stats": {}},
        "pids_stats": {"current": u.pids.unwrap_or(0)},
        "blkio_stats": {}, "networks": {},
    })
}

async fn stats(
    State(api): S,
    Path(id): Path<String>,
    Query(q): Query<query::Query>,
) -> ApiResult<Response> {
    let r = api.engine.inspect(&id).await?;
    let one = q.get("stream").is_some_and(|v| v == "0" || v == "false") || flag(&q, "one-shot");
    let sample = |api: Arc<Api>, r: ContainerRecord| async move {
        let usage = if running(&r) {
            api.engine
                .stats(&r.id, Duration::from_millis(500))
                .await
                .unwrap_or_default()
        } else {
            Default::default()
        };
        stats_json(&r, &usage)
    };
    if one {
        return Ok(Json(sample(Arc::clone(&api), r).await).into_response());
    }
    let (tx, body) = stream::channel_body();
    let busy = api.activity.busy();
    tokio::spawn(async move {
        let _busy = busy;
        loop {
            let Ok(r) = api.engine.inspect(&r.id).await else {
                return;
            };
            let mut line = sample(Arc::clone(&api), r).await.to_string().into_bytes();
            line.push(b'\n');
            if tx.send(line).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default())
}
