//! Detached containers and their monitor, as root and as a fresh user:
//! survival after the CLI exits, logs, stop, kill, rm cleanup, restart
//! policies, and records that tell the truth after a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, wait_until, Estiba};
use std::time::{Duration, Instant};

const TICKER: &str = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";

fn inspect(e: &Estiba, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// The container's record as the engine keeps it (with what `inspect`
/// leaves out, such as the monitor's pid); `None` while it is rewritten.
fn record(e: &Estiba, id: &str) -> Option<serde_json::Value> {
    let path = e
        .path()
        .join("data/containers")
        .join(id)
        .join("container.json");
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn check_detached(e: &Estiba) {
    let who = e.label();
    let id = e
        .ok(&[
            "run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKER,
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "[{who}] run -d prints the full id: {id}");
    // The CLI has exited; the container goes on.
    wait_until("ticks in the log", Duration::from_secs(10), || {
        e.ok(&["logs", "ticker"]).lines().count() >= 3
    });
    let ps = e.ok(&["ps"]);
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up "),
        "[{who}] ps: {ps}"
    );
    assert_eq!(e.ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    let state = inspect(e, &id[..8]);
    assert_eq!(state["State"]["Status"], "running", "[{who}] by id prefix");
    let pid = state["State"]["Pid"].as_i64().unwrap();
    assert!(alive(pid), "[{who}] the container's pid is alive");
    let tail = e.ok(&["logs", "--tail", "1", "ticker"]);
    assert_eq!(tail.lines().count(), 1, "[{who}] --tail 1: {tail}");
    let stamped = e.ok(&["logs", "-t", "--tail", "1", "ticker"]);
    assert!(
        stamped.starts_with("20") && stamped.contains("Z tick"),
        "[{who}] -t: {stamped}"
    );

    // `logs -f` follows until the container stops.
    let mut follower = e
        .cmd(&["logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Following once its first line arrives.
    let mut follower_out = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut follower_out, &mut first).unwrap();
    let started = Instant::now();
    e.ok(&["stop", "-t", "2", "ticker"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "[{who}] stop took {took:?} with -t 2"
    );
    let mut followed = first;
    std::io::Read::read_to_string(&mut follower_out, &mut followed).unwrap();
    follower.wait().unwrap();
    assert!(
        followed.lines().count() >= 5,
        "[{who}] logs -f saw {followed}"
    );

    let state = inspect(e, "ticker");
    assert_eq!(state["State"]["Status"], "exited");
    assert_eq!(
        state["State"]["ExitCode"], 137,
        "[{who}] sh ignores TERM as PID 1: killed after the timeout"
    );
    assert!(!alive(pid), "[{who}] the container's process is gone");
    let ps = e.ok(&["ps"]);
    assert!(
        !ps.contains(&id[..12]),
        "[{who}] ps without -a lists a stopped container"
    );
    assert!(e.ok(&["ps", "-a"]).contains("Exited (137)"));

    // A handled TERM stops quickly with the command's own code.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    let started = Instant::now();
    e.ok(&["stop", "polite"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "[{who}] stop waited for the timeout"
    );
    assert_eq!(
        inspect(e, "polite")["State"]["ExitCode"],
        7,
        "[{who}] stop returned before the exit was recorded"
    );
    assert_eq!(e.ok(&["wait", "polite"]).trim(), "7");

    // Names are unique; rm refuses a running container without -f.
    e.ok(&["start", "ticker"]);
    check_exec(e);
    let out = e.run(&["run", "-d", "--name", "ticker", "busybox", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "[{who}] duplicate name accepted"
    );
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    let out = e.run(&["rm", "ticker"]);
    assert!(!out.status.success(), "[{who}] rm of a running container");
    let pid = inspect(e, "ticker")["State"]["Pid"].as_i64().unwrap();
    e.ok(&["rm", "-f", "ticker"]);
    assert!(!alive(pid));
    check_no_leftovers(e, &id);
    e.ok(&["rm", "polite"]);
    assert!(e.ok(&["ps", "-a", "-q"]).trim().is_empty());
}

/// exec joins the container: its processes only, its users, its seccomp.
fn check_exec(e: &Estiba) {
    let who = e.label();
    let ps = e.ok(&["exec", "ticker", "ps", "-o", "pid,args"]);
    let pids: Vec<&str> = ps
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(
        pids.contains(&"1") && pids.len() <= 5,
        "[{who}] exec ps sees more than the container: {ps}"
    );
    assert!(
        ps.lines().nth(1).unwrap().contains("sh -c"),
        "[{who}] PID 1 is the container's command: {ps}"
    );
    let id = e.ok(&["exec", "-u", "1000", "ticker", "id"]);
    assert!(id.starts_with("uid=1000(user)"), "[{who}] exec -u: {id}");
    let status = e.ok(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "ticker",
        "sh",
        "-c",
        "echo $X $(pwd); cat /proc/self/status",
    ]);
    assert!(
        status.starts_with("1 /tmp\n"),
        "[{who}] exec env and workdir: {status}"
    );
    assert!(
        status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1"),
        "[{who}] exec outside seccomp: {status}"
    );
    assert_eq!(
        e.run(&["exec", "ticker", "sh", "-c", "exit 5"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        e.run(&["exec", "ticker", "no-such-command"]).status.code(),
        Some(127)
    );
    e.ok(&["exec", "-d", "ticker", "sleep", "1"]);
}

/// After `rm -f`: no mount, cgroup, process or file of the container remains.
fn check_no_leftovers(e: &Estiba, id: &str) {
    let who = e.label();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(id),
        "[{who}] a mount of the container remains"
    );
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let leftover = controller.path().join("estiba").join(id);
        assert!(!leftover.exists(), "[{who}] cgroup {leftover:?} remains");
    }
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(proc.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline);
            assert!(
                !text.contains(id),
                "[{who}] a process of the container remains: {text}"
            );
        }
    }
    assert!(
        !e.path().join("data/containers").join(id).exists(),
        "[{who}] the container's files remain"
    );
}

fn check_restart(e: &Estiba) {
    let who = e.label();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "crasher",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo boom; exit 3",
    ]);
    assert_eq!(e.ok(&["wait", "crasher"]).trim(), "3");
    let state = inspect(e, "crasher");
    assert_eq!(state["RestartCount"], 3, "[{who}] restarts: {state}");
    assert_eq!(
        e.ok(&["logs", "crasher"]).matches("boom").count(),
        4,
        "[{who}] first run and three restarts"
    );
    e.ok(&["rm", "crasher"]);

    e.ok(&[
        "run",
        "-d",
        "--name",
        "forever",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid = inspect(e, "forever")["State"]["Pid"].as_i64().unwrap();
    // kill -9 from the host, not through estiba: the policy brings it back.
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("a restart", Duration::from_secs(10), || {
        let s = inspect(e, "forever");
        s["State"]["Status"] == "running" && s["State"]["Pid"].as_i64() != Some(pid)
    });
    assert!(inspect(e, "forever")["RestartCount"].as_u64().unwrap() >= 1);
    // `stop` is not a crash: no restart after it. The monitor decides, and
    // once it has ended (its pid cleared) the container cannot come back.
    let id = inspect(e, "forever")["Id"].as_str().unwrap().to_string();
    e.ok(&["stop", "-t", "1", "forever"]);
    wait_until("the monitor to end", Duration::from_secs(10), || {
        record(e, &id).is_some_and(|r| r["State"]["MonitorPid"] == 0)
    });
    assert_eq!(
        inspect(e, "forever")["State"]["Status"],
        "exited",
        "[{who}] restarted after stop"
    );
    e.ok(&["rm", "forever"]);
}

fn check_truth_after_crash(e: &Estiba) {
    let who = e.label();
    e.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]);
    let state = inspect(e, "orphan");
    let pid = state["State"]["Pid"].as_i64().unwrap();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            e.path()
                .join("data/containers")
                .join(state["Id"].as_str().unwrap())
                .join("container.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let monitor = record["State"]["MonitorPid"].as_i64().unwrap();
    assert!(monitor > 0 && alive(monitor));
    // kill -9 of the monitor: the container itself still runs, and ps says so.
    assert!(std::process::Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("the monitor to be gone", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{monitor}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    });
    assert!(
        e.ok(&["ps"]).contains("orphan"),
        "[{who}] a running container vanished from ps"
    );
    // Then the container dies too: ps -a reports it exited, not running.
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("the record to reconcile", Duration::from_secs(10), || {
        !e.ok(&["ps"]).contains("orphan")
    });
    assert!(e.ok(&["ps", "-a"]).contains("Exited"), "[{who}]");
    // A wiped runtime directory (a reboot) loses no record.
    e.ok(&["run", "-d", "--name", "after-wipe", "busybox", "true"]);
    e.ok(&["wait", "after-wipe"]);
    let _ = std::fs::remove_dir_all(e.path().join("run/runtime"));
    let all = e.ok(&["ps", "-a"]);
    assert!(
        all.contains("after-wipe") && all.contains("orphan"),
        "[{who}] {all}"
    );
    e.ok(&["rm", "-f", "orphan", "after-wipe"]);
}

#[test]
fn exec_refuses_a_backend_that_would_drop_seccomp() {
    if !common::require_root("exec refusal test") {
        return;
    }
    let e = Estiba::root().with_busybox();
    e.ok(&[
        "run",
        "-d",
        "--runtime",
        "libcontainer",
        "--name",
        "lc",
        "busybox",
        "sleep",
        "100",
    ]);
    let out = e.run(&["exec", "lc", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("seccomp"), "{}", stderr(&out));
    e.ok(&["rm", "-f", "lc"]);
}

/// Detached containers, restarts and the truth after a crash, as three
/// tests: the in-process default and runc as root, and rootless.
fn detached_containers(e: &Estiba) {
    check_detached(e);
    check_restart(e);
    check_truth_after_crash(e);
}

on_every_backend!(detached_containers);

fn named_volumes(e: &Estiba) {
    let who = e.label();
    // A new volume is filled from the image, and outlives its container.
    e.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "state:/etc",
        "busybox",
        "sh",
        "-c",
        "echo kept > /etc/note",
    ]);
    e.ok(&["rm", "writer"]);
    let out = e.ok(&[
        "run",
        "--rm",
        "-v",
        "state:/data",
        "busybox",
        "sh",
        "-c",
        "cat /data/note; grep -c root /data/passwd",
    ]);
    assert_eq!(out, "kept\n1\n", "[{who}] volume content: {out}");
    // Read-only refuses writes.
    let out = e.run(&[
        "run",
        "--rm",
        "-v",
        "state:/data:ro",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("Read-only"),
        "[{who}] :ro volume is writable"
    );
    let out = e.run(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=state,target=/data,readonly",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert!(
        !out.status.success(),
        "[{who}] --mount readonly is writable"
    );
    // In use: rm is refused; once free, it goes.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "state:/data",
        "busybox",
        "sleep",
        "100",
    ]);
    let out = e.run(&["volume", "rm", "state"]);
    assert!(
        !out.status.success() && stderr(&out).contains("in use"),
        "[{who}] {}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "user"]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]).trim(), "state");
    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["volume", "inspect", "state"])).unwrap();
    assert_eq!(inspect[0]["Driver"], "local");
    e.ok(&["volume", "rm", "state"]);
    assert!(e.ok(&["volume", "ls", "-q"]).trim().is_empty());
    // tmpfs mounts.
    let out = e.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts",
    ]);
    assert!(
        out.contains("tmpfs") && out.contains("size=1024k") && out.contains("noexec"),
        "[{who}] tmpfs: {out}"
    );
    let out = e.run(&["run", "--rm", "-v", "bad name:/x", "busybox", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "[{who}] a bad volume name is accepted"
    );
}

