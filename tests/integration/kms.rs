//! The AWS KMS client (src/storage/kms.rs) against moto's KMS, the same IAM-enforcing moto
//! server as the S3 tests. Keys, aliases and restricted IAM users are made with boto3 (an
//! independent client) using the testenv administrator key; boto3 also cross-checks what our
//! client wraps and unwraps.
//!
//! moto 5.2.5 enforces IAM actions, the encryption context and the key a blob belongs to; it
//! does not refuse a disabled key (its GenerateDataKey/Decrypt ignore the key state), which
//! [`a_disabled_key_is_refused_naming_it_or_the_gap_is_reported`] detects and reports.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kafka_backup_operator::storage::kms::{
    ATTEMPT_TIMEOUT, KmsClient, KmsError, KmsSettings, RETRIES,
};

use crate::support::*;

/// Runs a boto3 script with `kms` and `iam` clients of the administrator; its stdout, trimmed.
fn boto(script: &str) -> String {
    let e = env();
    let prelude = r#"
import boto3, json, os, sys, uuid, base64
kw = dict(endpoint_url=os.environ["KBO_S3_ENDPOINT"], region_name="us-east-1",
          aws_access_key_id=os.environ["KBO_S3_ACCESS_KEY"],
          aws_secret_access_key=os.environ["KBO_S3_SECRET_KEY"])
kms = boto3.client("kms", **kw)
iam = boto3.client("iam", **kw)
"#;
    let out = Command::new(&e.python)
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new symmetric KMS key; its ARN.
fn new_key() -> String {
    boto(r#"print(kms.create_key(Description="kbo kms test")["KeyMetadata"]["Arn"])"#)
}

/// A client of `key_id` with the administrator's credentials.
fn admin(key_id: &str) -> KmsClient {
    let e = env();
    client(key_id, &e.s3_endpoint, (e.access_key, e.secret_key))
}

fn client(key_id: &str, endpoint: &str, creds: (String, String)) -> KmsClient {
    KmsClient::new(KmsSettings {
        key_id: key_id.to_string(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_string()),
        credentials: Some(creds),
    })
    .unwrap()
}

/// The encryption context the envelope uses: `kbo:backup` and `kbo:run`.
fn context(backup: &str, run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kbo:backup".to_string(), backup.to_string()),
        ("kbo:run".to_string(), run.to_string()),
    ])
}

/// An IAM user allowed only `actions` (on every resource); its (access key id, secret).
fn restricted_user(actions: &[&str]) -> (String, String) {
    let out = boto(&format!(
        r#"
u = "kms-" + uuid.uuid4().hex[:12]
iam.create_user(UserName=u)
iam.put_user_policy(UserName=u, PolicyName="p", PolicyDocument=json.dumps({{"Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": {actions}, "Resource": "*"}}]}}))
k = iam.create_access_key(UserName=u)["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#,
        actions = serde_json::to_string(actions).unwrap()
    ));
    let (ak, sk) = out.split_once(' ').unwrap();
    (ak.to_string(), sk.to_string())
}

/// The error's Display is one line naming the key and the code, and neither Display nor Debug
/// holds any of `secrets`.
fn assert_clear(e: &KmsError, key_id: &str, codes: &[&str], secrets: &[&str]) {
    let shown = e.to_string();
    let debug = format!("{e:?}");
    eprintln!("{shown}");
    assert!(!shown.contains('\n'), "one line: {shown}");
    assert!(shown.contains(key_id), "names the key {key_id}: {shown}");
    assert!(
        codes.contains(&e.code()) && shown.contains(e.code()),
        "code {:?} is one of {codes:?}: {shown}",
        e.code()
    );
    for s in secrets.iter().chain([&env().secret_key.as_str()]) {
        assert!(
            !shown.contains(s) && !debug.contains(s),
            "a secret is shown: {shown} / {debug}"
        );
    }
}

