//! Host checks: CIS Docker Benchmark sections 1–3 mapped onto estiba. The
//! CLI gathers the facts (modes and owners, listeners from /proc, the
//! kernel's settings); the checks only judge them, so they are tested
//! without touching the machine they run on.

use crate::catalog::TargetKind;
use crate::finding::{Finding, Location, Target};

/// A file or directory's owner and mode.
#[derive(Clone, Debug, Default)]
pub struct PathFacts {
    pub path: String,
    pub uid: u32,
    pub mode: u32,
    pub is_dir: bool,
}

/// A process of estiba's listening on TCP.
#[derive(Clone, Debug, Default)]
pub struct Listener {
    /// What it is: `cluster serve`, `registry serve`, `agent`, ….
    pub role: String,
    pub pid: u32,
    /// `ADDRESS:PORT`.
    pub address: String,
    pub tls: bool,
    /// Its `--log-level`, when given.
    pub log_level: Option<String>,
}

/// What the host audit judges.
#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    pub rootless: bool,
    /// The uid estiba runs as on the host.
    pub uid: u32,
    /// `v1`, `hybrid` or `v2`.
    pub cgroup: String,
    pub kernel: String,
    /// The kernel's security modules (/sys/kernel/security/lsm).
    pub lsm: Vec<String>,
    /// /proc/sys/user/max_user_namespaces > 0.
    pub user_namespaces: bool,
    /// The image and container store, and the runtime state.
    pub data: Option<PathFacts>,
    pub run: Option<PathFacts>,
    /// Whether the store is on a file system of its own (not the root's).
    pub separate_partition: bool,
    /// Configuration: /etc/estiba and the user's, and the files in them.
    pub config: Vec<PathFacts>,
    /// Registry credentials (docker's config.json, or REGISTRY_AUTH_FILE).
    pub credentials: Option<PathFacts>,
    /// Private keys: the control plane's sealing key, TLS keys listeners name.
    pub keys: Vec<PathFacts>,
    /// Certificates listeners name.
    pub certificates: Vec<PathFacts>,
    pub listeners: Vec<Listener>,
    /// Registries configured without TLS (`insecure = true`).
    pub insecure_registries: Vec<String>,
    /// The paths auditd watches; None when auditd's rules cannot be read.
    pub audit_watches: Option<Vec<String>>,
    /// The estiba binary, for the audit-watch check.
    pub binary: String,
}

fn at(what: &str) -> Location {
    Location::Config { field: what.into() }
}

pub fn audit(f: &HostFacts) -> Vec<Finding> {
    let target = Target::new(TargetKind::Host, "host");
    let mut out = Vec::new();
    let mut found = |id: &str, what: &str, message: String| {
        out.push(Finding::new(id, &target, at(what), message));
    };
    stores(f, &mut found);
    files(f, &mut found);
    if !f.rootless {
        found(
            "ESB-H-007",
            "userns",
            "estiba runs as root: containers' uid 0 is the host's".into(),
        );
    }
    if !f.user_namespaces {
        found(
            "ESB-H-008",
            "userns",
            "user namespaces are disabled (max_user_namespaces is 0): rootless cannot work".into(),
        );
    }
    if f.cgroup != "v2" {
        let m = format!(
            "cgroup {}: limits of rootless containers cannot be delegated",
            f.cgroup
        );
        found("ESB-H-009", "cgroup", m);
    }
    for r in &f.insecure_registries {
        found(
            "ESB-H-010",
            "registries",
            format!("{r} is configured without TLS"),
        );
    }
    for l in &f.listeners {
        if !l.tls {
            let m = format!(
                "{} (pid {}) listens on {} without TLS",
                l.role, l.pid, l.address
            );
            found("ESB-H-011", "listeners", m);
        }
        if matches!(l.log_level.as_deref(), Some("debug" | "trace")) {
            let m = format!(
                "{} (pid {}) logs at {}",
                l.role,
                l.pid,
                l.log_level.as_deref().unwrap_or_default()
            );
            found("ESB-H-012", "log-level", m);
        }
    }
    match &f.audit_watches {
        None => found(
            "ESB-H-013",
            "auditd",
            "auditd's rules cannot be read: nothing audits estiba".into(),
        ),
        Some(watches) => {
            let wanted =
                std::iter::once(f.binary.as_str()).chain(f.data.as_ref().map(|d| d.path.as_str()));
            for path in wanted {
                if !watches.iter().any(|w| w == path) {
                    found(
                        "ESB-H-013",
                        "auditd",
                        format!("auditd does not watch {path}"),
                    );
                }
            }
        }
    }
    facts(f, &mut found);
    out
}

fn stores(f: &HostFacts, found: &mut impl FnMut(&str, &str, String)) {
    for p in [&f.data, &f.run].into_iter().flatten() {
        if p.mode & 0o022 != 0 || p.uid != f.uid {
            let m = format!(
                "{} is mode {:o}, owner {}: others may change it",
                p.path,
                p.mode & 0o7777,
                p.uid
            );
            found("ESB-H-001", "store", m);
        } else if p.mode & 0o001 != 0 {
            let m = format!(
                "{} is mode {:o}: anyone may enter it",
                p.path,
                p.mode & 0o7777
            );
            found("ESB-H-001", "store", m);
        }
    }
    if f.data.is_some() && !f.separate_partition {
        let path = f.data.as_ref().map(|d| d.path.clone()).unwrap_or_default();
        found(
            "ESB-H-002",
            "store",
            format!("{path} shares the root file system"),
        );
    }
}

