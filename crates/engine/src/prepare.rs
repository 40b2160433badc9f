//! From a container record to a bundle ready for a runtime: mount the root
//! filesystem, resolve the image config and the flags against it, and write
//! the OCI spec. Done at every start, so a restarted container gets the same.

use std::fs;
use std::path::{Path, PathBuf};

use estiba_runtime::rootfs;
use estiba_runtime::spec::{self, BindMount, Limits, Network, RunConfig, Seccomp, TmpfsMount};
use estiba_store::{ImageRecord, Store};
use oci_spec::image::ImageConfiguration;

use crate::error::IoContext;
use crate::record::{ContainerRecord, CreateOptions, NetworkMode};
use crate::volumes::Volumes;
use crate::{Error, Result};

pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories of one container, all under `containers/<id>/`.
#[derive(Clone, Debug)]
pub struct ContainerDirs {
    pub root: PathBuf,
}

impl ContainerDirs {
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }

    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle")
    }

    pub fn log(&self) -> PathBuf {
        self.root.join("container.log")
    }

    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// Unmounts what a start mounted (secrets' tmpfs, then the rootfs).
    pub fn unmount(&self) {
        let _ = rootfs::unmount(&self.secrets());
        let _ = rootfs::unmount(&self.rootfs());
    }
}

/// overlayfs over the shared layers; a flattened copy where overlay fails
/// (or when `ESTIBA_STORAGE_DRIVER=vfs` asks for it). The caller must be in a
/// private mount namespace.
pub fn mount_rootfs(
    store: &Store,
    image: &ImageRecord,
    dirs: &ContainerDirs,
    rootless: bool,
) -> Result<()> {
    let root = dirs.rootfs();
    fs::create_dir_all(&root).ctx("creating", &root)?;
    // Prune waits while layers are looked up and mounted.
    let _lock = store.lock_shared()?;
    let copied = dirs.root.join("rootfs.copied");
    let force_copy = std::env::var("ESTIBA_STORAGE_DRIVER").is_ok_and(|v| v == "vfs");
    if !force_copy && !copied.exists() {
        let mut layers = store.layer_dirs(image)?;
        if layers.is_empty() {
            let empty = dirs.root.join("empty");
            fs::create_dir_all(&empty).ctx("creating", &empty)?;
            layers.push(empty);
        }
        let (upper, work) = (dirs.root.join("upper"), dirs.root.join("work"));
        fs::create_dir_all(&upper).ctx("creating", &upper)?;
        fs::create_dir_all(&work).ctx("creating", &work)?;
        match rootfs::mount_overlay(&layers, &upper, &work, &root, rootless) {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "overlayfs unavailable; copying the image instead")
            }
        }
    }
    if !copied.exists() {
        store.flatten_into(image, &root)?;
        fs::write(&copied, b"").ctx("writing", &copied)?;
    }
    Ok(())
}

/// What the image config says a container should run.
#[derive(Default, Debug)]
struct ImageDefaults {
    /// EXPOSEd ports, `80/tcp`.
    exposed: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
}

impl ImageDefaults {
    fn from_config(config: &ImageConfiguration) -> Self {
        let Some(c) = config.config() else {
            return Self::default();
        };
        ImageDefaults {
            exposed: c.exposed_ports().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            workdir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
        }
    }
}

/// Resolves the record against its mounted rootfs and writes the bundle's
/// `config.json`. Returns warnings (limits this host cannot apply).
pub fn write_bundle(
    engine: &crate::Engine,
    image: &ImageRecord,
    record: &ContainerRecord,
    dirs: &ContainerDirs,
) -> Result<Vec<String>> {
    let (host, store, volumes) = (&engine.host, &engine.store, &engine.volumes);
    let defaults = ImageDefaults::from_config(&store.image_config(image)?);
    let bundle = dirs.bundle();
    fs::create_dir_all(&bundle).ctx("creating", &bundle)?;
    // A pod's containers share the pod's attachment (they join its
    // namespaces); others get their own.
    let attached = match &record.options.pod {
        Some(_) => engine.pod_attached(record)?,
        None => engine.attach_network(record, &defaults.exposed)?,
    };
    let cfg = resolve(
        record,
        &defaults,
        &dirs.rootfs(),
        &bundle,
        volumes,
        attached.as_ref(),
    )?;
    let mut cfg = cfg;
    cfg.mounts.extend(mount_secrets(
        &engine.secrets,
        record,
        dirs,
        cfg.uid,
        cfg.gid,
    )?);
    rootfs::check_command(&cfg.rootfs, &cfg.args[0], &cfg.env)?;
    let (spec, warnings) = spec::build(&cfg, host, estiba_store::host_arch())?;
    let data =
        serde_json::to_vec(&spec).map_err(|e| Error::Record(bundle.join("config.json"), e))?;
    estiba_os::write_atomic(&bundle.join("config.json"), &data)?;
    Ok(warnings)
}

