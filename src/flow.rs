//! The flow glue shared by the CLI and the operator: dereference -> observe -> compile for
//! each kind, returning the compiled plan together with the live client and storage handles
//! the executor needs. `plan` stops after compile; `run` and the operator go on to execute.
use std::path::Path;

use opendal::Operator;

use crate::api::{ApiError, KafkaBackup, KafkaRestore, Secrets};
use crate::exec::{ExecError, RestoreStart};
use crate::kafka::KafkaClient;
use crate::observe::{self, ObserveError};
use crate::plan::{self, BackupFacts, BackupPlan, CompileError, RestoreFacts, RestorePlan};
use crate::storage::{StorageError, StorageTarget};

pub mod encryption;
pub mod owner;
pub mod scratch;

/// Errors of the flow, one variant per layer.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("the plan cannot be compiled:\n{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl FlowError {
    /// True when running again later may succeed: a broker or the storage was unreachable or
    /// answered with a retriable error. Invalid specs and refused plans are never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            FlowError::Observe(ObserveError::Kafka(e)) => e.is_retriable(),
            FlowError::Observe(ObserveError::Storage(e)) => e.is_transient(),
            FlowError::Exec(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The failure category (see [`ExecError::category`]); `input` for a spec or setting that
    /// cannot work, `plan-refused` for a plan that cannot be compiled.
    pub fn category(&self) -> &'static str {
        match self {
            FlowError::Api(_) => "input",
            FlowError::Observe(ObserveError::Api(_))
            | FlowError::Observe(ObserveError::Config { .. }) => "input",
            FlowError::Observe(ObserveError::Kafka(e)) => e.category(),
            FlowError::Observe(ObserveError::Storage(e)) => e.category(),
            FlowError::Compile(_) => "plan-refused",
            FlowError::Exec(e) => e.category(),
        }
    }

    /// True when the backup repository holds no complete run of the restore's backup yet.
    pub fn no_complete_run(&self) -> bool {
        matches!(
            self,
            FlowError::Observe(ObserveError::Storage(StorageError::NoCompleteRun { .. }))
        )
    }
}

impl From<crate::kafka::KafkaError> for FlowError {
    fn from(e: crate::kafka::KafkaError) -> Self {
        FlowError::Observe(e.into())
    }
}
impl From<crate::storage::StorageError> for FlowError {
    fn from(e: crate::storage::StorageError) -> Self {
        FlowError::Observe(e.into())
    }
}

/// How storage is opened: `ReadOnly` never creates anything (plan, dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

fn open(target: &StorageTarget, access: Access) -> Result<Operator, FlowError> {
    Ok(match access {
        Access::ReadOnly => target.open_read_only()?,
        Access::ReadWrite => target.operator()?,
    })
}

