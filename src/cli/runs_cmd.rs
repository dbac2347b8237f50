//! `kubectl kafkabackup runs -f backup.yaml`: the complete runs of a KafkaBackup's repository
//! with their cut, topics, records and bytes, what retention does with them, their latest
//! stored validation verdict, and their S3 Object Lock state (from each run's manifest record;
//! the validation's `objectLock` check verifies the objects themselves). Read only: the storage is opened
//! read-only and nothing is written.
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::OutputFormat;
use super::load::{Target, load};
use super::validations::{RunValidation, stored_validations};
use crate::api::KafkaBackup;
use crate::format::layout;
use crate::format::manifest::{Gap, PartitionManifest, RunManifest};
use crate::plan::{Recoverability, recoverability};

/// One run as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub run_id: String,
    /// RFC 3339.
    pub completion_time: String,
    pub records: u64,
    /// Raw record bytes (`totalRawBytes`).
    pub bytes: u64,
    /// The run's S3 Object Lock, or null: written without `storage.s3.objectLock`.
    pub object_lock: Option<LockState>,
    /// RFC 3339: when the run started (its cut was read then).
    pub start_time: String,
    /// The run this one continued from (an incremental chain), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_run_id: Option<String>,
    /// Topics and partitions the run covers.
    pub topic_count: usize,
    pub partition_count: usize,
    /// Gaps (offset ranges that could not be read) over all its partitions.
    pub gap_count: usize,
    /// What the KafkaBackup's retention does with the run at its next pass: `kept`,
    /// `pruned by the next retention pass`, `would be pruned (dryRun)`, `kept until <date>
    /// (object lock)`, or `kept (retention off)`.
    pub retention: String,
    /// Per topic and partition: the cut (the high watermark the run stopped at), the offset
    /// range it covers, records, bytes, timestamps and gaps.
    pub topics: Vec<TopicRow>,
    /// The newest stored validation report of the run (`<backup>/validations/`), or null:
    /// never validated.
    pub validation: Option<ValidationMark>,
}

/// A run's latest validation verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationMark {
    /// `passed`, `failed` or `skipped`.
    pub result: String,
    /// RFC 3339: when the report was made.
    pub time: String,
    /// The KafkaBackupValidation that made it.
    pub validation: String,
}

/// The verdict of the newest of a run's reports (`reports` oldest first), or None.
pub fn validation_mark(reports: &[RunValidation]) -> Option<ValidationMark> {
    let v = reports.last()?;
    let result = match v.result.as_str() {
        "Pass" => "passed".to_string(),
        "Fail" => "failed".to_string(),
        "Skip" => "skipped".to_string(),
        other => other.to_lowercase(),
    };
    Some(ValidationMark {
        result,
        time: v.generated_at.clone(),
        validation: v.validation.clone(),
    })
}

/// Sets each row's [`RunRow::validation`] from the reports of every run, by run id
/// ([`super::validations::stored_validations`]).
pub fn mark_validations(rows: &mut [RunRow], reports: &BTreeMap<String, Vec<RunValidation>>) {
    for r in rows {
        r.validation = reports.get(&r.run_id).and_then(|v| validation_mark(v));
    }
}

/// One topic of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRow {
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub partitions: Vec<PartitionRow>,
}

/// One partition of a run, as its manifest records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionRow {
    pub partition: i32,
    /// Log start offset when the run began.
    pub log_start_offset: i64,
    /// First offset a restore of this run can restore (inclusive).
    pub covered_from: i64,
    /// First offset this run fetched itself (earlier runs cover `coveredFrom..startOffset`).
    pub start_offset: i64,
    /// The cut: offsets below it are covered (exclusive); the high watermark read before any
    /// fetch for a `stopAtCurrentOffsets` run.
    pub cut: i64,
    pub records: u64,
    /// Raw record bytes.
    pub bytes: u64,
    /// Bytes of the segment objects that hold the covered range (after compression).
    pub stored_bytes: u64,
    /// RFC 3339, smallest and largest record timestamp in the covered range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timestamp: Option<String>,
    /// Segments that hold the covered range, and how many of them this run wrote.
    pub segments: usize,
    pub own_segments: usize,
    pub gaps: Vec<Gap>,
}

