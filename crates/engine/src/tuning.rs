//! What a container asks of the kernel beyond the defaults: CPU weight,
//! soft memory limits and swap, the size of /dev/shm, namespaced sysctls,
//! host devices, and the host's own pid or IPC namespace.
//!
//! Parsed once from docker's flags (`--cpu-shares`, `--memory-reservation`,
//! `--memory-swap`, `--memory-swappiness`, `--shm-size`, `--sysctl`,
//! `--device`, `--pid`, `--ipc`) or set by a library caller (the node
//! agent, from an ECS task definition); checked against each other by
//! `validate`; resolved into the runtime spec at each start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use estiba_runtime::spec;
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use crate::record::CreateOptions;
use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// A relative CPU weight (1024 is docker's default share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// A soft memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes, -1 for unlimited swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// The size of /dev/shm in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceSpec>,
    #[serde(default, skip_serializing_if = "NamespaceMode::is_private")]
    pub pid: NamespaceMode,
    #[serde(default, skip_serializing_if = "NamespaceMode::is_private")]
    pub ipc: NamespaceMode,
}

/// Whether a container gets a namespace of its own, shares the host's, or
/// joins another container's or a pod's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    #[default]
    Private,
    Host,
    /// `container:NAME`: a running container's (its id once created).
    Container(String),
    /// A pod's infra's, without the pod's network: how the node agent
    /// gives a bridge task's containers one pid or IPC namespace.
    Pod(String),
}

impl NamespaceMode {
    fn is_private(&self) -> bool {
        *self == NamespaceMode::Private
    }

    /// `--pid MODE` or `--ipc MODE`, as docker spells them.
    pub fn parse(what: &'static str, value: &str) -> Result<NamespaceMode> {
        match value {
            "" | "private" | "shareable" => Ok(NamespaceMode::Private),
            "host" => Ok(NamespaceMode::Host),
            _ => match value.strip_prefix("container:") {
                Some(name) if !name.is_empty() => Ok(NamespaceMode::Container(name.into())),
                _ => Err(Error::Invalid {
                    what,
                    value: value.into(),
                    why: "must be private, host or container:NAME".into(),
                }),
            },
        }
    }
}

impl NamespaceMode {
    /// As docker's inspect shows it; `private` is docker's word for the
    /// default, which differs between pid ("") and IPC ("private").
    pub fn docker_name(&self, private: &str) -> String {
        match self {
            NamespaceMode::Private => private.to_string(),
            NamespaceMode::Host => "host".to_string(),
            NamespaceMode::Container(id) => format!("container:{id}"),
            NamespaceMode::Pod(id) => format!("pod:{id}"),
        }
    }
}

impl Tuning {
    /// True when the container joins another's pid or IPC namespace.
    pub fn joins_namespaces(&self) -> bool {
        [&self.pid, &self.ipc]
            .iter()
            .any(|m| matches!(m, NamespaceMode::Container(_) | NamespaceMode::Pod(_)))
    }
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub host: PathBuf,
    pub container: String,
    /// Some of `r`, `w` and `m` (mknod), in that order.
    pub access: String,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// docker's forms: `/dev/fuse`, `/dev/sda:rw`, `/dev/sda:/dev/xvda`,
    /// `/dev/sda:/dev/xvda:rwm`.
    fn from_str(spec: &str) -> Result<DeviceSpec> {
        let bad = |why: &str| Error::Invalid {
            what: "--device",
            value: spec.into(),
            why: why.into(),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [host] => (*host, *host, "rwm"),
            [host, second] if access_ok(second) => (*host, *host, *second),
            [host, container] => (*host, *container, "rwm"),
            [host, container, access] => (*host, *container, *access),
            _ => return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]")),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(bad("paths must be absolute"));
        }
        if container.split('/').any(|c| c == "..") {
            return Err(bad("the container path may not contain .."));
        }
        if !access_ok(access) {
            return Err(bad("permissions are some of r, w and m"));
        }
        Ok(DeviceSpec {
            host: host.into(),
            container: container.into(),
            access: ["r", "w", "m"]
                .into_iter()
                .filter(|p| access.contains(p))
                .collect(),
        })
    }
}

fn access_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| "rwm".contains(c))
}

