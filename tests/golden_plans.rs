//! Golden tests of the pure compiler: spec + observed facts -> plan JSON, compared with
//! tests/golden/*.json. `KBO_UPDATE_GOLDEN=1 cargo nextest run --test golden_plans` rewrites
//! them after an intended change (review the diff).
use std::collections::BTreeMap;

use kafka_backup_operator::api::{
    Document, KafkaBackup, KafkaRestore, load_and_validate, validate_backup, validate_restore,
};
use kafka_backup_operator::facts::LogSizes;
use kafka_backup_operator::format::manifest::{
    Checkpoint, PartitionManifest, PartitionProgress, RunManifest, SegmentRef, TopicManifest,
};
use kafka_backup_operator::kafka::client::{ClusterMeta, PartitionMeta, TopicMeta};
use kafka_backup_operator::kafka::ops::ConfigEntry;
use kafka_backup_operator::observe::PartitionOffsets;
use kafka_backup_operator::plan::{
    BackupFacts, BytesSource, RestoreFacts, TargetState, compile_backup, compile_restore,
};

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn meta(topics: &[(&str, i32)]) -> ClusterMeta {
    let mut m = ClusterMeta {
        cluster_id: Some("golden-cluster".into()),
        ..Default::default()
    };
    m.brokers.insert(1, "broker-1:9092".into());
    for (t, n) in topics {
        m.topics.insert(
            t.to_string(),
            TopicMeta {
                name: t.to_string(),
                topic_id: format!("id-{t}"),
                is_internal: t.starts_with("__"),
                partitions: (0..*n)
                    .map(|p| {
                        (
                            p,
                            PartitionMeta {
                                leader: 1,
                                leader_epoch: 3,
                                replicas: vec![1],
                            },
                        )
                    })
                    .collect(),
            },
        );
    }
    m
}

fn offsets(entries: &[(&str, i32, i64, i64)]) -> BTreeMap<(String, i32), PartitionOffsets> {
    entries
        .iter()
        .map(|(t, p, ls, hw)| {
            (
                (t.to_string(), *p),
                PartitionOffsets {
                    log_start: *ls,
                    high_watermark: *hw,
                },
            )
        })
        .collect()
}

fn backup_doc(spec: &str) -> KafkaBackup {
    let y = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: golden\nspec:\n{spec}"
    );
    match load_and_validate(&y, "golden").unwrap().remove(0) {
        Document::Backup(b) => b,
        _ => unreachable!(),
    }
}

fn restore_doc(spec: &str) -> KafkaRestore {
    let y = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: golden-restore\nspec:\n  backupRef:\n    name: golden\n  kafkaCluster:\n    bootstrapServers: [\"target:9092\"]\n{spec}"
    );
    match load_and_validate(&y, "golden").unwrap().remove(0) {
        Document::Restore(r) => r,
        _ => unreachable!(),
    }
}

const CLUSTER: &str = "  kafkaCluster:\n    bootstrapServers: [\"broker-1:9092\"]\n  storage:\n    storageType: filesystem\n    filesystem:\n      path: /backups\n";

fn golden<T: serde::Serialize>(name: &str, value: &T) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let got = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var("KBO_UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with KBO_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        got, want,
        "plan {name} changed; if intended, rerun with KBO_UPDATE_GOLDEN=1 and review the diff"
    );
}

fn seg(path: &str, first: i64, last: i64, records: u64) -> SegmentRef {
    SegmentRef {
        path: path.into(),
        first_offset: first,
        last_offset: last,
        records,
        raw_bytes: records * 100,
        stored_bytes: records * 60,
        min_timestamp: 1_000 + first,
        max_timestamp: 1_000 + last,
        crc32c: 7,
        index_crc32c: Some(9),
        index_bytes: Some(500),
        last_batch_offset: Some(last),
        last_batch_crc32c: Some(11),
        seal: None,
    }
}

