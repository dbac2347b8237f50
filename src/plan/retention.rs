//! Compiling retention (KafkaBackup `retention`): which runs to prune and which segment
//! objects no retained run needs any more. Pure; the executor deletes.
//!
//! S3 Object Lock (docs/security.md, "Immutable backups (S3 Object Lock)"): a run the rules
//! select whose objects are still locked is kept, reported as "kept until <date> (object
//! lock)", and pruned by a later retention after that date; retention never sends a delete
//! the store must refuse.
use std::collections::BTreeSet;

use serde::Serialize;

use crate::api::RetentionSpec;
use crate::format::manifest::RunManifest;

/// What retention will delete.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    /// Complete runs looked at.
    pub inspected: u64,
    /// Runs the rules select for deletion.
    pub delete_runs: Vec<String>,
    /// Segment objects (and their indexes) no retained run lists.
    pub delete_segments: Vec<String>,
    /// Bytes of those segments.
    pub reclaimed_bytes: u64,
    pub dry_run: bool,
    /// Runs the rules select that S3 Object Lock still protects: kept (with every segment
    /// they list), pruned by a later retention after their date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_locked: Vec<KeptLocked>,
    /// The repository holds object-locked runs (a versioned bucket): a delete removes every
    /// version of the key, not only its current one (a plain DELETE would only add a delete
    /// marker and keep the bytes).
    #[serde(default)]
    pub delete_versions: bool,
}

/// A run kept because its objects are still locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptLocked {
    pub run_id: String,
    /// Epoch ms until which its objects stay locked (see [`locked_until`]).
    pub until_ms: i64,
}

impl std::fmt::Display for KeptLocked {
    /// `run <id> kept until <RFC 3339 date> (object lock)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let date = jiff::Timestamp::from_millisecond(self.until_ms)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.until_ms.to_string());
        write!(f, "run {} kept until {date} (object lock)", self.run_id)
    }
}

/// Epoch ms until which the objects retention would delete for run `m` stay locked, or None
/// for a run without an `objectLock` record. Its own objects were written between its start
/// and its manifest, each locked for `retainDays` from its write, so the latest of them is
/// the manifest, written at `completionTime`: `completionTime + retain_days` (the current
/// `storage.s3.objectLock.retainDays`), and never before the record's `retainUntil`. A
/// manifest written a few seconds after `completionTime`, or under a larger `retainDays`
/// than today's, is refused by the store and reported by the executor (never half-deleted).
pub fn locked_until(m: &RunManifest, retain_days: Option<u32>) -> Option<i64> {
    let rec = m.object_lock.as_ref()?;
    let own = retain_days.map_or(i64::MIN, |d| m.completion_time + d as i64 * 86_400_000);
    Some(rec.retain_until.max(own))
}

/// Selects runs to prune among `runs` (complete runs of one backup, any order) at `now_ms`.
///
/// A run is eligible when it is not among the newest `keepLast` runs (if set) and older than
/// `maxAgeDays` (if set, by completion time). The newest run is never eligible, so at least one
/// good backup always remains. Segments are deleted only when no retained run lists them
/// (later runs list the earlier segments they still need).
pub fn compile_retention(spec: &RetentionSpec, runs: &[RunManifest], now_ms: i64) -> RetentionPlan {
    compile_retention_locked(spec, runs, now_ms, None)
}

