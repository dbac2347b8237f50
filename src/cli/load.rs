//! Reading `-f` files: documents, Secrets, and which resource to act on.
use std::path::PathBuf;

use crate::api::validation::KafkaBackupValidation;
use crate::api::{
    ApiError, Document, KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore, Secrets,
    load_and_validate,
};

/// A KafkaRestore another resource refers to, with the KafkaBackup its backupRef names if it
/// was among the files.
pub type RestoreRef = (Box<KafkaRestore>, Option<Box<KafkaBackup>>);

/// A [`RestoreRef`] borrowed, as the flow's `prepare_offset_*` take it.
pub fn borrow_restore(r: &Option<RestoreRef>) -> Option<(&KafkaRestore, Option<&KafkaBackup>)> {
    r.as_ref().map(|(kr, kb)| (&**kr, kb.as_deref()))
}

/// The resource a `run` or `plan` acts on.
pub enum Target {
    Backup(Box<KafkaBackup>),
    /// The restore, and the KafkaBackup its backupRef names if it was among the files.
    Restore(Box<KafkaRestore>, Option<Box<KafkaBackup>>),
    /// The reset, and the KafkaRestore `offsetMappingRef.restoreName` names, if among the files.
    OffsetReset(Box<KafkaOffsetReset>, Option<RestoreRef>),
    /// The rollback, and the KafkaRestore `snapshotRef.restoreRef` names, if among the files.
    OffsetRollback(Box<KafkaOffsetRollback>, Option<RestoreRef>),
    /// The validation, and the KafkaBackup its backupRef names, if among the files.
    Validation(Box<KafkaBackupValidation>, Option<Box<KafkaBackup>>),
}

/// Errors of loading inputs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Choose(String),
}

/// Loads and validates every document of `files`, collects Secrets, and picks the target:
/// `name` if given, else the only KafkaOffsetReset or KafkaOffsetRollback, else the only
/// KafkaRestore, else the only KafkaBackup.
pub fn load(files: &[PathBuf], name: Option<&str>) -> Result<(Target, Secrets), LoadError> {
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| LoadError::Read {
            path: f.display().to_string(),
            reason: e.to_string(),
        })?;
        docs.extend(load_and_validate(&text, &f.display().to_string())?);
    }
    let secrets = Secrets::from_documents(&docs);
    let backups: Vec<&KafkaBackup> = docs
        .iter()
        .filter_map(|d| {
            if let Document::Backup(b) = d {
                Some(b)
            } else {
                None
            }
        })
        .collect();
    let restores: Vec<&KafkaRestore> = docs
        .iter()
        .filter_map(|d| {
            if let Document::Restore(r) = d {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    let resets: Vec<&KafkaOffsetReset> = docs
        .iter()
        .filter_map(|d| match d {
            Document::OffsetReset(r) => Some(r),
            _ => None,
        })
        .collect();
    let rollbacks: Vec<&KafkaOffsetRollback> = docs
        .iter()
        .filter_map(|d| match d {
            Document::OffsetRollback(r) => Some(r),
            _ => None,
        })
        .collect();
    let validations: Vec<&KafkaBackupValidation> = docs
        .iter()
        .filter_map(|d| match d {
            Document::Validation(v) => Some(v),
            _ => None,
        })
        .collect();
    let name_of = |m: &kube::api::ObjectMeta| m.name.clone().unwrap_or_default();
    let find_backup = |n: &str| {
        backups
            .iter()
            .find(|b| name_of(&b.metadata) == n)
            .map(|b| Box::new((*b).clone()))
    };
    let pick_restore = |r: &KafkaRestore| {
        Target::Restore(Box::new(r.clone()), find_backup(&r.spec.backup_ref.name))
    };
    let find_restore = |n: Option<&String>| -> Option<RestoreRef> {
        let n = n?;
        restores
            .iter()
            .find(|r| &name_of(&r.metadata) == n)
            .map(|r| (Box::new((*r).clone()), find_backup(&r.spec.backup_ref.name)))
    };
    let pick_reset = |r: &KafkaOffsetReset| {
        let rr = find_restore(
            r.spec
                .offset_mapping_ref
                .as_ref()
                .and_then(|m| m.restore_name.as_ref()),
        );
        Target::OffsetReset(Box::new(r.clone()), rr)
    };
    let pick_rollback = |r: &KafkaOffsetRollback| {
        let rr = find_restore(r.spec.snapshot_ref.restore_ref.as_ref());
        Target::OffsetRollback(Box::new(r.clone()), rr)
    };
    let pick_validation = |v: &KafkaBackupValidation| {
        Target::Validation(Box::new(v.clone()), find_backup(&v.spec.backup_ref.name))
    };
    let target = match name {
        Some(n) => {
            if let Some(v) = validations.iter().find(|v| name_of(&v.metadata) == n) {
                pick_validation(v)
            } else if let Some(r) = resets.iter().find(|r| name_of(&r.metadata) == n) {
                pick_reset(r)
            } else if let Some(r) = rollbacks.iter().find(|r| name_of(&r.metadata) == n) {
                pick_rollback(r)
            } else if let Some(r) = restores.iter().find(|r| name_of(&r.metadata) == n) {
                pick_restore(r)
            } else if let Some(b) = find_backup(n) {
                Target::Backup(b)
            } else {
                return Err(LoadError::Choose(format!(
                    "no KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback or KafkaBackupValidation named {n:?} in the given files"
                )));
            }
        }
        None if resets.len() + rollbacks.len() + validations.len() > 1 => {
            return Err(LoadError::Choose(format!(
                "the files hold several resources ({} KafkaOffsetReset, {} KafkaOffsetRollback, {} KafkaBackupValidation): choose one with --name",
                resets.len(),
                rollbacks.len(),
                validations.len()
            )));
        }
        None if validations.len() == 1 => pick_validation(validations[0]),
        None if resets.len() == 1 => pick_reset(resets[0]),
        None if rollbacks.len() == 1 => pick_rollback(rollbacks[0]),
        None => match (restores.as_slice(), backups.as_slice()) {
            ([r], _) => pick_restore(r),
            ([], [b]) => Target::Backup(Box::new((*b).clone())),
            ([], []) => {
                return Err(LoadError::Choose(
                    "the files hold no KafkaBackup or KafkaRestore (only KafkaBackup and KafkaRestore run outside a cluster)".into(),
                ));
            }
            _ => {
                return Err(LoadError::Choose(format!(
                    "the files hold several resources ({} KafkaRestore, {} KafkaBackup): choose one with --name",
                    restores.len(),
                    backups.len()
                )));
            }
        },
    };
    Ok((target, secrets))
}
