//! CreateCluster, DeleteCluster, DescribeClusters, ListClusters.

use serde::Deserialize;
use serde_json::json;

use super::{cluster_name, tags, ApiError, Reply, Server};
use crate::model::{ClusterRecord, ClusterStatus, Tag};
use crate::page::Page;
use crate::task::{Status, TaskRecord};
use crate::{keys, time};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    cluster_name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    cluster: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    clusters: Option<Vec<String>>,
    #[serde(default)]
    include: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A cluster as ECS describes it, with its instances and tasks counted.
async fn view(server: &Server, c: &ClusterRecord, with_tags: bool) -> Reply {
    let arn = server.cluster_arn(&c.name);
    let instances = server.db.keys(&keys::instances_of(&c.name)).await?.len();
    let (mut running, mut pending) = (0, 0);
    for (_, t) in server
        .db
        .list::<TaskRecord>(&keys::tasks_of(&c.name))
        .await?
    {
        match t.last_status {
            Status::Running => running += 1,
            s if s < Status::Running => pending += 1,
            _ => {}
        }
    }
    let services = server
        .db
        .list::<crate::service::ServiceRecord>(&keys::services_of(&c.name))
        .await?
        .iter()
        .filter(|(_, s)| s.status == crate::service::ServiceStatus::Active)
        .count();
    let mut v = json!({
        "clusterArn": arn,
        "clusterName": c.name,
        "status": c.status,
        "registeredContainerInstancesCount": instances,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": services,
        "statistics": [],
        "settings": [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    });
    if with_tags {
        v["tags"] = json!(tags::of(server, &arn).await?);
    }
    Ok(v)
}

/// Creates a cluster, or answers the one of that name (ECS's
/// CreateCluster is idempotent; an INACTIVE one comes back ACTIVE).
pub async fn create(server: &Server, req: CreateRequest) -> Reply {
    let name = req.cluster_name.unwrap_or_else(|| "default".into());
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            "Cluster name must be 1 to 255 letters (uppercase and lowercase), numbers, hyphens and underscores.",
        ));
    }
    tags::check(&req.tags)?;
    let key = keys::cluster(&name);
    loop {
        let current = server.db.get::<ClusterRecord>(&key).await?;
        let (record, rev) = match current {
            Some(c) if c.value.status == ClusterStatus::Active => {
                return Ok(json!({"cluster": view(server, &c.value, false).await?}));
            }
            Some(c) => (
                ClusterRecord {
                    status: ClusterStatus::Active,
                    ..c.value
                },
                c.mod_revision,
            ),
            None => (
                ClusterRecord {
                    name: name.clone(),
                    status: ClusterStatus::Active,
                    created_at: time::now(),
                },
                0,
            ),
        };
        if server.db.swap(&key, rev, &record).await? {
            let arn = server.cluster_arn(&name);
            if !req.tags.is_empty() {
                tags::merge(server, &arn, &req.tags).await?;
            }
            return Ok(json!({"cluster": view(server, &record, !req.tags.is_empty()).await?}));
        }
    }
}

/// Marks a cluster INACTIVE; refused, as ECS refuses it, while instances
/// are registered or tasks are not STOPPED.
pub async fn delete(server: &Server, req: DeleteRequest) -> Reply {
    let name = cluster_name(Some(&req.cluster))?;
    let key = keys::cluster(&name);
    if !server.db.keys(&keys::instances_of(&name)).await?.is_empty() {
        return Err(ApiError::new(
            "ClusterContainsContainerInstancesException",
            400,
            "The Cluster cannot be deleted while Container Instances are active or draining.",
        ));
    }
    let tasks = server.db.list::<TaskRecord>(&keys::tasks_of(&name)).await?;
    if tasks.iter().any(|(_, t)| t.last_status != Status::Stopped) {
        return Err(ApiError::new(
            "ClusterContainsTasksException",
            400,
            "The Cluster cannot be deleted while Tasks are active.",
        ));
    }
    loop {
        let Some(c) = server.db.get::<ClusterRecord>(&key).await? else {
            return Err(ApiError::cluster_not_found());
        };
        let record = ClusterRecord {
            status: ClusterStatus::Inactive,
            ..c.value
        };
        if server.db.swap(&key, c.mod_revision, &record).await? {
            return Ok(json!({"cluster": view(server, &record, false).await?}));
        }
    }
}

pub async fn describe(server: &Server, req: DescribeRequest) -> Reply {
    let with_tags = req.include.iter().any(|i| i == "TAGS");
    let wanted = req.clusters.unwrap_or_else(|| vec!["default".into()]);
    if wanted.len() > 100 {
        return Err(ApiError::invalid(
            "At most 100 clusters can be described at once.",
        ));
    }
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for given in wanted {
        let name = cluster_name(Some(&given))?;
        match server
            .db
            .get::<ClusterRecord>(&keys::cluster(&name))
            .await?
        {
            Some(c) => clusters.push(view(server, &c.value, with_tags).await?),
            None => failures.push(json!({
                "arn": server.cluster_arn(&name),
                "reason": "MISSING",
            })),
        }
    }
    Ok(json!({"clusters": clusters, "failures": failures}))
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let all = server.db.list::<ClusterRecord>(keys::CLUSTERS).await?;
    let active: Vec<(String, String)> = all
        .into_iter()
        .filter(|(_, c)| c.status == ClusterStatus::Active)
        .map(|(k, c)| (k, server.cluster_arn(&c.name)))
        .collect();
    let (arns, next) = page.take(active);
    Ok(crate::page::answer("clusterArns", arns, next))
}
