//! Backup sync (Velero's "backup sync"): a scheduled KafkaBackup that points at a repository
//! which already holds complete runs (written by another cluster, or before the resource was
//! deleted and created again) shows them before its first run here: `status.history` (the
//! newest [`crate::api::HISTORY_LIMIT`] runs), the recoverability window
//! (`firstRecoverabilityPoint`, `lastRecoverabilityPoint`, `recoverableRuns`, `topics`) and a
//! Normal `Synced` Event. Nothing runs and nothing is written to the storage: the repository
//! is opened read-only, with the storage Secrets of the resource's own namespace only. A
//! KafkaRestore can then name any of those runs (`backupRef.backupId`). The repository must
//! be this KafkaBackup's (the same namespace and name: another cluster's KafkaBackup of that
//! namespace and name is) or one it adopts on purpose (annotation
//! `kafka.oso.sh/adopt-repository: <namespace>/<name>`): another owner's is not shown, and
//! the `SyncFailed` Event says why and how to adopt it.
//!
//! Once per resource and operator process (an empty repository writes nothing), when its
//! status has no window yet (`recoverableRuns` unset) and no run of it is going (a run computes the window itself when
//! it completes): a task beside the reconcile, never inside it. The write is made only while
//! `recoverableRuns` is still unset (a run that completed meanwhile wins), by the leader. A
//! repository that cannot be read is logged with a Warning `SyncFailed` Event and tried again
//! at the next reconcile. The manifests' own authentication (encrypted repositories) is left
//! to the runs and restores that use them: the window shown is what the manifests say.
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;

use super::status::{Write, write_status};
use super::{Context, secrets};
use crate::api::{BackupPhase, BackupRunRecord, KafkaBackup, KafkaBackupStatus};
use crate::format::manifest::RunManifest;

/// Whether `kb` should be synced now: scheduled (a one-off or continuous backup runs at once
/// and computes its window itself), not being deleted, valid, no window in status yet, and no
/// run of it going (`running`).
pub fn wanted(kb: &KafkaBackup, running: bool) -> bool {
    kb.spec.schedule.is_some()
        && !kb.spec.continuous
        && !running
        && kb.metadata.deletion_timestamp.is_none()
        && kb
            .status
            .as_ref()
            .is_none_or(|s| s.recoverable_runs.is_none())
        && crate::api::validate_backup(kb).is_ok()
}

/// Starts the sync of `kb` in a task when [`wanted`], this replica leads, and no sync of it
/// has started in this process yet (by uid).
pub fn maybe_start(ctx: &Arc<Context>, kb: &Arc<KafkaBackup>) {
    let running = matches!(
        ctx.pool.state(&super::obj_key(&**kb)),
        super::decide::PoolState::Running(_)
    );
    if !*ctx.leader.borrow() || !wanted(kb, running) {
        return;
    }
    let uid = kb.uid().unwrap_or_default();
    if !ctx.synced.lock().unwrap().insert(uid.clone()) {
        return;
    }
    let (ctx, kb) = (ctx.clone(), kb.clone());
    tokio::spawn(async move {
        if let Err(message) = sync(&ctx, &kb).await {
            tracing::warn!(namespace = %kb.namespace().unwrap_or_default(), resource = %kb.name_any(), kind = "KafkaBackup", error = %message, "backup sync failed; tried again at the next reconcile");
            ctx.event(&*kb, EventType::Warning, "SyncFailed", &message)
                .await;
            ctx.synced.lock().unwrap().remove(&uid);
        }
    });
}

