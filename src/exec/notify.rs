//! HTTP from a KafkaBackupValidation (reqwest): the `checks.customWebhooks` checks, and the
//! notifications after the report (Slack incoming webhook, PagerDuty Events API v2).
//!
//! A webhook check POSTs [`webhook_body`] (`application/json`) once, with `timeoutSecs`, and
//! passes when the response status equals `expectedStatusCode`. Notifications are retried with
//! exponential backoff (3 retries from 500 ms, on connection errors, 429 and 5xx); a
//! notification that cannot be delivered is reported, and does not change the validation's
//! result.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backon::Retryable;
use serde::Serialize;
use serde_json::json;

use super::validate::{CheckReport, Outcome, ValidationReport};
use crate::plan::{NotifyTargets, WebhookCheck};

/// Default PagerDuty Events API v2 endpoint (PagerDuty's "Send an Alert Event" reference);
/// `KBO_PAGERDUTY_EVENTS_URL` replaces it (a proxy, or a test receiver).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The body a custom webhook receives (format `kafka-backup-operator/validation-webhook/v1`):
/// the validation, the backup (name, run, manifest checksum), the result and checks so far
/// (every check that ran before the webhooks), and the cluster the restore checks used.
pub fn webhook_body(report: &ValidationReport, bootstrap: Option<&[String]>) -> serde_json::Value {
    json!({
        "format": "kafka-backup-operator/validation-webhook/v1",
        "validation": report.validation,
        "reportId": report.report_id,
        "backup": {
            "name": report.backup.name,
            "runId": report.backup.run_id,
            "manifestSha256": report.backup.manifest_sha256,
            "records": report.backup.records,
        },
        "resultSoFar": report.result,
        "checks": report.checks.iter().map(|c| json!({"name": c.name, "outcome": c.outcome})).collect::<Vec<_>>(),
        "restoredCluster": bootstrap.map(|b| json!({"bootstrapServers": b})),
    })
}

/// POSTs `body` once; the status code, or why there is none. The URL may be a credential (a
/// Slack webhook): no message names more of it than [`crate::redact::url_origin`], and an
/// invalid URL is refused without echoing it.
async fn post(url: &str, body: &serde_json::Value, timeout: Duration) -> Result<u16, String> {
    let shown = crate::redact::url_origin(url);
    let parsed = reqwest::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| format!("not a valid http(s) URL ({shown})"))?;
    let tls = parsed.scheme() == "https";
    let client = crate::storage::http::http_client(&shown, tls, Some(timeout))?;
    let resp = client
        .post(parsed)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("JSON values serialise"))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("{shown}: no answer within {} s", timeout.as_secs())
            } else {
                format!("{shown}: {}", crate::storage::http::chain(&e.without_url()))
            }
        })
        .map_err(|m| crate::redact::scrub(&m, &[url]))?;
    Ok(resp.status().as_u16())
}

/// Runs the custom webhook checks, one check `webhook:<name>` each.
pub async fn run_webhooks(
    hooks: &[WebhookCheck],
    report: &ValidationReport,
    bootstrap: Option<&[String]>,
) -> Vec<CheckReport> {
    let body = webhook_body(report, bootstrap);
    let mut out = Vec::with_capacity(hooks.len());
    for h in hooks {
        let t = Instant::now();
        let got = post(&h.url, &body, Duration::from_secs(h.timeout_secs)).await;
        let mut figures = BTreeMap::from([(
            "expectedStatusCode".to_string(),
            h.expected_status_code as u64,
        )]);
        let failures = match got {
            Ok(code) => {
                figures.insert("statusCode".into(), code as u64);
                if code == h.expected_status_code {
                    vec![]
                } else {
                    vec![format!(
                        "{}: answered {code}, expected {}",
                        crate::redact::url_origin(&h.url),
                        h.expected_status_code
                    )]
                }
            }
            Err(e) => vec![e],
        };
        out.push(CheckReport {
            name: format!("webhook:{}", h.name),
            outcome: if failures.is_empty() {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            figures,
            duration_ms: t.elapsed().as_millis() as u64,
            failures,
            notes: vec![],
            digests: BTreeMap::new(),
        });
    }
    out
}

/// What happened to one notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyResult {
    /// `slack` or `pagerduty`.
    pub target: String,
    pub delivered: bool,
    /// HTTP attempts made.
    pub attempts: u32,
    pub message: String,
}

