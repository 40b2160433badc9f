//! Container commands: ps, logs, start, stop, restart, kill, rm, wait, inspect.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use estiba_engine::logs::{self, LogLine};
use estiba_engine::{human_since, parse_signal, status_text, ContainerRecord, Engine, Status};
use serde_json::json;

use super::images::tabulate;
use super::Context;
use crate::cli::{
    ContainersArgs, ExecArgs, KillArgs, LogsArgs, PodCommand, PsArgs, RenameArgs, RmArgs,
    SecretCommand, StatsArgs, StopArgs, VolumeCommand,
};

/// Runs `f` for each named container, printing errors docker's way; the
/// exit code is 1 if any failed.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> u8 {
    let mut failed = false;
    for name in names {
        if let Err(e) = f(name) {
            eprintln!("Error response from daemon: {e:#}");
            failed = true;
        }
    }
    u8::from(failed)
}

fn command_text(r: &ContainerRecord) -> String {
    let mut parts: Vec<String> = r.options.entrypoint.iter().cloned().collect();
    parts.extend(r.options.command.iter().cloned());
    format!("\"{}\"", parts.join(" "))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub fn ps(ctx: &Context, args: &PsArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    let list: Vec<ContainerRecord> = engine
        .list()?
        .into_iter()
        .filter(|r| args.all || matches!(r.state.status, Status::Running | Status::Restarting))
        .collect();
    let id = |r: &ContainerRecord| {
        if args.no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        }
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in &list {
            writeln!(out, "{}", id(r))?;
        }
        return Ok(0);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut rows = vec![[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ]
            .map(String::from)];
            for r in &list {
                let command = if args.no_trunc {
                    command_text(r)
                } else {
                    truncate(&command_text(r), 20)
                };
                rows.push([
                    id(r),
                    r.image.clone(),
                    command,
                    human_since(Some(&r.created)),
                    status_text(r),
                    String::new(),
                    r.name.clone(),
                ]);
            }
            write!(out, "{}", tabulate(&rows))?;
        }
        Some("json") => {
            for r in &list {
                let row = json!({
                    "ID": id(r),
                    "Image": r.image,
                    "Command": command_text(r),
                    "CreatedAt": r.created,
                    "RunningFor": human_since(Some(&r.created)),
                    "State": format!("{:?}", r.state.status).to_lowercase(),
                    "Status": status_text(r),
                    "Names": r.name,
                    "Ports": "",
                });
                writeln!(out, "{row}")?;
            }
        }
        Some(other) => bail!("unsupported --format {other:?}: use table or json"),
    }
    Ok(0)
}

/// `--since` as an RFC 3339 time or a duration ago (`10m`).
fn since_cutoff(since: &str) -> Result<SystemTime> {
    if let Ok(d) = humantime::parse_duration(since) {
        return Ok(SystemTime::now() - d);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(since) {
        return Ok(t);
    }
    bail!("invalid --since {since:?}: expected an RFC 3339 time or a duration such as 10m")
}

fn line_time(l: &LogLine) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(
        l.time
            .trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or(&l.time),
    )
    .ok()
}

