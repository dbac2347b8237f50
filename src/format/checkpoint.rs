//! A run's checkpoint as a sequence of documents (docs/format.md, "Checkpoint"): a base
//! holding every partition's progress, then deltas holding only the partitions that changed,
//! `<backup>/runs/<runId>/checkpoint/<seq:010>.json`. Writing costs the size of what changed;
//! the deltas are folded into a new base once they outgrow the last base (and
//! [`MIN_COMPACT_BYTES`]), so the bytes written stay within a constant factor of the changes
//! (each base costs at most the deltas written since the one before), and a reader reads one
//! base and deltas smaller than it (or than [`MIN_COMPACT_BYTES`]).
use std::collections::BTreeMap;

use opendal::Operator;

use super::FormatError;
use super::layout::{self, FORMAT};
use super::manifest::{
    Checkpoint, CheckpointPart, PartKind, PartitionProgress, ProgressChange, from_json, to_json,
};
use crate::storage::{self, StorageError, backend};

/// Delta bytes below which no new base is written, however small the last base (bytes).
pub const MIN_COMPACT_BYTES: u64 = 256 << 10;
/// Documents read at once on resume.
const READ_AHEAD: usize = 16;

/// Numbers of the checkpoint documents of `run`, ascending (names that are not checkpoint
/// documents, like temporary files a killed write left, are skipped). Empty when there are
/// none.
pub async fn list_parts(op: &Operator, backup: &str, run: &str) -> Result<Vec<u64>, StorageError> {
    list_parts_in(op, &layout::checkpoint_dir(backup, run)).await
}

/// [`list_parts`] of the checkpoint directory `dir` (a run's, or a shard's:
/// [`layout::shard_checkpoint_dir`]).
pub async fn list_parts_in(op: &Operator, dir: &str) -> Result<Vec<u64>, StorageError> {
    let dir = dir.to_string();
    let entries = match op.list(&dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(backend("list", &dir, e)),
    };
    let mut seqs: Vec<u64> = entries
        .iter()
        .filter(|e| e.metadata().is_file())
        .filter_map(|e| layout::checkpoint_part_seq(e.name()))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The progress of the incomplete run `run`: its newest base with the later deltas applied in
/// order. `Ok(None)` when the run has no checkpoint documents (it may still have the
/// `checkpoint.json` of an earlier build, which the caller reads). Reads the documents from
/// the newest back to the newest base (documents before that base are not read).
///
/// Errors: storage failures; a document that fails its checksum or does not parse, a missing
/// number between the base and the newest delta, a delta that does not continue a partition's
/// segment list, or deltas without a base ([`StorageError::Content`], naming the object).
pub async fn load(
    op: &Operator,
    backup: &str,
    run: &str,
) -> Result<Option<Checkpoint>, StorageError> {
    load_in(op, &layout::checkpoint_dir(backup, run), run).await
}

/// [`load`] of the checkpoint directory `dir` of run `run` (a run's, or a shard's:
/// [`layout::shard_checkpoint_dir`]).
pub async fn load_in(
    op: &Operator,
    dir: &str,
    run: &str,
) -> Result<Option<Checkpoint>, StorageError> {
    let seqs = list_parts_in(op, dir).await?;
    if seqs.is_empty() {
        return Ok(None);
    }
    let corrupt = |m: String| StorageError::from(FormatError::Corrupt(m));
    // newest first, down to the newest base, READ_AHEAD documents at a time
    let mut docs: Vec<CheckpointPart> = Vec::new();
    'chunks: for chunk in seqs.rchunks(READ_AHEAD).map(|c| c.iter().rev()) {
        let reads = chunk.map(|&seq| read_part(op, dir, run, seq));
        for (seq, doc) in futures::future::try_join_all(reads).await? {
            if let Some(later) = docs.last()
                && later.seq != seq + 1
            {
                return Err(corrupt(format!(
                    "checkpoint of run {run}: document {} is missing between {} and {}; delete {} to start the run over",
                    seq + 1,
                    seq,
                    later.seq,
                    dir
                )));
            }
            let base = doc.kind == PartKind::Base;
            docs.push(doc);
            if base {
                break 'chunks;
            }
        }
    }
    if docs.last().is_none_or(|d| d.kind != PartKind::Base) {
        return Err(corrupt(format!(
            "checkpoint of run {run}: deltas without a base document in {dir}; delete it to start the run over"
        )));
    }
    let mut cp = Checkpoint {
        format: FORMAT.into(),
        run_id: run.into(),
        ..Default::default()
    };
    for doc in docs.into_iter().rev() {
        cp.run_id = doc.run_id;
        cp.plan_hash = doc.plan_hash;
        cp.updated_at = doc.updated_at;
        for (key, change) in doc.partitions {
            let p = cp.partitions.entry(key.clone()).or_default();
            change.apply(p).map_err(|m| {
                corrupt(format!(
                    "{}: partition {key} {m}",
                    layout::checkpoint_part_in(dir, doc.seq)
                ))
            })?;
        }
    }
    Ok(Some(cp))
}

