//! Compiling a KafkaRestore.
use std::collections::BTreeMap;

use serde::Serialize;

use super::repartition::{RepartitionSource, RepartitionStep};
use super::{CompileError, issue, matches_any, plan_hash};
use crate::api::KafkaRestoreSpec;
use crate::api::offset_reset::ResetStrategy;
use crate::facts::ClusterMeta;
use crate::facts::ConfigEntry;
use crate::facts::PartitionOffsets;
use crate::format::manifest::{GroupSnapshot, RunManifest, SegmentRef};

/// The topic config that decides who sets record timestamps (KIP-32).
pub const TIMESTAMP_TYPE: &str = "message.timestamp.type";

/// Everything `compile_restore` needs, observed beforehand.
#[derive(Debug, Clone)]
pub struct RestoreFacts {
    pub restore_name: String,
    /// The backup run to restore.
    pub manifest: RunManifest,
    /// Target cluster metadata.
    pub target: ClusterMeta,
    /// Offsets of the target partitions that exist.
    pub target_offsets: BTreeMap<(String, i32), PartitionOffsets>,
    /// Configs (DescribeConfigs) of the target topics that exist.
    pub target_configs: BTreeMap<String, BTreeMap<String, ConfigEntry>>,
}

/// A target topic the restore will create.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicToCreate {
    pub name: String,
    pub partitions: i32,
    /// -1 = broker default.
    pub replication_factor: i16,
    /// Topic-level overrides from the backup (DescribeConfigs source DYNAMIC_TOPIC_CONFIG),
    /// with `message.timestamp.type=CreateTime` so that the broker keeps every restored
    /// record's timestamp.
    pub configs: BTreeMap<String, String>,
    /// Configs set once every record is restored (IncrementalAlterConfigs): the source's
    /// `message.timestamp.type=LogAppendTime`, which would have made the broker stamp the
    /// restored records with the restore time.
    #[serde(default)]
    pub configs_after_data: BTreeMap<String, String>,
}

/// What a target partition holds before the restore, and so what the restore does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum TargetState {
    /// The restore creates the topic (`createTopics`).
    #[default]
    Created,
    /// The partition exists and holds no record.
    Empty,
    /// The partition holds records; `purgeTopics` deletes them first.
    Purged,
    /// The partition holds records; `appendToExisting` restores after them.
    Appended,
}

/// The work for one source partition.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePartitionStep {
    pub source_topic: String,
    pub source_partition: i32,
    pub target_topic: String,
    pub target_partition: i32,
    /// Source offsets restored: `from..to` (exclusive), filtered by the PITR window.
    pub from: i64,
    pub to: i64,
    /// Segments overlapping `from..to`, in offset order (the executor skips blocks outside the
    /// window using each segment's index).
    pub segments: Vec<SegmentRef>,
    pub estimated_records: u64,
    pub estimated_bytes: u64,
    /// What the target partition holds now, and so what the restore does to it.
    #[serde(default)]
    pub target_state: TargetState,
}

/// A compiled restore.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    pub restore_name: String,
    pub backup_name: String,
    pub backup_run_id: String,
    pub dry_run: bool,
    /// Inclusive window, epoch ms.
    pub pitr_start: Option<i64>,
    pub pitr_end: Option<i64>,
    pub create_topics: Vec<TopicToCreate>,
    /// (topic, partition) of target partitions emptied first with DeleteRecords.
    pub purge: Vec<(String, i32)>,
    pub partitions: Vec<RestorePartitionStep>,
    /// Target topics restored with `repartitioning`: one step per topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repartitioned: Vec<RepartitionStep>,
    pub produce_acks: i16,
    pub produce_batch_records: u32,
    pub produce_timeout_ms: u64,
    pub max_concurrent_partitions: u32,
    pub records_per_sec: Option<u64>,
    pub bytes_per_sec: Option<u64>,
    /// Where the offset map is written, relative to the storage root.
    pub offset_map_path: String,
    pub estimated_records: u64,
    pub estimated_bytes: u64,
    /// The backup run's consumer-group snapshot (`consumerGroupSnapshot`), what the group
    /// step translates.
    #[serde(default)]
    pub source_groups: Vec<GroupSnapshot>,
    /// The consumer-group step after the data (`autoConsumerGroups`, `offsetReset`), if any.
    #[serde(default)]
    pub groups: Option<RestoreGroupsPlan>,
    pub hash: String,
}

