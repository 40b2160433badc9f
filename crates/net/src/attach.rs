//! Putting a container on a network: a named network namespace
//! (`/run/netns/es-<id12>`, which the container's spec joins), a veth pair
//! with one end on the bridge and the other as the container's `eth0`, its
//! address and default route. Detaching deletes the namespace, which takes
//! the veth pair with it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::network::NetworkRecord;
use crate::{run, Result};

/// The mount namespace this process started in. `ip netns` mounts live
/// there; a process that has since moved to a private mount namespace (a
/// foreground `run`) goes back to it, through this handle, to unmount them.
static HOST_MOUNTS: OnceLock<std::fs::File> = OnceLock::new();

/// Call before leaving the host's mount namespace.
pub fn remember_host_mounts() {
    if HOST_MOUNTS.get().is_none() {
        if let Ok(f) = std::fs::File::open("/proc/self/ns/mnt") {
            let _ = HOST_MOUNTS.set(f);
        }
    }
}

/// `ip netns add|del` in the host's mount namespace.
fn netns_command(op: &str, ns: &str) -> Result<String> {
    match HOST_MOUNTS.get() {
        Some(f) => {
            use std::os::fd::AsRawFd;
            let handle = format!("--mount=/proc/{}/fd/{}", std::process::id(), f.as_raw_fd());
            run("nsenter", &[&handle, "--", "ip", "netns", op, ns])
        }
        None => run("ip", &["netns", op, ns]),
    }
}

/// The namespace a container's network lives in.
pub fn netns_name(container: &str) -> String {
    format!("es-{}", &container[..container.len().min(12)])
}

pub fn netns_path(container: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(netns_name(container))
}

fn link_exists(name: &str) -> bool {
    // sysfs, not a command: this is asked on every attach.
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// True if the network's bridge is up already (it and its rules are made
/// together; after a reboot both are gone).
pub fn bridge_exists(net: &NetworkRecord) -> bool {
    link_exists(&net.bridge)
}

/// Creates the network's bridge if it is not there (after a reboot too).
pub fn ensure_bridge(net: &NetworkRecord) -> Result<()> {
    if link_exists(&net.bridge) {
        return Ok(());
    }
    let prefix = net.subnet()?.prefix;
    run("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/{prefix}", net.gateway),
            "dev",
            &net.bridge,
        ],
    )?;
    run("ip", &["link", "set", &net.bridge, "up"])?;
    // Published ports DNAT the host's own 127.0.0.1 onto the bridge.
    let sysctl = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
    std::fs::write(&sysctl, "1").map_err(|e| crate::Error::Io {
        op: "writing",
        path: sysctl.into(),
        source: e,
    })?;
    Ok(())
}

pub fn remove_bridge(net: &NetworkRecord) -> Result<()> {
    if link_exists(&net.bridge) {
        run("ip", &["link", "del", &net.bridge])?;
    }
    Ok(())
}

/// Attaches `container` at `ip`. Safe to call again for a container that
/// is already attached (a restart): it keeps what is there.
pub fn attach(net: &NetworkRecord, container: &str, ip: Ipv4Addr) -> Result<PathBuf> {
    ensure_bridge(net)?;
    let ns = netns_name(container);
    let path = netns_path(container);
    if path.exists() {
        return Ok(path);
    }
    netns_command("add", &ns)?;
    let result = (|| {
        let host_end = format!("ve{}", &container[..container.len().min(12)]);
        let prefix = net.subnet()?.prefix;
        run(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &host_end, "master", &net.bridge, "up"],
        )?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/{prefix}"),
                "dev",
                "eth0",
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &net.gateway.to_string(),
            ],
        )?;
        Ok(())
    })();
    if result.is_err() {
        // Nothing half set up stays behind.
        let _ = detach(container);
    }
    result.map(|()| path)
}

/// Removes a container's network namespace and with it its veth pair.
pub fn detach(container: &str) -> Result<()> {
    if netns_path(container).exists() {
        netns_command("del", &netns_name(container))?;
    }
    // Deleting the namespace takes the pair with it, a moment later; a pair
    // left by a crash before the move into the namespace goes here.
    let host_end = format!("ve{}", &container[..container.len().min(12)]);
    if link_exists(&host_end) {
        if let Err(e) = run("ip", &["link", "del", &host_end]) {
            if link_exists(&host_end) {
                return Err(e);
            }
        }
    }
    Ok(())
}
