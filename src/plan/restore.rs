//! Compiling a KafkaRestore from its validated input ([`ValidatedRestore`]) and the observed
//! facts ([`RestoreFacts`]); the data hash that lets a journal be resumed.
use std::collections::BTreeMap;

use serde::Serialize;

use super::recoverability::{Window, partition_window, rfc3339, run_window};
use super::repartition::{RepartitionSource, RepartitionStep};
use super::{CompileError, PlanExecution, issue, matches_any, plan_execution, plan_hash};
use crate::api::offset_reset::ResetStrategy;
use crate::api::{
    FieldError, KafkaRestoreSpec, RepartitionStrategy, Repartitioning, RestoreGroups,
    ValidatedRestore,
};
use crate::facts::ClusterMeta;
use crate::facts::ConfigEntry;
use crate::facts::PartitionOffsets;
use crate::facts::TopicMeta;
use crate::format::manifest::{GroupSnapshot, RunManifest, SegmentRef, TopicManifest};

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
    /// `execution.mode: job`: the shards (one Job each) with their indexes into `partitions`
    /// and `repartitioned`. None in process (absent from the JSON, so such plans, their
    /// hashes and journals are unchanged); part of the hash when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<super::PlanExecution>,
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

impl From<&RestoreGroups> for RestoreGroupsPlan {
    /// The group step a validated restore asks for (`autoConsumerGroups`: every group of the
    /// snapshot; `offsetReset.enabled`: its `consumerGroups`).
    fn from(g: &RestoreGroups) -> RestoreGroupsPlan {
        RestoreGroupsPlan {
            only: g.only.clone(),
            strategy: g.strategy,
            snapshot_before: g.snapshot_before,
            auto_rollback: g.auto_rollback,
            snapshot_retention_hours: g.snapshot_retention_hours,
        }
    }
}

/// The plan of a journal being resumed (`journal_plan`: the data of the first attempt, which
/// the executor continues exactly) with this attempt's settings that do not change the data:
/// dry run, concurrency, rate limits, produce timeout and the consumer-group step (not part of
/// the data hash, [`restore_data_hash`]), and the shard split of this attempt's `execution`
/// over the journal's steps. The produce batch size stays the first attempt's, so that the
/// records already written are skipped exactly. The hash is the journal's.
pub fn resumed_restore(journal_plan: &RestorePlan, input: &ValidatedRestore) -> RestorePlan {
    let mut plan = journal_plan.clone();
    plan.execution = restore_execution(&plan, input);
    plan.dry_run = input.dry_run;
    plan.max_concurrent_partitions = input.max_concurrent_partitions;
    plan.records_per_sec = input.records_per_sec;
    plan.bytes_per_sec = input.bytes_per_sec;
    plan.produce_timeout_ms = input.produce_timeout_ms;
    plan.groups = input.groups.as_ref().map(RestoreGroupsPlan::from);
    plan
}