/// The consumer-group step of a restore: which groups, where they go, and the rollback
/// snapshot (docs/offsets.md).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreGroupsPlan {
    /// Groups to carry over; empty = every group of the snapshot (`autoConsumerGroups`).
    pub only: Vec<String>,
    /// from-mapping (translate through the offset map), to-earliest (the first restored
    /// record) or to-latest (the end of the restored range).
    pub strategy: ResetStrategy,
    /// Save the target's current offsets of those groups first (`rollback.snapshotBeforeRestore`).
    pub snapshot_before: bool,
    /// Put the snapshot back when a group's commit fails (`rollback.autoRollbackOnFailure`).
    pub auto_rollback: bool,
    /// `rollback.snapshotRetentionHours`.
    pub snapshot_retention_hours: u32,
}

/// The group step of `spec`, if it has one: `autoConsumerGroups` (every group) or
/// `offsetReset.enabled` (its `consumerGroups`, or every group when empty). Used by compile
/// and when a journal is resumed (the group options are not part of the data hash).
pub fn restore_groups_plan(spec: &KafkaRestoreSpec) -> Option<RestoreGroupsPlan> {
    let reset = spec.offset_reset.as_ref().filter(|o| o.enabled);
    if !spec.auto_consumer_groups && reset.is_none() {
        return None;
    }
    Some(RestoreGroupsPlan {
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
    })
}

