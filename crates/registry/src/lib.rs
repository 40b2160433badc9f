//! estiba's registry: an OCI distribution v1.1 server with ECR's controls
//! (access policies, immutable tags, lifecycle, garbage collection,
//! signatures), its storage, and the client that pushes and pulls.
#![forbid(unsafe_code)]

pub mod digest;
pub mod error;
pub mod names;
pub mod storage;

pub use error::{Code, Error, Result};
pub mod auth;
pub mod config;
mod fsutil;
