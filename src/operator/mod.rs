//! The Kubernetes operator. One controller for the five kinds ([`oneshot`]): each kind is a
//! set of hooks (KafkaBackup in [`backup`], KafkaRestore in [`restore`], KafkaOffsetReset and
//! KafkaOffsetRollback in [`offsets`], KafkaBackupValidation in [`validation`]); reconcile =
//! the kind's pure decision (KafkaBackup's and KafkaRestore's in [`decide`]) + the executor
//! pool ([`pool`], never inside reconcile) + status (server-side apply, [`status`]) and
//! Events, the start and the end of every run written by [`oneshot`] once; schedules are
//! anchored on `status.lastScheduleTime` ([`schedule`]); run-level retries and waits
//! ([`retry`]); leader election on a Lease ([`run`]); `/metrics`, `/healthz`, `/readyz`
//! ([`http`]). Every invalid spec is reported by [`oneshot::report_invalid`], every run task
//! ends in [`oneshot::finish_run`] (run metric, final status, Event), and every status write
//! goes through [`status::write_status`] (retried, counted).
pub mod backup;
pub mod decide;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod offsets;
pub mod oneshot;
pub mod pool;
pub mod restore;
pub mod retry;
pub mod schedule;
pub mod secrets;
pub mod status;
pub mod sync;
#[cfg(test)]
mod tests;
pub mod validation;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};
use pool::{ObjectKey, Pool};

/// Finalizer put on every resource: deletion cancels in-flight work first.
pub const FINALIZER: &str = "kafka.oso.sh/finalizer";

/// Errors of the operator layer.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<OperatorError>>),
}

impl OperatorError {
    /// The category of the error's cause, for the `error` label of
    /// `kbo_reconcile_errors_total`: the Kubernetes API's answer (`conflict` 409, `not-found`
    /// 404, `forbidden` 401/403, `invalid` 400/422, `unavailable` 429/5xx or no answer, `kube`
    /// otherwise), through the finalizer's wrapping; `finalizer` for the finalizer's own errors
    /// (an unnamed object, an invalid finalizer name).
    pub fn category(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            OperatorError::Kube(e) => kube_category(e),
            OperatorError::Finalizer(f) => match &**f {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.category(),
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => kube_category(e),
                _ => "finalizer",
            },
        }
    }
}

