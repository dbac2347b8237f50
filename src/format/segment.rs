//! Segment objects: a magic line, then blocks. A block holds one or more whole record
//! batches exactly as fetched; blocks of uncompressed batches may get an outer compression.
//!
//! ```text
//! segment := "KBOSEG1\n" block*
//! block   := "KBLK" codec:u8 0:u8 0:u16 stored_len:u32 raw_len:u32 crc32c(payload):u32 payload
//! ```
//! All integers big-endian. `codec`: 0 none, 3 lz4 (frame), 4 zstd. See docs/format.md.
// Without `runtime` only the readers and checks are built (the fuzz targets).
#![cfg_attr(not(feature = "runtime"), allow(unused_imports, dead_code))]
use bytes::{Buf, BufMut, Bytes, BytesMut};
#[cfg(feature = "runtime")]
use opendal::Operator;

use super::FormatError;
use super::batch::{self, Codec, RawBatch};
use super::layout::{self, FORMAT};
use super::manifest::{BlockIndex, SegmentIndex, SegmentRef, TxnMarker};
#[cfg(feature = "runtime")]
use crate::storage::{self, StorageError, backend};

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"KBOSEG1\n";
/// Block header size.
pub const BLOCK_HEADER: usize = 20;
/// Largest raw (decompressed) size a block may claim: 1 GiB, above any record batch a broker
/// accepts (`message.max.bytes` is an i32 and in practice far smaller) plus one block target.
pub const MAX_BLOCK_RAW: usize = 1 << 30;
/// Raw bytes gathered before a block is written (1 MiB): the unit of ranged reads.
pub const BLOCK_TARGET: usize = 1 << 20;
/// Multipart chunk for streaming uploads (8 MiB; S3 needs >= 5 MiB parts).
pub const UPLOAD_CHUNK: usize = 8 << 20;

/// Outer compression of blocks of uncompressed batches (KafkaBackup `compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    pub codec: Codec,
    pub level: i32,
}

/// Streams batches of one partition into a segment object.
#[cfg(feature = "runtime")]
pub struct SegmentWriter {
    path: String,
    topic: String,
    partition: i32,
    writer: opendal::Writer,
    outer: Outer,
    pos: u64,
    crc: u32,
    block: BytesMut,
    block_compressed: bool,
    block_meta: Option<BlockIndex>,
    index: SegmentIndex,
    seg: SegmentRef,
    /// Wall-clock ms when the segment was opened (for `segmentMaxIntervalMs`).
    pub opened_at: std::time::Instant,
}

