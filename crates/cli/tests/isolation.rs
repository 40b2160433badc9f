//! Isolation checked from inside the container, as root and as a freshly
//! created unprivileged user. Needs root (to create the user) and the kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{stderr, stdout, Estiba};

/// podman's 11 default capabilities as a CapEff mask.
const DEFAULT_CAPS: &str = "00000000800405fb";

fn check_isolation(e: &Estiba) {
    let who = e.label();
    let out = e.ok(&[
        "run",
        "--rm",
        "--hostname",
        "boxy",
        "busybox",
        "sh",
        "-c",
        "echo $$; hostname; ps -o pid | wc -l",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "[{who}] the command is PID 1: {out}");
    assert_eq!(lines[1], "boxy", "[{who}] hostname: {out}");
    // Header + sh + ps + wc: host processes are invisible.
    let count: u32 = lines[2].trim().parse().unwrap();
    assert!(
        count <= 5,
        "[{who}] host processes are visible: {count} lines"
    );

    let status = e.ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("[{who}] no {name}"))
    };
    assert_eq!(field("CapEff"), DEFAULT_CAPS, "[{who}] capabilities");
    assert_eq!(field("CapBnd"), DEFAULT_CAPS, "[{who}] bounding set");
    assert_eq!(field("CapAmb"), "0000000000000000", "[{who}] ambient");
    assert_eq!(field("Seccomp"), "2", "[{who}] seccomp filter mode");
    assert_eq!(field("NoNewPrivs"), "1", "[{who}] no_new_privs");

    // A non-root user in the container holds no capabilities at all.
    let status = e.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert!(
        status.contains("CapEff:\t0000000000000000"),
        "[{who}] uid 1000 keeps capabilities: {status}"
    );
    assert!(status.contains("Uid:\t1000"), "[{who}] uid: {status}");

    // Masked /proc files read as empty (those the host kernel has).
    for masked in [
        "/proc/kcore",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/sched_debug",
    ] {
        if std::path::Path::new(masked).exists() {
            let out = e.ok(&[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &format!("wc -c < {masked}"),
            ]);
            assert_eq!(out.trim(), "0", "[{who}] {masked} is not masked");
        }
    }

    let out = e.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/sys/kernel/domainname",
    ]);
    assert!(!out.status.success(), "[{who}] /proc/sys is writable");
    let out = e.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sysrq-trigger",
    ]);
    assert!(
        !out.status.success(),
        "[{who}] /proc/sysrq-trigger is writable"
    );

    let out = e.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(
        !out.status.success(),
        "[{who}] --read-only root is writable"
    );
    assert!(
        stderr(&out).contains("Read-only file system"),
        "[{who}] {}",
        stderr(&out)
    );
    e.ok(&["run", "--rm", "busybox", "touch", "/x"]);

    // A mount inside the container is refused: no CAP_SYS_ADMIN, and seccomp.
    let out = e.run(&[
        "run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/mnt",
    ]);
    assert!(
        !out.status.success(),
        "[{who}] mount succeeded inside the container"
    );
}

fn check_exit_codes(e: &Estiba) {
    let who = e.label();
    let code = |args: &[&str]| e.run(args).status.code();
    assert_eq!(
        code(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]),
        Some(42),
        "[{who}] exit 42"
    );
    assert_eq!(
        code(&["run", "--rm", "busybox", "/etc/passwd"]),
        Some(126),
        "[{who}] not executable"
    );
    assert_eq!(
        code(&["run", "--rm", "busybox", "/bin"]),
        Some(126),
        "[{who}] a directory"
    );
    assert_eq!(
        code(&["run", "--rm", "busybox", "no-such-command"]),
        Some(127),
        "[{who}] not found"
    );
    assert_eq!(
        code(&["run", "--rm", "busybox", "/no/such/path"]),
        Some(127),
        "[{who}] not found by path"
    );
    // The kernel's SIGKILL at the hard CPU limit: 128 + 9.
    assert_eq!(
        code(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ulimit -t 1; while :; do :; done"
        ]),
        Some(137),
        "[{who}] killed"
    );
    assert_eq!(
        code(&["run", "--rm", "no-such-image"]),
        Some(125),
        "[{who}] estiba's own error"
    );
    assert_eq!(
        code(&["run", "--rm", "--security-opt", "bogus", "busybox", "true"]),
        Some(125),
        "[{who}] bad flag"
    );
}

