//! ECR's lifecycle-policy JSON, mapped onto the registry's lifecycle
//! engine: `untagged` + `sinceImagePushed` (days) expires untagged images
//! older than that; `tagged` + one `tagPrefixList` entry +
//! `imageCountMoreThan` keeps the newest N with that prefix. Other
//! selections are refused by name rather than half-applied.

use serde::Deserialize;

use crate::lifecycle::Rule;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    rules: Vec<PolicyRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRule {
    rule_priority: u32,
    /// Accepted and kept only in the policy's text.
    #[serde(default, rename = "description")]
    _description: Option<String>,
    selection: Selection,
    action: RuleAction,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selection {
    tag_status: String,
    #[serde(default)]
    tag_prefix_list: Vec<String>,
    #[serde(default)]
    tag_pattern_list: Vec<String>,
    count_type: String,
    #[serde(default)]
    count_unit: Option<String>,
    count_number: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleAction {
    #[serde(rename = "type")]
    kind: String,
}

/// The rules, in priority order, or why the policy cannot be taken.
pub fn parse(text: &str) -> Result<Vec<(u32, Rule)>, String> {
    let policy: Policy = serde_json::from_str(text)
        .map_err(|e| format!("the lifecycle policy is not valid: {e}"))?;
    if policy.rules.is_empty() {
        return Err("the lifecycle policy has no rules".into());
    }
    let mut out = Vec::new();
    for r in &policy.rules {
        let at = format!("rule {}", r.rule_priority);
        if r.action.kind != "expire" {
            return Err(format!("{at}: the only action is \"expire\""));
        }
        if out.iter().any(|(p, _)| *p == r.rule_priority) {
            return Err(format!("{at}: rulePriority must be unique"));
        }
        if r.selection.count_number == 0 {
            return Err(format!("{at}: countNumber must be at least 1"));
        }
        let s = &r.selection;
        let rule = match (s.tag_status.as_str(), s.count_type.as_str()) {
            ("untagged", "sinceImagePushed") => {
                if s.count_unit.as_deref() != Some("days") {
                    return Err(format!("{at}: sinceImagePushed needs countUnit \"days\""));
                }
                Rule::ExpireUntagged {
                    days: s.count_number,
                }
            }
            ("tagged", "imageCountMoreThan") => {
                if !s.tag_pattern_list.is_empty() {
                    return Err(format!(
                        "{at}: tagPatternList is not supported by estiba's lifecycle engine yet; use tagPrefixList"
                    ));
                }
                let [prefix] = s.tag_prefix_list.as_slice() else {
                    return Err(format!("{at}: a tagged rule needs exactly one tagPrefixList entry here"));
                };
                if s.count_unit.is_some() {
                    return Err(format!("{at}: imageCountMoreThan takes no countUnit"));
                }
                Rule::KeepLast {
                    prefix: prefix.clone(),
                    count: usize::try_from(s.count_number).unwrap_or(usize::MAX),
                }
            }
            ("untagged" | "tagged" | "any", "imageCountMoreThan" | "sinceImagePushed") => {
                return Err(format!(
                    "{at}: tagStatus {:?} with countType {:?} is not supported by estiba's lifecycle engine yet",
                    s.tag_status, s.count_type
                ))
            }
            (status, count) => {
                return Err(format!(
                    "{at}: tagStatus must be tagged, untagged or any and countType imageCountMoreThan or sinceImagePushed (got {status:?}, {count:?})"
                ))
            }
        };
        out.push((r.rule_priority, rule));
    }
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecrs_two_common_rules_map_and_the_rest_is_refused() {
        let rules = parse(
            r#"{"rules": [
              {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}},
              {"rulePriority": 1, "description": "keep 3", "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            rules,
            [
                (
                    1,
                    Rule::KeepLast {
                        prefix: "v".into(),
                        count: 3
                    }
                ),
                (2, Rule::ExpireUntagged { days: 14 })
            ]
        );
        for (bad, words) in [
            ("{", "not valid"),
            (r#"{"rules": []}"#, "no rules"),
            (
                r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "keep"}}]}"#,
                "expire",
            ),
            (
                r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}]}"#,
                "not supported",
            ),
            (
                r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "sometimes", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}]}"#,
                "tagStatus must be",
            ),
            (
                r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countNumber": 3}, "action": {"type": "expire"}}]}"#,
                "days",
            ),
            (
                r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 0}, "action": {"type": "expire"}}]}"#,
                "at least 1",
            ),
            (
                r#"{"rules": [{"rulePriority": 1, "bogus": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
                "bogus",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }
}
