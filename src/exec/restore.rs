//! Executing a [`RestorePlan`]: create and purge target topics, then one task per source
//! partition that reads only the blocks it needs, drops what a read_committed consumer would
//! not see (control batches, aborted or unfinished transactions), filters by offset range and
//! PITR window, and produces in order with several requests in flight on one connection.
//!
//! A restore is resumable: once target topics are created and purged, a journal
//! (`<backup>/restores/<restore>/journal.json`) records the plan and each target partition's
//! log end offset. Produced batches are deterministic (same plan, same batching) and Kafka
//! appends a batch whole, so after a crash `high watermark - base` is exactly the number of
//! records already written: the resumed attempt skips them and produces the rest, with no
//! record lost or written twice. This holds while only this restore writes to its target
//! partitions (the same assumption the offset map makes); anything else is detected and fails.
//!
//! After the data, the consumer-group step (`autoConsumerGroups`, `offsetReset`) is compiled
//! into an offset reset from the offset map ([`crate::plan::compile_restore_groups`]) and run
//! by the code of a KafkaOffsetReset ([`super::groups::snapshot_then_commit`]).
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::ExecError;
use super::engine::{Event, ExecContext, run_steps};
use super::groups;
use super::replay::{self, IN_FLIGHT, TxnOutcomes, Window, contiguous, wanted_blocks};
use crate::format::batch::{self, Record};
use crate::format::layout;
use crate::format::layout::FORMAT;
use crate::format::manifest::{
    BlockIndex, OffsetMap, OffsetSnapshot, PartitionOffsetMap, SegmentIndex, from_json, to_json,
};
use crate::format::segment_io;
use crate::kafka::KafkaClient;
use crate::kafka::conn::Reply;
use crate::kafka::ops::{NewTopic, OffsetSpec, produce_result};
use crate::plan::{RestorePartitionStep, RestorePlan};
use crate::storage;

/// The restore journal, written before the first record is produced and again, with
/// `complete`, after the offset map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJournal {
    pub format: String,
    /// [`crate::plan::restore_data_hash`] of the KafkaRestore spec the plan was compiled from:
    /// a spec with other data starts over; rate limits, concurrency, batch size and timeouts
    /// may change between attempts.
    pub spec_hash: String,
    /// The plan as compiled for the first attempt (a resumed attempt does not recompile: the
    /// target topics now hold its own records).
    pub plan: RestorePlan,
    /// Log end offset (high watermark) of each target partition when producing began.
    pub base_offsets: Vec<BaseOffset>,
    pub complete: bool,
    /// Records and bytes restored, written with `complete`.
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub bytes: u64,
    /// The consumer-group step (if the plan has one) committed every group: a re-run of a
    /// complete restore whose groups were not all carried over runs that step again.
    #[serde(default)]
    pub groups_done: bool,
}

/// Where a target partition stood before the restore produced to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// How a restore begins.
#[derive(Debug, Clone)]
pub enum RestoreStart {
    /// Create and purge topics, then write a journal tagged with this spec hash.
    Fresh { spec_hash: String },
    /// Continue the attempt this (incomplete) journal describes.
    Resume(Box<RestoreJournal>),
    /// This (complete) journal describes the same restore: nothing to do.
    Complete(Box<RestoreJournal>),
}

/// Reads the journal of restore `restore` from backup `backup`'s repository, if any.
///
/// Errors: storage failures; a journal that is not JSON or of another format version.
pub async fn load_journal(
    op: &Operator,
    backup: &str,
    restore: &str,
) -> Result<Option<RestoreJournal>, ExecError> {
    let path = layout::restore_journal(backup, restore);
    match storage::read_opt(op, &path).await? {
        None => Ok(None),
        Some(b) => Ok(Some(from_json(&b, &path)?)),
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub records: u64,
    pub bytes: u64,
    pub offset_map: OffsetMap,
    pub offset_map_path: String,
    /// The restore had completed before: nothing was read or written this time.
    pub already_complete: bool,
    /// The consumer-group step, one result per group (empty without `autoConsumerGroups` /
    /// `offsetReset`).
    pub groups: Vec<groups::GroupResult>,
    /// The snapshot taken before the groups were committed, and whether it was put back.
    pub rollback: Option<RollbackOutcome>,
}

/// The rollback snapshot of a restore's consumer-group step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOutcome {
    pub snapshot_id: String,
    /// Storage key of the snapshot (an [`crate::format::manifest::OffsetSnapshot`]).
    pub snapshot_path: String,
    /// Epoch ms.
    pub snapshot_time: i64,
    /// Epoch ms (`rollback.snapshotRetentionHours` after it was taken).
    pub expires_at: i64,
    /// `autoRollbackOnFailure` put the snapshot back after a group failed.
    pub rolled_back: bool,
}

impl RestoreOutcome {
    /// Groups that were not carried over (refused or failed).
    pub fn failed_groups(&self) -> Vec<&groups::GroupResult> {
        self.groups.iter().filter(|g| !g.ok()).collect()
    }
}

