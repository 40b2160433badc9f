//! Harness for the integration tests: runs the real `estiba` binary against
//! a private store, as root or as a freshly created unprivileged user.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const TEST_USER: &str = "estiba-test";
/// A second user with no /etc/subuid range: only its own id can be mapped.
pub const TEST_USER_NO_SUBIDS: &str = "estiba-test-nosub";

/// True when the test may run. Tests that need root say so; outside CI they
/// print why and return, in CI (which is root) they fail.
pub fn require_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} needs root, and CI must run it"
    );
    eprintln!(
        "SKIPPED {what}: needs root (the kernel paths are tested as root and as a fresh user)"
    );
    false
}

/// Requires a host tool (installed by .ci/run); same rule as `require_root`.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing: .ci/run must install it"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

fn sh(cmd: &str) {
    let status = Command::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(status.success(), "command failed: {cmd}");
}

/// Runs a shell command and returns its stdout (failure is not checked).
pub fn sh_output(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh unprivileged user with a subordinate id range, made once per test
/// binary (removed and created again, so no state survives between runs).
pub fn test_user() -> &'static str {
    static USER: OnceLock<()> = OnceLock::new();
    USER.get_or_init(|| fresh_user(TEST_USER, true));
    TEST_USER
}

/// A fresh unprivileged user without subordinate ids.
pub fn test_user_without_subids() -> &'static str {
    static USER: OnceLock<()> = OnceLock::new();
    USER.get_or_init(|| fresh_user(TEST_USER_NO_SUBIDS, false));
    TEST_USER_NO_SUBIDS
}

fn fresh_user(name: &str, subids: bool) {
    // A previous run's processes (pause processes, containers) go first.
    let _ = Command::new("pkill").args(["-KILL", "-u", name]).output();
    let _ = Command::new("userdel").args(["-r", "-f", name]).output();
    sh(&format!("useradd -m -s /bin/sh {name}"));
    for file in ["/etc/subuid", "/etc/subgid"] {
        // useradd may have allocated a range: make the file say what the test needs.
        sh(&format!("sed -i '/^{name}:/d' {file}"));
        if subids {
            sh(&format!("echo {name}:300000:65536 >> {file}"));
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_estiba")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The busybox rootfs tarball, built once per test binary from Debian's
/// busybox-static, readable by everyone.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("estiba-busybox-{}.tar", std::process::id()));
        let status = Command::new(workspace().join("scripts/busybox-rootfs.sh"))
            .arg(&path)
            .status()
            .expect("busybox-rootfs.sh");
        assert!(
            status.success(),
            "building the busybox rootfs failed: is busybox-static installed?"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    })
}

/// A busybox root filesystem with the host's iperf3 and its libraries.
pub fn iperf_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("estiba-iperf-{}.tar", std::process::id()));
        let status = Command::new(workspace().join("scripts/busybox-rootfs.sh"))
            .arg(&path)
            .arg("/usr/bin/iperf3")
            .status()
            .expect("busybox-rootfs.sh");
        assert!(
            status.success(),
            "building the iperf3 rootfs failed: is iperf3 installed?"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    })
}

/// One estiba installation: a private store and runtime root, used as root
/// or as the test user.
pub struct Estiba {
    pub dir: tempfile::TempDir,
    pub user: Option<&'static str>,
    /// `ESTIBA_RUNTIME` for this installation; `None` lets estiba choose.
    pub runtime: Option<&'static str>,
}

impl Drop for Estiba {
    /// A rootless installation leaves its pause process (which holds the
    /// user namespace) running, as podman's does: end it with the test.
    fn drop(&mut self) {
        // Bridges, namespaces and nftables tables live outside the test's
        // directory: a test that failed midway must not leave them behind
        // (a stale bridge with the same subnet would confuse the next run).
        if self.dir.path().join("data/networks").exists() {
            let ids = self
                .cmd(&["ps", "-aq"])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            for id in String::from_utf8_lossy(&ids).split_whitespace() {
                let _ = self.cmd(&["rm", "-f", id]).output();
            }
            let pods = self
                .cmd(&["pod", "ls"])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            for line in String::from_utf8_lossy(&pods).lines().skip(1) {
                if let Some(pod) = line.split_whitespace().next() {
                    let _ = self.cmd(&["pod", "rm", "-f", pod]).output();
                }
            }
            let _ = self.cmd(&["network", "prune"]).output();
        }
        if self.user.is_some() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("run/pause.pid")) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
    }
}

