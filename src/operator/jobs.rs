//! Kubernetes Jobs for the shards of a sharded run (`spec.execution.mode: job`, issue 18): the
//! operator's [`ShardLauncher`]. The run is prepared and coordinated by the operator
//! (`kinds::backup::run_sharded`: it holds the repository lock, stages the plan, commits the
//! manifest); each shard is one Job in the resource's namespace that runs the operator's own
//! image as `run -f /etc/kbo/run/resources.yaml --secrets-dir /etc/kbo/secrets --plan RUN
//! --shard I/N`, the command `run` of the CLI runs for each of its shard processes.
//!
//! What a shard Pod gets, and nothing more: the resource (and the resources it refers to) as a
//! file, projected from an annotation of its own Pod (no ConfigMap, no copy of a Secret); the
//! Secrets the resource names, each mounted read-only as its own volume (`optional`: a missing
//! one fails as in process, naming the Secret and the field); no service-account token; a
//! non-root user, a read-only root filesystem, no capabilities, an emptyDir `/tmp`. The image,
//! pull policy, host network and extra environment come from the chart
//! ([`JobDefaults`], `KBO_JOB_DEFAULTS`); the resources, placement, ServiceAccount and
//! retries from `spec.execution`.
//!
//! Jobs are named from the resource and the run (`<name>-<hash of kind, namespace, name, run,
//! shards>-<i>`), so an operator that restarts finds the Jobs of the run it resumes and waits
//! for them instead of starting others. A Job that already failed, or completed without a
//! result in the repository, belongs to an earlier attempt of the run: it is deleted and
//! created again (with its `backoffLimit` anew). Each Job is owned by its resource (deleted
//! with it) and labelled with it, the run and the shard.
//!
//! I/O: the Kubernetes API (Jobs, Pods, Pod logs) only; the repository is the coordinator's.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    EnvVar, LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::api::ExecutionSpec;
use crate::exec::shard::ShardFailure;
use crate::exec::{Cancel, Progress};
use crate::kinds::backup::ShardLauncher;

/// The environment variable the chart sets to the JSON of [`JobDefaults`]. Unset: the operator
/// runs `mode: job` resources in its own process, with a warning.
pub const DEFAULTS_ENV: &str = "KBO_JOB_DEFAULTS";

/// Where a shard Pod finds its inputs.
const RUN_DIR: &str = "/etc/kbo/run";
const RESOURCES_FILE: &str = "resources.yaml";
const SECRETS_DIR: &str = "/etc/kbo/secrets";
/// Where `storageType: pvc` claims are mounted in a shard Pod (`<root>/<claimName>`), as in
/// the operator's Pod.
pub const PVC_ROOT: &str = "/var/lib/kafka-backup/pvc";
/// The Pod annotation that holds the resources file (projected into [`RUN_DIR`]).
const RESOURCES_ANNOTATION: &str = "kafka.oso.sh/run-resources";
/// The uid and gid shard Pods run as (the image's non-root user).
const RUN_AS: i64 = 65532;
/// How often a waiting launcher looks at its Job.
const POLL: Duration = Duration::from_secs(2);
/// How long a Pod may wait on an image pull (`ImagePullBackOff`, `ErrImagePull`) before the
/// shard fails.
const PULL_PATIENCE: Duration = Duration::from_secs(300);
/// Lines of a failed Pod's log kept in the failure's message.
const LOG_TAIL: i64 = 5;

/// The chart's settings of every shard Pod (`KBO_JOB_DEFAULTS`, JSON, camelCase).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobDefaults {
    /// The operator's image (`repository:tag`): the shards run the same binary.
    pub image: String,
    /// `imagePullPolicy` of the shard container (default: the cluster's).
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    /// Pull secrets of the image (names in the resource's namespace).
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount of shard Pods when `spec.execution.serviceAccountName` is not set; None:
    /// the namespace's `default`. Its token is never mounted.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Run in the node's network namespace (the chart's `hostNetwork`).
    #[serde(default)]
    pub host_network: bool,
    /// Environment of the shard container (the chart's `extraEnv`, and `KBO_LOG_FORMAT`).
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

