//! Pods: containers that share one "logical host", as in Kubernetes.
//!
//! A pod is a record plus an infra process that holds the shared network,
//! IPC and UTS namespaces (and, with `--share pid`, a pid namespace whose
//! init it is). The infra is estiba's own idle process, so a pod needs no
//! image. Its containers join those namespaces by path.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::network::Attached;
use crate::record::{validate_name, ContainerRecord, CreateOptions, Status};
use crate::{Engine, Error, Result};

/// The hidden command that sets up a pod's namespaces.
pub const INFRA_COMMAND: &str = "internal-infra";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PodRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    pub hostname: String,
    pub share_pid: bool,
    /// The infra process holding the namespaces; 0 when stopped.
    pub infra_pid: i32,
    /// The pod's network flags (`--network`, `--ip`, `-p`, …); its
    /// containers share the attachment. Only the network fields are used.
    #[serde(default)]
    pub network: CreateOptions,
}

impl PodRecord {
    /// True if the pod is on a network (not just its own loopback).
    pub fn networked(&self) -> bool {
        self.network.network.name().is_some()
    }

    fn member(&self) -> crate::network::Member<'_> {
        crate::network::Member {
            id: &self.id,
            name: &self.name,
            options: &self.network,
        }
    }
}

impl PodRecord {
    /// The namespaces a member container joins, by path.
    pub fn namespaces(&self) -> Vec<(String, PathBuf)> {
        let mut kinds = vec![("network", "net"), ("ipc", "ipc"), ("uts", "uts")];
        if self.share_pid {
            kinds.push(("pid", "pid"));
        }
        kinds
            .into_iter()
            .map(|(t, f)| {
                (
                    t.to_string(),
                    PathBuf::from(format!("/proc/{}/ns/{f}", self.infra_pid)),
                )
            })
            .collect()
    }

    pub fn running(&self) -> bool {
        self.infra_pid > 0
            && fs::read(format!("/proc/{}/cmdline", self.infra_pid)).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .any(|a| a == estiba_runtime::userns::PAUSE_COMMAND.as_bytes())
            })
    }
}

fn pods_dir(engine: &Engine) -> PathBuf {
    engine.data.join("pods")
}

impl Engine {
    fn pod_path(&self, id: &str) -> PathBuf {
        pods_dir(self).join(format!("{id}.json"))
    }

    fn save_pod(&self, pod: &PodRecord) -> Result<()> {
        fs::create_dir_all(pods_dir(self)).ctx("creating", pods_dir(self))?;
        let data =
            serde_json::to_vec_pretty(pod).map_err(|e| Error::Record(self.pod_path(&pod.id), e))?;
        Ok(estiba_os::write_atomic(&self.pod_path(&pod.id), &data)?)
    }

