//! Kafka record batches (magic v2) at byte level: header parsing without decompression,
//! record decoding/encoding that keeps what generic clients lose (null vs empty key and value,
//! duplicate header names, null header values, 64-bit timestamp deltas), and the header
//! rewrite that lets a batch be produced again as is (a batch the backup re-compressed gets
//! its producer's codec back first: `format::recompress`).
//!
//! Layout source: the Kafka protocol guide, "Record Batch" and "Record" (KIP-98 for the
//! producer fields and control batches, KIP-32 for timestamp types).
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::FormatError;

/// Size of the v2 batch header up to and including `recordCount`.
pub const HEADER_LEN: usize = 61;
/// First byte the batch CRC-32C covers (the attributes).
pub const CRC_START: usize = 21;

/// Codec bits of the batch attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec of batch attribute bits 0-2 (Kafka's ids: 0 none, 1 gzip, 2 snappy, 3 lz4,
    /// 4 zstd). Errors: any other value.
    pub fn from_bits(b: i16) -> Result<Codec, FormatError> {
        Ok(match b & 0x07 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            x => {
                return Err(FormatError::Corrupt(format!(
                    "unknown compression codec {x} in batch attributes"
                )));
            }
        })
    }
    /// Kafka's codec id, as in batch attributes bits 0-2.
    pub fn bits(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// `batchLength`: bytes after this field (total size = 12 + batch_length).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    /// Timestamp of the first record (epoch ms).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the log append time for LogAppendTime batches (epoch ms).
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses a header from the start of `b`; `None` if fewer than [`HEADER_LEN`] bytes.
    pub fn parse(mut b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        })
    }
    /// Whole batch size in bytes.
    pub fn total_len(&self) -> usize {
        12 + self.batch_length.max(0) as usize
    }
    /// Offset of the last record (offset gaps from compaction included).
    /// Saturates instead of overflowing on a corrupt header (base offset near `i64::MAX`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }
    /// Offset to fetch next after this batch. Derived from the header, never from the last
    /// decoded record: compacted batches have gaps (lessons: operator #54).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn codec(&self) -> Result<Codec, FormatError> {
        Codec::from_bits(self.attributes)
    }
    /// KIP-32: bit 3 set = LogAppendTime.
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    /// KIP-98: bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    /// KIP-98: bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// A complete batch inside a fetched buffer or a stored block.
#[derive(Debug, Clone)]
pub struct RawBatch {
    pub header: BatchHeader,
    /// The whole batch, header included: as the broker sent it, or as stored when the backup
    /// re-compressed it (`stored_from`).
    pub bytes: Bytes,
    /// For a batch the backup re-compressed to zstd for storage (`compression: zstd`,
    /// `format::recompress`): the codec its producer used (gzip, snappy or lz4), read from its
    /// block's flags. `None` for a batch as fetched.
    pub stored_from: Option<Codec>,
}

impl RawBatch {
    /// The codec a restore gives the batch back: its producer's (`stored_from`) when the
    /// backup re-compressed it, else its own. Errors: an unknown codec in its attributes.
    pub fn producer_codec(&self) -> Result<Codec, FormatError> {
        match self.stored_from {
            Some(c) => Ok(c),
            None => self.header.codec(),
        }
    }
}

/// Splits a Fetch `records` buffer into complete v2 batches. A truncated last batch (the
/// broker may cut a response at `max_bytes`) is dropped: it is fetched again next time.
///
/// Errors: a batch with magic other than 2 (message formats v0/v1, removed in Kafka 4).
pub fn split_batches(records: &Bytes) -> Result<Vec<RawBatch>, FormatError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = BatchHeader::parse(&records[pos..]) {
        if h.magic != 2 {
            return Err(FormatError::Unsupported(format!(
                "record batch at offset {} has magic {}: only message format v2 (Kafka >= 0.11) is supported",
                h.base_offset, h.magic
            )));
        }
        let len = h.total_len();
        if len < HEADER_LEN || pos + len > records.len() {
            break;
        }
        out.push(RawBatch {
            header: h,
            bytes: records.slice(pos..pos + len),
            stored_from: None,
        });
        pos += len;
    }
    Ok(out)
}

/// One record with everything a consumer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    /// Effective timestamp (epoch ms): CreateTime from the record, or the batch's
    /// LogAppendTime.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Headers in order; names may repeat; values may be null.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