/// A run's lock as its manifest records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockState {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// RFC 3339: every object of the run is locked until at least this date.
    pub retain_until: String,
    /// The date is still ahead: no delete of its objects can succeed yet (in GOVERNANCE mode,
    /// except by a user with `s3:BypassGovernanceRetention`).
    pub locked: bool,
}

/// RFC 3339 of an epoch-ms timestamp (the number itself when out of range).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A partition's row from its manifest entry (`run`: the run id, for `ownSegments`).
pub fn partition_row(p: &PartitionManifest, run: &str) -> PartitionRow {
    PartitionRow {
        partition: p.partition,
        log_start_offset: p.log_start_offset,
        covered_from: p.covered_from,
        start_offset: p.start_offset,
        cut: p.cut,
        records: p.records,
        bytes: p.raw_bytes,
        stored_bytes: p.segments.iter().map(|s| s.stored_bytes).sum(),
        min_timestamp: p.min_timestamp.map(rfc3339),
        max_timestamp: p.max_timestamp.map(rfc3339),
        segments: p.segments.len(),
        own_segments: p
            .segments
            .iter()
            .filter(|s| layout::segment_run(&s.path) == Some(run))
            .count(),
        gaps: p.gaps.clone(),
    }
}

/// What retention does with each run of `runs` at `now_ms` (see [`RunRow::retention`]).
pub fn retention_states(
    kb: &KafkaBackup,
    runs: &[RunManifest],
    now_ms: i64,
) -> BTreeMap<String, String> {
    let spec = &kb.spec.retention;
    if !spec.enabled {
        return runs
            .iter()
            .map(|m| (m.run_id.clone(), "kept (retention off)".to_string()))
            .collect();
    }
    // as retention itself reads it (kinds::retention::apply)
    let retain_days = (kb.spec.storage.storage_type == crate::api::StorageType::S3)
        .then(|| kb.spec.storage.s3.as_ref()?.object_lock.as_ref())
        .flatten()
        .map(|l| l.retain_days);
    let plan = crate::plan::compile_retention_locked(spec, runs, now_ms, retain_days);
    let mut out: BTreeMap<String, String> = runs
        .iter()
        .map(|m| (m.run_id.clone(), "kept".to_string()))
        .collect();
    for r in &plan.delete_runs {
        let what = if plan.dry_run {
            "would be pruned (dryRun)"
        } else {
            "pruned by the next retention pass"
        };
        out.insert(r.clone(), what.into());
    }
    for k in &plan.kept_locked {
        out.insert(
            k.run_id.clone(),
            format!("kept until {} (object lock)", rfc3339(k.until_ms)),
        );
    }
    out
}

/// A run's row; `retention` from [`retention_states`].
pub fn run_row(m: &RunManifest, retention: String, now_ms: i64) -> RunRow {
    let topics: Vec<TopicRow> = m
        .topics
        .iter()
        .map(|t| TopicRow {
            name: t.name.clone(),
            records: t.partitions.iter().map(|p| p.records).sum(),
            bytes: t.partitions.iter().map(|p| p.raw_bytes).sum(),
            partitions: t
                .partitions
                .iter()
                .map(|p| partition_row(p, &m.run_id))
                .collect(),
        })
        .collect();
    let parts = || topics.iter().flat_map(|t| &t.partitions);
    RunRow {
        run_id: m.run_id.clone(),
        completion_time: rfc3339(m.completion_time),
        records: m.total_records,
        bytes: m.total_raw_bytes,
        object_lock: m.object_lock.as_ref().map(|l| LockState {
            mode: l.mode.clone(),
            retain_until: rfc3339(l.retain_until),
            locked: l.retain_until > now_ms,
        }),
        start_time: rfc3339(m.start_time),
        previous_run_id: m.previous_run_id.clone(),
        topic_count: topics.len(),
        partition_count: parts().count(),
        gap_count: parts().map(|p| p.gaps.len()).sum(),
        retention,
        topics,
        validation: None,
    }
}

