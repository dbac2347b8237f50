//! Step 3 of the flow: execute a compiled plan. A generic engine ([`engine`]) runs steps with
//! bounded concurrency, shared rate limits and cancellation, and reports progress; the backup
//! and restore executors supply the steps. Nothing here runs inside a Kubernetes reconcile.
//!
//! exec runs plans and nothing else: it takes compiled, plan-owned values (`crate::plan`) and
//! talks to Kafka (`crate::kafka`) and storage (`crate::storage`, `crate::format`); it never
//! reads a resource (`api`) nor observes to decide (`observe`): what it must read to act (the
//! groups' commits before a snapshot, a target's end before a resume) it reads from Kafka
//! directly, and what a decision needs from that read is compiled by a pure plan function.
pub mod backup;
pub mod engine;
pub mod evidence;
pub mod fence;
pub mod groups;
pub mod keys;
pub mod lock;
pub mod notify;
mod repartition;
mod replay;
pub mod repository;
pub mod restore;
pub mod restore_shard;
pub mod retention;
pub mod shard;
pub mod validate;
pub mod verify_restore;

pub use backup::run_backup;
pub use engine::{Cancel, Event, ExecContext, Limits, Progress, ShardLive};
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
    /// category, `integrity` for data or a document that fails its checks, `input` for a
    /// setting the run cannot work with, `conflict` for a target or repository another writer
    /// changed or owns, `groups-not-carried`, `locked`, `cancelled`, `failed` for any other
    /// refusal; a partial failure has the category of its first failure.
    pub fn category(&self) -> &'static str {
        match self {
            ExecError::Kafka(e) => e.category(),
            ExecError::Storage(e) => e.category(),
            ExecError::Format(_) | ExecError::Integrity(_) => "integrity",
            ExecError::Input(_) => "input",
            ExecError::Conflict(_) => "conflict",
            ExecError::GroupsNotCarried(_) => "groups-not-carried",
            ExecError::Cancelled => "cancelled",
            ExecError::Failed(_) => "failed",
            ExecError::Locked(_) => "locked",
            ExecError::ShardsFailed {
                oom_killed: true, ..
            } => "oom-killed",
            ExecError::ShardsFailed { .. } => "shard-failed",
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
    /// A setting the run cannot work with, found when the run used it: a state storage it
    /// cannot write, a snapshot file it cannot read or write, a signing key that cannot sign,
    /// a dry-run plan handed to the executor. The message names the field and the fix.
    #[error("{0}")]
    Input(String),
    /// The target or the repository is not what the plan saw, or belongs to another writer:
    /// records another restore or producer wrote to a target partition, a target partition
    /// purged meanwhile, a repository owned by another backup. The message names the fix.
    #[error("{0}")]
    Conflict(String),
    /// A stored document that fails its checks (not JSON, another format, its checksum).
    #[error("{0}")]
    Integrity(String),
    /// A restore's data is in but some consumer groups were not carried over (refused with
    /// live members, or failed); running it again retries only the groups. The message is the
    /// one the restore's kind builds from [`RestoreOutcome::failed_groups`] (the operator's
    /// status already uses this category).
    #[error("{0}")]
    GroupsNotCarried(String),
    /// Any other refusal (no better category).
    #[error("{0}")]
    Failed(String),
    /// Another writer holds the repository lock or a restore's target fence (or took it over
    /// from this run); the message says which (`repository locked: ...`, `target locked: ...`).
    #[error("{0}")]
    Locked(String),
    /// Shards of a sharded run (`execution.mode: job`) failed after their retries; `message`
    /// names each, its partitions and why. `oom_killed`: one of them exceeded its memory limit
    /// (category `oom-killed`, else `shard-failed`).
    #[error("{message}")]
    ShardsFailed { message: String, oom_killed: bool },
    /// Some steps completed and some failed; `message` lists both, `source` is the first
    /// failure (whose kind decides whether a later attempt may succeed).
    #[error("{message}")]
    Partial {
        message: String,
        source: Box<ExecError>,
    },
}
