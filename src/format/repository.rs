//! The repository record `<backup>/repository.json` and the rules it carries (docs/format.md,
//! "Repository identity and version"):
//!
//! - **Identity.** The record names the KafkaBackup that owns the repository (`owner`:
//!   namespace and name). Object names do not hold the namespace, so two KafkaBackups with the
//!   same name in two namespaces pointed at the same bucket and prefix would otherwise share
//!   one repository. Writers refuse a repository another resource owns (`exec::repository`).
//! - **Version.** v1 documents (no checksums) are read only for runs up to
//!   `legacyRunsUpTo`, the newest run a v1 build wrote before a v2 writer first met the
//!   repository ([`Legacy`]). Editing a newer document's `format` to v1 and removing its
//!   checksum does not switch integrity off.
//!
//! Documents and rules only, no I/O; reading the record and the manifests through storage is
//! `format::repository_io`.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FormatError;
use super::layout::{FORMAT, FORMAT_V1};
use super::manifest::{Checkpoint, RunManifest, SegmentRef, from_json};

/// The annotation on a KafkaBackup that adopts a repository another resource owns; its value
/// must be the current owner, `<namespace>/<name>`.
pub const ADOPT_ANNOTATION: &str = "kafka.oso.sh/adopt-repository";

/// A KafkaBackup as the owner of a repository: namespace and name (what makes a resource
/// unique in a cluster). Shown as `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub namespace: String,
    pub name: String,
}

impl Owner {
    /// An owner from a namespace (empty or absent: `default`, as kubectl does) and a name.
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Owner {
            namespace: namespace
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `<namespace>/<name>` (the adoption annotation's value). Errors say what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Owner {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?} is not <namespace>/<name> (the repository's current owner, as the refusal names it)"
            )),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One adoption: the repository passed from `from` to `to` at `at` (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    pub from: Owner,
    pub to: Owner,
    pub at: i64,
}

/// `<backup>/repository.json`: who owns the repository and which runs may be read as v1.
/// Written by the first writer (backup run or retention) that finds it absent, rewritten only
/// by an adoption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRecord {
    pub format: String,
    /// The format of the build that created the record (`kafka-backup-operator/v2`).
    pub created_with_format: String,
    /// The KafkaBackup whose runs these are.
    pub owner: Owner,
    /// The newest run id written by a v1 build when the record was created (None: no v1 run).
    /// v1 documents, and v2 segment entries without their index checksum, are read only for
    /// runs up to this id.
    pub legacy_runs_up_to: Option<String>,
    /// Every adoption, oldest first.
    pub adoptions: Vec<Adoption>,
    /// Epoch ms.
    pub created_at: i64,
}

impl RepositoryRecord {
    /// Parses a record named `what`; a record claiming v1 is refused (records came with v2).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, FormatError> {
        from_json(bytes, what)
    }
}

/// Which runs of a repository may be read from v1 documents: those with an id up to `up_to`
/// (None: no run, the repository is strictly v2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Legacy {
    pub up_to: Option<String>,
}

/// The run id in a segment's object name `<firstOffset:020>-<runId>.seg` (None for names
/// without one, written by early v1 builds).
pub fn segment_run(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next()?.strip_suffix(".seg")?;
    let (offset, run) = file.split_once('-')?;
    (offset.len() == 20 && offset.bytes().all(|b| b.is_ascii_digit())).then_some(run)
}

impl Legacy {
    /// A strict repository: no v1 document accepted.
    pub fn strict() -> Self {
        Legacy { up_to: None }
    }

