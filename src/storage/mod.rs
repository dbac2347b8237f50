//! Object storage through opendal: building an operator from resolved settings, and the
//! small set of repository reads and writes the executor needs.
use std::collections::BTreeMap;

use opendal::Operator;

use crate::format::FormatError;

/// Longest a storage operation (stat, list, delete, the start of a read or write) may take
/// before the attempt fails and is retried.
pub const OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest one read or write of a body chunk may take.
pub const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend refused or failed an operation. `hint` says what to check.
    #[error("storage {op} {path:?} failed: {source}{hint}")]
    Backend {
        op: &'static str,
        path: String,
        source: Box<opendal::Error>,
        hint: String,
    },
    /// Settings that cannot work (caught before any I/O).
    #[error("storage settings: {0}")]
    Config(String),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}")]
    NotFound(String),
    /// The repository holds no complete run of `backup` (none finished yet, or a wrong name or
    /// location). A restore that names the KafkaBackup waits for one (the operator).
    #[error(
        "no complete backup named {backup:?} in this storage (check backupRef.name and the storage location)"
    )]
    NoCompleteRun { backup: String },
}

/// Resolved storage settings (secrets already read), built by `observe` from a CR's
/// `storage` block.
#[derive(Clone)]
pub enum StorageTarget {
    /// A local directory (`filesystem`, or `pvc` mapped to a directory outside a cluster).
    Fs { root: String },
    /// In-process memory (tests, dry runs).
    Memory,
    S3 {
        bucket: String,
        region: String,
        endpoint: Option<String>,
        prefix: Option<String>,
        path_style: bool,
        /// (access key id, secret access key); None = the AWS credential chain.
        credentials: Option<(String, String)>,
    },
    Azure {
        container: String,
        account_name: String,
        endpoint: Option<String>,
        prefix: Option<String>,
        account_key: Option<String>,
        sas_token: Option<String>,
        /// (client id, tenant id, client secret)
        service_principal: Option<(String, String, String)>,
    },
    Gcs {
        bucket: String,
        prefix: Option<String>,
        service_account_json: Option<String>,
    },
}

