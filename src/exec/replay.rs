//! Which stored records a restore replays, shared by the plain restore
//! ([`super::restore`]), the repartitioned one ([`super::repartition`]) and the restore check
//! ([`super::verify_restore`]): the blocks of a segment a restore needs, grouped into ranged
//! reads, the fate of transactional batches, the PITR window, how many Produce requests a
//! partition keeps in flight, and the errors of a target partition something else wrote to.
//! No I/O here.
use std::collections::BTreeMap;

use super::ExecError;
use crate::format::batch;
use crate::format::layout;
use crate::format::manifest::{BlockIndex, TxnMarker};
use crate::plan::RestorePlan;

/// Produce requests kept in flight per partition.
pub(super) const IN_FLIGHT: usize = 4;
/// Blocks read per ranged GET (each block is ~1 MiB raw).
const BLOCKS_PER_READ: usize = 8;

/// A PITR window: inclusive bounds in epoch ms, None where open.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Window {
    /// The window of a restore plan (`pitr_start`, `pitr_end`).
    pub(super) fn of(plan: &RestorePlan) -> Window {
        Window {
            start: plan.pitr_start,
            end: plan.pitr_end,
        }
    }

    /// No bounds: every timestamp is in.
    pub(super) fn is_open(self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    pub(super) fn contains(self, ts: i64) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts <= e)
    }
}

/// The blocks of one segment's index a restore of source offsets `next..to` needs, in file
/// order: blocks with records that overlap the range and whose timestamps meet `window`.
pub(super) fn wanted_blocks(
    blocks: &[BlockIndex],
    next: i64,
    to: i64,
    window: Window,
) -> Vec<&BlockIndex> {
    blocks
        .iter()
        .filter(|b| b.last_offset >= next && b.first_offset < to && b.records > 0)
        .filter(|b| {
            window.start.is_none_or(|s| b.max_timestamp >= s)
                && window.end.is_none_or(|e| b.min_timestamp <= e)
        })
        .collect()
}

/// The error of a target partition where the records an earlier attempt wrote end inside a
/// batch of this restore: something else wrote to it meanwhile (the journal cannot make the
/// next attempt exact).
pub(super) fn split_batch(plan: &RestorePlan, topic: &str, partition: i32) -> ExecError {
    ExecError::Conflict(format!(
        "target partition {topic}-{partition}: the earlier attempt's records end inside a batch of this restore, so something else wrote to the partition meanwhile; purge it and delete the restore journal ({}) to start over",
        layout::restore_journal(&plan.backup_name, &plan.restore_name)
    ))
}

/// The error of a target partition that holds `extra` more records than this restore writes
/// there (after every record was produced or skipped): something else wrote to it.
pub(super) fn extra_records(
    plan: &RestorePlan,
    topic: &str,
    partition: i32,
    extra: u64,
) -> ExecError {
    ExecError::Conflict(format!(
        "target partition {topic}-{partition} holds {extra} more records than this restore writes: something else wrote to it; purge it and delete the restore journal ({}) to start over",
        layout::restore_journal(&plan.backup_name, &plan.restore_name)
    ))
}

/// Decides which transactional batches were committed, from the markers of every segment
/// of the partition (KIP-98: a producer's transactional batches end with one COMMIT or ABORT
/// marker; batches with no marker before the cut were still open and are not restored).
pub(super) struct TxnOutcomes {
    by_producer: BTreeMap<i64, Vec<(i64, bool)>>,
}

impl TxnOutcomes {
    pub(super) fn new(markers: impl IntoIterator<Item = TxnMarker>) -> Self {
        let mut by_producer: BTreeMap<i64, Vec<(i64, bool)>> = BTreeMap::new();
        for m in markers {
            by_producer
                .entry(m.producer_id)
                .or_default()
                .push((m.offset, m.commit));
        }
        for v in by_producer.values_mut() {
            v.sort();
        }
        TxnOutcomes { by_producer }
    }
    /// Whether a restore of source offsets `..to` replays batch `h`, reading from `*next`:
    /// not a control batch, not wholly before `*next` or at/after `to`, not an aborted or
    /// unfinished transaction (whose offsets `*next` then moves past).
    pub(super) fn replays(&self, h: &batch::BatchHeader, next: &mut i64, to: i64) -> bool {
        if h.is_control() || h.last_offset() < *next || h.base_offset >= to {
            return false;
        }
        if h.is_transactional() && !self.committed(h.producer_id, h.base_offset) {
            *next = (*next).max(h.next_offset());
            return false;
        }
        true
    }
    pub(super) fn committed(&self, producer_id: i64, offset: i64) -> bool {
        let Some(v) = self.by_producer.get(&producer_id) else {
            return false;
        };
        let i = v.partition_point(|(o, _)| *o < offset);
        v.get(i).is_some_and(|(_, commit)| *commit)
    }
}

/// Splits blocks (in file order) into runs of adjacent blocks, at most [`BLOCKS_PER_READ`]
/// each, so each run is one ranged read.
pub(super) fn contiguous(blocks: &[&BlockIndex]) -> Vec<Vec<BlockIndex>> {
    let mut out: Vec<Vec<BlockIndex>> = Vec::new();
    for b in blocks {
        match out.last_mut() {
            Some(g)
                if g.len() < BLOCKS_PER_READ
                    && g.last().is_some_and(|l| l.pos + l.len == b.pos) =>
            {
                g.push((*b).clone())
            }
            _ => out.push(vec![(*b).clone()]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_fate_follows_the_next_marker_of_the_producer() {
        let t = TxnOutcomes::new(vec![
            TxnMarker {
                offset: 10,
                producer_id: 1,
                commit: true,
            },
            TxnMarker {
                offset: 20,
                producer_id: 1,
                commit: false,
            },
            TxnMarker {
                offset: 15,
                producer_id: 2,
                commit: false,
            },
        ]);
        assert!(t.committed(1, 3));
        assert!(!t.committed(1, 12));
        assert!(!t.committed(1, 25)); // open at the cut
        assert!(!t.committed(2, 0));
        assert!(!t.committed(3, 0));
    }
}
