//! The admission policy at `estiba run` and `create`: the policy file is
//! read, and the engine is given a judge that audits each container as it
//! would run (its settings, its image's config, and where the image came
//! from) before its record is written. At `pull` (the CLI's and the Docker
//! API's) the same policy decides which registries may be pulled from and
//! whose signatures must verify ([`PullGate`]).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use estiba_audit::container::{Bind, Facts, Published, Restart};
use estiba_audit::image::Provenance;
use estiba_audit::policy::{Policy, Subject};
use estiba_engine::options::MountSpec;
use estiba_engine::tuning::NamespaceMode;
use estiba_engine::{ContainerRecord, NetworkMode, RestartPolicy};
use estiba_registry::client::{PullOptions, RemoteRef};
use estiba_registry::trust::PublicKey;

use super::Context;
use crate::paths::Paths;

/// The policy in force: `--policy FILE` (or ESTIBA_POLICY) alone, else the
/// system's file with the user's over it. None when there is no file.
pub fn load(explicit: Option<&Path>) -> Result<Option<Policy>> {
    if let Some(path) = explicit {
        return Ok(Some(read(path)?));
    }
    let mut policy: Option<Policy> = None;
    for path in Paths::policy_files() {
        if !path.exists() {
            continue;
        }
        let next = read(&path)?;
        policy = Some(match policy {
            Some(p) => p.merge(next),
            None => next,
        });
    }
    Ok(policy)
}

fn read(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    Ok(Policy::parse(&path.display().to_string(), &text)?)
}

/// An engine that judges what it creates by the policy, if there is one.
pub fn engine(ctx: &Context) -> Result<estiba_engine::Engine> {
    let mut engine = ctx.engine()?;
    if let Some(policy) = load(ctx.policy.as_deref())? {
        let policy = Arc::new(policy);
        let store = engine.store.clone();
        engine.admission = Some(Arc::new(move |record, config| {
            let mut findings = findings(record, config);
            let signed = record.image_id.parse().is_ok_and(|id| store.is_signed(&id));
            findings.extend(estiba_audit::image::trust(
                &record.image,
                Provenance {
                    registry: estiba_audit::image::registry_of(&record.image),
                    signed,
                },
                &policy.trusted_registries,
                policy.require_signature,
            ));
            let subject = Subject {
                image: Some(&record.image),
                repository: Some(repository(&record.image)),
                cluster: None,
            };
            let verdict = policy.judge(&findings, &subject);
            match verdict.refusal() {
                Some(refusal) => Err(refusal),
                None => Ok(verdict.warnings()),
            }
        }));
    }
    Ok(engine)
}

/// What a pull may do under the policy: refused before anything is
/// fetched, or the keys its signature must verify with.
pub struct PullGate {
    policy: Arc<Policy>,
    keys: Vec<PublicKey>,
}

impl PullGate {
    /// The gate of the policy in force, if any (its keys read now, so a
    /// bad key file is an error before any pull).
    pub fn load(explicit: Option<&Path>) -> Result<Option<PullGate>> {
        let Some(policy) = load(explicit)? else {
            return Ok(None);
        };
        let keys = if policy.require_signature {
            super::registry::read_keys(&policy.trusted_keys)?
        } else {
            Vec::new()
        };
        Ok(Some(PullGate {
            policy: Arc::new(policy),
            keys,
        }))
    }

    fn subject<'a>(src: &'a str, repository: &'a str) -> Subject<'a> {
        Subject {
            image: Some(src),
            repository: Some(repository),
            cluster: None,
        }
    }

