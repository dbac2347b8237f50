//! The normalised input of compile (the `ValidatedCluster` pattern): what
//! [`validate_backup`](super::validate::validate_backup) and
//! [`validate_restore`](super::validate::validate_restore) return once every rule has passed.
//! Defaults are applied, the PITR bounds are epoch milliseconds, partition numbers are parsed
//! and two exclusive switches are one mode, so that `plan` compiles these values and never
//! reads, parses or checks the raw spec again (a rule has its one home in `validate`).
//!
//! Plain data, built only from a spec that passed validation: no I/O, no clock. This file names
//! the resource types and the leaf values of `api`, never `validate` (no file circle).
use std::collections::BTreeMap;

use super::backup::{Compression, KafkaBackupSpec};
use super::common::{ObjectLockSpec, StorageType};
use super::execution::{ExecutionMode, ExecutionSpec};
use super::offset_reset::ResetStrategy;
use super::restore::{KafkaRestoreSpec, Repartitioning};

/// Where a backup run's fetch stops: `stopAtCurrentOffsets` and `continuous` as one mode
/// (validation refuses both at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupCut {
    /// `stopAtCurrentOffsets: true`: at the high watermarks read before any fetch (a
    /// consistent cut).
    AtCurrentOffsets,
    /// Neither set: each partition until it has caught up with its high watermark (a one-shot
    /// snapshot).
    CaughtUp,
    /// `continuous: true`: until the run is stopped.
    Continuous,
}

/// What compile needs of `execution`: how the run is executed and split. The Pod settings
/// (`resources`, `nodeSelector`, ...) are not here: they shape the Jobs, not the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execution {
    /// `mode`: in process, or as Kubernetes Jobs.
    pub mode: ExecutionMode,
    /// `shards`: Jobs per run, 1..=64 (always 1 in process).
    pub shards: u32,
    /// `backoffLimit`: retries of one shard before the run fails, 0..=20.
    pub backoff_limit: i32,
}

impl Execution {
    /// The values of `spec`, which passed validation.
    pub fn of(spec: &ExecutionSpec) -> Execution {
        Execution {
            mode: spec.mode,
            shards: spec.shards,
            backoff_limit: spec.backoff_limit,
        }
    }
}

impl Default for Execution {
    /// In process, one shard, `backoffLimit` 3: what a spec without `execution` gives.
    fn default() -> Self {
        Execution::of(&ExecutionSpec::default())
    }
}

/// A KafkaBackup that passed validation: what compiling its next run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedBackup {
    /// `topics`: names or globs.
    pub topics: Vec<String>,
    /// `excludeTopics`: names or globs removed from the selection.
    pub exclude_topics: Vec<String>,
    /// Where the fetch stops.
    pub cut: BackupCut,
    /// Segment codec.
    pub compression: Compression,
    /// Codec level, within the codec's range.
    pub compression_level: i32,
    /// Segment rotation by size, bytes.
    pub segment_max_bytes: u64,
    /// Segment rotation by age, milliseconds.
    pub segment_max_interval_ms: u64,
    /// Checkpoint interval, milliseconds; None when checkpointing is disabled.
    pub checkpoint_interval_ms: Option<u64>,
    /// Effective `rateLimiting.maxConcurrentPartitions` (default 8).
    pub max_concurrent_partitions: u32,
    /// `rateLimiting.recordsPerSec`; None when unlimited.
    pub records_per_sec: Option<u64>,
    /// `rateLimiting.bytesPerSec`; None when unlimited.
    pub bytes_per_sec: Option<u64>,
    /// `consumerGroupSnapshot`.
    pub consumer_group_snapshot: bool,
    /// `storage.s3.objectLock` when the storage is S3 (ignored for other storage types).
    pub object_lock: Option<ObjectLockSpec>,
    /// `execution`: in process, or as Jobs over how many shards.
    pub execution: Execution,
}

