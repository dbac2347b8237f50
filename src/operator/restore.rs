//! KafkaRestore on the generic controller ([`super::oneshot`]): one run per generation
//! ([`super::decide::decide_restore`]), executed in the pool; a run whose KafkaBackup has no
//! complete run yet waits in Pending (WaitingForBackup); status carries live progress
//! (records, percent, throughput, ETA, current topic) and the offset map path.
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::decide::{PoolState, RestoreAction, await_backup, decide_restore};
use super::oneshot::{
    Idle, OneShot, Phase, Report, Run, RunFuture, Start, StatusEdit, Step, mark_running,
};
use super::retry::RunFailure;
use super::status::{Live, Write, set_condition, write_status};
use super::{Context, OperatorError, secrets};
use crate::api::{ConditionStatus, KafkaBackup, KafkaRestore, KafkaRestoreStatus, RestorePhase};
use crate::exec::{Cancel, ExecContext, Progress};
use crate::kinds::{Access, restore::prepare as prepare_restore};

/// Reconciles one KafkaRestore (the generic controller, [`super::oneshot::reconcile`]).
pub async fn reconcile(kr: Arc<KafkaRestore>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    super::oneshot::reconcile(kr, ctx).await
}

impl OneShot for KafkaRestore {
    const KIND: &'static str = "KafkaRestore";
    const STARTED: &'static str = "RestoreStarted";
    const RESUME_KEEPS_START_TIME: bool = false;

