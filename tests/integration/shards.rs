//! Sharded backups (`spec.execution.mode: job`, issue 18, docs/execution.md) against the real
//! broker and storage: the CLI runs each shard as a child process (what a Kubernetes Job of
//! the operator runs), the data restores record-identical (confluent-kafka), a shard killed
//! with SIGKILL resumes from its own checkpoint, a shard that keeps failing fails the run
//! naming it while the other shards' work is kept, and a shard writes nothing once its run's
//! repository lock is gone.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;
use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::exec::ExecError;
use kafka_backup_operator::exec::engine::system_now_ms;
use kafka_backup_operator::exec::lock::Lock;
use kafka_backup_operator::exec::shard::{self, ShardFailure};
use kafka_backup_operator::format::checkpoint;
use kafka_backup_operator::format::layout;
use kafka_backup_operator::kinds::{Access, backup::PreparedBackup, backup::prepare};
use kafka_backup_operator::storage::StorageTarget;

fn execution(shards: u32, backoff: u32) -> String {
    format!("  execution:\n    mode: job\n    shards: {shards}\n    backoffLimit: {backoff}\n")
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    tree(dir)
}

/// Prepares the KafkaBackup of `docs` (file `f`) as the CLI would.
async fn prepared(f: &Path) -> PreparedBackup {
    let (target, secrets) = load(&[f.to_path_buf()], None).unwrap();
    let Target::Backup(kb) = target else {
        panic!("not a backup")
    };
    prepare(
        &kb,
        &secrets,
        Path::new("/nonexistent"),
        system_now_ms(),
        Access::ReadWrite,
    )
    .await
    .unwrap()
}

/// The partition assignment of a prepared sharded plan.
fn assignment(p: &PreparedBackup) -> Vec<Vec<usize>> {
    let e = p.plan.execution.as_ref().expect("a job plan has shards");
    e.shards.iter().map(|s| s.partitions.clone()).collect()
}

/// A sharded backup to S3 through the CLI (three shard processes) and an encrypted one to a
/// filesystem (two) restore record-identical; the staging documents are gone after the commit.
#[tokio::test(flavor = "multi_thread")]
async fn sharded_backups_through_the_cli_restore_record_identical() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("shs3");
    let sample = produce_sample(&format!("{prefix}-"), 300);
    let topics = sample_topics(&sample);
    let kb = backup_yaml(
        "shs3",
        &[format!("{prefix}-*")],
        &s3_storage(&prefix, "s3-creds"),
        &format!("  stopAtCurrentOffsets: true\n{}", execution(3, 1)),
    );
    let f = write_docs(dir.path(), &[&kb, &s3_secret("s3-creds", false)]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "sharded backup failed:\n{out}\n{err}");
    assert!(
        err.contains("[shard 2/3]"),
        "three shard processes ran:\n{err}"
    );
    let r = restore_yaml(
        "shs3-r",
        "shs3",
        &format!("{}  createTopics: true\n", mapping(&topics, "-sh")),
    );
    let _ = restore(
        dir.path(),
        &[&r, &kb, &s3_secret("s3-creds", false)],
        "shs3-r",
    )
    .await;
    assert_same(&topics, &suffixed(&topics, "-sh"), &[]);

    // encrypted, filesystem
    let repo = dir.path().join("enc");
    let key: [u8; 32] = rand::random();
    let storage = format!(
        "{}\n    encryption:\n      keySecret: {{name: shk}}\n      activeKeyId: k1",
        fs_storage(&repo)
    );
    let secret = crate::encryption::key_secret("shk", &[("k1", &key)]);
    // the sample's topics only (the pattern would also match the restored copies)
    let kb = backup_yaml(
        "shenc",
        &topics,
        &storage,
        &format!("  stopAtCurrentOffsets: true\n{}", execution(2, 0)),
    );
    let f = write_docs(dir.path(), &[&kb, &secret]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "encrypted sharded backup failed:\n{out}\n{err}");
    let left: Vec<String> = files(&repo)
        .into_iter()
        .filter(|p| p.contains("/shards/") || p.ends_with("plan.json"))
        .collect();
    assert!(
        left.is_empty(),
        "staging documents left after the commit: {left:?}"
    );
    let r = restore_yaml(
        "shenc-r",
        "shenc",
        &format!("{}  createTopics: true\n", mapping(&topics, "-she")),
    );
    let _ = restore(dir.path(), &[&r, &kb, &secret], "shenc-r").await;
    assert_same(&topics, &suffixed(&topics, "-she"), &[]);
}

