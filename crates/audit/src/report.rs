//! Reports: a table for people, JSON for scripts, SARIF 2.1.0 for GitHub
//! code scanning; a score; and whether the findings fail the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalog::{Rule, Severity, TargetKind};
use crate::finding::{Finding, Location, Target};

const INFORMATION_URI: &str = "https://github.com/estiba/estiba";

/// The findings of one audit run, and every target it looked at (a
/// target with no findings still counts in the score).
#[derive(Debug, Default)]
pub struct Report {
    pub targets: Vec<Target>,
    pub findings: Vec<Finding>,
    /// Findings an ignore file covered: counted, not shown.
    pub ignored: usize,
}

impl Report {
    pub fn add(&mut self, target: Target, findings: Vec<Finding>) {
        if !self.targets.contains(&target) {
            self.targets.push(target);
        }
        self.findings.extend(findings);
    }

    /// Drops the findings `covered` says are accepted.
    pub fn ignore(&mut self, covered: impl Fn(&Finding) -> bool) {
        let before = self.findings.len();
        self.findings.retain(|f| !covered(f));
        self.ignored += before - self.findings.len();
    }

    /// Whether any finding is at or above `min` (the `--exit-code` test).
    pub fn fails(&self, min: Severity) -> bool {
        self.findings.iter().any(|f| f.rule.severity >= min)
    }

