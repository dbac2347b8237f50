//! Object names inside a backup repository (see docs/format.md, "Layout"). All paths are
//! relative to the storage root (bucket + prefix, or directory).
//!
//! ```text
//! <backup>/runs/<runId>/manifest.json     complete run (written last: its presence = complete)
//! <backup>/runs/<runId>/checkpoint/<seq:010>.json   progress of a run not yet complete (base
//!                                          and delta documents, docs/format.md "Checkpoint")
//! <backup>/runs/<runId>/plan.json          compiled plan of a sharded run (execution.mode job)
//! <backup>/runs/<runId>/shards/<i>/checkpoint/<seq:010>.json   shard i's checkpoint
//! <backup>/runs/<runId>/shards/<i>/result.json   shard i's partitions (written last)
//! <backup>/data/<topic>/<partition>/<firstOffset:020>-<runId>.seg        segment (blocks of batches)
//! <backup>/data/<topic>/<partition>/<firstOffset:020>-<runId>.idx.json   its block index
//! <backup>/restores/<restoreName>/<runId>/offset-map.json        offset map of a restore
//! <backup>/restores/<restoreName>/journal.json                   a restore's journal (resume)
//! <backup>/restores/<restoreName>/plan.json                      staged plan of a sharded restore
//! <backup>/restores/<restoreName>/shards/<i>/result.json         its shard i's offset maps
//! <backup>/lock.json                                             lock of the backup's writers
//! <backup>/repository.json                                       owner and legacy runs
//! <backup>/restores/<restoreName>/lock.json                      lock of one restore
//! ```

/// Version tag written into every manifest, index, checkpoint, offset map and journal.
/// v2 adds the integrity chain (docs/format.md, "Integrity chain"): every JSON document carries
/// its own SHA-256, a manifest's segment entries carry their index's CRC-32C and size, and an
/// index carries each block's CRC-32C and its segment's offset range and size.
pub const FORMAT: &str = "kafka-backup-operator/v2";
/// v3 is v2 plus envelope encryption (docs/format.md, "Encryption"): written on the
/// manifests, indexes and key documents of encrypted runs only (a plaintext run stays v2, so
/// the previous build still reads it, and refuses an encrypted run by its tag instead of
/// decoding ciphertext).
pub const FORMAT_V3: &str = "kafka-backup-operator/v3";
/// The previous tag: still read (documents without checksums; see docs/format.md,
/// "Compatibility"), never written.
pub const FORMAT_V1: &str = "kafka-backup-operator/v1";

pub fn runs_dir(backup: &str) -> String {
    format!("{backup}/runs/")
}
pub fn manifest(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/manifest.json")
}
/// The single-document checkpoint written by builds before the checkpoint became a sequence
/// of documents: still read on resume, deleted with the run's other checkpoint objects.
pub fn checkpoint(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/checkpoint.json")
}
/// The directory of a run's checkpoint documents (ends with `/`).
pub fn checkpoint_dir(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/checkpoint/")
}
/// The compiled plan of a run whose shards run as separate processes (`execution.mode: job`):
/// written once by the coordinator before any shard starts; every shard reads it.
pub fn run_plan(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/plan.json")
}
/// The directory of a sharded run's shard documents (ends with `/`).
pub fn shards_dir(backup: &str, run: &str) -> String {
    format!("{backup}/runs/{run}/shards/")
}
/// The checkpoint directory of shard `shard` of a sharded run (ends with `/`).
pub fn shard_checkpoint_dir(backup: &str, run: &str, shard: u32) -> String {
    format!("{backup}/runs/{run}/shards/{shard}/checkpoint/")
}
/// The result of shard `shard` of a sharded run: written last by the shard, its presence = the
/// shard is complete.
pub fn shard_result(backup: &str, run: &str, shard: u32) -> String {
    format!("{backup}/runs/{run}/shards/{shard}/result.json")
}
/// The lock of shard `shard` of a sharded run: held by the one process that runs the shard
/// (a Job may start a second Pod while the first is still terminating).
pub fn shard_lock(backup: &str, run: &str, shard: u32) -> String {
    format!("{backup}/runs/{run}/shards/{shard}/lock.json")
}
/// Checkpoint document number `seq` in the checkpoint directory `dir` (ends with `/`).
pub fn checkpoint_part_in(dir: &str, seq: u64) -> String {
    format!("{dir}{seq:010}.json")
}
/// Checkpoint document number `seq` of a run: zero-padded to 10 digits, so names sort by
/// number.
pub fn checkpoint_part(backup: &str, run: &str, seq: u64) -> String {
    format!("{backup}/runs/{run}/checkpoint/{seq:010}.json")
}
/// The number of a checkpoint document from its file name (`0000000042.json` -> 42); None
/// for any other name (e.g. a temporary file a killed write left behind).
pub fn checkpoint_part_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
/// Topic names are legal path segments: Kafka allows only `[a-zA-Z0-9._-]`. The run id in the
/// name keeps a recreated topic's offsets from overwriting an earlier run's segment, and is
/// stable across a resumed run (same run id, same first offset: the same object).
pub fn segment(backup: &str, run: &str, topic: &str, partition: i32, first_offset: i64) -> String {
    format!("{backup}/data/{topic}/{partition}/{first_offset:020}-{run}.seg")
}
/// The run id in a segment's object name (`<firstOffset:020>-<runId>.seg`); None for
/// another name.
pub fn segment_run(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?.strip_suffix(".seg")?;
    Some(name.split_once('-')?.1)
}
pub fn segment_index(segment_path: &str) -> String {
    format!("{}.idx.json", segment_path.trim_end_matches(".seg"))
}
pub fn offset_map(backup: &str, restore: &str, run: &str) -> String {
    format!("{backup}/restores/{restore}/{run}/offset-map.json")
}
/// The key document of run `run` of an encrypted repository (`format::seal::KeyDocument`).
pub fn run_keys(backup: &str, run: &str) -> String {
    format!("{backup}/keys/{run}.json")
}
/// The directory of a backup's key documents.
pub fn keys_dir(backup: &str) -> String {
    format!("{backup}/keys/")
}
/// The repository record: owner and legacy runs (`format::repository`).
pub fn repository(backup: &str) -> String {
    format!("{backup}/repository.json")
}
/// The repository lock of a backup's writers (runs and retention; see `exec::lock`).
pub fn backup_lock(backup: &str) -> String {
    format!("{backup}/lock.json")
}
/// The lock of one restore (its journal and offset maps).
pub fn restore_lock(backup: &str, restore: &str) -> String {
    format!("{backup}/restores/{restore}/lock.json")
}
/// A snapshot of consumer-group offsets a restore took on its target before committing
/// translated ones (`rollback.snapshotBeforeRestore`).
pub fn restore_offset_snapshot(backup: &str, restore: &str, id: &str) -> String {
    format!("{backup}/restores/{restore}/offset-snapshots/{id}.json")
}
/// The journal of a restore (plan and base offsets), read when it is resumed.
pub fn restore_journal(backup: &str, restore: &str) -> String {
    format!("{backup}/restores/{restore}/journal.json")
}

