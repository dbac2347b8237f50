//! Restoring a topic into a different partition count (`repartitioning`): one task per target
//! topic reads the restored source partitions one after the other, in partition order, and
//! routes every record with [`crate::plan::Router`] (Kafka's murmur2 partitioner for keyed
//! records, round robin for keyless ones, round robin for all with `automatic`).
//!
//! Records are re-batched per target partition: a batch is produced when it holds
//! `produceBatchSize` records or [`MAX_BATCH_BYTES`] of record data, or when the next record
//! comes from a batch of another compression codec. Routing and batching depend only on the
//! plan and the stored records, so a resumed attempt routes the same records into the same
//! batches: it skips, per target partition, the records the journal's base offset and the
//! partition's high watermark say are there, and produces the rest (the invariant of
//! `exec::restore`). Order is kept per key (one key, one target partition, source order) and
//! per source partition within each target partition.
//!
//! The offset map gets one entry per (source partition, target partition) with the exact rank
//! of every consumer-group position of the backup's snapshot (docs/offsets.md).
use std::collections::{BTreeMap, VecDeque};

use opendal::Operator;

use super::ExecError;
use super::engine::{Event, ExecContext};
use super::replay::{self, IN_FLIGHT, TxnOutcomes, Window, contiguous, wanted_blocks};
use crate::format::batch::{self, Codec, Record};
use crate::format::layout;
use crate::format::manifest::{PartitionOffsetMap, RepartitionRanks, SegmentIndex};
use crate::format::segment_io;
use crate::kafka::KafkaClient;
use crate::kafka::conn::Reply;
use crate::kafka::ops::produce_result;
use crate::plan::{RepartitionSource, RepartitionStep, RestorePlan, Router};

/// Record data (keys, values, headers; bytes) after which a re-built batch is produced: well
/// under the broker's default `max.message.bytes` (1 MiB). A single larger record goes alone.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// One target partition of a repartitioned topic.
struct TargetSink<'a> {
    conn: std::sync::Arc<crate::kafka::conn::Connection>,
    plan: &'a RestorePlan,
    topic: String,
    partition: i32,
    buf: Vec<Record>,
    buf_bytes: usize,
    codec: Codec,
    /// Produce requests awaiting their reply, with the target offset each must land at.
    in_flight: VecDeque<(Reply<kafka_protocol::messages::ProduceRequest>, i64)>,
    /// Records an earlier attempt already wrote here, still to be skipped.
    skip: u64,
    /// Log end offset when the restore began (the journal's base offset).
    base: i64,
    /// Target offset of the next batch.
    dst: i64,
    bytes: u64,
}

