//! The embedded backend: SQLite in WAL mode, in the k3s/kine model (every
//! change a row, the current state the newest row of each key) but with
//! real leases and bounded history.
//!
//! - `kv` holds one row per change: `rev` is the store revision of the
//!   transaction that made it (a transaction's changes share one), `id`
//!   orders changes within it. A delete is a row with `deleted = 1`.
//! - `latest` points at the newest row of each live key, so reads of the
//!   present (nearly all of them) cost the size of their answer, not of
//!   the prefix's whole history: with 5,000 instance records rewritten at
//!   every placement batch, the history walk was the scheduler's cost.
//! - `meta` holds the current revision, the compaction point and the last
//!   lease id; `leases` each lease's time to live and expiry.
//! - Commits are `synchronous = FULL`: an acknowledged write survives a
//!   power loss, as etcd's do.
//! - One connection behind a mutex, used from tokio's blocking pool: SQLite
//!   has one writer anyway. Watchers are woken by a revision channel and
//!   read the rows themselves, so none is ever skipped.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::{
    prefix_end, Error, Event, EventKind, KeyValue, Op, OpResponse, Result, Store, Txn, TxnResponse,
    Watch,
};

const SCHEMA: &str = "
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rev INTEGER NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_key ON kv (key, id);
CREATE INDEX IF NOT EXISTS kv_rev ON kv (rev);
CREATE TABLE IF NOT EXISTS latest (key BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0), ('lease', 0);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    ttl_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
";

/// Fills `latest` from the history, for a store made before it existed.
const FILL_LATEST: &str = "
INSERT INTO latest SELECT key, MAX(id) FROM kv GROUP BY key;
DELETE FROM latest WHERE id IN (SELECT id FROM kv WHERE deleted = 1);
";

/// How often expired leases are looked for.
const LEASE_CHECK: Duration = Duration::from_millis(200);

/// Rows a watcher reads at a time.
const WATCH_BATCH: i64 = 256;

struct Inner {
    db: Mutex<Connection>,
    /// The revision of the last commit; watchers wait on it.
    revision: tokio::sync::watch::Sender<i64>,
}

/// The SQLite store. Cheap to clone; the database closes with the last
/// clone (and with it every watch).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn meta(tx: &Connection, name: &str) -> Result<i64> {
    Ok(
        tx.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })?,
    )
}

fn set_meta(tx: &Connection, name: &str, value: i64) -> Result<()> {
    tx.execute(
        "UPDATE meta SET value = ?2 WHERE name = ?1",
        params![name, value],
    )?;
    Ok(())
}

/// A row of `kv` as a key's state; None for a delete.
fn row_kv(r: &rusqlite::Row<'_>) -> rusqlite::Result<(KeyValue, bool)> {
    Ok((
        KeyValue {
            key: r.get(0)?,
            value: r.get(1)?,
            create_revision: r.get(2)?,
            mod_revision: r.get(3)?,
            version: r.get(4)?,
            lease: r.get(5)?,
        },
        r.get::<_, i64>(6)? != 0,
    ))
}

const COLUMNS: &str = "key, value, create_rev, rev, version, lease, deleted";

/// The same, read through `latest`'s join.
const JOINED: &str = "kv.key, kv.value, kv.create_rev, kv.rev, kv.version, kv.lease, kv.deleted";

/// Whether a read at `rev` reads the present, so `latest` answers it.
fn is_now(tx: &Connection, rev: i64) -> Result<bool> {
    Ok(rev == i64::MAX || rev >= meta(tx, "revision")?)
}

/// A key's state at `rev`.
fn key_at(tx: &Connection, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
    if is_now(tx, rev)? {
        let sql = format!("SELECT {JOINED} FROM latest l JOIN kv ON kv.id = l.id WHERE l.key = ?1");
        let mut stmt = tx.prepare_cached(&sql)?;
        let row = stmt.query_row([key], row_kv).optional()?;
        return Ok(row.map(|(kv, _)| kv));
    }
    let sql =
        format!("SELECT {COLUMNS} FROM kv WHERE key = ?1 AND rev <= ?2 ORDER BY id DESC LIMIT 1");
    let row = tx.query_row(&sql, params![key, rev], row_kv).optional()?;
    Ok(row.and_then(|(kv, deleted)| (!deleted).then_some(kv)))
}

