//! The transport opendal sends storage requests through (S3, Azure, GCS): a client built by
//! [`super::http::http_client`], canonical query strings, the response deadline
//! ([`RESPONSE_TIMEOUT`] plus the upload time of the body at [`MIN_UPLOAD_BYTES_PER_SEC`]),
//! errors that name the endpoint (never the request URL's query string nor the response
//! headers), and S3 Object Lock retention on the requests that create a locked object
//! ([`super::object_lock::LockHeaders`]).
use std::time::Duration;

use opendal::{Buffer, ErrorKind, HttpBody, HttpTransport};

use super::http::{MIN_UPLOAD_BYTES_PER_SEC, RESPONSE_TIMEOUT, chain, http_client};
use super::object_lock::LockHeaders;

/// The transport opendal sends storage requests through: a client built by [`http_client`],
/// canonical query strings, the response deadline, and errors that name the endpoint.
pub(super) struct Transport {
    inner: opendal_http_transport_reqwest::ReqwestTransport,
    /// `scheme://host:port` of the storage endpoint, for messages.
    endpoint: String,
    /// `storage.s3.objectLock`: the retention headers added to requests that create a locked
    /// object (signed again).
    lock: Option<LockHeaders>,
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
    /// locked object ([`LockHeaders`]).
    pub(super) fn with_lock(mut self, lock: LockHeaders) -> Transport {
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
