//! The embedded backend: SQLite in WAL mode, in the k3s/kine model (every
//! change a row, the current state the newest row of each key) but with
//! real leases and bounded history.
//!
//! - `kv` holds one row per change: `rev` is the store revision of the
//!   transaction that made it (a transaction's changes share one), `id`
//!   orders changes within it. A delete is a row with `deleted = 1`.
//! - `latest` points at the newest row of each live key, with its create
//!   revision, mod revision and version, so reads of the present (all the
//!   control plane makes) cost the size of their answer, not of the
//!   prefix's whole history, and a put or a compare on revisions reads
//!   `latest` alone. `kv` has no index by key: reads of the past (and
//!   compaction) walk the history once; the index cost every put a write
//!   to a random page, a fifth of a placement's time.
//! - `meta` holds the current revision, the compaction point and the last
//!   lease id; `leases` each lease's time to live and expiry.
//! - Commits are `synchronous = FULL`: an acknowledged write survives a
//!   power loss, as etcd's do.
//! - One connection behind a mutex, used from tokio's blocking pool: SQLite
//!   has one writer anyway. The writer hands each commit's changes to the
//!   live watchers in memory (`hub.rs`); a watcher reads the rows itself
//!   only for the history it missed (from its start revision, or after it
//!   fell behind), so none is ever skipped.
//! - Statements are prepared once and cached: a placement batch writes
//!   thousands of rows, and preparing each was a third of its cost.
//! - The WAL is copied back into the database by a thread of its own on a
//!   connection of its own (`checkpointer`), beside the writer: copying it
//!   inside commits was a quarter of a placement batch's store time. The
//!   writer still checkpoints every 16,384 pages (64 MiB), as SQLite's
//!   automatic checkpoint does, but finds most of the WAL copied already;
//!   it must, for only a checkpoint between two of its commits lets the
//!   next one start the WAL over: under a steady stream of commits, the
//!   checkpointer alone never catches up with the end, and the WAL grew
//!   to gigabytes (and a commit's sync to seconds).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::hub::{Hub, Live};
use crate::{
    prefix_end, Compare, Error, Event, EventKind, KeyValue, Op, OpResponse, Result, Store, Txn,
    TxnResponse, Watch,
};

const SCHEMA: &str = "
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -65536;
PRAGMA wal_autocheckpoint = 16384;
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
-- No index on (key, id): reads of the present go through `latest`, and
-- one kept for reads of the past cost each put a write to a random page.
DROP INDEX IF EXISTS kv_key;
CREATE INDEX IF NOT EXISTS kv_rev ON kv (rev);
CREATE TABLE IF NOT EXISTS latest (
    key BLOB PRIMARY KEY,
    id INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL
) WITHOUT ROWID;
-- A lease's keys, for its revoke: only keys on a lease are indexed, so
-- the many puts without one cost nothing here.
CREATE INDEX IF NOT EXISTS latest_lease ON latest (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0), ('lease', 0);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    ttl_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
";

/// Fills `latest` from the history, for a store made before it existed
/// (or before it held the marks and the lease).
const FILL_LATEST: &str = "
INSERT INTO latest SELECT key, id, create_rev, rev, version, lease FROM kv
    WHERE id IN (SELECT MAX(id) FROM kv GROUP BY key) AND deleted = 0;
";

/// How often the checkpointer copies the WAL back.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How often expired leases are looked for.
const LEASE_CHECK: Duration = Duration::from_millis(200);

/// Rows a watcher reads at a time.
const WATCH_BATCH: i64 = 256;

/// Groups of changes (each one commit, or a read of history) a watch may
/// have waiting for its reader; beyond, the hub keeps them, and past its
/// backlog the watcher reads them from the database.
const WATCH_GROUPS: usize = 16;

/// Statements the cache keeps prepared (more than every distinct one).
const STATEMENTS: usize = 64;

