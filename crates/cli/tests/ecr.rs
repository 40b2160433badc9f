//! The ECR API on estiba's registry, driven by Debian's AWS CLI and boto3:
//! repositories with immutable tags, images pushed and described, a
//! lifecycle policy whose preview lists exactly what a run removes, and
//! `get-login-password` logging the docker CLI in (through `estiba system
//! service`, with no dockerd), and an image uploaded through the layer API
//! that skopeo pulls back. Bad requests get ECR's exceptions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{require_root, require_tool, Estiba};

const POLICIES: &str = r#"
[[policy]]
repositories = "team/*"
groups = ["devs"]
actions = ["pull", "push"]
"#;

struct Key {
    id: String,
    secret: String,
}

fn key_for(r: &Registry, user: &str) -> Key {
    let out = r.admin(&["key", "create", user]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["AccessKey"]["UserName"], user);
    assert_eq!(v["AccessKey"]["Status"], "Active");
    Key {
        id: v["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string(),
        secret: v["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

fn aws(r: &Registry, key: &Key, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new("aws")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args(["--endpoint-url", &r.url(""), "--output", "json", "ecr"])
        .args(args)
        .output()
        .expect("aws")
}

fn ecr(r: &Registry, key: &Key, args: &[&str]) -> serde_json::Value {
    let out = aws(r, key, args);
    assert!(
        out.status.success(),
        "aws ecr {args:?}: {}\n{}",
        common::stderr(&out),
        r.log()
    );
    let text = common::stdout(&out);
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn refused(r: &Registry, key: &Key, args: &[&str], exception: &str) {
    let out = aws(r, key, args);
    assert!(!out.status.success(), "aws ecr {args:?} succeeded");
    let err = common::stderr(&out);
    assert!(err.contains(exception), "aws ecr {args:?}: {err}");
}

fn ready(what: &str) -> bool {
    require_root(what) && require_tool("aws") && require_tool("/usr/bin/docker")
}

/// An image of its own: busybox with one more label.
fn image(e: &Estiba, name: &str, label: &str) {
    let ctx = e.scratch(&format!("ctx-{label}"));
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM busybox\nLABEL n={label}\n"),
    )
    .unwrap();
    e.ok(&["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

fn push(e: &Estiba, image: &str) -> Output {
    e.run(&["push", "--tls-verify=false", image])
}

/// A registry with ops (an admin) and dev (of the devs group), each with
/// an access key.
fn registry_with_ops_and_dev() -> (Registry, Key, Key) {
    let r = Registry::start(POLICIES);
    r.add_user("ops", "ops-secret", &["--admin"]);
    r.add_user("dev", "dev-secret", &["--group", "devs"]);
    let ops = key_for(&r, "ops");
    let dev = key_for(&r, "dev");
    (r, ops, dev)
}

#[test]
fn ecr_repositories_images_and_lifecycle_through_the_aws_cli() {
    if !ready("the ECR API") {
        return;
    }
    let (r, ops, dev) = registry_with_ops_and_dev();
    let e = Estiba::root().with_busybox();

    // A repository with immutable tags: a second push over a tag is refused.
    let created = ecr(
        &r,
        &ops,
        &[
            "create-repository",
            "--repository-name",
            "team/app",
            "--image-tag-mutability",
            "IMMUTABLE",
            "--tags",
            "Key=team,Value=platform",
        ],
    );
    assert_eq!(
        created["repository"]["imageTagMutability"], "IMMUTABLE",
        "{created}"
    );
    assert_eq!(
        created["repository"]["repositoryUri"],
        format!("{}/team/app", r.addr)
    );
    refused(
        &r,
        &ops,
        &["create-repository", "--repository-name", "team/app"],
        "RepositoryAlreadyExistsException",
    );
    let login = e
        .cmd(&[
            "login",
            "--username",
            "ops",
            "--password-stdin",
            "--tls-verify=false",
            &r.addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut login = login;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(b"ops-secret")
        .unwrap();
    assert!(login.wait_with_output().unwrap().status.success());
    let app = format!("{}/team/app", r.addr);
    image(&e, &format!("{app}:1"), "one");
    let first = push(&e, &format!("{app}:1"));
    assert!(first.status.success(), "{first:?}");
    image(&e, &format!("{app}:1"), "other");
    let again = push(&e, &format!("{app}:1"));
    assert!(
        !again.status.success(),
        "an immutable tag was moved: {again:?}"
    );

    // describe-images and list-images show what was pushed.
    let described = ecr(
        &r,
        &ops,
        &["describe-images", "--repository-name", "team/app"],
    );
    let details = described["imageDetails"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{described}");
    assert_eq!(details[0]["imageTags"], serde_json::json!(["1"]));
    assert!(
        details[0]["imageSizeInBytes"].as_u64().unwrap() > 100_000,
        "{described}"
    );
    assert!(details[0]["imageDigest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let listed = ecr(&r, &dev, &["list-images", "--repository-name", "team/app"]);
    assert_eq!(listed["imageIds"][0]["imageTag"], "1", "{listed}");
    // batch-get-image, then put-image of the same manifest under a new tag.
    let got = ecr(
        &r,
        &dev,
        &[
            "batch-get-image",
            "--repository-name",
            "team/app",
            "--image-ids",
            "imageTag=1",
        ],
    );
    let manifest = got["images"][0]["imageManifest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(manifest.contains("layers"), "{got}");
    let put = ecr(
        &r,
        &dev,
        &[
            "put-image",
            "--repository-name",
            "team/app",
            "--image-tag",
            "2",
            "--image-manifest",
            &manifest,
        ],
    );
    assert_eq!(
        put["image"]["imageId"]["imageDigest"], details[0]["imageDigest"],
        "{put}"
    );
    refused(
        &r,
        &dev,
        &[
            "put-image",
            "--repository-name",
            "team/app",
            "--image-tag",
            "1",
            "--image-manifest",
            &manifest,
        ],
        "ImageAlreadyExistsException",
    );
    let tags = ecr(
        &r,
        &ops,
        &[
            "list-tags-for-resource",
            "--resource-arn",
            created["repository"]["repositoryArn"].as_str().unwrap(),
        ],
    );
    assert_eq!(tags["tags"][0]["Key"], "team", "{tags}");

    // A lifecycle policy: keep the last two "v" images, and the preview
    // lists exactly what a run then removes.
    ecr(
        &r,
        &ops,
        &["create-repository", "--repository-name", "team/rel"],
    );
    let rel = format!("{}/team/rel", r.addr);
    for n in 1..=4 {
        image(&e, &format!("{rel}:v{n}"), &format!("v{n}"));
        assert!(push(&e, &format!("{rel}:v{n}")).status.success());
        std::thread::sleep(Duration::from_millis(1100));
    }
    let policy = r#"{"rules": [{"rulePriority": 1, "description": "keep two", "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}}]}"#;
    ecr(
        &r,
        &ops,
        &[
            "put-lifecycle-policy",
            "--repository-name",
            "team/rel",
            "--lifecycle-policy-text",
            policy,
        ],
    );
    let got = ecr(
        &r,
        &dev,
        &["get-lifecycle-policy", "--repository-name", "team/rel"],
    );
    assert_eq!(got["lifecyclePolicyText"], policy);
    ecr(
        &r,
        &ops,
        &[
            "start-lifecycle-policy-preview",
            "--repository-name",
            "team/rel",
        ],
    );
    let preview = ecr(
        &r,
        &ops,
        &[
            "get-lifecycle-policy-preview",
            "--repository-name",
            "team/rel",
        ],
    );
    assert_eq!(preview["status"], "COMPLETE", "{preview}");
    let mut previewed: Vec<String> = preview["previewResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["imageTags"][0].as_str().unwrap().to_string())
        .collect();
    previewed.sort();
    assert_eq!(previewed, ["v1", "v2"], "{preview}");
    let before: Vec<String> = ecr(&r, &ops, &["list-images", "--repository-name", "team/rel"])
        ["imageIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["imageTag"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(before.len(), 4);
    let run = r.admin(&["lifecycle"]);
    assert!(run.status.success(), "{run:?}");
    let mut after: Vec<String> = ecr(&r, &ops, &["list-images", "--repository-name", "team/rel"])
        ["imageIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["imageTag"].as_str().unwrap_or("").to_string())
        .collect();
    after.sort();
    assert_eq!(
        after,
        ["v3", "v4"],
        "the run removed what the preview listed"
    );

    // boto3 reads the same.
    let script = r#"
import sys, boto3
c = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
images = c.describe_images(repositoryName="team/rel")["imageDetails"]
assert sorted(t for i in images for t in i["imageTags"]) == ["v3", "v4"], images
repos = [x["repositoryName"] for x in c.describe_repositories()["repositories"]]
assert repos == ["team/app", "team/rel"], repos
try:
    c.delete_repository(repositoryName="team/rel")
    raise SystemExit("a repository with images was deleted without force")
except c.exceptions.RepositoryNotEmptyException:
    pass
c.delete_repository(repositoryName="team/rel", force=True)
print("ok")
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &r.url(""), &ops.id, &ops.secret])
        .output()
        .unwrap();
    assert!(common::stdout(&out).contains("ok"), "{out:?}");

    // Scan on push, turned on at creation: the image's scan status.
    ecr(
        &r,
        &ops,
        &[
            "create-repository",
            "--repository-name",
            "team/scanned",
            "--image-scanning-configuration",
            "scanOnPush=true",
        ],
    );
    let scanned = format!("{}/team/scanned:1", r.addr);
    image(&e, &scanned, "scanned");
    assert!(push(&e, &scanned).status.success());
    let described = ecr(
        &r,
        &ops,
        &["describe-images", "--repository-name", "team/scanned"],
    );
    // The findings are the image's referrer, listed beside it as ECR lists
    // artifacts; the image itself carries the status.
    let tagged = described["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["imageTags"] == serde_json::json!(["1"]))
        .unwrap_or_else(|| panic!("{described}"));
    assert_eq!(
        tagged["imageScanStatus"]["status"], "COMPLETE",
        "{described}"
    );

    // A repository policy grants a user the registry alone would not.
    r.add_user("bob", "bob-secret", &[]);
    let bob = key_for(&r, "bob");
    refused(
        &r,
        &bob,
        &["describe-images", "--repository-name", "team/app"],
        "AccessDeniedException",
    );
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Sid": "bob pulls", "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::000000000000:user/bob"]},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"]}]}"#;
    ecr(
        &r,
        &ops,
        &[
            "set-repository-policy",
            "--repository-name",
            "team/app",
            "--policy-text",
            policy,
        ],
    );
    let seen = ecr(
        &r,
        &bob,
        &["describe-images", "--repository-name", "team/app"],
    );
    assert_eq!(
        seen["imageDetails"].as_array().map(Vec::len),
        Some(1),
        "{seen}"
    );
    refused(
        &r,
        &bob,
        &[
            "batch-delete-image",
            "--repository-name",
            "team/app",
            "--image-ids",
            "imageTag=2",
        ],
        "AccessDeniedException",
    );
    let got = ecr(
        &r,
        &bob,
        &["get-repository-policy", "--repository-name", "team/app"],
    );
    assert_eq!(got["policyText"], policy);
    refused(
        &r,
        &ops,
        &[
            "set-repository-policy",
            "--repository-name",
            "team/app",
            "--policy-text",
            r#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}]}"#,
        ],
        "InvalidParameterException",
    );
    ecr(
        &r,
        &ops,
        &["delete-repository-policy", "--repository-name", "team/app"],
    );
    refused(
        &r,
        &bob,
        &["describe-images", "--repository-name", "team/app"],
        "AccessDeniedException",
    );

    // Who may do what, and bad input.
    refused(
        &r,
        &dev,
        &["create-repository", "--repository-name", "team/new"],
        "AccessDeniedException",
    );
    refused(
        &r,
        &dev,
        &["describe-repositories", "--repository-names", "other/x"],
        "RepositoryNotFoundException",
    );
    for bad in [
        "{",
        r#"{"rules": []}"#,
        r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
    ] {
        // The AWS CLI itself refuses texts under 100 characters.
        let bad = format!("{bad:<100}");
        refused(
            &r,
            &ops,
            &[
                "put-lifecycle-policy",
                "--repository-name",
                "team/app",
                "--lifecycle-policy-text",
                &bad,
            ],
            "InvalidParameterException",
        );
    }
    refused(
        &r,
        &ops,
        &["get-lifecycle-policy", "--repository-name", "team/app"],
        "LifecyclePolicyNotFoundException",
    );
    let forged = Key {
        id: ops.id.clone(),
        secret: "not-the-secret".into(),
    };
    refused(
        &r,
        &forged,
        &["describe-repositories"],
        "InvalidSignatureException",
    );
    let unknown = Key {
        id: "AKIAAAAAAAAAAAAAAAAA".into(),
        secret: "x".into(),
    };
    refused(
        &r,
        &unknown,
        &["describe-repositories"],
        "UnrecognizedClientException",
    );
}

/// A running `estiba system service` (root).
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn get_login_password_logs_the_docker_cli_in() {
    if !ready("ECR login") {
        return;
    }
    let r = Registry::start(POLICIES);
    r.add_user("dev", "dev-secret", &["--group", "devs"]);
    let dev = key_for(&r, "dev");
    let e = Estiba::root().with_busybox();
    let service = Service(
        e.daemon_cmd(&["system", "service", "--timeout", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = e.path().join("run/estiba.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the Docker API never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let password = ecr(&r, &dev, &["get-login-password"]);
    let password = password.as_str().unwrap().trim().to_string();
    let home = e.scratch("docker-home");
    let docker = |args: &[&str], input: Option<&str>| {
        let mut c = Command::new("/usr/bin/docker");
        c.env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("HOME", &home)
            .args(args);
        common::output_with_stdin(&mut c, input.map(str::as_bytes))
    };
    let login = docker(
        &["login", "--username", "AWS", "--password-stdin", &r.addr],
        Some(&password),
    );
    assert!(
        common::stdout(&login).contains("Login Succeeded"),
        "{login:?}\n{}",
        r.log()
    );
    let image = format!("{}/team/ecr:1", r.addr);
    assert!(docker(&["tag", "busybox", &image], None).status.success());
    let pushed = docker(&["push", &image], None);
    assert!(
        pushed.status.success() && common::stdout(&pushed).contains("digest:"),
        "{pushed:?}"
    );
    // The token logs in only: as a Bearer token it is refused.
    let bearer = reqwest::blocking::Client::new()
        .get(r.url("/v2/team/ecr/tags/list"))
        .bearer_auth(&password)
        .send()
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 401);
    drop(service);
}

/// Uploads `data` as one layer through ECR's layer API, in parts of
/// `part` bytes; returns its digest.
fn upload_layer(r: &Registry, key: &Key, repo: &str, data: &[u8], part: usize) -> String {
    let digest = common::registry::sha256(data);
    let started = ecr(
        r,
        key,
        &["initiate-layer-upload", "--repository-name", repo],
    );
    let id = started["uploadId"].as_str().unwrap().to_string();
    assert!(started["partSize"].as_u64().unwrap() > 0, "{started}");
    let dir = tempfile::tempdir().unwrap();
    for (n, chunk) in data.chunks(part).enumerate() {
        let first = n * part;
        let path = dir.path().join(format!("part{n}"));
        std::fs::write(&path, chunk).unwrap();
        let sent = ecr(
            r,
            key,
            &[
                "upload-layer-part",
                "--repository-name",
                repo,
                "--upload-id",
                &id,
                "--part-first-byte",
                &first.to_string(),
                "--part-last-byte",
                &(first + chunk.len() - 1).to_string(),
                "--layer-part-blob",
                &format!("fileb://{}", path.display()),
            ],
        );
        assert_eq!(
            sent["lastByteReceived"].as_u64(),
            Some((first + chunk.len() - 1) as u64),
            "{sent}"
        );
    }
    let done = ecr(
        r,
        key,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            &id,
            "--layer-digests",
            &digest,
        ],
    );
    assert_eq!(done["layerDigest"], digest.as_str(), "{done}");
    digest
}

/// An image whose layer and config went up through ECR's layer API, part
/// by part, and whose manifest PutImage named: skopeo pulls it back whole.
/// Parts out of order, wrong digests, a layer uploaded twice and unknown
/// uploads get ECR's exceptions.
#[test]
fn an_image_uploaded_through_the_ecr_layer_api_pulls_back_with_skopeo() {
    if !ready("the ECR layer API") || !require_tool("skopeo") {
        return;
    }
    let (r, ops, dev) = registry_with_ops_and_dev();
    let repo = "team/parts";
    ecr(&r, &ops, &["create-repository", "--repository-name", repo]);

    // A 3 MiB layer (not all zeros) in 1 MiB parts, and its config.
    let layer: Vec<u8> = (0..3 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let layer_digest = common::registry::sha256(&layer);
    let check = |digests: &[&str]| {
        let mut args = vec![
            "batch-check-layer-availability",
            "--repository-name",
            repo,
            "--layer-digests",
        ];
        args.extend(digests);
        ecr(&r, &dev, &args)
    };
    let missing = check(&[&layer_digest, "not-a-digest"]);
    let codes: Vec<&str> = missing["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["failureCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["MissingLayerDigest", "InvalidLayerDigest"],
        "{missing}"
    );
    assert_eq!(upload_layer(&r, &dev, repo, &layer, 1 << 20), layer_digest);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = upload_layer(&r, &dev, repo, &config, 1 << 20);
    let there = check(&[&layer_digest, &config_digest]);
    assert_eq!(
        there["layers"][0]["layerAvailability"], "AVAILABLE",
        "{there}"
    );
    assert_eq!(there["layers"][0]["layerSize"], layer.len(), "{there}");
    assert_eq!(there["failures"], serde_json::json!([]), "{there}");

    // What is refused, and how.
    let started = ecr(
        &r,
        &dev,
        &["initiate-layer-upload", "--repository-name", repo],
    );
    let id = started["uploadId"].as_str().unwrap().to_string();
    let scratch = tempfile::tempdir().unwrap();
    let part = scratch.path().join("part");
    std::fs::write(&part, &layer[..1000]).unwrap();
    let blob = format!("fileb://{}", part.display());
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let send = |first: &str, last: &str, upload: &str| {
        vec![
            "upload-layer-part".to_string(),
            "--repository-name".into(),
            repo.into(),
            "--upload-id".into(),
            upload.into(),
            "--part-first-byte".into(),
            first.into(),
            "--part-last-byte".into(),
            last.into(),
            "--layer-part-blob".into(),
            blob.clone(),
        ]
    };
    let out_of_order = send("10", "1009", &id);
    refused(&r, &dev, &args(&out_of_order), "InvalidLayerPartException");
    let wrong_length = send("0", "499", &id);
    refused(&r, &dev, &args(&wrong_length), "InvalidLayerPartException");
    let unknown = send("0", "999", "0123456789abcdef0123456789abcdef");
    refused(&r, &dev, &args(&unknown), "UploadNotFoundException");
    let complete = |digest: &str| {
        vec![
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            id.as_str(),
            "--layer-digests",
        ]
        .into_iter()
        .map(str::to_string)
        .chain([digest.to_string()])
        .collect::<Vec<String>>()
    };
    refused(
        &r,
        &dev,
        &args(&complete(&layer_digest)),
        "EmptyUploadException",
    );
    ecr(&r, &dev, &args(&send("0", "999", &id)));
    let not_it = common::registry::sha256(b"other bytes");
    refused(&r, &dev, &args(&complete(&not_it)), "InvalidLayerException");
    let first_kib = common::registry::sha256(&layer[..1000]);
    ecr(&r, &dev, &args(&complete(&first_kib)));
    let again = ecr(
        &r,
        &dev,
        &["initiate-layer-upload", "--repository-name", repo],
    );
    let again_id = again["uploadId"].as_str().unwrap().to_string();
    ecr(&r, &dev, &args(&send("0", "999", &again_id)));
    refused(
        &r,
        &dev,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            &again_id,
            "--layer-digests",
            &first_kib,
        ],
        "LayerAlreadyExistsException",
    );
    refused(
        &r,
        &dev,
        &["initiate-layer-upload", "--repository-name", "team/none"],
        "RepositoryNotFoundException",
    );

    // The manifest, and skopeo pulling the image back.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    ecr(
        &r,
        &dev,
        &[
            "put-image",
            "--repository-name",
            repo,
            "--image-tag",
            "1",
            "--image-manifest",
            &manifest,
        ],
    );
    let out = scratch.path().join("out");
    let copied = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "dev:dev-secret",
        ])
        .arg(format!("docker://{}/{repo}:1", r.addr))
        // dir: keeps each blob as it came (oci: would compress the layer).
        .arg(format!("dir:{}", out.display()))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", common::stderr(&copied));
    let hex = layer_digest.strip_prefix("sha256:").unwrap();
    let pulled = std::fs::read(out.join(hex)).unwrap();
    assert!(pulled == layer, "the pulled layer differs");
}
