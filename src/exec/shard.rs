//! Sharded backup runs (`execution.mode: job`, docs/execution.md): one run of a KafkaBackup
//! spread over several processes (Kubernetes Jobs, or child processes of the CLI).
//!
//! The coordinator ([`coordinate_backup`]) holds the repository lock for the whole run, stages
//! the run once ([`StagedRun`], `<backup>/runs/<run>/plan.json`: the compiled plan, which
//! partitions each shard takes, the consumer-group snapshot), launches the shards through a
//! function its caller gives (what a launch is, a process or a Job, is the caller's), and
//! commits the run's manifest once, when every shard has written its result: a half-finished
//! run is never visible as complete. A shard ([`run_backup_shard`]) backs up its partitions
//! into its own checkpoint (`shards/<i>/checkpoint/`), so a shard killed and started again
//! resumes exactly, and writes its result (`shards/<i>/result.json`) last; it writes only
//! while the coordinator holds the lock for this run ([`super::lock::LockWatch`]). A shard
//! whose result exists is not run again; a failed run keeps every finished shard's result and
//! every shard's checkpoint for the next attempt, which resumes the staged run as it was
//! staged (same run id, same cut, same shards).
//!
//! Reads and writes the repository only; imports plan, format, kafka and storage.
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::ExecError;
use super::backup::{
    Shared, announce, assemble_manifest, claim, commit_manifest, data_key_for_writing,
    resumed_progress, run_partitions, snapshot_groups, start_checkpoint,
};
use super::engine::ExecContext;
use super::lock::{Lock, LockWatch, SHARD_LOCK_PATIENCE};
use crate::format::checkpoint::{self, CheckpointWriter};
use crate::format::layout::{self, FORMAT};
use crate::format::manifest::{GroupSnapshot, PartitionManifest, RunManifest, from_json, to_json};
use crate::kafka::KafkaClient;
use crate::plan::{BackupPartitionStep, BackupPlan};
use crate::storage;

/// A sharded run as its coordinator staged it: written once, before any shard starts, at
/// [`layout::run_plan`]; every shard and every later attempt of the coordinator reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedRun {
    pub format: String,
    /// The compiled plan (its run id, cut and settings hold for every shard and attempt).
    pub plan: BackupPlan,
    /// Per shard, the indexes into `plan.partitions` it backs up (ascending; every partition
    /// in exactly one shard).
    pub shards: Vec<Vec<usize>>,
    /// When the run started (epoch ms): the manifest's `startTime`.
    pub start_time: i64,
    /// Committed offsets read right after the cut, before any shard fetched: the manifest's.
    #[serde(default)]
    pub consumer_groups: Vec<GroupSnapshot>,
}

impl StagedRun {
    /// What the repository lock is held for during this run: the coordinator takes it with
    /// this purpose, and a shard writes only while the lock says it.
    pub fn lock_purpose(&self) -> String {
        lock_purpose(&self.plan)
    }

    /// Shard `shard`'s partition steps, in plan order.
    ///
    /// Errors: [`ExecError::Input`] when the run has no such shard (the `--shard` argument).
    pub fn steps(&self, shard: u32) -> Result<Vec<BackupPartitionStep>, ExecError> {
        let n = self.shards.len();
        let Some(idx) = self.shards.get(shard as usize) else {
            return Err(ExecError::Input(format!(
                "shard {shard}: run {} of backup {} has {n} shards (0..{n}); fix --shard",
                self.plan.run_id, self.plan.backup_name
            )));
        };
        idx.iter()
            .map(|&i| {
                self.plan.partitions.get(i).cloned().ok_or_else(|| {
                    ExecError::Integrity(format!(
                        "{}: shard {shard} names partition step {i}, the plan has {}",
                        layout::run_plan(&self.plan.backup_name, &self.plan.run_id),
                        self.plan.partitions.len()
                    ))
                })
            })
            .collect()
    }
}

fn lock_purpose(plan: &BackupPlan) -> String {
    format!("backup run {}", plan.run_id)
}

/// One partition a shard backed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardPartition {
    pub topic: String,
    pub partition: PartitionManifest,
}

