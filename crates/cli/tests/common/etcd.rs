//! A real three-member etcd cluster (Debian's etcd-server) on loopback
//! ports, for the control plane's tests on etcd. Killed when dropped.

use super::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    pub dir: tempfile::TempDir,
    members: Vec<Option<Child>>,
    pub endpoints: Vec<String>,
}

fn member(dir: &Path, i: usize, client: &str, peer: &str, initial: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("m{i}.log"))).expect("log");
    Command::new("etcd")
        .arg("--name")
        .arg(format!("m{i}"))
        .arg("--data-dir")
        .arg(dir.join(format!("m{i}")))
        .args([
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
        ])
        .args([
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .args([
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
        ])
        .args(["--initial-cluster-token", "estiba-cluster-test"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting etcd")
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[i].1);
        let initial: Vec<String> = (0..3).map(|i| format!("m{i}={}", peer(i))).collect();
        let mut etcd = Etcd {
            members: Vec::new(),
            endpoints: Vec::new(),
            dir,
        };
        for (i, (client, _)) in ports.iter().enumerate() {
            let url = format!("http://127.0.0.1:{client}");
            let child = member(etcd.dir.path(), i, &url, &peer(i), &initial.join(","));
            etcd.members.push(Some(child));
            etcd.endpoints.push(format!("127.0.0.1:{client}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for e in &etcd.endpoints {
            loop {
                let healthy = reqwest::blocking::get(format!("http://{e}/health"))
                    .and_then(|r| r.text())
                    .is_ok_and(|t| t.contains("true"));
                if healthy {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {e} never became healthy"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        etcd
    }

    /// `--store` for the control plane.
    pub fn store(&self) -> String {
        format!("etcd://{}", self.endpoints.join(","))
    }

    /// SIGKILL of one member: the other two are still a quorum.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// True when etcd is installed; outside CI a test without it says so.
pub fn installed() -> bool {
    super::require_tool("etcd")
}