/// The category of a Kubernetes API error ([`OperatorError::category`]).
pub fn kube_category(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => match s.code {
            409 => "conflict",
            404 => "not-found",
            401 | 403 => "forbidden",
            400 | 422 => "invalid",
            429 | 500..=599 => "unavailable",
            _ => "kube",
        },
        e if status::is_transient(e) => "unavailable",
        _ => "kube",
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub pool: Pool,
    pub recorder: Recorder,
    /// Where PersistentVolumeClaims are mounted in the operator pod: `<root>/<claimName>`.
    pub pvc_root: PathBuf,
    /// Whether a KafkaRestore may refer to a KafkaBackup (and its Secrets) in another
    /// namespace (`--allow-cross-namespace-refs`; off by default).
    pub allow_cross_namespace: bool,
    pub metrics: Arc<http::Metrics>,
    /// True while this replica holds the leader Lease (always true without leader election).
    /// Only the leader reconciles and runs work.
    pub leader: tokio::sync::watch::Receiver<bool>,
    /// The chart's shard Pod settings (`KBO_JOB_DEFAULTS`): with them, `execution.mode: job`
    /// runs as Kubernetes Jobs ([`jobs`]); without, in this process with a warning.
    pub jobs: Option<Arc<jobs::JobDefaults>>,
    /// The uids of the KafkaBackups whose repository [`sync`] has read (or is reading) in
    /// this process.
    pub synced: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Context {
    pub fn new(client: Client, pvc_root: PathBuf) -> Context {
        let reporter = Reporter {
            controller: status::MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pool: Pool::default(),
            pvc_root,
            allow_cross_namespace: false,
            metrics: Arc::default(),
            leader: tokio::sync::watch::channel(true).1,
            jobs: None,
            synced: Default::default(),
        }
    }

    /// Publishes a Kubernetes Event about `obj` (events.k8s.io). Failures are logged, not
    /// returned: an Event is never worth failing a reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

/// The part of every reconcile that does not depend on the kind: a span with the resource's
/// namespace and name, the leader check (a follower watches but never writes or runs), the
/// reconcile counter, and the finalizer: `apply` on create/update, and on deletion cancel the
/// in-flight run (data already in storage is kept on purpose).
pub async fn reconcile_guarded<K, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: F,
) -> Result<Action, OperatorError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: FnOnce(Arc<K>, Arc<Context>, Api<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, OperatorError>>,
{
    let ns = obj.namespace().unwrap_or_default();
    let kind = K::kind(&()).into_owned();
    let span =
        tracing::info_span!("reconcile", kind = %kind, namespace = %ns, resource = %obj.name_any());
    if !*ctx.leader.borrow() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    ctx.metrics
        .reconciles
        .get_or_create(&http::KindLabels { kind })
        .inc();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // instrument, not enter: an entered span held across an await would tag other tasks' logs
    let work = kube::runtime::finalizer::finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            kube::runtime::finalizer::Event::Apply(o) => apply(o, ctx.clone(), api.clone()).await,
            kube::runtime::finalizer::Event::Cleanup(o) => {
                ctx.pool.cancel(&obj_key(&*o)).await;
                ctx.metrics.resource_deleted(&http::ResourceLabels {
                    kind: K::kind(&()).into_owned(),
                    resource_namespace: ns.clone(),
                    name: o.name_any(),
                });
                ctx.event(
                    &*o,
                    EventType::Normal,
                    "Deleted",
                    "in-flight work cancelled; backup data in storage is kept",
                )
                .await;
                Ok(Action::await_change())
            }
        }
    });
    tracing::Instrument::instrument(work, span)
        .await
        .map_err(|e| OperatorError::Finalizer(Box::new(e)))
}

/// Runs a pool task's attempts ([`retry::retry_run`] with [`retry::run_backoff`]), publishing
/// each retry as a Warning `Retried` Event about `obj`, and each new reason to wait as a Normal
/// `Waiting` Event after `on_wait(message)` (which writes the waiting status and returns
/// whether it did: when it did not, no Event, and the next check writes it again).
pub async fn run_attempts<K, T, F, Fut, W, WFut>(
    ctx: &Arc<Context>,
    obj: &Arc<K>,
    cancel: &crate::exec::Cancel,
    attempt: F,
    mut on_wait: W,
) -> Result<Option<T>, String>
where
    K: Resource<DynamicType = ()>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, retry::RunFailure>>,
    W: FnMut(String) -> WFut,
    WFut: std::future::Future<Output = bool>,
{
    // A panic in an attempt (a bug, or a library that panics where it should return an
    // error) fails the attempt with category `internal` instead of ending the task with the
    // status left Running for ever.
    #[cfg(test)]
    let test_panic = obj.name_any() == tests_hooks::PANICS;
    let mut attempt = attempt;
    let attempt = move || {
        // boxed: an attempt's future is large (a whole run), and is kept off the stack
        let fut = Box::pin(attempt());
        async move {
            #[cfg(test)]
            let fut = async move {
                if test_panic {
                    panic!("No CA certificates were loaded from the system (test)");
                }
                fut.await
            };
            match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(p) => {
                    let what = panic_message(&*p);
                    tracing::error!(panic = %what, "a run attempt panicked");
                    Err(retry::RunFailure::internal(&format!("panicked: {what}")))
                }
            }
        }
    };
    retry::retry_run(cancel, retry::run_backoff(), attempt, |pause| {
        let wait = match &pause {
            retry::Pause::Wait { message } => Some(on_wait(message.clone())),
            retry::Pause::Retry { .. } => None,
        };
        async move {
            match pause {
                retry::Pause::Retry { message, .. } => {
                    ctx.event(&**obj, EventType::Warning, "Retried", &message)
                        .await;
                    true
                }
                retry::Pause::Wait { message } => {
                    let written = match wait {
                        Some(w) => w.await,
                        None => true,
                    };
                    if written {
                        ctx.event(&**obj, EventType::Normal, "Waiting", &message)
                            .await;
                    }
                    written
                }
            }
        }
    })
    .await
}

