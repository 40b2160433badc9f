//! The store's side of a placement, timed alone (run by hand):
//! `cargo run --release -p estiba-state --example placement_batches -- [TASKS] [NODES] [BATCH]`.
//!
//! Each batch is one transaction as the scheduler makes it: for every
//! task a task record, and a rewrite of each instance it touched,
//! compared on its mod revision. Values have the sizes of
//! real records (a task about 550 bytes, an instance about 480).
//!
//! To see what a key layout costs: `TASKID=rand` gives tasks random ids
//! (as before ids sorted by creation); `ASSIGN=node` adds the assignment
//! key per task that control planes before stop 26 wrote
//! (`assigned/<node>/<task>`), `ASSIGN=seq` the same ordered by task;
//! `WATCHERS=1` adds the watches a control plane holds (tasks, instances,
//! and with ASSIGN one per node).
//! The process's I/O counters are printed at the end.

use std::time::Instant;

use estiba_state::{Cmp, Compare, Op, SqliteStore, Store, Txn};

fn hex(n: u64) -> String {
    format!("{n:016x}{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[tokio::main]
async fn main() -> estiba_state::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap_or(0));
    let tasks = args.next().filter(|n| *n > 0).unwrap_or(100_000);
    let nodes = args.next().filter(|n| *n > 0).unwrap_or(5_000);
    let batch = args.next().filter(|n| *n > 0).unwrap_or(2_000);
    let dir = tempfile::tempdir().map_err(|e| estiba_state::Error::Backend(e.to_string()))?;
    let store = SqliteStore::open(&dir.path().join("state.db"))?;
    let instance = vec![b'i'; 480];
    let task = vec![b't'; 550];
    let mut revisions = vec![0i64; nodes];
    for (n, rev) in revisions.iter_mut().enumerate() {
        let key = format!("instances/c/{}", hex(n as u64));
        *rev = store
            .txn(Txn::when(vec![]).and_then(vec![Op::put(key.as_str(), instance.clone())]))
            .await?
            .revision;
    }
    let assign = std::env::var("ASSIGN").ok();
    // WATCHERS=1: as in a control plane, the view's watch of tasks/, the
    // scheduler's of instances/ (and one watch per node of its assignments).
    if std::env::var("WATCHERS").is_ok_and(|v| v == "1") {
        let mut prefixes = vec!["tasks/".to_string(), "instances/".to_string()];
        if assign.is_some() {
            prefixes.extend((0..nodes).map(|n| format!("assigned/{}/", hex(n as u64))));
        }
        for p in prefixes {
            let mut w = store.watch(p.as_bytes(), 1).await?;
            tokio::spawn(async move { while let Some(Ok(_)) = w.next().await {} });
        }
    }
    let started = Instant::now();
    let mut placed = 0;
    let mut next_node = 0usize;
    while placed < tasks {
        let n = batch.min(tasks - placed);
        let mut touched = std::collections::BTreeSet::new();
        let mut ops = Vec::new();
        for i in 0..n {
            // Spread: each task on the next node, as spread(instanceId) does.
            let node = next_node % nodes;
            next_node = next_node.wrapping_mul(7).wrapping_add(1_000_003) % nodes.max(1);
            touched.insert(node);
            let id = if std::env::var("TASKID").is_ok_and(|v| v == "rand") {
                hex(((placed + i) as u64).wrapping_mul(0xff51_afd7_ed55_8ccd))
            } else {
                format!("{:012x}{:020x}", placed + i, (placed + i) * 31)
            };
            ops.push(Op::put(format!("tasks/c/{id}").as_str(), task.clone()));
            let akey = match assign.as_deref() {
                Some("seq") => format!("assigned/{id}/{}", hex(node as u64)),
                Some(_) => format!("assigned/{}/{id}", hex(node as u64)),
                None => continue,
            };
            ops.push(Op::put(
                akey.as_str(),
                b"{\"cluster\":\"c\",\"desired_status\":\"RUNNING\"}".to_vec(),
            ));
        }
        let mut compares = Vec::new();
        for &node in &touched {
            let key = format!("instances/c/{}", hex(node as u64));
            compares.push(Compare::ModRevision(
                key.clone().into_bytes(),
                Cmp::Equal,
                revisions[node],
            ));
            ops.push(Op::put(key.as_str(), instance.clone()));
        }
        let t = Instant::now();
        let r = store.txn(Txn::when(compares).and_then(ops)).await?;
        assert!(r.succeeded);
        for &node in &touched {
            revisions[node] = r.revision;
        }
        placed += n;
        if placed % (batch * 10) == 0 || placed == tasks {
            println!("{placed} tasks: last batch {:?}", t.elapsed());
        }
    }
    let took = started.elapsed().as_secs_f64();
    if let Ok(io) = std::fs::read_to_string("/proc/self/io") {
        println!("{}", io.replace('\n', " "));
    }
    println!(
        "{tasks} tasks on {nodes} nodes in batches of {batch}: {took:.2} s, {:.0} per second",
        tasks as f64 / took
    );
    Ok(())
}