/// The KafkaBackup in the files (`--name` picks one), its name and its repository opened
/// read-only.
pub fn open_backup(
    inputs: &super::Inputs,
    what: &str,
) -> anyhow::Result<(Box<KafkaBackup>, String, opendal::Operator)> {
    let (target, secrets) = load(&inputs.files, inputs.name.as_deref())?;
    let Target::Backup(kb) = target else {
        anyhow::bail!(
            "{what}: the files hold no KafkaBackup (give its YAML and its Secrets with -f; --name picks one)"
        );
    };
    let name = kb.metadata.name.clone().unwrap_or_default();
    let storage = crate::observe::storage_target(
        &kb.spec.storage,
        &secrets,
        &inputs.pvc_root,
        "spec.storage",
    )?;
    let op = storage.open_read_only()?;
    Ok((kb, name, op))
}

/// The runs of the KafkaBackup in the files (`--name` picks one), oldest first, at `now_ms`.
pub async fn rows(inputs: &super::Inputs, now_ms: i64) -> anyhow::Result<(String, Vec<RunRow>)> {
    let (name, rows, _) = rows_and_recoverability(inputs, now_ms).await?;
    Ok((name, rows))
}

/// [`rows`] and the recoverability of the same complete runs (`plan::recoverability`).
pub async fn rows_and_recoverability(
    inputs: &super::Inputs,
    now_ms: i64,
) -> anyhow::Result<(String, Vec<RunRow>, Recoverability)> {
    let (kb, name, op) = open_backup(inputs, "runs")?;
    let mut runs = crate::observe::load_complete_manifests(&op, &name).await?;
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let mut kept = retention_states(&kb, &runs, now_ms);
    let mut rows: Vec<RunRow> = runs
        .iter()
        .map(|m| {
            let r = kept.remove(&m.run_id).unwrap_or_default();
            run_row(m, r, now_ms)
        })
        .collect();
    mark_validations(&mut rows, &stored_validations(&op, &name).await?);
    Ok((name, rows, recoverability(&runs)))
}

/// Partitions listed on a topic's cut line of the table; the rest are counted (all of them
/// are in `-o yaml`/`-o json`).
const CUT_PARTITIONS_SHOWN: usize = 8;
/// Topics listed under a run in the table.
const TOPICS_SHOWN: usize = 10;

fn lock_text(l: &Option<LockState>) -> String {
    match l {
        Some(l) if l.locked => format!("{} until {}", l.mode, l.retain_until),
        Some(l) => format!("{} until {} (expired)", l.mode, l.retain_until),
        None => "not locked".into(),
    }
}

/// `    orders: cut 0@1200 1@1180 (+3 more), 2400 records, 1.2 MiB, 1 gap`.
fn topic_line(t: &TopicRow) -> String {
    let mut cut: Vec<String> = t
        .partitions
        .iter()
        .take(CUT_PARTITIONS_SHOWN)
        .map(|p| format!("{}@{}", p.partition, p.cut))
        .collect();
    if t.partitions.len() > CUT_PARTITIONS_SHOWN {
        cut.push(format!(
            "(+{} more)",
            t.partitions.len() - CUT_PARTITIONS_SHOWN
        ));
    }
    let gaps: usize = t.partitions.iter().map(|p| p.gaps.len()).sum();
    let gaps = match gaps {
        0 => String::new(),
        1 => ", 1 gap".into(),
        n => format!(", {n} gaps"),
    };
    format!(
        "    {}: cut {}, {} records, {}{gaps}\n",
        t.name,
        cut.join(" "),
        t.records,
        super::status_cmd::human_bytes(t.bytes)
    )
}

