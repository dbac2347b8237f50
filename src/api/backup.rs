//! `KafkaBackup` (short name `kb`): back up topics of a Kafka cluster to a storage location,
//! once or on a cron schedule.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CircuitBreaker, DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS, KafkaClusterSpec, RateLimiting,
    S3CredentialsSecret, StatusHeader, StorageSpec, default_true,
};
use super::execution::ExecutionSpec;

fn default_compression_level() -> i32 {
    3
}
fn default_segment_max_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_segment_max_interval_ms() -> u64 {
    60_000
}
fn default_checkpoint_interval_secs() -> u64 {
    30
}

/// Smallest accepted `segmentMaxBytes` (1 MiB).
pub const MIN_SEGMENT_MAX_BYTES: u64 = 1024 * 1024;

/// Spec of a `KafkaBackup`: what to back up (`kafkaCluster`, `topics`), where to
/// (`storage`), when (`schedule`, `timeZone`, `suspend`) and how (`stopAtCurrentOffsets` or
/// `continuous`, compression, segment rotation, retention, limits).
// clippy mistakes the repeated `type_ = ...` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate,
)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaBackup",
    plural = "kafkabackups",
    singular = "kafkabackup",
    shortname = "kb",
    namespaced,
    status = "KafkaBackupStatus",
    derive = "PartialEq",
    doc = "Backs up Kafka topics to object storage, once or on a cron schedule."
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[kube(printcolumn(
    name = "Last Backup",
    type_ = "date",
    json_path = ".status.lastBackupTime"
))]
#[kube(printcolumn(
    name = "Next Backup",
    type_ = "string",
    json_path = ".status.nextScheduledBackup"
))]
#[kube(printcolumn(
    name = "Records",
    type_ = "integer",
    json_path = ".status.recordsProcessed"
))]
#[kube(printcolumn(
    name = "Recoverable From",
    type_ = "date",
    json_path = ".status.firstRecoverabilityPoint"
))]
#[kube(printcolumn(
    name = "Recoverable To",
    type_ = "date",
    json_path = ".status.lastRecoverabilityPoint"
))]
#[kube(printcolumn(
    name = "Ready",
    type_ = "string",
    json_path = ".status.conditions[?(@.type==\"Ready\")].status"
))]
#[kube(printcolumn(
    name = "Message",
    type_ = "string",
    priority = "1",
    json_path = ".status.message"
))]
#[kube(printcolumn(
    name = "Age",
    type_ = "date",
    json_path = ".metadata.creationTimestamp"
))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.continuous) && self.continuous && has(self.stopAtCurrentOffsets) && self.stopAtCurrentOffsets)",
        "message": "continuous and stopAtCurrentOffsets are mutually exclusive: set at most one"
    },
    {
        "rule": "!(has(self.continuous) && self.continuous && has(self.schedule))",
        "message": "a continuous backup runs until stopped and cannot have a schedule: remove one"
    },
    {
        "rule": "!has(self.retention) || !has(self.retention.credentialsSecret) || (has(self.storage.storageType) && self.storage.storageType == 's3')",
        "message": "retention.credentialsSecret is an S3 key pair: it needs storage.storageType s3 (remove it for other storage types)"
    }
]))]
#[garde(allow_unvalidated)]
pub struct KafkaBackupSpec {
    /// Source cluster. Required.
    #[garde(dive)]
    pub kafka_cluster: KafkaClusterSpec,

