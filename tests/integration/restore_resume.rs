//! A restore killed with SIGKILL mid-run, started again, resumes from its journal: records
//! already in the target are skipped, the rest produced, and the restored topic matches the
//! source record for record (checked with confluent-kafka). A target that something else
//! wrote to meanwhile is refused with an error naming the journal.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use kafka_backup_operator::format::batch::{Codec, Record, encode_batch};
use kafka_backup_operator::kafka::ops::OffsetSpec;

/// Fills a 2-partition topic, backs it up, starts a rate-limited restore with the CLI and
/// kills it once the journal exists and some (not all) records are in the target. Returns
/// (docs file, source topic, target topic, records in the source).
async fn killed_restore(dir: &Path, name: &str) -> (std::path::PathBuf, String, String, u64) {
    let topic = unique(name);
    let produced = gen_load(&topic, 2, 8);
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &fs_storage(dir),
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    backup(dir, &[&kb], name).await;
    let target = format!("{topic}-r");
    let rname = format!("{name}-r");
    let kr = restore_yaml(
        &rname,
        name,
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  produceBatchSize: 100\n  rateLimiting:\n    bytesPerSec: 2000000\n"
        ),
    );
    let f = write_docs(dir, &[&kb, &kr]);
    // killed (and reaped) below on every path
    #[allow(clippy::zombie_processes)] // killed and reaped below on every path
    let mut child = spawn_run(&f);
    let journal = dir.join(format!("{name}/restores/{rname}/journal.json"));
    let c = client().await;
    let parts = vec![(target.clone(), 0), (target.clone(), 1)];
    let t = Instant::now();
    loop {
        if t.elapsed() >= Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no journal and partial target within 30 s");
        }
        if journal.exists() {
            c.refresh_metadata().await.ok();
            if let Ok(hw) = c.list_offsets(&parts, OffsetSpec::Latest).await {
                let n: i64 = hw.values().sum();
                if n > 0 {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    assert!(
                        (n as u64) < produced,
                        "killed before the end ({n} of {produced})"
                    );
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (f, topic, target, produced)
}

/// Runs the restore in `f` again with the CLI and checks that it resumed, counts the whole
/// restore, and that the target matches the source record for record.
fn resume_and_check(f: &Path, topic: &str, target: &str, produced: u64) {
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "resumed restore failed: {out}{err}");
    assert!(
        err.contains("resumed=true") || out.contains("resumed=true"),
        "the second attempt resumed: {out}{err}"
    );
    assert!(
        out.contains(&format!("{produced} records")),
        "the whole restore is counted: {out}"
    );
    assert_same(&[topic.to_string()], &[target.to_string()], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_restore_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (f, topic, target, produced) = killed_restore(dir.path(), "rres").await;
    resume_and_check(&f, &topic, &target, produced);
    // the offset map covers every record once, at consecutive target offsets from 0
    let map_dir = dir.path().join("rres/restores/rres-r");
    let run = std::fs::read_dir(&map_dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let map: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("offset-map.json")).unwrap()).unwrap();
    let mut mapped = 0u64;
    for p in map["partitions"].as_array().unwrap() {
        let mut next_dst = 0i64;
        for r in p["ranges"].as_array().unwrap() {
            let (from, to, dst) = (
                r[0].as_i64().unwrap(),
                r[1].as_i64().unwrap(),
                r[2].as_i64().unwrap(),
            );
            assert_eq!(dst, next_dst, "target offsets are consecutive: {r}");
            next_dst += to - from + 1;
            mapped += (to - from + 1) as u64;
        }
    }
    assert_eq!(mapped, produced, "offset map covers every record once");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(map_dir.join("journal.json")).unwrap()).unwrap();
    assert_eq!(journal["complete"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_onto_a_target_written_by_someone_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _topic, target, _) = killed_restore(dir.path(), "rfor").await;
    // a foreign record lands in the target between the attempts
    let c = client().await;
    let rec = Record {
        offset: 0,
        timestamp: 1,
        key: None,
        value: Some("intruder".into()),
        headers: vec![],
    };
    c.produce(
        &target,
        0,
        encode_batch(&[rec], Codec::None).unwrap(),
        -1,
        5000,
    )
    .await
    .unwrap();
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "the resume must fail: {out}{err}");
    assert!(
        err.contains("something else wrote") && err.contains("journal.json"),
        "the error says why and names the journal: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_continues_when_only_limits_batch_size_and_concurrency_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (f, topic, target, produced) = killed_restore(dir.path(), "rlim").await;
    // the user removes the rate limit (and retunes) to finish faster: still the same restore
    let docs = std::fs::read_to_string(&f).unwrap();
    let retuned = docs
        .replace(
            "  rateLimiting:\n    bytesPerSec: 2000000\n",
            "  rateLimiting:\n    maxConcurrentPartitions: 1\n  produceTimeoutMs: 20000\n",
        )
        .replace("produceBatchSize: 100", "produceBatchSize: 7");
    assert_ne!(docs, retuned);
    let f2 = write_docs(dir.path(), &[&retuned]);
    resume_and_check(&f2, &topic, &target, produced);
}