impl Estiba {
    pub fn root() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("estiba-test-")
            .tempdir_in("/tmp")
            .unwrap();
        Estiba {
            dir,
            user: None,
            runtime: None,
        }
    }

    pub fn rootless() -> Self {
        Self::rootless_as(test_user())
    }

    pub fn rootless_as(user: &'static str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("estiba-test-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        sh(&format!("chown {user}: {}", dir.path().display()));
        Estiba {
            dir,
            user: Some(user),
            runtime: None,
        }
    }

    /// Root with a given runtime backend.
    pub fn root_with(runtime: &'static str) -> Self {
        let mut e = Estiba::root();
        e.runtime = Some(runtime);
        e
    }

    pub fn label(&self) -> String {
        let who = if self.user.is_some() {
            "rootless"
        } else {
            "root"
        };
        format!("{who}-{}", self.runtime.unwrap_or("default"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_env(&[], args)
    }

    /// Like `cmd`, with extra environment variables (the environment is
    /// otherwise cleared, as a fresh login would have it).
    pub fn cmd_env(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut vars = vec![
            format!("ESTIBA_ROOT={}", d.join("data").display()),
            format!("ESTIBA_RUNROOT={}", d.join("run").display()),
            format!("HOME={}", d.display()),
            format!("XDG_RUNTIME_DIR={}", d.display()),
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ];
        if let Some(runtime) = self.runtime {
            vars.push(format!("ESTIBA_RUNTIME={runtime}"));
        }
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut cmd = match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"]);
                c
            }
            None => Command::new("env"),
        };
        cmd.arg("-i")
            .args(&vars)
            .args(["timeout", "-s", "KILL", "300", bin()])
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running estiba")
    }

    /// Like `cmd`, for a long-running process (an agent): no time limit,
    /// so that killing it reaches estiba rather than a wrapper.
    pub fn daemon_cmd(&self, args: &[&str]) -> Command {
        let c = self.cmd(args);
        let argv: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_os_string()).collect();
        let mut out = Command::new(c.get_program());
        let mut skip = 0;
        for (i, a) in argv.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if a == "timeout" && argv.get(i + 1).is_some_and(|n| n == "-s") {
                skip = 3; // -s KILL 300
                continue;
            }
            out.arg(a);
        }
        out
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "[{}] estiba {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            self.label(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports the busybox rootfs as `busybox:latest`.
    pub fn with_busybox(self) -> Self {
        let tar = busybox_tar().to_str().unwrap().to_string();
        self.ok(&["import", &tar, "busybox"]);
        self
    }

    /// A path the test user (if any) can read and write.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        if let Some(user) = self.user {
            sh(&format!("chown -R {user}: {}", p.display()));
        }
        p
    }
}

/// Runs `cmd` with `input` on its stdin (then closed; none: closed at
/// once) and collects its output.
pub fn output_with_stdin(cmd: &mut Command, input: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(data) = input {
        let _ = stdin.write_all(data);
    }
    drop(stdin);
    child.wait_with_output().expect("waiting")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Estiba {
    /// The binary itself as a direct child (root only), so that a signal sent
    /// to the child reaches estiba and not a wrapper.
    pub fn direct(&self, args: &[&str]) -> Command {
        assert!(self.user.is_none(), "direct() runs as root");
        let d = self.dir.path();
        let mut cmd = Command::new(bin());
        cmd.env("ESTIBA_ROOT", d.join("data"))
            .env("ESTIBA_RUNROOT", d.join("run"))
            .args(args);
        cmd
    }
}

/// podman with a private store under `dir`, the vfs driver and runc (crun
/// refuses this host's hybrid cgroups).
pub fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"));
    c.args([
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]);
    c
}

