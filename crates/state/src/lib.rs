//! The control plane's state: a revisioned key-value store, in etcd's
//! model, so that one trait serves both backends.
//!
//! - Every change gets the store's next **revision**; a transaction's
//!   changes share one. Reads may ask for the state at an older revision,
//!   down to the **compaction** point.
//! - A **transaction** compares keys' mod revision, create revision,
//!   version or value, then applies its success or its failure operations,
//!   atomically (compare-and-swap).
//! - A **watch** on a prefix delivers every change from a revision on, in
//!   order, never skipping one; below the compaction point it fails with
//!   [`Error::Compacted`].
//! - A **lease** has a time to live, renewed by keep-alives; when it
//!   expires, the keys attached to it are deleted (and watchers see the
//!   deletes).
//!
//! `sqlite` is the embedded default (WAL, one writer); `etcd` serves a
//! control plane that must survive losing a server.
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod any;
pub mod conformance;
pub mod etcd;
mod hub;
pub mod sqlite;

use std::future::Future;
use std::time::Duration;

pub use any::AnyStore;
pub use etcd::EtcdStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("revision {asked} is compacted (compacted up to {compacted})")]
    Compacted { asked: i64, compacted: i64 },
    #[error("revision {asked} is in the future (the store is at {current})")]
    FutureRevision { asked: i64, current: i64 },
    #[error("lease {0} not found")]
    NoSuchLease(i64),
    #[error("the store's database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("etcd: {0}")]
    Backend(String),
    #[error("the store is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A key's value and its history marks, as etcd reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The revision of the put that created the key (since its last delete).
    pub create_revision: i64,
    /// The revision of the last change.
    pub mod_revision: i64,
    /// Puts since creation: 1 after the first.
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// How a compare holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

impl Cmp {
    fn holds<T: Ord + ?Sized>(self, actual: &T, wanted: &T) -> bool {
        match self {
            Cmp::Equal => actual == wanted,
            Cmp::NotEqual => actual != wanted,
            Cmp::Less => actual < wanted,
            Cmp::Greater => actual > wanted,
        }
    }
}

/// A transaction's condition on one key. A missing key has mod revision,
/// create revision and version 0, and no value (a value compare fails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    ModRevision(Vec<u8>, Cmp, i64),
    CreateRevision(Vec<u8>, Cmp, i64),
    Version(Vec<u8>, Cmp, i64),
    Value(Vec<u8>, Cmp, Vec<u8>),
}

impl Compare {
    pub fn key(&self) -> &[u8] {
        match self {
            Compare::ModRevision(k, ..)
            | Compare::CreateRevision(k, ..)
            | Compare::Version(k, ..)
            | Compare::Value(k, ..) => k,
        }
    }

    /// Whether it holds for the key's current state.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        let field = |f: fn(&KeyValue) -> i64| current.map_or(0, f);
        match self {
            Compare::ModRevision(_, c, n) => c.holds(&field(|kv| kv.mod_revision), n),
            Compare::CreateRevision(_, c, n) => c.holds(&field(|kv| kv.create_revision), n),
            Compare::Version(_, c, n) => c.holds(&field(|kv| kv.version), n),
            Compare::Value(_, c, v) => current.is_some_and(|kv| c.holds(&kv.value[..], &v[..])),
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key, attached to a lease if given.
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<i64>,
    },
    /// Deletes a key, or every key under a prefix.
    Delete { key: Vec<u8>, prefix: bool },
    /// Reads a key, or every key under a prefix, as the transaction sees them.
    Get { key: Vec<u8>, prefix: bool },
}

impl Op {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::Delete {
            key: key.into(),
            prefix: false,
        }
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Op {
        Op::Get {
            key: key.into(),
            prefix: false,
        }
    }
}

/// If every compare holds, the success operations; else the failure ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn when(compares: Vec<Compare>) -> Txn {
        Txn {
            compares,
            ..Txn::default()
        }
    }

    pub fn and_then(mut self, ops: Vec<Op>) -> Txn {
        self.success = ops;
        self
    }

    pub fn or_else(mut self, ops: Vec<Op>) -> Txn {
        self.failure = ops;
        self
    }
}

/// What an operation of a transaction answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// A put. (Not its previous state: no caller needs it, and etcd
    /// sends it only when asked.)
    Put,
    /// A delete: how many keys went.
    Delete { deleted: usize },
    /// A get: the keys found, in key order.
    Get { kvs: Vec<KeyValue> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and the success operations ran).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: i64,
    pub responses: Vec<OpResponse>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change a watch delivers. For a delete, `kv` has the key, an empty