#[tokio::test]
async fn a_generated_data_key_decrypts_to_itself_and_rewraps_under_another_key() {
    let (a, b) = (new_key(), new_key());
    let ctx = context("orders", "r-1");
    let (key, blob) = admin(&a).generate_data_key(&ctx).await.unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(*key, [0u8; 32]);
    assert!(!blob.is_empty());
    let again = admin(&a).decrypt(&blob, &ctx).await.unwrap();
    assert_eq!(*again, *key, "Decrypt returns the generated key");
    // boto3 (an independent client) unwraps our blob to the same key
    let theirs = boto(&format!(
        "print(base64.b64encode(kms.decrypt(CiphertextBlob=base64.b64decode({blob:?}), \
         EncryptionContext={ctx}, KeyId={a:?})['Plaintext']).decode())",
        blob = B64.encode(&blob),
        ctx = serde_json::to_string(&ctx).unwrap(),
    ));
    assert_eq!(theirs, B64.encode(*key));

    // re-wrap under key B (Encrypt), addressed by an alias; B unwraps the same key
    let alias = format!("alias/{}", unique("kbo"));
    boto(&format!(
        "kms.create_alias(AliasName={alias:?}, TargetKeyId={b:?})"
    ));
    let rewrapped = admin(&alias).encrypt(&key, &ctx).await.unwrap();
    assert_ne!(rewrapped, blob);
    assert_eq!(*admin(&b).decrypt(&rewrapped, &ctx).await.unwrap(), *key);
    assert_eq!(
        *admin(&alias).decrypt(&rewrapped, &ctx).await.unwrap(),
        *key
    );
    // two runs get two different keys
    let (other, _) = admin(&a)
        .generate_data_key(&context("orders", "r-2"))
        .await
        .unwrap();
    assert_ne!(*other, *key);
}

/// Rotation by alias: the alias is pointed at a new key; a run wrapped before still unwraps
/// with the key ARN recorded at GenerateDataKey, not with the alias.
#[tokio::test]
async fn a_recorded_key_arn_unwraps_after_the_alias_moves_to_a_new_key() {
    let (a, b) = (new_key(), new_key());
    let alias = format!("alias/{}", unique("kbo-rot"));
    boto(&format!(
        "kms.create_alias(AliasName={alias:?}, TargetKeyId={a:?}.split('/')[-1])"
    ));
    let ctx = context("orders", "r-1");
    let g = admin(&alias).generate(&ctx).await.unwrap();
    assert_eq!(g.key_arn, a, "the answer names the key behind the alias");
    let shown = format!("{g:?}");
    assert!(
        shown.contains(&a) && !shown.contains(&B64.encode(*g.plaintext)),
        "{shown}"
    );
    boto(&format!(
        "kms.update_alias(AliasName={alias:?}, TargetKeyId={b:?}.split('/')[-1])"
    ));
    let client = admin(&alias);
    let again = client
        .decrypt_under(&g.key_arn, &g.blob, &ctx)
        .await
        .unwrap();
    assert_eq!(*again, *g.plaintext);
    // through the alias, now naming key B, KMS refuses the blob of key A
    let e = client.decrypt(&g.blob, &ctx).await.unwrap_err();
    assert_clear(
        &e,
        &alias,
        &["IncorrectKeyException", "AccessDeniedException"],
        &[&B64.encode(*g.plaintext)],
    );
    // new runs are wrapped by key B
    assert_eq!(client.generate(&ctx).await.unwrap().key_arn, b);
}

#[tokio::test]
async fn decrypt_with_another_encryption_context_is_refused() {
    let a = new_key();
    let (key, blob) = admin(&a)
        .generate_data_key(&context("orders", "r-1"))
        .await
        .unwrap();
    let key64 = B64.encode(*key);
    for wrong in [
        context("orders", "r-2"),
        context("payments", "r-1"),
        BTreeMap::new(),
    ] {
        let e = admin(&a).decrypt(&blob, &wrong).await.unwrap_err();
        assert_clear(&e, &a, &["InvalidCiphertextException"], &[&key64]);
        assert!(e.to_string().contains("encryption context"), "{e}");
        assert!(!e.is_transient());
    }
}

#[tokio::test]
async fn a_blob_of_key_a_is_refused_by_key_b() {
    let (a, b) = (new_key(), new_key());
    let ctx = context("orders", "r-1");
    let (key, blob) = admin(&a).generate_data_key(&ctx).await.unwrap();
    let e = admin(&b).decrypt(&blob, &ctx).await.unwrap_err();
    // AWS answers IncorrectKeyException; moto 5.2.5 answers AccessDeniedException
    assert_clear(
        &e,
        &b,
        &["IncorrectKeyException", "AccessDeniedException"],
        &[&B64.encode(*key)],
    );
    assert!(e.to_string().contains("another KMS key"), "{e}");
}

