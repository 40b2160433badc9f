//! The agent API (see `wire.rs`): join, heartbeat, a long poll of the
//! node's assignments, and task reports. Join tokens and node credentials
//! are kept as SHA-256 hashes; a node's connection is a key on a lease of
//! three heartbeat intervals, so an agent that misses three is
//! disconnected by the store itself.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use estiba_state::{EventKind, Op, Store, Txn};
use serde::Deserialize;
use serde_json::Value;

use super::{tasks, Server};
use crate::leader::Fence;
use crate::model::{
    encode, matches_digest, sha256_hex, ClusterRecord, ClusterStatus, JoinTokenRecord, NodeRecord,
};
use crate::task::{InstanceRecord, InstanceStatus, Status, TaskRecord};
use crate::view::News;
use crate::wire::{
    AgentError, Assignments, Heartbeat, HeartbeatReply, NodeUsage, RegisterRequest as Register,
    Registered, Report, TaskSecrets,
};
use crate::{keys, time, Error, Result};

/// How long a poll waits for a change before it answers "none".
const POLL: Duration = Duration::from_secs(25);

/// How long a poll waits, once a change came, for the rest of its burst.
const BURST: Duration = Duration::from_millis(20);

pub fn router() -> axum::Router<Arc<Server>> {
    axum::Router::new()
        .route("/register", axum::routing::post(register))
        .route("/heartbeat", axum::routing::post(heartbeat))
        .route("/assignments", axum::routing::get(assignments))
        .route("/report", axum::routing::post(report))
        .route("/secrets", axum::routing::get(secrets))
}

/// A refusal of the agent API.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(AgentError { message: self.1 })).into_response()
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        tracing::error!("agent API: {e}");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<estiba_state::Error> for Refusal {
    fn from(e: estiba_state::Error) -> Refusal {
        Error::from(e).into()
    }
}

fn unauthorized(why: &str) -> Refusal {
    Refusal(StatusCode::UNAUTHORIZED, why.into())
}

/// Splits `<id>.<secret>`.
fn split_secret(s: &str) -> Option<(&str, &str)> {
    s.split_once('.')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// Creates a join token valid for `ttl`: `<id>.<secret>`.
pub async fn create_token(server: &Server, ttl: Duration) -> Result<String> {
    new_token(server, ttl, false).await
}

/// A join token for the built-in FARGATE capacity only.
pub async fn create_fargate_token(server: &Server, ttl: Duration) -> Result<String> {
    new_token(server, ttl, true).await
}

async fn new_token(server: &Server, ttl: Duration, fargate: bool) -> Result<String> {
    let id = estiba_os::random_hex(8);
    let secret = estiba_os::random_hex(24);
    let lease = server.db.store.grant(ttl).await?;
    let record = JoinTokenRecord {
        secret_sha256: sha256_hex(&secret),
        expires_at: (time::now() as u64) + ttl.as_secs(),
        fargate,
    };
    let put = Op::Put {
        key: keys::join_token(&id).into_bytes(),
        value: encode(&record),
        lease: Some(lease),
    };
    server.db.commit(Txn::default().and_then(vec![put])).await?;
    Ok(format!("{id}.{secret}"))
}

/// The node a request's bearer credential names.
async fn node_of(server: &Server, headers: &HeaderMap) -> Result<(String, NodeRecord), Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the agent API needs the node's credential"))?;
    let (id, secret) = split_secret(bearer).ok_or_else(|| unauthorized("malformed credential"))?;
    let node = server.db.get::<NodeRecord>(&keys::node(id)).await?;
    match node {
        Some(n) if matches_digest(secret, &n.value.secret_sha256) => Ok((id.to_string(), n.value)),
        _ => Err(unauthorized("unknown node credential")),
    }
}

/// Makes sure the cluster exists: the agent's default cluster is created
/// on first join, as ECS's agent does; any other must exist.
async fn join_cluster(server: &Server, name: &str) -> Result<(), Refusal> {
    let key = keys::cluster(name);
    match server.db.get::<ClusterRecord>(&key).await? {
        Some(c) if c.value.status == ClusterStatus::Active => Ok(()),
        None if name == "default" => {
            let record = ClusterRecord {
                name: name.into(),
                status: ClusterStatus::Active,
                created_at: time::now(),
            };
            server.db.swap(&key, 0, &record).await?;
            Ok(())
        }
        _ => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("cluster {name} not found"),
        )),
    }
}

