//! The facts `estiba audit host` judges, gathered from this machine:
//! modes and owners, estiba's listening processes (from /proc), the
//! kernel's settings, the registries' configuration and auditd's rules.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use estiba_audit::host::{HostFacts, Listener, PathFacts};
use estiba_runtime::host::CgroupMode;

use super::Context;

pub fn gather(ctx: &Context) -> HostFacts {
    let processes = estiba_processes();
    let mut keys: Vec<PathBuf> =
        vec![estiba_cluster::open::default_data(&ctx.paths.data).join("seal.key")];
    let mut certificates: Vec<PathBuf> = Vec::new();
    for p in &processes {
        keys.extend(p.flag("--tls-key").map(PathBuf::from));
        keys.extend(p.flag("--data").map(|d| Path::new(d).join("seal.key")));
        certificates.extend(p.flag("--tls-cert").map(PathBuf::from));
        certificates.extend(p.flag("--ca-cert").map(PathBuf::from));
    }
    keys.sort();
    keys.dedup();
    certificates.sort();
    certificates.dedup();
    let root_dev = std::fs::metadata("/").map(|m| m.dev()).ok();
    let data_dev = std::fs::metadata(&ctx.paths.data).map(|m| m.dev()).ok();
    HostFacts {
        rootless: ctx.host.rootless,
        uid: nix::unistd::geteuid().as_raw(),
        cgroup: match ctx.host.cgroup {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        }
        .into(),
        kernel: ctx.host.kernel_release.clone(),
        lsm: std::fs::read_to_string("/sys/kernel/security/lsm")
            .map(|s| s.trim().split(',').map(String::from).collect())
            .unwrap_or_default(),
        user_namespaces: std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0),
        data: facts(&ctx.paths.data),
        run: facts(&ctx.paths.run),
        separate_partition: root_dev.is_some() && data_dev.is_some() && root_dev != data_dev,
        config: config_files(),
        credentials: facts(&estiba_registry::client::creds::auth_file()),
        keys: keys.iter().filter_map(|k| facts(k)).collect(),
        certificates: certificates.iter().filter_map(|c| facts(c)).collect(),
        listeners: listeners(&processes),
        insecure_registries: insecure_registries(),
        audit_watches: audit_watches(),
        binary: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    }
}

fn facts(path: &Path) -> Option<PathFacts> {
    let m = std::fs::metadata(path).ok()?;
    Some(PathFacts {
        path: path.display().to_string(),
        uid: m.uid(),
        mode: m.mode(),
        is_dir: m.is_dir(),
    })
}

/// /etc/estiba and the user's estiba configuration: the directories and
/// the files in them.
fn config_files() -> Vec<PathFacts> {
    let mut dirs = vec![PathBuf::from("/etc/estiba")];
    dirs.extend(
        crate::paths::Paths::policy_files()
            .into_iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf)),
    );
    dirs.sort();
    dirs.dedup();
    let mut out = Vec::new();
    for dir in dirs {
        out.extend(facts(&dir));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            out.extend(facts(&e.path()));
        }
    }
    out
}

/// A running estiba process, by its command line.
pub(super) struct Process {
    pub(super) pid: u32,
    pub(super) args: Vec<String>,
}

impl Process {
    pub(super) fn flag(&self, name: &str) -> Option<&str> {
        self.args.iter().enumerate().find_map(|(i, a)| {
            if a == name {
                self.args.get(i + 1).map(String::as_str)
            } else {
                a.strip_prefix(name).and_then(|v| v.strip_prefix('='))
            }
        })
    }

    /// `cluster serve`, `registry serve`, `system service`, `agent`, or
    /// `estiba` for anything else.
    fn role(&self) -> String {
        let at = self
            .args
            .iter()
            .position(|a| ["cluster", "registry", "system", "agent"].contains(&a.as_str()));
        match at.map(|i| (self.args[i].as_str(), self.args.get(i + 1))) {
            Some(("agent", _)) => "agent".into(),
            Some((group, Some(what))) => format!("{group} {what}"),
            Some((group, None)) => group.into(),
            None => "estiba".into(),
        }
    }
}

pub(super) fn estiba_processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_estiba = args
            .first()
            .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "estiba"));
        if is_estiba {
            out.push(Process { pid, args });
        }
    }
    out
}

