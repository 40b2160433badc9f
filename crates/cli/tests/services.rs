//! Services on a cluster on one machine: three agents (four for the
//! DAEMON case) in network namespaces of their own, driven with the AWS
//! CLI and boto3 from Debian.
//!
//! - placement: spread, binpack, memberOf, distinctInstance, DAEMON;
//! - node loss: an agent and its containers killed, the count restored
//!   elsewhere, the events saying why;
//! - a rolling deploy sampled throughout (floor and cap), and a revision
//!   that exits at once tripping the breaker and rolling back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{Agent, ControlPlane, TestNet};
use common::etcd::Etcd;
use common::{poll, require_root, require_tool, Estiba};
use serde_json::{json, Value};

const BUSYBOX: &str = "127.0.0.1:51670/busybox:latest";

fn ready() -> bool {
    require_root("the service tests") && require_tool("/usr/bin/aws")
}

fn node_estiba() -> Estiba {
    let e = Estiba::root();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    e.ok(&["import", &tar, BUSYBOX]);
    e
}

/// A control plane whose tasks count as healthy after a second, and
/// `nodes` agents of 1000 MiB, node i in zone `z<i>`.
struct Cluster {
    net: TestNet,
    cp: ControlPlane,
    agents: Vec<Agent>,
}

impl Cluster {
    fn start(nodes: usize, running: usize, extra: &[&str]) -> Cluster {
        Self::start_on("sqlite", 1, nodes, running, extra)
    }

    /// On `store`, with `replicas` replicas of the control plane.
    fn start_on(
        store: &str,
        replicas: usize,
        nodes: usize,
        running: usize,
        extra: &[&str],
    ) -> Cluster {
        let net = TestNet::new(nodes);
        let mut flags = vec!["--task-healthy-after", "1s", "--placement-seed", "7"];
        flags.extend_from_slice(extra);
        let mut cp = ControlPlane::start_on(store, &net.host_ip(), &flags);
        for _ in 1..replicas {
            cp.add_replica();
        }
        cp.ecs(&["create-cluster", "--cluster-name", "default"]);
        let mut c = Cluster {
            net,
            cp,
            agents: Vec::new(),
        };
        for i in 0..running {
            c.add_agent(i);
        }
        c
    }

    fn add_agent(&mut self, i: usize) {
        let zone = format!("zone=z{i}");
        let agent = Agent::start_in(
            node_estiba(),
            self.cp.urls(),
            self.cp.token(),
            Some(self.net.namespaces[i].clone()),
            &[
                "--memory",
                "1000",
                "--attribute",
                &zone,
                "--usage-every",
                "2s",
            ],
        );
        self.agents.push(agent);
    }

    fn ids(&self) -> Vec<String> {
        self.agents.iter().map(Agent::instance_id).collect()
    }

    fn register(&self, family: &str, memory: u32, command: &str) -> Value {
        let defs = json!([{
            "name": "main", "image": BUSYBOX, "memory": memory,
            "command": ["sh", "-c", command],
        }]);
        self.cp.register(family, &defs)
    }

    fn service(&self, name: &str) -> Value {
        let v = self.cp.ecs(&["describe-services", "--services", name]);
        v["services"][0].clone()
    }