/// [`compile_retention`] for a repository with S3 Object Lock: `retain_days` is the current
/// `storage.s3.objectLock.retainDays` (None: not set any more). A selected run whose
/// [`locked_until`] is after `now_ms` is kept ([`RetentionPlan::kept_locked`]) with the
/// segments it lists.
pub fn compile_retention_locked(
    spec: &RetentionSpec,
    runs: &[RunManifest],
    now_ms: i64,
    retain_days: Option<u32>,
) -> RetentionPlan {
    let mut sorted: Vec<&RunManifest> = runs.iter().collect();
    sorted.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    let keep_last = spec.keep_last.map(|k| k.max(1) as usize);
    let max_age_ms = spec.max_age_days.map(|d| d as i64 * 86_400_000);
    let eligible = |i: usize, m: &RunManifest| {
        i > 0
            && (spec.keep_last.is_some() || spec.max_age_days.is_some())
            && keep_last.is_none_or(|k| i >= k)
            && max_age_ms.is_none_or(|age| now_ms - m.completion_time > age)
    };
    let (mut delete, mut keep): (Vec<&RunManifest>, Vec<&RunManifest>) = (vec![], vec![]);
    let mut kept_locked = vec![];
    for (i, m) in sorted.iter().enumerate() {
        let locked = locked_until(m, retain_days).filter(|u| *u > now_ms);
        match (eligible(i, m), locked) {
            (true, None) => delete.push(m),
            (true, Some(until_ms)) => {
                kept_locked.push(KeptLocked {
                    run_id: m.run_id.clone(),
                    until_ms,
                });
                keep.push(m)
            }
            (false, _) => keep.push(m),
        }
    }
    let needed: BTreeSet<&str> = keep.iter().flat_map(|m| segment_paths(m)).collect();
    let mut seen = BTreeSet::new();
    let mut reclaimed = 0;
    let mut delete_segments = Vec::new();
    for m in &delete {
        for t in &m.topics {
            for p in &t.partitions {
                for s in &p.segments {
                    if !needed.contains(s.path.as_str()) && seen.insert(s.path.clone()) {
                        reclaimed += s.stored_bytes;
                        delete_segments.push(s.path.clone());
                    }
                }
            }
        }
    }
    RetentionPlan {
        inspected: runs.len() as u64,
        delete_runs: delete.iter().map(|m| m.run_id.clone()).collect(),
        delete_segments,
        reclaimed_bytes: reclaimed,
        dry_run: spec.dry_run,
        kept_locked,
        delete_versions: runs.iter().any(|m| m.object_lock.is_some()),
    }
}

