//! Step 3 of the flow: execute a compiled plan. A generic engine ([`engine`]) runs steps with
//! bounded concurrency, shared rate limits and cancellation, and reports progress; the backup
//! and restore executors supply the steps. Nothing here runs inside a Kubernetes reconcile.
pub mod backup;
pub mod engine;
pub mod evidence;
pub mod fence;
pub mod groups;
pub mod keys;
pub mod lock;
pub mod notify;
mod repartition;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod validate;
pub mod verify_restore;

pub use backup::run_backup;
pub use engine::{Cancel, Event, ExecContext, Limits, Progress};
pub use restore::{
    RestoreJournal, RestoreOutcome, RestoreStart, RollbackOutcome, load_journal, run_restore,
};
pub use retention::run_retention;

use crate::format::FormatError;
use crate::kafka::KafkaError;
use crate::storage::StorageError;

impl ExecError {
    /// True when running again later may succeed (broker or storage unavailable for a while);
    /// false for bad data, bad settings and refusals.
    pub fn is_transient(&self) -> bool {
        match self {
            ExecError::Kafka(e) => e.is_retriable(),
            ExecError::Storage(e) => e.is_transient(),
            ExecError::Partial { source, .. } => source.is_transient(),
            // the other writer finishes, or its lock expires
            ExecError::Locked(_) => true,
            _ => false,
        }
    }

    /// The failure category, a stable label (logs, status, metrics): the Kafka or storage
    /// category, `integrity` for data that fails its checks, `locked`, `cancelled`, `failed`
    /// for a refusal; a partial failure has the category of its first failure.
    pub fn category(&self) -> &'static str {
        match self {
            ExecError::Kafka(e) => e.category(),
            ExecError::Storage(e) => e.category(),
            ExecError::Format(_) => "integrity",
            ExecError::Cancelled => "cancelled",
            ExecError::Failed(_) => "failed",
            ExecError::Locked(_) => "locked",
            ExecError::Partial { source, .. } => source.category(),
        }
    }
}

/// Errors of the execute layer.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The run was stopped (Ctrl-C, CR deleted, lease lost). A backup resumes from its
    /// checkpoint next time.
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    /// Another writer holds the repository lock or a restore's target fence (or took it over
    /// from this run); the message says which (`repository locked: ...`, `target locked: ...`).
    #[error("{0}")]
    Locked(String),
    /// Some steps completed and some failed; `message` lists both, `source` is the first
    /// failure (whose kind decides whether a later attempt may succeed).
    #[error("{message}")]
    Partial {
        message: String,
        source: Box<ExecError>,
    },
}
