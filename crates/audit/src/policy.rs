//! Admission policy: the audit's rules, each set to `enforce`, `warn` or
//! `off`, with exceptions by image, repository or cluster.
//!
//! ```toml
//! default = "warn"          # rules not listed
//! [rules]
//! "cis:5.5" = "enforce"     # privileged containers are refused
//! "cis:4.6" = "off"
//! "ESB-C-010" = "enforce"
//!
//! [[exceptions]]
//! rules = ["cis:5.5"]                   # all rules if absent
//! images = ["registry.internal/ops/*"]  # globs; any of the lists may match
//! repositories = ["ops/*"]
//! clusters = ["lab"]
//! reason = "node exporters need the host"
//! ```
//!
//! `trusted_registries = ["registry.internal:5000"]` (top level) names the
//! registries images may come from: task definitions' (ESB-T-014), and
//! what `pull` fetches and `run` starts (ESB-I-014). `require_signature =
//! true` with `trusted_keys = ["cosign.pub"]` (PEM public keys, relative
//! to the policy file) makes `pull` verify a cosign signature by one of
//! the keys, and `run` start only images so verified (ESB-I-015). A rule a
//! setting turns on enforces unless `[rules]` names it: the setting says
//! what the policy wants more precisely than `default`.
//!
//! A rule is named by its id or by any cross-reference (`cis:5.5`,
//! `owasp:D04`, `dockle:CIS-DI-0001`). When several entries name one
//! rule, its own id decides; otherwise the strictest of them does, so no
//! file order matters.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::{self, Rule};
use crate::finding::Finding;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Off,
    Warn,
    Enforce,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<Action>,
    #[serde(default)]
    rules: BTreeMap<String, Action>,
    #[serde(default)]
    exceptions: Vec<ExceptionFile>,
    /// Registries images may come from (ESB-T-014, ESB-I-014).
    #[serde(default)]
    trusted_registries: Vec<String>,
    /// Images must carry a signature by one of `trusted_keys` (ESB-I-015).
    #[serde(default)]
    require_signature: bool,
    #[serde(default)]
    trusted_keys: Vec<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionFile {
    rules: Option<Vec<String>>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    clusters: Vec<String>,
    /// For the people who read the file; the policy does not use it.
    #[serde(rename = "reason")]
    _reason: Option<String>,
}

#[derive(Debug)]
struct Exception {
    /// None: every rule.
    rules: Option<Vec<&'static str>>,
    images: Vec<glob::Pattern>,
    repositories: Vec<glob::Pattern>,
    clusters: Vec<glob::Pattern>,
}

/// What a check is about, for exceptions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject<'a> {
    pub image: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub cluster: Option<&'a str>,
}

/// What refuses a pull whose signature did not verify, in the words of
/// rule ESB-I-015 (the CLI and the Docker API say the same).
pub fn unsigned_refused(why: &str) -> String {
    format!("refused by policy: {}: {why}", unsigned_rule())
}

/// What warns of a pull whose signature did not verify.
pub fn unsigned_warned(why: &str) -> String {
    format!("policy: {}: {why}", unsigned_rule())
}

/// `ESB-I-015 (CIS 4.5)`.
fn unsigned_rule() -> String {
    let rule = crate::catalog::rule("ESB-I-015");
    format!("{} (CIS {})", rule.id, rule.cis.join(" "))
}

#[derive(Debug, Default)]
pub struct Policy {
    default: Option<Action>,
    /// By rule id: the action, and whether the entry named the id itself.
    actions: BTreeMap<&'static str, (Action, bool)>,
    exceptions: Vec<Exception>,
    pub trusted_registries: Vec<String>,
    pub require_signature: bool,
    /// Public keys' files, resolved against the policy file's directory.
    pub trusted_keys: Vec<std::path::PathBuf>,
}

/// What a policy says of a set of findings.
#[derive(Debug, Default)]
pub struct Verdict<'a> {
    pub refused: Vec<&'a Finding>,
    pub warned: Vec<&'a Finding>,
}

impl Verdict<'_> {
    /// The refusal's text: every rule that refused, with what it found.
    pub fn refusal(&self) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let mut ids: Vec<&str> = self.refused.iter().map(|f| f.rule.id).collect();
        ids.dedup();
        let what: Vec<String> = self
            .refused
            .iter()
            .map(|f| format!("{} ({}): {}", f.rule.id, cis_of(f.rule), f.message))
            .collect();
        Some(format!(
            "refused by policy: {}; {}",
            ids.join(", "),
            what.join("; ")
        ))
    }

    /// One line per warned finding.
    pub fn warnings(&self) -> Vec<String> {
        self.warned
            .iter()
            .map(|f| format!("policy: {} ({}): {}", f.rule.id, cis_of(f.rule), f.message))
            .collect()
    }
}

fn cis_of(r: &Rule) -> String {
    if r.cis.is_empty() {
        r.title.to_string()
    } else {
        format!("CIS {}", r.cis.join(" "))
    }
}

fn pattern(path: &str, what: &str, p: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(p).map_err(|e| Error::Policy {
        path: path.to_string(),
        message: format!("{what} pattern {p:?}: {e}"),
    })
}

