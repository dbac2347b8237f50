//! JSON documents of the repository: run manifest, segment index, checkpoint, offset map.
//! Field meanings and units are in docs/format.md; all offsets are Kafka offsets, all times
//! epoch milliseconds, all sizes bytes.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::FormatError;
use super::layout::{self, FORMAT, FORMAT_V1, FORMAT_V3};
use crate::facts::ConfigEntry;

/// One segment file as a manifest or checkpoint lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentRef {
    /// Object path, relative to the storage root.
    pub path: String,
    /// First offset of the first batch stored (may be below the run's start offset when a
    /// batch straddles it; restore skips such records).
    pub first_offset: i64,
    /// Last offset of the last batch stored.
    pub last_offset: i64,
    /// Records in non-control batches.
    pub records: u64,
    /// Raw Kafka batch bytes stored (before outer compression).
    pub raw_bytes: u64,
    /// Size of the segment object.
    pub stored_bytes: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// CRC-32C of the whole segment object.
    pub crc32c: u32,
    /// CRC-32C of the segment's index object (`.idx.json`) as stored, and its size in bytes:
    /// the link from the manifest to the index (v2; `null` in segments written by v1).
    #[serde(default)]
    pub index_crc32c: Option<u32>,
    #[serde(default)]
    pub index_bytes: Option<u64>,
    /// Base offset and CRC-32C (as fetched) of the segment's last record batch: a later run
    /// fetches that batch again to tell the same log from a recreated topic on brokers
    /// without topic ids (v2; `null` in segments written by v1).
    #[serde(default)]
    pub last_batch_offset: Option<i64>,
    #[serde(default)]
    pub last_batch_crc32c: Option<u32>,
    /// How the segment's blocks are encrypted (format v3; absent in a plaintext segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SegmentSeal>,
}

/// The encryption of one segment (docs/format.md, "Encryption"): its blocks are sealed with
/// AES-256-GCM under the key HKDF-SHA256(data key of run `run`, `salt`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentSeal {
    /// The run whose data key (`<backup>/keys/<run>.json`) the segment key derives from.
    pub run: String,
    /// 32 random bytes, hex, fresh for every segment object written.
    pub salt: String,
}

/// The encryption of a run (format v3): who wraps its data key, and the manifest's
/// authentication tag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunSeal {
    /// `AES-256-GCM`.
    pub cipher: String,
    /// The key-encryption key that wrapped the run's data key when it was written: `secret:<name>/<keyId>` or `awsKms:<keyId>` (informational; the key document says what unwraps it).
    pub kek: String,
    /// The consumer-group snapshot, sealed (base64 of nonce, ciphertext and tag); the
    /// manifest's `consumerGroups` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<String>,
    /// HMAC-SHA256 (hex) of the manifest's canonical form with `checksum` null and this
    /// field empty, under a key derived from the run's data key.
    pub mac: String,
}

/// The S3 Object Lock retention a run's objects were written with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockRecord {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// Epoch ms until which the run's objects are locked (the earliest retain-until date of
    /// its objects).
    pub retain_until: i64,
}

impl ObjectLockRecord {
    /// The `objectLock` record of run `run_id`'s manifest: `mode` (`COMPLIANCE` or
    /// `GOVERNANCE`), and `retainUntil` = the earliest date every object the run lists is
    /// locked until at least: for each segment of `topics`, the time its writing run was
    /// planned (the run id in its name, [`layout::segment_run`]) plus `retain_days`, and the
    /// same for the run's own manifest. Every object is written after its run was planned,
    /// with `its write time + retain_days`, so this is a lower bound; segments carried from an
    /// earlier run count with that run's id. `start_time` (epoch ms) stands in for a run id
    /// that does not parse.
    pub fn for_run(
        mode: &str,
        retain_days: u32,
        run_id: &str,
        start_time: i64,
        topics: &[TopicManifest],
    ) -> ObjectLockRecord {
        const DAY_MS: i64 = 86_400_000;
        let days = retain_days as i64 * DAY_MS;
        let mut until = layout::run_id_ms(run_id).unwrap_or(start_time) + days;
        for seg in topics
            .iter()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| &p.segments)
        {
            if let Some(ms) = layout::segment_run(&seg.path).and_then(layout::run_id_ms) {
                until = until.min(ms + days);
            }
        }
        ObjectLockRecord {
            mode: mode.into(),
            retain_until: until,
        }
    }
}

/// A range of offsets that was planned but could not be read (retention moved the log start
/// past it: lessons #144). Recorded, not fatal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub from: i64,
    /// Exclusive.
    pub to: i64,
    pub reason: String,
}

