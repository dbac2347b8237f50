//! Consumer groups follow a restore (docs/offsets.md). Real librdkafka group members (PyPI
//! confluent-kafka through testenv/kbo_data.py) commit on the source; the backup snapshots
//! the groups; the restore translates and commits them on the target; the same group, started
//! on the target, must be given as its first record on every partition exactly the first
//! restored record at or after its committed position (no gap, no duplicate), computed from a
//! read_committed dump of the source.
use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

/// `group-next`: (topic -> partition -> first record's (offset, key) or None, topic ->
/// partition -> (committed offset, metadata)).
#[allow(clippy::type_complexity)]
fn group_next(
    group: &str,
    topics: &[&str],
) -> (
    BTreeMap<String, BTreeMap<i32, Option<(i64, Option<String>)>>>,
    BTreeMap<String, BTreeMap<i32, (i64, Option<String>)>>,
) {
    let e = env();
    let t = topics.join(",");
    let (ok, out, err) = py(&[
        "group-next",
        "--bootstrap",
        &e.bootstrap,
        "--group",
        group,
        "--topics",
        &t,
    ]);
    assert!(ok, "group-next: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mut first = BTreeMap::new();
    for (t, parts) in v["first"].as_object().unwrap() {
        let mut m = BTreeMap::new();
        for (p, r) in parts.as_object().unwrap() {
            m.insert(
                p.parse().unwrap(),
                (!r.is_null()).then(|| {
                    (
                        r["offset"].as_i64().unwrap(),
                        r["key"].as_str().map(str::to_string),
                    )
                }),
            );
        }
        first.insert(t.clone(), m);
    }
    let mut committed = BTreeMap::new();
    for (t, parts) in v["committed"].as_object().unwrap() {
        let mut m = BTreeMap::new();
        for (p, r) in parts.as_object().unwrap() {
            m.insert(
                p.parse().unwrap(),
                (r[0].as_i64().unwrap(), r[1].as_str().map(str::to_string)),
            );
        }
        committed.insert(t.clone(), m);
    }
    (first, committed)
}

/// The source's records (read_committed) as partition -> [(offset, timestamp, key)].
fn source_records(topic: &str) -> BTreeMap<i32, Vec<(i64, i64, Option<String>)>> {
    let e = env();
    let (ok, out, err) = py(&["dump", "--bootstrap", &e.bootstrap, "--topics", topic]);
    assert!(ok, "dump: {err}");
    let mut m: BTreeMap<i32, Vec<_>> = BTreeMap::new();
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        m.entry(v["partition"].as_i64().unwrap() as i32)
            .or_default()
            .push((
                v["offset"].as_i64().unwrap(),
                v["timestamp"].as_i64().unwrap(),
                v["key"].as_str().map(str::to_string),
            ));
    }
    m
}

/// The key of the first record at or after `from` whose timestamp is in `window` and whose
/// offset is in `offsets` (start inclusive, end exclusive) (None: the group is caught up
/// there).
fn expected_first(
    recs: &[(i64, i64, Option<String>)],
    from: i64,
    window: (i64, i64),
    offsets: (i64, i64),
) -> Option<Option<String>> {
    recs.iter()
        .find(|(o, ts, _)| {
            *o >= from && *ts >= window.0 && *ts <= window.1 && *o >= offsets.0 && *o < offsets.1
        })
        .map(|(_, _, k)| k.clone())
}

/// Backs up `topic` with its group snapshot, restores it to `<topic>-r` with `extra` (and
/// `autoConsumerGroups`), and checks the group's first record on every target partition.
/// What the restore does to the records: the PITR window (inclusive, ms) and the
/// `partitionMapping` (source -> target partition; unlisted map to themselves).
struct Expect<'a> {
    window: (i64, i64),
    pmap: &'a BTreeMap<i32, i32>,
    /// `pitr.startOffsets`/`endOffsets` per source partition (unlisted: unbounded).
    offsets: BTreeMap<i32, (i64, i64)>,
}

