use std::time::{Duration, Instant};

use crate::support::*;
use kafka_backup_operator::format::manifest::{Checkpoint, RunManifest};

/// A backup killed with SIGKILL mid-run, started again, continues from its checkpoint: the
/// resumed run completes, reuses the segments already written, and the restored data has no
/// lost and no duplicated record.
#[tokio::test(flavor = "multi_thread")]
async fn killed_backup_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("resume");
    let produced = gen_load(&topic, 2, 12);
    let kb = backup_yaml(
        "res",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n  rateLimiting:\n    bytesPerSec: 3000000\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    // killed (and reaped) below on every path: when the checkpoint appears, or on timeout
    #[allow(clippy::zombie_processes)] // killed and reaped below on every path
    let mut child = spawn_run(&f);
    // wait for a checkpoint that records at least two finished segments, then kill -9
    let runs = dir.path().join("res/runs");
    let t = Instant::now();
    let killed_at = loop {
        if t.elapsed() >= Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no checkpoint with segments within 30 s"
        );
        let cp = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read(e.ok()?.path().join("checkpoint.json")).ok());
        if let Some(cp) = cp.and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok()) {
            let segs: usize = cp.partitions.values().map(|p| p.segments.len()).sum();
            if segs >= 2 {
                child.kill().unwrap();
                child.wait().unwrap();
                break cp;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run_id = killed_at.run_id.clone();
    assert!(
        !runs.join(&run_id).join("manifest.json").exists(),
        "the killed run is incomplete"
    );

    // start again (no rate limit needed for the rest)
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "resumed run failed: {out}{err}");
    assert!(out.contains(&run_id), "the same run id is resumed: {out}");
    let m: RunManifest =
        serde_json::from_slice(&std::fs::read(runs.join(&run_id).join("manifest.json")).unwrap())
            .unwrap();
    for (key, p) in &killed_at.partitions {
        let part: i32 = key.rsplit('/').next().unwrap().parse().unwrap();
        let pm = m.topics[0]
            .partitions
            .iter()
            .find(|x| x.partition == part)
            .unwrap();
        assert_eq!(
            &pm.segments[..p.segments.len()],
            &p.segments[..],
            "segments written before the kill are kept, not refetched"
        );
    }
    let total: u64 = m.topics[0].partitions.iter().map(|p| p.records).sum();
    assert_eq!(total, produced, "every record exactly once");

    let kr = restore_yaml(
        "res-r",
        "res",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    restore(dir.path(), &[&kb, &kr], "res-r").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}
