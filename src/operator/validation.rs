//! KafkaBackupValidation on the generic controller ([`super::oneshot`]): once per generation,
//! or on `schedule` (with `timeZone` and `suspend`). A run is [`crate::kinds::validation::run`],
//! the same as `run -f`. Phase `Completed` means the checks ran (the verdict is
//! `validationResult`); `Failed` means the validation could not run (a missing Secret, storage
//! or cluster unreachable). Each finished run sets the metrics
//! `kbo_validation_last_result` and, on a pass, `kbo_validation_last_pass_timestamp_seconds`,
//! and is added to `status.history` (newest first, 10 kept). With `execution.mode: job` (and
//! the chart's Jobs enabled) the restore check runs as shard Jobs
//! ([`crate::kinds::validation::run_sharded`]), shown in `status.shards`.
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::oneshot::{Finished, OneShot, OneShotStatus, Phase, Run, RunFuture, Schedule};
use super::retry::RunFailure;
use super::status::Live;
use super::{Context, secrets};
use crate::api::StatusHeader;
use crate::api::validation::{
    BackupValidationPhase, CheckResult, KafkaBackupValidation, KafkaBackupValidationStatus,
    ValidationOutcome, ValidationRun,
};
use crate::exec::validate::Outcome;

/// Runs kept in `status.history`.
pub const HISTORY: usize = 10;

impl OneShotStatus for KafkaBackupValidationStatus {
    fn header(&self) -> &StatusHeader {
        &self.common
    }
    fn header_mut(&mut self) -> &mut StatusHeader {
        &mut self.common
    }
    fn phase(&self) -> Option<Phase> {
        self.phase.map(|p| match p {
            BackupValidationPhase::Pending | BackupValidationPhase::Running => Phase::Running,
            BackupValidationPhase::Completed => Phase::Completed,
            BackupValidationPhase::Failed => Phase::Failed,
        })
    }
    fn set_phase(&mut self, p: Phase) {
        self.phase = Some(match p {
            Phase::Running => BackupValidationPhase::Running,
            Phase::Completed | Phase::PartiallyCompleted => BackupValidationPhase::Completed,
            Phase::Failed => BackupValidationPhase::Failed,
        });
    }
    fn last_tick(&self) -> Option<Timestamp> {
        self.last_schedule_time.as_ref().map(|t| t.0)
    }
    fn set_waiting(&mut self) {
        self.phase = Some(BackupValidationPhase::Pending);
    }
    fn set_ticks(&mut self, last: Option<Timestamp>, next: Option<Timestamp>) {
        self.last_schedule_time = last.map(Time);
        self.next_scheduled_validation = next.map(Time);
    }
}

fn outcome(o: Outcome) -> ValidationOutcome {
    match o {
        Outcome::Pass => ValidationOutcome::Pass,
        Outcome::Fail => ValidationOutcome::Fail,
        Outcome::Skip => ValidationOutcome::Skip,
    }
}