fn files(f: &HostFacts, found: &mut impl FnMut(&str, &str, String)) {
    for c in f.config.iter().filter(|c| c.uid != f.uid && c.uid != 0) {
        found(
            "ESB-H-003",
            "config",
            format!("{} is owned by uid {}", c.path, c.uid),
        );
    }
    // Each kind of file, the mode bits it must not have, and why.
    let kinds: [(&[PathFacts], u32, &str, &str, &str); 4] = [
        (
            &f.config,
            0o022,
            "ESB-H-003",
            "config",
            "others may change it",
        ),
        (
            &f.keys,
            0o077,
            "ESB-H-004",
            "keys",
            "a private key must be 0600 or 0400",
        ),
        (
            &f.certificates,
            0o022,
            "ESB-H-005",
            "certificates",
            "others may replace it",
        ),
        (
            f.credentials.as_slice(),
            0o077,
            "ESB-H-006",
            "credentials",
            "registry passwords readable by others",
        ),
    ];
    for (paths, forbidden, id, what, why) in kinds {
        for p in paths.iter().filter(|p| p.mode & forbidden != 0) {
            found(
                id,
                what,
                format!("{} is mode {:o}: {why}", p.path, p.mode & 0o7777),
            );
        }
    }
}

/// The manual controls, reported as facts (INFO).
fn facts(f: &HostFacts, found: &mut impl FnMut(&str, &str, String)) {
    let lsm = if f.lsm.is_empty() {
        "none".to_string()
    } else {
        f.lsm.join(",")
    };
    found(
        "ESB-H-014",
        "kernel",
        format!(
            "kernel {}, security modules {lsm}, cgroup {}",
            f.kernel, f.cgroup
        ),
    );
    found(
        "ESB-H-015",
        "live-restore",
        "estiba has no daemon: each container's monitor keeps it running while estiba is not"
            .into(),
    );
    found(
        "ESB-H-016",
        "defaults",
        "containers get Docker's seccomp profile and no-new-privileges unless a flag turns them off".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn careful() -> HostFacts {
        HostFacts {
            rootless: true,
            uid: 1000,
            cgroup: "v2".into(),
            kernel: "6.1.0".into(),
            lsm: vec!["apparmor".into()],
            user_namespaces: true,
            data: Some(PathFacts {
                path: "/srv/estiba".into(),
                uid: 1000,
                mode: 0o700,
                is_dir: true,
            }),
            run: Some(PathFacts {
                path: "/run/user/1000/estiba".into(),
                uid: 1000,
                mode: 0o700,
                is_dir: true,
            }),
            separate_partition: true,
            config: vec![PathFacts {
                path: "/etc/estiba/policy.toml".into(),
                uid: 0,
                mode: 0o644,
                is_dir: false,
            }],
            credentials: Some(PathFacts {
                path: "/home/u/.docker/config.json".into(),
                uid: 1000,
                mode: 0o600,
                is_dir: false,
            }),
            keys: vec![PathFacts {
                path: "/srv/cluster/seal.key".into(),
                uid: 1000,
                mode: 0o600,
                is_dir: false,
            }],
            certificates: vec![],
            listeners: vec![Listener {
                role: "cluster serve".into(),
                pid: 10,
                address: "10.0.0.1:8440".into(),
                tls: true,
                log_level: None,
            }],
            insecure_registries: vec![],
            audit_watches: Some(vec!["/usr/bin/estiba".into(), "/srv/estiba".into()]),
            binary: "/usr/bin/estiba".into(),
        }
    }

    fn ids(f: &HostFacts) -> Vec<&'static str> {
        let mut v: Vec<&str> = audit(f)
            .iter()
            .filter(|f| f.rule.severity > crate::Severity::Info)
            .map(|f| f.rule.id)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn a_careful_host_has_only_facts() {
        assert_eq!(ids(&careful()), Vec::<&str>::new());
        let facts: Vec<&str> = audit(&careful()).iter().map(|f| f.rule.id).collect();
        assert_eq!(facts, ["ESB-H-014", "ESB-H-015", "ESB-H-016"]);
    }

    #[test]
    fn each_lapse_names_its_rule() {
        let mut f = careful();
        f.rootless = false;
        f.user_namespaces = false;
        f.cgroup = "hybrid".into();
        f.data.as_mut().unwrap().mode = 0o777;
        f.separate_partition = false;
        f.config[0].mode = 0o666;
        f.keys[0].mode = 0o644;
        f.certificates.push(PathFacts {
            path: "/srv/tls.crt".into(),
            uid: 1000,
            mode: 0o666,
            is_dir: false,
        });
        f.credentials.as_mut().unwrap().mode = 0o644;
        f.insecure_registries.push("registry.lan:5000".into());
        f.listeners[0].tls = false;
        f.listeners[0].log_level = Some("debug".into());
        f.audit_watches = None;
        let want: Vec<String> = (1..=13).map(|n| format!("ESB-H-{n:03}")).collect();
        assert_eq!(ids(&f), want);
    }
}
