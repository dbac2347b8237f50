//! Command-line entry points: `kafka-backup-operator {run,crd,plan,operator}` and the kubectl
//! plugin `kubectl-kafkabackup plan`. Argument parsing is clap; the work is the shared flow
//! (observe -> compile -> execute -> report).
pub mod backup_cmd;
pub mod describe_cmd;
pub mod evidence_cmd;
pub mod keys_cmd;
pub mod load;
pub mod logs_cmd;
pub mod offsets_cmd;
pub mod plan_cmd;
pub mod report;
pub mod report_cmd;
pub mod restore_cmd;
pub mod run;
pub mod runs_cmd;
pub mod runs_html;
pub mod shards;
pub mod status_cmd;
pub mod timeline;
pub mod validations;

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
    /// Execute one resource without Kubernetes: a KafkaBackup, KafkaRestore, KafkaOffsetReset,
    /// KafkaOffsetRollback or KafkaBackupValidation (the one no other resource in the files
    /// refers to, or --name).
    Run(RunArgs),
    /// Observe read-only and print what a KafkaBackup, KafkaRestore, KafkaOffsetReset,
    /// KafkaOffsetRollback or KafkaBackupValidation would do; nothing is written.
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
    /// Which resource to act on when the files hold several (default: the one that no other
    /// resource in the files refers to: a KafkaRestore given with its KafkaBackup, a
    /// KafkaOffsetRollback with its KafkaOffsetReset, a KafkaBackupValidation with its
    /// KafkaBackup).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory where storageType pvc claims are mapped: <pvc-root>/<claimName>/<subPath>.
    #[arg(long, default_value = "./kbo-pvc", env = "KBO_PVC_ROOT")]
    pub pvc_root: PathBuf,
    /// Directory of the offset snapshots a KafkaOffsetReset takes (`snapshotBeforeReset`) and
    /// a KafkaOffsetRollback reads (`snapshotRef.name`, `offsetResetRef`):
    /// <snapshot-dir>/<snapshot id>.json. The default is relative to the current directory;
    /// keep the snapshots where a later rollback will find them.
    #[arg(long, default_value = "./offset-snapshots", env = "KBO_SNAPSHOT_DIR")]
    pub snapshot_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Never draw a progress bar (structured log lines instead).
    #[arg(long)]
    pub no_progress: bool,
    /// Run one shard of a KafkaBackup's staged sharded run (`spec.execution.mode: job`): the
    /// run id its coordinator staged (`<backup>/runs/<RUN_ID>/plan.json`). Needs --shard. What
    /// each Kubernetes Job of the run executes; `run` of such a backup launches its shards this
    /// way as child processes.
    #[arg(long, value_name = "RUN_ID", requires = "shard")]
    pub plan: Option<String>,
    /// Which shard of the staged run --plan names: I/N, I from 0 to N-1.
    #[arg(long, value_name = "I/N", requires = "plan", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Stop as Ctrl-C does when standard input reaches its end (how `run` stops the shards it
    /// launched).
    #[arg(long, hide = true)]
    pub stop_on_stdin_eof: bool,
    /// A directory of Secrets mounted as files, as Kubernetes mounts a Secret volume:
    /// `<DIR>/<secret name>/<key>` holds the key's value. Added to the Secrets of the -f
    /// files (a Secret in both is an error). What a shard Job of the operator reads its run's
    /// Secrets from, so that no Secret value is copied into the Job.
    #[arg(long, value_name = "DIR", env = "KBO_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
}

