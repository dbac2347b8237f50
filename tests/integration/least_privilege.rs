//! Issue 16, part 3: least privilege on S3. Every job runs against moto (IAM enforced) under
//! a user whose only policy is the one docs/security.md shows, read from docs/policies/*.json
//! (so the docs and these tests cannot drift): the backup writes, lists and reads (and resumes
//! after a kill) but cannot delete data or manifests; retention deletes with
//! `retention.credentialsSecret`; a restore and a validation only read the repository. Taking
//! one needed action away fails with `storage-refused`, naming the action.
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;
use kafka_backup_operator::api::{Secrets, StorageSpec};
use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::format::{checkpoint, layout};
use kafka_backup_operator::storage;
use opendal::Operator;

/// Policy `file` of docs/policies with its placeholders (BUCKET, PREFIX, BACKUP, VALIDATION)
/// filled in.
fn policy(file: &str, prefix: &str, backup: &str, validation: &str) -> Value {
    let path = repo_root().join("docs/policies").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("BUCKET", &env().bucket)
        .replace("PREFIX", prefix)
        .replace("BACKUP", backup)
        .replace("VALIDATION", validation);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `p` with `action` taken out of every statement (a statement left with none is dropped).
/// Panics when `p` does not grant `action`: the test would prove nothing.
fn without(p: &Value, action: &str) -> Value {
    let mut p = p.clone();
    let st = p["Statement"].as_array_mut().unwrap();
    let mut found = false;
    for s in st.iter_mut() {
        let actions = s["Action"].as_array_mut().unwrap();
        let n = actions.len();
        actions.retain(|a| a != action);
        found |= actions.len() != n;
    }
    assert!(found, "the policy does not grant {action}");
    st.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    p
}

/// A key pair of a new moto IAM user whose only policy is `policy`, made with the testenv
/// administrator key (boto3, an independent client).
fn iam_user(policy: &Value) -> (String, String) {
    let e = env();
    let script = r#"
import boto3, sys, uuid
ep, ak, sk, doc = sys.argv[1:5]
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=ak, aws_secret_access_key=sk)
u = "lp-" + uuid.uuid4().hex[:12]
iam.create_user(UserName=u)
iam.put_user_policy(UserName=u, PolicyName="least-privilege", PolicyDocument=doc)
k = iam.create_access_key(UserName=u)["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;
    let out = std::process::Command::new(&e.python)
        .args(["-c", script, &e.s3_endpoint, &e.access_key, &e.secret_key])
        .arg(policy.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (ak, sk) = s.trim().split_once(' ').unwrap();
    (ak.to_string(), sk.to_string())
}

/// A Secret document `name` holding the key pair `key`.
fn secret_doc(name: &str, key: &(String, String)) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n",
        key.0, key.1
    )
}

/// The repository at `prefix` opened with `key` (None: the administrator key of testenv).
fn store(prefix: &str, key: Option<&(String, String)>) -> Operator {
    let e = env();
    let admin = (e.access_key.clone(), e.secret_key.clone());
    let spec: StorageSpec = serde_json::from_value(serde_json::json!({
        "storageType": "s3",
        "s3": {"bucket": e.bucket, "region": "us-east-1", "endpoint": e.s3_endpoint,
               "pathStyle": true, "allowHttp": true, "prefix": prefix,
               "credentialsSecret": {"name": "k"}},
    }))
    .unwrap();
    let secrets = Secrets::from_yaml(&secret_doc("k", key.unwrap_or(&admin)), "t").unwrap();
    kafka_backup_operator::observe::storage_target(&spec, &secrets, Path::new("/"), "t")
        .unwrap()
        .operator()
        .unwrap()
}

/// Runs `run -f` on `docs`; (success, stdout + stderr).
fn run(dir: &Path, docs: &[&str]) -> (bool, String) {
    let f = write_docs(dir, docs);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    (ok, format!("{out}{err}"))
}

/// Asserts a run failed as a storage refusal that names `action`.
fn refused_naming(ok: bool, out: &str, action: &str) {
    assert!(!ok, "must fail without {action}:\n{out}");
    assert!(
        out.contains("[storage-refused]") && out.contains(&format!("lacks {action}")),
        "the error is a storage refusal naming {action}:\n{out}"
    );
}

/// Ids of the complete runs of `backup` (those with a manifest), as the administrator sees.
async fn complete_runs(op: &Operator, backup: &str) -> Vec<String> {
    let mut v = vec![];
    for run in storage::list_dirs(op, &layout::runs_dir(backup))
        .await
        .unwrap()
    {
        if op.exists(&layout::manifest(backup, &run)).await.unwrap() {
            v.push(run);
        }
    }
    v
}

