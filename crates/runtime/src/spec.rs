//! OCI runtime spec generation with secure defaults.
//!
//! Defaults, and why:
//! - new pid, mount, uts, ipc and cgroup namespaces, and a network namespace
//!   unless the host network is asked for;
//! - podman's 11 capabilities, no inheritable or ambient ones, so a non-root
//!   user in the container ends up with none after `execve`;
//! - `no_new_privileges` and Docker's seccomp profile;
//! - /proc and /sys paths masked or read-only as docker and podman do;
//! - a minimal /dev, and only the usual devices allowed by the cgroup;
//! - a pids limit, and rlimits clamped to the host's hard limits (podman
//!   fails on hosts with lower hard limits than its defaults).

use std::path::PathBuf;

use oci_spec::runtime::Spec;
use rustix::process::Resource;
use serde_json::{json, Value};

use crate::host::{clamp_rlimit, Host};
use crate::seccomp;
use crate::Error;

/// podman's default capability set.
pub const DEFAULT_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Every capability Linux 6.x knows, for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The pids limit a container gets unless told otherwise (podman's).
pub const DEFAULT_PIDS_LIMIT: i64 = 2048;
/// docker's and podman's /dev/shm: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// On disk (in a container's record): `{"Mode": "default"}`, or
/// `{"Mode": "profile", "Profile": "…JSON…"}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "Mode", content = "Profile", rename_all = "lowercase")]
pub enum Seccomp {
    Default,
    Unconfined,
    /// A profile in Docker's (or OCI's) JSON format.
    Profile(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// A new, empty network namespace (loopback only).
    None,
    Host,
}

#[derive(Clone, Debug)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// A tmpfs mounted in the container (`--tmpfs`, `--mount type=tmpfs`).
#[derive(Clone, Debug)]
pub struct TmpfsMount {
    pub destination: String,
    /// Mount options such as `size=64m`; nosuid, nodev and noexec are added.
    pub options: Vec<String>,
}

/// Resource limits; `None` means no limit.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    /// Process limits over the defaults (`--ulimit`, ECS `ulimits`).
    pub rlimits: Vec<Rlimit>,
    /// A relative CPU weight (`--cpu-shares`; 1024 is one share).
    pub cpu_shares: Option<u64>,
    /// A soft memory limit, reclaimed towards under pressure.
    pub memory_reservation: Option<i64>,
    /// Memory plus swap (`--memory-swap`); -1 for unlimited swap. Without
    /// it a memory limit allows no swap.
    pub memory_swap: Option<i64>,
    /// How eagerly the kernel swaps the container's pages out (0–100).
    pub swappiness: Option<u64>,
}

impl Limits {
    /// The flags asked for, by name, for a warning when none can apply.
    fn asked(&self) -> Vec<&'static str> {
        [
            self.memory.map(|_| "--memory"),
            self.cpus.map(|_| "--cpus"),
            self.pids.map(|_| "--pids-limit"),
            self.cpu_shares.map(|_| "--cpu-shares"),
            self.memory_reservation.map(|_| "--memory-reservation"),
            self.memory_swap.map(|_| "--memory-swap"),
            self.swappiness.map(|_| "--memory-swappiness"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A host device made available inside (`--device`, ECS `devices`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `c` or `b`, with the host node's numbers.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// The node on the host, bound in where no node can be made (rootless).
    pub host_path: PathBuf,
    /// Where it appears inside.
    pub path: String,
    /// What the cgroup allows: some of `r`, `w` and `m`.
    pub access: String,
    pub file_mode: u32,
}

/// Which of the host's own namespaces the container shares instead of
/// getting a new one (`--pid host`, `--ipc host`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostNamespaces {
    pub pid: bool,
    pub ipc: bool,
}

/// One process limit: `RLIMIT_NOFILE` and its soft and hard values.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rlimit {
    /// `nofile`, `nproc`, `core`, … (as `ulimit` and ECS name them).
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The rlimit names the OCI spec knows, as `ulimit` spells them.
const RLIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl Rlimit {
    /// Checks the name and that soft is not above hard.
    pub fn check(&self) -> Result<(), String> {
        if !RLIMITS.contains(&self.name.as_str()) {
            return Err(format!(
                "unknown ulimit {:?}: one of {}",
                self.name,
                RLIMITS.join(", ")
            ));
        }
        if self.soft > self.hard {
            return Err(format!(
                "ulimit {}: the soft limit {} is above the hard limit {}",
                self.name, self.soft, self.hard
            ));
        }
        Ok(())
    }

    fn kind(&self) -> String {
        format!("RLIMIT_{}", self.name.to_ascii_uppercase())
    }
}

/// Everything a container's spec is built from, already resolved against
/// the image config (command, user and environment).
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub id: String,
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    pub privileged: bool,
    pub limits: Limits,
    pub network: Network,
    /// Namespaces to join instead of creating (`network`, `ipc`, `uts`,
    /// `pid`), by path: how a pod's containers share its namespaces.
    pub join: Vec<(String, PathBuf)>,
    pub mounts: Vec<BindMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Generated /etc/hostname, /etc/hosts and /etc/resolv.conf.
    pub etc_files: Vec<BindMount>,
    /// The size of /dev/shm in bytes (`--shm-size`; 64 MiB when unset).
    pub shm_size: Option<i64>,
    /// Namespaced kernel parameters (`--sysctl`), checked by the caller.
    pub sysctls: std::collections::BTreeMap<String, String>,
    pub devices: Vec<Device>,
    pub host_namespaces: HostNamespaces,
    /// A pseudo-terminal for the process (`-t`): the runtime hands its
    /// master to the caller's console socket.
    pub terminal: bool,
}

/// Normalises `net_admin` / `NET_ADMIN` / `CAP_NET_ADMIN` to `CAP_NET_ADMIN`.
pub fn cap_name(raw: &str) -> Result<String, Error> {
    let upper = raw.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(Error::InvalidOption {
            what: "capability",
            value: raw.to_string(),
            why: "unknown capability".into(),
        })
    }
}

/// The capabilities this process may still pass on: its bounding set
/// (`CapBnd` in /proc/self/status), bit N for capability N. All of them
/// if it cannot be read.
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// "Every capability", as far as `bounding` allows: a host (or an outer
/// container) that dropped one cannot hand it on, and asking for it makes
/// the runtime's capset fail. podman grants the same intersection.
fn all_caps(bounding: u64) -> Vec<String> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The container's capability set after `--privileged`, `--cap-drop` and `--cap-add`.
pub fn capabilities(cfg: &RunConfig) -> Result<Vec<String>, Error> {
    capabilities_within(cfg, bounding_set())
}

fn capabilities_within(cfg: &RunConfig, bounding: u64) -> Result<Vec<String>, Error> {
    let mut caps: Vec<String> = if cfg.privileged {
        all_caps(bounding)
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    for drop in &cfg.cap_drop {
        let drop = cap_name(drop)?;
        if drop == "ALL" {
            caps.clear();
        } else {
            caps.retain(|c| *c != drop);
        }
    }
    for add in &cfg.cap_add {
        let add = cap_name(add)?;
        if add == "ALL" {
            caps = all_caps(bounding);
        } else if !caps.contains(&add) {
            caps.push(add);
        }
    }
    Ok(caps)
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": kind, "source": source, "options": options })
}

fn mounts(cfg: &RunConfig, host: &Host) -> Vec<Value> {
    let sys_ro = if cfg.privileged { "rw" } else { "ro" };
    // procfs is mounted by the owner of the pid namespace only: rootless
    // with the host's, the host's /proc is bound instead.
    let proc = if host.rootless && cfg.host_namespaces.pid {
        mount(
            "/proc",
            "bind",
            "/proc",
            &["rbind", "nosuid", "noexec", "nodev"],
        )
    } else {
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])
    };
    let mut m = vec![
        proc,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ];
    // gid 5 (tty) exists inside only when more than our own id is mapped.
    let mut pts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if host.mapped_ids > 5 {
        pts.push("gid=5");
    }
    m.push(mount("/dev/pts", "devpts", "devpts", &pts));
    if cfg.host_namespaces.ipc {
        // The host's IPC namespace comes with the host's shared memory, as
        // docker's --ipc host.
        m.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "nosuid", "noexec", "nodev"],
        ));
    } else {
        let size = format!("size={}", cfg.shm_size.unwrap_or(DEFAULT_SHM_SIZE));
        m.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &size],
        ));
    }
    // mqueue is mounted by the owner of the IPC namespace only.
    if !(host.rootless && cfg.host_namespaces.ipc) {
        m.push(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ));
    }
    // sysfs can be mounted only by the owner of the network namespace: with
    // the host network, a rootless container gets a read-only bind instead.
    if host.rootless && cfg.network == Network::Host {
        m.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        m.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ));
        if !host.rootless {
            m.push(mount(
                "/sys/fs/cgroup",
                "cgroup",
                "cgroup",
                &["nosuid", "noexec", "nodev", "relatime", sys_ro],
            ));
        }
    }
    for b in cfg.etc_files.iter().chain(&cfg.mounts) {
        let mut opts = vec!["rbind", "rprivate"];
        if b.read_only {
            opts.push("ro");
        }
        m.push(json!({
            "destination": b.destination,
            "type": "bind",
            "source": b.source,
            "options": opts,
        }));
    }
    // A user namespace cannot make device nodes: the host's are bound in,
    // as podman does (runc would bind the container's path from the host).
    if host.rootless {
        for d in &cfg.devices {
            m.push(json!({
                "destination": d.path,
                "type": "bind",
                "source": d.host_path,
                "options": ["rbind", "rprivate", "nosuid", "noexec"],
            }));
        }
    }
    for t in &cfg.tmpfs {
        let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        opts.extend(t.options.iter().cloned());
        m.push(json!({ "destination": t.destination, "type": "tmpfs", "source": "tmpfs", "options": opts }));
    }
    m
}

