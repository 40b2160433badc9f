//! A cluster on one machine: agents in network namespaces of their own,
//! placement across them, and the reliability cases — an agent killed
//! with SIGKILL, a control plane killed during a RunTask of ten, a node
//! cut off — on SQLite and on a three-member etcd cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use common::cluster::{Agent, ControlPlane, TestNet};
use common::etcd::Etcd;
use common::{poll, require_root, require_tool, Estiba};
use serde_json::Value;

const BUSYBOX: &str = "127.0.0.1:51670/busybox:latest";

fn ready() -> bool {
    require_root("the cluster tests") && require_tool("/usr/bin/aws")
}

/// The store a case runs on: SQLite in the control plane's directory, or
/// a real three-member etcd cluster.
enum Backend {
    Sqlite,
    Etcd(Etcd),
}

impl Backend {
    fn open(kind: &str) -> Option<Backend> {
        match kind {
            "etcd" if !common::etcd::installed() => None,
            "etcd" => Some(Backend::Etcd(Etcd::start())),
            _ => Some(Backend::Sqlite),
        }
    }

    fn store(&self) -> String {
        match self {
            Backend::Sqlite => "sqlite".into(),
            Backend::Etcd(e) => e.store(),
        }
    }
}

/// Each case twice: `NAME::sqlite` and `NAME::etcd`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                if super::ready() {
                    if let Some(b) = super::Backend::open("sqlite") {
                        super::$name(b);
                    }
                }
            }

            #[test]
            fn etcd() {
                if super::ready() {
                    if let Some(b) = super::Backend::open("etcd") {
                        super::$name(b);
                    }
                }
            }
        }
    )*};
}

fn node_estiba() -> Estiba {
    let e = Estiba::root();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    e.ok(&["import", &tar, BUSYBOX]);
    e
}

fn register(cp: &ControlPlane, family: &str, memory: u32, command: &str) {
    let defs = serde_json::json!([{
        "name": "main", "image": BUSYBOX, "memory": memory,
        "command": ["sh", "-c", command],
    }]);
    cp.register(family, &defs);
}

fn run(cp: &ControlPlane, family: &str, count: u32) -> Value {
    cp.ecs(&[
        "run-task",
        "--task-definition",
        family,
        "--count",
        &count.to_string(),
    ])
}

fn arns(v: &Value) -> Vec<String> {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect()
}

fn describe(cp: &ControlPlane, tasks: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for chunk in tasks.chunks(100) {
        let mut args = vec!["describe-tasks", "--tasks"];
        args.extend(chunk.iter().map(String::as_str));
        out.extend(cp.ecs(&args)["tasks"].as_array().unwrap().iter().cloned());
    }
    out
}

fn wait_running(cp: &ControlPlane, tasks: &[String]) {
    let all = poll(
        Duration::from_secs(120),
        || describe(cp, tasks),
        |ts| ts.len() == tasks.len() && ts.iter().all(|t| t["lastStatus"] == "RUNNING"),
    );
    let states: Vec<(&Value, &Value)> = all
        .iter()
        .map(|t| (&t["lastStatus"], &t["stoppedReason"]))
        .collect();
    assert!(
        all.iter().all(|t| t["lastStatus"] == "RUNNING"),
        "not all RUNNING: {states:?}"
    );
}

