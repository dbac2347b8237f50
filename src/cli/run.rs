//! `run`: one KafkaBackup or KafkaRestore, start to finish, without Kubernetes.
use std::sync::Arc;

use tokio::sync::mpsc;

use super::RunArgs;
use super::load::{Target, load};
use super::report::{restore_table, spawn_reporter, summary};
use crate::exec::engine::system_now_ms;
use crate::exec::{Cancel, Event, ExecContext, Limits, Progress, run_backup, run_restore};
use crate::kinds::{
    Access, backup::prepare as prepare_backup, restore::prepare as prepare_restore,
};

/// Runs the `run` command. Ctrl-C cancels: a backup keeps its checkpoint and resumes when run
/// again; a continuous backup completes its run with what it has.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let (target, secrets) = load(&args.inputs.files, args.inputs.name.as_deref())?;
    let (cancel_tx, cancel) = Cancel::new();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!(
                "interrupted: stopping (a backup resumes from its checkpoint next time)"
            );
            let _ = cancel_tx.send(true);
        }
    });
    let reporting = Reporting {
        cancel,
        bar: !args.no_progress,
    };
    match target {
        Target::Backup(kb) => {
            if kb.spec.schedule.is_some() {
                tracing::info!(
                    "spec.schedule is set: `run` executes one run now (the operator follows the schedule)"
                );
            }
            let prep = prepare_backup(
                &kb,
                &secrets,
                &args.inputs.pvc_root,
                system_now_ms(),
                Access::ReadWrite,
            )
            .await?;
            let plan = &prep.plan;
            tracing::info!(
                backup = %plan.backup_name, run = %plan.run_id, resumed = plan.resumed, storage = %prep.storage.describe(),
                partitions = plan.partitions.len(), planned_records = plan.estimated_records, "backup starting"
            );
            let limits = Limits::new(plan.bytes_per_sec, plan.records_per_sec);
            let (client, op, keyring) = (&prep.client, &prep.op, prep.keyring.clone());
            let (m, (records, bytes, secs)) = reporting
                .execute(limits, |ctx| async move {
                    run_backup(plan, client, op, &ctx.with_keyring(keyring)).await
                })
                .await?;
            println!(
                "{}",
                summary(
                    &format!("backup {} run {}", m.backup_name, m.run_id),
                    records,
                    bytes,
                    secs
                )
            );
            println!(
                "manifest: {}",
                crate::format::layout::manifest(&m.backup_name, &m.run_id)
            );
            if kb.spec.retention.enabled {
                let op = crate::kinds::retention::storage(
                    &kb,
                    &secrets,
                    &args.inputs.pvc_root,
                    &prep.op,
                )?;
                let r = crate::kinds::retention::apply(&kb, &op, system_now_ms()).await?;
                println!(
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
                    println!("retention: {k}");
                }
            }
        }
        Target::Restore(kr, kb) => {
            let access = if kr.spec.dry_run {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            let prep = prepare_restore(&kr, kb.as_deref(), &secrets, &args.inputs.pvc_root, access)
                .await?;
            let plan = &prep.plan;
            if plan.dry_run {
                print!("{}", restore_table(plan));
                println!("dryRun: nothing was written");
                return Ok(());
            }
            if let crate::exec::RestoreStart::Complete(j) = &prep.start
                && (plan.groups.is_none() || j.groups_done)
            {
                println!(
                    "restore {} already completed: {} records of backup {} run {} (journal {}); nothing was read or written. To restore again, delete the journal (and purge or rename the targets) or give the restore another name",
                    plan.restore_name,
                    j.records,
                    plan.backup_name,
                    plan.backup_run_id,
                    crate::format::layout::restore_journal(&plan.backup_name, &plan.restore_name)
                );
                println!("offset map: {}", plan.offset_map_path);
                return Ok(());
            }
            tracing::info!(
                restore = %plan.restore_name, backup = %plan.backup_name, run = %plan.backup_run_id,
                storage = %prep.storage.describe(), partitions = plan.partitions.len(),
                resumed = matches!(prep.start, crate::exec::RestoreStart::Resume(_)), "restore starting"
            );
            let limits = Limits::new(plan.bytes_per_sec, plan.records_per_sec);
            let (out, (_, _, secs)) = reporting
                .execute(limits, |ctx| async move {
                    let ctx = ctx.with_keyring(prep.keyring.clone());
                    run_restore(plan, &prep.start, &prep.client, &prep.op, &prep.state, &ctx).await
                })
                .await?;
            if out.already_complete {
                println!(
                    "restore {}: the data was restored before ({} records); consumer groups carried over now",
                    plan.restore_name, out.records
                );
            } else {
                println!(
                    "{}",
                    summary(
                        &format!("restore {}", plan.restore_name),
                        out.records,
                        out.bytes,
                        secs
                    )
                );
            }
            println!("offset map: {}", out.offset_map_path);
            if !out.groups.is_empty() {
                print!("{}", super::report::groups_table(&out.groups));
            }
            if let Some(r) = &out.rollback {
                println!(
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
            let failed = out.failed_groups();
            if !failed.is_empty() {
                return Err(crate::exec::ExecError::Failed(format!(
                    "restore {}: the data is restored, but {} of {} consumer groups were not carried over ({}); fix what the table says and run again: only the groups are retried",
                    plan.restore_name,
                    failed.len(),
                    out.groups.len(),
                    failed.iter().map(|g| g.group.as_str()).collect::<Vec<_>>().join(", ")
                ))
                .into());
            }
        }
        Target::OffsetReset(kor, restore) => {
            let p = crate::kinds::offset_reset::prepare(
                &kor,
                super::load::borrow_restore(&restore),
                &secrets,
                &args.inputs.pvc_root,
            )
            .await?;
            print!("{}", super::report::offsets_table(&p.plan.groups));
            let dir = args.inputs.snapshot_dir.clone();
            let out = crate::exec::groups::run_offset_reset(
                &p.plan,
                &p.client,
                system_now_ms(),
                Some(|doc| async move { crate::exec::groups::save_snapshot_file(&dir, &doc) }),
            )
            .await?;
            finish_commits(
                &format!("KafkaOffsetReset {}", p.plan.name),
                &out,
                p.plan.dry_run,
            )?;
        }
        Target::OffsetRollback(korb, restore) => {
            let p = crate::kinds::offset_rollback::prepare(
                &korb,
                super::load::borrow_restore(&restore),
                &secrets,
                &args.inputs.pvc_root,
                &args.inputs.snapshot_dir,
            )
            .await?;
            println!(
                "rolling back to snapshot {} ({})",
                p.snapshot_id, p.snapshot_path
            );
            print!("{}", super::report::offsets_table(&p.plans));
            let dry = korb.spec.dry_run;
            let (out, verification) = crate::exec::groups::run_offset_rollback(
                &p.client,
                &p.plans,
                dry,
                korb.spec.verify_after_rollback,
            )
            .await?;
            if let Some((ok, bad)) = verification {
                println!(
                    "verification: {} of {} groups match the snapshot{}",
                    ok.len(),
                    ok.len() + bad.len(),
                    if bad.is_empty() {
                        String::new()
                    } else {
                        format!("; mismatched: {}", bad.join("; "))
                    }
                );
            }
            finish_commits(
                &format!(
                    "KafkaOffsetRollback {}",
                    korb.metadata.name.clone().unwrap_or_default()
                ),
                &out,
                dry,
            )?;
        }
        Target::Validation(kbv, kb) => {
            let name = kbv.metadata.name.clone().unwrap_or_default();
            let spec = &kbv.spec;
            if spec.schedule.is_some() {
                tracing::info!(
                    "spec.schedule is followed by the operator; run executes one validation now"
                );
            }
            let done = crate::kinds::validation::run(
                &kbv,
                kb.as_deref(),
                &secrets,
                &args.inputs.pvc_root,
                system_now_ms(),
            )
            .await?;
            let report = &done.report;
            if !done.pruned.is_empty() {
                println!(
                    "evidence retention: deleted {} older report(s): {}",
                    done.pruned.len(),
                    done.pruned.join(", ")
                );
            }
            print!("{}", super::report::validation_table(report));
            println!("evidence report: {}", done.path);
            if let Some(p) = &done.pdf {
                println!("evidence report (PDF): {p}");
            }
            if let Some(sig) = &done.signature {
                println!(
                    "signature: {sig} ({})",
                    crate::exec::validate::SIGNATURE_ALGORITHM
                );
            }
            for n in &done.notifications {
                println!("notification {}: {}", n.target, n.message);
            }
            if report.result == crate::exec::validate::Outcome::Fail {
                return Err(crate::exec::ExecError::Failed(format!(
                    "validation {name}: backup {} run {} failed {} check(s); the report names the objects and offsets",
                    report.backup.name,
                    report.backup.run_id,
                    report.checks.iter().filter(|c| c.outcome == crate::exec::validate::Outcome::Fail).count()
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// Prints the per-group results of a reset or rollback; an error when a group is not done.
fn finish_commits(
    what: &str,
    out: &crate::exec::groups::CommitOutcome,
    dry_run: bool,
) -> anyhow::Result<()> {
    print!("{}", super::report::groups_table(&out.results));
    if let Some((id, path)) = &out.snapshot {
        println!(
            "offset snapshot before the reset: {path} (id {id}; roll back with a KafkaOffsetRollback snapshotRef.name: {id})"
        );
    }
    if dry_run {
        println!("dryRun: nothing was committed");
    }
    let failed = out.failed();
    if failed.is_empty() {
        return Ok(());
    }
    Err(crate::exec::ExecError::Failed(format!(
        "{what}: {} of {} groups were not done ({})",
        failed.len(),
        out.results.len(),
        failed
            .iter()
            .map(|g| g.group.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .into())
}

/// Step 4 on a terminal: progress bar or log lines while a plan executes.
struct Reporting {
    cancel: Cancel,
    bar: bool,
}

impl Reporting {
    /// Runs `f` with a fresh context and a reporter; returns its result and the final
    /// (records, bytes, seconds) counters.
    async fn execute<T, E, F, Fut>(&self, limits: Limits, f: F) -> Result<(T, (u64, u64, f64)), E>
    where
        F: FnOnce(ExecContext) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Event>();
        let progress = Progress::new(Some(ev_tx));
        let ctx = ExecContext {
            progress: progress.clone(),
            cancel: self.cancel.clone(),
            limits: Arc::new(limits),
            now_ms: system_now_ms,
            stall_after: crate::exec::engine::stall_warning_after(),
            keyring: None,
            run_keys: Default::default(),
        };
        let reporter = spawn_reporter(progress.clone(), ev_rx, self.bar);
        let result = f(ctx).await;
        reporter.abort();
        Ok((result?, progress.snapshot()))
    }
}