/// Every key under `prefix` at `rev`, in key order.
fn prefix_at(tx: &Connection, prefix: &[u8], rev: i64) -> Result<Vec<KeyValue>> {
    let end = prefix_end(prefix);
    if is_now(tx, rev)? {
        let sql = format!(
            "SELECT {JOINED} FROM latest l JOIN kv ON kv.id = l.id
             WHERE l.key >= ?1 AND (?2 IS NULL OR l.key < ?2) ORDER BY l.key"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![prefix, end], row_kv)?;
        return rows
            .map(|row| row.map(|(kv, _)| kv).map_err(Error::from))
            .collect();
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM kv k WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) AND rev <= ?3
         AND id = (SELECT MAX(id) FROM kv WHERE key = k.key AND rev <= ?3) ORDER BY key"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![prefix, end, rev], row_kv)?;
    let mut out = Vec::new();
    for row in rows {
        let (kv, deleted) = row?;
        if !deleted {
            out.push(kv);
        }
    }
    Ok(out)
}

/// Checks that `rev` can be read: not compacted, not in the future.
fn readable(tx: &Connection, rev: Option<i64>) -> Result<i64> {
    let current = meta(tx, "revision")?;
    let Some(asked) = rev.filter(|r| *r > 0) else {
        return Ok(current);
    };
    let compacted = meta(tx, "compacted")?;
    if asked < compacted {
        return Err(Error::Compacted { asked, compacted });
    }
    if asked > current {
        return Err(Error::FutureRevision { asked, current });
    }
    Ok(asked)
}

/// Writes within one transaction, all at revision `rev` (taken by the first
/// write, so a transaction that changes nothing does not move the store).
struct Writer<'a> {
    tx: &'a Transaction<'a>,
    rev: i64,
    wrote: bool,
}

impl Writer<'_> {
    fn put(&mut self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<Option<KeyValue>> {
        let lease = lease.unwrap_or(0);
        if lease != 0 && !lease_exists(self.tx, lease)? {
            return Err(Error::NoSuchLease(lease));
        }
        let prev = key_at(self.tx, key, i64::MAX)?;
        let (create, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (self.rev, 1),
        };
        self.tx.execute(
            "INSERT INTO kv (rev, key, value, create_rev, version, lease, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![self.rev, key, value, create, version, lease],
        )?;
        self.tx.execute(
            "INSERT INTO latest (key, id) VALUES (?1, last_insert_rowid())
             ON CONFLICT (key) DO UPDATE SET id = excluded.id",
            [key],
        )?;
        self.wrote = true;
        Ok(prev)
    }

    fn delete(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        for key in keys {
            self.tx.execute(
                "INSERT INTO kv (rev, key, value, create_rev, version, lease, deleted)
                 VALUES (?1, ?2, x'', 0, 0, 0, 1)",
                params![self.rev, key],
            )?;
            self.tx
                .execute("DELETE FROM latest WHERE key = ?1", [key])?;
            self.wrote = true;
        }
        Ok(keys.len())
    }

    /// The keys an op names that exist now.
    fn existing(&self, key: &[u8], prefix: bool) -> Result<Vec<KeyValue>> {
        if prefix {
            prefix_at(self.tx, key, i64::MAX)
        } else {
            Ok(key_at(self.tx, key, i64::MAX)?.into_iter().collect())
        }
    }

    fn apply(&mut self, op: &Op) -> Result<OpResponse> {
        Ok(match op {
            Op::Put { key, value, lease } => OpResponse::Put {
                prev: self.put(key, value, *lease)?,
            },
            Op::Delete { key, prefix } => {
                let keys: Vec<Vec<u8>> = self
                    .existing(key, *prefix)?
                    .into_iter()
                    .map(|kv| kv.key)
                    .collect();
                OpResponse::Delete {
                    deleted: self.delete(&keys)?,
                }
            }
            Op::Get { key, prefix } => OpResponse::Get {
                kvs: self.existing(key, *prefix)?,
            },
        })
    }

    /// Moves the store to this writer's revision if it wrote.
    fn finish(self) -> Result<i64> {
        if self.wrote {
            set_meta(self.tx, "revision", self.rev)?;
            Ok(self.rev)
        } else {
            Ok(self.rev - 1)
        }
    }
}

