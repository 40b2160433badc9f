//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks; the reports
//! agents send about their tasks; and what happens to the tasks of a node
//! that is lost.
//!
//! Placing a task is one transaction: the instance's remaining resources
//! (compared on its mod revision), the task and its assignment are written
//! together, so concurrent requests never overcommit a node and a task is
//! never half placed. Its resources come back in the transaction that
//! marks it STOPPED.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use estiba_ecs::taskdef::TaskDefinition;
use estiba_state::{Op, Store, Txn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{cluster_name, taskdefs, ApiError, Reply, Server};
use crate::leader::{fenced, still_leading, Fence};
use crate::model::{encode, unchanged, ClusterRecord, ClusterStatus, Tag};
use crate::page::Page;
use crate::placement::{self, ConstraintSpec, Live, StrategySpec};
use crate::task::{
    Attachment, InstanceRecord, LaunchType, Overrides, Status, StopCode, TaskRecord,
};
use crate::wire::Report;
use crate::{keys, time, Result};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    cluster: Option<String>,
    task_definition: String,
    count: Option<i64>,
    started_by: Option<String>,
    group: Option<String>,
    launch_type: Option<String>,
    #[serde(default)]
    placement_constraints: Vec<ConstraintSpec>,
    #[serde(default)]
    placement_strategy: Vec<StrategySpec>,
    #[serde(default)]
    overrides: Overrides,
    #[serde(default)]
    tags: Vec<Tag>,
    /// StartTask: the instances to start on.
    #[serde(default)]
    container_instances: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRequest {
    cluster: Option<String>,
    task: String,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    cluster: Option<String>,
    tasks: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    cluster: Option<String>,
    family: Option<String>,
    service_name: Option<String>,
    started_by: Option<String>,
    desired_status: Option<String>,
    container_instance: Option<String>,
    launch_type: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// The last part of an ARN (`…/ID`), or the id itself.
pub(crate) fn id_of(given: &str) -> &str {
    given.rsplit('/').next().unwrap_or(given)
}

pub fn task_arn(server: &Server, t: &TaskRecord) -> String {
    server.arn(format!("task/{}/{}", t.cluster, t.id))
}

pub fn instance_arn(server: &Server, cluster: &str, id: &str) -> String {
    server.arn(format!("container-instance/{cluster}/{id}"))
}

/// A task as DescribeTasks shows it.
pub fn view(server: &Server, t: &TaskRecord) -> Value {
    let arn = task_arn(server, t);
    let defs = &t.definition.container_definitions;
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|c| {
            let def = defs.iter().find(|d| d.name == c.name);
            let mut v = json!({
                "containerArn": server.arn(format!("container/{}/{}/{}", t.cluster, t.id, c.name)),
                "taskArn": arn,
                "name": c.name,
                "image": c.image,
                "lastStatus": c.last_status.unwrap_or(t.last_status).as_str(),
                "networkBindings": c.network_bindings,
                "networkInterfaces": t.attachment.iter().map(|a| json!({
                    "attachmentId": a.id,
                    "privateIpv4Address": a.private_ipv4.to_string(),
                })).collect::<Vec<_>>(),
                "healthStatus": c.health_status,
                "cpu": def.and_then(|d| d.cpu).unwrap_or(0).to_string(),
            });
            let fields = [
                ("runtimeId", c.runtime_id.as_ref().map(|r| json!(r))),
                ("exitCode", c.exit_code.map(|e| json!(e))),
                ("reason", c.reason.as_ref().map(|r| json!(r))),
                (
                    "memory",
                    def.and_then(|d| d.memory).map(|m| json!(m.to_string())),
                ),
                (
                    "memoryReservation",
                    def.and_then(|d| d.memory_reservation)
                        .map(|m| json!(m.to_string())),
                ),
            ];
            for (k, value) in fields {
                if let Some(value) = value {
                    v[k] = value;
                }
            }
            v
        })
        .collect();
    let health = crate::task::health_of(t);
    let mut v = json!({
        "taskArn": arn,
        "clusterArn": server.cluster_arn(&t.cluster),
        "taskDefinitionArn": server.arn(format!("task-definition/{}:{}", t.definition.family, t.revision)),
        "overrides": {
            "containerOverrides": t.overrides.container_overrides,
            "inferenceAcceleratorOverrides": [],
        },
        "lastStatus": t.last_status.as_str(),
        "desiredStatus": t.desired_status.as_str(),
        "cpu": t.reserved.cpu.to_string(),
        "memory": t.reserved.memory.to_string(),
        "containers": containers,
        "version": t.version,
        "createdAt": t.created_at,
        "launchType": t.launch_type.as_str(),
        "healthStatus": health,
        "attachments": t.attachment.iter().map(|a| attachment_view(t, a)).collect::<Vec<_>>(),
        "tags": t.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    });
    let optional = [
        (
            "containerInstanceArn",
            t.instance
                .as_ref()
                .filter(|_| t.launch_type == LaunchType::Ec2)
                .map(|i| json!(instance_arn(server, &t.cluster, i))),
        ),
        ("startedBy", t.started_by.as_ref().map(|s| json!(s))),
        ("group", t.group.as_ref().map(|s| json!(s))),
        ("pullStartedAt", t.pull_started_at.map(|x| json!(x))),
        ("pullStoppedAt", t.pull_stopped_at.map(|x| json!(x))),
        ("startedAt", t.started_at.map(|x| json!(x))),
        ("stoppingAt", t.stopping_at.map(|x| json!(x))),
        ("stoppedAt", t.stopped_at.map(|x| json!(x))),
        (
            "executionStoppedAt",
            t.execution_stopped_at.map(|x| json!(x)),
        ),
        ("stopCode", t.stop_code.map(|x| json!(x))),
        ("stoppedReason", t.stopped_reason.as_ref().map(|x| json!(x))),
    ];
    for (k, value) in optional {
        if let Some(value) = value {
            v[k] = value;
        }
    }
    v
}

/// An awsvpc task's interface, in the shape of ECS's ENI attachment.
fn attachment_view(t: &TaskRecord, a: &Attachment) -> Value {
    let status = if t.last_status == Status::Stopped {
        "DELETED"
    } else {
        "ATTACHED"
    };
    let detail = |name: &str, value: String| json!({"name": name, "value": value});
    json!({
        "id": a.id,
        "type": "ElasticNetworkInterface",
        "status": status,
        "details": [
            detail("networkInterfaceId", format!("eni-{}", &t.id[..17.min(t.id.len())])),
            detail("privateIPv4Address", a.private_ipv4.to_string()),
        ],
    })
}

/// The definition with a RunTask's overrides applied.
fn apply_overrides(
    mut d: TaskDefinition,
    o: &Overrides,
) -> std::result::Result<TaskDefinition, ApiError> {
    for c in &o.container_overrides {
        let Some(def) = d
            .container_definitions
            .iter_mut()
            .find(|d| d.name == c.name)
        else {
            return Err(ApiError::invalid(format!(
                "Override for container named {} is not a container in the TaskDefinition.",
                c.name
            )));
        };
        if let Some(cmd) = &c.command {
            def.command = Some(cmd.clone());
        }
        if let Some(env) = &c.environment {
            let merged = def.environment.get_or_insert_with(Vec::new);
            for kv in env {
                merged.retain(|old| old.name != kv.name);
                merged.push(kv.clone());
            }
        }
        def.cpu = c.cpu.or(def.cpu);
        def.memory = c.memory.or(def.memory);
        def.memory_reservation = c.memory_reservation.or(def.memory_reservation);
    }
    if let Some(cpu) = &o.cpu {
        d.cpu = Some(estiba_ecs::taskdef::Size::Text(cpu.clone()));
    }
    if let Some(memory) = &o.memory {
        d.memory = Some(estiba_ecs::taskdef::Size::Text(memory.clone()));
    }
    // Overrides go through the same rules as a registration.
    estiba_ecs::taskdef::validate(&d)?;
    Ok(d)
}

pub(crate) async fn active_cluster(
    server: &Server,
    given: Option<&str>,
) -> std::result::Result<String, ApiError> {
    let name = cluster_name(given)?;
    match server
        .db
        .get::<ClusterRecord>(&keys::cluster(&name))
        .await?
    {
        Some(c) if c.value.status == ClusterStatus::Active => Ok(name),
        _ => Err(ApiError::cluster_not_found()),
    }
}

fn launch_type(given: Option<&str>) -> std::result::Result<LaunchType, ApiError> {
    match given {
        None | Some("EC2") => Ok(LaunchType::Ec2),
        Some("FARGATE") => Ok(LaunchType::Fargate),
        Some(other) => Err(ApiError::invalid(format!(
            "launchType {other}: must be EC2 or FARGATE"
        ))),
    }
}

/// The instances of a cluster, with their mod revisions, and which of
/// them have a connected agent.
async fn candidates(
    server: &Server,
    cluster: &str,
) -> Result<(
    Vec<crate::model::Versioned<InstanceRecord>>,
    HashSet<String>,
)> {
    let instances = server
        .db
        .list_versioned::<InstanceRecord>(&keys::instances_of(cluster))
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    Ok((instances, server.db.connected().await?))
}

/// RunTask and StartTask: place `count` tasks (StartTask: on the named
/// instances), each in one transaction.
pub async fn run(server: &Server, req: RunRequest, start: bool) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(ApiError::invalid("count must be between 1 and 10."));
    }
    let launch = launch_type(req.launch_type.as_deref())?;
    let td = taskdefs::usable(server, &req.task_definition, launch).await?;
    let definition = apply_overrides(td.definition.clone(), &req.overrides)?;
    crate::policy::admit(&server.db, &definition, Some(&cluster)).await?;
    let constraints = placement::constraints_of(&req.placement_constraints, &definition)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let strategies = placement::strategies_of(&req.placement_strategy)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let named: Vec<&str> = req.container_instances.iter().map(|i| id_of(i)).collect();
    if start && !(1..=10).contains(&named.len()) {
        return Err(ApiError::invalid(
            "containerInstances must name 1 to 10 instances.",
        ));
    }
    let need = placement::need_of(&definition);
    let group = req
        .group
        .clone()
        .unwrap_or_else(|| format!("family:{}", td.definition.family));
    let mut template = TaskRecord::template(&cluster, td.revision, definition, launch, group);
    template.reserved = need;
    template.overrides = req.overrides.clone();
    template.started_by = req.started_by.clone();
    template.tags = req
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    // RunTask: `count` rounds on any instance; StartTask: one per instance named.
    let rounds: Vec<Option<&str>> = if start {
        named.iter().map(|n| Some(*n)).collect()
    } else {
        vec![None; count as usize]
    };
    let mut placed: Vec<TaskRecord> = Vec::new();
    let mut failures: Vec<Value> = Vec::new();
    for only in rounds {
        let ask = Placement {
            template: &template,
            only,
            constraints: &constraints,
            strategies: &strategies,
            seed: placed.len() as u64 + u64::from(td.revision),
            fence: None,
        };
        match place_one(server, &ask).await? {
            Ok(task) => placed.push(task),
            Err(misses) => {
                failures.extend(misses.iter().map(|(instance, m)| match m {
                    None => json!({"arn": instance_arn(server, &cluster, instance), "reason": "MISSING"}),
                    Some(m) => json!({
                        "arn": instance_arn(server, &cluster, instance),
                        "reason": m.reason(),
                        "detail": m.to_string(),
                    }),
                }));
                if !start {
                    break;
                }
            }
        }
    }
    if placed.is_empty() && failures.is_empty() && launch == LaunchType::Fargate {
        return Err(ApiError::client(
            "No FARGATE capacity: the control plane runs FARGATE tasks on its own machine when started with --fargate.",
        ));
    }
    if placed.is_empty() && failures.is_empty() {
        return Err(ApiError::invalid(
            "No Container Instances were found in your cluster.",
        ));
    }
    Ok(json!({
        "tasks": placed.iter().map(|t| view(server, t)).collect::<Vec<_>>(),
        "failures": failures,
    }))
}

