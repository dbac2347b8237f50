//! Compiling a KafkaBackup run from its validated input ([`ValidatedBackup`]) and the observed
//! facts ([`BackupFacts`]).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BytesSource, CompileError, backup_step_bytes, issue, plan_hash, select_topics};
use crate::api::{BackupCut, ValidatedBackup};
use crate::facts::ClusterMeta;
use crate::facts::ConfigEntry;
use crate::facts::LogSizes;
use crate::facts::PartitionOffsets;
use crate::facts::TopicMeta;
use crate::format::manifest::{Checkpoint, Gap, PartitionManifest, RunManifest, SegmentRef};

/// Everything `compile_backup` needs, all observed beforehand.
#[derive(Debug, Clone)]
pub struct BackupFacts {
    /// Backup (KafkaBackup) name.
    pub name: String,
    /// "Now" as epoch ms, read by the caller (compile reads no clock).
    pub now_ms: i64,
    pub meta: ClusterMeta,
    pub offsets: BTreeMap<(String, i32), PartitionOffsets>,
    pub configs: BTreeMap<String, BTreeMap<String, ConfigEntry>>,
    /// The newest complete run of this backup, if any: the new run continues from its cuts.
    pub previous: Option<RunManifest>,
    /// An incomplete run to resume, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Partitions whose log no longer holds the previous run's last batch (fetched again and
    /// found different: [`crate::observe::diverged_partitions`]), with why: the topic was
    /// deleted and recreated on a broker without topic ids.
    pub diverged: BTreeMap<(String, i32), String>,
    /// The sizes of the partitions' logs on their leaders (DescribeLogDirs), for the byte
    /// estimates; the partitions the brokers did not size, and why.
    pub log_sizes: LogSizes,
}

/// Where a partition's fetch stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode", content = "offset")]
pub enum CutMode {
    /// `stopAtCurrentOffsets`: the high watermark read before any fetch.
    At(i64),
    /// One-shot without a fixed cut: until the partition is caught up with its high watermark.
    CaughtUp,
    /// `continuous`: until the run is stopped.
    Never,
}

/// A topic of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupTopic {
    pub name: String,
    pub topic_id: String,
    pub partition_count: i32,
    pub configs: BTreeMap<String, ConfigEntry>,
}

/// The work for one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPartitionStep {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// First offset to fetch.
    pub start_offset: i64,
    pub cut: CutMode,
    /// First offset the run will cover (earlier runs' segments included).
    pub covered_from: i64,
    /// Segments of earlier runs still needed (offsets >= log start... kept as the manifest lists
    /// them, so a restore of this run reproduces the partition).
    pub carried_segments: Vec<SegmentRef>,
    pub carried_gaps: Vec<Gap>,
    /// Segments already written by the interrupted attempt of this run (resume).
    pub resumed_segments: Vec<SegmentRef>,
    /// A planned gap: the previous cut is below today's log start (retention deleted it).
    pub gap: Option<Gap>,
    /// Offsets to fetch (cut - start; 0 when unknown).
    pub estimated_records: u64,
    /// Estimated raw bytes to fetch ([`backup_step_bytes`]): the share of the leader's log
    /// size of the offsets to fetch, else the previous run's bytes per record; 0 when
    /// unknown (see `estimated_bytes_from`).
    pub estimated_bytes: u64,
    /// Where `estimated_bytes` comes from (`unknown` in plans written before it was recorded).
    #[serde(default)]
    pub estimated_bytes_from: BytesSource,
}

impl BackupPartitionStep {
    /// This step resumed after `segments`, the segments an interrupted attempt of the same run
    /// wrote (a shard's checkpoint): they are kept, and the fetch starts after the last of them
    /// (never before the step's own start).
    pub fn resumed_after(mut self, segments: Vec<SegmentRef>) -> BackupPartitionStep {
        if let Some(last) = segments.last() {
            self.start_offset = self.start_offset.max(last.last_offset + 1);
        }
        self.resumed_segments = segments;
        self
    }
}

