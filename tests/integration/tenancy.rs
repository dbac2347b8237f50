//! Repository identity and version (docs/format.md, "Repository identity and version"), against
//! the real broker, a filesystem and moto S3:
//!
//! - two KafkaBackups of the same name in two namespaces, pointed at the same storage: the
//!   second is refused with the fix and writes nothing, its retention deletes nothing, an
//!   adoption with the annotation works and is recorded, a restore through the KafkaBackup
//!   that no longer owns the repository is refused, one with inline storage reads it;
//! - downgrades: documents edited to claim v1 with their checksums removed are refused naming
//!   the object; a genuine v1 repository is still read, and a v2 run continuing it records its
//!   v1 runs.
use std::path::Path;

use crate::support::*;
use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::format::layout::{FORMAT, FORMAT_V1};
use kafka_backup_operator::format::repository::RepositoryRecord;
use kafka_backup_operator::format::repository_io::load_record;
use kafka_backup_operator::storage::StorageTarget;
use opendal::Operator;
use serde_json::Value;

/// A KafkaBackup of `name` in namespace `ns`, adopting `adopt` if given.
fn kb_doc(ns: &str, name: &str, topic: &str, storage: &str, adopt: Option<&str>) -> String {
    let doc = backup_yaml(
        name,
        &[topic.to_string()],
        storage,
        "  stopAtCurrentOffsets: true\n  retention:\n    keepLast: 1\n",
    );
    let mut meta = format!("metadata:\n  name: {name}\n  namespace: {ns}\n");
    if let Some(a) = adopt {
        meta.push_str(&format!(
            "  annotations:\n    kafka.oso.sh/adopt-repository: {a}\n"
        ));
    }
    doc.replacen(&format!("metadata:\n  name: {name}\n"), &meta, 1)
}

/// Every object in the store, sorted.
async fn objects(op: &Operator) -> Vec<String> {
    let mut v: Vec<String> = op
        .list_with("")
        .recursive(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.metadata().is_dir())
        .map(|e| e.path().to_string())
        .collect();
    v.sort();
    v
}

fn kafka_backup(dir: &Path, docs: &[&str], name: &str) -> kafka_backup_operator::api::KafkaBackup {
    match load(&[write_docs(dir, docs)], Some(name)).unwrap().0 {
        Target::Backup(kb) => *kb,
        _ => panic!("{name} is not a KafkaBackup"),
    }
}

async fn topic_exists(topic: &str) -> bool {
    let c = client().await;
    c.refresh_metadata()
        .await
        .unwrap()
        .topics
        .contains_key(topic)
}

