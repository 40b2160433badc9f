//! What a node offers the cluster, and the credential it keeps once it has
//! joined (`<state>/node.json`, mode 0600).

use std::path::{Path, PathBuf};

use estiba_cluster::task::{Attribute, Resources};
use serde::{Deserialize, Serialize};

use crate::{Error, IoContext, Result};

/// Ports a node keeps for itself, as ECS's agent reserves them: SSH, the
/// Docker API, the agent's own.
pub const RESERVED_PORTS: &[u16] = &[22, 2375, 2376, 51678, 51679];

/// The agent's version, as the instance reports it.
pub const VERSION: &str = concat!("estiba-agent/", env!("CARGO_PKG_VERSION"));

/// How much of the node is offered: at most `memory` MiB and `cpu`
/// units when given, less `reserved_memory` (ECS_RESERVED_MEMORY).
#[derive(Clone, Copy, Debug, Default)]
pub struct Offer {
    pub memory: Option<i64>,
    pub cpu: Option<i64>,
    pub reserved_memory: i64,
}

/// CPU at 1024 units a core; memory in MiB from /proc/meminfo; each capped
/// by the offer.
pub fn resources(offer: Offer) -> Resources {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem_total_mib(&meminfo);
    let memory = offer.memory.map_or(total, |m| m.min(total));
    let cpu = offer.cpu.map_or(cores * 1024, |c| c.min(cores * 1024));
    Resources {
        cpu,
        memory: (memory - offer.reserved_memory).max(0),
        ports: RESERVED_PORTS.to_vec(),
        ports_udp: Vec::new(),
    }
}

fn mem_total_mib(meminfo: &str) -> i64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// ECS's built-in attributes, the capabilities this agent has, and the
/// custom ones given with `--attribute K=V`. Without cgroup limits (a
/// rootless user the host delegates none to), the task-limits capability
/// is missing, so tasks that need it are not placed here.
pub fn attributes(custom: &[(String, String)], rootless: bool, limits: bool) -> Vec<Attribute> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let mut out = vec![
        attr("ecs.os-type", Some("linux")),
        attr("ecs.cpu-architecture", Some(arch)),
        attr("ecs.capability.container-ordering", None),
        attr("ecs.capability.container-health-check", None),
        attr("ecs.capability.env-files.s3", None),
        attr("com.amazonaws.ecs.capability.ecr-auth", None),
        attr("com.amazonaws.ecs.capability.task-iam-role", None),
        attr(
            "estiba.rootless",
            Some(if rootless { "true" } else { "false" }),
        ),
    ];
    if !rootless {
        out.push(attr(
            "com.amazonaws.ecs.capability.privileged-container",
            None,
        ));
    }
    if limits {
        out.push(attr("ecs.capability.task-cpu-mem-limit", None));
    }
    for (k, v) in custom {
        out.retain(|a| a.name != *k);
        out.push(attr(k, Some(v)));
    }
    out
}

fn attr(name: &str, value: Option<&str>) -> Attribute {
    Attribute {
        name: name.to_string(),
        value: value.map(str::to_string),
    }
}

/// `K=V` of `--attribute`.
pub fn parse_attribute(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Invalid(format!(
            "--attribute {spec}: expected KEY=VALUE"
        ))),
    }
}

/// The address this node reaches the control plane from: the one its
/// tasks are reached at too.
pub fn address_towards(server: &str) -> Option<String> {
    let hostport = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

/// What the node keeps of its registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub instance_id: String,
    pub instance_arn: String,
    pub cluster: String,
    pub credential: String,
    /// The secret the control plane shows to this agent's API.
    #[serde(default)]
    pub api_secret: String,
}

pub fn saved_path(state: &Path) -> PathBuf {
    state.join("node.json")
}

pub fn load(state: &Path) -> Result<Option<Saved>> {
    let path = saved_path(state);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                what: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("reading", path),
    }
}

pub fn save(state: &Path, saved: &Saved) -> Result<()> {
    std::fs::create_dir_all(state).ctx("creating", state)?;
    let json = serde_json::to_vec_pretty(saved).unwrap_or_default();
    estiba_os::write_private(&saved_path(state), &json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_in_mib_and_custom_attributes_win() {
        assert_eq!(
            mem_total_mib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            24000
        );
        assert_eq!(mem_total_mib(""), 0);
        let a = attributes(&[("ecs.os-type".into(), "plan9".into())], true, false);
        assert!(!a
            .iter()
            .any(|a| a.name == "ecs.capability.task-cpu-mem-limit"));
        let os: Vec<_> = a.iter().filter(|a| a.name == "ecs.os-type").collect();
        assert_eq!(os.len(), 1);
        assert_eq!(os[0].value.as_deref(), Some("plan9"));
        assert!(!a.iter().any(|a| a.name.ends_with("privileged-container")));
        assert!(parse_attribute("zone").is_err());
        assert_eq!(
            parse_attribute("k=v=w").unwrap(),
            ("k".into(), "v=w".into())
        );
    }

    #[test]
    fn the_credential_is_saved_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let saved = Saved {
            instance_id: "i".into(),
            instance_arn: "arn".into(),
            cluster: "default".into(),
            credential: "i.secret".into(),
            api_secret: "s".into(),
        };
        save(dir.path(), &saved).unwrap();
        let mode = std::fs::metadata(saved_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert_eq!(load(dir.path()).unwrap().unwrap().credential, "i.secret");
    }
}
