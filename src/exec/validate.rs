//! KafkaBackupValidation checks on the backup alone (no cluster): every object the chosen
//! run needs is read whole and passes the integrity chain (docs/format.md: every checksum
//! and size the format records, each record batch's CRC-32C included), record counts and
//! timestamps against the manifest, offset
//! continuity, and the consumer-group snapshot. The result is an evidence report (a
//! repository document with its own SHA-256), stored under
//! `<backup>/validations/<validation>/<report id>.json`.
use std::collections::BTreeMap;
use std::time::Instant;

use opendal::Operator;
use serde::Serialize;

use super::ExecError;
use crate::format::manifest::{RunManifest, to_json};
use crate::format::{segment, segment_io};
use crate::plan::ValidationChecks;

/// The verdict of a check or of the whole validation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub name: String,
    pub outcome: Outcome,
    /// What was checked, in numbers (objects, batches, records, bytes).
    pub figures: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// Each failure names the object, the partition and the offset range.
    pub failures: Vec<String>,
    /// What the check found that is not a failure but worth knowing (e.g. a group position
    /// past the run's cut, leftovers of an earlier attempt removed); none in most reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// SHA-256 (hex) per partition of what was compared (`restoreRecords`: the records read
    /// back from the cluster, each record's digest in order; see `verify_restore`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
}

/// The backup a report is about.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupIdentity {
    pub name: String,
    pub run_id: String,
    /// The checksum the run's manifest carries (`sha256:...`, format v2).
    pub manifest_sha256: Option<String>,
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    pub raw_bytes: u64,
}

/// The evidence report of one validation (format `kafka-backup-operator/validation-report/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub format: String,
    pub report_id: String,
    /// Epoch ms.
    pub generated_at: i64,
    pub tool: String,
    pub version: String,
    pub validation: String,
    pub backup: BackupIdentity,
    pub result: Outcome,
    pub checks: Vec<CheckReport>,
    /// `sha256:<hex>` of the report's canonical form, set when it is stored (docs/format.md,
    /// "Integrity chain").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl ValidationReport {
    /// Appends checks (the restore checks) and recomputes the result: Fail when any check
    /// failed.
    pub fn add_checks(&mut self, checks: Vec<CheckReport>) {
        self.checks.extend(checks);
        self.result = if self.checks.iter().any(|c| c.outcome == Outcome::Fail) {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
    }
}

/// The storage key of a report.
pub fn report_path(backup: &str, validation: &str, id: &str) -> String {
    format!("{backup}/validations/{validation}/{id}.json")
}

fn check(
    name: &str,
    started: Instant,
    figures: BTreeMap<String, u64>,
    failures: Vec<String>,
) -> CheckReport {
    CheckReport {
        name: name.into(),
        outcome: if failures.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
        figures,
        duration_ms: started.elapsed().as_millis() as u64,
        failures,
        notes: vec![],
        digests: BTreeMap::new(),
    }
}

fn skipped(name: &str) -> CheckReport {
    CheckReport {
        name: name.into(),
        outcome: Outcome::Skip,
        figures: BTreeMap::new(),
        duration_ms: 0,
        failures: vec![],
        notes: vec![],
        digests: BTreeMap::new(),
    }
}

/// What each segment read whole holds, or why it could not be read, by path.
type Facts = BTreeMap<String, Result<segment::SegmentFacts, String>>;

