//! The scratch of a KafkaBackupValidation's restore checks (docs/validation.md, "Scratch and
//! leftovers"): an attempt at epoch ms `<ms>` restores into topics `kbv-<validation>-<ms>-<topic>`
//! as restore `kbv-<validation>-<ms>`, whose journal, lock and offset map live where the
//! layout helpers put a restore's state (`format::layout::restore_journal`, `restore_lock`,
//! `offset_map`). While it runs the attempt holds a lease: the lock document at
//! `restore_lock(<backup>, "kbv-<validation>-<ms>.lease")` (`exec::lock`, renewed every 15 s,
//! valid 60 s after its last renewal).
//!
//! An attempt killed with SIGKILL leaves its scratch behind. The next attempt of the same
//! validation finds the earlier attempts' topics (cluster metadata) and restore state (the
//! listing of the directory the layout puts restore state in) by the exact name rule below,
//! and removes an earlier attempt when it is not running:
//!
//! - its lease is not live (absent, past `expiresAt`, or held by a process of this host that
//!   no longer runs: `exec::lock::holder_is_gone`), and neither is its restore lock; and
//! - it has a lease document, or, without one (an attempt by a build before leases, whose
//!   read-back phase held no lock), it started more than [`LEASELESS_GRACE`] ago.
//!
//! Attempts started at or after this one are never touched. Kept attempts are named too.
//!
//! The name rule is strict: after `kbv-<validation>-` exactly 13 digits (epoch ms), then, for
//! a topic, `-` and the topic; for restore state, nothing (or `.lease`). A topic whose rest
//! itself starts with 13 digits and `-` is left alone: it may be the scratch of a validation
//! named `<validation>-<13 digits>`. A user's `kbv-foo-bar` never matches.
use std::collections::{BTreeMap, BTreeSet};

use opendal::Operator;

use crate::exec::lock::{Lock, LockDoc};
use crate::format::layout;
use crate::kafka::KafkaClient;

/// How old an earlier attempt without a lease must be before it is removed.
pub const LEASELESS_GRACE_MS: i64 = 3_600_000;
/// [`LEASELESS_GRACE_MS`] as a duration, for the docs.
pub const LEASELESS_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The restore name of a validation attempt: `kbv-<validation>-<ms>`.
pub fn attempt_name(validation: &str, ms: i64) -> String {
    format!("kbv-{validation}-{ms}")
}

/// The restore-state name whose lock is an attempt's lease: `kbv-<validation>-<ms>.lease`.
pub fn lease_name(attempt: &str) -> String {
    format!("{attempt}.lease")
}