    pub fn pods(&self) -> Vec<PodRecord> {
        let Ok(entries) = fs::read_dir(pods_dir(self)) else {
            return Vec::new();
        };
        let mut out: Vec<PodRecord> = entries
            .flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|d| serde_json::from_slice(&d).ok())
            .collect();
        out.sort_by(|a: &PodRecord, b| b.created.cmp(&a.created));
        out
    }

    pub fn find_pod(&self, wanted: &str) -> Result<PodRecord> {
        let pods = self.pods();
        let hits: Vec<&PodRecord> = pods
            .iter()
            .filter(|p| {
                p.name == wanted
                    || p.id == wanted
                    || (!wanted.is_empty() && p.id.starts_with(wanted))
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Invalid {
                what: "pod",
                value: wanted.to_string(),
                why: "no such pod".into(),
            }),
            _ => Err(Error::Ambiguous {
                reference: wanted.to_string(),
                count: hits.len(),
            }),
        }
    }

    /// Creates a pod and starts its infra. `network` holds the network
    /// flags (network, ip, publish, aliases, dns); with a network the pod
    /// gets one address, which its containers share.
    pub fn pod_create(
        &self,
        name: Option<&str>,
        hostname: Option<&str>,
        share_pid: bool,
        network: CreateOptions,
    ) -> Result<PodRecord> {
        crate::options::validate_network_options(&network)?;
        if let Some(name) = network.network.name() {
            self.check_network(name, network.ip)?;
        } else if network.network == crate::record::NetworkMode::Host {
            return Err(Error::Invalid {
                what: "--network",
                value: "host".into(),
                why: "a pod has a network namespace of its own: none or a network's name".into(),
            });
        }
        let id = estiba_os::random_hex(32);
        let name = match name {
            Some(n) => {
                validate_name(n)?;
                if self.pods().iter().any(|p| p.name == n) {
                    return Err(Error::NameInUse {
                        name: n.to_string(),
                        id: self.find_pod(n)?.id,
                    });
                }
                n.to_string()
            }
            None => format!("pod_{}", &id[..12]),
        };
        let mut pod = PodRecord {
            hostname: hostname.map_or_else(|| name.clone(), str::to_string),
            id,
            name,
            created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            share_pid,
            infra_pid: 0,
            network,
        };
        // Saved first: the pod owns its lease, and a lease whose owner has
        // no record is reclaimed.
        self.save_pod(&pod)?;
        if let Err(e) = self.start_infra(&mut pod) {
            self.detach_member(&pod.member());
            let _ = fs::remove_file(self.pod_path(&pod.id));
            return Err(e);
        }
        self.save_pod(&pod)?;
        Ok(pod)
    }

    /// Starts the infra: `estiba internal-infra` unshares the namespaces,
    /// sets the hostname, brings up loopback, and leaves an idle child in them.
    fn start_infra(&self, pod: &mut PodRecord) -> Result<()> {
        let mut cmd = Command::new(&self.exe);
        cmd.args([INFRA_COMMAND, &pod.hostname])
            .env_remove(estiba_runtime::userns::JOIN_ENV)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        if pod.share_pid {
            cmd.arg("--share-pid");
        }
        if pod.networked() {
            // The pod's namespace on its network (made again after a reboot).
            let attached = self.attach_member(&pod.member(), &[])?;
            if let Some(a) = attached {
                cmd.arg("--netns").arg(&a.netns);
            }
        }
        let out = cmd.output().ctx("starting the infra of pod", &pod.name)?;
        let pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|_| out.status.success());
        pod.infra_pid = pid.ok_or_else(|| Error::Invalid {
            what: "pod",
            value: pod.name.clone(),
            why: "its infra process did not start".into(),
        })?;
        Ok(())
    }

    pub fn pod_start(&self, wanted: &str) -> Result<PodRecord> {
        let mut pod = self.find_pod(wanted)?;
        if !pod.running() {
            self.start_infra(&mut pod)?;
            self.save_pod(&pod)?;
        }
        for c in self.pod_members(&pod)? {
            if c.state.status != Status::Running {
                self.start_detached(&c.id)?;
            }
        }
        Ok(pod)
    }

    pub fn pod_members(&self, pod: &PodRecord) -> Result<Vec<ContainerRecord>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| c.options.pod.as_deref() == Some(pod.id.as_str()))
            .collect())
    }

    pub fn pod_stop(&self, wanted: &str, timeout: std::time::Duration) -> Result<PodRecord> {
        let mut pod = self.find_pod(wanted)?;
        for c in self.pod_members(&pod)? {
            if c.state.status == Status::Running {
                self.stop(&c.id, timeout)?;
            }
        }
        if pod.running() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pod.infra_pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        pod.infra_pid = 0;
        // The address goes back with the namespace: `pod start` takes one
        // again, as a container's start does.
        if pod.networked() {
            self.detach_member(&pod.member());
        }
        self.save_pod(&pod)?;
        Ok(pod)
    }

    /// The pod's address on its network, while it holds one.
    pub fn pod_address(&self, pod: &PodRecord) -> Option<std::net::Ipv4Addr> {
        let name = pod.network.network.name()?;
        self.networks()
            .ok()?
            .leases(name)
            .all()
            .ok()?
            .into_iter()
            .find_map(|(ip, owner)| (owner == pod.id).then_some(ip))
    }

    /// Removes the pod and its containers (running ones only with `force`).
    pub fn pod_remove(&self, wanted: &str, force: bool) -> Result<PodRecord> {
        let pod = self.find_pod(wanted)?;
        let members = self.pod_members(&pod)?;
        if !force && members.iter().any(|c| c.state.status == Status::Running) {
            return Err(Error::Running {
                id: pod.name.clone(),
            });
        }
        for c in members {
            self.remove(&c.id, true)?;
        }
        if pod.running() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pod.infra_pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if pod.networked() {
            self.detach_member(&pod.member());
        }
        fs::remove_file(self.pod_path(&pod.id)).ctx("removing", self.pod_path(&pod.id))?;
        Ok(pod)
    }
}

