//! Shared helpers: endpoints of the testenv peers, unique names, YAML builders, running a
//! resource through the library or the binary, and the data checks done by PyPI
//! confluent-kafka (testenv/kbo_data.py), a client that is not ours.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::exec::engine::system_now_ms;
use kafka_backup_operator::exec::{
    Cancel, ExecContext, Progress, RestoreOutcome, run_backup, run_restore,
};
use kafka_backup_operator::format::manifest::RunManifest;
use kafka_backup_operator::kafka::{ClientConfig, KafkaClient};
use kafka_backup_operator::kinds::{
    Access, KindError, backup::prepare as prepare_backup, restore::prepare as prepare_restore,
};

/// Endpoints written by testenv/start.sh.
pub struct Env {
    pub bootstrap: String,
    pub s3_endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub python: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the test peers with `testenv/start.sh && source testenv/env` (or run the README's test command)")
    })
}

pub fn env() -> Env {
    Env {
        bootstrap: var("KBO_KAFKA_BOOTSTRAP"),
        s3_endpoint: var("KBO_S3_ENDPOINT"),
        bucket: var("KBO_S3_BUCKET"),
        access_key: var("KBO_S3_ACCESS_KEY"),
        secret_key: var("KBO_S3_SECRET_KEY"),
        python: var("KBO_PYTHON"),
    }
}