fn lease_exists(tx: &Connection, lease: i64) -> Result<bool> {
    Ok(tx
        .query_row("SELECT 1 FROM leases WHERE id = ?1", [lease], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Runs `f` in an immediate (write) transaction and commits it.
fn write<T>(db: &mut Connection, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<(T, i64)> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rev = meta(&tx, "revision")? + 1;
    let (out, revision) = {
        let mut w = Writer {
            tx: &tx,
            rev,
            wrote: false,
        };
        let out = f(&mut w)?;
        (out, w.finish()?)
    };
    tx.commit()?;
    Ok((out, revision))
}

fn txn(db: &mut Connection, t: &Txn) -> Result<TxnResponse> {
    let ((succeeded, responses), revision) = write(db, |w| {
        let mut succeeded = true;
        for c in &t.compares {
            if !c.holds(key_at(w.tx, c.key(), i64::MAX)?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &t.success } else { &t.failure };
        let responses = ops.iter().map(|op| w.apply(op)).collect::<Result<_>>()?;
        Ok((succeeded, responses))
    })?;
    Ok(TxnResponse {
        succeeded,
        revision,
        responses,
    })
}

/// Deletes a lease and the keys attached to it, at one revision.
fn revoke(db: &mut Connection, lease: i64) -> Result<i64> {
    let (found, revision) = write(db, |w| {
        if !lease_exists(w.tx, lease)? {
            return Ok(false);
        }
        let attached: Vec<Vec<u8>> = {
            let mut stmt = w.tx.prepare_cached(
                "SELECT l.key FROM latest l JOIN kv ON kv.id = l.id WHERE kv.lease = ?1",
            )?;
            let rows = stmt.query_map([lease], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        w.delete(&attached)?;
        w.tx.execute("DELETE FROM leases WHERE id = ?1", [lease])?;
        Ok(true)
    })?;
    if found {
        Ok(revision)
    } else {
        Err(Error::NoSuchLease(lease))
    }
}

fn compact(db: &mut Connection, to: i64) -> Result<()> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = meta(&tx, "revision")?;
    if to > current {
        return Err(Error::FutureRevision { asked: to, current });
    }
    if to <= meta(&tx, "compacted")? {
        return Ok(());
    }
    // Reads start at `to` now: of the rows below it, only a key's newest
    // row up to `to` is still read, and only if it is not a delete.
    tx.execute(
        "DELETE FROM kv WHERE rev < ?1 AND (deleted = 1 OR id <
            (SELECT MAX(id) FROM kv k2 WHERE k2.key = kv.key AND k2.rev <= ?1))",
        [to],
    )?;
    set_meta(&tx, "compacted", to)?;
    tx.commit()?;
    db.execute_batch("PRAGMA incremental_vacuum")?;
    Ok(())
}

/// One read of a watch: the changes found, and the revision through which
/// everything under the prefix has now been read.
struct Batch {
    events: Vec<(i64, Event)>,
    caught_up: i64,
}

/// The rows after `last_id` (from revision `from` on) under the prefix, read
/// with the compaction point and the revision in one snapshot. A watcher
/// that had read everything through `caught_up` misses nothing unless the
/// history after that was compacted away.
fn watch_batch(
    db: &mut Connection,
    prefix: &[u8],
    from: i64,
    last_id: i64,
    caught_up: i64,
) -> Result<Batch> {
    let tx = db.transaction()?;
    let compacted = meta(&tx, "compacted")?;
    if compacted > caught_up + 1 {
        return Err(Error::Compacted {
            asked: caught_up + 1,
            compacted,
        });
    }
    let revision = meta(&tx, "revision")?;
    let end = prefix_end(prefix);
    // Rows are read in id order from where the watch is: the first batch
    // finds its start through the revision index, the rest walk the
    // rowid from the last row delivered. Through the key index instead,
    // every batch would read every row the prefix ever had.
    let last_id = if last_id == 0 {
        tx.query_row(
            "SELECT COALESCE(MIN(id), 1 << 62) - 1 FROM kv WHERE rev >= ?1",
            [from],
            |r| r.get::<_, i64>(0),
        )?
    } else {
        last_id
    };
    let sql = format!(
        "SELECT {COLUMNS}, id FROM kv NOT INDEXED WHERE id > ?4 AND rev >= ?3
         AND key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY id LIMIT ?5"
    );
    let mut events = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![prefix, end, from, last_id, WATCH_BATCH], |r| {
            Ok((row_kv(r)?, r.get::<_, i64>(7)?))
        })?;
        for row in rows {
            let ((kv, deleted), id) = row?;
            let kind = if deleted {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            events.push((id, Event { kind, kv }));
        }
    }
    tx.commit()?;
    // A full batch may have stopped inside its last revision.
    let caught_up = match events.last() {
        Some((_, e)) if events.len() as i64 == WATCH_BATCH => e.kv.mod_revision - 1,
        _ => revision,
    };
    Ok(Batch { events, caught_up })
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`. Leases get a full time to
    /// live again, as etcd gives them after a leader change: agents are not
    /// expired for the time the control plane was down. Within a tokio
    /// runtime, expired leases are then revoked in the background.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(5))?;
        let had_latest: bool = db.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'latest'",
            [],
            |r| r.get(0),
        )?;
        db.execute_batch(SCHEMA)?;
        if !had_latest {
            db.execute_batch(&format!("BEGIN; {FILL_LATEST} COMMIT;"))?;
        }
        db.execute("UPDATE leases SET expires_ms = ?1 + ttl_ms", [now_ms()])?;
        let revision = meta(&db, "revision")?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                db: Mutex::new(db),
                revision: tokio::sync::watch::channel(revision).0,
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(expire_leases(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    /// Runs `f` on the database in tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut db = inner.db.lock().map_err(|_| Error::Closed)?;
            f(&mut db)
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Tells watchers about a new revision.
    fn committed(&self, revision: i64) {
        self.inner.revision.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Revokes every lease whose time is up; the revision after it.
    pub async fn expire_due(&self) -> Result<i64> {
        let revision = self.blocking(expire_due).await?;
        self.committed(revision);
        Ok(revision)
    }
}

fn expire_due(db: &mut Connection) -> Result<i64> {
    let due: Vec<i64> = {
        let mut stmt = db.prepare_cached("SELECT id FROM leases WHERE expires_ms <= ?1")?;
        let rows = stmt.query_map([now_ms()], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for lease in due {
        match revoke(db, lease) {
            Ok(_) | Err(Error::NoSuchLease(_)) => {}
            Err(e) => return Err(e),
        }
    }
    meta(db, "revision")
}

/// The background lease check; ends with the store.
async fn expire_leases(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(LEASE_CHECK).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let store = SqliteStore { inner };
        if let Err(e) = store.expire_due().await {
            tracing::warn!(error = %e, "expiring leases");
        }
    }
}

impl Store for SqliteStore {
    async fn revision(&self) -> Result<i64> {
        self.blocking(|db| meta(db, "revision")).await
    }

    async fn get(&self, key: &[u8], at: Option<i64>) -> Result<Option<KeyValue>> {
        let key = key.to_vec();
        self.blocking(move |db| {
            let tx = db.transaction()?;
            let rev = readable(&tx, at)?;
            key_at(&tx, &key, rev)
        })
        .await
    }

    async fn range(&self, prefix: &[u8], at: Option<i64>) -> Result<(Vec<KeyValue>, i64)> {
        let prefix = prefix.to_vec();
        self.blocking(move |db| {
            let tx = db.transaction()?;
            let rev = readable(&tx, at)?;
            Ok((prefix_at(&tx, &prefix, rev)?, rev))
        })
        .await
    }

    async fn txn(&self, t: Txn) -> Result<TxnResponse> {
        let response = self.blocking(move |db| txn(db, &t)).await?;
        self.committed(response.revision);
        Ok(response)
    }

    async fn watch(&self, prefix: &[u8], from: i64) -> Result<Watch> {
        let from = from.max(1);
        let (sender, events) = tokio::sync::mpsc::channel(WATCH_BATCH as usize);
        let mut revisions = self.inner.revision.subscribe();
        let store = SqliteStore {
            inner: Arc::clone(&self.inner),
        };
        let prefix = prefix.to_vec();
        // Fails now, not in the stream, if the start is already compacted.
        let first = {
            let p = prefix.clone();
            self.blocking(move |db| watch_batch(db, &p, from, 0, from - 1))
                .await?
        };
        tokio::spawn(async move {
            // Holding only a weak reference: the watch ends with the store.
            let weak = Arc::downgrade(&store.inner);
            drop(store);
            let (mut last_id, mut caught_up) = (0, from - 1);
            let mut batch = first;
            loop {
                let empty = batch.events.is_empty();
                caught_up = caught_up.max(batch.caught_up);
                for (id, event) in batch.events {
                    last_id = id;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if empty && revisions.changed().await.is_err() {
                    return;
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let store = SqliteStore { inner };
                let p = prefix.clone();
                let read = store
                    .blocking(move |db| watch_batch(db, &p, from, last_id, caught_up))
                    .await;
                match read {
                    Ok(b) => batch = b,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(Watch { events })
    }

    async fn grant(&self, ttl: Duration) -> Result<i64> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.blocking(move |db| {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = meta(&tx, "lease")? + 1;
            set_meta(&tx, "lease", id)?;
            tx.execute(
                "INSERT INTO leases (id, ttl_ms, expires_ms) VALUES (?1, ?2, ?3)",
                params![id, ttl_ms, now_ms().saturating_add(ttl_ms)],
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn keep_alive(&self, lease: i64) -> Result<()> {
        self.blocking(move |db| {
            let changed = db.execute(
                "UPDATE leases SET expires_ms = ?2 + ttl_ms WHERE id = ?1 AND expires_ms > ?2",
                params![lease, now_ms()],
            )?;
            if changed == 0 {
                return Err(Error::NoSuchLease(lease));
            }
            Ok(())
        })
        .await
    }

    async fn revoke(&self, lease: i64) -> Result<()> {
        let revision = self.blocking(move |db| revoke(db, lease)).await?;
        self.committed(revision);
        Ok(())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.blocking(move |db| compact(db, revision)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("state.db")).expect("open")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_store_suite_passes() {
        let dir = tempfile::tempdir().unwrap();
        conformance::all(&store(&dir)).await;
    }

    #[tokio::test]
    async fn a_store_starts_at_revision_zero_and_a_no_op_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        assert_eq!(s.revision().await.unwrap(), 0);
        assert_eq!(s.delete(b"none").await.unwrap(), 0);
        assert_eq!(s.revision().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_watch_resumes_from_a_revision_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let resume = {
            let s = store(&dir);
            s.put(b"k", b"1").await.unwrap();
            s.put(b"k", b"2").await.unwrap() + 1
        };
        let s = store(&dir);
        s.put(b"k", b"3").await.unwrap();
        let mut w = s.watch(b"k", resume).await.unwrap();
        let e = conformance::next(&mut w).await;
        assert_eq!((e.kv.value.as_slice(), e.kv.mod_revision), (&b"3"[..], 3));
    }

    #[tokio::test]
    async fn a_caught_up_watch_survives_compaction_of_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let mut w = s.watch(b"nodes/", 1).await.unwrap();
        s.put(b"nodes/a", b"1").await.unwrap();
        conformance::next(&mut w).await;
        let mut last = 0;
        for i in 0..20 {
            last = s.put(b"other", i.to_string().as_bytes()).await.unwrap();
        }
        // No event may come for the other key; the window lets the watcher
        // read the revisions that passed (it is woken by each commit).
        let nothing = tokio::time::timeout(Duration::from_millis(200), w.next()).await;
        assert!(nothing.is_err(), "an event for another prefix: {nothing:?}");
        s.compact(last).await.unwrap();
        s.put(b"nodes/b", b"2").await.unwrap();
        let e = conformance::next(&mut w).await;
        assert_eq!(e.kv.key, b"nodes/b");
    }

    #[tokio::test]
    async fn compaction_keeps_only_the_rows_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for v in ["1", "2", "3"] {
            s.put(b"k", v.as_bytes()).await.unwrap();
        }
        s.put(b"gone", b"x").await.unwrap();
        s.delete(b"gone").await.unwrap();
        s.compact(5).await.unwrap();
        assert!(s.get(b"gone", None).await.unwrap().is_none());
        let rows: i64 = s
            .blocking(|db| Ok(db.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 2, "the newest row of k and the delete at 5 stay");
    }

    #[tokio::test]
    async fn a_store_made_before_the_latest_table_is_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(&dir);
            s.put(b"a/1", b"x").await.unwrap();
            s.put(b"a/1", b"y").await.unwrap();
            s.put(b"a/2", b"z").await.unwrap();
            s.delete(b"a/2").await.unwrap();
            s.put(b"a/3", b"w").await.unwrap();
            // As the store was before `latest`.
            s.blocking(|db| Ok(db.execute_batch("DROP TABLE latest")?))
                .await
                .unwrap();
        }
        let s = store(&dir);
        let (now, _) = s.range(b"a/", None).await.unwrap();
        let got: Vec<(&[u8], &[u8])> = now
            .iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
            .collect();
        assert_eq!(got, [(&b"a/1"[..], &b"y"[..]), (&b"a/3"[..], &b"w"[..])]);
        assert_eq!(s.get(b"a/1", None).await.unwrap().unwrap().version, 2);
        // And the past is still read from the history.
        let (then, _) = s.range(b"a/", Some(3)).await.unwrap();
        assert_eq!(then.len(), 2, "a/1 and a/2 at revision 3");
    }
}
