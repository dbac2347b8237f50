//! Run-level retries. A run that fails for a transient reason (a broker or the storage
//! unreachable or answering with a retriable error for longer than the client's own request
//! retries) is attempted again, up to [`RUN_ATTEMPTS`] times, with exponential backoff and a
//! Warning `Retried` Event each time. A backup retry resumes from its checkpoint and a restore
//! retry from its journal, so nothing is fetched or produced twice. Invalid specs, refused
//! plans and bad data fail at once.
use std::time::Duration;

use backon::BackoffBuilder;

use crate::exec::{Cancel, ExecError};
use crate::flow::FlowError;

/// Attempts per run, the first included.
pub const RUN_ATTEMPTS: usize = 3;

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub message: String,
    pub transient: bool,
}

impl RunFailure {
    /// A failure no retry can fix (its message names the field and the fix).
    pub fn permanent(message: impl Into<String>) -> RunFailure {
        RunFailure {
            message: message.into(),
            transient: false,
        }
    }
}

impl From<FlowError> for RunFailure {
    fn from(e: FlowError) -> Self {
        RunFailure {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<ExecError> for RunFailure {
    fn from(e: ExecError) -> Self {
        RunFailure {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<kube::Error> for RunFailure {
    /// Reading Secrets or the referenced KafkaBackup failed: the API server may come back.
    fn from(e: kube::Error) -> Self {
        RunFailure {
            transient: !matches!(&e, kube::Error::Api(s) if s.code == 403 || s.code == 404),
            message: format!("Kubernetes API: {e}"),
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
/// waiting between attempts), fails permanently, or `delays` runs out. Before each new
/// attempt `on_retry(attempt_number, message)` is awaited (the caller publishes the Event).
/// The error names how many attempts were made when more than one was.
pub async fn retry_run<T, F, Fut, R, RFut>(
    cancel: &Cancel,
    delays: impl Iterator<Item = Duration>,
    mut attempt: F,
    mut on_retry: R,
) -> Result<Option<T>, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, RunFailure>>,
    R: FnMut(u32, String) -> RFut,
    RFut: std::future::Future<Output = ()>,
{
    let mut delays = delays;
    let mut n: u32 = 1;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(f) if f.transient => match delays.next() {
                Some(d) => {
                    tracing::warn!(attempt = n, error = %f.message, delay_ms = d.as_millis() as u64, "run failed; retrying");
                    on_retry(
                        n + 1,
                        format!(
                            "attempt {n} failed ({}); attempt {} in {} s resumes where it stopped",
                            f.message,
                            n + 1,
                            d.as_secs()
                        ),
                    )
                    .await;
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = cancel.cancelled() => return Ok(None),
                    }
                    n += 1;
                }
                None if n > 1 => return Err(format!("{} (gave up after {n} attempts)", f.message)),
                None => return Err(f.message),
            },
            Err(f) => return Err(f.message),
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
            transient,
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
            |n, msg| {
                let r = retried.clone();
                async move { r.lock().unwrap().push(format!("{n}: {msg}")) }
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
