//! Object storage through opendal: building an operator from resolved settings, and the
//! small set of object reads and writes (by key) the format's readers and the executor need.
//! Storage knows no document format: what an object holds is `format`'s.
use std::collections::BTreeMap;

use opendal::Operator;

/// Longest a storage operation (stat, list, delete, the start of a read or write) may take
/// before the attempt fails and is retried.
pub const OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest one read or write of a body chunk may take.
pub const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub mod azure;
pub mod gcs;
mod hint;
pub mod http;
pub mod kms;
pub mod object_lock;
mod transport;

/// Errors of the storage layer. Each says itself in one line (no response dump, no backtrace)
/// and has no `source()`: a printed chain does not repeat the backend's error.
#[derive(Debug)]
pub enum StorageError {
    /// The backend refused or failed an operation. `detail` is [`one_line`] of `source`;
    /// `hint` says what to check.
    Backend {
        op: &'static str,
        path: String,
        source: Box<opendal::Error>,
        detail: String,
        hint: String,
    },
    /// Settings that cannot work (caught before any I/O).
    Config(String),
    /// An object was read, but its bytes fail the checks of what it holds (a checksum, a
    /// parse, a version, a missing key). Storage knows no document format: this is the
    /// reader's own error (the format layer's, converted by its `From`), and its message is
    /// the whole message. Category `integrity`, never transient.
    Content(Box<dyn std::error::Error + Send + Sync>),
    NotFound(String),
    /// The repository holds no complete run of `backup` (none finished yet, or a wrong name or
    /// location). A restore that names the KafkaBackup waits for one (the operator).
    NoCompleteRun {
        backup: String,
    },
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Backend {
                op,
                path,
                detail,
                hint,
                ..
            } => write!(f, "storage {op} {path:?} failed: {detail}{hint}"),
            StorageError::Config(m) => write!(f, "storage settings: {m}"),
            StorageError::Content(e) => write!(f, "{e}"),
            StorageError::NotFound(m) => f.write_str(m),
            StorageError::NoCompleteRun { backup } => write!(
                f,
                "no complete backup named {backup:?} in this storage (check backupRef.name and the storage location)"
            ),
        }
    }
}

