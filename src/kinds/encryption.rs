//! An encrypted repository's runs as the flow meets them: a run's manifest is authenticated
//! and its group snapshot opened before anything is planned from it, and a repository never
//! mixes encrypted and plaintext runs (docs/security.md). The rule and its messages live here
//! only; the cryptography is `format::keyring`'s and `format::seal`'s.
use opendal::Operator;

use super::KindError;
use crate::format::keyring::Keyring;
use crate::format::manifest::{Checkpoint, RunManifest};
use crate::format::{layout, seal::RunKeys};
use crate::observe::ObserveError;

fn config(field: &str, message: String) -> KindError {
    ObserveError::Config {
        field: field.into(),
        message,
    }
    .into()
}

/// Checks run manifest `m` against the repository's `storage.encryption` (`field` names that
/// storage block): an encrypted run needs a keyring, and a keyring reads only encrypted runs.
/// With both, the manifest's MAC is verified with the run's data key and its consumer-group
/// snapshot opened in place.
///
/// Errors: a configuration error naming `field` and the fix; a missing or refused key
/// (naming the key id and the Secret or KMS key); a changed manifest.
pub async fn open_run(
    op: &Operator,
    keyring: Option<&Keyring>,
    m: &mut RunManifest,
    field: &str,
) -> Result<(), KindError> {
    match (keyring, m.seal.is_some()) {
        (None, false) => Ok(()),
        (None, true) => Err(config(
            &format!("{field}.encryption"),
            format!(
                "run {} of backup {:?} is encrypted ({}): set encryption to the key-encryption key it was written with (docs/security.md)",
                m.run_id,
                m.backup_name,
                m.seal.as_ref().map(|s| s.kek.as_str()).unwrap_or("")
            ),
        )),
        (Some(_), false) => Err(config(
            &format!("{field}.encryption"),
            format!(
                "is set, but run {} of backup {:?} is plaintext: a repository never mixes encrypted and plaintext runs. Remove encryption to read or continue this repository, or back up into a new one (another backup name or prefix)",
                m.run_id, m.backup_name
            ),
        )),
        (Some(k), true) => {
            let dek = k
                .data_key(op, &m.backup_name, &m.run_id)
                .await
                .map_err(ObserveError::from)?;
            let what = layout::manifest(&m.backup_name, &m.run_id);
            crate::format::keyring::open_manifest(&dek, m, &what)
                .map_err(|e| ObserveError::Storage(e.into()))?;
            Ok(())
        }
    }
}

/// The same rule for a run in progress: its checkpoint's segments are encrypted exactly when
/// `storage.encryption` is set.
pub fn check_checkpoint(
    keyring: Option<&Keyring>,
    c: &Checkpoint,
    field: &str,
) -> Result<(), KindError> {
    let segs = || c.partitions.values().flat_map(|p| &p.segments);
    let sealed = segs().any(|s| s.seal.is_some());
    let plain = segs().any(|s| s.seal.is_none());
    match (keyring.is_some(), sealed, plain) {
        (false, true, _) => Err(config(
            &format!("{field}.encryption"),
            format!(
                "run {} in progress is encrypted: set encryption to the key it was started with",
                c.run_id
            ),
        )),
        (true, _, true) => Err(config(
            &format!("{field}.encryption"),
            format!(
                "is set, but run {} in progress has plaintext segments: a repository never mixes encrypted and plaintext runs; remove encryption, or back up into a new repository",
                c.run_id
            ),
        )),
        _ => Ok(()),
    }
}

/// The data keys of every run whose segments manifest `m` lists (empty when plaintext),
/// unwrapped before a read begins.
pub async fn run_keys(
    op: &Operator,
    keyring: Option<&Keyring>,
    m: &RunManifest,
) -> Result<RunKeys, KindError> {
    let runs = crate::exec::keys::sealed_runs(
        (m.topics.iter().flat_map(|t| &t.partitions)).flat_map(|p| &p.segments),
    );
    match keyring {
        Some(k) if !runs.is_empty() => Ok(k
            .run_keys(op, &m.backup_name, runs.iter().map(String::as_str))
            .await
            .map_err(ObserveError::from)?),
        _ => Ok(RunKeys::default()),
    }
}

/// One run's key document as `keys list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunKeyInfo {
    pub run_id: String,
    /// `key id "k2026" of Secret "backup-keys"` or `KMS key "..."`.
    pub kek: String,
    /// Epoch ms of the (re-)wrapping.
    pub wrapped_at: i64,
}

