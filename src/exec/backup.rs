//! Executing a [`BackupPlan`]: one task per partition fetching record batches and streaming
//! them into segments, checkpoint documents gathering what changed (at most one a second, or
//! one per [`FLUSH_PARTITIONS`] changed partitions), group snapshot, then the manifest.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use opendal::Operator;
use tokio::sync::Mutex;

use super::ExecError;
use super::engine::{Event, ExecContext, run_steps};
use crate::format::batch::{Codec, RawBatch};
use crate::format::checkpoint::{self, CheckpointWriter, WriteStats};
use crate::format::layout::{self, FORMAT};
use crate::format::manifest::{
    Gap, GroupOffset, GroupSnapshot, ObjectLockRecord, PartitionManifest, PartitionProgress,
    ProgressChange, RunManifest, SegmentRef, TopicManifest, to_json,
};
use crate::format::segment::Outer;
use crate::format::segment_io::SegmentWriter;
use crate::kafka::ops::{FetchStream, OffsetSpec};
use crate::kafka::{KafkaClient, KafkaError};
use crate::plan::{BackupPartitionStep, BackupPlan, CutMode};
use crate::storage;

/// Fetch size asked for per request (16 MiB). Brokers may send more (noida-db does).
const FETCH_MAX_BYTES: i32 = 16 << 20;

/// Most often a checkpoint document is written on its own (ms): changes are gathered in
/// between, and a change waits at most about this long (plus [`FLUSH_TICK_MS`]).
const FLUSH_INTERVAL_MS: u64 = 1000;
/// Changed partitions that get a checkpoint document written at once.
const FLUSH_PARTITIONS: usize = 1000;
/// How often pending changes are looked at when no partition changes.
const FLUSH_TICK_MS: u64 = 250;

/// The checkpoint of the run: changes not yet written, and the writer of its documents.
pub(super) struct Checkpointing {
    pending: std::sync::Mutex<BTreeMap<String, ProgressChange>>,
    writer: Mutex<CheckpointWriter>,
    last_write: std::sync::Mutex<Instant>,
}

impl Checkpointing {
    /// Whether a document is due: enough partitions changed, or the interval has passed.
    fn due(&self) -> bool {
        let n = self.pending.lock().unwrap().len();
        n >= FLUSH_PARTITIONS
            || (n > 0
                && self.last_write.lock().unwrap().elapsed()
                    >= Duration::from_millis(FLUSH_INTERVAL_MS))
    }
}

pub(super) struct Shared<'a> {
    pub(super) plan: &'a BackupPlan,
    pub(super) client: &'a KafkaClient,
    pub(super) op: &'a Operator,
    pub(super) ctx: &'a ExecContext,
    /// None when checkpointing is disabled.
    pub(super) checkpoint: Option<Checkpointing>,
    /// The run's data key when the repository is encrypted (`storage.encryption`).
    pub(super) data_key: Option<std::sync::Arc<crate::format::seal::DataKey>>,
}

