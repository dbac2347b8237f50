//! The envelope of an encrypted repository (format v3, issue 16) on arbitrary bytes. The first
//! input byte picks what is read from the rest:
//!
//! - 0: a key document (`seal::parse_key_doc`), as stored and with its checksum fixed up (so
//!   that arbitrary JSON reaches the field checks); one that parses reads back to itself, and
//!   its wrapped key goes through `unwrap_with_kek`.
//! - 1: `unwrap_with_kek` on arbitrary text and on arbitrary bytes in base64 (which reaches
//!   AES-GCM), and a valid wrapped key with byte changes: it unwraps to its data key exactly
//!   when unchanged.
//! - 2: `RunKeys::segment_key` for a manifest entry whose seal (run, salt) is arbitrary.
//! - 3: `segment::decode_checked` with a segment key on arbitrary bytes, against the block
//!   list of a valid sealed segment and against blocks placed by the input.
//! - 4: a valid sealed segment (3 blocks, written as `SegmentWriter` writes them) with byte
//!   changes, truncations and index changes: it decodes exactly when nothing changed, and is
//!   refused otherwise (CRC-32C, then the AES-GCM tag); never with another key, position or
//!   no key.
//!
//! Errors are fine; panics are not.
#![no_main]
use std::sync::{Arc, OnceLock};

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_backup_operator::format::batch::{self, Codec, Record};
use kafka_backup_operator::format::manifest::{BlockIndex, SegmentRef, SegmentSeal, to_json};
use kafka_backup_operator::format::seal::{self, DataKey, RunKeys, SegmentKey};
use kafka_backup_operator::format::segment;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

const KEK: [u8; 32] = [0x4b; 32];
const DEK: [u8; 32] = [0x7d; 32];
const SALT: [u8; 32] = [0x5a; 32];
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn dek() -> DataKey {
    DataKey::from_bytes(Zeroizing::new(DEK))
}

/// The fixed segment key of the valid segment.
fn key() -> &'static SegmentKey {
    static K: OnceLock<SegmentKey> = OnceLock::new();
    K.get_or_init(|| dek().segment_key(&SALT))
}

/// A valid sealed segment: the magic, then 3 blocks of 2 batches each, sealed under [`key`]
/// with the block position as nonce and the header's first 16 bytes as associated data.
struct Valid {
    bytes: Vec<u8>,
    blocks: Vec<BlockIndex>,
    batches: usize,
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let mut bytes = segment::MAGIC.to_vec();
        let mut blocks = vec![];
        let mut offset = 0i64;
        for b in 0..3 {
            let mut raw = BytesMut::new();
            let first = offset;
            for n in 0..2 {
                let records: Vec<Record> = (0..3)
                    .map(|i| Record {
                        offset: i,
                        timestamp: 1_700_000_000_000 + i,
                        key: Some(Bytes::from(format!("key-{b}-{n}-{i}"))),
                        value: Some(Bytes::from(format!("value {b} {n} {i}").repeat(5))),
                        headers: vec![(Bytes::from_static(b"h"), None)],
                    })
                    .collect();
                let mut batch = batch::encode_batch(&records, Codec::None).unwrap().to_vec();
                // the base offset is outside the batch CRC
                batch[..8].copy_from_slice(&offset.to_be_bytes());
                offset += records.len() as i64;
                raw.extend_from_slice(&batch);
            }
            let pos = bytes.len() as u64;
            let mut head = BytesMut::new();
            head.put_slice(b"KBLK");
            head.put_u8(0);
            head.put_u8(seal::FLAG_SEALED);
            head.put_u16(0);
            head.put_u32((raw.len() + seal::TAG_LEN) as u32);
            head.put_u32(raw.len() as u32);
            let mut payload = raw.to_vec();
            key().seal_block(pos, &head, &mut payload);
            let crc = crc32c::crc32c(&payload);
            head.put_u32(crc);
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(&payload);
            blocks.push(BlockIndex {
                pos,
                len: (head.len() + payload.len()) as u64,
                first_offset: first,
                last_offset: offset - 1,
                min_timestamp: 1_700_000_000_000,
                max_timestamp: 1_700_000_000_002,
                records: 6,
                batches: 2,
                transactional: false,
                crc32c: Some(crc),
            });
        }
        let v = Valid {
            bytes,
            blocks,
            batches: 6,
        };
        // the construction is right: it decodes, and only with its key
        let data = Bytes::copy_from_slice(&v.bytes[v.blocks[0].pos as usize..]);
        let got = segment::decode_checked(data.clone(), "valid.seg", &v.blocks, Some(key()));
        assert_eq!(got.expect("the valid segment decodes").len(), v.batches);
        assert!(segment::decode_checked(data, "valid.seg", &v.blocks, None).is_err());
        v
    })
}

/// A valid wrapped data key (base64) and its associated data.
fn wrapped() -> &'static (String, String) {
    static W: OnceLock<(String, String)> = OnceLock::new();
    W.get_or_init(|| {
        let aad = seal::wrap_aad("fuzz", "20260101T000000000Z", "k1");
        (seal::wrap_with_kek(&KEK, &dek(), &aad), aad)
    })
}

/// Applies `ops` as changes to `buf`, 3 bytes each: position (big-endian u16, modulo the
/// length) and an xor mask. Two changes may cancel out: callers compare, they do not count.
fn mutate(buf: &mut [u8], ops: &[u8]) {
    if buf.is_empty() {
        return;
    }
    for op in ops.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([op[0], op[1]])) % buf.len();
        buf[at] ^= op[2];
    }
}