    /// Topic names or globs (`*`, `?`, `[...]`). Required, non-empty. A literal name that does
    /// not exist on the cluster is an error at run time, not an empty success.
    #[garde(
        length(min = 1),
        inner(custom(crate::api::checks::check_topic_pattern))
    )]
    pub topics: Vec<String>,

    /// Names or globs removed from the `topics` selection. Default empty. (ours)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(custom(crate::api::checks::check_topic_pattern)))]
    pub exclude_topics: Vec<String>,

    /// Destination. Required.
    #[garde(dive)]
    pub storage: StorageSpec,

    /// Cron expression; absent = run once. `sec min hour dom month dow [year]` (seed:
    /// `"0 0 * * * * *"` = hourly); 5-field `min hour dom month dow` is also accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_cron)))]
    pub schedule: Option<String>,

    /// IANA time zone the schedule is evaluated in, e.g. `Europe/Berlin`. Default UTC. (ours)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_time_zone)))]
    pub time_zone: Option<String>,

    /// Start no new scheduled runs (a running one finishes). Default false.
    #[serde(default)]
    pub suspend: bool,

    /// Consistent cut: read every partition's high watermark first and stop there. Default
    /// false. Exclusive with `continuous`.
    #[serde(default)]
    pub stop_at_current_offsets: bool,

    /// Stream until stopped. Default false. Exclusive with `stopAtCurrentOffsets` and
    /// `schedule`.
    #[serde(default)]
    pub continuous: bool,

    /// Resumable progress. Default enabled every 30 s.
    #[serde(default)]
    #[garde(dive)]
    pub checkpoint: CheckpointSpec,

    /// Also save the committed offsets of every consumer group reading the backed-up topics.
    /// Default false.
    #[serde(default)]
    pub consumer_group_snapshot: bool,

    /// Segment compression: none, lz4, zstd (default) or keep. With zstd, batches a producer
    /// compressed with gzip, snappy or lz4 are re-compressed with zstd for storage (a restore
    /// gives them their producer's codec back); with none, lz4 and keep they are stored as
    /// fetched.
    #[serde(default)]
    pub compression: Compression,

    /// Codec level: zstd and keep 1..=22, lz4 0..=12; ignored for none. Default 3. For
    /// topics whose producers compress with lz4, snappy or gzip, level 1 takes about 35 % less
    /// CPU than 3 for about 4 % more stored bytes (bench/README.md, "Re-compression").
    #[serde(default = "default_compression_level")]
    pub compression_level: i32,

    /// Rotate a segment after this many bytes. Default 134217728 (128 MiB); minimum 1 MiB.
    #[serde(default = "default_segment_max_bytes")]
    #[garde(range(min = MIN_SEGMENT_MAX_BYTES))]
    pub segment_max_bytes: u64,

    /// Rotate a segment after this many milliseconds. Default 60000.
    #[serde(default = "default_segment_max_interval_ms")]
    #[garde(range(min = 1))]
    pub segment_max_interval_ms: u64,

    /// Keep the original offset and timestamp with each stored record (the reference writes
    /// `x-original-offset`, `x-original-timestamp`, `x-source-cluster` headers). Default true.
    #[serde(default = "default_true")]
    pub include_offset_headers: bool,

    /// Identifier of the source cluster recorded in the backup. Default: the cluster id the
    /// brokers report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster_id: Option<String>,

    /// Prune old backups after a successful run. Default disabled.
    #[serde(default)]
    #[garde(dive)]
    pub retention: RetentionSpec,

    /// Throughput caps; `maxConcurrentPartitions` defaults to 8 here.
    #[serde(default)]
    #[garde(dive)]
    pub rate_limiting: RateLimiting,

    /// Failure isolation for broker and storage calls.
    #[serde(default)]
    #[garde(dive)]
    pub circuit_breaker: CircuitBreaker,

    /// Run in process (default) or as Kubernetes Jobs, and the Jobs' Pod settings (ours).
    /// Default: in process.
    #[serde(default, skip_serializing_if = "ExecutionSpec::is_default")]
    #[garde(dive)]
    pub execution: ExecutionSpec,
}

impl KafkaBackupSpec {
    /// A run-once spec with the given cluster, topics and storage; every other field at its
    /// default (the same values deserializing a minimal YAML gives).
    pub fn new(kafka_cluster: KafkaClusterSpec, topics: Vec<String>, storage: StorageSpec) -> Self {
        KafkaBackupSpec {
            kafka_cluster,
            topics,
            exclude_topics: Vec::new(),
            storage,
            schedule: None,
            time_zone: None,
            suspend: false,
            stop_at_current_offsets: false,
            continuous: false,
            checkpoint: CheckpointSpec::default(),
            consumer_group_snapshot: false,
            compression: Compression::default(),
            compression_level: default_compression_level(),
            segment_max_bytes: default_segment_max_bytes(),
            segment_max_interval_ms: default_segment_max_interval_ms(),
            include_offset_headers: true,
            source_cluster_id: None,
            retention: RetentionSpec::default(),
            rate_limiting: RateLimiting::default(),
            circuit_breaker: CircuitBreaker::default(),
            execution: ExecutionSpec::default(),
        }
    }

    /// Effective `rateLimiting.maxConcurrentPartitions` (default 8).
    pub fn max_concurrent_partitions(&self) -> u32 {
        self.rate_limiting
            .max_concurrent_partitions_or(DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS)
    }

    /// Effective time zone name (`timeZone`, default `UTC`).
    pub fn time_zone_name(&self) -> &str {
        self.time_zone.as_deref().unwrap_or("UTC")
    }
}