impl Shared<'_> {
    /// Records a change of partition `key`'s progress; writes the pending changes when a
    /// document is due. A segment is part of the repository once a written document names it.
    async fn record(&self, key: String, change: ProgressChange) -> Result<(), ExecError> {
        let Some(cp) = &self.checkpoint else {
            return Ok(());
        };
        add_change(&mut cp.pending.lock().unwrap(), key, change);
        if cp.due() {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Writes the pending changes as one checkpoint document (`force`: even when none is due).
    /// On error the changes stay pending, ahead of newer ones.
    async fn flush(&self, force: bool) -> Result<(), ExecError> {
        let Some(cp) = &self.checkpoint else {
            return Ok(());
        };
        let mut w = cp.writer.lock().await;
        if !force && !cp.due() {
            return Ok(());
        }
        let changes = std::mem::take(&mut *cp.pending.lock().unwrap());
        if changes.is_empty() {
            return Ok(());
        }
        match w.write(self.op, &changes, (self.ctx.now_ms)()).await {
            Ok(path) => {
                *cp.last_write.lock().unwrap() = Instant::now();
                drop(w);
                self.ctx.progress.emit(Event::CheckpointWritten { path });
                Ok(())
            }
            Err(e) => {
                let mut p = cp.pending.lock().unwrap();
                let later = std::mem::replace(&mut *p, changes);
                for (key, change) in later {
                    add_change(&mut p, key, change);
                }
                Err(e.into())
            }
        }
    }

    /// Writes pending changes every [`FLUSH_TICK_MS`] when due, so that a change is written
    /// even when no other follows, until `stop` fires (never in the middle of a write: a
    /// write cut short could leave a document the writer does not know it wrote). A failed
    /// write is retried at the next tick (a partition's own writes report their failure).
    async fn flush_ticker(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(FLUSH_TICK_MS)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.flush(false).await {
                tracing::warn!(error = %e, "checkpoint not written; trying again");
            }
        }
    }

    /// What the checkpoint writer has written.
    async fn checkpoint_stats(&self) -> WriteStats {
        match &self.checkpoint {
            Some(cp) => cp.writer.lock().await.stats(),
            None => WriteStats::default(),
        }
    }
}

/// Adds `change` to the pending changes, after a pending change of the same partition.
fn add_change(pending: &mut BTreeMap<String, ProgressChange>, key: String, change: ProgressChange) {
    match pending.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().then(change),
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(change);
        }
    }
}

/// The starting progress of a checkpoint over `steps`: the segments a resumed run keeps.
pub(super) fn resumed_progress(
    steps: &[BackupPartitionStep],
) -> BTreeMap<String, PartitionProgress> {
    steps
        .iter()
        .filter(|s| !s.resumed_segments.is_empty())
        .map(|s| {
            let p = PartitionProgress {
                next_offset: s.start_offset,
                segments: s.resumed_segments.clone(),
                gaps: vec![],
                done: false,
            };
            (format!("{}/{}", s.topic, s.partition), p)
        })
        .collect()
}