impl TargetSink<'_> {
    async fn push(&mut self, r: Record, codec: Codec, ctx: &ExecContext) -> Result<(), ExecError> {
        if !self.buf.is_empty() && codec != self.codec {
            self.flush_buf(ctx).await?;
        }
        self.codec = codec;
        self.buf_bytes += 32
            + r.key.as_ref().map_or(0, |k| k.len())
            + r.value.as_ref().map_or(0, |v| v.len())
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
        self.buf.push(r);
        if self.buf.len() >= self.plan.produce_batch_records.max(1) as usize
            || self.buf_bytes >= MAX_BATCH_BYTES
        {
            self.flush_buf(ctx).await?;
        }
        Ok(())
    }

    /// Produces the buffered records as one batch (or skips them: an earlier attempt wrote
    /// them).
    async fn flush_buf(&mut self, ctx: &ExecContext) -> Result<(), ExecError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self.buf.len() as u64;
        if self.skip > 0 {
            if n > self.skip {
                return Err(replay::split_batch(self.plan, &self.topic, self.partition));
            }
            self.skip -= n;
            self.dst += n as i64;
            self.buf.clear();
            self.buf_bytes = 0;
            return Ok(());
        }
        let encoded = batch::encode_batch(&self.buf, self.codec)?;
        self.buf.clear();
        self.buf_bytes = 0;
        ctx.limits.take(encoded.len() as u64, n).await;
        self.bytes += encoded.len() as u64;
        ctx.progress.add(0, encoded.len() as u64);
        if self.in_flight.len() >= IN_FLIGHT {
            self.complete_one().await?;
        }
        let timeout = self.plan.produce_timeout_ms as i32;
        if self.plan.produce_acks == 0 {
            KafkaClient::produce_no_ack(&self.conn, &self.topic, self.partition, encoded, timeout)
                .await?;
        } else {
            let reply = KafkaClient::produce_enqueue(
                &self.conn,
                &self.topic,
                self.partition,
                encoded,
                self.plan.produce_acks,
                timeout,
            )
            .await?;
            self.in_flight.push_back((reply, self.dst));
        }
        self.dst += n as i64;
        Ok(())
    }

    async fn complete_one(&mut self) -> Result<(), ExecError> {
        let Some((reply, want)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let base = produce_result(reply.wait().await?, &self.topic, self.partition)?;
        if base != want {
            return Err(ExecError::Conflict(format!(
                "target partition {}-{}: a batch of this restore landed at offset {base}, not {want}: something else writes to the partition; stop it, purge the partition and delete the restore journal ({}) to start over",
                self.topic,
                self.partition,
                layout::restore_journal(&self.plan.backup_name, &self.plan.restore_name)
            )));
        }
        Ok(())
    }

    /// Produces what is buffered and waits for every reply; then every record an earlier
    /// attempt wrote must have been skipped (more records there: something else wrote to the
    /// partition).
    async fn finish(&mut self, ctx: &ExecContext) -> Result<(), ExecError> {
        self.flush_buf(ctx).await?;
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

/// The sinks of the `target_partitions` partitions of `step`'s target topic, each on a
/// connection to its leader, from where `resume` says the restore began there and with the
/// records earlier attempts wrote there to skip.
async fn open_sinks<'a>(
    plan: &'a RestorePlan,
    client: &KafkaClient,
    step: &RepartitionStep,
    resume: &BTreeMap<(String, i32), (i64, u64)>,
) -> Result<Vec<TargetSink<'a>>, ExecError> {
    let mut sinks = Vec::with_capacity(step.target_partitions.max(1) as usize);
    for p in 0..step.target_partitions {
        let (base, written) = resume
            .get(&(step.target_topic.clone(), p))
            .copied()
            .unwrap_or((0, 0));
        sinks.push(TargetSink {
            conn: client.leader_conn(&step.target_topic, p).await?,
            plan,
            topic: step.target_topic.clone(),
            partition: p,
            buf: Vec::new(),
            buf_bytes: 0,
            codec: Codec::None,
            in_flight: VecDeque::new(),
            skip: written,
            base,
            dst: base,
            bytes: 0,
        });
    }
    Ok(sinks)
}

/// Restores one repartitioned topic. `resume` holds, per target partition, its log end
/// offset when the restore began and the records earlier attempts wrote there. Returns the
/// offset-map entries (one per source and target partition), records and bytes restored.
pub(super) async fn restore_repartitioned(
    plan: &RestorePlan,
    client: &KafkaClient,
    op: &Operator,
    ctx: &ExecContext,
    step: RepartitionStep,
    indexes: Vec<Vec<SegmentIndex>>,
    resume: &BTreeMap<(String, i32), (i64, u64)>,
) -> Result<(Vec<PartitionOffsetMap>, u64, u64), ExecError> {
    let mut router = Router::new(step.strategy, step.target_partitions);
    let name = format!(
        "{} -> {} ({} partitions, {})",
        step.source_topic,
        step.target_topic,
        step.target_partitions,
        router.describe()
    );
    ctx.progress.emit(Event::StepStarted { step: name.clone() });
    let n = step.target_partitions.max(1) as usize;
    let mut sinks = open_sinks(plan, client, &step, resume).await?;
    // Records routed to each target partition so far, over all source partitions.
    let mut routed_total = vec![0u64; n];
    let mut map = Vec::new();
    let mut records = 0u64;
    for (src, idx) in step.sources.iter().zip(&indexes) {
        let marks = step
            .positions
            .get(&src.source_partition)
            .cloned()
            .unwrap_or_default();
        let mut routing = Routing {
            router: &mut router,
            sinks: &mut sinks,
            counts: vec![0u64; n],
            checkpoints: Vec::new(),
        };
        routing
            .route_source(plan, op, ctx, src, idx, &marks)
            .await?;
        let Routing {
            counts,
            checkpoints,
            ..
        } = routing;
        for t in 0..n {
            let target_first = sinks[t].base + routed_total[t] as i64;
            map.push(rank_entry(
                &step,
                src.source_partition,
                t,
                target_first,
                counts[t],
                &checkpoints,
            ));
            routed_total[t] += counts[t];
            records += counts[t];
        }
    }
    let mut bytes = 0;
    for s in &mut sinks {
        s.finish(ctx).await?;
        bytes += s.bytes;
    }
    ctx.progress.emit(Event::StepDone {
        step: name,
        records,
        bytes,
    });
    Ok((map, records, bytes))
}

