//! Blocks shared by several kinds: `kafkaCluster`, `storage`, `rateLimiting`, `circuitBreaker`,
//! and the status header (`phase`-independent fields and `conditions`).
//!
//! Field names are camelCase in YAML. Every struct here rejects unknown fields, so a typo such as
//! `bootstrapServer` is an error that names the field instead of being silently ignored.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// serde default functions (also make the generated OpenAPI schema show the defaults)
// ---------------------------------------------------------------------------------------------

pub(crate) fn default_true() -> bool {
    true
}
fn default_ca_key() -> String {
    "ca.crt".to_string()
}
fn default_username_key() -> String {
    "username".to_string()
}
fn default_password_key() -> String {
    "password".to_string()
}
fn default_keepalive_time_secs() -> u32 {
    60
}
fn default_keepalive_interval_secs() -> u32 {
    20
}
fn default_connections_per_broker() -> u32 {
    4
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_string()
}
fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_string()
}
fn default_account_key_key() -> String {
    "AZURE_STORAGE_KEY".to_string()
}
fn default_sas_token_key() -> String {
    "AZURE_SAS_TOKEN".to_string()
}
fn default_client_id_key() -> String {
    "AZURE_CLIENT_ID".to_string()
}
fn default_tenant_id_key() -> String {
    "AZURE_TENANT_ID".to_string()
}
fn default_client_secret_key() -> String {
    "AZURE_CLIENT_SECRET".to_string()
}
fn default_service_account_json_key() -> String {
    "SERVICE_ACCOUNT_JSON".to_string()
}
fn default_failure_threshold() -> u32 {
    5
}
fn default_reset_timeout_secs() -> u64 {
    60
}
fn default_success_threshold() -> u32 {
    3
}
fn default_operation_timeout_ms() -> u64 {
    30_000
}

// ---------------------------------------------------------------------------------------------
// kafkaCluster
// ---------------------------------------------------------------------------------------------

/// `kafkaCluster`: how to reach a Kafka cluster (seed brokers, TLS, SASL, TCP tuning).
///
/// Used by every kind. Secrets named here are read from the resource's namespace (or, outside a
/// cluster, from the `kind: Secret` documents given with `-f`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.securityProtocol) || !self.securityProtocol.startsWith('SASL_') || has(self.saslSecret)",
        "message": "securityProtocol SASL_PLAINTEXT/SASL_SSL needs saslSecret {name, mechanism}"
    }
]))]
#[garde(allow_unvalidated)]
pub struct KafkaClusterSpec {
    /// Seed brokers as `host:port` (e.g. `kafka:9092`). Required, at least one.
    #[garde(length(min = 1), inner(custom(crate::api::checks::check_host_port)))]
    pub bootstrap_servers: Vec<String>,

    /// PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL. Any other value is an error.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,

    /// PEM material for TLS: CA and, for mutual TLS, a client certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub tls_secret: Option<TlsSecretRef>,

    /// A separate Secret holding only the CA certificate (e.g. Strimzi's
    /// `<cluster>-cluster-ca-cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub ca_secret: Option<CaSecretRef>,

    /// SASL credentials; required when `securityProtocol` is SASL_PLAINTEXT or SASL_SSL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub sasl_secret: Option<SaslSecretRef>,

    /// TCP and timeout tuning for broker connections.
    #[serde(default)]
    #[garde(dive)]
    pub connection: ConnectionSpec,
}

impl KafkaClusterSpec {
    /// A cluster spec with the given seed brokers and every other field at its default.
    pub fn new<S: Into<String>>(bootstrap_servers: impl IntoIterator<Item = S>) -> Self {
        KafkaClusterSpec {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            security_protocol: SecurityProtocol::default(),
            tls_secret: None,
            ca_secret: None,
            sasl_secret: None,
            connection: ConnectionSpec::default(),
        }
    }
}

/// Kafka `security.protocol`. Serialized as the exact Kafka strings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS, no SASL.
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL over plain TCP.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// True for SSL and SASL_SSL.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    /// True for SASL_PLAINTEXT and SASL_SSL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
    /// The Kafka spelling, e.g. `"SASL_SSL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tlsSecret`: a Secret with PEM material. `certKey` and `keyKey` together enable mutual TLS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct TlsSecretRef {
    /// Secret name (same namespace as the resource).
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the CA certificate(s), PEM. Default `ca.crt`.
    #[serde(default = "default_ca_key")]
    pub ca_key: String,
    /// Key holding the client certificate chain, PEM (mutual TLS; needs `keyKey` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key: Option<String>,
    /// Key holding the client private key, PEM (mutual TLS; needs `certKey` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_key: Option<String>,
}

