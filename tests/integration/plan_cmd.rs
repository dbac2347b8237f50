//! The plan command and dry runs observe read-only: same broker and storage state before and
//! after.
use crate::support::*;
use kafka_backup_operator::kafka::ops::OffsetSpec;

/// Topics with `prefix` (other tests run in parallel) and their high watermarks.
async fn broker_state(prefix: &str) -> Vec<((String, i32), i64)> {
    let c = client().await;
    let meta = c.refresh_metadata().await.unwrap();
    let parts: Vec<(String, i32)> = meta
        .topics
        .values()
        .filter(|t| t.name.starts_with(prefix))
        .flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p)))
        .collect();
    let mut v: Vec<_> = c
        .list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap()
        .into_iter()
        .collect();
    v.sort();
    v
}

fn plugin(args: &[&str]) -> (bool, String, String) {
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

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_dry_run_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let prefix = unique("plan");
    produce_sample(&format!("{prefix}-"), 30);
    let topic = format!("{prefix}-snappy");
    let kb = backup_yaml(
        "pl",
        std::slice::from_ref(&topic),
        &fs_storage(&store),
        "  stopAtCurrentOffsets: true\n",
    );
    let f = write_docs(dir.path(), &[&kb]);

    // before any backup: the storage directory does not even exist, and plan does not create it
    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(ok, "{err}");
    assert!(!store.exists());
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["partitions"].as_array().unwrap().len(), 3);
    assert!(p["previousRunId"].is_null());

    let m = backup(dir.path(), &[&kb], "pl").await;
    let kr = restore_yaml(
        "pl-r",
        "pl",
        &format!(
            "  createTopics: true\n  purgeTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"
        ),
    );
    let fr = write_docs(dir.path(), &[&kb, &kr]);
    let store_before = tree(&store);
    let broker_before = broker_state(&prefix).await;

    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "yaml"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("previousRunId: {}", m.run_id)),
        "{out}"
    );
    let (ok, out, err) = plugin(&["plan", "-f", fr.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("create topic {topic}-r (3 partitions")) && out.contains("restore "),
        "{out}"
    );
    // dryRun through `run`: prints the plan, executes nothing
    let dry = kr.replace(
        "  createTopics: true\n",
        "  createTopics: true\n  dryRun: true\n",
    );
    let fd = write_docs(dir.path(), &[&kb, &dry]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", fd.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("dryRun: nothing was written") && out.contains("write offset map"),
        "{out}"
    );

    assert_eq!(tree(&store), store_before, "storage unchanged");
    assert_eq!(
        broker_state(&prefix).await,
        broker_before,
        "broker unchanged (no topic, no record)"
    );
}

