//! `estiba events`: the journal of what happened, followed by two
//! processes at once (one from before the events, one started after them
//! with `--since`), filtered, and still readable after writers die with
//! `kill -9` mid-line. As root and rootless.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{wait_until, Estiba};
use serde_json::Value;

/// A running `estiba events --format json ARGS…` whose lines arrive on a
/// channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Follower {
    fn start(e: &Estiba, args: &[&str]) -> Follower {
        // Bounded by --until, so a follower the test could not kill (runuser
        // keeps its own process group) still ends by itself.
        let until = (std::time::SystemTime::now() + Duration::from_secs(120))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let mut all = vec!["events", "--format", "json", "--until", &until];
        all.extend_from_slice(args);
        use std::os::unix::process::CommandExt;
        // A group of its own, so the wrappers and estiba all go at the end.
        let mut child = e
            .cmd(&all)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// Events until one with `action` arrives (included), within `timeout`.
    fn until(&self, action: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = v["Action"] == action;
                    out.push(v);
                    if done {
                        return out;
                    }
                }
                Err(_) => panic!("no {action:?} event within {timeout:?}; got {out:#?}"),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

/// `want` appears in `got` in this order (other events may sit between).
fn assert_in_order(got: &[String], want: &[&str], who: &str) {
    let mut rest = got.iter();
    for w in want {
        assert!(
            rest.any(|g| g == w),
            "{who}: {w:?} missing or out of order in {got:?}"
        );
    }
}

/// `estiba events` from `since` to now with `filters`: prints and exits.
fn replay(e: &Estiba, since: &str, filters: &[&str], json: bool) -> String {
    let mut args = vec!["events", "--since", since, "--until", "0s"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    if json {
        args.extend(["--format", "json"]);
    }
    e.ok(&args)
}

fn state(e: &Estiba, name: &str, field: &str) -> Value {
    let v: Value = serde_json::from_str(&e.ok(&["inspect", name])).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["State"][field].clone()
}

fn a_containers_whole_life_is_followed_by_two_processes(e: &Estiba) {
    let since = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1
    );
    // The first follower is there before anything happens; `--since` makes
    // it independent of how fast it starts.
    let early = Follower::start(e, &["--since", &since, "--filter", "container=life"]);
    // Health changes are journaled too; in a container of their own, as
    // health checks racing a restart are a known issue (see the notes).
    let health_args =
        "run -d --name healthy --health-cmd true --health-interval 1s busybox sleep 1000";
    e.ok(&health_args.split(' ').collect::<Vec<_>>());
    e.ok(&["run", "-d", "--name", "life", "busybox", "sleep", "1000"]);
    wait_until(
        "the container to be healthy",
        Duration::from_secs(30),
        || state(e, "healthy", "Health")["Status"] == "healthy",
    );
    let health = replay(
        e,
        &since,
        &["container=healthy", "event=health_status"],
        false,
    );
    assert!(health.contains("health_status: healthy"), "{health}");
    e.ok(&["rm", "-f", "healthy"]);
    // SIGKILL: `sleep` as pid 1 ignores TERM.
    e.ok(&["kill", "-s", "KILL", "life"]);
    wait_until("the container to exit", Duration::from_secs(30), || {
        state(e, "life", "Status") == "exited"
    });
    e.ok(&["start", "life"]);
    e.ok(&["restart", "-t", "1", "life"]);
    e.ok(&["stop", "-t", "1", "life"]);
    e.ok(&["rm", "life"]);
    let want = [
        "create", "start", "kill", "die", "start", "die", "stop", "restart", "start", "die",
        "stop", "destroy",
    ];
    let early_saw = early.until("destroy", Duration::from_secs(30));
    // The second follower starts after it all, and replays it.
    let late = Follower::start(e, &["--since", &since, "--filter", "container=life"]);
    let late_saw = late.until("destroy", Duration::from_secs(30));
    for (who, saw) in [
        ("the early follower", &early_saw),
        ("the late follower", &late_saw),
    ] {
        assert_in_order(&actions(saw), &want, who);
        let died = saw.iter().find(|v| v["Action"] == "die").unwrap();
        assert_eq!(died["Actor"]["Attributes"]["exitCode"], "137", "{died}");
        assert!(saw.iter().all(|v| v["Type"] == "container"
            && v["Actor"]["Attributes"]["name"] == "life"
            && v["Actor"]["Attributes"]["image"] == "busybox"));
    }
    assert_eq!(actions(&early_saw), actions(&late_saw), "both saw the same");
    // `--until` in the past prints what matched and exits by itself.
    let out = replay(e, &since, &["event=die", "container=life"], true);
    assert_eq!(out.lines().count(), 3, "{out}");
}

fn a_writer_killed_mid_line_leaves_a_journal_that_reads(e: &Estiba) {
    let journal = e.path().join("data/events/events.log");
    e.ok(&["volume", "create", "before"]);
    // Writers killed with -9 at every moment of their run, some of them
    // while appending an event.
    for i in 0..30u64 {
        let mut child = e
            .cmd(&["volume", "create", &format!("v{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i % 10));
        // estiba itself, whichever wrappers (runuser) stand between.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", &format!("estiba volume create v{i}$")])
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
    // And the torn line such a writer leaves, to be sure there is one.
    let torn = r#"{"Type":"volume","Action":"create","Actor":{"ID":"to"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .and_then(|mut f| std::io::Write::write_all(&mut f, torn.as_bytes()))
        .unwrap();
    e.ok(&["volume", "create", "after"]);
    let out = replay(e, "1h", &["type=volume"], true);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|err| panic!("{l:?}: {err}"));
            v["Actor"]["ID"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.first().map(String::as_str), Some("before"), "{ids:?}");
    assert_eq!(ids.last().map(String::as_str), Some("after"), "{ids:?}");
    assert!(!ids.iter().any(|i| i == "to"), "the torn line was shown");
    // Every line but torn ones is whole; the file still ends a line.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.ends_with('\n'));
}

root_and_rootless!(
    a_containers_whole_life_is_followed_by_two_processes,
    a_writer_killed_mid_line_leaves_a_journal_that_reads,
);
