//! The integrity chain and idempotent restores, against the real broker and a filesystem
//! repository (docs/format.md, "Integrity chain"; docs/decisions.md).
//!
//! Corruption table: one backup of a 2-partition topic, copied once per case, damaged in one
//! way, then restored into a new topic. Every damage is refused with an error naming the
//! object; damage to a manifest or an index is found before anything is written (the target
//! topic is not even created); an untouched copy restores every record.
use std::path::{Path, PathBuf};

use crate::support::*;
use kafka_backup_operator::kafka::ops::OffsetSpec;

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// The files under `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tree(dir)
        .into_iter()
        .filter(|p| p.ends_with(suffix))
        .map(|p| dir.join(p))
        .collect();
    v.sort();
    v
}

/// Rewrites a JSON document with `f` applied (its stored checksum left as it was).
fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Whether `topic` exists on the broker.
async fn topic_exists(topic: &str) -> bool {
    let c = client().await;
    c.refresh_metadata()
        .await
        .unwrap()
        .topics
        .contains_key(topic)
}

type Damage = fn(&Path) -> String;

/// Each case damages the repository at `root` and returns the object the error must name
/// (relative path), and whether the damage must be found before anything is written.
const CASES: &[(&str, Damage, bool)] = &[
    (
        "flipped byte in a segment",
        |root| {
            let seg = &files(root, ".seg")[0];
            let mut b = std::fs::read(seg).unwrap();
            let at = b.len() / 2;
            b[at] ^= 0x5a;
            std::fs::write(seg, b).unwrap();
            rel(root, seg)
        },
        false,
    ),
    (
        "truncated segment",
        |root| {
            let seg = &files(root, ".seg")[0];
            let b = std::fs::read(seg).unwrap();
            std::fs::write(seg, &b[..b.len() - 100]).unwrap();
            rel(root, seg)
        },
        false,
    ),
    (
        "deleted segment",
        |root| {
            let seg = &files(root, ".seg")[0];
            std::fs::remove_file(seg).unwrap();
            rel(root, seg)
        },
        false,
    ),
    (
        "segments of two partitions swapped",
        |root| {
            let segs = files(root, ".seg");
            let (a, b) = (
                std::fs::read(&segs[0]).unwrap(),
                std::fs::read(&segs[1]).unwrap(),
            );
            std::fs::write(&segs[0], b).unwrap();
            std::fs::write(&segs[1], a).unwrap();
            rel(root, &segs[0])
        },
        false,
    ),
    (
        "index timestamp changed",
        |root| {
            // one digit of the first block's maxTimestamp, same size: what a PITR read trusts
            let idx = &files(root, ".idx.json")[0];
            let mut b = std::fs::read(idx).unwrap();
            let key = b"\"maxTimestamp\": ";
            let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 1;
            b[at] = if b[at] == b'1' { b'2' } else { b'1' };
            std::fs::write(idx, b).unwrap();
            rel(root, idx)
        },
        true,
    ),
    (
        "index changed with its own checksum recomputed",
        |root| {
            // a careful edit: the index's own checksum matches again, but the manifest records
            // the index's CRC-32C
            let idx = &files(root, ".idx.json")[0];
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(idx).unwrap()).unwrap();
            v["blocks"][0]["minTimestamp"] = 2.into();
            v["checksum"] = serde_json::Value::Null;
            let sum = {
                use sha2::Digest;
                format!(
                    "sha256:{}",
                    hex::encode(sha2::Sha256::digest(serde_json::to_vec(&v).unwrap()))
                )
            };
            v["checksum"] = sum.into();
            std::fs::write(idx, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
            rel(root, idx)
        },
        true,
    ),
    (
        "deleted index",
        |root| {
            let idx = &files(root, ".idx.json")[0];
            std::fs::remove_file(idx).unwrap();
            rel(root, idx)
        },
        true,
    ),
    (
        "manifest cut changed",
        |root| {
            let m = &files(root, "manifest.json")[0];
            edit_json(m, |v| v["topics"][0]["partitions"][0]["cut"] = 3.into());
            rel(root, m)
        },
        true,
    ),
    (
        "manifest segment list emptied",
        |root| {
            let m = &files(root, "manifest.json")[0];
            edit_json(m, |v| {
                v["topics"][0]["partitions"][0]["segments"] = serde_json::json!([])
            });
            rel(root, m)
        },
        true,
    ),
];

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_damaged_object_is_refused_by_name_and_an_untouched_copy_restores() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let topic = unique("integ");
    let produced = gen_load(&topic, 2, 2);
    let kb = backup_yaml(
        "ib",
        std::slice::from_ref(&topic),
        &fs_storage(&clean),
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    backup(&clean, &[&kb], "ib").await;

    let mut checked = 0;
    for (i, (case, damage, before_writing)) in CASES.iter().enumerate() {
        let root = dir.path().join(format!("case-{i}"));
        copy_tree(&clean, &root);
        let object = damage(&root);
        let target = format!("{topic}-c{i}");
        let kb = backup_yaml("ib", std::slice::from_ref(&topic), &fs_storage(&root), "");
        let kr = restore_yaml(
            "ir",
            "ib",
            &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
        );
        let err = match run_docs(&root, &[&kb, &kr], "ir").await {
            Ok(_) => panic!("{case}: the damaged repository was restored"),
            Err(e) => e.to_string(),
        };
        eprintln!("{case}: {err}");
        // the error names the damaged object (a segment's name also appears in its index's)
        let stem = object
            .trim_end_matches(".idx.json")
            .trim_end_matches(".seg");
        assert!(
            err.contains(stem),
            "{case}: the error does not name {object}: {err}"
        );
        if *before_writing {
            assert!(
                !topic_exists(&target).await,
                "{case}: found only after the target was created: {err}"
            );
        } else {
            // found while reading: the partition that met it is not complete, and the error
            // says which are
            assert!(err.contains("complete:"), "{case}: {err}");
        }
        checked += 1;
    }
    assert_eq!(checked, CASES.len());

    // the untouched repository restores every record, and the data matches
    let root = dir.path().join("untouched");
    copy_tree(&clean, &root);
    let kb = backup_yaml("ib", std::slice::from_ref(&topic), &fs_storage(&root), "");
    let target = format!("{topic}-ok");
    let kr = restore_yaml(
        "ir",
        "ib",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
    );
    let out = restore(&root, &[&kb, &kr], "ir").await;
    assert_eq!(out.records, produced);
    assert_same(&[topic], &[target], &[]);
}

