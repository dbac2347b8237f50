//! The one controller of every kind: the kind's hooks ([`OneShot`]) decide, this module
//! carries the decision out and writes the start and the end of every run.
//!
//! KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback and KafkaBackupValidation
//! share one reconcile ([`reconcile`]): the kind decides ([`OneShot::decide`]: by default once
//! per generation, or on its [`OneShot::schedule`]; KafkaBackup and KafkaRestore with their
//! own pure decisions) and the result is one of: an invalid spec ([`report_invalid`]); the
//! start of a run ([`Start`]: phase Running, observedGeneration, Progressing=True with the
//! kind's start reason, startTime, then one pool task and its Started, Scheduled or Retried
//! Event); nothing to start ([`Idle`]: the kind's own write such as the next or a skipped
//! tick, live progress, an Event, when to look again). The run task is the same for every
//! kind: attempts of [`OneShot::run`] (retried; a run waiting for its input writes
//! [`OneShot::waiting`]), then [`finish_run`]: the run metric, the final status and its Event,
//! from the kind's [`Report`].
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
use super::status::{Live, StatusResource, Write, set_condition, write_status};
use super::{Context, OperatorError, obj_key};
use crate::api::{ConditionStatus, StatusHeader};
use crate::exec::{Cancel, Progress};

/// The phases every kind shares (each kind maps its own phase enum onto them).
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

/// A kind's status: the shared header and its phase enum.
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

/// What a finished run of KafkaOffsetReset, KafkaOffsetRollback or KafkaBackupValidation
/// reports: its phase, a one-line message, and the kind's own status fields (group results,
/// snapshot, verification). Its [`Report`] (`From`) has the shared reasons: Completed,
/// PartiallyCompleted or Failed.
pub struct Finished<S> {
    pub phase: Phase,
    pub message: String,
    pub fields: Box<dyn Fn(&mut S) + Send + Sync>,
}

impl<S: OneShotStatus> From<Finished<S>> for Report<S> {
    fn from(f: Finished<S>) -> Report<S> {
        let (phase, message, fields) = (f.phase, f.message, f.fields);
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
            fields: Box::new(move |s: &mut S, _| {
                fields(s);
                s.set_phase(phase);
            }),
        }
    }
}

/// A change of a kind's status fields (applied inside one status write).
pub type StatusEdit<S> = Box<dyn Fn(&mut S) + Send + Sync>;

/// What a run gets from the controller.
pub struct Run<S> {
    /// The status when the run started (a resumed run reuses what it recorded, e.g. its
    /// snapshot or its checkpointed run id).
    pub status: S,
    /// The schedule tick the run belongs to ([`Start::tick`]), if any.
    pub tick: Option<Timestamp>,
    pub cancel: Cancel,
    /// The run's live counters (status shows them while it runs, [`OneShot::live`]).
    pub progress: Arc<Progress>,
}

/// The future of one attempt of a run: its report, `Ok(None)` when cancelled.
pub type RunFuture<S> = Pin<Box<dyn Future<Output = Result<Option<Report<S>>, RunFailure>> + Send>>;

/// The hooks of a kind: what differs between kinds; everything else is this module's.
pub trait OneShot: StatusResource + Send + Sync + 'static
where
    Self::Status: OneShotStatus,
{
    /// The kind, for logs, spans and metrics.
    const KIND: &'static str;
    /// The reason of the condition Progressing=True a started run sets.
    const STARTED: &'static str = "Started";
    /// Whether a resumed run keeps its first `startTime` (else the clock starts again).
    const RESUME_KEEPS_START_TIME: bool = true;
    /// Full validation; the message names the fields and the fixes.
    fn validate(&self) -> Result<(), String>;
    /// A schedule that re-runs the kind; None (the default): once per generation.
    fn schedule(&self) -> Option<Schedule> {
        None
    }
    /// What this reconcile does, from the resource, the pool's state of it and the time.
    /// Default: one run per generation ([`decide_oneshot`]), or one per tick of
    /// [`Self::schedule`] ([`decide_scheduled`]).
    fn decide(&self, pool: &PoolState, now: Timestamp) -> Step<Self::Status>
    where
        Self: Sized,
    {
        match self.schedule() {
            Some(sched) => scheduled_step(self, pool, now, &sched),
            None => oneshot_step(self, pool),
        }
    }
    /// One attempt of the run (retried by [`super::run_attempts`] when transient), and the
    /// report of its success. `Ok(None)`: cancelled.
    fn run(ctx: Arc<Context>, obj: Arc<Self>, run: Run<Self::Status>) -> RunFuture<Self::Status>;
    /// The report of a failed run (`message`: why, with its category). Default: phase
    /// Failed, Progressing=False and Ready=False with reason Failed, a Warning Event Failed.
    fn failed(message: String) -> Report<Self::Status> {
        Report::failed(
            message,
            "Failed",
            "Failed",
            Box::new(|s: &mut Self::Status, _| s.set_phase(Phase::Failed)),
        )
    }
    /// The status of a run waiting for its input (`reason`: for what), written before its
    /// Normal Waiting Event; None (the default): no status write.
    fn waiting(_reason: &str, _generation: Option<i64>) -> Option<StatusEdit<Self::Status>> {
        None
    }
    /// Shows `live` progress in `s` (written while a run goes, when [`Idle::live`]); the
    /// default shows none.
    fn live(_s: &mut Self::Status, _live: Live) {}
    /// Whether the default [`OneShot::decide`] writes live progress ([`OneShot::live`]) while
    /// a run goes (its `Idle::live`); kinds with their own `decide` set theirs there.
    const LIVE: bool = false;
}

