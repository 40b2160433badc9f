//! The registry's configuration file (TOML), given to `serve --config`.
//!
//! ```toml
//! [auth]
//! service = "estiba-registry"   # the token's audience
//! token_ttl_secs = 300
//! realm = "https://registry.example/token"   # default: this server's /token
//!
//! [tls]
//! cert = "/etc/estiba/registry.crt"
//! key = "/etc/estiba/registry.key"
//!
//! [[policy]]                      # repository globs: `*` spans '/'
//! repositories = "team/*"
//! users = ["alice"]
//! groups = ["devs"]
//! anonymous = false
//! actions = ["pull", "push", "delete"]   # and "admin"
//!
//! [gc]
//! interval_secs = 3600
//! grace_secs = 3600
//!
//! [lifecycle]
//! interval_secs = 86400
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Action;
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub auth: AuthConfig,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub policy: Vec<Policy>,
    #[serde(default)]
    pub gc: GcConfig,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Where audit lines go; default `ROOT/audit.log`.
    pub audit_log: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "default_service")]
    pub service: String,
    #[serde(default = "default_ttl")]
    pub token_ttl_secs: u64,
    pub realm: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service: default_service(),
            token_ttl_secs: default_ttl(),
            realm: None,
        }
    }
}

fn default_service() -> String {
    "estiba-registry".into()
}

fn default_ttl() -> u64 {
    300
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Who may do what on the repositories matching a glob.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub repositories: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Applies to requests without credentials too.
    #[serde(default)]
    pub anonymous: bool,
    pub actions: Vec<Action>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// 0 turns the scheduled run off.
    #[serde(default = "default_gc_interval")]
    pub interval_secs: u64,
    /// Unreferenced blobs younger than this are kept: an upload or a push
    /// in progress may be about to reference them.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// Uploads untouched for this long are abandoned and removed.
    #[serde(default = "default_upload_expiry")]
    pub upload_expiry_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_secs: default_gc_interval(),
            grace_secs: default_grace(),
            upload_expiry_secs: default_upload_expiry(),
        }
    }
}

fn default_gc_interval() -> u64 {
    3600
}

fn default_grace() -> u64 {
    3600
}

fn default_upload_expiry() -> u64 {
    7 * 24 * 3600
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// 0 turns the scheduled run off.
    #[serde(default = "default_lifecycle_interval")]
    pub interval_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            interval_secs: default_lifecycle_interval(),
        }
    }
}

fn default_lifecycle_interval() -> u64 {
    24 * 3600
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        for p in &config.policy {
            glob::Pattern::new(&p.repositories).map_err(|e| {
                Error::Config(format!(
                    "{}: repositories glob {:?}: {e}",
                    path.display(),
                    p.repositories
                ))
            })?;
        }
        Ok(config)
    }
}
