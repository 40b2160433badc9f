//! The agent's loop: join (or come back with the saved credential),
//! heartbeat, follow assignments, route the engine's container events to
//! the runners of their tasks, and re-adopt the containers of tasks that
//! ran on while the agent was away.

use crate::usage::Latest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use estiba_cluster::task::{Status, TaskRecord};
use estiba_cluster::wire::{AgentApi, Assignments, Heartbeat, RegisterRequest};
use estiba_engine::{AsyncEngine, ContainerRecord};
use estiba_events::{Action, Filter, Kind, Start};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::images::PullBehavior;
use crate::runner::{health_of, Msg, Runner, Shared};
use crate::{containers, node, Error, Result};

#[derive(Clone, Debug)]
pub struct Options {
    pub servers: Vec<String>,
    /// Needed only to join; afterwards the node's own credential is used.
    pub token: Option<String>,
    pub cluster: String,
    pub attributes: Vec<(String, String)>,
    /// Where the node keeps its credential (`<root>/agent`).
    pub state: PathBuf,
    pub pull: PullBehavior,
    pub rootless: bool,
    /// Warnings to report with the registration (limits not delegated).
    pub warnings: Vec<String>,
    /// Where the agent's API (task logs, for the control plane) listens;
    /// an unspecified address means the node's own.
    pub listen: std::net::SocketAddr,
    /// How much of the node tasks get.
    pub offer: node::Offer,
    /// Registry mirrors (`--registries-conf`).
    pub registries: crate::registries::Registries,
    /// The CA an `https://` control plane's certificate chains to.
    pub ca_cert: Option<PathBuf>,
    /// How often the tasks' CPU and memory use is sampled (for scaling).
    pub usage_every: Duration,
}

/// Where this agent's API is reached: the `--listen` address, or the
/// node's own when it listens on all of them.
fn api_address(opts: &Options, port: u16) -> String {
    let ip = match opts.listen.ip() {
        ip if ip.is_unspecified() => opts
            .servers
            .first()
            .and_then(|s| node::address_towards(s))
            .unwrap_or_else(|| "127.0.0.1".into()),
        ip => ip.to_string(),
    };
    format!("{ip}:{port}")
}

/// Joins with the token, or loads the credential of an earlier join.
async fn credential(opts: &Options, client: &Client, api: &str) -> Result<node::Saved> {
    if let Some(saved) = node::load(&opts.state)? {
        if saved.cluster == opts.cluster {
            return Ok(saved);
        }
        tracing::warn!(
            saved = %saved.cluster,
            wanted = %opts.cluster,
            "the node joined another cluster before; joining this one"
        );
    }
    let token = opts
        .token
        .clone()
        .ok_or_else(|| Error::Invalid("this node has not joined yet: give --token".into()))?;
    let address = opts
        .servers
        .first()
        .and_then(|s| node::address_towards(s))
        .unwrap_or_else(|| "127.0.0.1".into());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let api_secret = estiba_os::random_hex(24);
    let registered = client
        .register(&RegisterRequest {
            api: Some(AgentApi {
                address: api.to_string(),
                secret: api_secret.clone(),
            }),
            token,
            cluster: opts.cluster.clone(),
            hostname,
            address,
            resources: node::resources(opts.offer),
            attributes: node::attributes(&opts.attributes, opts.rootless, opts.warnings.is_empty()),
            agent_version: node::VERSION.into(),
            warnings: opts.warnings.clone(),
        })
        .await?;
    let saved = node::Saved {
        instance_id: registered.instance_id,
        instance_arn: registered.instance_arn,
        cluster: registered.cluster,
        credential: registered.credential,
        api_secret,
    };
    node::save(&opts.state, &saved)?;
    Ok(saved)
}

/// The bridge network bridge-mode tasks use, created on first start.
async fn ensure_bridge(engine: &AsyncEngine) -> Result<()> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let e = engine.blocking();
        let exists = e
            .networks()?
            .list()?
            .iter()
            .any(|n| n.name == containers::BRIDGE_NETWORK);
        if !exists {
            e.network_create(containers::BRIDGE_NETWORK, None, None, false, None, &[])?;
        }
        Ok::<_, estiba_engine::Error>(())
    })
    .await
    .map_err(|e| Error::Invalid(format!("creating the bridge network: {e}")))??;
    Ok(())
}

