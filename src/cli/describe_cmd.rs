//! `kubectl kafkabackup describe run NAME ID -f backup.yaml`: one complete run of a
//! KafkaBackup's repository in detail, from storage: every partition's covered offset range,
//! cut, records, bytes, timestamps, segments and gaps, the validations that checked it, its S3
//! Object Lock, what retention does with it, and the repository lock. Read only.
use clap::Args;
use serde::Serialize;

use super::OutputFormat;
use super::runs_cmd::{
    LockState, PartitionRow, open_backup, partition_row, retention_states, rfc3339,
};
use super::status_cmd::human_bytes;
pub use super::validations::RunValidation;
use crate::format::manifest::RunManifest;

/// `describe` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DescribeCommand {
    /// One complete run of a KafkaBackup (its YAML and Secrets with -f): every partition's
    /// offset range, cut, records, bytes, timestamps, segments and gaps; its validations,
    /// Object Lock, retention state, and the repository lock. Read only.
    Run(DescribeRunArgs),
}

/// `describe run NAME ID`.
#[derive(Debug, Args)]
pub struct DescribeRunArgs {
    /// The KafkaBackup (among the -f files).
    #[arg(value_name = "NAME")]
    pub backup: String,
    /// The run id (`kubectl kafkabackup runs`), or `latest` for the newest complete run.
    #[arg(value_name = "ID")]
    pub run_id: String,
    /// The KafkaBackup's YAML and the Secrets its storage names.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Directory where storageType pvc claims are mapped: <pvc-root>/<claimName>/<subPath>.
    #[arg(long, default_value = "./kbo-pvc", env = "KBO_PVC_ROOT")]
    pub pvc_root: std::path::PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// One run in detail.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    pub backup: String,
    pub run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_run_id: Option<String>,
    /// RFC 3339.
    pub start_time: String,
    pub completion_time: String,
    pub compression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub plan_hash: String,
    /// The run's data is encrypted (its manifest carries a seal).
    pub encrypted: bool,
    pub records: u64,
    pub bytes: u64,
    /// Consumer groups in the run's offset snapshot.
    pub consumer_groups: usize,
    pub object_lock: Option<LockState>,
    /// What retention does with the run at its next pass (as `runs` says).
    pub retention: String,
    /// The repository lock (`<backup>/lock.json`) now: who holds it, for what, until when; or
    /// null when free.
    pub repository_lock: Option<RepositoryLock>,
    /// The stored validation reports of this run, oldest first.
    pub validations: Vec<RunValidation>,
    pub partitions: Vec<TopicPartition>,
}

/// The repository lock as its document says.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryLock {
    pub holder: String,
    pub purpose: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Its expiry is past: the next writer takes it over.
    pub expired: bool,
}

/// One partition of the run, with its topic.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPartition {
    pub topic: String,
    #[serde(flatten)]
    pub partition: PartitionRow,
}

/// The run's detail, without the validations and the repository lock (pure).
pub fn detail(backup: &str, m: &RunManifest, retention: String, now_ms: i64) -> RunDetail {
    RunDetail {
        backup: backup.to_string(),
        run_id: m.run_id.clone(),
        previous_run_id: m.previous_run_id.clone(),
        start_time: rfc3339(m.start_time),
        completion_time: rfc3339(m.completion_time),
        compression: m.compression.clone(),
        cluster_id: m.cluster_id.clone(),
        plan_hash: m.plan_hash.clone(),
        encrypted: m.seal.is_some(),
        records: m.total_records,
        bytes: m.total_raw_bytes,
        consumer_groups: m.consumer_groups.len(),
        object_lock: m.object_lock.as_ref().map(|l| LockState {
            mode: l.mode.clone(),
            retain_until: rfc3339(l.retain_until),
            locked: l.retain_until > now_ms,
        }),
        retention,
        repository_lock: None,
        validations: vec![],
        partitions: m
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| TopicPartition {
                    topic: t.name.clone(),
                    partition: partition_row(p, &m.run_id),
                })
            })
            .collect(),
    }
}

/// The header lines of the table output.
fn header(d: &RunDetail) -> String {
    let mut s = format!(
        "Backup:          {}\nRun:             {}\n",
        d.backup, d.run_id
    );
    let mut line = |k: &str, v: String| s.push_str(&format!("{:<17}{v}\n", format!("{k}:")));
    line(
        "Previous run",
        d.previous_run_id
            .clone()
            .unwrap_or_else(|| "none (a full run)".into()),
    );
    line("Started", d.start_time.clone());
    line("Completed", d.completion_time.clone());
    line(
        "Records",
        format!(
            "{} ({} bytes, {})",
            d.records,
            d.bytes,
            human_bytes(d.bytes)
        ),
    );
    line("Compression", d.compression.clone());
    line("Encrypted", if d.encrypted { "yes" } else { "no" }.into());
    line("Consumer groups", d.consumer_groups.to_string());
    line("Plan hash", d.plan_hash.clone());
    line(
        "Object Lock",
        match &d.object_lock {
            Some(l) if l.locked => format!("{} until {}", l.mode, l.retain_until),
            Some(l) => format!("{} until {} (expired)", l.mode, l.retain_until),
            None => "not locked".into(),
        },
    );
    line("Retention", d.retention.clone());
    line(
        "Repository lock",
        match &d.repository_lock {
            None => "free".into(),
            Some(l) => format!(
                "held by {} for {} until {}{}",
                l.holder,
                l.purpose,
                l.expires_at,
                if l.expired { " (expired)" } else { "" }
            ),
        },
    );
    s
}