fn previous_run() -> RunManifest {
    let part = |p: i32, cut: i64| PartitionManifest {
        partition: p,
        log_start_offset: 0,
        covered_from: 0,
        cut,
        start_offset: 0,
        records: cut as u64,
        raw_bytes: cut as u64 * 100,
        min_timestamp: Some(1_000),
        max_timestamp: Some(1_000 + cut - 1),
        gaps: vec![],
        segments: vec![seg(
            &format!("golden/data/orders/{p}/00000000000000000000-r1.seg"),
            0,
            cut - 1,
            cut as u64,
        )],
    };
    RunManifest {
        format: "kafka-backup-operator/v1".into(),
        backup_name: "golden".into(),
        run_id: "20251231T000000.000Z".into(),
        previous_run_id: None,
        start_time: NOW - 86_400_000,
        completion_time: NOW - 86_000_000,
        plan_hash: "x".into(),
        cluster_id: Some("golden-cluster".into()),
        compression: "zstd".into(),
        topics: vec![TopicManifest {
            name: "orders".into(),
            topic_id: "id-orders".into(),
            partition_count: 2,
            configs: BTreeMap::from([
                (
                    "retention.ms".to_string(),
                    ConfigEntry {
                        value: Some("-1".into()),
                        source: 1,
                        read_only: false,
                        sensitive: false,
                    },
                ),
                (
                    "segment.bytes".to_string(),
                    ConfigEntry {
                        value: Some("1073741824".into()),
                        source: 5,
                        read_only: false,
                        sensitive: false,
                    },
                ),
            ]),
            partitions: vec![part(0, 100), part(1, 80)],
        }],
        consumer_groups: vec![],
        total_records: 180,
        total_raw_bytes: 18_000,
        object_lock: None,
        seal: None,
    }
}

#[test]
fn first_backup_with_globs_excludes_and_a_consistent_cut() {
    let kb = backup_doc(&format!(
        "{CLUSTER}  topics: [\"orders*\", payments]\n  excludeTopics: [\"*-dlq\"]\n  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n"
    ));
    let facts = BackupFacts {
        name: "golden".into(),
        now_ms: NOW,
        meta: meta(&[
            ("orders", 2),
            ("orders-dlq", 1),
            ("payments", 1),
            ("__consumer_offsets", 50),
            ("other", 1),
        ]),
        offsets: offsets(&[
            ("orders", 0, 0, 100),
            ("orders", 1, 5, 80),
            ("payments", 0, 0, 0),
        ]),
        configs: BTreeMap::new(),
        previous: None,
        checkpoint: None,
        diverged: BTreeMap::new(),
        // orders/0's leader sized its log; orders/1's leader refused (issue 20 item 5)
        log_sizes: LogSizes {
            bytes: [(("orders".to_string(), 0), 12_000)].into(),
            unknown: vec!["broker 2 gave no log sizes for 1 partition(s): refused".into()],
        },
    };
    let plan = compile_backup(&validate_backup(&kb).unwrap(), &facts).unwrap();
    assert_eq!(plan.run_id, "20260101T000000.000Z");
    // the whole log of orders/0; orders/1 unknown; payments has nothing to read
    let bytes: Vec<(u64, BytesSource)> = plan
        .partitions
        .iter()
        .map(|p| (p.estimated_bytes, p.estimated_bytes_from))
        .collect();
    assert_eq!(
        bytes,
        vec![
            (12_000, BytesSource::LogSize),
            (0, BytesSource::Unknown),
            (0, BytesSource::Nothing)
        ]
    );
    assert_eq!(plan.estimate_notes.len(), 1);
    let table = kafka_backup_operator::report::backup_table(&plan);
    assert!(
        table.contains("Total: 175 records, 11.7 KiB estimated (2 of 3 steps; 1 unknown)\n  bytes unknown: broker 2"),
        "{table}"
    );
    golden("backup-first", &plan);
}

