//! Recoverability (issue 20, item 1) against the real peers: the window of a backup's
//! complete runs, its edges reachable by a PITR restore, and a restore whose window falls
//! entirely outside it refused while planning, naming the field, with nothing written.
use kafka_backup_operator::plan::{recoverability, rfc3339};

use super::support::*;

async fn topic_names(prefix: &str) -> Vec<String> {
    let meta = client().await.refresh_metadata().await.unwrap();
    let mut names: Vec<String> = meta
        .topics
        .keys()
        .filter(|t| t.starts_with(prefix))
        .cloned()
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pitr_window_outside_the_recoverability_window_is_refused_and_its_edges_restore() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let prefix = unique("recov");
    produce_sample(&format!("{prefix}-"), 20);
    let topic = format!("{prefix}-plain");
    let kb = backup_yaml(
        "recov",
        std::slice::from_ref(&topic),
        &fs_storage(&store),
        "",
    );
    let m = backup(dir.path(), &[&kb], "recov").await;

    // the window is the run's own record timestamps, as its manifest records them
    let w = recoverability(std::slice::from_ref(&m))
        .window
        .expect("the run holds records");
    let parts = m.topics.iter().flat_map(|t| &t.partitions);
    let lo = parts.clone().filter_map(|p| p.min_timestamp).min().unwrap();
    let hi = parts.filter_map(|p| p.max_timestamp).max().unwrap();
    assert_eq!((w.first_ms, w.last_ms), (lo, hi));
    let (first, last) = (rfc3339(w.first_ms), rfc3339(w.last_ms));

    // entirely before the window, entirely after it: refused by the plan, naming the field
    let before_store = tree(&store);
    let before_topics = topic_names(&prefix).await;
    let cases = [
        (
            format!("    endTime: \"{}\"\n", rfc3339(w.first_ms - 1_000)),
            "spec.pitr.endTime",
            "before the first recoverability point",
            "set pitr.endTime at or after",
        ),
        (
            format!("    startTime: \"{}\"\n", rfc3339(w.last_ms + 1)),
            "spec.pitr.startTime",
            "after the last recoverability point",
            "set pitr.startTime at or before",
        ),
    ];
    for (pitr, field, why, fix) in cases {
        let kr = restore_yaml(
            "recov-out",
            "recov",
            &format!(
                "  createTopics: true\n  topicMapping:\n    {topic}: {topic}-never\n  pitr:\n{pitr}"
            ),
        );
        let f = write_docs(dir.path(), &[&kb, &kr]);
        let (ok, out, err) = cli(&[
            "run",
            "--no-progress",
            "-f",
            f.to_str().unwrap(),
            "--name",
            "recov-out",
        ]);
        assert!(!ok, "{field}: must be refused\n{out}");
        for needle in [field, why, &first, &last, fix, "allowEmpty"] {
            assert!(
                err.to_lowercase().contains(&needle.to_lowercase()),
                "{field}: the error should say {needle:?}: {err}"
            );
        }
        assert_eq!(tree(&store), before_store, "{field}: storage untouched");
        assert_eq!(
            topic_names(&prefix).await,
            before_topics,
            "{field}: no topic created"
        );
    }

    // the edges themselves are reachable: a window ending at the first point, and one
    // starting at the last point, each restore at least one record
    for (name, pitr) in [
        ("recov-first", format!("    endTime: \"{first}\"\n")),
        ("recov-last", format!("    startTime: \"{last}\"\n")),
    ] {
        let kr = restore_yaml(
            name,
            "recov",
            &format!(
                "  createTopics: true\n  topicMapping:\n    {topic}: {topic}-{name}\n  pitr:\n{pitr}"
            ),
        );
        let out = restore(dir.path(), &[&kb, &kr], name).await;
        assert!(out.records >= 1, "{name}: restored {} records", out.records);
    }
}
