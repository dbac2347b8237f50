//! `KafkaRestore` (short name `kr`): restore a backup into a Kafka cluster, optionally to a
//! point in time, with topic/partition remapping and consumer-group offset translation.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    BackupRef, CircuitBreaker, DEFAULT_RESTORE_MAX_CONCURRENT_PARTITIONS, KafkaClusterSpec,
    RateLimiting, StatusHeader, StorageSpec, default_true,
};
use super::execution::ExecutionSpec;
use super::offset_reset::ResetStrategy;

fn default_produce_acks() -> i16 {
    -1
}
fn default_produce_batch_size() -> u32 {
    1000
}
fn default_produce_timeout_ms() -> u64 {
    30_000
}
fn default_snapshot_retention_hours() -> u32 {
    24
}
fn default_restore_offset_strategy() -> ResetStrategy {
    ResetStrategy::FromMapping
}

/// Spec of a `KafkaRestore`: which backup (`backupRef`), into which cluster (`kafkaCluster`),
/// what (`topics`, `pitr`), under which names (`topicMapping`, `partitionMapping`,
/// `repartitioning`) and how (produce settings, offsets, safety switches, limits).
// clippy mistakes the repeated `type_ = ...` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate,
)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaRestore",
    plural = "kafkarestores",
    singular = "kafkarestore",
    shortname = "kr",
    namespaced,
    status = "KafkaRestoreStatus",
    derive = "PartialEq",
    doc = "Restores a Kafka backup into a cluster, optionally to a point in time."
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[kube(printcolumn(
    name = "Progress",
    type_ = "number",
    json_path = ".status.progressPercent"
))]
#[kube(printcolumn(
    name = "Records",
    type_ = "integer",
    json_path = ".status.recordsRestored"
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
#[garde(allow_unvalidated)]
pub struct KafkaRestoreSpec {
    /// The backup to restore. Required (`name`).
    #[garde(dive)]
    pub backup_ref: BackupRef,

    /// Target cluster. Required.
    #[garde(dive)]
    pub kafka_cluster: KafkaClusterSpec,

    /// Filter over the backed-up topics: names, globs (`*`, `?`), or `~regex` (anchored). Default:
    /// all topics of the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(custom(crate::api::checks::check_restore_topic_filter)))]
    pub topics: Vec<String>,

    /// Point-in-time window (inclusive) and per-partition offset bounds. Default: everything
    /// in the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub pitr: Option<PitrSpec>,

    /// Source topic -> target topic. Default: same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_mapping: BTreeMap<String, String>,

    /// Source partition -> target partition. Keys are partition numbers as strings (`"0": 1`).
    /// Default: same partition (unless `repartitioning` applies).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_mapping: BTreeMap<String, i32>,

    /// Per target topic: spread records over a different partition count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repartitioning: BTreeMap<String, Repartitioning>,

    /// Create missing target topics (partition count and configs from the backup). Default
    /// false.
    #[serde(default)]
    pub create_topics: bool,

    /// Replication factor for created topics. Default: the broker default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 1)))]
    pub default_replication_factor: Option<i16>,

    /// Empty the target partitions first (DeleteRecords up to the high watermark; the topic
    /// object stays). Default false.
    #[serde(default)]
    pub purge_topics: bool,

    /// Restore into target partitions that already hold records, after those records (ours).
    /// Without it, and without `purgeTopics`, a target partition holding records this restore
    /// did not write is refused: old and restored records would mix, and a consumer could not
    /// tell them apart. Default false.
    #[serde(default)]
    pub append_to_existing: bool,

    /// Translate and commit every consumer group from the backup's group snapshot. Default
    /// false.
    #[serde(default)]
    pub auto_consumer_groups: bool,

    /// Translate and commit the named consumer groups after the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub offset_reset: Option<RestoreOffsetReset>,