/// Each estiba process's listening TCP sockets: its socket inodes (from
/// /proc/PID/fd) matched against the LISTEN rows of its /proc/PID/net/tcp
/// and tcp6 (its own network namespace's).
fn listeners<'a>(processes: impl IntoIterator<Item = &'a Process>) -> Vec<Listener> {
    let mut out = Vec::new();
    for p in processes {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", p.pid))
            .map(|d| {
                d.flatten()
                    .filter_map(|f| std::fs::read_link(f.path()).ok())
                    .filter_map(|l| {
                        let l = l.to_string_lossy().into_owned();
                        l.strip_prefix("socket:[")
                            .and_then(|r| r.strip_suffix(']'))
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{}/net/{table}", p.pid)).unwrap_or_default();
            for row in text.lines().skip(1) {
                let cols: Vec<&str> = row.split_whitespace().collect();
                let (Some(local), Some(state), Some(inode)) =
                    (cols.get(1), cols.get(3), cols.get(9))
                else {
                    continue;
                };
                if *state != "0A" || !inodes.iter().any(|i| i == inode) {
                    continue;
                }
                out.push(Listener {
                    role: p.role(),
                    pid: p.pid,
                    address: socket_address(local),
                    tls: p.flag("--tls-cert").is_some() || config_has_tls(p.flag("--config")),
                    log_level: p.flag("--log-level").map(String::from),
                });
            }
        }
    }
    out
}

/// Whether a registry's config file (`--config`) has a `[tls]` table.
fn config_has_tls(config: Option<&str>) -> bool {
    config
        .and_then(|c| std::fs::read_to_string(c).ok())
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("tls"))
}

/// /proc/net/tcp's `0100007F:1F90` as `127.0.0.1:8080` (IPv6 as hex).
fn socket_address(local: &str) -> String {
    let Some((ip, port)) = local.split_once(':') else {
        return local.to_string();
    };
    let port = u16::from_str_radix(port, 16).unwrap_or(0);
    if ip.len() == 8 {
        if let Ok(n) = u32::from_str_radix(ip, 16) {
            let b = n.to_le_bytes();
            return format!("{}.{}.{}.{}:{port}", b[0], b[1], b[2], b[3]);
        }
    }
    format!("[{ip}]:{port}")
}

/// Registries marked `insecure = true` in containers-registries.conf(5)
/// files, the system's and the user's.
fn insecure_registries() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/containers/registries.conf")];
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".config/containers/registries.conf"));
    }
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let registries = doc.get("registry").and_then(|r| r.as_array());
        for r in registries.into_iter().flatten() {
            if r.get("insecure").and_then(|v| v.as_bool()) == Some(true) {
                let name = r
                    .get("location")
                    .or_else(|| r.get("prefix"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("?");
                out.push(format!("{name} ({})", f.display()));
            }
        }
    }
    out
}

/// The paths auditd watches (`-w PATH`), from `auditctl -l`, or from
/// /etc/audit/rules.d when auditctl cannot say; None if neither can.
fn audit_watches() -> Option<Vec<String>> {
    let from_auditctl = std::process::Command::new("auditctl")
        .arg("-l")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = match from_auditctl {
        Some(t) => t,
        None => {
            let dir = std::fs::read_dir("/etc/audit/rules.d").ok()?;
            dir.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    Some(
        text.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                while let Some(w) = words.next() {
                    if w == "-w" {
                        return words.next().map(String::from);
                    }
                }
                None
            })
            .collect(),
    )
}

/// The facts `estiba audit cluster` judges: the control-plane replicas and
/// agents running here, and the control plane's directory (`data`, else
/// the first replica's, else the default one).
pub fn gather_cluster(ctx: &Context, data: Option<PathBuf>) -> estiba_audit::cluster::ClusterFacts {
    use estiba_audit::cluster::{AgentListener, ClusterFacts, Replica};
    let processes = estiba_processes();
    let default = estiba_cluster::open::default_data(&ctx.paths.data);
    let mut serving: Vec<&Process> = processes
        .iter()
        .filter(|p| {
            p.args
                .windows(2)
                .any(|w| w[0] == "cluster" && w[1] == "serve")
        })
        .collect();
    // Told which control plane: only the replicas serving that directory.
    if let Some(wanted) = &data {
        serving.retain(|p| p.flag("--data").map_or(default.clone(), PathBuf::from) == *wanted);
    }
    let replicas = serving
        .iter()
        .map(|p| Replica {
            pid: p.pid,
            address: p.flag("--addr").unwrap_or("127.0.0.1:8440").to_string(),
            tls: p.flag("--tls-cert").is_some(),
            etcd: p
                .flag("--store")
                .and_then(|s| s.strip_prefix("etcd://"))
                .map(|list| list.split(',').map(String::from).collect())
                .unwrap_or_default(),
        })
        .collect();
    let agents = listeners(processes.iter().filter(|p| p.role() == "agent"))
        .into_iter()
        .map(|l| AgentListener {
            pid: l.pid,
            address: l.address,
        })
        .collect();
    let data = data
        .or_else(|| {
            serving
                .iter()
                .find_map(|p| p.flag("--data").map(PathBuf::from))
        })
        .unwrap_or(default);
    ClusterFacts {
        data: data.display().to_string(),
        replicas,
        agents,
        audit_log: facts(&data.join("audit.log")),
        seal_key: facts(&data.join("seal.key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_read_as_people_write_them() {
        assert_eq!(socket_address("0100007F:20F8"), "127.0.0.1:8440");
        assert_eq!(socket_address("00000000:1F90"), "0.0.0.0:8080");
    }

    #[test]
    fn flags_and_roles_come_from_the_command_line() {
        let p = Process {
            pid: 1,
            args: [
                "/usr/bin/estiba",
                "--log-level",
                "debug",
                "cluster",
                "serve",
                "--tls-cert=/c",
            ]
            .map(String::from)
            .to_vec(),
        };
        assert_eq!(p.role(), "cluster serve");
        assert_eq!(p.flag("--tls-cert"), Some("/c"));
        assert_eq!(p.flag("--log-level"), Some("debug"));
        assert_eq!(p.flag("--tls-key"), None);
    }
}