/// Reads and checks checkpoint document `seq` of `run`.
async fn read_part(
    op: &Operator,
    dir: &str,
    run: &str,
    seq: u64,
) -> Result<(u64, CheckpointPart), StorageError> {
    let path = layout::checkpoint_part_in(dir, seq);
    let corrupt = |m: String| StorageError::from(FormatError::Corrupt(m));
    let Some(b) = storage::read_opt(op, &path).await? else {
        return Err(corrupt(format!(
            "{path} was listed but cannot be read: is another process deleting the checkpoint of run {run}?"
        )));
    };
    let doc: CheckpointPart = from_json(&b, &path)?;
    if doc.seq != seq || doc.run_id != run {
        return Err(corrupt(format!(
            "{path} says it is document {} of run {}: the object was renamed or copied",
            doc.seq, doc.run_id
        )));
    }
    Ok((seq, doc))
}

/// Deletes every checkpoint object of `run`: its documents (and temporary files next to
/// them) and a `checkpoint.json` of earlier builds.
pub async fn delete_all(op: &Operator, backup: &str, run: &str) -> Result<(), StorageError> {
    let dir = layout::checkpoint_dir(backup, run);
    op.delete_with(&dir)
        .recursive(true)
        .await
        .map_err(|e| backend("delete", &dir, e))?;
    let legacy = layout::checkpoint(backup, run);
    op.delete(&legacy)
        .await
        .map_err(|e| backend("delete", &legacy, e))
}

/// Documents and bytes a [`CheckpointWriter`] has written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub documents: u64,
    pub bytes: u64,
    /// Of `documents`, how many were bases.
    pub bases: u64,
}

/// Writes the checkpoint documents of one attempt of a run. It keeps the progress its
/// documents add up to (to write a base), and decides base or delta per write.
pub struct CheckpointWriter {
    /// The checkpoint directory (ends with `/`).
    dir: String,
    /// The single-document checkpoint of earlier builds, deleted at start (a run's only).
    legacy: Option<String>,
    run_id: String,
    plan_hash: String,
    /// What the documents written so far add up to.
    state: BTreeMap<String, PartitionProgress>,
    next_seq: u64,
    /// Numbers of the newest base and the deltas after it.
    live: Vec<u64>,
    /// Documents older than the newest base, still to delete.
    stale: Vec<u64>,
    base_bytes: u64,
    delta_bytes: u64,
    stats: WriteStats,
}

impl CheckpointWriter {
    /// A writer for `run_id` whose progress starts as `state` (a resumed run's partitions and
    /// their segments; empty for a new run). Nothing is written before [`Self::start`].
    pub fn new(
        backup: &str,
        run_id: &str,
        plan_hash: &str,
        state: BTreeMap<String, PartitionProgress>,
    ) -> CheckpointWriter {
        CheckpointWriter {
            dir: layout::checkpoint_dir(backup, run_id),
            legacy: Some(layout::checkpoint(backup, run_id)),
            run_id: run_id.into(),
            plan_hash: plan_hash.into(),
            state,
            next_seq: 0,
            live: vec![],
            stale: vec![],
            base_bytes: 0,
            delta_bytes: 0,
            stats: WriteStats::default(),
        }
    }

    /// This writer, writing into the checkpoint directory `dir` instead of the run's (a
    /// shard's: [`layout::shard_checkpoint_dir`]).
    pub fn in_dir(mut self, dir: String) -> CheckpointWriter {
        self.dir = dir;
        self.legacy = None;
        self
    }

