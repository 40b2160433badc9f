//! The control plane and its agents, driven by the real AWS CLI and boto3
//! from Debian: task definitions registered as written and run as ECS
//! runs them, SigV4 and policies as AWS answers them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{Agent, ControlPlane};
use common::{require_root, require_tool, Estiba};
use serde_json::Value;

const TASKDEFS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/ecs-task-definitions"
);

fn fixture(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name
}

fn taskdef(name: &str) -> String {
    format!("file://{TASKDEFS}/{name}.json")
}

fn ready() -> bool {
    require_root("the cluster tests")
        && require_tool("/usr/bin/aws")
        && require_tool("/usr/bin/python3")
}

/// The images the shared task definitions name, which cannot be pulled
/// here: busybox under their names, an "ubuntu" with a capsh, and a
/// "helloworld" whose server is busybox httpd.
fn task_images(e: &Estiba) {
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    e.ok(&["import", &tar, "127.0.0.1:51670/busybox:latest"]);
    let ctx = e.scratch("image-context");
    for tool in ["capsh", "helloworld", "curl"] {
        std::fs::copy(fixture(tool), ctx.join(tool)).unwrap();
    }
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM 127.0.0.1:51670/busybox:latest\nCOPY capsh helloworld curl /usr/bin/\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    e.ok(&["build", "-t", "127.0.0.1:51670/ubuntu:latest", ctx]);
    e.ok(&[
        "tag",
        "127.0.0.1:51670/ubuntu:latest",
        "docker.io/buoyantio/helloworld:0.1.6",
    ]);
}

fn single_node(extra: &[&str]) -> (ControlPlane, Agent) {
    let cp = ControlPlane::start(extra);
    let e = Estiba::root();
    task_images(&e);
    let agent = Agent::start(e, &cp, &[]);
    (cp, agent)
}

/// A control plane and a rootless agent (a fresh unprivileged user's),
/// with busybox under the name the task definitions use.
fn rootless_node() -> (ControlPlane, Agent) {
    let cp = ControlPlane::start(&[]);
    let e = Estiba::rootless();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    e.ok(&["import", &tar, "127.0.0.1:51670/busybox:latest"]);
    let agent = Agent::start(e, &cp, &[]);
    (cp, agent)
}

fn task_of(cp: &ControlPlane, arn: &str) -> Value {
    let v = cp.ecs(&["describe-tasks", "--tasks", arn]);
    v["tasks"][0].clone()
}

fn container<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {task}"))
}

fn run_task(cp: &ControlPlane, family: &str) -> String {
    let v = cp.ecs(&["run-task", "--task-definition", family]);
    assert_eq!(v["failures"], serde_json::json!([]), "{v}");
    v["tasks"][0]["taskArn"].as_str().unwrap().to_string()
}

/// Epoch seconds of an engine timestamp (RFC 3339) on the agent's node.
fn engine_time(agent: &Agent, task: &str, container: &str, field: &str) -> f64 {
    let name = format!("ecs-{}-{container}", task.rsplit('/').next().unwrap());
    let out = agent.e.ok(&["inspect", &name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v[0]["State"][field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"));
    let t = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn aws_cli_registers_runs_waits_and_stops_with_granular_stop_timeouts() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    let reg = cp.ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &taskdef("ecs-agent-granular-stop-timeout"),
    ]);
    assert_eq!(reg["taskDefinition"]["revision"], 1, "{reg}");
    let arn = run_task(&cp, "ecsftest-container-granular-stop-timeout");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["lastStatus"], "RUNNING", "{t}");
    for c in ["parent", "dependency1", "dependency2"] {
        assert_eq!(container(&t, c)["lastStatus"], "RUNNING", "{t}");
    }
    let stop = cp.ecs(&["stop-task", "--task", &arn, "--reason", "test over"]);
    assert_eq!(stop["task"]["desiredStatus"], "STOPPED");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["stopCode"], "UserInitiated", "{t}");
    assert_eq!(t["stoppedReason"], "test over", "{t}");
    // The parent stops first (it depends on both); then dependency1 has
    // its 2 s and is killed, while dependency2's 20 s let it end by itself.
    let parent = engine_time(&agent, &arn, "parent", "FinishedAt");
    let dep1 = engine_time(&agent, &arn, "dependency1", "FinishedAt");
    let dep2 = engine_time(&agent, &arn, "dependency2", "FinishedAt");
    assert_eq!(container(&t, "dependency1")["exitCode"], 137, "{t}");
    let after = dep1 - parent;
    assert!(
        (1.5..8.0).contains(&after),
        "dependency1 stopped {after:.1} s after the parent"
    );
    let code2 = container(&t, "dependency2")["exitCode"].as_i64().unwrap();
    assert!(
        code2 == 0 || dep2 - parent >= 19.0,
        "dependency2: exit {code2}, {:.1} s after the parent",
        dep2 - parent
    );
    assert!(
        dep1 <= dep2,
        "dependency1 is killed before dependency2 ends"
    );
    let audit = cp.audit();
    assert!(audit.iter().any(|l| l["action"] == "ecs:StopTask"
        && l["outcome"] == "allowed"
        && l["user"] == "admin"));
}