/// The backup runs under backup.json alone: it completes, and after a kill -9 mid-run (its
/// lock left behind, taken over with the DeleteObject on lock.json it has) it resumes the same
/// run to an exact repository. Its key cannot delete a manifest or a segment, and retention
/// under it is refused naming s3:DeleteObject; with `retention.credentialsSecret` under
/// retention.json, retention prunes, and retention.json without s3:DeleteObject is refused
/// naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_writes_and_resumes_without_delete_rights_and_retention_deletes_with_its_own_key()
{
    let dir = tempfile::tempdir().unwrap();
    let name = "lpb";
    let topic = unique("lp-backup");
    let produced = gen_load(&topic, 2, 12);
    // dropped from the last run's topics, so that retention deletes its segments
    let dropped = unique("lp-dropped");
    gen_load(&dropped, 1, 1);
    let prefix = unique("lp-backup");
    let bk = iam_user(&policy("backup.json", &prefix, name, ""));
    let admin = store(&prefix, None);
    let kb_of = |topics: &[String], extra: &str| {
        backup_yaml(
            name,
            topics,
            &s3_storage(&prefix, "bk"),
            &format!(
                "  stopAtCurrentOffsets: true\n  compression: none\n  segmentMaxBytes: 1048576\n  checkpoint:\n    intervalSecs: 1\n{extra}"
            ),
        )
    };
    let both = [topic.clone(), dropped.clone()];
    let kb = |extra: &str| kb_of(&both, extra);
    let bk_secret = secret_doc("bk", &bk);

    // killed mid-run once a checkpoint names two segments, then resumed
    let slow = kb("  rateLimiting:\n    bytesPerSec: 3000000\n");
    let f = write_docs(dir.path(), &[&slow, &bk_secret]);
    #[allow(clippy::zombie_processes)] // killed and reaped below on every path
    let mut child = spawn_run(&f);
    let t = Instant::now();
    let run_id = loop {
        if t.elapsed() >= Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no checkpoint with two segments within 60 s");
        }
        let runs = storage::list_dirs(&admin, &layout::runs_dir(name))
            .await
            .unwrap_or_default();
        if let Some(run) = runs.first()
            && let Ok(Some(cp)) = checkpoint::load(&admin, name, run).await
            && cp
                .partitions
                .values()
                .map(|p| p.segments.len())
                .sum::<usize>()
                >= 2
        {
            child.kill().unwrap();
            child.wait().unwrap();
            break run.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        complete_runs(&admin, name).await.is_empty(),
        "killed mid-run"
    );
    assert!(
        admin.exists(&layout::backup_lock(name)).await.unwrap(),
        "the killed run left its lock"
    );
    let (ok, out) = run(dir.path(), &[&kb(""), &bk_secret]);
    assert!(ok, "the backup resumes under backup.json:\n{out}");
    assert!(out.contains(&run_id), "the same run is resumed: {out}");
    assert!(
        out.contains("taking over a stale repository lock"),
        "the killed run's lock is taken over (s3:DeleteObject on lock.json): {out}"
    );
    let m: kafka_backup_operator::format::manifest::RunManifest = serde_json::from_slice(
        &admin
            .read(&layout::manifest(name, &run_id))
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let records = |t: &str| -> u64 {
        m.topics
            .iter()
            .filter(|x| x.name == t)
            .flat_map(|x| &x.partitions)
            .map(|p| p.records)
            .sum()
    };
    assert_eq!(records(&topic), produced, "every record exactly once");
    let checkpoint_left: Vec<String> = admin
        .list_with(&layout::checkpoint_dir(name, &run_id))
        .await
        .map(|v| v.into_iter().map(|e| e.path().to_string()).collect())
        .unwrap_or_default();
    println!("checkpoint objects left by the finished run: {checkpoint_left:?}");

    // the backup's key cannot delete what the backup wrote
    let as_backup = store(&prefix, Some(&bk));
    let seg = m.topics[0].partitions[0].segments[0].path.clone();
    assert!(admin.exists(&seg).await.unwrap());
    for path in [layout::manifest(name, &run_id), seg] {
        let e = as_backup.delete(&path).await.unwrap_err();
        let e = storage::backend("delete", &path, e);
        assert_eq!(e.category(), "storage-refused", "{e}");
        assert!(e.to_string().contains("lacks s3:DeleteObject"), "{e}");
        assert!(admin.exists(&path).await.unwrap(), "{path} is still there");
    }

    // retention under the backup's key: refused by name, nothing pruned
    let keep1 = "  retention:\n    enabled: true\n    keepLast: 1\n";
    let (ok, out) = run(dir.path(), &[&kb(keep1), &bk_secret]);
    refused_naming(ok, &out, "s3:DeleteObject");
    let runs = complete_runs(&admin, name).await;
    assert_eq!(runs.len(), 2, "nothing pruned: {runs:?}");

    // retention.json without s3:DeleteObject: refused by name
    let rt_policy = policy("retention.json", &prefix, name, "");
    let crippled = iam_user(&without(&rt_policy, "s3:DeleteObject"));
    let with_key = format!("{keep1}    credentialsSecret:\n      name: rt\n");
    let (ok, out) = run(
        dir.path(),
        &[&kb(&with_key), &bk_secret, &secret_doc("rt", &crippled)],
    );
    refused_naming(ok, &out, "s3:DeleteObject");
    assert_eq!(complete_runs(&admin, name).await.len(), 3);

    // retention with its own key under retention.json prunes: the runs, and the segments of
    // the topic the last run no longer backs up
    let rt = iam_user(&rt_policy);
    let last = kb_of(std::slice::from_ref(&topic), &with_key);
    let (ok, out) = run(dir.path(), &[&last, &bk_secret, &secret_doc("rt", &rt)]);
    assert!(ok, "retention with retention.credentialsSecret:\n{out}");
    assert!(out.contains("3 pruned"), "{out}");
    let gone = m
        .topics
        .iter()
        .find(|t| t.name == dropped)
        .unwrap()
        .partitions[0]
        .segments[0]
        .path
        .clone();
    assert!(
        !admin.exists(&gone).await.unwrap(),
        "{gone} of the dropped topic is deleted: {out}"
    );
    assert!(
        !admin.exists(&layout::segment_index(&gone)).await.unwrap(),
        "its index is deleted"
    );
    let left = complete_runs(&admin, name).await;
    assert_eq!(left.len(), 1, "keepLast 1: {left:?}");
    assert!(
        !admin
            .exists(&layout::manifest(name, &run_id))
            .await
            .unwrap(),
        "the first run's manifest is deleted"
    );
    assert!(
        !admin.exists(&layout::backup_lock(name)).await.unwrap(),
        "retention released the lock"
    );
}

/// backup.json without s3:PutObject: the backup is refused naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_without_put_object_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = "lpn";
    let topic = unique("lp-noput");
    gen_load(&topic, 1, 1);
    let prefix = unique("lp-noput");
    let key = iam_user(&without(
        &policy("backup.json", &prefix, name, ""),
        "s3:PutObject",
    ));
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &s3_storage(&prefix, "bk"),
        "  stopAtCurrentOffsets: true\n",
    );
    let (ok, out) = run(dir.path(), &[&kb, &secret_doc("bk", &key)]);
    refused_naming(ok, &out, "s3:PutObject");
}

