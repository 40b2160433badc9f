//! The registry's commands: `registry serve|user|repo|gc|lifecycle` on the
//! server side, and `login`, `logout`, `push`, `pull`, `sign`, `verify` and
//! `key generate` on the client side.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use estiba_registry::client::{self, Client, ClientOptions, RemoteRef};
use estiba_registry::config::Config;
use estiba_registry::lifecycle::Rule;
use estiba_registry::settings::RepoSettings;
use estiba_registry::storage::{FsStorage, Storage};
use estiba_registry::trust::{KeyKind, PrivateKey, PublicKey};

use super::Context;
use crate::cli::{
    KeyCommand, LoginArgs, PullArgs, PushArgs, RegistryCommand, RegistryRepoCommand,
    RegistryUserCommand, RepoArgs, SignArgs, VerifyArgs,
};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The registry's root: `--root` as given, else `DATA/registry`.
pub fn registry_root(explicit: Option<&Path>, ctx: &Context) -> PathBuf {
    explicit.map_or_else(|| ctx.paths.data.join("registry"), Path::to_path_buf)
}

fn read_password_stdin() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password on standard input is empty");
    }
    Ok(password)
}

pub fn registry(ctx: &Context, root: &Path, cmd: &RegistryCommand) -> Result<u8> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    match cmd {
        RegistryCommand::Serve(a) => {
            let config = Config::load(a.config.as_deref())?;
            let addr: std::net::SocketAddr = a
                .addr
                .parse()
                .with_context(|| format!("--addr {}: not an address:port", a.addr))?;
            let app = estiba_registry::server::App::open(root, config)?;
            runtime()?.block_on(estiba_registry::server::serve(app, addr))?;
            Ok(0)
        }
        RegistryCommand::User(u) => user(root, u),
        RegistryCommand::Repo(r) => repo(root, r),
        RegistryCommand::Key(crate::cli::RegistryKeyCommand::Create { user }) => {
            if estiba_registry::auth::Users::open(root)?
                .get(user)
                .is_none()
            {
                bail!("no such registry user: {user} (add it with `estiba registry user add`)");
            }
            let key = estiba_registry::ecr::keys::AccessKeys::new(root).create(user)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"AccessKey": {
                    "UserName": key.user,
                    "AccessKeyId": key.id,
                    "Status": "Active",
                    "SecretAccessKey": key.secret,
                    "CreateDate": key.created,
                }}))?
            );
            Ok(0)
        }
        RegistryCommand::Gc { dry_run, grace } => {
            let storage = FsStorage::open(root)?;
            let lock = tokio::sync::RwLock::new(());
            let report = estiba_registry::gc::collect(
                &storage,
                &lock,
                std::time::Duration::from_secs(*grace),
                std::time::Duration::from_secs(7 * 24 * 3600),
                *dry_run,
            )?;
            if !*dry_run {
                // As the server's scheduled runs do: `audit registry` reads it.
                let audit = estiba_registry::audit::Audit::open(&root.join("audit.log"))?;
                let outcome = format!(
                    "{} blobs, {} bytes",
                    report.blobs_removed.len(),
                    report.bytes_freed
                );
                audit.record("gc", "-", "gc", "", &outcome, "ok");
            }
            let verb = if *dry_run { "would remove" } else { "removed" };
            for d in &report.blobs_removed {
                println!("{d}");
            }
            eprintln!(
                "{verb} {} blobs ({} bytes), {} abandoned uploads",
                report.blobs_removed.len(),
                report.bytes_freed,
                report.uploads_expired
            );
            let _ = ctx;
            Ok(0)
        }
        RegistryCommand::Lifecycle {
            dry_run,
            repositories,
        } => {
            let storage = FsStorage::open(root)?;
            let only = (!repositories.is_empty()).then_some(repositories.as_slice());
            let expired = estiba_registry::lifecycle::run(&storage, only, *dry_run)?;
            println!("REPOSITORY\tDIGEST\tTAGS\tREASON");
            for e in &expired {
                println!(
                    "{}\t{}\t{}\t{}",
                    e.repository,
                    e.digest,
                    if e.tags.is_empty() {
                        "<none>".to_string()
                    } else {
                        e.tags.join(",")
                    },
                    e.reason
                );
            }
            Ok(0)
        }
    }
}

