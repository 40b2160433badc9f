//! The registry with real clients and real policies: authentication and
//! access control, skopeo, podman, the docker CLI and distribution 2.8.2
//! (Debian's docker-registry) as peers, signatures, immutable tags,
//! lifecycle policies, garbage collection and TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::registry::{files_under, http, sha256, Registry, OPEN};
use common::{stderr, stdout, Estiba};
use serde_json::Value;

const POLICIES: &str = r#"
[[policy]]
repositories = "team/*"
groups = ["devs"]
actions = ["pull", "push"]

[[policy]]
repositories = "public/*"
anonymous = true
actions = ["pull"]

[[policy]]
repositories = "public/*"
users = ["alice"]
actions = ["push"]
"#;

fn check(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `cmd` with `input` on its standard input (a password, say).
fn with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn token(r: &Registry, creds: Option<(&str, &str)>, scope: &str) -> reqwest::blocking::Response {
    let mut req = http()
        .get(r.url("/token"))
        .query(&[("service", "estiba-registry"), ("scope", scope)]);
    if let Some((u, p)) = creds {
        req = req.header("Authorization", basic(u, p));
    }
    req.send().unwrap()
}

fn bearer(r: &Registry, user: &str, pass: &str, scope: &str) -> String {
    let resp = token(r, Some((user, pass)), scope);
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    format!("Bearer {}", v["token"].as_str().unwrap())
}

fn post_blob(
    r: &Registry,
    repo: &str,
    auth: Option<&str>,
    data: &[u8],
) -> reqwest::blocking::Response {
    let mut req = http()
        .post(r.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(data)
        )))
        .body(data.to_vec());
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().unwrap()
}

fn audit_lines(r: &Registry) -> Vec<Value> {
    std::fs::read_to_string(r.root().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[test]
fn access_control_tokens_and_audit() {
    let r = Registry::start(POLICIES);
    r.add_user("alice", "alice-secret", &["--group", "devs"]);
    r.add_user("bob", "bob-secret", &[]);
    r.add_user("root", "root-secret", &["--admin"]);
    let data = b"team content";

    // Anonymous push: a 401 with the scope to ask for, and nothing stored.
    let resp = post_blob(&r, "team/app", None, data);
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("scope=\"repository:team/app:push\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("realm=\"http://{}/token\"", r.addr)),
        "{challenge}"
    );
    // A wrong password: 401 at the token endpoint and with Basic.
    assert_eq!(
        token(&r, Some(("alice", "wrong")), "repository:team/app:push").status(),
        401
    );
    assert_eq!(
        post_blob(&r, "team/app", Some(&basic("alice", "wrong")), data).status(),
        401
    );
    // Authenticated but not granted: 403, nothing stored.
    let resp = post_blob(&r, "team/app", Some(&basic("bob", "bob-secret")), data);
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED");
    // A token for bob grants nothing on team/app.
    let bob = bearer(&r, "bob", "bob-secret", "repository:team/app:pull,push");
    assert_eq!(post_blob(&r, "team/app", Some(&bob), data).status(), 401);
    assert!(
        files_under(&r.root().join("blobs")).is_empty(),
        "a denied request stores nothing"
    );
    assert!(files_under(&r.root().join("uploads")).is_empty());

    // A token scoped to team/a pushes there, and not to team/b.
    let alice_a = bearer(&r, "alice", "alice-secret", "repository:team/a:pull,push");
    assert_eq!(post_blob(&r, "team/a", Some(&alice_a), data).status(), 201);
    let resp = post_blob(&r, "team/b", Some(&alice_a), data);
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // Basic credentials work directly too.
    assert_eq!(
        post_blob(&r, "team/b", Some(&basic("alice", "alice-secret")), data).status(),
        201
    );
    // Anonymous pull where the policy allows it, and only there.
    let pub_blob = post_blob(
        &r,
        "public/x",
        Some(&basic("alice", "alice-secret")),
        b"public",
    );
    assert_eq!(pub_blob.status(), 201);
    let url = r.url(&format!("/v2/public/x/blobs/{}", sha256(b"public")));
    assert_eq!(http().get(&url).send().unwrap().status(), 200);
    let url = r.url(&format!("/v2/team/a/blobs/{}", sha256(data)));
    assert_eq!(http().get(&url).send().unwrap().status(), 401);
    // An anonymous token carries only what anonymous may do.
    let anon: Value = token(&r, None, "repository:public/x:pull,push")
        .json()
        .unwrap();
    let anon = format!("Bearer {}", anon["token"].as_str().unwrap());
    assert_eq!(
        post_blob(&r, "public/x", Some(&anon), b"nope").status(),
        401
    );
    // The admin may do anything, the catalog included.
    let catalog = http()
        .get(r.url("/v2/_catalog"))
        .header("Authorization", basic("root", "root-secret"))
        .send()
        .unwrap();
    let v: Value = catalog.json().unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["public/x", "team/a", "team/b"])
    );
    // bob sees only what he may pull: the public repository.
    let v: Value = http()
        .get(r.url("/v2/_catalog"))
        .header("Authorization", basic("bob", "bob-secret"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["public/x"]));

    // The audit log: who, what, when and the outcome.
    let lines = audit_lines(&r);
    let has = |who: &str, action: &str, outcome: &str| {
        lines.iter().any(|l| {
            l["who"] == who
                && l["action"] == action
                && l["outcome"].as_str().unwrap_or("").starts_with(outcome)
        })
    };
    assert!(has("anonymous", "auth", "denied"), "{lines:?}");
    assert!(has("bob", "auth", "denied"));
    assert!(has("alice", "push", "ok"));
    assert!(has("alice", "token", "denied: wrong credentials"));
    assert!(lines
        .iter()
        .all(|l| l["time"].as_str().is_some_and(|t| t.starts_with("20"))));

    // A token expires: a registry whose tokens live one second.
    let short = Registry::start(&format!("[auth]\ntoken_ttl_secs = 1\n{POLICIES}"));
    short.add_user("alice", "alice-secret", &["--group", "devs"]);
    let expiring = bearer(
        &short,
        "alice",
        "alice-secret",
        "repository:team/a:pull,push",
    );
    // Not a wait for another process: the token's lifetime runs out on the
    // clock (and a request sent to see whether it had would push a blob).
    std::thread::sleep(Duration::from_millis(2100));
    let resp = post_blob(&short, "team/a", Some(&expiring), b"later");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert!(files_under(&short.root().join("blobs")).is_empty());
}

