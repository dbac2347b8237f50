//! Backup format v1 (specified in `docs/format.md`): record batches as fetched, grouped in
//! checksummed blocks inside segment files, a per-segment index, and a self-describing
//! manifest per run.
pub mod batch;
#[cfg(feature = "runtime")]
pub mod checkpoint;
#[cfg(feature = "runtime")]
pub mod keyring;
pub mod layout;
pub mod manifest;
pub mod repository;
pub mod seal;
pub mod segment;

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
