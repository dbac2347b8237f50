//! The KafkaBackupValidation checks that restore (issue 8): after a restore of the run into
//! scratch topics, every restored partition is read back from the cluster (Fetch, from its log
//! start to its high watermark) and compared record by record with the records the backup
//! holds (decoded from the segments with the restore's own filter: committed transactions
//! only, no control batches): timestamp, key, value, headers, and order. A SHA-256 digest per
//! partition goes into the report. Then the consumer-group snapshot is translated through the
//! restore's offset map and every translated position is checked on the cluster: between the
//! partition's log start and high watermark, and at the record the rule of docs/offsets.md
//! names (the first restored record whose source offset is >= the committed offset).
use std::collections::BTreeMap;
use std::time::Instant;

use opendal::Operator;
use sha2::{Digest, Sha256};

use super::ExecError;
use super::replay::{TxnOutcomes, Window, contiguous, wanted_blocks};
use super::validate::{CheckReport, Outcome};
use crate::format::batch::{self, Record};
use crate::format::manifest::{GroupSnapshot, OffsetMap};
use crate::format::segment_io;
use crate::kafka::KafkaClient;
use crate::kafka::ops::OffsetSpec;
use crate::plan::RestorePlan;

/// SHA-256 of one record's content: timestamp (ms, big-endian i64), key, value (each as a
/// length, -1 for null, then the bytes) and headers (count, then name and value of each).
pub fn record_digest(r: &Record) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(r.timestamp.to_be_bytes());
    let field = |h: &mut Sha256, b: Option<&[u8]>| match b {
        None => h.update((-1i64).to_be_bytes()),
        Some(b) => {
            h.update((b.len() as i64).to_be_bytes());
            h.update(b);
        }
    };
    field(&mut h, r.key.as_deref());
    field(&mut h, r.value.as_deref());
    h.update((r.headers.len() as i64).to_be_bytes());
    for (k, v) in &r.headers {
        field(&mut h, Some(k));
        field(&mut h, v.as_deref());
    }
    h.finalize().into()
}

/// (offset, digest) of every record a restore of `step` writes, in order.
async fn backup_side(
    op: &Operator,
    keys: &crate::format::seal::RunKeys,
    backup: &str,
    step: &crate::plan::RestorePartitionStep,
) -> Result<Vec<(i64, [u8; 32])>, ExecError> {
    let mut idx = Vec::with_capacity(step.segments.len());
    for seg in &step.segments {
        idx.push(
            segment_io::read_verified_index(
                op,
                backup,
                &step.source_topic,
                step.source_partition,
                seg,
            )
            .await?,
        );
    }
    // the segments themselves against their entries, as the restore checks them
    let pairs: Vec<_> = step.segments.iter().zip(&idx).collect();
    segment_io::verify_objects(op, &pairs, keys).await?;
    let txns = TxnOutcomes::new(idx.iter().flat_map(|i| i.markers.iter().cloned()));
    let mut out = Vec::new();
    let mut next = step.from;
    for (seg, i) in step.segments.iter().zip(&idx) {
        let open = Window {
            start: None,
            end: None,
        };
        let blocks = wanted_blocks(&i.blocks, next, step.to, open);
        for group in contiguous(&blocks) {
            for b in segment_io::read_blocks(op, seg, keys, &group).await? {
                let h = b.header;
                if !txns.replays(&h, &mut next, step.to) {
                    continue;
                }
                for r in batch::decode_records(&b)? {
                    if r.offset >= next && r.offset < step.to {
                        out.push((r.offset, record_digest(&r)));
                    }
                }
                next = next.max(h.next_offset());
            }
        }
    }
    Ok(out)
}

/// (offset, digest) of every record of a cluster partition from `from` to its high watermark
/// `hwm`, control batches left out.
async fn cluster_side(
    client: &KafkaClient,
    topic: &str,
    partition: i32,
    from: i64,
    hwm: i64,
) -> Result<Vec<(i64, [u8; 32])>, ExecError> {
    let mut out = Vec::new();
    let mut at = from;
    while at < hwm {
        let mut s = client
            .fetch_stream(topic, partition, at, 4 << 20, 500)
            .await?;
        let before = at;
        while let Some(b) = s.next_batch().await? {
            let h = b.header;
            if !h.is_control() {
                for r in batch::decode_records(&b)? {
                    if r.offset >= at && r.offset < hwm {
                        out.push((r.offset, record_digest(&r)));
                    }
                }
            }
            at = at.max(h.next_offset());
        }
        if at == before {
            return Err(ExecError::Failed(format!(
                "{topic}/{partition}: Fetch at offset {at} returned nothing below the high watermark {hwm}"
            )));
        }
    }
    Ok(out)
}

/// The snapshot's committed source offset of `group` for the source partition that `map`
/// restored into `topic`/`partition`, if the snapshot has one.
fn snapshot_position(
    groups: &[GroupSnapshot],
    map: &OffsetMap,
    group: &str,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let s = groups.iter().find(|s| s.group_id == group)?;
    let p = map
        .partitions
        .iter()
        .find(|p| p.target_topic == topic && p.target_partition == partition)?;
    s.offsets
        .iter()
        .find(|o| o.topic == p.source_topic && o.partition == p.source_partition)
        .map(|o| o.offset)
}