/// The `objects` check: every segment of run `m` passes the integrity chain, read whole.
/// Returns the check and what each segment holds (for `messageCount`). Errors: a failing
/// store.
async fn objects_check(
    op: &Operator,
    m: &RunManifest,
    keys: &crate::format::seal::RunKeys,
) -> Result<(CheckReport, Facts), ExecError> {
    let backup = &m.backup_name;
    // 1. objects: every segment passes the integrity chain, read whole: its index, its size
    // and whole-object CRC-32C, every block and batch checksum, its last batch
    let t = Instant::now();
    let (mut failures, mut objects, mut bytes) = (vec![], 0u64, 0u64);
    // what each segment read whole holds, or why it could not be read (by path)
    let mut facts = Facts::new();
    for tm in &m.topics {
        for pm in &tm.partitions {
            for seg in &pm.segments {
                let at = format!(
                    "{}/{} offsets {}..={}",
                    tm.name, pm.partition, seg.first_offset, seg.last_offset
                );
                objects += 2;
                bytes += seg.stored_bytes;
                let mut bad = match op.stat(&seg.path).await {
                    Ok(meta) if meta.content_length() == seg.stored_bytes => None,
                    Ok(meta) => Some(format!(
                        "{}: {} bytes, the manifest records {}",
                        seg.path,
                        meta.content_length(),
                        seg.stored_bytes
                    )),
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                        Some(format!("{}: missing", seg.path))
                    }
                    Err(e) => return Err(crate::storage::backend("stat", &seg.path, e).into()),
                };
                if let Some(e) = &bad {
                    failures.push(format!("{e} ({at})"));
                }
                let idx = segment_io::read_verified_index(op, backup, &tm.name, pm.partition, seg)
                    .await
                    .map_err(|e| backend_fails(e, &seg.path));
                let found = match (idx, &bad) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(_)) => Ok(None),
                    (Ok(idx), None) => segment_io::read_verified_segment(op, seg, &idx, keys)
                        .await
                        .map(Some)
                        .map_err(|e| backend_fails(e, &seg.path)),
                };
                match found {
                    Ok(Some(f)) => {
                        facts.insert(seg.path.clone(), Ok(f));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let e = e?;
                        failures.push(format!("{e} ({at})"));
                        bad.get_or_insert(e);
                    }
                }
                facts.insert(seg.path.clone(), Err(bad.unwrap_or_default()));
            }
        }
    }
    let report = check(
        "objects",
        t,
        BTreeMap::from([("objects".into(), objects), ("storedBytes".into(), bytes)]),
        failures,
    );
    Ok((report, facts))
}

/// The `messageCount` check: records and timestamps of each segment (read whole by the
/// `objects` check, `facts`) against run `m`'s manifest, within `fail_threshold` records.
fn message_count_check(m: &RunManifest, facts: &Facts, fail_threshold: u64) -> CheckReport {
    // 2. counts and timestamps against the manifest, from the full read above
    let t = Instant::now();
    let (mut failures, mut batches, mut records) = (vec![], 0u64, 0u64);
    for tm in &m.topics {
        for pm in &tm.partitions {
            for seg in &pm.segments {
                let at = format!(
                    "{}/{} offsets {}..={}",
                    tm.name, pm.partition, seg.first_offset, seg.last_offset
                );
                let f = match facts.get(&seg.path) {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => {
                        failures.push(format!("records not counted: {e} ({at})"));
                        continue;
                    }
                    None => continue,
                };
                batches += f.batches;
                records += f.records;
                let n = f.records;
                if n.abs_diff(seg.records) > fail_threshold {
                    failures.push(format!(
                        "{}: {n} records, the manifest records {} ({at}; failThreshold {})",
                        seg.path, seg.records, fail_threshold
                    ));
                }
                let (lo, hi) = (f.min_timestamp, f.max_timestamp);
                if n > 0 && (lo != seg.min_timestamp || hi != seg.max_timestamp) {
                    failures.push(format!(
                        "{}: timestamps {lo}..={hi}, the manifest records {}..={} ({at})",
                        seg.path, seg.min_timestamp, seg.max_timestamp
                    ));
                }
            }
        }
    }
    check(
        "messageCount",
        t,
        BTreeMap::from([("batches".into(), batches), ("records".into(), records)]),
        failures,
    )
}

/// Sorts a storage error met while validating `path`: `Ok(message)` for what the checks report
/// (a missing or damaged object), `Err` for a failing store (the validation cannot judge).
fn backend_fails(e: crate::storage::StorageError, path: &str) -> Result<String, ExecError> {
    match e {
        crate::storage::StorageError::Backend { source, .. }
            if source.kind() != opendal::ErrorKind::NotFound =>
        {
            Err(ExecError::Failed(format!("validating {path}: {source}")))
        }
        e => Ok(e.to_string()),
    }
}

