//! Sharded restores (`spec.execution.mode: job` on a KafkaRestore, issue 18, docs/execution.md
//! "Restores") against the real broker and storage: the CLI runs each shard as a child process
//! (what a Kubernetes Job of the operator runs) and the target is record-identical to the
//! source (confluent-kafka: key, value, headers, timestamp, partition, order); a shard killed
//! with SIGKILL resumes from the journal's base offsets and the target's end with no record
//! written twice; a failed shard fails the run naming it and the next attempt runs only that
//! shard; a repartitioned topic is one shard's unit and lands exactly where an in-process
//! restore puts it; `--plan`/`--shard` that cannot work are refused naming the fix.
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;
use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::exec::lock::Lock;
use kafka_backup_operator::exec::restore_shard::{self, RestoreShardSteps, StagedRestore};
use kafka_backup_operator::exec::shard::ShardFailure;
use kafka_backup_operator::exec::{ExecContext, ExecError, RestoreStart};
use kafka_backup_operator::format::layout;
use kafka_backup_operator::format::manifest::from_json;
use kafka_backup_operator::kafka::ops::OffsetSpec;
use kafka_backup_operator::kinds::Access;
use kafka_backup_operator::kinds::restore::{PreparedRestore, prepare};

fn execution(shards: u32, backoff: u32) -> String {
    format!("  execution:\n    mode: job\n    shards: {shards}\n    backoffLimit: {backoff}\n")
}

/// Prepares the KafkaRestore `name` of the documents in `f` as the CLI would.
async fn prepared(f: &Path, name: &str) -> PreparedRestore {
    let (target, secrets) = load(&[f.to_path_buf()], Some(name)).unwrap();
    let Target::Restore(kr, kb) = target else {
        panic!("not a restore")
    };
    prepare(
        &kr,
        kb.as_deref(),
        &secrets,
        Path::new("/nonexistent"),
        Access::ReadWrite,
    )
    .await
    .unwrap()
}

/// The shard steps of a prepared sharded plan.
fn assignment(p: &PreparedRestore) -> Vec<RestoreShardSteps> {
    let e = p.plan.execution.as_ref().expect("a job plan has shards");
    (e.shards.iter())
        .map(|s| RestoreShardSteps {
            partitions: s.partitions.clone(),
            repartitioned: s.repartitioned.clone(),
        })
        .collect()
}

/// The staged restore document in the repository directory `repo`, if written yet.
fn staged(repo: &Path, backup: &str, restore: &str) -> Option<StagedRestore> {
    let path = layout::restore_plan(backup, restore);
    let bytes = std::fs::read(repo.join(&path)).ok()?;
    Some(from_json(&bytes, &path).unwrap())
}

/// Every file under `dir` that belongs to a restore's staging (plan.json, shard results).
fn staging_left(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|p| {
            p.contains("/restores/") && (p.contains("/shards/") || p.ends_with("/plan.json"))
        })
        .collect()
}

/// A sample (keys, tombstones, headers, timestamps, transactions) backed up to S3, restored
/// through the CLI as three shard processes: record-identical, the journal complete, the
/// staging gone; a second run does nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_restore_through_the_cli_is_record_identical() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("rsh3");
    let sample = produce_sample(&format!("{prefix}-"), 300);
    let topics = sample_topics(&sample);
    let kb = backup_yaml(
        "rsh3",
        &[format!("{prefix}-*")],
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "rsh3").await;
    let r = restore_yaml(
        "rsh3-r",
        "rsh3",
        &format!(
            "{}  createTopics: true\n{}",
            mapping(&topics, "-rs"),
            execution(3, 0)
        ),
    );
    let f = write_docs(dir.path(), &[&r, &kb]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "sharded restore failed:\n{out}\n{err}");
    assert!(
        err.contains("[shard 2/3]") && err.contains("[shard 0/3]"),
        "three shard processes ran:\n{err}"
    );
    assert_same(&topics, &suffixed(&topics, "-rs"), &[]);
    let journal: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(layout::restore_journal("rsh3", "rsh3-r"))).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["complete"], true, "{journal}");
    let left = staging_left(dir.path());
    assert!(left.is_empty(), "staging documents left: {left:?}");
    // complete: a second run reads and writes nothing
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(!err.contains("[shard "), "no shard runs again:\n{err}");
    assert_same(&topics, &suffixed(&topics, "-rs"), &[]);
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

