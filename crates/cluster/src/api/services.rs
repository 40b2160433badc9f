//! CreateService, UpdateService, DeleteService, DescribeServices and
//! ListServices. The API writes the service record; the scheduler
//! (`service/scheduler.rs`) does the rest.
//!
//! Every check runs before anything is written: a refused request
//! changes nothing.

use serde::Deserialize;
use serde_json::{json, Value};

use super::tasks::{active_cluster, id_of};
use super::{cluster_name, taskdefs, ApiError, Caller, Reply, Server};
use crate::model::{Tag, TaskDefRecord, Versioned};
use crate::page::Page;
use crate::placement::{self, ConstraintSpec, StrategySpec};
use crate::service::{
    Deployment, DeploymentConfiguration, DeploymentStatus, Revision, Scheduling, ServiceRecord,
    ServiceStatus, MAX_DESIRED,
};
use crate::task::{LaunchType, TaskRecord};

use crate::{keys, time};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    cluster: Option<String>,
    service_name: String,
    task_definition: Option<String>,
    desired_count: Option<i64>,
    #[allow(dead_code)]
    client_token: Option<String>,
    launch_type: Option<String>,
    #[serde(default)]
    capacity_provider_strategy: Vec<Value>,
    #[allow(dead_code)]
    platform_version: Option<String>,
    #[allow(dead_code)]
    role: Option<String>,
    deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(default)]
    placement_constraints: Vec<ConstraintSpec>,
    #[serde(default)]
    placement_strategy: Vec<StrategySpec>,
    network_configuration: Option<Value>,
    health_check_grace_period_seconds: Option<i64>,
    scheduling_strategy: Option<String>,
    deployment_controller: Option<Controller>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default, rename = "enableECSManagedTags")]
    enable_ecs_managed_tags: bool,
    propagate_tags: Option<String>,
    #[serde(default)]
    enable_execute_command: bool,
    #[serde(default)]
    load_balancers: Vec<Value>,
    #[serde(default)]
    service_registries: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Controller {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    cluster: Option<String>,
    service: String,
    desired_count: Option<i64>,
    task_definition: Option<String>,
    deployment_configuration: Option<DeploymentConfiguration>,
    placement_constraints: Option<Vec<ConstraintSpec>>,
    placement_strategy: Option<Vec<StrategySpec>>,
    #[serde(default)]
    force_new_deployment: bool,
    health_check_grace_period_seconds: Option<i64>,
    network_configuration: Option<Value>,
    enable_execute_command: Option<bool>,
    #[serde(rename = "enableECSManagedTags")]
    enable_ecs_managed_tags: Option<bool>,
    propagate_tags: Option<String>,
    #[serde(default)]
    capacity_provider_strategy: Vec<Value>,
    #[serde(default)]
    load_balancers: Vec<Value>,
    #[serde(default)]
    service_registries: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    cluster: Option<String>,
    service: String,
    #[serde(default)]
    force: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRequest {
    cluster: Option<String>,
    services: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    cluster: Option<String>,
    launch_type: Option<String>,
    scheduling_strategy: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::new("ServiceNotFoundException", 400, "Service not found.")
}

fn not_active() -> ApiError {
    ApiError::new("ServiceNotActiveException", 400, "Service was not ACTIVE.")
}

pub fn service_arn(server: &Server, cluster: &str, name: &str) -> String {
    server.arn(format!("service/{cluster}/{name}"))
}

fn taskdef_arn(server: &Server, r: &Revision) -> String {
    server.arn(format!("task-definition/{r}"))
}

fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn launch_type(given: Option<&str>) -> Result<LaunchType, ApiError> {
    match given {
        None | Some("EC2") => Ok(LaunchType::Ec2),
        Some("FARGATE") => Ok(LaunchType::Fargate),
        Some(other) => Err(ApiError::invalid(format!(
            "launchType {other}: must be EC2 or FARGATE."
        ))),
    }
}

fn scheduling(given: Option<&str>) -> Result<Scheduling, ApiError> {
    match given {
        None | Some("REPLICA") => Ok(Scheduling::Replica),
        Some("DAEMON") => Ok(Scheduling::Daemon),
        Some(other) => Err(ApiError::invalid(format!(
            "schedulingStrategy {other}: must be REPLICA or DAEMON."
        ))),
    }
}

fn desired(given: Option<i64>) -> Result<u32, ApiError> {
    match given {
        Some(n) if (0..=i64::from(MAX_DESIRED)).contains(&n) => Ok(n as u32),
        Some(n) => Err(ApiError::invalid(format!(
            "desiredCount must be between 0 and {MAX_DESIRED}, not {n}."
        ))),
        None => Err(ApiError::invalid(
            "desiredCount is required for a REPLICA service.",
        )),
    }
}

fn grace(given: Option<i64>) -> Result<u32, ApiError> {
    match given {
        None => Ok(0),
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n as u32),
        Some(n) => Err(ApiError::invalid(format!(
            "healthCheckGracePeriodSeconds must be between 0 and 2147483647, not {n}."
        ))),
    }
}

