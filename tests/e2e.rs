//! End-to-end against a real Kubernetes API server: set `KBO_E2E_KUBECONFIG` to a kubeconfig
//! (kind, k3s, any cluster) and start the test peers (`testenv/start.sh`, `source
//! testenv/env`). The operator runs as a local process against that cluster; the data peers are
//! the testenv ones. Without a kubeconfig the test prints SKIPPED and returns, unless
//! `KBO_E2E_REQUIRED=1` (CI, scripts/test.sh): then it fails. `testenv/kube/start.sh` (an API
//! server only) or `node-start.sh` (a whole node) provide one here.
//!
//! It applies `crds/`, a KafkaBackup and a KafkaRestore shaped like the seed's, waits for
//! Completed through the API alone, compares the data with confluent-kafka, runs a 10-second
//! schedule across an operator restart and checks exactly one run per tick, and kills the
//! operator mid-backup and mid-restore: both resume (same run id, Retried Event) and the
//! restored topic matches the source.
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kafka_backup_operator::api::{KafkaBackup, KafkaRestore, all_crds};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// An operator process, killed when dropped: a failing assertion must not leave it running.
struct OperatorProc(Child);

impl OperatorProc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OperatorProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn operator(kubeconfig: &str, ns: &str) -> OperatorProc {
    operator_with(kubeconfig, ns, &[], None)
}

/// The operator as a local process watching `ns`, with `extra` flags; `pod` names the replica
/// (POD_NAME: the Lease identity and the Events' reportingInstance).
fn operator_with(kubeconfig: &str, ns: &str, extra: &[&str], pod: Option<&str>) -> OperatorProc {
    operator_logged(kubeconfig, ns, extra, pod, None)
}

/// [`operator_with`], its JSON log (stderr) written to `log` when given.
fn operator_logged(
    kubeconfig: &str,
    ns: &str,
    extra: &[&str],
    pod: Option<&str>,
    log: Option<&std::path::Path>,
) -> OperatorProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"));
    cmd.args([
        "operator",
        "--namespaces",
        ns,
        "--metrics-addr",
        "127.0.0.1:0",
    ])
    .args(extra)
    .env("KUBECONFIG", kubeconfig)
    .env("KBO_LOG_FORMAT", "json");
    if let Some(pod) = pod {
        cmd.env("POD_NAME", pod);
    }
    if let Some(log) = log {
        cmd.stderr(std::fs::File::create(log).unwrap());
    }
    OperatorProc(cmd.spawn().expect("operator starts"))
}

/// `kubectl --kubeconfig <kc> <args>` with `stdin`; (success, stdout + stderr). kubectl comes
/// from testenv (KBO_KUBECTL), else PATH.
fn kubectl(kubeconfig: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let bin = std::env::var("KBO_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (testenv/install.sh installs kubectl)"));
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

/// Polls `name`'s status every `every` until `done` holds for the object; fails when it turns
/// Failed (unless `done` accepts that) or after `timeout`, naming `what` it waited for.
async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    every: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let t = Instant::now();
    loop {
        let o = serde_json::to_value(api.get_status(name).await.unwrap()).unwrap();
        if done(&o) {
            return o;
        }
        assert!(
            o["status"]["phase"] != "Failed",
            "{name} failed: {}",
            o["status"]
        );
        assert!(
            t.elapsed() < timeout,
            "{name}: no {what} after {timeout:?}: {}",
            o["status"]
        );
        tokio::time::sleep(every).await;
    }
}

async fn wait_phase<K>(api: &Api<K>, name: &str, want: &str, timeout: Duration) -> serde_json::Value
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let every = Duration::from_millis(500);
    wait_for(api, name, &format!("phase {want}"), timeout, every, |o| {
        o["status"]["phase"] == want
    })
    .await
}

/// Waits until the resource is Running with `field` of its status above 0; returns it.
async fn wait_progress<K>(api: &Api<K>, name: &str, field: &str) -> serde_json::Value
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let (timeout, every) = (Duration::from_secs(60), Duration::from_millis(200));
    wait_for(api, name, "progress", timeout, every, |o| {
        o["status"]["phase"] == "Running" && o["status"][field].as_u64().unwrap_or(0) > 0
    })
    .await
}

/// Reasons of the events.k8s.io Events about `name` in `ns`.
async fn reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    events(client, ns, name)
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect()
}

/// (reason, reportingInstance) of the events.k8s.io Events about `name` in `ns`.
async fn events(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.reporting_instance.unwrap_or_default(),
            )
        })
        .collect()
}

/// Connects to `KBO_E2E_KUBECONFIG`, applies `crds/` and creates a fresh namespace
/// `kbo-<tag>-<pid>`; returns the client, the kubeconfig path, the namespace and the testenv
/// Kafka bootstrap. `None` (the test skips, saying why) without a kubeconfig.
async fn setup(tag: &str) -> Option<(Client, String, String, String)> {
    let Ok(kubeconfig) = std::env::var("KBO_E2E_KUBECONFIG") else {
        assert!(
            std::env::var("KBO_E2E_REQUIRED").as_deref() != Ok("1"),
            "KBO_E2E_REQUIRED=1 but KBO_E2E_KUBECONFIG is not set: start the API server (testenv/kube/start.sh or node-start.sh)"
        );
        eprintln!(
            "e2e SKIPPED: KBO_E2E_KUBECONFIG is not set (testenv/kube/build.sh && testenv/kube/start.sh give one; or point it at kind, k3s or any cluster)"
        );
        return None;
    };
    kafka_backup_operator::install_tls_provider();
    let kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = Client::try_from(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();

    // CRDs from crds/ (the same objects), namespace. An API server older than 1.25 does not
    // know CEL rules (x-kubernetes-validations): they are left out there, and the operator's
    // own full validation still applies.
    let version = client.apiserver_version().await.unwrap();
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap_or(99);
    eprintln!("e2e: API server {}", version.git_version);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        let mut v = serde_json::to_value(&crd).unwrap();
        if minor < 25 {
            strip_key(&mut v, "x-kubernetes-validations");
        }
        crds.patch(
            &name,
            &PatchParams::apply("kbo-e2e").force(),
            &Patch::Apply(&v),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ns = format!("kbo-{tag}-{}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
    let bootstrap = std::env::var("KBO_KAFKA_BOOTSTRAP")
        .expect("start the peers: testenv/start.sh && source testenv/env");
    Some((client, kubeconfig, ns, bootstrap))
}

/// Removes every `key` from a JSON tree.
fn strip_key(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| strip_key(x, key));
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip_key(x, key)),
        _ => {}
    }
}

