//! `run`: one resource of any of the five kinds, start to finish, without Kubernetes. Each
//! kind's work is its home's (`kinds::<kind>::prepare` then `run`); this file loads the
//! inputs, draws progress and prints the outcome through `report::outcome`.
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::RunArgs;
use super::load::{Target, load};
use super::report::{offsets_table, outcome, spawn_reporter};
use crate::api::{KafkaBackup, KafkaRestore, Secrets};
use crate::exec::engine::system_now_ms;
use crate::exec::{Cancel, Event, ExecContext, ExecError, Limits, Progress};
use crate::kinds::{self, Access};

/// Runs the `run` command. Ctrl-C cancels: a backup keeps its checkpoint and resumes when run
/// again; a continuous backup completes its run with what it has.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let (target, mut secrets) = load(&args.inputs.files, args.inputs.name.as_deref())?;
    if let Some(dir) = &args.secrets_dir {
        super::load::secrets_dir(dir, &mut secrets)?;
    }
    let (cancel_tx, cancel) = Cancel::new();
    let cancel_tx = Arc::new(cancel_tx);
    let on_ctrl_c = cancel_tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!(
                "interrupted: stopping (a backup resumes from its checkpoint next time)"
            );
            let _ = on_ctrl_c.send(true);
        }
    });
    // SIGTERM (a Pod deleted or evicted: a shard Job's container runs as PID 1, which the
    // kernel never stops for a signal it does not handle) stops the run as Ctrl-C does
    let on_term = cancel_tx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate())
            && term.recv().await.is_some()
        {
            tracing::warn!("SIGTERM: stopping (a backup resumes from its checkpoint next time)");
            let _ = on_term.send(true);
        }
    });
    if args.stop_on_stdin_eof {
        // the coordinator that launched this shard closes our input to stop us
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            tracing::warn!("standard input closed: stopping");
            let _ = cancel_tx.send(true);
        });
    }
    let reporting = Reporting {
        cancel,
        bar: !args.no_progress,
    };
    let pvc_root = &args.inputs.pvc_root;
    if let (Some(run_id), Some(shard)) = (&args.plan, args.shard) {
        return match target {
            Target::Backup(kb) => {
                run_shard(&kb, &secrets, pvc_root, run_id, shard, &reporting).await
            }
            Target::Restore(kr, kb) => {
                let kb = kb.as_deref();
                run_restore_shard(&kr, kb, &secrets, pvc_root, run_id, shard, &reporting).await
            }
            Target::Validation(kbv, kb) => {
                let kb = kb.as_deref();
                let prep = kinds::validation::prepare_restore_shard(
                    &kbv, kb, &secrets, pvc_root, run_id, shard,
                )
                .await?;
                restore_shard(&prep, run_id, shard, &reporting).await
            }
            _ => anyhow::bail!(
                "--plan/--shard run a shard of a KafkaBackup's, a KafkaRestore's or a KafkaBackupValidation's restore check's staged run; the files name another kind"
            ),
        };
    }
    match target {
        Target::Backup(kb) => run_backup(&kb, &secrets, args, &reporting).await,
        Target::Restore(kr, kb) => {
            run_restore(&kr, kb.as_deref(), &secrets, args, &reporting).await
        }
        Target::OffsetReset(kor, restore) => {
            let restore = super::load::borrow_restore(&restore);
            let p = kinds::offset_reset::prepare(&kor, restore, &secrets, pvc_root).await?;
            print!("{}", offsets_table(&p.plan.groups));
            let dir = args.inputs.snapshot_dir.clone();
            let save = |doc| async move { crate::exec::groups::save_snapshot_file(&dir, &doc) };
            let out = kinds::offset_reset::run(&p, system_now_ms(), Some(save)).await?;
            print!("{}", outcome::commits(&out, p.plan.dry_run));
            failure(outcome::commits_failure(
                &format!("KafkaOffsetReset {}", p.plan.name),
                &out,
            ))
        }
        Target::OffsetRollback(korb, restore) => {
            let restore = super::load::borrow_restore(&restore);
            let snapshot_dir = &args.inputs.snapshot_dir;
            let p =
                kinds::offset_rollback::prepare(&korb, restore, &secrets, pvc_root, snapshot_dir)
                    .await?;
            println!(
                "rolling back to snapshot {} ({})",
                p.snapshot_id, p.snapshot_path
            );
            print!("{}", offsets_table(&p.plans));
            let out = kinds::offset_rollback::run(&p).await?;
            print!("{}", outcome::rollback_verification(&out));
            print!("{}", outcome::commits(&out.commits, p.dry_run));
            let name = korb.metadata.name.clone().unwrap_or_default();
            let what = format!("KafkaOffsetRollback {name}");
            failure(outcome::commits_failure(&what, &out.commits))
        }
        Target::Validation(kbv, kb) => {
            let name = kbv.metadata.name.clone().unwrap_or_default();
            if kbv.spec.schedule.is_some() {
                tracing::info!(
                    "spec.schedule is followed by the operator; run executes one validation now"
                );
            }
            let (kb, now) = (kb.as_deref(), system_now_ms());
            let ex = &kbv.spec.execution;
            let done = if ex.mode == crate::api::ExecutionMode::Job
                && kbv.spec.kafka_cluster.is_some()
            {
                tracing::info!(
                    shards = ex.shards,
                    "spec.execution.mode job: the restore check's shards run as child processes of this command"
                );
                let (launcher, _) = reporting.launcher(args, ex.backoff_limit)?;
                kinds::validation::run_sharded(&kbv, kb, &secrets, pvc_root, now, &launcher).await?
            } else {
                kinds::validation::run(&kbv, kb, &secrets, pvc_root, now).await?
            };
            print!("{}", outcome::validation(&done));
            failure(outcome::validation_failure(&name, &done))
        }
    }
}

