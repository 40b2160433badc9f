//! One leader among the control plane's replicas (issue 11, HA).
//!
//! Every replica serves the API; only the leader runs what must run once:
//! the service scheduler and the lost-node watcher. The leader holds the
//! key `leader` on a lease of `--leader-ttl` (2 s by default), renewed four
//! times per TTL. The others watch the key; when it goes (the leader
//! stopped, or its lease ran out), each tries to create it, and the one
//! whose transaction wins leads.
//!
//! A replica killed outright cannot give its lease back, and waiting for
//! it to run out takes up to the TTL plus the store's own expiry check
//! (etcd looks every 500 ms). So the followers also keep a TCP connection
//! open to the leader's API (the death watch): when it closes and a new
//! one is refused, the leader's host has answered that nothing listens
//! there any more, and a follower revokes the dead leader's lease at
//! once. A leader that is only cut off or paused is not refused, so it is
//! left to its lease, as before; and revoking the lease of a leader that
//! still runs costs only an election, since its writes are fenced.
//!
//! The leader's writes are fenced: each carries the compare "`leader` is
//! still at the revision I created it at", so a replica that lost the
//! lead without knowing it yet (paused, cut off) cannot write a decision
//! once another leads.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use estiba_state::{Cmp, Compare, EventKind, Op, Store, Txn};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::api::Server;
use crate::{keys, Error, Result};

/// The proof of leading that fenced writes compare against: the mod
/// revision of the leader key this replica created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    pub revision: i64,
}

impl Fence {
    pub fn compare(&self) -> Compare {
        Compare::ModRevision(keys::LEADER.as_bytes().to_vec(), Cmp::Equal, self.revision)
    }
}

/// What the leader key holds: who leads, on which lease, and where the
/// followers' death watch can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub replica: String,
    pub lease: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
}

impl Holder {
    /// The holder a leader key's value names; `None` for a value this
    /// version does not read (it is then left to its lease).
    pub fn parse(value: &[u8]) -> Option<Holder> {
        serde_json::from_slice(value).ok()
    }
}

/// This replica's part in the election.
#[derive(Debug)]
pub struct Leadership {
    /// The replica's id, named in the leader key while it leads.
    pub id: String,
    /// Where the other replicas reach this one's API (set by `serve` once
    /// it listens; unset when it listens on an unspecified address and
    /// nothing was advertised).
    pub addr: OnceLock<SocketAddr>,
    state: watch::Sender<Option<Fence>>,
}

impl Default for Leadership {
    fn default() -> Leadership {
        Leadership {
            id: estiba_os::random_hex(8),
            addr: OnceLock::new(),
            state: watch::Sender::new(None),
        }
    }
}

