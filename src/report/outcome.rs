//! The outcome of each kind's run ([`crate::kinds`]) as the lines `run` prints on a terminal;
//! no I/O. Each function returns whole lines (ending in a newline); the caller prints them
//! and turns a failure the outcome holds into its exit status.
use std::fmt::Write;

use super::{groups_table, restore_table, summary, validation_table};
use crate::exec::groups::CommitOutcome;
use crate::kinds::{backup, offset_rollback, restore, validation};
use crate::plan::{RestorePlan, RetentionPlan};

/// A completed backup run: the summary line (`records`, `bytes` moved in `secs` seconds),
/// its manifest's storage key, and what retention pruned (a retention error is the caller's).
pub fn backup(out: &backup::Outcome, records: u64, bytes: u64, secs: f64) -> String {
    let m = &out.manifest;
    let mut s = String::new();
    let what = format!("backup {} run {}", m.backup_name, m.run_id);
    let _ = writeln!(s, "{}", summary(&what, records, bytes, secs));
    let manifest = crate::format::layout::manifest(&m.backup_name, &m.run_id);
    let _ = writeln!(s, "manifest: {manifest}");
    if let Some(Ok(r)) = &out.retention {
        s.push_str(&retention(r));
    }
    s
}

/// What retention did (or, in `dryRun`, would do), and the runs kept under Object Lock.
pub fn retention(r: &RetentionPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "retention{}: {} runs inspected, {} pruned {:?}, {} segments ({} bytes) {}",
        if r.dry_run { " (dryRun)" } else { "" },
        r.inspected,
        r.delete_runs.len(),
        r.delete_runs,
        r.delete_segments.len(),
        r.reclaimed_bytes,
        if r.dry_run {
            "would be deleted"
        } else {
            "deleted"
        }
    );
    for k in &r.kept_locked {
        let _ = writeln!(s, "retention: {k}");
    }
    s
}

/// A restore's outcome: the plan for a dry run, the journal for one complete before, else the
/// summary (`records`/`bytes` counters are the executor's, `secs` its duration), the offset
/// map, the consumer-group table and the rollback snapshot.
pub fn restore(plan: &RestorePlan, out: &restore::Outcome, secs: f64) -> String {
    let mut s = String::new();
    match out {
        restore::Outcome::DryRun => {
            s.push_str(&restore_table(plan));
            s.push_str("dryRun: nothing was written\n");
        }
        restore::Outcome::AlreadyComplete(j) => {
            let _ = writeln!(
                s,
                "restore {} already completed: {} records of backup {} run {} (journal {}); nothing was read or written. To restore again, delete the journal (and purge or rename the targets) or give the restore another name",
                plan.restore_name,
                j.records,
                plan.backup_name,
                plan.backup_run_id,
                crate::format::layout::restore_journal(&plan.backup_name, &plan.restore_name)
            );
            let _ = writeln!(s, "offset map: {}", plan.offset_map_path);
        }
        restore::Outcome::Ran(out) => {
            if out.already_complete {
                let _ = writeln!(
                    s,
                    "restore {}: the data was restored before ({} records); consumer groups carried over now",
                    plan.restore_name, out.records
                );
            } else {
                let what = format!("restore {}", plan.restore_name);
                let _ = writeln!(s, "{}", summary(&what, out.records, out.bytes, secs));
            }
            let _ = writeln!(s, "offset map: {}", out.offset_map_path);
            if !out.groups.is_empty() {
                s.push_str(&groups_table(&out.groups));
            }
            if let Some(r) = &out.rollback {
                let _ = writeln!(
                    s,
                    "offset snapshot before the commits: {} (id {}){}",
                    r.snapshot_path,
                    r.snapshot_id,
                    if r.rolled_back {
                        "; put back (autoRollbackOnFailure)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    s
}

/// The per-group results of a reset or rollback, the snapshot taken before a reset, and the
/// dry-run note.
pub fn commits(out: &CommitOutcome, dry_run: bool) -> String {
    let mut s = groups_table(&out.results);
    if let Some((id, path)) = &out.snapshot {
        let _ = writeln!(
            s,
            "offset snapshot before the reset: {path} (id {id}; roll back with a KafkaOffsetRollback snapshotRef.name: {id})"
        );
    }
    if dry_run {
        s.push_str("dryRun: nothing was committed\n");
    }
    s
}

/// `what: N of M groups were not done (a, b)` when a group of `out` is not done; None when
/// every group is.
pub fn commits_failure(what: &str, out: &CommitOutcome) -> Option<String> {
    let failed = out.failed();
    (!failed.is_empty()).then(|| {
        format!(
            "{what}: {} of {} groups were not done ({})",
            failed.len(),
            out.results.len(),
            failed
                .iter()
                .map(|g| g.group.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// A rollback's verification line (`verifyAfterRollback`), before its group table.
pub fn rollback_verification(out: &offset_rollback::Outcome) -> String {
    let Some((ok, bad)) = &out.verification else {
        return String::new();
    };
    format!(
        "verification: {} of {} groups match the snapshot{}\n",
        ok.len(),
        ok.len() + bad.len(),
        if bad.is_empty() {
            String::new()
        } else {
            format!("; mismatched: {}", bad.join("; "))
        }
    )
}

/// A validation: pruned evidence, the check table, where the report, its PDF and its
/// signature went, and each notification sent.
pub fn validation(done: &validation::ValidationDone) -> String {
    let mut s = String::new();
    if !done.pruned.is_empty() {
        let _ = writeln!(
            s,
            "evidence retention: deleted {} older report(s): {}",
            done.pruned.len(),
            done.pruned.join(", ")
        );
    }
    s.push_str(&validation_table(&done.report));
    let _ = writeln!(s, "evidence report: {}", done.path);
    if let Some(p) = &done.pdf {
        let _ = writeln!(s, "evidence report (PDF): {p}");
    }
    if let Some(sig) = &done.signature {
        let _ = writeln!(
            s,
            "signature: {sig} ({})",
            crate::exec::validate::SIGNATURE_ALGORITHM
        );
    }
    for n in &done.notifications {
        let _ = writeln!(s, "notification {}: {}", n.target, n.message);
    }
    s
}

/// `validation NAME: backup B run R failed N check(s); ...` when the validation failed; None
/// when it passed.
pub fn validation_failure(name: &str, done: &validation::ValidationDone) -> Option<String> {
    use crate::exec::validate::Outcome;
    let r = &done.report;
    (r.result == Outcome::Fail).then(|| {
        format!(
            "validation {name}: backup {} run {} failed {} check(s); the report names the objects and offsets",
            r.backup.name,
            r.backup.run_id,
            r.checks.iter().filter(|c| c.outcome == Outcome::Fail).count()
        )
    })
}
