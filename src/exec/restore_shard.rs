//! Sharded restores (`execution.mode: job`, docs/execution.md "Restores"): one KafkaRestore
//! spread over several processes (Kubernetes Jobs, or child processes of the CLI).
//!
//! The coordinator ([`coordinate_restore`]) holds the restore's lock (in its state storage)
//! and the target fence for the whole run. It verifies the whole integrity chain, writes the
//! journal and prepares the targets once (create, purge, base offsets: exactly as an
//! in-process restore does, before any shard starts), stages the run ([`StagedRestore`],
//! `<backup>/restores/<restore>/plan.json`, next to the journal: the plan, which steps each
//! shard takes, the base offsets), launches the shards through a function its caller gives
//! (what a launch is, a process or a Job, is the caller's), and, once every shard has written
//! its result, writes the offset map, marks the journal complete and runs the consumer-group
//! step, once.
//!
//! A shard ([`run_restore_shard`]) restores its partition steps and its repartitioned topics
//! (each one unit: it reads every partition of its source topic) with the in-process
//! executor's code: the journal's base offsets and the targets' ends say how many records an
//! earlier attempt wrote, so a shard killed and started again skips exactly those and writes
//! no record twice. It writes its result (`shards/<i>/result.json`: its offset-map entries and
//! counts) last, and writes only while the coordinator holds the restore's lock for this
//! restore ([`super::lock::LockWatch`]). A shard whose result exists is not run again; a failed
//! run keeps every finished shard's result for the next attempt, which resumes the journal and
//! runs only the shards without a result.
//!
//! Reads the repository, writes the state storage and the target cluster; imports plan,
//! format, kafka and storage.
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::Ordering;

use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::ExecError;
use super::engine::{ExecContext, ShardLive};
use super::lock::{Lock, LockWatch, SHARD_LOCK_PATIENCE};
use super::restore::{
    BaseOffset, RestoreJournal, RestoreOutcome, RestoreStart, finish, lock_purpose, open_journal,
    plan_progress, prepare_once, restore_steps, resume_points, target_partitions, verify_chain,
    with_lock_and_fence,
};
use super::shard::{ShardFailure, short_list};
use crate::format::layout::{self, FORMAT};
use crate::format::manifest::{OffsetMap, PartitionOffsetMap, from_json, to_json};
use crate::kafka::KafkaClient;
use crate::kafka::ops::OffsetSpec;
use crate::plan::RestorePlan;
use crate::storage;

/// The steps one shard of a restore takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreShardSteps {
    /// Indexes into the plan's `partitions` (its partition steps), ascending.
    pub partitions: Vec<usize>,
    /// Indexes into the plan's `repartitioned` steps (whole topics), ascending.
    #[serde(default)]
    pub repartitioned: Vec<usize>,
}

/// A sharded restore as its coordinator staged it, at [`layout::restore_plan`] in the
/// restore's state storage: written after the targets were prepared, before any shard starts;
/// every shard reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedRestore {
    pub format: String,
    /// The journal's spec hash: a staging of another journal is not resumed.
    pub spec_hash: String,
    /// The plan the shards execute (the journal's data with this attempt's settings).
    pub plan: RestorePlan,
    /// Per shard, the steps it restores (every step in exactly one shard).
    pub shards: Vec<RestoreShardSteps>,
    /// The journal's base offsets: where each target partition stood before the restore.
    pub base_offsets: Vec<BaseOffset>,
}

impl StagedRestore {
    /// What the restore's lock is held for during the run: a shard writes only while the lock
    /// says it.
    pub fn lock_purpose(&self) -> String {
        lock_purpose(&self.plan)
    }

    /// Shard `shard`'s steps.
    ///
    /// Errors: [`ExecError::Input`] when the run has no such shard (the `--shard` argument).
    pub fn steps(&self, shard: u32) -> Result<&RestoreShardSteps, ExecError> {
        let n = self.shards.len();
        self.shards.get(shard as usize).ok_or_else(|| {
            ExecError::Input(format!(
                "shard {shard}: the staged restore {} of backup run {} has {n} shards (0..{n}); fix --shard",
                self.plan.restore_name, self.plan.backup_run_id
            ))
        })
    }

