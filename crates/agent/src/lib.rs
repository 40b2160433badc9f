//! The node agent (`estiba agent`): joins a cluster with a join token,
//! heartbeats, follows the tasks the control plane places on its node,
//! runs them through the engine's library API as ECS's agent runs them,
//! and reports their state.
//!
//! - `client.rs`: the agent API, the only thing the agent talks to;
//! - `node.rs`: what the node offers (CPU, memory, ports, attributes) and
//!   its saved credential;
//! - `containers.rs`: a container definition as an engine `CreateRequest`;
//! - `images.rs`: ECS's image pull behaviours, through the mirrors of a
//!   registries.conf (`registries.rs`);
//! - `metadata.rs`: the task metadata endpoint v4 at 169.254.170.2;
//! - `pod.rs`: awsvpc, a task's own network namespace as an engine pod;
//! - `restart.rs`: a container's `restartPolicy`;
//! - `runner.rs`: one task's life: start in dependency order, watch,
//!   stop in reverse order under each container's stopTimeout;
//! - `agent.rs`: the loop that ties them together, and re-adoption of the
//!   containers of tasks that ran while the agent was down.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod client;
pub mod containers;
pub mod images;
pub mod metadata;
pub mod node;
pub mod pod;
pub mod registries;
pub mod restart;
pub mod runner;
pub mod sim;
pub mod usage;

pub use agent::{run, Options};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error(transparent)]
    Engine(#[from] estiba_engine::Error),
    #[error(transparent)]
    Store(#[from] estiba_store::Error),
    #[error(transparent)]
    Net(#[from] estiba_net::Error),
    #[error(transparent)]
    Registry(#[from] estiba_registry::Error),
    #[error("the control plane at {url}: {why}")]
    ControlPlane { url: String, why: String },
    #[error("the control plane refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

estiba_os::io_context!(Error);