/// Reads `kb`'s complete runs from its repository and writes what [`apply`] makes of them.
async fn sync(ctx: &Context, kb: &KafkaBackup) -> Result<(), String> {
    let ns = kb.namespace().unwrap_or_default();
    let name = kb.name_any();
    let names = secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
    let secrets = secrets::load(&ctx.client, &ns, &names)
        .await
        .map_err(|e| format!("the Secrets of spec.storage could not be read: {e}"))?;
    let target =
        crate::observe::storage_target(&kb.spec.storage, &secrets, &ctx.pvc_root, "spec.storage")
            .map_err(|e| e.to_string())?;
    let op = target.open_read_only().map_err(|e| e.to_string())?;
    // the repository must be this KafkaBackup's, or one it adopts on purpose: the check its
    // first run makes (a repository of the same namespace and name from another cluster is)
    let (owner, adopt) =
        crate::kinds::owner::backup_owner(&kb.metadata).map_err(|e| e.to_string())?;
    crate::kinds::owner::check_backup_repository(&op, &name, &owner, adopt.as_ref(), 0)
        .await
        .map_err(|e| e.to_string())?;
    let runs = crate::observe::load_complete_manifests(&op, &name)
        .await
        .map_err(|e| format!("the repository's runs could not be read: {e}"))?;
    if runs.is_empty() {
        // nothing to show: no status write (1,000 new KafkaBackups would be 1,000 writes and
        // as many reconciles); not looked at again in this process
        return Ok(());
    }
    let rec = crate::plan::recoverability(&runs);
    let api: Api<KafkaBackup> = Api::namespaced(ctx.client.clone(), &ns);
    let history = history(&runs);
    let written = std::sync::atomic::AtomicBool::new(false);
    write_status(
        ctx,
        &api,
        &name,
        Write::Must,
        |s: &mut KafkaBackupStatus| {
            let w = apply(s, &rec, &history);
            written.store(w, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .await
    .map_err(|e| format!("status not written: {e}"))?;
    let written = written.load(std::sync::atomic::Ordering::Relaxed) && *ctx.leader.borrow();
    if written {
        let window = match (&rec.window, runs.last()) {
            (Some(w), _) => format!(
                ", recoverable from {} to {}",
                Timestamp::from_millisecond(w.first_ms)
                    .map_or(w.first_ms.to_string(), |t| t.to_string()),
                Timestamp::from_millisecond(w.last_ms)
                    .map_or(w.last_ms.to_string(), |t| t.to_string())
            ),
            _ => String::new(),
        };
        let note = format!(
            "the repository holds {} complete run(s) (newest {}){window}; none ran here yet",
            runs.len(),
            runs.last().map_or("", |m| m.run_id.as_str()),
        );
        ctx.event(kb, EventType::Normal, "Synced", &note).await;
    }
    Ok(())
}

/// The history records of `runs` (oldest first, as read), newest first, at most
/// [`crate::api::HISTORY_LIMIT`].
fn history(runs: &[RunManifest]) -> Vec<BackupRunRecord> {
    let mut sorted: Vec<&RunManifest> = runs.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.completion_time));
    let time = |ms: i64| Timestamp::from_millisecond(ms).ok().map(Time);
    sorted
        .into_iter()
        .take(crate::api::HISTORY_LIMIT)
        .map(|m| BackupRunRecord {
            run_id: m.run_id.clone(),
            phase: BackupPhase::Completed,
            start_time: time(m.start_time),
            completion_time: time(m.completion_time),
            records: m.total_records,
            bytes: m.total_raw_bytes,
        })
        .collect()
}

/// Writes the window and, when status has none, the history into `s`, unless a window is
/// already there (a run completed meanwhile: its figures win). Returns whether it wrote.
fn apply(
    s: &mut KafkaBackupStatus,
    rec: &crate::plan::Recoverability,
    history: &[BackupRunRecord],
) -> bool {
    if s.recoverable_runs.is_some() {
        return false;
    }
    crate::plan::set_recoverability_status(s, rec);
    if s.history.is_empty() {
        s.history = history.to_vec();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(schedule: Option<&str>) -> KafkaBackup {
        let mut kb: KafkaBackup = serde_json::from_value(serde_json::json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {"kafkaCluster": {"bootstrapServers": ["k:9092"]}, "topics": ["orders"],
                     "storage": {"storageType": "filesystem", "filesystem": {"path": "/b"}}}
        }))
        .unwrap();
        kb.spec.schedule = schedule.map(str::to_string);
        kb
    }

    #[test]
    fn only_a_scheduled_backup_without_a_window_and_without_a_run_is_synced() {
        let sched = kb(Some("0 0 * * *"));
        assert!(wanted(&sched, false));
        assert!(!wanted(&sched, true), "a run going computes the window");
        assert!(!wanted(&kb(None), false), "a one-off runs at once");
        let mut synced = sched.clone();
        synced.status = Some(KafkaBackupStatus {
            recoverable_runs: Some(0),
            ..Default::default()
        });
        assert!(!wanted(&synced, false), "once per window");
        let mut cont = sched.clone();
        cont.spec.continuous = true;
        assert!(!wanted(&cont, false));
    }

    #[test]
    fn a_window_already_there_wins_and_history_is_kept() {
        let rec = crate::plan::recoverability(&[]);
        let mine = vec![BackupRunRecord {
            run_id: "r1".into(),
            phase: BackupPhase::Completed,
            start_time: None,
            completion_time: None,
            records: 1,
            bytes: 1,
        }];
        let mut s = KafkaBackupStatus::default();
        assert!(apply(&mut s, &rec, &mine));
        assert_eq!((s.recoverable_runs, s.history.len()), (Some(0), 1));
        s.recoverable_runs = Some(3);
        assert!(!apply(&mut s, &rec, &[]));
        assert_eq!(s.recoverable_runs, Some(3));
        let mut ran = KafkaBackupStatus {
            history: mine.clone(),
            ..Default::default()
        };
        assert!(apply(&mut ran, &rec, &[]));
        assert_eq!(ran.history, mine, "a history already there is kept");
    }
}
