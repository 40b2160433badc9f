//! The control plane's view of its live tasks, kept in memory from a
//! watch of `tasks/`: what placement counts on each node (tasks by group)
//! and what the service scheduler counts for each service, without a scan
//! of every task.
//!
//! A task is in the view from its placement until it is STOPPED; the move
//! to STOPPED is handed to the scheduler as a [`Change`] (it counts
//! failures from it). Whoever places a task puts it in the view at once
//! ([`View::committed`]), so the next decision sees it before the watch
//! delivers it; an update older than what the view holds is ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use estiba_state::{EventKind, Store};
use tokio::sync::Notify;

use crate::api::Server;
use crate::task::{Health, Status, StopCode, TaskRecord};
use crate::{keys, Result};

/// What the scheduler and placement need of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSummary {
    pub cluster: String,
    pub id: String,
    /// The instance it is on, and the pool that instance is in (the
    /// cluster, or the FARGATE capacity).
    pub instance: Option<String>,
    pub group: Option<String>,
    /// A service's tasks: the deployment that started them.
    pub started_by: Option<String>,
    pub family: String,
    pub revision: u32,
    pub last_status: Status,
    pub desired_status: Status,
    /// Whether an essential container has a health check: then healthy
    /// means HEALTHY, else running long enough.
    pub checked: bool,
    pub health: Health,
    pub created_at: f64,
    pub started_at: Option<f64>,
    /// CPU units and MiB it reserves on its node.
    pub reserved_cpu: i64,
    pub reserved_memory: i64,
    pub stop_code: Option<StopCode>,
    pub stopped_reason: Option<String>,
    pub mod_revision: i64,
}

impl TaskSummary {
    pub fn of(t: &TaskRecord, mod_revision: i64) -> TaskSummary {
        TaskSummary {
            cluster: t.cluster.clone(),
            id: t.id.clone(),
            instance: t.instance.clone(),
            group: t.group.clone(),
            started_by: t.started_by.clone(),
            family: t.definition.family.clone(),
            revision: t.revision,
            last_status: t.last_status,
            desired_status: t.desired_status,
            checked: t
                .definition
                .container_definitions
                .iter()
                .any(|d| d.is_essential() && d.health_check.is_some()),
            health: crate::task::health_of(t),
            created_at: t.created_at,
            started_at: t.started_at,
            reserved_cpu: t.reserved.cpu,
            reserved_memory: t.reserved.memory,
            stop_code: t.stop_code,
            stopped_reason: t.stopped_reason.clone(),
            mod_revision,
        }
    }

    fn key(&self) -> String {
        keys::task(&self.cluster, &self.id)
    }
}

/// Counts a task into (RUNNING, PENDING or earlier), as ECS's runningCount
/// and pendingCount do.
pub fn tally(slot: &mut (usize, usize), status: Status) {
    match status {
        Status::Running => slot.0 += 1,
        s if s < Status::Running => slot.1 += 1,
        _ => {}
    }
}

/// Takes a task out of what [`tally`] counted.
fn untally(slot: &mut (usize, usize), status: Status) {
    match status {
        Status::Running => slot.0 = slot.0.saturating_sub(1),
        s if s < Status::Running => slot.1 = slot.1.saturating_sub(1),
        _ => {}
    }
}

/// RUNNING and PENDING counts by the deployment that started the tasks.
pub type Counts = HashMap<Option<String>, (usize, usize)>;

/// A task of a group changed; `stopped` is set when it has just STOPPED.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub cluster: String,
    pub group: String,
    pub stopped: Option<TaskSummary>,
}

#[derive(Debug, Default)]
struct Inner {
    loaded: bool,
    /// The last revision the watch applied.
    revision: i64,
    tasks: HashMap<String, TaskSummary>,
    by_group: HashMap<(String, String), BTreeSet<String>>,
    /// Each group's [`Counts`], kept as tasks come and go: DescribeServices
    /// reads them without a walk of the group's tasks.
    counts: HashMap<(String, String), Counts>,
    on_node: HashMap<String, BTreeMap<String, u32>>,
    /// Tasks whose commit is on its way (`View::landing`), so that the
    /// watch need not decode them when they come: a placement batch's
    /// commit is published to the watch before its writer hears back.
    landing: HashMap<String, TaskSummary>,
    /// Kept only while a scheduler takes them.
    subscribed: bool,
    changes: Vec<Change>,
}

