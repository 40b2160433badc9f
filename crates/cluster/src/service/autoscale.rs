//! Target-tracking scaling of services' desired counts, as Application
//! Auto Scaling does it, on the agents' usage samples.
//!
//! A scalable target bounds a service's desired count (min, max); each of
//! its target-tracking policies names a metric (average CPU or memory use
//! of the service's running tasks, in percent of what they reserve) and a
//! target value. Every `--autoscale-every`, while this replica leads:
//! - each policy asks for ⌈count × metric / target⌉ tasks, within the
//!   bounds;
//! - out if any policy asks for more, once its scale-out cooldown has
//!   passed since the last scale-out; in only if every policy asks for
//!   less (and none disables scale-in), once the scale-in cooldown has
//!   passed since the last scaling of either kind;
//! - the service's desired count is written (fenced, as the scheduler's
//!   writes are) and the activity recorded.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ServiceRecord, ServiceStatus};
use crate::api::Server;
use crate::leader::{fenced, still_leading, Fence};
use crate::model::{encode, unchanged, Versioned};
use crate::task::Status;
use crate::wire::NodeUsage;
use crate::{keys, time, Result};

/// The one dimension served: a service's desired count.
pub const DIMENSION: &str = "ecs:service:DesiredCount";
/// Samples older than this are not believed.
const FRESH: f64 = 60.0;
/// Activities kept per target.
const KEEP_ACTIVITIES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    #[serde(rename = "ECSServiceAverageCPUUtilization")]
    Cpu,
    #[serde(rename = "ECSServiceAverageMemoryUtilization")]
    Memory,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "ECSServiceAverageCPUUtilization",
            Metric::Memory => "ECSServiceAverageMemoryUtilization",
        }
    }
}

/// A scalable target: `service/<cluster>/<name>` within bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRecord {
    pub resource_id: String,
    pub min: u32,
    pub max: u32,
    pub created_at: f64,
    #[serde(default)]
    pub last_scale_out: f64,
    #[serde(default)]
    pub last_scale_in: f64,
    #[serde(default)]
    pub activities: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<serde_json::Value>,
}

/// A target-tracking policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRecord {
    pub name: String,
    pub id: String,
    pub resource_id: String,
    pub metric: Metric,
    pub target_value: f64,
    /// Seconds.
    pub scale_out_cooldown: u32,
    pub scale_in_cooldown: u32,
    #[serde(default)]
    pub disable_scale_in: bool,
    pub created_at: f64,
}

/// What a scaling did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    pub id: String,
    pub resource_id: String,
    pub description: String,
    pub cause: String,
    pub start_time: f64,
    pub end_time: f64,
    pub status_code: String,
    pub status_message: String,
}

/// `service/<cluster>/<name>` → (cluster, name).
pub fn service_of(resource: &str) -> Option<(&str, &str)> {
    let rest = resource.strip_prefix("service/")?;
    let (cluster, name) = rest.split_once('/')?;
    (!cluster.is_empty() && !name.is_empty() && !name.contains('/')).then_some((cluster, name))
}

/// A service's running tasks' use of one metric, in percent of what they
/// reserve; None without a fresh sample.
pub fn utilisation(metric: Metric, tasks: &[(f64, f64, f64, f64)]) -> Option<f64> {
    // (cpu used, cpu reserved, memory used, memory reserved)
    if tasks.is_empty() {
        return None;
    }
    let (used, reserved) = tasks.iter().fold((0.0, 0.0), |(u, r), t| match metric {
        Metric::Cpu => (u + t.0, r + t.1),
        Metric::Memory => (u + t.2, r + t.3),
    });
    (reserved > 0.0).then(|| used / reserved * 100.0)
}