    /// The plan of shard `shard`: the staged plan with only the shard's steps (and their
    /// estimates); the topics to create and purge and the consumer-group step are the
    /// coordinator's, so the shard's plan has none. The hash stays the staged plan's.
    ///
    /// Errors: as [`StagedRestore::steps`].
    pub fn shard_plan(&self, shard: u32) -> Result<RestorePlan, ExecError> {
        let s = self.steps(shard)?;
        let mut p = self.plan.clone();
        p.partitions = s
            .partitions
            .iter()
            .map(|&i| self.plan.partitions[i].clone())
            .collect();
        p.repartitioned = s
            .repartitioned
            .iter()
            .map(|&i| self.plan.repartitioned[i].clone())
            .collect();
        p.estimated_records = p
            .partitions
            .iter()
            .map(|s| s.estimated_records)
            .sum::<u64>()
            + p.repartitioned
                .iter()
                .map(|r| r.estimated_records)
                .sum::<u64>();
        p.estimated_bytes = p.partitions.iter().map(|s| s.estimated_bytes).sum::<u64>()
            + p.repartitioned
                .iter()
                .map(|r| r.estimated_bytes)
                .sum::<u64>();
        p.create_topics = vec![];
        p.purge = vec![];
        p.groups = None;
        p.execution = None;
        Ok(p)
    }

    /// Shard `shard`'s steps as `topic/partition` (a repartitioned topic as `topic (all
    /// partitions)`), for messages.
    fn describe(&self, shard: u32) -> Vec<String> {
        let Ok(s) = self.steps(shard) else {
            return vec![];
        };
        let plain = s.partitions.iter().map(|&i| {
            let p = &self.plan.partitions[i];
            format!("{}/{}", p.source_topic, p.source_partition)
        });
        let rep = s.repartitioned.iter().map(|&i| {
            format!(
                "{} (all partitions)",
                self.plan.repartitioned[i].source_topic
            )
        });
        plain.chain(rep).collect()
    }
}

/// What a shard of a restore wrote, at [`layout::restore_shard_result`]: written last, so its
/// presence means the shard is complete; the coordinator builds the offset map from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreShardResult {
    pub format: String,
    pub restore_name: String,
    pub backup_run_id: String,
    /// The staged plan's hash: a result of another plan is refused.
    pub plan_hash: String,
    pub shard: u32,
    pub shards: u32,
    /// The steps it restored (must be the staged shard's).
    pub steps: RestoreShardSteps,
    /// The offset-map entries of its steps.
    pub partitions: Vec<PartitionOffsetMap>,
    /// Records and bytes its steps restored, earlier attempts' included.
    pub records: u64,
    pub bytes: u64,
    /// Epoch ms.
    pub completed_at: i64,
}

/// The staged restore `restore` (of backup `backup`) in the state storage `state`, for a
/// shard: `run`, when given, must be the backup run it restores (the `--plan` argument of a
/// KafkaRestore's shard; a validation's restore check names its attempt instead).
///
/// Errors: [`ExecError::Input`] naming `--plan` when nothing is staged or the staging restores
/// another run; storage failures; a document that fails its checks.
pub async fn load_staged(
    state: &Operator,
    backup: &str,
    restore: &str,
    run: Option<&str>,
) -> Result<StagedRestore, ExecError> {
    let path = layout::restore_plan(backup, restore);
    match (read_staged(state, backup, restore).await?, run) {
        (Some(s), None) => Ok(s),
        (Some(s), Some(run)) if s.plan.backup_run_id == run => Ok(s),
        (Some(s), Some(run)) => Err(ExecError::Input(format!(
            "restore {restore:?} staged a sharded run of backup run {} ({path}), not of {run:?}; fix --plan",
            s.plan.backup_run_id
        ))),
        (None, _) => Err(ExecError::Input(format!(
            "restore {restore:?} has no staged run{} ({path} not found): the coordinator did not stage it, or the restore is complete (see {}); fix --plan",
            run.map(|r| format!(" {r:?}")).unwrap_or_default(),
            layout::restore_journal(backup, restore)
        ))),
    }
}

async fn read_staged(
    state: &Operator,
    backup: &str,
    restore: &str,
) -> Result<Option<StagedRestore>, ExecError> {
    let path = layout::restore_plan(backup, restore);
    let Some(bytes) = storage::read_opt(state, &path).await? else {
        return Ok(None);
    };
    let s: StagedRestore = from_json(&bytes, &path)?;
    if s.plan.restore_name != restore || s.plan.backup_name != backup {
        return Err(ExecError::Integrity(format!(
            "{path} describes restore {} of backup {}: the object was copied or renamed",
            s.plan.restore_name, s.plan.backup_name
        )));
    }
    check_assignment(&s, &path)?;
    Ok(Some(s))
}

