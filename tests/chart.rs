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

/// The helm binary testenv/install.sh installs (KBO_HELM, else testenv/.bin/helm).
fn helm() -> std::path::PathBuf {
    let p = std::env::var("KBO_HELM")
        .map(Into::into)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/.bin/helm"));
    assert!(
        p.exists(),
        "helm not found at {}: run testenv/install.sh (or the README's test command)",
        p.display()
    );
    p
}

/// `helm template` of the chart with `--set` values; Ok(documents) or Err(helm's stderr).
fn render(sets: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let mut cmd = std::process::Command::new(helm());
    cmd.args(["template", "rel"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kafka-backup-operator"))
        .args(["--namespace", "kbo", "--include-crds"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect())
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The container args of the rendered Deployment, checked against the binary's own parser.
fn operator_args(docs: &[serde_json::Value]) -> Vec<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    let d: Deployment = serde_json::from_value(of_kind(docs, "Deployment")[0].clone()).unwrap();
    let pod = d.spec.template.spec.unwrap();
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    let argv = std::iter::once("kafka-backup-operator".to_string()).chain(args.iter().cloned());
    if let Err(e) = <kafka_backup_operator::cli::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("the chart passes flags the operator rejects: {args:?}\n{e}");
    }
    args
}

/// The chart lints and renders with helm (v3.19.0), every object deserialises into its
/// Kubernetes type, and the Deployment's flags are ones the operator binary accepts.
#[test]
fn the_chart_renders_with_helm_for_all_and_for_listed_namespaces() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kafka-backup-operator");
    let lint = std::process::Command::new(helm())
        .arg("lint")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // defaults: all namespaces (ClusterRole), leader election with its Lease Role
    let docs = render(&[]).unwrap();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        fn check<T: serde::de::DeserializeOwned>(d: &serde_json::Value) -> Result<(), String> {
            serde_json::from_value::<T>(d.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
        let r = match kind {
            "Deployment" => check::<apps::Deployment>(d),
            "Service" => check::<core::Service>(d),
            "ServiceAccount" => check::<core::ServiceAccount>(d),
            "ClusterRole" => check::<rbac::ClusterRole>(d),
            "Role" => check::<rbac::Role>(d),
            "ClusterRoleBinding" => check::<rbac::ClusterRoleBinding>(d),
            "RoleBinding" => check::<rbac::RoleBinding>(d),
            "CustomResourceDefinition" => check::<ext::CustomResourceDefinition>(d),
            other => panic!("unexpected kind {other} in the default render"),
        };
        if let Err(e) = r {
            panic!("{kind} does not deserialise ({e}): {d}");
        }
    }
    assert_eq!(of_kind(&docs, "CustomResourceDefinition").len(), 5);
    assert_eq!(of_kind(&docs, "ClusterRole").len(), 1);
    assert_eq!(of_kind(&docs, "Role").len(), 1, "only the Lease Role");
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    let args = operator_args(&docs);
    assert!(args.contains(&"--leader-election".to_string()), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--namespaces")),
        "{args:?}"
    );

    // two watched namespaces: a Role and RoleBinding in each, no cluster-wide grant
    let docs = render(&[
        "watchNamespaces={team-a,team-b}",
        "metrics.serviceMonitor.enabled=true",
        "leaderElection=false",
    ])
    .unwrap();
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    let role_ns: Vec<&str> = of_kind(&docs, "Role")
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(role_ns, ["team-a", "team-b"]);
    assert_eq!(of_kind(&docs, "RoleBinding").len(), 2);
    for b in of_kind(&docs, "RoleBinding") {
        assert_eq!(b["subjects"][0]["namespace"], "kbo", "{b}");
    }
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    let args = operator_args(&docs);
    assert!(
        args.contains(&"--namespaces=team-a,team-b".to_string()),
        "{args:?}"
    );
    assert!(!args.contains(&"--leader-election".to_string()), "{args:?}");
}

#[test]
fn bad_values_are_refused_by_the_schema() {
    for (set, needle) in [
        ("replicaCount=-1", "replicaCount"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
        ("logFormat=xml", "logFormat"),
        ("watchNamespace=old-key", "watchNamespace"),
    ] {
        let err = render(&[set]).expect_err(set);
        assert!(err.contains(needle), "{set}: {err}");
    }
}

/// The operator's environment variable `name` in the rendered Deployment, if set.
fn operator_env(docs: &[serde_json::Value], name: &str) -> Option<String> {
    let env = &of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    env.as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap_or_default().to_string())
}

/// The shard Jobs' settings (`KBO_JOB_DEFAULTS`) are what the operator parses: the operator's
/// image, pull policy, host network and extra environment, the runner ServiceAccount; the
/// Job and Pod rights come with them and go with `jobs.enabled=false`.
#[test]
fn the_shard_job_defaults_carry_the_operators_image_and_pod_settings() {
    use kafka_backup_operator::operator::jobs::JobDefaults;
    let docs = render(&[
        "image.repository=reg.example/kbo",
        "image.tag=9.9",
        "hostNetwork=true",
        "extraEnv[0].name=HTTPS_PROXY",
        "extraEnv[0].value=http://proxy:3128",
        "jobs.serviceAccountName=kbo-runner",
    ])
    .unwrap();
    let json = operator_env(&docs, "KBO_JOB_DEFAULTS").expect("KBO_JOB_DEFAULTS is set");
    let d = JobDefaults::parse(&json).unwrap();
    assert_eq!(d.image, "reg.example/kbo:9.9");
    assert_eq!(d.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert!(d.host_network);
    assert_eq!(d.service_account_name.as_deref(), Some("kbo-runner"));
    let env: Vec<(&str, Option<&str>)> = (d.env.iter())
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("KBO_LOG_FORMAT", Some("json")),
            ("HTTPS_PROXY", Some("http://proxy:3128"))
        ]
    );
    let role = serde_json::to_string(&of_kind(&docs, "ClusterRole")[0]["rules"]).unwrap();
    for r in ["\"jobs\"", "\"pods/log\"", "\"persistentvolumeclaims\""] {
        assert!(role.contains(r), "{r} in {role}");
    }
    let off = render(&["jobs.enabled=false"]).unwrap();
    assert_eq!(operator_env(&off, "KBO_JOB_DEFAULTS"), None);
    let role = serde_json::to_string(&of_kind(&off, "ClusterRole")[0]["rules"]).unwrap();
    assert!(!role.contains("\"jobs\""), "{role}");
    assert!(
        render(&["jobs.shards=3"]).is_err(),
        "unknown jobs values are refused"
    );
}
