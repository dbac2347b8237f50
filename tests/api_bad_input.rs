//! Bad input is refused with an error that names the field and says how to fix it.
//!
//! Each case runs the full path a user hits (`load_and_validate`: YAML -> typed -> validated)
//! and asserts that the error text contains every expected fragment: the field (path) and a
//! hint.

use kafka_backup_operator::api::{Document, load_and_validate, load_documents};

const BACKUP: &str = r#"apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: b
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  topics:
    - orders
  storage:
    storageType: s3
    s3:
      bucket: kafka-backups
      region: us-west-2
"#;

const RESTORE: &str = r#"apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata:
  name: r
spec:
  backupRef:
    name: b
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
"#;

const RESET: &str = r#"apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaOffsetReset
metadata:
  name: o
spec:
  consumerGroups: [g1]
  kafkaCluster:
    bootstrapServers: [kafka:9092]
"#;

const ROLLBACK: &str = r#"apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaOffsetRollback
metadata:
  name: rb
spec:
  kafkaCluster:
    bootstrapServers: [kafka:9092]
"#;

const VALIDATION: &str = r#"apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackupValidation
metadata:
  name: v
spec:
  backupRef:
    name: b
"#;

/// `base` with `spec_extra` appended under `spec:` (2-space indented lines).
fn with(base: &str, spec_extra: &str) -> String {
    format!("{base}{spec_extra}")
}

/// `base` with one exact substring replaced (panics if absent, so cases cannot silently rot).
fn replace(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "fixture lacks {from:?}");
    base.replacen(from, to, 1)
}