/// value and the delete's revision as its mod revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// The changes under a prefix, in revision order. The backends hand them
/// over in groups of whole revisions (a revision's changes are never split
/// between groups), so a reader can tell when it has every change of the
/// revision it is at: [`Watch::at_revision_end`].
#[derive(Debug)]
pub struct Watch {
    groups: tokio::sync::mpsc::Receiver<Result<Vec<Event>>>,
    /// What is left of the group being read.
    left: std::collections::VecDeque<Event>,
    /// The revision of the change last given.
    last: Option<i64>,
}

impl Watch {
    pub(crate) fn new(groups: tokio::sync::mpsc::Receiver<Result<Vec<Event>>>) -> Watch {
        Watch {
            groups,
            left: std::collections::VecDeque::new(),
            last: None,
        }
    }

    /// The next change, or None once the store is closed. An error (the
    /// watch fell below the compaction point) ends the watch.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(e) = self.left.pop_front() {
                self.last = Some(e.kv.mod_revision);
                return Some(Ok(e));
            }
            match self.groups.recv().await? {
                Ok(group) => self.left = group.into(),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Whether the last change [`Watch::next`] gave was its revision's
    /// last under this prefix: everything through that revision is in.
    pub fn at_revision_end(&self) -> bool {
        match (self.left.front(), self.last) {
            (Some(next), Some(last)) => next.kv.mod_revision != last,
            _ => true,
        }
    }
}

/// The revisioned key-value store both backends provide.
pub trait Store: Send + Sync {
    /// The current revision.
    fn revision(&self) -> impl Future<Output = Result<i64>> + Send;

    /// A key at a revision (None: the current one).
    fn get(
        &self,
        key: &[u8],
        at: Option<i64>,
    ) -> impl Future<Output = Result<Option<KeyValue>>> + Send;

    /// Every key under `prefix` at a revision, in key order, and the
    /// revision read.
    fn range(
        &self,
        prefix: &[u8],
        at: Option<i64>,
    ) -> impl Future<Output = Result<(Vec<KeyValue>, i64)>> + Send;

    /// Runs a transaction atomically.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResponse>> + Send;

    /// Changes under `prefix` from revision `from` on (inclusive).
    fn watch(&self, prefix: &[u8], from: i64) -> impl Future<Output = Result<Watch>> + Send;

    /// A lease that expires `ttl` after its last keep-alive.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<i64>> + Send;

    /// Renews a lease; an expired one is gone ([`Error::NoSuchLease`]).
    fn keep_alive(&self, lease: i64) -> impl Future<Output = Result<()>> + Send;

    /// Ends a lease now, deleting its keys.
    fn revoke(&self, lease: i64) -> impl Future<Output = Result<()>> + Send;

    /// Drops the history below `revision`: reads and watches below it fail.
    fn compact(&self, revision: i64) -> impl Future<Output = Result<()>> + Send;

    /// A put outside a transaction; the new revision.
    fn put(&self, key: &[u8], value: &[u8]) -> impl Future<Output = Result<i64>> + Send {
        let op = Op::put(key, value);
        async move { Ok(self.txn(Txn::default().and_then(vec![op])).await?.revision) }
    }

    /// A delete outside a transaction; how many keys went.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<usize>> + Send {
        let op = Op::delete(key);
        async move {
            let r = self.txn(Txn::default().and_then(vec![op])).await?;
            Ok(match r.responses.first() {
                Some(OpResponse::Delete { deleted }) => *deleted,
                _ => 0,
            })
        }
    }
}

/// The first key after every key that starts with `prefix` (etcd's range
/// end); None when there is none (a prefix of 0xff bytes, or empty).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_follow_etcd() {
        assert_eq!(prefix_end(b"tasks/"), Some(b"tasks0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn compares_on_a_missing_key_see_zeros() {
        let k = b"k".to_vec();
        assert!(Compare::ModRevision(k.clone(), Cmp::Equal, 0).holds(None));
        assert!(Compare::Version(k.clone(), Cmp::Less, 1).holds(None));
        assert!(!Compare::Value(k.clone(), Cmp::NotEqual, b"x".to_vec()).holds(None));
        let kv = KeyValue {
            key: k.clone(),
            value: b"v".to_vec(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: 0,
        };
        assert!(Compare::ModRevision(k.clone(), Cmp::Greater, 4).holds(Some(&kv)));
        assert!(Compare::CreateRevision(k.clone(), Cmp::Equal, 3).holds(Some(&kv)));
        assert!(Compare::Value(k, Cmp::Equal, b"v".to_vec()).holds(Some(&kv)));
    }
}
