//! `POST /containers/create`: Docker's container config and host config,
//! turned into the engine's typed request by the same parsers `estiba run`
//! uses, so a value means what the flag means. Fields estiba has no use
//! for are ignored, as dockerd ignores fields it does not know.

use std::collections::BTreeMap;

use estiba_engine::options as opts;
use estiba_engine::{CreateOptions, CreateRequest, NetworkMode, RestartPolicy};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// A string or a list of strings (`Cmd`, `Entrypoint`, `Healthcheck.Test`
/// arrive either way).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Strings {
    One(String),
    Many(Vec<String>),
}

impl Strings {
    fn into_vec(self) -> Vec<String> {
        match self {
            Strings::One(s) => vec![s],
            Strings::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Body {
    pub image: Option<String>,
    pub cmd: Option<Strings>,
    pub entrypoint: Option<Strings>,
    pub env: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    pub test: Option<Vec<String>>,
    /// Nanoseconds, as the API gives durations.
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub mounts: Option<Vec<Mount>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub publish_all_ports: bool,
    pub network_mode: Option<String>,
    pub restart_policy: Option<RestartPolicyBody>,
    pub auto_remove: bool,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub pids_limit: Option<i64>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub security_opt: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub init: Option<bool>,
    pub shm_size: i64,
    pub ulimits: Option<Vec<Ulimit>>,
    pub sysctls: Option<BTreeMap<String, String>>,
    pub runtime: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicyBody {
    pub name: String,
    pub maximum_retry_count: u32,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, Option<Endpoint>>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
}

/// Parses the body; a malformed one is a 400 naming where it went wrong.
pub fn parse(bytes: &[u8]) -> ApiResult<Body> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    let invalid = |e: serde_json::Error| ApiError::bad_request(format!("invalid JSON: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    drop_nulls(&mut value);
    serde_json::from_value(value).map_err(invalid)
}

/// Clients send `null` for whatever they were not given (docker-compose
/// does for most numbers); Go reads it as the zero value, and so do we.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(list) => list.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn bad(e: estiba_engine::Error) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The engine's request for `body`, named `name`.
pub fn request(body: Body, name: Option<String>) -> ApiResult<CreateRequest> {
    let image = body
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("no image was given (Image is empty)"))?;
    let hc = body.host_config.unwrap_or_default();
    let (entrypoint, mut command) = match body.entrypoint.map(Strings::into_vec) {
        // `--entrypoint ""` resets the image's.
        Some(e) if e.is_empty() => (Some(String::new()), Vec::new()),
        Some(mut e) => {
            let first = e.remove(0);
            (Some(first), e)
        }
        None => (None, Vec::new()),
    };
    command.extend(body.cmd.map(Strings::into_vec).unwrap_or_default());
    let restart = restart_policy(hc.restart_policy.as_ref())?;
    if hc.auto_remove && restart != RestartPolicy::No {
        return Err(ApiError::conflict(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    let publish = publish_specs(hc.port_bindings.as_ref().unwrap_or(&BTreeMap::new()))?;
    let (network, extra_networks, aliases, ip) = networks(
        hc.network_mode.as_deref(),
        body.networking_config.unwrap_or_default(),
        !publish.is_empty() || hc.publish_all_ports,
    )?;
    let tmpfs: Vec<String> = hc
        .tmpfs
        .unwrap_or_default()
        .into_iter()
        .map(|(path, o)| {
            if o.is_empty() {
                path
            } else {
                format!("{path}:{o}")
            }
        })
        .collect();
    let mounts: Vec<String> = hc
        .mounts
        .unwrap_or_default()
        .iter()
        .map(mount_spec)
        .collect();
    let options = CreateOptions {
        command,
        entrypoint,
        env: body.env.unwrap_or_default(),
        user: body.user.filter(|u| !u.is_empty()),
        workdir: body.working_dir.filter(|w| !w.is_empty()),
        read_only: hc.readonly_rootfs,
        cap_add: hc.cap_add.unwrap_or_default(),
        cap_drop: hc.cap_drop.unwrap_or_default(),
        security: opts::parse_security_opts(&hc.security_opt.unwrap_or_default()).map_err(bad)?,
        privileged: hc.privileged,
        memory: (hc.memory > 0).then_some(hc.memory),
        cpus: (hc.nano_cpus > 0).then(|| hc.nano_cpus as f64 / 1e9),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
        ulimits: hc
            .ulimits
            .unwrap_or_default()
            .iter()
            .map(|u| opts::parse_ulimit(&format!("{}={}:{}", u.name, u.soft, u.hard)))
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        hostname: body.hostname.filter(|h| !h.is_empty()),
        network,
        extra_networks,
        ip,
        publish: opts::parse_publish(&publish).map_err(bad)?,
        publish_all: hc.publish_all_ports,
        network_aliases: aliases,
        add_hosts: hc
            .extra_hosts
            .unwrap_or_default()
            .iter()
            .map(|h| h.parse().map_err(bad))
            .collect::<ApiResult<_>>()?,
        dns: opts::parse_dns(&hc.dns.unwrap_or_default()).map_err(bad)?,
        dns_search: hc.dns_search.unwrap_or_default(),
        labels: body.labels.unwrap_or_default(),
        tuning: estiba_engine::tuning::Tuning {
            cpu_shares: (hc.cpu_shares > 0).then_some(hc.cpu_shares as u64),
            shm_size: (hc.shm_size > 0).then_some(hc.shm_size),
            sysctls: hc.sysctls.unwrap_or_default().into_iter().collect(),
            ..Default::default()
        },
        mounts: opts::parse_mounts(&hc.binds.unwrap_or_default(), &tmpfs, &mounts).map_err(bad)?,
        stop_signal: body
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(estiba_engine::parse_signal)
            .transpose()
            .map_err(bad)?,
        init: hc.init.unwrap_or(false),
        tty: body.tty,
        interactive: body.open_stdin,
        stdin_once: body.open_stdin && body.stdin_once,
        runtime: hc.runtime.filter(|r| !r.is_empty() && r != "runc"),
        restart,
        auto_remove: hc.auto_remove,
        // The API's containers are started by a monitor, never in the
        // server's own process.
        detached: true,
        health: body.healthcheck.and_then(health),
        ..CreateOptions::default()
    };
    estiba_engine::options::validate(&options).map_err(bad)?;
    Ok(CreateRequest {
        image,
        name,
        options,
        health: Default::default(),
    })
}

fn restart_policy(p: Option<&RestartPolicyBody>) -> ApiResult<RestartPolicy> {
    let Some(p) = p else {
        return Ok(RestartPolicy::No);
    };
    let spec = match p.name.as_str() {
        "" => "no".to_string(),
        "on-failure" if p.maximum_retry_count > 0 => {
            format!("on-failure:{}", p.maximum_retry_count)
        }
        other => other.to_string(),
    };
    spec.parse().map_err(bad)
}

/// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}` as `-p` specs.
fn publish_specs(bindings: &BTreeMap<String, Option<Vec<PortBinding>>>) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for (port, list) in bindings {
        let list = list.as_deref().unwrap_or_default();
        if list.is_empty() {
            out.push(port.clone());
        }
        for b in list {
            let host = match (b.host_ip.as_str(), b.host_port.as_str()) {
                ("", "") => String::new(),
                ("", p) => format!("{p}:"),
                (ip, p) => format!("{ip}:{p}:"),
            };
            out.push(format!("{host}{port}"));
        }
    }
    Ok(out)
}

/// The first network, more networks, aliases on the first, and its wanted
/// address. `default` is estiba's default: no network unless ports are
/// published (then the default bridge), as `estiba run` does; `bridge` is
/// the default bridge.
type Networks = (
    NetworkMode,
    Vec<String>,
    Vec<String>,
    Option<std::net::Ipv4Addr>,
);

fn networks(mode: Option<&str>, config: NetworkingConfig, publishes: bool) -> ApiResult<Networks> {
    let default_bridge = || NetworkMode::Named(estiba_net::network::DEFAULT_NETWORK.into());
    let network = match mode.unwrap_or("default") {
        "default" | "" if publishes => default_bridge(),
        "default" | "" => NetworkMode::None,
        "bridge" => default_bridge(),
        m if m.starts_with("container:") => {
            return Err(ApiError::bad_request(format!(
            "network mode {m:?}: joining another container's network is done with pods in estiba"
        )))
        }
        m => NetworkMode::parse(m).map_err(bad)?,
    };
    let endpoints = config.endpoints_config.unwrap_or_default();
    let mut aliases = Vec::new();
    let mut ip = None;
    let mut extra = Vec::new();
    for (name, endpoint) in endpoints {
        let endpoint = endpoint.unwrap_or_default();
        if Some(name.as_str()) == network.name() {
            aliases = endpoint.aliases.unwrap_or_default();
            ip = opts::parse_ip(endpoint.ipam_config.and_then(|c| c.ipv4_address).as_deref())
                .map_err(bad)?;
        } else if name != "bridge" && name != "default" && !network.is_builtin() {
            extra.push(name);
        }
    }
    Ok((network, extra, aliases, ip))
}

/// A `Mounts` entry as a `--mount` spec.
fn mount_spec(m: &Mount) -> String {
    let mut spec = format!("type={},target={}", m.kind, m.target);
    if !m.source.is_empty() {
        spec.push_str(&format!(",source={}", m.source));
    }
    if m.read_only {
        spec.push_str(",readonly");
    }
    spec
}

/// The API's `Healthcheck` (nanoseconds) as the engine's check; an empty
/// test inherits the image's.
fn health(h: Healthcheck) -> Option<estiba_engine::health::HealthConfig> {
    let test = h.test.filter(|t| !t.is_empty())?;
    let ms = |ns: u64, default: u64| if ns == 0 { default } else { ns / 1_000_000 };
    Some(estiba_engine::health::HealthConfig {
        test,
        interval_ms: ms(h.interval, 30_000),
        timeout_ms: ms(h.timeout, 30_000),
        retries: if h.retries == 0 { 3 } else { h.retries },
        start_period_ms: ms(h.start_period, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ApiResult<CreateRequest> {
        request(parse(json.as_bytes())?, None)
    }

    #[test]
    fn the_docker_clis_body_becomes_the_engines_request() {
        let r = req(r#"{
            "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1"],
            "Tty": false, "OpenStdin": true, "StdinOnce": true, "Labels": {"k": "v"},
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000},
            "HostConfig": {
                "Binds": ["data:/data", "/srv:/srv:ro"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                "Memory": 67108864, "NanoCpus": 500000000, "NetworkMode": "default",
                "Tmpfs": {"/run": "size=1m"}, "ExtraHosts": ["db:10.0.0.2"],
                "ShmSize": null, "PidsLimit": null, "Ulimits": null
            },
            "NetworkingConfig": {"EndpointsConfig": {}}, "StopTimeout": null,
            "SomethingNew": {"ignored": true}
        }"#)
        .unwrap();
        let o = &r.options;
        assert_eq!(r.image, "busybox");
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.interactive && o.stdin_once && o.detached);
        assert_eq!(o.memory, Some(64 << 20));
        assert_eq!(o.cpus, Some(0.5));
        assert_eq!(o.restart, RestartPolicy::OnFailure(2));
        assert_eq!(o.publish.len(), 1);
        assert_eq!(o.publish[0].host_port, 8080);
        // Ports published: the default bridge, as `estiba run -p` does.
        assert_eq!(o.network.name(), Some(estiba_net::network::DEFAULT_NETWORK));
        assert_eq!(o.mounts.len(), 3);
        assert_eq!(o.health.as_ref().unwrap().interval_ms, 1000);
        assert_eq!(o.labels["k"], "v");
    }

    #[test]
    fn an_entrypoint_list_is_the_program_and_the_first_arguments() {
        let r = req(r#"{"Image": "x", "Entrypoint": ["/bin/sh", "-c"], "Cmd": "echo"}"#).unwrap();
        assert_eq!(r.options.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(r.options.command, ["-c", "echo"]);
        let reset = req(r#"{"Image": "x", "Entrypoint": []}"#).unwrap();
        assert_eq!(reset.options.entrypoint.as_deref(), Some(""));
    }

    #[test]
    fn compose_networks_put_the_container_on_its_project_network_with_aliases() {
        let r = req(r#"{"Image": "x", "HostConfig": {"NetworkMode": "app_default"},
            "NetworkingConfig": {"EndpointsConfig": {"app_default": {"Aliases": ["web", "abc"]}}}}"#)
        .unwrap();
        assert_eq!(r.options.network.name(), Some("app_default"));
        assert_eq!(r.options.network_aliases, ["web", "abc"]);
    }

    #[test]
    fn bad_bodies_are_refused_with_what_is_wrong() {
        for (body, words) in [
            ("", "config cannot be empty"),
            ("{", "invalid JSON"),
            (r#"{"Image": 5}"#, "invalid JSON"),
            (r#"{"Cmd": ["true"]}"#, "no image"),
            (r#"{"Image": "x", "Env": "A=1"}"#, "invalid JSON"),
            (
                r#"{"Image": "x", "HostConfig": {"Binds": ["::"]}}"#,
                "invalid",
            ),
            (
                r#"{"Image": "x", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}"#,
                "restart policy",
            ),
            (
                r#"{"Image": "x", "HostConfig": {"PortBindings": {"http": [{"HostPort": "80"}]}}}"#,
                "invalid",
            ),
            (
                r#"{"Image": "x", "HostConfig": {"NetworkMode": "container:db"}}"#,
                "pods",
            ),
            (r#"{"Image": "x", "StopSignal": "SIGNOPE"}"#, "invalid"),
        ] {
            let e = req(body).unwrap_err();
            assert!(e.message.contains(words), "{body}: {}", e.message);
            assert!(e.status.is_client_error(), "{body}");
        }
        let both = req(r#"{"Image": "x", "HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "always"}}}"#)
            .unwrap_err();
        assert_eq!(both.status, axum::http::StatusCode::CONFLICT);
    }
}