/// Segment compression codec; lowercase in YAML (docs/format.md, "Segment objects").
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Store segments uncompressed.
    None,
    /// LZ4 frame format, for blocks of uncompressed batches; producer-compressed batches are
    /// stored as fetched.
    Lz4,
    /// Zstandard (default) at `compressionLevel`: blocks of uncompressed batches compressed,
    /// and batches a producer compressed with gzip, snappy or lz4 re-compressed with zstd
    /// batch by batch when that makes them smaller (a restore gives them their producer's
    /// codec back).
    #[default]
    Zstd,
    /// Zstandard for blocks of uncompressed batches, producer-compressed batches stored as
    /// fetched (the behaviour before `zstd` re-compressed them): faster backups, larger
    /// repositories.
    Keep,
}

impl Compression {
    /// Accepted `compressionLevel` range for this codec, inclusive; `None` for `none`.
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::None => None,
            Compression::Lz4 => Some((0, 12)),
            Compression::Zstd | Compression::Keep => Some((1, 22)),
        }
    }
    /// The YAML spelling, e.g. `"zstd"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Keep => "keep",
        }
    }
}

/// `checkpoint`: resumable progress of a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct CheckpointSpec {
    /// Default true. Since v1.0.0 this no longer implies `continuous`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between checkpoints. Default 30.
    #[serde(default = "default_checkpoint_interval_secs")]
    #[garde(range(min = 1))]
    pub interval_secs: u64,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        CheckpointSpec {
            enabled: true,
            interval_secs: default_checkpoint_interval_secs(),
        }
    }
}

/// `retention`: prune old backup runs after a successful run. A run is deleted when it is older
/// than `maxAgeDays` or not among the newest `keepLast` (both limits apply when both are set);
/// data still needed by a kept run is never deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.enabled) && self.enabled) || has(self.maxAgeDays) || has(self.keepLast)",
        "message": "retention.enabled needs maxAgeDays or keepLast"
    }
]))]
#[garde(allow_unvalidated)]
pub struct RetentionSpec {
    /// Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Delete runs older than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 1)))]
    pub max_age_days: Option<u32>,
    /// Keep at least the newest N runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 1)))]
    pub keep_last: Option<u32>,
    /// Report what would be deleted, delete nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// A key pair of its own for retention (ours; S3 only, the shape of
    /// `storage.s3.credentialsSecret`). Retention then lists and reads the repository, takes
    /// its lock and deletes the pruned runs' manifests, segments and indexes with this
    /// credential, so the backup's own `storage.s3.credentialsSecret` needs no delete right on
    /// data and manifests (docs/security.md, "Least privilege (S3)", gives both policies).
    /// Without it retention uses the backup's credential. Refused for other storage types
    /// (`spec.retention.credentialsSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub credentials_secret: Option<S3CredentialsSecret>,
}

/// `status.phase` of a KafkaBackup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackupPhase {
    /// Accepted; waiting for the next scheduled run (or about to start a one-off run).
    Ready,
    /// A run is in progress.
    Running,
    /// The last (one-off) run completed.
    Completed,
    /// The last run failed; see `message` and conditions.
    Failed,
}

/// Status of a KafkaBackup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBackupStatus {
    /// Ready, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// message, conditions, observedGeneration, planHash, startTime, completionTime.
    #[serde(flatten)]
    pub common: StatusHeader,
    /// Id of the current/last backup run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// When the last successful run completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Time>,
    /// Scheduled time of the last run that was started by the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// Next time the schedule fires (absent when suspended or unscheduled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_backup: Option<Time>,
    /// Records stored by the current/last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_processed: Option<u64>,
    /// Bytes stored by the current/last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_processed: Option<u64>,
    /// Segments written by the current/last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_completed: Option<u64>,
    /// Time of the last checkpoint of the current/last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint_time: Option<Time>,
    /// Whether an interrupted run can resume from its checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumable: Option<bool>,
    /// Current throughput, records per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_records_per_sec: Option<f64>,
    /// Current throughput, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_bytes_per_sec: Option<f64>,
    /// **ours**: records the current/last run plans to read (the cut's high watermarks minus
    /// the start offsets; an estimate, as compaction and transaction markers leave gaps).
    /// Absent for a continuous run, which has no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_planned: Option<u64>,
    /// **ours**: bytes the current/last run plans to read (estimate), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_planned: Option<u64>,
    /// **ours**: percent of the planned records done (0.1 steps), while running and at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    /// **ours**: estimated time left, milliseconds, at the current throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    /// **ours**: the partition being read now (`topic/partition`); absent when not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_topic: Option<String>,
    /// Result of the last retention pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionStatus>,
    /// Recent runs, newest first (bounded by the controller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<BackupRunRecord>,
    /// **ours**: the value of the `kafka.oso.sh/run-now` annotation last acted on, so one
    /// annotation value triggers exactly one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_trigger: Option<String>,
    /// **ours**: the shards of the current/last sharded run (`spec.execution.mode: job`), by
    /// index: each one's phase, Job, partitions and progress. Absent for in-process runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<super::execution::ShardStatus>,
    /// **ours**: the earliest record timestamp a point-in-time restore of this backup can
    /// reach, over the complete runs in the repository (RFC 3339, milliseconds exact: a
    /// restore with `pitr.endTime` before it restores nothing). Recomputed after every
    /// successful run and its retention pass; a failed run leaves it as it was. Absent until
    /// a complete run holds a record (docs/architecture.md, "Recoverability").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<String>,
    /// **ours**: the latest record timestamp a point-in-time restore can reach (RFC 3339,
    /// milliseconds exact: a `pitr.startTime` after it restores nothing). Data of a run still
    /// going (a continuous backup) is not in it until that run completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recoverability_point: Option<String>,
    /// **ours**: complete runs the window was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable_runs: Option<u64>,
    /// **ours**: the same window per backed-up topic, with the partitions that have gaps
    /// (offsets that could not be backed up). At most [`STATUS_TOPICS_LIMIT`] entries: topics
    /// with gaps first, then by name; the rest are counted in `topicsOmitted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicRecoverability>,
    /// **ours**: topics left out of `topics` by its bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics_omitted: Option<u64>,
}

