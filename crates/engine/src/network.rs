//! Containers on networks: the engine's side of `estiba-net`. A container
//! naming a network gets a lease, the network's rules, and a namespace with
//! a veth pair when it starts; `rm` gives all of it back. Leases of
//! containers that no longer exist (a `kill -9` at the wrong moment) are
//! reclaimed by `network prune`, `network rm` and the next attach.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use estiba_net::host::NetHost;
use estiba_net::ipam::Endpoint;
use estiba_net::{attach, NetworkRecord, Networks};
use serde_json::{json, Value};

use crate::record::{ContainerRecord, CreateOptions, NetworkMode};
use crate::{Engine, Error, Result};

/// What gets attached to a network: a container, or a pod (whose
/// containers then share its attachment).
pub(crate) struct Member<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub options: &'a CreateOptions,
}

impl<'a> From<&'a ContainerRecord> for Member<'a> {
    fn from(r: &'a ContainerRecord) -> Self {
        Member {
            id: &r.id,
            name: &r.name,
            options: &r.options,
        }
    }
}

/// What a started container got from its network.
#[derive(Debug, Clone)]
pub struct Attached {
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    /// The network's gateway, where its DNS responder listens.
    pub gateway: Ipv4Addr,
    /// Address and names of everyone on the network, this container too,
    /// for its /etc/hosts.
    pub hosts: Vec<(Ipv4Addr, String)>,
    pub ports: Vec<estiba_net::ports::Published>,
}

impl Engine {
    pub fn networks(&self) -> Result<Networks> {
        let host = if self.host.rootless {
            NetHost::Rootless {
                dir: self.run.join("netns"),
            }
        } else {
            NetHost::Root
        };
        Ok(Networks::open(&self.data, host)?)
    }

    /// True if a lease's owner, a container or a pod, still exists.
    fn container_exists(&self, id: &str) -> bool {
        self.records.load(id).is_ok() || self.pods().iter().any(|p| p.id == id)
    }

    /// Checks, before anything runs, that the network can be used.
    pub(crate) fn check_network(&self, name: &str, ip: Option<Ipv4Addr>) -> Result<()> {
        let net = self.networks()?.get_or_default(name)?;
        if let Some(addr) = ip {
            let subnet = net.subnet()?;
            if !subnet.contains(addr) || addr == net.gateway {
                return Err(Error::Invalid {
                    what: "--ip",
                    value: addr.to_string(),
                    why: format!("not a usable address of network {name} ({subnet})"),
                });
            }
        }
        Ok(())
    }

    /// Attaches a container to its network (a no-op for none and host).
    pub(crate) fn attach_network(
        &self,
        record: &ContainerRecord,
        exposed: &[String],
    ) -> Result<Option<Attached>> {
        self.attach_member(&Member::from(record), exposed)
    }

    /// Gives back a container's namespace, veth pair and lease.
    pub(crate) fn detach_network(&self, record: &ContainerRecord) {
        if record.options.pod.is_some() {
            self.pod_member_leaves(record);
        }
        self.detach_member(&Member::from(record));
    }

    /// Attaches a container or a pod to its network.
    pub(crate) fn attach_member(
        &self,
        record: &Member,
        exposed: &[String],
    ) -> Result<Option<Attached>> {
        let Some(name) = record.options.network.name() else {
            return Ok(None);
        };
        let networks = self.networks()?;
        let net = networks.get_or_default(name)?;
        let wanted = record.options.ip;
        let o = &record.options;
        let policy = egress_policy(o, &net)?;
        let endpoint = endpoint(record, policy.is_open() && !net.internal)?;
        let ip = self.take_lease(&networks, &net, record, wanted, endpoint)?;
        // Nothing half set up: whatever fails from here gives back the
        // lease, namespace, ports and helpers again.
        match self.attach_leased(&networks, &net, record, ip, exposed, &policy) {
            Ok(attached) => Ok(Some(attached)),
            Err(e) => {
                self.detach_member(record);
                Err(e)
            }
        }
    }

