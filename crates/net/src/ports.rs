//! Published ports, as root: nftables DNAT from a host port to a
//! container's address, including connections from the host's own
//! 127.0.0.1 (DNAT in the output hook, `route_localnet` on the bridge and a
//! masquerade so replies find their way back).
//!
//! Every mapping of the store is in `networks/ports.json` (changed under a
//! lock, replaced atomically); the NAT table is rebuilt from it, so a
//! container's rules go when its entry goes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, IoContext, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p` mapping. `host_port` 0 means "pick one" (`-P`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortMap {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// `-p`'s own syntax: `HOSTIP:HOSTPORT:CTRPORT/PROTO` (an empty host port
/// for "pick one").
impl std::fmt::Display for PortMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.host_port {
            0 => String::new(),
            p => p.to_string(),
        };
        let (ip, ctr, proto) = (self.host_ip, self.container_port, self.proto.as_str());
        write!(f, "{ip}:{host}:{ctr}/{proto}")
    }
}

fn invalid(spec: &str, why: &str) -> Error {
    Error::Invalid {
        what: "port mapping",
        value: spec.to_string(),
        why: why.to_string(),
    }
}

fn port_range(s: &str, spec: &str) -> Result<(u16, u16)> {
    let parse = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(spec, "ports are 1 to 65535")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                return Err(invalid(spec, "a range goes up"));
            }
            Ok((a, b))
        }
        None => {
            let p = parse(s)?;
            Ok((p, p))
        }
    }
}

/// Parses `[HOSTIP:][HOSTPORT[-END]:]CTRPORT[-END][/tcp|/udp]`.
pub fn parse(spec: &str) -> Result<Vec<PortMap>> {
    let (main, proto) = match spec.rsplit_once('/') {
        Some((m, "tcp")) => (m, Proto::Tcp),
        Some((m, "udp")) => (m, Proto::Udp),
        Some(_) => return Err(invalid(spec, "the protocol is tcp or udp")),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = main.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
        _ => return Err(invalid(spec, "use [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]")),
    };
    let host_ip = match ip {
        Some(ip) => ip
            .parse()
            .map_err(|_| invalid(spec, "the host address is not IPv4"))?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    let (c0, c1) = port_range(ctr, spec)?;
    let (h0, h1) = match host {
        Some(h) => port_range(h, spec)?,
        None => (0, 0),
    };
    if host.is_some() && h1 - h0 != c1 - c0 {
        return Err(invalid(
            spec,
            "the host and container ranges differ in length",
        ));
    }
    Ok((0..=(c1 - c0))
        .map(|i| PortMap {
            host_ip,
            host_port: if host.is_some() { h0 + i } else { 0 },
            container_port: c0 + i,
            proto,
        })
        .collect())
}

/// A published mapping and where it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Published {
    #[serde(flatten)]
    pub map: PortMap,
    pub container_ip: Ipv4Addr,
    pub bridge: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PortFile {
    /// Container id → its mappings.
    containers: BTreeMap<String, Vec<Published>>,
}

pub struct Ports {
    path: PathBuf,
    table: String,
    nat: bool,
}

/// A host port nothing listens on now, for `-P`.
fn free_port(proto: Proto, ip: Ipv4Addr, taken: &[u16]) -> Result<u16> {
    for _ in 0..64 {
        let port = match proto {
            Proto::Tcp => std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()),
            Proto::Udp => std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()),
        }
        .map(|a| a.port())
        .map_err(|e| Error::Invalid {
            what: "port",
            value: ip.to_string(),
            why: e.to_string(),
        })?;
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(Error::Unsupported("no free host port found".into()))
}

fn overlaps(a: &PortMap, b: &PortMap) -> bool {
    a.proto == b.proto
        && a.host_port == b.host_port
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
}

impl Ports {
    /// `nat`: forward with the kernel's NAT (root); rootless, the
    /// userspace forwarder reads the file instead.
    pub fn new(dir: &Path, table: &str, nat: bool) -> Ports {
        Ports {
            path: dir.join(".ports.json"),
            table: format!("{table}_nat"),
            nat,
        }
    }

    /// Runs `f` on the port file under its lock; a change reloads the NAT
    /// table (most containers publish nothing: then there is no nft run).
    fn with<T>(&self, f: impl FnOnce(&mut PortFile) -> Result<T>) -> Result<T> {
        crate::state::update(&self.path, f, |file: &PortFile| {
            if !self.nat {
                return Ok(());
            }
            crate::firewall::load(
                None,
                &nat_ruleset(&self.table, file),
                &self.table,
                file.containers.is_empty(),
            )
        })
    }

