//! The Job of a shard, built and read without a cluster (pure functions of `jobs`); the
//! launcher against the node's API server is in tests/e2e_node.rs.
use super::*;
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodStatus,
};

fn resource() -> RunResource {
    RunResource {
        kind: "KafkaBackup".into(),
        api_version: "kafka.oso.sh/v1alpha1".into(),
        name: "Orders.Backup_with-a-rather-long-name-that-goes-on-and-on".into(),
        namespace: "team-a".into(),
        uid: "0000-1111".into(),
        documents: "kind: KafkaBackup\n".into(),
        secrets: vec!["s3-creds".into(), "kafka-tls".into()],
        claims: vec!["backups".into()],
        execution: serde_yaml_ng::from_str(
            "mode: job\nshards: 3\nbackoffLimit: 2\nserviceAccountName: team-a-writer\nnodeSelector: {pool: batch}\nresources: {limits: {memory: 256Mi}}\n",
        )
        .unwrap(),
    }
}

fn defaults() -> JobDefaults {
    JobDefaults::parse(
        r#"{"image":"kbo:1","imagePullPolicy":"Never","hostNetwork":true,"env":[{"name":"KBO_LOG_FORMAT","value":"json"}]}"#,
    )
    .unwrap()
}

#[test]
fn job_names_are_dns_labels_stable_per_run_and_distinct_per_shard_and_run() {
    let r = resource();
    let a = job_name(&r, "20261206T000000Z", 0, 3);
    assert_eq!(a, job_name(&r, "20261206T000000Z", 0, 3));
    assert_ne!(a, job_name(&r, "20261206T000000Z", 1, 3));
    assert_ne!(a, job_name(&r, "20261206T000001Z", 0, 3));
    assert!(a.len() <= 63, "{a}");
    assert!(
        a.starts_with("orders-backup-with-a-rather-long-name-th"),
        "{a}"
    );
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{a}"
    );
}

#[test]
fn a_shard_job_runs_the_shard_as_non_root_without_a_token_with_only_its_secrets() {
    let r = resource();
    let job = job_manifest(&r, &defaults(), "run-1", 1, 3);
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("KafkaBackup", "0000-1111")
    );
    let labels = job.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kafka.oso.sh/shard"], "1");
    assert_eq!(labels["kafka.oso.sh/run"], "run-1");
    let tpl = &spec.template;
    let ann = tpl.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
    assert_eq!(ann[RESOURCES_ANNOTATION], "kind: KafkaBackup\n");
    let pod = tpl.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("team-a-writer"));
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "batch");
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(
        (psc.run_as_non_root, psc.run_as_user),
        (Some(true), Some(65532))
    );
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(c.image.as_deref(), Some("kbo:1"));
    let args = c.args.as_ref().unwrap().join(" ");
    assert!(
        args.ends_with("--plan run-1 --shard 1/3")
            && args.contains("-f /etc/kbo/run/resources.yaml")
            && args.contains("--secrets-dir /etc/kbo/secrets"),
        "{args}"
    );
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "256Mi");
    // one volume per Secret the resource names, read-only, not world-readable; the claim
    let vols = pod.volumes.as_ref().unwrap();
    let secrets: Vec<&str> = vols
        .iter()
        .filter_map(|v| v.secret.as_ref())
        .map(|s| s.secret_name.as_deref().unwrap())
        .collect();
    assert_eq!(secrets, ["s3-creds", "kafka-tls"]);
    assert!(
        vols.iter()
            .filter_map(|v| v.secret.as_ref())
            .all(|s| s.default_mode == Some(0o440))
    );
    assert!(vols.iter().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str())
            == Some("backups")
    }));
    let mounts = c.volume_mounts.as_ref().unwrap();
    let at = |p: &str| mounts.iter().find(|m| m.mount_path == p).unwrap();
    assert_eq!(at("/etc/kbo/secrets/s3-creds").read_only, Some(true));
    assert_eq!(at("/var/lib/kafka-backup/pvc/backups").read_only, None);
    assert_eq!(at("/tmp").read_only, None);
}

#[test]
fn without_a_service_account_the_charts_or_the_namespaces_default_is_used() {
    let mut r = resource();
    r.execution.service_account_name = Some(String::new());
    let mut d = defaults();
    let pod = |d: &JobDefaults| {
        let j = job_manifest(&r, d, "run-1", 0, 3);
        j.spec.unwrap().template.spec.unwrap().service_account_name
    };
    assert_eq!(pod(&d), None);
    d.service_account_name = Some("kbo-runner".into());
    assert_eq!(pod(&d).as_deref(), Some("kbo-runner"));
}

