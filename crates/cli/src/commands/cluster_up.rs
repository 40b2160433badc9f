//! `estiba cluster up` and `down`: a control plane on SQLite and an agent
//! on this machine, as background processes of this user, with the
//! `default` cluster and an admin key — the quickest way to a cluster.
//!
//! What it leaves in the control plane's directory: `serve.pid` and
//! `agent.pid` (pid and start time, so a reused pid is never signalled),
//! `serve.log`, `agent.log`, and `admin-key.json` (mode 0600), printed
//! again by a second `cluster up`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use estiba_cluster::api::Settings;
use estiba_cluster::model::{ClusterRecord, ClusterStatus};
use estiba_cluster::open::{self, StoreSpec};
use estiba_cluster::users::CreateAccessKey;
use estiba_os::ProcessId;

use super::cluster::runtime;
use super::Context;
use crate::cli::ClusterUpArgs;
use crate::paths::Paths;

/// The address the agent's API takes on this machine (ECS's agent port).
const AGENT_LISTEN: &str = "127.0.0.1:51678";

fn data_dir(ctx: &Context, given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| open::default_data(&ctx.paths.data), Path::to_path_buf)
}

fn running(pidfile: &Path) -> Option<ProcessId> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    ProcessId::parse(&text).filter(ProcessId::alive)
}

/// Starts `args` of this binary in the background, in a session of its
/// own, logging to `log`; records it in `pidfile`.
fn spawn(paths: &Paths, args: &[String], log: &Path, pidfile: &Path) -> Result<ProcessId> {
    let exe = std::env::current_exe().context("finding the estiba binary")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(exe)
        .arg("--root")
        .arg(&paths.data)
        .arg("--runroot")
        .arg(&paths.run)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting estiba {}", args.join(" ")))?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let id =
        ProcessId::of(pid).with_context(|| format!("estiba {} exited at once", args.join(" ")))?;
    estiba_os::write_atomic(pidfile, id.to_line().as_bytes())?;
    Ok(id)
}