/// A compiled backup with its handles.
pub struct PreparedBackup {
    pub plan: BackupPlan,
    pub client: KafkaClient,
    pub op: Operator,
    pub storage: StorageTarget,
    /// The repository's key-encryption key (`storage.encryption`), for the run's context.
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

/// Connects to a restore's target cluster with its `circuitBreaker`.
async fn connect_restore_target(
    spec: &crate::api::KafkaRestoreSpec,
    secrets: &Secrets,
) -> Result<KafkaClient, FlowError> {
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    Ok(KafkaClient::connect(cfg).await?)
}

/// The repository a restore reads (`backupRef.storage`, else its KafkaBackup's storage),
/// opened read-only.
fn restore_repository(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
) -> Result<
    (
        StorageTarget,
        Operator,
        Option<crate::format::keyring::Keyring>,
    ),
    FlowError,
> {
    let spec = &kr.spec;
    let storage_spec = match (&spec.backup_ref.storage, backup) {
        (Some(s), _) => s.clone(),
        (None, Some(kb)) => kb.spec.storage.clone(),
        (None, None) => {
            return Err(ObserveError::Config {
                field: "spec.backupRef.name".into(),
                message: format!(
                    "KafkaBackup {:?} is not among the given files and backupRef.storage is not set: add the KafkaBackup's YAML with -f, or give backupRef.storage",
                    spec.backup_ref.name
                ),
            }
            .into());
        }
    };
    let field = if spec.backup_ref.storage.is_some() {
        "spec.backupRef.storage"
    } else {
        "KafkaBackup spec.storage"
    };
    let target = observe::storage_target(&storage_spec, secrets, pvc_root, field)?;
    let keyring = observe::keyring(&storage_spec, secrets, field)?;
    let op = open(&target, Access::ReadOnly)?;
    Ok((target, op, keyring))
}

/// Where restore `kr` keeps its journal, lock, offset map and group snapshots:
/// `spec.stateStorage`, else the repository (`repo`, already resolved), opened for `access`.
fn restore_state(
    kr: &KafkaRestore,
    repo: &StorageTarget,
    secrets: &Secrets,
    pvc_root: &Path,
    access: Access,
) -> Result<Operator, FlowError> {
    match &kr.spec.state_storage {
        Some(st) => {
            let target = observe::storage_target(st, secrets, pvc_root, "spec.stateStorage")?;
            open(&target, access)
        }
        None => open(repo, access),
    }
}

/// The complete journal of restore `kr` (its plan names the offset map and carries the
/// backup's group snapshot). Errors name `field` and the fix.
async fn completed_restore(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    field: &str,
) -> Result<(crate::exec::RestoreJournal, Operator), FlowError> {
    let name = kr.metadata.name.clone().unwrap_or_default();
    let (repo, _, _) = restore_repository(kr, backup, secrets, pvc_root)?;
    let op = restore_state(kr, &repo, secrets, pvc_root, Access::ReadOnly)?;
    let cfg = |message: String| -> FlowError {
        ObserveError::Config {
            field: field.into(),
            message,
        }
        .into()
    };
    match crate::exec::load_journal(&op, &kr.spec.backup_ref.name, &name).await? {
        None => Err(cfg(format!(
            "KafkaRestore {name:?} has no journal in its state storage (spec.stateStorage, else its backup's storage): it has not run"
        ))),
        Some(j) if !j.complete => Err(cfg(format!(
            "KafkaRestore {name:?} has not completed: run it to the end first"
        ))),
        Some(j) => Ok((j, op)),
    }
}

/// A compiled KafkaOffsetReset and the client to run it with.
pub struct PreparedOffsetReset {
    pub plan: plan::OffsetResetPlan,
    pub client: KafkaClient,
}

/// Observes a KafkaOffsetReset's groups and partitions and compiles it. `restore`: the
/// KafkaRestore (and its KafkaBackup) `offsetMappingRef.restoreName` names, for from-mapping.
pub async fn prepare_offset_reset(
    kor: &crate::api::KafkaOffsetReset,
    restore: Option<(&KafkaRestore, Option<&KafkaBackup>)>,
    secrets: &Secrets,
    pvc_root: &Path,
) -> Result<PreparedOffsetReset, FlowError> {
    use crate::api::offset_reset::ResetStrategy;
    let spec = &kor.spec;
    let name = kor.metadata.name.clone().unwrap_or_default();
    let client =
        KafkaClient::connect(observe::client_config(&spec.kafka_cluster, secrets)?).await?;
    let committed = observe::committed_groups(&client, &spec.consumer_groups).await?;
    let (mut mapping, mut snapshot) = (None, None);
    if spec.reset_strategy == ResetStrategy::FromMapping
        && let Some(m) = &spec.offset_mapping_ref
    {
        if let Some(rn) = &m.restore_name {
            let Some((kr, kb)) = restore else {
                return Err(ObserveError::Config {
                    field: "spec.offsetMappingRef.restoreName".into(),
                    message: format!(
                        "KafkaRestore {rn:?} is not among the given files: add it and its KafkaBackup with -f, or give offsetMappingRef.path"
                    ),
                }
                .into());
            };
            let (j, op) = completed_restore(
                kr,
                kb,
                secrets,
                pvc_root,
                "spec.offsetMappingRef.restoreName",
            )
            .await?;
            let path = &j.plan.offset_map_path;
            let bytes = crate::storage::read_opt(&op, path).await?.ok_or_else(|| {
                FlowError::from(ObserveError::Config {
                    field: "spec.offsetMappingRef.restoreName".into(),
                    message: format!("the offset map {path} of KafkaRestore {rn:?} is missing"),
                })
            })?;
            mapping =
                Some(crate::format::manifest::from_json(&bytes, path).map_err(StorageError::from)?);
            snapshot = (!j.plan.source_groups.is_empty()).then(|| j.plan.source_groups.clone());
        } else if let Some(p) = &m.path {
            let file = match &m.pvc_name {
                Some(pvc) => pvc_root.join(pvc).join(p),
                None => std::path::PathBuf::from(p),
            };
            let bytes = std::fs::read(&file).map_err(|e| {
                FlowError::from(ObserveError::Config {
                    field: "spec.offsetMappingRef.path".into(),
                    message: format!("cannot read the offset map {}: {e}", file.display()),
                })
            })?;
            mapping = Some(
                crate::format::manifest::from_json(&bytes, &file.display().to_string())
                    .map_err(StorageError::from)?,
            );
        }
    }
    let meta = client.metadata();
    let available: Vec<String> = meta.topics.keys().cloned().collect();
    let scope = plan::reset_scope_topics(spec, &available, &committed, mapping.as_ref());
    let facts = observe::observe_cluster(&client, &scope, false).await?;
    let mut by_timestamp = std::collections::BTreeMap::new();
    if spec.reset_strategy == ResetStrategy::ToTimestamp {
        let parts: Vec<(String, i32)> = facts.offsets.keys().cloned().collect();
        if !parts.is_empty() {
            by_timestamp = client
                .list_offsets(
                    &parts,
                    crate::kafka::ops::OffsetSpec::Timestamp(spec.reset_timestamp.unwrap_or(0)),
                )
                .await?
                .into_iter()
                .collect();
        }
    }
    let facts = plan::OffsetResetFacts {
        partitions: client
            .metadata()
            .topics
            .values()
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect(),
        offsets: facts.offsets,
        by_timestamp,
        committed,
        mapping,
        snapshot,
    };
    let plan = plan::compile_offset_reset(&name, spec, &facts)?;
    Ok(PreparedOffsetReset { plan, client })
}

/// A KafkaOffsetRollback: the snapshot it puts back, as group plans, and the client.
pub struct PreparedOffsetRollback {
    pub snapshot_id: String,
    pub snapshot_path: String,
    pub plans: Vec<plan::GroupOffsetPlan>,
    pub client: KafkaClient,
}

/// Finds the snapshot a KafkaOffsetRollback names (`snapshotRef.path`, `.name` in
/// `snapshot_dir`, `.offsetResetRef`: the newest snapshot of that reset in `snapshot_dir`,
/// `.restoreRef`: the newest snapshot of that restore in its backup's storage), and turns it
/// into group plans, with the current offsets filled in.
pub async fn prepare_offset_rollback(
    korb: &crate::api::KafkaOffsetRollback,
    restore: Option<(&KafkaRestore, Option<&KafkaBackup>)>,
    secrets: &Secrets,
    pvc_root: &Path,
    snapshot_dir: &Path,
) -> Result<PreparedOffsetRollback, FlowError> {
    let spec = &korb.spec;
    let r = &spec.snapshot_ref;
    let cfg = |field: &str, message: String| -> FlowError {
        ObserveError::Config {
            field: field.into(),
            message,
        }
        .into()
    };
    let newest_in_dir = |prefix: &str| -> Option<std::path::PathBuf> {
        let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(snapshot_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix(prefix)
                        .and_then(|rest| rest.strip_prefix('-'))
                        .and_then(|rest| rest.strip_suffix(".json"))
                        .is_some_and(|ms| ms.chars().all(|c| c.is_ascii_digit()))
                })
            })
            .collect();
        v.sort();
        v.pop()
    };
    // A local file (path, name, offsetResetRef) or an object of the restore's repository.
    let file = if let Some(p) = &r.path {
        Some(match &r.pvc_name {
            Some(pvc) => pvc_root.join(pvc).join(p),
            None => std::path::PathBuf::from(p),
        })
    } else if let Some(n) = &r.name {
        let file = snapshot_dir.join(format!("{n}.json"));
        if !file.exists() {
            return Err(cfg(
                "spec.snapshotRef.name",
                format!(
                    "no snapshot {n:?} in {} (--snapshot-dir)",
                    snapshot_dir.display()
                ),
            ));
        }
        Some(file)
    } else if let Some(k) = &r.offset_reset_ref {
        let Some(file) = newest_in_dir(k) else {
            return Err(cfg(
                "spec.snapshotRef.offsetResetRef",
                format!(
                    "KafkaOffsetReset {k:?} left no snapshot in {} (--snapshot-dir): it ran with snapshotBeforeReset: false, or elsewhere",
                    snapshot_dir.display()
                ),
            ));
        };
        Some(file)
    } else {
        None
    };
    let (snap, path) = if let Some(file) = file {
        (
            crate::exec::groups::read_snapshot(&file)?,
            file.display().to_string(),
        )
    } else if let Some(rn) = &r.restore_ref {
        let Some((kr, kb)) = restore else {
            return Err(cfg(
                "spec.snapshotRef.restoreRef",
                format!(
                    "KafkaRestore {rn:?} is not among the given files: add it and its KafkaBackup with -f"
                ),
            ));
        };
        let (_, op, _) = restore_repository(kr, kb, secrets, pvc_root)?;
        let dir = format!(
            "{}/restores/{rn}/offset-snapshots/",
            kr.spec.backup_ref.name
        );
        let mut names: Vec<String> = op
            .list(&dir)
            .await
            .map_err(|e| crate::storage::backend("list", &dir, e))?
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| p.ends_with(".json"))
            .collect();
        names.sort();
        let Some(path) = names.pop() else {
            return Err(cfg(
                "spec.snapshotRef.restoreRef",
                format!(
                    "KafkaRestore {rn:?} took no offset snapshot (no consumer-group step, or rollback.snapshotBeforeRestore: false)"
                ),
            ));
        };
        let bytes = crate::storage::read_opt(&op, &path)
            .await?
            .unwrap_or_default();
        (
            crate::format::manifest::from_json(&bytes, &path).map_err(StorageError::from)?,
            path,
        )
    } else {
        return Err(cfg("spec.snapshotRef", "names no snapshot".into()));
    };
    rollback_to(korb, snap, path, secrets).await
}

