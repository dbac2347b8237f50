//! Re-compression of producer batches for storage (KafkaBackup `compression: zstd`): a record
//! batch whose producer compressed it with a weaker codec (gzip, snappy, lz4) is stored with its
//! records section re-compressed with zstd, every other header field kept and its `batchLength`
//! and CRC-32C recomputed.
//!
//! Kept: base offset, partition leader epoch, magic, attributes other than the codec bits (so
//! the timestamp type and the transactional and control flags), last offset delta, timestamps,
//! producer id, epoch and base sequence, record count. The segment block that holds such
//! batches records the producer's codec in its flags (docs/format.md, "Re-compressed batches"),
//! and a restore gives the batch that codec back (`batch::to_codec`, called by
//! `batch::rewrite_for_produce`).
//!
//! Pure: bytes in, bytes out, no I/O.
use super::FormatError;
use super::batch::{self, Codec, HEADER_LEN, RawBatch};

/// Re-compresses batches with zstd at one level, reusing one compression context (a segment
/// encoder holds one).
pub struct Recompressor {
    zstd: zstd::bulk::Compressor<'static>,
}

/// A batch as the backup stores it ([`Recompressor::store_form`]).
#[derive(Debug, Clone)]
pub struct StoreForm {
    /// The batch to store: re-compressed (its `stored_from` set to the producer's codec) or
    /// the batch as fetched.
    pub batch: RawBatch,
    /// The smallest record timestamp of the batch (epoch ms; [`batch::min_timestamp`]),
    /// computed from the records decompressed once.
    pub min_timestamp: i64,
}

impl Recompressor {
    /// A re-compressor to zstd at `level` (1..=22; the KafkaBackup's `compressionLevel`).
    ///
    /// Errors: zstd refuses the level.
    pub fn new(level: i32) -> Result<Self, FormatError> {
        let zstd = zstd::bulk::Compressor::new(level).map_err(|e| {
            FormatError::Unsupported(format!("zstd compression level {level}: {e}"))
        })?;
        Ok(Recompressor { zstd })
    }

