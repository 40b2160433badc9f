//! Task definitions: `register` takes the JSON of a file or a request and
//! returns the definition normalized, with the notes and warnings to show,
//! or ECS's exception.
//!
//! Fields estiba runs are typed; the AWS-only ones (roles, FireLens, App
//! Mesh proxies, EFS/FSx volumes, …) are kept as JSON, recorded, and named
//! in a warning. An unknown field is refused by name.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// What describe-task-definition adds, which a registration drops.
const OUTPUT_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "compatibilities",
    "requiresAttributes",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// Ports an EC2 instance keeps for itself (SSH, Docker, the ECS agent).
const RESERVED_PORTS: &[u16] = &[22, 2375, 2376, 51678, 51679, 51680];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge,
    Host,
    Awsvpc,
    None,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    pub family: String,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    /// Task cpu units, normalized to a number string (`"1 vCPU"` → `"1024"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Size>,
    /// Task memory in MiB, normalized to a number string (`"2GB"` → `"2048"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_compatibilities: Option<Vec<String>>,
    // AWS-only: recorded, not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_accelerators: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Value>,
}

/// A task-level cpu or memory value: a string (`"512"`, `"1 vCPU"`,
/// `"2GB"`) or, in some files, a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Text(String),
    Number(u64),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// CPU shares (1024 a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// The hard limit, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// The soft limit, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<KeyValuePair>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<Secret>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_networking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_points: Option<Vec<MountPoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<VolumeFrom>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<Dependency>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_controls: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_security_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_terminal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<Value>,
    // AWS-only: recorded, not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firelens_configuration: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_specs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValuePair {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    #[serde(default)]
    pub container_port: Option<i64>,
    #[serde(default)]
    pub host_port: Option<i64>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub container_port_range: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPoint {
    #[serde(default)]
    pub source_volume: Option<String>,
    #[serde(default)]
    pub container_path: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeFrom {
    #[serde(default)]
    pub source_container: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Condition {
    Start,
    Complete,
    Success,
    Healthy,
}

impl Condition {
    /// As task definitions spell it.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependency {
    pub container_name: String,
    pub condition: Condition,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default)]
    pub interval: Option<i64>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub retries: Option<i64>,
    #[serde(default)]
    pub start_period: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    pub log_driver: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub secret_options: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub host: Option<Value>,
    #[serde(default)]
    pub docker_volume_configuration: Option<Value>,
    #[serde(default)]
    pub efs_volume_configuration: Option<Value>,
    #[serde(default)]
    pub fsx_windows_file_server_volume_configuration: Option<Value>,
    #[serde(default)]
    pub configured_at_launch: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub expression: Option<String>,
}

/// What a registration accepted, and what to tell its author.
#[derive(Clone, Debug, PartialEq)]
pub struct Registered {
    pub definition: TaskDefinition,
    /// Fields dropped on the way in (describe's output-only ones).
    pub notes: Vec<String>,
    /// AWS-only features recorded but not run here.
    pub warnings: Vec<String>,
}

/// Parses, normalizes and validates a task definition as
/// RegisterTaskDefinition receives it.
pub fn register(json: &str) -> Result<Registered> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| Error::client(format!("the task definition is not valid JSON: {e}")))?;
    let (value, notes) = unwrap(value)?;
    let mut definition: TaskDefinition = serde_json::from_value(value)
        .map_err(|e| Error::client(format!("Invalid task definition: {e}")))?;
    normalize(&mut definition)?;
    validate(&definition)?;
    let warnings = aws_only(&definition);
    Ok(Registered {
        definition,
        notes,
        warnings,
    })
}

/// Takes the definition out of `{"taskDefinition": …}` and drops the
/// output-only fields (and the explicit nulls' meaning stays: absent).
fn unwrap(value: Value) -> Result<(Value, Vec<String>)> {
    let mut value = match value {
        Value::Object(mut o) if o.len() == 1 && o.contains_key("taskDefinition") => {
            o.remove("taskDefinition").unwrap_or(Value::Null)
        }
        other => other,
    };
    let Some(object) = value.as_object_mut() else {
        return Err(Error::client("a task definition is a JSON object"));
    };
    let mut notes = Vec::new();
    for field in OUTPUT_ONLY {
        if object.remove(*field).is_some() {
            notes.push(format!(
                "{field} is set by the service on registration; the given one is dropped"
            ));
        }
    }
    Ok((value, notes))
}

