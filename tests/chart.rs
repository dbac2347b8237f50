//! The Helm chart stays consistent: its CRDs are the generated ones, its values file parses and
//! carries every key its schema requires, and the Deployment runs as non-root with a
//! read-only root filesystem and probes on the endpoints the operator serves.
use std::path::Path;

fn chart(p: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/kafka-backup-operator")
            .join(p),
    )
    .unwrap()
}

#[test]
fn chart_crds_are_the_generated_ones() {
    assert_eq!(
        chart("crds/kafka.oso.sh_crds.yaml"),
        kafka_backup_operator::api::all_crds_yaml(),
        "charts/kafka-backup-operator/crds is stale: cp crds/kafka.oso.sh_crds.yaml charts/kafka-backup-operator/crds/"
    );
}

#[test]
fn values_match_the_schema_and_the_deployment_is_locked_down() {
    let schema: serde_json::Value = serde_json::from_str(&chart("values.schema.json")).unwrap();
    let values: serde_json::Value = serde_yaml_ng::from_str(&chart("values.yaml")).unwrap();
    let allowed = schema["properties"].as_object().unwrap();
    for k in values.as_object().unwrap().keys() {
        assert!(
            allowed.contains_key(k),
            "values.yaml key {k} is not in values.schema.json"
        );
    }
    for k in schema["required"].as_array().unwrap() {
        assert!(
            values.get(k.as_str().unwrap()).is_some(),
            "values.yaml lacks required {k}"
        );
    }
    let d = chart("templates/deployment.yaml");
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "path: /healthz",
        "path: /readyz",
        "allowPrivilegeEscalation: false",
    ] {
        assert!(d.contains(needle), "deployment lacks {needle}");
    }
    let rbac = chart("templates/rbac.yaml");
    assert!(!rbac.contains("\"*\""), "no wildcard RBAC");
    assert!(
        rbac.contains("resources: [\"secrets\"]\n    verbs: [\"get\"]"),
        "Secrets are read-only, get only"
    );
}