/// `caSecret`: a Secret holding only a CA certificate (PEM).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct CaSecretRef {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the CA certificate(s), PEM. Default `ca.crt`.
    #[serde(default = "default_ca_key")]
    pub ca_key: String,
}

/// `saslSecret`: SASL mechanism and the Secret holding username and password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct SaslSecretRef {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Required.
    pub mechanism: SaslMechanism,
    /// Key holding the username. Default `username`.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key holding the password. Default `password`.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

/// SASL mechanism, serialized with the Kafka spelling.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SaslMechanism {
    /// SASL/PLAIN (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The Kafka spelling, e.g. `"SCRAM-SHA-512"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kafkaCluster.connection`: TCP tuning and timeouts for broker connections.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct ConnectionSpec {
    /// SO_KEEPALIVE on broker sockets. Default true.
    #[serde(default = "default_true")]
    pub tcp_keepalive: bool,
    /// Idle time before the first keepalive probe, seconds. Default 60.
    #[serde(default = "default_keepalive_time_secs")]
    #[garde(range(min = 1))]
    pub keepalive_time_secs: u32,
    /// Interval between keepalive probes, seconds. Default 20.
    #[serde(default = "default_keepalive_interval_secs")]
    #[garde(range(min = 1))]
    pub keepalive_interval_secs: u32,
    /// TCP_NODELAY on broker sockets. Default true.
    #[serde(default = "default_true")]
    pub tcp_nodelay: bool,
    /// Connection pool size per broker, > 0. Default 4.
    #[serde(default = "default_connections_per_broker")]
    #[garde(range(min = 1))]
    pub connections_per_broker: u32,
    /// Timeout of one Kafka request, milliseconds. Default 30000. (ours)
    #[serde(default = "default_request_timeout_ms")]
    #[garde(range(min = 1))]
    pub request_timeout_ms: u64,
    /// Timeout of a TCP (and TLS) connect, milliseconds. Default 10000. (ours)
    #[serde(default = "default_connect_timeout_ms")]
    #[garde(range(min = 1))]
    pub connect_timeout_ms: u64,
}

impl Default for ConnectionSpec {
    fn default() -> Self {
        ConnectionSpec {
            tcp_keepalive: true,
            keepalive_time_secs: default_keepalive_time_secs(),
            keepalive_interval_secs: default_keepalive_interval_secs(),
            tcp_nodelay: true,
            connections_per_broker: default_connections_per_broker(),
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// storage
// ---------------------------------------------------------------------------------------------

/// `storage`: where backups live. Exactly the sub-block named by `storageType` is used and must
/// be present; the others must be absent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.storageType) || self.storageType != 'pvc' || has(self.pvc)", "message": "storageType pvc needs pvc {claimName}"},
    {"rule": "!has(self.storageType) || self.storageType != 's3' || has(self.s3)", "message": "storageType s3 needs s3 {bucket, region}"},
    {"rule": "!has(self.storageType) || self.storageType != 'azure' || has(self.azure)", "message": "storageType azure needs azure {container, accountName}"},
    {"rule": "!has(self.storageType) || self.storageType != 'gcs' || has(self.gcs)", "message": "storageType gcs needs gcs {bucket}"},
    {"rule": "!has(self.storageType) || self.storageType != 'filesystem' || has(self.filesystem)", "message": "storageType filesystem needs filesystem {path}"}
]))]
#[garde(allow_unvalidated)]
pub struct StorageSpec {
    /// pvc (default), s3, azure, gcs or filesystem (ours: a local path, for runs outside a
    /// cluster).
    #[serde(default)]
    pub storage_type: StorageType,
    /// PersistentVolumeClaim location (storageType pvc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub pvc: Option<PvcSpec>,
    /// Local directory (storageType filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub filesystem: Option<FilesystemSpec>,
    /// S3 or S3-compatible bucket (storageType s3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub s3: Option<S3Spec>,
    /// Azure Blob container (storageType azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub azure: Option<AzureSpec>,
    /// Google Cloud Storage bucket (storageType gcs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub gcs: Option<GcsSpec>,
    /// Client-side envelope encryption of the repository (ours; docs/security.md): record
    /// data is encrypted before it leaves the process, with a data key per run wrapped by a
    /// key-encryption key from a Secret or AWS KMS. Absent: the repository is plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub encryption: Option<EncryptionSpec>,
}

