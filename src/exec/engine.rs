//! The generic step engine: bounded concurrency, shared byte and record rate limits,
//! cancellation and progress counters.
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, watch};

use super::ExecError;

/// A cancellation signal shared by every task of a run.
#[derive(Clone)]
pub struct Cancel {
    rx: watch::Receiver<bool>,
}

impl Cancel {
    /// A signal and the sender that fires it.
    pub fn new() -> (watch::Sender<bool>, Cancel) {
        let (tx, rx) = watch::channel(false);
        (tx, Cancel { rx })
    }
    /// A signal that never fires.
    pub fn never() -> Cancel {
        let (tx, c) = Cancel::new();
        std::mem::forget(tx);
        c
    }
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }
    /// Resolves when cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Something that happened during a run, for logs, Kubernetes Events and status.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StepStarted {
        step: String,
    },
    StepDone {
        step: String,
        records: u64,
        bytes: u64,
    },
    /// A planned range could not be read (retention).
    Gap {
        step: String,
        from: i64,
        to: i64,
    },
    SegmentWritten {
        path: String,
        bytes: u64,
    },
    CheckpointWritten {
        path: String,
    },
    /// No record, byte or step finished for `secs` seconds (a stalled broker or store).
    Stalled {
        secs: u64,
        step: String,
    },
    /// Progress again after a [`Event::Stalled`], `secs` seconds after the last progress.
    Resumed {
        secs: u64,
    },
}

pub use crate::kafka::config::{STALL_WARNING_SECS, stall_warning_after};

/// Live figures of one shard of a sharded run (`execution.mode: job`): the coordinator fills
/// records and bytes from the shard's checkpoint in the repository, the launcher the phase
/// and what it knows of the shard's workload (a Kubernetes Job's name, a failure's reason).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardLive {
    /// 0-based shard index.
    pub index: u32,
    /// Partition steps the shard backs up.
    pub partitions: u32,
    /// Pending (not started), Running, Succeeded (its result is written) or Failed.
    pub phase: &'static str,
    /// Records and raw bytes its checkpoint holds (done), and its plan's estimates.
    pub records: u64,
    pub bytes: u64,
    pub records_planned: u64,
    pub bytes_planned: u64,
    /// Where it runs (the Kubernetes Job's name), when the launcher says.
    pub workload: Option<String>,
    /// The launcher's last word on it: a Pod's waiting reason, a failed attempt, why it failed.
    pub message: Option<String>,
}

/// Live counters of a run. Records and bytes are Kafka records and raw batch bytes.
pub struct Progress {
    pub records_planned: AtomicU64,
    pub bytes_planned: AtomicU64,
    pub records_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub steps_total: AtomicU64,
    pub steps_done: AtomicU64,
    pub current: Mutex<String>,
    pub started: Instant,
    /// The shards of a sharded run, by index (empty otherwise).
    pub shards: Mutex<Vec<ShardLive>>,
    events: Option<mpsc::UnboundedSender<Event>>,
}