/// Attaches the container to its network from the caller's (the host's)
/// mount namespace: `ip netns add` mounts the namespace under /run/netns,
/// and a mount made after a monitor has its private mount namespace would
/// be visible to that monitor alone. `write_bundle` attaches again later,
/// which then keeps what is there.
pub fn attach_network_early(
    engine: &crate::Engine,
    image: &ImageRecord,
    record: &ContainerRecord,
) -> Result<()> {
    if record.options.network.is_builtin() {
        return Ok(());
    }
    let defaults = ImageDefaults::from_config(&engine.store.image_config(image)?);
    engine.attach_network(record, &defaults.exposed)?;
    Ok(())
}

/// Bind sources for every mount: host paths (created if missing, as docker
/// does), and named volumes (created, and filled from the image when empty).
fn resolve_mounts(
    o: &CreateOptions,
    root: &Path,
    volumes: &Volumes,
) -> Result<(Vec<BindMount>, Vec<TmpfsMount>)> {
    let (mut binds, mut tmpfs) = (Vec::new(), Vec::new());
    for spec in mount_specs(o)? {
        match spec {
            MountSpec::Bind {
                source,
                destination,
                read_only,
            } => {
                if !source.exists() {
                    fs::create_dir_all(&source).ctx("creating volume source", &source)?;
                }
                binds.push(BindMount {
                    source,
                    destination,
                    read_only,
                });
            }
            MountSpec::Volume {
                name,
                destination,
                read_only,
            } => {
                let (volume, _) = volumes.create(&name)?;
                if crate::volumes::is_empty(&volume.mountpoint) {
                    crate::volumes::populate(root, &destination, &volume.mountpoint)?;
                }
                binds.push(BindMount {
                    source: volume.mountpoint,
                    destination,
                    read_only,
                });
            }
            MountSpec::Tmpfs {
                destination,
                options,
            } => tmpfs.push(TmpfsMount {
                destination,
                options,
            }),
        }
    }
    Ok((binds, tmpfs))
}

fn resolve(
    record: &ContainerRecord,
    image: &ImageDefaults,
    root: &Path,
    bundle: &Path,
    volumes: &Volumes,
    attached: Option<&crate::network::Attached>,
) -> Result<RunConfig> {
    let o = &record.options;
    let command = match &o.entrypoint {
        Some(e) => {
            let mut c: Vec<String> = if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            };
            c.extend(o.command.iter().cloned());
            c
        }
        None => {
            let mut c = image.entrypoint.clone();
            c.extend(if o.command.is_empty() {
                image.cmd.clone()
            } else {
                o.command.clone()
            });
            c
        }
    };
    if command.is_empty() {
        return Err(Error::Invalid {
            what: "command",
            value: String::new(),
            why: "no command specified: the image has no Entrypoint or Cmd".into(),
        });
    }
    let user_spec = o
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    let user = rootfs::resolve_user(root, &user_spec)?;
    let hostname = o
        .hostname
        .clone()
        .unwrap_or_else(|| record.id[..12].to_string());
    let network = spec_network(&o.network);
    let mut env = Env::default();
    env.extend(image.env.iter().cloned());
    if !env.has("PATH") {
        env.set(DEFAULT_PATH.to_string());
    }
    env.set(format!("HOSTNAME={hostname}"));
    if !env.has("HOME") {
        env.set(format!("HOME={}", user.home));
    }
    env.extend(o.env.iter().cloned());
    let (no_new_privileges, seccomp) = security_opts(&o.security_opt)?;
    let (mounts, tmpfs) = resolve_mounts(o, root, volumes)?;
    let mut join = match &o.pod {
        Some(pod) => pod_namespaces(pod, root)?,
        None => Vec::new(),
    };
    if let (Some(a), None) = (attached, &o.pod) {
        join.push(("network".to_string(), a.netns.clone()));
    }
    Ok(RunConfig {
        id: record.id.clone(),
        rootfs: root.to_path_buf(),
        args: command,
        env: env.0,
        cwd: o
            .workdir
            .clone()
            .or_else(|| image.workdir.clone())
            .unwrap_or_else(|| "/".into()),
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        etc_files: etc_files(bundle, &hostname, network, attached, o)?,
        hostname,
        read_only: o.read_only,
        cap_add: o.cap_add.clone(),
        cap_drop: o.cap_drop.clone(),
        no_new_privileges,
        seccomp,
        privileged: o.privileged,
        limits: Limits {
            memory: o.memory,
            cpus: o.cpus,
            pids: o.pids_limit,
        },
        network,
        mounts,
        tmpfs,
        join,
    })
}