/// Sum of the high watermarks of `topic`'s partitions 0..n.
async fn end_offsets(topic: &str, n: i32) -> i64 {
    let c = client().await;
    c.refresh_metadata().await.ok();
    let parts: Vec<(String, i32)> = (0..n).map(|p| (topic.to_string(), p)).collect();
    c.list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap()
        .values()
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_restore_run_again_does_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("idem");
    let produced = gen_load(&topic, 2, 1);
    let kb = backup_yaml(
        "db",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "db").await;
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "dr",
        "db",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
    );
    let first = restore(dir.path(), &[&kb, &kr], "dr").await;
    assert_eq!(first.records, produced);
    assert!(!first.already_complete);
    let end = end_offsets(&target, 2).await;
    assert_eq!(end as u64, produced);

    // the same restore again, with only a rate limit added: nothing appended
    let kr2 = restore_yaml(
        "dr",
        "db",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  rateLimiting:\n    recordsPerSec: 10\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr2]);
    let (ok, out, err) = cli(&[
        "run",
        "--no-progress",
        "-f",
        f.to_str().unwrap(),
        "--name",
        "dr",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("already completed"), "{out}");
    let (ok, out, err) = cli(&["plan", "-f", f.to_str().unwrap(), "--name", "dr"]);
    assert!(ok && out.contains("already complete"), "{out}{err}");
    assert_eq!(end_offsets(&target, 2).await, end, "nothing was appended");

    // another restore name onto the now non-empty target: refused, naming the fixes
    let kr3 = restore_yaml(
        "dr2",
        "db",
        &format!("  topicMapping:\n    {topic}: {target}\n"),
    );
    let e = match run_docs(dir.path(), &[&kb, &kr3], "dr2").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second restore onto the restored topic appended to it"),
    };
    assert!(
        e.contains("spec.appendToExisting") && e.contains("purgeTopics"),
        "{e}"
    );
    assert_eq!(end_offsets(&target, 2).await, end, "nothing was appended");
    // appendToExisting says so on purpose: the records go after the existing ones
    let kr4 = restore_yaml(
        "dr3",
        "db",
        &format!("  topicMapping:\n    {topic}: {target}\n  appendToExisting: true\n"),
    );
    let out = restore(dir.path(), &[&kb, &kr4], "dr3").await;
    assert_eq!(out.records, produced);
    assert_eq!(end_offsets(&target, 2).await as u64, 2 * produced);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("lock");
    gen_load(&topic, 1, 4);
    let kb = backup_yaml(
        "lk",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  rateLimiting:\n    bytesPerSec: 300000\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    #[allow(clippy::zombie_processes)] // killed and reaped below on every path
    let mut child = spawn_run(&f);
    let lock = dir.path().join("lk/lock.json");
    let t = std::time::Instant::now();
    while !lock.exists() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = run_docs(dir.path(), &[&kb], "lk").await;
    let _ = child.kill();
    let _ = child.wait();
    let e = match second {
        Err(e) => e.to_string(),
        Ok(_) => panic!("two backups ran at once on one repository"),
    };
    assert!(
        e.contains("repository locked")
            && e.contains(&format!("pid {}", child.id()))
            && e.contains("backup run"),
        "{e}"
    );
    // the holder was killed (SIGKILL, lock left behind): the next run takes it over at once
    // and resumes the killed run
    assert!(lock.exists(), "the killed run left its lock");
    let kb_fast = kb.replace("    bytesPerSec: 300000\n", "    bytesPerSec: 0\n");
    let m = backup(dir.path(), &[&kb_fast], "lk").await;
    assert!(m.total_records > 0);
    assert!(!lock.exists(), "released at the end");
}

