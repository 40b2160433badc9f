//! `estiba system service`: the Docker Engine API on a unix socket.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::Context;
use crate::cli::ServiceArgs;

/// The socket: the URI's path, or `estiba.sock` in the run root
/// (`/run/estiba` as root, `$XDG_RUNTIME_DIR/estiba` rootless).
fn socket(ctx: &Context, uri: Option<&str>) -> Result<PathBuf> {
    match uri {
        None => Ok(ctx.paths.run.join("estiba.sock")),
        Some(u) => match u.split_once("://") {
            Some(("unix", path)) if path.starts_with('/') => Ok(PathBuf::from(path)),
            Some(("tcp", _)) => bail!(
                "{u}: the Docker API over TCP must use TLS, which estiba does not serve yet; use a unix socket"
            ),
            _ => bail!("{u}: expected unix:///PATH"),
        },
    }
}

pub fn service(ctx: &Context, args: &ServiceArgs) -> Result<u8> {
    let path = socket(ctx, args.uri.as_deref())?;
    // Rootless, only the user; as root, root and its group (docker's 0660).
    let mode = if ctx.host.rootless { 0o600 } else { 0o660 };
    let engine = super::admission::engine(ctx)?;
    let idle = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let runtime = super::cluster::runtime()?;
    eprintln!("serving the Docker Engine API on unix://{}", path.display());
    runtime.block_on(estiba_docker::serve_unix(
        estiba_docker::Api::new(engine),
        &path,
        mode,
        idle,
    ))?;
    Ok(0)
}