root_and_rootless!(named_volumes);

fn encrypted_volumes(e: &Estiba) {
    let who = e.label();
    e.ok(&["volume", "create", "--encrypt", "sec"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["volume", "inspect", "sec"])).unwrap();
    assert_eq!(inspect[0]["Encryption"]["Backend"], "gocryptfs", "[{who}]");
    let dir = e.path().join("data/volumes/sec");
    let marker = format!("estiba-plaintext-{}", std::process::id());
    e.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "sec:/data",
        "busybox",
        "sh",
        "-c",
        &format!("echo {marker} > /data/f; exec sleep 300"),
    ]);
    wait_until("the holder's write", Duration::from_secs(20), || {
        e.run(&["exec", "holder", "cat", "/data/f"])
            .stdout
            .starts_with(marker.as_bytes())
    });
    assert!(
        common::files_containing(&dir, marker.as_bytes()).is_empty(),
        "[{who}] the plaintext reached the volume's files"
    );
    // A second container shares the open volume; a non-root user in it
    // reads it too.
    let out = e.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "-v",
        "sec:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out.trim(), marker, "[{who}]");
    // Across a restart of the container.
    e.ok(&["restart", "-t", "1", "holder"]);
    let out = e.ok(&["exec", "holder", "cat", "/data/f"]);
    assert_eq!(out.trim(), marker, "[{who}] after restart");
    e.ok(&["stop", "-t", "1", "holder"]);
    if e.user.is_none() {
        // Closed once its last container stopped (as root the mount is
        // in this namespace; rootless it is in the user's own).
        let plain = dir.join("_data");
        wait_until("the volume to close", Duration::from_secs(20), || {
            !std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(plain.to_str().unwrap())
        });
    }
    // Opened again by the next container.
    let out = e.ok(&[
        "run",
        "--rm",
        "-v",
        "sec:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out.trim(), marker, "[{who}] reopened");
    assert!(
        common::files_containing(&dir, marker.as_bytes()).is_empty(),
        "[{who}]"
    );
    // rm destroys the key with the ciphertext.
    let out = e.run(&["volume", "rm", "sec"]);
    assert!(!out.status.success(), "[{who}] rm of a volume in use");
    e.ok(&["rm", "holder"]);
    e.ok(&["volume", "rm", "sec"]);
    assert!(!dir.exists(), "[{who}] the volume's files remain");
    assert!(!e.run(&["volume", "inspect", "sec"]).status.success());

    // Bad input, and what cannot be done here, is refused by name.
    let out = e.run(&[
        "volume",
        "create",
        "--encrypt",
        "--encryption",
        "rot13",
        "x1",
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("gocryptfs or luks2"),
        "[{who}] {}",
        stderr(&out)
    );
    let out = e.run(&[
        "volume",
        "create",
        "--encrypt",
        "--encryption",
        "luks2",
        "x2",
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("LUKS2"),
        "[{who}] {}",
        stderr(&out)
    );
    let out = e.run(&["volume", "create", "--size", "1G", "x3"]);
    assert!(!out.status.success(), "[{who}] --size without --encrypt");
    e.ok(&["volume", "create", "plain"]);
    let out = e.run(&["volume", "create", "--encrypt", "plain"]);
    assert!(
        !out.status.success() && stderr(&out).contains("unencrypted"),
        "[{who}] {}",
        stderr(&out)
    );
    assert_eq!(e.ok(&["volume", "ls", "-q"]).trim(), "plain", "[{who}]");
}

root_and_rootless!(encrypted_volumes);

fn health_checks_turn_unhealthy(e: &Estiba) {
    let who = e.label();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--health-cmd",
        "test ! -f /tmp/broken",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 3; touch /tmp/broken; sleep 100",
    ]);
    wait_until("healthy", Duration::from_secs(3), || {
        inspect(e, "checked")["State"]["Health"]["Status"] == "healthy"
    });
    assert!(
        e.ok(&["ps"]).contains("(healthy)"),
        "[{who}] ps shows health"
    );
    wait_until("unhealthy", Duration::from_secs(10), || {
        inspect(e, "checked")["State"]["Health"]["Status"] == "unhealthy"
    });
    let health = &inspect(e, "checked")["State"]["Health"];
    assert!(
        health["FailingStreak"].as_u64().unwrap() >= 2,
        "[{who}] {health}"
    );
    assert!(health["Log"].as_array().unwrap().len() <= 5);
    assert!(e.ok(&["ps"]).contains("(unhealthy)"));
    e.ok(&["rm", "-f", "checked"]);
    let out = e.run(&[
        "run",
        "--rm",
        "--health-interval",
        "soon",
        "busybox",
        "true",
    ]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "[{who}] a bad duration is accepted"
    );
}

root_and_rootless!(health_checks_turn_unhealthy);

fn secrets_reach_the_container_and_nowhere_else(e: &Estiba) {
    let secret = "correct-horse-battery-staple-4711";
    let who = e.label();
    let mut create = e
        .cmd(&["secret", "create", "api-key", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(create.stdin.as_mut().unwrap(), secret.as_bytes()).unwrap();
    drop(create.stdin.take());
    assert!(create.wait_with_output().unwrap().status.success());
    assert!(e.ok(&["secret", "ls"]).contains("api-key"));
    e.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--secret",
        "api-key",
        "-u",
        "1000",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 100",
    ]);
    assert_eq!(
        e.ok(&["exec", "holder", "cat", "/run/secrets/api-key"]),
        secret,
        "[{who}] the secret's content"
    );
    let mode = e.ok(&[
        "exec",
        "holder",
        "stat",
        "-c",
        "%a %u",
        "/run/secrets/api-key",
    ]);
    assert_eq!(
        mode.trim(),
        "400 1000",
        "[{who}] only the container's user reads it"
    );
    assert!(
        !e.run(&[
            "exec",
            "holder",
            "sh",
            "-c",
            "echo x > /run/secrets/api-key"
        ])
        .status
        .success(),
        "[{who}] writable"
    );
    let pid = inspect(e, "holder")["State"]["Pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains(secret),
        "[{who}] in the environment"
    );
    let inspected = e.ok(&["inspect", "holder"]);
    assert!(
        !inspected.contains(secret) && inspected.contains("api-key"),
        "[{who}] inspect"
    );
    assert!(!e.ok(&["logs", "holder"]).contains(secret), "[{who}] logs");
    let leaks = common::files_containing(e.path(), secret.as_bytes());
    assert!(
        leaks.is_empty(),
        "[{who}] the secret is on disk in clear: {leaks:?}"
    );
    let out = e.run(&["secret", "rm", "api-key"]);
    assert!(
        !out.status.success() && stderr(&out).contains("in use"),
        "[{who}] removed while in use"
    );
    e.ok(&["rm", "-f", "holder"]);
    e.ok(&["secret", "rm", "api-key"]);
    let out = e.run(&["run", "--rm", "--secret", "api-key", "busybox", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "[{who}] a missing secret is accepted"
    );
}

root_and_rootless!(secrets_reach_the_container_and_nowhere_else);

fn pods_share_network_and_hostname(e: &Estiba) {
    let who = e.label();
    e.ok(&["pod", "create", "--name", "web", "--hostname", "webhost"]);
    e.ok(&[
        "run", "-d", "--pod", "web", "--name", "server", "busybox", "httpd", "-f", "-p", "8080",
        "-h", "/var/www",
    ]);
    let page = e.ok(&["run", "--rm", "--pod", "web", "busybox", "sh", "-c", "hostname; for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://127.0.0.1:8080/ && exit 0; sleep 0.2; done; exit 1"]);
    assert_eq!(
        page, "webhost\n<h1>hello from estiba</h1>\n",
        "[{who}] pod peers on 127.0.0.1"
    );
    assert_eq!(e.ok(&["exec", "server", "hostname"]).trim(), "webhost");
    // Outside the pod, the server is not reachable.
    let out = e.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "wget -q -O- http://127.0.0.1:8080/",
    ]);
    assert!(
        !out.status.success(),
        "[{who}] a container outside the pod reached it"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["pod", "inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["Containers"].as_array().unwrap().len(), 1);
    assert!(e.ok(&["pod", "ls"]).contains("Running"));
    let infra = inspect[0]["InfraPid"].as_i64().unwrap();
    // Removing the pod removes its containers and its infra.
    e.ok(&["pod", "rm", "-f", "web"]);
    assert!(
        e.ok(&["ps", "-a", "-q"]).trim().is_empty(),
        "[{who}] a pod's container outlived it"
    );
    wait_until("the infra to exit", Duration::from_secs(5), || {
        !alive(infra)
    });

    e.ok(&["pod", "create", "--name", "pids", "--share", "pid"]);
    e.ok(&[
        "run", "-d", "--pod", "pids", "--name", "sleeper", "busybox", "sleep", "100",
    ]);
    let ps = e.ok(&[
        "run", "--rm", "--pod", "pids", "busybox", "ps", "-o", "args",
    ]);
    assert!(ps.contains("sleep 100"), "[{who}] --share pid: {ps}");
    e.ok(&["pod", "rm", "-f", "pids"]);
    let out = e.run(&["run", "--rm", "--pod", "nope", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
}

root_and_rootless!(pods_share_network_and_hostname);

/// `--init`: estiba's init is pid 1, passes SIGTERM on to a command that
/// would ignore it as pid 1, and exits as the command did.
fn an_init_passes_signals_on_and_keeps_the_exit_code(e: &Estiba) {
    let who = e.label();
    let pid1 = e.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline",
    ]);
    assert!(
        pid1.starts_with("/sbin/estiba-init --init sh -c"),
        "[{who}] pid 1: {pid1}"
    );
    let out = e.run(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "[{who}]");
    e.ok(&[
        "run", "-d", "--init", "--name", "sleeper", "busybox", "sleep", "600",
    ]);
    // With no init, sleep as pid 1 ignores SIGTERM and is killed after
    // the timeout (137); through the init it ends on SIGTERM (143).
    e.ok(&["stop", "-t", "20", "sleeper"]);
    let code = inspect(e, "sleeper")["State"]["ExitCode"].clone();
    assert_eq!(code, 143, "[{who}] exit code after stop");
    e.ok(&["rm", "sleeper"]);
}

root_and_rootless!(an_init_passes_signals_on_and_keeps_the_exit_code);

/// `-t`: the container's output goes through a terminal (checked from
/// inside), and is still logged. `-i`: stdin stays open, so a reader
/// blocks instead of reading an end at once.
fn a_terminal_and_an_open_stdin_are_given_when_asked(e: &Estiba) {
    let who = e.label();
    let tty = e.ok(&[
        "run",
        "-d",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && echo both-ttys; echo TERM=$TERM",
    ]);
    let tty = tty.trim();
    e.ok(&["wait", tty]);
    let logs = e.ok(&["logs", tty]);
    assert!(logs.contains("/dev/pts/0"), "[{who}] {logs:?}");
    assert!(logs.contains("both-ttys"), "[{who}] {logs:?}");
    assert!(logs.contains("TERM=xterm"), "[{who}] {logs:?}");
    assert_eq!(inspect(e, tty)["Config"]["Tty"], true, "[{who}]");
    let probe = "timeout 2 cat; echo status=$?";
    let open = e.ok(&["run", "-d", "-i", "busybox", "sh", "-c", probe]);
    let closed = e.ok(&["run", "-d", "busybox", "sh", "-c", probe]);
    for id in [&open, &closed] {
        e.ok(&["wait", id.trim()]);
    }
    let status = |id: &str| e.ok(&["logs", id.trim()]).trim().to_string();
    // busybox's timeout ends cat with SIGTERM: 143.
    assert_eq!(status(&open), "status=143", "[{who}] an open stdin blocks");
    assert_eq!(status(&closed), "status=0", "[{who}] an empty stdin ends");
    let refused = e.run(&["run", "-t", "busybox", "true"]);
    assert!(!refused.status.success(), "[{who}] -t in the foreground");
}

root_and_rootless!(a_terminal_and_an_open_stdin_are_given_when_asked);

fn stats_top_and_stop_signal(e: &Estiba) {
    let who = e.label();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while true; do sleep 0.1; done",
    ]);
    let stats = e.ok(&["stats", "--no-stream"]);
    let row = stats
        .lines()
        .find(|l| l.contains("busy"))
        .unwrap_or_else(|| panic!("[{who}] no stats row: {stats}"));
    if e.user.is_none() {
        assert!(row.contains("/ 64.00MiB"), "[{who}] memory limit: {row}");
    } else {
        assert!(
            row.contains("--"),
            "[{who}] rootless here has no cgroup to read: {row}"
        );
    }
    let top = e.ok(&["top", "busy"]);
    assert!(
        top.lines().count() >= 2 && top.contains("trap"),
        "[{who}] top: {top}"
    );
    let started = Instant::now();
    e.ok(&["stop", "busy"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "[{who}] the stop signal was not USR1"
    );
    assert_eq!(inspect(e, "busy")["State"]["ExitCode"], 9);
    e.ok(&["rm", "busy"]);
}

root_and_rootless!(stats_top_and_stop_signal);

fn foreground_containers_can_be_stopped_from_elsewhere(e: &Estiba) {
    let who = e.label();
    let mut fg = e
        .cmd(&[
            "run",
            "--name",
            "fg",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 5' TERM; while true; do sleep 0.1; done",
        ])
        .spawn()
        .unwrap();
    wait_until(
        "the foreground container's pid",
        Duration::from_secs(10),
        || {
            e.run(&["inspect", "fg"]).status.success()
                && inspect(e, "fg")["State"]["Pid"].as_i64().unwrap_or(0) > 0
        },
    );
    e.ok(&["stop", "fg"]);
    let status = fg.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "[{who}] the foreground run did not end with the container"
    );
    e.ok(&["rm", "fg"]);
}

