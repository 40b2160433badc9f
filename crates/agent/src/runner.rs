//! One task's life on the node, as ECS's agent leads it:
//!
//! 1. PENDING: images are got (under the pull behaviour) and every
//!    container is created;
//! 2. containers start in dependency order — `dependsOn` START, COMPLETE,
//!    SUCCESS and HEALTHY, `links` as START — each waiting at most its
//!    `startTimeout`; the task is RUNNING once all have started;
//! 3. an essential container's exit, or a desired status of STOPPED,
//!    stops the task: containers stop in reverse dependency order (a
//!    container stops once nothing that depends on it still runs), each
//!    with SIGTERM and then SIGKILL after its own `stopTimeout`;
//! 4. STOPPED is reported with every container's exit code.
//!
//! Containers are followed through the engine's event journal (die and
//! health events, routed here by the agent), never by polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use estiba_cluster::task::{ContainerState, Health, NetworkBinding, Status, StopCode, TaskRecord};
use estiba_cluster::wire::Report;
use estiba_ecs::taskdef::{Condition, ContainerDefinition, NetworkMode};
use estiba_engine::{AsyncEngine, ContainerRecord};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::images::{self, PullBehavior};
use crate::{containers, pod, Error};

/// ECS's default for how long a container gets between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a container waits for its dependencies when it sets no
/// `startTimeout`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);

/// What the node shares among its tasks.
pub struct Shared {
    pub engine: AsyncEngine,
    pub store: estiba_store::Store,
    pub client: Client,
    pub pull: PullBehavior,
    /// Mirrors to pull through (`--registries-conf`).
    pub registries: crate::registries::Registries,
    /// The task metadata endpoint's view of the node's tasks.
    pub metadata: Arc<crate::metadata::Registry>,
}

/// What reaches a task's runner.
#[derive(Clone, Debug)]
pub enum Msg {
    /// The control plane's desired status for the task.
    Desired(Status),
    Died {
        container: String,
        exit_code: i32,
    },
    Health {
        container: String,
        health: Health,
    },
}

/// Why a task stops.
#[derive(Clone, Debug)]
struct Cause {
    code: Option<StopCode>,
    reason: String,
}

