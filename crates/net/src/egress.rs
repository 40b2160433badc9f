//! Egress control: what a container may connect to. The rules live in the
//! container's own network namespace (table `inet estiba_egress`), where a
//! process inside cannot change them: containers have no CAP_NET_ADMIN.
//! Denied packets are dropped and counted.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ipam::Subnet;
use crate::ports::Proto;
use crate::{Error, Result};

const TABLE: &str = "estiba_egress";

/// One `--egress-allow CIDR[:PORT[/PROTO]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allow {
    pub net: String,
    pub port: Option<u16>,
    pub proto: Proto,
}

pub fn parse_allow(spec: &str) -> Result<Allow> {
    let invalid = |why: &str| Error::Invalid {
        what: "--egress-allow",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let (addr, rest) = match spec.split_once(':') {
        Some((a, r)) => (a, Some(r)),
        None => (spec, None),
    };
    let net = if addr.contains('/') {
        let s: Subnet = addr
            .parse()
            .map_err(|_| invalid("give CIDR[:PORT[/tcp|udp]], e.g. 10.0.0.0/8:443/tcp"))?;
        s.to_string()
    } else {
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| invalid("give CIDR[:PORT[/tcp|udp]], e.g. 10.0.0.0/8:443/tcp"))?;
        format!("{ip}/32")
    };
    let (port, proto) = match rest {
        None => (None, Proto::Tcp),
        Some(r) => {
            let (p, proto) = match r.split_once('/') {
                Some((p, "tcp")) => (p, Proto::Tcp),
                Some((p, "udp")) => (p, Proto::Udp),
                Some(_) => return Err(invalid("the protocol is tcp or udp")),
                None => (r, Proto::Tcp),
            };
            let port: u16 = p
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("ports are 1 to 65535"))?;
            (Some(port), proto)
        }
    };
    Ok(Allow { net, port, proto })
}

/// The policy: `deny` drops everything not allowed; `allow` (with no
/// allow-list) leaves egress open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub deny: bool,
    pub allow: Vec<Allow>,
}

impl Policy {
    /// From `--egress` and `--egress-allow`; an allow-list implies deny.
    pub fn from_flags(egress: Option<&str>, allow: &[String]) -> Result<Policy> {
        let deny = match egress {
            None => !allow.is_empty(),
            Some("deny") => true,
            Some("allow") if allow.is_empty() => false,
            Some("allow") => true,
            Some(other) => {
                return Err(Error::Invalid {
                    what: "--egress",
                    value: other.to_string(),
                    why: "deny or allow".into(),
                })
            }
        };
        Ok(Policy {
            deny,
            allow: allow
                .iter()
                .map(|a| parse_allow(a))
                .collect::<Result<_>>()?,
        })
    }

    pub fn is_open(&self) -> bool {
        !self.deny
    }
}

/// The rules: loopback, replies and the container's own networks always;
/// then the allow-list; the rest is counted and dropped.
pub fn ruleset(policy: &Policy, own: &[String]) -> String {
    let mut rules = vec![
        "oifname \"lo\" accept".to_string(),
        "ct state established,related accept".to_string(),
        format!("ip daddr {{ {} }} accept", own.join(", ")),
    ];
    for a in &policy.allow {
        rules.push(match a.port {
            Some(p) => format!("ip daddr {} {} dport {p} accept", a.net, a.proto.as_str()),
            None => format!("ip daddr {} accept", a.net),
        });
    }
    rules.push("counter drop".into());
    let body: String = rules.iter().map(|r| format!("    {r}\n")).collect();
    format!(
        "table inet {TABLE} {{}}\nflush table inet {TABLE}\ntable inet {TABLE} {{\n  chain output {{\n    type filter hook output priority filter; policy accept;\n{body}  }}\n}}\n"
    )
}

/// Applies a closed policy inside the namespace at `ns`.
pub fn apply(ns: &Path, policy: &Policy, own: &[String]) -> Result<()> {
    if policy.is_open() {
        return Ok(());
    }
    crate::firewall::load_at(Some(ns), &ruleset(policy, own))
}

/// Packets the policy dropped so far (0 if there is no policy).
pub fn dropped(ns: &Path) -> u64 {
    if !ns.exists() {
        return 0;
    }
    let args = ["-j", "list", "chain", "inet", TABLE, "output"];
    crate::netns::within(Some(ns), || crate::firewall::nft(&args, ""))
        .map_or(0, |json| dropped_in(&json))
}

/// The drop counter in `nft -j list chain`'s output: the rule whose
/// expressions are a counter and a drop.
fn dropped_in(json: &str) -> u64 {
    let Ok(listing) = serde_json::from_str::<serde_json::Value>(json) else {
        return 0;
    };
    let items = listing["nftables"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| item["rule"]["expr"].as_array())
        .find(|expr| expr.iter().any(|e| e.get("drop").is_some()))
        .and_then(|expr| expr.iter().find_map(|e| e["counter"]["packets"].as_u64()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_specs() {
        assert_eq!(parse_allow("10.1.2.3").unwrap().net, "10.1.2.3/32");
        let a = parse_allow("10.0.0.0/8:443/udp").unwrap();
        assert_eq!(
            (a.net.as_str(), a.port, a.proto),
            ("10.0.0.0/8", Some(443), Proto::Udp)
        );
        for bad in [
            "",
            "x",
            "10.0.0.1/40",
            "10.0.0.1:0",
            "10.0.0.1:80/icmp",
            "10.0.0.1:x",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
        assert!(Policy::from_flags(None, &["10.0.0.1".into()]).unwrap().deny);
        assert!(Policy::from_flags(Some("allow"), &[]).unwrap().is_open());
        assert!(Policy::from_flags(Some("maybe"), &[]).is_err());
        let text = ruleset(
            &Policy::from_flags(Some("deny"), &["10.9.0.2:8080".into()]).unwrap(),
            &["10.90.1.0/24".to_string()],
        );
        assert!(text.contains("ip daddr 10.9.0.2/32 tcp dport 8080 accept"));
        assert!(text.contains("counter drop"));
    }

    #[test]
    fn the_drop_counter_is_read_from_nfts_json() {
        // As nft 1.0.6 prints `-j list chain inet estiba_egress output`.
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
          {"chain": {"family": "inet", "table": "estiba_egress", "name": "output", "handle": 1}},
          {"rule": {"family": "inet", "table": "estiba_egress", "chain": "output", "handle": 2,
            "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "lo"}},
                     {"accept": null}]}},
          {"rule": {"family": "inet", "table": "estiba_egress", "chain": "output", "handle": 5,
            "expr": [{"counter": {"packets": 3, "bytes": 180}}, {"drop": null}]}}]}"#;
        assert_eq!(dropped_in(json), 3);
        assert_eq!(dropped_in("not json"), 0);
        assert_eq!(dropped_in(r#"{"nftables": []}"#), 0);
    }
}
