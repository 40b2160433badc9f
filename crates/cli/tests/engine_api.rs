//! The agent-facing engine API, driven from a tokio program as the node
//! agent and the Docker API server will drive it: create, start, follow the
//! event journal until `die`, inspect the exit code, remove, and the typed
//! errors a caller branches on. As root, and as a freshly created
//! unprivileged user.
//!
//! This test is a program of its own (`harness = false`): rootless, it must
//! enter the user's namespace while still single-threaded, before tokio
//! starts, as every program built on the engine must.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use estiba_engine::{AsyncEngine, CreateRequest, Engine, Error};
use estiba_events::{Filter, Start};
use estiba_runtime::userns::Entered;

/// Set (to the installation's directory) in the copy of this program that
/// runs the scenario as the test user.
const INNER: &str = "ESTIBA_API_TEST_DIR";

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os(INNER) {
        return inner(Path::new(&dir));
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    let mut passed = 0;
    for (name, test) in [
        ("engine_api::as_root", as_root as fn() -> Result<(), String>),
        ("engine_api::rootless", rootless),
    ] {
        if !filters.iter().all(|f| name.contains(f.as_str())) {
            continue;
        }
        match test() {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn as_root() -> Result<(), String> {
    if !common::require_root("the engine as root") {
        return Ok(());
    }
    let e = common::Estiba::root().with_busybox();
    runtime().block_on(scenario(&e.path().join("data"), &e.path().join("run")))
}

/// This program again, as the test user, with the installation's paths.
fn rootless() -> Result<(), String> {
    if !common::require_root("a fresh test user") {
        return Ok(());
    }
    let e = common::Estiba::rootless().with_busybox();
    let me = std::env::current_exe().unwrap();
    let out = Command::new("runuser")
        .args(["-u", e.user.unwrap(), "--", "env", "-i"])
        .arg(format!("{INNER}={}", e.path().display()))
        .arg(format!("HOME={}", e.path().display()))
        .arg(format!("XDG_RUNTIME_DIR={}", e.path().display()))
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(me)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the rootless run failed ({:?}):\n{}\n{}",
            out.status.code(),
            common::stdout(&out),
            common::stderr(&out)
        ))
    }
}

/// The test user's side: into the user's namespace, then the scenario.
fn inner(dir: &Path) -> ExitCode {
    let run = dir.join("run");
    match estiba_runtime::userns::enter_with(&run, Path::new(common::bin())) {
        Ok(Entered::ExitWith(code)) => return ExitCode::from(code),
        Ok(Entered::Inside) => {}
        Err(e) => {
            eprintln!("entering the user namespace: {e}");
            return ExitCode::FAILURE;
        }
    }
    match runtime().block_on(scenario(&dir.join("data"), &run)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn scenario(data: &Path, run: &Path) -> Result<(), String> {
    fn fail(what: &'static str) -> impl Fn(Error) -> String {
        move |e| format!("{what}: {e}")
    }
    let engine = Engine::new(
        estiba_runtime::Host::detect(),
        data.to_path_buf(),
        run.to_path_buf(),
    )
    .map_err(fail("opening the engine"))?
    .with_binary(PathBuf::from(common::bin()));
    let api = AsyncEngine::new(engine);
    let mut filter = Filter::default();
    filter
        .add("container=api-life")
        .map_err(|e| e.to_string())?;
    let mut events = api.events(filter, Start::End).map_err(fail("following"))?;

    let mut request = CreateRequest::new("busybox");
    request.name = Some("api-life".into());
    request.options.command = ["sh", "-c", "sleep 0.2; exit 7"].map(String::from).to_vec();
    let created = api.create(request).await.map_err(fail("create"))?;
    let started = api.start(&created.id).await.map_err(fail("start"))?;
    if started.state.pid <= 0 {
        return Err(format!("started without a pid: {:?}", started.state));
    }

    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .map_err(|_| format!("no die event within 30 s; saw {seen:?}"))?
            .ok_or("the event stream ended")?;
        seen.push(e.action.name());
        if e.action == estiba_events::Action::Die {
            if e.attribute("exitCode") != Some("7") {
                return Err(format!("die without exitCode 7: {e:?}"));
            }
            break;
        }
    }
    if seen != ["create", "start", "die"] {
        return Err(format!("events {seen:?}"));
    }

    let after = api.inspect("api-life").await.map_err(fail("inspect"))?;
    let waited = api.wait("api-life").await.map_err(fail("wait"))?;
    if after.state.exit_code != 7 || waited != 7 {
        return Err(format!(
            "exit code {} / {waited}, not 7",
            after.state.exit_code
        ));
    }
    // A long-lived caller is left no zombie once the monitor is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !zombie_children().is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(format!("zombie children: {:?}", zombie_children()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The errors a caller tells apart without reading strings.
    match api
        .kill(&created.id, nix::sys::signal::Signal::SIGTERM)
        .await
    {
        Err(Error::NotRunning { .. }) => {}
        other => return Err(format!("kill of an exited container: {other:?}")),
    }
    match api.inspect("no-such-container").await {
        Err(Error::NoSuchContainer(_)) => {}
        other => return Err(format!("inspect of a missing container: {other:?}")),
    }
    let restarted = api.start(&created.id).await.map_err(fail("start again"))?;
    match api.start(&restarted.id).await {
        Err(Error::AlreadyRunning { .. }) => {}
        other => return Err(format!("start of a running container: {other:?}")),
    }
    match api.remove(&created.id, false).await {
        Err(Error::Running { .. }) => {}
        other => return Err(format!("remove of a running container: {other:?}")),
    }
    api.remove(&created.id, true)
        .await
        .map_err(fail("remove"))?;
    match api.inspect(&created.id).await {
        Err(Error::NoSuchContainer(_)) => Ok(()),
        other => Err(format!("inspect after remove: {other:?}")),
    }
}

/// This process's children that exited and were never waited for.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces, so split after it.
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (fields.next()?, fields.next()?);
            (state == "Z" && ppid == me).then(|| e.file_name().to_str()?.parse().ok())?
        })
        .collect()
}
