//! Interop with real peers: images saved by podman and by docker load and run
//! in estiba; estiba's oci-archive is read by skopeo and loaded by podman.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};
use std::process::Command;

fn check(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn podman_saved_images_load_and_run() {
    if !common::require_root("podman interop") || !common::require_tool("podman") {
        return;
    }
    let e = Estiba::root();
    let pd = e.path().join("podman");
    let tar = common::busybox_tar().to_str().unwrap();
    check(common::podman(&pd).args(["import", tar, "localhost/bb:podman"]));
    for (format, file) in [
        ("docker-archive", "podman-docker.tar"),
        ("oci-archive", "podman-oci.tar"),
    ] {
        let archive = e.path().join(file);
        check(
            common::podman(&pd)
                .args(["save", "--format", format, "-o"])
                .arg(&archive)
                .arg("localhost/bb:podman"),
        );
        let out = e.ok(&["load", "-i", archive.to_str().unwrap()]);
        assert!(out.contains("Loaded image"), "{format}: {out}");
        let out = e.ok(&["run", "--rm", "localhost/bb:podman", "echo", format]);
        assert_eq!(out.trim(), format);
        e.ok(&["rmi", "-f", "localhost/bb:podman"]);
    }
    // And the other way: podman loads what estiba saves.
    e.ok(&["import", tar, "estiba/bb:1"]);
    let archive = e.path().join("estiba-oci.tar");
    e.ok(&["save", "-o", archive.to_str().unwrap(), "estiba/bb:1"]);
    let out = check(common::podman(&pd).arg("load").arg("-i").arg(&archive));
    assert!(out.contains("Loaded image"), "podman load: {out}");
}

#[test]
fn docker_saved_images_load_and_run() {
    if !common::require_root("docker interop") || !common::require_tool("dockerd") {
        return;
    }
    let e = Estiba::root();
    let d = common::start_dockerd(&e.path().join("docker"), &[]);
    let tar = common::busybox_tar().to_str().unwrap();
    check(common::docker(&d).args(["import", tar, "bb:docker"]));
    let archive = e.path().join("docker-save.tar");
    check(
        common::docker(&d)
            .args(["save", "-o"])
            .arg(&archive)
            .arg("bb:docker"),
    );
    let out = e.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: bb:docker"), "{out}");
    let out = e.run(&[
        "run",
        "--rm",
        "bb:docker",
        "sh",
        "-c",
        "echo from docker; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from docker\n");
    // `docker save | gzip` loads too.
    let gz = e.path().join("docker-save.tar.gz");
    check(Command::new("sh").arg("-c").arg(format!(
        "gzip -c < {} > {}",
        archive.display(),
        gz.display()
    )));
    e.ok(&["rmi", "bb:docker"]);
    e.ok(&["load", "-i", gz.to_str().unwrap()]);
    e.ok(&["run", "--rm", "bb:docker", "true"]);
}
