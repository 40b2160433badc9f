//! awsvpc: a task with a network namespace and address of its own, shared
//! by all its containers. ECS's agent builds this from a pause container
//! and an ENI; here it is an engine pod on the node's task network, whose
//! infra holds the namespaces (network, IPC, UTS; pid with `pidMode: task`).
//!
//! Under bridge and host, `pidMode: task` or `ipcMode: task` also get a
//! pod, with no network: its infra holds only the pid or IPC namespace the
//! task's containers join, as ECS's namespace pause container does.

use std::net::Ipv4Addr;

use estiba_cluster::task::TaskRecord;
use estiba_engine::{AsyncEngine, CreateOptions, NetworkMode};

use crate::containers::BRIDGE_NETWORK;
use crate::{Error, Result};

/// The engine's name of a task's pod (its containers are `ecs-<task>-<name>`).
pub fn name(task_id: &str) -> String {
    format!("ecs-{task_id}")
}

/// Creates the task's pod, or finds it again after an agent restart, and
/// returns its address.
/// `redirect` is the metadata endpoint's, for the pod's namespace.
pub async fn ensure(
    engine: &AsyncEngine,
    task: &TaskRecord,
    redirect: Option<estiba_net::redirect::Redirect>,
) -> Result<Ipv4Addr> {
    let pod = name(&task.id);
    let share_pid = task.definition.pid_mode.as_deref() == Some("task");
    run(engine, move |e| {
        let record = match e.find_pod(&pod) {
            Ok(found) if found.running() => found,
            Ok(_) => e.pod_start(&pod)?,
            Err(_) => {
                let network = CreateOptions {
                    network: NetworkMode::Named(BRIDGE_NETWORK.to_string()),
                    redirects: redirect.into_iter().collect(),
                    ..CreateOptions::default()
                };
                e.pod_create(Some(&pod), None, share_pid, network)?
            }
        };
        Ok(e.pod_address(&record))
    })
    .await?
    .ok_or_else(|| Error::Invalid(format!("pod {} has no address", name(&task.id))))
}

/// True when the task's containers share namespaces through a pod.
pub fn needed(task: &TaskRecord) -> bool {
    let d = &task.definition;
    d.network() == estiba_ecs::taskdef::NetworkMode::Awsvpc
        || d.pid_mode.as_deref() == Some("task")
        || d.ipc_mode.as_deref() == Some("task")
}

/// Under bridge or host: the pod that holds the task's shared pid or IPC
/// namespace, made or started again.
pub async fn ensure_namespaces(engine: &AsyncEngine, task: &TaskRecord) -> Result<()> {
    let pod = name(&task.id);
    let share_pid = task.definition.pid_mode.as_deref() == Some("task");
    run(engine, move |e| {
        match e.find_pod(&pod) {
            Ok(found) if found.running() => {}
            Ok(_) => {
                e.pod_start(&pod)?;
            }
            Err(_) => {
                e.pod_create(Some(&pod), None, share_pid, CreateOptions::default())?;
            }
        }
        Ok(())
    })
    .await
}

/// The address of a task's pod, if it has one (for a re-adopted task).
pub async fn address(engine: &AsyncEngine, task_id: &str) -> Option<Ipv4Addr> {
    let pod = name(task_id);
    run(engine, move |e| Ok(e.pod_address(&e.find_pod(&pod)?)))
        .await
        .ok()
        .flatten()
}

/// Stops the pod's infra and gives back its address. Its containers are
/// already stopped, and stay (with their logs) as a stopped task's do.
pub async fn stop(engine: &AsyncEngine, task_id: &str) {
    let pod = name(task_id);
    let stopped = run(engine, move |e| match e.find_pod(&pod) {
        // Never made: the task failed before it had a namespace.
        Err(_) => Ok(()),
        Ok(found) => e
            .pod_stop(&found.id, std::time::Duration::from_secs(1))
            .map(|_| ()),
    })
    .await;
    if let Err(e) = stopped {
        tracing::warn!("stopping the task's pod: {e}");
    }
}

async fn run<T: Send + 'static>(
    engine: &AsyncEngine,
    f: impl FnOnce(&estiba_engine::Engine) -> estiba_engine::Result<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(engine.blocking()))
        .await
        .map_err(|e| Error::Invalid(format!("engine call: {e}")))?
        .map_err(Error::Engine)
}
