//! Step 2 of the flow: compile. Pure functions (no I/O, no clock, no tokio) from a resource's
//! input plus observed facts to a plan ([`BackupPlan`], [`RestorePlan`], ...): serialisable,
//! with a stable hash, or errors that name the field and the fix ([`CompileError`]). A backup
//! and a restore compile from their validated input ([`crate::api::ValidatedBackup`],
//! [`crate::api::ValidatedRestore`]: the spec's rules are checked there, once), never from the
//! raw spec. The CLI `plan` command prints these; `run` and the operator execute them. A run
//! executed as Kubernetes Jobs (`execution.mode: job`) carries its shard split
//! ([`PlanExecution`], from [`plan_execution`]).
mod backup;
mod estimate;
mod offsets;
mod recoverability;
mod repartition;
mod restore;
mod retention;
mod select;
mod shard;
mod validation;

pub use backup::{
    BackupFacts, BackupPartitionStep, BackupPlan, BackupTopic, CutMode, compile_backup,
};
pub use estimate::{BytesSource, EstimateTotal, backup_step_bytes, log_share};
pub use offsets::{
    GroupOffsetPlan, OffsetChange, OffsetResetFacts, OffsetResetPlan, RESTORE_GROUP_PARALLELISM,
    compile_offset_reset, compile_restore_groups, group_snapshots, reset_scope_topics,
    restore_group_names, target_bounds, translate_groups, translate_position,
};
pub use recoverability::{
    Recoverability, TopicWindow, Window, partition_window, recoverability, rfc3339, run_window,
    set_status as set_recoverability_status,
};
pub use repartition::{RepartitionSource, RepartitionStep, Router, murmur2, murmur2_partition};
pub use restore::{
    PitrOffsets, RestoreFacts, RestoreGroupsPlan, RestorePartitionStep, RestorePlan,
    TIMESTAMP_TYPE, TargetState, TopicToCreate, compile_restore, restore_data_hash,
    resumed_restore,
};
pub use retention::{
    KeptLocked, RetentionPlan, compile_retention, compile_retention_locked, locked_until,
};
pub use select::{matches_any, select_topics};
pub use shard::{PlanExecution, PlanExecutionMode, Shard, assign, plan_execution, split, weights};
pub use validation::{NotifyTargets, Severity, ValidationChecks, WebhookCheck, validation_checks};

use sha2::{Digest, Sha256};

use crate::api::FieldError;

/// Errors of the compile layer: everything wrong with a validated input against the observed
/// facts at once, not just the first; one [`FieldError`] (the type validation reports with)
/// per line, `field: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct CompileError(pub Vec<FieldError>);

pub(crate) fn issue(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// SHA-256 (hex, first 16 chars) of a plan's canonical JSON: equal plans have equal hashes.
pub(crate) fn plan_hash<T: serde::Serialize>(plan: &T) -> String {
    let json = serde_json::to_vec(plan).expect("plans serialise");
    hex::encode(&Sha256::digest(&json)[..8])
}