/// One task to place: a template of its record, where it may go, and how
/// to choose.
pub(crate) struct Placement<'a> {
    pub template: &'a TaskRecord,
    /// StartTask: only this instance.
    pub only: Option<&'a str>,
    pub constraints: &'a [placement::Constraint],
    pub strategies: &'a [placement::Strategy],
    pub seed: u64,
    /// The scheduler's writes hold only while it leads.
    pub fence: Option<Fence>,
}

/// Live tasks by group on each instance of a pool: from the view, or, if
/// it has not loaded yet, from the store.
async fn groups_on(
    server: &Server,
    cluster: &str,
    instances: &[crate::model::Versioned<InstanceRecord>],
) -> Result<HashMap<String, BTreeMap<String, u32>>> {
    if server.view.loaded() {
        return Ok(server
            .view
            .on_nodes(instances.iter().map(|v| v.value.id.as_str())));
    }
    let mut out: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    for (_, t) in server
        .db
        .list::<TaskRecord>(&keys::tasks_of(cluster))
        .await?
    {
        if let (Some(i), Some(g), false) = (&t.instance, &t.group, t.last_status == Status::Stopped)
        {
            *out.entry(i.clone())
                .or_default()
                .entry(g.clone())
                .or_default() += 1;
        }
    }
    Ok(out)
}

