//! The cluster's admission policy (`estiba cluster policy set FILE`): the
//! audit's rules in the same TOML as the engine's policy file, held in the
//! store so every replica judges alike. RegisterTaskDefinition, RunTask
//! and CreateService audit the task definition and refuse it with a
//! ClientException naming the rules the policy enforces; warned rules are
//! logged and pass.

use estiba_audit::policy::{Policy, Subject};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::model::{encode, Db};
use crate::{keys, time, Error, Result};
use estiba_state::{Op, Txn};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRecord {
    /// The TOML as given (checked before it was stored).
    pub text: String,
    pub set_at: f64,
}

/// Stores a policy, after checking it parses.
pub async fn set(db: &Db, text: &str) -> Result<()> {
    Policy::parse("the policy", text).map_err(|e| Error::Invalid(e.to_string()))?;
    let record = PolicyRecord {
        text: text.to_string(),
        set_at: time::now(),
    };
    let txn = Txn::when(vec![]).and_then(vec![Op::put(keys::POLICY, encode(&record))]);
    db.commit(txn).await?;
    Ok(())
}

pub async fn get(db: &Db) -> Result<Option<PolicyRecord>> {
    Ok(db.get::<PolicyRecord>(keys::POLICY).await?.map(|v| v.value))
}

/// Removes the policy; false if there was none.
pub async fn remove(db: &Db) -> Result<bool> {
    if get(db).await?.is_none() {
        return Ok(false);
    }
    db.delete(keys::POLICY).await?;
    Ok(true)
}

/// Audits a task definition (its JSON) by the cluster's policy. `cluster`
/// is the cluster it is to run on (RunTask, CreateService); None at
/// registration.
pub async fn admit(
    db: &Db,
    definition: &estiba_ecs::taskdef::TaskDefinition,
    cluster: Option<&str>,
) -> std::result::Result<(), ApiError> {
    let Some(record) = get(db).await? else {
        return Ok(());
    };
    let policy = Policy::parse("the cluster policy", &record.text)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let text = serde_json::to_string_pretty(definition)
        .map_err(|e| ApiError::client(format!("the task definition: {e}")))?;
    let options = estiba_audit::taskdef::Options {
        trusted_registries: policy.trusted_registries.clone(),
    };
    let findings = estiba_audit::taskdef::audit(&definition.family, &text, &options)
        .map_err(|e| ApiError::client(e.to_string()))?;
    let images: Vec<&str> = definition
        .container_definitions
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    let verdict = policy.judge_each(&findings, |f| {
        // A container's finding is about its image; the task's, about all.
        let container = match &f.location {
            estiba_audit::Location::Pointer { pointer, .. } => pointer
                .strip_prefix("/containerDefinitions/")
                .and_then(|rest| rest.split('/').next())
                .and_then(|i| i.parse::<usize>().ok()),
            _ => None,
        };
        let chosen: Vec<&str> = match container.and_then(|i| images.get(i)) {
            Some(image) => vec![image],
            None => images.clone(),
        };
        chosen
            .into_iter()
            .map(|image| Subject {
                image: Some(image),
                repository: None,
                cluster,
            })
            .collect()
    });
    for warning in verdict.warnings() {
        tracing::warn!(family = %definition.family, "{warning}");
    }
    match verdict.refusal() {
        Some(refusal) => Err(ApiError::client(refusal)),
        None => Ok(()),
    }
}
