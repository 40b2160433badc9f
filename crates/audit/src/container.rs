//! Container checks: CIS 5.x on a container's settings, as `estiba run`
//! asks for them or as `estiba inspect` records them. The engine maps its
//! own options into [`Facts`], so this crate needs none of the engine.

use crate::catalog::TargetKind;
use crate::finding::{Finding, Location, Target};

/// A bind mount: where from on the host, where to in the container.
#[derive(Clone, Debug, Default)]
pub struct Bind {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

/// A published port.
#[derive(Clone, Debug)]
pub struct Published {
    /// The host address it listens on; `0.0.0.0` for all.
    pub host_ip: String,
    pub host_port: u16,
}

/// `--restart`, as docker-bench reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    #[default]
    No,
    /// At most this many retries; 0 is no limit.
    OnFailure(u32),
    Always,
    UnlessStopped,
}

/// What the checks need to know about one container.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Its name (or, before it exists, the image it is run from).
    pub name: String,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    /// The user the process runs as: `--user`, else the image's.
    pub user: String,
    pub read_only: bool,
    pub memory: Option<i64>,
    /// `--cpus` or `--cpu-shares` given.
    pub cpu_limited: bool,
    pub pids_limit: Option<i64>,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub binds: Vec<Bind>,
    pub published: Vec<Published>,
    pub devices: Vec<String>,
    pub seccomp_unconfined: bool,
    pub no_new_privileges: bool,
    pub restart: Restart,
    pub health_check: bool,
    /// The command names running in it, when it runs (`estiba top`).
    pub processes: Vec<String>,
}

/// Docker's default capabilities (CIS 5.4 flags what is added beyond them).
const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Whether a capability is beyond Docker's defaults (`ALL` is).
pub fn beyond_default(cap: &str) -> bool {
    let upper = cap.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    !DEFAULT_CAPS.contains(&bare)
}

/// Host directories a container must not see (CIS 5.6's list), and the
/// host root itself.
pub fn sensitive_host_path(path: &str) -> bool {
    const SENSITIVE: &[&str] = &["/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr"];
    let p = path.trim_end_matches('/');
    p.is_empty()
        || SENSITIVE
            .iter()
            .any(|s| p == *s || p.starts_with(&format!("{s}/")))
}

/// The estiba, docker, podman or containerd socket, or a directory that
/// holds one (CIS 5.32).
pub fn engine_socket(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    let name = p.rsplit('/').next().unwrap_or(p);
    [
        "docker.sock",
        "estiba.sock",
        "podman.sock",
        "containerd.sock",
    ]
    .contains(&name)
        || [
            "/run",
            "/var/run",
            "/run/docker",
            "/run/estiba",
            "/run/podman",
            "/run/containerd",
        ]
        .contains(&p)
}

pub fn audit(f: &Facts) -> Vec<Finding> {
    let target = Target::new(TargetKind::Container, f.name.clone());
    let mut out = Vec::new();
    let mut found = |id: &str, field: &str, message: String| {
        let location = Location::Config {
            field: field.into(),
        };
        out.push(Finding::new(id, &target, location, message));
    };
    if f.privileged {
        found(
            "ESB-C-001",
            "privileged",
            "the container is privileged".into(),
        );
    }
    for cap in f.cap_add.iter().filter(|c| beyond_default(c)) {
        found("ESB-C-002", "cap_add", format!("adds {cap}"));
    }
    for b in &f.binds {
        if engine_socket(&b.source) {
            let m = format!("{} is bound in at {}", b.source, b.destination);
            found("ESB-C-004", "mounts", m);
        } else if sensitive_host_path(&b.source) {
            let ro = if b.read_only { " (read-only)" } else { "" };
            let m = format!(
                "the host's {} is bound in at {}{ro}",
                b.source, b.destination
            );
            found("ESB-C-003", "mounts", m);
        }
    }
    for (on, id, what) in [
        (f.host_network, "ESB-C-005", "network"),
        (f.host_pid, "ESB-C-006", "process"),
        (f.host_ipc, "ESB-C-007", "IPC"),
    ] {
        if on {
            found(id, what, format!("shares the host's {what} namespace"));
        }
    }
    for p in &f.published {
        if p.host_port < 1024 {
            found(
                "ESB-C-008",
                "publish",
                format!("host port {} is privileged", p.host_port),
            );
        }
        if p.host_ip == "0.0.0.0" || p.host_ip == "::" {
            let m = format!("host port {} listens on every interface", p.host_port);
            found("ESB-C-009", "publish", m);
        }
    }
    limits(f, &mut found);
    if !f.devices.is_empty() {
        let m = format!("host devices: {}", f.devices.join(", "));
        found("ESB-C-014", "devices", m);
    }
    if f.seccomp_unconfined {
        found("ESB-C-015", "security_opt", "seccomp=unconfined".into());
    }
    if !f.no_new_privileges {
        found(
            "ESB-C-016",
            "security_opt",
            "no-new-privileges is off".into(),
        );
    }
    if !f.health_check {
        found("ESB-C-017", "health", "no health check".into());
    }
    if crate::containerfile::is_root(&f.user) {
        let shown = if f.user.is_empty() {
            "root (unset)"
        } else {
            &f.user
        };
        found("ESB-C-018", "user", format!("runs as {shown}"));
    }
    if f.processes.iter().any(|p| p == "sshd") {
        found("ESB-C-019", "processes", "sshd is running".into());
    }
    out
}