    /// Producer acks: -1 (all in-sync replicas, default), 0 or 1.
    #[serde(default = "default_produce_acks")]
    #[garde(custom(crate::api::checks::check_acks))]
    #[schemars(range(min = -1, max = 1))]
    pub produce_acks: i16,

    /// Records per produce request. Default 1000.
    #[serde(default = "default_produce_batch_size")]
    #[garde(range(min = 1))]
    pub produce_batch_size: u32,

    /// Produce request timeout, milliseconds. Default 30000.
    #[serde(default = "default_produce_timeout_ms")]
    #[garde(range(min = 1))]
    pub produce_timeout_ms: u64,

    /// Compute and show the full plan; write nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,

    /// Offset snapshot and automatic rollback around the restore.
    #[serde(default)]
    #[garde(dive)]
    pub rollback: RollbackSpec,

    /// Throughput caps; `maxConcurrentPartitions` defaults to 4 here.
    #[serde(default)]
    #[garde(dive)]
    pub rate_limiting: RateLimiting,

    /// Failure isolation for broker and storage calls.
    #[serde(default)]
    #[garde(dive)]
    pub circuit_breaker: CircuitBreaker,

    /// Where the restore keeps its own state (ours): its journal, lock, offset map and
    /// consumer-group snapshots, under `<backup>/restores/<restore>/` of this storage. Default:
    /// the backup repository itself. Set it when the restore may only read the repository
    /// (read-only credentials, object-locked or full storage): the restore then never writes
    /// to the repository (docs/format.md, "Restore state").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub state_storage: Option<StorageSpec>,

    /// Run in process (default) or as Kubernetes Jobs, and the Jobs' Pod settings (ours).
    /// Default: in process.
    #[serde(default, skip_serializing_if = "ExecutionSpec::is_default")]
    #[garde(dive)]
    pub execution: ExecutionSpec,
}

impl KafkaRestoreSpec {
    /// A spec restoring `backup_ref` into `kafka_cluster`, every other field at its default.
    pub fn new(backup_ref: BackupRef, kafka_cluster: KafkaClusterSpec) -> Self {
        KafkaRestoreSpec {
            backup_ref,
            kafka_cluster,
            topics: Vec::new(),
            pitr: None,
            topic_mapping: BTreeMap::new(),
            partition_mapping: BTreeMap::new(),
            repartitioning: BTreeMap::new(),
            create_topics: false,
            default_replication_factor: None,
            purge_topics: false,
            append_to_existing: false,
            auto_consumer_groups: false,
            offset_reset: None,
            produce_acks: default_produce_acks(),
            produce_batch_size: default_produce_batch_size(),
            produce_timeout_ms: default_produce_timeout_ms(),
            dry_run: false,
            rollback: RollbackSpec::default(),
            rate_limiting: RateLimiting::default(),
            circuit_breaker: CircuitBreaker::default(),
            state_storage: None,
            execution: ExecutionSpec::default(),
        }
    }

    /// Effective `rateLimiting.maxConcurrentPartitions` (default 4).
    pub fn max_concurrent_partitions(&self) -> u32 {
        self.rate_limiting
            .max_concurrent_partitions_or(DEFAULT_RESTORE_MAX_CONCURRENT_PARTITIONS)
    }

    /// Target topic for a source topic (`topicMapping`, default the same name).
    pub fn target_topic<'a>(&'a self, source: &'a str) -> &'a str {
        self.topic_mapping
            .get(source)
            .map(String::as_str)
            .unwrap_or(source)
    }

    /// `partitionMapping` with numeric keys. Errors name the offending key (validation catches
    /// these first).
    pub fn partition_mapping_parsed(&self) -> Result<BTreeMap<i32, i32>, String> {
        self.partition_mapping
            .iter()
            .map(|(k, v)| {
                partition_key(k).map(|p| (p, *v)).ok_or_else(|| {
                    format!("partitionMapping key {k:?} is not a non-negative partition number")
                })
            })
            .collect()
    }
}

