//! AWS KMS as the key-encryption key (`storage.encryption.awsKms`): a run's data key comes from
//! `GenerateDataKey` (KeySpec `AES_256`) and is unwrapped with `Decrypt`; `Encrypt` re-wraps a
//! data key under another KMS key.
//!
//! Protocol facts are from the AWS KMS API reference: the JSON 1.1 protocol (`POST /` with
//! `Content-Type: application/x-amz-json-1.1` and `X-Amz-Target: TrentService.<Operation>`),
//! the request and response members (`KeyId`, `KeySpec`, `EncryptionContext`,
//! `CiphertextBlob`, `Plaintext`, all blobs base64), and the error codes (the `__type` member
//! or the `x-amzn-ErrorType` header). Requests are signed with SigV4 (service `kms`) by
//! `reqsign-aws-v4`, the signer opendal's S3 service uses; no signing or crypto of ours.
//!
//! - Bounded: each attempt has [`ATTEMPT_TIMEOUT`] (connect within
//!   [`super::http::CONNECT_TIMEOUT`]); transient failures (throttling, HTTP 5xx, timeouts,
//!   refused connections) are retried [`RETRIES`] times from [`RETRY_MIN_DELAY`], so a dead
//!   endpoint fails in at most about 3 x 8 s plus 0.6 s.
//! - Secrets: an unwrapped data key lives in [`Zeroizing`] from the moment it is decoded; the
//!   response body that carried it (base64) and the request body of `Encrypt` are zeroized
//!   when dropped. Copies inside the HTTP and TLS stack (hyper's and rustls' buffers) are not
//!   ours to wipe. Errors never quote a response that may carry a key, nor a credential.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use backon::Retryable;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqsign_aws_v4::StaticCredentialProvider;
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner};
use reqsign_core::{Context, OsEnv, Signer};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::{Zeroize, Zeroizing};

/// Longest one KMS request may take, connection included (the whole request; reqwest's
/// timeout). KMS answers in milliseconds; a longer wait is a dead or unreachable endpoint.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
/// Retries of a transient failure ([`KmsError::is_transient`]) after the first attempt.
pub const RETRIES: usize = 2;
/// First back-off before a retry (doubled each time, backon's exponential builder).
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);

/// Resolved settings of `storage.encryption.awsKms` (secrets already read).
pub struct KmsSettings {
    /// Key id, key ARN, alias name (`alias/...`) or alias ARN: sent as `KeyId`.
    pub key_id: String,
    /// AWS region, e.g. `us-east-1`: the SigV4 scope and the default endpoint.
    pub region: String,
    /// `http(s)://host[:port][/path]` of a KMS-compatible endpoint (a VPC endpoint, moto);
    /// None = `https://kms.<region>.amazonaws.com`. Whether plain `http://` is allowed
    /// (`allowHttp`) is the caller's check.
    pub endpoint: Option<String>,
    /// Static credentials: (access key id, secret access key). None = the AWS default chain
    /// (env `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity / IRSA, profile, ECS,
    /// instance metadata), as reqsign's `DefaultCredentialProvider` resolves it.
    pub credentials: Option<(String, String)>,
}

/// The three KMS operations we call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    GenerateDataKey,
    Decrypt,
    Encrypt,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GenerateDataKey => "GenerateDataKey",
            Op::Decrypt => "Decrypt",
            Op::Encrypt => "Encrypt",
        }
    }
}

/// A KMS client for one key. Cheap to clone (shared HTTP client and credential cache).
#[derive(Clone)]
pub struct KmsClient {
    key_id: String,
    region: String,
    /// The URL requests are posted to.
    url: String,
    /// `scheme://host:port` of the endpoint, for messages.
    origin: String,
    http: reqwest::Client,
    signer: Signer<Credential>,
    static_credentials: bool,
}

/// Prints the key, region, endpoint and which credential source; never a credential.
impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("endpoint", &self.origin)
            .field(
                "credentials",
                &if self.static_credentials {
                    "static (credentialsSecret)"
                } else {
                    "AWS default chain"
                },
            )
            .finish()
    }
}

