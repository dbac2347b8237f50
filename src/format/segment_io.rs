//! Segment objects through storage (runtime only): [`SegmentWriter`] streams a partition's
//! batches into a segment object and writes its index; the readers fetch an index, blocks or a
//! whole segment and check them with the pure checks of [`super::segment`] (every message
//! names the object).
use bytes::Bytes;
use opendal::Operator;

use super::FormatError;
use super::batch::RawBatch;
use super::layout;
use super::manifest::{BlockIndex, SegmentIndex, SegmentRef};
use super::seal::{DataKey, RunKeys};
use super::segment::{
    BLOCK_HEADER, FullRead, MAGIC, Outer, SegmentEncoder, SegmentFacts, decode_checked,
    object_error, verify_index, verify_parts,
};
use crate::storage::{self, StorageError, backend};

/// Multipart chunk for streaming uploads (8 MiB; S3 needs >= 5 MiB parts).
pub const UPLOAD_CHUNK: usize = 8 << 20;
/// Blocks read with one ranged read by [`read_verified_segment`] (at most 8 blocks, about
/// 8 MiB of raw data: the memory bound of a full read).
const BLOCKS_PER_FULL_READ: usize = 8;
/// Block headers [`verify_object`] reads at once (20-byte ranged reads).
const HEADER_READS: usize = 16;
/// Segments [`verify_objects`] checks at once.
const OBJECT_CHECKS: usize = 8;

/// A push whose encoding compresses at least this many bytes runs on the blocking pool
/// ([`SegmentWriter::push`]): the partitions of a backup share one task, so compression done
/// in place would use one core only.
const OFFLOAD_BYTES: usize = 64 << 10;

/// Streams batches of one partition into a segment object ([`SegmentEncoder`] makes the
/// bytes).
pub struct SegmentWriter {
    /// The encoder; `None` only while a push runs on the blocking pool.
    enc: Option<SegmentEncoder>,
    path: String,
    topic: String,
    partition: i32,
    writer: opendal::Writer,
    /// Wall-clock ms when the segment was opened (for `segmentMaxIntervalMs`).
    pub opened_at: std::time::Instant,
}

impl SegmentWriter {
    /// Opens `<backup>/data/<topic>/<partition>/<first_offset>-<run>.seg` for streaming.
    /// With `data_key` (run `run`'s data key) every block is sealed under a segment key
    /// derived with a fresh random salt (`seal` of the entry and the index).
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        op: &Operator,
        backup: &str,
        run: &str,
        topic: &str,
        partition: i32,
        first_offset: i64,
        outer: Outer,
        data_key: Option<&DataKey>,
    ) -> Result<Self, StorageError> {
        let enc =
            SegmentEncoder::new(backup, run, topic, partition, first_offset, outer, data_key)?;
        let path = enc.path().to_string();
        let mut writer = op
            .writer_with(&path)
            .chunk(UPLOAD_CHUNK)
            .concurrent(2)
            .await
            .map_err(|e| backend("create", &path, e))?;
        writer
            .write(Bytes::from_static(MAGIC))
            .await
            .map_err(|e| backend("write", &path, e))?;
        Ok(SegmentWriter {
            enc: Some(enc),
            path,
            topic: topic.into(),
            partition,
            writer,
            opened_at: std::time::Instant::now(),
        })
    }

    fn enc(&self) -> &SegmentEncoder {
        self.enc.as_ref().expect("no push is running")
    }

    /// Raw batch bytes written so far (for `segmentMaxBytes`).
    pub fn raw_bytes(&self) -> u64 {
        self.enc().raw_bytes()
    }

    /// True before the first batch.
    pub fn is_empty(&self) -> bool {
        self.enc().is_empty()
    }

    /// Appends one batch (whole, as fetched), writing the block it completes, if any. A push
    /// that compresses at least [`OFFLOAD_BYTES`] (re-compression, a block's outer
    /// compression) runs on tokio's blocking pool, so that the partitions of a run compress on
    /// every core.
    pub async fn push(&mut self, b: &RawBatch) -> Result<(), StorageError> {
        let mut enc = self.enc.take().expect("no push is running");
        let (enc, block) = if enc.push_work() >= OFFLOAD_BYTES {
            let b = b.clone();
            tokio::task::spawn_blocking(move || {
                let r = enc.push(&b);
                (enc, r)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        } else {
            let r = enc.push(b);
            (enc, r)
        };
        self.enc = Some(enc);
        if let Some(block) = block? {
            self.write_block(block).await?;
        }
        Ok(())
    }

    /// Writes a closed block: its header, then its payload.
    async fn write_block(&mut self, (head, payload): (Bytes, Bytes)) -> Result<(), StorageError> {
        self.writer
            .write(head)
            .await
            .map_err(|e| backend("write", &self.path, e))?;
        self.writer
            .write(payload)
            .await
            .map_err(|e| backend("write", &self.path, e))?;
        Ok(())
    }

    /// Writes the last block, completes the upload and writes the index next to it.
    /// Returns the segment's manifest entry.
    pub async fn finish(mut self, op: &Operator) -> Result<SegmentRef, StorageError> {
        let mut enc = self.enc.take().expect("no push is running");
        for block in enc.close()? {
            self.write_block(block).await?;
        }
        self.writer
            .close()
            .await
            .map_err(|e| backend("close", &self.path, e))?;
        let idx_path = layout::segment_index(&self.path);
        let (seg, idx) = enc.finish();
        storage::write_all(op, &idx_path, idx).await?;
        tracing::debug!(topic = %self.topic, partition = self.partition, path = %seg.path, bytes = seg.stored_bytes, "segment complete");
        Ok(seg)
    }

    /// Abandons the upload (a cancelled run); nothing is left behind on S3, and a partial
    /// file on a filesystem is overwritten by the resumed run.
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }
}

