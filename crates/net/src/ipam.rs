//! IPv4 subnets and address leases. Leases live in one JSON file per
//! network, changed under an exclusive flock and replaced atomically, so
//! two commands never hand out the same address and a crash never loses
//! the file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, IoContext, Result};

/// An IPv4 network, `a.b.c.d/len`, with the host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The first usable address: the default gateway.
    pub fn first(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !self.mask())
    }
}

impl FromStr for Subnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |why: &str| Error::Invalid {
            what: "subnet",
            value: s.to_string(),
            why: why.to_string(),
        };
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| invalid("give it as a.b.c.d/len"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| invalid("the length is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(invalid("the length must be between 8 and 30"));
        }
        let subnet = Subnet { base: ip, prefix };
        if u32::from(ip) & !subnet.mask() != 0 {
            return Err(invalid("host bits are set"));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    /// Address → container id.
    leases: BTreeMap<Ipv4Addr, String>,
    /// Container id → what the network's DNS responder needs about it.
    /// Kept in the same file as the leases, so both change together.
    #[serde(default)]
    endpoints: BTreeMap<String, Endpoint>,
}

/// How a lease holder is known on its network: the names it answers to
/// (container name, hostname, short id, `--network-alias`), and how the
/// DNS responder treats its other questions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub names: Vec<String>,
    /// `--dns`: the upstream resolvers for this container's other names;
    /// empty means the host's.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// False when the container may not reach the outside (egress deny,
    /// an internal network): its other names are then not forwarded, so
    /// DNS does not become a way out.
    #[serde(default)]
    pub forward: bool,
}

/// A lease as the DNS responder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub ip: Ipv4Addr,
    pub owner: String,
    pub endpoint: Endpoint,
}

/// The leases of one network.
#[derive(Clone, Debug)]
pub struct Leases {
    path: PathBuf,
}

impl Leases {
    pub fn new(path: &Path) -> Leases {
        Leases {
            path: path.to_path_buf(),
        }
    }

    /// Runs `f` on the lease file under its lock, saving what it changed.
    fn with<T>(&self, f: impl FnOnce(&mut LeaseFile) -> Result<T>) -> Result<T> {
        crate::state::update(&self.path, f, |_| Ok(()))
    }

    /// Leases `wanted` (or the first free address) to `owner`. The same
    /// owner asking again gets its address back.
    pub fn acquire(
        &self,
        name: &str,
        subnet: Subnet,
        gateway: Ipv4Addr,
        owner: &str,
        wanted: Option<Ipv4Addr>,
        endpoint: Endpoint,
    ) -> Result<Ipv4Addr> {
        self.with(|file| {
            if let Some((ip, _)) = file.leases.iter().find(|(_, o)| o.as_str() == owner) {
                if wanted.is_none_or(|w| w == *ip) {
                    let ip = *ip;
                    file.endpoints.insert(owner.to_string(), endpoint);
                    return Ok(ip);
                }
            }
            let ip = match wanted {
                Some(ip) => {
                    let usable = subnet.contains(ip)
                        && ip != subnet.base
                        && ip != subnet.broadcast()
                        && ip != gateway;
                    if !usable {
                        return Err(Error::Invalid {
                            what: "address",
                            value: ip.to_string(),
                            why: format!("not a usable address of {name} ({subnet})"),
                        });
                    }
                    if let Some(other) = file.leases.get(&ip) {
                        return Err(Error::Invalid {
                            what: "address",
                            value: ip.to_string(),
                            why: format!("already leased to {}", &other[..other.len().min(12)]),
                        });
                    }
                    ip
                }
                None => {
                    let (first, last) = (u32::from(subnet.first()), u32::from(subnet.broadcast()));
                    (first..last)
                        .map(Ipv4Addr::from)
                        .find(|ip| *ip != gateway && !file.leases.contains_key(ip))
                        .ok_or_else(|| Error::Exhausted {
                            name: name.to_string(),
                            subnet: subnet.to_string(),
                        })?
                }
            };
            file.leases.retain(|_, o| o != owner);
            file.leases.insert(ip, owner.to_string());
            file.endpoints.insert(owner.to_string(), endpoint);
            Ok(ip)
        })
    }

