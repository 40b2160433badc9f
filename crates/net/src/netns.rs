//! Entering a network namespace by path, for processes that keep sockets
//! in two namespaces (the DNS responder, the rootless port forwarder): a
//! socket stays in the namespace it was made in.

use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::{IoContext, Result};

/// Moves the calling thread into the network namespace at `path`. Threads
/// started afterwards inherit it.
pub fn enter(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).ctx("opening", path)?;
    move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(LinkNameSpaceType::Network),
    )
    .map_err(std::io::Error::from)
    .ctx("entering the network namespace", path)
}
