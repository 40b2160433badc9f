//! Services (issue 11): a desired count of tasks kept running, deployed
//! by the rolling controller.
//!
//! - `mod.rs`: the service record, its deployments and events, and the
//!   rules a deployment configuration must meet;
//! - `plan.rs`: what the scheduler does next for one service, as a pure
//!   function of the record, its live tasks and the time;
//! - `scheduler.rs`: the loop that runs plans, fed by the view of tasks
//!   (`view.rs`) and by watches of services and instances.

pub mod autoscale;
pub mod plan;
pub mod scheduler;

use serde::{Deserialize, Serialize};

use crate::model::Tag;
use crate::placement::{ConstraintSpec, StrategySpec};
use crate::task::LaunchType;

/// ECS keeps the latest 100 events of a service.
pub const MAX_EVENTS: usize = 100;
/// ECS's quota of tasks per service.
pub const MAX_DESIRED: u32 = 5000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceStatus {
    Active,
    Draining,
    Inactive,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scheduling {
    #[default]
    Replica,
    Daemon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThresholdType {
    Count,
    BoundedPercent,
    UnboundedPercent,
}

/// ECS's ThresholdConfiguration: how many failed tasks trip the breaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    #[serde(rename = "type")]
    pub kind: ThresholdType,
    pub value: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_on_healthy_task: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_configuration: Option<Threshold>,
}

impl CircuitBreaker {
    /// Failed tasks that trip it: by default half the desired count,
    /// within [3, 200] (ECS's BOUNDED_PERCENT 50).
    pub fn threshold(&self, desired: u32) -> u32 {
        let percent = |p: u32| (u64::from(desired) * u64::from(p)).div_ceil(100) as u32;
        match &self.threshold_configuration {
            Some(Threshold {
                kind: ThresholdType::Count,
                value,
            }) => (*value).max(1),
            Some(Threshold {
                kind: ThresholdType::UnboundedPercent,
                value,
            }) => percent(*value).max(1),
            Some(Threshold {
                kind: ThresholdType::BoundedPercent,
                value,
            }) => percent(*value).clamp(3, 200),
            None => percent(50).clamp(3, 200),
        }
    }
}

/// ECS's DeploymentConfiguration, with estiba's progress deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<CircuitBreaker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_percent: Option<u32>,
    /// estiba: a deployment that has not completed this many seconds after
    /// it began fails (and rolls back if the breaker says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u64>,
    /// Accepted and kept; CloudWatch alarms are not watched here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<serde_json::Value>,
    /// ROLLING is the one strategy served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// A deployment's bounds: at least `floor` healthy tasks, at most `cap`
/// tasks in all (RUNNING, PENDING and STOPPING).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub floor: u32,
    pub cap: u32,
}

impl DeploymentConfiguration {
    pub fn maximum(&self, s: Scheduling) -> u32 {
        self.maximum_percent.unwrap_or(match s {
            Scheduling::Replica => 200,
            Scheduling::Daemon => 100,
        })
    }

    pub fn minimum(&self, s: Scheduling) -> u32 {
        self.minimum_healthy_percent.unwrap_or(match s {
            Scheduling::Replica => 100,
            Scheduling::Daemon => 0,
        })
    }

    /// ⌈desired × min / 100⌉ and ⌊desired × max / 100⌋, as ECS rounds.
    pub fn bounds(&self, s: Scheduling, desired: u32) -> Bounds {
        let d = u64::from(desired);
        Bounds {
            floor: (d * u64::from(self.minimum(s))).div_ceil(100) as u32,
            cap: (d * u64::from(self.maximum(s)) / 100) as u32,
        }
    }

    /// Refuses a configuration a deployment could never make progress
    /// under (ECS would only say so in an event, later).
    pub fn check(&self, s: Scheduling, desired: u32) -> Result<(), String> {
        let (min, max) = (self.minimum(s), self.maximum(s));
        if min > 100 {
            return Err(format!(
                "minimumHealthyPercent must be between 0 and 100, not {min}."
            ));
        }
        if max == 0 || max > 2000 {
            return Err(format!(
                "maximumPercent must be between 1 and 2000, not {max}."
            ));
        }
        if s == Scheduling::Daemon {
            // A daemon replaces its task on each node in place.
            if max < 100 {
                return Err("maximumPercent of a DAEMON service must be at least 100.".into());
            }
            return Ok(());
        }
        if min > max {
            return Err(format!(
                "minimumHealthyPercent ({min}) cannot be more than maximumPercent ({max})."
            ));
        }
        let b = self.bounds(s, desired);
        if desired > 0 && b.cap <= b.floor {
            return Err(format!(
                "The deployment configuration cannot make progress: with desiredCount {desired}, minimumHealthyPercent {min} keeps at least {} tasks healthy and maximumPercent {max} allows at most {} in all, so no task can be stopped or started. Lower minimumHealthyPercent or raise maximumPercent.",
                b.floor, b.cap
            ));
        }
        if let Some(cb) = &self.deployment_circuit_breaker {
            if let Some(t) = &cb.threshold_configuration {
                if t.value == 0 {
                    return Err("thresholdConfiguration.value must be at least 1.".into());
                }
            }
        }
        if let Some(strategy) = self.strategy.as_deref().filter(|s| *s != "ROLLING") {
            return Err(format!(
                "deploymentConfiguration.strategy {strategy} is not served: estiba deploys ROLLING."
            ));
        }
        Ok(())
    }
}

/// A task definition revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub family: String,
    pub revision: u32,
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.family, self.revision)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `ecs-svc/` and 19 digits, as ECS's; its tasks' `startedBy`.
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: Revision,
    pub desired_count: u32,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
    /// Failed tasks since the last healthy one (the breaker's count).
    pub failed_tasks: u32,
    /// The tasks already counted, so none counts twice.
    #[serde(default)]
    pub counted: Vec<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub launch_type: LaunchType,
}

