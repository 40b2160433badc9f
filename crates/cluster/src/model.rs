//! The records the control plane keeps, and typed reads and writes of them
//! (`Db`): JSON values under the keys of `keys.rs`, each write a
//! compare-and-swap on what was read.

use estiba_aws::policy::Policy;
use estiba_ecs::taskdef::TaskDefinition;
use estiba_state::{AnyStore, Cmp, Compare, Op, Store, Txn};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::seal::Sealed;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterStatus {
    Active,
    Inactive,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub name: String,
    pub status: ClusterStatus,
    pub created_at: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskDefStatus {
    Active,
    Inactive,
    DeleteInProgress,
}

impl TaskDefStatus {
    pub fn parse(s: &str) -> Option<TaskDefStatus> {
        match s {
            "ACTIVE" => Some(TaskDefStatus::Active),
            "INACTIVE" => Some(TaskDefStatus::Inactive),
            "DELETE_IN_PROGRESS" => Some(TaskDefStatus::DeleteInProgress),
            _ => None,
        }
    }
}

/// One revision of a family, as registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefRecord {
    pub definition: TaskDefinition,
    pub revision: u32,
    pub status: TaskDefStatus,
    pub registered_at: f64,
    pub registered_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_requested_at: Option<f64>,
    /// AWS-only features recorded but not run here.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A family's last revision number (revisions are never reused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub last: u32,
}

/// A tag, as ECS spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub name: String,
    pub policies: Vec<PolicyRef>,
    pub created_at: f64,
}

/// A user's policy: a built-in one by name, so that it follows the
/// built-in's definition in this release, or a document of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyRef {
    Builtin(String),
    Document(Policy),
}

impl PolicyRef {
    /// The document to evaluate; None for a built-in this release lacks.
    pub fn resolve(&self) -> Option<Policy> {
        match self {
            PolicyRef::Builtin(name) => estiba_aws::policy::builtin(name),
            PolicyRef::Document(p) => Some(p.clone()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyRecord {
    pub id: String,
    pub user: String,
    /// The secret access key, sealed under this record's key.
    pub secret: Sealed,
    pub status: KeyStatus,
    pub created_at: f64,
}

/// A join token: the hash of its secret, on a lease that ends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRecord {
    pub secret_sha256: String,
    pub expires_at: u64,
    /// Joins the built-in FARGATE capacity, and nothing else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fargate: bool,
}

/// A joined node's own credential (its hash) and its heartbeat lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub cluster: String,
    pub secret_sha256: String,
    pub lease: i64,
    /// Where the agent serves its API (task logs), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
    /// The bearer secret of that API, sealed under this record's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret: Option<Sealed>,
}

/// A random id in the 8-4-4-4-12 shape of ECS's ids (attachments,
/// service events, scaling policies and activities).
pub fn uuid_like() -> String {
    let h = estiba_os::random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The hex SHA-256 of a secret: what the store keeps of tokens.
pub fn sha256_hex(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `sha256` (a stored hex digest), compared in
/// constant time.
pub fn matches_digest(secret: &str, sha256: &str) -> bool {
    estiba_os::constant_time_eq(sha256_hex(secret).as_bytes(), sha256.as_bytes())
}

/// A transaction's condition that `key` is still at `mod_revision` (0:
/// absent): what every write compares against what it read.
pub fn unchanged(key: &str, mod_revision: i64) -> Compare {
    Compare::ModRevision(key.as_bytes().to_vec(), Cmp::Equal, mod_revision)
}

/// A record as read, with the mod revision a write compares against.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// Typed access to the store.
#[derive(Clone, Debug)]
pub struct Db {
    pub store: AnyStore,
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|source| Error::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data: serializing them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Db {
    pub fn new(store: AnyStore) -> Db {
        Db { store }
    }

    /// A watch of `prefix` from the next revision on: whatever the caller
    /// reads after this call, no change after it is missed.
    pub async fn watch_from_now(&self, prefix: &str) -> Result<estiba_state::Watch> {
        let revision = self.store.revision().await?;
        Ok(self.store.watch(prefix.as_bytes(), revision + 1).await?)
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        match self.store.get(key.as_bytes(), None).await? {
            Some(kv) => Ok(Some(Versioned {
                value: decode(&kv.key, &kv.value)?,
                mod_revision: kv.mod_revision,
            })),
            None => Ok(None),
        }
    }

    /// Every record under `prefix`, in key order, with its key.
    pub async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        let (kvs, _) = self.store.range(prefix.as_bytes(), None).await?;
        kvs.iter()
            .map(|kv| {
                Ok((
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    decode(&kv.key, &kv.value)?,
                ))
            })
            .collect()
    }

    /// Every record under `prefix`, in key order, with its key and mod
    /// revision (for writes that compare against what was read).
    pub async fn list_versioned<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Versioned<T>)>> {
        let (kvs, _) = self.store.range(prefix.as_bytes(), None).await?;
        kvs.iter()
            .map(|kv| {
                Ok((
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    Versioned {
                        value: decode(&kv.key, &kv.value)?,
                        mod_revision: kv.mod_revision,
                    },
                ))
            })
            .collect()
    }

    /// The keys under `prefix`, without their values' meaning.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let (kvs, _) = self.store.range(prefix.as_bytes(), None).await?;
        Ok(kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect())
    }

    /// Writes `value` if the key is still at `mod_revision` (0: absent).
    /// False if someone else wrote it first.
    pub async fn swap<T: Serialize>(
        &self,
        key: &str,
        mod_revision: i64,
        value: &T,
    ) -> Result<bool> {
        let txn = Txn::when(vec![unchanged(key, mod_revision)])
            .and_then(vec![Op::put(key, encode(value))]);
        Ok(self.store.txn(txn).await?.succeeded)
    }

    /// Runs `txn`; false if its compares did not hold.
    pub async fn commit(&self, txn: Txn) -> Result<bool> {
        Ok(self.store.txn(txn).await?.succeeded)
    }

    /// Runs `txn`: the store's revision after it, or None if its compares
    /// did not hold.
    pub async fn commit_at(&self, txn: Txn) -> Result<Option<i64>> {
        let r = self.store.txn(txn).await?;
        Ok(r.succeeded.then_some(r.revision))
    }

    /// The instances whose agent is connected now (`connected/<id>`).
    pub async fn connected(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .keys(crate::keys::CONNECTED)
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix(crate::keys::CONNECTED))
            .map(str::to_string)
            .collect())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key.as_bytes()).await?;
        Ok(())
    }
}