/// A `partitionMapping` key as a source partition number: a number >= 0 (blanks around it
/// allowed), else None. The one home of that rule; validation reports a bad key with the fix.
pub fn partition_key(key: &str) -> Option<i32> {
    key.trim().parse::<i32>().ok().filter(|p| *p >= 0)
}

/// `pitr`: inclusive time window of record timestamps to restore, and per-partition source
/// offset bounds (`startOffsets` inclusive, `endOffsets` exclusive).
///
/// `startTime`/`endTime` are RFC 3339 (`2024-12-01T12:00:00Z`); `startTimestamp`/`endTimestamp`
/// are epoch milliseconds. When both forms of a bound are given, the epoch form wins. A record
/// is restored only if every bound given holds (time and offset).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.startTimestamp) || !has(self.endTimestamp) || self.startTimestamp <= self.endTimestamp",
        "message": "pitr.startTimestamp must not be after pitr.endTimestamp"
    }
]))]
#[garde(allow_unvalidated)]
pub struct PitrSpec {
    /// Window start, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_rfc3339)))]
    pub start_time: Option<String>,
    /// Window end, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_rfc3339)))]
    pub end_time: Option<String>,
    /// Window start, epoch milliseconds (wins over `startTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<i64>,
    /// Window end, epoch milliseconds (wins over `endTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<i64>,
    /// Accept a window that holds no record of the backup run (ours): the restore then
    /// writes no record and succeeds. Default false: such a window is an error that says why
    /// it is empty (a window in the future, or outside the run's timestamps).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty: bool,
    /// Per-partition first offset to restore, inclusive (ours): a list of `{topic,
    /// partition, offset}`. `topic` is the SOURCE topic name as backed up (before
    /// `topicMapping`), `partition` the source partition (before `partitionMapping`), `offset`
    /// a source offset (>= 0). A partition not listed has no lower offset bound. Each
    /// (topic, partition) at most once; the topic must be one this restore selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub start_offsets: Vec<PartitionOffsetBound>,
    /// Per-partition end offset, exclusive like Kafka's end offsets (ours): records with
    /// source offsets below it are restored, `offset` itself is not. Same shape and rules as
    /// `startOffsets`; where both name a partition, `end > start` (an empty range is an error
    /// unless `allowEmpty`). With the time bounds, a record is restored only if every given
    /// bound holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub end_offsets: Vec<PartitionOffsetBound>,
}

/// One partition's offset bound of `pitr.startOffsets` / `pitr.endOffsets` (ours).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartitionOffsetBound {
    /// Source topic name, as backed up (before `topicMapping`).
    pub topic: String,
    /// Source partition number, >= 0 (before `partitionMapping`).
    #[schemars(range(min = 0))]
    pub partition: i32,
    /// Source offset, >= 0 (records' offset space, not a count).
    #[schemars(range(min = 0))]
    pub offset: i64,
}

impl PitrSpec {
    /// Effective window start in epoch ms (`startTimestamp`, else parsed `startTime`).
    /// Errors name the field and show the expected format.
    pub fn start_ms(&self) -> Result<Option<i64>, String> {
        resolve_bound(
            self.start_timestamp,
            self.start_time.as_deref(),
            "startTime",
        )
    }
    /// Effective window end in epoch ms (`endTimestamp`, else parsed `endTime`).
    pub fn end_ms(&self) -> Result<Option<i64>, String> {
        resolve_bound(self.end_timestamp, self.end_time.as_deref(), "endTime")
    }
}

fn resolve_bound(
    epoch: Option<i64>,
    text: Option<&str>,
    field: &str,
) -> Result<Option<i64>, String> {
    if let Some(ms) = epoch {
        return Ok(Some(ms));
    }
    match text {
        None => Ok(None),
        Some(t) => crate::api::checks::parse_rfc3339_ms(t)
            .map(Some)
            .map_err(|e| format!("pitr.{field}: {e}")),
    }
}

