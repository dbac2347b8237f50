//! S3 Object Lock (`storage.s3.objectLock`, ours): which objects a backup run locks, the
//! retention headers on their PUT, the bucket check at the start of a run, and the reads of an
//! object's retention (validation, retention, `kubectl kafkabackup runs`). Keys only: the
//! `objectLock` record a run's manifest carries is the format's
//! (`format::manifest::ObjectLockRecord::for_run`).
//!
//! Protocol facts (S3 API reference): PutObject and CreateMultipartUpload take
//! `x-amz-object-lock-mode` (`COMPLIANCE` or `GOVERNANCE`) and
//! `x-amz-object-lock-retain-until-date` (ISO 8601); a PUT with them needs a checksum header
//! (`Content-MD5` or an `x-amz-checksum-*` header; SDKs also send `x-amz-sdk-checksum-algorithm`);
//! every `x-amz-*` header must be signed (SigV4); `GET /?object-lock` on the bucket is
//! GetObjectLockConfiguration (`ObjectLockConfigurationNotFoundError`, HTTP 404, when the bucket
//! has none); HeadObject returns the two headers above for a locked version when the caller may
//! `s3:GetObjectRetention`. A locked version cannot be deleted (DeleteObject with its
//! `versionId` answers 403 AccessDenied) until its date; a DELETE without a version id only adds
//! a delete marker, which Object Lock does not prevent.
//!
//! opendal 0.59 has no Object Lock option, so the headers are added in our HTTP transport
//! ([`super::transport`]): a request that writes a locked key gets them and is signed again with
//! `reqsign-aws-v4` (the signer opendal itself uses) under the same credentials.
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Method, Request};
use opendal::Buffer;
use reqsign_aws_v4::{
    Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider,
};
use reqsign_core::{Context, Signer};

use super::{StorageError, StorageTarget};
use crate::api::common::{ObjectLockMode, ObjectLockSpec};

/// One day in epoch milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// The API field, for messages.
pub const FIELD: &str = "spec.storage.s3.objectLock";
const MODE: &str = "x-amz-object-lock-mode";
const UNTIL: &str = "x-amz-object-lock-retain-until-date";

/// `COMPLIANCE` or `GOVERNANCE`, as in the S3 API.
pub fn mode_name(m: ObjectLockMode) -> &'static str {
    match m {
        ObjectLockMode::Compliance => "COMPLIANCE",
        ObjectLockMode::Governance => "GOVERNANCE",
    }
}

/// The Layout rule (docs/format.md, "Object Lock"): true for the keys a backup run writes once
/// and never rewrites: `<backup>/data/...` (segments and indexes), `<backup>/keys/...`
/// (encryption key documents) and `<backup>/runs/<id>/manifest.json`. Everything else is
/// rewritten or deleted by design (lock.json, repository.json, checkpoint documents, restore
/// journals and offset maps, validation reports) and is never locked. `key` is relative to
/// the storage root.
pub fn is_locked_key(key: &str) -> bool {
    let Some((backup, rest)) = key.split_once('/') else {
        return false;
    };
    if backup.is_empty() {
        return false;
    }
    if rest.starts_with("data/") || rest.starts_with("keys/") {
        return true;
    }
    matches!(
        rest.strip_prefix("runs/").and_then(|r| r.split_once('/')),
        Some((id, "manifest.json")) if !id.is_empty()
    )
}

/// `2026-12-05T18:00:00Z` (whole seconds, as S3 and its clones parse it) of epoch ms `ms`.
pub fn iso_date(ms: i64) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// Epoch ms of an ISO 8601 / RFC 3339 date as S3 returns it.
fn parse_date(s: &str) -> Option<i64> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The S3 settings of a target that has `objectLock`, else None.
struct S3Parts<'a> {
    bucket: &'a str,
    region: &'a str,
    prefix: String,
    path_style: bool,
    credentials: Option<&'a (String, String)>,
    lock: Option<&'a ObjectLockSpec>,
}

fn s3_parts(t: &StorageTarget) -> Option<S3Parts<'_>> {
    match t {
        StorageTarget::S3 {
            bucket,
            region,
            prefix,
            path_style,
            credentials,
            object_lock,
            ..
        } => {
            let p = prefix.as_deref().unwrap_or("").trim_matches('/');
            Some(S3Parts {
                bucket,
                region,
                prefix: if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                },
                path_style: *path_style,
                credentials: credentials.as_ref(),
                lock: object_lock.as_ref(),
            })
        }
        _ => None,
    }
}

