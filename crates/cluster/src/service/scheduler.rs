//! The service scheduler: for each service that something happened to, a
//! plan (`plan.rs`), carried out, and the service record written back by
//! compare-and-swap.
//!
//! It never scans all tasks. What wakes a service:
//! - a change of one of its tasks, from the view (`view.rs`), with the
//!   tasks that STOPPED handed over for the breaker;
//! - a write to its record (`services/<cluster>/<name>`, from the API);
//! - a change of its cluster's instances, or of any node's connection
//!   (capacity came or went; a DAEMON has a node more or less);
//! - an instance of its cluster turning DRAINING: a REPLICA's tasks on it
//!   are replaced (the scheduler keeps the set of DRAINING instances from
//!   the same watch);
//! - the time a plan said something changes by itself (a task turns
//!   healthy, a grace period or a deadline ends), or a retry after a
//!   placement found no room.
//!
//! What a plan started or stopped is in the view before the next plan, so
//! no task is started twice; a record that changed under a write is read
//! and planned again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use estiba_state::{Event, EventKind, Op, Store, Txn};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::plan::{self, DaemonNode, Situation, Start};
use super::{Scheduling, ServiceRecord, ServiceStatus};
use crate::api::{tasks, Server};
use crate::leader::{fenced, still_leading, Fence};
use crate::model::{encode, unchanged, TaskDefRecord, Versioned};
use crate::placement::{self, Constraint, Live, Node};
use crate::task::{InstanceRecord, InstanceStatus, StopCode, TaskRecord};
use crate::view::TaskSummary;
use crate::{keys, time, Result};

/// A service: its cluster and name.
type Key = (String, String);

/// How soon a service whose tasks found no room tries again (a change of
/// instances wakes it sooner).
const RETRY: Duration = Duration::from_secs(10);

/// Something a watch saw.
#[derive(Debug)]
enum Trigger {
    /// A service's record changed, at a revision.
    Service(Key, i64),
    /// Instances of a cluster, or connections of any node, changed.
    Capacity(Option<String>),
    /// An instance was written or deleted: whether it is DRAINING now.
    Instance {
        cluster: String,
        id: String,
        draining: bool,
    },
}