/// Reads a segment's index, unverified (tools that inspect a damaged repository).
pub async fn read_index(op: &Operator, segment_path: &str) -> Result<SegmentIndex, StorageError> {
    let p = layout::segment_index(segment_path);
    let bytes = storage::read_opt(op, &p)
        .await?
        .ok_or_else(|| StorageError::NotFound(format!("segment index {p} is missing")))?;
    Ok(super::manifest::from_json_accepting_v1(&bytes, &p)?)
}
/// Reads the index of segment `seg`, which a manifest lists for `topic`/`partition` of backup
/// `backup`, and verifies the chain from the manifest entry to the index (docs/format.md,
/// "Integrity chain"): the segment lies under that partition's directory; the index object has
/// the size and CRC-32C the entry records and its own checksum; it names the same topic,
/// partition, offset range and segment size; its blocks are adjacent, in offset order, start
/// after the magic, end at the segment's end, and add up to the entry's record count.
///
/// Errors: [`StorageError::NotFound`] for a missing index, [`FormatError::Corrupt`] (inside
/// [`StorageError::Content`]) naming the object and what differs.
pub async fn read_verified_index(
    op: &Operator,
    backup: &str,
    topic: &str,
    partition: i32,
    seg: &SegmentRef,
) -> Result<SegmentIndex, StorageError> {
    let p = layout::segment_index(&seg.path);
    let bytes = storage::read_opt(op, &p).await?.ok_or_else(|| {
        StorageError::NotFound(format!(
            "segment index {p} is missing (the manifest lists its segment for {topic}/{partition}, offsets {}..={}); the backup run is damaged: restore the object from a copy or use another run",
            seg.first_offset, seg.last_offset
        ))
    })?;
    Ok(verify_index(&bytes, backup, topic, partition, seg)?)
}

/// Reads the consecutive blocks `blocks` (in file order, contiguous) with one ranged read and
/// checks each against its index entry: its header's CRC-32C (v2 indexes), the payload's
/// CRC-32C, its first and last offset and batch count; an encrypted segment's blocks are
/// opened with its key from `keys`. A short read (truncated object) is an error naming the
/// missing block.
pub async fn read_blocks(
    op: &Operator,
    seg: &SegmentRef,
    keys: &RunKeys,
    blocks: &[BlockIndex],
) -> Result<Vec<RawBatch>, StorageError> {
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        return Ok(vec![]);
    };
    let key = keys.segment_key(seg)?;
    let segment_path = seg.path.as_str();
    let range = first.pos..last.pos + last.len;
    let buf = op
        .read_with(segment_path)
        .range(range.clone())
        .await
        .map_err(|e| backend("read", segment_path, e))?;
    Ok(decode_checked(
        buf.to_bytes(),
        segment_path,
        blocks,
        key.as_ref(),
    )?)
}

/// Reads bytes `range` of object `path`; a short read is an error naming the object.
async fn read_range(
    op: &Operator,
    path: &str,
    range: std::ops::Range<u64>,
) -> Result<Bytes, StorageError> {
    let want = range.end - range.start;
    let b = op
        .read_with(path)
        .range(range.clone())
        .await
        .map_err(|e| backend("read", path, e))?
        .to_bytes();
    if b.len() as u64 != want {
        return Err(FormatError::Corrupt(format!(
            "{path}: bytes {}..{} read short ({} bytes): the object is truncated",
            range.start,
            range.end,
            b.len()
        ))
        .into());
    }
    Ok(b)
}