/// An image in an estiba store, saved as an oci-archive for skopeo.
fn estiba_with_image() -> (Estiba, std::path::PathBuf) {
    let e = Estiba::root().with_busybox();
    let archive = e.path().join("busybox-oci.tar");
    e.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    (e, archive)
}

fn skopeo_digest(image: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    check(cmd.arg(format!("docker://{image}")))
        .trim()
        .to_string()
}

/// skopeo copying between two repositories of one registry, through the
/// token flow: every layer is mounted from the source, none uploaded. The
/// challenge must name the source's pull scope for a token client to ask
/// for it (it named only the target's push before, so every mount fell
/// back to an upload).
#[test]
fn skopeo_copy_between_repositories_mounts_every_layer() {
    if !common::require_tool("skopeo") || !common::require_root("estiba build") {
        return;
    }
    let r = Registry::start(POLICIES);
    r.add_user("alice", "alice-secret", &["--group", "devs"]);
    let e = Estiba::root().with_busybox();
    let context = e.path().join("layered");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("note"), "a second layer\n").unwrap();
    std::fs::write(
        context.join("Containerfile"),
        "FROM busybox\nCOPY note /note\n",
    )
    .unwrap();
    e.ok(&["build", "-t", "layered:1", context.to_str().unwrap()]);
    let archive = e.path().join("layered.tar");
    e.ok(&["save", "-o", archive.to_str().unwrap(), "layered:1"]);
    let (src, dst) = (
        format!("{}/team/src:1", r.addr),
        format!("{}/team/dst:1", r.addr),
    );
    let creds = "alice:alice-secret";
    check(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", creds])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{src}")),
    );
    let before = audit_lines(&r).len();
    check(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        creds,
        "--dest-creds",
        creds,
        &format!("docker://{src}"),
        &format!("docker://{dst}"),
    ]));
    let raw = check(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        &format!("docker://{dst}"),
    ]));
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(layers.len(), 2, "{raw}");
    let lines = audit_lines(&r);
    let copy = &lines[before..];
    for layer in &layers {
        let did = |action: &str| {
            copy.iter().any(|l| {
                l["action"] == action && l["repository"] == "team/dst" && l["target"] == *layer
            })
        };
        assert!(did("mount"), "layer {layer} was not mounted: {copy:#?}");
        assert!(!did("push"), "layer {layer} was uploaded: {copy:#?}");
    }

    // A client that asks for exactly what the challenge names, as the
    // Docker token spec intends, gets a token that covers the source too.
    let mount = format!(
        "/v2/team/other/blobs/uploads/?mount={}&from=team/src",
        layers[0]
    );
    let resp = http().post(r.url(&mount)).send().unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    let scope = challenge
        .split("scope=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert_eq!(
        scope, "repository:team/other:pull,push repository:team/src:pull",
        "{challenge}"
    );
    let token = http()
        .get(r.url("/token"))
        .query(&[("service", "estiba-registry")])
        .query(&scope.split(' ').map(|s| ("scope", s)).collect::<Vec<_>>())
        .header("Authorization", basic("alice", "alice-secret"))
        .send()
        .unwrap();
    let token: Value = token.json().unwrap();
    let resp = http()
        .post(r.url(&mount))
        .header(
            "Authorization",
            format!("Bearer {}", token["token"].as_str().unwrap()),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "the mount fell back to an upload");

    // Without `from`, the caller's identity and policies decide where the
    // blob may come from, not the token's scope, which names no source.
    let token = bearer(
        &r,
        "alice",
        "alice-secret",
        "repository:team/third:pull,push",
    );
    let resp = http()
        .post(r.url(&format!(
            "/v2/team/third/blobs/uploads/?mount={}",
            layers[1]
        )))
        .header("Authorization", token)
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "a mount without from fell back to an upload"
    );
}

