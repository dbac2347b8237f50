//! Repartitioning a restored topic (`repartitioning.<targetTopic>`): Kafka's default
//! partitioner for keyed records, round robin for the others, and the compiled step the
//! executor runs. Pure.
//!
//! The routing is deterministic (the same plan routes the same record to the same target
//! partition, in the same order), which is what makes a repartitioned restore resumable: a
//! resumed attempt routes again from the first record and skips, per target partition, the
//! records an earlier attempt already wrote there.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::TargetState;
use crate::api::restore::RepartitionStrategy;
use crate::format::manifest::SegmentRef;

/// Kafka's murmur2 hash of a key, as `org.apache.kafka.common.utils.Utils.murmur2` computes it
/// (seed `0x9747b28c`; the same function librdkafka's `murmur2` partitioners use). 32-bit
/// two's complement, like Java's `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner (the Java producer's built-in partitioner, and
/// librdkafka's `murmur2` / `murmur2_random`) picks for a keyed record: `toPositive(murmur2(key))
/// % partitions`, where `toPositive` clears the sign bit.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Routes records of one repartitioned topic, in restore order.
#[derive(Debug, Clone)]
pub struct Router {
    strategy: RepartitionStrategy,
    partitions: i32,
    /// Records routed round robin so far (keyless records, or every record for `automatic`).
    next_round_robin: u64,
}

impl Router {
    pub fn new(strategy: RepartitionStrategy, partitions: i32) -> Router {
        Router {
            strategy,
            partitions: partitions.max(1),
            next_round_robin: 0,
        }
    }

    /// How records are routed, for progress and messages: `murmur2` or `round robin`.
    pub fn describe(&self) -> &'static str {
        match self.strategy {
            RepartitionStrategy::Murmur2 => "murmur2",
            RepartitionStrategy::Automatic => "round robin",
        }
    }

    /// The target partition of the next record: `murmur2` hashes a key (a zero-length key is
    /// a key); keyless records, and every record with `automatic`, go round robin from
    /// partition 0 (deterministic, unlike the Java producer's sticky partitioner).
    pub fn route(&mut self, key: Option<&[u8]>) -> i32 {
        match (self.strategy, key) {
            (RepartitionStrategy::Murmur2, Some(k)) => murmur2_partition(k, self.partitions),
            _ => {
                let p = (self.next_round_robin % self.partitions as u64) as i32;
                self.next_round_robin += 1;
                p
            }
        }
    }
}

/// The source offsets of one source partition a repartitioned restore reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepartitionSource {
    pub source_partition: i32,
    /// Source offsets restored: `from..to` (exclusive), filtered by the PITR window.
    pub from: i64,
    pub to: i64,
    /// Segments overlapping `from..to`, in offset order.
    pub segments: Vec<SegmentRef>,
    pub estimated_records: u64,
    pub estimated_bytes: u64,
}

/// One repartitioned target topic: the restored source partitions of `source_topic` are read
/// one after the other (in partition order) by one task, and each record is routed by
/// [`Router`] to one of `target_partitions` partitions of `target_topic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepartitionStep {
    pub source_topic: String,
    pub target_topic: String,
    pub strategy: RepartitionStrategy,
    pub target_partitions: i32,
    pub sources: Vec<RepartitionSource>,
    /// What the target topic holds now, and so what the restore does to it.
    pub target_state: TargetState,
    /// Committed positions of the backup's consumer-group snapshot on each source partition:
    /// the offset map records exact ranks there (docs/offsets.md, "Repartitioned topics").
    pub positions: BTreeMap<i32, Vec<i64>>,
    pub estimated_records: u64,
    pub estimated_bytes: u64,
}

impl RepartitionStep {
    /// `(topic, partition)` of every target partition.
    pub fn targets(&self) -> impl Iterator<Item = (String, i32)> + '_ {
        (0..self.target_partitions).map(|p| (self.target_topic.clone(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of Kafka's `UtilsTest.testMurmur2` (clients/src/test/java/.../UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (k, want) in cases {
            assert_eq!(murmur2(k), *want, "{:?}", String::from_utf8_lossy(k));
        }
        assert!(
            (0..1000).all(|i| (0..7).contains(&murmur2_partition(format!("k{i}").as_bytes(), 7)))
        );
    }

    #[test]
    fn keyless_records_go_round_robin_and_keys_stick() {
        let mut r = Router::new(RepartitionStrategy::Murmur2, 3);
        let got: Vec<i32> = (0..6).map(|_| r.route(None)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        let p = r.route(Some(b"foobar"));
        assert_eq!(p, murmur2_partition(b"foobar", 3));
        assert_eq!(r.route(Some(b"foobar")), p);
        // keys do not advance the round robin
        assert_eq!(r.route(None), 0);
        let mut a = Router::new(RepartitionStrategy::Automatic, 2);
        let got: Vec<i32> = (0..4).map(|_| a.route(Some(b"same"))).collect();
        assert_eq!(got, vec![0, 1, 0, 1]);
    }
}
