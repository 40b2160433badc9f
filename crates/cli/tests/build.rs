//! `estiba build`, as root and as a fresh user: a multi-stage Containerfile,
//! the layer cache, .dockerignore, errors that name their line, and the
//! result read by skopeo and run by podman.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};
use std::process::Command;

const CONTAINERFILE: &str = r#"# a comment
ARG BASE=busybox
FROM ${BASE} AS builder
WORKDIR /src
RUN echo "built in $(pwd)" > artifact && rm /etc/group
COPY . /ctx/

FROM busybox
ENV GREETING="hello from the build"
COPY --from=builder /src/artifact /app/
COPY --chown=1000:1000 data.txt /app/
ADD bundle.tar /unpacked/
USER user
WORKDIR /app
HEALTHCHECK --interval=5s --retries=2 CMD test -f /app/artifact
STOPSIGNAL SIGQUIT
CMD ["sh", "-c", "cat artifact; echo $GREETING; id -u; stat -c %u data.txt; ls /unpacked"]
"#;

fn context(e: &Estiba) -> std::path::PathBuf {
    let dir = e.scratch("context");
    std::fs::write(dir.join("Containerfile"), CONTAINERFILE).unwrap();
    std::fs::write(dir.join("data.txt"), "data").unwrap();
    std::fs::write(dir.join("secret.log"), "must not be copied").unwrap();
    std::fs::write(dir.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::create_dir_all(dir.join("inner")).unwrap();
    std::fs::write(dir.join("inner/file"), "x").unwrap();
    let status = Command::new("tar")
        .arg("-cf")
        .arg(dir.join("bundle.tar"))
        .arg("-C")
        .arg(&dir)
        .arg("inner")
        .status()
        .unwrap();
    assert!(status.success());
    if let Some(user) = e.user {
        Command::new("chown")
            .arg("-R")
            .arg(user)
            .arg(&dir)
            .status()
            .unwrap();
    }
    dir
}

fn multi_stage_builds_run_and_cache(e: &Estiba) {
    let who = e.label();
    let ctx = context(e);
    let out = e.run(&["build", "-t", "app:1", ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "[{who}] build failed: {}",
        stderr(&out)
    );
    let run = e.ok(&["run", "--rm", "app:1"]);
    assert_eq!(
        run, "built in /src\nhello from the build\n1000\n1000\ninner\n",
        "[{who}] {run}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["image", "inspect", "app:1"])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "user");
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(config["Healthcheck"]["Test"][0], "CMD-SHELL");
    // Layers: busybox + COPY --from + COPY + ADD.
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        4,
        "[{who}] one layer per filesystem step"
    );
    // The builder stage saw the context minus .dockerignore.
    let ctx_listing = e.ok(&[
        "build",
        "-q",
        "--target",
        "builder",
        "-t",
        "stage:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(ctx_listing.starts_with("sha256:"));
    let files = e.ok(&["run", "--rm", "stage:1", "ls", "/ctx"]);
    assert!(
        files.contains("data.txt") && !files.contains("secret.log"),
        "[{who}] .dockerignore: {files}"
    );

    // Nothing changed: every filesystem step is a cache hit.
    let again = e.run(&["build", "-t", "app:1", ctx.to_str().unwrap()]);
    let log = stderr(&again);
    assert!(again.status.success(), "{log}");
    assert_eq!(
        log.matches("Using cache").count(),
        5,
        "[{who}] rebuild: {log}"
    );
    // A changed input invalidates only what reads it.
    std::fs::write(ctx.join("data.txt"), "changed").unwrap();
    let changed = stderr(&e.run(&["build", "-t", "app:2", ctx.to_str().unwrap()]));
    assert_eq!(
        changed.matches("Using cache").count(),
        2,
        "[{who}] after a change: {changed}"
    );

    // Errors name the line.
    let bad = e.scratch("bad");
    std::fs::write(
        bad.join("Containerfile"),
        "FROM busybox\n\nFROBNICATE now\n",
    )
    .unwrap();
    let out = e.run(&["build", "-t", "bad", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("line 3"), "[{who}] {}", stderr(&out));
    std::fs::write(
        bad.join("Containerfile"),
        "FROM busybox\nRUN true\nRUN exit 3\n",
    )
    .unwrap();
    let out = e.run(&["build", "-t", "bad", bad.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("line 3") && stderr(&out).contains("non-zero code: 3"),
        "[{who}] {}",
        stderr(&out)
    );
    assert!(
        e.run(&["image", "inspect", "bad"]).status.code() != Some(0),
        "[{who}] a failed build left an image"
    );
}

root_and_rootless!(multi_stage_builds_run_and_cache);

#[test]
fn built_images_are_read_by_skopeo_and_run_by_podman() {
    if !common::require_root("build interop")
        || !common::require_tool("skopeo")
        || !common::require_tool("podman")
    {
        return;
    }
    let e = Estiba::root().with_busybox();
    let ctx = context(&e);
    e.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/app:1",
        ctx.to_str().unwrap(),
    ]);
    let archive = e.path().join("app.tar");
    e.ok(&["save", "-o", archive.to_str().unwrap(), "localhost/app:1"]);
    let v = common::skopeo_inspect(&archive);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 4);
    let pd = e.path().join("podman");
    let podman = |args: &[&str]| common::podman(&pd).args(args).output().unwrap();
    let load = podman(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let run = podman(&["run", "--rm", "--network", "none", "localhost/app:1"]);
    assert!(
        run.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).starts_with("built in /src\nhello from the build\n")
    );
}