async fn register(
    State(server): State<Arc<Server>>,
    Json(req): Json<Register>,
) -> Result<Json<Registered>, Refusal> {
    let (token_id, secret) =
        split_secret(&req.token).ok_or_else(|| unauthorized("malformed join token"))?;
    let token = server
        .db
        .get::<JoinTokenRecord>(&keys::join_token(token_id))
        .await?;
    let Some(token) = token.filter(|t| matches_digest(secret, &t.value.secret_sha256)) else {
        return Err(unauthorized("unknown or expired join token"));
    };
    // The built-in capacity and the clusters' nodes never join each other.
    let fargate = req.cluster == keys::FARGATE_POOL;
    match (fargate, token.value.fargate) {
        (false, false) => join_cluster(&server, &req.cluster).await?,
        (true, true) => {}
        (true, false) => {
            return Err(unauthorized(
                "only the control plane's own FARGATE capacity joins that pool",
            ))
        }
        (false, true) => {
            return Err(unauthorized(
                "this join token is for the built-in FARGATE capacity only",
            ))
        }
    }
    let id = estiba_os::random_hex(16);
    let credential_secret = estiba_os::random_hex(24);
    let lease = server.db.store.grant(server.settings.heartbeat * 3).await?;
    let instance = InstanceRecord {
        id: id.clone(),
        cluster: req.cluster.clone(),
        hostname: req.hostname,
        address: req.address,
        status: InstanceStatus::Active,
        agent_version: req.agent_version,
        remaining: req.resources.clone(),
        registered: req.resources,
        attributes: req.attributes,
        registered_at: time::now(),
        version: 1,
        warnings: req.warnings,
    };
    let api_secret = match &req.api {
        Some(api) => Some(
            server
                .sealer
                .seal(&keys::node(&id), api.secret.as_bytes())?,
        ),
        None => None,
    };
    let node = NodeRecord {
        cluster: req.cluster.clone(),
        secret_sha256: sha256_hex(&credential_secret),
        lease,
        api_address: req.api.as_ref().map(|a| a.address.clone()),
        api_secret,
    };
    let txn = Txn::default().and_then(vec![
        Op::put(keys::instance(&req.cluster, &id), encode(&instance)),
        Op::put(keys::node(&id), encode(&node)),
        Op::Put {
            key: keys::connected(&id).into_bytes(),
            value: b"1".to_vec(),
            lease: Some(lease),
        },
    ]);
    server.db.commit(txn).await?;
    tracing::info!(instance = %id, cluster = %req.cluster, "a node joined");
    Ok(Json(Registered {
        instance_arn: server.arn(format!("container-instance/{}/{id}", req.cluster)),
        instance_id: id.clone(),
        cluster: req.cluster,
        credential: format!("{id}.{credential_secret}"),
        heartbeat_seconds: server.settings.heartbeat.as_secs().max(1),
    }))
}

async fn heartbeat(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    beat: Option<Json<Heartbeat>>,
) -> Result<Json<HeartbeatReply>, Refusal> {
    let (id, node) = node_of(&server, &headers).await?;
    let beat = beat.map(|Json(b)| b).unwrap_or_default();
    if let Some(address) = &beat.api_address {
        if node.api_address.as_deref() != Some(address.as_str()) {
            moved(&server, &id, address).await?;
        }
    }
    let store = &server.db.store;
    let mut lease = node.lease;
    match store.keep_alive(node.lease).await {
        Ok(()) => {}
        Err(estiba_state::Error::NoSuchLease(_)) => {
            // Back after being disconnected: a new lease, connected again.
            lease = store.grant(server.settings.heartbeat * 3).await?;
            let renewed = NodeRecord { lease, ..node };
            let txn = Txn::default().and_then(vec![
                Op::put(keys::node(&id), encode(&renewed)),
                Op::Put {
                    key: keys::connected(&id).into_bytes(),
                    value: b"1".to_vec(),
                    lease: Some(lease),
                },
            ]);
            server.db.commit(txn).await?;
            tracing::info!(instance = %id, "a node reconnected");
        }
        Err(e) => return Err(e.into()),
    }
    if !beat.usage.is_empty() {
        // Only the node's own tasks are believed.
        let usage = NodeUsage {
            at: time::now(),
            tasks: beat.usage,
        };
        let put = Op::Put {
            key: keys::usage(&id).into_bytes(),
            value: encode(&usage),
            lease: Some(lease),
        };
        server.db.commit(Txn::default().and_then(vec![put])).await?;
    }
    Ok(Json(HeartbeatReply {
        heartbeat_seconds: server.settings.heartbeat.as_secs().max(1),
    }))
}

/// Records where a node's agent API listens now.
async fn moved(server: &Server, id: &str, address: &str) -> Result<()> {
    let key = keys::node(id);
    loop {
        let Some(n) = server.db.get::<NodeRecord>(&key).await? else {
            return Ok(());
        };
        let record = NodeRecord {
            api_address: Some(address.to_string()),
            ..n.value
        };
        if server.db.swap(&key, n.mod_revision, &record).await? {
            tracing::info!(instance = %id, %address, "the agent's API moved");
            return Ok(());
        }
    }
}

#[derive(Debug, Deserialize)]
struct Poll {
    #[serde(default)]
    after: i64,
}

/// The task records of a node's news. One read each: the record may be
/// newer than the news, never older.
async fn answer(server: &Server, news: News) -> Result<Assignments> {
    let mut tasks = Vec::with_capacity(news.tasks.len());
    for key in &news.tasks {
        if let Some(t) = server.db.get::<TaskRecord>(key).await? {
            tasks.push(t.value);
        }
    }
    Ok(Assignments {
        revision: news.revision,
        tasks,
        removed: news.removed,
        full: news.full,
    })
}