/// A name unique across test processes and runs (Kafka topic-name safe).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs testenv/kbo_data.py; returns (success, stdout, stderr).
pub fn py(args: &[&str]) -> (bool, String, String) {
    let e = env();
    let out = Command::new(&e.python)
        .arg(repo_root().join("testenv/kbo_data.py"))
        .args(args)
        .output()
        .expect("python runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sample data set (see kbo_data.py produce-sample); returns its JSON summary.
pub fn produce_sample(prefix: &str, records: u32) -> serde_json::Value {
    let e = env();
    let (ok, out, err) = py(&[
        "produce-sample",
        "--bootstrap",
        &e.bootstrap,
        "--prefix",
        prefix,
        "--records",
        &records.to_string(),
    ]);
    assert!(ok, "produce-sample failed: {err}\n{out}");
    serde_json::from_str(&out).expect("produce-sample prints JSON")
}

/// The topics of a sample summary.
pub fn sample_topics(summary: &serde_json::Value) -> Vec<String> {
    summary["topics"]
        .as_object()
        .expect("topics")
        .keys()
        .cloned()
        .collect()
}

/// Runs `kbo_data.py compare` (confluent-kafka) on source and target topics; (same?, report).
fn compare(src: &[String], dst: &[String], extra: &[&str]) -> (bool, String) {
    let e = env();
    let (s, d) = (src.join(","), dst.join(","));
    let mut args = vec![
        "compare",
        "--bootstrap",
        &e.bootstrap,
        "--source-topics",
        &s,
        "--target-topics",
        &d,
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = py(&args);
    (ok, format!("{out}{err}"))
}

/// Compares source and target topics record by record with confluent-kafka. Returns the
/// report; panics with it when they differ.
pub fn assert_same(src: &[String], dst: &[String], extra: &[&str]) -> String {
    let (ok, report) = compare(src, dst, extra);
    assert!(ok, "restored data differs from the source:\n{report}");
    report
}

/// Same check, expecting a difference.
pub fn assert_differs(src: &[String], dst: &[String], extra: &[&str]) {
    let (ok, report) = compare(src, dst, extra);
    assert!(!ok, "expected a difference, compare passed:\n{report}");
}

pub fn fs_storage(dir: &Path) -> String {
    format!(
        "storageType: filesystem\n    filesystem:\n      path: {}",
        dir.display()
    )
}

/// S3 storage on the testenv moto server with a credentials Secret named `secret`.
pub fn s3_storage(prefix: &str, secret: &str) -> String {
    let e = env();
    format!(
        "storageType: s3\n    s3:\n      bucket: {}\n      region: us-east-1\n      endpoint: {}\n      pathStyle: true\n      allowHttp: true\n      prefix: {prefix}\n      credentialsSecret:\n        name: {secret}",
        e.bucket, e.s3_endpoint
    )
}

/// A Secret document with the testenv S3 key pair (or a wrong one).
pub fn s3_secret(name: &str, wrong: bool) -> String {
    let e = env();
    let sk = if wrong {
        "not-the-secret".to_string()
    } else {
        e.secret_key.clone()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {sk}\n",
        e.access_key
    )
}

/// A KafkaBackup document. `extra` is added to the spec (2-space indented lines).
pub fn backup_yaml(name: &str, topics: &[String], storage: &str, extra: &str) -> String {
    let e = env();
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: {name}\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  topics: [{}]\n  storage:\n    {storage}\n{extra}",
        e.bootstrap,
        topics
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A KafkaRestore document restoring `backup`; `extra` is added to the spec.
pub fn restore_yaml(name: &str, backup: &str, extra: &str) -> String {
    let e = env();
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: {name}\nspec:\n  backupRef:\n    name: {backup}\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n{extra}",
        e.bootstrap
    )
}

/// `topicMapping` lines mapping each topic to `<topic><suffix>`.
pub fn mapping(topics: &[String], suffix: &str) -> String {
    let mut s = "  topicMapping:\n".to_string();
    for t in topics {
        s.push_str(&format!("    {t}: {t}{suffix}\n"));
    }
    s
}

pub fn suffixed(topics: &[String], suffix: &str) -> Vec<String> {
    topics.iter().map(|t| format!("{t}{suffix}")).collect()
}

/// Writes documents to a temporary file.
pub fn write_docs(dir: &Path, docs: &[&str]) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let p = dir.join(format!("docs-{}.yaml", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&p, docs.join("\n---\n")).unwrap();
    p
}

pub fn ctx() -> ExecContext {
    ExecContext::new(Progress::new(None), Cancel::never(), None, None)
}

/// Fills a new topic with `mib` MiB of 1 KiB records over `partitions` partitions
/// (kbo_data.py gen-load, confluent-kafka); returns the record count.
pub fn gen_load(topic: &str, partitions: u32, mib: u32) -> u64 {
    let e = env();
    let (p, m) = (partitions.to_string(), mib.to_string());
    let (ok, out, err) = py(&[
        "gen-load",
        "--bootstrap",
        &e.bootstrap,
        "--topic",
        topic,
        "--partitions",
        &p,
        "--mib",
        &m,
        "--record-bytes",
        "1024",
    ]);
    assert!(ok, "{out}{err}");
    serde_json::from_str::<serde_json::Value>(out.lines().last().unwrap()).unwrap()["records"]
        .as_u64()
        .unwrap()
}

/// What running a document set did.
pub enum Outcome {
    Backup(RunManifest),
    Restore(RestoreOutcome),
}

/// Runs the resource `name` of `docs` through the library (observe -> compile -> execute).
pub async fn run_docs(dir: &Path, docs: &[&str], name: &str) -> Result<Outcome, KindError> {
    let f = write_docs(dir, docs);
    let (target, secrets) = load(&[f], Some(name)).map_err(|e| {
        KindError::Exec(kafka_backup_operator::exec::ExecError::Failed(
            e.to_string(),
        ))
    })?;
    let pvc = dir.join("pvc");
    match target {
        Target::Backup(kb) => {
            let p = prepare_backup(&kb, &secrets, &pvc, system_now_ms(), Access::ReadWrite).await?;
            Ok(Outcome::Backup(
                run_backup(
                    &p.plan,
                    &p.client,
                    &p.op,
                    &ctx().with_keyring(p.keyring.clone()),
                )
                .await?,
            ))
        }
        Target::Restore(kr, kb) => {
            let p = prepare_restore(&kr, kb.as_deref(), &secrets, &pvc, Access::ReadWrite).await?;
            Ok(Outcome::Restore(
                run_restore(
                    &p.plan,
                    &p.start,
                    &p.client,
                    &p.op,
                    &p.state,
                    &ctx().with_keyring(p.keyring.clone()),
                )
                .await?,
            ))
        }
        Target::OffsetReset(..) | Target::OffsetRollback(..) | Target::Validation(..) => {
            panic!("{name}: offset resets and rollbacks are run with the CLI in these tests")
        }
    }
}

pub async fn backup(dir: &Path, docs: &[&str], name: &str) -> RunManifest {
    match run_docs(dir, docs, name).await {
        Ok(Outcome::Backup(m)) => m,
        Ok(_) => panic!("{name} is not a backup"),
        Err(e) => panic!("backup {name} failed: {e}"),
    }
}

pub async fn restore(dir: &Path, docs: &[&str], name: &str) -> RestoreOutcome {
    match run_docs(dir, docs, name).await {
        Ok(Outcome::Restore(o)) => o,
        Ok(_) => panic!("{name} is not a restore"),
        Err(e) => panic!("restore {name} failed: {e}"),
    }
}

/// The CLI binary.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `kafka-backup-operator run --no-progress -f <f>` in the background, output
/// discarded; the caller kills and reaps it.
pub fn spawn_run(f: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
        .args(["run", "--no-progress", "-f"])
        .arg(f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn client() -> KafkaClient {
    KafkaClient::connect(ClientConfig::plaintext(vec![env().bootstrap]))
        .await
        .expect("testenv broker reachable")
}

/// Every file under `dir`, relative, sorted (a storage snapshot for "nothing written" checks).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, base: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `group-commit` (kbo_data.py): a real member of `group` reads `n` records of every partition
/// of `topic`, commits "next to read" with metadata `meta-<group>-<partition>` and leaves;
/// returns partition -> committed offset.
pub fn group_commit(group: &str, topic: &str, n: u32) -> std::collections::BTreeMap<i32, i64> {
    let e = env();
    let n = n.to_string();
    let (ok, out, err) = py(&[
        "group-commit",
        "--bootstrap",
        &e.bootstrap,
        "--group",
        group,
        "--topic",
        topic,
        "--per-partition",
        &n,
    ]);
    assert!(ok, "group-commit: {out}{err}");
    let v: std::collections::BTreeMap<String, i64> = serde_json::from_str(out.trim()).unwrap();
    v.into_iter()
        .map(|(k, o)| (k.parse().unwrap(), o))
        .collect()
}

/// Starts a member of `group` on `topic` that stays `secs` seconds and then leaves cleanly;
/// returns once it has its assignment. The caller waits for (reaps) it.
pub fn group_hold(group: &str, topic: &str, secs: u32) -> std::process::Child {
    use std::io::BufRead;
    let e = env();
    let mut child = Command::new(&e.python)
        .arg(repo_root().join("testenv/kbo_data.py"))
        .args([
            "group-hold",
            "--bootstrap",
            &e.bootstrap,
            "--group",
            group,
            "--topic",
            topic,
        ])
        .args(["--secs", &secs.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut l = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut l)
        .unwrap();
    assert_eq!(l.trim(), "JOINED", "the holding member joined");
    child
}

/// Produces `n` records (keys `k<i>`, values `<tag>-<i>`, timestamps from 1_800_000_000_000 ms)
/// to each of `partitions` partitions of `topic` (created by the first produce), in one batch
/// per partition compressed with `codec`.
pub async fn append_records(
    topic: &str,
    partitions: i32,
    n: usize,
    tag: &str,
    codec: kafka_backup_operator::format::batch::Codec,
) {
    use kafka_backup_operator::format::batch::{Record, encode_batch};
    let c = client().await;
    for p in 0..partitions {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                offset: 0,
                timestamp: 1_800_000_000_000 + i as i64,
                key: Some(format!("k{i}").into()),
                value: Some(format!("{tag}-{i}").into()),
                headers: vec![],
            })
            .collect();
        c.produce(topic, p, encode_batch(&recs, codec).unwrap(), -1, 10_000)
            .await
            .unwrap();
    }
}