/// An encrypted KafkaBackup's repository (read-write) and its keyring. Errors when `kb` has
/// no `storage.encryption`.
pub fn open_encrypted(
    kb: &crate::api::KafkaBackup,
    secrets: &crate::api::Secrets,
    pvc_root: &std::path::Path,
) -> Result<(Operator, Keyring), KindError> {
    let spec = &kb.spec.storage;
    let target = crate::observe::storage_target(spec, secrets, pvc_root, "spec.storage")?;
    let keyring = crate::observe::keyring(spec, secrets, "spec.storage")?.ok_or_else(|| {
        config(
            "spec.storage.encryption",
            "is not set: this backup's repository is not encrypted, it has no data keys".into(),
        )
    })?;
    Ok((super::open(&target, super::Access::ReadWrite)?, keyring))
}

/// The run ids that have a key document in `backup`'s repository, sorted.
pub async fn keyed_runs(op: &Operator, backup: &str) -> Result<Vec<String>, KindError> {
    let dir = layout::keys_dir(backup);
    let entries = match op.list(&dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => vec![],
        Err(e) => {
            return Err(ObserveError::from(crate::storage::backend("list", &dir, e)).into());
        }
    };
    let mut runs: Vec<String> = entries
        .iter()
        .filter_map(|e| e.name().strip_suffix(".json").map(str::to_string))
        .collect();
    runs.sort();
    Ok(runs)
}

/// Every run's key document of `backup`: which KEK wraps it.
pub async fn list_keys(op: &Operator, backup: &str) -> Result<Vec<RunKeyInfo>, KindError> {
    let mut out = vec![];
    for run in keyed_runs(op, backup).await? {
        let d = Keyring::read_doc(op, backup, &run)
            .await
            .map_err(ObserveError::from)?;
        out.push(RunKeyInfo {
            run_id: run,
            kek: d.kek.to_string(),
            wrapped_at: d.wrapped_at,
        });
    }
    Ok(out)
}

/// Re-wraps every run's data key of `backup` under the keyring's active KEK (key rotation:
/// only the key documents are rewritten, never a segment). Returns the runs re-wrapped.
///
/// Errors: a run whose current KEK is not at hand (named), a storage failure; runs done
/// before the error stay re-wrapped (running it again continues).
pub async fn rewrap(
    op: &Operator,
    keyring: &Keyring,
    backup: &str,
    now_ms: i64,
) -> Result<Vec<String>, KindError> {
    let mut done = vec![];
    for run in keyed_runs(op, backup).await? {
        if keyring
            .rewrap(op, backup, &run, now_ms)
            .await
            .map_err(ObserveError::from)?
        {
            done.push(run);
        }
    }
    Ok(done)
}

/// Crypto-shredding: deletes run `run`'s key document, so the records that run stored can
/// never be decrypted again, in any run that lists them (docs/security.md). Refused while the
/// run is under S3 Object Lock (`now_ms` before its retain-until: a delete would only hide the
/// locked version), and for a run without a key document.
pub async fn shred(op: &Operator, backup: &str, run: &str, now_ms: i64) -> Result<(), KindError> {
    let path = layout::run_keys(backup, run);
    if crate::storage::read_opt(op, &path)
        .await
        .map_err(ObserveError::from)?
        .is_none()
    {
        return Err(config(
            "--run",
            format!("backup {backup:?} has no key document for run {run:?} ({path})"),
        ));
    }
    let manifest = layout::manifest(backup, run);
    if let Some(b) = crate::storage::read_opt(op, &manifest)
        .await
        .map_err(ObserveError::from)?
        && let Ok(m) = serde_json::from_slice::<RunManifest>(&b)
        && let Some(l) = m.object_lock.filter(|l| l.retain_until > now_ms)
    {
        return Err(config(
            "--run",
            format!(
                "run {run} is under S3 Object Lock ({}) until epoch ms {}: its key document cannot be destroyed before then. To make it unreadable now, destroy the key-encryption key that wraps it (remove the key id from the Secret, or schedule the KMS key's deletion)",
                l.mode, l.retain_until
            ),
        ));
    }
    // In a versioned bucket a plain DELETE only adds a delete marker: every version goes.
    let versioned = op.info().capability().list_with_versions;
    crate::exec::retention::delete_key(op, &path, versioned)
        .await
        .map_err(ObserveError::from)?;
    tracing::info!(backup, run, "run data key destroyed (crypto-shredded)");
    Ok(())
}
