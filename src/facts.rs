//! The facts the pure layers (`plan`, `format`) work from: cluster metadata, topic
//! configurations and partition offsets, as data types only. `observe` and `kafka` fill them
//! in; `plan` never does I/O, and depends on this module, not on those layers.
use std::collections::BTreeMap;

/// One partition as the metadata cache knows it.
#[derive(Debug, Clone)]
pub struct PartitionMeta {
    /// Broker id of the leader; -1 when leaderless.
    pub leader: i32,
    /// Leader epoch (KIP-320), -1 if the broker does not send it.
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
}

/// One topic as the metadata cache knows it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    pub name: String,
    /// Topic id (KIP-516) as a UUID string; all zeros on brokers without topic ids.
    pub topic_id: String,
    pub is_internal: bool,
    /// Partition index -> partition.
    pub partitions: BTreeMap<i32, PartitionMeta>,
}

/// A snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct ClusterMeta {
    pub cluster_id: Option<String>,
    /// Broker id -> `host:port`.
    pub brokers: BTreeMap<i32, String>,
    /// Topics the last refresh saw (all topics, or the requested ones).
    pub topics: BTreeMap<String, TopicMeta>,
}

/// One entry of a topic's configuration (DescribeConfigs).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ConfigEntry {
    pub value: Option<String>,
    /// DescribeConfigs config_source: 1 = DYNAMIC_TOPIC_CONFIG (a topic override), 5 =
    /// DEFAULT_CONFIG, others broker-level (KIP-226).
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Offsets of one partition at observation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionOffsets {
    pub log_start: i64,
    pub high_watermark: i64,
}

/// A consumer group's committed offsets: (topic, partition) -> (offset, commit metadata).
pub type Commits = BTreeMap<(String, i32), (i64, Option<String>)>;

/// Committed offsets of several groups: group id -> [`Commits`].
pub type GroupCommits = BTreeMap<String, Commits>;

/// The sizes of partition logs as their leaders report them (DescribeLogDirs, KIP-113), for
/// a backup's byte estimates. A partition missing from `bytes` has no known size; `unknown`
/// says why, one line per cause (a broker that refused the request, or does not support it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSizes {
    /// (topic, partition) -> bytes of the partition's log on its leader (every segment).
    pub bytes: BTreeMap<(String, i32), u64>,
    /// Why some partitions have no size, one line per cause.
    pub unknown: Vec<String>,
}