fn get_varint(b: &mut &[u8]) -> Result<i64, FormatError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        if b.is_empty() {
            return Err(FormatError::Corrupt(
                "varint runs past the end of the record".into(),
            ));
        }
        let byte = b.get_u8();
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    Err(FormatError::Corrupt("varint longer than 10 bytes".into()))
}

fn put_varint(b: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        b.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    b.put_u8(z as u8);
}

fn get_nullable(b: &mut &[u8], src: &Bytes, what: &str) -> Result<Option<Bytes>, FormatError> {
    let len = get_varint(b)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if b.len() < len {
        return Err(FormatError::Corrupt(format!(
            "record {what} runs past the end of the batch"
        )));
    }
    let start = src.len() - b.len();
    let out = src.slice(start..start + len);
    b.advance(len);
    Ok(Some(out))
}

/// Decompresses the records section of a batch (everything after the header).
pub fn records_section(batch: &RawBatch) -> Result<Bytes, FormatError> {
    let body = batch.bytes.slice(HEADER_LEN..);
    use kafka_protocol::compression as c;
    use kafka_protocol::compression::Decompressor;
    let mut src = body.clone();
    let take = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(b.copy_to_bytes(b.remaining())) };
    let r = match batch.header.codec()? {
        Codec::None => return Ok(body),
        Codec::Gzip => c::Gzip::decompress(&mut src, take),
        Codec::Snappy => c::Snappy::decompress(&mut src, take),
        Codec::Lz4 => c::Lz4::decompress(&mut src, take),
        Codec::Zstd => c::Zstd::decompress(&mut src, take),
    };
    r.map_err(|e| {
        FormatError::Corrupt(format!(
            "batch at offset {}: {e:#}",
            batch.header.base_offset
        ))
    })
}