    /// Frees whatever `owner` holds.
    pub fn release(&self, owner: &str) -> Result<()> {
        self.with(|file| {
            file.leases.retain(|_, o| o != owner);
            file.endpoints.remove(owner);
            Ok(())
        })
    }

    /// Adds (or, with `add` false, removes) names of `owner`'s lease: a
    /// pod's containers answer at the pod's address.
    pub fn change_names(&self, owner: &str, names: &[String], add: bool) -> Result<()> {
        self.with(|file| {
            if let Some(e) = file.endpoints.get_mut(owner) {
                for n in names {
                    let has = e.names.contains(n);
                    if add && !has {
                        e.names.push(n.clone());
                    } else if !add && has {
                        e.names.retain(|x| x != n);
                    }
                }
            }
            Ok(())
        })
    }

    pub fn all(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        self.with(|file| Ok(file.leases.clone()))
    }

    /// Every lease with its endpoint, read without the lock: the file is
    /// only ever replaced whole, so a reader sees one version or the next.
    /// This is what the DNS responder reads on every change.
    pub fn holders(&self) -> Result<Vec<Holder>> {
        let file: LeaseFile = match std::fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Invalid {
                what: "lease file",
                value: self.path.display().to_string(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LeaseFile::default(),
            Err(e) => return Err(e).ctx("reading", &self.path),
        };
        Ok(file
            .leases
            .into_iter()
            .map(|(ip, owner)| Holder {
                ip,
                endpoint: file.endpoints.get(&owner).cloned().unwrap_or_default(),
                owner,
            })
            .collect())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees the leases of owners `keep` says are gone (crash recovery).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<usize> {
        self.with(|file| {
            let before = file.leases.len();
            file.leases.retain(|_, o| keep(o));
            file.endpoints.retain(|o, _| keep(o));
            Ok(before - file.leases.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s: Subnet = "10.90.0.0/24".parse().unwrap();
        assert_eq!(s.first(), Ipv4Addr::new(10, 90, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 90, 0, 255));
        assert!(s.overlaps("10.90.0.128/25".parse().unwrap()));
        assert!(s.overlaps("10.0.0.0/8".parse().unwrap()));
        assert!(!s.overlaps("10.91.0.0/24".parse().unwrap()));
        for bad in [
            "10.90.0.1/24",
            "10.90.0.0",
            "10.90.0.0/33",
            "x/24",
            "10.90.0.0/31",
            "::1/64",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn leases_are_unique_sticky_and_freed() {
        let dir = tempfile::tempdir().unwrap();
        let l = Leases::new(&dir.path().join("n.json"));
        let s: Subnet = "10.90.0.0/29".parse().unwrap();
        let gw = s.first();
        let a = l
            .acquire("n", s, gw, "a", None, Endpoint::default())
            .unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 90, 0, 2));
        assert_eq!(
            l.acquire("n", s, gw, "a", None, Endpoint::default())
                .unwrap(),
            a,
            "sticky"
        );
        let b = l
            .acquire(
                "n",
                s,
                gw,
                "b",
                Some(Ipv4Addr::new(10, 90, 0, 6)),
                Endpoint::default(),
            )
            .unwrap();
        assert!(
            l.acquire("n", s, gw, "c", Some(b), Endpoint::default())
                .is_err(),
            "taken"
        );
        assert!(
            l.acquire(
                "n",
                s,
                gw,
                "c",
                Some(Ipv4Addr::new(10, 91, 0, 6)),
                Endpoint::default()
            )
            .is_err(),
            "outside"
        );
        assert!(
            l.acquire("n", s, gw, "c", Some(gw), Endpoint::default())
                .is_err(),
            "the gateway"
        );
        for owner in ["c", "d", "e"] {
            l.acquire("n", s, gw, owner, None, Endpoint::default())
                .unwrap();
        }
        assert!(matches!(
            l.acquire("n", s, gw, "f", None, Endpoint::default()),
            Err(Error::Exhausted { .. })
        ));
        l.release("a").unwrap();
        assert_eq!(
            l.acquire("n", s, gw, "f", None, Endpoint::default())
                .unwrap(),
            a
        );
    }
}