/// `"1 vCPU"` → 1024 units; `"512"` → 512.
fn cpu_units(size: &Size) -> Option<u64> {
    match size {
        Size::Number(n) => Some(*n),
        Size::Text(t) => {
            let t = t.trim().to_ascii_lowercase();
            match t.strip_suffix("vcpu") {
                Some(n) => {
                    let cores: f64 = n.trim().parse().ok()?;
                    (cores > 0.0).then(|| (cores * 1024.0).round() as u64)
                }
                None => t.parse().ok(),
            }
        }
    }
}

/// `"2GB"`, `"2 GB"` → 2048 MiB; `"512"` → 512.
fn memory_mib(size: &Size) -> Option<u64> {
    match size {
        Size::Number(n) => Some(*n),
        Size::Text(t) => {
            let t = t.trim().to_ascii_lowercase();
            match t.strip_suffix("gb") {
                Some(n) => {
                    let gb: f64 = n.trim().parse().ok()?;
                    (gb > 0.0).then(|| (gb * 1024.0).round() as u64)
                }
                None => t.parse().ok(),
            }
        }
    }
}

/// Task cpu and memory become number strings, as ECS stores them.
fn normalize(d: &mut TaskDefinition) -> Result<()> {
    if let Some(cpu) = &d.cpu {
        let units =
            cpu_units(cpu).ok_or_else(|| Error::client("Invalid 'cpu' setting for task."))?;
        d.cpu = Some(Size::Text(units.to_string()));
    }
    if let Some(memory) = &d.memory {
        let mib = memory_mib(memory)
            .ok_or_else(|| Error::client("Invalid 'memory' setting for task."))?;
        d.memory = Some(Size::Text(mib.to_string()));
    }
    Ok(())
}

fn size_value(s: &Option<Size>) -> Option<u64> {
    match s {
        Some(Size::Text(t)) => t.parse().ok(),
        Some(Size::Number(n)) => Some(*n),
        None => None,
    }
}

fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl TaskDefinition {
    /// True if FARGATE is among the required compatibilities.
    pub fn fargate(&self) -> bool {
        self.requires_compatibilities
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c == "FARGATE"))
    }

    /// The network mode in effect: bridge unless set (awsvpc on Fargate).
    pub fn network(&self) -> NetworkMode {
        self.network_mode.unwrap_or(if self.fargate() {
            NetworkMode::Awsvpc
        } else {
            NetworkMode::Bridge
        })
    }
}

impl ContainerDefinition {
    /// `essential` defaults to true.
    pub fn is_essential(&self) -> bool {
        self.essential.unwrap_or(true)
    }
}

/// ECS's rules, in the order ECS checks them.
pub fn validate(d: &TaskDefinition) -> Result<()> {
    if !valid_name(&d.family) {
        return Err(Error::client(
            "Family contains invalid characters: up to 255 letters (uppercase and lowercase), numbers, underscores and hyphens are allowed.",
        ));
    }
    validate_containers(d)?;
    validate_sizes(d)?;
    validate_network(d)?;
    validate_dependencies(d)?;
    for c in &d.container_definitions {
        if let Some(h) = &c.health_check {
            validate_health_check(&c.name, h)?;
        }
    }
    validate_placement(d)
}

fn validate_containers(d: &TaskDefinition) -> Result<()> {
    let containers = &d.container_definitions;
    if containers.is_empty() {
        return Err(Error::client("Container list cannot be empty."));
    }
    if containers.len() > 10 {
        return Err(Error::client(
            "Too many containers: a task definition may hold at most 10.",
        ));
    }
    let mut names = BTreeSet::new();
    for c in containers {
        if !valid_name(&c.name) {
            return Err(Error::client(format!(
                "Container name '{}' is invalid: up to 255 letters (uppercase and lowercase), numbers, hyphens and underscores are allowed.",
                c.name
            )));
        }
        if !names.insert(c.name.as_str()) {
            return Err(Error::client(format!(
                "Duplicate container name '{}': container names must be unique within a task definition.",
                c.name
            )));
        }
        if c.image.is_empty() || c.image.len() > 255 {
            return Err(Error::client(format!(
                "Container '{}': image must be 1 to 255 characters.",
                c.name
            )));
        }
    }
    if !containers.iter().any(ContainerDefinition::is_essential) {
        return Err(Error::client(
            "Task definition must have at least one essential container.",
        ));
    }
    Ok(())
}

