//! Users of the ECS API: a name, IAM-style policies, and access keys whose
//! secrets are sealed before they reach the store.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::{AccessKeyRecord, Db, KeyStatus, PolicyRef, UserRecord};
use crate::seal::Sealer;
use crate::{keys, time, Error, Result};

/// IAM's CreateAccessKey answer, which `cluster user add` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateAccessKey {
    #[serde(rename = "AccessKey")]
    pub access_key: AccessKey,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKey {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub secret_access_key: String,
    pub create_date: String,
}

/// A user name as IAM allows it: letters, digits and `+=,.@_-`, 1–64.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// An access key id in AWS's shape: `AKIA` and 16 upper-case characters.
fn new_key_id() -> String {
    format!("AKIA{}", estiba_os::random_hex(8).to_ascii_uppercase())
}

/// Creates a user with `policies` and a first access key.
pub async fn add(
    db: &Db,
    sealer: &Sealer,
    name: &str,
    policies: Vec<PolicyRef>,
) -> Result<CreateAccessKey> {
    if !valid_name(name) {
        return Err(Error::Invalid(format!(
            "user name {name:?}: up to 64 letters, digits and +=,.@_- are allowed"
        )));
    }
    let user = UserRecord {
        name: name.to_string(),
        policies,
        created_at: time::now(),
    };
    if !db.swap(&keys::user(name), 0, &user).await? {
        return Err(Error::Conflict(format!("user {name} already exists")));
    }
    create_key(db, sealer, name).await
}

/// Issues a new access key to an existing user.
pub async fn create_key(db: &Db, sealer: &Sealer, user: &str) -> Result<CreateAccessKey> {
    let id = new_key_id();
    let secret = estiba_os::random_hex(20);
    let record_key = keys::access_key(&id);
    let created_at = time::now();
    let record = AccessKeyRecord {
        id: id.clone(),
        user: user.to_string(),
        secret: sealer.seal(&record_key, secret.as_bytes())?,
        status: KeyStatus::Active,
        created_at,
    };
    if !db.swap(&record_key, 0, &record).await? {
        return Err(Error::Conflict(format!("access key {id} already exists")));
    }
    let when = UNIX_EPOCH + Duration::from_millis((created_at * 1000.0) as u64);
    Ok(CreateAccessKey {
        access_key: AccessKey {
            user_name: user.to_string(),
            access_key_id: id,
            status: "Active".into(),
            secret_access_key: secret,
            create_date: humantime::format_rfc3339_seconds(when).to_string(),
        },
    })
}

/// The caller behind an active access key: the user and the key's secret.
#[derive(Clone, Debug)]
pub struct Credential {
    pub user: UserRecord,
    pub secret: String,
}

/// Looks an access key up; None if it is unknown, inactive, or its user is
/// gone.
pub async fn credential(db: &Db, sealer: &Sealer, id: &str) -> Result<Option<Credential>> {
    let record_key = keys::access_key(id);
    let Some(key) = db.get::<AccessKeyRecord>(&record_key).await? else {
        return Ok(None);
    };
    if key.value.status != KeyStatus::Active {
        return Ok(None);
    }
    let Some(user) = db.get::<UserRecord>(&keys::user(&key.value.user)).await? else {
        return Ok(None);
    };
    let secret = sealer.open_sealed(&record_key, &key.value.secret)?;
    Ok(Some(Credential {
        user: user.value,
        secret: String::from_utf8_lossy(&secret).into_owned(),
    }))
}

/// A policy named on the command line: a built-in one or an IAM JSON file.
pub fn policy(name_or_file: &str) -> Result<PolicyRef> {
    if estiba_aws::policy::builtin(name_or_file).is_some() {
        return Ok(PolicyRef::Builtin(name_or_file.to_string()));
    }
    let path = std::path::Path::new(name_or_file);
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Invalid(format!(
            "--policy {name_or_file}: neither admin, operator nor readonly, and not a readable file ({e})"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("policy {name_or_file}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use estiba_state::{AnyStore, SqliteStore};

    #[tokio::test]
    async fn keys_are_sealed_in_the_store_and_found_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let db = Db::new(AnyStore::Sqlite(store.clone()));
        let sealer = Sealer::open(dir.path()).unwrap();
        let policy = policy("readonly").unwrap();
        let out = add(&db, &sealer, "ana", vec![policy]).await.unwrap();
        let key = &out.access_key;
        assert!(key.access_key_id.starts_with("AKIA") && key.access_key_id.len() == 20);
        assert_eq!(key.secret_access_key.len(), 40);

        let cred = credential(&db, &sealer, &key.access_key_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cred.secret, key.secret_access_key);
        assert_eq!(cred.user.name, "ana");
        assert!(credential(&db, &sealer, "AKIANOSUCHKEY000000")
            .await
            .unwrap()
            .is_none());

        // Nothing in the store holds the secret in clear.
        let (all, _) = estiba_state::Store::range(&store, b"", None).await.unwrap();
        for kv in all {
            let text = String::from_utf8_lossy(&kv.value);
            assert!(!text.contains(&key.secret_access_key), "{text}");
        }
        // A second user of the same name is refused.
        assert!(matches!(
            add(&db, &sealer, "ana", vec![]).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            add(&db, &sealer, "a b", vec![]).await,
            Err(Error::Invalid(_))
        ));
    }
}
