//! Crash safety: `kill -9` during `image load` never leaves a half image
//! listed, and the next load succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::Estiba;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An oci-archive holding busybox plus 64 MiB of incompressible data, so a
/// load takes long enough to be interrupted at many points.
fn big_archive(e: &Estiba) -> std::path::PathBuf {
    let tar = e.path().join("big-rootfs.tar");
    std::fs::copy(common::busybox_tar(), &tar).unwrap();
    let blob = e.path().join("big.bin");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 67108864 /dev/urandom > {}",
            blob.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("tar")
        .arg("-rf")
        .arg(&tar)
        .arg("-C")
        .arg(e.path())
        .arg("big.bin")
        .status()
        .unwrap();
    assert!(status.success());
    e.ok(&["import", tar.to_str().unwrap(), "big:1"]);
    let archive = e.path().join("big-oci.tar");
    e.ok(&["save", "-o", archive.to_str().unwrap(), "big:1"]);
    archive
}

/// Starts `estiba load` and sends it SIGKILL after `delay_ms`.
fn load_killed_after(
    e: &Estiba,
    archive: &std::path::Path,
    delay_ms: u64,
) -> std::process::ExitStatus {
    let mut child = e
        .direct(&["load", "-q", "-i", archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Not a wait for anything: the delay is the moment of the load at which
    // the kill lands, and each run of the test picks several.
    std::thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill();
    child.wait().unwrap()
}

#[test]
fn kill_during_load_leaves_the_store_consistent() {
    if !common::require_root("crash-safety test") {
        return;
    }
    let source = Estiba::root();
    let archive = big_archive(&source);
    let e = Estiba::root();
    let delays_ms = [5, 20, 50, 100, 150, 250, 400, 600];
    for delay in delays_ms {
        let status = load_killed_after(&e, &archive, delay);
        let listed = e.ok(&["images", "-q"]);
        if status.success() {
            // The load won the race: the image must be whole.
            assert_eq!(listed.lines().count(), 1);
            assert_eq!(
                e.ok(&["run", "--rm", "big:1", "wc", "-c", "/big.bin"])
                    .split_whitespace()
                    .next(),
                Some("67108864")
            );
            e.ok(&["rmi", "big:1"]);
        } else {
            assert!(
                listed.trim().is_empty(),
                "a half-loaded image is listed after kill -9 at {delay} ms: {listed}"
            );
        }
        // Leftovers are unreferenced and never visible; prune removes them.
        let ingest = std::fs::read_dir(e.path().join("data/storage/ingest"))
            .map(|d| d.count())
            .unwrap_or(0);
        e.ok(&["image", "prune", "-f"]);
        assert_eq!(
            std::fs::read_dir(e.path().join("data/storage/ingest"))
                .unwrap()
                .count(),
            0,
            "prune left temp files ({ingest} before)"
        );
    }
    // Kill again mid-way, then load for real without pruning first.
    load_killed_after(&e, &archive, 100);
    let out = e.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: big:1"), "{out}");
    assert_eq!(
        e.ok(&["run", "--rm", "big:1", "wc", "-c", "/big.bin"])
            .split_whitespace()
            .next(),
        Some("67108864")
    );
}
