//! What an instance has and a task takes: CPU units, MiB of memory and
//! host ports; and which of them runs short.

use serde::{Deserialize, Serialize};

/// An amount of an instance's resources, ECS's way: CPU units and MiB
/// count what is free (or needed); PORTS and PORTS_UDP list the ports
/// *taken* (or wanted), as ECS's remainingResources does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU units: 1024 a core.
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub ports_udp: Vec<u16>,
}

fn union(a: &[u16], b: &[u16]) -> Vec<u16> {
    let mut v: Vec<u16> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Resources {
    /// Whether a task's `need` fits in `self`, without making what would
    /// be left: the filter's question, asked of every node.
    pub fn fits(&self, need: &Resources) -> Result<(), Shortfall> {
        if need.cpu > self.cpu {
            return Err(Shortfall::Cpu {
                needed: need.cpu,
                free: self.cpu,
            });
        }
        if need.memory > self.memory {
            return Err(Shortfall::Memory {
                needed: need.memory,
                free: self.memory,
            });
        }
        let clash = |taken: &[u16], want: &[u16]| want.iter().find(|p| taken.contains(p)).copied();
        if let Some(port) = clash(&self.ports, &need.ports) {
            return Err(Shortfall::Port { port, proto: "tcp" });
        }
        if let Some(port) = clash(&self.ports_udp, &need.ports_udp) {
            return Err(Shortfall::Port { port, proto: "udp" });
        }
        Ok(())
    }

    /// What is left of `self` once a task's `need` is taken, or which
    /// resource runs short (ECS's failure reasons).
    pub fn minus(&self, need: &Resources) -> Result<Resources, Shortfall> {
        self.fits(need)?;
        Ok(Resources {
            cpu: self.cpu - need.cpu,
            memory: self.memory - need.memory,
            ports: union(&self.ports, &need.ports),
            ports_udp: union(&self.ports_udp, &need.ports_udp),
        })
    }

    /// Gives a task's `held` resources back.
    pub fn plus(&self, held: &Resources) -> Resources {
        let without = |a: &[u16], b: &[u16]| a.iter().filter(|p| !b.contains(p)).copied().collect();
        Resources {
            cpu: self.cpu + held.cpu,
            memory: self.memory + held.memory,
            ports: without(&self.ports, &held.ports),
            ports_udp: without(&self.ports_udp, &held.ports_udp),
        }
    }
}

/// Which resource an instance lacks for a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    Cpu { needed: i64, free: i64 },
    Memory { needed: i64, free: i64 },
    Port { port: u16, proto: &'static str },
}

impl Shortfall {
    /// ECS's failure reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Shortfall::Cpu { .. } => "RESOURCE:CPU",
            Shortfall::Memory { .. } => "RESOURCE:MEMORY",
            Shortfall::Port { .. } => "RESOURCE:PORTS",
        }
    }
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortfall::Cpu { needed, free } => {
                write!(f, "needs {needed} CPU units, {free} free")
            }
            Shortfall::Memory { needed, free } => {
                write!(f, "needs {needed} MiB of memory, {free} MiB free")
            }
            Shortfall::Port { port, proto } => write!(f, "port {port}/{proto} is taken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: i64, memory: i64, ports: &[u16]) -> Resources {
        Resources {
            cpu,
            memory,
            ports: ports.to_vec(),
            ports_udp: vec![],
        }
    }

    #[test]
    fn reservations_name_what_is_short_and_give_back_what_they_took() {
        // 22 is taken (reserved); 80 is free until a task takes it.
        let free = res(2048, 1024, &[22]);
        let left = free.minus(&res(512, 256, &[80])).unwrap();
        assert_eq!(left, res(1536, 768, &[22, 80]));
        assert_eq!(left.plus(&res(512, 256, &[80])), free);
        assert_eq!(
            free.minus(&res(0, 0, &[22])).unwrap_err().reason(),
            "RESOURCE:PORTS"
        );
        assert_eq!(
            free.minus(&res(0, 2048, &[])).unwrap_err().reason(),
            "RESOURCE:MEMORY"
        );
        assert_eq!(
            free.minus(&res(4096, 0, &[])).unwrap_err().reason(),
            "RESOURCE:CPU"
        );
        assert_eq!(
            left.minus(&res(0, 0, &[80])).unwrap_err().to_string(),
            "port 80/tcp is taken"
        );
    }
}