/// The decision for one target: the new desired count and why, or None.
pub fn decide(
    target: &TargetRecord,
    policies: &[(PolicyRecord, Option<f64>)],
    current: u32,
    now: f64,
) -> Option<(u32, String)> {
    if current < target.min {
        return Some((
            target.min,
            format!(
                "the desired count {current} is below the minimum {}",
                target.min
            ),
        ));
    }
    if current > target.max {
        return Some((
            target.max,
            format!(
                "the desired count {current} is above the maximum {}",
                target.max
            ),
        ));
    }
    let mut wants: Vec<(u32, &PolicyRecord, f64)> = Vec::new();
    for (p, value) in policies {
        let Some(v) = value else { continue };
        let raw = (f64::from(current.max(1)) * v / p.target_value).ceil();
        let want = (raw.max(0.0) as u32).clamp(target.min, target.max);
        wants.push((want, p, *v));
    }
    if wants.is_empty() {
        return None;
    }
    let (most, by, value) = wants.iter().max_by_key(|w| w.0).copied()?;
    if most > current {
        let cooled = now - target.last_scale_out >= f64::from(by.scale_out_cooldown);
        return cooled.then(|| {
            (
                most,
                format!(
                    "policy {}: {} at {value:.1}, above its target of {}",
                    by.name,
                    by.metric.name(),
                    by.target_value
                ),
            )
        });
    }
    let all_less = wants.len() == policies.len()
        && wants.iter().all(|w| w.0 < current && !w.1.disable_scale_in);
    if all_less {
        let wait = wants
            .iter()
            .map(|w| w.1.scale_in_cooldown)
            .max()
            .unwrap_or(0);
        let last = target.last_scale_in.max(target.last_scale_out);
        if now - last >= f64::from(wait) {
            return Some((
                most,
                format!(
                    "policy {}: {} at {value:.1}, below its target of {}",
                    by.name,
                    by.metric.name(),
                    by.target_value
                ),
            ));
        }
    }
    None
}

/// Scales services while this replica leads.
pub async fn run(server: Arc<Server>, fence: Fence) {
    loop {
        match evaluate_all(&server, fence).await {
            Err(crate::Error::NotLeader) => return,
            Err(e) => tracing::warn!("autoscaling: {e}"),
            Ok(()) => {}
        }
        tokio::time::sleep(server.settings.autoscale_every).await;
    }
}

/// Each task's last usage, from nodes' samples that are fresh and about
/// the node's own tasks.
async fn usage_by_task(server: &Server) -> Result<HashMap<String, (f64, f64)>> {
    let now = time::now();
    let mut out = HashMap::new();
    for (key, sample) in server.db.list::<NodeUsage>(keys::USAGE).await? {
        if now - sample.at > FRESH {
            continue;
        }
        let node = key.rsplit('/').next().unwrap_or_default().to_string();
        for t in sample.tasks {
            out.insert(
                format!("{node}/{}/{}", t.cluster, t.task),
                (t.cpu, t.memory),
            );
        }
    }
    Ok(out)
}

async fn evaluate_all(server: &Server, fence: Fence) -> Result<()> {
    let targets = server
        .db
        .list_versioned::<TargetRecord>(keys::SCALING_TARGETS)
        .await?;
    if targets.is_empty() {
        return Ok(());
    }
    let usage = usage_by_task(server).await?;
    for (key, target) in targets {
        evaluate(server, fence, &key, target, &usage).await?;
    }
    Ok(())
}