fn print_lines(lines: &[LogLine], timestamps: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for l in lines {
        let text = if timestamps {
            format!("{} {}", l.time, l.log)
        } else {
            l.log.clone()
        };
        if l.stream == "stderr" {
            err.write_all(text.as_bytes())?;
        } else {
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn logs(ctx: &Context, args: &LogsArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    let r = engine.find(&args.container)?;
    let path = engine.log_path(&r.id);
    let mut lines = logs::read_all(&path);
    if let Some(since) = &args.since {
        let cutoff = since_cutoff(since)?;
        lines.retain(|l| line_time(l).is_some_and(|t| t >= cutoff));
    }
    if args.tail != "all" {
        let n: usize = args
            .tail
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid --tail {:?}: a number or all", args.tail))?;
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    print_lines(&lines, args.timestamps)?;
    if args.follow {
        follow(&engine, &r.id, &path, args.timestamps)?;
    }
    Ok(0)
}

/// Prints what the container writes until it has stopped for good.
fn follow(engine: &Engine, id: &str, path: &std::path::Path, timestamps: bool) -> Result<()> {
    let mut offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        let (lines, next) = logs::read_from(path, offset);
        offset = next;
        print_lines(&lines, timestamps)?;
        let r = engine.find(id)?;
        let done = r.state.status == Status::Exited && r.state.monitor_pid == 0;
        if done && lines.is_empty() {
            let (rest, _) = logs::read_from(path, offset);
            return print_lines(&rest, timestamps);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn start(ctx: &Context, args: &ContainersArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        let r = engine.find(name)?;
        if r.state.status != Status::Running {
            engine.start_detached(&r.id)?;
        }
        println!("{name}");
        Ok(())
    }))
}

pub fn stop(ctx: &Context, args: &StopArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        engine.stop(name, Duration::from_secs(args.time))?;
        println!("{name}");
        Ok(())
    }))
}

pub fn restart(ctx: &Context, args: &StopArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        engine.restart(name, Duration::from_secs(args.time))?;
        println!("{name}");
        Ok(())
    }))
}

pub fn kill(ctx: &Context, args: &KillArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    let signal = parse_signal(&args.signal)?;
    Ok(each(&args.containers, |name| {
        engine.kill(name, signal)?;
        println!("{name}");
        Ok(())
    }))
}

/// `pause` (`freeze`) or `unpause`: each name printed once done, as docker does.
pub fn pause(ctx: &Context, args: &ContainersArgs, freeze: bool) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        if freeze {
            engine.pause(name)?;
        } else {
            engine.unpause(name)?;
        }
        println!("{name}");
        Ok(())
    }))
}

/// `rename`: silent on success, as docker's.
pub fn rename(ctx: &Context, args: &RenameArgs) -> Result<u8> {
    ctx.engine()?.rename(&args.container, &args.new_name)?;
    Ok(0)
}

pub fn rm(ctx: &Context, args: &RmArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        engine.remove(name, args.force)?;
        println!("{name}");
        Ok(())
    }))
}

pub fn wait(ctx: &Context, args: &ContainersArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    Ok(each(&args.containers, |name| {
        println!("{}", engine.wait(name)?);
        Ok(())
    }))
}

pub fn exec(ctx: &Context, args: &ExecArgs) -> Result<u8> {
    let opts = estiba_engine::ExecOptions {
        command: args.command.clone(),
        env: estiba_engine::options::collect_env(&args.env, &[])?,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        detach: args.detach,
        interactive: args.interactive,
        tty: args.tty,
    };
    Ok(ctx.engine()?.exec(&args.container, &opts)?)
}

