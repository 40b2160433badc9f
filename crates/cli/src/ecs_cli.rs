//! The command line of `estiba taskdef`, `estiba task` and `estiba node`:
//! clients of a control plane's ECS API (or of any ECS endpoint), which
//! find their credentials, region and endpoint as the AWS CLI does.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the ECS API is, who calls it, and how answers are shown.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The ECS API's URL (default: AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL,
    /// the profile's endpoint_url, else http://127.0.0.1:8440).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// The profile of ~/.aws/credentials and ~/.aws/config (default:
    /// AWS_PROFILE, else default); it outranks AWS_ACCESS_KEY_ID.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The region requests are signed for (default: AWS_REGION,
    /// AWS_DEFAULT_REGION, the profile's region, else us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// table, or json: the API's answer as it came.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The cluster a command is about.
#[derive(Args, Debug, Clone)]
pub struct ClusterArg {
    /// The cluster, by name or ARN.
    #[arg(long, global = true, default_value = "default")]
    pub cluster: String,
}

#[derive(Args, Debug)]
pub struct TaskdefArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: TaskdefCommand,
}

#[derive(Subcommand, Debug)]
pub enum TaskdefCommand {
    /// Register a task definition (ECS's JSON, as sent to RegisterTaskDefinition) and print its ARN.
    Register {
        /// The task definition's JSON file, or - for standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// List task definition revisions.
    #[command(alias = "list")]
    Ls {
        /// Only this family's revisions.
        #[arg(long)]
        family: Option<String>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = TaskdefStatus::Active)]
        status: TaskdefStatus,
    },
    /// Show a task definition: FAMILY (its latest ACTIVE revision), FAMILY:REVISION or an ARN.
    #[command(alias = "inspect")]
    Describe { task_definition: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskdefStatus {
    Active,
    Inactive,
}

#[derive(Args, Debug)]
pub struct TaskArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub cluster: ClusterArg,
    #[command(subcommand)]
    pub command: TaskCommand,
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Run tasks of a task definition on the cluster's nodes and print their ARNs.
    Run(TaskRunArgs),
    /// List tasks.
    #[command(alias = "list")]
    Ls {
        /// Only tasks of this family.
        #[arg(long)]
        family: Option<String>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = DesiredStatus::Running)]
        desired_status: DesiredStatus,
    },
    /// Show tasks and their containers.
    #[command(alias = "inspect")]
    Describe {
        /// Task ids or ARNs.
        #[arg(required = true)]
        tasks: Vec<String>,
    },
    /// Stop a task: its containers get their stop signal, then SIGKILL after their stopTimeout.
    Stop {
        /// A task id or ARN.
        task: String,
        /// Why, as the task's stoppedReason shows.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a task's container logs.
    Logs {
        /// A task id or ARN.
        task: String,
        /// Only this container's lines.
        #[arg(long)]
        container: Option<String>,
        /// Keep printing new lines until the task stops.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Args, Debug)]
pub struct TaskRunArgs {
    /// FAMILY (its latest ACTIVE revision), FAMILY:REVISION or an ARN.
    #[arg(long)]
    pub task_definition: String,
    /// How many tasks to start.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub count: u32,
    /// Recorded as the tasks' startedBy, for `task ls` and ListTasks filters.
    #[arg(long)]
    pub started_by: Option<String>,
    /// The launch type (default EC2: on the cluster's nodes).
    #[arg(long, value_enum, ignore_case = true)]
    pub launch_type: Option<LaunchType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchType {
    Ec2,
    Fargate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Pending,
    Stopped,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub cluster: ClusterArg,
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List the cluster's nodes (container instances): CPU in ECS units (1024 a core), memory in MiB.
    #[command(alias = "list")]
    Ls,
    /// Show nodes: resources, attributes and warnings.
    #[command(alias = "inspect")]
    Describe {
        /// Container instance ids or ARNs.
        #[arg(required = true)]
        instances: Vec<String>,
    },
    /// Drain nodes: no new tasks are placed on them.
    Drain {
        /// Container instance ids or ARNs.
        #[arg(required = true)]
        instances: Vec<String>,
        /// Make them ACTIVE again.
        #[arg(long)]
        undo: bool,
    },
}

impl TaskdefStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskdefStatus::Active => "ACTIVE",
            TaskdefStatus::Inactive => "INACTIVE",
        }
    }
}

impl LaunchType {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchType::Ec2 => "EC2",
            LaunchType::Fargate => "FARGATE",
        }
    }
}

