//! The data keys a read of an encrypted repository needs, unwrapped before the read begins
//! (so a missing key fails before anything is written), through the run's keyring
//! ([`crate::format::keyring`]). Imports format and storage only.
use opendal::Operator;

use super::{ExecContext, ExecError};
use crate::format::manifest::SegmentRef;
use crate::format::seal::RunKeys;

/// The runs whose data keys encrypted `segments` (none for plaintext segments), sorted and
/// deduplicated.
pub fn sealed_runs<'a>(segments: impl IntoIterator<Item = &'a SegmentRef>) -> Vec<String> {
    let runs: std::collections::BTreeSet<String> = segments
        .into_iter()
        .filter_map(|s| s.seal.as_ref().map(|x| x.run.clone()))
        .collect();
    runs.into_iter().collect()
}

/// Unwraps the data key of every run in `runs` ([`sealed_runs`] of the segments a read
/// needs).
///
/// Errors: [`ExecError::Storage`] naming the key id and the Secret (or KMS key) when a key is
/// not at hand; a configuration error when the segments are encrypted and `storage.encryption`
/// is not set.
pub async fn load_run_keys(
    op: &Operator,
    backup: &str,
    runs: Vec<String>,
    ctx: &ExecContext,
) -> Result<RunKeys, ExecError> {
    if runs.is_empty() {
        return Ok(RunKeys::default());
    }
    match &ctx.keyring {
        Some(k) => Ok(k.run_keys(op, backup, runs.iter().map(String::as_str)).await?),
        None => Err(crate::storage::StorageError::Config(format!(
            "backup {backup:?} is encrypted (format v3, runs {runs:?}): set storage.encryption (keySecret and activeKeyId, or awsKms) to the key it was written with; see docs/security.md"
        ))
        .into()),
    }
}
