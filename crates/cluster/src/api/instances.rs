//! ListContainerInstances, DescribeContainerInstances,
//! DeregisterContainerInstance, UpdateContainerInstancesState, and the
//! attributes of instances (PutAttributes, ListAttributes,
//! DeleteAttributes).

use estiba_state::{Op, Txn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::tasks::{id_of, instance_arn, lose_node};
use super::{cluster_name, ApiError, Reply, Server};
use crate::page::Page;
use crate::task::{Attribute, InstanceRecord, InstanceStatus, Resources};
use crate::{keys, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    cluster: Option<String>,
    status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    cluster: Option<String>,
    container_instances: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterRequest {
    cluster: Option<String>,
    container_instance: String,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRequest {
    cluster: Option<String>,
    container_instances: Vec<String>,
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeSpec {
    name: String,
    value: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributesRequest {
    cluster: Option<String>,
    attributes: Vec<AttributeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributesRequest {
    cluster: Option<String>,
    target_type: String,
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn resources_view(r: &Resources) -> Value {
    let integer = |name: &str, n: i64| json!({"name": name, "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": n});
    let set = |name: &str, ports: &[u16]| {
        json!({
            "name": name, "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0,
            "stringSetValue": ports.iter().map(u16::to_string).collect::<Vec<_>>(),
        })
    };
    json!([
        integer("CPU", r.cpu),
        integer("MEMORY", r.memory),
        set("PORTS", &r.ports),
        set("PORTS_UDP", &r.ports_udp),
    ])
}

/// A container instance as ECS describes it.
async fn view(server: &Server, i: &InstanceRecord) -> Result<Value> {
    let connected = server
        .db
        .get::<Value>(&keys::connected(&i.id))
        .await?
        .is_some();
    let mut counts = (0, 0);
    for t in server.view.loaded_on_node(&i.id).await? {
        crate::view::tally(&mut counts, t.last_status);
    }
    let (running, pending) = counts;
    Ok(json!({
        "containerInstanceArn": instance_arn(server, &i.cluster, &i.id),
        "ec2InstanceId": i.hostname,
        "version": i.version,
        "versionInfo": {"agentVersion": i.agent_version, "agentHash": "", "dockerVersion": "estiba"},
        "remainingResources": resources_view(&i.remaining),
        "registeredResources": resources_view(&i.registered),
        "status": i.status,
        "agentConnected": connected,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "attributes": i.attributes,
        "registeredAt": i.registered_at,
        "tags": [],
        // Not in ECS's shape (SDKs skip it): the node's address and warnings.
        "estibaAddress": i.address,
        "estibaWarnings": i.warnings,
    }))
}

fn status(given: &str) -> std::result::Result<InstanceStatus, ApiError> {
    match given {
        "ACTIVE" => Ok(InstanceStatus::Active),
        "DRAINING" => Ok(InstanceStatus::Draining),
        other => Err(ApiError::invalid(format!(
            "status {other}: must be ACTIVE or DRAINING"
        ))),
    }
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let want = req.status.as_deref().map(status).transpose()?;
    let all = server
        .db
        .list::<InstanceRecord>(&keys::instances_of(&cluster))
        .await?;
    let matching: Vec<(String, String)> = all
        .into_iter()
        .filter(|(_, i)| want.is_none_or(|w| w == i.status))
        .map(|(k, i)| (k, instance_arn(server, &cluster, &i.id)))
        .collect();
    let (arns, next) = page.take(matching);
    Ok(crate::page::answer("containerInstanceArns", arns, next))
}

pub async fn describe(server: &Server, req: DescribeRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    if req.container_instances.is_empty() || req.container_instances.len() > 100 {
        return Err(ApiError::invalid(
            "containerInstances must name 1 to 100 instances.",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for given in &req.container_instances {
        let id = id_of(given);
        match server
            .db
            .get::<InstanceRecord>(&keys::instance(&cluster, id))
            .await?
        {
            Some(i) => found.push(view(server, &i.value).await?),
            None => failures
                .push(json!({"arn": instance_arn(server, &cluster, id), "reason": "MISSING"})),
        }
    }
    Ok(json!({"containerInstances": found, "failures": failures}))
}

pub async fn update_state(server: &Server, req: StateRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let want = status(&req.status)?;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for given in &req.container_instances {
        let id = id_of(given);
        let key = keys::instance(&cluster, id);
        loop {
            let Some(i) = server.db.get::<InstanceRecord>(&key).await? else {
                failures
                    .push(json!({"arn": instance_arn(server, &cluster, id), "reason": "MISSING"}));
                break;
            };
            let mut record = i.value;
            if record.status != want {
                record.status = want;
                record.version += 1;
            }
            if server.db.swap(&key, i.mod_revision, &record).await? {
                done.push(view(server, &record).await?);
                break;
            }
        }
    }
    Ok(json!({"containerInstances": done, "failures": failures}))
}

pub async fn deregister(server: &Server, req: DeregisterRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let id = id_of(&req.container_instance).to_string();
    let key = keys::instance(&cluster, &id);
    let Some(i) = server.db.get::<InstanceRecord>(&key).await? else {
        return Err(ApiError::invalid(
            "The referenced container instance was not found.",
        ));
    };
    let busy = !server.view.loaded_on_node(&id).await?.is_empty();
    if busy && !req.force {
        return Err(ApiError::invalid(
            "Found running tasks on the instance: stop them first, or deregister with force.",
        ));
    }
    if busy {
        lose_node(server, &id, None).await?;
    }
    let mut shown = view(server, &i.value).await?;
    shown["status"] = json!("INACTIVE");
    let txn = Txn::default().and_then(vec![
        Op::delete(key.as_str()),
        Op::delete(keys::node(&id)),
        Op::delete(keys::connected(&id)),
    ]);
    server.db.commit(txn).await?;
    Ok(json!({"containerInstance": shown}))
}

/// ECS's limits on attribute names and values.
fn check_attribute(a: &AttributeSpec) -> std::result::Result<(), ApiError> {
    let name_ok = (1..=128).contains(&a.name.len())
        && a.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/\\.".contains(c));
    if !name_ok {
        return Err(ApiError::invalid(format!(
            "Attribute name {:?}: up to 128 letters, numbers, hyphens, underscores, slashes and periods.",
            a.name
        )));
    }
    if a.value.as_ref().is_some_and(|v| v.chars().count() > 128) {
        return Err(ApiError::invalid(format!(
            "The value of attribute {} must be at most 128 characters.",
            a.name
        )));
    }
    if a.target_type
        .as_deref()
        .is_some_and(|t| t != "container-instance")
    {
        return Err(ApiError::invalid("targetType must be container-instance."));
    }
    Ok(())
}

fn attribute_view(server: &Server, i: &InstanceRecord, a: &Attribute) -> Value {
    let mut v = json!({
        "name": a.name,
        "targetType": "container-instance",
        "targetId": instance_arn(server, &i.cluster, &i.id),
    });
    if let Some(value) = &a.value {
        v["value"] = json!(value);
    }
    v
}

/// PutAttributes (`put`) or DeleteAttributes: each on its instance, by
/// compare-and-swap.
pub async fn change_attributes(server: &Server, req: AttributesRequest, put: bool) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    if req.attributes.is_empty() || req.attributes.len() > 10 {
        return Err(ApiError::invalid(
            "attributes must hold 1 to 10 attributes.",
        ));
    }
    let mut out = Vec::new();
    for a in &req.attributes {
        check_attribute(a)?;
        let Some(target) = a.target_id.as_deref() else {
            return Err(ApiError::invalid(
                "targetId is required for container-instance attributes.",
            ));
        };
        let key = keys::instance(&cluster, id_of(target));
        loop {
            let Some(i) = server.db.get::<InstanceRecord>(&key).await? else {
                return Err(ApiError::new(
                    "TargetNotFoundException",
                    400,
                    format!("Could not find {target}."),
                ));
            };
            let mut record = i.value;
            record.attributes.retain(|old| old.name != a.name);
            let attribute = Attribute {
                name: a.name.clone(),
                value: a.value.clone(),
            };
            if put {
                record.attributes.push(attribute.clone());
            }
            record.version += 1;
            if server.db.swap(&key, i.mod_revision, &record).await? {
                out.push(attribute_view(server, &record, &attribute));
                break;
            }
        }
    }
    Ok(json!({"attributes": out}))
}

pub async fn list_attributes(server: &Server, req: ListAttributesRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    if req.target_type != "container-instance" {
        return Err(ApiError::invalid("targetType must be container-instance."));
    }
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let all = server
        .db
        .list::<InstanceRecord>(&keys::instances_of(&cluster))
        .await?;
    let mut matching = Vec::new();
    for (key, i) in &all {
        for a in &i.attributes {
            if req.attribute_name.as_ref().is_some_and(|n| *n != a.name) {
                continue;
            }
            if req.attribute_value.is_some() && req.attribute_value != a.value {
                continue;
            }
            matching.push((format!("{key}/{}", a.name), attribute_view(server, i, a)));
        }
    }
    let (attributes, next) = page.take(matching);
    Ok(crate::page::answer("attributes", attributes, next))
}
