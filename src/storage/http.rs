//! HTTP for object storage (opendal's S3, Azure and GCS services) and for the validation's
//! webhooks and notifications: clients built here, fallibly, with timeouts, and the transport
//! opendal sends its requests through.
//!
//! - Building a client never panics: a missing CA bundle is an error that says what to install,
//!   and only for https (a plain-http endpoint needs no CA certificates).
//! - A request whose answer does not start within [`RESPONSE_TIMEOUT`] (plus the upload time
//!   of its body at [`MIN_UPLOAD_BYTES_PER_SEC`]) fails as a temporary error that names the
//!   endpoint; with the storage retries (3, from 500 ms) a dead endpoint fails in about 30 s.
//! - Transport errors carry the endpoint and the cause, never the request URL's query string
//!   (presigned or SAS signatures) nor the response headers.
use std::time::Duration;

use opendal::{Buffer, ErrorKind, HttpBody, HttpTransport};

/// Longest wait for a TCP (and TLS) connection to an HTTP endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the start of an answer to a request with an empty or small body.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(6);
/// The slowest upload allowed for before a request is given up: a request with a body of `n`
/// bytes may wait `RESPONSE_TIMEOUT + n / MIN_UPLOAD_BYTES_PER_SEC` seconds for its answer.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 1024 * 1024;

/// Builds an HTTP client (reqwest, rustls). `tls`: the client talks https, so it needs the
/// system's CA certificates (the `ca-certificates` bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR`);
/// without, it trusts no certificate and needs none. `timeout`: a whole-request bound, if any.
/// `what` names the endpoint in the error (a secret URL is given as [`crate::redact::url_origin`]).
///
/// Errors: a one-line reason; a missing CA bundle says how to provide one.
pub fn http_client(
    what: &str,
    tls: bool,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("kafka-backup-operator/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    if !tls {
        // plain http: no root store to load (an image without CA certificates still works)
        b = b.tls_certs_only(std::iter::empty());
    }
    b.build().map_err(|e| {
        let cause = chain(&e);
        if cause.contains("CA certificates") {
            format!(
                "cannot use https with {what}: no CA certificates could be loaded from the system ({cause}); install the ca-certificates package in the image, or set SSL_CERT_FILE to a CA bundle"
            )
        } else {
            format!("cannot build an HTTP client for {what}: {cause}")
        }
    })
}

/// An error and its causes, `a: b: c`, each said once (reqwest's without its URL).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![];
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = match err.downcast_ref::<reqwest::Error>() {
            Some(r) if r.url().is_some() => {
                // reqwest's Display names the URL, which may be a secret
                let mut s = r.to_string();
                if let Some(u) = r.url() {
                    s = s.replace(&format!(" for url ({u})"), "");
                    s = s.replace(u.as_str(), &crate::redact::url_origin(u.as_str()));
                }
                s
            }
            _ => err.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The transport opendal sends storage requests through: a client built by [`http_client`],
/// canonical query strings, the response deadline, and errors that name the endpoint.
pub(super) struct Transport {
    inner: opendal_http_transport_reqwest::ReqwestTransport,
    /// `scheme://host:port` of the storage endpoint, for messages.
    endpoint: String,
    /// `storage.s3.objectLock`: the retention headers added to requests that create a locked
    /// object (signed again).
    lock: Option<super::object_lock::LockHeaders>,
}

impl Transport {
    /// A transport for `endpoint` (the storage's URL; https unless it says `http://`).
    pub(super) fn new(endpoint: &str) -> Result<Transport, String> {
        let origin = crate::redact::url_origin(endpoint)
            .trim_end_matches(crate::redact::MASK)
            .trim_end_matches('/')
            .to_string();
        let tls = !endpoint.trim().to_ascii_lowercase().starts_with("http://");
        let client = http_client(&format!("the storage endpoint {origin}"), tls, None)?;
        Ok(Transport {
            inner: opendal_http_transport_reqwest::ReqwestTransport::new(client),
            endpoint: origin,
            lock: None,
        })
    }

    /// The same transport, adding S3 Object Lock retention to the requests that create a
    /// locked object ([`super::object_lock::LockHeaders`]).
    pub(super) fn with_lock(mut self, lock: super::object_lock::LockHeaders) -> Transport {
        self.lock = Some(lock);
        self
    }
}

impl HttpTransport for Transport {
    /// Sends the query string in its canonical SigV4 form (`/` as `%2F`): opendal signs the
    /// canonical query but sends list queries with `/` unescaped; S3-compatible servers that
    /// recompute the signature over the query as received (moto 5.2) answer 403
    /// SignatureDoesNotMatch. AWS accepts both; the signature is unchanged.
    async fn fetch(
        &self,
        mut req: http::Request<Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        if let Some(lock) = self.lock.as_ref().filter(|l| l.wants(&req)) {
            req = lock.apply(req).await?;
        }
        let uri = req.uri();
        if let Some(q) = uri.query().filter(|q| q.contains('/')) {
            let fixed = format!("{}?{}", uri.path(), q.replace('/', "%2F"));
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = fixed.parse().ok();
            if let Ok(u) = http::Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
        let wait = RESPONSE_TIMEOUT
            + Duration::from_secs(req.body().len() as u64 / MIN_UPLOAD_BYTES_PER_SEC);
        let host = uri_host(req.uri()).unwrap_or_else(|| self.endpoint.clone());
        match tokio::time::timeout(wait, self.inner.fetch(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                let temporary = e.is_temporary();
                let mut cause = e.message().to_string();
                if let Some(s) = std::error::Error::source(&e) {
                    cause = format!("{cause}: {}", chain(s));
                }
                Err(opendal::Error::new(
                    e.kind(),
                    crate::redact::scrub(&format!("{host}: {cause}"), &[]),
                )
                .with_temporary(temporary))
            }
            Err(_) => Err(opendal::Error::new(
                ErrorKind::Unexpected,
                format!("no answer from {host} within {} s", wait.as_secs()),
            )
            .set_temporary()),
        }
    }
}

/// `scheme://host[:port]` of a request.
fn uri_host(u: &http::Uri) -> Option<String> {
    Some(format!(
        "{}://{}",
        u.scheme_str().unwrap_or("https"),
        u.authority()?.as_str().rsplit('@').next()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_http_client_needs_no_ca_certificates_and_never_panics() {
        // whatever the system's roots, building returns (Ok or a clear Err), never panics
        assert!(http_client("x", false, None).is_ok());
        if let Err(e) = http_client("https://example.test/***", true, None) {
            assert!(e.contains("example.test"), "{e}");
        }
    }
}