#[cfg(feature = "runtime")]
impl SegmentWriter {
    /// Opens `<backup>/data/<topic>/<partition>/<first_offset>-<run>.seg` for streaming.
    pub async fn create(
        op: &Operator,
        backup: &str,
        run: &str,
        topic: &str,
        partition: i32,
        first_offset: i64,
        outer: Outer,
    ) -> Result<Self, StorageError> {
        let path = layout::segment(backup, run, topic, partition, first_offset);
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
            seg: SegmentRef {
                path: path.clone(),
                first_offset: i64::MAX,
                last_offset: -1,
                records: 0,
                raw_bytes: 0,
                stored_bytes: 0,
                min_timestamp: i64::MAX,
                max_timestamp: i64::MIN,
                crc32c: crc32c::crc32c(MAGIC),
                index_crc32c: None,
                index_bytes: None,
                last_batch_offset: None,
                last_batch_crc32c: None,
            },
            path,
            topic: topic.into(),
            partition,
            writer,
            outer,
            pos: MAGIC.len() as u64,
            crc: crc32c::crc32c(MAGIC),
            block: BytesMut::new(),
            block_compressed: false,
            block_meta: None,
            index: SegmentIndex {
                format: FORMAT.into(),
                topic: topic.into(),
                partition,
                first_offset: None,
                last_offset: None,
                stored_bytes: None,
                blocks: vec![],
                markers: vec![],
            },
            opened_at: std::time::Instant::now(),
        })
    }

    /// Raw batch bytes written so far (for `segmentMaxBytes`).
    pub fn raw_bytes(&self) -> u64 {
        self.seg.raw_bytes
    }

    /// True before the first batch.
    pub fn is_empty(&self) -> bool {
        self.seg.last_offset < 0
    }

    /// Appends one batch (whole, as fetched).
    pub async fn push(&mut self, b: &RawBatch) -> Result<(), StorageError> {
        let h = &b.header;
        let compressed = h.codec()? != Codec::None;
        if !self.block.is_empty()
            && (self.block.len() + b.bytes.len() > BLOCK_TARGET
                || compressed != self.block_compressed)
        {
            self.flush_block().await?;
        }
        let min_ts = batch::min_timestamp(b)?;
        let records = if h.is_control() {
            0
        } else {
            h.record_count.max(0) as u64
        };
        if let Some(commit) = batch::control_marker(b)? {
            self.index.markers.push(TxnMarker {
                offset: h.base_offset,
                producer_id: h.producer_id,
                commit,
            });
        }
        self.block_compressed = compressed;
        let m = self.block_meta.get_or_insert(BlockIndex {
            pos: self.pos,
            len: 0,
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            records: 0,
            batches: 0,
            transactional: false,
            crc32c: None,
        });
        m.last_offset = h.last_offset();
        m.records += records;
        m.batches += 1;
        m.transactional |= h.is_transactional();
        if !h.is_control() {
            m.min_timestamp = m.min_timestamp.min(min_ts);
            m.max_timestamp = m.max_timestamp.max(h.max_timestamp);
            self.seg.min_timestamp = self.seg.min_timestamp.min(min_ts);
            self.seg.max_timestamp = self.seg.max_timestamp.max(h.max_timestamp);
        }
        self.seg.last_batch_offset = Some(h.base_offset);
        self.seg.last_batch_crc32c = Some(h.crc);
        self.seg.first_offset = self.seg.first_offset.min(h.base_offset);
        self.seg.last_offset = h.last_offset();
        self.seg.records += records;
        self.seg.raw_bytes += b.bytes.len() as u64;
        self.block.extend_from_slice(&b.bytes);
        Ok(())
    }

    async fn flush_block(&mut self) -> Result<(), StorageError> {
        let Some(mut meta) = self.block_meta.take() else {
            return Ok(());
        };
        let raw = std::mem::take(&mut self.block).freeze();
        let codec = if self.block_compressed {
            Codec::None
        } else {
            self.outer.codec
        };
        let payload = compress_block(codec, self.outer.level, &raw)?;
        let mut head = BytesMut::with_capacity(BLOCK_HEADER);
        head.put_slice(b"KBLK");
        head.put_u8(codec_byte(codec));
        head.put_u8(0);
        head.put_u16(0);
        head.put_u32(payload.len() as u32);
        head.put_u32(raw.len() as u32);
        let block_crc = crc32c::crc32c(&payload);
        head.put_u32(block_crc);
        meta.crc32c = Some(block_crc);
        self.crc = crc32c::crc32c_append(self.crc, &head);
        self.crc = crc32c::crc32c_append(self.crc, &payload);
        meta.len = (BLOCK_HEADER + payload.len()) as u64;
        if meta.min_timestamp == i64::MAX {
            // a block of control batches only
            meta.min_timestamp = -1;
            meta.max_timestamp = -1;
        }
        self.pos += meta.len;
        self.index.blocks.push(meta);
        self.writer
            .write(head.freeze())
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
        self.flush_block().await?;
        self.writer
            .close()
            .await
            .map_err(|e| backend("close", &self.path, e))?;
        let idx_path = layout::segment_index(&self.path);
        let mut seg = self.seg;
        seg.stored_bytes = self.pos;
        seg.crc32c = self.crc;
        self.index.first_offset = Some(seg.first_offset);
        self.index.last_offset = Some(seg.last_offset);
        self.index.stored_bytes = Some(seg.stored_bytes);
        let idx = super::manifest::to_json(&self.index);
        seg.index_crc32c = Some(crc32c::crc32c(&idx));
        seg.index_bytes = Some(idx.len() as u64);
        storage::write_all(op, &idx_path, idx).await?;
        if seg.min_timestamp == i64::MAX {
            seg.min_timestamp = -1;
            seg.max_timestamp = -1;
        }
        tracing::debug!(topic = %self.topic, partition = self.partition, path = %seg.path, bytes = seg.stored_bytes, "segment complete");
        Ok(seg)
    }

    /// Abandons the upload (a cancelled run); nothing is left behind on S3, and a partial
    /// file on a filesystem is overwritten by the resumed run.
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }
}