/// A shard process killed with SIGKILL while it produces is started again by the coordinator
/// and resumes: the records it had written are skipped (the journal's base offsets and the
/// target's end), the rest produced; the target matches the source record for record and the
/// offset map covers every record once, at consecutive target offsets.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shard_resumes_and_writes_no_record_twice() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let topic = unique("rshk");
    let produced = gen_load(&topic, 4, 12);
    let kb = backup_yaml(
        "rshk",
        std::slice::from_ref(&topic),
        &fs_storage(repo),
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    backup(repo, &[&kb], "rshk").await;
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "rshk-r",
        "rshk",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  produceBatchSize: 100\n  rateLimiting:\n    bytesPerSec: 3000000\n{}",
            execution(2, 2)
        ),
    );
    let f = write_docs(repo, &[&kr, &kb]);
    let log = repo.join("coordinator.log");
    #[allow(clippy::zombie_processes)] // reaped below on every path
    let mut coordinator = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(["run", "--no-progress", "-f"])
        .arg(&f)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let c = client().await;
    // wait for shard 0 to have written some (not all) of its records, then kill -9 it
    let t = Instant::now();
    loop {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = coordinator.kill();
            let _ = coordinator.wait();
            panic!(
                "shard 0 wrote nothing within 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Some(s) = staged(repo, "rshk", "rshk-r") {
            let mine: Vec<(String, i32)> = (s.shards[0].partitions.iter())
                .map(|&i| {
                    let p = &s.plan.partitions[i];
                    (p.target_topic.clone(), p.target_partition)
                })
                .collect();
            c.refresh_metadata().await.ok();
            if let Ok(hw) = c.list_offsets(&mine, OffsetSpec::Latest).await {
                let n: i64 = hw.values().sum();
                let want: u64 = (s.shards[0].partitions.iter())
                    .map(|&i| s.plan.partitions[i].estimated_records)
                    .sum();
                if n > 0
                    && let Some(pid) = shard_pid(&f, "0/2")
                {
                    let killed = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                        .unwrap();
                    assert!(killed.success());
                    assert!((n as u64) < want, "killed before its end ({n} of {want})");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = coordinator.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = coordinator.kill();
            let _ = coordinator.wait();
            panic!("the sharded restore did not finish within 120 s after the kill");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "the restore failed after the kill:\n{log}"
    );
    assert!(
        log.contains("shard failed"),
        "the killed shard was retried:\n{log}"
    );
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    // the offset map covers every record once, at consecutive target offsets from 0
    let run = std::fs::read_dir(repo.join("rshk/restores/rshk-r"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir() && e.file_name() != "shards")
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
    let parts: Vec<i64> = (map["partitions"].as_array().unwrap().iter())
        .map(|p| p["sourcePartition"].as_i64().unwrap())
        .collect();
    assert_eq!(parts, vec![0, 1, 2, 3], "entries in plan order");
}

/// Runs shard `i` of the staged restore of `p` in this process (as a launcher).
async fn in_process(p: &PreparedRestore, i: u32, c: &ExecContext) -> Result<(), ShardFailure> {
    let fail = |e: ExecError| ShardFailure {
        message: e.to_string(),
        oom_killed: false,
    };
    let plan = &p.plan;
    let staged = restore_shard::load_staged(
        &p.state,
        &plan.backup_name,
        &plan.restore_name,
        Some(&plan.backup_run_id),
    )
    .await
    .map_err(fail)?;
    restore_shard::run_restore_shard(&staged, i, &p.client, &p.op, &p.state, c)
        .await
        .map(|_| ())
        .map_err(fail)
}

/// A shard that fails fails the run naming the shard and its partitions; the other shard's
/// result is kept, the journal is not complete; a shard of a restore whose lock is gone
/// writes nothing; `--plan`/`--shard` that do not fit the staging are refused naming the
/// flag; the next attempt resumes the journal and launches only the failed shard, and the
/// target is record-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_shard_fails_the_run_naming_it_and_only_it_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let topic = unique("rshf");
    gen_load(&topic, 4, 2);
    let kb = backup_yaml(
        "rshf",
        std::slice::from_ref(&topic),
        &fs_storage(repo),
        "  stopAtCurrentOffsets: true\n",
    );
    let run = backup(repo, &[&kb], "rshf").await.run_id;
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "rshf-r",
        "rshf",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n{}",
            execution(2, 0)
        ),
    );
    let f = write_docs(repo, &[&kr, &kb]);
    let fs = f.to_str().unwrap();
    // nothing staged yet: a shard has nothing to run
    let (ok, _, err) = cli(&["run", "-f", fs, "--plan", &run, "--shard", "0/2"]);
    assert!(!ok);
    assert!(
        err.contains("has no staged run") && err.contains("fix --plan"),
        "{err}"
    );
    let p = prepared(&f, "rshf-r").await;
    assert!(matches!(p.start, RestoreStart::Fresh { .. }));
    let c = ctx();
    let launch = |i: u32, n: u32| {
        assert_eq!(n, 2);
        let (p, c) = (&p, c.clone());
        async move {
            if i == 1 {
                return Err(ShardFailure {
                    message: "exited with exit status: 1".into(),
                    oom_killed: false,
                });
            }
            in_process(p, i, &c).await
        }
    };
    let e = restore_shard::coordinate_restore(
        &p.plan,
        &p.start,
        assignment(&p),
        &p.client,
        &p.op,
        &p.state,
        &c,
        launch,
    )
    .await
    .expect_err("a failed shard fails the run");
    assert_eq!(e.category(), "shard-failed", "{e}");
    let msg = e.to_string();
    assert!(msg.contains("shard 1 of 2"), "{msg}");
    assert!(
        msg.contains(&format!("{topic}/")),
        "names the partitions: {msg}"
    );
    assert!(
        msg.contains("runs only the shards without a result"),
        "{msg}"
    );
    {
        // the run's live figures: shard 0 finished with its records, shard 1 did not
        let live = c.progress.shards.lock().unwrap();
        assert_eq!(live.len(), 2, "{live:?}");
        assert_eq!(live[0].phase, "Succeeded", "{live:?}");
        assert!(
            live[0].records > 0 && live[0].records_planned > 0,
            "{live:?}"
        );
        assert_ne!(live[1].phase, "Succeeded", "{live:?}");
    }
    let result = |i: u32| repo.join(layout::restore_shard_result("rshf", "rshf-r", i));
    assert!(result(0).exists() && !result(1).exists());
    let journal: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(layout::restore_journal("rshf", "rshf-r"))).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["complete"], false);

    // a shard of a restore whose lock is gone (no coordinator holds it) writes nothing
    let s = staged(repo, "rshf", "rshf-r").expect("staged");
    let e = restore_shard::run_restore_shard(&s, 1, &p.client, &p.op, &p.state, &c)
        .await
        .expect_err("no lock, no writing");
    assert!(matches!(e, ExecError::Locked(_)), "{e}");
    assert!(!result(1).exists());

    // --plan and --shard must fit the staging
    let (ok, _, err) = cli(&["run", "-f", fs, "--plan", &run, "--shard", "0/3"]);
    assert!(!ok);
    assert!(
        err.contains("staged with 2 shards") && err.contains("fix --shard"),
        "{err}"
    );
    let (ok, _, err) = cli(&[
        "run",
        "-f",
        fs,
        "--plan",
        "20200101T000000.000Z",
        "--shard",
        "0/2",
    ]);
    assert!(!ok);
    assert!(
        err.contains(&format!("backup run {run}")) && err.contains("fix --plan"),
        "{err}"
    );
    // a shard whose result exists exits at once
    let (ok, _, err) = cli(&["run", "-f", fs, "--plan", &run, "--shard", "0/2"]);
    assert!(ok, "{err}");
    assert!(err.contains("nothing to do"), "{err}");

    // the next attempt: the journal resumes, only shard 1 runs; its process waits while shard
    // 1's lock is held (the last Pod of its Job, still terminating) and produces nothing
    let p2 = prepared(&f, "rshf-r").await;
    assert!(matches!(p2.start, RestoreStart::Resume(_)));
    let shard_lock = layout::restore_shard_lock("rshf", "rshf-r", 1);
    let other = Lock::acquire(&p2.state, &shard_lock, "the terminating Pod")
        .await
        .unwrap();
    let waited = {
        let result1 = result(1);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            let written_meanwhile = result1.exists();
            other.release().await;
            written_meanwhile
        })
    };
    let launched = Mutex::new(vec![]);
    let launch = |i: u32, _n: u32| {
        launched.lock().unwrap().push(i);
        let (p2, c) = (&p2, c.clone());
        async move { in_process(p2, i, &c).await }
    };
    let out = restore_shard::coordinate_restore(
        &p2.plan,
        &p2.start,
        assignment(&p2),
        &p2.client,
        &p2.op,
        &p2.state,
        &c,
        launch,
    )
    .await
    .unwrap();
    assert!(
        !waited.await.unwrap(),
        "shard 1 ran while another process held its lock"
    );
    assert_eq!(*launched.lock().unwrap(), vec![1]);
    assert_eq!(out.offset_map.partitions.len(), 4);
    let live = c.progress.shards.lock().unwrap().clone();
    assert!(live.iter().all(|s| s.phase == "Succeeded"), "{live:?}");
    let (done, _, _) = c.progress.snapshot();
    assert_eq!(done, out.records, "the run's records are the shards' sum");
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    assert!(staging_left(repo).is_empty(), "{:?}", staging_left(repo));
}