fn check_flags(e: &Estiba) {
    let who = e.label();
    let env_file = e.scratch("envs").join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = e.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE; pwd",
    ]);
    assert_eq!(out, "1 yes\n/tmp\n", "[{who}] env and workdir");
    let out = e.ok(&["run", "--rm", "-u", "1000:1000", "busybox", "id"]);
    assert!(
        out.starts_with("uid=1000(user) gid=1000(user)"),
        "[{who}] user: {out}"
    );
    let out = e.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "-n", "hi"]);
    assert_eq!(
        out, "hi",
        "[{who}] entrypoint, and flags after IMAGE belong to the command"
    );
    let out = e.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(
        out.contains("0000000000000000"),
        "[{who}] cap-drop ALL: {out}"
    );
    let out = e.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(
        out.contains("00000000800415fb"),
        "[{who}] cap-add NET_ADMIN: {out}"
    );
    let out = e.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges=false",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert!(
        out.contains("Seccomp:\t0") && out.contains("NoNewPrivs:\t0"),
        "[{who}] security-opt: {out}"
    );
    let vol = e.scratch("vol");
    std::fs::write(vol.join("data"), "from host").unwrap();
    let spec = format!("{}:/data:ro", vol.display());
    let out = e.ok(&["run", "--rm", "-v", &spec, "busybox", "cat", "/data/data"]);
    assert_eq!(out, "from host", "[{who}] bind mount");
    let out = e.run(&["run", "--rm", "-v", &spec, "busybox", "touch", "/data/new"]);
    assert!(
        !out.status.success() && !vol.join("new").exists(),
        "[{who}] :ro bind mount is writable"
    );
    let out = e.ok(&["run", "--rm", "--network", "host", "busybox", "hostname"]);
    assert!(!out.trim().is_empty());
    let out = e.run(&["run", "--rm", "--network", "none", "busybox", "ip", "link"]);
    let links = stdout(&out);
    assert!(
        links.contains("lo") && !links.contains("eth0"),
        "[{who}] network none: {links}"
    );
}

/// Namespaces, capabilities, seccomp, exit codes and flags, as three
/// tests: the in-process backend and runc as root, and rootless.
fn isolation(e: &Estiba) {
    check_isolation(e);
    check_exit_codes(e);
    check_flags(e);
}

on_every_backend!(isolation);

#[test]
fn rootless_user_is_root_inside_and_itself_outside() {
    if !common::require_root("rootless mapping test") {
        return;
    }
    let e = Estiba::rootless().with_busybox();
    let out = e.ok(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .args(["-u", common::TEST_USER])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let first: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        first,
        ["0", uid.trim(), "1"],
        "root inside is the user outside: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().last() == Some("65536")),
        "65536 subordinate ids mapped: {out}"
    );
    // Files the image owns as uid 1000 stay uid 1000 inside.
    let out = e.ok(&["run", "--rm", "busybox", "stat", "-c", "%u", "/home/user"]);
    assert_eq!(out.trim(), "1000");
}

#[test]
fn signals_are_forwarded_to_the_container() {
    if !common::require_root("signal forwarding test") {
        return;
    }
    for e in [Estiba::root(), Estiba::root_with("runc")] {
        let e = e.with_busybox();
        let script = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done";
        let mut child = e
            .direct(&["run", "--rm", "busybox", "sh", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line, "ready\n", "[{}]", e.label());
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert_eq!(
            rest,
            "got TERM\n",
            "[{}] the container did not see SIGTERM",
            e.label()
        );
        assert_eq!(status.code(), Some(3), "[{}] exit code", e.label());
    }
}

fn copy_fallback_and_rlimits(e: &Estiba) {
    let who = e.label();
    // Without overlayfs the image is flattened into the container's directory.
    let out = e
        .cmd_env(
            &[("ESTIBA_STORAGE_DRIVER", "vfs")],
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "grep ' / ' /proc/mounts | cut -d' ' -f3; echo ok > /x; cat /x",
            ],
        )
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "[{who}] vfs: {}", stderr(&out));
    assert!(
        !text.contains("overlay") && text.ends_with("ok\n"),
        "[{who}] vfs root: {text}"
    );
    // rlimits never exceed the host's hard limits.
    let host_hard: u64 = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let inside: u64 = e
        .ok(&["run", "--rm", "busybox", "sh", "-c", "ulimit -Hn"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        inside <= host_hard,
        "[{who}] nofile {inside} exceeds the host's {host_hard}"
    );
}

root_and_rootless!(copy_fallback_and_rlimits);

#[test]
fn rootless_without_subids_maps_only_the_user() {
    if !common::require_root("single-id rootless test") {
        return;
    }
    let e = Estiba::rootless_as(common::test_user_without_subids());
    let out = e.run(&["import", common::busybox_tar().to_str().unwrap(), "busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("left owned by root"),
        "the unmapped owners are reported: {}",
        stderr(&out)
    );
    let out = e.ok(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    assert_eq!(out.lines().count(), 1, "one id mapped: {out}");
    let out = e.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo $$; grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out, "1\nSeccomp:\t2\n");
    // uid 1000 does not exist in this namespace: a clear failure, not a silent root.
    let out = e.run(&["run", "--rm", "-u", "1000", "busybox", "id"]);
    assert!(
        !out.status.success(),
        "ran as an unmapped uid: {}",
        stdout(&out)
    );
}