#[test]
fn the_defaults_need_an_image_and_name_the_variable() {
    let e = JobDefaults::parse(r#"{"image":""}"#).unwrap_err();
    assert!(e.contains(DEFAULTS_ENV) && e.contains("image"), "{e}");
    let e = JobDefaults::parse(r#"{"image":"x","imagePolicy":"y"}"#).unwrap_err();
    assert!(e.contains("imagePolicy"), "{e}");
}

#[test]
fn the_run_file_leaves_out_status_managed_fields_and_the_last_applied_copy() {
    let kb: crate::api::KafkaBackup = serde_yaml_ng::from_str(
        r#"
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: b
  namespace: n
  uid: u-1
  resourceVersion: "7"
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{secret-ish}", keep: "yes"}
spec:
  kafkaCluster: {bootstrapServers: ["k:9092"]}
  topics: [t]
  storage: {storageType: filesystem, filesystem: {path: /x}}
status: {phase: Completed}
"#,
    )
    .unwrap();
    let doc = RunResource::document(&kb).unwrap();
    assert!(
        !doc.contains("status") && !doc.contains("last-applied"),
        "{doc}"
    );
    assert!(!doc.contains("resourceVersion"), "{doc}");
    assert!(
        doc.contains("uid: u-1") && doc.contains("keep: 'yes'") || doc.contains("keep: yes"),
        "{doc}"
    );
    let back: crate::api::KafkaBackup = serde_yaml_ng::from_str(&doc).unwrap();
    assert_eq!(back.spec, kb.spec);
}

fn job_with(conds: &[(&str, &str)], failed: i32) -> Job {
    Job {
        status: Some(JobStatus {
            conditions: Some(
                conds
                    .iter()
                    .map(|(t, r)| JobCondition {
                        type_: t.to_string(),
                        status: "True".into(),
                        reason: Some(r.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            failed: Some(failed),
            active: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_jobs_conditions_say_whether_it_runs_completed_or_failed() {
    assert_eq!(job_state(None), JobState::Absent);
    assert_eq!(
        job_state(Some(&job_with(&[], 2))),
        JobState::Active { failed: 2 }
    );
    assert_eq!(
        job_state(Some(&job_with(&[("Complete", "")], 0))),
        JobState::Complete
    );
    assert_eq!(
        job_state(Some(&job_with(&[("Failed", "BackoffLimitExceeded")], 3))),
        JobState::Failed("BackoffLimitExceeded".into())
    );
}

fn pod(terminated: Option<(&str, i32)>, waiting: Option<&str>) -> Pod {
    let state = ContainerState {
        terminated: terminated.map(|(r, code)| ContainerStateTerminated {
            reason: Some(r.into()),
            exit_code: code,
            ..Default::default()
        }),
        waiting: waiting.map(|r| ContainerStateWaiting {
            reason: Some(r.into()),
            message: Some("because".into()),
        }),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "shard".into(),
                state: Some(state),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn pods_say_oom_killed_the_last_failure_and_a_hopeless_wait() {
    let say = pods_say(&[pod(Some(("OOMKilled", 137)), None)]);
    assert!(say.oom_killed);
    assert!(
        say.last_failure
            .unwrap()
            .starts_with("OOMKilled (exit code 137)")
    );
    assert_eq!(say.failed_pod.as_deref(), Some("p"));
    let say = pods_say(&[pod(Some(("Error", 1)), None)]);
    assert!(!say.oom_killed);
    let say = pods_say(&[pod(None, Some("CreateContainerConfigError"))]);
    let (reason, _) = say.waiting.unwrap();
    assert!(hopeless(&reason));
    assert!(
        pods_say(&[pod(None, Some("ContainerCreating"))])
            .waiting
            .is_none()
    );
    assert!(!hopeless("ImagePullBackOff"));
}

#[test]
fn several_shards_need_a_read_write_many_claim() {
    let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(claim_refusal("c", &m(&["ReadWriteMany"]), 4), None);
    assert_eq!(claim_refusal("c", &m(&["ReadWriteOnce"]), 1), None);
    assert_eq!(claim_refusal("c", &m(&["ReadWriteOncePod"]), 1), None);
    let e = claim_refusal("c", &m(&["ReadWriteOnce"]), 2).unwrap();
    assert!(
        e.starts_with("spec.execution.shards: 2") && e.contains("ReadWriteMany"),
        "{e}"
    );
    assert!(claim_refusal("c", &m(&["ReadWriteOncePod"]), 2).is_some());
    let e = claim_refusal("c", &m(&["ReadOnlyMany"]), 1).unwrap();
    assert!(e.starts_with("spec.storage.pvc.claimName"), "{e}");
}

#[test]
fn a_resource_without_secrets_gets_no_secrets_dir() {
    let mut r = resource();
    r.secrets.clear();
    let job = job_manifest(&r, &defaults(), "run-1", 0, 1);
    let pod = job.spec.unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap().join(" ");
    assert!(!args.contains("--secrets-dir"), "{args}");
    assert!(pod.volumes.unwrap().iter().all(|v| v.secret.is_none()));
}