struct Inner {
    db: Mutex<Db>,
    /// Connections for reads: in WAL mode a read sees the last commit
    /// without waiting for the writer, so reads (an agent's credential, a
    /// DescribeServices) never queue behind a commit, nor a lease's
    /// renewal behind them.
    readers: Vec<Mutex<Connection>>,
    /// The reader a read waits for when none is free: each in turn.
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Read connections: as many as there are cores here.
const READERS: usize = 2;

/// A connection for reads only.
fn reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384;")?;
    Ok(conn)
}

/// The connection and the watchers its commits are handed to.
struct Db {
    conn: Connection,
    hub: Hub,
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
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

fn set_meta(tx: &Connection, name: &str, value: i64) -> Result<()> {
    tx.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(params![name, value])?;
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

/// A key's state now.
fn key_now(tx: &Connection, key: &[u8]) -> Result<Option<KeyValue>> {
    let sql = format!("SELECT {JOINED} FROM latest l JOIN kv ON kv.id = l.id WHERE l.key = ?1");
    let mut stmt = tx.prepare_cached(&sql)?;
    let row = stmt.query_row([key], row_kv).optional()?;
    Ok(row.map(|(kv, _)| kv))
}

/// A key's create revision, mod revision and version now, from `latest`
/// alone: what a put and most compares need, without the row's value.
fn marks_now(tx: &Connection, key: &[u8]) -> Result<Option<(i64, i64, i64)>> {
    Ok(tx
        .prepare_cached("SELECT create_rev, mod_rev, version FROM latest WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// What a compare is judged on: the key's marks, and its value only when
/// the compare is on the value.
fn compared(tx: &Connection, c: &Compare) -> Result<Option<KeyValue>> {
    if matches!(c, Compare::Value(..)) {
        return key_now(tx, c.key());
    }
    Ok(
        marks_now(tx, c.key())?.map(|(create, modified, version)| KeyValue {
            key: c.key().to_vec(),
            value: Vec::new(),
            create_revision: create,
            mod_revision: modified,
            version,
            lease: 0,
        }),
    )
}

/// A key's state at `rev`.
fn key_at(tx: &Connection, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
    if is_now(tx, rev)? {
        return key_now(tx, key);
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
        "SELECT {COLUMNS} FROM kv WHERE id IN (SELECT MAX(id) FROM kv
             WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) AND rev <= ?3 GROUP BY key)
         ORDER BY key"
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
    /// The changes, for the live watchers (None: there are none).
    events: Option<Vec<Event>>,
}

impl Writer<'_> {
    fn put(&mut self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<()> {
        let lease = lease.unwrap_or(0);
        if lease != 0 && !lease_exists(self.tx, lease)? {
            return Err(Error::NoSuchLease(lease));
        }
        let (create, version) = match marks_now(self.tx, key)? {
            Some((create, _, version)) => (create, version + 1),
            None => (self.rev, 1),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO kv (rev, key, value, create_rev, version, lease, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            )?
            .execute(params![self.rev, key, value, create, version, lease])?;
        self.tx
            .prepare_cached(
                "INSERT INTO latest (key, id, create_rev, mod_rev, version, lease)
                 VALUES (?1, last_insert_rowid(), ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET id = excluded.id,
                 create_rev = excluded.create_rev, mod_rev = excluded.mod_rev,
                 version = excluded.version, lease = excluded.lease",
            )?
            .execute(params![key, create, self.rev, version, lease])?;
        self.wrote = true;
        if let Some(events) = &mut self.events {
            events.push(Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    create_revision: create,
                    mod_revision: self.rev,
                    version,
                    lease,
                },
            });
        }
        Ok(())
    }

    fn delete(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        for key in keys {
            self.tx
                .prepare_cached(
                    "INSERT INTO kv (rev, key, value, create_rev, version, lease, deleted)
                     VALUES (?1, ?2, x'', 0, 0, 0, 1)",
                )?
                .execute(params![self.rev, key])?;
            self.tx
                .prepare_cached("DELETE FROM latest WHERE key = ?1")?
                .execute([key])?;
            self.wrote = true;
            if let Some(events) = &mut self.events {
                // As a delete's row reads back (`row_kv`).
                events.push(Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: self.rev,
                        version: 0,
                        lease: 0,
                    },
                });
            }
        }
        Ok(keys.len())
    }

    /// The keys an op names that exist now.
    fn existing(&self, key: &[u8], prefix: bool) -> Result<Vec<KeyValue>> {
        if prefix {
            prefix_at(self.tx, key, i64::MAX)
        } else {
            Ok(key_now(self.tx, key)?.into_iter().collect())
        }
    }

    fn apply(&mut self, op: &Op) -> Result<OpResponse> {
        Ok(match op {
            Op::Put { key, value, lease } => {
                self.put(key, value, *lease)?;
                OpResponse::Put
            }
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
        .prepare_cached("SELECT 1 FROM leases WHERE id = ?1")?
        .query_row([lease], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Runs `f` in an immediate (write) transaction, commits it and hands its
/// changes to the live watchers.
fn write<T>(db: &mut Db, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<(T, i64)> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rev = meta(&tx, "revision")? + 1;
    let (out, revision, events) = {
        let mut w = Writer {
            tx: &tx,
            rev,
            wrote: false,
            events: (!db.hub.is_empty()).then(Vec::new),
        };
        let out = f(&mut w)?;
        let events = w.events.take();
        (out, w.finish()?, events)
    };
    tx.commit()?;
    if let Some(events) = events {
        db.hub.publish(&events);
    }
    Ok((out, revision))
}

fn txn(db: &mut Db, t: &Txn) -> Result<TxnResponse> {
    let ((succeeded, responses), revision) = write(db, |w| {
        let mut succeeded = true;
        for c in &t.compares {
            if !c.holds(compared(w.tx, c)?.as_ref()) {
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
fn revoke(db: &mut Db, lease: i64) -> Result<i64> {
    let (found, revision) = write(db, |w| {
        if !lease_exists(w.tx, lease)? {
            return Ok(false);
        }
        let attached: Vec<Vec<u8>> = {
            // `lease != 0` lets SQLite use the partial index: it cannot
            // tell that a bound parameter is never 0.
            let mut stmt =
                w.tx.prepare_cached("SELECT key FROM latest WHERE lease = ?1 AND lease != 0")?;
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
    // row up to `to` is still read, and only if it is not a delete. (The
    // newest rows are found in one pass over the history, there being no
    // index by key.)
    tx.execute(
        "DELETE FROM kv WHERE rev < ?1 AND (deleted = 1 OR id NOT IN
            (SELECT MAX(id) FROM kv WHERE rev <= ?1 GROUP BY key))",
        [to],
    )?;
    set_meta(&tx, "compacted", to)?;
    tx.commit()?;
    db.execute_batch("PRAGMA incremental_vacuum")?;
    Ok(())
}

/// A watcher's way through the history it missed: the rows under its
/// prefix after `last_id`, up to `max_id` (the newest row when it
/// registered; what came after reaches it live).
#[derive(Clone, Copy, Debug)]
struct Cursor {
    last_id: i64,
    max_id: i64,
    /// The revision through which everything has been read: reading on is
    /// sound only while the compaction point is not past it.
    caught_up: i64,
    /// The revision it was registered at.
    registered: i64,
}

impl Cursor {
    fn done(&self) -> bool {
        self.last_id >= self.max_id
    }
}

/// Registers a watcher of `prefix` that has delivered everything before
/// `next`: it gets the commits from now on live, and a cursor through the
/// rows from `next` to now. Fails if `next` is compacted.
fn register(db: &mut Db, prefix: &[u8], next: i64) -> Result<(Live, Cursor)> {
    let conn = &db.conn;
    let compacted = meta(conn, "compacted")?;
    if compacted > next {
        return Err(Error::Compacted {
            asked: next,
            compacted,
        });
    }
    let registered = meta(conn, "revision")?;
    let max_id: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM kv")?
        .query_row([], |r| r.get(0))?;
    // The first row from `next` on, found through the revision index.
    let first: i64 = conn
        .prepare_cached("SELECT COALESCE(MIN(id), ?2 + 1) FROM kv WHERE rev >= ?1")?
        .query_row(params![next, max_id], |r| r.get(0))?;
    let live = db.hub.register(prefix);
    Ok((
        live,
        Cursor {
            last_id: first - 1,
            max_id,
            caught_up: next - 1,
            registered,
        },
    ))
}

/// The next rows of the history a cursor walks, at most [`WATCH_BATCH`],
/// and the cursor after them.
fn read(db: &mut Db, prefix: &[u8], mut cursor: Cursor) -> Result<(Vec<Event>, Cursor)> {
    let tx = db.conn.transaction()?;
    let compacted = meta(&tx, "compacted")?;
    if compacted > cursor.caught_up + 1 {
        return Err(Error::Compacted {
            asked: cursor.caught_up + 1,
            compacted,
        });
    }
    let end = prefix_end(prefix);
    // Through the rowid from the last row read: through the key index
    // instead, every read would visit every row the prefix ever had.
    let sql = format!(
        "SELECT {COLUMNS}, id FROM kv NOT INDEXED WHERE id > ?3 AND id <= ?4
         AND key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY id LIMIT ?5"
    );
    let mut events = Vec::new();
    let mut last = None;
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![prefix, end, cursor.last_id, cursor.max_id, WATCH_BATCH],
            |r| Ok((row_kv(r)?, r.get::<_, i64>(7)?)),
        )?;
        for row in rows {
            let ((kv, deleted), id) = row?;
            let kind = if deleted {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            last = Some((id, kv.mod_revision));
            events.push(Event { kind, kv });
        }
    }
    tx.commit()?;
    match last {
        // A full batch may have stopped inside its last revision.
        Some((id, rev)) if events.len() as i64 == WATCH_BATCH => {
            cursor.last_id = id;
            cursor.caught_up = cursor.caught_up.max(rev - 1);
        }
        _ => {
            cursor.last_id = cursor.max_id;
            cursor.caught_up = cursor.registered;
        }
    }
    Ok((events, cursor))
}

/// A watch's life: the history it missed, read from the database, then
/// the commits the hub hands it; when the hub drops it for falling
/// behind, it registers again from where it is. It ends with the store
/// (holding only a weak reference) or with its receiver.
async fn follow(
    inner: std::sync::Weak<Inner>,
    prefix: Vec<u8>,
    mut live: Live,
    mut cursor: Cursor,
    sender: tokio::sync::mpsc::Sender<Result<Vec<Event>>>,
) {
    let mut next = cursor.caught_up + 1;
    // History read but not sent: a revision a full read may have cut.
    let mut held: Vec<Event> = Vec::new();
    loop {
        while !cursor.done() {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let p = prefix.clone();
            let read = SqliteStore { inner }
                .blocking(move |db| read(db, &p, cursor))
                .await;
            let events = match read {
                Ok((events, c)) => {
                    cursor = c;
                    events
                }
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            held.extend(events);
            // Whole revisions go: all once the history is read, else all
            // but the last revision read, which the next read may go on.
            let whole = match (cursor.done(), held.last()) {
                (false, Some(last)) => {
                    let rev = last.kv.mod_revision;
                    held.partition_point(|e| e.kv.mod_revision < rev)
                }
                _ => held.len(),
            };
            let group: Vec<Event> = held.drain(..whole).collect();
            if let Some(last) = group.last() {
                next = last.kv.mod_revision + 1;
                if sender.send(Ok(group)).await.is_err() {
                    return;
                }
            }
        }
        next = next.max(cursor.registered + 1);
        while let Some(batch) = live.recv().await {
            // One commit: all at one revision.
            let Some(rev) = batch.first().map(|e| e.kv.mod_revision) else {
                continue;
            };
            if rev < next {
                continue; // before a start still in the future
            }
            next = rev + 1;
            if sender.send(Ok(batch)).await.is_err() {
                return;
            }
        }
        // The hub dropped it, or the store closed.
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let p = prefix.clone();
        match (SqliteStore { inner })
            .blocking(move |db| register(db, &p, next))
            .await
        {
            Ok((l, c)) => (live, cursor) = (l, c),
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`. Leases get a full time to
    /// live again, as etcd gives them after a leader change: agents are not
    /// expired for the time the control plane was down. Within a tokio
    /// runtime, expired leases are then revoked in the background.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.set_prepared_statement_cache_capacity(STATEMENTS);
        // A `latest` without the marks or the lease is made again.
        let had_latest: bool = db.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('latest') WHERE name = 'lease'",
            [],
            |r| r.get(0),
        )?;
        if !had_latest {
            db.execute_batch("DROP TABLE IF EXISTS latest")?;
        }
        db.execute_batch(SCHEMA)?;
        if !had_latest {
            db.execute_batch(&format!("BEGIN; {FILL_LATEST} COMMIT;"))?;
        }
        db.execute("UPDATE leases SET expires_ms = ?1 + ttl_ms", [now_ms()])?;
        let readers = (0..READERS)
            .map(|_| reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                db: Mutex::new(Db {
                    conn: db,
                    hub: Hub::default(),
                }),
                readers,
                next_reader: std::sync::atomic::AtomicUsize::new(0),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(expire_leases(Arc::downgrade(&store.inner)));
        }
        let (path, inner) = (path.to_path_buf(), Arc::downgrade(&store.inner));
        std::thread::Builder::new()
            .name("estiba-checkpoint".into())
            .spawn(move || checkpointer(&path, &inner))
            .map_err(|e| Error::Backend(format!("starting the checkpointer: {e}")))?;
        Ok(store)
    }

    /// Runs `f` on the database in tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut db = inner.db.lock().map_err(|_| Error::Closed)?;
            f(&mut db)
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a read connection in tokio's blocking pool: a free one,
    /// or else it waits for one (each in turn, to spread the waiters).
    async fn reading<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let readers = &inner.readers;
            let free = readers.iter().find_map(|r| r.try_lock().ok());
            let mut conn = match free {
                Some(c) => c,
                None => {
                    let turn = inner
                        .next_reader
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let pick = turn % readers.len().max(1);
                    readers
                        .get(pick)
                        .ok_or(Error::Closed)?
                        .lock()
                        .map_err(|_| Error::Closed)?
                }
            };
            f(&mut conn)
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Revokes every lease whose time is up; the revision after it.
    pub async fn expire_due(&self) -> Result<i64> {
        self.blocking(expire_due).await
    }
}

fn expire_due(db: &mut Db) -> Result<i64> {
    let due: Vec<i64> = {
        let mut stmt = db
            .conn
            .prepare_cached("SELECT id FROM leases WHERE expires_ms <= ?1")?;
        let rows = stmt.query_map([now_ms()], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for lease in due {
        match revoke(db, lease) {
            Ok(_) | Err(Error::NoSuchLease(_)) => {}
            Err(e) => return Err(e),
        }
    }
    meta(&db.conn, "revision")
}

/// Copies the WAL back into the database every [`CHECKPOINT_EVERY`], on a
/// connection of its own, until the store is dropped. PASSIVE: it neither
/// waits for the writer nor holds it up; the writer starts the WAL over
/// once a checkpoint has copied all of it. A crash in the middle leaves
/// what SQLite's own checkpoint would: the WAL still holds every commit.
fn checkpointer(path: &Path, inner: &std::sync::Weak<Inner>) {
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "the checkpointer cannot open the store");
            return;
        }
    };
    if let Err(e) = conn.busy_timeout(Duration::from_secs(5)) {
        tracing::warn!(error = %e, "the checkpointer's busy timeout");
    }
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if inner.strong_count() == 0 {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpointing the store");
        }
    }
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
        self.reading(|conn| meta(conn, "revision")).await
    }

    async fn get(&self, key: &[u8], at: Option<i64>) -> Result<Option<KeyValue>> {
        let key = key.to_vec();
        self.reading(move |conn| {
            let tx = conn.transaction()?;
            let rev = readable(&tx, at)?;
            key_at(&tx, &key, rev)
        })
        .await
    }

    async fn range(&self, prefix: &[u8], at: Option<i64>) -> Result<(Vec<KeyValue>, i64)> {
        let prefix = prefix.to_vec();
        self.reading(move |conn| {
            let tx = conn.transaction()?;
            let rev = readable(&tx, at)?;
            Ok((prefix_at(&tx, &prefix, rev)?, rev))
        })
        .await
    }

    async fn txn(&self, t: Txn) -> Result<TxnResponse> {
        self.blocking(move |db| txn(db, &t)).await
    }

    async fn watch(&self, prefix: &[u8], from: i64) -> Result<Watch> {
        let from = from.max(1);
        let (sender, events) = tokio::sync::mpsc::channel(WATCH_GROUPS);
        let prefix = prefix.to_vec();
        // Fails now, not in the stream, if the start is already compacted.
        let (live, cursor) = {
            let p = prefix.clone();
            self.blocking(move |db| register(db, &p, from)).await?
        };
        tokio::spawn(follow(
            Arc::downgrade(&self.inner),
            prefix,
            live,
            cursor,
            sender,
        ));
        Ok(Watch::new(events))
    }

    async fn grant(&self, ttl: Duration) -> Result<i64> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.blocking(move |db| {
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            let changed = db
                .conn
                .prepare_cached(
                    "UPDATE leases SET expires_ms = ?2 + ttl_ms WHERE id = ?1 AND expires_ms > ?2",
                )?
                .execute(params![lease, now_ms()])?;
            if changed == 0 {
                return Err(Error::NoSuchLease(lease));
            }
            Ok(())
        })
        .await
    }

    async fn revoke(&self, lease: i64) -> Result<()> {
        self.blocking(move |db| revoke(db, lease)).await?;
        Ok(())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.blocking(move |db| compact(&mut db.conn, revision))
            .await
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.put(b"k", b"v").await.unwrap();
        // A thread holds the writer for longer than the read may take.
        let (locked, is_locked) = std::sync::mpsc::channel();
        let writer = Arc::clone(&s.inner);
        let holder = std::thread::spawn(move || {
            let _held = writer.db.lock().unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        });
        is_locked.recv().unwrap();
        let read = tokio::time::timeout(Duration::from_secs(2), s.get(b"k", None)).await;
        let kv = read.expect("answered while the writer is held").unwrap();
        holder.join().unwrap();
        assert_eq!(kv.map(|kv| kv.value), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn a_revision_longer_than_a_history_read_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        conformance::revision_ends(&store(&dir), "long/", WATCH_BATCH as usize + 44).await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watcher_that_falls_behind_reads_what_it_missed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let mut w = s.watch(b"k/", 1).await.unwrap();
        // More commits than the hub keeps for a watcher that does not read.
        let n = 1500;
        for i in 0..n {
            s.put(format!("k/{}", i % 7).as_bytes(), i.to_string().as_bytes())
                .await
                .unwrap();
        }
        for i in 0..n {
            let e = conformance::next(&mut w).await;
            assert_eq!(
                (e.kv.mod_revision, e.kv.value),
                (i + 1, i.to_string().into_bytes())
            );
        }
        s.put(b"k/last", b"x").await.unwrap();
        assert_eq!(conformance::next(&mut w).await.kv.key, b"k/last");
    }

    #[tokio::test]
    async fn a_watch_from_a_later_revision_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let now = s.put(b"k", b"1").await.unwrap();
        let mut w = s.watch(b"k", now + 2).await.unwrap();
        s.put(b"k", b"2").await.unwrap();
        s.put(b"k", b"3").await.unwrap();
        let e = conformance::next(&mut w).await;
        assert_eq!(
            (e.kv.mod_revision, e.kv.value.as_slice()),
            (now + 2, &b"3"[..])
        );
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
            .blocking(|db| {
                Ok(db
                    .conn
                    .query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(rows, 2, "the newest row of k and the delete at 5 stay");
    }

    #[tokio::test]
    async fn the_wal_is_copied_back_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let file = dir.path().join("state.db");
        let before = std::fs::metadata(&file).unwrap().len();
        let value = vec![b'v'; 4096];
        for i in 0..256 {
            s.put(format!("k{i}").as_bytes(), &value).await.unwrap();
        }
        // The commits went to the WAL; only the checkpointer moves them
        // into the database file (the writer's own checkpoint waits for
        // 16,384 pages).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() < before + 256 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(s.get(b"k255", None).await.unwrap().unwrap().value, value);
    }

    #[tokio::test]
    async fn the_wal_stays_bounded_under_a_steady_stream_of_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let value = vec![b'v'; 4096];
        // 160 MiB of commits, back to back: the checkpointer alone never
        // reaches the WAL's end, so only the writer's own checkpoint lets
        // it start over.
        for round in 0..40 {
            let ops = (0..1000)
                .map(|i| Op::put(format!("k{round}-{i}").as_str(), value.clone()))
                .collect();
            s.txn(Txn::when(vec![]).and_then(ops)).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("state.db-wal"))
            .unwrap()
            .len();
        assert!(wal < 100 << 20, "the WAL grew to {} MiB", wal >> 20);
    }

    /// A store in an older shape: `latest` missing, or without the marks.
    async fn older_store_reads_the_same(older: &'static str) {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(&dir);
            s.put(b"a/1", b"x").await.unwrap();
            s.put(b"a/1", b"y").await.unwrap();
            s.put(b"a/2", b"z").await.unwrap();
            s.delete(b"a/2").await.unwrap();
            s.put(b"a/3", b"w").await.unwrap();
            s.blocking(move |db| Ok(db.conn.execute_batch(older)?))
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
        // Compares and puts go on from the marks filled in.
        let kv = s.get(b"a/1", None).await.unwrap().unwrap();
        let t = Txn::when(vec![Compare::ModRevision(
            b"a/1".to_vec(),
            crate::Cmp::Equal,
            kv.mod_revision,
        )])
        .and_then(vec![Op::put(&b"a/1"[..], &b"v"[..])]);
        assert!(s.txn(t).await.unwrap().succeeded);
        let kv = s.get(b"a/1", None).await.unwrap().unwrap();
        assert_eq!((kv.version, kv.create_revision), (3, 1));
        // And the past is still read from the history.
        let (then, _) = s.range(b"a/", Some(3)).await.unwrap();
        assert_eq!(then.len(), 2, "a/1 and a/2 at revision 3");
    }

    #[tokio::test]
    async fn a_store_whose_latest_table_lacks_the_lease_still_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let lease = {
            let s = store(&dir);
            let lease = s.grant(Duration::from_secs(60)).await.unwrap();
            let t = Txn::when(vec![]).and_then(vec![Op::Put {
                key: b"node/1".to_vec(),
                value: b"up".to_vec(),
                lease: Some(lease),
            }]);
            assert!(s.txn(t).await.unwrap().succeeded);
            s.put(b"task/1", b"x").await.unwrap();
            s.blocking(move |db| {
                Ok(db.conn.execute_batch(
                    "DROP INDEX latest_lease;
                     ALTER TABLE latest DROP COLUMN lease;",
                )?)
            })
            .await
            .unwrap();
            lease
        };
        let s = store(&dir);
        s.revoke(lease).await.unwrap();
        assert!(s.get(b"node/1", None).await.unwrap().is_none());
        assert!(s.get(b"task/1", None).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_store_made_before_the_latest_table_is_read_the_same() {
        older_store_reads_the_same("DROP TABLE latest").await;
    }

    #[tokio::test]
    async fn a_store_whose_latest_table_lacks_the_marks_is_read_the_same() {
        older_store_reads_the_same(
            "DROP TABLE latest;
             CREATE TABLE latest (key BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO latest SELECT key, MAX(id) FROM kv GROUP BY key;
             DELETE FROM latest WHERE id IN (SELECT id FROM kv WHERE deleted = 1);",
        )
        .await;
    }
}