/// Every partition step and every repartitioned step in exactly one shard (no shard for a
/// plan without steps).
fn check_assignment(s: &StagedRestore, path: &str) -> Result<(), ExecError> {
    let (np, nr) = (s.plan.partitions.len(), s.plan.repartitioned.len());
    let (mut parts, mut reps) = (BTreeSet::new(), BTreeSet::new());
    let ok = (s.shards.is_empty() == (np + nr == 0))
        && s.shards.iter().all(|sh| {
            (sh.partitions.iter()).all(|&i| i < np && parts.insert(i))
                && (sh.repartitioned.iter()).all(|&i| i < nr && reps.insert(i))
        })
        && parts.len() == np
        && reps.len() == nr;
    if ok {
        Ok(())
    } else {
        Err(ExecError::Integrity(format!(
            "{path}: its shards do not cover the plan's {np} partition steps and {nr} repartitioned topics exactly once"
        )))
    }
}

/// Runs the restore `plan` as `shards.len()` shards and returns what it did. Holds the
/// restore's lock and the target fence throughout; verifies the integrity chain, opens (or
/// resumes) the journal and prepares the targets once; stages the run (an earlier staging of
/// the same journal keeps its shards); launches every shard without a result at once through
/// `launch(i, n)`, which resolves when shard i of n has ended (after its own retries); then
/// writes the offset map, completes the journal and runs the consumer-group step. A restore
/// whose journal is complete runs only its pending consumer-group step, in process.
///
/// Errors: [`ExecError::ShardsFailed`] naming each failed shard, its partitions and why
/// (finished shards' results are kept: running again runs only the others);
/// [`ExecError::Locked`]; [`ExecError::Cancelled`]; the errors of an in-process restore.
#[allow(clippy::too_many_arguments)]
pub async fn coordinate_restore<F, Fut>(
    plan: &RestorePlan,
    start: &RestoreStart,
    shards: Vec<RestoreShardSteps>,
    client: &KafkaClient,
    op: &Operator,
    state: &Operator,
    ctx: &ExecContext,
    launch: F,
) -> Result<RestoreOutcome, ExecError>
where
    F: Fn(u32, u32) -> Fut,
    Fut: Future<Output = Result<(), ShardFailure>>,
{
    if plan.dry_run || matches!(start, RestoreStart::Complete(_)) {
        return super::run_restore(plan, start, client, op, state, ctx).await;
    }
    let work = Box::pin(coordinate_locked(
        plan, start, shards, client, op, state, ctx, launch,
    ));
    with_lock_and_fence(plan, client, state, work).await
}

#[allow(clippy::too_many_arguments)]
async fn coordinate_locked<F, Fut>(
    plan: &RestorePlan,
    start: &RestoreStart,
    shards: Vec<RestoreShardSteps>,
    client: &KafkaClient,
    op: &Operator,
    state: &Operator,
    ctx: &ExecContext,
    launch: F,
) -> Result<RestoreOutcome, ExecError>
where
    F: Fn(u32, u32) -> Fut,
    Fut: Future<Output = Result<(), ShardFailure>>,
{
    let journal_path = layout::restore_journal(&plan.backup_name, &plan.restore_name);
    plan_progress(plan, ctx);
    // The whole chain before the target is touched (each shard checks its part again).
    verify_chain(plan, op, ctx).await?;
    if matches!(start, RestoreStart::Fresh { .. }) {
        // a new journal: no earlier staging or shard result belongs to it
        clear_staging(plan, state).await?;
    }
    let mut journal = open_journal(plan, start, state, ctx, &journal_path).await?;
    prepare_once(plan, start, client, state, ctx, &mut journal, &journal_path).await?;
    let staged = stage(plan, &journal, shards, state).await?;
    let n = staged.shards.len() as u32;
    let pending = missing_results(&staged, state).await?;
    tracing::info!(restore = %plan.restore_name, run = %plan.backup_run_id, shards = n,
        launching = ?pending, "sharded restore: launching the shards without a result");
    publish_shards(&staged, &pending, ctx);
    let ends = {
        let launched = futures::future::join_all(pending.iter().map(|&i| launch(i, n)));
        let watched = watch_shards(&staged, client, state, ctx);
        futures::pin_mut!(launched, watched);
        match futures::future::select(launched, watched).await {
            futures::future::Either::Left((ends, _)) => ends,
            futures::future::Either::Right(((), launched)) => launched.await,
        }
    };
    let _ = refresh_shards(&staged, client, state, ctx).await;
    let failed: Vec<(u32, ShardFailure)> = (pending.into_iter().zip(ends))
        .filter_map(|(i, r)| r.err().map(|f| (i, f)))
        .collect();
    if ctx.cancel.is_cancelled() && !missing_results(&staged, state).await?.is_empty() {
        return Err(ExecError::Cancelled);
    }
    if !failed.is_empty() {
        return Err(shards_failed(&staged, &failed));
    }
    let done = gather(&staged, state).await?;
    let p = &ctx.progress;
    p.records_done.fetch_max(done.1, Ordering::Relaxed);
    p.bytes_done.fetch_max(done.2, Ordering::Relaxed);
    let out = finish(plan, client, state, ctx, journal, done).await?;
    clear_staging(plan, state).await.unwrap_or_else(
        |e| tracing::warn!(error = %e, "the finished restore's staging documents were not deleted"),
    );
    Ok(out)
}

