//! KafkaOffsetRollback: `prepare` finds the snapshot and turns it into group plans; `run` puts
//! them back and verifies.
use std::path::Path;

use super::KindError;
use super::restore::restore_repository;
use crate::api::{KafkaBackup, KafkaRestore, Secrets};
use crate::kafka::KafkaClient;
use crate::observe::{self, ObserveError};
use crate::plan;
use crate::storage::StorageError;

/// A KafkaOffsetRollback: the snapshot it puts back, as group plans, and the client.
pub struct PreparedOffsetRollback {
    pub snapshot_id: String,
    pub snapshot_path: String,
    pub plans: Vec<plan::GroupOffsetPlan>,
    pub client: KafkaClient,
    /// `spec.dryRun`: nothing is committed.
    pub dry_run: bool,
    /// `spec.verifyAfterRollback`: every group is read back and compared afterwards.
    pub verify: bool,
}

/// What a rollback did: one result per group, and with `verifyAfterRollback` (not a dry run)
/// the groups that match the snapshot and the mismatches, one line each.
pub struct Outcome {
    pub commits: crate::exec::groups::CommitOutcome,
    pub verification: Option<(Vec<String>, Vec<String>)>,
}

/// Puts the snapshot of `prep` back ([`crate::exec::groups::run_offset_rollback`]: whole
/// state, commits added since deleted), then verifies when asked.
///
/// Errors: the cluster failed. Groups not done or not matching are in the outcome.
pub async fn run(prep: &PreparedOffsetRollback) -> Result<Outcome, KindError> {
    let (commits, verification) = crate::exec::groups::run_offset_rollback(
        &prep.client,
        &prep.plans,
        prep.dry_run,
        prep.verify,
    )
    .await?;
    Ok(Outcome {
        commits,
        verification,
    })
}

/// Finds the snapshot a KafkaOffsetRollback names (`snapshotRef.path`, `.name` in
/// `snapshot_dir`, `.offsetResetRef`: the newest snapshot of that reset in `snapshot_dir`,
/// `.restoreRef`: the newest snapshot of that restore in its backup's storage), and turns it
/// into group plans, with the current offsets filled in.
pub async fn prepare(
    korb: &crate::api::KafkaOffsetRollback,
    restore: Option<(&KafkaRestore, Option<&KafkaBackup>)>,
    secrets: &Secrets,
    pvc_root: &Path,
    snapshot_dir: &Path,
) -> Result<PreparedOffsetRollback, KindError> {
    let spec = &korb.spec;
    let r = &spec.snapshot_ref;
    let cfg = |field: &str, message: String| -> KindError {
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
) -> Result<PreparedOffsetRollback, KindError> {
    let spec = &korb.spec;
    let cfg = |field: &str, message: String| -> KindError {
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
        dry_run: spec.dry_run,
        verify: spec.verify_after_rollback,
    })
}
