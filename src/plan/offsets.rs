//! Consumer-group positions: the one rule that carries a committed offset across a restore
//! (docs/offsets.md), and compiling the group offsets a restore, a KafkaOffsetReset or a
//! KafkaOffsetRollback will commit. Pure: facts in, a plan out.
//!
//! A committed offset is "the next record to read" (the Kafka protocol guide, OffsetCommit;
//! KIP-211 for its retention). All offsets here are in records' offset space, not counts.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{CompileError, RestorePlan, issue, plan_hash, select_topics};
use crate::api::KafkaOffsetResetSpec;
use crate::api::offset_reset::ResetStrategy;
use crate::facts::{GroupCommits, PartitionOffsets};
use crate::format::manifest::{GroupOffset, GroupSnapshot, OffsetMap, PartitionOffsetMap};

/// The target position of source position `source` on one partition (docs/offsets.md):
///
/// - the target offset of the first restored record whose source offset is >= `source`;
/// - before the first restored record (a PITR window's start, log start, or records not
///   restored): the first restored record;
/// - past the last restored record: the end of what the restore wrote (`targetEnd`), or,
///   in maps without it, the target offset after the last restored record;
/// - a partition with no restored record: `targetEnd` (the restore's start there), else
///   `None` (nothing says where that is).
///
/// Source offsets that hold no restorable record (compacted away, aborted transactional
/// records, transaction markers, retention gaps) need no special case: the next restored
/// record is found the same way. No record at or after `source` is ever skipped.
///
/// On a repartitioned topic an entry covers the records of one source partition in one target
/// partition: the answer is the first of them with a source offset >= `source` (or their end),
/// exact at the snapshot's positions and never later than exact elsewhere. What a group
/// commits there is decided over all source partitions ([`translate_groups`]).
pub fn translate_position(map: &PartitionOffsetMap, source: i64) -> Option<i64> {
    if let Some(r) = &map.repartition {
        return Some(r.target_first + r.rank_at(source) as i64);
    }
    let i = map.ranges.partition_point(|r| r[1] < source);
    if let Some(r) = map.ranges.get(i) {
        return Some(if source < r[0] {
            r[2]
        } else {
            r[2] + (source - r[0])
        });
    }
    let after_last = map.ranges.last().map(|r| r[2] + (r[1] - r[0]) + 1);
    map.target_end.or(after_last)
}