impl Leadership {
    pub fn fence(&self) -> Option<Fence> {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Fence>> {
        self.state.subscribe()
    }

    fn set(&self, fence: Option<Fence>) {
        self.state.send_replace(fence);
    }
}

/// Waits until this replica leads, and returns its fence.
pub async fn lead(server: &Server) -> Fence {
    let mut rx = server.leader.subscribe();
    loop {
        if let Some(f) = *rx.borrow_and_update() {
            return f;
        }
        if rx.changed().await.is_err() {
            // The server is going away; nothing will lead here again.
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves once this replica no longer leads under `fence`.
pub async fn deposed(server: &Server, fence: Fence) {
    let mut rx = server.leader.subscribe();
    loop {
        if *rx.borrow_and_update() != Some(fence) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work` whenever this replica leads, and stops it the moment it no
/// longer does; for the life of the server.
pub async fn while_leading<F, Fut>(server: Arc<Server>, what: &'static str, work: F)
where
    F: Fn(Arc<Server>, Fence) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let fence = lead(&server).await;
        tracing::info!(revision = fence.revision, "{what}: starting as the leader");
        tokio::select! {
            () = work(Arc::clone(&server), fence) => {}
            () = deposed(&server, fence) => {
                tracing::warn!("{what}: stopped, this replica no longer leads");
            }
        }
    }
}

/// Takes part in the election for the life of the server.
pub async fn campaign(server: Arc<Server>) {
    loop {
        if let Err(e) = campaign_once(&server).await {
            tracing::warn!("the leader election: {e}");
        }
        server.leader.set(None);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn campaign_once(server: &Server) -> Result<()> {
    let store = &server.db.store;
    let ttl = server.settings.leader_ttl;
    loop {
        let lease = store.grant(ttl).await?;
        let holder = Holder {
            replica: server.leader.id.clone(),
            lease,
            addr: server.leader.addr.get().copied(),
        };
        let value = serde_json::to_vec(&holder).expect("a holder serializes");
        let txn = Txn::when(vec![Compare::CreateRevision(
            keys::LEADER.as_bytes().to_vec(),
            Cmp::Equal,
            0,
        )])
        .and_then(vec![Op::Put {
            key: keys::LEADER.as_bytes().to_vec(),
            value,
            lease: Some(lease),
        }]);
        let won = store.txn(txn).await?;
        if won.succeeded {
            let fence = Fence {
                revision: won.revision,
            };
            server.leader.set(Some(fence));
            tracing::info!(replica = %server.leader.id, revision = won.revision, "leading");
            hold(server, lease, ttl).await;
            server.leader.set(None);
            let _ = store.revoke(lease).await;
            continue;
        }
        let _ = store.revoke(lease).await;
        wait_for_vacancy(server).await?;
    }
}

/// Renews the lead's lease until it cannot: the lease is gone, or no
/// renewal got through for two thirds of its time to live (the store may
/// already have let it expire).
async fn hold(server: &Server, lease: i64, ttl: Duration) {
    let store = &server.db.store;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 4).await;
        match store.keep_alive(lease).await {
            Ok(()) => renewed = Instant::now(),
            Err(estiba_state::Error::NoSuchLease(_)) => {
                tracing::warn!("the leader's lease ran out: no longer leading");
                return;
            }
            Err(e) if renewed.elapsed() > ttl * 2 / 3 => {
                tracing::warn!("the leader's lease could not be renewed ({e}): no longer leading");
                return;
            }
            Err(e) => tracing::warn!("renewing the leader's lease: {e}"),
        }
    }
}

/// Waits until the leader key is gone; meanwhile watches the leader's
/// process, and revokes its lease if it is seen gone.
async fn wait_for_vacancy(server: &Server) -> Result<()> {
    let store = &server.db.store;
    let Some(current) = store.get(keys::LEADER.as_bytes(), None).await? else {
        return Ok(());
    };
    let mut watch = store
        .watch(keys::LEADER.as_bytes(), current.mod_revision + 1)
        .await?;
    let vacated = async {
        while let Some(event) = watch.next().await {
            if event?.kind == EventKind::Delete {
                return Ok(());
            }
        }
        Err(Error::Invalid("the store closed the leader watch".into()))
    };
    let Some((addr, holder)) = Holder::parse(&current.value)
        .filter(|h| h.replica != server.leader.id)
        .and_then(|h| Some((h.addr?, h)))
    else {
        return vacated.await;
    };
    tokio::pin!(vacated);
    tokio::select! {
        r = &mut vacated => return r,
        () = gone(addr) => {}
    }
    tracing::warn!(leader = %holder.replica, %addr, "the leader's API closed and now refuses connections: revoking its lease");
    if let Err(e) = store.revoke(holder.lease).await {
        tracing::warn!("revoking the dead leader's lease: {e}");
    }
    vacated.await
}

/// How long a death-watch connection attempt may take, and the least time
/// between two attempts.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const PROBE_EVERY: Duration = Duration::from_millis(200);

/// Resolves once the process listening at `addr` is seen gone: a
/// connection to it that was open has closed, and a new one is refused.
/// Only a refusal after a connection that worked counts, so a wrong
/// address (one that was never reachable) never deposes anyone.
async fn gone(addr: SocketAddr) {
    let mut seen = false;
    loop {
        let tried = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(mut conn)) => {
                seen = true;
                // Nothing is sent: the connection stays idle until the
                // server closes it (its process died, or it drops idle
                // connections; the next attempt tells which).
                let mut buf = [0u8; 256];
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            }
            Ok(Err(e)) if seen && e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Ok(Err(_)) | Err(_) => {}
        }
        tokio::time::sleep(PROBE_EVERY.saturating_sub(tried.elapsed())).await;
    }
}

/// After a fenced transaction failed: whether it failed because the
/// fence no longer holds (another replica leads).
pub async fn still_leading(server: &Server, fence: Option<Fence>) -> Result<()> {
    let Some(fence) = fence else { return Ok(()) };
    match server.db.store.get(keys::LEADER.as_bytes(), None).await? {
        Some(kv) if kv.mod_revision == fence.revision => Ok(()),
        _ => {
            server.leader.set(None);
            Err(Error::NotLeader)
        }
    }
}

/// Adds the fence's compare to a transaction's.
pub fn fenced(mut compares: Vec<Compare>, fence: Option<Fence>) -> Vec<Compare> {
    compares.extend(fence.map(|f| f.compare()));
    compares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_round_trips_and_an_old_value_is_not_one() {
        let h = Holder {
            replica: "abc".into(),
            lease: 7,
            addr: Some("127.0.0.1:8440".parse().unwrap()),
        };
        assert_eq!(Holder::parse(&serde_json::to_vec(&h).unwrap()), Some(h));
        // Before the death watch, the key held the bare replica id.
        assert_eq!(Holder::parse(b"0123456789abcdef"), None);
    }

    #[tokio::test]
    async fn a_process_that_closes_and_refuses_is_gone() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let watch = tokio::spawn(gone(addr));
        let (conn, _) = listener.accept().await.unwrap();
        assert!(!watch.is_finished());
        // The process dies: its sockets close, and nothing listens.
        drop(conn);
        drop(listener);
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("seen gone")
            .unwrap();
    }

    #[tokio::test]
    async fn an_address_never_reached_deposes_nobody() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let waited = tokio::time::timeout(PROBE_EVERY * 4, gone(addr)).await;
        assert!(
            waited.is_err(),
            "a refusal with no connection before it counted"
        );
    }
}
