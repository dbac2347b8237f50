//! `repartitioning` (docs/offsets.md, "Repartitioned topics") against the testenv broker:
//! every keyed record lands on the partition librdkafka's `murmur2_random` partitioner picks
//! for the same key and partition count (a client that is not ours decides), keyless records
//! go round robin, every record survives with its timestamp, key, value and headers, order is
//! kept per source partition, and a consumer group started on the target (a real librdkafka
//! member) is given, first on every target partition, the earliest record it had not read: no
//! record skipped, the duplicates counted as the restore reported them.
use std::collections::BTreeMap;

use crate::support::*;

/// One record of a `dump`: (partition, offset, timestamp, key, value, headers), key and value
/// base64.
type Rec = (i32, i64, i64, Option<String>, Option<String>, String);
/// What must survive: (timestamp, key, value, headers).
type Fidelity = (i64, Option<String>, Option<String>, String);

fn dump(topic: &str) -> Vec<Rec> {
    let e = env();
    let (ok, out, err) = py(&["dump", "--bootstrap", &e.bootstrap, "--topics", topic]);
    assert!(ok, "dump {topic}: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["partition"].as_i64().unwrap() as i32,
                v["offset"].as_i64().unwrap(),
                v["timestamp"].as_i64().unwrap(),
                v["key"].as_str().map(str::to_string),
                v["value"].as_str().map(str::to_string),
                v["headers"].to_string(),
            )
        })
        .collect()
}

/// The partition librdkafka's murmur2 partitioner picks for each key of `topic` among `n`.
fn librdkafka_partitions(topic: &str, n: i32) -> BTreeMap<String, i32> {
    let e = env();
    let scratch = unique("m2");
    let (ok, out, err) = py(&[
        "murmur2-partitions",
        "--bootstrap",
        &e.bootstrap,
        "--keys-from",
        topic,
        "--scratch",
        &scratch,
        "--partitions",
        &n.to_string(),
    ]);
    assert!(ok, "murmur2-partitions: {out}{err}");
    serde_json::from_str(out.trim()).unwrap()
}

