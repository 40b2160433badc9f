//! The options of `create`/`run`, checked where they arrive and before
//! anything runs: environment entries, sizes, mounts (`-v`, `--tmpfs`,
//! `--mount`), security options, network flags and limits. The bundle is
//! built from them in `prepare`.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use estiba_runtime::spec::{self, Network, Seccomp};
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::record::{CreateOptions, EgressPolicy, NetworkMode, PortMap};
use crate::{Error, Result};

/// `-e` and `--env-file` entries as `K=V`: a bare `K` takes this process's value.
pub fn collect_env(env: &[String], env_files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for path in env_files {
        let text = fs::read_to_string(path).ctx("reading env file", path)?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.extend(env.iter().cloned());
    Ok(out
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect())
}

/// The spec's view of the network: a named network is a namespace of its
/// own that the container joins by path, so its spec asks for none here.
pub fn spec_network(mode: &NetworkMode) -> Network {
    match mode {
        NetworkMode::Host => Network::Host,
        NetworkMode::None | NetworkMode::Named(_) => Network::None,
    }
}

/// Only `none` and `host`: for build steps.
pub fn parse_builtin_network(network: &str) -> Result<Network> {
    match network {
        "none" | "" | "host" => Ok(spec_network(&NetworkMode::parse(network)?)),
        other => Err(Error::Invalid {
            what: "network",
            value: other.to_string(),
            why: "build steps take none or host".into(),
        }),
    }
}

/// `--security-opt`, resolved: a seccomp profile file is read once, when
/// the container is created, and kept in its record (as docker does), so a
/// later change to the file does not change the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            no_new_privileges: true,
            seccomp: Seccomp::Default,
        }
    }
}

/// Parses `--security-opt` values: `no-new-privileges[=true|false]`,
/// `seccomp=unconfined` or `seccomp=FILE`.
pub fn parse_security_opts(opts: &[String]) -> Result<Security> {
    let mut security = Security::default();
    for opt in opts {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match (key, value) {
            ("no-new-privileges", "true") => security.no_new_privileges = true,
            ("no-new-privileges", "false") => security.no_new_privileges = false,
            ("seccomp", "unconfined") => security.seccomp = Seccomp::Unconfined,
            ("seccomp", file) => {
                let profile = fs::read_to_string(file).ctx("reading seccomp profile", file)?;
                security.seccomp = Seccomp::Profile(profile);
            }
            _ => return Err(Error::Invalid {
                what: "--security-opt",
                value: opt.clone(),
                why: "expected no-new-privileges[=true|false], seccomp=unconfined or seccomp=FILE"
                    .into(),
            }),
        }
    }
    Ok(security)
}

/// `64m`, `1g`, `512k`, `1048576`, with an optional trailing `b`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let bad = |why: &str| Error::Invalid {
        what: "size",
        value: s.to_string(),
        why: why.to_string(),
    };
    let owned = s.trim().to_ascii_lowercase();
    let mut lower = owned.as_str();
    if let Some(rest) = lower
        .strip_suffix('b')
        .filter(|r| r.ends_with(['k', 'm', 'g', 't']))
    {
        lower = rest;
    }
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| bad("expected a number with an optional k, m, g suffix"))?;
    let bytes = (n * mult as f64) as i64;
    if bytes < 4 << 20 {
        return Err(bad("the minimum memory limit is 4m"));
    }
    Ok(bytes)
}

/// A mount asked for with `-v`, `--tmpfs` or `--mount`. On disk it is
/// docker's `Mounts` shape: `{"Type": "bind", "Source", "Target", "ReadOnly"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", rename_all = "lowercase")]
pub enum MountSpec {
    Bind {
        #[serde(rename = "Source")]
        source: PathBuf,
        #[serde(rename = "Target")]
        destination: String,
        #[serde(rename = "ReadOnly", default)]
        read_only: bool,
    },
    Volume {
        #[serde(rename = "Source")]
        name: String,
        #[serde(rename = "Target")]
        destination: String,
        #[serde(rename = "ReadOnly", default)]
        read_only: bool,
    },
    Tmpfs {
        #[serde(rename = "Target")]
        destination: String,
        /// mount(8) options: `size=64m`, `mode=1777`, `noexec`.
        #[serde(rename = "Options", default)]
        options: Vec<String>,
    },
}

