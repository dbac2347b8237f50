//! KafkaBackup on the generic controller ([`super::oneshot`]): its decision (pure,
//! [`super::decide::decide_backup`]: schedule, continuous, one-off, run-now), its run (observe
//! -> compile -> execute, then retention, in a pool task, never inside `reconcile()`) and what
//! status shows of it (live progress, the run's figures, history, retention).
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{BackupAction, PoolState, decide_backup};
use super::oneshot::{Idle, IdleWrite, OneShot, Phase, Report, Run, RunFuture, Start, Step};
use super::retry::RunFailure;
use super::status::{Live, Write, set_condition, write_status};
use super::{Context, OperatorError, secrets};
use crate::api::{
    BackupPhase, BackupRunRecord, ConditionStatus, KafkaBackup, KafkaBackupStatus, RetentionStatus,
};
use crate::exec::{Cancel, ExecContext, Progress};
use crate::format::manifest::RunManifest;
use crate::kinds::{Access, backup::prepare as prepare_backup};
use crate::plan::{Recoverability, RetentionPlan};

/// Runs kept in `status.history`.
pub use crate::api::HISTORY_LIMIT;

/// Reconciles one KafkaBackup (the generic controller, [`super::oneshot::reconcile`]), and
/// starts its backup sync when it has no window yet ([`super::sync`]).
pub async fn reconcile(kb: Arc<KafkaBackup>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    let action = super::oneshot::reconcile(kb.clone(), ctx.clone()).await;
    // a repository that already holds runs shows them before the first run here (after the
    // reconcile: a run it started computes the window itself)
    super::sync::maybe_start(&ctx, &kb);
    action
}

impl OneShot for KafkaBackup {
    const KIND: &'static str = "KafkaBackup";
    const STARTED: &'static str = "RunStarted";
    const RESUME_KEEPS_START_TIME: bool = false;

