//! KafkaOffsetReset and KafkaOffsetRollback from `run -f`, against real consumer groups
//! (librdkafka members commit; OffsetFetch through confluent-kafka reads back): every
//! strategy, a dry run that changes nothing, a reset then a rollback that puts the group back
//! exactly, and from-mapping through a restore's offset map.
use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

/// The group's committed offsets on `topic`, read by confluent-kafka.
fn committed(group: &str, topic: &str) -> BTreeMap<i32, i64> {
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
    assert!(ok, "group-committed: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v[topic]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn reset_doc(name: &str, group: &str, topic: &str, strategy: &str) -> String {
    let e = env();
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetReset\nmetadata:\n  name: {name}\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  consumerGroups: [\"{group}\"]\n  topics: [\"{topic}\"]\n{strategy}",
        e.bootstrap
    )
}

fn run_in(dir: &Path, docs: &[&str]) -> (bool, String, String) {
    let f = write_docs(dir, docs);
    let snaps = dir.join("snapshots");
    cli(&[
        "run",
        "--no-progress",
        "--snapshot-dir",
        snaps.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
    ])
}

/// Every strategy moves the group where it says, a dry run of each changes nothing, and a
/// rollback to the snapshot the first reset took puts every offset back exactly.
#[tokio::test(flavor = "multi_thread")]
async fn every_reset_strategy_then_a_rollback_to_the_first_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("kor");
    let produced = gen_load(&topic, 2, 1) as i64; // 512 records per partition
    let group = unique("g");
    let start = group_commit(&group, &topic, 100);
    assert_eq!(start, BTreeMap::from([(0, 100), (1, 100)]));
    let per = produced / 2;
    // (spec lines, expected offsets per partition)
    let cases: Vec<(&str, String, i64)> = vec![
        ("to-latest", "  resetStrategy: to-latest\n".into(), per),
        ("to-earliest", "  resetStrategy: to-earliest\n".into(), 0),
        (
            "to-offset",
            "  resetStrategy: to-offset\n  resetOffset: 300\n".into(),
            300,
        ),
        (
            "shift-by",
            "  resetStrategy: shift-by\n  shiftBy: -50\n".into(),
            250,
        ),
        (
            "to-offset-clamped",
            "  resetStrategy: to-offset\n  resetOffset: 999999\n".into(),
            per,
        ),
        (
            "to-timestamp-future",
            "  resetStrategy: to-timestamp\n  resetTimestamp: 4102444800000\n".into(),
            per,
        ),
        (
            "to-timestamp-past",
            "  resetStrategy: to-timestamp\n  resetTimestamp: 0\n".into(),
            0,
        ),
    ];
    let mut first_reset = None;
    for (i, (what, spec, want)) in cases.iter().enumerate() {
        let before = committed(&group, &topic);
        let dry = reset_doc(
            &format!("d{i}"),
            &group,
            &topic,
            &format!("{spec}  dryRun: true\n"),
        );
        let (ok, out, err) = run_in(dir.path(), &[&dry]);
        assert!(ok, "{what} dry run: {out}{err}");
        assert!(
            out.contains("dryRun: nothing was committed") && out.contains("DryRun"),
            "{out}"
        );
        assert_eq!(
            committed(&group, &topic),
            before,
            "{what}: a dry run commits nothing"
        );
        let name = format!("r{i}");
        let doc = reset_doc(&name, &group, &topic, spec);
        let (ok, out, err) = run_in(dir.path(), &[&doc]);
        assert!(ok, "{what}: {out}{err}");
        assert!(out.contains("Committed"), "{out}");
        assert_eq!(
            committed(&group, &topic),
            BTreeMap::from([(0, *want), (1, *want)]),
            "{what}: {out}"
        );
        if first_reset.is_none() {
            first_reset = Some(name);
        }
    }
    // back to where the group was before the first reset
    let e = env();
    let rb = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetRollback\nmetadata:\n  name: rb\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  snapshotRef:\n    offsetResetRef: {}\n  verifyAfterRollback: true\n",
        e.bootstrap,
        first_reset.unwrap()
    );
    let (ok, out, err) = run_in(dir.path(), &[&rb]);
    assert!(ok, "rollback: {out}{err}");
    assert!(
        out.contains("verification: 1 of 1 groups match the snapshot"),
        "{out}"
    );
    assert_eq!(committed(&group, &topic), start, "the rollback is exact");
    // the plugin agrees: the group against that snapshot is the same everywhere
    let snap = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("r0-"))
        .expect("the first reset's snapshot");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args([
            "offsets",
            "diff",
            &group,
            "--bootstrap-server",
            &e.bootstrap,
            "-o",
            "json",
            "--snapshot",
        ])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert!(rows.iter().all(|r| r["status"] == "same"), "{v}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args([
            "offsets",
            "show",
            &group,
            "--bootstrap-server",
            &e.bootstrap,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LAG") && text.contains(&topic) && text.contains("412"),
        "lag 512 - 100: {text}"
    );
}

/// A reset whose group has a live member is refused by name and commits nothing; a reset
/// naming a topic that does not exist fails before anything, naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn resets_refuse_live_groups_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("korl");
    gen_load(&topic, 1, 1);
    let group = unique("g");
    group_commit(&group, &topic, 10);
    #[allow(clippy::zombie_processes)] // waited for below
    let mut hold = group_hold(&group, &topic, 5);
    let doc = reset_doc("live", &group, &topic, "  resetStrategy: to-earliest\n");
    let (ok, out, err) = run_in(dir.path(), &[&doc]);
    let _ = hold.wait();
    assert!(!ok, "{out}");
    assert!(
        out.contains("Refused") && out.contains("stop these consumers"),
        "{out}"
    );
    assert!(
        err.contains("error [failed]") && err.contains(&group),
        "{err}"
    );
    assert_eq!(committed(&group, &topic), BTreeMap::from([(0, 10)]));
    let bad = reset_doc(
        "bad",
        &group,
        "no-such-topic-x",
        "  resetStrategy: to-earliest\n",
    );
    let (ok, _, err) = run_in(dir.path(), &[&bad]);
    assert!(!ok);
    assert!(
        err.contains("error [plan-refused]") && err.contains("spec.topics[0]"),
        "{err}"
    );
}