#[test]
fn the_shared_task_definitions_behave_as_written() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    for name in [
        "ecs-agent-add-drop-capabilities",
        "ecs-agent-container-ordering-healthy",
        "mesh-hello-world-mesh-task-definition",
        "acstd-nginx_fargate",
        "ecs-agent-granular-stop-timeout",
    ] {
        let reg = cp.ecs(&[
            "register-task-definition",
            "--cli-input-json",
            &taskdef(name),
        ]);
        assert_eq!(reg["taskDefinition"]["status"], "ACTIVE", "{name}: {reg}");
    }

    // SYS_ADMIN added and MKNOD dropped, as seen from inside: exit 42.
    let caps = run_task(&cp, "ecsftest-add-drop-capabilities");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &caps]);
    let t = task_of(&cp, &caps);
    assert_eq!(container(&t, "exit")["exitCode"], 42, "{t}");
    assert_eq!(t["stopCode"], "EssentialContainerExited", "{t}");

    // "healthy" starts only once its dependency is HEALTHY: the file the
    // health check writes is there for it to cat, and it started after.
    let ordered = run_task(&cp, "ecsftest-container-ordering-complete-condition");
    let t = common::poll(
        Duration::from_secs(60),
        || task_of(&cp, &ordered),
        |t| container(t, "healthy")["exitCode"].is_number(),
    );
    assert_eq!(container(&t, "healthy")["exitCode"], 0, "{t}");
    assert_eq!(
        container(&t, "healthy-dependency")["healthStatus"],
        "HEALTHY",
        "{t}"
    );
    let healthy_at = engine_time(&agent, &ordered, "healthy", "StartedAt");
    let dependency_at = engine_time(&agent, &ordered, "healthy-dependency", "StartedAt");
    assert!(
        healthy_at > dependency_at + 0.5,
        "healthy started {:.1} s after its dependency",
        healthy_at - dependency_at
    );
    cp.ecs(&["stop-task", "--task", &ordered]);

    // Three essential containers RUNNING, each port bound to a host port
    // of its own from the ephemeral range, answering there.
    let mesh = run_task(&cp, "hello-world-mesh");
    cp.ecs(&["wait", "tasks-running", "--tasks", &mesh]);
    let t = task_of(&cp, &mesh);
    let mut ports = Vec::new();
    for c in ["hello", "world", "world-v2"] {
        let c = container(&t, c);
        assert_eq!(c["lastStatus"], "RUNNING", "{t}");
        let b = &c["networkBindings"][0];
        assert_eq!(b["containerPort"], 1234, "{t}");
        let port = b["hostPort"].as_u64().unwrap();
        assert!(port >= 1024, "{t}");
        ports.push(port);
    }
    ports.dedup();
    assert_eq!(ports.len(), 3, "three host ports: {ports:?}");
    let body = common::poll(
        Duration::from_secs(10),
        || {
            reqwest::blocking::get(format!("http://127.0.0.1:{}/", ports[1]))
                .and_then(|r| r.text())
                .unwrap_or_default()
        },
        |b| b.contains("World"),
    );
    assert_eq!(body.trim(), "World");
    cp.ecs(&["stop-task", "--task", &mesh]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &mesh, &ordered]);
}

#[test]
fn a_readonly_key_describes_but_is_denied_run_task_and_bad_signatures_are_refused() {
    if !ready() {
        return;
    }
    let (cp, _agent) = single_node(&[]);
    cp.ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &taskdef("ecs-agent-granular-stop-timeout"),
    ]);
    let ro = cp.readonly.clone();
    let listed = cp.aws(&ro, &["list-task-definitions"]).output().unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let denied = cp
        .aws(
            &ro,
            &[
                "run-task",
                "--task-definition",
                "ecsftest-container-granular-stop-timeout",
            ],
        )
        .output()
        .unwrap();
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("AccessDeniedException") && err.contains("ecs:RunTask"),
        "{err}"
    );

    let mut wrong = cp.admin.clone();
    wrong.secret = "0".repeat(40);
    let bad = cp.aws(&wrong, &["list-clusters"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("InvalidSignatureException"));
    wrong.id = "AKIAUNKNOWN000000000".into();
    let unknown = cp.aws(&wrong, &["list-clusters"]).output().unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("UnrecognizedClientException"));

    // A request changed after it was signed: boto3 signs, then a hook
    // rewrites the body on its way out.
    let tamper = r#"
import os, boto3, botocore
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
    aws_access_key_id=os.environ["KEY_ID"], aws_secret_access_key=os.environ["SECRET"])
def tamper(request, **kw):
    request.body = request.body.replace(b'"maxResults": 5', b'"maxResults": 6')
ecs.meta.events.register("before-send.ecs.ListClusters", tamper)
try:
    ecs.list_clusters(maxResults=5)
    print("ACCEPTED")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;
    let out = cp.python(&cp.admin, tamper);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "InvalidSignatureException 403",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let audit = cp.audit();
    let refused = |outcome: &str| audit.iter().any(|l| l["outcome"] == outcome);
    assert!(
        refused("AccessDeniedException")
            && refused("InvalidSignatureException")
            && refused("UnrecognizedClientException")
    );
    assert!(audit
        .iter()
        .all(|l| l["time"].is_number() && l["action"].is_string()));
}

#[test]
fn boto3_runs_tasks_and_pages_through_them() {
    if !ready() {
        return;
    }
    let (cp, _agent) = single_node(&[]);
    let script = r#"
import os, json, boto3
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
    aws_access_key_id=os.environ["KEY_ID"], aws_secret_access_key=os.environ["SECRET"])
