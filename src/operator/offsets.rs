//! KafkaOffsetReset and KafkaOffsetRollback on the generic one-shot controller
//! ([`super::oneshot`]). Offset snapshots live in ConfigMaps of the resource's namespace (they
//! survive operator restarts and need no storage): name = snapshot id
//! (`<reset name>-<epoch ms>`), label `kafka.oso.sh/offset-reset=<reset name>`, key
//! `snapshot.json` (the same document as `run -f --snapshot-dir` writes, docs/offsets.md).
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};

use super::oneshot::{Finished, OneShot, OneShotStatus, Phase, Run, RunFuture};
use super::retry::RunFailure;
use super::{Context, secrets};
use crate::api::offset_reset::GroupResult as StatusGroupResult;
use crate::api::{
    KafkaBackup, KafkaOffsetReset, KafkaOffsetResetStatus, KafkaOffsetRollback,
    KafkaOffsetRollbackStatus, KafkaRestore, OffsetResetPhase, OffsetRollbackPhase, StatusHeader,
};
use crate::exec::ExecError;
use crate::exec::groups::{CommitOutcome, GroupResult};
use crate::format::manifest::OffsetSnapshot;

/// The ConfigMap key of a snapshot document.
pub const SNAPSHOT_KEY: &str = "snapshot.json";
/// The label naming the KafkaOffsetReset that took a snapshot.
pub const RESET_LABEL: &str = "kafka.oso.sh/offset-reset";

fn phase_of(p: Phase) -> (OffsetResetPhase, OffsetRollbackPhase) {
    match p {
        Phase::Running => (OffsetResetPhase::Running, OffsetRollbackPhase::Running),
        Phase::Completed => (OffsetResetPhase::Completed, OffsetRollbackPhase::Completed),
        Phase::PartiallyCompleted => (
            OffsetResetPhase::PartiallyCompleted,
            OffsetRollbackPhase::PartiallyCompleted,
        ),
        Phase::Failed => (OffsetResetPhase::Failed, OffsetRollbackPhase::Failed),
    }
}

impl OneShotStatus for KafkaOffsetResetStatus {
    fn header(&self) -> &StatusHeader {
        &self.common
    }
    fn header_mut(&mut self) -> &mut StatusHeader {
        &mut self.common
    }
    fn phase(&self) -> Option<Phase> {
        self.phase.map(|p| match p {
            OffsetResetPhase::Pending | OffsetResetPhase::Running => Phase::Running,
            OffsetResetPhase::Completed => Phase::Completed,
            OffsetResetPhase::PartiallyCompleted => Phase::PartiallyCompleted,
            OffsetResetPhase::Failed => Phase::Failed,
        })
    }
    fn set_phase(&mut self, p: Phase) {
        self.phase = Some(phase_of(p).0);
    }
}

impl OneShotStatus for KafkaOffsetRollbackStatus {
    fn header(&self) -> &StatusHeader {
        &self.common
    }
    fn header_mut(&mut self) -> &mut StatusHeader {
        &mut self.common
    }
    fn phase(&self) -> Option<Phase> {
        self.phase.map(|p| match p {
            OffsetRollbackPhase::Pending | OffsetRollbackPhase::Running => Phase::Running,
            OffsetRollbackPhase::Completed => Phase::Completed,
            OffsetRollbackPhase::PartiallyCompleted => Phase::PartiallyCompleted,
            OffsetRollbackPhase::Failed => Phase::Failed,
        })
    }
    fn set_phase(&mut self, p: Phase) {
        self.phase = Some(phase_of(p).1);
    }
}

/// The phase and message of a commit outcome.
fn verdict(what: &str, out: &CommitOutcome, continue_on_error: bool) -> (Phase, String) {
    let failed = out.failed();
    let done = out.results.len() - failed.len();
    if failed.is_empty() {
        (Phase::Completed, format!("{what}: {done} group(s) done"))
    } else {
        let names: Vec<&str> = failed.iter().map(|g| g.group.as_str()).collect();
        let first = failed
            .first()
            .and_then(|g| g.message.clone())
            .unwrap_or_default();
        let phase = if continue_on_error && done > 0 {
            Phase::PartiallyCompleted
        } else {
            Phase::Failed
        };
        (
            phase,
            format!(
                "{what}: {done} of {} group(s) done; not done: {} ({first})",
                out.results.len(),
                names.join(", ")
            ),
        )
    }
}

