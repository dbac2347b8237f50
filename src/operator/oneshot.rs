//! The generic controller of the kinds that run once per generation (KafkaOffsetReset,
//! KafkaOffsetRollback) or on a schedule (KafkaBackupValidation): validate, start one pool
//! task per generation or per schedule tick, report. Each kind supplies its hooks
//! ([`OneShot`]): validation, an optional schedule, the run, and what a finished run writes;
//! the status transitions (Running -> Completed | PartiallyCompleted | Failed, conditions,
//! observedGeneration, Events, metrics) live here once. The end of every kind's run task,
//! KafkaBackup's and KafkaRestore's too, is [`finish_run`]: the run metric, the final status
//! and its Event, from the kind's [`Report`].
//!
//! A schedule is anchored like KafkaBackup's (`operator::schedule`): the tick a reconcile may
//! fire is the latest one after the last tick acted on (recorded in status when the run
//! starts), and the pool key is derived from the tick, so a stale cache, a restart or a second
//! replica never fires a tick twice; ticks missed while a run was in flight or the operator was
//! down are skipped (Forbid), not queued.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde::Serialize;

use super::decide::PoolState;
use super::retry::RunFailure;
use super::status::{StatusResource, Write, set_condition, write_status};
use super::{Context, OperatorError, obj_key};
use crate::api::{ConditionStatus, StatusHeader};
use crate::exec::{Cancel, Progress};

/// The phases every one-shot kind shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Completed,
    /// Some of the work done, some failed (`continueOnError`).
    PartiallyCompleted,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Phase::Running)
    }
}

/// A one-shot kind's status: the shared header and its phase enum.
pub trait OneShotStatus: Default + Clone + Serialize + Send + Sync + 'static {
    fn header(&self) -> &StatusHeader;
    fn header_mut(&mut self) -> &mut StatusHeader;
    fn phase(&self) -> Option<Phase>;
    fn set_phase(&mut self, p: Phase);
    /// Scheduled kinds: the last tick acted on (the schedule's anchor).
    fn last_tick(&self) -> Option<Timestamp> {
        None
    }
    /// Scheduled kinds: records the tick a run starts for and the next tick.
    fn set_ticks(&mut self, _last: Option<Timestamp>, _next: Option<Timestamp>) {}
    /// Scheduled kinds: the phase of a resource accepted and waiting for its first tick.
    fn set_waiting(&mut self) {}
}

/// A kind's schedule: the cron expression (validated), its IANA time zone, `suspend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub cron: String,
    pub time_zone: Option<String>,
    pub suspend: bool,
}

/// What a finished run reports: its phase, a one-line message, and the kind's own status
/// fields (group results, snapshot, verification).
pub struct Finished<S> {
    pub phase: Phase,
    pub message: String,
    pub fields: Box<dyn Fn(&mut S) + Send + Sync>,
}

/// The future of a run.
pub type RunFuture<S> =
    Pin<Box<dyn Future<Output = Result<Option<Finished<S>>, RunFailure>> + Send>>;

/// The hooks of a one-shot kind.
pub trait OneShot: StatusResource + Send + Sync + 'static
where
    Self::Status: OneShotStatus,
{
    /// The kind, for logs, spans and metrics.
    const KIND: &'static str;
    /// Full validation; the message names the fields and the fixes.
    fn validate(&self) -> Result<(), String>;
    /// A schedule that re-runs the kind; None (the default): once per generation.
    fn schedule(&self) -> Option<Schedule> {
        None
    }
    /// One attempt of the run (retried by [`super::run_attempts`] when transient). `status`
    /// is the status when the run started (a resumed run reuses what it recorded, e.g. its
    /// snapshot). `Ok(None)`: cancelled.
    fn run(
        ctx: Arc<Context>,
        obj: Arc<Self>,
        status: Self::Status,
        cancel: Cancel,
        progress: Arc<Progress>,
    ) -> RunFuture<Self::Status>;
}

/// What a reconcile does (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneShotAction {
    /// The spec is invalid: Failed with the message, nothing runs.
    Invalid(String),
    /// Start this generation's run; `resumed` when a run of it was left Running (restart).
    Start { resumed: bool },
    /// A run is in flight: look again later.
    Wait,
    /// This generation is done.
    Done,
}