impl DeviceSpec {
    /// The host node's kind and numbers, read now: a device is looked up
    /// at each start, as docker does.
    pub fn resolve(&self) -> Result<spec::Device> {
        let bad = |why: String| Error::Invalid {
            what: "--device",
            value: self.host.display().to_string(),
            why,
        };
        let st = rustix::fs::stat(&self.host).map_err(|e| bad(e.to_string()))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => 'c',
            FileType::BlockDevice => 'b',
            _ => return Err(bad("is not a character or block device".into())),
        };
        Ok(spec::Device {
            kind,
            major: u64::from(rustix::fs::major(st.st_rdev)),
            minor: u64::from(rustix::fs::minor(st.st_rdev)),
            host_path: self.host.clone(),
            path: self.container.clone(),
            access: self.access.clone(),
            file_mode: st.st_mode & 0o7777,
        })
    }
}

/// The sysctls that belong to a container's own IPC namespace.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Which namespace a sysctl lives in, if any: one outside every namespace
/// would change the host, and is refused.
fn sysctl_namespace(key: &str) -> Option<&'static str> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("network")
    } else if key == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// `--sysctl KEY=VALUE`.
pub fn parse_sysctl(spec: &str) -> Result<(String, String)> {
    let (key, value) = spec.split_once('=').ok_or_else(|| Error::Invalid {
        what: "--sysctl",
        value: spec.into(),
        why: "expected KEY=VALUE".into(),
    })?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// `--label KEY[=VALUE]`.
pub fn parse_label(spec: &str) -> Result<(String, String)> {
    let (key, value) = spec.split_once('=').unwrap_or((spec, ""));
    if key.is_empty() {
        return Err(Error::Invalid {
            what: "--label",
            value: spec.into(),
            why: "the key is empty".into(),
        });
    }
    Ok((key.to_string(), value.to_string()))
}

/// A byte size from a limit flag: positive.
fn positive(what: &'static str, v: Option<i64>) -> Result<()> {
    match v {
        Some(n) if n <= 0 => Err(Error::Invalid {
            what,
            value: n.to_string(),
            why: "must be above 0".into(),
        }),
        _ => Ok(()),
    }
}

/// Checks how the tuning fits the rest of the options.
pub fn validate(o: &CreateOptions) -> Result<()> {
    let t = &o.tuning;
    let bad = |what: &'static str, value: String, why: &str| {
        Err(Error::Invalid {
            what,
            value,
            why: why.into(),
        })
    };
    if let Some(s) = t.cpu_shares.filter(|s| !(2..=262_144).contains(s)) {
        return bad(
            "--cpu-shares",
            s.to_string(),
            "must be between 2 and 262144",
        );
    }
    positive("--memory-reservation", t.memory_reservation)?;
    positive("--shm-size", t.shm_size)?;
    if let (Some(soft), Some(hard)) = (t.memory_reservation, o.memory) {
        if soft > hard {
            return bad(
                "--memory-reservation",
                soft.to_string(),
                "must be at most the memory limit",
            );
        }
    }
    if let Some(swap) = t.memory_swap {
        match o.memory {
            None => {
                return bad(
                    "--memory-swap",
                    swap.to_string(),
                    "needs a memory limit (--memory)",
                )
            }
            Some(mem) if swap != -1 && swap < mem => {
                return bad(
                    "--memory-swap",
                    swap.to_string(),
                    "is memory plus swap: at least the memory limit, or -1",
                )
            }
            _ => {}
        }
    }
    if let Some(s) = t.memory_swappiness.filter(|s| *s > 100) {
        return bad("--memory-swappiness", s.to_string(), "must be 0 to 100");
    }
    for (key, value) in &t.sysctls {
        let shared = match sysctl_namespace(key) {
            None => {
                return bad(
                    "--sysctl",
                    key.clone(),
                    "is not namespaced: setting it would change the host",
                )
            }
            Some("network") => o.network == crate::record::NetworkMode::Host,
            // Set in a namespace of its own only: a shared one is another's.
            Some("ipc") => t.ipc != NamespaceMode::Private,
            Some(_) => false,
        };
        if shared {
            return bad(
                "--sysctl",
                key.clone(),
                "belongs to a namespace shared with the host",
            );
        }
        if value.contains('\n') {
            return bad("--sysctl", key.clone(), "a value is one line");
        }
    }
    Ok(())
}