fn status_results(results: &[GroupResult]) -> Vec<StatusGroupResult> {
    results
        .iter()
        .map(|r| StatusGroupResult {
            group_id: r.group.clone(),
            success: r.ok(),
            error: (!r.ok()).then(|| r.message.clone().unwrap_or_default()),
            partitions_reset: r.partitions,
        })
        .collect()
}

/// The KafkaRestore `name` in `ns` and the KafkaBackup its backupRef names (unless its
/// storage is inline), with the Secrets both need loaded into `store`.
async fn restore_with_backup(
    ctx: &Context,
    ns: &str,
    name: &str,
    store: &mut crate::api::Secrets,
    field: &str,
) -> Result<(KafkaRestore, Option<KafkaBackup>), RunFailure> {
    let kr = Api::<KafkaRestore>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| {
            RunFailure::permanent(format!(
                "{field}: KafkaRestore {name:?} does not exist in namespace {ns}"
            ))
        })?;
    let bref = &kr.spec.backup_ref;
    let kb = referenced_backup(
        ctx,
        ns,
        bref,
        store,
        &format!("{field}: KafkaRestore {name:?}"),
    )
    .await?;
    let names = secrets::referenced(&kr.spec.kafka_cluster, bref.storage.as_ref());
    secrets::load_into(&ctx.client, ns, &names, store).await?;
    Ok((kr, kb))
}

/// The KafkaBackup a `backupRef` names (None when its storage is inline), with the Secrets it
/// needs loaded into `store`. A KafkaBackup in another namespace needs
/// `--allow-cross-namespace-refs`. `what` starts the messages (the field and resource).
pub(super) async fn referenced_backup(
    ctx: &Context,
    ns: &str,
    bref: &crate::api::BackupRef,
    store: &mut crate::api::Secrets,
    what: &str,
) -> Result<Option<KafkaBackup>, RunFailure> {
    if bref.storage.is_some() {
        return Ok(None);
    }
    let bns = bref.namespace.clone().unwrap_or_else(|| ns.to_string());
    if bns != ns && !ctx.allow_cross_namespace {
        return Err(RunFailure::permanent(format!(
            "{what} refers to a KafkaBackup in namespace {bns}; the operator reads only the resource's own namespace unless started with --allow-cross-namespace-refs"
        )));
    }
    let kb = Api::<KafkaBackup>::namespaced(ctx.client.clone(), &bns)
        .get_opt(&bref.name)
        .await?
        .ok_or_else(|| {
            RunFailure::permanent(format!(
                "{what}: KafkaBackup {:?} does not exist in namespace {bns}",
                bref.name
            ))
        })?;
    let names = secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
    secrets::load_into(&ctx.client, &bns, &names, store).await?;
    Ok(Some(kb))
}

/// Saves `doc` as a ConfigMap (see the module docs); returns `configmap/<ns>/<name>`.
async fn save_configmap(
    client: kube::Client,
    ns: String,
    reset: String,
    doc: OffsetSnapshot,
) -> Result<String, ExecError> {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(doc.id.clone()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([(RESET_LABEL.to_string(), reset)])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            SNAPSHOT_KEY.to_string(),
            String::from_utf8_lossy(&crate::format::manifest::to_json(&doc)).into_owned(),
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client, &ns)
        .create(&PostParams::default(), &cm)
        .await
        .map_err(|e| {
            ExecError::Failed(format!(
                "cannot save offset snapshot ConfigMap {}: {e}",
                doc.id
            ))
        })?;
    Ok(format!("configmap/{ns}/{}", doc.id))
}