impl Deployment {
    pub fn new(
        task_definition: Revision,
        desired: u32,
        launch: LaunchType,
        now: f64,
    ) -> Deployment {
        Deployment {
            id: new_deployment_id(),
            status: DeploymentStatus::Primary,
            task_definition,
            desired_count: desired,
            rollout_state: RolloutState::InProgress,
            rollout_state_reason: "ECS deployment in progress.".into(),
            failed_tasks: 0,
            counted: Vec::new(),
            created_at: now,
            updated_at: now,
            launch_type: launch,
        }
    }
}

/// `ecs-svc/` and 19 random digits, the first not 0.
pub fn new_deployment_id() -> String {
    // 8 random bytes: 16 hex digits, all of a u64.
    let hex = estiba_os::random_hex(8);
    let n = u64::from_str_radix(&hex, 16).unwrap_or(0);
    format!(
        "ecs-svc/{}",
        1_000_000_000_000_000_000 + n % 8_000_000_000_000_000_000
    )
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: f64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    pub name: String,
    pub cluster: String,
    pub status: ServiceStatus,
    pub desired_count: u32,
    pub launch_type: LaunchType,
    pub scheduling_strategy: Scheduling,
    pub task_definition: Revision,
    pub deployment_configuration: DeploymentConfiguration,
    #[serde(default)]
    pub placement_constraints: Vec<ConstraintSpec>,
    #[serde(default)]
    pub placement_strategy: Vec<StrategySpec>,
    #[serde(default)]
    pub health_check_grace_period_seconds: u32,
    /// awsvpc's, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<serde_json::Value>,
    /// Newest first: the PRIMARY, then the ACTIVE ones it replaces.
    pub deployments: Vec<Deployment>,
    /// The revision of the last COMPLETED deployment: where a rollback goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Revision>,
    /// Newest first, at most [`MAX_EVENTS`].
    #[serde(default)]
    pub events: Vec<ServiceEvent>,
    /// Whether the last event said the service is steady (said once per
    /// arrival there).
    #[serde(default)]
    pub steady: bool,
    pub created_at: f64,
    pub created_by: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub enable_ecs_managed_tags: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<String>,
    #[serde(default)]
    pub enable_execute_command: bool,
    /// Bumped at each write.
    pub version: u64,
}

impl ServiceRecord {
    /// The task group of its tasks.
    pub fn group(&self) -> String {
        format!("service:{}", self.name)
    }

    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.first()
    }

    /// Adds an event, newest first, keeping the last [`MAX_EVENTS`].
    pub fn event(&mut self, now: f64, message: String) {
        tracing::info!(service = %self.name, cluster = %self.cluster, "{message}");
        let id = crate::model::uuid_like();
        self.events.insert(
            0,
            ServiceEvent {
                id,
                created_at: now,
                message,
            },
        );
        self.events.truncate(MAX_EVENTS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min: u32, max: u32) -> DeploymentConfiguration {
        DeploymentConfiguration {
            minimum_healthy_percent: Some(min),
            maximum_percent: Some(max),
            ..DeploymentConfiguration::default()
        }
    }

    #[test]
    fn bounds_round_as_ecs_does_and_stuck_configurations_are_refused() {
        let r = Scheduling::Replica;
        assert_eq!(config(50, 200).bounds(r, 4), Bounds { floor: 2, cap: 8 });
        assert_eq!(config(50, 200).bounds(r, 6), Bounds { floor: 3, cap: 12 });
        assert_eq!(config(75, 100).bounds(r, 2), Bounds { floor: 2, cap: 2 });
        assert!(config(75, 100)
            .check(r, 2)
            .unwrap_err()
            .contains("cannot make progress"));
        assert!(config(100, 125).check(r, 3).is_err());
        assert!(config(100, 125).check(r, 4).is_ok(), "floor 4, cap 5");
        assert!(config(0, 100).check(r, 4).is_ok());
        assert!(config(100, 100).check(r, 0).is_ok(), "nothing to deploy");
        assert!(config(101, 200).check(r, 1).is_err());
        assert!(config(60, 50).check(r, 10).is_err());
        let defaults = DeploymentConfiguration::default();
        assert_eq!(
            defaults.bounds(Scheduling::Daemon, 3),
            Bounds { floor: 0, cap: 3 }
        );
        assert!(defaults.check(r, 1).is_ok());
    }

    #[test]
    fn the_breaker_trips_at_half_the_desired_count_within_3_and_200() {
        let cb = CircuitBreaker {
            enable: true,
            rollback: true,
            reset_on_healthy_task: None,
            threshold_configuration: None,
        };
        assert_eq!(cb.threshold(1), 3);
        assert_eq!(cb.threshold(25), 13);
        assert_eq!(cb.threshold(1000), 200);
        let count = CircuitBreaker {
            threshold_configuration: Some(Threshold {
                kind: ThresholdType::Count,
                value: 1,
            }),
            ..cb.clone()
        };
        assert_eq!(count.threshold(100), 1);
        let unbounded = CircuitBreaker {
            threshold_configuration: Some(Threshold {
                kind: ThresholdType::UnboundedPercent,
                value: 50,
            }),
            ..cb
        };
        assert_eq!(unbounded.threshold(1000), 500);
    }

    #[test]
    fn deployment_ids_look_like_ecs_ones() {
        let id = new_deployment_id();
        let digits = id.strip_prefix("ecs-svc/").unwrap();
        assert_eq!(digits.len(), 19);
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(new_deployment_id(), new_deployment_id());
    }
}
