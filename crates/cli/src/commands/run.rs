//! `estiba run` in the foreground: resolve the image, mount its root
//! filesystem, build a secure spec and hand the bundle to a runtime backend.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use estiba_runtime::rootfs;
use estiba_runtime::spec::{self, BindMount, Limits, Network, RunConfig, Seccomp};
use estiba_store::{random_hex, ImageRecord, Store};
use oci_image_config::ImageDefaults;
use serde_json::json;

use super::Context;
use crate::cli::RunArgs;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories of one container.
struct ContainerDirs {
    /// Persistent: the writable layer and the record.
    data: PathBuf,
    /// Volatile: the bundle and generated /etc files.
    run: PathBuf,
}

impl ContainerDirs {
    fn rootfs(&self) -> PathBuf {
        self.data.join("rootfs")
    }
}

pub fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let store = ctx.store()?;
    let image = store
        .find_image(&args.image)
        .with_context(|| format!("Unable to find image '{}' locally", args.image))?;
    let id = random_hex(32);
    let containers = ctx.paths.data.join("containers");
    if let Some(name) = &args.name {
        check_name_free(&containers, name)?;
    }
    let dirs = ContainerDirs {
        data: containers.join(&id),
        run: ctx.paths.run.join("containers").join(&id),
    };
    for d in [&dirs.data, &dirs.run] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    write_record(&dirs, &id, args, &image, None)?;
    let result = run_in(ctx, &store, &image, &id, &dirs, args);
    let _ = rootfs::unmount(&dirs.rootfs());
    let _ = fs::remove_dir_all(&dirs.run);
    if args.rm {
        estiba_oci::unpack::remove_tree(&dirs.data)
            .with_context(|| format!("removing {}", dirs.data.display()))?;
    } else if let Ok(code) = &result {
        write_record(&dirs, &id, args, &image, Some(*code))?;
    }
    result
}

fn run_in(
    ctx: &Context,
    store: &Store,
    image: &ImageRecord,
    id: &str,
    dirs: &ContainerDirs,
    args: &RunArgs,
) -> Result<u8> {
    let rootless = ctx.host.rootless;
    rootfs::private_mount_namespace()?;
    let root = dirs.rootfs();
    {
        // Prune waits while layers are looked up and mounted.
        let _lock = store.lock_shared()?;
        mount_rootfs(store, image, &dirs.data, rootless)?;
    }
    let defaults = ImageDefaults::from_config(&store.image_config(image)?);
    let cfg = resolve(args, &defaults, id, &root, dirs)?;
    rootfs::check_command(&root, &cfg.args[0], &cfg.env)?;
    let (spec, warnings) = spec::build(&cfg, &ctx.host, estiba_store::host_arch())?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    let bundle = &dirs.run;
    fs::write(bundle.join("config.json"), serde_json::to_vec(&spec)?)
        .context("writing the bundle")?;
    let runtime = estiba_runtime::backend::select(
        args.runtime.as_deref(),
        &ctx.host,
        &ctx.paths.run.join("runtime"),
    )?;
    tracing::debug!(container = id, runtime = runtime.name(), "starting");
    Ok(runtime.run(id, bundle)?)
}

/// overlayfs over the shared layers; a flattened copy where overlay fails
/// (or when `ESTIBA_STORAGE_DRIVER=vfs` asks for it).
fn mount_rootfs(store: &Store, image: &ImageRecord, data: &Path, rootless: bool) -> Result<()> {
    let root = data.join("rootfs");
    fs::create_dir_all(&root)?;
    let force_copy = std::env::var("ESTIBA_STORAGE_DRIVER").is_ok_and(|v| v == "vfs");
    if !force_copy {
        let mut layers = store.layer_dirs(image)?;
        if layers.is_empty() {
            let empty = data.join("empty");
            fs::create_dir_all(&empty)?;
            layers.push(empty);
        }
        let (upper, work) = (data.join("upper"), data.join("work"));
        fs::create_dir_all(&upper)?;
        fs::create_dir_all(&work)?;
        match rootfs::mount_overlay(&layers, &upper, &work, &root, rootless) {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "overlayfs unavailable; copying the image instead")
            }
        }
    }
    store.flatten_into(image, &root)?;
    Ok(())
}

