//! A circuit breaker for broker requests (`circuitBreaker` of KafkaBackup and KafkaRestore).
//!
//! Every attempt [`super::KafkaClient::with_retry`] makes passes through the client's breaker:
//!
//! - **Closed** (normal): attempts go through. A transient failure (connection lost, refused,
//!   timed out, a retriable broker error) counts one; an answer of any other kind resets the
//!   count. At `failureThreshold` consecutive failures the breaker opens.
//! - **Open**: no request is sent for `resetTimeoutSecs`. Attempts wait (they do not fail) and
//!   a warning says so once per opening; a batch run keeps its progress instead of dying on a
//!   broker restart.
//! - **Half-open**: after the pause attempts go through again. `successThreshold` consecutive
//!   successes close the breaker; one failure opens it again for another pause.
//!
//! Each attempt is bounded by `operationTimeoutMs` ([`super::KafkaError::OperationTimeout`],
//! transient). Attempts stay bounded by the client's retry budget (`retries`, default 6), so a
//! broker that never comes back fails the run after at most `retries` pauses, with the last
//! error. Produce requests are not retried (an unknown outcome could duplicate records) and do
//! not pass through the breaker: a failed produce fails its partition at once and the restore
//! journal continues it on the next run.
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Resolved `circuitBreaker` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker (`failureThreshold`, >= 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open (`resetTimeoutSecs`).
    pub reset_timeout: Duration,
    /// Consecutive successes in half-open that close it (`successThreshold`, >= 1).
    pub success_threshold: u32,
    /// Bound of one attempt (`operationTimeoutMs`).
    pub op_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32 },
}

/// The breaker's state, shared by every clone of a client.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: Mutex<State>,
    trips: std::sync::atomic::AtomicU64,
}

/// What an attempt's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer answered (a success, or an error that is the peer's considered answer).
    Answered,
    /// The peer did not answer usefully: transport failure, timeout, retriable broker error.
    Failed,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: Mutex::new(State::Closed { failures: 0 }),
            trips: Default::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> BreakerConfig {
        self.cfg
    }

    /// How many times the breaker has opened.
    pub fn trips(&self) -> u64 {
        self.trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True while the breaker is open (requests paused).
    pub fn is_open(&self) -> bool {
        matches!(*self.state.lock().unwrap(), State::Open { until } if until > Instant::now())
    }

    /// Waits while the breaker is open; returns when an attempt may be sent.
    pub async fn admit(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap();
                match *s {
                    State::Open { until } => {
                        let now = Instant::now();
                        if now >= until {
                            *s = State::HalfOpen { successes: 0 };
                            tracing::info!(
                                "circuit breaker half-open: trying broker requests again"
                            );
                            None
                        } else {
                            Some(until - now)
                        }
                    }
                    _ => None,
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => return,
            }
        }
    }

    /// Records an attempt's outcome; `what` and `error` name it in the warning when the
    /// breaker opens.
    pub fn record(&self, outcome: Outcome, what: &str, error: &dyn std::fmt::Display) {
        let mut s = self.state.lock().unwrap();
        let open = |s: &mut State, why: &str| {
            *s = State::Open {
                until: Instant::now() + self.cfg.reset_timeout,
            };
            self.trips
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                request = what,
                error = %error,
                pause_secs = self.cfg.reset_timeout.as_secs(),
                "circuit breaker open ({why}): no broker request for {} s (circuitBreaker.resetTimeoutSecs)",
                self.cfg.reset_timeout.as_secs()
            );
        };
        match (*s, outcome) {
            (State::Closed { .. }, Outcome::Answered) => *s = State::Closed { failures: 0 },
            (State::Closed { failures }, Outcome::Failed) => {
                let failures = failures + 1;
                if failures >= self.cfg.failure_threshold {
                    open(
                        &mut s,
                        &format!(
                            "{failures} consecutive failures, circuitBreaker.failureThreshold"
                        ),
                    );
                } else {
                    *s = State::Closed { failures };
                }
            }
            (State::HalfOpen { successes }, Outcome::Answered) => {
                let successes = successes + 1;
                if successes >= self.cfg.success_threshold {
                    *s = State::Closed { failures: 0 };
                    tracing::info!("circuit breaker closed: broker requests answered again");
                } else {
                    *s = State::HalfOpen { successes };
                }
            }
            (State::HalfOpen { .. }, Outcome::Failed) => open(&mut s, "a trial request failed"),
            // An attempt admitted before the breaker opened: its outcome changes nothing.
            (State::Open { .. }, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(reset_ms: u64) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            reset_timeout: Duration::from_millis(reset_ms),
            success_threshold: 2,
            op_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn opens_after_the_threshold_pauses_then_closes_after_successes() {
        let b = Breaker::new(cfg(300));
        for _ in 0..2 {
            b.record(Outcome::Failed, "Fetch", &"reset");
        }
        assert!(!b.is_open(), "2 < failureThreshold 3");
        b.record(Outcome::Answered, "Fetch", &"ok");
        for _ in 0..2 {
            b.record(Outcome::Failed, "Fetch", &"reset");
        }
        assert!(!b.is_open(), "a success reset the count");
        b.record(Outcome::Failed, "Fetch", &"reset");
        assert!(b.is_open());
        assert_eq!(b.trips(), 1);
        let t = Instant::now();
        b.admit().await;
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        // half-open: one failure reopens
        b.record(Outcome::Failed, "Fetch", &"reset");
        assert!(b.is_open());
        assert_eq!(b.trips(), 2);
        b.admit().await;
        b.record(Outcome::Answered, "Fetch", &"ok");
        b.record(Outcome::Answered, "Fetch", &"ok");
        // closed again: it takes the full threshold to open
        b.record(Outcome::Failed, "Fetch", &"reset");
        b.record(Outcome::Failed, "Fetch", &"reset");
        assert!(!b.is_open());
    }
}