for i in range(3):
    ecs.register_task_definition(family="sleeper", containerDefinitions=[{
        "name": "main", "image": "127.0.0.1:51670/busybox:latest", "memory": 32,
        "command": ["sleep", "300"]}])
r = ecs.run_task(taskDefinition="sleeper", count=3)
assert not r["failures"], r["failures"]
arns = [t["taskArn"] for t in r["tasks"]]
ecs.get_waiter("tasks_running").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
pages = ecs.get_paginator("list_tasks").paginate(family="sleeper", PaginationConfig={"PageSize": 1})
listed = [a for p in pages for a in p["taskArns"]]
defs = [a for p in ecs.get_paginator("list_task_definitions").paginate(PaginationConfig={"PageSize": 2}) for a in p["taskDefinitionArns"]]
for a in arns:
    ecs.stop_task(task=a)
ecs.get_waiter("tasks_stopped").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
stopped = ecs.describe_tasks(tasks=arns)["tasks"]
print(json.dumps({"listed": sorted(listed), "ran": sorted(arns), "defs": defs,
    "stopped": [t["lastStatus"] for t in stopped], "codes": [t["stopCode"] for t in stopped]}))
"#;
    let out = cp.python(&cp.admin, script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["listed"], v["ran"], "{v}");
    let defs: Vec<&str> = v["defs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(defs.len(), 3, "{v}");
    assert!(defs[2].ends_with("task-definition/sleeper:3"), "{v}");
    assert_eq!(
        v["stopped"],
        serde_json::json!(["STOPPED", "STOPPED", "STOPPED"])
    );
    assert_eq!(
        v["codes"],
        serde_json::json!(["UserInitiated", "UserInitiated", "UserInitiated"])
    );
    let _ = Path::new(TASKDEFS);
}

#[test]
fn a_rootless_agent_runs_a_bridge_task_with_a_dynamic_port() {
    if !ready() {
        return;
    }
    let (cp, agent) = rootless_node();
    let defs = serde_json::json!([{
        "name": "web", "image": "127.0.0.1:51670/busybox:latest", "memory": 32,
        "portMappings": [{"containerPort": 80, "hostPort": 0}],
        "command": ["sh", "-c", "mkdir /www && echo rootless-web > /www/index.html && exec httpd -f -p 80 -h /www"],
    }]);
    cp.register("web", &defs);
    let arn = run_task(&cp, "web");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    let port = container(&t, "web")["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap_or_else(|| panic!("no host port: {t}\n{}", agent.log()));
    // The last error is kept: a miss says what the client saw.
    let body = common::poll(
        Duration::from_secs(20),
        || {
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/"))
                .and_then(|r| r.text())
                .unwrap_or_else(|e| format!("error: {e:?}"))
        },
        |b| b.contains("rootless-web"),
    );
    assert_eq!(
        body.trim(),
        "rootless-web",
        "port {port}\n{}\n{}",
        common::stdout(&agent.e.run(&["ps", "-a"])),
        agent.log()
    );
    // The node says what it cannot do, and lacks the attribute for it.
    let id = agent.instance_id();
    let i = cp.ecs(&["describe-container-instances", "--container-instances", &id]);
    let i = &i["containerInstances"][0];
    let names: Vec<&str> = i["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"estiba.rootless"), "{i}");
    // (The warnings themselves are not in ECS's shape: the AWS CLI drops them.)
    if agent.log().contains("delegates no cgroup controllers") {
        assert!(!names.contains(&"ecs.capability.task-cpu-mem-limit"), "{i}");
    }
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
}

/// `estiba task …` (the native CLI) against this control plane as the admin.
fn estiba_task(cp: &ControlPlane, args: &[&str]) -> String {
    let mut all = vec!["task"];
    all.extend_from_slice(args);
    estiba_as_admin(cp, &all)
}

/// The native CLI (`estiba taskdef|task|node …`) as the admin.
fn estiba_as_admin(cp: &ControlPlane, args: &[&str]) -> String {
    cp.estiba(args)
}

#[test]
fn ulimits_and_extra_hosts_are_seen_inside_and_the_logs_come_back() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    let env_file = cp.dir.path().join("probe.env");
    std::fs::write(&env_file, "# read on the node\nFROM_FILE=yes\nBOTH=file\n").unwrap();
    let defs = serde_json::json!([{
        "name": "probe", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        "ulimits": [{"name": "nofile", "softLimit": 321, "hardLimit": 654}],
        "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.1.2.3"}],
        "environmentFiles": [{"value": format!("file://{}", env_file.display()), "type": "s3"}],
        "environment": [{"name": "BOTH", "value": "environment"}],
        "linuxParameters": {
            "tmpfs": [{"containerPath": "/scratch", "size": 8, "mountOptions": ["noexec"]}],
            "sharedMemorySize": 4, "maxSwap": 16, "swappiness": 5,
            "devices": [{"hostPath": "/dev/null", "containerPath": "/dev/n2", "permissions": ["read", "write"]}],
        },
        "cpu": 256, "memoryReservation": 8,
        "dockerLabels": {"team": "web"},
        "dnsSearchDomains": ["corp.example"],
        "systemControls": [{"namespace": "kernel.shmmax", "value": "4096"}],
        "command": ["sh", "-c", "echo soft=$(ulimit -n) hard=$(ulimit -Hn); grep db.internal /etc/hosts; echo file=$FROM_FILE both=$BOTH; grep ' /scratch ' /proc/mounts; echo to-stderr >&2; \
            echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares) soft=$(cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes) memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes) swappiness=$(cat /sys/fs/cgroup/memory/memory.swappiness); \
            echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}') shmmax=$(cat /proc/sys/kernel/shmmax) $(grep ^search /etc/resolv.conf); \
            echo x > /dev/n2 && echo device=written"],
    }]);
    cp.register("probe", &defs);
    let arn = run_task(&cp, "probe");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(container(&t, "probe")["exitCode"], 0, "{t}");
    let logs = estiba_task(&cp, &["logs", &arn]);
    assert!(logs.contains("soft=321 hard=654"), "{logs}");
    assert!(logs.contains("file=yes both=environment"), "{logs}");
    // cpu as shares, memoryReservation, memory plus maxSwap, swappiness.
    assert!(
        logs.contains(&format!(
            "shares=256 soft={} memsw={} swappiness=5",
            8 << 20,
            32 << 20
        )),
        "{logs}"
    );
    assert!(
        logs.contains("shm=4096 shmmax=4096 search corp.example"),
        "{logs}"
    );
    assert!(logs.contains("device=written"), "{logs}");
    let name = format!("ecs-{}-probe", arn.rsplit('/').next().unwrap());
    let inspect: Value = serde_json::from_str(&agent.e.ok(&["inspect", &name])).unwrap();
    assert_eq!(inspect[0]["Config"]["Labels"]["team"], "web", "{inspect}");
    let scratch = logs
        .lines()
        .find(|l| l.contains(" /scratch "))
        .unwrap_or_else(|| panic!("no tmpfs: {logs}"));
    assert!(
        scratch.starts_with("tmpfs")
            && scratch.contains("size=8192k")
            && scratch.contains("noexec"),
        "{scratch}"
    );
    assert!(
        logs.contains("10.1.2.3") && logs.contains("db.internal"),
        "{logs}"
    );
    let listed = estiba_task(&cp, &["ls", "--desired-status", "STOPPED"]);
    assert!(listed.contains(arn.rsplit('/').next().unwrap()), "{listed}");
}

