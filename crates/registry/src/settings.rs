//! A repository's own settings, kept with it in storage: immutable tags,
//! lifecycle rules, required signatures, scan on push.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Storage;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoSettings {
    /// Tags cannot be moved to another manifest once pushed.
    #[serde(default)]
    pub immutable_tags: bool,
    /// Tags matching these globs stay mutable (for example `latest`, `dev-*`).
    #[serde(default)]
    pub mutable_tag_filters: Vec<String>,
    #[serde(default)]
    pub lifecycle: Vec<crate::lifecycle::Rule>,
    /// Serve a manifest only when a valid signature by one of
    /// `trusted_keys` is attached to it.
    #[serde(default)]
    pub require_signature: bool,
    /// PEM public keys (SPKI).
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Audit each pushed image; its findings are stored as a referrer
    /// artifact (`scan::FINDINGS_ARTIFACT`).
    #[serde(default)]
    pub scan_on_push: bool,
    /// With `scan_on_push`: findings of these severities refuse the push.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_on: Vec<String>,
    /// The ECR lifecycle-policy JSON as it was put (its rules are in
    /// `lifecycle`), returned by GetLifecyclePolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecr_lifecycle_policy: Option<String>,
    /// When the repository was made through the ECR API, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The ECR repository policy as it was set, and what it grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<RepositoryPolicy>,
    /// Resource tags (TagResource).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

impl RepoSettings {
    pub fn load(storage: &dyn Storage, repo: &str) -> Result<RepoSettings> {
        match storage.repository_settings(repo)? {
            None => Ok(RepoSettings::default()),
            Some(data) => serde_json::from_slice(&data).map_err(|e| Error::Malformed {
                what: format!("settings of {repo}"),
                why: e.to_string(),
            }),
        }
    }

    pub fn save(&self, storage: &dyn Storage, repo: &str) -> Result<()> {
        for f in &self.mutable_tag_filters {
            glob::Pattern::new(f).map_err(|e| Error::Config(format!("tag filter {f:?}: {e}")))?;
        }
        for rule in &self.lifecycle {
            rule.validate()?;
        }
        for key in &self.trusted_keys {
            crate::trust::PublicKey::from_pem(key)?;
        }
        for severity in &self.block_on {
            if estiba_audit::Severity::parse(severity).is_none() {
                return Err(Error::Config(format!(
                    "block-on {severity:?}: the severities are info, low, medium, high and critical"
                )));
            }
        }
        if !self.block_on.is_empty() && !self.scan_on_push {
            return Err(Error::Config("block-on needs scan-on-push".into()));
        }
        let data = serde_json::to_vec_pretty(self).map_err(|e| Error::Malformed {
            what: "settings".into(),
            why: e.to_string(),
        })?;
        storage.set_repository_settings(repo, &data)
    }

    /// True if pushing `tag` to another manifest must fail.
    pub fn tag_is_immutable(&self, tag: &str) -> bool {
        self.immutable_tags
            && !self
                .mutable_tag_filters
                .iter()
                .filter_map(|f| glob::Pattern::new(f).ok())
                .any(|g| g.matches(tag))
    }
}

/// An ECR repository policy (SetRepositoryPolicy): its text, and its
/// Allow statements as grants of the registry's actions to users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryPolicy {
    pub text: String,
    pub grants: Vec<PolicyGrant>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyGrant {
    /// User names; `*` is any user with credentials.
    pub users: Vec<String>,
    pub actions: Vec<crate::auth::Action>,
}
