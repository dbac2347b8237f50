//! kafka-backup-operator: back up Kafka topics to object storage and restore them.
//!
//! The modules mirror the flow every kind follows (see `docs/architecture.md`):
//! `api` (the CRs) -> `observe` (read-only I/O) -> `plan` (pure compile) -> `exec` (steps) ->
//! `report` (tables, summaries; `cli::report` draws progress on a terminal). `kafka`, `storage` and `format` are the I/O layers the
//! observer and the executor use.
pub mod api;
#[cfg(feature = "runtime")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod exec;
pub mod facts;
pub mod format;
#[cfg(feature = "runtime")]
pub mod kafka;
#[cfg(feature = "runtime")]
pub mod kinds;
#[cfg(feature = "runtime")]
pub mod observe;
#[cfg(feature = "runtime")]
pub mod operator;
pub mod plan;
pub mod redact;
#[cfg(feature = "runtime")]
pub mod report;
#[cfg(feature = "runtime")]
pub mod storage;

/// Installs rustls' ring provider as the process default, once; later calls do nothing.
/// Needed before any TLS connection made by a library that asks rustls for the process
/// default (the kube client talking to the API server over https): with more than one
/// provider compiled in, rustls cannot pick one by itself and panics.
#[cfg(feature = "runtime")]
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