/// Checks that segment `seg` exists with the size its entry records (a stat).
async fn check_size(op: &Operator, seg: &SegmentRef) -> Result<(), StorageError> {
    match op.stat(&seg.path).await {
        Ok(m) if m.content_length() == seg.stored_bytes => Ok(()),
        Ok(m) => Err(object_error(
            seg,
            format!(
                "the object is {} bytes, the manifest records storedBytes {}",
                m.content_length(),
                seg.stored_bytes
            ),
        )
        .into()),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Err(StorageError::NotFound(format!(
            "segment {} is missing (manifest entry offsets {}..={}); the backup run is damaged: restore the object from a copy or use another run",
            seg.path, seg.first_offset, seg.last_offset
        ))),
        Err(e) => Err(backend("stat", &seg.path, e)),
    }
}

/// Verifies segment `seg` against its manifest entry before a restore writes anything
/// (docs/format.md, "Integrity chain"), without reading the payloads twice: its size (a stat)
/// against `storedBytes`; its whole-object CRC-32C against `crc32c`, computed from the magic
/// and the 20-byte block headers (small ranged reads, [`HEADER_READS`] at once) combined with
/// the payload CRC-32Cs of the verified index `idx`; its last block read whole and decoded
/// (its batches' CRC-32Cs, `lastOffset`, `lastBatchOffset`, `lastBatchCrc32c`). See
/// [`verify_parts`]. Reads about `20 * blocks + one block` bytes in `blocks + 1` requests.
///
/// Errors: [`StorageError::NotFound`] for a missing object, [`FormatError::Corrupt`] (inside
/// [`StorageError::Content`]) naming the object and what differs.
pub async fn verify_object(
    op: &Operator,
    seg: &SegmentRef,
    idx: &SegmentIndex,
    keys: &RunKeys,
) -> Result<(), StorageError> {
    use futures::{StreamExt, TryStreamExt};
    let key = keys.segment_key(seg)?;
    check_size(op, seg).await?;
    let n = idx.blocks.len();
    let path = seg.path.as_str();
    // The futures are built first: a stream holding no closure keeps the caller's future
    // `Send` for every lifetime (the operator spawns it).
    let reads: Vec<_> = (idx.blocks.iter().take(n.saturating_sub(1)).enumerate())
        .map(|(i, b)| {
            let start = if i == 0 { 0 } else { b.pos };
            read_range(op, path, start..b.pos + BLOCK_HEADER as u64)
        })
        .collect();
    let heads: Vec<Bytes> = futures::stream::iter(reads)
        .buffered(HEADER_READS)
        .try_collect()
        .await?;
    let start = match idx.blocks.last() {
        Some(b) if n > 1 => b.pos,
        _ => 0,
    };
    if start > seg.stored_bytes {
        return Err(object_error(seg, "the index describes blocks past the object's end").into());
    }
    let tail = read_range(op, path, start..seg.stored_bytes).await?;
    Ok(verify_parts(seg, idx, &heads, tail, key.as_ref())?)
}

/// [`verify_object`] for every (entry, verified index) pair, [`OBJECT_CHECKS`] segments at
/// once. The failure of the first failing segment in `segments` order is returned (the same
/// error on every attempt).
pub async fn verify_objects(
    op: &Operator,
    segments: &[(&SegmentRef, &SegmentIndex)],
    keys: &RunKeys,
) -> Result<(), StorageError> {
    use futures::{StreamExt, TryStreamExt};
    let checks: Vec<_> = segments
        .iter()
        .map(|(s, i)| verify_object(op, s, i, keys))
        .collect();
    futures::stream::iter(checks)
        .buffered(OBJECT_CHECKS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Reads segment `seg` whole, in ranged reads of at most [`BLOCKS_PER_FULL_READ`] blocks of
/// the verified index `idx`, and checks every checksum and size the format records for it
/// ([`FullRead`]: `storedBytes` (the bytes read: the caller stats the object first), the magic,
/// the whole-object `crc32c`, each block against the index and its payload CRC-32C, each
/// batch's own CRC-32C, the first and last offsets, `rawBytes`, `lastBatchOffset` and
/// `lastBatchCrc32c`). Returns the counts the validation compares with the manifest.
///
/// Errors: as [`verify_object`]; every message names the object.
pub async fn read_verified_segment(
    op: &Operator,
    seg: &SegmentRef,
    idx: &SegmentIndex,
    keys: &RunKeys,
) -> Result<SegmentFacts, StorageError> {
    let key = keys.segment_key(seg)?;
    let mut read = FullRead::new(seg, key.as_ref());
    if idx.blocks.is_empty() {
        let data = read_range(op, &seg.path, 0..seg.stored_bytes).await?;
        read.no_blocks(&data)?;
    }
    for group in idx.blocks.chunks(BLOCKS_PER_FULL_READ) {
        let range = read.range(group);
        let start = range.start;
        let data = read_range(op, &seg.path, range).await?;
        read.group(start, data, group)?;
    }
    Ok(read.finish(idx)?)
}
