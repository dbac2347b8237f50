use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::exec::engine::system_now_ms;
use kafka_backup_operator::exec::{Cancel, Event, ExecContext, Progress, run_backup};
use kafka_backup_operator::format::checkpoint;
use kafka_backup_operator::format::manifest::{Checkpoint, RunManifest};
use kafka_backup_operator::kinds::{Access, backup::prepare as prepare_backup};
use kafka_backup_operator::storage::StorageTarget;

/// The checkpoint of the (first) run of backup `name` in the filesystem repository `dir`, as a
/// resume reads it, with the numbers of its documents; None while there is none (or while a
/// compaction deletes documents under the reader).
async fn read_checkpoint(dir: &Path, name: &str) -> Option<(Checkpoint, Vec<u64>)> {
    let op = StorageTarget::Fs {
        root: dir.display().to_string(),
    }
    .operator()
    .ok()?;
    let run = std::fs::read_dir(dir.join(name).join("runs"))
        .ok()?
        .flatten()
        .next()?
        .file_name()
        .to_string_lossy()
        .into_owned();
    let parts = checkpoint::list_parts(&op, name, &run).await.ok()?;
    let cp = checkpoint::load(&op, name, &run).await.ok()??;
    Some((cp, parts))
}

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
        if let Some((cp, _)) = read_checkpoint(dir.path(), "res").await {
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

/// A run killed with SIGKILL between two checkpoint documents (a base and at least two deltas
/// written, some partitions done, others not), started again: it resumes the same run from
/// base + deltas, keeps every segment they name, and the restore has every record once.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_checkpoint_deltas_leaves_a_resumable_exact_run() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("cpdelta");
    let produced = gen_load(&topic, 24, 6);
    let kb = backup_yaml(
        "cpd",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n  rateLimiting:\n    bytesPerSec: 1500000\n    maxConcurrentPartitions: 3\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    #[allow(clippy::zombie_processes)] // killed and reaped below on every path
    let mut child = spawn_run(&f);
    let t = Instant::now();
    let (killed_at, parts) = loop {
        if t.elapsed() >= Duration::from_secs(40) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no checkpoint with two deltas and unfinished partitions within 40 s");
        }
        if let Some((cp, parts)) = read_checkpoint(dir.path(), "cpd").await {
            let done = cp.partitions.values().filter(|p| p.done).count();
            if parts.len() >= 3 && (2..24).contains(&done) {
                child.kill().unwrap();
                child.wait().unwrap();
                break (cp, parts);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run_id = killed_at.run_id.clone();
    let runs = dir.path().join("cpd/runs");
    assert!(!runs.join(&run_id).join("manifest.json").exists());
    // what a resume reads now is what the kill left (documents may have been written since
    // the poll, never fewer)
    let (now, _) = read_checkpoint(dir.path(), "cpd").await.unwrap();
    for (key, p) in &killed_at.partitions {
        assert!(
            now.partitions[key].segments.starts_with(&p.segments),
            "{key}: a later document dropped segments"
        );
    }

    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "resumed run failed: {out}{err}");
    assert!(out.contains(&run_id), "the same run id is resumed: {out}");
    let m: RunManifest =
        serde_json::from_slice(&std::fs::read(runs.join(&run_id).join("manifest.json")).unwrap())
            .unwrap();
    for (key, p) in &now.partitions {
        let part: i32 = key.rsplit('/').next().unwrap().parse().unwrap();
        let pm = m.topics[0]
            .partitions
            .iter()
            .find(|x| x.partition == part)
            .unwrap();
        assert!(
            pm.segments.starts_with(&p.segments),
            "{key}: the segments the checkpoint names are kept, not fetched again ({} documents {parts:?})",
            parts.len()
        );
    }
    let total: u64 = m.topics[0].partitions.iter().map(|p| p.records).sum();
    assert_eq!(total, produced, "every record exactly once");
    assert!(
        read_checkpoint(dir.path(), "cpd").await.is_none(),
        "the completed run's checkpoint documents are deleted"
    );
    let kr = restore_yaml(
        "cpd-r",
        "cpd",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    restore(dir.path(), &[&kb, &kr], "cpd-r").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}

/// Class 11 (checkpoint cost grows with the square of the partitions): a backup of 200
/// partitions writes a handful of checkpoint documents, not one per partition step (it wrote
/// 2 per partition, each the whole run's progress), and the manifest holds every record.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_documents_do_not_grow_with_partition_steps() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("cpmany");
    let produced = gen_load(&topic, 200, 1);
    let kb = backup_yaml(
        "cpm",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    let Ok((Target::Backup(kb), secrets)) = load(&[f], Some("cpm")) else {
        panic!("not a backup");
    };
    let pvc = dir.path().join("pvc");
    let p = prepare_backup(&kb, &secrets, &pvc, system_now_ms(), Access::ReadWrite)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = ExecContext::new(Progress::new(Some(tx)), Cancel::never(), None, None);
    let m = run_backup(&p.plan, &p.client, &p.op, &ctx).await.unwrap();
    drop(ctx);
    let (mut writes, mut steps) = (0, 0);
    while let Some(e) = rx.recv().await {
        match e {
            Event::CheckpointWritten { .. } => writes += 1,
            Event::StepDone { .. } => steps += 1,
            _ => {}
        }
    }
    assert_eq!(steps, 200);
    assert!(
        writes <= 20,
        "{writes} checkpoint writes for 200 partition steps (at most one a second or per 1,000 changed partitions)"
    );
    let total: u64 = m.topics[0].partitions.iter().map(|p| p.records).sum();
    assert_eq!(total, produced);
    assert!(read_checkpoint(dir.path(), "cpm").await.is_none());
}