struct Case {
    name: &'static str,
    yaml: String,
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed YAML",
            yaml: replace(BACKUP, "  topics:\n    - orders\n", "  topics: [orders\n"),
            expect: &[
                "bad.yaml",
                "invalid YAML",
                "line",
                "column",
                "fix the syntax",
            ],
        },
        Case {
            name: "tab indentation",
            yaml: replace(BACKUP, "  topics:\n", "\ttopics:\n"),
            expect: &["bad.yaml", "invalid YAML", "line", "tabs"],
        },
        Case {
            name: "unknown field",
            yaml: with(BACKUP, "  topicz:\n    - payments\n"),
            expect: &[
                "bad.yaml",
                "document 1",
                "KafkaBackup \"b\"",
                "spec",
                "topicz",
                "expected one of",
                "`topics`",
                "line",
                "spelling",
            ],
        },
        Case {
            name: "unknown nested field",
            yaml: replace(
                BACKUP,
                "      region: us-west-2\n",
                "      region: us-west-2\n      pathstyle: true\n",
            ),
            expect: &["spec.storage.s3", "pathstyle", "`pathStyle`", "camelCase"],
        },
        Case {
            name: "invalid cron",
            yaml: with(BACKUP, "  schedule: \"every hour\"\n"),
            expect: &["spec.schedule", "every hour", "\"0 0 * * * * *\""],
        },
        Case {
            name: "cron with too many fields",
            yaml: with(BACKUP, "  schedule: \"0 0 * * * * * *\"\n"),
            expect: &[
                "spec.schedule",
                "8 fields",
                "expected 5, 6 or 7",
                "\"0 0 * * * * *\"",
            ],
        },
        Case {
            name: "unknown securityProtocol",
            yaml: replace(
                BACKUP,
                "    bootstrapServers:\n",
                "    securityProtocol: SASL\n    bootstrapServers:\n",
            ),
            expect: &[
                "securityProtocol",
                "unknown variant `SASL`",
                "SASL_SSL",
                "one of the listed values",
            ],
        },
        Case {
            name: "lowercase securityProtocol",
            yaml: replace(
                BACKUP,
                "    bootstrapServers:\n",
                "    securityProtocol: ssl\n    bootstrapServers:\n",
            ),
            expect: &["securityProtocol", "`SSL`", "case-sensitive"],
        },
        Case {
            name: "SASL without saslSecret",
            yaml: replace(
                BACKUP,
                "    bootstrapServers:\n",
                "    securityProtocol: SASL_SSL\n    bootstrapServers:\n",
            ),
            expect: &["spec.kafkaCluster.saslSecret", "SASL_SSL", "mechanism"],
        },
        Case {
            name: "pitr start after end",
            yaml: with(
                RESTORE,
                "  pitr:\n    startTime: \"2024-12-02T00:00:00Z\"\n    endTime: \"2024-12-01T12:00:00Z\"\n",
            ),
            expect: &["spec.pitr", "starts after it ends", "swap"],
        },
        Case {
            name: "pitr epoch start after RFC 3339 end",
            yaml: with(
                RESTORE,
                "  pitr:\n    startTimestamp: 1733097600000\n    endTime: \"2024-12-01T12:00:00Z\"\n",
            ),
            expect: &["spec.pitr", "starts after it ends", "epoch forms win"],
        },
        Case {
            name: "pitr time not RFC 3339",
            yaml: with(RESTORE, "  pitr:\n    endTime: \"2024-12-01 12:00\"\n"),
            expect: &["spec.pitr.endTime", "RFC 3339", "\"2024-12-01T12:00:00Z\""],
        },
        Case {
            name: "pitr start offset negative",
            yaml: with(
                RESTORE,
                "  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: -1}]\n",
            ),
            expect: &[
                "spec.pitr.startOffsets[0].offset",
                "is -1",
                "offsets start at 0",
            ],
        },
        Case {
            name: "pitr end offset partition negative",
            yaml: with(
                RESTORE,
                "  pitr:\n    endOffsets: [{topic: orders, partition: -2, offset: 5}]\n",
            ),
            expect: &[
                "spec.pitr.endOffsets[0].partition",
                "is -2",
                "partitions start at 0",
            ],
        },
        Case {
            name: "pitr offset bound topic not a topic name",
            yaml: with(
                RESTORE,
                "  pitr:\n    endOffsets: [{topic: \"or ders\", partition: 0, offset: 5}]\n",
            ),
            expect: &["spec.pitr.endOffsets[0].topic", "source topic name"],
        },
        Case {
            name: "pitr offset bound named twice",
            yaml: with(
                RESTORE,
                "  pitr:\n    startOffsets:\n      - {topic: orders, partition: 1, offset: 5}\n      - {topic: orders, partition: 1, offset: 9}\n",
            ),
            expect: &[
                "spec.pitr.startOffsets[1]",
                "names orders/1 again",
                "startOffsets[0]",
                "remove one",
            ],
        },
        Case {
            name: "pitr end offset below start",
            yaml: with(
                RESTORE,
                "  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 9}]\n    endOffsets: [{topic: orders, partition: 0, offset: 4}]\n",
            ),
            expect: &[
                "spec.pitr.endOffsets[0]",
                "below its start offset 9",
                "swap",
            ],
        },
        Case {
            name: "pitr empty offset range",
            yaml: with(
                RESTORE,
                "  pitr:\n    startOffsets: [{topic: orders, partition: 0, offset: 9}]\n    endOffsets: [{topic: orders, partition: 0, offset: 9}]\n",
            ),
            expect: &[
                "spec.pitr.endOffsets[0]",
                "9..9 is empty",
                "set the end to 10",
                "allowEmpty",
            ],
        },
        Case {
            name: "s3 block without bucket",
            yaml: replace(BACKUP, "      bucket: kafka-backups\n", ""),
            expect: &[
                "spec.storage.s3",
                "missing field `bucket`",
                "add the required field",
            ],
        },
        Case {
            name: "s3 with empty bucket",
            yaml: replace(BACKUP, "bucket: kafka-backups", "bucket: \"\""),
            expect: &["spec.storage.s3.bucket", "must not be empty", "bucket name"],
        },
        Case {
            name: "storageType s3 without s3 block",
            yaml: replace(
                BACKUP,
                "    s3:\n      bucket: kafka-backups\n      region: us-west-2\n",
                "",
            ),
            expect: &[
                "spec.storage.s3",
                "is missing",
                "storageType is s3",
                "bucket:",
            ],
        },
        Case {
            name: "block for another storage type",
            yaml: with(BACKUP, "").replace(
                "  storage:\n",
                "  storage:\n    filesystem:\n      path: /tmp/x\n",
            ),
            expect: &["spec.storage.filesystem", "storageType is s3", "ignored"],
        },
        Case {
            name: "http endpoint without allowHttp",
            yaml: replace(
                BACKUP,
                "      region: us-west-2\n",
                "      region: us-west-2\n      endpoint: http://minio:9000\n",
            ),
            expect: &["spec.storage.s3.endpoint", "allowHttp: true", "https://"],
        },
        Case {
            name: "continuous and stopAtCurrentOffsets",
            yaml: with(BACKUP, "  continuous: true\n  stopAtCurrentOffsets: true\n"),
            expect: &[
                "spec.continuous",
                "stopAtCurrentOffsets",
                "mutually exclusive",
            ],
        },
        Case {
            name: "bootstrap server without port",
            yaml: replace(BACKUP, "- kafka:9092", "- kafka"),
            expect: &[
                "spec.kafkaCluster.bootstrapServers[0]",
                "no port",
                "\"kafka:9092\"",
            ],
        },
        Case {
            name: "bootstrap server with non-numeric port",
            yaml: replace(BACKUP, "- kafka:9092", "- kafka:nine"),
            expect: &[
                "spec.kafkaCluster.bootstrapServers[0]",
                "\"nine\"",
                "not a number",
            ],
        },
        Case {
            name: "no bootstrap servers",
            yaml: replace(
                BACKUP,
                "    bootstrapServers:\n      - kafka:9092\n",
                "    bootstrapServers: []\n",
            ),
            expect: &[
                "spec.kafkaCluster.bootstrapServers",
                "must not be empty",
                "host:port",
            ],
        },
        Case {
            name: "produceAcks 2",
            yaml: with(RESTORE, "  produceAcks: 2\n"),
            expect: &["spec.produceAcks", "2 is not allowed", "-1"],
        },
        Case {
            name: "no topics",
            yaml: replace(BACKUP, "  topics:\n    - orders\n", "  topics: []\n"),
            expect: &["spec.topics", "must not be empty", "topic name or glob"],
        },
        Case {
            name: "invalid topic name",
            yaml: replace(BACKUP, "    - orders\n", "    - \"my topic\"\n"),
            expect: &["spec.topics[0]", "' '", "letters, digits"],
        },
        Case {
            name: "invalid glob",
            yaml: replace(BACKUP, "    - orders\n", "    - \"orders-[\"\n"),
            expect: &["spec.topics[0]", "not a valid glob"],
        },
        Case {
            name: "invalid restore regex",
            yaml: with(RESTORE, "  topics:\n    - \"~orders-(\"\n"),
            expect: &["spec.topics[0]", "regular expression", "~orders-(eu|us)"],
        },
        Case {
            name: "unknown time zone",
            yaml: with(
                BACKUP,
                "  schedule: \"0 0 * * * *\"\n  timeZone: Mars/Olympus\n",
            ),
            expect: &["spec.timeZone", "Mars/Olympus", "Europe/Berlin"],
        },
        Case {
            name: "connectionsPerBroker 0",
            yaml: replace(
                BACKUP,
                "      - kafka:9092\n",
                "      - kafka:9092\n    connection:\n      connectionsPerBroker: 0\n",
            ),
            expect: &[
                "spec.kafkaCluster.connection.connectionsPerBroker",
                "at least 1",
                "default 4",
            ],
        },
        Case {
            name: "segmentMaxBytes below 1 MiB",
            yaml: with(BACKUP, "  segmentMaxBytes: 1000\n"),
            expect: &["spec.segmentMaxBytes", "at least 1048576", "1 MiB"],
        },
        Case {
            name: "compressionLevel out of range",
            yaml: with(BACKUP, "  compression: lz4\n  compressionLevel: 20\n"),
            expect: &["spec.compressionLevel", "lz4", "0..=12"],
        },
        Case {
            name: "retention without limits",
            yaml: with(BACKUP, "  retention:\n    enabled: true\n"),
            expect: &["spec.retention", "maxAgeDays", "keepLast"],
        },
        Case {
            name: "partitionMapping key not a number",
            yaml: with(RESTORE, "  partitionMapping:\n    first: 1\n"),
            expect: &[
                "spec.partitionMapping.first",
                "not a partition number",
                "\"0\": 1",
            ],
        },
        Case {
            name: "azure with two credential secrets",
            yaml: replace(
                BACKUP,
                "    storageType: s3\n    s3:\n      bucket: kafka-backups\n      region: us-west-2\n",
                "    storageType: azure\n    azure:\n      container: c\n      accountName: a\n      credentialsSecret: {name: k}\n      sasTokenSecret: {name: s}\n",
            ),
            expect: &[
                "spec.storage.azure",
                "credentialsSecret and sasTokenSecret",
                "mutually exclusive",
            ],
        },
        Case {
            name: "to-timestamp without resetTimestamp",
            yaml: with(RESET, "  resetStrategy: to-timestamp\n"),
            expect: &["spec.resetTimestamp", "to-timestamp", "epoch milliseconds"],
        },
        Case {
            name: "unknown resetStrategy",
            yaml: with(RESET, "  resetStrategy: earliest\n"),
            expect: &["resetStrategy", "unknown variant `earliest`", "to-earliest"],
        },
        Case {
            name: "restore offsetReset to-timestamp",
            yaml: with(
                RESTORE,
                "  offsetReset:\n    enabled: true\n    consumerGroups: [g]\n    strategy: to-timestamp\n",
            ),
            expect: &[
                "spec.offsetReset.strategy",
                "to-timestamp",
                "KafkaOffsetReset",
            ],
        },
        Case {
            name: "rollback without a snapshot",
            yaml: with(ROLLBACK, "  snapshotRef: {}\n"),
            expect: &["spec.snapshotRef", "names no snapshot", "restoreRef"],
        },
        Case {
            name: "rollback without snapshotRef",
            yaml: ROLLBACK.to_string(),
            expect: &[
                "spec",
                "missing field `snapshotRef`",
                "add the required field",
            ],
        },
        Case {
            name: "signing without key",
            yaml: with(
                VALIDATION,
                "  evidence:\n    signing:\n      enabled: true\n",
            ),
            expect: &["spec.evidence.signing.keySecret", "ECDSA P-256"],
        },
        Case {
            name: "webhook with a non-http URL",
            yaml: with(
                VALIDATION,
                "  checks:\n    customWebhooks:\n      - name: w\n        url: ftp://x\n",
            ),
            expect: &["spec.checks.customWebhooks[0].url", "https://"],
        },
        Case {
            name: "webhook timeout 0",
            yaml: with(
                VALIDATION,
                "  checks:\n    customWebhooks:\n      - name: w\n        url: https://x\n        timeoutSecs: 0\n",
            ),
            expect: &["spec.checks.customWebhooks[0].timeoutSecs", "at least 1"],
        },
        Case {
            name: "validation schedule",
            yaml: with(VALIDATION, "  schedule: \"60 * * * *\"\n"),
            expect: &["spec.schedule", "\"0 0 * * * * *\""],
        },
        Case {
            name: "repartitioning to 0 partitions",
            yaml: with(
                RESTORE,
                "  repartitioning:\n    my_topic:\n      targetPartitions: 0\n",
            ),
            expect: &[
                "spec.repartitioning.my_topic.targetPartitions",
                "at least 1",
                "partition count",
            ],
        },
        Case {
            name: "wrong type",
            yaml: replace(BACKUP, "  topics:\n    - orders\n", "  topics: orders\n"),
            expect: &["spec.topics", "invalid type", "- item"],
        },
        Case {
            name: "unknown kind",
            yaml: replace(BACKUP, "kind: KafkaBackup", "kind: KafkaBakup"),
            expect: &[
                "bad.yaml",
                "document 1",
                "\"KafkaBakup\"",
                "not supported",
                "KafkaBackup",
            ],
        },
        Case {
            name: "wrong apiVersion",
            yaml: replace(BACKUP, "kafka.oso.sh/v1alpha1", "kafka.oso.sh/v1"),
            expect: &[
                "\"kafka.oso.sh/v1\"",
                "not supported",
                "kafka.oso.sh/v1alpha1",
            ],
        },
        Case {
            name: "missing metadata.name",
            yaml: replace(BACKUP, "metadata:\n  name: b\n", "metadata: {}\n"),
            expect: &["metadata.name", "is missing"],
        },
    ]
}

