//! Lifecycle policies, as ECR has them: expire untagged images older than
//! N days; keep only the last N images whose tag starts with a prefix.
//! A run first plans (what a dry run prints), then deletes exactly the plan.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::ParsedManifest;
use crate::settings::RepoSettings;
use crate::storage::Storage;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "camelCase", deny_unknown_fields)]
pub enum Rule {
    /// Untagged images pushed more than `days` days ago.
    #[serde(rename_all = "camelCase")]
    ExpireUntagged { days: u64 },
    /// Of the images with a tag starting with `prefix`, keep the `count`
    /// pushed last.
    #[serde(rename_all = "camelCase")]
    KeepLast { prefix: String, count: usize },
}

impl Rule {
    pub fn validate(&self) -> Result<()> {
        match self {
            Rule::KeepLast { count: 0, .. } => {
                Err(Error::Config("keepLast needs a count of at least 1".into()))
            }
            _ => Ok(()),
        }
    }
}

/// One manifest a run removes, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Expired {
    pub repository: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    pub reason: String,
}

struct Image {
    digest: Digest,
    pushed: SystemTime,
    tags: Vec<String>,
}

fn read_manifest(s: &dyn Storage, d: &Digest, media_type: &str) -> Option<ParsedManifest> {
    let mut blob = s.open_blob(d).ok()??;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut blob.reader, &mut data).ok()?;
    ParsedManifest::parse(&data, Some(media_type)).ok()
}

/// What the repository's rules would remove now.
pub fn plan(s: &dyn Storage, repo: &str, now: SystemTime) -> Result<Vec<Expired>> {
    let settings = RepoSettings::load(s, repo)?;
    plan_rules(s, repo, &settings.lifecycle, now)
}

/// What `rules` would remove from the repository now (the ECR API's
/// preview of a policy not yet put).
pub fn plan_rules(
    s: &dyn Storage,
    repo: &str,
    rules: &[Rule],
    now: SystemTime,
) -> Result<Vec<Expired>> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let mut images = Vec::new();
    let tags = s.tags(repo)?;
    let mut tag_of: Vec<(String, Digest)> = Vec::new();
    for t in tags {
        if let Some(d) = s.tag(repo, &t)? {
            tag_of.push((t, d));
        }
    }
    // Manifests an index or a subject needs stay while that one stays:
    // they are parts of an image, not images.
    let mut parts: HashSet<Digest> = HashSet::new();
    let mut subjects: Vec<(Digest, Digest)> = Vec::new();
    for (digest, link) in s.manifests(repo)? {
        if let Some(m) = read_manifest(s, &digest, &link.media_type) {
            parts.extend(m.manifests.iter().cloned());
            if let Some(subject) = m.subject {
                subjects.push((digest.clone(), subject));
            }
        }
        let pushed = humantime::parse_rfc3339_weak(&link.pushed).unwrap_or(SystemTime::UNIX_EPOCH);
        images.push(Image {
            tags: tag_of
                .iter()
                .filter(|(_, d)| *d == digest)
                .map(|(t, _)| t.clone())
                .collect(),
            digest,
            pushed,
        });
    }
    let referrers: HashSet<Digest> = subjects.iter().map(|(r, _)| r.clone()).collect();
    let mut expired: BTreeSet<Expired> = BTreeSet::new();
    for rule in rules {
        match rule {
            Rule::ExpireUntagged { days } => {
                let limit = Duration::from_secs(days * 86400);
                for img in &images {
                    let old = now.duration_since(img.pushed).unwrap_or_default() > limit;
                    if img.tags.is_empty()
                        && old
                        && !parts.contains(&img.digest)
                        && !referrers.contains(&img.digest)
                    {
                        expired.insert(Expired {
                            repository: repo.to_string(),
                            digest: img.digest.clone(),
                            tags: vec![],
                            reason: format!("untagged and pushed more than {days} days ago"),
                        });
                    }
                }
            }
            Rule::KeepLast { prefix, count } => {
                let mut matching: Vec<&Image> = images
                    .iter()
                    .filter(|i| i.tags.iter().any(|t| t.starts_with(prefix.as_str())))
                    .collect();
                matching.sort_by(|a, b| b.pushed.cmp(&a.pushed).then(a.digest.cmp(&b.digest)));
                for img in matching.into_iter().skip(*count) {
                    expired.insert(Expired {
                        repository: repo.to_string(),
                        digest: img.digest.clone(),
                        tags: img.tags.clone(),
                        reason: format!("more than {count} images tagged {prefix}*"),
                    });
                }
            }
        }
    }
    // Signatures and other referrers go with the image they refer to.
    let gone: HashSet<Digest> = expired.iter().map(|e| e.digest.clone()).collect();
    for (referrer, subject) in &subjects {
        if gone.contains(subject) && !gone.contains(referrer) {
            expired.insert(Expired {
                repository: repo.to_string(),
                digest: referrer.clone(),
                tags: vec![],
                reason: format!("refers to expired {subject}"),
            });
        }
    }
    Ok(expired.into_iter().collect())
}

/// Removes what `plan` listed. Returns what was removed.
pub fn apply(s: &dyn Storage, planned: &[Expired]) -> Result<Vec<Expired>> {
    let mut done = Vec::new();
    for e in planned {
        if crate::server::delete_manifest(s, &e.repository, &e.digest)? {
            done.push(e.clone());
        }
    }
    Ok(done)
}

/// Plans (and unless `dry_run`, applies) the rules of `repos`, or of every
/// repository.
pub fn run(s: &dyn Storage, repos: Option<&[String]>, dry_run: bool) -> Result<Vec<Expired>> {
    let all = match repos {
        Some(r) => r.to_vec(),
        None => s.repositories()?,
    };
    let now = SystemTime::now();
    let mut out = Vec::new();
    for repo in all {
        let planned = plan(s, &repo, now)?;
        out.extend(if dry_run {
            planned
        } else {
            apply(s, &planned)?
        });
    }
    Ok(out)
}
