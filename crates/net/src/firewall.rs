//! Segmentation in nftables: a table of estiba's own (one per store, see
//! `Networks::table`), rewritten whole from the list of networks, so it
//! never drifts from them.
//! - Traffic from one estiba bridge to another is dropped.
//! - An internal network's traffic to and from anything but its own
//!   bridge is dropped: no route out.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::network::NetworkRecord;
use crate::{Error, Result};

/// The table's full text for these networks.
pub fn ruleset(table: &str, networks: &[NetworkRecord]) -> String {
    let mut rules = Vec::new();
    for n in networks {
        let b = &n.bridge;
        rules.push(format!(
            "iifname \"{b}\" oifname \"es-*\" oifname != \"{b}\" drop"
        ));
        if n.internal {
            rules.push(format!("iifname \"{b}\" oifname != \"{b}\" drop"));
            rules.push(format!("oifname \"{b}\" iifname != \"{b}\" drop"));
        }
    }
    let body: String = rules.iter().map(|r| format!("    {r}\n")).collect();
    format!(
        "table inet {table} {{}}\nflush table inet {table}\ntable inet {table} {{\n  chain forward {{\n    type filter hook forward priority filter; policy accept;\n{body}  }}\n}}\n"
    )
}

/// Loads the ruleset for `networks` where the bridges are (the host, or
/// the rootless hub); with none left, removes the table.
pub fn sync(hub: Option<&Path>, table: &str, networks: &[NetworkRecord]) -> Result<()> {
    load(
        hub,
        &ruleset(table, networks),
        &format!("inet {table}"),
        networks.is_empty(),
    )
}

/// Loads an nft script; `empty` removes the table (`family name`) instead.
pub(crate) fn load(ns: Option<&Path>, script: &str, table: &str, empty: bool) -> Result<()> {
    let table = if table.contains(' ') {
        table.to_string()
    } else {
        format!("ip {table}")
    };
    let script = if empty {
        format!("table {table} {{}}\ndelete table {table}\n")
    } else {
        script.to_string()
    };
    load_at(ns, &script)
}

/// Loads an nft script on the host, or inside the network namespace at
/// `ns` (nft is spawned from a thread that entered it).
pub(crate) fn load_at(ns: Option<&Path>, script: &str) -> Result<()> {
    crate::netns::within(ns, || nft(&["-f", "-"], script)).map(drop)
}

/// Runs `nft ARGS…` with `input` on its stdin and returns its stdout.
pub(crate) fn nft(args: &[&str], input: &str) -> Result<String> {
    let command = || format!("nft {}", args.join(" "));
    let failed = |e: std::io::Error| Error::Command {
        command: command(),
        stderr: e.to_string(),
    };
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(failed)?;
    if !out.status.success() {
        return Err(Error::Command {
            command: command(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_networks_get_no_route_out() {
        let net = |name: &str, internal| NetworkRecord {
            name: name.into(),
            id: "0".repeat(64),
            driver: "bridge".into(),
            subnet: "10.90.1.0/24".into(),
            gateway: "10.90.1.1".parse().unwrap(),
            internal,
            bridge: format!("es-{name}"),
            created: String::new(),
            egress: Default::default(),
        };
        let text = ruleset("estiba", &[net("a", false), net("b", true)]);
        assert!(text.contains("iifname \"es-a\" oifname \"es-*\" oifname != \"es-a\" drop"));
        assert!(text.contains("iifname \"es-b\" oifname != \"es-b\" drop"));
        assert!(!text.contains("iifname \"es-a\" oifname != \"es-a\" drop"));
    }
}