    /// The service's tasks that are wanted RUNNING, described.
    fn tasks(&self, name: &str) -> Vec<Value> {
        let list = self.cp.ecs(&["list-tasks", "--service-name", name]);
        let arns: Vec<&str> = list["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        if arns.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["describe-tasks", "--tasks"];
        args.extend(arns);
        self.cp.ecs(&args)["tasks"].as_array().unwrap().clone()
    }

    /// Waits until `n` of the service's tasks are RUNNING, and returns
    /// how many run on each instance.
    fn running_on(&self, name: &str, n: usize) -> BTreeMap<String, usize> {
        let tasks = poll(
            Duration::from_secs(90),
            || self.tasks(name),
            |ts| ts.len() == n && ts.iter().all(|t| t["lastStatus"] == "RUNNING"),
        );
        let states: Vec<&Value> = tasks.iter().map(|t| &t["lastStatus"]).collect();
        assert!(
            tasks.len() == n && tasks.iter().all(|t| t["lastStatus"] == "RUNNING"),
            "{name}: wanted {n} RUNNING, got {states:?}; events: {}",
            self.service(name)["events"]
        );
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for t in &tasks {
            let id = t["containerInstanceArn"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            *per.entry(id.to_string()).or_default() += 1;
        }
        per
    }

    /// Deletes a service and waits until its tasks have all stopped.
    fn remove(&self, name: &str) {
        self.cp
            .ecs(&["delete-service", "--service", name, "--force"]);
        let left = poll(
            Duration::from_secs(60),
            || {
                let v = self.cp.ecs(&[
                    "list-tasks",
                    "--service-name",
                    name,
                    "--desired-status",
                    "STOPPED",
                ]);
                let arns: Vec<String> = v["taskArns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                let mut args = vec!["describe-tasks".to_string(), "--tasks".into()];
                args.extend(arns);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if args.len() == 2 {
                    return 0;
                }
                self.cp.ecs(&args)["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["lastStatus"] != "STOPPED")
                    .count()
            },
            |n| *n == 0,
        );
        assert_eq!(left, 0, "{name}'s tasks did not all stop");
        let gone = poll(
            Duration::from_secs(20),
            || self.service(name),
            |s| s["status"] == "INACTIVE",
        );
        assert_eq!(gone["status"], "INACTIVE", "{gone}");
    }

    fn events(&self, name: &str) -> Vec<String> {
        self.service(name)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }
}

fn create(c: &Cluster, name: &str, family: &str, count: u32, extra: &[&str]) -> Value {
    let count = count.to_string();
    let mut args = vec![
        "create-service",
        "--service-name",
        name,
        "--task-definition",
        family,
        "--desired-count",
        &count,
    ];
    args.extend_from_slice(extra);
    c.cp.ecs(&args)
}

#[test]
fn placement_lays_services_out_as_their_strategies_and_constraints_say() {
    if !ready() {
        return;
    }
    let mut c = Cluster::start(4, 3, &[]);
    let ids = c.ids();
    c.register("web", 100, "sleep 600");

    // spread(instanceId): 6 over 3 nodes, 2 each.
    let v = create(
        &c,
        "spread",
        "web",
        6,
        &["--placement-strategy", "type=spread,field=instanceId"],
    );
    assert_eq!(v["service"]["status"], "ACTIVE", "{v}");
    assert_eq!(v["service"]["deployments"][0]["status"], "PRIMARY", "{v}");
    let per = c.running_on("spread", 6);
    let counts: Vec<usize> = per.values().copied().collect();
    assert_eq!(per.len(), 3, "{per:?}");
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{per:?}"
    );
    let stable =
        c.cp.aws(
            &c.cp.admin,
            &["wait", "services-stable", "--services", "spread"],
        )
        .output()
        .unwrap();
    assert!(
        stable.status.success(),
        "{}",
        String::from_utf8_lossy(&stable.stderr)
    );
    assert!(
        c.events("spread")
            .iter()
            .any(|e| e.contains("has reached a steady state")),
        "{:?}",
        c.events("spread")
    );
    c.remove("spread");

    // binpack(memory): one node full (10 × 100 MiB) before the next.
    create(
        &c,
        "pack",
        "web",
        12,
        &["--placement-strategy", "type=binpack,field=memory"],
    );
    let per = c.running_on("pack", 12);
    let mut counts: Vec<usize> = per.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, [2, 10], "{per:?}");
    c.remove("pack");

    // memberOf: zone z0 only.
    create(
        &c,
        "zoned",
        "web",
        3,
        &[
            "--placement-constraints",
            r#"[{"type": "memberOf", "expression": "attribute:zone == z0"}]"#,
        ],
    );
    let per = c.running_on("zoned", 3);
    assert_eq!(per.keys().collect::<Vec<_>>(), [&ids[0]], "{per:?}");
    c.remove("zoned");

    // distinctInstance: 3 of 4 placed, one per node; the fourth has
    // nowhere to go, and the events say why, node by node.
    create(
        &c,
        "distinct",
        "web",
        4,
        &["--placement-constraints", "type=distinctInstance"],
    );
    let per = c.running_on("distinct", 3);
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        [1, 1, 1],
        "{per:?}"
    );
    let said = poll(
        Duration::from_secs(20),
        || c.events("distinct"),
        |e| e.iter().any(|m| m.contains("was unable to place a task")),
    );
    let unplaced = said
        .iter()
        .find(|m| m.contains("was unable to place a task"))
        .unwrap();
    for id in &ids {
        assert!(unplaced.contains(id.as_str()), "{unplaced}");
    }
    assert!(unplaced.contains("distinctInstance"), "{unplaced}");
    c.remove("distinct");

    // DAEMON: one per node; a node that joins gets one, a drained one
    // loses its own.
    c.cp.ecs(&[
        "create-service",
        "--service-name",
        "daemon",
        "--task-definition",
        "web",
        "--scheduling-strategy",
        "DAEMON",
    ]);
    let per = c.running_on("daemon", 3);
    assert_eq!(per.len(), 3, "{per:?}");
    c.add_agent(3);
    let ids = c.ids();
    let per = c.running_on("daemon", 4);
    assert!(per.contains_key(&ids[3]), "{per:?}");
    c.cp.ecs(&[
        "update-container-instances-state",
        "--container-instances",
        &ids[1],
        "--status",
        "DRAINING",
    ]);
    let per = c.running_on("daemon", 3);
    assert!(!per.contains_key(&ids[1]), "{per:?}");
    assert_eq!(c.service("daemon")["desiredCount"], 3);

    // REPLICA: a drained node's tasks are replaced on the others (at the
    // default 100/200, the replacements first).
    create(
        &c,
        "moved",
        "web",
        4,
        &["--placement-strategy", "type=spread,field=instanceId"],
    );
    let per = c.running_on("moved", 4);
    assert!(
        per.contains_key(&ids[2]) && !per.contains_key(&ids[1]),
        "{per:?}"
    );
    c.cp.ecs(&[
        "update-container-instances-state",
        "--container-instances",
        &ids[2],
        "--status",
        "DRAINING",
    ]);
    let off_drained = |ts: &Vec<Value>| {
        ts.len() == 4
            && ts.iter().all(|t| {
                t["lastStatus"] == "RUNNING"
                    && !t["containerInstanceArn"]
                        .as_str()
                        .unwrap()
                        .ends_with(&ids[2])
            })
    };
    let tasks = poll(Duration::from_secs(60), || c.tasks("moved"), off_drained);
    assert!(off_drained(&tasks), "{tasks:?}");
    let events = c.events("moved");
    assert!(
        events.iter().any(|e| e.contains("has stopped")),
        "{events:?}"
    );
    c.remove("moved");
}

#[test]
fn a_lost_node_s_tasks_come_back_on_the_others_and_the_events_say_why() {
    if !ready() {
        return;
    }
    let mut c = Cluster::start(3, 3, &["--lost-grace", "2s"]);
    c.register("web", 100, "sleep 600");
    create(
        &c,
        "web",
        "web",
        6,
        &["--placement-strategy", "type=spread,field=instanceId"],
    );
    let per = c.running_on("web", 6);
    assert_eq!(per.len(), 3, "{per:?}");
    let lost = c.agents[0].instance_id();
    // The agent and its containers, gone at once.
    c.agents[0].kill9();
    let held = c.agents[0].e.ok(&["ps", "-aq"]);
    let ids: Vec<&str> = held.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        c.agents[0].e.ok(&args);
    }
    let killed = Instant::now();
    let back = poll(
        Duration::from_secs(30),
        || c.tasks("web"),
        |ts| {
            ts.len() == 6
                && ts.iter().all(|t| {
                    t["lastStatus"] == "RUNNING"
                        && !t["containerInstanceArn"].as_str().unwrap().ends_with(&lost)
                })
        },
    );
    let took = killed.elapsed();
    let per = c.running_on("web", 6);
    assert_eq!(back.len(), 6);
    assert!(took < Duration::from_secs(20), "back at 6 after {took:?}");
    assert!(!per.contains_key(&lost), "{per:?}");
    let events = c.events("web");
    assert!(
        events
            .iter()
            .any(|e| e.contains("stopped: Host lost") && e.contains("It is replaced")),
        "{events:?}"
    );
    // The replacements: started in one round or several, never with the
    // first six.
    assert!(
        events
            .iter()
            .any(|e| e.contains("has started") && !e.contains("has started 6 tasks")),
        "{events:?}"
    );
}

