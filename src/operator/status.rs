//! Status writes: server-side apply with one field manager, always of the whole status (a
//! field left out of an apply would be dropped), read fresh before each write so a long run
//! never overwrites what a reconcile recorded meanwhile (e.g. a skipped tick).
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

/// The field manager of every status write.
pub const MANAGER: &str = "kafka-backup-operator";

/// [`update_status`] for the writes a run task makes (its run id at the start, its outcome at
/// the end), retried with backoff (5 more attempts, from 0.5 s), each from a fresh read,
/// unless the resource is gone: a 409 from a concurrent progress write must not lose them.
pub async fn update_status_final<K>(
    api: &Api<K>,
    name: &str,
    f: impl Fn(&mut K::Status),
) -> Result<(), kube::Error>
where
    K: StatusResource,
    K::Status: Default + Clone + Serialize,
{
    use backon::Retryable;
    (|| update_status(api, name, &f))
        .retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(500))
                .with_max_times(5),
        )
        .when(|e| !matches!(e, kube::Error::Api(s) if s.code == 404))
        .notify(|e, d| tracing::warn!(error = %e, delay_ms = d.as_millis() as u64, "final status write failed; retrying"))
        .await
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