    /// 0–100: each target starts at 100 and loses each failed rule's
    /// weight once (many setuid files are one problem, not many); the
    /// score is the targets' mean. No targets: 100.
    pub fn score(&self) -> u32 {
        if self.targets.is_empty() {
            return 100;
        }
        let total: u32 = self
            .targets
            .iter()
            .map(|t| {
                let rules: BTreeMap<&str, u32> = self
                    .findings
                    .iter()
                    .filter(|f| &f.target == t)
                    .map(|f| (f.rule.id, f.rule.severity.weight()))
                    .collect();
                let lost: u32 = rules.values().sum();
                100u32.saturating_sub(lost)
            })
            .sum();
        total / u32::try_from(self.targets.len()).unwrap_or(1)
    }

    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> = [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ]
        .iter()
        .map(|s| (s.name(), 0))
        .collect();
        for f in &self.findings {
            *counts.entry(f.rule.severity.name()).or_default() += 1;
        }
        counts
    }

    pub fn json(&self) -> Value {
        let findings: Vec<Value> = self.findings.iter().map(finding_json).collect();
        json!({
            "score": self.score(),
            "targets": self.targets,
            "summary": self.counts(),
            "ignored": self.ignored,
            "findings": findings,
        })
    }

    /// The table: grouped by target, most severe first, coloured when
    /// `color` (a terminal).
    pub fn table(&self, color: bool) -> String {
        let mut out = String::new();
        for t in &self.targets {
            let mut mine: Vec<&Finding> = self.findings.iter().filter(|f| &f.target == t).collect();
            mine.sort_by(|a, b| {
                b.rule
                    .severity
                    .cmp(&a.rule.severity)
                    .then(a.location.line().cmp(&b.location.line()))
                    .then(a.rule.id.cmp(b.rule.id))
            });
            let _ = writeln!(
                out,
                "{} {} ({})",
                t.kind.name(),
                t.name,
                plural(mine.len(), "finding")
            );
            for f in mine {
                let severity = paint(f.rule.severity, color);
                let refs = references(f.rule);
                let where_ = f.location.describe();
                let _ = writeln!(
                    out,
                    "  {severity} {:<9}  {}{}",
                    f.rule.id,
                    f.message,
                    if where_.is_empty() {
                        String::new()
                    } else {
                        format!("  [{where_}]")
                    },
                );
                if !refs.is_empty() {
                    let _ = writeln!(out, "  {:<8} {:<9}  {refs}", "", "");
                }
            }
        }
        let counts = self.counts();
        let summary: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let _ = writeln!(
            out,
            "score {}/100; {}{}{}",
            self.score(),
            plural(self.findings.len(), "finding"),
            if summary.is_empty() {
                String::new()
            } else {
                format!(" ({})", summary.join(", "))
            },
            if self.ignored > 0 {
                format!("; {} ignored", self.ignored)
            } else {
                String::new()
            },
        );
        out
    }

    /// SARIF 2.1.0, one run per kind of target (GitHub keeps their
    /// categories apart through `automationDetails`).
    pub fn sarif(&self, version: &str) -> Value {
        let mut kinds: Vec<TargetKind> = Vec::new();
        for t in &self.targets {
            if !kinds.contains(&t.kind) {
                kinds.push(t.kind);
            }
        }
        let runs: Vec<Value> = kinds
            .iter()
            .map(|kind| self.sarif_run(*kind, version))
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": runs,
        })
    }

    fn sarif_run(&self, kind: TargetKind, version: &str) -> Value {
        let rules: Vec<&'static Rule> = crate::catalog::RULES
            .iter()
            .filter(|r| r.target == kind)
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .filter(|f| f.target.kind == kind)
            .map(|f| {
                let index = rules.iter().position(|r| r.id == f.rule.id).unwrap_or(0);
                sarif_result(f, index)
            })
            .collect();
        json!({
            "tool": {"driver": {
                "name": "estiba",
                "informationUri": INFORMATION_URI,
                "semanticVersion": version,
                "rules": rules.iter().map(|r| sarif_rule(r)).collect::<Vec<_>>(),
            }},
            "automationDetails": {"id": format!("estiba/{}/", kind.name())},
            "results": results,
        })
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn paint(s: Severity, color: bool) -> String {
    let name = format!("{:<8}", s.name().to_ascii_uppercase());
    if !color {
        return name;
    }
    let code = match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{name}\x1b[0m")
}

/// `CIS 4.1, OWASP D01, Dockle CIS-DI-0001`, for the table.
fn references(r: &Rule) -> String {
    let mut parts = Vec::new();
    for (name, list) in [
        ("CIS", r.cis),
        ("OWASP", r.owasp),
        ("Dockle", r.dockle),
        ("Trivy", r.trivy),
        ("Hadolint", r.hadolint),
    ] {
        if !list.is_empty() {
            parts.push(format!("{name} {}", list.join(" ")));
        }
    }
    parts.join(", ")
}

fn finding_json(f: &Finding) -> Value {
    let r = f.rule;
    json!({
        "rule": r.id,
        "title": r.title,
        "severity": r.severity,
        "target": f.target,
        "location": f.location,
        "message": f.message,
        "cis": r.cis,
        "owasp": r.owasp,
        "dockle": r.dockle,
        "trivy": r.trivy,
        "hadolint": r.hadolint,
    })
}

fn sarif_rule(r: &Rule) -> Value {
    let mut tags: Vec<String> = vec!["security".into()];
    tags.extend(r.cis.iter().map(|c| format!("CIS-{c}")));
    tags.extend(r.owasp.iter().map(|o| format!("OWASP-{o}")));
    let refs = references(r);
    json!({
        "id": r.id,
        "name": r.title,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.rationale},
        "help": {
            "text": format!("{} ({refs})", r.remediation),
            "markdown": format!("{}\n\n{}\n\nReferences: {refs}", r.rationale, r.remediation),
        },
        "defaultConfiguration": {"level": r.severity.sarif_level()},
        "properties": {
            "tags": tags,
            "precision": if r.automated { "high" } else { "medium" },
            "security-severity": r.severity.security_severity(),
        },
    })
}

/// The artifact a finding points at: the file itself for files; for the
/// rest a stable pseudo-path, `estiba/image/NAME/PATH-OR-FIELD`.
fn artifact(f: &Finding) -> String {
    if f.target.is_file() {
        return f.target.name.trim_start_matches("./").to_string();
    }
    let subject = match &f.location {
        Location::Path { path } => path.trim_start_matches('/').to_string(),
        Location::Config { field } if f.target.kind == TargetKind::Host => field.clone(),
        Location::Config { field } => format!("config/{field}"),
        _ => "target".into(),
    };
    let encode = |s: &str| {
        s.replace('%', "%25")
            .replace(' ', "%20")
            .replace('#', "%23")
    };
    if f.target.kind == TargetKind::Host {
        return format!("estiba/host/{}", encode(&subject));
    }
    format!(
        "estiba/{}/{}/{}",
        f.target.kind.name(),
        encode(&f.target.name),
        encode(&subject)
    )
}

fn sarif_result(f: &Finding, index: usize) -> Value {
    // The fingerprint holds what stays when lines move: the rule, the
    // target and the finding's subject (its pointer, path or message).
    let subject = match &f.location {
        Location::Line { .. } | Location::File => f.message.clone(),
        other => other.describe(),
    };
    let mut h = Sha256::new();
    h.update(format!("{}\0{}\0{}", f.rule.id, f.target.name, subject));
    let fingerprint = format!("{}:1", &hex::encode(h.finalize())[..32]);
    json!({
        "ruleId": f.rule.id,
        "ruleIndex": index,
        "level": f.rule.severity.sarif_level(),
        "message": {"text": f.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": artifact(f)},
            "region": {"startLine": f.location.line()},
        }}],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint},
    })
}