/// The infra command's body: new namespaces (or, with `netns`, the pod's
/// namespace on its network), hostname, an idle child (the pod's pid 1 with
/// `--share-pid`), then loopback up. Returns the child's pid.
pub fn infra_main(hostname: &str, share_pid: bool, netns: Option<&std::path::Path>) -> Result<u32> {
    use nix::sched::CloneFlags;
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    match netns {
        Some(path) => {
            let ns = fs::File::open(path).ctx("opening", path)?;
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                .ctx("entering the network namespace", path)?;
        }
        None => flags |= CloneFlags::CLONE_NEWNET,
    }
    if share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    nix::sched::unshare(flags).ctx("unsharing namespaces for", hostname)?;
    rustix::system::sethostname(hostname.as_bytes()).ctx("setting hostname", hostname)?;
    let exe = std::env::current_exe().ctx("finding", "/proc/self/exe")?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg(estiba_runtime::userns::PAUSE_COMMAND)
            .env_remove(estiba_runtime::userns::JOIN_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ctx("starting", "the pod's infra process")?
    };
    // After the pid 1 of a new pid namespace: had a short-lived process been
    // first, it would have been pid 1, and its exit would end the namespace.
    let up = Command::new(estiba_os::which("ip").unwrap_or_else(|| "ip".into()))
        .args(["link", "set", "lo", "up"])
        .status()
        .ctx("bringing up loopback with", "ip")?;
    if !up.success() {
        return Err(Error::Invalid {
            what: "pod loopback",
            value: "lo".into(),
            why: "`ip link set lo up` failed".into(),
        });
    }
    Ok(child.id())
}

impl Engine {
    /// A pod member is going: its names leave the pod's lease.
    pub(crate) fn pod_member_leaves(&self, member: &ContainerRecord) {
        let Some(pod) = member
            .options
            .pod
            .as_deref()
            .and_then(|p| self.find_pod(p).ok())
        else {
            return;
        };
        if !pod.networked() {
            return;
        }
        if let Ok(networks) = self.networks() {
            let leases = networks.leases(pod.network.network.as_str());
            if let Err(e) = leases.change_names(&pod.id, &member_names(member), false) {
                tracing::warn!(error = %e, id = %member.id, "removing a pod member's names");
            }
        }
    }

    /// What a pod's containers get from the pod's network: its address,
    /// gateway and neighbours, for their /etc files. None if the pod is on
    /// no network.
    pub(crate) fn pod_attached(&self, member: &ContainerRecord) -> Result<Option<Attached>> {
        let Some(pod_id) = member.options.pod.as_deref() else {
            return Ok(None);
        };
        let pod = self.find_pod(pod_id)?;
        if !pod.networked() {
            return Ok(None);
        }
        let networks = self.networks()?;
        let net = networks.get(pod.network.network.as_str())?;
        // The member answers at the pod's address, by its own name too.
        networks
            .leases(&net.name)
            .change_names(&pod.id, &member_names(member), true)?;
        let holders = networks.leases(&net.name).holders()?;
        let ip = holders
            .iter()
            .find(|h| h.owner == pod.id)
            .map(|h| h.ip)
            .ok_or_else(|| Error::Invalid {
                what: "pod",
                value: pod.name.clone(),
                why: "has no address on its network: `estiba pod start` it".into(),
            })?;
        Ok(Some(Attached {
            netns: networks.host().ns_path(&pod.id),
            ip,
            gateway: net.gateway,
            hosts: crate::network::hosts_of(&holders),
            ports: Vec::new(),
        }))
    }
}

/// The names a pod member adds to its pod's lease.
fn member_names(member: &ContainerRecord) -> Vec<String> {
    [member.name.clone(), member.id[..12].to_string()]
        .into_iter()
        .filter(|n| crate::network::valid_dns_name(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(share_pid: bool) -> PodRecord {
        PodRecord {
            id: "ab".repeat(32),
            name: "web".into(),
            created: String::new(),
            hostname: "web".into(),
            share_pid,
            infra_pid: 4242,
            network: CreateOptions::default(),
        }
    }

    #[test]
    fn members_join_the_infra_namespaces_and_pid_only_when_shared() {
        let kinds = |p: &PodRecord| {
            p.namespaces()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&pod(false)), ["network", "ipc", "uts"]);
        assert_eq!(kinds(&pod(true)), ["network", "ipc", "uts", "pid"]);
        let (_, path) = &pod(false).namespaces()[0];
        assert_eq!(path, &PathBuf::from("/proc/4242/ns/net"));
        assert!(!pod(false).networked());
    }

    #[test]
    fn a_member_is_known_on_the_network_by_its_name_and_short_id() {
        let member = ContainerRecord {
            id: "cd".repeat(32),
            name: "api".into(),
            image: String::new(),
            image_id: String::new(),
            created: String::new(),
            options: CreateOptions::default(),
            state: Default::default(),
        };
        assert_eq!(member_names(&member), ["api", "cdcdcdcdcdcd"]);
    }
}
