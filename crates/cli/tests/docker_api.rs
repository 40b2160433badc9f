//! The Docker Engine API (`estiba system service`) driven by real clients
//! from Debian, with no dockerd running: the docker CLI 20.10 and the
//! Docker SDK for Python. As root and as a freshly created unprivileged
//! user, in separate tests. Bad requests are sent raw with curl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{require_root, require_tool, Estiba};

/// Debian's docker CLI (docker.io), never another one on the PATH.
const DOCKER: &str = "/usr/bin/docker";

/// A running `estiba system service` on its default socket.
struct Service<'a> {
    e: &'a Estiba,
    child: Child,
    socket: PathBuf,
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(e: &Estiba) -> Service<'_> {
    serve_with(e, &[])
}

/// With global options (`--policy FILE`) before the command.
fn serve_with<'a>(e: &'a Estiba, global: &[&str]) -> Service<'a> {
    let log = std::fs::File::create(e.path().join("service.log")).unwrap();
    let mut args = global.to_vec();
    args.extend(["system", "service", "--timeout", "0"]);
    let child = e
        .daemon_cmd(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("estiba system service");
    let socket = e.path().join("run/estiba.sock");
    let s = Service { e, child, socket };
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.curl(&["http://d/_ping"]).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the API never answered:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

impl Service<'_> {
    fn log(&self) -> String {
        std::fs::read_to_string(self.e.path().join("service.log")).unwrap_or_default()
    }

    /// A raw request (as root): the status and the body.
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            &format!("http://d{path}"),
        ])
    }

    /// A client command as the installation's user, with the socket as
    /// DOCKER_HOST and a home of its own.
    fn client(&self, env: &[(&str, &str)], program: &str, args: &[&str]) -> Command {
        let home = self.e.scratch("client-home");
        let mut vars = vec![
            format!("DOCKER_HOST=unix://{}", self.socket.display()),
            format!("HOME={}", home.display()),
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ];
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut cmd = match self.e.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"]);
                c
            }
            None => Command::new("env"),
        };
        cmd.arg("-i")
            .args(vars)
            .args(["timeout", "-s", "KILL", "120", program])
            .args(args);
        cmd
    }

    fn docker_env(&self, env: &[(&str, &str)], args: &[&str], input: Option<&str>) -> Output {
        common::output_with_stdin(
            &mut self.client(env, DOCKER, args),
            input.map(str::as_bytes),
        )
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_env(&[], args, None)
    }

    /// Runs docker and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "[{}] docker {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nservice: {}",
            self.e.label(),
            out.status.code(),
            common::stdout(&out),
            common::stderr(&out),
            self.log()
        );
        common::stdout(&out)
    }
}

fn ready(what: &str) -> bool {
    require_root(what) && require_tool(DOCKER) && require_tool("curl")
}

