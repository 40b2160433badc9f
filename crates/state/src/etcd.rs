//! The HA backend: etcd v3 through the etcd-client crate. The store's model
//! is etcd's own, so each operation maps onto one etcd call; what this adds
//! is the mapping of etcd's errors onto the store's (compacted and future
//! revisions, missing leases).

use std::time::Duration;

use etcd_client as etcd;

use crate::{
    Cmp, Compare, Error, Event, EventKind, KeyValue, Op, OpResponse, Result, Store, Txn,
    TxnResponse, Watch,
};

/// A client of an etcd cluster. Cheap to clone (one connection, shared).
#[derive(Clone)]
pub struct EtcdStore {
    client: etcd::Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

/// etcd's errors as the store's: the messages are etcd's mvcc and lease
/// errors, which its gRPC status carries.
fn map(e: etcd::Error, asked: i64) -> Error {
    let message = e.to_string();
    if message.contains("required revision has been compacted") {
        Error::Compacted {
            asked,
            compacted: -1,
        }
    } else if message.contains("required revision is a future revision") {
        Error::FutureRevision { asked, current: -1 }
    } else if message.contains("lease not found") {
        Error::NoSuchLease(asked)
    } else {
        Error::Backend(message)
    }
}

fn kv(k: &etcd::KeyValue) -> KeyValue {
    KeyValue {
        key: k.key().to_vec(),
        value: k.value().to_vec(),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
        version: k.version(),
        lease: k.lease(),
    }
}

fn revision_of(header: Option<&etcd::ResponseHeader>) -> i64 {
    header.map_or(0, etcd::ResponseHeader::revision)
}

fn cmp(c: Cmp) -> etcd::CompareOp {
    match c {
        Cmp::Equal => etcd::CompareOp::Equal,
        Cmp::NotEqual => etcd::CompareOp::NotEqual,
        Cmp::Less => etcd::CompareOp::Less,
        Cmp::Greater => etcd::CompareOp::Greater,
    }
}

fn compare(c: &Compare) -> etcd::Compare {
    match c {
        Compare::ModRevision(k, c, n) => etcd::Compare::mod_revision(k.clone(), cmp(*c), *n),
        Compare::CreateRevision(k, c, n) => etcd::Compare::create_revision(k.clone(), cmp(*c), *n),
        Compare::Version(k, c, n) => etcd::Compare::version(k.clone(), cmp(*c), *n),
        Compare::Value(k, c, v) => etcd::Compare::value(k.clone(), cmp(*c), v.clone()),
    }
}

fn op(o: &Op) -> etcd::TxnOp {
    match o {
        Op::Put { key, value, lease } => {
            let mut options = etcd::PutOptions::new();
            if let Some(l) = lease {
                options = options.with_lease(*l);
            }
            etcd::TxnOp::put(key.clone(), value.clone(), Some(options))
        }
        Op::Delete { key, prefix } => {
            let options = etcd::DeleteOptions::new();
            let options = if *prefix {
                options.with_prefix()
            } else {
                options
            };
            etcd::TxnOp::delete(key.clone(), Some(options))
        }
        Op::Get { key, prefix } => {
            let options = etcd::GetOptions::new();
            let options = if *prefix {
                options.with_prefix()
            } else {
                options
            };
            etcd::TxnOp::get(key.clone(), Some(options))
        }
    }
}

fn response(r: etcd::TxnOpResponse) -> OpResponse {
    match r {
        etcd::TxnOpResponse::Put(_) => OpResponse::Put,
        etcd::TxnOpResponse::Delete(d) => OpResponse::Delete {
            deleted: usize::try_from(d.deleted()).unwrap_or(0),
        },
        etcd::TxnOpResponse::Get(g) => OpResponse::Get {
            kvs: g.kvs().iter().map(kv).collect(),
        },
        // The store makes no nested transactions.
        etcd::TxnOpResponse::Txn(_) => OpResponse::Get { kvs: Vec::new() },
    }
}

fn event(e: &etcd::Event) -> Option<Event> {
    let kind = match e.event_type() {
        etcd::EventType::Put => EventKind::Put,
        etcd::EventType::Delete => EventKind::Delete,
    };
    e.kv().map(|k| Event { kind, kv: kv(k) })
}

/// Whether a call failed on its way to a member (one that is down, say)
/// rather than being answered: another member may answer it.
fn transient(e: &etcd::Error) -> bool {
    match e {
        etcd::Error::TransportError(_) => true,
        etcd::Error::GRpcStatus(s) => {
            matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
                && !s.message().contains("etcdserver:")
        }
        _ => false,
    }
}

/// Tries a call a few times while it fails on the way: the client spreads
/// calls over the members, and one that just went down takes a moment to
/// be passed over. Writes are safe to try again: every write the control
/// plane makes compares revisions, so one that did land is refused the
/// second time and read again by its caller.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, etcd::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd::Error>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match call().await {
            Err(e) if transient(&e) => {
                tracing::debug!("etcd: {e}; trying another member");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    call().await
}

impl EtcdStore {
    /// Connects to the cluster's members (`host:port` or URLs).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let client = etcd::Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| map(e, 0))?;
        Ok(EtcdStore { client })
    }

    async fn get_with(
        &self,
        key: &[u8],
        options: etcd::GetOptions,
        at: i64,
    ) -> Result<etcd::GetResponse> {
        retrying(|| {
            let mut client = self.client.clone();
            let options = options.clone();
            async move { client.get(key, Some(options)).await }
        })
        .await
        .map_err(|e| map(e, at))
    }
}

