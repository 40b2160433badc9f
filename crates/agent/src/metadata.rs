//! The task metadata endpoint v4 (and v3, its older name), as ECS's agent
//! serves it.
//!
//! Each container gets `ECS_CONTAINER_METADATA_URI_V4` and
//! `ECS_CONTAINER_METADATA_URI`: `http://169.254.170.2/v4/<token>`. A DNAT
//! rule in the task's network namespace takes 169.254.170.2:80 to this
//! server, which listens on the gateway of the node's task network (in the
//! rootless hub when rootless). The token names one container of one task
//! and is derived from the node's secret, so it survives an agent restart.
//! A request must also come from its task's own address: a container sees
//! only its own task. Host-mode tasks, which have no namespace to redirect
//! in, get the gateway's address in their URI.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use estiba_cluster::task::{ContainerState, Health, LaunchType, Status, TaskRecord};
use estiba_cluster::wire::Report;
use estiba_ecs::taskdef::NetworkMode;
use estiba_engine::{AsyncEngine, ContainerRecord};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::containers::BRIDGE_NETWORK;
use crate::{Error, Result};

/// Where tasks reach their metadata, as on ECS.
pub const ENDPOINT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 170, 2), 80);
/// The port the server listens on at the task network's gateway (ECS's
/// agent listens on 51679 behind the same kind of redirect).
pub const PORT: u16 = 51679;

/// What the endpoint knows of a task: its record, as last reported.
#[derive(Clone, Debug)]
struct Known {
    task: TaskRecord,
    containers: Vec<ContainerState>,
    /// awsvpc: the pod's address.
    address: Option<Ipv4Addr>,
}

/// The tasks on this node, shared by the runners (which update it with
/// every report) and the server.
pub struct Registry {
    secret: String,
    /// `arn:aws:ecs:REGION:ACCOUNT:`, from the node's own ARN.
    arn_prefix: String,
    /// Where the server listens (None: not serving).
    listening: RwLock<Option<SocketAddrV4>>,
    tasks: RwLock<HashMap<String, Known>>,
}

impl Registry {
    pub fn new(secret: &str, instance_arn: &str) -> Registry {
        let arn_prefix = instance_arn.split_once(":container-instance/").map_or_else(
            || "arn:aws:ecs:us-east-1:000000000000".into(),
            |(p, _)| p.to_string(),
        );
        Registry {
            secret: secret.to_string(),
            arn_prefix: format!("{arn_prefix}:"),
            listening: RwLock::new(None),
            tasks: RwLock::new(HashMap::new()),
        }
    }

    /// The token of one container: unguessable without the node's secret.
    pub fn token(&self, task: &str, container: &str) -> String {
        let digest = Sha256::digest(format!("{}/{task}/{container}", self.secret));
        hex_of(&digest[..16])
    }

    /// The environment and redirect a container of `task` is created with
    /// (none while the server is not listening).
    pub fn wiring(
        &self,
        task: &TaskRecord,
        container: &str,
    ) -> Option<(Vec<String>, Option<estiba_net::redirect::Redirect>)> {
        let listening = (*self.listening.read().ok()?)?;
        let token = self.token(&task.id, container);
        let (host, redirect) = match task.definition.network() {
            NetworkMode::Host => (listening.to_string(), None),
            _ => (
                ENDPOINT.ip().to_string(),
                Some(estiba_net::redirect::Redirect {
                    from: ENDPOINT,
                    to: listening,
                }),
            ),
        };
        let env = vec![
            format!("ECS_CONTAINER_METADATA_URI_V4=http://{host}/v4/{token}"),
            format!("ECS_CONTAINER_METADATA_URI=http://{host}/v3/{token}"),
        ];
        Some((env, redirect))
    }

    /// The redirect for an awsvpc task's pod (its containers share it).
    pub fn pod_redirect(&self) -> Option<estiba_net::redirect::Redirect> {
        let listening = (*self.listening.read().ok()?)?;
        Some(estiba_net::redirect::Redirect {
            from: ENDPOINT,
            to: listening,
        })
    }

    /// Records a task's state as the runner reports it.
    pub fn update(&self, task: &TaskRecord, report: &Report) {
        let mut task = task.clone();
        task.last_status = report.last_status;
        task.pull_started_at = report.pull_started_at;
        task.pull_stopped_at = report.pull_stopped_at;
        if let Ok(mut tasks) = self.tasks.write() {
            tasks.insert(
                task.id.clone(),
                Known {
                    task,
                    containers: report.containers.clone(),
                    address: report.private_ipv4,
                },
            );
        }
    }

