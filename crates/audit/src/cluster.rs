//! Cluster checks: how the control plane is run. The CLI finds the
//! control-plane replicas and agents among this host's processes (or is
//! told the control plane's directory and store) and gathers the facts.

use crate::catalog::TargetKind;
use crate::finding::{Finding, Location, Target};
use crate::host::PathFacts;

/// One `estiba cluster serve`.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub pid: u32,
    pub address: String,
    pub tls: bool,
    /// `sqlite`, or the etcd endpoints.
    pub etcd: Vec<String>,
}

/// One `estiba agent`'s listening socket.
#[derive(Clone, Debug, Default)]
pub struct AgentListener {
    pub pid: u32,
    pub address: String,
}

#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// The control plane's directory.
    pub data: String,
    pub replicas: Vec<Replica>,
    pub agents: Vec<AgentListener>,
    /// Its audit log, if it exists.
    pub audit_log: Option<PathFacts>,
    /// Its sealing key, if it exists.
    pub seal_key: Option<PathFacts>,
}

pub fn audit(f: &ClusterFacts) -> Vec<Finding> {
    let target = Target::new(TargetKind::Cluster, f.data.clone());
    let mut out = Vec::new();
    let mut found = |id: &str, what: &str, message: String| {
        out.push(Finding::new(
            id,
            &target,
            Location::Config { field: what.into() },
            message,
        ));
    };
    let etcd = f.replicas.iter().map(|r| r.etcd.len()).max().unwrap_or(0);
    if etcd == 0 {
        let m = format!(
            "{} replica(s) on SQLite: one machine's loss stops the control plane",
            f.replicas.len().max(1)
        );
        found("ESB-K-001", "store", m);
    } else if etcd < 3 || etcd % 2 == 0 {
        let m = format!(
            "etcd has {etcd} members: it needs an odd number, three or more, to survive a loss"
        );
        found("ESB-K-002", "store", m);
    }
    for r in f.replicas.iter().filter(|r| !r.tls) {
        let m = format!(
            "cluster serve (pid {}) serves the ECS API on {} without TLS",
            r.pid, r.address
        );
        found("ESB-K-003", "api", m);
    }
    for a in &f.agents {
        if a.address.starts_with("0.0.0.0:")
            || a.address.starts_with("[00000000000000000000000000000000]:")
        {
            let m = format!(
                "agent (pid {}) listens on every interface: {}",
                a.pid, a.address
            );
            found("ESB-K-004", "agents", m);
        }
    }
    if f.audit_log.is_none() {
        found(
            "ESB-K-005",
            "audit-log",
            format!("{}/audit.log does not exist", f.data),
        );
    }
    match &f.seal_key {
        Some(k) if k.mode & 0o077 != 0 => {
            let m = format!("{} is mode {:o}", k.path, k.mode & 0o7777);
            found("ESB-K-006", "seal-key", m);
        }
        Some(k) => found(
            "ESB-K-007",
            "secrets",
            format!(
                "secrets and access keys are sealed under {} (mode {:o})",
                k.path,
                k.mode & 0o7777
            ),
        ),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(f: &ClusterFacts) -> Vec<&'static str> {
        let mut v: Vec<&str> = audit(f).iter().map(|f| f.rule.id).collect();
        v.dedup();
        v
    }

    #[test]
    fn a_highly_available_cluster_has_only_facts() {
        let key = PathFacts {
            path: "/srv/cluster/seal.key".into(),
            mode: 0o600,
            ..PathFacts::default()
        };
        let replica = |pid| Replica {
            pid,
            address: "10.0.0.1:8440".into(),
            tls: true,
            etcd: vec!["a:2379".into(), "b:2379".into(), "c:2379".into()],
        };
        let f = ClusterFacts {
            data: "/srv/cluster".into(),
            replicas: vec![replica(1), replica(2)],
            agents: vec![AgentListener {
                pid: 3,
                address: "10.0.0.2:51678".into(),
            }],
            audit_log: Some(PathFacts::default()),
            seal_key: Some(key),
        };
        assert_eq!(ids(&f), ["ESB-K-007"]);
    }

    #[test]
    fn each_lapse_names_its_rule() {
        let f = ClusterFacts {
            data: "/srv/cluster".into(),
            replicas: vec![Replica {
                pid: 1,
                address: "0.0.0.0:8440".into(),
                ..Replica::default()
            }],
            agents: vec![AgentListener {
                pid: 3,
                address: "0.0.0.0:51678".into(),
            }],
            audit_log: None,
            seal_key: Some(PathFacts {
                path: "k".into(),
                mode: 0o644,
                ..PathFacts::default()
            }),
        };
        assert_eq!(
            ids(&f),
            [
                "ESB-K-001",
                "ESB-K-003",
                "ESB-K-004",
                "ESB-K-005",
                "ESB-K-006"
            ]
        );
        let two = ClusterFacts {
            replicas: vec![Replica {
                etcd: vec!["a".into(), "b".into()],
                tls: true,
                ..Replica::default()
            }],
            audit_log: Some(PathFacts::default()),
            ..ClusterFacts::default()
        };
        assert_eq!(ids(&two), ["ESB-K-002"]);
    }
}