/// An encrypted backup (`storage.encryption.keySecret`) under backup.json writes its run's
/// wrapped data key (`keys/<run>.json`) and completes; a restore of it under restore.json (state
/// under restore-state.json) reads the key document and restores every record.
#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_backup_and_its_restore_need_no_more_than_their_policies() {
    let dir = tempfile::tempdir().unwrap();
    let name = "lpe";
    let topic = unique("lp-enc");
    gen_load(&topic, 2, 1);
    let prefix = unique("lp-enc");
    let state_prefix = unique("lp-enc-state");
    let bk = iam_user(&policy("backup.json", &prefix, name, ""));
    let ro = iam_user(&policy("restore.json", &prefix, name, ""));
    let st = iam_user(&policy("restore-state.json", &state_prefix, name, ""));
    // 32 bytes, base64
    let keys = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: lp-keys\ndata:\n  k1: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";
    let storage = |secret: &str| {
        format!(
            "{}\n    encryption:\n      keySecret: {{name: lp-keys}}\n      activeKeyId: k1",
            s3_storage(&prefix, secret)
        )
    };
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &storage("bk"),
        "  stopAtCurrentOffsets: true\n",
    );
    let (ok, out) = run(dir.path(), &[&kb, &secret_doc("bk", &bk), keys]);
    assert!(ok, "an encrypted backup under backup.json:\n{out}");
    let admin = store(&prefix, None);
    let key_docs = storage::list_dirs(&admin, &format!("{name}/"))
        .await
        .unwrap();
    assert!(
        key_docs.contains(&"keys".to_string()),
        "the run's key document is written: {key_docs:?}"
    );
    let target = format!("{topic}-r");
    let kr = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: lpe-r\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  backupRef:\n    name: {name}\n    storage:\n      {}\n  stateStorage:\n    {}\n",
        env().bootstrap,
        storage("repo").replace("\n    ", "\n      "),
        s3_storage(&state_prefix, "state"),
    );
    let (ok, out) = run(
        dir.path(),
        &[
            &kr,
            &secret_doc("repo", &ro),
            &secret_doc("state", &st),
            keys,
        ],
    );
    assert!(ok, "its restore under restore.json:\n{out}");
    assert_same(std::slice::from_ref(&topic), &[target], &[]);
}

