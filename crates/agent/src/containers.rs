//! A task's container definition as an engine `CreateRequest`: what ECS's
//! agent hands docker, here typed for estiba's engine.

use std::net::Ipv4Addr;
use std::str::FromStr;

use estiba_cluster::task::TaskRecord;
use estiba_ecs::taskdef::{ContainerDefinition, MountPoint, NetworkMode, Volume};
use estiba_engine::health::HealthConfig;
use estiba_engine::options;
use estiba_engine::tuning::{DeviceSpec, NamespaceMode, Tuning};
use estiba_engine::CreateRequest;
use serde_json::Value;

use crate::{Error, Result};

/// The engine's name of a task's container: the task id first, so the
/// containers of a task are found again by name after an agent restart.
pub fn name(task_id: &str, container: &str) -> String {
    format!("ecs-{task_id}-{container}")
}

/// The task a container name belongs to, and the container's ECS name.
pub fn parse_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("ecs-")?;
    let (task, container) = rest.split_once('-')?;
    (task.len() == 32 && task.bytes().all(|b| b.is_ascii_hexdigit())).then_some((task, container))
}

/// Where the node's bridge-mode tasks live (ECS's docker0).
pub const BRIDGE_NETWORK: &str = "ecs-bridge";

fn engine_error(e: estiba_engine::Error) -> Error {
    Error::Engine(e)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A task volume's mount for `container_path`: a host path (`host.sourcePath`),
/// a shared docker volume (`dockerVolumeConfiguration.scope: shared`), or a
/// volume of the task's own.
fn volume_source(task: &TaskRecord, v: &Volume) -> String {
    let name = v.name.clone().unwrap_or_default();
    if let Some(path) = v
        .host
        .as_ref()
        .and_then(|h| h.get("sourcePath"))
        .and_then(Value::as_str)
    {
        return path.to_string();
    }
    let shared = v
        .docker_volume_configuration
        .as_ref()
        .and_then(|c| c.get("scope"))
        .and_then(Value::as_str)
        == Some("shared");
    if shared {
        name
    } else {
        format!("ecs-{}-{name}", task.id)
    }
}

fn health(h: &estiba_ecs::taskdef::HealthCheck) -> HealthConfig {
    let secs = |v: Option<i64>, default: i64| (v.unwrap_or(default).max(0) as u64) * 1000;
    HealthConfig {
        test: h.command.clone(),
        interval_ms: secs(h.interval, 30),
        timeout_ms: secs(h.timeout, 5),
        retries: h.retries.unwrap_or(3).max(0) as u32,
        start_period_ms: secs(h.start_period, 0),
    }
}

/// The request that creates `def`, one container of `task`.
pub fn request(task: &TaskRecord, def: &ContainerDefinition) -> Result<CreateRequest> {
    let mut req = CreateRequest::new(def.image.clone());
    req.name = Some(name(&task.id, &def.name));
    let o = &mut req.options;
    match def.entry_point.as_deref() {
        Some([first, rest @ ..]) => {
            o.entrypoint = Some(first.clone());
            o.command = rest.to_vec();
            o.command.extend(def.command.clone().unwrap_or_default());
        }
        _ => o.command = def.command.clone().unwrap_or_default(),
    }
    // Files first: `environment` wins over them, as on ECS.
    o.env = env_files(def)?;
    o.env
        .extend(def.environment.iter().flatten().filter_map(|kv| {
            Some(format!(
                "{}={}",
                kv.name.as_ref()?,
                kv.value.clone().unwrap_or_default()
            ))
        }));
    o.user = def.user.clone();
    o.workdir = def.working_directory.clone();
    o.read_only = def.readonly_root_filesystem.unwrap_or(false);
    o.privileged = def.privileged.unwrap_or(false);
    let mode = task.definition.network();
    if mode == NetworkMode::Awsvpc {
        // The task's pod holds its network and hostname.
        o.pod = Some(crate::pod::name(&task.id));
    } else {
        o.hostname = def.hostname.clone();
    }
    if let Some(mib) = def.memory {
        o.memory = Some(mib * 1024 * 1024);
    }
    let caps = def
        .linux_parameters
        .as_ref()
        .and_then(|l| l.get("capabilities"));
    o.cap_add = strings(caps.and_then(|c| c.get("add")));
    o.cap_drop = strings(caps.and_then(|c| c.get("drop")));
    o.init = def
        .linux_parameters
        .as_ref()
        .and_then(|l| l.get("initProcessEnabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    o.dns = def
        .dns_servers
        .iter()
        .flatten()
        .map(|s| {
            Ipv4Addr::from_str(s)
                .map_err(|_| Error::Invalid(format!("dnsServers: {s} is not an IPv4 address")))
        })
        .collect::<Result<_>>()?;
    o.network = match mode {
        NetworkMode::Host => estiba_engine::NetworkMode::Host,
        NetworkMode::None | NetworkMode::Awsvpc => estiba_engine::NetworkMode::None,
        NetworkMode::Bridge => estiba_engine::NetworkMode::Named(BRIDGE_NETWORK.to_string()),
    };
    if mode == NetworkMode::Bridge {
        let specs: Vec<String> = def
            .port_mappings
            .iter()
            .flatten()
            .filter_map(|m| {
                let ctr = m.container_port?;
                let proto = m.protocol.as_deref().unwrap_or("tcp");
                // No host port (or 0): one from the ephemeral range, as -p CTR.
                Some(match m.host_port.filter(|p| *p > 0) {
                    Some(host) => format!("{host}:{ctr}/{proto}"),
                    None => format!("{ctr}/{proto}"),
                })
            })
            .collect();
        o.publish = options::parse_publish(&specs).map_err(engine_error)?;
    }
    for (m, read_only) in mount_points(task, def, false, 0)? {
        let (Some(source), Some(path)) = (&m.source_volume, &m.container_path) else {
            continue;
        };
        let volumes = task.definition.volumes.as_deref().unwrap_or_default();
        let Some(v) = volumes.iter().find(|v| v.name.as_ref() == Some(source)) else {
            return Err(Error::Invalid(format!(
                "mountPoints: no volume {source} in the task"
            )));
        };
        let mode = if read_only { "ro" } else { "rw" };
        let spec = format!("{}:{path}:{mode}", volume_source(task, v));
        o.mounts
            .push(options::parse_volume(&spec).map_err(engine_error)?);
    }
    o.mounts.extend(tmpfs(def)?);
    if def.disable_networking == Some(true) {
        // Loopback only, as docker's --network none.
        o.network = estiba_engine::NetworkMode::None;
        o.publish.clear();
    }
    o.health = def.health_check.as_ref().map(health);
    o.ulimits = ulimits(def)?;
    o.add_hosts = extra_hosts(def)?;
    o.labels = def.docker_labels.clone().unwrap_or_default();
    o.tty = def.pseudo_terminal.unwrap_or(false);
    o.interactive = def.interactive.unwrap_or(false);
    o.dns_search = def.dns_search_domains.clone().unwrap_or_default();
    o.tuning = tuning(task, def)?;
    Ok(req)
}

fn mib(v: i64) -> i64 {
    v * 1024 * 1024
}

/// A task's `pidMode` or `ipcMode`: `host` shares the node's namespace;
/// `task` the task's pod's (`pod.rs`), which awsvpc containers join whole
/// and bridge or host ones for this namespace only.
fn namespace_mode(task: &TaskRecord, value: Option<&str>) -> NamespaceMode {
    match value {
        Some("host") => NamespaceMode::Host,
        Some("task") if task.definition.network() != NetworkMode::Awsvpc => {
            NamespaceMode::Pod(crate::pod::name(&task.id))
        }
        _ => NamespaceMode::Private,
    }
}

/// The container's weight and soft limits, swap, /dev/shm, sysctls,
/// devices, and the task's pid and IPC modes. Sizes in a task definition
/// are MiB.
fn tuning(task: &TaskRecord, def: &ContainerDefinition) -> Result<Tuning> {
    let lp = def.linux_parameters.as_ref();
    let lp_int = |k: &str| lp.and_then(|l| l.get(k)).and_then(Value::as_i64);
    let memory_swap = match (lp_int("maxSwap"), def.memory) {
        (None, _) => None,
        (Some(swap), _) if swap < 0 => {
            return Err(Error::Invalid(format!(
                "linuxParameters.maxSwap {swap}: must be 0 or more"
            )))
        }
        // Docker's memory-swap is memory plus swap.
        (Some(swap), Some(memory)) => Some(mib(memory + swap)),
        (Some(_), None) => {
            return Err(Error::Invalid(
                "linuxParameters.maxSwap needs the container's memory (its hard limit)".into(),
            ))
        }
    };
    let devices = lp
        .and_then(|l| l.get("devices"))
        .and_then(Value::as_array)
        .map(|list| list.iter().map(device).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let sysctls = def
        .system_controls
        .iter()
        .flatten()
        .map(|c| {
            let key = c
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = c.get("value").and_then(Value::as_str).unwrap_or_default();
            (key.to_string(), value.to_string())
        })
        .collect();
    Ok(Tuning {
        // ECS's cpu units are docker's shares; the kernel's floor is 2.
        cpu_shares: def.cpu.filter(|c| *c > 0).map(|c| c.max(2) as u64),
        memory_reservation: def.memory_reservation.map(mib),
        memory_swap,
        memory_swappiness: lp_int("swappiness")
            .filter(|_| memory_swap.is_some())
            .map(|s| s as u64),
        shm_size: lp_int("sharedMemorySize").map(mib),
        sysctls,
        devices,
        pid: namespace_mode(task, task.definition.pid_mode.as_deref()),
        ipc: namespace_mode(task, task.definition.ipc_mode.as_deref()),
    })
}

/// `linuxParameters.devices`: `{"hostPath": "/dev/fuse", "containerPath":
/// "/dev/fuse", "permissions": ["read", "write", "mknod"]}`.
fn device(d: &Value) -> Result<DeviceSpec> {
    let host = d
        .get("hostPath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let container = d
        .get("containerPath")
        .and_then(Value::as_str)
        .unwrap_or(host);
    let perms = strings(d.get("permissions"));
    let mut access = String::new();
    for (name, letter) in [("read", 'r'), ("write", 'w'), ("mknod", 'm')] {
        if perms.is_empty() || perms.iter().any(|p| p == name) {
            access.push(letter);
        }
    }
    format!("{host}:{container}:{access}")
        .parse()
        .map_err(|e: estiba_engine::Error| Error::Invalid(format!("linuxParameters.devices: {e}")))
}

/// `linuxParameters.tmpfs`: `[{"containerPath": "/run", "size": 64,
/// "mountOptions": ["noexec"]}]`, the size in MiB.
fn tmpfs(def: &ContainerDefinition) -> Result<Vec<options::MountSpec>> {
    let entries = def
        .linux_parameters
        .as_ref()
        .and_then(|l| l.get("tmpfs"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries
        .iter()
        .map(|t| {
            let path = t["containerPath"].as_str().unwrap_or_default();
            let size = t["size"].as_i64().filter(|s| *s > 0).ok_or_else(|| {
                Error::Invalid(format!(
                    "linuxParameters.tmpfs {path}: a size in MiB is required"
                ))
            })?;
            let mut opts = vec![format!("size={size}m")];
            opts.extend(strings(t.get("mountOptions")));
            options::parse_tmpfs(&format!("{path}:{}", opts.join(","))).map_err(engine_error)
        })
        .collect()
}

/// `environmentFiles`: `[{"value": "/etc/app.env", "type": "s3"}]`, files
/// of `KEY=VALUE` lines (blank lines and `#` comments skipped) on the
/// node, as a path or a `file://` URL. ECS fetches them from S3, which
/// estiba does not: an S3 ARN is refused with that said.
fn env_files(def: &ContainerDefinition) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in def.environment_files.iter().flatten() {
        let value = f.get("value").and_then(Value::as_str).unwrap_or_default();
        let path = value.strip_prefix("file://").unwrap_or(value);
        if !path.starts_with('/') {
            return Err(Error::Invalid(format!(
                "environmentFiles: {value}: estiba reads files on the node (an absolute path or file:// URL), not S3"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("environmentFiles: {path}: {e}")))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((key, _)) if !key.is_empty() => out.push(line.to_string()),
                _ => {
                    return Err(Error::Invalid(format!(
                        "environmentFiles: {path}: {line:?} is not KEY=VALUE"
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// A container's mount points with their read-only flag: its own, then
/// (`volumesFrom`) those of each source container, read-only when the
/// reference says so, following the sources' own volumesFrom as docker
/// does.
fn mount_points<'a>(
    task: &'a TaskRecord,
    def: &'a ContainerDefinition,
    read_only: bool,
    depth: usize,
) -> Result<Vec<(&'a MountPoint, bool)>> {
    let defs = &task.definition.container_definitions;
    if depth > defs.len() {
        return Err(Error::Invalid(format!(
            "volumesFrom: {} leads back to itself",
            def.name
        )));
    }
    let mut out: Vec<(&MountPoint, bool)> = def
        .mount_points
        .iter()
        .flatten()
        .map(|m| (m, read_only || m.read_only.unwrap_or(false)))
        .collect();
    for from in def.volumes_from.iter().flatten() {
        let name = from.source_container.as_deref().unwrap_or_default();
        let Some(source) = defs.iter().find(|d| d.name == name) else {
            return Err(Error::Invalid(format!(
                "volumesFrom: no container {name} in the task"
            )));
        };
        let ro = read_only || from.read_only.unwrap_or(false);
        out.extend(mount_points(task, source, ro, depth + 1)?);
    }
    // A path mounted twice keeps the first: the container's own mount
    // over an inherited one.
    let mut seen = std::collections::HashSet::new();
    out.retain(|(m, _)| seen.insert(m.container_path.clone()));
    Ok(out)
}

/// `ulimits`: `[{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}]`.
fn ulimits(def: &ContainerDefinition) -> Result<Vec<estiba_runtime::spec::Rlimit>> {
    def.ulimits
        .iter()
        .flatten()
        .map(|u| {
            let field = |k: &str| u.get(k).and_then(Value::as_u64);
            let r = estiba_runtime::spec::Rlimit {
                name: u
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                soft: field("softLimit").unwrap_or(0),
                hard: field("hardLimit").unwrap_or(0),
            };
            r.check()
                .map_err(|why| Error::Invalid(format!("ulimits: {why}")))?;
            Ok(r)
        })
        .collect()
}

/// `extraHosts`: `[{"hostname": "db", "ipAddress": "10.0.0.5"}]`, as
/// lines of the container's /etc/hosts.
fn extra_hosts(def: &ContainerDefinition) -> Result<Vec<options::HostEntry>> {
    def.extra_hosts
        .iter()
        .flatten()
        .map(|h| {
            let name = h
                .get("hostname")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let ip = h
                .get("ipAddress")
                .and_then(Value::as_str)
                .unwrap_or_default();
            format!("{name}:{ip}")
                .parse::<options::HostEntry>()
                .map_err(engine_error)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lead_back_to_their_task() {
        let id = "0123456789abcdef0123456789abcdef";
        let n = name(id, "web-1");
        assert_eq!(parse_name(&n), Some((id, "web-1")));
        assert_eq!(parse_name("ecs-short-web"), None);
        assert_eq!(parse_name("web"), None);
    }

    fn task(network: &str, containers: serde_json::Value) -> TaskRecord {
        serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef", "cluster": "default",
            "definition": {
                "family": "t", "networkMode": network, "containerDefinitions": containers,
                "volumes": [{"name": "shared"}, {"name": "own"}],
            },
            "revision": 1, "overrides": {}, "launchType": "EC2", "lastStatus": "PENDING",
            "desiredStatus": "RUNNING", "containers": [],
            "reserved": {"cpu": 0, "memory": 0, "ports": [], "portsUdp": []},
            "createdAt": 0.0, "version": 1,
        }))
        .unwrap()
    }

    fn destinations(req: &CreateRequest) -> Vec<String> {
        req.options
            .mounts
            .iter()
            .map(|m| format!("{m:?}"))
            .collect()
    }

    #[test]
    fn volumes_from_brings_the_sources_mounts_read_only_when_asked() {
        let t = task(
            "bridge",
            serde_json::json!([
                {"name": "a", "image": "x", "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}]},
                {"name": "b", "image": "x", "volumesFrom": [{"sourceContainer": "a", "readOnly": true}],
                 "mountPoints": [{"sourceVolume": "own", "containerPath": "/own"}]},
                {"name": "c", "image": "x", "volumesFrom": [{"sourceContainer": "b"}]},
            ]),
        );
        let defs = &t.definition.container_definitions;
        let b = request(&t, &defs[1]).unwrap();
        let seen = destinations(&b);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[1].contains("/data") && seen[1].contains("read_only: true"),
            "{seen:?}"
        );
        // Followed through b to a, and read-only as b has it.
        let c = request(&t, &defs[2]).unwrap();
        let seen = destinations(&c);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen
            .iter()
            .any(|m| m.contains("/data") && m.contains("read_only: true")));
    }

    #[test]
    fn environment_files_are_read_and_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.env");
        std::fs::write(&file, "# a comment\n\nMODE=file\nONLY_FILE=1\n").unwrap();
        let t = task(
            "bridge",
            serde_json::json!([{
                "name": "a", "image": "x",
                "environmentFiles": [{"value": format!("file://{}", file.display()), "type": "s3"}],
                "environment": [{"name": "MODE", "value": "env"}],
            }]),
        );
        let r = request(&t, &t.definition.container_definitions[0]).unwrap();
        assert_eq!(r.options.env, ["MODE=file", "ONLY_FILE=1", "MODE=env"]);
        std::fs::write(&file, "not a pair\n").unwrap();
        assert!(request(&t, &t.definition.container_definitions[0]).is_err());
        let s3 = task(
            "bridge",
            serde_json::json!([{"name": "a", "image": "x",
                "environmentFiles": [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}]}]),
        );
        let e = request(&s3, &s3.definition.container_definitions[0]).unwrap_err();
        assert!(e.to_string().contains("not S3"), "{e}");
    }

    #[test]
    fn tuning_fields_become_the_engines_limits_in_bytes() {
        let t = task(
            "host",
            serde_json::json!([{"name": "a", "image": "x", "cpu": 256, "memory": 128,
                "pseudoTerminal": true, "interactive": true,
                "memoryReservation": 64, "dockerLabels": {"team": "web"},
                "dnsSearchDomains": ["corp.example"],
                "systemControls": [{"namespace": "kernel.shmmax", "value": "4096"}],
                "linuxParameters": {"maxSwap": 32, "swappiness": 10, "sharedMemorySize": 16,
                    "devices": [{"hostPath": "/dev/null", "containerPath": "/dev/n2",
                        "permissions": ["read"]}]}}]),
        );
        let mut def = t.definition.clone();
        def.pid_mode = Some("host".into());
        def.ipc_mode = Some("task".into());
        let t = TaskRecord {
            definition: def,
            ..t
        };
        let o = request(&t, &t.definition.container_definitions[0])
            .unwrap()
            .options;
        assert_eq!(o.labels["team"], "web");
        assert!(o.tty && o.interactive);
        assert_eq!(o.dns_search, ["corp.example"]);
        let tu = &o.tuning;
        assert_eq!(tu.cpu_shares, Some(256));
        assert_eq!(tu.memory_reservation, Some(64 << 20));
        assert_eq!(tu.memory_swap, Some(160 << 20), "memory plus maxSwap");
        assert_eq!(tu.memory_swappiness, Some(10));
        assert_eq!(tu.shm_size, Some(16 << 20));
        assert_eq!(tu.sysctls["kernel.shmmax"], "4096");
        assert_eq!(tu.devices[0].container, "/dev/n2");
        assert_eq!(tu.devices[0].access, "r");
        assert_eq!(tu.pid, NamespaceMode::Host);
        assert_eq!(
            tu.ipc,
            NamespaceMode::Pod(crate::pod::name(&t.id)),
            "the task's namespace pod"
        );
        let no_memory = task(
            "host",
            serde_json::json!([{"name": "a", "image": "x", "linuxParameters": {"maxSwap": 32}}]),
        );
        assert!(request(&no_memory, &no_memory.definition.container_definitions[0]).is_err());
    }

    #[test]
    fn tmpfs_takes_its_size_and_disabled_networking_is_loopback_only() {
        let t = task(
            "bridge",
            serde_json::json!([{"name": "a", "image": "x", "disableNetworking": true,
                "portMappings": [{"containerPort": 80}],
                "linuxParameters": {"tmpfs": [{"containerPath": "/run", "size": 64, "mountOptions": ["noexec"]}]}}]),
        );
        let r = request(&t, &t.definition.container_definitions[0]).unwrap();
        assert_eq!(r.options.network, estiba_engine::NetworkMode::None);
        assert!(r.options.publish.is_empty());
        let m = format!("{:?}", r.options.mounts);
        assert!(
            m.contains("/run") && m.contains("size=64m") && m.contains("noexec"),
            "{m}"
        );
        let unsized_ = task(
            "bridge",
            serde_json::json!([{"name": "a", "image": "x",
                "linuxParameters": {"tmpfs": [{"containerPath": "/run"}]}}]),
        );
        assert!(request(&unsized_, &unsized_.definition.container_definitions[0]).is_err());
    }

    #[test]
    fn awsvpc_containers_join_the_tasks_pod_and_init_is_asked_for() {
        let t = task(
            "awsvpc",
            serde_json::json!([
                {"name": "a", "image": "x", "hostname": "ignored",
                 "linuxParameters": {"initProcessEnabled": true}},
            ]),
        );
        let r = request(&t, &t.definition.container_definitions[0]).unwrap();
        assert_eq!(
            r.options.pod.as_deref(),
            Some("ecs-0123456789abcdef0123456789abcdef")
        );
        assert_eq!(r.options.network, estiba_engine::NetworkMode::None);
        assert_eq!(r.options.hostname, None);
        assert!(r.options.init);
    }
}
