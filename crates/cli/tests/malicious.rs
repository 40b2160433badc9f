//! Hostile layers: each is refused with a clear error or safely contained,
//! and nothing appears (or disappears) outside the store. As root and rootless.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, Estiba};
use std::path::{Path, PathBuf};

/// One raw tar entry; names are written byte for byte, bypassing the tar
/// crate's own path checks, as an attacker's tool would.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDevice(&'a str, u32, u32),
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    h
}

fn build(path: &Path, entries: &[Entry]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match e {
            Entry::File(n, d) => (
                raw_header(n, tar::EntryType::Regular, d.len() as u64, None),
                d,
            ),
            Entry::Dir(n) => (raw_header(n, tar::EntryType::Directory, 0, None), b""),
            Entry::Symlink(n, t) => (raw_header(n, tar::EntryType::Symlink, 0, Some(t)), b""),
            Entry::Hardlink(n, t) => (raw_header(n, tar::EntryType::Link, 0, Some(t)), b""),
            Entry::CharDevice(n, maj, min) => {
                let mut h = raw_header(n, tar::EntryType::Char, 0, None);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                (h, b"")
            }
        };
        b.append(&h, data).unwrap();
    }
    b.finish().unwrap();
}

enum Expect {
    /// Import fails and the error says why.
    Refused(&'static str),
    /// Import succeeds; the layer holds the file at this path instead.
    ContainedAt(&'static str),
    /// Import succeeds.
    Accepted,
}

struct Case<'a> {
    name: &'static str,
    entries: Vec<Entry<'a>>,
    expect: Expect,
}

fn layer_dir(e: &Estiba) -> PathBuf {
    let layers = e.path().join("data/storage/layers");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&layers)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(dirs.len(), 1, "one layer expected in {layers:?}");
    dirs.into_iter().next().unwrap()
}