fn instances(cp: &ControlPlane) -> Vec<Value> {
    let list = cp.ecs(&["list-container-instances"]);
    let ids: Vec<&str> = list["containerInstanceArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut args = vec!["describe-container-instances", "--container-instances"];
    args.extend(ids);
    cp.ecs(&args)["containerInstances"]
        .as_array()
        .unwrap()
        .clone()
}

fn remaining(instance: &Value, name: &str) -> i64 {
    instance["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["integerValue"]
        .as_i64()
        .unwrap()
}

fn failures_by_instance(v: &Value) -> HashMap<String, (String, String)> {
    v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let id = f["arn"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (
                id,
                (
                    f["reason"].as_str().unwrap().to_string(),
                    f["detail"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn thirty_tasks_fill_three_nodes_and_what_does_not_fit_says_why() {
    if !ready() {
        return;
    }
    let net = TestNet::new(3);
    let cp = ControlPlane::start_on("sqlite", &net.host_ip(), &[]);
    let token = cp.token();
    let agents: Vec<Agent> = (0..3)
        .map(|i| {
            let ns = Some(net.namespaces[i].clone());
            Agent::start_in(
                node_estiba(),
                cp.url(),
                token.clone(),
                ns,
                &["--memory", "1000"],
            )
        })
        .collect();
    let ids: Vec<String> = agents.iter().map(Agent::instance_id).collect();
    register(&cp, "filler", 100, "sleep 600");
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let v = run(&cp, "filler", 10);
        assert_eq!(v["failures"], serde_json::json!([]), "{v}");
        tasks.extend(arns(&v));
    }
    wait_running(&cp, &tasks);
    // Ten on each node, each node's memory used up.
    let described = describe(&cp, &tasks);
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for t in &described {
        let id = t["containerInstanceArn"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        *per_node.entry(id).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(per_node.get(id), Some(&10), "{per_node:?}");
    }
    for i in instances(&cp) {
        assert_eq!(remaining(&i, "MEMORY"), 0, "{i}");
        assert_eq!(i["runningTasksCount"], 10, "{i}");
        assert_eq!(i["agentConnected"], true, "{i}");
    }
    // Each agent runs its ten, and they answer from inside their namespaces.
    for a in &agents {
        let ps = a.e.ok(&["ps", "-q"]);
        assert_eq!(ps.lines().count(), 10, "{ps}");
    }

    // One more, and one too big for any node: every node says what it lacks.
    let more = run(&cp, "filler", 1);
    assert!(more["tasks"].as_array().unwrap().is_empty(), "{more}");
    let f = failures_by_instance(&more);
    for id in &ids {
        assert_eq!(
            f[id],
            (
                "RESOURCE:MEMORY".into(),
                "needs 100 MiB of memory, 0 MiB free".into()
            ),
            "{more}"
        );
    }
    register(&cp, "huge", 4000, "true");
    let huge = run(&cp, "huge", 1);
    let f = failures_by_instance(&huge);
    assert_eq!(f.len(), 3, "{huge}");
    assert!(
        f.values()
            .all(|(r, d)| r == "RESOURCE:MEMORY" && d.starts_with("needs 4000 MiB")),
        "{huge}"
    );

    // A DRAINING node gets nothing new, though room frees up on it.
    cp.ecs(&[
        "update-container-instances-state",
        "--container-instances",
        &ids[0],
        "--status",
        "DRAINING",
    ]);
    let on = |id: &str| -> Vec<String> {
        let v = cp.ecs(&["list-tasks", "--container-instance", id]);
        v["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    let mut freed = on(&ids[0])[..2].to_vec();
    freed.extend(on(&ids[1])[..2].to_vec());
    for t in &freed {
        cp.ecs(&["stop-task", "--task", t]);
    }
    let mut wait = vec!["wait", "tasks-stopped", "--tasks"];
    wait.extend(freed.iter().map(String::as_str));
    cp.ecs(&wait);
    let placed = run(&cp, "filler", 2);
    assert_eq!(placed["failures"], serde_json::json!([]), "{placed}");
    for t in placed["tasks"].as_array().unwrap() {
        assert!(
            t["containerInstanceArn"]
                .as_str()
                .unwrap()
                .ends_with(&ids[1]),
            "{t}"
        );
    }
    let full = run(&cp, "filler", 1);
    let f = failures_by_instance(&full);
    assert_eq!(f[&ids[0]].0, "RESOURCE:INSTANCE", "{full}");
    assert!(f[&ids[0]].1.contains("DRAINING"), "{full}");
    assert_eq!(f[&ids[1]].0, "RESOURCE:MEMORY", "{full}");
}

fn engine_state(agent: &Agent, task: &str) -> Value {
    let name = format!("ecs-{}-main", task.rsplit('/').next().unwrap());
    let v: Value = serde_json::from_str(&agent.e.ok(&["inspect", &name])).unwrap();
    v[0]["State"].clone()
}

/// An agent killed with SIGKILL: its containers run on, and once it is
/// back they are reported RUNNING, the same containers, never restarted.
fn an_agent_killed_with_sigkill_readopts_its_tasks(store: Backend) {
    let cp = ControlPlane::start_on(&store.store(), "127.0.0.1", &[]);
    let mut agent = Agent::start(node_estiba(), &cp, &[]);
    register(&cp, "sleeper", 32, "sleep 600");
    let tasks = arns(&run(&cp, "sleeper", 2));
    wait_running(&cp, &tasks);
    let before: Vec<Value> = tasks.iter().map(|t| engine_state(&agent, t)).collect();
    agent.kill9();
    for (t, b) in tasks.iter().zip(&before) {
        let now = engine_state(&agent, t);
        assert_eq!(now["Running"], true, "{now}");
        assert_eq!(now["Pid"], b["Pid"]);
    }
    agent.restart();
    let back = poll(
        Duration::from_secs(20),
        || instances(&cp),
        |i| i[0]["agentConnected"] == true,
    );
    assert_eq!(back[0]["agentConnected"], true);
    for (t, b) in tasks.iter().zip(&before) {
        let now = engine_state(&agent, t);
        assert_eq!(
            (&now["Pid"], &now["StartedAt"]),
            (&b["Pid"], &b["StartedAt"]),
            "restarted: {now}"
        );
    }
    let described = describe(&cp, &tasks);
    assert!(
        described.iter().all(|t| t["lastStatus"] == "RUNNING"),
        "{described:?}"
    );
    // The re-adopted tasks still obey the control plane.
    cp.ecs(&["stop-task", "--task", &tasks[0]]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &tasks[0]]);
    assert_eq!(engine_state(&agent, &tasks[0])["Running"], false);
    assert!(agent.log().contains("re-adopted"), "{}", agent.log());
}

/// The control plane killed with SIGKILL while it places ten tasks, then
/// started again: every task it holds exists once and runs (one container
/// each on the node), and every task a client was told of is among them.
fn a_control_plane_killed_during_run_task_loses_and_duplicates_nothing(mut store: Backend) {
    let mut cp = ControlPlane::start_on(&store.store(), "127.0.0.1", &[]);
    let agent = Agent::start(node_estiba(), &cp, &[]);
    register(&cp, "sleeper", 16, "sleep 600");
    if let Backend::Etcd(etcd) = &mut store {
        // One member down: the other two are a quorum, RunTask goes on.
        etcd.kill(2);
        let v = run(&cp, "sleeper", 1);
        assert_eq!(v["failures"], serde_json::json!([]), "{v}");
    }
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    for delay in [20u64, 60, 150] {
        let client = cp
            .aws(
                &cp.admin,
                &["run-task", "--task-definition", "sleeper", "--count", "10"],
            )
            .env("AWS_MAX_ATTEMPTS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        cp.kill9();
        let out = client.wait_with_output().unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            acknowledged.extend(arns(&v));
        }
        cp.restart();
    }
    let listed = cp.ecs(&["list-tasks"]);
    let held: Vec<String> = listed["taskArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = held.iter().collect();
    assert_eq!(unique.len(), held.len(), "a task listed twice: {held:?}");
    for a in &acknowledged {
        assert!(held.contains(a), "acknowledged but lost: {a}");
    }
    wait_running(&cp, &held);
    let containers = poll(
        Duration::from_secs(30),
        || agent.e.ok(&["ps", "-q"]).lines().count(),
        |n| *n == held.len(),
    );
    assert_eq!(containers, held.len(), "one container per task");
}

/// A node cut off its network: disconnected within three heartbeats, its
/// tasks STOPPED after the grace period with the host-lost reason, and its
/// resources free again. Mended, it comes back and stops what it ran.
fn a_lost_node_is_disconnected_and_its_tasks_stop(store: Backend) {
    let net = TestNet::new(1);
    let cp = ControlPlane::start_on(&store.store(), &net.host_ip(), &["--lost-grace", "3s"]);
    let ns = Some(net.namespaces[0].clone());
    let agent = Agent::start_in(
        node_estiba(),
        cp.url(),
        cp.token(),
        ns,
        &["--memory", "1000"],
    );
    register(&cp, "sleeper", 100, "sleep 600");
    let tasks = arns(&run(&cp, "sleeper", 2));
    wait_running(&cp, &tasks);
    assert_eq!(remaining(&instances(&cp)[0], "MEMORY"), 800);
    net.cut(0);
    let cut_at = std::time::Instant::now();
    let gone = poll(
        Duration::from_secs(10),
        || instances(&cp),
        |i| i[0]["agentConnected"] == false,
    );
    assert_eq!(
        gone[0]["agentConnected"],
        false,
        "still connected after {:?}",
        cut_at.elapsed()
    );
    assert!(
        cut_at.elapsed() < Duration::from_secs(6),
        "disconnected after {:?}",
        cut_at.elapsed()
    );
    let stopped = poll(
        Duration::from_secs(15),
        || describe(&cp, &tasks),
        |ts| ts.iter().all(|t| t["lastStatus"] == "STOPPED"),
    );
    for t in &stopped {
        assert_eq!(t["lastStatus"], "STOPPED", "{t}");
        assert!(
            t["stoppedReason"].as_str().unwrap().contains("Host lost"),
            "{t}"
        );
    }
    assert_eq!(remaining(&instances(&cp)[0], "MEMORY"), 1000);
    net.mend(0);
    let back = poll(
        Duration::from_secs(20),
        || instances(&cp),
        |i| i[0]["agentConnected"] == true,
    );
    assert_eq!(back[0]["agentConnected"], true);
    let left = poll(
        Duration::from_secs(40),
        || agent.e.ok(&["ps", "-q"]),
        |ps| ps.trim().is_empty(),
    );
    assert!(
        left.trim().is_empty(),
        "the node still runs its lost tasks: {left}"
    );
}

/// Cluster secrets are sealed before they reach the store, on SQLite and
/// on etcd alike: the task's container gets the value, and no file of the
/// store (the control plane's SQLite, or etcd's members' data and WAL)
/// holds it in clear.
fn cluster_secrets_are_sealed_in_either_store(store: Backend) {
    let net = TestNet::new(1);
    let cp = ControlPlane::start_on(&store.store(), &net.host_ip(), &[]);
    let _agent = Agent::start_in(
        node_estiba(),
        cp.url(),
        cp.token(),
        Some(net.namespaces[0].clone()),
        &["--memory", "1000"],
    );
    let value = format!("sealed-{}-value", std::process::id());
    let file = cp.dir.path().join("secret-value");
    std::fs::write(&file, &value).unwrap();
    let out = cp.admin_cmd(&[
        "secret",
        "create",
        "db-password",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    std::fs::remove_file(&file).unwrap();
    let defs = serde_json::json!([{
        "name": "main", "image": BUSYBOX, "memory": 16,
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": "db-password"}],
        // The value in two halves, so the definition never holds it whole.
        "environment": [{"name": "TAIL", "value": &value[7..]}],
        "command": ["sh", "-c", format!("test \"$DB_PASSWORD\" = \"{}$TAIL\"", &value[..7])],
    }]);
    cp.register("sealed", &defs);
    let tasks = arns(&run(&cp, "sealed", 1));
    let done = poll(
        Duration::from_secs(120),
        || describe(&cp, &tasks),
        |ts| ts.iter().all(|t| t["lastStatus"] == "STOPPED"),
    );
    assert_eq!(done[0]["containers"][0]["exitCode"], 0, "{}", done[0]);
    let mut places = vec![cp.data()];
    if let Backend::Etcd(etcd) = &store {
        places.push(etcd.dir.path().to_path_buf());
    }
    for place in places {
        let hits = common::files_containing(&place, value.as_bytes());
        assert!(hits.is_empty(), "in clear: {hits:?}");
    }
}

on_both_stores!(
    an_agent_killed_with_sigkill_readopts_its_tasks,
    a_control_plane_killed_during_run_task_loses_and_duplicates_nothing,
    a_lost_node_is_disconnected_and_its_tasks_stop,
    cluster_secrets_are_sealed_in_either_store,
);
