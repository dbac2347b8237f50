//! The record-batch codec on arbitrary Fetch `records` bytes: splitting into batches,
//! header parsing, CRC check, record decoding (every compression codec), and the round trip
//! decode -> encode -> decode, which must give the same records.
#![no_main]
use bytes::Bytes;
use kafka_backup_operator::format::batch::{self, Codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(batches) = batch::split_batches(&bytes) else {
        return;
    };
    for b in &batches {
        let _ = batch::crc_ok(b);
        let _ = batch::min_timestamp(b);
        let _ = batch::control_marker(b);
        let _ = batch::can_pass_through(&b.header);
        let _ = batch::rewrite_for_produce(b);
        let Ok(records) = batch::decode_records(b) else {
            continue;
        };
        if records.is_empty() {
            continue;
        }
        for codec in [Codec::None, Codec::Zstd] {
            // Only timestamps too far apart for one batch's deltas refuse to encode.
            let Ok(enc) = batch::encode_batch(&records, codec) else {
                continue;
            };
            let again = batch::split_batches(&enc).expect("an encoded batch splits");
            assert_eq!(again.len(), 1, "one batch");
            assert!(batch::crc_ok(&again[0]), "an encoded batch has a valid CRC");
            let back = batch::decode_records(&again[0]).expect("an encoded batch decodes");
            assert_eq!(back.len(), records.len());
            for (x, y) in records.iter().zip(&back) {
                assert_eq!(
                    (&x.key, &x.value, &x.headers, x.timestamp),
                    (&y.key, &y.value, &y.headers, y.timestamp),
                    "a record survives decode -> encode -> decode"
                );
            }
        }
    }
});
