//! The store suite against a real three-member etcd cluster (Debian's
//! etcd-server), started on loopback ports for this test and stopped after.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use estiba_state::{conformance, EtcdStore, Store};

/// The members, killed when dropped.
struct Cluster {
    members: Vec<Child>,
    endpoints: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start(dir: &Path) -> Cluster {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let peer = |i: usize| format!("http://127.0.0.1:{}", ports[i].1);
    let initial: Vec<String> = (0..3).map(|i| format!("m{i}={}", peer(i))).collect();
    let mut cluster = Cluster {
        members: Vec::new(),
        endpoints: Vec::new(),
    };
    for (i, (client, _)) in ports.iter().enumerate() {
        let client_url = format!("http://127.0.0.1:{client}");
        let log = std::fs::File::create(dir.join(format!("m{i}.log"))).unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg(format!("m{i}"))
            .arg("--data-dir")
            .arg(dir.join(format!("m{i}")))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer(i)])
            .args(["--initial-advertise-peer-urls", &peer(i)])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "estiba-state-test"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        cluster.members.push(child);
        cluster.endpoints.push(format!("127.0.0.1:{client}"));
    }
    cluster
}

/// Polls `f` until it succeeds or 30 s pass.
async fn eventually<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    f: impl FnMut() -> F,
) -> T {
    within(Duration::from_secs(30), what, f, String::new).await
}

/// Polls `f` until it succeeds or `limit` passes; `context` is added to
/// the panic (the members' logs).
async fn within<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e:?}\n{}", context()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn etcd_installed() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v etcd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd is missing: .ci/run must install etcd-server"
        );
        eprintln!("SKIPPED: etcd is not installed (Debian's etcd-server)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_suite_passes_on_a_three_member_etcd_cluster() {
    if !etcd_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path());
    // Every member answers before the suite starts: the client spreads its
    // requests over all of them.
    for endpoint in &cluster.endpoints {
        let one = vec![endpoint.clone()];
        let member = eventually("connecting to a member", || EtcdStore::connect(&one)).await;
        eventually("a member answering", || member.revision()).await;
    }
    let store = EtcdStore::connect(&cluster.endpoints).await.unwrap();

    conformance::all(&store).await;

    // One member down: the other two are a quorum, and writes go on.
    let mut lost = cluster.members.remove(2);
    let _ = lost.kill();
    let _ = lost.wait();
    let survivors = cluster.endpoints[..2].to_vec();
    let store = eventually("reconnecting", || EtcdStore::connect(&survivors)).await;
    // The lost member may have been the leader: the survivors elect a new
    // one first, and on a loaded CI machine each attempt can wait out
    // etcd's own request timeout (about 7 s), so this waits longer.
    let logs = || {
        (0..2)
            .map(|i| {
                let log = std::fs::read_to_string(dir.path().join(format!("m{i}.log")));
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- m{i}.log (last lines, newest first)\n{}",
                    tail.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    within(
        Duration::from_secs(120),
        "a write with a member down",
        || store.put(b"after/loss", b"ok"),
        logs,
    )
    .await;
    let kv = store.get(b"after/loss", None).await.unwrap().unwrap();
    assert_eq!(kv.value, b"ok");
}
