//! The one suite both backends pass: each check takes a store and a key
//! prefix of its own, and counts revisions from the store's current one, so
//! the checks can share a store (an etcd cluster) when run one after
//! another. The SQLite unit tests and the etcd integration test call them.
//! A check panics with what did not hold.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::{Cmp, Compare, Error, Event, EventKind, Op, OpResponse, Store, Txn, Watch};

fn key(prefix: &str, name: &str) -> Vec<u8> {
    format!("{prefix}{name}").into_bytes()
}

/// Puts and deletes move the revision, the version and the create revision.
pub async fn revisions_and_versions(s: &impl Store, p: &str) {
    let a = key(p, "a");
    let r0 = s.revision().await.unwrap();
    assert_eq!(s.put(&a, b"1").await.unwrap(), r0 + 1);
    assert_eq!(s.put(&a, b"2").await.unwrap(), r0 + 2);
    let kv = s.get(&a, None).await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r0 + 1, r0 + 2, 2)
    );
    assert_eq!(s.get(&a, Some(r0 + 1)).await.unwrap().unwrap().value, b"1");
    assert_eq!(s.delete(&a).await.unwrap(), 1);
    assert!(s.get(&a, None).await.unwrap().is_none());
    s.put(&a, b"3").await.unwrap();
    let again = s.get(&a, None).await.unwrap().unwrap();
    assert_eq!(again.version, 1, "a key made again starts over");
    assert!(again.create_revision > r0 + 2);
    let future = s.revision().await.unwrap() + 100;
    assert!(matches!(
        s.get(&a, Some(future)).await,
        Err(Error::FutureRevision { .. })
    ));
}

/// A prefix reads in key order, now and at an older revision.
pub async fn ranges(s: &impl Store, p: &str) {
    for name in ["2", "1"] {
        s.put(&key(p, &format!("tasks/{name}")), b"v")
            .await
            .unwrap();
    }
    s.put(&key(p, "tasksx"), b"v").await.unwrap();
    let before = s.revision().await.unwrap();
    s.delete(&key(p, "tasks/2")).await.unwrap();
    let (now, _) = s.range(&key(p, "tasks/"), None).await.unwrap();
    let names: Vec<_> = now.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(names, [key(p, "tasks/1")]);
    let (then, at) = s.range(&key(p, "tasks/"), Some(before)).await.unwrap();
    assert_eq!(at, before);
    assert_eq!(then.len(), 2);
    assert_eq!(then[0].key, key(p, "tasks/1"), "key order");
}

/// A transaction creates a key once; a failed compare writes nothing and
/// runs the failure operations.
pub async fn compare_and_swap(s: &impl Store, p: &str) {
    let k = key(p, "k");
    let create = |v: &str| {
        Txn::when(vec![Compare::CreateRevision(k.clone(), Cmp::Equal, 0)])
            .and_then(vec![Op::put(k.clone(), v.as_bytes())])
            .or_else(vec![Op::get(k.clone())])
    };
    let first = s.txn(create("one")).await.unwrap();
    assert!(first.succeeded);
    let second = s.txn(create("two")).await.unwrap();
    assert!(!second.succeeded);
    assert!(
        matches!(&second.responses[0], OpResponse::Get { kvs } if kvs[0].value == b"one"),
        "{second:?}"
    );
    assert_eq!(
        second.revision, first.revision,
        "a failed compare writes nothing"
    );
}

/// Eight writers increment one counter by compare-and-swap on its mod
/// revision: none of the 80 increments is lost.
pub async fn racing_writers_lose_nothing<S: Store + Clone + 'static>(s: &S, p: &str) {
    let counter = key(p, "counter");
    s.put(&counter, b"0").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, counter) = (s.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let kv = s.get(&counter, None).await.unwrap().unwrap();
                let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                let t = Txn::when(vec![Compare::ModRevision(
                    counter.clone(),
                    Cmp::Equal,
                    kv.mod_revision,
                )])
                .and_then(vec![Op::put(counter.clone(), (n + 1).to_string())]);
                if s.txn(t).await.unwrap().succeeded {
                    done += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = s.get(&counter, None).await.unwrap().unwrap();
    assert_eq!(kv.value, b"80");
    assert_eq!(kv.version, 81);
}

/// The next event, within a deadline.
pub async fn next(w: &mut Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch is open")
        .expect("no error")
}

/// A watch delivers history from its revision, then each change in order;
/// a transaction's changes share a revision.
pub async fn watches_in_order(s: &impl Store, p: &str) {
    let (a, b) = (key(p, "n/a"), key(p, "n/b"));
    let start = s.put(&a, b"1").await.unwrap();
    s.put(&key(p, "x"), b"1").await.unwrap();
    let mut w = s.watch(&key(p, "n/"), start).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.kv.mod_revision),
        (EventKind::Put, start),
        "history first"
    );
    let t = Txn::default().and_then(vec![Op::put(b.clone(), &b"2"[..]), Op::delete(a.clone())]);
    let rev = s.txn(t).await.unwrap().revision;
    let (put, del) = (next(&mut w).await, next(&mut w).await);
    assert_eq!(
        (put.kind, &put.kv.key, put.kv.mod_revision),
        (EventKind::Put, &b, rev)
    );
    assert_eq!(
        (del.kind, &del.kv.key, del.kv.mod_revision),
        (EventKind::Delete, &a, rev)
    );
}