/// A KafkaOffsetRollback to `snap` (found at `path`): its group plans with the current
/// offsets filled in. Errors: a `consumerGroups` entry not in the snapshot.
pub async fn rollback_to(
    korb: &crate::api::KafkaOffsetRollback,
    snap: crate::format::manifest::OffsetSnapshot,
    path: String,
    secrets: &Secrets,
) -> Result<PreparedOffsetRollback, FlowError> {
    let spec = &korb.spec;
    let cfg = |field: &str, message: String| -> FlowError {
        ObserveError::Config {
            field: field.into(),
            message,
        }
        .into()
    };
    let client =
        KafkaClient::connect(observe::client_config(&spec.kafka_cluster, secrets)?).await?;
    let mut plans = crate::exec::groups::rollback_plans(&snap, &spec.consumer_groups);
    for g in &spec.consumer_groups {
        if !plans.iter().any(|p| &p.group == g) {
            return Err(cfg(
                "spec.consumerGroups",
                format!("group {g:?} is not in snapshot {}", snap.id),
            ));
        }
    }
    let names: Vec<String> = plans.iter().map(|p| p.group.clone()).collect();
    let now = observe::committed_groups(&client, &names).await?;
    for p in &mut plans {
        for c in &mut p.changes {
            c.current = now
                .get(&p.group)
                .and_then(|m| m.get(&(c.topic.clone(), c.partition)))
                .map(|x| x.0);
        }
    }
    Ok(PreparedOffsetRollback {
        snapshot_id: snap.id,
        snapshot_path: path,
        plans,
        client,
    })
}

