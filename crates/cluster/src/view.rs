//! The control plane's view of its live tasks, kept in memory from a
//! watch of `tasks/`: what placement counts on each node (tasks by group),
//! what the service scheduler counts for each service, and what each
//! node's agent has to hear of (its long poll, [`View::news`]), without a
//! scan of every task.
//!
//! A task is in the view from its placement until it is STOPPED; the move
//! to STOPPED is handed to the scheduler as a [`Change`] (it counts
//! failures from it). Whoever places a task puts it in the view at once
//! ([`View::committed`]), so the next decision sees it before the watch
//! delivers it; an update older than what the view holds is ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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

/// How long a caller waits for the view to load before it gives up.
const LOADING: Duration = Duration::from_secs(30);

/// Removals a node keeps for its agent's poll; an agent further behind
/// gets its whole set.
const GONE_KEPT: usize = 64;

/// A node's tasks as its agent hears of them.
#[derive(Debug, Default)]
struct NodeTasks {
    /// Each live task's key, and the revision from which its agent has to
    /// hear of it: its placement, or the request to stop it. (Its agent's
    /// own reports change the task, not this.)
    live: HashMap<String, i64>,
    /// Tasks that left the node (STOPPED, or deleted): the revision and
    /// the task's id, oldest first, at most [`GONE_KEPT`].
    gone: VecDeque<(i64, String)>,
    /// Removals up to this revision were let go.
    horizon: i64,
}

/// What a node's agent has to hear of since a revision.
#[derive(Debug, Default, PartialEq)]
pub struct News {
    /// Every change through it is in: the agent's next `after`.
    pub revision: i64,
    /// The keys of the tasks to send.
    pub tasks: Vec<String>,
    /// The ids of tasks that left the node.
    pub removed: Vec<String>,
    /// `tasks` is the node's whole set.
    pub full: bool,
}

impl News {
    /// Nothing to hear of (a whole set, even an empty one, is news).
    pub fn is_empty(&self) -> bool {
        !self.full && self.tasks.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, Default)]
struct Inner {
    loaded: bool,
    /// The last revision the watch applied.
    revision: i64,
    /// The revision through which the watch has applied every change (it
    /// may be part-way through the next), and the one the view was read at.
    complete: i64,
    base: i64,
    nodes: HashMap<String, NodeTasks>,
    /// Nodes with news at a revision the watch has not completed yet.
    news: BTreeMap<i64, BTreeSet<String>>,
    /// Agents' polls waiting for news, by node.
    waiters: HashMap<String, Arc<Notify>>,
    /// Boxed: at a million tasks the map's growth moves every entry, and a
    /// summary inline is ~250 bytes (a 2^21-slot table of them is half a
    /// gigabyte, allocated, filled and freed under the view's lock).
    tasks: HashMap<String, Box<TaskSummary>>,
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
        let old = *self.tasks.remove(key)?;
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
        self.tasks.insert(key, Box::new(t));
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
        let live = new.as_ref().filter(|n| n.last_status != Status::Stopped);
        self.track(key, old.as_ref(), live, mod_revision);
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

impl Inner {
    /// Keeps the nodes' sets as a task comes, changes or goes (`new`: None
    /// once it is STOPPED or gone).
    fn track(&mut self, key: &str, old: Option<&TaskSummary>, new: Option<&TaskSummary>, rev: i64) {
        let was_on = old.and_then(|o| o.instance.clone());
        let is_on = new.and_then(|n| n.instance.clone());
        if let Some(on) = was_on.as_ref().filter(|o| Some(*o) != is_on.as_ref()) {
            let node = self.nodes.entry(on.clone()).or_default();
            node.live.remove(key);
            node.gone
                .push_back((rev, old.map(|o| o.id.clone()).unwrap_or_default()));
            if node.gone.len() > GONE_KEPT {
                if let Some((r, _)) = node.gone.pop_front() {
                    node.horizon = r;
                }
            }
            self.tell_node(on, rev);
        }
        let (Some(on), Some(new)) = (is_on, new) else {
            return;
        };
        let heard = old.is_some_and(|o| {
            o.instance.as_ref() == Some(&on) && o.desired_status == new.desired_status
        });
        let node = self.nodes.entry(on.clone()).or_default();
        if heard && node.live.contains_key(key) {
            return;
        }
        node.live.insert(key.to_string(), rev);
        self.tell_node(&on, rev);
    }