/// How often the coordinator reads the targets' ends for the run's live figures.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The target partitions of shard `shard` (its partition steps', its repartitioned topics').
fn shard_targets(staged: &StagedRestore, shard: usize) -> Vec<(String, i32)> {
    let (plan, s) = (&staged.plan, &staged.shards[shard]);
    let plain = (s.partitions.iter()).map(|&i| {
        let p = &plan.partitions[i];
        (p.target_topic.clone(), p.target_partition)
    });
    let rep = (s.repartitioned.iter()).flat_map(|&i| plan.repartitioned[i].targets());
    plain.chain(rep).collect()
}

/// Sets the run's live shard figures: every shard with its source partitions and estimates,
/// those without a result (`pending`) Pending, the others Succeeded.
fn publish_shards(staged: &StagedRestore, pending: &[u32], ctx: &ExecContext) {
    let shards: Vec<ShardLive> = (0..staged.shards.len() as u32)
        .map(|i| {
            let p = staged.shard_plan(i).expect("a staged shard");
            let sources = p.partitions.len()
                + (p.repartitioned.iter())
                    .map(|r| r.sources.len())
                    .sum::<usize>();
            ShardLive {
                index: i,
                partitions: sources as u32,
                phase: if pending.contains(&i) {
                    "Pending"
                } else {
                    "Succeeded"
                },
                records_planned: p.estimated_records,
                bytes_planned: p.estimated_bytes,
                ..Default::default()
            }
        })
        .collect();
    *ctx.progress.shards.lock().unwrap() = shards;
}

/// Reads the targets' ends every [`WATCH_EVERY`] into the run's live figures; never ends (the
/// caller drops it when the shards have ended). A read that fails is logged and tried again
/// next time: figures are a view, not the run.
async fn watch_shards(
    staged: &StagedRestore,
    client: &KafkaClient,
    state: &Operator,
    ctx: &ExecContext,
) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        if let Err(e) = refresh_shards(staged, client, state, ctx).await {
            tracing::debug!(error = %e, "sharded restore: shard progress not read this time");
        }
    }
}

/// One read of every target partition's end (one ListOffsets) and of every shard's result:
/// a shard's records are what its target partitions hold past their base offsets (earlier
/// attempts' included), its bytes estimated from them at its plan's bytes per record; a shard
/// with a result has Succeeded. The run's done figures are their sum.
async fn refresh_shards(
    staged: &StagedRestore,
    client: &KafkaClient,
    state: &Operator,
    ctx: &ExecContext,
) -> Result<(), ExecError> {
    let base: BTreeMap<(String, i32), i64> = (staged.base_offsets.iter())
        .map(|b| ((b.topic.clone(), b.partition), b.offset))
        .collect();
    let all: Vec<(String, i32)> = base.keys().cloned().collect();
    let ends = client.list_offsets(&all, OffsetSpec::Latest).await?;
    let plan = &staged.plan;
    let (mut all_records, mut all_bytes) = (0, 0);
    for i in 0..staged.shards.len() {
        let records: u64 = (shard_targets(staged, i).iter())
            .map(|t| {
                let (b, e) = (base.get(t).copied(), ends.get(t).copied());
                e.zip(b).map_or(0, |(e, b)| (e - b).max(0) as u64)
            })
            .sum();
        let path = layout::restore_shard_result(&plan.backup_name, &plan.restore_name, i as u32);
        let done = (state.exists(&path).await).map_err(|e| storage::backend("stat", &path, e))?;
        let (mut shown_records, mut bytes) = (records, 0);
        ctx.progress.update_shard(i as u32, |s| {
            s.records = s.records.max(records);
            if s.records_planned > 0 {
                let per = s.bytes_planned as f64 / s.records_planned as f64;
                s.bytes = s.bytes.max((s.records as f64 * per) as u64);
            }
            if done {
                s.phase = "Succeeded";
                s.records = s.records.max(s.records_planned);
                s.bytes = s.bytes.max(s.bytes_planned);
            }
            (shown_records, bytes) = (s.records, s.bytes);
        });
        all_records += shown_records;
        all_bytes += bytes;
    }
    let p = &ctx.progress;
    p.records_done.fetch_max(all_records, Ordering::Relaxed);
    p.bytes_done.fetch_max(all_bytes, Ordering::Relaxed);
    Ok(())
}