fn validate_sizes(d: &TaskDefinition) -> Result<()> {
    let task_memory = size_value(&d.memory);
    let task_cpu = size_value(&d.cpu);
    for c in &d.container_definitions {
        if let (Some(hard), Some(soft)) = (c.memory, c.memory_reservation) {
            if hard <= soft {
                return Err(Error::client(format!(
                    "Invalid 'memory' setting for container '{}': the hard limit ({hard} MiB) must be greater than memoryReservation ({soft} MiB).",
                    c.name
                )));
            }
        }
        for (what, v) in [
            ("memory", c.memory),
            ("memoryReservation", c.memory_reservation),
        ] {
            if v.is_some_and(|m| m < 6) {
                return Err(Error::client(format!(
                    "Invalid '{what}' setting for container '{}': the minimum is 6 MiB.",
                    c.name
                )));
            }
        }
        if task_memory.is_none()
            && c.memory.unwrap_or(0) == 0
            && c.memory_reservation.unwrap_or(0) == 0
        {
            return Err(Error::client(format!(
                "Invalid setting for container '{}'. At least one of 'memory' or 'memoryReservation' must be specified.",
                c.name
            )));
        }
        if c.cpu.is_some_and(|n| n < 0) {
            return Err(Error::client(format!(
                "Invalid 'cpu' setting for container '{}'.",
                c.name
            )));
        }
    }
    let reserved: i64 = d
        .container_definitions
        .iter()
        .map(|c| c.memory_reservation.or(c.memory).unwrap_or(0))
        .sum();
    if let Some(m) = task_memory {
        if u64::try_from(reserved).unwrap_or(0) > m {
            return Err(Error::client(format!(
                "The containers' memory ({reserved} MiB) exceeds the task's memory ({m} MiB)."
            )));
        }
    }
    let shares: i64 = d
        .container_definitions
        .iter()
        .map(|c| c.cpu.unwrap_or(0))
        .sum();
    if let Some(cpu) = task_cpu {
        if u64::try_from(shares).unwrap_or(0) > cpu {
            return Err(Error::client(format!(
                "The containers' cpu ({shares} units) exceeds the task's cpu ({cpu} units)."
            )));
        }
        if !d.fargate() && !(128..=10240).contains(&cpu) {
            return Err(Error::client("Invalid 'cpu' setting for task."));
        }
    }
    if d.fargate() {
        validate_fargate(d, task_cpu, task_memory)?;
    }
    Ok(())
}

/// Fargate's cpu and memory pairs.
fn fargate_pair(cpu: u64, memory: u64) -> bool {
    let gb = |n: u64| n * 1024;
    let steps = |lo: u64, hi: u64, step: u64| {
        memory >= gb(lo) && memory <= gb(hi) && (memory - gb(lo)).is_multiple_of(gb(step))
    };
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => steps(1, 4, 1),
        1024 => steps(2, 8, 1),
        2048 => steps(4, 16, 1),
        4096 => steps(8, 30, 1),
        8192 => steps(16, 60, 4),
        16384 => steps(32, 120, 8),
        _ => false,
    }
}

fn validate_fargate(d: &TaskDefinition, cpu: Option<u64>, memory: Option<u64>) -> Result<()> {
    let (Some(cpu), Some(memory)) = (cpu, memory) else {
        return Err(Error::client(
            "Fargate requires task definition to have 'cpu' and 'memory' values.",
        ));
    };
    if !fargate_pair(cpu, memory) {
        return Err(Error::client(format!(
            "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid combinations."
        )));
    }
    if d.network() != NetworkMode::Awsvpc {
        return Err(Error::client(
            "Fargate only supports network mode 'awsvpc'.",
        ));
    }
    if d.pid_mode.as_deref() == Some("host") || d.ipc_mode.is_some() {
        return Err(Error::client(
            "Fargate does not support 'ipcMode', nor 'pidMode' host.",
        ));
    }
    for c in &d.container_definitions {
        if c.privileged == Some(true) {
            return Err(Error::client(format!(
                "Container '{}': privileged containers are not supported on Fargate.",
                c.name
            )));
        }
        if c.stop_timeout.is_some_and(|t| t > 120) {
            return Err(Error::client(format!(
                "Container '{}': stopTimeout may not exceed 120 seconds on Fargate.",
                c.name
            )));
        }
    }
    if d.volumes
        .iter()
        .flatten()
        .any(|v| v.host.as_ref().is_some_and(|h| h["sourcePath"].is_string()))
    {
        return Err(Error::client(
            "Fargate does not support host volumes with a source path.",
        ));
    }
    Ok(())
}

