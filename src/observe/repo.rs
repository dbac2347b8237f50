//! What a backup repository holds: complete runs (manifests) and an incomplete run's
//! checkpoint.
use opendal::Operator;

use crate::format::layout;
use crate::format::manifest::{Checkpoint, RunManifest, from_json_accepting_v1};
use crate::format::repository::Legacy;
use crate::format::repository_io::legacy_rule;
use crate::storage::{self, StorageError};

/// The repository state of one KafkaBackup.
#[derive(Debug, Clone, Default)]
pub struct RepoState {
    /// The newest complete run's manifest.
    pub latest: Option<RunManifest>,
    /// The newest incomplete run's checkpoint (newer than `latest`), to resume.
    pub checkpoint: Option<Checkpoint>,
}

/// Parses the manifest of run `run` read from `path` and holds it to the repository's legacy
/// rule (a v1 manifest, or a segment entry without its index checksum, only for v1 runs).
fn parse_manifest(
    bytes: &[u8],
    path: &str,
    run: &str,
    legacy: &Legacy,
) -> Result<RunManifest, StorageError> {
    let m: RunManifest = from_json_accepting_v1(bytes, path)?;
    legacy.check_manifest(&m, run, path)?;
    Ok(m)
}

/// Lists runs of `backup` and loads the newest manifest and any newer checkpoint. A checkpoint
/// a v1 build left is not resumed (the next run starts after the newest complete run).
pub async fn load_repo_state(op: &Operator, backup: &str) -> Result<RepoState, StorageError> {
    let runs = storage::list_dirs(op, &layout::runs_dir(backup)).await?;
    let legacy = Box::pin(legacy_rule(op, backup)).await?;
    let mut state = RepoState::default();
    for run in runs.iter().rev() {
        let path = layout::manifest(backup, run);
        if let Some(bytes) = storage::read_opt(op, &path).await? {
            state.latest = Some(parse_manifest(&bytes, &path, run, &legacy)?);
            break;
        }
        if state.checkpoint.is_some() {
            continue;
        }
        // The checkpoint documents (a base and deltas), or the single document of earlier builds.
        if let Some(c) = crate::format::checkpoint::load(op, backup, run).await? {
            legacy.check_checkpoint(&c, run, &layout::checkpoint_dir(backup, run))?;
            state.checkpoint = Some(c);
            continue;
        }
        let path = layout::checkpoint(backup, run);
        if let Some(bytes) = storage::read_opt(op, &path).await? {
            let c: Checkpoint = from_json_accepting_v1(&bytes, &path)?;
            if c.format == layout::FORMAT {
                legacy.check_checkpoint(&c, run, &path)?;
                state.checkpoint = Some(c);
            }
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
        Some(b) => parse_manifest(&b, &path, run, &Box::pin(legacy_rule(op, backup)).await?),
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
    let legacy = Box::pin(legacy_rule(op, backup)).await?;
    for run in storage::list_dirs(op, &layout::runs_dir(backup)).await? {
        let path = layout::manifest(backup, &run);
        if let Some(bytes) = storage::read_opt(op, &path).await? {
            out.push(parse_manifest(&bytes, &path, &run, &legacy)?);
        }
    }
    Ok(out)
}
