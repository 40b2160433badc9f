//! Application Auto Scaling on the ECS endpoint
//! (`X-Amz-Target: AnyScaleFrontendService.<Operation>`, signed for
//! `application-autoscaling`), for ECS services' desired counts:
//! RegisterScalableTarget, DeregisterScalableTarget,
//! DescribeScalableTargets, PutScalingPolicy (target tracking),
//! DescribeScalingPolicies, DeleteScalingPolicy and
//! DescribeScalingActivities. `service/autoscale.rs` does the scaling.

use estiba_state::{Op, Txn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, Reply, Server};
use crate::model::unchanged;
use crate::page::Page;
use crate::service::autoscale::{
    service_of, ActivityRecord, Metric, PolicyRecord, TargetRecord, DIMENSION,
};
use crate::service::{ServiceRecord, ServiceStatus, MAX_DESIRED};
use crate::{keys, time};

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", 400, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new("ObjectNotFoundException", 400, message)
}

/// Namespace and dimension, the ones served: ECS services' desired count.
fn check_scope(namespace: &str, dimension: Option<&str>) -> Result<(), ApiError> {
    if namespace != "ecs" {
        return Err(validation(format!(
            "Unsupported service namespace {namespace}: estiba scales ecs services."
        )));
    }
    match dimension {
        None | Some(DIMENSION) => Ok(()),
        Some(d) => Err(validation(format!(
            "Unsupported scalable dimension {d}: use {DIMENSION}."
        ))),
    }
}

fn target_arn(server: &Server, resource: &str) -> String {
    let id = &crate::model::sha256_hex(resource)[..32];
    format!(
        "arn:aws:application-autoscaling:{}:{}:scalable-target/{id}",
        server.settings.region, server.settings.account
    )
}