/// The Secret names a validation reads: the cluster's, the inline storage's, the evidence
/// storage's, the signing key, the notification targets.
fn secret_names(kbv: &KafkaBackupValidation) -> Vec<String> {
    let s = &kbv.spec;
    let mut names = match &s.kafka_cluster {
        Some(k) => secrets::referenced(k, s.backup_ref.storage.as_ref()),
        None => secrets::referenced(
            &crate::api::KafkaClusterSpec::new(Vec::<String>::new()),
            s.backup_ref.storage.as_ref(),
        ),
    };
    if let Some(e) = &s.evidence {
        if let Some(st) = &e.storage {
            names.extend(secrets::referenced(
                &crate::api::KafkaClusterSpec::new(Vec::<String>::new()),
                Some(st),
            ));
        }
        if let Some(k) = e.signing.as_ref().and_then(|g| g.key_secret.as_ref()) {
            names.push(k.name.clone());
        }
    }
    if let Some(n) = &s.notifications {
        names.extend(n.slack.as_ref().map(|x| x.webhook_secret.name.clone()));
        names.extend(
            n.pagerduty
                .as_ref()
                .map(|x| x.routing_key_secret.name.clone()),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// The launcher of the shard Jobs of `kbv`'s restore check (`spec.execution.mode: job`, a
/// `kafkaCluster` to restore into, and the chart's Jobs enabled), None otherwise. The Jobs'
/// run file is the validation with its KafkaBackup (`kb`); they mount the Secrets of the
/// cluster and of the storage only (not the signing key's nor the notification targets').
///
/// Errors: a KafkaBackup in another namespace that names Secrets.
fn shard_jobs(
    ctx: &Arc<Context>,
    kbv: &KafkaBackupValidation,
    kb: Option<&crate::api::KafkaBackup>,
    run: &Run<KafkaBackupValidationStatus>,
) -> Result<Option<super::jobs::JobLauncher>, RunFailure> {
    let spec = &kbv.spec;
    let (Some(cluster), Some(defaults)) = (&spec.kafka_cluster, &ctx.jobs) else {
        return Ok(None);
    };
    if spec.execution.mode != crate::api::ExecutionMode::Job {
        return Ok(None);
    }
    let ns = kbv.namespace().unwrap_or_default();
    let mut names = secrets::referenced(cluster, spec.backup_ref.storage.as_ref());
    let mut refs = vec![];
    let storage = match kb {
        Some(kb) => Some(super::restore::backup_for_shards(
            kb, &ns, &mut names, &mut refs,
        )?),
        None => spec.backup_ref.storage.as_ref(),
    };
    names.sort();
    names.dedup();
    let failed = |e: String| RunFailure::from(crate::exec::ExecError::Failed(e));
    let resource = super::jobs::RunResource::of(kbv, &refs, names, &[storage], &spec.execution)
        .map_err(failed)?;
    let exec = crate::exec::ExecContext::new(run.progress.clone(), run.cancel.clone(), None, None);
    Ok(Some(super::jobs::JobLauncher::new(
        ctx, defaults, resource, &exec,
    )))
}

impl OneShot for KafkaBackupValidation {
    const KIND: &'static str = "KafkaBackupValidation";

    fn validate(&self) -> Result<(), String> {
        crate::api::validate::validate_backup_validation(self).map_err(|e| e.to_string())
    }

    /// The shards of a restore check run as Jobs, while it runs.
    const LIVE: bool = true;

    fn live(s: &mut KafkaBackupValidationStatus, live: Live) {
        if s.phase == Some(BackupValidationPhase::Running) {
            s.shards = live.shards;
        }
    }

    fn schedule(&self) -> Option<Schedule> {
        self.spec.schedule.as_ref().map(|c| Schedule {
            cron: c.clone(),
            time_zone: self.spec.time_zone.clone(),
            suspend: self.spec.suspend,
        })
    }

    fn run(
        ctx: Arc<Context>,
        kbv: Arc<Self>,
        run: Run<KafkaBackupValidationStatus>,
    ) -> RunFuture<KafkaBackupValidationStatus> {
        Box::pin(async move {
            let ns = kbv.namespace().unwrap_or_default();
            let name = kbv.name_any();
            let mut store = secrets::load(&ctx.client, &ns, &secret_names(&kbv)).await?;
            let kb = super::offsets::referenced_backup(
                &ctx,
                &ns,
                &kbv.spec.backup_ref,
                &mut store,
                "spec.backupRef.name",
            )
            .await?;
            let now = crate::exec::engine::system_now_ms();
            let progress = run.progress.clone();
            let (kb, root) = (kb.as_ref(), &ctx.pvc_root);
            let done = match shard_jobs(&ctx, &kbv, kb, &run)? {
                Some(launcher) => {
                    let shards = kbv.spec.execution.shards;
                    super::jobs::check_claims(&ctx.client, &launcher.resource, shards)
                        .await
                        .map_err(|e| RunFailure::from(crate::exec::ExecError::Input(e)))?;
                    crate::kinds::validation::run_sharded(&kbv, kb, &store, root, now, &launcher)
                        .await?
                }
                None => crate::kinds::validation::run(&kbv, kb, &store, root, now).await?,
            };
            let r = &done.report;
            let passed = r.result != Outcome::Fail;
            ctx.metrics.validation_finished(
                super::http::ValidationLabels {
                    resource_namespace: ns.clone(),
                    backup: r.backup.name.clone(),
                    validation: name.clone(),
                },
                passed,
                now,
            );
            let count = |o: Outcome| r.checks.iter().filter(|c| c.outcome == o).count() as u32;
            let (total, ok, failed) = (
                r.checks.len() as u32,
                count(Outcome::Pass),
                count(Outcome::Fail),
            );
            let failed_names: Vec<String> = r
                .checks
                .iter()
                .filter(|c| c.outcome == Outcome::Fail)
                .map(|c| c.name.clone())
                .collect();
            let message = if passed {
                format!(
                    "backup {} run {}: {ok} of {total} checks passed; evidence {}",
                    r.backup.name, r.backup.run_id, done.path
                )
            } else {
                format!(
                    "[validation-failed] backup {} run {}: {failed} of {total} checks failed ({}); evidence {}",
                    r.backup.name,
                    r.backup.run_id,
                    failed_names.join(", "),
                    done.path
                )
            };
            let results: Vec<CheckResult> = r
                .checks
                .iter()
                .map(|c| CheckResult {
                    check_name: c.name.clone(),
                    outcome: outcome(c.outcome),
                    message: c.failures.first().cloned().or_else(|| {
                        (!c.figures.is_empty()).then(|| {
                            c.figures
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                    }),
                    duration_ms: c.duration_ms,
                })
                .collect();
            let finished_at = Timestamp::from_millisecond(now).map(Time).ok();
            let run = finished_at.clone().map(|t| ValidationRun {
                report_id: r.report_id.clone(),
                backup_id: r.backup.run_id.clone(),
                result: outcome(r.result),
                finished_at: t,
                evidence_report_path: done.path.clone(),
            });
            let shards = Live::of(&progress).shards;
            let (run_id, verdict, path, signed) = (
                r.backup.run_id.clone(),
                outcome(r.result),
                done.path.clone(),
                done.signature.is_some(),
            );
            Ok(Some(
                Finished {
                    phase: Phase::Completed,
                    message,
                    fields: Box::new(move |s: &mut KafkaBackupValidationStatus| {
                        s.backup_id = Some(run_id.clone());
                        s.validation_result = Some(verdict);
                        s.checks_total = Some(total);
                        s.checks_passed = Some(ok);
                        s.checks_failed = Some(failed);
                        s.checks_warned = Some(0);
                        s.check_results = results.clone();
                        s.evidence_report_path = Some(path.clone());
                        s.evidence_report_signed = Some(signed);
                        s.shards = shards.clone();
                        s.last_validation_time = finished_at.clone();
                        if let Some(run) = &run
                            && !s.history.iter().any(|h| h.report_id == run.report_id)
                        {
                            s.history.insert(0, run.clone());
                            s.history.truncate(HISTORY);
                        }
                    }),
                }
                .into(),
            ))
        })
    }
}