/// Resources the cgroup will enforce. Rootless without delegation, limits
/// cannot be applied: each one asked for is reported, none silently dropped.
fn resources(cfg: &RunConfig, host: &Host, warnings: &mut Vec<String>) -> Value {
    let limits = &cfg.limits;
    let pids = limits.pids.unwrap_or(DEFAULT_PIDS_LIMIT);
    if !host.can_limit_resources() {
        let asked = limits.asked();
        if !asked.is_empty() {
            warnings.push(format!(
                "{} ignored: this host does not delegate cgroup controllers to rootless users ({:?} cgroups)",
                asked.join(", "),
                host.cgroup
            ));
        }
        return Value::Null;
    }
    let mut r = json!({
        "devices": device_rules(cfg.privileged, &cfg.devices),
    });
    if pids > 0 {
        r["pids"] = json!({ "limit": pids });
    }
    let mut memory = serde_json::Map::new();
    if let Some(mem) = limits.memory {
        memory.insert("limit".into(), json!(mem));
    }
    if host.has_memsw() {
        // A limit alone allows no swap; --memory-swap sets the total.
        if let Some(total) = limits.memory_swap.or(limits.memory) {
            memory.insert("swap".into(), json!(total));
        }
    } else if limits.memory_swap.is_some() {
        warnings.push("--memory-swap ignored: this kernel does not account swap".into());
    }
    if let Some(soft) = limits.memory_reservation {
        memory.insert("reservation".into(), json!(soft));
    }
    if let Some(s) = limits.swappiness {
        memory.insert("swappiness".into(), json!(s));
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(cpus) = limits.cpus {
        let period: u64 = 100_000;
        // Rounded to whole microseconds; 1 ms is the kernel's minimum quota.
        let quota = ((cpus * period as f64).round() as i64).max(1000);
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(period));
    }
    if let Some(shares) = limits.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    r
}