    /// True when run `run` may be read from v1 documents (`None`: a segment name without a run
    /// id, which only early v1 builds wrote: allowed when the repository has v1 runs at all).
    pub fn allows(&self, run: Option<&str>) -> bool {
        match (&self.up_to, run) {
            (Some(up), Some(r)) => r <= up.as_str(),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn refusal(&self, what: &str, run: Option<&str>, claim: &str) -> FormatError {
        let limit = match &self.up_to {
            Some(u) => format!("only runs up to {u} were written by a v1 build"),
            None => "no run of this repository was written by a v1 build".into(),
        };
        FormatError::Corrupt(format!(
            "{what}: {claim}, but {limit} (run {}): a {FORMAT} object edited to look older is refused; restore the object from a copy or use another run",
            run.unwrap_or("unnamed")
        ))
    }

    /// Checks a manifest read from `what` (run `run`, from its path): a v1 manifest only for
    /// a legacy run, and every segment entry without its index checksum (`indexCrc32c`,
    /// `indexBytes`) only for a segment of a legacy run. Errors name the object.
    pub fn check_manifest(
        &self,
        m: &RunManifest,
        run: &str,
        what: &str,
    ) -> Result<(), FormatError> {
        if m.format == FORMAT_V1 && !self.allows(Some(run)) {
            return Err(self.refusal(what, Some(run), &format!("claims format {FORMAT_V1}")));
        }
        let segs = m
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| &p.segments);
        self.check_segments(segs, what)
    }

    /// Checks a checkpoint (run `run`) like [`Legacy::check_manifest`].
    pub fn check_checkpoint(
        &self,
        c: &Checkpoint,
        run: &str,
        what: &str,
    ) -> Result<(), FormatError> {
        if c.format == FORMAT_V1 && !self.allows(Some(run)) {
            return Err(self.refusal(what, Some(run), &format!("claims format {FORMAT_V1}")));
        }
        self.check_segments(c.partitions.values().flat_map(|p| &p.segments), what)
    }

    fn check_segments<'a>(
        &self,
        segs: impl Iterator<Item = &'a SegmentRef>,
        what: &str,
    ) -> Result<(), FormatError> {
        for s in segs {
            let run = segment_run(&s.path);
            if (s.index_crc32c.is_none() || s.index_bytes.is_none()) && !self.allows(run) {
                return Err(self.refusal(
                    what,
                    run,
                    &format!(
                        "its entry for segment {} has no index checksum (indexCrc32c, indexBytes), as only v1 builds wrote",
                        s.path
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The legacy limit of a repository without a record, from its runs' manifests `(run id,
/// manifest JSON)` in run id order: the newest run of the leading runs whose manifests are all
/// v1, and older than any run whose segments a manifest lists with their index checksum
/// (proof that a v2 build wrote that run: v1 builds never wrote the field). A v1 manifest after a v2 one is never legacy: v1
/// builds cannot continue a v2 repository (they refuse its manifests).
pub fn infer_legacy(manifests: &[(String, Value)]) -> Legacy {
    let v2_evidence = manifests
        .iter()
        .flat_map(|(run, m)| {
            // a v2 manifest's own run, and every run whose segments a manifest (even one
            // claiming v1) lists with their index checksum, which v1 builds never wrote
            let mut runs: Vec<String> = (m["format"] == FORMAT)
                .then(|| run.clone())
                .into_iter()
                .collect();
            for t in m["topics"].as_array().into_iter().flatten() {
                for p in t["partitions"].as_array().into_iter().flatten() {
                    for s in p["segments"].as_array().into_iter().flatten() {
                        if s["indexCrc32c"].is_number()
                            && let Some(r) = s["path"].as_str().and_then(segment_run)
                        {
                            runs.push(r.to_string());
                        }
                    }
                }
            }
            runs
        })
        .min();
    let up_to = manifests
        .iter()
        .take_while(|(_, m)| m["format"] == FORMAT_V1)
        .map(|(run, _)| run)
        .filter(|run| v2_evidence.as_ref().is_none_or(|e| *run < e))
        .last()
        .cloned();
    Legacy { up_to }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{PartitionManifest, TopicManifest, to_json};

    fn seg(run: &str, v2: bool) -> SegmentRef {
        SegmentRef {
            path: format!("kb/data/t/0/00000000000000000000-{run}.seg"),
            first_offset: 0,
            last_offset: 0,
            records: 1,
            raw_bytes: 1,
            stored_bytes: 1,
            min_timestamp: 0,
            max_timestamp: 0,
            crc32c: 0,
            index_crc32c: v2.then_some(1),
            index_bytes: v2.then_some(1),
            last_batch_offset: None,
            last_batch_crc32c: None,
            seal: None,
        }
    }

    fn manifest(format: &str, run: &str, segs: Vec<SegmentRef>) -> RunManifest {
        RunManifest {
            format: format.into(),
            backup_name: "kb".into(),
            run_id: run.into(),
            previous_run_id: None,
            start_time: 0,
            completion_time: 0,
            plan_hash: String::new(),
            cluster_id: None,
            compression: "none".into(),
            topics: vec![TopicManifest {
                name: "t".into(),
                topic_id: String::new(),
                partition_count: 1,
                configs: Default::default(),
                partitions: vec![PartitionManifest {
                    partition: 0,
                    log_start_offset: 0,
                    covered_from: 0,
                    cut: 1,
                    start_offset: 0,
                    records: 1,
                    raw_bytes: 1,
                    min_timestamp: None,
                    max_timestamp: None,
                    gaps: vec![],
                    segments: segs,
                }],
            }],
            consumer_groups: vec![],
            total_records: 1,
            total_raw_bytes: 1,
            object_lock: None,
            seal: None,
        }
    }

    fn value(m: &RunManifest) -> (String, Value) {
        (m.run_id.clone(), serde_json::to_value(m).unwrap())
    }

    #[test]
    fn v1_documents_are_read_only_for_legacy_runs() {
        let legacy = Legacy {
            up_to: Some("r2".into()),
        };
        // a genuine v1 run, and a v2 run carrying its v1 segment entries
        let old = manifest(FORMAT_V1, "r1", vec![seg("r1", false)]);
        assert!(legacy.check_manifest(&old, "r1", "m1").is_ok());
        let new = manifest(FORMAT, "r3", vec![seg("r1", false), seg("r3", true)]);
        assert!(legacy.check_manifest(&new, "r3", "m3").is_ok());
        // a newer run's manifest claiming v1: refused naming the object
        let forged = manifest(FORMAT_V1, "r3", vec![seg("r3", true)]);
        let e = legacy
            .check_manifest(&forged, "r3", "kb/runs/r3/manifest.json")
            .unwrap_err();
        assert!(e.to_string().contains("kb/runs/r3/manifest.json"), "{e}");
        assert!(e.to_string().contains("up to r2"), "{e}");
        // a v2 manifest whose own segment lost its index checksum: refused naming the segment
        let stripped = manifest(FORMAT, "r3", vec![seg("r3", false)]);
        let e = legacy.check_manifest(&stripped, "r3", "m3").unwrap_err();
        assert!(e.to_string().contains("00000000000000000000-r3.seg"), "{e}");
        // a strict repository takes no v1 at all
        let strict = Legacy::strict();
        assert!(strict.check_manifest(&old, "r1", "m1").is_err());
        let cp = Checkpoint {
            format: FORMAT_V1.into(),
            run_id: "r1".into(),
            ..Default::default()
        };
        assert!(strict.check_checkpoint(&cp, "r1", "c").is_err());
        assert!(legacy.check_checkpoint(&cp, "r1", "c").is_ok());
    }

    #[test]
    fn without_a_record_the_legacy_runs_are_the_leading_v1_runs() {
        let v1 = |r: &str| value(&manifest(FORMAT_V1, r, vec![seg(r, false)]));
        let v2 = |r: &str, segs| value(&manifest(FORMAT, r, segs));
        // all v1: a legacy repository, read as before
        assert_eq!(
            infer_legacy(&[v1("r1"), v1("r2")]).up_to.as_deref(),
            Some("r2")
        );
        // v1 then v2 (an upgrade): the v1 runs stay readable
        let up = [v1("r1"), v2("r2", vec![seg("r1", false), seg("r2", true)])];
        assert_eq!(infer_legacy(&up).up_to.as_deref(), Some("r1"));
        // all v2, or a v1 manifest after a v2 one: strict
        assert_eq!(infer_legacy(&[v2("r1", vec![seg("r1", true)])]).up_to, None);
        let after = [v2("r1", vec![seg("r1", true)]), v1("r2")];
        assert_eq!(infer_legacy(&after).up_to, None);
        // the first run downgraded, a later v2 manifest still lists its segment with the
        // index checksum: not legacy
        let first = [v1("r1"), v2("r2", vec![seg("r1", true), seg("r2", true)])];
        assert_eq!(infer_legacy(&first).up_to, None);
        // a lone manifest edited to v1 still lists its segments with their index checksum
        let lone = [value(&manifest(FORMAT_V1, "r1", vec![seg("r1", true)]))];
        assert_eq!(infer_legacy(&lone).up_to, None);
        assert_eq!(infer_legacy(&[]).up_to, None);
    }

    #[test]
    fn segment_names_give_their_run_and_owners_parse() {
        assert_eq!(
            segment_run("kb/data/t/0/00000000000000000042-20261121T070113.643Z.seg"),
            Some("20261121T070113.643Z")
        );
        assert_eq!(segment_run("kb/data/t/0/00000000000000000042.seg"), None);
        assert_eq!(
            Owner::parse("team-a/orders").unwrap(),
            Owner::new(Some("team-a"), "orders")
        );
        assert_eq!(Owner::new(None, "x").to_string(), "default/x");
        assert!(Owner::parse("orders").is_err());
        assert!(Owner::parse("a/b/c").is_err());
    }

    #[test]
    fn offset_snapshots_and_locks_are_never_read_as_v1() {
        // both came with v2: no v1 build wrote one
        use crate::format::manifest::OffsetSnapshot;
        let snap = OffsetSnapshot {
            format: FORMAT.into(),
            id: "r-1".into(),
            ..Default::default()
        };
        let mut v: Value = serde_json::from_slice(&to_json(&snap)).unwrap();
        assert!(from_json::<OffsetSnapshot>(&serde_json::to_vec(&v).unwrap(), "s").is_ok());
        v["format"] = FORMAT_V1.into();
        v.as_object_mut().unwrap().remove("checksum");
        let e =
            from_json::<OffsetSnapshot>(&serde_json::to_vec(&v).unwrap(), "snap.json").unwrap_err();
        assert!(e.to_string().contains("snap.json claims format"), "{e}");
    }

    #[test]
    fn a_record_claiming_v1_without_checksum_is_refused() {
        let r = RepositoryRecord {
            format: FORMAT.into(),
            created_with_format: FORMAT.into(),
            owner: Owner::new(Some("a"), "kb"),
            legacy_runs_up_to: None,
            adoptions: vec![],
            created_at: 1,
        };
        let bytes = to_json(&r);
        assert_eq!(RepositoryRecord::parse(&bytes, "rec").unwrap(), r);
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["format"] = FORMAT_V1.into();
        v.as_object_mut().unwrap().remove("checksum");
        let e = RepositoryRecord::parse(&serde_json::to_vec(&v).unwrap(), "rec").unwrap_err();
        assert!(e.to_string().contains("rec"), "{e}");
    }
}
