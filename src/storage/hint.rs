//! Hints for Azure Blob and GCS error answers: which field of `storage.azure` or
//! `storage.gcs` to check. The service is read from the `service: <scheme>` context opendal
//! adds to every error (its ErrorContextLayer).

/// The opendal scheme (`s3`, `azblob`, `gcs`, `fs`, ...) an error came from, if it says.
pub(crate) fn service(e: &opendal::Error) -> Option<&'static str> {
    let full = e.to_string();
    let head = full.split(" => ").next().unwrap_or_default();
    ["azblob", "gcs", "s3", "fs", "memory"]
        .into_iter()
        .find(|s| {
            head.contains(&format!("{{ service: {s},"))
                || head.contains(&format!(", service: {s},"))
                || head.contains(&format!(", service: {s} }}"))
                || head.contains(&format!("{{ service: {s} }}"))
        })
}

/// True when `detail` (a [`super::one_line`]) says the endpoint did not answer.
pub(crate) fn unreachable(detail: &str) -> bool {
    detail.contains("no answer from")
        || detail.contains("error sending request")
        || detail.contains("connect")
}

/// The hint for an error of Azure Blob or GCS (None for other services, or no known cause).
pub(crate) fn azure_gcs(op: &str, e: &opendal::Error, detail: &str) -> Option<String> {
    match service(e)? {
        "azblob" => super::azure::hint(detail, unreachable(detail)),
        "gcs" => super::gcs::hint(op, e, detail, unreachable(detail)),
        _ => None,
    }
}
