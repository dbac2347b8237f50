//! `KafkaOffsetReset` (short name `kor`): set consumer groups' committed offsets, e.g. after a
//! restore (`from-mapping`), to a time, or to the log ends.
//!
//! Kafka refuses offset commits from outside a group that has live members: stop the group's
//! consumers first. The controller reports such groups by name with that instruction.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{KafkaClusterSpec, StatusHeader, default_true};

fn default_parallelism() -> u32 {
    50
}

/// Spec of a `KafkaOffsetReset`.
// clippy mistakes the repeated `type_ = ...` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate,
)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaOffsetReset",
    plural = "kafkaoffsetresets",
    singular = "kafkaoffsetreset",
    shortname = "kor",
    namespaced,
    status = "KafkaOffsetResetStatus",
    derive = "PartialEq",
    doc = "Resets committed offsets of consumer groups (from a restore's offset mapping, to a time, to the log ends or to an offset)."
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[kube(printcolumn(name = "Groups", type_ = "integer", json_path = ".status.groupsTotal"))]
#[kube(printcolumn(name = "Failed", type_ = "integer", json_path = ".status.groupsFailed"))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.resetStrategy != 'to-timestamp' || has(self.resetTimestamp)", "message": "resetStrategy to-timestamp needs resetTimestamp (epoch ms)"},
    {"rule": "self.resetStrategy != 'to-offset' || has(self.resetOffset)", "message": "resetStrategy to-offset needs resetOffset"},
    {"rule": "self.resetStrategy != 'shift-by' || has(self.shiftBy)", "message": "resetStrategy shift-by needs shiftBy"}
]))]
#[garde(allow_unvalidated)]
pub struct KafkaOffsetResetSpec {
    /// Cluster holding the groups. Required.
    #[garde(dive)]
    pub kafka_cluster: KafkaClusterSpec,

    /// Group ids to reset. Required, non-empty.
    #[garde(length(min = 1), inner(length(min = 1)))]
    pub consumer_groups: Vec<String>,

    /// to-earliest, to-latest, to-timestamp, to-offset or from-mapping. Required.
    pub reset_strategy: ResetStrategy,

    /// For to-timestamp: epoch milliseconds; each partition goes to the first offset whose
    /// record timestamp is >= this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_timestamp: Option<i64>,

    /// For to-offset: the offset every selected partition is set to (clamped to the log range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 0)))]
    pub reset_offset: Option<i64>,

    /// For shift-by (ours, like kafka-consumer-groups `--shift-by`): records to move each
    /// partition's committed offset by, negative to re-read (clamped to the log range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_by: Option<i64>,

    /// Only these topics (names or globs). Default: every topic the group has offsets for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(custom(crate::api::checks::check_topic_pattern)))]
    pub topics: Vec<String>,

    /// For from-mapping: where the source->target offset mapping is. Default: the mapping of
    /// the most recent completed KafkaRestore in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_mapping_ref: Option<OffsetMappingRef>,

    /// Groups reset concurrently. Default 50.
    #[serde(default = "default_parallelism")]
    #[garde(range(min = 1))]
    pub parallelism: u32,

    /// Show the offsets that would be committed; commit nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,

    /// Keep going with the other groups when one fails (phase PartiallyCompleted). Default
    /// false.
    #[serde(default)]
    pub continue_on_error: bool,

    /// Save the groups' current offsets first (rollback with a KafkaOffsetRollback). Default
    /// true.
    #[serde(default = "default_true")]
    pub snapshot_before_reset: bool,
}

/// Where offsets go.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResetStrategy {
    /// The log start offset.
    ToEarliest,
    /// The high watermark.
    ToLatest,
    /// The first offset at or after `resetTimestamp`.
    ToTimestamp,
    /// `resetOffset`.
    ToOffset,
    /// Translate the group's offsets through a restore's source->target offset mapping.
    FromMapping,
    /// Move each committed offset by `shiftBy` records (ours; kafka-consumer-groups
    /// `--shift-by`).
    ShiftBy,
}

impl ResetStrategy {
    /// The YAML spelling, e.g. `"from-mapping"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetStrategy::ToEarliest => "to-earliest",
            ResetStrategy::ToLatest => "to-latest",
            ResetStrategy::ToTimestamp => "to-timestamp",
            ResetStrategy::ToOffset => "to-offset",
            ResetStrategy::FromMapping => "from-mapping",
            ResetStrategy::ShiftBy => "shift-by",
        }
    }
}

impl std::fmt::Display for ResetStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `offsetMappingRef`: which offset mapping a from-mapping reset uses. Give `restoreName` (the
/// mapping that KafkaRestore recorded in `status.offsetMappingPath`) or `path` (a storage key or,
/// outside a cluster, a local file; with `pvcName`, a path inside that claim).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetMappingRef {
    /// A KafkaRestore in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_name: Option<String>,
    /// Path of the mapping document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// PersistentVolumeClaim holding `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_name: Option<String>,
}

/// `status.phase` of a KafkaOffsetReset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum OffsetResetPhase {
    /// Accepted, not started.
    Pending,
    /// Resetting.
    Running,
    /// Every group reset.
    Completed,
    /// Some groups reset, some failed (`continueOnError`).
    PartiallyCompleted,
    /// Failed; see `message` and `groupResults`.
    Failed,
}

/// Status of a KafkaOffsetReset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaOffsetResetStatus {
    /// Pending, Running, Completed, PartiallyCompleted or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<OffsetResetPhase>,
    /// message, conditions, observedGeneration, planHash, startTime, completionTime.
    #[serde(flatten)]
    pub common: StatusHeader,
    /// Groups selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_total: Option<u32>,
    /// Groups reset successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_reset: Option<u32>,
    /// Groups that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<u32>,
    /// Id of the pre-reset offset snapshot (`snapshotBeforeReset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Where the snapshot was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_path: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
    /// One entry per group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_results: Vec<GroupResult>,
}

/// Outcome for one consumer group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupResult {
    /// Group id.
    pub group_id: String,
    /// Whether every selected partition was committed.
    pub success: bool,
    /// Why not, and what to do (e.g. "group has 3 live members: stop its consumers").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Partitions committed.
    #[serde(default)]
    pub partitions_reset: u32,
}