/// (partition, offset, timestamp, key, value, headers) of every record of `topic`.
fn dump(topic: &str) -> Vec<(i64, i64, i64, String, String, String)> {
    let e = env();
    let (ok, out, err) = py(&["dump", "--bootstrap", &e.bootstrap, "--topics", topic]);
    assert!(ok, "dump {topic}: {err}");
    let mut v: Vec<_> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
                v["timestamp"].as_i64().unwrap(),
                v["key"].to_string(),
                v["value"].to_string(),
                v["headers"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A restore of two topics, one repartitioned (3 -> 5 partitions), in two shards: the
/// repartitioned topic is one shard's unit and its records land exactly where an in-process
/// restore of the same backup puts them (partition, offset, timestamp, key, value, headers);
/// the other topic is record-identical to its source.
#[tokio::test(flavor = "multi_thread")]
async fn a_repartitioned_restore_in_shards_matches_the_in_process_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let (a, b) = (unique("rshra"), unique("rshrb"));
    gen_load(&a, 3, 1);
    gen_load(&b, 3, 1);
    let kb = backup_yaml(
        "rshr",
        &[a.clone(), b.clone()],
        &fs_storage(repo),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(repo, &[&kb], "rshr").await;
    let spec = |suffix: &str| {
        format!(
            "  createTopics: true\n  produceBatchSize: 37\n  topicMapping:\n    {a}: {a}{suffix}\n    {b}: {b}{suffix}\n  repartitioning:\n    {a}{suffix}:\n      strategy: murmur2\n      targetPartitions: 5\n"
        )
    };
    let inproc = restore_yaml("rshr-i", "rshr", &spec("-i"));
    let sharded = restore_yaml(
        "rshr-s",
        "rshr",
        &format!("{}{}", spec("-s"), execution(2, 0)),
    );
    restore(repo, &[&inproc, &kb], "rshr-i").await;
    let f = write_docs(repo, &[&sharded, &kb]);
    let (ok, out, err) = cli(&[
        "run",
        "--no-progress",
        "-f",
        f.to_str().unwrap(),
        "--name",
        "rshr-s",
    ]);
    assert!(ok, "sharded repartitioned restore failed:\n{out}\n{err}");
    assert!(
        err.contains("[shard 1/2]"),
        "two shard processes ran:\n{err}"
    );
    let (want, got) = (dump(&format!("{a}-i")), dump(&format!("{a}-s")));
    assert_eq!(want.len(), got.len());
    assert!(
        want == got,
        "the repartitioned topic is the in-process restore's, record for record"
    );
    assert_same(std::slice::from_ref(&b), &[format!("{b}-s")], &[]);
    // the offset maps agree too (entries in plan order, same ranks)
    let map = |r: &str| -> serde_json::Value {
        let d = repo.join(format!("rshr/restores/{r}"));
        let run = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir() && e.file_name() != "shards")
            .unwrap()
            .path();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("offset-map.json")).unwrap()).unwrap();
        for p in v["partitions"].as_array_mut().unwrap() {
            let t = p["targetTopic"].as_str().unwrap().to_string();
            p["targetTopic"] = t.trim_end_matches("-i").trim_end_matches("-s").into();
        }
        v["partitions"].take()
    };
    assert_eq!(map("rshr-i"), map("rshr-s"));
}