fn validate_network(d: &TaskDefinition) -> Result<()> {
    let mode = d.network();
    for c in &d.container_definitions {
        for p in c.port_mappings.iter().flatten() {
            validate_port(d, c, p, mode)?;
        }
        if mode != NetworkMode::Bridge && c.links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::client(format!(
                "Links are not supported when networkMode={}.",
                mode_name(mode)
            )));
        }
        if mode == NetworkMode::Awsvpc {
            let unsupported = [
                ("hostname", c.hostname.is_some()),
                ("dnsServers", c.dns_servers.is_some()),
                ("dnsSearchDomains", c.dns_search_domains.is_some()),
                ("extraHosts", c.extra_hosts.is_some()),
                ("disableNetworking", c.disable_networking.is_some()),
            ];
            if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(Error::client(format!(
                    "The '{field}' parameter is not supported when networkMode=awsvpc."
                )));
            }
        }
        for link in c.links.iter().flatten() {
            let target = link.split(':').next().unwrap_or_default();
            let well_formed = link.split(':').count() <= 2 && valid_name(target);
            if !well_formed || !d.container_definitions.iter().any(|o| o.name == target) {
                return Err(Error::client(format!(
                    "Container '{}': link '{link}' must name a container of the task (name[:alias]).",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

fn mode_name(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::Bridge => "bridge",
        NetworkMode::Host => "host",
        NetworkMode::Awsvpc => "awsvpc",
        NetworkMode::None => "none",
    }
}

fn validate_port(
    d: &TaskDefinition,
    c: &ContainerDefinition,
    p: &PortMapping,
    mode: NetworkMode,
) -> Result<()> {
    let name = &c.name;
    if mode == NetworkMode::None {
        return Err(Error::client(
            "Port mappings are not supported when networkMode=none.",
        ));
    }
    if let Some(proto) = &p.protocol {
        if proto != "tcp" && proto != "udp" {
            return Err(Error::client(format!(
                "Container '{name}': invalid protocol '{proto}' (tcp or udp)."
            )));
        }
    }
    let in_range = |n: i64| (1..=65535).contains(&n);
    match (p.container_port, &p.container_port_range) {
        (Some(port), None) if !in_range(port) => {
            return Err(Error::client(format!(
                "Container '{name}': containerPort {port} is out of range (1-65535)."
            )))
        }
        (None, None) => {
            return Err(Error::client(format!(
                "Container '{name}': a port mapping needs containerPort or containerPortRange."
            )))
        }
        _ => {}
    }
    if let Some(host) = p.host_port {
        if host != 0 && !in_range(host) {
            return Err(Error::client(format!(
                "Container '{name}': hostPort {host} is out of range (1-65535)."
            )));
        }
        if matches!(mode, NetworkMode::Host | NetworkMode::Awsvpc)
            && host != 0
            && Some(host) != p.container_port
        {
            return Err(Error::client(format!(
                "When networkMode={}, the hostPort must either be left blank or be the same as the containerPort.",
                mode_name(mode)
            )));
        }
        if u16::try_from(host).is_ok_and(|h| RESERVED_PORTS.contains(&h)) && !d.fargate() {
            return Err(Error::client(format!(
                "Container '{name}': host port {host} is reserved."
            )));
        }
    }
    Ok(())
}

fn validate_dependencies(d: &TaskDefinition) -> Result<()> {
    let by_name: BTreeMap<&str, &ContainerDefinition> = d
        .container_definitions
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    for c in &d.container_definitions {
        for dep in c.depends_on.iter().flatten() {
            let Some(target) = by_name.get(dep.container_name.as_str()) else {
                return Err(Error::client(format!(
                    "Container '{}' depends on '{}', which is not a container of the task.",
                    c.name, dep.container_name
                )));
            };
            match dep.condition {
                Condition::Complete | Condition::Success if target.is_essential() => {
                    return Err(Error::client(format!(
                        "Container '{}': the {} condition cannot be used on an essential container ('{}').",
                        c.name,
                        dep.condition.name(),
                        target.name
                    )));
                }
                Condition::Healthy if target.health_check.is_none() => {
                    return Err(Error::client(format!(
                        "Container '{}': the HEALTHY condition needs a health check on '{}'.",
                        c.name, target.name
                    )));
                }
                _ => {}
            }
        }
        for from in c.volumes_from.iter().flatten() {
            let source = from.source_container.as_deref().unwrap_or_default();
            if !by_name.contains_key(source) {
                return Err(Error::client(format!(
                    "Container '{}': volumesFrom names '{source}', which is not a container of the task.",
                    c.name
                )));
            }
        }
        for m in c.mount_points.iter().flatten() {
            let source = m.source_volume.as_deref().unwrap_or_default();
            let declared = d
                .volumes
                .iter()
                .flatten()
                .any(|v| v.name.as_deref() == Some(source));
            if !declared {
                return Err(Error::client(format!(
                    "Container '{}': mount point source volume '{source}' is not a volume of the task.",
                    c.name
                )));
            }
        }
    }
    if let Some(cycle) = find_cycle(d) {
        return Err(Error::client(format!(
            "The containers' dependencies form a cycle: {}.",
            cycle.join(" -> ")
        )));
    }
    Ok(())
}

/// A cycle through `dependsOn`, links and `volumesFrom` (the orders the
/// agent derives), if there is one.
fn find_cycle(d: &TaskDefinition) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = d
        .container_definitions
        .iter()
        .map(|c| {
            let mut to: Vec<&str> = c
                .depends_on
                .iter()
                .flatten()
                .map(|dep| dep.container_name.as_str())
                .collect();
            to.extend(c.links.iter().flatten().filter_map(|l| l.split(':').next()));
            to.extend(
                c.volumes_from
                    .iter()
                    .flatten()
                    .filter_map(|v| v.source_container.as_deref()),
            );
            (c.name.as_str(), to)
        })
        .collect();
    // Depth-first, with the path on a stack: a node met again on the path
    // closes a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn validate_health_check(container: &str, h: &HealthCheck) -> Result<()> {
    let first = h.command.first().map(String::as_str);
    if !matches!(first, Some("CMD" | "CMD-SHELL")) || h.command.len() < 2 {
        return Err(Error::client(format!(
            "Container '{container}': healthCheck command must start with CMD or CMD-SHELL, followed by the command."
        )));
    }
    let bounds = [
        ("interval", h.interval, 5, 300),
        ("timeout", h.timeout, 2, 60),
        ("retries", h.retries, 1, 10),
        ("startPeriod", h.start_period, 0, 300),
    ];
    for (field, value, lo, hi) in bounds {
        if let Some(v) = value {
            if !(lo..=hi).contains(&v) {
                return Err(Error::client(format!(
                    "Container '{container}': healthCheck {field} must be between {lo} and {hi}; it is {v}."
                )));
            }
        }
    }
    Ok(())
}

fn validate_placement(d: &TaskDefinition) -> Result<()> {
    let constraints = d.placement_constraints.iter().flatten();
    for (i, c) in constraints.enumerate() {
        if i >= 10 {
            return Err(Error::client("Too many placement constraints: at most 10."));
        }
        if c.kind != "memberOf" {
            return Err(Error::client(format!(
                "Placement constraint type '{}' is not allowed in a task definition (memberOf only).",
                c.kind
            )));
        }
    }
    Ok(())
}

/// The AWS-only features a definition uses, as warnings: recorded, not run.
fn aws_only(d: &TaskDefinition) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: &str, set: bool| {
        if set {
            out.push(format!(
                "{what} is an AWS feature: it is recorded, not used here"
            ));
        }
    };
    note("taskRoleArn", d.task_role_arn.is_some());
    note("executionRoleArn", d.execution_role_arn.is_some());
    note("proxyConfiguration", d.proxy_configuration.is_some());
    note("inferenceAccelerators", d.inference_accelerators.is_some());
    note("ephemeralStorage", d.ephemeral_storage.is_some());
    note("enableFaultInjection", d.enable_fault_injection.is_some());
    for v in d.volumes.iter().flatten() {
        note(
            "efsVolumeConfiguration",
            v.efs_volume_configuration.is_some(),
        );
        note(
            "fsxWindowsFileServerVolumeConfiguration",
            v.fsx_windows_file_server_volume_configuration.is_some(),
        );
    }
    for c in &d.container_definitions {
        note("firelensConfiguration", c.firelens_configuration.is_some());
        note("credentialSpecs", c.credential_specs.is_some());
    }
    out.extend(d.container_definitions.iter().filter_map(log_fallback));
    out
}

/// The warning for a container whose log driver estiba lacks: its logs go
/// to local json-file logs instead. Shown at registration and again by the
/// agent when the container is created.
pub fn log_fallback(c: &ContainerDefinition) -> Option<String> {
    let log = c.log_configuration.as_ref()?;
    (!matches!(log.log_driver.as_str(), "json-file" | "local" | "none")).then(|| {
        format!(
            "container '{}': log driver '{}' is not available here; its logs go to local json-file logs",
            c.name, log.log_driver
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/ecs-task-definitions")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
    }

    #[test]
    fn the_shared_task_definitions_register_unchanged() {
        for name in [
            "acstd-nginx_fargate.json",
            "ecs-agent-add-drop-capabilities.json",
            "ecs-agent-container-ordering-healthy.json",
            "ecs-agent-granular-stop-timeout.json",
            "mesh-hello-world-mesh-task-definition.json",
        ] {
            let r = register(&shared(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!r.definition.container_definitions.is_empty(), "{name}");
        }
        // What the fuzz target checks: printed and registered again, the
        // same definition.
        for name in [
            "acstd-nginx_fargate.json",
            "mesh-hello-world-mesh-task-definition.json",
        ] {
            let first = register(&shared(name)).unwrap().definition;
            let printed = serde_json::to_string(&first).unwrap();
            assert_eq!(register(&printed).unwrap().definition, first, "{name}");
        }
        let fargate = register(&shared("acstd-nginx_fargate.json")).unwrap();
        assert!(fargate.definition.fargate());
        assert_eq!(fargate.definition.network(), NetworkMode::Awsvpc);
        assert!(
            fargate.warnings.iter().any(|w| w.contains("awslogs")),
            "{:?}",
            fargate.warnings
        );
    }

    fn minimal() -> Value {
        serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64}],
        })
    }

    fn refused(v: Value) -> String {
        match register(&v.to_string()) {
            Err(e) => e.message,
            Ok(r) => panic!("accepted: {:?}", r.definition),
        }
    }

    #[test]
    fn every_form_real_files_come_in_is_accepted() {
        let mut described = minimal();
        described["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:1:task-definition/web:3".into();
        described["revision"] = 3.into();
        described["status"] = "ACTIVE".into();
        described["containerDefinitions"][0]["ulimits"] = Value::Null;
        let wrapped = serde_json::json!({"taskDefinition": described});
        let r = register(&wrapped.to_string()).unwrap();
        assert_eq!(r.notes.len(), 3, "{:?}", r.notes);
        assert!(r.definition.container_definitions[0].ulimits.is_none());
    }

    #[test]
    fn sizes_are_normalized() {
        let mut v = minimal();
        v["cpu"] = "1 vCPU".into();
        v["memory"] = "2 GB".into();
        let r = register(&v.to_string()).unwrap();
        assert_eq!(r.definition.cpu, Some(Size::Text("1024".into())));
        assert_eq!(r.definition.memory, Some(Size::Text("2048".into())));
        v["cpu"] = "lots".into();
        assert_eq!(refused(v), "Invalid 'cpu' setting for task.");
    }

    #[test]
    fn bad_definitions_get_ecs_exceptions_that_say_what_is_wrong() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "unknown field",
                Box::new(|v| v["containerDefinitions"][0]["colour"] = "red".into()),
                "colour",
            ),
            (
                "no containers",
                Box::new(|v| v["containerDefinitions"] = serde_json::json!([])),
                "cannot be empty",
            ),
            (
                "bad family",
                Box::new(|v| v["family"] = "a b".into()),
                "Family contains invalid characters",
            ),
            (
                "no essential",
                Box::new(|v| v["containerDefinitions"][0]["essential"] = false.into()),
                "at least one essential",
            ),
            (
                "no memory",
                Box::new(|v| v["containerDefinitions"][0]["memory"] = Value::Null),
                "'memory' or 'memoryReservation'",
            ),
            (
                "soft above hard",
                Box::new(|v| v["containerDefinitions"][0]["memoryReservation"] = 128.into()),
                "greater than memoryReservation",
            ),
            (
                "bad protocol",
                Box::new(|v| {
                    v["containerDefinitions"][0]["portMappings"] =
                        serde_json::json!([{"containerPort": 80, "protocol": "sctp"}])
                }),
                "invalid protocol",
            ),
            (
                "reserved port",
                Box::new(|v| {
                    v["containerDefinitions"][0]["portMappings"] =
                        serde_json::json!([{"containerPort": 80, "hostPort": 22}])
                }),
                "reserved",
            ),
            (
                "host port under host",
                Box::new(|v| {
                    v["networkMode"] = "host".into();
                    v["containerDefinitions"][0]["portMappings"] =
                        serde_json::json!([{"containerPort": 80, "hostPort": 81}]);
                }),
                "same as the containerPort",
            ),
            (
                "links under awsvpc",
                Box::new(|v| {
                    v["networkMode"] = "awsvpc".into();
                    v["containerDefinitions"][0]["links"] = serde_json::json!(["app"]);
                }),
                "Links are not supported",
            ),
            (
                "health bounds",
                Box::new(|v| {
                    v["containerDefinitions"][0]["healthCheck"] =
                        serde_json::json!({"command": ["CMD", "true"], "interval": 1})
                }),
                "interval must be between 5 and 300",
            ),
            (
                "health command",
                Box::new(|v| {
                    v["containerDefinitions"][0]["healthCheck"] =
                        serde_json::json!({"command": ["true"]})
                }),
                "CMD or CMD-SHELL",
            ),
            (
                "unknown mode",
                Box::new(|v| v["networkMode"] = "overlay".into()),
                "overlay",
            ),
            (
                "fargate table",
                Box::new(|v| {
                    v["requiresCompatibilities"] = serde_json::json!(["FARGATE"]);
                    v["networkMode"] = "awsvpc".into();
                    v["cpu"] = "256".into();
                    v["memory"] = "4096".into();
                }),
                "No Fargate configuration exists for given values: 256 CPU, 4096 memory",
            ),
            (
                "placement type",
                Box::new(|v| {
                    v["placementConstraints"] = serde_json::json!([{"type": "distinctInstance"}])
                }),
                "memberOf only",
            ),
        ];
        for (what, change, expected) in cases {
            let mut v = minimal();
            change(&mut v);
            let message = refused(v);
            assert!(message.contains(expected), "{what}: {message}");
        }
    }

    #[test]
    fn dependencies_follow_ecs_rules_and_never_cycle() {
        let two = |deps_a: Value, deps_b: Value, b_essential: bool| {
            serde_json::json!({
                "family": "t",
                "containerDefinitions": [
                    {"name": "a", "image": "i", "memory": 64, "dependsOn": deps_a},
                    {"name": "b", "image": "i", "memory": 64, "essential": b_essential, "dependsOn": deps_b},
                ],
            })
        };
        let dep = |name: &str, condition: &str| serde_json::json!([{"containerName": name, "condition": condition}]);
        assert!(
            refused(two(dep("b", "COMPLETE"), Value::Null, true)).contains("essential container")
        );
        assert!(register(&two(dep("b", "SUCCESS"), Value::Null, false).to_string()).is_ok());
        assert!(refused(two(dep("b", "HEALTHY"), Value::Null, false)).contains("health check"));
        assert!(refused(two(dep("c", "START"), Value::Null, false))
            .contains("not a container of the task"));
        let cycle = refused(two(dep("b", "START"), dep("a", "START"), true));
        assert!(cycle.contains("cycle: a -> b -> a"), "{cycle}");
    }

    #[test]
    fn aws_only_features_are_recorded_with_a_warning() {
        let mut v = minimal();
        v["taskRoleArn"] = "arn:aws:iam::1:role/app".into();
        v["containerDefinitions"][0]["firelensConfiguration"] =
            serde_json::json!({"type": "fluentbit"});
        let r = register(&v.to_string()).unwrap();
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.definition.task_role_arn.is_some(), "recorded");
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        for input in [
            "",
            "[]",
            "null",
            "{",
            "{\"family\": 3}",
            "{\"taskDefinition\": 7}",
        ] {
            assert!(register(input).is_err(), "{input}");
        }
    }
}
