//! Recoverability (KafkaBackup `status.firstRecoverabilityPoint`, `lastRecoverabilityPoint`,
//! `topics`): the window of record timestamps a point-in-time restore can reach, computed
//! from the manifests of the complete runs. Pure; the operator reads the manifests and writes
//! the status.
//!
//! What "reachable" means (docs/architecture.md, "Recoverability"):
//! - A record is reachable when a complete run (one with a manifest) lists it: its
//!   partition's covered range `coveredFrom..cut` holds it. Each manifest is self-contained
//!   (it lists every segment, earlier runs' too, that its range needs), so an incremental
//!   chain is reachable run by run, as long as the run's manifest is in the repository;
//!   retention deletes no segment a kept run lists.
//! - A run's window is the smallest and the largest record timestamp of the segments its
//!   manifest lists inside the covered ranges (the exact per-segment figures the manifest
//!   records; control batches excluded). The backup's window is the union over its complete
//!   runs: from the earliest first point to the latest last point. A restore picks one run
//!   (the newest by default), whose window is the one that counts for it.
//! - Points are record timestamps (CreateTime as the producer wrote it, or the broker's
//!   append time), not the times the runs took place.
//! - A run without a manifest is not reachable: a failed run, and a run still going (a
//!   continuous backup's current run, until it is stopped and completes) do not move the
//!   window.
//! - The window does not say every instant inside it is restorable: partitions with gaps
//!   (offsets deleted before they were read) are reported per topic.
use std::collections::{BTreeMap, BTreeSet};

use crate::api::{KafkaBackupStatus, STATUS_TOPICS_LIMIT, TopicRecoverability};
use crate::format::manifest::{PartitionManifest, RunManifest};

/// An inclusive window of record timestamps, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Smallest record timestamp, epoch ms.
    pub first_ms: i64,
    /// Largest record timestamp, epoch ms.
    pub last_ms: i64,
}

impl Window {
    /// The smallest window holding both `a` and `b` (either may be absent).
    pub fn union(a: Option<Window>, b: Option<Window>) -> Option<Window> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Window {
                first_ms: a.first_ms.min(b.first_ms),
                last_ms: a.last_ms.max(b.last_ms),
            }),
            (a, b) => a.or(b),
        }
    }

    /// Both ends in RFC 3339 with milliseconds, `first .. last`.
    pub fn describe(&self) -> String {
        format!("{} .. {}", rfc3339(self.first_ms), rfc3339(self.last_ms))
    }
}

/// Epoch ms as RFC 3339 (UTC, fractional seconds when not zero: exact to the ms); the number
/// itself when it is out of range.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The window of one partition of one run: over the segments inside its covered range that
/// hold records with known timestamps (`minTimestamp >= 0`); None when there are none.
pub fn partition_window(p: &PartitionManifest) -> Option<Window> {
    p.segments
        .iter()
        .filter(|s| s.last_offset >= p.covered_from && s.first_offset < p.cut)
        .filter(|s| s.records > 0 && s.min_timestamp >= 0 && s.max_timestamp >= 0)
        .map(|s| Window {
            first_ms: s.min_timestamp,
            last_ms: s.max_timestamp,
        })
        .reduce(|a, b| Window::union(Some(a), Some(b)).expect("both present"))
}

/// The window of run `m` over the partitions `wanted(topic, partition)` selects.
pub fn run_window(m: &RunManifest, wanted: impl Fn(&str, i32) -> bool) -> Option<Window> {
    m.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
        .filter(|(t, p)| wanted(t, p.partition))
        .fold(None, |w, (_, p)| Window::union(w, partition_window(p)))
}

/// One topic's recoverability over the complete runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicWindow {
    pub topic: String,
    /// None when no complete run holds a record of it.
    pub window: Option<Window>,
    /// Partitions with a gap in some complete run, ascending.
    pub partitions_with_gaps: Vec<i32>,
}

/// The recoverability of a backup: its window and every topic's, from its complete runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recoverability {
    /// None when no complete run holds a record.
    pub window: Option<Window>,
    /// Complete runs looked at.
    pub runs: u64,
    /// Every topic of some complete run, by name.
    pub topics: Vec<TopicWindow>,
}

/// The recoverability of the complete runs `runs` (their manifests, any order): the union of
/// the runs' windows, per topic too, and the partitions with gaps.
pub fn recoverability(runs: &[RunManifest]) -> Recoverability {
    let mut topics: BTreeMap<&str, (Option<Window>, BTreeSet<i32>)> = BTreeMap::new();
    for t in runs.iter().flat_map(|m| &m.topics) {
        let entry = topics.entry(&t.name).or_default();
        for p in &t.partitions {
            entry.0 = Window::union(entry.0, partition_window(p));
            if !p.gaps.is_empty() {
                entry.1.insert(p.partition);
            }
        }
    }
    let topics: Vec<TopicWindow> = topics
        .into_iter()
        .map(|(name, (window, gaps))| TopicWindow {
            topic: name.to_string(),
            window,
            partitions_with_gaps: gaps.into_iter().collect(),
        })
        .collect();
    Recoverability {
        window: topics.iter().fold(None, |w, t| Window::union(w, t.window)),
        runs: runs.len() as u64,
        topics,
    }
}