/// Reads the snapshot ConfigMap `name` in `ns`.
async fn load_configmap(
    ctx: &Context,
    ns: &str,
    name: &str,
    field: &str,
) -> Result<OffsetSnapshot, RunFailure> {
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| {
            RunFailure::permanent(format!(
                "{field}: no offset snapshot ConfigMap {name:?} in namespace {ns}"
            ))
        })?;
    let text = cm
        .data
        .and_then(|d| d.get(SNAPSHOT_KEY).cloned())
        .ok_or_else(|| {
            RunFailure::permanent(format!("{field}: ConfigMap {name:?} has no {SNAPSHOT_KEY}"))
        })?;
    crate::format::manifest::from_json(text.as_bytes(), &format!("configmap/{ns}/{name}"))
        .map_err(|e| RunFailure::permanent(format!("{field}: {e}")))
}

impl OneShot for KafkaOffsetReset {
    const KIND: &'static str = "KafkaOffsetReset";

    fn validate(&self) -> Result<(), String> {
        crate::api::validate::validate_offset_reset(self).map_err(|e| e.to_string())
    }

    fn run(
        ctx: Arc<Context>,
        kor: Arc<Self>,
        run: Run<KafkaOffsetResetStatus>,
    ) -> RunFuture<KafkaOffsetResetStatus> {
        let status = run.status;
        Box::pin(async move {
            let ns = kor.namespace().unwrap_or_default();
            let name = kor.name_any();
            let mut store = secrets::load(
                &ctx.client,
                &ns,
                &secrets::referenced(&kor.spec.kafka_cluster, None),
            )
            .await?;
            let restore = match kor
                .spec
                .offset_mapping_ref
                .as_ref()
                .and_then(|m| m.restore_name.clone())
            {
                Some(rn) => Some(
                    restore_with_backup(
                        &ctx,
                        &ns,
                        &rn,
                        &mut store,
                        "spec.offsetMappingRef.restoreName",
                    )
                    .await?,
                ),
                None => None,
            };
            let p = crate::kinds::offset_reset::prepare(
                &kor,
                restore.as_ref().map(|(r, b)| (r, b.as_ref())),
                &store,
                &ctx.pvc_root,
            )
            .await?;
            // A resumed run keeps the snapshot its first attempt took (taken again now, it
            // would hold offsets this reset already moved).
            let taken = status.snapshot_id.clone().zip(status.snapshot_path.clone());
            let now = crate::exec::engine::system_now_ms();
            let save = taken.is_none().then(|| {
                let (client, ns, reset) = (ctx.client.clone(), ns.clone(), name.clone());
                move |doc| save_configmap(client, ns, reset, doc)
            });
            let out = crate::exec::groups::run_offset_reset(&p.plan, &p.client, now, save)
                .await
                .map_err(RunFailure::from)?;
            let snapshot = out.snapshot.clone().or(taken);
            let (phase, message) = verdict(
                &format!("reset {}", p.plan.strategy),
                &out,
                p.plan.continue_on_error,
            );
            let results = status_results(&out.results);
            let total = out.results.len() as u32;
            let failed = out.failed().len() as u32;
            let hash = p.plan.hash.clone();
            let snap_time = snapshot
                .as_ref()
                .and_then(|_| jiff::Timestamp::from_millisecond(now).ok())
                .map(Time);
            Ok(Some(
                Finished {
                    phase,
                    message,
                    fields: Box::new(move |s: &mut KafkaOffsetResetStatus| {
                        s.common.plan_hash = Some(hash.clone());
                        s.groups_total = Some(total);
                        s.groups_reset = Some(total - failed);
                        s.groups_failed = Some(failed);
                        s.group_results = results.clone();
                        if let Some((id, path)) = &snapshot {
                            if s.snapshot_id.as_deref() != Some(id) {
                                s.snapshot_time = snap_time.clone();
                            }
                            s.snapshot_id = Some(id.clone());
                            s.snapshot_path = Some(path.clone());
                        }
                    }),
                }
                .into(),
            ))
        })
    }
}