fn codec_byte(c: Codec) -> u8 {
    match c {
        Codec::None => 0,
        Codec::Lz4 => 3,
        Codec::Zstd => 4,
        Codec::Gzip => 1,
        Codec::Snappy => 2,
    }
}

fn compress_block(codec: Codec, level: i32, raw: &[u8]) -> Result<Bytes, FormatError> {
    match codec {
        Codec::None => Ok(Bytes::copy_from_slice(raw)),
        Codec::Zstd => zstd::bulk::compress(raw, level)
            .map(Bytes::from)
            .map_err(|e| FormatError::Corrupt(format!("zstd: {e}"))),
        Codec::Lz4 => {
            use kafka_protocol::compression::{Compressor, Lz4};
            let mut out = BytesMut::new();
            Lz4::compress(&mut out, |b: &mut BytesMut| {
                b.extend_from_slice(raw);
                Ok(())
            })
            .map_err(|e| FormatError::Corrupt(format!("lz4: {e:#}")))?;
            Ok(out.freeze())
        }
        other => Err(FormatError::Unsupported(format!(
            "outer block compression {other:?}"
        ))),
    }
}

/// Decodes blocks from `data`, which starts at a block boundary, and returns the batches of
/// every block in it. Verifies each block's CRC-32C.
pub fn decode_blocks(data: Bytes, what: &str) -> Result<Vec<RawBatch>, FormatError> {
    decode_blocks_at(data, what, 0)
}

/// [`decode_blocks`] for `data` read from byte `base` of the object (for messages).
fn decode_blocks_at(data: Bytes, what: &str, base: u64) -> Result<Vec<RawBatch>, FormatError> {
    let at = |pos: usize| base + pos as u64;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data.len() - pos < BLOCK_HEADER || &data[pos..pos + 4] != b"KBLK" {
            return Err(FormatError::Corrupt(format!(
                "{what}: no block header at byte {}",
                at(pos)
            )));
        }
        let mut h = &data[pos + 4..pos + BLOCK_HEADER];
        let codec = h.get_u8();
        h.advance(3);
        let stored = h.get_u32() as usize;
        let raw_len = h.get_u32() as usize;
        let crc = h.get_u32();
        let start = pos + BLOCK_HEADER;
        if data.len() < start + stored {
            return Err(FormatError::Corrupt(format!(
                "{what}: block at byte {} is truncated",
                at(pos)
            )));
        }
        let payload = data.slice(start..start + stored);
        if crc32c::crc32c(&payload) != crc {
            return Err(FormatError::Corrupt(format!(
                "{what}: CRC-32C mismatch in the payload of the block at byte {}",
                at(pos)
            )));
        }
        // raw_len is outside the payload's CRC: bound it before it sizes an allocation.
        if codec != 0 && raw_len > MAX_BLOCK_RAW {
            return Err(FormatError::Corrupt(format!(
                "{what}: block at byte {} claims {raw_len} raw bytes, above the {MAX_BLOCK_RAW}-byte limit",
                at(pos)
            )));
        }
        let raw = match codec {
            0 => payload,
            4 => Bytes::from(
                zstd::bulk::decompress(&payload, raw_len)
                    .map_err(|e| FormatError::Corrupt(format!("{what}: zstd: {e}")))?,
            ),
            3 => {
                use kafka_protocol::compression::{Decompressor, Lz4};
                let mut p = payload.clone();
                Lz4::decompress(&mut p, |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining())))
                    .map_err(|e| FormatError::Corrupt(format!("{what}: lz4: {e:#}")))?
            }
            c => {
                return Err(FormatError::Corrupt(format!(
                    "{what}: unknown block codec {c}"
                )));
            }
        };
        if raw.len() != raw_len {
            return Err(FormatError::Corrupt(format!(
                "{what}: block at byte {} decompresses to {} bytes, its header says {raw_len}",
                at(pos),
                raw.len()
            )));
        }
        let batches = batch::split_batches(&raw)?;
        let used: usize = batches.iter().map(|b| b.bytes.len()).sum();
        if used != raw.len() {
            return Err(FormatError::Corrupt(format!(
                "{what}: block at byte {} holds a partial batch",
                at(pos)
            )));
        }
        out.extend(batches);
        pos = start + stored;
    }
    Ok(out)
}