/// The VALIDATION cell of a run: `passed <time>`, `failed <time>`, or `-` (never validated).
fn validation_text(v: &Option<ValidationMark>) -> String {
    match v {
        Some(v) => format!("{} {}", v.result, v.time),
        None => "-".into(),
    }
}

/// The `runs` table: RUN ID, COMPLETED, TOPICS, PARTITIONS, RECORDS, BYTES, GAPS, RETENTION,
/// VALIDATION (the latest report's verdict and time, `-` when never validated),
/// LOCK (`COMPLIANCE until <date>`, `... (expired)`, or `not locked`); under each run one
/// line per topic with its cut (`partition@offset`), records, bytes and gaps.
pub fn table(name: &str, rows: &[RunRow]) -> String {
    let rw = rows
        .iter()
        .map(|r| r.retention.chars().count())
        .max()
        .unwrap_or(0)
        .max("RETENTION".len());
    let vw = rows
        .iter()
        .map(|r| validation_text(&r.validation).chars().count())
        .max()
        .unwrap_or(0)
        .max("VALIDATION".len());
    let mut s = format!(
        "{:<22}  {:<24}  {:>6}  {:>10}  {:>12}  {:>14}  {:>4}  {:<rw$}  {:<vw$}  LOCK\n",
        "RUN ID",
        "COMPLETED",
        "TOPICS",
        "PARTITIONS",
        "RECORDS",
        "BYTES",
        "GAPS",
        "RETENTION",
        "VALIDATION"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<22}  {:<24}  {:>6}  {:>10}  {:>12}  {:>14}  {:>4}  {:<rw$}  {:<vw$}  {}\n",
            r.run_id,
            r.completion_time,
            r.topic_count,
            r.partition_count,
            r.records,
            r.bytes,
            r.gap_count,
            r.retention,
            validation_text(&r.validation),
            lock_text(&r.object_lock)
        ));
        for t in r.topics.iter().take(TOPICS_SHOWN) {
            s.push_str(&topic_line(t));
        }
        if r.topics.len() > TOPICS_SHOWN {
            s.push_str(&format!(
                "    (+{} more topics: -o yaml lists every partition)\n",
                r.topics.len() - TOPICS_SHOWN
            ));
        }
    }
    if rows.is_empty() {
        s.push_str(&format!("no complete run of {name} yet\n"));
    }
    s
}

/// `kubectl kafkabackup runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub plan: super::PlanArgs,
    /// Also write the repository as a timeline to FILE: one self-contained HTML page (inline
    /// SVG; no script, nothing loaded from the network) with the runs along time, their
    /// retention and Object Lock marks, and each topic's recoverable window with its gaps.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// `runs`' output without `--html`: every complete run, oldest first, as a table