/// Decides a reconcile of a one-shot resource from its generation, status and pool state.
pub fn decide_oneshot(
    generation: Option<i64>,
    header: Option<&StatusHeader>,
    phase: Option<Phase>,
    pool: &PoolState,
    valid: Result<(), String>,
) -> OneShotAction {
    let run_key = run_key(generation);
    match pool {
        PoolState::Running(_) => return OneShotAction::Wait,
        PoolState::Finished(k) if *k == run_key => return OneShotAction::Done,
        _ => {}
    }
    let this_generation = header.is_some_and(|h| h.observed_generation == generation);
    if this_generation && phase.is_some_and(Phase::is_terminal) {
        return OneShotAction::Done;
    }
    if let Err(m) = valid {
        return if this_generation && phase == Some(Phase::Failed) {
            OneShotAction::Done
        } else {
            OneShotAction::Invalid(m)
        };
    }
    OneShotAction::Start {
        resumed: this_generation && phase == Some(Phase::Running),
    }
}

fn run_key(generation: Option<i64>) -> String {
    format!("generation-{}", generation.unwrap_or(0))
}

fn tick_key(tick: Timestamp) -> String {
    format!("tick-{}", tick.as_millisecond())
}

/// What a reconcile of a scheduled resource does (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduledAction {
    /// The spec is invalid: Failed with the message, nothing runs.
    Invalid(String),
    /// Start the run of `tick`; `resumed` when that tick's run was left Running (restart).
    Start {
        tick: Timestamp,
        next: Option<Timestamp>,
        resumed: bool,
    },
    /// A run is in flight: look again later.
    Wait,
    /// Nothing due: sleep until `next` (None: suspended, or no next tick).
    Sleep { next: Option<Timestamp> },
}

/// Decides a reconcile of a scheduled resource. `anchor` is the last tick acted on (else the
/// resource's creation time); `state` the schedule evaluated at now from that anchor.
// Every input is an observed fact the decision needs; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn decide_scheduled(
    header: Option<&StatusHeader>,
    phase: Option<Phase>,
    last_tick: Option<Timestamp>,
    pool: &PoolState,
    valid: Result<(), String>,
    suspend: bool,
    state: &super::schedule::ScheduleState,
    generation: Option<i64>,
) -> ScheduledAction {
    if let PoolState::Running(_) = pool {
        return ScheduledAction::Wait;
    }
    if let Err(m) = valid {
        let this_generation = header.is_some_and(|h| h.observed_generation == generation);
        return if this_generation && phase == Some(Phase::Failed) {
            ScheduledAction::Sleep { next: None }
        } else {
            ScheduledAction::Invalid(m)
        };
    }
    // a run left Running by a restart: that tick again, same key (never a new tick)
    if phase == Some(Phase::Running)
        && let Some(t) = last_tick
        && !matches!(pool, PoolState::Finished(k) if *k == tick_key(t))
    {
        return ScheduledAction::Start {
            tick: t,
            next: state.next,
            resumed: true,
        };
    }
    if suspend {
        return ScheduledAction::Sleep { next: None };
    }
    match state.due {
        Some(t) if !matches!(pool, PoolState::Finished(k) if *k == tick_key(t)) => {
            ScheduledAction::Start {
                tick: t,
                next: state.next,
                resumed: false,
            }
        }
        _ => ScheduledAction::Sleep { next: state.next },
    }
}

