//! Consumer-group positions: the one rule that carries a committed offset across a restore
//! (docs/offsets.md), and compiling the group offsets a restore, a KafkaOffsetReset or a
//! KafkaOffsetRollback will commit. Pure: facts in, a plan out.
//!
//! A committed offset is "the next record to read" (the Kafka protocol guide, OffsetCommit;
//! KIP-211 for its retention). All offsets here are in records' offset space, not counts.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::format::manifest::{GroupSnapshot, OffsetMap, PartitionOffsetMap};

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
pub fn translate_position(map: &PartitionOffsetMap, source: i64) -> Option<i64> {
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
        .map(|p| ((p.source_topic.as_str(), p.source_partition), p))
        .collect();
    snapshot
        .iter()
        .filter(|g| only.is_empty() || only.contains(&g.group_id))
        .map(|g| {
            let current = target_committed.get(&g.group_id);
            let mut changes = Vec::new();
            let mut skipped = Vec::new();
            for o in &g.offsets {
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
                });
            }
            GroupOffsetPlan {
                group: g.group_id.clone(),
                changes,
                skipped,
            }
        })
        .collect()
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
        }
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
            }]
        );
        assert_eq!(p[0].skipped.len(), 1, "{:?}", p[0].skipped);
        assert_eq!(translate_groups(&snap, &om, &[], &BTreeMap::new()).len(), 2);
    }
}