/// `storage.encryption` (ours): where the key-encryption key (KEK) comes from. Exactly one
/// of `keySecret` (with `activeKeyId`) or `awsKms`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.keySecret) != has(self.awsKms)", "message": "set exactly one of keySecret (with activeKeyId) or awsKms"},
    {"rule": "!has(self.keySecret) || has(self.activeKeyId)", "message": "keySecret needs activeKeyId: the key id that encrypts new data"}
]))]
#[garde(allow_unvalidated)]
pub struct EncryptionSpec {
    /// A Secret whose every data key is a key id and every value 32 random bytes (an
    /// AES-256 key-encryption key). Every key in it can decrypt; `activeKeyId` encrypts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub key_secret: Option<SecretName>,
    /// The key id (a data key of `keySecret`) that wraps the data keys of new runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key_id: Option<String>,
    /// AWS KMS (or a KMS-compatible endpoint) as the key-encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub aws_kms: Option<AwsKmsSpec>,
}

/// A reference to a Secret by name (in the resource's namespace).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct SecretName {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
}

/// `storage.encryption.awsKms`: a KMS key that wraps each run's data key (GenerateDataKey,
/// Decrypt; AWS KMS API reference).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct AwsKmsSpec {
    /// Key id, key ARN, alias name (`alias/...`) or alias ARN.
    #[garde(length(min = 1))]
    pub key_id: String,
    /// Region, e.g. `us-east-1`.
    #[garde(length(min = 1))]
    pub region: String,
    /// Endpoint URL (a VPC endpoint or a KMS-compatible service). Default: the region's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow a plain `http://` endpoint. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// Static credentials (the same keys as `s3.credentialsSecret`). Without it: the AWS
    /// credential chain (env, web identity / IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub credentials_secret: Option<S3CredentialsSecret>,
}

impl StorageSpec {
    /// A filesystem storage block rooted at `path`.
    pub fn filesystem(path: impl Into<String>) -> Self {
        StorageSpec {
            storage_type: StorageType::Filesystem,
            pvc: None,
            filesystem: Some(FilesystemSpec { path: path.into() }),
            s3: None,
            azure: None,
            gcs: None,
            encryption: None,
        }
    }

    /// The key prefix inside the bucket/container, if the selected backend has one
    /// (`s3.prefix`, `azure.prefix`, `gcs.prefix`, `pvc.subPath`).
    pub fn prefix(&self) -> Option<&str> {
        match self.storage_type {
            StorageType::Pvc => self.pvc.as_ref().and_then(|p| p.sub_path.as_deref()),
            StorageType::S3 => self.s3.as_ref().and_then(|s| s.prefix.as_deref()),
            StorageType::Azure => self.azure.as_ref().and_then(|a| a.prefix.as_deref()),
            StorageType::Gcs => self.gcs.as_ref().and_then(|g| g.prefix.as_deref()),
            StorageType::Filesystem => None,
        }
    }
}

/// Storage backend selector; lowercase in YAML.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// A PersistentVolumeClaim (default).
    #[default]
    Pvc,
    /// Amazon S3 or an S3-compatible store (MinIO, Ceph, ...).
    S3,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// A local directory (ours; for runs outside a cluster).
    Filesystem,
}

impl StorageType {
    /// The YAML spelling, e.g. `"s3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Pvc => "pvc",
            StorageType::S3 => "s3",
            StorageType::Azure => "azure",
            StorageType::Gcs => "gcs",
            StorageType::Filesystem => "filesystem",
        }
    }
}

impl std::fmt::Display for StorageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `storage.pvc`: a PersistentVolumeClaim in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct PvcSpec {
    /// Claim name. Required.
    #[garde(length(min = 1))]
    pub claim_name: String,
    /// Directory inside the volume. Default: the volume root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// `storage.filesystem` (ours): a local directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct FilesystemSpec {
    /// Directory path (created if missing). Required.
    #[garde(length(min = 1))]
    pub path: String,
}

