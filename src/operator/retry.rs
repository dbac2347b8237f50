//! Run-level retries. A run that fails for a transient reason (a broker or the storage
//! unreachable or answering with a retriable error for longer than the client's own request
//! retries) is attempted again, up to [`RUN_ATTEMPTS`] times, with exponential backoff and a
//! Warning `Retried` Event each time. A backup retry resumes from its checkpoint and a restore
//! retry from its journal, so nothing is fetched or produced twice. Invalid specs, refused
//! plans and bad data fail at once. A run whose input does not exist yet (a restore whose
//! KafkaBackup has no complete run: both applied together, as GitOps does) waits instead,
//! checking again ([`wait_pause`]: every [`WAIT_EVERY`] for its first minutes, then less
//! often, up to [`WAIT_MAX`]) without using up attempts.
use std::time::Duration;

use backon::BackoffBuilder;

use crate::exec::{Cancel, ExecError};
use crate::kinds::KindError;

/// Attempts per run, the first included.
pub const RUN_ATTEMPTS: usize = 3;

/// How often a waiting run checks again for its input, for its first [`WAIT_FAST_CHECKS`]
/// checks (a restore applied together with its backup starts soon after the backup's run).
pub const WAIT_EVERY: Duration = Duration::from_secs(15);
/// Checks at [`WAIT_EVERY`] before the pause doubles.
pub const WAIT_FAST_CHECKS: u32 = 8;
/// The longest pause between two checks of a waiting run (each check is a GET of the
/// KafkaBackup and a listing of its repository: 1,000 waiting restores at 15 s made ~67 of
/// each per second, measured in bench/operator_scale.sh).
pub const WAIT_MAX: Duration = Duration::from_secs(120);

/// The pause after the `n`th check (0-based) that found the input missing: [`WAIT_EVERY`]
/// for the first [`WAIT_FAST_CHECKS`] (2 minutes), then doubling up to [`WAIT_MAX`].
pub fn wait_pause(n: u32) -> Duration {
    let extra = n.saturating_sub(WAIT_FAST_CHECKS - 1).min(8);
    (WAIT_EVERY * 2u32.pow(extra)).min(WAIT_MAX)
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No retry can fix it: the run fails now.
    Permanent,
    /// Another attempt may succeed: retried with backoff, [`RUN_ATTEMPTS`] in all.
    Transient,
    /// An input does not exist yet: checked again ([`wait_pause`]), for as long as it takes
    /// (until the resource is deleted or changed).
    Waiting,
}

/// Why an attempt failed, and what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub message: String,
    pub kind: FailureKind,
}

impl RunFailure {
    /// A failure no retry can fix (its message names the field and the fix).
    pub fn permanent(message: impl Into<String>) -> RunFailure {
        RunFailure {
            message: message.into(),
            kind: FailureKind::Permanent,
        }
    }

    /// The run's input does not exist yet; `message` says what it waits for.
    pub fn waiting(message: impl Into<String>) -> RunFailure {
        RunFailure {
            message: message.into(),
            kind: FailureKind::Waiting,
        }
    }

    /// An attempt that panicked or ended without a result (a bug): category `internal`,
    /// retried like a transient failure (the retry policy decides the next attempt), and the
    /// run fails with this message when the attempts run out.
    pub fn internal(what: &str) -> RunFailure {
        RunFailure {
            message: format!(
                "[internal] the run stopped unexpectedly: {what} (a bug: please report it with the operator's log)"
            ),
            kind: FailureKind::Transient,
        }
    }

    fn kind_of(transient: bool) -> FailureKind {
        if transient {
            FailureKind::Transient
        } else {
            FailureKind::Permanent
        }
    }
}

/// The category of a failed run from its message, as status shows it: the `[category]` the
/// message starts with (every failure from [`KindError`] or [`ExecError`] is written so:
/// input, plan-refused, kafka, storage, internal, groups-not-carried, ...), `kube` for a
/// Kubernetes API error (reading Secrets or a referenced resource), else `input` (the
/// operator's own refusals name a field: a cross-namespace reference, a backup that will
/// never have a complete run).
pub fn failure_category(message: &str) -> &str {
    if let Some(rest) = message.strip_prefix('[')
        && let Some((category, _)) = rest.split_once(']')
        && !category.is_empty()
        && category
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return category;
    }
    if message.starts_with(KUBE_PREFIX) {
        "kube"
    } else {
        "input"
    }
}

/// How a failure to read from the Kubernetes API starts ([`RunFailure`] from `kube::Error`).
const KUBE_PREFIX: &str = "Kubernetes API: ";

/// Why `retry_run` pauses between attempts (the caller publishes it).
#[derive(Debug, Clone, PartialEq)]
pub enum Pause {
    /// Attempt `attempt` (2 or more) comes after a backoff; `message` says why.
    Retry { attempt: u32, message: String },
    /// The run waits for its input; given once per distinct `message`.
    Wait { message: String },
}

impl From<KindError> for RunFailure {
    fn from(e: KindError) -> Self {
        match e {
            KindError::Exec(e) => e.into(),
            e => RunFailure {
                kind: RunFailure::kind_of(e.is_transient()),
                message: format!("[{}] {e}", e.category()),
            },
        }
    }
}