/// What each instance passed over missed (None: the named instance does
/// not exist).
pub(crate) type Misses = Vec<(String, Option<placement::Miss>)>;

/// Places one task: see [`place_many`].
pub(crate) async fn place_one(
    server: &Server,
    ask: &Placement<'_>,
) -> Result<std::result::Result<TaskRecord, Misses>> {
    let (mut placed, misses) = place_many(server, ask, 1).await?;
    Ok(match (placed.pop(), misses) {
        (Some(t), _) => Ok(t),
        (None, m) => Err(m.unwrap_or_default()),
    })
}

/// Tasks per transaction: etcd allows 128 operations in one (each task
/// takes two puts, and its instance one); SQLite syncs once per
/// transaction, so fewer, larger ones are faster.
fn batch_size(server: &Server) -> usize {
    match server.db.store {
        estiba_state::AnyStore::Sqlite(_) => 2000,
        _ => 40,
    }
}

/// The most tasks a batch holds when no batch is committing.
const FIRST_BATCH: usize = 250;

/// How long placement goes on from one read of the candidates at most.
/// Their resources stay current (each write compares every instance it
/// changes), and a node that joins, leaves or reconnects ends a read at
/// once (`PoolCache::follow`); what no write of ours would notice — room
/// freed on a node, attributes that now meet a constraint — is found by
/// the read again that a placement short of room makes first.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The pool the last placement left, kept for the next one while it is
/// current: a scheduler placing service after service then reads the
/// instances once, not once a service (10,000 records decoded each time).
/// It is as safe as the pool kept within one call: every write compares
/// each instance it changes on the revision the pool holds, so a node
/// changed by anyone else fails the write and the pool is read again.
#[derive(Default)]
pub(crate) struct PoolCache {
    slot: std::sync::Mutex<Option<(String, Pool)>>,
    /// Moves whenever a node connects or disconnects: a pool read before
    /// is no longer current.
    epoch: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PoolCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCache").finish_non_exhaustive()
    }
}