/// A node's tasks, from the view of live tasks (`view.rs`): the whole set
/// when `after` is 0, else what its agent has to hear of since `after` —
/// tasks placed on it, asked to stop, or gone. Waits up to [`POLL`] for a
/// change; a burst of changes is answered together.
async fn assignments(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(poll): Query<Poll>,
) -> Result<Json<Assignments>, Refusal> {
    let (id, _) = node_of(&server, &headers).await?;
    let mut after = poll.after.max(0);
    // A revision past the store's own: the state moved to another store
    // (`cluster migrate`), whose revisions start again; the agent gets the
    // whole set and the new store's revision.
    if after > server.db.store.revision().await? {
        after = 0;
    }
    let view = &server.view;
    let waiter = view.waiter(&id);
    let start = tokio::time::Instant::now();
    loop {
        // Enabled before the view is asked, so no news slips between.
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let waited = start.elapsed();
        let Some(mut news) = view.news(&id, after) else {
            // This replica's view is still loading, or behind the one the
            // agent polled last. It waits: a whole set from behind would
            // leave out tasks the agent already runs, and it would stop
            // them. Past the poll the agent asks again, perhaps elsewhere.
            if waited >= POLL {
                return Err(Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the control plane's view of its tasks is still catching up".into(),
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            continue;
        };
        if news.is_empty() && waited < POLL {
            let _ = tokio::time::timeout(POLL - waited, notified).await;
            continue;
        }
        if !news.full && !news.is_empty() {
            // The rest of a burst comes right after its first change.
            tokio::time::sleep(BURST).await;
            news = view.news(&id, after).unwrap_or(news);
        }
        return Ok(Json(answer(&server, news).await?));
    }
}

#[derive(Debug, Deserialize)]
struct SecretsOf {
    cluster: String,
    task: String,
}

/// A task's secrets, for the agent of the node it is placed on, while it
/// is not stopped.
async fn secrets(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(of): Query<SecretsOf>,
) -> Result<Json<TaskSecrets>, Refusal> {
    let (id, _) = node_of(&server, &headers).await?;
    let task = server
        .db
        .get::<TaskRecord>(&keys::task(&of.cluster, &of.task))
        .await?
        .map(|t| t.value)
        .filter(|t| t.instance.as_deref() == Some(id.as_str()) && t.last_status != Status::Stopped)
        .ok_or_else(|| {
            Refusal(
                StatusCode::FORBIDDEN,
                "the task is not running on this node".into(),
            )
        })?;
    match crate::secrets::for_task(&server.db, &server.sealer, &task).await? {
        Ok(secrets) => {
            tracing::info!(task = %task.id, instance = %id, "secrets handed to the task's agent");
            Ok(Json(secrets))
        }
        Err(missing) => Err(Refusal(StatusCode::NOT_FOUND, missing)),
    }
}

async fn report(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Json(report): Json<Report>,
) -> Result<StatusCode, Refusal> {
    let (id, node) = node_of(&server, &headers).await?;
    // The built-in FARGATE capacity runs tasks of every cluster; either
    // way the task must be placed on this very node (apply_report checks).
    if node.cluster != keys::FARGATE_POOL && node.cluster != report.cluster {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "the task is not in this node's cluster".into(),
        ));
    }
    match tasks::apply_report(&server, &id, &report).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("task {} is not assigned to this node", report.task),
        )),
    }
}

/// Watches for nodes whose connection lease ended, and once a node has
/// stayed away for the grace period, stops its tasks. Runs while this
/// replica leads; a failed watch is started again.
pub async fn watch_lost(server: Arc<Server>, fence: Fence) {
    loop {
        if let Err(e) = watch_lost_once(&server, fence).await {
            tracing::warn!("watching node connections: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn watch_lost_once(server: &Arc<Server>, fence: Fence) -> Result<()> {
    let mut watch = server.db.watch_from_now(keys::CONNECTED).await?;
    let connected = server.db.connected().await?;
    // Nodes already away when the watch begins (after a restart, say).
    for (_, i) in server.db.list::<InstanceRecord>(keys::INSTANCES).await? {
        if !connected.contains(&i.id) {
            schedule_loss(Arc::clone(server), i.id, fence);
        }
    }
    while let Some(event) = watch.next().await {
        let event = event?;
        if event.kind == EventKind::Delete {
            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
            tracing::warn!(instance = %tasks::id_of(&key), "a node disconnected");
            schedule_loss(Arc::clone(server), tasks::id_of(&key).to_string(), fence);
        }
    }
    Ok(())
}

fn schedule_loss(server: Arc<Server>, instance: String, fence: Fence) {
    tokio::spawn(async move {
        tokio::time::sleep(server.settings.lost_grace).await;
        let back = server.db.get::<Value>(&keys::connected(&instance)).await;
        if let Ok(None) = back {
            match tasks::lose_node(&server, &instance, Some(fence)).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(%instance, tasks = n, "node lost: its tasks are STOPPED"),
                Err(e) => tracing::error!(%instance, "stopping a lost node's tasks: {e}"),
            }
        }
    });
}