/// Runs a restore plan. A dry-run plan is refused here (callers print it instead).
/// `start` says whether this is a fresh attempt or resumes an interrupted one (module docs).
/// `records`/`bytes` of the outcome count the whole restore, earlier attempts included.
/// `op` is the backup repository, only read; `state` is where the journal, lock, offset map
/// and group snapshots are written (the repository itself unless `spec.stateStorage` says
/// otherwise). The restore holds its lock in `state` and the target fence
/// ([`super::fence::TargetFence`]) on the target cluster while it writes.
///
/// Errors: topic creation or purge failures, the first partition failure (a Produce error is
/// not retried: its outcome is unknown; the journal makes the next attempt exact), a target
/// partition holding records this restore did not write, [`ExecError::Locked`] when another
/// attempt of this restore holds its lock or another restore holds a target topic.
pub async fn run_restore(
    plan: &RestorePlan,
    start: &RestoreStart,
    client: &KafkaClient,
    op: &Operator,
    state: &Operator,
    ctx: &ExecContext,
) -> Result<RestoreOutcome, ExecError> {
    if plan.dry_run {
        return Err(ExecError::Input(
            "dryRun is set: nothing is executed".into(),
        ));
    }
    if let RestoreStart::Complete(j) = start
        && (plan.groups.is_none() || j.groups_done)
    {
        return run_restore_locked(plan, start, client, op, state, ctx).await;
    }
    // boxed: the run's future is large and would otherwise sit on the caller's stack
    let work = Box::pin(run_restore_locked(plan, start, client, op, state, ctx));
    with_lock_and_fence(plan, client, state, work).await
}

/// What a restore's lock (and target fence) is held for: `restore <name> of run <run>`. A
/// shard of a sharded restore writes only while its lock says this.
pub(super) fn lock_purpose(plan: &RestorePlan) -> String {
    format!(
        "restore {} of run {}",
        plan.restore_name, plan.backup_run_id
    )
}

/// Runs `work` holding the restore's lock in `state` and the target fence on the target
/// cluster, both for [`lock_purpose`]; either lost stops `work`.
///
/// Errors: [`ExecError::Locked`] when another attempt of this restore holds its lock or
/// another restore a target topic; a state storage the lock cannot be written to
/// ([`ExecError::Input`] naming `spec.stateStorage`); `work`'s.
pub(super) async fn with_lock_and_fence<T>(
    plan: &RestorePlan,
    client: &KafkaClient,
    state: &Operator,
    work: impl std::future::Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    let purpose = lock_purpose(plan);
    let lock_path = layout::restore_lock(&plan.backup_name, &plan.restore_name);
    let lock = super::lock::Lock::acquire(state, &lock_path, &purpose)
        .await
        .map_err(|e| match e {
            ExecError::Storage(e) => unwritable_state(&lock_path, e),
            other => other,
        })?;
    lock.hold(Box::pin(async {
        let topics = target_topics(plan);
        let fence =
            super::fence::TargetFence::acquire(client, &plan.restore_name, &purpose, &topics)
                .await?;
        fence.hold(work).await
    }))
    .await
}

