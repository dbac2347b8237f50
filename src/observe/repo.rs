//! What a backup repository holds: complete runs (manifests) and an incomplete run's
//! checkpoint.
use opendal::Operator;

use crate::format::layout;
use crate::format::manifest::{Checkpoint, RunManifest, from_json};
use crate::storage::{self, StorageError};

/// The repository state of one KafkaBackup.
#[derive(Debug, Clone, Default)]
pub struct RepoState {
    /// The newest complete run's manifest.
    pub latest: Option<RunManifest>,
    /// The newest incomplete run's checkpoint (newer than `latest`), to resume.
    pub checkpoint: Option<Checkpoint>,
}

/// Lists runs of `backup` and loads the newest manifest and any newer checkpoint.
pub async fn load_repo_state(op: &Operator, backup: &str) -> Result<RepoState, StorageError> {
    let runs = storage::list_dirs(op, &layout::runs_dir(backup)).await?;
    let mut state = RepoState::default();
    for run in runs.iter().rev() {
        if let Some(bytes) = storage::read_opt(op, &layout::manifest(backup, run)).await? {
            state.latest = Some(from_json(&bytes, &layout::manifest(backup, run))?);
            break;
        }
        if state.checkpoint.is_some() {
            continue;
        }
        // The checkpoint documents (a base and deltas), or the single document of earlier builds.
        if let Some(c) = crate::format::checkpoint::load(op, backup, run).await? {
            state.checkpoint = Some(c);
            continue;
        }
        if let Some(bytes) = storage::read_opt(op, &layout::checkpoint(backup, run)).await? {
            state.checkpoint = Some(from_json(&bytes, &layout::checkpoint(backup, run))?);
        }
    }
    Ok(state)
}

/// Loads one run's manifest. Errors name the backup and run and list what exists.
pub async fn load_manifest(
    op: &Operator,
    backup: &str,
    run: &str,
) -> Result<RunManifest, StorageError> {
    let path = layout::manifest(backup, run);
    match storage::read_opt(op, &path).await? {
        Some(b) => Ok(from_json(&b, &path)?),
        None => {
            let runs = storage::list_dirs(op, &layout::runs_dir(backup)).await?;
            if runs.iter().any(|r| r == run) {
                // the run's directory is there, its manifest is not
                return Err(StorageError::NotFound(format!(
                    "backup {backup:?} run {run:?} has no manifest: {path} is missing (the run did not finish, or its manifest was deleted); it cannot be restored. Choose another run (backupRef.backupId) or back up again"
                )));
            }
            Err(StorageError::NotFound(format!(
                "backup {backup:?} has no complete run {run:?} ({path} not found; runs found: {runs:?}); fix backupRef.backupId"
            )))
        }
    }
}

/// The newest complete run of `backup`.
pub async fn latest_complete_run(op: &Operator, backup: &str) -> Result<RunManifest, StorageError> {
    let state = load_repo_state(op, backup).await?;
    state.latest.ok_or_else(|| StorageError::NoCompleteRun {
        backup: backup.to_string(),
    })
}

/// Every complete run's manifest of `backup`, oldest first (one read per run; runs without a
/// manifest are incomplete and skipped).
pub async fn load_complete_manifests(
    op: &Operator,
    backup: &str,
) -> Result<Vec<RunManifest>, StorageError> {
    let mut out = Vec::new();
    for run in storage::list_dirs(op, &layout::runs_dir(backup)).await? {
        let path = layout::manifest(backup, &run);
        if let Some(bytes) = storage::read_opt(op, &path).await? {
            out.push(from_json(&bytes, &path)?);
        }
    }
    Ok(out)
}