/// No `source()`: the content error is the whole message already, and the backend's is in
/// `detail` (its own Display carries the request context).
impl std::error::Error for StorageError {}

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
        /// `storage.s3.objectLock`: every object a backup run writes under a locked key
        /// ([`object_lock::is_locked_key`]) carries this retention on its PUT.
        object_lock: Option<crate::api::common::ObjectLockSpec>,
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
        /// The JSON API endpoint; None = `https://storage.googleapis.com`.
        endpoint: Option<String>,
        /// Send no credentials and never ask the metadata server (`gcs.allowAnonymous`).
        anonymous: bool,
        /// A service-account (or other credential file) JSON document, already checked by
        /// [`gcs::check_key`]; None with `anonymous` false = application default credentials.
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
            StorageTarget::Gcs {
                bucket,
                prefix,
                endpoint,
                ..
            } => format!(
                "gs://{bucket}/{}{}",
                prefix.as_deref().unwrap_or(""),
                endpoint
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
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

    /// The opendal service name and settings of this target.
    fn service_settings(&self) -> (&'static str, BTreeMap<&'static str, String>) {
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
                object_lock,
            } => {
                map.insert("bucket", bucket.clone());
                map.insert("region", region.clone());
                if object_lock.is_some() {
                    // S3 wants a checksum with every locked PUT and part (CRC-32C, as opendal
                    // computes it: x-amz-checksum-crc32c)
                    map.insert("checksum_algorithm", "crc32c".into());
                }
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
                endpoint,
                anonymous,
                service_account_json,
            } => {
                map.insert("bucket", bucket.clone());
                map.insert(
                    "root",
                    format!("/{}", prefix.as_deref().unwrap_or("").trim_matches('/')),
                );
                if let Some(e) = endpoint {
                    map.insert("endpoint", e.trim_end_matches('/').to_string());
                }
                if *anonymous || service_account_json.is_some() {
                    // the credentials are given: no environment, well-known file or
                    // metadata server (169.254.169.254) is consulted
                    map.insert("disable_vm_metadata", "true".into());
                    map.insert("disable_config_load", "true".into());
                }
                if *anonymous {
                    map.insert("skip_signature", "true".into());
                }
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
        (scheme, map)
    }

    /// Builds the opendal operator (a filesystem root is created if missing).
    pub fn operator(&self) -> Result<Operator, StorageError> {
        let cfg = |e: opendal::Error| StorageError::Config(e.to_string());
        let (scheme, map) = self.service_settings();
        let mut op = Operator::via_iter(scheme, map.into_iter().map(|(k, v)| (k.to_string(), v)))
            .map_err(cfg)?;
        if matches!(scheme, "fs" | "memory") {
            // A local disk's errors are not worth retrying here (a full disk stays full; the
            // run-level retry covers the rest): fail at once, in one line.
            return Ok(op);
        }
        // HTTP services: a client built here (fallibly: a missing CA bundle is an error, and
        // only for https), with connect and response deadlines that name the endpoint.
        let endpoint = self.endpoint_url();
        let mut transport = transport::Transport::new(&endpoint).map_err(StorageError::Config)?;
        if let Some(lock) =
            object_lock::LockHeaders::for_target(self, &endpoint).map_err(StorageError::Config)?
        {
            transport = transport.with_lock(lock);
        }
        let ctx = op
            .context()
            .with_http_transport(opendal::HttpTransporter::new(transport));
        op = op.with_context(ctx);
        // Each attempt is bounded in time (a stalled endpoint fails it as a temporary error,
        // which the retry layer retries, 3 times from 500 ms: a dead endpoint fails in about
        // 30 s); a retry is logged in one line.
        Ok(op
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(OP_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_min_delay(std::time::Duration::from_millis(500))
                    .with_max_delay(std::time::Duration::from_secs(4))
                    .with_max_times(3)
                    .with_notify(RetryLog),
            ))
    }

    /// The URL of the storage's HTTP endpoint (the configured one, or the service's default).
    fn endpoint_url(&self) -> String {
        match self {
            StorageTarget::S3 {
                endpoint: Some(e), ..
            }
            | StorageTarget::Azure {
                endpoint: Some(e), ..
            }
            | StorageTarget::Gcs {
                endpoint: Some(e), ..
            } => e.clone(),
            StorageTarget::S3 { region, .. } => format!("https://s3.{region}.amazonaws.com"),
            StorageTarget::Azure { account_name, .. } => {
                format!("https://{account_name}.blob.core.windows.net")
            }
            _ => "https://storage.googleapis.com".into(),
        }
    }
}

/// Logs a storage retry in one line (opendal's default logs the error's Debug form, with its
/// context and a backtrace).
struct RetryLog;

impl opendal::layers::RetryInterceptor for RetryLog {
    fn intercept(&self, event: opendal::layers::RetryEvent<'_>) {
        tracing::warn!(
            operation = %event.op,
            attempt = event.attempt,
            retry_in_ms = event.retry_after.as_millis() as u64,
            error = %one_line(event.err),
            "storage request failed; retrying"
        );
    }
}

/// An opendal error in one line, without its context (request URL, response headers) or
/// backtrace: for an HTTP error answer `HTTP <status> <S3 code>: <message>`, else the message
/// and its causes. URLs in it lose their query strings ([`crate::redact::scrub`]).
pub fn one_line(e: &opendal::Error) -> String {
    static STATUS: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"status: (\d{3})").expect("regex"));
    static S3: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"code: "([^"]*)", message: "((?:[^"\\]|\\.)*)""#).expect("regex")
    });
    let full = e.to_string();
    let status = STATUS.captures(&full).map(|c| c[1].to_string());
    let text = match (status, S3.captures(e.message())) {
        (Some(st), Some(c)) => format!("HTTP {st} {}: {}", &c[1], &c[2]),
        (Some(st), None) if gcs::error_message(e.message()).is_some() => {
            // GCS's JSON error answer, which opendal gives in its Debug form
            format!(
                "HTTP {st} {}",
                gcs::error_message(e.message()).unwrap_or_default()
            )
        }
        (Some(st), None) if e.message().trim_start().starts_with('<') => {
            // an XML error body (Azure, GCS, an S3 clone): its code and message only; other
            // elements may repeat the access key id, the string to sign or the signature
            let tag = |t: &str| {
                let m = e.message();
                let a = m.find(&format!("<{t}>"))? + t.len() + 2;
                let b = m[a..].find(&format!("</{t}>"))? + a;
                Some(m[a..b].trim().to_string())
            };
            match (tag("Code"), tag("Message")) {
                (Some(c), Some(m)) => format!("HTTP {st} {c}: {m}"),
                (Some(c), None) => format!("HTTP {st} {c}"),
                _ => format!("HTTP {st}"),
            }
        }
        (Some(st), None) => {
            let m: String = e.message().chars().take(200).collect();
            format!(
                "HTTP {st}: {}",
                m.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        }
        (None, _) => {
            let mut m = e.message().to_string();
            if let Some(s) = std::error::Error::source(e) {
                let c = http::chain(s);
                if !m.contains(&c) {
                    m = if m.is_empty() { c } else { format!("{m}: {c}") };
                }
            }
            m
        }
    };
    crate::redact::scrub(&text, &[])
}

