//! Redirects inside a container's network namespace: TCP connections to a
//! fixed address go to a service elsewhere, by a DNAT rule on the
//! namespace's own output path. ECS's task metadata endpoint is the user:
//! tasks reach 169.254.170.2:80 and land on their own node agent. The rule
//! lives in each task's namespace, not on the host, so two agents on one
//! host each serve their own tasks, and a rootless one needs no host rule.

use std::net::SocketAddrV4;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;

/// Connections to `from` go to `to` (TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
}

const TABLE: &str = "estiba_redirect";

/// The table's full text.
pub fn ruleset(redirects: &[Redirect]) -> String {
    let body: String = redirects
        .iter()
        .map(|r| {
            format!(
                "    ip daddr {} tcp dport {} dnat to {}\n",
                r.from.ip(),
                r.from.port(),
                r.to
            )
        })
        .collect();
    format!(
        "table ip {TABLE} {{}}\nflush table ip {TABLE}\ntable ip {TABLE} {{\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{body}  }}\n}}\n"
    )
}

/// Loads the redirects inside the namespace at `ns` (none: nothing to do).
pub fn apply(ns: &Path, redirects: &[Redirect]) -> Result<()> {
    if redirects.is_empty() {
        return Ok(());
    }
    crate::firewall::load_at(Some(ns), &ruleset(redirects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dnat_rule_per_redirect_in_a_table_of_its_own() {
        let r = Redirect {
            from: "169.254.170.2:80".parse().unwrap(),
            to: "10.90.0.1:51679".parse().unwrap(),
        };
        let text = ruleset(&[r]);
        assert!(text.contains("ip daddr 169.254.170.2 tcp dport 80 dnat to 10.90.0.1:51679"));
        assert!(text.contains("type nat hook output"));
        // Rewritten whole: loading it twice leaves one rule.
        assert!(text.starts_with("table ip estiba_redirect {}\nflush table ip estiba_redirect\n"));
    }
}