/// What one run holds for one partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionManifest {
    pub partition: i32,
    /// Log start offset observed when the run began.
    pub log_start_offset: i64,
    /// First offset restorable from this run (inclusive).
    pub covered_from: i64,
    /// The cut: offsets below it are covered (exclusive). For `stopAtCurrentOffsets` runs,
    /// the high watermark read before any fetch.
    pub cut: i64,
    /// First offset this run fetched itself (previous runs cover `coveredFrom..startOffset`).
    pub start_offset: i64,
    pub records: u64,
    pub raw_bytes: u64,
    /// Smallest / largest record timestamp in the covered range; None when empty.
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub gaps: Vec<Gap>,
    /// Every segment needed to restore `coveredFrom..cut`, in offset order, including segments
    /// written by earlier runs.
    pub segments: Vec<SegmentRef>,
}

/// A topic in a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicManifest {
    pub name: String,
    /// KIP-516 topic id at backup time.
    pub topic_id: String,
    /// Partition count at backup time.
    pub partition_count: i32,
    /// DescribeConfigs result (sensitive values omitted).
    pub configs: BTreeMap<String, ConfigEntry>,
    pub partitions: Vec<PartitionManifest>,
}

/// A consumer group's committed offsets at backup time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupSnapshot {
    pub group_id: String,
    pub offsets: Vec<GroupOffset>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Committed offsets of consumer groups on one cluster at one time: what a restore
/// (`rollback.snapshotBeforeRestore`) or a KafkaOffsetReset (`snapshotBeforeReset`) saves
/// before it commits, and what a KafkaOffsetRollback commits back (docs/offsets.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OffsetSnapshot {
    pub format: String,
    /// `<resource name>-<epoch ms>`.
    pub id: String,
    /// Epoch ms.
    pub created_at: i64,
    /// What took it, e.g. `KafkaRestore orders-restore`.
    pub taken_by: String,
    /// Epoch ms after which it may be deleted (`snapshotRetentionHours`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Groups and their committed offsets; a group with none is listed with no offsets
    /// (rolling back to it deletes nothing: see docs/offsets.md).
    pub groups: Vec<GroupSnapshot>,
}

/// The manifest of a complete run: self-describing, enough to restore and to rebuild the
/// inventory of backups from storage alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunManifest {
    pub format: String,
    pub backup_name: String,
    pub run_id: String,
    /// The run this one continued from (incremental), if any.
    pub previous_run_id: Option<String>,
    pub start_time: i64,
    pub completion_time: i64,
    pub plan_hash: String,
    pub cluster_id: Option<String>,
    /// Outer compression applied to blocks of uncompressed batches: none, lz4 or zstd.
    pub compression: String,
    pub topics: Vec<TopicManifest>,
    pub consumer_groups: Vec<GroupSnapshot>,
    pub total_records: u64,
    pub total_raw_bytes: u64,
    /// The run's encryption (format v3); absent in a plaintext run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<RunSeal>,
    /// The S3 Object Lock its objects carry, when `storage.s3.objectLock` was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockRecord>,
}

/// One block of a segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockIndex {
    /// Byte position of the block header in the segment object.
    pub pos: u64,
    /// Block size including its header.
    pub len: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub records: u64,
    pub batches: u32,
    /// Holds transactional batches (their fate depends on markers).
    pub transactional: bool,
    /// The block header's CRC-32C (of the stored payload): the link from the index to the
    /// block (v2; `null` in indexes written by v1).
    #[serde(default)]
    pub crc32c: Option<u32>,
}

/// A transaction marker (control batch) seen in a segment (KIP-98).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TxnMarker {
    pub offset: i64,
    pub producer_id: i64,
    pub commit: bool,
}

/// The index of one segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentIndex {
    pub format: String,
    pub topic: String,
    pub partition: i32,
    /// The segment this index describes: its first and last offset and its size in bytes, as
    /// the manifest lists them (v2; `null` in indexes written by v1).
    #[serde(default)]
    pub first_offset: Option<i64>,
    #[serde(default)]
    pub last_offset: Option<i64>,
    #[serde(default)]
    pub stored_bytes: Option<u64>,
    pub blocks: Vec<BlockIndex>,
    pub markers: Vec<TxnMarker>,
    /// The segment's encryption, as its manifest entry records it (format v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SegmentSeal>,
}