/// An awsvpc task of two containers: `probe` reaches `web` on 127.0.0.1,
/// sees the same hostname, and has the address DescribeTasks reports.
fn awsvpc_pair_shares_one_address(cp: &ControlPlane, agent: &Agent, image: &str) {
    let defs = serde_json::json!([
        {
            "name": "web", "image": image, "memory": 32,
            "portMappings": [{"containerPort": 8080}],
            "command": ["sh", "-c", "mkdir /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
        },
        {
            "name": "probe", "image": image, "memory": 16, "essential": false,
            "dependsOn": [{"containerName": "web", "condition": "START"}],
            "command": ["sh", "-c", "until wget -qO /tmp/page http://127.0.0.1:8080/; do sleep 0.2; done; echo page=$(cat /tmp/page) host=$(hostname); ip -4 -o addr; wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task; echo"],
        },
    ]);
    cp.ecs(&[
        "register-task-definition",
        "--family",
        "pair",
        "--network-mode",
        "awsvpc",
        "--container-definitions",
        &defs.to_string(),
    ]);
    let arn = run_task(cp, "pair");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let t = common::poll(
        Duration::from_secs(30),
        || task_of(cp, &arn),
        |t| container(t, "probe")["exitCode"].is_i64(),
    );
    assert_eq!(container(&t, "probe")["exitCode"], 0, "{t}");
    let ip = t["attachments"][0]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "privateIPv4Address")
        .and_then(|d| d["value"].as_str())
        .unwrap_or_else(|| panic!("no address: {t}"))
        .to_string();
    assert_eq!(
        t["attachments"][0]["type"], "ElasticNetworkInterface",
        "{t}"
    );
    assert_eq!(t["attachments"][0]["status"], "ATTACHED", "{t}");
    for c in ["web", "probe"] {
        assert_eq!(
            container(&t, c)["networkInterfaces"][0]["privateIpv4Address"],
            ip.as_str(),
            "{t}"
        );
    }
    let logs = estiba_task(cp, &["logs", &arn, "--container", "probe"]);
    let line = logs
        .lines()
        .find(|l| l.starts_with("page="))
        .unwrap_or_else(|| panic!("{logs}"));
    let (page, host) = line
        .trim_start_matches("page=")
        .split_once(" host=")
        .unwrap();
    assert_eq!(page, host, "one UTS namespace: {logs}");
    assert!(logs.contains(&format!("inet {ip}/")), "{ip} in {logs}");
    // The metadata endpoint answers inside the task's own namespace.
    assert!(
        logs.contains(&format!("\"TaskARN\":\"{arn}\"")),
        "{arn} in {logs}"
    );
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(cp, &arn);
    assert_eq!(t["attachments"][0]["status"], "DELETED", "{t}");
    // ECS's order: the namespace (the ENI) before PENDING, and given back
    // in DEPROVISIONING after the containers stopped.
    let id = arn.rsplit('/').next().unwrap();
    let mut seen: Vec<String> = Vec::new();
    for line in agent
        .log()
        .lines()
        .filter(|l| l.contains(id) && l.contains("reporting"))
    {
        let status = line.rsplit("status=").next().unwrap_or_default();
        let status = status.trim_matches('"').to_string();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
    }
    assert_eq!(
        seen,
        [
            "PENDING",
            "RUNNING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED"
        ],
        "{}",
        agent.log()
    );
}

