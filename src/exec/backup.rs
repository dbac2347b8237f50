//! Executing a [`BackupPlan`]: one task per partition fetching record batches and streaming
//! them into segments, checkpoints after every segment, group snapshot, then the manifest.
use std::time::Duration;

use opendal::Operator;
use tokio::sync::Mutex;

use super::ExecError;
use super::engine::{Event, ExecContext, run_steps};
use crate::format::batch::Codec;
use crate::format::layout::{self, FORMAT};
use crate::format::manifest::{
    Checkpoint, Gap, GroupOffset, GroupSnapshot, PartitionManifest, PartitionProgress, RunManifest,
    SegmentRef, TopicManifest, to_json,
};
use crate::format::segment::{Outer, SegmentWriter};
use crate::kafka::ops::OffsetSpec;
use crate::kafka::{KafkaClient, KafkaError};
use crate::plan::{BackupPartitionStep, BackupPlan, CutMode};
use crate::storage;

/// Fetch size asked for per request (16 MiB). Brokers may send more (noida-db does).
const FETCH_MAX_BYTES: i32 = 16 << 20;

struct Shared<'a> {
    plan: &'a BackupPlan,
    client: &'a KafkaClient,
    op: &'a Operator,
    ctx: &'a ExecContext,
    checkpoint: Mutex<Checkpoint>,
}

impl Shared<'_> {
    async fn save_progress(
        &self,
        key: String,
        progress: PartitionProgress,
    ) -> Result<(), ExecError> {
        if self.plan.checkpoint_interval_ms.is_none() {
            return Ok(());
        }
        // The lock is held across the write: checkpoint writes of different partitions must
        // not interleave on the same object.
        let mut c = self.checkpoint.lock().await;
        c.partitions.insert(key, progress);
        c.updated_at = (self.ctx.now_ms)();
        let path = layout::checkpoint(&self.plan.backup_name, &self.plan.run_id);
        storage::write_all(self.op, &path, to_json(&*c)).await?;
        drop(c);
        self.ctx.progress.emit(Event::CheckpointWritten { path });
        Ok(())
    }
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
    ctx.progress
        .records_planned
        .store(plan.estimated_records, std::sync::atomic::Ordering::Relaxed);
    ctx.progress
        .bytes_planned
        .store(plan.estimated_bytes, std::sync::atomic::Ordering::Relaxed);
    let mut checkpoint = Checkpoint {
        format: FORMAT.into(),
        run_id: plan.run_id.clone(),
        plan_hash: plan.hash.clone(),
        ..Default::default()
    };
    if plan.resumed
        && let Some(b) =
            storage::read_opt(op, &layout::checkpoint(&plan.backup_name, &plan.run_id)).await?
    {
        checkpoint = crate::format::manifest::from_json(&b, "checkpoint")?;
    }
    let shared = Shared {
        plan,
        client,
        op,
        ctx,
        checkpoint: Mutex::new(checkpoint),
    };
    if plan.checkpoint_interval_ms.is_some() {
        let bytes = to_json(&*shared.checkpoint.lock().await);
        storage::write_all(
            op,
            &layout::checkpoint(&plan.backup_name, &plan.run_id),
            bytes,
        )
        .await?;
    }
    // Group offsets right after the cut was read, before data is fetched: committed offsets
    // are then <= the cut, so every snapshot offset is restorable.
    let groups = if plan.consumer_group_snapshot {
        snapshot_groups(plan, client).await?
    } else {
        vec![]
    };

    let results = run_steps(
        plan.partitions.clone(),
        plan.max_concurrent_partitions as usize,
        ctx,
        |step| {
            let shared = &shared;
            async move { backup_partition(shared, step).await }
        },
    )
    .await;
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
        return Err(e);
    }
    let topics = plan
        .topics
        .iter()
        .map(|t| TopicManifest {
            name: t.name.clone(),
            topic_id: t.topic_id.clone(),
            partition_count: t.partition_count,
            configs: t.configs.clone(),
            partitions: parts
                .iter()
                .filter(|(topic, _)| topic == &t.name)
                .map(|(_, p)| p.clone())
                .collect(),
        })
        .collect::<Vec<_>>();
    let manifest = RunManifest {
        format: FORMAT.into(),
        backup_name: plan.backup_name.clone(),
        run_id: plan.run_id.clone(),
        previous_run_id: plan.previous_run_id.clone(),
        start_time,
        completion_time: (ctx.now_ms)(),
        plan_hash: plan.hash.clone(),
        cluster_id: plan.cluster_id.clone(),
        compression: plan.compression.clone(),
        total_records: topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records)
            .sum(),
        total_raw_bytes: topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.raw_bytes)
            .sum(),
        topics,
        consumer_groups: groups,
    };
    storage::write_all(
        op,
        &layout::manifest(&plan.backup_name, &plan.run_id),
        to_json(&manifest),
    )
    .await?;
    let _ = op
        .delete(&layout::checkpoint(&plan.backup_name, &plan.run_id))
        .await;
    Ok(manifest)
}

