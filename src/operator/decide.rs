//! The pure middle of a KafkaBackup reconcile: given the resource, what it recorded and what
//! the executor pool is doing, decide the one next action. No I/O and no clock (the caller
//! passes `now`), so every branch is unit-tested.
use std::time::Duration;

use jiff::Timestamp;

use super::schedule::{evaluate, run_id_for};
use crate::api::validate::{parse_schedule, parse_time_zone};
use crate::api::{BackupPhase, KafkaBackup};

/// Annotation that asks for one run now (defined in `api`, where the plugin finds it too).
pub use crate::api::RUN_NOW_ANNOTATION;

/// What the executor pool reports about this resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolState {
    Idle,
    /// A run is executing (its run key).
    Running(String),
    /// This process ran the resource's last run (its key) and it has finished: its final
    /// status was written (with retries) before the task ended.
    Finished(String),
}

/// The next action for a KafkaBackup.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupAction {
    /// Being deleted: cancel in-flight work, then remove the finalizer. Backup data stays.
    Finalize,
    /// The spec cannot run: set Failed. `message` names the field(s) and the fix.
    Invalid { field: String, message: String },
    /// Start a run. `scheduled` is the tick it belongs to (recorded as lastScheduleTime);
    /// `key` is stable for that tick, generation or trigger, so a repeated decision is
    /// recognised by the pool and never starts a second run.
    Start {
        key: String,
        scheduled: Option<Timestamp>,
        trigger: Option<String>,
        /// The run was left Running by an operator restart or a leadership change: it is
        /// started again and resumes from its checkpoint (a `Retried` Event says so).
        resumed: bool,
    },
    /// A tick came while a run is still going: concurrency Forbid, recorded as skipped.
    Skip { tick: Timestamp, missed: u32 },
    /// Nothing to do now; look again after this long (`None`: only on change).
    Wait {
        requeue_after: Option<Duration>,
        next_tick: Option<Timestamp>,
    },
}

/// Decides the next action for `kb` at `now`. `last_trigger` is the run-now token already
/// acted on (kept in status).
pub fn decide_backup(
    kb: &KafkaBackup,
    pool: &PoolState,
    now: Timestamp,
    last_trigger: Option<&str>,
) -> BackupAction {
    if kb.metadata.deletion_timestamp.is_some() {
        return BackupAction::Finalize;
    }
    // What the API server's schema and CEL rules let through is validated again in full.
    if let Err(e) = crate::api::validate_backup(kb) {
        let first = &e.errors[0];
        return BackupAction::Invalid {
            field: first.field.clone(),
            message: e.to_string(),
        };
    }
    let generation = kb.metadata.generation.unwrap_or(0);
    let status = kb.status.as_ref();
    let trigger = kb
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RUN_NOW_ANNOTATION))
        .cloned();
    let new_trigger = trigger
        .as_deref()
        .filter(|t| Some(*t) != last_trigger)
        .map(str::to_string);
    let poll = Some(Duration::from_secs(5));
    let running = status.is_some_and(|s| s.phase == Some(BackupPhase::Running));
    if running && matches!(pool, PoolState::Finished(_)) {
        // This process finished the run and wrote its final status; the cache is behind.
        return BackupAction::Wait {
            requeue_after: Some(Duration::from_secs(2)),
            next_tick: None,
        };
    }
    // Left Running with nothing executing here: an operator restart or a leadership change
    // interrupted the run.
    let stranded = running && *pool == PoolState::Idle;

    let Some(expr) = kb.spec.schedule.as_deref() else {
        return decide_one_off(pool, status, generation, new_trigger, stranded);
    };

    let cron = match parse_schedule(expr) {
        Ok(c) => c,
        Err(message) => {
            return BackupAction::Invalid {
                field: "spec.schedule".into(),
                message,
            };
        }
    };
    let tz = match parse_time_zone(kb.spec.time_zone_name()) {
        Ok(tz) => tz,
        Err(message) => {
            return BackupAction::Invalid {
                field: "spec.timeZone".into(),
                message,
            };
        }
    };
    let created = kb
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let anchor = status
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    let state = match evaluate(&cron, &tz, anchor, now) {
        Ok(s) => s,
        Err(message) => {
            return BackupAction::Invalid {
                field: "spec.schedule".into(),
                message,
            };
        }
    };
    let until_next = state.next.map(|n| {
        Duration::from_millis((n.as_millisecond() - now.as_millisecond()).max(0) as u64 + 50)
    });
    let running_here = matches!(pool, PoolState::Running(_));
    match (running_here, state.due, new_trigger) {
        (true, Some(tick), _) => BackupAction::Skip {
            tick,
            missed: state.missed,
        },
        (true, None, _) => BackupAction::Wait {
            requeue_after: poll,
            next_tick: state.next,
        },
        (false, _, Some(t)) => BackupAction::Start {
            key: format!("trigger-{t}"),
            scheduled: None,
            trigger: Some(t),
            resumed: false,
        },
        // The interrupted run of the recorded tick goes on first (same run id, from its
        // checkpoint); a tick that fell due meanwhile comes after it.
        (false, _, None) if stranded => {
            let tick = status
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0);
            BackupAction::Start {
                key: format!(
                    "resume-{}",
                    tick.map(run_id_for)
                        .or_else(|| status.and_then(|s| s.backup_id.clone()))
                        .unwrap_or_default()
                ),
                scheduled: tick,
                trigger: None,
                resumed: true,
            }
        }
        (false, Some(_), None) if kb.spec.suspend => BackupAction::Wait {
            requeue_after: None,
            next_tick: None,
        },
        (false, Some(tick), None) => BackupAction::Start {
            key: run_id_for(tick),
            scheduled: Some(tick),
            trigger: None,
            resumed: false,
        },
        (false, None, None) => BackupAction::Wait {
            requeue_after: until_next,
            next_tick: state.next,
        },
    }
}