async fn restore_and_check_group(
    dir: &Path,
    name: &str,
    topic: &str,
    group: &str,
    committed: &BTreeMap<i32, i64>,
    extra: &str,
    expect: Expect<'_>,
) {
    let Expect {
        window,
        pmap,
        offsets,
    } = expect;
    let kb = backup_yaml(
        name,
        &[topic.to_string()],
        &fs_storage(dir),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    let m = backup(dir, &[&kb], name).await;
    let snap = m
        .consumer_groups
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} is in the backup's group snapshot"));
    assert_eq!(snap.offsets.len(), committed.len(), "{snap:?}");
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        &format!("{name}-r"),
        name,
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  autoConsumerGroups: true\n{extra}"
        ),
    );
    let f = write_docs(dir, &[&kb, &kr]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "restore with autoConsumerGroups failed: {out}{err}");
    assert!(
        out.contains(group) && out.contains("Committed"),
        "the group is reported committed: {out}"
    );
    assert!(out.contains("offset snapshot before the commits"), "{out}");
    let src = source_records(topic);
    let (first, committed_now) = group_next(group, &[&target]);
    for (p, o) in committed {
        let tp = pmap.get(p).copied().unwrap_or(*p);
        let range = offsets.get(p).copied().unwrap_or((i64::MIN, i64::MAX));
        let want = expected_first(&src[p], *o, window, range);
        let got = first[&target][&tp].clone();
        assert_eq!(
            got.as_ref().map(|g| g.1.clone()),
            want,
            "{group} on {target}/{tp} (source {topic}/{p} committed {o}): first record {got:?}"
        );
        let meta = &committed_now[&target][&tp].1;
        assert_eq!(
            meta.as_deref(),
            Some(format!("meta-{group}-{p}").as_str()),
            "commit metadata kept"
        );
    }
}

/// The plain case and `partitionMapping`: a group that read 100 records of each partition
/// resumes on the renamed, remapped target at the 101st.
#[tokio::test(flavor = "multi_thread")]
async fn a_restored_group_resumes_at_its_next_unread_record() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("cgp");
    gen_load(&topic, 3, 1);
    let group = unique("g");
    let committed = group_commit(&group, &topic, 100);
    assert_eq!(committed.len(), 3);
    let pmap = BTreeMap::from([(0, 2), (1, 0), (2, 1)]);
    restore_and_check_group(
        dir.path(),
        "cgp",
        &topic,
        &group,
        &committed,
        "  partitionMapping:\n    \"0\": 2\n    \"1\": 0\n    \"2\": 1\n",
        Expect {
            window: (i64::MIN, i64::MAX),
            pmap: &pmap,
            offsets: BTreeMap::new(),
        },
    )
    .await;
}