/// `skopeo inspect oci-archive:FILE`, asserted to succeed.
pub fn skopeo_inspect(archive: &Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo cannot read {archive:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo's JSON")
}

/// A private dockerd (no iptables, no bridge), stopped on drop.
pub struct Dockerd {
    child: std::process::Child,
    pub socket: String,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts dockerd with its state under `dir`; `extra` adds flags.
pub fn start_dockerd(dir: &Path, extra: &[&str]) -> Dockerd {
    std::fs::create_dir_all(dir).unwrap();
    let socket = dir.join("docker.sock").display().to_string();
    let child = Command::new("dockerd")
        .args(["--iptables=false", "--bridge=none", "--ip-masq=false"])
        .args(extra)
        .arg("-H")
        .arg(format!("unix://{socket}"))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap())
        .spawn()
        .expect("dockerd");
    let d = Dockerd { child, socket };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if docker(&d)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!(
        "dockerd did not start: {}",
        std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
    );
}

pub fn docker(d: &Dockerd) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H").arg(format!("unix://{}", d.socket));
    c
}

pub mod cluster;
pub mod etcd;
pub mod registry;

/// Makes each named test `fn NAME(e: &Estiba)` three tests, one per way a
/// container runs here: `NAME::root_default` (estiba's choice: the
/// in-process libcontainer for foreground runs, runc for detached ones),
/// `NAME::root_runc` and `NAME::rootless`. Separate tests, so a failure in
/// one cannot hide the others' results. Each gets a fresh installation with
/// busybox.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn root_default() {
                if $crate::common::require_root("the default backends as root") {
                    super::$name(&$crate::common::Estiba::root().with_busybox());
                }
            }

            #[test]
            fn root_runc() {
                if $crate::common::require_root("runc as root") && $crate::common::require_tool("runc") {
                    super::$name(&$crate::common::Estiba::root_with("runc").with_busybox());
                }
            }

            #[test]
            fn rootless() {
                if $crate::common::require_root("a fresh test user") {
                    super::$name(&$crate::common::Estiba::rootless().with_busybox());
                }
            }
        }
    )*};
}

/// Gives `path` to the installation's user, if it has one.
pub fn chown_to(e: &Estiba, path: &Path) {
    if let Some(user) = e.user {
        sh(&format!("chown {user}: {}", path.display()));
    }
}

/// A free TCP port on 127.0.0.1 (the kernel's pick, released for the
/// caller to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `done` until it holds, failing the test with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every file under `dir` whose bytes contain `needle`: symlinks are not
/// followed, and mount points below `dir` not entered (an encrypted
/// volume's plaintext is mounted inside its directory).
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.dev() != top.dev() {
                continue;
            }
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file()
                && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// Calls `probe` until what it returns satisfies `done`, or `timeout` has
/// passed; returns the last result either way, for the caller to assert on
/// (and show in its message).
pub fn poll<T>(
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let got = probe();
        if done(&got) || std::time::Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Makes each named test `fn NAME(e: &Estiba)` two tests, `NAME::as_root`
/// and `NAME::rootless` (a fresh unprivileged user), each with a fresh
/// installation with busybox, so one cannot hide the other's result.
/// `root_and_rootless!(without_busybox: NAME, ...)` gives each an empty
/// store instead, for tests that count what they import.
#[macro_export]
macro_rules! root_and_rootless {
    (without_busybox: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn as_root() {
                if $crate::common::require_root("the test") {
                    super::$name(&$crate::common::Estiba::root());
                }
            }

            #[test]
            fn rootless() {
                if $crate::common::require_root("a fresh test user") {
                    super::$name(&$crate::common::Estiba::rootless());
                }
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn as_root() {
                if $crate::common::require_root("the test") {
                    super::$name(&$crate::common::Estiba::root().with_busybox());
                }
            }

            #[test]
            fn rootless() {
                if $crate::common::require_root("a fresh test user") {
                    super::$name(&$crate::common::Estiba::rootless().with_busybox());
                }
            }
        }
    )*};
}
