//! The control plane (issue 10): the ECS API as AWS serves it, on the
//! state store.
//!
//! - `api/`: the awsJson1.1 endpoint — SigV4 authentication, IAM-style
//!   authorization, the audit log — and one module per family of
//!   operations (clusters, task definitions, tasks, container instances and
//!   attributes, tags, task logs); `api/agent.rs` is the agent API (join,
//!   heartbeat, assignments, reports) and the lost-node watcher;
//! - `placement.rs`: filter the candidates, then choose by strategy;
//! - `model.rs` and `task.rs`: the records the control plane keeps (tasks
//!   and instances shared with the agents, whose messages are `wire.rs`),
//!   and `keys.rs` where in the store each lives; `open.rs` opens the store
//!   `--store` names;
//! - `users.rs`: users, their policies and their access keys, whose secrets
//!   are sealed (`seal.rs`) before they reach the store;
//! - `secrets.rs`: cluster secrets for the containers' `secrets`, sealed
//!   too, handed only to the agent of the node a task runs on;
//! - `audit.rs`: one JSON line per mutating call.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod keys;
pub mod leader;
pub mod migrate;
pub mod model;
pub mod open;
pub mod page;
pub mod placement;
pub mod policy;
pub mod seal;
pub mod secrets;
pub mod service;
pub mod task;
pub mod time;
pub mod users;
pub mod view;
pub mod wire;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error("the state store: {0}")]
    State(#[from] estiba_state::Error),
    #[error("record {key}: {source}")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the sealing key {0:?} is readable by others (it must be mode 0600)")]
    KeyExposed(PathBuf),
    #[error("the sealing key {0:?} is not a 32-byte key")]
    KeyInvalid(PathBuf),
    #[error("a sealed secret does not open: {0}")]
    Unseal(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this replica no longer leads")]
    NotLeader,
    #[error("the control plane is still reading its tasks")]
    Loading,
    #[error("serving on {addr}: {why}")]
    Serve { addr: String, why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

estiba_os::io_context!(Error);