/// [`decide_backup`] without a schedule (one-off or continuous): one run per generation, plus
/// run-now triggers (`new_trigger`, not acted on yet); `stranded`: left Running with nothing
/// executing here.
fn decide_one_off(
    pool: &PoolState,
    status: Option<&crate::api::KafkaBackupStatus>,
    generation: i64,
    new_trigger: Option<String>,
    stranded: bool,
) -> BackupAction {
    let poll = Some(Duration::from_secs(5));
    // One-shot (or continuous): one run per generation, plus run-now triggers.
    if let PoolState::Running(_) = pool {
        return BackupAction::Wait {
            requeue_after: poll,
            next_tick: None,
        };
    }
    if let Some(t) = new_trigger {
        return BackupAction::Start {
            key: format!("trigger-{t}"),
            scheduled: None,
            trigger: Some(t),
            resumed: false,
        };
    }
    let done = status.is_some_and(|s| {
        s.common.observed_generation == Some(generation)
            && matches!(s.phase, Some(BackupPhase::Completed | BackupPhase::Failed))
    });
    if done {
        BackupAction::Wait {
            requeue_after: None,
            next_tick: None,
        }
    } else {
        // Also the path after an operator restart that left phase Running: the run is
        // started again and resumes from its checkpoint.
        BackupAction::Start {
            key: format!("generation-{generation}"),
            scheduled: None,
            trigger: None,
            resumed: stranded,
        }
    }
}

/// The next action for a KafkaRestore: one run per generation.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreAction {
    Finalize,
    /// The spec cannot run: set Failed with this field and message.
    Invalid {
        field: String,
        message: String,
    },
    Start {
        key: String,
        /// Left Running by an operator restart or a leadership change: resumed from the
        /// restore journal.
        resumed: bool,
    },
    /// Running: look again soon (live progress); or finished for this generation.
    Wait {
        requeue_after: Option<Duration>,
    },
    /// Its run task waits for the KafkaBackup's first complete run (phase Pending): no
    /// progress to write; the task looks for the run itself and writes Running when it
    /// starts (a watch event, so a reconcile). Looked at again after this long only as a
    /// safety net: 1,000 waiting restores requeued every 5 s cost ~100 reconciles per second
    /// (bench/operator_scale.sh).
    Waiting {
        requeue_after: Duration,
    },
}