#[test]
fn an_awsvpc_task_has_one_address_for_all_its_containers() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    awsvpc_pair_shares_one_address(&cp, &agent, "127.0.0.1:51670/busybox:latest");
}

#[test]
fn a_rootless_agent_runs_an_awsvpc_task() {
    if !ready() {
        return;
    }
    let (cp, agent) = rootless_node();
    awsvpc_pair_shares_one_address(&cp, &agent, "127.0.0.1:51670/busybox:latest");
}

/// The shared FARGATE task definition, run as written on the control
/// plane's own capacity: an "nginx" (busybox httpd on port 80) answers at
/// the task's address, and no container instance is there to manage.
#[test]
fn the_fargate_nginx_answers_at_its_task_address() {
    if !ready() {
        return;
    }
    let capacity = Estiba::root();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    capacity.ok(&["import", &tar, "busybox"]);
    let ctx = capacity.scratch("nginx-context");
    std::fs::write(ctx.join("index.html"), "estiba-fargate\n").unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nCOPY index.html /www/index.html\nENTRYPOINT [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    capacity.ok(&["build", "-t", "nginx:latest", ctx.to_str().unwrap()]);
    let cp = ControlPlane::start_fargate(&capacity);
    cp.ecs(&["create-cluster", "--cluster-name", "default"]);
    cp.ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &taskdef("acstd-nginx_fargate"),
    ]);
    // The capacity's agent joins its own control plane once that listens:
    // until then a FARGATE task has nowhere to go.
    let run = [
        "run-task",
        "--task-definition",
        "nginx",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        "awsvpcConfiguration={subnets=[subnet-12345678],assignPublicIp=DISABLED}",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = cp.aws(&cp.admin, &run).output().expect("aws");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success()
            || !err.contains("No FARGATE capacity")
            || std::time::Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let v = cp.ecs(&[
        "list-tasks",
        "--cluster",
        "default",
        "--launch-type",
        "FARGATE",
    ]);
    assert_eq!(
        v["taskArns"].as_array().map(Vec::len),
        Some(1),
        "{v}\n{}",
        cp.log()
    );
    let v = cp.ecs(&[
        "describe-tasks",
        "--cluster",
        "default",
        "--tasks",
        v["taskArns"][0].as_str().unwrap(),
    ]);
    let arn = v["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["launchType"], "FARGATE", "{t}");
    assert!(t.get("containerInstanceArn").is_none(), "{t}");
    let ip = container(&t, "nginx")["networkInterfaces"][0]["privateIpv4Address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address: {t}\n{}", cp.log()))
        .to_string();
    let body = common::poll(
        Duration::from_secs(10),
        || {
            reqwest::blocking::get(format!("http://{ip}/"))
                .and_then(|r| r.text())
                .unwrap_or_default()
        },
        |b| b.contains("estiba-fargate"),
    );
    assert_eq!(body.trim(), "estiba-fargate");
    let instances = cp.ecs(&["list-container-instances"]);
    assert_eq!(
        instances["containerInstanceArns"],
        serde_json::json!([]),
        "{instances}"
    );
    // Fargate's rules: a task definition not made for it is refused.
    let defs = serde_json::json!([{"name": "x", "image": "busybox", "memory": 16}]);
    cp.register("ec2-only", &defs);
    let refused = cp
        .aws(
            &cp.admin,
            &[
                "run-task",
                "--task-definition",
                "ec2-only",
                "--launch-type",
                "FARGATE",
            ],
        )
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("does not support launch_type FARGATE"),
        "{}",
        common::stderr(&refused)
    );
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
}

/// The lines of a task's logs, once one starts with `marker`.
fn logs_with(cp: &ControlPlane, arn: &str, marker: &str) -> String {
    common::poll(
        Duration::from_secs(20),
        || estiba_task(cp, &["logs", arn]),
        |l| l.lines().any(|line| line.starts_with(marker)),
    )
}