/// A compiled backup run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPlan {
    pub backup_name: String,
    pub run_id: String,
    pub resumed: bool,
    pub previous_run_id: Option<String>,
    pub compression: String,
    pub compression_level: i32,
    pub segment_max_bytes: u64,
    pub segment_max_interval_ms: u64,
    /// None = checkpointing disabled.
    pub checkpoint_interval_ms: Option<u64>,
    pub max_concurrent_partitions: u32,
    pub records_per_sec: Option<u64>,
    pub bytes_per_sec: Option<u64>,
    pub consumer_group_snapshot: bool,
    pub cluster_id: Option<String>,
    pub topics: Vec<BackupTopic>,
    pub partitions: Vec<BackupPartitionStep>,
    pub estimated_records: u64,
    /// The sum of the steps' known byte estimates.
    pub estimated_bytes: u64,
    /// Why some steps' bytes are unknown (the brokers that would not size their logs), when
    /// some are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub estimate_notes: Vec<String>,
    /// Hash of everything above (run id and clock excluded), for status `planHash`.
    pub hash: String,
    /// The KafkaBackup writing the run, claimed as the repository's owner before anything is
    /// written (`exec::repository::claim`). Compiled as `default/<backup name>`; the flow sets
    /// the resource's namespace. Not part of the hash or the printed plan.
    #[serde(skip, default = "unset_owner")]
    pub owner: crate::format::repository::Owner,
    /// The current owner of a repository this run adopts on purpose (annotation
    /// `kafka.oso.sh/adopt-repository`), set by the flow.
    #[serde(skip, default)]
    pub adopt_from: Option<crate::format::repository::Owner>,
    /// `storage.s3.objectLock`: the retention every object the run writes carries (the
    /// storage adds it on each PUT), recorded in the manifest. Part of the hash when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::api::common::ObjectLockSpec>,
    /// `execution.mode: job`: the shards (one Job each) and their partition steps. None in
    /// process (absent from the JSON, so such plans and their hashes are unchanged); part of
    /// the hash when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<super::PlanExecution>,
}

/// The owner of a plan read back from a document (the coordinator's, never a shard's, claims
/// the repository): none.
fn unset_owner() -> crate::format::repository::Owner {
    crate::format::repository::Owner::new(None, "")
}