fn user(root: &Path, cmd: &RegistryUserCommand) -> Result<u8> {
    let users = estiba_registry::auth::Users::open(root)?;
    match cmd {
        RegistryUserCommand::Add {
            name,
            password_stdin,
            admin,
            groups,
        } => {
            if !password_stdin {
                bail!("give the password with --password-stdin: it never goes on a command line");
            }
            let password = read_password_stdin()?;
            users.add(name, &password, *admin, groups.clone())?;
            eprintln!("user {name} saved");
        }
        RegistryUserCommand::Rm { name } => {
            if !users.remove(name)? {
                bail!("no such user: {name}");
            }
        }
        RegistryUserCommand::Ls => {
            for name in users.names() {
                let u = users.get(&name);
                let admin = u.as_ref().is_some_and(|u| u.admin);
                let groups = u.map(|u| u.groups.join(",")).unwrap_or_default();
                println!("{name}\t{}\t{groups}", if admin { "admin" } else { "-" });
            }
        }
    }
    Ok(0)
}

fn repo_settings(a: &RepoArgs) -> Result<RepoSettings> {
    let mut lifecycle = Vec::new();
    if let Some(days) = a.expire_untagged_days {
        lifecycle.push(Rule::ExpireUntagged { days });
    }
    for kl in &a.keep_last {
        let (prefix, count) = kl
            .rsplit_once('=')
            .with_context(|| format!("--keep-last {kl}: PREFIX=COUNT"))?;
        let count: usize = count
            .parse()
            .with_context(|| format!("--keep-last {kl}: COUNT is a number"))?;
        lifecycle.push(Rule::KeepLast {
            prefix: prefix.to_string(),
            count,
        });
    }
    let trusted_keys = a
        .trusted_keys
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    if a.require_signature && trusted_keys.is_empty() {
        bail!("--require-signature needs at least one --trusted-key");
    }
    Ok(RepoSettings {
        immutable_tags: a.immutable_tags,
        mutable_tag_filters: a.mutable_tags.clone(),
        lifecycle,
        require_signature: a.require_signature,
        trusted_keys,
        scan_on_push: a.scan_on_push,
        block_on: a.block_on.clone(),
        created_at: Some(
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ),
        ..RepoSettings::default()
    })
}

fn repo(root: &Path, cmd: &RegistryRepoCommand) -> Result<u8> {
    let storage = FsStorage::open(root)?;
    match cmd {
        RegistryRepoCommand::Create(a) => {
            estiba_registry::names::validate_name(&a.name)?;
            let settings = repo_settings(a)?;
            storage.create_repository(&a.name)?;
            settings.save(&storage, &a.name)?;
            println!("{}", a.name);
        }
        RegistryRepoCommand::Ls => {
            println!("REPOSITORY\tTAGS\tIMMUTABLE\tSIGNED ONLY\tLIFECYCLE RULES");
            for name in storage.repositories()? {
                let s = RepoSettings::load(&storage, &name)?;
                println!(
                    "{name}\t{}\t{}\t{}\t{}",
                    storage.tags(&name)?.len(),
                    s.immutable_tags,
                    s.require_signature,
                    s.lifecycle.len()
                );
            }
        }
        RegistryRepoCommand::Inspect { name } => {
            estiba_registry::names::validate_name(name)?;
            if !storage.repository_exists(name)? {
                bail!("no such repository: {name}");
            }
            let settings = RepoSettings::load(&storage, name)?;
            let out = serde_json::json!({
                "Name": name,
                "Tags": storage.tags(name)?,
                "Manifests": storage.manifests(name)?.len(),
                "Settings": settings,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        RegistryRepoCommand::Rm { name } => {
            estiba_registry::names::validate_name(name)?;
            if !storage.repository_exists(name)? {
                bail!("no such repository: {name}");
            }
            storage.delete_repository(name)?;
            println!("{name}");
        }
    }
    Ok(0)
}

fn options(tls_verify: bool) -> ClientOptions {
    ClientOptions {
        tls_verify,
        ..ClientOptions::default()
    }
}

pub fn login(a: &LoginArgs) -> Result<u8> {
    let username = match &a.username {
        Some(u) => u.clone(),
        None => bail!("give --username (and the password with --password-stdin)"),
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!(
                "WARNING! Using --password on the command line is insecure. Use --password-stdin."
            );
            p.clone()
        }
        (None, true) => read_password_stdin()?,
        (None, false) => bail!("give the password with --password-stdin"),
    };
    let mut opts = options(a.tls.tls_verify);
    opts.creds = Some((username, password.clone()));
    runtime()?.block_on(async {
        let c = Client::connect(&a.server, &opts).await?;
        c.login().await
    })?;
    let (user, _) = opts.creds.unwrap_or_default();
    client::creds::store(&a.server, &user, &password)?;
    println!("Login Succeeded!");
    Ok(0)
}

pub fn logout(server: &str) -> Result<u8> {
    if client::creds::remove(server)? {
        println!("Removed login credentials for {server}");
        Ok(0)
    } else {
        bail!("not logged in to {server}")
    }
}

pub fn push(ctx: &Context, a: &PushArgs) -> Result<u8> {
    let store = ctx.store()?;
    let record = store.find_image(&a.image)?;
    let dest = a.destination.as_deref().unwrap_or(&a.image);
    let dest = RemoteRef::parse(dest)?;
    let progress = Arc::new(crate::progress::Transfers::new(a.quiet));
    let digest = runtime()?.block_on(async {
        let c = Client::connect(&dest.registry, &options(a.tls.tls_verify)).await?;
        client::push(&c, &store, &record.id.to_string(), &dest, progress).await
    })?;
    if a.quiet {
        println!("{digest}");
    } else {
        println!("{}: digest: {digest}", dest.reference());
    }
    Ok(0)
}

pub(crate) fn read_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            PublicKey::from_pem(&text).with_context(|| format!("key {}", p.display()))
        })
        .collect()
}

