//! `estiba run`, `create` and `start`: turn flags into a container record,
//! then run it in the foreground or hand it to a monitor (`-d`).

use anyhow::{bail, Result};
use estiba_engine::health::HealthFlags;
use estiba_engine::options::{self as opts, collect_env, parse_bytes};
use estiba_engine::parse_signal;
use estiba_engine::tuning::{self, NamespaceMode, Tuning};
use estiba_engine::{CreateOptions, CreateRequest, NetworkMode, RestartPolicy};

use super::Context;
use crate::cli::RunArgs;

fn options(args: &RunArgs, create: bool) -> Result<CreateOptions> {
    let restart: RestartPolicy = args.restart.parse()?;
    if args.rm && restart != RestartPolicy::No {
        bail!("conflicting options: --restart and --rm");
    }
    if (args.tty || args.interactive) && !(args.detach || create) {
        bail!("-t and -i need -d (or create): estiba has no attach yet, so a foreground container's terminal would be no one's");
    }
    // `--network a,b`: the first network and more.
    let networks: Vec<String> = args
        .network
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::to_string)
        .collect();
    Ok(CreateOptions {
        command: args.command.clone(),
        entrypoint: args.entrypoint.clone(),
        env: collect_env(&args.env, &args.env_file)?,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        read_only: args.read_only,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security: opts::parse_security_opts(&args.security_opt)?,
        privileged: args.privileged,
        memory: args.memory.as_deref().map(parse_bytes).transpose()?,
        cpus: args.cpus,
        pids_limit: args.pids_limit,
        ulimits: args
            .ulimit
            .iter()
            .map(|u| opts::parse_ulimit(u))
            .collect::<Result<_, _>>()?,
        hostname: args.hostname.clone(),
        // As docker: publishing ports puts the container on the default
        // bridge network unless it names one.
        network: match networks.first() {
            Some(first) => NetworkMode::parse(first)?,
            None if args.publish.is_empty() && !args.publish_all => NetworkMode::None,
            None => NetworkMode::Named(estiba_net::network::DEFAULT_NETWORK.into()),
        },
        extra_networks: networks.iter().skip(1).cloned().collect(),
        extra_network_options: Default::default(),
        ip: opts::parse_ip(args.ip.as_deref())?,
        publish: opts::parse_publish(&args.publish)?,
        publish_all: args.publish_all,
        egress: opts::parse_egress(args.egress.as_deref(), &args.egress_allow)?,
        network_aliases: args.network_alias.clone(),
        add_hosts: args
            .add_host
            .iter()
            .map(|h| h.parse())
            .collect::<Result<_, _>>()?,
        init: args.init,
        tty: args.tty,
        interactive: args.interactive,
        // No attach from the CLI: a detached `-i` keeps stdin open.
        stdin_once: false,
        // Only library callers (the node agent) redirect addresses.
        redirects: Vec::new(),
        dns: opts::parse_dns(&args.dns)?,
        dns_search: args.dns_search.clone(),
        labels: args
            .label
            .iter()
            .map(|l| tuning::parse_label(l))
            .collect::<Result<_, _>>()?,
        tuning: tuning_options(args)?,
        mounts: opts::parse_mounts(&args.volume, &args.tmpfs, &args.mount)?,
        secrets: args
            .secret
            .iter()
            .map(|s| estiba_engine::secrets::parse_ref(s))
            .collect::<Result<_, _>>()?,
        pod: args.pod.clone(),
        stop_signal: args.stop_signal.as_deref().map(parse_signal).transpose()?,
        runtime: args.runtime.clone(),
        restart,
        auto_remove: args.rm,
        detached: args.detach || create,
        health: None,
    })
}

/// The tuning flags: CPU weight, soft limits, swap, shm, sysctls, devices,
/// and the host's pid or IPC namespace.
fn tuning_options(args: &RunArgs) -> Result<Tuning> {
    let swap = match args.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        other => other.map(parse_bytes).transpose()?,
    };
    Ok(Tuning {
        cpu_shares: args.cpu_shares,
        memory_reservation: args
            .memory_reservation
            .as_deref()
            .map(parse_bytes)
            .transpose()?,
        memory_swap: swap,
        memory_swappiness: args.memory_swappiness,
        shm_size: args.shm_size.as_deref().map(parse_bytes).transpose()?,
        sysctls: args
            .sysctl
            .iter()
            .map(|s| tuning::parse_sysctl(s))
            .collect::<Result<_, _>>()?,
        devices: args
            .device
            .iter()
            .map(|d| d.parse())
            .collect::<Result<_, _>>()?,
        pid: NamespaceMode::parse("--pid", args.pid.as_deref().unwrap_or_default())?,
        ipc: NamespaceMode::parse("--ipc", args.ipc.as_deref().unwrap_or_default())?,
    })
}

fn health(args: &RunArgs) -> HealthFlags {
    HealthFlags {
        cmd: args.health_cmd.clone(),
        interval: args.health_interval.clone(),
        timeout: args.health_timeout.clone(),
        retries: args.health_retries,
        start_period: args.health_start_period.clone(),
        disabled: args.no_healthcheck,
    }
}

/// What `run` (`create` false) or `create` asks the engine for.
fn request(args: &RunArgs, create: bool) -> Result<CreateRequest> {
    Ok(CreateRequest {
        image: args.image.clone(),
        name: args.name.clone(),
        options: options(args, create)?,
        health: health(args),
    })
}

pub fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let engine = super::admission::engine(ctx)?;
    let record = engine.create(request(args, false)?)?;
    if args.detach {
        engine.start_detached(&record.id)?;
        println!("{}", record.id);
        return Ok(0);
    }
    Ok(engine.run_foreground(&record, &mut |w| eprintln!("WARNING: {w}"))?)
}

pub fn create(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let engine = super::admission::engine(ctx)?;
    let record = engine.create(request(args, true)?)?;
    println!("{}", record.id);
    Ok(0)
}