/// The repository and run a KafkaBackupValidation checks: `backupRef.storage`, else its
/// KafkaBackup's storage (among the files); `backupRef.backupId`, else the newest complete
/// run. Returns the repository (read-write: the report is stored there), the run's manifest
/// (authenticated and opened when the repository is encrypted), the checksum its document
/// carries, and the data keys of its segments' runs.
pub async fn prepare_validation(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
) -> Result<
    (
        Operator,
        crate::format::manifest::RunManifest,
        Option<String>,
        crate::format::seal::RunKeys,
    ),
    FlowError,
> {
    let bref = &kbv.spec.backup_ref;
    let storage_spec = match (&bref.storage, backup) {
        (Some(s), _) => s.clone(),
        (None, Some(kb)) => kb.spec.storage.clone(),
        (None, None) => {
            return Err(ObserveError::Config {
                field: "spec.backupRef.name".into(),
                message: format!(
                    "KafkaBackup {:?} is not among the given files and backupRef.storage is not set: add the KafkaBackup's YAML with -f, or give backupRef.storage",
                    bref.name
                ),
            }
            .into());
        }
    };
    let target = observe::storage_target(&storage_spec, secrets, pvc_root, "spec.backupRef")?;
    let keyring = observe::keyring(&storage_spec, secrets, "spec.backupRef.storage")?;
    let op = open(&target, Access::ReadOnly)?;
    owner::check_reader_repository(&op, &bref.name, backup, bref.storage.is_some()).await?;
    let mut manifest = match &bref.backup_id {
        Some(id) => observe::load_manifest(&op, &bref.name, id).await?,
        None => observe::latest_complete_run(&op, &bref.name).await?,
    };
    let kr = keyring.as_ref();
    encryption::open_run(&op, kr, &mut manifest, "spec.backupRef.storage").await?;
    let keys = encryption::run_keys(&op, kr, &manifest).await?;
    let path = crate::format::layout::manifest(&bref.name, &manifest.run_id);
    let sha = crate::storage::read_opt(&op, &path)
        .await?
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["checksum"].as_str().map(str::to_string));
    Ok((open(&target, Access::ReadWrite)?, manifest, sha, keys))
}

/// What a KafkaBackupValidation run produced.
pub struct ValidationDone {
    pub report: crate::exec::validate::ValidationReport,
    /// Storage key of the JSON report (in the evidence storage).
    pub path: String,
    /// Storage key of the detached signature, when signed.
    pub signature: Option<String>,
    /// Storage key of the PDF, with `evidence.formats: [.., pdf]`.
    pub pdf: Option<String>,
    /// Report ids deleted by `evidence.retentionDays`.
    pub pruned: Vec<String>,
    /// One result per notification sent (none when the validation passed and
    /// `notifications.onSuccess` is false).
    pub notifications: Vec<crate::exec::notify::NotifyResult>,
}