/// Runs the scheduler while this replica leads (`leader::while_leading`
/// drops it when it no longer does); a failure starts it again from a
/// fresh read.
pub async fn run(server: Arc<Server>, fence: Fence) {
    let _subscribed = Subscribed::new(&server);
    loop {
        match run_once(&server, fence).await {
            Err(crate::Error::NotLeader) => return,
            Err(e) => tracing::warn!("the service scheduler: {e}"),
            Ok(()) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The view keeps changes only while a scheduler takes them.
struct Subscribed<'a>(&'a Server);

impl<'a> Subscribed<'a> {
    fn new(server: &'a Server) -> Subscribed<'a> {
        server.view.subscribe();
        Subscribed(server)
    }
}

impl Drop for Subscribed<'_> {
    fn drop(&mut self) {
        self.0.view.unsubscribe();
    }
}

/// Tasks that end with whoever holds them, even when that is cancelled.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<Result<()>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Feeds `tx` from a watch of `prefix`: each change through `to`.
async fn watch_into(
    server: Arc<Server>,
    prefix: &'static str,
    from: i64,
    tx: mpsc::UnboundedSender<Trigger>,
    to: fn(&Event) -> Option<Trigger>,
) -> Result<()> {
    let mut watch = server.db.store.watch(prefix.as_bytes(), from).await?;
    while let Some(event) = watch.next().await {
        if let Some(t) = to(&event?) {
            if tx.send(t).is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// `services/<cluster>/<name>` → the service.
fn service_of(e: &Event) -> Option<Trigger> {
    service_at(&String::from_utf8_lossy(&e.kv.key), e.kv.mod_revision)
}

fn service_at(key: &str, revision: i64) -> Option<Trigger> {
    let rest = key.strip_prefix(keys::SERVICES)?;
    let (cluster, name) = rest.split_once('/')?;
    Some(Trigger::Service(
        (cluster.to_string(), name.to_string()),
        revision,
    ))
}

/// `instances/<cluster>/<id>` → the instance, and whether it drains.
fn instance_of(e: &Event) -> Option<Trigger> {
    let key = String::from_utf8_lossy(&e.kv.key);
    let (cluster, id) = key.strip_prefix(keys::INSTANCES)?.split_once('/')?;
    Some(Trigger::Instance {
        cluster: cluster.to_string(),
        id: id.to_string(),
        draining: e.kind == EventKind::Put && drains(&e.kv.value),
    })
}

/// Whether an instance record says DRAINING. Placement rewrites thousands
/// of instances a second: only a record that holds the word is decoded.
fn drains(value: &[u8]) -> bool {
    memchr::memmem::find(value, b"DRAINING").is_some()
        && serde_json::from_slice::<InstanceRecord>(value)
            .is_ok_and(|i| i.status == InstanceStatus::Draining)
}

fn any_connection(_: &Event) -> Option<Trigger> {
    Some(Trigger::Capacity(None))
}

#[derive(Default)]
struct State {
    /// Every service known, by cluster (what a capacity change wakes).
    services: BTreeMap<String, BTreeSet<String>>,
    dirty: BTreeSet<Key>,
    wake: HashMap<Key, Instant>,
    /// Tasks that stopped, waiting for their service's next plan.
    stopped: HashMap<Key, Vec<TaskSummary>>,
    /// The services a change of capacity concerns: those short of room,
    /// and DAEMON services (a node that joins or leaves changes their
    /// count). Placement's own writes of instances wake no other.
    want_capacity: BTreeSet<Key>,
    /// The revision of each service's record this scheduler last planned
    /// on (or wrote): the watch's news of it, or of anything older, plans
    /// nothing again.
    planned: HashMap<Key, i64>,
    /// Each cluster's DRAINING instances.
    draining: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn capacity(&mut self, cluster: Option<&str>) {
        for key in &self.want_capacity {
            if cluster.is_none_or(|c| c == key.0) {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// What a plan carried out says of its service.
    fn reconciled(&mut self, key: Key, done: Reconciled) {
        if done.wants_capacity {
            self.want_capacity.insert(key.clone());
        } else {
            self.want_capacity.remove(&key);
        }
        match done.planned {
            Some(rev) => self.planned.insert(key.clone(), rev),
            None => self.planned.remove(&key),
        };
        if let Some(wake) = done.wake {
            let at = Instant::now() + wake;
            let slot = self.wake.entry(key).or_insert(at);
            *slot = (*slot).min(at);
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        self.wake.values().min().copied()
    }

    /// An instance's DRAINING or not; a change of it wakes every service
    /// of its cluster (a drain is rare, and REPLICA services do not ask
    /// for capacity changes).
    ///
    /// Placement writes thousands of instances a second, none draining:
    /// those touch the map only where the cluster has a DRAINING set.
    fn instance(&mut self, cluster: String, id: String, draining: bool) {
        let changed = if draining {
            self.draining.entry(cluster.clone()).or_default().insert(id)
        } else if let Some(set) = self.draining.get_mut(&cluster) {
            let removed = set.remove(&id);
            if set.is_empty() {
                self.draining.remove(&cluster);
            }
            removed
        } else {
            false
        };
        if changed {
            for name in self.services.get(&cluster).into_iter().flatten() {
                self.dirty.insert((cluster.clone(), name.clone()));
            }
        }
        self.capacity(Some(&cluster));
    }
}

async fn run_once(server: &Arc<Server>, fence: Fence) -> Result<()> {
    while !server.view.loaded() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The instances first: the watches go on from the revision they were
    // read at.
    let (instances, revision) = server
        .db
        .store
        .range(keys::INSTANCES.as_bytes(), None)
        .await?;
    let mut state = State::default();
    for kv in instances {
        let put = Event {
            kind: EventKind::Put,
            kv,
        };
        if let Some(Trigger::Instance {
            cluster,
            id,
            draining: true,
        }) = instance_of(&put)
        {
            state.draining.entry(cluster).or_default().insert(id);
        }
    }
    for (key, _) in server.db.list::<serde_json::Value>(keys::SERVICES).await? {
        if let Some(Trigger::Service(k, _)) = service_at(&key, 0) {
            state
                .services
                .entry(k.0.clone())
                .or_default()
                .insert(k.1.clone());
            state.dirty.insert(k);
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watches = AbortOnDrop(vec![
        tokio::spawn(watch_into(
            Arc::clone(server),
            keys::SERVICES,
            revision + 1,
            tx.clone(),
            service_of,
        )),
        tokio::spawn(watch_into(
            Arc::clone(server),
            keys::INSTANCES,
            revision + 1,
            tx.clone(),
            instance_of,
        )),
        tokio::spawn(watch_into(
            Arc::clone(server),
            keys::CONNECTED,
            revision + 1,
            tx,
            any_connection,
        )),
    ]);
    schedule(server, &mut state, &mut rx, fence).await
}

async fn schedule(
    server: &Arc<Server>,
    state: &mut State,
    rx: &mut mpsc::UnboundedReceiver<Trigger>,
    fence: Fence,
) -> Result<()> {
    loop {
        take_changes(server, state);
        let now = Instant::now();
        let due: Vec<Key> = state
            .wake
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            state.wake.remove(&k);
            state.dirty.insert(k);
        }
        // A round at a time, so that a service woken again and again does
        // not keep the others waiting.
        while !state.dirty.is_empty() {
            for key in std::mem::take(&mut state.dirty) {
                let stopped = state.stopped.remove(&key).unwrap_or_default();
                let t = std::time::Instant::now();
                let draining = state.draining.get(&key.0).cloned().unwrap_or_default();
                let r = reconcile(server, &key, &stopped, &draining, fence).await;
                tracing::debug!(service = %key.1, took = ?t.elapsed(), "reconciled");
                match r {
                    Ok(done) => state.reconciled(key, done),
                    Err(crate::Error::NotLeader) => return Err(crate::Error::NotLeader),
                    Err(e) => {
                        tracing::warn!(service = %key.1, cluster = %key.0, "scheduling: {e}");
                        state
                            .stopped
                            .entry(key.clone())
                            .or_default()
                            .extend(stopped);
                        state
                            .wake
                            .insert(key, Instant::now() + Duration::from_secs(1));
                    }
                }
            }
            take_changes(server, state);
            // What the watches saw is taken between rounds too: under a
            // steady stream of task changes the set may never empty.
            while let Ok(trigger) = rx.try_recv() {
                on_trigger(state, trigger);
            }
        }
        let sleep = state.next_wake().map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = server.view.notify.notified() => {}
            trigger = rx.recv() => match trigger {
                Some(t) => on_trigger(state, t),
                None => return Err(crate::Error::Invalid("a watch ended".into())),
            },
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// What a watch saw, into the dirty set.
fn on_trigger(state: &mut State, trigger: Trigger) {
    match trigger {
        // Planned on already (its own write, say): nothing new.
        Trigger::Service(k, rev) if state.planned.get(&k).is_some_and(|p| rev <= *p) => {}
        Trigger::Service(k, _) => {
            state
                .services
                .entry(k.0.clone())
                .or_default()
                .insert(k.1.clone());
            state.dirty.insert(k);
        }
        Trigger::Capacity(c) => state.capacity(c.as_deref()),
        Trigger::Instance {
            cluster,
            id,
            draining,
        } => state.instance(cluster, id, draining),
    }
}

/// Moves the view's changes into the dirty set.
fn take_changes(server: &Server, state: &mut State) {
    for change in server.view.take_changes() {
        let Some(name) = change.group.strip_prefix("service:") else {
            continue;
        };
        let key = (change.cluster, name.to_string());
        if let Some(t) = change.stopped {
            state.stopped.entry(key.clone()).or_default().push(t);
        }
        state.dirty.insert(key);
    }
}

/// What carrying out a service's plan left to do.
#[derive(Debug, Default)]
struct Reconciled {
    /// When to plan again.
    wake: Option<Duration>,
    /// Whether a change of capacity should wake it.
    wants_capacity: bool,
    /// The revision of the record it planned on (or wrote).
    planned: Option<i64>,
}

/// Plans one service and carries the plan out.
async fn reconcile(
    server: &Server,
    key: &Key,
    stopped: &[TaskSummary],
    draining: &BTreeSet<String>,
    fence: Fence,
) -> Result<Reconciled> {
    let record_key = keys::service(&key.0, &key.1);
    let mut carried: Vec<String> = Vec::new();
    for _ in 0..5 {
        let Some(found) = server.db.get::<ServiceRecord>(&record_key).await? else {
            return Ok(Reconciled::default());
        };
        let mut svc = found.value.clone();
        let tasks = server.view.group(&svc.cluster, &svc.group());
        let daemon_nodes = match svc.scheduling_strategy {
            Scheduling::Daemon if svc.status == ServiceStatus::Active => {
                daemon_nodes(server, &svc).await?
            }
            _ => Vec::new(),
        };
        let now = time::now();
        let p = plan::plan(
            &mut svc,
            &Situation {
                now,
                healthy_after: server.settings.healthy_after.as_secs_f64(),
                tasks: &tasks,
                stopped,
                daemon_nodes: &daemon_nodes,
                draining,
            },
        );
        let mut wake = p.wake_in.map(Duration::from_secs_f64);
        carried.extend(stop_tasks(server, &svc, &p.stop, fence).await?);
        let (said, retry) = start_tasks(server, &svc, &p.start, fence).await?;
        carried.extend(said);
        if retry {
            wake = Some(wake.map_or(RETRY, |w| w.min(RETRY)));
        }
        let wants_capacity = retry || svc.scheduling_strategy == Scheduling::Daemon;
        for message in &carried {
            svc.event(now, message.clone());
        }
        if svc == found.value {
            return Ok(Reconciled {
                wake,
                wants_capacity,
                planned: Some(found.mod_revision),
            });
        }
        svc.version += 1;
        let compares = fenced(
            vec![unchanged(&record_key, found.mod_revision)],
            Some(fence),
        );
        let txn = Txn::when(compares).and_then(vec![Op::put(record_key.as_str(), encode(&svc))]);
        if let Some(revision) = server.db.commit_at(txn).await? {
            return Ok(Reconciled {
                wake,
                wants_capacity,
                planned: Some(revision),
            });
        }
        still_leading(server, Some(fence)).await?;
        // The record changed under the plan: what was done is in the view;
        // plan again on what is there now.
    }
    Ok(Reconciled {
        wake: Some(Duration::from_millis(100)),
        wants_capacity: true,
        planned: None,
    })
}

async fn stop_tasks(
    server: &Server,
    svc: &ServiceRecord,
    stops: &[plan::Stop],
    fence: Fence,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for s in stops {
        let stopped = tasks::request_stop(
            server,
            &svc.cluster,
            &s.task,
            StopCode::ServiceSchedulerInitiated,
            s.reason.clone(),
            Some(fence),
        )
        .await?;
        if stopped.is_some() {
            done.push(format!("(task {})", s.task));
        }
    }
    Ok(if done.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "(service {}) has stopped {} running tasks: {}.",
            svc.name,
            done.len(),
            done.join(" ")
        )]
    })
}

/// The service's constraints (its own and its task definition's) and
/// strategies, parsed; they were checked when the service was written.
fn rules_of(
    svc: &ServiceRecord,
    td: &TaskDefRecord,
) -> (Vec<Constraint>, Vec<placement::Strategy>) {
    let constraints =
        placement::constraints_of(&svc.placement_constraints, &td.definition).unwrap_or_default();
    let strategies = placement::strategies_of(&svc.placement_strategy)
        .unwrap_or_else(|_| placement::default_strategies());
    (constraints, strategies)
}

/// Places the plan's new tasks. Returns the events to add and whether
/// some found no room (then the service tries again later).
async fn start_tasks(
    server: &Server,
    svc: &ServiceRecord,
    starts: &[Start],
    fence: Fence,
) -> Result<(Vec<String>, bool)> {
    let mut events = Vec::new();
    let mut short = false;
    for start in starts {
        let (deployment, count, only) = match start {
            Start::Any { deployment, count } => (deployment, *count, None),
            Start::On {
                deployment,
                instance,
            } => (deployment, 1, Some(instance.as_str())),
        };
        let Some(dep) = svc.deployments.iter().find(|d| &d.id == deployment) else {
            continue;
        };
        let rev = &dep.task_definition;
        let Some(td) = server
            .db
            .get::<TaskDefRecord>(&keys::taskdef(&rev.family, rev.revision))
            .await?
        else {
            events.push(format!(
                "(service {}) was unable to place a task because its task definition {rev} is gone.",
                svc.name
            ));
            continue;
        };
        let td = td.value;
        let (constraints, strategies) = rules_of(svc, &td);
        let mut template = TaskRecord::template(
            &svc.cluster,
            td.revision,
            td.definition.clone(),
            dep.launch_type,
            svc.group(),
        );
        template.started_by = Some(dep.id.clone());
        if svc.propagate_tags.as_deref() == Some("SERVICE") {
            template.tags = svc
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect();
        }
        let ask = tasks::Placement {
            template: &template,
            only,
            constraints: &constraints,
            strategies: &strategies,
            seed: server.settings.placement_seed ^ svc.version.rotate_left(17),
            fence: Some(fence),
        };
        let (started, misses) = tasks::place_many(server, &ask, count as usize).await?;
        if let Some(misses) = misses {
            short = true;
            events.push(unplaced(svc, &misses));
        }
        // An event names at most 10 tasks, as ECS's do.
        let mut placed: Vec<String> = started
            .iter()
            .take(10)
            .map(|t| format!("(task {})", t.id))
            .collect();
        if started.len() > 10 {
            placed.push(format!("and {} more", started.len() - 10));
        }
        if !placed.is_empty() {
            events.push(format!(
                "(service {}) has started {} tasks: {}.",
                svc.name,
                started.len(),
                placed.join(" ")
            ));
        }
    }
    // The same complaint again and again says nothing new.
    events.retain(|e| {
        !(e.contains("was unable to place")
            && svc.events.iter().take(5).any(|old| &old.message == e))
    });
    Ok((events, short))
}

/// ECS's event for a task with nowhere to go, with what every candidate
/// missed (ECS names only the closest one).
fn unplaced(svc: &ServiceRecord, misses: &tasks::Misses) -> String {
    if misses.is_empty() {
        return format!(
            "(service {}) was unable to place a task because no container instance met all of its requirements: the cluster has no container instances.",
            svc.name
        );
    }
    let each: Vec<String> = misses
        .iter()
        .map(|(id, m)| match m {
            Some(m) => format!("(container-instance {id}) {m}"),
            None => format!("(container-instance {id}) is not registered"),
        })
        .collect();
    format!(
        "(service {}) was unable to place a task because no container instance met all of its requirements. {}.",
        svc.name,
        each.join("; ")
    )
}

/// A DAEMON's nodes: the cluster's ACTIVE instances that meet its
/// constraints.
async fn daemon_nodes(server: &Server, svc: &ServiceRecord) -> Result<Vec<DaemonNode>> {
    let rev = &svc.task_definition;
    let Some(td) = server
        .db
        .get::<TaskDefRecord>(&keys::taskdef(&rev.family, rev.revision))
        .await?
    else {
        return Ok(Vec::new());
    };
    let (constraints, _) = rules_of(svc, &td.value);
    let instances: Vec<(String, Versioned<InstanceRecord>)> = server
        .db
        .list_versioned(&keys::instances_of(&svc.cluster))
        .await?;
    let connected = server.db.connected().await?;
    let mut groups = server
        .view
        .on_nodes(instances.iter().map(|(_, v)| v.value.id.as_str()));
    Ok(instances
        .iter()
        .map(|(_, v)| Live {
            record: v.value.clone(),
            connected: connected.contains(&v.value.id),
            groups: groups.remove(&v.value.id).unwrap_or_default(),
        })
        .filter(|n| !n.draining())
        .filter(|n| {
            constraints.iter().all(|c| match c {
                Constraint::MemberOf(q) => q.holds(n),
                Constraint::DistinctInstance => true,
            })
        })
        .map(|n| DaemonNode {
            id: n.record.id.clone(),
            connected: n.connected,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("c".to_string(), name.to_string())
    }

    #[test]
    fn capacity_wakes_only_the_services_that_want_it() {
        let mut state = State::default();
        for name in ["full", "short", "daemon"] {
            on_trigger(&mut state, Trigger::Service(key(name), 1));
        }
        state.dirty.clear();
        let wants = |wants_capacity| Reconciled {
            wants_capacity,
            ..Reconciled::default()
        };
        state.reconciled(key("full"), wants(false));
        state.reconciled(key("short"), wants(true));
        state.reconciled(key("daemon"), wants(true));
        on_trigger(&mut state, Trigger::Capacity(Some("c".into())));
        assert_eq!(state.dirty, BTreeSet::from([key("daemon"), key("short")]));
        state.dirty.clear();
        on_trigger(&mut state, Trigger::Capacity(Some("other".into())));
        assert!(state.dirty.is_empty());
    }

    #[test]
    fn a_service_is_not_planned_again_for_a_record_it_planned_on() {
        let mut state = State::default();
        let planned = Reconciled {
            planned: Some(7),
            ..Reconciled::default()
        };
        state.reconciled(key("web"), planned);
        on_trigger(&mut state, Trigger::Service(key("web"), 7));
        on_trigger(&mut state, Trigger::Service(key("web"), 5));
        assert!(state.dirty.is_empty(), "its own write, or older");
        on_trigger(&mut state, Trigger::Service(key("web"), 8));
        assert_eq!(state.dirty, BTreeSet::from([key("web")]));
    }

    fn instance(id: &str, draining: bool) -> Trigger {
        Trigger::Instance {
            cluster: "c".into(),
            id: id.into(),
            draining,
        }
    }

    #[test]
    fn a_drain_wakes_every_service_of_its_cluster_once() {
        let mut state = State::default();
        for name in ["a", "b"] {
            on_trigger(&mut state, Trigger::Service(key(name), 1));
            state.reconciled(key(name), Reconciled::default());
        }
        state.dirty.clear();
        on_trigger(&mut state, instance("i1", true));
        assert_eq!(state.dirty, BTreeSet::from([key("a"), key("b")]));
        assert_eq!(state.draining["c"], BTreeSet::from(["i1".to_string()]));
        state.dirty.clear();
        // Placement's writes of a drained node, and of others: nothing new.
        on_trigger(&mut state, instance("i1", true));
        on_trigger(&mut state, instance("i2", false));
        assert!(state.dirty.is_empty());
        on_trigger(&mut state, instance("i1", false));
        assert_eq!(state.dirty.len(), 2, "back to ACTIVE: room again");
        assert!(state.draining.is_empty());
    }

    #[test]
    fn only_the_status_says_draining() {
        let mut i: InstanceRecord = serde_json::from_value(serde_json::json!({
            "id": "i1", "cluster": "c", "hostname": "h", "address": "10.0.0.1",
            "status": "ACTIVE", "agentVersion": "1",
            "registered": {"cpu": 1, "memory": 1, "ports": []},
            "remaining": {"cpu": 1, "memory": 1, "ports": []},
            "attributes": [{"name": "DRAINING", "value": "DRAINING"}],
            "registeredAt": 0.0, "version": 1,
        }))
        .unwrap();
        assert!(!drains(&serde_json::to_vec(&i).unwrap()));
        i.status = InstanceStatus::Draining;
        assert!(drains(&serde_json::to_vec(&i).unwrap()));
        assert!(!drains(b"not json, DRAINING"));
    }
}
