//! Command-line structure, with docker's command names and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "estiba",
    version,
    about = "A rootless-first container platform",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Store root (default /var/lib/estiba, or $XDG_DATA_HOME/estiba rootless).
    #[arg(long, global = true, env = "ESTIBA_ROOT")]
    pub root: Option<PathBuf>,
    /// Runtime state root (default /run/estiba, or $XDG_RUNTIME_DIR/estiba rootless).
    #[arg(long, global = true, env = "ESTIBA_RUNROOT")]
    pub runroot: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace.
    #[arg(
        long = "log-level",
        global = true,
        env = "ESTIBA_LOG",
        default_value = "warn"
    )]
    pub log_level: String,
    /// The admission policy (default: /etc/estiba/policy.toml, then
    /// $XDG_CONFIG_HOME/estiba/policy.toml over it). Given before the
    /// command (`estiba --policy FILE run …`): `cluster user add` has a
    /// `--policy` of its own, an IAM policy.
    #[arg(long, env = "ESTIBA_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// List images.
    Images(ImagesArgs),
    /// Load images from a docker-archive, oci-archive or OCI layout.
    Load(LoadArgs),
    /// Import a rootfs tarball as an image.
    Import(ImportArgs),
    /// Save images to an oci-archive.
    Save(SaveArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Show containers or images as JSON.
    Inspect(InspectArgs),
    /// Run a command in a new container.
    Run(Box<RunArgs>),
    /// Create a container without starting it.
    Create(Box<RunArgs>),
    /// List containers.
    Ps(PsArgs),
    /// Show a container's logs.
    Logs(LogsArgs),
    /// Start stopped containers (detached).
    Start(ContainersArgs),
    /// Stop running containers: the stop signal, then SIGKILL after the timeout.
    Stop(StopArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Freeze all processes of running containers (the cgroup freezer).
    Pause(ContainersArgs),
    /// Thaw paused containers.
    Unpause(ContainersArgs),
    /// Give a container a new name.
    Rename(RenameArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(ContainersArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show containers' CPU, memory and process counts.
    Stats(StatsArgs),
    /// Show a container's processes.
    Top { container: String },
    /// Show what happened to containers, images, networks and volumes,
    /// as it happens (or since a time).
    Events(EventsArgs),
    /// System-wide services.
    #[command(subcommand)]
    System(SystemCommand),
    /// List a container's published ports.
    Port { container: String },
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Build an image from a Containerfile.
    Build(BuildArgs),
    /// Manage networks: bridges with DNS, published ports and egress rules, as root and rootless.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage pods: containers sharing network, IPC and hostname.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Show what this host and user can do.
    Info,
    /// Run and administer estiba's registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout { server: String },
    /// Push an image to a registry.
    Push(PushArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Sign an image in a registry (cosign's simple signing).
    Sign(SignArgs),
    /// Check an image's signatures in a registry.
    Verify(VerifyArgs),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run and administer the control plane: the ECS API, its users and state.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Join a cluster as a node and run the tasks placed on it.
    Agent(AgentArgs),
    /// Register, list and show task definitions on a cluster's ECS API.
    Taskdef(crate::ecs_cli::TaskdefArgs),
    /// Run, list, show, stop and follow the logs of a cluster's tasks.
    Task(crate::ecs_cli::TaskArgs),
    /// List, show and drain a cluster's nodes.
    Node(crate::ecs_cli::NodeArgs),
    /// Create, list, show, update, scale and delete a cluster's services.
    Service(crate::ecs_cli::ServiceArgs),
    /// Check the host, containers, images, Containerfiles and task definitions against
    /// the CIS Docker Benchmark and the OWASP Docker Top 10 (alone: the host, every
    /// container and every image).
    Audit(AuditArgs),
    /// Simulated nodes for the scheduler benchmark: they join, heartbeat and acknowledge
    /// their tasks through the agent API, and run no container.
    #[command(name = "agent-sim", hide = true)]
    AgentSim(AgentSimArgs),
    /// Unpack one layer into a directory (for benchmarks and debugging).
    #[command(name = "debug-unpack", hide = true)]
    DebugUnpack { layer: PathBuf, dest: PathBuf },
    /// Holds a rootless user's namespace (internal).
    #[command(name = "internal-pause", hide = true)]
    InternalPause,
    /// Sets up a pod's namespaces (internal).
    #[command(name = "internal-infra", hide = true)]
    InternalInfra {
        hostname: String,
        #[arg(long)]
        share_pid: bool,
        /// Join this network namespace instead of making one.
        #[arg(long)]
        netns: Option<PathBuf>,
    },
    /// A network's DNS responder (internal).
    #[command(name = "internal-dns", hide = true)]
    InternalDns {
        network: String,
        /// Serve (otherwise: start the responder in the background and exit).
        #[arg(long)]
        serve: bool,
    },
    /// A rootless container's port forwarder (internal).
    #[command(name = "internal-forward", hide = true)]
    InternalForward {
        id: String,
        /// Serve (otherwise: start the forwarder in the background and exit).
        #[arg(long)]
        serve: bool,
    },
    /// A detached container's monitor (internal).
    #[command(name = "internal-monitor", hide = true)]
    InternalMonitor {
        id: String,
        /// The exit code the small monitor hands back.
        #[arg(long)]
        resume: Option<u8>,
        #[arg(long, default_value_t = 0)]
        ran_ms: u64,
        #[arg(long, default_value_t = 100)]
        backoff_ms: u64,
    },
    /// One health check of a container (internal).
    #[command(name = "internal-health", hide = true)]
    InternalHealth { id: String },
    /// The in-process runtime's single-threaded helper (internal).
    #[command(name = "internal-libcontainer", hide = true)]
    InternalLibcontainer {
        op: String,
        state_root: PathBuf,
        bundle: PathBuf,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    Load(LoadArgs),
    Import(ImportArgs),
    Save(SaveArgs),
    #[command(alias = "remove")]
    Rm(RmiArgs),
    Tag(TagArgs),
    Inspect(InspectArgs),
    /// Remove dangling images and unreferenced content.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Archive file or OCI layout directory.
    #[arg(short, long)]
    pub input: PathBuf,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Rootfs tarball (plain, gzip or zstd).
    pub tarball: PathBuf,
    /// Name for the image, NAME[:TAG].
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to this file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove an image even if it has several names.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Containers or images (containers are looked up first).
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask for confirmation (estiba never asks; accepted for docker habits).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only show ids.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the log until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339) or a duration ago (10m, 1h).
    #[arg(long)]
    pub since: Option<String>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name for the image, NAME[:TAG] (repeatable).
    #[arg(short, long)]
    pub tag: Vec<String>,
    /// The Containerfile (default: CONTEXT/Containerfile, then CONTEXT/Dockerfile).
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// K=V for an ARG.
    #[arg(long)]
    pub build_arg: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Network for RUN steps: none or host.
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Only print the image id.
    #[arg(short, long)]
    pub quiet: bool,
    pub context: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// Create a pod and start its infra process.
    Create {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Also share the pid namespace (`--share pid`).
        #[arg(long)]
        share: Option<String>,
        /// Put the pod on a network: its containers share one address.
        #[arg(long)]
        network: Option<String>,
        /// The pod's address on its network.
        #[arg(long)]
        ip: Option<String>,
        /// Publish a port of the pod: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// Another name the pod answers to on its network.
        #[arg(long = "network-alias")]
        network_alias: Vec<String>,
        /// Resolver for names not on the network.
        #[arg(long)]
        dns: Vec<String>,
    },
    /// List pods.
    #[command(alias = "list")]
    Ls,
    /// Show pods as JSON.
    Inspect {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Start a pod and its containers.
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop a pod's containers and its infra.
    Stop {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods and their containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a secret from a file, or from standard input with `-`.
    Create { name: String, file: PathBuf },
    /// List secrets (never their content).
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove secrets no container uses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create {
        name: String,
        /// Keep its content encrypted at rest (gocryptfs; the key sealed
        /// with estiba's secrets key, destroyed by `volume rm`).
        #[arg(long)]
        encrypt: bool,
        /// The encryption backend: gocryptfs, or luks2 where the kernel
        /// has device-mapper.
        #[arg(long, value_name = "BACKEND", requires = "encrypt")]
        encryption: Option<String>,
        /// Size, for backends of fixed size (luks2); gocryptfs grows.
        #[arg(long, requires = "encrypt")]
        size: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune {
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Set an environment variable (K=V, or K to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID[:GID] or a user name from the container.
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open: the command reads what is piped to estiba.
    #[arg(short, long)]
    pub interactive: bool,
    /// A pseudo-terminal for the command (estiba's stdin must be a terminal).
    #[arg(short, long)]
    pub tty: bool,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Serve the Docker Engine API on a unix socket, for docker,
    /// docker-compose and the Docker SDKs (`DOCKER_HOST=unix://…`).
    Service(ServiceArgs),
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a request in progress; 0 runs
    /// until stopped.
    #[arg(short, long, default_value_t = 5)]
    pub timeout: u64,
    /// Where to listen: unix:///PATH, or tcp://HOST:PORT with the three
    /// TLS files. Default: /run/estiba/estiba.sock as root,
    /// $XDG_RUNTIME_DIR/estiba/estiba.sock rootless.
    pub uri: Option<String>,
    /// TCP: the server's certificate (PEM).
    #[arg(long)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TCP: the server's private key (PEM).
    #[arg(long)]
    pub tls_key: Option<std::path::PathBuf>,
    /// TCP: the CA that clients' certificates must chain to (clients are
    /// always verified, as dockerd's --tlsverify).
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Start with the events since this time: seconds since the epoch, an
    /// RFC 3339 time, or a duration before now such as 10m.
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms); one in the past prints and exits.
    #[arg(long)]
    pub until: Option<String>,
    /// KEY=VALUE, with container, event, type, image, network or volume as
    /// the key. Values of one key are alternatives; keys must all match.
    #[arg(long = "filter", short = 'f')]
    pub filters: Vec<String>,
    /// `json` (or docker's `{{json .}}`): one JSON object per line.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print one sample and exit (the only mode for now).
    #[arg(long)]
    pub no_stream: bool,
    /// Include stopped containers.
    #[arg(short, long)]
    pub all: bool,
    /// Containers (default: all running).
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    /// Accepted for docker habits; anonymous volumes arrive with volumes.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Give the container a pseudo-terminal (its output is logged from it).
    #[arg(short, long)]
    pub tty: bool,
    /// Keep the container's stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (K=V, or K to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// UID[:GID] or a user name from the image.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// no-new-privileges=false, seccomp=unconfined or seccomp=FILE.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// All capabilities, no seccomp, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Run an init as pid 1 that passes signals on and reaps orphans.
    #[arg(long)]
    pub init: bool,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Process limit (-1 for none).
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// A process limit, as docker's: nofile=1024[:4096] (soft[:hard]).
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Relative CPU weight (1024 is one share).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Soft memory limit (e.g. 32m).
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap (e.g. 1g), or -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// How readily the container's memory is swapped out (0-100).
    #[arg(long = "memory-swappiness")]
    pub memory_swappiness: Option<u64>,
    /// Size of /dev/shm (default 64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// A namespaced kernel parameter: KEY=VALUE (net.*, kernel.shm*, …).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// A host device: HOST[:CONTAINER][:PERMISSIONS] (r, w, m).
    #[arg(long)]
    pub device: Vec<String>,
    /// Pid namespace: private (the default) or host.
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: private (the default) or host.
    #[arg(long)]
    pub ipc: Option<String>,
    /// A label on the container: KEY[=VALUE] (repeatable).
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// none (the default, unless ports are published), host, or a
    /// network's name (`estiba`, the default bridge network, is made on
    /// first use; root only for now).
    #[arg(long)]
    pub network: Option<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp], ranges too.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Outbound traffic: deny or allow (default: the network's policy).
    #[arg(long)]
    pub egress: Option<String>,
    /// Allow outbound traffic to CIDR[:PORT[/tcp|udp]] (repeatable; implies deny for the rest).
    #[arg(long = "egress-allow")]
    pub egress_allow: Vec<String>,
    /// The container's address on its network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Another name the container answers to on its network (repeatable).
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// Add HOST:IP to the container's /etc/hosts (repeatable).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Resolver for names not on the network (repeatable). On a network,
    /// the network's DNS forwards to it; otherwise it goes in resolv.conf.
    #[arg(long)]
    pub dns: Vec<String>,
    /// A search domain for short names (repeatable).
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Bind mount HOST:CONTAINER[:ro], or named volume NAME:CONTAINER[:ro].
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs: CONTAINER[:size=64m,mode=1777].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long)]
    pub mount: Vec<String>,
    /// Signal `stop` sends first (default: the image's STOPSIGNAL, else TERM).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Join a pod: its network, IPC and UTS namespaces.
    #[arg(long)]
    pub pod: Option<String>,
    /// Give the container a secret: NAME[,target=PATH] (at /run/secrets/NAME).
    #[arg(long)]
    pub secret: Vec<String>,
    /// Health check command, run with /bin/sh -c inside the container.
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Time a health check may take.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures before unhealthy.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Grace period during which failures do not count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable the image's HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Runtime: libcontainer (in-process), an OCI runtime name (runc, crun, youki) or a path.
    #[arg(long, env = "ESTIBA_RUNTIME")]
    pub runtime: Option<String>,
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Serve the ECS API (awsJson1.1, SigV4) on the state store.
    Serve(Box<ClusterServeArgs>),
    /// Manage the API's users and their access keys.
    #[command(subcommand)]
    User(ClusterUserCommand),
    /// Manage join tokens for nodes.
    #[command(subcommand)]
    Token(ClusterTokenCommand),
    /// Manage the secrets containers name in `secrets[].valueFrom`.
    #[command(subcommand)]
    Secret(ClusterSecretCommand),
    /// The admission policy RegisterTaskDefinition, RunTask and CreateService enforce.
    #[command(subcommand)]
    Policy(ClusterPolicyCommand),
    /// Start a control plane on SQLite and an agent on this machine; print the endpoint and
    /// an admin key.
    Up(ClusterUpArgs),
    /// Copy a stopped control plane's whole state from SQLite into an empty etcd cluster,
    /// and verify the copy with a checksum over every key.
    Migrate {
        /// sqlite:DIR, the control plane's directory (sqlite alone: the default one).
        #[arg(long)]
        from: String,
        /// etcd://HOST:PORT[,HOST:PORT…].
        #[arg(long)]
        to: String,
    },
    /// Stop what `cluster up` started, and the tasks its agent runs.
    Down {
        #[arg(long)]
        data: Option<PathBuf>,
        /// Only remove the tasks in this estiba root (how `down` clears the
        /// FARGATE capacity's root, in that root's own user namespace).
        #[arg(long, hide = true)]
        tasks_only: bool,
    },
}

#[derive(Args, Debug)]
pub struct ClusterUpArgs {
    #[arg(long, default_value = "127.0.0.1:8440")]
    pub addr: String,
    /// The control plane's directory (default DATA/cluster).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also write an `estiba` profile into ~/.aws/config and ~/.aws/credentials, so that
    /// `aws --profile estiba ecs …` reaches this control plane.
    #[arg(long)]
    pub write_aws_profile: bool,
}

/// Where the control plane keeps its state.
#[derive(Args, Debug, Clone)]
pub struct ClusterStateArgs {
    /// The control plane's directory: the SQLite store, the sealing key, the audit log
    /// (default DATA/cluster).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// sqlite, or etcd://HOST:PORT[,HOST:PORT…].
    #[arg(long, default_value = "sqlite")]
    pub store: String,
}

#[derive(Args, Debug)]
pub struct AgentSimArgs {
    #[arg(long, value_delimiter = ',', required = true)]
    pub server: Vec<String>,
    #[arg(long)]
    pub token: String,
    #[arg(long, default_value = "default")]
    pub cluster: String,
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Each node's CPU units.
    #[arg(long, default_value_t = 4096)]
    pub cpu: i64,
    /// Each node's MiB.
    #[arg(long, default_value_t = 16384)]
    pub memory: i64,
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Each node's heartbeat interval (the control plane's --heartbeat).
    #[arg(long, default_value = "10s")]
    pub heartbeat: String,
    /// Report each placed task RUNNING.
    #[arg(long)]
    pub ack: bool,
}

#[derive(Args, Debug)]
pub struct ClusterServeArgs {
    #[arg(long, default_value = "127.0.0.1:8440")]
    pub addr: String,
    /// Where the other replicas reach this one's API (default: --addr,
    /// unless it is 0.0.0.0 or [::]); they watch the leader's to take over
    /// at once when its process dies.
    #[arg(long, value_name = "ADDR:PORT")]
    pub advertise: Option<String>,
    #[command(flatten)]
    pub state: ClusterStateArgs,
    /// Serve HTTPS with this certificate (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The region ARNs name.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The account ARNs name.
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    /// How often agents heartbeat; three missed make a node disconnected.
    #[arg(long, default_value = "10s")]
    pub heartbeat: String,
    /// How long a disconnected node's tasks wait before they are STOPPED.
    #[arg(long, default_value = "60s")]
    pub lost_grace: String,
    /// How long a service's task without health checks must run before it
    /// counts as healthy (ECS's fixed 40 s).
    #[arg(long, default_value = "40s")]
    pub task_healthy_after: String,
    /// Seed placement: the same seed and requests give the same layout
    /// (default: a new one at each start).
    #[arg(long)]
    pub placement_seed: Option<u64>,
    /// The leader's lease among replicas sharing one store: how soon
    /// another leads after the leader dies.
    #[arg(long, default_value = "2s")]
    pub leader_ttl: String,
    /// How often target-tracking scaling looks at the services' CPU and memory use.
    #[arg(long, default_value = "15s")]
    pub autoscale_every: String,
    /// Run FARGATE tasks on this machine, as the control plane's own
    /// capacity, in the estiba root it is started with (--root, --runroot).
    #[arg(long)]
    pub fargate: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClusterSecretCommand {
    /// Create a secret from standard input (or --from-file); the value is sealed at rest.
    Create {
        /// Its name; a task's valueFrom names it, or an ARN ending in it.
        name: String,
        #[arg(long)]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        state: ClusterStateArgs,
    },
    /// List the secrets' names (never their values).
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        state: ClusterStateArgs,
    },
    /// Remove a secret.
    Rm {
        name: String,
        #[command(flatten)]
        state: ClusterStateArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterTokenCommand {
    /// Print a join token for `estiba agent --token`.
    Create {
        /// How long the token lets nodes join (e.g. 30m, 1h, 2d).
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[command(flatten)]
        state: ClusterStateArgs,
    },
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The control plane's URL(s), comma-separated: each call goes to the first that answers.
    #[arg(long, value_delimiter = ',', required = true)]
    pub server: Vec<String>,
    /// PEM file of the CA that an https:// control plane's certificate chains to.
    #[arg(long = "ca-cert", env = "ESTIBA_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// A join token from `estiba cluster token create`; needed only the first time.
    #[arg(long, env = "ESTIBA_JOIN_TOKEN")]
    pub token: Option<String>,
    /// The cluster to join.
    #[arg(long, default_value = "default", env = "ECS_CLUSTER")]
    pub cluster: String,
    /// A custom attribute of this node, KEY=VALUE (repeatable).
    #[arg(long = "attribute")]
    pub attributes: Vec<String>,
    /// How often the tasks' CPU and memory use is sampled for target-tracking scaling.
    #[arg(long, default_value = "10s")]
    pub usage_every: String,
    /// default, always, once or prefer-cached, as ECS's agent.
    #[arg(long, env = "ECS_IMAGE_PULL_BEHAVIOR", default_value = "default")]
    pub image_pull_behavior: String,
    /// Where the agent's API (task logs, for the control plane) listens;
    /// 0.0.0.0 means the node's address. ECS's agent uses 51678.
    #[arg(long, default_value = "0.0.0.0:51678")]
    pub listen: std::net::SocketAddr,
    /// Offer at most this much memory (MiB) to tasks (default: all of it).
    #[arg(long)]
    pub memory: Option<i64>,
    /// Offer at most these CPU units (1024 a core) to tasks (default: every core).
    #[arg(long)]
    pub cpu: Option<i64>,
    /// Memory (MiB) kept back from tasks, as ECS_RESERVED_MEMORY.
    #[arg(long, env = "ECS_RESERVED_MEMORY", default_value_t = 0)]
    pub reserved_memory: i64,
    /// Registry mirrors, in podman's containers-registries.conf(5) format.
    #[arg(long)]
    pub registries_conf: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterUserCommand {
    /// Create a user and print their first access key (IAM's CreateAccessKey JSON).
    Add {
        name: String,
        /// admin, operator, readonly, or a file holding an IAM policy document.
        #[arg(long, default_value = "readonly")]
        policy: String,
        #[command(flatten)]
        state: ClusterStateArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegistryKeyCommand {
    /// Issue an access key to an existing user; printed once, in the JSON
    /// shape of IAM's CreateAccessKey.
    Create { user: String },
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Serve the OCI distribution API (and its token endpoint).
    Serve(ServeArgs),
    /// Manage the registry's users.
    #[command(subcommand)]
    User(RegistryUserCommand),
    /// Create, list, inspect and delete repositories and their policies.
    #[command(subcommand, alias = "repository")]
    Repo(RegistryRepoCommand),
    /// Access keys for the ECR API (SigV4), issued to registry users.
    #[command(subcommand)]
    Key(RegistryKeyCommand),
    /// Remove blobs no manifest references (older than the grace window).
    Gc {
        #[arg(long)]
        dry_run: bool,
        /// Spare unreferenced blobs used within this many seconds.
        #[arg(long, default_value_t = 3600)]
        grace: u64,
    },
    /// Apply repositories' lifecycle policies now.
    Lifecycle {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these repositories (default: all).
        repositories: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// The registry's configuration (TOML): auth, policies, TLS, GC.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum RegistryUserCommand {
    /// Add a user, or replace one's password.
    Add {
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// May do everything.
        #[arg(long)]
        admin: bool,
        /// Groups, for policies.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Remove a user.
    #[command(alias = "remove")]
    Rm { name: String },
    /// List users.
    #[command(alias = "list")]
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum RegistryRepoCommand {
    /// Create a repository, or change its policy.
    Create(RepoArgs),
    /// List repositories.
    #[command(alias = "list")]
    Ls,
    /// Show a repository's policy and tags as JSON.
    Inspect { name: String },
    /// Delete a repository: its manifests, tags and policy.
    #[command(alias = "remove")]
    Rm { name: String },
}

#[derive(Args, Debug)]
pub struct RepoArgs {
    pub name: String,
    /// Tags cannot be moved once pushed.
    #[arg(long)]
    pub immutable_tags: bool,
    /// Tags matching this glob stay mutable (repeatable).
    #[arg(long = "mutable-tag")]
    pub mutable_tags: Vec<String>,
    /// Serve only manifests signed by a trusted key.
    #[arg(long)]
    pub require_signature: bool,
    /// A PEM public key trusted for signatures (repeatable).
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<PathBuf>,
    /// Audit each pushed image; its findings are kept beside it as a referrer artifact.
    #[arg(long)]
    pub scan_on_push: bool,
    /// With --scan-on-push: refuse pushes with findings of this severity (repeatable:
    /// critical, high, medium, low, info).
    #[arg(long = "block-on")]
    pub block_on: Vec<String>,
    /// Lifecycle: expire untagged images pushed more than N days ago.
    #[arg(long)]
    pub expire_untagged_days: Option<u64>,
    /// Lifecycle: keep only the last COUNT images tagged PREFIX* (PREFIX=COUNT, repeatable).
    #[arg(long = "keep-last")]
    pub keep_last: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Verify TLS certificates; false also allows plain HTTP.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry, as host[:port].
    pub server: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// A local image.
    pub image: String,
    /// Where to push it (default: the image's own name).
    pub destination: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    pub image: String,
    /// Refuse the image unless it is signed by --key.
    #[arg(long)]
    pub verify: bool,
    /// A PEM public key (repeatable).
    #[arg(long)]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    pub image: String,
    /// A PEM PKCS#8 private key (ECDSA P-256 or Ed25519).
    #[arg(long)]
    pub key: PathBuf,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub image: String,
    /// A PEM public key (repeatable).
    #[arg(long, required = true)]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    #[command(flatten)]
    pub report: AuditReportArgs,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check this host: CIS sections 1-3 as they apply to estiba.
    Host {
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// Check a registry: TLS and anonymous push, probed over HTTP; when estiba serves it
    /// from this host, also its policies, repositories' immutability, lifecycle and
    /// signatures, and garbage collection.
    Registry {
        /// https://HOST:PORT, http://HOST:PORT, or HOST:PORT (HTTPS tried first).
        url: String,
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// Check the cluster's control plane as it runs here: its store (SQLite, or how many
    /// etcd members), TLS, the agents' listen addresses, the audit log and the sealing key.
    Cluster {
        /// The control plane's directory (default: the running replica's, else DATA/cluster).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// List the rules, with their CIS, OWASP, Dockle, Trivy and Hadolint references.
    Rules {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Check Containerfiles (or Dockerfiles); findings carry their line.
    Containerfile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// Check local images: config, history and the merged file system.
    Image {
        #[arg(required = true)]
        images: Vec<String>,
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// Check containers, from their settings and, when running, their processes.
    Container {
        #[arg(required = true)]
        containers: Vec<String>,
        #[command(flatten)]
        report: AuditReportArgs,
    },
    /// Admission policies: what a policy would refuse.
    #[command(subcommand)]
    Policy(AuditPolicyCommand),
    /// Check task definitions: files (RegisterTaskDefinition's or DescribeTaskDefinition's
    /// JSON), or FAMILY[:REVISION] described by the ECS API (AWS_ENDPOINT_URL_ECS and the
    /// AWS CLI's credentials); findings carry a JSON pointer and line.
    Taskdef {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A registry images may come from (host or host:port; docker.io for
        /// Docker Hub). Repeatable; none given: registries are not checked.
        #[arg(long = "trust-registry")]
        trusted: Vec<String>,
        #[command(flatten)]
        report: AuditReportArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterPolicyCommand {
    /// Set the policy from a TOML file (the same shape as the engine's policy.toml).
    Set {
        file: PathBuf,
        #[command(flatten)]
        state: ClusterStateArgs,
    },
    /// Print the policy in force.
    Show {
        #[command(flatten)]
        state: ClusterStateArgs,
    },
    /// Remove the policy: nothing is refused.
    Rm {
        #[command(flatten)]
        state: ClusterStateArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditPolicyCommand {
    /// Show what the policy (--policy, or the default files) would refuse and
    /// warn about: a Containerfile, a task definition (.json) or a local image.
    Test {
        subject: String,
        /// For task definitions: trusted registries, as for `audit taskdef`.
        #[arg(long = "trust-registry")]
        trusted: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct AuditReportArgs {
    /// table, json or sarif.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Report only findings at or above this severity: info, low, medium, high, critical.
    #[arg(long, default_value = "info")]
    pub severity: String,
    /// Exit with this code when findings at or above --severity remain.
    #[arg(long, default_value_t = 0)]
    pub exit_code: u8,
    /// Accepted findings (default: ./.estibaignore, if it exists).
    #[arg(long)]
    pub ignore_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a signing key pair: PREFIX.key (private, 0600) and PREFIX.pub.
    Generate {
        #[arg(long, default_value = "estiba")]
        out: PathBuf,
        /// ecdsa-p256 or ed25519.
        #[arg(long = "type", default_value = "ecdsa-p256")]
        kind: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        name: String,
        /// IPv4 subnet, a.b.c.d/len (default: the next free 10.90.N.0/24).
        #[arg(long)]
        subnet: Option<String>,
        /// Default: the subnet's first address.
        #[arg(long)]
        gateway: Option<String>,
        /// No route out: only the network's own containers reach each other.
        #[arg(long)]
        internal: bool,
        /// Default egress of the network's containers: deny or allow.
        #[arg(long)]
        egress: Option<String>,
        /// Default allowed destinations, CIDR[:PORT[/tcp|udp]] (repeatable).
        #[arg(long = "egress-allow")]
        egress_allow: Vec<String>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks and their containers as JSON.
    Inspect { names: Vec<String> },
    /// Remove networks no container uses.
    #[command(alias = "remove")]
    Rm { names: Vec<String> },
    /// Remove every network no container uses.
    Prune,
    /// Put a container on one more network (at once if it runs).
    Connect {
        network: String,
        container: String,
        /// Another name the container answers to on this network.
        #[arg(long)]
        alias: Vec<String>,
        /// The container's address on this network.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Take a container off a network it joined besides its first.
    Disconnect { network: String, container: String },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Help must describe what is built, not what once was missing
    /// (`network --help` said "as root for now" long after rootless
    /// networks landed).
    #[test]
    fn help_texts_promise_nothing_stale() {
        fn walk(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
            let texts = [cmd.get_about(), cmd.get_long_about()];
            for text in texts.into_iter().flatten() {
                let text = text.to_string().to_lowercase();
                if ["for now", "not yet", "todo"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    found.push(format!("{path}: {text}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = Vec::new();
        walk(&super::Cli::command(), "estiba", &mut found);
        assert!(found.is_empty(), "{found:#?}");
    }
}