/// Per target partition of a restore's offset map: the target offset of the first record the
/// restore wrote there (None: it wrote none) and where it ended (None: not recorded).
pub fn target_bounds(map: &OffsetMap) -> BTreeMap<(String, i32), (Option<i64>, Option<i64>)> {
    let mut out: BTreeMap<(String, i32), (Option<i64>, Option<i64>)> = BTreeMap::new();
    for pm in &map.partitions {
        let first = match &pm.repartition {
            Some(r) => (r.records > 0).then_some(r.target_first),
            None => pm.ranges.first().map(|r| r[2]),
        };
        let end = match &pm.repartition {
            Some(r) => Some(r.target_first + r.records as i64),
            None => translate_position(pm, i64::MAX),
        };
        let e = out
            .entry((pm.target_topic.clone(), pm.target_partition))
            .or_default();
        e.0 = match (e.0, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        e.1 = match (e.1, end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    out
}

/// One partition's new committed offset for a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetChange {
    pub topic: String,
    pub partition: i32,
    /// The offset committed there now, if any (what a rollback snapshot saves).
    pub current: Option<i64>,
    /// The offset to commit.
    pub new: i64,
    /// Commit metadata, kept from the position this one comes from.
    pub metadata: Option<String>,
    /// Where `new` comes from, for the plan table: e.g. `source orders/0@1500`.
    pub from: String,
    /// The partition's high watermark when planned, for the lag columns (None: not observed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
    /// Records at or after `new` that the group had already read (repartitioned topics
    /// only: docs/offsets.md, "Repartitioned topics"). A lower bound where the source
    /// position is not one the offset map records exactly.
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicates: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The commits of one consumer group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOffsetPlan {
    pub group: String,
    pub changes: Vec<OffsetChange>,
    /// Positions that could not be carried over, with why (a topic not restored, a partition
    /// without a map entry).
    pub skipped: Vec<String>,
    /// Why the group gets no position at all and is not done (a restore's group that is not
    /// in the backup's snapshot): reported as failed, nothing committed. None elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Translates the backup's group snapshot through a restore's offset map: every committed
/// position of every group in `groups` (all of the snapshot when `only` is empty), on the
/// partitions the restore wrote, becomes the target position of [`translate_position`] on
/// the mapped target partition (`topicMapping` and `partitionMapping` are in the map). The
/// commit metadata is kept. `current` is filled from `target_committed` (group -> (topic,
/// partition) -> offset) when given.
pub fn translate_groups(
    snapshot: &[GroupSnapshot],
    map: &OffsetMap,
    only: &[String],
    target_committed: &BTreeMap<String, BTreeMap<(String, i32), i64>>,
) -> Vec<GroupOffsetPlan> {
    let by_source: BTreeMap<(&str, i32), &PartitionOffsetMap> = map
        .partitions
        .iter()
        .filter(|p| p.repartition.is_none())
        .map(|p| ((p.source_topic.as_str(), p.source_partition), p))
        .collect();
    let mut repartitioned: BTreeMap<&str, Vec<&PartitionOffsetMap>> = BTreeMap::new();
    for p in map.partitions.iter().filter(|p| p.repartition.is_some()) {
        repartitioned
            .entry(p.source_topic.as_str())
            .or_default()
            .push(p);
    }
    snapshot
        .iter()
        .filter(|g| only.is_empty() || only.contains(&g.group_id))
        .map(|g| {
            let current = target_committed.get(&g.group_id);
            let mut changes = Vec::new();
            let mut skipped = Vec::new();
            for o in &g.offsets {
                if repartitioned.contains_key(o.topic.as_str()) {
                    continue;
                }
                let Some(pm) = by_source.get(&(o.topic.as_str(), o.partition)) else {
                    skipped.push(format!(
                        "{}/{}: not restored by this restore",
                        o.topic, o.partition
                    ));
                    continue;
                };
                let Some(new) = translate_position(pm, o.offset) else {
                    skipped.push(format!(
                        "{}/{}: no restored record and no recorded end on the target",
                        o.topic, o.partition
                    ));
                    continue;
                };
                changes.push(OffsetChange {
                    topic: pm.target_topic.clone(),
                    partition: pm.target_partition,
                    current: current
                        .and_then(|c| c.get(&(pm.target_topic.clone(), pm.target_partition)))
                        .copied(),
                    new,
                    metadata: o.metadata.clone(),
                    from: format!("source {}/{}@{}", o.topic, o.partition, o.offset),
                    high_watermark: None,
                    duplicates: 0,
                });
            }
            for (topic, entries) in &repartitioned {
                changes.extend(translate_repartitioned(g, topic, entries, current));
            }
            GroupOffsetPlan {
                group: g.group_id.clone(),
                changes,
                skipped,
                failure: None,
            }
        })
        .collect()
}

/// The positions of group `g` on the target partitions of repartitioned source topic `topic`
/// (`entries`: its offset-map entries, one per source and target partition). The rule made
/// conservative (docs/offsets.md): a target partition starts at the earliest record that
/// some source position has not consumed yet; a source partition the group has no position
/// on counts as not consumed at all. The records at or after that start the group had read
/// are counted as `duplicates`. Nothing for a group with no position on `topic`.
fn translate_repartitioned(
    g: &GroupSnapshot,
    topic: &str,
    entries: &[&PartitionOffsetMap],
    current: Option<&BTreeMap<(String, i32), i64>>,
) -> Vec<OffsetChange> {
    let positions: BTreeMap<i32, &GroupOffset> = g
        .offsets
        .iter()
        .filter(|o| o.topic == topic)
        .map(|o| (o.partition, o))
        .collect();
    let Some(first) = positions.values().next() else {
        return vec![];
    };
    let mut by_target: BTreeMap<(&str, i32), Vec<&PartitionOffsetMap>> = BTreeMap::new();
    for e in entries {
        by_target
            .entry((e.target_topic.as_str(), e.target_partition))
            .or_default()
            .push(e);
    }
    let mut out = Vec::new();
    for ((target, tp), es) in by_target {
        // (first record of the source part, records it holds, records of it already read)
        let parts: Vec<(i64, i64, i64)> = es
            .iter()
            .filter_map(|e| {
                let r = e.repartition.as_ref()?;
                let read = positions
                    .get(&e.source_partition)
                    .map_or(0, |o| r.rank_at(o.offset)) as i64;
                Some((r.target_first, r.records as i64, read))
            })
            .collect();
        let end = parts.iter().map(|(f, n, _)| f + n).max().unwrap_or(0);
        let new = parts
            .iter()
            .filter(|(_, n, read)| read < n)
            .map(|(f, _, read)| f + read)
            .min()
            .unwrap_or(end);
        let duplicates: i64 = parts
            .iter()
            .map(|(f, _, read)| (f + read - new.max(*f)).max(0))
            .sum();
        out.push(OffsetChange {
            topic: target.to_string(),
            partition: tp,
            current: current
                .and_then(|c| c.get(&(target.to_string(), tp)))
                .copied(),
            new,
            metadata: first.metadata.clone(),
            from: format!(
                "repartitioned {topic} ({} source position(s))",
                positions.len()
            ),
            high_watermark: None,
            duplicates: duplicates as u64,
        });
    }
    out
}

/// Committed offsets as group snapshots (the shape of a backup's or a snapshot document's
/// groups), keeping the topics `keep` accepts. The leader epoch is not kept (-1).
pub fn group_snapshots(c: &GroupCommits, keep: impl Fn(&str) -> bool) -> Vec<GroupSnapshot> {
    c.iter()
        .map(|(g, parts)| GroupSnapshot {
            group_id: g.clone(),
            offsets: parts
                .iter()
                .filter(|((t, _), _)| keep(t))
                .map(|((t, p), (o, m))| GroupOffset {
                    topic: t.clone(),
                    partition: *p,
                    offset: *o,
                    leader_epoch: -1,
                    metadata: m.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Everything `compile_offset_reset` needs, observed beforehand.
#[derive(Debug, Clone, Default)]
pub struct OffsetResetFacts {
    /// Topic -> partition count, for every topic of the cluster.
    pub partitions: BTreeMap<String, i32>,
    /// Log start and high watermark of the partitions in scope.
    pub offsets: BTreeMap<(String, i32), PartitionOffsets>,
    /// to-timestamp: ListOffsets by `resetTimestamp` (KIP-79); -1 where no record is at or
    /// after it.
    pub by_timestamp: BTreeMap<(String, i32), i64>,
    /// The groups' committed offsets now.
    pub committed: GroupCommits,
    /// from-mapping: the offset map.
    pub mapping: Option<OffsetMap>,
    /// from-mapping: the positions to translate, when the backup run's group snapshot was
    /// reachable (`offsetMappingRef.restoreName`); otherwise the groups' committed offsets on
    /// the map's source topics are translated.
    pub snapshot: Option<Vec<GroupSnapshot>>,
}

/// A compiled KafkaOffsetReset.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetResetPlan {
    pub name: String,
    pub strategy: ResetStrategy,
    pub dry_run: bool,
    pub parallelism: u32,
    pub continue_on_error: bool,
    pub snapshot_before: bool,
    pub groups: Vec<GroupOffsetPlan>,
    pub hash: String,
}

/// The topics a reset touches, for the observer: the topics `spec.topics` matches among
/// `available`, else the topics the groups have committed offsets on (and, from-mapping, the
/// map's target topics).
pub fn reset_scope_topics(
    spec: &KafkaOffsetResetSpec,
    available: &[String],
    committed: &GroupCommits,
    mapping: Option<&OffsetMap>,
) -> Vec<String> {
    let avail: Vec<(String, bool)> = available.iter().map(|t| (t.clone(), false)).collect();
    let mut out: std::collections::BTreeSet<String> = if spec.topics.is_empty() {
        committed
            .values()
            .flat_map(|c| c.keys().map(|(t, _)| t.clone()))
            .collect()
    } else {
        select_topics(&spec.topics, &[], &avail)
            .0
            .into_iter()
            .collect()
    };
    if let Some(m) = mapping {
        out.extend(m.partitions.iter().map(|p| p.target_topic.clone()));
    }
    out.into_iter().filter(|t| available.contains(t)).collect()
}

/// The plan errors of the named groups that would get no offset at all (docs/offsets.md,
/// "A group that does not exist"): a reset that commits nothing for a group it names is not a
/// success. A group with no committed offset on the cluster (it does not exist, e.g. a
/// mistyped name, or never committed) is named with the fix: check the name, or, to give a
/// new group its first offsets, name the topics (`spec.topics`, the explicit opt-in). Any
/// other group without a change is named with why each position was left out.
fn groups_without_change(
    spec: &KafkaOffsetResetSpec,
    facts: &OffsetResetFacts,
    groups: &[GroupOffsetPlan],
) -> Vec<crate::api::FieldError> {
    let mut out = vec![];
    for (i, g) in spec.consumer_groups.iter().enumerate() {
        let Some(p) = groups.iter().find(|p| &p.group == g) else {
            continue;
        };
        if !p.changes.is_empty() {
            continue;
        }
        let exists = facts.committed.get(g).is_some_and(|c| !c.is_empty());
        let why = p
            .skipped
            .iter()
            .filter(|s| !s.starts_with("group ") && !s.starts_with("no position"))
            .cloned()
            .collect::<Vec<_>>();
        let message = if !exists && spec.reset_strategy == ResetStrategy::FromMapping {
            format!(
                "group {g:?} is not in the backup's consumer-group snapshot and has no committed offset on this cluster: it does not exist there (check the name) or never committed on the mapped topics; nothing would be reset"
            )
        } else if !exists && spec.topics.is_empty() {
            format!(
                "group {g:?} has no committed offset on this cluster: it does not exist (check the name) or never committed; nothing would be reset. To give a new group its first offsets, name the topics in spec.topics"
            )
        } else if !exists {
            format!(
                "group {g:?} has no committed offset on this cluster (check the name){}; nothing would be reset",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            )
        } else {
            format!(
                "group {g:?} has no position this reset can set{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            )
        };
        out.push(issue(format!("spec.consumerGroups[{i}]"), message));
    }
    out
}

/// Compiles a KafkaOffsetReset: for each group, the partitions in scope (its committed
/// partitions, or with `topics` every partition of the matching topics) and their new offset
/// by the strategy; positions are clamped to [log start, high watermark]. Errors: `topics`
/// matching no topic, from-mapping without a mapping, a named group that would get no offset
/// (see `groups_without_change`: a group that does not exist fails by name).
pub fn compile_offset_reset(
    name: &str,
    spec: &KafkaOffsetResetSpec,
    facts: &OffsetResetFacts,
) -> Result<OffsetResetPlan, CompileError> {
    let mut issues = vec![];
    let available: Vec<(String, bool)> = facts
        .partitions
        .keys()
        .map(|t| (t.clone(), false))
        .collect();
    let (selected, missing) = select_topics(&spec.topics, &[], &available);
    for (i, t) in missing {
        issues.push(issue(
            format!("spec.topics[{i}]"),
            format!("topic {t:?} does not exist on the cluster"),
        ));
    }
    if !spec.topics.is_empty() && selected.is_empty() && issues.is_empty() {
        issues.push(issue("spec.topics", "matches no topic of the cluster"));
    }
    let groups = if spec.reset_strategy == ResetStrategy::FromMapping {
        match &facts.mapping {
            None => {
                issues.push(issue(
                    "spec.offsetMappingRef",
                    "from-mapping needs an offset mapping: set offsetMappingRef.restoreName (with the KafkaRestore and its KafkaBackup in the files) or offsetMappingRef.path (an offset-map.json)",
                ));
                vec![]
            }
            Some(map) => mapped_groups(spec, facts, map, &selected),
        }
    } else {
        spec.consumer_groups
            .iter()
            .map(|g| strategy_group(spec, facts, g, &selected))
            .collect()
    };
    issues.extend(groups_without_change(spec, facts, &groups));
    if !issues.is_empty() {
        return Err(CompileError(issues));
    }
    let mut plan = OffsetResetPlan {
        name: name.to_string(),
        strategy: spec.reset_strategy,
        dry_run: spec.dry_run,
        parallelism: spec.parallelism,
        continue_on_error: spec.continue_on_error,
        snapshot_before: spec.snapshot_before_reset,
        groups,
        hash: String::new(),
    };
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

/// from-mapping: the groups' positions translated through the offset map `map`
/// ([`translate_groups`]), on the topics in scope (`selected` when `spec.topics` is set), with
/// each partition's high watermark for the lag columns. The positions are the backup's group
/// snapshot when it was reachable, else the groups' commits on the map's source topics. A
/// named group with no position to translate gets an empty plan (refused by
/// `groups_without_change`).
fn mapped_groups(
    spec: &KafkaOffsetResetSpec,
    facts: &OffsetResetFacts,
    map: &OffsetMap,
    selected: &[String],
) -> Vec<GroupOffsetPlan> {
    let in_scope = |t: &str| spec.topics.is_empty() || selected.iter().any(|s| s == t);
    let snapshot: Vec<GroupSnapshot> = match &facts.snapshot {
        Some(s) => s.clone(),
        None => {
            let named: GroupCommits = spec
                .consumer_groups
                .iter()
                .map(|g| {
                    (
                        g.clone(),
                        facts.committed.get(g).cloned().unwrap_or_default(),
                    )
                })
                .collect();
            group_snapshots(&named, |t| {
                map.partitions.iter().any(|p| p.source_topic == t)
            })
        }
    };
    let current = committed_offsets(&facts.committed);
    let mut plans = translate_groups(&snapshot, map, &spec.consumer_groups, &current);
    for g in &spec.consumer_groups {
        if !plans.iter().any(|p| &p.group == g) {
            plans.push(GroupOffsetPlan {
                group: g.clone(),
                changes: vec![],
                skipped: vec!["no position to translate (not in the backup's group snapshot, no commit on the mapped topics)".into()],
                failure: None,
            });
        }
    }
    for p in &mut plans {
        p.changes.retain(|c| in_scope(&c.topic));
        for c in &mut p.changes {
            c.high_watermark = facts
                .offsets
                .get(&(c.topic.clone(), c.partition))
                .map(|o| o.high_watermark);
        }
    }
    plans
}

/// The committed offsets of `c` without their metadata: group -> (topic, partition) -> offset.
fn committed_offsets(c: &GroupCommits) -> BTreeMap<String, BTreeMap<(String, i32), i64>> {
    c.iter()
        .map(|(g, p)| (g.clone(), p.iter().map(|(k, v)| (k.clone(), v.0)).collect()))
        .collect()
}

/// Every strategy but from-mapping, for group `g`: the partitions in scope (its committed
/// partitions, or every partition of the `selected` topics when `spec.topics` is set), each
/// with its new offset ([`strategy_position`]); a partition not on the cluster, or with
/// nothing to shift, is skipped with why.
fn strategy_group(
    spec: &KafkaOffsetResetSpec,
    facts: &OffsetResetFacts,
    g: &str,
    selected: &[String],
) -> GroupOffsetPlan {
    let committed = facts.committed.get(g).cloned().unwrap_or_default();
    let mut parts: Vec<(String, i32)> = if spec.topics.is_empty() {
        committed.keys().cloned().collect()
    } else {
        selected
            .iter()
            .flat_map(|t| {
                (0..facts.partitions.get(t).copied().unwrap_or(0)).map(|p| (t.clone(), p))
            })
            .collect()
    };
    parts.sort();
    let mut plan = GroupOffsetPlan {
        group: g.to_string(),
        changes: vec![],
        skipped: vec![],
        failure: None,
    };
    if parts.is_empty() {
        plan.skipped.push(format!(
            "group {g} has no committed offset; name the topics to reset it on (spec.topics)"
        ));
    }
    for (t, p) in parts {
        let key = (t.clone(), p);
        let Some(o) = facts.offsets.get(&key) else {
            plan.skipped.push(format!("{t}/{p}: not on the cluster"));
            continue;
        };
        let cur = committed.get(&key).cloned();
        let Some((new, from)) = strategy_position(spec, facts, &key, o, cur.as_ref()) else {
            plan.skipped
                .push(format!("{t}/{p}: no committed offset to shift"));
            continue;
        };
        plan.changes.push(OffsetChange {
            topic: t,
            partition: p,
            current: cur.as_ref().map(|c| c.0),
            new,
            metadata: cur.and_then(|c| c.1),
            from,
            high_watermark: Some(o.high_watermark),
            duplicates: 0,
        });
    }
    plan
}

/// The new offset of one partition `key` (log start and high watermark `o`, committed offset
/// and metadata `cur`) by `spec`'s strategy, clamped to [log start, high watermark], with
/// where it comes from for the plan table. None for shift-by without a committed offset.
fn strategy_position(
    spec: &KafkaOffsetResetSpec,
    facts: &OffsetResetFacts,
    key: &(String, i32),
    o: &PartitionOffsets,
    cur: Option<&(i64, Option<String>)>,
) -> Option<(i64, String)> {
    let clamp = |v: i64| v.clamp(o.log_start, o.high_watermark);
    Some(match spec.reset_strategy {
        ResetStrategy::ToEarliest => (o.log_start, "log start".to_string()),
        ResetStrategy::ToLatest => (o.high_watermark, "high watermark".to_string()),
        ResetStrategy::ToTimestamp => {
            let ts = spec.reset_timestamp.unwrap_or(0);
            match facts.by_timestamp.get(key).copied() {
                Some(v) if v >= 0 => (clamp(v), format!("first record at or after {ts}")),
                _ => (
                    o.high_watermark,
                    format!("no record at or after {ts}: the end"),
                ),
            }
        }
        ResetStrategy::ToOffset => {
            let want = spec.reset_offset.unwrap_or(0);
            let v = clamp(want);
            (
                v,
                if v == want {
                    format!("offset {want}")
                } else {
                    format!("offset {want}, clamped to the log")
                },
            )
        }
        ResetStrategy::ShiftBy => {
            let (c, _) = cur?;
            let by = spec.shift_by.unwrap_or(0);
            (clamp(c.saturating_add(by)), format!("{c} shifted by {by}"))
        }
        ResetStrategy::FromMapping => unreachable!("compiled by mapped_groups"),
    })
}

/// Groups a restore's consumer-group step commits at a time.
pub const RESTORE_GROUP_PARALLELISM: u32 = 4;

/// The groups whose commits a restore's consumer-group step reads before it compiles
/// ([`compile_restore_groups`]): the groups it carries over (`offsetReset.consumerGroups`, or
/// every group of the backup's snapshot) that the snapshot has. Empty without a group step.
pub fn restore_group_names(plan: &RestorePlan) -> Vec<String> {
    let Some(gp) = &plan.groups else {
        return vec![];
    };
    let in_snapshot = |n: &String| plan.source_groups.iter().any(|g| &g.group_id == n);
    if gp.only.is_empty() {
        plan.source_groups
            .iter()
            .map(|g| g.group_id.clone())
            .collect()
    } else {
        gp.only.iter().filter(|n| in_snapshot(n)).cloned().collect()
    }
}

/// The consumer-group step of restore `plan` as an offset reset (docs/offsets.md), compiled
/// from the offset map `map` the restore wrote and the groups' commits on the target now
/// (`committed`, of [`restore_group_names`]): every group's snapshot positions carried over by
/// the step's strategy (from-mapping: [`translate_groups`]; to-earliest: the first record
/// the restore wrote on each partition; to-latest: where it ended). A named group that is not
/// in the backup's snapshot is a group with a `failure` (reported, nothing committed); those
/// come first. All groups are committed, [`RESTORE_GROUP_PARALLELISM`] at a time, after a
/// snapshot when `rollback.snapshotBeforeRestore`. None without a group step.
pub fn compile_restore_groups(
    plan: &RestorePlan,
    map: &OffsetMap,
    committed: &GroupCommits,
) -> Option<OffsetResetPlan> {
    let gp = plan.groups.as_ref()?;
    let in_snapshot = |n: &String| plan.source_groups.iter().any(|g| &g.group_id == n);
    let mut groups: Vec<GroupOffsetPlan> = gp
        .only
        .iter()
        .filter(|n| !in_snapshot(n))
        .map(|n| GroupOffsetPlan {
            group: n.clone(),
            changes: vec![],
            skipped: vec![],
            failure: Some(format!(
                "group {n} is not in backup run {}'s consumer-group snapshot (it had no committed offsets on the backed-up topics then)",
                plan.backup_run_id
            )),
        })
        .collect();
    let names = restore_group_names(plan);
    let mut carried = translate_groups(
        &plan.source_groups,
        map,
        &names,
        &committed_offsets(committed),
    );
    if gp.strategy != ResetStrategy::FromMapping {
        // to-earliest: the first record this restore wrote; to-latest: where it ended.
        let bounds = target_bounds(map);
        for c in carried.iter_mut().flat_map(|p| p.changes.iter_mut()) {
            if let Some((first, end)) = bounds.get(&(c.topic.clone(), c.partition)) {
                let v = match gp.strategy {
                    ResetStrategy::ToEarliest => first.or(*end),
                    _ => *end,
                };
                if let Some(v) = v {
                    c.new = v;
                    c.from = gp.strategy.to_string();
                    c.duplicates = 0;
                }
            }
        }
    }
    groups.extend(carried);
    let mut reset = OffsetResetPlan {
        name: plan.restore_name.clone(),
        strategy: gp.strategy,
        dry_run: plan.dry_run,
        parallelism: RESTORE_GROUP_PARALLELISM,
        continue_on_error: true,
        snapshot_before: gp.snapshot_before,
        groups,
        hash: String::new(),
    };
    reset.hash = plan_hash(&reset);
    Some(reset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::GroupOffset;

    fn map(ranges: Vec<[i64; 3]>, end: Option<i64>) -> PartitionOffsetMap {
        PartitionOffsetMap {
            source_topic: "s".into(),
            source_partition: 0,
            target_topic: "t".into(),
            target_partition: 1,
            ranges,
            target_end: end,
            repartition: None,
        }
    }

    /// The worked example of docs/offsets.md, "Repartitioned topics": two source partitions
    /// into one; the group read 3 of partition 0 and 1 of partition 1.
    #[test]
    fn a_repartitioned_topic_starts_at_the_earliest_unread_record() {
        use crate::format::manifest::RepartitionRanks;
        let part = |sp: i32, first: i64, records: u64, ranks: Vec<[i64; 2]>| PartitionOffsetMap {
            source_topic: "orders".into(),
            source_partition: sp,
            target_topic: "orders-r".into(),
            target_partition: 0,
            ranges: vec![],
            target_end: Some(first + records as i64),
            repartition: Some(RepartitionRanks {
                target_first: first,
                records,
                ranks,
            }),
        };
        let om = OffsetMap {
            partitions: vec![
                part(0, 0, 5, vec![[0, 0], [3, 3], [5, 5]]),
                part(1, 5, 3, vec![[0, 0], [1, 1], [3, 3]]),
            ],
            ..Default::default()
        };
        let snap = |positions: &[(i32, i64)]| {
            vec![GroupSnapshot {
                group_id: "g".into(),
                offsets: positions
                    .iter()
                    .map(|(p, o)| GroupOffset {
                        topic: "orders".into(),
                        partition: *p,
                        offset: *o,
                        leader_epoch: -1,
                        metadata: Some("m".into()),
                    })
                    .collect(),
            }]
        };
        let one = |positions: &[(i32, i64)]| {
            let p = translate_groups(&snap(positions), &om, &[], &BTreeMap::new());
            assert_eq!(p[0].changes.len(), 1, "{p:?}");
            let c = &p[0].changes[0];
            (c.new, c.duplicates)
        };
        assert_eq!(one(&[(0, 3), (1, 1)]), (3, 1), "the worked example");
        assert_eq!(one(&[(0, 5), (1, 1)]), (6, 0), "partition 0 read entirely");
        assert_eq!(one(&[(0, 5), (1, 3)]), (8, 0), "caught up: the end");
        assert_eq!(
            one(&[(0, 0), (1, 3)]),
            (0, 3),
            "partition 1 read entirely, 0 not at all"
        );
        // no position on partition 1: counted as not read at all
        assert_eq!(one(&[(0, 5)]), (5, 0));
        // a position between recorded pairs reads the pair before it (never later)
        // (partition 1's three records, already read, follow it: duplicates)
        assert_eq!(one(&[(0, 4), (1, 3)]), (3, 3));
        // metadata kept; a group without a position on the topic is untouched
        let p = translate_groups(&snap(&[(0, 3)]), &om, &[], &BTreeMap::new());
        assert_eq!(p[0].changes[0].metadata.as_deref(), Some("m"));
        let none = translate_groups(
            &[GroupSnapshot {
                group_id: "h".into(),
                offsets: vec![],
            }],
            &om,
            &[],
            &BTreeMap::new(),
        );
        assert!(none[0].changes.is_empty());
        assert_eq!(
            target_bounds(&om)[&("orders-r".to_string(), 0)],
            (Some(0), Some(8))
        );
    }

    /// A restore's group step compiles to an offset reset: a named group missing from the
    /// backup's snapshot first, as a failure; the others translated through the map, or moved
    /// to the end of what the restore wrote with to-latest.
    #[test]
    fn a_restore_group_step_is_an_offset_reset_of_the_offset_map() {
        let group = |id: &str, offset: i64| GroupSnapshot {
            group_id: id.into(),
            offsets: vec![GroupOffset {
                topic: "s".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        };
        let mut plan: RestorePlan = serde_json::from_value(serde_json::json!({
            "restoreName": "r", "backupName": "b", "backupRunId": "run1", "dryRun": false,
            "createTopics": [], "purge": [], "partitions": [], "produceAcks": -1,
            "produceBatchRecords": 1000, "produceTimeoutMs": 30000,
            "maxConcurrentPartitions": 4, "offsetMapPath": "m.json", "estimatedRecords": 0,
            "estimatedBytes": 0, "hash": "",
            "groups": {"only": ["g1", "nope"], "strategy": "from-mapping",
                       "snapshotBefore": true, "autoRollback": false,
                       "snapshotRetentionHours": 24},
        }))
        .unwrap();
        plan.source_groups = vec![group("g1", 4), group("g2", 2)];
        assert_eq!(restore_group_names(&plan), vec!["g1".to_string()]);
        let om = OffsetMap {
            partitions: vec![map(vec![[0, 9, 100]], Some(110))],
            ..Default::default()
        };
        let committed = BTreeMap::from([(
            "g1".to_string(),
            BTreeMap::from([(("t".to_string(), 1), (7, None))]),
        )]);
        let r = compile_restore_groups(&plan, &om, &committed).unwrap();
        assert_eq!(
            (
                r.name.as_str(),
                r.parallelism,
                r.continue_on_error,
                r.snapshot_before
            ),
            ("r", RESTORE_GROUP_PARALLELISM, true, true)
        );
        let names: Vec<&str> = r.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["nope", "g1"]);
        assert!(
            r.groups[0]
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("not in backup run run1's consumer-group snapshot")),
            "{:?}",
            r.groups[0]
        );
        let c = &r.groups[1].changes[0];
        assert_eq!(
            (c.new, c.current, c.from.as_str()),
            (104, Some(7), "source s/0@4")
        );
        plan.groups.as_mut().unwrap().strategy = ResetStrategy::ToLatest;
        let r = compile_restore_groups(&plan, &om, &committed).unwrap();
        let c = &r.groups[1].changes[0];
        assert_eq!((c.new, c.from.as_str()), (110, "to-latest"));
        plan.groups = None;
        assert!(compile_restore_groups(&plan, &om, &committed).is_none());
        assert!(restore_group_names(&plan).is_empty());
    }

    #[test]
    fn the_rule_on_every_kind_of_position() {
        // source 100..=199 restored at 0.., source 200..=209 missing (compaction, an aborted
        // transaction), 210..=249 restored at 100..; the restore ended at target 140
        let m = map(vec![[100, 199, 0], [210, 249, 100]], Some(140));
        assert_eq!(translate_position(&m, 150), Some(50), "inside a range");
        assert_eq!(
            translate_position(&m, 100),
            Some(0),
            "first restored record"
        );
        assert_eq!(
            translate_position(&m, 50),
            Some(0),
            "before the window: its first record"
        );
        assert_eq!(
            translate_position(&m, 200),
            Some(100),
            "in a hole: the next restored record"
        );
        assert_eq!(translate_position(&m, 205), Some(100));
        assert_eq!(
            translate_position(&m, 249),
            Some(139),
            "the last restored record"
        );
        assert_eq!(translate_position(&m, 250), Some(140), "caught up: the end");
        assert_eq!(
            translate_position(&m, 10_000),
            Some(140),
            "past the cut: the end"
        );
        // maps without targetEnd: after the last restored record
        let old = map(vec![[100, 199, 0]], None);
        assert_eq!(translate_position(&old, 300), Some(100));
        // nothing restored on the partition
        assert_eq!(translate_position(&map(vec![], Some(7)), 5), Some(7));
        assert_eq!(translate_position(&map(vec![], None), 5), None);
    }

    /// A reset naming a group that does not exist is refused by name (it would commit
    /// nothing and look like success); with `topics` a new group gets its first offsets (the
    /// opt-in), except by shift-by, which has nothing to shift.
    #[test]
    fn a_group_that_does_not_exist_is_a_plan_error_naming_it_and_the_fix() {
        let mut spec: KafkaOffsetResetSpec = serde_json::from_value(serde_json::json!({
            "kafkaCluster": {"bootstrapServers": ["k:9092"]},
            "consumerGroups": ["orders-app", "orders-ap"],
            "resetStrategy": "to-earliest",
        }))
        .unwrap();
        let facts = OffsetResetFacts {
            partitions: BTreeMap::from([("t".to_string(), 1)]),
            offsets: BTreeMap::from([(
                ("t".to_string(), 0),
                PartitionOffsets {
                    log_start: 2,
                    high_watermark: 10,
                },
            )]),
            committed: BTreeMap::from([(
                "orders-app".to_string(),
                BTreeMap::from([(("t".to_string(), 0), (5, None))]),
            )]),
            ..Default::default()
        };
        let e = compile_offset_reset("r", &spec, &facts).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].field, "spec.consumerGroups[1]");
        assert!(
            e.0[0].message.contains("\"orders-ap\"")
                && e.0[0].message.contains("check the name")
                && e.0[0].message.contains("spec.topics"),
            "{e}"
        );
        spec.topics = vec!["t".into()];
        let p = compile_offset_reset("r", &spec, &facts).unwrap();
        assert_eq!(
            p.groups[1].changes.len(),
            1,
            "the opt-in: {:?}",
            p.groups[1]
        );
        assert_eq!(p.groups[1].changes[0].new, 2);
        spec.reset_strategy = ResetStrategy::ShiftBy;
        spec.shift_by = Some(1);
        let e = compile_offset_reset("r", &spec, &facts).unwrap_err();
        assert!(
            e.0.len() == 1 && e.0[0].message.contains("no committed offset to shift"),
            "{e}"
        );
    }

    #[test]
    fn groups_follow_the_mapping_and_keep_metadata() {
        let om = OffsetMap {
            partitions: vec![map(vec![[0, 9, 100]], Some(110))],
            ..Default::default()
        };
        let snap = vec![
            GroupSnapshot {
                group_id: "g1".into(),
                offsets: vec![
                    GroupOffset {
                        topic: "s".into(),
                        partition: 0,
                        offset: 4,
                        leader_epoch: 3,
                        metadata: Some("m".into()),
                    },
                    GroupOffset {
                        topic: "other".into(),
                        partition: 0,
                        offset: 1,
                        leader_epoch: 0,
                        metadata: None,
                    },
                ],
            },
            GroupSnapshot {
                group_id: "g2".into(),
                offsets: vec![],
            },
        ];
        let committed = BTreeMap::from([(
            "g1".to_string(),
            BTreeMap::from([(("t".to_string(), 1), 7)]),
        )]);
        let p = translate_groups(&snap, &om, &["g1".into()], &committed);
        assert_eq!(p.len(), 1, "only the named group");
        assert_eq!(
            p[0].changes,
            vec![OffsetChange {
                topic: "t".into(),
                partition: 1,
                current: Some(7),
                new: 104,
                metadata: Some("m".into()),
                from: "source s/0@4".into(),
                high_watermark: None,
                duplicates: 0,
            }]
        );
        assert_eq!(p[0].skipped.len(), 1, "{:?}", p[0].skipped);
        assert_eq!(translate_groups(&snap, &om, &[], &BTreeMap::new()).len(), 2);
    }
}