impl std::fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl StorageTarget {
    /// A one-line description without secrets, e.g. `s3://bucket/prefix (http://127.0.0.1:9000)`.
    pub fn describe(&self) -> String {
        match self {
            StorageTarget::Fs { root } => format!("file://{root}"),
            StorageTarget::Memory => "memory://".into(),
            StorageTarget::S3 {
                bucket,
                prefix,
                endpoint,
                ..
            } => format!(
                "s3://{bucket}/{}{}",
                prefix.as_deref().unwrap_or(""),
                endpoint
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
            StorageTarget::Azure {
                container,
                account_name,
                prefix,
                ..
            } => {
                format!(
                    "azblob://{account_name}/{container}/{}",
                    prefix.as_deref().unwrap_or("")
                )
            }
            StorageTarget::Gcs { bucket, prefix, .. } => {
                format!("gs://{bucket}/{}", prefix.as_deref().unwrap_or(""))
            }
        }
    }

    /// Opens the storage for reading only: a filesystem root that does not exist yet reads as
    /// an empty repository and is not created (the `plan` command writes nothing).
    pub fn open_read_only(&self) -> Result<Operator, StorageError> {
        match self {
            StorageTarget::Fs { root } if !std::path::Path::new(root).exists() => {
                StorageTarget::Memory.operator()
            }
            _ => self.operator(),
        }
    }

    /// Builds the opendal operator (a filesystem root is created if missing).
    pub fn operator(&self) -> Result<Operator, StorageError> {
        let cfg = |e: opendal::Error| StorageError::Config(e.to_string());
        let mut map: BTreeMap<&str, String> = BTreeMap::new();
        let scheme = match self {
            StorageTarget::Fs { root } => {
                map.insert("root", root.clone());
                "fs"
            }
            StorageTarget::Memory => "memory",
            StorageTarget::S3 {
                bucket,
                region,
                endpoint,
                prefix,
                path_style,
                credentials,
            } => {
                map.insert("bucket", bucket.clone());
                map.insert("region", region.clone());
                if let Some(e) = endpoint {
                    map.insert("endpoint", e.clone());
                }
                map.insert(
                    "root",
                    format!("/{}", prefix.as_deref().unwrap_or("").trim_matches('/')),
                );
                if !path_style {
                    map.insert("enable_virtual_host_style", "true".into());
                }
                if let Some((ak, sk)) = credentials {
                    map.insert("access_key_id", ak.clone());
                    map.insert("secret_access_key", sk.clone());
                    map.insert("disable_config_load", "true".into());
                    map.insert("disable_ec2_metadata", "true".into());
                }
                "s3"
            }
            StorageTarget::Azure {
                container,
                account_name,
                endpoint,
                prefix,
                account_key,
                sas_token,
                service_principal,
            } => {
                map.insert("container", container.clone());
                map.insert("account_name", account_name.clone());
                map.insert(
                    "endpoint",
                    endpoint
                        .clone()
                        .unwrap_or_else(|| format!("https://{account_name}.blob.core.windows.net")),
                );
                map.insert(
                    "root",
                    format!("/{}", prefix.as_deref().unwrap_or("").trim_matches('/')),
                );
                if let Some(k) = account_key {
                    map.insert("account_key", k.clone());
                }
                if let Some(s) = sas_token {
                    map.insert("sas_token", s.clone());
                }
                if let Some((client, tenant, secret)) = service_principal {
                    map.insert("client_id", client.clone());
                    map.insert("tenant_id", tenant.clone());
                    map.insert("client_secret", secret.clone());
                }
                "azblob"
            }
            StorageTarget::Gcs {
                bucket,
                prefix,
                service_account_json,
            } => {
                map.insert("bucket", bucket.clone());
                map.insert(
                    "root",
                    format!("/{}", prefix.as_deref().unwrap_or("").trim_matches('/')),
                );
                if let Some(j) = service_account_json {
                    // opendal takes the JSON itself, base64 encoded (not a file path).
                    use base64::Engine;
                    map.insert(
                        "credential",
                        base64::engine::general_purpose::STANDARD.encode(j),
                    );
                }
                "gcs"
            }
        };
        let mut op = Operator::via_iter(scheme, map.into_iter().map(|(k, v)| (k.to_string(), v)))
            .map_err(cfg)?;
        if scheme == "s3" {
            let base = op.context().http_transport().clone();
            let ctx = op
                .context()
                .with_http_transport(opendal::HttpTransporter::new(CanonicalQuery(base)));
            op = op.with_context(ctx);
        }
        // Each attempt is bounded in time (a stalled endpoint fails it as a temporary error,
        // which the retry layer retries); retries back off with jitter.
        Ok(op
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(OP_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_max_times(4),
            ))
    }
}

/// Sends the query string of S3 requests in its canonical SigV4 form (`/` as `%2F`).
///
/// opendal signs the canonical query (AWS SigV4: every byte but unreserved ones
/// percent-encoded) but sends list queries with `/` unescaped (`prefix=a/b/&delimiter=/`). AWS
/// accepts both; S3-compatible servers that recompute the signature over the query as received
/// (moto 5.2, which testenv runs with credential checks) answer 403 SignatureDoesNotMatch.
/// Sending the canonical form satisfies both; the signature is unchanged.
struct CanonicalQuery(opendal::HttpTransporter);

impl opendal::HttpTransport for CanonicalQuery {
    async fn fetch(
        &self,
        mut req: http::Request<opendal::Buffer>,
    ) -> opendal::Result<http::Response<opendal::HttpBody>> {
        let uri = req.uri();
        if let Some(q) = uri.query().filter(|q| q.contains('/')) {
            let fixed = format!("{}?{}", uri.path(), q.replace('/', "%2F"));
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = fixed.parse().ok();
            if let Ok(u) = http::Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
        self.0.fetch(req).await
    }
}

/// Turns an opendal error into a [`StorageError`] with a hint for the common causes.
pub fn backend(op: &'static str, path: &str, e: opendal::Error) -> StorageError {
    let msg = e.to_string();
    let hint = if e.kind() == opendal::ErrorKind::PermissionDenied
        || msg.contains("InvalidAccessKeyId")
        || msg.contains("SignatureDoesNotMatch")
        || msg.contains("403")
    {
        " (access denied: check storage.s3.credentialsSecret and that the key may write to the bucket)".to_string()
    } else if msg.contains("NoSuchBucket") {
        " (the bucket does not exist: create it or fix storage.s3.bucket)".to_string()
    } else if msg.contains("error sending request") || msg.contains("connect") {
        " (storage endpoint unreachable: check storage.s3.endpoint and the network)".to_string()
    } else {
        String::new()
    };
    StorageError::Backend {
        op,
        path: path.to_string(),
        source: Box::new(e),
        hint,
    }
}

impl StorageError {
    /// True when a later attempt may succeed: the backend said the failure is temporary
    /// (opendal's `is_temporary`: throttling, 5xx, connection trouble).
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Backend { source, .. } if source.is_temporary())
    }

