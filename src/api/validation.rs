//! `KafkaBackupValidation` (short name `kbv`): check a backup (record counts, offset ranges,
//! consumer-group offsets, custom webhooks), produce an evidence report, notify, optionally on a
//! schedule.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{BackupRef, KafkaClusterSpec, StatusHeader, StorageSpec, default_true};
use super::execution::ExecutionSpec;

fn default_webhook_timeout_secs() -> u64 {
    120
}
fn default_expected_status_code() -> u16 {
    200
}
fn default_evidence_formats() -> Vec<EvidenceFormat> {
    vec![EvidenceFormat::Json]
}
fn default_evidence_retention_days() -> u32 {
    90
}
fn default_slack_key() -> String {
    "webhook-url".to_string()
}
fn default_pagerduty_key() -> String {
    "routing-key".to_string()
}
fn default_private_key_key() -> String {
    "private.pem".to_string()
}
fn default_public_key_key() -> String {
    "public.pem".to_string()
}

/// Spec of a `KafkaBackupValidation`.
// clippy mistakes the repeated `type_ = ...` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate,
)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaBackupValidation",
    plural = "kafkabackupvalidations",
    singular = "kafkabackupvalidation",
    shortname = "kbv",
    namespaced,
    status = "KafkaBackupValidationStatus",
    derive = "PartialEq",
    doc = "Validates a Kafka backup and produces an evidence report."
)]
#[kube(printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"))]
#[kube(printcolumn(
    name = "Result",
    type_ = "string",
    json_path = ".status.validationResult"
))]
#[kube(printcolumn(name = "Checks", type_ = "integer", json_path = ".status.checksTotal"))]
#[kube(printcolumn(
    name = "Last Validation",
    type_ = "date",
    json_path = ".status.lastValidationTime"
))]
#[kube(printcolumn(
    name = "Next",
    type_ = "string",
    json_path = ".status.nextScheduledValidation"
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
pub struct KafkaBackupValidationSpec {
    /// The backup to validate. Required (`name`).
    #[garde(dive)]
    pub backup_ref: BackupRef,

    /// A cluster holding a restored copy, for checks that compare against one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub kafka_cluster: Option<KafkaClusterSpec>,

    /// Which checks run. Default: messageCount, offsetRange and consumerGroupOffsets enabled.
    #[serde(default)]
    #[garde(dive)]
    pub checks: ChecksSpec,

    /// Evidence report. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub evidence: Option<EvidenceSpec>,

    /// Where to send results. Default: nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub notifications: Option<NotificationsSpec>,

    /// Cron expression to re-run the validation (same syntax as KafkaBackup.schedule). Absent =
    /// run once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_cron)))]
    pub schedule: Option<String>,

    /// IANA time zone of `schedule`. Default UTC. (ours)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(crate::api::checks::check_time_zone)))]
    pub time_zone: Option<String>,

    /// Start no new scheduled validations. Default false.
    #[serde(default)]
    pub suspend: bool,

    /// Run the validation's reading of the backup (its restore check) in process (default) or
    /// as Kubernetes Jobs, and the Jobs' Pod settings (ours). Default: in process.
    #[serde(default, skip_serializing_if = "ExecutionSpec::is_default")]
    #[garde(dive)]
    pub execution: ExecutionSpec,
}

/// `checks`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct ChecksSpec {
    /// Record counts in the backup versus the source offsets it claims to cover.
    #[serde(default)]
    #[garde(dive)]
    pub message_count: MessageCountCheck,
    /// Every partition's stored offsets are contiguous and within the recorded range.
    #[serde(default)]
    pub offset_range: OffsetRangeCheck,
    /// The consumer-group snapshot covers the named groups with offsets inside the backup.
    #[serde(default)]
    #[garde(dive)]
    pub consumer_group_offsets: ConsumerGroupOffsetsCheck,
    /// Extra checks: POST the validation context to these URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(dive)]
    pub custom_webhooks: Vec<WebhookCheck>,
    /// Every object of the run carries its S3 Object Lock retention (ours; S3 only).
    #[serde(default)]
    pub object_lock: ObjectLockCheck,
}