impl PoolCache {
    /// The kept pool of `name`, if it is current.
    fn take(&self, name: &str) -> Option<Pool> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some((n, pool)) if n == name && self.current(&pool) => Some(pool),
            _ => None,
        }
    }

    /// Keeps `pool`, which holds only what has landed.
    fn keep(&self, name: &str, pool: Pool) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_string(), pool));
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn moved(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether placement may go on from `pool`.
    fn current(&self, pool: &Pool) -> bool {
        pool.epoch == self.epoch() && pool.read_at.elapsed() <= MAX_AGE
    }

    /// Follows the nodes' connections for the life of the server: each
    /// (re)connection or disconnection, and each start of the watch (what
    /// came before it is unknown), makes every pool read before stale.
    pub(crate) async fn follow(server: Arc<Server>) {
        loop {
            if let Err(e) = Self::follow_once(&server).await {
                tracing::warn!("following the nodes' connections: {e}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    async fn follow_once(server: &Server) -> Result<()> {
        let mut watch = server.db.watch_from_now(keys::CONNECTED).await?;
        server.pools.moved();
        while let Some(event) = watch.next().await {
            event?;
            server.pools.moved();
        }
        Ok(())
    }
}

/// The candidates of one read, as the tasks placed since have left them:
/// each instance with the mod revision its next write compares.
struct Pool {
    nodes: Vec<Live>,
    revisions: Vec<i64>,
    read_at: std::time::Instant,
    /// The connections' epoch it was read in (`PoolCache`).
    epoch: u64,
}

impl Pool {
    async fn read(server: &Server, ask: &Placement<'_>) -> Result<Pool> {
        // Taken first: a connection that changes during the read makes
        // the pool stale at once.
        let epoch = server.pools.epoch();
        let (instances, connected) = candidates(server, ask.template.pool()).await?;
        let mut groups = groups_on(server, &ask.template.cluster, &instances).await?;
        let (nodes, revisions) = instances
            .into_iter()
            .filter(|v| ask.only.is_none_or(|o| o == v.value.id))
            .map(|v| {
                let live = Live {
                    connected: connected.contains(&v.value.id),
                    groups: groups.remove(&v.value.id).unwrap_or_default(),
                    record: v.value,
                };
                (live, v.mod_revision)
            })
            .unzip();
        Ok(Pool {
            nodes,
            revisions,
            read_at: std::time::Instant::now(),
            epoch,
        })
    }
}

/// A batch placed in memory: the tasks, the pool's nodes they changed,
/// and, if one found no room, what every node missed.
#[derive(Default)]
struct Chosen {
    batch: Vec<TaskRecord>,
    touched: Vec<usize>,
    short: Option<Misses>,
}

/// One batch: at most `room` tasks, each on the best node as the ones
/// before it left the pool.
fn choose(
    pool: &mut Pool,
    placer: &mut estiba_placement::Placer,
    ask: &Placement<'_>,
    room: usize,
    placed_before: usize,
) -> Chosen {
    let template = ask.template;
    let group = template.group.clone().unwrap_or_default();
    let mut batch: Vec<TaskRecord> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    let mut changed = vec![false; pool.nodes.len()];
    while batch.len() < room {
        let request = placement::Request {
            need: &template.reserved,
            group: &group,
            constraints: ask.constraints,
            strategies: ask.strategies,
            seed: ask.seed.wrapping_add((placed_before + batch.len()) as u64),
        };
        let winner = match placer.best(&pool.nodes, &request) {
            Ok(i) => i,
            Err(misses) => {
                let misses = misses
                    .into_iter()
                    .map(|(i, m)| (pool.nodes[i].record.id.clone(), Some(m)))
                    .collect();
                return Chosen {
                    batch,
                    touched,
                    short: Some(misses),
                };
            }
        };
        let node = &mut pool.nodes[winner];
        let Ok(remaining) = node.record.remaining.minus(&template.reserved) else {
            break;
        };
        node.record.remaining = remaining;
        *node.groups.entry(group.clone()).or_default() += 1;
        placer.placed(winner);
        if !std::mem::replace(&mut changed[winner], true) {
            touched.push(winner);
        }
        let mut task = template.clone();
        task.id = crate::task::new_id();
        task.instance = Some(node.record.id.clone());
        task.created_at = time::now();
        batch.push(task);
    }
    Chosen {
        batch,
        touched,
        short: None,
    }
}

/// The transaction that reserves a batch: every instance it changed,
/// compared on the revision it was read or last written at, and each task
/// (its agent hears of it through the view, `agent.rs`).
fn reservation(pool: &mut Pool, chosen: &Chosen, ask: &Placement<'_>) -> Txn {
    let cluster = &ask.template.cluster;
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    for &i in &chosen.touched {
        let instance = &mut pool.nodes[i].record;
        instance.version += 1;
        let key = keys::instance(ask.template.pool(), &instance.id);
        compares.push(unchanged(&key, pool.revisions[i]));
        ops.push(Op::put(key.as_str(), encode(&*instance)));
    }
    for task in &chosen.batch {
        ops.push(Op::put(keys::task(cluster, &task.id), encode(task)));
    }
    Txn::when(fenced(compares, ask.fence)).and_then(ops)
}

/// A batch on its way into the store. Its tasks wait in the view as
/// landing until it is known whether the commit took; dropped before
/// that (the placement cancelled), they are let go there.
struct InFlight<'a> {
    chosen: Chosen,
    commit: tokio::task::JoinHandle<estiba_state::Result<estiba_state::TxnResponse>>,
    view: &'a crate::view::View,
    settled: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.settled {
            // It may still commit: then the watch decodes its tasks.
            self.view.not_landed(&self.chosen.batch);
        }
    }
}

impl<'a> InFlight<'a> {
    fn start(
        server: &'a Server,
        pool: &mut Pool,
        chosen: Chosen,
        ask: &Placement<'_>,
    ) -> InFlight<'a> {
        let txn = reservation(pool, &chosen, ask);
        server.view.landing(&chosen.batch);
        let store = server.db.store.clone();
        InFlight {
            view: &server.view,
            settled: false,
            chosen,
            commit: tokio::spawn(async move {
                let t = std::time::Instant::now();
                let r = store.txn(txn).await;
                tracing::debug!(took = ?t.elapsed(), "placement: batch committed");
                r
            }),
        }
    }

    /// The revision it committed at; None if an instance changed under it.
    async fn landed(&mut self) -> Result<Option<i64>> {
        let r = match (&mut self.commit).await {
            Ok(Ok(r)) => Ok(r.succeeded.then_some(r.revision)),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(crate::Error::Invalid(format!("a placement's commit: {e}"))),
        };
        self.settled = true;
        if !matches!(r, Ok(Some(_))) {
            self.view.not_landed(&self.chosen.batch);
        }
        r
    }
}