/// The message of a panic payload (`panic!` with a string or a format), else a placeholder.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Test hooks: a resource with this name panics in each run attempt.
#[cfg(test)]
pub mod tests_hooks {
    pub const PANICS: &str = "kbo-test-panics";
}

/// Counts a finished pool run in the metrics: `Ok(None)` is a cancelled run, `Ok(Some(_))` a
/// completed one, `Err(message)` a failed one, labelled with its category
/// ([`retry::failure_category`]).
/// The resource `name`'s last-success time and failed flag are set too.
pub fn record_run<T>(
    ctx: &Context,
    kind: &str,
    ns: &str,
    name: &str,
    result: &Result<Option<T>, String>,
    progress: &crate::exec::Progress,
) {
    let (outcome, category) = match result {
        Ok(None) => ("cancelled", ""),
        Ok(Some(_)) => ("completed", ""),
        Err(m) => ("failed", retry::failure_category(m)),
    };
    let (records, bytes, secs) = progress.snapshot();
    ctx.metrics
        .run_finished_in(kind, ns, outcome, category, secs, records, bytes);
    if outcome != "cancelled" {
        let labels = http::ResourceLabels {
            kind: kind.into(),
            resource_namespace: ns.into(),
            name: name.into(),
        };
        let now = crate::exec::engine::system_now_ms();
        ctx.metrics
            .resource_run_ended(labels, outcome == "completed", now);
    }
}

/// The pool key of a resource.
pub fn obj_key<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectKey {
    (
        K::kind(&()).into_owned(),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    )
}

/// Retry policy of a failed reconcile: back off, never stop watching other resources.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    _obj: Arc<K>,
    error: &OperatorError,
    ctx: Arc<Context>,
) -> Action {
    let category = match error {
        OperatorError::Kube(_) => "kube",
        OperatorError::Finalizer(_) => "finalizer",
    };
    ctx.metrics
        .reconcile_errors
        .get_or_create(&http::ErrorLabels {
            kind: K::kind(&()).into_owned(),
            category: category.into(),
            error: error.category().into(),
        })
        .inc();
    tracing::warn!(%error, "reconcile failed; retrying in 15 s");
    Action::requeue(Duration::from_secs(15))
}

/// Leader election settings (a Lease in `namespace`, held by `identity`).
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub identity: String,
}