#[test]
fn incremental_backup_continues_after_the_cut_and_records_a_retention_gap() {
    let kb = backup_doc(&format!("{CLUSTER}  topics: [orders]\n"));
    let facts = BackupFacts {
        name: "golden".into(),
        now_ms: NOW,
        meta: meta(&[("orders", 2)]),
        // partition 1: retention moved the log start past the previous cut (80)
        offsets: offsets(&[("orders", 0, 0, 150), ("orders", 1, 90, 120)]),
        configs: BTreeMap::new(),
        previous: Some(previous_run()),
        checkpoint: None,
        diverged: BTreeMap::new(),
        log_sizes: Default::default(),
    };
    let plan = compile_backup(&validate_backup(&kb).unwrap(), &facts).unwrap();
    assert_eq!(plan.partitions[0].start_offset, 100);
    assert_eq!(plan.partitions[1].start_offset, 90);
    assert!(plan.partitions[1].gap.is_some());
    golden("backup-incremental", &plan);
}

#[test]
fn interrupted_run_is_resumed_from_its_checkpoint() {
    let kb = backup_doc(&format!(
        "{CLUSTER}  topics: [orders]\n  stopAtCurrentOffsets: true\n"
    ));
    let mut cp = Checkpoint {
        format: "kafka-backup-operator/v1".into(),
        run_id: "20260101T000000.000Z".into(),
        ..Default::default()
    };
    cp.partitions.insert(
        "orders/0".into(),
        PartitionProgress {
            next_offset: 140,
            segments: vec![seg(
                "golden/data/orders/0/00000000000000000100-x.seg",
                100,
                139,
                40,
            )],
            gaps: vec![],
            done: false,
        },
    );
    let facts = BackupFacts {
        name: "golden".into(),
        now_ms: NOW + 60_000,
        meta: meta(&[("orders", 2)]),
        offsets: offsets(&[("orders", 0, 0, 150), ("orders", 1, 0, 120)]),
        configs: BTreeMap::new(),
        previous: Some(previous_run()),
        checkpoint: Some(cp),
        diverged: BTreeMap::new(),
        log_sizes: Default::default(),
    };
    let plan = compile_backup(&validate_backup(&kb).unwrap(), &facts).unwrap();
    assert!(plan.resumed);
    assert_eq!(
        plan.run_id, "20260101T000000.000Z",
        "the interrupted run's id, not a new one"
    );
    assert_eq!(plan.partitions[0].start_offset, 140);
    golden("backup-resume", &plan);
}

#[test]
fn missing_literal_topic_names_the_field() {
    let kb = backup_doc(&format!("{CLUSTER}  topics: [orders, nope, \"pay*\"]\n"));
    let facts = BackupFacts {
        name: "golden".into(),
        now_ms: NOW,
        meta: meta(&[("orders", 1)]),
        offsets: BTreeMap::new(),
        configs: BTreeMap::new(),
        previous: None,
        checkpoint: None,
        diverged: BTreeMap::new(),
        log_sizes: Default::default(),
    };
    let e = compile_backup(&validate_backup(&kb).unwrap(), &facts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.topics[1]") && e.contains("\"nope\""),
        "{e}"
    );
    assert!(
        !e.contains("spec.topics[2]"),
        "a glob that matches nothing is not an error by itself: {e}"
    );
}