/// Compiles a backup run from its validated input. Errors: topics named literally that do not
/// exist (`spec.topics[i]`), a selection that matches nothing.
pub fn compile_backup(
    input: &ValidatedBackup,
    facts: &BackupFacts,
) -> Result<BackupPlan, CompileError> {
    let selected = select(input, facts)?;
    let resume = facts
        .checkpoint
        .as_ref()
        .filter(|c| facts.previous.as_ref().is_none_or(|p| p.run_id < c.run_id));
    let run_id = match resume {
        Some(c) => c.run_id.clone(),
        None => crate::format::layout::next_run_id(
            facts.now_ms,
            [
                facts.previous.as_ref().map(|m| m.run_id.as_str()),
                facts.checkpoint.as_ref().map(|c| c.run_id.as_str()),
            ]
            .into_iter()
            .flatten()
            .max(),
        ),
    };
    let previous = Previous::of(facts.previous.as_ref());
    let mut topics = Vec::new();
    let mut partitions = Vec::new();
    for name in &selected {
        let t = &facts.meta.topics[name];
        topics.push(BackupTopic {
            name: name.clone(),
            topic_id: t.topic_id.clone(),
            partition_count: t.partitions.len() as i32,
            configs: facts.configs.get(name).cloned().unwrap_or_default(),
        });
        for &p in t.partitions.keys() {
            let resumed: Vec<SegmentRef> = resume
                .and_then(|c| c.partitions.get(&format!("{name}/{p}")))
                .map(|pp| pp.segments.clone())
                .unwrap_or_default();
            partitions.push(partition_step(
                input,
                facts,
                &previous,
                (name, t),
                p,
                resumed,
            ));
        }
    }
    let mut plan = BackupPlan {
        backup_name: facts.name.clone(),
        run_id: String::new(),
        resumed: resume.is_some(),
        previous_run_id: facts.previous.as_ref().map(|m| m.run_id.clone()),
        compression: input.compression.as_str().to_string(),
        compression_level: input.compression_level,
        segment_max_bytes: input.segment_max_bytes,
        segment_max_interval_ms: input.segment_max_interval_ms,
        checkpoint_interval_ms: input.checkpoint_interval_ms,
        max_concurrent_partitions: input.max_concurrent_partitions,
        records_per_sec: input.records_per_sec,
        bytes_per_sec: input.bytes_per_sec,
        consumer_group_snapshot: input.consumer_group_snapshot,
        cluster_id: facts.meta.cluster_id.clone(),
        estimated_records: partitions.iter().map(|p| p.estimated_records).sum(),
        estimated_bytes: partitions.iter().map(|p| p.estimated_bytes).sum(),
        estimate_notes: if partitions
            .iter()
            .any(|p| p.estimated_bytes_from == BytesSource::Unknown)
        {
            facts.log_sizes.unknown.clone()
        } else {
            Vec::new()
        },
        topics,
        partitions,
        hash: String::new(),
        owner: crate::format::repository::Owner::new(None, &facts.name),
        adopt_from: None,
        object_lock: input.object_lock.clone(),
        execution: None,
    };
    let estimates: Vec<(u64, u64)> = plan
        .partitions
        .iter()
        .map(|p| (p.estimated_bytes, p.estimated_records))
        .collect();
    plan.execution = super::plan_execution(&input.execution, &estimates, 0);
    plan.hash = plan_hash(&plan);
    plan.run_id = run_id;
    Ok(plan)
}

/// The topics of the cluster the run backs up (`topics` minus `excludeTopics`), or why not:
/// a literal name that does not exist, or a selection that matches nothing.
fn select(input: &ValidatedBackup, facts: &BackupFacts) -> Result<Vec<String>, CompileError> {
    let mut issues = Vec::new();
    let available: Vec<(String, bool)> = facts
        .meta
        .topics
        .values()
        .map(|t| (t.name.clone(), t.is_internal))
        .collect();
    let (selected, missing) = select_topics(&input.topics, &input.exclude_topics, &available);
    for (i, name) in missing {
        issues.push(issue(
            format!("spec.topics[{i}]"),
            format!("topic {name:?} does not exist on the cluster; fix the name, create the topic, or use a glob pattern if it may be absent"),
        ));
    }
    if selected.is_empty() && issues.is_empty() {
        issues.push(issue(
            "spec.topics",
            format!(
                "{:?} (minus excludeTopics) matches no topic on the cluster",
                input.topics
            ),
        ));
    }
    if issues.is_empty() {
        Ok(selected)
    } else {
        Err(CompileError(issues))
    }
}

/// What the previous complete run tells the next one, looked up once.
struct Previous<'a> {
    /// (topic, partition) -> the partition in the previous run's manifest.
    partitions: BTreeMap<(String, i32), &'a PartitionManifest>,
    /// topic -> its id in the previous run.
    topic_ids: BTreeMap<&'a str, &'a str>,
    /// Raw bytes per record of the previous run, for the estimates.
    bytes_per_record: Option<f64>,
}

impl<'a> Previous<'a> {
    fn of(previous: Option<&'a RunManifest>) -> Previous<'a> {
        Previous {
            partitions: previous
                .iter()
                .flat_map(|m| {
                    m.topics.iter().flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| ((t.name.clone(), p.partition), p))
                    })
                })
                .collect(),
            topic_ids: previous
                .iter()
                .flat_map(|m| &m.topics)
                .map(|t| (t.name.as_str(), t.topic_id.as_str()))
                .collect(),
            bytes_per_record: previous
                .filter(|m| m.total_records > 0)
                .map(|m| m.total_raw_bytes as f64 / m.total_records as f64),
        }
    }
}

