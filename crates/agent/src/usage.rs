//! What the node's tasks use, sampled for target-tracking scaling: each
//! running task container's CPU (over a one-second window, from its
//! cgroup) and memory, summed per task. The sampler keeps the latest
//! sample; the next heartbeat carries it to the control plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use estiba_cluster::wire::TaskUsage;
use estiba_engine::record::Status;
use estiba_engine::AsyncEngine;

/// The latest sample, taken by the heartbeat that carries it.
pub type Latest = Arc<Mutex<Option<Vec<TaskUsage>>>>;

/// How long each CPU measurement lasts.
const WINDOW: Duration = Duration::from_secs(1);

/// `ecs-<task>-<container>` → the task id (32 hex digits).
fn task_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("ecs-")?;
    let id = rest.get(..32)?;
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && rest[32..].starts_with('-')).then_some(id)
}

/// One sample of every running task container, summed per task.
pub async fn sample(engine: &AsyncEngine, cluster: &str) -> Vec<TaskUsage> {
    let Ok(records) = engine.list().await else {
        return Vec::new();
    };
    let running: Vec<(String, String)> = records
        .into_iter()
        .filter(|r| r.state.status == Status::Running)
        .filter_map(|r| task_of(&r.name).map(|t| (t.to_string(), r.id.clone())))
        .collect();
    // All containers measured over the same second, side by side.
    let measured = running.iter().map(|(task, id)| {
        let engine = engine.clone();
        async move { (task.clone(), engine.stats(id, WINDOW).await) }
    });
    let mut per: BTreeMap<String, TaskUsage> = BTreeMap::new();
    for (task, usage) in futures_util::future::join_all(measured).await {
        let Ok(u) = usage else { continue };
        let t = per.entry(task.clone()).or_insert_with(|| TaskUsage {
            cluster: cluster.to_string(),
            task,
            cpu: 0.0,
            memory: 0.0,
        });
        t.cpu += u.cpu_percent.unwrap_or(0.0) / 100.0 * 1024.0;
        t.memory += u.memory.unwrap_or(0) as f64 / (1024.0 * 1024.0);
    }
    per.into_values().collect()
}

/// Samples every `every` for the life of the agent.
pub async fn sampler(engine: AsyncEngine, cluster: String, every: Duration, latest: Latest) {
    loop {
        let s = sample(&engine, &cluster).await;
        if !s.is_empty() {
            *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
        }
        tokio::time::sleep(every.saturating_sub(WINDOW)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_containers_are_told_by_their_names() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(task_of(&format!("ecs-{id}-web")), Some(id));
        assert_eq!(task_of("ecs-short-web"), None);
        assert_eq!(task_of("web"), None);
        assert_eq!(task_of(&format!("ecs-{id}")), None);
    }
}
