//! Putting a container on a network: a network namespace of its own (which
//! the container's spec joins by path), a veth pair with one end on the
//! bridge and the other as the container's `eth0`, its address and default
//! route. Detaching deletes the namespace, which takes the veth pair with
//! it. Where bridges and namespaces live (the host as root, the user's hub
//! rootless) is `NetHost`'s business.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::host::NetHost;
use crate::netlink::Netlink;
use crate::network::NetworkRecord;
use crate::{IoContext, Result};

pub use crate::host::remember_host_mounts;

/// The host end of a container's veth pair.
fn host_end(container: &str) -> String {
    format!("ve{}", &container[..container.len().min(12)])
}

/// True if the network's bridge is up already (it and its rules are made
/// together; after a reboot both are gone).
pub fn bridge_exists(host: &NetHost, net: &NetworkRecord) -> bool {
    host.link_exists(&net.bridge)
}

/// Creates the network's bridge if it is not there (after a reboot too).
pub fn ensure_bridge(host: &NetHost, net: &NetworkRecord) -> Result<()> {
    if !host.rootless() {
        ensure_forwarding()?;
    }
    if host.link_exists(&net.bridge) {
        return Ok(());
    }
    let prefix = net.subnet()?.prefix;
    let mut nl = host.hub_netlink()?;
    // Two first attaches may race here: the second finds the bridge made.
    if let Err(e) = nl.add_bridge(&net.bridge) {
        if nl.link_index(&net.bridge)?.is_none() {
            return Err(e);
        }
    }
    let bridge = nl.require(&net.bridge)?;
    if let Err(e) = nl.add_address(bridge, net.gateway, prefix) {
        if !exists(&e) {
            return Err(e);
        }
    }
    nl.set_up(bridge, None)?;
    if !host.rootless() {
        // Published ports DNAT the host's own 127.0.0.1 onto the bridge.
        let sysctl = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
        std::fs::write(&sysctl, "1").ctx("writing", sysctl)?;
    }
    Ok(())
}

/// As root, a bridge's traffic leaves through the host's routes: the host
/// must forward IPv4, as docker and netavark make it. Checked at each
/// attach, since anything on the host (a `sysctl --system`) may turn it
/// off again; which forwarded traffic is allowed is the firewall's
/// business (`firewall.rs`: internal networks and segmentation).
fn ensure_forwarding() -> Result<()> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").ctx("turning on IPv4 forwarding in", path)
}

/// True for the kernel's EEXIST.
fn exists(e: &crate::Error) -> bool {
    crate::netlink::is_errno(e, rustix::io::Errno::EXIST)
}

pub fn remove_bridge(host: &NetHost, net: &NetworkRecord) -> Result<()> {
    let Some(mut nl) = host.hub_netlink_if_there()? else {
        return Ok(());
    };
    if let Some(bridge) = nl.link_index(&net.bridge)? {
        nl.delete_link(bridge)?;
    }
    Ok(())
}

/// Attaches `container` at `ip`. Safe to call again for a container that
/// is already attached (a restart): it keeps what is there.
pub fn attach(
    host: &NetHost,
    net: &NetworkRecord,
    container: &str,
    ip: Ipv4Addr,
) -> Result<PathBuf> {
    ensure_bridge(host, net)?;
    if host.ns_exists(container) {
        return Ok(host.ns_path(container));
    }
    let path = host.create_ns(container)?;
    let result = plug(host, net, &path, &host_end(container), "eth0", ip).and_then(|()| {
        // Only the first network's interface brings the route and loopback.
        let mut inside = Netlink::open_in(Some(&path))?;
        inside.set_up_by_name("lo", None)?;
        inside.add_default_route(net.gateway)
    });
    if result.is_err() {
        // Nothing half set up stays behind.
        let _ = detach(host, container);
    }
    result.map(|()| path)
}