/// A failed KMS call or unusable settings. Display is one line: the operation, the key id,
/// the KMS error code (e.g. `AccessDeniedException`, `NotFoundException`, `DisabledException`,
/// `InvalidCiphertextException`, `KMSInvalidStateException`; or ours: `InvalidSettings`,
/// `NoCredentials`, `ConnectionFailed`, `Timeout`, `InvalidResponse`), KMS's message and what
/// to do. It never holds a credential or key material.
#[derive(Debug, Clone)]
pub struct KmsError {
    op: &'static str,
    key_id: String,
    code: String,
    detail: String,
    hint: String,
    transient: bool,
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KMS {} with key {:?} failed: {}",
            self.op, self.key_id, self.code
        )?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for KmsError {}

impl KmsError {
    /// Throttling, HTTP 5xx, a timeout or a failed connection: worth trying again later.
    /// (Already retried [`RETRIES`] times when a call returns it.)
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The KMS error code (`AccessDeniedException`, ...) or ours (see the type's doc).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The key id the failed call used.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The operation: `GenerateDataKey`, `Decrypt`, `Encrypt`, or `configure` (settings).
    pub fn operation(&self) -> &str {
        self.op
    }

    fn settings(key_id: &str, detail: String, hint: &str) -> KmsError {
        KmsError {
            op: "configure",
            key_id: key_id.to_string(),
            code: "InvalidSettings".into(),
            detail,
            hint: hint.into(),
            transient: false,
        }
    }
}

/// A request body: every member KMS takes from us (absent ones are not sent).
#[derive(Serialize)]
struct KmsIn<'a> {
    #[serde(rename = "KeyId")]
    key_id: &'a str,
    #[serde(rename = "EncryptionContext")]
    context: &'a BTreeMap<String, String>,
    #[serde(rename = "KeySpec", skip_serializing_if = "Option::is_none")]
    key_spec: Option<&'static str>,
    #[serde(rename = "CiphertextBlob", skip_serializing_if = "Option::is_none")]
    blob: Option<&'a str>,
    #[serde(rename = "Plaintext", skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
}

/// The members of an answer we read. `Plaintext` is borrowed from the (zeroized) body when
/// it has no JSON escapes (base64 never needs one), else owned and wiped after decoding.
#[derive(Deserialize)]
struct KmsOut<'a> {
    #[serde(rename = "Plaintext", borrow, default)]
    plaintext: std::borrow::Cow<'a, str>,
    #[serde(rename = "CiphertextBlob", default)]
    blob: Option<String>,
    /// The ARN of the key that did the work (KMS resolves an alias or key id to it).
    #[serde(rename = "KeyId", default)]
    key_id: Option<String>,
}

/// A fresh data key from [`KmsClient::generate`]. Debug shows the key ARN and the blob's
/// length only.
pub struct GeneratedDataKey {
    /// The 32-byte data key, wiped when dropped.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// `CiphertextBlob`: the data key wrapped by the KMS key (opaque; to be stored).
    pub blob: Vec<u8>,
    /// The ARN of the KMS key that wrapped it (the answer's `KeyId`; the configured id when a
    /// KMS-compatible server leaves it out). Recorded with the blob, it still names the right
    /// key after an alias is pointed at a new key: pass it to [`KmsClient::decrypt_under`].
    pub key_arn: String,
}

impl fmt::Debug for GeneratedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedDataKey")
            .field("key_arn", &self.key_arn)
            .field("blob_len", &self.blob.len())
            .finish_non_exhaustive()
    }
}