/// What estiba does not serve is refused, not silently dropped.
fn refuse_unserved(
    capacity_providers: &[Value],
    load_balancers: &[Value],
    registries: &[Value],
) -> Result<(), ApiError> {
    if !capacity_providers.is_empty() {
        return Err(ApiError::invalid(
            "capacityProviderStrategy is not served: give a launchType (EC2 or FARGATE).",
        ));
    }
    if !load_balancers.is_empty() {
        return Err(ApiError::invalid(
            "loadBalancers are not served: estiba has no Elastic Load Balancing.",
        ));
    }
    if !registries.is_empty() {
        return Err(ApiError::invalid(
            "serviceRegistries are not served: estiba has no Cloud Map.",
        ));
    }
    Ok(())
}

fn propagate(given: Option<String>) -> Result<Option<String>, ApiError> {
    match given.as_deref() {
        None | Some("NONE" | "SERVICE" | "TASK_DEFINITION") => Ok(given),
        Some(other) => Err(ApiError::invalid(format!(
            "propagateTags {other}: must be TASK_DEFINITION, SERVICE or NONE."
        ))),
    }
}

/// The placement rules a service would run under, checked together with
/// its task definition's (at most ten constraints in all).
fn check_placement(
    scheduling: Scheduling,
    constraints: &[ConstraintSpec],
    strategies: &[StrategySpec],
    td: &TaskDefRecord,
) -> Result<(), ApiError> {
    placement::constraints_of(constraints, &td.definition)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    placement::strategies_of(strategies).map_err(|e| ApiError::invalid(e.to_string()))?;
    if scheduling == Scheduling::Daemon && !strategies.is_empty() {
        return Err(ApiError::invalid(
            "Placement strategies are not supported with a DAEMON scheduling strategy.",
        ));
    }
    Ok(())
}