/// `checks.objectLock` (ours): every object the run needs (manifest, segments, indexes) is
/// locked (HeadObject) in the mode and until at least the date its manifest records
/// (`storage.s3.objectLock`; docs/security.md). Needs `s3:GetObjectRetention`. A run written
/// without `objectLock` fails it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectLockCheck {
    /// Default false.
    #[serde(default)]
    pub enabled: bool,
}

/// `checks.messageCount`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct MessageCountCheck {
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Missing records tolerated before the check fails (records). Default 0.
    #[serde(default)]
    pub fail_threshold: u64,
    /// Only these topics (names or globs). Default: all in the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(custom(crate::api::checks::check_topic_pattern)))]
    pub topics: Vec<String>,
}

impl Default for MessageCountCheck {
    fn default() -> Self {
        MessageCountCheck {
            enabled: true,
            fail_threshold: 0,
            topics: Vec::new(),
        }
    }
}

/// `checks.offsetRange`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetRangeCheck {
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for OffsetRangeCheck {
    fn default() -> Self {
        OffsetRangeCheck { enabled: true }
    }
}

/// `checks.consumerGroupOffsets`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct ConsumerGroupOffsetsCheck {
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Groups to check. Default: every group in the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(inner(length(min = 1)))]
    pub consumer_groups: Vec<String>,
}

impl Default for ConsumerGroupOffsetsCheck {
    fn default() -> Self {
        ConsumerGroupOffsetsCheck {
            enabled: true,
            consumer_groups: Vec::new(),
        }
    }
}

/// `checks.customWebhooks[]`: a check delegated to an HTTP endpoint. The check passes when the
/// response status equals `expectedStatusCode`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct WebhookCheck {
    /// Check name (unique within the list). Required.
    #[garde(length(min = 1))]
    pub name: String,
    /// `http://` or `https://` URL. Required.
    #[garde(custom(crate::api::checks::check_http_url))]
    pub url: String,
    /// Request timeout, seconds. Default 120.
    #[serde(default = "default_webhook_timeout_secs")]
    #[garde(range(min = 1))]
    pub timeout_secs: u64,
    /// Status code meaning "pass". Default 200.
    #[serde(default = "default_expected_status_code")]
    #[garde(range(min = 100, max = 599))]
    pub expected_status_code: u16,
}

/// `evidence`: the evidence report (canonical JSON, optional PDF, optional detached ECDSA P-256
/// signature), stored under `evidence-reports/<id>/` in `storage` (default: the backup's
/// storage).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct EvidenceSpec {
    /// Report formats: json, pdf. Default `[json]`.
    #[serde(default = "default_evidence_formats")]
    #[garde(length(min = 1))]
    pub formats: Vec<EvidenceFormat>,
    /// Signing of the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub signing: Option<SigningSpec>,
    /// Where to store reports. Default: the backup's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub storage: Option<StorageSpec>,
    /// Delete reports older than this many days. Default 90.
    #[serde(default = "default_evidence_retention_days")]
    #[garde(range(min = 1))]
    pub retention_days: u32,
}

/// Evidence report format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceFormat {
    /// Canonical JSON.
    Json,
    /// PDF rendering of the JSON report.
    Pdf,
}

/// `evidence.signing`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct SigningSpec {
    /// Sign the report. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// ECDSA P-256 key pair, PEM. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub key_secret: Option<KeySecretRef>,
}

/// `evidence.signing.keySecret`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct KeySecretRef {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the private key, PEM (PKCS#8 or SEC1). Default `private.pem`.
    #[serde(default = "default_private_key_key")]
    pub private_key_key: String,
    /// Key holding the public key, PEM. Default `public.pem`.
    #[serde(default = "default_public_key_key")]
    pub public_key_key: String,
}