/// Decodes every record of a batch. Control batches decode too (their key holds the marker).
///
/// Errors ([`FormatError::Corrupt`]): a record or field that runs past the end of the batch,
/// an empty record, an offset or timestamp delta that overflows (record layout: the Kafka
/// protocol guide, "Record Batch", v2).
pub fn decode_records(batch: &RawBatch) -> Result<Vec<Record>, FormatError> {
    let h = &batch.header;
    let data = records_section(batch)?;
    let mut b: &[u8] = &data;
    let corrupt =
        |what: &str| FormatError::Corrupt(format!("batch at offset {}: {what}", h.base_offset));
    // A record takes at least 7 bytes: the count in the header cannot size the allocation.
    let mut out = Vec::with_capacity((h.record_count.max(0) as usize).min(data.len() / 7 + 1));
    for _ in 0..h.record_count {
        let len = get_varint(&mut b)?;
        if len < 1 || b.len() < len as usize {
            return Err(corrupt("record runs past the end"));
        }
        let len = len as usize;
        let rec_start = data.len() - b.len();
        let rec = data.slice(rec_start..rec_start + len);
        let mut r: &[u8] = &rec;
        let _attributes = r.get_i8();
        let ts_delta = get_varint(&mut r)?; // varlong: deltas beyond 2^31 ms are legal
        let off_delta = get_varint(&mut r)?;
        let key = get_nullable(&mut r, &rec, "key")?;
        let value = get_nullable(&mut r, &rec, "value")?;
        let n_headers = get_varint(&mut r)?;
        // A header takes at least 2 bytes.
        let mut headers = Vec::with_capacity((n_headers.max(0) as usize).min(r.len() / 2 + 1));
        for _ in 0..n_headers.max(0) {
            let name = get_nullable(&mut r, &rec, "header name")?.unwrap_or_default();
            let v = get_nullable(&mut r, &rec, "header value")?;
            headers.push((name, v));
        }
        b.advance(len);
        let offset = h
            .base_offset
            .checked_add(off_delta)
            .ok_or_else(|| corrupt("offset delta overflows"))?;
        let timestamp = if h.log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp
                .checked_add(ts_delta)
                .ok_or_else(|| corrupt("timestamp delta overflows"))?
        };
        out.push(Record {
            offset,
            timestamp,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

/// Minimum record timestamp of a batch without materialising records (decompresses if the
/// batch is compressed). LogAppendTime batches: the append time.
pub fn min_timestamp(batch: &RawBatch) -> Result<i64, FormatError> {
    let h = &batch.header;
    if h.log_append_time() || h.record_count == 0 {
        return Ok(h.max_timestamp);
    }
    min_timestamp_in(h, &records_section(batch)?)
}

/// [`min_timestamp`] of a batch with header `h` whose records section, decompressed, is
/// `data`. Errors: a record that runs past the end, a timestamp delta that overflows.
pub fn min_timestamp_in(h: &BatchHeader, data: &[u8]) -> Result<i64, FormatError> {
    if h.log_append_time() || h.record_count == 0 {
        return Ok(h.max_timestamp);
    }
    let mut b: &[u8] = data;
    let mut min = i64::MAX;
    for _ in 0..h.record_count {
        let len = get_varint(&mut b)? as usize;
        if b.len() < len || len < 1 {
            return Err(FormatError::Corrupt(format!(
                "batch at offset {}: record runs past the end",
                h.base_offset
            )));
        }
        let mut r = &b[1..len];
        let ts = h
            .base_timestamp
            .checked_add(get_varint(&mut r)?)
            .ok_or_else(|| {
                FormatError::Corrupt(format!(
                    "batch at offset {}: timestamp delta overflows",
                    h.base_offset
                ))
            })?;
        min = min.min(ts);
        b.advance(len);
    }
    Ok(if min == i64::MAX {
        h.base_timestamp
    } else {
        min
    })
}

/// For a control batch: `Some(true)` for a COMMIT marker, `Some(false)` for ABORT (KIP-98
/// control record key: version i16, type i16 with 0 = ABORT, 1 = COMMIT).
pub fn control_marker(batch: &RawBatch) -> Result<Option<bool>, FormatError> {
    if !batch.header.is_control() {
        return Ok(None);
    }
    let recs = decode_records(batch)?;
    let key = recs.first().and_then(|r| r.key.clone()).unwrap_or_default();
    if key.len() < 4 {
        return Err(FormatError::Corrupt(format!(
            "control batch at offset {} has no marker key",
            batch.header.base_offset
        )));
    }
    Ok(Some((&key[2..4]).get_i16() == 1))
}

/// Encodes records into a fresh v2 batch for Produce: base offset 0, no producer id
/// (non-idempotent), CreateTime timestamps equal to each record's effective timestamp,
/// consecutive offset deltas, compressed with `codec`.
pub fn encode_batch(records: &[Record], codec: Codec) -> Result<Bytes, FormatError> {
    if records.is_empty() {
        return Err(FormatError::Corrupt("cannot encode an empty batch".into()));
    }
    let base_ts = records[0].timestamp;
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(base_ts);
    let mut plain = BytesMut::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = BytesMut::new();
        body.put_i8(0);
        let delta = r.timestamp.checked_sub(base_ts).ok_or_else(|| {
            FormatError::Corrupt(format!(
                "timestamps {} and {base_ts} are too far apart for one batch",
                r.timestamp
            ))
        })?;
        put_varint(&mut body, delta);
        put_varint(&mut body, i as i64);
        put_nullable(&mut body, r.key.as_deref());
        put_nullable(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_nullable(&mut body, Some(k));
            put_nullable(&mut body, v.as_deref());
        }
        put_varint(&mut plain, body.len() as i64);
        plain.extend_from_slice(&body);
    }
    let section = compress(codec, plain.freeze())?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + section.len());
    out.put_i64(0);
    out.put_i32((HEADER_LEN - 12 + section.len()) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(0);
    out.put_i16(codec.bits());
    out.put_i32(records.len() as i32 - 1);
    out.put_i64(base_ts);
    out.put_i64(max_ts);
    out.put_i64(-1);
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i32(records.len() as i32);
    out.extend_from_slice(&section);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

fn put_nullable(b: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => put_varint(b, -1),
        Some(v) => {
            put_varint(b, v.len() as i64);
            b.extend_from_slice(v);
        }
    }
}

/// Compresses a records section with `codec` as a Kafka producer would (kafka-protocol's
/// compressors; lz4 at librdkafka's fast level, [`lz4_fast`]). Errors: the
/// compressor fails.
pub fn compress(codec: Codec, plain: Bytes) -> Result<Bytes, FormatError> {
    use kafka_protocol::compression as c;
    use kafka_protocol::compression::Compressor;
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.extend_from_slice(&plain);
        Ok(())
    };
    let r = match codec {
        Codec::None => return Ok(plain.clone()),
        Codec::Gzip => c::Gzip::compress(&mut out, |b: &mut _| put(b)),
        Codec::Snappy => c::Snappy::compress(&mut out, |b: &mut _| put(b)),
        Codec::Lz4 => return lz4_fast(&plain).map(Bytes::from),
        Codec::Zstd => c::Zstd::compress(&mut out, |b: &mut _| put(b)),
    };
    r.map_err(|e| FormatError::Corrupt(format!("compressing a batch with {codec:?}: {e:#}")))?;
    Ok(out.freeze())
}

/// An LZ4 frame of `plain` as Kafka producers write it (independent blocks of 64 KiB, block
/// and content checksums, as kafka-protocol's compressor) at the fast level 0 that librdkafka
/// uses by default (kafka-protocol uses HC level 4, about 5 times slower).
///
/// Errors: the LZ4 library fails.
pub fn lz4_fast(plain: &[u8]) -> Result<Vec<u8>, FormatError> {
    use std::io::Write;
    let fail = |e: std::io::Error| FormatError::Corrupt(format!("lz4: {e}"));
    let mut enc = lz4::EncoderBuilder::new()
        .level(0)
        .block_mode(lz4::BlockMode::Independent)
        .build(Vec::with_capacity(plain.len() / 2 + 64))
        .map_err(fail)?;
    enc.write_all(plain).map_err(fail)?;
    let (out, r) = enc.finish();
    r.map_err(fail)?;
    Ok(out)
}

/// Batch `b` with its records section replaced by `section`, already compressed with `codec`:
/// the first 61 header bytes kept except `batchLength` (recomputed), the codec bits of the
/// attributes (set to `codec`) and the CRC-32C (recomputed over the new bytes).
pub fn with_section(b: &RawBatch, codec: Codec, section: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + section.len());
    out.put_slice(&b.bytes[..HEADER_LEN]);
    out.put_slice(section);
    let batch_length = (HEADER_LEN - 12 + section.len()) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attrs = (b.header.attributes & !0x07) | codec.bits();
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// A stored batch with its records section re-compressed with `codec` (the producer's, for a
/// re-compressed batch: `RawBatch::stored_from`), every other field kept, `batchLength` and
/// CRC-32C recomputed. The caller has verified the stored batch's CRC-32C (the segment decoder
/// does for every batch it returns).
///
/// Errors: the records do not decompress, or `codec`'s compressor fails.
pub fn to_codec(b: &RawBatch, codec: Codec) -> Result<Bytes, FormatError> {
    let plain = records_section(b)?;
    let section = compress(codec, plain)?;
    Ok(with_section(b, codec, &section))
}

/// True when a stored batch can be produced again byte for byte (after [`rewrite_for_produce`]):
/// CreateTime, no offset gaps, and not a control batch. Such a batch keeps its producer
/// compression untouched.
pub fn can_pass_through(h: &BatchHeader) -> bool {
    !h.is_control()
        && !h.log_append_time()
        && h.record_count > 0
        && h.last_offset_delta == h.record_count - 1
}

/// Turns a stored batch into one a plain (non-idempotent, non-transactional) producer may
/// send: clears producer id/epoch/sequence, the transactional bit and the leader epoch, and
/// recomputes the CRC-32C. The records section, compressed or not, is untouched, except for
/// a batch the backup re-compressed (`stored_from`): it gets its producer's codec back
/// (docs/decisions.md, "Re-compressed batches").
///
/// The fresh CRC-32C covers whatever the batch holds: the caller must have verified the
/// stored one first ([`verify_crc`]; the segment decoder does for every batch it returns).
///
/// Errors: only for a re-compressed batch, whose records fail to decompress or compress.
pub fn rewrite_for_produce(batch: &RawBatch) -> Result<Bytes, FormatError> {
    let mut b = match batch.stored_from {
        Some(codec) => BytesMut::from(&to_codec(batch, codec)?[..]),
        None => BytesMut::from(&batch.bytes[..]),
    };
    b[0..8].copy_from_slice(&0i64.to_be_bytes());
    b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    let attrs = i16::from_be_bytes([b[21], b[22]]) & !0x10;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

/// Checks a batch's CRC-32C (over attributes .. end, per the protocol guide).
pub fn crc_ok(batch: &RawBatch) -> bool {
    verify_crc(batch).is_ok()
}

/// Verifies a batch's own CRC-32C (bytes 21..end, the Kafka protocol guide's "Record Batch")
/// against the value in its header. Every reader of stored batches calls it (through the
/// segment decoder) before a batch is produced again, counted or compared: the header rewrite
/// of [`rewrite_for_produce`] and the re-encoding of records compute fresh CRCs, so a changed
/// record under a stale CRC would otherwise reach Kafka as valid data.
///
/// Errors: [`FormatError::Corrupt`] naming the batch's base offset, the stored and the computed
/// CRC-32C.
pub fn verify_crc(batch: &RawBatch) -> Result<(), FormatError> {
    let computed = crc32c::crc32c(&batch.bytes[CRC_START..]);
    if computed != batch.header.crc {
        return Err(FormatError::Corrupt(format!(
            "record batch at offset {} fails its CRC-32C (stored {}, computed {computed}): the batch was changed or damaged after it was fetched",
            batch.header.base_offset, batch.header.crc
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        ts: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Vec<(&[u8], Option<&[u8]>)>,
    ) -> Record {
        Record {
            offset: 0,
            timestamp: ts,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .into_iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k), v.map(Bytes::copy_from_slice)))
                .collect(),
        }
    }

    #[test]
    fn encode_decode_keeps_nulls_duplicates_and_wide_timestamp_deltas() {
        let recs = vec![
            rec(
                1_000,
                None,
                Some(b"v"),
                vec![(b"h", None), (b"h", Some(b"")), (b"h", Some(b"\x00\xff"))],
            ),
            rec(1_000 + 40 * 86_400_000, Some(b""), None, vec![]),
            rec(-5, Some(b"k"), Some(b""), vec![]),
        ];
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let bytes = encode_batch(&recs, codec).unwrap();
            let batches = split_batches(&bytes).unwrap();
            assert_eq!(batches.len(), 1);
            assert!(crc_ok(&batches[0]), "{codec:?}");
            assert_eq!(batches[0].header.codec().unwrap(), codec);
            let back = decode_records(&batches[0]).unwrap();
            let mut want = recs.clone();
            for (i, r) in want.iter_mut().enumerate() {
                r.offset = i as i64;
            }
            assert_eq!(back, want, "{codec:?}");
            assert_eq!(min_timestamp(&batches[0]).unwrap(), -5);
            assert_eq!(batches[0].header.max_timestamp, 1_000 + 40 * 86_400_000);
        }
    }

    #[test]
    fn rewrite_clears_producer_fields_and_keeps_crc_valid() {
        let bytes = encode_batch(&[rec(7, Some(b"k"), Some(b"v"), vec![])], Codec::Lz4).unwrap();
        let mut raw = BytesMut::from(&bytes[..]);
        raw[43..51].copy_from_slice(&42i64.to_be_bytes());
        raw[21..23].copy_from_slice(&(3i16 | 0x10).to_be_bytes());
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = split_batches(&raw.freeze()).unwrap().remove(0);
        assert!(b.header.is_transactional());
        let out = split_batches(&rewrite_for_produce(&b).unwrap())
            .unwrap()
            .remove(0);
        assert!(crc_ok(&out));
        assert_eq!(out.header.producer_id, -1);
        assert!(!out.header.is_transactional());
        assert_eq!(out.header.codec().unwrap(), Codec::Lz4);
        assert_eq!(decode_records(&out).unwrap(), decode_records(&b).unwrap());
    }

    #[test]
    fn a_changed_record_under_its_old_crc_is_refused() {
        let bytes =
            encode_batch(&[rec(7, Some(b"k"), Some(b"value"), vec![])], Codec::None).unwrap();
        let good = split_batches(&bytes).unwrap().remove(0);
        verify_crc(&good).unwrap();
        let mut raw = BytesMut::from(&bytes[..]);
        let at = raw.len() - 3; // inside the value
        raw[at] ^= 0x20;
        let bad = split_batches(&raw.freeze()).unwrap().remove(0);
        let e = verify_crc(&bad).unwrap_err().to_string();
        assert!(e.contains("offset 0 fails its CRC-32C"), "{e}");
        // the header rewrite would have sealed the change with a fresh CRC
        assert!(crc_ok(
            &split_batches(&rewrite_for_produce(&bad).unwrap())
                .unwrap()
                .remove(0)
        ));
    }

    #[test]
    fn truncated_trailing_batch_is_dropped_and_old_magic_refused() {
        let a = encode_batch(&[rec(1, None, Some(b"x"), vec![])], Codec::None).unwrap();
        let mut two = BytesMut::from(&a[..]);
        two.extend_from_slice(&a[..a.len() - 3]);
        assert_eq!(split_batches(&two.freeze()).unwrap().len(), 1);
        let mut old = BytesMut::from(&a[..]);
        old[16] = 1;
        assert!(matches!(
            split_batches(&old.freeze()),
            Err(FormatError::Unsupported(_))
        ));
    }
}