impl JobDefaults {
    /// [`DEFAULTS_ENV`] parsed; None when unset or empty.
    ///
    /// Errors: invalid JSON or an empty `image`, naming the variable.
    pub fn from_env() -> Result<Option<JobDefaults>, String> {
        match std::env::var(DEFAULTS_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// `json` parsed (what [`JobDefaults::from_env`] reads).
    pub fn parse(json: &str) -> Result<JobDefaults, String> {
        let d: JobDefaults =
            serde_json::from_str(json).map_err(|e| format!("{DEFAULTS_ENV}: {e}"))?;
        if d.image.trim().is_empty() {
            return Err(format!(
                "{DEFAULTS_ENV}: image is empty; set the chart's image"
            ));
        }
        Ok(d)
    }
}

/// The resource whose run the shards execute, as a shard Pod needs it.
#[derive(Clone, Debug)]
pub struct RunResource {
    /// Kind, apiVersion, name, namespace and uid of the resource (the Jobs' owner).
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// YAML documents: the resource first, then the resources it refers to (`run -f`).
    pub documents: String,
    /// Secrets (in `namespace`) the documents name: each is mounted.
    pub secrets: Vec<String>,
    /// `storageType: pvc` claims the run reads or writes: each is mounted at
    /// `<PVC_ROOT>/<claim>`.
    pub claims: Vec<String>,
    /// The resource's `spec.execution`.
    pub execution: ExecutionSpec,
}

impl RunResource {
    /// `doc` (a resource of `kind`) as the first document of a run file: status, managed
    /// fields, resource version and `kubectl`'s last-applied copy left out (the shard needs
    /// the spec, the name, the namespace and the uid).
    pub fn document<K: serde::Serialize>(doc: &K) -> Result<String, String> {
        let mut v = serde_json::to_value(doc).map_err(|e| e.to_string())?;
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
            if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                for k in [
                    "managedFields",
                    "resourceVersion",
                    "generation",
                    "finalizers",
                ] {
                    m.remove(k);
                }
                if let Some(a) = m.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                    a.remove("kubectl.kubernetes.io/last-applied-configuration");
                }
            }
        }
        serde_yaml_ng::to_string(&v).map_err(|e| e.to_string())
    }
}

impl RunResource {
    /// The run of `obj` as a shard Pod needs it: `obj`'s document first, then `refs` (the
    /// documents, from [`RunResource::document`], of the resources it refers to, e.g. a
    /// KafkaRestore's KafkaBackup), the Secrets it names
    /// (`secrets`, in its namespace) and the claims of its `storageType: pvc` storages.
    ///
    /// Errors: a document that does not serialise.
    pub fn of<K>(
        obj: &K,
        refs: &[String],
        secrets: Vec<String>,
        storages: &[Option<&crate::api::StorageSpec>],
        execution: &ExecutionSpec,
    ) -> Result<RunResource, String>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        use kube::ResourceExt;
        let mut documents = Self::document(obj)?;
        for r in refs {
            documents.push_str("---\n");
            documents.push_str(r);
        }
        let mut claims: Vec<String> = (storages.iter().flatten())
            .filter(|st| st.storage_type == crate::api::StorageType::Pvc)
            .filter_map(|st| st.pvc.as_ref().map(|p| p.claim_name.clone()))
            .collect();
        claims.sort();
        claims.dedup();
        Ok(RunResource {
            kind: K::kind(&()).into_owned(),
            api_version: K::api_version(&()).into_owned(),
            name: obj.name_any(),
            namespace: obj.namespace().unwrap_or_default(),
            uid: obj.uid().unwrap_or_default(),
            documents,
            secrets,
            claims,
            execution: execution.clone(),
        })
    }
}

/// Launches each shard as a Kubernetes Job and waits for it.
pub struct JobLauncher {
    pub client: kube::Client,
    pub defaults: Arc<JobDefaults>,
    pub resource: RunResource,
    /// The run's cancellation: a launcher stops waiting (the Jobs are left to the next
    /// attempt, or to the garbage collector when the resource is deleted).
    pub cancel: Cancel,
    /// The run's live figures: each shard's phase, Job and message.
    pub progress: Arc<Progress>,
}

