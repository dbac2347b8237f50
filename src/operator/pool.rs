//! The executor pool owned by the operator: long work runs here, never inside `reconcile()`.
//! One slot per resource; a slot remembers the run key it was started for, so the same
//! decision repeated (requeue, stale cache) never starts a second run.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::decide::PoolState;
use crate::exec::{Cancel, Progress};

/// `namespace/name` of a resource, with its kind.
pub type ObjectKey = (String, String, String);

struct Slot {
    key: String,
    cancel: watch::Sender<bool>,
    handle: JoinHandle<()>,
    progress: Arc<Progress>,
    /// When live progress was last written to the resource's status.
    reported: Option<std::time::Instant>,
}

/// Least time between two live-progress status writes of one resource. Each write is a watch
/// event that triggers another reconcile; without this, a running resource would be
/// reconciled and written in a tight loop.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs in flight, by resource.
#[derive(Default, Clone)]
pub struct Pool {
    slots: Arc<Mutex<HashMap<ObjectKey, Slot>>>,
}

impl Pool {
    /// What the resource's slot is doing. A finished task is remembered (until the next start
    /// or a cancel) so a cache that has not yet seen its final status is recognised as stale.
    pub fn state(&self, obj: &ObjectKey) -> PoolState {
        match self.slots.lock().unwrap().get(obj) {
            Some(s) if !s.handle.is_finished() => PoolState::Running(s.key.clone()),
            Some(s) => PoolState::Finished(s.key.clone()),
            None => PoolState::Idle,
        }
    }

    /// Starts `work` for `obj` under run key `key` unless a task is already running for the
    /// resource. Returns false when it did not start.
    pub fn start<F, Fut>(&self, obj: ObjectKey, key: String, work: F) -> bool
    where
        F: FnOnce(Cancel, Arc<Progress>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut slots = self.slots.lock().unwrap();
        if slots.get(&obj).is_some_and(|s| !s.handle.is_finished()) {
            return false;
        }
        let (tx, cancel) = Cancel::new();
        let progress = Progress::new(None);
        let handle = tokio::spawn(work(cancel, progress.clone()));
        slots.insert(
            obj,
            Slot {
                key,
                cancel: tx,
                handle,
                progress,
                reported: None,
            },
        );
        true
    }

    /// Live counters of the resource's run.
    pub fn progress(&self, obj: &ObjectKey) -> Option<Arc<Progress>> {
        self.slots
            .lock()
            .unwrap()
            .get(obj)
            .filter(|s| !s.handle.is_finished())
            .map(|s| s.progress.clone())
    }

    /// The live counters of the resource's run when its progress is due to be written to
    /// status (none written yet, or the last one at least `every` ago); marks it written.
    pub fn progress_due(
        &self,
        obj: &ObjectKey,
        every: std::time::Duration,
    ) -> Option<Arc<Progress>> {
        let mut slots = self.slots.lock().unwrap();
        let s = slots.get_mut(obj).filter(|s| !s.handle.is_finished())?;
        if s.reported.is_some_and(|t| t.elapsed() < every) {
            return None;
        }
        s.reported = Some(std::time::Instant::now());
        Some(s.progress.clone())
    }

    /// Cancels the resource's run and waits for it to stop (the run saves its checkpoint).
    pub async fn cancel(&self, obj: &ObjectKey) {
        let slot = self.slots.lock().unwrap().remove(obj);
        if let Some(s) = slot {
            let _ = s.cancel.send(true);
            let _ = s.handle.await;
        }
    }

    /// Cancels every run (leader lease lost, shutdown) and waits for all of them.
    pub async fn cancel_all(&self) {
        let slots: Vec<Slot> = self.slots.lock().unwrap().drain().map(|(_, s)| s).collect();
        for s in &slots {
            let _ = s.cancel.send(true);
        }
        for s in slots {
            let _ = s.handle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_run_per_resource_and_cancel_waits_for_the_task() {
        let pool = Pool::default();
        let obj: ObjectKey = ("KafkaBackup".into(), "ns".into(), "b".into());
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stopped.clone();
        assert!(
            pool.start(obj.clone(), "k1".into(), move |cancel, _| async move {
                cancel.cancelled().await;
                s2.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        );
        assert_eq!(pool.state(&obj), PoolState::Running("k1".into()));
        let every = std::time::Duration::from_secs(60);
        assert!(
            pool.progress_due(&obj, every).is_some(),
            "first report is due"
        );
        assert!(
            pool.progress_due(&obj, every).is_none(),
            "a second report within the interval is not"
        );
        assert!(pool.progress_due(&obj, std::time::Duration::ZERO).is_some());
        assert!(
            !pool.start(obj.clone(), "k2".into(), |_, _| async {}),
            "a second run for the same resource is refused"
        );
        pool.cancel(&obj).await;
        assert!(
            stopped.load(std::sync::atomic::Ordering::SeqCst),
            "cancel waited for the task to see the signal"
        );
        assert_eq!(pool.state(&obj), PoolState::Idle);
        assert!(pool.start(obj.clone(), "k3".into(), |_, _| async {}));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            pool.state(&obj),
            PoolState::Finished("k3".into()),
            "a finished run is remembered"
        );
    }
}
