//! RegisterTaskDefinition, DeregisterTaskDefinition, DescribeTaskDefinition,
//! ListTaskDefinitions, ListTaskDefinitionFamilies, DeleteTaskDefinitions.
//!
//! A family's revisions are numbered by a counter record of their own
//! (`families/<family>`), advanced in the same transaction that writes the
//! revision: two registrations at once get two numbers, never one.

use std::collections::BTreeMap;

use estiba_state::{Cmp, Compare, Op, Txn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{tags, ApiError, Caller, Reply, Server};
use crate::model::{encode, FamilyRecord, Tag, TaskDefRecord, TaskDefStatus, Versioned};
use crate::page::Page;
use crate::{keys, time, Result};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    task_definition: String,
    #[serde(default)]
    include: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterRequest {
    task_definition: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    family_prefix: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamiliesRequest {
    family_prefix: Option<String>,
    status: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    task_definitions: Vec<String>,
}

/// `family:revision` of a record.
fn name_of(r: &TaskDefRecord) -> String {
    format!("{}:{}", r.definition.family, r.revision)
}

pub fn arn(server: &Server, r: &TaskDefRecord) -> String {
    server.arn(format!("task-definition/{}", name_of(r)))
}

/// A revision as describe-task-definition shows it.
pub fn view(server: &Server, r: &TaskDefRecord) -> Value {
    let mut v = serde_json::to_value(&r.definition).unwrap_or_else(|_| json!({}));
    let compatibilities = if r.definition.fargate() {
        json!(["EC2", "FARGATE"])
    } else {
        json!(["EXTERNAL", "EC2"])
    };
    let fields = [
        ("taskDefinitionArn", json!(arn(server, r))),
        ("revision", json!(r.revision)),
        ("status", json!(r.status)),
        ("requiresAttributes", json!([])),
        ("compatibilities", compatibilities),
        ("registeredAt", json!(r.registered_at)),
        ("registeredBy", json!(r.registered_by)),
    ];
    if let Some(o) = v.as_object_mut() {
        o.remove("tags");
        for (k, value) in fields {
            o.insert(k.into(), value);
        }
        if let Some(t) = r.deregistered_at {
            o.insert("deregisteredAt".into(), json!(t));
        }
        if let Some(t) = r.delete_requested_at {
            o.insert("deleteRequestedAt".into(), json!(t));
        }
    }
    v
}

/// The revision a name points at: `family:revision`, an ARN, or a bare
/// family (its latest ACTIVE revision).
pub async fn find(server: &Server, given: &str) -> Result<Option<Versioned<TaskDefRecord>>> {
    let name = match given.strip_prefix("arn:") {
        Some(_) => match given.split_once(":task-definition/") {
            Some((_, rest)) => rest,
            None => return Ok(None),
        },
        None => given,
    };
    match name.rsplit_once(':') {
        Some((family, rev)) => {
            let Ok(rev) = rev.parse::<u32>() else {
                return Ok(None);
            };
            server.db.get(&keys::taskdef(family, rev)).await
        }
        None => {
            let all = server
                .db
                .list::<TaskDefRecord>(&keys::taskdefs_of(name))
                .await?;
            let latest = all
                .into_iter()
                .rev()
                .find(|(_, r)| r.status == TaskDefStatus::Active);
            Ok(match latest {
                // Read again with its mod revision, for callers that write.
                Some((key, _)) => server.db.get(&key).await?,
                None => None,
            })
        }
    }
}

fn request_tags(v: Option<&Value>) -> std::result::Result<Vec<Tag>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| ApiError::client(format!("tags: {e}")))
        }
    }
}

pub async fn register(server: &Server, caller: &Caller, body: &[u8]) -> Reply {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::client("the task definition is not UTF-8"))?;
    let registered = estiba_ecs::taskdef::register(text)?;
    crate::policy::admit(&server.db, &registered.definition, None).await?;
    let mut definition = registered.definition;
    let tags = request_tags(definition.tags.as_ref())?;
    tags::check(&tags)?;
    definition.tags = None;
    let family = definition.family.clone();
    let family_key = keys::family(&family);
    let record = loop {
        let counter = server.db.get::<FamilyRecord>(&family_key).await?;
        let (last, rev) = counter.map_or((0, 0), |c| (c.value.last, c.mod_revision));
        let record = TaskDefRecord {
            definition: definition.clone(),
            revision: last + 1,
            status: TaskDefStatus::Active,
            registered_at: time::now(),
            registered_by: server.user_arn(&caller.user),
            deregistered_at: None,
            delete_requested_at: None,
            warnings: registered.warnings.clone(),
        };
        let txn = Txn::when(vec![Compare::ModRevision(
            family_key.as_bytes().to_vec(),
            Cmp::Equal,
            rev,
        )])
        .and_then(vec![
            Op::put(
                family_key.as_str(),
                encode(&FamilyRecord { last: last + 1 }),
            ),
            Op::put(keys::taskdef(&family, last + 1), encode(&record)),
        ]);
        if server.db.commit(txn).await? {
            break record;
        }
    };
    let arn = arn(server, &record);
    if !tags.is_empty() {
        tags::merge(server, &arn, &tags).await?;
    }
    tracing::info!(taskdef = %name_of(&record), "registered");
    Ok(json!({
        "taskDefinition": view(server, &record),
        "tags": tags,
        // Not in ECS's shape (SDKs skip it): what estiba's CLI shows.
        "warnings": registered.warnings,
        "notes": registered.notes,
    }))
}

