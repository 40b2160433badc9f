//! Putting a container on a network: a network namespace of its own (which
//! the container's spec joins by path), a veth pair with one end on the
//! bridge and the other as the container's `eth0`, its address and default
//! route. Detaching deletes the namespace, which takes the veth pair with
//! it. Where bridges and namespaces live (the host as root, the user's hub
//! rootless) is `NetHost`'s business.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::host::{in_ns, NetHost};
use crate::network::NetworkRecord;
use crate::Result;

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
    if host.link_exists(&net.bridge) {
        return Ok(());
    }
    let prefix = net.subnet()?.prefix;
    let address = format!("{}/{prefix}", net.gateway);
    host.in_hub("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
    host.in_hub("ip", &["addr", "add", &address, "dev", &net.bridge])?;
    host.in_hub("ip", &["link", "set", &net.bridge, "up"])?;
    if !host.rootless() {
        // Published ports DNAT the host's own 127.0.0.1 onto the bridge.
        let sysctl = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
        std::fs::write(&sysctl, "1").map_err(|e| crate::Error::Io {
            op: "writing",
            path: sysctl.into(),
            source: e,
        })?;
    }
    Ok(())
}

pub fn remove_bridge(host: &NetHost, net: &NetworkRecord) -> Result<()> {
    if host.link_exists(&net.bridge) {
        host.in_hub("ip", &["link", "del", &net.bridge])?;
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
    let result = (|| {
        let veth = host_end(container);
        let prefix = net.subnet()?.prefix;
        let target = path.to_string_lossy();
        host.in_hub(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &target,
            ],
        )?;
        host.in_hub("ip", &["link", "set", &veth, "master", &net.bridge, "up"])?;
        let address = format!("{ip}/{prefix}");
        in_ns(&path, "ip", &["addr", "add", &address, "dev", "eth0"])?;
        in_ns(&path, "ip", &["link", "set", "eth0", "up"])?;
        in_ns(&path, "ip", &["link", "set", "lo", "up"])?;
        let gateway = net.gateway.to_string();
        in_ns(&path, "ip", &["route", "add", "default", "via", &gateway])?;
        Ok(())
    })();
    if result.is_err() {
        // Nothing half set up stays behind.
        let _ = detach(host, container);
    }
    result.map(|()| path)
}

/// Removes a container's network namespace and with it its veth pair.
pub fn detach(host: &NetHost, container: &str) -> Result<()> {
    host.delete_ns(container)?;
    // Deleting the namespace takes the pair with it, a moment later; a pair
    // left by a crash before the move into the namespace goes here.
    let veth = host_end(container);
    if host.link_exists(&veth) {
        if let Err(e) = host.in_hub("ip", &["link", "del", &veth]) {
            if host.link_exists(&veth) {
                return Err(e);
            }
        }
    }
    Ok(())
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
    let links = in_ns(&path, "ip", &["-o", "link", "show"])?;
    let inside = (1..)
        .map(|n| format!("eth{n}"))
        .find(|name| {
            !links.contains(&format!(": {name}@")) && !links.contains(&format!(": {name}:"))
        })
        .unwrap_or_else(|| "eth9".into());
    let target = path.to_string_lossy();
    host.in_hub(
        "ip",
        &[
            "link", "add", &veth, "type", "veth", "peer", "name", &inside, "netns", &target,
        ],
    )?;
    let result = (|| {
        host.in_hub("ip", &["link", "set", &veth, "master", &net.bridge, "up"])?;
        let address = format!("{ip}/{}", net.subnet()?.prefix);
        in_ns(&path, "ip", &["addr", "add", &address, "dev", &inside])?;
        in_ns(&path, "ip", &["link", "set", &inside, "up"])?;
        Ok(())
    })();
    if result.is_err() {
        let _ = host.in_hub("ip", &["link", "del", &veth]);
    }
    result
}

/// Takes a container off a network other than its first: deleting the
/// host end deletes the pair.
pub fn detach_extra(host: &NetHost, net: &NetworkRecord, container: &str) -> Result<()> {
    let veth = extra_end(net, container);
    if host.link_exists(&veth) {
        host.in_hub("ip", &["link", "del", &veth])?;
    }
    Ok(())
}