/// The validations lines of the table output.
fn validations(d: &RunDetail) -> String {
    if d.validations.is_empty() {
        return "Validations:     none stored for this run\n".into();
    }
    let mut s = "Validations:\n".to_string();
    for v in &d.validations {
        s.push_str(&format!(
            "  {} {}: {} at {}, {} checks, {} failed{}\n",
            v.validation,
            v.report_id,
            v.result,
            v.generated_at,
            v.checks,
            v.checks_failed,
            if v.signed { ", signed" } else { "" }
        ));
    }
    s
}

/// The partitions table and the gaps under it.
fn partitions(d: &RunDetail) -> String {
    let mut grid = vec![
        [
            "TOPIC",
            "PARTITION",
            "COVERED",
            "CUT",
            "RECORDS",
            "BYTES",
            "STORED",
            "TIMESTAMPS",
            "SEGMENTS",
            "GAPS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for tp in &d.partitions {
        let p = &tp.partition;
        let ts = match (&p.min_timestamp, &p.max_timestamp) {
            (Some(a), Some(b)) => format!("{a} .. {b}"),
            _ => "-".into(),
        };
        grid.push(vec![
            tp.topic.clone(),
            p.partition.to_string(),
            format!("{}..{}", p.covered_from, p.cut),
            p.cut.to_string(),
            p.records.to_string(),
            p.bytes.to_string(),
            p.stored_bytes.to_string(),
            ts,
            format!("{} ({} own)", p.segments, p.own_segments),
            p.gaps.len().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..grid[0].len())
        .map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::from("\n");
    for r in &grid {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    let gaps: Vec<String> = d
        .partitions
        .iter()
        .flat_map(|tp| {
            tp.partition.gaps.iter().map(move |g| {
                format!(
                    "  {}/{}: offsets {}..{} ({})\n",
                    tp.topic, tp.partition.partition, g.from, g.to, g.reason
                )
            })
        })
        .collect();
    if !gaps.is_empty() {
        s.push_str("\nGaps (offsets in the covered range a restore of this run misses):\n");
        s.extend(gaps);
    }
    s
}

/// The table output: header, validations, partitions, gaps.
pub fn table(d: &RunDetail) -> String {
    format!("{}{}{}", header(d), validations(d), partitions(d))
}

/// The repository lock document, if one is there.
async fn repository_lock(
    op: &opendal::Operator,
    backup: &str,
    now_ms: i64,
) -> anyhow::Result<Option<RepositoryLock>> {
    let path = crate::format::layout::backup_lock(backup);
    let Some(bytes) = crate::storage::read_opt(op, &path).await? else {
        return Ok(None);
    };
    let doc: crate::exec::lock::LockDoc = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{path} is not a lock document: {e}"))?;
    Ok(Some(RepositoryLock {
        holder: doc.holder,
        purpose: doc.purpose,
        expires_at: rfc3339(doc.expires_at),
        expired: doc.expires_at <= now_ms,
    }))
}

/// `describe run NAME ID`.
pub async fn describe(c: &DescribeCommand) -> anyhow::Result<String> {
    let DescribeCommand::Run(a) = c;
    let inputs = super::Inputs {
        files: a.files.clone(),
        name: Some(a.backup.clone()),
        pvc_root: a.pvc_root.clone(),
        snapshot_dir: Default::default(),
    };
    let now = crate::exec::engine::system_now_ms();
    let (kb, name, op) = open_backup(&inputs, "describe run")?;
    let mut runs = crate::observe::load_complete_manifests(&op, &name).await?;
    runs.sort_by(|x, y| x.run_id.cmp(&y.run_id));
    let m = match a.run_id.as_str() {
        "latest" => runs.last(),
        id => runs.iter().find(|m| m.run_id == id),
    }
    .ok_or_else(|| {
        let ids: Vec<&str> = runs.iter().map(|m| m.run_id.as_str()).collect();
        anyhow::anyhow!(
            "backup {name} has no complete run {:?} (complete runs: {ids:?}; `kubectl kafkabackup runs` lists them)",
            a.run_id
        )
    })?;
    let retention = retention_states(&kb, &runs, now)
        .remove(&m.run_id)
        .unwrap_or_default();
    let mut d = detail(&name, m, retention, now);
    d.validations = super::validations::stored_validations(&op, &name)
        .await?
        .remove(&m.run_id)
        .unwrap_or_default();
    d.repository_lock = repository_lock(&op, &name, now).await?;
    Ok(match a.output {
        OutputFormat::Json => serde_json::to_string_pretty(&d)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&d)?,
        OutputFormat::Table => table(&d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> RunManifest {
        let seg = |path: &str, first: i64, last: i64| {
            serde_json::json!({"path": path, "firstOffset": first, "lastOffset": last,
                "records": last - first + 1, "rawBytes": 1000, "storedBytes": 300,
                "minTimestamp": 0, "maxTimestamp": 0, "crc32c": 0})
        };
        serde_json::from_value(serde_json::json!({
            "format": "kafka-backup-operator/v2", "backupName": "b", "runId": "r2",
            "previousRunId": "r1", "startTime": 1_000, "completionTime": 61_000,
            "planHash": "abc", "clusterId": null, "compression": "zstd", "consumerGroups": [],
            "totalRecords": 150, "totalRawBytes": 3000,
            "topics": [{"name": "orders", "topicId": "", "partitionCount": 2, "configs": {},
                "partitions": [
                    {"partition": 0, "logStartOffset": 40, "coveredFrom": 40, "cut": 100,
                     "startOffset": 40, "records": 60, "rawBytes": 1000,
                     "minTimestamp": 1_000, "maxTimestamp": 2_000,
                     "gaps": [{"from": 30, "to": 40, "reason": "retention deleted these offsets"}],
                     "segments": [seg("b/data/orders/0/00000000000000000040-r2.seg", 40, 99)]},
                    {"partition": 1, "logStartOffset": 0, "coveredFrom": 0, "cut": 90,
                     "startOffset": 50, "records": 90, "rawBytes": 2000,
                     "minTimestamp": null, "maxTimestamp": null, "gaps": [],
                     "segments": [seg("b/data/orders/1/00000000000000000000-r1.seg", 0, 49),
                                  seg("b/data/orders/1/00000000000000000050-r2.seg", 50, 89)]}]}]
        }))
        .unwrap()
    }

    #[test]
    fn describe_run_lists_every_partition_its_gaps_validations_and_locks() {
        let mut d = detail("b", &manifest(), "kept".into(), 0);
        assert_eq!(d.partitions.len(), 2);
        assert_eq!(
            (
                d.partitions[1].partition.segments,
                d.partitions[1].partition.own_segments
            ),
            (2, 1)
        );
        let t = table(&d);
        assert!(
            t.starts_with("Backup:          b\nRun:             r2\n"),
            "{t}"
        );
        assert!(t.contains("Previous run:    r1\n"), "{t}");
        assert!(
            t.contains("Records:         150 (3000 bytes, 2.9 KiB)\n"),
            "{t}"
        );
        assert!(
            t.contains("Repository lock: free\n") && t.contains("Object Lock:     not locked\n")
        );
        assert!(
            t.contains("Validations:     none stored for this run\n"),
            "{t}"
        );
        let lines: Vec<&str> = t.lines().collect();
        let head = lines.iter().position(|l| l.starts_with("TOPIC")).unwrap();
        let at = |l: &str, w: &str| l.find(w).unwrap();
        assert_eq!(
            at(lines[head], "COVERED"),
            at(lines[head + 1], "40..100"),
            "{t}"
        );
        assert!(
            lines[head + 1].contains("1970-01-01T00:00:01Z .. 1970-01-01T00:00:02Z"),
            "{t}"
        );
        assert!(
            lines[head + 2].contains(" -  ") && lines[head + 2].contains("2 (1 own)"),
            "{t}"
        );
        assert!(
            t.contains("  orders/0: offsets 30..40 (retention deleted these offsets)\n"),
            "{t}"
        );
        d.repository_lock = Some(RepositoryLock {
            holder: "pod-a/7".into(),
            purpose: "backup run r3".into(),
            expires_at: "2026-12-06T10:01:00Z".into(),
            expired: false,
        });
        d.validations.push(RunValidation {
            validation: "nightly".into(),
            report_id: "nightly-5".into(),
            generated_at: "2026-12-06T02:00:00Z".into(),
            result: "Pass".into(),
            checks: 4,
            checks_failed: 0,
            signed: true,
        });
        let t = table(&d);
        assert!(
            t.contains(
                "Repository lock: held by pod-a/7 for backup run r3 until 2026-12-06T10:01:00Z\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "  nightly nightly-5: Pass at 2026-12-06T02:00:00Z, 4 checks, 0 failed, signed\n"
            ),
            "{t}"
        );
    }
}