    /// Forgets a stopped task.
    pub fn forget(&self, task: &str) {
        if let Ok(mut tasks) = self.tasks.write() {
            tasks.remove(task);
        }
    }

    /// The task and container a token names.
    fn find(&self, token: &str) -> Option<(Known, String)> {
        let tasks = self.tasks.read().ok()?;
        tasks.values().find_map(|k| {
            k.task
                .definition
                .container_definitions
                .iter()
                .find(|d| {
                    estiba_os::constant_time_eq(
                        self.token(&k.task.id, &d.name).as_bytes(),
                        token.as_bytes(),
                    )
                })
                .map(|d| (k.clone(), d.name.clone()))
        })
    }

    fn task_arn(&self, t: &TaskRecord) -> String {
        format!("{}task/{}/{}", self.arn_prefix, t.cluster, t.id)
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Server {
    registry: Arc<Registry>,
    engine: AsyncEngine,
}

/// Keeps the task network up, binds the server on its gateway (inside the
/// rootless hub when rootless), and serves it in the background. Tasks
/// created before this returns get no metadata wiring.
pub async fn start(registry: Arc<Registry>, engine: AsyncEngine) -> Result<()> {
    keep_network_up(&engine).await?;
    let listener = bind(&engine).await?;
    let local = match listener.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        Ok(other) => {
            return Err(Error::Invalid(format!(
                "metadata endpoint bound on {other}"
            )))
        }
        Err(e) => return Err(Error::Invalid(format!("metadata endpoint: {e}"))),
    };
    if let Ok(mut l) = registry.listening.write() {
        *l = Some(local);
    }
    tracing::info!(address = %local, "serving the task metadata endpoint");
    let app = axum::Router::new()
        .route("/v4/{token}", axum::routing::get(container))
        .route("/v3/{token}", axum::routing::get(container))
        .route("/v4/{token}/task", axum::routing::get(task))
        .route("/v3/{token}/task", axum::routing::get(task))
        .route("/v4/{token}/stats", axum::routing::get(container_stats))
        .route("/v3/{token}/stats", axum::routing::get(container_stats))
        .route("/v4/{token}/task/stats", axum::routing::get(task_stats))
        .route("/v3/{token}/task/stats", axum::routing::get(task_stats))
        .with_state(Arc::new(Server { registry, engine }));
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
        if let Err(e) = served {
            tracing::error!("the task metadata endpoint: {e}");
        }
    });
    Ok(())
}

/// The pod that holds the agent's own address on the task network: while
/// it runs, the network's bridge (and, rootless, the hub it lives in) stay
/// up, so the gateway the server listens on never goes away.
pub const KEEPER_POD: &str = "ecs-agent-metadata";

async fn keep_network_up(engine: &AsyncEngine) -> Result<()> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let e = engine.blocking();
        match e.find_pod(KEEPER_POD) {
            Ok(p) if p.running() => Ok(()),
            Ok(_) => e.pod_start(KEEPER_POD).map(drop),
            Err(_) => {
                let network = estiba_engine::CreateOptions {
                    network: estiba_engine::NetworkMode::Named(BRIDGE_NETWORK.to_string()),
                    ..estiba_engine::CreateOptions::default()
                };
                e.pod_create(Some(KEEPER_POD), None, false, network)
                    .map(drop)
            }
        }
    })
    .await
    .map_err(|e| Error::Invalid(format!("the metadata endpoint's pod: {e}")))?
    .map_err(Error::Engine)
}

/// A listener on the gateway of the task network, made in the namespace
/// where that network's bridge is.
async fn bind(engine: &AsyncEngine) -> Result<tokio::net::TcpListener> {
    let engine = engine.clone();
    let std_listener = tokio::task::spawn_blocking(move || -> Result<std::net::TcpListener> {
        let networks = engine.blocking().networks()?;
        let net = networks
            .list()?
            .into_iter()
            .find(|n| n.name == BRIDGE_NETWORK)
            .ok_or_else(|| Error::Invalid(format!("no network {BRIDGE_NETWORK}")))?;
        let addr = SocketAddrV4::new(net.gateway, PORT);
        let hub = networks.host().hub();
        let listener = estiba_net::netns::within(hub.as_deref(), || {
            std::net::TcpListener::bind(addr).map_err(|e| estiba_net::Error::Invalid {
                what: "metadata endpoint",
                value: addr.to_string(),
                why: e.to_string(),
            })
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Invalid(format!("metadata endpoint: {e}")))?;
        Ok(listener)
    })
    .await
    .map_err(|e| Error::Invalid(format!("metadata endpoint: {e}")))??;
    tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| Error::Invalid(format!("metadata endpoint: {e}")))
}

