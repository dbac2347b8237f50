//! PITR by offset (issue 20, item 2) against the real peers: a backup in S3 restored with
//! `pitr.startOffsets`/`endOffsets` (start inclusive, end exclusive, SOURCE topic names), one
//! partition bounded and the others not, inside batches (plain, zstd-compressed and
//! transactional ones), alone and together with a time window; confluent-kafka checks that
//! exactly the records with offsets in range (and timestamps in the window) are restored,
//! with key, value, headers and timestamp intact. A range outside what the run holds is
//! refused while planning, with the held range.
use kafka_backup_operator::format::manifest::RunManifest;

use super::support::*;

/// One partition's bounds: (source topic, partition, start, end); None: no bound.
type Bound<'a> = (&'a str, i32, Option<i64>, Option<i64>);

/// What run `m` covers of `topic`/`partition`: `coveredFrom..cut`.
fn held(m: &RunManifest, topic: &str, partition: i32) -> (i64, i64) {
    let p = m
        .topics
        .iter()
        .find(|t| t.name == topic)
        .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
        .unwrap_or_else(|| panic!("{topic}/{partition} is in the run"));
    (p.covered_from, p.cut)
}

/// `pitr` lines: `startOffsets`/`endOffsets` from (topic, partition, start, end) entries
/// (None: no bound), then `more` (e.g. time bounds, 4-space indented).
fn pitr(bounds: &[Bound], more: &str) -> String {
    let list = |name: &str, pick: &dyn Fn(&Bound) -> Option<i64>| {
        let items: Vec<String> = bounds
            .iter()
            .filter_map(|b| {
                pick(b).map(|o| {
                    format!(
                        "      - {{topic: {}, partition: {}, offset: {o}}}\n",
                        b.0, b.1
                    )
                })
            })
            .collect();
        if items.is_empty() {
            String::new()
        } else {
            format!("    {name}:\n{}", items.concat())
        }
    };
    format!(
        "  pitr:\n{}{}{more}",
        list("startOffsets", &|b| b.2),
        list("endOffsets", &|b| b.3)
    )
}

