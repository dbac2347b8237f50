//! The integrity chain and idempotent restores, against the real broker and a filesystem
//! repository (docs/format.md, "Integrity chain"; docs/decisions.md).
//!
//! Corruption table: one backup of a 2-partition topic, copied once per case, damaged in one
//! way, then restored into a new topic. Every damage is refused with an error naming the
//! object; damage to a manifest, an index, or a segment's size, identity or whole-object
//! CRC-32C is found before anything is written (the target topic is not even created); a
//! changed payload byte in a block other than a segment's last is found when that block is
//! read, before its first batch is produced; an untouched copy restores every record.
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
        true,
    ),
    (
        "deleted segment",
        |root| {
            let seg = &files(root, ".seg")[0];
            std::fs::remove_file(seg).unwrap();
            rel(root, seg)
        },
        true,
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
        true,
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

/// Which recorded checksum a re-sealed change leaves stale (issue 15, class 1).
#[derive(Debug, Clone, Copy)]
enum Stale {
    /// The manifest segment entry's whole-object `crc32c`.
    Object,
    /// The manifest segment entry's `lastBatchCrc32c`.
    LastBatch,
    /// The changed record batch's own Kafka CRC-32C.
    Batch,
}

/// Sets a JSON document's own checksum again (docs/format.md, "Integrity chain": SHA-256 of
/// the compact JSON with `checksum` null) and returns its bytes as written.
fn reseal_json(v: &mut serde_json::Value) -> Vec<u8> {
    use sha2::Digest;
    v["checksum"] = serde_json::Value::Null;
    let sum = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&*v).unwrap()));
    v["checksum"] = format!("sha256:{sum}").into();
    serde_json::to_vec_pretty(&*v).unwrap()
}

