//! Stored registry credentials, in docker's `config.json` format so docker,
//! podman and skopeo read the same file: `{"auths":{"host:port":{"auth":
//! base64("user:password")}}}`. The file is written owner-only (0600) and
//! its other keys are kept.
//!
//! The file is `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, IoContext, Result};

pub fn auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".docker").join("config.json")
}

fn read() -> Result<Map<String, Value>> {
    let path = auth_file();
    match std::fs::read(&path) {
        Ok(data) => match serde_json::from_slice(&data) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::Malformed {
                what: path.display().to_string(),
                why: "not a JSON object".into(),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).ctx("reading", &path),
    }
}

fn write(config: &Map<String, Value>) -> Result<()> {
    let path = auth_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    let data = serde_json::to_vec_pretty(config).map_err(|e| Error::Malformed {
        what: "credentials".into(),
        why: e.to_string(),
    })?;
    Ok(estiba_os::write_private(&path, &data)?)
}

pub fn store(registry: &str, user: &str, password: &str) -> Result<()> {
    let mut config = read()?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if let Some(map) = auths.as_object_mut() {
        map.insert(registry.to_string(), serde_json::json!({ "auth": encoded }));
    }
    write(&config)
}

/// Forgets a registry's credentials; false if there were none.
pub fn remove(registry: &str) -> Result<bool> {
    let mut config = read()?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .is_some_and(|m| m.remove(registry).is_some());
    if removed {
        write(&config)?;
    }
    Ok(removed)
}

/// The stored user and password for a registry.
pub fn lookup(registry: &str) -> Result<Option<(String, String)>> {
    let config = read()?;
    let Some(entry) = config.get("auths").and_then(|a| a.get(registry)) else {
        return Ok(None);
    };
    let Some(encoded) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| Error::Malformed {
            what: format!("credentials for {registry}"),
            why: "not base64 of user:password".into(),
        })?;
    Ok(decoded
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string())))
}
