//! `stats` and `top`: what a running container uses, read from its cgroups
//! (found through /proc/PID/cgroup, so v1, v2 and hybrid hosts all work) and
//! from the processes in its pid namespace.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::record::ContainerRecord;

/// A container's usage; `None` where the host has no cgroup for it
/// (rootless without delegation).
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu_percent: Option<f64>,
    pub memory: Option<u64>,
    pub memory_limit: Option<u64>,
    pub pids: Option<u64>,
}

/// The cgroup directory of `pid` for a v1 controller, or the v2 directory.
fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == controller) {
            let dir = PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'));
            if dir.exists() {
                return Some(dir);
            }
        }
    }
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = PathBuf::from("/sys/fs/cgroup").join(v2.trim_start_matches('/'));
    dir.join("cgroup.controllers").exists().then_some(dir)
}

fn read_u64(path: PathBuf) -> Option<u64> {
    fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time used so far, in nanoseconds.
fn cpu_ns(pid: i32) -> Option<u64> {
    if let Some(dir) = cgroup_dir(pid, "cpuacct") {
        if let Some(v) = read_u64(dir.join("cpuacct.usage")) {
            return Some(v);
        }
    }
    let stat = fs::read_to_string(cgroup_dir(pid, "cpu")?.join("cpu.stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us * 1000)
}

/// Samples the container over `window` for the CPU share.
pub fn usage(pid: i32, window: Duration) -> Usage {
    let memory_dir = cgroup_dir(pid, "memory");
    let memory = memory_dir.as_ref().and_then(|d| {
        read_u64(d.join("memory.usage_in_bytes")).or_else(|| read_u64(d.join("memory.current")))
    });
    let memory_limit = memory_dir
        .as_ref()
        .and_then(|d| {
            read_u64(d.join("memory.limit_in_bytes")).or_else(|| read_u64(d.join("memory.max")))
        })
        .filter(|l| *l < (1 << 60));
    let pids = cgroup_dir(pid, "pids").and_then(|d| read_u64(d.join("pids.current")));
    let start = (cpu_ns(pid), Instant::now());
    std::thread::sleep(window);
    let cpu_percent = match (start.0, cpu_ns(pid)) {
        (Some(a), Some(b)) => {
            Some((b.saturating_sub(a)) as f64 / start.1.elapsed().as_nanos() as f64 * 100.0)
        }
        _ => None,
    };
    Usage {
        cpu_percent,
        memory,
        memory_limit,
        pids,
    }
}

/// The host pids of every process in the container's pid namespace.
pub fn processes(r: &ContainerRecord) -> Vec<i32> {
    let ns = |pid: &str| {
        fs::metadata(format!("/proc/{pid}/ns/pid"))
            .map(|m| m.ino())
            .ok()
    };
    let Some(target) = ns(&r.state.pid.to_string()) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
                .filter(|p| ns(&p.to_string()) == Some(target))
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// True if the kernel's OOM killer ended a process in the container's
/// memory cgroup (`/estiba/<id>`, as the spec names it): cgroup v1's
/// `memory.oom_control` or v2's `memory.events`. Read before the runtime
/// deletes the cgroup.
pub fn oom_killed(id: &str) -> bool {
    let count = |path: PathBuf| {
        fs::read_to_string(path).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
    };
    let v1 = PathBuf::from("/sys/fs/cgroup/memory/estiba")
        .join(id)
        .join("memory.oom_control");
    let v2 = PathBuf::from("/sys/fs/cgroup/estiba")
        .join(id)
        .join("memory.events");
    count(v1).or_else(|| count(v2)).is_some_and(|n| n > 0)
}
