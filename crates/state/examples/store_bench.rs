//! The store's speed, for bench/cluster.sh (run by hand, never in CI):
//! transactional puts per second from one client (each a compare-and-swap
//! on the key's mod revision, as the control plane writes), and how long a
//! put takes to reach a watcher.
//!
//!   cargo run --release -p estiba-state --example store_bench -- sqlite:/path/db | etcd://h:p[,h:p] [PUTS]
//!
//! Prints one JSON line: {"puts_per_sec", "watch_p50_ms", "watch_p99_ms"}.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use estiba_state::{AnyStore, Cmp, Compare, EtcdStore, Op, SqliteStore, Store, Txn};

async fn open(spec: &str) -> AnyStore {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return AnyStore::Sqlite(SqliteStore::open(std::path::Path::new(path)).unwrap());
    }
    let endpoints: Vec<String> = spec
        .strip_prefix("etcd://")
        .expect("sqlite:PATH or etcd://HOST:PORT[,…]")
        .split(',')
        .map(|e| format!("http://{e}"))
        .collect();
    AnyStore::Etcd(Box::new(EtcdStore::connect(&endpoints).await.unwrap()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = open(&args[1]).await;
    let puts: usize = args.get(2).map_or(2000, |n| n.parse().unwrap());
    let prefix = format!("bench/{}/", std::process::id());

    // Puts: each a CAS on the key's last mod revision.
    let key = format!("{prefix}counter");
    let mut rev = 0;
    let started = Instant::now();
    for i in 0..puts {
        let txn = Txn::when(vec![Compare::ModRevision(
            key.clone().into_bytes(),
            Cmp::Equal,
            rev,
        )])
        .and_then(vec![Op::put(key.as_str(), i.to_string())]);
        let r = store.txn(txn).await.unwrap();
        assert!(r.succeeded);
        rev = r.revision;
    }
    let puts_per_sec = puts as f64 / started.elapsed().as_secs_f64();

    // Watch latency: a put, then the time until the watcher has it.
    let watched = format!("{prefix}watched/");
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(watched.as_bytes(), from).await.unwrap();
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        store
            .put(format!("{watched}{i}").as_bytes(), b"x")
            .await
            .unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        assert!(matches!(e, Ok(Some(Ok(_)))), "the watch missed a put");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{{\"puts_per_sec\": {puts_per_sec:.0}, \"watch_p50_ms\": {:.2}, \"watch_p99_ms\": {:.2}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}
