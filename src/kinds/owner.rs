//! Repository identity in the flow (docs/format.md, "Repository identity and version"): which
//! KafkaBackup a resource is as a repository owner (namespace and name, the adoption
//! annotation), and the checks made while planning, before any writer takes the lock.
use kube::api::ObjectMeta;
use opendal::Operator;

use super::KindError;
use crate::api::KafkaBackup;
use crate::exec::repository::{check_owner, location};
use crate::format::repository::{ADOPT_ANNOTATION, Owner};
use crate::format::repository_io::load_record;
use crate::observe::ObserveError;

/// The owner a KafkaBackup writes its repository as (`metadata.namespace`, `default` when
/// absent as in a file given to the CLI, and `metadata.name`), and the owner it adopts the
/// repository from when annotated `kafka.oso.sh/adopt-repository: <namespace>/<name>`.
///
/// Errors: an annotation value that is not `<namespace>/<name>` (naming the annotation).
pub fn backup_owner(meta: &ObjectMeta) -> Result<(Owner, Option<Owner>), KindError> {
    let owner = Owner::new(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    );
    let adopt = match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPT_ANNOTATION))
    {
        None => None,
        Some(v) => Some(Owner::parse(v).map_err(|e| ObserveError::Config {
            field: format!("metadata.annotations[{ADOPT_ANNOTATION}]"),
            message: e,
        })?),
    };
    Ok((owner, adopt))
}

/// Refuses, while planning, a backup of `owner` into repository `backup` that another
/// KafkaBackup owns (unless `adopt` names that owner); the executor checks again under the lock.
/// Errors: the refusal naming both owners, the location and the fix (field `spec.storage`).
pub async fn check_backup_repository(
    op: &Operator,
    backup: &str,
    owner: &Owner,
    adopt: Option<&Owner>,
    now_ms: i64,
) -> Result<(), KindError> {
    if let Some(rec) = Box::pin(load_record(op, backup)).await? {
        check_owner(&rec, owner, adopt, &location(op, backup), now_ms).map_err(|message| {
            ObserveError::Config {
                field: "spec.storage".into(),
                message,
            }
        })?;
    }
    Ok(())
}

/// The owner of repository `backup` as a reader (a restore or a validation) sees it: with
/// `inline` storage (`backupRef.storage`) any owner is read, on purpose (a new cluster, a
/// restored namespace), and returned for the plan to show; through the KafkaBackup `kb` named
/// by `backupRef.name`, the repository must be that KafkaBackup's, or the one it adopts
/// (annotation `kafka.oso.sh/adopt-repository`). A repository without a
/// record (written before records existed) has no owner to compare.
///
/// Errors: another owner, naming both, the location and the fix (field `spec.backupRef.name`).
pub async fn check_reader_repository(
    op: &Operator,
    backup: &str,
    kb: Option<&KafkaBackup>,
    inline: bool,
) -> Result<Option<Owner>, KindError> {
    let Some(rec) = Box::pin(load_record(op, backup)).await? else {
        return Ok(None);
    };
    if let (false, Some(kb)) = (inline, kb) {
        let (want, adopt) = backup_owner(&kb.metadata)?;
        // a KafkaBackup annotated to adopt this owner's repository reads it before its first
        // run takes it over (a new cluster, a namespace of another name)
        if rec.owner != want && adopt.as_ref() != Some(&rec.owner) {
            return Err(ObserveError::Config {
                field: "spec.backupRef.name".into(),
                message: format!(
                    "the repository at {} belongs to KafkaBackup {}, not to KafkaBackup {want} that backupRef.name refers to (object names do not hold the namespace: two KafkaBackups of the same name share a repository when they point at the same storage). Refer to the KafkaBackup that owns it, or, to read another owner's repository on purpose (a new cluster, a restored namespace), give backupRef.storage inline instead or annotate the KafkaBackup {ADOPT_ANNOTATION}: {}",
                    location(op, backup),
                    rec.owner,
                    rec.owner
                ),
            }
            .into());
        }
    }
    Ok(Some(rec.owner))
}