impl Cause {
    fn new(code: StopCode, reason: impl Into<String>) -> Cause {
        Cause {
            code: Some(code),
            reason: reason.into(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    def: ContainerDefinition,
    id: Option<String>,
    state: ContainerState,
    /// Epoch seconds of the last restart under its restartPolicy.
    restarted_at: Option<f64>,
}

impl Slot {
    fn started(&self) -> bool {
        self.state.started_at.is_some()
    }
    fn exited(&self) -> bool {
        self.state.last_status == Some(Status::Stopped)
    }
    fn running(&self) -> bool {
        self.started() && !self.exited()
    }
}

pub struct Runner {
    shared: Arc<Shared>,
    task: TaskRecord,
    slots: Vec<Slot>,
    rx: mpsc::Receiver<Msg>,
    pull_started_at: Option<f64>,
    pull_stopped_at: Option<f64>,
    /// awsvpc: the address of the task's pod.
    address: Option<std::net::Ipv4Addr>,
    /// The task's secrets, asked for when the first container that has
    /// some is created; held in memory only.
    secrets: Option<estiba_cluster::wire::TaskSecrets>,
    /// When the runner began, and when its containers were all created:
    /// the start-up timeline logged at RUNNING.
    began: Instant,
    created: Option<Instant>,
}

fn now() -> f64 {
    estiba_cluster::time::now()
}

/// The engine's health status word as ECS's.
pub fn health_of(status: &str) -> Health {
    match status {
        "healthy" => Health::Healthy,
        "unhealthy" => Health::Unhealthy,
        _ => Health::Unknown,
    }
}

impl Runner {
    /// A runner for `task`; `adopted` are its containers already on the
    /// node (after an agent restart).
    pub fn new(
        shared: Arc<Shared>,
        task: TaskRecord,
        adopted: &[ContainerRecord],
        rx: mpsc::Receiver<Msg>,
    ) -> Runner {
        let slots = task
            .definition
            .container_definitions
            .iter()
            .map(|def| {
                let record = adopted
                    .iter()
                    .find(|r| r.name == containers::name(&task.id, &def.name));
                Slot {
                    def: def.clone(),
                    id: record.map(|r| r.id.clone()),
                    state: adopted_state(def, record),
                    restarted_at: None,
                }
            })
            .collect();
        Runner {
            shared,
            task,
            slots,
            rx,
            pull_started_at: None,
            pull_stopped_at: None,
            address: None,
            secrets: None,
            began: Instant::now(),
            created: None,
        }
    }

    /// Leads the task to STOPPED (or until the agent drops its channel).
    pub async fn run(mut self) {
        let span = tracing::info_span!("task", task = %self.task.id);
        let _ = tracing::Instrument::instrument(self.life(), span).await;
    }

    async fn life(&mut self) -> Option<()> {
        let adopted = self.slots.iter().any(|s| s.id.is_some());
        if self.task.desired_status == Status::Stopped {
            // Stopped before it ran here, or while the agent was away.
            if adopted {
                let cause = Cause::new(StopCode::UserInitiated, "Task stopped by user");
                self.stop_all(cause).await;
            } else {
                self.report(Status::Stopped, None).await;
            }
            return Some(());
        }
        let cause = match self.begin(adopted).await {
            Err(cause) => cause,
            Ok(()) => match self.start_in_order().await? {
                Some(cause) => cause,
                None => {
                    let started = Instant::now();
                    self.report(Status::Running, None).await;
                    self.log_timeline(started);
                    self.watch().await?
                }
            },
        };
        self.stop_all(cause).await;
        Some(())
    }

    /// PENDING: images and containers. An adopted task has them.
    async fn begin(&mut self, adopted: bool) -> Result<(), Cause> {
        let awsvpc = self.task.definition.network() == NetworkMode::Awsvpc;
        if adopted {
            tracing::info!("re-adopted its containers");
            if awsvpc {
                self.address = pod::address(&self.shared.engine, &self.task.id).await;
            }
            for i in 0..self.slots.len() {
                if let (true, Some(id)) = (self.slots[i].running(), self.slots[i].id.clone()) {
                    self.slots[i].state.network_bindings = bindings(&self.shared.engine, &id).await;
                }
            }
            if let Some(s) = self
                .slots
                .iter()
                .find(|s| s.def.is_essential() && s.exited())
            {
                return Err(Cause::new(
                    StopCode::EssentialContainerExited,
                    format!(
                        "Essential container in task exited ({} exited while the agent was away)",
                        s.def.name
                    ),
                ));
            }
            return Ok(());
        }
        // PROVISIONING (as the control plane placed it): an awsvpc task's
        // namespace and address first, as ECS attaches its ENI.
        if awsvpc {
            let redirect = self.shared.metadata.pod_redirect();
            match pod::ensure(&self.shared.engine, &self.task, redirect).await {
                Ok(ip) => self.address = Some(ip),
                Err(e) => {
                    return Err(Cause::new(
                        StopCode::TaskFailedToStart,
                        format!("ResourceInitializationError: the task's network namespace: {e}"),
                    ))
                }
            }
        } else if pod::needed(&self.task) {
            if let Err(e) = pod::ensure_namespaces(&self.shared.engine, &self.task).await {
                return Err(Cause::new(
                    StopCode::TaskFailedToStart,
                    format!("ResourceInitializationError: the task's shared namespaces: {e}"),
                ));
            }
        }
        self.report(Status::Pending, None).await;
        self.pull_started_at = Some(now());
        for i in 0..self.slots.len() {
            let image = self.slots[i].def.image.clone();
            let login = if self.slots[i].def.repository_credentials.is_some() {
                let name = self.slots[i].def.name.clone();
                self.task_secrets()
                    .await?
                    .registry_logins
                    .get(&name)
                    .map(|l| (l.username.clone(), l.password.clone()))
            } else {
                None
            };
            let shared = &self.shared;
            match images::ensure(
                &shared.store,
                &image,
                shared.pull,
                &shared.registries,
                login,
            )
            .await
            {
                Ok(Some(warning)) => tracing::warn!("{warning}"),
                Ok(None) => {}
                Err(e) => {
                    return Err(Cause::new(
                        StopCode::TaskFailedToStart,
                        format!("CannotPullContainerError: {image}: {e}"),
                    ))
                }
            }
        }
        self.pull_stopped_at = Some(now());
        // Known to the metadata endpoint before any container can ask it.
        let now = self.snapshot(Status::Pending, None);
        self.shared.metadata.update(&self.task, &now);
        for i in 0..self.slots.len() {
            // A container with links is made when it starts, once the
            // containers it links to have addresses (docker's links
            // need theirs running, too).
            if !has_links(&self.slots[i].def) {
                self.create(i).await?;
            }
        }
        self.created = Some(Instant::now());
        Ok(())
    }

    /// Creates container `i`, wired to the metadata endpoint, with its
    /// links' names in /etc/hosts.
    async fn create(&mut self, i: usize) -> Result<(), Cause> {
        let secret_env = if self.slots[i]
            .def
            .secrets
            .as_ref()
            .is_some_and(|s| !s.is_empty())
        {
            let name = self.slots[i].def.name.clone();
            self.secret_env(&name).await?
        } else {
            Vec::new()
        };
        let def = &self.slots[i].def;
        let failed = |e: &dyn std::fmt::Display| {
            Cause::new(
                StopCode::TaskFailedToStart,
                format!("CannotCreateContainerError: {}: {e}", def.name),
            )
        };
        let mut request = containers::request(&self.task, def).map_err(|e| failed(&e))?;
        if let Some(warning) = estiba_ecs::taskdef::log_fallback(def) {
            tracing::warn!("{warning}");
        }
        if let Some((env, redirect)) = self.shared.metadata.wiring(&self.task, &def.name) {
            request.options.env.extend(env);
            // awsvpc: the pod's namespace has the redirect already.
            if self.task.definition.network() != NetworkMode::Awsvpc {
                request.options.redirects.extend(redirect);
            }
        }
        request.options.add_hosts.extend(self.link_hosts(def).await);
        request.options.env.extend(secret_env);
        match self.shared.engine.create(request).await {
            Ok(r) => {
                let s = &mut self.slots[i];
                s.id = Some(r.id);
                s.state.runtime_id = s.id.clone();
                s.state.last_status = Some(Status::Pending);
                Ok(())
            }
            Err(e) => Err(failed(&e)),
        }
    }

    /// Container `name`'s secrets as environment entries.
    async fn secret_env(&mut self, name: &str) -> Result<Vec<String>, Cause> {
        Ok(self
            .task_secrets()
            .await?
            .containers
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    /// The task's secrets and registry logins, asked of the control plane
    /// once per task.
    async fn task_secrets(&mut self) -> Result<&estiba_cluster::wire::TaskSecrets, Cause> {
        if self.secrets.is_none() {
            let got = self
                .shared
                .client
                .secrets(&self.task.cluster, &self.task.id)
                .await
                .map_err(|e| {
                    Cause::new(
                        StopCode::TaskFailedToStart,
                        format!("ResourceInitializationError: unable to pull secrets: {e}"),
                    )
                })?;
            self.secrets = Some(got);
        }
        Ok(self.secrets.get_or_insert_with(Default::default))
    }

    /// `links: ["web", "db:database"]`: each target's address under its
    /// name and its alias.
    async fn link_hosts(
        &self,
        def: &ContainerDefinition,
    ) -> Vec<estiba_engine::options::HostEntry> {
        if !has_links(def) {
            return Vec::new();
        }
        let addresses = crate::metadata::addresses(&self.shared.engine).await;
        let mut hosts = Vec::new();
        for link in def.links.iter().flatten() {
            let (target, alias) = link.split_once(':').unwrap_or((link, link));
            let id = self.slot(target).and_then(|s| s.id.as_deref());
            let Some(ip) = addresses
                .iter()
                .find_map(|(ip, owner)| (Some(owner.as_str()) == id).then_some(*ip))
            else {
                tracing::warn!(container = %def.name, %target, "a link's target has no address");
                continue;
            };
            for name in [target, alias] {
                hosts.push(estiba_engine::options::HostEntry {
                    name: name.to_string(),
                    ip,
                });
            }
        }
        hosts.dedup();
        hosts
    }

    /// Where a start-up's time went, from the runner's beginning: pull
    /// (images), create, start (in dependency order), report RUNNING.
    fn log_timeline(&self, started: Instant) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pulled = self
            .pull_started_at
            .zip(self.pull_stopped_at)
            .map_or(0.0, |(a, b)| (b - a) * 1000.0);
        let created = self.created.unwrap_or(self.began);
        tracing::info!(
            pull_ms = pulled,
            until_created_ms = ms(created - self.began),
            start_ms = ms(started.saturating_duration_since(created)),
            report_ms = ms(started.elapsed()),
            total_ms = ms(self.began.elapsed()),
            "running"
        );
    }

    /// Starts every container once its dependencies allow. None: all
    /// started; Some: the task must stop. `None` from the outer Option: the
    /// agent is going away.
    async fn start_in_order(&mut self) -> Option<Option<Cause>> {
        let since = Instant::now();
        loop {
            let mut progress = false;
            for i in 0..self.slots.len() {
                if self.slots[i].started() || self.slots[i].exited() {
                    continue;
                }
                match self.readiness(i) {
                    Readiness::Ready => {
                        if let Err(cause) = self.start(i).await {
                            return Some(Some(cause));
                        }
                        progress = true;
                    }
                    Readiness::Waiting => {}
                    Readiness::Never(why) => {
                        return Some(Some(Cause::new(StopCode::TaskFailedToStart, why)))
                    }
                }
            }
            if self.slots.iter().all(|s| s.started() || s.exited()) {
                return Some(None);
            }
            if progress {
                // A start may have met another container's condition.
                continue;
            }
            let deadline = self.start_deadline(since);
            let msg = match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => return None,
                Err(_) => {
                    let waiting: Vec<&str> = self
                        .slots
                        .iter()
                        .filter(|s| !s.started())
                        .map(|s| s.def.name.as_str())
                        .collect();
                    return Some(Some(Cause::new(
                        StopCode::TaskFailedToStart,
                        format!(
                            "DependencyTimeout: {} did not meet their dependency conditions within startTimeout",
                            waiting.join(", ")
                        ),
                    )));
                }
            };
            if let Some(cause) = self.handle(msg).await {
                return Some(Some(cause));
            }
        }
    }

    /// The earliest startTimeout among the containers still waiting.
    fn start_deadline(&self, since: Instant) -> Instant {
        self.slots
            .iter()
            .filter(|s| !s.started() && !s.exited())
            .map(|s| {
                s.def.start_timeout.map_or(DEFAULT_START_TIMEOUT, |t| {
                    Duration::from_secs(t.max(0) as u64)
                })
            })
            .min()
            .map_or(since + DEFAULT_START_TIMEOUT, |t| since + t)
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.def.name == name)
    }

    /// Whether container `i`'s dependencies are met.
    fn readiness(&self, i: usize) -> Readiness {
        let def = &self.slots[i].def;
        let links = def.links.iter().flatten().map(|l| {
            let target = l.split(':').next().unwrap_or(l).to_string();
            (target, Condition::Start)
        });
        let depends = def
            .depends_on
            .iter()
            .flatten()
            .map(|d| (d.container_name.clone(), d.condition));
        for (name, condition) in depends.chain(links) {
            let Some(dep) = self.slot(&name) else {
                return Readiness::Never(format!(
                    "{}: depends on {name}, which is not in the task",
                    def.name
                ));
            };
            let code = dep.state.exit_code;
            let met = match condition {
                Condition::Start => dep.started() || dep.exited(),
                Condition::Complete => dep.exited(),
                Condition::Success if dep.exited() && code != Some(0) => {
                    return Readiness::Never(format!(
                        "{}: dependency {name} exited with {} (SUCCESS needs 0)",
                        def.name,
                        code.unwrap_or(-1)
                    ))
                }
                Condition::Success => dep.exited(),
                Condition::Healthy if dep.exited() => {
                    return Readiness::Never(format!(
                        "{}: dependency {name} exited before it was HEALTHY",
                        def.name
                    ))
                }
                Condition::Healthy => dep.state.health_status == Health::Healthy,
            };
            if !met {
                return Readiness::Waiting;
            }
        }
        Readiness::Ready
    }

    async fn start(&mut self, i: usize) -> Result<(), Cause> {
        if self.slots[i].id.is_none() {
            self.create(i).await?;
        }
        let Some(id) = self.slots[i].id.clone() else {
            return Err(Cause::new(
                StopCode::TaskFailedToStart,
                "a container was never created",
            ));
        };
        match self.shared.engine.start(&id).await {
            Ok(_) => {
                let bindings = bindings(&self.shared.engine, &id).await;
                let s = &mut self.slots[i];
                s.state.started_at = Some(now());
                s.state.last_status = Some(Status::Running);
                s.state.network_bindings = bindings;
                tracing::info!(container = %s.def.name, "started");
                // Seen at once by the metadata endpoint: the container may
                // ask before the task is reported RUNNING.
                let now = self.snapshot(Status::Pending, None);
                self.shared.metadata.update(&self.task, &now);
                Ok(())
            }
            Err(e) => Err(Cause::new(
                StopCode::TaskFailedToStart,
                format!("CannotStartContainerError: {}: {e}", self.slots[i].def.name),
            )),
        }
    }

    /// Applies one message. Some: the task must stop.
    async fn handle(&mut self, msg: Msg) -> Option<Cause> {
        match msg {
            Msg::Desired(Status::Stopped) => Some(Cause {
                code: Some(StopCode::UserInitiated),
                reason: "Task stopped by user".into(),
            }),
            Msg::Desired(_) => None,
            Msg::Died {
                container,
                exit_code,
            } => {
                let i = self.slots.iter().position(|s| s.def.name == container)?;
                if self.slots[i].exited() {
                    return None;
                }
                if self.restart(i, exit_code).await {
                    return None;
                }
                let slot = &mut self.slots[i];
                slot.state.last_status = Some(Status::Stopped);
                slot.state.exit_code = Some(exit_code);
                slot.state.stopped_at = Some(now());
                tracing::info!(%container, exit_code, "exited");
                if slot.def.is_essential() {
                    return Some(Cause::new(
                        StopCode::EssentialContainerExited,
                        "Essential container in task exited",
                    ));
                }
                self.report_current().await;
                None
            }
            Msg::Health { container, health } => {
                let slot = self.slots.iter_mut().find(|s| s.def.name == container)?;
                if slot.state.health_status != health {
                    slot.state.health_status = health;
                    self.report_current().await;
                }
                None
            }
        }
    }

    /// Starts container `i` again in place if its restartPolicy says so
    /// for this exit; true if it runs again.
    async fn restart(&mut self, i: usize, exit_code: i32) -> bool {
        let s = &self.slots[i];
        let Some(policy) = crate::restart::RestartPolicy::of(&s.def) else {
            return false;
        };
        let since = s.restarted_at.or(s.state.started_at).unwrap_or_else(now);
        let (Some(id), true) = (s.id.clone(), policy.restarts(exit_code, now() - since)) else {
            return false;
        };
        let name = s.def.name.clone();
        match self.shared.engine.start(&id).await {
            Ok(_) => {
                tracing::info!(container = %name, exit_code, "restarted under its restartPolicy");
                self.slots[i].restarted_at = Some(now());
                self.report_current().await;
                true
            }
            Err(e) => {
                tracing::warn!(container = %name, "restarting it failed: {e}");
                false
            }
        }
    }

    /// RUNNING: waits for an exit, a health change or a stop.
    async fn watch(&mut self) -> Option<Cause> {
        loop {
            let msg = self.rx.recv().await?;
            if let Some(cause) = self.handle(msg).await {
                return Some(cause);
            }
            if self.slots.iter().all(Slot::exited) {
                return Some(Cause::new(
                    StopCode::EssentialContainerExited,
                    "Every container exited",
                ));
            }
        }
    }

    /// Whether a running container still needs `name` (depends on or
    /// links to it).
    fn needed(&self, name: &str) -> bool {
        self.slots.iter().filter(|s| s.running()).any(|s| {
            s.def
                .depends_on
                .iter()
                .flatten()
                .any(|d| d.container_name == name)
                || s.def
                    .links
                    .iter()
                    .flatten()
                    .any(|l| l.split(':').next() == Some(name))
        })
    }

    /// Stops the running containers in reverse dependency order, each
    /// wave at once, and reports STOPPED.
    async fn stop_all(&mut self, cause: Cause) {
        tracing::info!(reason = %cause.reason, "stopping");
        self.report(Status::Stopping, Some(&cause)).await;
        loop {
            let wave: Vec<usize> = (0..self.slots.len())
                .filter(|i| self.slots[*i].running() && !self.needed(&self.slots[*i].def.name))
                .collect();
            if wave.is_empty() {
                break;
            }
            let mut stops = tokio::task::JoinSet::new();
            for i in wave {
                let Some(id) = self.slots[i].id.clone() else {
                    continue;
                };
                let timeout = self.slots[i]
                    .def
                    .stop_timeout
                    .map_or(DEFAULT_STOP_TIMEOUT, |t| {
                        Duration::from_secs(t.max(0) as u64)
                    });
                let engine = self.shared.engine.clone();
                stops.spawn(async move {
                    let stopped = engine.stop(&id, timeout).await;
                    (i, stopped.map(|r| r.state.exit_code))
                });
            }
            while let Some(done) = stops.join_next().await {
                let Ok((i, result)) = done else { continue };
                let s = &mut self.slots[i];
                s.state.last_status = Some(Status::Stopped);
                s.state.stopped_at = Some(now());
                match result {
                    Ok(code) => {
                        s.state.exit_code.get_or_insert(code);
                    }
                    Err(e) => s.state.reason = Some(format!("stopping it failed: {e}")),
                }
                tracing::info!(container = %s.def.name, exit_code = ?s.state.exit_code, "stopped");
            }
        }
        for s in &mut self.slots {
            if !s.exited() {
                s.state.last_status = Some(Status::Stopped);
                if !s.started() {
                    s.state.reason.get_or_insert_with(|| cause.reason.clone());
                }
            }
        }
        if self.task.definition.network() == NetworkMode::Awsvpc {
            // DEPROVISIONING: the namespace and its address go back, as
            // ECS detaches the ENI.
            self.report(Status::Deprovisioning, Some(&cause)).await;
            pod::stop(&self.shared.engine, &self.task.id).await;
        } else if pod::needed(&self.task) {
            pod::stop(&self.shared.engine, &self.task.id).await;
        }
        self.report(Status::Stopped, Some(&cause)).await;
    }

    async fn report_current(&self) {
        let status = if self.slots.iter().all(|s| s.started() || s.exited()) {
            Status::Running
        } else {
            Status::Pending
        };
        self.report(status, None).await;
    }

    /// Tells the control plane; tries again until it answers, so a
    /// control plane that is down loses no report. A refusal (the task is
    /// no longer this node's) ends the tries.
    async fn report(&self, status: Status, cause: Option<&Cause>) {
        let report = self.snapshot(status, cause);
        tracing::info!(status = status.as_str(), "reporting");
        if status == Status::Stopped {
            self.shared.metadata.forget(&self.task.id);
        } else {
            self.shared.metadata.update(&self.task, &report);
        }
        let mut delay = Duration::from_millis(200);
        loop {
            match self.shared.client.report(&report).await {
                Ok(()) => return,
                Err(Error::Refused(why)) => {
                    tracing::warn!("report refused: {why}");
                    return;
                }
                Err(e) => {
                    tracing::warn!("report: {e}; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The task as the node sees it now.
    fn snapshot(&self, status: Status, cause: Option<&Cause>) -> Report {
        Report {
            cluster: self.task.cluster.clone(),
            task: self.task.id.clone(),
            last_status: status,
            containers: self.slots.iter().map(|s| s.state.clone()).collect(),
            stop_code: cause.and_then(|c| c.code),
            stopped_reason: cause.map(|c| c.reason.clone()),
            pull_started_at: self.pull_started_at,
            pull_stopped_at: self.pull_stopped_at,
            private_ipv4: self.address,
        }
    }
}

/// The host ports a started container got (a `hostPort` of 0 takes one
/// from the ephemeral range), as networkBindings.
async fn bindings(engine: &AsyncEngine, id: &str) -> Vec<NetworkBinding> {
    let engine = engine.clone();
    let id = id.to_string();
    let published = tokio::task::spawn_blocking(move || engine.blocking().ports_of(&id)).await;
    match published {
        Ok(Ok(ports)) => ports
            .iter()
            .map(|p| NetworkBinding {
                bind_ip: p.map.host_ip.to_string(),
                container_port: p.map.container_port,
                host_port: p.map.host_port,
                protocol: p.map.proto.as_str().to_string(),
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::warn!("reading published ports: {e}");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

fn has_links(def: &ContainerDefinition) -> bool {
    def.links.as_ref().is_some_and(|l| !l.is_empty())
}

enum Readiness {
    Ready,
    Waiting,
    Never(String),
}

/// A container's state as its record shows it, for a re-adopted task.
fn adopted_state(def: &ContainerDefinition, record: Option<&ContainerRecord>) -> ContainerState {
    let mut state = ContainerState {
        name: def.name.clone(),
        image: def.image.clone(),
        ..ContainerState::default()
    };
    let Some(r) = record else {
        return state;
    };
    state.runtime_id = Some(r.id.clone());
    state.health_status = r
        .state
        .health
        .as_ref()
        .map_or(Health::Unknown, |h| health_of(&h.status));
    match r.state.status {
        estiba_engine::Status::Running | estiba_engine::Status::Restarting => {
            state.last_status = Some(Status::Running);
            state.started_at = Some(now());
        }
        estiba_engine::Status::Exited => {
            state.last_status = Some(Status::Stopped);
            state.exit_code = Some(r.state.exit_code);
            state.started_at = Some(now());
            state.stopped_at = Some(now());
        }
        estiba_engine::Status::Created => state.last_status = Some(Status::Pending),
    }
    state
}