#[test]
fn the_metadata_endpoint_v4_answers_a_container_about_its_own_task_only() {
    if !ready() {
        return;
    }
    let (cp, _agent) = single_node(&[]);
    let image = "127.0.0.1:51670/busybox:latest";
    let reader = serde_json::json!([{
        "name": "reader", "image": image, "memory": 16,
        "command": ["sh", "-c", "wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task; echo; wget -qO- $ECS_CONTAINER_METADATA_URI_V4; echo; echo uri=$ECS_CONTAINER_METADATA_URI_V4; exec sleep 600"],
    }]);
    let snoop = serde_json::json!([{
        "name": "snoop", "image": image, "memory": 16,
        "command": ["sh", "-c", "wget -qO- $TARGET/task; echo snooped=$?"],
    }]);
    for (family, defs) in [("reader", reader), ("snoop", snoop)] {
        cp.register(family, &defs);
    }
    let arn = run_task(&cp, "reader");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let logs = logs_with(&cp, &arn, "uri=");
    let mut lines = logs.lines().filter(|l| l.starts_with('{'));
    let task: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {logs}"));
    assert_eq!(task["TaskARN"], arn.as_str(), "{task}");
    assert_eq!(task["Family"], "reader", "{task}");
    assert_eq!(task["Revision"], "1", "{task}");
    assert_eq!(task["Cluster"], "default", "{task}");
    assert_eq!(task["DesiredStatus"], "RUNNING", "{task}");
    assert_eq!(task["Containers"][0]["Name"], "reader", "{task}");
    let own: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {logs}"));
    assert_eq!(own["Name"], "reader", "{own}");
    assert_eq!(
        own["Labels"]["com.amazonaws.ecs.task-arn"],
        arn.as_str(),
        "{own}"
    );
    assert!(
        !own["DockerId"].as_str().unwrap_or_default().is_empty(),
        "{own}"
    );
    let ip = own["Networks"][0]["IPv4Addresses"][0]
        .as_str()
        .unwrap_or_default();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{own}");
    // Another task that learns the reader's URI is refused.
    let uri = logs
        .lines()
        .find_map(|l| l.strip_prefix("uri="))
        .unwrap()
        .to_string();
    assert!(uri.starts_with("http://169.254.170.2/v4/"), "{uri}");
    let overrides = serde_json::json!({"containerOverrides": [{
        "name": "snoop", "environment": [{"name": "TARGET", "value": uri}],
    }]});
    let v = cp.ecs(&[
        "run-task",
        "--task-definition",
        "snoop",
        "--overrides",
        &overrides.to_string(),
    ]);
    let snoop_arn = v["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &snoop_arn]);
    let snooped = logs_with(&cp, &snoop_arn, "snooped=");
    assert!(snooped.contains("snooped=1"), "{snooped}");
    assert!(!snooped.contains("TaskARN"), "{snooped}");
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
}

/// Bridge mode as the ECS agent runs it: `links` resolve by name and
/// alias, `volumesFrom` brings another container's volumes (read-only
/// here), `initProcessEnabled` puts an init at pid 1 that passes SIGTERM
/// on, and a dynamic host port answers.
#[test]
fn links_volumes_from_and_an_init_are_seen_inside_the_containers() {
    if !ready() {
        return;
    }
    let (cp, _agent) = single_node(&[]);
    let image = "127.0.0.1:51670/busybox:latest";
    let defs = serde_json::json!([
        {
            "name": "web", "image": image, "memory": 32, "stopTimeout": 2,
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}],
            "command": ["sh", "-c", "mkdir -p /www && echo linked-web > /www/index.html && echo volume-token > /data/token && exec httpd -f -p 80 -h /www"],
        },
        {
            "name": "client", "image": image, "memory": 16,
            "links": ["web:frontend"],
            "volumesFrom": [{"sourceContainer": "web", "readOnly": true}],
            "linuxParameters": {"initProcessEnabled": true},
            "command": ["sh", "-c", "until wget -qO /tmp/page http://frontend/; do sleep 0.2; done; echo page=$(cat /tmp/page); echo token=$(cat /data/token); echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); touch /data/x 2>/dev/null && echo mode=rw || echo mode=ro; grep -w web /etc/hosts; exec sleep 600"],
        },
    ]);
    cp.ecs(&[
        "register-task-definition",
        "--family",
        "linked",
        "--volumes",
        r#"[{"name": "shared"}]"#,
        "--container-definitions",
        &defs.to_string(),
    ]);
    let arn = run_task(&cp, "linked");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let logs = logs_with(&cp, &arn, "mode=");
    assert!(logs.contains("page=linked-web"), "{logs}");
    assert!(logs.contains("token=volume-token"), "{logs}");
    assert!(
        logs.contains("pid1=/sbin/estiba-init --init sh -c"),
        "{logs}"
    );
    assert!(logs.contains("mode=ro"), "{logs}");
    assert!(logs.contains("frontend"), "{logs}");
    let t = task_of(&cp, &arn);
    let port = container(&t, "web")["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap_or_else(|| panic!("no host port: {t}"));
    let body = common::poll(
        Duration::from_secs(10),
        || {
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/"))
                .and_then(|r| r.text())
                .unwrap_or_default()
        },
        |b| b.contains("linked-web"),
    );
    assert_eq!(body.trim(), "linked-web");
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    // The init passed SIGTERM on to sleep (143), rather than being killed
    // after the stop timeout (137).
    assert_eq!(container(&t, "client")["exitCode"], 143, "{t}");
}

/// `secrets` as ECS injects them: environment variables, from cluster
/// secrets that `valueFrom` names directly or as the end of an ARN; never
/// in DescribeTasks, the store or the logs of the control plane and agent.
#[test]
fn secrets_reach_the_container_as_environment_and_nowhere_else() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    let (password, token) = ("pw-4f9a2c71e0", "tok-88d1b3a6c2");
    for (name, value) in [("db-password", password), ("api-token", token)] {
        let file = cp.dir.path().join(name);
        std::fs::write(&file, value).unwrap();
        let out = cp.admin_cmd(&[
            "secret",
            "create",
            name,
            "--from-file",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        std::fs::remove_file(&file).unwrap();
    }
    let listed = common::stdout(&cp.admin_cmd(&["secret", "ls"]));
    assert!(
        listed.contains("db-password") && !listed.contains(password),
        "{listed}"
    );
    let defs = serde_json::json!([{
        "name": "app", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        "secrets": [
            {"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-password-AbCdEf"},
            {"name": "API_TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/prod/api-token"},
        ],
        "command": ["sh", "-c", "echo seen=$DB_PASSWORD/$API_TOKEN"],
    }]);
    cp.register("secretive", &defs);
    let arn = run_task(&cp, "secretive");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let logs = logs_with(&cp, &arn, "seen=");
    assert!(logs.contains(&format!("seen={password}/{token}")), "{logs}");
    let described = cp.ecs(&["describe-tasks", "--tasks", &arn]).to_string();
    for value in [password, token] {
        assert!(!described.contains(value), "DescribeTasks shows a secret");
        assert!(
            !cp.log().contains(value),
            "the control plane logged a secret"
        );
        assert!(!agent.log().contains(value), "the agent logged a secret");
        let hits = common::files_containing(&cp.data(), value.as_bytes());
        assert!(
            hits.is_empty(),
            "in clear in the control plane's data: {hits:?}"
        );
    }
    // A valueFrom that names no secret: the task fails to start, saying which.
    let defs = serde_json::json!([{
        "name": "app", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        "secrets": [{"name": "X", "valueFrom": "no-such-secret"}],
        "command": ["true"],
    }]);
    cp.register("missing", &defs);
    let arn = run_task(&cp, "missing");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    let reason = t["stoppedReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ResourceInitializationError") && reason.contains("no-such-secret"),
        "{reason}"
    );
}

