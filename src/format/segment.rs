//! Segment objects: a magic line, then blocks. A block holds one or more whole record
//! batches exactly as fetched; blocks of uncompressed batches may get an outer compression.
//!
//! ```text
//! segment := "KBOSEG1\n" block*
//! block   := "KBLK" codec:u8 0:u8 0:u16 stored_len:u32 raw_len:u32 crc32c(payload):u32 payload
//! ```
//! All integers big-endian. `codec`: 0 none, 3 lz4 (frame), 4 zstd. See docs/format.md.
//!
//! Bytes and checks only, no I/O (built without the `runtime` feature too, for the fuzz
//! targets): encoding a segment ([`SegmentEncoder`]), decoding blocks, and checking an index,
//! a segment and its parts against their manifest entry. Reading and writing segment objects
//! through storage is `format::segment_io`.
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::FormatError;
use super::batch::{self, Codec, RawBatch};
use super::layout::{self, FORMAT};
use super::manifest::{BlockIndex, SegmentIndex, SegmentRef, SegmentSeal, TxnMarker};
use super::recompress::{Recompressor, StoreForm};
use super::seal::{self, DataKey, SegmentKey};

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"KBOSEG1\n";
/// Block header size.
pub const BLOCK_HEADER: usize = 20;
/// Largest raw (decompressed) size a block may claim: 1 GiB, above any record batch a broker
/// accepts (`message.max.bytes` is an i32 and in practice far smaller) plus one block target.
pub const MAX_BLOCK_RAW: usize = 1 << 30;
/// Raw bytes gathered before a block is written (1 MiB): the unit of ranged reads.
pub const BLOCK_TARGET: usize = 1 << 20;

/// Outer compression of blocks of uncompressed batches (KafkaBackup `compression`), and
/// whether producer batches of a weaker codec are re-compressed for storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    pub codec: Codec,
    pub level: i32,
    /// Re-compress batches whose producer codec is gzip, snappy or lz4 to zstd at `level`
    /// (`compression: zstd`; not with `keep`, `lz4` or `none`). docs/format.md, "Re-compressed
    /// batches".
    pub recompress: bool,
}

/// Block flags bits 1-3: the producer codec (Kafka's id: 1 gzip, 2 snappy, 3 lz4) of the
/// batches of a block that the backup re-compressed to zstd; 0 for batches as fetched.
pub const FLAG_FROM_SHIFT: u8 = 1;
/// The bits of [`FLAG_FROM_SHIFT`].
pub const FLAG_FROM_MASK: u8 = 0b1110;

/// What a block holds: its batches are all of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// Uncompressed batches (control batches included): the outer compression applies.
    Plain,
    /// Producer-compressed batches as fetched: codec 0.
    Producer,
    /// Batches re-compressed to zstd from this producer codec: codec 0, flags say the codec.
    From(Codec),
}

/// Encodes the batches of one partition into a segment object, block by block, and its index
/// (docs/format.md, "Segment"). Pure: the caller writes the bytes in order (the writer is
/// `format::segment_io::SegmentWriter`): [`MAGIC`], then every block [`Self::push`] and
/// [`Self::close`] return, then the index [`Self::finish`] returns, at
/// [`layout::segment_index`] of [`Self::path`].
///
/// With [`Outer::recompress`], every batch but the segment's last may be re-compressed
/// ([`recompress::Recompressor`]): the encoder holds the latest batch back until the next one
/// comes, and stores the last one as fetched, so that `lastBatchCrc32c` stays the CRC-32C the
/// broker sends for it (the next run's recreation probe compares the two).
pub struct SegmentEncoder {
    outer: Outer,
    recompressor: Option<Recompressor>,
    /// The latest batch pushed, as fetched, not yet stored.
    pending: Option<RawBatch>,
    /// Bytes of the object so far (the magic, then the closed blocks).
    pos: u64,
    /// CRC-32C of the object so far.
    crc: u32,
    /// Raw batches of the open block.
    block: BytesMut,
    block_kind: BlockKind,
    block_meta: Option<BlockIndex>,
    index: SegmentIndex,
    seg: SegmentRef,
    /// The segment key when the repository is encrypted (blocks are sealed).
    key: Option<SegmentKey>,
}

impl SegmentEncoder {
    /// The encoder of segment `<backup>/data/<topic>/<partition>/<first_offset>-<run>.seg`
    /// ([`layout::segment`]). With `data_key` (run `run`'s data key) every block is sealed
    /// under a segment key derived with a fresh random salt (`seal` of the entry and the
    /// index).
    ///
    /// Errors: a salt that does not parse; zstd refuses `outer.level` (with `recompress`).
    pub fn new(
        backup: &str,
        run: &str,
        topic: &str,
        partition: i32,
        first_offset: i64,
        outer: Outer,
        data_key: Option<&DataKey>,
    ) -> Result<Self, FormatError> {
        let path = layout::segment(backup, run, topic, partition, first_offset);
        let seal_ref = data_key.map(|_| SegmentSeal {
            run: run.to_string(),
            salt: seal::new_salt(),
        });
        let key = match (data_key, &seal_ref) {
            (Some(k), Some(s)) => Some(k.segment_key(&seal::parse_salt(&s.salt, &path)?)),
            _ => None,
        };
        let recompressor = if outer.recompress {
            Some(Recompressor::new(outer.level)?)
        } else {
            None
        };
        Ok(SegmentEncoder {
            seg: SegmentRef {
                path,
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
                seal: seal_ref.clone(),
            },
            key,
            outer,
            recompressor,
            pending: None,
            pos: MAGIC.len() as u64,
            crc: crc32c::crc32c(MAGIC),
            block: BytesMut::new(),
            block_kind: BlockKind::Plain,
            block_meta: None,
            index: SegmentIndex {
                format: if data_key.is_some() {
                    layout::FORMAT_V3
                } else {
                    FORMAT
                }
                .into(),
                topic: topic.into(),
                partition,
                first_offset: None,
                last_offset: None,
                stored_bytes: None,
                blocks: vec![],
                markers: vec![],
                seal: seal_ref,
            },
        })
    }

