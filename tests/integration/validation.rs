//! KafkaBackupValidation's backup-only checks from `run -f`: a good backup passes every check
//! and gets a stored evidence report; a flipped byte and a deleted segment fail the check
//! that sees them, naming the object and the offsets.
use crate::support::*;

fn kbv(name: &str) -> String {
    format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: {name}\nspec:\n  backupRef:\n    name: vb\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_passes_its_checks_and_damage_fails_them_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vbt");
    gen_load(&topic, 2, 2);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n  segmentMaxBytes: 1048576\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    let f = write_docs(dir.path(), &[&kb, &kbv("v1")]);
    let (ok, out, err) = cli(&["plan", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&m.run_id) && out.contains("2 segments") && out.contains("sha256:"),
        "the plan names the run, what it reads and the manifest checksum: {out}"
    );
    assert!(
        !dir.path().join("vb/validations").exists(),
        "plan writes nothing"
    );
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    for c in [
        "objects",
        "messageCount",
        "offsetRange",
        "consumerGroupOffsets",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    assert!(out.contains("records=2048"), "every record counted: {out}");
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
    assert_eq!(report["result"], "Pass");
    assert_eq!(report["backup"]["runId"], m.run_id.as_str());
    assert!(
        report["backup"]["manifestSha256"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(report["checksum"].as_str().unwrap().starts_with("sha256:"));

    // a flipped byte in a segment's payload
    let seg = &m.topics[0].partitions[0].segments[0];
    let p = dir.path().join(&seg.path);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let f = write_docs(dir.path(), &[&kb, &kbv("v2")]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("error [failed]"), "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("messageCount") && l.contains("Fail")),
        "{out}"
    );
    assert!(
        out.contains(&seg.path) && out.contains("CRC"),
        "names the object: {out}"
    );

    // a deleted segment of the other partition
    let seg1 = &m.topics[0].partitions[1].segments[0];
    std::fs::remove_file(dir.path().join(&seg1.path)).unwrap();
    let f = write_docs(dir.path(), &[&kb, &kbv("v3")]);
    let (ok, out, _) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("objects") && l.contains("Fail")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: missing ({topic}/1 offsets", seg1.path)),
        "names the object, partition and offsets: {out}"
    );
}

/// With `kafkaCluster`, the run is restored into scratch topics and compared record by
/// record, the snapshot's groups are checked at their translated positions, and the scratch
/// topics are gone afterwards; a flipped byte makes the restore refuse the object (nothing
/// corrupted reaches Kafka), the restore check fails naming it, and the scratch topics are
/// deleted all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_check_proves_the_backup_restores_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vrt");
    gen_load(&topic, 2, 1);
    let group = unique("g");
    group_commit(&group, &topic, 40);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n  segmentMaxBytes: 1048576\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    let e = env();
    let with_cluster = |name: &str| {
        format!(
            "{}  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n      consumerGroups: [{group}]\n",
            kbv(name).split("  checks:").next().unwrap(),
            e.bootstrap
        )
    };
    let scratch = |name: &str| {
        let (ok, out, err) = py(&[
            "list-topics",
            "--bootstrap",
            &e.bootstrap,
            "--prefix",
            &format!("kbv-{name}-"),
        ]);
        assert!(ok, "{err}");
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let f = write_docs(dir.path(), &[&kb, &with_cluster("vr1")]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    for c in ["restoreRecords", "restoreConsumerGroupOffsets"] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
    let rr = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restoreRecords")
        .unwrap();
    assert_eq!(rr["figures"]["records"], 1024, "{rr}");
    assert_eq!(
        rr["digests"].as_object().unwrap().len(),
        2,
        "a digest per partition: {rr}"
    );
    let cg = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restoreConsumerGroupOffsets")
        .unwrap();
    assert_eq!(cg["figures"]["positions"], 2, "{cg}");
    assert!(
        scratch("vr1").is_empty(),
        "scratch topics deleted: {:?}",
        scratch("vr1")
    );
    assert!(
        !dir.path().join("vb/restores").exists()
            || std::fs::read_dir(dir.path().join("vb/restores"))
                .unwrap()
                .next()
                .is_none(),
        "the scratch restore's journal and offset map are deleted"
    );

    // a flipped byte: the restore refuses the object, the check fails by name, cleanup runs
    let seg = &m.topics[0].partitions[0].segments[0];
    let p = dir.path().join(&seg.path);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let f = write_docs(dir.path(), &[&kb, &with_cluster("vr2")]);
    let (ok, out, _) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("restoreRecords"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("Fail"), "{out}");
    assert!(
        out.contains("integrity") && out.contains(&seg.path),
        "names the object: {out}"
    );
    assert!(
        scratch("vr2").is_empty(),
        "scratch topics deleted after a failure too"
    );
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// A signed report: `kubectl kafkabackup evidence verify` accepts it with the right public key
/// and refuses it after one changed byte, or with another key.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_report_verifies_and_a_changed_byte_or_another_key_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vbs");
    gen_load(&topic, 1, 1);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "vb").await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: evidence-key\nstringData:\n  private.pem: |\n{}  public.pem: |\n{}",
        indent(&key.serialize_pem()),
        indent(&key.public_key_pem())
    );
    let kbv = "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: vs\nspec:\n  backupRef:\n    name: vb\n  evidence:\n    signing:\n      enabled: true\n      keySecret:\n        name: evidence-key\n";
    let f = write_docs(dir.path(), &[&kb, kbv, &secret]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let report = dir.path().join(
        out.lines()
            .find_map(|l| l.strip_prefix("evidence report: "))
            .unwrap(),
    );
    assert!(
        out.contains("signature: ") && out.contains("ECDSA-P256-SHA256"),
        "{out}"
    );
    let public = dir.path().join("public.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let verify = |report: &std::path::Path, public: &std::path::Path| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
            .args(["evidence", "verify"])
            .arg(report)
            .arg("--public-key")
            .arg(public)
            .output()
            .unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (ok, text) = verify(&report, &public);
    assert!(ok && text.contains("verified"), "{text}");
    // another key
    let other = dir.path().join("other.pem");
    let k2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&other, k2.public_key_pem()).unwrap();
    let (ok, text) = verify(&report, &other);
    assert!(!ok && text.contains("another key"), "{text}");
    // one changed byte (a copy next to the original signature)
    let changed = dir.path().join("changed.json");
    let mut b = std::fs::read(&report).unwrap();
    let i = b.iter().position(|c| *c == b'P').unwrap();
    b[i] = b'F';
    std::fs::write(&changed, &b).unwrap();
    std::fs::copy(
        format!("{}.sig", report.display()),
        format!("{}.sig", changed.display()),
    )
    .unwrap();
    let (ok, text) = verify(&changed, &public);
    assert!(!ok && text.contains("NOT verified"), "{text}");
}

/// A local HTTP receiver: records every POST (path, JSON body) and answers by path:
/// `/ok` 200, `/created` 201, `/slow` after 3 s, `/flaky` 503 the first time then 200,
/// `/pd` 202.
struct Receiver {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

async fn receiver() -> Receiver {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::StatusCode;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;
    let seen: Seen = Default::default();
    async fn hook(
        State(seen): State<Seen>,
        UrlPath(p): UrlPath<String>,
        body: String,
    ) -> StatusCode {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        let n = {
            let mut s = seen.lock().unwrap();
            s.push((p.clone(), v));
            s.iter().filter(|(x, _)| *x == p).count()
        };
        match p.as_str() {
            "ok" => StatusCode::OK,
            "created" => StatusCode::CREATED,
            "slow" => {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                StatusCode::OK
            }
            "flaky" if n == 1 => StatusCode::SERVICE_UNAVAILABLE,
            "flaky" => StatusCode::OK,
            "pd" => StatusCode::ACCEPTED,
            _ => StatusCode::NOT_FOUND,
        }
    }
    let app = axum::Router::new()
        .route("/{p}", axum::routing::post(hook))
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    Receiver { addr, seen }
}

/// Custom webhooks are real checks (status code, timeout, documented body), and Slack and
/// PagerDuty are notified with their documented payloads, retried through a 503; a
/// notification that cannot be delivered is reported and does not change the result.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_checks_and_notifications_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vwh");
    gen_load(&topic, 1, 1);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    let r = receiver().await;
    let base = format!("http://{}", r.addr);
    let secret = |name: &str, key: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  {key}: \"{value}\"\n"
        )
    };
    let kbv = |name: &str, hooks: &str, on_success: bool| {
        format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: {name}\nspec:\n  backupRef:\n    name: vb\n  checks:\n    customWebhooks:\n{hooks}  notifications:\n    onSuccess: {on_success}\n    slack:\n      webhookSecret:\n        name: slack\n    pagerduty:\n      routingKeySecret:\n        name: pd\n      severity: warning\n"
        )
    };
    let hooks = format!(
        "    - name: ok\n      url: {base}/ok\n    - name: wrongcode\n      url: {base}/created\n    - name: slow\n      url: {base}/slow\n      timeoutSecs: 1\n"
    );
    let run = |docs: &[&str]| {
        let f = write_docs(dir.path(), docs);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
            .args(["run", "--no-progress", "-f", f.to_str().unwrap()])
            .env("KBO_PAGERDUTY_EVENTS_URL", format!("{base}/pd"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        &kb,
        &kbv("vw1", &hooks, false),
        &secret("slack", "webhook-url", &format!("{base}/flaky")),
        &secret("pd", "routing-key", "rk-123"),
    ]);
    assert!(!ok, "two webhook checks fail: {out}{err}");
    let line = |c: &str| {
        out.lines()
            .find(|l| l.starts_with(c))
            .unwrap_or_else(|| panic!("{c}: {out}"))
            .to_string()
    };
    assert!(line("webhook:ok").contains("Pass"), "{out}");
    assert!(line("webhook:wrongcode").contains("Fail"), "{out}");
    assert!(out.contains("answered 201, expected 200"), "{out}");
    assert!(line("webhook:slow").contains("Fail"), "{out}");
    assert!(out.contains("no answer within 1 s"), "{out}");
    assert!(
        out.contains("notification slack: delivered")
            && out.contains("notification pagerduty: delivered"),
        "{out}"
    );
    let seen = r.seen.lock().unwrap().clone();
    let body = &seen.iter().find(|(p, _)| p == "ok").unwrap().1;
    assert_eq!(
        body["format"],
        "kafka-backup-operator/validation-webhook/v1"
    );
    assert_eq!(body["backup"]["name"], "vb");
    assert_eq!(body["backup"]["runId"], m.run_id.as_str());
    assert_eq!(body["resultSoFar"], "Pass");
    assert!(
        body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "messageCount")
    );
    assert!(body["restoredCluster"].is_null());
    let slack: Vec<_> = seen.iter().filter(|(p, _)| p == "flaky").collect();
    assert_eq!(slack.len(), 2, "the 503 was retried once");
    let text = slack[1].1["text"].as_str().unwrap();
    assert!(
        text.contains("Fail") && text.contains("webhook:wrongcode"),
        "{text}"
    );
    let pd = &seen.iter().find(|(p, _)| p == "pd").unwrap().1;
    assert_eq!(pd["routing_key"], "rk-123");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], "kbv/vb/vw1");
    assert_eq!(pd["payload"]["severity"], "warning");
    assert!(pd["payload"]["summary"].as_str().unwrap().contains("vb"));

    // everything passes; Slack is unreachable: reported, the validation still passes;
    // onSuccess resolves the PagerDuty incident
    let (ok, out, err) = run(&[
        &kb,
        &kbv(
            "vw1",
            &format!("    - name: ok\n      url: {base}/ok\n"),
            true,
        ),
        &secret("slack", "webhook-url", "http://127.0.0.1:9/closed"),
        &secret("pd", "routing-key", "rk-123"),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("notification slack: not delivered after 4 attempt(s)"),
        "{out}"
    );
    let seen = r.seen.lock().unwrap().clone();
    let resolve = seen.iter().filter(|(p, _)| p == "pd").nth(1).unwrap();
    assert_eq!(resolve.1["event_action"], "resolve");
    assert_eq!(resolve.1["dedup_key"], "kbv/vb/vw1");

    // a missing Secret names the field, before any check runs or anything is written
    let hits = r.seen.lock().unwrap().len();
    let (ok, _, err) = run(&[
        &kb,
        &kbv(
            "vw2",
            &format!("    - name: ok\n      url: {base}/ok\n"),
            false,
        ),
    ]);
    assert!(!ok);
    assert!(
        err.contains("spec.notifications.slack.webhookSecret"),
        "{err}"
    );
    assert_eq!(r.seen.lock().unwrap().len(), hits, "no webhook was called");
    assert!(
        !dir.path().join("vb/validations/vw2").exists(),
        "no report stored"
    );
}

