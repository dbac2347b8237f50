//! Status writes: server-side apply with one field manager, always of the whole status (a
//! field left out of an apply would be dropped), read fresh before each write so a long run
//! never overwrites what a reconcile recorded meanwhile (e.g. a skipped tick). Every write goes
//! through [`write_status`]: fenced (only the leader writes), retried on a conflict or a
//! transient API error, and a write that still fails is logged with the resource and counted
//! (`kbo_status_write_failures_total{kind}`); no caller discards an error unlogged.
use jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::object::HasStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{Condition, ConditionStatus, StatusHeader};

/// A custom resource whose status this operator writes.
pub trait StatusResource:
    Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + Serialize + std::fmt::Debug
{
}
impl<K> StatusResource for K where
    K: Resource<DynamicType = ()>
        + HasStatus
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

/// What status shows of a running run, from its counters ([`crate::exec::Progress`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Records and bytes done so far by this attempt.
    pub records: u64,
    pub bytes: u64,
    /// Records and bytes planned (absent when the plan has no end or does not know).
    pub records_planned: Option<u64>,
    pub bytes_planned: Option<u64>,
    /// Percent of the planned records (else bytes) done, in 0.1 steps, at most 100.
    pub percent: Option<f64>,
    /// Time left at the current throughput, milliseconds.
    pub eta_ms: Option<u64>,
    /// Throughput since the attempt started, records/s and bytes/s.
    pub records_per_sec: f64,
    pub bytes_per_sec: f64,
    /// The step running now (`topic/partition`, or `source -> target` for a restore).
    pub current: Option<String>,
    /// The shards of a sharded run (empty otherwise); `eta_ms` is then the slowest shard's.
    pub shards: Vec<crate::api::ShardStatus>,
}

impl Live {
    /// A snapshot of `p`.
    pub fn of(p: &crate::exec::Progress) -> Live {
        use std::sync::atomic::Ordering;
        let (records, bytes, secs) = p.snapshot();
        let secs = secs.max(1e-3);
        let planned = |v: u64| (v > 0).then_some(v);
        let records_planned = planned(p.records_planned.load(Ordering::Relaxed));
        let bytes_planned = planned(p.bytes_planned.load(Ordering::Relaxed));
        let (done, total, rate) = match (records_planned, bytes_planned) {
            (Some(t), _) => (records, Some(t), records as f64 / secs),
            (None, Some(t)) => (bytes, Some(t), bytes as f64 / secs),
            (None, None) => (0, None, 0.0),
        };
        let eta = |done: u64, total: Option<u64>, rate: f64| {
            total
                .filter(|_| rate > 0.0)
                .map(|t| (t.saturating_sub(done) as f64 / rate * 1000.0) as u64)
        };
        let live_shards = p.shards.lock().unwrap().clone();
        // the run ends with its slowest shard: each running shard's time left at its own rate
        let slowest = (live_shards.iter())
            .filter(|s| s.phase != "Succeeded")
            .filter_map(|s| {
                let (done, total) = match (s.records_planned, s.bytes_planned) {
                    (r, _) if r > 0 => (s.records, r),
                    (_, b) => (s.bytes, b),
                };
                eta(done, (total > 0).then_some(total), done as f64 / secs)
            })
            .max();
        Live {
            records,
            bytes,
            records_planned,
            bytes_planned,
            percent: percent(done, total),
            eta_ms: slowest.or_else(|| eta(done, total, rate)),
            records_per_sec: records as f64 / secs,
            bytes_per_sec: bytes as f64 / secs,
            current: Some(p.current.lock().unwrap().clone()).filter(|c| !c.is_empty()),
            shards: live_shards.iter().map(shard_status).collect(),
        }
    }
}

/// `done` of `total` in percent, 0.1 steps, at most 100; None without a total.
fn percent(done: u64, total: Option<u64>) -> Option<f64> {
    (total.filter(|&t| t > 0))
        .map(|t| ((done as f64 * 1000.0 / t as f64).round() / 10.0).min(100.0))
}

/// `status.shards[]` of one live shard.
fn shard_status(s: &crate::exec::ShardLive) -> crate::api::ShardStatus {
    let (done, total) = match (s.records_planned, s.bytes_planned) {
        (r, _) if r > 0 => (s.records, Some(r)),
        (_, b) => (s.bytes, Some(b)),
    };
    crate::api::ShardStatus {
        index: s.index,
        phase: if s.phase.is_empty() {
            "Pending"
        } else {
            s.phase
        }
        .to_string(),
        partitions: s.partitions,
        records: s.records,
        bytes: s.bytes,
        progress_percent: percent(done, total),
        job: s.workload.clone(),
        message: s.message.clone(),
    }
}

/// The field manager of every status write.
pub const MANAGER: &str = "kafka-backup-operator";

/// How hard a status write tries ([`write_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A decision or a run's record (its start, run id, waiting, outcome): retried up to
    /// [`WRITE_RETRIES`] more times, from [`WRITE_BACKOFF`] doubling, each from a fresh read,
    /// when the API server answers 409 Conflict (a concurrent progress write) or fails
    /// transiently ([`is_transient`]).
    Must,
    /// Live progress and the next tick, which the next reconcile writes again: a 409 Conflict
    /// (a lost race) is no failure, and nothing is retried.
    BestEffort,
}

