//! Container records: one JSON file per container, replaced atomically
//! (`containers/<id>/container.json`), changed under a per-container flock so
//! the CLI and the container's monitor never lose each other's updates.

use std::fs;
use std::path::{Path, PathBuf};

use std::net::Ipv4Addr;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

pub use crate::options::{HostEntry, MountSpec, Security};
pub use crate::secrets::SecretRef;
pub use estiba_net::egress::Policy as EgressPolicy;
pub use estiba_net::ports::PortMap;

use crate::{Error, Result};

/// When a container that exited is started again by its monitor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Name", content = "MaximumRetryCount", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart on a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    Always,
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid {
            what: "restart policy",
            value: s.to_string(),
            why: why.to_string(),
        };
        match s.split_once(':') {
            None if s == "no" => Ok(RestartPolicy::No),
            None if s == "always" => Ok(RestartPolicy::Always),
            None if s == "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            None if s == "on-failure" => Ok(RestartPolicy::OnFailure(0)),
            Some(("on-failure", n)) => n
                .parse()
                .map(RestartPolicy::OnFailure)
                .map_err(|_| bad("the retry count must be a number")),
            _ => Err(bad("expected no, on-failure[:N], always or unless-stopped")),
        }
    }
}

/// The network a container is on: none, the host's, or a named network
/// (its own namespace on that network's bridge). Parsed once where the
/// request arrives; on disk it is the string docker shows (`none`, `host`
/// or the name), so records written before it existed still read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    #[default]
    None,
    Host,
    Named(String),
}

impl NetworkMode {
    /// `none` (or empty), `host`, or a network's name.
    pub fn parse(s: &str) -> Result<NetworkMode> {
        match s {
            "" | "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other if other.contains(',') => Err(Error::Invalid {
                what: "network",
                value: other.to_string(),
                why: "one network here; give more with --network a,b or network connect".into(),
            }),
            other => Ok(NetworkMode::Named(other.to_string())),
        }
    }

    /// The named network, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            NetworkMode::Named(n) => Some(n),
            _ => None,
        }
    }

    /// `none` or `host`: no network of estiba's.
    pub fn is_builtin(&self) -> bool {
        self.name().is_none()
    }

    pub fn as_str(&self) -> &str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Named(n) => n,
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        NetworkMode::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What `estiba create`/`run` were asked for; the spec is rebuilt from this
/// at every start, after the root filesystem is mounted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateOptions {
    pub command: Vec<String>,
    pub entrypoint: Option<String>,
    /// `K=V` entries from `-e` and `--env-file`, resolved when created.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`: no-new-privileges and the seccomp profile (a
    /// profile file is read when the container is created, as docker does).
    #[serde(default)]
    pub security: Security,
    pub privileged: bool,
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    /// Process limits over the defaults.
    #[serde(default)]
    pub ulimits: Vec<estiba_runtime::spec::Rlimit>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// More networks (`--network a,b` or `network connect`): each adds an
    /// interface (`eth1`, …); the default route stays on the first.
    #[serde(default)]
    pub extra_networks: Vec<String>,
    /// `network connect --alias/--ip`: per further network, its own
    /// aliases and wanted address.
    #[serde(default)]
    pub extra_network_options: std::collections::BTreeMap<String, ExtraNetwork>,
    /// `--ip`: the address wanted on the (first) network.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// `-p`: each mapping (a range is one mapping per port).
    #[serde(default)]
    pub publish: Vec<PortMap>,
    /// `-P`: every port the image exposes, on a free host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--egress` and `--egress-allow`; None takes the network's default.
    #[serde(default)]
    pub egress: Option<EgressPolicy>,
    /// `--network-alias`: more names on the network.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// `--add-host HOST:IP` lines for /etc/hosts.
    #[serde(default)]
    pub add_hosts: Vec<HostEntry>,
    /// Connections from inside to one address go to another (a library
    /// caller's: the node agent's metadata endpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<estiba_net::redirect::Redirect>,
    /// `--dns` resolvers.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// `--dns-search`: the domains tried for a short name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `--label KEY=VALUE`: the container's labels.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// CPU weight, soft memory limits, swap, /dev/shm, sysctls, devices
    /// and the host's pid or IPC namespace.
    #[serde(default)]
    pub tuning: crate::tuning::Tuning,
    /// `-v`, `--tmpfs` and `--mount`, in that order.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// The image's STOPSIGNAL (or `--stop-signal`), sent first by `stop`.
    #[serde(default, with = "signal_name")]
    pub stop_signal: Option<Signal>,
    /// The pod (its id) whose namespaces the container joins.
    #[serde(default)]
    pub pod: Option<String>,
    /// `-t`: a pseudo-terminal for the process (detached containers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `-i`: the container reads stdin from a FIFO that an attach writes
    /// into (`Engine::attach_stdin`); it stays open between attaches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// Docker's `StdinOnce`: stdin closes when the first attached writer
    /// closes (`docker run -i` without `-d`), so `echo hi | … cat` ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    /// `--init`: estiba's init runs as pid 1, the command as its child.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// `--secret`: which secrets, and where in the container.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    pub runtime: Option<String>,
    pub restart: RestartPolicy,
    pub auto_remove: bool,
    /// Started by a monitor (`run -d`, `create`/`start`) rather than in the
    /// foreground.
    #[serde(default)]
    pub detached: bool,
    /// Health check flags as given; merged with the image's at create.
    #[serde(default)]
    pub health: Option<crate::health::HealthConfig>,
}

