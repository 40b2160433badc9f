//! The networks themselves: one JSON record per network under
//! `DATA/networks/`, created and removed under a lock so two commands never
//! pick overlapping subnets.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ipam::{Leases, Subnet};
use crate::{Error, IoContext, Result};

/// The network containers join when they name none but a bridge, as docker's
/// `bridge` and podman's `podman`.
pub const DEFAULT_NETWORK: &str = "estiba";
/// The default network's subnet, and where automatic subnets start.
const DEFAULT_SUBNET: &str = "10.90.0.0/24";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRecord {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    /// The Linux bridge: `es-` and the id's first 12 hex digits.
    pub bridge: String,
    pub created: String,
    /// The egress policy of containers that set none.
    #[serde(default)]
    pub egress: crate::egress::Policy,
}

impl NetworkRecord {
    pub fn subnet(&self) -> Result<Subnet> {
        self.subnet.parse()
    }
}

/// The host's routes to subnets (not the default route), with their
/// devices, from /proc/net/route: a network must not overlap them, or its
/// traffic would go astray (another store's bridge, a VPN, the LAN).
fn host_routes() -> Vec<(String, Subnet)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes_in(&text)
}

fn routes_in(text: &str) -> Vec<(String, Subnet)> {
    // The kernel prints each address as the u32 holding its network-order
    // bytes; on a little-endian host those are the number's LE bytes.
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_le_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, mask) = (addr(f.get(1)?)?, addr(f.get(7)?)?);
            let prefix = u8::try_from(u32::from(mask).count_ones()).ok()?;
            let base = Ipv4Addr::from(u32::from(dest) & u32::from(mask));
            (prefix > 0).then(|| (f[0].to_string(), Subnet { base, prefix }))
        })
        .collect()
}

/// The routes a new subnet must stay clear of, with the device each goes
/// through. The real one reads the host's table; unit tests give their own,
/// so no test depends on what this machine happens to route.
pub type RouteSource = fn() -> Vec<(String, Subnet)>;

pub struct Networks {
    dir: PathBuf,
    host: crate::host::NetHost,
    routes: RouteSource,
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
        && name != "none"
        && name != "host"
}

impl Networks {
    pub fn open(data: &Path, host: crate::host::NetHost) -> Result<Networks> {
        let dir = data.join("networks");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        Ok(Networks {
            dir,
            host,
            routes: host_routes,
        })
    }

    /// The same, with the host's routes taken from `routes` instead of
    /// /proc/net/route.
    pub fn with_routes(mut self, routes: RouteSource) -> Networks {
        self.routes = routes;
        self
    }

    /// Where this store's networks live.
    pub fn host(&self) -> &crate::host::NetHost {
        &self.host
    }

    /// This store's nftables table: `estiba_` and a hash of its directory,
    /// so two stores on one host (tests, or root beside another root) never
    /// overwrite each other's rules.
    pub fn table(&self) -> String {
        // FNV-1a: stable across runs and builds.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.dir.as_os_str().as_encoded_bytes() {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        format!("estiba_{h:08x}")
    }

    /// The directory holding the networks' records and state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The networks' DNS responders, by network name.
    pub fn dns(&self) -> crate::pidfile::Helpers {
        crate::pidfile::Helpers::new(self.dir.join("dns"))
    }

    /// The rootless port forwarders, by container id.
    pub fn forwarders(&self) -> crate::pidfile::Helpers {
        crate::pidfile::Helpers::new(self.dir.join("forward"))
    }

    /// This store's published ports.
    pub fn ports(&self) -> crate::ports::Ports {
        crate::ports::Ports::new(&self.dir, &self.table(), !self.host.rootless())
    }