/// Evidence as a team keeps it: the JSON report validates against the published schema, the
/// PDF's text (pdftotext) holds the backup, the run and every check's outcome, reports older
/// than `retentionDays` are pruned (the newest kept), and `kubectl kafkabackup evidence
/// list|get` show them; a changed report is refused by `get`.
#[tokio::test(flavor = "multi_thread")]
async fn evidence_schema_pdf_retention_and_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vev");
    gen_load(&topic, 2, 1);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb], "vb").await;
    // an old report of the same validation, 400 days ago: pruned
    let old_dir = dir.path().join("vb/validations/ve");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::write(old_dir.join("ve-1000.json"), b"{}").unwrap();
    let kbv = "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: ve\nspec:\n  backupRef:\n    name: vb\n  evidence:\n    formats: [json, pdf]\n    retentionDays: 30\n";
    let f = write_docs(dir.path(), &[&kb, kbv]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("deleted 1 older report(s): ve-1000"), "{out}");
    assert!(!old_dir.join("ve-1000.json").exists());
    let json = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .unwrap()
        .to_string();
    let pdf = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report (PDF): "))
        .expect("a PDF is stored")
        .to_string();
    // the schema, by a validator that is not ours (PyPI jsonschema)
    let e = env();
    let schema = repo_root().join("docs/schemas/validation-report-v1.schema.json");
    let check = |report: &std::path::Path| {
        std::process::Command::new(&e.python)
            .args([
                "-c",
                "import json,sys,jsonschema; jsonschema.Draft202012Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2]))); print('valid')",
                schema.to_str().unwrap(),
                report.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = check(&dir.path().join(&json));
    assert!(
        o.status.success(),
        "the report validates: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // a report missing a required field does not
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&json)).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("backup");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(!check(&bad).status.success(), "the schema can fail");
    // the PDF's text
    let text = std::process::Command::new("pdftotext")
        .args([dir.path().join(&pdf).to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils, installed by testenv/install.sh)");
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("PASSED") && text.contains("vb") && text.contains(&m.run_id),
        "{text}"
    );
    for c in ["objects", "messageCount", "offsetRange"] {
        assert!(
            text.contains(&format!("Pass {c}")),
            "{c} in the PDF: {text}"
        );
    }
    // the plugin
    let plugin = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = plugin(&["evidence", "list", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    let id = std::path::Path::new(&json)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(out.contains(&id) && out.contains("yes"), "{out}");
    assert!(!out.contains("ve-1000"), "{out}");
    let (ok, out, err) = plugin(&["evidence", "get", &id, "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("messageCount") && out.contains("Pass"),
        "{out}"
    );
    let (ok, out, _) = plugin(&[
        "evidence",
        "get",
        &id,
        "-o",
        "json",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("\"reportId\""), "{out}");
    // a changed byte in the stored report: refused by name
    let p = dir.path().join(&json);
    let edited = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"Pass\"", "\"Fail\"");
    std::fs::write(&p, edited).unwrap();
    let (ok, _, err) = plugin(&["evidence", "get", &id, "-f", f.to_str().unwrap()]);
    assert!(!ok && err.contains("was changed"), "{err}");
    let (ok, _, err) = plugin(&["evidence", "get", "ve-42", "-f", f.to_str().unwrap()]);
    assert!(!ok && err.contains("evidence list"), "{err}");
}

/// Where the repository's objects are, for damaging them: a directory, or the testenv S3
/// bucket under a prefix (through PyPI boto3, not our storage layer).
enum Repo {
    Fs(std::path::PathBuf),
    S3(String),
}

impl Repo {
    fn s3(&self, op: &str, key: &str, file: &std::path::Path) {
        let Repo::S3(prefix) = self else {
            unreachable!()
        };
        let e = env();
        let o = std::process::Command::new(&e.python)
            .args([
                "-c",
                "import boto3,sys\nop,b,k,f,ep,ak,sk=sys.argv[1:]\ns=boto3.client('s3',endpoint_url=ep,aws_access_key_id=ak,aws_secret_access_key=sk,region_name='us-east-1')\nif op=='get': open(f,'wb').write(s.get_object(Bucket=b,Key=k)['Body'].read())\nelif op=='put': s.put_object(Bucket=b,Key=k,Body=open(f,'rb').read())\nelse: s.delete_object(Bucket=b,Key=k)",
                op,
                &e.bucket,
                &format!("{prefix}/{key}"),
                file.to_str().unwrap(),
                &e.s3_endpoint,
                &e.access_key,
                &e.secret_key,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "s3 {op} {key}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    fn read(&self, key: &str, tmp: &std::path::Path) -> Vec<u8> {
        match self {
            Repo::Fs(d) => std::fs::read(d.join(key)).unwrap(),
            Repo::S3(_) => {
                let f = tmp.join("obj");
                self.s3("get", key, &f);
                std::fs::read(f).unwrap()
            }
        }
    }
    fn write(&self, key: &str, bytes: &[u8], tmp: &std::path::Path) {
        match self {
            Repo::Fs(d) => std::fs::write(d.join(key), bytes).unwrap(),
            Repo::S3(_) => {
                let f = tmp.join("obj");
                std::fs::write(&f, bytes).unwrap();
                self.s3("put", key, &f);
            }
        }
    }
    fn delete(&self, key: &str, tmp: &std::path::Path) {
        match self {
            Repo::Fs(d) => std::fs::remove_file(d.join(key)).unwrap(),
            Repo::S3(_) => self.s3("delete", key, &tmp.join("obj")),
        }
    }
}

/// The corruption table, against a filesystem and an S3 repository: an untouched repository
/// passes; a flipped byte in a segment, a truncated segment, a deleted segment, a deleted
/// index, an edited manifest and a deleted manifest each fail, naming the object. Every
/// object is put back after its case.
#[tokio::test(flavor = "multi_thread")]
async fn the_corruption_table_on_a_filesystem_and_on_s3() {
    let topic = unique("vct");
    gen_load(&topic, 2, 2);
    for s3 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique("vct");
        let (storage, repo, secret) = if s3 {
            (
                s3_storage(&prefix, "s3-creds"),
                Repo::S3(prefix.clone()),
                s3_secret("s3-creds", false),
            )
        } else {
            (
                fs_storage(dir.path()),
                Repo::Fs(dir.path().to_path_buf()),
                String::new(),
            )
        };
        let kb = backup_yaml(
            "vb",
            std::slice::from_ref(&topic),
            &storage,
            "  stopAtCurrentOffsets: true\n  segmentMaxBytes: 1048576\n",
        );
        let m = backup(dir.path(), &[&kb, &secret], "vb").await;
        let kbv = format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: vt\nspec:\n  backupRef:\n    name: vb\n    backupId: {}\n",
            m.run_id
        );
        let f = write_docs(dir.path(), &[&kb, &kbv, &secret]);
        let run = || cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
        let (ok, out, err) = run();
        assert!(
            ok,
            "untouched ({}): {out}{err}",
            if s3 { "s3" } else { "fs" }
        );
        let seg = m.topics[0].partitions[0].segments[0].path.clone();
        let idx = kafka_backup_operator::format::layout::segment_index(&seg);
        let manifest = kafka_backup_operator::format::layout::manifest("vb", &m.run_id);
        let tmp = dir.path();
        type Damage = Box<dyn Fn(&[u8]) -> Option<Vec<u8>>>;
        let cases: Vec<(&str, &str, Damage)> = vec![
            (
                "flipped byte",
                seg.as_str(),
                Box::new(|b: &[u8]| {
                    let mut b = b.to_vec();
                    let at = b.len() / 2;
                    b[at] ^= 0x55;
                    Some(b)
                }),
            ),
            (
                "truncated segment",
                seg.as_str(),
                Box::new(|b: &[u8]| Some(b[..b.len() / 3].to_vec())),
            ),
            ("deleted segment", seg.as_str(), Box::new(|_: &[u8]| None)),
            ("deleted index", idx.as_str(), Box::new(|_: &[u8]| None)),
            (
                "edited manifest",
                manifest.as_str(),
                Box::new(|b: &[u8]| {
                    let t = String::from_utf8(b.to_vec()).unwrap();
                    let edited = t.replacen("\"records\": ", "\"records\": 1", 1);
                    assert_ne!(t, edited);
                    Some(edited.into_bytes())
                }),
            ),
            (
                "deleted manifest",
                manifest.as_str(),
                Box::new(|_: &[u8]| None),
            ),
        ];
        for (case, key, damage) in cases {
            let original = repo.read(key, tmp);
            match damage(&original) {
                Some(b) => repo.write(key, &b, tmp),
                None => repo.delete(key, tmp),
            }
            let (ok, out, err) = run();
            let all = format!("{out}{err}");
            assert!(!ok, "{case}: must fail: {all}");
            assert!(all.contains(key), "{case}: names {key}: {all}");
            if !case.contains("manifest") {
                assert!(
                    out.lines().any(|l| l.contains("Fail")),
                    "{case}: a check fails in the report: {out}"
                );
            }
            repo.write(key, &original, tmp);
        }
        let (ok, out, err) = run();
        assert!(ok, "repaired: {out}{err}");
    }
}

/// The check of a report's named check, from the stored report `out` names.
fn report_check(dir: &std::path::Path, out: &str, name: &str) -> serde_json::Value {
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .unwrap_or_else(|| panic!("the report is stored: {out}"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(path)).unwrap()).unwrap();
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
        .clone()
}

/// Issue 15 class 6: a `stopAtCurrentOffsets` backup with `consumerGroupSnapshot` while a
/// consumer reads at the head: the group commits past the plan's high watermark before the
/// snapshot (made deterministic: records produced and read after the plan, before the run).
/// docs/format.md decision (f) calls that normal; the validation passes, with the position
/// as a note, and the restore check puts it at the end of the restored range. It used to
/// fail `consumerGroupOffsets` ("past the run's cut").
#[tokio::test(flavor = "multi_thread")]
async fn a_group_ahead_of_the_cut_is_a_note_not_a_failure() {
    use kafka_backup_operator::cli::load::{Target, load};
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vct");
    gen_load(&topic, 1, 1); // 1024 records
    let group = unique("g");
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n  consumerGroupSnapshot: true\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    let (target, secrets) = load(&[f], Some("vb")).unwrap();
    let Target::Backup(kbr) = target else {
        panic!("a backup")
    };
    let p = kafka_backup_operator::kinds::backup::prepare(
        &kbr,
        &secrets,
        &dir.path().join("pvc"),
        kafka_backup_operator::exec::engine::system_now_ms(),
        kafka_backup_operator::kinds::Access::ReadWrite,
    )
    .await
    .unwrap();
    // after the plan: 10 more records, and a consumer at the head commits 1034
    let e = env();
    let script = format!(
        "from confluent_kafka import Producer\np = Producer({{'bootstrap.servers': '{}'}})\nfor i in range(10):\n    p.produce('{topic}', b'late-%d' % i, partition=0)\nassert p.flush(30) == 0\n",
        e.bootstrap
    );
    let out = std::process::Command::new(&e.python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(group_commit(&group, &topic, 1034), [(0, 1034)].into());
    let m = kafka_backup_operator::exec::run_backup(&p.plan, &p.client, &p.op, &ctx())
        .await
        .unwrap();
    let cut = m.topics[0].partitions[0].cut;
    let snap = m
        .consumer_groups
        .iter()
        .find(|g| g.group_id == group)
        .expect("the group is in the snapshot");
    assert_eq!(cut, 1024, "the cut is the plan's high watermark");
    assert_eq!(
        snap.offsets[0].offset, 1034,
        "the group is ahead of the cut"
    );

    let with_cluster = format!(
        "{}  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n      consumerGroups: [{group}]\n",
        kbv("vc1").split("  checks:").next().unwrap(),
        e.bootstrap
    );
    let f = write_docs(dir.path(), &[&kb, &with_cluster]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "a healthy backup passes: {out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("consumerGroupOffsets") && l.contains("Pass")),
        "{out}"
    );
    assert!(
        out.contains("note: ") && out.contains("past the run's cut 1024"),
        "{out}"
    );
    let cg = report_check(dir.path(), &out, "consumerGroupOffsets");
    assert_eq!(cg["outcome"], "Pass", "{cg}");
    assert_eq!(cg["figures"]["aheadOfCut"], 1, "{cg}");
    assert!(
        cg["notes"][0].as_str().unwrap().contains(&group)
            && cg["notes"][0].as_str().unwrap().contains("at 1034"),
        "{cg}"
    );
    let rg = report_check(dir.path(), &out, "restoreConsumerGroupOffsets");
    assert_eq!(rg["outcome"], "Pass", "{rg}");
    assert!(
        rg["notes"][0]
            .as_str()
            .unwrap()
            .contains("end of the restored range (1024)"),
        "translated to the end of the restored range: {rg}"
    );
}

/// The scratch topics of validation `name` on the test cluster.
async fn scratch_topics(name: &str) -> Vec<String> {
    let c = client().await;
    let meta = c.refresh_metadata().await.unwrap();
    let mut v: Vec<String> = meta
        .topics
        .keys()
        .filter(|t| t.starts_with(&format!("kbv-{name}-")))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Issue 15 class 7: `run -f` of a validation killed with SIGKILL during its restore check
/// leaves full-size scratch topics, the restore's journal and lock, and its lease; the next
/// run of the same validation removes them and says so (note and figure of `restoreRecords`),
/// while a running attempt of another host (a live lease) and a user's topic
/// `kbv-<name>-bar` are left alone. It used to pass and remove only its own scratch.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_validation_s_scratch_is_removed_by_the_next_attempt() {
    use kafka_backup_operator::kafka::ops::NewTopic;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vkt");
    gen_load(&topic, 2, 24);
    let kb = backup_yaml(
        "vb",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], "vb").await;
    let e = env();
    let name = unique("vk").replace('-', "");
    let doc = format!(
        "{}  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n",
        kbv(&name).split("  checks:").next().unwrap(),
        e.bootstrap
    );
    let f = write_docs(dir.path(), &[&kb, &doc]);
    // kill -9 once the scratch topics exist (the restore check is running)
    let mut leftovers = vec![];
    for _ in 0..5 {
        #[allow(clippy::zombie_processes)] // killed and reaped below
        let mut child = spawn_run(&f);
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(60) {
            if !scratch_topics(&name).await.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        leftovers = scratch_topics(&name).await;
        if !leftovers.is_empty() {
            break;
        }
    }
    assert!(
        !leftovers.is_empty(),
        "a killed attempt left scratch topics"
    );
    let restores = dir.path().join("vb/restores");
    let state = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("kbv-{name}-")))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!state(&restores).is_empty(), "and restore state");
    // another host's attempt that is still running, and a user's topic
    let c = client().await;
    let running_ms = kafka_backup_operator::exec::engine::system_now_ms() - 1000;
    let running_topic = format!("kbv-{name}-{running_ms}-{topic}");
    let user_topic = format!("kbv-{name}-bar");
    let new = |n: &str| NewTopic {
        name: n.to_string(),
        partitions: 1,
        replication_factor: -1,
        configs: Default::default(),
    };
    c.create_topics(&[new(&running_topic), new(&user_topic)], 30_000)
        .await
        .unwrap();
    let lease_dir = restores.join(format!("kbv-{name}-{running_ms}.lease"));
    std::fs::create_dir_all(&lease_dir).unwrap();
    let far = running_ms + 3_600_000;
    let lease = kafka_backup_operator::exec::lock::LockDoc {
        format: kafka_backup_operator::format::layout::FORMAT.into(),
        holder: "another-pod/pid 7".into(),
        token: "t".into(),
        purpose: "validation attempt".into(),
        acquired_at: running_ms,
        renewed_at: running_ms,
        expires_at: far,
    };
    std::fs::write(
        lease_dir.join("lock.json"),
        kafka_backup_operator::format::manifest::to_json(&lease),
    )
    .unwrap();

    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let rr = report_check(dir.path(), &out, "restoreRecords");
    assert_eq!(rr["figures"]["leftoverAttemptsRemoved"], 1, "{rr}");
    assert_eq!(rr["figures"]["leftoverAttemptsKept"], 1, "{rr}");
    let notes: Vec<&str> = rr["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("removed the leftovers")
            && leftovers.iter().all(|t| n.contains(t.as_str()))),
        "the removed topics are named: {notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("kept") && n.contains("another-pod/pid 7")),
        "{notes:?}"
    );
    assert!(out.contains("note: removed the leftovers"), "{out}");
    assert_eq!(
        scratch_topics(&name).await,
        {
            let mut v = vec![running_topic.clone(), user_topic.clone()];
            v.sort();
            v
        },
        "the killed attempt's topics are gone, the running attempt's and the user's stay"
    );
    assert_eq!(
        state(&restores),
        vec![format!("kbv-{name}-{running_ms}.lease")],
        "the killed attempt's journal, lock and lease are gone"
    );
    c.delete_topics(&[running_topic, user_topic]).await.unwrap();
}
