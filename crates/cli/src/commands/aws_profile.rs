//! `cluster up --write-aws-profile`: an `estiba` profile for the AWS CLI
//! and the SDKs.
//!
//! - `~/.aws/credentials` gets `[estiba]` with the key;
//! - `~/.aws/config` gets `[profile estiba]` with `region = estiba` and
//!   `endpoint_url` (which AWS CLI 2.13 and later honour);
//! - older AWS CLIs (Debian 12 has 2.9) know no `endpoint_url` in a
//!   profile, but they read endpoint rules from `~/.aws/models`: the
//!   installed rules for ECS are copied there with one rule in front,
//!   sending the `estiba` region to this endpoint. Every other region
//!   resolves as before.
//!
//! Other sections of both files are kept as they are.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use estiba_cluster::users::AccessKey;
use serde_json::{json, Value};

/// The region the profile names, which the endpoint rule matches.
pub const REGION: &str = "estiba";

/// Where installed AWS CLIs and botocore keep ECS's endpoint rules.
const RULE_DIRS: &[&str] = &[
    "/usr/lib/python3/dist-packages/awscli/botocore/data/ecs",
    "/usr/lib/python3/dist-packages/botocore/data/ecs",
];

/// Replaces (or appends) `[section]` of an INI text with `body` lines.
pub fn set_section(text: &str, section: &str, body: &[String]) -> String {
    let header = format!("[{section}]");
    let mut out = Vec::new();
    let mut skipping = false;
    let mut done = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == header;
            if skipping {
                out.push(header.clone());
                out.extend(body.iter().cloned());
                done = true;
                continue;
            }
        }
        if !skipping {
            out.push(line.to_string());
        }
    }
    if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(header);
        out.extend(body.iter().cloned());
    }
    out.join("\n") + "\n"
}

fn edit(path: &Path, section: &str, body: &[String]) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = set_section(&old, section, body);
    estiba_os::write_private(path, new.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// ECS's endpoint rules with one in front for the `estiba` region.
pub fn rules_with(endpoint: &str, mut rules: Value) -> Value {
    let ours = json!({
        "conditions": [{"fn": "stringEquals", "argv": [{"ref": "Region"}, REGION]}],
        "endpoint": {"url": endpoint, "properties": {}, "headers": {}},
        "type": "endpoint",
    });
    if let Some(list) = rules.get_mut("rules").and_then(Value::as_array_mut) {
        list.insert(0, ours);
    }
    rules
}

/// Writes the profile; returns the files written.
pub fn write(profile: &str, endpoint: &str, key: &AccessKey) -> Result<Vec<PathBuf>> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let aws = Path::new(&home).join(".aws");
    std::fs::create_dir_all(&aws).with_context(|| format!("creating {}", aws.display()))?;
    let credentials = aws.join("credentials");
    edit(
        &credentials,
        profile,
        &[
            format!("aws_access_key_id = {}", key.access_key_id),
            format!("aws_secret_access_key = {}", key.secret_access_key),
        ],
    )?;
    let config = aws.join("config");
    edit(
        &config,
        &format!("profile {profile}"),
        &[
            format!("region = {REGION}"),
            format!("endpoint_url = {endpoint}"),
            "output = json".into(),
        ],
    )?;
    let mut written = vec![credentials, config];
    for dir in RULE_DIRS {
        let Ok(versions) = std::fs::read_dir(dir) else {
            continue;
        };
        for v in versions.flatten() {
            let src = v.path().join("endpoint-rule-set-1.json");
            let Ok(text) = std::fs::read_to_string(&src) else {
                continue;
            };
            let rules: Value = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", src.display()))?;
            let dest_dir = aws.join("models/ecs").join(v.file_name());
            std::fs::create_dir_all(&dest_dir)?;
            let dest = dest_dir.join("endpoint-rule-set-1.json");
            estiba_os::write_atomic(&dest, rules_with(endpoint, rules).to_string().as_bytes())?;
            written.push(dest);
        }
        break;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_and_the_others_kept() {
        let text =
            "[default]\nregion = eu-west-1\n\n[profile estiba]\nregion = old\n[other]\nx = 1\n";
        let out = set_section(text, "profile estiba", &["region = estiba".into()]);
        assert_eq!(
            out,
            "[default]\nregion = eu-west-1\n\n[profile estiba]\nregion = estiba\n[other]\nx = 1\n"
        );
        let added = set_section("[default]\nregion = x", "estiba", &["k = v".into()]);
        assert_eq!(added, "[default]\nregion = x\n\n[estiba]\nk = v\n");
        assert_eq!(set_section("", "a", &[]), "[a]\n");
    }

    #[test]
    fn the_estiba_rule_comes_first() {
        let rules = json!({"version": "1.0", "rules": [{"type": "error"}]});
        let out = rules_with("http://127.0.0.1:8440", rules);
        assert_eq!(out["rules"][0]["endpoint"]["url"], "http://127.0.0.1:8440");
        assert_eq!(out["rules"][1]["type"], "error");
    }
}