/// The name of shard `shard`'s Job of run `run_id` of `r` (a DNS label, at most 52
/// characters): the resource's name (cut to 40), a hash of kind, namespace, name, run and
/// shard count, and the shard.
pub fn job_name(r: &RunResource, run_id: &str, shard: u32, shards: u32) -> String {
    let h = Sha256::digest(format!(
        "{}/{}/{}/{run_id}/{shards}",
        r.kind, r.namespace, r.name
    ));
    let mut prefix: String = (r.name.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    format!("{prefix}-{}-{shard}", &hex::encode(h)[..8])
}

/// `s` as a label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// alphanumeric.
fn label_value(s: &str) -> String {
    let v: String = (s.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The labels of every Job and Pod of a run's shards.
fn labels(r: &RunResource, run_id: &str, shard: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        // not the operator's own name: selectors of the operator's Pods must not match these
        ("app.kubernetes.io/name".into(), "kafka-backup-shard".into()),
        (
            "app.kubernetes.io/part-of".into(),
            "kafka-backup-operator".into(),
        ),
        ("app.kubernetes.io/component".into(), "shard".into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "kafka-backup-operator".into(),
        ),
        ("kafka.oso.sh/kind".into(), r.kind.to_ascii_lowercase()),
        ("kafka.oso.sh/name".into(), label_value(&r.name)),
        ("kafka.oso.sh/run".into(), label_value(run_id)),
        ("kafka.oso.sh/shard".into(), shard.to_string()),
    ])
}

/// The Job of shard `shard` of `shards` of run `run_id` of `r`, with the chart's `d`.
pub fn job_manifest(
    r: &RunResource,
    d: &JobDefaults,
    run_id: &str,
    shard: u32,
    shards: u32,
) -> Job {
    let labels = labels(r, run_id, shard);
    let e = &r.execution;
    let mut args: Vec<String> = ["run", "-f"].map(String::from).to_vec();
    args.push(format!("{RUN_DIR}/{RESOURCES_FILE}"));
    args.extend(["--name".into(), r.name.clone()]);
    if !r.secrets.is_empty() {
        args.extend(["--secrets-dir".into(), SECRETS_DIR.into()]);
    }
    args.extend(["--pvc-root".into(), PVC_ROOT.into(), "--no-progress".into()]);
    args.extend(["--plan".into(), run_id.into()]);
    args.extend(["--shard".into(), format!("{shard}/{shards}")]);
    let (volumes, mounts) = volumes(r);
    let container = Container {
        name: "shard".into(),
        image: Some(d.image.clone()),
        image_pull_policy: d.image_pull_policy.clone(),
        args: Some(args),
        env: Some(d.env.clone()).filter(|v| !v.is_empty()),
        resources: e.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: (e.service_account().map(str::to_string))
            .or_else(|| d.service_account_name.clone().filter(|s| !s.is_empty())),
        automount_service_account_token: Some(false),
        host_network: d.host_network.then_some(true),
        dns_policy: d.host_network.then(|| "ClusterFirstWithHostNet".into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        node_selector: Some(e.node_selector.clone()).filter(|m| !m.is_empty()),
        tolerations: Some(e.tolerations.clone()).filter(|t| !t.is_empty()),
        priority_class_name: e.priority_class().map(str::to_string),
        image_pull_secrets: Some(
            (d.image_pull_secrets.iter())
                .map(|n| LocalObjectReference { name: n.clone() })
                .collect(),
        )
        .filter(|v: &Vec<_>| !v.is_empty()),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(r, run_id, shard, shards)),
            namespace: Some(r.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                controller: Some(true),
                // (true would need update on the owner's finalizers where the
                // OwnerReferencesPermissionEnforcement admission plugin runs)
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(e.backoff_limit),
            ttl_seconds_after_finished: e.ttl_seconds_after_finished,
            completions: Some(1),
            parallelism: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        RESOURCES_ANNOTATION.into(),
                        r.documents.clone(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The volumes of a shard Pod and its container's mounts: the run file (from the Pod's
/// annotation), `/tmp`, each Secret, each claim.
fn volumes(r: &RunResource) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mount = |name: &str, path: String| VolumeMount {
        name: name.into(),
        mount_path: path,
        read_only: Some(true),
        ..Default::default()
    };
    let mut vols = vec![
        Volume {
            name: "run".into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: RESOURCES_FILE.into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{RESOURCES_ANNOTATION}']"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("run", RUN_DIR.into()),
        VolumeMount {
            read_only: None,
            ..mount("tmp", "/tmp".into())
        },
    ];
    for (i, s) in r.secrets.iter().enumerate() {
        let name = format!("secret-{i}");
        vols.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                // group-readable: the files are the fsGroup's, the user is not root
                default_mode: Some(0o440),
                optional: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(&name, format!("{SECRETS_DIR}/{s}")));
    }
    for (i, c) in r.claims.iter().enumerate() {
        let name = format!("pvc-{i}");
        vols.push(Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: c.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            read_only: None,
            ..mount(&name, format!("{PVC_ROOT}/{c}"))
        });
    }
    (vols, mounts)
}

/// Why `shards` shard Pods cannot share claim `claim` with `access_modes`, if so: several
/// shards need `ReadWriteMany` (Pods on other nodes cannot mount a `ReadWriteOnce` claim, and
/// a `ReadWriteOncePod` claim takes one Pod). One shard takes any writable claim.
pub fn claim_refusal(claim: &str, access_modes: &[String], shards: u32) -> Option<String> {
    let rwx = access_modes.iter().any(|m| m == "ReadWriteMany");
    let writable = rwx || access_modes.iter().any(|m| m.starts_with("ReadWriteOnce"));
    if !writable {
        return Some(format!(
            "spec.storage.pvc.claimName: claim {claim:?} is not writable (access modes {access_modes:?}); use a ReadWriteOnce or ReadWriteMany claim"
        ));
    }
    if shards > 1 && !rwx {
        return Some(format!(
            "spec.execution.shards: {shards} shards write to claim {claim:?} at once, and its access modes {access_modes:?} let Pods on one node only (or one Pod) mount it; use a ReadWriteMany claim (spec.storage.pvc.claimName) or set spec.execution.shards: 1"
        ));
    }
    None
}

/// Checks the `storageType: pvc` claims of `r` for its `shards` ([`claim_refusal`]) before
/// any Job is created.
///
/// Errors: the refusal; a claim that does not exist in the resource's namespace; the API's
/// error.
pub async fn check_claims(
    client: &kube::Client,
    r: &RunResource,
    shards: u32,
) -> Result<(), String> {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &r.namespace);
    for c in &r.claims {
        let pvc = api
            .get_opt(c)
            .await
            .map_err(|e| format!("claim {c:?}: {e}"))?;
        let Some(pvc) = pvc else {
            return Err(format!(
                "spec.storage.pvc.claimName: claim {c:?} does not exist in namespace {}; create it or name another",
                r.namespace
            ));
        };
        let spec_modes = pvc.spec.as_ref().and_then(|s| s.access_modes.clone());
        // the bound volume's modes when bound, else what the claim asks for
        let modes = (pvc.status.as_ref().and_then(|s| s.access_modes.clone()))
            .or(spec_modes)
            .unwrap_or_default();
        if let Some(why) = claim_refusal(c, &modes, shards) {
            return Err(why);
        }
    }
    Ok(())
}

/// What a Job says of itself.
#[derive(Debug, PartialEq)]
enum JobState {
    /// Not created, or gone.
    Absent,
    /// Running (or its Pod waiting); `failed` Pods so far.
    Active {
        failed: i32,
    },
    Complete,
    /// Failed for good (`backoffLimit` reached, or a deadline): the condition's reason and
    /// message.
    Failed(String),
}

fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else {
        return JobState::Absent;
    };
    let status = job.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return JobState::Complete,
            "Failed" => {
                let why = [c.reason.as_deref(), c.message.as_deref()];
                let why: Vec<&str> = why.into_iter().flatten().collect();
                return JobState::Failed(why.join(": "));
            }
            _ => {}
        }
    }
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return JobState::Complete;
    }
    JobState::Active {
        failed: status.and_then(|s| s.failed).unwrap_or(0),
    }
}

