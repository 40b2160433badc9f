//! Where estiba keeps things, as root and rootless.

use std::path::PathBuf;

use estiba_runtime::Host;

#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent data: the image store and containers' writable layers.
    pub data: PathBuf,
    /// Runtime state that a reboot may wipe: bundles, runtime state.
    pub run: PathBuf,
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Paths {
    /// `/var/lib/estiba` and `/run/estiba` as root; the XDG directories
    /// rootless. `--root`/`--runroot` override both.
    pub fn resolve(
        root: Option<PathBuf>,
        runroot: Option<PathBuf>,
        rootless: bool,
        uid: u32,
    ) -> Self {
        let data = root.unwrap_or_else(|| {
            if rootless {
                env_dir("XDG_DATA_HOME")
                    .or_else(|| env_dir("HOME").map(|h| h.join(".local/share")))
                    .unwrap_or_else(|| PathBuf::from(format!("/tmp/estiba-{uid}-data")))
                    .join("estiba")
            } else {
                PathBuf::from("/var/lib/estiba")
            }
        });
        let run = runroot.unwrap_or_else(|| {
            if rootless {
                env_dir("XDG_RUNTIME_DIR").map_or_else(
                    || PathBuf::from(format!("/tmp/estiba-run-{uid}")),
                    |d| d.join("estiba"),
                )
            } else {
                PathBuf::from("/run/estiba")
            }
        });
        Paths { data, run }
    }

    /// The files an admission policy is read from when `--policy` names
    /// none: the system's, then the user's over it.
    pub fn policy_files() -> Vec<PathBuf> {
        let user = env_dir("XDG_CONFIG_HOME")
            .or_else(|| env_dir("HOME").map(|h| h.join(".config")))
            .map(|c| c.join("estiba/policy.toml"));
        std::iter::once(PathBuf::from("/etc/estiba/policy.toml"))
            .chain(user)
            .collect()
    }

    pub fn for_host(root: Option<PathBuf>, runroot: Option<PathBuf>, host: &Host) -> Self {
        Self::resolve(root, runroot, host.rootless, host.host_uid)
    }
}