fn limits(f: &Facts, found: &mut impl FnMut(&str, &str, String)) {
    if f.memory.is_none_or(|m| m <= 0) {
        found("ESB-C-010", "memory", "no memory limit".into());
    }
    if !f.cpu_limited {
        found("ESB-C-011", "cpus", "no CPU limit or shares".into());
    }
    if f.pids_limit.is_none_or(|p| p <= 0) {
        found("ESB-C-012", "pids_limit", "no pids limit".into());
    }
    if !f.read_only {
        found(
            "ESB-C-013",
            "read_only",
            "the root file system is writable".into(),
        );
    }
    match f.restart {
        Restart::Always | Restart::UnlessStopped => {
            found("ESB-C-020", "restart", "restarts without a limit".into())
        }
        Restart::OnFailure(n) if n == 0 || n > 5 => {
            let m = format!(
                "on-failure with {} retries",
                if n == 0 {
                    "unlimited".into()
                } else {
                    n.to_string()
                }
            );
            found("ESB-C-020", "restart", m)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(f: &Facts) -> Vec<&'static str> {
        let mut v: Vec<&str> = audit(f).iter().map(|f| f.rule.id).collect();
        v.sort();
        v.dedup();
        v
    }

    fn careful() -> Facts {
        Facts {
            name: "web".into(),
            user: "1000".into(),
            read_only: true,
            memory: Some(256 << 20),
            cpu_limited: true,
            pids_limit: Some(100),
            no_new_privileges: true,
            health_check: true,
            restart: Restart::OnFailure(5),
            published: vec![Published {
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
            }],
            binds: vec![Bind {
                source: "/srv/web".into(),
                destination: "/data".into(),
                read_only: false,
            }],
            cap_add: vec!["NET_BIND_SERVICE".into()],
            ..Facts::default()
        }
    }

    #[test]
    fn a_careful_container_has_no_findings() {
        assert_eq!(ids(&careful()), Vec::<&str>::new());
    }

    #[test]
    fn each_setting_names_its_rule() {
        let mut f = careful();
        f.privileged = true;
        f.cap_add.push("cap_sys_admin".into());
        f.binds.push(Bind {
            source: "/etc".into(),
            destination: "/host-etc".into(),
            read_only: true,
        });
        f.binds.push(Bind {
            source: "/run/user/1000/estiba/estiba.sock".into(),
            destination: "/sock".into(),
            read_only: false,
        });
        f.host_network = true;
        f.host_pid = true;
        f.host_ipc = true;
        f.published = vec![Published {
            host_ip: "0.0.0.0".into(),
            host_port: 80,
        }];
        f.memory = None;
        f.cpu_limited = false;
        f.pids_limit = None;
        f.read_only = false;
        f.devices = vec!["/dev/fuse".into()];
        f.seccomp_unconfined = true;
        f.no_new_privileges = false;
        f.health_check = false;
        f.user = "0:0".into();
        f.processes = vec!["sshd".into()];
        f.restart = Restart::Always;
        let want: Vec<String> = (1..=20).map(|n| format!("ESB-C-{n:03}")).collect();
        assert_eq!(ids(&f), want);
    }
}
