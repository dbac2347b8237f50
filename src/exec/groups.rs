//! Committing consumer-group offsets (after a restore, for a KafkaOffsetReset, for a
//! KafkaOffsetRollback): a group with live members is refused by name, the others are
//! committed through their group coordinator and read back (OffsetFetch) before they count
//! as done. Snapshots of the offsets before the change are taken here too: one
//! snapshot-then-commit ([`snapshot_then_commit`]) runs a KafkaOffsetReset and a restore's
//! consumer-group step alike.
use futures::StreamExt;
use serde::Serialize;

use super::ExecError;
use crate::facts::{Commits, GroupCommits};
use crate::format::layout::FORMAT;
use crate::format::manifest::OffsetSnapshot;
use crate::kafka::KafkaClient;
use crate::plan::GroupOffsetPlan;
use crate::plan::OffsetResetPlan;

/// What happened to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupOutcome {
    /// Committed and read back equal.
    Committed,
    /// Not committed: `dryRun`.
    DryRun,
    /// Not committed: the group has active members (Kafka refuses an admin commit then).
    Refused,
    /// The commit or its read-back failed.
    Failed,
    /// Nothing to commit (no position carried over).
    Skipped,
}

/// The result for one group, for status and the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResult {
    pub group: String,
    pub outcome: GroupOutcome,
    /// Partitions committed (or, dry run, that would be).
    pub partitions: u32,
    /// Why it was refused or failed; the skipped positions otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Records the group will read a second time after the commit (repartitioned topics:
    /// docs/offsets.md). 0 elsewhere.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicates: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl GroupResult {
    pub fn ok(&self) -> bool {
        matches!(
            self.outcome,
            GroupOutcome::Committed | GroupOutcome::DryRun | GroupOutcome::Skipped
        )
    }
}

/// A snapshot document of `committed` (see [`KafkaClient::committed_groups`]).
pub fn snapshot_of(
    id: &str,
    taken_by: &str,
    now_ms: i64,
    expires_at: Option<i64>,
    committed: &GroupCommits,
) -> OffsetSnapshot {
    OffsetSnapshot {
        format: FORMAT.into(),
        id: id.to_string(),
        created_at: now_ms,
        taken_by: taken_by.to_string(),
        expires_at,
        groups: crate::plan::group_snapshots(committed, |_| true),
    }
}

/// The refusal message of a group with live members: names them and the fix.
pub fn live_members_message(d: &crate::kafka::ops::GroupDescription) -> String {
    let names: Vec<String> = d
        .members
        .iter()
        .map(|m| format!("{} at {} ({})", m.client_id, m.client_host, m.member_id))
        .collect();
    format!(
        "consumer group {} has {} active member(s) (state {}): {}; Kafka accepts offset commits for a group only while no consumer is in it: stop these consumers, then run again",
        d.group,
        d.members.len(),
        d.state,
        names.join(", ")
    )
}

/// Commits every group plan, `parallelism` groups at a time. A group with live members is
/// refused (DescribeGroups first), the others go on; each commit is read back with
/// OffsetFetch and compared. With `dry_run` nothing is committed (the live-member check still
/// runs, so the dry run shows a refusal too). Results are in the order of `plans`.
pub async fn commit_groups(
    client: &KafkaClient,
    plans: &[GroupOffsetPlan],
    parallelism: usize,
    dry_run: bool,
) -> Vec<GroupResult> {
    // Owned inputs per future: borrowed ones make the stream's futures not provably Send.
    let futs: Vec<_> = plans
        .iter()
        .cloned()
        .map(|p| {
            let c = client.clone();
            async move { commit_group(&c, &p, dry_run).await }
        })
        .collect();
    futures::stream::iter(futs)
        .buffered(parallelism.max(1))
        .collect()
        .await
}

