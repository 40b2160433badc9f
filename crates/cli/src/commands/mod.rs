//! One module per group of commands.

mod admission;
mod audit;
mod audit_host;
mod audit_registry;
mod aws_profile;
mod cluster;
mod cluster_up;
mod containers;
pub mod ecs;
mod events;
mod images;
pub mod registry;
mod run;
mod system;

use anyhow::Result;
use estiba_runtime::Host;
use estiba_store::Store;

use crate::cli::{Cli, Command, ImageCommand};
use crate::paths::Paths;

/// What every command starts from.
pub struct Context {
    pub host: Host,
    pub paths: Paths,
    pub log_level: String,
    /// `--policy`: the admission policy file, if named.
    pub policy: Option<std::path::PathBuf>,
}

impl Context {
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(
            &self.paths.data.join("storage"),
            self.host.rootless,
        )?)
    }

    pub fn engine(&self) -> Result<estiba_engine::Engine> {
        let mut engine = estiba_engine::Engine::new(
            self.host.clone(),
            self.paths.data.clone(),
            self.paths.run.clone(),
        )?;
        engine.log_level = self.log_level.clone();
        Ok(engine)
    }
}

/// Runs a command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<u8> {
    let host = Host::detect();
    let paths = Paths::for_host(cli.root.clone(), cli.runroot.clone(), &host);
    let ctx = Context {
        host,
        paths,
        log_level: cli.log_level.clone(),
        policy: cli.policy.clone(),
    };
    match cli.command {
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&ctx, &a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => images::load(&ctx, &a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => images::import(&ctx, &a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => images::save(&ctx, &a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(&ctx, &a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&ctx, &a),
        Command::Inspect(a) => inspect(&ctx, &a),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&ctx, &a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&ctx, &a),
        Command::Run(a) => run::run(&ctx, &a),
        Command::Create(a) => run::create(&ctx, &a),
        Command::Ps(a) => containers::ps(&ctx, &a),
        Command::Logs(a) => containers::logs(&ctx, &a),
        Command::Start(a) => containers::start(&ctx, &a),
        Command::Stop(a) => containers::stop(&ctx, &a),
        Command::Restart(a) => containers::restart(&ctx, &a),
        Command::Kill(a) => containers::kill(&ctx, &a),
        Command::Pause(a) => containers::pause(&ctx, &a, true),
        Command::Unpause(a) => containers::pause(&ctx, &a, false),
        Command::Rename(a) => containers::rename(&ctx, &a),
        Command::Rm(a) => containers::rm(&ctx, &a),
        Command::Wait(a) => containers::wait(&ctx, &a),
        Command::Exec(a) => containers::exec(&ctx, &a),
        Command::Stats(a) => containers::stats(&ctx, &a),
        Command::Top { container } => containers::top(&ctx, &container),
        Command::Events(a) => events::events(&ctx, &a),
        Command::System(crate::cli::SystemCommand::Service(a)) => system::service(&ctx, &a),
        Command::Volume(v) => containers::volume(&ctx, &v),
        Command::Secret(c) => containers::secret(&ctx, &c),
        Command::Pod(c) => containers::pod(&ctx, &c),
        Command::Network(c) => network(&ctx, &c),
        Command::Port { container } => {
            for p in ctx.engine()?.ports_of(&container)? {
                println!(
                    "{}/{} -> {}:{}",
                    p.map.container_port,
                    p.map.proto.as_str(),
                    p.map.host_ip,
                    p.map.host_port
                );
            }
            Ok(0)
        }
        Command::Build(a) => build(&ctx, &a),
        Command::InternalInfra {
            hostname,
            share_pid,
            netns,
        } => {
            println!(
                "{}",
                estiba_engine::pods::infra_main(&hostname, share_pid, netns.as_deref())?
            );
            Ok(0)
        }
        Command::InternalDns { network, serve } => {
            if serve {
                ctx.engine()?.dns_serve(&network)?;
            } else {
                estiba_engine::net_helpers::helper_daemonize(
                    estiba_engine::net_helpers::DNS_COMMAND,
                    &network,
                )?;
            }
            Ok(0)
        }
        Command::InternalForward { id, serve } => {
            if serve {
                ctx.engine()?.forward_serve(&id)?;
            } else {
                estiba_engine::net_helpers::helper_daemonize(
                    estiba_engine::net_helpers::FORWARD_COMMAND,
                    &id,
                )?;
            }
            Ok(0)
        }
        Command::InternalMonitor {
            id,
            resume,
            ran_ms,
            backoff_ms,
        } => {
            let resume = resume.map(|code| estiba_engine::monitor::Resume {
                code,
                ran: std::time::Duration::from_millis(ran_ms),
                backoff: std::time::Duration::from_millis(backoff_ms),
            });
            ctx.engine()?.monitor(&id, resume)?;
            Ok(0)
        }
        Command::InternalHealth { id } => {
            estiba_engine::health::check_once(ctx.engine()?, &id)?;
            Ok(0)
        }
        Command::Info => info(&ctx),
        Command::Registry(c) => {
            let root = registry::registry_root(cli.root.as_deref(), &ctx);
            registry::registry(&ctx, &root, &c)
        }
        Command::Login(a) => registry::login(&a),
        Command::Logout { server } => registry::logout(&server),
        Command::Push(a) => registry::push(&ctx, &a),
        Command::Pull(a) => registry::pull(&ctx, &a),
        Command::Sign(a) => registry::sign(&a),
        Command::Verify(a) => registry::verify(&a),
        Command::Key(c) => registry::key(&c),
        Command::Cluster(c) => cluster::cluster(&ctx, c),
        Command::Agent(a) => cluster::agent(&ctx, a),
        Command::Taskdef(a) => ecs::taskdef(a),
        Command::Task(a) => ecs::task(a),
        Command::Node(a) => ecs::node(a),
        Command::Service(a) => ecs::service(a),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::AgentSim(a) => cluster::agent_sim(a),
        Command::InternalPause => estiba_runtime::userns::pause_forever(),
        Command::DebugUnpack { layer, dest } => debug_unpack(&ctx, &layer, &dest),
        Command::InternalLibcontainer { .. } => anyhow::bail!(
            "internal-libcontainer is estiba's own helper and needs the libcontainer feature"
        ),
    }
}

fn build(ctx: &Context, args: &crate::cli::BuildArgs) -> Result<u8> {
    let build_args = args
        .build_arg
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(kv)
                .map(|v| (kv.clone(), v))
                .map_err(|_| anyhow::anyhow!("--build-arg {kv}: no value")),
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = estiba_engine::build::BuildOptions {
        context: args.context.clone(),
        file: args.file.clone(),
        tags: args.tag.clone(),
        build_args,
        target: args.target.clone(),
        network: args.network.clone(),
    };
    let quiet = args.quiet;
    let progress = crate::progress::Progress::new(quiet);
    let loaded = ctx.engine()?.build(&opts, &mut |line| progress.line(line));
    progress.finish();
    let loaded = loaded?;
    if !quiet {
        for name in &loaded.names {
            eprintln!("Successfully tagged {name}");
        }
    }
    println!("{}", loaded.id);
    Ok(0)
}

/// `inspect` looks for containers first, then images, like docker.
fn inspect(ctx: &Context, args: &crate::cli::InspectArgs) -> Result<u8> {
    let mut out = Vec::new();
    let mut images = Vec::new();
    for name in &args.images {
        match containers::inspect_container(ctx, name)? {
            Some(v) => out.push(v),
            None => images.push(name.clone()),
        }
    }
    if !images.is_empty() {
        out.extend(images::inspect_values(ctx, &images)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn info(ctx: &Context) -> Result<u8> {
    let runtime = estiba_runtime::backend::select(None, &ctx.host, &ctx.paths.run.join("runtime"));
    let info = serde_json::json!({
        "rootless": ctx.host.rootless,
        "hostUid": ctx.host.host_uid,
        "mappedIds": ctx.host.mapped_ids,
        "cgroups": format!("{:?}", ctx.host.cgroup),
        "cgroupLimits": ctx.host.can_limit_resources(),
        "kernel": ctx.host.kernel_release,
        "runtime": runtime.map(|r| r.name().to_string()).unwrap_or_else(|e| e.to_string()),
        "storeRoot": ctx.paths.data,
        "runRoot": ctx.paths.run,
    });
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(0)
}

fn debug_unpack(ctx: &Context, layer: &std::path::Path, dest: &std::path::Path) -> Result<u8> {
    use estiba_oci::unpack::{unpack, Options, Whiteouts};
    std::fs::create_dir_all(dest)?;
    let file = std::io::BufReader::new(std::fs::File::open(layer)?);
    let opts = Options {
        whiteouts: Whiteouts::Overlay {
            userxattr: ctx.host.rootless,
        },
        rootless: ctx.host.rootless,
    };
    let report = unpack(file, dest, opts)?;
    println!("{} entries, diff id {}", report.entries, report.diff_id);
    Ok(0)
}

fn network(ctx: &Context, cmd: &crate::cli::NetworkCommand) -> Result<u8> {
    use crate::cli::NetworkCommand;
    let engine = ctx.engine()?;
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            internal,
            egress,
            egress_allow,
        } => {
            let net = engine.network_create(
                name,
                subnet.as_deref(),
                gateway.as_deref(),
                *internal,
                egress.as_deref(),
                egress_allow,
            )?;
            println!("{}", net.id);
        }
        NetworkCommand::Ls { quiet } => {
            let nets = engine.networks()?.list()?;
            if *quiet {
                for n in nets {
                    println!("{}", &n.id[..12]);
                }
            } else {
                println!("NETWORK ID    NAME                DRIVER    SUBNET             INTERNAL");
                for n in nets {
                    println!(
                        "{:<13} {:<19} {:<9} {:<18} {}",
                        &n.id[..12],
                        n.name,
                        n.driver,
                        n.subnet,
                        n.internal
                    );
                }
            }
        }
        NetworkCommand::Inspect { names } => {
            let all = names
                .iter()
                .map(|n| engine.network_inspect(n))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        NetworkCommand::Rm { names } => {
            for n in names {
                engine.network_remove(n)?;
                println!("{n}");
            }
        }
        NetworkCommand::Prune => {
            for n in engine.network_prune()? {
                println!("{n}");
            }
        }
        NetworkCommand::Connect {
            network,
            container,
            alias,
            ip,
        } => {
            let extra = estiba_engine::record::ExtraNetwork {
                aliases: alias.clone(),
                ip: estiba_engine::options::parse_ip(ip.as_deref())?,
            };
            engine.network_connect(network, container, extra)?;
        }
        NetworkCommand::Disconnect { network, container } => {
            engine.network_disconnect(network, container)?;
        }
    }
    Ok(0)
}