/// A SigV4 signer for S3 with the target's static key, or the AWS credential chain (env, web
/// identity / IRSA, profile, instance metadata) as opendal uses when there is none.
fn signer(p: &S3Parts<'_>, client: reqwest::Client) -> Signer<Credential> {
    let ctx = Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(opendal::HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        ))
        .with_env(reqsign_core::OsEnv);
    let rs = RequestSigner::new("s3", p.region);
    match p.credentials {
        Some((ak, sk)) => Signer::new(ctx, StaticCredentialProvider::new(ak, sk), rs),
        None => Signer::new(ctx, DefaultCredentialProvider::new(), rs),
    }
}

/// Signs `parts` again: the old signature, date and token go, the signer adds its own.
async fn resign(
    signer: &Signer<Credential>,
    parts: &mut http::request::Parts,
) -> Result<(), String> {
    for h in [
        AUTHORIZATION.as_str(),
        "x-amz-date",
        "x-amz-security-token",
        HOST.as_str(),
    ] {
        parts.headers.remove(h);
    }
    signer
        .sign(parts, None)
        .await
        .map_err(|e| format!("signing an S3 request: {e}"))?;
    // as opendal does: reqwest sets Host itself
    parts.headers.remove(HOST);
    Ok(())
}

/// Adds the retention of `storage.s3.objectLock` to the requests of our HTTP transport that
/// write a locked key ([`is_locked_key`]): PutObject (PUT without a query) and
/// CreateMultipartUpload (POST `?uploads`); parts and completion carry none (S3 applies the
/// upload's). The date is the request's time plus `retainDays` (whole seconds, rounded up), so
/// a long run's late objects are locked as long as its early ones.
pub(super) struct LockHeaders {
    mode: &'static str,
    retain_ms: i64,
    /// URL path before a key: `/<bucket>/<prefix>/` (path style) or `/<prefix>/`.
    root: String,
    signer: Signer<Credential>,
}

impl LockHeaders {
    /// For an S3 target with `objectLock`; None otherwise. Errors: no HTTP client.
    pub(super) fn for_target(t: &StorageTarget, endpoint: &str) -> Result<Option<Self>, String> {
        let Some(p) = s3_parts(t) else {
            return Ok(None);
        };
        let Some(lock) = p.lock else { return Ok(None) };
        let tls = !endpoint.trim().to_ascii_lowercase().starts_with("http://");
        let client = super::http::http_client("the S3 credential endpoints", tls, None)?;
        Ok(Some(LockHeaders {
            mode: mode_name(lock.mode),
            retain_ms: lock.retain_days as i64 * DAY_MS,
            root: if p.path_style {
                format!("/{}/{}", p.bucket, p.prefix)
            } else {
                format!("/{}", p.prefix)
            },
            signer: signer(&p, client),
        }))
    }

    /// Whether `req` creates an object under a locked key.
    pub(super) fn wants(&self, req: &Request<Buffer>) -> bool {
        let uri = req.uri();
        let creates = match (req.method(), uri.query()) {
            (&Method::PUT, None) => !req.headers().contains_key("x-amz-copy-source"),
            (&Method::POST, Some(q)) => q == "uploads" || q == "uploads=",
            _ => false,
        };
        creates
            && uri
                .path()
                .strip_prefix(&self.root)
                .is_some_and(is_locked_key)
    }

    /// `req` with the retention headers (and a CRC-32C checksum on a PUT that has none),
    /// signed again.
    pub(super) async fn apply(&self, req: Request<Buffer>) -> opendal::Result<Request<Buffer>> {
        let (mut parts, body) = req.into_parts();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let until = (now + 999).div_euclid(1000) * 1000 + self.retain_ms;
        let h = &mut parts.headers;
        h.insert(MODE, HeaderValue::from_static(self.mode));
        h.insert(UNTIL, header(&iso_date(until))?);
        if parts.method == Method::PUT {
            if !h.contains_key("content-md5") && !h.contains_key("x-amz-checksum-crc32c") {
                let mut crc = 0u32;
                for chunk in body.clone() {
                    crc = crc32c::crc32c_append(crc, &chunk);
                }
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
                h.insert("x-amz-checksum-crc32c", header(&b64)?);
            }
            if h.contains_key("x-amz-checksum-crc32c") {
                h.insert(
                    "x-amz-sdk-checksum-algorithm",
                    HeaderValue::from_static("CRC32C"),
                );
            }
        }
        resign(&self.signer, &mut parts)
            .await
            .map_err(|m| opendal::Error::new(opendal::ErrorKind::Unexpected, m))?;
        Ok(Request::from_parts(parts, body))
    }
}

