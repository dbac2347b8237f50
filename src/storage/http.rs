//! HTTP for object storage (opendal's S3, Azure and GCS services) and for the validation's
//! webhooks and notifications: clients built here, fallibly, with timeouts, and errors said in
//! one line. The transport opendal sends its requests through ([`super::transport`]) uses these
//! clients and deadlines:
//!
//! - Building a client never panics: a missing CA bundle is an error that says what to install,
//!   and only for https (a plain-http endpoint needs no CA certificates).
//! - A request whose answer does not start within [`RESPONSE_TIMEOUT`] (plus the upload time
//!   of its body at [`MIN_UPLOAD_BYTES_PER_SEC`]) fails as a temporary error that names the
//!   endpoint; with the storage retries (3, from 500 ms) a dead endpoint fails in about 30 s.
//! - Transport errors carry the endpoint and the cause, never the request URL's query string
//!   (presigned or SAS signatures) nor the response headers.
use std::time::Duration;

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
