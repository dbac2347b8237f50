//! Every complete YAML example of the seed overview (`shared/seed/operator-overview.txt`) must
//! parse and validate unchanged. The copy-paste lost the indentation; the fixtures under
//! `tests/fixtures/seed/` restore the obvious indentation and keep every key and value.
//!
//! Not included: the GitOps example `production-backup`, whose spec is only `# ...` (a
//! placeholder comment, i.e. an empty spec). It is not a complete manifest: it has no
//! kafkaCluster, topics or storage, so rejecting it is correct; the test
//! `gitops_placeholder_is_rejected_for_the_right_reason` checks that it fails by naming the
//! missing field rather than on syntax.

use kafka_backup_operator::api::{
    Document, KafkaBackup, KafkaOffsetReset, KafkaRestore, ResetStrategy, SecurityProtocol,
    StorageType, load_documents, validate_backup, validate_offset_reset, validate_restore,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/seed/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn only(name: &str) -> Document {
    let docs = load_documents(&fixture(name), name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1, "{name}");
    let doc = docs.into_iter().next().unwrap();
    if let Err(e) = doc.validate() {
        panic!("{name} must validate:\n{e}");
    }
    doc
}

fn backup(name: &str) -> KafkaBackup {
    match only(name) {
        Document::Backup(b) => b,
        other => panic!("{name}: expected KafkaBackup, got {}", other.kind()),
    }
}

#[test]
fn hourly_backup() {
    let kb = backup("hourly-backup.yaml");
    assert!(validate_backup(&kb).is_ok());
    assert_eq!(kb.metadata.name.as_deref(), Some("hourly-backup"));
    let s = &kb.spec;
    assert_eq!(s.schedule.as_deref(), Some("0 0 * * * * *"));
    assert!(s.stop_at_current_offsets);
    assert!(!s.continuous);
    assert_eq!(s.kafka_cluster.bootstrap_servers, ["kafka:9092"]);
    assert_eq!(s.topics, ["orders", "payments"]);
    assert_eq!(s.storage.storage_type, StorageType::S3);
    let s3 = s.storage.s3.as_ref().unwrap();
    assert_eq!(s3.bucket, "kafka-backups");
    assert_eq!(s3.region, "us-west-2");
    let creds = s3.credentials_secret.as_ref().unwrap();
    assert_eq!(creds.name, "s3-credentials");
    // Defaults filled in.
    assert_eq!(creds.access_key_id_key, "AWS_ACCESS_KEY_ID");
    assert_eq!(creds.secret_access_key_key, "AWS_SECRET_ACCESS_KEY");
    assert!(!s3.path_style && !s3.allow_http);
    assert_eq!(
        s.kafka_cluster.security_protocol,
        SecurityProtocol::Plaintext
    );
    assert_eq!(s.kafka_cluster.connection.connections_per_broker, 4);
    assert_eq!(s.kafka_cluster.connection.request_timeout_ms, 30_000);
    assert_eq!(s.kafka_cluster.connection.connect_timeout_ms, 10_000);
    assert!(s.kafka_cluster.connection.tcp_keepalive);
    assert_eq!(s.time_zone_name(), "UTC");
    assert!(s.checkpoint.enabled);
    assert_eq!(s.checkpoint.interval_secs, 30);
    assert_eq!(s.compression_level, 3);
    assert_eq!(s.segment_max_bytes, 134_217_728);
    assert_eq!(s.segment_max_interval_ms, 60_000);
    assert!(s.include_offset_headers);
    assert!(!s.retention.enabled);
    assert_eq!(s.max_concurrent_partitions(), 8);
    assert!(s.circuit_breaker.enabled);
    assert_eq!(s.circuit_breaker.failure_threshold, 5);
}

#[test]
fn hourly_schedule_fires_every_hour_on_the_hour() {
    let kb = backup("hourly-backup.yaml");
    let cron =
        kafka_backup_operator::api::validate::parse_schedule(kb.spec.schedule.as_deref().unwrap())
            .unwrap();
    let t0: jiff::Zoned = "2024-12-01T12:00:00Z[UTC]".parse().unwrap();
    let t1 = cron.find_next_occurrence(&t0, false).unwrap();
    let t2 = cron.find_next_occurrence(&t1, false).unwrap();
    assert_eq!(t1.to_string(), "2024-12-01T13:00:00+00:00[UTC]");
    assert_eq!(t2.to_string(), "2024-12-01T14:00:00+00:00[UTC]");
}

#[test]
fn pitr_restore() {
    let kr: KafkaRestore = match only("pitr-restore.yaml") {
        Document::Restore(r) => r,
        other => panic!("expected KafkaRestore, got {}", other.kind()),
    };
    assert!(validate_restore(&kr).is_ok());
    let s = &kr.spec;
    assert_eq!(s.backup_ref.name, "production-backup");
    assert_eq!(s.backup_ref.backup_id, None);
    let pitr = s.pitr.as_ref().unwrap();
    assert_eq!(pitr.end_time.as_deref(), Some("2024-12-01T12:00:00Z"));
    assert_eq!(pitr.end_ms().unwrap(), Some(1_733_054_400_000));
    assert_eq!(pitr.start_ms().unwrap(), None);
    assert_eq!(s.kafka_cluster.bootstrap_servers, ["kafka:9092"]);
    // Defaults.
    assert!(s.topics.is_empty());
    assert_eq!(s.produce_acks, -1);
    assert_eq!(s.produce_batch_size, 1000);
    assert_eq!(s.produce_timeout_ms, 30_000);
    assert!(!s.dry_run && !s.purge_topics && !s.create_topics);
    assert!(s.rollback.snapshot_before_restore);
    assert_eq!(s.rollback.snapshot_retention_hours, 24);
    assert_eq!(s.max_concurrent_partitions(), 4);
    assert_eq!(s.target_topic("orders"), "orders");
}

#[test]
fn reset_after_restore() {
    let kor: KafkaOffsetReset = match only("reset-after-restore.yaml") {
        Document::OffsetReset(r) => r,
        other => panic!("expected KafkaOffsetReset, got {}", other.kind()),
    };
    assert!(validate_offset_reset(&kor).is_ok());
    assert_eq!(kor.spec.reset_strategy, ResetStrategy::FromMapping);
    assert_eq!(kor.spec.consumer_groups, ["order-processor"]);
    assert_eq!(kor.spec.parallelism, 50);
    assert!(kor.spec.snapshot_before_reset);
    assert!(!kor.spec.dry_run && !kor.spec.continue_on_error);
    assert!(kor.spec.offset_mapping_ref.is_none());
}

#[test]
fn my_first_backup() {
    let kb = backup("my-first-backup.yaml");
    assert_eq!(kb.metadata.name.as_deref(), Some("my-first-backup"));
    assert_eq!(kb.metadata.namespace.as_deref(), Some("kafka-backup"));
    assert_eq!(kb.spec.schedule, None, "run once");
    assert!(kb.spec.stop_at_current_offsets);
    assert_eq!(
        kb.spec.kafka_cluster.bootstrap_servers,
        ["kafka.default.svc:9092"]
    );
    let s3 = kb.spec.storage.s3.as_ref().unwrap();
    assert_eq!(s3.bucket, "my-kafka-backups");
    assert_eq!(s3.region, "us-west-2");
    assert_eq!(
        s3.credentials_secret.as_ref().map(|c| c.name.as_str()),
        Some("s3-credentials")
    );
}

#[test]
fn all_seed_examples_in_one_stream() {
    let names = [
        "hourly-backup.yaml",
        "pitr-restore.yaml",
        "reset-after-restore.yaml",
        "my-first-backup.yaml",
    ];
    let stream = names
        .iter()
        .map(|n| fixture(n))
        .collect::<Vec<_>>()
        .join("---\n");
    let docs = load_documents(&stream, "seed.yaml").unwrap();
    let kinds: Vec<&str> = docs.iter().map(Document::kind).collect();
    assert_eq!(
        kinds,
        [
            "KafkaBackup",
            "KafkaRestore",
            "KafkaOffsetReset",
            "KafkaBackup"
        ]
    );
    let names: Vec<&str> = docs.iter().map(Document::name).collect();
    assert_eq!(
        names,
        [
            "hourly-backup",
            "pitr-restore",
            "reset-after-restore",
            "my-first-backup"
        ]
    );
    for d in &docs {
        d.validate().unwrap();
    }
}

#[test]
fn serialized_form_loads_back_identically() {
    // What the operator writes (e.g. `kubectl get -o yaml` after defaulting) must be readable
    // by the strict loader and mean the same.
    for name in [
        "hourly-backup.yaml",
        "pitr-restore.yaml",
        "reset-after-restore.yaml",
        "my-first-backup.yaml",
    ] {
        let doc = only(name);
        let yaml = match &doc {
            Document::Backup(r) => serde_yaml_ng::to_string(r),
            Document::Restore(r) => serde_yaml_ng::to_string(r),
            Document::OffsetReset(r) => serde_yaml_ng::to_string(r),
            other => panic!("unexpected {}", other.kind()),
        }
        .unwrap();
        let again = load_documents(&yaml, name).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(again, vec![doc], "{name}");
    }
}

#[test]
fn gitops_placeholder_is_rejected_for_the_right_reason() {
    let yaml = "# backup.yaml - Store in Git\n\
                apiVersion: kafka.oso.sh/v1alpha1\n\
                kind: KafkaBackup\n\
                metadata:\n  name: production-backup\n\
                spec:\n  # ...\n";
    let err = load_documents(yaml, "backup.yaml").unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("backup.yaml"), "{err}");
    assert!(err.contains("production-backup"), "{err}");
    // The spec is empty (null): serde reports the type mismatch at `spec`.
    assert!(err.contains("spec"), "{err}");
}