async fn commit_group(client: &KafkaClient, p: &GroupOffsetPlan, dry_run: bool) -> GroupResult {
    if let Some(why) = &p.failure {
        return GroupResult {
            group: p.group.clone(),
            outcome: GroupOutcome::Failed,
            partitions: 0,
            message: Some(why.clone()),
            duplicates: 0,
        };
    }
    let skipped = (!p.skipped.is_empty()).then(|| format!("not carried: {}", p.skipped.join("; ")));
    let duplicates = p.changes.iter().map(|c| c.duplicates).sum();
    let result = |outcome, partitions, message| GroupResult {
        group: p.group.clone(),
        outcome,
        partitions,
        message,
        duplicates,
    };
    if p.changes.is_empty() {
        return result(GroupOutcome::Skipped, 0, skipped);
    }
    let n = p.changes.len() as u32;
    match client.describe_group(&p.group).await {
        Err(e) => {
            return result(
                GroupOutcome::Failed,
                0,
                Some(format!("DescribeGroups: {e}")),
            );
        }
        Ok(d) if !d.members.is_empty() => {
            return result(GroupOutcome::Refused, 0, Some(live_members_message(&d)));
        }
        Ok(_) => {}
    }
    if dry_run {
        return result(GroupOutcome::DryRun, n, skipped);
    }
    let offsets: Commits = p
        .changes
        .iter()
        .map(|c| ((c.topic.clone(), c.partition), (c.new, c.metadata.clone())))
        .collect();
    match client.commit_offsets(&p.group, &offsets).await {
        Err(e) => return result(GroupOutcome::Failed, 0, Some(format!("OffsetCommit: {e}"))),
        Ok(refused) if !refused.is_empty() => {
            let why: Vec<String> = refused.values().map(|e| e.to_string()).collect();
            return result(
                GroupOutcome::Failed,
                n - refused.len() as u32,
                Some(why.join("; ")),
            );
        }
        Ok(_) => {}
    }
    // Read back: the commit counts only when the coordinator returns it.
    match client.committed_offsets(&p.group).await {
        Err(e) => result(
            GroupOutcome::Failed,
            0,
            Some(format!("OffsetFetch after the commit: {e}")),
        ),
        Ok(now) => {
            let wrong: Vec<String> = offsets
                .iter()
                .filter(|(k, (o, _))| now.get(*k).map(|x| x.0) != Some(*o))
                .map(|((t, part), (o, _))| {
                    format!(
                        "{t}/{part}: committed {o}, read back {:?}",
                        now.get(&(t.clone(), *part)).map(|x| x.0)
                    )
                })
                .collect();
            if wrong.is_empty() {
                result(GroupOutcome::Committed, n, skipped)
            } else {
                result(GroupOutcome::Failed, 0, Some(wrong.join("; ")))
            }
        }
    }
}

/// The plans that put `snapshot` back (rollback): every snapshotted position of the groups
/// in `only` (all when empty). The plans commit only; a partition committed since the
/// snapshot but absent from it is deleted by [`rollback_group`] (KafkaOffsetRollback, with
/// OffsetDelete), which reads the group's commits right before (docs/offsets.md).
pub fn rollback_plans(snapshot: &OffsetSnapshot, only: &[String]) -> Vec<GroupOffsetPlan> {
    snapshot
        .groups
        .iter()
        .filter(|g| only.is_empty() || only.contains(&g.group_id))
        .map(|g| GroupOffsetPlan {
            group: g.group_id.clone(),
            changes: g
                .offsets
                .iter()
                .map(|o| crate::plan::OffsetChange {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    current: None,
                    new: o.offset,
                    metadata: o.metadata.clone(),
                    from: format!("snapshot {}", snapshot.id),
                    high_watermark: None,
                    duplicates: 0,
                })
                .collect(),
            skipped: vec![],
            failure: None,
        })
        .collect()
}

/// What a KafkaOffsetReset or KafkaOffsetRollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitOutcome {
    pub results: Vec<GroupResult>,
    /// The snapshot taken before (`snapshotBeforeReset`): (id, file).
    pub snapshot: Option<(String, String)>,
}

impl CommitOutcome {
    /// Groups not done (refused, failed, or not attempted after a failure).
    pub fn failed(&self) -> Vec<&GroupResult> {
        self.results.iter().filter(|r| !r.ok()).collect()
    }
}

/// Runs a compiled KafkaOffsetReset: the groups' current offsets are saved first with
/// `save` (`snapshotBeforeReset`; not in a dry run, and not when `save` is None: a resumed run
/// keeps the snapshot its first attempt took), then every group is committed, `parallelism`
/// at a time with `continueOnError`; without it one at a time, stopping at the first group
/// that is not done (the rest are reported as not attempted). `save` returns where it stored
/// the snapshot. The same code runs a restore's consumer-group step ([`snapshot_then_commit`]).
pub async fn run_offset_reset<F, Fut>(
    plan: &OffsetResetPlan,
    client: &KafkaClient,
    now_ms: i64,
    save: Option<F>,
) -> Result<CommitOutcome, ExecError>
where
    F: FnOnce(OffsetSnapshot) -> Fut,
    Fut: std::future::Future<Output = Result<String, ExecError>>,
{
    let snapshot = save.map(|save| Snapshotting {
        taken_by: format!("KafkaOffsetReset {}", plan.name),
        expires_at: None,
        save,
    });
    let (out, _) = snapshot_then_commit(plan, client, now_ms, None, snapshot, false).await?;
    Ok(out)
}