#[test]
fn skopeo_podman_and_estiba_with_credentials() {
    if !common::require_tool("skopeo") || !common::require_tool("podman") {
        return;
    }
    if !common::require_root("podman push and pull") {
        return;
    }
    let r = Registry::start(POLICIES);
    r.add_user("alice", "alice-secret", &["--group", "devs"]);
    let (e, archive) = estiba_with_image();
    let dest = format!("{}/team/skopeo:1", r.addr);
    // Without credentials skopeo is refused; with them it pushes.
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "an anonymous push succeeded");
    check(
        Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:alice-secret",
            ])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{dest}")),
    );
    let pushed = skopeo_digest(&dest, Some("alice:alice-secret"));
    // skopeo pulls it back byte-exact.
    let back = e.path().join("back");
    check(
        Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                "alice:alice-secret",
            ])
            .arg(format!("docker://{dest}"))
            .arg(format!("dir:{}", back.display())),
    );
    assert_eq!(
        sha256(&std::fs::read(back.join("manifest.json")).unwrap()),
        pushed
    );

    // podman: login, pull, push under another name.
    let pd = e.path().join("podman");
    let authfile = e.path().join("podman-auth.json");
    let mut login = common::podman(&pd);
    login
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
        ])
        .arg(&authfile)
        .arg(&r.addr);
    let out = with_stdin(&mut login, b"alice-secret\n");
    assert!(out.status.success(), "podman login: {}", stderr(&out));
    check(
        common::podman(&pd)
            .args(["pull", "--tls-verify=false", "--authfile"])
            .arg(&authfile)
            .arg(&dest),
    );
    let dest2 = format!("{}/team/podman:2", r.addr);
    check(
        common::podman(&pd)
            .args(["push", "--tls-verify=false", "--authfile"])
            .arg(&authfile)
            .args([&dest, &dest2]),
    );
    assert_eq!(
        skopeo_digest(&dest2, Some("alice:alice-secret")),
        pushed,
        "podman's round trip keeps the digest"
    );

    // estiba: login (docker's config.json, 0600), push, pull, logout.
    let mut login = e.cmd(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "--password-stdin",
        &r.addr,
    ]);
    let out = with_stdin(&mut login, b"alice-secret\n");
    assert!(out.status.success(), "estiba login: {}", stderr(&out));
    let config = e.path().join(".docker/config.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&config).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let v: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(v["auths"][&r.addr]["auth"].is_string(), "{v}");
    let dest3 = format!("{}/team/estiba:3", r.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest3]);
    let local: Value = serde_json::from_str(&e.ok(&["image", "inspect", "busybox"])).unwrap();
    let local = local[0]["Digest"].as_str().unwrap().to_string();
    assert_eq!(
        skopeo_digest(&dest3, Some("alice:alice-secret")),
        local,
        "estiba pushes the stored manifest as is"
    );
    e.ok(&["rmi", "busybox"]);
    let out = e.ok(&["pull", "--tls-verify=false", &dest2]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let images = e.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/team/podman", r.addr)),
        "{images}"
    );
    assert_eq!(
        e.ok(&["run", "--rm", &dest2, "echo", "pulled"]).trim(),
        "pulled"
    );
    // estiba's own round trip: what it pulled, it pushes with the same digest.
    let again = format!("{}/team/mounted:again", r.addr);
    e.ok(&["push", "--tls-verify=false", &dest2, &again]);
    assert_eq!(skopeo_digest(&again, Some("alice:alice-secret")), pushed);
    // Its blobs were already in team/podman: mounted, not uploaded again.
    let mounts = audit_lines(&r)
        .iter()
        .filter(|l| {
            l["action"] == "mount" && l["repository"] == "team/mounted" && l["who"] == "alice"
        })
        .count();
    assert!(
        mounts >= 2,
        "the push mounted config and layer from team/podman"
    );
    e.ok(&["logout", &r.addr]);
    let out = e.run(&[
        "push",
        "--tls-verify=false",
        &dest2,
        &format!("{}/team/estiba:4", r.addr),
    ]);
    assert!(!out.status.success(), "push after logout");
    assert!(
        stderr(&out).contains("401") || stderr(&out).contains("UNAUTHORIZED"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rootless_push_and_pull() {
    if !common::require_root("rootless push and pull (creates a user)") {
        return;
    }
    let r = Registry::start(OPEN);
    let e = Estiba::rootless().with_busybox();
    let dest = format!("{}/rootless/bb:1", r.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
    e.ok(&["rmi", "busybox"]);
    e.ok(&["pull", "--tls-verify=false", &dest]);
    assert_eq!(e.ok(&["run", "--rm", &dest, "echo", "ok"]).trim(), "ok");
}

struct Distribution {
    child: Child,
    addr: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (distribution 2.8.2) on a free port.
fn start_distribution(dir: &Path) -> Distribution {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .expect("docker-registry");
    // Dropped (and so killed) if it never answers.
    let d = Distribution { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http().get(format!("http://{}/v2/", d.addr)).send().is_ok() {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("docker-registry did not start");
}

#[test]
fn estiba_pushes_to_and_pulls_from_distribution() {
    if !common::require_root("estiba against distribution")
        || !common::require_tool("docker-registry")
    {
        return;
    }
    let (e, _) = estiba_with_image();
    let d = start_distribution(&e.path().join("distribution"));
    let dest = format!("{}/estiba/bb:1", d.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
    let local = e.ok(&["image", "inspect", "busybox"]);
    let pushed = skopeo_digest(&dest, None);
    assert!(
        local.contains(&pushed),
        "the pushed digest is the local manifest's"
    );
    e.ok(&["rmi", "busybox"]);
    e.ok(&["pull", "--tls-verify=false", &dest]);
    assert_eq!(e.ok(&["run", "--rm", &dest, "echo", "ok"]).trim(), "ok");
    // Signatures on a registry without the referrers API use the fallback tag.
    let keys = e.path().join("cosign");
    e.ok(&["key", "generate", "--out", keys.to_str().unwrap()]);
    let key = format!("{}.key", keys.display());
    let public = format!("{}.pub", keys.display());
    e.ok(&["sign", "--tls-verify=false", "--key", &key, &dest]);
    e.ok(&["verify", "--tls-verify=false", "--key", &public, &dest]);
    let tags = http()
        .get(format!("http://{}/v2/estiba/bb/tags/list", d.addr))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(tags.contains(&format!("sha256-{}", &pushed[7..])), "{tags}");
}

#[test]
fn docker_cli_pushes_and_pulls() {
    if !common::require_root("docker interop") || !common::require_tool("dockerd") {
        return;
    }
    let r = Registry::start(OPEN);
    let (e, _) = estiba_with_image();
    let dest = format!("{}/estiba/bb:1", r.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
    let pushed = skopeo_digest(&dest, None);
    let insecure = format!("--insecure-registry={}", r.addr);
    let dd = common::start_dockerd(&e.path().join("docker"), &[&insecure]);
    check(common::docker(&dd).args(["pull", &dest]));
    let repo_digests = check(common::docker(&dd).args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &dest,
    ]));
    assert!(repo_digests.contains(&pushed), "{repo_digests}");
    let dest2 = format!("{}/docker/bb:2", r.addr);
    check(common::docker(&dd).args(["tag", &dest, &dest2]));
    check(common::docker(&dd).args(["push", &dest2]));
    // docker pushes its own manifest (docker's media type): it must pull back.
    let docker_digest = skopeo_digest(&dest2, None);
    check(common::docker(&dd).args(["rmi", &dest2]));
    check(common::docker(&dd).args(["pull", &dest2]));
    e.ok(&["pull", "--tls-verify=false", &dest2]);
    assert!(!docker_digest.is_empty());
}

#[test]
fn signatures_and_required_signing() {
    let r = Registry::start(OPEN);
    let (e, _) = estiba_with_image();
    let signed = format!("{}/trusted/app:1", r.addr);
    let unsigned = format!("{}/trusted/app:2", r.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &signed]);
    e.ok(&["import", common::busybox_tar().to_str().unwrap(), "other:1"]);
    e.ok(&["tag", "busybox", "other:2"]);
    let keys = e.path().join("k");
    e.ok(&["key", "generate", "--out", keys.to_str().unwrap()]);
    let (key, public) = (
        format!("{}.key", keys.display()),
        format!("{}.pub", keys.display()),
    );
    let stranger = e.path().join("stranger");
    e.ok(&[
        "key",
        "generate",
        "--type",
        "ed25519",
        "--out",
        stranger.to_str().unwrap(),
    ]);
    let stranger_pub = format!("{}.pub", stranger.display());

    let out = e.run(&["verify", "--tls-verify=false", "--key", &public, &signed]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
    e.ok(&["sign", "--tls-verify=false", "--key", &key, &signed]);
    let payload = e.ok(&["verify", "--tls-verify=false", "--key", &public, &signed]);
    assert!(
        payload.contains("cosign container image signature"),
        "{payload}"
    );
    let out = e.run(&[
        "verify",
        "--tls-verify=false",
        "--key",
        &stranger_pub,
        &signed,
    ]);
    assert!(!out.status.success(), "a stranger's key verified");

    // The repository now serves only what a trusted key signed.
    let out = r.admin(&[
        "repo",
        "create",
        "trusted/app",
        "--require-signature",
        "--trusted-key",
        &public,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = http();
    let get = |tag: &str| {
        c.get(r.url(&format!("/v2/trusted/app/manifests/{tag}")))
            .send()
            .unwrap()
    };
    assert_eq!(get("1").status(), 200);
    // Push an unsigned image (different content): refused when pulled.
    e.ok(&["push", "--tls-verify=false", "other:1", &unsigned]);
    let resp = get("2");
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED");

    // pull --verify refuses an unsigned image and stores nothing.
    let before = e.ok(&["images", "-q"]);
    let out = e.run(&[
        "pull",
        "--tls-verify=false",
        "--verify",
        "--key",
        &public,
        &unsigned,
    ]);
    assert!(!out.status.success(), "an unsigned image was pulled");
    assert_eq!(e.ok(&["images", "-q"]), before);
    e.ok(&["rmi", "busybox"]);
    e.ok(&[
        "pull",
        "--tls-verify=false",
        "--verify",
        "--key",
        &public,
        &signed,
    ]);
    let out = e.run(&[
        "pull",
        "--tls-verify=false",
        "--verify",
        "--key",
        &stranger_pub,
        &signed,
    ]);
    assert!(!out.status.success(), "verified with the wrong key");
}

#[test]
fn immutable_tags_lifecycle_and_gc() {
    let r = Registry::start(OPEN);
    let (e, _) = estiba_with_image();
    e.ok(&[
        "import",
        common::busybox_tar().to_str().unwrap(),
        "second:1",
    ]);
    let out = r.admin(&[
        "repo",
        "create",
        "locked",
        "--immutable-tags",
        "--mutable-tag",
        "latest",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let push = |image: &str, dest: &str| {
        e.run(&[
            "push",
            "--tls-verify=false",
            image,
            &format!("{}/{dest}", r.addr),
        ])
    };
    assert!(push("busybox", "locked:v1").status.success());
    assert!(
        push("busybox", "locked:v1").status.success(),
        "the same content again is fine"
    );
    let out = push("second:1", "locked:v1");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("immutable"), "{}", stderr(&out));
    assert!(push("busybox", "locked:latest").status.success());
    assert!(
        push("second:1", "locked:latest").status.success(),
        "latest stays mutable"
    );
    let listed = stdout(&r.admin(&["repo", "ls"]));
    assert!(
        listed.lines().any(|l| l.starts_with("locked\t2\ttrue")),
        "{listed}"
    );
    let inspect: Value =
        serde_json::from_str(&stdout(&r.admin(&["repo", "inspect", "locked"]))).unwrap();
    assert_eq!(inspect["Settings"]["immutableTags"], true);
    assert!(r.admin(&["repo", "rm", "locked"]).status.success());
    let gone = http().get(r.url("/v2/locked/tags/list")).send().unwrap();
    assert_eq!(gone.status(), 404);

    // Lifecycle: keep the last 2 rel-* images; a dry run lists exactly what
    // the real run removes.
    let out = r.admin(&["repo", "create", "life", "--keep-last", "rel-=2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = http();
    let mut digests = Vec::new();
    for i in 0..4 {
        let config = format!("{{\"n\":{i}}}").into_bytes();
        let layer = format!("layer {i}").into_bytes();
        for blob in [&config, &layer] {
            let resp = c
                .post(r.url(&format!("/v2/life/blobs/uploads/?digest={}", sha256(blob))))
                .body(blob.clone())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}]});
        let body = serde_json::to_vec(&m).unwrap();
        let resp = c
            .put(r.url(&format!("/v2/life/manifests/rel-{i}")))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
        digests.push(sha256(&body));
        // Apart in time, so that "the last 2" is well defined.
        std::thread::sleep(Duration::from_millis(20));
    }
    let dry = stdout(&r.admin(&["lifecycle", "--dry-run", "life"]));
    let listed: Vec<&str> = dry
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    let mut expected = vec![digests[0].as_str(), digests[1].as_str()];
    expected.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{dry}");
    let real = stdout(&r.admin(&["lifecycle", "life"]));
    assert_eq!(real, dry, "the run removes exactly what the dry run listed");
    let tags: Value = c
        .get(r.url("/v2/life/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["rel-2", "rel-3"]));

    // GC: the expired images' blobs go (with no grace), the rest stay.
    let before = files_under(&r.root().join("blobs")).len();
    let out = r.admin(&["gc", "--grace", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let removed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    for d in &digests[..2] {
        assert!(removed.contains(d), "{d} not collected: {removed:?}");
    }
    assert_eq!(
        files_under(&r.root().join("blobs")).len(),
        before - removed.len()
    );
    for tag in ["rel-2", "rel-3"] {
        let m: Value = c
            .get(r.url(&format!("/v2/life/manifests/{tag}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
            let resp = c
                .head(r.url(&format!("/v2/life/blobs/{}", d.as_str().unwrap())))
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "a live blob was collected");
        }
    }
}

#[test]
fn gc_during_concurrent_pushes_loses_nothing() {
    // GC runs in the server every second; anything touched within 30 s is spared.
    let config = format!("{OPEN}\n[gc]\ninterval_secs = 1\ngrace_secs = 30\n");
    let r = Registry::start(&config);
    let c = http();
    // Garbage from long ago: an unreferenced blob, aged past the grace window.
    let garbage = b"garbage nobody references".to_vec();
    let resp = c
        .post(r.url(&format!(
            "/v2/gc/blobs/uploads/?digest={}",
            sha256(&garbage)
        )))
        .body(garbage.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let path = files_under(&r.root().join("blobs"))
        .into_iter()
        .find(|p| p.ends_with(&sha256(&garbage)[7..]))
        .unwrap();
    let status = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    // Many pushes while GC runs.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let url = r.url("");
            std::thread::spawn(move || {
                let c = http();
                let mut pushed = Vec::new();
                for i in 0..15 {
                    let config = format!("{{\"w\":{w},\"i\":{i}}}").into_bytes();
                    let layer: Vec<u8> = format!("worker {w} image {i}").repeat(1000).into_bytes();
                    for blob in [&config, &layer] {
                        let resp = c
                            .post(format!("{url}/v2/gc/blobs/uploads/?digest={}", sha256(blob)))
                            .body(blob.clone())
                            .send()
                            .unwrap();
                        assert_eq!(resp.status(), 201);
                    }
                    // Give GC a chance between the blobs and the manifest.
                    std::thread::sleep(Duration::from_millis(50));
                    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}]});
                    let body = serde_json::to_vec(&m).unwrap();
                    let resp = c
                        .put(format!("{url}/v2/gc/manifests/w{w}-{i}"))
                        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                        .body(body)
                        .send()
                        .unwrap();
                    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
                    pushed.push((format!("w{w}-{i}"), sha256(&config), sha256(&layer)));
                }
                pushed
            })
        })
        .collect();
    let pushed: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    // Two more runs: at least one of them started after the last push.
    let gc_runs = || {
        let metrics = c.get(r.url("/metrics")).send().unwrap().text().unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("estiba_registry_gc_runs_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no GC run count in {metrics}"))
    };
    let runs = gc_runs();
    common::wait_until("two more GC runs", Duration::from_secs(20), || {
        gc_runs() >= runs + 2
    });
    for (tag, config, layer) in &pushed {
        assert_eq!(
            c.head(r.url(&format!("/v2/gc/manifests/{tag}")))
                .send()
                .unwrap()
                .status(),
            200
        );
        for d in [config, layer] {
            let resp = c.get(r.url(&format!("/v2/gc/blobs/{d}"))).send().unwrap();
            assert_eq!(resp.status(), 200, "{tag}: {d} was lost");
            assert_eq!(&sha256(&resp.bytes().unwrap()), d);
        }
    }
    assert!(!path.exists(), "the old garbage was collected");
    let metrics = c.get(r.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        !metrics.contains("estiba_registry_gc_runs_total 0"),
        "{metrics}"
    );
}

#[test]
fn tls_with_a_self_signed_certificate() {
    if !common::require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    check(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let config = format!(
        "{OPEN}\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let r = Registry::start(&config);
    // curl trusts it with the certificate as CA, and not without.
    let ok = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/health", r.addr))
        .output()
        .unwrap();
    assert_eq!(stdout(&ok), "200");
    let refused = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            &format!("https://{}/health", r.addr),
        ])
        .status()
        .unwrap();
    assert!(!refused.success());
    // The token realm is https too.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/v2/", r.addr))
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&format!("realm=\"https://{}/token\"", r.addr)),
        "{}",
        stdout(&out)
    );
    if common::require_root("estiba push over TLS") {
        let (e, _) = estiba_with_image();
        let dest = format!("{}/tls/bb:1", r.addr);
        let out = e.run(&["push", "busybox", &dest]);
        assert!(!out.status.success(), "an unknown certificate was trusted");
        e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
        e.ok(&["pull", "--tls-verify=false", &dest]);
    }
}

#[test]
fn pull_resumes_a_broken_download() {
    if !common::require_root("pull into a root store") {
        return;
    }
    let r = Registry::start(OPEN);
    let (e, _) = estiba_with_image();
    let dest = format!("{}/resume/bb:1", r.addr);
    e.ok(&["push", "--tls-verify=false", "busybox", &dest]);
    e.ok(&["rmi", "busybox"]);
    e.ok(&["image", "prune"]);
    let c = http();
    let m: Value = c
        .get(r.url("/v2/resume/bb/manifests/1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let data = c
        .get(r.url(&format!("/v2/resume/bb/blobs/{layer}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    // What an interrupted pull left: the first half of the layer.
    let partial = e
        .path()
        .join("data/storage/ingest")
        .join(format!("pull-{}.partial", &layer[7..]));
    std::fs::write(&partial, &data[..data.len() / 2]).unwrap();
    e.ok(&["pull", "--tls-verify=false", &dest]);
    assert!(
        r.log()
            .contains(&format!("path=/v2/resume/bb/blobs/{layer} status=206")),
        "the pull asked for the rest only: {}",
        r.log()
    );
    assert!(!partial.exists());
    assert_eq!(
        e.ok(&["run", "--rm", &dest, "echo", "resumed"]).trim(),
        "resumed"
    );
    // A partial file with wrong bytes is caught by the digest and never used.
    e.ok(&["rmi", &dest]);
    e.ok(&["image", "prune"]);
    let mut bad = data[..data.len() / 2].to_vec();
    bad[0] ^= 0xff;
    std::fs::write(&partial, &bad).unwrap();
    let out = e.run(&["pull", "--tls-verify=false", &dest]);
    assert!(
        !out.status.success(),
        "a corrupt partial download was accepted"
    );
    assert!(stderr(&out).contains("digest"), "{}", stderr(&out));
    assert!(!partial.exists(), "the corrupt partial file is removed");
    e.ok(&["pull", "--tls-verify=false", &dest]);
}
