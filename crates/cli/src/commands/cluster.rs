//! `estiba cluster …`: the control plane and its users.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use estiba_cluster::api::{Listen, Settings};
use estiba_cluster::open::{self, StoreSpec};

use super::Context;
use crate::cli::{
    AgentArgs, ClusterCommand, ClusterPolicyCommand, ClusterSecretCommand, ClusterStateArgs,
    ClusterTokenCommand, ClusterUserCommand,
};

fn duration(flag: &str, value: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(value)
        .with_context(|| format!("{flag} {value}: not a duration (10s, 5m, 1h)"))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn data_dir(ctx: &Context, state: &ClusterStateArgs) -> PathBuf {
    state
        .data
        .clone()
        .unwrap_or_else(|| open::default_data(&ctx.paths.data))
}

pub fn cluster(ctx: &Context, cmd: ClusterCommand) -> Result<u8> {
    match cmd {
        ClusterCommand::Serve(a) => {
            let data = data_dir(ctx, &a.state);
            let spec: StoreSpec = a.state.store.parse()?;
            let addr = a
                .addr
                .parse()
                .with_context(|| format!("--addr {}: not an address:port", a.addr))?;
            let settings = Settings {
                region: a.region,
                account: a.account,
                heartbeat: duration("--heartbeat", &a.heartbeat)?,
                lost_grace: duration("--lost-grace", &a.lost_grace)?,
                healthy_after: duration("--task-healthy-after", &a.task_healthy_after)?,
                leader_ttl: duration("--leader-ttl", &a.leader_ttl)?,
                autoscale_every: duration("--autoscale-every", &a.autoscale_every)?,
                placement_seed: a.placement_seed.unwrap_or_else(|| {
                    u64::from_str_radix(&estiba_os::random_hex(8), 16).unwrap_or(0)
                }),
            };
            let advertise = a
                .advertise
                .as_deref()
                .map(|s| {
                    s.parse()
                        .with_context(|| format!("--advertise {s}: not an address:port"))
                })
                .transpose()?;
            let tls = a.tls_cert.zip(a.tls_key);
            if a.fargate && tls.is_some() {
                // The built-in agent has no way yet to trust the certificate.
                anyhow::bail!("--fargate with --tls-cert is not served yet: run the control plane on HTTP, or without --fargate");
            }
            // One control plane per SQLite store, and none on one whose
            // state moved to etcd (serving both would split the cluster).
            let _serving = match spec {
                StoreSpec::Sqlite => Some(sqlite_lock(&data)?),
                StoreSpec::Etcd(_) => None,
            };
            runtime()?.block_on(async {
                let server = open::server(&data, &spec, settings).await?;
                if a.fargate {
                    fargate_capacity(ctx, &server, addr).await?;
                }
                estiba_cluster::api::serve(
                    Arc::clone(&server),
                    Listen {
                        addr,
                        tls,
                        advertise,
                    },
                )
                .await?;
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        ClusterCommand::User(ClusterUserCommand::Add {
            name,
            policy,
            state,
        }) => {
            let data = data_dir(ctx, &state);
            let spec: StoreSpec = state.store.parse()?;
            let policy = estiba_cluster::users::policy(&policy)?;
            let created = runtime()?.block_on(async {
                let server = open::server(&data, &spec, Settings::default()).await?;
                estiba_cluster::users::add(&server.db, &server.sealer, &name, vec![policy]).await
            })?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(0)
        }
        ClusterCommand::Secret(cmd) => secret(ctx, cmd),
        ClusterCommand::Policy(cmd) => policy(ctx, cmd),
        ClusterCommand::Up(a) => super::cluster_up::up(ctx, &a),
        ClusterCommand::Migrate { from, to } => migrate(ctx, &from, &to),
        ClusterCommand::Down { data, tasks_only } => {
            if tasks_only {
                super::cluster_up::remove_tasks(ctx)?;
                return Ok(0);
            }
            super::cluster_up::down(ctx, data.as_deref())
        }
        ClusterCommand::Token(ClusterTokenCommand::Create { ttl, state }) => {
            let data = data_dir(ctx, &state);
            let spec: StoreSpec = state.store.parse()?;
            let ttl = duration("--ttl", &ttl)?;
            let token = runtime()?.block_on(async {
                let server = open::server(&data, &spec, Settings::default()).await?;
                estiba_cluster::api::agent::create_token(&server, ttl).await
            })?;
            println!("{token}");
            Ok(0)
        }
    }
}

/// `cluster policy set|show|rm`, on the store directly, as `user add`.
fn policy(ctx: &Context, cmd: ClusterPolicyCommand) -> Result<u8> {
    let state = match &cmd {
        ClusterPolicyCommand::Set { state, .. }
        | ClusterPolicyCommand::Show { state }
        | ClusterPolicyCommand::Rm { state } => state,
    };
    let data = data_dir(ctx, state);
    let spec: StoreSpec = state.store.parse()?;
    runtime()?.block_on(async {
        let server = open::server(&data, &spec, Settings::default()).await?;
        match &cmd {
            ClusterPolicyCommand::Set { file, .. } => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                estiba_cluster::policy::set(&server.db, &text).await?;
            }
            ClusterPolicyCommand::Show { .. } => {
                match estiba_cluster::policy::get(&server.db).await? {
                    Some(p) => print!("{}", p.text),
                    None => anyhow::bail!("no cluster policy is set"),
                }
            }
            ClusterPolicyCommand::Rm { .. } => {
                if !estiba_cluster::policy::remove(&server.db).await? {
                    anyhow::bail!("no cluster policy is set");
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// `cluster secret create|ls|rm`, on the store directly, as `user add`.
fn secret(ctx: &Context, cmd: ClusterSecretCommand) -> Result<u8> {
    let state = match &cmd {
        ClusterSecretCommand::Create { state, .. }
        | ClusterSecretCommand::Ls { state }
        | ClusterSecretCommand::Rm { state, .. } => state,
    };
    let data = data_dir(ctx, state);
    let spec: StoreSpec = state.store.parse()?;
    runtime()?.block_on(async {
        let server = open::server(&data, &spec, Settings::default()).await?;
        match &cmd {
            ClusterSecretCommand::Create {
                name, from_file, ..
            } => {
                let value = match from_file {
                    Some(f) => {
                        std::fs::read(f).with_context(|| format!("reading {}", f.display()))?
                    }
                    None => {
                        let mut v = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                            .context("reading the secret from standard input")?;
                        v
                    }
                };
                estiba_cluster::secrets::create(&server.db, &server.sealer, name, &value).await?;
                println!("{name}");
            }
            ClusterSecretCommand::Ls { .. } => {
                println!("{:<40} CREATED", "NAME");
                for (name, created) in estiba_cluster::secrets::list(&server.db).await? {
                    let when = std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(created.max(0.0) as u64);
                    println!("{name:<40} {}", humantime::format_rfc3339_seconds(when));
                }
            }
            ClusterSecretCommand::Rm { name, .. } => {
                if !estiba_cluster::secrets::remove(&server.db, name).await? {
                    anyhow::bail!("no secret {name}");
                }
                println!("{name}");
            }
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// FARGATE's built-in capacity: an agent inside the control plane's own
/// process, on the estiba root the process was given (`--root`,
/// `--runroot`), joined to the hidden FARGATE pool. It dies with the
/// control plane and its containers do not, as any agent's; on a restart
/// it re-adopts them.
async fn fargate_capacity(
    ctx: &Context,
    server: &estiba_cluster::api::Server,
    addr: std::net::SocketAddr,
) -> Result<()> {
    let token = estiba_cluster::api::agent::create_fargate_token(
        server,
        std::time::Duration::from_secs(600),
    )
    .await?;
    let local = match addr.ip() {
        ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip => ip,
    };
    let opts = estiba_agent::Options {
        servers: vec![format!(
            "http://{}",
            std::net::SocketAddr::new(local, addr.port())
        )],
        token: Some(token),
        cluster: estiba_cluster::keys::FARGATE_POOL.into(),
        attributes: Vec::new(),
        state: ctx.paths.data.join("agent"),
        pull: std::env::var("ECS_IMAGE_PULL_BEHAVIOR")
            .unwrap_or_else(|_| "default".into())
            .parse()?,
        rootless: ctx.host.rootless,
        warnings: Vec::new(),
        listen: std::net::SocketAddr::new(local, 0),
        offer: estiba_agent::node::Offer::default(),
        registries: estiba_agent::registries::Registries::default(),
        usage_every: std::time::Duration::from_secs(10),
        ca_cert: None,
    };
    let engine = estiba_engine::AsyncEngine::new(ctx.engine()?);
    let store = ctx.store()?;
    tokio::spawn(async move {
        // The server may not listen yet: the agent tries again until it does.
        loop {
            match estiba_agent::run(engine.clone(), store.clone(), opts.clone()).await {
                Ok(()) => return,
                Err(e) => tracing::warn!("the FARGATE capacity's agent: {e}; starting it again"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    Ok(())
}

/// `estiba agent`: runs inside the user's namespace when rootless, like
/// every command that drives containers.
pub fn agent(ctx: &Context, a: AgentArgs) -> Result<u8> {
    let attributes = a
        .attributes
        .iter()
        .map(|s| estiba_agent::node::parse_attribute(s))
        .collect::<estiba_agent::Result<Vec<_>>>()?;
    let mut warnings = Vec::new();
    if !ctx.host.can_limit_resources() {
        warnings.push(
            "this host delegates no cgroup controllers to the user: task memory and CPU limits are not enforced"
                .to_string(),
        );
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let opts = estiba_agent::Options {
        servers: a.server,
        ca_cert: a.ca_cert,
        token: a.token,
        cluster: a.cluster,
        attributes,
        state: ctx.paths.data.join("agent"),
        pull: a.image_pull_behavior.parse()?,
        rootless: ctx.host.rootless,
        warnings,
        listen: a.listen,
        offer: estiba_agent::node::Offer {
            memory: a.memory,
            cpu: a.cpu,
            reserved_memory: a.reserved_memory,
        },
        registries: match &a.registries_conf {
            Some(path) => estiba_agent::registries::Registries::load(path)?,
            None => estiba_agent::registries::Registries::default(),
        },
        usage_every: duration("--usage-every", &a.usage_every)?,
    };
    let engine = estiba_engine::AsyncEngine::new(ctx.engine()?);
    let store = ctx.store()?;
    runtime()?.block_on(estiba_agent::run(engine, store, opts))?;
    Ok(0)
}

/// Where `cluster migrate` leaves the store it moved the state to.
const MIGRATED: &str = "migrated-to";

/// The lock a control plane holds on its SQLite store while it serves.
fn sqlite_lock(data: &std::path::Path) -> Result<estiba_os::LockFile> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    if let Ok(to) = std::fs::read_to_string(data.join(MIGRATED)) {
        anyhow::bail!(
            "this control plane's state was migrated to {}: serve with --store {} (remove {} to serve SQLite again)",
            to.trim(),
            to.trim(),
            data.join(MIGRATED).display()
        );
    }
    estiba_os::LockFile::try_exclusive(&data.join("serve.lock"))?.with_context(|| {
        format!(
            "another control plane serves the SQLite store in {}",
            data.display()
        )
    })
}

fn migrate(ctx: &Context, from: &str, to: &str) -> Result<u8> {
    let data = match from {
        "sqlite" => open::default_data(&ctx.paths.data),
        f => match f.strip_prefix("sqlite:") {
            Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
            _ => anyhow::bail!("--from {f}: give sqlite:DIR, the control plane's directory"),
        },
    };
    let target: StoreSpec = to.parse()?;
    if !matches!(target, StoreSpec::Etcd(_)) {
        anyhow::bail!("--to {to}: give etcd://HOST:PORT[,HOST:PORT…]");
    }
    if !data.join("state.db").exists() {
        anyhow::bail!("{}: no SQLite store here", data.display());
    }
    // Held through the copy: no control plane starts on the source.
    let _held = sqlite_lock(&data)?;
    let report = runtime()?.block_on(async {
        let source = open::store(&data, &StoreSpec::Sqlite).await?;
        let dest = open::store(&data, &target).await?;
        estiba_cluster::migrate::migrate(&source, &dest).await
    })?;
    estiba_os::write_atomic(&data.join(MIGRATED), format!("{to}\n").as_bytes())?;
    for (key, why) in &report.skipped {
        eprintln!("not copied: {key}: {why}");
    }
    println!(
        "copied {} keys at revision {}; checksum {} matches in {to}",
        report.copied, report.revision, report.checksum
    );
    println!(
        "serve on etcd now: estiba cluster serve --data {} --store {to}",
        data.display()
    );
    Ok(0)
}

/// `estiba agent-sim`: simulated nodes for the scheduler benchmark.
pub fn agent_sim(a: crate::cli::AgentSimArgs) -> Result<u8> {
    let opts = estiba_agent::sim::SimOptions {
        servers: a.server,
        token: a.token,
        cluster: a.cluster,
        nodes: a.nodes,
        cpu: a.cpu,
        memory: a.memory,
        zones: a.zones,
        concurrency: a.concurrency,
        heartbeat: duration("--heartbeat", &a.heartbeat)?,
        ack: a.ack,
    };
    runtime()?.block_on(estiba_agent::sim::run(opts))?;
    Ok(0)
}
