//! The agent's own API, for the control plane only (bearer secret given at
//! join): `GET /v1/tasks/{task}/logs?container=&after=&wait=`, a task's
//! container logs from the engine, oldest first, after a token (the
//! nanosecond time of the last line already seen), waiting up to `wait`
//! seconds for a first new line.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use estiba_cluster::wire::{AgentError, LogEvent, LogEvents};
use estiba_engine::{AsyncEngine, LogsOptions};
use serde::Deserialize;

use crate::containers;

/// How often a waiting logs request reads the logs again.
const RECHECK: Duration = Duration::from_millis(250);

struct Api {
    engine: AsyncEngine,
    secret: String,
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    container: Option<String>,
    after: Option<String>,
    #[serde(default)]
    wait: u64,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(AgentError {
            message: message.into(),
        }),
    )
        .into_response()
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// The task's log lines after `after` (nanoseconds), oldest first, and
/// whether one of its containers still runs (and may write more).
async fn read(
    engine: &AsyncEngine,
    task: &str,
    only: Option<&str>,
    after: u128,
) -> estiba_engine::Result<(Vec<(u128, LogEvent)>, bool)> {
    let since = UNIX_EPOCH + Duration::from_nanos(u64::try_from(after).unwrap_or(u64::MAX));
    let mut out = Vec::new();
    let mut running = false;
    for r in engine.list().await? {
        let Some((t, name)) = containers::parse_name(&r.name) else {
            continue;
        };
        if t != task || only.is_some_and(|o| o != name) {
            continue;
        }
        running |= r.state.status == estiba_engine::Status::Running;
        let lines = engine
            .logs(
                &r.id,
                LogsOptions {
                    since: Some(since),
                    tail: None,
                },
            )
            .await?;
        for l in lines {
            let Ok(at) = humantime::parse_rfc3339_weak(&l.time) else {
                continue;
            };
            let n = nanos(at);
            if n > after {
                out.push((
                    n,
                    LogEvent {
                        timestamp: n as f64 / 1e9,
                        container: name.to_string(),
                        stream: l.stream,
                        message: l.log.trim_end_matches('\n').to_string(),
                    },
                ));
            }
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok((out, running))
}

async fn logs(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(task): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|s| estiba_os::constant_time_eq(s.as_bytes(), api.secret.as_bytes()));
    if !authorized {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the agent API is the control plane's",
        );
    }
    let after: u128 = match q.after.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "the nextToken is not valid"),
    };
    let deadline = Instant::now() + Duration::from_secs(q.wait.min(20));
    loop {
        let (found, running) = match read(&api.engine, &task, q.container.as_deref(), after).await {
            Ok(f) => f,
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        // Nothing runs that could write more: no reason to wait.
        if !found.is_empty() || !running || Instant::now() >= deadline {
            let last = found.last().map_or(after, |(n, _)| *n);
            return Json(LogEvents {
                events: found.into_iter().map(|(_, e)| e).collect(),
                next_token: Some(last.to_string()),
            })
            .into_response();
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, engine: AsyncEngine, secret: String) {
    let api = Arc::new(Api { engine, secret });
    let app = axum::Router::new()
        .route("/v1/tasks/{task}/logs", axum::routing::get(logs))
        .with_state(api);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the agent API stopped: {e}");
    }
}