#[derive(Debug, Default)]
pub struct View {
    inner: Mutex<Inner>,
    /// Woken when changes are waiting.
    pub notify: Notify,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<TaskSummary> {
        let old = self.tasks.remove(key)?;
        if let Some(g) = &old.group {
            let k = (old.cluster.clone(), g.clone());
            if let Some(set) = self.by_group.get_mut(&k) {
                set.remove(key);
                if set.is_empty() {
                    self.by_group.remove(&k);
                }
            }
            if let Some(counts) = self.counts.get_mut(&k) {
                if let Some(slot) = counts.get_mut(&old.started_by) {
                    untally(slot, old.last_status);
                    if *slot == (0, 0) {
                        counts.remove(&old.started_by);
                    }
                }
                if counts.is_empty() {
                    self.counts.remove(&k);
                }
            }
            if let Some(node) = old.instance.as_ref().and_then(|i| self.on_node.get_mut(i)) {
                if let Some(n) = node.get_mut(g) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        node.remove(g);
                    }
                }
            }
        }
        Some(old)
    }

    fn insert(&mut self, t: TaskSummary) {
        let key = t.key();
        if let Some(g) = &t.group {
            self.by_group
                .entry((t.cluster.clone(), g.clone()))
                .or_default()
                .insert(key.clone());
            tally(
                self.counts
                    .entry((t.cluster.clone(), g.clone()))
                    .or_default()
                    .entry(t.started_by.clone())
                    .or_default(),
                t.last_status,
            );
            if let Some(i) = &t.instance {
                *self
                    .on_node
                    .entry(i.clone())
                    .or_default()
                    .entry(g.clone())
                    .or_default() += 1;
            }
        }
        self.tasks.insert(key, t);
    }

    /// Applies a task's new state (None: deleted). Older than what is
    /// held: ignored. With `tell`, a scheduler hears of it.
    fn apply(&mut self, key: &str, new: Option<TaskSummary>, mod_revision: i64, tell: bool) {
        if self
            .tasks
            .get(key)
            .is_some_and(|old| old.mod_revision >= mod_revision)
        {
            return;
        }
        let old = self.remove(key);
        let Some(new) = new else { return };
        let group = new.group.clone();
        let just_stopped = new.last_status == Status::Stopped
            && old
                .as_ref()
                .is_none_or(|o| o.last_status != Status::Stopped);
        if new.last_status != Status::Stopped {
            self.insert(new.clone());
        }
        if let (true, Some(group)) = (self.subscribed && (tell || just_stopped), group) {
            self.changes.push(Change {
                cluster: new.cluster.clone(),
                group,
                stopped: just_stopped.then_some(new),
            });
        }
    }
}

impl View {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn loaded(&self) -> bool {
        self.lock().loaded
    }

    /// Changes from now on are kept for [`View::take_changes`].
    pub fn subscribe(&self) {
        self.lock().subscribed = true;
    }