/// The attack of issue 15: one byte of the last record value of the last batch of the last
/// block of partition 0's first segment is changed, and every checksum the old readers
/// verified is sealed again: the batch's own CRC-32C, the block header's CRC-32C, the index's
/// block `crc32c` and own checksum, the manifest's `indexCrc32c`/`indexBytes`,
/// `lastBatchCrc32c`, `crc32c` and own checksum, except the one `stale` names. The repository
/// must hold uncompressed blocks (`compression: none`). Returns the segment's path, relative.
fn reseal_attack(root: &Path, stale: Stale) -> String {
    let mpath = &files(root, "manifest.json")[0];
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(mpath).unwrap()).unwrap();
    let entry = &mut m["topics"][0]["partitions"][0]["segments"][0];
    let rel = entry["path"].as_str().unwrap().to_string();
    let seg_path = root.join(&rel);
    let idx_path = root.join(rel.replace(".seg", ".idx.json"));
    let mut seg = std::fs::read(&seg_path).unwrap();
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let n = idx["blocks"].as_array().unwrap().len();
    let block = &mut idx["blocks"][n - 1];
    let (pos, len) = (
        block["pos"].as_u64().unwrap() as usize,
        block["len"].as_u64().unwrap() as usize,
    );
    assert_eq!(&seg[pos..pos + 5], b"KBLK\0", "an uncompressed block");
    // the last batch of the block
    let (mut at, end) = (pos + 20, pos + len);
    loop {
        let size = 12 + u32::from_be_bytes(seg[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + size == end {
            break;
        }
        at += size;
    }
    // its last record: ..., value, headerCount 0 (gen-load records have no headers)
    assert_eq!(seg[end - 1], 0, "the last record has no headers");
    seg[end - 2] ^= 0x01;
    if !matches!(stale, Stale::Batch) {
        let crc = crc32c::crc32c(&seg[at + 21..end]);
        seg[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
    }
    let batch_crc = u32::from_be_bytes(seg[at + 17..at + 21].try_into().unwrap());
    let block_crc = crc32c::crc32c(&seg[pos + 20..end]);
    seg[pos + 16..pos + 20].copy_from_slice(&block_crc.to_be_bytes());
    block["crc32c"] = block_crc.into();
    let idx_bytes = reseal_json(&mut idx);
    entry["indexCrc32c"] = crc32c::crc32c(&idx_bytes).into();
    entry["indexBytes"] = idx_bytes.len().into();
    if !matches!(stale, Stale::LastBatch) {
        entry["lastBatchCrc32c"] = batch_crc.into();
    }
    if !matches!(stale, Stale::Object) {
        entry["crc32c"] = crc32c::crc32c(&seg).into();
    }
    std::fs::write(&seg_path, &seg).unwrap();
    std::fs::write(&idx_path, idx_bytes).unwrap();
    std::fs::write(mpath, reseal_json(&mut m)).unwrap();
    rel
}

/// Copies the repository at `from` to the testenv S3 bucket under `prefix`.
async fn upload(from: &Path, prefix: &str) {
    let e = env();
    let op = kafka_backup_operator::storage::StorageTarget::S3 {
        bucket: e.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(e.s3_endpoint.clone()),
        prefix: Some(prefix.into()),
        path_style: true,
        credentials: Some((e.access_key.clone(), e.secret_key.clone())),
        object_lock: None,
    }
    .operator()
    .unwrap();
    for rel in tree(from) {
        op.write(&rel, std::fs::read(from.join(&rel)).unwrap())
            .await
            .unwrap();
    }
}

/// A backup-only KafkaBackupValidation of backup `backup`.
fn validation_yaml(name: &str, backup: &str) -> String {
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: {name}\nspec:\n  backupRef:\n    name: {backup}\n"
    )
}

/// Issue 15, class 1, on a filesystem and on S3: a segment changed and re-sealed at every
/// level but one recorded checksum (the manifest's whole-object `crc32c`, its
/// `lastBatchCrc32c`, or the batch's own CRC-32C) fails the validation's `objects` check
/// naming the object, and the restore fails naming it before its target topic is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_resealed_at_every_level_but_one_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    let topic = unique("reseal");
    gen_load(&topic, 1, 3);
    let kb = backup_yaml(
        "rb",
        std::slice::from_ref(&topic),
        &fs_storage(&clean),
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    backup(&clean, &[&kb], "rb").await;
    let secret = s3_secret("s3-creds", false);
    for (i, stale) in [Stale::Object, Stale::LastBatch, Stale::Batch]
        .into_iter()
        .enumerate()
    {
        let root = dir.path().join(format!("case-{i}"));
        copy_tree(&clean, &root);
        let object = reseal_attack(&root, stale);
        let prefix = unique("reseal");
        upload(&root, &prefix).await;
        for (store, storage, extra) in [
            ("filesystem", fs_storage(&root), None),
            ("s3", s3_storage(&prefix, "s3-creds"), Some(secret.as_str())),
        ] {
            let case = format!("{stale:?} on {store}");
            let kb = backup_yaml("rb", std::slice::from_ref(&topic), &storage, "");
            let kbv = validation_yaml("rv", "rb");
            let mut docs = vec![kb.as_str(), kbv.as_str()];
            docs.extend(extra);
            let f = write_docs(dir.path(), &docs);
            let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
            assert!(!ok, "{case}: the validation passed: {out}{err}");
            let objects = out
                .lines()
                .find(|l| l.starts_with("objects"))
                .unwrap_or_default();
            assert!(objects.contains("Fail"), "{case}: {out}");
            assert!(out.contains(&object), "{case}: names the object: {out}");

            let target = format!("{topic}-{i}-{store}");
            let kr = restore_yaml(
                "rr",
                "rb",
                &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
            );
            let mut docs = vec![kb.as_str(), kr.as_str()];
            docs.extend(extra);
            let err = match run_docs(&root, &docs, "rr").await {
                Ok(_) => panic!("{case}: the changed value was restored"),
                Err(e) => e.to_string(),
            };
            eprintln!("{case}: {err}");
            assert!(err.contains(&object), "{case}: names the object: {err}");
            let what = match stale {
                Stale::Object => "records crc32c",
                Stale::LastBatch => "lastBatchCrc32c",
                Stale::Batch => "fails its CRC-32C",
            };
            assert!(err.contains(what), "{case}: says what differs: {err}");
            assert!(
                !topic_exists(&target).await,
                "{case}: found only after the target was created: {err}"
            );
        }
    }
}