/// Samples a service with boto3 every 100 ms until its primary deployment
/// is COMPLETED or FAILED: the fewest tasks RUNNING and wanted RUNNING,
/// and the most tasks not yet STOPPED, seen at any time.
const SAMPLER: &str = r#"
import boto3, json, os, sys, time
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id=os.environ["KEY_ID"], aws_secret_access_key=os.environ["SECRET"])
name = sys.argv[1] if len(sys.argv) > 1 else os.environ["SERVICE"]
fewest, most, samples, states = 10**9, 0, 0, set()
deadline = time.time() + 150
while time.time() < deadline:
    arns = []
    for status in ("RUNNING", "STOPPED"):
        for page in ecs.get_paginator("list_tasks").paginate(serviceName=name, desiredStatus=status):
            arns += page["taskArns"]
    # A task stopped between the two lists is in both: count it once.
    arns = list(dict.fromkeys(arns))
    tasks = []
    for i in range(0, len(arns), 100):
        tasks += ecs.describe_tasks(tasks=arns[i:i + 100])["tasks"]
    up = sum(1 for t in tasks if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING")
    alive = sum(1 for t in tasks if t["lastStatus"] != "STOPPED")
    fewest, most, samples = min(fewest, up), max(most, alive), samples + 1
    svc = ecs.describe_services(services=[name])["services"][0]
    for d in svc["deployments"]:
        states.add((d["id"], d["rolloutState"]))
    primary = svc["deployments"][0]
    if primary["rolloutState"] != "IN_PROGRESS" and len(svc["deployments"]) == 1:
        break
    time.sleep(0.1)
print(json.dumps({"fewest": fewest, "most": most, "samples": samples,
                  "states": sorted(states), "service": svc}, default=str))
"#;

fn sample(c: &Cluster, name: &str) -> Value {
    let script = SAMPLER.replace("os.environ[\"SERVICE\"]", &format!("{name:?}"));
    let out = c.cp.python(&c.cp.admin, &script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the sampler's JSON")
}

#[test]
fn a_rolling_deploy_keeps_its_floor_and_cap_and_a_failing_revision_rolls_back() {
    if !ready() {
        return;
    }
    let c = Cluster::start(3, 3, &[]);
    c.register("web", 50, "sleep 600");
    create(
        &c,
        "web",
        "web",
        6,
        &[
            "--deployment-configuration",
            "minimumHealthyPercent=50,maximumPercent=200",
        ],
    );
    c.running_on("web", 6);
    let stable = poll(
        Duration::from_secs(30),
        || c.service("web"),
        |s| s["deployments"][0]["rolloutState"] == "COMPLETED",
    );
    assert_eq!(
        stable["deployments"][0]["rolloutState"], "COMPLETED",
        "{stable}"
    );

    // A new revision: sampled throughout, never under 3 up nor over 12.
    c.register("web", 50, "sleep 601");
    c.cp.ecs(&[
        "update-service",
        "--service",
        "web",
        "--task-definition",
        "web:2",
    ]);
    let s = sample(&c, "web");
    assert!(s["fewest"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["most"].as_u64().unwrap() <= 12, "{s}");
    assert!(s["samples"].as_u64().unwrap() >= 5, "{s}");
    let d = &s["service"]["deployments"][0];
    assert_eq!(d["rolloutState"], "COMPLETED", "{s}");
    assert!(
        d["taskDefinition"].as_str().unwrap().ends_with("web:2"),
        "{s}"
    );
    let tasks = c.tasks("web");
    let seen: Vec<(&Value, &Value, &Value)> = tasks
        .iter()
        .map(|t| (&t["taskDefinitionArn"], &t["lastStatus"], &t["startedBy"]))
        .collect();
    assert_eq!(tasks.len(), 6, "{seen:?}");
    assert!(
        tasks
            .iter()
            .all(|t| t["taskDefinitionArn"].as_str().unwrap().ends_with("web:2")),
        "{seen:?} {s}"
    );

    // A revision whose container exits at once: the breaker trips after
    // three failed tasks, the deployment FAILS, and web:2 comes back.
    c.register("web", 50, "exit 3");
    c.cp.ecs(&[
        "update-service",
        "--service",
        "web",
        "--task-definition",
        "web:3",
        "--deployment-configuration",
        r#"{"minimumHealthyPercent": 100, "maximumPercent": 200, "deploymentCircuitBreaker": {"enable": true, "rollback": true}}"#,
    ]);
    let s = sample(&c, "web");
    let states: Vec<String> = s["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    assert!(states.contains(&"FAILED".to_string()), "{s}");
    let d = &s["service"]["deployments"][0];
    assert_eq!(d["rolloutState"], "COMPLETED", "{s}");
    assert!(
        d["taskDefinition"].as_str().unwrap().ends_with("web:2"),
        "{s}"
    );
    assert!(
        s["fewest"].as_u64().unwrap() >= 6,
        "min 100: never below 6 up: {s}"
    );
    let events = c.events("web");
    assert!(
        events
            .iter()
            .any(|e| e.contains("deployment failed") && e.contains("circuit breaker")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("rolling back to task definition web:2")),
        "{events:?}"
    );
    let tasks = c.tasks("web");
    assert_eq!(tasks.len(), 6);
    assert!(tasks.iter().all(|t| t["lastStatus"] == "RUNNING"));
    assert!(tasks
        .iter()
        .all(|t| t["taskDefinitionArn"].as_str().unwrap().ends_with("web:2")));
    let out =
        c.cp.aws(
            &c.cp.admin,
            &["wait", "services-stable", "--services", "web"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_service_requests_get_ecs_exceptions_through_the_aws_cli() {
    if !ready() {
        return;
    }
    let c = Cluster::start(1, 0, &[]);
    c.register("web", 50, "sleep 600");
    let refused = |args: &[&str]| -> String {
        let out = c.cp.aws(&c.cp.admin, args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = refused(&[
        "create-service",
        "--service-name",
        "s",
        "--task-definition",
        "web",
        "--desired-count",
        "2",
        "--deployment-configuration",
        "minimumHealthyPercent=75,maximumPercent=100",
    ]);
    assert!(
        e.contains("InvalidParameterException") && e.contains("cannot make progress"),
        "{e}"
    );
    let e = refused(&[
        "create-service",
        "--service-name",
        "s",
        "--task-definition",
        "web",
        "--desired-count",
        "1",
        "--placement-constraints",
        r#"[{"type": "memberOf", "expression": "attribute:zone == a ||"}]"#,
    ]);
    assert!(e.contains("at character 23"), "{e}");
    let e = refused(&[
        "create-service",
        "--cluster",
        "nowhere",
        "--service-name",
        "s",
        "--task-definition",
        "web",
        "--desired-count",
        "1",
    ]);
    assert!(e.contains("ClusterNotFoundException"), "{e}");
    let e = refused(&[
        "create-service",
        "--service-name",
        "s",
        "--task-definition",
        "ghost:1",
        "--desired-count",
        "1",
    ]);
    assert!(
        e.contains("ClientException") && e.contains("TaskDefinition not found"),
        "{e}"
    );
    let e = refused(&[
        "create-service",
        "--service-name",
        "s",
        "--task-definition",
        "web",
        "--desired-count",
        "9999",
    ]);
    assert!(e.contains("desiredCount must be between 0 and 5000"), "{e}");
    let e = refused(&[
        "update-service",
        "--service",
        "ghost",
        "--desired-count",
        "1",
    ]);
    assert!(e.contains("ServiceNotFoundException"), "{e}");
    let listed = c.cp.ecs(&["list-services"]);
    assert_eq!(listed["serviceArns"], json!([]), "{listed}");
    let described = c.cp.ecs(&["describe-services", "--services", "s"]);
    assert_eq!(described["failures"][0]["reason"], "MISSING", "{described}");
}

#[test]
fn estibas_own_cli_creates_scales_deploys_and_removes_a_service() {
    if !ready() {
        return;
    }
    let c = Cluster::start(1, 1, &[]);
    c.register("web", 50, "sleep 600");
    let cp = &c.cp;
    let arn = cp.estiba(&[
        "service",
        "create",
        "web",
        "--task-definition",
        "web",
        "--desired-count",
        "2",
        "--min-healthy-percent",
        "50",
        "--circuit-breaker",
        "--rollback",
        "--placement-strategy",
        "binpack:memory",
        "--constraint",
        "attribute:zone == z0",
    ]);
    assert!(arn.trim().ends_with(":service/default/web"), "{arn}");
    c.running_on("web", 2);
    let listed = cp.estiba(&["service", "ls"]);
    assert!(
        listed.contains("web") && listed.contains("web:1"),
        "{listed}"
    );
    cp.estiba(&["service", "scale", "web", "3"]);
    c.running_on("web", 3);
    c.register("web", 50, "sleep 601");
    cp.estiba(&["service", "update", "web", "--task-definition", "web:2"]);
    let done = poll(
        Duration::from_secs(60),
        || c.service("web"),
        |s| {
            s["deployments"].as_array().unwrap().len() == 1
                && s["deployments"][0]["rolloutState"] == "COMPLETED"
        },
    );
    assert!(
        done["taskDefinition"].as_str().unwrap().ends_with("web:2"),
        "{done}"
    );
    let shown = cp.estiba(&["service", "describe", "web"]);
    assert!(
        shown.contains("COMPLETED") && shown.contains("circuit breaker on"),
        "{shown}"
    );
    let events = cp.estiba(&["service", "events", "web", "-n", "50"]);
    assert!(events.contains("deployment completed"), "{events}");
    let json: Value =
        serde_json::from_str(&cp.estiba(&["service", "describe", "web", "--format", "json"]))
            .unwrap();
    assert_eq!(
        json["services"][0]["placementStrategy"][0]["type"], "binpack",
        "{json}"
    );
    cp.estiba(&["service", "rm", "web", "--force"]);
    let gone = poll(
        Duration::from_secs(60),
        || c.service("web"),
        |s| s["status"] == "INACTIVE",
    );
    assert_eq!(gone["status"], "INACTIVE", "{gone}");
    assert!(c.tasks("web").is_empty());
}

/// Every task the service ever ran of `family:revision`, STOPPED ones too.
fn ever_started(c: &Cluster, name: &str, revision: &str) -> usize {
    let mut arns = Vec::new();
    for status in ["RUNNING", "STOPPED"] {
        let v = c.cp.ecs(&[
            "list-tasks",
            "--service-name",
            name,
            "--desired-status",
            status,
        ]);
        arns.extend(
            v["taskArns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
    }
    let mut n = 0;
    for chunk in arns.chunks(100) {
        let mut args = vec!["describe-tasks", "--tasks"];
        args.extend(chunk.iter().map(String::as_str));
        n += c.cp.ecs(&args)["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["taskDefinitionArn"].as_str().unwrap().ends_with(revision))
            .count();
    }
    n
}

/// Waits for the service's deployment of `revision` to complete, and
/// checks that it ran exactly `count` tasks of it: none lost, none twice.
fn completes_once(c: &Cluster, name: &str, revision: &str, count: usize) {
    let done = poll(
        Duration::from_secs(90),
        || c.service(name),
        |s| {
            s["deployments"].as_array().unwrap().len() == 1
                && s["deployments"][0]["rolloutState"] == "COMPLETED"
                && s["taskDefinition"].as_str().unwrap().ends_with(revision)
        },
    );
    assert_eq!(
        done["deployments"][0]["rolloutState"], "COMPLETED",
        "{done}"
    );
    assert!(
        done["taskDefinition"].as_str().unwrap().ends_with(revision),
        "{done}"
    );
    let tasks = c.tasks(name);
    assert_eq!(tasks.len(), count, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["lastStatus"] == "RUNNING"));
    assert_eq!(
        ever_started(c, name, revision),
        count,
        "a task of {revision} was started twice"
    );
}

#[test]
fn a_deployment_completes_through_a_leader_kill_and_an_etcd_member_kill() {
    if !ready() || !common::etcd::installed() {
        return;
    }
    let mut etcd = Etcd::start();
    let mut c = Cluster::start_on(&etcd.store(), 3, 3, 3, &[]);
    let leader =
        poll(Duration::from_secs(10), || c.cp.leading(), Option::is_some).expect("a leader");
    c.register("web", 50, "sleep 600");
    create(
        &c,
        "web",
        "web",
        6,
        &[
            "--deployment-configuration",
            "minimumHealthyPercent=50,maximumPercent=200",
        ],
    );
    completes_once(&c, "web", "web:1", 6);

    // The leader dies with -9 as the deployment begins: another leads
    // within 5 s and finishes it.
    c.register("web", 50, "sleep 601");
    c.cp.ecs(&[
        "update-service",
        "--service",
        "web",
        "--task-definition",
        "web:2",
    ]);
    c.cp.kill_replica(leader);
    let killed = Instant::now();
    let next =
        poll(Duration::from_secs(10), || c.cp.leading(), Option::is_some).expect("a new leader");
    let took = killed.elapsed();
    assert_ne!(next, leader);
    assert!(took < Duration::from_secs(5), "a new leader after {took:?}");
    completes_once(&c, "web", "web:2", 6);

    // One etcd member dies as the next deployment begins.
    c.register("web", 50, "sleep 602");
    c.cp.ecs(&[
        "update-service",
        "--service",
        "web",
        "--task-definition",
        "web:3",
    ]);
    etcd.kill(0);
    completes_once(&c, "web", "web:3", 6);
}

#[test]
fn a_sqlite_control_plane_migrates_to_etcd_and_its_service_carries_on() {
    if !ready() || !common::etcd::installed() {
        return;
    }
    let etcd = Etcd::start();
    let mut c = Cluster::start(2, 2, &[]);
    c.register("web", 50, "sleep 600");
    create(&c, "web", "web", 4, &[]);
    c.running_on("web", 4);
    let data = c.cp.data();
    let migrate = |to: &str| {
        std::process::Command::new(common::bin())
            .args(["cluster", "migrate", "--from"])
            .arg(format!("sqlite:{}", data.display()))
            .args(["--to", to])
            .output()
            .unwrap()
    };
    // Not while a control plane serves the store.
    let refused = migrate(&etcd.store());
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("another control plane serves"),
        "{}",
        common::stderr(&refused)
    );

    c.cp.kill9();
    let out = migrate(&etcd.store());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let said = common::stdout(&out);
    assert!(
        said.contains("checksum sha256:") && said.contains("matches"),
        "{said}"
    );
    // Twice: the target is not empty any more.
    let again = migrate(&etcd.store());
    assert!(!again.status.success());
    // SQLite is not served again by mistake.
    let sqlite = std::process::Command::new(common::bin())
        .args(["cluster", "serve", "--addr", "127.0.0.1:1", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        common::stderr(&sqlite).contains("was migrated to"),
        "{}",
        common::stderr(&sqlite)
    );

    // On etcd: the same service, its tasks still running, none started
    // again; the agents carry on, and it scales.
    c.cp.serve_on(&etcd.store());
    let back = poll(
        Duration::from_secs(30),
        || c.service("web"),
        |s| s["runningCount"] == 4,
    );
    assert_eq!(back["runningCount"], 4, "{back}");
    c.cp.ecs(&["update-service", "--service", "web", "--desired-count", "6"]);
    c.running_on("web", 6);
    assert_eq!(
        ever_started(&c, "web", "web:1"),
        6,
        "tasks were started again after the migration"
    );
    let nodes = c.cp.ecs(&["list-container-instances"]);
    assert_eq!(
        nodes["containerInstanceArns"].as_array().unwrap().len(),
        2,
        "{nodes}"
    );
}

/// A task definition whose container burns a core until `until` (epoch
/// seconds), then idles: 256 CPU units reserved, so a busy task is at
/// about 400%.
fn register_burner(c: &Cluster, family: &str, until: u64) {
    let defs = json!([{
        "name": "main", "image": BUSYBOX, "memory": 64, "cpu": 256,
        "environment": [{"name": "BURN_UNTIL", "value": until.to_string()}],
        "command": ["sh", "-c", "while [ $(date +%s) -lt $BURN_UNTIL ]; do :; done; exec sleep 600"],
    }]);
    c.cp.register(family, &defs);
}

fn aas(c: &Cluster, args: &[&str]) -> Value {
    let out =
        c.cp.aws_for(&c.cp.admin, "application-autoscaling", args)
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "aws application-autoscaling {args:?}: {}",
        common::stderr(&out)
    );
    let text = common::stdout(&out);
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap()
}

#[test]
fn services_whose_tasks_burn_cpu_scale_out_to_max_and_back_in_when_the_load_stops() {
    if !ready() {
        return;
    }
    let c = Cluster::start(2, 2, &["--autoscale-every", "1s"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    register_burner(&c, "burn", now + 45);
    create(&c, "cli", "burn", 1, &[]);
    create(&c, "aws", "burn", 1, &[]);
    // One through estiba's CLI, one through the AWS CLI.
    c.cp.estiba(&[
        "service",
        "autoscale",
        "cli",
        "--min",
        "1",
        "--max",
        "3",
        "--target-cpu",
        "50",
        "--scale-out-cooldown",
        "5",
        "--scale-in-cooldown",
        "10",
    ]);
    let scope = [
        "--service-namespace",
        "ecs",
        "--scalable-dimension",
        "ecs:service:DesiredCount",
    ];
    let mut register = vec![
        "register-scalable-target",
        "--resource-id",
        "service/default/aws",
        "--min-capacity",
        "1",
        "--max-capacity",
        "2",
    ];
    register.extend(scope);
    // (Debian's AWS CLI predates ScalableTargetARN in the answer.)
    aas(&c, &register);
    let config = r#"{"TargetValue": 50, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}, "ScaleOutCooldown": 5, "ScaleInCooldown": 10}"#;
    let mut put = vec![
        "put-scaling-policy",
        "--policy-name",
        "cpu50",
        "--resource-id",
        "service/default/aws",
        "--policy-type",
        "TargetTrackingScaling",
        "--target-tracking-scaling-policy-configuration",
        config,
    ];
    put.extend(scope);
    let policy = aas(&c, &put);
    assert!(
        policy["PolicyARN"]
            .as_str()
            .unwrap()
            .contains("policyName/cpu50"),
        "{policy}"
    );

    // Out to max while they burn.
    let out = poll(
        Duration::from_secs(45),
        || {
            (
                c.service("cli")["desiredCount"].clone(),
                c.service("aws")["desiredCount"].clone(),
            )
        },
        |(a, b)| *a == 3 && *b == 2,
    );
    assert_eq!(
        out,
        (json!(3), json!(2)),
        "not at max while burning: {:?}",
        c.events("cli")
    );
    // Back in once the load stops (and the cooldown has passed).
    let back = poll(
        Duration::from_secs(90),
        || {
            (
                c.service("cli")["desiredCount"].clone(),
                c.service("aws")["desiredCount"].clone(),
            )
        },
        |(a, b)| *a == 1 && *b == 1,
    );
    assert_eq!(back, (json!(1), json!(1)), "not back in after the load");

    let mut described = vec!["describe-scalable-targets", "--service-namespace", "ecs"];
    described.extend(["--resource-ids", "service/default/aws"]);
    let targets = aas(&c, &described);
    assert_eq!(targets["ScalableTargets"][0]["MaxCapacity"], 2, "{targets}");
    let activities = aas(
        &c,
        &[
            "describe-scaling-activities",
            "--service-namespace",
            "ecs",
            "--resource-id",
            "service/default/aws",
        ],
    );
    let said: Vec<&str> = activities["ScalingActivities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Description"].as_str().unwrap())
        .collect();
    assert_eq!(
        said.first(),
        Some(&"Setting desired count to 1."),
        "newest first: {said:?}"
    );
    assert!(said.contains(&"Setting desired count to 2."), "{said:?}");
    let policies = aas(
        &c,
        &[
            "describe-scaling-policies",
            "--service-namespace",
            "ecs",
            "--resource-id",
            "service/default/cli",
        ],
    );
    assert_eq!(
        policies["ScalingPolicies"][0]["PolicyName"], "estiba-cpu",
        "{policies}"
    );
    // Bad input: ECS's rules, Application Auto Scaling's exceptions.
    let out =
        c.cp.aws_for(
            &c.cp.admin,
            "application-autoscaling",
            &[
                "register-scalable-target",
                "--service-namespace",
                "ecs",
                "--scalable-dimension",
                "ecs:service:DesiredCount",
                "--resource-id",
                "service/default/ghost",
                "--min-capacity",
                "1",
                "--max-capacity",
                "2",
            ],
        )
        .output()
        .unwrap();
    assert!(
        common::stderr(&out).contains("ValidationException"),
        "{}",
        common::stderr(&out)
    );
    c.cp.estiba(&["service", "autoscale", "cli", "--off"]);
    let gone = aas(
        &c,
        &["describe-scalable-targets", "--service-namespace", "ecs"],
    );
    assert_eq!(
        gone["ScalableTargets"].as_array().unwrap().len(),
        1,
        "{gone}"
    );
}