/// The step of partition `p` of topic `name` (`t` its metadata): where the fetch starts (after the previous run's
/// cut, or at today's log start after a recreation or a retention gap, or after the segments
/// `resumed` from the interrupted attempt) and where it stops (`input.cut`).
fn partition_step(
    input: &ValidatedBackup,
    facts: &BackupFacts,
    previous: &Previous,
    (name, t): (&String, &TopicMeta),
    p: i32,
    resumed: Vec<SegmentRef>,
) -> BackupPartitionStep {
    let off = facts
        .offsets
        .get(&(name.clone(), p))
        .copied()
        .unwrap_or(PartitionOffsets {
            log_start: 0,
            high_watermark: 0,
        });
    let prev = previous.partitions.get(&(name.clone(), p));
    // Continue after the previous cut. The run covers the partition as it is now: from
    // today's log start (or the first offset backed up, if later) to the new cut, so
    // segments wholly below today's log start are no longer listed (retention can
    // delete them once no retained run needs them).
    let same_topic = prev.is_some_and(|_| {
        previous
            .topic_ids
            .get(name.as_str())
            .is_none_or(|id| *id == t.topic_id)
    });
    let diverged = facts.diverged.get(&(name.clone(), p));
    let same_topic = same_topic && diverged.is_none();
    let (mut start, mut covered_from, mut carried, carried_gaps) = match prev {
        Some(pp) if same_topic && pp.cut <= off.high_watermark => {
            let from = pp.covered_from.max(off.log_start);
            let segs: Vec<SegmentRef> = pp
                .segments
                .iter()
                .filter(|s| s.last_offset >= from)
                .cloned()
                .collect();
            let gaps: Vec<Gap> = pp.gaps.iter().filter(|g| g.to > from).cloned().collect();
            (pp.cut, from, segs, gaps)
        }
        _ => (off.log_start, off.log_start, vec![], vec![]),
    };
    let mut gap = None;
    if let Some(pp) = prev.filter(|pp| !same_topic || pp.cut > off.high_watermark) {
        // Recreated (new topic id) or truncated: earlier runs describe another log.
        gap = Some(Gap {
            from: off.log_start,
            to: off.log_start,
            reason: match diverged {
                Some(why) => format!(
                    "topic recreated since the previous run ({why}): a new incarnation, backed up from its log start; earlier runs keep the old one"
                ),
                None => format!(
                    "topic recreated or truncated since the previous run (its cut was {}): starting over",
                    pp.cut
                ),
            },
        });
    }
    if start < off.log_start {
        gap = Some(Gap {
            from: start,
            to: off.log_start,
            reason: "retention deleted these offsets before they were backed up".into(),
        });
        start = off.log_start;
        covered_from = off.log_start;
        carried.clear();
    }
    let fetch_from = resumed
        .last()
        .map(|s| s.last_offset + 1)
        .unwrap_or(start)
        .max(start);
    let cut = match input.cut {
        BackupCut::Continuous => CutMode::Never,
        BackupCut::AtCurrentOffsets => CutMode::At(off.high_watermark),
        BackupCut::CaughtUp => CutMode::CaughtUp,
    };
    let est = (off.high_watermark - fetch_from).max(0) as u64;
    let (estimated_bytes, estimated_bytes_from) = backup_step_bytes(
        facts.log_sizes.bytes.get(&(name.clone(), p)).copied(),
        previous.bytes_per_record,
        (off.log_start, off.high_watermark),
        fetch_from,
    );
    BackupPartitionStep {
        topic: name.clone(),
        partition: p,
        log_start_offset: off.log_start,
        high_watermark: off.high_watermark,
        start_offset: fetch_from,
        cut,
        covered_from,
        carried_segments: carried,
        carried_gaps,
        resumed_segments: resumed,
        gap,
        estimated_records: est,
        estimated_bytes,
        estimated_bytes_from,
    }
}
