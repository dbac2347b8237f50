//! Azure Blob Storage specifics: the check of a SAS token before it is used, and the hints
//! added to Azure error answers.
//!
//! Protocol facts are from the Azure Storage REST API reference: "Create a service SAS" /
//! "Create an account SAS" (query parameters `se` signed expiry, `st` signed start, `sp`
//! signed permissions, `sig`), and "Blob service error codes" (`ContainerNotFound`,
//! `AuthenticationFailed`, `AuthorizationFailure`, `AuthorizationPermissionMismatch`).

/// Checks a SAS token (with or without its leading `?`) at `now`: it has a signature (`sig`)
/// and its signed expiry (`se`, ISO 8601 UTC: a date or a date and time) is after `now`.
///
/// Errors: one line that says what is wrong and what to do; it names the expiry time but
/// never the signature.
pub fn check_sas(token: &str, now: jiff::Timestamp) -> Result<(), String> {
    let query = token.trim().trim_start_matches('?');
    let url = reqwest::Url::parse(&format!("http://sas.invalid/?{query}"))
        .map_err(|_| "is not a SAS token (a URL query string such as sv=...&se=...&sp=...&sig=...): put the token itself in the Secret".to_string())?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("sig").is_none_or(|s| s.is_empty()) {
        return Err("has no signature (sig=): put the whole SAS token in the Secret".into());
    }
    let Some(se) = param("se") else {
        return Err(
            "has no expiry (se=): a SAS token always carries one; put the whole token in the Secret"
                .into(),
        );
    };
    let expiry = se
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            let d: jiff::civil::Date = se.parse().ok()?;
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        })
        .ok_or_else(|| format!("has an expiry se={se:?} that is not an ISO 8601 UTC time"))?;
    if expiry <= now {
        return Err(format!(
            "expired at {expiry} (se=): issue a new SAS token and put it in the Secret"
        ));
    }
    Ok(())
}

/// The hint for an Azure Blob error answer (`detail` is [`super::one_line`] of it); None when
/// no specific cause is known.
pub(crate) fn hint(detail: &str, unreachable: bool) -> Option<String> {
    let h = if detail.contains("ContainerNotFound") {
        "the container does not exist: create it or fix storage.azure.container"
    } else if detail.contains("AuthorizationPermissionMismatch") {
        "the credential lacks a permission this job needs: grant it (docs/security.md, \"Least privilege on Azure Blob and GCS\") to storage.azure.sasTokenSecret's token (sp=) or the identity's role"
    } else if detail.contains("HTTP 403") || detail.contains("HTTP 401") {
        "access denied: check storage.azure.credentialsSecret (the account key) or storage.azure.sasTokenSecret (the token's expiry se= and permissions sp=)"
    } else if unreachable {
        "storage endpoint unreachable: check storage.azure.endpoint (or storage.azure.accountName) and the network"
    } else {
        return None;
    };
    Some(format!(" ({h})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_sas_token_is_used_until_its_signed_expiry() {
        let t = "sv=2025-01-05&st=2026-12-05T17%3A00%3A00Z&se=2026-12-05T19%3A00%3A00Z&sr=c&sp=racwdl&sig=SIGMARK%2Fx%3D";
        assert_eq!(check_sas(t, at("2026-12-05T18:00:00Z")), Ok(()));
        assert_eq!(
            check_sas(&format!("?{t}"), at("2026-12-05T18:00:00Z")),
            Ok(())
        );
        let late = check_sas(t, at("2026-12-05T19:00:00Z")).unwrap_err();
        assert!(
            late.contains("expired at 2026-12-05T19:00:00Z") && !late.contains("SIGMARK"),
            "{late}"
        );
        let day = "sv=2025-01-05&se=2026-12-06&sp=r&sig=x";
        assert_eq!(check_sas(day, at("2026-12-05T23:59:59Z")), Ok(()));
        assert!(check_sas(day, at("2026-12-06T00:00:00Z")).is_err());
    }

    #[test]
    fn a_token_without_signature_or_expiry_is_refused() {
        let now = at("2026-12-05T18:00:00Z");
        assert!(
            check_sas("se=2030-01-01&sp=r", now)
                .unwrap_err()
                .contains("sig=")
        );
        assert!(check_sas("sp=r&sig=x", now).unwrap_err().contains("se="));
        assert!(
            check_sas("se=tomorrow&sig=x", now)
                .unwrap_err()
                .contains("ISO 8601")
        );
    }
}