/// `--shard I/N`: I < N, N >= 1.
fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: --shard takes I/N with 0 <= I < N, e.g. 0/3");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
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
    about = "What is protected, back to when, and how to restore it: status, runs, describe run, restore, backup --now, plan, offsets, validate, evidence, keys, logs, report"
)]
pub struct PluginCli {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Observe read-only and print the compiled plan. Writes nothing anywhere.
    Plan(PlanArgs),
    /// Consumer-group offsets: `show` a group, `diff` it against a snapshot or a mapping.
    /// Read only.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Run a KafkaBackupValidation now (`run -f` for it): the checks, the evidence report.
    Validate(RunArgs),
    /// Evidence reports: `verify` a report file against its detached signature.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// The complete runs of the KafkaBackup in the files: id, completion time, topics,
    /// partitions, records, bytes, gaps, what retention does with the run, S3 Object Lock (mode
    /// and retain-until, or "not locked"), and each topic's cut; `-o yaml|json` adds every
    /// partition's offset range, cut, timestamps, segments and gaps; `--html FILE` writes the
    /// timeline as a self-contained HTML page. Read only (but for FILE).
    Runs(runs_cmd::RunsArgs),
    /// The data keys of an encrypted repository: `list`, `rewrap` (rotation), `shred`.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Every KafkaBackup, KafkaRestore, KafkaBackupValidation, KafkaOffsetReset and
    /// KafkaOffsetRollback of the namespace as the API server holds them: phase, last and next
    /// run, recoverability window, records and bytes, last validation, retention, and why the
    /// last run failed. Read only.
    Status(status_cmd::StatusArgs),
    /// One thing in detail: `describe run NAME ID -f backup.yaml` (a complete run of a
    /// KafkaBackup, from storage). Read only.
    #[command(subcommand)]
    Describe(describe_cmd::DescribeCommand),
    /// The operator's log lines about one resource (its namespace and name in the line's
    /// spans), from the operator's Pods and the resource's shard Job Pods, through the API
    /// server (pods/log): time, level, message, fields. Read only.
    Logs(logs_cmd::LogsArgs),
    /// A gzip tarball for a support case: the five kinds' resources of the namespace, their
    /// Events, the operator's logs and each KafkaBackup's run manifests, every Secret value
    /// redacted. Read only.
    Report(report_cmd::ReportArgs),
    /// A KafkaRestore of the KafkaBackup NAME (read from the API server) to a point in time
    /// (--to-time) or to source offsets (--to-offsets): printed as YAML for GitOps, or created
    /// with --apply (the only write, the KafkaRestore). A --to-time outside the backup's
    /// recoverability window is refused.
    Restore(restore_cmd::RestoreArgs),
    /// `backup NAME --now`: one run of the KafkaBackup now (writes the annotation
    /// kafka.oso.sh/run-now, nothing else); --wait follows it to Completed or Failed.
    Backup(backup_cmd::BackupArgs),
}

