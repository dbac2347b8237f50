//! The KafkaBackup controller: reconcile = decide (pure, [`super::decide`]) + hand work to the
//! pool + report status (server-side apply, one field manager) and Events. The run itself
//! (observe -> compile -> execute) happens in a pool task, never inside `reconcile()`.
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{BackupAction, decide_backup};
use super::oneshot::{Phase, Report, finish_run, report_invalid};
use super::retry::RunFailure;
use super::status::{Live, Write, set_condition, write_status};
use super::{Context, OperatorError, obj_key, secrets};
use crate::api::{
    BackupPhase, BackupRunRecord, ConditionStatus, KafkaBackup, KafkaBackupStatus, RetentionStatus,
};
use crate::exec::{Cancel, ExecContext, Progress};
use crate::format::manifest::RunManifest;
use crate::kinds::{Access, backup::prepare as prepare_backup};
use crate::plan::RetentionPlan;

/// Runs kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;

/// Reconciles one KafkaBackup.
pub async fn reconcile(kb: Arc<KafkaBackup>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    super::reconcile_guarded(
        kb,
        ctx,
        |kb, ctx, api| async move { apply(kb, ctx, &api).await },
    )
    .await
}

async fn apply(
    kb: Arc<KafkaBackup>,
    ctx: Arc<Context>,
    api: &Api<KafkaBackup>,
) -> Result<Action, OperatorError> {
    let key = obj_key(&*kb);
    let now = Timestamp::now();
    let generation = kb.metadata.generation;
    let last_trigger = kb.status.as_ref().and_then(|s| s.last_run_trigger.clone());
    let name = kb.name_any();
    match decide_backup(&kb, &ctx.pool.state(&key), now, last_trigger.as_deref()) {
        BackupAction::Finalize => Ok(Action::await_change()),
        BackupAction::Invalid { field, message } => {
            tracing::warn!(%field, "invalid KafkaBackup");
            report_invalid(&kb, &ctx, api, &message, generation, now).await
        }
        BackupAction::Start {
            key: run_key,
            scheduled,
            trigger,
            resumed,
        } => start(&kb, &ctx, api, run_key, scheduled, trigger, resumed, now).await,
        BackupAction::Skip { tick, missed } => {
            write_status(
                &ctx,
                api,
                &name,
                Write::Must,
                |s: &mut KafkaBackupStatus| s.last_schedule_time = Some(Time(tick)),
            )
            .await?;
            let note = format!(
                "tick {tick} skipped: the previous run is still going ({missed} earlier ticks missed)"
            );
            ctx.event(&*kb, EventType::Normal, "Skipped", &note).await;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        BackupAction::Wait {
            requeue_after,
            next_tick,
        } => wait(&kb, &ctx, api, requeue_after, next_tick).await,
    }
}

/// Starts run `run_key` (of tick `scheduled`, or of run-now `trigger`): status Running with
/// the tick and trigger recorded before the run starts (a restart or a second look at the same
/// tick then finds it taken), the pool task, and a Started, Scheduled or (`resumed`) Retried
/// Event.
#[allow(clippy::too_many_arguments)]
async fn start(
    kb: &Arc<KafkaBackup>,
    ctx: &Arc<Context>,
    api: &Api<KafkaBackup>,
    run_key: String,
    scheduled: Option<Timestamp>,
    trigger: Option<String>,
    resumed: bool,
    now: Timestamp,
) -> Result<Action, OperatorError> {
    let key = obj_key(&**kb);
    let generation = kb.metadata.generation;
    let name = kb.name_any();
    // Record the tick (and trigger) before the run starts: a restart or a second look
    // at the same tick then finds it taken.
    write_status(ctx, api, &name, Write::Must, |s: &mut KafkaBackupStatus| {
        s.phase = Some(BackupPhase::Running);
        s.common.observed_generation = generation;
        s.common.start_time = Some(Time(now));
        s.common.completion_time = None;
        s.common.message = None;
        if let Some(t) = scheduled {
            s.last_schedule_time = Some(Time(t));
        }
        if trigger.is_some() {
            s.last_run_trigger = trigger.clone();
        }
        set_condition(
            &mut s.common,
            "Progressing",
            ConditionStatus::True,
            "RunStarted",
            &format!("run {run_key}"),
            generation,
            now,
        );
    })
    .await?;
    let started = ctx.pool.start(key, run_key.clone(), {
        let (ctx, kb) = (ctx.clone(), kb.clone());
        move |cancel, progress| {
            let span = tracing::info_span!("run", kind = "KafkaBackup", namespace = %kb.namespace().unwrap_or_default(), resource = %kb.name_any());
            tracing::Instrument::instrument(run_task(ctx, kb, scheduled, cancel, progress), span)
        }
    });
    if started && resumed {
        ctx.event(
            &**kb,
            EventType::Normal,
            "Retried",
            &format!("backup run {run_key}: interrupted by an operator restart or a leadership change; started again, it resumes from its checkpoint"),
        )
        .await;
    } else if started {
        let reason = if scheduled.is_some() {
            "Scheduled"
        } else {
            "Started"
        };
        ctx.event(
            &**kb,
            EventType::Normal,
            reason,
            &format!("backup run {run_key} started"),
        )
        .await;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Nothing to start: live progress of the running run (at most one write per
/// `PROGRESS_EVERY`), the next tick, and a scheduled backup's first "accepted, waiting" status;
/// then look again after `requeue_after` (None: on change only).
async fn wait(
    kb: &Arc<KafkaBackup>,
    ctx: &Arc<Context>,
    api: &Api<KafkaBackup>,
    requeue_after: Option<Duration>,
    next_tick: Option<Timestamp>,
) -> Result<Action, OperatorError> {
    let key = obj_key(&**kb);
    let name = kb.name_any();
    let progress = ctx.pool.progress(&key);
    let next_changed = next_tick.map(Time)
        != kb
            .status
            .as_ref()
            .and_then(|s| s.next_scheduled_backup.clone());
    if let Some(p) = &progress {
        ctx.metrics
            .running("KafkaBackup", &kb.namespace().unwrap_or_default(), p);
    }
    // Live progress while running: at most one write per PROGRESS_EVERY (each write
    // is a watch event, and so another reconcile).
    let due = ctx.pool.progress_due(&key, super::pool::PROGRESS_EVERY);
    // Accepted and waiting for its first tick: said from the first second (phase
    // Ready, Ready=True/Scheduled, observedGeneration), not an empty PHASE.
    let waiting_first = next_tick.is_some() && kb.status.as_ref().and_then(|s| s.phase).is_none();
    if due.is_some() || next_changed || waiting_first {
        write_status(
            ctx,
            api,
            &name,
            Write::BestEffort,
            |s: &mut KafkaBackupStatus| {
                if let Some(p) = due
                    .as_ref()
                    .filter(|_| s.phase == Some(BackupPhase::Running))
                {
                    let live = Live::of(p);
                    s.records_processed = Some(live.records);
                    s.bytes_processed = Some(live.bytes);
                    s.records_planned = live.records_planned;
                    s.bytes_planned = live.bytes_planned;
                    s.progress_percent = live.percent;
                    s.eta_ms = live.eta_ms;
                    s.current_topic = live.current;
                    s.throughput_records_per_sec = Some(live.records_per_sec);
                    s.throughput_bytes_per_sec = Some(live.bytes_per_sec);
                }
                s.next_scheduled_backup = next_tick.map(Time);
                if s.phase.is_none()
                    && let Some(t) = next_tick
                {
                    let now = Timestamp::now();
                    let generation = kb.metadata.generation;
                    s.phase = Some(BackupPhase::Ready);
                    s.common.observed_generation = generation;
                    set_condition(
                        &mut s.common,
                        "Ready",
                        ConditionStatus::True,
                        "Scheduled",
                        &format!("accepted; the first scheduled run is at {t}"),
                        generation,
                        now,
                    );
                }
            },
        )
        .await?;
    }
    Ok(requeue_after
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// One run in the pool: attempts of [`attempt`] (retried when transient), then the report
/// ([`finish_run`]). A scheduled run takes its run id from its tick, so a tick and its run are
/// one and the same everywhere.
async fn run_task(
    ctx: Arc<Context>,
    kb: Arc<KafkaBackup>,
    scheduled: Option<Timestamp>,
    cancel: Cancel,
    progress: Arc<Progress>,
) {
    let ns = kb.namespace().unwrap_or_default();
    let name = kb.name_any();
    let api: Api<KafkaBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let attempt = || {
        let (ctx, kb, cancel, progress, api) = (
            ctx.clone(),
            kb.clone(),
            cancel.clone(),
            progress.clone(),
            api.clone(),
        );
        async move { attempt(&ctx, &kb, &api, scheduled, cancel, progress).await }
    };
    let result = super::run_attempts(&ctx, &kb, &cancel, attempt, |_| async {}).await;
    // Cancelled (deleted, lease lost, shutdown): the checkpoint stays; the next owner resumes.
    finish_run(
        &ctx,
        &*kb,
        &api,
        &name,
        "KafkaBackup",
        result,
        &progress,
        |r| match r {
            Ok((m, retention)) => completed(m, retention, Live::of(&progress)),
            Err(message) => Report::failed(
                message,
                "RunFailed",
                "BackupFailed",
                Box::new(|s: &mut KafkaBackupStatus, _| s.phase = Some(BackupPhase::Failed)),
            ),
        },
    )
    .await;
}

/// A completed run: its manifest, and what retention did (or why it failed) when enabled.
type BackedUp = (RunManifest, Option<Result<RetentionPlan, String>>);

/// One attempt of backup `kb`: its Secrets (the retention's own key pair too),
/// `kinds::backup::prepare`, the run id and plan hash recorded in status,
/// `kinds::backup::run` (retention after a successful run; its failure does not fail the
/// run). `Ok(None)`: cancelled.
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
    match crate::kinds::backup::run(kb, &prep, &secrets, &ctx.pvc_root, &exec).await {
        Err(e) if e.is_cancelled() => Ok(None),
        Err(e) => Err(e.into()),
        Ok(out) => Ok(Some((
            out.manifest,
            out.retention.map(|r| r.map_err(|e| e.to_string())),
        ))),
    }
}

/// The report of a completed run `m` (with what retention did, if it ran): phase Completed,
/// the run's figures (`live`: the counters at its end), its history record, retention's
/// status; Ready=True/BackupCompleted and a Completed Event.
fn completed(
    m: RunManifest,
    retention: Option<Result<RetentionPlan, String>>,
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