    /// The segment's object name.
    pub fn path(&self) -> &str {
        &self.seg.path
    }

    /// Batch bytes pushed so far (for `segmentMaxBytes`): as stored, and the batch held
    /// back as fetched.
    pub fn raw_bytes(&self) -> u64 {
        self.seg.raw_bytes + self.pending.as_ref().map_or(0, |b| b.bytes.len() as u64)
    }

    /// True before the first batch.
    pub fn is_empty(&self) -> bool {
        self.seg.last_offset < 0 && self.pending.is_none()
    }

    /// Takes one batch (whole, as fetched) and returns the block, if any, that is complete
    /// now: the batch pushed before this one is stored (re-compressed when it qualifies), and
    /// the open block is closed first when it would pass [`BLOCK_TARGET`] with it or holds
    /// batches of another kind (uncompressed, producer-compressed, re-compressed from another
    /// codec).
    ///
    /// Errors: a batch's codec is unknown or its records do not decompress.
    pub fn push(&mut self, b: &RawBatch) -> Result<Option<(Bytes, Bytes)>, FormatError> {
        match self.pending.replace(b.clone()) {
            Some(prev) => self.store(&prev, true),
            None => Ok(None),
        }
    }

    /// Bytes the next [`Self::push`] will compress: the batch held back when it may be
    /// re-compressed, and the open block when that batch will not fit in it and the block gets
    /// the outer compression. A caller may run a push with much work off its async thread.
    pub fn push_work(&self) -> usize {
        let Some(p) = &self.pending else {
            return 0;
        };
        let codec = p.header.codec().unwrap_or(Codec::None);
        let recompress = self.recompressor.is_some()
            && matches!(codec, Codec::Gzip | Codec::Snappy | Codec::Lz4);
        let closes = !self.block.is_empty()
            && self.block.len() + p.bytes.len() > BLOCK_TARGET
            && self.block_kind == BlockKind::Plain
            && self.outer.codec != Codec::None;
        (if recompress { p.bytes.len() } else { 0 }) + if closes { self.block.len() } else { 0 }
    }

    /// Stores the batch held back (as fetched: it is the segment's last) and closes the open
    /// block: the blocks to write, in order (none, one or two).
    pub fn close(&mut self) -> Result<Vec<(Bytes, Bytes)>, FormatError> {
        let mut out = Vec::new();
        if let Some(last) = self.pending.take() {
            out.extend(self.store(&last, false)?);
        }
        out.extend(self.close_block()?);
        Ok(out)
    }

    /// Adds batch `b` to the open block, in the form it is stored in, after closing the block
    /// if `b` cannot join it (returned).
    fn store(
        &mut self,
        b: &RawBatch,
        may_recompress: bool,
    ) -> Result<Option<(Bytes, Bytes)>, FormatError> {
        let form = match (&mut self.recompressor, may_recompress) {
            (Some(r), true) => r.store_form(b)?,
            _ => StoreForm {
                min_timestamp: batch::min_timestamp(b)?,
                batch: b.clone(),
            },
        };
        let kind = match (form.batch.stored_from, b.header.codec()?) {
            (Some(from), _) => BlockKind::From(from),
            (None, Codec::None) => BlockKind::Plain,
            (None, _) => BlockKind::Producer,
        };
        let closed = if !self.block.is_empty()
            && (self.block.len() + form.batch.bytes.len() > BLOCK_TARGET || kind != self.block_kind)
        {
            self.close_block()?
        } else {
            None
        };
        self.append(&form.batch, form.min_timestamp, kind)?;
        Ok(closed)
    }

