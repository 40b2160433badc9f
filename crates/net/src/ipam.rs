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

use crate::{Error, Result};

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
}

/// The leases of one network.
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
    ) -> Result<Ipv4Addr> {
        self.with(|file| {
            if let Some((ip, _)) = file.leases.iter().find(|(_, o)| o.as_str() == owner) {
                if wanted.is_none_or(|w| w == *ip) {
                    return Ok(*ip);
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
            Ok(ip)
        })
    }

    /// Frees whatever `owner` holds.
    pub fn release(&self, owner: &str) -> Result<()> {
        self.with(|file| {
            file.leases.retain(|_, o| o != owner);
            Ok(())
        })
    }

    pub fn all(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        self.with(|file| Ok(file.leases.clone()))
    }

    /// Frees the leases of owners `keep` says are gone (crash recovery).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<usize> {
        self.with(|file| {
            let before = file.leases.len();
            file.leases.retain(|_, o| keep(o));
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
        let a = l.acquire("n", s, gw, "a", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 90, 0, 2));
        assert_eq!(l.acquire("n", s, gw, "a", None).unwrap(), a, "sticky");
        let b = l
            .acquire("n", s, gw, "b", Some(Ipv4Addr::new(10, 90, 0, 6)))
            .unwrap();
        assert!(l.acquire("n", s, gw, "c", Some(b)).is_err(), "taken");
        assert!(
            l.acquire("n", s, gw, "c", Some(Ipv4Addr::new(10, 91, 0, 6)))
                .is_err(),
            "outside"
        );
        assert!(l.acquire("n", s, gw, "c", Some(gw)).is_err(), "the gateway");
        for owner in ["c", "d", "e"] {
            l.acquire("n", s, gw, owner, None).unwrap();
        }
        assert!(matches!(
            l.acquire("n", s, gw, "f", None),
            Err(Error::Exhausted { .. })
        ));
        l.release("a").unwrap();
        assert_eq!(l.acquire("n", s, gw, "f", None).unwrap(), a);
    }
}