/// What every user of the docker CLI does first: run, attach, exit codes,
/// stdin, detached containers with logs and exec, and the resources.
fn life_of_containers(e: &Estiba) {
    let s = serve(e);
    let version = s.ok(&["version", "--format", "{{.Client.APIVersion}}"]);
    // Debian's CLI speaks 1.41 and negotiates down to it.
    assert_eq!(version.trim(), "1.41", "{version}");

    assert_eq!(
        s.ok(&["run", "--rm", "busybox", "echo", "hello"]),
        "hello\n"
    );
    let out = s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(common::stdout(&out), "out\n");
    assert_eq!(common::stderr(&out), "err\n");
    let piped = s.docker_env(&[], &["run", "--rm", "-i", "busybox", "cat"], Some("hi\n"));
    assert_eq!(common::stdout(&piped), "hi\n", "{piped:?}\n{}", s.log());
    let missing = s.docker(&["run", "--rm", "busybox", "/no/such/program"]);
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    // The API's containers are estiba's own.
    assert!(
        e.ok(&["ps", "-aq"]).trim().is_empty(),
        "--rm left containers"
    );

    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert!(s.ok(&["ps"]).contains("web"));
    assert!(e.ok(&["ps"]).contains("web"), "estiba ps sees it too");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.ok(&["logs", "web"]).contains("started") {
        assert!(Instant::now() < deadline, "no log line");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.ok(&["exec", "web", "echo", "inside"]), "inside\n");
    let exec_in = s.docker_env(&[], &["exec", "-i", "web", "cat"], Some("piped\n"));
    assert_eq!(common::stdout(&exec_in), "piped\n", "{exec_in:?}");
    // With a terminal, through script(1) as a user at a terminal would.
    let tty = s
        .client(
            &[],
            "script",
            &[
                "-qec",
                &format!("{DOCKER} exec -t web sh -c 'tty; exit 5'"),
                "/dev/null",
            ],
        )
        .output()
        .unwrap();
    assert!(
        common::stdout(&tty).contains("/dev/pts/"),
        "{tty:?}\n{}",
        s.log()
    );
    assert_eq!(tty.status.code(), Some(5), "{tty:?}");
    // -it: what is typed at the client's terminal reaches the container's.
    let typed = common::output_with_stdin(
        s.client(
            &[],
            "script",
            &[
                "-qec",
                &format!(
                    "{DOCKER} run -it --rm busybox sh -c 'read line; echo got-$line; tty; exit 6'"
                ),
                "/dev/null",
            ],
        )
        .env("TERM", "dumb"),
        Some(b"typed\n"),
    );
    assert!(
        common::stdout(&typed).contains("got-typed"),
        "{typed:?}\n{}",
        s.log()
    );
    assert!(common::stdout(&typed).contains("/dev/pts/"), "{typed:?}");
    assert_eq!(typed.status.code(), Some(6), "{typed:?}");
    // The client's terminal size reaches the container's (the CLI's
    // resize calls), for an exec and for a container of its own.
    // (busybox's stty fails on a terminal of 0 × 0: s is empty then.)
    const SIZE: &str = "sh -c 'for i in $(seq 100); do s=$(stty size 2>/dev/null); \
                        [ -n \"$s\" ] && break; sleep 0.1; done; echo size=$s'";
    for cmd in [
        format!("{DOCKER} exec -t web {SIZE}"),
        format!("{DOCKER} run -it --rm busybox {SIZE}"),
    ] {
        let sized = s
            .client(
                &[],
                "script",
                &[
                    "-qec",
                    &format!("stty rows 33 cols 101; {cmd}"),
                    "/dev/null",
                ],
            )
            .env("TERM", "dumb")
            .output()
            .unwrap();
        assert!(
            common::stdout(&sized).contains("size=33 101"),
            "{cmd}: {sized:?}\n{}",
            s.log()
        );
    }
    let code = s.docker(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(code.status.code(), Some(4), "{code:?}");
    assert!(s.ok(&["stats", "--no-stream", "web"]).contains("web"));
    assert!(s.ok(&["top", "web"]).contains("sleep"));
    // docker cp both ways; a symlink in the container to / stays in it.
    s.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo inside > /data/sub/f && ln -s / /data/up",
    ]);
    let out_dir = e.scratch("cp-out");
    s.ok(&["cp", "web:/data", out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("data/sub/f")).unwrap(),
        "inside\n"
    );
    assert!(std::fs::symlink_metadata(out_dir.join("data/up"))
        .unwrap()
        .file_type()
        .is_symlink());
    let marker = format!("estiba-cp-{}", std::process::id());
    let host_file = out_dir.join(&marker);
    std::fs::write(&host_file, "from the host\n").unwrap();
    s.ok(&["cp", host_file.to_str().unwrap(), "web:/data/up/tmp/"]);
    assert_eq!(
        s.ok(&["exec", "web", "cat", &format!("/tmp/{marker}")]),
        "from the host\n"
    );
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "docker cp wrote on the host"
    );
    let missing = s.docker(&["cp", "web:/no/such", out_dir.to_str().unwrap()]);
    assert!(!missing.status.success());
    // The cgroup freezer: as root; rootless on cgroup v1 runc cannot.
    if e.user.is_none() {
        s.ok(&["pause", "web"]);
        assert!(s.ok(&["ps"]).contains("(Paused)"));
        let refused = s.docker(&["exec", "web", "true"]);
        assert!(common::stderr(&refused).contains("paused"), "{refused:?}");
        s.ok(&["unpause", "web"]);
        assert_eq!(s.ok(&["exec", "web", "echo", "thawed"]), "thawed\n");
    }
    s.ok(&["rename", "web", "web2"]);
    assert!(s.ok(&["ps"]).contains("web2"));
    s.ok(&["rename", "web2", "web"]);
    s.ok(&["stop", "-t", "1", "web"]);
    assert!(s.ok(&["ps", "-a"]).contains("Exited"));
    s.ok(&["rm", "web"]);

    // logs -f follows until the container exits.
    let counter = s.ok(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.2; done",
    ]);
    assert_eq!(s.ok(&["logs", "-f", counter.trim()]), "1\n2\n3\n");
    assert_eq!(s.ok(&["wait", counter.trim()]).trim(), "0");
    s.ok(&["rm", counter.trim()]);

    // A multi-stage build from a tar context, with a build arg.
    let ctx = e.scratch("context");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS builder\nARG WHO=nobody\nRUN echo built for $WHO > /artifact\n\
         FROM busybox\nCOPY --from=builder /artifact /artifact\nCMD [\"cat\", \"/artifact\"]\n",
    )
    .unwrap();
    let built = s.ok(&[
        "build",
        "--build-arg",
        "WHO=docker",
        "-t",
        "multi:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(built.contains("Successfully tagged multi:1"), "{built}");
    assert_eq!(s.ok(&["run", "--rm", "multi:1"]), "built for docker\n");
    std::fs::write(ctx.join("Dockerfile.bad"), "FROM busybox\nRUN exit 7\n").unwrap();
    let bad = ctx.join("Dockerfile.bad");
    let failed = s.docker(&["build", "-f", bad.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(!failed.status.success(), "{failed:?}");
    assert!(
        common::stderr(&failed).contains("non-zero code: 7"),
        "{failed:?}"
    );

    // A published port, and a second network joined while running.
    let port = free_port().to_string();
    let server = s.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "multi:1",
        "sh",
        "-c",
        "mkdir -p /w; echo served > /w/index.html; exec httpd -f -p 8080 -h /w",
    ]);
    assert_eq!(server.trim().len(), 64);
    eventually("the published port answers", || {
        Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/")])
            .output()
            .is_ok_and(|o| common::stdout(&o) == "served\n")
    });
    s.ok(&["network", "create", "side"]);
    s.ok(&["network", "connect", "side", "srv"]);
    let ifaces = s.ok(&["exec", "srv", "ip", "-o", "-4", "addr"]);
    assert!(ifaces.contains("eth1"), "{ifaces}");
    s.ok(&["rm", "-f", "srv"]);
    s.ok(&["network", "rm", "side"]);

    assert!(s.ok(&["images"]).contains("busybox"));
    // save, remove, load.
    let archive = e.scratch("saved").join("saved.tar");
    s.ok(&["tag", "busybox", "saved:1"]);
    s.ok(&["save", "-o", archive.to_str().unwrap(), "saved:1"]);
    s.ok(&["rmi", "saved:1"]);
    assert!(s
        .ok(&["load", "-i", archive.to_str().unwrap()])
        .contains("Loaded image: saved:1"));
    assert_eq!(
        s.ok(&["run", "--rm", "saved:1", "echo", "loaded"]),
        "loaded\n"
    );
    s.ok(&["volume", "create", "v1"]);
    assert!(s.ok(&["volume", "ls"]).contains("v1"));
    s.ok(&["volume", "rm", "v1"]);
    // An encrypted volume through the driver's options.
    s.ok(&["volume", "create", "-o", "encrypt=true", "vault"]);
    let options = s.ok(&["volume", "inspect", "-f", "{{.Options.encrypt}}", "vault"]);
    assert_eq!(options.trim(), "gocryptfs");
    let out = s.ok(&[
        "run",
        "--rm",
        "-v",
        "vault:/v",
        "busybox",
        "sh",
        "-c",
        "echo in > /v/f; cat /v/f",
    ]);
    assert_eq!(out, "in\n");
    s.ok(&["volume", "rm", "vault"]);
    let bad = s.docker(&["volume", "create", "-o", "type=nfs", "v2"]);
    assert!(common::stderr(&bad).contains("not supported"), "{bad:?}");
    s.ok(&["network", "create", "n1"]);
    assert!(s.ok(&["network", "ls"]).contains("n1"));
    s.ok(&["network", "rm", "n1"]);
    let gone = s.docker(&["rm", "nope"]);
    assert!(!gone.status.success());
    assert!(
        common::stderr(&gone).contains("No such container"),
        "{gone:?}"
    );
    let events = s.ok(&["events", "--since", "5m", "--until", "0s"]);
    assert!(
        events.contains("container create") && events.contains("container die"),
        "{events}"
    );
}

#[test]
fn the_docker_cli_as_root() {
    if !ready("the docker CLI as root") {
        return;
    }
    life_of_containers(&Estiba::root().with_busybox());
}

#[test]
fn the_docker_cli_rootless() {
    if !ready("the docker CLI rootless") {
        return;
    }
    life_of_containers(&Estiba::rootless().with_busybox());
}

#[test]
fn api_versions_are_negotiated_and_pinned() {
    if !ready("API versions") {
        return;
    }
    let e = Estiba::root().with_busybox();
    let s = serve(&e);
    for v in ["1.41", "1.44"] {
        let out = s.docker_env(&[("DOCKER_API_VERSION", v)], &["ps", "-a"], None);
        assert!(out.status.success(), "{v}: {out:?}");
        let run = s.docker_env(
            &[("DOCKER_API_VERSION", v)],
            &["run", "--rm", "busybox", "echo", v],
            None,
        );
        assert_eq!(common::stdout(&run), format!("{v}\n"), "{run:?}");
    }
    let old = s.docker_env(&[("DOCKER_API_VERSION", "1.40")], &["ps"], None);
    assert!(common::stderr(&old).contains("too old"), "{old:?}");
    let (code, body) = s.curl(&["http://d/v9.99/_ping"]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("too new"), "{body}");
    let (code, _) = s.curl(&["http://d/v1.51/_ping"]);
    assert_eq!(code, 200);
    let (code, body) = s.curl(&["-I", "http://d/v1.44/_ping"]);
    assert_eq!(code, 200);
    assert!(
        body.to_ascii_lowercase().contains("api-version: 1.44"),
        "{body}"
    );
}

#[test]
fn bad_requests_get_dockers_status_and_leave_nothing() {
    if !ready("bad requests") {
        return;
    }
    let e = Estiba::root().with_busybox();
    let s = serve(&e);
    for (path, body, status, words) in [
        ("/v1.41/containers/create", "{", 400, "invalid JSON"),
        ("/v1.41/containers/create", "", 400, "cannot be empty"),
        (
            "/v1.41/containers/create",
            r#"{"Image": "busybox", "Cmd": 5}"#,
            400,
            "invalid JSON",
        ),
        (
            "/v1.41/containers/create",
            r#"{"Image": "nosuch"}"#,
            404,
            "No such image",
        ),
        (
            "/v1.41/containers/create",
            r#"{"Image": "busybox", "HostConfig": {"Binds": [":"]}}"#,
            400,
            "invalid",
        ),
        ("/v1.41/containers/nope/start", "", 404, "No such container"),
        ("/v1.41/containers/nope/wait", "", 404, "No such container"),
        (
            "/v1.41/containers/nope/exec",
            r#"{"Cmd": ["true"]}"#,
            404,
            "No such container",
        ),
        (
            "/v1.41/containers/nope/resize?h=1&w=1",
            "",
            404,
            "No such container",
        ),
        (
            "/v1.41/containers/nope/resize?h=x&w=1",
            "",
            400,
            "invalid value for h",
        ),
        (
            "/v1.41/containers/nope/resize?w=1",
            "",
            400,
            "needs h and w",
        ),
        (
            "/v1.41/exec/nope/resize?h=1&w=1",
            "",
            404,
            "No such exec instance",
        ),
        ("/v1.41/networks/create", "{}", 400, "name is required"),
        ("/v1.41/volumes/create", "[1]", 400, "invalid JSON"),
    ] {
        let (code, text) = s.post(path, body);
        assert_eq!(code, status, "{path} {body}: {text}");
        assert!(text.contains(words), "{path} {body}: {text}");
    }
    let big = format!(
        r#"{{"Image": "busybox", "Env": ["A={}"]}}"#,
        "x".repeat(2 << 20)
    );
    let file = e.path().join("big.json");
    std::fs::write(&file, big).unwrap();
    let (code, _) = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", file.display()),
        "http://d/v1.41/containers/create",
    ]);
    assert_eq!(code, 413, "an oversized body");
    // A build context announced past the cap is refused before it is read.
    let (code, text) = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-tar",
        "-H",
        "Content-Length: 600000000",
        "--max-time",
        "10",
        "http://d/v1.41/build",
    ]);
    assert_eq!(code, 413, "an oversized build context: {text}");
    let (code, text) = s.post("/v1.41/build", "this is no tar");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not a tar"), "{text}");
    for (path, status, words) in [
        ("/v1.41/containers/nope/json", 404, "No such container"),
        ("/v1.41/images/nosuch/json", 404, "No such image"),
        ("/v1.41/volumes/nosuch", 404, "no such volume"),
        ("/v1.41/networks/nosuch", 404, "not found"),
        (
            "/v1.41/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
            400,
            "invalid filter",
        ),
        ("/v1.41/containers/json?filters=%7B", 400, "invalid filter"),
        ("/v1.41/nothing/here", 404, "page not found"),
        ("/v1.x/_ping", 400, "invalid API version"),
    ] {
        let (code, text) = s.curl(&[&format!("http://d{path}")]);
        assert_eq!(code, status, "{path}: {text}");
        assert!(text.contains(words), "{path}: {text}");
    }
    assert!(
        e.ok(&["ps", "-aq"]).trim().is_empty(),
        "a refused create left a container"
    );
    // A conflict: the name is taken.
    let (code, _) = s.post(
        "/v1.41/containers/create?name=one",
        r#"{"Image": "busybox"}"#,
    );
    assert_eq!(code, 201);
    let (code, text) = s.post(
        "/v1.41/containers/create?name=one",
        r#"{"Image": "busybox"}"#,
    );
    assert_eq!(code, 409, "{text}");
    assert_eq!(e.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn the_admission_policy_judges_what_the_api_creates() {
    if !ready("admission through the API") {
        return;
    }
    let e = Estiba::root().with_busybox();
    // Pulls need a signature by our key; the local busybox is excepted.
    let registry = common::registry::Registry::start(common::registry::OPEN);
    let (signed, unsigned) = (
        format!("{}/team/bb:signed", registry.addr),
        format!("{}/team/bb:unsigned", registry.addr),
    );
    e.ok(&["push", "--tls-verify=false", "busybox", &unsigned]);
    let ctx = e.scratch("other");
    std::fs::write(ctx.join("Containerfile"), "FROM busybox\nLABEL v=2\n").unwrap();
    e.ok(&["build", "-q", "-t", &signed, ctx.to_str().unwrap()]);
    e.ok(&["push", "--tls-verify=false", &signed]);
    let keys = e.path().join("cosign");
    e.ok(&["key", "generate", "--out", keys.to_str().unwrap()]);
    let key = format!("{}.key", keys.display());
    e.ok(&["sign", "--tls-verify=false", "--key", &key, &signed]);
    e.ok(&["rmi", &signed]);
    let policy = e.path().join("policy.toml");
    std::fs::write(
        &policy,
        "require_signature = true\ntrusted_keys = [\"cosign.pub\"]\n\
         [rules]\n\"cis:5.5\" = \"enforce\"\n\
         [[exceptions]]\nrules = [\"ESB-I-015\"]\nimages = [\"busybox*\"]\n",
    )
    .unwrap();
    let s = serve_with(&e, &["--policy", policy.to_str().unwrap()]);
    let refused = s.docker(&["pull", &unsigned]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        common::stderr(&refused).contains("ESB-I-015"),
        "{refused:?}"
    );
    s.ok(&["pull", &signed]);
    assert_eq!(
        s.ok(&["run", "--rm", &signed, "echo", "signed"]),
        "signed\n"
    );
    let refused = s.docker(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert!(!refused.status.success(), "{refused:?}");
    let why = common::stderr(&refused);
    assert!(
        why.contains("ESB-C-001") && why.contains("refused"),
        "{why}"
    );
    assert!(
        e.ok(&["ps", "-aq"]).trim().is_empty(),
        "a refused create left a container"
    );
    assert_eq!(
        s.ok(&["run", "--rm", "busybox", "echo", "allowed"]),
        "allowed\n"
    );
}

const REGISTRY_POLICIES: &str = r#"
[[policy]]
repositories = "team/*"
groups = ["devs"]
actions = ["pull", "push"]
"#;

/// `docker login`, then push and pull with estiba's registry.
fn login_push_pull(e: &Estiba) {
    let r = common::registry::Registry::start(REGISTRY_POLICIES);
    r.add_user("alice", "alice-secret", &["--group", "devs"]);
    let s = serve(e);
    let image = format!("{}/team/bb:1", r.addr);
    let refused = s.docker_env(
        &[],
        &["login", "--username", "alice", "--password-stdin", &r.addr],
        Some("wrong"),
    );
    assert!(
        !refused.status.success(),
        "a wrong password logged in: {refused:?}"
    );
    let login = s.docker_env(
        &[],
        &["login", "--username", "alice", "--password-stdin", &r.addr],
        Some("alice-secret"),
    );
    assert!(
        common::stdout(&login).contains("Login Succeeded"),
        "{login:?}\n{}",
        s.log()
    );
    s.ok(&["tag", "busybox", &image]);
    let pushed = s.ok(&["push", &image]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    s.ok(&["rmi", &image]);
    assert!(!s.ok(&["images"]).contains("team/bb"));
    let pulled = s.ok(&["pull", &image]);
    assert!(pulled.contains("Downloaded"), "{pulled}");
    assert_eq!(s.ok(&["run", "--rm", &image, "echo", "pulled"]), "pulled\n");
    s.ok(&["logout", &r.addr]);
    s.ok(&["rmi", &image]);
    let anonymous = s.docker(&["pull", &image]);
    assert!(
        !anonymous.status.success(),
        "pulled without credentials: {anonymous:?}"
    );
}

#[test]
fn docker_login_push_and_pull_as_root() {
    if !ready("docker push and pull as root") {
        return;
    }
    login_push_pull(&Estiba::root().with_busybox());
}

#[test]
fn docker_login_push_and_pull_rootless() {
    if !ready("docker push and pull rootless") {
        return;
    }
    login_push_pull(&Estiba::rootless().with_busybox());
}

const SDK_SCRIPT: &str = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
assert client.ping()
out = client.containers.run("busybox", ["echo", "sdk"], remove=True)
assert out == b"sdk\n", out
c = client.containers.run("busybox", ["sh", "-c", "echo up; exec sleep 300"], detach=True, name="pyweb")
code, output = c.exec_run(["echo", "exec"])
assert (code, output) == (0, b"exec\n"), (code, output)
assert any(x.name == "pyweb" for x in client.containers.list())
c.reload()
assert c.status == "running", c.status
c.stop(timeout=1)
c.reload()
assert c.status == "exited", c.status
c.remove()
assert not client.containers.list(all=True)
assert any("busybox:latest" in i.tags for i in client.images.list())
v = client.volumes.create("pyvol")
assert v.name == "pyvol"
v.remove()
print("ok")
"#;

fn python_sdk(e: &Estiba) {
    let s = serve(e);
    let script = e.scratch("sdk").join("sdk.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    let url = format!("unix://{}", s.socket.display());
    let out = s
        .client(&[], "/usr/bin/python3", &[script.to_str().unwrap(), &url])
        .output()
        .unwrap();
    assert!(
        out.status.success() && common::stdout(&out).contains("ok"),
        "[{}] {out:?}\n{}",
        e.label(),
        s.log()
    );
}

fn sdk_ready(what: &str) -> bool {
    let found = Command::new("/usr/bin/python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3-docker is missing: .ci/run must install it"
        );
        eprintln!("SKIPPED: {what}: python3-docker is not installed");
    }
    ready(what) && found
}

#[test]
fn the_python_sdk_as_root() {
    if !sdk_ready("the Python SDK as root") {
        return;
    }
    python_sdk(&Estiba::root().with_busybox());
}

#[test]
fn the_python_sdk_rootless() {
    if !sdk_ready("the Python SDK rootless") {
        return;
    }
    python_sdk(&Estiba::rootless().with_busybox());
}

/// Two services on the project's network, a named volume, depends_on, a
/// published port, environment and a healthcheck.
const COMPOSE_FILE: &str = r#"
version: "3.8"
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db up as $$ROLE; mkdir -p /www; echo hello-from-db > /www/index.html; exec httpd -f -p 8080 -h /www"]
    environment:
      ROLE: database
    volumes:
      - data:/data
    ports:
      - "127.0.0.1:PORT:8080"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 3
  web:
    image: busybox
    command: ["sh", "-c", "echo web up as $$ROLE; exec sleep 300"]
    environment:
      ROLE: frontend
    depends_on:
      - db
volumes:
  data:
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it holds, for up to 60 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn compose(e: &Estiba) {
    let s = serve(e);
    let dir = e.scratch("project");
    let port = free_port();
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, COMPOSE_FILE.replace("PORT", &port.to_string())).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["-p", "app", "-f", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = s
            .client(&[], "/usr/bin/docker-compose", &all)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "[{}] docker-compose {args:?}: {out:?}\n{}",
            e.label(),
            s.log()
        );
        common::stdout(&out)
    };
    run(&["up", "-d"]);
    let ps = run(&["ps"]);
    assert!(ps.contains("app_db_1") && ps.contains("app_web_1"), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
    eventually("both logs", || {
        let logs = run(&["logs"]);
        logs.contains("db up as database") && logs.contains("web up as frontend")
    });
    eventually("the published port answers", || {
        Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/")])
            .output()
            .is_ok_and(|o| common::stdout(&o) == "hello-from-db\n")
    });
    let by_name = s.ok(&["exec", "app_web_1", "wget", "-qO-", "http://db:8080/"]);
    assert_eq!(
        by_name, "hello-from-db\n",
        "web reaches db by its service name"
    );
    eventually("db is healthy", || {
        s.ok(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            "app_db_1",
        ])
        .trim()
            == "healthy"
    });
    run(&["down", "-v"]);
    assert!(
        e.ok(&["ps", "-aq"]).trim().is_empty(),
        "down left containers"
    );
    assert!(
        !e.ok(&["volume", "ls"]).contains("app_data"),
        "down -v left the volume"
    );
    assert!(
        !e.ok(&["network", "ls"]).contains("app_default"),
        "down left the network"
    );
}

fn compose_ready(what: &str) -> bool {
    ready(what) && require_tool("docker-compose")
}

#[test]
fn docker_compose_as_root() {
    if !compose_ready("docker-compose as root") {
        return;
    }
    compose(&Estiba::root().with_busybox());
}

#[test]
fn docker_compose_rootless() {
    if !compose_ready("docker-compose rootless") {
        return;
    }
    compose(&Estiba::rootless().with_busybox());
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn certificates(dir: &std::path::Path) {
    let run = |args: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("cd {} && {args}", dir.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args}: {}", common::stderr(&out));
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run(&format!(
        "openssl req -x509 {ec} -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=estiba-test-ca"
    ));
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        run(&format!(
            "openssl req {ec} -keyout {name}-key.pem -out {name}.csr -subj /CN={name}"
        ));
        run(&format!("printf '{ext}\\n' > {name}.ext"));
        run(&format!(
            "openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile {name}.ext -out {name}.pem"
        ));
    }
}

#[test]
fn the_docker_api_over_tcp_needs_tls_and_a_client_certificate() {
    if !(ready("the Docker API over TCP") && require_tool("openssl")) {
        return;
    }
    let e = Estiba::root().with_busybox();
    let refused = e.run(&["system", "service", "tcp://127.0.0.1:1"]);
    assert!(!refused.status.success());
    assert!(common::stderr(&refused).contains("--tls-ca"), "{refused:?}");
    let dir = e.scratch("tls");
    certificates(&dir);
    let port = free_port();
    let file = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let log = std::fs::File::create(e.path().join("tcp.log")).unwrap();
    let mut child = e
        .daemon_cmd(&[
            "system",
            "service",
            "--timeout",
            "0",
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server-key.pem"),
            "--tls-ca",
            &file("ca.pem"),
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    let docker = |args: &[&str], client_cert: bool, input: Option<&str>| {
        let mut c = Command::new(DOCKER);
        c.env("HOME", e.path()).args(["-H", &host]);
        if client_cert {
            c.args([
                "--tlsverify",
                "--tlscacert",
                &file("ca.pem"),
                "--tlscert",
                &file("client.pem"),
                "--tlskey",
                &file("client-key.pem"),
            ]);
        } else {
            c.args(["--tls", "--tlscacert", &file("ca.pem")]);
        }
        common::output_with_stdin(c.args(args), input.map(str::as_bytes))
    };
    eventually("the TLS listener answers", || {
        docker(&["version"], true, None).status.success()
    });
    let hello = docker(
        &["run", "--rm", "-i", "busybox", "cat"],
        true,
        Some("over tls\n"),
    );
    assert_eq!(common::stdout(&hello), "over tls\n", "{hello:?}");
    let anonymous = docker(&["ps"], false, None);
    assert!(
        !anonymous.status.success(),
        "a client without a certificate was served: {anonymous:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_idle_service_exits_after_its_timeout() {
    if !ready("the idle timeout") {
        return;
    }
    let e = Estiba::root();
    let mut child = e
        .daemon_cmd(&["system", "service", "--timeout", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "still serving after its timeout");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !e.path().join("run/estiba.sock").exists(),
        "the socket is left behind"
    );
}