impl DesiredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Pending => "PENDING",
            DesiredStatus::Stopped => "STOPPED",
        }
    }
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub cluster: ClusterArg,
    #[command(subcommand)]
    pub command: ServiceCommand,
}

/// How a service is deployed and where its tasks go: the flags `create`
/// and `update` share.
#[derive(Args, Debug, Default)]
pub struct DeploymentFlags {
    /// The least of the desired count kept healthy during a deployment, in percent
    /// (default 100; 0 for DAEMON).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub min_healthy_percent: Option<u32>,
    /// The most tasks during a deployment, in percent of the desired count (default 200; 100 for DAEMON).
    #[arg(long)]
    pub max_percent: Option<u32>,
    /// Fail a deployment whose tasks keep failing (the deployment circuit breaker).
    #[arg(long)]
    pub circuit_breaker: bool,
    /// With --circuit-breaker: go back to the last completed deployment when it trips.
    #[arg(long, requires = "circuit_breaker")]
    pub rollback: bool,
    /// With --circuit-breaker: trip after this many failed tasks (default: half the desired
    /// count, within 3 to 200).
    #[arg(long, requires = "circuit_breaker")]
    pub breaker_threshold: Option<u32>,
    /// Fail a deployment that has not completed after this long (e.g. 10m).
    #[arg(long)]
    pub deadline: Option<String>,
    /// A placement strategy, TYPE[:FIELD]: binpack:memory, binpack:cpu, spread:instanceId,
    /// spread:attribute:NAME, random (repeatable, applied in order; at most 5).
    #[arg(long = "placement-strategy")]
    pub strategies: Vec<String>,
    /// A placement constraint: distinctInstance, or a memberOf expression such as
    /// "attribute:zone == a" (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// Seconds after a task starts during which failing health checks do not count.
    #[arg(long)]
    pub health_check_grace_period: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create a service: keep --desired-count tasks of a task definition running (or one on
    /// each node with --daemon).
    Create {
        name: String,
        /// FAMILY (its latest ACTIVE revision), FAMILY:REVISION or an ARN.
        #[arg(long)]
        task_definition: String,
        #[arg(long, required_unless_present = "daemon")]
        desired_count: Option<u32>,
        /// One task on each ACTIVE node that meets the constraints.
        #[arg(long, conflicts_with = "desired_count")]
        daemon: bool,
        #[arg(long, value_enum, ignore_case = true)]
        launch_type: Option<LaunchType>,
        #[command(flatten)]
        deployment: DeploymentFlags,
    },
    /// List the cluster's services.
    #[command(alias = "list")]
    Ls,
    /// Show services: counts, deployments and their latest events.
    #[command(alias = "inspect")]
    Describe {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Change a service; a new task definition (or --force-new-deployment) starts a deployment.
    Update {
        name: String,
        #[arg(long)]
        task_definition: Option<String>,
        #[arg(long)]
        desired_count: Option<u32>,
        /// Replace every task, even with the same task definition.
        #[arg(long)]
        force_new_deployment: bool,
        #[command(flatten)]
        deployment: DeploymentFlags,
    },
    /// Set a service's desired count.
    Scale { name: String, count: u32 },
    /// Delete a service; --force stops its tasks without scaling to 0 first.
    #[command(alias = "delete")]
    Rm {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Scale a service on its tasks' CPU or memory use (target tracking, as Application Auto
    /// Scaling does), between --min and --max tasks.
    Autoscale {
        name: String,
        #[arg(long, required_unless_present = "off")]
        min: Option<u32>,
        #[arg(long, required_unless_present = "off")]
        max: Option<u32>,
        /// Keep the tasks' average CPU use near this, in percent of what they reserve.
        #[arg(long, required_unless_present_any = ["target_memory", "off"])]
        target_cpu: Option<f64>,
        /// Keep the tasks' average memory use near this, in percent of what they reserve.
        #[arg(long)]
        target_memory: Option<f64>,
        /// Seconds after a scale-out before the next one.
        #[arg(long, default_value_t = 60)]
        scale_out_cooldown: u32,
        /// Seconds after any scaling before a scale-in.
        #[arg(long, default_value_t = 300)]
        scale_in_cooldown: u32,
        /// Stop scaling the service (its count stays where it is).
        #[arg(long, conflicts_with_all = ["min", "max", "target_cpu", "target_memory"])]
        off: bool,
    },
    /// Show a service's events, newest first.
    Events {
        name: String,
        /// How many (at most 100 are kept).
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
    },
}
