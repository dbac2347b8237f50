//! A thin async Kafka client on top of the `kafka-protocol` codec crate.
//!
//! Why our own and not samsa/rskafka/rdkafka: see `docs/decisions.md`. In short, a backup tool
//! needs raw record batches (fetch and produce them byte for byte) and every admin API the
//! backup and restore plans touch, and the existing clients lose fidelity or hide batches.
//!
//! Layers: [`conn`] (one TCP/TLS connection, SASL, ApiVersions negotiation, pipelined
//! requests by correlation id) -> [`client`] (connection pool per broker, metadata cache,
//! leader routing, retries) -> typed operations in [`ops`] (and [`logdirs`]).
pub mod breaker;
pub mod client;
pub mod config;
pub mod conn;
pub mod error;
pub mod logdirs;
pub mod ops;
pub mod sasl;
pub mod tls;

pub use breaker::BreakerConfig;
pub use client::KafkaClient;
pub use config::{ClientConfig, SaslConfig, SaslMechanism, TlsConfig};
pub use error::KafkaError;