/// Progress of a run that has not completed: what its checkpoint documents add up to
/// ([`CheckpointPart`]: a base and the deltas after it, `crate::format::checkpoint::load`), and
/// the whole document `checkpoint.json` that builds before them rewrote at every update (still
/// read on resume).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub format: String,
    pub run_id: String,
    pub plan_hash: String,
    pub updated_at: i64,
    /// `topic/partition` -> progress.
    pub partitions: BTreeMap<String, PartitionProgress>,
}

/// Progress of one partition inside a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PartitionProgress {
    /// Next offset to fetch; everything below is in `segments`.
    pub next_offset: i64,
    pub segments: Vec<SegmentRef>,
    pub gaps: Vec<Gap>,
    pub done: bool,
}

/// Whether a checkpoint document holds a run's whole progress or only what changed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    /// The whole progress: earlier documents are no longer needed.
    #[default]
    Base,
    /// Only the partitions that changed since the document before it (`seq - 1`).
    Delta,
}

/// One document of a run's checkpoint, `<backup>/runs/<runId>/checkpoint/<seq:010>.json`
/// (docs/format.md, "Checkpoint"): a base with every partition's progress, or a delta with
/// the partitions that changed since the previous document. The progress is the newest base
/// with the deltas after it applied in `seq` order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointPart {
    pub format: String,
    pub run_id: String,
    /// Plan hash of the attempt that wrote it.
    pub plan_hash: String,
    /// Position in the run's sequence of documents (also its object name).
    pub seq: u64,
    pub kind: PartKind,
    /// Epoch ms when it was written.
    pub updated_at: i64,
    /// `topic/partition` -> what changed (a base: the whole progress of every partition).
    pub partitions: BTreeMap<String, ProgressChange>,
}

/// A change of one partition's progress: segments appended to its list, and its new
/// `nextOffset`, `gaps` and `done`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProgressChange {
    /// Next offset to fetch; everything below is in the partition's segments.
    pub next_offset: i64,
    /// Position of `segments[0]` in the partition's segment list: the number of segments the
    /// documents before this one list for it (0 in a base).
    pub first_segment: u64,
    /// Segments finished since the previous document, in offset order.
    pub segments: Vec<SegmentRef>,
    /// Every gap recorded so far for the partition (replaces the earlier list).
    pub gaps: Vec<Gap>,
    pub done: bool,
}

impl ProgressChange {
    /// Folds `later` (a change made after this one) into this change.
    pub fn then(&mut self, later: ProgressChange) {
        self.next_offset = later.next_offset;
        self.segments.extend(later.segments);
        self.gaps = later.gaps;
        self.done = later.done;
    }

    /// Applies the change to `p`. Errors (a message) when it does not continue `p`'s segment
    /// list: it expects `firstSegment` earlier segments and `p` has another count.
    pub fn apply(self, p: &mut PartitionProgress) -> Result<(), String> {
        if self.first_segment != p.segments.len() as u64 {
            return Err(format!(
                "continues the segment list at segment {} but the documents before it list {}",
                self.first_segment,
                p.segments.len()
            ));
        }
        p.next_offset = self.next_offset;
        p.segments.extend(self.segments);
        p.gaps = self.gaps;
        p.done = self.done;
        Ok(())
    }
}

/// Source offsets -> target offsets of a restore, as ranges (not one entry per record).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OffsetMap {
    pub format: String,
    pub backup_name: String,
    pub backup_run_id: String,
    pub restore_name: String,
    pub partitions: Vec<PartitionOffsetMap>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffsetMap {
    pub source_topic: String,
    pub source_partition: i32,
    pub target_topic: String,
    pub target_partition: i32,
    /// `[sourceFirst, sourceLast, targetFirst]`: source offsets sourceFirst..=sourceLast that
    /// were restored became targetFirst.. in order. Source offsets not restored (PITR, aborted
    /// transactions, control records, compaction gaps) break ranges.
    pub ranges: Vec<[i64; 3]>,
    /// The target offset after the last record this restore wrote to the partition (where it
    /// ended; its start when it wrote nothing): where a position past every restored record
    /// goes (docs/offsets.md). Absent in maps written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_end: Option<i64>,
    /// Set when the target topic was repartitioned (`repartitioning`): this entry is the part
    /// of source partition `sourcePartition` that was routed to `targetPartition`, and
    /// `ranges` is empty (docs/offsets.md, "Repartitioned topics").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repartition: Option<RepartitionRanks>,
}