/// `restartPolicy`: a container that fails after running the attempt
/// period is started again in place (its writable layer kept); an ignored
/// exit code then ends the task as an essential exit.
#[test]
fn a_restart_policy_restarts_a_container_in_place() {
    if !ready() {
        return;
    }
    let (cp, _agent) = single_node(&[]);
    // Debian's AWS CLI (2.9) predates restartPolicy: the native CLI sends it.
    let td = serde_json::json!({"family": "flaky", "containerDefinitions": [{
        "name": "flaky", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
        "command": ["sh", "-c", "n=$(( $(cat /tmp/n 2>/dev/null || echo 0) + 1 )); echo $n > /tmp/n; echo run=$n; [ $n -ge 2 ] && exit 0; sleep 61; exit 3"],
    }]});
    let file = cp.dir.path().join("flaky.json");
    std::fs::write(&file, td.to_string()).unwrap();
    estiba_as_admin(&cp, &["taskdef", "register", "-f", file.to_str().unwrap()]);
    let arn = run_task(&cp, "flaky");
    let t = common::poll(
        Duration::from_secs(120),
        || task_of(&cp, &arn),
        |t| t["lastStatus"] == "STOPPED",
    );
    assert_eq!(t["lastStatus"], "STOPPED", "{t}");
    assert_eq!(t["stopCode"], "EssentialContainerExited", "{t}");
    assert_eq!(container(&t, "flaky")["exitCode"], 0, "{t}");
    let logs = estiba_task(&cp, &["logs", &arn]);
    assert!(logs.contains("run=1") && logs.contains("run=2"), "{logs}");
}

/// `--registries-conf`: an image the task names on Docker Hub, which
/// cannot be reached here, comes through the mirror podman's format names
/// (an estiba registry on loopback), and is kept under the task's name.
#[test]
fn images_come_through_a_registries_conf_mirror() {
    if !ready() {
        return;
    }
    let registry = common::registry::Registry::start(common::registry::OPEN);
    let pusher = Estiba::root().with_busybox();
    let mirrored = format!("{}/hub/library/nginx:latest", registry.addr);
    pusher.ok(&["push", "--tls-verify=false", "busybox", &mirrored]);
    let cp = ControlPlane::start(&[]);
    let conf = cp.dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{}/hub\"\n",
            registry.addr
        ),
    )
    .unwrap();
    // A node with nothing cached.
    let agent = Agent::start(
        Estiba::root(),
        &cp,
        &["--registries-conf", conf.to_str().unwrap()],
    );
    let defs = serde_json::json!([{
        "name": "web", "image": "nginx:latest", "memory": 16,
        "command": ["sh", "-c", "echo mirrored-image"],
    }]);
    cp.register("mirrored", &defs);
    let arn = run_task(&cp, "mirrored");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(container(&t, "web")["exitCode"], 0, "{t}\n{}", agent.log());
    let logs = logs_with(&cp, &arn, "mirrored-image");
    assert!(logs.contains("mirrored-image"), "{logs}");
    assert!(
        agent.log().contains("pulled through a mirror"),
        "{}",
        agent.log()
    );
    let images = agent.e.ok(&["images"]);
    assert!(images.contains("nginx"), "{images}");
}

/// A registry where only `ci` may pull or push `private/*`.
const PRIVATE_REGISTRY: &str = r#"
[[policy]]
repositories = "private/*"
users = ["ci"]
actions = ["pull", "push"]
"#;