/// A signal on disk is its name (`SIGTERM`); docker's spellings (`TERM`,
/// `15`) read too, as records written before it was typed hold them.
mod signal_name {
    use nix::sys::signal::Signal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Signal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(sig) => s.serialize_some(sig.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Signal>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| crate::ops::parse_signal(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What `network connect` was told about one network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraNetwork {
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Restarting,
    Exited,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    /// The container's init, in estiba's pid namespace.
    pub pid: i32,
    /// The monitor holding the container; 0 for a foreground run.
    pub monitor_pid: i32,
    /// The monitor's start time, which tells it from a process that reused
    /// its pid; 0 in records written before it was kept.
    #[serde(default)]
    pub monitor_started: u64,
    pub exit_code: i32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restart_count: u32,
    /// Set by stop/kill/rm so the monitor does not restart the container.
    pub stop_requested: bool,
    pub error: Option<String>,
    #[serde(default)]
    pub health: Option<crate::health::Health>,
    /// Frozen by `pause` (meaningful while running).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub options: CreateOptions,
    pub state: State,
}

/// A record file's identity as its last save left it ([`Records::stamp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    inode: u64,
    modified: (i64, i64),
    size: u64,
}

/// Where containers live: `<data>/containers/<id>/`.
#[derive(Clone, Debug)]
pub struct Records {
    root: PathBuf,
}

impl Records {
    pub fn new(data: &Path) -> Self {
        Records {
            root: data.join("containers"),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir(id).join("container.json")
    }

    pub fn load(&self, id: &str) -> Result<ContainerRecord> {
        let path = self.file(id);
        let data = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoSuchContainer(id.to_string()),
            _ => Error::Os(estiba_os::Error::Io {
                op: "reading",
                path: path.clone(),
                source: e,
            }),
        })?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&data).map_err(|e| Error::Record(path.clone(), e))?;
        crate::legacy::upgrade(&mut value["Options"])?;
        serde_json::from_value(value).map_err(|e| Error::Record(path, e))
    }

