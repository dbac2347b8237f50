//! The cluster-level client: a connection pool per broker, a metadata cache with leader
//! routing, and retries with exponential backoff and jitter.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use super::breaker::Outcome;
use super::config::ClientConfig;
use super::conn::Connection;
use super::error::{KafkaError, Result};
pub use crate::facts::{ClusterMeta, PartitionMeta, TopicMeta};

struct Pool {
    slots: Vec<Mutex<Option<Arc<Connection>>>>,
    next: AtomicUsize,
}

/// An async Kafka client. Cheap to clone; all clones share pools and metadata.
#[derive(Clone)]
pub struct KafkaClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    breaker: Option<super::breaker::Breaker>,
    meta: RwLock<ClusterMeta>,
    pools: std::sync::Mutex<HashMap<String, Arc<Pool>>>,
}

impl KafkaClient {
    /// Connects to the first reachable bootstrap broker and loads metadata for all topics.
    ///
    /// Errors: [`KafkaError::Connect`] naming every bootstrap broker tried when none answers.
    pub async fn connect(cfg: ClientConfig) -> Result<KafkaClient> {
        let client = KafkaClient {
            inner: Arc::new(Inner {
                breaker: cfg.breaker.map(super::breaker::Breaker::new),
                cfg,
                meta: RwLock::new(ClusterMeta::default()),
                pools: Default::default(),
            }),
        };
        client.refresh_metadata().await?;
        Ok(client)
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// The cached metadata.
    pub fn metadata(&self) -> ClusterMeta {
        self.inner.meta.read().unwrap().clone()
    }

    /// A pooled connection to `addr` (`host:port`), opened on first use. Connections are
    /// multiplexed, so the pool spreads in-flight requests over `connectionsPerBroker` sockets.
    pub async fn conn_to(&self, addr: &str) -> Result<Arc<Connection>> {
        let pool = {
            let mut pools = self.inner.pools.lock().unwrap();
            pools
                .entry(addr.to_string())
                .or_insert_with(|| {
                    Arc::new(Pool {
                        slots: (0..self.inner.cfg.connections_per_broker.max(1))
                            .map(|_| Mutex::new(None))
                            .collect(),
                        next: AtomicUsize::new(0),
                    })
                })
                .clone()
        };
        let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.slots.len();
        let mut slot = pool.slots[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::connect(addr, &self.inner.cfg).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A connection to broker `id` from the metadata cache.
    pub async fn broker_conn(&self, id: i32) -> Result<Arc<Connection>> {
        let addr = self.inner.meta.read().unwrap().brokers.get(&id).cloned();
        match addr {
            Some(a) => self.conn_to(&a).await,
            None => Err(KafkaError::Other(format!(
                "broker id {id} is not in the cluster metadata"
            ))),
        }
    }

    /// A connection to any broker: known brokers first, then the bootstrap list.
    pub async fn any_conn(&self) -> Result<Arc<Connection>> {
        let mut candidates: Vec<String> = self
            .inner
            .meta
            .read()
            .unwrap()
            .brokers
            .values()
            .cloned()
            .collect();
        candidates.extend(self.inner.cfg.bootstrap.iter().cloned());
        let mut errors = Vec::new();
        for addr in candidates {
            match self.conn_to(&addr).await {
                Ok(c) => return Ok(c),
                Err(e @ (KafkaError::Tls { .. } | KafkaError::Sasl { .. })) => return Err(e),
                Err(KafkaError::Connect { reason, .. }) => errors.push(format!("{addr}: {reason}")),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(KafkaError::Connect {
            broker: self.inner.cfg.bootstrap.join(","),
            reason: format!("no broker answered ({})", errors.join("; ")),
        })
    }

    /// Reloads metadata for all topics (Metadata API, capped at v12).
    pub async fn refresh_metadata(&self) -> Result<ClusterMeta> {
        self.load_metadata(None).await
    }

    /// Loads metadata for `topics` only (merged into the cache).
    pub async fn load_metadata(&self, topics: Option<&[String]>) -> Result<ClusterMeta> {
        let conn = self.any_conn().await?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (resp, _) = conn.call(&req, 12).await?;
        let mut meta = if topics.is_some() {
            self.metadata()
        } else {
            ClusterMeta::default()
        };
        meta.cluster_id = resp.cluster_id.map(|s| s.to_string());
        meta.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format_addr(b.host.as_str(), b.port)))
            .collect();
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                meta.topics.remove(&name);
                continue;
            }
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        PartitionMeta {
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                        },
                    )
                })
                .collect();
            meta.topics.insert(
                name.clone(),
                TopicMeta {
                    name,
                    topic_id: t.topic_id.to_string(),
                    is_internal: t.is_internal,
                    partitions,
                },
            );
        }
        *self.inner.meta.write().unwrap() = meta.clone();
        Ok(meta)
    }

    /// Leader broker id and leader epoch of a partition, from the cache (refreshed once if the
    /// topic is unknown).
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, i32)> {
        for attempt in 0..2 {
            if let Some(p) = self
                .inner
                .meta
                .read()
                .unwrap()
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(&partition))
                && p.leader >= 0
            {
                return Ok((p.leader, p.leader_epoch));
            }
            if attempt == 0 {
                self.load_metadata(Some(&[topic.to_string()])).await?;
            }
        }
        Err(KafkaError::broker(
            "Metadata",
            format!("{topic}-{partition}"),
            5,
        )) // LEADER_NOT_AVAILABLE
    }

    /// The circuit breaker of this client, when `circuitBreaker.enabled`.
    pub fn breaker(&self) -> Option<&super::breaker::Breaker> {
        self.inner.breaker.as_ref()
    }

    /// Runs `op` with retries: up to `retries` attempts with exponential backoff (100 ms,
    /// doubling, max 5 s, with jitter) on retriable errors; the metadata cache is refreshed
    /// before an attempt that follows a NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION or
    /// connection loss.
    pub async fn with_retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let stale = Arc::new(AtomicBool::new(false));
        let attempt = || {
            let stale = stale.clone();
            let fut = op();
            let this = self.clone();
            async move {
                let Some(b) = this.inner.breaker.as_ref() else {
                    if stale.swap(false, Ordering::Relaxed) {
                        // Best effort: a failed refresh shows up as the operation's own error.
                        let _ = this.refresh_metadata().await;
                    }
                    return fut.await;
                };
                b.admit().await;
                let bound = b.config().op_timeout;
                let r = tokio::time::timeout(bound, async {
                    if stale.swap(false, Ordering::Relaxed) {
                        let _ = this.refresh_metadata().await;
                    }
                    fut.await
                })
                .await
                .unwrap_or_else(|_| {
                    Err(KafkaError::OperationTimeout {
                        api: what.to_string(),
                        timeout_ms: bound.as_millis() as u64,
                    })
                });
                match &r {
                    Err(e) if e.is_retriable() => b.record(Outcome::Failed, what, e),
                    Err(e) => b.record(Outcome::Answered, what, e),
                    Ok(_) => b.record(Outcome::Answered, what, &"ok"),
                }
                r
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_max_times(self.inner.cfg.retries.saturating_sub(1));
        attempt
            .retry(backoff)
            .when(|e: &KafkaError| {
                if e.needs_metadata_refresh() {
                    stale.store(true, Ordering::Relaxed);
                }
                e.is_retriable()
            })
            .notify(|e, d| tracing::debug!(what, error = %e, retry_in_ms = d.as_millis() as u64, "retrying"))
            .await
    }
}

fn format_addr(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