/// An RFC 3339 rendering of epoch ms for messages (the number itself if out of range).
fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// Why the PITR window selects no record of the run, or None when some partition of the
/// restore has records whose timestamps meet the window (per the manifest's min/max record
/// timestamps; a window that falls between two records of a partition is not caught here).
fn empty_window(
    m: &RunManifest,
    sources: &[(&str, i32)],
    start: Option<i64>,
    end: Option<i64>,
) -> Option<String> {
    let window = format!(
        "{} .. {}",
        start.map(rfc3339).unwrap_or_else(|| "(no start)".into()),
        end.map(rfc3339).unwrap_or_else(|| "(no end)".into())
    );
    let mut span: Option<(i64, i64)> = None;
    for (topic, partition) in sources {
        let Some(p) = m
            .topics
            .iter()
            .find(|t| t.name == *topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
        else {
            continue;
        };
        let (Some(lo), Some(hi)) = (p.min_timestamp, p.max_timestamp) else {
            continue;
        };
        if start.is_none_or(|st| hi >= st) && end.is_none_or(|e| lo <= e) {
            return None;
        }
        span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    Some(match span {
        None => format!(
            "the window {window} selects nothing: the topics restored from backup run {} hold no record; remove pitr, or set pitr.allowEmpty: true",
            m.run_id
        ),
        Some((lo, hi)) => format!(
            "the window {window} holds no record of backup run {}: the records restored have timestamps from {} to {}. Widen the window, choose another run (backupRef.backupId), or set pitr.allowEmpty: true to accept an empty restore",
            m.run_id,
            rfc3339(lo),
            rfc3339(hi)
        ),
    })
}

/// Hash of the parts of a KafkaRestore spec that decide which records go where: a restore
/// whose journal carries the same hash continues (or, complete, does nothing) even when the
/// settings that do not change the data changed: rate limits, concurrency, produce batch size
/// and timeout, connection tuning, circuit breaker, dry run, and the consumer-group options
/// (applied after the data). Everything else (backup, run, topics, mappings, PITR window,
/// createTopics, purge, append, acks) is part of it.
pub fn restore_data_hash(spec: &KafkaRestoreSpec) -> String {
    let mut s = spec.clone();
    s.rate_limiting = Default::default();
    s.circuit_breaker = Default::default();
    s.produce_batch_size = 0;
    s.produce_timeout_ms = 0;
    s.dry_run = false;
    s.kafka_cluster.connection = Default::default();
    s.auto_consumer_groups = false;
    s.offset_reset = None;
    s.rollback = Default::default();
    plan_hash(&s)
}

/// Compiles a restore. Errors name the field: unknown topics in the filter, a mapping to a
/// missing partition, a missing target topic without `createTopics`, restoring onto a
/// target partition holding records without `purgeTopics` or `appendToExisting`, a target
/// topic with `message.timestamp.type=LogAppendTime`, a PITR window with no record (unless
/// `pitr.allowEmpty`),
/// options not supported yet.
pub fn compile_restore(
    spec: &KafkaRestoreSpec,
    facts: &RestoreFacts,
) -> Result<RestorePlan, CompileError> {
    let m = &facts.manifest;
    let mut issues = Vec::new();
    let pitr_start = spec
        .pitr
        .as_ref()
        .map(|p| p.start_ms())
        .transpose()
        .map_err(|e| CompileError(vec![issue("spec.pitr", e)]))?
        .flatten();
    let pitr_end = spec
        .pitr
        .as_ref()
        .map(|p| p.end_ms())
        .transpose()
        .map_err(|e| CompileError(vec![issue("spec.pitr", e)]))?
        .flatten();
    // pitr start <= end is a validation rule (api/validate.rs): specs reach compile validated.
    for target in spec.repartitioning.keys() {
        let sources: Vec<&str> = m
            .topics
            .iter()
            .filter(|t| spec.topics.is_empty() || matches_any(&spec.topics, &t.name))
            .filter(|t| spec.target_topic(&t.name) == target)
            .map(|t| t.name.as_str())
            .collect();
        if sources.is_empty() {
            let targets: Vec<&str> = m
                .topics
                .iter()
                .filter(|t| spec.topics.is_empty() || matches_any(&spec.topics, &t.name))
                .map(|t| spec.target_topic(&t.name))
                .collect();
            issues.push(issue(
                format!("spec.repartitioning.{target}"),
                format!("no topic of this restore is restored into {target:?}: keys of repartitioning are target topic names (after topicMapping); this restore writes {targets:?}"),
            ));
        }
    }
    let groups = restore_groups_plan(spec);
    if groups.is_some() && m.consumer_groups.is_empty() {
        issues.push(issue(
            if spec.auto_consumer_groups { "spec.autoConsumerGroups" } else { "spec.offsetReset" },
            format!(
                "backup run {} holds no consumer-group snapshot: back up with consumerGroupSnapshot: true (and groups that have committed offsets), or remove it",
                m.run_id
            ),
        ));
    }
    let pmap = match spec.partition_mapping_parsed() {
        Ok(p) => p,
        Err(e) => {
            issues.push(issue("spec.partitionMapping", e));
            BTreeMap::new()
        }
    };
    for (i, f) in spec.topics.iter().enumerate() {
        if !m
            .topics
            .iter()
            .any(|t| matches_any(std::slice::from_ref(f), &t.name))
        {
            let have: Vec<&str> = m.topics.iter().map(|t| t.name.as_str()).collect();
            issues.push(issue(
                format!("spec.topics[{i}]"),
                format!(
                    "{f:?} matches no topic of backup run {} (it holds {have:?})",
                    m.run_id
                ),
            ));
        }
    }
    for k in spec.topic_mapping.keys() {
        if !m.topics.iter().any(|t| &t.name == k) {
            issues.push(issue(
                format!("spec.topicMapping.{k}"),
                format!("backup run {} has no topic {k:?}", m.run_id),
            ));
        }
    }

    let mut create = Vec::new();
    let mut purge = Vec::new();
    let mut steps = Vec::new();
    let mut repartitioned: Vec<RepartitionStep> = Vec::new();
    for t in m
        .topics
        .iter()
        .filter(|t| spec.topics.is_empty() || matches_any(&spec.topics, &t.name))
    {
        let target = spec.target_topic(&t.name).to_string();
        let existing = facts.target.topics.get(&target);
        let repartition = spec.repartitioning.get(&target);
        if let (Some(r), Some(tt)) = (repartition, existing)
            && tt.partitions.len() as i32 != r.target_partitions
        {
            issues.push(issue(
                format!("spec.repartitioning.{target}.targetPartitions"),
                format!(
                    "is {} but target topic {target:?} exists with {} partitions: set targetPartitions: {}, or restore into a new topic (topicMapping with createTopics: true)",
                    r.target_partitions,
                    tt.partitions.len(),
                    tt.partitions.len()
                ),
            ));
            continue;
        }
        let target_partitions = match existing {
            Some(tt) => tt.partitions.len() as i32,
            None if spec.create_topics => {
                let mut configs: BTreeMap<String, String> = t
                    .configs
                    .iter()
                    .filter(|(_, c)| c.source == 1 && !c.sensitive)
                    .filter_map(|(k, c)| c.value.clone().map(|v| (k.clone(), v)))
                    .collect();
                // The broker must keep the backed-up timestamps while the data goes in; a
                // LogAppendTime source gets its type back once every record is restored.
                let mut after = BTreeMap::new();
                if t.configs
                    .get(TIMESTAMP_TYPE)
                    .and_then(|c| c.value.as_deref())
                    .is_some_and(|v| v.eq_ignore_ascii_case("LogAppendTime"))
                {
                    after.insert(TIMESTAMP_TYPE.to_string(), "LogAppendTime".to_string());
                }
                configs.insert(TIMESTAMP_TYPE.to_string(), "CreateTime".to_string());
                let partitions = repartition.map_or(t.partition_count, |r| r.target_partitions);
                create.push(TopicToCreate {
                    name: target.clone(),
                    partitions,
                    replication_factor: spec.default_replication_factor.unwrap_or(-1),
                    configs,
                    configs_after_data: after,
                });
                partitions
            }
            None => {
                issues.push(issue(
                    "spec.createTopics",
                    format!("target topic {target:?} does not exist: set createTopics: true or create it ({} partitions)", repartition.map_or(t.partition_count, |r| r.target_partitions)),
                ));
                continue;
            }
        };
        if let Some(cfg) = facts.target_configs.get(&target)
            && cfg
                .get(TIMESTAMP_TYPE)
                .and_then(|c| c.value.as_deref())
                .is_some_and(|v| v.eq_ignore_ascii_case("LogAppendTime"))
        {
            issues.push(issue(
                format!("spec.topicMapping.{}", t.name),
                format!(
                    "target topic {target:?} has {TIMESTAMP_TYPE}=LogAppendTime: the broker would stamp every restored record with the time of the restore and the backed-up timestamps would be lost. Set {TIMESTAMP_TYPE}=CreateTime on it for the restore (and back afterwards), or restore into a new topic with createTopics: true (the restore then sets LogAppendTime after the data)"
                ),
            ));
        }
        let mut non_empty = Vec::new();
        let mut purge_topic = false;
        if existing.is_some() {
            let written: Vec<i32> = match repartition {
                Some(_) => (0..target_partitions).collect(),
                None => t
                    .partitions
                    .iter()
                    .map(|p| pmap.get(&p.partition).copied().unwrap_or(p.partition))
                    .collect(),
            };
            for tp in written {
                if let Some(o) = facts.target_offsets.get(&(target.clone(), tp))
                    && o.high_watermark > o.log_start
                {
                    non_empty.push(format!(
                        "{tp} (offsets {}..{})",
                        o.log_start, o.high_watermark
                    ));
                }
            }
            purge_topic = spec.purge_topics;
            if !non_empty.is_empty() && !spec.purge_topics && !spec.append_to_existing {
                issues.push(issue(
                    "spec.appendToExisting",
                    format!(
                        "target topic {target:?} already holds records this restore did not write, in partitions {}: restored records would mix with them. Set purgeTopics: true to empty them first, map {1:?} to a new topic (topicMapping: {{{1}: {1}-restored}} with createTopics: true), or set appendToExisting: true to restore after them on purpose",
                        non_empty.join(", "),
                        t.name
                    ),
                ));
                continue;
            }
        }
        if let Some(r) = repartition {
            if purge_topic {
                purge.extend((0..target_partitions).map(|p| (target.clone(), p)));
            }
            let target_state = match (existing.is_some(), non_empty.is_empty()) {
                (false, _) => TargetState::Created,
                (true, true) => TargetState::Empty,
                (true, false) if purge_topic => TargetState::Purged,
                (true, false) => TargetState::Appended,
            };
            let sources: Vec<RepartitionSource> = t
                .partitions
                .iter()
                .map(|p| {
                    let (segments, estimated_records, estimated_bytes) =
                        source_segments(p, pitr_start, pitr_end);
                    RepartitionSource {
                        source_partition: p.partition,
                        from: p.covered_from,
                        to: p.cut,
                        segments,
                        estimated_records,
                        estimated_bytes,
                    }
                })
                .collect();
            let mut positions: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
            for o in m
                .consumer_groups
                .iter()
                .flat_map(|g| &g.offsets)
                .filter(|o| o.topic == t.name)
            {
                positions.entry(o.partition).or_default().push(o.offset);
            }
            for v in positions.values_mut() {
                v.sort_unstable();
                v.dedup();
            }
            repartitioned.push(RepartitionStep {
                source_topic: t.name.clone(),
                target_topic: target.clone(),
                strategy: r.strategy,
                target_partitions,
                estimated_records: sources.iter().map(|s| s.estimated_records).sum(),
                estimated_bytes: sources.iter().map(|s| s.estimated_bytes).sum(),
                sources,
                target_state,
                positions,
            });
            continue;
        }
        for p in &t.partitions {
            let tp = pmap.get(&p.partition).copied().unwrap_or(p.partition);
            if tp >= target_partitions || tp < 0 {
                issues.push(issue(
                    format!("spec.partitionMapping.{}", p.partition),
                    format!("target topic {target:?} has {target_partitions} partitions; partition {tp} does not exist"),
                ));
                continue;
            }
            if purge_topic && !purge.contains(&(target.clone(), tp)) {
                purge.push((target.clone(), tp));
            }
            let holds_records = facts
                .target_offsets
                .get(&(target.clone(), tp))
                .is_some_and(|o| o.high_watermark > o.log_start);
            let target_state = match (existing.is_some(), holds_records) {
                (false, _) => TargetState::Created,
                (true, false) => TargetState::Empty,
                (true, true) if purge_topic => TargetState::Purged,
                (true, true) => TargetState::Appended,
            };
            let (segments, estimated_records, estimated_bytes) =
                source_segments(p, pitr_start, pitr_end);
            steps.push(RestorePartitionStep {
                source_topic: t.name.clone(),
                source_partition: p.partition,
                target_topic: target.clone(),
                target_partition: tp,
                from: p.covered_from,
                to: p.cut,
                estimated_records,
                estimated_bytes,
                segments,
                target_state,
            });
        }
    }
    // Two source partitions mapped onto one target partition would interleave.
    let mut seen = BTreeMap::new();
    for s in &steps {
        if let Some(prev) = seen.insert(
            (s.target_topic.clone(), s.target_partition),
            (s.source_topic.clone(), s.source_partition),
        ) {
            issues.push(issue(
                "spec.partitionMapping",
                format!(
                    "{}-{} and {}-{} would both be restored into {}-{}: map them to different partitions",
                    prev.0, prev.1, s.source_topic, s.source_partition, s.target_topic, s.target_partition
                ),
            ));
        }
    }
    // A repartitioned target topic takes the records of one source topic only.
    for (i, r) in repartitioned.iter().enumerate() {
        let other = repartitioned[..i]
            .iter()
            .find(|o| o.target_topic == r.target_topic)
            .map(|o| o.source_topic.clone())
            .or_else(|| {
                steps
                    .iter()
                    .find(|s| s.target_topic == r.target_topic)
                    .map(|s| s.source_topic.clone())
            });
        if let Some(o) = other {
            issues.push(issue(
                format!("spec.repartitioning.{}", r.target_topic),
                format!(
                    "topics {o:?} and {:?} would both be restored into {:?}: a repartitioned topic takes one source topic; map one of them elsewhere (topicMapping)",
                    r.source_topic, r.target_topic
                ),
            ));
        }
    }
    if (pitr_start.is_some() || pitr_end.is_some())
        && !spec.pitr.as_ref().is_some_and(|p| p.allow_empty)
        && issues.is_empty()
        && let Some(why) = empty_window(
            m,
            &steps
                .iter()
                .map(|s| (s.source_topic.as_str(), s.source_partition))
                .chain(repartitioned.iter().flat_map(|r| {
                    r.sources
                        .iter()
                        .map(|s| (r.source_topic.as_str(), s.source_partition))
                }))
                .collect::<Vec<_>>(),
            pitr_start,
            pitr_end,
        )
    {
        issues.push(issue("spec.pitr", why));
    }
    if !issues.is_empty() {
        return Err(CompileError(issues));
    }
    let mut plan = RestorePlan {
        restore_name: facts.restore_name.clone(),
        backup_name: m.backup_name.clone(),
        backup_run_id: m.run_id.clone(),
        dry_run: spec.dry_run,
        pitr_start,
        pitr_end,
        create_topics: create,
        purge,
        produce_acks: spec.produce_acks,
        produce_batch_records: spec.produce_batch_size,
        produce_timeout_ms: spec.produce_timeout_ms,
        max_concurrent_partitions: spec.max_concurrent_partitions(),
        records_per_sec: spec.rate_limiting.records_limit(),
        bytes_per_sec: spec.rate_limiting.bytes_limit(),
        offset_map_path: crate::format::layout::offset_map(
            &m.backup_name,
            &facts.restore_name,
            &m.run_id,
        ),
        estimated_records: steps.iter().map(|s| s.estimated_records).sum::<u64>()
            + repartitioned
                .iter()
                .map(|r| r.estimated_records)
                .sum::<u64>(),
        estimated_bytes: steps.iter().map(|s| s.estimated_bytes).sum::<u64>()
            + repartitioned.iter().map(|r| r.estimated_bytes).sum::<u64>(),
        partitions: steps,
        repartitioned,
        source_groups: m.consumer_groups.clone(),
        groups,
        hash: String::new(),
    };
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

/// The segments a restore of partition `p` reads, with the records and bytes estimated in the
/// PITR window. All segments of the range: their indexes carry the transaction markers that
/// decide which transactional batches were committed, even outside the window.
fn source_segments(
    p: &crate::format::manifest::PartitionManifest,
    pitr_start: Option<i64>,
    pitr_end: Option<i64>,
) -> (Vec<SegmentRef>, u64, u64) {
    let segments: Vec<SegmentRef> = p
        .segments
        .iter()
        .filter(|s| s.last_offset >= p.covered_from && s.first_offset < p.cut)
        .cloned()
        .collect();
    let in_window = |s: &&SegmentRef| {
        s.records > 0
            && pitr_end.is_none_or(|e| s.min_timestamp <= e)
            && pitr_start.is_none_or(|st| s.max_timestamp >= st)
    };
    let records = segments.iter().filter(in_window).map(|s| s.records).sum();
    let bytes = segments.iter().filter(in_window).map(|s| s.raw_bytes).sum();
    (segments, records, bytes)
}
