//! The event journal: what happened to containers, images, networks and
//! volumes, as `docker events` and `podman events` report it.
//!
//! There is no daemon to broadcast events, so each is appended by whoever
//! causes it (the CLI, a container's monitor, a health check) to one
//! journal per store, `<data>/events/events.log`: JSON lines, appended
//! under a lock, rotated to `events.log.1` past a size cap. Any process
//! can follow it (inotify, with a timed poll as the fallback), root and
//! rootless alike, and the agent and the Docker API's `/events` read it.
//!
//! A writer killed mid-line leaves a torn line; the next writer starts on a
//! fresh line, and readers skip what does not parse, so the journal always
//! reads.
#![forbid(unsafe_code)]

mod event;
mod filter;
mod journal;
pub mod time;

pub use event::{Action, Actor, Event, Kind};
pub use filter::Filter;
pub use journal::{Follower, Journal, Start, DEFAULT_CAP};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation on the journal (with its path).
    #[error(transparent)]
    Os(#[from] estiba_os::Error),
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