impl ValidatedBackup {
    /// The values of `spec`, which passed validation.
    pub(super) fn from_valid(spec: &KafkaBackupSpec) -> ValidatedBackup {
        ValidatedBackup {
            topics: spec.topics.clone(),
            exclude_topics: spec.exclude_topics.clone(),
            cut: if spec.continuous {
                BackupCut::Continuous
            } else if spec.stop_at_current_offsets {
                BackupCut::AtCurrentOffsets
            } else {
                BackupCut::CaughtUp
            },
            compression: spec.compression,
            compression_level: spec.compression_level,
            segment_max_bytes: spec.segment_max_bytes,
            segment_max_interval_ms: spec.segment_max_interval_ms,
            checkpoint_interval_ms: spec
                .checkpoint
                .enabled
                .then_some(spec.checkpoint.interval_secs * 1000),
            max_concurrent_partitions: spec.max_concurrent_partitions(),
            records_per_sec: spec.rate_limiting.records_limit(),
            bytes_per_sec: spec.rate_limiting.bytes_limit(),
            consumer_group_snapshot: spec.consumer_group_snapshot,
            object_lock: match spec.storage.storage_type {
                StorageType::S3 => spec.storage.s3.as_ref().and_then(|s| s.object_lock.clone()),
                _ => None,
            },
            execution: Execution::of(&spec.execution),
        }
    }
}

/// The consumer-group step a restore asks for (`autoConsumerGroups`, or `offsetReset` with
/// `enabled: true`), with its rollback options.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreGroups {
    /// `autoConsumerGroups: true`: every group of the backup's snapshot (`only` is empty).
    pub every_group: bool,
    /// `offsetReset.consumerGroups`: the groups to carry over; empty with `every_group`.
    pub only: Vec<String>,
    /// `offsetReset.strategy` (from-mapping, to-earliest or to-latest; default from-mapping).
    pub strategy: ResetStrategy,
    /// `rollback.snapshotBeforeRestore`.
    pub snapshot_before: bool,
    /// `rollback.autoRollbackOnFailure`.
    pub auto_rollback: bool,
    /// `rollback.snapshotRetentionHours`, hours.
    pub snapshot_retention_hours: u32,
}

/// The offset bounds of one source partition (`pitr.startOffsets`, `pitr.endOffsets`), with
/// the index of the list entry each comes from (for messages naming the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffsetBounds {
    /// First source offset restored (inclusive), and its index in `startOffsets`.
    pub start: Option<(i64, usize)>,
    /// End source offset (exclusive), and its index in `endOffsets`.
    pub end: Option<(i64, usize)>,
}

impl OffsetBounds {
    /// The source offsets `from..to` (exclusive) restored of a partition whose backup run
    /// covers `covered_from..cut`: the covered range cut by these bounds; an empty range
    /// (`from == to`) when they leave nothing of it.
    pub fn clamp(&self, covered_from: i64, cut: i64) -> (i64, i64) {
        let from = self.start.map_or(covered_from, |(s, _)| {
            s.clamp(covered_from, cut.max(covered_from))
        });
        let to = self.end.map_or(cut, |(e, _)| e.min(cut)).max(from);
        (from, to)
    }
}

/// A KafkaRestore that passed validation: what compiling it (and resuming its journal) needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRestore {
    /// `topics`: filters over the backed-up topics (names, globs, `~regex`); empty = all.
    pub topics: Vec<String>,
    /// PITR window start, epoch ms, inclusive (`startTimestamp`, else `startTime`).
    pub pitr_start_ms: Option<i64>,
    /// PITR window end, epoch ms, inclusive (`endTimestamp`, else `endTime`).
    pub pitr_end_ms: Option<i64>,
    /// `pitr.allowEmpty`: a window holding no record is accepted.
    pub allow_empty_window: bool,
    /// The fields the window's bounds come from, for messages: `spec.pitr.startTimestamp`
    /// when it is given (it wins), else `spec.pitr.startTime`; the same for the end.
    pub pitr_fields: (&'static str, &'static str),
    /// `pitr.startOffsets` / `pitr.endOffsets` by SOURCE (topic, partition): the offset
    /// bounds of each partition named there; a partition absent has none.
    pub pitr_offsets: BTreeMap<(String, i32), OffsetBounds>,
    /// `topicMapping`: source topic -> target topic.
    pub topic_mapping: BTreeMap<String, String>,
    /// `partitionMapping`, parsed: source partition -> target partition (both >= 0).
    pub partition_mapping: BTreeMap<i32, i32>,
    /// `repartitioning`: target topic -> its partition count and strategy.
    pub repartitioning: BTreeMap<String, Repartitioning>,
    /// `createTopics`.
    pub create_topics: bool,
    /// `defaultReplicationFactor` of created topics; -1 = the broker default.
    pub replication_factor: i16,
    /// `purgeTopics`.
    pub purge_topics: bool,
    /// `appendToExisting`.
    pub append_to_existing: bool,
    /// The consumer-group step after the data, if asked for.
    pub groups: Option<RestoreGroups>,
    /// `produceAcks`: -1, 0 or 1.
    pub produce_acks: i16,
    /// `produceBatchSize`, records per produce request.
    pub produce_batch_records: u32,
    /// `produceTimeoutMs`, milliseconds.
    pub produce_timeout_ms: u64,
    /// `dryRun`.
    pub dry_run: bool,
    /// Effective `rateLimiting.maxConcurrentPartitions` (default 4).
    pub max_concurrent_partitions: u32,
    /// `rateLimiting.recordsPerSec`; None when unlimited.
    pub records_per_sec: Option<u64>,
    /// `rateLimiting.bytesPerSec`; None when unlimited.
    pub bytes_per_sec: Option<u64>,
    /// `execution`: in process, or as Jobs over how many shards.
    pub execution: Execution,
}

