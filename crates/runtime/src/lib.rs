//! The container runtime: from a resolved run configuration to a process
//! isolated by the kernel.
//!
//! - [`spec`] builds the OCI runtime spec with secure defaults;
//! - [`seccomp`] resolves Docker's seccomp profile for this host;
//! - [`rootfs`] mounts the container's root filesystem and looks things up in it;
//! - [`userns`] puts a rootless estiba inside its own user namespace;
//! - [`backend`] runs a bundle through an OCI runtime binary (runc contract);
//! - [`host`] says what this machine and user can do.
//!
//! This crate does not know about images or names: callers hand it layer
//! directories and a [`spec::RunConfig`].
#![forbid(unsafe_code)]

pub mod backend;
mod error;
pub mod host;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod userns;

pub use backend::{ContainerIo, Runtime, State};
pub use error::Error;
pub use host::Host;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes `data` to `path` through a temp file and a rename.
pub(crate) fn write_file_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use error::IoContext;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).ctx("writing", &tmp)?;
    std::fs::rename(&tmp, path).ctx("writing", path)
}