/// Why the PITR window `start..=end` selects no record of run `m`'s partitions `sources`:
/// the field to name and the message; None when some of them has records whose timestamps
/// meet the window (per the manifest's per-segment record timestamps,
/// [`super::partition_window`]; a window that falls between two records of a partition is
/// not caught here). A window entirely before the restored partitions' recoverability window
/// names the end's field (`fields.1`), one entirely after it the start's (`fields.0`).
fn empty_window(
    m: &RunManifest,
    sources: &[(&str, i32)],
    (start, end): (Option<i64>, Option<i64>),
    fields: (&'static str, &'static str),
) -> Option<(&'static str, String)> {
    let window = format!(
        "{} .. {}",
        start.map(rfc3339).unwrap_or_else(|| "(no start)".into()),
        end.map(rfc3339).unwrap_or_else(|| "(no end)".into())
    );
    let wanted: std::collections::BTreeSet<(&str, i32)> = sources.iter().copied().collect();
    let meets =
        |w: &Window| start.is_none_or(|st| w.last_ms >= st) && end.is_none_or(|e| w.first_ms <= e);
    let span = run_window(m, |t, p| wanted.contains(&(t, p)));
    let per_partition = m.topics.iter().flat_map(|t| {
        let wanted = &wanted;
        t.partitions
            .iter()
            .filter(move |p| wanted.contains(&(t.name.as_str(), p.partition)))
    });
    if per_partition
        .filter_map(partition_window)
        .any(|w| meets(&w))
    {
        return None;
    }
    let run = &m.run_id;
    Some(match span {
        None => (
            "spec.pitr",
            format!(
                "the window {window} selects nothing: the topics restored from backup run {run} hold no record; remove pitr, or set pitr.allowEmpty: true"
            ),
        ),
        Some(w) if end.is_some_and(|e| e < w.first_ms) => (
            fields.1,
            format!(
                "{} is before the first recoverability point {} of backup run {run}: the topics restored reach {} and nothing earlier, so the window {window} restores no record. Set {} at or after {}, or set pitr.allowEmpty: true to accept an empty restore",
                rfc3339(end.unwrap_or_default()),
                rfc3339(w.first_ms),
                w.describe(),
                fields.1.trim_start_matches("spec."),
                rfc3339(w.first_ms),
            ),
        ),
        Some(w) if start.is_some_and(|st| st > w.last_ms) => (
            fields.0,
            format!(
                "{} is after the last recoverability point {} of backup run {run}: the topics restored reach {} and nothing later, so the window {window} restores no record. Set {} at or before {}, restore a newer run (backupRef.backupId; without it the newest), back up again to take in later records, or set pitr.allowEmpty: true to accept an empty restore",
                rfc3339(start.unwrap_or_default()),
                rfc3339(w.last_ms),
                w.describe(),
                fields.0.trim_start_matches("spec."),
                rfc3339(w.last_ms),
            ),
        ),
        Some(w) => (
            "spec.pitr",
            format!(
                "the window {window} holds no record of backup run {run}: the records restored have timestamps from {} to {}. Widen the window, choose another run (backupRef.backupId), or set pitr.allowEmpty: true to accept an empty restore",
                rfc3339(w.first_ms),
                rfc3339(w.last_ms)
            ),
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
    s.execution = Default::default();
    plan_hash(&s)
}

/// The shard split of `plan`'s steps (partition steps, then repartitioned steps) for
/// `input.execution`; None in process.
fn restore_execution(plan: &RestorePlan, input: &ValidatedRestore) -> Option<PlanExecution> {
    let estimates: Vec<(u64, u64)> = plan
        .partitions
        .iter()
        .map(|s| (s.estimated_bytes, s.estimated_records))
        .chain(
            plan.repartitioned
                .iter()
                .map(|r| (r.estimated_bytes, r.estimated_records)),
        )
        .collect();
    plan_execution(&input.execution, &estimates, plan.repartitioned.len())
}

/// Compiles a restore from its validated input and the observed facts. Errors name the
/// field: unknown topics in the filter, a mapping to a missing partition, a missing target
/// topic without `createTopics`, restoring onto a target partition holding records without
/// `purgeTopics` or `appendToExisting`, a target topic with
/// `message.timestamp.type=LogAppendTime`, a PITR window with no record (unless
/// `pitr.allowEmpty`).
pub fn compile_restore(
    input: &ValidatedRestore,
    facts: &RestoreFacts,
) -> Result<RestorePlan, CompileError> {
    let m = &facts.manifest;
    let mut work = Work {
        issues: check_names(input, m),
        ..Work::default()
    };
    for t in m.topics.iter().filter(|t| restored(input, &t.name)) {
        work.topic(input, facts, t);
    }
    work.check_collisions();
    if work.issues.is_empty()
        && let Some((field, why)) = work.empty_window(input, m)
    {
        work.issues.push(issue(field, why));
    }
    if !work.issues.is_empty() {
        return Err(CompileError(work.issues));
    }
    let mut plan = RestorePlan {
        restore_name: facts.restore_name.clone(),
        backup_name: m.backup_name.clone(),
        backup_run_id: m.run_id.clone(),
        dry_run: input.dry_run,
        pitr_start: input.pitr_start_ms,
        pitr_end: input.pitr_end_ms,
        create_topics: work.create,
        purge: work.purge,
        produce_acks: input.produce_acks,
        produce_batch_records: input.produce_batch_records,
        produce_timeout_ms: input.produce_timeout_ms,
        max_concurrent_partitions: input.max_concurrent_partitions,
        records_per_sec: input.records_per_sec,
        bytes_per_sec: input.bytes_per_sec,
        offset_map_path: crate::format::layout::offset_map(
            &m.backup_name,
            &facts.restore_name,
            &m.run_id,
        ),
        estimated_records: work.steps.iter().map(|s| s.estimated_records).sum::<u64>()
            + work
                .repartitioned
                .iter()
                .map(|r| r.estimated_records)
                .sum::<u64>(),
        estimated_bytes: work.steps.iter().map(|s| s.estimated_bytes).sum::<u64>()
            + work
                .repartitioned
                .iter()
                .map(|r| r.estimated_bytes)
                .sum::<u64>(),
        partitions: work.steps,
        repartitioned: work.repartitioned,
        source_groups: m.consumer_groups.clone(),
        groups: input.groups.as_ref().map(RestoreGroupsPlan::from),
        hash: String::new(),
        execution: None,
    };
    plan.execution = restore_execution(&plan, input);
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

/// True when the restore takes source topic `name` (`topics` filter; empty = every topic).
fn restored(input: &ValidatedRestore, name: &str) -> bool {
    input.topics.is_empty() || matches_any(&input.topics, name)
}

/// The names the input gives against the run: `repartitioning` keys that no restored topic is
/// restored into, a group step without a group snapshot, `topics` filters and `topicMapping`
/// keys that name no topic of the run.
fn check_names(input: &ValidatedRestore, m: &RunManifest) -> Vec<FieldError> {
    let mut issues = Vec::new();
    for target in input.repartitioning.keys() {
        let sources: Vec<&str> = m
            .topics
            .iter()
            .filter(|t| restored(input, &t.name))
            .map(|t| t.name.as_str())
            .collect();
        if !sources.iter().any(|t| input.target_topic(t) == target) {
            let targets: Vec<&str> = sources.iter().map(|t| input.target_topic(t)).collect();
            issues.push(issue(
                format!("spec.repartitioning.{target}"),
                format!("no topic of this restore is restored into {target:?}: keys of repartitioning are target topic names (after topicMapping); this restore writes {targets:?}"),
            ));
        }
    }
    if let Some(g) = &input.groups
        && m.consumer_groups.is_empty()
    {
        issues.push(issue(
            if g.every_group { "spec.autoConsumerGroups" } else { "spec.offsetReset" },
            format!(
                "backup run {} holds no consumer-group snapshot: back up with consumerGroupSnapshot: true (and groups that have committed offsets), or remove it",
                m.run_id
            ),
        ));
    }
    for (i, f) in input.topics.iter().enumerate() {
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
    for k in input.topic_mapping.keys() {
        if !m.topics.iter().any(|t| &t.name == k) {
            issues.push(issue(
                format!("spec.topicMapping.{k}"),
                format!("backup run {} has no topic {k:?}", m.run_id),
            ));
        }
    }
    issues
}

/// A restore being compiled: what it does so far, and what is wrong.
#[derive(Default)]
struct Work {
    create: Vec<TopicToCreate>,
    purge: Vec<(String, i32)>,
    steps: Vec<RestorePartitionStep>,
    repartitioned: Vec<RepartitionStep>,
    issues: Vec<FieldError>,
}

/// What the target of a restored topic holds before the restore.
struct Target<'a> {
    /// The target topic's name.
    name: String,
    /// Its metadata, when it exists.
    existing: Option<&'a TopicMeta>,
    /// Its partition count (existing, or as created).
    partitions: i32,
    /// Partitions holding records, as `p (offsets a..b)`.
    non_empty: Vec<String>,
    /// `purgeTopics` on an existing topic.
    purge: bool,
}

impl Work {
    /// The steps of source topic `t`: its target topic (created, or checked), then one step
    /// per partition, or one repartitioned step.
    fn topic(&mut self, input: &ValidatedRestore, facts: &RestoreFacts, t: &TopicManifest) {
        let name = input.target_topic(&t.name).to_string();
        let existing = facts.target.topics.get(&name);
        let repartition = input.repartitioning.get(&name);
        let Some(partitions) = self.target_partitions(input, t, &name, existing, repartition)
        else {
            return;
        };
        if let Some(cfg) = facts.target_configs.get(&name)
            && cfg
                .get(TIMESTAMP_TYPE)
                .and_then(|c| c.value.as_deref())
                .is_some_and(|v| v.eq_ignore_ascii_case("LogAppendTime"))
        {
            self.issues.push(issue(
                format!("spec.topicMapping.{}", t.name),
                format!(
                    "target topic {name:?} has {TIMESTAMP_TYPE}=LogAppendTime: the broker would stamp every restored record with the time of the restore and the backed-up timestamps would be lost. Set {TIMESTAMP_TYPE}=CreateTime on it for the restore (and back afterwards), or restore into a new topic with createTopics: true (the restore then sets LogAppendTime after the data)"
                ),
            ));
        }
        let mut target = Target {
            name,
            existing,
            partitions,
            non_empty: vec![],
            purge: false,
        };
        if existing.is_some() {
            let written: Vec<i32> = match repartition {
                Some(_) => (0..partitions).collect(),
                None => t
                    .partitions
                    .iter()
                    .map(|p| {
                        input
                            .partition_mapping
                            .get(&p.partition)
                            .copied()
                            .unwrap_or(p.partition)
                    })
                    .collect(),
            };
            for tp in written {
                if let Some(o) = facts.target_offsets.get(&(target.name.clone(), tp))
                    && o.high_watermark > o.log_start
                {
                    target.non_empty.push(format!(
                        "{tp} (offsets {}..{})",
                        o.log_start, o.high_watermark
                    ));
                }
            }
            target.purge = input.purge_topics;
            if !target.non_empty.is_empty() && !input.purge_topics && !input.append_to_existing {
                self.issues.push(issue(
                    "spec.appendToExisting",
                    format!(
                        "target topic {:?} already holds records this restore did not write, in partitions {}: restored records would mix with them. Set purgeTopics: true to empty them first, map {2:?} to a new topic (topicMapping: {{{2}: {2}-restored}} with createTopics: true), or set appendToExisting: true to restore after them on purpose",
                        target.name,
                        target.non_empty.join(", "),
                        t.name
                    ),
                ));
                return;
            }
        }
        match repartition {
            Some(r) => self.repartition_step(input, facts, t, &target, r.strategy),
            None => self.partition_steps(input, facts, t, &target),
        }
    }

    /// The partition count of target topic `target`: the existing topic's (which must match
    /// `repartitioning.targetPartitions`), or the created topic's with `createTopics` (the
    /// source's, or `targetPartitions`). None, with the issue, when neither.
    fn target_partitions(
        &mut self,
        input: &ValidatedRestore,
        t: &TopicManifest,
        target: &str,
        existing: Option<&TopicMeta>,
        repartition: Option<&Repartitioning>,
    ) -> Option<i32> {
        if let (Some(r), Some(tt)) = (repartition, existing)
            && tt.partitions.len() as i32 != r.target_partitions
        {
            self.issues.push(issue(
                format!("spec.repartitioning.{target}.targetPartitions"),
                format!(
                    "is {} but target topic {target:?} exists with {} partitions: set targetPartitions: {}, or restore into a new topic (topicMapping with createTopics: true)",
                    r.target_partitions,
                    tt.partitions.len(),
                    tt.partitions.len()
                ),
            ));
            return None;
        }
        let partitions = repartition.map_or(t.partition_count, |r| r.target_partitions);
        match existing {
            Some(tt) => Some(tt.partitions.len() as i32),
            None if input.create_topics => {
                self.create
                    .push(topic_to_create(input, t, target, partitions));
                Some(partitions)
            }
            None => {
                self.issues.push(issue(
                    "spec.createTopics",
                    format!("target topic {target:?} does not exist: set createTopics: true or create it ({partitions} partitions)"),
                ));
                None
            }
        }
    }

    /// One step for source topic `t` restored into `target` with `repartitioning`: every
    /// source partition, routed by `strategy`.
    fn repartition_step(
        &mut self,
        input: &ValidatedRestore,
        facts: &RestoreFacts,
        t: &TopicManifest,
        target: &Target,
        strategy: RepartitionStrategy,
    ) {
        if target.purge {
            self.purge
                .extend((0..target.partitions).map(|p| (target.name.clone(), p)));
        }
        let target_state = match (target.existing.is_some(), target.non_empty.is_empty()) {
            (false, _) => TargetState::Created,
            (true, true) => TargetState::Empty,
            (true, false) if target.purge => TargetState::Purged,
            (true, false) => TargetState::Appended,
        };
        let sources: Vec<RepartitionSource> = t
            .partitions
            .iter()
            .map(|p| {
                let (segments, estimated_records, estimated_bytes) =
                    source_segments(p, input.pitr_start_ms, input.pitr_end_ms);
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
        for o in facts
            .manifest
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
        self.repartitioned.push(RepartitionStep {
            source_topic: t.name.clone(),
            target_topic: target.name.clone(),
            strategy,
            target_partitions: target.partitions,
            estimated_records: sources.iter().map(|s| s.estimated_records).sum(),
            estimated_bytes: sources.iter().map(|s| s.estimated_bytes).sum(),
            sources,
            target_state,
            positions,
        });
    }

    /// One step per partition of source topic `t` into `target` (through `partitionMapping`).
    fn partition_steps(
        &mut self,
        input: &ValidatedRestore,
        facts: &RestoreFacts,
        t: &TopicManifest,
        target: &Target,
    ) {
        for p in &t.partitions {
            let tp = input
                .partition_mapping
                .get(&p.partition)
                .copied()
                .unwrap_or(p.partition);
            if tp >= target.partitions || tp < 0 {
                self.issues.push(issue(
                    format!("spec.partitionMapping.{}", p.partition),
                    format!(
                        "target topic {:?} has {} partitions; partition {tp} does not exist",
                        target.name, target.partitions
                    ),
                ));
                continue;
            }
            if target.purge && !self.purge.contains(&(target.name.clone(), tp)) {
                self.purge.push((target.name.clone(), tp));
            }
            let holds_records = facts
                .target_offsets
                .get(&(target.name.clone(), tp))
                .is_some_and(|o| o.high_watermark > o.log_start);
            let target_state = match (target.existing.is_some(), holds_records) {
                (false, _) => TargetState::Created,
                (true, false) => TargetState::Empty,
                (true, true) if target.purge => TargetState::Purged,
                (true, true) => TargetState::Appended,
            };
            let (segments, estimated_records, estimated_bytes) =
                source_segments(p, input.pitr_start_ms, input.pitr_end_ms);
            self.steps.push(RestorePartitionStep {
                source_topic: t.name.clone(),
                source_partition: p.partition,
                target_topic: target.name.clone(),
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

    /// Two source partitions mapped onto one target partition would interleave; a
    /// repartitioned target topic takes the records of one source topic only.
    fn check_collisions(&mut self) {
        let mut seen = BTreeMap::new();
        for s in &self.steps {
            if let Some(prev) = seen.insert(
                (s.target_topic.clone(), s.target_partition),
                (s.source_topic.clone(), s.source_partition),
            ) {
                self.issues.push(issue(
                    "spec.partitionMapping",
                    format!(
                        "{}-{} and {}-{} would both be restored into {}-{}: map them to different partitions",
                        prev.0, prev.1, s.source_topic, s.source_partition, s.target_topic, s.target_partition
                    ),
                ));
            }
        }
        for (i, r) in self.repartitioned.iter().enumerate() {
            let other = self.repartitioned[..i]
                .iter()
                .find(|o| o.target_topic == r.target_topic)
                .map(|o| o.source_topic.clone())
                .or_else(|| {
                    self.steps
                        .iter()
                        .find(|s| s.target_topic == r.target_topic)
                        .map(|s| s.source_topic.clone())
                });
            if let Some(o) = other {
                self.issues.push(issue(
                    format!("spec.repartitioning.{}", r.target_topic),
                    format!(
                        "topics {o:?} and {:?} would both be restored into {:?}: a repartitioned topic takes one source topic; map one of them elsewhere (topicMapping)",
                        r.source_topic, r.target_topic
                    ),
                ));
            }
        }
    }

    /// Why the PITR window selects no record of the restored partitions ([`empty_window`]:
    /// the field to name and the message), or None: no window, `pitr.allowEmpty`, or some
    /// record in it.
    fn empty_window(
        &self,
        input: &ValidatedRestore,
        m: &RunManifest,
    ) -> Option<(&'static str, String)> {
        if (input.pitr_start_ms.is_none() && input.pitr_end_ms.is_none())
            || input.allow_empty_window
        {
            return None;
        }
        let sources: Vec<(&str, i32)> = self
            .steps
            .iter()
            .map(|s| (s.source_topic.as_str(), s.source_partition))
            .chain(self.repartitioned.iter().flat_map(|r| {
                r.sources
                    .iter()
                    .map(|s| (r.source_topic.as_str(), s.source_partition))
            }))
            .collect();
        empty_window(
            m,
            &sources,
            (input.pitr_start_ms, input.pitr_end_ms),
            input.pitr_fields,
        )
    }
}

/// Target topic `name` as the restore creates it from source topic `t`: `partitions`
/// partitions, the source's topic-level overrides, `message.timestamp.type=CreateTime` while
/// the data goes in (a LogAppendTime source gets its type back after the data).
fn topic_to_create(
    input: &ValidatedRestore,
    t: &TopicManifest,
    name: &str,
    partitions: i32,
) -> TopicToCreate {
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
    TopicToCreate {
        name: name.to_string(),
        partitions,
        replication_factor: input.replication_factor,
        configs,
        configs_after_data: after,
    }
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
