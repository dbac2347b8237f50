//! The segment block reader on arbitrary bytes: block headers, payload CRC-32C, outer
//! decompression (zstd, lz4) and the batches inside. Errors are fine; panics and unbounded
//! allocations are not.
#![no_main]
use bytes::Bytes;
use kafka_backup_operator::format::segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = data.strip_prefix(segment::MAGIC.as_slice()).unwrap_or(data);
    let _ = segment::decode_blocks(Bytes::copy_from_slice(body), "fuzz.seg");
});
