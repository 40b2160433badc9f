//! Registry checks: what a registry lets in and keeps. The CLI probes the
//! registry over HTTP (TLS, an anonymous upload) and, when the registry
//! is served from this host, reads its configuration and repositories.

use crate::catalog::TargetKind;
use crate::finding::{Finding, Location, Target};

/// One repository's settings and contents.
#[derive(Clone, Debug, Default)]
pub struct RepoFacts {
    pub name: String,
    pub immutable_tags: bool,
    pub has_lifecycle: bool,
    pub require_signature: bool,
    pub tags: Vec<String>,
    /// Tags whose manifests carry no valid signature by a trusted key.
    pub unsigned_tags: Vec<String>,
}

/// What the registry audit judges.
#[derive(Clone, Debug, Default)]
pub struct RegistryFacts {
    /// The address as given.
    pub url: String,
    pub tls: bool,
    /// An upload without credentials was accepted (and then cancelled).
    pub anonymous_push: bool,
    /// Configured policies that let anyone push, by their repositories glob.
    pub anonymous_push_policies: Vec<String>,
    /// Whether the local configuration and storage were read.
    pub local: bool,
    pub repos: Vec<RepoFacts>,
    pub gc_scheduled: bool,
    pub gc_ran: bool,
}

/// A tag that names a release: `1.2`, `v2.0.1`, `3.19-alpine`.
pub fn release_tag(tag: &str) -> bool {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let version = t.split(['-', '+']).next().unwrap_or(t);
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

pub fn audit(f: &RegistryFacts) -> Vec<Finding> {
    let target = Target::new(TargetKind::Registry, f.url.clone());
    let mut out = Vec::new();
    let mut found = |id: &str, what: String, message: String| {
        out.push(Finding::new(
            id,
            &target,
            Location::Config { field: what },
            message,
        ));
    };
    if f.anonymous_push {
        found(
            "ESB-R-001",
            "push".into(),
            "an upload without credentials was accepted".into(),
        );
    }
    for glob in &f.anonymous_push_policies {
        let m = format!("a policy lets anyone push to {glob}");
        found("ESB-R-001", "policy".into(), m);
    }
    if !f.tls {
        found(
            "ESB-R-002",
            "tls".into(),
            format!("{} answers over plain HTTP", f.url),
        );
    }
    for r in &f.repos {
        let at = format!("repositories/{}", r.name);
        let releases: Vec<&str> = r
            .tags
            .iter()
            .map(String::as_str)
            .filter(|t| release_tag(t))
            .collect();
        if !r.immutable_tags && !releases.is_empty() {
            let m = format!(
                "{} holds releases ({}) whose tags can be moved",
                r.name,
                releases.join(", ")
            );
            found("ESB-R-003", at.clone(), m);
        }
        if !r.has_lifecycle {
            found(
                "ESB-R-004",
                at.clone(),
                format!("{} has no lifecycle policy", r.name),
            );
        }
        if r.require_signature && !r.unsigned_tags.is_empty() {
            let m = format!(
                "{} requires signatures, and {} are unsigned",
                r.name,
                r.unsigned_tags.join(", ")
            );
            found("ESB-R-005", at.clone(), m);
        }
    }
    if f.local && !f.gc_scheduled && !f.gc_ran {
        found(
            "ESB-R-006",
            "gc".into(),
            "garbage collection is not scheduled and has never run".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_by_their_tags() {
        for t in ["1.2", "v2.0.1", "3.19-alpine", "1.0.0+build"] {
            assert!(release_tag(t), "{t}");
        }
        for t in ["latest", "dev", "1", "v", "main-3.1x", "1..2"] {
            assert!(!release_tag(t), "{t}");
        }
    }

    #[test]
    fn each_lapse_names_its_rule_and_a_careful_registry_has_none() {
        let careful = RegistryFacts {
            url: "https://registry.lan:5000".into(),
            tls: true,
            local: true,
            gc_scheduled: true,
            repos: vec![RepoFacts {
                name: "app".into(),
                immutable_tags: true,
                has_lifecycle: true,
                require_signature: true,
                tags: vec!["1.0".into()],
                unsigned_tags: vec![],
            }],
            ..RegistryFacts::default()
        };
        assert!(audit(&careful).is_empty());
        let lax = RegistryFacts {
            url: "http://registry.lan:5000".into(),
            anonymous_push: true,
            local: true,
            repos: vec![RepoFacts {
                name: "app".into(),
                tags: vec!["1.0".into(), "latest".into()],
                require_signature: true,
                unsigned_tags: vec!["latest".into()],
                ..RepoFacts::default()
            }],
            ..RegistryFacts::default()
        };
        let mut ids: Vec<&str> = audit(&lax).iter().map(|f| f.rule.id).collect();
        ids.dedup();
        assert_eq!(
            ids,
            [
                "ESB-R-001",
                "ESB-R-002",
                "ESB-R-003",
                "ESB-R-004",
                "ESB-R-005",
                "ESB-R-006"
            ]
        );
    }
}
