//! estiba's registry: an OCI distribution v1.1 server with ECR's controls
//! (access policies, immutable tags, lifecycle, garbage collection,
//! signatures), its storage, and the client that pushes and pulls.
#![forbid(unsafe_code)]

pub mod digest;
pub mod error;
pub mod names;
pub mod storage;

pub use error::{Code, Error, Result};
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod ecr;
pub mod gc;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod scan;
pub mod server;
pub mod settings;
pub mod trust;