/// The running pod's namespaces, found from its record next to `containers/`.
fn pod_namespaces(pod_id: &str, rootfs: &Path) -> Result<Vec<(String, PathBuf)>> {
    // rootfs is <data>/containers/<id>/rootfs.
    let data = rootfs.ancestors().nth(3).unwrap_or(Path::new("/"));
    let path = data.join("pods").join(format!("{pod_id}.json"));
    let pod: crate::pods::PodRecord = fs::read(&path)
        .map_err(|e| Error::Io {
            op: "reading",
            path: path.clone(),
            source: e,
        })
        .and_then(|d| serde_json::from_slice(&d).map_err(|e| Error::Record(path.clone(), e)))?;
    if !pod.running() {
        return Err(Error::Invalid {
            what: "pod",
            value: pod.name,
            why: "is not running: `estiba pod start` it".into(),
        });
    }
    Ok(pod.namespaces())
}

/// Writes the container's secrets to a tmpfs that exists only in this
/// process's (private) mount namespace, readable by the container's user
/// only, and returns read-only bind mounts of them.
fn mount_secrets(
    secrets: &crate::secrets::Secrets,
    record: &ContainerRecord,
    dirs: &ContainerDirs,
    uid: u32,
    gid: u32,
) -> Result<Vec<BindMount>> {
    use std::os::unix::fs::OpenOptionsExt;
    if record.options.secrets.is_empty() {
        return Ok(Vec::new());
    }
    let dir = dirs.secrets();
    fs::create_dir_all(&dir).ctx("creating", &dir)?;
    let _ = rootfs::unmount(&dir);
    rustix::mount::mount(
        "tmpfs",
        &dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC,
        Some(c"size=1m,mode=0700"),
    )
    .ctx("mounting a tmpfs for secrets on", &dir)?;
    let mut mounts = Vec::new();
    for (i, spec) in record.options.secrets.iter().enumerate() {
        let secret = crate::secrets::parse_ref(spec)?;
        let content = secrets.reveal(&secret.name)?;
        let path = dir.join(i.to_string());
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .ctx("writing secret", &path)?;
        std::io::Write::write_all(&mut f, &content).ctx("writing secret", &path)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).ctx("setting the owner of", &path)?;
        mounts.push(BindMount {
            source: path,
            destination: secret.target,
            read_only: true,
        });
    }
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).ctx("setting the owner of", &dir)?;
    Ok(mounts)
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