/// More attempts of a [`Write::Must`] status write after its first.
pub const WRITE_RETRIES: usize = 5;
/// The first pause before a retried status write (doubling: 0.5, 1, 2, 4, 8 s).
pub const WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);

/// True when a status write that failed with `e` may succeed if made again: 409 Conflict,
/// 429, a 5xx answer, or no answer (connection, transport).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The one way the operator writes a status ([`update_status`] with a policy), counted and
/// fenced: only the leader writes (a replica that lost the Lease skips the write, logged: its
/// runs are cancelled and the next leader resumes them); a write that still fails after its
/// retries is logged with the resource and counted in `kbo_status_write_failures_total{kind}`,
/// and its error returned (a reconcile fails and is retried by the controller; a run task
/// has logged it and goes on).
pub async fn write_status<K>(
    ctx: &super::Context,
    api: &Api<K>,
    name: &str,
    how: Write,
    f: impl Fn(&mut K::Status),
) -> Result<(), kube::Error>
where
    K: StatusResource,
    K::Status: Default + Clone + Serialize,
{
    use backon::Retryable;
    let kind = K::kind(&());
    if !*ctx.leader.borrow() {
        tracing::info!(%kind, resource = name, "not the leader: status not written");
        return Ok(());
    }
    let result = match how {
        Write::Must => {
            (|| update_status(api, name, &f))
                .retry(
                    backon::ExponentialBuilder::default()
                        .with_min_delay(WRITE_BACKOFF)
                        .with_max_times(WRITE_RETRIES),
                )
                .when(is_transient)
                .notify(|e, d| {
                    tracing::warn!(%kind, resource = name, error = %e, delay_ms = d.as_millis() as u64, "status write failed; retrying")
                })
                .await
        }
        Write::BestEffort => conflict_ok(update_status(api, name, &f).await),
    };
    if let Err(e) = &result {
        tracing::warn!(%kind, namespace = api.namespace().unwrap_or_default(), resource = name, error = %e, "status write failed");
        ctx.metrics
            .status_write_failures
            .get_or_create(&super::http::KindLabels {
                kind: kind.into_owned(),
            })
            .inc();
    }
    result
}

/// Treats a 409 Conflict as done: for writes that the next reconcile makes again anyway
/// (live progress, the next tick), losing a race is harmless.
pub fn conflict_ok(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!("status write lost a race (409); the next reconcile writes again");
            Ok(())
        }
        other => other,
    }
}

/// Reads `name`'s status, lets `f` change it, and applies the result. Errors: the API
/// server's, including 409 Conflict when the status changed between the read and the write.
pub async fn update_status<K>(
    api: &Api<K>,
    name: &str,
    f: impl FnOnce(&mut K::Status),
) -> Result<(), kube::Error>
where
    K: StatusResource,
    K::Status: Default + Clone + Serialize,
{
    let obj = api.get_status(name).await?;
    let mut status = obj.status().cloned().unwrap_or_default();
    f(&mut status);
    // The resourceVersion read is a precondition: a write that raced another one (a live
    // progress write against a run's final status) fails with 409 instead of undoing it.
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": obj.meta().resource_version},
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Sets condition `type_` (Ready, Progressing, Degraded, Failed), keeping its transition time
/// when the status does not change.
pub fn set_condition(
    header: &mut StatusHeader,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    header.set_condition(
        Condition::new(type_, status)
            .reason(reason)
            .message(message)
            .observed_generation(generation),
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::Live;
    use crate::exec::Progress;
    use std::sync::atomic::Ordering;

    #[test]
    fn live_progress_rounds_percent_and_falls_back_to_bytes_then_to_nothing() {
        let p = Progress::new(None);
        p.records_planned.store(3_000, Ordering::Relaxed);
        p.add(1_000, 4_096);
        *p.current.lock().unwrap() = "orders/2".into();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let l = Live::of(&p);
        assert_eq!(l.percent, Some(33.3), "{l:?}");
        assert_eq!((l.records_planned, l.bytes_planned), (Some(3_000), None));
        // 2000 records left at 1000 records per elapsed time: about twice the elapsed time
        let eta = l.eta_ms.unwrap();
        assert!((30..=1_000).contains(&eta), "{l:?}");
        assert_eq!(l.current.as_deref(), Some("orders/2"));

        let p = Progress::new(None);
        p.bytes_planned.store(8_192, Ordering::Relaxed);
        p.add(10, 8_192 * 2); // done may exceed an estimate: capped at 100
        assert_eq!(Live::of(&p).percent, Some(100.0));

        let p = Progress::new(None); // a continuous run: no plan, no percent, no ETA
        p.add(5, 50);
        let l = Live::of(&p);
        assert_eq!((l.percent, l.eta_ms, l.current), (None, None, None));
        assert_eq!(l.records, 5);
    }
}