/// What a shard wrote, at [`layout::shard_result`]: written last, so its presence means the
/// shard is complete; the coordinator builds the manifest from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardResult {
    pub format: String,
    pub backup_name: String,
    pub run_id: String,
    /// The staged plan's hash: a result of another plan is refused.
    pub plan_hash: String,
    pub shard: u32,
    pub shards: u32,
    pub partitions: Vec<ShardPartition>,
    /// Epoch ms.
    pub completed_at: i64,
}

/// Why a launched shard did not complete (after its retries: the launcher's
/// `backoffLimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFailure {
    /// What the shard or its launcher said (the last error line, the Pod's reason).
    pub message: String,
    /// The shard's process was killed for exceeding its memory limit (Kubernetes
    /// `OOMKilled`).
    pub oom_killed: bool,
}

/// The staged run of `backup` newer than `after` (the newest complete run), if an earlier
/// coordinator staged one that did not complete: the next attempt resumes it as staged.
///
/// Errors: storage failures; a plan document that fails its checks.
pub async fn staged_run(
    op: &Operator,
    backup: &str,
    after: Option<&str>,
) -> Result<Option<StagedRun>, ExecError> {
    let runs = storage::list_dirs(op, &layout::runs_dir(backup)).await?;
    for run in runs.iter().rev() {
        if after.is_some_and(|a| run.as_str() <= a) {
            break;
        }
        if let Some(s) = read_staged(op, backup, run).await? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The staged run `run` of `backup`, for a shard.
///
/// Errors: [`ExecError::Input`] when `run` has no plan document (not staged, or committed and
/// cleaned up: its manifest then exists); storage failures; a document that fails its checks.
pub async fn load_staged(op: &Operator, backup: &str, run: &str) -> Result<StagedRun, ExecError> {
    match read_staged(op, backup, run).await? {
        Some(s) => Ok(s),
        None => Err(ExecError::Input(format!(
            "backup {backup:?} has no staged run {run:?} ({} not found): the coordinator did not stage it, or the run is complete (see {}); fix --plan",
            layout::run_plan(backup, run),
            layout::manifest(backup, run)
        ))),
    }
}

async fn read_staged(
    op: &Operator,
    backup: &str,
    run: &str,
) -> Result<Option<StagedRun>, ExecError> {
    let path = layout::run_plan(backup, run);
    let Some(bytes) = storage::read_opt(op, &path).await? else {
        return Ok(None);
    };
    let s: StagedRun = from_json(&bytes, &path)?;
    if s.plan.run_id != run || s.plan.backup_name != backup {
        return Err(ExecError::Integrity(format!(
            "{path} describes run {} of backup {}: the object was copied or renamed",
            s.plan.run_id, s.plan.backup_name
        )));
    }
    check_assignment(&s, &path)?;
    Ok(Some(s))
}

/// Every partition step in exactly one shard.
fn check_assignment(s: &StagedRun, path: &str) -> Result<(), ExecError> {
    let n = s.plan.partitions.len();
    let mut seen = BTreeSet::new();
    let ok = !s.shards.is_empty()
        && s.shards.iter().flatten().all(|&i| i < n && seen.insert(i))
        && seen.len() == n;
    if ok {
        Ok(())
    } else {
        Err(ExecError::Integrity(format!(
            "{path}: its shards do not cover the plan's {} partitions exactly once",
            s.plan.partitions.len()
        )))
    }
}

/// Runs `plan` as `shards.len()` shards (`shards[i]`: the indexes into `plan.partitions`
/// shard i backs up) and returns the manifest it committed. Holds the repository lock
/// throughout; stages the run (or reuses the staging of an earlier attempt of the same run);
/// launches every shard without a result at once through `launch(i)`, which resolves when
/// the shard has ended (after its own retries); commits the manifest when all have their
/// result. A continuous run's shards end when the launcher stops them.
///
/// Errors: [`ExecError::ShardsFailed`] naming each failed shard, its partitions and why
/// (the finished shards' results and every checkpoint are kept: running again resumes);
/// [`ExecError::Locked`]; staging, storage and integrity errors.
pub async fn coordinate_backup<F, Fut>(
    plan: &BackupPlan,
    shards: Vec<Vec<usize>>,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
    launch: F,
) -> Result<RunManifest, ExecError>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<(), ShardFailure>>,
{
    let lock = Lock::acquire(
        op,
        &layout::backup_lock(&plan.backup_name),
        &lock_purpose(plan),
    )
    .await?;
    lock.hold(async {
        let staged = stage(plan, shards, client, op, ctx).await?;
        let pending = missing_results(&staged, op).await?;
        tracing::info!(backup = %plan.backup_name, run = %plan.run_id, shards = staged.shards.len(),
            launching = ?pending, "sharded backup: launching the shards without a result");
        publish_shards(&staged, &pending, ctx);
        let ends = {
            let launched = futures::future::join_all(pending.iter().map(|&i| launch(i)));
            let watched = watch_shards(&staged, op, ctx);
            futures::pin_mut!(launched, watched);
            match futures::future::select(launched, watched).await {
                futures::future::Either::Left((ends, _)) => ends,
                futures::future::Either::Right(((), launched)) => launched.await,
            }
        };
        let _ = refresh_shards(&staged, op, ctx).await;
        let failed: Vec<(u32, ShardFailure)> = (pending.into_iter().zip(ends))
            .filter_map(|(i, r)| r.err().map(|f| (i, f)))
            .collect();
        // Stopped shards of a run that is not continuous have no result: the run was
        // cancelled (and resumes), it did not fail.
        if ctx.cancel.is_cancelled() && !missing_results(&staged, op).await?.is_empty() {
            return Err(ExecError::Cancelled);
        }
        if !failed.is_empty() {
            return Err(shards_failed(&staged, &failed));
        }
        commit(&staged, op, ctx).await
    })
    .await
}

/// How often the coordinator reads the shards' checkpoints for the run's live figures.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Sets the run's live shard figures: every shard with its partitions and estimates, those
/// without a result (`pending`) Pending, the others Succeeded; the run's planned records and
/// bytes are the plan's.
fn publish_shards(staged: &StagedRun, pending: &[u32], ctx: &ExecContext) {
    use std::sync::atomic::Ordering::Relaxed;
    let plan = &staged.plan;
    let shards: Vec<crate::exec::ShardLive> = (staged.shards.iter().enumerate())
        .map(|(i, idx)| {
            let steps = idx.iter().filter_map(|&p| plan.partitions.get(p));
            let (records, bytes) = steps.fold((0, 0), |(r, b), s| {
                (r + s.estimated_records, b + s.estimated_bytes)
            });
            let done = !pending.contains(&(i as u32));
            crate::exec::ShardLive {
                index: i as u32,
                partitions: idx.len() as u32,
                phase: if done { "Succeeded" } else { "Pending" },
                records_planned: records,
                bytes_planned: bytes,
                ..Default::default()
            }
        })
        .collect();
    let p = &ctx.progress;
    p.records_planned
        .store(shards.iter().map(|s| s.records_planned).sum(), Relaxed);
    p.bytes_planned
        .store(shards.iter().map(|s| s.bytes_planned).sum(), Relaxed);
    *p.shards.lock().unwrap() = shards;
}

/// Reads the shards' checkpoints every [`WATCH_EVERY`] into the run's live figures; never
/// ends (the caller drops it when the shards have ended). A read that fails is logged and
/// tried again next time: figures are a view, not the run.
async fn watch_shards(staged: &StagedRun, op: &Operator, ctx: &ExecContext) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        if let Err(e) = refresh_shards(staged, op, ctx).await {
            tracing::debug!(error = %e, "sharded run: shard progress not read this time");
        }
    }
}