#[tokio::test]
async fn a_disabled_key_is_refused_naming_it_or_the_gap_is_reported() {
    let a = new_key();
    let ctx = context("orders", "r-1");
    let (_, blob) = admin(&a).generate_data_key(&ctx).await.unwrap();
    // by its bare id: moto 5.2.5 answers HTTP 500 to DisableKey with a key ARN
    boto(&format!("kms.disable_key(KeyId={a:?}.split('/')[-1])"));
    let state = boto(&format!(
        "print(kms.describe_key(KeyId={a:?})['KeyMetadata']['KeyState'])"
    ));
    assert_eq!(state, "Disabled", "the key was disabled");
    match admin(&a).generate_data_key(&ctx).await {
        Err(e) => {
            assert_clear(&e, &a, &["DisabledException"], &[]);
            assert!(e.to_string().contains("EnableKey"), "{e}");
            let d = admin(&a).decrypt(&blob, &ctx).await.unwrap_err();
            assert_clear(&d, &a, &["DisabledException"], &[]);
        }
        Ok(_) => eprintln!(
            "NOTE: this KMS (moto) does not refuse a disabled key: GenerateDataKey succeeded with key state {state}. \
             AWS answers DisabledException; its message is covered by the unit test \
             storage::kms::tests::throttling_and_5xx_are_transient_and_refusals_are_not"
        ),
    }
}

#[tokio::test]
async fn an_unknown_key_is_refused_naming_it() {
    let missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000000";
    let e = admin(missing)
        .generate_data_key(&context("orders", "r-1"))
        .await
        .unwrap_err();
    assert_clear(&e, missing, &["NotFoundException"], &[]);
    assert!(e.to_string().contains("awsKms.keyId"), "{e}");
}

#[tokio::test]
async fn a_decrypt_only_user_cannot_generate_data_keys() {
    let a = new_key();
    let ctx = context("orders", "r-1");
    let (key, blob) = admin(&a).generate_data_key(&ctx).await.unwrap();
    let (ak, sk) = restricted_user(&["kms:Decrypt"]);
    let restore = client(&a, &env().s3_endpoint, (ak, sk.clone()));
    // its right is effective (not a bad credential): it unwraps the run's key
    assert_eq!(*restore.decrypt(&blob, &ctx).await.unwrap(), *key);
    let e = restore.generate_data_key(&ctx).await.unwrap_err();
    assert_clear(
        &e,
        &a,
        &["AccessDeniedException", "AccessDenied"],
        &[&sk, &B64.encode(*key)],
    );
    assert!(e.to_string().contains("kms:GenerateDataKey"), "{e}");
    assert!(!e.is_transient());
    let e = restore.encrypt(&key, &ctx).await.unwrap_err();
    assert!(e.to_string().contains("kms:Encrypt"), "{e}");
}

#[tokio::test]
async fn a_wrong_secret_is_refused_without_showing_it() {
    let a = new_key();
    let e = env();
    let wrong = format!("{}x", e.secret_key);
    let c = client(&a, &e.s3_endpoint, (e.access_key.clone(), wrong.clone()));
    assert!(!format!("{c:?}").contains(&wrong), "{c:?}");
    let err = c
        .generate_data_key(&context("orders", "r-1"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains(&wrong) && !format!("{err:?}").contains(&wrong));
    assert!(shown.contains(&a) && !shown.contains('\n'), "{shown}");
    assert!(!err.is_transient(), "{shown}");
    eprintln!("wrong secret: {shown}");
}

#[tokio::test]
async fn a_dead_endpoint_fails_fast_with_one_line() {
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = env();
    let c = client(
        "alias/kbo",
        &format!("http://127.0.0.1:{port}"),
        (e.access_key, e.secret_key),
    );
    let t = Instant::now();
    let err = c.generate_data_key(&context("b", "r")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_clear(&err, "alias/kbo", &["ConnectionFailed"], &[]);
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "names the endpoint: {err}"
    );
}

#[tokio::test]
async fn a_silent_endpoint_times_out_within_the_bound() {
    // accepts connections and never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = vec![];
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let e = env();
    let c = client(
        "alias/kbo",
        &format!("http://127.0.0.1:{port}"),
        (e.access_key, e.secret_key),
    );
    let t = Instant::now();
    let err = c.decrypt(b"blob", &context("b", "r")).await.unwrap_err();
    let took = t.elapsed();
    let bound = ATTEMPT_TIMEOUT * (RETRIES as u32 + 1) + Duration::from_secs(3);
    assert!(
        took >= ATTEMPT_TIMEOUT && took < bound,
        "{took:?} within {bound:?}"
    );
    assert_clear(&err, "alias/kbo", &["Timeout"], &[]);
    let within = format!("within {} s", ATTEMPT_TIMEOUT.as_secs());
    assert!(err.to_string().contains(&within), "{err}");
    held.abort();
}