/// True when `e` (or a cause) is a full disk or quota, or a read-only filesystem: not
/// temporary, whatever the backend says.
fn out_of_space(e: &opendal::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::StorageFull | K::QuotaExceeded | K::ReadOnlyFilesystem | K::FileTooLarge
            ) || matches!(io.raw_os_error(), Some(28 | 30 | 122))
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The IAM action S3 authorises our storage operation `op` with (AWS Service Authorization
/// Reference, "Actions defined by Amazon S3"; S3 API Reference, each operation's
/// "Permissions"): HeadObject and GetObject need `s3:GetObject`, ListObjectsV2 `s3:ListBucket`,
/// PutObject and every request of a multipart upload `s3:PutObject`, DeleteObject and each key
/// of a DeleteObjects `s3:DeleteObject`. None for an operation no S3 request carries (`rename`,
/// a filesystem's).
pub fn s3_action(op: &str) -> Option<&'static str> {
    match op {
        "read" | "stat" => Some("s3:GetObject"),
        "list" => Some("s3:ListBucket"),
        "write" | "create" | "close" => Some("s3:PutObject"),
        "delete" => Some("s3:DeleteObject"),
        _ => None,
    }
}

/// For an S3 `AccessDenied` answer (HTTP 403 with that code: the key pair is valid but its
/// policy does not allow the request), the hint naming the action `op` needs
/// ([`s3_action`]); None for any other error or store. The service is the `service: s3`
/// context opendal adds to every error.
fn s3_denied_hint(op: &str, e: &opendal::Error, detail: &str) -> Option<String> {
    let full = e.to_string();
    let head = full.split(" => ").next().unwrap_or_default();
    let s3 = head.contains("{ service: s3,")
        || head.contains(", service: s3,")
        || head.contains(", service: s3 }");
    if !s3 || !detail.contains("AccessDenied") {
        return None;
    }
    let action = s3_action(op)?;
    let missing_key = if action == "s3:GetObject" {
        "; S3 also answers 403 for a key that does not exist when s3:ListBucket is missing"
    } else {
        ""
    };
    Some(format!(
        " (access denied: the credential lacks {action} on this object{missing_key}: grant it to this storage's credentialsSecret (docs/security.md, \"Least privilege (S3)\" lists what each job needs) or give the job the credential meant for it)"
    ))
}

/// Turns an opendal error into a [`StorageError`] with a hint for the common causes.
pub fn backend(op: &'static str, path: &str, e: opendal::Error) -> StorageError {
    let detail = one_line(&e);
    let hint = if out_of_space(&e) {
        " (no space left: free space on the storage volume or enlarge it; the run resumes from its checkpoint)".to_string()
    } else if let Some(hint) = s3_denied_hint(op, &e, &detail) {
        hint
    } else if let Some(hint) = hint::azure_gcs(op, &e, &detail) {
        hint
    } else if e.kind() == opendal::ErrorKind::PermissionDenied
        || detail.contains("InvalidAccessKeyId")
        || detail.contains("SignatureDoesNotMatch")
        || detail.contains("HTTP 403")
    {
        " (access denied: check storage.s3.credentialsSecret and that the key may write to the bucket)".to_string()
    } else if detail.contains("NoSuchBucket") {
        " (the bucket does not exist: create it or fix storage.s3.bucket)".to_string()
    } else if detail.contains("no answer from")
        || detail.contains("error sending request")
        || detail.contains("connect")
    {
        " (storage endpoint unreachable: check storage.s3.endpoint and the network)".to_string()
    } else {
        String::new()
    };
    StorageError::Backend {
        op,
        path: path.to_string(),
        source: Box::new(e),
        detail,
        hint,
    }
}

