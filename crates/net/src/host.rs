//! Where networks live, and the commands that change them.
//!
//! As root, bridges live in the host's network namespace and container
//! namespaces are `ip netns` names under /run/netns.
//!
//! Rootless, estiba runs as root of the user's own user namespace, which
//! owns no part of the host's network. So each user gets a *hub*: a network
//! namespace of its own (`$RUNROOT/netns/hub`) that holds the bridges, the
//! segmentation rules and a masquerade onto `tap0`, where slirp4netns links
//! the hub to the host's network for outbound traffic. Container
//! namespaces are files beside it (`$RUNROOT/netns/es-<id12>`), kept by
//! bind mounts in the user's shared mount namespace. Published ports go
//! through a userspace forwarder (`forward`) instead of kernel NAT.
//!
//! Why slirp4netns and not pasta: Debian 12's pasta (passt
//! 0.0~git20230309) was tried in the same place. It uploaded faster
//! (0.8 against 0.55 Gbit/s, iperf3 from a container to a test namespace)
//! but downloaded slower (0.9 against 3.2 Gbit/s), and it sent an HTTP
//! response over and over once the client had half-closed its side, which
//! breaks ordinary clients. slirp4netns is the one that works.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::netlink::Netlink;
use crate::netns::{self, Propagation};
use crate::{run, Error, IoContext, Result};

/// The mount namespace this process started in. Namespace mounts live
/// there; a process that has since moved to a private mount namespace (a
/// foreground `run`, a monitor) goes back to it, through this handle, to
/// unmount them.
static HOST_MOUNTS: OnceLock<std::fs::File> = OnceLock::new();

/// Call before leaving the host's mount namespace.
pub fn remember_host_mounts() {
    if HOST_MOUNTS.get().is_none() {
        if let Ok(f) = std::fs::File::open("/proc/self/ns/mnt") {
            let _ = HOST_MOUNTS.set(f);
        }
    }
}

/// Where namespace mounts are made: the mount namespace this process
/// started in, if it remembered it.
fn host_mounts() -> Option<&'static std::fs::File> {
    HOST_MOUNTS.get()
}

/// nsfs's magic number: a file with it is a namespace kept by a mount.
const NSFS_MAGIC: i64 = 0x6e73_6673;

pub(crate) fn is_namespace(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == NSFS_MAGIC)
}

/// The two places networks can live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetHost {
    /// Root: the host's own network namespace.
    Root,
    /// Rootless: the user's hub; `dir` holds it and the containers'
    /// namespaces.
    Rootless { dir: PathBuf },
}

impl NetHost {
    pub fn rootless(&self) -> bool {
        matches!(self, NetHost::Rootless { .. })
    }

    /// The hub's namespace (None as root: the host's own).
    pub fn hub(&self) -> Option<PathBuf> {
        match self {
            NetHost::Root => None,
            NetHost::Rootless { dir } => Some(dir.join("hub")),
        }
    }

    /// The name of a container's namespace.
    pub fn ns_name(container: &str) -> String {
        format!("es-{}", &container[..container.len().min(12)])
    }

    /// Where a container's namespace is mounted.
    pub fn ns_path(&self, container: &str) -> PathBuf {
        match self {
            NetHost::Root => PathBuf::from("/run/netns").join(Self::ns_name(container)),
            NetHost::Rootless { dir } => dir.join(Self::ns_name(container)),
        }
    }

    /// Creates a container's namespace.
    pub fn create_ns(&self, container: &str) -> Result<PathBuf> {
        let path = self.ns_path(container);
        let propagation = match self {
            // As `ip netns add`, so `ip netns exec` finds it.
            NetHost::Root => Propagation::Shared,
            NetHost::Rootless { .. } => Propagation::Private,
        };
        netns::create(&path, host_mounts(), propagation)?;
        Ok(path)
    }

    /// Removes a container's namespace (which takes its veth pair along).
    pub fn delete_ns(&self, container: &str) -> Result<()> {
        netns::remove(&self.ns_path(container), host_mounts())
    }

    pub fn ns_exists(&self, container: &str) -> bool {
        is_namespace(&self.ns_path(container))
    }

    /// A netlink socket where the bridges are: the host, or the hub.
    pub fn hub_netlink(&self) -> Result<Netlink> {
        Netlink::open_in(self.hub().as_deref())
    }