fn wait_for(
    what: &str,
    log: &Path,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "{what} did not come up; {} says:\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The admin key (created on first use), the `default` cluster and a join
/// token, written straight to the store before the server opens it.
fn prepare(data: &Path) -> Result<(CreateAccessKey, String)> {
    let key_file = data.join("admin-key.json");
    runtime()?.block_on(async {
        let server = open::server(data, &StoreSpec::Sqlite, Settings::default()).await?;
        let key: CreateAccessKey = match std::fs::read(&key_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(_) => {
                let policy = estiba_cluster::users::policy("admin")?;
                let created =
                    estiba_cluster::users::add(&server.db, &server.sealer, "admin", vec![policy])
                        .await?;
                estiba_os::write_private(&key_file, &serde_json::to_vec_pretty(&created)?)?;
                created
            }
        };
        let cluster = ClusterRecord {
            name: "default".into(),
            status: ClusterStatus::Active,
            created_at: estiba_cluster::time::now(),
        };
        server
            .db
            .swap(&estiba_cluster::keys::cluster("default"), 0, &cluster)
            .await?;
        let token =
            estiba_cluster::api::agent::create_token(&server, Duration::from_secs(600)).await?;
        Ok::<_, anyhow::Error>((key, token))
    })
}

pub fn up(ctx: &Context, a: &ClusterUpArgs) -> Result<u8> {
    let data = data_dir(ctx, a.data.as_deref());
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let endpoint = format!("http://{}", a.addr);
    let (serve_pid, agent_pid) = (data.join("serve.pid"), data.join("agent.pid"));
    let (serve_log, agent_log) = (data.join("serve.log"), data.join("agent.log"));
    if running(&serve_pid).is_some() {
        eprintln!("the control plane is already up ({})", serve_pid.display());
    } else {
        let (_, token) = prepare(&data)?;
        let d = data.display().to_string();
        // FARGATE tasks run on this machine too, beside the node's.
        let serve = [
            "cluster",
            "serve",
            "--addr",
            &a.addr,
            "--data",
            &d,
            "--fargate",
        ]
        .map(str::to_string);
        // The FARGATE capacity's estiba root, apart from the node's.
        spawn(&fargate_paths(ctx, &data), &serve, &serve_log, &serve_pid)?;
        let health = format!("{endpoint}/health");
        wait_for(
            "the control plane",
            &serve_log,
            Duration::from_secs(20),
            || reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success()),
        )?;
        if running(&agent_pid).is_none() {
            // At info level, for its "joined" line.
            let agent = [
                "--log-level",
                "info",
                "agent",
                "--server",
                &endpoint,
                "--token",
                &token,
                "--listen",
                AGENT_LISTEN,
            ]
            .map(str::to_string);
            let logged = std::fs::metadata(&agent_log).map_or(0, |m| m.len() as usize);
            spawn(&ctx.paths, &agent, &agent_log, &agent_pid)?;
            // Joined, or back with its saved credential: said in what this
            // start added to the log (the log keeps earlier starts').
            wait_for("the agent", &agent_log, Duration::from_secs(30), || {
                std::fs::read(&agent_log).is_ok_and(|l| {
                    l.get(logged..)
                        .is_some_and(|new| String::from_utf8_lossy(new).contains(" joined"))
                })
            })?;
        }
    }
    let key_file = data.join("admin-key.json");
    let key: CreateAccessKey = serde_json::from_slice(
        &std::fs::read(&key_file).with_context(|| format!("reading {}", key_file.display()))?,
    )?;
    let k = &key.access_key;
    println!("estiba cluster is up: the control plane on SQLite, and this machine as a node and as FARGATE capacity.");
    println!();
    println!("  endpoint   {endpoint}");
    println!("  cluster    default");
    println!("  user       {} (admin)", k.user_name);
    println!();
    println!("export AWS_ACCESS_KEY_ID={}", k.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY={}", k.secret_access_key);
    println!("export AWS_DEFAULT_REGION=us-east-1");
    println!("export AWS_ENDPOINT_URL_ECS={endpoint}");
    println!();
    println!("  aws --endpoint-url {endpoint} ecs list-clusters");
    if a.write_aws_profile {
        let written = super::aws_profile::write("estiba", &endpoint, k)?;
        println!("  aws --profile estiba ecs list-clusters");
        for w in written {
            eprintln!("wrote {}", w.display());
        }
    }
    Ok(0)
}

/// Stops a recorded process: SIGTERM, then SIGKILL after 10 s.
fn stop(pidfile: &Path, what: &str) {
    let Some(id) = running(pidfile) else {
        let _ = std::fs::remove_file(pidfile);
        return;
    };
    let pid = nix::unistd::Pid::from_raw(id.pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while id.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if id.alive() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pidfile);
    eprintln!("stopped the {what}");
}

pub fn down(ctx: &Context, data: Option<&Path>) -> Result<u8> {
    let data = data_dir(ctx, data);
    stop(&data.join("agent.pid"), "agent");
    // The agent leaves its tasks running when it stops, as ECS's does;
    // `down` means all of it.
    remove_tasks(ctx)?;
    stop(&data.join("serve.pid"), "control plane");
    // The FARGATE capacity's tasks, in its own root (and, rootless, its
    // own user namespace): by this binary started on that root.
    let fargate = fargate_paths(ctx, &data);
    if fargate.data.exists() {
        let exe = std::env::current_exe().context("finding the estiba binary")?;
        let status = Command::new(exe)
            .arg("--root")
            .arg(&fargate.data)
            .arg("--runroot")
            .arg(&fargate.run)
            .args(["cluster", "down", "--tasks-only"])
            .status()
            .context("clearing the FARGATE capacity's tasks")?;
        if !status.success() {
            eprintln!("the FARGATE capacity's tasks may not all be removed ({status})");
        }
    }
    Ok(0)
}

/// Where `cluster up` keeps the FARGATE capacity's estiba root.
fn fargate_paths(ctx: &Context, data: &Path) -> Paths {
    Paths {
        data: data.join("fargate"),
        run: ctx.paths.run.join("fargate"),
    }
}

/// Stops and removes the task containers and pods of this estiba root
/// (the agent's metadata pod too).
pub fn remove_tasks(ctx: &Context) -> Result<()> {
    let engine = ctx.engine()?;
    let mut tasks = 0;
    for r in engine.list()? {
        if estiba_agent::containers::parse_name(&r.name).is_some() {
            let _ = engine.stop(&r.id, Duration::from_secs(10));
            engine.remove(&r.id, true)?;
            tasks += 1;
        }
    }
    for pod in engine.pods() {
        if pod.name.starts_with("ecs-") {
            engine.pod_remove(&pod.id, true)?;
        }
    }
    if tasks > 0 {
        eprintln!("stopped and removed {tasks} task containers");
    }
    Ok(())
}