/// The pid of the running shard process `shard` whose command line names `file`.
fn shard_pid(file: &Path, shard: &str) -> Option<u32> {
    let want = file.display().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == &want)
            && args.windows(2).any(|w| w[0] == "--shard" && w[1] == shard)
        {
            return Some(pid);
        }
    }
    None
}

/// A shard process killed with SIGKILL mid-run is started again by the coordinator and resumes
/// from its own checkpoint: the segments it had recorded are kept (not written again), the run
/// completes, and the restored data has no lost and no duplicated record.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shard_resumes_from_its_checkpoint_and_the_data_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let topic = unique("shkill");
    gen_load(&topic, 4, 12);
    let kb = backup_yaml(
        "shk",
        std::slice::from_ref(&topic),
        &fs_storage(&repo),
        &format!(
            "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n  rateLimiting:\n    bytesPerSec: 4000000\n{}",
            execution(2, 2)
        ),
    );
    let f = write_docs(dir.path(), &[&kb]);
    let log = dir.path().join("coordinator.log");
    #[allow(clippy::zombie_processes)] // reaped below on every path
    let mut coordinator = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(["run", "--no-progress", "-f"])
        .arg(&f)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let op = StorageTarget::Fs {
        root: repo.display().to_string(),
    }
    .operator()
    .unwrap();
    // wait for shard 0's checkpoint to record segments, then kill -9 its process
    let t = Instant::now();
    let (run, kept) = loop {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = coordinator.kill();
            let _ = coordinator.wait();
            panic!("shard 0 recorded no segment within 60 s");
        }
        let runs = std::fs::read_dir(repo.join("shk/runs")).ok();
        let run = runs.and_then(|mut r| r.next()).and_then(|e| e.ok());
        if let Some(run) = run.map(|e| e.file_name().to_string_lossy().into_owned()) {
            let cp_dir = layout::shard_checkpoint_dir("shk", &run, 0);
            if let Ok(Some(cp)) = checkpoint::load_in(&op, &cp_dir, &run).await {
                let segs: BTreeMap<String, Vec<String>> = (cp.partitions.iter())
                    .map(|(k, p)| {
                        (
                            k.clone(),
                            p.segments.iter().map(|s| s.path.clone()).collect(),
                        )
                    })
                    .collect();
                if segs.values().map(|v| v.len()).sum::<usize>() >= 2
                    && let Some(pid) = shard_pid(&f, "0/2")
                {
                    let killed = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                        .unwrap();
                    assert!(killed.success());
                    break (run, segs);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = coordinator.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = coordinator.kill();
            let _ = coordinator.wait();
            panic!("the sharded run did not finish within 120 s after the kill");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the run failed after the kill:\n{log}");
    assert!(
        log.contains("shard failed"),
        "the killed shard was retried:\n{log}"
    );
    let m = kafka_backup_operator::observe::load_manifest(&op, "shk", &run)
        .await
        .unwrap();
    for (key, before) in &kept {
        let (t, p) = key.rsplit_once('/').unwrap();
        let p: i32 = p.parse().unwrap();
        let pm = (m
            .topics
            .iter()
            .find(|x| x.name == t)
            .unwrap()
            .partitions
            .iter())
        .find(|x| x.partition == p)
        .unwrap();
        let after: Vec<&String> = pm.segments.iter().map(|s| &s.path).collect();
        assert!(
            after.len() >= before.len() && before.iter().zip(&after).all(|(a, b)| a == *b),
            "{key}: the segments recorded before the kill ({before:?}) are kept: {after:?}"
        );
    }
    let r = restore_yaml(
        "shk-r",
        "shk",
        &format!(
            "{}  createTopics: true\n",
            mapping(std::slice::from_ref(&topic), "-r")
        ),
    );
    let _ = restore(dir.path(), &[&r, &kb], "shk-r").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}

/// Runs shard `i` of the staged run `run` of backup `shf` in this process (as a launcher).
async fn in_process(
    op: &opendal::Operator,
    client: &kafka_backup_operator::kafka::KafkaClient,
    run: &str,
    i: u32,
    c: &kafka_backup_operator::exec::ExecContext,
) -> Result<(), ShardFailure> {
    let staged = shard::load_staged(op, "shf", run).await.unwrap();
    shard::run_backup_shard(&staged, i, client, op, c)
        .await
        .map(|_| ())
        .map_err(|e| ShardFailure {
            message: e.to_string(),
            oom_killed: false,
        })
}

/// A shard that fails (here: reported OOMKilled by its launcher) fails the run with the shard,
/// its partitions and the category `oom-killed`, the other shard's result is kept, and the next
/// attempt resumes the staged run (same run id) and launches only the failed shard. A shard
/// whose run's repository lock is gone writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_shard_fails_the_run_naming_it_and_only_it_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let topic = unique("shfail");
    gen_load(&topic, 4, 2);
    let kb = backup_yaml(
        "shf",
        std::slice::from_ref(&topic),
        &fs_storage(&repo),
        &format!("  stopAtCurrentOffsets: true\n{}", execution(2, 0)),
    );
    let f = write_docs(dir.path(), &[&kb]);
    let p = prepared(&f).await;
    let run = p.plan.run_id.clone();
    let (plan, client, op) = (&p.plan, &p.client, &p.op);
    let c = ctx();
    let launch = |i: u32| {
        let run = run.clone();
        let c = c.clone();
        async move {
            if i == 1 {
                return Err(ShardFailure {
                    message: "container killed".into(),
                    oom_killed: true,
                });
            }
            in_process(op, client, &run, i, &c).await
        }
    };
    let e = shard::coordinate_backup(plan, assignment(&p), client, op, &c, launch)
        .await
        .expect_err("a failed shard fails the run");
    assert_eq!(e.category(), "oom-killed", "{e}");
    let msg = e.to_string();
    assert!(msg.contains("shard 1 of 2"), "{msg}");
    assert!(
        msg.contains(&format!("{topic}/")),
        "names the shard's partitions: {msg}"
    );
    assert!(
        msg.contains("resources.limits.memory"),
        "says the fix: {msg}"
    );
    assert!(
        repo.join(format!("shf/runs/{run}/shards/0/result.json"))
            .exists()
    );
    assert!(!repo.join(format!("shf/runs/{run}/manifest.json")).exists());

    // a shard of a run whose lock is gone (no coordinator holds it) writes nothing
    let staged = shard::load_staged(op, "shf", &run).await.unwrap();
    let e = shard::run_backup_shard(&staged, 1, client, op, &c)
        .await
        .expect_err("no lock, no writing");
    assert!(matches!(e, ExecError::Locked(_)), "{e}");
    assert!(e.to_string().contains("repository lock lost"), "{e}");
    assert!(!repo.join(format!("shf/runs/{run}/shards/1")).exists());

    // the next attempt: the same staged run, only shard 1 launched; its process waits while
    // shard 1's lock is held (the last Pod of its Job, still terminating) and writes nothing
    let p2 = prepared(&f).await;
    assert_eq!(p2.plan.run_id, run, "the staged run resumes");
    let launched = Mutex::new(vec![]);
    let (client, op) = (&p2.client, &p2.op);
    let shard_lock = layout::shard_lock("shf", &run, 1);
    let other = Lock::acquire(op, &shard_lock, "the terminating Pod")
        .await
        .unwrap();
    let result1 = repo.join(format!("shf/runs/{run}/shards/1/result.json"));
    let waited = {
        let result1 = result1.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            let written_meanwhile = result1.exists();
            other.release().await;
            written_meanwhile
        })
    };
    let launch = |i: u32| {
        launched.lock().unwrap().push(i);
        let run = run.clone();
        let c = c.clone();
        async move { in_process(op, client, &run, i, &c).await }
    };
    let m = shard::coordinate_backup(&p2.plan, assignment(&p2), client, op, &c, launch)
        .await
        .unwrap();
    assert!(
        !waited.await.unwrap(),
        "shard 1 ran while another process held its lock"
    );
    assert_eq!(*launched.lock().unwrap(), vec![1]);
    assert_eq!(m.run_id, run);
    let parts: usize = m.topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(parts, 4);
    let r = restore_yaml(
        "shf-r",
        "shf",
        &format!(
            "{}  createTopics: true\n",
            mapping(std::slice::from_ref(&topic), "-r")
        ),
    );
    let _ = restore(dir.path(), &[&r, &kb], "shf-r").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}