pub fn pull(ctx: &Context, a: &PullArgs) -> Result<u8> {
    if a.verify && a.key.is_empty() {
        bail!("--verify needs --key");
    }
    let keys = if a.verify || !a.key.is_empty() {
        read_keys(&a.key)?
    } else {
        Vec::new()
    };
    let store = ctx.store()?;
    let src = RemoteRef::parse(&a.image)?;
    // The policy's registries and keys; --key adds a check of its own.
    let plan = match super::admission::PullGate::load(ctx.policy.as_deref())? {
        Some(gate) => Some(gate.plan(&src).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let gated = plan.is_some();
    let progress = Arc::new(crate::progress::Transfers::new(a.quiet));
    let pulled = runtime()?.block_on(async {
        let c = Client::connect(&src.registry, &options(a.tls.tls_verify)).await?;
        let opts = match plan {
            // --key is checked first, and never marks the image: only the
            // policy's own keys vouch for it at run.
            Some(plan) => {
                if !keys.is_empty() {
                    client::verify(&c, &src, &keys)
                        .await
                        .map_err(|e| estiba_registry::Error::Http(format!("--key: {e}")))?;
                }
                plan
            }
            None => client::PullOptions {
                verify_keys: keys,
                ..Default::default()
            },
        };
        client::pull(&c, &store, &src, &opts, progress).await
    });
    let pulled = match pulled {
        Err(estiba_registry::Error::Signature(why)) if gated => {
            bail!(super::admission::PullGate::refused_unsigned(&why))
        }
        other => other?,
    };
    if let Some(why) = &pulled.unverified {
        eprintln!("{}", super::admission::PullGate::warned_unsigned(why));
    }
    if a.quiet {
        println!("{}", pulled.id);
    } else {
        eprintln!("Digest: {}", pulled.digest);
        if let Some(name) = &pulled.name {
            eprintln!("Status: Downloaded image for {name}");
        }
        println!("{}", pulled.id);
    }
    Ok(0)
}

pub fn sign(a: &SignArgs) -> Result<u8> {
    let text =
        std::fs::read_to_string(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let key = PrivateKey::from_pem(&text)?;
    let image = RemoteRef::parse(&a.image)?;
    let digest = runtime()?.block_on(async {
        let c = Client::connect(&image.registry, &options(a.tls.tls_verify)).await?;
        client::sign(&c, &image, &key).await
    })?;
    println!("{digest}");
    Ok(0)
}

pub fn verify(a: &VerifyArgs) -> Result<u8> {
    let keys = read_keys(&a.key)?;
    let image = RemoteRef::parse(&a.image)?;
    let (digest, verified) = runtime()?.block_on(async {
        let c = Client::connect(&image.registry, &options(a.tls.tls_verify)).await?;
        client::verify(&c, &image, &keys).await
    })?;
    eprintln!("Verification for {image} ({digest}):");
    eprintln!("  - the signature was verified against the given public key");
    for v in &verified {
        println!("{}", v.payload);
    }
    Ok(0)
}

pub fn key(cmd: &KeyCommand) -> Result<u8> {
    match cmd {
        KeyCommand::Generate { out, kind } => {
            let kind = match kind.as_str() {
                "ecdsa-p256" | "ecdsa" | "p256" => KeyKind::EcdsaP256,
                "ed25519" => KeyKind::Ed25519,
                other => bail!("--type {other}: ecdsa-p256 or ed25519"),
            };
            let private = PrivateKey::generate(kind)?;
            let public = PrivateKey::from_pem(&private)?.public_key().to_pem();
            let key_path = out.with_extension("key");
            let pub_path = out.with_extension("pub");
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&key_path)
                    .with_context(|| format!("creating {}", key_path.display()))?;
                f.write_all(private.as_bytes())?;
            }
            std::fs::write(&pub_path, public)
                .with_context(|| format!("writing {}", pub_path.display()))?;
            eprintln!("Private key written to {}", key_path.display());
            eprintln!("Public key written to {}", pub_path.display());
            Ok(0)
        }
    }
}
