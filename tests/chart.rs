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

/// The promtool testenv/install.sh installs (KBO_PROMTOOL, else testenv/.bin/promtool).
fn promtool() -> std::path::PathBuf {
    let p = std::env::var("KBO_PROMTOOL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/.bin/promtool"));
    assert!(
        p.exists(),
        "promtool not found at {}: run testenv/install.sh (or the README's test command)",
        p.display()
    );
    p
}

/// The metric families the operator exports: its registry's `# TYPE` lines after one run of
/// each kind's recording paths (prometheus-client writes no family without a series).
fn exported_families() -> std::collections::BTreeSet<String> {
    use kafka_backup_operator::operator::http::{
        ErrorLabels, KindLabels, Metrics, ResourceLabels, ValidationLabels,
    };
    let m = Metrics::default();
    let kind = KindLabels {
        kind: "KafkaBackup".into(),
    };
    m.reconciles.get_or_create(&kind).inc();
    m.status_write_failures.get_or_create(&kind).inc();
    m.reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: "KafkaBackup".into(),
            category: "kube".into(),
            error: "conflict".into(),
        })
        .inc();
    m.run_finished_in("KafkaBackup", "ns", "failed", "kafka", 1.0, 1, 1);
    let r = ResourceLabels {
        kind: "KafkaBackup".into(),
        resource_namespace: "ns".into(),
        name: "b".into(),
    };
    m.resource_run_ended(r, true, 1_000);
    let v = ValidationLabels {
        resource_namespace: "ns".into(),
        backup: "b".into(),
        validation: "v".into(),
    };
    m.validation_finished(v, true, 1_000);
    let text = m.encode();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `kbo_` series `text` queries, checked against the operator's families (a sample name
/// is its family's with `_total`, `_bucket`, `_sum` or `_count`); returns the names found.
fn assert_series_exported(text: &str, what: &str) -> Vec<String> {
    let families = exported_families();
    let re = regex::Regex::new(r"kbo_[a-z0-9_]+").unwrap();
    let mut names: Vec<String> = re.find_iter(text).map(|m| m.as_str().into()).collect();
    names.sort();
    names.dedup();
    for n in &names {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(n);
        assert!(
            families.contains(family),
            "{what} queries {n}, which the operator does not export (it exports {families:?})"
        );
    }
    names
}

/// The chart's PrometheusRule (off by default) passes `promtool check rules`, its alerts fire
/// on the series they are written for (`promtool test rules`), and every series it and the
/// Grafana dashboard query is one the operator exports; the dashboard is valid JSON with
/// panels, in a ConfigMap with the sidecar's label.
#[test]
fn the_alerts_and_the_dashboard_query_what_the_operator_exports() {
    let off = render(&[]).unwrap();
    assert!(of_kind(&off, "PrometheusRule").is_empty() && of_kind(&off, "ConfigMap").is_empty());
    let docs = render(&[
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.labels.release=prom",
        "metrics.prometheusRule.missedBackupSeconds=3600",
        "metrics.grafanaDashboard.enabled=true",
    ])
    .unwrap();
    let rule = of_kind(&docs, "PrometheusRule")[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, serde_yaml_ng::to_string(&rule["spec"]).unwrap()).unwrap();
    let out = std::process::Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = serde_yaml_ng::to_string(&rule["spec"]).unwrap();
    let alerts = assert_series_exported(&spec, "the PrometheusRule");
    assert!(alerts.len() >= 6, "{alerts:?}");

    // the alerts fire on the series they watch: promtool's rule unit tests, on a copy whose
    // alerts keep their annotations only for KafkaBackupMissed (its templated summary is
    // checked; the others' would only be copied into the cases; `check rules` parsed them all)
    let mut bare = rule["spec"].clone();
    for group in bare["groups"].as_array_mut().unwrap() {
        for r in group["rules"].as_array_mut().unwrap() {
            if r["alert"] != "KafkaBackupMissed" {
                r.as_object_mut().unwrap().remove("annotations");
            }
        }
    }
    std::fs::write(&rules, serde_yaml_ng::to_string(&bare).unwrap()).unwrap();
    let tests = dir.path().join("tests.yaml");
    std::fs::write(&tests, ALERT_TESTS).unwrap();
    let out = std::process::Command::new(promtool())
        .args(["test", "rules"])
        .arg(&tests)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let cm = of_kind(&docs, "ConfigMap")[0];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = cm["data"]["kafka-backup-operator.json"].as_str().unwrap();
    let dash: serde_json::Value = serde_json::from_str(json).expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut exprs = String::new();
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    let queried = assert_series_exported(&exprs, "the dashboard");
    assert!(queried.len() >= 8, "{queried:?}");
}

/// `promtool test rules` cases of the rendered rule (rules.yaml, with missedBackupSeconds 3600
/// and the defaults otherwise): each alert fires on its series and stays quiet on healthy ones.
const ALERT_TESTS: &str = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'kbo_last_run_failed{kind="KafkaBackup",resource_namespace="team-a",name="orders"}'
        values: '1x10'
      - series: 'kbo_last_run_failed{kind="KafkaBackup",resource_namespace="team-a",name="fine"}'
        values: '0x10'
      - series: 'kbo_last_success_timestamp_seconds{kind="KafkaBackup",resource_namespace="team-a",name="fine"}'
        values: '0x180'
      - series: 'kbo_lag_records{kind="KafkaRestore",resource_namespace="team-b"}'
        values: '500x60'
      - series: 'kbo_validation_last_result{resource_namespace="team-a",backup="orders",validation="weekly"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: KafkaBackupFailed
        exp_alerts:
          - exp_labels: {severity: warning, kind: KafkaBackup, resource_namespace: team-a, name: orders}
      - eval_time: 5m
        alertname: KafkaBackupValidationFailing
        exp_alerts:
          - exp_labels: {severity: warning, resource_namespace: team-a, backup: orders, validation: weekly}
      - eval_time: 30m
        alertname: KafkaBackupMissed
        exp_alerts: []
      - eval_time: 70m
        alertname: KafkaBackupMissed
        exp_alerts:
          - exp_labels: {severity: warning, kind: KafkaBackup, resource_namespace: team-a, name: fine}
            exp_annotations:
              summary: 'KafkaBackup team-a/fine: no completed run for 1h 10m 0s'
              description: 'No run of this backup completed within metrics.prometheusRule.missedBackupSeconds (3600 s): its schedule is suspended, its runs fail, or they take too long.'
      - eval_time: 20m
        alertname: KafkaRestoreStuck
        exp_alerts: []
      - eval_time: 40m
        alertname: KafkaRestoreStuck
        exp_alerts:
          - exp_labels: {severity: warning, kind: KafkaRestore, resource_namespace: team-b}
"#;