fn policy_arn(server: &Server, p: &PolicyRecord) -> String {
    format!(
        "arn:aws:autoscaling:{}:{}:scalingPolicy:{}:resource/ecs/{}:policyName/{}",
        server.settings.region, server.settings.account, p.id, p.resource_id, p.name
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterRequest {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    min_capacity: Option<i64>,
    max_capacity: Option<i64>,
    #[serde(rename = "RoleARN")]
    #[allow(dead_code)]
    role_arn: Option<String>,
    suspended_state: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetRef {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetsRequest {
    service_namespace: String,
    #[serde(default)]
    resource_ids: Vec<String>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PredefinedMetric {
    predefined_metric_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetTracking {
    target_value: f64,
    predefined_metric_specification: Option<PredefinedMetric>,
    customized_metric_specification: Option<Value>,
    scale_out_cooldown: Option<i64>,
    scale_in_cooldown: Option<i64>,
    #[serde(default)]
    disable_scale_in: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutPolicyRequest {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
    policy_type: Option<String>,
    target_tracking_scaling_policy_configuration: Option<TargetTracking>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribePoliciesRequest {
    service_namespace: String,
    #[serde(default)]
    policy_names: Vec<String>,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeletePolicyRequest {
    policy_name: String,
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeActivitiesRequest {
    service_namespace: String,
    resource_id: Option<String>,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// The ECS service a resource id names, which must be ACTIVE.
async fn active_service(server: &Server, resource: &str) -> Result<(), ApiError> {
    let Some((cluster, name)) = service_of(resource) else {
        return Err(validation(format!(
            "Unsupported resource ID {resource}: an ECS service is service/CLUSTER/NAME."
        )));
    };
    match server
        .db
        .get::<ServiceRecord>(&keys::service(cluster, name))
        .await?
    {
        Some(s) if s.value.status == ServiceStatus::Active => Ok(()),
        _ => Err(validation(format!("ECS service doesn't exist: {resource}"))),
    }
}

fn capacity(given: Option<i64>, what: &str) -> Result<Option<u32>, ApiError> {
    match given {
        None => Ok(None),
        Some(n) if (0..=i64::from(MAX_DESIRED)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(validation(format!(
            "{what} must be between 0 and {MAX_DESIRED}, not {n}."
        ))),
    }
}

pub async fn register(server: &Server, req: RegisterRequest) -> Reply {
    check_scope(&req.service_namespace, Some(&req.scalable_dimension))?;
    active_service(server, &req.resource_id).await?;
    let min = capacity(req.min_capacity, "MinCapacity")?;
    let max = capacity(req.max_capacity, "MaxCapacity")?;
    let key = keys::scaling_target(&req.resource_id);
    let existing = server.db.get::<TargetRecord>(&key).await?;
    let record = match &existing {
        Some(e) => TargetRecord {
            min: min.unwrap_or(e.value.min),
            max: max.unwrap_or(e.value.max),
            suspended: req.suspended_state.clone().or(e.value.suspended.clone()),
            ..e.value.clone()
        },
        None => {
            let (Some(min), Some(max)) = (min, max) else {
                return Err(validation(
                    "MinCapacity and MaxCapacity are required to register a new scalable target.",
                ));
            };
            TargetRecord {
                resource_id: req.resource_id.clone(),
                min,
                max,
                created_at: time::now(),
                last_scale_out: 0.0,
                last_scale_in: 0.0,
                activities: 0,
                suspended: req.suspended_state.clone(),
            }
        }
    };
    if record.min > record.max {
        return Err(validation(format!(
            "MinCapacity ({}) cannot be more than MaxCapacity ({}).",
            record.min, record.max
        )));
    }
    let rev = existing.map_or(0, |e| e.mod_revision);
    if !server.db.swap(&key, rev, &record).await? {
        return Err(ApiError::new(
            "ConcurrentUpdateException",
            400,
            "The scalable target changed while it was being registered: try again.",
        ));
    }
    Ok(json!({"ScalableTargetARN": target_arn(server, &req.resource_id)}))
}

pub async fn deregister(server: &Server, req: TargetRef) -> Reply {
    check_scope(&req.service_namespace, Some(&req.scalable_dimension))?;
    let key = keys::scaling_target(&req.resource_id);
    let Some(found) = server.db.get::<TargetRecord>(&key).await? else {
        return Err(not_found(format!(
            "No scalable target registered for service namespace: ecs, resource ID: {}, scalable dimension: {DIMENSION}",
            req.resource_id
        )));
    };
    let txn = Txn::when(vec![unchanged(&key, found.mod_revision)]).and_then(vec![
        Op::delete(key.as_str()),
        Op::Delete {
            key: keys::scaling_policies_of(&req.resource_id).into_bytes(),
            prefix: true,
        },
    ]);
    server.db.commit(txn).await?;
    Ok(json!({}))
}

fn target_view(server: &Server, t: &TargetRecord) -> Value {
    let suspended = t.suspended.clone().unwrap_or_else(|| {
        json!({
            "DynamicScalingInSuspended": false,
            "DynamicScalingOutSuspended": false,
            "ScheduledScalingSuspended": false,
        })
    });
    json!({
        "ServiceNamespace": "ecs",
        "ResourceId": t.resource_id,
        "ScalableDimension": DIMENSION,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": format!(
            "arn:aws:iam::{}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService",
            server.settings.account
        ),
        "CreationTime": t.created_at,
        "SuspendedState": suspended,
        "ScalableTargetARN": target_arn(server, &t.resource_id),
    })
}

/// Page sizes: Application Auto Scaling's own limits.
fn page(max: Option<i64>, limit: i64, token: Option<&str>) -> Result<Page, ApiError> {
    match max {
        Some(n) if !(1..=limit).contains(&n) => Err(validation(format!(
            "MaxResults must be between 1 and {limit}."
        ))),
        _ => Ok(Page::parse(Some(max.unwrap_or(limit)), token)?),
    }
}

pub async fn describe_targets(server: &Server, req: DescribeTargetsRequest) -> Reply {
    check_scope(&req.service_namespace, req.scalable_dimension.as_deref())?;
    if req.resource_ids.len() > 50 {
        return Err(validation("At most 50 ResourceIds can be given."));
    }
    let page = page(req.max_results, 50, req.next_token.as_deref())?;
    let all = server
        .db
        .list::<TargetRecord>(keys::SCALING_TARGETS)
        .await?;
    let matching: Vec<(String, Value)> = all
        .into_iter()
        .filter(|(_, t)| req.resource_ids.is_empty() || req.resource_ids.contains(&t.resource_id))
        .map(|(k, t)| (k, target_view(server, &t)))
        .collect();
    let (items, next) = page.take(matching);
    let mut out = json!({"ScalableTargets": items});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}

pub async fn put_policy(server: &Server, req: PutPolicyRequest) -> Reply {
    check_scope(&req.service_namespace, Some(&req.scalable_dimension))?;
    let name = &req.policy_name;
    if name.is_empty()
        || name.len() > 256
        || name.contains(['/', ':', '|'])
        || name.chars().any(char::is_control)
    {
        return Err(validation(
            "PolicyName must be 1 to 256 printable characters without '/', ':' or '|'.",
        ));
    }
    match req.policy_type.as_deref() {
        Some("TargetTrackingScaling") => {}
        Some(other) => {
            return Err(validation(format!(
                "PolicyType {other} is not served: estiba scales by TargetTrackingScaling."
            )))
        }
        None => return Err(validation("PolicyType is required: TargetTrackingScaling.")),
    }
    let Some(tt) = req.target_tracking_scaling_policy_configuration else {
        return Err(validation(
            "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy.",
        ));
    };
    if tt.customized_metric_specification.is_some() {
        return Err(validation(
            "CustomizedMetricSpecification is not served: use a PredefinedMetricSpecification.",
        ));
    }
    let metric = match tt
        .predefined_metric_specification
        .as_ref()
        .map(|m| m.predefined_metric_type.as_str())
    {
        Some("ECSServiceAverageCPUUtilization") => Metric::Cpu,
        Some("ECSServiceAverageMemoryUtilization") => Metric::Memory,
        Some(other) => {
            return Err(validation(format!(
                "PredefinedMetricType {other} is not served: use ECSServiceAverageCPUUtilization or ECSServiceAverageMemoryUtilization."
            )))
        }
        None => return Err(validation("A PredefinedMetricSpecification is required.")),
    };
    if !(tt.target_value.is_finite() && tt.target_value > 0.0) {
        return Err(validation("TargetValue must be a number above 0."));
    }
    let cooldown = |v: Option<i64>, what: &str| -> Result<u32, ApiError> {
        match v {
            None => Ok(300),
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n as u32),
            Some(n) => Err(validation(format!(
                "{what} must be 0 or more seconds, not {n}."
            ))),
        }
    };
    let scale_out_cooldown = cooldown(tt.scale_out_cooldown, "ScaleOutCooldown")?;
    let scale_in_cooldown = cooldown(tt.scale_in_cooldown, "ScaleInCooldown")?;
    if server
        .db
        .get::<TargetRecord>(&keys::scaling_target(&req.resource_id))
        .await?
        .is_none()
    {
        return Err(not_found(format!(
            "No scalable target registered for service namespace: ecs, resource ID: {}, scalable dimension: {DIMENSION}",
            req.resource_id
        )));
    }
    let key = keys::scaling_policy(&req.resource_id, name);
    let existing = server.db.get::<PolicyRecord>(&key).await?;
    let record = PolicyRecord {
        name: name.clone(),
        id: existing
            .as_ref()
            .map_or_else(crate::model::uuid_like, |e| e.value.id.clone()),
        resource_id: req.resource_id.clone(),
        metric,
        target_value: tt.target_value,
        scale_out_cooldown,
        scale_in_cooldown,
        disable_scale_in: tt.disable_scale_in,
        created_at: existing
            .as_ref()
            .map_or_else(time::now, |e| e.value.created_at),
    };
    let rev = existing.map_or(0, |e| e.mod_revision);
    if !server.db.swap(&key, rev, &record).await? {
        return Err(ApiError::new(
            "ConcurrentUpdateException",
            400,
            "The policy changed while it was being written: try again.",
        ));
    }
    Ok(json!({"PolicyARN": policy_arn(server, &record), "Alarms": []}))
}

fn policy_view(server: &Server, p: &PolicyRecord) -> Value {
    json!({
        "PolicyARN": policy_arn(server, p),
        "PolicyName": p.name,
        "ServiceNamespace": "ecs",
        "ResourceId": p.resource_id,
        "ScalableDimension": DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": p.target_value,
            "PredefinedMetricSpecification": {"PredefinedMetricType": p.metric.name()},
            "ScaleOutCooldown": p.scale_out_cooldown,
            "ScaleInCooldown": p.scale_in_cooldown,
            "DisableScaleIn": p.disable_scale_in,
        },
        "Alarms": [],
        "CreationTime": p.created_at,
    })
}

pub async fn describe_policies(server: &Server, req: DescribePoliciesRequest) -> Reply {
    check_scope(&req.service_namespace, req.scalable_dimension.as_deref())?;
    if req.scalable_dimension.is_some() && req.resource_id.is_none() {
        return Err(validation("ScalableDimension needs a ResourceId."));
    }
    let page = page(req.max_results, 10, req.next_token.as_deref())?;
    let prefix = match &req.resource_id {
        Some(r) => keys::scaling_policies_of(r),
        None => keys::SCALING_POLICIES.to_string(),
    };
    let all = server.db.list::<PolicyRecord>(&prefix).await?;
    let matching: Vec<(String, Value)> = all
        .into_iter()
        .filter(|(_, p)| req.policy_names.is_empty() || req.policy_names.contains(&p.name))
        .map(|(k, p)| (k, policy_view(server, &p)))
        .collect();
    let (items, next) = page.take(matching);
    let mut out = json!({"ScalingPolicies": items});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}

pub async fn delete_policy(server: &Server, req: DeletePolicyRequest) -> Reply {
    check_scope(&req.service_namespace, Some(&req.scalable_dimension))?;
    let key = keys::scaling_policy(&req.resource_id, &req.policy_name);
    let Some(found) = server.db.get::<PolicyRecord>(&key).await? else {
        return Err(not_found(format!(
            "No scaling policy found for service namespace: ecs, resource ID: {}, scalable dimension: {DIMENSION}, policy name: {}",
            req.resource_id, req.policy_name
        )));
    };
    let txn = Txn::when(vec![unchanged(&key, found.mod_revision)])
        .and_then(vec![Op::delete(key.as_str())]);
    server.db.commit(txn).await?;
    Ok(json!({}))
}

pub async fn describe_activities(server: &Server, req: DescribeActivitiesRequest) -> Reply {
    check_scope(&req.service_namespace, req.scalable_dimension.as_deref())?;
    let page = page(req.max_results, 50, req.next_token.as_deref())?;
    let prefix = match &req.resource_id {
        Some(r) => keys::scaling_activities_of(r),
        None => keys::SCALING_ACTIVITIES.to_string(),
    };
    let all = server.db.list::<ActivityRecord>(&prefix).await?;
    let items: Vec<(String, Value)> = all
        .into_iter()
        .map(|(k, a)| {
            let v = json!({
                "ActivityId": a.id,
                "ServiceNamespace": "ecs",
                "ResourceId": a.resource_id,
                "ScalableDimension": DIMENSION,
                "Description": a.description,
                "Cause": a.cause,
                "StartTime": a.start_time,
                "EndTime": a.end_time,
                "StatusCode": a.status_code,
                "StatusMessage": a.status_message,
            });
            (k, v)
        })
        .collect();
    // Newest first, as Application Auto Scaling lists them.
    let (items, next) = page.take_ordered(items, true);
    let mut out = json!({"ScalingActivities": items});
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}