impl Policy {
    pub fn parse(path: &str, text: &str) -> Result<Policy> {
        let bad = |message: String| Error::Policy {
            path: path.to_string(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        let mut actions: BTreeMap<&'static str, (Action, bool)> = BTreeMap::new();
        for (reference, action) in &file.rules {
            let rules = catalog::resolve(reference).map_err(|e| bad(e.to_string()))?;
            for rule in rules {
                let own = rule.id.eq_ignore_ascii_case(reference);
                let entry = actions.entry(rule.id).or_insert((action.to_owned(), own));
                *entry = match (*entry, own) {
                    ((_, false), true) => (*action, true),
                    ((a, false), false) => (a.max(*action), false),
                    (kept, _) => kept,
                };
            }
        }
        let mut exceptions = Vec::new();
        for e in &file.exceptions {
            let rules = match &e.rules {
                Some(refs) => {
                    let mut ids = Vec::new();
                    for r in refs {
                        let found = catalog::resolve(r).map_err(|e| bad(e.to_string()))?;
                        ids.extend(found.iter().map(|r| r.id));
                    }
                    Some(ids)
                }
                None => None,
            };
            let globs = |list: &[String], what: &str| -> Result<Vec<glob::Pattern>> {
                list.iter().map(|p| pattern(path, what, p)).collect()
            };
            let exception = Exception {
                rules,
                images: globs(&e.images, "the image")?,
                repositories: globs(&e.repositories, "the repository")?,
                clusters: globs(&e.clusters, "the cluster")?,
            };
            if exception.images.is_empty()
                && exception.repositories.is_empty()
                && exception.clusters.is_empty()
            {
                return Err(bad(
                    "an exception names no images, repositories or clusters: it would turn the rules off everywhere; set them to \"off\" instead".into(),
                ));
            }
            exceptions.push(exception);
        }
        if file.require_signature && file.trusted_keys.is_empty() {
            return Err(bad(
                "require_signature needs trusted_keys: the public keys signatures are checked with"
                    .into(),
            ));
        }
        let dir = std::path::Path::new(path)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        Ok(Policy {
            default: file.default,
            actions,
            exceptions,
            trusted_registries: file.trusted_registries,
            require_signature: file.require_signature,
            trusted_keys: file.trusted_keys.iter().map(|k| dir.join(k)).collect(),
        })
    }

    /// `later` over `self`: its default and rules win, its exceptions add.
    pub fn merge(mut self, later: Policy) -> Policy {
        if later.default.is_some() {
            self.default = later.default;
        }
        self.actions.extend(later.actions);
        self.exceptions.extend(later.exceptions);
        self.trusted_registries.extend(later.trusted_registries);
        self.require_signature |= later.require_signature;
        self.trusted_keys.extend(later.trusted_keys);
        self
    }

    /// True if a setting of the policy turns the rule's check on.
    fn configured(&self, rule: &Rule) -> bool {
        match rule.id {
            "ESB-T-014" | "ESB-I-014" => !self.trusted_registries.is_empty(),
            "ESB-I-015" => self.require_signature,
            _ => false,
        }
    }

    /// The action for a rule, before exceptions. Without `default`, rules
    /// not listed are off: a policy only does what it says. A rule turned
    /// on by a setting (`require_signature`) enforces unless listed.
    pub fn action(&self, rule: &Rule) -> Action {
        self.actions
            .get(rule.id)
            .map(|(a, _)| *a)
            .or_else(|| self.configured(rule).then_some(Action::Enforce))
            .or(self.default)
            .unwrap_or(Action::Off)
    }

    fn excepted(&self, rule: &Rule, subject: &Subject<'_>) -> bool {
        let hit = |patterns: &[glob::Pattern], value: Option<&str>| {
            value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
        };
        self.exceptions.iter().any(|e| {
            e.rules.as_ref().is_none_or(|ids| ids.contains(&rule.id))
                && (hit(&e.images, subject.image)
                    || hit(&e.repositories, subject.repository)
                    || hit(&e.clusters, subject.cluster))
        })
    }

    pub fn judge<'a>(&self, findings: &'a [Finding], subject: &Subject<'_>) -> Verdict<'a> {
        self.judge_each(findings, |_| vec![*subject])
    }

    /// As `judge`, with each finding's own subjects (a task definition's
    /// finding is about its container's image): excepted if any is.
    pub fn judge_each<'a, 's>(
        &self,
        findings: &'a [Finding],
        subjects: impl Fn(&Finding) -> Vec<Subject<'s>>,
    ) -> Verdict<'a> {
        let mut verdict = Verdict::default();
        for f in findings {
            if subjects(f).iter().any(|s| self.excepted(f.rule, s)) {
                continue;
            }
            match self.action(f.rule) {
                Action::Enforce => verdict.refused.push(f),
                Action::Warn => verdict.warned.push(f),
                Action::Off => {}
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_pulls_are_named_by_their_rule() {
        assert_eq!(
            unsigned_refused("no signature"),
            "refused by policy: ESB-I-015 (CIS 4.5): no signature"
        );
        assert_eq!(unsigned_warned("x"), "policy: ESB-I-015 (CIS 4.5): x");
    }
    use crate::catalog::TargetKind;
    use crate::finding::{Location, Target};

    fn finding(id: &str) -> Finding {
        Finding::new(
            id,
            &Target::new(TargetKind::Container, "c"),
            Location::File,
            "x",
        )
    }

    #[test]
    fn trust_settings_enforce_their_rules_unless_listed() {
        let p = Policy::parse(
            "/etc/estiba/policy.toml",
            "default = \"warn\"\ntrusted_registries = [\"r:5000\"]\nrequire_signature = true\ntrusted_keys = [\"keys/a.pub\", \"/k/b.pub\"]\n",
        )
        .unwrap();
        assert_eq!(p.action(catalog::rule("ESB-I-015")), Action::Enforce);
        assert_eq!(p.action(catalog::rule("ESB-I-014")), Action::Enforce);
        assert_eq!(p.action(catalog::rule("ESB-I-001")), Action::Warn);
        assert_eq!(
            p.trusted_keys,
            [
                std::path::PathBuf::from("/etc/estiba/keys/a.pub"),
                std::path::PathBuf::from("/k/b.pub")
            ]
        );
        let listed = Policy::parse(
            "p.toml",
            "require_signature = true\ntrusted_keys = [\"a.pub\"]\n[rules]\n\"ESB-I-015\" = \"warn\"\n",
        )
        .unwrap();
        assert_eq!(listed.action(catalog::rule("ESB-I-015")), Action::Warn);
        assert_eq!(listed.action(catalog::rule("ESB-I-014")), Action::Off);
        let e = Policy::parse("p.toml", "require_signature = true\n").unwrap_err();
        assert!(e.to_string().contains("trusted_keys"), "{e}");
    }

    #[test]
    fn references_ids_defaults_and_exceptions() {
        let p = Policy::parse(
            "policy.toml",
            r#"
default = "warn"
[rules]
"cis:5.5" = "enforce"
"cis:4.6" = "off"
"owasp:D07" = "enforce"
"ESB-C-011" = "off"

[[exceptions]]
rules = ["ESB-C-001"]
images = ["ops/*"]
reason = "the exporters need the host"
"#,
        )
        .unwrap();
        let rule = |id: &str| catalog::rule(id);
        assert_eq!(p.action(rule("ESB-C-001")), Action::Enforce);
        assert_eq!(p.action(rule("ESB-T-001")), Action::Enforce);
        assert_eq!(p.action(rule("ESB-I-002")), Action::Off);
        assert_eq!(p.action(rule("ESB-C-010")), Action::Enforce);
        // Its own id beats the reference.
        assert_eq!(p.action(rule("ESB-C-011")), Action::Off);
        assert_eq!(p.action(rule("ESB-C-018")), Action::Warn);
        let found = [finding("ESB-C-001"), finding("ESB-C-018")];
        let app = p.judge(
            &found,
            &Subject {
                image: Some("app:1"),
                ..Subject::default()
            },
        );
        assert_eq!(app.refused.len(), 1);
        assert_eq!(app.warned.len(), 1);
        let refusal = app.refusal().unwrap();
        assert!(
            refusal.contains("ESB-C-001") && refusal.contains("CIS 5.5"),
            "{refusal}"
        );
        let ops = p.judge(
            &found,
            &Subject {
                image: Some("ops/exporter:2"),
                ..Subject::default()
            },
        );
        assert!(ops.refused.is_empty());
    }

    #[test]
    fn without_a_default_only_listed_rules_act() {
        let p = Policy::parse("p", "[rules]\n\"cis:5.5\" = \"enforce\"\n").unwrap();
        assert_eq!(p.action(catalog::rule("ESB-C-018")), Action::Off);
        let later =
            Policy::parse("q", "default = \"warn\"\n[rules]\n\"cis:5.5\" = \"off\"\n").unwrap();
        let merged = p.merge(later);
        assert_eq!(merged.action(catalog::rule("ESB-C-001")), Action::Off);
        assert_eq!(merged.action(catalog::rule("ESB-C-018")), Action::Warn);
    }

    #[test]
    fn a_bad_file_is_refused_and_says_why() {
        for (text, words) in [
            ("default = \"maybe\"", "unknown variant"),
            ("[rules]\n\"cis:99\" = \"enforce\"", "no rule"),
            ("[rules]\n\"cis:5.5\" = 3", "wanted string"),
            ("defualt = \"warn\"", "unknown field"),
            ("[[exceptions]]\nrules = [\"cis:5.5\"]", "names no images"),
            ("[[exceptions]]\nimages = [\"[\"]", "pattern"),
            ("default = ", "parse error at line 1"),
        ] {
            let e = Policy::parse("policy.toml", text).unwrap_err().to_string();
            assert!(e.starts_with("policy.toml: "), "{e}");
            assert!(
                e.to_lowercase().contains(&words.to_lowercase()),
                "{text:?}: {e}"
            );
        }
    }
}