/// A refusal, in the plain shape ECS's agent answers with.
fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({"message": why}))).into_response()
}

/// What a request may see: its token's task, if it comes from that task.
async fn authorize(
    server: &Server,
    token: &str,
    from: SocketAddr,
) -> std::result::Result<(Known, String, Vec<ContainerRecord>), Response> {
    let Some((known, name)) = server.registry.find(token) else {
        return Err(refuse(StatusCode::NOT_FOUND, "unknown metadata token"));
    };
    let records = records_of(&server.engine, &known).await;
    let from = match from.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => return Err(refuse(StatusCode::FORBIDDEN, "IPv4 only")),
    };
    let own = match known.task.definition.network() {
        NetworkMode::Host => true,
        NetworkMode::Awsvpc => known.address == Some(from),
        _ => {
            let ips = addresses(&server.engine).await;
            ips.get(&from)
                .is_some_and(|owner| records.iter().any(|r| &r.id == owner))
        }
    };
    if !own {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "this token belongs to another task's container",
        ));
    }
    Ok((known, name, records))
}

async fn container(
    State(server): State<Arc<Server>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    match authorize(&server, &token, from).await {
        Ok((known, name, records)) => {
            let ips = addresses(&server.engine).await;
            let c = known.containers.iter().find(|c| c.name == name);
            Json(container_view(
                &server.registry,
                &known,
                &name,
                c,
                &records,
                &ips,
            ))
            .into_response()
        }
        Err(refused) => refused,
    }
}

async fn task(
    State(server): State<Arc<Server>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    match authorize(&server, &token, from).await {
        Ok((known, _, records)) => {
            let ips = addresses(&server.engine).await;
            Json(task_view(&server.registry, &known, &records, &ips)).into_response()
        }
        Err(refused) => refused,
    }
}

async fn container_stats(
    State(server): State<Arc<Server>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    match authorize(&server, &token, from).await {
        Ok((known, name, records)) => {
            let wanted = crate::containers::name(&known.task.id, &name);
            match records.iter().find(|r| r.name == wanted) {
                Some(r) => Json(stats(&server.engine, r).await).into_response(),
                None => refuse(StatusCode::NOT_FOUND, "the container is not created yet"),
            }
        }
        Err(refused) => refused,
    }
}

async fn task_stats(
    State(server): State<Arc<Server>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    match authorize(&server, &token, from).await {
        Ok((_, _, records)) => {
            let mut all = serde_json::Map::new();
            for r in &records {
                all.insert(r.id.clone(), stats(&server.engine, r).await);
            }
            Json(Value::Object(all)).into_response()
        }
        Err(refused) => refused,
    }
}

/// The engine records of a task's containers.
async fn records_of(engine: &AsyncEngine, known: &Known) -> Vec<ContainerRecord> {
    let prefix = format!("ecs-{}-", known.task.id);
    engine
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.name.starts_with(&prefix))
        .collect()
}

/// Address → holder on the node's task network.
pub(crate) async fn addresses(engine: &AsyncEngine) -> HashMap<Ipv4Addr, String> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        engine
            .blocking()
            .networks()
            .ok()
            .and_then(|n| n.leases(BRIDGE_NETWORK).all().ok())
            .map(|all| all.into_iter().collect())
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

/// Docker's stats shape, as ECS's agent passes it on: the fields estiba
/// measures (CPU, memory, pids).
async fn stats(engine: &AsyncEngine, r: &ContainerRecord) -> Value {
    let usage = engine.stats(&r.id, Duration::from_millis(100)).await.ok();
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let Some(u) = usage else {
        return Value::Null;
    };
    json!({
        "read": now,
        "name": format!("/{}", r.name),
        "id": r.id,
        "pids_stats": {"current": u.pids},
        "memory_stats": {"usage": u.memory, "limit": u.memory_limit},
        "cpu_stats": {"cpu_percent": u.cpu_percent},
    })
}

fn status_word(s: Option<Status>) -> &'static str {
    s.map_or("PENDING", Status::as_str)
}

