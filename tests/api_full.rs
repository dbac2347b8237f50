//! Manifests that set every field of every kind (`tests/fixtures/full/`) parse, validate, keep
//! every value, and survive a serialize/load round trip. This pins the camelCase field names of
//! crds.md, including ours (excludeTopics, timeZone, filesystem storage, requestTimeoutMs,
//! connectTimeoutMs).

use kafka_backup_operator::api::{
    Compression, Document, EvidenceFormat, PagerDutySeverity, RepartitionStrategy, ResetStrategy,
    SaslMechanism, Secrets, SecurityProtocol, StorageType, load_and_validate,
};

fn load(name: &str) -> Vec<Document> {
    let path = format!("{}/tests/fixtures/full/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    load_and_validate(&text, name).unwrap_or_else(|e| panic!("{e}"))
}

fn round_trip(doc: &Document) {
    let yaml = match doc {
        Document::Backup(r) => serde_yaml_ng::to_string(r),
        Document::Restore(r) => serde_yaml_ng::to_string(r),
        Document::OffsetReset(r) => serde_yaml_ng::to_string(r),
        Document::OffsetRollback(r) => serde_yaml_ng::to_string(r),
        Document::Validation(r) => serde_yaml_ng::to_string(r),
        Document::Secret { .. } => return,
    }
    .unwrap();
    let again = load_and_validate(&yaml, "round-trip.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.as_slice(), std::slice::from_ref(doc));
}

#[test]
fn backup_every_field() {
    let docs = load("backup.yaml");
    let Document::Backup(kb) = &docs[0] else {
        panic!("not a backup")
    };
    round_trip(&docs[0]);
    let s = &kb.spec;
    let kc = &s.kafka_cluster;
    assert_eq!(kc.bootstrap_servers, ["broker-0.kafka:9093", "[::1]:9093"]);
    assert_eq!(kc.security_protocol, SecurityProtocol::SaslSsl);
    let tls = kc.tls_secret.as_ref().unwrap();
    assert_eq!(
        (
            tls.name.as_str(),
            tls.ca_key.as_str(),
            tls.cert_key.as_deref(),
            tls.key_key.as_deref()
        ),
        ("kafka-tls", "ca.pem", Some("tls.crt"), Some("tls.key"))
    );
    let sasl = kc.sasl_secret.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(
        (sasl.username_key.as_str(), sasl.password_key.as_str()),
        ("user", "pass")
    );
    let c = &kc.connection;
    assert!(!c.tcp_keepalive && !c.tcp_nodelay);
    assert_eq!(
        (
            c.keepalive_time_secs,
            c.keepalive_interval_secs,
            c.connections_per_broker,
            c.request_timeout_ms,
            c.connect_timeout_ms
        ),
        (30, 10, 2, 60_000, 5_000)
    );
    assert_eq!(s.topics, ["orders", "payments-*"]);
    assert_eq!(s.exclude_topics, ["payments-test"]);
    let s3 = s.storage.s3.as_ref().unwrap();
    assert_eq!(s.storage.storage_type, StorageType::S3);
    assert_eq!(s3.endpoint.as_deref(), Some("http://minio.minio:9000"));
    assert!(s3.path_style && s3.allow_http);
    assert_eq!(s.storage.prefix(), Some("prod/"));
    let cred = s3.credentials_secret.as_ref().unwrap();
    assert_eq!(
        (
            cred.access_key_id_key.as_str(),
            cred.secret_access_key_key.as_str()
        ),
        ("user", "password")
    );
    assert_eq!(s.schedule.as_deref(), Some("0 30 2 * * *"));
    assert_eq!(s.time_zone_name(), "Europe/Berlin");
    assert!(s.suspend && s.stop_at_current_offsets && !s.continuous);
    assert!(!s.checkpoint.enabled);
    assert_eq!(s.checkpoint.interval_secs, 10);
    assert!(s.consumer_group_snapshot);
    assert_eq!((s.compression, s.compression_level), (Compression::Lz4, 9));
    assert_eq!(
        (s.segment_max_bytes, s.segment_max_interval_ms),
        (1_048_576, 5_000)
    );
    assert!(!s.include_offset_headers);
    assert_eq!(s.source_cluster_id.as_deref(), Some("prod-eu"));
    assert!(s.retention.enabled && s.retention.dry_run);
    assert_eq!(
        (s.retention.max_age_days, s.retention.keep_last),
        (Some(30), Some(7))
    );
    assert_eq!(s.rate_limiting.records_limit(), Some(1000));
    assert_eq!(s.rate_limiting.bytes_limit(), Some(1_048_576));
    assert_eq!(s.max_concurrent_partitions(), 2);
    let cb = &s.circuit_breaker;
    assert!(!cb.enabled);
    assert_eq!(
        (
            cb.failure_threshold,
            cb.reset_timeout_secs,
            cb.success_threshold,
            cb.operation_timeout_ms
        ),
        (2, 5, 1, 1000)
    );
}

#[test]
fn restore_every_field() {
    let docs = load("restore.yaml");
    let Document::Restore(kr) = &docs[0] else {
        panic!("not a restore")
    };
    round_trip(&docs[0]);
    let s = &kr.spec;
    assert_eq!(s.backup_ref.namespace.as_deref(), Some("kafka"));
    assert_eq!(
        s.backup_ref.backup_id.as_deref(),
        Some("20241201T120000Z-0001")
    );
    let st = s.backup_ref.storage.as_ref().unwrap();
    assert_eq!(st.storage_type, StorageType::Filesystem);
    assert_eq!(st.filesystem.as_ref().unwrap().path, "/var/backups");
    assert_eq!(
        s.kafka_cluster
            .ca_secret
            .as_ref()
            .map(|c| (c.name.as_str(), c.ca_key.as_str())),
        Some(("dr-cluster-ca-cert", "ca.crt"))
    );
    assert_eq!(s.topics, ["orders", "~payments-(eu|us)"]);
    let pitr = s.pitr.as_ref().unwrap();
    // Epoch forms win over the RFC 3339 ones.
    assert_eq!(pitr.start_ms().unwrap(), Some(1_733_011_200_000));
    assert_eq!(pitr.end_ms().unwrap(), Some(1_733_050_800_000));
    assert_eq!(s.target_topic("orders"), "orders-restored");
    assert_eq!(s.target_topic("payments-eu"), "payments-eu");
    assert_eq!(
        s.partition_mapping_parsed()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [(0, 1), (1, 0)]
    );
    let rep = &s.repartitioning["orders-restored"];
    assert_eq!(
        (rep.strategy, rep.target_partitions),
        (RepartitionStrategy::Automatic, 12)
    );
    assert!(s.create_topics && s.purge_topics && s.auto_consumer_groups && s.dry_run);
    assert_eq!(s.default_replication_factor, Some(3));
    let or = s.offset_reset.as_ref().unwrap();
    assert!(or.enabled);
    assert_eq!(or.strategy, ResetStrategy::ToLatest);
    assert_eq!(
        (s.produce_acks, s.produce_batch_size, s.produce_timeout_ms),
        (1, 500, 10_000)
    );
    assert!(!s.rollback.snapshot_before_restore && s.rollback.auto_rollback_on_failure);
    assert_eq!(s.rollback.snapshot_retention_hours, 48);
    assert_eq!(s.rate_limiting.records_per_sec, 10);
    assert_eq!(s.max_concurrent_partitions(), 4);
}

#[test]
fn offset_reset_and_rollback_every_field() {
    let docs = load("offsets.yaml");
    assert_eq!(docs.len(), 2);
    docs.iter().for_each(round_trip);
    let Document::OffsetReset(kor) = &docs[0] else {
        panic!("not an offset reset")
    };
    let s = &kor.spec;
    assert_eq!(s.consumer_groups, ["a", "b"]);
    assert_eq!(s.reset_strategy, ResetStrategy::FromMapping);
    assert_eq!(s.topics, ["orders*"]);
    let m = s.offset_mapping_ref.as_ref().unwrap();
    assert_eq!(m.restore_name.as_deref(), Some("full-restore"));
    assert_eq!(m.pvc_name.as_deref(), Some("backups"));
    assert_eq!(s.parallelism, 5);
    assert!(s.dry_run && s.continue_on_error && !s.snapshot_before_reset);

    let Document::OffsetRollback(korb) = &docs[1] else {
        panic!("not an offset rollback")
    };
    let s = &korb.spec;
    assert_eq!(s.snapshot_ref.name.as_deref(), Some("snap-1"));
    assert_eq!(s.snapshot_ref.restore_ref.as_deref(), Some("full-restore"));
    assert_eq!(
        s.snapshot_ref.offset_reset_ref.as_deref(),
        Some("full-reset")
    );
    assert_eq!(s.consumer_groups, ["a"]);
    assert!(s.dry_run && !s.verify_after_rollback);
}

#[test]
fn validation_every_field() {
    let docs = load("validation.yaml");
    let Document::Validation(kbv) = &docs[0] else {
        panic!("not a validation")
    };
    round_trip(&docs[0]);
    let s = &kbv.spec;
    assert!(s.kafka_cluster.is_some());
    assert_eq!(s.checks.message_count.fail_threshold, 10);
    assert!(!s.checks.offset_range.enabled);
    assert_eq!(
        s.checks.consumer_group_offsets.consumer_groups,
        ["order-processor"]
    );
    let wh = &s.checks.custom_webhooks[0];
    assert_eq!(
        (wh.name.as_str(), wh.timeout_secs, wh.expected_status_code),
        ("ledger-check", 30, 204)
    );
    let ev = s.evidence.as_ref().unwrap();
    assert_eq!(ev.formats, [EvidenceFormat::Json, EvidenceFormat::Pdf]);
    let key = ev.signing.as_ref().unwrap().key_secret.as_ref().unwrap();
    assert_eq!(
        (key.private_key_key.as_str(), key.public_key_key.as_str()),
        ("key.pem", "pub.pem")
    );
    let gcs = ev.storage.as_ref().unwrap().gcs.as_ref().unwrap();
    assert_eq!(
        gcs.credentials_secret
            .as_ref()
            .unwrap()
            .service_account_json_key,
        "SERVICE_ACCOUNT_JSON"
    );
    assert_eq!(ev.retention_days, 365);
    let n = s.notifications.as_ref().unwrap();
    assert_eq!(n.slack.as_ref().unwrap().webhook_secret.key, "webhook-url");
    let pd = n.pagerduty.as_ref().unwrap();
    assert_eq!(
        (pd.routing_key_secret.key.as_str(), pd.severity),
        ("rk", PagerDutySeverity::Critical)
    );
    assert_eq!(s.time_zone.as_deref(), Some("America/New_York"));
}

#[test]
fn list_empty_documents_and_secrets() {
    let docs = load("list-and-secrets.yaml");
    let kinds: Vec<&str> = docs.iter().map(Document::kind).collect();
    assert_eq!(kinds, ["KafkaBackup", "Secret"]);
    let Document::Backup(kb) = &docs[0] else {
        panic!("not a backup")
    };
    let az = kb.spec.storage.azure.as_ref().unwrap();
    let sas = az.sas_token_secret.as_ref().unwrap();
    assert_eq!(sas.sas_token_key, "AZURE_SAS_TOKEN");
    let secrets = Secrets::from_documents(&docs);
    assert_eq!(
        secrets.get_string(&sas.name, &sas.sas_token_key).unwrap(),
        "sv=2024&sig=abc"
    );
}