/// How [`snapshot_then_commit`] keeps the snapshot it takes before the commits.
pub struct Snapshotting<F> {
    /// Who took it, e.g. `KafkaOffsetReset <name>`, `KafkaRestore <name>`.
    pub taken_by: String,
    /// Epoch ms after which it may be deleted (None: kept).
    pub expires_at: Option<i64>,
    /// Stores the document; returns where (a file, a storage key, a ConfigMap).
    pub save: F,
}

/// One snapshot-then-commit, for a KafkaOffsetReset and for a restore's consumer-group step
/// (compiled by [`crate::plan::compile_restore_groups`]). With `snapshot`,
/// `plan.snapshot_before` and not a dry run, the groups' committed offsets (`current`, else read
/// now) are saved first as snapshot `<plan.name>-<now_ms>`. Then every group is committed
/// ([`commit_in_order`] by the plan's `parallelism` and `continueOnError`). With
/// `auto_rollback` (a restore's `autoRollbackOnFailure`), when a group is not done, the groups
/// that were committed are put back to the snapshot and their results say so. Returns the
/// outcome and whether it rolled back.
///
/// Errors: reading the current commits, saving the snapshot (nothing is committed then).
pub async fn snapshot_then_commit<F, Fut>(
    plan: &OffsetResetPlan,
    client: &KafkaClient,
    now_ms: i64,
    current: Option<GroupCommits>,
    snapshot: Option<Snapshotting<F>>,
    auto_rollback: bool,
) -> Result<(CommitOutcome, bool), ExecError>
where
    F: FnOnce(OffsetSnapshot) -> Fut,
    Fut: std::future::Future<Output = Result<String, ExecError>>,
{
    let saved = match snapshot {
        Some(s) if plan.snapshot_before && !plan.dry_run => {
            let current = match current {
                Some(c) => c,
                None => {
                    let names: Vec<String> = plan.groups.iter().map(|g| g.group.clone()).collect();
                    client.committed_groups(&names).await?
                }
            };
            let id = format!("{}-{now_ms}", plan.name);
            let doc = snapshot_of(&id, &s.taken_by, now_ms, s.expires_at, &current);
            let path = (s.save)(doc.clone()).await?;
            Some((doc, path))
        }
        _ => None,
    };
    let mut results = commit_in_order(
        client,
        &plan.groups,
        plan.parallelism as usize,
        plan.continue_on_error,
        plan.dry_run,
    )
    .await;
    let mut rolled_back = false;
    if let Some((doc, _)) = &saved
        && auto_rollback
        && results.iter().any(|r| !r.ok())
    {
        roll_back_committed(client, doc, &mut results, plan.parallelism as usize).await;
        rolled_back = true;
    }
    let snapshot = saved.map(|(doc, path)| (doc.id, path));
    Ok((CommitOutcome { results, snapshot }, rolled_back))
}

/// Puts the groups of `results` that were committed back to snapshot `doc`, `parallelism`
/// groups at a time, and says so in their results (`autoRollbackOnFailure`).
async fn roll_back_committed(
    client: &KafkaClient,
    doc: &OffsetSnapshot,
    results: &mut [GroupResult],
    parallelism: usize,
) {
    let committed: Vec<String> = results
        .iter()
        .filter(|r| r.outcome == GroupOutcome::Committed)
        .map(|r| r.group.clone())
        .collect();
    let back = rollback_plans(doc, &committed);
    let undone = commit_groups(client, &back, parallelism, false).await;
    for r in results.iter_mut() {
        if let Some(u) = undone.iter().find(|u| u.group == r.group) {
            r.message = Some(format!(
                "rolled back to snapshot {} ({:?}) after another group failed",
                doc.id, u.outcome
            ));
        }
    }
}

/// Saves a snapshot as `<dir>/<id>.json` (the CLI's `--snapshot-dir`); returns the file.
pub fn save_snapshot_file(
    dir: &std::path::Path,
    doc: &OffsetSnapshot,
) -> Result<String, ExecError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ExecError::Input(format!(
            "cannot create the snapshot directory {} (--snapshot-dir): {e}",
            dir.display()
        ))
    })?;
    let path = dir.join(format!("{}.json", doc.id));
    std::fs::write(&path, crate::format::manifest::to_json(doc)).map_err(|e| {
        ExecError::Input(format!("cannot write the snapshot {}: {e}", path.display()))
    })?;
    Ok(path.display().to_string())
}

