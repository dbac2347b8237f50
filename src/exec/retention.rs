//! Executing a [`RetentionPlan`]: manifests of pruned runs first (so a half-pruned run is never
//! taken for a complete one), then the segments and indexes no retained run needs.
use opendal::Operator;

use super::ExecError;
use crate::format::layout;
use crate::plan::RetentionPlan;
use crate::storage::backend;

/// Deletes what `plan` selects in the repository of `backup`; a dry-run plan deletes nothing.
pub async fn run_retention(
    plan: &RetentionPlan,
    op: &Operator,
    backup: &str,
) -> Result<(), ExecError> {
    if plan.dry_run {
        return Ok(());
    }
    for run in &plan.delete_runs {
        let path = layout::manifest(backup, run);
        op.delete(&path)
            .await
            .map_err(|e| backend("delete", &path, e))?;
    }
    for seg in &plan.delete_segments {
        for path in [seg.clone(), layout::segment_index(seg)] {
            op.delete(&path)
                .await
                .map_err(|e| backend("delete", &path, e))?;
        }
    }
    Ok(())
}
