//! A real `estiba registry serve` for the tests: its own root, a free port
//! on 127.0.0.1, a config; restartable and killable with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use sha2::Digest as _;

/// Anyone may pull, push and delete: for the spec tests.
pub const OPEN: &str = r#"
[[policy]]
repositories = "*"
anonymous = true
actions = ["pull", "push", "delete"]
"#;

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    config: String,
    extra: Vec<String>,
}

impl Registry {
    pub fn start(config: &str) -> Registry {
        Self::start_with(config, &[])
    }

    /// With extra `serve` flags.
    pub fn start_with(config: &str, extra: &[&str]) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Registry {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            child: None,
            config: config.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn spawn(&mut self) {
        std::fs::write(self.config_path(), &self.config).expect("config");
        let child = Command::new(super::bin())
            .args(["--log-level", "info", "registry", "serve", "--root"])
            .arg(self.root())
            .args(["--addr", &self.addr, "--config"])
            .arg(self.config_path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("serve.log")).expect("log"))
            .spawn()
            .expect("estiba registry serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let scheme = if self.config.contains("[tls]") {
            "https"
        } else {
            "http"
        };
        let client = reqwest::blocking::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("client");
        while Instant::now() < deadline {
            if client
                .get(format!("{scheme}://{}/health", self.addr))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the registry did not start: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `estiba registry ...` against this registry's root.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(super::bin())
            .arg("--root")
            .arg(self.root())
            .arg("registry")
            .args(args)
            .output()
            .expect("estiba registry")
    }

    pub fn add_user(&self, name: &str, password: &str, extra: &[&str]) {
        use std::io::Write;
        let mut child = Command::new(super::bin())
            .arg("--root")
            .arg(self.root())
            .args(["registry", "user", "add", name, "--password-stdin"])
            .args(extra)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("user add");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("password");
        let out = child.wait_with_output().expect("user add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill9();
        // A failing test shows what the server said.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- registry log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Files under `dir`, recursively (to check nothing was stored).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