    fn validate(&self) -> Result<(), String> {
        crate::api::validate_backup(self)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// [`decide_backup`]: the schedule (anchored ticks, a tick during a run skipped),
    /// `continuous` and one-off runs, run-now triggers, a run left Running resumed.
    fn decide(&self, pool: &PoolState, now: Timestamp) -> Step<KafkaBackupStatus> {
        let status = self.status.as_ref();
        let last_trigger = status.and_then(|s| s.last_run_trigger.as_deref());
        match decide_backup(self, pool, now, last_trigger) {
            BackupAction::Finalize => Step::Idle(Idle::after(None)),
            BackupAction::Invalid { field, message } => {
                tracing::warn!(%field, "invalid KafkaBackup");
                Step::Invalid(message)
            }
            BackupAction::Start {
                key,
                scheduled,
                trigger,
                resumed,
            } => Step::Start(start(key, scheduled, trigger, resumed)),
            BackupAction::Skip { tick, missed } => Step::Idle(Idle {
                write: Some(IdleWrite {
                    how: Write::Must,
                    always: true,
                    fields: Box::new(move |s: &mut KafkaBackupStatus| {
                        s.last_schedule_time = Some(Time(tick))
                    }),
                }),
                event: Some((
                    "Skipped",
                    format!(
                        "tick {tick} skipped: the previous run is still going ({missed} earlier ticks missed)"
                    ),
                )),
                live: false,
                requeue: Some(Duration::from_secs(5)),
            }),
            BackupAction::Wait {
                requeue_after,
                next_tick,
            } => Step::Idle(wait(self, requeue_after, next_tick)),
        }
    }

    /// [`attempt`], and the report of a completed run ([`completed`]).
    fn run(
        ctx: Arc<Context>,
        kb: Arc<Self>,
        run: Run<KafkaBackupStatus>,
    ) -> RunFuture<KafkaBackupStatus> {
        Box::pin(async move {
            let api: Api<KafkaBackup> =
                Api::namespaced(ctx.client.clone(), &kb.namespace().unwrap_or_default());
            let done = attempt(&ctx, &kb, &api, run.tick, run.cancel, run.progress.clone()).await?;
            Ok(done
                .map(|(m, retention, rec)| completed(m, retention, rec, Live::of(&run.progress))))
        })
    }

    fn failed(message: String) -> Report<KafkaBackupStatus> {
        Report::failed(
            message,
            "RunFailed",
            "BackupFailed",
            Box::new(|s: &mut KafkaBackupStatus, _| s.phase = Some(BackupPhase::Failed)),
        )
    }

    /// Records, bytes, planned figures, percent, ETA, the current partition and throughput,
    /// while Running.
    fn live(s: &mut KafkaBackupStatus, live: Live) {
        if s.phase != Some(BackupPhase::Running) {
            return;
        }
        s.records_processed = Some(live.records);
        s.bytes_processed = Some(live.bytes);
        s.records_planned = live.records_planned;
        s.bytes_planned = live.bytes_planned;
        s.progress_percent = live.percent;
        s.eta_ms = live.eta_ms;
        s.current_topic = live.current;
        s.throughput_records_per_sec = Some(live.records_per_sec);
        s.throughput_bytes_per_sec = Some(live.bytes_per_sec);
        s.shards = live.shards;
    }
}

/// The start of run `key` (of tick `scheduled`, or of run-now `trigger`): the tick and the
/// trigger are recorded with the start transition, before the run starts (a restart or a
/// second look at the same tick then finds it taken); a Started, Scheduled or (`resumed`)
/// Retried Event. A scheduled run takes its run id from its tick, so a tick and its run are
/// one and the same everywhere.
fn start(
    key: String,
    scheduled: Option<Timestamp>,
    trigger: Option<String>,
    resumed: bool,
) -> Start<KafkaBackupStatus> {
    let note = if resumed {
        format!(
            "backup run {key}: interrupted by an operator restart or a leadership change; started again, it resumes from its checkpoint"
        )
    } else {
        format!("backup run {key} started")
    };
    Start {
        message: format!("run {key}"),
        run: key,
        resumed,
        tick: scheduled,
        reason: if scheduled.is_some() {
            "Scheduled"
        } else {
            "Started"
        },
        note,
        fields: Some(Box::new(move |s: &mut KafkaBackupStatus| {
            if let Some(t) = scheduled {
                s.last_schedule_time = Some(Time(t));
            }
            if trigger.is_some() {
                s.last_run_trigger = trigger.clone();
            }
            s.shards.clear(); // the shards of an earlier run
        })),
    }
}

/// Nothing to start: live progress of the running run, the next tick (when status does not
/// show it yet, else with the live progress), and a scheduled backup's first "accepted,
/// waiting" status (phase Ready, Ready=True/Scheduled, observedGeneration, said from the first
/// second, not an empty PHASE); then look again after `requeue_after` (None: on change only).
fn wait(
    kb: &KafkaBackup,
    requeue_after: Option<Duration>,
    next_tick: Option<Timestamp>,
) -> Idle<KafkaBackupStatus> {
    let status = kb.status.as_ref();
    let next_changed = next_tick.map(Time) != status.and_then(|s| s.next_scheduled_backup.clone());
    let waiting_first = next_tick.is_some() && status.and_then(|s| s.phase).is_none();
    let generation = kb.metadata.generation;
    Idle {
        write: Some(IdleWrite {
            how: Write::BestEffort,
            always: next_changed || waiting_first,
            fields: Box::new(move |s: &mut KafkaBackupStatus| {
                s.next_scheduled_backup = next_tick.map(Time);
                if s.phase.is_none()
                    && let Some(t) = next_tick
                {
                    s.phase = Some(BackupPhase::Ready);
                    s.common.observed_generation = generation;
                    set_condition(
                        &mut s.common,
                        "Ready",
                        ConditionStatus::True,
                        "Scheduled",
                        &format!("accepted; the first scheduled run is at {t}"),
                        generation,
                        Timestamp::now(),
                    );
                }
            }),
        }),
        event: None,
        live: true,
        requeue: requeue_after,
    }
}

/// A completed run: its manifest, what retention did (or why it failed) when enabled, and the
/// recoverability of the complete runs left after it (None: they could not be read).
type BackedUp = (
    RunManifest,
    Option<Result<RetentionPlan, String>>,
    Option<Recoverability>,
);

/// One attempt of backup `kb`: its Secrets (the retention's own key pair too),
/// `kinds::backup::prepare`, the run id and plan hash recorded in status,
/// `kinds::backup::run` (retention after a successful run; its failure does not fail the
/// run), then the recoverability of the runs retention left ([`recoverability_after`]).
/// `Ok(None)`: cancelled.
async fn attempt(
    ctx: &Context,
    kb: &KafkaBackup,
    api: &Api<KafkaBackup>,
    scheduled: Option<Timestamp>,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<Option<BackedUp>, RunFailure> {
    let mut names = secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
    // retention's own key pair (retention.credentialsSecret)
    names.extend(
        kb.spec
            .retention
            .credentials_secret
            .as_ref()
            .map(|c| c.name.clone()),
    );
    let secrets = secrets::load(&ctx.client, &kb.namespace().unwrap_or_default(), &names).await?;
    let prep = prepare_backup(
        kb,
        &secrets,
        &ctx.pvc_root,
        scheduled.unwrap_or_else(Timestamp::now).as_millisecond(),
        Access::ReadWrite,
    )
    .await?;
    let (run_id, hash) = (prep.plan.run_id.clone(), prep.plan.hash.clone());
    // a failed write is logged and counted by write_status; the run goes on
    let _ = write_status(
        ctx,
        api,
        &kb.name_any(),
        Write::Must,
        |s: &mut KafkaBackupStatus| {
            s.backup_id = Some(run_id.clone());
            s.common.plan_hash = Some(hash.clone());
            s.resumable = Some(prep.plan.checkpoint_interval_ms.is_some());
        },
    )
    .await;
    let exec = ExecContext::new(
        progress,
        cancel,
        prep.plan.bytes_per_sec,
        prep.plan.records_per_sec,
    );
    let out = match (&prep.plan.execution, &ctx.jobs) {
        (Some(_), Some(defaults)) => {
            let launcher = shard_jobs(ctx, kb, defaults, &exec)?;
            let shards = prep
                .plan
                .execution
                .as_ref()
                .map_or(1, |e| e.shards.len() as u32);
            super::jobs::check_claims(&ctx.client, &launcher.resource, shards)
                .await
                .map_err(|e| RunFailure::from(crate::exec::ExecError::Input(e)))?;
            let pvc = &ctx.pvc_root;
            crate::kinds::backup::run_sharded(kb, &prep, &secrets, pvc, &exec, &launcher).await
        }
        _ => crate::kinds::backup::run(kb, &prep, &secrets, &ctx.pvc_root, &exec).await,
    };
    match out {
        Err(e) if e.is_cancelled() => Ok(None),
        Err(e) => Err(e.into()),
        Ok(out) => Ok(Some((
            out.manifest,
            out.retention.map(|r| r.map_err(|e| e.to_string())),
            recoverability_after(&prep.op, &kb.name_any()).await,
        ))),
    }
}

/// The recoverability window of backup `name`'s complete runs as the repository holds them
/// now (after a run and its retention pass): every manifest read again, so runs retention
/// pruned are gone from it. None when they cannot be read (logged; status keeps the window
/// it shows).
async fn recoverability_after(op: &opendal::Operator, name: &str) -> Option<Recoverability> {
    match crate::observe::load_complete_manifests(op, name).await {
        Ok(runs) => Some(crate::plan::recoverability(&runs)),
        Err(e) => {
            tracing::warn!(backup = %name, error = %e, "recoverability window not updated: the complete runs could not be read");
            None
        }
    }
}

/// The launcher of the shard Jobs of `kb`'s sharded run: the KafkaBackup as the Jobs' run
/// file, the Secrets its cluster and storage name, its `storageType: pvc` claim.
fn shard_jobs(
    ctx: &Context,
    kb: &KafkaBackup,
    defaults: &Arc<super::jobs::JobDefaults>,
    exec: &ExecContext,
) -> Result<super::jobs::JobLauncher, RunFailure> {
    let spec = &kb.spec;
    let resource = super::jobs::RunResource::of(
        kb,
        &[],
        secrets::referenced(&spec.kafka_cluster, Some(&spec.storage)),
        &[Some(&spec.storage)],
        &spec.execution,
    )
    .map_err(|e| RunFailure::from(crate::exec::ExecError::Failed(e)))?;
    Ok(super::jobs::JobLauncher::new(ctx, defaults, resource, exec))
}

/// The report of a completed run `m` (with what retention did, if it ran): phase Completed,
/// the run's figures (`live`: the counters at its end), its history record, retention's
/// status, the recoverability window (`rec`, when it could be read); Ready=True/BackupCompleted
/// and a Completed Event.
fn completed(
    m: RunManifest,
    retention: Option<Result<RetentionPlan, String>>,
    rec: Option<Recoverability>,
    live: Live,
) -> Report<KafkaBackupStatus> {
    let ready = format!("{} records in run {}", m.total_records, m.run_id);
    let note = format!(
        "run {}: {} records, {} bytes",
        m.run_id, m.total_records, m.total_raw_bytes
    );
    let progressing = format!("run {}", m.run_id);
    Report {
        message: None,
        progressing: ("RunCompleted", progressing),
        ready: (ConditionStatus::True, "BackupCompleted", ready),
        event: (EventType::Normal, "Completed", note),
        fields: Box::new(move |s: &mut KafkaBackupStatus, now| {
            s.phase = Some(BackupPhase::Completed);
            s.last_backup_time = Some(Time(now));
            s.backup_id = Some(m.run_id.clone());
            s.records_processed = Some(m.total_records);
            s.bytes_processed = Some(m.total_raw_bytes);
            s.segments_completed = Some(
                m.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.segments.len() as u64)
                    .sum(),
            );
            s.throughput_records_per_sec = Some(live.records_per_sec);
            s.throughput_bytes_per_sec = Some(live.bytes_per_sec);
            s.progress_percent = live.percent.map(|_| 100.0);
            s.eta_ms = live.eta_ms.map(|_| 0);
            s.current_topic = None;
            s.shards = live.shards.clone();
            s.history.insert(
                0,
                BackupRunRecord {
                    run_id: m.run_id.clone(),
                    phase: BackupPhase::Completed,
                    start_time: Some(Time(
                        Timestamp::from_millisecond(m.start_time).unwrap_or(now),
                    )),
                    completion_time: Some(Time(now)),
                    records: m.total_records,
                    bytes: m.total_raw_bytes,
                },
            );
            s.history.truncate(HISTORY_LIMIT);
            if let Some(r) = &retention {
                s.retention = Some(retention_status(s, r, now));
            }
            if let Some(r) = &rec {
                crate::plan::set_recoverability_status(s, r);
            }
        }),
    }
}

/// What retention did after a run, for `status.retention`; runs it pruned leave `s.history`.
fn retention_status(
    s: &mut KafkaBackupStatus,
    r: &Result<RetentionPlan, String>,
    now: Timestamp,
) -> RetentionStatus {
    let mut rs = RetentionStatus {
        last_retention_time: Some(Time(now)),
        ..Default::default()
    };
    match r {
        Ok(p) => {
            rs.inspected_backups = Some(p.inspected);
            rs.eligible_backups = Some(p.delete_runs.len() as u64);
            rs.deleted_backups = Some(if p.dry_run {
                0
            } else {
                p.delete_runs.len() as u64
            });
            rs.reclaimed_bytes = Some(if p.dry_run { 0 } else { p.reclaimed_bytes });
            if !p.dry_run {
                // pruned runs leave the history too
                s.history.retain(|h| !p.delete_runs.contains(&h.run_id));
            }
        }
        Err(e) => rs.error = Some(e.clone()),
    }
    rs
}

impl super::oneshot::OneShotStatus for KafkaBackupStatus {
    fn header(&self) -> &crate::api::StatusHeader {
        &self.common
    }
    fn header_mut(&mut self) -> &mut crate::api::StatusHeader {
        &mut self.common
    }
    /// Ready (accepted, waiting for a tick) is no run's phase.
    fn phase(&self) -> Option<Phase> {
        self.phase.and_then(|p| match p {
            BackupPhase::Ready => None,
            BackupPhase::Running => Some(Phase::Running),
            BackupPhase::Completed => Some(Phase::Completed),
            BackupPhase::Failed => Some(Phase::Failed),
        })
    }
    fn set_phase(&mut self, p: Phase) {
        self.phase = Some(match p {
            Phase::Running => BackupPhase::Running,
            Phase::Completed | Phase::PartiallyCompleted => BackupPhase::Completed,
            Phase::Failed => BackupPhase::Failed,
        });
    }
    fn last_tick(&self) -> Option<Timestamp> {
        self.last_schedule_time.as_ref().map(|t| t.0)
    }
    fn set_ticks(&mut self, last: Option<Timestamp>, next: Option<Timestamp>) {
        self.last_schedule_time = last.map(Time);
        self.next_scheduled_backup = next.map(Time);
    }
    fn set_waiting(&mut self) {
        self.phase = Some(BackupPhase::Ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{TopicWindow, Window};

    fn manifest(run: &str) -> RunManifest {
        serde_json::from_value(serde_json::json!({
            "format": "kafka-backup-operator/v2", "backupName": "b", "runId": run,
            "previousRunId": null, "startTime": 0, "completionTime": 0, "planHash": "",
            "clusterId": null, "compression": "zstd", "topics": [], "consumerGroups": [],
            "totalRecords": 0, "totalRawBytes": 0
        }))
        .unwrap()
    }

    fn window(first_ms: i64, last_ms: i64) -> Recoverability {
        Recoverability {
            window: Some(Window { first_ms, last_ms }),
            runs: 1,
            topics: vec![TopicWindow {
                topic: "orders".into(),
                window: Some(Window { first_ms, last_ms }),
                partitions_with_gaps: vec![2],
            }],
        }
    }

    /// A completed run writes the window it was given; a failed run, and a completed run
    /// whose repository could not be read again, leave the window status shows.
    #[test]
    fn the_window_moves_with_completed_runs_only() {
        let live = Live::of(&crate::exec::Progress::new(None));
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut s = KafkaBackupStatus::default();
        (completed(
            manifest("r1"),
            None,
            Some(window(1_000, 2_500)),
            live.clone(),
        )
        .fields)(&mut s, now);
        assert_eq!(
            s.first_recoverability_point.as_deref(),
            Some("1970-01-01T00:00:01Z")
        );
        assert_eq!(
            s.last_recoverability_point.as_deref(),
            Some("1970-01-01T00:00:02.5Z")
        );
        assert_eq!(s.topics[0].partitions_with_gaps, vec![2]);
        let shown = s.clone();
        (<KafkaBackup as OneShot>::failed("boom".into()).fields)(&mut s, now);
        assert_eq!(s.phase, Some(BackupPhase::Failed));
        assert_eq!(
            (
                &s.first_recoverability_point,
                &s.last_recoverability_point,
                &s.topics
            ),
            (
                &shown.first_recoverability_point,
                &shown.last_recoverability_point,
                &shown.topics
            )
        );
        (completed(manifest("r2"), None, None, live.clone()).fields)(&mut s, now);
        assert_eq!(s.last_recoverability_point, shown.last_recoverability_point);
        // retention pruned the oldest runs: the next report moves the first point
        (completed(manifest("r3"), None, Some(window(2_000, 3_000)), live).fields)(&mut s, now);
        assert_eq!(
            s.first_recoverability_point.as_deref(),
            Some("1970-01-01T00:00:02Z")
        );
    }
}
