//! `estiba system service`: the Docker Engine API on a unix socket.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::Context;
use crate::cli::ServiceArgs;

/// Where to serve: a unix socket, or TCP with TLS.
enum Listen {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr, estiba_docker::Tls),
}

/// The URI's socket or address; `estiba.sock` in the run root by default
/// (`/run/estiba` as root, `$XDG_RUNTIME_DIR/estiba` rootless).
fn listen(ctx: &Context, args: &ServiceArgs) -> Result<Listen> {
    let Some(u) = args.uri.as_deref() else {
        return Ok(Listen::Unix(ctx.paths.run.join("estiba.sock")));
    };
    match u.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(Listen::Unix(PathBuf::from(path))),
        Some(("tcp", addr)) => {
            let (Some(cert), Some(key), Some(ca)) = (&args.tls_cert, &args.tls_key, &args.tls_ca)
            else {
                bail!(
                    "{u}: the Docker API over TCP needs --tls-cert, --tls-key and --tls-ca: its clients are verified by their certificates, or anyone reaching the port would drive this host's containers"
                );
            };
            let addr = addr
                .parse()
                .map_err(|e| anyhow::anyhow!("{u}: expected tcp://IP:PORT ({e})"))?;
            Ok(Listen::Tcp(
                addr,
                estiba_docker::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: ca.clone(),
                },
            ))
        }
        _ => bail!("{u}: expected unix:///PATH or tcp://IP:PORT"),
    }
}

pub fn service(ctx: &Context, args: &ServiceArgs) -> Result<u8> {
    let listen = listen(ctx, args)?;
    // Rootless, only the user; as root, root and its group (docker's 0660).
    let mode = if ctx.host.rootless { 0o600 } else { 0o660 };
    let engine = super::admission::engine(ctx)?;
    let idle = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let runtime = super::cluster::runtime()?;
    let gate = super::admission::PullGate::load(ctx.policy.as_deref())?.map(|g| {
        let g = std::sync::Arc::new(g);
        let gate: estiba_docker::PullGate = std::sync::Arc::new(move |src| g.plan(src));
        gate
    });
    let api = estiba_docker::Api::new(engine, gate);
    match listen {
        Listen::Unix(path) => {
            eprintln!("serving the Docker Engine API on unix://{}", path.display());
            runtime.block_on(estiba_docker::serve_unix(api, &path, mode, idle))?;
        }
        Listen::Tcp(addr, tls) => {
            eprintln!("serving the Docker Engine API on tcp://{addr} (TLS, clients verified)");
            runtime.block_on(estiba_docker::serve_tcp(api, addr, &tls, idle))?;
        }
    }
    Ok(0)
}
