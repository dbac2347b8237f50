//! `kubectl kafkabackup runs` and `describe run` against the real peers (Kafka, S3): two runs
//! of an incremental chain with a gap (records deleted before the second run read them), their
//! cut, offset ranges, gaps and retention state, as the manifests record them; a validation of
//! the newest run, shown by `describe run` and as that run's verdict in `runs`.
use kafka_backup_operator::format::batch::Codec;
use kafka_backup_operator::format::manifest::RunManifest;
use serde_json::Value;

use super::support::*;

/// `n` records on each of `partitions` partitions of `topic` (created by the first produce).
async fn append(topic: &str, partitions: i32, n: usize, tag: &str) {
    append_records(topic, partitions, n, tag, Codec::None).await
}

/// The plugin binary: (success, stdout, stderr).
pub(super) fn plugin(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two runs of a 2-partition topic into S3, partition 0's records between the runs partly
/// deleted: (files, backup name, run 1, run 2, topic).
pub(super) async fn two_runs(
    dir: &std::path::Path,
) -> (std::path::PathBuf, RunManifest, RunManifest, String) {
    let prefix = unique("runs");
    let topic = format!("{prefix}-t");
    let c = client().await;
    c.create_topics(
        &[kafka_backup_operator::kafka::ops::NewTopic {
            name: topic.clone(),
            partitions: 2,
            replication_factor: 1,
            configs: Default::default(),
        }],
        10_000,
    )
    .await
    .unwrap();
    append(&topic, 2, 30, "first").await;
    let secret = s3_secret("runs-s3", false);
    let kb = backup_yaml(
        "runsb",
        std::slice::from_ref(&topic),
        &s3_storage(&prefix, "runs-s3"),
        "  stopAtCurrentOffsets: true\n  retention:\n    enabled: true\n    keepLast: 1\n    dryRun: true\n",
    );
    let r1 = backup(dir, &[&kb, &secret], "runsb").await;
    append(&topic, 2, 20, "second").await;
    // partition 0 loses the first 10 records past run 1's cut before run 2 reads them
    c.delete_records(&[(topic.clone(), 0, 40)], 10_000)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r2 = backup(dir, &[&kb, &secret], "runsb").await;
    (write_docs(dir, &[&kb, &secret]), r1, r2, topic)
}

/// A validation `runsv` of the newest run of [`two_runs`]' backup (files `f`): its report is
/// stored beside the backup.
pub(super) fn validate_newest(dir: &std::path::Path, f: &std::path::Path) {
    let docs = std::fs::read_to_string(f).unwrap();
    let kbv = "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: runsv\nspec:\n  backupRef:\n    name: runsb\n";
    let fv = write_docs(dir, &[&docs, kbv]);
    let (_, out, err) = cli(&[
        "run",
        "--no-progress",
        "-f",
        fv.to_str().unwrap(),
        "--name",
        "runsv",
    ]);
    assert!(out.contains("evidence report: "), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_shows_each_runs_cut_ranges_gaps_and_retention_state() {
    let dir = tempfile::tempdir().unwrap();
    let (f, r1, r2, topic) = two_runs(dir.path()).await;
    let f = f.to_str().unwrap();
    assert_eq!(r2.previous_run_id.as_deref(), Some(r1.run_id.as_str()));

    let (ok, out, err) = plugin(&["runs", "-f", f, "-o", "json"]);
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    let (j1, j2) = (&rows[0], &rows[1]);
    assert_eq!(j1["runId"], r1.run_id.as_str());
    assert_eq!(j1["retention"], "would be pruned (dryRun)", "{j1}");
    assert_eq!(j2["retention"], "kept", "{j2}");
    assert_eq!(j2["previousRunId"], r1.run_id.as_str());
    assert_eq!(
        (j2["topicCount"].as_u64(), j2["partitionCount"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(j2["records"], r2.total_records);
    assert_eq!(j1["objectLock"], Value::Null);
    // per partition: the manifest's cut and covered range; the gap of partition 0
    for (m, j) in [(&r1, j1), (&r2, j2)] {
        let t = &j["topics"][0];
        assert_eq!(t["name"], topic.as_str());
        for (pm, pj) in m.topics[0]
            .partitions
            .iter()
            .zip(t["partitions"].as_array().unwrap())
        {
            assert_eq!(pj["partition"], pm.partition);
            assert_eq!(pj["cut"], pm.cut, "{pj}");
            assert_eq!(pj["coveredFrom"], pm.covered_from, "{pj}");
            assert_eq!(pj["startOffset"], pm.start_offset, "{pj}");
            assert_eq!(pj["records"], pm.records, "{pj}");
            assert_eq!(pj["segments"].as_u64(), Some(pm.segments.len() as u64));
        }
    }
    let p0 = &j2["topics"][0]["partitions"][0];
    assert_eq!(p0["cut"], 50);
    // the log start moved past run 1's cut: covered again from there
    assert_eq!(
        (p0["coveredFrom"].as_i64(), p0["startOffset"].as_i64()),
        (Some(40), Some(40)),
        "{p0}"
    );
    assert_eq!(
        (p0["gaps"][0]["from"].as_i64(), p0["gaps"][0]["to"].as_i64()),
        (Some(30), Some(40)),
        "{p0}"
    );
    assert_eq!(j2["gapCount"], 1, "{j2}");
    assert_eq!(
        j2["topics"][0]["partitions"][1]["gaps"],
        serde_json::json!([])
    );

    // the table: the old columns, the new ones, and the cut under each run
    let (ok, table, err) = plugin(&["runs", "-f", f]);
    assert!(ok, "{err}");
    let head = table.lines().next().unwrap();
    for h in [
        "RUN ID",
        "COMPLETED",
        "TOPICS",
        "RECORDS",
        "BYTES",
        "GAPS",
        "RETENTION",
        "LOCK",
    ] {
        assert!(head.contains(h), "{table}");
    }
    assert!(
        table.contains(&r1.run_id) && table.contains(&r2.run_id),
        "{table}"
    );
    assert!(
        table.contains("not locked") && table.contains("would be pruned (dryRun)"),
        "{table}"
    );
    assert!(
        table.contains(&format!("    {topic}: cut 0@30 1@30, 60 records")),
        "{table}"
    );
    assert!(
        table.contains(&format!("    {topic}: cut 0@50 1@50,")) && table.contains(", 1 gap\n"),
        "{table}"
    );
    let (ok, yaml, err) = plugin(&["runs", "-f", f, "-o", "yaml"]);
    assert!(
        ok && yaml.contains("reason:") && yaml.contains("cut: 50"),
        "{err}{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_run_shows_every_partition_its_validation_and_the_locks() {
    let dir = tempfile::tempdir().unwrap();
    let (f, r1, r2, topic) = two_runs(dir.path()).await;
    validate_newest(dir.path(), &f);
    let f = f.to_str().unwrap();

    let (ok, out, err) = plugin(&[
        "describe", "run", "runsb", &r2.run_id, "-f", f, "-o", "json",
    ]);
    assert!(ok, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["runId"], r2.run_id.as_str());
    assert_eq!(d["previousRunId"], r1.run_id.as_str());
    assert_eq!(d["records"], r2.total_records);
    assert_eq!(d["retention"], "kept");
    assert_eq!(d["repositoryLock"], Value::Null, "no writer now: {d}");
    assert_eq!(d["objectLock"], Value::Null);
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for (pm, pj) in r2.topics[0].partitions.iter().zip(parts) {
        assert_eq!(pj["topic"], topic.as_str());
        assert_eq!(pj["partition"], pm.partition);
        assert_eq!(
            (pj["coveredFrom"].as_i64(), pj["cut"].as_i64()),
            (Some(pm.covered_from), Some(pm.cut))
        );
        assert_eq!(pj["records"], pm.records);
        assert_eq!(pj["bytes"], pm.raw_bytes);
        assert_eq!(pj["segments"].as_u64(), Some(pm.segments.len() as u64));
        let own = pm
            .segments
            .iter()
            .filter(|s| s.path.ends_with(&format!("-{}.seg", r2.run_id)))
            .count();
        assert_eq!(pj["ownSegments"].as_u64(), Some(own as u64), "{pj}");
        assert!(
            pj["minTimestamp"]
                .as_str()
                .unwrap()
                .starts_with("2027-01-15T"),
            "{pj}"
        );
    }
    assert_eq!(parts[0]["gaps"][0]["from"], 30);
    let v = &d["validations"][0];
    assert_eq!(v["validation"], "runsv", "{d}");
    assert!(matches!(v["result"].as_str(), Some("Pass" | "Fail")), "{v}");
    assert!(v["checks"].as_u64().unwrap() > 0, "{v}");

    // runs: the validated run carries the same verdict, the other none
    let (ok, out, err) = plugin(&["runs", "-f", f, "-o", "json"]);
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["validation"], Value::Null, "{out}");
    let mark = &rows[1]["validation"];
    assert_eq!(mark["validation"], "runsv", "{out}");
    let verdict = match v["result"].as_str() {
        Some("Pass") => "passed",
        _ => "failed",
    };
    assert_eq!(mark["result"], verdict, "{out}");
    assert_eq!(mark["time"], v["generatedAt"], "{out}");
    let (ok, t, err) = plugin(&["runs", "-f", f]);
    assert!(ok, "{err}");
    let head = t.lines().next().unwrap();
    assert!(head.contains("VALIDATION"), "{t}");
    let line = |id: &str| t.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    let col = head.find("VALIDATION").unwrap();
    assert_eq!(line(&r1.run_id).get(col..col + 2), Some("- "), "{t}");
    assert!(
        line(&r2.run_id)[col..]
            .starts_with(&format!("{verdict} {}", v["generatedAt"].as_str().unwrap())),
        "{t}"
    );

    // the table; run 1 (`latest` is run 2) has no validation and would be pruned
    let (ok, t, err) = plugin(&["describe", "run", "runsb", "latest", "-f", f]);
    assert!(ok, "{err}");
    assert!(
        t.contains(&format!("Run:             {}", r2.run_id)),
        "{t}"
    );
    assert!(
        t.contains("Repository lock: free") && t.contains("Object Lock:     not locked"),
        "{t}"
    );
    assert!(t.contains("  runsv runsv-"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("TOPIC") && l.ends_with("GAPS")),
        "{t}"
    );
    assert!(
        t.contains(&format!("  {topic}/0: offsets 30..40 (retention deleted")),
        "{t}"
    );
    let (ok, t, err) = plugin(&["describe", "run", "runsb", &r1.run_id, "-f", f]);
    assert!(ok, "{err}");
    assert!(
        t.contains("Validations:     none stored for this run"),
        "{t}"
    );
    assert!(
        t.contains("Retention:       would be pruned (dryRun)"),
        "{t}"
    );
    let (ok, _, err) = plugin(&["describe", "run", "runsb", "20000101T000000.000Z", "-f", f]);
    assert!(
        !ok && err.contains("has no complete run") && err.contains(&r1.run_id),
        "{err}"
    );
}
