//! The agent API's messages: what an agent and the control plane say to
//! each other under `/agent/v1/`. Agents speak only to the control plane,
//! never to the store.
//!
//! - `POST register` with a join token: the node becomes a container
//!   instance and gets a credential of its own (the token is not used
//!   again);
//! - `POST heartbeat`: keeps the node connected (a lease of three
//!   intervals);
//! - `GET assignments?after=REV`: the node's tasks that changed after
//!   revision REV, waiting (long poll) until one does;
//! - `POST report`: a task's state as the node sees it.
//!
//! After registering, requests carry `Authorization: Bearer <credential>`.

use serde::{Deserialize, Serialize};

use crate::task::{Attribute, ContainerState, Resources, Status, StopCode, TaskRecord};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub token: String,
    pub cluster: String,
    pub hostname: String,
    /// The address the node's tasks are reached at.
    pub address: String,
    pub resources: Resources,
    pub attributes: Vec<Attribute>,
    pub agent_version: String,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The agent's own API (task logs), and the secret the control plane
    /// must show to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<AgentApi>,
}

/// Where an agent serves its API, and the bearer secret it asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentApi {
    /// `ip:port`.
    pub address: String,
    pub secret: String,
}

/// One log line of a task's container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// Epoch seconds.
    pub timestamp: f64,
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub message: String,
}

/// A page of a task's logs; `next_token` asks for what comes after.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvents {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub instance_id: String,
    pub instance_arn: String,
    pub cluster: String,
    /// `<instance>.<secret>`: what the node authenticates with from now on.
    pub credential: String,
    pub heartbeat_seconds: u64,
}

/// A heartbeat: where the agent's API listens now (it may have moved
/// since the node joined).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
    /// What the node's tasks used over the last sample, if one was taken
    /// since the last heartbeat (what target-tracking scaling reads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<TaskUsage>,
}

/// One task's use of CPU and memory, summed over its containers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskUsage {
    pub cluster: String,
    pub task: String,
    /// CPU units (1024 a core), averaged over the sample.
    pub cpu: f64,
    /// MiB.
    pub memory: f64,
}

/// A node's last usage sample, as the control plane keeps it
/// (`usage/<instance>`, on the node's connection lease).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUsage {
    /// Epoch seconds.
    pub at: f64,
    pub tasks: Vec<TaskUsage>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReply {
    pub heartbeat_seconds: u64,
}

/// A task's secrets, for its agent only: each container's `NAME=value`
/// environment entries, and the registry login its `repositoryCredentials`
/// name.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSecrets {
    pub containers: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub registry_logins: std::collections::BTreeMap<String, RegistryLogin>,
}

/// A private registry's login, as ECS keeps one in Secrets Manager:
/// `{"username": "…", "password": "…"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    /// The user only: a password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TaskSecrets {
    /// Names only: a value never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&String, Vec<&str>)> = self
            .containers
            .iter()
            .map(|(c, env)| {
                (
                    c,
                    env.iter()
                        .map(|e| e.split('=').next().unwrap_or(""))
                        .collect(),
                )
            })
            .collect();
        f.debug_struct("TaskSecrets")
            .field("containers", &names)
            .field("registry_logins", &self.registry_logins)
            .finish()
    }
}

/// The node's tasks that changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignments {
    /// The store revision read through: the next poll's `after`.
    pub revision: i64,
    /// Every assigned task when `after` was 0; else the changed ones.
    pub tasks: Vec<TaskRecord>,
    /// Tasks no longer assigned (STOPPED and acknowledged, or lost).
    #[serde(default)]
    pub removed: Vec<String>,
    /// True when `tasks` is the whole set, not a change.
    #[serde(default)]
    pub full: bool,
}

/// A task's state, as its node reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cluster: String,
    pub task: String,
    pub last_status: Status,
    pub containers: Vec<ContainerState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    /// awsvpc: the address of the task's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4: Option<std::net::Ipv4Addr>,
}

/// An agent API refusal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentError {
    pub message: String,
}
