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

/// What the tuning flags set, read back from inside the container: the
/// cgroup's files, /dev/shm's size, a sysctl, a device node and resolv.conf.
const TUNING_PROBE: &str = "cat /sys/fs/cgroup/cpu/cpu.shares; \
    cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes; \
    cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes; \
    cat /sys/fs/cgroup/memory/memory.swappiness; \
    df -k /dev/shm | tail -1 | awk '{print \"shm=\" $2}'; \
    echo shmmax=$(cat /proc/sys/kernel/shmmax); \
    echo port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
    ls -l /dev/n2 | awk '{print \"dev=\" $1 $5 $6}'; \
    grep ^search /etc/resolv.conf";

#[test]
fn cpu_shares_soft_limits_swap_shm_sysctls_and_devices_are_seen_inside() {
    if !common::require_root("tuning flags test") {
        return;
    }
    if !std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        panic!("this test reads cgroup v1's memory.memsw files, which this host lacks");
    }
    for e in [Estiba::root(), Estiba::root_with("runc")] {
        let e = e.with_busybox();
        let out = e.ok(&[
            "run",
            "--rm",
            "--cpu-shares",
            "512",
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--memory-swap",
            "96m",
            "--memory-swappiness",
            "10",
            "--shm-size",
            "8m",
            "--sysctl",
            "kernel.shmmax=4096",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=0",
            "--device",
            "/dev/null:/dev/n2:rw",
            "--dns-search",
            "corp.example",
            "busybox",
            "sh",
            "-c",
            TUNING_PROBE,
        ]);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(
            lines,
            [
                "512",
                &(32u64 << 20).to_string(),
                &(96u64 << 20).to_string(),
                "10",
                "shm=8192",
                "shmmax=4096",
                "port_start=0",
                "dev=crw-rw-rw-1,3",
                "search corp.example",
            ],
            "{}: {out}",
            e.label()
        );
    }
}

#[test]
fn the_hosts_pid_and_ipc_namespaces_are_shared_when_asked() {
    if !common::require_root("host namespaces test") {
        return;
    }
    host_namespaces_are_shared(Estiba::root().with_busybox());
}

#[test]
fn a_rootless_container_shares_the_hosts_pid_and_ipc_namespaces_when_asked() {
    if !common::require_root("rootless host namespaces test") {
        return;
    }
    host_namespaces_are_shared(Estiba::rootless().with_busybox());
}

/// `--pid host --ipc host`: the container's namespaces are the host's, and
/// without the flags they are not.
fn host_namespaces_are_shared(e: Estiba) {
    let ns = |kind: &str| std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
    let host = format!("{}\n{}", ns("pid").display(), ns("ipc").display());
    let probe = "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc";
    let shared = e.ok(&[
        "run", "--rm", "--pid", "host", "--ipc", "host", "busybox", "sh", "-c", probe,
    ]);
    assert_eq!(shared.trim(), host, "{}", e.label());
    let own = e.ok(&["run", "--rm", "busybox", "sh", "-c", probe]);
    for (inside, outside) in own.lines().zip(host.lines()) {
        assert_ne!(inside.trim(), outside, "{}: a private namespace", e.label());
    }
}

#[test]
fn a_rootless_container_gets_its_shm_size_sysctls_and_devices() {
    if !common::require_root("rootless tuning test") {
        return;
    }
    let e = Estiba::rootless().with_busybox();
    let out = e.ok(&[
        "run",
        "--rm",
        "--shm-size",
        "8m",
        "--sysctl",
        "kernel.shmmax=4096",
        "--device",
        "/dev/null:/dev/n2",
        "--label",
        "team=web",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1 | awk '{print $2}'; cat /proc/sys/kernel/shmmax; \
         echo x > /dev/n2 && echo written",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["8192", "4096", "written"], "{out}");
}

#[test]
fn a_container_joins_another_containers_pid_and_ipc_namespaces() {
    if !common::require_root("container namespaces test") {
        return;
    }
    joins_another_containers_namespaces(Estiba::root().with_busybox());
}

#[test]
fn a_rootless_container_joins_another_containers_pid_and_ipc_namespaces() {
    if !common::require_root("rootless container namespaces test") {
        return;
    }
    joins_another_containers_namespaces(Estiba::rootless().with_busybox());
}

/// `--pid container:NAME --ipc container:NAME`: the joiner is in the
/// holder's namespaces and sees its processes.
fn joins_another_containers_namespaces(e: Estiba) {
    e.ok(&["run", "-d", "--name", "holder", "busybox", "sleep", "3601"]);
    let inspect: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "holder"])).unwrap();
    let pid = inspect[0]["State"]["Pid"].as_i64().unwrap();
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };
    let out = e.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:holder",
        "--ipc",
        "container:holder",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ps -o args | grep -c '^sleep 3601'",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [ns("pid").as_str(), ns("ipc").as_str(), "1"],
        "{}",
        e.label()
    );
    let joined: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "holder"])).unwrap();
    assert_eq!(joined[0]["HostConfig"]["IpcMode"], "private");
    let refused = e.run(&[
        "run",
        "--rm",
        "--pid",
        "container:nobody",
        "busybox",
        "true",
    ]);
    assert!(!refused.status.success());
    e.ok(&["rm", "-f", "holder"]);
}
