//! The committed CRDs (`crds/kafka.oso.sh_crds.yaml`) must equal what the code generates, and
//! the generated CRDs must carry the names, columns, defaults, enums and CEL rules the API
//! promises.
//!
//! Regenerate with `KBO_UPDATE_CRDS=1 cargo test --test api_crds` (or
//! `cargo run -- crd > crds/kafka.oso.sh_crds.yaml` once the binary wires the subcommand).

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kafka_backup_operator::api::{all_crds, all_crds_yaml};

fn crd_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/kafka.oso.sh_crds.yaml")
}

#[test]
fn crds_are_fresh() {
    let generated = all_crds_yaml();
    let path = crd_file();
    if std::env::var("KBO_UPDATE_CRDS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).expect("write crds file");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/ is stale: run `cargo run -- crd > crds/kafka.oso.sh_crds.yaml` \
         (or `KBO_UPDATE_CRDS=1 cargo test --test api_crds`)"
    );
}

fn by_kind(kind: &str) -> CustomResourceDefinition {
    all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn schema(kind: &str) -> JSONSchemaProps {
    by_kind(kind).spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap()
}

fn prop<'a>(s: &'a JSONSchemaProps, path: &str) -> &'a JSONSchemaProps {
    path.split('.').fold(s, |s, p| {
        s.properties
            .as_ref()
            .and_then(|m| m.get(p))
            .unwrap_or_else(|| panic!("no property {p} in path {path}"))
    })
}

fn default_of(s: &JSONSchemaProps) -> Option<serde_json::Value> {
    s.default.as_ref().map(|d| d.0.clone())
}

#[test]
fn names_scope_and_subresources() {
    let expected = [
        ("KafkaBackup", "kafkabackups", "kb"),
        ("KafkaRestore", "kafkarestores", "kr"),
        ("KafkaOffsetReset", "kafkaoffsetresets", "kor"),
        ("KafkaOffsetRollback", "kafkaoffsetrollbacks", "korb"),
        ("KafkaBackupValidation", "kafkabackupvalidations", "kbv"),
    ];
    let crds = all_crds();
    assert_eq!(crds.len(), 5);
    for ((kind, plural, short), crd) in expected.iter().zip(&crds) {
        assert_eq!(crd.spec.names.kind, *kind, "stable order");
        assert_eq!(crd.spec.group, "kafka.oso.sh");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.plural, *plural);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(&*format!("{plural}.kafka.oso.sh"))
        );
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has the status subresource"
        );
    }
}