/// A zeroized buffer that `bytes::Bytes` can own: the request body is wiped when the HTTP
/// client drops its last reference.
struct WipedBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for WipedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl KmsClient {
    /// A client for `s.key_id`. No request is made (the first call checks key and rights).
    ///
    /// Errors (`InvalidSettings`): an empty key id or region, an endpoint that is not an
    /// `http(s)://host` URL, or an HTTP client that cannot be built (no CA certificates).
    pub fn new(s: KmsSettings) -> Result<KmsClient, KmsError> {
        let key_id = s.key_id.trim().to_string();
        if key_id.is_empty() {
            return Err(KmsError::settings(
                "",
                "the key id is empty".into(),
                "set storage.encryption.awsKms.keyId to a key id, key ARN or alias/...",
            ));
        }
        let region = s.region.trim().to_string();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(KmsError::settings(
                &key_id,
                format!("region {region:?} is not an AWS region name"),
                "set storage.encryption.awsKms.region, e.g. us-east-1",
            ));
        }
        let endpoint = match s.endpoint.as_deref().map(str::trim) {
            Some(e) if !e.is_empty() => e.trim_end_matches('/').to_string(),
            _ if region.starts_with("cn-") => format!("https://kms.{region}.amazonaws.com.cn"),
            _ => format!("https://kms.{region}.amazonaws.com"),
        };
        let (url, origin, tls) = parse_endpoint(&endpoint).ok_or_else(|| {
            KmsError::settings(
                &key_id,
                format!(
                    "endpoint {} is not an http(s)://host[:port] URL",
                    crate::redact::url_origin(&endpoint)
                ),
                "set storage.encryption.awsKms.endpoint, or leave it empty for the region's",
            )
        })?;
        let http = super::http::http_client(
            &format!("the KMS endpoint {origin}"),
            tls,
            Some(ATTEMPT_TIMEOUT),
        )
        .map_err(|e| KmsError::settings(&key_id, e, ""))?;
        let static_credentials = s.credentials.is_some();
        let signer = signer(&region, s.credentials);
        Ok(KmsClient {
            key_id,
            region,
            url,
            origin,
            http,
            signer,
            static_credentials,
        })
    }

    /// The configured key id (as given: id, ARN or alias).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `GenerateDataKey` with KeySpec `AES_256` and `context` as the encryption context:
    /// a fresh 32-byte data key and its `CiphertextBlob` (the key wrapped by this KMS key,
    /// opaque, to be stored). IAM: `kms:GenerateDataKey` on the key.
    ///
    /// Errors: as KMS answers (see [`KmsError`]); `InvalidResponse` if the answer lacks a
    /// 32-byte `Plaintext` or a `CiphertextBlob`.
    pub async fn generate_data_key(
        &self,
        context: &BTreeMap<String, String>,
    ) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), KmsError> {
        let g = self.generate(context).await?;
        Ok((g.plaintext, g.blob))
    }

    /// [`KmsClient::generate_data_key`], also returning the ARN of the key that wrapped the
    /// data key (see [`GeneratedDataKey::key_arn`]).
    pub async fn generate(
        &self,
        context: &BTreeMap<String, String>,
    ) -> Result<GeneratedDataKey, KmsError> {
        let op = Op::GenerateDataKey;
        let req = KmsIn {
            key_id: &self.key_id,
            context,
            key_spec: Some("AES_256"),
            blob: None,
            plaintext: None,
        };
        let body = self.call(op, &req).await?;
        let out = self.parse(op, &body)?;
        let blob = self.blob(op, out.blob.as_deref())?;
        let key_arn = out
            .key_id
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| self.key_id.clone());
        let plaintext = self.key(op, out.plaintext)?;
        Ok(GeneratedDataKey {
            plaintext,
            blob,
            key_arn,
        })
    }

    /// [`KmsClient::decrypt`] naming `key_id` (e.g. a recorded [`GeneratedDataKey::key_arn`])
    /// instead of the configured key; errors name `key_id`. Endpoint, region and credentials
    /// are this client's.
    pub async fn decrypt_under(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let mut other = self.clone();
        if !key_id.trim().is_empty() {
            other.key_id = key_id.trim().to_string();
        }
        other.decrypt(blob, context).await
    }

    /// `Decrypt` of a `CiphertextBlob` with the same encryption context it was made with.
    /// `KeyId` is sent too, so KMS refuses a blob of another key instead of using it.
    /// IAM: `kms:Decrypt` on the key.
    ///
    /// Errors: `InvalidCiphertextException` for a changed blob or a different context;
    /// `IncorrectKeyException` (AWS) or `AccessDeniedException` (moto) for a blob of another
    /// key; `InvalidResponse` if the plaintext is not 32 bytes.
    pub async fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let op = Op::Decrypt;
        let blob = B64.encode(blob);
        let req = KmsIn {
            key_id: &self.key_id,
            context,
            key_spec: None,
            blob: Some(&blob),
            plaintext: None,
        };
        let body = self.call(op, &req).await?;
        let out = self.parse(op, &body)?;
        self.key(op, out.plaintext)
    }

    /// `Encrypt` of a 32-byte data key under this client's key with `context`: the new
    /// `CiphertextBlob` (to re-wrap a data key under a new KMS key). IAM: `kms:Encrypt`.
    pub async fn encrypt(
        &self,
        plaintext: &[u8; 32],
        context: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, KmsError> {
        let op = Op::Encrypt;
        // base64 of 32 bytes is 44 characters; written into a buffer that is wiped
        let mut text = Zeroizing::new([0u8; 44]);
        let n = B64
            .encode_slice(plaintext, &mut text[..])
            .map_err(|_| self.invalid(op, "cannot encode the data key"))?;
        let text = std::str::from_utf8(&text[..n])
            .map_err(|_| self.invalid(op, "cannot encode the data key"))?;
        let req = KmsIn {
            key_id: &self.key_id,
            context,
            key_spec: None,
            blob: None,
            plaintext: Some(text),
        };
        let body = self.call(op, &req).await?;
        let out = self.parse(op, &body)?;
        self.blob(op, out.blob.as_deref())
    }

    /// Serializes `req` into a zeroized buffer and sends it with the retries; the answer's
    /// body (zeroized) on HTTP 2xx.
    async fn call(&self, op: Op, req: &KmsIn<'_>) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        // sized up front so that growing never leaves an unwiped copy of a plaintext behind
        let cap = 256
            + 6 * (req.key_id.len()
                + req.blob.map_or(0, str::len)
                + req.plaintext.map_or(0, str::len)
                + req
                    .context
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 6)
                    .sum::<usize>());
        let mut buf = Zeroizing::new(Vec::with_capacity(cap));
        serde_json::to_writer(&mut *buf, req)
            .map_err(|_| self.invalid(op, "cannot write the request"))?;
        let body = bytes::Bytes::from_owner(WipedBody(buf));
        (|| self.attempt(op, body.clone()))
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(RETRY_MIN_DELAY)
                    .with_max_times(RETRIES),
            )
            .when(KmsError::is_transient)
            .notify(|e, wait| {
                tracing::warn!("{e}; retrying in {} ms", wait.as_millis());
            })
            .await
    }

    /// One signed request.
    async fn attempt(&self, op: Op, body: bytes::Bytes) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let digest = hex::encode(sha2::Sha256::digest(&body));
        let head = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{}", op.name()))
            .header("x-amz-content-sha256", digest)
            .body(())
            .map_err(|_| self.invalid(op, "cannot build the request"))?;
        let (mut parts, ()) = head.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| self.sign_error(op, &e))?;
        let req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|_| self.invalid(op, "cannot build the request"))?;
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| self.transport_error(op, &e))?;
        let status = resp.status();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(op, &e))?;
        // reuses the buffer when the body is one owned chunk
        let body = Zeroizing::new(Vec::<u8>::from(bytes));
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = error_code(status.as_u16(), error_type.as_deref(), &body);
        Err(self.service_error(op, status.as_u16(), code, message))
    }

    fn parse<'b>(&self, op: Op, body: &'b [u8]) -> Result<KmsOut<'b>, KmsError> {
        // serde_json's message may quote the input (a key): only its position is kept
        serde_json::from_slice(body).map_err(|e| {
            self.invalid(
                op,
                &format!(
                    "the answer is not KMS JSON (line {} column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// Decodes a base64 `Plaintext` straight into a wiped buffer; wipes an owned copy.
    fn key(
        &self,
        op: Op,
        mut text: std::borrow::Cow<'_, str>,
    ) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let mut buf = Zeroizing::new([0u8; 48]);
        let decoded = B64.decode_slice(text.as_bytes(), &mut buf[..]);
        if let std::borrow::Cow::Owned(s) = &mut text {
            s.zeroize();
        }
        match decoded {
            Ok(32) => {
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(&buf[..32]);
                Ok(key)
            }
            Ok(0) => Err(self.invalid(op, "the answer has no Plaintext")),
            Ok(n) => Err(self.invalid(
                op,
                &format!("the Plaintext is {n} bytes, not the 32 of an AES-256 key"),
            )),
            Err(_) => Err(self.invalid(op, "the Plaintext is not base64 of 32 bytes")),
        }
    }

    fn blob(&self, op: Op, text: Option<&str>) -> Result<Vec<u8>, KmsError> {
        match text.map(|t| B64.decode(t)) {
            Some(Ok(b)) if !b.is_empty() => Ok(b),
            Some(_) => Err(self.invalid(op, "the CiphertextBlob is not base64")),
            None => Err(self.invalid(op, "the answer has no CiphertextBlob")),
        }
    }

    fn error(&self, op: Op, code: &str, detail: String, transient: bool) -> KmsError {
        KmsError {
            op: op.name(),
            key_id: self.key_id.clone(),
            code: code.to_string(),
            hint: hint(op, code, &self.region, &self.origin),
            detail,
            transient,
        }
    }

    fn invalid(&self, op: Op, detail: &str) -> KmsError {
        self.error(op, "InvalidResponse", detail.to_string(), false)
    }

    fn service_error(&self, op: Op, status: u16, code: String, message: String) -> KmsError {
        let transient = status >= 500 || status == 429 || TRANSIENT.contains(&code.as_str());
        self.error(op, &code, message, transient)
    }

    fn transport_error(&self, op: Op, e: &reqwest::Error) -> KmsError {
        let (code, detail) = if e.is_timeout() {
            (
                "Timeout",
                format!(
                    "no answer from {} within {} s",
                    self.origin,
                    ATTEMPT_TIMEOUT.as_secs()
                ),
            )
        } else if e.is_connect() {
            (
                "ConnectionFailed",
                format!(
                    "cannot connect to {}: {}",
                    self.origin,
                    one_line(&super::http::chain(e))
                ),
            )
        } else {
            (
                "ConnectionFailed",
                format!("{}: {}", self.origin, one_line(&super::http::chain(e))),
            )
        };
        self.error(op, code, crate::redact::scrub(&detail, &[]), true)
    }

    fn sign_error(&self, op: Op, e: &reqsign_core::Error) -> KmsError {
        let detail = one_line(&crate::redact::scrub(&super::http::chain(e), &[]));
        match e.kind() {
            reqsign_core::ErrorKind::CredentialInvalid | reqsign_core::ErrorKind::ConfigInvalid => {
                self.error(op, "NoCredentials", detail, e.is_retryable())
            }
            _ => self.error(op, "SigningFailed", detail, e.is_retryable()),
        }
    }
}

/// Error codes KMS documents as retryable (besides HTTP 5xx and 429).
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "KMSInternalException",
    "KeyUnavailableException",
    "DependencyTimeoutException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
];

/// `(url, origin, tls)` of an endpoint: `url` is where requests go (`.../`), `origin` is
/// `scheme://host[:port]`. None if it is not an http(s) URL with a host, or has a query.
fn parse_endpoint(endpoint: &str) -> Option<(String, String, bool)> {
    let uri: http::Uri = endpoint.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || uri.query().is_some() {
        return None;
    }
    let authority = uri.authority()?.as_str();
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let path = uri.path().trim_end_matches('/');
    let origin = format!("{scheme}://{authority}");
    Some((format!("{origin}{path}/"), origin, scheme == "https"))
}

/// The error code and message of a KMS error answer: the `x-amzn-ErrorType` header, else the
/// JSON `__type` (its part after `#`) and `message`, else an XML `<Code>`/`<Message>` (IAM
/// refusals of some KMS-compatible servers, e.g. moto), else `HTTP <status>`.
fn error_code(status: u16, header: Option<&str>, body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct JsonError {
        #[serde(rename = "__type", default)]
        kind: String,
        #[serde(default, alias = "Message")]
        message: String,
    }
    let clean = |c: &str| {
        let c = c.split(':').next().unwrap_or(c);
        c.rsplit('#').next().unwrap_or(c).trim().to_string()
    };
    let json: Option<JsonError> = serde_json::from_slice(body).ok();
    let text = String::from_utf8_lossy(body);
    let xml = |tag: &str| {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{tag}>"))?;
        Some(text[start..start + len].to_string())
    };
    let code = header
        .map(clean)
        .filter(|c| !c.is_empty())
        .or_else(|| {
            json.as_ref()
                .map(|j| clean(&j.kind))
                .filter(|c| !c.is_empty())
        })
        .or_else(|| xml("Code").map(|c| clean(&c)))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = json
        .map(|j| j.message)
        .filter(|m| !m.is_empty())
        .or_else(|| xml("Message"))
        .unwrap_or_default();
    (code, one_line(&crate::redact::scrub(&message, &[])))
}

/// Whitespace collapsed to single spaces, at most 300 characters.
fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// What to do about an error `code` of `op` (AWS KMS API reference, "Errors" of each
/// operation, and the key states of "Key states of AWS KMS keys").
fn hint(op: Op, code: &str, region: &str, origin: &str) -> String {
    let action = format!("kms:{}", op.name());
    match code {
        "AccessDeniedException" | "AccessDenied" if op == Op::Decrypt => format!(
            "the credential may not use {action} on this key, or the wrapped data key was made under another KMS key: allow {action} in the IAM and key policies (docs/security.md), or configure the key that wrapped this run"
        ),
        "AccessDeniedException" | "AccessDenied" => format!(
            "the credential may not use {action} on this key: allow it in the IAM policy and the key policy (docs/security.md)"
        ),
        "NotFoundException" => format!(
            "no such key in region {region}: check storage.encryption.awsKms.keyId and region"
        ),
        "DisabledException" => {
            "the key is disabled: enable it (EnableKey) or set keyId to an enabled key".into()
        }
        "KMSInvalidStateException" => "the key cannot be used in its state (pending deletion or import): cancel the deletion (CancelKeyDeletion) or use another key".into(),
        "InvalidCiphertextException" => "the wrapped data key was changed, or its encryption context (backup name, run id) differs from the one it was made with: the stored key does not belong to this run".into(),
        "IncorrectKeyException" => "the wrapped data key was made under another KMS key: set keyId to the key that wrapped this run".into(),
        "InvalidKeyUsageException" => "the key is not a symmetric ENCRYPT_DECRYPT key: use a symmetric encryption key".into(),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException"
        | "SignatureDoesNotMatch" | "IncompleteSignature" | "ExpiredTokenException" => {
            "the access key is unknown, expired or its secret is wrong: check storage.encryption.awsKms.credentialsSecret (or the pod's AWS identity)".into()
        }
        "NoCredentials" => "no AWS credentials found: set storage.encryption.awsKms.credentialsSecret, or give the pod an AWS identity (IRSA / web identity, env)".into(),
        "Timeout" | "ConnectionFailed" => format!(
            "retried {RETRIES} times; check storage.encryption.awsKms.endpoint ({origin}) and the network path to it"
        ),
        c if TRANSIENT.contains(&c) || c.starts_with("HTTP 5") => {
            format!("KMS is busy or unavailable (retried {RETRIES} times): try again later")
        }
        "InvalidResponse" => format!("{origin} does not answer as AWS KMS: check storage.encryption.awsKms.endpoint"),
        _ => "see the AWS KMS API reference for this error code".into(),
    }
}

/// The signer: SigV4 for service `kms` in `region`, with static credentials or the default
/// chain (whose web-identity and metadata requests go through our HTTP transport).
fn signer(region: &str, credentials: Option<(String, String)>) -> Signer<Credential> {
    let ctx = Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_env(OsEnv);
    let rs = RequestSigner::new("kms", region);
    match credentials {
        Some((ak, sk)) => {
            let sk = Zeroizing::new(sk);
            Signer::new(ctx, StaticCredentialProvider::new(ak.trim(), sk.trim()), rs)
        }
        None => {
            // STS (AssumeRoleWithWebIdentity) is https; without CA certificates the
            // env and metadata sources still work over plain http
            let sts = format!("https://sts.{region}.amazonaws.com");
            let ctx = match super::transport::Transport::new(&sts)
                .or_else(|_| super::transport::Transport::new("http://169.254.169.254"))
            {
                Ok(t) => ctx.with_http_send(opendal::HttpTransporter::new(t)),
                Err(_) => ctx,
            };
            Signer::new(ctx, DefaultCredentialProvider::new(), rs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>) -> KmsSettings {
        KmsSettings {
            key_id: "alias/kbo".into(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(str::to_string),
            credentials: Some(("AKIDEXAMPLE".into(), "SecretMarker/0123456789".into())),
        }
    }

    /// The client can be shared between tasks and its calls spawned (compile-time check).
    #[allow(dead_code)]
    fn client_and_calls_are_send_and_sync(c: &KmsClient, ctx: &BTreeMap<String, String>) {
        fn shared<T: Clone + Send + Sync + 'static>(_: &T) {}
        fn sendable<T: Send>(_: T) {}
        shared(c);
        sendable(c.generate_data_key(ctx));
        sendable(c.decrypt(b"", ctx));
        sendable(c.encrypt(&[0; 32], ctx));
    }

    #[test]
    fn endpoints_default_to_the_region_and_bad_ones_are_refused_by_field() {
        let c = KmsClient::new(settings(None)).unwrap();
        assert_eq!(c.url, "https://kms.eu-west-1.amazonaws.com/");
        let c = KmsClient::new(settings(Some("http://127.0.0.1:19000/"))).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:19000/");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("SecretMarker") && dbg.contains("alias/kbo"),
            "{dbg}"
        );
        for bad in ["ftp://x", "kms.local", "http://u:p@h/", "https://h/?a=b"] {
            let e = KmsClient::new(settings(Some(bad))).unwrap_err();
            let s = e.to_string();
            assert!(s.contains("awsKms.endpoint") && !s.contains("u:p"), "{s}");
            assert_eq!(e.code(), "InvalidSettings");
        }
        let mut s = settings(None);
        s.region = "EU West".into();
        let e = KmsClient::new(s).unwrap_err().to_string();
        assert!(e.contains("awsKms.region"), "{e}");
    }

    #[test]
    fn error_codes_are_read_from_header_json_and_xml() {
        // shapes of the AWS KMS API reference (JSON 1.1 errors) and moto's IAM refusal (XML)
        let (c, m) = error_code(
            400,
            None,
            br#"{"__type":"com.amazonaws.kms#DisabledException","message":"arn:aws:kms:eu-west-1:1:key/k is disabled."}"#,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            (
                "DisabledException",
                "arn:aws:kms:eu-west-1:1:key/k is disabled."
            )
        );
        let (c, _) = error_code(
            400,
            Some("KMSInvalidStateException:http://internal.amazon.com/coral/"),
            b"{}",
        );
        assert_eq!(c, "KMSInvalidStateException");
        let (c, m) = error_code(
            403,
            None,
            b"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>not authorized to perform: kms:GenerateDataKey</Message></Error></Errors></ErrorResponse>",
        );
        assert_eq!(c, "AccessDenied");
        assert!(m.contains("kms:GenerateDataKey"));
        assert_eq!(
            error_code(502, None, b"<html>bad gateway</html>").0,
            "HTTP 502"
        );
    }

    #[test]
    fn throttling_and_5xx_are_transient_and_refusals_are_not() {
        let c = KmsClient::new(settings(None)).unwrap();
        let e = |status, code: &str| c.service_error(Op::Decrypt, status, code.into(), "m".into());
        assert!(e(400, "ThrottlingException").is_transient());
        assert!(e(500, "KMSInternalException").is_transient());
        assert!(e(503, "HTTP 503").is_transient());
        assert!(!e(400, "DisabledException").is_transient());
        assert!(!e(400, "AccessDeniedException").is_transient());
        let s = e(400, "DisabledException").to_string();
        assert!(
            s.contains("\"alias/kbo\"")
                && s.contains("DisabledException")
                && s.contains("EnableKey"),
            "{s}"
        );
        assert!(!s.contains('\n'));
    }

    #[test]
    fn a_plaintext_of_the_wrong_size_is_refused_without_quoting_it() {
        let c = KmsClient::new(settings(None)).unwrap();
        let short = B64.encode([7u8; 16]);
        let e = c
            .key(Op::Decrypt, short.clone().into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("16 bytes") && !e.contains(&short), "{e}");
        let e = c
            .parse(Op::Decrypt, br#"{"Plaintext": 5, "x": "QUJDREVGR0g="}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("QUJD"), "{e}");
        let k = c.key(Op::Decrypt, B64.encode([9u8; 32]).into()).unwrap();
        assert_eq!(*k, [9u8; 32]);
    }
}