/// The two-namespace scenario on one storage (`storage`: the spec lines, `extra`: Secrets).
async fn two_namespaces(dir: &Path, storage: &str, extra: &[&str], op: &Operator) {
    let topic = unique("ten");
    let produced = gen_load(&topic, 1, 1);
    let a = kb_doc("team-a", "shared", &topic, storage, None);
    let b = kb_doc("team-b", "shared", &topic, storage, None);
    let docs = |d: &str| -> Vec<String> {
        let mut v = vec![d.to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |d: String| async move {
        let docs = docs(&d);
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        run_docs(dir, &refs, "shared").await
    };
    // team-a backs up twice
    run(a.clone()).await.expect("team-a's first run");
    run(a.clone()).await.expect("team-a's second run");
    let rec = load_record(op, "shared")
        .await
        .unwrap()
        .expect("the record");
    assert_eq!(rec.owner.to_string(), "team-a/shared");
    assert_eq!(rec.created_with_format, FORMAT);
    assert_eq!(rec.legacy_runs_up_to, None);

    // team-b, same name, same storage: refused with both owners and the fix, nothing written
    let before = objects(op).await;
    let e = match run(b.clone()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("team-b's backup into team-a's repository was not refused"),
    };
    for part in [
        "belongs to KafkaBackup team-a/shared",
        "not to KafkaBackup team-b/shared",
        "spec.storage.<type>.prefix (or path)",
        "kafka.oso.sh/adopt-repository: team-a/shared",
        "/shared/",
    ] {
        assert!(e.contains(part), "{part:?} in {e}");
    }
    assert_eq!(
        objects(op).await,
        before,
        "the refused backup wrote nothing"
    );

    // team-b's retention (keepLast 1) deletes none of team-a's runs
    let docs_b = docs(&b);
    let refs: Vec<&str> = docs_b.iter().map(String::as_str).collect();
    let kb_b = kafka_backup(dir, &refs, "shared");
    let now = kafka_backup_operator::exec::engine::system_now_ms();
    let e = kafka_backup_operator::kinds::retention::apply(&kb_b, op, now)
        .await
        .expect_err("team-b's retention in team-a's repository");
    assert!(e.to_string().contains("team-a/shared"), "{e}");
    let runs = kafka_backup_operator::observe::load_complete_manifests(op, "shared")
        .await
        .unwrap();
    assert_eq!(runs.len(), 2, "team-a's runs are all there");
    assert_eq!(
        objects(op).await,
        before,
        "the refused retention deleted nothing"
    );

    // team-b adopts the repository on purpose: recorded
    let adopt = kb_doc("team-b", "shared", &topic, storage, Some("team-a/shared"));
    run(adopt).await.expect("the adoption");
    let rec: RepositoryRecord = load_record(op, "shared").await.unwrap().unwrap();
    assert_eq!(rec.owner.to_string(), "team-b/shared");
    assert_eq!(rec.adoptions.len(), 1, "{rec:?}");
    assert_eq!(rec.adoptions[0].from.to_string(), "team-a/shared");
    assert_eq!(rec.adoptions[0].to.to_string(), "team-b/shared");
    // now team-a is the other one
    let e = run(a.clone())
        .await
        .err()
        .expect("team-a refused after the adoption");
    assert!(
        e.to_string()
            .contains("belongs to KafkaBackup team-b/shared"),
        "{e}"
    );

    // a restore through team-a's KafkaBackup (no longer the owner): refused while planning
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "ten-r",
        "shared",
        &format!("  topicMapping:\n    {topic}: {target}\n  createTopics: true\n"),
    );
    let mut rdocs = docs(&a);
    rdocs.push(kr.clone());
    let refs: Vec<&str> = rdocs.iter().map(String::as_str).collect();
    let e = match run_docs(dir, &refs, "ten-r").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("restore of another owner's repository was not refused"),
    };
    assert!(
        e.contains("spec.backupRef.name")
            && e.contains("belongs to KafkaBackup team-b/shared")
            && e.contains("not to KafkaBackup team-a/shared")
            && e.contains("backupRef.storage inline"),
        "{e}"
    );
    assert!(!topic_exists(&target).await, "nothing was restored");
    // through the owner's KafkaBackup it restores every record
    let mut rdocs = docs(&b);
    rdocs.push(kr);
    let refs: Vec<&str> = rdocs.iter().map(String::as_str).collect();
    let out = restore(dir, &refs, "ten-r").await;
    assert_eq!(out.records, produced);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_namespaces_one_filesystem_repository() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let op = StorageTarget::Fs {
        root: root.display().to_string(),
    }
    .operator()
    .unwrap();
    two_namespaces(dir.path(), &fs_storage(&root), &[], &op).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_namespaces_one_s3_repository() {
    let dir = tempfile::tempdir().unwrap();
    let e = env();
    let prefix = unique("tenancy");
    let op = StorageTarget::S3 {
        bucket: e.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(e.s3_endpoint.clone()),
        prefix: Some(prefix.clone()),
        path_style: true,
        credentials: Some((e.access_key.clone(), e.secret_key.clone())),
        object_lock: None,
    }
    .operator()
    .unwrap();
    let secret = s3_secret("ten-s3", false);
    two_namespaces(dir.path(), &s3_storage(&prefix, "ten-s3"), &[&secret], &op).await;
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, dst) = (e.path(), to.join(e.file_name()));
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = tree(dir)
        .into_iter()
        .filter(|p| p.ends_with(suffix))
        .map(|p| dir.join(p))
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Writes `v` with its checksum recomputed (a careful forger) or, with `None`, as is.
fn write(p: &Path, mut v: Value, recompute: bool) {
    if recompute {
        v.as_object_mut().unwrap().remove("checksum");
        let bytes = kafka_backup_operator::format::manifest::to_json(&v);
        std::fs::write(p, bytes).unwrap();
    } else {
        std::fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
}

/// What a v1 build wrote: tag v1, no checksum, no v2 fields.
fn as_v1_manifest(v: &mut Value) {
    v["format"] = FORMAT_V1.into();
    v.as_object_mut().unwrap().remove("checksum");
    for t in v["topics"].as_array_mut().unwrap() {
        for p in t["partitions"].as_array_mut().unwrap() {
            for s in p["segments"].as_array_mut().unwrap() {
                for k in [
                    "indexCrc32c",
                    "indexBytes",
                    "lastBatchOffset",
                    "lastBatchCrc32c",
                ] {
                    s[k] = Value::Null;
                }
            }
        }
    }
}

fn as_v1_index(v: &mut Value) {
    v["format"] = FORMAT_V1.into();
    v.as_object_mut().unwrap().remove("checksum");
    for k in ["firstOffset", "lastOffset", "storedBytes"] {
        v[k] = Value::Null;
    }
    for b in v["blocks"].as_array_mut().unwrap() {
        b["crc32c"] = Value::Null;
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().display().to_string()
}

type Downgrade = fn(&Path) -> String;

/// Each edits a copy of a v2 repository and returns the object the refusal must name.
const DOWNGRADES: &[(&str, Downgrade)] = &[
    ("manifest claims v1, checksum removed", |root| {
        let m = &files(root, "manifest.json")[0];
        let mut v = read(m);
        v["format"] = FORMAT_V1.into();
        v.as_object_mut().unwrap().remove("checksum");
        write(m, v, false);
        rel(root, m)
    }),
    (
        "manifest and its indexes as a v1 build writes them",
        |root| {
            let m = &files(root, "manifest.json")[0];
            let mut v = read(m);
            as_v1_manifest(&mut v);
            write(m, v, false);
            for i in files(root, ".idx.json") {
                let mut v = read(&i);
                as_v1_index(&mut v);
                write(&i, v, false);
            }
            rel(root, m)
        },
    ),
    ("the record deleted and the manifest claims v1", |root| {
        std::fs::remove_file(root.join("dg/repository.json")).unwrap();
        let m = &files(root, "manifest.json")[0];
        let mut v = read(m);
        v["format"] = FORMAT_V1.into();
        v.as_object_mut().unwrap().remove("checksum");
        write(m, v, false);
        rel(root, m)
    }),
    (
        "v2 manifest re-checksummed without a segment's index checksum, index v1",
        |root| {
            let m = &files(root, "manifest.json")[0];
            let mut v = read(m);
            let s = &mut v["topics"][0]["partitions"][0]["segments"][0];
            s["indexCrc32c"] = Value::Null;
            s["indexBytes"] = Value::Null;
            let seg = s["path"].as_str().unwrap().to_string();
            write(m, v, true);
            let idx = root.join(seg.replace(".seg", ".idx.json"));
            let mut v = read(&idx);
            as_v1_index(&mut v);
            write(&idx, v, false);
            seg
        },
    ),
];

/// Downgrades of a v2 repository are refused naming the object, before anything is written;
/// the untouched repository restores.
#[tokio::test(flavor = "multi_thread")]
async fn a_v2_repository_edited_to_claim_v1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    let topic = unique("dg");
    let produced = gen_load(&topic, 2, 1);
    let kb = backup_yaml(
        "dg",
        std::slice::from_ref(&topic),
        &fs_storage(&clean),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "dg").await;
    for (i, (case, edit)) in DOWNGRADES.iter().enumerate() {
        let root = dir.path().join(format!("case-{i}"));
        copy_tree(&clean, &root);
        let object = edit(&root);
        let target = format!("{topic}-c{i}");
        let kb = backup_yaml("dg", std::slice::from_ref(&topic), &fs_storage(&root), "");
        let kr = restore_yaml(
            "dgr",
            "dg",
            &format!("  topicMapping:\n    {topic}: {target}\n  createTopics: true\n"),
        );
        let e = match run_docs(dir.path(), &[&kb, &kr], "dgr").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{case}: restored"),
        };
        assert!(e.contains(&object), "{case}: {object} in {e}");
        assert!(!topic_exists(&target).await, "{case}: nothing written");
    }
    let target = format!("{topic}-ok");
    let kr = restore_yaml(
        "dgr",
        "dg",
        &format!("  topicMapping:\n    {topic}: {target}\n  createTopics: true\n"),
    );
    assert_eq!(
        restore(dir.path(), &[&kb, &kr], "dgr").await.records,
        produced
    );
}

/// A repository as a v1 build wrote it is read; the first v2 run records its v1 run as legacy
/// and its manifest, which carries the v1 segment entries, restores too.
#[tokio::test(flavor = "multi_thread")]
async fn a_genuine_v1_repository_is_still_read_and_recorded_as_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let topic = unique("lg");
    let produced = gen_load(&topic, 2, 1);
    let kb = backup_yaml(
        "lg",
        std::slice::from_ref(&topic),
        &fs_storage(&root),
        "  stopAtCurrentOffsets: true\n",
    );
    let first = backup(dir.path(), &[&kb], "lg").await;
    // what a v1 build leaves: no record, v1 documents without checksums or v2 fields
    let _ = std::fs::remove_file(root.join("lg/repository.json"));
    for m in files(&root, "manifest.json") {
        let mut v = read(&m);
        as_v1_manifest(&mut v);
        write(&m, v, false);
    }
    for i in files(&root, ".idx.json") {
        let mut v = read(&i);
        as_v1_index(&mut v);
        write(&i, v, false);
    }
    let restore_into = |name: &str, target: &str, run: Option<&str>| {
        let id = run
            .map(|r| format!("    backupId: \"{r}\"\n"))
            .unwrap_or_default();
        restore_yaml(
            name,
            "lg",
            &format!("  topicMapping:\n    {topic}: {target}\n  createTopics: true\n"),
        )
        .replace("    name: lg\n", &format!("    name: lg\n{id}"))
    };
    let kr = restore_into("lgr1", &format!("{topic}-v1"), None);
    assert_eq!(
        restore(dir.path(), &[&kb, &kr], "lgr1").await.records,
        produced
    );
    // a v2 run continues it: the record names the v1 run as the last legacy one
    let second = backup(dir.path(), &[&kb], "lg").await;
    let op = StorageTarget::Fs {
        root: root.display().to_string(),
    }
    .operator()
    .unwrap();
    let rec = load_record(&op, "lg")
        .await
        .unwrap()
        .expect("record created");
    assert_eq!(
        rec.legacy_runs_up_to.as_deref(),
        Some(first.run_id.as_str())
    );
    assert_eq!(rec.owner.to_string(), "default/lg");
    assert!(second.run_id > first.run_id);
    let kr = restore_into("lgr2", &format!("{topic}-v2"), Some(&second.run_id));
    assert_eq!(
        restore(dir.path(), &[&kb, &kr], "lgr2").await.records,
        produced
    );
}

