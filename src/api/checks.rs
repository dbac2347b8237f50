//! Leaf checks of single values: the functions the CR types name in their
//! `#[garde(custom(...))]` attributes (`host:port`, topic names and patterns, cron, time zone,
//! RFC 3339, acks, URLs) and the parsers behind them. They know no resource type, so every
//! file of `api` may use them and none is used back: this module imports nothing of `api`.
//! Cross-field rules and the per-kind validation are in [`super::validate`], which re-exports
//! these.
//!
//! Pure: no I/O, no clock.

use std::collections::BTreeSet;
use std::str::FromStr;

/// Parse a cron expression the way schedules are evaluated: 5 fields (`min hour dom month
/// dow`), 6 fields (with leading seconds) or 7 fields (with trailing year). The error says how
/// to write one.
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    let hint = "write `sec min hour dom month dow [year]` (e.g. \"0 0 * * * * *\" = hourly, \
                \"0 30 2 * * *\" = daily at 02:30) or 5-field `min hour dom month dow`";
    if !(5..=7).contains(&fields) && !expr.trim_start().starts_with('@') {
        return Err(format!(
            "invalid cron expression {expr:?}: it has {fields} fields, expected 5, 6 or 7; {hint}"
        ));
    }
    croner::Cron::from_str(expr)
        .map_err(|e| format!("invalid cron expression {expr:?}: {e}; {hint}"))
}

/// Look up an IANA time zone (e.g. `Europe/Berlin`, `UTC`). Needs the system tz database
/// (`/usr/share/zoneinfo`) except for `UTC`.
pub fn parse_time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    if name == "UTC" {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    jiff::tz::TimeZone::get(name).map_err(|e| {
        format!(
            "unknown time zone {name:?} ({e}); use an IANA name such as \"UTC\", \"Europe/Berlin\" \
             or \"America/New_York\""
        )
    })
}

/// Parse an RFC 3339 time (`2024-12-01T12:00:00Z`, `2024-12-01T13:00:00+01:00`) to epoch
/// milliseconds. The error shows the expected format.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    jiff::Timestamp::from_str(text.trim())
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            format!(
                "{text:?} is not an RFC 3339 time ({e}); write it like \"2024-12-01T12:00:00Z\" \
                 (a UTC offset or Z is required), or use the epoch-milliseconds field instead"
            )
        })
}

/// garde rule: `host:port` with a numeric port (IPv6 as `[::1]:9092`).
pub fn check_host_port(value: &str, _: &()) -> garde::Result {
    let v = value.trim();
    if let Some((scheme, _)) = v.split_once("://") {
        return Err(garde::Error::new(format!(
            "{value:?} has a {scheme}:// prefix; write the broker as host:port (e.g. \"kafka:9092\") \
             and choose the protocol with securityProtocol"
        )));
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => {
            return Err(garde::Error::new(format!(
                "{value:?} has no port; write it as host:port, e.g. \"{v}:9092\""
            )));
        }
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|h| !h.is_empty())
    } else {
        !host.is_empty() && !host.contains(':') && !host.contains(char::is_whitespace)
    };
    if !host_ok {
        return Err(garde::Error::new(format!(
            "{value:?} is not host:port; write it like \"kafka:9092\" (IPv6: \"[::1]:9092\")"
        )));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(garde::Error::new(format!(
            "{value:?} has port {port:?}, which is not a number between 1 and 65535; write it like \
             \"{host}:9092\""
        ))),
    }
}

/// Kafka's rule for topic names: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(value: &str, _: &()) -> garde::Result {
    let bad: BTreeSet<char> = value
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .collect();
    if value.is_empty() || value.len() > 249 || value == "." || value == ".." || !bad.is_empty() {
        let why = if value.is_empty() {
            "is empty".to_string()
        } else if value.len() > 249 {
            format!("is {} characters long (max 249)", value.len())
        } else if !bad.is_empty() {
            format!(
                "contains {}",
                bad.iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "is reserved".to_string()
        };
        return Err(garde::Error::new(format!(
            "topic name {value:?} {why}; Kafka topic names use only letters, digits, '.', '_' and '-' \
             (1 to 249 characters)"
        )));
    }
    Ok(())
}

fn is_glob(value: &str) -> bool {
    value.contains(['*', '?', '[', '{'])
}

/// garde rule: a topic name or a glob (`*`, `?`, `[...]`, `{a,b}`).
pub fn check_topic_pattern(value: &str, ctx: &()) -> garde::Result {
    if value.starts_with('~') {
        return Err(garde::Error::new(format!(
            "{value:?}: `~regex` filters are only supported in KafkaRestore.spec.topics; use a glob \
             here, e.g. \"orders-*\""
        )));
    }
    if is_glob(value) {
        return globset::Glob::new(value).map(|_| ()).map_err(|e| {
            garde::Error::new(format!(
                "{value:?} is not a valid glob ({e}); use `*`, `?` or `[abc]`, e.g. \"orders-*\""
            ))
        });
    }
    check_topic_name(value, ctx)
}

/// garde rule for KafkaRestore topic filters: a name, a glob, or `~regex` (anchored).
pub fn check_restore_topic_filter(value: &str, ctx: &()) -> garde::Result {
    if let Some(re) = value.strip_prefix('~') {
        return regex::Regex::new(re).map(|_| ()).map_err(|e| {
            garde::Error::new(format!(
                "{value:?} is not a valid regular expression after `~`: {e}; e.g. \"~orders-(eu|us)\""
            ))
        });
    }
    check_topic_pattern(value, ctx)
}

/// garde rule: a cron expression (see [`parse_schedule`]).
pub fn check_cron(value: &str, _: &()) -> garde::Result {
    parse_schedule(value).map(|_| ()).map_err(garde::Error::new)
}

/// garde rule: an IANA time zone name (see [`parse_time_zone`]).
pub fn check_time_zone(value: &str, _: &()) -> garde::Result {
    parse_time_zone(value)
        .map(|_| ())
        .map_err(garde::Error::new)
}

/// garde rule: an RFC 3339 time (see [`parse_rfc3339_ms`]).
pub fn check_rfc3339(value: &str, _: &()) -> garde::Result {
    parse_rfc3339_ms(value)
        .map(|_| ())
        .map_err(garde::Error::new)
}

/// garde rule: producer acks -1, 0 or 1.
pub fn check_acks(value: &i16, _: &()) -> garde::Result {
    match value {
        -1..=1 => Ok(()),
        v => Err(garde::Error::new(format!(
            "produceAcks {v} is not allowed; use -1 (all in-sync replicas, the default and the safe \
             choice for a restore), 1 (leader only) or 0 (no acknowledgement)"
        ))),
    }
}

/// garde rule: an `http://` or `https://` URL with a host.
pub fn check_http_url(value: &str, _: &()) -> garde::Result {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !value.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(garde::Error::new(format!(
            "{value:?} is not an http(s) URL; write it like \"https://checks.example.com/kafka\""
        ))),
    }
}