pub fn volume(ctx: &Context, cmd: &VolumeCommand) -> Result<u8> {
    let engine = ctx.engine()?;
    let volumes = &engine.volumes;
    match cmd {
        VolumeCommand::Create {
            name,
            encrypt,
            encryption,
            size,
        } => {
            let encryption = encrypt
                .then(|| -> Result<_> {
                    Ok(estiba_engine::crypt::Encryption {
                        backend: encryption.as_deref().unwrap_or("gocryptfs").parse()?,
                        size: size
                            .as_deref()
                            .map(estiba_engine::options::parse_bytes)
                            .transpose()?
                            .and_then(|b| u64::try_from(b).ok()),
                    })
                })
                .transpose()?;
            volumes.create_with(name, encryption)?;
            println!("{name}");
        }
        VolumeCommand::Ls { quiet } => {
            let list = volumes.list();
            if *quiet {
                list.iter().for_each(|v| println!("{}", v.name));
            } else {
                let mut rows = vec![["DRIVER".to_string(), "VOLUME NAME".to_string()]];
                rows.extend(list.iter().map(|v| [v.driver.clone(), v.name.clone()]));
                print!("{}", tabulate(&rows));
            }
        }
        VolumeCommand::Inspect { names } => {
            let list = names
                .iter()
                .map(|n| volumes.get(n))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        VolumeCommand::Rm { force, names } => {
            let users = engine.list()?;
            return Ok(each(names, |name| {
                volumes.remove(name, &users, *force)?;
                println!("{name}");
                Ok(())
            }));
        }
        VolumeCommand::Prune { .. } => {
            let users = engine.list()?;
            println!("Deleted Volumes:");
            for v in volumes.list() {
                if volumes.remove(&v.name, &users, false).is_ok() {
                    println!("{}", v.name);
                }
            }
        }
    }
    Ok(0)
}

pub fn secret(ctx: &Context, cmd: &SecretCommand) -> Result<u8> {
    use std::io::Read;
    let engine = ctx.engine()?;
    match cmd {
        SecretCommand::Create { name, file } => {
            let limit = estiba_engine::secrets::MAX_SECRET as u64 + 1;
            let mut data = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin().take(limit).read_to_end(&mut data)?;
            } else {
                std::fs::File::open(file)?
                    .take(limit)
                    .read_to_end(&mut data)?;
            }
            let meta = engine.secrets.create(name, &data)?;
            println!("{}", meta.id);
        }
        SecretCommand::Ls { quiet } => {
            let list = engine.secrets.list();
            if *quiet {
                list.iter().for_each(|s| println!("{}", s.name));
            } else {
                let mut rows = vec![["ID", "NAME", "CREATED"].map(String::from)];
                rows.extend(list.iter().map(|s| {
                    [
                        s.id.clone(),
                        s.name.clone(),
                        human_since(Some(&s.created_at)),
                    ]
                }));
                print!("{}", tabulate(&rows));
            }
        }
        SecretCommand::Rm { names } => {
            let users = engine.list()?;
            return Ok(each(names, |name| {
                engine.secrets.remove(name, &users)?;
                println!("{name}");
                Ok(())
            }));
        }
    }
    Ok(0)
}