impl ValidatedRestore {
    /// The values of `spec`, which passed validation, with its PITR bounds and parsed
    /// partition mapping (both computed by validation).
    pub(super) fn from_valid(
        spec: &KafkaRestoreSpec,
        pitr: (Option<i64>, Option<i64>),
        pitr_offsets: BTreeMap<(String, i32), OffsetBounds>,
        partition_mapping: BTreeMap<i32, i32>,
    ) -> ValidatedRestore {
        let reset = spec.offset_reset.as_ref().filter(|o| o.enabled);
        let groups = (spec.auto_consumer_groups || reset.is_some()).then(|| RestoreGroups {
            every_group: spec.auto_consumer_groups,
            only: if spec.auto_consumer_groups {
                vec![]
            } else {
                reset.map(|r| r.consumer_groups.clone()).unwrap_or_default()
            },
            strategy: reset
                .map(|r| r.strategy)
                .unwrap_or(ResetStrategy::FromMapping),
            snapshot_before: spec.rollback.snapshot_before_restore,
            auto_rollback: spec.rollback.auto_rollback_on_failure,
            snapshot_retention_hours: spec.rollback.snapshot_retention_hours,
        });
        ValidatedRestore {
            topics: spec.topics.clone(),
            pitr_start_ms: pitr.0,
            pitr_end_ms: pitr.1,
            allow_empty_window: spec.pitr.as_ref().is_some_and(|p| p.allow_empty),
            pitr_fields: pitr_fields(spec.pitr.as_ref()),
            pitr_offsets,
            topic_mapping: spec.topic_mapping.clone(),
            partition_mapping,
            repartitioning: spec.repartitioning.clone(),
            create_topics: spec.create_topics,
            replication_factor: spec.default_replication_factor.unwrap_or(-1),
            purge_topics: spec.purge_topics,
            append_to_existing: spec.append_to_existing,
            groups,
            produce_acks: spec.produce_acks,
            produce_batch_records: spec.produce_batch_size,
            produce_timeout_ms: spec.produce_timeout_ms,
            dry_run: spec.dry_run,
            max_concurrent_partitions: spec.max_concurrent_partitions(),
            records_per_sec: spec.rate_limiting.records_limit(),
            bytes_per_sec: spec.rate_limiting.bytes_limit(),
            execution: Execution::of(&spec.execution),
        }
    }

    /// The target topic of source topic `source` (`topicMapping`, default the same name).
    pub fn target_topic<'a>(&'a self, source: &'a str) -> &'a str {
        self.topic_mapping
            .get(source)
            .map(String::as_str)
            .unwrap_or(source)
    }
}

/// The fields a PITR window's start and end come from (the epoch form wins when both are
/// given, as in [`crate::api::restore::PitrSpec::start_ms`]).
fn pitr_fields(p: Option<&crate::api::restore::PitrSpec>) -> (&'static str, &'static str) {
    let epoch_start = p.is_some_and(|p| p.start_timestamp.is_some());
    let epoch_end = p.is_some_and(|p| p.end_timestamp.is_some());
    (
        if epoch_start {
            "spec.pitr.startTimestamp"
        } else {
            "spec.pitr.startTime"
        },
        if epoch_end {
            "spec.pitr.endTimestamp"
        } else {
            "spec.pitr.endTime"
        },
    )
}
