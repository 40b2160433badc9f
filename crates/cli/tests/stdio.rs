//! A container's stdout and stderr wherever the caller points them:
//! /dev/null, a file, a pipe, a closed descriptor, and a terminal (through
//! script(1)), on every backend, as root and rootless. Scripts, CI jobs and
//! service managers send output to /dev/null all the time; libcontainer
//! 0.7 made every such write fail with EBADF.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Estiba;

/// What the container writes: one line to each stream.
const SCRIPT: &str = "echo out; echo err >&2";

/// `estiba run --rm busybox sh -c SCRIPT` with the shell redirections
/// `redirect` applied to estiba itself, by a bash started after the
/// wrappers that switch users, so a closed descriptor is closed for estiba
/// alone and files are written as the user.
fn run_redirected(e: &Estiba, redirect: &str) -> std::process::Output {
    let cmd = e.cmd(&["run", "--rm", "busybox", "sh", "-c", SCRIPT]);
    let mut args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == common::bin())
        .expect("the harness runs the binary");
    let script = format!("set -o pipefail; \"$0\" \"$@\" {redirect}");
    args.splice(at..at, ["bash".to_string(), "-c".to_string(), script]);
    Command::new(cmd.get_program())
        .args(&args)
        .output()
        .expect("running estiba")
}

fn stdout_and_stderr_go_wherever_they_are_sent(e: &Estiba) {
    let dir = e.scratch("out");
    let (out_file, err_file) = (dir.join("stdout"), dir.join("stderr"));
    let (o, r) = (out_file.display(), err_file.display());
    let cases = [
        (format!(">/dev/null 2>{r}"), None, Some("err")),
        (format!(">{o} 2>/dev/null"), Some("out"), None),
        (format!(">{o} 2>{r}"), Some("out"), Some("err")),
        (format!("2>{r} | cat >{o}"), Some("out"), Some("err")),
        (format!("2>&1 >/dev/null | cat >{r}"), None, Some("err")),
        (format!(">&- 2>{r}"), None, Some("err")),
        (format!(">{o} 2>&-"), Some("out"), None),
        (">/dev/null 2>/dev/null".to_string(), None, None),
        (">&- 2>&-".to_string(), None, None),
    ];
    for (redirect, want_out, want_err) in cases {
        for f in [&out_file, &err_file] {
            std::fs::write(f, "").unwrap();
            common::chown_to(e, f);
        }
        let out = run_redirected(e, &redirect);
        assert!(
            out.status.success(),
            "[{}] {redirect}: exit {:?}\nstdout: {}\nstderr: {}",
            e.label(),
            out.status.code(),
            common::stdout(&out),
            common::stderr(&out)
        );
        for (file, want) in [(&out_file, want_out), (&err_file, want_err)] {
            if let Some(want) = want {
                let got = std::fs::read_to_string(file).unwrap();
                assert_eq!(got.trim_end(), want, "[{}] {redirect}: {file:?}", e.label());
            }
        }
    }
}

fn a_terminal_gets_both_streams(e: &Estiba) {
    if !common::require_tool("script") {
        return;
    }
    let cmd = e.cmd(&["run", "--rm", "busybox", "sh", "-c", SCRIPT]);
    let line = std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(
        out.status.success(),
        "[{}] under script(1): exit {:?}: {text}",
        e.label(),
        out.status.code()
    );
    assert!(
        text.contains("out") && text.contains("err"),
        "[{}] {text:?}",
        e.label()
    );
}

on_every_backend!(
    stdout_and_stderr_go_wherever_they_are_sent,
    a_terminal_gets_both_streams
);
