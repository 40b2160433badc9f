//! A simulated agent, for measuring the scheduler (issue 11; bench only,
//! `estiba agent-sim`, hidden from help): it joins many fake nodes through
//! the agent API, as real agents do, keeps them connected with
//! heartbeats, and acknowledges the tasks placed on them (a RUNNING
//! report each) without running a container. kube-scheduler's
//! scheduler_perf and Nomad's C1M measure with the same device.

use std::sync::Arc;
use std::time::Duration;

use estiba_cluster::task::{Attribute, Resources, Status};
use estiba_cluster::wire::{Heartbeat, RegisterRequest, Report};
use futures_util::stream::{self, StreamExt};

use crate::client::Client;
use crate::Result;

/// What the simulated nodes are.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub servers: Vec<String>,
    pub token: String,
    pub cluster: String,
    pub nodes: usize,
    /// Each node's CPU units and MiB.
    pub cpu: i64,
    pub memory: i64,
    /// Zones the nodes are spread over (`ecs.availability-zone`).
    pub zones: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How often each node heartbeats.
    pub heartbeat: Duration,
    /// Acknowledge tasks (a RUNNING report each), polling every node
    /// round after round.
    pub ack: bool,
}

struct SimNode {
    client: Client,
}

/// Joins the nodes, then heartbeats and acknowledges until stopped.
pub async fn run(opts: SimOptions) -> Result<()> {
    let base = Client::new(opts.servers.clone(), None)?;
    let joined: Vec<Result<SimNode>> = stream::iter(0..opts.nodes)
        .map(|i| join(&base, &opts, i))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let nodes: Vec<SimNode> = joined.into_iter().collect::<Result<_>>()?;
    let nodes = Arc::new(nodes);
    tracing::info!(nodes = nodes.len(), "simulated nodes joined");
    println!("joined {}", nodes.len());
    let beats = tokio::spawn(heartbeats(Arc::clone(&nodes), opts.clone()));
    if opts.ack {
        acknowledge(&nodes, &opts).await;
    }
    let _ = beats.await;
    Ok(())
}

async fn join(base: &Client, opts: &SimOptions, i: usize) -> Result<SimNode> {
    let zone = format!("sim-{}", i % opts.zones.max(1));
    let registered = base
        .register(&RegisterRequest {
            token: opts.token.clone(),
            cluster: opts.cluster.clone(),
            hostname: format!("sim-{i:05}"),
            address: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            resources: Resources {
                cpu: opts.cpu,
                memory: opts.memory,
                ports: vec![],
                ports_udp: vec![],
            },
            attributes: vec![
                Attribute {
                    name: "ecs.os-type".into(),
                    value: Some("linux".into()),
                },
                Attribute {
                    name: "ecs.availability-zone".into(),
                    value: Some(zone),
                },
            ],
            agent_version: crate::node::VERSION.into(),
            warnings: vec!["simulated: runs no containers".into()],
            api: None,
        })
        .await?;
    Ok(SimNode {
        client: base.clone().with_credential(registered.credential),
    })
}

/// Each node's heartbeat, spread evenly over the interval.
async fn heartbeats(nodes: Arc<Vec<SimNode>>, opts: SimOptions) {
    let gap = opts.heartbeat / (nodes.len().max(1) as u32);
    loop {
        for n in nodes.iter() {
            let client = n.client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.heartbeat(&Heartbeat::default()).await {
                    tracing::warn!("simulated heartbeat: {e}");
                }
            });
            tokio::time::sleep(gap).await;
        }
    }
}

/// Round after round: each node's whole set of assignments, and a RUNNING
/// report, through the node's own credential, for each task that is not
/// RUNNING yet.
async fn acknowledge(nodes: &[SimNode], opts: &SimOptions) {
    loop {
        let acked: usize = stream::iter(nodes.iter())
            .map(|n| async move {
                let Ok(a) = n.client.assignments(0).await else {
                    return 0;
                };
                let mut acked = 0;
                for t in a.tasks {
                    if t.last_status >= Status::Running || t.desired_status != Status::Running {
                        continue;
                    }
                    let report = Report {
                        cluster: t.cluster,
                        task: t.id,
                        last_status: Status::Running,
                        containers: Vec::new(),
                        stop_code: None,
                        stopped_reason: None,
                        pull_started_at: None,
                        pull_stopped_at: None,
                        private_ipv4: None,
                    };
                    if n.client.report(&report).await.is_ok() {
                        acked += 1;
                    }
                }
                acked
            })
            .buffer_unordered(opts.concurrency.max(1))
            .fold(0, |sum, n| async move { sum + n })
            .await;
        if acked > 0 {
            tracing::info!(acked, "simulated tasks acknowledged");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