    /// Loads the rules for every network of this store.
    pub fn sync_firewall(&self) -> Result<()> {
        let hub = self.host.hub();
        if hub
            .as_deref()
            .is_some_and(|h| !crate::host::is_namespace(h))
        {
            // Rootless with no hub yet: its rules are loaded when it is made.
            return Ok(());
        }
        crate::firewall::sync(hub.as_deref(), &self.table(), &self.list()?)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// A network's leases: `networks/leases/<name>.json` (names never hold
    /// '/', so nothing else can land there).
    pub fn leases(&self, name: &str) -> Leases {
        Leases::new(&self.dir.join("leases").join(format!("{name}.json")))
    }

    fn lock(&self) -> Result<estiba_os::LockFile> {
        crate::state::lock(&self.dir.join(".lock"))
    }

    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).ctx("listing", &self.dir)?;
        for e in entries {
            let e = e.ctx("listing", &self.dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Network names never start with '.' (`.ports.json`, `.lock`).
            if let Some(n) = name.strip_suffix(".json") {
                if !n.starts_with('.') && !n.contains(".tmp-") && e.path().is_file() {
                    out.push(self.get(n)?);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<NetworkRecord> {
        if !valid_name(name) {
            return Err(Error::NotFound(name.to_string()));
        }
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Invalid {
                what: "network record",
                value: path.display().to_string(),
                why: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotFound(name.to_string()))
            }
            Err(e) => Err(e).ctx("reading", &path),
        }
    }

    /// The named network; the default one is made on first use.
    pub fn get_or_default(&self, name: &str) -> Result<NetworkRecord> {
        match self.get(name) {
            Err(Error::NotFound(_)) if name == DEFAULT_NETWORK => {
                match self.create(name, Some(DEFAULT_SUBNET), None, false) {
                    Err(Error::Exists(_)) => self.get(name),
                    other => other,
                }
            }
            other => other,
        }
    }

    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        internal: bool,
    ) -> Result<NetworkRecord> {
        self.create_with(
            name,
            subnet,
            gateway,
            internal,
            crate::egress::Policy::default(),
        )
    }

    pub fn create_with(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        internal: bool,
        egress: crate::egress::Policy,
    ) -> Result<NetworkRecord> {
        if !valid_name(name) {
            return Err(Error::Invalid {
                what: "network name",
                value: name.to_string(),
                why: "letters, digits, '_', '.' and '-', starting with a letter or digit; not none or host".into(),
            });
        }
        let _lock = self.lock()?;
        if self.path(name).exists() {
            return Err(Error::Exists(name.to_string()));
        }
        let existing = self.list()?;
        // Root's bridges sit beside the host's own routes; a rootless hub
        // only beside slirp4netns's network.
        let routes = if self.host.rootless() {
            vec![(
                "slirp4netns".to_string(),
                Subnet {
                    base: Ipv4Addr::new(10, 0, 2, 0),
                    prefix: 24,
                },
            )]
        } else {
            (self.routes)()
        };
        let subnet = match subnet {
            Some(s) => {
                let s: Subnet = s.parse()?;
                if let Some(other) = existing
                    .iter()
                    .find(|n| n.subnet().is_ok_and(|o| o.overlaps(s)))
                {
                    return Err(Error::Invalid {
                        what: "subnet",
                        value: s.to_string(),
                        why: format!("overlaps network {} ({})", other.name, other.subnet),
                    });
                }
                if let Some((dev, route)) = routes.iter().find(|(_, r)| r.overlaps(s)) {
                    return Err(Error::Invalid {
                        what: "subnet",
                        value: s.to_string(),
                        why: format!("overlaps {route}, which the host routes through {dev}"),
                    });
                }
                s
            }
            // The first free 10.90.N.0/24.
            None => (1..=255u8)
                .map(|n| Subnet {
                    base: Ipv4Addr::new(10, 90, n, 0),
                    prefix: 24,
                })
                .find(|s| {
                    !existing
                        .iter()
                        .any(|n| n.subnet().is_ok_and(|o| o.overlaps(*s)))
                        && !routes.iter().any(|(_, r)| r.overlaps(*s))
                })
                .ok_or_else(|| Error::Invalid {
                    what: "subnet",
                    value: "10.90.0.0/16".into(),
                    why: "every automatic subnet is taken; give --subnet".into(),
                })?,
        };
        let gateway = match gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| Error::Invalid {
                    what: "gateway",
                    value: g.to_string(),
                    why: "not an IPv4 address".into(),
                })?;
                if !subnet.contains(g) || g == subnet.base || g == subnet.broadcast() {
                    return Err(Error::Invalid {
                        what: "gateway",
                        value: g.to_string(),
                        why: format!("not a usable address of {subnet}"),
                    });
                }
                g
            }
            None => subnet.first(),
        };
        let id = estiba_os::random_hex(32);
        let record = NetworkRecord {
            name: name.to_string(),
            bridge: format!("es-{}", &id[..12]),
            id,
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway,
            internal,
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            egress,
        };
        let data = serde_json::to_vec_pretty(&record).map_err(|e| Error::Invalid {
            what: "network record",
            value: name.to_string(),
            why: e.to_string(),
        })?;
        estiba_os::write_atomic(&self.path(name), &data)?;
        Ok(record)
    }

    /// Removes a network nobody uses: its bridge, rules and record.
    /// `alive` tells whether a lease's container still exists.
    pub fn remove(&self, name: &str, alive: &dyn Fn(&str) -> bool) -> Result<NetworkRecord> {
        let _lock = self.lock()?;
        let record = self.get(name)?;
        let leases = self.leases(name);
        leases.retain(alive)?;
        let users: Vec<String> = leases
            .all()?
            .into_values()
            .map(|o| o[..o.len().min(12)].to_string())
            .collect();
        if !users.is_empty() {
            return Err(Error::InUse {
                name: name.to_string(),
                users: users.join(", "),
            });
        }
        crate::attach::remove_bridge(&self.host, &record)?;
        let _ = std::fs::remove_file(self.dir.join("leases").join(format!("{name}.json")));
        let _ = std::fs::remove_file(self.dir.join("leases").join(format!("{name}.lock")));
        std::fs::remove_file(self.path(name)).ctx("removing", self.path(name))?;
        self.sync_firewall()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_parse() {
        let text =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = routes_in(text);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].0, "eth0");
        assert_eq!(routes[0].1.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn subnets_never_overlap_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        // No host routes at all: the result cannot depend on this machine's.
        let n = Networks::open(dir.path(), crate::host::NetHost::Root)
            .unwrap()
            .with_routes(Vec::new);
        let a = n.create("a", None, None, false).unwrap();
        assert_eq!(a.subnet, "10.90.1.0/24");
        assert_eq!(a.gateway, Ipv4Addr::new(10, 90, 1, 1));
        assert!(a.bridge.len() <= 15);
        let b = n
            .create("b", Some("10.91.0.0/16"), Some("10.91.0.254"), true)
            .unwrap();
        assert!(b.internal);
        assert!(matches!(
            n.create("c", Some("10.91.3.0/24"), None, false),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            n.create("a", None, None, false),
            Err(Error::Exists(_))
        ));
        assert!(n
            .create("d", Some("10.92.0.0/24"), Some("10.93.0.1"), false)
            .is_err());
        for bad in ["", "none", "host", "-x", "a/b", "../x"] {
            assert!(n.create(bad, None, None, false).is_err(), "{bad}");
        }
        assert_eq!(
            n.get_or_default(DEFAULT_NETWORK).unwrap().subnet,
            DEFAULT_SUBNET
        );
        let names: Vec<String> = n.list().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "b", "estiba"]);
    }

    /// The defect this guards against: the test above read the real
    /// routing table and failed wherever a bridge held 10.90.1.0/24.
    #[test]
    fn subnets_the_host_routes_are_skipped_and_refused() {
        fn routes() -> Vec<(String, Subnet)> {
            vec![("br-other".into(), "10.90.1.0/24".parse().unwrap())]
        }
        let dir = tempfile::tempdir().unwrap();
        let n = Networks::open(dir.path(), crate::host::NetHost::Root)
            .unwrap()
            .with_routes(routes);
        assert_eq!(
            n.create("a", None, None, false).unwrap().subnet,
            "10.90.2.0/24"
        );
        let err = n
            .create("b", Some("10.90.1.128/25"), None, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("br-other"), "{err}");
    }
}