/// Runs the backup-only checks on run `m` of the repository `op` and builds the report.
/// `keys`: the data keys of an encrypted run's segments (empty for a plaintext one).
/// `manifest_sha256`: the checksum the manifest document carries. Storage failures are
/// errors; what the checks find is in the report.
pub async fn validate_run(
    op: &Operator,
    keys: &crate::format::seal::RunKeys,
    validation: &str,
    m: &RunManifest,
    manifest_sha256: Option<String>,
    checks: &ValidationChecks,
    now_ms: i64,
) -> Result<ValidationReport, ExecError> {
    let backup = &m.backup_name;
    let mut reports = vec![];

    // 1. objects: every segment passes the integrity chain, read whole: its index, its size
    // and whole-object CRC-32C, every block and batch checksum, its last batch
    let (objects, facts) = objects_check(op, m, keys).await?;
    reports.push(objects);

    // 2. counts and timestamps against the manifest, from the full read above
    if let Some(threshold) = checks.message_count {
        reports.push(message_count_check(m, &facts, threshold));
    } else {
        reports.push(skipped("messageCount"));
    }

    // 3. offset continuity: segments in order, no overlap, a hole only where a gap is recorded
    // (or on a compacted topic, whose logs have holes by design)
    if checks.offset_range {
        let t = Instant::now();
        let (mut failures, mut partitions) = (vec![], 0u64);
        for tm in &m.topics {
            let compacted = tm
                .configs
                .get("cleanup.policy")
                .and_then(|c| c.value.as_deref())
                .is_some_and(|v| v.contains("compact"));
            for pm in &tm.partitions {
                partitions += 1;
                let mut next = pm.covered_from;
                for seg in &pm.segments {
                    // Overlaps are legal (a batch straddling two runs is stored twice and
                    // restored once); a segment wholly before `next` is not.
                    if seg.first_offset > seg.last_offset || seg.last_offset < next {
                        failures.push(format!(
                            "{}/{}: segment {} offsets {}..={} is out of order (expected from {next})",
                            tm.name, pm.partition, seg.path, seg.first_offset, seg.last_offset
                        ));
                    } else if seg.first_offset > next
                        && !compacted
                        && !pm
                            .gaps
                            .iter()
                            .any(|g| g.from <= next && g.to >= seg.first_offset)
                    {
                        failures.push(format!(
                            "{}/{}: offsets {next}..{} are in no segment and no recorded gap",
                            tm.name, pm.partition, seg.first_offset
                        ));
                    }
                    next = next.max(seg.last_offset + 1);
                }
            }
        }
        reports.push(check(
            "offsetRange",
            t,
            BTreeMap::from([("partitions".into(), partitions)]),
            failures,
        ));
    } else {
        reports.push(skipped("offsetRange"));
    }

    // 4. the consumer-group snapshot (group_positions)
    if let Some(groups) = &checks.consumer_groups {
        reports.push(group_positions(m, groups));
    } else {
        reports.push(skipped("consumerGroupOffsets"));
    }

    let result = if reports.iter().any(|c| c.outcome == Outcome::Fail) {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    let partitions: u64 = m.topics.iter().map(|t| t.partitions.len() as u64).sum();
    Ok(ValidationReport {
        format: "kafka-backup-operator/validation-report/v1".into(),
        report_id: format!("{validation}-{now_ms}"),
        generated_at: now_ms,
        tool: "kafka-backup-operator".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        validation: validation.into(),
        backup: BackupIdentity {
            name: backup.clone(),
            run_id: m.run_id.clone(),
            manifest_sha256,
            topics: m.topics.len() as u64,
            partitions,
            records: m.total_records,
            raw_bytes: m.total_raw_bytes,
        },
        result,
        checks: reports,
        checksum: None,
    })
}

/// The `consumerGroupOffsets` check of run `m` (docs/validation.md, "Group positions"): the
/// groups named in `named` are in the snapshot, and every snapshot position is one a restore
/// of this run can place.
///
/// Failures (impossible for a healthy run): a named group missing from the snapshot; a
/// negative position (a committed offset is the next record to read); a position on a topic
/// the run does not hold, or on a partition below the topic's partition count that the run
/// does not hold (the snapshot keeps only commits on the run's topics).
///
/// Notes, not failures: a position past the partition's cut. The snapshot is read after the
/// cut (docs/format.md, decision (f)): in a `stopAtCurrentOffsets` run a group that committed
/// between planning and the snapshot is ahead of the cut, which is normal, and a restore puts
/// it at the end of the restored range (`plan::translate_position`), so it neither skips a
/// backed-up record nor reads one twice. The manifest records neither the run's cut mode nor
/// the high watermark at snapshot time, so the check cannot tell such a commit from one a
/// client made above the log end; neither makes the backup unrestorable. A position on a
/// partition added after planning (at or above the partition count) is a note too.
pub fn group_positions(m: &RunManifest, named: &[String]) -> CheckReport {
    let t = Instant::now();
    let (mut failures, mut notes) = (vec![], vec![]);
    for g in named {
        if !m.consumer_groups.iter().any(|s| &s.group_id == g) {
            failures.push(format!(
                "group {g} is not in run {}'s consumer-group snapshot",
                m.run_id
            ));
        }
    }
    let (mut positions, mut ahead) = (0u64, 0u64);
    for s in &m.consumer_groups {
        for o in &s.offsets {
            positions += 1;
            let at = format!(
                "group {}: {}/{} at {}",
                s.group_id, o.topic, o.partition, o.offset
            );
            let tm = m.topics.iter().find(|t| t.name == o.topic);
            let pm = tm.and_then(|t| t.partitions.iter().find(|p| p.partition == o.partition));
            match (tm, pm) {
                _ if o.offset < 0 => failures.push(format!(
                    "{at}: a committed offset is the next record to read and is never negative: the snapshot is damaged"
                )),
                (_, Some(pm)) if o.offset <= pm.cut => {}
                (_, Some(pm)) => {
                    ahead += 1;
                    notes.push(format!(
                        "{at} is past the run's cut {}: committed after the cut was read (a stopAtCurrentOffsets run, docs/format.md decision (f)); a restore puts it at the end of the restored range",
                        pm.cut
                    ));
                }
                (Some(tm), None) if o.partition >= tm.partition_count => notes.push(format!(
                    "{at}: the partition was added after the run was planned ({} had {} partitions); a restore of this run does not carry it",
                    tm.name, tm.partition_count
                )),
                (Some(_), None) => failures.push(format!(
                    "{at}: the partition is not in the backup"
                )),
                (None, _) => failures.push(format!("{at}: the topic is not in the backup")),
            }
        }
    }
    let mut figures = BTreeMap::from([
        ("groups".into(), m.consumer_groups.len() as u64),
        ("positions".into(), positions),
    ]);
    if ahead > 0 {
        figures.insert("aheadOfCut".into(), ahead);
    }
    let mut c = check("consumerGroupOffsets", t, figures, failures);
    c.notes = notes;
    c
}

/// A detached signature of a stored report (`<report>.json.sig`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSignature {
    /// `ECDSA-P256-SHA256` (FIPS 186-4 ECDSA over P-256 with SHA-256; DER signature).
    pub algorithm: String,
    /// SHA-256 of the signed bytes (the report object exactly as stored), hex.
    pub report_sha256: String,
    /// SHA-256 of the public key (SPKI DER), hex: which key signed.
    pub public_key_sha256: String,
    /// The DER signature, base64.
    pub signature: String,
}