/// The requeue of a restore whose run task waits for its backup ([`RestoreAction::Waiting`]).
pub const WAITING_REQUEUE: Duration = Duration::from_secs(300);

/// Decides the next action for `kr`. A restore left `Running` by an operator restart is
/// started again and resumes from its journal (records already produced are not produced
/// again: see `exec::restore`).
pub fn decide_restore(kr: &crate::api::KafkaRestore, pool: &PoolState) -> RestoreAction {
    use crate::api::RestorePhase;
    if kr.metadata.deletion_timestamp.is_some() {
        return RestoreAction::Finalize;
    }
    if let Err(e) = crate::api::validate_restore(kr) {
        let first = &e.errors[0];
        return RestoreAction::Invalid {
            field: first.field.clone(),
            message: e.to_string(),
        };
    }
    let phase = kr.status.as_ref().and_then(|s| s.phase);
    if let PoolState::Running(_) = pool {
        if phase == Some(RestorePhase::Pending) {
            return RestoreAction::Waiting {
                requeue_after: WAITING_REQUEUE,
            };
        }
        return RestoreAction::Wait {
            requeue_after: Some(Duration::from_secs(5)),
        };
    }
    let running = kr
        .status
        .as_ref()
        .is_some_and(|s| s.phase == Some(RestorePhase::Running));
    if running && matches!(pool, PoolState::Finished(_)) {
        // finished here, final status written; the cache is behind
        return RestoreAction::Wait {
            requeue_after: Some(Duration::from_secs(2)),
        };
    }
    let generation = kr.metadata.generation.unwrap_or(0);
    let done = kr.status.as_ref().is_some_and(|s| {
        s.common.observed_generation == Some(generation)
            && matches!(
                s.phase,
                Some(RestorePhase::Completed | RestorePhase::Failed)
            )
    });
    if done {
        RestoreAction::Wait {
            requeue_after: None,
        }
    } else {
        RestoreAction::Start {
            key: format!("generation-{generation}"),
            resumed: running && *pool == PoolState::Idle,
        }
    }
}

