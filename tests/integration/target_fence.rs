//! Issue 15, classes 4 and 8: two restores never both write one target (the claim log on the
//! target cluster), and a restore needs only read access to the backup repository (its
//! journal, lock and offset map go to `spec.stateStorage`), touching nothing on the target
//! before it knows it can write its journal.
use std::process::{Command, Stdio};

use crate::support::*;
use kafka_backup_operator::kafka::ops::OffsetSpec;

/// Sum of the high watermarks of `topic`'s partitions (None when the topic does not exist).
async fn records_in(topic: &str) -> Option<i64> {
    let c = client().await;
    let meta = c.load_metadata(Some(&[topic.to_string()])).await.ok()?;
    let t = meta.topics.get(topic)?;
    let parts: Vec<(String, i32)> = t
        .partitions
        .keys()
        .map(|p| (topic.to_string(), *p))
        .collect();
    let ends = c.list_offsets(&parts, OffsetSpec::Latest).await.unwrap();
    Some(ends.values().sum())
}

/// Two KafkaRestores with different names, started together as two processes into the same
/// new target topic: one restores, the other is refused (by the target lock, or, when the first
/// one's records are already there at plan time, by the plan); every record lands once. Fails on
/// eada667, where both complete and the target holds every record twice.
#[tokio::test]
async fn two_restores_started_together_into_one_target_write_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let name = "fence-two";
    let topic = unique(name);
    let produced = gen_load(&topic, 2, 4);
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    backup(dir.path(), &[&kb], name).await;
    let target = format!("{topic}-r");
    let mut children = vec![];
    for r in ["fence-two-a", "fence-two-b"] {
        let kr = restore_yaml(
            r,
            name,
            &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
        );
        let f = write_docs(dir.path(), &[&kr, &kb]);
        children.push(
            Command::new(env!("CARGO_BIN_EXE_kafka-backup-operator"))
                .args(["run", "--no-progress", "-f"])
                .arg(&f)
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    let text: Vec<String> = outs
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect();
    assert_eq!(
        ok,
        1,
        "exactly one restore must succeed:\n{}",
        text.join("\n----\n")
    );
    let refused = outs
        .iter()
        .zip(&text)
        .find(|(o, _)| !o.status.success())
        .map(|(_, t)| t.clone())
        .unwrap();
    // which refusal depends on how far the first restore got when the second one planned:
    // its target lock, its records in the target found at plan time, or after it
    assert!(
        refused.contains("target locked")
            || refused.contains("after this restore was planned")
            || refused.contains("already holds records this restore did not write"),
        "the refusal says why: {refused}"
    );
    assert_eq!(
        records_in(&target).await,
        Some(produced as i64),
        "every record lands exactly once"
    );
    assert_same(&[topic], &[target], &[]);
}

/// A key pair of moto that may only read (GetObject, ListBucket): an IAM user made with the
/// administrator key of testenv (boto3, an independent client).
fn read_only_secret(name: &str) -> String {
    let e = env();
    let script = format!(
        r#"
import boto3, json, uuid
kw = dict(endpoint_url="{ep}", region_name="us-east-1", aws_access_key_id="{ak}", aws_secret_access_key="{sk}")
iam = boto3.client("iam", **kw)
u = "ro-" + uuid.uuid4().hex[:12]
iam.create_user(UserName=u)
iam.put_user_policy(UserName=u, PolicyName="ro", PolicyDocument=json.dumps({{"Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}}]}}))
k = iam.create_access_key(UserName=u)["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#,
        ep = e.s3_endpoint,
        ak = e.access_key,
        sk = e.secret_key
    );
    let out = Command::new(&e.python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (ak, sk) = s.trim().split_once(' ').unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  AWS_ACCESS_KEY_ID: {ak}\n  AWS_SECRET_ACCESS_KEY: {sk}\n"
    )
}

/// A restore with read-only credentials on the repository: without `stateStorage` it fails
/// before creating its target topic, naming the fix; with `stateStorage` on a filesystem it
/// restores every record and writes nothing to the repository.
#[tokio::test]
async fn a_restore_needs_only_read_access_to_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let name = "fence-ro";
    let topic = unique(name);
    let produced = gen_load(&topic, 2, 2);
    let prefix = unique("ro-repo");
    let kb = backup_yaml(
        name,
        std::slice::from_ref(&topic),
        &s3_storage(&prefix, "s3-rw"),
        "  stopAtCurrentOffsets: true\n",
    );
    let rw = s3_secret("s3-rw", false);
    backup(dir.path(), &[&kb, &rw], name).await;
    let ro = read_only_secret("s3-ro");
    let inline = s3_storage(&prefix, "s3-ro").replace("\n    ", "\n      ");
    let target = format!("{topic}-r");
    let spec = format!(
        "  createTopics: true\n  topicMapping:\n    {topic}: {target}\n  backupRef:\n    name: {name}\n    storage:\n      {inline}\n"
    );
    // backupRef given twice would be a YAML error: build the document by hand
    let e = env();
    let kr = |rname: &str, extra: &str| {
        format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: {rname}\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"{}\"]\n{spec}{extra}",
            e.bootstrap
        )
    };
    let f = write_docs(dir.path(), &[&kr("fence-ro-a", ""), &ro]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(
        !ok,
        "a restore that cannot write its journal must fail:\n{out}{err}"
    );
    assert!(
        err.contains("spec.stateStorage") || out.contains("spec.stateStorage"),
        "{out}{err}"
    );
    assert_eq!(
        records_in(&target).await,
        None,
        "the target topic was not created"
    );

    let state = tempfile::tempdir().unwrap();
    let extra = format!("  stateStorage:\n    {}\n", fs_storage(state.path()));
    let f = write_docs(dir.path(), &[&kr("fence-ro-b", &extra), &ro]);
    let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(records_in(&target).await, Some(produced as i64));
    assert_same(&[topic], &[target], &[]);
    let journal = state
        .path()
        .join(format!("{name}/restores/fence-ro-b/journal.json"));
    assert!(journal.exists(), "the journal is in the state storage");
    let listing = Command::new(&e.python)
        .args([
            "-c",
            &format!(
                "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}'); print([o['Key'] for o in s3.list_objects_v2(Bucket='{}', Prefix='{prefix}/{name}/restores/').get('Contents', [])])",
                e.s3_endpoint, e.access_key, e.secret_key, e.bucket
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "[]",
        "nothing written to the repository"
    );
}