/// The signature algorithm name in [`ReportSignature`].
pub const SIGNATURE_ALGORITHM: &str = "ECDSA-P256-SHA256";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Signs `report` (the stored bytes) with a P-256 private key in PEM (PKCS#8 or SEC1).
/// Errors: a key that is not a P-256 private key in PEM (the message says which forms work).
pub fn sign_report(report: &[u8], private_pem: &str) -> Result<ReportSignature, String> {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let key = p256::SecretKey::from_pkcs8_pem(private_pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(private_pem))
        .map_err(|_| {
            "the signing key is not an ECDSA P-256 private key in PEM (PKCS#8 \"BEGIN PRIVATE KEY\" or SEC1 \"BEGIN EC PRIVATE KEY\")".to_string()
        })?;
    let spki = key
        .public_key()
        .to_public_key_der()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    let sk = p256::ecdsa::SigningKey::from(key);
    let sig: p256::ecdsa::Signature = sk.sign(report);
    use base64::Engine;
    Ok(ReportSignature {
        algorithm: SIGNATURE_ALGORITHM.into(),
        report_sha256: sha256_hex(report),
        public_key_sha256: sha256_hex(spki.as_bytes()),
        signature: base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
    })
}

/// Checks `sig` over `report` with a P-256 public key in PEM (SPKI "BEGIN PUBLIC KEY").
/// Errors say why: another algorithm, another key, changed bytes, a bad signature.
pub fn verify_report(report: &[u8], sig: &ReportSignature, public_pem: &str) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
    if sig.algorithm != SIGNATURE_ALGORITHM {
        return Err(format!(
            "signature algorithm {} is not {SIGNATURE_ALGORITHM}",
            sig.algorithm
        ));
    }
    let key = p256::PublicKey::from_public_key_pem(public_pem).map_err(|_| {
        "the public key is not an ECDSA P-256 public key in PEM (\"BEGIN PUBLIC KEY\")".to_string()
    })?;
    let spki = key.to_public_key_der().map_err(|e| e.to_string())?;
    if sha256_hex(spki.as_bytes()) != sig.public_key_sha256 {
        return Err("the report was signed with another key".into());
    }
    if sha256_hex(report) != sig.report_sha256 {
        return Err("the report's bytes changed after it was signed".into());
    }
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig.signature)
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let s = p256::ecdsa::Signature::from_der(&der)
        .map_err(|e| format!("the signature is not DER: {e}"))?;
    p256::ecdsa::VerifyingKey::from(key)
        .verify(report, &s)
        .map_err(|_| "the signature does not match the report".into())
}

