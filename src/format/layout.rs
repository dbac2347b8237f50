//! Object names inside a backup repository (see docs/format.md, "Layout"). All paths are
//! relative to the storage root (bucket + prefix, or directory).
//!
//! ```text
//! <backup>/runs/<runId>/manifest.json     complete run (written last: its presence = complete)
//! <backup>/runs/<runId>/checkpoint.json   progress of a run not yet complete
//! <backup>/data/<topic>/<partition>/<firstOffset:020>-<runId>.seg        segment (blocks of batches)
//! <backup>/data/<topic>/<partition>/<firstOffset:020>-<runId>.idx.json   its block index
//! <backup>/restores/<restoreName>/<runId>/offset-map.json        offset map of a restore
//! <backup>/restores/<restoreName>/journal.json                   a restore's journal (resume)
//! ```

/// Version tag written into every manifest, index, checkpoint, offset map and journal.
/// v2 adds the integrity chain (docs/format.md, "Integrity chain"): every JSON document carries
/// its own SHA-256, a manifest's segment entries carry their index's CRC-32C and size, and an
/// index carries each block's CRC-32C and its segment's offset range and size.
pub const FORMAT: &str = "kafka-backup-operator/v2";
/// The previous tag: still read (documents without checksums; see docs/format.md,
/// "Compatibility"), never written.
pub const FORMAT_V1: &str = "kafka-backup-operator/v1";

pub fn runs_dir(backup: &str) -> String {
    format!("{backup}/runs/")
}
pub fn manifest(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/manifest.json")
}
pub fn checkpoint(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/checkpoint.json")
}
/// Topic names are legal path segments: Kafka allows only `[a-zA-Z0-9._-]`. The run id in the
/// name keeps a recreated topic's offsets from overwriting an earlier run's segment, and is
/// stable across a resumed run (same run id, same first offset: the same object).
pub fn segment(backup: &str, run: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    format!("{backup}/data/{topic}/{partition}/{first_offset:020}-{run}.seg")
}
pub fn segment_index(segment_path: &str) -> String {
    format!("{}.idx.json", segment_path.trim_end_matches(".seg"))
}
pub fn offset_map(backup: &str, restore: &str, run: &str) -> String {
    format!("{backup}/restores/{restore}/{run}/offset-map.json")
}
/// The journal of a restore (plan and base offsets), read when it is resumed.
pub fn restore_journal(backup: &str, restore: &str) -> String {
    format!("{backup}/restores/{restore}/journal.json")
}

/// A run id from a UTC time in epoch ms: `YYYYMMDDTHHMMSS.mmmZ`, so ids sort by time.
pub fn run_id(epoch_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(epoch_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y%m%dT%H%M%S.%3fZ").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_sort_by_time_and_paths_are_stable() {
        let a = super::run_id(1_700_000_000_000);
        let b = super::run_id(1_700_000_000_001);
        assert_eq!(a, "20231114T221320.000Z");
        assert!(a < b);
        let s = super::segment("kb", "r1", "orders", 3, 42);
        assert_eq!(s, "kb/data/orders/3/00000000000000000042-r1.seg");
        assert_eq!(
            super::segment_index(&s),
            "kb/data/orders/3/00000000000000000042-r1.idx.json"
        );
    }
}