fn container_view(
    registry: &Registry,
    known: &Known,
    name: &str,
    state: Option<&ContainerState>,
    records: &[ContainerRecord],
    ips: &HashMap<Ipv4Addr, String>,
) -> Value {
    let t = &known.task;
    let def = t
        .definition
        .container_definitions
        .iter()
        .find(|d| d.name == name);
    let docker_name = crate::containers::name(&t.id, name);
    let record = records.iter().find(|r| r.name == docker_name);
    let task_arn = registry.task_arn(t);
    let mode = t.definition.network();
    let address = match mode {
        NetworkMode::Awsvpc => known.address,
        _ => record.and_then(|r| {
            ips.iter()
                .find(|(_, owner)| **owner == r.id)
                .map(|(ip, _)| *ip)
        }),
    };
    let mut v = json!({
        "DockerId": record.map(|r| r.id.clone()).unwrap_or_default(),
        "Name": name,
        "DockerName": docker_name,
        "Image": def.map(|d| d.image.clone()).unwrap_or_default(),
        "ImageID": record.map(|r| r.image_id.clone()).unwrap_or_default(),
        "Labels": {
            "com.amazonaws.ecs.cluster": t.cluster,
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-arn": task_arn,
            "com.amazonaws.ecs.task-definition-family": t.definition.family,
            "com.amazonaws.ecs.task-definition-version": t.revision.to_string(),
        },
        "DesiredStatus": t.desired_status.as_str(),
        "KnownStatus": status_word(state.and_then(|s| s.last_status)),
        "Limits": {
            "CPU": def.and_then(|d| d.cpu).unwrap_or(0),
            "Memory": def.and_then(|d| d.memory).unwrap_or(0),
        },
        "Type": "NORMAL",
        "ContainerARN": format!("{}container/{}/{}/{name}", registry.arn_prefix, t.cluster, t.id),
        "Networks": [{
            "NetworkMode": mode,
            "IPv4Addresses": address.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        }],
    });
    // The container's own dockerLabels sit beside the ones ECS adds.
    for (k, val) in def
        .and_then(|d| d.docker_labels.as_ref())
        .into_iter()
        .flatten()
    {
        v["Labels"][k] = json!(val);
    }
    if let Some(r) = record {
        v["CreatedAt"] = json!(r.created);
        if let Some(started) = &r.state.started_at {
            v["StartedAt"] = json!(started);
        }
    }
    if let Some(s) = state {
        if let Some(code) = s.exit_code {
            v["ExitCode"] = json!(code);
        }
        if !s.network_bindings.is_empty() {
            v["Ports"] = s
                .network_bindings
                .iter()
                .map(|b| json!({"ContainerPort": b.container_port, "Protocol": b.protocol, "HostPort": b.host_port, "HostIp": b.bind_ip}))
                .collect();
        }
        if def.is_some_and(|d| d.health_check.is_some()) {
            v["Health"] = json!({"status": match s.health_status {
                Health::Healthy => "HEALTHY",
                Health::Unhealthy => "UNHEALTHY",
                Health::Unknown => "UNKNOWN",
            }});
        }
    }
    v
}

fn task_view(
    registry: &Registry,
    known: &Known,
    records: &[ContainerRecord],
    ips: &HashMap<Ipv4Addr, String>,
) -> Value {
    let t = &known.task;
    let containers: Vec<Value> = t
        .definition
        .container_definitions
        .iter()
        .map(|d| {
            let state = known.containers.iter().find(|c| c.name == d.name);
            container_view(registry, known, &d.name, state, records, ips)
        })
        .collect();
    // ECS gives the cluster's name on EC2 and its ARN on Fargate.
    let cluster = match t.launch_type {
        LaunchType::Ec2 => t.cluster.clone(),
        LaunchType::Fargate => format!("{}cluster/{}", registry.arn_prefix, t.cluster),
    };
    let mut v = json!({
        "Cluster": cluster,
        "TaskARN": registry.task_arn(t),
        "Family": t.definition.family,
        "Revision": t.revision.to_string(),
        "DesiredStatus": t.desired_status.as_str(),
        "KnownStatus": t.last_status.as_str(),
        "Limits": {
            "CPU": t.reserved.cpu as f64 / 1024.0,
            "Memory": t.reserved.memory,
        },
        "LaunchType": t.launch_type.as_str(),
        "Containers": containers,
    });
    if let Some(p) = t.pull_started_at {
        v["PullStartedAt"] = json!(rfc3339(p));
    }
    if let Some(p) = t.pull_stopped_at {
        v["PullStoppedAt"] = json!(rfc3339(p));
    }
    v
}

fn rfc3339(epoch: f64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs_f64(epoch.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_container_and_stable() {
        let r = Registry::new("secret", "arn:aws:ecs:eu-west-1:123:container-instance/c/i");
        assert_eq!(r.token("t1", "web"), r.token("t1", "web"));
        assert_ne!(r.token("t1", "web"), r.token("t1", "db"));
        assert_ne!(r.token("t1", "web"), r.token("t2", "web"));
        let other = Registry::new("another", "");
        assert_ne!(r.token("t1", "web"), other.token("t1", "web"));
        assert_eq!(r.token("t1", "web").len(), 32);
        assert_eq!(r.arn_prefix, "arn:aws:ecs:eu-west-1:123:");
    }
}