/// POSTs with retries (exponential backoff, 3 retries from 500 ms) on connection errors, 429
/// and 5xx; any other status ends the attempts. Ok(status) for a 2xx.
async fn post_retried(url: &str, body: &serde_json::Value) -> (Result<u16, String>, u32) {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let r = (|| async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match post(url, body, Duration::from_secs(10)).await {
            Ok(c) if (200..300).contains(&c) => Ok(Ok(c)),
            Ok(c) if c == 429 || c >= 500 => {
                Err(format!("{} answered {c}", crate::redact::url_origin(url)))
            }
            Ok(c) => Ok(Err(format!(
                "{} answered {c}",
                crate::redact::url_origin(url)
            ))),
            // an invalid URL or client stays so: no retry
            Err(e) if e.starts_with("not a valid") || e.starts_with("cannot ") => Ok(Err(e)),
            Err(e) => Err(e),
        }
    })
    .retry(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_times(3),
    )
    .await;
    let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
    (r.and_then(|x| x), n)
}

/// A one-line summary of a report for people: result, backup, run, failed checks.
pub fn summary_line(report: &ValidationReport) -> String {
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.name.as_str())
        .collect();
    format!(
        "Backup validation {} {:?}: backup {} run {} ({} records){}",
        report.validation,
        report.result,
        report.backup.name,
        report.backup.run_id,
        report.backup.records,
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed checks: {}", failed.join(", "))
        }
    )
}

/// Sends the notifications of `report` (stored at `report_path`): on failure always, on
/// success only with `on_success`. Slack gets `{text, blocks}` (Slack's incoming-webhook
/// payload); PagerDuty gets an Events API v2 `trigger` on failure and a `resolve` of the same
/// `dedup_key` (`kbv/<backup>/<validation>`) on success.
pub async fn notify(
    t: &NotifyTargets,
    report: &ValidationReport,
    report_path: &str,
) -> Vec<NotifyResult> {
    let pass = report.result != Outcome::Fail;
    if pass && !t.on_success {
        return vec![];
    }
    let text = summary_line(report);
    let mut out = vec![];
    if let Some(url) = &t.slack_url {
        let body = json!({
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\nevidence report: `{report_path}`", text)}},
            ],
        });
        let (r, attempts) = post_retried(url, &body).await;
        out.push(result("slack", r, attempts));
    }
    if let Some((key, severity)) = &t.pagerduty {
        let url = std::env::var("KBO_PAGERDUTY_EVENTS_URL")
            .unwrap_or_else(|_| PAGERDUTY_EVENTS_URL.to_string());
        let dedup = format!("kbv/{}/{}", report.backup.name, report.validation);
        let body = if pass {
            json!({"routing_key": key, "event_action": "resolve", "dedup_key": dedup})
        } else {
            json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": dedup,
                "payload": {
                    "summary": text,
                    "source": format!("kafka-backup-operator/{}", report.validation),
                    "severity": severity.as_str(),
                    "timestamp": jiff::Timestamp::from_millisecond(report.generated_at).map(|t| t.to_string()).unwrap_or_default(),
                    "component": report.backup.name,
                    "group": "kafka-backup",
                    "class": "backup-validation",
                    "custom_details": {
                        "runId": report.backup.run_id,
                        "reportId": report.report_id,
                        "reportPath": report_path,
                        "failedChecks": report.checks.iter().filter(|c| c.outcome == Outcome::Fail).map(|c| json!({"name": c.name, "failures": c.failures.iter().take(5).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                    },
                },
            })
        };
        let (r, attempts) = post_retried(&url, &body).await;
        out.push(result("pagerduty", r, attempts));
    }
    out
}

fn result(target: &str, r: Result<u16, String>, attempts: u32) -> NotifyResult {
    match r {
        Ok(c) => NotifyResult {
            target: target.into(),
            delivered: true,
            attempts,
            message: format!("delivered ({c})"),
        },
        Err(e) => NotifyResult {
            target: target.into(),
            delivered: false,
            attempts,
            message: format!("not delivered after {attempts} attempt(s): {e}"),
        },
    }
}
