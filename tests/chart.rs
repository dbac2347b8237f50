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

/// flake.nix parses (rnix, the Nix parser of nix-community; nix itself does not install here).
#[test]
fn flake_nix_parses_and_has_the_dev_shell_and_cluster_app() {
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("flake.nix")).unwrap();
    let parsed = rnix::Root::parse(&src);
    assert!(
        parsed.errors().is_empty(),
        "flake.nix does not parse: {:?}",
        parsed.errors()
    );
    for needle in [
        "devShells.default",
        "apps.cluster",
        "kind",
        "kubernetes-helm",
        "kcat",
        "redpanda-client",
        "minio-client",
    ] {
        assert!(src.contains(needle), "flake.nix lacks {needle}");
    }
    // and a broken file is caught
    assert!(!rnix::Root::parse("{ a = ; }").errors().is_empty());
}
