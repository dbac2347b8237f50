use crate::support::*;
use kafka_backup_operator::format::batch::Codec;
use kafka_backup_operator::kafka::ops::NewTopic;

#[tokio::test(flavor = "multi_thread")]
async fn filesystem_round_trip_keeps_every_record_and_topic_configs() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("rt");
    let summary = produce_sample(&format!("{prefix}-"), 300);
    let topics = sample_topics(&summary);
    let kb = backup_yaml(
        "rt",
        &[format!("{prefix}-*")],
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb], "rt").await;
    assert_eq!(
        m.topics.len(),
        topics.len(),
        "every sample topic is in the manifest"
    );
    let plain = m
        .topics
        .iter()
        .find(|t| t.name.ends_with("-plain"))
        .unwrap();
    assert_eq!(plain.partition_count, 3);
    assert!(
        plain
            .partitions
            .iter()
            .all(|p| p.covered_from == 0 && p.cut > 0 && !p.segments.is_empty())
    );
    // exact min timestamp: plain holds 2001 records
    assert!(
        plain
            .partitions
            .iter()
            .filter_map(|p| p.min_timestamp)
            .min()
            .unwrap()
            < 1_000_000_000_000
    );
    let large = m
        .topics
        .iter()
        .find(|t| t.name.ends_with("-large"))
        .unwrap();
    assert_eq!(
        large
            .configs
            .get("max.message.bytes")
            .and_then(|c| c.value.clone())
            .as_deref(),
        Some("2000000")
    );

    let kr = restore_yaml(
        "rt-restore",
        "rt",
        &format!("  createTopics: true\n{}", mapping(&topics, "-r")),
    );
    let out = restore(dir.path(), &[&kb, &kr], "rt-restore").await;
    assert!(out.records > 0);
    assert_same(&topics, &suffixed(&topics, "-r"), &[]);
    // aborted transactions are not restored, even for a read_uncommitted reader of the target
    assert_same(
        &topics,
        &suffixed(&topics, "-r"),
        &["--target-isolation", "read_uncommitted"],
    );
    // created topics carry the backed-up configs
    let c = client().await;
    let cfg = c
        .describe_topic_configs(&[format!("{prefix}-large-r")])
        .await
        .unwrap();
    let cfg = &cfg[&format!("{prefix}-large-r")];
    assert_eq!(cfg["max.message.bytes"].value.as_deref(), Some("2000000"));
    assert_eq!(cfg["retention.ms"].value.as_deref(), Some("-1"));
    // the offset map is compact: one range per partition for a topic without transactions
    let zstd = out
        .offset_map
        .partitions
        .iter()
        .filter(|p| p.source_topic.ends_with("-zstd"))
        .collect::<Vec<_>>();
    assert!(zstd.iter().all(|p| p.ranges.len() == 1), "{zstd:?}");
    let txn = out
        .offset_map
        .partitions
        .iter()
        .filter(|p| p.source_topic.ends_with("-txn"))
        .map(|p| p.ranges.len())
        .sum::<usize>();
    assert!(txn > 3, "aborted records and markers split the txn ranges");
    assert!(dir.path().join(&out.offset_map_path).exists());
    // producer compression is kept: restored batches carry the source codec
    for (suffix, codec) in [
        ("-gzip-r", Codec::Gzip),
        ("-snappy-r", Codec::Snappy),
        ("-lz4-r", Codec::Lz4),
        ("-zstd-r", Codec::Zstd),
    ] {
        let mut f = c
            .fetch_stream(&format!("{prefix}{suffix}"), 0, 0, 1 << 20, 100)
            .await
            .unwrap();
        let b = f.next_batch().await.unwrap().expect("a batch");
        assert_eq!(b.header.codec().unwrap(), codec, "{suffix}");
        assert_eq!(
            b.header.producer_id, -1,
            "restored batches are not idempotent/transactional"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_round_trip_with_a_credentials_secret() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("s3");
    let summary = produce_sample(&format!("{prefix}-"), 200);
    let topics = sample_topics(&summary);
    let secret = s3_secret("s3-creds", false);
    let kb = backup_yaml(
        "s3b",
        &[format!("{prefix}-*")],
        &s3_storage(&prefix, "s3-creds"),
        "  compression: lz4\n",
    );
    let m = backup(dir.path(), &[&kb, &secret], "s3b").await;
    assert_eq!(m.compression, "lz4");
    assert!(
        !dir.path().join("s3b").exists(),
        "nothing went to the local disk"
    );
    let kr = restore_yaml(
        "s3r",
        "s3b",
        &format!("  createTopics: true\n{}", mapping(&topics, "-r")),
    );
    restore(dir.path(), &[&kb, &kr, &secret], "s3r").await;
    assert_same(&topics, &suffixed(&topics, "-r"), &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pitr_window_restores_exactly_the_records_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("pitr");
    let summary = produce_sample(&format!("{prefix}-"), 400);
    let topics = sample_topics(&summary);
    let kb = backup_yaml(
        "pb",
        &[format!("{prefix}-*")],
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "pb").await;
    for w in summary["pitr_suggestions"].as_array().unwrap() {
        let (name, start, end) = (
            w["name"].as_str().unwrap(),
            w["start_ms"].as_i64().unwrap(),
            w["end_ms"].as_i64().unwrap(),
        );
        let suffix = format!("-{name}");
        // startTimestamp (epoch ms) for one bound and RFC 3339 for the other: both forms work
        let end_rfc = jiff::Timestamp::from_millisecond(end).unwrap().to_string();
        let kr = restore_yaml(
            &format!("pr{name}"),
            "pb",
            &format!(
                "  createTopics: true\n  pitr:\n    startTimestamp: {start}\n    endTime: \"{end_rfc}\"\n{}",
                mapping(&topics, &suffix)
            ),
        );
        restore(dir.path(), &[&kb, &kr], &format!("pr{name}")).await;
        let report = assert_same(
            &topics,
            &suffixed(&topics, &suffix),
            &[
                "--pitr-start",
                &start.to_string(),
                "--pitr-end",
                &end.to_string(),
            ],
        );
        // the window's own expectation from the producer agrees with the broker's view
        for (t, n) in w["expected_records"].as_object().unwrap() {
            assert!(
                report.contains(&format!("{n}")),
                "window {name}: {t} expected {n}\n{report}"
            );
        }
    }
    // and a window shifted by one millisecond does not match the full-window restore
    let w = &summary["pitr_suggestions"][0];
    let start = w["start_ms"].as_i64().unwrap();
    let suffix = format!("-{}", w["name"].as_str().unwrap());
    assert_differs(
        &topics,
        &suffixed(&topics, &suffix),
        &["--pitr-start", &(start + 1).to_string()],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_mapping_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("pm");
    produce_sample(&format!("{prefix}-"), 100);
    let src = vec![format!("{prefix}-zstd")];
    let kb = backup_yaml("pmb", &src, &fs_storage(dir.path()), "");
    backup(dir.path(), &[&kb], "pmb").await;
    // target exists with 3 partitions and holds junk that purge must remove
    let c = client().await;
    let target = format!("{prefix}-zstd-moved");
    let mut cfg = std::collections::BTreeMap::new();
    cfg.insert("retention.ms".to_string(), "-1".to_string());
    c.create_topics(
        &[NewTopic {
            name: target.clone(),
            partitions: 3,
            replication_factor: -1,
            configs: cfg,
        }],
        10_000,
    )
    .await
    .unwrap();
    let junk = kafka_backup_operator::format::batch::encode_batch(
        &[kafka_backup_operator::format::batch::Record {
            offset: 0,
            timestamp: 1,
            key: None,
            value: Some("junk".into()),
            headers: vec![],
        }],
        kafka_backup_operator::format::batch::Codec::None,
    )
    .unwrap();
    for p in 0..3 {
        c.produce(&target, p, junk.clone(), -1, 10_000)
            .await
            .unwrap();
    }
    let kr = restore_yaml(
        "pmr",
        "pmb",
        &format!(
            "  purgeTopics: true\n  topicMapping:\n    {}: {target}\n  partitionMapping:\n    \"0\": 2\n    \"1\": 0\n    \"2\": 1\n",
            src[0]
        ),
    );
    restore(dir.path(), &[&kb, &kr], "pmr").await;
    assert_same(
        &src,
        std::slice::from_ref(&target),
        &["--partition-map", "0:2,1:0,2:1"],
    );
    assert_differs(&src, &[target], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_onto_a_non_empty_topic_of_the_same_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("same");
    produce_sample(&format!("{prefix}-"), 50);
    let src = format!("{prefix}-lz4");
    let kb = backup_yaml(
        "sb",
        std::slice::from_ref(&src),
        &fs_storage(dir.path()),
        "",
    );
    backup(dir.path(), &[&kb], "sb").await;
    let c = client().await;
    let hw_before = c
        .list_offsets(
            &[(src.clone(), 0)],
            kafka_backup_operator::kafka::ops::OffsetSpec::Latest,
        )
        .await
        .unwrap();
    let kr = restore_yaml("sr", "sb", "");
    let err = match run_docs(dir.path(), &[&kb, &kr], "sr").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("restore onto the same non-empty topic must be refused"),
    };
    assert!(
        err.contains("spec.appendToExisting") && err.contains("purgeTopics"),
        "{err}"
    );
    let hw_after = c
        .list_offsets(
            &[(src.clone(), 0)],
            kafka_backup_operator::kafka::ops::OffsetSpec::Latest,
        )
        .await
        .unwrap();
    assert_eq!(hw_before, hw_after, "nothing was produced");
    assert!(
        !tree(dir.path()).iter().any(|p| p.contains("restores/")),
        "no offset map written"
    );
}
