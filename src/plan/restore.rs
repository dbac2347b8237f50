//! Compiling a KafkaRestore.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{CompileError, issue, matches_any, plan_hash};
use crate::api::KafkaRestoreSpec;
use crate::format::manifest::{RunManifest, SegmentRef};
use crate::kafka::client::ClusterMeta;
use crate::observe::PartitionOffsets;

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
}

/// A target topic the restore will create.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicToCreate {
    pub name: String,
    pub partitions: i32,
    /// -1 = broker default.
    pub replication_factor: i16,
    /// Topic-level overrides from the backup (DescribeConfigs source DYNAMIC_TOPIC_CONFIG).
    pub configs: BTreeMap<String, String>,
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
    pub hash: String,
}

/// Compiles a restore. Errors name the field: unknown topics in the filter, a mapping to a
/// missing partition, a missing target topic without `createTopics`, restoring onto a
/// non-empty topic of the same name without `purgeTopics` or an explicit `topicMapping`,
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
    if let (Some(s), Some(e)) = (pitr_start, pitr_end)
        && s > e
    {
        issues.push(issue(
            "spec.pitr",
            format!("start ({s}) is after end ({e}): swap them"),
        ));
    }
    if !spec.repartitioning.is_empty() {
        issues.push(issue("spec.repartitioning", "repartitioning is not implemented yet: remove it, or restore partition for partition (partitionMapping)"));
    }
    if spec.auto_consumer_groups || spec.offset_reset.as_ref().is_some_and(|o| o.enabled) {
        issues.push(issue(
            "spec.autoConsumerGroups",
            "consumer-group translation after a restore is not implemented yet: remove autoConsumerGroups/offsetReset; the offset map is written for a later KafkaOffsetReset",
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
    for t in m
        .topics
        .iter()
        .filter(|t| spec.topics.is_empty() || matches_any(&spec.topics, &t.name))
    {
        let target = spec.target_topic(&t.name).to_string();
        let explicit = spec.topic_mapping.contains_key(&t.name);
        let existing = facts.target.topics.get(&target);
        let target_partitions = match existing {
            Some(tt) => tt.partitions.len() as i32,
            None if spec.create_topics => {
                create.push(TopicToCreate {
                    name: target.clone(),
                    partitions: t.partition_count,
                    replication_factor: spec.default_replication_factor.unwrap_or(-1),
                    configs: t
                        .configs
                        .iter()
                        .filter(|(_, c)| c.source == 1 && !c.sensitive)
                        .filter_map(|(k, c)| c.value.clone().map(|v| (k.clone(), v)))
                        .collect(),
                });
                t.partition_count
            }
            None => {
                issues.push(issue(
                    "spec.createTopics",
                    format!("target topic {target:?} does not exist: set createTopics: true or create it ({} partitions)", t.partition_count),
                ));
                continue;
            }
        };
        if existing.is_some() && target == t.name && !explicit && !spec.purge_topics {
            let has_data = (0..target_partitions).any(|p| {
                facts
                    .target_offsets
                    .get(&(target.clone(), p))
                    .is_some_and(|o| o.high_watermark > o.log_start)
            });
            if has_data {
                issues.push(issue(
                    "spec.topicMapping",
                    format!(
                        "restoring onto {target:?}, which already holds records, would mix old and restored data: set purgeTopics: true to empty it first, or map it explicitly (topicMapping: {{{0}: {0}-restored}}, or {{{0}: {0}}} to append on purpose)",
                        t.name
                    ),
                ));
                continue;
            }
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
            if spec.purge_topics && existing.is_some() && !purge.contains(&(target.clone(), tp)) {
                purge.push((target.clone(), tp));
            }
            // All segments of the range: their indexes carry the transaction markers that
            // decide which transactional batches were committed, even outside the window.
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
            let est_records: u64 = segments.iter().filter(in_window).map(|s| s.records).sum();
            steps.push(RestorePartitionStep {
                source_topic: t.name.clone(),
                source_partition: p.partition,
                target_topic: target.clone(),
                target_partition: tp,
                from: p.covered_from,
                to: p.cut,
                estimated_records: est_records,
                estimated_bytes: segments.iter().filter(in_window).map(|s| s.raw_bytes).sum(),
                segments,
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
        estimated_records: steps.iter().map(|s| s.estimated_records).sum(),
        estimated_bytes: steps.iter().map(|s| s.estimated_bytes).sum(),
        partitions: steps,
        hash: String::new(),
    };
    plan.hash = plan_hash(&plan);
    Ok(plan)
}
