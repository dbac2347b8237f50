//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format, prometheus-client). Ready
//! only once every controller's watch has listed its resources. Labels name the resource's
//! namespace `resource_namespace`, never `namespace` (it collides with Prometheus' own).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    /// kube (API errors), finalizer (as before `error` was added: kept for dashboards).
    pub category: String,
    /// The category of the error's cause ([`crate::operator::OperatorError::category`]):
    /// conflict, not-found, forbidden, invalid, unavailable, kube (another API error),
    /// finalizer (the finalizer's own).
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub kind: String,
    pub resource_namespace: String,
    /// completed, failed, cancelled.
    pub result: String,
    /// A failed run's category (the `[category]` its message starts with: input,
    /// plan-refused, kafka, storage, internal, ...; `kube` for a Kubernetes API error);
    /// empty for a completed or cancelled run.
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VolumeLabels {
    pub kind: String,
    pub resource_namespace: String,
}

/// One resource: the labels of the per-resource gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub kind: String,
    pub resource_namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabels {
    pub resource_namespace: String,
    /// The KafkaBackup validated (`backupRef.name`).
    pub backup: String,
    /// The KafkaBackupValidation.
    pub validation: String,
}

/// The operator's metrics. Every one is written by the code path it counts (tests check it).
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub runs: Family<RunLabels, Counter>,
    /// Status writes that failed after their retries ([`super::status::write_status`]).
    pub status_write_failures: Family<KindLabels, Counter>,
    /// Run durations, seconds.
    pub run_duration: Family<KindLabels, Histogram>,
    /// Records moved by finished runs.
    pub records: Family<VolumeLabels, Counter>,
    /// Raw Kafka batch bytes moved by finished runs.
    pub bytes: Family<VolumeLabels, Counter>,
    /// Records still to move before the running run reaches its planned cut (0 when idle).
    pub lag_records: Family<VolumeLabels, Gauge>,
    /// Unix time (seconds) of the last validation that passed, per backup: alert when
    /// `time() - kbo_validation_last_pass_timestamp_seconds > 2 * interval`.
    pub validation_last_pass: Family<ValidationLabels, Gauge>,
    /// 1 when the last validation of the backup passed, 0 when it failed.
    pub validation_last_result: Family<ValidationLabels, Gauge>,
    /// Unix time (seconds) of the resource's last completed run: alert when a backup's is
    /// older than its schedule allows (the chart's PrometheusRule).
    pub last_success: Family<ResourceLabels, Gauge>,
    /// 1 when the resource's last finished run failed, 0 when it completed.
    pub last_run_failed: Family<ResourceLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kbo");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let runs = Family::<RunLabels, Counter>::default();
        let status_write_failures = Family::<KindLabels, Counter>::default();
        let run_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.5, 2.0, 14))
        });
        let records = Family::<VolumeLabels, Counter>::default();
        let bytes = Family::<VolumeLabels, Counter>::default();
        let lag_records = Family::<VolumeLabels, Gauge>::default();
        let validation_last_pass = Family::<ValidationLabels, Gauge>::default();
        let validation_last_result = Family::<ValidationLabels, Gauge>::default();
        let last_success = Family::<ResourceLabels, Gauge>::default();
        let last_run_failed = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the resource's last completed run",
            last_success.clone(),
        );
        registry.register(
            "last_run_failed",
            "1 when the resource's last finished run failed, 0 when it completed",
            last_run_failed.clone(),
        );
        registry.register(
            "validation_last_pass_timestamp_seconds",
            "Unix time of the last KafkaBackupValidation that passed, per backup",
            validation_last_pass.clone(),
        );
        registry.register(
            "validation_last_result",
            "1 when the last KafkaBackupValidation of the backup passed, 0 when it failed",
            validation_last_result.clone(),
        );
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and category",
            reconcile_errors.clone(),
        );
        registry.register(
            "runs",
            "Finished runs by kind, result and (failed) category",
            runs.clone(),
        );
        registry.register(
            "status_write_failures",
            "Status writes that failed after their retries, by kind",
            status_write_failures.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Duration of finished runs",
            run_duration.clone(),
        );
        registry.register("records", "Records moved by finished runs", records.clone());
        registry.register(
            "bytes",
            "Raw record-batch bytes moved by finished runs",
            bytes.clone(),
        );
        registry.register(
            "lag_records",
            "Records still to move before the running run reaches its planned cut",
            lag_records.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            runs,
            status_write_failures,
            run_duration,
            records,
            bytes,
            lag_records,
            validation_last_pass,
            validation_last_result,
            last_success,
            last_run_failed,
        }
    }
}