fn header(v: &str) -> opendal::Result<HeaderValue> {
    HeaderValue::from_str(v)
        .map_err(|e| opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string()))
}

/// The retention an object's current version carries (HeadObject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`; None when the answer has no lock.
    pub mode: Option<String>,
    /// Epoch ms of `x-amz-object-lock-retain-until-date`; None when the answer has none.
    pub until_ms: Option<i64>,
}

/// Signed S3 requests the opendal operator does not offer: GetObjectLockConfiguration and
/// HeadObject's lock headers. Keys are relative to the storage root, as for the operator.
pub struct LockClient {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `scheme://host[:port]/<bucket>` (path style) or `scheme://<bucket>.host[:port]`.
    base: String,
    /// `<prefix>/` or empty.
    prefix: String,
    bucket: String,
}

impl LockClient {
    /// For an S3 target; None for other storage types.
    pub fn new(t: &StorageTarget) -> Result<Option<LockClient>, StorageError> {
        let Some(p) = s3_parts(t) else {
            return Ok(None);
        };
        let endpoint = t.endpoint_url().trim_end_matches('/').to_string();
        let tls = !endpoint.to_ascii_lowercase().starts_with("http://");
        let origin = crate::redact::url_origin(&endpoint);
        let client = super::http::http_client(
            &format!("the storage endpoint {origin}"),
            tls,
            Some(super::OP_TIMEOUT),
        )
        .map_err(StorageError::Config)?;
        let base = if p.path_style {
            format!("{endpoint}/{}", p.bucket)
        } else {
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", p.bucket),
                None => format!("https://{}.{endpoint}", p.bucket),
            }
        };
        Ok(Some(LockClient {
            signer: signer(&p, client.clone()),
            client,
            base,
            prefix: p.prefix,
            bucket: p.bucket.to_string(),
        }))
    }

    /// One signed request; (status, headers, body). `what` names the operation in errors.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        what: &'static str,
    ) -> Result<(http::StatusCode, http::HeaderMap, String), StorageError> {
        let url = format!("{}{path_and_query}", self.base);
        let fail = |kind: opendal::ErrorKind, m: String| {
            super::backend(what, path_and_query, opendal::Error::new(kind, m))
        };
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(|e| fail(opendal::ErrorKind::Unexpected, e.to_string()))?;
        let (mut parts, ()) = req.into_parts();
        resign(&self.signer, &mut parts)
            .await
            .map_err(|m| fail(opendal::ErrorKind::PermissionDenied, m))?;
        let req = reqwest::Request::try_from(Request::from_parts(parts, Vec::<u8>::new()))
            .map_err(|e| fail(opendal::ErrorKind::Unexpected, e.to_string()))?;
        let resp = self.client.execute(req).await.map_err(|e| {
            fail(opendal::ErrorKind::Unexpected, super::http::chain(&e)).into_transient()
        })?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.text().await.unwrap_or_default();
        Ok((status, headers, body))
    }

    /// Whether the bucket has Object Lock enabled (GetObjectLockConfiguration).
    pub async fn bucket_lock_enabled(&self) -> Result<bool, StorageError> {
        let (status, _, body) = self
            .send(Method::GET, "/?object-lock", "GetObjectLockConfiguration")
            .await?;
        if status.is_success() {
            return Ok(xml_tag(&body, "ObjectLockEnabled").as_deref() == Some("Enabled"));
        }
        if xml_tag(&body, "Code").as_deref() == Some("ObjectLockConfigurationNotFoundError") {
            return Ok(false);
        }
        Err(answer_error(
            "GetObjectLockConfiguration",
            &self.bucket,
            status,
            &body,
        ))
    }

    /// The retention of `key`'s current version (HeadObject); None when it does not exist.
    pub async fn retention(&self, key: &str) -> Result<Option<Retention>, StorageError> {
        let path = format!("/{}{}", self.prefix, encode_key(key));
        let (status, headers, body) = self.send(Method::HEAD, &path, "HeadObject").await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(answer_error("HeadObject", key, status, &body));
        }
        let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
        Ok(Some(Retention {
            mode: get(MODE).map(str::to_string),
            until_ms: get(UNTIL).and_then(parse_date),
        }))
    }
}