/// The source and target dumps agree record for record (timestamp, key, value, headers, as a
/// multiset), keyed records sit where librdkafka puts them, keyless ones go round robin in
/// restore order (source partitions in order), and each target partition holds the records of
/// source partition 0, then 1, ..., each in source order. Returns, per target partition, the
/// source (partition, offset) of its records in target offset order.
fn check_placement(
    src: &[Rec],
    dst: &[Rec],
    n: i32,
    topic: &str,
) -> BTreeMap<i32, Vec<(i32, i64)>> {
    assert_eq!(src.len(), dst.len(), "every record restored once");
    let fid = |r: &Rec| (r.2, r.3.clone(), r.4.clone(), r.5.clone());
    let mut a: Vec<_> = src.iter().map(fid).collect();
    let mut b: Vec<_> = dst.iter().map(fid).collect();
    a.sort();
    b.sort();
    assert!(a == b, "timestamps, keys, values and headers survive");
    let rd = librdkafka_partitions(topic, n);
    let mut sorted: Vec<&Rec> = src.iter().collect();
    sorted.sort_by_key(|r| (r.0, r.1));
    // where each source record must go: murmur2 for keys, round robin for the others
    let mut rr = 0i32;
    let mut want: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
    let mut by_fid: BTreeMap<Fidelity, Vec<(i32, i64)>> = BTreeMap::new();
    for r in &sorted {
        let t = match &r.3 {
            Some(k) => rd[k],
            None => {
                rr += 1;
                (rr - 1) % n
            }
        };
        want.entry(t).or_default().push((r.0, r.1));
        by_fid.entry(fid(r)).or_default().push((r.0, r.1));
    }
    let mut got: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
    let mut dsorted: Vec<&Rec> = dst.iter().collect();
    dsorted.sort_by_key(|r| (r.0, r.1));
    for r in dsorted {
        // identical records (same timestamp, key, value and headers) are interchangeable
        let v = by_fid.get_mut(&fid(r)).unwrap();
        let w = &want[&r.0];
        let i = v.iter().position(|s| w.contains(s)).unwrap_or_else(|| {
            panic!(
                "target {}/{} is on a partition librdkafka would not pick: {r:?}",
                r.0, r.1
            )
        });
        got.entry(r.0).or_default().push(v.remove(i));
    }
    assert_eq!(
        got, want,
        "each target partition holds its records in restore order"
    );
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_land_where_murmur2_puts_them_and_a_group_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("rp");
    gen_load(&topic, 3, 1);
    let group = unique("g");
    let committed = group_commit(&group, &topic, 150);
    assert_eq!(committed.len(), 3, "{committed:?}");
    let kb = backup_yaml(
        "rp",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    backup(dir.path(), &[&kb], "rp").await;
    let target = format!("{topic}-r");
    let n = 5;
    let kr = restore_yaml(
        "rp-r",
        "rp",
        &format!(
            "  createTopics: true\n  produceBatchSize: 37\n  topicMapping:\n    {topic}: {target}\n  autoConsumerGroups: true\n  repartitioning:\n    {target}:\n      strategy: murmur2\n      targetPartitions: {n}\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "repartitioned restore failed: {out}{err}");
    let src = dump(&topic);
    let dst = dump(&target);
    let placed = check_placement(&src, &dst, n, &topic);
    assert_eq!(
        placed.len(),
        n as usize,
        "every target partition got records"
    );
    // The group's first record on each target partition: the earliest it had not read.
    let (first, _) = group_next_keys(&group, &target);
    let mut dup = 0u64;
    for t in 0..n {
        let recs = &placed[&t];
        let unread = recs.iter().position(|(s, o)| *o >= committed[s]);
        let want = unread.map(|i| {
            let (s, o) = recs[i];
            src.iter().find(|r| r.0 == s && r.1 == o).unwrap().3.clone()
        });
        assert_eq!(
            first.get(&t).cloned().flatten(),
            want,
            "{group} on {target}/{t}: the first record is the earliest unread one"
        );
        if let Some(i) = unread {
            dup += recs[i..].iter().filter(|(s, o)| *o < committed[s]).count() as u64;
        }
    }
    assert!(
        dup > 0,
        "three source partitions mixed: some records are read twice"
    );
    assert!(
        out.contains(&format!("{dup} record(s) will be read again")),
        "the restore reports exactly {dup} duplicates: {out}"
    );
    // Nothing past the group's position was skipped: every unread source record is at or
    // after the group's start on its target partition (checked above by construction: the
    // start is the earliest unread record).
}

/// The sample's plain topic: keyless records and tombstones go round robin, keys by murmur2,
/// headers and timestamps kept; `automatic` sends everything round robin.
#[tokio::test(flavor = "multi_thread")]
async fn keyless_records_go_round_robin_and_automatic_spreads_all() {
    let prefix = unique("rps");
    produce_sample(&prefix, 60);
    let topic = format!("{prefix}plain");
    let dir = tempfile::tempdir().unwrap();
    let kb = backup_yaml(
        "rps",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "rps").await;
    let src = dump(&topic);
    assert!(
        src.iter().any(|r| r.3.is_none()),
        "the sample has keyless records"
    );
    let murmur = format!("{topic}-m");
    let kr = restore_yaml(
        "rps-m",
        "rps",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {murmur}\n  repartitioning:\n    {murmur}:\n      targetPartitions: 4\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    check_placement(&src, &dump(&murmur), 4, &topic);
    // automatic: every record round robin in restore order
    let auto = format!("{topic}-a");
    let kr = restore_yaml(
        "rps-a",
        "rps",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {topic}: {auto}\n  repartitioning:\n    {auto}:\n      strategy: automatic\n      targetPartitions: 2\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let dst = dump(&auto);
    let mut sorted: Vec<&Rec> = src.iter().collect();
    sorted.sort_by_key(|r| (r.0, r.1));
    for t in 0..2 {
        let want: Vec<_> = sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as i32) % 2 == t)
            .map(|(_, r)| (r.2, r.3.clone(), r.4.clone(), r.5.clone()))
            .collect();
        let mut got: Vec<&Rec> = dst.iter().filter(|r| r.0 == t).collect();
        got.sort_by_key(|r| r.1);
        let got: Vec<_> = got
            .iter()
            .map(|r| (r.2, r.3.clone(), r.4.clone(), r.5.clone()))
            .collect();
        assert!(
            got == want,
            "automatic: partition {t} holds every second record in order"
        );
    }
    // a wrong partition count on an existing topic is refused by field, nothing written
    let kr = restore_yaml(
        "rps-x",
        "rps",
        &format!(
            "  topicMapping:\n    {topic}: {auto}\n  appendToExisting: true\n  repartitioning:\n    {auto}:\n      targetPartitions: 3\n"
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &kr]);
    let before = dump(&auto).len();
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "a partition-count mismatch must fail: {out}");
    assert!(
        err.contains(&format!("spec.repartitioning.{auto}.targetPartitions"))
            && err.contains("exists with 2 partitions"),
        "{err}"
    );
    assert_eq!(dump(&auto).len(), before, "nothing written");
}

/// kill -9 at random points of a repartitioned restore, each continued from the journal by
/// the next run; the last run drops the rate limit: every record once, each on its murmur2
/// partition, in restore order (routing and batching are deterministic).
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_repartitioned_restore_resumes_exactly() {
    let (seed, mut rng) = crate::faults::rng();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("rpk");
    gen_load(&topic, 3, 2);
    let kb = backup_yaml(
        "rpk",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  segmentMaxBytes: 1048576\n",
    );
    backup(dir.path(), &[&kb], "rpk").await;
    let target = format!("{topic}-r");
    let kr = |limit: &str| {
        restore_yaml(
            "rpk-r",
            "rpk",
            &format!(
                "  createTopics: true\n  produceBatchSize: 16\n  topicMapping:\n    {topic}: {target}\n  repartitioning:\n    {target}:\n      targetPartitions: 4\n{limit}"
            ),
        )
    };
    let f = write_docs(
        dir.path(),
        &[&kb, &kr("  rateLimiting:\n    bytesPerSec: 150000\n")],
    );
    let (kills, finished) = crate::faults::kill_loop(&f, 8, 900, &mut rng);
    let f = write_docs(dir.path(), &[&kb, &kr("")]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "the run after the kills failed: {out}{err}");
    assert!(err.contains("resumed=true"), "continued the journal: {err}");
    check_placement(&dump(&topic), &dump(&target), 4, &topic);
    println!(
        "campaign: kill9-repartition seed={seed} kills={kills} finished-before-kill={finished}"
    );
}

/// `group-next` on one topic: target partition -> the first record's key (None: caught up).
fn group_next_keys(group: &str, topic: &str) -> (BTreeMap<i32, Option<Option<String>>>, ()) {
    let e = env();
    let (ok, out, err) = py(&[
        "group-next",
        "--bootstrap",
        &e.bootstrap,
        "--group",
        group,
        "--topics",
        topic,
    ]);
    assert!(ok, "group-next: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mut m = BTreeMap::new();
    for (p, r) in v["first"][topic].as_object().unwrap() {
        m.insert(
            p.parse().unwrap(),
            (!r.is_null()).then(|| r["key"].as_str().map(str::to_string)),
        );
    }
    (m, ())
}