#[test]
fn restore_with_pitr_mapping_and_topic_creation() {
    let kr = restore_doc(
        "  createTopics: true\n  pitr:\n    startTime: \"1970-01-01T00:00:01.010Z\"\n    endTimestamp: 1050\n  topicMapping:\n    orders: orders-restored\n  partitionMapping:\n    \"0\": 1\n    \"1\": 0\n",
    );
    let facts = RestoreFacts {
        restore_name: "golden-restore".into(),
        manifest: previous_run(),
        target: meta(&[]),
        target_offsets: BTreeMap::new(),
        target_configs: BTreeMap::new(),
    };
    let plan = compile_restore(&validate_restore(&kr).unwrap(), &facts).unwrap();
    assert_eq!(
        plan.create_topics[0].configs,
        BTreeMap::from([
            (
                "message.timestamp.type".to_string(),
                "CreateTime".to_string()
            ),
            ("retention.ms".to_string(), "-1".to_string())
        ]),
        "only topic overrides are restored, and the broker keeps the records' timestamps"
    );
    assert_eq!((plan.pitr_start, plan.pitr_end), (Some(1010), Some(1050)));
    golden("restore-pitr-mapping", &plan);
}

/// `repartitioning`: one step for the topic, created with the new partition count; a wrong
/// count on an existing topic, a key that names no target, and two topics into one are
/// refused by field.
#[test]
fn restore_with_repartitioning() {
    let facts = |target: ClusterMeta| RestoreFacts {
        restore_name: "golden-repartition".into(),
        manifest: previous_run(),
        target,
        target_offsets: BTreeMap::new(),
        target_configs: BTreeMap::new(),
    };
    let kr = restore_doc(
        "  createTopics: true\n  topicMapping:\n    orders: orders-r\n  repartitioning:\n    orders-r:\n      strategy: murmur2\n      targetPartitions: 6\n",
    );
    let plan = compile_restore(&validate_restore(&kr).unwrap(), &facts(meta(&[]))).unwrap();
    assert!(plan.partitions.iter().all(|s| s.source_topic != "orders"));
    assert_eq!(plan.repartitioned.len(), 1);
    assert_eq!(plan.repartitioned[0].target_partitions, 6);
    assert_eq!(
        plan.create_topics
            .iter()
            .find(|t| t.name == "orders-r")
            .map(|t| t.partitions),
        Some(6)
    );
    golden("restore-repartition", &plan);
    let e = compile_restore(
        &validate_restore(&kr).unwrap(),
        &facts(meta(&[("orders-r", 2)])),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.repartitioning.orders-r.targetPartitions")
            && e.contains("exists with 2 partitions"),
        "{e}"
    );
    let e = compile_restore(
        &validate_restore(&restore_doc(
            "  createTopics: true\n  repartitioning:\n    nowhere:\n      targetPartitions: 2\n",
        ))
        .unwrap(),
        &facts(meta(&[])),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.repartitioning.nowhere") && e.contains("no topic of this restore"),
        "{e}"
    );
}