/// The catalog, as `estiba audit rules` shows it.
pub fn rules_table() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<13} {:<8} {:<6} TITLE / REFERENCES",
        "ID", "TARGET", "SEVERITY", "AUTO"
    );
    for r in crate::catalog::RULES {
        let _ = writeln!(
            out,
            "{:<10} {:<13} {:<8} {:<6} {}",
            r.id,
            r.target.name(),
            r.severity.name(),
            if r.automated { "yes" } else { "manual" },
            r.title
        );
        let refs = references(r);
        if !refs.is_empty() {
            let _ = writeln!(out, "{:<41} {refs}", "");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::default();
        let file = Target::new(TargetKind::Containerfile, "./Containerfile");
        let findings =
            crate::containerfile::audit("./Containerfile", "FROM a\nUSER root\n").unwrap();
        r.add(file, findings);
        let image = Target::new(TargetKind::Image, "app:1");
        r.add(
            image.clone(),
            vec![Finding::new(
                "ESB-I-004",
                &image,
                Location::Path {
                    path: "/bin/su".into(),
                },
                "setuid",
            )],
        );
        r
    }

    #[test]
    fn scores_fail_and_ignore() {
        let mut r = report();
        // F-002 high (10), F-004 medium (5), F-013 low (2): 83; the image 100.
        assert_eq!(r.score(), (83 + 100) / 2);
        assert!(r.fails(Severity::High));
        assert!(!r.fails(Severity::Critical));
        r.ignore(|f| f.rule.id == "ESB-F-002");
        assert_eq!(r.ignored, 1);
        assert!(!r.fails(Severity::High));
    }

    #[test]
    fn sarif_has_what_github_requires() {
        let s = report().sarif("0.1.0");
        assert_eq!(s["version"], "2.1.0");
        let runs = s["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        for run in runs {
            let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
            for rule in rules {
                assert!(rule["help"]["text"].is_string());
                assert!(rule["properties"]["security-severity"].is_string());
                assert!(rule["fullDescription"]["text"].as_str().unwrap().len() <= 1000);
            }
            for result in run["results"].as_array().unwrap() {
                let index = result["ruleIndex"].as_u64().unwrap() as usize;
                assert_eq!(rules[index]["id"], result["ruleId"]);
                assert!(result["partialFingerprints"]["primaryLocationLineHash"].is_string());
                let uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap();
                assert!(
                    uri == "Containerfile" || uri == "estiba/image/app:1/bin/su",
                    "{uri}"
                );
            }
        }
    }

    #[test]
    fn json_carries_references_as_lists() {
        let j = report().json();
        let f = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "ESB-F-002")
            .unwrap()
            .clone();
        assert_eq!(f["cis"], json!(["4.1"]));
        assert_eq!(f["hadolint"], json!(["DL3002"]));
        assert_eq!(f["severity"], "high");
        assert_eq!(f["location"], json!({"kind": "line", "line": 2}));
        assert_eq!(j["summary"]["high"], 1);
    }
}
