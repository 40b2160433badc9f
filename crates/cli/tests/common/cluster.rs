//! A real control plane (`estiba cluster serve`) and real agents for the
//! tests, with the AWS CLI and boto3 from Debian as their clients.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::Estiba;

/// An access key from `estiba cluster user add`.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    store: String,
    extra: Vec<String>,
    /// Environment for `cluster serve` (the FARGATE capacity's estiba root).
    env: Vec<(String, String)>,
    pub admin: Key,
    pub readonly: Key,
    /// With TLS: the self-signed certificate, its own CA.
    pub ca: Option<PathBuf>,
    /// More replicas of `cluster serve` on the same store and data
    /// directory, each on its own port (None once killed).
    replicas: Vec<(String, Option<Child>)>,
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl ControlPlane {
    /// On SQLite, on 127.0.0.1, with 1 s heartbeats and `extra` flags.
    pub fn start(extra: &[&str]) -> ControlPlane {
        Self::start_on("sqlite", "127.0.0.1", extra)
    }

    /// With `--fargate`: FARGATE tasks run in `capacity`'s estiba root,
    /// whose images are used as cached (they cannot be pulled here).
    pub fn start_fargate(capacity: &Estiba) -> ControlPlane {
        let d = capacity.path();
        let env = vec![
            ("ESTIBA_ROOT".into(), d.join("data").display().to_string()),
            ("ESTIBA_RUNROOT".into(), d.join("run").display().to_string()),
            ("ECS_IMAGE_PULL_BEHAVIOR".into(), "prefer-cached".into()),
        ];
        Self::start_with("sqlite", "127.0.0.1", &["--fargate"], env)
    }

    pub fn start_on(store: &str, host: &str, extra: &[&str]) -> ControlPlane {
        Self::start_with(store, host, extra, Vec::new())
    }

    /// Over HTTPS, with a certificate for 127.0.0.1 from a private CA
    /// (both made by openssl) that clients must be told to trust.
    pub fn start_tls() -> ControlPlane {
        let certs = tempfile::tempdir().expect("tempdir");
        let at = |name: &str| certs.path().join(name).display().to_string();
        let (ca, ca_key, csr, cert, key, ext) = (
            at("ca.pem"),
            at("ca.key"),
            at("leaf.csr"),
            at("cert.pem"),
            at("key.pem"),
            at("leaf.ext"),
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extensions");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for args in [
            vec![
                "-x509",
                "-days",
                "1",
                "-subj",
                "/CN=estiba test CA",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
            ],
            vec!["-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr],
        ] {
            let out = Command::new("openssl")
                .arg("req")
                .args(ec)
                .args(args)
                .output()
                .expect("openssl");
            check(out, "openssl req");
        }
        let out = Command::new("openssl")
            .args(["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key])
            .args([
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ])
            .output()
            .expect("openssl");
        check(out, "openssl x509");
        let extra = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        let mut cp = Self::prepare("sqlite", "127.0.0.1", &extra, Vec::new());
        let kept = cp.dir.path().join("ca.pem");
        std::fs::copy(&ca, &kept).expect("the CA");
        cp.ca = Some(kept);
        // The key and certificate are read once, at start.
        cp.spawn();
        cp
    }

    fn start_with(
        store: &str,
        host: &str,
        extra: &[&str],
        env: Vec<(String, String)>,
    ) -> ControlPlane {
        let mut cp = Self::prepare(store, host, extra, env);
        cp.spawn();
        cp
    }

    /// The data directory, an admin and a readonly user; not started.
    fn prepare(
        store: &str,
        host: &str,
        extra: &[&str],
        env: Vec<(String, String)>,
    ) -> ControlPlane {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = ControlPlane {
            addr: format!("{host}:{}", free_port()),
            dir,
            child: None,
            store: store.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env,
            admin: Key {
                id: String::new(),
                secret: String::new(),
            },
            readonly: Key {
                id: String::new(),
                secret: String::new(),
            },
            ca: None,
            replicas: Vec::new(),
        };
        cp.admin = cp.add_user("admin", "admin");
        cp.readonly = cp.add_user("viewer", "readonly");
        cp
    }

    /// An HTTP client that trusts this control plane's certificate.
    fn http(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).expect("the CA");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM"));
        }
        b.build().expect("an HTTP client")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `estiba cluster …` on this control plane's state.
    pub fn admin_cmd(&self, args: &[&str]) -> Output {
        Command::new(super::bin())
            .arg("cluster")
            .args(args)
            .arg("--data")
            .arg(self.data())
            .args(["--store", &self.store])
            .output()
            .expect("estiba cluster")
    }

    pub fn add_user(&self, name: &str, policy: &str) -> Key {
        let out = check(
            self.admin_cmd(&["user", "add", name, "--policy", policy]),
            "cluster user add",
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("CreateAccessKey JSON");
        Key {
            id: v["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string(),
            secret: v["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    pub fn token(&self) -> String {
        check(
            self.admin_cmd(&["token", "create", "--ttl", "10m"]),
            "token create",
        )
        .trim()
        .to_string()
    }

    fn spawn(&mut self) {
        let child = self.serve_at(&self.addr.clone(), "serve.log");
        self.child = Some(child);
    }

    /// `cluster serve` on `addr`, logging to `log`; once it answers.
    fn serve_at(&self, addr: &str, log_name: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(log_name))
            .expect("log");
        let mut child = Command::new(super::bin())
            .args([
                "--log-level",
                "info",
                "cluster",
                "serve",
                "--addr",
                addr,
                "--data",
            ])
            .arg(self.data())
            .args(["--store", &self.store, "--heartbeat", "1s"])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("estiba cluster serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .http()
                .get(format!("{}/health", self.url_of(addr)))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the control plane did not start: {}", self.log());
    }

    /// Another replica on the same store; its index for `kill_replica`
    /// (0 is the first one).
    pub fn add_replica(&mut self) -> usize {
        let host = self
            .addr
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h)
            .to_string();
        let addr = format!("{host}:{}", free_port());
        let n = self.replicas.len() + 1;
        let child = self.serve_at(&addr, &format!("serve-{n}.log"));
        self.replicas.push((addr, Some(child)));
        n
    }

    fn url_of(&self, addr: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    /// Every replica's address, the first one first.
    fn addrs(&self) -> Vec<&str> {
        std::iter::once(self.addr.as_str())
            .chain(self.replicas.iter().map(|(a, _)| a.as_str()))
            .collect()
    }

    /// Every replica's URL, comma-separated: what agents are given.
    pub fn urls(&self) -> String {
        self.addrs()
            .iter()
            .map(|a| self.url_of(a))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn alive(&self, i: usize) -> bool {
        match i {
            0 => self.child.is_some(),
            i => self.replicas[i - 1].1.is_some(),
        }
    }

    /// The URL of the first replica still running.
    pub fn url(&self) -> String {
        let addrs = self.addrs();
        let i = (0..addrs.len()).find(|i| self.alive(*i)).unwrap_or(0);
        self.url_of(addrs[i])
    }

    /// Which replica leads, as the replicas say (`/leader`).
    pub fn leading(&self) -> Option<usize> {
        let addrs = self.addrs();
        (0..addrs.len()).filter(|i| self.alive(*i)).find(|i| {
            self.http()
                .get(format!("{}/leader", self.url_of(addrs[*i])))
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
                .is_ok_and(|v| v["leading"] == true)
        })
    }

    /// SIGKILL of one replica (0: the first).
    pub fn kill_replica(&mut self, i: usize) {
        let child = match i {
            0 => self.child.take(),
            i => self.replicas[i - 1].1.take(),
        };
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.data().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the first replica and starts it again on another store.
    pub fn serve_on(&mut self, store: &str) {
        self.kill9();
        self.store = store.to_string();
        self.spawn();
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The AWS CLI (Debian's, not whatever else is on PATH) against this
    /// endpoint with `key`, in a clean environment.
    pub fn aws(&self, key: &Key, args: &[&str]) -> Command {
        self.aws_for(key, "ecs", args)
    }

    /// The AWS CLI's `SERVICE` commands (ecs, application-autoscaling)
    /// against this endpoint.
    pub fn aws_for(&self, key: &Key, service: &str, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/aws");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_PAGER", "")
            .args(["--endpoint-url", &self.url(), "--output", "json", service])
            .args(args);
        if let Some(ca) = &self.ca {
            c.env("AWS_CA_BUNDLE", ca);
        }
        c
    }

    /// `register-task-definition --family FAMILY --container-definitions DEFS`
    /// through the AWS CLI, as the admin.
    pub fn register(&self, family: &str, defs: &serde_json::Value) -> serde_json::Value {
        self.ecs(&[
            "register-task-definition",
            "--family",
            family,
            "--container-definitions",
            &defs.to_string(),
        ])
    }

    /// Runs the AWS CLI as the admin, asserts success, parses the JSON.
    pub fn ecs(&self, args: &[&str]) -> serde_json::Value {
        let out = check(
            self.aws(&self.admin, args).output().expect("aws"),
            &format!("aws ecs {args:?}"),
        );
        if out.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&out).expect("the AWS CLI's JSON")
    }

    /// estiba's own ECS client (`estiba task …`, `estiba service …`) as the
    /// admin; asserts success and returns its output.
    pub fn estiba(&self, args: &[&str]) -> String {
        let out = Command::new(super::bin())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("AWS_ACCESS_KEY_ID", &self.admin.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.admin.secret)
            .env("AWS_ENDPOINT_URL_ECS", self.url())
            .envs(self.ca.iter().map(|ca| ("AWS_CA_BUNDLE", ca)))
            .args(args)
            .output()
            .expect("estiba");
        assert!(
            out.status.success(),
            "estiba {args:?}: {}",
            super::stderr(&out)
        );
        super::stdout(&out)
    }

    /// A Python script with boto3 (Debian's), given ENDPOINT, KEY_ID and
    /// SECRET in its environment.
    pub fn python(&self, key: &Key, script: &str) -> Output {
        Command::new("/usr/bin/python3")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("ENDPOINT", self.url())
            .env("KEY_ID", &key.id)
            .env("SECRET", &key.secret)
            .args(["-c", script])
            .output()
            .expect("python3")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for i in 0..=self.replicas.len() {
            self.kill_replica(i);
        }
    }
}

/// `estiba agent` on an installation of its own.
pub struct Agent {
    pub e: Estiba,
    child: Option<Child>,
    server: String,
    token: String,
    extra: Vec<String>,
    /// The network namespace it runs in, if any.
    pub netns: Option<String>,
}

impl Agent {
    pub fn start(e: Estiba, cp: &ControlPlane, extra: &[&str]) -> Agent {
        Self::start_in(e, cp.url(), cp.token(), None, extra)
    }

    pub fn start_in(
        e: Estiba,
        server: String,
        token: String,
        netns: Option<String>,
        extra: &[&str],
    ) -> Agent {
        let mut a = Agent {
            e,
            child: None,
            server,
            token,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns,
        };
        a.spawn();
        a
    }

    pub fn data(&self) -> PathBuf {
        self.e.path().join("data")
    }

    fn spawn(&mut self) {
        // Agents beside each other on one host pick their networks'
        // subnets from the host's routes: one at a time, so two never take
        // the same one (separate machines never race).
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let data = self.data();
        let mut args: Vec<String> = vec![
            "--root".into(),
            data.display().to_string(),
            "--log-level".into(),
            "info".into(),
            "agent".into(),
            "--server".into(),
            self.server.clone(),
            "--token".into(),
            self.token.clone(),
            "--image-pull-behavior".into(),
            "prefer-cached".into(),
        ];
        if self.netns.is_none() {
            // Agents beside each other in one namespace: a port each.
            args.extend(["--listen".into(), format!("127.0.0.1:{}", free_port())]);
        }
        args.extend(self.extra.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut inner = self.e.daemon_cmd(&argv);
        let mut cmd = match &self.netns {
            Some(ns) => {
                // nsenter, not `ip netns exec`: that one also mounts a sysfs
                // of the namespace's own, which hides the host's cgroups.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(inner.get_program())
                    .args(inner.get_args());
                c
            }
            None => std::mem::replace(&mut inner, Command::new("true")),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.e.path().join("agent.log"))
            .expect("log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("estiba agent");
        self.child = Some(child);
        let saved = data.join("agent/node.json");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !saved.exists() || !self.e.ok(&["network", "ls"]).contains("ecs-bridge") {
            assert!(
                Instant::now() < deadline,
                "the agent did not join: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.e.path().join("agent.log")).unwrap_or_default()
    }

    pub fn instance_id(&self) -> String {
        let saved = std::fs::read(self.data().join("agent/node.json")).expect("node.json");
        let v: serde_json::Value = serde_json::from_slice(&saved).expect("node.json is JSON");
        v["instanceId"].as_str().expect("instanceId").to_string()
    }

    /// SIGKILL of the agent process itself (not of the wrappers around it),
    /// as a crash would; its containers' monitors are other processes.
    pub fn kill9(&mut self) {
        let pattern = format!("{} --log-level info agent", self.data().display());
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A test bridge on the host and one network namespace per node, each
/// linked to it by a veth pair with an address of its own: a cluster's
/// nodes on one machine. Everything is removed on drop.
pub struct TestNet {
    pub bridge: String,
    /// `10.213.N`: the bridge is .1, node i is .(10 + i).
    pub prefix: String,
    pub namespaces: Vec<String>,
    tag: String,
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestNet {
    pub fn new(nodes: usize) -> TestNet {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let third = (std::process::id() % 50) * 5 + n % 5 + 1;
        let net = TestNet {
            bridge: format!("ecb{tag}"),
            prefix: format!("10.213.{third}"),
            namespaces: (0..nodes).map(|i| format!("estiba-t{tag}-{i}")).collect(),
            tag,
        };
        sh(&format!(
            "ip link add {b} type bridge && ip addr add {p}.1/24 dev {b} && ip link set {b} up",
            b = net.bridge,
            p = net.prefix
        ));
        for (i, ns) in net.namespaces.iter().enumerate() {
            let (host, peer) = net.veth(i);
            sh(&format!(
                "ip netns add {ns} && ip link add {host} type veth peer name {peer} && \
                 ip link set {peer} netns {ns} && ip link set {host} master {b} up && \
                 ip -n {ns} addr add {ip}/24 dev {peer} && ip -n {ns} link set {peer} up && \
                 ip -n {ns} link set lo up && ip -n {ns} route add default via {p}.1",
                b = net.bridge,
                ip = net.node_ip(i),
                p = net.prefix,
            ));
        }
        net
    }

    fn veth(&self, i: usize) -> (String, String) {
        (format!("ve{}h{i}", self.tag), format!("ve{}n{i}", self.tag))
    }

    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// Cuts node i off the bridge, as a pulled cable would.
    pub fn cut(&self, i: usize) {
        sh(&format!("ip link set {} down", self.veth(i).0));
    }

    pub fn mend(&self, i: usize) {
        sh(&format!("ip link set {} up", self.veth(i).0));
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Whatever still runs in it (DNS responders, containers'
            // monitors) would keep it alive.
            let _ = Command::new("sh")
                .args([
                    "-c",
                    &format!("ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}"),
                ])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