/// `storage.s3`: S3 and S3-compatible stores.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.endpoint) || !self.endpoint.startsWith('http://') || (has(self.allowHttp) && self.allowHttp)",
        "message": "an http:// endpoint needs allowHttp: true (or use https://)"
    }
]))]
#[garde(allow_unvalidated)]
pub struct S3Spec {
    /// Bucket name. Required.
    #[garde(length(min = 1))]
    pub bucket: String,
    /// Region, e.g. `us-west-2`. Required (S3-compatible stores accept any, e.g. `us-east-1`).
    #[garde(length(min = 1))]
    pub region: String,
    /// Endpoint URL for S3-compatible stores, e.g. `https://minio.example:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible stores.
    /// Default false.
    #[serde(default)]
    pub path_style: bool,
    /// Allow a plain `http://` endpoint. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// Static credentials. Without it: the standard AWS credential chain (env, web identity /
    /// IRSA, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub credentials_secret: Option<S3CredentialsSecret>,
    /// S3 Object Lock (ours): every object a run writes carries this retention on its PUT.
    /// The bucket must have Object Lock enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub object_lock: Option<ObjectLockSpec>,
}

/// `storage.s3.objectLock`: the retention mode and period of every object a run writes (S3
/// API reference, "Object Lock"; PutObject `x-amz-object-lock-mode`,
/// `x-amz-object-lock-retain-until-date`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct ObjectLockSpec {
    /// `COMPLIANCE` (nobody, not even the root account, can delete or shorten it) or
    /// `GOVERNANCE` (users with `s3:BypassGovernanceRetention` can).
    pub mode: ObjectLockMode,
    /// Days each object stays locked after the run writes it (at least 1).
    #[garde(range(min = 1))]
    pub retain_days: u32,
}

/// S3 Object Lock retention mode; upper case in YAML, as in the S3 API.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObjectLockMode {
    /// Nobody can delete the object or shorten its retention before the date.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can delete it or shorten its retention.
    Governance,
}

/// `storage.s3.credentialsSecret`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct S3CredentialsSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the access key id. Default `AWS_ACCESS_KEY_ID`.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key holding the secret access key. Default `AWS_SECRET_ACCESS_KEY`.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

/// `storage.azure`: Azure Blob Storage. At most one of `credentialsSecret`, `sasTokenSecret`,
/// `servicePrincipalSecret`; with none, `useWorkloadIdentity` or the default credential chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.credentialsSecret) ? 1 : 0) + (has(self.sasTokenSecret) ? 1 : 0) + (has(self.servicePrincipalSecret) ? 1 : 0) <= 1",
        "message": "credentialsSecret, sasTokenSecret and servicePrincipalSecret are mutually exclusive"
    }
]))]
#[garde(allow_unvalidated)]
pub struct AzureSpec {
    /// Container name. Required.
    #[garde(length(min = 1))]
    pub container: String,
    /// Storage account name. Required.
    #[garde(length(min = 1))]
    pub account_name: String,
    /// Blob name prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL (Azurite, sovereign clouds). Default
    /// `https://<accountName>.blob.core.windows.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Use Azure AD workload identity. Default false.
    #[serde(default)]
    pub use_workload_identity: bool,
    /// Shared key credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub credentials_secret: Option<AzureCredentialsSecret>,
    /// SAS token credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub sas_token_secret: Option<AzureSasTokenSecret>,
    /// Service principal (client secret) credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub service_principal_secret: Option<AzureServicePrincipalSecret>,
}

/// `storage.azure.credentialsSecret`: the storage account key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct AzureCredentialsSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the account key. Default `AZURE_STORAGE_KEY`.
    #[serde(default = "default_account_key_key")]
    pub account_key_key: String,
}

/// `storage.azure.sasTokenSecret`: a SAS token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct AzureSasTokenSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the SAS token. Default `AZURE_SAS_TOKEN`.
    #[serde(default = "default_sas_token_key")]
    pub sas_token_key: String,
}

/// `storage.azure.servicePrincipalSecret`: client id, tenant id and client secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct AzureServicePrincipalSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the client (application) id. Default `AZURE_CLIENT_ID`.
    #[serde(default = "default_client_id_key")]
    pub client_id_key: String,
    /// Key holding the tenant id. Default `AZURE_TENANT_ID`.
    #[serde(default = "default_tenant_id_key")]
    pub tenant_id_key: String,
    /// Key holding the client secret. Default `AZURE_CLIENT_SECRET`.
    #[serde(default = "default_client_secret_key")]
    pub client_secret_key: String,
}