    /// How batch `b` (as fetched) is stored: re-compressed to zstd when its producer codec is
    /// gzip, snappy or lz4 and the re-compressed batch is smaller than `b`; as fetched
    /// otherwise (codec none or zstd, a control batch, or zstd would not be smaller).
    ///
    /// Errors: `b`'s codec is unknown or its records do not decompress, or zstd fails.
    pub fn store_form(&mut self, b: &RawBatch) -> Result<StoreForm, FormatError> {
        let h = &b.header;
        let from = h.codec()?;
        if h.is_control() || matches!(from, Codec::None | Codec::Zstd) {
            return Ok(StoreForm {
                min_timestamp: batch::min_timestamp(b)?,
                batch: b.clone(),
            });
        }
        let plain = batch::records_section(b)?;
        let min_timestamp = batch::min_timestamp_in(h, &plain)?;
        let zstd = self.zstd.compress(&plain).map_err(|e| {
            FormatError::Corrupt(format!("batch at offset {}: zstd: {e}", h.base_offset))
        })?;
        if HEADER_LEN + zstd.len() >= b.bytes.len() {
            return Ok(StoreForm {
                min_timestamp,
                batch: b.clone(),
            });
        }
        let bytes = batch::with_section(b, Codec::Zstd, &zstd);
        let header = batch::BatchHeader::parse(&bytes).expect("a whole header was written");
        Ok(StoreForm {
            batch: RawBatch {
                header,
                bytes,
                stored_from: Some(from),
            },
            min_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::{
        CRC_START, Record, decode_records, encode_batch, rewrite_for_produce, split_batches,
        to_codec,
    };
    use bytes::{Bytes, BytesMut};

    /// A batch of `n` compressible records in `codec`, with producer fields, a leader epoch,
    /// base offset 1000 and the transactional bit when `txn`; CRC valid.
    fn producer_batch(codec: Codec, n: usize, txn: bool) -> RawBatch {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                offset: i as i64,
                timestamp: 1_704_067_200_000 + (i as i64 % 7) * 1000 - 3000,
                key: if i % 5 == 0 {
                    None
                } else {
                    Some(Bytes::from(format!("key-{i}")))
                },
                value: Some(Bytes::from(format!(
                    "{{\"id\":{i},\"name\":\"customer {i}\",\"note\":\"{}\"}}",
                    "lorem ipsum dolor sit amet ".repeat(1 + i % 4)
                ))),
                headers: vec![(Bytes::from_static(b"h"), (i % 3 == 0).then(Bytes::new))],
            })
            .collect();
        let mut raw = BytesMut::from(&encode_batch(&recs, codec).unwrap()[..]);
        raw[0..8].copy_from_slice(&1000i64.to_be_bytes());
        raw[12..16].copy_from_slice(&7i32.to_be_bytes());
        let attrs = codec.bits() | if txn { 0x10 } else { 0 };
        raw[21..23].copy_from_slice(&attrs.to_be_bytes());
        raw[43..51].copy_from_slice(&4242i64.to_be_bytes());
        raw[51..53].copy_from_slice(&3i16.to_be_bytes());
        raw[53..57].copy_from_slice(&17i32.to_be_bytes());
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
        split_batches(&raw.freeze()).unwrap().remove(0)
    }

    /// Every header field but `batchLength`, the CRC and the codec bits.
    fn kept(h: &batch::BatchHeader) -> impl PartialEq + std::fmt::Debug {
        (
            h.base_offset,
            h.partition_leader_epoch,
            h.magic,
            h.attributes & !0x07,
            h.last_offset_delta,
            h.base_timestamp,
            h.max_timestamp,
            (h.producer_id, h.producer_epoch, h.base_sequence),
            h.record_count,
        )
    }

    #[test]
    fn weaker_codecs_are_stored_as_zstd_with_every_field_kept_and_a_valid_crc() {
        let mut r = Recompressor::new(3).unwrap();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4] {
            for txn in [false, true] {
                let b = producer_batch(codec, 200, txn);
                let s = r.store_form(&b).unwrap();
                let st = &s.batch;
                assert_eq!(st.stored_from, Some(codec), "{codec:?}");
                assert_eq!(st.header.codec().unwrap(), Codec::Zstd);
                assert!(st.bytes.len() < b.bytes.len(), "{codec:?} did not shrink");
                assert_eq!(st.header.total_len(), st.bytes.len());
                batch::verify_crc(st).unwrap();
                assert_eq!(kept(&st.header), kept(&b.header), "{codec:?}");
                assert_eq!(st.header.is_transactional(), txn);
                assert_eq!(decode_records(st).unwrap(), decode_records(&b).unwrap());
                assert_eq!(s.min_timestamp, batch::min_timestamp(&b).unwrap());
                assert_eq!(st.producer_codec().unwrap(), codec);
                // and back: the producer's codec, the same records, a valid CRC
                let back = split_batches(&to_codec(st, codec).unwrap())
                    .unwrap()
                    .remove(0);
                batch::verify_crc(&back).unwrap();
                assert_eq!(back.header.codec().unwrap(), codec);
                assert_eq!(kept(&back.header), kept(&b.header));
                assert_eq!(decode_records(&back).unwrap(), decode_records(&b).unwrap());
            }
        }
    }

    #[test]
    fn the_restore_rewrite_gives_the_producer_codec_back() {
        let mut r = Recompressor::new(3).unwrap();
        let b = producer_batch(Codec::Lz4, 50, true);
        let st = r.store_form(&b).unwrap().batch;
        let out = split_batches(&rewrite_for_produce(&st).unwrap())
            .unwrap()
            .remove(0);
        batch::verify_crc(&out).unwrap();
        assert_eq!(out.header.codec().unwrap(), Codec::Lz4);
        assert_eq!(out.header.producer_id, -1);
        assert!(!out.header.is_transactional());
        let mut want = decode_records(&b).unwrap();
        want.iter_mut().for_each(|r| r.offset -= 1000); // produced from base offset 0
        assert_eq!(decode_records(&out).unwrap(), want);
    }

    #[test]
    fn none_zstd_control_and_incompressible_batches_are_stored_as_fetched() {
        let mut r = Recompressor::new(3).unwrap();
        for codec in [Codec::None, Codec::Zstd] {
            let b = producer_batch(codec, 20, false);
            let s = r.store_form(&b).unwrap();
            assert!(s.batch.bytes == b.bytes, "{codec:?} changed");
            assert_eq!(s.batch.stored_from, None);
        }
        // zstd at its fastest level barely compresses: larger than the producer's gzip
        let fastest = *zstd::compression_level_range().start();
        let mut r = Recompressor::new(fastest).unwrap();
        let b = producer_batch(Codec::Gzip, 200, false);
        let zstd_len = zstd::bulk::compress(&batch::records_section(&b).unwrap(), fastest)
            .unwrap()
            .len();
        assert!(HEADER_LEN + zstd_len > b.bytes.len());
        let s = r.store_form(&b).unwrap();
        assert!(
            s.batch.bytes == b.bytes,
            "a larger re-compressed form is not stored"
        );
        assert_eq!(s.batch.stored_from, None);
        assert_eq!(s.min_timestamp, batch::min_timestamp(&b).unwrap());
    }
}
