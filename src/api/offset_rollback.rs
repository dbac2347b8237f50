//! `KafkaOffsetRollback` (short name `korb`): put consumer groups back to the offsets saved in
//! an offset snapshot (taken before a restore or an offset reset).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{KafkaClusterSpec, StatusHeader, default_true};

/// Spec of a `KafkaOffsetRollback`.
// clippy mistakes the repeated `type_ = ...` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate,
)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaOffsetRollback",
    plural = "kafkaoffsetrollbacks",
    singular = "kafkaoffsetrollback",
    shortname = "korb",
    namespaced,
    status = "KafkaOffsetRollbackStatus",
    derive = "PartialEq",
    doc = "Rolls consumer group offsets back to a saved offset snapshot."
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[kube(printcolumn(
    name = "Groups",
    type_ = "integer",
    json_path = ".status.groupsRolledBack"
))]
#[kube(printcolumn(
    name = "Ready",
    type_ = "string",
    json_path = ".status.conditions[?(@.type==\"Ready\")].status"
))]
#[kube(printcolumn(
    name = "Message",
    type_ = "string",
    priority = "1",
    json_path = ".status.message"
))]
#[kube(printcolumn(
    name = "Age",
    type_ = "date",
    json_path = ".metadata.creationTimestamp"
))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct KafkaOffsetRollbackSpec {
    /// Which snapshot. Required; name it by at least one of its fields.
    pub snapshot_ref: SnapshotRef,

    /// Cluster holding the groups. Required.
    #[garde(dive)]
    pub kafka_cluster: KafkaClusterSpec,

    /// Only these groups. Default: every group in the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(length(min = 1)))]
    pub consumer_groups: Vec<String>,

    /// Show what would be committed; commit nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,

    /// Read the offsets back after committing and report mismatches. Default true.
    #[serde(default = "default_true")]
    pub verify_after_rollback: bool,
}

/// `snapshotRef`: an offset snapshot, by id (`name`), by location (`path`, optionally inside
/// `pvcName`), or as the snapshot a KafkaRestore (`restoreRef`) or KafkaOffsetReset
/// (`offsetResetRef`) in the same namespace recorded in its status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotRef {
    /// Snapshot id (`status.snapshotId` / `status.rollback.snapshotId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Storage key or, outside a cluster, local file of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// PersistentVolumeClaim holding `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_name: Option<String>,
    /// A KafkaRestore whose pre-restore snapshot to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_ref: Option<String>,
    /// A KafkaOffsetReset whose pre-reset snapshot to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset_ref: Option<String>,
}

impl SnapshotRef {
    /// True when at least one of `name`, `path`, `restoreRef`, `offsetResetRef` is set.
    pub fn is_specified(&self) -> bool {
        [
            &self.name,
            &self.path,
            &self.restore_ref,
            &self.offset_reset_ref,
        ]
        .iter()
        .any(|f| f.as_deref().is_some_and(|s| !s.trim().is_empty()))
    }
}

/// `status.phase` of a KafkaOffsetRollback.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum OffsetRollbackPhase {
    /// Accepted, not started.
    Pending,
    /// Rolling back.
    Running,
    /// Every group rolled back (and verified, if asked).
    Completed,
    /// Some groups rolled back, some failed.
    PartiallyCompleted,
    /// Failed; see `message`.
    Failed,
}

/// Status of a KafkaOffsetRollback.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaOffsetRollbackStatus {
    /// Pending, Running, Completed, PartiallyCompleted or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OffsetRollbackPhase>,
    /// message, conditions, observedGeneration, planHash, startTime, completionTime.
    #[serde(flatten)]
    pub common: StatusHeader,
    /// Groups whose offsets were restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_rolled_back: Option<u32>,
    /// Groups that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<u32>,
    /// Read-back check (`verifyAfterRollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<RollbackVerification>,
}

/// `status.verification` of a KafkaOffsetRollback.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackVerification {
    /// Every group's committed offsets equal the snapshot.
    pub all_matched: bool,
    /// Groups checked.
    #[serde(default)]
    pub total_groups: u32,
    /// Groups that match.
    #[serde(default)]
    pub matched_groups: u32,
    /// Ids of groups that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatched_groups: Vec<String>,
}