/// One read of every shard's checkpoint (records and raw bytes of its segments so far) and
/// result (a shard with one has Succeeded); the run's done figures are their sum.
async fn refresh_shards(
    staged: &StagedRun,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<(), ExecError> {
    use std::sync::atomic::Ordering::Relaxed;
    let plan = &staged.plan;
    let (mut all_records, mut all_bytes) = (0, 0);
    for i in 0..staged.shards.len() as u32 {
        let dir = layout::shard_checkpoint_dir(&plan.backup_name, &plan.run_id, i);
        let c = checkpoint::load_in(op, &dir, &plan.run_id).await?;
        let segs = c
            .iter()
            .flat_map(|c| c.partitions.values())
            .flat_map(|p| &p.segments);
        let (records, bytes) = segs.fold((0, 0), |(r, b), s| (r + s.records, b + s.raw_bytes));
        let result = layout::shard_result(&plan.backup_name, &plan.run_id, i);
        let done = (op.exists(&result).await).map_err(|e| storage::backend("stat", &result, e))?;
        ctx.progress.update_shard(i, |s| {
            s.records = s.records.max(records);
            s.bytes = s.bytes.max(bytes);
            if done {
                s.phase = "Succeeded";
                s.records = s.records.max(s.records_planned);
                s.bytes = s.bytes.max(s.bytes_planned);
            }
        });
        all_records += records;
        all_bytes += bytes;
    }
    let p = &ctx.progress;
    p.records_done.fetch_max(all_records, Relaxed);
    p.bytes_done.fetch_max(all_bytes, Relaxed);
    Ok(())
}

/// The error of a run whose shards failed: each shard, its partitions and why.
fn shards_failed(staged: &StagedRun, failed: &[(u32, ShardFailure)]) -> ExecError {
    let n = staged.shards.len();
    let what: Vec<String> = failed
        .iter()
        .map(|(i, f)| {
            let parts: Vec<String> = staged.shards[*i as usize]
                .iter()
                .map(|&p| {
                    let s = &staged.plan.partitions[p];
                    format!("{}/{}", s.topic, s.partition)
                })
                .collect();
            let oom = if f.oom_killed {
                " (OOMKilled: raise spec.execution.resources.limits.memory)"
            } else {
                ""
            };
            format!(
                "shard {i} of {n} (partitions {}) failed{oom}: {}",
                short_list(&parts),
                f.message
            )
        })
        .collect();
    ExecError::ShardsFailed {
        message: format!(
            "{}; the other shards' work is kept: the next attempt resumes run {} and runs only the shards without a result",
            what.join("; "),
            staged.plan.run_id
        ),
        oom_killed: failed.iter().any(|(_, f)| f.oom_killed),
    }
}

/// `items` joined, the first 8 and a count of the rest.
pub(super) fn short_list(items: &[String]) -> String {
    if items.len() <= 8 {
        return items.join(", ");
    }
    format!("{}, and {} more", items[..8].join(", "), items.len() - 8)
}

/// Stages the run: claims the repository, snapshots the consumer groups (before any shard
/// fetches: committed offsets are then <= the cut) and writes the plan document, then the
/// run's data key (encrypted repository). An existing plan document of the same run (an
/// earlier attempt) is reused as it is.
async fn stage(
    plan: &BackupPlan,
    shards: Vec<Vec<usize>>,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<StagedRun, ExecError> {
    let now = (ctx.now_ms)();
    claim(plan, op, ctx, now).await?;
    let staged = match read_staged(op, &plan.backup_name, &plan.run_id).await? {
        Some(s) => {
            tracing::info!(run = %plan.run_id, "sharded backup: resuming the staged run");
            s
        }
        None => {
            let consumer_groups = if plan.consumer_group_snapshot {
                snapshot_groups(plan, client).await?
            } else {
                vec![]
            };
            let s = StagedRun {
                format: FORMAT.into(),
                plan: plan.clone(),
                shards,
                start_time: now,
                consumer_groups,
            };
            let path = layout::run_plan(&plan.backup_name, &plan.run_id);
            check_assignment(&s, &path)?;
            storage::write_all(op, &path, to_json(&s)).await?;
            s
        }
    };
    // after the plan document: a key document always belongs to a run an attempt resumes
    data_key_for_writing(&staged.plan, op, ctx, staged.start_time).await?;
    Ok(staged)
}

/// The shards of `staged` without a result document (a stat each: [`commit`] reads and
/// checks the documents).
async fn missing_results(staged: &StagedRun, op: &Operator) -> Result<Vec<u32>, ExecError> {
    let mut out = vec![];
    for i in 0..staged.shards.len() as u32 {
        let path = layout::shard_result(&staged.plan.backup_name, &staged.plan.run_id, i);
        let exists = (op.exists(&path).await).map_err(|e| storage::backend("stat", &path, e))?;
        if !exists {
            out.push(i);
        }
    }
    Ok(out)
}

/// Runs shard `shard` of the staged run `staged`: backs up its partitions from where its own
/// checkpoint says (a shard started again resumes), then writes its result. A shard whose
/// result exists returns it without running. Writes only while the coordinator holds the
/// repository lock for this run.
///
/// Errors: [`ExecError::Locked`] when the lock is not (or no longer) held for the run;
/// [`ExecError::Input`] for a shard the run does not have; a checkpoint of another plan
/// ([`ExecError::Integrity`]); the partitions' errors (the checkpoint keeps what finished).
pub async fn run_backup_shard(
    staged: &StagedRun,
    shard: u32,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<ShardResult, ExecError> {
    let plan = &staged.plan;
    let steps = staged.steps(shard)?;
    let result_path = layout::shard_result(&plan.backup_name, &plan.run_id, shard);
    if let Some(b) = storage::read_opt(op, &result_path).await? {
        let r: ShardResult = from_json(&b, &result_path)?;
        check_result(staged, shard, &r, &result_path)?;
        tracing::info!(shard, run = %plan.run_id, "shard already complete: nothing to do");
        return Ok(r);
    }
    let lock_path = layout::backup_lock(&plan.backup_name);
    let watch = LockWatch::start(op, &lock_path, &staged.lock_purpose()).await?;
    // one process per shard: a Job's next Pod waits for the last one to end
    let own = layout::shard_lock(&plan.backup_name, &plan.run_id, shard);
    let purpose = format!("{} shard {shard}", staged.lock_purpose());
    let own = Lock::acquire_waiting(op, &own, &purpose, SHARD_LOCK_PATIENCE).await?;
    own.hold(watch.hold(async {
        let parts = back_up_shard(staged, shard, steps, client, op, ctx).await?;
        // the result is written only while the run still holds the lock
        watch.check().await?;
        let r = ShardResult {
            format: FORMAT.into(),
            backup_name: plan.backup_name.clone(),
            run_id: plan.run_id.clone(),
            plan_hash: plan.hash.clone(),
            shard,
            shards: staged.shards.len() as u32,
            partitions: parts
                .into_iter()
                .map(|(topic, partition)| ShardPartition { topic, partition })
                .collect(),
            completed_at: (ctx.now_ms)(),
        };
        storage::write_all(op, &result_path, to_json(&r)).await?;
        Ok(r)
    }))
    .await
}

/// The data of shard `shard`: its steps resumed after its checkpoint's segments.
async fn back_up_shard(
    staged: &StagedRun,
    shard: u32,
    steps: Vec<BackupPartitionStep>,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<Vec<(String, PartitionManifest)>, ExecError> {
    let plan = &staged.plan;
    let dir = layout::shard_checkpoint_dir(&plan.backup_name, &plan.run_id, shard);
    let resumed = checkpoint::load_in(op, &dir, &plan.run_id).await?;
    if let Some(c) = &resumed
        && c.plan_hash != plan.hash
    {
        return Err(ExecError::Integrity(format!(
            "{dir}: checkpoint of plan {} in run {} staged with plan {}: the object was copied; delete {dir} to start the shard over",
            c.plan_hash, plan.run_id, plan.hash
        )));
    }
    let mut progress = resumed.map(|c| c.partitions).unwrap_or_default();
    let steps: Vec<BackupPartitionStep> = steps
        .into_iter()
        .map(|s| {
            let key = format!("{}/{}", s.topic, s.partition);
            match progress.remove(&key) {
                Some(p) => s.resumed_after(p.segments),
                None => s,
            }
        })
        .collect();
    let (records, bytes) = (steps.iter()).fold((0, 0), |(r, b), s| {
        (r + s.estimated_records, b + s.estimated_bytes)
    });
    announce(records, bytes, ctx);
    let writer = plan.checkpoint_interval_ms.map(|_| {
        CheckpointWriter::new(
            &plan.backup_name,
            &plan.run_id,
            &plan.hash,
            resumed_progress(&steps),
        )
        .in_dir(dir.clone())
    });
    let checkpoint = start_checkpoint(writer, op, ctx).await?;
    let data_key = staged_data_key(plan, op, ctx).await?;
    let shared = Shared {
        plan,
        client,
        op,
        ctx,
        checkpoint,
        data_key,
    };
    run_partitions(&shared, steps).await
}

/// The data key the coordinator stored for the run (encrypted repository), else None.
async fn staged_data_key(
    plan: &BackupPlan,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<Option<std::sync::Arc<crate::format::seal::DataKey>>, ExecError> {
    match &ctx.keyring {
        Some(k) => Ok(Some(k.data_key(op, &plan.backup_name, &plan.run_id).await?)),
        None => Ok(None),
    }
}

/// A shard result must be this run's, this plan's and this shard's, with exactly its
/// partitions.
fn check_result(
    staged: &StagedRun,
    shard: u32,
    r: &ShardResult,
    path: &str,
) -> Result<(), ExecError> {
    let plan = &staged.plan;
    let bad = |why: String| {
        Err(ExecError::Integrity(format!(
            "{path}: {why}; delete it to run the shard again"
        )))
    };
    if r.run_id != plan.run_id || r.backup_name != plan.backup_name || r.shard != shard {
        return bad(format!(
            "it is shard {} of run {} of backup {}",
            r.shard, r.run_id, r.backup_name
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
    let want: BTreeSet<(String, i32)> = staged
        .steps(shard)?
        .into_iter()
        .map(|s| (s.topic, s.partition))
        .collect();
    let got: BTreeSet<(String, i32)> = (r.partitions.iter())
        .map(|p| (p.topic.clone(), p.partition.partition))
        .collect();
    if want != got || got.len() != r.partitions.len() {
        return bad(format!(
            "it lists {} partitions, not the {} the shard was given",
            r.partitions.len(),
            want.len()
        ));
    }
    Ok(())
}

/// Builds the manifest from every shard's result (checked against the staging), writes it
/// (the run is complete from here) and deletes the shards' documents and the plan document.
async fn commit(
    staged: &StagedRun,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<RunManifest, ExecError> {
    let plan = &staged.plan;
    let order: BTreeMap<(&str, i32), usize> = (plan.partitions.iter().enumerate())
        .map(|(i, s)| ((s.topic.as_str(), s.partition), i))
        .collect();
    let mut parts: Vec<(usize, String, PartitionManifest)> = vec![];
    for i in 0..staged.shards.len() as u32 {
        let path = layout::shard_result(&plan.backup_name, &plan.run_id, i);
        let Some(b) = storage::read_opt(op, &path).await? else {
            return Err(ExecError::Integrity(format!(
                "{path} is missing although shard {i} reported success; running the backup again runs the shard again"
            )));
        };
        let r: ShardResult = from_json(&b, &path)?;
        check_result(staged, i, &r, &path)?;
        for p in r.partitions {
            let at = order[&(p.topic.as_str(), p.partition.partition)];
            parts.push((at, p.topic, p.partition));
        }
    }
    parts.sort_by_key(|(at, _, _)| *at);
    let parts: Vec<(String, PartitionManifest)> =
        parts.into_iter().map(|(_, t, p)| (t, p)).collect();
    let groups = staged.consumer_groups.clone();
    let manifest = assemble_manifest(plan, parts, groups, staged.start_time, (ctx.now_ms)());
    let data_key = staged_data_key(plan, op, ctx).await?;
    let manifest = commit_manifest(plan, op, ctx, data_key.as_deref(), manifest).await?;
    ctx.progress
        .add(manifest.total_records, manifest.total_raw_bytes);
    let shards = layout::shards_dir(&plan.backup_name, &plan.run_id);
    if let Err(e) = op.delete_with(&shards).recursive(true).await {
        tracing::warn!(path = %shards, error = %e, "the finished run's shard documents were not deleted");
    }
    let staged_doc = layout::run_plan(&plan.backup_name, &plan.run_id);
    if let Err(e) = op.delete(&staged_doc).await {
        tracing::warn!(path = %staged_doc, error = %e, "the finished run's plan document was not deleted");
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(parts: usize, shards: Vec<Vec<usize>>) -> StagedRun {
        let step = |i: usize| BackupPartitionStep {
            topic: "t".into(),
            partition: i as i32,
            log_start_offset: 0,
            high_watermark: 10,
            start_offset: 0,
            cut: crate::plan::CutMode::At(10),
            covered_from: 0,
            carried_segments: vec![],
            carried_gaps: vec![],
            resumed_segments: vec![],
            gap: None,
            estimated_records: 10,
            estimated_bytes: 0,
            estimated_bytes_from: crate::plan::BytesSource::Unknown,
        };
        let mut plan: BackupPlan =
            serde_json::from_str(include_str!("../../tests/golden/backup-job.json")).unwrap();
        plan.backup_name = "kb".into();
        plan.run_id = "r1".into();
        plan.partitions = (0..parts).map(step).collect();
        StagedRun {
            format: FORMAT.into(),
            plan,
            shards,
            start_time: 0,
            consumer_groups: vec![],
        }
    }

    #[test]
    fn an_assignment_must_cover_every_partition_exactly_once() {
        assert!(check_assignment(&staged(3, vec![vec![0, 2], vec![1]]), "p").is_ok());
        for bad in [
            vec![vec![0, 1]],
            vec![vec![0, 1], vec![1, 2]],
            vec![vec![0, 1, 2, 3]],
            vec![],
        ] {
            let e = check_assignment(&staged(3, bad.clone()), "p").unwrap_err();
            assert!(e.to_string().contains("exactly once"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_shard_result_of_another_run_shard_plan_or_partition_set_is_refused() {
        let s = staged(2, vec![vec![0], vec![1]]);
        let part = |p: i32| ShardPartition {
            topic: "t".into(),
            partition: PartitionManifest {
                partition: p,
                log_start_offset: 0,
                covered_from: 0,
                cut: 0,
                start_offset: 0,
                records: 0,
                raw_bytes: 0,
                min_timestamp: None,
                max_timestamp: None,
                gaps: vec![],
                segments: vec![],
            },
        };
        let good = ShardResult {
            format: FORMAT.into(),
            backup_name: "kb".into(),
            run_id: "r1".into(),
            plan_hash: s.plan.hash.clone(),
            shard: 1,
            shards: 2,
            partitions: vec![part(1)],
            completed_at: 0,
        };
        assert!(check_result(&s, 1, &good, "x").is_ok());
        let cases: Vec<(&str, ShardResult)> = vec![
            (
                "run",
                ShardResult {
                    run_id: "r2".into(),
                    ..good.clone()
                },
            ),
            (
                "shard",
                ShardResult {
                    shard: 0,
                    ..good.clone()
                },
            ),
            (
                "plan",
                ShardResult {
                    plan_hash: "other".into(),
                    ..good.clone()
                },
            ),
            (
                "partitions",
                ShardResult {
                    partitions: vec![part(0)],
                    ..good.clone()
                },
            ),
            (
                "twice",
                ShardResult {
                    partitions: vec![part(1), part(1)],
                    ..good.clone()
                },
            ),
        ];
        for (what, r) in cases {
            let e = check_result(&s, 1, &r, "x").unwrap_err();
            assert!(matches!(e, ExecError::Integrity(_)), "{what}: {e}");
        }
    }

    #[test]
    fn a_shard_the_run_does_not_have_is_an_input_error_naming_the_flag() {
        let e = staged(2, vec![vec![0], vec![1]]).steps(2).unwrap_err();
        assert!(
            matches!(e, ExecError::Input(_)) && e.to_string().contains("--shard"),
            "{e}"
        );
    }
}