/// The error of a run whose shards failed: each shard, its steps and why.
fn shards_failed(staged: &StagedRestore, failed: &[(u32, ShardFailure)]) -> ExecError {
    let n = staged.shards.len();
    let what: Vec<String> = failed
        .iter()
        .map(|(i, f)| {
            let oom = if f.oom_killed {
                " (OOMKilled: raise spec.execution.resources.limits.memory)"
            } else {
                ""
            };
            format!(
                "shard {i} of {n} (partitions {}) failed{oom}: {}",
                short_list(&staged.describe(*i)),
                f.message
            )
        })
        .collect();
    ExecError::ShardsFailed {
        message: format!(
            "restore {}: {}; the other shards' work is kept: the next attempt resumes the journal and runs only the shards without a result",
            staged.plan.restore_name,
            what.join("; ")
        ),
        oom_killed: failed.iter().any(|(_, f)| f.oom_killed),
    }
}

/// Deletes the staged plan and every shard result of restore `plan` (best effort for the
/// results directory's own object on stores without directories).
async fn clear_staging(plan: &RestorePlan, state: &Operator) -> Result<(), ExecError> {
    let dir = layout::restore_shards_dir(&plan.backup_name, &plan.restore_name);
    (state.delete_with(&dir).recursive(true).await)
        .map_err(|e| storage::backend("delete", &dir, e))?;
    let path = layout::restore_plan(&plan.backup_name, &plan.restore_name);
    (state.delete(&path).await).map_err(|e| storage::backend("delete", &path, e))?;
    Ok(())
}

/// Stages the run after the targets were prepared: an earlier staging of the same journal
/// (same spec hash, plan hash and base offsets) keeps its shard assignment (its shards'
/// results stay valid) and takes this attempt's settings; any other is replaced, its shard
/// results deleted.
async fn stage(
    plan: &RestorePlan,
    journal: &RestoreJournal,
    shards: Vec<RestoreShardSteps>,
    state: &Operator,
) -> Result<StagedRestore, ExecError> {
    let path = layout::restore_plan(&plan.backup_name, &plan.restore_name);
    let earlier = read_staged(state, &plan.backup_name, &plan.restore_name).await?;
    let same = |s: &StagedRestore| {
        s.spec_hash == journal.spec_hash
            && s.plan.hash == plan.hash
            && s.plan.backup_run_id == plan.backup_run_id
            && s.base_offsets == journal.base_offsets
    };
    let shards = match &earlier {
        Some(s) if same(s) => {
            tracing::info!(restore = %plan.restore_name, "sharded restore: resuming the staged run");
            s.shards.clone()
        }
        Some(_) => {
            clear_staging(plan, state).await?;
            shards
        }
        None => shards,
    };
    let staged = StagedRestore {
        format: FORMAT.into(),
        spec_hash: journal.spec_hash.clone(),
        plan: plan.clone(),
        shards,
        base_offsets: journal.base_offsets.clone(),
    };
    check_assignment(&staged, &path)?;
    if earlier.as_ref() != Some(&staged) {
        storage::write_all(state, &path, to_json(&staged)).await?;
    }
    Ok(staged)
}

/// The shards of `staged` without a result document (a stat each: [`gather`] reads and checks
/// the documents).
async fn missing_results(staged: &StagedRestore, state: &Operator) -> Result<Vec<u32>, ExecError> {
    let p = &staged.plan;
    let mut out = vec![];
    for i in 0..staged.shards.len() as u32 {
        let path = layout::restore_shard_result(&p.backup_name, &p.restore_name, i);
        let exists = (state.exists(&path).await).map_err(|e| storage::backend("stat", &path, e))?;
        if !exists {
            out.push(i);
        }
    }
    Ok(out)
}