/// ([`table`]), or YAML or JSON with every partition's offset range, cut and gaps.
pub fn print(output: OutputFormat, name: &str, rows: &[RunRow]) -> anyhow::Result<String> {
    Ok(match output {
        OutputFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&rows)?,
        OutputFormat::Table => table(name, rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{ObjectLockRecord, SegmentRef, TopicManifest};

    const DAY: i64 = 86_400_000;

    fn seg(path: &str, first: i64, last: i64) -> SegmentRef {
        SegmentRef {
            path: path.into(),
            first_offset: first,
            last_offset: last,
            records: (last - first + 1) as u64,
            raw_bytes: 1000,
            stored_bytes: 400,
            min_timestamp: 1_000,
            max_timestamp: 2_000,
            crc32c: 0,
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        }
    }

    fn part(
        partition: i32,
        cut: i64,
        segments: Vec<SegmentRef>,
        gaps: Vec<Gap>,
    ) -> PartitionManifest {
        PartitionManifest {
            partition,
            log_start_offset: 0,
            covered_from: 0,
            cut,
            start_offset: 50,
            records: cut as u64,
            raw_bytes: 10 * cut as u64,
            min_timestamp: Some(1_764_000_000_000),
            max_timestamp: Some(1_764_000_060_000),
            gaps,
            segments,
        }
    }

    fn run(id: &str, done_ms: i64, partitions: usize) -> RunManifest {
        let parts = (0..partitions as i32)
            .map(|p| {
                let gaps = if p == 1 {
                    vec![Gap {
                        from: 10,
                        to: 20,
                        reason: "deleted by retention".into(),
                    }]
                } else {
                    vec![]
                };
                let segs = vec![
                    seg(&format!("b/data/orders/{p}/{:020}-r0.seg", 0), 0, 49),
                    seg(&format!("b/data/orders/{p}/{:020}-{id}.seg", 50), 50, 99),
                ];
                part(p, 100 + p as i64, segs, gaps)
            })
            .collect();
        RunManifest {
            format: "kafka-backup-operator/v2".into(),
            backup_name: "b".into(),
            run_id: id.into(),
            previous_run_id: Some("r0".into()),
            start_time: done_ms - 1000,
            completion_time: done_ms,
            plan_hash: String::new(),
            cluster_id: None,
            compression: "zstd".into(),
            topics: vec![TopicManifest {
                name: "orders".into(),
                topic_id: String::new(),
                partition_count: partitions as i32,
                configs: Default::default(),
                partitions: parts,
            }],
            consumer_groups: vec![],
            total_records: 300,
            total_raw_bytes: 3000,
            object_lock: None,
            seal: None,
        }
    }

    fn backup(retention: serde_json::Value) -> KafkaBackup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": "b"},
            "spec": {"kafkaCluster": {"bootstrapServers": ["k:9092"]}, "topics": ["orders"],
                     "storage": {"storageType": "filesystem", "filesystem": {"path": "/b"}},
                     "retention": retention}
        }))
        .unwrap()
    }

    #[test]
    fn a_run_row_has_its_cut_ranges_gaps_and_own_segments() {
        let r = run_row(&run("r1", 10 * DAY, 3), "kept".into(), 0);
        assert_eq!((r.topic_count, r.partition_count, r.gap_count), (1, 3, 1));
        assert_eq!(r.previous_run_id.as_deref(), Some("r0"));
        let p = &r.topics[0].partitions[2];
        assert_eq!((p.covered_from, p.start_offset, p.cut), (0, 50, 102));
        assert_eq!((p.segments, p.own_segments, p.stored_bytes), (2, 1, 800));
        assert_eq!(p.min_timestamp.as_deref(), Some("2025-11-24T16:00:00Z"));
        assert_eq!(r.topics[0].records, 100 + 101 + 102);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["topics"][0]["partitions"][1]["gaps"][0]["to"], 20, "{j}");
        assert_eq!(j["topics"][0]["partitions"][1]["cut"], 101, "{j}");
    }

    #[test]
    fn retention_says_which_runs_the_next_pass_prunes_and_which_a_lock_keeps() {
        let mut runs = vec![
            run("r1", DAY, 1),
            run("r2", 2 * DAY, 1),
            run("r3", 3 * DAY, 1),
        ];
        let off = retention_states(&backup(serde_json::json!({})), &runs, 4 * DAY);
        assert!(off.values().all(|v| v == "kept (retention off)"), "{off:?}");
        let kb = backup(serde_json::json!({"enabled": true, "keepLast": 1}));
        runs[0].object_lock = Some(ObjectLockRecord {
            mode: "COMPLIANCE".into(),
            retain_until: 5 * DAY,
        });
        let st = retention_states(&kb, &runs, 4 * DAY);
        assert_eq!(st["r1"], "kept until 1970-01-06T00:00:00Z (object lock)");
        assert_eq!(st["r2"], "pruned by the next retention pass");
        assert_eq!(st["r3"], "kept");
        let dry = backup(serde_json::json!({"enabled": true, "keepLast": 1, "dryRun": true}));
        assert_eq!(
            retention_states(&dry, &runs, 4 * DAY)["r2"],
            "would be pruned (dryRun)"
        );
    }

    #[test]
    fn the_table_keeps_its_columns_and_lists_each_topics_cut_under_the_run() {
        let mut m = run("20261206T100000.000Z", DAY, 10);
        m.object_lock = Some(ObjectLockRecord {
            mode: "GOVERNANCE".into(),
            retain_until: 2 * DAY,
        });
        let rows = vec![
            run_row(&run("20261205T100000.000Z", DAY, 2), "kept".into(), 3 * DAY),
            run_row(&m, "kept".into(), 0),
        ];
        let t = table("b", &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("RUN ID") && lines[0].ends_with("LOCK"),
            "{t}"
        );
        for h in [
            "COMPLETED",
            "TOPICS",
            "PARTITIONS",
            "RECORDS",
            "BYTES",
            "GAPS",
            "RETENTION",
        ] {
            assert!(lines[0].contains(h), "{h}: {t}");
        }
        assert!(
            lines[1].starts_with("20261205T100000.000Z") && lines[1].ends_with("not locked"),
            "{t}"
        );
        assert_eq!(
            lines[2], "    orders: cut 0@100 1@101, 201 records, 2.0 KiB, 1 gap",
            "{t}"
        );
        assert!(
            lines[3].ends_with("GOVERNANCE until 1970-01-03T00:00:00Z"),
            "{t}"
        );
        assert!(lines[4].contains("7@107 (+2 more),"), "{t}");
        // the numeric columns line up with their headers' right edges
        let edge = |l: &str, w: &str| l.find(w).unwrap() + w.len();
        assert_eq!(edge(lines[0], "RECORDS"), edge(lines[1], " 300"), "{t}");
        assert!(table("b", &[]).ends_with("no complete run of b yet\n"));
    }

    fn report(validation: &str, at: &str, result: &str) -> RunValidation {
        RunValidation {
            validation: validation.into(),
            report_id: format!("{validation}-1"),
            generated_at: at.into(),
            result: result.into(),
            checks: 3,
            checks_failed: usize::from(result == "Fail"),
            signed: false,
        }
    }

    #[test]
    fn each_row_carries_its_latest_validation_verdict() {
        let mut rows: Vec<RunRow> = ["r1", "r2", "r3"]
            .iter()
            .map(|id| run_row(&run(id, DAY, 1), "kept".into(), 0))
            .collect();
        let mut reports = BTreeMap::new();
        reports.insert(
            "r1".to_string(),
            vec![report("nightly", "2026-12-06T02:00:00Z", "Pass")],
        );
        // oldest first: the failed report is r2's latest
        reports.insert(
            "r2".to_string(),
            vec![
                report("nightly", "2026-12-05T02:00:00Z", "Pass"),
                report("weekly", "2026-12-06T03:00:00Z", "Fail"),
            ],
        );
        mark_validations(&mut rows, &reports);
        let v1 = rows[0].validation.as_ref().unwrap();
        assert_eq!(
            (v1.result.as_str(), v1.time.as_str(), v1.validation.as_str()),
            ("passed", "2026-12-06T02:00:00Z", "nightly")
        );
        let v2 = rows[1].validation.as_ref().unwrap();
        assert_eq!(
            (v2.result.as_str(), v2.validation.as_str()),
            ("failed", "weekly")
        );
        assert!(rows[2].validation.is_none());
        let j = serde_json::to_value(&rows).unwrap();
        assert_eq!(
            j[1]["validation"],
            serde_json::json!({"result": "failed", "time": "2026-12-06T03:00:00Z", "validation": "weekly"})
        );
        assert_eq!(j[2]["validation"], serde_json::Value::Null);
        let t = table("b", &rows);
        let lines: Vec<&str> = t.lines().collect();
        let col = lines[0].find("VALIDATION").unwrap();
        assert_eq!(
            lines[1].find("passed 2026-12-06T02:00:00Z"),
            Some(col),
            "{t}"
        );
        assert_eq!(
            lines[3].find("failed 2026-12-06T03:00:00Z"),
            Some(col),
            "{t}"
        );
        assert_eq!(lines[5].get(col..col + 2), Some("- "), "{t}");
    }
}