pub async fn describe(server: &Server, req: DescribeRequest) -> Reply {
    let Some(found) = find(server, &req.task_definition).await? else {
        return Err(ApiError::client("Unable to describe task definition."));
    };
    let r = found.value;
    let mut out = json!({"taskDefinition": view(server, &r), "warnings": r.warnings});
    if req.include.iter().any(|i| i == "TAGS") {
        out["tags"] = json!(tags::of(server, &arn(server, &r)).await?);
    }
    Ok(out)
}

/// Moves a revision to `status`, by compare-and-swap.
async fn set_status(
    server: &Server,
    mut found: Versioned<TaskDefRecord>,
    status: TaskDefStatus,
) -> Result<TaskDefRecord> {
    let key = keys::taskdef(&found.value.definition.family, found.value.revision);
    loop {
        let mut r = found.value.clone();
        match status {
            TaskDefStatus::Inactive => r.deregistered_at = Some(time::now()),
            TaskDefStatus::DeleteInProgress => r.delete_requested_at = Some(time::now()),
            TaskDefStatus::Active => {}
        }
        r.status = status;
        if server.db.swap(&key, found.mod_revision, &r).await? {
            return Ok(r);
        }
        match server.db.get::<TaskDefRecord>(&key).await? {
            Some(again) => found = again,
            None => return Ok(r),
        }
    }
}

pub async fn deregister(server: &Server, req: DeregisterRequest) -> Reply {
    let name = req.task_definition.rsplit('/').next().unwrap_or_default();
    if !name.contains(':') {
        return Err(ApiError::client(
            "A revision is required: give family:revision or the full ARN.",
        ));
    }
    let Some(found) = find(server, &req.task_definition).await? else {
        return Err(ApiError::client(
            "The specified task definition does not exist.",
        ));
    };
    let r = if found.value.status == TaskDefStatus::Active {
        set_status(server, found, TaskDefStatus::Inactive).await?
    } else {
        found.value
    };
    Ok(json!({"taskDefinition": view(server, &r)}))
}

fn status_filter(given: Option<&str>) -> std::result::Result<TaskDefStatus, ApiError> {
    match given {
        None => Ok(TaskDefStatus::Active),
        Some(s) => TaskDefStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status {s}: must be ACTIVE, INACTIVE or DELETE_IN_PROGRESS"
            ))
        }),
    }
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let status = status_filter(req.status.as_deref())?;
    let descending = match req.sort.as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(s) => return Err(ApiError::invalid(format!("sort {s}: must be ASC or DESC"))),
    };
    let prefix = match &req.family_prefix {
        Some(f) => keys::taskdefs_of(f),
        None => keys::TASKDEFS.to_string(),
    };
    let all = server.db.list::<TaskDefRecord>(&prefix).await?;
    let matching: Vec<(String, String)> = all
        .into_iter()
        .filter(|(_, r)| r.status == status)
        .map(|(k, r)| (k, arn(server, &r)))
        .collect();
    let (arns, next) = page.take_ordered(matching, descending);
    Ok(crate::page::answer("taskDefinitionArns", arns, next))
}

pub async fn families(server: &Server, req: FamiliesRequest) -> Reply {
    let page = Page::parse(req.max_results, req.next_token.as_deref())?;
    let want_active = match req.status.as_deref() {
        None | Some("ACTIVE") => Some(true),
        Some("INACTIVE") => Some(false),
        Some("ALL") => None,
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "status {s}: must be ACTIVE, INACTIVE or ALL"
            )))
        }
    };
    let prefix = format!(
        "{}{}",
        keys::TASKDEFS,
        req.family_prefix.unwrap_or_default()
    );
    let all = server.db.list::<TaskDefRecord>(&prefix).await?;
    // A family is ACTIVE while one of its revisions is.
    let mut active: BTreeMap<String, bool> = BTreeMap::new();
    for (_, r) in all {
        *active.entry(r.definition.family.clone()).or_default() |=
            r.status == TaskDefStatus::Active;
    }
    let matching: Vec<(String, String)> = active
        .into_iter()
        .filter(|(_, a)| want_active.is_none_or(|w| w == *a))
        .map(|(f, _)| (keys::family(&f), f))
        .collect();
    let (families, next) = page.take(matching);
    Ok(crate::page::answer("families", families, next))
}

pub async fn delete(server: &Server, req: DeleteRequest) -> Reply {
    if req.task_definitions.is_empty() || req.task_definitions.len() > 10 {
        return Err(ApiError::invalid(
            "taskDefinitions must name 1 to 10 task definitions.",
        ));
    }
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for given in &req.task_definitions {
        let failure = |reason: &str| json!({"arn": given, "reason": reason});
        match find(server, given).await? {
            None => failures.push(failure("The specified task definition does not exist.")),
            Some(f) if f.value.status == TaskDefStatus::Active => failures.push(failure(
                "The specified task definition is ACTIVE: deregister it before deleting it.",
            )),
            Some(f) => {
                let r = set_status(server, f, TaskDefStatus::DeleteInProgress).await?;
                deleted.push(view(server, &r));
            }
        }
    }
    Ok(json!({"taskDefinitions": deleted, "failures": failures}))
}

/// The task definition a request names: ACTIVE, and fit for the launch
/// type.
pub(crate) async fn usable(
    server: &Server,
    given: &str,
    launch: crate::task::LaunchType,
) -> Result<TaskDefRecord, ApiError> {
    let Some(found) = find(server, given).await? else {
        return Err(ApiError::client("TaskDefinition not found."));
    };
    let td = found.value;
    if td.status != TaskDefStatus::Active {
        return Err(ApiError::client(format!(
            "TaskDefinition is inactive: {}:{}",
            td.definition.family, td.revision
        )));
    }
    if launch == crate::task::LaunchType::Fargate && !td.definition.fargate() {
        return Err(ApiError::client(
            "Task definition does not support launch_type FARGATE.",
        ));
    }
    Ok(td)
}
