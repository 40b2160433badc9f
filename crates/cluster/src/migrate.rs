//! `estiba cluster migrate --from sqlite:DIR --to etcd://…`: the whole
//! state copied from one store into an empty other, then verified by a
//! checksum over every key (k3s users lose data on this path,
//! k3s#12478: nothing here is trusted without the check).
//!
//! - The source is read at one revision, so the copy is one consistent
//!   snapshot. The caller makes sure no control plane writes to it (for
//!   SQLite, `serve.lock` in its directory).
//! - What lives on leases and is made again by its owner is not copied:
//!   node connections (`connected/`, agents heartbeat again) and the
//!   leader key (the replicas elect one). Join tokens are copied on a new
//!   lease for the time they had left; an expired one is dropped.
//! - The target must be empty, and every put is conditional on its key
//!   being absent, so a copy never overwrites anything.
//! - The checksum (SHA-256 over each key and value, in key order) of what
//!   was to be copied is compared with the same over the target.

use estiba_state::{AnyStore, Cmp, Compare, KeyValue, Op, Store, Txn};
use sha2::Digest;

use crate::model::JoinTokenRecord;
use crate::{keys, time, Error, Result};

/// Puts per transaction: under etcd's default limit of 128 operations,
/// with the compares beside them.
const BATCH: usize = 60;

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The source's revision the snapshot was read at.
    pub revision: i64,
    pub copied: usize,
    /// Keys left out, each with why.
    pub skipped: Vec<(String, &'static str)>,
    /// `sha256:` and the hex digest, equal on both sides.
    pub checksum: String,
}

/// Whether a key is left out of the copy, and why.
fn left_out(kv: &KeyValue) -> Option<&'static str> {
    let key = kv.key.as_slice();
    if key.starts_with(keys::CONNECTED.as_bytes()) {
        return Some("a node's connection: its agent connects again");
    }
    if key == keys::LEADER.as_bytes() {
        return Some("the leader key: the replicas elect one");
    }
    if kv.lease != 0 && !key.starts_with(keys::JOIN_TOKENS.as_bytes()) {
        return Some("on a lease its owner renews");
    }
    None
}

/// SHA-256 over each key and value, each length-prefixed, in key order.
fn checksum<'a>(kvs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut h = sha2::Sha256::new();
    for (k, v) in kvs {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Copies every key of `from` into the empty `to`, and checks the copy.
pub async fn migrate(from: &AnyStore, to: &AnyStore) -> Result<Report> {
    let (existing, _) = to.range(b"", None).await?;
    if !existing.is_empty() {
        return Err(Error::Invalid(format!(
            "the target store already holds {} keys: migrate into an empty one",
            existing.len()
        )));
    }
    let (kvs, revision) = from.range(b"", None).await?;
    let mut skipped = Vec::new();
    let mut copy: Vec<&KeyValue> = Vec::new();
    let now = time::now() as u64;
    for kv in &kvs {
        let name = String::from_utf8_lossy(&kv.key).into_owned();
        if let Some(why) = left_out(kv) {
            skipped.push((name, why));
        } else if kv.key.starts_with(keys::JOIN_TOKENS.as_bytes())
            && serde_json::from_slice::<JoinTokenRecord>(&kv.value)
                .map_or(true, |t| t.expires_at <= now + 1)
        {
            skipped.push((name, "an expired join token"));
        } else {
            copy.push(kv);
        }
    }
    for batch in copy.chunks(BATCH) {
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        for kv in batch {
            compares.push(Compare::CreateRevision(kv.key.clone(), Cmp::Equal, 0));
            let lease = if kv.key.starts_with(keys::JOIN_TOKENS.as_bytes()) {
                let left = serde_json::from_slice::<JoinTokenRecord>(&kv.value)
                    .map_or(1, |t| t.expires_at.saturating_sub(now).max(1));
                Some(to.grant(std::time::Duration::from_secs(left)).await?)
            } else {
                None
            };
            puts.push(Op::Put {
                key: kv.key.clone(),
                value: kv.value.clone(),
                lease,
            });
        }
        // A transaction carries one lease in etcd's API: a batch with a
        // token goes one put at a time.
        if puts
            .iter()
            .filter(|p| matches!(p, Op::Put { lease: Some(_), .. }))
            .count()
            > 0
        {
            for (c, p) in compares.into_iter().zip(puts) {
                commit(to, vec![c], vec![p]).await?;
            }
        } else {
            commit(to, compares, puts).await?;
        }
    }
    let wanted = checksum(
        copy.iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice())),
    );
    let (landed, _) = to.range(b"", None).await?;
    let got = checksum(
        landed
            .iter()
            .filter(|kv| left_out(kv).is_none() || kv.key.starts_with(keys::JOIN_TOKENS.as_bytes()))
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice())),
    );
    if landed.len() != copy.len() || got != wanted {
        return Err(Error::Invalid(format!(
            "the copy does not match: {} keys to copy ({wanted}), {} in the target ({got})",
            copy.len(),
            landed.len()
        )));
    }
    Ok(Report {
        revision,
        copied: copy.len(),
        skipped,
        checksum: wanted,
    })
}

async fn commit(to: &AnyStore, compares: Vec<Compare>, puts: Vec<Op>) -> Result<()> {
    if to.txn(Txn::when(compares).and_then(puts)).await?.succeeded {
        Ok(())
    } else {
        Err(Error::Invalid(
            "a key appeared in the target during the copy: something else writes to it".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use estiba_state::SqliteStore;

    async fn store(dir: &std::path::Path, name: &str) -> AnyStore {
        AnyStore::Sqlite(SqliteStore::open(&dir.join(name)).unwrap())
    }

    #[tokio::test]
    async fn every_key_is_copied_and_checked_but_what_lives_on_leases() {
        let dir = tempfile::tempdir().unwrap();
        let from = store(dir.path(), "from.db").await;
        let to = store(dir.path(), "to.db").await;
        let lease = from
            .grant(std::time::Duration::from_secs(60))
            .await
            .unwrap();
        let token = JoinTokenRecord {
            secret_sha256: "x".into(),
            expires_at: time::now() as u64 + 600,
            fargate: false,
        };
        let mut ops: Vec<Op> = (0..150)
            .map(|i| Op::put(format!("tasks/default/{i:04}"), format!("{{\"n\":{i}}}")))
            .collect();
        ops.push(Op::Put {
            key: keys::connected("n1").into_bytes(),
            value: b"1".to_vec(),
            lease: Some(lease),
        });
        ops.push(Op::Put {
            key: keys::join_token("t1").into_bytes(),
            value: serde_json::to_vec(&token).unwrap(),
            lease: Some(lease),
        });
        from.txn(Txn::default().and_then(ops)).await.unwrap();
        let report = migrate(&from, &to).await.unwrap();
        assert_eq!(report.copied, 151);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].0, "connected/n1");
        let (copied, _) = to.range(b"tasks/", None).await.unwrap();
        assert_eq!(copied.len(), 150);
        let t = to
            .get(keys::join_token("t1").as_bytes(), None)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(t.lease, 0, "a token keeps a lease of its own");
        // Into a store that is not empty: refused, nothing written.
        let err = migrate(&from, &to).await.unwrap_err();
        assert!(err.to_string().contains("already holds"), "{err}");
    }
}