pub async fn create(server: &Server, caller: &Caller, req: CreateRequest) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    if !valid_name(&req.service_name) {
        return Err(ApiError::invalid(
            "serviceName must be 1 to 255 letters, digits, hyphens and underscores.",
        ));
    }
    refuse_unserved(
        &req.capacity_provider_strategy,
        &req.load_balancers,
        &req.service_registries,
    )?;
    if let Some(c) = req
        .deployment_controller
        .as_ref()
        .filter(|c| c.kind != "ECS")
    {
        return Err(ApiError::invalid(format!(
            "deploymentController {}: estiba serves the ECS (rolling) controller only.",
            c.kind
        )));
    }
    let sched = scheduling(req.scheduling_strategy.as_deref())?;
    let launch = launch_type(req.launch_type.as_deref())?;
    let count = match sched {
        Scheduling::Replica => desired(req.desired_count)?,
        Scheduling::Daemon if req.desired_count.is_some_and(|n| n != 0) => {
            return Err(ApiError::invalid(
                "desiredCount is not given for a DAEMON service: it runs one task on each instance.",
            ))
        }
        Scheduling::Daemon if launch == LaunchType::Fargate => {
            return Err(ApiError::invalid(
                "The DAEMON scheduling strategy is not supported with the FARGATE launch type.",
            ))
        }
        Scheduling::Daemon => 0,
    };
    let Some(given_td) = req.task_definition.as_deref() else {
        return Err(ApiError::invalid("taskDefinition is required."));
    };
    let td = taskdefs::usable(server, given_td, launch).await?;
    crate::policy::admit(&server.db, &td.definition, Some(&cluster)).await?;
    let config = req.deployment_configuration.clone().unwrap_or_default();
    config.check(sched, count).map_err(ApiError::invalid)?;
    check_placement(
        sched,
        &req.placement_constraints,
        &req.placement_strategy,
        &td,
    )?;
    let grace = grace(req.health_check_grace_period_seconds)?;
    let propagate_tags = propagate(req.propagate_tags.clone())?;
    if req.tags.len() > 50 {
        return Err(ApiError::invalid("A service can have at most 50 tags."));
    }
    let key = keys::service(&cluster, &req.service_name);
    let existing = server.db.get::<ServiceRecord>(&key).await?;
    if let Some(e) = &existing {
        if e.value.status != ServiceStatus::Inactive {
            return Err(ApiError::invalid("Creation of service was not idempotent."));
        }
    }
    let now = time::now();
    let revision = Revision {
        family: td.definition.family.clone(),
        revision: td.revision,
    };
    let svc = ServiceRecord {
        name: req.service_name.clone(),
        cluster: cluster.clone(),
        status: ServiceStatus::Active,
        desired_count: count,
        launch_type: launch,
        scheduling_strategy: sched,
        task_definition: revision.clone(),
        deployment_configuration: config,
        placement_constraints: req.placement_constraints,
        placement_strategy: req.placement_strategy,
        health_check_grace_period_seconds: grace,
        network_configuration: req.network_configuration,
        deployments: vec![Deployment::new(revision, count, launch, now)],
        completed: None,
        events: Vec::new(),
        steady: false,
        created_at: now,
        created_by: server.user_arn(&caller.user),
        tags: req.tags,
        enable_ecs_managed_tags: req.enable_ecs_managed_tags,
        propagate_tags,
        enable_execute_command: req.enable_execute_command,
        version: 1,
    };
    let rev = existing.map_or(0, |e| e.mod_revision);
    if !server.db.swap(&key, rev, &svc).await? {
        return Err(ApiError::invalid("Creation of service was not idempotent."));
    }
    tracing::info!(service = %svc.name, %cluster, "service created");
    Ok(json!({"service": view(server, &svc, false).await?}))
}

/// A service by name or ARN, as read.
async fn find(
    server: &Server,
    cluster: &str,
    given: &str,
) -> Result<Versioned<ServiceRecord>, ApiError> {
    server
        .db
        .get::<ServiceRecord>(&keys::service(cluster, id_of(given)))
        .await?
        .ok_or_else(not_found)
}

pub async fn update(server: &Server, req: UpdateRequest) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    refuse_unserved(
        &req.capacity_provider_strategy,
        &req.load_balancers,
        &req.service_registries,
    )?;
    let found = find(server, &cluster, &req.service).await?;
    let mut svc = found.value.clone();
    if svc.status != ServiceStatus::Active {
        return Err(not_active());
    }
    if let Some(n) = req.desired_count {
        if svc.scheduling_strategy == Scheduling::Daemon {
            return Err(ApiError::invalid(
                "desiredCount cannot be set on a DAEMON service.",
            ));
        }
        svc.desired_count = desired(Some(n))?;
    }
    let td = match &req.task_definition {
        Some(given) => {
            let td = taskdefs::usable(server, given, svc.launch_type).await?;
            crate::policy::admit(&server.db, &td.definition, Some(&cluster)).await?;
            td
        }
        None => {
            let r = &svc.task_definition;
            match server
                .db
                .get::<TaskDefRecord>(&keys::taskdef(&r.family, r.revision))
                .await?
            {
                Some(v) => v.value,
                None => return Err(ApiError::client("TaskDefinition not found.")),
            }
        }
    };
    if let Some(c) = req.deployment_configuration {
        svc.deployment_configuration = c;
    }
    if let Some(c) = req.placement_constraints {
        svc.placement_constraints = c;
    }
    if let Some(s) = req.placement_strategy {
        svc.placement_strategy = s;
    }
    if req.health_check_grace_period_seconds.is_some() {
        svc.health_check_grace_period_seconds = grace(req.health_check_grace_period_seconds)?;
    }
    if req.propagate_tags.is_some() {
        svc.propagate_tags = propagate(req.propagate_tags)?;
    }
    svc.enable_execute_command = req
        .enable_execute_command
        .unwrap_or(svc.enable_execute_command);
    svc.enable_ecs_managed_tags = req
        .enable_ecs_managed_tags
        .unwrap_or(svc.enable_ecs_managed_tags);
    svc.deployment_configuration
        .check(svc.scheduling_strategy, svc.desired_count)
        .map_err(ApiError::invalid)?;
    check_placement(
        svc.scheduling_strategy,
        &svc.placement_constraints,
        &svc.placement_strategy,
        &td,
    )?;
    let revision = Revision {
        family: td.definition.family.clone(),
        revision: td.revision,
    };
    let network_changed = req
        .network_configuration
        .as_ref()
        .is_some_and(|n| Some(n) != svc.network_configuration.as_ref());
    if req.network_configuration.is_some() {
        svc.network_configuration = req.network_configuration;
    }
    let now = time::now();
    if revision != svc.task_definition || req.force_new_deployment || network_changed {
        for d in &mut svc.deployments {
            d.status = DeploymentStatus::Active;
        }
        svc.deployments.insert(
            0,
            Deployment::new(revision.clone(), svc.desired_count, svc.launch_type, now),
        );
        svc.task_definition = revision;
    } else if let Some(p) = svc.deployments.first_mut() {
        p.desired_count = svc.desired_count;
        p.updated_at = now;
    }
    write_back(server, &found, svc, "updated").await
}

