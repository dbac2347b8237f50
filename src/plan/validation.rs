//! A KafkaBackupValidation's checks and notifications as the executor runs them: plain values
//! compiled from `spec.checks` and `spec.notifications`, so that `exec` never reads the
//! resource. Pure: the caller resolves the Secrets (the Slack URL, the PagerDuty routing key)
//! before it builds [`NotifyTargets`].
use crate::api::validation::{ChecksSpec, PagerDutySeverity};

/// The checks on the backup alone and the custom webhooks, from `spec.checks`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidationChecks {
    /// `messageCount`: the missing records tolerated before it fails (`failThreshold`, records),
    /// or None when the check is disabled.
    pub message_count: Option<u64>,
    /// `offsetRange.enabled`.
    pub offset_range: bool,
    /// `consumerGroupOffsets`: the groups to check (empty: every group of the snapshot), or
    /// None when the check is disabled.
    pub consumer_groups: Option<Vec<String>>,
    /// `customWebhooks`, in order.
    pub webhooks: Vec<WebhookCheck>,
}

/// One `checks.customWebhooks[]` entry: POST to `url`, pass when it answers
/// `expected_status_code` within `timeout_secs` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookCheck {
    /// The check is reported as `webhook:<name>`.
    pub name: String,
    /// `http://` or `https://` (may carry a credential: never logged whole).
    pub url: String,
    pub timeout_secs: u64,
    pub expected_status_code: u16,
}

/// Compiles `spec.checks` (already validated by the API layer: URLs and ranges).
pub fn validation_checks(c: &ChecksSpec) -> ValidationChecks {
    ValidationChecks {
        message_count: c
            .message_count
            .enabled
            .then_some(c.message_count.fail_threshold),
        offset_range: c.offset_range.enabled,
        consumer_groups: c
            .consumer_group_offsets
            .enabled
            .then(|| c.consumer_group_offsets.consumer_groups.clone()),
        webhooks: c
            .custom_webhooks
            .iter()
            .map(|h| WebhookCheck {
                name: h.name.clone(),
                url: h.url.clone(),
                timeout_secs: h.timeout_secs,
                expected_status_code: h.expected_status_code,
            })
            .collect(),
    }
}

/// A PagerDuty event's severity (Events API v2 `payload.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    Critical,
    #[default]
    Error,
    Warning,
    Info,
}

impl Severity {
    /// The Events API v2 value: `critical`, `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl From<PagerDutySeverity> for Severity {
    fn from(s: PagerDutySeverity) -> Severity {
        match s {
            PagerDutySeverity::Critical => Severity::Critical,
            PagerDutySeverity::Error => Severity::Error,
            PagerDutySeverity::Warning => Severity::Warning,
            PagerDutySeverity::Info => Severity::Info,
        }
    }
}

/// Where a validation's notifications go, secrets resolved (`spec.notifications`): the Slack
/// incoming-webhook URL and the PagerDuty routing key with its severity. Both are credentials:
/// not serialised, never logged.
#[derive(Debug, Clone, Default)]
pub struct NotifyTargets {
    /// `onSuccess`: notify when the validation passed too (a failure always notifies).
    pub on_success: bool,
    pub slack_url: Option<String>,
    pub pagerduty: Option<(String, Severity)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_compile_to_what_the_executor_runs() {
        let spec: ChecksSpec = serde_json::from_value(serde_json::json!({
            "messageCount": {"failThreshold": 3},
            "consumerGroupOffsets": {"enabled": false},
            "customWebhooks": [{"name": "w", "url": "http://h/x"}],
        }))
        .unwrap();
        let c = validation_checks(&spec);
        assert_eq!(c.message_count, Some(3));
        assert!(c.offset_range);
        assert_eq!(c.consumer_groups, None);
        assert_eq!(
            c.webhooks,
            vec![WebhookCheck {
                name: "w".into(),
                url: "http://h/x".into(),
                timeout_secs: 120,
                expected_status_code: 200,
            }]
        );
        assert_eq!(
            Severity::from(PagerDutySeverity::Warning).as_str(),
            "warning"
        );
    }
}