/// A shard result must be this restore's, this plan's and this shard's, with exactly its
/// steps.
fn check_result(
    staged: &StagedRestore,
    shard: u32,
    r: &RestoreShardResult,
    path: &str,
) -> Result<(), ExecError> {
    let plan = &staged.plan;
    let bad = |why: String| {
        Err(ExecError::Integrity(format!(
            "{path}: {why}; delete it to run the shard again"
        )))
    };
    if r.restore_name != plan.restore_name
        || r.backup_run_id != plan.backup_run_id
        || r.shard != shard
    {
        return bad(format!(
            "it is shard {} of restore {} of backup run {}",
            r.shard, r.restore_name, r.backup_run_id
        ));
    }
    if r.plan_hash != plan.hash || r.shards as usize != staged.shards.len() {
        return bad(format!(
            "it belongs to plan {} with {} shards, the run's is {} with {}",
            r.plan_hash,
            r.shards,
            plan.hash,
            staged.shards.len()
        ));
    }
    if &r.steps != staged.steps(shard)? {
        return bad("it lists other steps than the shard was given".into());
    }
    Ok(())
}

/// The position of offset-map entry `m` among the plan's steps (partition steps, then
/// repartitioned topics): the offset map lists entries in the order an in-process restore
/// writes them.
fn step_position(plan: &RestorePlan, m: &PartitionOffsetMap) -> Option<usize> {
    if m.repartition.is_some() {
        let i = (plan.repartitioned.iter()).position(|r| r.target_topic == m.target_topic)?;
        return Some(plan.partitions.len() + i);
    }
    plan.partitions.iter().position(|s| {
        s.source_topic == m.source_topic
            && s.source_partition == m.source_partition
            && s.target_topic == m.target_topic
            && s.target_partition == m.target_partition
    })
}

/// Every shard's result, checked against the staging: the offset map (in plan order) and the
/// records and bytes restored.
async fn gather(
    staged: &StagedRestore,
    state: &Operator,
) -> Result<(OffsetMap, u64, u64), ExecError> {
    let plan = &staged.plan;
    let (mut records, mut bytes) = (0, 0);
    let mut entries: Vec<(usize, PartitionOffsetMap)> = vec![];
    for i in 0..staged.shards.len() as u32 {
        let path = layout::restore_shard_result(&plan.backup_name, &plan.restore_name, i);
        let Some(b) = storage::read_opt(state, &path).await? else {
            return Err(ExecError::Integrity(format!(
                "{path} is missing although shard {i} reported success; running the restore again runs the shard again"
            )));
        };
        let r: RestoreShardResult = from_json(&b, &path)?;
        check_result(staged, i, &r, &path)?;
        records += r.records;
        bytes += r.bytes;
        for m in r.partitions {
            let Some(at) = step_position(plan, &m) else {
                return Err(ExecError::Integrity(format!(
                    "{path}: an offset-map entry {}/{} -> {}/{} is not a step of the plan; delete it to run the shard again",
                    m.source_topic, m.source_partition, m.target_topic, m.target_partition
                )));
            };
            entries.push((at, m));
        }
    }
    // stable: a repartitioned topic's entries keep their order
    entries.sort_by_key(|(at, _)| *at);
    let map = OffsetMap {
        format: FORMAT.into(),
        backup_name: plan.backup_name.clone(),
        backup_run_id: plan.backup_run_id.clone(),
        restore_name: plan.restore_name.clone(),
        partitions: entries.into_iter().map(|(_, m)| m).collect(),
    };
    Ok((map, records, bytes))
}