/// `storage.gcs`: Google Cloud Storage (the JSON API). Credentials: `credentialsSecret`, or
/// `allowAnonymous` (no credentials at all), or neither: workload identity / application
/// default credentials. `credentialsSecret` and `allowAnonymous` exclude each other.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.credentialsSecret) && has(self.allowAnonymous) && self.allowAnonymous)", "message": "allowAnonymous sends no credentials: remove it or credentialsSecret"}
]))]
#[garde(allow_unvalidated)]
pub struct GcsSpec {
    /// Bucket name. Required.
    #[garde(length(min = 1))]
    pub bucket: String,
    /// Object name prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL (ours): an emulator such as fake-gcs-server, or a private endpoint
    /// (Private Service Connect), e.g. `https://storage-myendpoint.p.googleapis.com`. Default
    /// `https://storage.googleapis.com`. It implies nothing about credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow a plain `http://` endpoint (ours). Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// Send requests without credentials (ours): only for emulators and public buckets.
    /// Default false; never implied by `endpoint`. Excludes `credentialsSecret`.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Service account key. Without it: workload identity / application default credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub credentials_secret: Option<GcsCredentialsSecret>,
}

/// `storage.gcs.credentialsSecret`: the key holds the service account JSON itself (not a path).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct GcsCredentialsSecret {
    /// Secret name.
    #[garde(length(min = 1))]
    pub name: String,
    /// Key holding the service account JSON document. Default `SERVICE_ACCOUNT_JSON`.
    #[serde(default = "default_service_account_json_key")]
    pub service_account_json_key: String,
}

// ---------------------------------------------------------------------------------------------
// rateLimiting / circuitBreaker
// ---------------------------------------------------------------------------------------------

/// Default `rateLimiting.maxConcurrentPartitions` for KafkaBackup.
pub const DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS: u32 = 8;
/// Default `rateLimiting.maxConcurrentPartitions` for KafkaRestore.
pub const DEFAULT_RESTORE_MAX_CONCURRENT_PARTITIONS: u32 = 4;

/// `rateLimiting` (kb, kr): throughput caps. 0 means unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct RateLimiting {
    /// Records per second across the run; 0 = unlimited (default).
    #[serde(default)]
    pub records_per_sec: u64,
    /// Bytes per second across the run; 0 = unlimited (default).
    #[serde(default)]
    pub bytes_per_sec: u64,
    /// Partitions processed at once. Default 8 for backup, 4 for restore (see
    /// [`RateLimiting::max_concurrent_partitions_or`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(range(min = 1)))]
    pub max_concurrent_partitions: Option<u32>,
}

impl RateLimiting {
    /// `maxConcurrentPartitions`, or `default` when unset (use
    /// [`DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS`] / [`DEFAULT_RESTORE_MAX_CONCURRENT_PARTITIONS`]).
    pub fn max_concurrent_partitions_or(&self, default: u32) -> u32 {
        self.max_concurrent_partitions.unwrap_or(default)
    }
    /// `recordsPerSec` as an option: `None` when unlimited (0).
    pub fn records_limit(&self) -> Option<u64> {
        (self.records_per_sec > 0).then_some(self.records_per_sec)
    }
    /// `bytesPerSec` as an option: `None` when unlimited (0).
    pub fn bytes_limit(&self) -> Option<u64> {
        (self.bytes_per_sec > 0).then_some(self.bytes_per_sec)
    }
}

