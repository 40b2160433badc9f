//! From a container record to a bundle ready for a runtime: mount the root
//! filesystem, resolve the image config and the flags against it, and write
//! the OCI spec. Done at every start, so a restarted container gets the same.

use std::fs;
use std::path::{Path, PathBuf};

use estiba_runtime::rootfs;
use estiba_runtime::spec::{
    self, BindMount, HostNamespaces, Limits, Network, RunConfig, TmpfsMount,
};
use estiba_store::{ImageRecord, Store};
use oci_spec::image::ImageConfiguration;

use crate::error::IoContext;
use crate::options::{spec_network, MountSpec};
use crate::record::{ContainerRecord, CreateOptions};
use crate::tuning::NamespaceMode;
use crate::volumes::Volumes;
use crate::{Error, Result};

pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The directories of one container, all under `containers/<id>/`.
#[derive(Clone, Debug)]
pub struct ContainerDirs {
    /// `<data>/containers/<id>`: the record, the rootfs and its upper dir,
    /// the log.
    pub root: PathBuf,
    /// `<runroot>/containers/<id>`, on a tmpfs: what a start makes anew
    /// (the bundle and the files bind-mounted from it), so each start
    /// writes no inode to the data disk for it.
    pub run: PathBuf,
}

impl ContainerDirs {
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }

    pub fn bundle(&self) -> PathBuf {
        self.run.join("bundle")
    }

    pub fn log(&self) -> PathBuf {
        self.root.join("container.log")
    }

    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// The FIFO an interactive (`-i`) container reads as stdin, or with a
    /// terminal its monitor types into the terminal: whoever attaches
    /// writes into it (the Docker API's attach).
    pub fn stdin_fifo(&self) -> PathBuf {
        self.run.join("stdin")
    }

    /// The FIFO a container with a terminal takes its window size from:
    /// its monitor reads `ROWS COLS` lines and sets them on the master
    /// (the Docker API's resize).
    pub fn resize_fifo(&self) -> PathBuf {
        self.run.join("resize")
    }

    /// Unmounts what a start mounted (secrets' tmpfs, then the rootfs).
    pub fn unmount(&self) {
        let _ = rootfs::unmount(&self.secrets());
        let _ = rootfs::unmount(&self.rootfs());
    }
}

/// What the process that will hold a container (the foreground `run`, or
/// its monitor) does before every first start, in this order: attach the
/// network and open encrypted volumes while still in the host's mount
/// namespace (where every estiba command sees the namespace's mount),
/// take a private mount namespace, mount the root filesystem. `write_bundle` follows, at each start.
pub fn set_up(
    engine: &crate::Engine,
    image: &ImageRecord,
    record: &ContainerRecord,
    dirs: &ContainerDirs,
) -> Result<()> {
    attach_network_early(engine, image, record)?;
    // Here too, so every later monitor sees the one plaintext mount.
    engine.volumes.open_for(record)?;
    estiba_net::attach::remember_host_mounts();
    rootfs::private_mount_namespace()?;
    let how = rootfs::Overlay {
        userxattr: engine.host.rootless,
        // An auto-removed container's upper dir goes with it.
        volatile: record.options.auto_remove,
    };
    mount_rootfs(&engine.store, image, dirs, how)
}

