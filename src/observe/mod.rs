//! Step 1 of the flow: dereference and observe (read-only I/O). Resolves Secrets into client
//! and storage settings, reads cluster metadata, offsets and configs, and what the backup
//! repository already holds. Nothing here writes to Kafka or storage.
mod repo;
mod resolve;

pub use repo::{
    RepoState, latest_complete_run, load_complete_manifests, load_manifest, load_repo_state,
};
pub use resolve::{client_config, storage_target};

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

/// Offsets of one partition at observation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionOffsets {
    pub log_start: i64,
    pub high_watermark: i64,
}

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