impl StorageError {
    /// True when a later attempt may succeed: the backend said the failure is temporary
    /// (opendal's `is_temporary`: throttling, 5xx, connection trouble, no answer in time); a
    /// full disk or quota is not, whatever the backend says.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Backend { source, .. } if source.is_temporary() && !out_of_space(source))
    }

    /// The failure category: `storage-unavailable` (a temporary backend failure),
    /// `storage-refused` (denied, not found, bad request), `storage-config`, `integrity`
    /// (an object failed its checksum or does not parse), `no-backup`.
    pub fn category(&self) -> &'static str {
        match self {
            StorageError::Backend { .. } if self.is_transient() => "storage-unavailable",
            StorageError::Backend { .. } | StorageError::NotFound(_) => "storage-refused",
            StorageError::Config(_) => "storage-config",
            StorageError::Content(_) => "integrity",
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

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn an_s3_access_denied_names_the_action_and_is_a_refusal() {
        let denied = |kind| {
            opendal::Error::new(
                kind,
                r#"S3Error { code: "AccessDenied", message: "Access Denied", resource: "", request_id: "" }"#,
            )
            .with_context("service", "s3")
            .with_context("response", "Parts { status: 403, headers: {} }")
        };
        for (op, action) in [
            ("write", "s3:PutObject"),
            ("close", "s3:PutObject"),
            ("read", "s3:GetObject"),
            ("stat", "s3:GetObject"),
            ("list", "s3:ListBucket"),
            ("delete", "s3:DeleteObject"),
        ] {
            let e = backend(
                op,
                "kb/lock.json",
                denied(opendal::ErrorKind::PermissionDenied),
            );
            let m = e.to_string();
            assert!(
                m.contains(&format!("lacks {action} on this object"))
                    && m.contains("HTTP 403 AccessDenied"),
                "{m}"
            );
            assert_eq!(e.category(), "storage-refused", "{m}");
        }
        // another store's 403, or a key pair S3 does not know: no action named
        let az = opendal::Error::new(opendal::ErrorKind::PermissionDenied, "denied")
            .with_context("service", "azblob")
            .with_context("response", "Parts { status: 403, headers: {} }");
        assert!(!backend("write", "x", az).to_string().contains("lacks"));
        let bad_key = opendal::Error::new(
            opendal::ErrorKind::PermissionDenied,
            r#"S3Error { code: "InvalidAccessKeyId", message: "no such key", resource: "", request_id: "" }"#,
        )
        .with_context("service", "s3")
        .with_context("response", "Parts { status: 403, headers: {} }");
        let m = backend("write", "x", bad_key).to_string();
        assert!(
            !m.contains("lacks") && m.contains("credentialsSecret"),
            "{m}"
        );
    }

    #[test]
    fn an_xml_error_body_gives_its_code_and_message_only() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message><AWSAccessKeyId>AKIAMARKER15</AWSAccessKeyId><StringToSign>GET\n/x</StringToSign></Error>";
        let e = opendal::Error::new(opendal::ErrorKind::PermissionDenied, body)
            .with_context("response", "Parts { status: 403, headers: {} }")
            .with_context("uri", "https://a.blob.core.windows.net/c/x?sig=SIGMARKER15");
        let l = one_line(&e);
        assert_eq!(
            l,
            "HTTP 403 AuthenticationFailed: Server failed to authenticate the request."
        );
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request")
            .with_context("url", "https://a.blob.core.windows.net/c/x?sig=SIGMARKER15")
            .set_source(std::io::Error::other(
                "connection reset for https://h/x?sig=SIGMARKER15",
            ));
        let l = one_line(&e);
        assert!(
            !l.contains("SIGMARKER15") && l.contains("connection reset"),
            "{l}"
        );
    }
}