    /// The failure category: `storage-unavailable` (a temporary backend failure),
    /// `storage-refused` (denied, not found, bad request), `storage-config`, `integrity`
    /// (an object failed its checksum or does not parse), `no-backup`.
    pub fn category(&self) -> &'static str {
        match self {
            StorageError::Backend { .. } if self.is_transient() => "storage-unavailable",
            StorageError::Backend { .. } | StorageError::NotFound(_) => "storage-refused",
            StorageError::Config(_) => "storage-config",
            StorageError::Format(_) => "integrity",
            StorageError::NoCompleteRun { .. } => "no-backup",
        }
    }
}

/// Reads a whole object; `Ok(None)` if it does not exist.
pub async fn read_opt(op: &Operator, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
    match op.read(path).await {
        Ok(b) => Ok(Some(b.to_vec())),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(backend("read", path, e)),
    }
}

/// Writes a whole small object (manifests, indexes, checkpoints).
pub async fn write_all(op: &Operator, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
    // A store that can rename (a filesystem, a PVC) writes in place, so a kill -9 mid-write
    // would leave a truncated document that every later run refuses: write a temporary
    // object next to it and rename it over, atomically. Object stores (S3, GCS, Azure) put
    // whole objects atomically already.
    if op.info().capability().rename {
        let tmp = format!(
            "{path}.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        op.write(&tmp, bytes)
            .await
            .map_err(|e| backend("write", &tmp, e))?;
        return op
            .rename(&tmp, path)
            .await
            .map_err(|e| backend("rename", path, e));
    }
    op.write(path, bytes)
        .await
        .map(|_| ())
        .map_err(|e| backend("write", path, e))
}

/// Names of the direct sub-directories of `dir` (which ends with `/`).
pub async fn list_dirs(op: &Operator, dir: &str) -> Result<Vec<String>, StorageError> {
    let entries = match op.list(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(backend("list", dir, e)),
    };
    let mut out: Vec<String> = entries
        .into_iter()
        .filter(|e| e.metadata().is_dir() && e.path() != dir)
        .map(|e| e.name().trim_end_matches('/').to_string())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod atomic_tests {
    use super::*;

    #[tokio::test]
    async fn a_filesystem_write_replaces_the_document_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let op = StorageTarget::Fs {
            root: dir.path().display().to_string(),
        }
        .operator()
        .unwrap();
        assert!(
            op.info().capability().rename,
            "fs writes go through a rename"
        );
        write_all(&op, "b/runs/r/checkpoint.json", b"first".to_vec())
            .await
            .unwrap();
        write_all(&op, "b/runs/r/checkpoint.json", b"second".to_vec())
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("b/runs/r"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, vec!["checkpoint.json".to_string()]);
        assert_eq!(
            read_opt(&op, "b/runs/r/checkpoint.json").await.unwrap(),
            Some(b"second".to_vec())
        );
    }
}