fn segment_paths(m: &RunManifest) -> impl Iterator<Item = &str> {
    m.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .flat_map(|p| p.segments.iter().map(|s| s.path.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{PartitionManifest, SegmentRef, TopicManifest};

    fn seg(path: &str, bytes: u64) -> SegmentRef {
        SegmentRef {
            path: path.into(),
            first_offset: 0,
            last_offset: 0,
            records: 1,
            raw_bytes: bytes,
            stored_bytes: bytes,
            min_timestamp: 0,
            max_timestamp: 0,
            crc32c: 0,
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        }
    }

    fn run(id: &str, done_ms: i64, segs: &[&str]) -> RunManifest {
        RunManifest {
            format: "kafka-backup-operator/v1".into(),
            backup_name: "b".into(),
            run_id: id.into(),
            previous_run_id: None,
            start_time: done_ms,
            completion_time: done_ms,
            plan_hash: String::new(),
            cluster_id: None,
            compression: "none".into(),
            topics: vec![TopicManifest {
                name: "t".into(),
                topic_id: String::new(),
                partition_count: 1,
                configs: Default::default(),
                partitions: vec![PartitionManifest {
                    partition: 0,
                    log_start_offset: 0,
                    covered_from: 0,
                    cut: 0,
                    start_offset: 0,
                    records: 0,
                    raw_bytes: 0,
                    min_timestamp: None,
                    max_timestamp: None,
                    gaps: vec![],
                    segments: segs.iter().map(|p| seg(p, 100)).collect(),
                }],
            }],
            consumer_groups: vec![],
            total_records: 0,
            total_raw_bytes: 0,
            object_lock: None,
            seal: None,
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn keep_last_never_deletes_the_newest_and_only_unneeded_segments() {
        // r3 still lists s2 (its covered range starts there); s1 fell below the log start
        let runs = vec![
            run("r1", DAY, &["s1"]),
            run("r2", 2 * DAY, &["s1", "s2"]),
            run("r3", 3 * DAY, &["s2", "s3"]),
        ];
        let spec = RetentionSpec {
            enabled: true,
            keep_last: Some(1),
            max_age_days: None,
            dry_run: false,
            credentials_secret: None,
        };
        let p = compile_retention(&spec, &runs, 4 * DAY);
        assert_eq!(p.delete_runs, vec!["r2", "r1"]);
        assert_eq!(p.delete_segments, vec!["s1"]);
        assert_eq!(p.reclaimed_bytes, 100);
        assert_eq!(p.inspected, 3);
    }

    #[test]
    fn a_locked_run_is_kept_with_its_segments_until_its_date_then_pruned() {
        use crate::format::manifest::ObjectLockRecord;
        let lock = |mut m: RunManifest, until: i64| {
            m.object_lock = Some(ObjectLockRecord {
                mode: "COMPLIANCE".into(),
                retain_until: until,
            });
            m
        };
        // r1 (locked 30 days from day 1) and r2 (unlocked) are beyond keepLast 1
        let runs = vec![
            lock(run("r1", DAY, &["s1"]), 31 * DAY),
            run("r2", 2 * DAY, &["s2"]),
            lock(run("r3", 3 * DAY, &["s3"]), 33 * DAY),
        ];
        let spec = RetentionSpec {
            enabled: true,
            keep_last: Some(1),
            max_age_days: None,
            dry_run: false,
            credentials_secret: None,
        };
        let p = compile_retention_locked(&spec, &runs, 10 * DAY, Some(30));
        assert_eq!(p.delete_runs, vec!["r2"]);
        assert_eq!(p.delete_segments, vec!["s2"]);
        assert!(p.delete_versions);
        assert_eq!(
            p.kept_locked,
            vec![KeptLocked {
                run_id: "r1".into(),
                until_ms: 31 * DAY
            }]
        );
        assert_eq!(
            p.kept_locked[0].to_string(),
            "run r1 kept until 1970-02-01T00:00:00Z (object lock)"
        );
        // after the date it goes, with its segment
        let p = compile_retention_locked(&spec, &runs, 31 * DAY + 1, Some(30));
        assert_eq!(p.delete_runs, vec!["r2", "r1"]);
        assert_eq!(p.delete_segments, vec!["s2", "s1"]);
        assert!(p.kept_locked.is_empty());
        // a larger retainDays today keeps it longer (completion + 40 days), never shorter
        let p = compile_retention_locked(&spec, &runs, 31 * DAY + 1, Some(40));
        assert_eq!(p.kept_locked[0].until_ms, 41 * DAY);
        let p = compile_retention_locked(&spec, &runs, 31 * DAY + 1, Some(1));
        assert_eq!(p.delete_runs, vec!["r2", "r1"]);
    }

    #[test]
    fn max_age_and_keep_last_combine_and_the_last_good_backup_stays() {
        let runs = vec![
            run("r1", 0, &["a"]),
            run("r2", 9 * DAY, &["b"]),
            run("r3", 10 * DAY, &["c"]),
        ];
        let both = RetentionSpec {
            enabled: true,
            keep_last: Some(1),
            max_age_days: Some(5),
            dry_run: true,
            credentials_secret: None,
        };
        // r2 is beyond keepLast but only 1 day old: kept; r1 is both
        assert_eq!(
            compile_retention(&both, &runs, 10 * DAY).delete_runs,
            vec!["r1"]
        );
        // everything is ancient: still the newest stays
        let age = RetentionSpec {
            enabled: true,
            keep_last: None,
            max_age_days: Some(1),
            dry_run: false,
            credentials_secret: None,
        };
        assert_eq!(
            compile_retention(&age, &runs, 100 * DAY).delete_runs,
            vec!["r2", "r1"]
        );
        // no rule: nothing
        let none = RetentionSpec {
            enabled: true,
            keep_last: None,
            max_age_days: None,
            dry_run: false,
            credentials_secret: None,
        };
        assert!(
            compile_retention(&none, &runs, 100 * DAY)
                .delete_runs
                .is_empty()
        );
    }
}
