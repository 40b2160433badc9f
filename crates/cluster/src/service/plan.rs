//! What the scheduler does next for one service: a pure function of the
//! service record, its live tasks, the tasks that just stopped and the
//! time. It changes the record (deployment states, the breaker's count,
//! events) and says which tasks to start and stop; the scheduler does it.
//!
//! The rolling controller's rules, as ECS states them:
//! - at least ⌈desired × minimumHealthyPercent / 100⌉ tasks stay healthy:
//!   an old task is stopped only while the healthy ones left stay above
//!   that floor (tasks that are not healthy can always go);
//! - at most ⌊desired × maximumPercent / 100⌋ tasks exist at once,
//!   counting RUNNING, PENDING and STOPPING: a task is started only below
//!   that cap;
//! - a task is healthy once RUNNING with all its essential containers'
//!   checks HEALTHY, or, without checks, once it has run for
//!   `healthy_after` (ECS: 40 s). An UNHEALTHY task past the service's
//!   grace period is replaced;
//! - the breaker counts the primary deployment's tasks that failed to
//!   start or exited (ECS misses the latter, containers-roadmap#1206) and
//!   those replaced as UNHEALTHY; at its threshold the deployment FAILS,
//!   and with `rollback` the last COMPLETED revision is deployed again.

use std::collections::{BTreeMap, BTreeSet};

use super::{Deployment, DeploymentStatus, RolloutState, Scheduling, ServiceRecord, ServiceStatus};
use crate::task::{Health, Status, StopCode};
use crate::view::TaskSummary;

/// A node a DAEMON service must run one task on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonNode {
    pub id: String,
    /// Tasks are started only where the agent is connected; a node away
    /// for a while keeps its task (the lost-node rule deals with it).
    pub connected: bool,
}

/// What the scheduler knows when it plans.
#[derive(Clone, Copy, Debug)]
pub struct Situation<'a> {
    pub now: f64,
    /// Seconds a task without checks must run to count as healthy.
    pub healthy_after: f64,
    /// The service's live tasks (placed and not yet STOPPED).
    pub tasks: &'a [TaskSummary],
    /// Its tasks that STOPPED since the last plan.
    pub stopped: &'a [TaskSummary],
    /// DAEMON: the ACTIVE instances that meet its constraints.
    pub daemon_nodes: &'a [DaemonNode],
    /// REPLICA: the cluster's instances that are DRAINING. Their tasks are
    /// replaced within the deployment's floor and cap, as ECS does: those
    /// not healthy at once, the healthy ones as replacements come.
    pub draining: &'a BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// REPLICA: `count` tasks of the deployment, wherever placement says.
    Any { deployment: String, count: u32 },
    /// DAEMON: one task of the deployment on this instance.
    On {
        deployment: String,
        instance: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub task: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub start: Vec<Start>,
    pub stop: Vec<Stop>,
    /// Seconds until the time alone changes something (a task becomes
    /// healthy, a grace period or a deadline ends).
    pub wake_in: Option<f64>,
}

/// How many task ids a deployment remembers as counted.
const COUNTED: usize = 400;

fn live(t: &TaskSummary) -> bool {
    t.desired_status == Status::Running
}

impl Situation<'_> {
    /// On a DRAINING instance: to be replaced.
    fn drained(&self, t: &TaskSummary) -> bool {
        t.instance
            .as_ref()
            .is_some_and(|i| self.draining.contains(i))
    }
}

struct Rules {
    now: f64,
    healthy_after: f64,
    grace: f64,
}

impl Rules {
    fn healthy(&self, t: &TaskSummary) -> bool {
        live(t)
            && t.last_status == Status::Running
            && if t.checked {
                t.health == Health::Healthy
            } else {
                t.started_at
                    .is_some_and(|s| self.now >= s + self.healthy_after)
            }
    }

    /// UNHEALTHY past the grace period: to be replaced.
    fn failing(&self, t: &TaskSummary) -> bool {
        live(t)
            && t.health == Health::Unhealthy
            && t.started_at.unwrap_or(t.created_at) + self.grace <= self.now
    }