/// What the image config says a container should run.
mod oci_image_config {
    use oci_spec::image::ImageConfiguration;

    #[derive(Default, Debug)]
    pub struct ImageDefaults {
        pub entrypoint: Vec<String>,
        pub cmd: Vec<String>,
        pub env: Vec<String>,
        pub workdir: Option<String>,
        pub user: Option<String>,
    }

    impl ImageDefaults {
        pub fn from_config(config: &ImageConfiguration) -> Self {
            let Some(c) = config.config() else {
                return Self::default();
            };
            ImageDefaults {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                workdir: c.working_dir().clone().filter(|w| !w.is_empty()),
                user: c.user().clone().filter(|u| !u.is_empty()),
            }
        }
    }
}

fn resolve(
    args: &RunArgs,
    image: &ImageDefaults,
    id: &str,
    root: &Path,
    dirs: &ContainerDirs,
) -> Result<RunConfig> {
    let command = match &args.entrypoint {
        Some(e) => {
            let mut c: Vec<String> = if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            };
            c.extend(args.command.iter().cloned());
            c
        }
        None => {
            let mut c = image.entrypoint.clone();
            c.extend(if args.command.is_empty() {
                image.cmd.clone()
            } else {
                args.command.clone()
            });
            c
        }
    };
    if command.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd");
    }
    let user_spec = args
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    let user = rootfs::resolve_user(root, &user_spec)?;
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let network = match args.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => {
            bail!("network {other:?} is not available yet: use --network none or --network host")
        }
    };
    let mut env = Env::default();
    env.extend(image.env.iter().cloned());
    if !env.has("PATH") {
        env.set(DEFAULT_PATH.to_string());
    }
    env.set(format!("HOSTNAME={hostname}"));
    if !env.has("HOME") {
        env.set(format!("HOME={}", user.home));
    }
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    for e in &args.env {
        match e.split_once('=') {
            Some(_) => env.set(e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    env.set(format!("{e}={v}"));
                }
            }
        }
    }
    let (no_new_privileges, seccomp) = security_opts(&args.security_opt)?;
    Ok(RunConfig {
        id: id.to_string(),
        rootfs: root.to_path_buf(),
        args: command,
        env: env.0,
        cwd: args
            .workdir
            .clone()
            .or_else(|| image.workdir.clone())
            .unwrap_or_else(|| "/".into()),
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        etc_files: etc_files(&dirs.run, &hostname, network)?,
        hostname,
        read_only: args.read_only,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        no_new_privileges,
        seccomp,
        privileged: args.privileged,
        limits: Limits {
            memory: args.memory.as_deref().map(parse_bytes).transpose()?,
            cpus: args
                .cpus
                .map(|c| {
                    if c > 0.0 {
                        Ok(c)
                    } else {
                        Err(anyhow::anyhow!("--cpus must be above 0"))
                    }
                })
                .transpose()?,
            pids: args.pids_limit,
        },
        network,
        mounts: args
            .volume
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<_>>()?,
    })
}

/// An environment list where later entries replace earlier ones by key.
#[derive(Default)]
struct Env(Vec<String>);

impl Env {
    fn key(entry: &str) -> &str {
        entry.split_once('=').map_or(entry, |(k, _)| k)
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|e| Self::key(e) == key)
    }

    fn set(&mut self, entry: String) {
        let key = Self::key(&entry).to_string();
        self.0.retain(|e| Self::key(e) != key);
        self.0.push(entry);
    }

    fn extend(&mut self, entries: impl IntoIterator<Item = String>) {
        for e in entries {
            self.set(e);
        }
    }
}

fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            if l.contains('=') {
                Some(l.to_string())
            } else {
                std::env::var(l).ok().map(|v| format!("{l}={v}"))
            }
        })
        .collect())
}

fn security_opts(opts: &[String]) -> Result<(bool, Seccomp)> {
    let mut nnp = true;
    let mut seccomp = Seccomp::Default;
    for opt in opts {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match (key, value) {
            ("no-new-privileges", "true") => nnp = true,
            ("no-new-privileges", "false") => nnp = false,
            ("seccomp", "unconfined") => seccomp = Seccomp::Unconfined,
            ("seccomp", file) => {
                let profile = fs::read_to_string(file).with_context(|| format!("reading seccomp profile {file}"))?;
                seccomp = Seccomp::Profile(profile);
            }
            _ => bail!("invalid --security-opt {opt:?}: expected no-new-privileges[=true|false], seccomp=unconfined or seccomp=FILE"),
        }
    }
    Ok((nnp, seccomp))
}