impl MountSpec {
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. }
            | MountSpec::Volume { destination, .. }
            | MountSpec::Tmpfs { destination, .. } => destination,
        }
    }
}

fn absolute(what: &'static str, spec: &str, path: &str) -> Result<String> {
    if path.starts_with('/') && !path.split('/').any(|c| c == "..") {
        Ok(path.to_string())
    } else {
        Err(Error::Invalid {
            what,
            value: spec.to_string(),
            why: format!("{path:?} must be an absolute path without '..'"),
        })
    }
}

/// `-v HOST:CTR[:ro|rw]` (a bind) or `-v NAME:CTR[:ro|rw]` (a named volume).
pub fn parse_volume(spec: &str) -> Result<MountSpec> {
    let bad = |why: &str| Error::Invalid {
        what: "volume",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts[..] {
        [s, d] => (s, d, "rw"),
        [s, d, m] => (s, d, m),
        _ => return Err(bad("expected HOST:CONTAINER[:ro] or NAME:CONTAINER[:ro]")),
    };
    let destination = absolute("volume", spec, destination)?;
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        _ => return Err(bad("the mode must be ro or rw")),
    };
    if source.starts_with('/') {
        Ok(MountSpec::Bind {
            source: PathBuf::from(source),
            destination,
            read_only,
        })
    } else if crate::volumes::valid_name(source) {
        Ok(MountSpec::Volume {
            name: source.to_string(),
            destination,
            read_only,
        })
    } else {
        Err(bad("the source must be an absolute host path or a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"))
    }
}

/// `--ulimit NAME=SOFT[:HARD]` (docker's form; HARD defaults to SOFT).
pub fn parse_ulimit(spec: &str) -> Result<estiba_runtime::spec::Rlimit> {
    let invalid = |why: String| Error::Invalid {
        what: "--ulimit",
        value: spec.to_string(),
        why,
    };
    let (name, values) = spec
        .split_once('=')
        .ok_or_else(|| invalid("give it as NAME=SOFT[:HARD]".into()))?;
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| invalid(format!("{v:?} is not a number")))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(values)?, number(values)?),
    };
    let r = estiba_runtime::spec::Rlimit {
        name: name.to_string(),
        soft,
        hard,
    };
    r.check().map_err(invalid)?;
    Ok(r)
}

/// `--tmpfs CTR[:size=64m,mode=1777]`.
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (dest, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let destination = absolute("--tmpfs", spec, dest)?;
    let options = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    Ok(MountSpec::Tmpfs {
        destination,
        options,
    })
}

/// docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`.
pub fn parse_mount(spec: &str) -> Result<MountSpec> {
    let bad = |why: &str| Error::Invalid {
        what: "--mount",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let (mut kind, mut source, mut target, mut read_only, mut options) =
        ("volume", None, None, false, Vec::new());
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        match k {
            "type" => kind = v,
            "source" | "src" => source = Some(v),
            "target" | "destination" | "dst" => target = Some(v),
            "readonly" | "ro" => read_only = v == "true" || v == "1",
            "tmpfs-size" => options.push(format!("size={v}")),
            "tmpfs-mode" => options.push(format!("mode={v}")),
            _ => return Err(bad(&format!("unknown field {k:?}"))),
        }
    }
    let destination = absolute(
        "--mount",
        spec,
        target.ok_or_else(|| bad("target= is required"))?,
    )?;
    match (kind, source) {
        ("bind", Some(s)) => Ok(MountSpec::Bind {
            source: PathBuf::from(absolute("--mount", spec, s)?),
            destination,
            read_only,
        }),
        ("volume", Some(s)) if crate::volumes::valid_name(s) => Ok(MountSpec::Volume {
            name: s.to_string(),
            destination,
            read_only,
        }),
        ("tmpfs", None) => Ok(MountSpec::Tmpfs {
            destination,
            options,
        }),
        ("tmpfs", Some(_)) => Err(bad("a tmpfs has no source")),
        ("bind" | "volume", _) => Err(bad(
            "source= is required (a host path for bind, a name for volume)",
        )),
        (other, _) => Err(bad(&format!(
            "unknown type {other:?}: bind, volume or tmpfs"
        ))),
    }
}