/// What a KafkaRestore does when the KafkaBackup it names has no complete run in its repository:
/// `Ok(reason)` waits (the reason goes to status and a `Waiting` Event), `Err(message)` fails.
/// It waits while the KafkaBackup can still produce a run (applied together with the restore,
/// as a GitOps sync does, or its first run is going); it fails when none can come: the
/// KafkaBackup is suspended, or its one-off run failed for its current generation. `kb` is
/// `None` when no such KafkaBackup exists (yet): that waits too, as a Pod waits for its Secret.
pub fn await_backup(kb: Option<&KafkaBackup>, name: &str, ns: &str) -> Result<String, String> {
    let Some(kb) = kb else {
        return Ok(format!(
            "spec.backupRef.name: no KafkaBackup {name:?} in namespace {ns} yet; the restore starts once it exists and has a complete run (or set backupRef.storage)"
        ));
    };
    let status = kb.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    if kb.spec.suspend {
        return Err(format!(
            "spec.backupRef.name: KafkaBackup {name:?} has no complete run in its storage and is suspended, so none will come; resume it (spec.suspend: false) or fix backupRef"
        ));
    }
    let failed_for_good = kb.spec.schedule.is_none()
        && phase == Some(BackupPhase::Failed)
        && status.and_then(|s| s.common.observed_generation) == kb.metadata.generation;
    if failed_for_good {
        return Err(format!(
            "spec.backupRef.name: KafkaBackup {name:?} has no complete run: its run failed ({}); fix the backup, then change this restore to try again",
            status
                .and_then(|s| s.common.message.clone())
                .unwrap_or_default()
        ));
    }
    let phase = phase.map_or_else(|| "not started".to_string(), |p| format!("{p:?}"));
    Ok(format!(
        "KafkaBackup {name:?} has no complete run yet (phase: {phase}); the restore starts once it has one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Document, KafkaBackupStatus, load_and_validate};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn kb(extra: &str) -> KafkaBackup {
        let y = format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata:\n  name: b\nspec:\n  kafkaCluster:\n    bootstrapServers: [\"k:9092\"]\n  topics: [t]\n  storage:\n    storageType: filesystem\n    filesystem:\n      path: /x\n{extra}"
        );
        let Document::Backup(mut b) = load_and_validate(&y, "t").unwrap().remove(0) else {
            unreachable!()
        };
        b.metadata.generation = Some(3);
        b.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        b
    }

    fn with_status(
        mut b: KafkaBackup,
        phase: BackupPhase,
        generation: i64,
        last_tick: Option<&str>,
    ) -> KafkaBackup {
        let mut s = KafkaBackupStatus {
            phase: Some(phase),
            ..Default::default()
        };
        s.common.observed_generation = Some(generation);
        s.last_schedule_time = last_tick.map(|t| Time(ts(t)));
        b.status = Some(s);
        b
    }

    #[test]
    fn one_shot_runs_once_per_generation_and_resumes_after_restart() {
        let now = ts("2026-01-01T00:01:00Z");
        let fresh = kb("");
        assert_eq!(
            decide_backup(&fresh, &PoolState::Idle, now, None),
            BackupAction::Start {
                key: "generation-3".into(),
                scheduled: None,
                trigger: None,
                resumed: false,
            }
        );
        let done = with_status(kb(""), BackupPhase::Completed, 3, None);
        assert!(matches!(
            decide_backup(&done, &PoolState::Idle, now, None),
            BackupAction::Wait {
                requeue_after: None,
                ..
            }
        ));
        // a spec change (new generation) runs again
        let changed = with_status(kb(""), BackupPhase::Completed, 2, None);
        assert!(matches!(
            decide_backup(&changed, &PoolState::Idle, now, None),
            BackupAction::Start { .. }
        ));
        // operator restarted while Running: nothing in the pool, so the run starts again (and resumes)
        let stranded = with_status(kb(""), BackupPhase::Running, 3, None);
        assert!(matches!(
            decide_backup(&stranded, &PoolState::Idle, now, None),
            BackupAction::Start { resumed: true, .. }
        ));
        // this process finished the run but the cache still shows Running: no second run
        assert!(matches!(
            decide_backup(
                &stranded,
                &PoolState::Finished("generation-3".into()),
                now,
                None
            ),
            BackupAction::Wait {
                requeue_after: Some(_),
                ..
            }
        ));
        // while running: wait
        assert!(matches!(
            decide_backup(
                &stranded,
                &PoolState::Running("generation-3".into()),
                now,
                None
            ),
            BackupAction::Wait { .. }
        ));
    }

    #[test]
    fn schedule_fires_each_tick_once_and_skips_while_running() {
        let b = with_status(
            kb("  schedule: \"*/10 * * * * *\"\n"),
            BackupPhase::Completed,
            3,
            Some("2026-01-01T00:00:10Z"),
        );
        let now = ts("2026-01-01T00:00:21Z");
        let a = decide_backup(&b, &PoolState::Idle, now, None);
        assert_eq!(
            a,
            BackupAction::Start {
                key: "20260101T000020.000Z".into(),
                scheduled: Some(ts("2026-01-01T00:00:20Z")),
                trigger: None,
                resumed: false,
            }
        );
        // the same decision again (stale cache, second replica) yields the same key
        assert_eq!(decide_backup(&b, &PoolState::Idle, now, None), a);
        // once lastScheduleTime records the tick, nothing is due until the next one
        let after = with_status(
            kb("  schedule: \"*/10 * * * * *\"\n"),
            BackupPhase::Running,
            3,
            Some("2026-01-01T00:00:20Z"),
        );
        let finished = with_status(
            kb("  schedule: \"*/10 * * * * *\"\n"),
            BackupPhase::Completed,
            3,
            Some("2026-01-01T00:00:20Z"),
        );
        for (b, pool) in [
            (&finished, PoolState::Idle),
            (
                &finished,
                PoolState::Finished("20260101T000020.000Z".into()),
            ),
        ] {
            assert!(
                matches!(
                    decide_backup(b, &pool, now, None),
                    BackupAction::Wait { .. }
                ),
                "{pool:?}"
            );
        }
        match decide_backup(&finished, &PoolState::Idle, now, None) {
            BackupAction::Wait {
                requeue_after: Some(d),
                next_tick,
            } => {
                assert_eq!(next_tick, Some(ts("2026-01-01T00:00:30Z")));
                assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
        // a tick while a run is going is skipped (Forbid)
        let later = ts("2026-01-01T00:00:31Z");
        assert_eq!(
            decide_backup(&after, &PoolState::Running("x".into()), later, None),
            BackupAction::Skip {
                tick: ts("2026-01-01T00:00:30Z"),
                missed: 0
            }
        );
        // the operator restarted during the 00:20 run: that run goes on at once (same tick,
        // so the same run id), even when the next tick is already due; a Retried Event follows
        assert_eq!(
            decide_backup(&after, &PoolState::Idle, later, None),
            BackupAction::Start {
                key: "resume-20260101T000020.000Z".into(),
                scheduled: Some(ts("2026-01-01T00:00:20Z")),
                trigger: None,
                resumed: true,
            }
        );
        // suspended: no new runs
        let suspended = with_status(
            kb("  schedule: \"*/10 * * * * *\"\n  suspend: true\n"),
            BackupPhase::Completed,
            3,
            Some("2026-01-01T00:00:10Z"),
        );
        assert!(matches!(
            decide_backup(&suspended, &PoolState::Idle, now, None),
            BackupAction::Wait {
                requeue_after: None,
                ..
            }
        ));
    }

    #[test]
    fn a_spec_the_api_server_let_through_is_still_validated() {
        let mut b = kb("");
        b.spec.kafka_cluster.bootstrap_servers = vec!["no-port".into()];
        match decide_backup(&b, &PoolState::Idle, ts("2026-01-01T00:00:00Z"), None) {
            BackupAction::Invalid { field, message } => {
                assert!(
                    field.starts_with("spec.kafkaCluster.bootstrapServers"),
                    "{field}"
                );
                assert!(message.contains("no-port"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restore_runs_once_per_generation() {
        use crate::api::{KafkaRestore, KafkaRestoreStatus, RestorePhase};
        let y = "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata:\n  name: r\nspec:\n  backupRef:\n    name: b\n  kafkaCluster:\n    bootstrapServers: [\"k:9092\"]\n";
        let Document::Restore(mut r) = load_and_validate(y, "t").unwrap().remove(0) else {
            unreachable!()
        };
        r.metadata.generation = Some(1);
        assert_eq!(
            decide_restore(&r, &PoolState::Idle),
            RestoreAction::Start {
                key: "generation-1".into(),
                resumed: false,
            }
        );
        assert!(matches!(
            decide_restore(&r, &PoolState::Running("generation-1".into())),
            RestoreAction::Wait {
                requeue_after: Some(_)
            }
        ));
        // left Running by a restart: started again, resuming from the journal
        let mut running = KafkaRestoreStatus {
            phase: Some(RestorePhase::Running),
            ..Default::default()
        };
        running.common.observed_generation = Some(1);
        r.status = Some(running);
        assert_eq!(
            decide_restore(&r, &PoolState::Idle),
            RestoreAction::Start {
                key: "generation-1".into(),
                resumed: true,
            }
        );
        // left Pending (waiting for its backup) by a restart: a new start (Started, not
        // Retried): nothing of the restore ran yet
        let mut pending = KafkaRestoreStatus {
            phase: Some(RestorePhase::Pending),
            ..Default::default()
        };
        pending.common.observed_generation = Some(1);
        let mut left_pending = r.clone();
        left_pending.status = Some(pending);
        assert_eq!(
            decide_restore(&left_pending, &PoolState::Idle),
            RestoreAction::Start {
                key: "generation-1".into(),
                resumed: false,
            }
        );
        // its task waits for the backup: no live progress, a slow safety-net requeue only
        assert_eq!(
            decide_restore(&left_pending, &PoolState::Running("generation-1".into())),
            RestoreAction::Waiting {
                requeue_after: WAITING_REQUEUE
            }
        );
        // finished here, the cache not yet updated: wait, no second run
        assert!(matches!(
            decide_restore(&r, &PoolState::Finished("generation-1".into())),
            RestoreAction::Wait {
                requeue_after: Some(_)
            }
        ));
        let mut st = KafkaRestoreStatus {
            phase: Some(RestorePhase::Completed),
            ..Default::default()
        };
        st.common.observed_generation = Some(1);
        r.status = Some(st);
        assert_eq!(
            decide_restore(&r, &PoolState::Idle),
            RestoreAction::Wait {
                requeue_after: None
            }
        );
        r.metadata.generation = Some(2);
        assert!(matches!(
            decide_restore(&r, &PoolState::Idle),
            RestoreAction::Start { .. }
        ));
        let _: Option<KafkaRestore> = None;
    }

    #[test]
    fn run_now_annotation_triggers_once_and_deletion_finalizes() {
        let mut b = with_status(
            kb("  schedule: \"0 0 * * * * *\"\n"),
            BackupPhase::Completed,
            3,
            Some("2026-01-01T00:00:00Z"),
        );
        b.metadata.annotations = Some([(RUN_NOW_ANNOTATION.to_string(), "a1".to_string())].into());
        let now = ts("2026-01-01T00:10:00Z");
        assert_eq!(
            decide_backup(&b, &PoolState::Idle, now, None),
            BackupAction::Start {
                key: "trigger-a1".into(),
                scheduled: None,
                trigger: Some("a1".into()),
                resumed: false,
            }
        );
        assert!(matches!(
            decide_backup(&b, &PoolState::Idle, now, Some("a1")),
            BackupAction::Wait { .. }
        ));
        b.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(
            decide_backup(&b, &PoolState::Running("x".into()), now, None),
            BackupAction::Finalize
        );
    }

    #[test]
    fn a_restore_waits_for_a_backup_that_can_still_complete_and_fails_when_none_can() {
        let wait = |kb: Option<&KafkaBackup>| await_backup(kb, "b", "ns");
        let missing = wait(None).unwrap();
        assert!(
            missing.contains("spec.backupRef.name") && missing.contains("\"b\" in namespace ns"),
            "{missing}"
        );
        assert!(wait(Some(&kb(""))).unwrap().contains("not started"));
        let running = with_status(kb(""), BackupPhase::Running, 3, None);
        assert!(wait(Some(&running)).unwrap().contains("Running"));
        let err = wait(Some(&kb("  suspend: true\n"))).unwrap_err();
        assert!(err.contains("spec.suspend: false"), "{err}");
        // a one-off run that failed for this generation will not be followed by another
        let failed = with_status(kb(""), BackupPhase::Failed, 3, None);
        assert!(wait(Some(&failed)).unwrap_err().contains("failed"));
        // ... but an edit (a new generation, not yet observed) or a schedule brings one
        assert!(wait(Some(&with_status(kb(""), BackupPhase::Failed, 2, None))).is_ok());
        let scheduled = with_status(
            kb("  schedule: \"0 * * * *\"\n"),
            BackupPhase::Failed,
            3,
            None,
        );
        assert!(wait(Some(&scheduled)).is_ok());
    }
}
