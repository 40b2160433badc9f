//! The `estiba` binary: parses the command line, puts a rootless user into
//! its own user namespace, and hands each command to the crates that own it.
//! Errors are printed once, as a chain, and mapped to docker's exit codes.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod ecs_cli;
mod paths;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use estiba_runtime::userns::{self, Entered};

use crate::cli::Cli;
use crate::paths::Paths;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    // The in-process runtime's helper: already inside whatever user namespace
    // its parent is in, and single-threaded, as libcontainer requires.
    #[cfg(feature = "libcontainer")]
    if let cli::Command::InternalLibcontainer {
        op,
        state_root,
        bundle,
        id,
    } = &cli.command
    {
        return ExitCode::from(estiba_runtime::backend::in_process::helper_main(
            op, state_root, bundle, id,
        ));
    }

    // The registry and the commands that only speak to one need no user
    // namespace: they touch no container or image store.
    let no_store = match &cli.command {
        cli::Command::Registry(_)
        | cli::Command::Login(_)
        | cli::Command::Logout { .. }
        | cli::Command::Sign(_)
        | cli::Command::Verify(_)
        | cli::Command::Key(_)
        | cli::Command::Taskdef(_)
        | cli::Command::Task(_)
        | cli::Command::Node(_)
        | cli::Command::Service(_)
        | cli::Command::AgentSim(_) => true,
        // Files are read as they are; only images need the store.
        // The audit only reads, and judges the host's owners as they are
        // outside the user namespace.
        cli::Command::Audit(_) => true,
        // The FARGATE capacity runs containers in the control plane.
        cli::Command::Cluster(cli::ClusterCommand::Serve(a)) => !a.fargate,
        cli::Command::Cluster(
            cli::ClusterCommand::User(_)
            | cli::ClusterCommand::Token(_)
            | cli::ClusterCommand::Secret(_)
            | cli::ClusterCommand::Policy(_)
            | cli::ClusterCommand::Up(_)
            | cli::ClusterCommand::Migrate { .. },
        ) => true,
        _ => false,
    };
    if no_store {
        return match commands::dispatch(cli) {
            Ok(code) => ExitCode::from(code),
            Err(e) => report(&e),
        };
    }

    // Rootless: re-execute inside a user namespace before anything else, while
    // the process is single-threaded. The outer process only waits.
    let uid = estiba_runtime::host::outer_uid();
    let outer = Paths::resolve(cli.root.clone(), cli.runroot.clone(), uid != 0, uid);
    match userns::enter(&outer.run) {
        Ok(Entered::ExitWith(code)) => return ExitCode::from(code),
        Ok(Entered::Inside) => {}
        Err(e) => return report(&anyhow::Error::new(e)),
    }

    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&e),
    }
}

/// Prints the error chain once and picks docker's exit code: 127 and 126 for
/// a command that cannot be found or run, 125 for estiba's own failures.
fn report(e: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    eprintln!("estiba: {}", chain.join(": "));
    let code = e
        .chain()
        .find_map(|c| {
            c.downcast_ref::<estiba_engine::Error>()
                .map(estiba_engine::Error::exit_code)
                .or_else(|| {
                    c.downcast_ref::<estiba_runtime::Error>()
                        .map(estiba_runtime::Error::exit_code)
                })
                // An API's refusal is the command's failure, not estiba's.
                .or_else(|| c.downcast_ref::<commands::ecs::ApiError>().map(|_| 1))
        })
        .unwrap_or(125);
    ExitCode::from(code)
}

/// `--log-level` applies to estiba; libcontainer's own notices (cgroup
/// controllers this host lacks, syscalls this kernel lacks) show from `debug`.
fn init_tracing(level: &str) {
    let directives = match level {
        "debug" | "trace" => level.to_string(),
        _ => format!("{level},libcontainer=error,libcgroups=error"),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