/// Reports an invalid spec once, for every kind: phase Failed, the message, observedGeneration,
/// a Ready=False/InvalidSpec condition and a Warning InvalidSpec Event.
pub async fn report_invalid<K>(
    obj: &Arc<K>,
    ctx: &Context,
    api: &Api<K>,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<Action, OperatorError>
where
    K: StatusResource,
    K::Status: OneShotStatus,
{
    write_status(
        ctx,
        api,
        &obj.name_any(),
        Write::Must,
        |s: &mut K::Status| {
            s.set_phase(Phase::Failed);
            let h = s.header_mut();
            h.observed_generation = generation;
            h.message = Some(message.to_string());
            set_condition(
                h,
                "Ready",
                ConditionStatus::False,
                "InvalidSpec",
                message,
                generation,
                now,
            );
        },
    )
    .await?;
    ctx.event(&**obj, EventType::Warning, "InvalidSpec", message)
        .await;
    Ok(Action::await_change())
}

/// Marks the resource Running for `run` (a generation's or a tick's key; `ticks` records a
/// scheduled run's tick and the next one), then starts the pool task and publishes Started
/// (or Retried, `resumed`) with `note`.
#[allow(clippy::too_many_arguments)]
async fn start_run<K>(
    obj: &Arc<K>,
    ctx: &Arc<Context>,
    api: &Api<K>,
    run: String,
    ticks: Option<(Timestamp, Option<Timestamp>)>,
    resumed: bool,
    note: String,
    now: Timestamp,
) -> Result<Action, OperatorError>
where
    K: OneShot + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::Status: OneShotStatus + serde::de::DeserializeOwned,
{
    let name = obj.name_any();
    let generation = obj.meta().generation;
    let status = obj.status().cloned();
    write_status(ctx, api, &name, Write::Must, |s: &mut K::Status| {
        s.set_phase(Phase::Running);
        if let Some((tick, next)) = ticks {
            s.set_ticks(Some(tick), next);
        }
        let h = s.header_mut();
        h.observed_generation = generation;
        h.message = None;
        if !resumed {
            h.start_time = Some(Time(now));
        }
        h.completion_time = None;
        set_condition(
            h,
            "Progressing",
            ConditionStatus::True,
            "Started",
            &run,
            generation,
            now,
        );
    })
    .await?;
    let started = ctx.pool.start(obj_key(&**obj), run.clone(), {
        let (ctx, obj, api, name) = (ctx.clone(), obj.clone(), api.clone(), name.clone());
        move |cancel, progress| {
            let span = tracing::info_span!("run", kind = K::KIND, namespace = %obj.namespace().unwrap_or_default(), resource = %obj.name_any(), run = %run);
            tracing::Instrument::instrument(
                run_task(ctx, obj, api, name, status.unwrap_or_default(), cancel, progress),
                span,
            )
        }
    });
    if started {
        let reason = if resumed { "Retried" } else { "Started" };
        ctx.event(&**obj, EventType::Normal, reason, &note).await;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Reconciles one resource of a one-shot kind.
pub async fn reconcile<K>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, OperatorError>
where
    K: OneShot + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::Status: OneShotStatus + serde::de::DeserializeOwned,
{
    super::reconcile_guarded(
        obj,
        ctx,
        |o, ctx, api| async move { apply(o, ctx, &api).await },
    )
    .await
}

async fn apply<K>(obj: Arc<K>, ctx: Arc<Context>, api: &Api<K>) -> Result<Action, OperatorError>
where
    K: OneShot + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::Status: OneShotStatus + serde::de::DeserializeOwned,
{
    if let Some(sched) = obj.schedule() {
        return apply_scheduled(obj, ctx, api, sched).await;
    }
    let key = obj_key(&*obj);
    let generation = obj.meta().generation;
    let now = Timestamp::now();
    let status = obj.status().cloned();
    let action = decide_oneshot(
        generation,
        status.as_ref().map(|s| s.header()),
        status.as_ref().and_then(|s| s.phase()),
        &ctx.pool.state(&key),
        obj.validate(),
    );
    match action {
        OneShotAction::Done => Ok(Action::await_change()),
        OneShotAction::Wait => Ok(Action::requeue(Duration::from_secs(5))),
        OneShotAction::Invalid(message) => {
            report_invalid(&obj, &ctx, api, &message, generation, now).await
        }
        OneShotAction::Start { resumed } => {
            let note = if resumed {
                "interrupted by an operator restart or a leadership change; started again"
            } else {
                "started"
            };
            start_run(
                &obj,
                &ctx,
                api,
                run_key(generation),
                None,
                resumed,
                note.to_string(),
                now,
            )
            .await
        }
    }
}

/// The reconcile of a scheduled resource (module docs).
async fn apply_scheduled<K>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    api: &Api<K>,
    sched: Schedule,
) -> Result<Action, OperatorError>
where
    K: OneShot + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::Status: OneShotStatus + serde::de::DeserializeOwned,
{
    let key = obj_key(&*obj);
    let name = obj.name_any();
    let generation = obj.meta().generation;
    let now = Timestamp::now();
    let status = obj.status().cloned();
    let last = status.as_ref().and_then(|s| s.last_tick());
    let created = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let valid = obj.validate();
    let state = match (&valid, crate::api::validate::parse_schedule(&sched.cron)) {
        (Ok(()), Ok(cron)) => {
            let tz = sched
                .time_zone
                .as_deref()
                .map(crate::api::validate::parse_time_zone)
                .transpose()
                .ok()
                .flatten()
                .unwrap_or(jiff::tz::TimeZone::UTC);
            super::schedule::evaluate(&cron, &tz, last.unwrap_or(created), now).unwrap_or(
                super::schedule::ScheduleState {
                    due: None,
                    missed: 0,
                    next: None,
                },
            )
        }
        _ => super::schedule::ScheduleState {
            due: None,
            missed: 0,
            next: None,
        },
    };
    let action = decide_scheduled(
        status.as_ref().map(|s| s.header()),
        status.as_ref().and_then(|s| s.phase()),
        last,
        &ctx.pool.state(&key),
        valid,
        sched.suspend,
        &state,
        generation,
    );
    match action {
        ScheduledAction::Wait => Ok(Action::requeue(Duration::from_secs(5))),
        ScheduledAction::Invalid(message) => {
            report_invalid(&obj, &ctx, api, &message, generation, now).await
        }
        ScheduledAction::Sleep { next } => {
            let recorded = status.as_ref().map(|s| {
                let mut probe = s.clone();
                probe.set_ticks(last, next);
                serde_json::to_value(&probe).ok() == serde_json::to_value(s).ok()
            });
            let waiting_first = status.as_ref().is_none_or(|s| s.phase().is_none());
            if recorded != Some(true) || waiting_first {
                write_status(&ctx, api, &name, Write::Must, |s: &mut K::Status| {
                    s.set_ticks(last, next);
                    let first = s.phase().is_none();
                    let h = s.header_mut();
                    h.observed_generation = generation;
                    if first {
                        // accepted and waiting: said from the first second
                        let (reason, message) = match next {
                            Some(t) => (
                                "Scheduled",
                                format!("accepted; the first scheduled run is at {t}"),
                            ),
                            None => (
                                "Suspended",
                                "accepted; suspended: no run starts".to_string(),
                            ),
                        };
                        set_condition(
                            h,
                            "Ready",
                            ConditionStatus::True,
                            reason,
                            &message,
                            generation,
                            now,
                        );
                        s.set_waiting();
                    }
                })
                .await?;
            }
            Ok(match next {
                Some(n) => Action::requeue(
                    Duration::from_millis((n.as_millisecond() - now.as_millisecond()).max(0) as u64)
                        + Duration::from_millis(200),
                ),
                None => Action::await_change(),
            })
        }
        ScheduledAction::Start {
            tick,
            next,
            resumed,
        } => {
            if state.missed > 0 && !resumed {
                tracing::info!(
                    missed = state.missed,
                    "schedule ticks missed (not run: Forbid)"
                );
            }
            let note = if resumed {
                format!(
                    "the run of tick {tick} was interrupted by an operator restart or a leadership change; started again"
                )
            } else {
                format!("scheduled run of tick {tick} started")
            };
            start_run(
                &obj,
                &ctx,
                api,
                tick_key(tick),
                Some((tick, next)),
                resumed,
                note,
                now,
            )
            .await
        }
    }
}

async fn run_task<K>(
    ctx: Arc<Context>,
    obj: Arc<K>,
    api: Api<K>,
    name: String,
    status: K::Status,
    cancel: Cancel,
    progress: Arc<Progress>,
) where
    K: OneShot,
    K::Status: OneShotStatus,
{
    let attempt = || {
        K::run(
            ctx.clone(),
            obj.clone(),
            status.clone(),
            cancel.clone(),
            progress.clone(),
        )
    };
    let result = super::run_attempts(&ctx, &obj, &cancel, attempt, |_| async {}).await;
    finish_run(&ctx, &*obj, &api, &name, K::KIND, result, &progress, |r| {
        let (phase, message, fields) = match r {
            Ok(f) => (f.phase, f.message, Some(f.fields)),
            Err(message) => (Phase::Failed, message, None),
        };
        let (ready, reason, event) = match phase {
            Phase::Completed => (ConditionStatus::True, "Completed", EventType::Normal),
            Phase::PartiallyCompleted => (
                ConditionStatus::False,
                "PartiallyCompleted",
                EventType::Warning,
            ),
            _ => (ConditionStatus::False, "Failed", EventType::Warning),
        };
        Report {
            message: Some(message.clone()),
            progressing: (reason, message.clone()),
            ready: (ready, reason, message.clone()),
            event: (event, reason, message),
            fields: Box::new(move |s: &mut K::Status, _| {
                if let Some(f) = &fields {
                    f(s);
                }
                s.set_phase(phase);
            }),
        }
    })
    .await;
}

/// How a finished run is reported: what [`finish_run`] writes into status and the Event it
/// publishes. The same shape for every kind; the reasons and messages are the kind's.
pub struct Report<S> {
    /// `status.message`; None leaves it as it is (a completed backup has none).
    pub message: Option<String>,
    /// Condition Progressing=False: its reason and message.
    pub progressing: (&'static str, String),
    /// Condition Ready: its status, reason and message.
    pub ready: (ConditionStatus, &'static str, String),
    /// The Event: its type, reason and note.
    pub event: (EventType, &'static str, String),
    /// The kind's own fields, its phase included, at the time of the report.
    pub fields: Fields<S>,
}

impl<S> Report<S> {
    /// A failed run: `message` in `status.message`, Progressing=False with reason
    /// `progressing`, Ready=False with reason `ready`, a Warning Event `Failed`, and the
    /// kind's `fields` (its Failed phase).
    pub fn failed(
        message: String,
        progressing: &'static str,
        ready: &'static str,
        fields: Fields<S>,
    ) -> Self {
        Report {
            message: Some(message.clone()),
            progressing: (progressing, message.clone()),
            ready: (ConditionStatus::False, ready, message.clone()),
            event: (EventType::Warning, "Failed", message),
            fields,
        }
    }
}

/// A kind's own status fields of a [`Report`], given the time of the report.
pub type Fields<S> = Box<dyn Fn(&mut S, Timestamp) + Send + Sync>;

/// The one end of every kind's run task: counts the run in the metrics
/// ([`super::record_run`]: completed, failed with its category, cancelled), then, unless it
/// was cancelled (its checkpoint or journal stays for the next owner), writes its final
/// status (`report` of the outcome: phase and fields, `message`, `completionTime`, conditions
/// Progressing=False and Ready, observedGeneration in them) with [`Write::Must`] and publishes
/// its Event. A write that fails after its retries has been logged and counted by
/// [`write_status`]; the Event still tells what happened.
// Every input is part of the one report; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn finish_run<K, T>(
    ctx: &Context,
    obj: &K,
    api: &Api<K>,
    name: &str,
    kind: &str,
    result: Result<Option<T>, String>,
    progress: &Progress,
    report: impl FnOnce(Result<T, String>) -> Report<K::Status>,
) where
    K: StatusResource,
    K::Status: OneShotStatus,
{
    let ns = obj.namespace().unwrap_or_default();
    super::record_run(ctx, kind, &ns, &result, progress);
    let generation = obj.meta().generation;
    let now = Timestamp::now();
    let outcome = match result {
        Ok(None) => return,
        Ok(Some(v)) => Ok(v),
        Err(message) => Err(message),
    };
    let r = report(outcome);
    let written = write_status(ctx, api, name, Write::Must, |s: &mut K::Status| {
        (r.fields)(s, now);
        let h = s.header_mut();
        if let Some(m) = &r.message {
            h.message = Some(m.clone());
        }
        h.completion_time = Some(Time(now));
        let (reason, message) = &r.progressing;
        set_condition(
            h,
            "Progressing",
            ConditionStatus::False,
            reason,
            message,
            generation,
            now,
        );
        let (ready, reason, message) = &r.ready;
        set_condition(h, "Ready", *ready, reason, message, generation, now);
    })
    .await;
    if written.is_err() {
        tracing::error!(
            resource = name,
            "the run's final status could not be written (logged and counted above)"
        );
    }
    let (type_, reason, note) = r.event;
    ctx.event(obj, type_, reason, &note).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(generation: i64) -> StatusHeader {
        StatusHeader {
            observed_generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn a_schedule_runs_each_tick_once_resumes_after_a_restart_and_honours_suspend() {
        use crate::operator::schedule::ScheduleState;
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let due = |d: Option<i64>| ScheduleState {
            due: d.map(t),
            missed: 0,
            next: Some(t(1_000_010)),
        };
        let idle = PoolState::Idle;
        let h = header(1);
        let d = |phase, last: Option<i64>, pool: &PoolState, suspend, state: &ScheduleState| {
            decide_scheduled(
                Some(&h),
                phase,
                last.map(t),
                pool,
                Ok(()),
                suspend,
                state,
                Some(1),
            )
        };
        assert_eq!(
            d(None, None, &idle, false, &due(Some(1_000_000))),
            ScheduledAction::Start {
                tick: t(1_000_000),
                next: Some(t(1_000_010)),
                resumed: false
            }
        );
        assert_eq!(
            d(
                Some(Phase::Completed),
                Some(1_000_000),
                &idle,
                false,
                &due(None)
            ),
            ScheduledAction::Sleep {
                next: Some(t(1_000_010))
            },
            "nothing due after the tick ran"
        );
        assert_eq!(
            d(
                Some(Phase::Completed),
                Some(1_000_000),
                &PoolState::Finished(tick_key(t(1_000_000))),
                false,
                &due(Some(1_000_000))
            ),
            ScheduledAction::Sleep {
                next: Some(t(1_000_010))
            },
            "a stale cache that sees the tick due again: not run twice"
        );
        assert_eq!(
            d(
                Some(Phase::Running),
                Some(1_000_000),
                &idle,
                false,
                &due(None)
            ),
            ScheduledAction::Start {
                tick: t(1_000_000),
                next: Some(t(1_000_010)),
                resumed: true
            },
            "left Running by a restart: the same tick again"
        );
        assert_eq!(
            d(
                Some(Phase::Running),
                Some(1_000_000),
                &PoolState::Running(tick_key(t(1_000_000))),
                false,
                &due(Some(1_000_010))
            ),
            ScheduledAction::Wait,
            "a tick during a run is not queued (Forbid)"
        );
        assert_eq!(
            d(
                Some(Phase::Completed),
                Some(1_000_000),
                &idle,
                true,
                &due(Some(1_000_010))
            ),
            ScheduledAction::Sleep { next: None },
            "suspended"
        );
    }

    #[test]
    fn one_run_per_generation_and_a_left_running_run_resumes() {
        let idle = PoolState::Idle;
        assert_eq!(
            decide_oneshot(Some(1), None, None, &idle, Ok(())),
            OneShotAction::Start { resumed: false }
        );
        let h = header(1);
        assert_eq!(
            decide_oneshot(Some(1), Some(&h), Some(Phase::Completed), &idle, Ok(())),
            OneShotAction::Done
        );
        assert_eq!(
            decide_oneshot(Some(2), Some(&h), Some(Phase::Completed), &idle, Ok(())),
            OneShotAction::Start { resumed: false },
            "a new generation runs again"
        );
        assert_eq!(
            decide_oneshot(Some(1), Some(&h), Some(Phase::Running), &idle, Ok(())),
            OneShotAction::Start { resumed: true },
            "left Running by a restart"
        );
        assert_eq!(
            decide_oneshot(
                Some(1),
                Some(&h),
                Some(Phase::Running),
                &PoolState::Running("generation-1".into()),
                Ok(())
            ),
            OneShotAction::Wait
        );
        assert_eq!(
            decide_oneshot(
                Some(1),
                Some(&h),
                Some(Phase::Running),
                &PoolState::Finished("generation-1".into()),
                Ok(())
            ),
            OneShotAction::Done,
            "finished here: never started twice"
        );
        assert_eq!(
            decide_oneshot(Some(1), None, None, &idle, Err("spec.x: bad".into())),
            OneShotAction::Invalid("spec.x: bad".into())
        );
        assert_eq!(
            decide_oneshot(
                Some(1),
                Some(&h),
                Some(Phase::Failed),
                &idle,
                Err("spec.x: bad".into())
            ),
            OneShotAction::Done,
            "an invalid spec is reported once"
        );
    }
}