/// A watch tells when it has given a revision's last change: read from
/// history (a revision of `n` changes) and live. (etcd takes 128
/// operations in a transaction; SQLite's test gives one larger than a
/// read of its history.)
pub async fn revision_ends(s: &impl Store, p: &str, n: usize) {
    let puts = |n: usize, tag: &str| {
        let ops = (0..n)
            .map(|i| Op::put(key(p, &format!("r/{tag}{i:03}")), &b"v"[..]))
            .collect();
        Txn::default().and_then(ops)
    };
    let old = s.txn(puts(n, "a")).await.unwrap().revision;
    let mut w = s.watch(&key(p, "r/"), old).await.unwrap();
    let live = s.txn(puts(3, "b")).await.unwrap().revision;
    for (rev, n) in [(old, n), (live, 3)] {
        for i in 0..n {
            let e = next(&mut w).await;
            assert_eq!(e.kv.mod_revision, rev);
            assert_eq!(
                w.at_revision_end(),
                i == n - 1,
                "change {i} of {n} at {rev}"
            );
        }
    }
}

/// Compaction: older revisions and watches from them are refused, the
/// state at and after the point stays.
pub async fn compaction(s: &impl Store, p: &str) {
    let k = key(p, "k");
    let first = s.put(&k, b"1").await.unwrap();
    s.put(&k, b"2").await.unwrap();
    let last = s.put(&k, b"3").await.unwrap();
    s.compact(last).await.unwrap();
    assert!(matches!(
        s.get(&k, Some(first)).await,
        Err(Error::Compacted { .. })
    ));
    assert_eq!(s.get(&k, Some(last)).await.unwrap().unwrap().value, b"3");
    assert!(matches!(
        s.watch(&k, first).await,
        Err(Error::Compacted { .. })
    ));
    s.compact(last).await.unwrap();
}

/// Kept alive past its time to live, a lease stays; left alone it expires,
/// its keys go, and watchers see the deletes.
pub async fn lease_expiry(s: &impl Store, p: &str) {
    let node = key(p, "nodes/a");
    let lease = s.grant(Duration::from_secs(1)).await.unwrap();
    let put = Op::Put {
        key: node.clone(),
        value: b"up".to_vec(),
        lease: Some(lease),
    };
    let rev = s
        .txn(Txn::default().and_then(vec![put]))
        .await
        .unwrap()
        .revision;
    let mut w = s.watch(&key(p, "nodes/"), rev + 1).await.unwrap();
    // The sleeps are an agent's keep-alive interval, not a wait for a
    // condition.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.keep_alive(lease).await.unwrap();
    }
    assert!(s.get(&node, None).await.unwrap().is_some());
    let e = next(&mut w).await;
    assert_eq!((e.kind, &e.kv.key), (EventKind::Delete, &node));
    assert!(s.get(&node, None).await.unwrap().is_none());
    let renewed = s.keep_alive(lease).await;
    assert!(matches!(renewed, Err(Error::NoSuchLease(_))), "{renewed:?}");
}

/// Revoking a lease deletes its keys at once.
pub async fn lease_revoke(s: &impl Store, p: &str) {
    let k = key(p, "held");
    let lease = s.grant(Duration::from_secs(60)).await.unwrap();
    let put = Op::Put {
        key: k.clone(),
        value: b"v".to_vec(),
        lease: Some(lease),
    };
    s.txn(Txn::default().and_then(vec![put])).await.unwrap();
    s.revoke(lease).await.unwrap();
    assert!(s.get(&k, None).await.unwrap().is_none());
    let missing = Op::Put {
        key: k,
        value: b"v".to_vec(),
        lease: Some(lease),
    };
    assert!(matches!(
        s.txn(Txn::default().and_then(vec![missing])).await,
        Err(Error::NoSuchLease(_))
    ));
}

/// Every check, one after another (compaction affects the whole store).
pub async fn all<S: Store + Clone + 'static>(s: &S) {
    revisions_and_versions(s, "t1/").await;
    ranges(s, "t2/").await;
    compare_and_swap(s, "t3/").await;
    racing_writers_lose_nothing(s, "t4/").await;
    watches_in_order(s, "t5/").await;
    revision_ends(s, "t9/", 100).await;
    lease_revoke(s, "t6/").await;
    lease_expiry(s, "t7/").await;
    compaction(s, "t8/").await;
}