    /// When the time alone will change what this task counts as.
    fn wake(&self, t: &TaskSummary) -> Option<f64> {
        let start = t.started_at?;
        if !live(t) || t.last_status != Status::Running {
            return None;
        }
        let mut at = Vec::new();
        if !t.checked && self.now < start + self.healthy_after {
            at.push(start + self.healthy_after - self.now);
        }
        if t.health == Health::Unhealthy && self.now < start + self.grace {
            at.push(start + self.grace - self.now);
        }
        at.into_iter().reduce(f64::min)
    }
}

fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Counts a stopped task against its deployment's breaker (once), and
/// says in an event why a task stopped that nobody asked to stop.
fn account_stopped(svc: &mut ServiceRecord, now: f64, t: &TaskSummary) {
    let name = svc.name.clone();
    let Some(dep) = svc
        .deployments
        .iter_mut()
        .find(|d| t.started_by.as_deref() == Some(d.id.as_str()))
    else {
        return;
    };
    if dep.counted.contains(&t.id) {
        return;
    }
    dep.counted.push(t.id.clone());
    if dep.counted.len() > COUNTED {
        dep.counted.remove(0);
    }
    let failed = matches!(
        t.stop_code,
        Some(StopCode::TaskFailedToStart | StopCode::EssentialContainerExited)
    );
    if failed && dep.rollout_state == RolloutState::InProgress {
        dep.failed_tasks += 1;
        dep.updated_at = now;
    }
    let asked = matches!(
        t.stop_code,
        Some(StopCode::ServiceSchedulerInitiated | StopCode::UserInitiated)
    );
    if !asked && svc.status == ServiceStatus::Active {
        let why = t.stopped_reason.as_deref().unwrap_or("it stopped");
        svc.event(
            now,
            format!(
                "(service {name}) task {} stopped: {why}. It is replaced.",
                t.id
            ),
        );
    }
}

/// The primary deployment fails; with `rollback`, the last COMPLETED
/// revision becomes a new primary.
fn fail_primary(svc: &mut ServiceRecord, now: f64, why: &str, rollback: bool) {
    let name = svc.name.clone();
    let desired = svc.desired_count;
    let completed = svc.completed.clone();
    let Some(p) = svc.deployments.first_mut() else {
        return;
    };
    p.rollout_state = RolloutState::Failed;
    p.rollout_state_reason = why.to_string();
    p.updated_at = now;
    let failed_id = p.id.clone();
    let failed_rev = p.task_definition.clone();
    let launch = p.launch_type;
    svc.event(
        now,
        format!("(service {name}) (deployment {failed_id}) deployment failed: {why}"),
    );
    let Some(back) = completed.filter(|r| rollback && *r != failed_rev) else {
        return;
    };
    if let Some(p) = svc.deployments.first_mut() {
        p.status = DeploymentStatus::Active;
    }
    let mut new = Deployment::new(back.clone(), desired, launch, now);
    new.rollout_state_reason =
        format!("ECS deployment circuit breaker: rolling back to {back} after {failed_id} failed.");
    svc.event(
        now,
        format!(
            "(service {name}) (deployment {failed_id}) rolling back to task definition {back} in deployment {}.",
            new.id
        ),
    );
    svc.task_definition = back;
    svc.deployments.insert(0, new);
}

