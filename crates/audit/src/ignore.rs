//! `.estibaignore`: findings a team has accepted. One entry a line:
//!
//! ```text
//! # comment
//! ESB-F-013                          # a rule, everywhere
//! cis:4.6  build/Containerfile.dev   # a reference, for one target (globs)
//! ESB-I-012  *  exp:2027-01-31       # until a date (the entry ends that day)
//! ```
//!
//! The rule may be estiba's id or any cross-reference the catalog knows
//! (`cis:`, `owasp:`, `dockle:`, `trivy:`, `hadolint:`). An unknown rule,
//! a bad pattern or a bad date is an error naming its line: a typo must
//! not silently ignore nothing, or everything.

use std::time::SystemTime;

use crate::catalog::{self, Rule};
use crate::finding::Finding;
use crate::{Error, Result};

#[derive(Debug)]
pub struct Entry {
    pub line: usize,
    pub rules: Vec<&'static Rule>,
    pub target: Option<glob::Pattern>,
    /// The first moment the entry no longer applies.
    pub expires: Option<SystemTime>,
}

#[derive(Debug, Default)]
pub struct Ignore {
    pub entries: Vec<Entry>,
}

impl Ignore {
    pub fn parse(path: &str, text: &str) -> Result<Ignore> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| Error::Ignore {
                path: path.to_string(),
                line,
                message,
            };
            let content = raw.split(" #").next().unwrap_or_default();
            let content = if content.trim_start().starts_with('#') {
                ""
            } else {
                content
            };
            let mut words = content.split_whitespace();
            let Some(rule) = words.next() else {
                continue;
            };
            let rules = catalog::resolve(rule).map_err(|e| err(e.to_string()))?;
            let (mut target, mut expires) = (None, None);
            for w in words {
                if let Some(date) = w.strip_prefix("exp:") {
                    expires = Some(
                        day_after(date)
                            .ok_or_else(|| err(format!("{date:?} is not a date (YYYY-MM-DD)")))?,
                    );
                } else if target.is_none() {
                    let p = glob::Pattern::new(w)
                        .map_err(|e| err(format!("the target pattern {w:?}: {e}")))?;
                    target = Some(p);
                } else {
                    return Err(err(format!(
                        "unexpected {w:?}: an entry is RULE [TARGET] [exp:YYYY-MM-DD]"
                    )));
                }
            }
            entries.push(Entry {
                line,
                rules,
                target,
                expires,
            });
        }
        Ok(Ignore { entries })
    }

    /// Whether a live entry covers the finding.
    pub fn covers(&self, finding: &Finding, now: SystemTime) -> bool {
        self.entries.iter().any(|e| {
            e.rules.iter().any(|r| r.id == finding.rule.id)
                && e.target
                    .as_ref()
                    .is_none_or(|p| p.matches(&finding.target.name))
                && e.expires.is_none_or(|x| now < x)
        })
    }
}

/// Midnight (UTC) after the given day: an entry dated today still holds today.
fn day_after(date: &str) -> Option<SystemTime> {
    let shaped = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    let start = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    Some(start + std::time::Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TargetKind;
    use crate::finding::{Location, Target};
    use std::time::Duration;

    fn finding(id: &str, target: &str) -> Finding {
        Finding::new(
            id,
            &Target::new(TargetKind::Containerfile, target),
            Location::File,
            "x",
        )
    }

    #[test]
    fn entries_match_by_rule_target_and_date() {
        let text = "# accepted\n\
                    ESB-F-013\n\
                    \n\
                    cis:4.1 build/*.dev   # dev images run as root\n\
                    hadolint:DL3007 * exp:2027-01-31\n";
        let ig = Ignore::parse(".estibaignore", text).unwrap();
        let jan = humantime::parse_rfc3339("2027-01-31T23:00:00Z").unwrap();
        let feb = jan + Duration::from_secs(3600);
        assert!(ig.covers(&finding("ESB-F-013", "any"), jan));
        assert!(ig.covers(&finding("ESB-F-001", "build/x.dev"), jan));
        assert!(!ig.covers(&finding("ESB-F-001", "Containerfile"), jan));
        assert!(ig.covers(&finding("ESB-F-004", "Containerfile"), jan));
        assert!(!ig.covers(&finding("ESB-F-004", "Containerfile"), feb));
        assert!(!ig.covers(&finding("ESB-F-005", "Containerfile"), jan));
    }

    #[test]
    fn mistakes_are_errors_with_their_line() {
        for (text, line, words) in [
            ("ESB-X-999\n", 1, "no rule"),
            ("\ncis:4.1 [\n", 2, "pattern"),
            ("ESB-F-001 a exp:tomorrow\n", 1, "not a date"),
            ("ESB-F-001 a exp:2027-13-45\n", 1, "not a date"),
            ("ESB-F-001 a b\n", 1, "unexpected"),
        ] {
            match Ignore::parse("ig", text) {
                Err(Error::Ignore {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(message.contains(words), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