    /// What changes whenever the record is saved (each save renames a new
    /// file in): its inode, modification time and size. Wait loops compare
    /// it to parse the record only when it may have changed.
    pub fn stamp(&self, id: &str) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(self.file(id)).ok()?;
        Some(Stamp {
            inode: m.ino(),
            modified: (m.mtime(), m.mtime_nsec()),
            size: m.size(),
        })
    }

    /// Writes a new record; the directory must exist. The record of an
    /// auto-removed container is not synced: it is gone once the container
    /// exits, and no container survives the power loss a sync guards
    /// against.
    pub fn save(&self, record: &ContainerRecord) -> Result<()> {
        let path = self.file(&record.id);
        let data = serde_json::to_vec_pretty(record).map_err(|e| Error::Record(path.clone(), e))?;
        if record.options.auto_remove {
            estiba_os::write_atomic_unsynced(&path, &data)?;
        } else {
            estiba_os::write_atomic(&path, &data)?;
        }
        Ok(())
    }

    /// Read-modify-write under the container's lock.
    pub fn update<T>(&self, id: &str, f: impl FnOnce(&mut ContainerRecord) -> T) -> Result<T> {
        // The lock file sits in the container's directory: a removed
        // container has none to lock, and is not brought back.
        let _lock = match estiba_os::LockFile::exclusive(&self.dir(id).join("lock")) {
            Err(estiba_os::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(Error::NoSuchContainer(id.to_string()))
            }
            other => other?,
        };
        let mut record = self.load(id)?;
        let out = f(&mut record);
        self.save(&record)?;
        Ok(out)
    }

    /// Every container, newest first. Directories without a readable record
    /// (a create killed half-way) are skipped.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(r) = self.load(&id) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// A container by full id, unique id prefix or name.
    pub fn find(&self, wanted: &str) -> Result<ContainerRecord> {
        // A full id is one file: the wait loops of `stop` ask by id every
        // few milliseconds, and reading every record each time made a
        // node's stops together cost O(containers²).
        if wanted.len() == 64 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(r) = self.load(wanted) {
                return Ok(r);
            }
        }
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.name == wanted || r.id == wanted) {
            return Ok(r.clone());
        }
        let hits: Vec<_> = all.iter().filter(|r| r.id.starts_with(wanted)).collect();
        match hits.len() {
            1 if !wanted.is_empty() => Ok(hits[0].clone()),
            0 | 1 => Err(Error::NoSuchContainer(wanted.to_string())),
            n => Err(Error::Ambiguous {
                reference: wanted.to_string(),
                count: n,
            }),
        }
    }
}

/// docker-style generated names: `adjective_noun`.
pub fn generate_name(id: &str, taken: &[String]) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nimble", "proud", "quiet", "sharp", "tidy", "witty",
    ];
    const NOUN: [&str; 16] = [
        "anchor", "ballast", "berth", "bollard", "cargo", "crane", "deck", "dock", "galley",
        "hatch", "hold", "keel", "mast", "pallet", "quay", "winch",
    ];
    let bytes: Vec<u8> = (0..id.len() / 2)
        .filter_map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok())
        .collect();
    for (i, pair) in bytes.chunks(2).enumerate() {
        let name = format!(
            "{}_{}",
            ADJ[usize::from(pair[0]) % 16],
            NOUN[usize::from(*pair.get(1).unwrap_or(&0)) % 16]
        );
        let name = if i == 0 { name } else { format!("{name}_{i}") };
        if !taken.contains(&name) {
            return name;
        }
    }
    id.get(..12).unwrap_or(id).to_string()
}

/// Names are docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "container name",
            value: name.to_string(),
            why: "names are [a-zA-Z0-9][a-zA-Z0-9_.-]*".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse_and_keep_their_disk_form() {
        assert_eq!(NetworkMode::parse("").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        let app = NetworkMode::parse("app").unwrap();
        assert_eq!(app.name(), Some("app"));
        assert!(NetworkMode::parse("a,b").is_err());
        assert_eq!(serde_json::to_string(&app).unwrap(), r#""app""#);
        let old: NetworkMode = serde_json::from_str(r#""none""#).unwrap();
        assert!(old.is_builtin());
    }

    #[test]
    fn restart_policies_parse() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(
            "always".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::Always
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn records_round_trip_and_resolve_by_prefix_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        for (id, name) in [("abc123", "one"), ("abd456", "two")] {
            fs::create_dir_all(records.dir(id)).unwrap();
            let r = ContainerRecord {
                id: id.into(),
                name: name.into(),
                image: "busybox".into(),
                image_id: String::new(),
                created: id.into(),
                options: CreateOptions::default(),
                state: State::default(),
            };
            records.save(&r).unwrap();
        }
        assert_eq!(records.find("two").unwrap().id, "abd456");
        assert_eq!(records.find("abc").unwrap().name, "one");
        assert!(matches!(records.find("ab"), Err(Error::Ambiguous { .. })));
        assert!(matches!(records.find("zz"), Err(Error::NoSuchContainer(_))));
        records
            .update("abc123", |r| r.state.status = Status::Running)
            .unwrap();
        assert_eq!(
            records.load("abc123").unwrap().state.status,
            Status::Running
        );
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("-bad").is_err());
        assert_ne!(
            generate_name("0011", &[]),
            generate_name("0011", &["brave_ballast".to_string()])
        );
    }
}