/// Compares what the restore `plan` wrote (read back from `client`) with the backup in `op`,
/// and checks the translated consumer-group positions (`groups` of the snapshot, only those in
/// `only` when not empty) through `map`. Returns the checks `restoreRecords` and
/// `restoreConsumerGroupOffsets` (Skip without groups). Storage and broker failures are
/// errors; differences are failures in the checks. `keys`: the data keys of an encrypted
/// backup's runs (empty for a plaintext one).
pub async fn compare_restored(
    plan: &RestorePlan,
    client: &KafkaClient,
    op: &Operator,
    keys: &crate::format::seal::RunKeys,
    map: &OffsetMap,
    groups: &[GroupSnapshot],
    only: &[String],
) -> Result<Vec<CheckReport>, ExecError> {
    let t = Instant::now();
    let targets: Vec<(String, i32)> = plan
        .partitions
        .iter()
        .map(|s| (s.target_topic.clone(), s.target_partition))
        .collect();
    let start = client.list_offsets(&targets, OffsetSpec::Earliest).await?;
    let end = client.list_offsets(&targets, OffsetSpec::Latest).await?;
    let mut failures = vec![];
    let mut digests = BTreeMap::new();
    let (mut records, mut partitions) = (0u64, 0u64);
    // per target partition: (source offset, target offset) of every record, for the groups
    let mut placed: BTreeMap<(String, i32), Vec<(i64, i64)>> = BTreeMap::new();
    for step in &plan.partitions {
        let key = (step.target_topic.clone(), step.target_partition);
        let (lo, hi) = (
            start.get(&key).copied().unwrap_or(0),
            end.get(&key).copied().unwrap_or(0),
        );
        let want = backup_side(op, keys, &plan.backup_name, step).await?;
        let got = cluster_side(client, &step.target_topic, step.target_partition, lo, hi).await?;
        let at = format!(
            "{}/{} -> {}/{}",
            step.source_topic, step.source_partition, step.target_topic, step.target_partition
        );
        partitions += 1;
        records += got.len() as u64;
        let mut digest = Sha256::new();
        for (_, d) in &got {
            digest.update(d);
        }
        digests.insert(at.clone(), hex::encode(digest.finalize()));
        if let Some(i) = (0..want.len().min(got.len())).find(|i| want[*i].1 != got[*i].1) {
            failures.push(format!(
                "{at}: record {i} differs (source offset {}, restored at offset {}): timestamp, key, value or headers changed",
                want[i].0, got[i].0
            ));
        } else if want.len() != got.len() {
            failures.push(format!(
                "{at}: the backup holds {} records for this partition, the cluster has {} (offsets {lo}..{hi})",
                want.len(),
                got.len()
            ));
        }
        placed.insert(
            key,
            want.iter().zip(&got).map(|(w, g)| (w.0, g.0)).collect(),
        );
    }
    let mut figures = BTreeMap::from([
        ("partitions".to_string(), partitions),
        ("records".to_string(), records),
    ]);
    figures.insert("failures".into(), failures.len() as u64);
    let mut checks = vec![CheckReport {
        name: "restoreRecords".into(),
        outcome: if failures.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
        figures,
        duration_ms: t.elapsed().as_millis() as u64,
        failures,
        notes: vec![],
        digests,
    }];

    // the translated group positions, on the cluster
    let t = Instant::now();
    let plans = crate::plan::translate_groups(groups, map, only, &BTreeMap::new());
    let (mut failures, mut notes) = (vec![], vec![]);
    let mut positions = 0u64;
    for g in &plans {
        for c in &g.changes {
            positions += 1;
            let key = (c.topic.clone(), c.partition);
            let (lo, hi) = (
                start.get(&key).copied().unwrap_or(0),
                end.get(&key).copied().unwrap_or(0),
            );
            let at = format!(
                "group {} on {}/{} ({})",
                g.group, c.topic, c.partition, c.from
            );
            if c.new < lo || c.new > hi {
                failures.push(format!(
                    "{at}: translated to {} outside the partition's offsets {lo}..{hi}",
                    c.new
                ));
                continue;
            }
            // the source position this change came from
            let src = snapshot_position(groups, map, &g.group, &c.topic, c.partition);
            let Some(src) = src else { continue };
            let recs = placed.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let want = recs
                .iter()
                .find(|(s, _)| *s >= src)
                .map(|(_, t)| *t)
                .unwrap_or(hi);
            if recs.last().is_none_or(|(s, _)| src > s + 1) && c.new == want {
                // ahead of the backup (docs/format.md, decision (f)): the end of the range
                notes.push(format!(
                    "{at}: source offset {src} is past the backed-up records; translated to the end of the restored range ({want})"
                ));
            }
            if c.new != want {
                failures.push(format!(
                    "{at}: translated to {}, but the first restored record at or after source offset {src} is at {want}",
                    c.new
                ));
            }
        }
    }
    let skipped = plans.is_empty() || positions == 0;
    checks.push(CheckReport {
        name: "restoreConsumerGroupOffsets".into(),
        outcome: if skipped {
            Outcome::Skip
        } else if failures.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
        figures: BTreeMap::from([
            ("groups".to_string(), plans.len() as u64),
            ("positions".to_string(), positions),
        ]),
        duration_ms: t.elapsed().as_millis() as u64,
        failures,
        notes,
        digests: BTreeMap::new(),
    });
    Ok(checks)
}