/// One validation, the same from `run -f` and from the operator: resolves the Secrets
/// (notifications, signing key) first, then the checks on the backup alone, the restore checks
/// (`kafkaCluster`), the custom webhooks, stores the report (signed, with its PDF) in the
/// evidence storage, prunes old reports, and notifies. A failed validation is `Ok` with
/// `report.result == Fail`; errors are what kept it from running (a missing Secret, storage
/// or cluster unreachable).
pub async fn run_validation(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
) -> Result<ValidationDone, FlowError> {
    use crate::exec::{evidence, notify, validate};
    let spec = &kbv.spec;
    let name = kbv.metadata.name.clone().unwrap_or_default();
    let config = |field: &str, message: String| ObserveError::Config {
        field: field.into(),
        message,
    };
    // Secrets first: a missing one stops the run before any check or write.
    let targets = notify_targets(spec, secrets)?;
    let key = match spec.evidence.as_ref().and_then(|e| e.signing.as_ref()) {
        Some(sg) if sg.enabled => {
            let ks = sg.key_secret.as_ref().ok_or_else(|| {
                config(
                    "spec.evidence.signing.keySecret",
                    "is required when signing is enabled: name a Secret holding the ECDSA P-256 key pair".into(),
                )
            })?;
            let pem = secrets
                .get(&ks.name, &ks.private_key_key)
                .map_err(|e| config("spec.evidence.signing.keySecret", e.to_string()))?;
            Some(String::from_utf8_lossy(&pem).into_owned())
        }
        _ => None,
    };
    let (op, manifest, sha, keys) = prepare_validation(kbv, backup, secrets, pvc_root).await?;
    let ev_op = evidence_storage(kbv, secrets, pvc_root, &op)?;
    let mut report =
        validate::validate_run(&op, &keys, &name, &manifest, sha, &spec.checks, now_ms).await?;
    if spec.checks.object_lock.enabled {
        // the storage prepare_validation read (it refused a missing one already)
        let storage = (spec.backup_ref.storage.as_ref()).or(backup.map(|kb| &kb.spec.storage));
        let target = storage
            .map(|s| observe::storage_target(s, secrets, pvc_root, "spec.backupRef"))
            .transpose()?;
        let lock = validate::object_lock_check(target.as_ref(), &manifest).await?;
        report.add_checks(vec![lock]);
    }
    if spec.kafka_cluster.is_some() {
        let restored =
            validate_by_restore(kbv, backup, secrets, pvc_root, &manifest, now_ms).await?;
        report.add_checks(restored);
    }
    if !spec.checks.custom_webhooks.is_empty() {
        let bootstrap = spec
            .kafka_cluster
            .as_ref()
            .map(|k| k.bootstrap_servers.clone());
        let hooks =
            notify::run_webhooks(&spec.checks.custom_webhooks, &report, bootstrap.as_deref()).await;
        report.add_checks(hooks);
    }
    let (path, signature) = validate::store_signed(&ev_op, &report, key.as_deref()).await?;
    let pdf = if spec.evidence.as_ref().is_some_and(|e| {
        e.formats
            .contains(&crate::api::validation::EvidenceFormat::Pdf)
    }) {
        let p = format!("{}.pdf", path.trim_end_matches(".json"));
        crate::storage::write_all(&ev_op, &p, evidence::render_pdf(&report, &path)).await?;
        Some(p)
    } else {
        None
    };
    let pruned = match &spec.evidence {
        Some(e) => {
            evidence::prune_reports(&ev_op, &report.backup.name, &name, e.retention_days, now_ms)
                .await?
        }
        None => vec![],
    };
    let notifications = notify::notify(&targets, &report, &path).await;
    for n in notifications.iter().filter(|n| !n.delivered) {
        // reported, and the validation's result stands
        tracing::warn!(target_service = %n.target, message = %n.message, "notification failed");
    }
    Ok(ValidationDone {
        report,
        path,
        signature,
        pdf,
        pruned,
        notifications,
    })
}

/// The notification targets of a KafkaBackupValidation, secrets resolved. Errors name the
/// field whose Secret or key is missing.
pub fn notify_targets(
    spec: &crate::api::validation::KafkaBackupValidationSpec,
    secrets: &Secrets,
) -> Result<crate::exec::notify::NotifyTargets, FlowError> {
    let Some(n) = &spec.notifications else {
        return Ok(Default::default());
    };
    let get = |field: &str, name: &str, key: &str| {
        secrets
            .get(name, key)
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .map_err(|e| ObserveError::Config {
                field: field.into(),
                message: e.to_string(),
            })
    };
    Ok(crate::exec::notify::NotifyTargets {
        on_success: n.on_success,
        slack_url: n
            .slack
            .as_ref()
            .map(|s| {
                get(
                    "spec.notifications.slack.webhookSecret",
                    &s.webhook_secret.name,
                    &s.webhook_secret.key,
                )
            })
            .transpose()?,
        pagerduty: n
            .pagerduty
            .as_ref()
            .map(|p| {
                get(
                    "spec.notifications.pagerduty.routingKeySecret",
                    &p.routing_key_secret.name,
                    &p.routing_key_secret.key,
                )
                .map(|k| (k, p.severity))
            })
            .transpose()?,
    })
}