/// What the Pods of a Job say: whether one was OOMKilled, the last failure's reason, and a
/// waiting reason that will not pass by itself.
#[derive(Debug, Default, PartialEq)]
struct PodsSay {
    oom_killed: bool,
    /// The newest terminated container's reason, exit code and message.
    last_failure: Option<String>,
    /// A waiting reason of a Pod that has not started (`ImagePullBackOff`, ...), with its
    /// message.
    waiting: Option<(String, String)>,
    /// A Pod the scheduler cannot place, with why.
    unschedulable: Option<String>,
    /// The Pod that failed last (for its log).
    failed_pod: Option<String>,
}

fn pods_say(pods: &[Pod]) -> PodsSay {
    let mut say = PodsSay::default();
    let mut newest = None;
    for p in pods {
        let Some(st) = &p.status else { continue };
        for c in st.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                say.unschedulable = c.message.clone().or(c.reason.clone());
            }
        }
        for cs in st.container_statuses.iter().flatten() {
            let states = [cs.state.as_ref(), cs.last_state.as_ref()];
            for t in states
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
            {
                if t.reason.as_deref() == Some("OOMKilled") {
                    say.oom_killed = true;
                }
                if t.exit_code != 0 {
                    let at = t.finished_at.as_ref().map(|t| t.0);
                    if newest.is_none_or(|n| at > n) {
                        newest = Some(at);
                        let reason = t.reason.as_deref().unwrap_or("Error");
                        let msg = (t.message.as_deref().map(str::trim)).unwrap_or_default();
                        say.last_failure =
                            Some(format!("{reason} (exit code {}) {msg}", t.exit_code));
                        say.failed_pod = p.metadata.name.clone();
                    }
                }
            }
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.clone().unwrap_or_default();
                if !matches!(
                    reason.as_str(),
                    "ContainerCreating" | "PodInitializing" | ""
                ) {
                    say.waiting = Some((reason, w.message.clone().unwrap_or_default()));
                }
            }
        }
    }
    say
}