/// Every topic a restore writes to, sorted.
fn target_topics(plan: &RestorePlan) -> Vec<String> {
    let mut v: Vec<String> = plan
        .partitions
        .iter()
        .map(|s| s.target_topic.clone())
        .chain(plan.repartitioned.iter().map(|r| r.target_topic.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A restore whose journal says it completed: nothing is read or written but the
/// consumer-group step, when it has not carried every group over yet.
async fn already_complete(
    plan: &RestorePlan,
    j: &RestoreJournal,
    client: &KafkaClient,
    state: &Operator,
    ctx: &ExecContext,
) -> Result<RestoreOutcome, ExecError> {
    let journal_path = layout::restore_journal(&plan.backup_name, &plan.restore_name);
    ctx.progress.emit(Event::StepStarted {
        step: "already-complete".into(),
    });
    let offset_map = match storage::read_opt(state, &plan.offset_map_path).await? {
        Some(b) => from_json(&b, &plan.offset_map_path)?,
        None => OffsetMap::default(),
    };
    let (groups, rollback) = if plan.groups.is_some() && !j.groups_done {
        let r = group_step(plan, client, state, ctx, &offset_map).await?;
        if r.0.iter().all(|g| g.ok()) {
            let mut j = j.clone();
            j.groups_done = true;
            storage::write_all(state, &journal_path, to_json(&j)).await?;
        }
        r
    } else {
        (vec![], None)
    };
    Ok(RestoreOutcome {
        records: j.records,
        bytes: j.bytes,
        offset_map,
        offset_map_path: plan.offset_map_path.clone(),
        already_complete: true,
        groups,
        rollback,
    })
}

/// The integrity chain, before anything is written: every index the plan needs and every
/// segment those indexes describe, checked against the manifest. Returns the indexes of the
/// plain steps and, per repartitioned step, of each source partition.
#[allow(clippy::type_complexity)]
pub(super) async fn verify_chain(
    plan: &RestorePlan,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<
    (
        Vec<Vec<SegmentIndex>>,
        Vec<Vec<Vec<SegmentIndex>>>,
        crate::format::seal::RunKeys,
    ),
    ExecError,
> {
    use futures::{StreamExt, TryStreamExt};
    // Every index the plan needs, checked against its manifest entry (the manifest itself was
    // checked when it was read), read 16 at a time, in plan order: the plain steps, then the
    // source partitions of each repartitioned step.
    ctx.progress.emit(Event::StepStarted {
        step: "verify-indexes".into(),
    });
    let plain = plan
        .partitions
        .iter()
        .map(|s| (s.source_topic.as_str(), s.source_partition, &s.segments));
    let rep = plan.repartitioned.iter().flat_map(|r| {
        r.sources
            .iter()
            .map(|s| (r.source_topic.as_str(), s.source_partition, &s.segments))
    });
    let refs: Vec<(&str, i32, &crate::format::manifest::SegmentRef)> = plain
        .chain(rep)
        .flat_map(|(t, p, segs)| segs.iter().map(move |seg| (t, p, seg)))
        .collect();
    // The data keys of an encrypted run, all unwrapped now: a missing key fails here.
    let runs = super::keys::sealed_runs(refs.iter().map(|(_, _, seg)| *seg));
    let keys = super::keys::load_run_keys(op, &plan.backup_name, runs, ctx).await?;
    // boxed and collected first, so that no iterator closure is held across the await (the
    // run's future must be Send for any lifetime)
    type Read<'a> = futures::future::BoxFuture<'a, Result<SegmentIndex, storage::StorageError>>;
    let mut reads: Vec<Read<'_>> = Vec::with_capacity(refs.len());
    for (t, p, seg) in &refs {
        reads.push(Box::pin(segment_io::read_verified_index(
            op,
            &plan.backup_name,
            t,
            *p,
            seg,
        )));
    }
    let read: Vec<SegmentIndex> = futures::stream::iter(reads)
        .buffered(16)
        .try_collect()
        .await?;
    // ... and every segment those indexes describe, against its manifest entry (size,
    // whole-object CRC-32C, last batch), without reading its payloads twice.
    let segments: Vec<_> = refs.iter().map(|(_, _, seg)| *seg).zip(&read).collect();
    segment_io::verify_objects(op, &segments, &keys).await?;
    // back into the plan's shape
    let mut read = read.into_iter();
    let mut take = |n: usize| -> Vec<SegmentIndex> { read.by_ref().take(n).collect() };
    let indexes: Vec<Vec<SegmentIndex>> = plan
        .partitions
        .iter()
        .map(|s| take(s.segments.len()))
        .collect();
    let rep_indexes: Vec<Vec<Vec<SegmentIndex>>> = plan
        .repartitioned
        .iter()
        .map(|r| r.sources.iter().map(|s| take(s.segments.len())).collect())
        .collect();
    Ok((indexes, rep_indexes, keys))
}

/// What one step of a restore did: its partition maps, records and bytes.
type StepDone = (Vec<PartitionOffsetMap>, u64, u64);

/// The offset map and the record and byte counts of every step, or, when a step failed, an
/// error listing the failed and the complete partitions.
fn fold_results(
    plan: &RestorePlan,
    names: Vec<String>,
    results: Vec<Result<StepDone, ExecError>>,
    journal_path: &str,
) -> Result<(OffsetMap, u64, u64), ExecError> {
    let mut map = OffsetMap {
        format: FORMAT.into(),
        backup_name: plan.backup_name.clone(),
        backup_run_id: plan.backup_run_id.clone(),
        restore_name: plan.restore_name.clone(),
        partitions: vec![],
    };
    let (mut records, mut bytes) = (0, 0);
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    let mut first_err = None;
    for (name, r) in names.into_iter().zip(results) {
        match r {
            Ok((m, rec, b)) => {
                records += rec;
                bytes += b;
                map.partitions.extend(m);
                done.push(name);
            }
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                if first_err.is_none() || matches!(first_err, Some(ExecError::Cancelled)) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        if matches!(e, ExecError::Cancelled) {
            return Err(e);
        }
        // Say which partitions are complete: a re-run (after repairing the repository, for
        // corrupt data) continues from the journal and skips them.
        return Err(ExecError::Partial {
            message: format!(
                "restore {} stopped: {} of {} partitions failed:\n  {}\ncomplete: {}\nthe journal {journal_path} lets a re-run continue where this one stopped",
                plan.restore_name,
                failed.len(),
                plan.partitions.len() + plan.repartitioned.len(),
                failed.join("\n  "),
                if done.is_empty() {
                    "none".to_string()
                } else {
                    done.join(", ")
                }
            ),
            source: Box::new(e),
        });
    }
    Ok((map, records, bytes))
}

/// Per target partition: where the restore began there and how many records earlier attempts
/// already wrote (none on a fresh start, whose base offsets were just read). `fresh`: the
/// base offsets were just read (nothing to list); else the targets' ends are listed now.
///
/// Errors: a target partition that now ends before where the restore began (purged or
/// deleted meanwhile).
pub(super) async fn resume_points(
    fresh: bool,
    client: &KafkaClient,
    base_offsets: &[BaseOffset],
    targets: &[(String, i32)],
    journal_path: &str,
) -> Result<BTreeMap<(String, i32), (i64, u64)>, ExecError> {
    // Records already in each target partition from earlier attempts (none on a fresh start,
    // whose base offsets were just read).
    let now = if fresh {
        Default::default()
    } else {
        client.list_offsets(targets, OffsetSpec::Latest).await?
    };
    let mut resume: BTreeMap<(String, i32), (i64, u64)> = BTreeMap::new();
    for b in base_offsets {
        let key = (b.topic.clone(), b.partition);
        let end = now.get(&key).copied().unwrap_or(b.offset);
        if end < b.offset {
            return Err(ExecError::Conflict(format!(
                "target partition {}-{} ends at offset {end}, before where this restore began ({}): it was deleted or purged meanwhile; delete {journal_path} to start over",
                b.topic, b.partition, b.offset
            )));
        }
        resume.insert(key, (b.offset, (end - b.offset) as u64));
    }
    Ok(resume)
}

/// Every target partition of `plan`: its partition steps', then its repartitioned topics'.
pub(super) fn target_partitions(plan: &RestorePlan) -> Vec<(String, i32)> {
    plan.partitions
        .iter()
        .map(|s| (s.target_topic.clone(), s.target_partition))
        .chain(plan.repartitioned.iter().flat_map(|r| r.targets()))
        .collect()
}

async fn run_restore_locked(
    plan: &RestorePlan,
    start: &RestoreStart,
    client: &KafkaClient,
    op: &Operator,
    state: &Operator,
    ctx: &ExecContext,
) -> Result<RestoreOutcome, ExecError> {
    let journal_path = layout::restore_journal(&plan.backup_name, &plan.restore_name);
    if let RestoreStart::Complete(j) = start {
        return already_complete(plan, j, client, state, ctx).await;
    }
    plan_progress(plan, ctx);
    let (indexes, rep_indexes, keys) = verify_chain(plan, op, ctx).await?;
    let ctx = &ctx.clone().with_run_keys(keys);
    let targets = target_partitions(plan);
    let mut journal = open_journal(plan, start, state, ctx, &journal_path).await?;
    prepare_once(plan, start, client, state, ctx, &mut journal, &journal_path).await?;
    let fresh = matches!(start, RestoreStart::Fresh { .. });
    let resume = resume_points(
        fresh,
        client,
        &journal.base_offsets,
        &targets,
        &journal_path,
    )
    .await?;
    let (map, records, bytes) = restore_steps(
        plan,
        (indexes, rep_indexes),
        client,
        op,
        ctx,
        &resume,
        &journal_path,
    )
    .await?;
    finish(plan, client, state, ctx, journal, (map, records, bytes)).await
}

/// The run's planned records and bytes, for progress.
pub(super) fn plan_progress(plan: &RestorePlan, ctx: &ExecContext) {
    ctx.progress
        .records_planned
        .store(plan.estimated_records, std::sync::atomic::Ordering::Relaxed);
    ctx.progress
        .bytes_planned
        .store(plan.estimated_bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Prepares the targets once per journal: when its base offsets are empty (a fresh start, or
/// an earlier attempt that stopped after its journal and before it read where the targets
/// began: nothing was produced; an existing topic of this restore is accepted), checks that
/// the targets are as the plan saw them, creates and purges them, and records their ends as
/// the journal's base offsets.
pub(super) async fn prepare_once(
    plan: &RestorePlan,
    start: &RestoreStart,
    client: &KafkaClient,
    state: &Operator,
    ctx: &ExecContext,
    journal: &mut RestoreJournal,
    journal_path: &str,
) -> Result<(), ExecError> {
    let targets = target_partitions(plan);
    if journal.base_offsets.is_empty() && !targets.is_empty() {
        super::fence::check_targets_unchanged(plan, client).await?;
        let resumed = !matches!(start, RestoreStart::Fresh { .. });
        prepare_targets(plan, client, ctx, resumed).await?;
        journal.base_offsets = base_offsets(client, &targets).await?;
        storage::write_all(state, journal_path, to_json(&*journal)).await?;
    }
    Ok(())
}

/// Restores the data of every step of `plan` (partition steps, then repartitioned topics),
/// `indexes` being [`verify_chain`]'s, from the `resume` points ([`resume_points`]); returns
/// the offset map and the records and bytes restored (earlier attempts' included).
///
/// Errors: as [`fold_results`]: the failed and the complete partitions.
pub(super) async fn restore_steps(
    plan: &RestorePlan,
    (indexes, rep_indexes): (Vec<Vec<SegmentIndex>>, Vec<Vec<Vec<SegmentIndex>>>),
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
    resume: &BTreeMap<(String, i32), (i64, u64)>,
    journal_path: &str,
) -> Result<(OffsetMap, u64, u64), ExecError> {
    let steps: Vec<Work> = plan
        .partitions
        .iter()
        .cloned()
        .zip(indexes)
        .map(|(s, i)| Work::Partition(s, i))
        .chain(
            plan.repartitioned
                .iter()
                .cloned()
                .zip(rep_indexes)
                .map(|(s, i)| Work::Repartition(s, i)),
        )
        .collect();
    let names: Vec<String> = steps.iter().map(Work::name).collect();
    let results = run_steps(
        steps,
        plan.max_concurrent_partitions as usize,
        ctx,
        |work| async move {
            match work {
                Work::Partition(step, idx) => {
                    let (base, written) = resume
                        .get(&(step.target_topic.clone(), step.target_partition))
                        .copied()
                        .unwrap_or((0, 0));
                    restore_partition(plan, client, op, ctx, step, idx, base, written)
                        .await
                        .map(|(m, r, b)| (vec![m], r, b))
                }
                Work::Repartition(step, idx) => {
                    super::repartition::restore_repartitioned(
                        plan, client, op, ctx, step, idx, resume,
                    )
                    .await
                }
            }
        },
    )
    .await;
    fold_results(plan, names, results, journal_path)
}

/// After the data of every step is in (`done`: the offset map, records and bytes): the
/// timestamp types that would have re-stamped the records, the offset map, the journal marked
/// complete, then the consumer-group step (the journal says when every group was carried).
pub(super) async fn finish(
    plan: &RestorePlan,
    client: &KafkaClient,
    state: &Operator,
    ctx: &ExecContext,
    mut journal: RestoreJournal,
    (map, records, bytes): (OffsetMap, u64, u64),
) -> Result<RestoreOutcome, ExecError> {
    let journal_path = layout::restore_journal(&plan.backup_name, &plan.restore_name);
    // Timestamp types that would have re-stamped the records, set now that they are in.
    let after: BTreeMap<String, BTreeMap<String, String>> = plan
        .create_topics
        .iter()
        .filter(|t| !t.configs_after_data.is_empty())
        .map(|t| (t.name.clone(), t.configs_after_data.clone()))
        .collect();
    if !after.is_empty() {
        ctx.progress.emit(Event::StepStarted {
            step: "topic-configs".into(),
        });
        client.set_topic_configs(&after).await?;
    }
    storage::write_all(state, &plan.offset_map_path, to_json(&map)).await?;
    journal.complete = true;
    journal.records = records;
    journal.bytes = bytes;
    storage::write_all(state, &journal_path, to_json(&journal)).await?;
    let (groups, rollback) = match &plan.groups {
        Some(_) => {
            let r = group_step(plan, client, state, ctx, &map).await?;
            if r.0.iter().all(|g| g.ok()) {
                journal.groups_done = true;
                storage::write_all(state, &journal_path, to_json(&journal)).await?;
            }
            r
        }
        None => (vec![], None),
    };
    Ok(RestoreOutcome {
        records,
        bytes,
        offset_map: map,
        offset_map_path: plan.offset_map_path.clone(),
        already_complete: false,
        groups,
        rollback,
    })
}

/// The journal this attempt continues (a resumed one), or a new one written now (a fresh
/// start): the journal is written before the target is touched, so a state storage that
/// cannot be written (read-only, full, object-locked) fails here, with nothing created or
/// purged. Its empty base offsets say "targets not prepared yet".
pub(super) async fn open_journal(
    plan: &RestorePlan,
    start: &RestoreStart,
    state: &Operator,
    ctx: &ExecContext,
    journal_path: &str,
) -> Result<RestoreJournal, ExecError> {
    match start {
        RestoreStart::Resume(j) | RestoreStart::Complete(j) => {
            ctx.progress.emit(Event::StepStarted {
                step: "resume".into(),
            });
            Ok((**j).clone())
        }
        RestoreStart::Fresh { spec_hash } => {
            let journal = RestoreJournal {
                format: FORMAT.into(),
                spec_hash: spec_hash.clone(),
                plan: plan.clone(),
                base_offsets: vec![],
                complete: false,
                records: 0,
                bytes: 0,
                groups_done: false,
            };
            storage::write_all(state, journal_path, to_json(&journal))
                .await
                .map_err(|e| unwritable_state(journal_path, e))?;
            Ok(journal)
        }
    }
}

/// The log end offset of every target partition, as the journal's base offsets.
async fn base_offsets(
    client: &KafkaClient,
    targets: &[(String, i32)],
) -> Result<Vec<BaseOffset>, ExecError> {
    let leo = client.list_offsets(targets, OffsetSpec::Latest).await?;
    Ok(targets
        .iter()
        .map(|(t, p)| BaseOffset {
            topic: t.clone(),
            partition: *p,
            offset: leo.get(&(t.clone(), *p)).copied().unwrap_or(0),
        })
        .collect())
}

/// The error for a state storage the restore cannot write its journal to: nothing was
/// touched on the target yet, and the fix is `spec.stateStorage`.
pub(super) fn unwritable_state(path: &str, e: storage::StorageError) -> ExecError {
    ExecError::Input(format!(
        "the restore cannot write its state object {path} ({e}); nothing was written to the target cluster. A restore needs a place it may write for its journal, lock and offset map: give the credentials write access there, free space, or set spec.stateStorage to a writable storage so that the backup repository is only read"
    ))
}

/// The consumer-group step after the data (docs/offsets.md): the target's commits of the
/// groups are read, the step is compiled into an offset reset from the offset map `map`
/// ([`crate::plan::compile_restore_groups`]) and run by the code that runs a KafkaOffsetReset
/// ([`groups::snapshot_then_commit`]): the snapshot (`rollback.snapshotBeforeRestore`) is
/// written to the state storage `op`, every group is committed (a group with live members is
/// refused, the others go on), and with `autoRollbackOnFailure` the committed groups are put
/// back to the snapshot when any group was not carried over.
async fn group_step(
    plan: &RestorePlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
    map: &OffsetMap,
) -> Result<(Vec<groups::GroupResult>, Option<RollbackOutcome>), ExecError> {
    let Some(gp) = &plan.groups else {
        return Ok((vec![], None));
    };
    ctx.progress.emit(Event::StepStarted {
        step: "consumer-groups".into(),
    });
    let current = client
        .committed_groups(&crate::plan::restore_group_names(plan))
        .await?;
    let Some(reset) = crate::plan::compile_restore_groups(plan, map, &current) else {
        return Ok((vec![], None));
    };
    let now = (ctx.now_ms)();
    let expires_at = now + gp.snapshot_retention_hours as i64 * 3_600_000;
    let save = |doc: OffsetSnapshot| async move {
        let path = layout::restore_offset_snapshot(&plan.backup_name, &plan.restore_name, &doc.id);
        storage::write_all(op, &path, to_json(&doc)).await?;
        Ok(path)
    };
    let snapshot = groups::Snapshotting {
        taken_by: format!("KafkaRestore {}", plan.restore_name),
        expires_at: Some(expires_at),
        save,
    };
    let (out, rolled_back) = groups::snapshot_then_commit(
        &reset,
        client,
        now,
        Some(current),
        Some(snapshot),
        gp.auto_rollback,
    )
    .await?;
    log_group_results(&out.results);
    let rollback = out
        .snapshot
        .map(|(snapshot_id, snapshot_path)| RollbackOutcome {
            snapshot_id,
            snapshot_path,
            snapshot_time: now,
            expires_at,
            rolled_back,
        });
    Ok((out.results, rollback))
}

/// One log line per group of a restore's consumer-group step: info when carried over, warn
/// when not.
fn log_group_results(results: &[groups::GroupResult]) {
    for r in results {
        match r.outcome {
            groups::GroupOutcome::Committed
            | groups::GroupOutcome::Skipped
            | groups::GroupOutcome::DryRun => {
                tracing::info!(group = %r.group, outcome = ?r.outcome, partitions = r.partitions, message = r.message.as_deref().unwrap_or(""), "consumer group")
            }
            _ => {
                tracing::warn!(group = %r.group, outcome = ?r.outcome, message = r.message.as_deref().unwrap_or(""), "consumer group not carried over")
            }
        }
    }
}

/// Creates the target topics the plan creates and empties those it purges.
/// Creates and purges the target topics. `resumed`: an earlier attempt of this restore may
/// have created some of them already; those are left as they are.
async fn prepare_targets(
    plan: &RestorePlan,
    client: &KafkaClient,
    ctx: &ExecContext,
    resumed: bool,
) -> Result<(), ExecError> {
    if !plan.create_topics.is_empty() {
        ctx.progress.emit(Event::StepStarted {
            step: "create-topics".into(),
        });
        let existing = if resumed {
            let names: Vec<String> = plan.create_topics.iter().map(|t| t.name.clone()).collect();
            client.load_metadata(Some(&names)).await?.topics
        } else {
            Default::default()
        };
        let topics: Vec<NewTopic> = plan
            .create_topics
            .iter()
            .filter(|t| !existing.contains_key(&t.name))
            .map(|t| NewTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                configs: t.configs.clone(),
            })
            .collect();
        if !topics.is_empty() {
            client
                .create_topics(&topics, plan.produce_timeout_ms as i32)
                .await?;
        }
    }
    if !plan.purge.is_empty() {
        ctx.progress.emit(Event::StepStarted {
            step: "purge".into(),
        });
        let parts: Vec<(String, i32, i64)> = plan
            .purge
            .iter()
            .map(|(t, p)| (t.clone(), *p, -1))
            .collect();
        client
            .delete_records(&parts, plan.produce_timeout_ms as i32)
            .await?;
    }
    Ok(())
}

/// One task of a restore: a source partition into its target partition, or a whole
/// repartitioned topic.
enum Work {
    Partition(RestorePartitionStep, Vec<SegmentIndex>),
    Repartition(crate::plan::RepartitionStep, Vec<Vec<SegmentIndex>>),
}

impl Work {
    fn name(&self) -> String {
        match self {
            Work::Partition(s, _) => format!("{}/{}", s.source_topic, s.source_partition),
            Work::Repartition(r, _) => {
                format!("{} (repartitioned into {})", r.source_topic, r.target_topic)
            }
        }
    }
}

/// A Produce awaiting its reply, with the source offset ranges (inclusive) of its records.
type InFlight = (
    Reply<kafka_protocol::messages::ProduceRequest>,
    Vec<(i64, i64)>,
);

/// The target partition of one restore step: produces batches in order (up to [`IN_FLIGHT`]
/// awaiting their reply), skips the records an earlier attempt wrote, and builds the
/// partition's offset map from the replies.
struct Sink<'a> {
    conn: std::sync::Arc<crate::kafka::conn::Connection>,
    plan: &'a RestorePlan,
    topic: String,
    partition: i32,
    in_flight: VecDeque<InFlight>,
    map: PartitionOffsetMap,
    /// Records an earlier attempt already wrote here, still to be skipped.
    skip: u64,
    /// Target offset of the next record (known while skipping; from replies after).
    dst: i64,
}

impl<'a> Sink<'a> {
    /// A sink into the target partition of `step`, on a connection to its leader. `base` is
    /// the target's log end offset when the restore began and `written` the records earlier
    /// attempts put there.
    async fn open(
        plan: &'a RestorePlan,
        client: &KafkaClient,
        step: &RestorePartitionStep,
        base: i64,
        written: u64,
    ) -> Result<Sink<'a>, ExecError> {
        Ok(Sink {
            conn: client
                .leader_conn(&step.target_topic, step.target_partition)
                .await?,
            plan,
            topic: step.target_topic.clone(),
            partition: step.target_partition,
            in_flight: VecDeque::new(),
            map: PartitionOffsetMap {
                source_topic: step.source_topic.clone(),
                source_partition: step.source_partition,
                target_topic: step.target_topic.clone(),
                target_partition: step.target_partition,
                ranges: vec![],
                target_end: None,
                repartition: None,
            },
            skip: written,
            dst: base,
        })
    }

    /// Queues one batch; `src` lists the source offset ranges (inclusive) of its records in
    /// order.
    async fn send(&mut self, batch: Bytes, src: Vec<(i64, i64)>) -> Result<(), ExecError> {
        if self.skip > 0 {
            let n: u64 = src.iter().map(|(a, b)| (b - a + 1) as u64).sum();
            if n > self.skip {
                return Err(replay::split_batch(self.plan, &self.topic, self.partition));
            }
            self.skip -= n;
            self.record_written(self.dst, src);
            return Ok(());
        }
        if self.in_flight.len() >= IN_FLIGHT {
            self.complete_one().await?;
        }
        if self.plan.produce_acks == 0 {
            // No reply, so no offsets: the map cannot be written for acks=0 (documented).
            KafkaClient::produce_no_ack(
                &self.conn,
                &self.topic,
                self.partition,
                batch,
                self.plan.produce_timeout_ms as i32,
            )
            .await?;
            return Ok(());
        }
        let reply = KafkaClient::produce_enqueue(
            &self.conn,
            &self.topic,
            self.partition,
            batch,
            self.plan.produce_acks,
            self.plan.produce_timeout_ms as i32,
        )
        .await?;
        self.in_flight.push_back((reply, src));
        Ok(())
    }
    async fn complete_one(&mut self) -> Result<(), ExecError> {
        let Some((reply, src)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let base = produce_result(reply.wait().await?, &self.topic, self.partition)?;
        self.record_written(base, src);
        Ok(())
    }
    /// Maps the source ranges of one batch written at target offset `base`.
    fn record_written(&mut self, base: i64, src: Vec<(i64, i64)>) {
        let mut dst = base;
        for (a, b) in src {
            if self.plan.produce_acks != 0 {
                self.map.push_range(a, b, dst);
            }
            dst += b - a + 1;
        }
        self.dst = dst;
    }
    /// Waits for every reply; then every record an earlier attempt wrote must have been
    /// skipped (more records there: something else wrote to the partition).
    async fn finish(&mut self) -> Result<(), ExecError> {
        while !self.in_flight.is_empty() {
            self.complete_one().await?;
        }
        if self.skip > 0 {
            return Err(replay::extra_records(
                self.plan,
                &self.topic,
                self.partition,
                self.skip,
            ));
        }
        Ok(())
    }
}

/// Where the replay of one source partition stands.
struct Replayed {
    /// The next source offset not yet restored: batches repeated across runs or segments are
    /// skipped, so nothing is produced twice.
    next: i64,
    /// Records and bytes restored so far (earlier attempts' included).
    records: u64,
    bytes: u64,
}

/// Restores one source partition into its target partition. `base` is the target's log end
/// offset when the restore began and `written` the records earlier attempts put there.
#[allow(clippy::too_many_arguments)]
async fn restore_partition(
    plan: &RestorePlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
    step: RestorePartitionStep,
    indexes: Vec<SegmentIndex>,
    base: i64,
    written: u64,
) -> Result<(PartitionOffsetMap, u64, u64), ExecError> {
    let name = format!(
        "{}/{} -> {}/{}",
        step.source_topic, step.source_partition, step.target_topic, step.target_partition
    );
    ctx.progress.emit(Event::StepStarted { step: name.clone() });
    let txns = TxnOutcomes::new(indexes.iter().flat_map(|i| i.markers.iter().cloned()));
    let mut sink = Sink::open(plan, client, &step, base, written).await?;
    let window = Window::of(plan);
    let mut at = Replayed {
        next: step.from,
        records: 0,
        bytes: 0,
    };
    for (seg, idx) in step.segments.iter().zip(&indexes) {
        let wanted = wanted_blocks(&idx.blocks, at.next, step.to, window);
        let skipped = skip_written_blocks(&mut sink, &mut at, &wanted, step.to, window, ctx);
        for group in contiguous(&wanted[skipped..]) {
            if ctx.cancel.is_cancelled() {
                return Err(ExecError::Cancelled);
            }
            for b in segment_io::read_blocks(op, seg, &ctx.run_keys, &group).await? {
                if txns.replays(&b.header, &mut at.next, step.to) {
                    replay_batch(&mut sink, &mut at, &b, step.to, window, ctx).await?;
                }
            }
        }
    }
    sink.finish().await?;
    ctx.progress.emit(Event::StepDone {
        step: name,
        records: at.records,
        bytes: at.bytes,
    });
    if plan.produce_acks != 0 {
        sink.map.target_end = Some(sink.dst);
    }
    Ok((sink.map, at.records, at.bytes))
}

/// A resumed attempt skips the leading blocks of `wanted` that an earlier attempt wrote whole,
/// without reading them: a block of offsets first..=last holding exactly last - first + 1
/// records (no compaction gap, no control batch), no transaction and no window keeps every
/// record. They count as restored (bytes as stored). Returns how many blocks were skipped.
fn skip_written_blocks(
    sink: &mut Sink<'_>,
    at: &mut Replayed,
    wanted: &[&BlockIndex],
    to: i64,
    window: Window,
    ctx: &ExecContext,
) -> usize {
    let mut skipped = 0;
    for b in wanted {
        let span = (b.last_offset - b.first_offset + 1) as u64;
        let whole = sink.skip >= b.records
            && b.records == span
            && !b.transactional
            && window.is_open()
            && b.first_offset >= at.next
            && b.last_offset < to;
        if !whole {
            break;
        }
        sink.skip -= b.records;
        sink.record_written(sink.dst, vec![(b.first_offset, b.last_offset)]);
        at.records += b.records;
        at.bytes += b.len.saturating_sub(20);
        ctx.progress.add(b.records, 0);
        at.next = b.last_offset + 1;
        skipped += 1;
    }
    skipped
}

/// Restores one stored batch `b` that the restore replays (records from `at.next` below `to`,
/// in `window`): passed through as stored when all of its records are kept and it needs no
/// rewrite, else its kept records re-encoded in batches of `produceBatchSize`. The rate
/// limits are taken for what is produced, not for what an earlier attempt wrote.
async fn replay_batch(
    sink: &mut Sink<'_>,
    at: &mut Replayed,
    b: &batch::RawBatch,
    to: i64,
    window: Window,
    ctx: &ExecContext,
) -> Result<(), ExecError> {
    let h = b.header;
    let whole = h.base_offset >= at.next
        && h.last_offset() < to
        && batch::can_pass_through(&h)
        && (window.is_open() || {
            let min = batch::min_timestamp(b)?;
            window.contains(min) && window.contains(h.max_timestamp)
        });
    if whole {
        let n = h.record_count as u64;
        if sink.skip == 0 {
            ctx.limits.take(b.bytes.len() as u64, n).await;
        }
        sink.send(
            batch::rewrite_for_produce(b)?,
            vec![(h.base_offset, h.last_offset())],
        )
        .await?;
        at.records += n;
        at.bytes += b.bytes.len() as u64;
        ctx.progress.add(n, b.bytes.len() as u64);
    } else {
        let next = at.next;
        let keep: Vec<Record> = batch::decode_records(b)?
            .into_iter()
            .filter(|r| r.offset >= next && r.offset < to && window.contains(r.timestamp))
            .collect();
        let codec = b.producer_codec()?;
        for chunk in keep.chunks(sink.plan.produce_batch_records.max(1) as usize) {
            let encoded = batch::encode_batch(chunk, codec)?;
            if sink.skip == 0 {
                ctx.limits
                    .take(encoded.len() as u64, chunk.len() as u64)
                    .await;
            }
            let src = chunk.iter().map(|r| (r.offset, r.offset)).collect();
            at.bytes += encoded.len() as u64;
            sink.send(encoded, src).await?;
            at.records += chunk.len() as u64;
            ctx.progress.add(chunk.len() as u64, 0);
        }
    }
    at.next = at.next.max(h.next_offset());
    Ok(())
}
