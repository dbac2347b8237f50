//! The repository record and the legacy rule read through storage (runtime only): the pure
//! documents and rules are [`super::repository`].
use opendal::Operator;
use serde_json::Value;

use super::layout;
use super::repository::{Legacy, RepositoryRecord, infer_legacy};
use crate::storage::{self, StorageError};

/// The record of repository `backup`, if any. Errors: storage failures; a record that does not
/// parse or fails its checksum (named).
pub async fn load_record(
    op: &Operator,
    backup: &str,
) -> Result<Option<RepositoryRecord>, StorageError> {
    let path = layout::repository(backup);
    // boxed: opendal's futures are large, and every reader and writer awaits this one
    match Box::pin(storage::read_opt(op, &path)).await? {
        Some(b) => Ok(Some(RepositoryRecord::parse(&b, &path)?)),
        None => Ok(None),
    }
}

/// Scans the manifests of a repository without a record ([`infer_legacy`]). Manifests that
/// are not JSON are left to the reader that needs them.
pub async fn scan_legacy(op: &Operator, backup: &str) -> Result<Legacy, StorageError> {
    let mut manifests = Vec::new();
    for run in Box::pin(storage::list_dirs(op, &layout::runs_dir(backup))).await? {
        if let Some(b) = Box::pin(storage::read_opt(op, &layout::manifest(backup, &run))).await?
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
        {
            manifests.push((run, v));
        }
    }
    Ok(infer_legacy(&manifests))
}

/// The legacy rule of repository `backup`: the record's `legacyRunsUpTo`, or, without a
/// record, what its manifests show ([`scan_legacy`]).
pub async fn legacy_rule(op: &Operator, backup: &str) -> Result<Legacy, StorageError> {
    Ok(match Box::pin(load_record(op, backup)).await? {
        Some(r) => Legacy {
            up_to: r.legacy_runs_up_to,
        },
        None => Box::pin(scan_legacy(op, backup)).await?,
    })
}