/// Where the records of one source partition went in one target partition of a repartitioned
/// topic. A restore reads the source partitions of a repartitioned topic one after the other,
/// so the records of one source partition routed to one target partition are contiguous
/// there: target offsets `targetFirst .. targetFirst + records` (exclusive), in source order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RepartitionRanks {
    /// Target offset of the first of these records (their end when `records` is 0).
    pub target_first: i64,
    /// How many records of the source partition went to this target partition.
    pub records: u64,
    /// `[sourceOffset, rank]`, ascending: `rank` of these records have a source offset below
    /// `sourceOffset`. Exact at every position of the backup's consumer-group snapshot and at
    /// the first offset of every stored block; a position in between reads the entry before
    /// it, which is never later than the exact rank (possible duplicates, never a skip).
    pub ranks: Vec<[i64; 2]>,
}

impl RepartitionRanks {
    /// How many of these records have a source offset below `source`: exact at a recorded
    /// position, a lower bound between two (see `ranks`).
    pub fn rank_at(&self, source: i64) -> u64 {
        let i = self.ranks.partition_point(|r| r[0] <= source);
        if i == 0 {
            0
        } else {
            (self.ranks[i - 1][1].max(0) as u64).min(self.records)
        }
    }
}

impl PartitionOffsetMap {
    /// Records that source offset `src` landed at target offset `dst`, extending the last range
    /// when both are consecutive.
    pub fn push(&mut self, src: i64, dst: i64) {
        if let Some(last) = self.ranges.last_mut()
            && last[1] + 1 == src
            && last[2] + (last[1] - last[0]) + 1 == dst
        {
            last[1] = src;
            return;
        }
        self.ranges.push([src, src, dst]);
    }

    /// Records that source offsets `src_first..=src_last` landed at `dst_first..` in order.
    pub fn push_range(&mut self, src_first: i64, src_last: i64, dst_first: i64) {
        if let Some(last) = self.ranges.last_mut()
            && last[1] + 1 == src_first
            && last[2] + (last[1] - last[0]) + 1 == dst_first
        {
            last[1] = src_last;
            return;
        }
        self.ranges.push([src_first, src_last, dst_first]);
    }
}

/// The key of a document's own checksum (format v2).
const CHECKSUM: &str = "checksum";

/// `sha256:<hex>` of a document's canonical form: compact JSON of the document with its
/// `checksum` set to `null` (docs/format.md, "Integrity chain").
pub(crate) fn document_checksum(v: &Value) -> String {
    let canonical = serde_json::to_vec(v).expect("JSON values always serialise");
    format!("sha256:{}", hex::encode(Sha256::digest(&canonical)))
}

/// Serialises a repository document: pretty JSON with its own `checksum` (SHA-256 of the
/// canonical form), stable field order.
pub fn to_json<T: Serialize>(doc: &T) -> Vec<u8> {
    let mut v = serde_json::to_value(doc).expect("repository documents always serialise");
    if let Some(map) = v.as_object_mut() {
        map.insert(CHECKSUM.into(), Value::Null);
        let sum = document_checksum(&v);
        v[CHECKSUM] = Value::String(sum);
    }
    serde_json::to_vec_pretty(&v).expect("JSON values always serialise")
}

/// Parses a repository document named `what` (its path): checks the `format` tag, which must
/// be v2, then the document's own checksum (required).
///
/// A document claiming v1 (whose checksum was optional) is refused: only the readers that know
/// the repository's legacy runs accept one, with [`from_json_accepting_v1`] and
/// `format::repository::Legacy` (docs/format.md, "Repository identity and version").
///
/// Errors: [`FormatError::Version`] for an unknown or missing tag, [`FormatError::Corrupt`]
/// for a v1 document, bytes that are not JSON, a checksum that does not match (naming both
/// values) or is missing, and fields of the wrong shape.
pub fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, FormatError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{what}: not JSON: {e}")))?;
    if v.get("format").and_then(|f| f.as_str()) == Some(FORMAT_V1) {
        return Err(FormatError::Corrupt(format!(
            "{what} claims format {FORMAT_V1} (no checksum), which no v1 build wrote for this kind of object or this run: a {FORMAT} document edited to look older is refused; restore the object from a copy"
        )));
    }
    from_json_accepting_v1(bytes, what)
}