/// Produces `n` records of `bytes` bytes to `topic`, spread over its partitions, with PyPI
/// confluent-kafka (a client that is not ours).
fn produce_more(topic: &str, n: u32, bytes: u32) {
    let e = env();
    let script = "import sys\nfrom confluent_kafka import Producer\np = Producer({'bootstrap.servers': sys.argv[1]})\nfor i in range(int(sys.argv[3])):\n    p.produce(sys.argv[2], b'v' * int(sys.argv[4]), b'k%d' % i, partition=i % 3)\nassert p.flush(60) == 0\n";
    let out = std::process::Command::new(&e.python)
        .args([
            "-c",
            script,
            &e.bootstrap,
            topic,
            &n.to_string(),
            &bytes.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The partition steps of a plan printed as JSON: (estimatedBytes, estimatedBytesFrom).
fn step_estimates(plan: &serde_json::Value) -> Vec<(u64, String)> {
    plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["estimatedBytes"].as_u64().unwrap(),
                s["estimatedBytesFrom"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Issue 20 item 5: `plan -f` of a first backup estimates the bytes of every step from the
/// broker (DescribeLogDirs: the leaders' log sizes), within a sane factor of the record-batch
/// bytes the backup then really stores; once backed up, nothing is left to read; a restore
/// plan's estimate is the sum of the selected segments' sizes, PITR window included. S3
/// storage (moto) and the testenv broker.
#[tokio::test(flavor = "multi_thread")]
async fn plan_estimates_bytes_from_the_broker_and_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("plan-est");
    gen_load(&topic, 3, 4);
    let kb = backup_yaml(
        "pe",
        std::slice::from_ref(&topic),
        &s3_storage(&unique("plan-est"), "pe-s3"),
        "  stopAtCurrentOffsets: true\n  segmentMaxBytes: 1048576\n",
    );
    let secret = s3_secret("pe-s3", false);
    let f = write_docs(dir.path(), &[&kb, &secret]);

    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(ok, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = step_estimates(&p);
    assert_eq!(steps.len(), 3);
    assert!(
        steps.iter().all(|(b, from)| *b > 0 && from == "logSize"),
        "every step sized by its leader's log: {steps:?}"
    );
    let estimated = p["estimatedBytes"].as_u64().unwrap();
    assert_eq!(estimated, steps.iter().map(|s| s.0).sum::<u64>());
    let (ok, table, err) = plugin(&["plan", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(!table.contains("unknown"), "{table}");
    let total = table.lines().find(|l| l.starts_with("Total:")).unwrap();
    assert!(
        total.ends_with(" estimated") && !total.contains(" 0 B "),
        "all 3 steps counted: {total}"
    );

    let m = backup(dir.path(), &[&kb, &secret], "pe").await;
    let real = m.total_raw_bytes;
    eprintln!("first backup: estimated {estimated} B, stored {real} B of batches\n{table}");
    assert!(
        estimated * 2 >= real && estimated <= real * 2,
        "estimated {estimated} bytes, the backup stored {real} bytes of record batches"
    );

    // Backed up to the cut: every step has nothing to read, 0 B known (not unknown).
    let (ok, table, err) = plugin(&["plan", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        table.contains("Total: 0 records, 0 B estimated\n") && !table.contains("unknown"),
        "{table}"
    );

    // More records, later: the incremental plan reads only the tail of each log, its share
    // (hw - cut) / (hw - log start) of the log size.
    std::thread::sleep(std::time::Duration::from_millis(50));
    produce_more(&topic, 900, 1000);
    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(ok, "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        step_estimates(&p)
            .iter()
            .all(|(b, from)| *b > 0 && from == "logSize"),
        "{out}"
    );
    let estimated = p["estimatedBytes"].as_u64().unwrap();
    let m2 = backup(dir.path(), &[&kb, &secret], "pe").await;
    let cut: std::collections::BTreeMap<i32, i64> = m.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition, p.cut))
        .collect();
    let new_segs: Vec<_> = m2.topics[0]
        .partitions
        .iter()
        .flat_map(|p| {
            p.segments
                .iter()
                .filter(|s| s.first_offset >= cut[&p.partition])
        })
        .collect();
    let tail: u64 = new_segs.iter().map(|s| s.raw_bytes).sum();
    eprintln!("incremental backup: estimated {estimated} B, stored {tail} B of batches");
    assert!(
        estimated * 2 >= tail && estimated <= tail * 2,
        "estimated {estimated} bytes, the incremental run stored {tail} bytes of record batches"
    );

    // Restore: the sum of the sizes (raw bytes) of the segments the window selects; the
    // window of the second run's records selects its segments only.
    let segs: Vec<_> = m2.topics[0]
        .partitions
        .iter()
        .flat_map(|p| p.segments.iter())
        .collect();
    let start = new_segs.iter().map(|s| s.min_timestamp).min().unwrap();
    let end = new_segs.iter().map(|s| s.max_timestamp).max().unwrap();
    assert!(
        m2.topics[0].partitions.iter().all(|p| p
            .segments
            .iter()
            .filter(|s| s.first_offset < cut[&p.partition])
            .all(|s| s.max_timestamp < start)),
        "the first run's records are older: {segs:?}"
    );
    let real = m2.total_raw_bytes;
    for (pitr, want) in [
        (
            String::new(),
            segs.iter()
                .filter(|s| s.records > 0)
                .map(|s| s.raw_bytes)
                .sum::<u64>(),
        ),
        (
            format!("  pitr:\n    startTimestamp: {start}\n    endTimestamp: {end}\n"),
            segs.iter()
                .filter(|s| s.records > 0 && s.min_timestamp <= end && s.max_timestamp >= start)
                .map(|s| s.raw_bytes)
                .sum::<u64>(),
        ),
    ] {
        let kr = restore_yaml(
            "pe-r",
            "pe",
            &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n{pitr}"),
        );
        let fr = write_docs(dir.path(), &[&kb, &secret, &kr]);
        let (ok, out, err) = plugin(&["plan", "-f", fr.to_str().unwrap(), "-o", "json"]);
        assert!(ok, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["estimatedBytes"].as_u64().unwrap(), want, "pitr {pitr:?}");
        assert!(want > 0 && want <= real, "{want} of {real}");
        if !pitr.is_empty() {
            assert_eq!(want, tail, "the window selects the second run's segments");
        }
    }
}