/// Exactly 13 ASCII digits (an epoch ms from 2001 to 2286), as a number.
fn ms13(s: &str) -> Option<i64> {
    (s.len() == 13 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The attempt (epoch ms) a scratch topic of `validation` belongs to, by the strict rule.
pub fn attempt_of_topic(validation: &str, topic: &str) -> Option<i64> {
    let rest = topic.strip_prefix(&format!("kbv-{validation}-"))?;
    let (ms, topic) = (rest.get(..13)?, rest.get(13..)?);
    let topic = topic.strip_prefix('-').filter(|t| !t.is_empty())?;
    // `<13 digits>-...` again: maybe the scratch of validation `<validation>-<ms>`
    if topic.get(..13).and_then(ms13).is_some() && topic.as_bytes().get(13) == Some(&b'-') {
        return None;
    }
    ms13(ms)
}

/// The attempt (epoch ms) a restore-state name of `validation` belongs to, and whether it is
/// the lease.
pub fn attempt_of_state(validation: &str, name: &str) -> Option<(i64, bool)> {
    let rest = name.strip_prefix(&format!("kbv-{validation}-"))?;
    match rest.strip_suffix(".lease") {
        Some(ms) => ms13(ms).map(|m| (m, true)),
        None => ms13(rest).map(|m| (m, false)),
    }
}

/// The directory the layout keeps every restore's state under, when a restore's state is a
/// directory named after it (`<dir>/<restore>/lock.json`); None otherwise.
fn restores_dir(backup: &str) -> Option<String> {
    const MARK: &str = "kbv-layout-probe";
    let lock = layout::restore_lock(backup, MARK);
    let i = lock.find(&format!("/{MARK}/"))?;
    Some(lock[..=i].to_string())
}

/// The lock at `path` when it is live: not expired, and not held by a process of this host
/// that no longer runs. Unreadable: treated as not live (the lock code takes it over too).
async fn live_lock(op: &Operator, path: &str, now_ms: i64) -> Option<LockDoc> {
    let bytes = crate::storage::read_opt(op, path).await.ok()??;
    let doc: LockDoc = crate::format::manifest::from_json(&bytes, path).ok()?;
    (doc.expires_at > now_ms && !crate::exec::lock::holder_is_gone(&doc.holder)).then_some(doc)
}

/// Deletes restore `restore`'s state through the layout helpers: the offset map its journal
/// names, the journal, the lock, then the directory the journal is in when that directory is
/// the restore's own (named after it). Returns what was there and is gone, and the errors.
pub async fn remove_restore_state(
    op: &Operator,
    backup: &str,
    restore: &str,
) -> (Vec<String>, Vec<String>) {
    let (mut gone, mut errors) = (vec![], vec![]);
    let journal = layout::restore_journal(backup, restore);
    let mut paths = vec![];
    if let Ok(Some(j)) = crate::exec::load_journal(op, backup, restore).await {
        paths.push(j.plan.offset_map_path.clone());
    }
    paths.push(journal.clone());
    paths.push(layout::restore_lock(backup, restore));
    for p in paths {
        match op.exists(&p).await {
            Ok(false) => {}
            Ok(true) => match op.delete(&p).await {
                Ok(()) => gone.push(p),
                Err(e) => errors.push(format!("{p}: {e}")),
            },
            Err(e) => errors.push(format!("{p}: {e}")),
        }
    }
    if let Some((dir, _)) = journal.rsplit_once('/')
        && dir.rsplit('/').next() == Some(restore)
    {
        let dir = format!("{dir}/");
        if let Err(e) = op.delete_with(&dir).recursive(true).await
            && e.kind() != opendal::ErrorKind::NotFound
        {
            errors.push(format!("{dir}: {e}"));
        }
    }
    (gone, errors)
}

/// An attempt's lease, held from before its scratch topics exist until they are gone.
pub struct Lease {
    lock: Lock,
    op: Operator,
    backup: String,
    name: String,
}

impl Lease {
    /// Takes the lease of attempt `attempt` (see the module docs) in the restore state `op`.
    ///
    /// Errors: storage failures; another live holder (only a second attempt at the same ms).
    pub async fn take(
        op: &Operator,
        backup: &str,
        attempt: &str,
    ) -> Result<Lease, crate::exec::ExecError> {
        let name = lease_name(attempt);
        let lock = Lock::acquire(
            op,
            &layout::restore_lock(backup, &name),
            &format!("validation attempt {attempt} (its scratch topics and restore)"),
        )
        .await?;
        Ok(Lease {
            lock,
            op: op.clone(),
            backup: backup.to_string(),
            name,
        })
    }

    /// Releases the lease and deletes what it left (its directory).
    pub async fn release(self) {
        self.lock.release().await;
        let _ = remove_restore_state(&self.op, &self.backup, &self.name).await;
    }
}

/// What the leftovers of one earlier attempt are.
#[derive(Default)]
struct Found {
    topics: Vec<String>,
    state: bool,
    lease: bool,
}

/// Finds the earlier attempts of `validation` (started before `mine_ms`) on the cluster of
/// `client` and in the restore state `op` of `backup`, removes those that are not running (the
/// module's rule) and returns one line per attempt found: what was removed, or why it was
/// kept. Failures to remove are in the lines too (and logged); they never fail the
/// validation.
pub async fn remove_leftovers(
    client: &KafkaClient,
    op: &Operator,
    backup: &str,
    validation: &str,
    mine_ms: i64,
    now_ms: i64,
) -> Vec<String> {
    let mut found: BTreeMap<i64, Found> = BTreeMap::new();
    match client.refresh_metadata().await {
        Ok(meta) => {
            for t in meta.topics.keys() {
                if let Some(ms) = attempt_of_topic(validation, t) {
                    found.entry(ms).or_default().topics.push(t.clone());
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing topics for leftover scratch failed"),
    }
    if let Some(dir) = restores_dir(backup) {
        match op.list(&dir).await {
            Ok(entries) => {
                for e in entries {
                    let name = e.path().trim_end_matches('/').rsplit('/').next();
                    if let Some((ms, lease)) = name.and_then(|n| attempt_of_state(validation, n)) {
                        let f = found.entry(ms).or_default();
                        f.lease |= lease;
                        f.state |= !lease;
                    }
                }
            }
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(%dir, error = %e, "listing restore state for leftover scratch failed")
            }
        }
    }
    let mut lines = vec![];
    for (ms, f) in found.into_iter().filter(|(ms, _)| *ms < mine_ms) {
        let attempt = attempt_name(validation, ms);
        lines.push(remove_attempt(client, op, backup, &attempt, ms, f, now_ms).await);
    }
    lines
}

/// Removes one earlier attempt `attempt` (started at `ms`) when the rule allows; its line.
async fn remove_attempt(
    client: &KafkaClient,
    op: &Operator,
    backup: &str,
    attempt: &str,
    ms: i64,
    f: Found,
    now_ms: i64,
) -> String {
    let started = jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string());
    let lease = lease_name(attempt);
    for path in [
        layout::restore_lock(backup, &lease),
        layout::restore_lock(backup, attempt),
    ] {
        if let Some(held) = live_lock(op, &path, now_ms).await {
            let line = format!(
                "kept the scratch of attempt {attempt} (started {started}): still running, {path} is held by {} until {}",
                held.holder,
                jiff::Timestamp::from_millisecond(held.expires_at)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            );
            tracing::info!("{line}");
            return line;
        }
    }
    if !f.lease && now_ms - ms < LEASELESS_GRACE_MS {
        let line = format!(
            "kept the scratch of attempt {attempt} (started {started}): it has no lease (an earlier build) and is younger than {} s, it may still be reading back",
            LEASELESS_GRACE.as_secs()
        );
        tracing::info!("{line}");
        return line;
    }
    let mut errors = vec![];
    let mut topics: BTreeSet<String> = f.topics.into_iter().collect();
    if !topics.is_empty() {
        let list: Vec<String> = topics.iter().cloned().collect();
        if let Err(e) = client.delete_topics(&list).await {
            errors.push(format!("topics {}: {e}", list.join(", ")));
            topics.clear();
        }
    }
    let (mut state, errs) = remove_restore_state(op, backup, attempt).await;
    errors.extend(errs);
    let (lease_gone, errs) = remove_restore_state(op, backup, &lease).await;
    errors.extend(errs);
    state.extend(lease_gone);
    let line = format!(
        "removed the leftovers of an earlier attempt {attempt} (started {started}, not running): topics [{}], restore state [{}]{}",
        topics.into_iter().collect::<Vec<_>>().join(", "),
        state.join(", "),
        if errors.is_empty() {
            String::new()
        } else {
            format!("; not removed: {}", errors.join("; "))
        }
    );
    tracing::warn!("{line}");
    line
}

/// The restore checks of one validation attempt (`validation`, at `now_ms`) on the scratch
/// restore `prep` of run `manifest` into `scratch_topics` (groups checked: `only`, all when
/// empty): takes the attempt's lease, removes the leftovers of earlier attempts that are not
/// running, restores, compares ([`crate::exec::verify_restore::compare_restored`]), deletes
/// this attempt's scratch topics and restore state whatever happened, releases the lease.
/// The leftovers found are notes (and figures `leftoverAttemptsRemoved`,
/// `leftoverAttemptsKept`) of `restoreRecords`. A failed restore is a failed
/// `restoreRecords` check. With `launcher` and a plan of `execution.mode: job` the restore
/// runs as shards ([`crate::exec::restore_shard::coordinate_restore`]; a shard is
/// `run --plan <attempt> --shard i/N`); else in this process.
///
/// Errors: the lease cannot be taken (storage); storage or broker failures of the comparison.
pub async fn restore_and_check<L: super::shards::ShardLauncher>(
    prep: &super::restore::PreparedRestore,
    manifest: &crate::format::manifest::RunManifest,
    (only, validation): (&[String], &str),
    now_ms: i64,
    scratch_topics: &[String],
    launcher: Option<&L>,
) -> Result<Vec<crate::exec::validate::CheckReport>, super::KindError> {
    use crate::exec::validate::{CheckReport, Outcome};
    let backup = prep.plan.backup_name.as_str();
    let attempt = prep.plan.restore_name.as_str();
    let lease = Lease::take(&prep.state, backup, attempt).await?;
    let leftovers = remove_leftovers(
        &prep.client,
        &prep.state,
        backup,
        validation,
        now_ms,
        now_ms,
    )
    .await;
    // an operator's launcher shows the shards in the run's progress, and stops with the run
    let (progress, cancel) = (launcher.and_then(|l| l.run_context())).unwrap_or_else(|| {
        (
            crate::exec::Progress::new(None),
            crate::exec::Cancel::never(),
        )
    });
    let ctx = crate::exec::ExecContext::new(progress, cancel, None, None)
        .with_keyring(prep.keyring.clone());
    let t = std::time::Instant::now();
    let restored = scratch_restore(prep, &ctx, launcher).await;
    let checks = match restored {
        Ok(out) => {
            // the restore unwrapped these keys already: the keyring's cache answers
            let runs = crate::exec::keys::sealed_runs(
                (prep.plan.partitions.iter()).flat_map(|s| &s.segments),
            );
            let op = &prep.op;
            match crate::exec::keys::load_run_keys(op, &prep.plan.backup_name, runs, &ctx).await {
                Ok(keys) => {
                    crate::exec::verify_restore::compare_restored(
                        &prep.plan,
                        &prep.client,
                        op,
                        &keys,
                        &out.offset_map,
                        &manifest.consumer_groups,
                        only,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Ok(vec![CheckReport {
            name: "restoreRecords".into(),
            outcome: Outcome::Fail,
            figures: Default::default(),
            duration_ms: t.elapsed().as_millis() as u64,
            failures: vec![format!(
                "the restore of run {} into scratch topics failed [{}]: {e}",
                manifest.run_id,
                e.category()
            )],
            notes: vec![],
            digests: Default::default(),
        }]),
    };
    // this attempt's scratch, whatever happened
    let existing: Vec<String> = prep
        .client
        .refresh_metadata()
        .await
        .map(|m| {
            m.topics
                .keys()
                .filter(|t| scratch_topics.contains(t))
                .cloned()
                .collect()
        })
        .unwrap_or_else(|_| scratch_topics.to_vec());
    if !existing.is_empty()
        && let Err(e) = prep.client.delete_topics(&existing).await
    {
        tracing::warn!(topics = ?existing, error = %e, "scratch topics of the validation not deleted");
    }
    let (_, errors) = remove_restore_state(&prep.state, backup, attempt).await;
    if !errors.is_empty() {
        tracing::warn!(errors = ?errors, "scratch restore's journal, lock or offset map not deleted");
    }
    lease.release().await;
    let mut checks = checks?;
    if let Some(c) = checks.iter_mut().find(|c| c.name == "restoreRecords")
        && !leftovers.is_empty()
    {
        let removed = leftovers
            .iter()
            .filter(|l| l.starts_with("removed"))
            .count() as u64;
        c.figures.insert("leftoverAttemptsRemoved".into(), removed);
        c.figures.insert(
            "leftoverAttemptsKept".into(),
            leftovers.len() as u64 - removed,
        );
        c.notes.extend(leftovers);
    }
    Ok(checks)
}

/// The scratch restore of an attempt: as shards through `launcher` when the plan has them
/// (`execution.mode: job`), else in this process (a plan with shards and no launcher says so).
async fn scratch_restore<L: super::shards::ShardLauncher>(
    prep: &super::restore::PreparedRestore,
    ctx: &crate::exec::ExecContext,
    launcher: Option<&L>,
) -> Result<crate::exec::RestoreOutcome, crate::exec::ExecError> {
    let plan = &prep.plan;
    let (client, op, state) = (&prep.client, &prep.op, &prep.state);
    match (&plan.execution, launcher) {
        (Some(e), Some(launcher)) => {
            let shards = (e.shards.iter())
                .map(|s| crate::exec::restore_shard::RestoreShardSteps {
                    partitions: s.partitions.clone(),
                    repartitioned: s.repartitioned.clone(),
                })
                .collect();
            let attempt = plan.restore_name.as_str();
            let launch = |i: u32, n: u32| launcher.run_shard(attempt, i, n);
            crate::exec::restore_shard::coordinate_restore(
                plan,
                &prep.start,
                shards,
                client,
                op,
                state,
                ctx,
                launch,
            )
            .await
        }
        (execution, _) => {
            if execution.is_some() {
                tracing::warn!(restore = %plan.restore_name,
                    "spec.execution.mode job: the restore check moves the data in this process (the operator does not create Kubernetes Jobs for it yet; `run -f` starts the shards as processes): docs/execution.md");
            }
            crate::exec::run_restore(plan, &prep.start, client, op, state, ctx).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_rule_is_strict() {
        assert_eq!(
            attempt_of_topic("v", "kbv-v-1700000000000-orders"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            attempt_of_topic("v", "kbv-v-1700000000000-a-b.c"),
            Some(1_700_000_000_000)
        );
        for t in [
            "kbv-v-bar",
            "kbv-v-170000000000-orders",
            "kbv-v-17000000000000-orders",
            "kbv-v-1700000000000-",
            "kbv-v-1700000000000",
            "kbv-vw-1700000000000-orders",
            "kbv-v-x-1700000000000-orders",
            // the scratch of validation `v-1700000000000`
            "kbv-v-1700000000000-1700000000001-orders",
            "kbv-foo-bar",
        ] {
            assert_eq!(attempt_of_topic("v", t), None, "{t}");
        }
        assert_eq!(
            attempt_of_state("v", "kbv-v-1700000000000"),
            Some((1_700_000_000_000, false))
        );
        assert_eq!(
            attempt_of_state("v", "kbv-v-1700000000000.lease"),
            Some((1_700_000_000_000, true))
        );
        for n in [
            "kbv-v-1700000000000-1700000000001",
            "kbv-v-1700000000000x",
            "kbv-v-bar",
            "orders-restore",
        ] {
            assert_eq!(attempt_of_state("v", n), None, "{n}");
        }
        assert_eq!(restores_dir("kb").as_deref(), Some("kb/restores/"));
    }
}