/// The staged plan of a restore whose shards run as separate processes (`execution.mode:
/// job`), in the restore's state storage next to its journal: written by the coordinator
/// after the targets are prepared, read by every shard.
pub fn restore_plan(backup: &str, restore: &str) -> String {
    format!("{backup}/restores/{restore}/plan.json")
}
/// The directory of a sharded restore's shard documents (ends with `/`).
pub fn restore_shards_dir(backup: &str, restore: &str) -> String {
    format!("{backup}/restores/{restore}/shards/")
}
/// The result of shard `shard` of a sharded restore (its offset maps and counts): written
/// last by the shard, its presence = the shard is complete.
pub fn restore_shard_result(backup: &str, restore: &str, shard: u32) -> String {
    format!("{backup}/restores/{restore}/shards/{shard}/result.json")
}
/// The lock of shard `shard` of a sharded restore: held by the one process that produces the
/// shard's records (a Job may start a second Pod while the first is still terminating, and two
/// producers of one shard would write its records twice).
pub fn restore_shard_lock(backup: &str, restore: &str, shard: u32) -> String {
    format!("{backup}/restores/{restore}/shards/{shard}/lock.json")
}

/// A run id from a UTC time in epoch ms: `YYYYMMDDTHHMMSS.mmmZ`, so ids sort by time.
pub fn run_id(epoch_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(epoch_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y%m%dT%H%M%S.%3fZ").to_string()
}

/// The epoch ms a run id stands for (None for an id not of the [`run_id`] form).
pub fn run_id_ms(id: &str) -> Option<i64> {
    let t = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S.%3fZ", id.get(..20)?).ok()?;
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// A new run's id at `now_ms`, strictly greater than `after` (the newest run of the
/// repository): a clock that stepped back, or two runs in one millisecond, still give ids that
/// sort after every earlier run, so "the newest run is the greatest id" holds.
pub fn next_run_id(now_ms: i64, after: Option<&str>) -> String {
    let id = run_id(now_ms);
    match after {
        Some(prev) if id.as_str() <= prev => {
            run_id(run_id_ms(prev).map_or(now_ms, |ms| ms.max(now_ms)) + 1)
        }
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_run_ids_sort_after_the_newest_even_when_the_clock_steps_back() {
        let prev = run_id(1_700_000_000_500);
        assert_eq!(run_id_ms(&prev), Some(1_700_000_000_500));
        let same = next_run_id(1_700_000_000_500, Some(&prev));
        let back = next_run_id(1_600_000_000_000, Some(&prev));
        assert!(same > prev && back > prev, "{same} {back} > {prev}");
        assert_eq!(
            next_run_id(1_700_000_001_000, Some(&prev)),
            run_id(1_700_000_001_000)
        );
        assert_eq!(next_run_id(5, None), run_id(5));
    }

    #[test]
    fn run_ids_sort_by_time_and_paths_are_stable() {
        let a = run_id(1_700_000_000_000);
        let b = run_id(1_700_000_000_001);
        assert_eq!(a, "20231114T221320.000Z");
        assert!(a < b);
        let s = segment("kb", "r1", "orders", 3, 42);
        assert_eq!(s, "kb/data/orders/3/00000000000000000042-r1.seg");
        let c = checkpoint_part("kb", "r1", 42);
        assert_eq!(c, "kb/runs/r1/checkpoint/0000000042.json");
        assert!(c.starts_with(&checkpoint_dir("kb", "r1")));
        assert_eq!(checkpoint_part_seq("0000000042.json"), Some(42));
        assert_eq!(checkpoint_part_seq("0000000042.json.tmp-1-2"), None);
        assert_eq!(checkpoint_part_seq("42.json"), None);
        assert_eq!(
            segment_index(&s),
            "kb/data/orders/3/00000000000000000042-r1.idx.json"
        );
    }
}
