//! `kubectl kafkabackup runs -f backup.yaml`: the complete runs of a KafkaBackup's repository
//! with their S3 Object Lock state (from each run's manifest record; the validation's
//! `objectLock` check verifies the objects themselves). Read only: the storage is opened
//! read-only and nothing is written.
use serde::Serialize;

use super::OutputFormat;
use super::load::{Target, load};

/// One run as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub run_id: String,
    /// RFC 3339.
    pub completion_time: String,
    pub records: u64,
    /// Raw record bytes (`totalRawBytes`).
    pub bytes: u64,
    /// The run's S3 Object Lock, or null: written without `storage.s3.objectLock`.
    pub object_lock: Option<LockState>,
}

/// A run's lock as its manifest records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockState {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// RFC 3339: every object of the run is locked until at least this date.
    pub retain_until: String,
    /// The date is still ahead: no delete of its objects can succeed yet (in GOVERNANCE mode,
    /// except by a user with `s3:BypassGovernanceRetention`).
    pub locked: bool,
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The runs of the KafkaBackup in the files (`--name` picks one), oldest first, at `now_ms`.
pub async fn rows(inputs: &super::Inputs, now_ms: i64) -> anyhow::Result<(String, Vec<RunRow>)> {
    let (target, secrets) = load(&inputs.files, inputs.name.as_deref())?;
    let Target::Backup(kb) = target else {
        anyhow::bail!(
            "runs: the files hold no KafkaBackup to list (give its YAML and its Secrets with -f; --name picks one)"
        );
    };
    let name = kb.metadata.name.clone().unwrap_or_default();
    let storage = crate::observe::storage_target(
        &kb.spec.storage,
        &secrets,
        &inputs.pvc_root,
        "spec.storage",
    )?;
    let op = storage.open_read_only()?;
    let mut runs = crate::observe::load_complete_manifests(&op, &name).await?;
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let rows = runs
        .iter()
        .map(|m| RunRow {
            run_id: m.run_id.clone(),
            completion_time: rfc3339(m.completion_time),
            records: m.total_records,
            bytes: m.total_raw_bytes,
            object_lock: m.object_lock.as_ref().map(|l| LockState {
                mode: l.mode.clone(),
                retain_until: rfc3339(l.retain_until),
                locked: l.retain_until > now_ms,
            }),
        })
        .collect();
    Ok((name, rows))
}

/// `runs`: RUN ID, COMPLETED, RECORDS, BYTES, LOCK (`COMPLIANCE until <date>`, `... (expired)`,
/// or `not locked`), as a table, YAML or JSON.
pub async fn runs(args: &super::PlanArgs) -> anyhow::Result<String> {
    let now = crate::exec::engine::system_now_ms();
    let (name, rows) = rows(&args.inputs, now).await?;
    Ok(match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&rows)?,
        OutputFormat::Table => {
            let mut s = format!(
                "{:<22}  {:<24}  {:>12}  {:>14}  LOCK\n",
                "RUN ID", "COMPLETED", "RECORDS", "BYTES"
            );
            for r in &rows {
                let lock = match &r.object_lock {
                    Some(l) if l.locked => format!("{} until {}", l.mode, l.retain_until),
                    Some(l) => format!("{} until {} (expired)", l.mode, l.retain_until),
                    None => "not locked".into(),
                };
                s.push_str(&format!(
                    "{:<22}  {:<24}  {:>12}  {:>14}  {lock}\n",
                    r.run_id, r.completion_time, r.records, r.bytes
                ));
            }
            if rows.is_empty() {
                s.push_str(&format!("no complete run of {name} yet\n"));
            }
            s
        }
    })
}
