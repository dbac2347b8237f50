//! Backup format v2 (v3 for encrypted runs, v1 read; specified in `docs/format.md`): record
//! batches as fetched, grouped in checksummed blocks inside segment files, a per-segment
//! index, and a self-describing manifest per run.
//!
//! The documents, their codecs and their checks are pure (no I/O: built without the `runtime`
//! feature too, for the fuzz targets): `batch`, `layout`, `manifest`, `recompress`,
//! `repository`, `seal`, `segment`. The runtime-only files read and write them through
//! `storage` (objects by key): `checkpoint`, `keyring`, `repository_io`, `segment_io`.
pub mod batch;
#[cfg(feature = "runtime")]
pub mod checkpoint;
#[cfg(feature = "runtime")]
pub mod keyring;
pub mod layout;
pub mod manifest;
pub mod recompress;
pub mod repository;
#[cfg(feature = "runtime")]
pub mod repository_io;
pub mod seal;
pub mod segment;
#[cfg(feature = "runtime")]
pub mod segment_io;

/// Errors of the format layer.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Bytes that do not parse as what they claim to be (bad CRC, short block, bad varint).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Valid Kafka data this format does not handle (message format v0/v1).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A manifest or index from a newer format version, or not ours.
    #[error("{0}")]
    Version(String),
    /// Encrypted data whose key is not at hand (docs/security.md).
    #[error("{0}")]
    Key(String),
}

/// A format error met by a reader of objects travels as the storage error's content failure
/// ([`crate::storage::StorageError::Content`]): the same message, category `integrity`, never
/// transient. So a reader of documents returns one error type, and storage names no format.
#[cfg(feature = "runtime")]
impl From<FormatError> for crate::storage::StorageError {
    fn from(e: FormatError) -> Self {
        crate::storage::StorageError::Content(Box::new(e))
    }
}
