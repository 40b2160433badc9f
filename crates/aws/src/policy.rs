//! IAM-style policies: which actions (`ecs:RunTask`, `ecs:Describe*`) a
//! user may take on which resources (ARN globs). Evaluated as IAM does:
//! everything is denied by default, an Allow that matches permits, and an
//! explicit Deny that matches wins over any Allow.

use serde::{Deserialize, Serialize};

/// A policy document, in IAM's JSON shape (the subset estiba evaluates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub statement: Vec<Statement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    #[serde(default)]
    pub sid: Option<String>,
    pub effect: Effect,
    #[serde(deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub resource: Vec<String>,
}

/// IAM writes a single value as a string and several as a list.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => vec![v],
        OneOrMany::Many(v) => v,
    })
}

/// IAM's wildcards: `*` any run of characters, `?` any one.
fn glob(pattern: &[u8], text: &[u8], fold_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Iterative matching with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len()
            && (pattern[p] == b'?' || (pattern[p] != b'*' && eq(pattern[p], text[t])))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

impl Statement {
    fn matches(&self, action: &str, resource: &str) -> bool {
        // Action names are case-insensitive in IAM; ARNs are not.
        self.action
            .iter()
            .any(|a| glob(a.as_bytes(), action.as_bytes(), true))
            && self
                .resource
                .iter()
                .any(|r| glob(r.as_bytes(), resource.as_bytes(), false))
    }
}

/// The decision on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allowed it.
    ImplicitlyDenied,
    /// A Deny statement matched.
    ExplicitlyDenied,
}

impl Decision {
    pub fn allowed(self) -> bool {
        self == Decision::Allowed
    }
}

/// Whether `policies` let a caller take `action` on `resource`.
pub fn evaluate<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    action: &str,
    resource: &str,
) -> Decision {
    let mut allowed = false;
    for statement in policies.into_iter().flat_map(|p| &p.statement) {
        if statement.matches(action, resource) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitlyDenied,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitlyDenied
    }
}

fn allow(actions: &[&str]) -> Policy {
    Policy {
        version: Some("2012-10-17".into()),
        statement: vec![Statement {
            sid: None,
            effect: Effect::Allow,
            action: actions.iter().map(|a| a.to_string()).collect(),
            resource: vec!["*".into()],
        }],
    }
}

/// The built-in policies `cluster user add --policy` names.
pub fn builtin(name: &str) -> Option<Policy> {
    match name {
        // logs:GetLogEvents: a task's logs, which estiba serves itself.
        "admin" => Some(allow(&[
            "ecs:*",
            "ecr:*",
            "application-autoscaling:*",
            "logs:GetLogEvents",
        ])),
        "operator" => Some(allow(&[
            "ecs:Describe*",
            "ecs:List*",
            "ecs:RunTask",
            "ecs:StartTask",
            "ecs:StopTask",
            "ecs:RegisterTaskDefinition",
            "ecs:DeregisterTaskDefinition",
            "ecs:CreateService",
            "ecs:UpdateService",
            "ecs:DeleteService",
            "ecs:TagResource",
            "ecs:UntagResource",
            "application-autoscaling:*",
            "logs:GetLogEvents",
        ])),
        "readonly" => Some(allow(&[
            "ecs:Describe*",
            "ecs:List*",
            "application-autoscaling:Describe*",
            "logs:GetLogEvents",
        ])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "arn:aws:ecs:us-east-1:000000000000:task/default/abc";

    #[test]
    fn wildcards_follow_iam() {
        assert!(glob(b"ecs:Describe*", b"ecs:DescribeTasks", true));
        assert!(
            glob(b"ECS:describe*", b"ecs:DescribeTasks", true),
            "actions ignore case"
        );
        assert!(!glob(b"ecs:Describe*", b"ecs:ListTasks", true));
        assert!(glob(
            b"arn:aws:ecs:*:*:task/default/*",
            TASK.as_bytes(),
            false
        ));
        assert!(
            !glob(b"arn:aws:ecs:*:*:task/Default/*", TASK.as_bytes(), false),
            "ARNs keep case"
        );
        assert!(glob(b"ecs:?unTask", b"ecs:RunTask", true));
        assert!(glob(b"*", b"", false));
        assert!(!glob(b"a*b*c", b"abca", false));
        assert!(glob(b"a*b*c", b"aXbYbZc", false));
    }

    #[test]
    fn deny_by_default_and_an_explicit_deny_wins() {
        let readonly = builtin("readonly").unwrap();
        assert!(evaluate([&readonly], "ecs:DescribeTasks", TASK).allowed());
        assert_eq!(
            evaluate([&readonly], "ecs:RunTask", TASK),
            Decision::ImplicitlyDenied
        );
        let no_default: Policy = serde_json::from_str(
            r#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "ecs:*", "Resource": "arn:aws:ecs:*:*:task/default/*"}]}"#,
        )
        .unwrap();
        let admin = builtin("admin").unwrap();
        assert!(evaluate([&admin], "ecs:StopTask", TASK).allowed());
        assert_eq!(
            evaluate([&admin, &no_default], "ecs:StopTask", TASK),
            Decision::ExplicitlyDenied
        );
        assert_eq!(
            evaluate([], "ecs:ListClusters", "*"),
            Decision::ImplicitlyDenied
        );
    }

    #[test]
    fn policy_files_in_iams_shapes_parse_and_bad_ones_are_refused() {
        let one: Policy = serde_json::from_str(
            r#"{"Statement": {"Effect": "Allow", "Action": ["ecs:List*"], "Resource": "*"}}"#,
        )
        .unwrap();
        assert_eq!(one.statement.len(), 1);
        for bad in [
            r#"{"Statement": []"#,
            r#"{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
        assert!(builtin("root").is_none());
    }
}