async fn evaluate(
    server: &Server,
    fence: Fence,
    target_key: &str,
    target: Versioned<TargetRecord>,
    usage: &HashMap<String, (f64, f64)>,
) -> Result<()> {
    let t = &target.value;
    let Some((cluster, name)) = service_of(&t.resource_id) else {
        return Ok(());
    };
    let service_key = keys::service(cluster, name);
    let Some(svc) = server.db.get::<ServiceRecord>(&service_key).await? else {
        return Ok(());
    };
    if svc.value.status != ServiceStatus::Active {
        return Ok(());
    }
    let tasks = server.view.group(cluster, &svc.value.group());
    let mut samples: Vec<(f64, f64, f64, f64)> = Vec::new();
    for task in tasks.iter().filter(|t| t.last_status == Status::Running) {
        let node = task.instance.as_deref().unwrap_or_default();
        if let Some((cpu, memory)) = usage.get(&format!("{node}/{cluster}/{}", task.id)) {
            // A task that reserves no CPU is measured against one core.
            let cpu_reserved = if task.reserved_cpu > 0 {
                task.reserved_cpu as f64
            } else {
                1024.0
            };
            samples.push((*cpu, cpu_reserved, *memory, task.reserved_memory as f64));
        }
    }
    let policies: Vec<(PolicyRecord, Option<f64>)> = server
        .db
        .list::<PolicyRecord>(&keys::scaling_policies_of(&t.resource_id))
        .await?
        .into_iter()
        .map(|(_, p)| {
            let v = utilisation(p.metric, &samples);
            (p, v)
        })
        .collect();
    let now = time::now();
    let current = svc.value.desired_count;
    let Some((desired, cause)) = decide(t, &policies, current, now) else {
        return Ok(());
    };
    let mut s = svc.value.clone();
    s.desired_count = desired;
    if let Some(p) = s.deployments.first_mut() {
        p.desired_count = desired;
        p.updated_at = now;
    }
    s.version += 1;
    let mut next = t.clone();
    if desired > current {
        next.last_scale_out = now;
    } else {
        next.last_scale_in = now;
    }
    next.activities += 1;
    let activity = ActivityRecord {
        id: crate::model::uuid_like(),
        resource_id: t.resource_id.clone(),
        description: format!("Setting desired count to {desired}."),
        cause: format!("monitor alarm {cause}"),
        start_time: now,
        end_time: now,
        status_code: "Successful".into(),
        status_message: format!(
            "Successfully set desired count to {desired}. Change successfully fulfilled by ecs."
        ),
    };
    let activity_key = format!(
        "{}{:012}",
        keys::scaling_activities_of(&t.resource_id),
        next.activities
    );
    let compares = fenced(
        vec![
            unchanged(&service_key, svc.mod_revision),
            unchanged(target_key, target.mod_revision),
        ],
        Some(fence),
    );
    let mut ops = vec![
        estiba_state::Op::put(service_key.as_str(), encode(&s)),
        estiba_state::Op::put(target_key, encode(&next)),
        estiba_state::Op::put(activity_key, encode(&activity)),
    ];
    if next.activities > KEEP_ACTIVITIES as u64 {
        let old = format!(
            "{}{:012}",
            keys::scaling_activities_of(&t.resource_id),
            next.activities - KEEP_ACTIVITIES as u64
        );
        ops.push(estiba_state::Op::delete(old));
    }
    let txn = estiba_state::Txn::when(compares).and_then(ops);
    if server.db.commit(txn).await? {
        tracing::info!(service = %name, %cluster, from = current, to = desired, "scaled: {cause}");
    } else {
        still_leading(server, Some(fence)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(min: u32, max: u32) -> TargetRecord {
        TargetRecord {
            resource_id: "service/default/web".into(),
            min,
            max,
            created_at: 0.0,
            last_scale_out: 0.0,
            last_scale_in: 0.0,
            activities: 0,
            suspended: None,
        }
    }

    fn cpu_policy(target: f64) -> PolicyRecord {
        PolicyRecord {
            name: "cpu".into(),
            id: "p".into(),
            resource_id: "service/default/web".into(),
            metric: Metric::Cpu,
            target_value: target,
            scale_out_cooldown: 60,
            scale_in_cooldown: 300,
            disable_scale_in: false,
            created_at: 0.0,
        }
    }

    #[test]
    fn target_tracking_scales_out_in_proportion_and_in_after_its_cooldown() {
        let t = target(2, 10);
        // 2 tasks at 200% of a 50% target: 8 wanted.
        let d = decide(&t, &[(cpu_policy(50.0), Some(200.0))], 2, 100.0).unwrap();
        assert_eq!(d.0, 8);
        // Capped at max.
        assert_eq!(
            decide(&t, &[(cpu_policy(50.0), Some(900.0))], 2, 100.0)
                .unwrap()
                .0,
            10
        );
        // Within the scale-out cooldown: nothing.
        let mut recent = t.clone();
        recent.last_scale_out = 90.0;
        assert!(decide(&recent, &[(cpu_policy(50.0), Some(200.0))], 2, 100.0).is_none());
        // Idle: in to the minimum, but only 300 s after the last scaling.
        assert!(decide(&recent, &[(cpu_policy(50.0), Some(1.0))], 8, 200.0).is_none());
        assert_eq!(
            decide(&recent, &[(cpu_policy(50.0), Some(1.0))], 8, 400.0)
                .unwrap()
                .0,
            2
        );
        // No sample: no decision; out of bounds: back within them.
        assert!(decide(&t, &[(cpu_policy(50.0), None)], 4, 100.0).is_none());
        assert_eq!(decide(&t, &[], 1, 0.0).unwrap().0, 2);
    }

    #[test]
    fn utilisation_is_use_over_reservation() {
        let tasks = [(512.0, 256.0, 64.0, 128.0), (0.0, 256.0, 64.0, 128.0)];
        assert_eq!(utilisation(Metric::Cpu, &tasks), Some(100.0));
        assert_eq!(utilisation(Metric::Memory, &tasks), Some(50.0));
        assert_eq!(utilisation(Metric::Cpu, &[]), None);
        assert_eq!(service_of("service/default/web"), Some(("default", "web")));
        assert_eq!(service_of("service/web"), None);
    }
}