fn malicious_layers_are_refused_or_contained(e: &Estiba) {
    let who = e.label();
    let tag = format!("estiba-canary-{}-{who}", std::process::id());
    // A host file that whiteouts and hardlinks aim at; it must survive untouched.
    let victim = PathBuf::from(format!("/tmp/{tag}-victim"));
    std::fs::write(&victim, "precious").unwrap();
    let escape = format!("../../../../../../../../tmp/{tag}-dotdot");
    let absolute = format!("/tmp/{tag}-absolute");
    let through_symlink = format!("evil/tmp/{tag}-symlink");
    let through_rel_symlink = format!("rel/{tag}-relsymlink");
    let hardlink_target = format!("../../../../../../../tmp/{tag}-victim");
    let abs_hardlink_target = format!("/tmp/{tag}-victim");
    let whiteout_outside = format!("../../../../../../tmp/.wh.{tag}-victim");
    let whiteout_through_symlink = format!("evil/tmp/.wh.{tag}-victim");
    let through_replaced_dir = format!("d/{tag}-dir-symlink");
    let cases = vec![
        Case {
            name: "dot-dot path",
            entries: vec![Entry::File(&escape, b"x")],
            expect: Expect::Refused("would escape the root: '..' component"),
        },
        Case {
            name: "absolute path",
            entries: vec![Entry::File(&absolute, b"x")],
            expect: Expect::Refused("would escape the root: absolute path"),
        },
        Case {
            name: "symlink to / then a file through it",
            entries: vec![
                Entry::Symlink("evil", "/"),
                Entry::File(&through_symlink, b"x"),
            ],
            expect: Expect::ContainedAt("tmp"),
        },
        Case {
            name: "relative symlink climbing out",
            entries: vec![
                Entry::Symlink("rel", "../../../../../../../../tmp"),
                Entry::File(&through_rel_symlink, b"x"),
            ],
            // Resolved inside the root, the link names a /tmp the layer lacks.
            expect: Expect::Refused("No such file or directory"),
        },
        Case {
            name: "hardlink to a path outside",
            entries: vec![Entry::Hardlink("h", &hardlink_target)],
            expect: Expect::Refused("would escape the root: '..' component"),
        },
        Case {
            name: "hardlink to an absolute path",
            entries: vec![Entry::Hardlink("h", &abs_hardlink_target)],
            expect: Expect::Refused("would escape the root: absolute path"),
        },
        Case {
            name: "whiteout naming a path outside",
            entries: vec![Entry::File(&whiteout_outside, b"")],
            expect: Expect::Refused("would escape the root: '..' component"),
        },
        Case {
            name: "whiteout through a symlink",
            entries: vec![
                Entry::Symlink("evil", "/"),
                Entry::File(&whiteout_through_symlink, b""),
            ],
            expect: Expect::Accepted,
        },
        Case {
            name: "file replaced by a directory",
            entries: vec![
                Entry::File("x", b"file"),
                Entry::Dir("x/"),
                Entry::File("x/y", b"inner"),
            ],
            expect: Expect::ContainedAt("x/y"),
        },
        Case {
            name: "directory replaced by a symlink, then written through",
            entries: vec![
                Entry::Dir("tmp/"),
                Entry::Dir("d/"),
                Entry::Symlink("d", "/tmp"),
                Entry::File(&through_replaced_dir, b"x"),
            ],
            expect: Expect::ContainedAt("tmp"),
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let tarball = e.scratch("layers").join(format!("case{i}.tar"));
        build(&tarball, &case.entries);
        if let Some(user) = e.user {
            std::process::Command::new("chown")
                .arg(user)
                .arg(&tarball)
                .status()
                .unwrap();
        }
        let out = e.run(&["import", tarball.to_str().unwrap(), &format!("case{i}")]);
        match &case.expect {
            Expect::Refused(why) => {
                assert!(!out.status.success(), "[{who}] {}: accepted", case.name);
                let err = stderr(&out);
                assert!(
                    err.contains(why),
                    "[{who}] {}: unclear error: {err}",
                    case.name
                );
                assert!(
                    e.ok(&["images", "-q"]).is_empty(),
                    "[{who}] {}: an image became visible",
                    case.name
                );
            }
            Expect::ContainedAt(_) | Expect::Accepted => {
                assert!(
                    out.status.success(),
                    "[{who}] {}: {}",
                    case.name,
                    stderr(&out)
                );
            }
        }
        if let Expect::ContainedAt(inside) = case.expect {
            let layer = layer_dir(e);
            let path = layer.join(inside);
            // For `tmp`, the file written through the symlink must be there.
            let found = if inside == "tmp" {
                std::fs::read_dir(&path)
                    .unwrap()
                    .any(|d| d.unwrap().file_name().to_string_lossy().starts_with(&tag))
            } else {
                path.exists()
            };
            assert!(
                found,
                "[{who}] {}: the entry is not inside the layer at {inside}",
                case.name
            );
        }
        let _ = e.run(&["rmi", &format!("case{i}")]);
        e.ok(&["image", "prune", "-f"]);
    }
    // Nothing was written outside, and nothing outside was removed or changed.
    for dir in ["/tmp", "/"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(&tag) || name == format!("{tag}-victim"),
                "[{who}] {dir}/{name} was written outside the store"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "[{who}] the victim file changed"
    );
    std::fs::remove_file(&victim).unwrap();
}

root_and_rootless!(without_busybox: malicious_layers_are_refused_or_contained);

fn device_nodes_are_created_as_root_and_skipped_rootless(e: &Estiba) {
    let tarball = e.scratch("dev").join("dev.tar");
    build(
        &tarball,
        &[
            Entry::Dir("dev/"),
            Entry::CharDevice("dev/mem", 1, 1),
            Entry::File("ok", b"fine"),
        ],
    );
    let out = e.run(&["import", tarball.to_str().unwrap(), "dev"]);
    assert!(out.status.success(), "[{}] {}", e.label(), stderr(&out));
    let layer = layer_dir(e);
    assert!(layer.join("ok").exists());
    if e.user.is_some() {
        assert!(
            !layer.join("dev/mem").exists(),
            "a rootless import created a device node"
        );
        assert!(
            stderr(&out).contains("device"),
            "no warning about the skipped device: {}",
            stderr(&out)
        );
    } else {
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(layer.join("dev/mem"))
            .unwrap()
            .file_type()
            .is_char_device());
    }
}

root_and_rootless!(without_busybox: device_nodes_are_created_as_root_and_skipped_rootless);