impl From<ExecError> for RunFailure {
    /// A repository held by another writer is waited for (its run ends, or its lock expires
    /// after a crash), using up no attempt.
    fn from(e: ExecError) -> Self {
        if matches!(e, ExecError::Locked(_)) {
            return RunFailure::waiting(e.to_string());
        }
        RunFailure {
            kind: RunFailure::kind_of(e.is_transient()),
            message: format!("[{}] {e}", e.category()),
        }
    }
}

impl From<kube::Error> for RunFailure {
    /// Reading Secrets or the referenced KafkaBackup failed: the API server may come back.
    fn from(e: kube::Error) -> Self {
        RunFailure {
            kind: RunFailure::kind_of(
                !matches!(&e, kube::Error::Api(s) if s.code == 403 || s.code == 404),
            ),
            message: format!("{KUBE_PREFIX}{e}"),
        }
    }
}

/// Delays between attempts: 5 s, then 15 s (x3), with jitter.
pub fn run_backoff() -> impl Iterator<Item = Duration> + Send {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(5))
        .with_factor(3.0)
        .with_max_times(RUN_ATTEMPTS - 1)
        .with_jitter()
        .build()
}

/// Runs `attempt` until it succeeds (`Ok(Some)`), is cancelled (`Ok(None)`, also while
/// paused between attempts), fails permanently, or `delays` runs out. A `Waiting` failure
/// pauses ([`wait_pause`]) and does not count as an attempt. Before each pause `on_pause` is
/// awaited (the caller writes the waiting status and publishes the Event), for a wait only
/// while its message has not been published: `on_pause` returns whether it was (false: not
/// the leader, or the status write failed; the next check tries again, so a waiting run
/// never stays shown as Running). The error names how many attempts were made when more than
/// one was.
pub async fn retry_run<T, F, Fut, R, RFut>(
    cancel: &Cancel,
    delays: impl Iterator<Item = Duration>,
    mut attempt: F,
    mut on_pause: R,
) -> Result<Option<T>, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, RunFailure>>,
    R: FnMut(Pause) -> RFut,
    RFut: std::future::Future<Output = bool>,
{
    let mut delays = delays;
    let mut n: u32 = 1;
    let mut waiting_for: Option<String> = None;
    let mut waits: u32 = 0;
    loop {
        let pause = match attempt().await {
            Ok(v) => return Ok(v),
            Err(f) => match f.kind {
                FailureKind::Permanent => return Err(f.message),
                FailureKind::Waiting => {
                    if waiting_for.as_deref() != Some(f.message.as_str()) {
                        tracing::info!(waiting_for = %f.message, "run waits for its input");
                        waits = 0;
                        let published = on_pause(Pause::Wait {
                            message: f.message.clone(),
                        })
                        .await;
                        waiting_for = published.then_some(f.message);
                    }
                    waits += 1;
                    wait_pause(waits - 1)
                }
                FailureKind::Transient => match delays.next() {
                    Some(d) => {
                        tracing::warn!(attempt = n, error = %f.message, delay_ms = d.as_millis() as u64, "run failed; retrying");
                        let _ = on_pause(Pause::Retry {
                            attempt: n + 1,
                            message: format!(
                                "attempt {n} failed ({}); attempt {} in {} s resumes where it stopped",
                                f.message,
                                n + 1,
                                d.as_secs()
                            ),
                        })
                        .await;
                        n += 1;
                        d
                    }
                    None if n > 1 => {
                        return Err(format!("{} (gave up after {n} attempts)", f.message));
                    }
                    None => return Err(f.message),
                },
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn failure(transient: bool) -> RunFailure {
        RunFailure {
            message: "broker 127.0.0.1:1 unreachable".into(),
            kind: RunFailure::kind_of(transient),
        }
    }

    async fn drive(
        outcomes: Vec<Result<Option<u32>, RunFailure>>,
        cancel: &Cancel,
    ) -> (Result<Option<u32>, String>, usize, Vec<String>) {
        let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
        let calls = Arc::new(Mutex::new(0usize));
        let retried = Arc::new(Mutex::new(Vec::new()));
        let r = retry_run(
            cancel,
            run_backoff(),
            || {
                let (o, c) = (outcomes.clone(), calls.clone());
                async move {
                    *c.lock().unwrap() += 1;
                    o.lock().unwrap().next().unwrap()
                }
            },
            |p| {
                let r = retried.clone();
                async move {
                    r.lock().unwrap().push(match p {
                        Pause::Retry { attempt, message } => format!("{attempt}: {message}"),
                        Pause::Wait { message } => format!("wait: {message}"),
                    });
                    true
                }
            },
        )
        .await;
        let calls = *calls.lock().unwrap();
        let retried = retried.lock().unwrap().clone();
        (r, calls, retried)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_then_succeed() {
        let (r, calls, retried) =
            drive(vec![Err(failure(true)), Ok(Some(7))], &Cancel::never()).await;
        assert_eq!(r, Ok(Some(7)));
        assert_eq!(calls, 2);
        assert_eq!(retried.len(), 1);
        assert!(
            retried[0].starts_with("2: attempt 1 failed (broker"),
            "{retried:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried_and_attempts_are_bounded() {
        let (r, calls, retried) = drive(vec![Err(failure(false))], &Cancel::never()).await;
        assert_eq!(r, Err("broker 127.0.0.1:1 unreachable".into()));
        assert_eq!((calls, retried.len()), (1, 0));

        let (r, calls, retried) = drive(
            vec![Err(failure(true)), Err(failure(true)), Err(failure(true))],
            &Cancel::never(),
        )
        .await;
        assert_eq!(calls, RUN_ATTEMPTS);
        assert_eq!(retried.len(), RUN_ATTEMPTS - 1);
        assert!(r.unwrap_err().ends_with("(gave up after 3 attempts)"));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_during_the_wait_stops_without_another_attempt() {
        let (tx, cancel) = Cancel::new();
        tx.send(true).unwrap();
        let (r, calls, retried) = drive(vec![Err(failure(true)), Ok(Some(1))], &cancel).await;
        assert_eq!(r, Ok(None));
        assert_eq!((calls, retried.len()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_uses_no_attempt_and_is_published_once_per_reason() {
        let wait = |m: &str| Err(RunFailure::waiting(m));
        let started = tokio::time::Instant::now();
        let (r, calls, paused) = drive(
            vec![
                wait("no KafkaBackup yet"),
                wait("no KafkaBackup yet"),
                wait("no complete run yet"),
                wait("no complete run yet"),
                wait("no complete run yet"),
                Err(failure(true)),
                Err(failure(true)),
                Ok(Some(3)),
            ],
            &Cancel::never(),
        )
        .await;
        assert_eq!(r, Ok(Some(3)), "five waits and two retries: {paused:?}");
        assert_eq!(calls, 8);
        assert_eq!(
            paused.iter().filter(|p| p.starts_with("wait: ")).count(),
            2,
            "{paused:?}"
        );
        assert!(
            started.elapsed() >= WAIT_EVERY * 5,
            "{:?}",
            started.elapsed()
        );
        // a waiting run is cancelled during its pause
        let (tx, cancel) = Cancel::new();
        tx.send(true).unwrap();
        let (r, calls, _) = drive(vec![wait("no KafkaBackup yet"), Ok(Some(1))], &cancel).await;
        assert_eq!((r, calls), (Ok(None), 1));
    }

    /// A wait whose status was not written (not the leader, or the write failed) is
    /// published again at the next check, and only until one is written.
    #[tokio::test(start_paused = true)]
    async fn an_unpublished_wait_is_published_again() {
        let calls = Arc::new(Mutex::new(0usize));
        let offered = Arc::new(Mutex::new(0usize));
        let r = retry_run(
            &Cancel::never(),
            run_backoff(),
            || {
                let c = calls.clone();
                async move {
                    let mut c = c.lock().unwrap();
                    *c += 1;
                    if *c < 5 {
                        Err(RunFailure::waiting("no complete run yet"))
                    } else {
                        Ok(Some(1u32))
                    }
                }
            },
            |_| {
                let o = offered.clone();
                async move {
                    let mut o = o.lock().unwrap();
                    *o += 1;
                    *o >= 2 // the first write is refused
                }
            },
        )
        .await;
        assert_eq!(r, Ok(Some(1)));
        assert_eq!(
            *offered.lock().unwrap(),
            2,
            "refused once, then written once"
        );
    }

    #[test]
    fn a_long_wait_checks_less_often() {
        let pauses: Vec<u64> = (0..14).map(|n| wait_pause(n).as_secs()).collect();
        assert_eq!(
            pauses,
            [15, 15, 15, 15, 15, 15, 15, 15, 30, 60, 120, 120, 120, 120]
        );
        assert_eq!(wait_pause(u32::MAX), WAIT_MAX);
    }

    #[test]
    fn a_failure_category_is_the_bracket_its_message_starts_with() {
        let kube = RunFailure::from(kube::Error::Api(Box::new(kube::core::Status::failure(
            "forbidden",
            "Forbidden",
        ))));
        for (m, c) in [
            (
                "[kafka] broker 127.0.0.1:1 unreachable (gave up after 3 attempts)",
                "kafka",
            ),
            ("[plan-refused] the plan cannot be compiled", "plan-refused"),
            ("[internal] the run stopped unexpectedly", "internal"),
            (kube.message.as_str(), "kube"),
            (
                "spec.backupRef.namespace: other is another namespace",
                "input",
            ),
            ("[not a category] x", "input"),
        ] {
            assert_eq!(failure_category(m), c, "{m}");
        }
        let e = ExecError::Cancelled;
        let f = RunFailure::from(KindError::Exec(e));
        assert_eq!(
            failure_category(&f.message),
            ExecError::Cancelled.category()
        );
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let d: Vec<Duration> = run_backoff().collect();
        assert_eq!(d.len(), RUN_ATTEMPTS - 1);
        assert!(
            d[0] >= Duration::from_secs(5) && d[1] >= Duration::from_secs(15),
            "{d:?}"
        );
    }
}