/// Stores `report` and, with a private key, its detached signature next to it; returns
/// (report key, signature key).
pub async fn store_signed(
    op: &Operator,
    report: &ValidationReport,
    private_pem: Option<&str>,
) -> Result<(String, Option<String>), ExecError> {
    let path = report_path(&report.backup.name, &report.validation, &report.report_id);
    let bytes = to_json(report);
    let sig = match private_pem {
        Some(pem) => Some(
            sign_report(&bytes, pem)
                .map_err(|e| ExecError::Input(format!("spec.evidence.signing.keySecret: {e}")))?,
        ),
        None => None,
    };
    crate::storage::write_all(op, &path, bytes).await?;
    let sig_path = match sig {
        Some(s) => {
            let p = format!("{path}.sig");
            crate::storage::write_all(op, &p, serde_json::to_vec_pretty(&s).expect("serialises"))
                .await?;
            Some(p)
        }
        None => None,
    };
    Ok((path, sig_path))
}

/// The `objectLock` check (`checks.objectLock`, S3 Object Lock; docs/security.md): every
/// object run `m` needs (its manifest, every segment and its index, an encrypted run's key
/// document) carries an S3 Object Lock
/// retention (HeadObject: `x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`)
/// in the mode the manifest records, until at least the date it records
/// (`objectLock.retainUntil`, see [`crate::format::manifest::ObjectLockRecord::for_run`]). `target`: the
/// repository's storage (None or not S3: the check fails, Object Lock is S3's). HeadObject
/// shows the lock only to a key that may `s3:GetObjectRetention`.
///
/// Failures name the object: missing, not locked, another mode, locked until an earlier date;
/// a run whose manifest records no lock fails (its objects are still looked at, so the report
/// says how many are locked). Figures: `objects`, `locked`, `notLocked`, `tooShort`,
/// `earliestRetainUntilMs` (epoch ms of the earliest date found). Errors: a failing store.
pub async fn object_lock_check(
    target: Option<&crate::storage::StorageTarget>,
    m: &RunManifest,
) -> Result<CheckReport, ExecError> {
    use futures::StreamExt;
    let t = Instant::now();
    let name = "objectLock";
    let client = match target.map(crate::storage::object_lock::LockClient::new) {
        Some(c) => c?,
        None => None,
    };
    let Some(client) = client else {
        let f = vec![
            "the repository is not on S3: Object Lock is an S3 feature (storage.s3.objectLock)"
                .into(),
        ];
        return Ok(check(name, t, BTreeMap::new(), f));
    };
    let mut failures = vec![];
    let expected = m.object_lock.as_ref();
    if expected.is_none() {
        failures.push(format!(
            "run {} records no Object Lock (its manifest has no objectLock): it was written without storage.s3.objectLock",
            m.run_id
        ));
    }
    let mut keys = vec![crate::format::layout::manifest(&m.backup_name, &m.run_id)];
    if m.seal.is_some() {
        // an encrypted run's key document: locked like the data (keys/)
        keys.push(crate::format::layout::run_keys(&m.backup_name, &m.run_id));
    }
    for s in m
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.segments)
    {
        keys.push(s.path.clone());
        keys.push(crate::format::layout::segment_index(&s.path));
    }
    let client = &client;
    let found: Vec<_> = futures::stream::iter(keys.clone())
        .map(|k| async move { client.retention(&k).await })
        .buffered(16)
        .collect()
        .await;
    let (mut locked, mut not_locked, mut short, mut earliest) = (0u64, 0u64, 0u64, i64::MAX);
    for (key, r) in keys.iter().zip(found) {
        let fail = match (r?, expected) {
            (None, _) => Some(format!("{key}: missing")),
            (Some(r), _) if r.mode.is_none() || r.until_ms.is_none() => {
                not_locked += 1;
                Some(format!(
                    "{key}: not locked (no retention; or the key may not s3:GetObjectRetention)"
                ))
            }
            (Some(r), exp) => {
                let (mode, until) = (r.mode.unwrap_or_default(), r.until_ms.unwrap_or(0));
                locked += 1;
                earliest = earliest.min(until);
                match exp {
                    Some(e) if mode != e.mode => Some(format!(
                        "{key}: locked in {mode} mode, the run records {}",
                        e.mode
                    )),
                    Some(e) if until < e.retain_until => {
                        short += 1;
                        Some(format!(
                            "{key}: locked until {}, before the {} the run records",
                            crate::storage::object_lock::iso_date(until),
                            crate::storage::object_lock::iso_date(e.retain_until)
                        ))
                    }
                    _ => None,
                }
            }
        };
        failures.extend(fail);
    }
    let mut figures = BTreeMap::from([
        ("objects".to_string(), keys.len() as u64),
        ("locked".to_string(), locked),
        ("notLocked".to_string(), not_locked),
        ("tooShort".to_string(), short),
    ]);
    if earliest != i64::MAX {
        figures.insert("earliestRetainUntilMs".into(), earliest.max(0) as u64);
    }
    // a report names the first 20 objects; the figures count them all
    let more = failures.len().saturating_sub(20);
    failures.truncate(20);
    if more > 0 {
        failures.push(format!("... and {more} more objects"));
    }
    let mut report = check(name, t, figures, failures);
    if let Some(e) = expected {
        report.notes.push(format!(
            "expected: every object locked in {} mode until at least {}",
            e.mode,
            crate::storage::object_lock::iso_date(e.retain_until)
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        (k.serialize_pem(), k.public_key_pem())
    }

    #[test]
    fn a_signature_verifies_and_fails_on_a_changed_byte_or_another_key() {
        let (private, public) = pair();
        let report = br#"{"result":"Pass"}"#;
        let sig = sign_report(report, &private).unwrap();
        verify_report(report, &sig, &public).unwrap();
        let changed = br#"{"result":"Fail"}"#;
        assert!(
            verify_report(changed, &sig, &public)
                .unwrap_err()
                .contains("changed")
        );
        let (_, other) = pair();
        assert!(
            verify_report(report, &sig, &other)
                .unwrap_err()
                .contains("another key")
        );
        let mut forged = sig.clone();
        forged.report_sha256 = sha256_hex(changed);
        assert!(
            verify_report(changed, &forged, &public)
                .unwrap_err()
                .contains("does not match")
        );
        assert!(
            sign_report(report, "not a key")
                .unwrap_err()
                .contains("P-256")
        );
    }
}