/// [`from_json`], but also accepting v1 documents (their checksum checked only if present).
/// The caller must then hold the document to the repository's legacy rule
/// (`format::repository::Legacy`): a v1 document is valid only for a run a v1 build wrote.
pub fn from_json_accepting_v1<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, FormatError> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{what}: not JSON: {e}")))?;
    let v2 = match v.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) | Some(FORMAT_V3) => true,
        Some(FORMAT_V1) => false,
        Some(other) => {
            return Err(FormatError::Version(format!(
                "{what} has format {other:?}; this build reads {FORMAT_V3:?}, {FORMAT:?} and {FORMAT_V1:?} (upgrade kafka-backup-operator)"
            )));
        }
        None => {
            return Err(FormatError::Version(format!(
                "{what} is not a kafka-backup-operator document (no format tag)"
            )));
        }
    };
    match v.get(CHECKSUM).cloned() {
        Some(Value::String(stored)) => {
            v[CHECKSUM] = Value::Null;
            let computed = document_checksum(&v);
            if computed != stored {
                return Err(FormatError::Corrupt(format!(
                    "{what}: checksum mismatch (stored {stored}, computed {computed}): the object was changed or damaged after it was written; restore it from a copy or use another run"
                )));
            }
        }
        None | Some(Value::Null) if !v2 => {}
        _ => {
            return Err(FormatError::Corrupt(format!(
                "{what}: no valid checksum, which every {FORMAT} document carries: the object was changed or damaged after it was written"
            )));
        }
    }
    serde_json::from_value(v).map_err(|e| FormatError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_map_is_compact() {
        let mut m = PartitionOffsetMap::default();
        for s in 0..100 {
            m.push(s, 1000 + s);
        }
        // a gap in the source (aborted records 100..=109), then more
        for s in 110..120 {
            m.push(s, 1000 + s - 10);
        }
        // translation: plan::translate_position (its tests cover the rule)
        assert_eq!(m.ranges, vec![[0, 99, 1000], [110, 119, 1100]]);
    }

    #[test]
    fn documents_carry_their_own_checksum() {
        let doc = Checkpoint {
            format: FORMAT.into(),
            run_id: "r1".into(),
            ..Default::default()
        };
        let bytes = to_json(&doc);
        assert_eq!(from_json::<Checkpoint>(&bytes, "cp").unwrap(), doc);
        // one changed value, the checksum left as it was: refused, naming the object
        let edited = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"r1\"", "\"r2\"");
        let e = from_json::<Checkpoint>(edited.as_bytes(), "cp").unwrap_err();
        assert!(e.to_string().contains("cp: checksum mismatch"), "{e}");
        // the checksum removed from a v2 document: refused
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v.as_object_mut().unwrap().remove("checksum");
        let e = from_json::<Checkpoint>(&serde_json::to_vec(&v).unwrap(), "cp").unwrap_err();
        assert!(e.to_string().contains("no valid checksum"), "{e}");
        // a v1 document without checksum is read only where the legacy rule applies
        v["format"] = Value::String(FORMAT_V1.into());
        let old: Checkpoint =
            from_json_accepting_v1(&serde_json::to_vec(&v).unwrap(), "cp").unwrap();
        assert_eq!(old.run_id, "r1");
        let e = from_json::<Checkpoint>(&serde_json::to_vec(&v).unwrap(), "cp").unwrap_err();
        assert!(e.to_string().contains("cp claims format"), "{e}");
    }

    #[test]
    fn foreign_format_is_refused() {
        let e = from_json::<Checkpoint>(br#"{"format":"other/v9"}"#, "checkpoint").unwrap_err();
        assert!(e.to_string().contains("other/v9"));
    }

    #[test]
    fn the_object_lock_record_is_the_earliest_date_of_the_run_and_its_carried_segments() {
        let seg = |run: &str| SegmentRef {
            path: format!("b/data/t/0/00000000000000000000-{run}.seg"),
            first_offset: 0,
            last_offset: 0,
            records: 1,
            raw_bytes: 1,
            stored_bytes: 1,
            min_timestamp: 0,
            max_timestamp: 0,
            crc32c: 0,
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        };
        let topics = vec![TopicManifest {
            name: "t".into(),
            topic_id: String::new(),
            partition_count: 1,
            configs: Default::default(),
            partitions: vec![PartitionManifest {
                partition: 0,
                log_start_offset: 0,
                covered_from: 0,
                cut: 0,
                start_offset: 0,
                records: 0,
                raw_bytes: 0,
                min_timestamp: None,
                max_timestamp: None,
                gaps: vec![],
                segments: vec![seg("20261101T000000.000Z"), seg("20261121T000000.000Z")],
            }],
        }];
        let r = ObjectLockRecord::for_run("COMPLIANCE", 30, "20261121T000000.000Z", 0, &topics);
        assert_eq!(r.mode, "COMPLIANCE");
        assert_eq!(
            r.retain_until,
            layout::run_id_ms("20261101T000000.000Z").unwrap() + 30 * 86_400_000
        );
        // 2026-12-01T00:00:00Z
        assert_eq!(r.retain_until, 1_796_083_200_000);
    }
}
