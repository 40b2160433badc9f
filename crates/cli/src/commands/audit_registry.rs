//! The facts `estiba audit registry URL` judges: probes over HTTP (does it
//! speak TLS; is an upload without credentials accepted — and then
//! cancelled), and, when the registry is served from this host by estiba,
//! its configuration and repositories read from its root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use estiba_audit::registry::{RegistryFacts, RepoFacts};
use estiba_registry::auth::Action;
use estiba_registry::config::Config;
use estiba_registry::settings::RepoSettings;
use estiba_registry::storage::{FsStorage, Storage};

use super::Context;

/// The repository the anonymous-push probe starts (and cancels) an upload in.
const PROBE_REPO: &str = "estiba-audit-probe";

pub fn gather(ctx: &Context, url: &str) -> Result<RegistryFacts> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        // The probe asks whether TLS is spoken; whether the certificate is
        // trusted is the client's business, not this check's.
        .danger_accept_invalid_certs(true)
        .build()?;
    let (base, tls) = reach(&client, url)?;
    let mut facts = RegistryFacts {
        url: url.to_string(),
        tls,
        anonymous_push: anonymous_push(&client, &base),
        ..RegistryFacts::default()
    };
    let authority = base
        .split_once("://")
        .map_or(base.as_str(), |(_, a)| a)
        .to_string();
    if let Some((root, config)) = local_registry(ctx, &authority) {
        read_local(&root, config.as_deref(), &mut facts)?;
    }
    Ok(facts)
}

/// The base URL that answers `/v2/`, and whether it is HTTPS.
fn reach(client: &reqwest::blocking::Client, url: &str) -> Result<(String, bool)> {
    let candidates: Vec<String> = if url.contains("://") {
        vec![url.trim_end_matches('/').to_string()]
    } else {
        vec![format!("https://{url}"), format!("http://{url}")]
    };
    for base in &candidates {
        if client.get(format!("{base}/v2/")).send().is_ok() {
            return Ok((base.clone(), base.starts_with("https://")));
        }
    }
    bail!("{url}: no registry answers at {}", candidates.join(" or "))
}

/// Starts an upload without credentials; cancels it if it was accepted.
fn anonymous_push(client: &reqwest::blocking::Client, base: &str) -> bool {
    let Ok(r) = client
        .post(format!("{base}/v2/{PROBE_REPO}/blobs/uploads/"))
        .send()
    else {
        return false;
    };
    if r.status() != reqwest::StatusCode::ACCEPTED {
        return false;
    }
    if let Some(location) = r.headers().get("location").and_then(|l| l.to_str().ok()) {
        let to = if location.starts_with("http") {
            location.to_string()
        } else {
            format!("{base}{location}")
        };
        let _ = client.delete(to).send();
    }
    true
}

/// The root and config of an estiba registry serving `authority` on this
/// host, found among estiba's processes.
fn local_registry(ctx: &Context, authority: &str) -> Option<(PathBuf, Option<PathBuf>)> {
    super::audit_host::estiba_processes()
        .into_iter()
        .find_map(|p| {
            let serves = p
                .args
                .windows(2)
                .any(|w| w[0] == "registry" && w[1] == "serve");
            let addr = p.flag("--addr").unwrap_or("127.0.0.1:5000");
            let same = addr == authority
                || addr
                    .strip_prefix("0.0.0.0:")
                    .is_some_and(|port| authority.ends_with(&format!(":{port}")));
            (serves && same).then(|| {
                let root = p
                    .flag("--root")
                    .map_or_else(|| super::registry::registry_root(None, ctx), PathBuf::from);
                (root, p.flag("--config").map(PathBuf::from))
            })
        })
}

fn read_local(root: &Path, config: Option<&Path>, facts: &mut RegistryFacts) -> Result<()> {
    let config = Config::load(config).context("reading the registry's config")?;
    facts.local = true;
    facts.anonymous_push_policies = config
        .policy
        .iter()
        .filter(|p| p.anonymous && p.actions.contains(&Action::Push))
        .map(|p| p.repositories.clone())
        .collect();
    facts.gc_scheduled = config.gc.interval_secs > 0;
    let audit_log = config
        .audit_log
        .clone()
        .unwrap_or_else(|| root.join("audit.log"));
    facts.gc_ran = std::fs::read_to_string(audit_log)
        .is_ok_and(|log| log.lines().any(|l| l.contains("\"action\":\"gc\"")));
    let storage = FsStorage::open(root)?;
    for name in storage.repositories()? {
        if name == PROBE_REPO {
            continue;
        }
        let settings = RepoSettings::load(&storage, &name)?;
        let tags = storage.tags(&name)?;
        let mut unsigned = Vec::new();
        if settings.require_signature {
            for tag in &tags {
                let Some(digest) = storage.tag(&name, tag)? else {
                    continue;
                };
                let Some(link) = storage.manifest_link(&name, &digest)? else {
                    continue;
                };
                let signed = estiba_registry::trust::require_signature(
                    &storage, &name, &digest, &link, &settings,
                );
                if signed.is_err() {
                    unsigned.push(tag.clone());
                }
            }
        }
        facts.repos.push(RepoFacts {
            name,
            immutable_tags: settings.immutable_tags,
            has_lifecycle: !settings.lifecycle.is_empty(),
            require_signature: settings.require_signature,
            tags,
            unsigned_tags: unsigned,
        });
    }
    Ok(())
}
