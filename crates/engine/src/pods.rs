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
use crate::record::{validate_name, ContainerRecord, Status};
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
        Ok(estiba_store::write_atomic(&self.pod_path(&pod.id), &data)?)
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

    pub fn pod_create(
        &self,
        name: Option<&str>,
        hostname: Option<&str>,
        share_pid: bool,
    ) -> Result<PodRecord> {
        let id = estiba_store::random_hex(32);
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
        };
        self.start_infra(&mut pod)?;
        self.save_pod(&pod)?;
        Ok(pod)
    }

    /// Starts the infra: `estiba internal-infra` unshares the namespaces,
    /// sets the hostname, brings up loopback, and leaves an idle child in them.
    fn start_infra(&self, pod: &mut PodRecord) -> Result<()> {
        let exe = std::env::current_exe().ctx("finding", "/proc/self/exe")?;
        let mut cmd = Command::new(exe);
        cmd.args([INFRA_COMMAND, &pod.hostname])
            .env_remove(estiba_runtime::userns::JOIN_ENV)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        if pod.share_pid {
            cmd.arg("--share-pid");
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
        self.save_pod(&pod)?;
        Ok(pod)
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
        fs::remove_file(self.pod_path(&pod.id)).ctx("removing", self.pod_path(&pod.id))?;
        Ok(pod)
    }
}

/// The infra command's body: new namespaces, hostname, an idle child (the
/// pod's pid 1 with `--share-pid`), then loopback up. Returns the child's pid.
pub fn infra_main(hostname: &str, share_pid: bool) -> Result<u32> {
    use nix::sched::CloneFlags;
    let mut flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    nix::sched::unshare(flags).map_err(|e| Error::Io {
        op: "unsharing namespaces for",
        path: hostname.into(),
        source: e.into(),
    })?;
    rustix::system::sethostname(hostname.as_bytes()).map_err(|e| Error::Io {
        op: "setting hostname",
        path: hostname.into(),
        source: e.into(),
    })?;
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
    let up = Command::new(estiba_runtime::userns::which("ip").unwrap_or_else(|| "ip".into()))
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