/// An offset snapshot (they came with v2: no v1 build wrote one) edited to claim v1 with its
/// checksum removed is refused by the rollback, naming the file; the group is not moved.
#[tokio::test(flavor = "multi_thread")]
async fn an_offset_snapshot_edited_to_claim_v1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("snapv1");
    gen_load(&topic, 1, 1);
    let group = unique("g");
    group_commit(&group, &topic, 10);
    let e = env();
    let snaps = dir.path().join("snapshots");
    let run = |docs: &[&str]| {
        let f = write_docs(dir.path(), docs);
        cli(&[
            "run",
            "--no-progress",
            "--snapshot-dir",
            snaps.to_str().unwrap(),
            "-f",
            f.to_str().unwrap(),
        ])
    };
    let reset = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetReset\nmetadata:\n  name: rs\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  consumerGroups: [\"{group}\"]\n  topics: [\"{topic}\"]\n  resetStrategy: to-latest\n",
        e.bootstrap
    );
    let (ok, out, err) = run(&[&reset]);
    assert!(ok, "reset: {out}{err}");
    let snap = std::fs::read_dir(&snaps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("rs-"))
        .expect("the reset's snapshot");
    let mut v = read(&snap);
    assert_eq!(v["format"], FORMAT);
    v["format"] = FORMAT_V1.into();
    v.as_object_mut().unwrap().remove("checksum");
    write(&snap, v, false);
    let rb = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetRollback\nmetadata:\n  name: rb\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  snapshotRef:\n    offsetResetRef: rs\n",
        e.bootstrap
    );
    let (ok, out, err) = run(&[&rb]);
    let name = snap.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!ok, "the rollback used a snapshot claiming v1: {out}");
    assert!(
        err.contains(&name) && err.contains("claims format"),
        "{name} in {out}{err}"
    );
    // the group stays where the reset put it (not rolled back to offset 10)
    let after = group_commit_probe(&group, &topic);
    assert!(after.values().all(|o| *o > 10), "{after:?}");
}

/// The committed offsets of `group` on `topic` (confluent-kafka).
fn group_commit_probe(group: &str, topic: &str) -> std::collections::BTreeMap<i32, i64> {
    let e = env();
    let (ok, out, err) = py(&[
        "group-committed",
        "--bootstrap",
        &e.bootstrap,
        "--group",
        group,
        "--topics",
        topic,
    ]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v[topic]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
        .collect()
}