pub fn pod(ctx: &Context, cmd: &PodCommand) -> Result<u8> {
    let engine = ctx.engine()?;
    match cmd {
        PodCommand::Create {
            name,
            hostname,
            share,
            network,
            ip,
            publish,
            network_alias,
            dns,
        } => {
            let share_pid = match share.as_deref() {
                None => false,
                Some(s)
                    if s.split(',')
                        .all(|k| matches!(k, "pid" | "net" | "ipc" | "uts")) =>
                {
                    s.split(',').any(|k| k == "pid")
                }
                Some(other) => {
                    bail!("invalid --share {other:?}: net, ipc and uts are always shared; add pid")
                }
            };
            // -p without a network means the default one, as for `run`.
            let network = network
                .clone()
                .or_else(|| (!publish.is_empty()).then(|| "estiba".to_string()));
            let net = estiba_engine::record::CreateOptions {
                network: estiba_engine::NetworkMode::parse(network.as_deref().unwrap_or("none"))?,
                ip: estiba_engine::options::parse_ip(ip.as_deref())?,
                publish: estiba_engine::options::parse_publish(publish)?,
                network_aliases: network_alias.clone(),
                dns: estiba_engine::options::parse_dns(dns)?,
                ..Default::default()
            };
            let pod = engine.pod_create(name.as_deref(), hostname.as_deref(), share_pid, net)?;
            println!("{}", pod.id);
        }
        PodCommand::Ls => {
            let mut rows =
                vec![["POD ID", "NAME", "STATUS", "CREATED", "# OF CONTAINERS"].map(String::from)];
            for p in engine.pods() {
                let status = if p.running() { "Running" } else { "Exited" };
                let members = engine.pod_members(&p)?.len();
                rows.push([
                    p.id[..12].to_string(),
                    p.name.clone(),
                    status.into(),
                    human_since(Some(&p.created)),
                    members.to_string(),
                ]);
            }
            print!("{}", tabulate(&rows));
        }
        PodCommand::Inspect { pods } => {
            let mut out = Vec::new();
            for name in pods {
                let p = engine.find_pod(name)?;
                let members: Vec<_> = engine
                    .pod_members(&p)?
                    .into_iter()
                    .map(|c| json!({"Id": c.id, "Name": c.name}))
                    .collect();
                out.push(json!({
                    "Id": p.id, "Name": p.name, "Created": p.created, "Hostname": p.hostname,
                    "State": if p.running() { "Running" } else { "Exited" },
                    "InfraPid": p.infra_pid,
                    "SharedNamespaces": p.namespaces().iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(),
                    "Containers": members,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PodCommand::Start { pods } => {
            return Ok(each(pods, |name| {
                engine.pod_start(name)?;
                println!("{name}");
                Ok(())
            }))
        }
        PodCommand::Stop { time, pods } => {
            return Ok(each(pods, |name| {
                engine.pod_stop(name, Duration::from_secs(*time))?;
                println!("{name}");
                Ok(())
            }))
        }
        PodCommand::Rm { force, pods } => {
            return Ok(each(pods, |name| {
                engine.pod_remove(name, *force)?;
                println!("{name}");
                Ok(())
            }))
        }
    }
    Ok(0)
}

pub fn stats(ctx: &Context, args: &StatsArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    let list: Vec<ContainerRecord> = if args.containers.is_empty() {
        engine
            .list()?
            .into_iter()
            .filter(|r| args.all || r.state.status == Status::Running)
            .collect()
    } else {
        args.containers
            .iter()
            .map(|c| engine.find(c))
            .collect::<Result<_, _>>()?
    };
    let mib = |b: u64| format!("{:.2}MiB", b as f64 / (1024.0 * 1024.0));
    let mut rows = vec![[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ]
    .map(String::from)];
    // One sampling window for all containers, in parallel threads.
    let samples: Vec<_> = list
        .iter()
        .map(|r| {
            let pid = r.state.pid;
            let running = r.state.status == Status::Running;
            std::thread::spawn(move || {
                running.then(|| estiba_engine::stats::usage(pid, Duration::from_millis(500)))
            })
        })
        .collect();
    for (r, sample) in list.iter().zip(samples) {
        let u = sample.join().ok().flatten().unwrap_or_default();
        let na = || "--".to_string();
        let limit = u.memory_limit.map_or_else(na, mib);
        rows.push([
            r.id[..12].to_string(),
            r.name.clone(),
            u.cpu_percent.map_or_else(na, |c| format!("{c:.2}%")),
            format!("{} / {limit}", u.memory.map_or_else(na, mib)),
            match (u.memory, u.memory_limit) {
                (Some(m), Some(l)) if l > 0 => format!("{:.2}%", m as f64 / l as f64 * 100.0),
                _ => na(),
            },
            u.pids.map_or_else(na, |p| p.to_string()),
        ]);
    }
    print!("{}", tabulate(&rows));
    Ok(0)
}

pub fn top(ctx: &Context, container: &str) -> Result<u8> {
    let r = ctx.engine()?.find(container)?;
    if r.state.status != Status::Running {
        bail!("container {container} is not running");
    }
    let pids = estiba_engine::stats::processes(&r);
    let list = pids
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = std::process::Command::new("ps")
        .args(["-o", "user,pid,ppid,c,stime,tty,time,args", "-p", &list])
        .output()?;
    std::io::stdout().write_all(&out.stdout)?;
    Ok(0)
}

/// Containers as docker's inspect shows them, or `None` if `name` is not one.
pub fn inspect_container(ctx: &Context, name: &str) -> Result<Option<serde_json::Value>> {
    let engine = ctx.engine()?;
    match engine.find(name) {
        Ok(r) => Ok(Some(engine.inspect_json(&r))),
        Err(estiba_engine::Error::NoSuchContainer(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