on_every_backend!(foreground_containers_can_be_stopped_from_elsewhere);

fn pause_unpause_and_rename(e: &Estiba) {
    let who = e.label();
    e.ok(&["run", "-d", "--name", "frozen", "busybox", "sleep", "1000"]);
    if e.user.is_none() {
        assert_eq!(e.ok(&["pause", "frozen"]), "frozen\n");
        assert!(
            e.ok(&["ps"]).contains("(Paused)"),
            "[{who}] {}",
            e.ok(&["ps"])
        );
        let refused = e.run(&["pause", "frozen"]);
        assert_eq!(refused.status.code(), Some(1), "[{who}] paused twice");
        e.ok(&["unpause", "frozen"]);
        assert!(!e.ok(&["ps"]).contains("(Paused)"));
    } else {
        // runc cannot freeze a rootless container on cgroup v1: refused,
        // and the container runs on.
        let refused = e.run(&["pause", "frozen"]);
        assert_eq!(refused.status.code(), Some(1), "[{who}] {refused:?}");
        assert!(e.ok(&["ps"]).contains("Up"));
    }
    e.ok(&["rename", "frozen", "thawed"]);
    let ps = e.ok(&["ps"]);
    assert!(
        ps.contains("thawed") && !ps.contains("frozen"),
        "[{who}] {ps}"
    );
    e.ok(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"]);
    let taken = e.run(&["rename", "other", "thawed"]);
    assert!(!taken.status.success(), "[{who}] a name taken twice");
    assert!(
        common::stderr(&taken).contains("thawed"),
        "[{who}] {}",
        common::stderr(&taken)
    );
    e.ok(&["rm", "-f", "thawed", "other"]);
}

root_and_rootless!(pause_unpause_and_rename);