impl Progress {
    /// New counters; `events` receives every [`Event`] when given.
    pub fn new(events: Option<mpsc::UnboundedSender<Event>>) -> Arc<Progress> {
        Arc::new(Progress {
            records_planned: AtomicU64::new(0),
            bytes_planned: AtomicU64::new(0),
            records_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            steps_total: AtomicU64::new(0),
            steps_done: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            started: Instant::now(),
            shards: Mutex::new(Vec::new()),
            events,
        })
    }
    pub fn add(&self, records: u64, bytes: u64) {
        self.records_done.fetch_add(records, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn emit(&self, e: Event) {
        if let Event::StepStarted { step } = &e {
            *self.current.lock().unwrap() = step.clone();
        }
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }
    /// Changes shard `index` with `f` (nothing when the run has no such shard).
    pub fn update_shard(&self, index: u32, f: impl FnOnce(&mut ShardLive)) {
        if let Some(s) = self.shards.lock().unwrap().get_mut(index as usize) {
            f(s)
        }
    }

    /// (records, bytes, seconds) so far.
    pub fn snapshot(&self) -> (u64, u64, f64) {
        (
            self.records_done.load(Ordering::Relaxed),
            self.bytes_done.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64(),
        )
    }
}

/// Shared byte and record rate limits (`rateLimiting.bytesPerSec` / `recordsPerSec`); a
/// limit of None is unlimited. Token buckets hold one second of burst.
pub struct Limits {
    bytes: Option<(DefaultDirectRateLimiter, u32)>,
    records: Option<(DefaultDirectRateLimiter, u32)>,
}

impl Limits {
    pub fn new(bytes_per_sec: Option<u64>, records_per_sec: Option<u64>) -> Limits {
        let mk = |n: Option<u64>| {
            n.and_then(|n| NonZeroU32::new(n.min(u32::MAX as u64) as u32))
                .map(|n| (RateLimiter::direct(Quota::per_second(n)), n.get()))
        };
        Limits {
            bytes: mk(bytes_per_sec),
            records: mk(records_per_sec),
        }
    }
    /// Waits until `bytes` and `records` may pass. An amount above one second's burst (a
    /// record batch larger than `bytesPerSec`) is taken one burst at a time, so the average
    /// rate holds whatever the batch size.
    pub async fn take(&self, bytes: u64, records: u64) {
        for (lim, amount) in [(&self.bytes, bytes), (&self.records, records)] {
            if let Some((l, burst)) = lim {
                let mut left = amount.max(1);
                while left > 0 {
                    let n = left.min(*burst as u64);
                    let _ = l.until_n_ready(NonZeroU32::new(n as u32).unwrap()).await;
                    left -= n;
                }
            }
        }
    }
}

/// Shared context of a run's tasks.
#[derive(Clone)]
pub struct ExecContext {
    pub progress: Arc<Progress>,
    pub cancel: Cancel,
    pub limits: Arc<Limits>,
    /// Wall clock, epoch ms (injected so tests can fix it).
    pub now_ms: fn() -> i64,
    /// Time without progress after which the run warns, and warns again ([`Event::Stalled`]).
    pub stall_after: std::time::Duration,
    /// The repository's key-encryption key (`storage.encryption`); None: plaintext.
    pub keyring: Option<Arc<crate::format::keyring::Keyring>>,
    /// The data keys a read of encrypted segments uses, unwrapped before it starts
    /// ([`crate::exec::keys::load_run_keys`]); empty for a plaintext repository.
    pub run_keys: Arc<crate::format::seal::RunKeys>,
}

impl ExecContext {
    /// A context on the system clock with rate limits in bytes/s and records/s (None:
    /// unlimited).
    pub fn new(
        progress: Arc<Progress>,
        cancel: Cancel,
        bytes_per_sec: Option<u64>,
        records_per_sec: Option<u64>,
    ) -> ExecContext {
        ExecContext {
            progress,
            cancel,
            limits: Arc::new(Limits::new(bytes_per_sec, records_per_sec)),
            now_ms: system_now_ms,
            stall_after: stall_warning_after(),
            keyring: None,
            run_keys: Default::default(),
        }
    }

    /// This context with the repository's keyring (`storage.encryption`).
    pub fn with_keyring(
        mut self,
        keyring: Option<Arc<crate::format::keyring::Keyring>>,
    ) -> ExecContext {
        self.keyring = keyring;
        self
    }

    /// This context with the unwrapped data keys of the runs a read needs.
    pub fn with_run_keys(mut self, keys: crate::format::seal::RunKeys) -> ExecContext {
        self.run_keys = Arc::new(keys);
        self
    }
}

/// The system clock as epoch ms.
pub fn system_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Warns when no record, byte or step finishes for `ctx.stall_after`, again every
/// `stall_after` while it lasts, and says when progress resumes. Never returns.
async fn watch_stalls(ctx: &ExecContext) {
    let p = &ctx.progress;
    let sample = || {
        (
            p.records_done.load(Ordering::Relaxed),
            p.bytes_done.load(Ordering::Relaxed),
            p.steps_done.load(Ordering::Relaxed),
        )
    };
    let tick = (ctx.stall_after / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(5),
    );
    let mut last = sample();
    let mut since = Instant::now();
    let mut warned_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let now = sample();
        if now != last {
            if warned_at.is_some() {
                let secs = since.elapsed().as_secs();
                tracing::info!(stalled_secs = secs, "progress resumed");
                p.emit(Event::Resumed { secs });
            }
            last = now;
            since = Instant::now();
            warned_at = None;
            continue;
        }
        let due = match warned_at {
            None => since.elapsed() >= ctx.stall_after,
            Some(w) => w.elapsed() >= ctx.stall_after,
        };
        if due {
            let secs = since.elapsed().as_secs();
            let step = p.current.lock().unwrap().clone();
            tracing::warn!(
                stalled_secs = secs,
                %step,
                records = now.0,
                steps_done = now.2,
                "no progress for {secs} s (a stalled broker or object store?); still trying, within the request timeouts and retries"
            );
            p.emit(Event::Stalled { secs, step });
            warned_at = Some(Instant::now());
        }
    }
}

/// Runs `f` over `steps`, at most `concurrency` at a time, and returns every result in step
/// order. Steps not yet started when the run is cancelled return [`ExecError::Cancelled`].
/// While it runs, a stall watch warns when nothing progresses for `ctx.stall_after`.
pub async fn run_steps<S, T, F, Fut>(
    steps: Vec<S>,
    concurrency: usize,
    ctx: &ExecContext,
    f: F,
) -> Vec<Result<T, ExecError>>
where
    F: Fn(S) -> Fut,
    Fut: std::future::Future<Output = Result<T, ExecError>>,
{
    ctx.progress
        .steps_total
        .fetch_add(steps.len() as u64, Ordering::Relaxed);
    let f = &f;
    let all = futures::stream::iter(steps.into_iter().enumerate())
        .map(|(i, s)| async move {
            if ctx.cancel.is_cancelled() {
                return (i, Err(ExecError::Cancelled));
            }
            let r = f(s).await;
            ctx.progress.steps_done.fetch_add(1, Ordering::Relaxed);
            (i, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<(usize, Result<T, ExecError>)>>();
    let mut out = tokio::select! {
        out = all => out,
        _ = watch_stalls(ctx) => unreachable!("the stall watch never returns"),
    };
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrency_is_bounded_and_results_keep_step_order() {
        let ctx = ExecContext {
            progress: Progress::new(None),
            cancel: Cancel::never(),
            limits: Arc::new(Limits::new(None, None)),
            now_ms: system_now_ms,
            stall_after: std::time::Duration::from_millis(200),
            keyring: None,
            run_keys: Default::default(),
        };
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let r = run_steps((0..20u64).collect(), 3, &ctx, |i| {
            let running = running.clone();
            let peak = peak.clone();
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5 * (20 - i))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<u64, ExecError>(i * 2)
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(
            r.into_iter().map(|x| x.unwrap()).collect::<Vec<_>>(),
            (0..20).map(|i| i * 2).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_step_that_stops_progressing_is_reported_then_its_resumption() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ctx = ExecContext {
            progress: Progress::new(Some(tx)),
            cancel: Cancel::never(),
            limits: Arc::new(Limits::new(None, None)),
            now_ms: system_now_ms,
            stall_after: std::time::Duration::from_millis(300),
            keyring: None,
            run_keys: Default::default(),
        };
        let p = ctx.progress.clone();
        run_steps(vec![()], 1, &ctx, |_| {
            let p = p.clone();
            async move {
                p.add(1, 10);
                tokio::time::sleep(std::time::Duration::from_millis(800)).await;
                p.add(1, 10);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                Ok::<(), ExecError>(())
            }
        })
        .await;
        let mut events = vec![];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        let stalls = events
            .iter()
            .filter(|e| matches!(e, Event::Stalled { .. }))
            .count();
        assert!(
            (1..=2).contains(&stalls),
            "one warning per 300 ms of an 800 ms stall: {events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(e, Event::Resumed { .. })),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn rate_limit_paces_bytes() {
        let l = Limits::new(Some(1000), None);
        let t = Instant::now();
        for _ in 0..3 {
            l.take(1000, 1).await;
        }
        // the first second's burst passes at once, the next two wait ~1 s each
        assert!(t.elapsed().as_millis() >= 1800, "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_rate_waits_its_full_share() {
        let l = Limits::new(Some(1000), None);
        let t = Instant::now();
        l.take(3000, 1).await; // 3 s worth: the burst at once, then two more seconds
        assert!(t.elapsed().as_millis() >= 1800, "{:?}", t.elapsed());
    }
}
