//! The plan command and dry runs observe read-only: same broker and storage state before and
//! after.
use crate::support::*;
use kafka_backup_operator::kafka::ops::OffsetSpec;

/// Topics with `prefix` (other tests run in parallel) and their high watermarks.
async fn broker_state(prefix: &str) -> Vec<((String, i32), i64)> {
    let c = client().await;
    let meta = c.refresh_metadata().await.unwrap();
    let parts: Vec<(String, i32)> = meta
        .topics
        .values()
        .filter(|t| t.name.starts_with(prefix))
        .flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p)))
        .collect();
    let mut v: Vec<_> = c
        .list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap()
        .into_iter()
        .collect();
    v.sort();
    v
}

fn plugin(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_dry_run_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let prefix = unique("plan");
    produce_sample(&format!("{prefix}-"), 30);
    let topic = format!("{prefix}-snappy");
    let kb = backup_yaml(
        "pl",
        std::slice::from_ref(&topic),
        &fs_storage(&store),
        "  stopAtCurrentOffsets: true\n",
    );
    let f = write_docs(dir.path(), &[&kb]);

    // before any backup: the storage directory does not even exist, and plan does not create it
    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(ok, "{err}");
    assert!(!store.exists());
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["partitions"].as_array().unwrap().len(), 3);
    assert!(p["previousRunId"].is_null());

    let m = backup(dir.path(), &[&kb], "pl").await;
    let kr = restore_yaml(
        "pl-r",
        "pl",
        &format!(
            "  createTopics: true\n  purgeTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"
        ),
    );
    let fr = write_docs(dir.path(), &[&kb, &kr]);
    let store_before = tree(&store);
    let broker_before = broker_state(&prefix).await;

    let (ok, out, err) = plugin(&["plan", "-f", f.to_str().unwrap(), "-o", "yaml"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("previousRunId: {}", m.run_id)),
        "{out}"
    );
    let (ok, out, err) = plugin(&["plan", "-f", fr.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("create topic {topic}-r (3 partitions")) && out.contains("restore "),
        "{out}"
    );
    // dryRun through `run`: prints the plan, executes nothing
    let dry = kr.replace(
        "  createTopics: true\n",
        "  createTopics: true\n  dryRun: true\n",
    );
    let fd = write_docs(dir.path(), &[&kb, &dry]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", fd.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("dryRun: nothing was written") && out.contains("write offset map"),
        "{out}"
    );

    assert_eq!(tree(&store), store_before, "storage unchanged");
    assert_eq!(
        broker_state(&prefix).await,
        broker_before,
        "broker unchanged (no topic, no record)"
    );
}
