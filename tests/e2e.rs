//! End-to-end against a real Kubernetes API server: set `KBO_E2E_KUBECONFIG` to a kubeconfig
//! (kind, k3s, any cluster) and start the test peers (`testenv/start.sh`, `source
//! testenv/env`). The operator runs as a local process against that cluster; the data peers are
//! the testenv ones. Without a kubeconfig the test says why it skipped and passes.
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

fn operator(kubeconfig: &str, ns: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args([
            "operator",
            "--namespaces",
            ns,
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("KBO_LOG_FORMAT", "json")
        .spawn()
        .expect("operator starts")
}

async fn wait_phase<K>(api: &Api<K>, name: &str, want: &str, timeout: Duration) -> serde_json::Value
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
        if o["status"]["phase"] == want {
            return o;
        }
        assert!(
            o["status"]["phase"] != "Failed" || want == "Failed",
            "{name} failed: {}",
            o["status"]
        );
        assert!(
            t.elapsed() < timeout,
            "{name} not {want} after {timeout:?}: {}",
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
    let t = Instant::now();
    loop {
        let o = serde_json::to_value(api.get_status(name).await.unwrap()).unwrap();
        if o["status"]["phase"] == "Running" && o["status"][field].as_u64().unwrap_or(0) > 0 {
            return o;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{name} made no progress: {}",
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reasons of the events.k8s.io Events about `name` in `ns`.
async fn reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
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
    let Ok(kubeconfig) = std::env::var("KBO_E2E_KUBECONFIG") else {
        eprintln!(
            "e2e SKIPPED: KBO_E2E_KUBECONFIG is not set (no Kubernetes API server can be installed here; point it at kind, k3s or any cluster to run this suite)"
        );
        return;
    };
    let bootstrap = std::env::var("KBO_KAFKA_BOOTSTRAP")
        .expect("start the peers: testenv/start.sh && source testenv/env");
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
    let ns = format!("kbo-e2e-{}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
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
    // the seed's KafkaBackup, pointed at the testenv broker and a local directory
    let kb: KafkaBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
        "metadata": {"name": "production-backup"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [format!("{prefix}*")], "stopAtCurrentOffsets": true,
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}}
    }))
    .unwrap();
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    kbs.create(&PostParams::default(), &kb).await.unwrap();
    let done = wait_phase(
        &kbs,
        "production-backup",
        "Completed",
        Duration::from_secs(120),
    )
    .await;
    assert!(done["status"]["recordsProcessed"].as_u64().unwrap() > 0);

    let topics = [
        "plain", "gzip", "snappy", "lz4", "zstd", "idem", "txn", "large",
    ]
    .map(|t| format!("{prefix}{t}"));
    let mapping: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|t| (t.clone(), serde_json::json!(format!("{t}-r"))))
        .collect();
    let kr: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
        "metadata": {"name": "pitr-restore"},
        "spec": {"backupRef": {"name": "production-backup"}, "pitr": {"endTime": "2099-12-01T12:00:00Z"},
                 "kafkaCluster": {"bootstrapServers": [bootstrap]}, "createTopics": true, "topicMapping": mapping}
    }))
    .unwrap();
    let krs: Api<KafkaRestore> = Api::namespaced(client.clone(), &ns);
    krs.create(&PostParams::default(), &kr).await.unwrap();
    let done = wait_phase(&krs, "pitr-restore", "Completed", Duration::from_secs(120)).await;
    assert!(done["status"]["offsetMappingPath"].is_string());
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
    let slow: KafkaBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup", "metadata": {"name": "slow"},
        "spec": {"kafkaCluster": {"bootstrapServers": [bootstrap]}, "topics": [big], "stopAtCurrentOffsets": true,
                 "compression": "none", "segmentMaxBytes": 1048576, "checkpoint": {"intervalSecs": 1},
                 "rateLimiting": {"bytesPerSec": 2000000},
                 "storage": {"storageType": "filesystem", "filesystem": {"path": store.path()}}}
    }))
    .unwrap();
    kbs.create(&PostParams::default(), &slow).await.unwrap();
    let before = wait_progress(&kbs, "slow", "recordsProcessed").await;
    op.kill().unwrap();
    op.wait().unwrap();
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
    op.kill().unwrap();
    op.wait().unwrap();
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
    op.kill().unwrap();
    op.wait().unwrap();
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

    op.kill().unwrap();
    op.wait().unwrap();
    let _ = nss.delete(&ns, &Default::default()).await;
}
