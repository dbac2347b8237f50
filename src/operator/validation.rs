//! KafkaBackupValidation on the generic controller ([`super::oneshot`]): once per generation,
//! or on `schedule` (with `timeZone` and `suspend`). A run is [`crate::kinds::validation::run`],
//! the same as `run -f`. Phase `Completed` means the checks ran (the verdict is
//! `validationResult`); `Failed` means the validation could not run (a missing Secret, storage
//! or cluster unreachable). Each finished run sets the metrics
//! `kbo_validation_last_result` and, on a pass, `kbo_validation_last_pass_timestamp_seconds`,
//! and is added to `status.history` (newest first, 10 kept).
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::oneshot::{Finished, OneShot, OneShotStatus, Phase, Run, RunFuture, Schedule};
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

impl OneShot for KafkaBackupValidation {
    const KIND: &'static str = "KafkaBackupValidation";

    fn validate(&self) -> Result<(), String> {
        crate::api::validate::validate_backup_validation(self).map_err(|e| e.to_string())
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
        _run: Run<KafkaBackupValidationStatus>,
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
            let done = crate::kinds::validation::run(&kbv, kb.as_ref(), &store, &ctx.pvc_root, now)
                .await?;
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