    /// The rest of an attach, once the lease is taken: hub and bridge,
    /// namespace and veth pairs, DNS, egress rules, ports.
    fn attach_leased(
        &self,
        networks: &Networks,
        net: &NetworkRecord,
        record: &Member,
        ip: Ipv4Addr,
        exposed: &[String],
        policy: &estiba_net::egress::Policy,
    ) -> Result<Attached> {
        let host = networks.host();
        if let Some(warning) = host.ensure_hub()? {
            tracing::warn!("{warning}");
        }
        if !attach::bridge_exists(host, net) {
            networks.sync_firewall()?;
        }
        let maps = port_maps(record, exposed, net.internal, &net.name)?;
        let netns = attach::attach(host, net, record.id, ip)?;
        self.ensure_dns(networks, net)?;
        // More networks: another interface each.
        let mut own = vec![net.subnet.clone()];
        for extra in &record.options.extra_networks {
            own.push(self.attach_extra(networks, record, extra, policy.is_open())?);
        }
        estiba_net::egress::apply(&netns, policy, &own)?;
        estiba_net::redirect::apply(&netns, &record.options.redirects)?;
        let ports = networks
            .ports()
            .publish(record.id, &maps, ip, &net.bridge)?;
        if host.rootless() && !ports.is_empty() {
            let forwarders = networks.forwarders();
            self.ensure_helper(&forwarders, crate::net_helpers::FORWARD_COMMAND, record.id)?;
        }
        let hosts = hosts_of(&networks.leases(&net.name).holders()?);
        Ok(Attached {
            netns,
            ip,
            gateway: net.gateway,
            hosts,
            ports,
        })
    }