/// Every mount of `-v`, `--tmpfs` and `--mount` flags, in that order.
pub fn parse_mounts(
    volumes: &[String],
    tmpfs: &[String],
    mounts: &[String],
) -> Result<Vec<MountSpec>> {
    let volumes = volumes.iter().map(|v| parse_volume(v));
    let tmpfs = tmpfs.iter().map(|t| parse_tmpfs(t));
    let mounts = mounts.iter().map(|m| parse_mount(m));
    volumes.chain(tmpfs).chain(mounts).collect()
}

/// One `--add-host HOST:IP` line of /etc/hosts. On disk it is that string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub name: String,
    pub ip: Ipv4Addr,
}

impl std::str::FromStr for HostEntry {
    type Err = Error;

    fn from_str(entry: &str) -> Result<HostEntry> {
        let invalid = |why: &str| Error::Invalid {
            what: "--add-host",
            value: entry.to_string(),
            why: why.to_string(),
        };
        let (host, ip) = entry
            .split_once(':')
            .ok_or_else(|| invalid("give it as HOST:IP"))?;
        if !crate::network::valid_dns_name(host) {
            return Err(invalid("the host name is not a valid DNS name"));
        }
        let ip = ip.parse().map_err(|_| invalid("not an IPv4 address"))?;
        Ok(HostEntry {
            name: host.to_string(),
            ip,
        })
    }
}

impl std::fmt::Display for HostEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.ip)
    }
}

impl Serialize for HostEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `--ip` and `--dns` values.
pub fn parse_ipv4(what: &'static str, value: &str) -> Result<Ipv4Addr> {
    value.parse().map_err(|_| Error::Invalid {
        what,
        value: value.to_string(),
        why: "not an IPv4 address".into(),
    })
}

/// `--dns` values.
pub fn parse_dns(values: &[String]) -> Result<Vec<Ipv4Addr>> {
    values.iter().map(|d| parse_ipv4("--dns", d)).collect()
}

/// `--ip`, if given.
pub fn parse_ip(value: Option<&str>) -> Result<Option<Ipv4Addr>> {
    value.map(|ip| parse_ipv4("--ip", ip)).transpose()
}

/// `-p` specs, each range expanded to one mapping per port.
pub fn parse_publish(specs: &[String]) -> Result<Vec<PortMap>> {
    let mut out = Vec::new();
    for spec in specs {
        out.extend(estiba_net::ports::parse(spec)?);
    }
    Ok(out)
}

/// `--egress` and `--egress-allow`: None when neither is given (the
/// network's default applies).
pub fn parse_egress(egress: Option<&str>, allow: &[String]) -> Result<Option<EgressPolicy>> {
    if egress.is_none() && allow.is_empty() {
        return Ok(None);
    }
    Ok(Some(EgressPolicy::from_flags(egress, allow)?))
}

/// Flags that only mean something on a network, and the names and
/// addresses they carry.
fn validate_network_flags(options: &CreateOptions, builtin: bool) -> Result<()> {
    for (i, extra) in options.extra_networks.iter().enumerate() {
        let why = if builtin || matches!(extra.as_str(), "" | "none" | "host") {
            Some("none and host cannot be combined with other networks")
        } else if options.network.name() == Some(extra)
            || options.extra_networks[..i].contains(extra)
        {
            Some("named twice")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Invalid {
                what: "--network",
                value: format!("{},{}", options.network, options.extra_networks.join(",")),
                why: why.into(),
            });
        }
    }
    for alias in &options.network_aliases {
        if builtin {
            return Err(Error::Invalid {
                what: "--network-alias",
                value: alias.clone(),
                why: "needs --network NAME".into(),
            });
        }
        if !crate::network::valid_dns_name(alias) {
            return Err(Error::Invalid {
                what: "--network-alias",
                value: alias.clone(),
                why: "not a valid DNS name (letters, digits, '-' and '.')".into(),
            });
        }
    }
    Ok(())
}