/// `-e` and `--env-file` entries as `K=V`: a bare `K` takes this process's value.
pub fn collect_env(env: &[String], env_files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for path in env_files {
        let text = fs::read_to_string(path).ctx("reading env file", path)?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.extend(env.iter().cloned());
    Ok(out
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect())
}

/// The spec's view of the network: a named network is a namespace of its
/// own that the container joins by path, so its spec asks for none here.
pub fn spec_network(mode: &NetworkMode) -> Network {
    match mode {
        NetworkMode::Host => Network::Host,
        NetworkMode::None | NetworkMode::Named(_) => Network::None,
    }
}

/// Only `none` and `host`: for build steps.
pub fn parse_builtin_network(network: &str) -> Result<Network> {
    match network {
        "none" | "" | "host" => Ok(spec_network(&NetworkMode::parse(network)?)),
        other => Err(Error::Invalid {
            what: "network",
            value: other.to_string(),
            why: "build steps take none or host".into(),
        }),
    }
}

pub fn security_opts(opts: &[String]) -> Result<(bool, Seccomp)> {
    let mut nnp = true;
    let mut seccomp = Seccomp::Default;
    for opt in opts {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match (key, value) {
            ("no-new-privileges", "true") => nnp = true,
            ("no-new-privileges", "false") => nnp = false,
            ("seccomp", "unconfined") => seccomp = Seccomp::Unconfined,
            ("seccomp", file) => {
                let profile = fs::read_to_string(file).ctx("reading seccomp profile", file)?;
                seccomp = Seccomp::Profile(profile);
            }
            _ => return Err(Error::Invalid {
                what: "--security-opt",
                value: opt.clone(),
                why: "expected no-new-privileges[=true|false], seccomp=unconfined or seccomp=FILE"
                    .into(),
            }),
        }
    }
    Ok((nnp, seccomp))
}

/// `64m`, `1g`, `512k`, `1048576`, with an optional trailing `b`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let bad = |why: &str| Error::Invalid {
        what: "size",
        value: s.to_string(),
        why: why.to_string(),
    };
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
    let n: f64 = digits
        .parse()
        .map_err(|_| bad("expected a number with an optional k, m, g suffix"))?;
    let bytes = (n * mult as f64) as i64;
    if bytes < 4 << 20 {
        return Err(bad("the minimum memory limit is 4m"));
    }
    Ok(bytes)
}

/// A mount asked for with `-v`, `--tmpfs` or `--mount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        destination: String,
        read_only: bool,
    },
    Volume {
        name: String,
        destination: String,
        read_only: bool,
    },
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

impl MountSpec {
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. }
            | MountSpec::Volume { destination, .. }
            | MountSpec::Tmpfs { destination, .. } => destination,
        }
    }
}

fn absolute(what: &'static str, spec: &str, path: &str) -> Result<String> {
    if path.starts_with('/') && !path.split('/').any(|c| c == "..") {
        Ok(path.to_string())
    } else {
        Err(Error::Invalid {
            what,
            value: spec.to_string(),
            why: format!("{path:?} must be an absolute path without '..'"),
        })
    }
}

/// `-v HOST:CTR[:ro|rw]` (a bind) or `-v NAME:CTR[:ro|rw]` (a named volume).
pub fn parse_volume(spec: &str) -> Result<MountSpec> {
    let bad = |why: &str| Error::Invalid {
        what: "volume",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts[..] {
        [s, d] => (s, d, "rw"),
        [s, d, m] => (s, d, m),
        _ => return Err(bad("expected HOST:CONTAINER[:ro] or NAME:CONTAINER[:ro]")),
    };
    let destination = absolute("volume", spec, destination)?;
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        _ => return Err(bad("the mode must be ro or rw")),
    };
    if source.starts_with('/') {
        Ok(MountSpec::Bind {
            source: PathBuf::from(source),
            destination,
            read_only,
        })
    } else if crate::volumes::valid_name(source) {
        Ok(MountSpec::Volume {
            name: source.to_string(),
            destination,
            read_only,
        })
    } else {
        Err(bad("the source must be an absolute host path or a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"))
    }
}

/// `--tmpfs CTR[:size=64m,mode=1777]`.
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (dest, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let destination = absolute("--tmpfs", spec, dest)?;
    let options = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    Ok(MountSpec::Tmpfs {
        destination,
        options,
    })
}

/// docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`.
pub fn parse_mount(spec: &str) -> Result<MountSpec> {
    let bad = |why: &str| Error::Invalid {
        what: "--mount",
        value: spec.to_string(),
        why: why.to_string(),
    };
    let (mut kind, mut source, mut target, mut read_only, mut options) =
        ("volume", None, None, false, Vec::new());
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        match k {
            "type" => kind = v,
            "source" | "src" => source = Some(v),
            "target" | "destination" | "dst" => target = Some(v),
            "readonly" | "ro" => read_only = v == "true" || v == "1",
            "tmpfs-size" => options.push(format!("size={v}")),
            "tmpfs-mode" => options.push(format!("mode={v}")),
            _ => return Err(bad(&format!("unknown field {k:?}"))),
        }
    }
    let destination = absolute(
        "--mount",
        spec,
        target.ok_or_else(|| bad("target= is required"))?,
    )?;
    match (kind, source) {
        ("bind", Some(s)) => Ok(MountSpec::Bind {
            source: PathBuf::from(absolute("--mount", spec, s)?),
            destination,
            read_only,
        }),
        ("volume", Some(s)) if crate::volumes::valid_name(s) => Ok(MountSpec::Volume {
            name: s.to_string(),
            destination,
            read_only,
        }),
        ("tmpfs", None) => Ok(MountSpec::Tmpfs {
            destination,
            options,
        }),
        ("tmpfs", Some(_)) => Err(bad("a tmpfs has no source")),
        ("bind" | "volume", _) => Err(bad(
            "source= is required (a host path for bind, a name for volume)",
        )),
        (other, _) => Err(bad(&format!(
            "unknown type {other:?}: bind, volume or tmpfs"
        ))),
    }
}

/// Every mount a container asked for, in flag order.
pub fn mount_specs(o: &CreateOptions) -> Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    for v in &o.volumes {
        out.push(parse_volume(v)?);
    }
    for t in &o.tmpfs {
        out.push(parse_tmpfs(t)?);
    }
    for m in &o.mounts {
        out.push(parse_mount(m)?);
    }
    Ok(out)
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf, generated per container.
/// On a network, /etc/hosts lists who was there at start and resolv.conf
/// names the network's DNS responder, which also knows who came later.
fn etc_files(
    bundle: &Path,
    hostname: &str,
    network: Network,
    attached: Option<&crate::network::Attached>,
    o: &CreateOptions,
) -> Result<Vec<BindMount>> {
    let mut hosts = match (network, attached) {
        (_, Some(a)) => {
            let mut h = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
            for (ip, names) in &a.hosts {
                h.push_str(&format!("{ip}\t{names}\n"));
            }
            if !a.hosts.iter().any(|(ip, _)| *ip == a.ip) {
                h.push_str(&format!("{}\t{hostname}\n", a.ip));
            }
            h
        }
        (Network::Host, None) => fs::read_to_string("/etc/hosts").unwrap_or_default(),
        (Network::None, None) => format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"),
    };
    for entry in &o.add_hosts {
        let (host, ip) = parse_add_host(entry)?;
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    let resolv = match attached {
        Some(a) => estiba_net::dns::container_resolv_conf(a.gateway),
        None if !o.dns.is_empty() => o.dns.iter().map(|d| format!("nameserver {d}\n")).collect(),
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    let mut out = Vec::new();
    for (name, content) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let path = bundle.join(name);
        fs::write(&path, content).ctx("writing", &path)?;
        out.push(BindMount {
            source: path,
            destination: format!("/etc/{name}"),
            read_only: false,
        });
    }
    Ok(out)
}

/// `--add-host HOST:IP`.
fn parse_add_host(entry: &str) -> Result<(&str, std::net::Ipv4Addr)> {
    let invalid = |why: &str| Error::Invalid {
        what: "--add-host",
        value: entry.to_string(),
        why: why.to_string(),
    };
    let (host, ip) = entry
        .split_once(':')
        .ok_or_else(|| invalid("give it as HOST:IP"))?;
    if !crate::network::valid_dns_name(host) {
        return Err(invalid("the host name is not a valid DNS name"));
    }
    let ip = ip.parse().map_err(|_| invalid("not an IPv4 address"))?;
    Ok((host, ip))
}

/// Flags that only mean something on a network, and the names and
/// addresses they carry.
fn validate_network_flags(options: &CreateOptions, builtin: bool) -> Result<()> {
    for (i, extra) in options.extra_networks.iter().enumerate() {
        let why = if builtin || matches!(extra.as_str(), "" | "none" | "host") {
            Some("none and host cannot be combined with other networks")
        } else if options.network.name() == Some(extra)
            || options.extra_networks[..i].contains(extra)
        {
            Some("named twice")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Invalid {
                what: "--network",
                value: format!("{},{}", options.network, options.extra_networks.join(",")),
                why: why.into(),
            });
        }
    }
    for alias in &options.network_aliases {
        if builtin {
            return Err(Error::Invalid {
                what: "--network-alias",
                value: alias.clone(),
                why: "needs --network NAME".into(),
            });
        }
        if !crate::network::valid_dns_name(alias) {
            return Err(Error::Invalid {
                what: "--network-alias",
                value: alias.clone(),
                why: "not a valid DNS name (letters, digits, '-' and '.')".into(),
            });
        }
    }
    for entry in &options.add_hosts {
        parse_add_host(entry)?;
    }
    for d in &options.dns {
        if d.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(Error::Invalid {
                what: "--dns",
                value: d.clone(),
                why: "not an IPv4 address".into(),
            });
        }
    }
    Ok(())
}