/// A KafkaBackupValidation with `execution.mode: job` runs its restore check as shards (the
/// CLI's child processes, `--plan <attempt>`): the checks pass with every record and group
/// position accounted for, the scratch topics and restore state (staging included) are gone;
/// a shard of a restore check refuses a `--plan` that is not one of its attempts.
#[tokio::test(flavor = "multi_thread")]
async fn a_validations_restore_check_runs_as_shards() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("rshv");
    gen_load(&topic, 3, 1);
    let group = unique("g");
    group_commit(&group, &topic, 40);
    let kb = backup_yaml(
        "rshv",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    backup(dir.path(), &[&kb], "rshv").await;
    let e = env();
    let kbv = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: rshv-v\nspec:\n  backupRef:\n    name: rshv\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n      consumerGroups: [{group}]\n{}",
        e.bootstrap,
        execution(2, 0)
    );
    let f = write_docs(dir.path(), &[&kb, &kbv]);
    let fs = f.to_str().unwrap();
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", fs]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("[shard 0/2]") && err.contains("[shard 1/2]"),
        "two shard processes ran:\n{err}"
    );
    for c in ["restoreRecords", "restoreConsumerGroupOffsets"] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
    let rr = (report["checks"].as_array().unwrap().iter())
        .find(|c| c["name"] == "restoreRecords")
        .unwrap();
    assert_eq!(rr["figures"]["records"], 1024, "{rr}");
    let (ok, topics, perr) = py(&[
        "list-topics",
        "--bootstrap",
        &e.bootstrap,
        "--prefix",
        "kbv-rshv-v-",
    ]);
    assert!(ok, "{perr}");
    assert!(topics.trim().is_empty(), "scratch topics deleted: {topics}");
    let restores = dir.path().join("rshv/restores");
    assert!(
        !restores.exists() || std::fs::read_dir(&restores).unwrap().next().is_none(),
        "the scratch restore's state is deleted: {:?}",
        tree(dir.path())
    );
    // a shard of the restore check needs one of its attempts
    let (ok, _, err) = cli(&[
        "run",
        "-f",
        fs,
        "--plan",
        "kbv-other-1700000000000",
        "--shard",
        "0/2",
    ]);
    assert!(!ok);
    assert!(err.contains("--plan") && err.contains("rshv-v"), "{err}");
}