/// `run --plan/--shard` errors name the argument and the fix, and write nothing.
#[test]
fn shard_arguments_that_cannot_work_are_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let kb = backup_yaml(
        "sharg",
        &["t".to_string()],
        &fs_storage(&repo),
        &execution(2, 0),
    );
    let f = write_docs(dir.path(), &[&kb]);
    let f = f.to_str().unwrap();
    let (ok, _, err) = cli(&[
        "run",
        "-f",
        f,
        "--plan",
        "20260101T000000.000Z",
        "--shard",
        "0/2",
    ]);
    assert!(!ok);
    assert!(
        err.contains("has no staged run") && err.contains("fix --plan"),
        "{err}"
    );
    let (ok, _, err) = cli(&["run", "-f", f, "--plan", "x", "--shard", "2/2"]);
    assert!(!ok);
    assert!(err.contains("0 <= I < N"), "{err}");
    let (ok, _, err) = cli(&["run", "-f", f, "--shard", "0/2"]);
    assert!(!ok);
    assert!(err.contains("--plan"), "{err}");
    assert!(
        files(&repo).iter().all(|p| !p.contains("runs/")),
        "nothing was staged: {:?}",
        files(&repo)
    );
}

/// `plan -f` of a job backup shows the shards and which partitions each takes (table), and
/// `-o json` carries them as the plan's `execution`; every partition is in exactly one shard.
#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_shards_and_their_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("shplan");
    gen_load(&topic, 5, 1);
    let kb = backup_yaml(
        "shp",
        std::slice::from_ref(&topic),
        &fs_storage(&dir.path().join("repo")),
        &format!("  stopAtCurrentOffsets: true\n{}", execution(2, 1)),
    );
    let f = write_docs(dir.path(), &[&kb]);
    let f = f.to_str().unwrap();
    let (ok, out, err) = cli(&["plan", "-f", f]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Shards: 2"), "{out}");
    for p in 0..5 {
        assert!(out.contains(&format!("{topic}/{p}")), "{out}");
    }
    let (ok, out, err) = cli(&["plan", "-f", f, "-o", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let shards = v["execution"]["shards"]
        .as_array()
        .expect("execution.shards");
    assert_eq!(shards.len(), 2);
    let mut all: Vec<u64> = shards
        .iter()
        .flat_map(|s| {
            s["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
        })
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    assert!(
        !dir.path().join("repo/shp/runs").exists(),
        "plan writes nothing"
    );
}
