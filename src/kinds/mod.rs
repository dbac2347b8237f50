//! One home per kind's run, called by the CLI, the plugin and the operator alike: each kind's
//! file has `prepare` (dereference, observe, validate into a normalised input, compile: pure
//! after the observation) and `run` (execute the compiled plan, return an outcome that the
//! callers render through `report` or write into status). Nothing above this module runs a
//! plan by itself; nothing below it (exec, plan, observe) knows about resources' raw specs
//! beyond what `prepare` hands down.
//!
//! | file | kind |
//! |---|---|
//! | `backup.rs` | KafkaBackup (and `retention.rs`, its retention after a run) |
//! | `restore.rs` | KafkaRestore |
//! | `offset_reset.rs`, `offset_rollback.rs` | KafkaOffsetReset, KafkaOffsetRollback |
//! | `validation.rs` | KafkaBackupValidation (with `scratch.rs`, its restore checks' scratch) |
//! | `shards.rs` | the launcher of a sharded run's shards (`execution.mode: job`), for every kind |
//! | `encryption.rs`, `owner.rs` | rules every kind applies to a repository: encrypted runs, ownership |
use opendal::Operator;

use crate::api::ApiError;
use crate::exec::ExecError;
use crate::observe::ObserveError;
use crate::plan::CompileError;
use crate::storage::{StorageError, StorageTarget};

pub mod backup;
pub mod encryption;
pub mod offset_reset;
pub mod offset_rollback;
pub mod owner;
pub mod restore;
pub mod retention;
pub mod scratch;
pub mod shards;
pub mod validation;

/// Errors of the flow, one variant per layer.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("the plan cannot be compiled:\n{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl KindError {
    /// True when running again later may succeed: a broker or the storage was unreachable or
    /// answered with a retriable error. Invalid specs and refused plans are never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            KindError::Observe(ObserveError::Kafka(e)) => e.is_retriable(),
            KindError::Observe(ObserveError::Storage(e)) => e.is_transient(),
            KindError::Exec(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The failure category (see [`ExecError::category`]); `input` for a spec or setting that
    /// cannot work, `plan-refused` for a plan that cannot be compiled.
    pub fn category(&self) -> &'static str {
        match self {
            KindError::Api(_) => "input",
            KindError::Observe(ObserveError::Api(_))
            | KindError::Observe(ObserveError::Config { .. }) => "input",
            KindError::Observe(ObserveError::Kafka(e)) => e.category(),
            KindError::Observe(ObserveError::Storage(e)) => e.category(),
            KindError::Compile(_) => "plan-refused",
            KindError::Exec(e) => e.category(),
        }
    }

    /// True when the run was cancelled (Ctrl-C, the resource deleted, the lease lost): not a
    /// failure; a backup resumes from its checkpoint, a restore from its journal.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, KindError::Exec(ExecError::Cancelled))
    }

    /// True when the backup repository holds no complete run of the restore's backup yet.
    pub fn no_complete_run(&self) -> bool {
        matches!(
            self,
            KindError::Observe(ObserveError::Storage(StorageError::NoCompleteRun { .. }))
        )
    }
}

impl From<crate::kafka::KafkaError> for KindError {
    fn from(e: crate::kafka::KafkaError) -> Self {
        KindError::Observe(e.into())
    }
}
impl From<crate::storage::StorageError> for KindError {
    fn from(e: crate::storage::StorageError) -> Self {
        KindError::Observe(e.into())
    }
}

/// How storage is opened: `ReadOnly` never creates anything (plan, dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

pub(crate) fn open(target: &StorageTarget, access: Access) -> Result<Operator, KindError> {
    Ok(match access {
        Access::ReadOnly => target.open_read_only()?,
        Access::ReadWrite => target.operator()?,
    })
}

/// The repository a reader of backup `name` (a KafkaRestore, a KafkaBackupValidation) opens:
/// its inline `backupRef.storage`, else the storage of the KafkaBackup, which must then be
/// among the inputs. Errors name `spec.backupRef.name` and both fixes.
pub(crate) fn backup_storage(
    inline: Option<&crate::api::common::StorageSpec>,
    name: &str,
    backup: Option<&crate::api::KafkaBackup>,
) -> Result<crate::api::common::StorageSpec, KindError> {
    match (inline, backup) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(kb)) => Ok(kb.spec.storage.clone()),
        (None, None) => Err(ObserveError::Config {
            field: "spec.backupRef.name".into(),
            message: format!(
                "KafkaBackup {name:?} is not among the given files and backupRef.storage is not set: add the KafkaBackup's YAML with -f, or give backupRef.storage"
            ),
        }
        .into()),
    }
}