/// A PITR window that starts after some groups' positions, on the sample's plain topic
/// (controlled timestamps), and the transactional topic with aborted records: the group goes
/// to the first restored record at or after its position.
#[tokio::test(flavor = "multi_thread")]
async fn groups_follow_a_pitr_window_and_aborted_transactions() {
    let prefix = unique("cgs");
    let s = produce_sample(&prefix, 40);
    let base = s["timestamp_scheme"]["new_base_ms"].as_i64().unwrap();
    let step = s["timestamp_scheme"]["step_ms"].as_i64().unwrap();
    for (suffix, extra, window) in [
        (
            "plain",
            format!("  pitr:\n    startTimestamp: {}\n", base + 20 * step),
            (base + 20 * step, i64::MAX),
        ),
        ("txn", String::new(), (i64::MIN, i64::MAX)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let topic = format!("{prefix}{suffix}");
        let group = unique("g");
        let committed = group_commit(&group, &topic, 5);
        assert!(!committed.is_empty(), "{topic}: the group committed");
        restore_and_check_group(
            dir.path(),
            &format!("cgs{suffix}"),
            &topic,
            &group,
            &committed,
            &extra,
            Expect {
                window,
                pmap: &BTreeMap::new(),
                offsets: BTreeMap::new(),
            },
        )
        .await;
    }
}

/// Offset bounds move groups by the same rule as a time window (docs/offsets.md): a position
/// inside the restored range goes to its record's target offset, one before it to the first
/// restored record, one at or after the end to the end of what was restored (caught up).
#[tokio::test(flavor = "multi_thread")]
async fn groups_follow_offset_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("cgo");
    gen_load(&topic, 3, 1);
    let group = unique("g");
    let committed = group_commit(&group, &topic, 100);
    assert_eq!(
        committed.values().copied().collect::<Vec<_>>(),
        vec![100; 3]
    );
    // p0: 100 inside 50..150; p1: 100 before 200..; p2: 100 at or after ..60; the group's
    // position on the source is the 100th record
    let offsets = BTreeMap::from([(0, (50, 150)), (1, (200, i64::MAX)), (2, (i64::MIN, 60))]);
    let pitr = "  pitr:\n    startOffsets:\n      - {topic: TOPIC, partition: 0, offset: 50}\n      - {topic: TOPIC, partition: 1, offset: 200}\n    endOffsets:\n      - {topic: TOPIC, partition: 0, offset: 150}\n      - {topic: TOPIC, partition: 2, offset: 60}\n"
        .replace("TOPIC", &topic);
    restore_and_check_group(
        dir.path(),
        "cgo",
        &topic,
        &group,
        &committed,
        &pitr,
        Expect {
            window: (i64::MIN, i64::MAX),
            pmap: &BTreeMap::new(),
            offsets,
        },
    )
    .await;
}

/// A group with a member still connected is refused with the member named, and the other
/// group is committed; the run fails with its category; once the member left, running the
/// same restore again carries over only the groups (the data is not restored twice).
#[tokio::test(flavor = "multi_thread")]
async fn a_group_with_a_live_member_is_refused_by_name_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("cgl");
    let produced = gen_load(&topic, 2, 1);
    let (quiet, busy) = (unique("gq"), unique("gb"));
    group_commit(&quiet, &topic, 10);
    group_commit(&busy, &topic, 20);
    let kb = backup_yaml(
        "cgl",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    backup(dir.path(), &[&kb], "cgl").await;
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "cgl-r",
        "cgl",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  autoConsumerGroups: true\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr]);
    // a member of `busy` stays connected during the restore
    #[allow(clippy::zombie_processes)] // waited for below
    let mut hold = group_hold(&busy, &topic, 6);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    // the member leaves the group cleanly (LeaveGroup) after its 6 s
    let _ = hold.wait();
    assert!(!ok, "a refused group fails the run: {out}");
    assert!(err.contains("error [failed]"), "{err}");
    assert!(
        err.contains(&busy) && err.contains("not carried over"),
        "the error names the group: {err}"
    );
    let busy_line = out
        .lines()
        .find(|l| l.starts_with(&busy))
        .unwrap_or_else(|| panic!("a row for {busy}: {out}"));
    assert!(busy_line.contains("Refused"), "{busy_line}");
    assert!(
        busy_line.contains(&format!("kbo-test-{busy}"))
            && busy_line.contains("stop these consumers"),
        "the refusal names the member's client id and the fix: {busy_line}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&quiet) && l.contains("Committed")),
        "the other group went on: {out}"
    );
    let (first, _) = group_next(&quiet, &[&target]);
    assert!(
        first[&target]
            .values()
            .all(|r| r.as_ref().is_some_and(|r| r.0 == 10)),
        "{first:?}"
    );
    // the member is gone: the same restore carries over only the groups
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("the data was restored before"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&busy) && l.contains("Committed")),
        "{out}"
    );
    let (first, _) = group_next(&busy, &[&target]);
    assert!(
        first[&target]
            .values()
            .all(|r| r.as_ref().is_some_and(|r| r.0 == 20)),
        "{first:?}"
    );
    assert_same(
        std::slice::from_ref(&topic),
        std::slice::from_ref(&target),
        &[],
    );
    let _ = produced;
}