    /// A node has news at `rev`: its polls wake once the watch has every
    /// change through `rev`.
    fn tell_node(&mut self, node: &str, rev: i64) {
        if rev <= self.complete {
            if let Some(w) = self.waiters.get(node) {
                w.notify_waiters();
            }
        } else {
            self.news.entry(rev).or_default().insert(node.to_string());
        }
    }

    /// The watch has every change through `rev`: the nodes with news up
    /// to it are woken.
    fn complete_through(&mut self, rev: i64) {
        self.complete = self.complete.max(rev);
        while let Some(entry) = self.news.first_entry() {
            if *entry.key() > self.complete {
                break;
            }
            for node in entry.remove() {
                if let Some(w) = self.waiters.get(&node) {
                    w.notify_waiters();
                }
            }
        }
    }

    fn news(&self, instance: &str, after: i64) -> Option<News> {
        if !self.loaded || after > self.complete {
            return None;
        }
        let node = self.nodes.get(instance);
        let revision = self.complete;
        let horizon = node.map_or(0, |n| n.horizon);
        if after <= 0 || after < self.base || after < horizon {
            let mut tasks: Vec<String> = node
                .into_iter()
                .flat_map(|n| n.live.keys().cloned())
                .collect();
            tasks.sort();
            return Some(News {
                revision,
                tasks,
                removed: Vec::new(),
                full: true,
            });
        }
        let new = |rev: i64| rev > after && rev <= revision;
        let Some(node) = node else {
            return Some(News {
                revision,
                ..News::default()
            });
        };
        let mut tasks: Vec<String> = node
            .live
            .iter()
            .filter(|(_, rev)| new(**rev))
            .map(|(k, _)| k.clone())
            .collect();
        tasks.sort();
        let removed = node
            .gone
            .iter()
            .filter(|(rev, _)| new(*rev))
            .map(|(_, id)| id.clone())
            .collect();
        Some(News {
            revision,
            tasks,
            removed,
            full: false,
        })
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
            .filter_map(|k| inner.tasks.get(k).map(|t| TaskSummary::clone(t)))
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

    /// The live tasks on an instance; None until the view is loaded.
    pub fn on_node(&self, instance: &str) -> Option<Vec<TaskSummary>> {
        let inner = self.lock();
        if !inner.loaded {
            return None;
        }
        let keys = inner.nodes.get(instance).map(|n| &n.live);
        Some(
            keys.into_iter()
                .flat_map(|live| live.keys())
                .filter_map(|k| inner.tasks.get(k).map(|t| TaskSummary::clone(t)))
                .collect(),
        )
    }

    /// The live tasks on an instance, once the view is loaded (it waits
    /// up to [`LOADING`] for that).
    pub async fn loaded_on_node(&self, instance: &str) -> Result<Vec<TaskSummary>> {
        let deadline = tokio::time::Instant::now() + LOADING;
        loop {
            if let Some(tasks) = self.on_node(instance) {
                return Ok(tasks);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(crate::Error::Loading);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What an instance's agent has to hear of after revision `after`
    /// (0: everything): through the revision the watch has completed.
    /// None while the view is loading, or behind `after` (the agent last
    /// polled a replica further on).
    pub fn news(&self, instance: &str, after: i64) -> Option<News> {
        self.lock().news(instance, after)
    }

    /// What wakes a poll of an instance's news: [`Notify::notify_waiters`]
    /// when it may have some (enable the `Notified` before asking).
    pub fn waiter(&self, instance: &str) -> Arc<Notify> {
        Arc::clone(self.lock().waiters.entry(instance.to_string()).or_default())
    }

    fn reset(&self, tasks: Vec<(String, TaskSummary)>, revision: i64) {
        let mut inner = self.lock();
        let subscribed = inner.subscribed;
        let waiters = std::mem::take(&mut inner.waiters);
        *inner = Inner {
            subscribed,
            waiters,
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
        inner.complete = revision;
        inner.base = revision;
        inner.news.clear();
        inner.loaded = true;
        // Every poll asks again: one from before `base` gets the whole set.
        for w in inner.waiters.values() {
            w.notify_waiters();
        }
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
        let whole = watch.at_revision_end();
        let done = |inner: &mut Inner| {
            inner.revision = inner.revision.max(rev);
            if whole {
                inner.complete_through(rev);
            }
        };
        {
            // Its writer put it in the view already (`committed`): not
            // decoded again.
            let mut inner = server.view.lock();
            if inner.tasks.get(&key).is_some_and(|t| t.mod_revision >= rev) {
                done(&mut inner);
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
                done(&mut inner);
                continue;
            }
        }
        let new = match event.kind {
            EventKind::Put => summary_of(&event.kv.key, &event.kv.value, rev),
            EventKind::Delete => None,
        };
        let mut inner = server.view.lock();
        inner.apply(&key, new, rev, true);
        done(&mut inner);
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

    fn news(view: &View, after: i64) -> (i64, Vec<String>, Vec<String>, bool) {
        let n = view.news("n1", after).expect("loaded, not behind");
        (n.revision, n.tasks, n.removed, n.full)
    }

    #[test]
    fn an_agent_hears_of_a_placement_a_stop_request_and_a_removal_not_of_its_reports() {
        let view = View::default();
        view.reset(vec![], 1);
        let key = keys::task("c", "t1");
        let at = |status: Status, desired: Status, rev: i64| {
            let mut inner = view.lock();
            let mut s = summary("t1", status, rev);
            s.desired_status = desired;
            inner.apply(&key, Some(s), rev, true);
            inner.revision = rev;
            inner.complete_through(rev);
        };
        at(Status::Pending, Status::Running, 2);
        assert_eq!(news(&view, 0), (2, vec![key.clone()], vec![], true));
        assert_eq!(news(&view, 1), (2, vec![key.clone()], vec![], false));
        assert_eq!(news(&view, 2), (2, vec![], vec![], false));
        // Its agent's report: nothing for the agent to hear.
        at(Status::Running, Status::Running, 3);
        assert_eq!(news(&view, 2), (3, vec![], vec![], false));
        at(Status::Running, Status::Stopped, 4);
        assert_eq!(news(&view, 3), (4, vec![key.clone()], vec![], false));
        at(Status::Stopped, Status::Stopped, 5);
        assert_eq!(news(&view, 4), (5, vec![], vec!["t1".to_string()], false));
        assert_eq!(news(&view, 0), (5, vec![], vec![], true));
        assert!(view.news("n1", 6).is_none(), "behind the agent");
        assert!(View::default().news("n1", 0).is_none(), "not loaded");
    }

    #[tokio::test]
    async fn news_waits_for_the_end_of_its_revision_and_then_wakes_the_poll() {
        let view = View::default();
        view.reset(vec![], 1);
        let waiter = view.waiter("n1");
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            // The watch at revision 2, part-way through it.
            let mut inner = view.lock();
            let key = keys::task("c", "t1");
            inner.apply(&key, Some(summary("t1", Status::Pending, 2)), 2, true);
            inner.revision = 2;
        }
        assert_eq!(news(&view, 1), (1, vec![], vec![], false));
        view.lock().complete_through(2);
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("the poll is woken");
        assert_eq!(news(&view, 1).1, [keys::task("c", "t1")]);
    }

    #[test]
    fn an_agent_too_far_behind_on_removals_gets_its_whole_set() {
        let view = View::default();
        view.reset(vec![], 1);
        let mut inner = view.lock();
        let mut rev = 1;
        for i in 0..=GONE_KEPT {
            let id = format!("t{i}");
            let key = keys::task("c", &id);
            for status in [Status::Pending, Status::Stopped] {
                rev += 1;
                inner.apply(&key, Some(summary(&id, status, rev)), rev, true);
            }
        }
        inner.complete_through(rev);
        drop(inner);
        assert!(news(&view, 1).3, "the oldest removal was let go");
        let (_, _, removed, full) = news(&view, rev - 2);
        assert_eq!((removed, full), (vec![format!("t{GONE_KEPT}")], false));
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
