//! Facts about the host that shape a container: who we are (root or rootless,
//! and our id mapping), the cgroup layout, the kernel, and resource ceilings.

use std::path::Path;

/// How cgroups are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only cgroup v1 controllers.
    V1,
    /// v1 controllers plus a v2 `unified` mount (systemd's hybrid layout).
    Hybrid,
    /// The unified hierarchy only.
    V2,
}

#[derive(Clone, Debug)]
pub struct Host {
    /// True when estiba runs without root on the host (possibly inside the
    /// user namespace it made for itself).
    pub rootless: bool,
    /// Our uid on the host (the uid mapped to 0 when rootless).
    pub host_uid: u32,
    /// How many uids our user namespace maps (2^32-1 for the initial one).
    pub mapped_ids: u64,
    pub cgroup: CgroupMode,
    pub kernel_release: String,
}

impl Host {
    pub fn detect() -> Self {
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let (rootless, host_uid, mapped_ids) =
            parse_uid_map(&uid_map, rustix::process::geteuid().as_raw());
        Host {
            rootless,
            host_uid,
            mapped_ids,
            cgroup: detect_cgroup(Path::new("/sys/fs/cgroup")),
            kernel_release: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
        }
    }

    pub fn kernel(&self) -> (u32, u32) {
        crate::seccomp::parse_kernel(&self.kernel_release)
    }

    /// Whether this user may set cgroup limits. Root always may. Rootless,
    /// only on a pure v2 host whose manager delegated controllers to us.
    pub fn can_limit_resources(&self) -> bool {
        if !self.rootless {
            return true;
        }
        if self.cgroup != CgroupMode::V2 {
            return false;
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/");
        let controllers = std::fs::read_to_string(
            Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join("cgroup.controllers"),
        )
        .unwrap_or_default();
        ["memory", "pids", "cpu"]
            .iter()
            .all(|c| controllers.split_whitespace().any(|x| x == *c))
    }

    /// Whether cgroup v1 can limit memory+swap (it needs swap accounting).
    pub fn has_memsw(&self) -> bool {
        self.cgroup == CgroupMode::V2
            || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    }
}

/// Reads `/proc/self/uid_map`: the initial namespace maps everything from 0.
fn parse_uid_map(map: &str, euid: u32) -> (bool, u32, u64) {
    let mut host_uid = euid;
    let mut total: u64 = 0;
    let mut initial = false;
    for line in map.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..] {
            if inside == 0 && outside == 0 && count == 4294967295 {
                initial = true;
            }
            if inside == 0 {
                host_uid = u32::try_from(outside).unwrap_or(euid);
            }
            total += count;
        }
    }
    if initial {
        (euid != 0, euid, total)
    } else {
        (true, host_uid, total)
    }
}

fn detect_cgroup(root: &Path) -> CgroupMode {
    if root.join("cgroup.controllers").exists() {
        CgroupMode::V2
    } else if root.join("unified").exists() {
        CgroupMode::Hybrid
    } else {
        CgroupMode::V1
    }
}

/// An rlimit for the container, never above what the host lets us have.
pub fn clamp_rlimit(resource: rustix::process::Resource, wanted: u64) -> u64 {
    let current = rustix::process::getrlimit(resource);
    current.maximum.map_or(wanted, |hard| wanted.min(hard))
}

/// The uid this process has on the host, before or after entering its own
/// user namespace.
pub fn outer_uid() -> u32 {
    Host::detect().host_uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_maps() {
        assert_eq!(
            parse_uid_map("         0          0 4294967295\n", 0),
            (false, 0, 4294967295)
        );
        assert_eq!(
            parse_uid_map("         0          0 4294967295\n", 1000),
            (true, 1000, 4294967295)
        );
        assert_eq!(
            parse_uid_map("0 1000 1\n1 100000 65536\n", 0),
            (true, 1000, 65537)
        );
    }
}