fn device_rules(privileged: bool, devices: &[Device]) -> Value {
    if privileged {
        return json!([{ "allow": true, "access": "rwm" }]);
    }
    let mut rules = vec![json!({ "allow": false, "access": "rwm" })];
    for (kind, major, minor) in [
        ("c", 1, 3),
        ("c", 1, 5),
        ("c", 1, 7),
        ("c", 1, 8),
        ("c", 1, 9),
        ("c", 5, 0),
        ("c", 5, 1),
        ("c", 5, 2),
    ] {
        rules.push(
            json!({ "allow": true, "type": kind, "major": major, "minor": minor, "access": "rwm" }),
        );
    }
    rules.push(json!({ "allow": true, "type": "c", "major": 136, "access": "rwm" }));
    rules.push(json!({ "allow": true, "type": "c", "access": "m" }));
    rules.push(json!({ "allow": true, "type": "b", "access": "m" }));
    for d in devices {
        rules.push(json!({
            "allow": true,
            "type": d.kind.to_string(),
            "major": d.major,
            "minor": d.minor,
            "access": d.access,
        }));
    }
    Value::Array(rules)
}

/// The defaults (clamped to the host's hard limits), with the container's
/// own limits over them.
fn rlimits(given: &[Rlimit]) -> Value {
    let nofile = clamp_rlimit(Resource::Nofile, 1_048_576);
    let nproc = clamp_rlimit(Resource::Nproc, 4_194_304);
    let mut out = vec![
        json!({ "type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile }),
        json!({ "type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc }),
    ];
    for r in given {
        let kind = r.kind();
        out.retain(|v| v["type"] != kind.as_str());
        out.push(json!({ "type": kind, "hard": r.hard, "soft": r.soft }));
    }
    Value::Array(out)
}

/// Builds the OCI spec. Warnings (limits the host cannot apply) are returned
/// for the caller to show.
pub fn build(cfg: &RunConfig, host: &Host, arch: &str) -> Result<(Spec, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let caps = capabilities(cfg)?;
    let joined = |t: &str| {
        cfg.join
            .iter()
            .find(|(kind, _)| kind == t)
            .map(|(_, p)| p.clone())
    };
    let mut kinds = vec!["uts", "mount", "cgroup"];
    if !cfg.host_namespaces.pid {
        kinds.push("pid");
    }
    if !cfg.host_namespaces.ipc {
        kinds.push("ipc");
    }
    if cfg.network == Network::None || joined("network").is_some() {
        kinds.push("network");
    }
    let namespaces: Vec<Value> = kinds
        .into_iter()
        .map(|t| match joined(t) {
            Some(path) => json!({ "type": t, "path": path }),
            None => json!({ "type": t }),
        })
        .collect();
    // The hostname belongs to a UTS namespace we create, not one we join.
    let hostname = if joined("uts").is_some() {
        None
    } else {
        Some(cfg.hostname.clone())
    };
    let mut linux = json!({
        "namespaces": namespaces,
    });
    if !cfg.sysctls.is_empty() {
        linux["sysctl"] = json!(cfg.sysctls);
    }
    if !cfg.devices.is_empty() && !host.rootless {
        linux["devices"] = cfg
            .devices
            .iter()
            .map(|d| {
                json!({
                    "path": d.path,
                    "type": d.kind.to_string(),
                    "major": d.major,
                    "minor": d.minor,
                    "fileMode": d.file_mode,
                    "uid": 0,
                    "gid": 0,
                })
            })
            .collect();
    }
    if !cfg.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let resources = resources(cfg, host, &mut warnings);
    if !resources.is_null() {
        linux["resources"] = resources;
        linux["cgroupsPath"] = json!(format!("/estiba/{}", cfg.id));
    }
    let seccomp = match (&cfg.seccomp, cfg.privileged) {
        (Seccomp::Unconfined, _) | (Seccomp::Default, true) => None,
        (Seccomp::Default, false) => Some(seccomp::default_profile(&seccomp::Target {
            arch,
            caps: &caps,
            kernel: host.kernel(),
        })?),
        (Seccomp::Profile(p), _) => Some(seccomp::resolve(
            p,
            &seccomp::Target {
                arch,
                caps: &caps,
                kernel: host.kernel(),
            },
        )?),
    };
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.terminal,
            "user": { "uid": cfg.uid, "gid": cfg.gid, "additionalGids": cfg.additional_gids },
            "args": cfg.args,
            "env": cfg.env,
            "cwd": cfg.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": [],
                "ambient": [],
            },
            "rlimits": rlimits(&cfg.limits.rlimits),
            "noNewPrivileges": cfg.no_new_privileges,
        },
        "root": { "path": cfg.rootfs, "readonly": cfg.read_only },
        "hostname": hostname,
        "mounts": mounts(cfg, host),
        "linux": linux,
    });
    let spec: Spec = serde_json::from_value(spec).map_err(|e| Error::InvalidOption {
        what: "runtime spec",
        value: String::new(),
        why: e.to_string(),
    })?;
    Ok((spec, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::CgroupMode;

    #[test]
    fn privileged_and_cap_add_all_stay_within_the_bounding_set() {
        let mut c = cfg();
        c.privileged = true;
        let all = capabilities_within(&c, u64::MAX).unwrap();
        assert_eq!(all.len(), ALL_CAPS.len());
        // A host without CAP_SYS_RESOURCE (bit 24), as some VMs are.
        let without = capabilities_within(&c, !(1u64 << 24)).unwrap();
        assert_eq!(without.len(), ALL_CAPS.len() - 1);
        assert!(!without.iter().any(|c| c == "CAP_SYS_RESOURCE"));
        c.privileged = false;
        c.cap_add = vec!["ALL".into()];
        assert!(!capabilities_within(&c, !(1u64 << 24))
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_RESOURCE"));
    }

    fn cfg() -> RunConfig {
        RunConfig {
            id: "c1".into(),
            rootfs: "/tmp/rootfs".into(),
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "c1".into(),
            read_only: false,
            cap_add: vec![],
            cap_drop: vec![],
            no_new_privileges: true,
            seccomp: Seccomp::Default,
            privileged: false,
            limits: Limits::default(),
            network: Network::None,
            mounts: vec![],
            tmpfs: vec![],
            join: vec![],
            etc_files: vec![],
            shm_size: None,
            sysctls: Default::default(),
            devices: vec![],
            host_namespaces: HostNamespaces::default(),
            terminal: false,
        }
    }

    fn host(rootless: bool) -> Host {
        Host {
            rootless,
            host_uid: 1000,
            mapped_ids: 65537,
            cgroup: CgroupMode::Hybrid,
            kernel_release: "6.1.0".into(),
        }
    }

    fn to_json(spec: &Spec) -> Value {
        serde_json::to_value(spec).unwrap()
    }

    #[test]
    fn secure_defaults() {
        let (spec, warnings) = build(&cfg(), &host(false), "amd64").unwrap();
        assert!(warnings.is_empty());
        let v = to_json(&spec);
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 11);
        assert!(v["process"]["capabilities"]["ambient"]
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(v["process"]["noNewPrivileges"], true);
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        for want in ["pid", "ipc", "uts", "mount", "cgroup", "network"] {
            assert!(ns.contains(&want), "{want} namespace missing");
        }
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], DEFAULT_PIDS_LIMIT);
        assert!(v["linux"]["seccomp"]["syscalls"].as_array().unwrap().len() > 10);
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
    }

    #[test]
    fn flags_change_the_spec() {
        let mut c = cfg();
        c.cap_drop = vec!["ALL".into()];
        c.cap_add = vec!["net_admin".into()];
        c.seccomp = Seccomp::Unconfined;
        c.network = Network::Host;
        c.limits = Limits {
            memory: Some(32 << 20),
            cpus: Some(0.5),
            pids: Some(20),
            rlimits: vec![Rlimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200,
            }],
            ..Limits::default()
        };
        let v = to_json(&build(&c, &host(false), "amd64").unwrap().0);
        assert!(
            v["process"]["rlimits"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100})),
            "{}",
            v["process"]["rlimits"]
        );
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            json!(["CAP_NET_ADMIN"])
        );
        assert!(v["linux"]["seccomp"].is_null());
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 32 << 20);
        assert!(!v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        assert!(cap_name("CAP_BOGUS").is_err());
    }

    #[test]
    fn tuning_flags_reach_the_spec() {
        let mut c = cfg();
        c.limits = Limits {
            memory: Some(64 << 20),
            cpu_shares: Some(512),
            memory_reservation: Some(32 << 20),
            memory_swap: Some(96 << 20),
            swappiness: Some(10),
            ..Limits::default()
        };
        c.shm_size = Some(8 << 20);
        c.sysctls
            .insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        c.devices.push(Device {
            kind: 'c',
            major: 1,
            minor: 3,
            host_path: "/dev/null".into(),
            path: "/dev/other-null".into(),
            access: "rw".into(),
            file_mode: 0o666,
        });
        c.host_namespaces = HostNamespaces {
            pid: true,
            ipc: true,
        };
        let mut root = host(false);
        root.cgroup = crate::host::CgroupMode::V2;
        let v = to_json(&build(&c, &root, "amd64").unwrap().0);
        let r = &v["linux"]["resources"];
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["memory"]["reservation"], 32 << 20);
        assert_eq!(r["memory"]["swap"], 96 << 20);
        assert_eq!(r["memory"]["swappiness"], 10);
        assert_eq!(
            v["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
            "0"
        );
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/other-null");
        assert!(r["devices"].as_array().unwrap().contains(
            &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        ));
        let kinds: Vec<&Value> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| &n["type"])
            .collect();
        assert!(!kinds.contains(&&json!("pid")) && !kinds.contains(&&json!("ipc")));
        let shm_of = |v: &Value| {
            v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == "/dev/shm")
                .unwrap()
                .clone()
        };
        assert_eq!(
            shm_of(&v)["type"],
            "bind",
            "the host's /dev/shm with its IPC"
        );
        c.host_namespaces = HostNamespaces::default();
        let shm = shm_of(&to_json(&build(&c, &root, "amd64").unwrap().0));
        assert!(shm["options"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("size={}", 8 << 20))));
    }

    #[test]
    fn rootless_on_v1_warns_about_limits() {
        let mut c = cfg();
        c.limits.memory = Some(1 << 20);
        let (spec, warnings) = build(&c, &host(true), "amd64").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("--memory"));
        assert!(to_json(&spec)["linux"]["resources"].is_null());
    }
}