    fn validate(&self) -> Result<(), String> {
        crate::api::validate_restore(self)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// [`decide_restore`]: one run per generation; a restore left Running by a restart is
    /// started again and resumes from its journal (a Pending one starts anew).
    fn decide(&self, pool: &PoolState, _now: Timestamp) -> Step<KafkaRestoreStatus> {
        match decide_restore(self, pool) {
            RestoreAction::Finalize => Step::Idle(Idle::after(None)),
            RestoreAction::Invalid { field, message } => {
                tracing::warn!(%field, "invalid KafkaRestore");
                Step::Invalid(message)
            }
            RestoreAction::Start { key, resumed } => Step::Start(Start {
                message: key.clone(),
                run: key,
                resumed,
                tick: None,
                reason: "Started",
                note: if resumed {
                    "restore interrupted by an operator restart or a leadership change; started again, it resumes from its journal"
                } else {
                    "restore started"
                }
                .into(),
                fields: None,
            }),
            RestoreAction::Wait { requeue_after } => Step::Idle(Idle {
                live: true,
                ..Idle::after(requeue_after)
            }),
            RestoreAction::Waiting { requeue_after } => Step::Idle(Idle::after(Some(requeue_after))),
        }
    }

    /// [`attempt`], and the report of a completed restore: Ready=True/RestoreCompleted with
    /// the records and the backup run, a Completed Event, the figures.
    fn run(
        ctx: Arc<Context>,
        kr: Arc<Self>,
        run: Run<KafkaRestoreStatus>,
    ) -> RunFuture<KafkaRestoreStatus> {
        Box::pin(async move {
            let api: Api<KafkaRestore> =
                Api::namespaced(ctx.client.clone(), &kr.namespace().unwrap_or_default());
            let progress = run.progress.clone();
            let Some((run_id, records, bytes, message)) =
                attempt(&ctx, &kr, &api, run.cancel, run.progress).await?
            else {
                return Ok(None);
            };
            let shards = Live::of(&progress).shards;
            Ok(Some(Report {
                message: Some(message),
                progressing: ("RestoreCompleted", run_id.clone()),
                ready: (
                    ConditionStatus::True,
                    "RestoreCompleted",
                    format!("{records} records from run {run_id}"),
                ),
                event: (
                    EventType::Normal,
                    "Completed",
                    format!("{records} records restored from run {run_id}"),
                ),
                fields: Box::new(move |s: &mut KafkaRestoreStatus, _| {
                    s.phase = Some(RestorePhase::Completed);
                    s.backup_id = Some(run_id.clone());
                    s.records_restored = Some(records);
                    s.bytes_restored = Some(bytes);
                    s.progress_percent = Some(100.0);
                    s.eta_ms = Some(0);
                    s.current_topic = None;
                    s.shards = shards.clone();
                }),
            }))
        })
    }

    fn failed(message: String) -> Report<KafkaRestoreStatus> {
        Report::failed(
            message,
            "RestoreFailed",
            "RestoreFailed",
            Box::new(|s: &mut KafkaRestoreStatus, _| s.phase = Some(RestorePhase::Failed)),
        )
    }

    /// Pending, the reason in the message, Progressing=False and Ready=False with reason
    /// WaitingForBackup.
    fn waiting(reason: &str, generation: Option<i64>) -> Option<StatusEdit<KafkaRestoreStatus>> {
        let reason = reason.to_string();
        Some(Box::new(move |s: &mut KafkaRestoreStatus| {
            let now = Timestamp::now();
            s.phase = Some(RestorePhase::Pending);
            s.common.message = Some(reason.clone());
            for t in ["Progressing", "Ready"] {
                set_condition(
                    &mut s.common,
                    t,
                    ConditionStatus::False,
                    "WaitingForBackup",
                    &reason,
                    generation,
                    now,
                );
            }
        }))
    }

    /// Records, bytes, throughput, percent, ETA and the current step, while Running (the
    /// run's final status, once there, is left as it is).
    fn live(s: &mut KafkaRestoreStatus, live: Live) {
        if s.phase != Some(RestorePhase::Running) {
            return;
        }
        s.records_restored = Some(live.records);
        s.bytes_restored = Some(live.bytes);
        s.records_planned = live.records_planned;
        s.bytes_planned = live.bytes_planned;
        s.throughput_records_per_sec = Some(live.records_per_sec);
        s.throughput_bytes_per_sec = Some(live.bytes_per_sec);
        s.progress_percent = live.percent;
        s.eta_ms = live.eta_ms;
        s.current_topic = live.current;
        s.shards = live.shards;
    }
}

/// A missing KafkaBackup: wait for it (the reason), or fail (the message).
fn wait_or_fail(r: Result<String, String>) -> RunFailure {
    r.map_or_else(RunFailure::permanent, RunFailure::waiting)
}

/// A completed restore: the backup run id, records and bytes restored, the status message.
type Restored = (String, u64, u64, String);

/// The KafkaBackup `kr` refers to (None with an inline `backupRef.storage`) and the Secrets
/// both need: the restore's from its namespace, the backup's storage Secrets from the
/// KafkaBackup's. A KafkaBackup that does not exist yet is waited for.
async fn load_inputs(
    ctx: &Context,
    kr: &KafkaRestore,
) -> Result<(Option<KafkaBackup>, crate::api::Secrets), RunFailure> {
    let ns = kr.namespace().unwrap_or_default();
    let bref = &kr.spec.backup_ref;
    let backup_ns = bref.namespace.clone().unwrap_or_else(|| ns.clone());
    if backup_ns != ns && !ctx.allow_cross_namespace {
        return Err(RunFailure::permanent(format!(
            "spec.backupRef.namespace: {backup_ns} is another namespace; the operator reads only the resource's own namespace unless started with --allow-cross-namespace-refs"
        )));
    }
    let kb: Option<KafkaBackup> = if bref.storage.is_some() {
        None
    } else {
        match Api::<KafkaBackup>::namespaced(ctx.client.clone(), &backup_ns)
            .get_opt(&bref.name)
            .await?
        {
            Some(kb) => Some(kb),
            None => return Err(wait_or_fail(await_backup(None, &bref.name, &backup_ns))),
        }
    };
    let mut names = secrets::referenced(&kr.spec.kafka_cluster, bref.storage.as_ref());
    names.extend(secrets::referenced(
        &kr.spec.kafka_cluster,
        kr.spec.state_storage.as_ref(),
    ));
    names.sort();
    names.dedup();
    let mut store = secrets::load(&ctx.client, &ns, &names).await?;
    if let Some(kb) = &kb {
        // the backup's storage Secrets live with the KafkaBackup
        names = secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
        secrets::load_into(&ctx.client, &backup_ns, &names, &mut store).await?;
    }
    Ok((kb, store))
}

/// One attempt of restore `kr`: load its inputs, `kinds::restore::prepare` (a KafkaBackup
/// without a complete run yet is waited for while one can come), record the run it restores
/// in status, `kinds::restore::run`, and turn the outcome into what status reports.
/// `Ok(None)`: cancelled.
async fn attempt(
    ctx: &Context,
    kr: &KafkaRestore,
    api: &Api<KafkaRestore>,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<Option<Restored>, RunFailure> {
    let (kb, store) = load_inputs(ctx, kr).await?;
    let bref = &kr.spec.backup_ref;
    let access = if kr.spec.dry_run {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let prep = match prepare_restore(kr, kb.as_ref(), &store, &ctx.pvc_root, access).await {
        Ok(p) => p,
        // the KafkaBackup has not finished a run yet: wait for it while one can come
        Err(e) if e.no_complete_run() && kb.is_some() && bref.backup_id.is_none() => {
            let backup_ns = kb.as_ref().and_then(|b| b.namespace()).unwrap_or_default();
            return Err(match await_backup(kb.as_ref(), &bref.name, &backup_ns) {
                Ok(reason) => RunFailure::waiting(reason),
                Err(message) => RunFailure::permanent(format!("{message}: {e}")),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let (hash, run_id) = (prep.plan.hash.clone(), prep.plan.backup_run_id.clone());
    if prep.plan.dry_run {
        // nothing runs: reported before anything is recorded of a run
        return Ok(Some(dry_run(&prep.plan)));
    }
    let generation = kr.metadata.generation;
    let name = kr.name_any();
    // a failed write is logged and counted by write_status; the run goes on
    let _ = write_status(
        ctx,
        api,
        &name,
        Write::Must,
        |s: &mut KafkaRestoreStatus| {
            if s.phase == Some(RestorePhase::Pending) {
                // it waited for its backup: running now
                mark_running(
                    s,
                    KafkaRestore::STARTED,
                    &run_id,
                    generation,
                    Timestamp::now(),
                    true,
                );
                s.common.conditions.retain(|c| c.type_ != "Ready");
            }
            s.backup_id = Some(run_id.clone());
            s.common.plan_hash = Some(hash.clone());
            s.offset_mapping_path = Some(prep.plan.offset_map_path.clone());
            s.shards.clear(); // an earlier run's
        },
    )
    .await;
    let exec = ExecContext::new(
        progress,
        cancel,
        prep.plan.bytes_per_sec,
        prep.plan.records_per_sec,
    );
    let sharded = match (&prep.plan.execution, &ctx.jobs) {
        (Some(e), Some(defaults)) => {
            let launcher = shard_jobs(ctx, kr, kb.as_ref(), defaults, &exec)?;
            let shards = e.shards.len() as u32;
            super::jobs::check_claims(&ctx.client, &launcher.resource, shards)
                .await
                .map_err(|e| RunFailure::from(crate::exec::ExecError::Input(e)))?;
            Some(launcher)
        }
        _ => None,
    };
    let out = match &sharded {
        Some(launcher) => crate::kinds::restore::run_sharded(&prep, &exec, launcher).await,
        None => crate::kinds::restore::run(&prep, &exec).await,
    };
    let out = match out {
        Err(e) if e.is_cancelled() => return Ok(None),
        Err(e) => return Err(e.into()),
        Ok(out) => out,
    };
    restored(ctx, api, kr, &prep.plan, out).await.map(Some)
}

/// The launcher of the shard Jobs of `kr`'s sharded restore: the KafkaRestore with its
/// KafkaBackup (`kb`) as the Jobs' run file, the Secrets both name, the claims of the backup's
/// storage and of `stateStorage`.
///
/// Errors: a KafkaBackup in another namespace that names Secrets (a Pod mounts Secrets of its
/// own namespace only).
fn shard_jobs(
    ctx: &Context,
    kr: &KafkaRestore,
    kb: Option<&KafkaBackup>,
    defaults: &Arc<super::jobs::JobDefaults>,
    exec: &ExecContext,
) -> Result<super::jobs::JobLauncher, RunFailure> {
    let ns = kr.namespace().unwrap_or_default();
    let (spec, bref) = (&kr.spec, &kr.spec.backup_ref);
    let mut names = secrets::referenced(&spec.kafka_cluster, bref.storage.as_ref());
    names.extend(secrets::referenced(
        &spec.kafka_cluster,
        spec.state_storage.as_ref(),
    ));
    let mut refs = vec![];
    let storage = match kb {
        Some(kb) => Some(backup_for_shards(kb, &ns, &mut names, &mut refs)?),
        None => bref.storage.as_ref(),
    };
    names.sort();
    names.dedup();
    let storages = [storage, spec.state_storage.as_ref()];
    let resource = super::jobs::RunResource::of(kr, &refs, names, &storages, &spec.execution)
        .map_err(|e| RunFailure::from(crate::exec::ExecError::Failed(e)))?;
    Ok(super::jobs::JobLauncher::new(ctx, defaults, resource, exec))
}

/// Adds KafkaBackup `kb`, which a restore (or a validation's restore check) in namespace `ns`
/// reads, to the run file of its shard Jobs: its document to `refs`, the Secrets it names to
/// `names`; returns its storage (whose claim the Jobs mount).
///
/// Errors: `kb` is in another namespace and names Secrets (a Pod mounts Secrets of its own
/// namespace only): the message names the Secrets and the fix.
pub(super) fn backup_for_shards<'a>(
    kb: &'a KafkaBackup,
    ns: &str,
    names: &mut Vec<String>,
    refs: &mut Vec<String>,
) -> Result<&'a crate::api::StorageSpec, RunFailure> {
    let theirs = secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
    let kb_ns = kb.namespace().unwrap_or_default();
    if kb_ns != ns && !theirs.is_empty() {
        return Err(RunFailure::permanent(format!(
            "spec.execution.mode: job: KafkaBackup {kb_ns}/{} names Secrets ({}) in its own namespace, and a shard Pod in namespace {ns} can mount only Secrets of {ns}; copy them into {ns}, or use mode: in-process",
            kb.name_any(),
            theirs.join(", ")
        )));
    }
    names.extend(theirs);
    let doc = super::jobs::RunResource::document(kb)
        .map_err(|e| RunFailure::from(crate::exec::ExecError::Failed(e)))?;
    refs.push(doc);
    Ok(&kb.spec.storage)
}

/// What a dry run reports: the plan, nothing restored.
fn dry_run(plan: &crate::plan::RestorePlan) -> Restored {
    let table = crate::report::restore_table(plan);
    (
        plan.backup_run_id.clone(),
        0,
        0,
        format!("dryRun: nothing executed. Plan {}:\n{table}", plan.hash),
    )
}

/// What status reports of a restore's outcome: the rollback snapshot (written at once), the
/// figures and the message (offset map, consumer-group table). Groups not carried over fail
/// the attempt as transient (members leave; the retry runs only the group step), with the
/// kind's one message ([`crate::kinds::restore::Outcome::groups_not_carried`]) and the table.
async fn restored(
    ctx: &Context,
    api: &Api<KafkaRestore>,
    kr: &KafkaRestore,
    plan: &crate::plan::RestorePlan,
    out: crate::kinds::restore::Outcome,
) -> Result<Restored, RunFailure> {
    use crate::kinds::restore::Outcome;
    let run_id = plan.backup_run_id.clone();
    let ran = match &out {
        Outcome::DryRun => return Ok(dry_run(plan)),
        Outcome::AlreadyComplete(j) => {
            let message = format!("offset map: {}", plan.offset_map_path);
            return Ok((run_id, j.records, j.bytes, message));
        }
        Outcome::Ran(ran) => ran,
    };
    if let Some(r) = &ran.rollback {
        let to_time = |ms: i64| Timestamp::from_millisecond(ms).ok().map(Time);
        let status = crate::api::RollbackStatus {
            snapshot_id: Some(r.snapshot_id.clone()),
            snapshot_time: to_time(r.snapshot_time),
            rollback_available: Some(true),
            expires_at: to_time(r.expires_at),
        };
        // a failed write is logged and counted by write_status; the run goes on
        let _ = write_status(
            ctx,
            api,
            &kr.name_any(),
            Write::Must,
            |s: &mut KafkaRestoreStatus| s.rollback = Some(status.clone()),
        )
        .await;
    }
    let groups = if ran.groups.is_empty() {
        String::new()
    } else {
        format!("\n{}", crate::report::groups_table(&ran.groups))
    };
    if let Some(m) = out.groups_not_carried(&plan.restore_name) {
        return Err(RunFailure {
            kind: super::retry::FailureKind::Transient,
            message: format!("[groups-not-carried] {m}{groups}"),
        });
    }
    Ok((
        run_id,
        ran.records,
        ran.bytes,
        format!("offset map: {}{groups}", ran.offset_map_path),
    ))
}

impl super::oneshot::OneShotStatus for KafkaRestoreStatus {
    fn header(&self) -> &crate::api::StatusHeader {
        &self.common
    }
    fn header_mut(&mut self) -> &mut crate::api::StatusHeader {
        &mut self.common
    }
    /// Pending (waiting for its backup) is a run in flight; RolledBack a failed one.
    fn phase(&self) -> Option<Phase> {
        self.phase.map(|p| match p {
            RestorePhase::Pending | RestorePhase::Running => Phase::Running,
            RestorePhase::Completed => Phase::Completed,
            RestorePhase::Failed | RestorePhase::RolledBack => Phase::Failed,
        })
    }
    fn set_phase(&mut self, p: Phase) {
        self.phase = Some(match p {
            Phase::Running => RestorePhase::Running,
            Phase::Completed | Phase::PartiallyCompleted => RestorePhase::Completed,
            Phase::Failed => RestorePhase::Failed,
        });
    }
}