/// Where a KafkaBackupValidation stores its evidence: `evidence.storage` when set (opened
/// read-write), else `backup_repo`, the backup's own repository.
pub fn evidence_storage(
    kbv: &crate::api::validation::KafkaBackupValidation,
    secrets: &Secrets,
    pvc_root: &Path,
    backup_repo: &Operator,
) -> Result<Operator, FlowError> {
    match kbv.spec.evidence.as_ref().and_then(|e| e.storage.as_ref()) {
        None => Ok(backup_repo.clone()),
        Some(s) => {
            let target = observe::storage_target(s, secrets, pvc_root, "spec.evidence.storage")?;
            open(&target, Access::ReadWrite)
        }
    }
}

/// The restore checks of a KafkaBackupValidation with `kafkaCluster` (issue 8, docs in
/// `exec::verify_restore`): the run `manifest` describes is restored into scratch topics
/// `kbv-<validation>-<epoch ms>-<topic>` (the topics of `checks.messageCount.topics`, or all),
/// read back and compared record by record with the backup, and the consumer-group snapshot's
/// translated positions are checked ([`scratch::restore_and_check`]). The scratch topics, and
/// the restore's journal, offset map and lock, are deleted afterwards, also when a check or the
/// restore fails; so are the leftovers of earlier attempts of the same validation that are not
/// running (killed ones: the rule is in [`scratch`]), named in `restoreRecords`' notes. A
/// restore that fails (a corrupted object: the integrity chain refuses it before writing) is
/// a failed `restoreRecords` check that names why, not an error.
///
/// Errors: the cluster cannot be reached or refuses the scratch topics.
pub async fn validate_by_restore(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    manifest: &crate::format::manifest::RunManifest,
    now_ms: i64,
) -> Result<Vec<crate::exec::validate::CheckReport>, FlowError> {
    let run_id = manifest.run_id.as_str();
    let spec = &kbv.spec;
    let Some(cluster) = &spec.kafka_cluster else {
        return Ok(vec![]);
    };
    let name = kbv.metadata.name.clone().unwrap_or_default();
    let restore_name = scratch::attempt_name(&name, now_ms);
    let prefix = format!("{restore_name}-");
    let mut bref = spec.backup_ref.clone();
    bref.backup_id = Some(run_id.to_string());
    let mut kr_spec = serde_json::json!({
        "backupRef": bref,
        "kafkaCluster": cluster,
        "createTopics": true,
        "rollback": {"snapshotBeforeRestore": false},
    });
    if !spec.checks.message_count.topics.is_empty() {
        kr_spec["topics"] = serde_json::json!(spec.checks.message_count.topics);
    }
    // every topic of the run (or of the filter) under the prefix
    let mapping: serde_json::Map<String, serde_json::Value> = manifest
        .topics
        .iter()
        .filter(|t| {
            spec.checks.message_count.topics.is_empty()
                || plan::matches_any(&spec.checks.message_count.topics, &t.name)
        })
        .map(|t| {
            (
                t.name.clone(),
                serde_json::json!(format!("{prefix}{}", t.name)),
            )
        })
        .collect();
    let scratch_topics: Vec<String> = mapping
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    kr_spec["topicMapping"] = serde_json::Value::Object(mapping);
    let kr: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
        "metadata": {"name": restore_name}, "spec": kr_spec,
    }))
    .map_err(|e| ObserveError::Config {
        field: "spec.kafkaCluster".into(),
        message: format!("cannot build the scratch restore: {e}"),
    })?;
    let prep = prepare_restore(&kr, backup, secrets, pvc_root, Access::ReadWrite).await?;
    let only = &spec.checks.consumer_group_offsets.consumer_groups;
    scratch::restore_and_check(&prep, manifest, only, &name, now_ms, &scratch_topics).await
}