/// Commits `plans`: all of them `parallelism` at a time when `continue_on_error`, else one at
/// a time until the first group that is not done.
pub async fn commit_in_order(
    client: &KafkaClient,
    plans: &[GroupOffsetPlan],
    parallelism: usize,
    continue_on_error: bool,
    dry_run: bool,
) -> Vec<GroupResult> {
    if continue_on_error {
        return commit_groups(client, plans, parallelism, dry_run).await;
    }
    let mut out = Vec::with_capacity(plans.len());
    let mut stopped: Option<String> = None;
    for p in plans {
        if let Some(g) = &stopped {
            out.push(GroupResult {
                group: p.group.clone(),
                outcome: GroupOutcome::Failed,
                partitions: 0,
                message: Some(format!(
                    "not attempted: group {g} was not done and continueOnError is false"
                )),
                duplicates: 0,
            });
            continue;
        }
        let r = commit_group(client, p, dry_run).await;
        if !r.ok() {
            stopped = Some(r.group.clone());
        }
        out.push(r);
    }
    out
}

/// Groups a rollback commits at a time.
pub const ROLLBACK_PARALLELISM: usize = 8;

/// Runs a KafkaOffsetRollback's plans (from [`rollback_plans`]): every group is put back to
/// the whole state of the snapshot ([`rollback_group`]: the snapshot's offsets committed, the
/// partitions committed since but absent from the snapshot deleted), `ROLLBACK_PARALLELISM`
/// groups at a time (a failed group does not stop the others). Then, with `verify` and not a
/// dry run, every group is read back and compared with the snapshot, whole state (see
/// [`verify_commits`]): (outcome, Some((matched groups, mismatches))). A group that does not
/// match is not done: its result is `Failed` with the difference, so the run does not report
/// success.
pub async fn run_offset_rollback(
    client: &KafkaClient,
    plans: &[GroupOffsetPlan],
    dry_run: bool,
    verify: bool,
) -> Result<(CommitOutcome, Option<(Vec<String>, Vec<String>)>), ExecError> {
    let futs: Vec<_> = plans
        .iter()
        .cloned()
        .map(|p| {
            let c = client.clone();
            async move { rollback_group(&c, &p, dry_run).await }
        })
        .collect();
    let mut results: Vec<GroupResult> = futures::stream::iter(futs)
        .buffered(ROLLBACK_PARALLELISM)
        .collect()
        .await;
    let verification = if verify && !dry_run {
        let diffs = state_differences(client, plans).await?;
        for r in &mut results {
            if let Some(d) = diffs.iter().find(|(g, _)| g == &r.group).map(|(_, d)| d)
                && r.ok()
            {
                r.outcome = GroupOutcome::Failed;
                r.message = Some(format!("after the rollback {d}"));
            }
        }
        let ok = plans
            .iter()
            .filter(|p| !diffs.iter().any(|(g, _)| g == &p.group))
            .map(|p| p.group.clone())
            .collect();
        let bad = diffs.iter().map(|(g, d)| format!("{g}: {d}")).collect();
        Some((ok, bad))
    } else {
        None
    };
    Ok((
        CommitOutcome {
            results,
            snapshot: None,
        },
        verification,
    ))
}