/// Runs the KafkaBackup and KafkaRestore controllers until SIGTERM/Ctrl-C. `namespaces`: watch
/// these (all when empty; one pair of controllers per namespace, so namespaced RBAC suffices).
/// With `election`, only the replica holding the Lease reconciles; losing it, or failing to have
/// its renewals confirmed for 16 s, cancels every run before another replica may take the
/// Lease at 20 s ([`lease`]).
pub async fn run(
    namespaces: Vec<String>,
    pvc_root: PathBuf,
    allow_cross_namespace: bool,
    metrics_addr: std::net::SocketAddr,
    election: Option<LeaderElection>,
) -> anyhow::Result<()> {
    crate::install_tls_provider();
    let client = Client::try_default().await?;
    let mut ctx = Context::new(client.clone(), pvc_root);
    ctx.allow_cross_namespace = allow_cross_namespace;
    ctx.jobs = jobs::JobDefaults::from_env()
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    match &ctx.jobs {
        Some(d) => {
            tracing::info!(image = %d.image, "execution.mode job: shards run as Kubernetes Jobs")
        }
        None => tracing::info!(
            "{} is not set: resources with execution.mode job run in this process",
            jobs::DEFAULTS_ENV
        ),
    }
    if let Some(el) = election {
        let rx = lease::elect(
            client.clone(),
            &el.namespace,
            &el.identity,
            ctx.pool.clone(),
        )
        .await?;
        ctx.leader = rx;
        tracing::info!(identity = %el.identity, lease_namespace = %el.namespace, "leader election on");
    }
    let ctx = Arc::new(ctx);
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    tracing::info!(namespaces = ?scopes, "controllers starting (None = all namespaces)");
    let pool = ctx.pool.clone();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(http::serve(
        metrics_addr,
        ctx.metrics.clone(),
        ready.clone(),
    ));
    let mut stores = Vec::new();
    let mut offset_stores = Vec::new();
    let mut validation_stores = Vec::new();
    let mut controllers = Vec::new();
    for scope in &scopes {
        let bc = Controller::new(
            scoped::<KafkaBackup>(&client, scope),
            watcher::Config::default(),
        );
        let rc = Controller::new(
            scoped::<KafkaRestore>(&client, scope),
            watcher::Config::default(),
        );
        let kc = Controller::new(
            scoped::<KafkaOffsetReset>(&client, scope),
            watcher::Config::default(),
        );
        let lc = Controller::new(
            scoped::<KafkaOffsetRollback>(&client, scope),
            watcher::Config::default(),
        );
        let vc = Controller::new(
            scoped::<crate::api::validation::KafkaBackupValidation>(&client, scope),
            watcher::Config::default(),
        );
        let (ks, ls) = (kc.store(), lc.store());
        offset_stores.push((ks, ls));
        validation_stores.push(vc.store());
        controllers.push(
            vc.shutdown_on_signal()
                .run(oneshot::reconcile, error_policy, ctx.clone())
                .for_each(log_result)
                .boxed(),
        );
        controllers.push(
            kc.shutdown_on_signal()
                .run(oneshot::reconcile, error_policy, ctx.clone())
                .for_each(log_result)
                .boxed(),
        );
        controllers.push(
            lc.shutdown_on_signal()
                .run(oneshot::reconcile, error_policy, ctx.clone())
                .for_each(log_result)
                .boxed(),
        );
        stores.push((bc.store(), rc.store()));
        controllers.push(
            bc.shutdown_on_signal()
                .run(backup::reconcile, error_policy, ctx.clone())
                .for_each(log_result)
                .boxed(),
        );
        controllers.push(
            rc.shutdown_on_signal()
                .run(oneshot::reconcile, error_policy, ctx.clone())
                .for_each(log_result)
                .boxed(),
        );
    }
    tokio::spawn(async move {
        // ready once every watch has listed its resources
        for (bs, rs) in stores {
            if !store_synced(&bs).await || !store_synced(&rs).await {
                return;
            }
        }
        for (ks, ls) in offset_stores {
            if !store_synced(&ks).await || !store_synced(&ls).await {
                return;
            }
        }
        for vs in validation_stores {
            if !store_synced(&vs).await {
                return;
            }
        }
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("watches synced: ready");
    });
    futures::future::join_all(controllers).await;
    // Stop runs cleanly (checkpoints stay; the next start resumes them).
    pool.cancel_all().await;
    Ok(())
}

/// Resolves once `store` has listed its resources (true), or false when its writer is gone.
///
/// `Store::wait_until_ready` is not enough when another task waits on the same store: its
/// one-shot receiver keeps only the last waker registered, and the controller's own runner
/// waits on it too, so a second waiter may never be woken (the operator Pod stayed at `/readyz`
/// 503 for ever). Polling again every 200 ms re-registers, and sees the value once it is there.
pub async fn store_synced<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(r) => return r.is_ok(),
            Err(_) => continue,
        }
    }
}

async fn log_result<T, E: std::fmt::Display>(r: Result<T, E>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "reconcile error");
    }
}

fn scoped<K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>>(
    client: &Client,
    ns: &Option<String>,
) -> Api<K> {
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