/// Places up to `count` tasks: the candidates are read once, each task is
/// placed in memory (filter, then score, on the nodes as the tasks placed
/// before it left them), and each batch is reserved in one transaction
/// that compares every instance it changes on its mod revision.
///
/// Batches are pipelined: the next one is chosen while the last one
/// commits (the store works on one core, the placer on the other), and
/// its transaction is made once the last one's revision is known. A lost
/// race drops the batch chosen after it and reads again, as does a read
/// no longer current (`PoolCache::current`). Returns what was placed and, if it stopped
/// short, what each candidate missed. Placed tasks are in the view.
pub(crate) async fn place_many(
    server: &Server,
    ask: &Placement<'_>,
    count: usize,
) -> Result<(Vec<TaskRecord>, Option<Misses>)> {
    let group = ask.template.group.clone().unwrap_or_default();
    let mut placed: Vec<TaskRecord> = Vec::new();
    // StartTask's pool is one instance: not worth keeping.
    let cache = ask.only.is_none().then(|| ask.template.pool());
    let mut kept = cache.and_then(|name| server.pools.take(name));
    'read: while placed.len() < count {
        // Read in this call: a shortfall on it is the answer.
        let mut fresh = false;
        let mut pool = match kept.take() {
            Some(pool) => pool,
            None => {
                let t0 = std::time::Instant::now();
                let pool = Pool::read(server, ask).await?;
                tracing::debug!(nodes = pool.nodes.len(), took = ?t0.elapsed(), "placement: candidates read");
                fresh = true;
                pool
            }
        };
        // What every return below leaves: the pool as what landed left it.
        let done = |pool: Pool, placed: Vec<TaskRecord>, short: Option<Misses>| {
            if let Some(name) = cache {
                server.pools.keep(name, pool);
            }
            Ok((placed, short))
        };
        if pool.nodes.is_empty() {
            let misses = ask
                .only
                .map(|o| vec![(o.to_string(), None)])
                .unwrap_or_default();
            return done(pool, placed, Some(misses));
        }
        // Spread's counts per attribute value, taken once per read and
        // kept current as tasks are placed.
        let mut placer = estiba_placement::Placer::new(
            &pool.nodes,
            &placement::Request {
                need: &ask.template.reserved,
                group: &group,
                constraints: ask.constraints,
                strategies: ask.strategies,
                seed: ask.seed,
            },
        );
        // Placed, or on their way.
        let mut chosen = placed.len();
        let mut stopped_short = false;
        let mut in_flight: Option<InFlight<'_>> = None;
        loop {
            let next =
                (chosen < count && !stopped_short && server.pools.current(&pool)).then(|| {
                    // Nothing commits yet: a small batch sets the store
                    // to work sooner; the next are chosen while it works.
                    let size = match in_flight {
                        None => batch_size(server).min(FIRST_BATCH),
                        Some(_) => batch_size(server),
                    };
                    let room = size.min(count - chosen);
                    let t1 = std::time::Instant::now();
                    let c = choose(&mut pool, &mut placer, ask, room, chosen);
                    tracing::debug!(tasks = c.batch.len(), took = ?t1.elapsed(), "placement: batch chosen");
                    chosen += c.batch.len();
                    stopped_short = c.short.is_some();
                    c
                });
            if let Some(mut last) = in_flight.take() {
                let t2 = std::time::Instant::now();
                let landed = last.landed().await;
                tracing::debug!(waited = ?t2.elapsed(), "placement: batch landed");
                let Some(revision) = landed? else {
                    // Another writer changed an instance: read again.
                    still_leading(server, ask.fence).await?;
                    continue 'read;
                };
                let last = std::mem::take(&mut last.chosen);
                for &i in &last.touched {
                    pool.revisions[i] = revision;
                }
                // One line a batch: at thousands a second, a line a task
                // costs the scheduler more than the placement does.
                tracing::info!(tasks = last.batch.len(), revision, "placed");
                for task in &last.batch {
                    tracing::trace!(task = %task.id, instance = ?task.instance, "placed");
                    server.view.committed(task, revision);
                }
                placed.extend(last.batch);
                if last.short.is_some() {
                    if !fresh {
                        // Room may have come since the kept pool was read.
                        continue 'read;
                    }
                    return done(pool, placed, last.short);
                }
            }
            match next {
                Some(c) if c.batch.is_empty() && !fresh => continue 'read,
                Some(c) if c.batch.is_empty() => return done(pool, placed, c.short),
                Some(c) => {
                    in_flight = Some(InFlight::start(server, &mut pool, c, ask));
                    // The commit was spawned into this worker's LIFO slot,
                    // which no other worker steals: yield so it reaches
                    // the blocking pool before the next batch is chosen,
                    // or the two run one after the other.
                    tokio::task::yield_now().await;
                }
                None if placed.len() >= count => return done(pool, placed, None),
                None => continue 'read,
            }
        }
    }
    Ok((placed, None))
}