/// The runtime's view: the devices looked up on the host.
pub fn resolve_devices(t: &Tuning) -> Result<Vec<spec::Device>> {
    t.devices.iter().map(DeviceSpec::resolve).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_in_dockers_forms() {
        let d: DeviceSpec = "/dev/fuse".parse().unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/fuse", "rwm")
        );
        let d: DeviceSpec = "/dev/sda:rw".parse().unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/sda", "rw")
        );
        let d: DeviceSpec = "/dev/sda:/dev/xvda:mr".parse().unwrap();
        assert_eq!(
            (d.container.as_str(), d.access.as_str()),
            ("/dev/xvda", "rm")
        );
        for bad in [
            "dev/sda",
            "/dev/sda:xvda",
            "/dev/sda:/dev/x:q",
            "/a:/b:r:w",
            "/dev/a:/dev/../etc/x",
        ] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_device_must_be_a_device() {
        let d: DeviceSpec = "/dev/null:/dev/other".parse().unwrap();
        let r = d.resolve().unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('c', 1, 3));
        let file = tempfile::NamedTempFile::new().unwrap();
        let not: DeviceSpec = format!("{}:/dev/x", file.path().display()).parse().unwrap();
        assert!(not.resolve().is_err(), "a plain file is no device");
    }

    fn options(f: impl FnOnce(&mut CreateOptions)) -> CreateOptions {
        let mut o = CreateOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn values_must_fit_each_other() {
        let ok = options(|o| {
            o.memory = Some(64 << 20);
            o.tuning.memory_reservation = Some(32 << 20);
            o.tuning.memory_swap = Some(-1);
            o.tuning.cpu_shares = Some(512);
            o.tuning
                .sysctls
                .insert("net.ipv4.ip_forward".into(), "1".into());
            o.tuning
                .sysctls
                .insert("kernel.shmmax".into(), "1024".into());
        });
        validate(&ok).unwrap();
        let refused: Vec<CreateOptions> = vec![
            options(|o| o.tuning.cpu_shares = Some(1)),
            options(|o| o.tuning.memory_swap = Some(1 << 30)),
            options(|o| {
                o.memory = Some(64 << 20);
                o.tuning.memory_swap = Some(1 << 20);
            }),
            options(|o| {
                o.memory = Some(1 << 20);
                o.tuning.memory_reservation = Some(2 << 20);
            }),
            options(|o| o.tuning.memory_swappiness = Some(101)),
            options(|o| o.tuning.shm_size = Some(0)),
            options(|o| {
                o.tuning
                    .sysctls
                    .insert("kernel.hostname".into(), "x".into());
            }),
            options(|o| {
                o.tuning.sysctls.insert("vm.swappiness".into(), "1".into());
            }),
            options(|o| {
                o.network = crate::record::NetworkMode::Host;
                o.tuning
                    .sysctls
                    .insert("net.ipv4.ip_forward".into(), "1".into());
            }),
            options(|o| {
                o.tuning.ipc = NamespaceMode::Host;
                o.tuning.sysctls.insert("kernel.shmmax".into(), "1".into());
            }),
        ];
        for o in refused {
            assert!(validate(&o).is_err(), "{:?}", o.tuning);
        }
    }

    #[test]
    fn labels_and_sysctls_parse() {
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_label("flag").unwrap(), ("flag".into(), String::new()));
        assert!(parse_label("=x").is_err());
        assert_eq!(
            parse_sysctl("net.core.somaxconn=1024").unwrap(),
            ("net.core.somaxconn".into(), "1024".into())
        );
        assert!(parse_sysctl("net.core.somaxconn").is_err());
        assert_eq!(
            NamespaceMode::parse("--pid", "host").unwrap(),
            NamespaceMode::Host
        );
        assert_eq!(
            NamespaceMode::parse("--ipc", "container:db").unwrap(),
            NamespaceMode::Container("db".into())
        );
        for bad in ["container:", "pod:x", "shared"] {
            assert!(NamespaceMode::parse("--pid", bad).is_err(), "{bad}");
        }
    }
}