/// `kubectl kafkabackup keys`: the data keys of an encrypted repository.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Lists every run's key document: the key-encryption key that wraps it. Read only.
    List {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Re-wraps every run's data key under `activeKeyId` (or the KMS key) of the KafkaBackup
    /// in the files: key rotation without rewriting any segment. The old key must still be in
    /// the Secret (or readable in KMS) for this.
    Rewrap {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Crypto-shredding: destroys one run's data key, so the records it stored can never be
    /// decrypted again (in any run that lists them). Refused while the run is object-locked.
    Shred {
        #[command(flatten)]
        inputs: Inputs,
        /// The run id (`kubectl kafkabackup runs`).
        #[arg(long)]
        run: String,
        /// Confirm: the data key cannot be recovered.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Lists the stored reports of the KafkaBackupValidation in the files (oldest first).
    List {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Prints one stored report (its own checksum checked): the checks table, or the JSON.
    Get {
        /// The report id (`evidence list`), e.g. `nightly-1764655200000`.
        report_id: String,
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Checks a report's detached signature (`<report>.sig`) with a public key (PEM). Fails
    /// on a changed byte, another key, or a bad signature.
    Verify {
        /// The report file (`<backup>/validations/<name>/<id>.json`, copied out of storage).
        report: PathBuf,
        /// The ECDSA P-256 public key, PEM ("BEGIN PUBLIC KEY").
        #[arg(long)]
        public_key: PathBuf,
        /// The signature file. Default: `<report>.sig`.
        #[arg(long)]
        signature: Option<PathBuf>,
    },
}

/// Where the plugin's offsets commands find the cluster.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// A broker to bootstrap from (plaintext), like kafka-consumer-groups.
    #[arg(long = "bootstrap-server", required_unless_present = "files")]
    pub bootstrap: Option<String>,
    /// Or YAML files: the kafkaCluster (with TLS/SASL from the Secrets in the files) of the
    /// resource chosen as `run` chooses it (`--name`).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// A group's committed offsets per partition, with log start, high watermark, lag and
    /// metadata, and its state and members.
    Show {
        group: String,
        /// Only these topics.
        #[arg(long = "topic")]
        topics: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// A group's committed offsets against an offset snapshot (what a rollback would change)
    /// or against an offset map (where the rule of docs/offsets.md puts the group's committed
    /// positions on the map's source topics, against what it has committed on the targets).
    Diff {
        group: String,
        /// An offset snapshot file (KafkaOffsetReset `--snapshot-dir`, a restore's snapshot).
        #[arg(long, conflicts_with = "mapping", required_unless_present = "mapping")]
        snapshot: Option<PathBuf>,
        /// An offset-map.json.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// Crates that handle credentials (S3 keys, SASL passwords, tokens) and print them, or
/// material derived from them, in their debug and trace lines: reqsign's credential providers
/// print the static S3 key pair at debug. They are capped at the level beside them, whatever
/// `RUST_LOG` says.
const QUIET: &[(&str, &str)] = &[
    ("reqsign", "warn"),
    ("opendal", "warn"),
    ("rsasl", "warn"),
    ("hyper", "info"),
    ("hyper_util", "info"),
    ("reqwest", "info"),
    ("h2", "info"),
    ("rustls", "info"),
    ("tower_http", "info"),
];

/// The tracing filter for a `RUST_LOG` value (None or empty: `info`): its directives, less any
/// that would open a [`QUIET`] crate, then a cap for each of those crates. Secrets never reach
/// the logs at any level (docs/decisions.md).
pub fn log_filter(rust_log: Option<&str>) -> String {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let user = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let mut out: Vec<String> = user
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let target = match d.split_once('=') {
                Some((t, _)) => t,
                None if LEVELS.contains(&d.to_ascii_lowercase().as_str()) => "",
                None => d,
            };
            let target = target.split('[').next().unwrap_or("");
            target.is_empty() || !QUIET.iter().any(|(q, _)| target.starts_with(q))
        })
        .map(String::from)
        .collect();
    out.extend(QUIET.iter().map(|(q, level)| format!("{q}={level}")));
    out.join(",")
}

/// Sets up tracing on stderr (RUST_LOG filters; default info; credential-handling crates
/// capped, see [`log_filter`]).
pub fn init_logging(format: LogFormat) {
    let spec = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG {spec:?} is not a valid filter ({e}); logging at info");
        tracing_subscriber::EnvFilter::new(log_filter(None))
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn credential_crates_stay_quiet_whatever_rust_log_says() {
        let f = log_filter(Some(
            "trace,reqsign_core=trace,opendal=debug,kafka_backup_operator=trace",
        ));
        assert!(f.starts_with("trace,kafka_backup_operator=trace,"), "{f}");
        assert!(
            !f.contains("reqsign_core=trace") && !f.contains("opendal=debug"),
            "{f}"
        );
        assert!(
            f.contains("reqsign=warn") && f.contains("opendal=warn"),
            "{f}"
        );
        assert!(log_filter(None).starts_with("info,"));
        assert!(log_filter(Some("  ")).starts_with("info,"));
        // the filter parses
        tracing_subscriber::EnvFilter::try_new(log_filter(Some("debug"))).unwrap();
    }
}