impl Metrics {
    /// Records a finished validation: its result, and on a pass its time (epoch ms).
    pub fn validation_finished(&self, labels: ValidationLabels, passed: bool, at_ms: i64) {
        self.validation_last_result
            .get_or_create(&labels)
            .set(passed as i64);
        if passed {
            self.validation_last_pass
                .get_or_create(&labels)
                .set(at_ms / 1000);
        }
    }

    /// Counts a finished run (`result`: completed, failed, cancelled) that took `seconds` and
    /// moved `records` and `bytes`.
    pub fn run_finished(
        &self,
        kind: &str,
        ns: &str,
        result: &str,
        seconds: f64,
        records: u64,
        bytes: u64,
    ) {
        self.run_finished_in(kind, ns, result, "", seconds, records, bytes)
    }

    /// [`Metrics::run_finished`] with the failure `category` of a failed run (empty else).
    // One label or figure each; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn run_finished_in(
        &self,
        kind: &str,
        ns: &str,
        result: &str,
        category: &str,
        seconds: f64,
        records: u64,
        bytes: u64,
    ) {
        self.runs
            .get_or_create(&RunLabels {
                kind: kind.into(),
                resource_namespace: ns.into(),
                result: result.into(),
                category: category.into(),
            })
            .inc();
        self.run_duration
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(seconds);
        let v = VolumeLabels {
            kind: kind.into(),
            resource_namespace: ns.into(),
        };
        self.records.get_or_create(&v).inc_by(records);
        self.bytes.get_or_create(&v).inc_by(bytes);
        self.lag_records.get_or_create(&v).set(0);
    }

    /// Records how resource `labels`' run ended (a cancelled run changes nothing): a completed
    /// one at `at_ms` (epoch ms) sets its last-success time and clears its failed flag; a
    /// failed one sets the flag.
    pub fn resource_run_ended(&self, labels: ResourceLabels, completed: bool, at_ms: i64) {
        self.last_run_failed
            .get_or_create(&labels)
            .set(!completed as i64);
        if completed {
            self.last_success.get_or_create(&labels).set(at_ms / 1000);
        }
    }

    /// Forgets the per-resource gauges of a deleted resource (no alert on what is gone).
    pub fn resource_deleted(&self, labels: &ResourceLabels) {
        self.last_run_failed.remove(labels);
        self.last_success.remove(labels);
    }

    /// Updates the lag of a running run from its progress counters.
    pub fn running(&self, kind: &str, ns: &str, progress: &crate::exec::Progress) {
        use std::sync::atomic::Ordering::Relaxed;
        let lag = progress
            .records_planned
            .load(Relaxed)
            .saturating_sub(progress.records_done.load(Relaxed));
        self.lag_records
            .get_or_create(&VolumeLabels {
                kind: kind.into(),
                resource_namespace: ns.into(),
            })
            .set(lag as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The router: `/healthz` (process up), `/readyz` (watches synced), `/metrics`.
pub fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.encode() }),
        )
        .with_state(AppState { metrics, ready })
}

/// Serves the router on `addr` until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(metrics, ready)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_reflect_readiness_and_metrics_use_resource_namespace() {
        let metrics = Arc::new(Metrics::default());
        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(metrics.clone(), ready.clone())).into_future());
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        let p = crate::exec::Progress::new(None);
        p.records_planned.store(50, Ordering::Relaxed);
        p.add(20, 0);
        metrics.running("KafkaRestore", "team-b", &p);
        assert!(
            metrics.encode().contains(
                "kbo_lag_records{kind=\"KafkaRestore\",resource_namespace=\"team-b\"} 30"
            ),
            "{}",
            metrics.encode()
        );
        metrics.run_finished("KafkaBackup", "team-a", "completed", 3.0, 10, 100);
        let m = get("/metrics").await;
        assert!(
            m.contains("kbo_records_total{kind=\"KafkaBackup\",resource_namespace=\"team-a\"} 10"),
            "{m}"
        );
        assert!(!m.contains(" namespace=\""), "no bare namespace label");
    }
}
