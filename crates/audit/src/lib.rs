//! The security audit: what estiba checks, and how it reports.
//!
//! - [`catalog`] is the rule catalog, kept as data: estiba's own ids and
//!   words, with cross-references to the CIS Docker Benchmark 1.6.0 (ids
//!   only: CIS's licence forbids its prose), the OWASP Docker Top 10,
//!   Dockle, Trivy and Hadolint.
//! - [`containerfile`], [`image`] and [`taskdef`] are the checks, written
//!   as functions over typed facts, as Dockle writes its assessors. Each
//!   finding names its rule and where it is: a line, a JSON pointer, or a
//!   path in the image.
//! - [`report`] renders findings as a table, JSON or SARIF 2.1.0, scores
//!   them and decides the exit code; [`ignore`] reads `.estibaignore`.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod cluster;
pub mod container;
pub mod containerfile;
mod error;
pub mod finding;
pub mod host;
pub mod ignore;
pub mod image;
mod jsonpos;
pub mod policy;
pub mod registry;
pub mod report;
mod secrets;
mod shell;
pub mod taskdef;

pub use catalog::{Rule, Severity, TargetKind, RULES};
pub use error::Error;
pub use finding::{Finding, Location, Target};

pub type Result<T, E = Error> = std::result::Result<T, E>;