/// Waiting reasons a shard's Pod does not recover from by waiting.
fn hopeless(reason: &str) -> bool {
    matches!(
        reason,
        "InvalidImageName" | "CreateContainerConfigError" | "ErrImageNeverPull"
    )
}

impl JobLauncher {
    /// The launcher of `resource`'s shards for the run of `exec` (its cancellation and live
    /// figures), with the chart's `defaults`.
    pub fn new(
        ctx: &super::Context,
        defaults: &Arc<JobDefaults>,
        resource: RunResource,
        exec: &crate::exec::ExecContext,
    ) -> JobLauncher {
        JobLauncher {
            client: ctx.client.clone(),
            defaults: defaults.clone(),
            resource,
            cancel: exec.cancel.clone(),
            progress: exec.progress.clone(),
        }
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.resource.namespace)
    }

    fn set(&self, shard: u32, phase: &'static str, job: &str, message: Option<String>) {
        self.progress.update_shard(shard, |s| {
            s.phase = phase;
            s.workload = Some(job.to_string());
            s.message = message;
        });
    }

    /// The Job of the shard, created unless a running one of this run exists: a failed one,
    /// or one that completed without a result, is an earlier attempt's and is replaced.
    async fn ensure(&self, job: &Job, name: &str) -> Result<(), String> {
        let api = self.jobs();
        let existing = api.get_opt(name).await.map_err(|e| e.to_string())?;
        match job_state(existing.as_ref()) {
            JobState::Active { .. } => {
                tracing::info!(
                    job = name,
                    "shard Job of this run found running: waiting for it"
                );
                return Ok(());
            }
            JobState::Absent => {}
            state => {
                tracing::info!(
                    job = name,
                    ?state,
                    "shard Job of an earlier attempt: replacing it"
                );
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                api.delete(name, &dp).await.map_err(|e| e.to_string())?;
                for _ in 0..30 {
                    if api
                        .get_opt(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        match api.create(&PostParams::default(), job).await {
            Ok(_) => Ok(()),
            // another operator replica (or a retry) created it between the two calls
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(format!("could not create Job {name}: {e}")),
        }
    }

    /// The Pods of Job `job` (by its uid: not an earlier Job of the same name).
    async fn pods(&self, job: &Job) -> Vec<Pod> {
        let Some(uid) = job.metadata.uid.as_deref() else {
            return vec![];
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.resource.namespace);
        let lp = ListParams::default().labels(&format!("controller-uid={uid}"));
        api.list(&lp).await.map(|l| l.items).unwrap_or_default()
    }

    /// The last lines of Pod `pod`'s log, joined by ` | `; empty when unreadable.
    async fn log_tail(&self, pod: &str) -> String {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.resource.namespace);
        let lp = LogParams {
            tail_lines: Some(LOG_TAIL),
            ..Default::default()
        };
        let text = api.logs(pod, &lp).await.unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines.join(" | ")
    }

    /// Why Job `job` failed, from its condition and its Pods.
    async fn failure(&self, job: &Job, condition: String) -> ShardFailure {
        let say = pods_say(&self.pods(job).await);
        let mut message = condition;
        if let Some(f) = &say.last_failure {
            message = format!("{message}; last Pod: {f}");
        }
        if let Some(p) = &say.failed_pod {
            let tail = self.log_tail(p).await;
            if !tail.is_empty() && !message.contains(&tail) {
                message = format!("{message}; log: {tail}");
            }
        }
        ShardFailure {
            message: crate::redact::scrub(&message, &[]),
            oom_killed: say.oom_killed,
        }
    }

    /// Waits for Job `name` to end: Ok when it completed; its failure otherwise.
    async fn wait(&self, shard: u32, name: &str) -> Result<(), ShardFailure> {
        let api = self.jobs();
        let mut pulling_since: Option<std::time::Instant> = None;
        let mut missing = 0;
        loop {
            let read = api.get_opt(name).await;
            if let Err(e) = &read {
                tracing::warn!(job = name, error = %e, "shard Job not read; trying again");
            }
            let job = read.as_ref().ok().cloned().flatten();
            match job_state(job.as_ref()) {
                JobState::Complete => {
                    self.set(shard, "Succeeded", name, None);
                    return Ok(());
                }
                JobState::Failed(why) => {
                    let f = self
                        .failure(job.as_ref().expect("a failed Job exists"), why)
                        .await;
                    self.set(shard, "Failed", name, Some(f.message.clone()));
                    return Err(f);
                }
                // an API error is not a missing Job
                JobState::Absent if read.is_ok() => {
                    missing += 1;
                    if missing >= 5 {
                        let message = format!("Job {name} was deleted before it completed");
                        self.set(shard, "Failed", name, Some(message.clone()));
                        return Err(ShardFailure {
                            message,
                            oom_killed: false,
                        });
                    }
                }
                JobState::Absent => {}
                JobState::Active { failed } => {
                    missing = 0;
                    let job = job.as_ref().expect("an active Job exists");
                    let say = pods_say(&self.pods(job).await);
                    if let Some((reason, msg)) = &say.waiting {
                        let pull = reason.contains("ImagePull") || reason == "ErrImagePull";
                        let since = *pulling_since.get_or_insert_with(std::time::Instant::now);
                        if hopeless(reason) || (pull && since.elapsed() > PULL_PATIENCE) {
                            let message = format!("Pod cannot start: {reason}: {msg}");
                            self.set(shard, "Failed", name, Some(message.clone()));
                            return Err(ShardFailure {
                                message,
                                oom_killed: false,
                            });
                        }
                    } else {
                        pulling_since = None;
                    }
                    let running = job.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0
                        && say.waiting.is_none()
                        && say.unschedulable.is_none();
                    let mut notes = vec![];
                    if failed > 0 {
                        let last = say.last_failure.clone().unwrap_or_default();
                        let oom = if say.oom_killed { " (OOMKilled)" } else { "" };
                        notes.push(format!("{failed} failed attempt(s){oom}: {last}"));
                    }
                    notes.extend(say.waiting.map(|(r, m)| format!("waiting: {r}: {m}")));
                    notes.extend(say.unschedulable.map(|m| format!("unschedulable: {m}")));
                    let phase = if running { "Running" } else { "Pending" };
                    let note = Some(notes.join("; ")).filter(|n| !n.is_empty());
                    self.set(shard, phase, name, note);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.cancel.cancelled() => {
                    return Err(ShardFailure {
                        message: format!("stopped waiting for Job {name}: the run was cancelled"),
                        oom_killed: false,
                    });
                }
            }
        }
    }
}

impl ShardLauncher for JobLauncher {
    async fn run_shard(&self, run_id: &str, shard: u32, shards: u32) -> Result<(), ShardFailure> {
        let job = job_manifest(&self.resource, &self.defaults, run_id, shard, shards);
        let name = job.metadata.name.clone().unwrap_or_default();
        self.set(shard, "Pending", &name, None);
        if let Err(message) = self.ensure(&job, &name).await {
            self.set(shard, "Failed", &name, Some(message.clone()));
            return Err(ShardFailure {
                message,
                oom_killed: false,
            });
        }
        self.wait(shard, &name).await
    }

    fn run_context(&self) -> Option<(Arc<crate::exec::Progress>, crate::exec::Cancel)> {
        Some((self.progress.clone(), self.cancel.clone()))
    }
}

#[cfg(test)]
mod tests;