pub async fn stop(server: &Server, req: StopRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let reason = req
        .reason
        .clone()
        .unwrap_or_else(|| "Task stopped by user".into());
    match request_stop(
        server,
        &cluster,
        id_of(&req.task),
        StopCode::UserInitiated,
        reason,
        None,
    )
    .await?
    {
        Some(t) => Ok(json!({"task": view(server, &t)})),
        None => Err(ApiError::invalid("The referenced task was not found.")),
    }
}

/// Asks a task to stop: its desired status, stop code and reason (the
/// first asker's stay); its agent hears of the new desired status through
/// the view. None if there is no such task.
pub(crate) async fn request_stop(
    server: &Server,
    cluster: &str,
    id: &str,
    code: StopCode,
    reason: String,
    fence: Option<Fence>,
) -> Result<Option<TaskRecord>> {
    let key = keys::task(cluster, id);
    loop {
        let Some(found) = server.db.get::<TaskRecord>(&key).await? else {
            return Ok(None);
        };
        let mut t = found.value;
        if t.desired_status == Status::Stopped {
            return Ok(Some(t));
        }
        t.desired_status = Status::Stopped;
        t.stop_code.get_or_insert(code);
        t.stopped_reason.get_or_insert_with(|| reason.clone());
        t.stopping_at = Some(time::now());
        t.version += 1;
        let ops = vec![Op::put(key.as_str(), encode(&t))];
        let compares = fenced(vec![unchanged(&key, found.mod_revision)], fence);
        let txn = Txn::when(compares).and_then(ops);
        if let Some(revision) = server.db.commit_at(txn).await? {
            tracing::info!(task = %id, "stop requested");
            server.view.committed(&t, revision);
            return Ok(Some(t));
        }
        still_leading(server, fence).await?;
    }
}

