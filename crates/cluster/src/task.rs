//! Tasks and container instances: the records the control plane and the
//! agents share. The control plane writes a task when it places one; the
//! agent it is placed on runs it and reports what happened.

use std::collections::BTreeMap;

use estiba_ecs::taskdef::TaskDefinition;
use serde::{Deserialize, Serialize};

/// ECS's task and container statuses, in the order a task goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "PROVISIONING",
            Status::Pending => "PENDING",
            Status::Activating => "ACTIVATING",
            Status::Running => "RUNNING",
            Status::Deactivating => "DEACTIVATING",
            Status::Stopping => "STOPPING",
            Status::Deprovisioning => "DEPROVISIONING",
            Status::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Provisioning,
            Status::Pending,
            Status::Activating,
            Status::Running,
            Status::Deactivating,
            Status::Stopping,
            Status::Deprovisioning,
            Status::Stopped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopCode {
    TaskFailedToStart,
    EssentialContainerExited,
    UserInitiated,
    ServiceSchedulerInitiated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchType {
    Ec2,
    Fargate,
}

impl LaunchType {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchType::Ec2 => "EC2",
            LaunchType::Fargate => "FARGATE",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    Healthy,
    Unhealthy,
    #[default]
    Unknown,
}

/// A published port, as networkBindings shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    #[serde(rename = "bindIP")]
    pub bind_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: String,
}

/// An awsvpc task's network interface: the address of the namespace its
/// containers share (ECS's ENI attachment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// ECS's attachment id, fixed when the address is first reported.
    pub id: String,
    pub private_ipv4: std::net::Ipv4Addr,
}

/// One container of a task, as the agent last reported it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    /// The engine's container id on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub health_status: Health,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    /// Epoch seconds: when it started and stopped (for dependsOn checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
}

/// Container overrides of a RunTask, ECS's shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<estiba_ecs::taskdef::KeyValuePair>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    #[serde(default)]
    pub container_overrides: Vec<ContainerOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

pub use estiba_placement::{Resources, Shortfall};

/// A task, as the control plane keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: String,
    pub cluster: String,
    /// The definition as run: overrides applied.
    pub definition: TaskDefinition,
    pub revision: u32,
    pub overrides: Overrides,
    /// The container instance's id; None for FARGATE tasks on the control
    /// plane's own capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub launch_type: LaunchType,
    pub last_status: Status,
    pub desired_status: Status,
    pub containers: Vec<ContainerState>,
    pub reserved: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub created_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// awsvpc: the task's own address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// Bumped on every change, as ECS's `version`.
    pub version: u64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl TaskRecord {
    /// A task about to be placed: PROVISIONING, wanted RUNNING, its
    /// resources those the definition needs. Placement gives it its id,
    /// instance and creation time.
    pub fn template(
        cluster: &str,
        revision: u32,
        definition: TaskDefinition,
        launch_type: LaunchType,
        group: String,
    ) -> TaskRecord {
        TaskRecord {
            id: String::new(),
            cluster: cluster.to_string(),
            revision,
            reserved: crate::placement::need_of(&definition),
            definition,
            overrides: Overrides::default(),
            instance: None,
            launch_type,
            last_status: Status::Provisioning,
            desired_status: Status::Running,
            containers: Vec::new(),
            started_by: None,
            group: Some(group),
            created_at: 0.0,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            attachment: None,
            version: 1,
            tags: BTreeMap::new(),
        }
    }

    /// Where the task's instance is kept: its cluster's instances, or the
    /// built-in FARGATE capacity.
    pub fn pool(&self) -> &str {
        match self.launch_type {
            LaunchType::Ec2 => &self.cluster,
            LaunchType::Fargate => crate::keys::FARGATE_POOL,
        }
    }
}

/// A new task's id: 32 hex digits, as ECS's are, the first 12 the
/// milliseconds since the epoch (as a UUIDv7 begins) and the other 20
/// random. Ids then sort by creation, so the keys of a placement batch go
/// to the end of the store's index together, not each to a page of its
/// own: with random ids, every batch rewrote most of the index's pages.
pub fn new_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // 48 bits hold the milliseconds until the year 10889.
    let ms = (ms & 0xffff_ffff_ffff) as u64;
    format!("{ms:012x}{}", estiba_os::random_hex(10))
}

/// A task's health, from its essential containers that have a check:
/// UNHEALTHY if one is, HEALTHY if all are, else UNKNOWN (ECS's rule).
pub fn health_of(t: &TaskRecord) -> Health {
    let checked: Vec<&ContainerState> = t
        .containers
        .iter()
        .filter(|c| {
            t.definition
                .container_definitions
                .iter()
                .any(|d| d.name == c.name && d.is_essential() && d.health_check.is_some())
        })
        .collect();
    if checked.iter().any(|c| c.health_status == Health::Unhealthy) {
        Health::Unhealthy
    } else if !checked.is_empty() && checked.iter().all(|c| c.health_status == Health::Healthy) {
        Health::Healthy
    } else {
        Health::Unknown
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    Active,
    Draining,
}

/// A custom or built-in attribute of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A node that joined a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub id: String,
    pub cluster: String,
    /// The node's host name (ECS shows the EC2 instance id there).
    pub hostname: String,
    /// Where the node's tasks are reached.
    pub address: String,
    pub status: InstanceStatus,
    pub agent_version: String,
    pub registered: Resources,
    pub remaining: Resources,
    pub attributes: Vec<Attribute>,
    pub registered_at: f64,
    /// Bumped on every change, as ECS's `version`.
    pub version: u64,
    /// Warnings the agent raised when it joined (limits the host does not
    /// delegate, for one).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl InstanceRecord {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_look_like_ecs_ids_and_sort_by_creation() {
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        for id in [&first, &second] {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert!(first < second, "{first} then {second}");
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn statuses_parse_and_go_in_order() {
        assert_eq!(Status::parse("RUNNING"), Some(Status::Running));
        assert!(Status::Pending < Status::Running && Status::Running < Status::Stopped);
    }
}
