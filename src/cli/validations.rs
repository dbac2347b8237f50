//! The stored validation reports of a KafkaBackup's repository (`<backup>/validations/`), read
//! once for all its runs: `describe run` lists one run's, `runs` shows each run's latest verdict.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::rfc3339;

/// A stored validation report of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunValidation {
    pub validation: String,
    pub report_id: String,
    /// RFC 3339.
    pub generated_at: String,
    /// Pass, Fail or Skip.
    pub result: String,
    pub checks: usize,
    pub checks_failed: usize,
    pub signed: bool,
}

/// Reports stored per validation looked at, newest first (a validation on a schedule keeps
/// many; older ones are left out).
const REPORTS_READ: usize = 50;

/// The stored validation reports of every run of `backup`'s repository, by run id, each run's
/// oldest first (reports a validation stores elsewhere, `evidence.storage`, are not seen).
pub async fn stored_validations(
    op: &opendal::Operator,
    backup: &str,
) -> anyhow::Result<BTreeMap<String, Vec<RunValidation>>> {
    let mut found: Vec<(String, i64, RunValidation)> = vec![];
    let dir = format!("{backup}/validations/");
    for v in crate::storage::list_dirs(op, &dir).await? {
        let reports = crate::exec::evidence::list_reports(op, backup, &v).await?;
        for r in reports.iter().rev().take(REPORTS_READ) {
            let Some(bytes) = crate::storage::read_opt(op, &r.path).await? else {
                continue;
            };
            let rep = crate::exec::evidence::read_report(&bytes, &r.path)?;
            let rv = RunValidation {
                validation: v.clone(),
                report_id: r.report_id.clone(),
                generated_at: rfc3339(r.generated_at),
                result: format!("{:?}", rep.result),
                checks: rep.checks.len(),
                checks_failed: rep
                    .checks
                    .iter()
                    .filter(|c| c.outcome == crate::exec::validate::Outcome::Fail)
                    .count(),
                signed: r.signed,
            };
            found.push((rep.backup.run_id, r.generated_at, rv));
        }
    }
    found.sort_by_key(|(_, at, _)| *at);
    let mut out: BTreeMap<String, Vec<RunValidation>> = BTreeMap::new();
    for (run, _, rv) in found {
        out.entry(run).or_default().push(rv);
    }
    Ok(out)
}
