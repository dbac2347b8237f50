//! KafkaBackupValidation: `prepare` finds the run to check; `run` checks it, stores the evidence
//! and notifies.
use std::path::Path;

use opendal::Operator;

use super::shards::ShardLauncher;
use super::{Access, KindError, open};
use super::{encryption, owner, scratch};
use crate::api::{KafkaBackup, KafkaRestore, Secrets};
use crate::exec::shard::ShardFailure;
use crate::observe::{self, ObserveError};
use crate::plan;

/// The repository and run a KafkaBackupValidation checks: `backupRef.storage`, else its
/// KafkaBackup's storage (among the files); `backupRef.backupId`, else the newest complete
/// run. Returns the repository (read-write: the report is stored there), the run's manifest
/// (authenticated and opened when the repository is encrypted), the checksum its document
/// carries, and the data keys of its segments' runs.
pub async fn prepare(
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
    KindError,
> {
    let bref = &kbv.spec.backup_ref;
    let storage_spec = super::backup_storage(bref.storage.as_ref(), &bref.name, backup)?;
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
/// or cluster unreachable). The restore check runs in this process, `execution` or not
/// ([`run_sharded`] runs it as shards).
pub async fn run(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
) -> Result<ValidationDone, KindError> {
    run_with(kbv, backup, secrets, pvc_root, now_ms, None::<&InProcess>).await
}

/// [`run`] with the restore check of a validation with `execution.mode: job` run as shards by
/// `launcher` (a shard is `run -f FILES --plan <attempt> --shard i/N`, `<attempt>` the scratch
/// restore's name `kbv-<validation>-<ms>`; docs/execution.md "Restores").
pub async fn run_sharded<L: ShardLauncher>(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
    launcher: &L,
) -> Result<ValidationDone, KindError> {
    run_with(kbv, backup, secrets, pvc_root, now_ms, Some(launcher)).await
}

/// The launcher type of a validation run without one ([`run`]): never asked to launch.
struct InProcess;

impl ShardLauncher for InProcess {
    async fn run_shard(&self, _: &str, _: u32, _: u32) -> Result<(), ShardFailure> {
        Err(ShardFailure {
            message: "no shard launcher: the restore check runs in process".into(),
            oom_killed: false,
        })
    }
}

async fn run_with<L: ShardLauncher>(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
    launcher: Option<&L>,
) -> Result<ValidationDone, KindError> {
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
    let (op, manifest, sha, keys) = prepare(kbv, backup, secrets, pvc_root).await?;
    let ev_op = evidence_storage(kbv, secrets, pvc_root, &op)?;
    let checks = plan::validation_checks(&spec.checks);
    let mut report =
        validate::validate_run(&op, &keys, &name, &manifest, sha, &checks, now_ms).await?;
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
            validate_by_restore(kbv, backup, secrets, pvc_root, &manifest, now_ms, launcher)
                .await?;
        report.add_checks(restored);
    }
    if !checks.webhooks.is_empty() {
        let bootstrap = spec
            .kafka_cluster
            .as_ref()
            .map(|k| k.bootstrap_servers.clone());
        let hooks = notify::run_webhooks(&checks.webhooks, &report, bootstrap.as_deref()).await;
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
) -> Result<plan::NotifyTargets, KindError> {
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
    Ok(plan::NotifyTargets {
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
                .map(|k| (k, p.severity.into()))
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
) -> Result<Operator, KindError> {
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
/// The scratch restore carries the validation's `execution`: with `launcher` and `mode: job`
/// it runs as shards ([`scratch::restore_and_check`]).
///
/// Errors: the cluster cannot be reached or refuses the scratch topics.
pub async fn validate_by_restore<L: ShardLauncher>(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    manifest: &crate::format::manifest::RunManifest,
    now_ms: i64,
    launcher: Option<&L>,
) -> Result<Vec<crate::exec::validate::CheckReport>, KindError> {
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
        "execution": spec.execution,
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
    let prep = super::restore::prepare(&kr, backup, secrets, pvc_root, Access::ReadWrite).await?;
    let only = &spec.checks.consumer_group_offsets.consumer_groups;
    let (names, topics) = ((only.as_slice(), name.as_str()), &scratch_topics);
    scratch::restore_and_check(&prep, manifest, names, now_ms, topics, launcher).await
}

/// Reads shard `shard` of `shards` of the restore check `attempt` (the scratch restore's name,
/// `kbv-<validation>-<ms>`) of `kbv`, staged by the validation's run (`run -f FILES --plan
/// <attempt> --shard i/N`), and connects to the scratch's cluster and storage.
///
/// Errors: `attempt` not an attempt of this validation (naming `--plan`); a validation without
/// `kafkaCluster`; as [`super::restore::prepare_shard`].
pub async fn prepare_restore_shard(
    kbv: &crate::api::validation::KafkaBackupValidation,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    attempt: &str,
    shard: (u32, u32),
) -> Result<super::restore::PreparedRestoreShard, KindError> {
    let spec = &kbv.spec;
    let name = kbv.metadata.name.clone().unwrap_or_default();
    let config = |field: &str, message: String| ObserveError::Config {
        field: field.into(),
        message,
    };
    if !matches!(scratch::attempt_of_state(&name, attempt), Some((_, false))) {
        return Err(config(
            "--plan",
            format!(
                "{attempt:?} is not a restore check of KafkaBackupValidation {name:?} (kbv-{name}-<epoch ms>); fix --plan"
            ),
        )
        .into());
    }
    let Some(cluster) = &spec.kafka_cluster else {
        return Err(config(
            "spec.kafkaCluster",
            "is not set: the validation has no restore check to run shards of".into(),
        )
        .into());
    };
    // the scratch restore as far as a shard needs it: its storages and its cluster
    let kr: KafkaRestore = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
        "metadata": {"name": attempt},
        "spec": {"backupRef": spec.backup_ref, "kafkaCluster": cluster, "execution": spec.execution},
    }))
    .map_err(|e| config("spec.kafkaCluster", format!("cannot build the scratch restore: {e}")))?;
    super::restore::prepare_shard(&kr, backup, secrets, pvc_root, None, shard).await
}