/// Checks the flags that can be checked before anything runs.
pub fn validate(options: &CreateOptions) -> Result<()> {
    validate_network_options(options)?;
    security_opts(&options.security_opt)?;
    mount_specs(options)?;
    for s in &options.secrets {
        crate::secrets::parse_ref(s)?;
    }
    validate_limits(options)
}

/// Checks the network flags (of a container or a pod).
pub fn validate_network_options(options: &CreateOptions) -> Result<()> {
    for spec in &options.publish {
        estiba_net::ports::parse(spec)?;
    }
    let builtin = options.network.is_builtin();
    if builtin && (!options.publish.is_empty() || options.publish_all) {
        return Err(Error::Invalid {
            what: "-p",
            value: options.publish.join(" "),
            why: "publishing ports needs a network (--network NAME)".into(),
        });
    }
    estiba_net::egress::Policy::from_flags(options.egress.as_deref(), &options.egress_allow)?;
    if builtin && (options.egress.is_some() || !options.egress_allow.is_empty()) {
        return Err(Error::Invalid {
            what: "--egress",
            value: options.egress.clone().unwrap_or_default(),
            why: "egress control needs a network (--network NAME)".into(),
        });
    }
    validate_network_flags(options, builtin)?;
    if options.ip.is_some() && builtin {
        return Err(Error::Invalid {
            what: "--ip",
            value: options.ip.clone().unwrap_or_default(),
            why: "needs --network NAME".into(),
        });
    }
    Ok(())
}

/// Checks the resource and capability flags.
fn validate_limits(options: &CreateOptions) -> Result<()> {
    if let Some(c) = options.cpus {
        if c <= 0.0 {
            return Err(Error::Invalid {
                what: "--cpus",
                value: c.to_string(),
                why: "must be above 0".into(),
            });
        }
    }
    for cap in options.cap_add.iter().chain(&options.cap_drop) {
        spec::cap_name(cap)?;
    }
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
        assert!(parse_volume("./relative:/x").is_err());
        assert!(parse_volume("/tmp:/x:zz").is_err());
        assert!(parse_volume("/tmp:x").is_err());
        assert!(parse_volume("/tmp:/x/../etc").is_err());
        assert!(matches!(
            parse_volume("/tmp:/x:ro").unwrap(),
            MountSpec::Bind {
                read_only: true,
                ..
            }
        ));
        assert!(matches!(
            parse_volume("data:/x").unwrap(),
            MountSpec::Volume {
                read_only: false,
                ..
            }
        ));
        assert_eq!(
            parse_mount("type=volume,source=data,target=/d,readonly").unwrap(),
            MountSpec::Volume {
                name: "data".into(),
                destination: "/d".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap(),
            MountSpec::Tmpfs {
                destination: "/t".into(),
                options: vec!["size=1m".into()]
            }
        );
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("type=nfs,source=a,target=/x").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=64m").unwrap(),
            MountSpec::Tmpfs {
                destination: "/run".into(),
                options: vec!["size=64m".into()]
            }
        );
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

    #[test]
    fn env_entries_resolve() {
        let out = collect_env(&["A=1".into(), "ESTIBA_SURELY_UNSET_VAR".into()], &[]).unwrap();
        assert_eq!(out, vec!["A=1".to_string()]);
    }
}
