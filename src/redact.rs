//! One home for keeping secrets out of messages (errors, logs, status, Events, reports, PDFs).
//!
//! Some URLs are credentials themselves (a Slack incoming-webhook URL, an Azure SAS query, a
//! presigned S3 query string, `user:password@` in any URL); error texts from HTTP clients and
//! storage libraries repeat the URL they were given. Every path that builds a message from a
//! value that came from a Secret passes it through [`url_origin`] (show a secret URL as its
//! scheme and host only) or [`scrub`] (cut userinfo and query strings from every URL in a
//! text, and replace known secret values). Pure string work, no I/O.
use std::sync::LazyLock;

/// What replaces a hidden part.
pub const MASK: &str = "***";

/// A URL shown by its scheme and host (and port) only, e.g.
/// `https://hooks.slack.com/services/T0/B0/xyz` -> `https://hooks.slack.com/***`. Userinfo,
/// path, query and fragment are hidden. A text that is not a URL is hidden whole (`***`).
pub fn url_origin(url: &str) -> String {
    let t = url.trim();
    let Some((scheme, rest)) = t.split_once("://") else {
        return MASK.to_string();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return MASK.to_string();
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if !HOST.is_match(host) {
        // not a host name, an IP address or [IPv6], with an optional port: hide it all
        return MASK.to_string();
    }
    format!("{}://{host}/{MASK}", scheme.to_ascii_lowercase())
}

static HOST: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$",
    )
    .expect("the host pattern compiles")
});

static URL: LazyLock<regex::Regex> = LazyLock::new(|| {
    // scheme://[userinfo@]host[path][?query][#fragment], up to a space or a quote
    regex::Regex::new(
        r#"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@"'<>]*@)?([^\s/?#"'<>]*)([^\s?#"'<>]*)(\?[^\s#"'<>]*)?(#[^\s"'<>]*)?"#,
    )
    .expect("the URL pattern compiles")
});

/// `text` with every URL's userinfo removed and its query string and fragment replaced by
/// `***` (signatures, SAS tokens, access keys travel there), and every value of `secrets`
/// (those of 4 characters or more) replaced by `***`. Host and path stay: a message should
/// still name the endpoint and the object.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    // the longest first, so that a secret containing another is hidden whole
    let mut s: Vec<&str> = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| s.len() >= 4)
        .collect();
    s.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in s {
        out = out.replace(secret, MASK);
    }
    URL.replace_all(&out, |c: &regex::Captures<'_>| {
        let mut u = format!("{}{}{}", &c[1], &c[2], &c[3]);
        if c.get(4).is_some() {
            u.push('?');
            u.push_str(MASK);
        }
        if c.get(5).is_some() {
            u.push('#');
            u.push_str(MASK);
        }
        u
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: &str = "https://hooks.slack.com/services/T000/B000/MarkerSecret123";

    #[test]
    fn a_secret_url_shows_scheme_and_host_only() {
        assert_eq!(url_origin(SLACK), "https://hooks.slack.com/***");
        assert_eq!(
            url_origin("http://user:pw@127.0.0.1:8080/x?token=abc"),
            "http://127.0.0.1:8080/***"
        );
        assert_eq!(url_origin("not a url MarkerSecret123"), "***");
        assert_eq!(url_origin("://x"), "***");
        assert_eq!(url_origin("https://[MarkerSecret123/x"), "***");
        assert_eq!(url_origin("http://[::1]:8080/a"), "http://[::1]:8080/***");
    }

    #[test]
    fn scrub_cuts_userinfo_queries_and_known_secrets_but_keeps_host_and_path() {
        let t = format!(
            "error sending request for url ({SLACK}): connect refused; uri: https://acct.blob.core.windows.net/c/runs/x?sv=2024&sig=AbC%2Fd&se=1, http://ak:sk@minio:9000/b/k"
        );
        let s = scrub(&t, &[SLACK]);
        assert!(!s.contains("MarkerSecret123"), "{s}");
        assert!(!s.contains("sig=") && !s.contains("AbC"), "{s}");
        assert!(!s.contains("ak:sk"), "{s}");
        assert!(
            s.contains("https://acct.blob.core.windows.net/c/runs/x?***"),
            "{s}"
        );
        assert!(s.contains("http://minio:9000/b/k"), "{s}");
        let s = scrub("AWS key AKIAEXAMPLE1 refused", &["AKIAEXAMPLE1", "abc"]);
        assert_eq!(s, "AWS key *** refused");
    }
}