/// `64m`, `1g`, `512k`, `1048576`, with an optional trailing `b`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let owned = s.trim().to_ascii_lowercase();
    let mut lower = owned.as_str();
    if let Some(rest) = lower
        .strip_suffix('b')
        .filter(|r| r.ends_with(['k', 'm', 'g', 't']))
    {
        lower = rest;
    }
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = digits.parse().with_context(|| {
        format!("invalid size {s:?}: expected a number with an optional k, m, g suffix")
    })?;
    let bytes = (n * mult as f64) as i64;
    if bytes < 4 << 20 {
        bail!("invalid size {s:?}: the minimum memory limit is 4m");
    }
    Ok(bytes)
}

fn parse_volume(spec: &str) -> Result<BindMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts[..] {
        [s, d] => (s, d, "rw"),
        [s, d, m] => (s, d, m),
        _ => bail!("invalid volume {spec:?}: expected HOST:CONTAINER[:ro]"),
    };
    if !source.starts_with('/') {
        bail!("invalid volume {spec:?}: named volumes arrive with the lifecycle work; give an absolute host path");
    }
    if !destination.starts_with('/') {
        bail!("invalid volume {spec:?}: the container path must be absolute");
    }
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => bail!("invalid volume mode {other:?}: expected ro or rw"),
    };
    if !Path::new(source).exists() {
        fs::create_dir_all(source).with_context(|| format!("creating volume source {source}"))?;
    }
    Ok(BindMount {
        source: PathBuf::from(source),
        destination: destination.to_string(),
        read_only,
    })
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf, generated per container.
fn etc_files(run_dir: &Path, hostname: &str, network: Network) -> Result<Vec<BindMount>> {
    let hosts = match network {
        Network::Host => fs::read_to_string("/etc/hosts").unwrap_or_default(),
        Network::None => format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"),
    };
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = Vec::new();
    for (name, content) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let path = run_dir.join(name);
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        out.push(BindMount {
            source: path,
            destination: format!("/etc/{name}"),
            read_only: false,
        });
    }
    Ok(out)
}

fn check_name_free(containers: &Path, name: &str) -> Result<()> {
    let Ok(entries) = fs::read_dir(containers) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Ok(data) = fs::read(entry.path().join("container.json")) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&data) else {
            continue;
        };
        if record["Name"] == name {
            bail!(
                "the container name {name:?} is already in use by container {}",
                entry.file_name().to_string_lossy()
            );
        }
    }
    Ok(())
}

/// A minimal container record until the lifecycle work gives containers a store.
fn write_record(
    dirs: &ContainerDirs,
    id: &str,
    args: &RunArgs,
    image: &ImageRecord,
    exit_code: Option<u8>,
) -> Result<()> {
    let record = json!({
        "Id": id,
        "Name": args.name,
        "Image": image.id.to_string(),
        "ImageName": args.image,
        "Command": args.command,
        "State": { "Status": if exit_code.is_some() { "exited" } else { "running" }, "ExitCode": exit_code },
    });
    estiba_store::write_atomic(
        &dirs.data.join("container.json"),
        &serde_json::to_vec_pretty(&record)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("8388608").unwrap(), 8 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1k").is_err(), "below the minimum");
    }

    #[test]
    fn volumes_and_security_opts() {
        assert!(parse_volume("relative:/x").is_err());
        assert!(parse_volume("/tmp:/x:zz").is_err());
        assert!(parse_volume("/tmp:x").is_err());
        assert!(parse_volume("/tmp:/x:ro").unwrap().read_only);
        assert!(
            !security_opts(&["no-new-privileges=false".into()])
                .unwrap()
                .0
        );
        assert_eq!(
            security_opts(&["seccomp=unconfined".into()]).unwrap().1,
            Seccomp::Unconfined
        );
        assert!(security_opts(&["apparmor=x".into()]).is_err());
    }
}