#[test]
fn every_bad_input_names_the_field_and_a_fix() {
    let mut failures = Vec::new();
    for case in cases() {
        match load_and_validate(&case.yaml, "bad.yaml") {
            Ok(_) => failures.push(format!("[{}] was accepted:\n{}", case.name, case.yaml)),
            Err(e) => {
                let text = e.to_string();
                // Shown with `--nocapture`, to review the wording.
                eprintln!("[{}]\n{text}\n", case.name);
                let missing: Vec<&&str> =
                    case.expect.iter().filter(|f| !text.contains(**f)).collect();
                if !missing.is_empty() {
                    failures.push(format!("[{}] error lacks {missing:?}:\n{text}", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_base_fixtures_are_valid() {
    // Guards the table: each case differs from a valid document by exactly its defect.
    for base in [
        BACKUP,
        RESTORE,
        &with(RESET, "  resetStrategy: to-latest\n"),
    ] {
        load_and_validate(base, "ok.yaml").unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn all_errors_of_a_document_are_reported_together() {
    let yaml = with(
        &replace(BACKUP, "- kafka:9092", "- kafka"),
        "  schedule: nope\n  continuous: true\n",
    );
    let doc = load_documents(&yaml, "x.yaml").unwrap().pop().unwrap();
    let errs = doc.validate().unwrap_err();
    for field in ["spec.kafkaCluster.bootstrapServers[0]", "spec.schedule"] {
        assert!(errs.has_field(field), "{field} missing in:\n{errs}");
    }
    // One `field: message` per line.
    let text = errs.to_string();
    assert_eq!(text.lines().count(), errs.len());
    assert!(text.lines().all(|l| l.starts_with("spec.")), "{text}");
}

#[test]
fn partition_mapping_accepts_string_and_integer_keys() {
    for mapping in ["    \"0\": 1\n    \"2\": 0\n", "    0: 1\n    2: 0\n"] {
        let yaml = with(RESTORE, &format!("  partitionMapping:\n{mapping}"));
        let docs = load_and_validate(&yaml, "ok.yaml").unwrap_or_else(|e| panic!("{e}"));
        let Document::Restore(kr) = &docs[0] else {
            panic!("not a restore")
        };
        let parsed = kr.spec.partition_mapping_parsed().unwrap();
        assert_eq!(parsed.into_iter().collect::<Vec<_>>(), [(0, 1), (2, 0)]);
    }
}

#[test]
fn http_endpoint_is_fine_with_allow_http() {
    let yaml = replace(
        BACKUP,
        "      region: us-west-2\n",
        "      region: us-west-2\n      endpoint: http://minio:9000\n      allowHttp: true\n      pathStyle: true\n",
    );
    load_and_validate(&yaml, "ok.yaml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn invalid_document_error_names_the_file() {
    let err = load_and_validate(&replace(BACKUP, "- kafka:9092", "- kafka"), "backup.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("backup.yaml: KafkaBackup \"b\" is invalid:\n"),
        "{err}"
    );
}

#[test]
fn an_empty_offset_range_passes_with_allow_empty() {
    let y = with(
        RESTORE,
        "  pitr:\n    allowEmpty: true\n    startOffsets: [{topic: orders, partition: 0, offset: 9}]\n    endOffsets: [{topic: orders, partition: 0, offset: 9}]\n",
    );
    load_and_validate(&y, "t").unwrap();
}