    /// The same, or None if the rootless hub is gone (and its links with
    /// it).
    pub fn hub_netlink_if_there(&self) -> Result<Option<Netlink>> {
        match self.hub() {
            Some(hub) if !is_namespace(&hub) => Ok(None),
            hub => Netlink::open_in(hub.as_deref()).map(Some),
        }
    }

    /// True if the link `name` exists where the bridges are.
    pub fn link_exists(&self, name: &str) -> bool {
        match self {
            // sysfs, not a socket: this is asked on every attach.
            NetHost::Root => Path::new("/sys/class/net").join(name).exists(),
            NetHost::Rootless { .. } => self
                .hub_netlink_if_there()
                .ok()
                .flatten()
                .and_then(|mut nl| nl.link_index(name).ok())
                .is_some_and(|i| i.is_some()),
        }
    }

    /// Rootless: makes the hub unless it is there, with its masquerade,
    /// forwarding and (if /dev/net/tun can be opened) slirp4netns for the
    /// way out. Returns a warning if there is no way out.
    pub fn ensure_hub(&self) -> Result<Option<String>> {
        let (Some(hub), NetHost::Rootless { dir }) = (self.hub(), self) else {
            return Ok(None);
        };
        let _lock = crate::state::lock(&dir.join(".hub.lock"))?;
        if is_namespace(&hub) && crate::pidfile::alive(&dir.join("slirp4netns.pid")).is_some() {
            return Ok(None);
        }
        if !is_namespace(&hub) {
            netns::create(&hub, host_mounts(), Propagation::Private)?;
            netns::within(Some(&hub), || {
                Netlink::open()?.set_up_by_name("lo", None)?;
                let forward = "/proc/sys/net/ipv4/ip_forward";
                std::fs::write(forward, "1").ctx("writing", forward)
            })?;
            crate::firewall::load_at(Some(&hub), HUB_NAT)?;
        }
        start_slirp(dir, &hub)
    }

    /// Rootless: removes the hub and stops slirp4netns if `unused` still
    /// says so under the hub's lock (an attach takes its lease before it
    /// makes sure of the hub, so a lease seen missing here means no attach
    /// is past that point).
    pub fn remove_hub(&self, unused: impl Fn() -> bool) -> Result<()> {
        let (Some(hub), NetHost::Rootless { dir }) = (self.hub(), self) else {
            return Ok(());
        };
        let _lock = crate::state::lock(&dir.join(".hub.lock"))?;
        if !unused() {
            return Ok(());
        }
        crate::pidfile::stop_and_wait(&dir.join("slirp4netns.pid"));
        netns::remove(&hub, host_mounts())
    }
}

/// The hub's way out: everything leaving through slirp4netns's tap0 takes
/// the tap's address.
const HUB_NAT: &str = "table ip estiba_hub {}\nflush table ip estiba_hub\ntable ip estiba_hub {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"tap0\" masquerade\n  }\n}\n";

/// Runs `program args…` inside the network namespace at `ns`: spawned
/// from a thread that entered it, so no `nsenter` runs.
pub fn in_ns(ns: &Path, program: &str, args: &[&str]) -> Result<String> {
    netns::within(Some(ns), || run(program, args))
}

/// Starts slirp4netns on the hub's tap0 and waits until it is ready.
fn start_slirp(dir: &Path, hub: &Path) -> Result<Option<String>> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_err()
    {
        return Ok(Some(
            "rootless containers have no way out of their networks: /dev/net/tun cannot be \
             opened, which slirp4netns needs (Debian's default mode is 0666; as root: \
             chmod 0666 /dev/net/tun)"
                .into(),
        ));
    }
    let mut child = Command::new("slirp4netns")
        .args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--netns-type=path",
            "--ready-fd=1",
        ])
        .arg(hub)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Command {
            command: "slirp4netns".into(),
            stderr: e.to_string(),
        })?;
    // Recorded before the wait for readiness: a `kill -9` of this process
    // in between must not leave a slirp4netns that `remove_hub` cannot find.
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let pidfile = dir.join("slirp4netns.pid");
    crate::pidfile::record(&pidfile, pid)?;
    let mut ready = [0u8; 1];
    let said = child
        .stdout
        .take()
        .is_some_and(|mut out| out.read_exact(&mut ready).is_ok());
    if !said {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&pidfile);
        return Err(Error::Command {
            command: "slirp4netns".into(),
            stderr: "it exited before the network was configured".into(),
        });
    }
    Ok(None)
}