/// The `--offset-bounds` argument of `kbo_data.py compare` for the same entries.
fn compare_bounds(bounds: &[Bound]) -> String {
    let o = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    bounds
        .iter()
        .map(|(t, p, s, e)| format!("{t}:{p}:{}:{}", o(*s), o(*e)))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_bounds_restore_exactly_the_records_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("pitro");
    let s = produce_sample(&format!("{prefix}-"), 90);
    let base = s["timestamp_scheme"]["new_base_ms"].as_i64().unwrap();
    let step = s["timestamp_scheme"]["step_ms"].as_i64().unwrap();
    let (plain, zstd, txn) = (
        format!("{prefix}-plain"),
        format!("{prefix}-zstd"),
        format!("{prefix}-txn"),
    );
    let topics = vec![plain.clone(), zstd.clone(), txn.clone()];
    let secret = s3_secret("s3-creds", false);
    let kb = backup_yaml(
        "pitro",
        &topics,
        &s3_storage(&prefix, "s3-creds"),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb, &secret], "pitro").await;

    // offset bounds alone: plain/1 (one batch of 10 records with headers) cut inside the
    // batch on both sides; zstd/0 a start only, zstd/1 an end only (inside compressed
    // batches); txn/0 both, over committed and aborted transactions; every other partition
    // whole
    let (z0, z1, t0) = (held(&m, &zstd, 0), held(&m, &zstd, 1), held(&m, &txn, 0));
    assert!(held(&m, &plain, 1).1 >= 9, "{:?}", held(&m, &plain, 1));
    let bounds = [
        (plain.as_str(), 1, Some(2), Some(7)),
        (zstd.as_str(), 0, Some(z0.0 + (z0.1 - z0.0) / 3), None),
        (zstd.as_str(), 1, None, Some(z1.0 + (z1.1 - z1.0) / 2)),
        (
            txn.as_str(),
            0,
            Some(t0.0 + (t0.1 - t0.0) / 4),
            Some(t0.0 + (t0.1 - t0.0) * 3 / 4),
        ),
    ];
    let kr = restore_yaml(
        "pitro-1",
        "pitro",
        &format!(
            "  createTopics: true\n{}{}",
            mapping(&topics, "-o1"),
            pitr(&bounds, "")
        ),
    );
    // `plan -f` shows the bounds and the steps' cut ranges
    let f = write_docs(dir.path(), &[&kb, &secret, &kr]);
    let (ok, out, err) = cli(&["plan", "-f", f.to_str().unwrap(), "--name", "pitro-1"]);
    assert!(ok, "plan: {out}{err}");
    for needle in [
        "PITR offsets (source topic/partition, start inclusive .. end exclusive)".to_string(),
        format!("{plain}/1 [2..7)"),
        format!("restore {plain}/1 offsets 2..7 "),
        format!("{zstd}/1 [..{})", z1.0 + (z1.1 - z1.0) / 2),
    ] {
        assert!(out.contains(&needle), "plan shows {needle:?}:\n{out}");
    }
    let o = restore(dir.path(), &[&kb, &secret, &kr], "pitro-1").await;
    assert!(o.records > 0);
    let report = assert_same(
        &topics,
        &suffixed(&topics, "-o1"),
        &["--offset-bounds", &compare_bounds(&bounds)],
    );
    assert!(report.contains("all topics match"), "{report}");
    eprintln!("{report}");

    // with a time window too: a record is restored only if every bound holds
    let (from, to) = (base + 10 * step, base + 60 * step);
    let z2 = held(&m, &zstd, 2);
    let bounds = [
        (zstd.as_str(), 0, Some(z0.0 + (z0.1 - z0.0) / 4), None),
        (zstd.as_str(), 2, None, Some(z2.0 + (z2.1 - z2.0) / 2)),
    ];
    let kr = restore_yaml(
        "pitro-2",
        "pitro",
        &format!(
            "  createTopics: true\n  topics: [\"{zstd}\"]\n  topicMapping:\n    {zstd}: {zstd}-o2\n{}",
            pitr(
                &bounds,
                &format!("    startTimestamp: {from}\n    endTimestamp: {to}\n")
            )
        ),
    );
    let o = restore(dir.path(), &[&kb, &secret, &kr], "pitro-2").await;
    assert!(o.records > 0);
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let report = assert_same(
        std::slice::from_ref(&zstd),
        &[format!("{zstd}-o2")],
        &[
            "--offset-bounds",
            &compare_bounds(&bounds),
            "--pitr-start",
            &from_s,
            "--pitr-end",
            &to_s,
        ],
    );
    eprintln!("{report}");
    // the check itself tells the ranges apart: the same target against the window alone
    assert_differs(
        std::slice::from_ref(&zstd),
        &[format!("{zstd}-o2")],
        &["--pitr-start", &from_s, "--pitr-end", &to_s],
    );

    // a range entirely after what the run holds: refused while planning, nothing written
    let kr = restore_yaml(
        "pitro-3",
        "pitro",
        &format!(
            "  createTopics: true\n  topicMapping:\n    {zstd}: {zstd}-never\n{}",
            pitr(&[(zstd.as_str(), 0, Some(z0.1), None)], "")
        ),
    );
    let f = write_docs(dir.path(), &[&kb, &secret, &kr]);
    let (ok, out, err) = cli(&[
        "run",
        "--no-progress",
        "-f",
        f.to_str().unwrap(),
        "--name",
        "pitro-3",
    ]);
    assert!(!ok, "must be refused: {out}");
    let held_text = format!("offsets {}..{} (end exclusive)", z0.0, z0.1);
    for needle in ["spec.pitr.startOffsets[0]", &held_text, "allowEmpty"] {
        assert!(err.contains(needle), "the error says {needle:?}: {err}");
    }
    let meta = client().await.refresh_metadata().await.unwrap();
    assert!(!meta.topics.contains_key(&format!("{zstd}-never")));
}