/// Runs shard `shard` of the staged restore `staged`: restores its steps from where the
/// journal's base offsets and the targets' ends say (a shard started again skips what it
/// wrote), then writes its result. A shard whose result exists returns it without running.
/// Writes only while the coordinator holds the restore's lock for this restore. `op` is the
/// repository (read), `state` the restore's state storage.
///
/// Errors: [`ExecError::Locked`] when the lock is not (or no longer) held for the restore;
/// [`ExecError::Input`] for a shard the run does not have; the steps' errors (a re-run skips
/// what was written).
pub async fn run_restore_shard(
    staged: &StagedRestore,
    shard: u32,
    client: &KafkaClient,
    op: &Operator,
    state: &Operator,
    ctx: &ExecContext,
) -> Result<RestoreShardResult, ExecError> {
    let plan = staged.shard_plan(shard)?;
    let (backup, restore) = (&plan.backup_name, &plan.restore_name);
    let result_path = layout::restore_shard_result(backup, restore, shard);
    if let Some(b) = storage::read_opt(state, &result_path).await? {
        let r: RestoreShardResult = from_json(&b, &result_path)?;
        check_result(staged, shard, &r, &result_path)?;
        tracing::info!(shard, restore = %restore, "shard already complete: nothing to do");
        return Ok(r);
    }
    let lock_path = layout::restore_lock(backup, restore);
    let watch = LockWatch::start(state, &lock_path, &staged.lock_purpose()).await?;
    // one process per shard: a Job's next Pod waits for the last one to end
    let own = layout::restore_shard_lock(backup, restore, shard);
    let purpose = format!("{} shard {shard}", staged.lock_purpose());
    let own = Lock::acquire_waiting(state, &own, &purpose, SHARD_LOCK_PATIENCE).await?;
    own.hold(watch.hold(Box::pin(async {
        let (map, records, bytes) = restore_shard_steps(staged, &plan, client, op, ctx).await?;
        // the result is written only while the restore still holds the lock
        watch.check().await?;
        let r = RestoreShardResult {
            format: FORMAT.into(),
            restore_name: restore.clone(),
            backup_run_id: plan.backup_run_id.clone(),
            plan_hash: plan.hash.clone(),
            shard,
            shards: staged.shards.len() as u32,
            steps: staged.steps(shard)?.clone(),
            partitions: map.partitions,
            records,
            bytes,
            completed_at: (ctx.now_ms)(),
        };
        storage::write_all(state, &result_path, to_json(&r)).await?;
        Ok(r)
    })))
    .await
}