async fn snapshot_groups(
    plan: &BackupPlan,
    client: &KafkaClient,
) -> Result<Vec<GroupSnapshot>, ExecError> {
    let mut out = Vec::new();
    for g in client.list_groups().await? {
        let offsets: Vec<GroupOffset> = client
            .committed_offsets(&g)
            .await?
            .into_iter()
            .filter(|((t, _), _)| plan.topics.iter().any(|pt| &pt.name == t))
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

fn outer(plan: &BackupPlan) -> Outer {
    let codec = match plan.compression.as_str() {
        "zstd" => Codec::Zstd,
        "lz4" => Codec::Lz4,
        _ => Codec::None,
    };
    Outer {
        codec,
        level: plan.compression_level,
    }
}

async fn backup_partition(
    sh: &Shared<'_>,
    step: BackupPartitionStep,
) -> Result<(String, PartitionManifest), ExecError> {
    let (plan, client, op, ctx) = (sh.plan, sh.client, sh.op, sh.ctx);
    let name = format!("{}/{}", step.topic, step.partition);
    ctx.progress.emit(Event::StepStarted { step: name.clone() });
    let mut new_segments: Vec<SegmentRef> = step.resumed_segments.clone();
    let mut gaps: Vec<Gap> = step.carried_gaps.clone();
    if let Some(g) = &step.gap {
        ctx.progress.emit(Event::Gap {
            step: name.clone(),
            from: g.from,
            to: g.to,
        });
        gaps.push(g.clone());
    }
    let mut next = step.start_offset;
    let mut writer: Option<SegmentWriter> = None;
    let rotate_after = Duration::from_millis(
        plan.checkpoint_interval_ms
            .map_or(plan.segment_max_interval_ms, |c| {
                c.min(plan.segment_max_interval_ms)
            }),
    );
    let (mut records_done, mut bytes_done) = (0u64, 0u64);
    let max_wait = if step.cut == CutMode::Never { 500 } else { 100 };
    let mut empty_fetches = 0u32;
    let mut stream_errors = 0u32;
    let mut max_bytes = FETCH_MAX_BYTES;
    loop {
        if ctx.cancel.is_cancelled() {
            if step.cut == CutMode::Never {
                break;
            }
            if let Some(w) = writer.take() {
                w.abort().await;
            }
            return Err(ExecError::Cancelled);
        }
        if let CutMode::At(c) = step.cut
            && next >= c
        {
            break;
        }
        let mut fetched = match client
            .fetch_stream(&step.topic, step.partition, next, max_bytes, max_wait)
            .await
        {
            Err(KafkaError::Broker { code: 1, .. }) => {
                // OFFSET_OUT_OF_RANGE: retention moved the log start past `next`.
                let parts = [(step.topic.clone(), step.partition)];
                let earliest = client
                    .list_offsets(&parts, OffsetSpec::Earliest)
                    .await?
                    .get(&parts[0])
                    .copied()
                    .unwrap_or(next);
                if earliest > next {
                    ctx.progress.emit(Event::Gap {
                        step: name.clone(),
                        from: next,
                        to: earliest,
                    });
                    gaps.push(Gap {
                        from: next,
                        to: earliest,
                        reason: "deleted by retention during the backup".into(),
                    });
                    next = earliest;
                    continue;
                }
                return Err(ExecError::Failed(format!(
                    "{name}: offset {next} is out of range (log start {earliest})"
                )));
            }
            r => r?,
        };
        let mut progressed = false;
        loop {
            let b = match fetched.next_batch().await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) if e.is_retriable() && stream_errors < 5 => {
                    // The connection broke mid-response: what was pushed stays, fetch again
                    // from `next` (a fresh connection, leaders refreshed).
                    stream_errors += 1;
                    tracing::warn!(step = %name, error = %e, "fetch interrupted, retrying");
                    let _ = client.refresh_metadata().await;
                    tokio::time::sleep(Duration::from_millis(200 * stream_errors as u64)).await;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let h = &b.header;
            if h.last_offset() < next {
                continue;
            }
            if let CutMode::At(c) = step.cut
                && h.base_offset >= c
            {
                // Offsets next..c hold nothing (compaction): the cut is reached.
                next = next.max(c);
                break;
            }
            let records = if h.is_control() {
                0
            } else {
                h.record_count.max(0) as u64
            };
            ctx.limits.take(b.bytes.len() as u64, records).await;
            if writer.is_none() {
                writer = Some(
                    SegmentWriter::create(
                        op,
                        &plan.backup_name,
                        &plan.run_id,
                        &step.topic,
                        step.partition,
                        h.base_offset,
                        outer(plan),
                    )
                    .await?,
                );
            }
            let w = writer.as_mut().unwrap();
            w.push(&b).await?;
            next = h.next_offset();
            progressed = true;
            records_done += records;
            bytes_done += b.bytes.len() as u64;
            ctx.progress.add(records, b.bytes.len() as u64);
            if w.raw_bytes() >= plan.segment_max_bytes {
                let seg = writer.take().unwrap().finish(op).await?;
                finish_segment(sh, &name, seg, &mut new_segments, next, &gaps).await?;
            }
        }
        if writer
            .as_ref()
            .is_some_and(|w| !w.is_empty() && w.opened_at.elapsed() >= rotate_after)
        {
            let seg = writer.take().unwrap().finish(op).await?;
            finish_segment(sh, &name, seg, &mut new_segments, next, &gaps).await?;
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
        match step.cut {
            CutMode::CaughtUp if next >= fetched.high_watermark => break,
            CutMode::At(_) if next >= fetched.high_watermark => break,
            CutMode::Never => {}
            _ => {
                // Below the high watermark yet nothing returned: offsets removed by compaction
                // or transaction aborts at the end of the log. Give it a few tries.
                empty_fetches += 1;
                if empty_fetches > 20 {
                    gaps.push(Gap {
                        from: next,
                        to: fetched.high_watermark,
                        reason: "broker returned no batches below the high watermark".into(),
                    });
                    next = fetched.high_watermark;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Some(w) = writer.take() {
        if w.is_empty() {
            w.abort().await;
        } else {
            let seg = w.finish(op).await?;
            finish_segment(sh, &name, seg, &mut new_segments, next, &gaps).await?;
        }
    }
    sh.save_progress(
        name.clone(),
        PartitionProgress {
            next_offset: next,
            segments: new_segments.clone(),
            gaps: gaps.clone(),
            done: true,
        },
    )
    .await?;
    ctx.progress.emit(Event::StepDone {
        step: name,
        records: records_done,
        bytes: bytes_done,
    });

    let mut segments = step.carried_segments.clone();
    segments.extend(new_segments);
    let with_data: Vec<&SegmentRef> = segments
        .iter()
        .filter(|s| s.records > 0 && s.min_timestamp >= 0)
        .collect();
    Ok((
        step.topic.clone(),
        PartitionManifest {
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
        },
    ))
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
    segments.push(seg);
    sh.save_progress(
        name.to_string(),
        PartitionProgress {
            next_offset: next,
            segments: segments.clone(),
            gaps: gaps.to_vec(),
            done: false,
        },
    )
    .await
}