impl EtcdStore {
    /// Where etcd compacted to, as its status reports it (-1 if unknown).
    async fn compaction_point(&self) -> i64 {
        // etcd reports the compaction point only in watch responses; a
        // watch from revision 1 on a key nobody writes gets it at once.
        let options = etcd::WatchOptions::new().with_start_revision(1);
        let Ok(mut stream) = self
            .client
            .clone()
            .watch(b"\0estiba-compaction-probe", Some(options))
            .await
        else {
            return -1;
        };
        for _ in 0..2 {
            match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
                Ok(Ok(Some(r))) if r.compact_revision() > 0 => return r.compact_revision(),
                Ok(Ok(Some(_))) => continue,
                _ => return -1,
            }
        }
        -1
    }
}

impl Store for EtcdStore {
    async fn revision(&self) -> Result<i64> {
        let r = self.get_with(b"\0", etcd::GetOptions::new(), 0).await?;
        Ok(revision_of(r.header()))
    }

    async fn get(&self, key: &[u8], at: Option<i64>) -> Result<Option<KeyValue>> {
        let options = etcd::GetOptions::new().with_revision(at.unwrap_or(0));
        let r = self.get_with(key, options, at.unwrap_or(0)).await?;
        Ok(r.kvs().first().map(kv))
    }

    async fn range(&self, prefix: &[u8], at: Option<i64>) -> Result<(Vec<KeyValue>, i64)> {
        let options = etcd::GetOptions::new()
            .with_prefix()
            .with_revision(at.unwrap_or(0));
        let r = self.get_with(prefix, options, at.unwrap_or(0)).await?;
        let revision = at
            .filter(|r| *r > 0)
            .unwrap_or_else(|| revision_of(r.header()));
        Ok((r.kvs().iter().map(kv).collect(), revision))
    }

    async fn txn(&self, t: Txn) -> Result<TxnResponse> {
        let lease = t
            .success
            .iter()
            .chain(&t.failure)
            .find_map(|o| match o {
                Op::Put { lease: Some(l), .. } => Some(*l),
                _ => None,
            })
            .unwrap_or(0);
        let request = etcd::Txn::new()
            .when(t.compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(t.success.iter().map(op).collect::<Vec<_>>())
            .or_else(t.failure.iter().map(op).collect::<Vec<_>>());
        let r = retrying(|| {
            let mut client = self.client.clone();
            let request = request.clone();
            async move { client.txn(request).await }
        })
        .await
        .map_err(|e| map(e, lease))?;
        Ok(TxnResponse {
            succeeded: r.succeeded(),
            revision: revision_of(r.header()),
            responses: r.op_responses().into_iter().map(response).collect(),
        })
    }

    async fn watch(&self, prefix: &[u8], from: i64) -> Result<Watch> {
        let from = from.max(1);
        // A start below the compaction point fails now, as the SQLite
        // backend's does: a read at that revision says so. (etcd itself
        // answers a watch's creation first and its compaction after.)
        let probe = etcd::GetOptions::new()
            .with_prefix()
            .with_revision(from)
            .with_limit(1)
            .with_keys_only();
        match self.get_with(prefix, probe, from).await {
            Err(Error::Compacted { .. }) => {
                let compacted = self.compaction_point().await;
                return Err(Error::Compacted {
                    asked: from,
                    compacted,
                });
            }
            // A revision to come is fine to watch from.
            Ok(_) | Err(Error::FutureRevision { .. }) => {}
            Err(e) => return Err(e),
        }
        let options = etcd::WatchOptions::new()
            .with_prefix()
            .with_start_revision(from);
        let mut stream = self
            .client
            .clone()
            .watch(prefix, Some(options))
            .await
            .map_err(|e| map(e, from))?;
        let first = stream.message().await.map_err(|e| map(e, from))?;
        // Responses waiting for the reader (each one or more revisions).
        let (sender, events) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut next = first;
            loop {
                let Some(r) = next else {
                    return;
                };
                if r.compact_revision() > 0 {
                    let compacted = r.compact_revision();
                    let _ = sender
                        .send(Err(Error::Compacted {
                            asked: from,
                            compacted,
                        }))
                        .await;
                    return;
                }
                // A response holds whole revisions (etcd splits one only
                // when the watch asks for fragments).
                let group: Vec<Event> = r.events().iter().filter_map(event).collect();
                if !group.is_empty() && sender.send(Ok(group)).await.is_err() {
                    return;
                }
                if r.canceled() {
                    return;
                }
                next = match stream.message().await {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = sender.send(Err(map(e, from))).await;
                        return;
                    }
                };
            }
        });
        Ok(Watch::new(events))
    }

    async fn grant(&self, ttl: Duration) -> Result<i64> {
        // etcd counts in whole seconds.
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
        let r = self
            .client
            .clone()
            .lease_grant(secs.max(1), None)
            .await
            .map_err(|e| map(e, 0))?;
        Ok(r.id())
    }

    async fn keep_alive(&self, lease: i64) -> Result<()> {
        let (mut keeper, mut responses) = self
            .client
            .clone()
            .lease_keep_alive(lease)
            .await
            .map_err(|e| map(e, lease))?;
        keeper.keep_alive().await.map_err(|e| map(e, lease))?;
        match responses.message().await.map_err(|e| map(e, lease))? {
            Some(r) if r.ttl() > 0 => Ok(()),
            _ => Err(Error::NoSuchLease(lease)),
        }
    }

    async fn revoke(&self, lease: i64) -> Result<()> {
        self.client
            .clone()
            .lease_revoke(lease)
            .await
            .map_err(|e| map(e, lease))?;
        Ok(())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let options = etcd::CompactionOptions::new().with_physical();
        match self.client.clone().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            // Already compacted that far: what was asked holds.
            Err(e) => match map(e, revision) {
                Error::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}