pub async fn describe(server: &Server, req: DescribeRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    if req.tasks.is_empty() || req.tasks.len() > 100 {
        return Err(ApiError::invalid("tasks must name 1 to 100 tasks."));
    }
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for given in &req.tasks {
        let id = id_of(given);
        match server
            .db
            .get::<TaskRecord>(&keys::task(&cluster, id))
            .await?
        {
            Some(t) => tasks.push(view(server, &t.value)),
            None => failures.push(json!({
                "arn": server.arn(format!("task/{cluster}/{id}")),
                "reason": "MISSING",
            })),
        }
    }
    Ok(json!({"tasks": tasks, "failures": failures}))
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let desired = match req.desired_status.as_deref() {
        None | Some("RUNNING") => "RUNNING",
        Some("PENDING") => "PENDING",
        Some("STOPPED") => "STOPPED",
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "desiredStatus {s}: must be RUNNING, PENDING or STOPPED"
            )))
        }
    };
    let launch = req
        .launch_type
        .as_deref()
        .map(|l| launch_type(Some(l)))
        .transpose()?;
    let instance = req.container_instance.as_deref().map(id_of);
    let group = req
        .service_name
        .as_ref()
        .map(|s| format!("service:{}", id_of(s)));
    let all = server
        .db
        .list::<TaskRecord>(&keys::tasks_of(&cluster))
        .await?;
    let matching: Vec<(String, String)> = all
        .into_iter()
        .filter(|(_, t)| match desired {
            "STOPPED" => t.desired_status == Status::Stopped,
            "PENDING" => t.desired_status == Status::Running && t.last_status < Status::Running,
            _ => t.desired_status == Status::Running,
        })
        .filter(|(_, t)| {
            req.family
                .as_ref()
                .is_none_or(|f| *f == t.definition.family)
        })
        .filter(|(_, t)| req.started_by.is_none() || req.started_by == t.started_by)
        .filter(|(_, t)| group.is_none() || group == t.group)
        .filter(|(_, t)| instance.is_none() || instance == t.instance.as_deref())
        .filter(|(_, t)| launch.is_none_or(|l| l == t.launch_type))
        .map(|(k, t)| (k, task_arn(server, &t)))
        .collect();
    let (arns, next) = page.take(matching);
    Ok(crate::page::answer("taskArns", arns, next))
}