/// What a reconcile does, as the kind decides it ([`OneShot::decide`]).
pub enum Step<S> {
    /// The spec is invalid: Failed with the message ([`report_invalid`]), nothing runs.
    Invalid(String),
    /// Start a run.
    Start(Start<S>),
    /// Nothing to start.
    Idle(Idle<S>),
}

/// The start of a run: status Running (with `fields`) before the pool task starts (a restart
/// or a second look then finds the run taken), then its Event.
pub struct Start<S> {
    /// The pool key: stable for the generation, tick or trigger, so a repeated decision is
    /// recognised by the pool and never starts a second run.
    pub run: String,
    /// The run was left Running by an operator restart or a leadership change and starts
    /// again (Event `Retried`).
    pub resumed: bool,
    /// The schedule tick the run belongs to ([`Run::tick`]).
    pub tick: Option<Timestamp>,
    /// The message of the condition Progressing=True.
    pub message: String,
    /// The Event reason of a new run (Started, Scheduled); a resumed run's is Retried.
    pub reason: &'static str,
    /// The Event's note.
    pub note: String,
    /// The kind's own fields recorded at the start (the tick, the run-now trigger).
    pub fields: Option<StatusEdit<S>>,
}

/// Nothing to start: an optional status write and Event, live progress, when to look again.
pub struct Idle<S> {
    /// The kind's status write (the next tick, a skipped tick, the first "accepted" status).
    pub write: Option<IdleWrite<S>>,
    /// A Normal Event: its reason and note (after the write).
    pub event: Option<(&'static str, String)>,
    /// A run may be going: its progress gauge, and its live progress in status at most once
    /// per [`super::pool::PROGRESS_EVERY`] ([`OneShot::live`], in the same write).
    pub live: bool,
    /// Look again after this long (None: on change only).
    pub requeue: Option<Duration>,
}

/// The kind's status write of an [`Idle`] step.
pub struct IdleWrite<S> {
    pub how: Write,
    /// Written even when no live progress is due; else it rides along with live progress.
    pub always: bool,
    pub fields: StatusEdit<S>,
}

impl<S> Idle<S> {
    /// Nothing to write: look again after `requeue` (None: on change only).
    pub fn after(requeue: Option<Duration>) -> Idle<S> {
        Idle {
            write: None,
            event: None,
            live: false,
            requeue,
        }
    }
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

/// The default decision of a kind without a schedule: [`decide_oneshot`] as a [`Step`].
fn oneshot_step<K>(obj: &K, pool: &PoolState) -> Step<K::Status>
where
    K: OneShot,
    K::Status: OneShotStatus,
{
    let generation = obj.meta().generation;
    let status = obj.status();
    let action = decide_oneshot(
        generation,
        status.map(|s| s.header()),
        status.and_then(|s| s.phase()),
        pool,
        obj.validate(),
    );
    match action {
        OneShotAction::Done => Step::Idle(Idle::after(None)),
        OneShotAction::Wait => Step::Idle(Idle {
            live: K::LIVE,
            ..Idle::after(Some(Duration::from_secs(5)))
        }),
        OneShotAction::Invalid(message) => Step::Invalid(message),
        OneShotAction::Start { resumed } => {
            let note = if resumed {
                "interrupted by an operator restart or a leadership change; started again"
            } else {
                "started"
            };
            let run = run_key(generation);
            Step::Start(Start {
                message: run.clone(),
                run,
                resumed,
                tick: None,
                reason: "Started",
                note: note.to_string(),
                fields: None,
            })
        }
    }
}

/// `sched` evaluated at `now` from `anchor` (nothing due when the spec or the schedule is
/// invalid: the decision reports it).
fn schedule_state(
    sched: &Schedule,
    valid: bool,
    anchor: Timestamp,
    now: Timestamp,
) -> super::schedule::ScheduleState {
    let nothing = super::schedule::ScheduleState {
        due: None,
        missed: 0,
        next: None,
    };
    let Ok(cron) = crate::api::validate::parse_schedule(&sched.cron) else {
        return nothing;
    };
    if !valid {
        return nothing;
    }
    let tz = sched
        .time_zone
        .as_deref()
        .map(crate::api::validate::parse_time_zone)
        .transpose()
        .ok()
        .flatten()
        .unwrap_or(jiff::tz::TimeZone::UTC);
    super::schedule::evaluate(&cron, &tz, anchor, now).unwrap_or(nothing)
}

/// The default decision of a kind with a schedule: [`decide_scheduled`] as a [`Step`].
fn scheduled_step<K>(obj: &K, pool: &PoolState, now: Timestamp, sched: &Schedule) -> Step<K::Status>
where
    K: OneShot,
    K::Status: OneShotStatus,
{
    let generation = obj.meta().generation;
    let status = obj.status();
    let last = status.and_then(|s| s.last_tick());
    let created = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let valid = obj.validate();
    let state = schedule_state(sched, valid.is_ok(), last.unwrap_or(created), now);
    let action = decide_scheduled(
        status.map(|s| s.header()),
        status.and_then(|s| s.phase()),
        last,
        pool,
        valid,
        sched.suspend,
        &state,
        generation,
    );
    match action {
        ScheduledAction::Wait => Step::Idle(Idle {
            live: K::LIVE,
            ..Idle::after(Some(Duration::from_secs(5)))
        }),
        ScheduledAction::Invalid(message) => Step::Invalid(message),
        ScheduledAction::Sleep { next } => Step::Idle(sleep(status, last, next, generation, now)),
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
            let run = tick_key(tick);
            Step::Start(Start {
                message: run.clone(),
                run,
                resumed,
                tick: Some(tick),
                reason: "Started",
                note,
                fields: Some(Box::new(move |s: &mut K::Status| {
                    s.set_ticks(Some(tick), next)
                })),
            })
        }
    }
}

/// Nothing due on a schedule: record the ticks (`last`, `next`) when status does not show them
/// yet, and a resource's first "accepted, waiting" status (Ready=True, Scheduled or
/// Suspended); look again at `next` (None: on change only).
fn sleep<S: OneShotStatus>(
    status: Option<&S>,
    last: Option<Timestamp>,
    next: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
) -> Idle<S> {
    let recorded = status.map(|s| {
        let mut probe = s.clone();
        probe.set_ticks(last, next);
        serde_json::to_value(&probe).ok() == serde_json::to_value(s).ok()
    });
    let waiting_first = status.is_none_or(|s| s.phase().is_none());
    let write = (recorded != Some(true) || waiting_first).then(|| IdleWrite {
        how: Write::Must,
        always: true,
        fields: Box::new(move |s: &mut S| {
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
        }) as StatusEdit<S>,
    });
    Idle {
        write,
        event: None,
        live: false,
        requeue: next.map(|n| {
            Duration::from_millis((n.as_millisecond() - now.as_millisecond()).max(0) as u64)
                + Duration::from_millis(200)
        }),
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

/// The start transition of every kind, in status: phase Running, no message, no
/// completionTime, observedGeneration, startTime `now` (kept by a resumed run when
/// `keep_start_time`), condition Progressing=True with `reason` and `message`.
pub fn mark_running<S: OneShotStatus>(
    s: &mut S,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
    keep_start_time: bool,
) {
    s.set_phase(Phase::Running);
    let h = s.header_mut();
    h.observed_generation = generation;
    h.message = None;
    if !keep_start_time {
        h.start_time = Some(Time(now));
    }
    h.completion_time = None;
    set_condition(
        h,
        "Progressing",
        ConditionStatus::True,
        reason,
        message,
        generation,
        now,
    );
}

/// Carries out a [`Start`]: the start transition ([`mark_running`] and the kind's fields)
/// written before the run starts, then the pool task ([`run_task`]) and, if it started, its
/// Event: Retried when `resumed`, else the kind's reason.
async fn start_run<K>(
    obj: &Arc<K>,
    ctx: &Arc<Context>,
    api: &Api<K>,
    start: Start<K::Status>,
    now: Timestamp,
) -> Result<Action, OperatorError>
where
    K: OneShot + kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::Status: OneShotStatus + serde::de::DeserializeOwned,
{
    let name = obj.name_any();
    let generation = obj.meta().generation;
    let status = obj.status().cloned();
    let Start {
        run,
        resumed,
        tick,
        message,
        reason,
        note,
        fields,
    } = start;
    let keep_start_time = resumed && K::RESUME_KEEPS_START_TIME;
    write_status(ctx, api, &name, Write::Must, |s: &mut K::Status| {
        mark_running(s, K::STARTED, &message, generation, now, keep_start_time);
        if let Some(f) = &fields {
            f(s);
        }
    })
    .await?;
    let started = ctx.pool.start(obj_key(&**obj), run.clone(), {
        let (ctx, obj, api) = (ctx.clone(), obj.clone(), api.clone());
        move |cancel, progress| {
            let span = tracing::info_span!("run", kind = K::KIND, namespace = %obj.namespace().unwrap_or_default(), resource = %obj.name_any(), run = %run);
            let run = Run {
                status: status.unwrap_or_default(),
                tick,
                cancel,
                progress,
            };
            tracing::Instrument::instrument(run_task(ctx, obj, api, name, run), span)
        }
    });
    if started {
        let reason = if resumed { "Retried" } else { reason };
        // the log line of the Event (kubectl kafkabackup logs finds it by the reconcile span)
        tracing::info!(reason, "{note}");
        ctx.event(&**obj, EventType::Normal, reason, &note).await;
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Carries out an [`Idle`] step: the progress gauge and the live progress of a running run
/// (when `live`), the kind's write (in the same status write), its Event, the requeue.
async fn idle<K>(
    obj: &Arc<K>,
    ctx: &Context,
    api: &Api<K>,
    idle: Idle<K::Status>,
) -> Result<Action, OperatorError>
where
    K: OneShot,
    K::Status: OneShotStatus,
{
    let key = obj_key(&**obj);
    let mut due = None;
    if idle.live {
        if let Some(p) = ctx.pool.progress(&key) {
            ctx.metrics
                .running(K::KIND, &obj.namespace().unwrap_or_default(), &p);
        }
        // at most one write per PROGRESS_EVERY: each write is a watch event, and so another
        // reconcile
        due = ctx.pool.progress_due(&key, super::pool::PROGRESS_EVERY);
    }
    let kind_write = idle.write;
    if due.is_some() || kind_write.as_ref().is_some_and(|w| w.always) {
        let how = kind_write.as_ref().map_or(Write::BestEffort, |w| w.how);
        write_status(ctx, api, &obj.name_any(), how, |s: &mut K::Status| {
            if let Some(p) = &due {
                K::live(s, Live::of(p));
            }
            if let Some(w) = &kind_write {
                (w.fields)(s);
            }
        })
        .await?;
    }
    if let Some((reason, note)) = idle.event {
        ctx.event(&**obj, EventType::Normal, reason, &note).await;
    }
    Ok(idle
        .requeue
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// Reconciles one resource of any kind: the guard of every reconcile
/// ([`super::reconcile_guarded`]: leader, finalizer, counter), then the kind's decision
/// carried out.
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
    let now = Timestamp::now();
    match obj.decide(&ctx.pool.state(&obj_key(&*obj)), now) {
        Step::Invalid(message) => {
            report_invalid(&obj, &ctx, api, &message, obj.meta().generation, now).await
        }
        Step::Start(start) => start_run(&obj, &ctx, api, start, now).await,
        Step::Idle(i) => idle(&obj, &ctx, api, i).await,
    }
}

/// The pool task of every kind: attempts of [`OneShot::run`] ([`super::run_attempts`]:
/// retried when transient; a run waiting for its input writes [`OneShot::waiting`]), then
/// [`finish_run`] with the run's report, or [`OneShot::failed`].
async fn run_task<K>(ctx: Arc<Context>, obj: Arc<K>, api: Api<K>, name: String, run: Run<K::Status>)
where
    K: OneShot,
    K::Status: OneShotStatus,
{
    let Run {
        status,
        tick,
        cancel,
        progress,
    } = run;
    let generation = obj.meta().generation;
    let attempt = || {
        let run = Run {
            status: status.clone(),
            tick,
            cancel: cancel.clone(),
            progress: progress.clone(),
        };
        K::run(ctx.clone(), obj.clone(), run)
    };
    let on_wait = |reason: String| {
        let (ctx, api, name) = (ctx.clone(), api.clone(), name.clone());
        async move {
            let Some(f) = K::waiting(&reason, generation) else {
                return true;
            };
            // a failed write is logged and counted by write_status; the run waits on and the
            // next check writes it again. A replica that is not the leader writes nothing
            // (write_status skips it): not published either.
            let written =
                write_status(&ctx, &api, &name, Write::Must, |s: &mut K::Status| f(s)).await;
            written.is_ok() && *ctx.leader.borrow()
        }
    };
    let result = super::run_attempts(&ctx, &obj, &cancel, attempt, on_wait).await;
    finish_run(&ctx, &*obj, &api, &name, K::KIND, result, &progress, |r| {
        r.unwrap_or_else(K::failed)
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
    super::record_run(ctx, kind, &ns, name, &result, progress);
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
    // the log line of the Event (in the run's span: kind, namespace, resource, run)
    if type_ == EventType::Warning {
        tracing::warn!(reason, "{note}");
    } else {
        tracing::info!(reason, "{note}");
    }
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