/// Writes `r` into a KafkaBackup's status: both points, the run count, and at most
/// [`STATUS_TOPICS_LIMIT`] topics (those with gaps first, then by name; the rest counted in
/// `topicsOmitted`), each with at most that many partitions with gaps.
pub fn set_status(s: &mut KafkaBackupStatus, r: &Recoverability) {
    s.first_recoverability_point = r.window.map(|w| rfc3339(w.first_ms));
    s.last_recoverability_point = r.window.map(|w| rfc3339(w.last_ms));
    s.recoverable_runs = Some(r.runs);
    let mut order: Vec<&TopicWindow> = r.topics.iter().collect();
    order.sort_by_key(|t| (t.partitions_with_gaps.is_empty(), t.topic.as_str()));
    let omitted = order.len().saturating_sub(STATUS_TOPICS_LIMIT);
    s.topics_omitted = (omitted > 0).then_some(omitted as u64);
    s.topics = order
        .into_iter()
        .take(STATUS_TOPICS_LIMIT)
        .map(|t| {
            let gaps = &t.partitions_with_gaps;
            let left = gaps.len().saturating_sub(STATUS_TOPICS_LIMIT);
            TopicRecoverability {
                name: t.topic.clone(),
                first_recoverability_point: t.window.map(|w| rfc3339(w.first_ms)),
                last_recoverability_point: t.window.map(|w| rfc3339(w.last_ms)),
                partitions_with_gaps: gaps.iter().take(STATUS_TOPICS_LIMIT).copied().collect(),
                partitions_with_gaps_omitted: (left > 0).then_some(left as u64),
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{Gap, SegmentRef, TopicManifest};

    /// A segment of offsets `first..=last` with `records` records stamped `min..=max`.
    fn seg(first: i64, last: i64, records: u64, min: i64, max: i64) -> SegmentRef {
        SegmentRef {
            path: format!("b/data/t/0/{first:020}-r.seg"),
            first_offset: first,
            last_offset: last,
            records,
            raw_bytes: 10,
            stored_bytes: 10,
            min_timestamp: min,
            max_timestamp: max,
            crc32c: 0,
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        }
    }

    fn part(n: i32, from: i64, cut: i64, segs: Vec<SegmentRef>, gap: bool) -> PartitionManifest {
        PartitionManifest {
            partition: n,
            log_start_offset: from,
            covered_from: from,
            cut,
            start_offset: from,
            records: segs.iter().map(|s| s.records).sum(),
            raw_bytes: 0,
            min_timestamp: None,
            max_timestamp: None,
            gaps: if gap {
                vec![Gap {
                    from: 0,
                    to: 1,
                    reason: "deleted by retention during the backup".into(),
                }]
            } else {
                vec![]
            },
            segments: segs,
        }
    }

    fn run(id: &str, topics: Vec<(&str, Vec<PartitionManifest>)>) -> RunManifest {
        RunManifest {
            format: "kafka-backup-operator/v2".into(),
            backup_name: "b".into(),
            run_id: id.into(),
            previous_run_id: None,
            start_time: 0,
            completion_time: 0,
            plan_hash: String::new(),
            cluster_id: None,
            compression: "zstd".into(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| TopicManifest {
                    name: name.into(),
                    topic_id: String::new(),
                    partition_count: partitions.len() as i32,
                    configs: Default::default(),
                    partitions,
                })
                .collect(),
            consumer_groups: vec![],
            total_records: 0,
            total_raw_bytes: 0,
            seal: None,
            object_lock: None,
        }
    }

    fn w(first_ms: i64, last_ms: i64) -> Option<Window> {
        Some(Window { first_ms, last_ms })
    }

    #[test]
    fn an_incremental_chain_reaches_from_the_first_record_to_the_last_run() {
        // r1 stored 0..10 (t=1000..1900); r2 carries r1's segment and adds 10..20
        // (t=2000..2900): the newest manifest alone reaches the whole chain
        let s1 = seg(0, 9, 10, 1000, 1900);
        let s2 = seg(10, 19, 10, 2000, 2900);
        let r1 = run(
            "r1",
            vec![("t", vec![part(0, 0, 10, vec![s1.clone()], false)])],
        );
        let r2 = run("r2", vec![("t", vec![part(0, 0, 20, vec![s1, s2], false)])]);
        assert_eq!(run_window(&r1, |_, _| true), w(1000, 1900));
        assert_eq!(run_window(&r2, |_, _| true), w(1000, 2900));
        let r = recoverability(&[r1.clone(), r2.clone()]);
        assert_eq!((r.window, r.runs), (w(1000, 2900), 2));
        // retention pruned r1: r2 still lists its segment, the window is unchanged
        assert_eq!(recoverability(&[r2]).window, w(1000, 2900));
        // only r1 is left (the newer run's manifest is gone): the window ends with r1
        assert_eq!(recoverability(&[r1]).window, w(1000, 1900));
        assert_eq!(recoverability(&[]), Recoverability::default());
    }

    #[test]
    fn segments_outside_the_covered_range_and_without_records_do_not_count() {
        let p = part(
            0,
            10,
            30,
            vec![
                seg(0, 9, 10, 1, 5),         // below coveredFrom (a recreated topic's old data)
                seg(10, 19, 0, -1, -1),      // control batches only
                seg(20, 29, 10, 7000, 8000), // the covered records
                seg(30, 39, 10, 9000, 9999), // at or past the cut
            ],
            false,
        );
        assert_eq!(partition_window(&p), w(7000, 8000));
        // a straddling segment counts: it holds covered records
        let p = part(0, 5, 30, vec![seg(0, 9, 10, 100, 200)], false);
        assert_eq!(partition_window(&p), w(100, 200));
        assert_eq!(partition_window(&part(0, 0, 0, vec![], false)), None);
    }

    #[test]
    fn topics_have_their_own_windows_and_gaps() {
        let runs = [
            run(
                "r1",
                vec![
                    (
                        "a",
                        vec![part(0, 0, 10, vec![seg(0, 9, 10, 500, 600)], false)],
                    ),
                    (
                        "gone",
                        vec![part(0, 0, 10, vec![seg(0, 9, 1, 50, 60)], false)],
                    ),
                ],
            ),
            run(
                "r2",
                vec![
                    (
                        "a",
                        vec![
                            part(0, 0, 10, vec![seg(0, 9, 10, 500, 600)], false),
                            part(1, 0, 10, vec![seg(0, 9, 10, 700, 800)], true),
                        ],
                    ),
                    ("empty", vec![part(0, 0, 0, vec![], false)]),
                ],
            ),
        ];
        let r = recoverability(&runs);
        assert_eq!(r.window, w(50, 800));
        let by_name: Vec<(&str, Option<Window>, &[i32])> = r
            .topics
            .iter()
            .map(|t| {
                (
                    t.topic.as_str(),
                    t.window,
                    t.partitions_with_gaps.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            by_name,
            vec![
                ("a", w(500, 800), &[1][..]),
                ("empty", None, &[][..]),
                ("gone", w(50, 60), &[][..]),
            ]
        );
        // run_window restricted to one topic
        assert_eq!(run_window(&runs[1], |t, _| t == "a"), w(500, 800));
        assert_eq!(run_window(&runs[1], |t, p| t == "a" && p == 0), w(500, 600));
    }

    #[test]
    fn status_is_bounded_gaps_first_and_exact_to_the_millisecond() {
        let mut topics: Vec<(String, Vec<PartitionManifest>)> = (0..150)
            .map(|i| {
                let ts = 1_704_067_200_000 + i;
                let p = part(0, 0, 1, vec![seg(0, 0, 1, ts, ts + 1)], false);
                (format!("t{i:03}"), vec![p])
            })
            .collect();
        // the last topic by name has 120 partitions, each with a gap
        topics.push((
            "zz".into(),
            (0..120).map(|n| part(n, 0, 0, vec![], true)).collect(),
        ));
        let m = run(
            "r",
            topics
                .iter()
                .map(|(n, p)| (n.as_str(), p.clone()))
                .collect(),
        );
        let mut s = KafkaBackupStatus::default();
        set_status(&mut s, &recoverability(&[m]));
        assert_eq!(
            s.first_recoverability_point.as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            s.last_recoverability_point.as_deref(),
            Some("2024-01-01T00:00:00.15Z")
        );
        assert_eq!(s.recoverable_runs, Some(1));
        assert_eq!(s.topics.len(), STATUS_TOPICS_LIMIT);
        assert_eq!(s.topics_omitted, Some(51));
        assert_eq!(s.topics[0].name, "zz");
        assert_eq!(s.topics[0].partitions_with_gaps.len(), STATUS_TOPICS_LIMIT);
        assert_eq!(s.topics[0].partitions_with_gaps[99], 99);
        assert_eq!(s.topics[0].partitions_with_gaps_omitted, Some(20));
        assert_eq!(s.topics[0].first_recoverability_point, None);
        assert_eq!(s.topics[1].name, "t000");
        assert_eq!(
            s.topics[1].last_recoverability_point.as_deref(),
            Some("2024-01-01T00:00:00.001Z")
        );
        // a smaller repository afterwards (retention): nothing stale is left behind
        set_status(&mut s, &recoverability(&[]));
        assert_eq!(
            (
                s.first_recoverability_point,
                s.topics.len(),
                s.topics_omitted
            ),
            (None, 0, None)
        );
        assert_eq!(s.recoverable_runs, Some(0));
    }
}