/// A one-off KafkaBackup `name` of `topic` into the directory `store`, paced at
/// `bytes_per_sec`, with 1 MiB segments and a checkpoint every second (so a kill mid-run
/// leaves something to resume from).
fn throttled_backup(
    name: &str,
    bootstrap: &str,
    topic: &str,
    store: &std::path::Path,
    bytes_per_sec: u64,
) -> KafkaBackup {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": name},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [topic], "stopAtCurrentOffsets": true,
                 "compression": "none", "segmentMaxBytes": 1048576, "checkpoint": {"intervalSecs": 1},
                 "rateLimiting": {"bytesPerSec": bytes_per_sec},
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store}}}
    }))
    .unwrap()
}

/// 16 MiB of 1 KiB records in 2 partitions of a new `topic`.
fn gen_load(bootstrap: &str, topic: &str) {
    let (ok, out) = py(&[
        "gen-load",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        "2",
        "--mib",
        "16",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}");
}

fn py(args: &[&str]) -> (bool, String) {
    let python = std::env::var("KBO_PYTHON").expect("source testenv/env");
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/kbo_data.py"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_resources_complete_through_the_api_and_schedules_fire_once_per_tick() {
    let Some((client, kubeconfig, ns, bootstrap)) = setup("e2e").await else {
        return;
    };
    let env = |k: &str| std::env::var(k).expect("source testenv/env");
    let nss: Api<Namespace> = Api::all(client.clone());
    let store = tempfile::tempdir().unwrap();
    let prefix = format!("e2e{}-", std::process::id());
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

    let mut op = operator(&kubeconfig, &ns);
    // The seed's pitr-restore and production-backup, pointed at the testenv broker and S3
    // (moto) with an s3-credentials Secret, through `kubectl apply` alone. The restore goes
    // first, as a GitOps sync may order it: it waits in Pending for its backup's first
    // complete run, then runs.
    let topics = [
        "plain", "gzip", "snappy", "lz4", "zstd", "idem", "txn", "large",
    ]
    .map(|t| format!("{prefix}{t}"));
    let mapping: String = topics.iter().map(|t| format!("    {t}: {t}-r\n")).collect();
    let restore_yaml = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: pitr-restore\nspec:\n  backupRef:\n    name: production-backup\n  pitr:\n    endTime: \"2099-12-01T12:00:00Z\"\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  createTopics: true\n  topicMapping:\n{mapping}"
    );
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-n", &ns, "-f", "-"], &restore_yaml);
    assert!(ok, "kubectl apply: {out}");
    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "wait",
            "-n",
            &ns,
            "--for=jsonpath={.status.phase}=Pending",
            "kafkarestore/pitr-restore",
            "--timeout=60s",
        ],
        "",
    );
    assert!(
        ok,
        "a restore whose KafkaBackup does not exist yet waits in Pending: {out}"
    );
    let backup_yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-credentials\nstringData:\n  AWS_ACCESS_KEY_ID: {ak}\n  AWS_SECRET_ACCESS_KEY: {sk}\n---\napiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: production-backup\nspec:\n  stopAtCurrentOffsets: true\n  kafkaCluster:\n    bootstrapServers:\n    - {bootstrap}\n  topics:\n  - \"{prefix}*\"\n  storage:\n    storageType: s3\n    s3:\n      bucket: {bucket}\n      region: us-east-1\n      endpoint: {endpoint}\n      pathStyle: true\n      allowHttp: true\n      prefix: {ns}\n      credentialsSecret:\n        name: s3-credentials\n",
        ak = env("KBO_S3_ACCESS_KEY"),
        sk = env("KBO_S3_SECRET_KEY"),
        bucket = env("KBO_S3_BUCKET"),
        endpoint = env("KBO_S3_ENDPOINT"),
    );
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-n", &ns, "-f", "-"], &backup_yaml);
    assert!(ok, "kubectl apply: {out}");
    for (kind, name) in [
        ("kafkabackup", "production-backup"),
        ("kafkarestore", "pitr-restore"),
    ] {
        let (ok, out) = kubectl(
            &kubeconfig,
            &[
                "wait",
                "-n",
                &ns,
                "--for=jsonpath={.status.phase}=Completed",
                &format!("{kind}/{name}"),
                "--timeout=180s",
            ],
            "",
        );
        let (_, status) = kubectl(
            &kubeconfig,
            &["get", "-n", &ns, kind, name, "-o", "jsonpath={.status}"],
            "",
        );
        assert!(ok, "{kind}/{name} not Completed: {out}\n{status}");
    }
    let (ok, table) = kubectl(&kubeconfig, &["get", "-n", &ns, "kb,kr"], "");
    eprintln!("e2e: kubectl get kb,kr\n{table}");
    assert!(ok && table.matches("Completed").count() == 2, "{table}");
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    let done = serde_json::to_value(krs.get_status("pitr-restore").await.unwrap()).unwrap();
    assert!(done["status"]["offsetMappingPath"].is_string(), "{done}");
    let r = reasons(&client, &ns, "pitr-restore").await;
    assert!(
        r.contains(&"Waiting".to_string()) && r.contains(&"Completed".to_string()),
        "{r:?}"
    );
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

    // kill the operator mid-backup and mid-restore: each run resumes (checkpoint, journal)
    // under the same run id, with a Retried Event, and no record is lost or doubled
    let big = format!("{prefix}big");
    gen_load(&bootstrap, &big);
    let slow = throttled_backup("slow", &bootstrap, &big, store.path(), 2_000_000);
    kbs.create(&PostParams::default(), &slow).await.unwrap();
    let before = wait_progress(&kbs, "slow", "recordsProcessed").await;
    let st = &before["status"];
    assert!(
        st["recordsPlanned"].as_u64() > st["recordsProcessed"].as_u64()
            && st["progressPercent"].as_f64().is_some_and(|p| p < 100.0)
            && st["etaMs"].as_u64() > Some(0)
            && st["currentTopic"]
                .as_str()
                .is_some_and(|t| t.starts_with(&big)),
        "live progress while running: {st}"
    );
    op.kill();
    op = operator(&kubeconfig, &ns);
    let done = wait_phase(&kbs, "slow", "Completed", Duration::from_secs(180)).await;
    assert_eq!(
        done["status"]["backupId"], before["status"]["backupId"],
        "the interrupted run was resumed, not replaced"
    );
    assert_eq!(
        reasons(&client, &ns, "slow")
            .await
            .iter()
            .filter(|r| *r == "Retried")
            .count(),
        1
    );
    let slow_r: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore", "metadata": {"name": "slow-r"},
        "spec": {"backupRef": {"name": "slow"}, "kafkaCluster": {"bootstrapServers": [bootstrap]},
                 "createTopics": true, "topicMapping": {big.clone(): format!("{big}-r")},
                 "rateLimiting": {"bytesPerSec": 2000000}}
    }))
    .unwrap();
    krs.create(&PostParams::default(), &slow_r).await.unwrap();
    wait_progress(&krs, "slow-r", "recordsRestored").await;
    op.kill();
    op = operator(&kubeconfig, &ns);
    wait_phase(&krs, "slow-r", "Completed", Duration::from_secs(180)).await;
    assert!(
        reasons(&client, &ns, "slow-r")
            .await
            .contains(&"Retried".to_string())
    );
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
        "the restore resumed after a kill differs from the source:\n{out}"
    );

    // a 10-second schedule, across an operator restart: one run per tick, never two
    let sched: KafkaBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": "every-10s"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [format!("{prefix}zstd")], "schedule": "*/10 * * * * *",
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}}
    }))
    .unwrap();
    kbs.create(&PostParams::default(), &sched).await.unwrap();
    tokio::time::sleep(Duration::from_secs(25)).await;
    op.kill();
    op = operator(&kubeconfig, &ns);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let st = serde_json::to_value(kbs.get_status("every-10s").await.unwrap()).unwrap();
    let runs: Vec<String> = st["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_str().unwrap().to_string())
        .collect();
    let mut unique = runs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), runs.len(), "a tick ran twice: {runs:?}");
    assert!(
        runs.iter().all(|r| r.ends_with("0.000Z")),
        "run ids come from 10-second ticks: {runs:?}"
    );
    assert!(
        runs.len() >= 3,
        "about one run per tick over ~50 s: {runs:?}"
    );

    op.kill();
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// The Lease's holder in `ns` (empty while none).
async fn lease_holder(client: &Client, ns: &str) -> String {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), ns);
    leases
        .get_opt("kafka-backup-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_run_each_run_once_and_the_follower_takes_over_a_killed_leaders_run() {
    let Some((client, kubeconfig, ns, bootstrap)) = setup("ha").await else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let topic = format!("ha{}-big", std::process::id());
    gen_load(&bootstrap, &topic);
    // two replicas, leader election on a Lease in the test's namespace
    let election = ["--leader-election", "--lease-namespace", ns.as_str()];
    let mut replicas = vec![
        (
            "kbo-a",
            operator_with(&kubeconfig, &ns, &election, Some("kbo-a")),
        ),
        (
            "kbo-b",
            operator_with(&kubeconfig, &ns, &election, Some("kbo-b")),
        ),
    ];
    let t = Instant::now();
    let leader = loop {
        let h = lease_holder(&client, &ns).await;
        if !h.is_empty() {
            break h;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no replica took the Lease"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("e2e: leader {leader}");

    // a one-off backup runs once, on the leader only
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let spec =
        |name: &str, rate: u64| throttled_backup(name, &bootstrap, &topic, store.path(), rate);
    kbs.create(&PostParams::default(), &spec("once", 100_000_000))
        .await
        .unwrap();
    wait_phase(&kbs, "once", "Completed", Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // let a wrong second run show up
    let ev = events(&client, &ns, "once").await;
    let started: Vec<_> = ev.iter().filter(|(r, _)| r == "Started").collect();
    assert_eq!(started.len(), 1, "one run, on one replica: {ev:?}");
    assert!(
        ev.iter().all(|(_, who)| *who == leader),
        "only the leader acts: {ev:?}"
    );

    // kill -9 the leader mid-run: the follower takes the Lease once it expires and resumes
    // the same run from its checkpoint
    kbs.create(&PostParams::default(), &spec("slow", 2_000_000))
        .await
        .unwrap();
    let before = wait_progress(&kbs, "slow", "recordsProcessed").await;
    let i = replicas.iter().position(|(n, _)| *n == leader).unwrap();
    let (_, mut l) = replicas.remove(i);
    l.kill();
    let killed_at = Instant::now();
    let done = wait_phase(&kbs, "slow", "Completed", Duration::from_secs(180)).await;
    let follower = replicas[0].0;
    assert_eq!(lease_holder(&client, &ns).await, follower);
    assert_eq!(
        done["status"]["backupId"], before["status"]["backupId"],
        "the killed leader's run was resumed, not replaced"
    );
    let ev = events(&client, &ns, "slow").await;
    let by = |reason: &str| -> Vec<&str> {
        ev.iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, w)| w.as_str())
            .collect()
    };
    assert_eq!(by("Started"), vec![leader.as_str()], "{ev:?}");
    assert_eq!(by("Retried"), vec![follower], "{ev:?}");
    assert_eq!(by("Completed"), vec![follower], "{ev:?}");
    eprintln!(
        "e2e: failover and completion {:?} after the kill",
        killed_at.elapsed()
    );
    for (_, mut r) in replicas {
        r.kill();
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// A TCP proxy on loopback to `target`; sending `true` cuts it: open connections are dropped
/// and new ones closed at once, as a network partition would.
async fn cuttable_proxy(target: String) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if *rx.borrow() {
                continue; // dropped: the connection is closed
            }
            let (target, mut cut) = (target.clone(), rx.clone());
            tokio::spawn(async move {
                let Ok(mut out) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                    _ = cut.wait_for(|c| *c) => {}
                }
            });
        }
    });
    (port, tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_cut_off_from_the_api_server_stops_its_run_before_the_follower_takes_over() {
    let Some((client, kubeconfig, ns, bootstrap)) = setup("fence").await else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let topic = format!("fence{}-big", std::process::id());
    gen_load(&bootstrap, &topic);

    // replica a reaches the API server through a proxy the test can cut; b directly
    let mut kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let cluster = kc.clusters[0].cluster.as_mut().unwrap();
    let server: http::Uri = cluster.server.clone().unwrap().parse().unwrap();
    let (port, cut) = cuttable_proxy(server.authority().unwrap().to_string()).await;
    cluster.server = Some(format!("https://127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let kc_a = dir.path().join("kubeconfig-a");
    std::fs::write(&kc_a, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    let log_a = dir.path().join("a.log");
    let election = ["--leader-election", "--lease-namespace", ns.as_str()];
    let mut a = operator_logged(
        kc_a.to_str().unwrap(),
        &ns,
        &election,
        Some("kbo-a"),
        Some(&log_a),
    );
    let t = Instant::now();
    while lease_holder(&client, &ns).await != "kbo-a" {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "a never took the Lease"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut b = operator_with(&kubeconfig, &ns, &election, Some("kbo-b"));

    // a slow backup (16 MiB at 400 kB/s) starts on a; then a is cut off from the API server
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let kb = throttled_backup("slow", &bootstrap, &topic, store.path(), 400_000);
    kbs.create(&PostParams::default(), &kb).await.unwrap();
    let before = wait_progress(&kbs, "slow", "recordsProcessed").await;
    cut.send(true).unwrap();
    let cut_at = jiff::Timestamp::now();
    let done = wait_phase(&kbs, "slow", "Completed", Duration::from_secs(240)).await;
    assert_eq!(lease_holder(&client, &ns).await, "kbo-b");
    assert_eq!(
        done["status"]["backupId"], before["status"]["backupId"],
        "b resumed a's run"
    );
    assert_eq!(
        done["status"]["recordsProcessed"], 16384,
        "every record once: {}",
        done["status"]
    );

    // a stopped leading (and cancelled its run) before b took the Lease
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns);
    let acquired = leases
        .get("kafka-backup-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .acquire_time
        .unwrap()
        .0;
    let log = std::fs::read_to_string(&log_a).unwrap();
    let stopped: jiff::Timestamp = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "leadership changed" && v["fields"]["leading"] == false)
        .unwrap_or_else(|| panic!("a never stopped leading; its log:\n{log}"))["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "e2e: cut {cut_at}, a stopped {stopped} ({:.1} s later), b acquired the Lease {acquired}",
        (stopped - cut_at).total(jiff::Unit::Second).unwrap()
    );
    assert!(
        stopped < acquired,
        "a stopped at {stopped}, after b took over at {acquired}"
    );
    // cut off, a retries its API calls with backoff, not in a hot loop
    let connect_errors = log
        .lines()
        .filter(|l| l.contains("client error (Connect)"))
        .count();
    assert!(
        connect_errors < 300,
        "{connect_errors} failed connections logged by a"
    );
    let ev = events(&client, &ns, "slow").await;
    assert!(
        ev.iter().any(|(r, who)| r == "Retried" && who == "kbo-b"),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|(r, who)| r == "Completed" && who == "kbo-b"),
        "{ev:?}"
    );
    for p in [&mut a, &mut b] {
        p.kill();
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// The committed offsets of `group` on `topic` (OffsetFetch through confluent-kafka), as
/// partition -> offset.
fn committed(group: &str, topic: &str, bootstrap: &str) -> std::collections::BTreeMap<String, i64> {
    let (ok, out) = py(&[
        "group-committed",
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--topics",
        topic,
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    serde_json::from_value(v[topic].clone()).unwrap()
}

/// Consumer groups and validation through the API (issues 7 and 8): a restore with
/// `autoConsumerGroups` hands a real group its next unread record on every partition; the group
/// is reset to-earliest (snapshot first, in a ConfigMap), then
/// rolled back to that snapshot by `offsetResetRef` with verification; a validation on a
/// 10-second schedule runs once per tick (distinct ticks 10 s apart in its history, each with
/// a stored evidence report that passed, and a restore check into scratch topics).
#[tokio::test(flavor = "multi_thread")]
async fn offsets_reset_and_roll_back_and_a_validation_runs_once_per_tick() {
    use kafka_backup_operator::api::validation::KafkaBackupValidation;
    use kafka_backup_operator::api::{KafkaOffsetReset, KafkaOffsetRollback};
    let Some((client, kubeconfig, ns, bootstrap)) = setup("e2o").await else {
        return;
    };
    let _op = operator(&kubeconfig, &ns);
    let topic = format!("e2o-{}", std::process::id());
    let (ok, out) = py(&[
        "gen-load",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &topic,
        "--partitions",
        "2",
        "--mib",
        "1",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}");
    let group = format!("e2o-g-{}", std::process::id());
    let (ok, out) = py(&[
        "group-commit",
        "--bootstrap",
        &bootstrap,
        "--group",
        &group,
        "--topic",
        &topic,
        "--per-partition",
        "50",
    ]);
    assert!(ok, "{out}");
    let before = committed(&group, &topic, &bootstrap);
    assert_eq!(before.values().copied().collect::<Vec<_>>(), vec![50, 50]);
    let store = tempfile::tempdir().unwrap();

    // the backup the validation checks
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let kb: KafkaBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": "ob"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [topic],
                 "stopAtCurrentOffsets": true, "consumerGroupSnapshot": true,
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}}
    }))
    .unwrap();
    kbs.create(&PostParams::default(), &kb).await.unwrap();
    wait_phase(&kbs, "ob", "Completed", Duration::from_secs(90)).await;

    // a restore with autoConsumerGroups: the group, started on the restored topic, is given
    // the record at its committed offset (50) first on every partition
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    let restored = format!("{topic}-r");
    let kr: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore", "metadata": {"name": "or"},
        "spec": {"backupRef": {"name": "ob"}, "kafkaCluster": {"bootstrapServers": [bootstrap]},
                 "createTopics": true, "topicMapping": {topic.clone(): restored.clone()},
                 "autoConsumerGroups": true}
    }))
    .unwrap();
    krs.create(&PostParams::default(), &kr).await.unwrap();
    let o = wait_phase(&krs, "or", "Completed", Duration::from_secs(90)).await;
    assert!(
        o["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&group),
        "the group's result is in status: {}",
        o["status"]
    );
    assert_eq!(
        o["status"]["rollback"]["rollbackAvailable"], true,
        "{}",
        o["status"]
    );
    let (ok, out) = py(&[
        "group-next",
        "--bootstrap",
        &bootstrap,
        "--group",
        &group,
        "--topics",
        &restored,
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    for p in ["0", "1"] {
        assert_eq!(
            v["first"][&restored][p]["offset"], 50,
            "partition {p}: the next unread record, no gap, no duplicate: {v}"
        );
    }

    // reset to-earliest, snapshot first
    let kors: Api<KafkaOffsetReset> = Api::namespaced(client.clone(), &ns);
    let kor: KafkaOffsetReset = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaOffsetReset", "metadata": {"name": "reset"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "consumerGroups": [group],
                 "resetStrategy": "to-earliest", "topics": [topic], "snapshotBeforeReset": true}
    }))
    .unwrap();
    kors.create(&PostParams::default(), &kor).await.unwrap();
    let o = wait_phase(&kors, "reset", "Completed", Duration::from_secs(60)).await;
    assert!(o["status"]["snapshotId"].is_string(), "{}", o["status"]);
    assert_eq!(o["status"]["groupsReset"], 1, "{}", o["status"]);
    let after = committed(&group, &topic, &bootstrap);
    assert!(
        after.values().all(|o| *o == 0),
        "reset to-earliest: {after:?}"
    );

    // roll back to the reset's snapshot, verified
    let korbs: Api<KafkaOffsetRollback> = Api::namespaced(client.clone(), &ns);
    let korb: KafkaOffsetRollback = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaOffsetRollback", "metadata": {"name": "back"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]},
                 "snapshotRef": {"offsetResetRef": "reset"}, "verifyAfterRollback": true}
    }))
    .unwrap();
    korbs.create(&PostParams::default(), &korb).await.unwrap();
    let o = wait_phase(&korbs, "back", "Completed", Duration::from_secs(60)).await;
    assert_eq!(
        o["status"]["verification"]["allMatched"], true,
        "{}",
        o["status"]
    );
    assert_eq!(
        committed(&group, &topic, &bootstrap),
        before,
        "the rollback is exact"
    );

    // a validation every 10 seconds
    let kbvs: Api<KafkaBackupValidation> = Api::namespaced(client.clone(), &ns);
    let kbv: KafkaBackupValidation = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackupValidation", "metadata": {"name": "nightly"},
        "spec": {"backupRef": {"name": "ob"}, "schedule": "*/10 * * * * *",
                 "kafkaCluster": {"bootstrapServers": [bootstrap]},
                 "evidence": {"formats": ["json", "pdf"]}}
    }))
    .unwrap();
    kbvs.create(&PostParams::default(), &kbv).await.unwrap();
    let o = wait_for(
        &kbvs,
        "nightly",
        "two scheduled validations",
        Duration::from_secs(60),
        Duration::from_millis(500),
        |o| {
            o["status"]["history"]
                .as_array()
                .is_some_and(|h| h.len() >= 2)
                && o["status"]["phase"] == "Completed"
        },
    )
    .await;
    let st = &o["status"];
    assert_eq!(st["validationResult"], "Pass", "{st}");
    // the backup was restored into scratch topics and compared record by record
    let restore_check = st["checkResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["checkName"] == "restoreRecords")
        .unwrap_or_else(|| panic!("a restore check: {st}"));
    assert_eq!(restore_check["outcome"], "Pass", "{st}");
    assert!(
        restore_check["message"]
            .as_str()
            .unwrap_or("")
            .contains("records=1024"),
        "{st}"
    );
    let hist = st["history"].as_array().unwrap();
    let times: Vec<jiff::Timestamp> = hist
        .iter()
        .map(|h| h["finishedAt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times[0] > times[1], "newest first: {st}");
    let ids: std::collections::BTreeSet<&str> = hist
        .iter()
        .map(|h| h["reportId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), hist.len(), "one report per run: {st}");
    for h in hist {
        assert_eq!(h["result"], "Pass", "{h}");
        let path = store.path().join(h["evidenceReportPath"].as_str().unwrap());
        assert!(path.exists(), "stored: {}", path.display());
    }
    let last: jiff::Timestamp = st["lastScheduleTime"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = st["nextScheduledValidation"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last.as_second() % 10, 0, "{st}");
    assert_eq!(next.as_second() - last.as_second(), 10, "{st}");
    // one run per tick: over 12 more seconds at most two more runs, never two for one tick
    tokio::time::sleep(Duration::from_secs(12)).await;
    let o = serde_json::to_value(kbvs.get_status("nightly").await.unwrap()).unwrap();
    let hist = o["status"]["history"].as_array().unwrap();
    let ticks: Vec<i64> = hist
        .iter()
        .map(|h| {
            h["finishedAt"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
                / 10
        })
        .collect();
    let distinct: std::collections::BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "never two runs for one tick: {}",
        o["status"]
    );
    assert!(hist.len() <= 5, "{}", o["status"]);
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// `kubectl kafkabackup ARGS` against `kubeconfig`: (success, stdout, stderr).
fn plugin(kubeconfig: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl kafkabackup status` reads the five kinds from the API server: a KafkaBackup with a
/// recoverability window and its validation, a failed KafkaRestore with its reason, as JSON
/// and as a table; NAME and -A; status written through the status subresource (no operator).
#[tokio::test(flavor = "multi_thread")]
async fn plugin_status_shows_phase_window_validation_and_failure_from_the_api_server() {
    use kafka_backup_operator::api::validation::KafkaBackupValidation;
    let Some((client, kubeconfig, ns, bootstrap)) = setup("e2st").await else {
        return;
    };
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    let kbvs: Api<KafkaBackupValidation> = Api::namespaced(client.clone(), &ns);
    let storage =
        serde_json::json!({"storageType": "filesystem", "filesystem": {"path": "/nowhere"}});
    let cluster = serde_json::json!({"bootstrapServers": [bootstrap]});
    let pp = PostParams::default();
    let kb = serde_json::json!({"apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
        "metadata": {"name": "orders"},
        "spec": {"kafkaCluster": cluster, "topics": ["orders"], "storage": storage,
                 "schedule": "0 * * * *", "retention": {"enabled": true, "keepLast": 3}}});
    kbs.create(&pp, &serde_json::from_value(kb).unwrap())
        .await
        .unwrap();
    let kr = serde_json::json!({"apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
        "metadata": {"name": "orders-dr"},
        "spec": {"backupRef": {"name": "orders"}, "kafkaCluster": cluster}});
    krs.create(&pp, &serde_json::from_value(kr).unwrap())
        .await
        .unwrap();
    let kbv = serde_json::json!({"apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackupValidation",
        "metadata": {"name": "nightly"}, "spec": {"backupRef": {"name": "orders"}}});
    kbvs.create(&pp, &serde_json::from_value(kbv).unwrap())
        .await
        .unwrap();
    let merge = |status: serde_json::Value| Patch::Merge(serde_json::json!({ "status": status }));
    let p = PatchParams::default();
    kbs.patch_status(
        "orders",
        &p,
        &merge(serde_json::json!({
        "phase": "Completed", "completionTime": "2026-12-06T10:00:05Z",
        "nextScheduledBackup": "2026-12-06T11:00:00Z",
        "firstRecoverabilityPoint": "2026-12-01T00:00:00.123Z",
        "lastRecoverabilityPoint": "2026-12-06T09:59:59.999Z",
        "recordsProcessed": 1200, "bytesProcessed": 4096})),
    )
    .await
    .unwrap();
    krs.patch_status(
        "orders-dr",
        &p,
        &merge(serde_json::json!({
        "phase": "Failed", "completionTime": "2026-12-06T10:30:00Z",
        "message": "topic orders holds records: set purgeTopics or appendToExisting"})),
    )
    .await
    .unwrap();
    kbvs.patch_status(
        "nightly",
        &p,
        &merge(serde_json::json!({
        "phase": "Completed", "validationResult": "Pass",
        "lastValidationTime": "2026-12-06T02:00:00Z"})),
    )
    .await
    .unwrap();

    let (ok, out, err) = plugin(&kubeconfig, &["status", "-n", &ns, "-o", "json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["KafkaBackup", "KafkaRestore", "KafkaBackupValidation"],
        "{out}"
    );
    let b = &rows[0];
    assert_eq!(b["name"], "orders");
    assert_eq!(b["phase"], "Completed");
    assert_eq!(b["lastRun"], "2026-12-06T10:00:05Z");
    assert_eq!(b["nextRun"], "2026-12-06T11:00:00Z");
    assert_eq!(b["recoverableFrom"], "2026-12-01T00:00:00.123Z");
    assert_eq!(b["recoverableTo"], "2026-12-06T09:59:59.999Z");
    assert_eq!(
        (b["records"].as_u64(), b["bytes"].as_u64()),
        (Some(1200), Some(4096))
    );
    assert_eq!(b["validatedBy"], "nightly");
    assert_eq!(b["validationResult"], "Pass");
    assert_eq!(b["retention"], "keepLast 3");
    assert!(b.get("failure").is_none(), "{out}");
    assert_eq!(rows[1]["phase"], "Failed");
    assert_eq!(
        rows[1]["failure"],
        "topic orders holds records: set purgeTopics or appendToExisting"
    );

    // the table, one resource by NAME: no colour off a terminal
    let (ok, out, err) = plugin(&kubeconfig, &["status", "orders-dr", "-n", &ns]);
    assert!(ok, "{err}");
    assert!(out.starts_with("KIND "), "{out}");
    assert!(out.contains("orders-dr") && out.contains("Failed"), "{out}");
    assert!(
        !out.contains("KafkaBackup ") && !out.contains('\x1b'),
        "{out}"
    );
    assert!(
        out.contains("    failed: topic orders holds records"),
        "{out}"
    );
    let (ok, out, err) = plugin(&kubeconfig, &["status", "orders", "-n", &ns, "-o", "yaml"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("recoverableTo: 2026-12-06T09:59:59.999Z"),
        "{out}"
    );
    // -A: every namespace, NAMESPACE first; --kubeconfig instead of KUBECONFIG
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
        .args(["status", "orders", "-A", "--kubeconfig", &kubeconfig])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("NAMESPACE "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&ns) && l.contains("2026-12-01T00:00:00.123Z .. ")),
        "{text}"
    );
    // a name that is nowhere is an error
    let (ok, _, err) = plugin(&kubeconfig, &["status", "nothing-here", "-n", &ns]);
    assert!(!ok && err.contains("no resource named"), "{err}");
    // a user who may list KafkaBackups only: the other kinds are skipped with a warning
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: kb-viewer, namespace: {ns}}}\nrules:\n- apiGroups: [kafka.oso.sh]\n  resources: [kafkabackups]\n  verbs: [list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: kb-viewer, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kb-viewer}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: kbo-e2e-kb-viewer}}\n"
    );
    let (ok, out) = kubectl(&kubeconfig, &["apply", "-f", "-"], &rbac);
    assert!(ok, "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let mut kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    kc["users"][0]["user"]["as"] = "kbo-e2e-kb-viewer".into();
    let viewer = tmp.path().join("viewer.kubeconfig");
    std::fs::write(&viewer, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    let viewer = viewer.to_str().unwrap();
    let mut seen = (false, String::new(), String::new());
    for _ in 0..20 {
        // RBAC takes a moment to apply
        seen = plugin(viewer, &["status", "-n", &ns, "-o", "json"]);
        if seen.0 && seen.2.contains("kafkarestores") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, out, err) = seen;
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(rows[0]["kind"], "KafkaBackup");
    assert!(
        err.contains("warning: skipped: you may not list kafkarestores.kafka.oso.sh"),
        "{err}"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// Backup sync (issue 20): a repository written elsewhere (here by the CLI, as another
/// cluster's operator would, as KafkaBackup elsewhere/orders) is not shown by KafkaBackup
/// orders of another namespace (a Warning `SyncFailed` Event) until it is annotated to adopt
/// it; then its runs and recoverability window show in status before anything runs here,
/// with a `Synced` Event; a KafkaRestore naming that run (`backupRef.name` and
/// `backupRef.backupId`) restores it record-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_clusters_backup_shows_an_existing_repositorys_runs_without_running() {
    let Some((client, kubeconfig, ns, bootstrap)) = setup("sync").await else {
        return;
    };
    let topic = format!("synced-{}", std::process::id());
    gen_load(&bootstrap, &topic);
    let store = tempfile::tempdir().unwrap();
    let spec = serde_json::json!({
        "kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [topic],
        "stopAtCurrentOffsets": true,
        "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}
    });
    // the other cluster: a one-off run of a KafkaBackup of the same name, by the CLI
    let file = store.path().join("elsewhere.yaml");
    let elsewhere = serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
        "metadata": {"name": "orders", "namespace": "elsewhere"}, "spec": spec
    });
    std::fs::write(&file, serde_json::to_string(&elsewhere).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(["run", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CLI backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _op = operator(&kubeconfig, &ns);
    let mut here = elsewhere.clone();
    here["metadata"] = serde_json::json!({"name": "orders"});
    here["spec"]["schedule"] = serde_json::json!("0 0 1 1 *"); // yearly: nothing due
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    kbs.create(
        &PostParams::default(),
        &serde_json::from_value(here).unwrap(),
    )
    .await
    .unwrap();
    // the repository is elsewhere/orders': not shown until this KafkaBackup adopts it
    let t = Instant::now();
    while !reasons(&client, &ns, "orders")
        .await
        .iter()
        .any(|x| x == "SyncFailed")
    {
        assert!(t.elapsed() < Duration::from_secs(60), "no SyncFailed Event");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let o = kbs.get_status("orders").await.unwrap();
    let st = serde_json::to_value(&o.status).unwrap();
    assert!(
        st["recoverableRuns"].is_null(),
        "another owner's runs shown: {st}"
    );
    let annotate = serde_json::json!({"metadata": {"annotations": {"kafka.oso.sh/adopt-repository": "elsewhere/orders"}}});
    kbs.patch("orders", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let o = wait_for(
        &kbs,
        "orders",
        "recoverableRuns",
        Duration::from_secs(90),
        Duration::from_millis(500),
        |o| o["status"]["recoverableRuns"].is_u64(),
    )
    .await;
    let st = &o["status"];
    assert_eq!(st["recoverableRuns"], 1, "{st}");
    let run_id = st["history"][0]["runId"]
        .as_str()
        .expect("history")
        .to_string();
    assert!(st["history"][0]["records"].as_u64().unwrap() > 0, "{st}");
    for f in ["firstRecoverabilityPoint", "lastRecoverabilityPoint"] {
        assert!(st[f].is_string(), "{f}: {st}");
    }
    assert_eq!(st["topics"][0]["name"], topic.as_str(), "{st}");
    assert_ne!(st["phase"], "Running", "nothing runs here: {st}");
    assert!(st["backupId"].is_null(), "no run of its own: {st}");
    // the window and the Ready condition in `kubectl get` (Message with -o wide)
    let (ok, table) = kubectl(
        &kubeconfig,
        &["get", "kb", "orders", "-n", &ns, "-o", "wide"],
        "",
    );
    assert!(ok, "{table}");
    let header = table.lines().next().unwrap_or_default();
    for col in ["RECOVERABLE FROM", "RECOVERABLE TO", "READY", "MESSAGE"] {
        assert!(header.contains(col), "no {col} column:\n{table}");
    }
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("True")),
        "{table}"
    );
    let r = reasons(&client, &ns, "orders").await;
    assert!(r.iter().any(|x| x == "Synced"), "{r:?}");
    assert!(r.iter().any(|x| x == "SyncFailed"), "first refused: {r:?}");
    assert!(
        !r.iter().any(|x| x == "Started" || x == "Scheduled"),
        "{r:?}"
    );

    // a KafkaRestore names that run
    let target = format!("{topic}-r");
    let kr: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
        "metadata": {"name": "from-synced"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]},
                 "backupRef": {"name": "orders", "backupId": run_id},
                 "topicMapping": {topic.clone(): target.clone()}, "createTopics": true}
    }))
    .unwrap();
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    krs.create(&PostParams::default(), &kr).await.unwrap();
    let done = wait_phase(&krs, "from-synced", "Completed", Duration::from_secs(120)).await;
    assert_eq!(done["status"]["backupId"], run_id.as_str());
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &topic,
        "--target-topics",
        &target,
    ]);
    assert!(ok, "restored data differs:\n{out}");
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// `kubectl kafkabackup backup NAME --now --wait` and `restore NAME --to-time T --apply`
/// (issue 20): a one-off KafkaBackup completes under a local operator; `backup --now --wait`
/// triggers and follows a second run to Completed; `restore` refuses a --to-time outside the
/// recoverability window, prints a KafkaRestore (no status) for one inside it, and with
/// --apply creates it: it completes, and the target holds exactly the records with timestamp
/// <= T (compared with confluent-kafka); `restore --to-offsets FILE --apply` restores exactly
/// the source offsets below the given end offsets.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_backup_now_waits_and_restore_to_time_applies_a_restore_that_cuts_at_t() {
    let Some((client, kubeconfig, ns, bootstrap)) = setup("plre").await else {
        return;
    };
    let topic = format!("plre-{}", std::process::id());
    gen_load(&bootstrap, &topic);
    let store = tempfile::tempdir().unwrap();
    let kb: KafkaBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": "orders"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [topic],
                 "stopAtCurrentOffsets": true,
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}}
    }))
    .unwrap();
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    kbs.create(&PostParams::default(), &kb).await.unwrap();
    let _op = operator(&kubeconfig, &ns);
    let first = wait_phase(&kbs, "orders", "Completed", Duration::from_secs(120)).await;
    let first_id = first["status"]["backupId"].as_str().unwrap().to_string();

    // backup --now --wait: a second run, followed to Completed
    let (ok, out, err) = plugin(
        &kubeconfig,
        &[
            "backup",
            "orders",
            "--now",
            "--wait",
            "--timeout",
            "3m",
            "-n",
            &ns,
        ],
    );
    assert!(ok, "backup --now --wait: {out}{err}");
    assert!(out.contains("annotated kafka.oso.sh/run-now="), "{out}");
    assert!(out.contains("completed: run "), "{out}");
    let o = serde_json::to_value(kbs.get_status("orders").await.unwrap()).unwrap();
    let st = &o["status"];
    assert_eq!(st["phase"], "Completed", "{st}");
    assert_ne!(st["backupId"], first_id.as_str(), "a second run: {st}");
    let token = o["metadata"]["annotations"]["kafka.oso.sh/run-now"].clone();
    assert_eq!(st["lastRunTrigger"], token, "{st}");

    // a --to-time outside the window is refused, naming the flag
    let (ok, _, err) = plugin(
        &kubeconfig,
        &[
            "restore",
            "orders",
            "--to-time",
            "2001-01-01T00:00:00Z",
            "-n",
            &ns,
        ],
    );
    assert!(
        !ok && err.contains("--to-time 2001-01-01T00:00:00Z: outside the recoverability window"),
        "{err}"
    );

    // T: the middle of the window
    let ms = |f: &str| {
        let t: jiff::Timestamp = st[f].as_str().unwrap().parse().unwrap();
        t.as_millisecond()
    };
    let (lo, hi) = (
        ms("firstRecoverabilityPoint"),
        ms("lastRecoverabilityPoint"),
    );
    assert!(lo < hi, "{st}");
    let t_ms = lo + (hi - lo) / 2;
    let t = jiff::Timestamp::from_millisecond(t_ms).unwrap().to_string();
    let target = format!("{topic}-r");
    let map = format!("{topic}={target}");
    let args = [
        "restore",
        "orders",
        "--to-time",
        &t,
        "--map",
        &map,
        "--create-topics",
        "-n",
        &ns,
    ];
    let (ok, yaml, err) = plugin(&kubeconfig, &args);
    assert!(ok, "{err}");
    let printed: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(printed["kind"], "KafkaRestore", "{yaml}");
    assert_eq!(printed["spec"]["backupRef"]["name"], "orders", "{yaml}");
    assert_eq!(printed["spec"]["pitr"]["endTime"], t.as_str(), "{yaml}");
    assert_eq!(printed["spec"]["topicMapping"][&topic], target.as_str());
    assert!(printed.get("status").is_none(), "{yaml}");
    // the plan on stderr: the second run, the cut, the topic to create
    let second = st["backupId"].as_str().unwrap();
    assert!(
        err.contains(&format!("from backup orders run {second}")),
        "{err}"
    );
    assert!(err.contains(&format!("create topic {target} ")), "{err}");

    let mut apply = args.to_vec();
    apply.push("--apply");
    let (ok, out, err) = plugin(&kubeconfig, &apply);
    assert!(ok, "{err}");
    let name = out
        .trim()
        .strip_prefix("kafkarestore/")
        .and_then(|s| s.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(name.starts_with("orders-restore-"), "{name}");
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    wait_phase(&krs, &name, "Completed", Duration::from_secs(180)).await;
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &topic,
        "--target-topics",
        &target,
        "--pitr-end",
        &t_ms.to_string(),
    ]);
    assert!(
        ok,
        "restored records are not exactly those up to {t}:\n{out}"
    );
    // the cut is inside the data: some records restored, not all 16384
    let restored: u64 = out
        .lines()
        .find(|l| l.starts_with(&format!("{topic} ")))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(restored > 0 && restored < 16384, "{out}");
    eprintln!("restored {restored} of 16384 records, up to {t}");

    // restore --to-offsets FILE: source end offsets (exclusive), partition 0 cut inside the
    // data, partition 1 after its first record; applied: exactly those offsets restored
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offsets.yaml");
    std::fs::write(
        &file,
        format!("- {{topic: {topic}, partition: 0, offset: 1000}}\n- {{topic: {topic}, partition: 1, offset: 1}}\n"),
    )
    .unwrap();
    let by_offset = format!("{topic}-o");
    let omap = format!("{topic}={by_offset}");
    let (ok, out, err) = plugin(
        &kubeconfig,
        &[
            "restore",
            "orders",
            "--to-offsets",
            file.to_str().unwrap(),
            "--map",
            &omap,
            "--create-topics",
            "--name",
            "by-offsets",
            "--no-plan",
            "--apply",
            "-n",
            &ns,
        ],
    );
    assert!(
        ok && out.contains("kafkarestore/by-offsets created"),
        "{out}{err}"
    );
    wait_phase(&krs, "by-offsets", "Completed", Duration::from_secs(180)).await;
    let bounds = format!("{topic}:0::1000,{topic}:1::1");
    let (ok, out) = py(&[
        "compare",
        "--bootstrap",
        &bootstrap,
        "--source-topics",
        &topic,
        "--target-topics",
        &by_offset,
        "--offset-bounds",
        &bounds,
    ]);
    assert!(
        ok,
        "restored records are not exactly offsets 0..1000 of partition 0 and 0..1 of partition 1:\n{out}"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// `kubectl kafkabackup report`: a KafkaBackup to S3 with its credentials Secret, run by the
/// operator to Completed; the tarball holds the namespace's resources, their Events, the
/// repository's run manifest and repository.json, and the Secret's key appears nowhere in it
/// (nor the Secret object). The operator runs as a local process here, not a Pod: its logs
/// are not in the report (a note says no Pod matched), and `logs` only finds no Pod here
/// (its filtering is covered by unit tests on the operator's JSON lines).
#[tokio::test(flavor = "multi_thread")]
async fn plugin_report_writes_resources_events_manifests_and_no_secret() {
    use std::io::Read;
    let Some((client, kubeconfig, ns, bootstrap)) = setup("rprt").await else {
        return;
    };
    let topic = format!("reported-{}", std::process::id());
    let (ok, out) = py(&[
        "gen-load",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &topic,
        "--partitions",
        "1",
        "--mib",
        "1",
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}");
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}: source testenv/env"));
    let secret_key = var("KBO_S3_SECRET_KEY");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let s = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds"},
        "stringData": {"AWS_ACCESS_KEY_ID": var("KBO_S3_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY": secret_key}});
    secrets
        .create(&PostParams::default(), &serde_json::from_value(s).unwrap())
        .await
        .unwrap();
    let kb = serde_json::json!({"apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
        "metadata": {"name": "orders"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [topic],
                 "stopAtCurrentOffsets": true,
                 "storage": {"storageType": "s3", "s3": {"bucket": var("KBO_S3_BUCKET"),
                     "region": "us-east-1", "endpoint": var("KBO_S3_ENDPOINT"), "pathStyle": true,
                     "allowHttp": true, "prefix": format!("report-{ns}"),
                     "credentialsSecret": {"name": "s3-creds"}}}}});
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    kbs.create(&PostParams::default(), &serde_json::from_value(kb).unwrap())
        .await
        .unwrap();
    let _op = operator(&kubeconfig, &ns);
    let done = wait_phase(&kbs, "orders", "Completed", Duration::from_secs(120)).await;
    let run = done["status"]["backupId"].as_str().unwrap().to_string();
    // a careless annotation that repeats the key: the report must hide it
    let leak = serde_json::json!({"metadata": {"annotations": {"kbo-e2e/leak": secret_key}}});
    kbs.patch("orders", &PatchParams::default(), &Patch::Merge(&leak))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("report.tar.gz");
    let (ok, out, err) = plugin(
        &kubeconfig,
        &["report", "-n", &ns, "-o", path.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(out.contains("resources/kafkabackups.yaml"), "{out}");
    assert!(out.contains(&format!("wrote {}", path.display())), "{out}");
    let mut raw = vec![];
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&secret_key),
        "the Secret's key is in the tarball"
    );
    let dir = tmp.path().join("x");
    tar::Archive::new(raw.as_slice()).unpack(&dir).unwrap();
    let root = dir.join(format!("kafkabackup-report-{ns}"));
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}\n{out}"))
    };
    let kb_yaml = read("resources/kafkabackups.yaml");
    assert!(kb_yaml.contains("name: orders") && kb_yaml.contains("phase: Completed"));
    assert!(!kb_yaml.contains("managedFields"), "{kb_yaml}");
    assert!(kb_yaml.contains("kbo-e2e/leak: '***'"), "{kb_yaml}");
    for kind in [
        "kafkarestores",
        "kafkabackupvalidations",
        "kafkaoffsetresets",
        "kafkaoffsetrollbacks",
    ] {
        read(&format!("resources/{kind}.yaml"));
    }
    let events = read("events.yaml");
    assert!(
        events.contains("reason: Completed") && events.contains("name: orders"),
        "{events}"
    );
    let manifest: serde_json::Value = serde_json::from_str(&read(&format!(
        "repository/orders/runs/{run}/manifest.json"
    )))
    .unwrap();
    assert_eq!(manifest["runId"], run.as_str(), "{manifest}");
    assert!(read("repository/orders/repository.json").contains("orders"));
    assert!(read("README.txt").contains("operator-logs: no Pod matches"));
    // nothing of the Secret: not the object, not its key in any file
    let mut files = vec![root.clone()];
    let mut n = 0;
    while let Some(d) = files.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files.push(p);
            } else {
                n += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(!text.contains(&secret_key), "{}", p.display());
                assert!(!text.contains("kind: Secret"), "{}", p.display());
            }
        }
    }
    assert!(n >= 9, "{out}");
    // `logs` through the same API server: no operator Pod here (a local process), said so
    let (ok, out, err) = plugin(&kubeconfig, &["logs", "orders", "-n", &ns, "--kind", "kb"]);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no operator Pod matches app.kubernetes.io/name=kafka-backup-operator"),
        "{err}"
    );
    let (ok, _, err) = plugin(&kubeconfig, &["logs", "orders", "-n", &ns, "--since", "1w"]);
    assert!(
        !ok && err.contains("--since takes a number and a unit"),
        "{err}"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(&ns, &Default::default()).await;
}
