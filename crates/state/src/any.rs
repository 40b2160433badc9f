//! One type for "whichever backend `--store` named", so the control plane
//! is written once against [`Store`] without being generic everywhere.

use std::time::Duration;

use crate::{EtcdStore, KeyValue, Result, SqliteStore, Store, Txn, TxnResponse, Watch};

/// The store `--store sqlite` or `--store etcd://…` opened.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    /// Boxed: etcd's client is large, and the SQLite handle one pointer.
    Etcd(Box<EtcdStore>),
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyStore::Sqlite(_) => "AnyStore::Sqlite",
            AnyStore::Etcd(_) => "AnyStore::Etcd",
        })
    }
}

/// Forwards one call to whichever backend this is.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Etcd($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn revision(&self) -> Result<i64> {
        forward!(self, s => s.revision())
    }
    async fn get(&self, key: &[u8], at: Option<i64>) -> Result<Option<KeyValue>> {
        forward!(self, s => s.get(key, at))
    }
    async fn range(&self, prefix: &[u8], at: Option<i64>) -> Result<(Vec<KeyValue>, i64)> {
        forward!(self, s => s.range(prefix, at))
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        forward!(self, s => s.txn(txn))
    }
    async fn watch(&self, prefix: &[u8], from: i64) -> Result<Watch> {
        forward!(self, s => s.watch(prefix, from))
    }
    async fn grant(&self, ttl: Duration) -> Result<i64> {
        forward!(self, s => s.grant(ttl))
    }
    async fn keep_alive(&self, lease: i64) -> Result<()> {
        forward!(self, s => s.keep_alive(lease))
    }
    async fn revoke(&self, lease: i64) -> Result<()> {
        forward!(self, s => s.revoke(lease))
    }
    async fn compact(&self, revision: i64) -> Result<()> {
        forward!(self, s => s.compact(revision))
    }
}
