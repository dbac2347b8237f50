//! `execution` (ours, issue 18): where a run's data moves. `mode: in-process` (the default) runs
//! it inside the process that runs the resource (the operator, or `run`), as always; `mode: job`
//! runs it as `shards` Kubernetes Jobs, each taking a share of the partitions, with the Pod
//! settings below. The same block sits in KafkaBackup, KafkaRestore and KafkaBackupValidation.
//!
//! Types only (the rules are in [`super::validate`]; the shard split in `plan::shard`): it
//! names no other file of `api`. A spec without `execution` deserialises to
//! [`ExecutionSpec::default`] and serialises without it, so existing YAML is unchanged.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most shards (Jobs) of one run.
pub const MAX_SHARDS: u32 = 64;
/// Most retries of one shard (`backoffLimit`).
pub const MAX_BACKOFF_LIMIT: i32 = 20;
/// Longest `ttlSecondsAfterFinished`: 30 days, in seconds.
pub const MAX_TTL_SECONDS_AFTER_FINISHED: i32 = 30 * 24 * 3600;

fn default_shards() -> u32 {
    1
}
fn default_backoff_limit() -> i32 {
    3
}
fn default_ttl_seconds_after_finished() -> Option<i32> {
    Some(3600)
}

/// Where a run's data moves; kebab-case in YAML.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutionMode {
    /// Inside the process that runs the resource (the operator, or `run`): today's behaviour.
    #[default]
    InProcess,
    /// As Kubernetes Jobs, one per shard, created by the operator.
    Job,
}

impl ExecutionMode {
    /// The YAML spelling: `"in-process"` or `"job"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::InProcess => "in-process",
            ExecutionMode::Job => "job",
        }
    }
}

impl std::fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `execution` (ours): run in process (default) or as Kubernetes Jobs, and the Jobs' Pod
/// settings. With `mode: in-process` every field but `mode` is ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.shards) || self.shards <= 1 || (has(self.mode) && self.mode == 'job')",
        "message": "shards > 1 needs mode: job; set mode: job, or remove shards"
    }
]))]
#[garde(allow_unvalidated)]
pub struct ExecutionSpec {
    /// in-process (default): the run moves its data inside the operator's process (or
    /// `run`'s), as always. job: the operator prepares the run once and runs it as `shards`
    /// Kubernetes Jobs with the operator's image, each taking a share of the partitions.
    #[serde(default)]
    pub mode: ExecutionMode,

    /// Jobs per run (mode job): the partitions are spread over them so that their estimated
    /// bytes (records when no size is known) are balanced. 1..=64, default 1. A run with fewer
    /// partitions than shards gets one Job per partition. More than 1 needs mode: job.
    #[serde(default = "default_shards")]
    #[garde(range(min = 1, max = MAX_SHARDS))]
    pub shards: u32,

    /// CPU and memory requests and limits of each shard's Pod (mode job). Default: none (the
    /// namespace's defaults apply). A shard exceeding its memory limit fails as OOMKilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels a shard's Pod must match (mode job). Keys and values follow Kubernetes
    /// label syntax. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the shard Pods tolerate (mode job). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// PriorityClass of the shard Pods (mode job), a Kubernetes name. Default (absent or
    /// empty): none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// ServiceAccount the shard Pods run as (mode job), a Kubernetes name in the resource's
    /// namespace, e.g. one bound to a team's cloud identity. Default (absent or empty): the
    /// chart's `jobs.serviceAccountName`, else the namespace's `default`. Its token is not
    /// mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Retries of one shard before the run fails (mode job): a shard Pod that fails or is
    /// evicted this many times more fails the run. 0..=20, default 3.
    #[serde(default = "default_backoff_limit")]
    #[garde(range(min = 0, max = MAX_BACKOFF_LIMIT))]
    pub backoff_limit: i32,

    /// Seconds a finished shard Job (and its Pod) is kept for inspection before Kubernetes
    /// deletes it (mode job). 0..=2592000 (30 days), default 3600. The run's results are in
    /// the repository and the resource's status either way.
    #[serde(
        default = "default_ttl_seconds_after_finished",
        skip_serializing_if = "Option::is_none"
    )]
    #[garde(inner(range(min = 0, max = MAX_TTL_SECONDS_AFTER_FINISHED)))]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl Default for ExecutionSpec {
    /// In process, 1 shard, `backoffLimit` 3, `ttlSecondsAfterFinished` 3600, no Pod settings:
    /// what a spec without `execution` gets.
    fn default() -> Self {
        ExecutionSpec {
            mode: ExecutionMode::InProcess,
            shards: default_shards(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            priority_class_name: None,
            service_account_name: None,
            backoff_limit: default_backoff_limit(),
            ttl_seconds_after_finished: default_ttl_seconds_after_finished(),
        }
    }
}

impl ExecutionSpec {
    /// True when this is [`ExecutionSpec::default`]: the spec field is then left out when
    /// serialising, so resources without `execution` serialise (and hash) as before.
    pub fn is_default(&self) -> bool {
        *self == ExecutionSpec::default()
    }

    /// `priorityClassName`, None when absent or empty.
    pub fn priority_class(&self) -> Option<&str> {
        self.priority_class_name
            .as_deref()
            .filter(|s| !s.is_empty())
    }

    /// `serviceAccountName`, None when absent or empty (the chart's `jobs.serviceAccountName`,
    /// else the namespace's `default`).
    pub fn service_account(&self) -> Option<&str> {
        self.service_account_name
            .as_deref()
            .filter(|s| !s.is_empty())
    }
}

/// One entry of `status.shards` (ours): a shard of a sharded run (`execution.mode: job`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// 0-based shard index (`--shard index/N`).
    pub index: u32,
    /// Pending (its Job is not running yet), Running, Succeeded (its result is in the
    /// repository) or Failed.
    pub phase: String,
    /// Partitions (restore: partition steps) the shard moves.
    pub partitions: u32,
    /// Records done, from the shard's checkpoint (updated as the shard checkpoints).
    #[serde(default)]
    pub records: u64,
    /// Raw bytes done, from the shard's checkpoint.
    #[serde(default)]
    pub bytes: u64,
    /// Percent of the shard's estimated records (else bytes) done, 0.1 steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    /// The shard's Kubernetes Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Why it waits or failed: a Pod's waiting reason, a failed attempt (`OOMKilled`), the
    /// last lines of its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_default_and_round_trips() {
        let e: ExecutionSpec = serde_json::from_str("{}").unwrap();
        assert!(e.is_default());
        assert_eq!(e.shards, 1);
        assert_eq!(e.backoff_limit, 3);
        assert_eq!(e.ttl_seconds_after_finished, Some(3600));
        assert_eq!(e.mode.to_string(), "in-process");
        let e: ExecutionSpec = serde_yaml_ng::from_str(
            "mode: job\nshards: 4\npriorityClassName: \"\"\nserviceAccountName: team-a\n",
        )
        .unwrap();
        assert_eq!(e.mode, ExecutionMode::Job);
        assert_eq!(e.priority_class(), None);
        assert_eq!(e.service_account(), Some("team-a"));
        let back: ExecutionSpec =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<ExecutionSpec>(r#"{"shard": 2}"#).is_err());
        assert!(serde_json::from_str::<ExecutionSpec>(r#"{"mode": "pod"}"#).is_err());
    }
}