/// A veth pair from the bridge into the namespace at `ns`: `outside` on
/// the bridge, `inside` in the namespace with `ip`, both up.
fn plug(
    host: &NetHost,
    net: &NetworkRecord,
    ns: &Path,
    outside: &str,
    inside: &str,
    ip: Ipv4Addr,
) -> Result<()> {
    let prefix = net.subnet()?.prefix;
    let target = std::fs::File::open(ns).ctx("opening", ns)?;
    let mut hub = host.hub_netlink()?;
    hub.add_veth(outside, inside, target.as_fd())?;
    let bridge = hub.require(&net.bridge)?;
    hub.set_up_by_name(outside, Some(bridge))?;
    let mut within = Netlink::open_in(Some(ns))?;
    let index = within.require(inside)?;
    within.add_address(index, ip, prefix)?;
    within.set_up(index, None)
}

/// Deletes a link where the bridges are, if it is there.
fn delete_link(host: &NetHost, name: &str) -> Result<()> {
    let Some(mut nl) = host.hub_netlink_if_there()? else {
        return Ok(());
    };
    match nl.link_index(name)? {
        Some(index) => match nl.delete_link(index) {
            // Gone meanwhile (its namespace went, taking it along).
            Err(_) if nl.link_index(name)?.is_none() => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}

/// Removes a container's network namespace and with it its veth pair.
pub fn detach(host: &NetHost, container: &str) -> Result<()> {
    host.delete_ns(container)?;
    // Deleting the namespace takes the pair with it, a moment later; a pair
    // left by a crash before the move into the namespace goes here.
    delete_link(host, &host_end(container))
}

/// The host end of a container's veth pair on a network other than its
/// first: `v`, six hex digits of the container, seven of the network
/// (15 characters at most, as links must be).
fn extra_end(net: &NetworkRecord, container: &str) -> String {
    format!(
        "v{}{}",
        &container[..container.len().min(6)],
        &net.id[..net.id.len().min(7)]
    )
}

/// The first `ethN` (N ≥ 1) that `links` does not hold.
fn free_interface(links: &[String]) -> String {
    (1..10)
        .map(|n| format!("eth{n}"))
        .find(|name| !links.contains(name))
        .unwrap_or_else(|| "eth9".into())
}

/// Adds a network to an attached container: another veth pair, whose
/// inside end is the first free `ethN`. No default route: that stays on
/// the first network. Safe to call again.
pub fn attach_extra(
    host: &NetHost,
    net: &NetworkRecord,
    container: &str,
    ip: Ipv4Addr,
) -> Result<()> {
    ensure_bridge(host, net)?;
    let veth = extra_end(net, container);
    if host.link_exists(&veth) {
        return Ok(());
    }
    let path = host.ns_path(container);
    let inside = free_interface(&Netlink::open_in(Some(&path))?.link_names()?);
    let result = plug(host, net, &path, &veth, &inside, ip);
    if result.is_err() {
        let _ = delete_link(host, &veth);
    }
    result
}

/// Takes a container off a network other than its first: deleting the
/// host end deletes the pair.
pub fn detach_extra(host: &NetHost, net: &NetworkRecord, container: &str) -> Result<()> {
    delete_link(host, &extra_end(net, container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_fit_the_kernels_limit() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(host_end(&id), "ve0123456789ab");
        let net = NetworkRecord {
            name: "app".into(),
            id: "fedcba9876543210".repeat(4),
            driver: "bridge".into(),
            subnet: "10.90.1.0/24".into(),
            gateway: "10.90.1.1".parse().unwrap(),
            internal: false,
            bridge: "es-app".into(),
            created: String::new(),
            egress: Default::default(),
        };
        let extra = extra_end(&net, &id);
        assert_eq!(extra, "v012345fedcba9");
        assert!(extra.len() <= 15 && host_end(&id).len() <= 15);
    }

    #[test]
    fn further_networks_take_the_first_free_interface() {
        let links = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(free_interface(&links(&["lo", "eth0"])), "eth1");
        assert_eq!(
            free_interface(&links(&["lo", "eth0", "eth1", "eth3"])),
            "eth2"
        );
    }
}