impl StorageError {
    /// The same backend error, marked temporary (a transport failure).
    fn into_transient(self) -> StorageError {
        match self {
            StorageError::Backend {
                op,
                path,
                source,
                detail,
                hint,
            } => StorageError::Backend {
                op,
                path,
                source: Box::new(source.set_temporary()),
                detail,
                hint,
            },
            e => e,
        }
    }
}

/// An S3 error answer as a storage error: `HTTP <status> <Code>: <Message>` only.
fn answer_error(
    op: &'static str,
    path: &str,
    status: http::StatusCode,
    body: &str,
) -> StorageError {
    let mut m = format!("HTTP {}", status.as_u16());
    if let Some(c) = xml_tag(body, "Code") {
        m.push_str(&format!(" {c}"));
    }
    if let Some(msg) = xml_tag(body, "Message") {
        m.push_str(&format!(": {msg}"));
    }
    let kind = match status.as_u16() {
        401 | 403 => opendal::ErrorKind::PermissionDenied,
        404 => opendal::ErrorKind::NotFound,
        _ => opendal::ErrorKind::Unexpected,
    };
    let e = opendal::Error::new(kind, m);
    let e = if status.is_server_error() || status.as_u16() == 429 {
        e.set_temporary()
    } else {
        e
    };
    super::backend(op, path, e)
}

/// The text of the first `<tag>` element of a small XML document.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let a = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let b = body[a..].find(&format!("</{tag}>"))? + a;
    Some(body[a..b].trim().to_string())
}

