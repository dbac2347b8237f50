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
use crate::format::manifest::{
    GroupSnapshot, PartitionManifest, RunManifest, SegmentRef, TopicManifest,
};

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
    /// Source offsets restored: `from..to` (exclusive): the run's covered range cut by the
    /// partition's `pitr.startOffsets`/`endOffsets`, filtered by the PITR time window.
    pub from: i64,
    pub to: i64,
    /// Segments from the one holding `from` to the run's cut, in offset order (the executor
    /// skips blocks outside `from..to` and the window using each segment's index; segments
    /// after `to` are kept for their transaction markers only, no block of them is read).
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
    /// `pitr.startOffsets`/`endOffsets` per source partition (shown by `plan`; the steps'
    /// `from..to` carry them out). Absent when none, so plans without them hash as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pitr_offsets: Vec<PitrOffsets>,
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

/// The offset bounds of one source partition (`pitr.startOffsets`, `pitr.endOffsets`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PitrOffsets {
    /// Source topic (before `topicMapping`).
    pub topic: String,
    /// Source partition (before `partitionMapping`).
    pub partition: i32,
    /// First source offset restored (inclusive); None: no lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    /// Source offset restoring stops before (exclusive); None: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
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
    let mut issues = check_names(input, m);
    issues.extend(check_offset_bounds(input, m));
    let mut work = Work {
        issues,
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
        pitr_offsets: input
            .pitr_offsets
            .iter()
            .map(|((topic, partition), b)| PitrOffsets {
                topic: topic.clone(),
                partition: *partition,
                start: b.start.map(|(o, _)| o),
                end: b.end.map(|(o, _)| o),
            })
            .collect(),
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

/// `pitr.startOffsets`/`endOffsets` against run `m`: each names a source topic this restore
/// restores and a partition of it the run holds, and (unless `pitr.allowEmpty`) a range that
/// meets what the run holds there (`coveredFrom..cut`): a start at or after the cut names the
/// start's entry, an end at or before `coveredFrom` the end's, with the held range.
fn check_offset_bounds(input: &ValidatedRestore, m: &RunManifest) -> Vec<FieldError> {
    let mut issues = Vec::new();
    let run = &m.run_id;
    for ((topic, partition), b) in &input.pitr_offsets {
        let field = |list: &str, i: usize| format!("spec.pitr.{list}[{i}]");
        let first = match (b.start, b.end) {
            (Some((_, i)), _) => field("startOffsets", i),
            (None, Some((_, j))) => field("endOffsets", j),
            (None, None) => continue,
        };
        let Some(t) = m
            .topics
            .iter()
            .find(|t| &t.name == topic && restored(input, &t.name))
        else {
            let restores: Vec<&str> = m
                .topics
                .iter()
                .filter(|t| restored(input, &t.name))
                .map(|t| t.name.as_str())
                .collect();
            issues.push(issue(
                format!("{first}.topic"),
                format!(
                    "{topic:?} is not a topic this restore takes from backup run {run} (it restores {restores:?}): offset bounds name SOURCE topics as backed up, before topicMapping; name one of those, or add it to spec.topics"
                ),
            ));
            continue;
        };
        let Some(p) = t.partitions.iter().find(|p| p.partition == *partition) else {
            let have: Vec<i32> = t.partitions.iter().map(|p| p.partition).collect();
            issues.push(issue(
                format!("{first}.partition"),
                format!(
                    "backup run {run} holds no partition {partition} of topic {topic:?} (it holds partitions {have:?}); name a source partition, before partitionMapping"
                ),
            ));
            continue;
        };
        if input.allow_empty_window {
            continue;
        }
        let held = if p.covered_from < p.cut {
            format!("offsets {}..{} (end exclusive)", p.covered_from, p.cut)
        } else {
            format!("no record (its range is empty at offset {})", p.cut)
        };
        let fix = "or set pitr.allowEmpty: true to accept an empty restore";
        if p.covered_from >= p.cut {
            issues.push(issue(
                first,
                format!(
                    "backup run {run} holds {held} of {topic}/{partition}, so its offset range restores no record. Remove the bound, restore another run (backupRef.backupId), {fix}"
                ),
            ));
        } else if let Some((start, i)) = b.start
            && start >= p.cut
        {
            issues.push(issue(
                field("startOffsets", i),
                format!(
                    "start offset {start} of {topic}/{partition} is at or after the end of what backup run {run} holds there: {held}, so the range restores no record. Set the start below {}, restore a newer run (backupRef.backupId; without it the newest), {fix}",
                    p.cut
                ),
            ));
        } else if let Some((end, j)) = b.end
            && end <= p.covered_from
        {
            issues.push(issue(
                field("endOffsets", j),
                format!(
                    "end offset {end} of {topic}/{partition} (exclusive) is at or before the first offset backup run {run} holds there: {held}, so the range restores no record. Set the end above {}, {fix}",
                    p.covered_from
                ),
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
                let (from, to) = offset_range(input, &t.name, p);
                let (segments, estimated_records, estimated_bytes) =
                    source_segments(p, (from, to), input.pitr_start_ms, input.pitr_end_ms);
                RepartitionSource {
                    source_partition: p.partition,
                    from,
                    to,
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
            let (from, to) = offset_range(input, &t.name, p);
            let (segments, estimated_records, estimated_bytes) =
                source_segments(p, (from, to), input.pitr_start_ms, input.pitr_end_ms);
            self.steps.push(RestorePartitionStep {
                source_topic: t.name.clone(),
                source_partition: p.partition,
                target_topic: target.name.clone(),
                target_partition: tp,
                from,
                to,
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

/// The source offsets `from..to` (exclusive) a restore of partition `p` of source topic
/// `topic` replays: the run's covered range `coveredFrom..cut` cut by the partition's
/// `pitr.startOffsets`/`endOffsets` ([`OffsetBounds::clamp`]); the whole range without them.
fn offset_range(input: &ValidatedRestore, topic: &str, p: &PartitionManifest) -> (i64, i64) {
    input
        .pitr_offsets
        .get(&(topic.to_string(), p.partition))
        .copied()
        .unwrap_or_default()
        .clamp(p.covered_from, p.cut)
}

/// The segments a restore of source offsets `from..to` of partition `p` reads, with the
/// records and bytes estimated in the range and the PITR window. Segments wholly before
/// `from` are left out; those from `from` to the run's cut are kept, even after `to` or
/// outside the window: their indexes carry the transaction markers that decide which
/// transactional batches were committed (a transaction's marker may follow its batches by
/// any number of offsets). The executor reads no block outside `from..to`.
fn source_segments(
    p: &PartitionManifest,
    (from, to): (i64, i64),
    pitr_start: Option<i64>,
    pitr_end: Option<i64>,
) -> (Vec<SegmentRef>, u64, u64) {
    let segments: Vec<SegmentRef> = p
        .segments
        .iter()
        .filter(|s| s.last_offset >= from && s.first_offset < p.cut)
        .cloned()
        .collect();
    let in_window = |s: &&SegmentRef| {
        s.records > 0
            && s.last_offset >= from
            && s.first_offset < to
            && pitr_end.is_none_or(|e| s.min_timestamp <= e)
            && pitr_start.is_none_or(|st| s.max_timestamp >= st)
    };
    let records = segments.iter().filter(in_window).map(|s| s.records).sum();
    let bytes = segments.iter().filter(in_window).map(|s| s.raw_bytes).sum();
    (segments, records, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Document, load_and_validate, validate_restore};
    use crate::format::manifest::PartitionManifest;

    /// Segment of offsets `first..=last`, one record per offset, timestamp 1000 + offset.
    fn seg(first: i64, last: i64) -> SegmentRef {
        SegmentRef {
            path: format!("b/data/orders/{first}.seg"),
            first_offset: first,
            last_offset: last,
            records: (last - first + 1) as u64,
            raw_bytes: (last - first + 1) as u64 * 100,
            stored_bytes: 1,
            min_timestamp: 1_000 + first,
            max_timestamp: 1_000 + last,
            crc32c: 0,
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        }
    }

    /// Run r1 of backup `b`: topic `orders`, partition 0 offsets 10..40 in three segments
    /// (10..=19, 20..=29, 30..=39), partition 1 offsets 0..5, partition 2 empty at 7.
    fn facts() -> RestoreFacts {
        let part = |partition, covered_from, cut, segments| PartitionManifest {
            partition,
            log_start_offset: covered_from,
            covered_from,
            cut,
            start_offset: covered_from,
            records: (cut - covered_from) as u64,
            raw_bytes: 0,
            min_timestamp: None,
            max_timestamp: None,
            gaps: vec![],
            segments,
        };
        RestoreFacts {
            restore_name: "r".into(),
            manifest: RunManifest {
                format: "kafka-backup-operator/v1".into(),
                backup_name: "b".into(),
                run_id: "r1".into(),
                previous_run_id: None,
                start_time: 0,
                completion_time: 0,
                plan_hash: "x".into(),
                cluster_id: None,
                compression: "zstd".into(),
                topics: vec![TopicManifest {
                    name: "orders".into(),
                    topic_id: "id".into(),
                    partition_count: 3,
                    configs: BTreeMap::new(),
                    partitions: vec![
                        part(0, 10, 40, vec![seg(10, 19), seg(20, 29), seg(30, 39)]),
                        part(1, 0, 5, vec![seg(0, 4)]),
                        part(2, 7, 7, vec![]),
                    ],
                }],
                consumer_groups: vec![],
                total_records: 35,
                total_raw_bytes: 0,
                object_lock: None,
                seal: None,
            },
            target: ClusterMeta::default(),
            target_offsets: BTreeMap::new(),
            target_configs: BTreeMap::new(),
        }
    }

    fn input(pitr: &str) -> ValidatedRestore {
        let y = format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: r\nspec:\n  backupRef:\n    name: b\n  kafkaCluster:\n    bootstrapServers: [\"k:9092\"]\n  createTopics: true\n{pitr}"
        );
        match load_and_validate(&y, "t").unwrap().remove(0) {
            Document::Restore(r) => validate_restore(&r).unwrap(),
            _ => unreachable!(),
        }
    }

    fn compile(pitr: &str) -> Result<RestorePlan, String> {
        compile_restore(&input(pitr), &facts()).map_err(|e| e.to_string())
    }

    fn step(p: &RestorePlan, partition: i32) -> &RestorePartitionStep {
        p.partitions
            .iter()
            .find(|s| s.source_partition == partition)
            .unwrap()
    }

    #[test]
    fn offset_bounds_cut_the_steps_range_and_leave_other_partitions_whole() {
        let p = compile(
            "  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 22}]\n    endOffsets: [{topic: orders, partition: 0, offset: 25}]\n",
        )
        .unwrap();
        let s0 = step(&p, 0);
        assert_eq!((s0.from, s0.to), (22, 25));
        // the segment before the range is skipped; those after it stay for their markers,
        // but only the one overlapping the range counts in the estimate
        let paths: Vec<i64> = s0.segments.iter().map(|s| s.first_offset).collect();
        assert_eq!(paths, vec![20, 30]);
        assert_eq!(s0.estimated_records, 10);
        // partition 1 is not named: no offset bound
        let s1 = step(&p, 1);
        assert_eq!((s1.from, s1.to, s1.segments.len()), (0, 5, 1));
        assert_eq!(
            p.pitr_offsets,
            vec![PitrOffsets {
                topic: "orders".into(),
                partition: 0,
                start: Some(22),
                end: Some(25),
            }]
        );
    }

    #[test]
    fn bounds_outside_the_covered_range_are_clamped_to_it() {
        // start below coveredFrom, end beyond the cut: the held range
        let p = compile(
            "  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 3}]\n    endOffsets: [{topic: orders, partition: 0, offset: 1000}]\n",
        )
        .unwrap();
        assert_eq!((step(&p, 0).from, step(&p, 0).to), (10, 40));
        // an end alone
        let p = compile("  pitr:\n    endOffsets: [{topic: orders, partition: 0, offset: 20}]\n")
            .unwrap();
        let s0 = step(&p, 0);
        assert_eq!((s0.from, s0.to, s0.estimated_records), (10, 20, 10));
        assert_eq!(s0.segments.len(), 3);
    }

    #[test]
    fn offset_and_time_bounds_both_hold() {
        // timestamps are 1000 + offset: the window 1025..=1035 meets segments 20.. and 30..,
        // the offset end 30 leaves only 20..=29 in the estimate
        let p = compile(
            "  pitr:\n    startTimestamp: 1025\n    endTimestamp: 1035\n    endOffsets: [{topic: orders, partition: 0, offset: 30}]\n",
        )
        .unwrap();
        let s0 = step(&p, 0);
        assert_eq!((s0.from, s0.to, s0.estimated_records), (10, 30, 10));
        assert_eq!((p.pitr_start, p.pitr_end), (Some(1025), Some(1035)));
    }

    #[test]
    fn a_repartitioned_topic_reads_the_same_cut_ranges() {
        let p = compile(
            "  repartitioning:\n    orders: {targetPartitions: 2}\n  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 22}]\n    endOffsets: [{topic: orders, partition: 1, offset: 3}]\n",
        )
        .unwrap();
        let ranges: Vec<(i32, i64, i64)> = p.repartitioned[0]
            .sources
            .iter()
            .map(|s| (s.source_partition, s.from, s.to))
            .collect();
        assert_eq!(ranges, vec![(0, 22, 40), (1, 0, 3), (2, 7, 7)]);
        assert_eq!(p.repartitioned[0].estimated_records, 20 + 5);
    }

    #[test]
    fn a_range_outside_what_the_run_holds_is_refused_with_the_held_range() {
        let e = compile("  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 40}]\n")
            .unwrap_err();
        assert!(
            e.contains("spec.pitr.startOffsets[0]: ")
                && e.contains("offsets 10..40 (end exclusive)")
                && e.contains("allowEmpty"),
            "{e}"
        );
        let e = compile("  pitr:\n    endOffsets: [{topic: orders, partition: 0, offset: 10}]\n")
            .unwrap_err();
        assert!(
            e.contains("spec.pitr.endOffsets[0]: ")
                && e.contains("offsets 10..40")
                && e.contains("Set the end above 10"),
            "{e}"
        );
        let e = compile("  pitr:\n    endOffsets: [{topic: orders, partition: 2, offset: 9}]\n")
            .unwrap_err();
        assert!(
            e.contains("spec.pitr.endOffsets[0]: ") && e.contains("no record"),
            "{e}"
        );
        // allowEmpty accepts it as an empty step
        let p = compile(
            "  pitr:\n    allowEmpty: true\n    startOffsets: [{topic: orders, partition: 0, offset: 50}]\n",
        )
        .unwrap();
        let s0 = step(&p, 0);
        assert_eq!((s0.from, s0.to, s0.estimated_records), (40, 40, 0));
    }

    #[test]
    fn a_bound_must_name_a_restored_source_topic_and_a_held_partition() {
        let e =
            compile("  pitr:\n    startOffsets: [{topic: payments, partition: 0, offset: 1}]\n")
                .unwrap_err();
        assert!(
            e.contains("spec.pitr.startOffsets[0].topic: ")
                && e.contains("SOURCE topics")
                && e.contains("[\"orders\"]"),
            "{e}"
        );
        // a partition the run does not hold
        let y = "  topics: [orders]\n  pitr:\n    endOffsets: [{topic: orders, partition: 9, offset: 1}]\n";
        let e = compile(y).unwrap_err();
        assert!(
            e.contains("spec.pitr.endOffsets[0].partition: ") && e.contains("[0, 1, 2]"),
            "{e}"
        );
    }
}
