//! Error paths users can hit: each error names the field and the fix, and nothing is written
//! to Kafka or storage.
use crate::support::*;

/// Topic names with `prefix` (other tests create topics in parallel).
async fn topic_names(prefix: &str) -> Vec<String> {
    let meta = client().await.refresh_metadata().await.unwrap();
    meta.topics
        .keys()
        .filter(|t| t.starts_with(prefix))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_s3_secret_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("bad-s3");
    produce_sample(&format!("{prefix}-"), 20);
    let kb = backup_yaml(
        "bads3",
        &[format!("{prefix}-plain")],
        &s3_storage(&prefix, "wrong"),
        "",
    );
    let err = match run_docs(dir.path(), &[&kb, &s3_secret("wrong", true)], "bads3").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a wrong secret key must fail"),
    };
    assert!(err.contains("credentialsSecret"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_broker_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let kb = backup_yaml("nobroker", &["x".into()], &fs_storage(&store), "")
        .replace(&env().bootstrap, "127.0.0.1:1")
        .replace("  storage:", "  kafkaCluster2: {}\n  storage:")
        .replace("  kafkaCluster2: {}\n", "");
    let f = write_docs(dir.path(), &[&kb]);
    let (ok, _, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("127.0.0.1:1") && err.contains("bootstrapServers"),
        "{err}"
    );
    assert!(!store.exists(), "storage untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_literal_topic_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let prefix = unique("lit");
    produce_sample(&format!("{prefix}-"), 10);
    let kb = backup_yaml(
        "lit",
        &[
            format!("{prefix}-plain"),
            format!("{prefix}-does-not-exist"),
        ],
        &fs_storage(&store),
        "",
    );
    let err = match run_docs(dir.path(), &[&kb], "lit").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a literal missing topic must fail"),
    };
    assert!(
        err.contains("spec.topics[1]") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!store.exists(), "storage untouched");
}

/// The bad-input table, through the CLI: each case exits non-zero, names the field, and
/// writes nothing to storage or Kafka.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_table_names_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let prefix = unique("badin");
    produce_sample(&format!("{prefix}-"), 10);
    let good = backup_yaml(
        "good",
        &[format!("{prefix}-plain")],
        &fs_storage(&store),
        "",
    );
    // a real backup for the restore cases
    backup(dir.path(), &[&good], "good").await;
    let before_store = tree(&store);
    let before_topics = topic_names(&prefix).await;
    let target = format!("{prefix}-never-created");
    let restore_base = restore_yaml(
        "bad-r",
        "good",
        &format!("  createTopics: true\n  topicMapping:\n    {prefix}-plain: {target}\n"),
    );
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "malformed YAML",
            format!("{good}\n  topics: [unclosed\n"),
            vec!["invalid YAML"],
        ),
        (
            "unknown field",
            good.replace("  topics:", "  topicz: [a]\n  topics:"),
            vec!["topicz"],
        ),
        (
            "invalid cron",
            format!("{good}  schedule: \"not a cron\"\n"),
            vec!["spec.schedule"],
        ),
        (
            "missing Secret",
            good.replace(&fs_storage(&store), &s3_storage("x", "absent-secret")),
            vec!["absent-secret"],
        ),
        (
            "unknown securityProtocol",
            good.replace(
                "  kafkaCluster:\n",
                "  kafkaCluster:\n    securityProtocol: SSL_PLAINTEXT\n",
            ),
            vec!["securityProtocol"],
        ),
        (
            "pitr start after end",
            format!(
                "{good}\n---\n{restore_base}  pitr:\n    startTimestamp: 2000\n    endTimestamp: 1000\n"
            ),
            vec!["pitr"],
        ),
    ];
    for (what, yaml, needles) in cases {
        let f = write_docs(dir.path(), &[&yaml]);
        let mut args = vec!["run", "--no-progress", "-f", f.to_str().unwrap()];
        if what == "pitr start after end" {
            args.extend(["--name", "bad-r"]);
        }
        let (ok, out, err) = cli(&args);
        assert!(!ok, "{what}: must fail\n{out}");
        for n in needles {
            assert!(err.contains(n), "{what}: error should name {n:?}: {err}");
        }
        assert_eq!(tree(&store), before_store, "{what}: storage untouched");
    }
    assert_eq!(
        topic_names(&prefix).await,
        before_topics,
        "no topic created"
    );
}