    /// Publishes a container's ports: refused if another container holds
    /// one, or if something on the host listens on it.
    pub fn publish(
        &self,
        container: &str,
        maps: &[PortMap],
        container_ip: Ipv4Addr,
        bridge: &str,
    ) -> Result<Vec<Published>> {
        self.with(|file| {
            // A restart keeps what the container had (random ports too).
            if let Some(existing) = file.containers.get(container) {
                return Ok(existing.clone());
            }
            let mut taken: Vec<PortMap> = file
                .containers
                .values()
                .flatten()
                .map(|p| p.map.clone())
                .collect();
            let mut out = Vec::new();
            for m in maps {
                let mut m = m.clone();
                if m.host_port == 0 {
                    let ports: Vec<u16> = taken.iter().map(|t| t.host_port).collect();
                    m.host_port = free_port(m.proto, m.host_ip, &ports)?;
                } else {
                    if let Some((owner, _)) = file
                        .containers
                        .iter()
                        .find(|(_, ps)| ps.iter().any(|p| overlaps(&p.map, &m)))
                    {
                        return Err(Error::Invalid {
                            what: "port",
                            value: format!("{}:{}/{}", m.host_ip, m.host_port, m.proto.as_str()),
                            why: format!(
                                "already published by container {}",
                                &owner[..owner.len().min(12)]
                            ),
                        });
                    }
                    let busy = match m.proto {
                        Proto::Tcp => {
                            std::net::TcpListener::bind((m.host_ip, m.host_port)).is_err()
                        }
                        Proto::Udp => std::net::UdpSocket::bind((m.host_ip, m.host_port)).is_err(),
                    };
                    if busy {
                        return Err(Error::Invalid {
                            what: "port",
                            value: format!("{}:{}/{}", m.host_ip, m.host_port, m.proto.as_str()),
                            why: "something on the host already listens on it".into(),
                        });
                    }
                }
                taken.push(m.clone());
                out.push(Published {
                    map: m,
                    container_ip,
                    bridge: bridge.to_string(),
                });
            }
            if !out.is_empty() {
                file.containers.insert(container.to_string(), out.clone());
            }
            Ok(out)
        })
    }

    pub fn unpublish(&self, container: &str) -> Result<()> {
        self.with(|file| {
            file.containers.remove(container);
            Ok(())
        })
    }

    pub fn of(&self, container: &str) -> Result<Vec<Published>> {
        match std::fs::read(&self.path) {
            Ok(d) => {
                let file: PortFile =
                    serde_json::from_slice(&d).map_err(|e| invalid("ports", &e.to_string()))?;
                Ok(file.containers.get(container).cloned().unwrap_or_default())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).ctx("reading", &self.path),
        }
    }

    /// Drops the mappings of containers that are gone.
    pub fn retain(&self, alive: impl Fn(&str) -> bool) -> Result<()> {
        self.with(|file| {
            file.containers.retain(|c, _| alive(c));
            Ok(())
        })
    }
}

fn nat_ruleset(table: &str, file: &PortFile) -> String {
    let (mut pre, mut out, mut post) = (Vec::new(), Vec::new(), Vec::new());
    let mut bridges: Vec<&str> = Vec::new();
    for p in file.containers.values().flatten() {
        let m = &p.map;
        let daddr = if m.host_ip.is_unspecified() {
            "fib daddr type local".to_string()
        } else {
            format!("ip daddr {}", m.host_ip)
        };
        let rule = format!(
            "{daddr} {} dport {} dnat to {}:{}",
            m.proto.as_str(),
            m.host_port,
            p.container_ip,
            m.container_port
        );
        pre.push(rule.clone());
        out.push(rule);
        if !bridges.contains(&p.bridge.as_str()) {
            bridges.push(&p.bridge);
        }
    }
    for b in bridges {
        // Connections from the host's 127.0.0.1 leave with the bridge's address.
        post.push(format!("ip saddr 127.0.0.0/8 oifname \"{b}\" masquerade"));
    }
    let lines = |v: &[String]| v.iter().map(|r| format!("    {r}\n")).collect::<String>();
    format!(
        "table ip {table} {{}}\nflush table ip {table}\ntable ip {table} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{}  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{}  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{}  }}\n}}\n",
        lines(&pre),
        lines(&out),
        lines(&post)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings() {
        let m = parse("127.0.0.1:18080:80").unwrap();
        assert_eq!(
            m,
            [PortMap {
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 18080,
                container_port: 80,
                proto: Proto::Tcp
            }]
        );
        let m = parse("8000-8002:80-82/udp").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[2].host_port, m[2].container_port, m[2].proto),
            (8002, 82, Proto::Udp)
        );
        assert_eq!(parse("80").unwrap()[0].host_port, 0);
        assert_eq!(parse("127.0.0.1::80").unwrap()[0].host_port, 0);
        for bad in [
            "",
            "x",
            "80:",
            ":80",
            "0:80",
            "70000:80",
            "8000-8001:80",
            "1:2:3:4",
            "80/sctp",
            "localhost:1:2",
            "9-8:9-8",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_cover_the_host_itself() {
        let mut file = PortFile::default();
        file.containers.insert(
            "c".into(),
            vec![Published {
                map: parse("127.0.0.1:18080:80").unwrap().remove(0),
                container_ip: Ipv4Addr::new(10, 90, 1, 2),
                bridge: "es-x".into(),
            }],
        );
        let text = nat_ruleset("t_nat", &file);
        assert!(text.contains("ip daddr 127.0.0.1 tcp dport 18080 dnat to 10.90.1.2:80"));
        assert!(text.contains("type nat hook output"));
        assert!(text.contains("ip saddr 127.0.0.0/8 oifname \"es-x\" masquerade"));
    }
}
