//! Cluster secrets (`estiba cluster secret create NAME`), for the
//! `secrets` of container definitions.
//!
//! On ECS a secret's `valueFrom` is a Secrets Manager or SSM parameter
//! ARN. Here it names a cluster secret, either directly or as the last name
//! component of such an ARN, so task definitions written for ECS run as
//! they are once the secrets exist under those names. Values are sealed at
//! rest under the control plane's key; the agent of the node a task is
//! placed on asks for them when it creates the task's containers (the
//! agent API's `secrets`), and they reach the containers as environment
//! variables, as ECS injects them. No task record holds them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Db;
use crate::seal::{Sealed, Sealer};
use crate::task::TaskRecord;
use crate::wire::{RegistryLogin, TaskSecrets};
use crate::{keys, time, Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRecord {
    pub name: String,
    pub value: Sealed,
    pub created_at: f64,
}

/// Secrets Manager's rule: 1 to 512 of letters, digits and `/_+=.@-`.
pub fn valid_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// Creates a secret; an existing one is refused (remove it first).
pub async fn create(db: &Db, sealer: &Sealer, name: &str, value: &[u8]) -> Result<()> {
    if !valid_name(name) {
        return Err(Error::Invalid(format!(
            "secret name {name:?}: 1 to 512 letters, digits and /_+=.@- are allowed"
        )));
    }
    let key = keys::secret(name);
    let record = SecretRecord {
        name: name.to_string(),
        value: sealer.seal(&key, value)?,
        created_at: time::now(),
    };
    if !db.swap(&key, 0, &record).await? {
        return Err(Error::Conflict(format!("secret {name} already exists")));
    }
    Ok(())
}

/// Every secret's name and creation time (never a value).
pub async fn list(db: &Db) -> Result<Vec<(String, f64)>> {
    Ok(db
        .list::<SecretRecord>(keys::SECRETS)
        .await?
        .into_iter()
        .map(|(_, r)| (r.name, r.created_at))
        .collect())
}

/// Removes a secret; false if there was none.
pub async fn remove(db: &Db, name: &str) -> Result<bool> {
    let key = keys::secret(name);
    if db.get::<SecretRecord>(&key).await?.is_none() {
        return Ok(false);
    }
    db.delete(&key).await?;
    Ok(true)
}

/// The cluster secret names a `valueFrom` may mean, most exact first:
/// the value itself; a Secrets Manager ARN's secret name (with and without
/// the six-character suffix Secrets Manager adds, and without a JSON key
/// or version after it); an SSM parameter ARN's last path component.
pub fn candidates(value_from: &str) -> Vec<String> {
    let mut out = vec![value_from.to_string()];
    if let Some((_, rest)) = value_from.split_once(":secret:") {
        let name = rest.split(':').next().unwrap_or(rest);
        out.push(name.to_string());
        if let Some((base, suffix)) = name.rsplit_once('-') {
            if suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
                out.push(base.to_string());
            }
        }
    } else if let Some((_, rest)) = value_from.split_once(":parameter") {
        let last = rest.rsplit('/').next().unwrap_or(rest);
        out.push(last.to_string());
    }
    out.retain(|n| valid_name(n));
    out.dedup();
    out
}

/// The value a `valueFrom` names, if a cluster secret matches.
pub async fn resolve(db: &Db, sealer: &Sealer, value_from: &str) -> Result<Option<String>> {
    for name in candidates(value_from) {
        let key = keys::secret(&name);
        if let Some(found) = db.get::<SecretRecord>(&key).await? {
            let plain = sealer.open_sealed(&key, &found.value.value)?;
            return Ok(Some(String::from_utf8_lossy(&plain).into_owned()));
        }
    }
    Ok(None)
}

/// Each container's secrets as `NAME=value` environment entries, and the
/// registry logins of its `repositoryCredentials`. Err names the first
/// `valueFrom` or `credentialsParameter` that matches no cluster secret,
/// or a login that is not `{"username", "password"}`.
pub async fn for_task(
    db: &Db,
    sealer: &Sealer,
    task: &TaskRecord,
) -> Result<std::result::Result<TaskSecrets, String>> {
    let mut logins = BTreeMap::new();
    for def in &task.definition.container_definitions {
        let Some(param) = def
            .repository_credentials
            .as_ref()
            .and_then(|r| r.get("credentialsParameter"))
            .and_then(serde_json::Value::as_str)
        else {
            continue;
        };
        let Some(value) = resolve(db, sealer, param).await? else {
            return Ok(Err(format!(
                "{}: repositoryCredentials {param}: no cluster secret by that name (estiba cluster secret create)",
                def.name
            )));
        };
        match serde_json::from_str::<RegistryLogin>(&value) {
            Ok(login) => {
                logins.insert(def.name.clone(), login);
            }
            Err(_) => {
                return Ok(Err(format!(
                    "{}: repositoryCredentials {param}: the secret is not {{\"username\": …, \"password\": …}}",
                    def.name
                )))
            }
        }
    }
    let mut out = BTreeMap::new();
    for def in &task.definition.container_definitions {
        let mut env = Vec::new();
        for s in def.secrets.iter().flatten() {
            match resolve(db, sealer, &s.value_from).await? {
                Some(value) => env.push(format!("{}={value}", s.name)),
                None => {
                    return Ok(Err(format!(
                    "{}: secret {}: no cluster secret by that name (estiba cluster secret create)",
                    def.name, s.value_from
                )))
                }
            }
        }
        if !env.is_empty() {
            out.insert(def.name.clone(), env);
        }
    }
    Ok(Ok(TaskSecrets {
        containers: out,
        registry_logins: logins,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_lead_to_their_last_name() {
        assert_eq!(candidates("db-password"), vec!["db-password"]);
        let sm =
            candidates("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf");
        assert_eq!(sm, ["db-password-AbCdEf", "db-password"]);
        let key = candidates(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-Xy12Zq:token::",
        );
        assert!(key.contains(&"prod/api".to_string()), "{key:?}");
        let ssm = candidates("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db/password");
        assert_eq!(ssm.last().map(String::as_str), Some("password"));
    }

    #[test]
    fn names_follow_secrets_managers_rule() {
        assert!(valid_name("prod/db_password+1=@.-"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(513)));
    }
}
