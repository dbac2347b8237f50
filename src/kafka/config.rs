//! Resolved client settings (secrets already read), built by `observe` from a CR's
//! `kafkaCluster` block.
use std::time::Duration;

/// SASL mechanisms we speak (KIP-43 handshake, KIP-152 SaslAuthenticate; SCRAM is RFC 5802/7677).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The IANA mechanism name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials.
#[derive(Clone)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS material, PEM encoded. Without `ca_pem` the Mozilla roots (webpki-roots) are not
/// bundled: a CA must be given for TLS (brokers in Kubernetes use private CAs).
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// PEM CA bundle the broker certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain, for mTLS.
    pub cert_pem: Option<Vec<u8>>,
    /// PEM private key of the client certificate, for mTLS.
    pub key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.cert_pem.is_some())
            .finish()
    }
}

/// Default time without progress, or without an answer from a broker, before a run warns
/// (seconds); `KBO_STALL_WARNING_SECS` overrides it.
pub const STALL_WARNING_SECS: u64 = 30;

/// The stall warning time: `KBO_STALL_WARNING_SECS` when set to a positive integer, else
/// [`STALL_WARNING_SECS`]. Read once per process.
pub fn stall_warning_after() -> Duration {
    static AFTER: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *AFTER.get_or_init(|| {
        let secs = std::env::var("KBO_STALL_WARNING_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(STALL_WARNING_SECS);
        Duration::from_secs(secs)
    })
}

/// Everything a [`crate::kafka::KafkaClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Seed brokers, `host:port`.
    pub bootstrap: Vec<String>,
    /// Client id sent in every request header.
    pub client_id: String,
    pub tls: Option<TlsConfig>,
    pub sasl: Option<SaslConfig>,
    /// Connections kept per broker (`connection.connectionsPerBroker`, default 4).
    pub connections_per_broker: usize,
    /// Per-request timeout (`connection.requestTimeoutMs`, default 30 s).
    pub request_timeout: Duration,
    /// TCP connect timeout (`connection.connectTimeoutMs`, default 10 s).
    pub connect_timeout: Duration,
    /// SO_KEEPALIVE with idle time and interval (`connection.tcpKeepalive`, `keepaliveTimeSecs`,
    /// `keepaliveIntervalSecs`); `None` = off.
    pub keepalive: Option<(Duration, Duration)>,
    /// TCP_NODELAY (`connection.tcpNodelay`, default true).
    pub nodelay: bool,
    /// Attempts for a retriable failure, including the first (default 6).
    pub retries: usize,
    /// The circuit breaker of retried requests (`circuitBreaker`); `None` = off.
    pub breaker: Option<super::BreakerConfig>,
}

impl ClientConfig {
    /// Plaintext settings with the documented defaults.
    pub fn plaintext(bootstrap: Vec<String>) -> Self {
        ClientConfig {
            bootstrap,
            client_id: "kafka-backup-operator".into(),
            tls: None,
            sasl: None,
            connections_per_broker: 4,
            request_timeout: Duration::from_millis(30_000),
            connect_timeout: Duration::from_millis(10_000),
            keepalive: Some((Duration::from_secs(60), Duration::from_secs(20))),
            nodelay: true,
            retries: 6,
            breaker: None,
        }
    }
}