/// `repositoryCredentials`: the image's registry wants a login, which a
/// cluster secret holds in Secrets Manager's shape (`{"username",
/// "password"}`). Without it the pull is refused, and the task says so.
#[test]
fn repository_credentials_log_in_to_a_private_registry() {
    if !ready() {
        return;
    }
    let registry = common::registry::Registry::start(PRIVATE_REGISTRY);
    registry.add_user("ci", "ci-secret-7d1e", &[]);
    let pusher = Estiba::root().with_busybox();
    let auth = pusher.scratch("auth").join("auth.json");
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().unwrap())];
    let image = format!("{}/private/app:1", registry.addr);
    for args in [
        vec![
            "login",
            "--tls-verify=false",
            "-u",
            "ci",
            "-p",
            "ci-secret-7d1e",
            registry.addr.as_str(),
        ],
        vec!["push", "--tls-verify=false", "busybox", &image],
    ] {
        let out = pusher.cmd_env(&env, &args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
    }
    let cp = ControlPlane::start(&[]);
    let login = cp.dir.path().join("login.json");
    std::fs::write(
        &login,
        r#"{"username": "ci", "password": "ci-secret-7d1e"}"#,
    )
    .unwrap();
    let out = cp.admin_cmd(&[
        "secret",
        "create",
        "registry-login",
        "--from-file",
        login.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // A node with nothing cached and no logins of its own.
    let _agent = Agent::start(Estiba::root(), &cp, &[]);
    let container_def = |creds: bool| {
        let mut d = serde_json::json!({
            "name": "app", "image": image, "memory": 16,
            "command": ["sh", "-c", "echo private-pull"],
        });
        if creds {
            d["repositoryCredentials"] = serde_json::json!({
                "credentialsParameter": "arn:aws:secretsmanager:us-east-1:000000000000:secret:registry-login-Ab12Cd"
            });
        }
        serde_json::json!([d])
    };
    cp.register("anonymous", &container_def(false));
    let arn = run_task(&cp, "anonymous");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    let reason = t["stoppedReason"].as_str().unwrap_or_default();
    assert!(reason.contains("CannotPullContainerError"), "{t}");
    cp.register("private", &container_def(true));
    let arn = run_task(&cp, "private");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(container(&t, "app")["exitCode"], 0, "{t}");
    assert!(logs_with(&cp, &arn, "private-pull").contains("private-pull"));
    assert!(
        !t.to_string().contains("ci-secret-7d1e"),
        "the password is never shown: {t}"
    );
}

/// A control plane over HTTPS with a private CA: an agent joins only when
/// told to trust that CA (`--ca-cert`), and the AWS CLI and the native CLI
/// use it through `AWS_CA_BUNDLE`.
#[test]
fn an_agent_joins_a_tls_control_plane_only_through_its_ca() {
    if !ready() || !require_tool("openssl") {
        return;
    }
    let cp = ControlPlane::start_tls();
    let ca = cp.ca.clone().unwrap();
    // Without the CA, the join is refused for the certificate, and the
    // agent says so and exits.
    let untrusting = Estiba::root();
    let out = untrusting
        .cmd(&["agent", "--server", &cp.url(), "--token", &cp.token()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", common::stderr(&out));
    let err = common::stderr(&out).to_lowercase();
    assert!(err.contains("certificate"), "{err}");
    assert!(!untrusting.path().join("data/agent/node.json").exists());
    let trusting = Estiba::root();
    let busybox = common::busybox_tar().to_str().unwrap().to_string();
    trusting.ok(&["import", &busybox, "127.0.0.1:51670/busybox:latest"]);
    let _agent = Agent::start(trusting, &cp, &["--ca-cert", ca.to_str().unwrap()]);
    let defs = serde_json::json!([{
        "name": "app", "image": "127.0.0.1:51670/busybox:latest", "memory": 16,
        "command": ["sh", "-c", "echo over-tls"],
    }]);
    cp.register("tls", &defs);
    let arn = run_task(&cp, "tls");
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(container(&t, "app")["exitCode"], 0, "{t}");
    // The native CLI speaks HTTP/2 over TLS (ALPN), where no Host header
    // exists: its signature covers `:authority` as `host`.
    assert!(logs_with(&cp, &arn, "over-tls").contains("over-tls"));
}

/// `pidMode: task` and `ipcMode: task` under bridge: the task's containers
/// share one pid and one IPC namespace (a pod's, without its network),
/// each keeping its own network.
#[test]
fn bridge_containers_share_the_tasks_pid_and_ipc_namespaces() {
    if !ready() {
        return;
    }
    let (cp, agent) = single_node(&[]);
    let image = "127.0.0.1:51670/busybox:latest";
    let defs = serde_json::json!([
        {
            "name": "holder", "image": image, "memory": 16,
            "command": ["sh", "-c", "echo holder-ipc=$(readlink /proc/self/ns/ipc) holder-net=$(readlink /proc/self/ns/net); exec sleep 3602"],
        },
        {
            "name": "peer", "image": image, "memory": 16, "essential": false,
            "dependsOn": [{"containerName": "holder", "condition": "START"}],
            "pseudoTerminal": true, "interactive": true,
            "command": ["sh", "-c", "until ps -o args | grep -q '^sleep 3602'; do sleep 0.2; done; echo peer-ipc=$(readlink /proc/self/ns/ipc) peer-net=$(readlink /proc/self/ns/net) peer-tty=$(tty) saw=holder"],
        },
    ]);
    cp.ecs(&[
        "register-task-definition",
        "--family",
        "shared-ns",
        "--pid-mode",
        "task",
        "--ipc-mode",
        "task",
        "--container-definitions",
        &defs.to_string(),
    ]);
    let arn = run_task(&cp, "shared-ns");
    cp.ecs(&["wait", "tasks-running", "--tasks", &arn]);
    let logs = logs_with(&cp, &arn, "saw=holder");
    let field = |key: &str| {
        logs.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {logs}\n{}", agent.log()))
            .to_string()
    };
    assert_eq!(field("holder-ipc="), field("peer-ipc="), "{logs}");
    assert_ne!(field("holder-net="), field("peer-net="), "{logs}");
    // pseudoTerminal: the peer's output came through a terminal.
    assert_eq!(field("peer-tty="), "/dev/pts/0", "{logs}");
    cp.ecs(&["stop-task", "--task", &arn]);
    cp.ecs(&["wait", "tasks-stopped", "--tasks", &arn]);
    let t = task_of(&cp, &arn);
    assert_eq!(t["stopCode"], "UserInitiated", "{t}");
}