/// A restore under restore.json on the repository (its state in `spec.stateStorage` under
/// restore-state.json) and a validation with its restore check under validation.json
/// succeed; without s3:GetObject each is refused naming it, and a validation without
/// s3:PutObject cannot store its evidence and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_and_a_validation_only_read_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let name = "lpr";
    let topic = unique("lp-read");
    gen_load(&topic, 2, 1);
    let prefix = unique("lp-read");
    let state_prefix = unique("lp-state");
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &s3_storage(&prefix, "admin"),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb, &s3_secret("admin", false)], name).await;
    let e = env();
    let inline = |secret: &str| s3_storage(&prefix, secret).replace("\n    ", "\n      ");
    let state_policy = policy("restore-state.json", &state_prefix, name, "");
    let restore = |rname: &str, target: &str, repo_key: &(String, String), state: &Value| {
        let st = iam_user(state);
        let kr = format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: {rname}\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  backupRef:\n    name: {name}\n    storage:\n      {}\n  stateStorage:\n    {}\n",
            e.bootstrap,
            inline("repo"),
            s3_storage(&state_prefix, "state"),
        );
        run(
            dir.path(),
            &[
                &kr,
                &secret_doc("repo", repo_key),
                &secret_doc("state", &st),
            ],
        )
    };
    let ro = policy("restore.json", &prefix, name, "");
    let (ok, out) = restore(
        "lpr-a",
        &format!("{topic}-a"),
        &iam_user(&ro),
        &state_policy,
    );
    assert!(ok, "a restore under restore.json:\n{out}");
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-a")], &[]);
    let state = store(&state_prefix, None);
    assert!(
        state
            .exists(&layout::restore_journal(name, "lpr-a"))
            .await
            .unwrap(),
        "the journal is in the state storage"
    );
    let (ok, out) = restore(
        "lpr-b",
        &format!("{topic}-b"),
        &iam_user(&without(&ro, "s3:GetObject")),
        &state_policy,
    );
    refused_naming(ok, &out, "s3:GetObject");
    // the state storage without s3:PutObject: refused before the target is touched, naming
    // the action and spec.stateStorage (the restore's own category for an unwritable state)
    let (ok, out) = restore(
        "lpr-c",
        &format!("{topic}-c"),
        &iam_user(&ro),
        &without(&state_policy, "s3:PutObject"),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("lacks s3:PutObject") && out.contains("spec.stateStorage"),
        "{out}"
    );

    let kbv = |vname: &str| {
        format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: {vname}\nspec:\n  backupRef:\n    name: {name}\n    storage:\n      {}\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n",
            inline("val"),
            e.bootstrap
        )
    };
    let vp = |vname: &str| policy("validation.json", &prefix, name, vname);
    let (ok, out) = run(
        dir.path(),
        &[&kbv("lpv1"), &secret_doc("val", &iam_user(&vp("lpv1")))],
    );
    assert!(ok, "a validation under validation.json:\n{out}");
    for c in ["objects", "messageCount", "restoreRecords"] {
        assert!(
            out.lines().any(|l| l.starts_with(c) && l.contains("Pass")),
            "{c} passes: {out}"
        );
    }
    let report = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence report: "))
        .expect("the report is stored");
    assert!(
        report.starts_with(&format!("{name}/validations/lpv1/")),
        "{report}"
    );
    let admin = store(&prefix, None);
    let leftovers: Vec<String> = admin
        .list_with(&format!("{name}/restores/"))
        .recursive(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.metadata().is_dir())
        .map(|e| e.path().to_string())
        .collect();
    println!("scratch restore state left in the repository: {leftovers:?}");
    for (vname, action) in [("lpv2", "s3:GetObject"), ("lpv3", "s3:PutObject")] {
        let key = iam_user(&without(&vp(vname), action));
        let (ok, out) = run(dir.path(), &[&kbv(vname), &secret_doc("val", &key)]);
        refused_naming(ok, &out, action);
    }
    assert!(
        admin
            .exists(&layout::manifest(name, &m.run_id))
            .await
            .unwrap()
    );
}

/// `retention.credentialsSecret` is an S3 key pair: on another storage type it is refused when
/// the document is loaded, naming the field.
#[test]
fn retention_credentials_secret_is_refused_for_a_storage_that_is_not_s3() {
    let dir = tempfile::tempdir().unwrap();
    let kb = backup_yaml(
        "lpf",
        &["t".to_string()],
        &fs_storage(dir.path()),
        "  retention:\n    enabled: true\n    keepLast: 1\n    credentialsSecret:\n      name: rt\n",
    );
    let e = match load(&[write_docs(dir.path(), &[&kb])], Some("lpf")) {
        Err(e) => e.to_string(),
        Ok((Target::Backup(_), _)) => panic!("accepted"),
        Ok(_) => panic!("not a backup"),
    };
    assert!(
        e.contains("spec.retention.credentialsSecret") && e.contains("filesystem"),
        "{e}"
    );
}