/// `repartitioning.<targetTopic>`: write to `targetPartitions` partitions using `strategy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct Repartitioning {
    /// murmur2 (default: `murmur2(key) % N` like Kafka's default partitioner; keyless records
    /// round robin) or automatic (round robin).
    #[serde(default)]
    pub strategy: RepartitionStrategy,
    /// Partition count of the target topic, > 0. Required.
    #[garde(range(min = 1))]
    pub target_partitions: i32,
}

/// How records are spread when repartitioning.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RepartitionStrategy {
    /// `murmur2(key) % N`, Kafka's default partitioner (default).
    #[default]
    Murmur2,
    /// Round robin.
    Automatic,
}

/// `offsetReset` inside a KafkaRestore: after the data, translate the named groups' committed
/// offsets from the backup's group snapshot to the restored offsets and commit them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct RestoreOffsetReset {
    /// Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Group ids to translate and commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
    /// from-mapping (default: translate via the restore's offset mapping), to-earliest or
    /// to-latest. to-timestamp and to-offset need a KafkaOffsetReset.
    #[serde(default = "default_restore_offset_strategy")]
    pub strategy: ResetStrategy,
}

/// `rollback`: snapshot consumer offsets before the restore and optionally roll back on failure.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct RollbackSpec {
    /// Snapshot the target groups' offsets first. Default true.
    #[serde(default = "default_true")]
    pub snapshot_before_restore: bool,
    /// Restore the snapshot when the restore fails. Default false.
    #[serde(default)]
    pub auto_rollback_on_failure: bool,
    /// Keep the snapshot this many hours. Default 24.
    #[serde(default = "default_snapshot_retention_hours")]
    #[garde(range(min = 1))]
    pub snapshot_retention_hours: u32,
}

impl Default for RollbackSpec {
    fn default() -> Self {
        RollbackSpec {
            snapshot_before_restore: true,
            auto_rollback_on_failure: false,
            snapshot_retention_hours: default_snapshot_retention_hours(),
        }
    }
}

/// `status.phase` of a KafkaRestore.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RestorePhase {
    /// Accepted, not started.
    Pending,
    /// Restoring.
    Running,
    /// All data (and offsets) restored; or, for a dry run, the plan was computed.
    Completed,
    /// Failed; see `message` and conditions.
    Failed,
    /// Failed and the offset snapshot was restored (`rollback.autoRollbackOnFailure`).
    RolledBack,
}

/// Status of a KafkaRestore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRestoreStatus {
    /// Pending, Running, Completed, Failed or RolledBack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// message, conditions, observedGeneration, planHash, startTime, completionTime.
    #[serde(flatten)]
    pub common: StatusHeader,
    /// The backup run being restored (resolved from `backupRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// 0..=100, by bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    /// Records produced so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_restored: Option<u64>,
    /// Bytes produced so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_restored: Option<u64>,
    /// **ours**: records the restore plans to produce (from the backup's manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_planned: Option<u64>,
    /// **ours**: bytes the restore plans to produce (the stored batches' size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_planned: Option<u64>,
    /// Segments read so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_processed: Option<u64>,
    /// Topic being restored now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_topic: Option<String>,
    /// **ours**: the shards of the current/last sharded restore (`spec.execution.mode: job`),
    /// by index: each one's phase, Job, partition steps and progress. Absent in process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<super::execution::ShardStatus>,
    /// Current throughput, records per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_records_per_sec: Option<f64>,
    /// Current throughput, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_bytes_per_sec: Option<f64>,
    /// Estimated time to completion, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    /// Where the source->target offset mapping was stored (storage key), for from-mapping
    /// offset resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_mapping_path: Option<String>,
    /// The pre-restore offset snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,
}

/// `status.rollback` of a KafkaRestore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStatus {
    /// Snapshot id (usable in a KafkaOffsetRollback `snapshotRef.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
    /// Whether the snapshot can still be rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_available: Option<bool>,
    /// When the snapshot expires (`snapshotRetentionHours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}
