//! `estiba cluster …`: the control plane and its users.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use estiba_cluster::api::{Listen, Settings};
use estiba_cluster::open::{self, StoreSpec};

use super::Context;
use crate::cli::{ClusterCommand, ClusterStateArgs, ClusterUserCommand};

fn runtime() -> Result<tokio::runtime::Runtime> {
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
            };
            let tls = a.tls_cert.zip(a.tls_key);
            runtime()?.block_on(async {
                let server = open::server(&data, &spec, settings).await?;
                estiba_cluster::api::serve(Arc::clone(&server), Listen { addr, tls }).await
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
    }
}
