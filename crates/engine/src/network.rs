//! Containers on networks: the engine's side of `estiba-net`. A container
//! naming a network gets a lease, the network's rules, and a namespace with
//! a veth pair when it starts; `rm` gives all of it back. Leases of
//! containers that no longer exist (a `kill -9` at the wrong moment) are
//! reclaimed by `network prune`, `network rm` and the next attach.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use estiba_net::{attach, NetworkRecord, Networks};
use serde_json::{json, Value};

use crate::record::ContainerRecord;
use crate::{Engine, Error, Result};

/// What a started container got from its network.
#[derive(Debug, Clone)]
pub struct Attached {
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    /// Address and names of everyone on the network, this container too,
    /// for its /etc/hosts.
    pub hosts: Vec<(Ipv4Addr, String)>,
    pub ports: Vec<estiba_net::ports::Published>,
}

impl Engine {
    pub fn networks(&self) -> Result<Networks> {
        Ok(Networks::open(&self.data)?)
    }

    fn container_exists(&self, id: &str) -> bool {
        self.records.load(id).is_ok()
    }

    /// Checks, before anything runs, that the network can be used.
    pub(crate) fn check_network(&self, name: &str, ip: Option<&str>) -> Result<()> {
        if self.host.rootless {
            return Err(Error::Invalid {
                what: "network",
                value: name.to_string(),
                why: "networks other than none and host need root for now (rootless networking is not built yet)".into(),
            });
        }
        let net = self.networks()?.get_or_default(name)?;
        if let Some(ip) = ip {
            let addr: Ipv4Addr = ip.parse().map_err(|_| Error::Invalid {
                what: "--ip",
                value: ip.to_string(),
                why: "not an IPv4 address".into(),
            })?;
            let subnet = net.subnet()?;
            if !subnet.contains(addr) || addr == net.gateway {
                return Err(Error::Invalid {
                    what: "--ip",
                    value: ip.to_string(),
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
        let name = record.options.network.as_str();
        if matches!(name, "none" | "host" | "") {
            return Ok(None);
        }
        let networks = self.networks()?;
        let net = networks.get_or_default(name)?;
        let leases = networks.leases(name);
        leases.retain(|owner| owner == record.id || self.container_exists(owner))?;
        let wanted = record
            .options
            .ip
            .as_deref()
            .map(|ip| {
                ip.parse::<Ipv4Addr>().map_err(|_| Error::Invalid {
                    what: "--ip",
                    value: ip.to_string(),
                    why: "not an IPv4 address".into(),
                })
            })
            .transpose()?;
        let ip = leases.acquire(name, net.subnet()?, net.gateway, &record.id, wanted)?;
        if !attach::bridge_exists(&net) {
            networks.sync_firewall()?;
        }
        let maps = port_maps(record, exposed, net.internal, name)?;
        let netns = attach::attach(&net, &record.id, ip)?;
        let o = &record.options;
        let policy = if o.egress.is_some() || !o.egress_allow.is_empty() {
            estiba_net::egress::Policy::from_flags(o.egress.as_deref(), &o.egress_allow)?
        } else {
            net.egress.clone()
        };
        if let Err(e) =
            estiba_net::egress::apply(&attach::netns_name(&record.id), &policy, &net.subnet)
        {
            self.detach_network(record);
            return Err(e.into());
        }
        let ports = match networks.ports().publish(&record.id, &maps, ip, &net.bridge) {
            Ok(p) => p,
            Err(e) => {
                // Nothing half set up: the namespace and lease go again.
                self.detach_network(record);
                return Err(e.into());
            }
        };
        let mut hosts = Vec::new();
        for (addr, owner) in leases.all()? {
            if let Ok(r) = self.records.load(&owner) {
                let mut names = r.name.clone();
                if let Some(h) = &r.options.hostname {
                    names.push(' ');
                    names.push_str(h);
                }
                names.push(' ');
                names.push_str(&r.id[..12]);
                hosts.push((addr, names));
            }
        }
        Ok(Some(Attached {
            netns,
            ip,
            hosts,
            ports,
        }))
    }

    /// Gives back a container's namespace, veth pair and lease.
    pub(crate) fn detach_network(&self, record: &ContainerRecord) {
        let name = record.options.network.as_str();
        if matches!(name, "none" | "host" | "") {
            return;
        }
        if let Ok(networks) = self.networks() {
            if let Err(e) = networks.ports().unpublish(&record.id) {
                tracing::warn!(error = %e, id = %record.id, "unpublishing ports");
            }
        }
        if let Err(e) = attach::detach(&record.id) {
            tracing::warn!(error = %e, id = %record.id, "detaching from the network");
        }
        if let Ok(networks) = self.networks() {
            if let Err(e) = networks.leases(name).release(&record.id) {
                tracing::warn!(error = %e, id = %record.id, "releasing the lease");
            }
        }
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
        if self.host.rootless {
            return Err(Error::Invalid {
                what: "network",
                value: name.to_string(),
                why: "creating networks needs root for now".into(),
            });
        }
        let networks = self.networks()?;
        let policy = estiba_net::egress::Policy::from_flags(egress, egress_allow)?;
        let net = networks.create_with(name, subnet, gateway, internal, policy)?;
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
        Ok(networks.remove(name, &|owner| self.container_exists(owner))?)
    }

    /// Removes networks nobody uses (the default one too); returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let networks = self.networks()?;
        let mut removed = Vec::new();
        for net in networks.list()? {
            // Leases of containers that are gone, and their namespaces.
            for (_, owner) in networks.leases(&net.name).all()? {
                if !self.container_exists(&owner) {
                    let _ = attach::detach(&owner);
                }
            }
            match networks.remove(&net.name, &|owner| self.container_exists(owner)) {
                Ok(_) => removed.push(net.name),
                Err(estiba_net::Error::InUse { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

/// The container's `-p` mappings, and with `-P` the image's exposed ports.
fn port_maps(
    record: &ContainerRecord,
    exposed: &[String],
    internal: bool,
    network: &str,
) -> Result<Vec<estiba_net::ports::PortMap>> {
    let mut maps = Vec::new();
    for spec in &record.options.publish {
        maps.extend(estiba_net::ports::parse(spec)?);
    }
    if record.options.publish_all {
        for e in exposed {
            maps.extend(estiba_net::ports::parse(e)?);
        }
    }
    if internal && !maps.is_empty() {
        return Err(Error::Invalid {
            what: "-p",
            value: record.options.publish.join(" "),
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
        let name = r.options.network.as_str();
        if matches!(name, "none" | "host" | "") {
            return json!({"Networks": {}});
        }
        let networks = self.networks().ok();
        let ip = networks.as_ref().and_then(|n| {
            n.leases(name)
                .all()
                .ok()?
                .into_iter()
                .find(|(_, owner)| *owner == r.id)
                .map(|(ip, _)| ip.to_string())
        });
        let ports = networks
            .as_ref()
            .and_then(|n| n.ports().of(&r.id).ok())
            .unwrap_or_default();
        json!({
            "Networks": {name: {"IPAddress": ip}},
            "IPAddress": ip,
            "Ports": ports,
            "EgressDropped": estiba_net::egress::dropped(&attach::netns_name(&r.id)),
        })
    }
}