fn key_doc(data: &[u8]) {
    let _ = seal::parse_key_doc(data, "fuzz/keys/r.json");
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let fixed = to_json(&v);
    let Ok(doc) = seal::parse_key_doc(&fixed, "fuzz/keys/r.json") else {
        return;
    };
    let again = seal::parse_key_doc(&to_json(&doc), "fuzz/keys/r.json")
        .expect("a written key document reads back");
    assert_eq!(again, doc, "round trip");
    if let seal::KekRef::Secret { key_id, .. } = &doc.kek {
        let aad = seal::wrap_aad(&doc.backup_name, &doc.run_id, key_id);
        let _ = seal::unwrap_with_kek(&KEK, &doc.wrapped_key, &aad);
    }
}

fn unwrap(data: &[u8]) {
    let (w, aad) = wrapped();
    let _ = seal::unwrap_with_kek(&KEK, &String::from_utf8_lossy(data), aad);
    let _ = seal::unwrap_with_kek(&KEK, &B64.encode(data), aad);
    let mut raw = B64.decode(w).unwrap();
    let original = raw.clone();
    mutate(&mut raw, data);
    let got = seal::unwrap_with_kek(&KEK, &B64.encode(&raw), aad);
    if raw == original {
        assert_eq!(got.expect("an unchanged wrapped key unwraps").bytes(), &DEK);
    } else {
        assert!(got.is_none(), "a changed wrapped key unwrapped");
    }
}

fn segment_key(data: &[u8]) {
    let (run, salt) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"r1"[..], data),
    };
    let mut keys = RunKeys::default();
    keys.insert("r1", Arc::new(dek()));
    let seg = SegmentRef {
        path: "fuzz/data/t/0/00000000000000000000-r1.seg".into(),
        first_offset: 0,
        last_offset: 0,
        records: 0,
        raw_bytes: 0,
        stored_bytes: 0,
        min_timestamp: 0,
        max_timestamp: 0,
        crc32c: 0,
        index_crc32c: None,
        index_bytes: None,
        last_batch_offset: None,
        last_batch_crc32c: None,
        seal: Some(SegmentSeal {
            run: String::from_utf8_lossy(run).into_owned(),
            salt: String::from_utf8_lossy(salt).into_owned(),
        }),
    };
    let Ok(Some(k)) = keys.segment_key(&seg) else {
        return;
    };
    let v = valid();
    let data = Bytes::copy_from_slice(&v.bytes[v.blocks[0].pos as usize..]);
    let got = segment::decode_checked(data, "fuzz.seg", &v.blocks, Some(&k));
    // the valid segment opens under the key of its own salt only
    let same = seal::parse_salt(&String::from_utf8_lossy(salt), "s").is_ok_and(|s| s == SALT);
    assert_eq!(
        got.is_ok(),
        same,
        "a segment key from another salt opened it, or its own did not"
    );
}

fn arbitrary_blocks(data: &[u8]) {
    let v = valid();
    let bytes = Bytes::copy_from_slice(data);
    let _ = segment::decode_checked(bytes.clone(), "fuzz.seg", &v.blocks, Some(key()));
    // one block placed and sized by the input's first 16 bytes, over the rest
    if data.len() >= 16 {
        let pos = u64::from_be_bytes(data[..8].try_into().unwrap());
        let len = u64::from_be_bytes(data[8..16].try_into().unwrap());
        let block = BlockIndex {
            pos,
            len,
            first_offset: 0,
            last_offset: 5,
            min_timestamp: 0,
            max_timestamp: 0,
            records: 6,
            batches: 2,
            transactional: false,
            crc32c: None,
        };
        let rest = bytes.slice(16..);
        let _ = segment::decode_checked(rest.clone(), "fuzz.seg", &[block.clone()], Some(key()));
        let whole = BlockIndex {
            pos: 8,
            len: rest.len() as u64,
            ..block
        };
        let _ = segment::decode_checked(rest, "fuzz.seg", &[whole], Some(key()));
    }
}

fn mutated_segment(data: &[u8]) {
    let v = valid();
    let Some((&how, ops)) = data.split_first() else {
        return;
    };
    let start = v.blocks[0].pos as usize;
    let mut bytes = v.bytes[start..].to_vec();
    let mut blocks = v.blocks.clone();
    match how % 4 {
        // byte changes anywhere in the blocks (headers, payloads, tags)
        0 | 1 => mutate(&mut bytes, ops),
        // truncated
        2 => {
            let cut = ops.first().map_or(1, |c| usize::from(*c) + 1);
            bytes.truncate(bytes.len().saturating_sub(cut));
        }
        // the index changed: a block's position, length, offsets, batch count or CRC
        _ => {
            for op in ops.chunks_exact(3) {
                let n = blocks.len();
                let b = &mut blocks[usize::from(op[0]) % n];
                let d = u64::from(op[2]);
                match op[1] % 6 {
                    0 => b.pos = b.pos.wrapping_add(d),
                    1 => b.len = b.len.wrapping_sub(d),
                    2 => b.first_offset = b.first_offset.wrapping_add(d as i64),
                    3 => b.last_offset = b.last_offset.wrapping_sub(d as i64),
                    4 => b.batches = b.batches.wrapping_add(u32::from(op[2])),
                    _ => b.crc32c = b.crc32c.map(|c| c ^ u32::from(op[2])),
                }
            }
        }
    }
    let unchanged = bytes == v.bytes[start..] && blocks == v.blocks;
    let got = segment::decode_checked(Bytes::from(bytes), "fuzz.seg", &blocks, Some(key()));
    if unchanged {
        assert_eq!(got.expect("the unchanged segment decodes").len(), v.batches);
    } else {
        assert!(got.is_err(), "a changed sealed segment decoded");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => key_doc(rest),
        1 => unwrap(rest),
        2 => segment_key(rest),
        3 => arbitrary_blocks(rest),
        _ => mutated_segment(rest),
    }
});