/// Runs a backup plan to completion and returns the manifest it wrote, holding the
/// repository lock (`exec::lock`) throughout: a second writer is refused.
///
/// Errors: the first partition error (others are cancelled with it); the checkpoint stays,
/// so running the same backup again resumes. On cancellation a `continuous` run completes
/// normally with what it has; other runs return [`ExecError::Cancelled`].
pub async fn run_backup(
    plan: &BackupPlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<RunManifest, ExecError> {
    let lock = super::lock::Lock::acquire(
        op,
        &layout::backup_lock(&plan.backup_name),
        &format!("backup run {}", plan.run_id),
    )
    .await?;
    lock.hold(run_backup_locked(plan, client, op, ctx)).await
}

async fn run_backup_locked(
    plan: &BackupPlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<RunManifest, ExecError> {
    let start_time = (ctx.now_ms)();
    claim(plan, op, ctx, start_time).await?;
    let writer = plan.checkpoint_interval_ms.map(|_| {
        CheckpointWriter::new(
            &plan.backup_name,
            &plan.run_id,
            &plan.hash,
            resumed_progress(&plan.partitions),
        )
    });
    let checkpoint = start_checkpoint(writer, op, ctx).await?;
    // An encrypted run's data key is wrapped and stored before any data it encrypts, and after
    // the run's first checkpoint document, so that a key document always belongs to a run the
    // next attempt resumes (a resumed run unwraps the one its first attempt stored).
    let data_key = data_key_for_writing(plan, op, ctx, start_time).await?;
    let shared = Shared {
        plan,
        client,
        op,
        ctx,
        checkpoint,
        data_key,
    };
    // Group offsets right after the cut was read, before data is fetched: committed offsets
    // are then <= the cut, so every snapshot offset is restorable.
    let groups = if plan.consumer_group_snapshot {
        snapshot_groups(plan, client).await?
    } else {
        vec![]
    };
    let parts = run_partitions(&shared, plan.partitions.clone()).await?;
    let manifest = assemble_manifest(plan, parts, groups, start_time, (ctx.now_ms)());
    commit_manifest(plan, op, ctx, shared.data_key.as_deref(), manifest).await
}

/// Before anything is written: claims the repository for the plan's KafkaBackup (or adopts
/// it now, `exec::repository::claim`) and tells the progress what the plan estimates.
pub(super) async fn claim(
    plan: &BackupPlan,
    op: &Operator,
    ctx: &ExecContext,
    now_ms: i64,
) -> Result<(), ExecError> {
    let owner = (&plan.owner, plan.adopt_from.as_ref());
    super::repository::claim(op, &plan.backup_name, owner.0, owner.1, now_ms).await?;
    announce_plan(plan, ctx);
    Ok(())
}

/// Tells the progress what the plan estimates (records, bytes).
fn announce_plan(plan: &BackupPlan, ctx: &ExecContext) {
    announce(plan.estimated_records, plan.estimated_bytes, ctx);
}

/// Tells the progress the records and bytes a run (or a shard) expects to move.
pub(super) fn announce(records: u64, bytes: u64, ctx: &ExecContext) {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    ctx.progress.records_planned.store(records, relaxed);
    ctx.progress.bytes_planned.store(bytes, relaxed);
}

/// Starts a checkpoint writer (None: checkpointing disabled) with its first document.
pub(super) async fn start_checkpoint(
    writer: Option<CheckpointWriter>,
    op: &Operator,
    ctx: &ExecContext,
) -> Result<Option<Checkpointing>, ExecError> {
    let Some(mut w) = writer else {
        return Ok(None);
    };
    let path = w.start(op, (ctx.now_ms)()).await?;
    ctx.progress.emit(Event::CheckpointWritten { path });
    Ok(Some(Checkpointing {
        pending: Default::default(),
        writer: Mutex::new(w),
        last_write: std::sync::Mutex::new(Instant::now()),
    }))
}

/// The run's data key when the repository is encrypted: the one an earlier attempt (or the
/// coordinator of a sharded run) stored, else a fresh one, stored before any data it encrypts.
pub(super) async fn data_key_for_writing(
    plan: &BackupPlan,
    op: &Operator,
    ctx: &ExecContext,
    start_time: i64,
) -> Result<Option<std::sync::Arc<crate::format::seal::DataKey>>, ExecError> {
    let Some(k) = &ctx.keyring else {
        return Ok(None);
    };
    let resumed_sealed =
        (plan.partitions.iter()).any(|p| p.resumed_segments.iter().any(|s| s.seal.is_some()));
    let run = (&plan.backup_name, &plan.run_id);
    Ok(Some(
        k.data_key_for_writing(op, run.0, run.1, start_time, resumed_sealed)
            .await?,
    ))
}

/// Backs up `steps` (the whole plan's, or a shard's), `max_concurrent_partitions` at a time,
/// writing the checkpoint as they progress; returns each partition's manifest with its topic,
/// in the order of `steps`.
///
/// Errors: the first partition error (others are cancelled with it), after the finished
/// partitions' progress was written to the checkpoint for the next attempt.
pub(super) async fn run_partitions(
    shared: &Shared<'_>,
    steps: Vec<BackupPartitionStep>,
) -> Result<Vec<(String, PartitionManifest)>, ExecError> {
    let steps = run_steps(
        steps,
        shared.plan.max_concurrent_partitions as usize,
        shared.ctx,
        |step| async move { backup_partition(shared, step).await },
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let steps = async {
        let r = steps.await;
        let _ = stop_tx.send(true);
        r
    };
    let (results, ()) = tokio::join!(steps, shared.flush_ticker(stop));
    let mut parts = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Ok(p) => parts.push(p),
            Err(e) => {
                if first_err.is_none() || matches!(first_err, Some(ExecError::Cancelled)) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        // What the finished partitions did is kept for the next attempt.
        if let Err(fe) = shared.flush(true).await {
            tracing::warn!(error = %fe, "the last checkpoint changes were not written");
        }
        return Err(e);
    }
    let stats = shared.checkpoint_stats().await;
    tracing::debug!(
        documents = stats.documents,
        bases = stats.bases,
        bytes = stats.bytes,
        "checkpoint documents written"
    );
    Ok(parts)
}

/// Seals `manifest` (encrypted repository: under `data_key`), writes it (the run is complete
/// from here on) and deletes the run's checkpoint, which the manifest makes redundant.
pub(super) async fn commit_manifest(
    plan: &BackupPlan,
    op: &Operator,
    ctx: &ExecContext,
    data_key: Option<&crate::format::seal::DataKey>,
    mut manifest: RunManifest,
) -> Result<RunManifest, ExecError> {
    if let (Some(k), Some(dek)) = (&ctx.keyring, data_key) {
        crate::format::keyring::seal_manifest(dek, &k.active(), &mut manifest);
    }
    storage::write_all(
        op,
        &layout::manifest(&plan.backup_name, &plan.run_id),
        to_json(&manifest),
    )
    .await?;
    // The manifest names everything now: the checkpoint (all its documents) is not needed.
    if let Err(e) = checkpoint::delete_all(op, &plan.backup_name, &plan.run_id).await {
        tracing::warn!(error = %e, "the finished run's checkpoint was not deleted");
    }
    Ok(manifest)
}

/// The run's manifest from the partitions' results (in plan order), grouped by topic in one
/// pass.
pub(super) fn assemble_manifest(
    plan: &BackupPlan,
    parts: Vec<(String, PartitionManifest)>,
    groups: Vec<GroupSnapshot>,
    start_time: i64,
    completion_time: i64,
) -> RunManifest {
    let mut by_topic: HashMap<String, Vec<PartitionManifest>> = HashMap::new();
    for (topic, p) in parts {
        by_topic.entry(topic).or_default().push(p);
    }
    let topics = plan
        .topics
        .iter()
        .map(|t| TopicManifest {
            name: t.name.clone(),
            topic_id: t.topic_id.clone(),
            partition_count: t.partition_count,
            configs: t.configs.clone(),
            partitions: by_topic.remove(&t.name).unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let all = || topics.iter().flat_map(|t| &t.partitions);
    let object_lock = (plan.object_lock.as_ref()).map(|l| {
        let mode = crate::storage::object_lock::mode_name(l.mode);
        ObjectLockRecord::for_run(mode, l.retain_days, &plan.run_id, start_time, &topics)
    });
    RunManifest {
        format: FORMAT.into(),
        backup_name: plan.backup_name.clone(),
        run_id: plan.run_id.clone(),
        previous_run_id: plan.previous_run_id.clone(),
        start_time,
        completion_time,
        plan_hash: plan.hash.clone(),
        cluster_id: plan.cluster_id.clone(),
        compression: plan.compression.clone(),
        total_records: all().map(|p| p.records).sum(),
        total_raw_bytes: all().map(|p| p.raw_bytes).sum(),
        topics,
        consumer_groups: groups,
        object_lock,
        seal: None,
    }
}

pub(super) async fn snapshot_groups(
    plan: &BackupPlan,
    client: &KafkaClient,
) -> Result<Vec<GroupSnapshot>, ExecError> {
    let topics: HashSet<&str> = plan.topics.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::new();
    for g in client.list_groups().await? {
        let offsets: Vec<GroupOffset> = client
            .committed_offsets(&g)
            .await?
            .into_iter()
            .filter(|((t, _), _)| topics.contains(t.as_str()))
            .map(
                |((topic, partition), (offset, leader_epoch, metadata))| GroupOffset {
                    topic,
                    partition,
                    offset,
                    leader_epoch,
                    metadata,
                },
            )
            .collect();
        if !offsets.is_empty() {
            out.push(GroupSnapshot {
                group_id: g,
                offsets,
            });
        }
    }
    Ok(out)
}

/// The segments' compression for `compression`: `zstd` re-compresses producer batches of a
/// weaker codec too; `keep` is zstd for uncompressed batches and producer batches as fetched.
fn outer(plan: &BackupPlan) -> Outer {
    let codec = match plan.compression.as_str() {
        "zstd" | "keep" => Codec::Zstd,
        "lz4" => Codec::Lz4,
        _ => Codec::None,
    };
    Outer {
        codec,
        level: plan.compression_level,
        recompress: plan.compression == "zstd",
    }
}

/// Backs up one partition (`step`): fetches from its start offset up to its cut, writes the
/// batches to segments (a segment is closed at `segmentMaxBytes`, and at `segmentMaxInterval`
/// or the checkpoint interval), records its progress and returns its manifest. A cancelled
/// run stops here (a continuous one ends its partition cleanly, keeping what it wrote).
async fn backup_partition(
    sh: &Shared<'_>,
    step: BackupPartitionStep,
) -> Result<(String, PartitionManifest), ExecError> {
    let (plan, client, ctx) = (sh.plan, sh.client, sh.ctx);
    let mut run = PartitionRun::start(sh, step);
    let cut = run.step.cut;
    let rotate_after = Duration::from_millis(
        plan.checkpoint_interval_ms
            .map_or(plan.segment_max_interval_ms, |c| {
                c.min(plan.segment_max_interval_ms)
            }),
    );
    let max_wait = if cut == CutMode::Never { 500 } else { 100 };
    let mut empty_fetches = 0u32;
    let mut stream_errors = 0u32;
    let mut max_bytes = FETCH_MAX_BYTES;
    loop {
        if ctx.cancel.is_cancelled() {
            if cut == CutMode::Never {
                break;
            }
            if let Some(w) = run.writer.take() {
                w.abort().await;
            }
            return Err(ExecError::Cancelled);
        }
        if let CutMode::At(c) = cut
            && run.next >= c
        {
            break;
        }
        let (topic, partition) = (&run.step.topic, run.step.partition);
        let mut fetched = match client
            .fetch_stream(topic, partition, run.next, max_bytes, max_wait)
            .await
        {
            Err(KafkaError::Broker { code: 1, .. }) => {
                run.skip_deleted().await?;
                continue;
            }
            r => r?,
        };
        let progressed = run.drain(&mut fetched, &mut stream_errors).await?;
        if run
            .writer
            .as_ref()
            .is_some_and(|w| !w.is_empty() && w.opened_at.elapsed() >= rotate_after)
        {
            run.close_segment().await?;
        }
        if progressed {
            stream_errors = 0;
            empty_fetches = 0;
            max_bytes = FETCH_MAX_BYTES;
            continue;
        }
        if fetched.truncated() {
            // Only a partial batch came back: the batch at `next` is larger than asked for.
            max_bytes = max_bytes.saturating_mul(2);
            continue;
        }
        match cut {
            CutMode::CaughtUp if run.next >= fetched.high_watermark => break,
            CutMode::At(_) if run.next >= fetched.high_watermark => break,
            CutMode::Never => {}
            _ => {
                // Below the high watermark yet nothing returned: offsets removed by compaction
                // or transaction aborts at the end of the log. Give it a few tries.
                empty_fetches += 1;
                if empty_fetches > 20 {
                    run.gaps.push(Gap {
                        from: run.next,
                        to: fetched.high_watermark,
                        reason: "broker returned no batches below the high watermark".into(),
                    });
                    run.next = fetched.high_watermark;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    run.finish().await
}

/// One partition's backup in progress: where it stands, the segment being written, and what
/// this run stored.
struct PartitionRun<'s> {
    sh: &'s Shared<'s>,
    step: BackupPartitionStep,
    /// `<topic>/<partition>`, the step's name in progress events.
    name: String,
    /// The next offset to back up.
    next: i64,
    writer: Option<SegmentWriter>,
    /// The segments of this run (a resumed attempt's first).
    new_segments: Vec<SegmentRef>,
    gaps: Vec<Gap>,
    records: u64,
    bytes: u64,
}

impl<'s> PartitionRun<'s> {
    /// Starts the step: its resumed segments and carried gaps, and the gap before its start
    /// offset (retention deleted records since the last run), announced.
    fn start(sh: &'s Shared<'s>, step: BackupPartitionStep) -> PartitionRun<'s> {
        let name = format!("{}/{}", step.topic, step.partition);
        sh.ctx
            .progress
            .emit(Event::StepStarted { step: name.clone() });
        let mut gaps: Vec<Gap> = step.carried_gaps.clone();
        if let Some(g) = &step.gap {
            sh.ctx.progress.emit(Event::Gap {
                step: name.clone(),
                from: g.from,
                to: g.to,
            });
            gaps.push(g.clone());
        }
        PartitionRun {
            sh,
            new_segments: step.resumed_segments.clone(),
            next: step.start_offset,
            step,
            name,
            writer: None,
            gaps,
            records: 0,
            bytes: 0,
        }
    }

    /// OFFSET_OUT_OF_RANGE at `next`: retention moved the log start past it during the backup.
    /// The offsets up to the new log start are a gap, and the backup goes on from there.
    ///
    /// Errors: the log start is not past `next` (nothing explains the refusal).
    async fn skip_deleted(&mut self) -> Result<(), ExecError> {
        let parts = [(self.step.topic.clone(), self.step.partition)];
        let earliest = self
            .sh
            .client
            .list_offsets(&parts, OffsetSpec::Earliest)
            .await?
            .get(&parts[0])
            .copied()
            .unwrap_or(self.next);
        if earliest > self.next {
            self.sh.ctx.progress.emit(Event::Gap {
                step: self.name.clone(),
                from: self.next,
                to: earliest,
            });
            self.gaps.push(Gap {
                from: self.next,
                to: earliest,
                reason: "deleted by retention during the backup".into(),
            });
            self.next = earliest;
            return Ok(());
        }
        Err(ExecError::Failed(format!(
            "{}: offset {} is out of range (log start {earliest})",
            self.name, self.next
        )))
    }

    /// Stores the batches of one Fetch response from `next` on, up to the cut; true when it
    /// stored any. A connection that breaks mid-response (a retriable error, at most 5 times
    /// in a row: `stream_errors`) ends the response early: what was stored stays, and the next
    /// Fetch starts from `next` on a fresh connection, leaders refreshed.
    async fn drain(
        &mut self,
        fetched: &mut FetchStream,
        stream_errors: &mut u32,
    ) -> Result<bool, ExecError> {
        let mut progressed = false;
        loop {
            let b = match fetched.next_batch().await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) if e.is_retriable() && *stream_errors < 5 => {
                    *stream_errors += 1;
                    tracing::warn!(step = %self.name, error = %e, "fetch interrupted, retrying");
                    let _ = self.sh.client.refresh_metadata().await;
                    tokio::time::sleep(Duration::from_millis(200 * *stream_errors as u64)).await;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let h = &b.header;
            if h.last_offset() < self.next {
                continue;
            }
            if let CutMode::At(c) = self.step.cut
                && h.base_offset >= c
            {
                // Offsets next..c hold nothing (compaction): the cut is reached.
                self.next = self.next.max(c);
                break;
            }
            self.store(&b).await?;
            progressed = true;
        }
        Ok(progressed)
    }

    /// Writes one batch to the open segment (opening one at the batch's offset when none is)
    /// within the rate limits, counts it, and closes the segment at `segmentMaxBytes`.
    async fn store(&mut self, b: &RawBatch) -> Result<(), ExecError> {
        let (plan, ctx) = (self.sh.plan, self.sh.ctx);
        let h = &b.header;
        let records = if h.is_control() {
            0
        } else {
            h.record_count.max(0) as u64
        };
        ctx.limits.take(b.bytes.len() as u64, records).await;
        if self.writer.is_none() {
            self.writer = Some(
                SegmentWriter::create(
                    self.sh.op,
                    &plan.backup_name,
                    &plan.run_id,
                    &self.step.topic,
                    self.step.partition,
                    h.base_offset,
                    outer(plan),
                    self.sh.data_key.as_deref(),
                )
                .await?,
            );
        }
        let w = self.writer.as_mut().expect("opened above");
        w.push(b).await?;
        self.next = h.next_offset();
        self.records += records;
        self.bytes += b.bytes.len() as u64;
        ctx.progress.add(records, b.bytes.len() as u64);
        if w.raw_bytes() >= plan.segment_max_bytes {
            self.close_segment().await?;
        }
        Ok(())
    }

    /// Closes the open segment, if any, and records it ([`finish_segment`]).
    async fn close_segment(&mut self) -> Result<(), ExecError> {
        if let Some(w) = self.writer.take() {
            let seg = w.finish(self.sh.op).await?;
            let (segments, gaps) = (&mut self.new_segments, &self.gaps);
            finish_segment(self.sh, &self.name, seg, segments, self.next, gaps).await?;
        }
        Ok(())
    }

    /// Ends the step: the open segment closed (dropped when empty), the partition recorded as
    /// done, and its manifest: the carried segments of earlier runs, then this run's.
    async fn finish(mut self) -> Result<(String, PartitionManifest), ExecError> {
        match self.writer.take() {
            Some(w) if w.is_empty() => w.abort().await,
            Some(w) => {
                self.writer = Some(w);
                self.close_segment().await?;
            }
            None => {}
        }
        let (sh, step, next, gaps) = (self.sh, self.step, self.next, self.gaps);
        sh.record(
            self.name.clone(),
            ProgressChange {
                next_offset: next,
                first_segment: self.new_segments.len() as u64,
                segments: vec![],
                gaps: gaps.clone(),
                done: true,
            },
        )
        .await?;
        sh.ctx.progress.emit(Event::StepDone {
            step: self.name,
            records: self.records,
            bytes: self.bytes,
        });
        let mut segments = step.carried_segments.clone();
        segments.extend(self.new_segments);
        let with_data: Vec<&SegmentRef> = segments
            .iter()
            .filter(|s| s.records > 0 && s.min_timestamp >= 0)
            .collect();
        let manifest = PartitionManifest {
            partition: step.partition,
            log_start_offset: step.log_start_offset,
            covered_from: step.covered_from,
            cut: next,
            start_offset: step.start_offset,
            records: segments.iter().map(|s| s.records).sum(),
            raw_bytes: segments.iter().map(|s| s.raw_bytes).sum(),
            min_timestamp: with_data.iter().map(|s| s.min_timestamp).min(),
            max_timestamp: with_data.iter().map(|s| s.max_timestamp).max(),
            gaps,
            segments,
        };
        Ok((step.topic, manifest))
    }
}

async fn finish_segment(
    sh: &Shared<'_>,
    name: &str,
    seg: SegmentRef,
    segments: &mut Vec<SegmentRef>,
    next: i64,
    gaps: &[Gap],
) -> Result<(), ExecError> {
    sh.ctx.progress.emit(Event::SegmentWritten {
        path: seg.path.clone(),
        bytes: seg.stored_bytes,
    });
    let change = ProgressChange {
        next_offset: next,
        first_segment: segments.len() as u64,
        segments: vec![seg.clone()],
        gaps: gaps.to_vec(),
        done: false,
    };
    segments.push(seg);
    sh.record(name.to_string(), change).await
}