/// A LogAppendTime topic restored with createTopics keeps every record's timestamp (the one a
/// consumer of the source sees: the broker's append time), and gets LogAppendTime back once
/// the data is in. Before, the target was created LogAppendTime and the broker stamped every
/// restored record with the restore time.
#[tokio::test(flavor = "multi_thread")]
async fn log_append_time_topics_keep_their_timestamps() {
    use kafka_backup_operator::format::batch::{Codec, Record, encode_batch};
    use kafka_backup_operator::kafka::ops::NewTopic;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("lat");
    let c = client().await;
    c.create_topics(
        &[NewTopic {
            name: topic.clone(),
            partitions: 1,
            replication_factor: -1,
            configs: [
                ("message.timestamp.type", "LogAppendTime"),
                ("retention.ms", "-1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }],
        10_000,
    )
    .await
    .unwrap();
    for b in 0..3 {
        let recs: Vec<Record> = (0..50)
            .map(|i| Record {
                offset: 0,
                timestamp: 1_000_000_000_000 + i,
                key: Some(format!("k{b}-{i}").into()),
                value: Some(format!("v{i}").into()),
                headers: vec![],
            })
            .collect();
        c.produce(
            &topic,
            0,
            encode_batch(&recs, Codec::None).unwrap(),
            -1,
            10_000,
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let kb = backup_yaml(
        "lb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "lb").await;
    // restore later than the append times, so a re-stamp would show
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "lr",
        "lb",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
    );
    let out = restore(dir.path(), &[&kb, &kr], "lr").await;
    assert_eq!(out.records, 150);
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    let cfg = c
        .describe_topic_configs(std::slice::from_ref(&target))
        .await
        .unwrap();
    assert_eq!(
        cfg[&target]["message.timestamp.type"].value.as_deref(),
        Some("LogAppendTime"),
        "the source's timestamp type is set after the data"
    );
}

/// Runs the CLI with `RUST_LOG` and returns (success, stdout + stderr).
fn cli_logged(rust_log: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(args)
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Backup and restore at trace level (text and JSON logs), against S3 with a credentials
/// Secret and against Kafka through SASL: no secret value appears in any
/// line, although the runs used them (the S3 server checks the key; the SASL listener
/// refuses a wrong password).
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_logs_at_any_level() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("sec");
    gen_load(&topic, 1, 1);
    let prefix = unique("sec");
    let kb = backup_yaml(
        "sk",
        std::slice::from_ref(&topic),
        &s3_storage(&prefix, "s3-creds"),
        "  stopAtCurrentOffsets: true\n",
    );
    let kr = restore_yaml(
        "skr",
        "sk",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    let secret = s3_secret("s3-creds", false);
    let fb = write_docs(dir.path(), &[&kb, &secret]);
    let fr = write_docs(dir.path(), &[&kb, &kr, &secret]);
    let mut logs = String::new();
    for (level, format) in [("trace", "text"), ("debug", "json")] {
        for f in [&fb, &fr] {
            let (ok, out) = cli_logged(
                level,
                &[
                    "--log-format",
                    format,
                    "run",
                    "--no-progress",
                    "-f",
                    f.to_str().unwrap(),
                ],
            );
            assert!(ok, "{out}");
            logs.push_str(&out);
        }
    }
    // SASL: a backup whose bootstrap connection authenticates at the SASL listener, at trace
    // level (PLAIN: the broker's advertised listener, reached next, takes PLAIN too; SCRAM
    // against the listener itself is tested in sasl.rs)
    let port = crate::sasl::sasl_proxy().await;
    {
        let mechanism = "PLAIN";
        let sasl_kb = backup_yaml(
            "sks",
            std::slice::from_ref(&topic),
            &fs_storage(dir.path()),
            "  stopAtCurrentOffsets: true\n",
        )
        .replace(&e.bootstrap, &format!("127.0.0.1:{port}"))
        .replace(
            "  kafkaCluster:\n",
            &format!("  kafkaCluster:\n    securityProtocol: SASL_PLAINTEXT\n    saslSecret:\n      name: kafka-sasl\n      mechanism: {mechanism}\n"),
        );
        let sasl_secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kafka-sasl\nstringData:\n  username: {}\n  password: {}\n",
            crate::sasl::USER,
            crate::sasl::PASSWORD
        );
        let f = write_docs(dir.path(), &[&sasl_kb, &sasl_secret]);
        let (ok, out) = cli_logged(
            "trace",
            &["run", "--no-progress", "-f", f.to_str().unwrap()],
        );
        assert!(ok, "{mechanism}: {out}");
        logs.push_str(&out);
    }
    // debug lines of our own were written (the level was on), in both formats
    assert!(
        logs.contains("segment complete") && logs.contains("\"level\":\"DEBUG\""),
        "debug logging was on:\n{logs}"
    );
    for (what, value) in [
        ("S3 secret access key", e.secret_key.as_str()),
        ("S3 access key id", e.access_key.as_str()),
        ("SASL password", crate::sasl::PASSWORD),
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(value)) {
            panic!("the {what} appears in the logs: {line}");
        }
    }
}
