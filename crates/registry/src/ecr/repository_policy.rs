//! ECR's repository-policy JSON, mapped onto the registry's actions:
//! `Allow` statements whose principals are this account's users (or `*`)
//! and whose `ecr:` actions become pull, push, delete or admin. What the
//! registry cannot honour (Deny, conditions, other accounts, actions it
//! does not know) is refused by name rather than dropped.

use serde_json::Value;

use crate::auth::Action;
use crate::settings::PolicyGrant;

use super::ACCOUNT;

/// The registry action an ECR action needs.
fn action_of(name: &str) -> Option<Vec<Action>> {
    let all = || vec![Action::Pull, Action::Push, Action::Delete, Action::Admin];
    Some(match name {
        "ecr:*" | "*" => all(),
        "ecr:BatchGetImage"
        | "ecr:GetDownloadUrlForLayer"
        | "ecr:BatchCheckLayerAvailability"
        | "ecr:DescribeImages"
        | "ecr:ListImages"
        | "ecr:DescribeRepositories"
        | "ecr:GetLifecyclePolicy"
        | "ecr:GetLifecyclePolicyPreview"
        | "ecr:StartLifecyclePolicyPreview"
        | "ecr:GetRepositoryPolicy"
        | "ecr:ListTagsForResource" => vec![Action::Pull],
        "ecr:PutImage"
        | "ecr:InitiateLayerUpload"
        | "ecr:UploadLayerPart"
        | "ecr:CompleteLayerUpload" => {
            vec![Action::Push]
        }
        "ecr:BatchDeleteImage" => vec![Action::Delete],
        "ecr:SetRepositoryPolicy"
        | "ecr:DeleteRepositoryPolicy"
        | "ecr:DeleteRepository"
        | "ecr:PutLifecyclePolicy"
        | "ecr:DeleteLifecyclePolicy"
        | "ecr:PutImageTagMutability"
        | "ecr:TagResource" => vec![Action::Admin],
        _ => return None,
    })
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} must be strings"))
            })
            .collect(),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

/// A principal as registry users: `*`, this account's root (everyone),
/// or `arn:aws:iam::ACCOUNT:user/NAME`.
fn users_of(principal: &Value) -> Result<Vec<String>, String> {
    let list = match principal {
        Value::String(s) if s == "*" => return Ok(vec!["*".into()]),
        Value::Object(o) => strings(o.get("AWS").ok_or("Principal needs AWS")?, "Principal.AWS")?,
        _ => return Err("Principal must be \"*\" or {\"AWS\": …}".into()),
    };
    list.iter()
        .map(|p| {
            if p == "*" || p == &format!("arn:aws:iam::{ACCOUNT}:root") || p == ACCOUNT {
                return Ok("*".to_string());
            }
            p.strip_prefix(&format!("arn:aws:iam::{ACCOUNT}:user/"))
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("principal {p:?} is not a user of account {ACCOUNT}"))
        })
        .collect()
}

/// The grants of a policy, or why it cannot be taken.
pub fn parse(text: &str) -> Result<Vec<PolicyGrant>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("the policy is not valid JSON: {e}"))?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return Err("the policy needs a Statement".into()),
    };
    let mut grants = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        let at = format!("statement {}", i + 1);
        let Some(o) = st.as_object() else {
            return Err(format!("{at} must be an object"));
        };
        for key in o.keys() {
            if !matches!(key.as_str(), "Sid" | "Effect" | "Principal" | "Action") {
                return Err(format!("{at}: {key} is not supported (estiba honours Sid, Effect, Principal and Action)"));
            }
        }
        match o.get("Effect").and_then(Value::as_str) {
            Some("Allow") => {}
            Some("Deny") => {
                return Err(format!(
                    "{at}: Deny statements are not supported: the registry's policies only grant"
                ))
            }
            _ => return Err(format!("{at}: Effect must be Allow")),
        }
        let users = users_of(
            o.get("Principal")
                .ok_or_else(|| format!("{at}: Principal is required"))?,
        )
        .map_err(|e| format!("{at}: {e}"))?;
        let mut actions = Vec::new();
        for a in strings(
            o.get("Action")
                .ok_or_else(|| format!("{at}: Action is required"))?,
            "Action",
        )
        .map_err(|e| format!("{at}: {e}"))?
        {
            let mapped = action_of(&a)
                .ok_or_else(|| format!("{at}: action {a:?} is not one estiba's registry knows"))?;
            for m in mapped {
                if !actions.contains(&m) {
                    actions.push(m);
                }
            }
        }
        grants.push(PolicyGrant { users, actions });
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_statements_become_grants_and_the_rest_is_refused() {
        let grants = parse(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "pull", "Effect": "Allow",
                "Principal": {{"AWS": ["arn:aws:iam::{ACCOUNT}:user/bob"]}},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            grants,
            [PolicyGrant {
                users: vec!["bob".into()],
                actions: vec![Action::Pull]
            }]
        );
        let all =
            parse(r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}}"#)
                .unwrap();
        assert_eq!(all[0].users, ["*"]);
        assert_eq!(all[0].actions.len(), 4);
        for (bad, words) in [
            ("{", "not valid JSON"),
            ("{}", "Statement"),
            (
                r#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}]}"#,
                "Deny",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "Condition": {}}]}"#,
                "Condition",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/x"}, "Action": "ecr:*"}]}"#,
                "not a user",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:Teleport"}]}"#,
                "Teleport",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }
}