/// Puts one group back to the snapshot state `p` describes: its offsets are committed
/// ([`commit_group`]: live members refused, read back), and every partition the group has
/// committed now that `p` does not name is deleted (OffsetDelete, KIP-496), then read back
/// gone. A snapshot group with no offsets loses all of its commits. A refused or failed
/// deletion fails the group, naming the partitions.
pub async fn rollback_group(
    client: &KafkaClient,
    p: &GroupOffsetPlan,
    dry_run: bool,
) -> GroupResult {
    let failed = |message: String| GroupResult {
        group: p.group.clone(),
        outcome: GroupOutcome::Failed,
        partitions: 0,
        message: Some(message),
        duplicates: 0,
    };
    let now = match client.committed_offsets(&p.group).await {
        Ok(n) => n,
        Err(e) => return failed(format!("OffsetFetch before the rollback: {e}")),
    };
    let extra: Vec<((String, i32), i64)> = now
        .iter()
        .filter(|(k, _)| {
            !p.changes
                .iter()
                .any(|c| c.topic == k.0 && c.partition == k.1)
        })
        .map(|(k, v)| (k.clone(), v.0))
        .collect();
    if extra.is_empty() {
        return commit_group(client, p, dry_run).await;
    }
    let listed = extra
        .iter()
        .map(|((t, q), o)| format!("{t}/{q} (at {o})"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = if p.changes.is_empty() {
        match client.describe_group(&p.group).await {
            Err(e) => return failed(format!("DescribeGroups: {e}")),
            Ok(d) if !d.members.is_empty() => {
                return GroupResult {
                    outcome: GroupOutcome::Refused,
                    ..failed(live_members_message(&d))
                };
            }
            Ok(_) => GroupResult {
                outcome: GroupOutcome::Committed,
                message: None,
                ..failed(String::new())
            },
        }
    } else {
        commit_group(client, p, dry_run).await
    };
    if !r.ok() {
        return r;
    }
    if dry_run {
        r.outcome = GroupOutcome::DryRun;
        r.partitions += extra.len() as u32;
        r.message = Some(format!(
            "would delete the offsets the snapshot does not have: {listed}"
        ));
        return r;
    }
    let parts: Vec<(String, i32)> = extra.iter().map(|(k, _)| k.clone()).collect();
    match client.delete_committed_offsets(&p.group, &parts).await {
        Err(e) => return failed(format!("OffsetDelete of {listed}: {e}")),
        Ok(refused) if !refused.is_empty() => {
            let why: Vec<String> = refused.values().map(|e| e.to_string()).collect();
            return failed(format!(
                "the snapshot has no offset for {listed}, and deleting them was refused: {}",
                why.join("; ")
            ));
        }
        Ok(_) => {}
    }
    match client.committed_offsets(&p.group).await {
        Err(e) => failed(format!("OffsetFetch after OffsetDelete: {e}")),
        Ok(after) => {
            let left: Vec<String> = parts
                .iter()
                .filter_map(|k| after.get(k).map(|v| format!("{}/{} at {}", k.0, k.1, v.0)))
                .collect();
            if !left.is_empty() {
                return failed(format!(
                    "still committed after OffsetDelete (the snapshot has none): {}",
                    left.join(", ")
                ));
            }
            r.partitions += parts.len() as u32;
            r.message = Some(format!(
                "deleted the offsets the snapshot does not have: {listed}"
            ));
            r
        }
    }
}

/// Reads an offset snapshot document (checksum verified).
pub fn read_snapshot(path: &std::path::Path) -> Result<OffsetSnapshot, ExecError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ExecError::Input(format!(
            "cannot read offset snapshot {}: {e}",
            path.display()
        ))
    })?;
    Ok(crate::format::manifest::from_json(
        &bytes,
        &path.display().to_string(),
    )?)
}

/// Compares the committed offsets of the groups of `plans` with the state the plans put
/// back, whole: every partition of the plan at its offset, and no committed partition the
/// plan does not name (matched groups, mismatched groups with their differences).
pub async fn verify_commits(
    client: &KafkaClient,
    plans: &[GroupOffsetPlan],
) -> Result<(Vec<String>, Vec<String>), ExecError> {
    let diffs = state_differences(client, plans).await?;
    let ok = plans
        .iter()
        .filter(|p| !diffs.iter().any(|(g, _)| g == &p.group))
        .map(|p| p.group.clone())
        .collect();
    Ok((ok, diffs.iter().map(|(g, d)| format!("{g}: {d}")).collect()))
}

/// (group, differences) of every group of `plans` whose committed offsets now are not
/// exactly the plan's: a partition at another offset or without one, or a partition
/// committed that the plan (the snapshot) does not have.
async fn state_differences(
    client: &KafkaClient,
    plans: &[GroupOffsetPlan],
) -> Result<Vec<(String, String)>, ExecError> {
    let mut out = vec![];
    for p in plans {
        let now = client.committed_offsets(&p.group).await?;
        let mut diffs: Vec<String> = p
            .changes
            .iter()
            .filter_map(|c| {
                let at = now.get(&(c.topic.clone(), c.partition)).map(|x| x.0);
                (at != Some(c.new)).then(|| {
                    format!(
                        "{}/{} is at {}, the snapshot has {}",
                        c.topic,
                        c.partition,
                        at.map_or("no committed offset".into(), |o| o.to_string()),
                        c.new
                    )
                })
            })
            .collect();
        diffs.extend(
            now.iter()
                .filter(|(k, _)| {
                    !p.changes
                        .iter()
                        .any(|c| c.topic == k.0 && c.partition == k.1)
                })
                .map(|((t, q), v)| {
                    format!("{t}/{q} is at {}, the snapshot has no offset there", v.0)
                }),
        );
        if !diffs.is_empty() {
            out.push((p.group.clone(), diffs.join("; ")));
        }
    }
    Ok(out)
}
