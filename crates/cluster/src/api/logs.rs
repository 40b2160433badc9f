//! `Estiba_V1.GetTaskLogs`: a task's container logs, which live on its
//! node. The control plane asks the node's agent (its API, behind the
//! secret the agent gave when it joined) and passes the answer on. Not an
//! ECS operation (ECS sends logs to CloudWatch): estiba's CLI calls it, on
//! the same endpoint and with the same signatures.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::tasks::id_of;
use super::{cluster_name, ApiError, Reply, Server};
use crate::keys;
use crate::model::NodeRecord;
use crate::task::TaskRecord;

/// The longest long poll a client may ask for.
const MAX_WAIT: u64 = 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    cluster: Option<String>,
    task: String,
    container: Option<String>,
    next_token: Option<String>,
    wait: Option<u64>,
}

pub async fn get(server: &Server, req: Request) -> Reply {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let id = id_of(&req.task).to_string();
    let Some(task) = server
        .db
        .get::<TaskRecord>(&keys::task(&cluster, &id))
        .await?
    else {
        return Err(ApiError::invalid("The referenced task was not found."));
    };
    let Some(instance) = task.value.instance else {
        return Ok(serde_json::json!({"events": [], "nextToken": req.next_token}));
    };
    let node_key = keys::node(&instance);
    let node = server.db.get::<NodeRecord>(&node_key).await?;
    let Some((address, sealed)) =
        node.and_then(|n| Some((n.value.api_address?, n.value.api_secret?)))
    else {
        return Err(ApiError::new(
            "ServerException",
            500,
            format!("the agent of container instance {instance} serves no logs"),
        ));
    };
    let secret =
        String::from_utf8_lossy(&server.sealer.open_sealed(&node_key, &sealed)?).into_owned();
    let wait = req.wait.unwrap_or(0).min(MAX_WAIT);
    let mut query = vec![("wait", wait.to_string())];
    if let Some(c) = req.container {
        query.push(("container", c));
    }
    if let Some(t) = req.next_token {
        query.push(("after", t));
    }
    let unreachable = |e: String| {
        ApiError::new(
            "ServerException",
            500,
            format!("the agent of container instance {instance} did not answer: {e}"),
        )
    };
    let resp = server
        .http
        .get(format!("http://{address}/v1/tasks/{id}/logs"))
        .query(&query)
        .bearer_auth(secret)
        .timeout(Duration::from_secs(wait + 10))
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| unreachable(e.to_string()))?;
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("refused").to_string();
        return Err(ApiError::invalid(message));
    }
    Ok(body)
}
