//! Google Cloud Storage credentials: the check of a credential JSON document before it is
//! handed to opendal (whose GCS service silently ignores a document it cannot parse and falls
//! back to other credentials; reqsign-google `StaticCredentialProvider`).
//!
//! The document formats are Google's "credential files" (Google Cloud authentication
//! documentation, "Service account keys" and "Application Default Credentials"): a JSON object
//! whose `type` is `service_account` (fields `client_email`, `private_key`: a PEM PKCS#8 RSA
//! key), `external_account` (workload identity federation), `authorized_user` or
//! `impersonated_service_account`.
use base64::Engine;

/// The credential `type`s opendal's GCS service (reqsign-google) understands.
pub const KEY_TYPES: [&str; 4] = [
    "service_account",
    "external_account",
    "authorized_user",
    "impersonated_service_account",
];

/// Checks that `json` is a GCS credential document that can be used: a JSON object with a
/// known `type`; for `service_account`, a non-empty `client_email` and a `private_key` that
/// is a PEM block (`-----BEGIN PRIVATE KEY-----`, base64 body). The key's RSA structure and
/// the token exchange (`https://oauth2.googleapis.com/token`) are checked on first use.
///
/// Errors: one line that says what is wrong and what to put there; never any part of the
/// document's values (it is a secret).
pub fn check_key(json: &str) -> Result<(), String> {
    let trimmed = json.trim_start();
    if !trimmed.starts_with('{') {
        return Err(
            "is not a JSON document: put the service account key file's content in the Secret (not its path, not base64 encoded twice)"
                .into(),
        );
    }
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "is not valid JSON (line {}, column {}): put the whole service account key file in the Secret",
            e.line(),
            e.column()
        )
    })?;
    let field = |name: &str| doc.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let kind = field("type");
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "has type {kind:?}: a GCS credential file has type one of {KEY_TYPES:?} (create a key with `gcloud iam service-accounts keys create`)"
        ));
    }
    if kind != "service_account" {
        return Ok(());
    }
    if field("client_email").is_empty() {
        return Err("has no client_email: use the key file exactly as Google issued it".into());
    }
    let pem = field("private_key");
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|r| r.strip_suffix("-----END PRIVATE KEY-----"));
    let decodes = body.is_some_and(|b| {
        let b64: String = b.split_whitespace().collect();
        !b64.is_empty()
            && base64::engine::general_purpose::STANDARD
                .decode(b64)
                .is_ok()
    });
    if !decodes {
        return Err(
            "has no usable private_key (a PEM block -----BEGIN PRIVATE KEY----- ... with a base64 body, newlines written as \\n in JSON): use the key file exactly as Google issued it"
                .into(),
        );
    }
    Ok(())
}

/// The message of a GCS JSON API error answer as opendal reports it (the Debug form of its
/// `GcsErrorResponse { error: GcsError { code, message, errors: [{ .., reason }] } }`):
/// `Some("<reason>: <message>")`, or None when `message` is not one.
pub(crate) fn error_message(message: &str) -> Option<String> {
    static MSG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"^GcsErrorResponse \{ error: GcsError \{ code: \d+, message: "((?:[^"\\]|\\.)*)""#,
        )
        .expect("regex")
    });
    static REASON: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r#"reason: "([^"]*)""#).expect("regex"));
    let m = MSG.captures(message.trim_start())?;
    let reason = REASON
        .captures(message)
        .map(|c| c[1].to_string())
        .filter(|r| !r.is_empty());
    Some(match reason {
        Some(r) => format!("{r}: {}", &m[1]),
        None => m[1].to_string(),
    })
}

/// The hint for a GCS error answer of operation `op` (`detail` is [`super::one_line`] of
/// `e`); None when no specific cause is known. A 404 to a write or a list means the bucket
/// is missing (an object name is never missing for those), or, on an emulator, that it lacks
/// the XML API multipart upload (`POST /BUCKET/OBJECT?uploads`) opendal uses for an object
/// written in more than one chunk.
pub(crate) fn hint(
    op: &str,
    e: &opendal::Error,
    detail: &str,
    unreachable: bool,
) -> Option<String> {
    let h = if e.kind() == opendal::ErrorKind::NotFound
        && matches!(op, "write" | "close" | "list" | "delete")
    {
        "the bucket does not exist: create it or fix storage.gcs.bucket; or the endpoint lacks the XML API multipart upload that objects over 8 MiB use (fake-gcs-server does)"
    } else if e.kind() == opendal::ErrorKind::PermissionDenied
        || detail.contains("HTTP 403")
        || detail.contains("HTTP 401")
    {
        "access denied: check storage.gcs.credentialsSecret (or the workload identity) and its IAM role on the bucket (docs/security.md, \"Least privilege on Azure Blob and GCS\")"
    } else if unreachable {
        "storage endpoint unreachable: check storage.gcs.endpoint and the network"
    } else {
        return None;
    };
    Some(format!(" ({h})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(private_key: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "0123",
            "private_key": private_key,
            "client_email": "kbo@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"
        })
        .to_string()
    }

    #[test]
    fn a_service_account_key_as_google_issues_it_is_accepted() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n";
        assert_eq!(check_key(&sa(pem)), Ok(()));
        let wif = r#"{"type":"external_account","audience":"//iam.googleapis.com/x","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","token_url":"https://sts.googleapis.com/v1/token","credential_source":{"file":"/var/run/token"}}"#;
        assert_eq!(check_key(wif), Ok(()));
    }

    #[test]
    fn a_document_that_cannot_be_a_key_is_refused_without_echoing_it() {
        let path = check_key("/var/secrets/key.json").unwrap_err();
        assert!(path.contains("not its path"), "{path}");
        let broken =
            check_key("{\"type\": \"service_account\", \"private_key\": \"SECRETMARK").unwrap_err();
        assert!(
            broken.contains("not valid JSON") && !broken.contains("SECRETMARK"),
            "{broken}"
        );
        let kind = check_key(r#"{"type":"api_key"}"#).unwrap_err();
        assert!(
            kind.contains("\"api_key\"") && kind.contains("service_account"),
            "{kind}"
        );
        let no_key = check_key(&sa("SECRETMARK")).unwrap_err();
        assert!(
            no_key.contains("private_key") && !no_key.contains("SECRETMARK"),
            "{no_key}"
        );
        let not_b64 = check_key(&sa(
            "-----BEGIN PRIVATE KEY-----\n!!SECRETMARK!!\n-----END PRIVATE KEY-----",
        ))
        .unwrap_err();
        assert!(!not_b64.contains("SECRETMARK"), "{not_b64}");
    }

    #[test]
    fn a_gcs_error_answer_gives_its_reason_and_message() {
        let m = r#"GcsErrorResponse { error: GcsError { code: 404, message: "The specified bucket does not exist.", errors: [GcsErrorDetail { domain: "global", location: "", location_type: "", message: "The specified bucket does not exist.", reason: "notFound" }] } }"#;
        assert_eq!(
            error_message(m).as_deref(),
            Some("notFound: The specified bucket does not exist.")
        );
        assert_eq!(error_message("<Error><Code>x</Code></Error>"), None);
    }
}