/// A key percent-encoded for a URL path (`/` kept; unreserved characters as they are).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses a run on a bucket without Object Lock when the target has `objectLock` (nothing
/// is written before): GetObjectLockConfiguration, once. Other targets: Ok.
///
/// Errors: `storage-config` naming [`FIELD`] and the fix when the bucket has no Object Lock;
/// a storage error when the question cannot be asked (denied: the key needs
/// `s3:GetBucketObjectLockConfiguration`).
pub async fn require_bucket_lock(t: &StorageTarget) -> Result<(), StorageError> {
    if s3_parts(t).and_then(|p| p.lock).is_none() {
        return Ok(());
    }
    let Some(c) = LockClient::new(t)? else {
        return Ok(());
    };
    if c.bucket_lock_enabled().await? {
        return Ok(());
    }
    Err(StorageError::Config(format!(
        "{FIELD}: bucket {:?} does not have S3 Object Lock enabled, so its objects cannot be locked; nothing was written. Enable Object Lock on the bucket (it needs versioning; a new bucket: create it with Object Lock enabled) or remove {FIELD}",
        c.bucket
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_rule_locks_what_is_written_once_and_nothing_rewritten() {
        for k in [
            "b/data/t/0/00000000000000000000-20261121T070113.643Z.seg",
            "b/data/t/0/00000000000000000000-20261121T070113.643Z.idx.json",
            "b/keys/k2026.json",
            "b/runs/20261121T070113.643Z/manifest.json",
        ] {
            assert!(is_locked_key(k), "{k}");
        }
        for k in [
            "b/lock.json",
            "b/repository.json",
            "b/runs/20261121T070113.643Z/checkpoint.json",
            "b/runs/20261121T070113.643Z/checkpoint/0000000001.json",
            "b/restores/r/journal.json",
            "b/restores/r/lock.json",
            "b/restores/r/20261121T070113.643Z/offset-map.json",
            "b/validations/v/v-1.json",
            "evidence-reports/x/r.json",
            "data/x",
            "/data/x",
            "b/runs//manifest.json",
        ] {
            assert!(!is_locked_key(k), "{k}");
        }
    }

    fn lock_headers(path_style: bool) -> LockHeaders {
        let t = StorageTarget::S3 {
            bucket: "bk".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:19000".into()),
            prefix: Some("/pre/".into()),
            path_style,
            credentials: Some(("AKIDMARKER".into(), "SECRETMARKER".into())),
            object_lock: Some(ObjectLockSpec {
                mode: ObjectLockMode::Governance,
                retain_days: 2,
            }),
        };
        LockHeaders::for_target(&t, "http://127.0.0.1:19000")
            .unwrap()
            .unwrap()
    }

    fn req(method: Method, uri: &str) -> Request<Buffer> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, "AWS4-HMAC-SHA256 Credential=old")
            .header("x-amz-date", "20000101T000000Z")
            .body(Buffer::from(b"hello".to_vec()))
            .unwrap()
    }

    #[test]
    fn only_requests_that_create_a_locked_object_get_the_retention() {
        let l = lock_headers(true);
        let base = "http://127.0.0.1:19000/bk/pre/b";
        let seg = format!("{base}/data/t/0/00000000000000000000-20261121T070113.643Z.seg");
        assert!(l.wants(&req(Method::PUT, &seg)), "PutObject");
        assert!(
            l.wants(&req(Method::POST, &format!("{seg}?uploads"))),
            "CreateMultipartUpload"
        );
        assert!(!l.wants(&req(Method::PUT, &format!("{seg}?partNumber=1&uploadId=u"))));
        assert!(!l.wants(&req(Method::POST, &format!("{seg}?uploadId=u"))));
        assert!(!l.wants(&req(Method::GET, &seg)));
        assert!(!l.wants(&req(Method::PUT, &format!("{base}/lock.json"))));
        assert!(!l.wants(&req(
            Method::PUT,
            &format!("{base}/runs/r/checkpoint/0000000001.json")
        )));
        assert!(l.wants(&req(Method::PUT, &format!("{base}/runs/r/manifest.json"))));
        // another prefix or bucket is not ours
        assert!(!l.wants(&req(
            Method::PUT,
            "http://127.0.0.1:19000/bk/other/b/data/x.seg"
        )));
        // virtual-host style: no bucket in the path
        let v = lock_headers(false);
        assert!(v.wants(&req(
            Method::PUT,
            "http://bk.127.0.0.1:19000/pre/b/keys/k1.json"
        )));
    }

    #[tokio::test]
    async fn the_retention_headers_and_a_checksum_are_added_and_signed_again() {
        let l = lock_headers(true);
        let uri = "http://127.0.0.1:19000/bk/pre/b/runs/r/manifest.json";
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let r = l.apply(req(Method::PUT, uri)).await.unwrap();
        let h = r.headers();
        assert_eq!(h[MODE], "GOVERNANCE");
        let until = parse_date(h[UNTIL].to_str().unwrap()).unwrap();
        assert!(until >= before + 2 * DAY_MS && until <= before + 2 * DAY_MS + 2000);
        // CRC-32C of "hello", big-endian, base64 (RFC 4960 polynomial, as S3 computes it)
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD
            .encode(crc32c::crc32c(b"hello").to_be_bytes());
        assert_eq!(h["x-amz-checksum-crc32c"], want.as_str());
        assert_eq!(h["x-amz-sdk-checksum-algorithm"], "CRC32C");
        let auth = h[AUTHORIZATION].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDMARKER/"),
            "{auth}"
        );
        for signed in [
            MODE,
            UNTIL,
            "x-amz-checksum-crc32c",
            "x-amz-sdk-checksum-algorithm",
        ] {
            assert!(auth.contains(signed), "{signed} is not signed: {auth}");
        }
        assert_ne!(h["x-amz-date"], "20000101T000000Z");
        assert!(!h.contains_key(HOST));
        // CreateMultipartUpload: the retention, no body checksum
        let post = format!("{uri}?uploads");
        let r = l.apply(req(Method::POST, &post)).await.unwrap();
        assert_eq!(r.headers()[MODE], "GOVERNANCE");
        assert!(!r.headers().contains_key("x-amz-checksum-crc32c"));
    }

    #[test]
    fn dates_are_whole_seconds_and_parse_back() {
        // 2026-12-01T00:00:00Z (the record of format::manifest's object-lock test)
        let ms = 1_796_083_200_000;
        assert_eq!(iso_date(ms), "2026-12-01T00:00:00Z");
        assert_eq!(parse_date("2026-12-01T00:00:00Z"), Some(ms));
        assert_eq!(parse_date("2026-12-01T00:00:00.000Z"), Some(ms));
    }
}