#[cfg(feature = "runtime")]
/// Reads a segment's index, unverified (tools that inspect a damaged repository).
pub async fn read_index(op: &Operator, segment_path: &str) -> Result<SegmentIndex, StorageError> {
    let p = layout::segment_index(segment_path);
    let bytes = storage::read_opt(op, &p)
        .await?
        .ok_or_else(|| StorageError::NotFound(format!("segment index {p} is missing")))?;
    Ok(super::manifest::from_json(&bytes, &p)?)
}

#[cfg(feature = "runtime")]
/// Reads the index of segment `seg`, which a manifest lists for `topic`/`partition` of backup
/// `backup`, and verifies the chain from the manifest entry to the index (docs/format.md,
/// "Integrity chain"): the segment lies under that partition's directory; the index object has
/// the size and CRC-32C the entry records and its own checksum; it names the same topic,
/// partition, offset range and segment size; its blocks are adjacent, in offset order, start
/// after the magic, end at the segment's end, and add up to the entry's record count.
///
/// Errors: [`StorageError::NotFound`] for a missing index, [`FormatError::Corrupt`] (inside
/// [`StorageError::Format`]) naming the object and what differs.
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

/// The pure part of [`read_verified_index`]: checks index bytes against their manifest entry.
pub fn verify_index(
    bytes: &[u8],
    backup: &str,
    topic: &str,
    partition: i32,
    seg: &SegmentRef,
) -> Result<SegmentIndex, FormatError> {
    let p = layout::segment_index(&seg.path);
    let bad = |what: String| {
        FormatError::Corrupt(format!(
            "{p}: {what} (manifest entry for {topic}/{partition}, offsets {}..={})",
            seg.first_offset, seg.last_offset
        ))
    };
    let dir = format!("{backup}/data/{topic}/{partition}/");
    if !seg.path.starts_with(&dir) || !seg.path.ends_with(".seg") || seg.path.contains("/../") {
        return Err(bad(format!(
            "the manifest lists segment {:?} outside {dir}",
            seg.path
        )));
    }
    if let Some(n) = seg.index_bytes
        && bytes.len() as u64 != n
    {
        return Err(bad(format!(
            "size is {} bytes, the manifest records {n}",
            bytes.len()
        )));
    }
    if let Some(c) = seg.index_crc32c
        && crc32c::crc32c(bytes) != c
    {
        return Err(bad(format!(
            "CRC-32C is {}, the manifest records {c}: the index was changed or damaged",
            crc32c::crc32c(bytes)
        )));
    }
    let idx: SegmentIndex = super::manifest::from_json(bytes, &p)?;
    if idx.topic != topic || idx.partition != partition {
        return Err(bad(format!(
            "the index describes {}/{}",
            idx.topic, idx.partition
        )));
    }
    for (name, got, want) in [
        ("first offset", idx.first_offset, seg.first_offset),
        ("last offset", idx.last_offset, seg.last_offset),
    ] {
        if let Some(g) = got
            && g != want
        {
            return Err(bad(format!("the index records {name} {g}")));
        }
    }
    if let Some(n) = idx.stored_bytes
        && n != seg.stored_bytes
    {
        return Err(bad(format!(
            "the index records a segment of {n} bytes, the manifest {}",
            seg.stored_bytes
        )));
    }
    let mut pos = MAGIC.len() as u64;
    let mut prev_last = i64::MIN;
    let mut records = 0u64;
    for b in &idx.blocks {
        if b.pos != pos || b.len < BLOCK_HEADER as u64 {
            return Err(bad(format!(
                "block at byte {} does not follow the previous one (expected byte {pos})",
                b.pos
            )));
        }
        if b.first_offset > b.last_offset
            || b.first_offset <= prev_last
            || b.first_offset < seg.first_offset
            || b.last_offset > seg.last_offset
        {
            return Err(bad(format!(
                "block at byte {} holds offsets {}..={}, out of order or outside the segment",
                b.pos, b.first_offset, b.last_offset
            )));
        }
        prev_last = b.last_offset;
        pos += b.len;
        records += b.records;
    }
    if !idx.blocks.is_empty() && pos != seg.stored_bytes {
        return Err(bad(format!(
            "blocks end at byte {pos}, the segment is {} bytes",
            seg.stored_bytes
        )));
    }
    if records != seg.records {
        return Err(bad(format!(
            "blocks hold {records} records, the manifest records {}",
            seg.records
        )));
    }
    Ok(idx)
}