pub async fn delete(server: &Server, req: DeleteRequest) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let found = find(server, &cluster, &req.service).await?;
    let mut svc = found.value.clone();
    if svc.status != ServiceStatus::Active {
        return Ok(json!({"service": view(server, &svc, false).await?}));
    }
    let force = req.force.unwrap_or(false);
    if svc.scheduling_strategy == Scheduling::Replica && svc.desired_count > 0 && !force {
        return Err(ApiError::invalid(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    svc.status = ServiceStatus::Draining;
    svc.desired_count = 0;
    write_back(server, &found, svc, "deleted").await
}

/// Writes a changed service over the version `found` read, and answers
/// with it; a record that changed meanwhile is the client's to retry.
async fn write_back(
    server: &Server,
    found: &Versioned<ServiceRecord>,
    mut svc: ServiceRecord,
    done: &str,
) -> Reply {
    svc.version += 1;
    let key = keys::service(&svc.cluster, &svc.name);
    if !server.db.swap(&key, found.mod_revision, &svc).await? {
        return Err(ApiError::client(format!(
            "The service changed while it was being {done}: try again."
        )));
    }
    tracing::info!(service = %svc.name, cluster = %svc.cluster, "service {done}");
    Ok(json!({"service": view(server, &svc, false).await?}))
}

pub async fn describe(server: &Server, req: DescribeRequest) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    if req.services.is_empty() || req.services.len() > 10 {
        return Err(ApiError::invalid("services must name 1 to 10 services."));
    }
    let with_tags = req.include.iter().any(|i| i == "TAGS");
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for given in &req.services {
        let name = id_of(given);
        match server
            .db
            .get::<ServiceRecord>(&keys::service(&cluster, name))
            .await?
        {
            Some(s) => services.push(view(server, &s.value, with_tags).await?),
            None => failures.push(json!({
                "arn": service_arn(server, &cluster, name),
                "reason": "MISSING",
            })),
        }
    }
    Ok(json!({"services": services, "failures": failures}))
}

pub async fn list(server: &Server, req: ListRequest) -> Reply {
    let cluster = active_cluster(server, req.cluster.as_deref()).await?;
    // ECS answers 10 at a time unless asked for more.
    let page = Page::parse(
        Some(req.max_results.unwrap_or(10)),
        req.next_token.as_deref(),
    )?;
    let launch = req
        .launch_type
        .as_deref()
        .map(|l| launch_type(Some(l)))
        .transpose()?;
    let sched = req
        .scheduling_strategy
        .as_deref()
        .map(|s| scheduling(Some(s)))
        .transpose()?;
    let all = server
        .db
        .list::<ServiceRecord>(&keys::services_of(&cluster))
        .await?;
    let matching: Vec<(String, String)> = all
        .into_iter()
        .filter(|(_, s)| s.status == ServiceStatus::Active)
        .filter(|(_, s)| launch.is_none_or(|l| l == s.launch_type))
        .filter(|(_, s)| sched.is_none_or(|x| x == s.scheduling_strategy))
        .map(|(k, s)| (k, service_arn(server, &cluster, &s.name)))
        .collect();
    let (arns, next) = page.take(matching);
    Ok(crate::page::answer("serviceArns", arns, next))
}

/// RUNNING and PENDING counts by deployment, ECS's way (tasks in those
/// states): from the view, or from the store while the view has not
/// loaded.
async fn counts(server: &Server, svc: &ServiceRecord) -> crate::Result<crate::view::Counts> {
    let group = svc.group();
    if server.view.loaded() {
        return Ok(server.view.counts(&svc.cluster, &group));
    }
    let mut out = crate::view::Counts::new();
    for (_, t) in server
        .db
        .list::<TaskRecord>(&keys::tasks_of(&svc.cluster))
        .await?
    {
        if t.group.as_deref() != Some(group.as_str()) {
            continue;
        }
        crate::view::tally(out.entry(t.started_by.clone()).or_default(), t.last_status);
    }
    Ok(out)
}

/// A service as DescribeServices shows it.
async fn view(server: &Server, svc: &ServiceRecord, with_tags: bool) -> Result<Value, ApiError> {
    let by_deployment = counts(server, svc).await?;
    let (running, pending) = by_deployment
        .values()
        .fold((0, 0), |(r, p), (a, b)| (r + a, p + b));
    let deployments: Vec<Value> = svc
        .deployments
        .iter()
        .map(|d| {
            let (r, p) = by_deployment
                .get(&Some(d.id.clone()))
                .copied()
                .unwrap_or_default();
            json!({
                "id": d.id,
                "status": d.status,
                "taskDefinition": taskdef_arn(server, &d.task_definition),
                "desiredCount": d.desired_count,
                "pendingCount": p,
                "runningCount": r,
                "failedTasks": d.failed_tasks,
                "createdAt": d.created_at,
                "updatedAt": d.updated_at,
                "launchType": d.launch_type.as_str(),
                "rolloutState": d.rollout_state,
                "rolloutStateReason": d.rollout_state_reason,
            })
        })
        .collect();
    let c = &svc.deployment_configuration;
    let mut config = json!({
        "maximumPercent": c.maximum(svc.scheduling_strategy),
        "minimumHealthyPercent": c.minimum(svc.scheduling_strategy),
        "deploymentCircuitBreaker": c.deployment_circuit_breaker.clone().map_or_else(
            || json!({"enable": false, "rollback": false}),
            |b| json!(b),
        ),
    });
    if let Some(d) = c.progress_deadline_seconds {
        config["progressDeadlineSeconds"] = json!(d);
    }
    let mut v = json!({
        "serviceArn": service_arn(server, &svc.cluster, &svc.name),
        "serviceName": svc.name,
        "clusterArn": server.cluster_arn(&svc.cluster),
        "loadBalancers": [],
        "serviceRegistries": [],
        "status": svc.status,
        "desiredCount": svc.desired_count,
        "runningCount": running,
        "pendingCount": pending,
        "launchType": svc.launch_type.as_str(),
        "taskDefinition": taskdef_arn(server, &svc.task_definition),
        "deploymentConfiguration": config,
        "deployments": deployments,
        "events": svc.events,
        "createdAt": svc.created_at,
        "placementConstraints": svc.placement_constraints,
        "placementStrategy": svc.placement_strategy,
        "healthCheckGracePeriodSeconds": svc.health_check_grace_period_seconds,
        "schedulingStrategy": svc.scheduling_strategy,
        "createdBy": svc.created_by,
        "enableECSManagedTags": svc.enable_ecs_managed_tags,
        "propagateTags": svc.propagate_tags.as_deref().unwrap_or("NONE"),
        "enableExecuteCommand": svc.enable_execute_command,
    });
    if let Some(n) = &svc.network_configuration {
        v["networkConfiguration"] = n.clone();
    }
    if with_tags {
        v["tags"] = json!(svc.tags);
    }
    Ok(v)
}
