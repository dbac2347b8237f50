//! A KafkaBackup's retention after a successful run: the storage it works in and the pruning.
use std::path::Path;

use opendal::Operator;

use super::owner;
use super::{Access, KindError, open};
use crate::api::{KafkaBackup, Secrets};
use crate::observe::{self, ObserveError};
use crate::plan;
use crate::storage::StorageTarget;

/// The storage `kb`'s retention works in: `backup_op` (the backup's own, opened read-write),
/// or, with `retention.credentialsSecret` (S3 only), the same bucket and prefix opened with
/// that key pair, so that the backup's own credential needs no delete right on data and
/// manifests (docs/security.md, "Least privilege (S3)").
///
/// Errors (each names `spec.retention.credentialsSecret`): a storage that is not S3; its
/// Secret or a key of it missing.
pub fn storage(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    backup_op: &Operator,
) -> Result<Operator, KindError> {
    let Some(c) = &kb.spec.retention.credentials_secret else {
        return Ok(backup_op.clone());
    };
    let cfg = |message: String| -> KindError {
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
/// `op` is the storage [`storage`] opens (with `retention.credentialsSecret`, a
/// credential of its own).
pub async fn apply(
    kb: &KafkaBackup,
    op: &Operator,
    now_ms: i64,
) -> Result<plan::RetentionPlan, KindError> {
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
        .map_err(KindError::Exec)?;
        let (who, adopt) = owner::backup_owner(&kb.metadata)?;
        lock.hold(async {
            crate::exec::repository::claim(op, &name, &who, adopt.as_ref(), now_ms).await?;
            crate::exec::run_retention(&plan, op, &name, &runs).await
        })
        .await
        .map_err(KindError::Exec)?;
    }
    Ok(plan)
}
