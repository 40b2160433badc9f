//! The requests these commands send and the parts of the answers their
//! tables show, in ECS's JSON shapes. Answers read leniently: a field
//! missing (or null) is empty, since `--format json` prints the answer as
//! it came and tables only need what they show.

use anyhow::{Context as _, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// An answer (or a combined one) read as `T`.
pub fn read<T: DeserializeOwned>(answer: &Value, what: &str) -> Result<T> {
    T::deserialize(answer).with_context(|| format!("reading the {what} answer"))
}

/// A field that is null reads as missing: empty.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitions<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_prefix: Option<&'a str>,
    pub status: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTaskDefinition<'a> {
    pub task_definition: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTask<'a> {
    pub cluster: &'a str,
    pub task_definition: &'a str,
    pub count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasks<'a> {
    pub cluster: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'a str>,
    pub desired_status: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTasks<'a> {
    pub cluster: &'a str,
    pub tasks: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTask<'a> {
    pub cluster: &'a str,
    pub task: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContainerInstances<'a> {
    pub cluster: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeContainerInstances<'a> {
    pub cluster: &'a str,
    pub container_instances: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContainerInstancesState<'a> {
    pub cluster: &'a str,
    pub container_instances: &'a [String],
    pub status: &'a str,
}

/// estiba's GetTaskLogs: every field is sent, null when not given.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskLogs<'a> {
    pub cluster: &'a str,
    pub task: &'a str,
    pub container: Option<&'a str>,
    pub next_token: Option<&'a str>,
    /// Seconds the server may hold the call open for new lines.
    pub wait: Option<u32>,
}

/// RegisterTaskDefinition's and DescribeTaskDefinition's answers, with
/// estiba's `warnings` and `notes` (not in ECS's shape).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDefinitionAnswer {
    #[serde(deserialize_with = "nullable")]
    pub task_definition: TaskDefinition,
    #[serde(deserialize_with = "nullable")]
    pub warnings: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDefinition {
    pub task_definition_arn: Option<String>,
    pub family: Option<String>,
    pub revision: Option<u64>,
    pub status: Option<String>,
    pub network_mode: Option<String>,
    /// A number or a string ("256", "1 vCPU") in ECS's JSON.
    pub cpu: Option<Value>,
    pub memory: Option<Value>,
    #[serde(deserialize_with = "nullable")]
    pub container_definitions: Vec<ContainerDefinition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerDefinition {
    pub name: Option<String>,
    pub image: Option<String>,
    pub cpu: Option<Value>,
    pub memory: Option<Value>,
    pub memory_reservation: Option<Value>,
    pub essential: Option<bool>,
}

/// RunTask's and DescribeTasks' answers.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TasksAnswer {
    #[serde(deserialize_with = "nullable")]
    pub tasks: Vec<Task>,
    #[serde(deserialize_with = "nullable")]
    pub failures: Vec<Failure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StopTaskAnswer {
    #[serde(deserialize_with = "nullable")]
    pub task: Task,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    pub task_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub last_status: Option<String>,
    pub desired_status: Option<String>,
    pub health_status: Option<String>,
    pub container_instance_arn: Option<String>,
    pub launch_type: Option<String>,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub cpu: Option<Value>,
    pub memory: Option<Value>,
    pub created_at: Option<f64>,
    pub started_at: Option<f64>,
    pub stopping_at: Option<f64>,
    pub stopped_at: Option<f64>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<Container>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: Option<String>,
    pub image: Option<String>,
    pub last_status: Option<String>,
    pub health_status: Option<String>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
}

/// A resource a call could not act on, as ECS lists them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Failure {
    pub arn: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// DescribeContainerInstances' and UpdateContainerInstancesState's answers.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstancesAnswer {
    #[serde(deserialize_with = "nullable")]
    pub container_instances: Vec<ContainerInstance>,
    #[serde(deserialize_with = "nullable")]
    pub failures: Vec<Failure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerInstance {
    pub container_instance_arn: Option<String>,
    pub ec2_instance_id: Option<String>,
    pub status: Option<String>,
    pub agent_connected: Option<bool>,
    pub running_tasks_count: Option<i64>,
    pub pending_tasks_count: Option<i64>,
    #[serde(deserialize_with = "nullable")]
    pub version_info: VersionInfo,
    #[serde(deserialize_with = "nullable")]
    pub registered_resources: Vec<Resource>,
    #[serde(deserialize_with = "nullable")]
    pub remaining_resources: Vec<Resource>,
    #[serde(deserialize_with = "nullable")]
    pub attributes: Vec<Attribute>,
    pub registered_at: Option<f64>,
    /// estiba's: where the node's tasks are reached.
    pub estiba_address: Option<String>,
    /// estiba's: what the node's agent warned of when it joined.
    #[serde(deserialize_with = "nullable")]
    pub estiba_warnings: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VersionInfo {
    pub agent_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    pub name: Option<String>,
    pub integer_value: Option<i64>,
    #[serde(deserialize_with = "nullable")]
    pub string_set_value: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attribute {
    pub name: Option<String>,
    pub value: Option<String>,
}

/// GetTaskLogs' answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogsAnswer {
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogEvent {
    pub timestamp: Option<f64>,
    pub container: Option<String>,
    pub stream: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_missing_fields_read_as_empty() {
        let answer = serde_json::json!({
            "tasks": [{"taskArn": "arn:aws:ecs:us-east-1:0:task/default/abc", "containers": null}],
        });
        let answer: TasksAnswer = read(&answer, "DescribeTasks").unwrap();
        assert!(answer.failures.is_empty());
        assert_eq!(answer.tasks.len(), 1);
        assert!(answer.tasks[0].containers.is_empty() && answer.tasks[0].started_at.is_none());
        let e = read::<TasksAnswer>(&serde_json::json!({"tasks": 3}), "DescribeTasks").unwrap_err();
        assert!(e.to_string().contains("DescribeTasks"), "{e}");
    }
}
