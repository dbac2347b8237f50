//! End-to-end on a real one-node cluster, the way a user runs the operator: the image built
//! offline (`scripts/image.sh`, imported into the node's containerd), the Helm chart installed
//! with `helm install --wait` (its ServiceAccount, RBAC, probes, read-only root filesystem,
//! non-root user), the operator a Pod. Start the node (`testenv/kube/node-start.sh`), the
//! peers (`testenv/start.sh`, `source testenv/env`), build and import the image
//! (`scripts/image.sh`), then set `KBO_E2E_NODE_KUBECONFIG=testenv/kube/kubeconfig`.
//! `scripts/test.sh` does all of it.
//!
//! Without `KBO_E2E_NODE_KUBECONFIG` the test prints SKIPPED and returns, unless
//! `KBO_E2E_REQUIRED=1` (CI, scripts/test.sh): then it fails.
//!
//! The peers listen on the host's loopback, which Pods on the pod network cannot reach, so the
//! chart is installed with `hostNetwork: true` and the API server's loopback address in
//! `KUBERNETES_SERVICE_HOST/PORT` (`extraEnv`): this node has no kube-proxy for the
//! `kubernetes` Service.
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `bin args` with `stdin`; (success, stdout + stderr).
fn run(bin: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

struct Cluster {
    kubeconfig: String,
    kubectl: String,
    helm: String,
}

impl Cluster {
    fn kubectl(&self, args: &[&str], stdin: &str) -> (bool, String) {
        let mut a = vec!["--kubeconfig", &self.kubeconfig];
        a.extend_from_slice(args);
        run(&self.kubectl, &a, stdin)
    }
    /// `kubectl args`, which must succeed; its output.
    fn k(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args, "");
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }
    fn apply(&self, ns: &str, yaml: &str) {
        let (ok, out) = self.kubectl(&["apply", "-n", ns, "-f", "-"], yaml);
        assert!(ok, "kubectl apply: {out}\n{yaml}");
    }
    fn helm(&self, args: &[&str]) -> (bool, String, Duration) {
        let mut a = vec!["--kubeconfig", &self.kubeconfig];
        a.extend_from_slice(args);
        let t = Instant::now();
        let (ok, out) = run(&self.helm, &a, "");
        (ok, out, t.elapsed())
    }
    /// Waits until `kind/name` in `ns` has `.status.phase` `want`; fails on Failed or after
    /// `secs`, with the status and the operator's log.
    fn wait_phase(&self, ns: &str, kind: &str, name: &str, want: &str, secs: u64) {
        let t = Instant::now();
        loop {
            let (_, phase) = self.kubectl(
                &[
                    "get",
                    "-n",
                    ns,
                    kind,
                    name,
                    "-o",
                    "jsonpath={.status.phase}",
                ],
                "",
            );
            if phase == want {
                return;
            }
            if phase == "Failed" || t.elapsed() > Duration::from_secs(secs) {
                let (_, status) = self.kubectl(
                    &["get", "-n", ns, kind, name, "-o", "jsonpath={.status}"],
                    "",
                );
                let (_, log) = self.kubectl(
                    &[
                        "logs",
                        "-n",
                        ns,
                        "-l",
                        "app.kubernetes.io/name=kafka-backup-operator",
                        "--tail=40",
                    ],
                    "",
                );
                panic!(
                    "{kind}/{name}: phase {phase:?}, wanted {want}: {status}\noperator log:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    /// The name of the operator's one Ready Pod in `ns` (waits up to `secs`).
    fn ready_pod(&self, ns: &str, secs: u64) -> String {
        self.ready_pods(ns, 1, secs).remove(0)
    }
    /// The names of the operator's `n` Pods in `ns`, once all are Ready and no other exists
    /// (waits up to `secs`).
    fn ready_pods(&self, ns: &str, n: usize, secs: u64) -> Vec<String> {
        let t = Instant::now();
        loop {
            let (_, out) = self.kubectl(
                &[
                    "get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=kafka-backup-operator",
                    "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
                ],
                "",
            );
            let ready: Vec<&str> = out
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 2 && f[1] == "True").then_some(f[0])
                })
                .collect();
            if ready.len() == n && out.lines().count() == n {
                return ready.into_iter().map(String::from).collect();
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "not {n} Ready operator Pods after {secs} s:\n{out}\n{}",
                self.kubectl(&["describe", "pods", "-n", ns], "").1
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn py(args: &[&str]) -> (bool, String) {
    let python = std::env::var("KBO_PYTHON").expect("source testenv/env");
    let mut a = vec![concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/kbo_data.py")];
    a.extend_from_slice(args);
    run(&python, &a, "")
}

/// The host process of the operator container listening on `port`: (pid, its /proc status,
/// its mountinfo).
fn operator_process(port: u16) -> Option<(u32, String, String)> {
    let flag = format!("--metrics-addr=0.0.0.0:{port}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some("/usr/local/bin/kafka-backup-operator")
            && args.contains(&flag)
        {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
            return Some((pid, status, mounts));
        }
    }
    None
}

#[test]
fn the_chart_installs_and_the_operator_pod_backs_up_restores_upgrades_and_uninstalls() {
    let required = std::env::var("KBO_E2E_REQUIRED").is_ok_and(|v| v == "1");
    let Ok(kubeconfig) = std::env::var("KBO_E2E_NODE_KUBECONFIG") else {
        assert!(
            !required,
            "KBO_E2E_REQUIRED=1 but KBO_E2E_NODE_KUBECONFIG is not set: start the node (testenv/kube/node-start.sh) and import the image (scripts/image.sh)"
        );
        eprintln!(
            "e2e_node SKIPPED: KBO_E2E_NODE_KUBECONFIG is not set (testenv/kube/node-start.sh, scripts/image.sh; scripts/test.sh runs it)"
        );
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}: source testenv/env"));
    let c = Cluster {
        kubeconfig,
        kubectl: env("KBO_KUBECTL"),
        helm: env("KBO_HELM"),
    };
    let bootstrap = env("KBO_KAFKA_BOOTSTRAP");
    let image = std::env::var("KBO_E2E_IMAGE").unwrap_or("kafka-backup-operator:local".into());
    let (repo, tag) = image.rsplit_once(':').unwrap();
    // the API server the Pod reaches on the node's loopback (hostNetwork)
    let server = c.k(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let api_port = server.rsplit(':').next().unwrap().to_string();
    let metrics_port: u16 = 18080;
    let ns = format!("kbo-node-{}", std::process::id());
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kafka-backup-operator");
    let sets = [
        format!("image.repository={repo}"),
        format!("image.tag={tag}"),
        "image.pullPolicy=Never".to_string(),
        "hostNetwork=true".to_string(),
        format!("metrics.port={metrics_port}"),
        format!("watchNamespaces[0]={ns}"),
    ];
    // environment values are strings (--set would make the port a number)
    let env_sets = [
        "extraEnv[0].name=KUBERNETES_SERVICE_HOST".to_string(),
        "extraEnv[0].value=127.0.0.1".to_string(),
        "extraEnv[1].name=KUBERNETES_SERVICE_PORT".to_string(),
        format!("extraEnv[1].value={api_port}"),
    ];
    let mut install = vec![
        "install",
        "kbo",
        chart,
        "-n",
        &ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "180s",
    ];
    for s in &sets {
        install.extend(["--set", s]);
    }
    for s in &env_sets {
        install.extend(["--set-string", s]);
    }
    let (ok, out, took) = c.helm(&install);
    assert!(
        ok,
        "helm install: {out}\n{}",
        c.kubectl(&["describe", "pods", "-n", &ns], "").1
    );
    eprintln!("e2e_node: helm install --wait took {took:.1?}");
    let pod = c.ready_pod(&ns, 60);
    // the CRDs came from the chart (crds/), the documented way
    let crds = c.k(&["get", "crd", "-o", "name"]);
    for kind in [
        "kafkabackups",
        "kafkarestores",
        "kafkaoffsetresets",
        "kafkaoffsetrollbacks",
        "kafkabackupvalidations",
    ] {
        assert!(crds.contains(&format!("{kind}.kafka.oso.sh")), "{crds}");
    }
    // the container as it runs: under the chart's ServiceAccount, uid 65532, root read-only
    let sa = c.k(&[
        "get",
        "pod",
        "-n",
        &ns,
        &pod,
        "-o",
        "jsonpath={.spec.serviceAccountName}",
    ]);
    assert_eq!(sa, "kbo-kafka-backup-operator");
    let (pid, status, mounts) =
        operator_process(metrics_port).expect("the operator's process on the node");
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65532"),
        "pid {pid} runs as {uid}"
    );
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "root filesystem not read-only: {root}"
    );
    eprintln!("e2e_node: pod {pid} uid 65532, root read-only, ServiceAccount {sa}");

    // the seed's production-backup (S3, credentials from a Secret) and pitr-restore
    let prefix = format!("node{}-", std::process::id());
    let (ok, out) = py(&[
        "produce-sample",
        "--bootstrap",
        &bootstrap,
        "--prefix",
        &prefix,
        "--records",
        "200",
    ]);
    assert!(ok, "{out}");
    let topics = [
        "plain", "gzip", "snappy", "lz4", "zstd", "idem", "txn", "large",
    ]
    .map(|t| format!("{prefix}{t}"));
    let mapping: String = topics.iter().map(|t| format!("    {t}: {t}-r\n")).collect();
    c.apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-credentials\nstringData:\n  AWS_ACCESS_KEY_ID: {ak}\n  AWS_SECRET_ACCESS_KEY: {sk}\n---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: production-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  topics:\n  - \"{prefix}*\"\n  storage:\n    storageType: s3\n    s3:\n      bucket: {bucket}\n      region: us-east-1\n      endpoint: {endpoint}\n      pathStyle: true\n      allowHttp: true\n      prefix: {ns}\n      credentialsSecret:\n        name: s3-credentials\n---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: pitr-restore\nspec:\n  backupRef:\n    name: production-backup\n  pitr:\n    endTime: \"2099-12-01T12:00:00Z\"\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  createTopics: true\n  topicMapping:\n{mapping}",
            ak = env("KBO_S3_ACCESS_KEY"),
            sk = env("KBO_S3_SECRET_KEY"),
            bucket = env("KBO_S3_BUCKET"),
            endpoint = env("KBO_S3_ENDPOINT"),
        ),
    );
    let t = Instant::now();
    c.wait_phase(&ns, "kafkabackup", "production-backup", "Completed", 180);
    c.wait_phase(&ns, "kafkarestore", "pitr-restore", "Completed", 180);
    eprintln!(
        "e2e_node: backup and restore Completed {:.1?} after apply",
        t.elapsed()
    );
    let table = c.k(&["get", "-n", &ns, "kb,kr"]);
    eprintln!("e2e_node: kubectl get kb,kr\n{table}");
    // the recoverability window: in kubectl get (the columns) and in kubectl kafkabackup status
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("RECOVERABLE FROM") && header.contains("RECOVERABLE TO"),
        "{table}"
    );
    let first = c.k(&[
        "get",
        "kb",
        "production-backup",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.firstRecoverabilityPoint}",
    ]);
    assert!(
        !first.trim().is_empty(),
        "no firstRecoverabilityPoint in status"
    );
    let (ok, out) = run(
        env!("CARGO_BIN_EXE_kubectl-kafkabackup"),
        &[
            "status",
            "production-backup",
            "-n",
            &ns,
            "-o",
            "json",
            "--kubeconfig",
            &c.kubeconfig,
        ],
        "",
    );
    assert!(ok, "kubectl kafkabackup status: {out}");
    let start = out.find('[').expect("a JSON list");
    let rows: serde_json::Value = serde_json::from_str(&out[start..]).expect(&out);
    let kb = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "KafkaBackup"))
        .unwrap_or_else(|| panic!("no KafkaBackup row: {out}"));
    assert_eq!(kb["recoverableFrom"].as_str(), Some(first.trim()), "{out}");
    assert!(kb["recoverableTo"].is_string(), "{out}");
    let targets: Vec<String> = topics.iter().map(|t| format!("{t}-r")).collect();
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &topics.join(","),
        "--target-topics",
        &targets.join(","),
    ]);
    assert!(ok, "restored data differs:\n{out}");
    // Events from the Pod, and /metrics through the Service (the API server's service proxy:
    // this node has no kube-proxy)
    let events = c.k(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "-o",
        "jsonpath={range .items[*]}{.regarding.name}/{.reason}/{.reportingInstance}{\"\\n\"}{end}",
    ]);
    for want in ["production-backup/Completed", "pitr-restore/Completed"] {
        assert!(
            events
                .lines()
                .any(|l| l.starts_with(&format!("{want}/")) && l.ends_with(&pod)),
            "no {want} Event from {pod}:\n{events}"
        );
    }
    let metrics = c.k(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{ns}/services/http:kbo-kafka-backup-operator:http/proxy/metrics"
        ),
    ]);
    assert!(
        metrics.contains("# TYPE"),
        "not Prometheus text:\n{metrics}"
    );
    // the series the chart's PrometheusRule alerts on, for the runs that just completed
    for want in [
        format!(
            "kbo_last_success_timestamp_seconds{{kind=\"KafkaBackup\",resource_namespace=\"{ns}\",name=\"production-backup\"}}"
        ),
        format!(
            "kbo_last_run_failed{{kind=\"KafkaRestore\",resource_namespace=\"{ns}\",name=\"pitr-restore\"}} 0"
        ),
    ] {
        assert!(metrics.contains(&want), "/metrics lacks {want}:\n{metrics}");
    }
    eprintln!(
        "e2e_node: /metrics through the Service: {} lines",
        metrics.lines().count()
    );
    // kubectl kafkabackup logs: the operator Pod's JSON lines about one resource (its run's
    // start and end), none about another (the restore waited for this backup, by name)
    let logs_of = |name: &str, kind: &str| {
        let (ok, out) = run(
            env!("CARGO_BIN_EXE_kubectl-kafkabackup"),
            &[
                "logs",
                name,
                "-n",
                &ns,
                "--kind",
                kind,
                "--operator-namespace",
                &ns,
                "--kubeconfig",
                &c.kubeconfig,
            ],
            "",
        );
        assert!(ok, "kubectl kafkabackup logs {name}: {out}");
        out
    };
    let logs = logs_of("production-backup", "kb");
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(&pod)).collect();
    assert!(
        lines.iter().any(|l| l.contains("started"))
            && lines.iter().any(|l| l.contains("Completed")),
        "no start and end of production-backup's run from {pod}:\n{logs}"
    );
    assert!(
        !logs.contains("waits for its input"),
        "the restore's line:\n{logs}"
    );
    let restore_logs = logs_of("pitr-restore", "kr");
    assert!(
        restore_logs.lines().any(|l| l.contains("Completed")),
        "{restore_logs}"
    );
    eprintln!("e2e_node: kubectl kafkabackup logs: {} lines", lines.len());

    sharded_backup_runs_as_jobs(&c, &ns, &bootstrap, &topics);

    // helm upgrade with a changed value: a PersistentVolumeClaim (bound to a hostPath
    // PersistentVolume, as a user's would be to theirs) mounted for storageType pvc
    let pv_dir = format!("/var/lib/kbo-node/pv-{ns}");
    std::fs::create_dir_all(&pv_dir).unwrap();
    std::os::unix::fs::chown(&pv_dir, Some(65532), Some(65532)).unwrap();
    c.apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {ns}-backups\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: kbo-manual\n  hostPath: {{path: {pv_dir}, type: Directory}}\n  claimRef: {{namespace: {ns}, name: backups}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: backups\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: kbo-manual\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        ),
    );
    let t = Instant::now();
    while c.k(&[
        "get",
        "pvc",
        "-n",
        &ns,
        "backups",
        "-o",
        "jsonpath={.status.phase}",
    ]) != "Bound"
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the claim never bound"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // CRDs are upgraded the documented way, `kubectl apply -f` of the chart's crds/ (helm
    // upgrade leaves them alone). An API server older than 1.25 does not know their CEL rules
    // (x-kubernetes-validations): kubectl's schema check refuses them there, so it is skipped
    // (--validate=false) and the server drops the rules; the operator validates in full anyway.
    let version: serde_json::Value =
        serde_json::from_str(&c.k(&["get", "--raw", "/version"])).unwrap();
    let minor: u32 = version["minor"]
        .as_str()
        .unwrap_or("99")
        .trim_end_matches('+')
        .parse()
        .unwrap_or(99);
    let crd_file = format!("{chart}/crds/kafka.oso.sh_crds.yaml");
    let mut crd_apply = vec!["apply", "-f", crd_file.as_str()];
    if minor < 25 {
        crd_apply.push("--validate=false");
        eprintln!(
            "e2e_node: API server 1.{minor}: CRDs applied with --validate=false (no CEL there)"
        );
    }
    let out = c.k(&crd_apply);
    assert_eq!(
        out.matches(" configured").count() + out.matches(" unchanged").count(),
        5,
        "{out}"
    );
    let mut upgrade = vec![
        "upgrade",
        "kbo",
        chart,
        "-n",
        &ns,
        "--wait",
        "--timeout",
        "180s",
        "--reuse-values",
        "--set",
        "pvcClaims[0]=backups",
    ];
    for s in &sets {
        upgrade.extend(["--set", s]);
    }
    for s in &env_sets {
        upgrade.extend(["--set-string", s]);
    }
    let (ok, out, took) = c.helm(&upgrade);
    assert!(ok, "helm upgrade: {out}");
    eprintln!("e2e_node: helm upgrade --wait took {took:.1?}");
    let pod2 = c.ready_pod(&ns, 120);
    assert_ne!(pod2, pod, "the upgrade rolled the Pod");
    c.apply(
        &ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: pvc-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  topics: [\"{prefix}plain\", \"{prefix}zstd\"]\n  storage:\n    storageType: pvc\n    pvc: {{claimName: backups}}\n---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: pvc-restore\nspec:\n  backupRef: {{name: pvc-backup}}\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  createTopics: true\n  topicMapping:\n    {prefix}plain: {prefix}plain-p\n    {prefix}zstd: {prefix}zstd-p\n"
        ),
    );
    c.wait_phase(&ns, "kafkabackup", "pvc-backup", "Completed", 180);
    c.wait_phase(&ns, "kafkarestore", "pvc-restore", "Completed", 180);
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &format!("{prefix}plain,{prefix}zstd"),
        "--target-topics",
        &format!("{prefix}plain-p,{prefix}zstd-p"),
    ]);
    assert!(ok, "restore from the PVC differs:\n{out}");
    let files = |dir: &str| -> usize { walk(std::path::Path::new(dir)) };
    assert!(
        files(&pv_dir) > 0,
        "nothing written to the PersistentVolume {pv_dir}"
    );
    // a shard Job mounts the claim itself (in its own subPath); two shards on a
    // ReadWriteOnce claim are refused before any Job, naming the field and the fix
    c.apply(
        &ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: pvc-job-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  topics: [\"{prefix}plain\"]\n  execution: {{mode: job}}\n  storage:\n    storageType: pvc\n    pvc: {{claimName: backups, subPath: job}}\n---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: pvc-rwo-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  topics: [\"{prefix}plain\", \"{prefix}zstd\"]\n  execution: {{mode: job, shards: 2}}\n  storage:\n    storageType: pvc\n    pvc: {{claimName: backups, subPath: rwo}}\n"
        ),
    );
    c.wait_phase(&ns, "kafkabackup", "pvc-job-backup", "Completed", 180);
    let jobs = c.k(&[
        "get",
        "jobs",
        "-n",
        &ns,
        "-l",
        "kafka.oso.sh/name=pvc-job-backup",
        "-o",
        "name",
    ]);
    assert_eq!(jobs.lines().count(), 1, "{jobs}");
    assert!(
        files(&format!("{pv_dir}/job")) > 0,
        "the shard Job wrote nothing to {pv_dir}/job"
    );
    let t = Instant::now();
    let message = loop {
        let out = c.k(&[
            "get",
            "kb",
            "-n",
            &ns,
            "pvc-rwo-backup",
            "-o",
            "jsonpath={.status.phase}|{.status.message}",
        ]);
        let (phase, message) = out.split_once('|').unwrap();
        if phase == "Failed" {
            break message.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "pvc-rwo-backup: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        message.contains("spec.execution.shards: 2") && message.contains("ReadWriteMany"),
        "{message}"
    );
    let jobs = c.k(&[
        "get",
        "jobs",
        "-n",
        &ns,
        "-l",
        "kafka.oso.sh/name=pvc-rwo-backup",
        "-o",
        "name",
    ]);
    assert!(jobs.trim().is_empty(), "a refused run created Jobs: {jobs}");
    eprintln!(
        "e2e_node: a shard Job mounted the claim; 2 shards on a ReadWriteOnce claim refused: {message}"
    );

    // two replicas as Pods (leader election on a Lease), the leader Pod deleted mid-backup:
    // another replica takes the Lease and resumes the same run, every record once; watched
    // with `kubectl get kb -w` as a user would. With hostNetwork the two replicas of one
    // Deployment would both want the metrics port on this one node (the second stays
    // Pending), so the second replica is a second release on another port: same chart, same
    // namespace, same Lease.
    let mut install2: Vec<String> = vec![
        "install",
        "kbo2",
        chart,
        "-n",
        &ns,
        "--wait",
        "--timeout",
        "180s",
        "--set",
        "pvcClaims[0]=backups",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for s in &sets {
        let s = s.replace(
            &format!("metrics.port={metrics_port}"),
            &format!("metrics.port={}", metrics_port + 1),
        );
        install2.extend(["--set".to_string(), s]);
    }
    for s in &env_sets {
        install2.extend(["--set-string".to_string(), s.clone()]);
    }
    let (ok, out, took) = c.helm(&install2.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "helm install of a second replica: {out}");
    eprintln!("e2e_node: second release (replica) helm install --wait took {took:.1?}");
    let pods = c.ready_pods(&ns, 2, 120);
    let lease = |c: &Cluster| {
        c.kubectl(
            &[
                "get",
                "lease",
                "-n",
                &ns,
                "kafka-backup-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            "",
        )
        .1
    };
    let t = Instant::now();
    let leader = loop {
        let h = lease(&c);
        if pods.contains(&h) {
            break h;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no replica holds the Lease: {h:?} {pods:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let big = format!("{prefix}big");
    let (ok, out) = py(&[
        "gen-load",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &big,
        "--partitions",
        "2",
        "--mib",
        "16",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}");
    let watch_log = std::env::temp_dir().join(format!("{ns}-kb-watch.txt"));
    let mut watch = Command::new(&c.kubectl)
        .args(["--kubeconfig", &c.kubeconfig, "get", "kb", "-n", &ns, "-w"])
        .stdout(std::fs::File::create(&watch_log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.apply(
        &ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: ha-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  topics: [\"{big}\"]\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint: {{intervalSecs: 1}}\n  rateLimiting: {{bytesPerSec: 1500000}}\n  storage:\n    storageType: pvc\n    pvc: {{claimName: backups, subPath: ha}}\n"
        ),
    );
    let t = Instant::now();
    let before = loop {
        let st = c
            .kubectl(
                &[
                    "get",
                    "kb",
                    "-n",
                    &ns,
                    "ha-backup",
                    "-o",
                    "jsonpath={.status.phase} {.status.recordsProcessed} {.status.backupId}",
                ],
                "",
            )
            .1;
        let f: Vec<&str> = st.split_whitespace().collect();
        if f.len() == 3 && f[0] == "Running" && f[1].parse::<u64>().unwrap_or(0) > 0 {
            break f[2].to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "ha-backup never made progress: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    c.k(&["delete", "pod", "-n", &ns, &leader, "--wait=false"]);
    let killed = Instant::now();
    c.wait_phase(&ns, "kafkabackup", "ha-backup", "Completed", 240);
    eprintln!(
        "e2e_node: leader Pod {leader} deleted mid-backup; Completed {:.1?} later",
        killed.elapsed()
    );
    let done = c.k(&[
        "get",
        "kb",
        "-n",
        &ns,
        "ha-backup",
        "-o",
        "jsonpath={.status.recordsProcessed} {.status.backupId}",
    ]);
    assert_eq!(
        done,
        format!("16384 {before}"),
        "the same run, every record once"
    );
    let taker = lease(&c);
    assert!(
        taker != leader && !taker.is_empty(),
        "the Lease moved on: {taker:?}"
    );
    let events = c.k(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "-o",
        "jsonpath={range .items[*]}{.regarding.name}/{.reason}/{.reportingInstance}{\"\\n\"}{end}",
    ]);
    let by = |reason: &str| -> Vec<&str> {
        events
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("ha-backup/{reason}/")))
            .collect()
    };
    assert_eq!(by("Started"), vec![leader.as_str()], "{events}");
    assert_eq!(by("Completed"), vec![taker.as_str()], "{events}");
    assert!(by("Retried").contains(&taker.as_str()), "{events}");
    std::thread::sleep(Duration::from_secs(1));
    let _ = watch.kill();
    let _ = watch.wait();
    let watched = std::fs::read_to_string(&watch_log).unwrap();
    eprintln!("e2e_node: kubectl get kb -w\n{watched}");
    let phases: Vec<&str> = watched
        .lines()
        .filter(|l| l.starts_with("ha-backup "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(
        phases.contains(&"Running") && phases.last() == Some(&"Completed"),
        "kubectl get kb -w: {watched}"
    );
    c.apply(
        &ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: ha-restore\nspec:\n  backupRef: {{name: ha-backup}}\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  createTopics: true\n  topicMapping:\n    {big}: {big}-r\n"
        ),
    );
    c.wait_phase(&ns, "kafkarestore", "ha-restore", "Completed", 240);
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &big,
        "--target-topics",
        &format!("{big}-r"),
    ]);
    assert!(
        ok,
        "the backup the follower finished differs from the source:\n{out}"
    );
    let on_pv = files(&pv_dir);

    // helm uninstall: the operator goes, the backups (S3 and the volume), the CRDs and the
    // resources stay
    for release in ["kbo", "kbo2"] {
        let (ok, out, _) = c.helm(&[
            "uninstall",
            release,
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "120s",
        ]);
        assert!(ok, "helm uninstall {release}: {out}");
    }
    let t = Instant::now();
    while operator_process(metrics_port).is_some() || operator_process(metrics_port + 1).is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the operator still runs after uninstall"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        files(&pv_dir),
        on_pv,
        "the volume's backup changed on uninstall"
    );
    let kb = c.k(&[
        "get",
        "-n",
        &ns,
        "kafkabackup",
        "production-backup",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(
        kb, "Completed",
        "the KafkaBackup and its status outlive the operator"
    );
    let python = env("KBO_PYTHON");
    let (ok, out) = run(
        &python,
        &[
            "-c",
            "import os, sys, boto3\ns3 = boto3.client('s3', endpoint_url=os.environ['KBO_S3_ENDPOINT'], region_name='us-east-1', aws_access_key_id=os.environ['KBO_S3_ACCESS_KEY'], aws_secret_access_key=os.environ['KBO_S3_SECRET_KEY'])\nr = s3.list_objects_v2(Bucket=os.environ['KBO_S3_BUCKET'], Prefix=sys.argv[1] + '/')\nprint(r.get('KeyCount', 0))",
            &ns,
        ],
        "",
    );
    assert!(
        ok && out.trim().parse::<u64>().unwrap_or(0) > 0,
        "S3 backup gone after uninstall: {out}"
    );
    eprintln!(
        "e2e_node: after uninstall: {} objects in S3 under {ns}/, {on_pv} files on the volume",
        out.trim()
    );
    let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"], "");
    let _ = c.kubectl(
        &["delete", "pv", &format!("{ns}-backups"), "--wait=false"],
        "",
    );
}

/// Regular files under `dir`, recursively.
/// `execution.mode: job` with 3 shards: the operator runs the backup as 3 Jobs (non-root, no
/// token, labelled, owned by the KafkaBackup), status shows the shards, the data restores
/// exactly (checked with confluent-kafka); a shard that exceeds its memory limit fails the
/// run as OOMKilled, the operator untouched.
fn sharded_backup_runs_as_jobs(c: &Cluster, ns: &str, bootstrap: &str, topics: &[String]) {
    let env = |k: &str| std::env::var(k).unwrap();
    let storage = format!(
        "  storage:\n    storageType: s3\n    s3:\n      bucket: {bucket}\n      region: us-east-1\n      endpoint: {endpoint}\n      pathStyle: true\n      allowHttp: true\n      prefix: {ns}-sharded\n      credentialsSecret:\n        name: s3-credentials\n",
        bucket = env("KBO_S3_BUCKET"),
        endpoint = env("KBO_S3_ENDPOINT"),
    );
    let mapping: String = topics.iter().map(|t| format!("    {t}: {t}-s\n")).collect();
    // the source topics by name (a pattern would take the restored copies too)
    let listed: String = topics.iter().map(|t| format!("  - {t}\n")).collect();
    c.apply(
        ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: sharded-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  topics:\n{listed}  execution:\n    mode: job\n    shards: 3\n    backoffLimit: 1\n    resources: {{limits: {{memory: 256Mi}}}}\n{storage}---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: sharded-restore\nspec:\n  backupRef:\n    name: sharded-backup\n  execution:\n    mode: job\n    shards: 2\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  createTopics: true\n  topicMapping:\n{mapping}"
        ),
    );
    let t = Instant::now();
    c.wait_phase(ns, "kafkabackup", "sharded-backup", "Completed", 240);
    c.wait_phase(ns, "kafkarestore", "sharded-restore", "Completed", 180);
    eprintln!(
        "e2e_node: sharded backup (3 Jobs) and its restore Completed {:.1?} after apply",
        t.elapsed()
    );
    let shards = c.k(&[
        "get",
        "kb",
        "-n",
        ns,
        "sharded-backup",
        "-o",
        "jsonpath={range .status.shards[*]}{.index}/{.phase}/{.job}{\"\\n\"}{end}",
    ]);
    let lines: Vec<&str> = shards.lines().collect();
    assert_eq!(lines.len(), 3, "status.shards: {shards}");
    assert!(lines.iter().all(|l| l.contains("/Succeeded/")), "{shards}");
    // the Jobs: one per shard, owned by the KafkaBackup, their Pods locked down
    let jobs = c.k(&[
        "get", "jobs", "-n", ns, "-l", "kafka.oso.sh/name=sharded-backup", "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind} {.status.succeeded}{\"\\n\"}{end}",
    ]);
    assert_eq!(jobs.lines().count(), 3, "{jobs}");
    assert!(
        jobs.lines().all(|l| l.ends_with(" KafkaBackup 1")),
        "{jobs}"
    );
    for l in &lines {
        assert!(
            jobs.contains(l.rsplit('/').next().unwrap()),
            "{l} not among {jobs}"
        );
    }
    let pods = c.k(&[
        "get", "pods", "-n", ns, "-l", "kafka.oso.sh/name=sharded-backup", "-o",
        "jsonpath={range .items[*]}{.spec.automountServiceAccountToken} {.spec.securityContext.runAsUser} {.spec.containers[0].securityContext.readOnlyRootFilesystem} {.status.phase}{\"\\n\"}{end}",
    ]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    assert!(
        pods.lines().all(|l| l == "false 65532 true Succeeded"),
        "{pods}"
    );
    // the restore ran as 2 Jobs of its own
    let shards = c.k(&[
        "get",
        "kr",
        "-n",
        ns,
        "sharded-restore",
        "-o",
        "jsonpath={range .status.shards[*]}{.phase}{\"\\n\"}{end}",
    ]);
    let phases: Vec<&str> = shards.lines().collect();
    assert_eq!(
        phases,
        ["Succeeded", "Succeeded"],
        "restore status.shards: {}\n{}",
        c.k(&[
            "get",
            "kr",
            "-n",
            ns,
            "sharded-restore",
            "-o",
            "jsonpath={.status}"
        ]),
        c.k(&[
            "logs",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/name=kafka-backup-operator",
            "--tail=300"
        ])
        .lines()
        .filter(|l| l.contains("sharded-restore") && !l.contains("reconciling"))
        .collect::<Vec<_>>()
        .join("\n")
    );
    let jobs = c.k(&[
        "get",
        "jobs",
        "-n",
        ns,
        "-l",
        "kafka.oso.sh/name=sharded-restore,kafka.oso.sh/kind=kafkarestore",
        "-o",
        "name",
    ]);
    assert_eq!(jobs.lines().count(), 2, "{jobs}");
    let targets: Vec<String> = topics.iter().map(|t| format!("{t}-s")).collect();
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        bootstrap,
        "--source-topics",
        &topics.join(","),
        "--target-topics",
        &targets.join(","),
    ]);
    assert!(ok, "data restored from the sharded backup differs:\n{out}");
    sharded_validation_runs_as_jobs(c, ns, bootstrap);

    shard_pod_deleted_mid_run_resumes(c, ns, bootstrap, &storage);

    // a shard over its memory limit: the run fails as OOMKilled, naming the shard
    c.apply(
        ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: starved-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  topics:\n{listed}  execution:\n    mode: job\n    backoffLimit: 0\n    resources: {{limits: {{memory: 6Mi}}}}\n{}",
            storage.replace("-sharded", "-starved")
        ),
    );
    let t = Instant::now();
    let (phase, message) = loop {
        let out = c.k(&[
            "get",
            "kb",
            "-n",
            ns,
            "starved-backup",
            "-o",
            "jsonpath={.status.phase}|{.status.message}",
        ]);
        let (phase, message) = out.split_once('|').unwrap();
        if phase == "Failed" || t.elapsed() > Duration::from_secs(240) {
            break (phase.to_string(), message.to_string());
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(phase, "Failed", "{message}");
    assert!(
        message.contains("OOMKilled") && message.contains("shard 0 of 1"),
        "{message}"
    );
    eprintln!("e2e_node: a starved shard fails the run: {message}");
    // the operator is untouched
    c.ready_pod(ns, 10);
}

/// A KafkaBackupValidation of the sharded backup with `execution.mode: job, shards: 2`: its
/// restore check runs as 2 Jobs of its own, status shows them, and the checks pass.
fn sharded_validation_runs_as_jobs(c: &Cluster, ns: &str, bootstrap: &str) {
    c.apply(
        ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: sharded-validation\nspec:\n  backupRef:\n    name: sharded-backup\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  execution:\n    mode: job\n    shards: 2\n    backoffLimit: 1\n"
        ),
    );
    c.wait_phase(
        ns,
        "kafkabackupvalidation",
        "sharded-validation",
        "Completed",
        240,
    );
    let out = c.k(&[
        "get",
        "kbv",
        "-n",
        ns,
        "sharded-validation",
        "-o",
        "jsonpath={.status.validationResult}|{range .status.shards[*]}{.phase} {end}|{.status.message}",
    ]);
    let parts: Vec<&str> = out.split('|').collect();
    assert_eq!(parts[0], "Pass", "{out}");
    assert_eq!(parts[1].trim(), "Succeeded Succeeded", "{out}");
    let jobs = c.k(&[
        "get",
        "jobs",
        "-n",
        ns,
        "-l",
        "kafka.oso.sh/name=sharded-validation,kafka.oso.sh/kind=kafkabackupvalidation",
        "-o",
        "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind} {.status.succeeded}{\"\\n\"}{end}",
    ]);
    assert_eq!(jobs.lines().count(), 2, "{jobs}");
    assert!(
        jobs.lines().all(|l| l == "KafkaBackupValidation 1"),
        "{jobs}"
    );
    eprintln!(
        "e2e_node: the validation's restore check ran as 2 Jobs: {}",
        parts[2]
    );
}

/// A shard Pod deleted mid-run (as an eviction would): the Job starts another Pod, which
/// resumes from the shard's checkpoint; the run completes with every record once, and restores
/// exactly (confluent-kafka).
fn shard_pod_deleted_mid_run_resumes(c: &Cluster, ns: &str, bootstrap: &str, storage: &str) {
    let topic = format!("{ns}-shardkill");
    let (ok, out) = py(&[
        "gen-load",
        "--bootstrap",
        bootstrap,
        "--topic",
        &topic,
        "--partitions",
        "4",
        "--mib",
        "16",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}");
    c.apply(
        ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: shardkill-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  topics: [\"{topic}\"]\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint: {{intervalSecs: 1}}\n  rateLimiting: {{bytesPerSec: 1200000}}\n  execution: {{mode: job, shards: 2, backoffLimit: 3}}\n{}",
            storage.replace("-sharded", "-shardkill")
        ),
    );
    // shard 0 runs and has checkpointed (every second): its Pod goes, as an eviction would
    let shard0 = "kafka.oso.sh/name=shardkill-backup,kafka.oso.sh/shard=0";
    let pods_of_shard0 = || {
        c.k(&[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            shard0,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
        ])
    };
    let t = Instant::now();
    let first = loop {
        let out = pods_of_shard0();
        if let Some(l) = out.lines().find(|l| l.ends_with(" Running")) {
            break l.split_whitespace().next().unwrap().to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "shard 0 never ran: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(4));
    let phase = c.k(&[
        "get",
        "kb",
        "-n",
        ns,
        "shardkill-backup",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(
        phase, "Running",
        "the run ended before a shard Pod could be deleted"
    );
    c.k(&["delete", "pod", "-n", ns, &first, "--wait=false"]);
    c.wait_phase(ns, "kafkabackup", "shardkill-backup", "Completed", 180);
    let records = c.k(&[
        "get",
        "kb",
        "-n",
        ns,
        "shardkill-backup",
        "-o",
        "jsonpath={.status.recordsProcessed}",
    ]);
    assert_eq!(records, "16384", "every record once");
    let pods = pods_of_shard0();
    assert!(
        pods.lines()
            .any(|l| l.ends_with(" Succeeded") && !l.starts_with(&first)),
        "shard 0 did not finish in another Pod than the deleted {first}: {pods}"
    );
    c.apply(
        ns,
        &format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: shardkill-restore\nspec:\n  backupRef: {{name: shardkill-backup}}\n  kafkaCluster:\n    bootstrapServers: [\"{bootstrap}\"]\n  createTopics: true\n  topicMapping:\n    {topic}: {topic}-k\n"
        ),
    );
    c.wait_phase(ns, "kafkarestore", "shardkill-restore", "Completed", 180);
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        bootstrap,
        "--source-topics",
        &topic,
        "--target-topics",
        &format!("{topic}-k"),
    ]);
    assert!(ok, "a resumed shard's data differs:\n{out}");
    eprintln!(
        "e2e_node: shard 0's Pod {first} deleted mid-run: the Job's next Pod resumed; 16384 records once, restored exactly"
    );
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}