    /// Gives back a container's or a pod's namespace, veth pair and lease.
    pub(crate) fn detach_member(&self, record: &Member) {
        if record.options.network.is_builtin() {
            return;
        }
        let networks = match self.networks() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, id = %record.id, "opening the networks");
                return;
            }
        };
        let warn = |what: &str, result: estiba_net::Result<()>| {
            if let Err(e) = result {
                tracing::warn!(error = %e, id = %record.id, "{what}");
            }
        };
        warn("unpublishing ports", networks.ports().unpublish(record.id));
        warn(
            "stopping the port forwarder",
            networks.forwarders().stop(record.id),
        );
        // The namespace takes every veth pair of the container along.
        warn(
            "detaching from the network",
            attach::detach(networks.host(), record.id),
        );
        // Every lease the container holds, not only those its record names:
        // a crash between a `network connect` and its record update leaves
        // one the record does not know.
        for net in networks.list().unwrap_or_default() {
            let leases = networks.leases(&net.name);
            if leases
                .holders()
                .is_ok_and(|h| h.iter().any(|h| h.owner == record.id))
            {
                let released = leases.release(record.id);
                if released.is_ok() {
                    self.network_event(estiba_events::Action::Disconnect, &net, record);
                }
                warn("releasing the lease", released);
                crate::net_helpers::stop_dns_if_unused(&networks, &net.name);
            }
        }
        crate::net_helpers::remove_hub_if_unused(&networks);
    }

    /// Takes (or finds again) the member's lease on `net`, after reclaiming
    /// the leases of owners that are gone (a `kill -9` at the wrong moment).
    fn take_lease(
        &self,
        networks: &Networks,
        net: &NetworkRecord,
        record: &Member,
        wanted: Option<Ipv4Addr>,
        endpoint: Endpoint,
    ) -> Result<Ipv4Addr> {
        let leases = networks.leases(&net.name);
        leases.retain(|owner| owner == record.id || self.container_exists(owner))?;
        let joined = !leases.holders()?.iter().any(|h| h.owner == record.id);
        let subnet = net.subnet()?;
        let ip = leases.acquire(&net.name, subnet, net.gateway, record.id, wanted, endpoint)?;
        // A lease lasts from joining the network to leaving it, restarts
        // included: that is when docker says connect and disconnect.
        if joined {
            self.network_event(estiba_events::Action::Connect, net, record);
        }
        Ok(ip)
    }

    /// Puts an attached container on one more network; returns its subnet.
    fn attach_extra(
        &self,
        networks: &Networks,
        record: &Member,
        name: &str,
        open: bool,
    ) -> Result<String> {
        let net = networks.get_or_default(name)?;
        let mut endpoint = endpoint(record, open && !net.internal)?;
        let extra = record.options.extra_network_options.get(name);
        endpoint
            .names
            .extend(extra.iter().flat_map(|x| x.aliases.iter().cloned()));
        let wanted = extra.and_then(|x| x.ip);
        let ip = self.take_lease(networks, &net, record, wanted, endpoint)?;
        let host = networks.host();
        if !attach::bridge_exists(host, &net) {
            networks.sync_firewall()?;
        }
        let attached = attach::attach_extra(host, &net, record.id, ip)
            .map_err(Error::from)
            .and_then(|()| self.ensure_dns(networks, &net));
        if let Err(e) = attached {
            let _ = attach::detach_extra(host, &net, record.id);
            if networks.leases(name).release(record.id).is_ok() {
                self.network_event(estiba_events::Action::Disconnect, &net, record);
            }
            return Err(e);
        }
        Ok(net.subnet)
    }

    /// `network connect NETWORK CONTAINER`: one more network, at once if
    /// the container runs, else from its next start.
    pub fn network_connect(
        &self,
        name: &str,
        wanted: &str,
        extra: crate::record::ExtraNetwork,
    ) -> Result<()> {
        for alias in &extra.aliases {
            if !valid_dns_name(alias) {
                return Err(Error::Invalid {
                    what: "--alias",
                    value: alias.clone(),
                    why: "not a valid DNS name (letters, digits, '-' and '.')".into(),
                });
            }
        }
        let mut r = self.find(wanted)?;
        let o = &r.options;
        // A container not started yet and on no network (docker-compose
        // disconnects and connects again to set the aliases) takes this
        // one as its first.
        let created = r.state.status == crate::record::Status::Created;
        if created && o.network == NetworkMode::None && o.pod.is_none() {
            self.check_network(name, extra.ip)?;
            self.records.update(&r.id, |rec| {
                rec.options.network = NetworkMode::Named(name.to_string());
                rec.options.network_aliases = extra.aliases;
                rec.options.ip = extra.ip;
            })?;
            return Ok(());
        }
        if o.network.is_builtin() || o.pod.is_some() {
            return Err(Error::Invalid {
                what: "container",
                value: r.name.clone(),
                why: "it is on network none or host, or in a pod: it cannot join other networks"
                    .into(),
            });
        }
        if o.network.name() == Some(name) || o.extra_networks.iter().any(|n| n == name) {
            return Err(Error::Invalid {
                what: "container",
                value: r.name.clone(),
                why: format!("it is already on network {name}"),
            });
        }
        self.check_network(name, extra.ip)?;
        let networks = self.networks()?;
        let policy = egress_policy(o, &networks.get_or_default(o.network.as_str())?)?;
        r.options.extra_networks.push(name.to_string());
        r.options
            .extra_network_options
            .insert(name.to_string(), extra.clone());
        if r.state.status == crate::record::Status::Running {
            self.attach_extra(&networks, &Member::from(&r), name, policy.is_open())?;
        }
        self.records.update(&r.id, |rec| {
            rec.options.extra_networks.push(name.to_string());
            rec.options
                .extra_network_options
                .insert(name.to_string(), extra);
        })?;
        Ok(())
    }

    /// `network disconnect NETWORK CONTAINER`: off a network it joined
    /// besides its first.
    pub fn network_disconnect(&self, name: &str, wanted: &str) -> Result<()> {
        let r = self.find(wanted)?;
        let created = r.state.status == crate::record::Status::Created;
        if created && r.options.network.name() == Some(name) && r.options.extra_networks.is_empty()
        {
            // Not started: nothing is attached yet, and the container is
            // left on no network until it is connected to one.
            self.records.update(&r.id, |rec| {
                rec.options.network = NetworkMode::None;
                rec.options.network_aliases.clear();
                rec.options.ip = None;
            })?;
            return Ok(());
        }
        if r.options.network.name() == Some(name) {
            return Err(Error::Invalid {
                what: "network",
                value: name.to_string(),
                why: format!(
                    "it is {}'s first network, which holds its default route and published ports: remove and run the container again to change it",
                    r.name
                ),
            });
        }
        if !r.options.extra_networks.iter().any(|n| n == name) {
            return Err(Error::Invalid {
                what: "network",
                value: name.to_string(),
                why: format!("container {} is not on it", r.name),
            });
        }
        let networks = self.networks()?;
        let net = networks.get(name)?;
        attach::detach_extra(networks.host(), &net, &r.id)?;
        let leases = networks.leases(name);
        let held = leases.holders()?.iter().any(|h| h.owner == r.id);
        leases.release(&r.id)?;
        // A container connected while stopped never took a lease.
        if held {
            self.network_event(estiba_events::Action::Disconnect, &net, &Member::from(&r));
        }
        crate::net_helpers::stop_dns_if_unused(&networks, name);
        self.records.update(&r.id, |r| {
            r.options.extra_networks.retain(|n| n != name);
            r.options.extra_network_options.remove(name);
        })?;
        Ok(())
    }

    pub fn network_create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        internal: bool,
        egress: Option<&str>,
        egress_allow: &[String],
    ) -> Result<NetworkRecord> {
        let networks = self.networks()?;
        let policy = estiba_net::egress::Policy::from_flags(egress, egress_allow)?;
        let net = networks.create_with(name, subnet, gateway, internal, policy)?;
        // As root the bridge comes up at once, as docker's does: its route
        // is then on the host, where the next network picked anywhere on
        // this host (another estiba root, an agent beside this one) sees
        // that the subnet is taken. Rootless, the hub comes with the first
        // container.
        if !self.host.rootless {
            attach::ensure_bridge(networks.host(), &net)?;
        }
        networks.sync_firewall()?;
        Ok(net)
    }

    /// `network inspect`: the record and who is on it.
    pub fn network_inspect(&self, name: &str) -> Result<Value> {
        let networks = self.networks()?;
        let net = networks.get(name)?;
        let mut containers = serde_json::Map::new();
        for (ip, owner) in networks.leases(name).all()? {
            let label = self
                .records
                .load(&owner)
                .map(|r| r.name)
                .unwrap_or_default();
            containers.insert(
                owner,
                json!({"Name": label, "IPv4Address": format!("{ip}/{}", net.subnet()?.prefix)}),
            );
        }
        let mut v = serde_json::to_value(&net).map_err(|e| Error::Invalid {
            what: "network",
            value: name.to_string(),
            why: e.to_string(),
        })?;
        v["Containers"] = Value::Object(containers);
        Ok(v)
    }

    pub fn network_remove(&self, name: &str) -> Result<NetworkRecord> {
        let networks = self.networks()?;
        let removed = networks.remove(name, &|owner| self.container_exists(owner))?;
        networks.dns().stop(name)?;
        Ok(removed)
    }

    /// Removes networks nobody uses (the default one too); returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let networks = self.networks()?;
        let mut removed = Vec::new();
        for net in networks.list()? {
            // Leases of containers that are gone, and their namespaces.
            for (_, owner) in networks.leases(&net.name).all()? {
                if !self.container_exists(&owner) {
                    let _ = networks.ports().unpublish(&owner);
                    let _ = networks.forwarders().stop(&owner);
                    let _ = attach::detach(networks.host(), &owner);
                }
            }
            networks
                .leases(&net.name)
                .retain(|owner| self.container_exists(owner))?;
            crate::net_helpers::stop_dns_if_unused(&networks, &net.name);
            match networks.remove(&net.name, &|owner| self.container_exists(owner)) {
                Ok(_) => removed.push(net.name),
                Err(estiba_net::Error::InUse { .. }) => {
                    // Still in use: a responder killed meanwhile comes back.
                    if attach::bridge_exists(networks.host(), &net) {
                        self.ensure_dns(&networks, &net)?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.restart_forwarders(&networks)?;
        crate::net_helpers::remove_hub_if_unused(&networks);
        Ok(removed)
    }
}

/// /etc/hosts lines for everyone holding a lease.
pub(crate) fn hosts_of(holders: &[estiba_net::ipam::Holder]) -> Vec<(Ipv4Addr, String)> {
    holders
        .iter()
        .filter(|h| !h.endpoint.names.is_empty())
        .map(|h| (h.ip, h.endpoint.names.join(" ")))
        .collect()
}

/// A DNS name or alias: labels of letters, digits and '-', joined by '.'.
pub fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The container's egress policy: its flags, else its network's default.
fn egress_policy(o: &CreateOptions, net: &NetworkRecord) -> Result<estiba_net::egress::Policy> {
    Ok(o.egress.clone().unwrap_or_else(|| net.egress.clone()))
}

/// How the container is known on its network.
fn endpoint(record: &Member, forward: bool) -> Result<Endpoint> {
    let o = record.options;
    let mut names = vec![record.name.to_string(), record.id[..12].to_string()];
    names.extend(o.hostname.iter().cloned());
    names.extend(o.network_aliases.iter().cloned());
    names.retain(|n| valid_dns_name(n));
    names.dedup();
    let dns = o.dns.clone();
    Ok(Endpoint {
        names,
        dns,
        forward,
    })
}

/// The container's `-p` mappings, and with `-P` the image's exposed ports.
fn port_maps(
    record: &Member,
    exposed: &[String],
    internal: bool,
    network: &str,
) -> Result<Vec<estiba_net::ports::PortMap>> {
    let mut maps = record.options.publish.clone();
    if record.options.publish_all {
        for e in exposed {
            maps.extend(estiba_net::ports::parse(e)?);
        }
    }
    if internal && !maps.is_empty() {
        return Err(Error::Invalid {
            what: "-p",
            value: maps
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            why: format!("network {network} is internal: it has no way in from the host"),
        });
    }
    Ok(maps)
}

impl Engine {
    /// `port CONTAINER`: the published ports.
    pub fn ports_of(&self, wanted: &str) -> Result<Vec<estiba_net::ports::Published>> {
        let r = self.find(wanted)?;
        Ok(self.networks()?.ports().of(&r.id)?)
    }
}

impl Engine {
    /// `inspect`'s NetworkSettings: address, ports and dropped egress.
    pub(crate) fn network_settings(&self, r: &ContainerRecord) -> Value {
        let Some(name) = r.options.network.name() else {
            return json!({"Networks": {}});
        };
        let Ok(networks) = self.networks() else {
            return json!({"Networks": {}});
        };
        let ip_on = |net: &str| {
            networks
                .leases(net)
                .all()
                .ok()?
                .into_iter()
                .find(|(_, owner)| *owner == r.id)
                .map(|(ip, _)| ip.to_string())
        };
        let mut each = serde_json::Map::new();
        for net in std::iter::once(name).chain(r.options.extra_networks.iter().map(String::as_str))
        {
            each.insert(net.to_string(), json!({"IPAddress": ip_on(net)}));
        }
        json!({
            "Networks": each,
            "IPAddress": ip_on(name),
            "Ports": networks.ports().of(&r.id).unwrap_or_default(),
            "EgressDropped": estiba_net::egress::dropped(&networks.host().ns_path(&r.id)),
            // Said plainly, since servers log and filter by it.
            "ClientAddresses": if networks.host().rootless() {
                "rootless: published ports go through a userspace forwarder; the container sees its network's gateway as the client"
            } else {
                "kept: published ports are kernel NAT (connections from the host's own 127.0.0.1 come from the gateway)"
            },
        })
    }
}
