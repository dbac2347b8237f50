//! Executing a [`RetentionPlan`]: manifests of pruned runs first (so a half-pruned run is never
//! taken for a complete one), then the segments and indexes no retained run needs.
//!
//! Order: a run exists while its manifest does, so the manifest goes first. If the store
//! refuses it (S3 Object Lock, a missing right), the run stays whole: nothing it lists is
//! deleted, and the refusal is reported. Deleting segments first would leave, on a refused
//! manifest, a run that claims to be complete and cannot be restored.
//!
//! In an object-locked repository (a versioned bucket, [`RetentionPlan::delete_versions`])
//! each key's versions are deleted one by one (`DeleteObject` with `versionId`), the current
//! one first: a plain DELETE would only add a delete marker and keep every byte. A key whose
//! current version the store refuses is left as it is.
use std::collections::BTreeSet;

use opendal::Operator;

use super::ExecError;
use crate::format::layout;
use crate::format::manifest::RunManifest;
use crate::plan::RetentionPlan;
use crate::storage::{StorageError, backend};

/// Deletes what `plan` selects in the repository of `backup`; a dry-run plan deletes nothing.
/// `runs`: the complete runs the plan was compiled from (the segments of a run whose manifest
/// the store refuses to delete are kept).
///
/// Errors: a store failure that is not a refusal stops at once (what was deleted is reported
/// by the next retention as usual); refusals (`storage-refused`: locked or denied) do not
/// stop the others and end in one [`ExecError::Partial`] that lists the runs deleted, the runs
/// kept whole and why, and any index or segment object no run lists any more that stayed; its
/// category is the first refusal's (`storage-refused`, whose message names the S3 action).
pub async fn run_retention(
    plan: &RetentionPlan,
    op: &Operator,
    backup: &str,
    runs: &[RunManifest],
) -> Result<(), ExecError> {
    if plan.dry_run {
        return Ok(());
    }
    let (mut deleted, mut kept, mut refused) = (vec![], BTreeSet::new(), vec![]);
    let mut first: Option<StorageError> = None;
    for run in &plan.delete_runs {
        let path = layout::manifest(backup, run);
        match delete_key(op, &path, plan.delete_versions).await {
            Ok(()) => deleted.push(run.as_str()),
            Err(e) if e.category() == "storage-refused" => {
                refused.push(format!("run {run} kept whole: {e}"));
                kept.insert(run.as_str());
                first.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // what a run the store kept still lists stays
    let needed: BTreeSet<&str> = runs
        .iter()
        .filter(|m| kept.contains(m.run_id.as_str()))
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.segments)
        .map(|s| s.path.as_str())
        .collect();
    let mut left = vec![];
    for seg in plan
        .delete_segments
        .iter()
        .filter(|s| !needed.contains(s.as_str()))
    {
        for path in [seg.clone(), layout::segment_index(seg)] {
            match delete_key(op, &path, plan.delete_versions).await {
                Ok(()) => {}
                Err(e) if e.category() == "storage-refused" => {
                    left.push(e.to_string());
                    first.get_or_insert(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let Some(first) = first else {
        return Ok(());
    };
    let mut msg = format!(
        "retention: the store refused some deletes; runs deleted: {deleted:?}; {}",
        refused.join("; ")
    );
    if !left.is_empty() {
        msg.push_str(&format!(
            "; {} object(s) of deleted runs stayed (no run lists them; delete them after their Object Lock date): {}",
            left.len(),
            left.join("; ")
        ));
    }
    msg.push_str(
        " (a run is deleted manifest first, so every run that remains is whole and restorable)",
    );
    Err(ExecError::Partial {
        message: msg,
        source: Box::new(first.into()),
    })
}

/// Deletes `path`: with `versions`, every version of it (current first, delete markers
/// last), stopping at the first the store refuses; else (or when the store lists no
/// version: not versioned) a plain DELETE.
pub async fn delete_key(op: &Operator, path: &str, versions: bool) -> Result<(), StorageError> {
    if !versions {
        return op
            .delete(path)
            .await
            .map_err(|e| backend("delete", path, e));
    }
    let entries = match op.list_with(path).versions(true).deleted(true).await {
        Ok(e) => e,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => vec![],
        Err(e) => return Err(backend("list versions of", path, e)),
    };
    let mut found: Vec<(u8, String)> = entries
        .iter()
        .filter(|e| e.path() == path)
        .filter_map(|e| {
            let m = e.metadata();
            let rank = match (m.is_deleted(), m.is_current()) {
                (true, _) => 2,
                (false, Some(true)) => 0,
                _ => 1,
            };
            Some((rank, m.version()?.to_string()))
        })
        .collect();
    if found.is_empty() {
        return op
            .delete(path)
            .await
            .map_err(|e| backend("delete", path, e));
    }
    found.sort();
    for (_, v) in found {
        op.delete_with(path)
            .version(&v)
            .await
            .map_err(|e| backend("delete", &format!("{path} version {v}"), e))?;
    }
    Ok(())
}
