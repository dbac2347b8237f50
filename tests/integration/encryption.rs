//! Client-side envelope encryption (issue 16, docs/security.md): no record byte in any stored
//! object, exact restores with the key (checked with confluent-kafka), clear refusals without
//! it, rotation, re-wrapping and crypto-shredding, and a changed manifest refused.
use std::path::Path;

use crate::support::*;
use base64::Engine;

/// Strings of the sample's `plain` topic (kbo_data.py plain_records): keys and values.
const MARKERS: &[&str] = &["producer-time timestamp", "same key again", "k-tombstone"];

/// A Secret holding the given key ids, each 32 random bytes (`data`, base64).
pub fn key_secret(name: &str, keys: &[(&str, &[u8; 32])]) -> String {
    let mut s = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ndata:\n");
    for (id, k) in keys {
        s.push_str(&format!(
            "  {id}: {}\n",
            base64::engine::general_purpose::STANDARD.encode(k)
        ));
    }
    s
}

/// A storage block (filesystem at `dir`) with `encryption` from Secret `secret`, key `active`.
fn encrypted_fs(dir: &Path, secret: &str, active: &str) -> String {
    format!(
        "{}\n    encryption:\n      keySecret: {{name: {secret}}}\n      activeKeyId: {active}",
        fs_storage(dir)
    )
}

fn random_key() -> [u8; 32] {
    rand::random()
}