/// The routing of one source partition's records to the target partitions.
struct Routing<'r, 'a> {
    router: &'r mut Router,
    sinks: &'r mut [TargetSink<'a>],
    /// Records of this source partition routed to each target partition.
    counts: Vec<u64>,
    /// (source offset, `counts` below it): at the first record of every batch, at every
    /// snapshot position, and at the end of the range.
    checkpoints: Vec<(i64, Vec<u64>)>,
}

impl Routing<'_, '_> {
    /// Reads the restored records of source partition `src` (indexes `idx`) in offset order
    /// and routes each to its target partition's sink, recording the checkpoints of `marks`
    /// (the snapshot's committed positions on `src`, sorted).
    async fn route_source(
        &mut self,
        plan: &RestorePlan,
        op: &Operator,
        ctx: &ExecContext,
        src: &RepartitionSource,
        idx: &[SegmentIndex],
        marks: &[i64],
    ) -> Result<(), ExecError> {
        let txns = TxnOutcomes::new(idx.iter().flat_map(|i| i.markers.iter().cloned()));
        let window = Window::of(plan);
        let mut mark = 0;
        let mut next = src.from;
        for (seg, sidx) in src.segments.iter().zip(idx) {
            let wanted = wanted_blocks(&sidx.blocks, next, src.to, window);
            for group in contiguous(&wanted) {
                if ctx.cancel.is_cancelled() {
                    return Err(ExecError::Cancelled);
                }
                for b in segment_io::read_blocks(op, seg, &ctx.run_keys, &group).await? {
                    let h = b.header;
                    if !txns.replays(&h, &mut next, src.to) {
                        continue;
                    }
                    let at = h.base_offset.max(next);
                    if self.checkpoints.last().is_none_or(|(o, _)| *o < at) {
                        self.checkpoints.push((at, self.counts.clone()));
                    }
                    let codec = b.producer_codec()?;
                    for r in batch::decode_records(&b)? {
                        if r.offset < next || r.offset >= src.to || !window.contains(r.timestamp) {
                            continue;
                        }
                        while mark < marks.len() && marks[mark] <= r.offset {
                            self.checkpoints.push((marks[mark], self.counts.clone()));
                            mark += 1;
                        }
                        let t = self.router.route(r.key.as_deref()) as usize;
                        self.counts[t] += 1;
                        ctx.progress.add(1, 0);
                        self.sinks[t].push(r, codec, ctx).await?;
                    }
                    next = next.max(h.next_offset());
                }
            }
        }
        for m in &marks[mark..] {
            self.checkpoints.push((*m, self.counts.clone()));
        }
        self.checkpoints.push((src.to, self.counts.clone()));
        Ok(())
    }
}

/// The offset-map entry of source partition `source_partition` in target partition `t`: its
/// `records` start at `target_first`, and the ranks of `checkpoints` (one pair per source
/// offset where the count below it changes) say how many of them precede each position.
fn rank_entry(
    step: &RepartitionStep,
    source_partition: i32,
    t: usize,
    target_first: i64,
    records: u64,
    checkpoints: &[(i64, Vec<u64>)],
) -> PartitionOffsetMap {
    let mut ranks: Vec<[i64; 2]> = Vec::with_capacity(checkpoints.len());
    for (o, c) in checkpoints {
        match ranks.last_mut() {
            Some(last) if last[0] == *o => last[1] = c[t] as i64,
            Some(last) if last[1] == c[t] as i64 => {}
            _ => ranks.push([*o, c[t] as i64]),
        }
    }
    PartitionOffsetMap {
        source_topic: step.source_topic.clone(),
        source_partition,
        target_topic: step.target_topic.clone(),
        target_partition: t as i32,
        ranges: vec![],
        target_end: Some(target_first + records as i64),
        repartition: Some(RepartitionRanks {
            target_first,
            records,
            ranks,
        }),
    }
}