/// Applies a STOPPED transition: resources back to the instance, in the
/// transaction that writes the task. False if
/// something changed under it (the caller reads again).
async fn commit_stopped(
    server: &Server,
    task: &TaskRecord,
    task_rev: i64,
    fence: Option<Fence>,
) -> Result<bool> {
    let task_key = keys::task(&task.cluster, &task.id);
    let mut compares = fenced(vec![unchanged(&task_key, task_rev)], fence);
    let mut ops = vec![Op::put(task_key.as_str(), encode(task))];
    if let Some(instance_id) = &task.instance {
        let instance_key = keys::instance(task.pool(), instance_id);
        if let Some(inst) = server.db.get::<InstanceRecord>(&instance_key).await? {
            let mut back = inst.value;
            back.remaining = back.remaining.plus(&task.reserved);
            back.version += 1;
            compares.push(unchanged(&instance_key, inst.mod_revision));
            ops.push(Op::put(instance_key.as_str(), encode(&back)));
        }
    }
    match server
        .db
        .commit_at(Txn::when(compares).and_then(ops))
        .await?
    {
        Some(revision) => {
            server.view.committed(task, revision);
            Ok(true)
        }
        None => {
            still_leading(server, fence).await?;
            Ok(false)
        }
    }
}

/// What an agent reported about a task on its node. False if the task is
/// not this node's.
pub async fn apply_report(server: &Server, node: &str, report: &Report) -> Result<bool> {
    let key = keys::task(&report.cluster, &report.task);
    loop {
        let Some(found) = server.db.get::<TaskRecord>(&key).await? else {
            return Ok(false);
        };
        let mut t = found.value;
        if t.instance.as_deref() != Some(node) {
            return Ok(false);
        }
        if t.last_status == Status::Stopped {
            return Ok(true);
        }
        let now = time::now();
        // A status only moves forward.
        t.last_status = t.last_status.max(report.last_status);
        t.containers = report.containers.clone();
        t.pull_started_at = t.pull_started_at.or(report.pull_started_at);
        t.pull_stopped_at = t.pull_stopped_at.or(report.pull_stopped_at);
        if let Some(ip) = report.private_ipv4 {
            if t.attachment.as_ref().is_none_or(|a| a.private_ipv4 != ip) {
                t.attachment = Some(Attachment {
                    id: crate::model::uuid_like(),
                    private_ipv4: ip,
                });
            }
        }
        if t.last_status >= Status::Running && t.started_at.is_none() {
            t.started_at = Some(now);
        }
        t.version += 1;
        if t.last_status == Status::Stopped {
            t.desired_status = Status::Stopped;
            t.stopped_at = Some(now);
            t.execution_stopped_at = Some(now);
            t.stopping_at.get_or_insert(now);
            if t.stop_code.is_none() {
                t.stop_code = report.stop_code;
            }
            if t.stopped_reason.is_none() {
                t.stopped_reason = report.stopped_reason.clone();
            }
            if commit_stopped(server, &t, found.mod_revision, None).await? {
                tracing::info!(task = %t.id, "stopped");
                return Ok(true);
            }
        } else if server.db.swap(&key, found.mod_revision, &t).await? {
            return Ok(true);
        }
    }
}

/// Stops the tasks of a node whose agent stayed away past the grace
/// period: STOPPED, with a "host lost" reason, resources freed.
pub async fn lose_node(server: &Server, instance: &str, fence: Option<Fence>) -> Result<usize> {
    let mut stopped = 0;
    for on in server.view.loaded_on_node(instance).await? {
        let task_key = keys::task(&on.cluster, &on.id);
        loop {
            let Some(found) = server.db.get::<TaskRecord>(&task_key).await? else {
                break;
            };
            let here = found.value.instance.as_deref() == Some(instance);
            if !here || found.value.last_status == Status::Stopped {
                break;
            }
            let mut t = found.value;
            let now = time::now();
            t.last_status = Status::Stopped;
            t.desired_status = Status::Stopped;
            t.stopped_reason = Some(format!(
                "Host lost: the agent of container instance {instance} missed its heartbeats"
            ));
            t.stopping_at.get_or_insert(now);
            t.stopped_at = Some(now);
            t.execution_stopped_at = Some(now);
            for c in &mut t.containers {
                c.last_status = Some(Status::Stopped);
                c.reason.get_or_insert_with(|| "host lost".into());
            }
            t.version += 1;
            if commit_stopped(server, &t, found.mod_revision, fence).await? {
                stopped += 1;
                break;
            }
        }
    }
    Ok(stopped)
}
