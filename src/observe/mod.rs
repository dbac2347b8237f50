//! Step 1 of the flow: dereference and observe (read-only I/O). Resolves Secrets into client
//! and storage settings, reads cluster metadata, offsets and configs, and what the backup
//! repository already holds. Nothing here writes to Kafka or storage.
mod log_sizes;
mod repo;
mod resolve;

pub use log_sizes::observe_log_sizes;
pub use repo::{
    RepoState, latest_complete_run, load_complete_manifests, load_manifest, load_repo_state,
};
pub use resolve::{breaker_config, client_config, keyring, storage_target};

use std::collections::BTreeMap;

use crate::api::ApiError;
use crate::kafka::KafkaClient;
use crate::kafka::KafkaError;
use crate::kafka::client::ClusterMeta;
use crate::kafka::ops::{ConfigEntry, OffsetSpec};
use crate::storage::StorageError;

/// Errors of the observe layer.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Api(Box<ApiError>),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A setting that cannot be resolved (names the field and the fix).
    #[error("{field}: {message}")]
    Config { field: String, message: String },
}

impl From<ApiError> for ObserveError {
    fn from(e: ApiError) -> Self {
        ObserveError::Api(Box::new(e))
    }
}

pub use crate::facts::PartitionOffsets;

/// What the cluster looks like, for the partitions a plan touches.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    pub meta: ClusterMeta,
    /// (topic, partition) -> offsets, for the topics asked for.
    pub offsets: BTreeMap<(String, i32), PartitionOffsets>,
    /// topic -> configs, for the topics asked for (backup side only).
    pub configs: BTreeMap<String, BTreeMap<String, ConfigEntry>>,
}

/// Reads log start offsets and high watermarks of every partition of `topics` (ListOffsets,
/// batched per leader), and their configs when `with_configs`.
pub async fn observe_cluster(
    client: &KafkaClient,
    topics: &[String],
    with_configs: bool,
) -> Result<ClusterFacts, ObserveError> {
    let meta = client.refresh_metadata().await?;
    let parts: Vec<(String, i32)> = topics
        .iter()
        .filter_map(|t| meta.topics.get(t))
        .flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p)))
        .collect();
    let mut offsets = BTreeMap::new();
    if !parts.is_empty() {
        let earliest = client.list_offsets(&parts, OffsetSpec::Earliest).await?;
        let latest = client.list_offsets(&parts, OffsetSpec::Latest).await?;
        for p in &parts {
            offsets.insert(
                p.clone(),
                PartitionOffsets {
                    log_start: earliest.get(p).copied().unwrap_or(0),
                    high_watermark: latest.get(p).copied().unwrap_or(0),
                },
            );
        }
    }
    let present: Vec<String> = topics
        .iter()
        .filter(|t| meta.topics.contains_key(*t))
        .cloned()
        .collect();
    let configs = if with_configs {
        client.describe_topic_configs(&present).await?
    } else {
        BTreeMap::new()
    };
    Ok(ClusterFacts {
        meta,
        offsets,
        configs,
    })
}

/// Partitions of `previous` (the newest complete run) whose log no longer holds that run's
/// last stored batch, with why: the topic was deleted and recreated since, on a broker that
/// reports no topic ids (Kafka before 2.8, some Kafka-compatible brokers). For each partition
/// whose last batch offset lies inside today's log (`offsets`), that batch is fetched again
/// and its base offset and CRC-32C compared with what the run stored; a different batch means
/// another log. Compacted topics (`cleanup.policy` with `compact`, per `configs`) are not
/// checked: compaction rewrites batches, so their CRCs change without a recreation.
///
/// Errors: Kafka failures of the Fetch requests.
pub async fn diverged_partitions(
    client: &KafkaClient,
    previous: &crate::format::manifest::RunManifest,
    offsets: &BTreeMap<(String, i32), PartitionOffsets>,
    configs: &BTreeMap<String, BTreeMap<String, ConfigEntry>>,
) -> Result<BTreeMap<(String, i32), String>, ObserveError> {
    use futures::StreamExt;
    let mut probes = Vec::new();
    for t in &previous.topics {
        let compacted = configs
            .get(&t.name)
            .and_then(|c| c.get("cleanup.policy"))
            .and_then(|c| c.value.as_deref())
            .is_some_and(|v| v.contains("compact"));
        if compacted {
            continue;
        }
        for p in &t.partitions {
            let Some(last) = p.segments.last() else {
                continue;
            };
            let (Some(at), Some(crc)) = (last.last_batch_offset, last.last_batch_crc32c) else {
                continue;
            };
            match offsets.get(&(t.name.clone(), p.partition)) {
                Some(o) if at >= o.log_start && at < o.high_watermark => {
                    probes.push((t.name.clone(), p.partition, at, crc))
                }
                _ => {}
            }
        }
    }
    type Probe = Result<Option<((String, i32), String)>, ObserveError>;
    let results: Vec<Probe> =
        futures::stream::iter(probes)
            .map(|(topic, partition, at, crc)| async move {
                let mut s = client.fetch_stream(&topic, partition, at, 65_536, 0).await?;
                let Some(b) = s.next_batch().await? else {
                    return Ok(None);
                };
                let h = &b.header;
                let why = if h.base_offset != at {
                    format!(
                        "offset {at}, where the previous run's last batch began, now lies in a batch at {}",
                        h.base_offset
                    )
                } else if h.crc != crc {
                    format!(
                        "the batch at offset {at} has CRC-32C {}, the previous run stored {crc}",
                        h.crc
                    )
                } else {
                    return Ok(None);
                };
                Ok(Some(((topic, partition), why)))
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut out = BTreeMap::new();
    for r in results {
        if let Some((k, why)) = r? {
            out.insert(k, why);
        }
    }
    Ok(out)
}

/// The committed offsets of `groups` now (OffsetFetch at each group's coordinator): group ->
/// (topic, partition) -> (offset, metadata). A group without commits maps to an empty map.
/// The read is [`KafkaClient::committed_groups`] (the executor calls it directly).
pub async fn committed_groups(
    client: &KafkaClient,
    groups: &[String],
) -> Result<crate::facts::GroupCommits, ObserveError> {
    Ok(client.committed_groups(groups).await?)
}