/// `circuitBreaker` (kb, kr): stop hammering a failing broker or store.
///
/// After `failureThreshold` consecutive failures the breaker opens for `resetTimeoutSecs`; then
/// `successThreshold` consecutive successes close it. Each guarded operation times out after
/// `operationTimeoutMs`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct CircuitBreaker {
    /// Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Consecutive failures that open the breaker. Default 5.
    #[serde(default = "default_failure_threshold")]
    #[garde(range(min = 1))]
    pub failure_threshold: u32,
    /// Seconds the breaker stays open before a trial. Default 60.
    #[serde(default = "default_reset_timeout_secs")]
    #[garde(range(min = 1))]
    pub reset_timeout_secs: u64,
    /// Consecutive successes that close the breaker. Default 3.
    #[serde(default = "default_success_threshold")]
    #[garde(range(min = 1))]
    pub success_threshold: u32,
    /// Timeout of one guarded operation, milliseconds. Default 30000.
    #[serde(default = "default_operation_timeout_ms")]
    #[garde(range(min = 1))]
    pub operation_timeout_ms: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            enabled: true,
            failure_threshold: default_failure_threshold(),
            reset_timeout_secs: default_reset_timeout_secs(),
            success_threshold: default_success_threshold(),
            operation_timeout_ms: default_operation_timeout_ms(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// backupRef (kr, kbv)
// ---------------------------------------------------------------------------------------------

/// `backupRef` (kr, kbv): which backup to read.
///
/// `name` names a KafkaBackup (its storage and Secrets are used) unless `storage` is given inline
/// (a backup made elsewhere; `name` then only labels it). `backupId` picks one run; default: the
/// latest completed one (for a PITR restore: the latest one covering `endTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[garde(allow_unvalidated)]
pub struct BackupRef {
    /// KafkaBackup name. Required.
    #[garde(length(min = 1))]
    pub name: String,
    /// Namespace of the KafkaBackup. Default: the referring resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A specific backup run id. Default: the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Inline storage of a backup made elsewhere; overrides the KafkaBackup's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(dive)]
    pub storage: Option<StorageSpec>,
}

// ---------------------------------------------------------------------------------------------
// status header
// ---------------------------------------------------------------------------------------------

/// Status of a condition: `True`, `False` or `Unknown` (Kubernetes convention).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// One entry of `status.conditions` (Kubernetes convention; keyed by `type`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Progressing`, `Degraded`, `Validated`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// One-word CamelCase reason, e.g. `BackupCompleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// `metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition without reason, message or times.
    pub fn new(type_: impl Into<String>, status: ConditionStatus) -> Self {
        Condition {
            type_: type_.into(),
            status,
            reason: None,
            message: None,
            last_transition_time: None,
            observed_generation: None,
        }
    }
    /// Builder: set `reason`.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    /// Builder: set `message`.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    /// Builder: set `observedGeneration`.
    pub fn observed_generation(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }
}

/// The status fields every kind shares (its `phase` is typed per kind and lives beside this).
///
/// Embedded flattened into each kind's status, so in YAML these are direct children of `status`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusHeader {
    /// Human-readable summary of the current state or the last error (with the fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions keyed by `type` (Ready, Progressing, Degraded, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Stable hash of the compiled plan the current/last run executes (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// When the current/last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the last run finished (successfully or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

impl StatusHeader {
    /// Insert or replace the condition with the same `type`. `lastTransitionTime` is set to `now`
    /// when the status changes (or the condition is new) and kept otherwise, per Kubernetes
    /// convention. Pure: the caller passes the clock.
    pub fn set_condition(&mut self, mut condition: Condition, now: jiff::Timestamp) {
        match self
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition.type_)
        {
            Some(existing) => {
                condition.last_transition_time = if existing.status == condition.status {
                    existing.last_transition_time.clone().or(Some(Time(now)))
                } else {
                    Some(Time(now))
                };
                *existing = condition;
            }
            None => {
                condition.last_transition_time = Some(Time(now));
                self.conditions.push(condition);
            }
        }
    }

    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn set_condition_keeps_transition_time_unless_status_changes() {
        let mut h = StatusHeader::default();
        let t1 = ts("2024-12-01T12:00:00Z");
        let t2 = ts("2024-12-01T13:00:00Z");
        let t3 = ts("2024-12-01T14:00:00Z");
        h.set_condition(
            Condition::new("Ready", ConditionStatus::False).reason("Running"),
            t1,
        );
        h.set_condition(
            Condition::new("Ready", ConditionStatus::False).reason("StillRunning"),
            t2,
        );
        let c = h.condition("Ready").unwrap();
        assert_eq!(c.reason.as_deref(), Some("StillRunning"));
        assert_eq!(c.last_transition_time, Some(Time(t1)));
        h.set_condition(Condition::new("Ready", ConditionStatus::True), t3);
        assert_eq!(
            h.condition("Ready").unwrap().last_transition_time,
            Some(Time(t3))
        );
        h.set_condition(Condition::new("Degraded", ConditionStatus::False), t3);
        assert_eq!(h.conditions.len(), 2);
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = ConnectionSpec::default();
        assert_eq!(
            (
                c.connections_per_broker,
                c.keepalive_time_secs,
                c.keepalive_interval_secs
            ),
            (4, 60, 20)
        );
        let from_yaml: ConnectionSpec = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(from_yaml, c);
        let cb: CircuitBreaker = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(cb, CircuitBreaker::default());
        let rl = RateLimiting::default();
        assert_eq!(
            rl.max_concurrent_partitions_or(DEFAULT_BACKUP_MAX_CONCURRENT_PARTITIONS),
            8
        );
        assert_eq!(rl.records_limit(), None);
    }
}