/// Checks what the values' types cannot: how the options fit together.
/// Each value was parsed where it arrived (the CLI's flags, later the
/// agent's task definitions and the Docker API's JSON).
pub fn validate(options: &CreateOptions) -> Result<()> {
    crate::tuning::validate(options)?;
    validate_network_options(options)?;
    validate_limits(options)
}

/// Checks the network flags (of a container or a pod).
pub fn validate_network_options(options: &CreateOptions) -> Result<()> {
    let builtin = options.network.is_builtin();
    let needs_network = |what: &'static str, value: String, why: &str| {
        Err(Error::Invalid {
            what,
            value,
            why: why.into(),
        })
    };
    if builtin && (!options.publish.is_empty() || options.publish_all) {
        let value = options
            .publish
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>();
        return needs_network(
            "-p",
            value.join(" "),
            "publishing ports needs a network (--network NAME)",
        );
    }
    if builtin && options.egress.is_some() {
        return needs_network(
            "--egress",
            String::new(),
            "egress control needs a network (--network NAME)",
        );
    }
    validate_network_flags(options, builtin)?;
    if let (Some(ip), true) = (options.ip, builtin) {
        return needs_network("--ip", ip.to_string(), "needs --network NAME");
    }
    Ok(())
}

/// Checks the resource and capability flags.
fn validate_limits(options: &CreateOptions) -> Result<()> {
    if let Some(c) = options.cpus {
        if c <= 0.0 {
            return Err(Error::Invalid {
                what: "--cpus",
                value: c.to_string(),
                why: "must be above 0".into(),
            });
        }
    }
    for cap in options.cap_add.iter().chain(&options.cap_drop) {
        spec::cap_name(cap)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_writes_them() {
        let r = parse_ulimit("nofile=1024:4096").unwrap();
        assert_eq!((r.name.as_str(), r.soft, r.hard), ("nofile", 1024, 4096));
        assert_eq!(parse_ulimit("core=0").unwrap().hard, 0);
        for bad in ["nofile", "nofile=x", "nofile=10:5", "bogus=1"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("8388608").unwrap(), 8 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1k").is_err(), "below the minimum");
    }

    #[test]
    fn volumes_and_security_opts() {
        assert!(parse_volume("./relative:/x").is_err());
        assert!(parse_volume("/tmp:/x:zz").is_err());
        assert!(parse_volume("/tmp:x").is_err());
        assert!(parse_volume("/tmp:/x/../etc").is_err());
        assert!(matches!(
            parse_volume("/tmp:/x:ro").unwrap(),
            MountSpec::Bind {
                read_only: true,
                ..
            }
        ));
        assert!(matches!(
            parse_volume("data:/x").unwrap(),
            MountSpec::Volume {
                read_only: false,
                ..
            }
        ));
        assert_eq!(
            parse_mount("type=volume,source=data,target=/d,readonly").unwrap(),
            MountSpec::Volume {
                name: "data".into(),
                destination: "/d".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap(),
            MountSpec::Tmpfs {
                destination: "/t".into(),
                options: vec!["size=1m".into()]
            }
        );
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("type=nfs,source=a,target=/x").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=64m").unwrap(),
            MountSpec::Tmpfs {
                destination: "/run".into(),
                options: vec!["size=64m".into()]
            }
        );
        assert!(
            !parse_security_opts(&["no-new-privileges=false".into()])
                .unwrap()
                .no_new_privileges
        );
        assert_eq!(
            parse_security_opts(&["seccomp=unconfined".into()])
                .unwrap()
                .seccomp,
            Seccomp::Unconfined
        );
        assert!(parse_security_opts(&["apparmor=x".into()]).is_err());
    }

    #[test]
    fn env_entries_resolve() {
        let out = collect_env(&["A=1".into(), "ESTIBA_SURELY_UNSET_VAR".into()], &[]).unwrap();
        assert_eq!(out, vec!["A=1".to_string()]);
    }
}
