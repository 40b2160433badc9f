//! The events this engine journals, in the shapes `docker events` shows.

use estiba_events::{Action, Event, Kind};

use crate::record::ContainerRecord;
use crate::Engine;

/// An event about a container, with the attributes docker gives every
/// container event.
pub(crate) fn container(action: Action, r: &ContainerRecord) -> Event {
    Event::new(Kind::Container, action, &r.id)
        .with("name", &r.name)
        .with("image", &r.image)
}

impl Engine {
    /// Journals `action` on the container.
    pub(crate) fn container_event(&self, action: Action, r: &ContainerRecord) {
        self.events.emit(container(action, r));
    }

    /// Journals the container's exit: `die` with its code, after `oom` if
    /// the kernel's OOM killer ended one of its processes. Called once the
    /// record holds the exit, so a follower that reads it on `die` finds it.
    pub(crate) fn died(&self, r: &ContainerRecord, code: i32, oom: bool) {
        if oom {
            self.container_event(Action::Oom, r);
        }
        self.events
            .emit(container(Action::Die, r).with("exitCode", code.to_string()));
    }

    /// Journals a signal sent to the container (docker's `kill`).
    pub(crate) fn kill_event(&self, r: &ContainerRecord, signal: nix::sys::signal::Signal) {
        self.events
            .emit(container(Action::Kill, r).with("signal", (signal as i32).to_string()));
    }

    /// Journals a network change of the container.
    pub(crate) fn network_event(
        &self,
        action: Action,
        network: &estiba_net::NetworkRecord,
        r: &crate::network::Member,
    ) {
        self.events.emit(
            Event::new(Kind::Network, action, &network.id)
                .with("name", &network.name)
                .with("type", "bridge")
                .with("container", r.id)
                .with("containerName", r.name),
        );
    }
}
