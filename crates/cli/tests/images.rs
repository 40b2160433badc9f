//! Image store commands through the real binary: import, images, tag, rmi,
//! inspect, save and load round trips, prune, and compressed layers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};
use std::process::Command;

/// An archive of regular files, as a hostile or broken `docker save` might be.
fn write_tar(path: &std::path::Path, files: &[(&str, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (file, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, file, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

fn images_json(e: &Estiba) -> Vec<serde_json::Value> {
    e.ok(&["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn image_commands_behave_like_docker() {
    if !common::require_root("image command test") {
        return;
    }
    let e = Estiba::root().with_busybox();
    let table = e.ok(&["images"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["busybox", "latest"]);
    assert_eq!(row[2].len(), 12);

    e.ok(&["tag", "busybox", "localhost:5000/team/app:v1"]);
    let rows = images_json(&e);
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r["Repository"] == "localhost:5000/team/app" && r["Tag"] == "v1"));
    let ids = e.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 1, "-q lists each image once: {ids}");

    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["Id"].as_str().unwrap().len(), 71);
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(inspect[0]["Os"], "linux");
    // By id prefix too.
    let id = ids.trim();
    e.ok(&["image", "inspect", &id[..6]]);

    // rmi of an id with two names is refused; by name it untags.
    let out = e.run(&["rmi", id]);
    assert!(
        !out.status.success(),
        "rmi of a multi-name image by id must be refused"
    );
    let out = e.ok(&["rmi", "localhost:5000/team/app:v1"]);
    assert_eq!(out.trim(), "Untagged: localhost:5000/team/app:v1");

    // save → rmi → load gives back the same image id.
    let archive = e.path().join("busybox-oci.tar");
    e.ok(&["image", "save", "-o", archive.to_str().unwrap(), "busybox"]);
    let out = e.ok(&["rmi", "busybox"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(images_json(&e).is_empty());
    let out = e.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(e.ok(&["images", "-q"]).trim(), id);
    assert_eq!(e.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");

    // An OCI layout directory loads too.
    let layout = e.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap()
        .success());
    e.ok(&["rmi", "busybox"]);
    e.ok(&["load", "-i", layout.to_str().unwrap()]);
    assert_eq!(e.ok(&["images", "-q"]).trim(), id);

    // Prune removes dangling images and unreferenced blobs.
    e.ok(&["import", common::busybox_tar().to_str().unwrap()]);
    assert_eq!(images_json(&e).len(), 2);
    let out = e.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(images_json(&e).len(), 1);
    let blobs = std::fs::read_dir(e.path().join("data/storage/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3, "manifest, config and one layer remain");

    let out = e.run(&["rmi", "nope"]);
    assert!(!out.status.success() && stderr(&out).contains("No such image"));
    let out = e.run(&["tag", "busybox", "Bad:Name"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid image reference"));
}

#[test]
fn compressed_rootfs_tarballs_import_and_run() {
    if !common::require_root("compressed import test") {
        return;
    }
    let e = Estiba::root();
    let tar = common::busybox_tar();
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        if !common::require_tool(tool) {
            continue;
        }
        let out = e.path().join(format!("busybox.tar.{ext}"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{tool} -c < {} > {}", tar.display(), out.display()))
            .status()
            .unwrap();
        assert!(status.success());
        e.ok(&["import", out.to_str().unwrap(), &format!("bb-{ext}")]);
        assert_eq!(
            e.ok(&["run", "--rm", &format!("bb-{ext}"), "echo", ext])
                .trim(),
            ext
        );
    }
    // A saved archive with compressed layers round-trips through skopeo.
    if common::require_tool("skopeo") {
        let archive = e.path().join("gz.tar");
        e.ok(&["save", "-o", archive.to_str().unwrap(), "bb-gz"]);
        let v = common::skopeo_inspect(&archive);
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    if !common::require_root("bad archive test") {
        return;
    }
    let e = Estiba::root();
    let dir = e.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    type Files = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, Files)> = vec![
        ("empty", vec![]),
        ("garbage manifest", vec![("manifest.json", b"{not json".to_vec())]),
        ("missing config", vec![("manifest.json", br#"[{"Config":"nope.json","RepoTags":["x:1"],"Layers":[]}]"#.to_vec())]),
        ("index with a bad digest", vec![("oci-layout", b"{}".to_vec()), ("index.json", br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc/passwd","size":1}]}"#.to_vec())]),
        ("index pointing at a missing blob", vec![("index.json", format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1}}]}}"#, "a".repeat(64)).into_bytes())]),
        ("config listing more layers than the archive", vec![
            ("c.json", br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]}}"#.to_vec()),
            ("manifest.json", br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":[]}]"#.to_vec()),
        ]),
    ];
    for (name, files) in cases {
        let path = dir.join(format!("{}.tar", name.replace(' ', "-")));
        write_tar(&path, &files);
        let out = e.run(&["load", "-i", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(125), "{name}: accepted");
        assert!(
            stderr(&out).starts_with("estiba: "),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            images_json(&e).is_empty(),
            "{name}: an image became visible"
        );
    }
    // A layer whose content does not match the config's diff id.
    let layer = dir.join("layer.tar");
    std::fs::copy(common::busybox_tar(), &layer).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        "b".repeat(64)
    );
    let path = dir.join("wrong-diff-id.tar");
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]}]"#.to_vec();
    write_tar(
        &path,
        &[
            ("c.json", config.into_bytes()),
            ("manifest.json", manifest),
            ("l.tar", std::fs::read(&layer).unwrap()),
        ],
    );
    let out = e.run(&["load", "-i", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    assert!(images_json(&e).is_empty());
}