/// `notifications`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct NotificationsSpec {
    /// Also notify when the validation passes (Slack: a message; PagerDuty: a `resolve` of
    /// the incident a failure opened). Default false: failures only. (ours)
    #[serde(default)]
    pub on_success: bool,
    /// Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub slack: Option<SlackNotification>,
    /// PagerDuty Events API v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub pagerduty: Option<PagerDutyNotification>,
}

/// `notifications.slack`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct SlackNotification {
    /// Secret holding the incoming-webhook URL (key default `webhook-url`).
    #[garde(dive)]
    pub webhook_secret: SlackWebhookSecret,
}

/// `notifications.slack.webhookSecret`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct SlackWebhookSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the webhook URL. Default `webhook-url`.
    #[serde(default = "default_slack_key")]
    pub key: String,
}

/// `notifications.pagerduty`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct PagerDutyNotification {
    /// Secret holding the integration routing key (key default `routing-key`).
    #[garde(dive)]
    pub routing_key_secret: PagerDutyRoutingKeySecret,
    /// Event severity: critical, error (default), warning, info.
    #[serde(default)]
    pub severity: PagerDutySeverity,
}

/// `notifications.pagerduty.routingKeySecret`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct PagerDutyRoutingKeySecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the routing key. Default `routing-key`.
    #[serde(default = "default_pagerduty_key")]
    pub key: String,
}

/// PagerDuty event severity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    /// critical
    Critical,
    /// error (default)
    #[default]
    Error,
    /// warning
    Warning,
    /// info
    Info,
}

/// `status.phase` of a KafkaBackupValidation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackupValidationPhase {
    /// Accepted, not started (or waiting for the next scheduled run).
    Pending,
    /// Checks running.
    Running,
    /// Checks finished (see `validationResult` for the verdict).
    Completed,
    /// The validation itself could not run; see `message`.
    Failed,
}

/// Verdict of a validation or of one check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ValidationOutcome {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Passed with warnings.
    Warn,
    /// Not run (disabled or not applicable).
    Skip,
}

/// Status of a KafkaBackupValidation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBackupValidationStatus {
    /// Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupValidationPhase>,
    /// message, conditions, observedGeneration, planHash, startTime, completionTime.
    #[serde(flatten)]
    pub common: StatusHeader,
    /// The backup run validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Overall verdict: Pass, Fail, Warn or Skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_result: Option<ValidationOutcome>,
    /// Checks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_total: Option<u32>,
    /// Checks passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_passed: Option<u32>,
    /// Checks failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_failed: Option<u32>,
    /// Checks that passed with warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_warned: Option<u32>,
    /// One entry per check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_results: Vec<CheckResult>,
    /// Storage key of the evidence report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_report_path: Option<String>,
    /// Whether the report was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_report_signed: Option<bool>,
    /// When the last validation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation_time: Option<Time>,
    /// When the schedule fires next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_validation: Option<Time>,
    /// The schedule tick the last run started for: the schedule's anchor (a tick is never run
    /// twice). (ours)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The last validations, newest first (at most 10). (ours)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ValidationRun>,
    /// **ours**: the shards of the current/last restore check run as Jobs
    /// (`spec.execution.mode: job`), by index: each one's phase, Job and partition steps.
    /// Absent in process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<super::execution::ShardStatus>,
}

/// One past validation in `status.history`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRun {
    /// The evidence report id.
    pub report_id: String,
    /// The backup run validated.
    pub backup_id: String,
    /// Pass or Fail.
    pub result: ValidationOutcome,
    /// When it finished.
    pub finished_at: Time,
    /// Storage key of the evidence report.
    pub evidence_report_path: String,
}

/// Outcome of one check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Check name (`messageCount`, `offsetRange`, `consumerGroupOffsets`, or a webhook name).
    pub check_name: String,
    /// Pass, Fail, Warn or Skip.
    pub outcome: ValidationOutcome,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Duration, milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}