/// A restore started over (its journal deleted, the documented fix) after a failed sharded
/// attempt stages anew: the earlier attempt's shard results are not taken for the new
/// journal's, every shard runs, and the target is record-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_started_over_does_not_reuse_the_earlier_shards_results() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let topic = unique("rsho");
    gen_load(&topic, 4, 1);
    let kb = backup_yaml(
        "rsho",
        std::slice::from_ref(&topic),
        &fs_storage(repo),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(repo, &[&kb], "rsho").await;
    let target = format!("{topic}-r");
    let spec = |extra: &str| {
        restore_yaml(
            "rsho-r",
            "rsho",
            &format!(
                "  createTopics: true\n{extra}  topicMapping:\n    {topic}: {target}\n{}",
                execution(2, 0)
            ),
        )
    };
    let f = write_docs(repo, &[&spec(""), &kb]);
    let p = prepared(&f, "rsho-r").await;
    let c = ctx();
    let launch = |i: u32, _n: u32| {
        let (p, c) = (&p, c.clone());
        async move {
            if i == 1 {
                return Err(ShardFailure {
                    message: "exited with exit status: 1".into(),
                    oom_killed: false,
                });
            }
            in_process(p, i, &c).await
        }
    };
    let shards = assignment(&p);
    let (client, op, state) = (&p.client, &p.op, &p.state);
    restore_shard::coordinate_restore(&p.plan, &p.start, shards, client, op, state, &c, launch)
        .await
        .expect_err("shard 1 failed");
    let result0 = repo.join(layout::restore_shard_result("rsho", "rsho-r", 0));
    assert!(result0.exists());
    // start over: the journal deleted, the half-written target purged first
    std::fs::remove_file(repo.join(layout::restore_journal("rsho", "rsho-r"))).unwrap();
    let f = write_docs(repo, &[&spec("  purgeTopics: true\n"), &kb]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("[shard 0/2]") && err.contains("[shard 1/2]"),
        "both shards ran again:\n{err}"
    );
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    assert!(staging_left(repo).is_empty(), "{:?}", staging_left(repo));
}