#[test]
fn printer_columns() {
    // every kind: Ready (its condition) and Message (-o wide) before Age. A time ahead (the
    // next scheduled run) is a string column: kubectl prints a future "date" as <invalid>.
    const READY: &str = ".status.conditions[?(@.type==\"Ready\")].status";
    type Cols = &'static [(&'static str, &'static str, &'static str)];
    let expected: [(&str, Cols); 5] = [
        (
            "KafkaBackup",
            &[
                ("Phase", "string", ".status.phase"),
                ("Last Backup", "date", ".status.lastBackupTime"),
                ("Next Backup", "string", ".status.nextScheduledBackup"),
                ("Records", "integer", ".status.recordsProcessed"),
                (
                    "Recoverable From",
                    "date",
                    ".status.firstRecoverabilityPoint",
                ),
                ("Recoverable To", "date", ".status.lastRecoverabilityPoint"),
                ("Ready", "string", READY),
                ("Message", "string", ".status.message"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "KafkaRestore",
            &[
                ("Phase", "string", ".status.phase"),
                ("Progress", "number", ".status.progressPercent"),
                ("Records", "integer", ".status.recordsRestored"),
                ("Ready", "string", READY),
                ("Message", "string", ".status.message"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "KafkaOffsetReset",
            &[
                ("Phase", "string", ".status.phase"),
                ("Groups", "integer", ".status.groupsTotal"),
                ("Failed", "integer", ".status.groupsFailed"),
                ("Ready", "string", READY),
                ("Message", "string", ".status.message"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "KafkaOffsetRollback",
            &[
                ("Phase", "string", ".status.phase"),
                ("Groups", "integer", ".status.groupsRolledBack"),
                ("Ready", "string", READY),
                ("Message", "string", ".status.message"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "KafkaBackupValidation",
            &[
                ("Phase", "string", ".status.phase"),
                ("Result", "string", ".status.validationResult"),
                ("Checks", "integer", ".status.checksTotal"),
                ("Last Validation", "date", ".status.lastValidationTime"),
                ("Next", "string", ".status.nextScheduledValidation"),
                ("Ready", "string", READY),
                ("Message", "string", ".status.message"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ],
        ),
    ];
    for (kind, cols) in expected {
        let crd = by_kind(kind);
        let got: Vec<(String, String, String)> = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path))
            .collect();
        let want: Vec<(String, String, String)> = cols
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want, "{kind}");
        let cols = crd.spec.versions[0].additional_printer_columns.clone();
        let message = cols
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "Message");
        assert_eq!(
            message.and_then(|c| c.priority),
            Some(1),
            "{kind}: Message only in -o wide"
        );
    }
}

#[test]
fn defaults_enums_and_required_fields_are_in_the_schema() {
    let kb = schema("KafkaBackup");
    let spec = prop(&kb, "spec");
    let mut required = spec.required.clone().unwrap_or_default();
    required.sort();
    assert_eq!(required, ["kafkaCluster", "storage", "topics"]);
    assert_eq!(prop(spec, "topics").min_items, Some(1));
    let conn = prop(spec, "kafkaCluster.connection.connectionsPerBroker");
    assert_eq!(default_of(conn), Some(serde_json::json!(4)));
    assert_eq!(conn.minimum, Some(1.0));
    let proto = prop(spec, "kafkaCluster.securityProtocol");
    let values: Vec<serde_json::Value> = proto
        .enum_
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(
        values,
        ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].map(serde_json::Value::from)
    );
    assert_eq!(default_of(proto), Some(serde_json::json!("PLAINTEXT")));
    let st = prop(spec, "storage.storageType");
    assert_eq!(st.enum_.as_ref().map(Vec::len), Some(5));
    assert_eq!(default_of(st), Some(serde_json::json!("pvc")));
    assert_eq!(
        default_of(prop(spec, "compression")),
        Some(serde_json::json!("zstd"))
    );
    assert_eq!(
        default_of(prop(spec, "segmentMaxBytes")),
        Some(serde_json::json!(134_217_728))
    );
    assert_eq!(
        default_of(prop(spec, "storage.s3.credentialsSecret.accessKeyIdKey")),
        Some(serde_json::json!("AWS_ACCESS_KEY_ID"))
    );
    let kr = schema("KafkaRestore");
    let acks = prop(&kr, "spec.produceAcks");
    assert_eq!((acks.minimum, acks.maximum), (Some(-1.0), Some(1.0)));
    assert_eq!(default_of(acks), Some(serde_json::json!(-1)));
    let kor = schema("KafkaOffsetReset");
    let strat = prop(&kor, "spec.resetStrategy");
    // the reference's five, and shift-by (ours)
    assert_eq!(strat.enum_.as_ref().map(Vec::len), Some(6));
    assert!(
        strat
            .enum_
            .as_ref()
            .unwrap()
            .iter()
            .any(|v| v.0 == serde_json::json!("shift-by")),
        "{:?}",
        strat.enum_
    );
    // Conditions are a map list keyed by type, for server-side apply.
    let conds = prop(&kb, "status.conditions");
    assert_eq!(conds.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        conds.x_kubernetes_list_map_keys.as_deref(),
        Some(&["type".to_string()][..])
    );
}

#[test]
fn cel_rules_are_emitted() {
    let kb = schema("KafkaBackup");
    let rules: Vec<String> = prop(&kb, "spec")
        .x_kubernetes_validations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.rule)
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("self.continuous") && r.contains("self.stopAtCurrentOffsets")),
        "{rules:?}"
    );
    let storage_rules = prop(&kb, "spec.storage")
        .x_kubernetes_validations
        .clone()
        .unwrap_or_default();
    assert_eq!(storage_rules.len(), 5);
    let s3_rules = prop(&kb, "spec.storage.s3")
        .x_kubernetes_validations
        .clone()
        .unwrap_or_default();
    assert!(s3_rules[0].rule.contains("allowHttp"));
    let kc_rules = prop(&kb, "spec.kafkaCluster")
        .x_kubernetes_validations
        .clone()
        .unwrap_or_default();
    assert!(kc_rules[0].rule.contains("saslSecret"));
    let kor = schema("KafkaOffsetReset");
    assert_eq!(
        prop(&kor, "spec")
            .x_kubernetes_validations
            .as_ref()
            .map(Vec::len),
        Some(3) // to-timestamp, to-offset and shift-by need their value
    );
}

#[test]
fn schema_has_no_constructs_the_api_server_rejects() {
    // Structural schemas may not use these; kube's rewriter should have removed them.
    let yaml = all_crds_yaml();
    for bad in [
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "additionalProperties: false",
        "uniqueItems",
    ] {
        assert!(!yaml.contains(bad), "CRD YAML contains {bad}");
    }
    // Every document parses back.
    let docs: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 5);
}
