//! cgroup limits on the real kernel (root), and their honest refusal rootless
//! on a host that delegates no controllers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};

#[test]
fn memory_limit_oom_kills_with_137() {
    if !common::require_root("memory limit test") {
        return;
    }
    for e in [Estiba::root(), Estiba::root_with("runc")] {
        oom_kills(e.with_busybox());
    }
}

fn oom_kills(e: Estiba) {
    // 64 MiB held in a shell variable, under a 32 MiB limit.
    let out = e.run(&[
        "run",
        "--rm",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "not OOM-killed: {}",
        stderr(&out)
    );
    // The same allocation fits without the limit.
    let out = e.ok(&[
        "run",
        "--rm",
        "--memory",
        "256m",
        "busybox",
        "sh",
        "-c",
        "head -c 67108864 /dev/zero | wc -c",
    ]);
    assert_eq!(out.trim(), "67108864");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !common::require_root("pids limit test") {
        return;
    }
    let e = Estiba::root().with_busybox();
    // A bounded fork bomb in a subshell: 60 sleepers against a limit of 20.
    // Only shell builtins run afterwards, since forks are exhausted.
    let script = "(for i in $(seq 60); do sleep 30 & done) 2>/tmp/err; \
        read max < /sys/fs/cgroup/pids/pids.max; echo max=$max; \
        read current < /sys/fs/cgroup/pids/pids.current; echo current=$current; \
        kill -9 -1; sleep 0.1; cat /tmp/err";
    let out = e.ok(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(out.contains("max=20"), "pids.max is not 20: {out}");
    let current: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("current="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(current <= 20, "more processes than the limit: {out}");
    assert!(out.contains("can't fork"), "forks were not refused: {out}");
    // The host is unharmed: it still forks.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    // And the default limit applies without the flag.
    let out = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "cat",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(out.trim(), "2048");
}

#[test]
fn cpu_limit_is_set() {
    if !common::require_root("cpu limit test") {
        return;
    }
    let e = Estiba::root().with_busybox();
    let out = e.ok(&[
        "run",
        "--rm",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
    ]);
    assert!(
        out.trim() == "50000" || out.starts_with("50000 "),
        "cpu quota: {out}"
    );
}

#[test]
fn rootless_limits_warn_instead_of_vanishing() {
    if !common::require_root("rootless limits test") {
        return;
    }
    let e = Estiba::rootless().with_busybox();
    let delegated = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let out = e.run(&[
        "run",
        "--rm",
        "--memory",
        "32m",
        "--pids-limit",
        "20",
        "busybox",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    if !delegated {
        let err = stderr(&out);
        assert!(
            err.contains("WARNING") && err.contains("--memory") && err.contains("--pids-limit"),
            "no warning: {err}"
        );
    }
}