#[test]
fn restore_refusals_name_the_field() {
    let facts = |target: ClusterMeta, offs| RestoreFacts {
        restore_name: "r".into(),
        manifest: previous_run(),
        target,
        target_offsets: offs,
        target_configs: BTreeMap::new(),
    };
    // the target topic is missing and createTopics is off
    let e = compile_restore(
        &validate_restore(&restore_doc("")).unwrap(),
        &facts(meta(&[]), BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.createTopics") && e.contains("\"orders\""),
        "{e}"
    );
    // same name, holding records, no purge and no appendToExisting
    let full = offsets(&[("orders", 0, 0, 5), ("orders", 1, 0, 0)]);
    let e = compile_restore(
        &validate_restore(&restore_doc("")).unwrap(),
        &facts(meta(&[("orders", 2)]), full.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.appendToExisting")
            && e.contains("purgeTopics")
            && e.contains("partitions 0 (offsets 0..5)"),
        "{e}"
    );
    // a mapped target holding records is refused the same way (an explicit mapping is no
    // licence to mix records)
    let mapped = offsets(&[("orders-r", 0, 0, 5), ("orders-r", 1, 0, 0)]);
    let e = compile_restore(
        &validate_restore(&restore_doc("  topicMapping:\n    orders: orders-r\n")).unwrap(),
        &facts(meta(&[("orders-r", 2)]), mapped.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.appendToExisting"), "{e}");
    // appendToExisting says so on purpose: allowed, and the plan says which partition appends
    let p = compile_restore(
        &validate_restore(&restore_doc(
            "  topicMapping:\n    orders: orders-r\n  appendToExisting: true\n",
        ))
        .unwrap(),
        &facts(meta(&[("orders-r", 2)]), mapped),
    )
    .unwrap();
    let states: Vec<_> = p.partitions.iter().map(|s| s.target_state).collect();
    assert_eq!(states, vec![TargetState::Appended, TargetState::Empty]);
    // an existing LogAppendTime target would re-stamp every record: refused with the fix
    let mut lat = facts(meta(&[("orders", 2)]), BTreeMap::new());
    lat.target_configs.insert(
        "orders".into(),
        BTreeMap::from([(
            "message.timestamp.type".to_string(),
            ConfigEntry {
                value: Some("LogAppendTime".into()),
                source: 1,
                read_only: false,
                sensitive: false,
            },
        )]),
    );
    let e = compile_restore(&validate_restore(&restore_doc("")).unwrap(), &lat)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LogAppendTime") && e.contains("CreateTime"),
        "{e}"
    );
    // a PITR window after the run's timestamps (1000..=1099 ms) plans nothing: an error
    // that names the start's field, the recoverability window and the fix, unless
    // pitr.allowEmpty
    let e = compile_restore(
        &validate_restore(&restore_doc(
            "  createTopics: true\n  pitr:\n    startTimestamp: 4000000000000\n",
        ))
        .unwrap(),
        &facts(meta(&[]), BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("spec.pitr.startTimestamp: ")
            && e.contains("after the last recoverability point 1970-01-01T00:00:01.099Z")
            && e.contains("1970-01-01T00:00:01Z .. 1970-01-01T00:00:01.099Z")
            && e.contains("allowEmpty"),
        "{e}"
    );
    // one before them names the end's field
    let e = compile_restore(
        &validate_restore(&restore_doc(
            "  createTopics: true\n  pitr:\n    endTime: \"1970-01-01T00:00:00.999Z\"\n",
        ))
        .unwrap(),
        &facts(meta(&[]), BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("spec.pitr.endTime: ")
            && e.contains("before the first recoverability point 1970-01-01T00:00:01Z")
            && e.contains("Set pitr.endTime at or after 1970-01-01T00:00:01Z"),
        "{e}"
    );
    assert!(
        compile_restore(
            &validate_restore(&restore_doc(
                "  createTopics: true\n  pitr:\n    startTimestamp: 4000000000000\n    allowEmpty: true\n"
            )).unwrap(),
            &facts(meta(&[]), BTreeMap::new()),
        )
        .is_ok()
    );
    // the same with purgeTopics: allowed, and both partitions are purged
    let p = compile_restore(
        &validate_restore(&restore_doc("  purgeTopics: true\n")).unwrap(),
        &facts(meta(&[("orders", 2)]), full),
    )
    .unwrap();
    assert_eq!(
        p.purge,
        vec![("orders".to_string(), 0), ("orders".to_string(), 1)]
    );
    // an empty same-name topic (the seed's pitr-restore onto a fresh cluster) is fine
    let empty = offsets(&[("orders", 0, 3, 3), ("orders", 1, 0, 0)]);
    assert!(
        compile_restore(
            &validate_restore(&restore_doc("")).unwrap(),
            &facts(meta(&[("orders", 2)]), empty)
        )
        .is_ok()
    );
    // mapping onto a partition the target lacks, and two sources onto one target
    let e = compile_restore(
        &validate_restore(&restore_doc("  partitionMapping:\n    \"0\": 5\n")).unwrap(),
        &facts(meta(&[("orders", 2)]), BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.partitionMapping.0"), "{e}");
    let e = compile_restore(
        &validate_restore(&restore_doc("  partitionMapping:\n    \"0\": 1\n")).unwrap(),
        &facts(meta(&[("orders", 2)]), BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("would both be restored"), "{e}");
}

/// `execution.mode: job` (issue 18): the plan carries its shards, balanced by estimated bytes;
/// the same spec in process compiles to a plan without `execution` and another hash.
#[test]
fn backup_as_jobs_carries_its_shards() {
    let facts = BackupFacts {
        name: "golden".into(),
        now_ms: NOW,
        // orders grew from 2 to 5 partitions since the previous run (100 bytes per record)
        meta: meta(&[("orders", 5)]),
        offsets: offsets(&[
            ("orders", 0, 0, 150),
            ("orders", 1, 0, 380),
            ("orders", 2, 0, 500),
            ("orders", 3, 0, 20),
            ("orders", 4, 0, 0),
        ]),
        configs: BTreeMap::new(),
        previous: Some(previous_run()),
        checkpoint: None,
        diverged: BTreeMap::new(),
        log_sizes: Default::default(),
    };
    let kb = backup_doc(&format!(
        "{CLUSTER}  topics: [orders]\n  execution:\n    mode: job\n    shards: 3\n    backoffLimit: 2\n"
    ));
    let plan = compile_backup(&validate_backup(&kb).unwrap(), &facts).unwrap();
    let ex = plan.execution.as_ref().unwrap();
    assert_eq!(ex.backoff_limit, 2);
    // bytes 5000, 30000, 50000, 2000, 0: the heaviest alone, the small ones together
    let parts: Vec<Vec<usize>> = ex.shards.iter().map(|s| s.partitions.clone()).collect();
    assert_eq!(parts, vec![vec![2], vec![1], vec![0, 3, 4]]);
    let bytes: Vec<u64> = ex.shards.iter().map(|s| s.estimated_bytes).collect();
    assert_eq!(bytes, vec![50_000, 30_000, 7_000]);
    golden("backup-job", &plan);

    let in_process = backup_doc(&format!("{CLUSTER}  topics: [orders]\n"));
    let p2 = compile_backup(&validate_backup(&in_process).unwrap(), &facts).unwrap();
    assert_eq!(p2.execution, None);
    assert!(
        serde_json::to_value(&p2)
            .unwrap()
            .get("execution")
            .is_none()
    );
    assert_ne!(p2.hash, plan.hash);
    assert_eq!(p2.partitions, plan.partitions);
}

/// A restore as Jobs: partition steps and repartitioned steps are both spread over shards.
#[test]
fn restore_as_jobs_carries_its_shards() {
    let facts = RestoreFacts {
        restore_name: "golden-restore".into(),
        manifest: previous_run(),
        target: meta(&[]),
        target_offsets: BTreeMap::new(),
        target_configs: BTreeMap::new(),
    };
    let kr = restore_doc("  createTopics: true\n  execution: {mode: job, shards: 4}\n");
    let plan = compile_restore(&validate_restore(&kr).unwrap(), &facts).unwrap();
    let ex = plan.execution.as_ref().unwrap();
    // two partitions: two shards, the larger (orders/0, 100 records) first
    assert_eq!(ex.shards.len(), 2);
    assert_eq!(ex.shards[0].partitions, vec![0]);
    assert_eq!(ex.shards[1].partitions, vec![1]);
    golden("restore-job", &plan);

    let kr = restore_doc(
        "  createTopics: true\n  topicMapping:\n    orders: orders-r\n  repartitioning:\n    orders-r:\n      targetPartitions: 6\n  execution: {mode: job, shards: 2}\n",
    );
    let plan = compile_restore(&validate_restore(&kr).unwrap(), &facts).unwrap();
    let ex = plan.execution.as_ref().unwrap();
    assert_eq!(ex.shards.len(), 1);
    assert!(ex.shards[0].partitions.is_empty());
    assert_eq!(ex.shards[0].repartitioned, vec![0]);
}