impl OneShot for KafkaOffsetRollback {
    const KIND: &'static str = "KafkaOffsetRollback";

    fn validate(&self) -> Result<(), String> {
        crate::api::validate::validate_offset_rollback(self).map_err(|e| e.to_string())
    }

    fn run(
        ctx: Arc<Context>,
        korb: Arc<Self>,
        _run: Run<KafkaOffsetRollbackStatus>,
    ) -> RunFuture<KafkaOffsetRollbackStatus> {
        Box::pin(async move {
            let ns = korb.namespace().unwrap_or_default();
            let mut store = secrets::load(
                &ctx.client,
                &ns,
                &secrets::referenced(&korb.spec.kafka_cluster, None),
            )
            .await?;
            let r = &korb.spec.snapshot_ref;
            let p = if let Some(n) = &r.name {
                let snap = load_configmap(&ctx, &ns, n, "spec.snapshotRef.name").await?;
                crate::kinds::offset_rollback::rollback_to(
                    &korb,
                    snap,
                    format!("configmap/{ns}/{n}"),
                    &store,
                )
                .await?
            } else if let Some(k) = &r.offset_reset_ref {
                let kor = Api::<KafkaOffsetReset>::namespaced(ctx.client.clone(), &ns)
                    .get_opt(k)
                    .await?
                    .ok_or_else(|| RunFailure::permanent(format!("spec.snapshotRef.offsetResetRef: KafkaOffsetReset {k:?} does not exist in namespace {ns}")))?;
                let Some(id) = kor.status.and_then(|s| s.snapshot_id) else {
                    return Err(RunFailure::permanent(format!(
                        "spec.snapshotRef.offsetResetRef: KafkaOffsetReset {k:?} has no snapshot (not run yet, or snapshotBeforeReset: false)"
                    )));
                };
                let snap =
                    load_configmap(&ctx, &ns, &id, "spec.snapshotRef.offsetResetRef").await?;
                crate::kinds::offset_rollback::rollback_to(
                    &korb,
                    snap,
                    format!("configmap/{ns}/{id}"),
                    &store,
                )
                .await?
            } else if let Some(rn) = &r.restore_ref {
                let (kr, kb) =
                    restore_with_backup(&ctx, &ns, rn, &mut store, "spec.snapshotRef.restoreRef")
                        .await?;
                crate::kinds::offset_rollback::prepare(
                    &korb,
                    Some((&kr, kb.as_ref())),
                    &store,
                    &ctx.pvc_root,
                    &ctx.pvc_root,
                )
                .await?
            } else {
                crate::kinds::offset_rollback::prepare(
                    &korb,
                    None,
                    &store,
                    &ctx.pvc_root,
                    &ctx.pvc_root,
                )
                .await?
            };
            let (out, verification) = crate::exec::groups::run_offset_rollback(
                &p.client,
                &p.plans,
                korb.spec.dry_run,
                korb.spec.verify_after_rollback,
            )
            .await
            .map_err(RunFailure::from)?;
            let verification =
                verification.map(
                    |(ok, bad)| crate::api::offset_rollback::RollbackVerification {
                        all_matched: bad.is_empty(),
                        total_groups: (ok.len() + bad.len()) as u32,
                        matched_groups: ok.len() as u32,
                        mismatched_groups: bad,
                    },
                );
            let (mut phase, mut message) =
                verdict(&format!("rollback to {}", p.snapshot_id), &out, true);
            if let Some(v) = &verification
                && !v.all_matched
            {
                phase = Phase::Failed;
                message = format!(
                    "{message}; verification failed: {}",
                    v.mismatched_groups.join("; ")
                );
            }
            let failed = out.failed().len() as u32;
            let done = out.results.len() as u32 - failed;
            Ok(Some(
                Finished {
                    phase,
                    message,
                    fields: Box::new(move |s: &mut KafkaOffsetRollbackStatus| {
                        s.groups_rolled_back = Some(done);
                        s.groups_failed = Some(failed);
                        s.verification = verification.clone();
                    }),
                }
                .into(),
            ))
        })
    }
}