    /// Writes the attempt's first document: a base with the starting progress, numbered after
    /// any document an earlier attempt left; then deletes those documents and a
    /// `checkpoint.json` of earlier builds. Returns the path written.
    pub async fn start(&mut self, op: &Operator, now_ms: i64) -> Result<String, StorageError> {
        let existing = list_parts_in(op, &self.dir).await?;
        self.next_seq = existing.last().map_or(0, |s| s + 1);
        self.stale = existing;
        let path = self.write_base(op, &BTreeMap::new(), now_ms).await?;
        if let Some(legacy) = &self.legacy
            && let Err(e) = op.delete(legacy).await
        {
            tracing::warn!(path = %legacy, error = %e, "old checkpoint not deleted");
        }
        Ok(path)
    }

    /// Writes `changes` (partition key -> change since the last document): as a delta, or as a
    /// new base when the deltas since the last base outgrow it (and [`MIN_COMPACT_BYTES`]),
    /// after which the older documents are deleted. On error nothing
    /// changes: the same changes may be written again. Returns the path written.
    pub async fn write(
        &mut self,
        op: &Operator,
        changes: &BTreeMap<String, ProgressChange>,
        now_ms: i64,
    ) -> Result<String, StorageError> {
        if self.delta_bytes >= self.base_bytes.max(MIN_COMPACT_BYTES) {
            return self.write_base(op, changes, now_ms).await;
        }
        let doc = self.part(PartKind::Delta, changes.clone(), now_ms);
        let bytes = to_json(&doc);
        let n = bytes.len() as u64;
        let path = layout::checkpoint_part_in(&self.dir, doc.seq);
        storage::write_all(op, &path, bytes).await?;
        for (key, change) in changes {
            let p = self.state.entry(key.clone()).or_default();
            if let Err(m) = change.clone().apply(p) {
                // the caller's changes did not continue what it wrote before: a bug
                tracing::error!(partition = %key, "checkpoint change {m}");
            }
        }
        self.live.push(self.next_seq);
        self.next_seq += 1;
        self.delta_bytes += n;
        self.count(n, false);
        Ok(path)
    }