/// Observes the cluster and the repository of `kb` and compiles its next run.
pub async fn prepare_backup(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
    access: Access,
) -> Result<PreparedBackup, FlowError> {
    let spec = &kb.spec;
    let name = kb.metadata.name.clone().unwrap_or_default();
    let target = observe::storage_target(&spec.storage, secrets, pvc_root, "spec.storage")?;
    let keyring = observe::keyring(&spec.storage, secrets, "spec.storage")?;
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    // Observe and compile read-only; storage is opened for writing only once the plan stands.
    let mut op = open(&target, Access::ReadOnly)?;
    let client = KafkaClient::connect(cfg).await?;
    let meta = client.metadata();
    let available: Vec<(String, bool)> = meta
        .topics
        .values()
        .map(|t| (t.name.clone(), t.is_internal))
        .collect();
    let (selected, _) = plan::select_topics(&spec.topics, &spec.exclude_topics, &available);
    let facts = observe::observe_cluster(&client, &selected, true).await?;
    let mut repo = observe::load_repo_state(&op, &name).await?;
    // The previous run is authenticated before the new one continues from it.
    if let Some(prev) = repo.latest.as_mut() {
        encryption::open_run(&op, keyring.as_ref(), prev, "spec.storage").await?;
    }
    if let Some(c) = &repo.checkpoint {
        encryption::check_checkpoint(keyring.as_ref(), c, "spec.storage")?;
    }
    let diverged = match &repo.latest {
        Some(prev) => {
            observe::diverged_partitions(&client, prev, &facts.offsets, &facts.configs).await?
        }
        None => Default::default(),
    };
    let facts = BackupFacts {
        name,
        now_ms,
        meta: facts.meta,
        offsets: facts.offsets,
        configs: facts.configs,
        previous: repo.latest,
        checkpoint: repo.checkpoint,
        diverged,
    };
    let mut plan = plan::compile_backup(spec, &facts)?;
    (plan.owner, plan.adopt_from) = owner::backup_owner(&kb.metadata)?;
    let adopt = plan.adopt_from.as_ref();
    owner::check_backup_repository(&op, &plan.backup_name, &plan.owner, adopt, now_ms).await?;
    if access == Access::ReadWrite {
        // storage.s3.objectLock on a bucket without Object Lock: refused before any write
        crate::storage::object_lock::require_bucket_lock(&target).await?;
        op = open(&target, access)?;
    }
    Ok(PreparedBackup {
        plan,
        client,
        op,
        storage: target,
        keyring: keyring.map(std::sync::Arc::new),
    })
}

