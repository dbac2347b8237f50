//! A segment index and its segment, as a restore reads them: the input is
//! `<index JSON> 0xFF <segment bytes>`. The manifest entry the index is checked against is
//! derived from the index itself (so that parsing inputs reach the deeper checks), then the
//! blocks the index lists are read from the segment bytes with every check.
#![no_main]
use bytes::Bytes;
use kafka_backup_operator::format::manifest::{SegmentIndex, SegmentRef, from_json};
use kafka_backup_operator::format::segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (idx_bytes, seg) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(idx) = from_json::<SegmentIndex>(idx_bytes, "fuzz.idx") else {
        return;
    };
    let first = idx.blocks.first().map(|b| b.first_offset).unwrap_or(0);
    let last = idx.blocks.last().map(|b| b.last_offset).unwrap_or(0);
    let seg_ref = SegmentRef {
        path: format!("b/data/{}/{}/{first}-r.seg", idx.topic, idx.partition),
        first_offset: idx.first_offset.unwrap_or(first),
        last_offset: idx.last_offset.unwrap_or(last),
        records: idx
            .blocks
            .iter()
            .map(|b| b.records)
            .fold(0u64, u64::wrapping_add),
        raw_bytes: 0,
        stored_bytes: idx.stored_bytes.unwrap_or(seg.len() as u64),
        min_timestamp: 0,
        max_timestamp: 0,
        crc32c: 0,
        index_crc32c: None,
        index_bytes: None,
        last_batch_offset: None,
        last_batch_crc32c: None,
        seal: idx.seal.clone(),
    };
    let topic = idx.topic.clone();
    let partition = idx.partition;
    // Unverified: the reader must still never panic.
    let _ = segment::decode_checked(Bytes::copy_from_slice(seg), "fuzz.seg", &idx.blocks, None);
    let Ok(checked) = segment::verify_index(idx_bytes, "b", &topic, partition, &seg_ref) else {
        return;
    };
    let _ = segment::decode_checked(
        Bytes::copy_from_slice(seg),
        "fuzz.seg",
        &checked.blocks,
        None,
    );
});