/// from-mapping through a completed restore (offsetMappingRef.restoreName): the backup's
/// group snapshot is translated through that restore's offset map and committed.
#[tokio::test(flavor = "multi_thread")]
async fn from_mapping_translates_the_backup_snapshot_through_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("korm");
    gen_load(&topic, 2, 1);
    let group = unique("g");
    group_commit(&group, &topic, 70);
    let kb = backup_yaml(
        "korm",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    backup(dir.path(), &[&kb], "korm").await;
    let target = format!("{topic}-r");
    // restored after a PITR-less, remapped restore: the group is not committed by it
    let kr = restore_yaml(
        "korm-r",
        "korm",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  partitionMapping:\n    \"0\": 1\n    \"1\": 0\n"
        ),
    );
    restore(dir.path(), &[&kb, &kr], "korm-r").await;
    assert!(committed(&group, &target).is_empty());
    let kor = reset_doc(
        "fm",
        &group,
        &target,
        "  resetStrategy: from-mapping\n  offsetMappingRef:\n    restoreName: korm-r\n",
    );
    let (ok, out, err) = run_in(dir.path(), &[&kb, &kr, &kor]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("source {topic}/0@70")), "{out}");
    assert_eq!(
        committed(&group, &target),
        BTreeMap::from([(0, 70), (1, 70)])
    );
}

/// Issue 15 class 9: a reset naming a group that does not exist (a mistyped name) fails
/// before committing anything, naming the field, the group and the fix; it used to be
/// `Skipped` with exit code 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_of_a_group_that_does_not_exist_fails_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("kort");
    gen_load(&topic, 1, 1);
    let group = unique("g");
    group_commit(&group, &topic, 10);
    let typo = format!("{group}-typo");
    let e = env();
    let doc = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetReset\nmetadata:\n  name: typo\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  consumerGroups: [\"{group}\", \"{typo}\"]\n  resetStrategy: to-earliest\n",
        e.bootstrap
    );
    let (ok, out, err) = run_in(dir.path(), &[&doc]);
    assert!(
        !ok,
        "a group that does not exist is not a success: {out}{err}"
    );
    assert!(
        err.contains("error [plan-refused]")
            && err.contains("spec.consumerGroups[1]")
            && err.contains(&format!("{typo:?}"))
            && err.contains("check the name")
            && err.contains("spec.topics"),
        "{err}"
    );
    assert_eq!(
        committed(&group, &topic),
        BTreeMap::from([(0, 10)]),
        "nothing committed for the real group either"
    );
    assert!(committed(&typo, &topic).is_empty());
}

/// Issue 15 class 9: a reset with `topics` gives the group offsets on a topic it had none on;
/// the rollback to the snapshot that reset took puts back the whole state: the snapshot's
/// offsets, and the added partitions' commits deleted (OffsetDelete). confluent-kafka's
/// committed() reads both topics back. It used to leave the added partitions at their reset
/// offsets while the verification said every group matched.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_deletes_the_commits_a_reset_added() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (unique("kora"), unique("korb"));
    gen_load(&a, 2, 1);
    gen_load(&b, 1, 1);
    let group = unique("g");
    let start = group_commit(&group, &a, 10);
    assert_eq!(start, BTreeMap::from([(0, 10), (1, 10)]));
    assert!(committed(&group, &b).is_empty());
    let e = env();
    let reset = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetReset\nmetadata:\n  name: add\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  consumerGroups: [\"{group}\"]\n  topics: [\"{a}\", \"{b}\"]\n  resetStrategy: to-offset\n  resetOffset: 300\n",
        e.bootstrap
    );
    let (ok, out, err) = run_in(dir.path(), &[&reset]);
    assert!(ok, "{out}{err}");
    assert_eq!(committed(&group, &a), BTreeMap::from([(0, 300), (1, 300)]));
    assert_eq!(committed(&group, &b), BTreeMap::from([(0, 300)]), "added");
    let rb = |name: &str, dry: bool| {
        format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaOffsetRollback\nmetadata:\n  name: {name}\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  snapshotRef:\n    offsetResetRef: add\n  verifyAfterRollback: true\n  dryRun: {dry}\n",
            e.bootstrap
        )
    };
    // a dry run names the deletion and changes nothing
    let (ok, out, err) = run_in(dir.path(), &[&rb("rbd", true)]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("would delete") && out.contains(&format!("{b}/0 (at 300)")),
        "{out}"
    );
    assert_eq!(committed(&group, &b), BTreeMap::from([(0, 300)]));
    let (ok, out, err) = run_in(dir.path(), &[&rb("rb", false)]);
    assert!(ok, "rollback: {out}{err}");
    assert!(
        out.contains("verification: 1 of 1 groups match the snapshot"),
        "{out}"
    );
    assert_eq!(committed(&group, &a), start, "the snapshot's offsets");
    assert!(
        committed(&group, &b).is_empty(),
        "the partition the reset added has no commit any more: {:?}\n{out}",
        committed(&group, &b)
    );
}
