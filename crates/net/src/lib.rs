//! Container networks: each network is a Linux bridge with an IPv4 subnet;
//! a container gets its own network namespace, a veth pair onto the bridge,
//! and an address from the network's IPAM. Networks are kept apart by
//! nftables rules in estiba's own table.
//!
//! Each network has a DNS responder of its own (`dns`), published ports
//! are kernel NAT (`ports`), and egress is filtered inside the container's
//! namespace (`egress`), as are redirects of fixed addresses
//! (`redirect`, for ECS's metadata endpoint).
#![forbid(unsafe_code)]

pub mod attach;
pub mod dns;
pub mod egress;
pub mod firewall;
pub mod forward;
pub mod host;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod pidfile;
pub mod ports;
pub mod redirect;
mod state;

pub use network::{NetworkRecord, Networks};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("network {name} is in use by {users}")]
    InUse { name: String, users: String },
    #[error("network {name}: no free address left in {subnet}")]
    Exhausted { name: String, subnet: String },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    /// The kernel refused a netlink request; `source` carries its errno.
    #[error("netlink: {what}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

estiba_os::io_context!(Error);

/// Runs `program args…`; its stderr becomes the error.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