    /// No scheduler takes changes any more: they are dropped.
    pub fn unsubscribe(&self) {
        let mut inner = self.lock();
        inner.subscribed = false;
        inner.changes.clear();
    }

    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut self.lock().changes)
    }

    /// A task its writer (placement, a stop) just committed at
    /// `revision`: in the view now, unless the watch has already gone past
    /// that revision. The writer knows what it did: no scheduler is woken for it
    /// (the watch's copy of it is then ignored), unless it stopped.
    pub fn committed(&self, t: &TaskRecord, revision: i64) {
        let key = keys::task(&t.cluster, &t.id);
        let mut inner = self.lock();
        let landing = inner.landing.remove(&key);
        // At the watch's own revision too: a transaction's events all
        // carry its revision, and the watch may be part-way through them
        // (the ones it has applied already are ignored by `apply`).
        if inner.loaded && revision >= inner.revision {
            let mut summary = landing.unwrap_or_else(|| TaskSummary::of(t, revision));
            summary.mod_revision = revision;
            inner.apply(&key, Some(summary), revision, false);
        }
    }

    /// Tasks whose commit is about to start: when the watch brings one,
    /// it is taken as its writer's, as [`View::committed`] would.
    pub fn landing(&self, tasks: &[TaskRecord]) {
        let mut inner = self.lock();
        for t in tasks {
            inner
                .landing
                .insert(keys::task(&t.cluster, &t.id), TaskSummary::of(t, 0));
        }
    }

    /// Tasks whose commit failed, or may have: the watch decodes them if
    /// they come after all.
    pub fn not_landed(&self, tasks: &[TaskRecord]) {
        let mut inner = self.lock();
        for t in tasks {
            inner.landing.remove(&keys::task(&t.cluster, &t.id));
        }
    }

    /// The live tasks of a group.
    pub fn group(&self, cluster: &str, group: &str) -> Vec<TaskSummary> {
        let inner = self.lock();
        inner
            .by_group
            .get(&(cluster.to_string(), group.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|k| inner.tasks.get(k).cloned())
            .collect()
    }

    /// RUNNING and PENDING (or earlier) tasks of a group by the deployment
    /// that started them: what DescribeServices shows.
    pub fn counts(&self, cluster: &str, group: &str) -> Counts {
        self.lock()
            .counts
            .get(&(cluster.to_string(), group.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Live tasks by group on each of the given instances.
    pub fn on_nodes<'a>(
        &self,
        instances: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, BTreeMap<String, u32>> {
        let inner = self.lock();
        instances
            .filter_map(|i| inner.on_node.get(i).map(|g| (i.to_string(), g.clone())))
            .collect()
    }

    fn reset(&self, tasks: Vec<(String, TaskSummary)>, revision: i64) {
        let mut inner = self.lock();
        let subscribed = inner.subscribed;
        *inner = Inner {
            subscribed,
            ..Inner::default()
        };
        for (key, t) in tasks {
            let rev = t.mod_revision;
            // Stopped tasks of deployments are handed over once, so a
            // restarted scheduler still counts its deployments' failures.
            let historic = t.last_status == Status::Stopped
                && t.started_by
                    .as_deref()
                    .is_some_and(|s| s.starts_with("ecs-svc/"));
            if historic && subscribed {
                if let Some(g) = &t.group {
                    inner.changes.push(Change {
                        cluster: t.cluster.clone(),
                        group: g.clone(),
                        stopped: Some(t.clone()),
                    });
                }
            }
            inner.apply(&key, Some(t), rev, true);
        }
        inner.revision = revision;
        inner.loaded = true;
    }
}

/// Keeps the server's view from the store for the life of the server: a
/// full read, then a watch from the revision read; a failed watch reads
/// again.
pub async fn follow(server: Arc<Server>) {
    loop {
        if let Err(e) = follow_once(&server).await {
            tracing::warn!("following the tasks: {e}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn summary_of(key: &[u8], value: &[u8], mod_revision: i64) -> Option<TaskSummary> {
    match serde_json::from_slice::<TaskRecord>(value) {
        Ok(t) => Some(TaskSummary::of(&t, mod_revision)),
        Err(e) => {
            tracing::error!(key = %String::from_utf8_lossy(key), "a task record does not parse: {e}");
            None
        }
    }
}

async fn follow_once(server: &Arc<Server>) -> Result<()> {
    let (kvs, revision) = server.db.store.range(keys::TASKS.as_bytes(), None).await?;
    let tasks = kvs
        .iter()
        .filter_map(|kv| {
            let t = summary_of(&kv.key, &kv.value, kv.mod_revision)?;
            Some((String::from_utf8_lossy(&kv.key).into_owned(), t))
        })
        .collect();
    server.view.reset(tasks, revision);
    server.view.notify.notify_one();
    let mut watch = server
        .db
        .store
        .watch(keys::TASKS.as_bytes(), revision + 1)
        .await?;
    while let Some(event) = watch.next().await {
        let event = event?;
        let key = String::from_utf8_lossy(&event.kv.key).into_owned();
        let rev = event.kv.mod_revision;
        {
            // Its writer put it in the view already (`committed`): not
            // decoded again.
            let mut inner = server.view.lock();
            if inner.tasks.get(&key).is_some_and(|t| t.mod_revision >= rev) {
                inner.revision = inner.revision.max(rev);
                continue;
            }
            // Its writer is still waiting for the commit: its summary is
            // here already, and it wakes no scheduler, as `committed`.
            let landed = matches!(event.kind, EventKind::Put)
                .then(|| inner.landing.remove(&key))
                .flatten();
            if let Some(mut summary) = landed {
                summary.mod_revision = rev;
                inner.apply(&key, Some(summary), rev, false);
                inner.revision = inner.revision.max(rev);
                continue;
            }
        }
        let new = match event.kind {
            EventKind::Put => summary_of(&event.kv.key, &event.kv.value, rev),
            EventKind::Delete => None,
        };
        let mut inner = server.view.lock();
        inner.apply(&key, new, rev, true);
        inner.revision = inner.revision.max(rev);
        let waiting = !inner.changes.is_empty();
        drop(inner);
        if waiting {
            server.view.notify.notify_one();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, status: Status, rev: i64) -> TaskSummary {
        TaskSummary {
            cluster: "c".into(),
            id: id.into(),
            instance: Some("n1".into()),
            group: Some("service:web".into()),
            started_by: Some("ecs-svc/1".into()),
            family: "web".into(),
            revision: 1,
            last_status: status,
            desired_status: Status::Running,
            checked: false,
            health: Health::Unknown,
            created_at: 0.0,
            started_at: None,
            reserved_cpu: 0,
            reserved_memory: 0,
            stop_code: None,
            stopped_reason: None,
            mod_revision: rev,
        }
    }

    fn record(id: &str) -> TaskRecord {
        let mut t = TaskRecord::template(
            "c",
            1,
            estiba_ecs::taskdef::TaskDefinition::default(),
            crate::task::LaunchType::Ec2,
            "service:web".into(),
        );
        t.id = id.into();
        t.instance = Some("n1".into());
        t.last_status = Status::Pending;
        t.started_by = Some("ecs-svc/1".into());
        t
    }

    #[test]
    fn a_batch_counts_whole_while_the_watch_is_part_way_through_its_revision() {
        let view = View::default();
        view.reset(vec![], 1);
        let batch = [record("t1"), record("t2")];
        view.landing(&batch);
        // The watch has applied t1 of the batch's revision 5, not t2 yet.
        {
            let mut inner = view.lock();
            let key = keys::task("c", "t1");
            let mut s = inner.landing.remove(&key).expect("landing");
            s.mod_revision = 5;
            inner.apply(&key, Some(s), 5, false);
            inner.revision = 5;
        }
        for t in &batch {
            view.committed(t, 5);
        }
        let counts = view.counts("c", "service:web");
        assert_eq!(counts[&Some("ecs-svc/1".into())], (0, 2));
    }

    #[test]
    fn a_task_counts_until_it_stops_and_its_stop_is_handed_over_once() {
        let view = View::default();
        view.subscribe();
        view.reset(vec![], 1);
        let mut inner = view.lock();
        let key = keys::task("c", "t1");
        inner.apply(&key, Some(summary("t1", Status::Pending, 2)), 2, true);
        inner.apply(&key, Some(summary("t1", Status::Running, 3)), 3, true);
        // An older update (a placer late with its own copy) changes nothing.
        inner.apply(&key, Some(summary("t1", Status::Pending, 2)), 2, true);
        assert_eq!(inner.tasks[&key].last_status, Status::Running);
        assert_eq!(inner.on_node["n1"]["service:web"], 1);
        let counted = |inner: &Inner| {
            inner
                .counts
                .get(&("c".into(), "service:web".into()))
                .cloned()
        };
        assert_eq!(
            counted(&inner).unwrap_or_default()[&Some("ecs-svc/1".into())],
            (1, 0),
            "RUNNING now, no longer PENDING"
        );
        inner.apply(&key, Some(summary("t1", Status::Stopped, 4)), 4, true);
        assert!(inner.tasks.is_empty() && inner.by_group.is_empty());
        assert_eq!(counted(&inner), None);
        assert!(inner.on_node["n1"].is_empty());
        drop(inner);
        let changes = view.take_changes();
        assert_eq!(changes.len(), 3);
        assert!(changes[..2].iter().all(|c| c.stopped.is_none()));
        assert_eq!(
            changes[2].stopped.as_ref().map(|t| t.id.as_str()),
            Some("t1")
        );
        assert!(view.take_changes().is_empty());
    }
}