/// The kubectl plugin binary.
fn plugin(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-kafkabackup"))
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

/// A KafkaRestore of run `run` of backup `backup`.
fn restore_run(name: &str, backup: &str, run: &str, extra: &str) -> String {
    restore_yaml(name, backup, extra).replace(
        &format!("    name: {backup}\n"),
        &format!("    name: {backup}\n    backupId: \"{run}\"\n"),
    )
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

async fn topic_exists(name: &str) -> bool {
    client().await.metadata().topics.contains_key(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_repository_holds_no_record_byte_and_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (plain_repo, enc_repo) = (dir.path().join("plain"), dir.path().join("enc"));
    let prefix = unique("enc");
    let summary = produce_sample(&format!("{prefix}-"), 200);
    let topics = sample_topics(&summary);
    let plain_topic = topics.iter().find(|t| t.ends_with("-plain")).unwrap();
    let group = unique("snapshot-group");
    group_commit(&group, plain_topic, 3);
    let key = random_key();
    let secret = key_secret("enc-keys", &[("k2026", &key)]);
    let spec = "  stopAtCurrentOffsets: true\n  compression: none\n  consumerGroupSnapshot: true\n";
    let sel = [format!("{prefix}-*")];
    // the control: a plaintext repository without outer compression holds the record bytes,
    // so the search below can find them
    let kb_plain = backup_yaml("encp", &sel, &fs_storage(&plain_repo), spec);
    backup(dir.path(), &[&kb_plain], "encp").await;
    for m in MARKERS {
        assert!(
            !files_containing(&plain_repo, m.as_bytes()).is_empty(),
            "control: {m:?} is in the plaintext repository"
        );
    }
    let kb = backup_yaml(
        "enc",
        &sel,
        &encrypted_fs(&enc_repo, "enc-keys", "k2026"),
        spec,
    );
    let m = backup(dir.path(), &[&kb, &secret], "enc").await;
    assert!(m.seal.is_some(), "the manifest says the run is encrypted");
    assert_eq!(m.format, "kafka-backup-operator/v3");
    for needle in MARKERS.iter().map(|m| m.as_bytes()).chain([
        group.as_bytes(),
        &key[..],
        base64::engine::general_purpose::STANDARD
            .encode(key)
            .as_bytes(),
    ]) {
        let found = files_containing(&enc_repo, needle);
        assert!(
            found.is_empty(),
            "{:?} found in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }
    // a key document per run, and no plaintext block
    assert!(
        enc_repo
            .join(format!("enc/keys/{}.json", m.run_id))
            .exists()
    );

    let kr = restore_yaml(
        "enc-restore",
        "enc",
        &format!("  createTopics: true\n{}", mapping(&topics, "-r")),
    );
    let out = restore(dir.path(), &[&kb, &secret, &kr], "enc-restore").await;
    assert!(out.records > 0);
    assert_same(&topics, &suffixed(&topics, "-r"), &[]);

    // the consumer-group snapshot was sealed in the manifest and opens with the key
    let f = write_docs(dir.path(), &[&kb, &secret]);
    let kbv = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata:\n  name: enc-v\nspec:\n  backupRef:\n    name: enc\n  checks:\n    consumerGroupOffsets:\n      enabled: true\n      consumerGroups: [\"{group}\"]\n"
    );
    let v = write_docs(dir.path(), &[&kbv]);
    let (ok, out, err) = cli(&[
        "run",
        "-f",
        f.to_str().unwrap(),
        "-f",
        v.to_str().unwrap(),
        "--name",
        "enc-v",
    ]);
    assert!(ok, "validation of the encrypted run: {out}{err}");
    assert!(
        !format!("{out}{err}").contains("FAIL"),
        "every check passes: {out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_key_a_restore_fails_before_writing_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let prefix = unique("enck");
    let summary = produce_sample(&format!("{prefix}-"), 50);
    let topics = sample_topics(&summary);
    let (k1, k2) = (random_key(), random_key());
    let secret = key_secret("nk-keys", &[("k1", &k1)]);
    let kb = backup_yaml(
        "nk",
        &[format!("{prefix}-*")],
        &encrypted_fs(&repo, "nk-keys", "k1"),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb, &secret], "nk").await;
    let target = format!("{}-r", topics[0]);
    let map = format!("  createTopics: true\n{}", mapping(&topics, "-r"));

    // 1. the repository read without storage.encryption
    let inline = format!(
        "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: nk-r1\nspec:\n  backupRef:\n    name: nk\n    storage:\n      {}\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n{map}",
        fs_storage(&repo).replace("\n    ", "\n      "),
        env().bootstrap
    );
    let f = write_docs(dir.path(), &[&inline]);
    let (ok, out, err) = cli(&["run", "-f", f.to_str().unwrap()]);
    assert!(!ok, "exit status is not zero");
    let text = format!("{out}{err}");
    assert!(
        text.contains("is encrypted") && text.contains("encryption"),
        "{text}"
    );
    assert!(!topic_exists(&target).await, "nothing was created");

    // 2. the key id that wrapped the run's data key is not in the Secret
    let other = key_secret("nk-keys", &[("k2", &k2)]);
    let kb2 = kb.replace("activeKeyId: k1", "activeKeyId: k2");
    let kr = restore_yaml("nk-r2", "nk", &map);
    let f = write_docs(dir.path(), &[&kb2, &other, &kr]);
    let (ok, out, err) = cli(&["run", "-f", f.to_str().unwrap(), "--name", "nk-r2"]);
    assert!(!ok, "exit status is not zero");
    let text = format!("{out}{err}");
    assert!(
        text.contains("\"k1\"") && text.contains("\"nk-keys\""),
        "names the key id and the Secret: {text}"
    );
    assert!(!topic_exists(&target).await, "nothing was created");
    // no key material in the messages
    for k in [&k1, &k2] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(k);
        assert!(!text.contains(&b64), "no key in the output");
    }

    // 3. a plaintext backup into the encrypted repository is refused, naming the field
    let kb_plain = backup_yaml(
        "nk",
        &[format!("{prefix}-*")],
        &fs_storage(&repo),
        "  stopAtCurrentOffsets: true\n",
    );
    let e = run_docs(dir.path(), &[&kb_plain], "nk")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("spec.storage.encryption"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_manifest_or_block_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let prefix = unique("enct");
    let summary = produce_sample(&format!("{prefix}-"), 50);
    let topics = sample_topics(&summary);
    let key = random_key();
    let secret = key_secret("t-keys", &[("k", &key)]);
    let kb = backup_yaml(
        "t",
        &[format!("{prefix}-*")],
        &encrypted_fs(&repo, "t-keys", "k"),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb, &secret], "t").await;
    let map = format!("  createTopics: true\n{}", mapping(&topics, "-r"));
    let kr = restore_yaml("t-r", "t", &map);

    // an attacker with write access changes the manifest and recomputes its SHA-256
    let path = repo.join(format!("t/runs/{}/manifest.json", m.run_id));
    let original = std::fs::read(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let p0 = &mut v["topics"][0]["partitions"][0];
    p0["cut"] = (p0["cut"].as_i64().unwrap() - 1).into();
    v.as_object_mut().unwrap().remove("checksum");
    std::fs::write(&path, kafka_backup_operator::format::manifest::to_json(&v)).unwrap();
    let e = run_docs(dir.path(), &[&kb, &secret, &kr], "t-r")
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("authentication code"), "{e}");
    std::fs::write(&path, original).unwrap();

    // one flipped byte inside an encrypted block: refused by its CRC-32C before decryption
    let seg = &m.topics[0]
        .partitions
        .iter()
        .find(|p| !p.segments.is_empty())
        .unwrap()
        .segments[0];
    let seg_path = repo.join(&seg.path);
    let mut bytes = std::fs::read(&seg_path).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x40;
    std::fs::write(&seg_path, &bytes).unwrap();
    let e = run_docs(dir.path(), &[&kb, &secret, &kr], "t-r")
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains(&seg.path), "names the object: {e}");
    assert!(!topic_exists(&format!("{}-r", topics[0])).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_rewrap_and_crypto_shredding() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let prefix = unique("encr");
    let summary = produce_sample(&format!("{prefix}-"), 50);
    let topics = sample_topics(&summary);
    let (k1, k2) = (random_key(), random_key());
    let sel = [format!("{prefix}-*")];
    let spec = "  stopAtCurrentOffsets: true\n";
    // run 1 under k1
    let s1 = key_secret("r-keys", &[("k1", &k1)]);
    let kb1 = backup_yaml("rot", &sel, &encrypted_fs(&repo, "r-keys", "k1"), spec);
    let m1 = backup(dir.path(), &[&kb1, &s1], "rot").await;
    // rotation: add k2 and make it active; run 2 (incremental) under k2
    let s12 = key_secret("r-keys", &[("k1", &k1), ("k2", &k2)]);
    let kb2 = backup_yaml("rot", &sel, &encrypted_fs(&repo, "r-keys", "k2"), spec);
    let m2 = backup(dir.path(), &[&kb2, &s12], "rot").await;
    assert_ne!(m1.run_id, m2.run_id);
    assert!(m2.seal.as_ref().unwrap().kek.contains("k2"));

    // without k1, run 2 (which lists run 1's segments) cannot be read, naming k1
    let s2 = key_secret("r-keys", &[("k2", &k2)]);
    let map = format!("  createTopics: true\n{}", mapping(&topics, "-a"));
    let kr = restore_yaml("rot-a", "rot", &map);
    let e = run_docs(dir.path(), &[&kb2, &s2, &kr], "rot-a")
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("\"k1\""), "{e}");

    // re-wrap every data key under k2 (nothing else rewritten), then k1 can go
    let seg_before = std::fs::read(repo.join(&m1.topics[0].partitions[0].segments[0].path));
    let f = write_docs(dir.path(), &[&kb2, &s12]);
    let (ok, out, err) = plugin(&["keys", "rewrap", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&m1.run_id),
        "reports the re-wrapped run: {out}"
    );
    assert_eq!(
        seg_before.ok(),
        std::fs::read(repo.join(&m1.topics[0].partitions[0].segments[0].path)).ok(),
        "segments are not rewritten"
    );
    restore(dir.path(), &[&kb2, &s2, &kr], "rot-a").await;
    assert_same(&topics, &suffixed(&topics, "-a"), &[]);

    // crypto-shredding run 2: its data key is destroyed; run 1 still restores exactly
    let f = write_docs(dir.path(), &[&kb2, &s2]);
    let (ok, out, err) = plugin(&[
        "keys",
        "shred",
        "-f",
        f.to_str().unwrap(),
        "--run",
        &m2.run_id,
        "--yes",
    ]);
    assert!(ok, "{out}{err}");
    let kr_b = restore_run("rot-b", "rot", &m2.run_id, &mapping_created(&topics, "-b"));
    let e = run_docs(dir.path(), &[&kb2, &s2, &kr_b], "rot-b")
        .await
        .err()
        .expect("run 2 is unreadable");
    assert!(e.to_string().contains("crypto-shredded"), "{e}");
    assert!(!topic_exists(&format!("{}-b", topics[0])).await);
    let kr_c = restore_run("rot-c", "rot", &m1.run_id, &mapping_created(&topics, "-c"));
    restore(dir.path(), &[&kb2, &s2, &kr_c], "rot-c").await;
    assert_same(&topics, &suffixed(&topics, "-c"), &[]);
}

fn mapping_created(topics: &[String], suffix: &str) -> String {
    format!("  createTopics: true\n{}", mapping(topics, suffix))
}

/// Runs a boto3 KMS script with the testenv administrator key; its stdout, trimmed.
fn kms_script(script: &str) -> String {
    let e = env();
    let prelude = format!(
        "import boto3\nkms = boto3.client('kms', endpoint_url={:?}, region_name='us-east-1', aws_access_key_id={:?}, aws_secret_access_key={:?})\n",
        e.s3_endpoint, e.access_key, e.secret_key
    );
    let out = std::process::Command::new(&e.python)
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_wrapped_backup_on_s3_restores_exactly_and_not_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("enckms");
    let summary = produce_sample(&format!("{prefix}-"), 100);
    let topics = sample_topics(&summary);
    let key = kms_script("print(kms.create_key(Description='kbo e2e')['KeyMetadata']['Arn'])");
    let e = env();
    let storage = format!(
        "{}\n    encryption:\n      awsKms:\n        keyId: \"{key}\"\n        region: us-east-1\n        endpoint: {}\n        allowHttp: true\n        credentialsSecret: {{name: kms-creds}}",
        s3_storage(&prefix, "s3-creds"),
        e.s3_endpoint
    );
    let kb = backup_yaml(
        "kmsb",
        &[format!("{prefix}-*")],
        &storage,
        "  stopAtCurrentOffsets: true\n  compression: none\n",
    );
    let (s3, kms) = (s3_secret("s3-creds", false), s3_secret("kms-creds", false));
    let m = backup(dir.path(), &[&kb, &s3, &kms], "kmsb").await;
    assert!(m.seal.as_ref().unwrap().kek.contains(&key));
    // every stored object, read back with boto3 (an independent client): no record bytes
    let found = kms_script(&format!(
        "s3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', aws_access_key_id={:?}, aws_secret_access_key={:?})\nn = 0\nhits = []\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket={:?}, Prefix={:?}):\n    for o in page.get('Contents', []):\n        b = s3.get_object(Bucket={:?}, Key=o['Key'])['Body'].read()\n        n += 1\n        hits += [o['Key'] for m in {:?} if m.encode() in b]\nprint(n, hits)",
        e.s3_endpoint, e.access_key, e.secret_key, e.bucket, prefix, e.bucket, MARKERS
    ));
    assert!(
        found.ends_with(" []"),
        "objects holding record bytes: {found}"
    );
    assert!(!found.starts_with("0 "), "objects were read: {found}");

    let kr = restore_yaml(
        "kmsb-r",
        "kmsb",
        &format!("  createTopics: true\n{}", mapping(&topics, "-r")),
    );
    restore(dir.path(), &[&kb, &s3, &kms, &kr], "kmsb-r").await;
    assert_same(&topics, &suffixed(&topics, "-r"), &[]);

    // another KMS key configured (moto ignores DisableKey): the run's data key does not
    // unwrap; refused before anything is written, naming the key
    let other =
        kms_script("print(kms.create_key(Description='kbo e2e other')['KeyMetadata']['Arn'])");
    let kb = kb.replace(&key, &other);
    let kr2 = restore_yaml(
        "kmsb-r2",
        "kmsb",
        &format!("  createTopics: true\n{}", mapping(&topics, "-x")),
    );
    let err = run_docs(dir.path(), &[&kb, &s3, &kms, &kr2], "kmsb-r2")
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains(&key), "{err}");
    assert!(!topic_exists(&format!("{}-x", topics[0])).await);
}
