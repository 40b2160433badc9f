//! The processes networks run beside containers: each network's DNS
//! responder (`estiba internal-dns NAME`) and each rootless container's port
//! forwarder (`estiba internal-forward ID`). They are started through a
//! short-lived intermediate, so nobody has to reap them; each records its
//! own pid and start time before it says it is ready; each exits by itself
//! once what it serves is gone, and `network prune` starts again the ones a
//! `kill -9` took while still needed.

use std::io::BufRead;
use std::process::{Command, Stdio};

use estiba_net::pidfile::Helpers;
use estiba_net::{dns, NetworkRecord, Networks};

use crate::error::IoContext;
use crate::{Engine, Error, Result};

/// The hidden command that starts a network's DNS responder.
pub const DNS_COMMAND: &str = "internal-dns";
/// The hidden command that starts a rootless container's port forwarder.
pub const FORWARD_COMMAND: &str = "internal-forward";

/// `internal-dns NAME` and `internal-forward ID`: starts the helper
/// (`--serve`) with this process's stdout and stderr, and returns at once.
pub fn helper_daemonize(command: &str, key: &str) -> Result<()> {
    let exe = std::env::current_exe().ctx("finding", "/proc/self/exe")?;
    Command::new(exe)
        .args([command, key, "--serve"])
        .env_remove(estiba_runtime::userns::JOIN_ENV)
        .stdin(Stdio::null())
        .spawn()
        .ctx("starting", command)?;
    Ok(())
}

/// Rootless: the hub and slirp4netns go once no network has a container.
pub(crate) fn remove_hub_if_unused(networks: &Networks) {
    if !networks.host().rootless() {
        return;
    }
    let unused = || {
        networks.list().is_ok_and(|list| {
            list.iter().all(|n| {
                networks
                    .leases(&n.name)
                    .holders()
                    .is_ok_and(|h| h.is_empty())
            })
        })
    };
    if unused() {
        if let Err(e) = networks.host().remove_hub(unused) {
            tracing::warn!(error = %e, "removing the rootless network hub");
        }
    }
}

pub(crate) fn stop_dns_if_unused(networks: &Networks, name: &str) {
    if networks.leases(name).holders().is_ok_and(|h| h.is_empty()) {
        if let Err(e) = networks.dns().stop(name) {
            tracing::warn!(error = %e, network = name, "stopping the DNS responder");
        }
    }
}

impl Engine {
    /// Starts a helper process (a network's DNS responder, a container's
    /// port forwarder) unless it runs. Under the helper's lock, so two
    /// attaches never start two.
    pub(crate) fn ensure_helper(&self, helpers: &Helpers, command: &str, key: &str) -> Result<()> {
        let _lock = helpers.lock(key)?;
        if helpers.running(key).is_some() {
            return Ok(());
        }
        let log_path = helpers.log(key);
        let log = std::fs::File::create(&log_path).ctx("creating", &log_path)?;
        // The store by environment: it reaches the helper its intermediate
        // starts, too (this process may have been given --root instead).
        let mut child = Command::new(&self.exe)
            .args([command, key])
            .env("ESTIBA_ROOT", &self.data)
            .env("ESTIBA_RUNROOT", &self.run)
            .env_remove(estiba_runtime::userns::JOIN_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .ctx("starting", command)?;
        let stdout = child.stdout.take();
        // The first process only starts the helper and exits, so no one is
        // left to reap it; the helper says its pid once it listens.
        let _ = child.wait();
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        // The helper recorded itself before it said its pid: had this
        // process been killed meanwhile, `rm` would still find it.
        if line.trim().parse::<i32>().is_err() {
            return Err(Error::Invalid {
                what: "network helper",
                value: format!("{command} {key}"),
                why: format!(
                    "it did not start: {}",
                    std::fs::read_to_string(&log_path)
                        .unwrap_or_default()
                        .trim()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn ensure_dns(&self, networks: &Networks, net: &NetworkRecord) -> Result<()> {
        self.ensure_helper(&networks.dns(), DNS_COMMAND, &net.name)
    }

    /// `internal-dns NAME --serve`: the responder itself. It exits once the
    /// network has no lease left or is gone.
    pub fn dns_serve(&self, name: &str) -> Result<()> {
        let _ = rustix::process::setsid();
        let networks = self.networks()?;
        let net = networks.get(name)?;
        let sockets = dns::Sockets::bind(net.gateway, networks.host().hub().as_deref())?;
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let registry = networks.dns();
        // Our starter holds the registry's lock while it waits for this.
        registry.record(name, me)?;
        println!("{me}");
        let leases = networks.leases(name);
        let unused = || networks.get(name).is_err() || leases.holders().is_ok_and(|h| h.is_empty());
        let others = || {
            let list = networks.list().unwrap_or_default();
            list.iter()
                .filter(|n| n.name != name)
                .map(|n| networks.leases(&n.name))
                .collect()
        };
        dns::serve(sockets, networks.leases(name), others, || {
            if !unused() {
                return false;
            }
            let Ok(_lock) = registry.lock(name) else {
                return false;
            };
            // Again under the lock: an attach may have just taken a lease.
            if !unused() {
                return false;
            }
            registry.forget(name, Some(me));
            true
        })?;
        Ok(())
    }

    /// `internal-forward ID --serve`: a rootless container's published
    /// ports. It exits once the container's ports are unpublished.
    pub fn forward_serve(&self, id: &str) -> Result<()> {
        let _ = rustix::process::setsid();
        let networks = self.networks()?;
        let ports = networks.ports();
        let published = ports.of(id)?;
        let Some(hub) = networks.host().hub() else {
            return Err(Error::Invalid {
                what: "port forwarder",
                value: id.to_string(),
                why: "only rootless containers need one".into(),
            });
        };
        let helpers = networks.forwarders();
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let ready = || -> estiba_net::Result<()> {
            helpers.record(id, me)?;
            println!("{me}");
            Ok(())
        };
        estiba_net::forward::serve(&published, Some(&hub), ready, || {
            ports.of(id).map_or(true, |p| p.is_empty())
        })?;
        helpers.forget(id, Some(me));
        Ok(())
    }

    /// Rootless: a running container whose port forwarder was killed gets
    /// it back.
    pub(crate) fn restart_forwarders(&self, networks: &Networks) -> Result<()> {
        if !networks.host().rootless() {
            return Ok(());
        }
        for r in self.list()? {
            let running = r.state.status == crate::record::Status::Running;
            if running && !networks.ports().of(&r.id)?.is_empty() {
                self.ensure_helper(&networks.forwarders(), FORWARD_COMMAND, &r.id)?;
            }
        }
        Ok(())
    }
}