    /// Appends one batch, in its stored form, to the open block.
    fn append(&mut self, b: &RawBatch, min_ts: i64, kind: BlockKind) -> Result<(), FormatError> {
        let h = &b.header;
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
        self.block_kind = kind;
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

    /// Closes the open block: its header and its payload (compressed with the outer codec
    /// when its batches are not, sealed when the segment is), the next bytes of the object.
    /// None when no block is open.
    fn close_block(&mut self) -> Result<Option<(Bytes, Bytes)>, FormatError> {
        let Some(mut meta) = self.block_meta.take() else {
            return Ok(None);
        };
        let raw = std::mem::take(&mut self.block).freeze();
        let (codec, from) = match self.block_kind {
            BlockKind::Plain => (self.outer.codec, 0),
            BlockKind::Producer => (Codec::None, 0),
            BlockKind::From(c) => (Codec::None, c.bits() as u8),
        };
        let mut payload = compress_block(codec, self.outer.level, &raw)?;
        let sealed_len = payload.len() + if self.key.is_some() { seal::TAG_LEN } else { 0 };
        let mut head = BytesMut::with_capacity(BLOCK_HEADER);
        head.put_slice(b"KBLK");
        head.put_u8(codec_byte(codec));
        let sealed = if self.key.is_some() {
            seal::FLAG_SEALED
        } else {
            0
        };
        head.put_u8(sealed | (from << FLAG_FROM_SHIFT));
        head.put_u16(0);
        head.put_u32(sealed_len as u32);
        head.put_u32(raw.len() as u32);
        if let Some(k) = &self.key {
            let mut buf = Vec::from(payload);
            k.seal_block(self.pos, &head, &mut buf);
            payload = Bytes::from(buf);
        }
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
        Ok(Some((head.freeze(), payload)))
    }

    /// The segment's manifest entry and its index document (JSON), once the blocks
    /// [`Self::close`] returned were written.
    pub fn finish(mut self) -> (SegmentRef, Vec<u8>) {
        debug_assert!(self.pending.is_none() && self.block_meta.is_none());
        let mut seg = self.seg;
        seg.stored_bytes = self.pos;
        seg.crc32c = self.crc;
        self.index.first_offset = Some(seg.first_offset);
        self.index.last_offset = Some(seg.last_offset);
        self.index.stored_bytes = Some(seg.stored_bytes);
        let idx = super::manifest::to_json(&self.index);
        seg.index_crc32c = Some(crc32c::crc32c(&idx));
        seg.index_bytes = Some(idx.len() as u64);
        if seg.min_timestamp == i64::MAX {
            seg.min_timestamp = -1;
            seg.max_timestamp = -1;
        }
        (seg, idx)
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
    decode_blocks_at(data, what, 0, None)
}

/// [`decode_blocks`] for `data` read from byte `base` of the object (positions in messages,
/// and the nonce of sealed blocks), opening sealed blocks with `key` (the segment's key).
fn decode_blocks_at(
    data: Bytes,
    what: &str,
    base: u64,
    key: Option<&SegmentKey>,
) -> Result<Vec<RawBatch>, FormatError> {
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
        let flags = h.get_u8();
        h.advance(2);
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
        // The CRC-32C above covers the stored (sealed) bytes: a changed byte is refused by
        // name before anything is decrypted; the AES-GCM tag then authenticates the rest.
        let payload = match (flags & seal::FLAG_SEALED != 0, key) {
            (false, None) => payload,
            (true, Some(k)) => {
                Bytes::from(k.open_block(at(pos), &data[pos..pos + 16], &payload, what)?)
            }
            (true, None) => {
                return Err(FormatError::Key(format!(
                    "{what}: block at byte {} is encrypted and no key was given for it: set storage.encryption (docs/security.md)",
                    at(pos)
                )));
            }
            (false, Some(_)) => {
                return Err(FormatError::Corrupt(format!(
                    "{what}: block at byte {} is plaintext, but its segment is recorded as encrypted: it was replaced",
                    at(pos)
                )));
            }
        };
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
        let mut batches = batch::split_batches(&raw)?;
        let used: usize = batches.iter().map(|b| b.bytes.len()).sum();
        if used != raw.len() {
            return Err(FormatError::Corrupt(format!(
                "{what}: block at byte {} holds a partial batch",
                at(pos)
            )));
        }
        // Each batch's own CRC-32C, before any reader produces, counts or compares it.
        for b in &batches {
            batch::verify_crc(b).map_err(|e| {
                FormatError::Corrupt(format!(
                    "{what}: block at byte {}: {}",
                    at(pos),
                    e.to_string().trim_start_matches("corrupt data: ")
                ))
            })?;
        }
        if let Some(from) = stored_from(flags, codec, &batches)
            .map_err(|e| FormatError::Corrupt(format!("{what}: block at byte {}: {e}", at(pos))))?
        {
            for b in &mut batches {
                b.stored_from = Some(from);
            }
        }
        out.extend(batches);
        pos = start + stored;
    }
    Ok(out)
}

/// The producer codec a block's flags record for its re-compressed batches
/// ([`FLAG_FROM_MASK`]); None for batches as fetched. Errors: a codec other than gzip, snappy
/// or lz4, or flags that do not fit the block (an outer codec, a batch that is not zstd).
fn stored_from(flags: u8, codec: u8, batches: &[RawBatch]) -> Result<Option<Codec>, String> {
    let bits = (flags & FLAG_FROM_MASK) >> FLAG_FROM_SHIFT;
    if bits == 0 {
        return Ok(None);
    }
    let from = match Codec::from_bits(bits as i16) {
        Ok(c @ (Codec::Gzip | Codec::Snappy | Codec::Lz4)) => c,
        _ => {
            return Err(format!(
                "its flags record producer codec {bits}, not gzip, snappy or lz4"
            ));
        }
    };
    if codec != 0
        || batches
            .iter()
            .any(|b| !matches!(b.header.codec(), Ok(Codec::Zstd)))
    {
        return Err(
            "its flags say its batches were re-compressed to zstd, and they are not".into(),
        );
    }
    Ok(Some(from))
}

/// The pure part of `segment_io::read_verified_index`: checks index bytes against their
/// manifest entry.
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
    // A v2 entry (it names the index's checksum) has a v2 index with every link of the chain;
    // only a legacy entry, which the manifest's reader held to the repository's legacy runs
    // (`format::repository::Legacy`), may have a v1 index.
    let idx: SegmentIndex = if seg.index_crc32c.is_some() {
        let idx: SegmentIndex = super::manifest::from_json(bytes, &p)?;
        if idx.first_offset.is_none()
            || idx.last_offset.is_none()
            || idx.stored_bytes.is_none()
            || idx.blocks.iter().any(|b| b.crc32c.is_none())
        {
            return Err(bad(
                "the index lacks its segment's range or size, or a block's CRC-32C, which every v2 index records".into(),
            ));
        }
        idx
    } else {
        super::manifest::from_json_accepting_v1(bytes, &p)?
    };
    if idx.topic != topic || idx.partition != partition {
        return Err(bad(format!(
            "the index describes {}/{}",
            idx.topic, idx.partition
        )));
    }
    if idx.seal != seg.seal {
        return Err(bad(
            "the index and the manifest entry record different encryption (seal) for the segment"
                .into(),
        ));
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

/// Decodes `data`, which holds exactly `blocks` (from `blocks[0].pos`), checking each block
/// against its index entry; sealed blocks are opened with `key` (the segment's).
pub fn decode_checked(
    data: Bytes,
    what: &str,
    blocks: &[BlockIndex],
    key: Option<&SegmentKey>,
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
                b.pos.saturating_add(b.len)
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
        let batches = decode_blocks_at(block, what, b.pos, key).map_err(|e| match e {
            FormatError::Key(m) => FormatError::Key(m),
            e => FormatError::Corrupt(format!(
                "{} (offsets {}..={})",
                e.to_string().trim_start_matches("corrupt data: "),
                b.first_offset,
                b.last_offset
            )),
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

/// The CRC-32C (docs/format.md conventions) and length of a byte sequence assembled from
/// parts: bytes in hand, and stretches known only by their CRC-32C and length (a block
/// payload the index describes), joined with `crc32c_combine`. The result equals the CRC-32C
/// of the concatenated bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ObjectCrc {
    crc: u32,
    len: u64,
}

impl ObjectCrc {
    /// Appends bytes in hand.
    pub fn bytes(&mut self, b: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.len += b.len() as u64;
    }
    /// Appends `len` bytes whose own CRC-32C is `crc`.
    pub fn part(&mut self, crc: u32, len: u64) {
        self.crc = crc32c::crc32c_combine(self.crc, crc, len as usize);
        self.len += len;
    }
    /// The CRC-32C of everything appended.
    pub fn crc(&self) -> u32 {
        self.crc
    }
    /// The number of bytes appended.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A segment entry's error: the object, what differs, and the entry's offsets.
pub(super) fn object_error(seg: &SegmentRef, what: impl std::fmt::Display) -> FormatError {
    FormatError::Corrupt(format!(
        "{}: {what} (manifest entry offsets {}..={}); the backup run is damaged: restore the object from a copy or use another run",
        seg.path, seg.first_offset, seg.last_offset
    ))
}

/// Checks what a segment's last batch says against the entry's `lastOffset` and, in v2
/// entries, `lastBatchOffset` and `lastBatchCrc32c`.
fn check_last_batch(seg: &SegmentRef, last: Option<&RawBatch>) -> Result<(), FormatError> {
    let Some(b) = last else {
        return Err(object_error(seg, "the segment holds no record batch"));
    };
    let h = &b.header;
    if h.last_offset() != seg.last_offset {
        return Err(object_error(
            seg,
            format!(
                "the last record batch ends at offset {}, the manifest records lastOffset {}",
                h.last_offset(),
                seg.last_offset
            ),
        ));
    }
    if let Some(o) = seg.last_batch_offset
        && h.base_offset != o
    {
        return Err(object_error(
            seg,
            format!(
                "the last record batch starts at offset {}, the manifest records lastBatchOffset {o}",
                h.base_offset
            ),
        ));
    }
    if let Some(c) = seg.last_batch_crc32c
        && h.crc != c
    {
        return Err(object_error(
            seg,
            format!(
                "the last record batch's CRC-32C is {}, the manifest records lastBatchCrc32c {c}",
                h.crc
            ),
        ));
    }
    Ok(())
}

/// Checks the whole-object figures of a segment entry once every byte is accounted for:
/// the object's length against `storedBytes`, its CRC-32C against `crc32c`, and the sum of
/// the blocks' raw sizes against `rawBytes`.
fn check_whole(seg: &SegmentRef, crc: &ObjectCrc, raw: u64) -> Result<(), FormatError> {
    if crc.len() != seg.stored_bytes {
        return Err(object_error(
            seg,
            format!(
                "the object is {} bytes, the manifest records storedBytes {}",
                crc.len(),
                seg.stored_bytes
            ),
        ));
    }
    if crc.crc() != seg.crc32c {
        return Err(object_error(
            seg,
            format!(
                "the CRC-32C of the whole object is {}, the manifest records crc32c {}: the segment was changed after the manifest was written",
                crc.crc(),
                seg.crc32c
            ),
        ));
    }
    if raw != seg.raw_bytes {
        return Err(object_error(
            seg,
            format!(
                "the blocks hold {raw} raw bytes, the manifest records rawBytes {}",
                seg.raw_bytes
            ),
        ));
    }
    Ok(())
}

/// The magic at the start of `data` (the object's first bytes).
fn check_magic(seg: &SegmentRef, data: &[u8]) -> Result<(), FormatError> {
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(object_error(
            seg,
            "the object does not start with the segment magic KBOSEG1",
        ));
    }
    Ok(())
}

/// One block header read on its own: the header's stored and raw payload length and CRC-32C,
/// checked against the index entry `b` (length; CRC-32C in v2 indexes).
fn check_header(
    seg: &SegmentRef,
    b: &BlockIndex,
    h: &[u8],
) -> Result<(u64, u64, u32), FormatError> {
    let place = format!(
        "block at byte {} (offsets {}..={})",
        b.pos, b.first_offset, b.last_offset
    );
    if h.len() != BLOCK_HEADER || &h[..4] != b"KBLK" {
        return Err(object_error(seg, format!("{place}: no block header")));
    }
    let mut f = &h[8..];
    let (stored, raw, crc) = (f.get_u32() as u64, f.get_u32() as u64, f.get_u32());
    if stored + BLOCK_HEADER as u64 != b.len {
        return Err(object_error(
            seg,
            format!(
                "{place}: its header says {} bytes, the index {}",
                stored + BLOCK_HEADER as u64,
                b.len
            ),
        ));
    }
    if let Some(c) = b.crc32c
        && c != crc
    {
        return Err(object_error(
            seg,
            format!("{place}: its header's CRC-32C {crc} differs from the index's {c}"),
        ));
    }
    Ok((stored, raw, crc))
}

/// The pure part of `segment_io::verify_object`: `heads` holds, for every block of the verified index
/// `idx` but the last, the bytes read up to the end of its header (the first from byte 0, so
/// with the magic; the others exactly the 20 header bytes); `tail` the object from the last
/// block's position (from byte 0 when there is at most one block) to `storedBytes`.
///
/// Checks the magic, every header against the index, the whole object's CRC-32C (the bytes
/// read, combined with the payload CRC-32Cs the headers and the index record) and length
/// against the entry's `crc32c` and `storedBytes`, the raw size against `rawBytes`, and
/// decodes the last block: its payload CRC-32C, its batches' own CRC-32Cs, and the last batch
/// against `lastOffset`, `lastBatchOffset` and `lastBatchCrc32c`.
///
/// Sound because every block a restore later reads is checked against the same CRC-32Cs
/// ([`decode_checked`]): the bytes it produces are the bytes the manifest's `crc32c` covers.
pub fn verify_parts(
    seg: &SegmentRef,
    idx: &SegmentIndex,
    heads: &[Bytes],
    tail: Bytes,
    key: Option<&SegmentKey>,
) -> Result<(), FormatError> {
    let n = idx.blocks.len();
    if heads.len() + 1 != n.max(1) {
        return Err(object_error(seg, "not every block header was read"));
    }
    check_magic(seg, heads.first().unwrap_or(&tail))?;
    let (mut crc, mut raw) = (ObjectCrc::default(), 0u64);
    for (h, b) in heads.iter().zip(&idx.blocks) {
        let Some(at) = h.len().checked_sub(BLOCK_HEADER) else {
            return Err(object_error(
                seg,
                format!("block at byte {} is truncated", b.pos),
            ));
        };
        let (stored, r, hcrc) = check_header(seg, b, &h[at..])?;
        crc.bytes(h);
        crc.part(b.crc32c.unwrap_or(hcrc), stored);
        raw += r;
    }
    crc.bytes(&tail);
    let Some(last) = idx.blocks.last() else {
        check_whole(seg, &crc, raw)?;
        if seg.records > 0 || seg.last_batch_offset.is_some() {
            return Err(object_error(seg, "the index lists no block"));
        }
        return Ok(());
    };
    let from = if n == 1 { MAGIC.len() } else { 0 };
    let Some(h) = tail.get(from..from + BLOCK_HEADER) else {
        return Err(object_error(
            seg,
            format!("the last block, at byte {}, is truncated", last.pos),
        ));
    };
    raw += check_header(seg, last, h)?.1;
    check_whole(seg, &crc, raw)?;
    let batches = decode_checked(
        tail.slice(from..),
        &seg.path,
        std::slice::from_ref(last),
        key,
    )?;
    check_last_batch(seg, batches.last())
}

/// What a full read of a segment found ([`FullRead`], `segment_io::read_verified_segment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentFacts {
    /// Record batches, control batches included.
    pub batches: u64,
    /// Records in non-control batches.
    pub records: u64,
    /// Smallest record timestamp of the non-control batches (epoch ms); `i64::MAX` if none.
    pub min_timestamp: i64,
    /// Largest batch `maxTimestamp` of the non-control batches (epoch ms); `i64::MIN` if none.
    pub max_timestamp: i64,
}

/// The checks of a full read of a segment (the pure part of
/// `segment_io::read_verified_segment`): fed the object's bytes in order, in reads of whole
/// blocks of the verified index ([`Self::range`], the first from byte 0), it checks every
/// checksum and size the format records for the segment: `storedBytes` (the bytes read: the
/// reader stats the object first), the magic, the whole-object `crc32c`, each block against
/// the index and its payload CRC-32C, each batch's own CRC-32C, the first and last offsets,
/// `rawBytes`, `lastBatchOffset` and `lastBatchCrc32c`; and counts the [`SegmentFacts`] the
/// validation compares with the manifest. Errors name the object.
pub struct FullRead<'a> {
    seg: &'a SegmentRef,
    key: Option<&'a SegmentKey>,
    facts: SegmentFacts,
    crc: ObjectCrc,
    raw: u64,
    last: Option<RawBatch>,
}

impl<'a> FullRead<'a> {
    /// A full read of segment `seg`, whose sealed blocks open with `key`.
    pub fn new(seg: &'a SegmentRef, key: Option<&'a SegmentKey>) -> Self {
        FullRead {
            seg,
            key,
            facts: SegmentFacts {
                min_timestamp: i64::MAX,
                max_timestamp: i64::MIN,
                ..Default::default()
            },
            crc: ObjectCrc::default(),
            raw: 0,
            last: None,
        }
    }

    /// A segment whose index lists no block: the whole object, `data` (its first
    /// `storedBytes`).
    pub fn no_blocks(&mut self, data: &[u8]) -> Result<(), FormatError> {
        check_magic(self.seg, data)?;
        self.crc.bytes(data);
        Ok(())
    }

    /// The bytes to read for `group`, consecutive blocks of the index (not empty): from byte 0
    /// on the first read (with the magic), else from the group's first block, to its last
    /// block's end.
    pub fn range(&self, group: &[BlockIndex]) -> std::ops::Range<u64> {
        let (first, end) = (
            &group[0],
            group[group.len() - 1].pos + group[group.len() - 1].len,
        );
        let start = if self.crc.is_empty() { 0 } else { first.pos };
        start..end
    }

    /// Checks `data`, read from byte `start` for `group` ([`Self::range`]).
    pub fn group(
        &mut self,
        start: u64,
        data: Bytes,
        group: &[BlockIndex],
    ) -> Result<(), FormatError> {
        let (seg, first) = (self.seg, &group[0]);
        if start == 0 {
            check_magic(seg, &data)?;
        }
        self.crc.bytes(&data);
        let batches = decode_checked(
            data.slice((first.pos - start) as usize..),
            &seg.path,
            group,
            self.key,
        )?;
        if self.facts.batches == 0
            && let Some(b) = batches.first()
            && b.header.base_offset != seg.first_offset
        {
            return Err(object_error(
                seg,
                format!(
                    "the first record batch starts at offset {}, the manifest records firstOffset {}",
                    b.header.base_offset, seg.first_offset
                ),
            ));
        }
        let facts = &mut self.facts;
        for b in &batches {
            facts.batches += 1;
            self.raw += b.bytes.len() as u64;
            if b.header.is_control() {
                continue;
            }
            facts.records += b.header.record_count.max(0) as u64;
            facts.min_timestamp = facts.min_timestamp.min(batch::min_timestamp(b)?);
            facts.max_timestamp = facts.max_timestamp.max(b.header.max_timestamp);
        }
        self.last = batches.into_iter().last().or(self.last.take());
        Ok(())
    }

    /// The facts, once every byte of the object was read: the whole-object checks and, when
    /// the index `idx` lists blocks, the last batch.
    pub fn finish(self, idx: &SegmentIndex) -> Result<SegmentFacts, FormatError> {
        check_whole(self.seg, &self.crc, self.raw)?;
        if !idx.blocks.is_empty() {
            check_last_batch(self.seg, self.last.as_ref())?;
        }
        Ok(self.facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::{Record, encode_batch};

    /// One uncompressed batch of one record at `base`, value `value`.
    fn batch_at(base: i64, value: &[u8]) -> Bytes {
        let r = Record {
            offset: 0,
            timestamp: 1_000 + base,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: vec![],
        };
        let mut b = BytesMut::from(&encode_batch(&[r], Codec::None).unwrap()[..]);
        b[0..8].copy_from_slice(&base.to_be_bytes()); // outside the batch CRC
        b.freeze()
    }

    /// A v2 segment object of codec-0 blocks (each a list of batches), its index and entry.
    fn build(blocks: &[Vec<Bytes>]) -> (Vec<u8>, SegmentIndex, SegmentRef) {
        let mut obj = MAGIC.to_vec();
        let mut idx = SegmentIndex {
            format: FORMAT.into(),
            topic: "t".into(),
            partition: 0,
            first_offset: None,
            last_offset: None,
            stored_bytes: None,
            blocks: vec![],
            markers: vec![],
            seal: None,
        };
        let mut raw = 0;
        let mut last = None;
        for bl in blocks {
            let payload: Vec<u8> = bl.iter().flat_map(|b| b.iter().copied()).collect();
            let crc = crc32c::crc32c(&payload);
            let hs: Vec<_> = bl
                .iter()
                .map(|b| batch::split_batches(b).unwrap().remove(0))
                .collect();
            idx.blocks.push(BlockIndex {
                pos: obj.len() as u64,
                len: (BLOCK_HEADER + payload.len()) as u64,
                first_offset: hs[0].header.base_offset,
                last_offset: hs[hs.len() - 1].header.last_offset(),
                min_timestamp: 0,
                max_timestamp: 0,
                records: hs.len() as u64,
                batches: hs.len() as u32,
                transactional: false,
                crc32c: Some(crc),
            });
            obj.extend_from_slice(b"KBLK\0\0\0\0");
            obj.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            obj.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            obj.extend_from_slice(&crc.to_be_bytes());
            obj.extend_from_slice(&payload);
            raw += payload.len() as u64;
            last = hs.last().map(|b| b.header);
        }
        let last = last.unwrap();
        let seg = SegmentRef {
            path: "b/data/t/0/00000000000000000000-r.seg".into(),
            first_offset: idx.blocks[0].first_offset,
            last_offset: last.last_offset(),
            records: idx.blocks.iter().map(|b| b.records).sum(),
            raw_bytes: raw,
            stored_bytes: obj.len() as u64,
            min_timestamp: 0,
            max_timestamp: 0,
            crc32c: crc32c::crc32c(&obj),
            index_crc32c: None,
            index_bytes: None,
            last_batch_offset: Some(last.base_offset),
            last_batch_crc32c: Some(last.crc),
            seal: None,
        };
        (obj, idx, seg)
    }

    /// What `segment_io::verify_object` reads of `obj`: the headers of all blocks but the last (the
    /// first with the magic), and the tail.
    fn parts(obj: &[u8], idx: &SegmentIndex) -> (Vec<Bytes>, Bytes) {
        let n = idx.blocks.len();
        let heads = (idx.blocks.iter().take(n - 1).enumerate())
            .map(|(i, b)| {
                let start = if i == 0 { 0 } else { b.pos as usize };
                Bytes::copy_from_slice(&obj[start..b.pos as usize + BLOCK_HEADER])
            })
            .collect();
        let from = if n == 1 {
            0
        } else {
            idx.blocks[n - 1].pos as usize
        };
        (heads, Bytes::copy_from_slice(&obj[from..]))
    }

    fn three_blocks() -> (Vec<u8>, SegmentIndex, SegmentRef) {
        build(&[
            vec![batch_at(0, b"zero"), batch_at(1, b"one")],
            vec![batch_at(2, b"two")],
            vec![batch_at(3, b"three"), batch_at(4, b"four")],
        ])
    }

    /// Changes `value` to `with` (same length) in `obj`'s batch at `base`, then re-seals what
    /// the test asks: the batch CRC, the block header and index CRC, the entry's whole-object
    /// CRC and last batch CRC.
    fn tamper(
        obj: &mut [u8],
        idx: &mut SegmentIndex,
        seg: &mut SegmentRef,
        (value, with): (&[u8], &[u8]),
        reseal_batch: bool,
        reseal_object: bool,
    ) {
        let at = obj.windows(value.len()).position(|w| w == value).unwrap();
        obj[at..at + with.len()].copy_from_slice(with);
        let b = idx
            .blocks
            .iter_mut()
            .find(|b| b.pos as usize <= at && at < (b.pos + b.len) as usize)
            .unwrap();
        let payload = b.pos as usize + BLOCK_HEADER..(b.pos + b.len) as usize;
        let mut p = payload.start;
        while p < payload.end {
            let h = batch::BatchHeader::parse(&obj[p..]).unwrap();
            let end = p + h.total_len();
            if reseal_batch && p <= at && at < end {
                let crc = crc32c::crc32c(&obj[p + 21..end]);
                obj[p + 17..p + 21].copy_from_slice(&crc.to_be_bytes());
            }
            p = end;
        }
        let crc = crc32c::crc32c(&obj[payload]);
        obj[b.pos as usize + 16..b.pos as usize + 20].copy_from_slice(&crc.to_be_bytes());
        b.crc32c = Some(crc);
        if reseal_object {
            seg.crc32c = crc32c::crc32c(obj);
        }
    }

    fn verify(obj: &[u8], idx: &SegmentIndex, seg: &SegmentRef) -> Result<(), String> {
        let (heads, tail) = parts(obj, idx);
        verify_parts(seg, idx, &heads, tail, None).map_err(|e| e.to_string())
    }

    #[test]
    fn combined_crc_equals_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cuts in [vec![], vec![0], vec![8, 28], vec![8, 28, 5000, 5020, 9999]] {
            let mut c = ObjectCrc::default();
            let mut from = 0;
            for (k, &to) in cuts.iter().chain([data.len()].iter()).enumerate() {
                let part = &data[from..to];
                if k % 2 == 0 {
                    c.bytes(part);
                } else {
                    c.part(crc32c::crc32c(part), part.len() as u64);
                }
                from = to;
            }
            assert_eq!(c.crc(), crc32c::crc32c(&data), "cuts {cuts:?}");
            assert_eq!(c.len(), data.len() as u64);
        }
    }

    #[test]
    fn a_good_segment_passes_with_one_or_many_blocks() {
        let (obj, idx, seg) = three_blocks();
        verify(&obj, &idx, &seg).unwrap();
        let (obj, idx, seg) = build(&[vec![batch_at(7, b"only")]]);
        verify(&obj, &idx, &seg).unwrap();
    }

    #[test]
    fn a_resealed_change_with_a_stale_whole_object_crc_is_refused_in_any_block() {
        for value in [&b"zero"[..], b"two", b"four"] {
            let (mut obj, mut idx, mut seg) = three_blocks();
            let with = vec![b'X'; value.len()];
            tamper(&mut obj, &mut idx, &mut seg, (value, &with), true, false);
            let e = verify(&obj, &idx, &seg).unwrap_err();
            assert!(
                e.contains(&seg.path) && e.contains("manifest records crc32c"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_stale_last_batch_crc_and_a_stale_batch_crc_are_refused() {
        // the last batch changed and re-sealed everywhere but in lastBatchCrc32c
        let (mut obj, mut idx, mut seg) = three_blocks();
        tamper(&mut obj, &mut idx, &mut seg, (b"four", b"FOUR"), true, true);
        let e = verify(&obj, &idx, &seg).unwrap_err();
        assert!(
            e.contains(&seg.path) && e.contains("lastBatchCrc32c"),
            "{e}"
        );
        // a batch of the last block changed under its old CRC, everything else re-sealed
        let (mut obj, mut idx, mut seg) = three_blocks();
        tamper(
            &mut obj,
            &mut idx,
            &mut seg,
            (b"three", b"THREE"),
            false,
            true,
        );
        let e = verify(&obj, &idx, &seg).unwrap_err();
        assert!(
            e.contains(&seg.path) && e.contains("offset 3 fails its CRC-32C"),
            "{e}"
        );
        // the same in another block: refused when that block is decoded
        let (mut obj, mut idx, mut seg) = three_blocks();
        tamper(
            &mut obj,
            &mut idx,
            &mut seg,
            (b"zero", b"ZERO"),
            false,
            true,
        );
        verify(&obj, &idx, &seg).unwrap();
        let b = &idx.blocks[0];
        let data = Bytes::copy_from_slice(&obj[b.pos as usize..(b.pos + b.len) as usize]);
        let e = decode_checked(data, &seg.path, std::slice::from_ref(b), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("offset 0 fails its CRC-32C"), "{e}");
    }

    #[test]
    fn size_raw_bytes_and_last_offset_are_checked() {
        let (obj, idx, mut seg) = three_blocks();
        seg.raw_bytes += 1;
        assert!(verify(&obj, &idx, &seg).unwrap_err().contains("rawBytes"));
        let (obj, idx, mut seg) = three_blocks();
        seg.last_batch_offset = Some(99);
        assert!(
            verify(&obj, &idx, &seg)
                .unwrap_err()
                .contains("lastBatchOffset")
        );
        let (obj, idx, seg) = three_blocks();
        let (heads, tail) = parts(&obj, &idx);
        let short = tail.slice(..tail.len() - 1);
        assert!(
            verify_parts(&seg, &idx, &heads, short, None)
                .unwrap_err()
                .to_string()
                .contains("storedBytes")
        );
    }

    /// A batch of `n` compressible records at `base` in `codec`, as a producer would send it.
    fn producer_batch(base: i64, n: usize, codec: Codec) -> RawBatch {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                offset: i as i64,
                timestamp: 2_000 + base + i as i64,
                key: Some(Bytes::from(format!("key-{}", base + i as i64))),
                value: Some(Bytes::from("a compressible value ".repeat(20))),
                headers: vec![(Bytes::from_static(b"h"), None)],
            })
            .collect();
        let mut b = BytesMut::from(&encode_batch(&recs, codec).unwrap()[..]);
        b[0..8].copy_from_slice(&base.to_be_bytes()); // outside the batch CRC
        batch::split_batches(&b.freeze()).unwrap().remove(0)
    }

    /// Encodes `batches` with `outer`: the object, its verified index and its entry.
    fn encode(batches: &[RawBatch], outer: Outer) -> (Bytes, SegmentIndex, SegmentRef) {
        let mut enc = SegmentEncoder::new("b", "r", "t", 0, 0, outer, None).unwrap();
        let mut obj = MAGIC.to_vec();
        for b in batches {
            if let Some((h, p)) = enc.push(b).unwrap() {
                obj.extend_from_slice(&h);
                obj.extend_from_slice(&p);
            }
            assert!(!enc.is_empty());
        }
        for (h, p) in enc.close().unwrap() {
            obj.extend_from_slice(&h);
            obj.extend_from_slice(&p);
        }
        let (seg, idx) = enc.finish();
        let idx = verify_index(&idx, "b", "t", 0, &seg).unwrap();
        (Bytes::from(obj), idx, seg)
    }

    #[test]
    fn weaker_producer_batches_are_stored_recompressed_and_the_last_as_fetched() {
        use crate::format::batch::decode_records;
        let fetched = vec![
            producer_batch(0, 30, Codec::Lz4),
            producer_batch(30, 30, Codec::Lz4),
            producer_batch(60, 1, Codec::None),
            producer_batch(61, 30, Codec::Gzip),
            producer_batch(91, 30, Codec::Zstd),
            producer_batch(121, 30, Codec::Snappy),
            producer_batch(151, 30, Codec::Lz4),
        ];
        let zstd = Outer {
            codec: Codec::Zstd,
            level: 3,
            recompress: true,
        };
        let (obj, idx, seg) = encode(&fetched, zstd);
        // blocks by kind: lz4 x2 re-compressed | plain | from gzip | zstd as fetched |
        // from snappy | the last lz4 batch as fetched
        assert_eq!(idx.blocks.len(), 6);
        let mut full = FullRead::new(&seg, None);
        full.group(0, obj.clone(), &idx.blocks).unwrap();
        let facts = full.finish(&idx).unwrap();
        assert_eq!(facts.records, 181);
        let stored = decode_checked(obj.slice(8..), &seg.path, &idx.blocks, None).unwrap();
        let from: Vec<_> = stored.iter().map(|b| b.stored_from).collect();
        let (lz4, gzip, snappy) = (Some(Codec::Lz4), Some(Codec::Gzip), Some(Codec::Snappy));
        assert_eq!(from, [lz4, lz4, None, gzip, None, snappy, None]);
        for (s, f) in stored.iter().zip(&fetched) {
            assert_eq!(decode_records(s).unwrap(), decode_records(f).unwrap());
            assert_eq!(s.producer_codec().unwrap(), f.header.codec().unwrap());
            assert_eq!(s.header.last_offset(), f.header.last_offset());
        }
        // the last batch is stored as fetched: the recreation probe's CRC-32C is the broker's
        assert!(stored[6].bytes == fetched[6].bytes);
        assert_eq!(seg.last_batch_crc32c, Some(fetched[6].header.crc));
        let raw: u64 = stored.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(seg.raw_bytes, raw);
        // flags of the first block: producer codec lz4 (3) in bits 1-3, codec 0
        assert_eq!((obj[12], obj[13]), (0, 3 << FLAG_FROM_SHIFT));
        // keep: producer batches as fetched, a larger object
        let keep = Outer {
            recompress: false,
            ..zstd
        };
        let (kobj, kidx, kseg) = encode(&fetched, keep);
        let kept = decode_checked(kobj.slice(8..), &kseg.path, &kidx.blocks, None).unwrap();
        assert!(kept.iter().zip(&fetched).all(|(k, f)| k.bytes == f.bytes));
        assert!(kept.iter().all(|k| k.stored_from.is_none()));
        assert!(obj.len() < kobj.len(), "{} >= {}", obj.len(), kobj.len());
    }

    #[test]
    fn recompression_flags_that_do_not_fit_the_block_are_refused() {
        let fetched = [
            producer_batch(0, 30, Codec::Lz4),
            producer_batch(30, 30, Codec::Lz4),
        ];
        let zstd = Outer {
            codec: Codec::Zstd,
            level: 3,
            recompress: true,
        };
        let (obj, _, _) = encode(&fetched, zstd);
        for (flags, want) in [
            (4 << FLAG_FROM_SHIFT, "producer codec 4"),
            (7 << FLAG_FROM_SHIFT, "producer codec 7"),
        ] {
            let mut o = obj.to_vec();
            o[13] = flags;
            let e = decode_blocks(Bytes::from(o).slice(8..), "x.seg")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
        // the last block holds the lz4 batch as fetched: a re-compression flag is a lie
        let first_len = 20 + u32::from_be_bytes([obj[16], obj[17], obj[18], obj[19]]) as usize;
        let mut o = obj.to_vec();
        o[8 + first_len + 5] = 3 << FLAG_FROM_SHIFT;
        let e = decode_blocks(Bytes::from(o).slice(8..), "x.seg")
            .unwrap_err()
            .to_string();
        assert!(e.contains("re-compressed to zstd, and they are not"), "{e}");
    }
}
