//! Command-line entry points: `kafka-backup-operator {run,crd,plan,operator}` and the kubectl
//! plugin `kubectl-kafkabackup plan`. Argument parsing is clap; the work is the shared flow
//! (observe -> compile -> execute -> report).
pub mod load;
pub mod plan_cmd;
pub mod report;
pub mod run;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `kafka-backup-operator`.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-backup-operator",
    version,
    about = "Back up Kafka topics to object storage and restore them, to any point in time"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KBO_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the five CustomResourceDefinitions as YAML.
    Crd,
    /// Execute one KafkaBackup or KafkaRestore without Kubernetes.
    Run(RunArgs),
    /// Observe read-only and print what a KafkaBackup or KafkaRestore would do.
    Plan(PlanArgs),
    /// Run the Kubernetes controllers (in-cluster config, else KUBECONFIG / ~/.kube/config).
    Operator(OperatorArgs),
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Watch only these namespaces, comma-separated or repeated (default: all namespaces).
    #[arg(
        long = "namespaces",
        alias = "namespace",
        env = "KBO_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Where PersistentVolumeClaims of storageType pvc are mounted: <pvc-root>/<claimName>.
    #[arg(
        long,
        default_value = "/var/lib/kafka-backup/pvc",
        env = "KBO_PVC_ROOT"
    )]
    pub pvc_root: PathBuf,
    /// Let a KafkaRestore refer to a KafkaBackup and its Secrets in another namespace.
    #[arg(long)]
    pub allow_cross_namespace_refs: bool,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "KBO_METRICS_ADDR")]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader through a Lease (run several replicas; only the leader works).
    #[arg(long, env = "KBO_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
}

/// Inputs shared by `run` and `plan`.
#[derive(Debug, Args, Clone)]
pub struct Inputs {
    /// YAML files (multi-document): the resource, the Secrets it names, and for a restore the
    /// KafkaBackup its backupRef names. Repeat -f for several files.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Which resource to act on when the files hold several (default: the only KafkaRestore,
    /// else the only KafkaBackup).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory where storageType pvc claims are mapped: <pvc-root>/<claimName>/<subPath>.
    #[arg(long, default_value = "./kbo-pvc", env = "KBO_PVC_ROOT")]
    pub pvc_root: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Never draw a progress bar (structured log lines instead).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// `kubectl-kafkabackup` (the kubectl plugin: `kubectl kafkabackup plan -f FILE`).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-kafkabackup",
    version,
    about = "Show what a KafkaBackup or KafkaRestore will do, before it does it"
)]
pub struct PluginCli {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Observe read-only and print the compiled plan. Writes nothing anywhere.
    Plan(PlanArgs),
}

/// Sets up tracing on stderr (RUST_LOG filters; default info).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,opendal=warn".into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}