#[cfg(feature = "runtime")]
/// Reads the consecutive blocks `blocks` (in file order, contiguous) with one ranged read and
/// checks each against its index entry: its header's CRC-32C (v2 indexes), the payload's
/// CRC-32C, its first and last offset and batch count. A short read (truncated object) is
/// an error naming the missing block.
pub async fn read_blocks(
    op: &Operator,
    segment_path: &str,
    blocks: &[BlockIndex],
) -> Result<Vec<RawBatch>, StorageError> {
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        return Ok(vec![]);
    };
    let range = first.pos..last.pos + last.len;
    let buf = op
        .read_with(segment_path)
        .range(range.clone())
        .await
        .map_err(|e| backend("read", segment_path, e))?;
    Ok(decode_checked(buf.to_bytes(), segment_path, blocks)?)
}

/// Decodes `data`, which holds exactly `blocks` (from `blocks[0].pos`), checking each block
/// against its index entry.
pub fn decode_checked(
    data: Bytes,
    what: &str,
    blocks: &[BlockIndex],
) -> Result<Vec<RawBatch>, FormatError> {
    let Some(first) = blocks.first() else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for b in blocks {
        let place = format!(
            "{what}: block at byte {} (offsets {}..={})",
            b.pos, b.first_offset, b.last_offset
        );
        // The index was verified (blocks contiguous, each at least a header long); checked
        // again here so that no index can make this read out of bounds.
        let (Some(at), true) = (b.pos.checked_sub(first.pos), b.len >= BLOCK_HEADER as u64) else {
            return Err(FormatError::Corrupt(format!(
                "{place}: not a block of this read"
            )));
        };
        let at = at as usize;
        let end = at.saturating_add(b.len as usize);
        if data.len() < end {
            return Err(FormatError::Corrupt(format!(
                "{place} is missing: the object ends before byte {} (truncated)",
                b.pos + b.len
            )));
        }
        let block = data.slice(at..end);
        if let Some(c) = b.crc32c {
            let stored = u32::from_be_bytes([block[16], block[17], block[18], block[19]]);
            if &block[..4] == b"KBLK" && stored != c {
                return Err(FormatError::Corrupt(format!(
                    "{place}: its header's CRC-32C {stored} differs from the index's {c}: the segment is not the one the index describes"
                )));
            }
        }
        let batches = decode_blocks_at(block, what, b.pos).map_err(|e| {
            FormatError::Corrupt(format!(
                "{} (offsets {}..={})",
                e.to_string().trim_start_matches("corrupt data: "),
                b.first_offset,
                b.last_offset
            ))
        })?;
        let (Some(f), Some(l)) = (batches.first(), batches.last()) else {
            return Err(FormatError::Corrupt(format!("{place} holds no batch")));
        };
        if f.header.base_offset != b.first_offset
            || l.header.last_offset() != b.last_offset
            || batches.len() != b.batches as usize
        {
            return Err(FormatError::Corrupt(format!(
                "{place} holds {} batches at offsets {}..={}, not what the index records",
                batches.len(),
                f.header.base_offset,
                l.header.last_offset()
            )));
        }
        out.extend(batches);
    }
    Ok(out)
}