/// The data of one shard (`plan`: its [`StagedRestore::shard_plan`]): its part of the chain
/// verified, then its steps from their resume points.
async fn restore_shard_steps(
    staged: &StagedRestore,
    plan: &RestorePlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<(OffsetMap, u64, u64), ExecError> {
    let journal_path = layout::restore_journal(&plan.backup_name, &plan.restore_name);
    plan_progress(plan, ctx);
    let (indexes, rep_indexes, keys) = verify_chain(plan, op, ctx).await?;
    let ctx = &ctx.clone().with_run_keys(keys);
    let targets = target_partitions(plan);
    let mine: BTreeSet<&(String, i32)> = targets.iter().collect();
    let base: Vec<BaseOffset> = (staged.base_offsets.iter())
        .filter(|b| mine.contains(&(b.topic.clone(), b.partition)))
        .cloned()
        .collect();
    if base.len() != mine.len() {
        return Err(ExecError::Integrity(format!(
            "{}: the staged base offsets miss target partitions of the shard; delete it and run the restore again",
            layout::restore_plan(&plan.backup_name, &plan.restore_name)
        )));
    }
    let resume: BTreeMap<(String, i32), (i64, u64)> =
        resume_points(false, client, &base, &targets, &journal_path).await?;
    restore_steps(
        plan,
        (indexes, rep_indexes),
        client,
        op,
        ctx,
        &resume,
        &journal_path,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::RepartitionRanks;

    /// Two partition steps (golden restore-job) and one repartitioned topic (golden
    /// restore-repartition), shard 0 = partition step 0, shard 1 = step 1 and the topic.
    fn staged() -> StagedRestore {
        let mut plan: RestorePlan =
            serde_json::from_str(include_str!("../../tests/golden/restore-job.json")).unwrap();
        let rep: RestorePlan =
            serde_json::from_str(include_str!("../../tests/golden/restore-repartition.json"))
                .unwrap();
        plan.repartitioned = rep.repartitioned;
        StagedRestore {
            format: FORMAT.into(),
            spec_hash: "s".into(),
            plan,
            shards: vec![
                RestoreShardSteps {
                    partitions: vec![0],
                    repartitioned: vec![],
                },
                RestoreShardSteps {
                    partitions: vec![1],
                    repartitioned: vec![0],
                },
            ],
            base_offsets: vec![],
        }
    }

    fn steps(p: &[usize], r: &[usize]) -> RestoreShardSteps {
        RestoreShardSteps {
            partitions: p.to_vec(),
            repartitioned: r.to_vec(),
        }
    }

    #[test]
    fn an_assignment_must_cover_every_step_and_topic_exactly_once() {
        let mut s = staged();
        assert!(check_assignment(&s, "p").is_ok());
        for bad in [
            vec![steps(&[0, 1], &[])],
            vec![steps(&[0], &[0]), steps(&[0, 1], &[])],
            vec![steps(&[0, 1, 2], &[0])],
            vec![steps(&[0, 1], &[0, 0])],
            vec![steps(&[0, 1], &[1])],
            vec![],
        ] {
            s.shards = bad.clone();
            let e = check_assignment(&s, "p").unwrap_err();
            assert!(e.to_string().contains("exactly once"), "{bad:?}: {e}");
        }
        // a plan without steps has no shard
        s.plan.partitions.clear();
        s.plan.repartitioned.clear();
        s.shards = vec![];
        assert!(check_assignment(&s, "p").is_ok());
    }

    #[test]
    fn a_shards_plan_holds_only_its_steps_and_leaves_the_coordinators_work_out() {
        let s = staged();
        let p = s.shard_plan(1).unwrap();
        assert_eq!(p.partitions, vec![s.plan.partitions[1].clone()]);
        assert_eq!(p.repartitioned, s.plan.repartitioned);
        assert_eq!(
            p.estimated_records,
            s.plan.partitions[1].estimated_records + s.plan.repartitioned[0].estimated_records
        );
        assert!(p.create_topics.is_empty() && p.purge.is_empty());
        assert!(p.groups.is_none() && p.execution.is_none());
        assert_eq!(
            p.hash, s.plan.hash,
            "results are checked against the staged hash"
        );
        let e = s.shard_plan(2).unwrap_err();
        assert!(
            matches!(e, ExecError::Input(_)) && e.to_string().contains("--shard"),
            "{e}"
        );
        assert_eq!(
            s.describe(1),
            vec![
                format!(
                    "{}/{}",
                    s.plan.partitions[1].source_topic, s.plan.partitions[1].source_partition
                ),
                format!("{} (all partitions)", s.plan.repartitioned[0].source_topic)
            ]
        );
    }

    #[test]
    fn a_shard_result_of_another_restore_shard_plan_or_step_set_is_refused() {
        let s = staged();
        let good = RestoreShardResult {
            format: FORMAT.into(),
            restore_name: s.plan.restore_name.clone(),
            backup_run_id: s.plan.backup_run_id.clone(),
            plan_hash: s.plan.hash.clone(),
            shard: 1,
            shards: 2,
            steps: steps(&[1], &[0]),
            partitions: vec![],
            records: 0,
            bytes: 0,
            completed_at: 0,
        };
        assert!(check_result(&s, 1, &good, "x").is_ok());
        let cases = [
            RestoreShardResult {
                restore_name: "other".into(),
                ..good.clone()
            },
            RestoreShardResult {
                backup_run_id: "other".into(),
                ..good.clone()
            },
            RestoreShardResult {
                shard: 0,
                ..good.clone()
            },
            RestoreShardResult {
                shards: 3,
                ..good.clone()
            },
            RestoreShardResult {
                plan_hash: "other".into(),
                ..good.clone()
            },
            RestoreShardResult {
                steps: steps(&[1], &[]),
                ..good.clone()
            },
        ];
        for r in cases {
            let e = check_result(&s, 1, &r, "x").unwrap_err();
            assert!(matches!(e, ExecError::Integrity(_)), "{r:?}: {e}");
        }
    }

    #[test]
    fn offset_map_entries_sort_into_plan_order() {
        let s = staged();
        let step = &s.plan.partitions[1];
        let plain = PartitionOffsetMap {
            source_topic: step.source_topic.clone(),
            source_partition: step.source_partition,
            target_topic: step.target_topic.clone(),
            target_partition: step.target_partition,
            ..Default::default()
        };
        assert_eq!(step_position(&s.plan, &plain), Some(1));
        let r = &s.plan.repartitioned[0];
        let rep = PartitionOffsetMap {
            source_topic: r.source_topic.clone(),
            target_topic: r.target_topic.clone(),
            target_partition: 3,
            repartition: Some(RepartitionRanks::default()),
            ..Default::default()
        };
        assert_eq!(step_position(&s.plan, &rep), Some(2));
        let stray = PartitionOffsetMap {
            target_partition: 99,
            ..plain
        };
        assert_eq!(step_position(&s.plan, &stray), None);
    }
}