async fn heartbeats(client: Client, mut every: Duration, api: String, usage: Latest) {
    loop {
        let beat = Heartbeat {
            api_address: Some(api.clone()),
            usage: usage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default(),
        };
        match client.heartbeat(&beat).await {
            Ok(reply) => every = Duration::from_secs(reply.heartbeat_seconds.max(1)),
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls assignments and hands each answer to the main loop.
async fn poll(client: Client, tx: mpsc::Sender<Assignments>) {
    let mut after = 0;
    loop {
        match client.assignments(after).await {
            Ok(a) => {
                after = a.revision;
                if tx.send(a).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("assignments: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

struct Node {
    shared: Arc<Shared>,
    runners: HashMap<String, mpsc::Sender<Msg>>,
}

impl Node {
    fn spawn(&mut self, task: TaskRecord, adopted: &[ContainerRecord]) {
        let (tx, rx) = mpsc::channel(64);
        let id = task.id.clone();
        let runner = Runner::new(Arc::clone(&self.shared), task, adopted, rx);
        tokio::spawn(runner.run());
        self.runners.insert(id, tx);
    }

    async fn send(&mut self, task: &str, msg: Msg) {
        if let Some(tx) = self.runners.get(task) {
            if tx.send(msg).await.is_err() {
                self.runners.remove(task);
            }
        }
    }

    /// The node's containers of ECS tasks, by task id.
    async fn local(&self) -> Result<HashMap<String, Vec<ContainerRecord>>> {
        let mut by_task: HashMap<String, Vec<ContainerRecord>> = HashMap::new();
        for r in self.shared.engine.list().await? {
            if let Some((task, _)) = containers::parse_name(&r.name) {
                by_task.entry(task.to_string()).or_default().push(r);
            }
        }
        Ok(by_task)
    }

    async fn apply(&mut self, a: Assignments) -> Result<()> {
        self.runners.retain(|_, tx| !tx.is_closed());
        let local = if a.full {
            self.local().await?
        } else {
            HashMap::new()
        };
        if a.full {
            // Whatever is not assigned any more (stopped while the agent
            // was away, or its node declared lost) stops here too.
            let assigned: Vec<&str> = a.tasks.iter().map(|t| t.id.as_str()).collect();
            let gone: Vec<String> = self
                .runners
                .keys()
                .filter(|id| !assigned.contains(&id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                self.send(&id, Msg::Desired(Status::Stopped)).await;
            }
            for (task, records) in &local {
                if assigned.contains(&task.as_str()) || self.runners.contains_key(task) {
                    continue;
                }
                for r in records
                    .iter()
                    .filter(|r| r.state.status == estiba_engine::Status::Running)
                {
                    tracing::warn!(container = %r.name, "stopping a container of a task no longer assigned here");
                    let _ = self
                        .shared
                        .engine
                        .stop(&r.id, Duration::from_secs(10))
                        .await;
                }
            }
        }
        for task in a.tasks {
            if self.runners.contains_key(&task.id) {
                let desired = task.desired_status;
                self.send(&task.id, Msg::Desired(desired)).await;
            } else if task.last_status != Status::Stopped {
                let adopted = local.get(&task.id).cloned().unwrap_or_default();
                self.spawn(task, &adopted);
            }
        }
        for id in a.removed {
            self.send(&id, Msg::Desired(Status::Stopped)).await;
        }
        Ok(())
    }

    /// Routes a container event to its task's runner.
    async fn route(&mut self, e: estiba_events::Event) {
        let Some(name) = e.actor.attributes.get("name") else {
            return;
        };
        let Some((task, container)) = containers::parse_name(name) else {
            return;
        };
        let msg = match &e.action {
            Action::Die => Msg::Died {
                container: container.to_string(),
                exit_code: e
                    .actor
                    .attributes
                    .get("exitCode")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(-1),
            },
            Action::HealthStatus(s) => Msg::Health {
                container: container.to_string(),
                health: health_of(s),
            },
            _ => return,
        };
        let task = task.to_string();
        self.send(&task, msg).await;
    }
}

/// Runs the agent until the process is stopped.
pub async fn run(engine: AsyncEngine, store: estiba_store::Store, opts: Options) -> Result<()> {
    let client = Client::new(opts.servers.clone(), opts.ca_cert.as_deref())?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::Invalid(format!("--listen {}: {e}", opts.listen)))?;
    let api_port = listener
        .local_addr()
        .map_or(opts.listen.port(), |a| a.port());
    let api = api_address(&opts, api_port);
    let saved = credential(&opts, &client, &api).await?;
    tracing::info!(instance = %saved.instance_id, cluster = %saved.cluster, "joined");
    let client = client.with_credential(saved.credential.clone());
    // Follow the journal before reading any container, so that no exit
    // falls between what is read and what is followed.
    let mut filter = Filter::default();
    filter
        .add(&format!("type={}", Kind::Container.as_str()))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut events = engine.events(filter, Start::End)?;
    ensure_bridge(&engine).await?;
    let metadata = Arc::new(crate::metadata::Registry::new(
        &saved.api_secret,
        &saved.instance_arn,
    ));
    if let Err(e) = crate::metadata::start(Arc::clone(&metadata), engine.clone()).await {
        // Tasks still run; they get no ECS_CONTAINER_METADATA_URI_V4.
        tracing::warn!("the task metadata endpoint is not served: {e}");
    }
    tokio::spawn(crate::api::serve(
        listener,
        engine.clone(),
        saved.api_secret.clone(),
    ));
    let usage = Latest::default();
    tokio::spawn(crate::usage::sampler(
        engine.clone(),
        saved.cluster.clone(),
        opts.usage_every,
        Arc::clone(&usage),
    ));
    tokio::spawn(heartbeats(
        client.clone(),
        Duration::from_secs(5),
        api,
        usage,
    ));
    let (tx, mut assignments) = mpsc::channel(4);
    tokio::spawn(poll(client.clone(), tx));
    let mut node = Node {
        shared: Arc::new(Shared {
            engine,
            store,
            client,
            pull: opts.pull,
            registries: opts.registries.clone(),
            metadata,
        }),
        runners: HashMap::new(),
    };
    loop {
        tokio::select! {
            Some(a) = assignments.recv() => {
                if let Err(e) = node.apply(a).await {
                    tracing::error!("applying assignments: {e}");
                }
            }
            Some(e) = events.recv() => node.route(e).await,
            else => return Err(Error::Invalid("the event journal's follower ended".into())),
        }
    }
}
