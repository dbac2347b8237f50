//! The Kafka layer's error type.
use kafka_protocol::error::ResponseError;

/// Every failure of the Kafka layer. Messages name the broker, API and topic-partition
/// involved, and where the user can fix something, how.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// TCP connect failed or timed out.
    #[error(
        "cannot connect to Kafka broker {broker}: {reason} (check kafkaCluster.bootstrapServers and that the broker is reachable from here)"
    )]
    Connect { broker: String, reason: String },
    /// The connection broke while a request was in flight.
    #[error("connection to broker {broker} lost: {reason}")]
    Io { broker: String, reason: String },
    /// The broker did not answer in `requestTimeoutMs`.
    #[error(
        "request {api} to broker {broker} timed out after {timeout_ms} ms (kafkaCluster.connection.requestTimeoutMs)"
    )]
    Timeout {
        broker: String,
        api: String,
        timeout_ms: u64,
    },
    /// One attempt of a request did not finish in `circuitBreaker.operationTimeoutMs`.
    #[error("{api} did not finish in {timeout_ms} ms (circuitBreaker.operationTimeoutMs)")]
    OperationTimeout { api: String, timeout_ms: u64 },
    /// TLS setup or handshake failed.
    #[error(
        "TLS with broker {broker} failed: {reason} (check kafkaCluster.tlsSecret / caSecret and securityProtocol)"
    )]
    Tls { broker: String, reason: String },
    /// SASL authentication failed.
    #[error(
        "SASL authentication with broker {broker} failed: {reason} (check kafkaCluster.saslSecret and its mechanism)"
    )]
    Sasl { broker: String, reason: String },
    /// A response or record batch could not be decoded, or an API is missing.
    #[error("protocol error with broker {broker}: {reason}")]
    Protocol { broker: String, reason: String },
    /// The broker answered with an error code.
    #[error("{api} for {resource} failed: {error} (Kafka error code {code})")]
    Broker {
        api: String,
        resource: String,
        error: ResponseError,
        code: i16,
    },
    /// A topic the plan needs does not exist.
    #[error("topic {0:?} does not exist on the cluster")]
    UnknownTopic(String),
    /// Anything else (configuration, invariant violated).
    #[error("{0}")]
    Other(String),
}

impl KafkaError {
    /// Builds a [`KafkaError::Broker`] from a non-zero error code.
    pub fn broker(api: &str, resource: impl Into<String>, code: i16) -> Self {
        KafkaError::Broker {
            api: api.to_string(),
            resource: resource.into(),
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            code,
        }
    }

    /// The failure category, a stable label for logs, status and metrics:
    /// `broker-unreachable` (connect, connection lost, timeouts), `broker-refused` (an error
    /// code in a response), `broker-tls`, `broker-auth`, `kafka` (anything else).
    pub fn category(&self) -> &'static str {
        match self {
            KafkaError::Connect { .. }
            | KafkaError::Io { .. }
            | KafkaError::Timeout { .. }
            | KafkaError::OperationTimeout { .. } => "broker-unreachable",
            KafkaError::Broker { .. } | KafkaError::UnknownTopic(_) => "broker-refused",
            KafkaError::Tls { .. } => "broker-tls",
            KafkaError::Sasl { .. } => "broker-auth",
            _ => "kafka",
        }
    }

    /// True when a retry (after a metadata refresh) may succeed: connection loss, timeouts and
    /// the error codes the Kafka protocol guide marks retriable (NOT_LEADER_OR_FOLLOWER,
    /// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_COORDINATOR, ...).
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::Io { .. }
            | KafkaError::Timeout { .. }
            | KafkaError::OperationTimeout { .. }
            | KafkaError::Connect { .. } => true,
            KafkaError::Broker { error, .. } => error.is_retriable(),
            _ => false,
        }
    }

    /// True when the cached metadata (leaders, coordinators) is probably stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            KafkaError::Io { .. }
            | KafkaError::Connect { .. }
            | KafkaError::Timeout { .. }
            | KafkaError::OperationTimeout { .. } => true,
            KafkaError::Broker { error, .. } => matches!(
                error,
                ResponseError::NotLeaderOrFollower
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
            ),
            _ => false,
        }
    }
}

/// Result alias of the Kafka layer.
pub type Result<T, E = KafkaError> = std::result::Result<T, E>;