/// Tasks to stop first: those not yet running, then those not healthy,
/// then those on the nodes where the group is densest, the newest first.
fn victims<'a>(
    mut from: Vec<&'a TaskSummary>,
    n: usize,
    rules: &Rules,
    all: &[TaskSummary],
) -> Vec<&'a TaskSummary> {
    let mut density: BTreeMap<&str, usize> = BTreeMap::new();
    for t in all {
        *density
            .entry(t.instance.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    from.sort_by(|a, b| {
        let key = |t: &TaskSummary| {
            (
                t.last_status == Status::Running,
                rules.healthy(t),
                std::cmp::Reverse(
                    density
                        .get(t.instance.as_deref().unwrap_or_default())
                        .copied(),
                ),
            )
        };
        key(a)
            .cmp(&key(b))
            .then(b.created_at.total_cmp(&a.created_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    from.truncate(n);
    from
}

fn stop(plan: &mut Plan, chosen: &mut BTreeSet<String>, t: &TaskSummary, reason: String) {
    if chosen.insert(t.id.clone()) {
        plan.stop.push(Stop {
            task: t.id.clone(),
            reason,
        });
    }
}

/// The next steps for `svc`.
pub fn plan(svc: &mut ServiceRecord, s: &Situation<'_>) -> Plan {
    let mut plan = Plan::default();
    let rules = Rules {
        now: s.now,
        healthy_after: s.healthy_after,
        grace: f64::from(svc.health_check_grace_period_seconds),
    };
    for t in s.stopped {
        account_stopped(svc, s.now, t);
    }
    let mut chosen = BTreeSet::new();
    if svc.status != ServiceStatus::Active {
        for t in s.tasks.iter().filter(|t| live(t)) {
            stop(&mut plan, &mut chosen, t, "Service is being deleted".into());
        }
        if s.tasks.is_empty() && svc.status == ServiceStatus::Draining {
            svc.status = ServiceStatus::Inactive;
            let name = svc.name.clone();
            svc.event(s.now, format!("(service {name}) has been deleted."));
        }
        return plan;
    }
    if svc.deployments.is_empty() {
        return plan;
    }
    let desired = match svc.scheduling_strategy {
        Scheduling::Replica => svc.desired_count,
        Scheduling::Daemon => s.daemon_nodes.len() as u32,
    };
    if svc.scheduling_strategy == Scheduling::Daemon {
        svc.desired_count = desired;
    }
    // Tasks failing their health checks are replaced, and count as failed.
    let primary_id = svc.deployments[0].id.clone();
    for t in s.tasks.iter().filter(|t| rules.failing(t)) {
        stop(
            &mut plan,
            &mut chosen,
            t,
            "Task failed container health checks".into(),
        );
        let p = &mut svc.deployments[0];
        if t.started_by.as_deref() == Some(primary_id.as_str())
            && p.rollout_state == RolloutState::InProgress
            && !p.counted.contains(&t.id)
        {
            p.counted.push(t.id.clone());
            p.failed_tasks += 1;
        }
    }
    check_breaker(svc, &rules, s.tasks);
    let primary_id = svc.deployments[0].id.clone();
    let is_primary = |t: &TaskSummary| t.started_by.as_deref() == Some(primary_id.as_str());
    let launching = svc.deployments[0].rollout_state != RolloutState::Failed;
    let bounds = svc
        .deployment_configuration
        .bounds(svc.scheduling_strategy, desired);
    match svc.scheduling_strategy {
        Scheduling::Replica => {
            // A task on a draining instance is not counted: it is being
            // replaced (`replace_old`).
            let p_live: Vec<&TaskSummary> = s
                .tasks
                .iter()
                .filter(|t| live(t) && is_primary(t) && !chosen.contains(&t.id) && !s.drained(t))
                .collect();
            let have = p_live.len() as u32;
            if launching && have < desired {
                let room = bounds.cap.saturating_sub(s.tasks.len() as u32);
                let count = (desired - have).min(room);
                if count > 0 {
                    plan.start.push(Start::Any {
                        deployment: primary_id.clone(),
                        count,
                    });
                }
            }
            if have > desired {
                for t in victims(p_live, (have - desired) as usize, &rules, s.tasks) {
                    let reason = format!("Scaling activity initiated by (deployment {primary_id})");
                    stop(&mut plan, &mut chosen, t, reason);
                }
            }
        }
        Scheduling::Daemon => {
            for n in s.daemon_nodes.iter().filter(|n| n.connected) {
                let occupied = s
                    .tasks
                    .iter()
                    .any(|t| t.instance.as_deref() == Some(n.id.as_str()));
                if launching && !occupied {
                    plan.start.push(Start::On {
                        deployment: primary_id.clone(),
                        instance: n.id.clone(),
                    });
                }
            }
            // A node that left (drained, deregistered, or no longer meets
            // the constraints) loses its task.
            for t in s.tasks.iter().filter(|t| live(t)) {
                let kept = s
                    .daemon_nodes
                    .iter()
                    .any(|n| t.instance.as_deref() == Some(n.id.as_str()));
                if !kept {
                    let reason = "The container instance is draining or no longer meets the service's placement constraints".to_string();
                    stop(&mut plan, &mut chosen, t, reason);
                }
            }
        }
    }
    replace_old(
        svc,
        s,
        &rules,
        bounds.floor,
        launching,
        &mut plan,
        &mut chosen,
    );
    settle(svc, s, &rules, desired, &plan, &chosen);
    for t in s.tasks {
        plan.wake_in = earliest(plan.wake_in, rules.wake(t));
    }
    if let (Some(deadline), Some(p)) = (
        svc.deployment_configuration.progress_deadline_seconds,
        svc.deployments.first(),
    ) {
        if p.rollout_state == RolloutState::InProgress {
            let left = p.created_at + deadline as f64 - s.now;
            plan.wake_in = earliest(plan.wake_in, Some(left.max(0.0)));
        }
    }
    plan
}

/// The breaker and the deadline, on the primary deployment.
fn check_breaker(svc: &mut ServiceRecord, rules: &Rules, tasks: &[TaskSummary]) {
    let desired = svc.desired_count;
    let cb = svc
        .deployment_configuration
        .deployment_circuit_breaker
        .clone();
    let deadline = svc.deployment_configuration.progress_deadline_seconds;
    let p = &mut svc.deployments[0];
    if p.rollout_state != RolloutState::InProgress {
        return;
    }
    let reset = cb
        .as_ref()
        .is_none_or(|c| c.reset_on_healthy_task != Some(false));
    if reset
        && p.failed_tasks > 0
        && tasks
            .iter()
            .any(|t| t.started_by.as_deref() == Some(p.id.as_str()) && rules.healthy(t))
    {
        p.failed_tasks = 0;
    }
    let rollback = cb.as_ref().is_some_and(|c| c.rollback);
    if let Some(cb) = cb.filter(|c| c.enable) {
        let threshold = cb.threshold(desired);
        if p.failed_tasks >= threshold {
            let why = format!(
                "ECS deployment circuit breaker: {} tasks failed to start or stayed unhealthy (threshold {threshold}).",
                p.failed_tasks
            );
            fail_primary(svc, rules.now, &why, cb.rollback);
            return;
        }
    }
    if let Some(deadline) = deadline {
        if rules.now >= p.created_at + deadline as f64 {
            let why = format!(
                "The deployment did not complete within its progress deadline of {deadline} s."
            );
            fail_primary(svc, rules.now, &why, rollback);
        }
    }
}

/// Stops the older deployments' tasks, and a REPLICA's on DRAINING
/// instances, as far as the floor allows: those not healthy at once, the
/// healthy ones while enough stay healthy.
fn replace_old(
    svc: &ServiceRecord,
    s: &Situation<'_>,
    rules: &Rules,
    floor: u32,
    launching: bool,
    plan: &mut Plan,
    chosen: &mut BTreeSet<String>,
) {
    let primary = &svc.deployments[0].id;
    let is_primary = |t: &TaskSummary| t.started_by.as_deref() == Some(primary.as_str());
    let daemon = svc.scheduling_strategy == Scheduling::Daemon;
    let drained = |t: &TaskSummary| !daemon && s.drained(t);
    let old: Vec<&TaskSummary> = s
        .tasks
        .iter()
        .filter(|t| live(t) && (!is_primary(t) || drained(t)) && !chosen.contains(&t.id))
        .collect();
    let primary_live = s
        .tasks
        .iter()
        .any(|t| live(t) && is_primary(t) && !drained(t));
    // Nothing replaces them: keep them.
    if old.is_empty() || !(launching || primary_live) {
        return;
    }
    let scaling = format!("Scaling activity initiated by (deployment {primary})");
    let reason = |t: &TaskSummary| {
        if drained(t) {
            format!(
                "Container instance {} is draining",
                t.instance.as_deref().unwrap_or_default()
            )
        } else {
            scaling.clone()
        }
    };
    let (unwell, well): (Vec<&TaskSummary>, Vec<&TaskSummary>) =
        old.into_iter().partition(|t| !rules.healthy(t));
    for t in unwell {
        stop(plan, chosen, t, reason(t));
    }
    let healthy = s
        .tasks
        .iter()
        .filter(|t| rules.healthy(t) && !chosen.contains(&t.id))
        .count() as u32;
    let allowance = healthy.saturating_sub(floor) as usize;
    // A daemon's old task goes only where its replacement can start: the
    // node's own.
    let well: Vec<&TaskSummary> = if daemon {
        well.into_iter()
            .filter(|t| {
                s.daemon_nodes
                    .iter()
                    .any(|n| n.connected && t.instance.as_deref() == Some(n.id.as_str()))
            })
            .collect()
    } else {
        well
    };
    for t in victims(well, allowance, rules, s.tasks) {
        stop(plan, chosen, t, reason(t));
    }
}

/// Completion, steady state, and the deployments' own counts.
fn settle(
    svc: &mut ServiceRecord,
    s: &Situation<'_>,
    rules: &Rules,
    desired: u32,
    plan: &Plan,
    chosen: &BTreeSet<String>,
) {
    let name = svc.name.clone();
    let primary_id = svc.deployments[0].id.clone();
    let is_primary = |t: &TaskSummary| t.started_by.as_deref() == Some(primary_id.as_str());
    let daemon = svc.scheduling_strategy == Scheduling::Daemon;
    let p_healthy = s
        .tasks
        .iter()
        .filter(|t| {
            is_primary(t)
                && rules.healthy(t)
                && !chosen.contains(&t.id)
                && (daemon || !s.drained(t))
        })
        .count() as u32;
    let others_left = s.tasks.iter().any(|t| !is_primary(t));
    let all_there = p_healthy == desired && !others_left && plan.start.is_empty();
    let p = &mut svc.deployments[0];
    if p.desired_count != desired {
        p.desired_count = desired;
        p.updated_at = s.now;
    }
    if all_there && p.rollout_state == RolloutState::InProgress {
        p.rollout_state = RolloutState::Completed;
        p.rollout_state_reason = format!("ECS deployment {primary_id} completed.");
        p.updated_at = s.now;
        let rev = p.task_definition.clone();
        svc.completed = Some(rev);
        svc.event(
            s.now,
            format!("(service {name}) (deployment {primary_id}) deployment completed."),
        );
    }
    // Older deployments without tasks are done (ECS drops them); a FAILED
    // one stays in sight until the deployment after it completes.
    let ids_with_tasks: BTreeSet<&str> = s
        .tasks
        .iter()
        .filter_map(|t| t.started_by.as_deref())
        .collect();
    let in_progress = svc.deployments[0].rollout_state != RolloutState::Completed;
    svc.deployments.retain(|d| {
        d.id == primary_id
            || ids_with_tasks.contains(d.id.as_str())
            || (in_progress && d.rollout_state == RolloutState::Failed)
    });
    let steady = all_there && plan.stop.is_empty() && svc.deployments.len() == 1;
    if steady && !svc.steady {
        svc.event(
            s.now,
            format!("(service {name}) has reached a steady state."),
        );
    }
    svc.steady = steady;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{
        CircuitBreaker, DeploymentConfiguration, Revision, ServiceRecord, ServiceStatus,
    };
    use crate::task::LaunchType;

    fn service(desired: u32, min: u32, max: u32) -> ServiceRecord {
        let rev = Revision {
            family: "web".into(),
            revision: 1,
        };
        let mut d = Deployment::new(rev.clone(), desired, LaunchType::Ec2, 0.0);
        d.id = "ecs-svc/1".into();
        ServiceRecord {
            name: "web".into(),
            cluster: "default".into(),
            status: ServiceStatus::Active,
            desired_count: desired,
            launch_type: LaunchType::Ec2,
            scheduling_strategy: Scheduling::Replica,
            task_definition: rev,
            deployment_configuration: DeploymentConfiguration {
                minimum_healthy_percent: Some(min),
                maximum_percent: Some(max),
                ..DeploymentConfiguration::default()
            },
            placement_constraints: vec![],
            placement_strategy: vec![],
            health_check_grace_period_seconds: 0,
            network_configuration: None,
            deployments: vec![d],
            completed: None,
            events: vec![],
            steady: false,
            created_at: 0.0,
            created_by: "admin".into(),
            tags: vec![],
            enable_ecs_managed_tags: false,
            propagate_tags: None,
            enable_execute_command: false,
            version: 1,
        }
    }

    fn task(
        id: &str,
        deployment: &str,
        node: &str,
        status: Status,
        started: Option<f64>,
    ) -> TaskSummary {
        TaskSummary {
            cluster: "default".into(),
            id: id.into(),
            instance: Some(node.into()),
            group: Some("service:web".into()),
            started_by: Some(deployment.into()),
            family: "web".into(),
            revision: 1,
            last_status: status,
            desired_status: Status::Running,
            checked: false,
            health: Health::Unknown,
            created_at: started.unwrap_or(0.0),
            started_at: started,
            reserved_cpu: 0,
            reserved_memory: 0,
            stop_code: None,
            stopped_reason: None,
            mod_revision: 1,
        }
    }

    fn situation<'a>(
        now: f64,
        tasks: &'a [TaskSummary],
        stopped: &'a [TaskSummary],
    ) -> Situation<'a> {
        Situation {
            now,
            healthy_after: 40.0,
            tasks,
            stopped,
            daemon_nodes: &[],
            draining: &NONE_DRAINING,
        }
    }

    static NONE_DRAINING: BTreeSet<String> = BTreeSet::new();

    /// A new revision deployed over `n` healthy tasks of ecs-svc/1.
    fn deploying(n: u32, min: u32, max: u32) -> (ServiceRecord, Vec<TaskSummary>) {
        let mut svc = service(n, min, max);
        svc.deployments[0].rollout_state = RolloutState::Completed;
        svc.completed = Some(svc.task_definition.clone());
        svc.deployments[0].status = DeploymentStatus::Active;
        let rev = Revision {
            family: "web".into(),
            revision: 2,
        };
        let mut new = Deployment::new(rev.clone(), n, LaunchType::Ec2, 100.0);
        new.id = "ecs-svc/2".into();
        svc.deployments.insert(0, new);
        svc.task_definition = rev;
        let tasks = (0..n)
            .map(|i| {
                task(
                    &format!("old{i}"),
                    "ecs-svc/1",
                    &format!("n{}", i % 3),
                    Status::Running,
                    Some(0.0),
                )
            })
            .collect();
        (svc, tasks)
    }

    #[test]
    fn a_new_service_starts_its_count_and_says_when_it_is_steady() {
        let mut svc = service(3, 100, 200);
        let p = plan(&mut svc, &situation(0.0, &[], &[]));
        assert_eq!(
            p.start,
            [Start::Any {
                deployment: "ecs-svc/1".into(),
                count: 3
            }]
        );
        let tasks: Vec<TaskSummary> = (0..3)
            .map(|i| {
                task(
                    &format!("t{i}"),
                    "ecs-svc/1",
                    "n1",
                    Status::Running,
                    Some(10.0),
                )
            })
            .collect();
        // Running, but not yet healthy: it waits for the 40 s.
        let p = plan(&mut svc, &situation(20.0, &tasks, &[]));
        assert!(p.start.is_empty() && p.stop.is_empty());
        assert_eq!(p.wake_in, Some(30.0));
        assert_eq!(svc.deployments[0].rollout_state, RolloutState::InProgress);
        plan(&mut svc, &situation(50.0, &tasks, &[]));
        assert_eq!(svc.deployments[0].rollout_state, RolloutState::Completed);
        assert!(svc.events[0].message.contains("has reached a steady state"));
        let events = svc.events.len();
        plan(&mut svc, &situation(60.0, &tasks, &[]));
        assert_eq!(svc.events.len(), events, "steady state is said once");
    }

    #[test]
    fn a_rolling_deploy_keeps_the_floor_and_the_cap() {
        // 6 at 50/200: floor 3, cap 12.
        let (mut svc, old) = deploying(6, 50, 200);
        let p = plan(&mut svc, &situation(200.0, &old, &[]));
        assert_eq!(
            p.start,
            [Start::Any {
                deployment: "ecs-svc/2".into(),
                count: 6
            }]
        );
        assert_eq!(p.stop.len(), 3, "down to the floor of 3 healthy");
        // With 6 new tasks pending and 3 old stopping, 3 old stay.
        let mut tasks = old.clone();
        for t in tasks
            .iter_mut()
            .filter(|t| p.stop.iter().any(|s| s.task == t.id))
        {
            t.desired_status = Status::Stopped;
        }
        tasks.extend(
            (0..6).map(|i| task(&format!("new{i}"), "ecs-svc/2", "n1", Status::Pending, None)),
        );
        let p = plan(&mut svc, &situation(201.0, &tasks, &[]));
        assert!(p.start.is_empty(), "12 tasks exist: the cap");
        assert!(p.stop.is_empty(), "3 healthy: the floor");
        // The new ones run and turn healthy: the rest of the old go.
        tasks.retain(|t| t.desired_status == Status::Running);
        for t in tasks.iter_mut().filter(|t| t.id.starts_with("new")) {
            t.last_status = Status::Running;
            t.started_at = Some(202.0);
        }
        let p = plan(&mut svc, &situation(250.0, &tasks, &[]));
        assert_eq!(p.stop.len(), 3);
        tasks.retain(|t| t.id.starts_with("new"));
        plan(&mut svc, &situation(251.0, &tasks, &[]));
        assert_eq!(svc.deployments.len(), 1);
        assert_eq!(svc.deployments[0].rollout_state, RolloutState::Completed);
        assert_eq!(svc.completed.as_ref().map(|r| r.revision), Some(2));
    }

    #[test]
    fn min_100_surges_and_0_100_stops_first() {
        let (mut svc, old) = deploying(4, 100, 200);
        let p = plan(&mut svc, &situation(200.0, &old, &[]));
        assert!(matches!(p.start[..], [Start::Any { count: 4, .. }]));
        assert!(
            p.stop.is_empty(),
            "min 100: nothing goes before a new one is healthy"
        );
        let (mut svc, old) = deploying(4, 0, 100);
        let p = plan(&mut svc, &situation(200.0, &old, &[]));
        assert!(p.start.is_empty(), "cap 4, all taken");
        assert_eq!(p.stop.len(), 4);
    }

    #[test]
    fn the_breaker_trips_and_rolls_back_to_the_last_completed_revision() {
        let (mut svc, old) = deploying(2, 100, 200);
        svc.deployment_configuration.deployment_circuit_breaker = Some(CircuitBreaker {
            enable: true,
            rollback: true,
            reset_on_healthy_task: None,
            threshold_configuration: None,
        });
        // Threshold: max(3, ⌈1⌉) = 3 tasks that exited.
        for i in 0..3 {
            let mut t = task(
                &format!("bad{i}"),
                "ecs-svc/2",
                "n1",
                Status::Stopped,
                Some(200.0),
            );
            t.stop_code = Some(StopCode::EssentialContainerExited);
            t.stopped_reason = Some("Essential container in task exited".into());
            let stopped = [t.clone(), t];
            plan(&mut svc, &situation(200.0 + f64::from(i), &old, &stopped));
        }
        assert_eq!(
            svc.deployments.len(),
            3,
            "the rollback, the failed one, the old one"
        );
        let failed = &svc.deployments[1];
        assert_eq!(failed.id, "ecs-svc/2");
        assert_eq!(failed.rollout_state, RolloutState::Failed);
        assert_eq!(failed.failed_tasks, 3, "a task counts once");
        assert_eq!(svc.deployments[0].task_definition.revision, 1);
        assert_eq!(svc.task_definition.revision, 1);
        assert!(svc
            .events
            .iter()
            .any(|e| e.message.contains("rolling back")));
        // The rollback deploys revision 1 again over the old tasks.
        let p = plan(&mut svc, &situation(210.0, &old, &[]));
        assert!(matches!(p.start[..], [Start::Any { count: 2, .. }]));
    }

    #[test]
    fn unhealthy_tasks_are_replaced_after_the_grace_period() {
        let mut svc = service(1, 0, 200);
        svc.health_check_grace_period_seconds = 60;
        let mut t = task("t", "ecs-svc/1", "n1", Status::Running, Some(0.0));
        t.checked = true;
        t.health = Health::Unhealthy;
        let tasks = [t];
        let p = plan(&mut svc, &situation(30.0, &tasks, &[]));
        assert!(p.stop.is_empty());
        assert_eq!(p.wake_in, Some(30.0));
        let p = plan(&mut svc, &situation(61.0, &tasks, &[]));
        assert_eq!(p.stop[0].reason, "Task failed container health checks");
        assert!(matches!(p.start[..], [Start::Any { count: 1, .. }]));
    }

    #[test]
    fn a_daemon_runs_one_task_per_node_and_leaves_a_drained_one() {
        let mut svc = service(0, 0, 100);
        svc.scheduling_strategy = Scheduling::Daemon;
        let nodes = [
            DaemonNode {
                id: "n1".into(),
                connected: true,
            },
            DaemonNode {
                id: "n2".into(),
                connected: true,
            },
        ];
        let tasks = [
            task("a", "ecs-svc/1", "n1", Status::Running, Some(0.0)),
            task("c", "ecs-svc/1", "n3", Status::Running, Some(0.0)),
        ];
        let s = Situation {
            daemon_nodes: &nodes,
            ..situation(100.0, &tasks, &[])
        };
        let p = plan(&mut svc, &s);
        assert_eq!(
            p.start,
            [Start::On {
                deployment: "ecs-svc/1".into(),
                instance: "n2".into()
            }]
        );
        assert_eq!(p.stop.len(), 1);
        assert_eq!(p.stop[0].task, "c");
        assert_eq!(svc.desired_count, 2);
    }

    #[test]
    fn a_deleted_service_stops_its_tasks_then_goes_inactive() {
        let mut svc = service(2, 100, 200);
        svc.status = ServiceStatus::Draining;
        let tasks = [task("a", "ecs-svc/1", "n1", Status::Running, Some(0.0))];
        let p = plan(&mut svc, &situation(1.0, &tasks, &[]));
        assert_eq!(p.stop.len(), 1);
        plan(&mut svc, &situation(2.0, &[], &[]));
        assert_eq!(svc.status, ServiceStatus::Inactive);
    }

    /// `n` healthy tasks of ecs-svc/1, the first `on_drained` on n0.
    fn spread_over(n: usize, on_drained: usize) -> Vec<TaskSummary> {
        (0..n)
            .map(|i| {
                let node = if i < on_drained { "n0" } else { "n1" };
                task(
                    &format!("t{i}"),
                    "ecs-svc/1",
                    node,
                    Status::Running,
                    Some(0.0),
                )
            })
            .collect()
    }

    /// The plan with instance n0 DRAINING.
    fn plan_n0_draining(svc: &mut ServiceRecord, now: f64, tasks: &[TaskSummary]) -> Plan {
        let draining = BTreeSet::from(["n0".to_string()]);
        let s = Situation {
            draining: &draining,
            ..situation(now, tasks, &[])
        };
        plan(svc, &s)
    }

    fn start_any(count: u32) -> [Start; 1] {
        [Start::Any {
            deployment: "ecs-svc/1".into(),
            count,
        }]
    }

    #[test]
    fn a_drained_instance_s_tasks_are_replaced_first_when_the_floor_is_full() {
        // 100/200: replacements start at once; the drained tasks go once
        // they are healthy, never below the floor of 4.
        let mut svc = service(4, 100, 200);
        let tasks = spread_over(4, 2);
        let p = plan_n0_draining(&mut svc, 100.0, &tasks);
        assert_eq!(p.start, start_any(2));
        assert!(p.stop.is_empty(), "{:?}", p.stop);
        assert!(!svc.steady);
        let mut more = tasks.clone();
        more.push(task("r0", "ecs-svc/1", "n1", Status::Running, Some(100.0)));
        more.push(task("r1", "ecs-svc/1", "n1", Status::Running, Some(100.0)));
        let p = plan_n0_draining(&mut svc, 120.0, &more);
        assert!(p.start.is_empty() && p.stop.is_empty(), "{p:?}");
        let p = plan_n0_draining(&mut svc, 150.0, &more);
        assert!(p.start.is_empty(), "{p:?}");
        let stopped: Vec<&str> = p.stop.iter().map(|s| s.task.as_str()).collect();
        assert_eq!(stopped, ["t0", "t1"], "{p:?}");
        assert!(p.stop[0].reason.contains("n0 is draining"), "{p:?}");
    }

    #[test]
    fn a_drained_instance_s_tasks_stop_first_when_there_is_no_headroom() {
        // 50/100: the cap is full, so the drained tasks stop first (the
        // floor of 2 allows it) and the replacements start once they are
        // gone.
        let mut svc = service(4, 50, 100);
        let mut tasks = spread_over(4, 2);
        let p = plan_n0_draining(&mut svc, 100.0, &tasks);
        assert!(p.start.is_empty(), "{p:?}");
        assert_eq!(p.stop.len(), 2, "{p:?}");
        tasks.drain(..2);
        let p = plan_n0_draining(&mut svc, 110.0, &tasks);
        assert_eq!(p.start, start_any(2));
    }

    #[test]
    fn a_task_not_yet_running_on_a_drained_instance_stops_at_once() {
        let mut svc = service(2, 100, 200);
        let mut tasks = spread_over(2, 0);
        tasks.push(task("p", "ecs-svc/1", "n0", Status::Pending, None));
        svc.desired_count = 3;
        let p = plan_n0_draining(&mut svc, 100.0, &tasks);
        assert_eq!(p.stop.len(), 1);
        assert_eq!(p.stop[0].task, "p");
        assert_eq!(p.start, start_any(1));
    }
}