/// A compiled restore with its handles.
pub struct PreparedRestore {
    pub plan: RestorePlan,
    /// Fresh, or the resumption of an interrupted attempt (then `plan` is the journal's).
    pub start: RestoreStart,
    pub client: KafkaClient,
    /// The backup repository, read-only: a restore never writes to it unless it is also
    /// `state` (the default).
    pub op: Operator,
    pub storage: StorageTarget,
    /// Where the restore writes its journal, lock, offset map and group snapshots
    /// (`spec.stateStorage`, default the repository): read-write unless the restore is a plan
    /// or a dry run.
    pub state: Operator,
    /// The repository's key-encryption key (`storage.encryption`), for the run's context.
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

/// Resolves the backup a KafkaRestore refers to (`backup`: the KafkaBackup named by
/// `backupRef.name`, needed unless `backupRef.storage` is inline), loads the run manifest,
/// observes the target cluster and compiles. A journal of this restore with the same data
/// ([`plan::restore_data_hash`]) is taken instead: incomplete, it is resumed (its plan is kept:
/// the targets now hold its own records, which a fresh compile would refuse, and the executor
/// skips what was already written); complete, the restore does nothing
/// ([`RestoreStart::Complete`]).
pub async fn prepare_restore(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    access: Access,
) -> Result<PreparedRestore, FlowError> {
    let spec = &kr.spec;
    let (target, op, keyring) = restore_repository(kr, backup, secrets, pvc_root)?;
    let keyring = keyring.map(std::sync::Arc::new);
    let inline = spec.backup_ref.storage.is_some();
    owner::check_reader_repository(&op, &spec.backup_ref.name, backup, inline).await?;
    let restore_name = kr.metadata.name.clone().unwrap_or_default();
    let spec_hash = plan::restore_data_hash(spec);
    let mut state = restore_state(kr, &target, secrets, pvc_root, Access::ReadOnly)?;
    let journal = crate::exec::load_journal(&state, &spec.backup_ref.name, &restore_name)
        .await?
        .filter(|j| j.spec_hash == spec_hash);
    if let Some(j) = journal {
        // The same data as the journal's attempt: continue it (or, complete, do nothing),
        // with this spec's rate limits, concurrency and timeout. The batch size stays the
        // first attempt's, so that the records already written are skipped exactly.
        let mut plan = j.plan.clone();
        plan.dry_run = spec.dry_run;
        plan.max_concurrent_partitions = spec.max_concurrent_partitions();
        plan.records_per_sec = spec.rate_limiting.records_limit();
        plan.bytes_per_sec = spec.rate_limiting.bytes_limit();
        plan.produce_timeout_ms = spec.produce_timeout_ms;
        // The group options are not part of the data: this spec's apply.
        plan.groups = plan::restore_groups_plan(spec);
        let client = connect_restore_target(spec, secrets).await?;
        if access == Access::ReadWrite && !spec.dry_run {
            state = restore_state(kr, &target, secrets, pvc_root, access)?;
        }
        let start = if j.complete {
            RestoreStart::Complete(Box::new(j))
        } else {
            RestoreStart::Resume(Box::new(j))
        };
        return Ok(PreparedRestore {
            plan,
            start,
            client,
            op,
            storage: target,
            state,
            keyring,
        });
    }
    let mut manifest = match &spec.backup_ref.backup_id {
        Some(id) => observe::load_manifest(&op, &spec.backup_ref.name, id).await?,
        None => observe::latest_complete_run(&op, &spec.backup_ref.name).await?,
    };
    let field = if inline {
        "spec.backupRef.storage"
    } else {
        "KafkaBackup spec.storage"
    };
    encryption::open_run(&op, keyring.as_deref(), &mut manifest, field).await?;
    let client = connect_restore_target(spec, secrets).await?;
    let targets: Vec<String> = manifest
        .topics
        .iter()
        .map(|t| spec.target_topic(&t.name).to_string())
        .collect();
    let facts = observe::observe_cluster(&client, &targets, true).await?;
    let facts = RestoreFacts {
        restore_name,
        manifest,
        target: facts.meta,
        target_offsets: facts.offsets,
        target_configs: facts.configs,
    };
    let plan = plan::compile_restore(spec, &facts)?;
    if access == Access::ReadWrite && !plan.dry_run {
        state = restore_state(kr, &target, secrets, pvc_root, access)?;
    }
    Ok(PreparedRestore {
        plan,
        start: RestoreStart::Fresh { spec_hash },
        client,
        op,
        storage: target,
        state,
        keyring,
    })
}

/// The storage `kb`'s retention works in: `backup_op` (the backup's own, opened read-write),
/// or, with `retention.credentialsSecret` (S3 only), the same bucket and prefix opened with
/// that key pair, so that the backup's own credential needs no delete right on data and
/// manifests (docs/security.md, "Least privilege (S3)").
///
/// Errors (each names `spec.retention.credentialsSecret`): a storage that is not S3; its
/// Secret or a key of it missing.
pub fn retention_storage(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    backup_op: &Operator,
) -> Result<Operator, FlowError> {
    let Some(c) = &kb.spec.retention.credentials_secret else {
        return Ok(backup_op.clone());
    };
    let cfg = |message: String| -> FlowError {
        ObserveError::Config {
            field: "spec.retention.credentialsSecret".into(),
            message,
        }
        .into()
    };
    let mut target = observe::storage_target(&kb.spec.storage, secrets, pvc_root, "spec.storage")?;
    let StorageTarget::S3 { credentials, .. } = &mut target else {
        return Err(cfg(format!(
            "is an S3 key pair, but storage.storageType is {}: remove it (retention then uses the storage's own credential)",
            kb.spec.storage.storage_type.as_str()
        )));
    };
    let key = |k: &str| {
        secrets
            .get_string(&c.name, k)
            .map_err(|e| cfg(e.to_string()))
    };
    *credentials = Some((key(&c.access_key_id_key)?, key(&c.secret_access_key_key)?));
    open(&target, Access::ReadWrite)
}

/// Applies `kb`'s retention to its repository after a successful run: lists every complete run,
/// compiles what to prune ([`plan::compile_retention`]) and deletes it (nothing in dry run).
/// `op` is the storage [`retention_storage`] opens (with `retention.credentialsSecret`, a
/// credential of its own).
pub async fn apply_retention(
    kb: &KafkaBackup,
    op: &Operator,
    now_ms: i64,
) -> Result<plan::RetentionPlan, FlowError> {
    let name = kb.metadata.name.clone().unwrap_or_default();
    let runs = observe::load_complete_manifests(op, &name).await?;
    // runs still under S3 Object Lock are kept, not deleted (storage.s3.objectLock)
    let retain_days = (kb.spec.storage.storage_type == crate::api::common::StorageType::S3)
        .then(|| kb.spec.storage.s3.as_ref()?.object_lock.as_ref())
        .flatten()
        .map(|l| l.retain_days);
    let plan = plan::compile_retention_locked(&kb.spec.retention, &runs, now_ms, retain_days);
    for k in &plan.kept_locked {
        tracing::info!(backup = %name, "retention: {k}");
    }
    if !plan.dry_run {
        let lock = crate::exec::lock::Lock::acquire(
            op,
            &crate::format::layout::backup_lock(&name),
            "retention",
        )
        .await
        .map_err(FlowError::Exec)?;
        let (who, adopt) = owner::backup_owner(&kb.metadata)?;
        lock.hold(async {
            crate::exec::repository::claim(op, &name, &who, adopt.as_ref(), now_ms).await?;
            crate::exec::run_retention(&plan, op, &name, &runs).await
        })
        .await
        .map_err(FlowError::Exec)?;
    }
    Ok(plan)
}
