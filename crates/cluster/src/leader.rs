//! One leader among the control plane's replicas (issue 11, HA).
//!
//! Every replica serves the API; only the leader runs what must run once:
//! the service scheduler and the lost-node watcher. The leader holds the
//! key `leader` on a lease of `--leader-ttl` (2 s by default), renewed four
//! times per TTL. The others watch the key; when it goes (the leader
//! stopped, or its lease ran out), each tries to create it, and the one
//! whose transaction wins leads.
//!
//! The leader's writes are fenced: each carries the compare "`leader` is
//! still at the revision I created it at", so a replica that lost the
//! lead without knowing it yet (paused, cut off) cannot write a decision
//! once another leads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use estiba_state::{Cmp, Compare, EventKind, Op, Store, Txn};
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

/// This replica's part in the election.
#[derive(Debug)]
pub struct Leadership {
    /// The replica's id, the leader key's value while it leads.
    pub id: String,
    state: watch::Sender<Option<Fence>>,
}

impl Default for Leadership {
    fn default() -> Leadership {
        Leadership {
            id: estiba_os::random_hex(8),
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
        let txn = Txn::when(vec![Compare::CreateRevision(
            keys::LEADER.as_bytes().to_vec(),
            Cmp::Equal,
            0,
        )])
        .and_then(vec![Op::Put {
            key: keys::LEADER.as_bytes().to_vec(),
            value: server.leader.id.as_bytes().to_vec(),
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

/// Waits until the leader key is gone.
async fn wait_for_vacancy(server: &Server) -> Result<()> {
    let store = &server.db.store;
    let Some(current) = store.get(keys::LEADER.as_bytes(), None).await? else {
        return Ok(());
    };
    let mut watch = store
        .watch(keys::LEADER.as_bytes(), current.mod_revision + 1)
        .await?;
    while let Some(event) = watch.next().await {
        if event?.kind == EventKind::Delete {
            return Ok(());
        }
    }
    Err(Error::Invalid("the store closed the leader watch".into()))
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