    /// Judges a pull of `src` before it starts: how to pull it (with the
    /// keys its signature must verify with, and whether a signature that
    /// does not verify is only warned of), or Err, the refusal.
    pub fn plan(&self, src: &RemoteRef) -> std::result::Result<PullOptions, String> {
        let name = src.to_string();
        let subject = Self::subject(&name, &src.repository);
        let untrusted = estiba_audit::image::trust(
            &name,
            Provenance {
                registry: Some(&src.registry),
                signed: true,
            },
            &self.policy.trusted_registries,
            false,
        );
        if let Some(refusal) = self.policy.judge(&untrusted, &subject).refusal() {
            return Err(refusal);
        }
        let unsigned = estiba_audit::image::trust(
            &name,
            Provenance {
                registry: Some(&src.registry),
                signed: false,
            },
            &[],
            self.policy.require_signature,
        );
        let verdict = self.policy.judge(&unsigned, &subject);
        let (verify, warn) = (!verdict.refused.is_empty(), !verdict.warned.is_empty());
        Ok(PullOptions {
            verify_keys: if verify || warn {
                self.keys.clone()
            } else {
                Vec::new()
            },
            accept_unverified: !verify,
            mark_signed: true,
        })
    }

    /// The refusal of a pull whose signature did not verify.
    pub fn refused_unsigned(why: &str) -> String {
        estiba_audit::policy::unsigned_refused(why)
    }

    /// The warning of a pull whose signature did not verify.
    pub fn warned_unsigned(why: &str) -> String {
        estiba_audit::policy::unsigned_warned(why)
    }
}

/// The repository part of an image name: no registry, no tag or digest.
fn repository(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    }
}

/// A container's findings, and its image config's.
pub fn findings(
    record: &ContainerRecord,
    config: &serde_json::Value,
) -> Vec<estiba_audit::Finding> {
    let mut out = estiba_audit::container::audit(&facts(record, config));
    out.extend(estiba_audit::image::audit_config(
        &record.image,
        config,
        SystemTime::now(),
    ));
    out
}

/// The engine's record as the audit's facts.
pub fn facts(record: &ContainerRecord, config: &serde_json::Value) -> Facts {
    let o = &record.options;
    let image_user = config["config"]["User"].as_str().unwrap_or_default();
    let binds = o
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Bind {
                source,
                destination,
                read_only,
            } => Some(Bind {
                source: source.display().to_string(),
                destination: destination.clone(),
                read_only: *read_only,
            }),
            _ => None,
        })
        .collect();
    Facts {
        name: record.name.clone(),
        privileged: o.privileged,
        cap_add: o.cap_add.clone(),
        user: o.user.clone().unwrap_or_else(|| image_user.to_string()),
        read_only: o.read_only,
        memory: o.memory,
        cpu_limited: o.cpus.is_some() || o.tuning.cpu_shares.is_some(),
        pids_limit: o.pids_limit,
        host_network: o.network == NetworkMode::Host,
        host_pid: o.tuning.pid == NamespaceMode::Host,
        host_ipc: o.tuning.ipc == NamespaceMode::Host,
        binds,
        published: o
            .publish
            .iter()
            .map(|p| Published {
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port,
            })
            .collect(),
        devices: o
            .tuning
            .devices
            .iter()
            .map(|d| d.host.display().to_string())
            .collect(),
        seccomp_unconfined: o.security.seccomp == estiba_runtime::spec::Seccomp::Unconfined,
        no_new_privileges: o.security.no_new_privileges,
        restart: match o.restart {
            RestartPolicy::No => Restart::No,
            RestartPolicy::OnFailure(n) => Restart::OnFailure(n),
            RestartPolicy::Always => Restart::Always,
            RestartPolicy::UnlessStopped => Restart::UnlessStopped,
        },
        health_check: o
            .health
            .as_ref()
            .is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE"),
        processes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_lose_registry_tag_and_digest() {
        assert_eq!(repository("busybox"), "busybox");
        assert_eq!(repository("ops/exporter:2"), "ops/exporter");
        assert_eq!(repository("localhost:5000/ops/exporter:2"), "ops/exporter");
        assert_eq!(repository("registry.internal/app@sha256:00"), "app");
    }
}
