//! The SQLite store's live watchers.
//!
//! The writer hands each commit's changes to the watchers whose prefix
//! they fall under, in memory, while it still holds the database, so they
//! arrive in commit order. A watcher that is caught up never reads the
//! database again: a commit costs the watchers it concerns, not all of
//! them. (Before, every watcher woke at every commit and walked the new
//! rows itself; with 5,000 agents long-polling, that walk was the
//! scheduler's cost.)
//!
//! A watcher that falls [`BACKLOG`] commits behind is dropped from the
//! hub; it reads what it missed from the database and registers again
//! (`sqlite.rs`, `follow`).

use std::collections::{BTreeMap, HashMap};

use tokio::sync::mpsc;

use crate::Event;

/// Commits a live watcher may have waiting before it is dropped.
const BACKLOG: usize = 1024;

/// Registrations between sweeps for watchers whose receiver is gone (a
/// watcher is otherwise only found gone when a change for it comes).
const SWEEP_EVERY: u64 = 1024;

/// What a registered watcher receives: each commit's changes under its
/// prefix, in order. It ends when the hub drops the watcher or the store
/// closes.
pub(crate) type Live = mpsc::Receiver<Vec<Event>>;

#[derive(Debug, Default)]
pub(crate) struct Hub {
    registered: u64,
    by_prefix: HashMap<Vec<u8>, Vec<mpsc::Sender<Vec<Event>>>>,
    /// How many prefixes have each length: a key is looked up by the
    /// lengths in use only.
    lengths: BTreeMap<usize, usize>,
}

impl Hub {
    /// Whether no one watches (then a writer need not keep its changes).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// A watcher of `prefix`, from the next commit on.
    pub(crate) fn register(&mut self, prefix: &[u8]) -> Live {
        self.registered += 1;
        if self.registered.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        let watchers = self.by_prefix.entry(prefix.to_vec()).or_default();
        if watchers.is_empty() {
            *self.lengths.entry(prefix.len()).or_default() += 1;
        }
        watchers.push(tx);
        rx
    }

    /// Hands one commit's changes, in order, to the watchers they concern.
    /// A watcher that is gone or too far behind is dropped.
    pub(crate) fn publish(&mut self, events: &[Event]) {
        if events.is_empty() || self.by_prefix.is_empty() {
            return;
        }
        let mut batches: HashMap<&[u8], Vec<Event>> = HashMap::new();
        for e in events {
            for &len in self.lengths.keys() {
                let Some(head) = e.kv.key.get(..len) else {
                    break;
                };
                if let Some((prefix, _)) = self.by_prefix.get_key_value(head) {
                    batches.entry(prefix).or_default().push(e.clone());
                }
            }
        }
        let batches: Vec<(Vec<u8>, Vec<Event>)> =
            batches.into_iter().map(|(p, b)| (p.to_vec(), b)).collect();
        for (prefix, batch) in batches {
            if let Some(watchers) = self.by_prefix.get_mut(&prefix) {
                watchers.retain(|w| w.try_send(batch.clone()).is_ok());
            }
            self.forget_if_empty(&prefix);
        }
    }

    /// Drops the watchers whose receiver is gone.
    fn sweep(&mut self) {
        let prefixes: Vec<Vec<u8>> = self.by_prefix.keys().cloned().collect();
        for prefix in prefixes {
            if let Some(watchers) = self.by_prefix.get_mut(&prefix) {
                watchers.retain(|w| !w.is_closed());
            }
            self.forget_if_empty(&prefix);
        }
    }

    fn forget_if_empty(&mut self, prefix: &[u8]) {
        if self.by_prefix.get(prefix).is_some_and(Vec::is_empty) {
            self.by_prefix.remove(prefix);
            if let Some(n) = self.lengths.get_mut(&prefix.len()) {
                *n -= 1;
                if *n == 0 {
                    self.lengths.remove(&prefix.len());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, KeyValue};

    fn put(key: &str, rev: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: 0,
            },
        }
    }

    fn keys(batch: &[Event]) -> Vec<String> {
        batch
            .iter()
            .map(|e| String::from_utf8_lossy(&e.kv.key).into_owned())
            .collect()
    }

    #[test]
    fn a_commit_reaches_the_watchers_of_each_prefix_it_falls_under() {
        let mut hub = Hub::default();
        let mut all = hub.register(b"");
        let mut a = hub.register(b"assigned/a/");
        let mut tasks = hub.register(b"tasks/");
        hub.publish(&[
            put("tasks/1", 5),
            put("assigned/a/1", 5),
            put("assigned/b/1", 5),
        ]);
        assert_eq!(keys(&all.try_recv().unwrap()).len(), 3);
        assert_eq!(keys(&a.try_recv().unwrap()), ["assigned/a/1"]);
        assert_eq!(keys(&tasks.try_recv().unwrap()), ["tasks/1"]);
        assert!(a.try_recv().is_err(), "one batch per commit");
    }

    #[test]
    fn a_commit_no_one_watches_sends_nothing() {
        let mut hub = Hub::default();
        let mut a = hub.register(b"assigned/a/");
        hub.publish(&[put("assigned/b/1", 2)]);
        assert!(a.try_recv().is_err());
    }

    #[test]
    fn gone_watchers_are_dropped_and_their_prefix_forgotten() {
        let mut hub = Hub::default();
        drop(hub.register(b"x/"));
        hub.publish(&[put("x/1", 2)]);
        assert!(hub.is_empty());
        assert!(hub.lengths.is_empty());
        // Ones no change ever reaches go at a sweep.
        for _ in 0..SWEEP_EVERY {
            drop(hub.register(b"quiet/"));
        }
        assert!(hub
            .by_prefix
            .get(&b"quiet/"[..])
            .is_none_or(|w| w.len() <= 2));
    }

    #[test]
    fn a_watcher_too_far_behind_is_dropped_and_sees_its_stream_end() {
        let mut hub = Hub::default();
        let mut slow = hub.register(b"k");
        for rev in 0..=BACKLOG as i64 {
            hub.publish(&[put("k", rev + 1)]);
        }
        assert!(hub.is_empty());
        let mut got = 0;
        while slow.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, BACKLOG, "what fitted is still delivered");
        assert!(matches!(
            slow.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