/// overlayfs over the shared layers; a flattened copy where overlay fails
/// (or when `ESTIBA_STORAGE_DRIVER=vfs` asks for it). The caller must be in a
/// private mount namespace.
pub fn mount_rootfs(
    store: &Store,
    image: &ImageRecord,
    dirs: &ContainerDirs,
    how: rootfs::Overlay,
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
        if how.volatile {
            // A volatile mount left by a kernel crash marks its workdir,
            // and overlay refuses it until the workdir is made anew.
            estiba_os::remove_tree(&work).ctx("removing", &work)?;
        }
        fs::create_dir_all(&upper).ctx("creating", &upper)?;
        fs::create_dir_all(&work).ctx("creating", &work)?;
        match rootfs::mount_overlay(&layers, &upper, &work, &root, how) {
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
    // The command itself, not the init bind-mounted in front of it.
    let program = &cfg.args[if record.options.init { 2 } else { 0 }];
    rootfs::check_command(&cfg.rootfs, program, &cfg.env)?;
    let (spec, warnings) = spec::build(&cfg, host, estiba_store::host_arch())?;
    let data =
        serde_json::to_vec(&spec).map_err(|e| Error::Record(bundle.join("config.json"), e))?;
    // Made anew at every start: a power loss loses nothing it holds.
    estiba_os::write_atomic_unsynced(&bundle.join("config.json"), &data)?;
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
    for spec in o.mounts.iter().cloned() {
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
                volumes.ready(&volume)?;
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

/// Where `--init` puts estiba's init in the container (docker puts tini
/// at /sbin/docker-init).
pub const INIT_PATH: &str = "/sbin/estiba-init";

/// The init: the static estiba-monitor, bind-mounted read-only, so it
/// runs whatever libc the image has or lacks.
fn init_mount() -> Result<BindMount> {
    let source = crate::monitor::small_monitor().ok_or_else(|| Error::Invalid {
        what: "--init",
        value: String::new(),
        why: "estiba-monitor is not beside the estiba binary (scripts/build-monitor.sh builds it)"
            .into(),
    })?;
    Ok(BindMount {
        source,
        destination: INIT_PATH.to_string(),
        read_only: true,
    })
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
    if o.tty && !env.has("TERM") {
        // As docker and podman set it for -t.
        env.set("TERM=xterm".to_string());
    }
    if !env.has("HOME") {
        env.set(format!("HOME={}", user.home));
    }
    env.extend(o.env.iter().cloned());
    let (mut mounts, tmpfs) = resolve_mounts(o, root, volumes)?;
    let command = if o.init {
        mounts.push(init_mount()?);
        [INIT_PATH.to_string(), "--init".to_string()]
            .into_iter()
            .chain(command)
            .collect()
    } else {
        command
    };
    let mut join = match &o.pod {
        Some(pod) => pod_namespaces(pod, root)?,
        None => Vec::new(),
    };
    if let (Some(a), None) = (attached, &o.pod) {
        join.push(("network".to_string(), a.netns.clone()));
    }
    join.extend(joined_namespaces(o, root)?);
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
        no_new_privileges: o.security.no_new_privileges,
        seccomp: o.security.seccomp.clone(),
        privileged: o.privileged,
        limits: Limits {
            memory: o.memory,
            cpus: o.cpus,
            pids: o.pids_limit,
            rlimits: o.ulimits.clone(),
            cpu_shares: o.tuning.cpu_shares,
            memory_reservation: o.tuning.memory_reservation,
            memory_swap: o.tuning.memory_swap,
            swappiness: o.tuning.memory_swappiness,
        },
        network,
        mounts,
        tmpfs,
        join,
        shm_size: o.tuning.shm_size,
        sysctls: o.tuning.sysctls.clone(),
        devices: crate::tuning::resolve_devices(&o.tuning)?,
        host_namespaces: HostNamespaces {
            pid: o.tuning.pid == NamespaceMode::Host,
            ipc: o.tuning.ipc == NamespaceMode::Host,
        },
        terminal: o.tty,
    })
}

/// The running pod's namespaces, found from its record next to `containers/`.
fn pod_namespaces(pod_id: &str, rootfs: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(running_pod(pod_id, rootfs)?.namespaces())
}

/// `<data>` from a container's rootfs, `<data>/containers/<id>/rootfs`.
fn data_dir(rootfs: &Path) -> &Path {
    rootfs.ancestors().nth(3).unwrap_or(Path::new("/"))
}

fn running_pod(pod_id: &str, rootfs: &Path) -> Result<crate::pods::PodRecord> {
    let path = data_dir(rootfs).join("pods").join(format!("{pod_id}.json"));
    let pod: crate::pods::PodRecord = fs::read(&path)
        .ctx("reading", &path)
        .and_then(|d| serde_json::from_slice(&d).map_err(|e| Error::Record(path.clone(), e)))?;
    if !pod.running() {
        return Err(Error::Invalid {
            what: "pod",
            value: pod.name,
            why: "is not running: `estiba pod start` it".into(),
        });
    }
    Ok(pod)
}

/// `--pid`/`--ipc` `container:ID`, or a pod's: the namespace by path,
/// from the running container's (or the pod infra's) process.
fn joined_namespaces(o: &CreateOptions, rootfs: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for (kind, file, mode) in [("pid", "pid", &o.tuning.pid), ("ipc", "ipc", &o.tuning.ipc)] {
        let pid = match mode {
            NamespaceMode::Container(id) => {
                let record = crate::record::Records::new(data_dir(rootfs)).load(id)?;
                match record.state.pid {
                    pid if pid > 0 && record.state.status == crate::Status::Running => pid,
                    _ => {
                        return Err(Error::Invalid {
                            what: "--pid/--ipc container",
                            value: record.name,
                            why: "is not running".into(),
                        })
                    }
                }
            }
            NamespaceMode::Pod(id) => {
                let pod = running_pod(id, rootfs)?;
                if kind == "pid" && !pod.share_pid {
                    return Err(Error::Invalid {
                        what: "pod",
                        value: pod.name,
                        why: "shares no pid namespace (--share pid)".into(),
                    });
                }
                pod.infra_pid
            }
            _ => continue,
        };
        out.push((
            kind.to_string(),
            PathBuf::from(format!("/proc/{pid}/ns/{file}")),
        ));
    }
    Ok(out)
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
    for (i, secret) in record.options.secrets.iter().enumerate() {
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
            destination: secret.target.clone(),
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

/// resolv.conf with `--dns-search`'s domains in place of its own search
/// line, when any are given.
fn with_search_domains(resolv: &str, domains: &[String]) -> String {
    if domains.is_empty() {
        return resolv.to_string();
    }
    let mut out: String = resolv
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("search") || l.starts_with("domain"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("search {}\n", domains.join(" ")));
    out
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
        hosts.push_str(&format!("{}\t{}\n", entry.ip, entry.name));
    }
    let resolv = match attached {
        Some(a) => estiba_net::dns::container_resolv_conf(a.gateway),
        None if !o.dns.is_empty() => o.dns.iter().map(|d| format!("nameserver {d}\n")).collect(),
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    let resolv = with_search_domains(&resolv, &o.dns_search);
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