/// Entries of `status.topics` at most (and of a topic's `partitionsWithGaps`): the status is
/// one object in etcd (1.5 MiB), rewritten whole at every status write (every 5 s while a run
/// goes), so it must not grow with the number of topics or partitions of a backup.
pub const STATUS_TOPICS_LIMIT: usize = 100;

/// One entry of `status.topics` (ours): the recoverability window of one topic over the
/// complete runs, and its partitions with gaps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicRecoverability {
    /// Topic name.
    pub name: String,
    /// Earliest record timestamp of the topic a restore can reach (RFC 3339, ms); absent
    /// when no complete run holds a record of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<String>,
    /// Latest record timestamp of the topic a restore can reach (RFC 3339, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recoverability_point: Option<String>,
    /// Partitions with a gap in some complete run (offsets inside the covered range that were
    /// deleted before they could be read: a restore of the window misses them), ascending, at
    /// most [`STATUS_TOPICS_LIMIT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions_with_gaps: Vec<i32>,
    /// Partitions with gaps left out of `partitionsWithGaps` by its bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions_with_gaps_omitted: Option<u64>,
}

/// `status.retention`: the last retention pass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionStatus {
    /// When the pass ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retention_time: Option<Time>,
    /// Runs looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspected_backups: Option<u64>,
    /// Runs eligible for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_backups: Option<u64>,
    /// Runs deleted (0 in dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_backups: Option<u64>,
    /// Bytes freed (would be freed, in dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimed_bytes: Option<u64>,
    /// Error of the pass, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs kept in a KafkaBackup's `status.history`.
pub const HISTORY_LIMIT: usize = 10;

/// Annotation that asks for one run now; its value is a token (any new value triggers once,
/// and `status.lastRunTrigger` shows the last one acted on). Set by the operator's users and
/// `kubectl kafkabackup backup NAME --now`.
pub const RUN_NOW_ANNOTATION: &str = "kafka.oso.sh/run-now";

/// One entry of `status.history`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRunRecord {
    /// Backup run id.
    pub run_id: String,
    /// Phase the run ended in (or Running).
    pub phase: BackupPhase,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Records stored.
    #[serde(default)]
    pub records: u64,
    /// Bytes stored.
    #[serde(default)]
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{Condition, ConditionStatus};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn status_serializes_flat_camel_case_and_round_trips() {
        let mut st = KafkaBackupStatus {
            phase: Some(BackupPhase::Running),
            records_processed: Some(42),
            ..Default::default()
        };
        st.common.observed_generation = Some(3);
        st.common.plan_hash = Some("abc".into());
        st.common.set_condition(
            Condition::new("Ready", ConditionStatus::Unknown).observed_generation(Some(3)),
            ts("2024-12-01T12:00:00Z"),
        );
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "phase": "Running",
                "observedGeneration": 3,
                "planHash": "abc",
                "conditions": [{
                    "type": "Ready",
                    "status": "Unknown",
                    "lastTransitionTime": "2024-12-01T12:00:00Z",
                    "observedGeneration": 3
                }],
                "recordsProcessed": 42
            })
        );
        let back: KafkaBackupStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, st);
    }
}