/// A KafkaBackup's run, with its retention after a successful run.
async fn run_backup(
    kb: &KafkaBackup,
    secrets: &Secrets,
    args: &RunArgs,
    reporting: &Reporting,
) -> anyhow::Result<()> {
    let pvc_root = &args.inputs.pvc_root;
    if kb.spec.schedule.is_some() {
        tracing::info!(
            "spec.schedule is set: `run` executes one run now (the operator follows the schedule)"
        );
    }
    let now = system_now_ms();
    let prep = kinds::backup::prepare(kb, secrets, pvc_root, now, Access::ReadWrite).await?;
    let plan = &prep.plan;
    tracing::info!(
        backup = %plan.backup_name, run = %plan.run_id, resumed = plan.resumed, storage = %prep.storage.describe(),
        partitions = plan.partitions.len(), planned_records = plan.estimated_records, "backup starting"
    );
    let limits = Limits::new(plan.bytes_per_sec, plan.records_per_sec);
    let prep = &prep;
    let (out, (records, bytes, secs)) = match &plan.execution {
        None => {
            reporting
                .execute(limits, |ctx| async move {
                    kinds::backup::run(kb, prep, secrets, pvc_root, &ctx).await
                })
                .await?
        }
        Some(e) => {
            tracing::info!(
                shards = e.shards.len(),
                "spec.execution.mode job: the shards run as child processes of this command"
            );
            let (launcher, quiet) = reporting.launcher(args, e.backoff_limit)?;
            let launcher = &launcher;
            quiet
                .execute(limits, |ctx| async move {
                    kinds::backup::run_sharded(kb, prep, secrets, pvc_root, &ctx, launcher).await
                })
                .await?
        }
    };
    print!("{}", outcome::backup(&out, records, bytes, secs));
    match out.retention {
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// One shard of a KafkaBackup's staged sharded run (`--plan RUN --shard I/N`).
async fn run_shard(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    run_id: &str,
    shard: (u32, u32),
    reporting: &Reporting,
) -> anyhow::Result<()> {
    let prep = kinds::backup::prepare_shard(kb, secrets, pvc_root, run_id, shard).await?;
    let plan = &prep.staged.plan;
    tracing::info!(backup = %plan.backup_name, run = %run_id, shard = shard.0, shards = shard.1,
        partitions = prep.staged.shards[shard.0 as usize].len(), "shard starting");
    let limits = prep.limits();
    let prep = &prep;
    let (r, (records, bytes, secs)) = reporting
        .execute(limits, |ctx| async move {
            kinds::backup::run_shard(prep, &ctx).await
        })
        .await?;
    tracing::info!(run = %run_id, shard = shard.0, shards = shard.1, partitions = r.partitions.len(),
        records, bytes, secs, "shard complete");
    Ok(())
}

/// One shard of a KafkaRestore's staged sharded run (`--plan RUN --shard I/N`, RUN being the
/// backup run it restores).
async fn run_restore_shard(
    kr: &KafkaRestore,
    kb: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    run_id: &str,
    shard: (u32, u32),
    reporting: &Reporting,
) -> anyhow::Result<()> {
    let prep =
        kinds::restore::prepare_shard(kr, kb, secrets, pvc_root, Some(run_id), shard).await?;
    restore_shard(&prep, run_id, shard, reporting).await
}

/// Runs a prepared restore shard (a KafkaRestore's, or a validation's restore check's).
async fn restore_shard(
    prep: &kinds::restore::PreparedRestoreShard,
    run_id: &str,
    shard: (u32, u32),
    reporting: &Reporting,
) -> anyhow::Result<()> {
    let plan = &prep.staged.plan;
    let steps = prep.staged.steps(shard.0)?;
    tracing::info!(restore = %plan.restore_name, run = %run_id, shard = shard.0, shards = shard.1,
        partitions = steps.partitions.len(), repartitioned = steps.repartitioned.len(), "shard starting");
    let limits = prep.limits();
    let (r, (_, _, secs)) = reporting
        .execute(limits, |ctx| async move {
            kinds::restore::run_shard(prep, &ctx).await
        })
        .await?;
    tracing::info!(run = %run_id, shard = shard.0, shards = shard.1, partitions = r.partitions.len(),
        records = r.records, bytes = r.bytes, secs, "shard complete");
    Ok(())
}

/// A KafkaRestore's run: the plan for a dry run, nothing for a restore complete before; with
/// `execution.mode: job`, its shards as child processes.
async fn run_restore(
    kr: &KafkaRestore,
    kb: Option<&KafkaBackup>,
    secrets: &Secrets,
    args: &RunArgs,
    reporting: &Reporting,
) -> anyhow::Result<()> {
    let pvc_root = &args.inputs.pvc_root;
    let access = if kr.spec.dry_run {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let prep = kinds::restore::prepare(kr, kb, secrets, pvc_root, access).await?;
    let plan = &prep.plan;
    if let Some(out) = prep.nothing_to_run() {
        print!("{}", outcome::restore(plan, &out, 0.0));
        return Ok(());
    }
    tracing::info!(
        restore = %plan.restore_name, backup = %plan.backup_name, run = %plan.backup_run_id,
        storage = %prep.storage.describe(), partitions = plan.partitions.len(),
        resumed = matches!(prep.start, crate::exec::RestoreStart::Resume(_)), "restore starting"
    );
    let limits = Limits::new(plan.bytes_per_sec, plan.records_per_sec);
    let prep = &prep;
    let (out, (_, _, secs)) = match &plan.execution {
        None => {
            reporting
                .execute(limits, |ctx| async move {
                    kinds::restore::run(prep, &ctx).await
                })
                .await?
        }
        Some(e) => {
            tracing::info!(
                shards = e.shards.len(),
                "spec.execution.mode job: the shards run as child processes of this command"
            );
            let (launcher, quiet) = reporting.launcher(args, e.backoff_limit)?;
            let launcher = &launcher;
            quiet
                .execute(limits, |ctx| async move {
                    kinds::restore::run_sharded(prep, &ctx, launcher).await
                })
                .await?
        }
    };
    print!("{}", outcome::restore(plan, &out, secs));
    failure(out.groups_not_carried(&plan.restore_name))
}

/// The failure an outcome holds (groups not done, a failed validation) as the command's error.
fn failure(message: Option<String>) -> anyhow::Result<()> {
    match message {
        Some(m) => Err(ExecError::Failed(m).into()),
        None => Ok(()),
    }
}

/// Step 4 on a terminal: progress bar or log lines while a plan executes.
struct Reporting {
    cancel: Cancel,
    bar: bool,
}

impl Reporting {
    /// The launcher of a sharded run's shards (child processes of this binary, retried up to
    /// `backoffLimit`) and the coordinator's reporting: the shards move the data, so the
    /// coordinator draws no bar of its own.
    fn launcher(
        &self,
        args: &RunArgs,
        backoff_limit: i32,
    ) -> anyhow::Result<(super::shards::ProcessLauncher, Reporting)> {
        let launcher = super::shards::ProcessLauncher {
            exe: std::env::current_exe()?,
            inputs: args.inputs.clone(),
            secrets_dir: args.secrets_dir.clone(),
            backoff_limit: backoff_limit.max(0) as u32,
            cancel: self.cancel.clone(),
        };
        let quiet = Reporting {
            cancel: self.cancel.clone(),
            bar: false,
        };
        Ok((launcher, quiet))
    }

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