    /// What has been written so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    fn part(
        &self,
        kind: PartKind,
        partitions: BTreeMap<String, ProgressChange>,
        now_ms: i64,
    ) -> CheckpointPart {
        CheckpointPart {
            format: FORMAT.into(),
            run_id: self.run_id.clone(),
            plan_hash: self.plan_hash.clone(),
            seq: self.next_seq,
            kind,
            updated_at: now_ms,
            partitions,
        }
    }

    fn count(&mut self, bytes: u64, base: bool) {
        self.stats.documents += 1;
        self.stats.bytes += bytes;
        self.stats.bases += base as u64;
    }

    async fn write_base(
        &mut self,
        op: &Operator,
        changes: &BTreeMap<String, ProgressChange>,
        now_ms: i64,
    ) -> Result<String, StorageError> {
        let mut state = self.state.clone();
        for (key, change) in changes {
            let p = state.entry(key.clone()).or_default();
            if let Err(m) = change.clone().apply(p) {
                tracing::error!(partition = %key, "checkpoint change {m}");
            }
        }
        let whole = state
            .iter()
            .map(|(k, p)| {
                let c = ProgressChange {
                    next_offset: p.next_offset,
                    first_segment: 0,
                    segments: p.segments.clone(),
                    gaps: p.gaps.clone(),
                    done: p.done,
                };
                (k.clone(), c)
            })
            .collect();
        let doc = self.part(PartKind::Base, whole, now_ms);
        let bytes = to_json(&doc);
        let n = bytes.len() as u64;
        let path = layout::checkpoint_part_in(&self.dir, doc.seq);
        storage::write_all(op, &path, bytes).await?;
        self.state = state;
        self.stale.append(&mut self.live);
        self.live.push(self.next_seq);
        self.next_seq += 1;
        self.base_bytes = n;
        self.delta_bytes = 0;
        self.count(n, true);
        // Everything before the new base is no longer read: delete it, oldest first (a kill
        // in between leaves documents older than the base, which readers skip).
        self.stale.sort_unstable();
        self.stale.dedup();
        for seq in std::mem::take(&mut self.stale) {
            let old = layout::checkpoint_part_in(&self.dir, seq);
            if let Err(e) = op.delete(&old).await {
                tracing::warn!(path = %old, error = %e, "superseded checkpoint document not deleted");
            }
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::SegmentRef;
    use crate::storage::StorageTarget;

    fn fs(dir: &std::path::Path) -> Operator {
        StorageTarget::Fs {
            root: dir.display().to_string(),
        }
        .operator()
        .unwrap()
    }

    fn seg(key: &str, i: u64) -> SegmentRef {
        SegmentRef {
            path: format!("kb/data/{key}/{:020}-r1.seg", i * 10),
            first_offset: i as i64 * 10,
            last_offset: i as i64 * 10 + 9,
            records: 10,
            raw_bytes: 1000,
            stored_bytes: 1010,
            min_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_009,
            crc32c: 123_456_789,
            index_crc32c: Some(987_654_321),
            index_bytes: Some(300),
            last_batch_offset: Some(i as i64 * 10 + 9),
            last_batch_crc32c: Some(555_555_555),
            seal: None,
        }
    }

    fn one(key: &str, change: ProgressChange) -> BTreeMap<String, ProgressChange> {
        BTreeMap::from([(key.to_string(), change)])
    }

    /// `n` partitions, each step written as its own document (the worst case: nothing
    /// gathered): a finished segment, then the partition done. Returns what was written and
    /// what a resume reads back.
    async fn every_step_on_its_own(n: usize) -> (WriteStats, Checkpoint, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let op = fs(dir.path());
        let mut w = CheckpointWriter::new("kb", "r1", "h", BTreeMap::new());
        w.start(&op, 0).await.unwrap();
        for i in 0..n {
            let key = format!("t{:04}/{}", i / 10, i % 10);
            let s = ProgressChange {
                next_offset: 10,
                first_segment: 0,
                segments: vec![seg(&key, 0)],
                gaps: vec![],
                done: false,
            };
            w.write(&op, &one(&key, s), i as i64).await.unwrap();
            let d = ProgressChange {
                next_offset: 10,
                first_segment: 1,
                segments: vec![],
                gaps: vec![],
                done: true,
            };
            w.write(&op, &one(&key, d), i as i64).await.unwrap();
        }
        let cp = load(&op, "kb", "r1").await.unwrap().unwrap();
        let sizes = std::fs::read_dir(dir.path().join("kb/runs/r1/checkpoint"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        (w.stats(), cp, sizes)
    }

    /// Class 11: the checkpoint bytes written per partition step do not grow with the number
    /// of partitions (they grew linearly, 4.7 MB per step at 10,000 partitions, when every step
    /// rewrote the whole document), and what is read back is every step, exactly.
    #[tokio::test]
    async fn checkpoint_bytes_per_partition_step_do_not_grow_with_the_partition_count() {
        let (small, _, _) = every_step_on_its_own(250).await;
        let (large, cp, sizes) = every_step_on_its_own(2000).await;
        let per_step = |s: WriteStats, n: u64| s.bytes / (2 * n);
        let (a, b) = (per_step(small, 250), per_step(large, 2000));
        eprintln!("checkpoint bytes per partition step: {a} at 250 partitions, {b} at 2,000");
        // one partition's entry in a document is ~0.6 kB; the whole 2,000-partition progress
        // is ~1.2 MB, which a rewrite per step would cost
        assert!(
            b <= 3000,
            "{b} bytes per step at 2,000 partitions ({large:?})"
        );
        assert!(
            b * 2 <= a * 3,
            "per-step bytes grew with the partition count: {a} at 250, {b} at 2,000"
        );
        assert_eq!(large.documents, 1 + 2 * 2000);
        assert!(large.bases >= 2, "deltas were compacted: {large:?}");
        // what a resume reads: the newest base and deltas smaller than it (older documents
        // are deleted)
        let (total, base) = (sizes.iter().sum::<u64>(), *sizes.iter().max().unwrap());
        assert!(
            total <= 2 * base.max(MIN_COMPACT_BYTES) + 4096,
            "{} documents of {total} bytes left, the largest {base}",
            sizes.len()
        );
        assert_eq!(cp.partitions.len(), 2000);
        for (key, p) in &cp.partitions {
            assert!(p.done && p.next_offset == 10, "{key}: {p:?}");
            assert_eq!(p.segments, vec![seg(key, 0)], "{key}");
        }
    }

    /// A new attempt writes a base after the documents an earlier one left and deletes them
    /// (and an old `checkpoint.json`); a reader refuses a chain with a missing document or a
    /// delta that does not continue the segment list, naming the object.
    #[tokio::test]
    async fn a_new_attempt_compacts_and_a_broken_chain_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let op = fs(dir.path());
        std::fs::create_dir_all(dir.path().join("kb/runs/r1")).unwrap();
        std::fs::write(dir.path().join("kb/runs/r1/checkpoint.json"), b"{}").unwrap();
        let mut w = CheckpointWriter::new("kb", "r1", "h1", BTreeMap::new());
        w.start(&op, 1).await.unwrap();
        for i in 0..3u64 {
            let c = ProgressChange {
                next_offset: (i as i64 + 1) * 10,
                first_segment: i,
                segments: vec![seg("t/0", i)],
                gaps: vec![],
                done: false,
            };
            w.write(&op, &one("t/0", c), 2).await.unwrap();
        }
        assert!(!dir.path().join("kb/runs/r1/checkpoint.json").exists());
        assert_eq!(list_parts(&op, "kb", "r1").await.unwrap(), vec![0, 1, 2, 3]);
        let cp = load(&op, "kb", "r1").await.unwrap().unwrap();
        let segs: Vec<SegmentRef> = (0..3).map(|i| seg("t/0", i)).collect();
        assert_eq!(cp.partitions["t/0"].segments, segs);
        assert_eq!(cp.partitions["t/0"].next_offset, 30);

        // the next attempt: one base numbered after them, the rest deleted
        let mut w2 = CheckpointWriter::new("kb", "r1", "h2", cp.partitions.clone());
        w2.start(&op, 3).await.unwrap();
        assert_eq!(list_parts(&op, "kb", "r1").await.unwrap(), vec![4]);
        let again = load(&op, "kb", "r1").await.unwrap().unwrap();
        assert_eq!(again.partitions, cp.partitions);
        assert_eq!(again.plan_hash, "h2");
        let c = ProgressChange {
            next_offset: 40,
            first_segment: 3,
            segments: vec![seg("t/0", 3)],
            gaps: vec![],
            done: true,
        };
        w2.write(&op, &one("t/0", c.clone()), 4).await.unwrap();
        w2.write(&op, &one("t/1", ProgressChange::default()), 5)
            .await
            .unwrap();

        // a delta deleted from the middle: refused
        let five = dir.path().join("kb/runs/r1/checkpoint/0000000005.json");
        let saved = std::fs::read(&five).unwrap();
        std::fs::remove_file(&five).unwrap();
        let e = load(&op, "kb", "r1").await.unwrap_err().to_string();
        assert!(e.contains("document 5 is missing"), "{e}");
        // a delta that repeats a segment: refused, naming it
        let mut bad: CheckpointPart = from_json(&saved, "x").unwrap();
        bad.partitions.get_mut("t/0").unwrap().first_segment = 2;
        std::fs::write(&five, to_json(&bad)).unwrap();
        let e = load(&op, "kb", "r1").await.unwrap_err().to_string();
        assert!(
            e.contains("0000000005.json: partition t/0 continues the segment list at segment 2"),
            "{e}"
        );
        // an edited delta fails its checksum
        let edited = String::from_utf8(saved.clone())
            .unwrap()
            .replace("40", "41");
        std::fs::write(&five, edited).unwrap();
        let e = load(&op, "kb", "r1").await.unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        std::fs::write(&five, &saved).unwrap();
        let done = load(&op, "kb", "r1").await.unwrap().unwrap();
        assert!(done.partitions["t/0"].done);
        assert_eq!(done.partitions["t/0"].segments.len(), 4);
        assert!(done.partitions.contains_key("t/1"));

        // the run completes: every checkpoint object goes
        delete_all(&op, "kb", "r1").await.unwrap();
        assert!(load(&op, "kb", "r1").await.unwrap().is_none());
        assert!(list_parts(&op, "kb", "r1").await.unwrap().is_empty());
    }
}
