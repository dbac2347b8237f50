//! The API: custom resources of group `kafka.oso.sh`, version `v1alpha1`, all namespaced, each
//! with the `status` subresource, printer columns and a short name:
//!
//! | kind | short | module |
//! |---|---|---|
//! | [`KafkaBackup`] | kb | [`backup`] |
//! | [`KafkaRestore`] | kr | [`restore`] |
//! | [`KafkaOffsetReset`] | kor | [`offset_reset`] |
//! | [`KafkaOffsetRollback`] | korb | [`offset_rollback`] |
//! | [`KafkaBackupValidation`] | kbv | [`validation`] |
//!
//! Shared blocks (`kafkaCluster`, `storage`, `rateLimiting`, `circuitBreaker`, `backupRef`, the
//! status header and conditions) are in [`common`]; `execution` (in process or as Jobs) in
//! [`execution`]. Field names are camelCase in YAML; unknown
//! fields are errors. Units are in the field names (`...Ms` milliseconds, `...Secs` seconds,
//! `...Bytes` bytes); time fields are RFC 3339, epoch fields milliseconds.
//!
//! Around the types:
//! - [`load_documents`]: multi-document YAML -> [`Document`]s (the five kinds and `Secret`s).
//! - [`validate`]: `validate_backup` & co., returning [`ValidationErrors`] that name fields;
//!   `validate_backup` and `validate_restore` return the normalised input compile takes
//!   ([`validated`]: [`ValidatedBackup`], [`ValidatedRestore`]).
//! - [`checks`]: the leaf checks of single values the types' garde attributes call (a leaf:
//!   it names no other file of `api`).
//! - [`Secrets`]: Secret values for runs outside a cluster.
//! - [`crd::all_crds_yaml`]: the CRDs as installed (`crds/kafka.oso.sh_crds.yaml`).

#![warn(missing_docs)]

pub mod backup;
pub mod checks;
pub mod common;
pub mod crd;
pub mod docs;
pub mod error;
pub mod execution;
pub mod offset_reset;
pub mod offset_rollback;
pub mod restore;
pub mod secrets;
pub mod validate;
pub mod validated;
pub mod validation;

pub use backup::{
    BackupPhase, BackupRunRecord, CheckpointSpec, Compression, HISTORY_LIMIT, KafkaBackup,
    KafkaBackupSpec, KafkaBackupStatus, RUN_NOW_ANNOTATION, RetentionSpec, RetentionStatus,
    STATUS_TOPICS_LIMIT, TopicRecoverability,
};
pub use common::{
    AwsKmsSpec, AzureCredentialsSecret, AzureSasTokenSecret, AzureServicePrincipalSecret,
    AzureSpec, BackupRef, CaSecretRef, CircuitBreaker, Condition, ConditionStatus, ConnectionSpec,
    DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS, DEFAULT_RESTORE_MAX_CONCURRENT_PARTITIONS,
    EncryptionSpec, FilesystemSpec, GcsCredentialsSecret, GcsSpec, KafkaClusterSpec,
    ObjectLockMode, ObjectLockSpec, PvcSpec, RateLimiting, S3CredentialsSecret, S3Spec,
    SaslMechanism, SaslSecretRef, SecretName, SecurityProtocol, StatusHeader, StorageSpec,
    StorageType, TlsSecretRef,
};
pub use crd::{all_crds, all_crds_yaml};
pub use docs::{Document, load_and_validate, load_documents};
pub use error::{ApiError, ParseError};
pub use execution::{ExecutionMode, ExecutionSpec, ShardStatus};
pub use offset_reset::{
    GroupResult, KafkaOffsetReset, KafkaOffsetResetSpec, KafkaOffsetResetStatus, OffsetMappingRef,
    OffsetResetPhase, ResetStrategy,
};
pub use offset_rollback::{
    KafkaOffsetRollback, KafkaOffsetRollbackSpec, KafkaOffsetRollbackStatus, OffsetRollbackPhase,
    RollbackVerification, SnapshotRef,
};
pub use restore::{
    KafkaRestore, KafkaRestoreSpec, KafkaRestoreStatus, PartitionOffsetBound, PitrSpec,
    RepartitionStrategy, Repartitioning, RestoreOffsetReset, RestorePhase, RollbackSpec,
    RollbackStatus,
};
pub use secrets::Secrets;
pub use validate::{
    FieldError, ValidationErrors, validate_backup, validate_backup_validation,
    validate_offset_reset, validate_offset_rollback, validate_restore,
};
pub use validated::{
    BackupCut, Execution, OffsetBounds, RestoreGroups, ValidatedBackup, ValidatedRestore,
};
pub use validation::{
    BackupValidationPhase, CheckResult, ChecksSpec, ConsumerGroupOffsetsCheck, EvidenceFormat,
    EvidenceSpec, KafkaBackupValidation, KafkaBackupValidationSpec, KafkaBackupValidationStatus,
    KeySecretRef, MessageCountCheck, NotificationsSpec, OffsetRangeCheck, PagerDutyNotification,
    PagerDutyRoutingKeySecret, PagerDutySeverity, SigningSpec, SlackNotification,
    SlackWebhookSecret, ValidationOutcome, WebhookCheck,
};

/// API group of every kind: `kafka.oso.sh`.
pub const GROUP: &str = "kafka.oso.sh";
/// API version of every kind: `v1alpha1`.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests: `kafka.oso.sh/v1alpha1`.
pub const API_VERSION: &str = "kafka.oso.sh/v1alpha1";
