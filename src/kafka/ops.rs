//! Typed Kafka operations the observer and executor use, each routed to the right broker
//! (partition leader, group coordinator, any broker) and retried through
//! [`KafkaClient::with_retry`].
use std::collections::{BTreeMap, HashMap};

use bytes::{Buf, Bytes};
use futures::future::try_join_all;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::client::KafkaClient;
use super::error::{KafkaError, Result};

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// What ListOffsets should look up (the protocol guide's special timestamps -1/-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (timestamp -2).
    Earliest,
    /// The high watermark (timestamp -1, read_uncommitted).
    Latest,
    /// The first offset whose timestamp is >= this epoch-ms value (KIP-79); -1 if none.
    Timestamp(i64),
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1 = the broker's default.replication.factor (KIP-464).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub use crate::facts::ConfigEntry;

/// A broker error for `resource`, with the broker's error message appended when it sent one.
fn broker_error(
    api: &'static str,
    resource: String,
    code: i16,
    message: Option<StrBytes>,
) -> KafkaError {
    let mut e = KafkaError::broker(api, resource, code);
    if let (KafkaError::Broker { resource, .. }, Some(m)) = (&mut e, message) {
        resource.push_str(&format!(" ({m})"));
    }
    e
}

impl KafkaClient {
    /// Offsets for many partitions, one ListOffsets request per leader, all leaders in
    /// parallel. Returns (topic, partition) -> offset.
    pub async fn list_offsets(
        &self,
        parts: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<HashMap<(String, i32), i64>> {
        self.with_retry("ListOffsets", || self.list_offsets_once(parts, spec))
            .await
    }

    async fn list_offsets_once(
        &self,
        parts: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<HashMap<(String, i32), i64>> {
        let ts = match spec {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        };
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i32)>>> = BTreeMap::new();
        for (t, p) in parts {
            let (leader, epoch) = self.leader(t, *p).await?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push((*p, epoch));
        }
        let calls = by_leader.into_iter().map(|(leader, topics)| async move {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(tn(t))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, e)| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_current_leader_epoch(*e)
                                                .with_timestamp(ts)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let conn = self.broker_conn(leader).await?;
            let (resp, _) = conn.call(&req, 8).await?;
            let mut out = Vec::new();
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(KafkaError::broker(
                            "ListOffsets",
                            format!("{}-{}", t.name.as_str(), p.partition_index),
                            p.error_code,
                        ));
                    }
                    out.push(((t.name.to_string(), p.partition_index), p.offset));
                }
            }
            Ok(out)
        });
        Ok(try_join_all(calls).await?.into_iter().flatten().collect())
    }

    /// Fetches one partition from `offset`, read_uncommitted: everything up to the high
    /// watermark, control batches and aborted records included (see docs/format.md). The
    /// response is streamed: batches are handed out one at a time while the rest is still on
    /// the socket,
    /// so memory stays bounded by one batch plus 1 MiB of buffered chunks whatever the broker
    /// sends. Uses Fetch v4-v11 (the last non-flexible version; the layout below is the
    /// protocol guide's). `max_bytes` is a hint: some brokers (noida-db) send more.
    ///
    /// Errors in the response header are retried when retriable; OFFSET_OUT_OF_RANGE (code 1)
    /// comes back as [`KafkaError::Broker`] for the caller to turn into a recorded retention
    /// gap.
    pub async fn fetch_stream(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<FetchStream> {
        self.with_retry("Fetch", || async {
            let (leader, epoch) = self.leader(topic, partition).await?;
            let conn = self.broker_conn(leader).await?;
            let v = conn.version::<FetchRequest>(11)?;
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(max_bytes)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(tn(topic))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_current_leader_epoch(epoch)
                                .with_fetch_offset(offset)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(max_bytes),
                        ]),
                ]);
            let mut r = conn.enqueue_streaming(&req, v).await?;
            let resource = format!("{topic}-{partition}");
            let protocol = |reason: &str| KafkaError::Protocol {
                broker: conn.broker().to_string(),
                reason: format!("Fetch v{v} for {resource}: {reason}"),
            };
            // throttle_time_ms i32 | [v7+] error_code i16, session_id i32 | responses [i32 n]
            let mut h = r.take(if v >= 7 { 14 } else { 8 }).await?;
            h.advance(4);
            if v >= 7 {
                let code = h.get_i16();
                if code != 0 {
                    return Err(KafkaError::broker("Fetch", resource.clone(), code));
                }
                h.advance(4);
            }
            let topics = h.get_i32();
            if topics != 1 {
                return Err(protocol(&format!(
                    "{topics} topics in the response, asked for 1"
                )));
            }
            // topic STRING | partitions [i32 n]
            let name_len = r.take(2).await?.get_i16().max(0) as usize;
            r.skip(name_len).await?;
            if r.take(4).await?.get_i32() != 1 {
                return Err(protocol("expected exactly one partition"));
            }
            // partition_index i32 | error_code i16 | high_watermark i64 | last_stable_offset i64
            // | [v5+] log_start_offset i64 | aborted_transactions [i32 n, -1 = null] of 16 bytes
            let mut p = r.take(if v >= 5 { 30 } else { 22 }).await?;
            let _index = p.get_i32();
            let code = p.get_i16();
            let high_watermark = p.get_i64();
            let last_stable_offset = p.get_i64();
            let log_start_offset = if v >= 5 { p.get_i64() } else { -1 };
            if code != 0 {
                return Err(KafkaError::broker("Fetch", resource.clone(), code));
            }
            let aborted = r.take(4).await?.get_i32();
            if aborted > 0 {
                r.skip(aborted as usize * 16).await?;
            }
            if v >= 11 {
                r.skip(4).await?; // preferred_read_replica
            }
            // records: i32 size (-1 = null) then the batches
            let size = r.take(4).await?.get_i32().max(0) as usize;
            Ok(FetchStream {
                reader: r,
                remaining: size,
                truncated_tail: false,
                high_watermark,
                last_stable_offset,
                log_start_offset,
            })
        })
        .await
    }

    /// Produces one or more record batches (already encoded) to a partition leader and
    /// returns the base offset the broker assigned. `acks` -1 (all ISR), 1 (leader) or 0 (no
    /// response; returns -1). Not retried: a retry after an unknown outcome could duplicate;
    /// the executor decides.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
        timeout_ms: i32,
    ) -> Result<i64> {
        let (leader, _) = self.leader(topic, partition).await?;
        let conn = self.broker_conn(leader).await?;
        let req = produce_request(topic, partition, records, acks, timeout_ms);
        if acks == 0 {
            let v = conn.version::<ProduceRequest>(12)?;
            conn.send_no_reply(&req, v).await?;
            return Ok(-1);
        }
        // v12 is the last Produce version that names topics (v13 uses topic ids).
        let (resp, _) = conn.call(&req, 12).await?;
        produce_result(resp, topic, partition)
    }

    /// A connection to the leader of a partition, to pin one partition's pipelined produce
    /// stream to (see [`super::conn::Connection::enqueue`]).
    pub async fn leader_conn(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<std::sync::Arc<super::conn::Connection>> {
        self.with_retry("Metadata", || async {
            let (leader, _) = self.leader(topic, partition).await?;
            self.broker_conn(leader).await
        })
        .await
    }

    /// Queues a Produce of one record batch on `conn` (acks -1 or 1) without waiting;
    /// [`produce_result`] reads the reply.
    pub async fn produce_enqueue(
        conn: &super::conn::Connection,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
        timeout_ms: i32,
    ) -> Result<super::conn::Reply<ProduceRequest>> {
        let req = produce_request(topic, partition, records, acks, timeout_ms);
        // v12 is the last Produce version that names topics (v13 uses topic ids).
        let v = conn.version::<ProduceRequest>(12)?;
        conn.enqueue(&req, v).await
    }

    /// Sends a Produce with acks=0 on `conn` (no reply comes, per the protocol guide).
    pub async fn produce_no_ack(
        conn: &super::conn::Connection,
        topic: &str,
        partition: i32,
        records: Bytes,
        timeout_ms: i32,
    ) -> Result<()> {
        let req = produce_request(topic, partition, records, 0, timeout_ms);
        let v = conn.version::<ProduceRequest>(12)?;
        conn.send_no_reply(&req, v).await
    }

    /// Creates topics through the controller-routed CreateTopics API (any broker forwards it
    /// in KRaft mode, KIP-590). TOPIC_ALREADY_EXISTS (36) is an error for the caller to handle.
    pub async fn create_topics(&self, topics: &[NewTopic], timeout_ms: i32) -> Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(tn(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = self
            .with_retry("CreateTopics", || async {
                Ok(self.any_conn().await?.call(&req, 7).await?.0)
            })
            .await?;
        for t in resp.topics {
            if t.error_code != 0 {
                return Err(broker_error(
                    "CreateTopics",
                    t.name.to_string(),
                    t.error_code,
                    t.error_message,
                ));
            }
        }
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        // Wait until the new topics have leaders in metadata.
        for _ in 0..50 {
            let meta = self.load_metadata(Some(&names)).await?;
            if names.iter().all(|n| {
                meta.topics
                    .get(n)
                    .is_some_and(|t| t.partitions.values().all(|p| p.leader >= 0))
            }) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(KafkaError::Other(format!(
            "created topics {names:?} have no leaders after 5 s"
        )))
    }

    /// Deletes topics (used by tests and never by backup or restore plans).
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_names(names.iter().map(|n| tn(n)).collect())
            .with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(tn(n))))
                    .collect(),
            );
        let (resp, _) = self.any_conn().await?.call(&req, 6).await?;
        for r in resp.responses {
            if r.error_code != 0 && r.error_code != 3 {
                return Err(KafkaError::broker(
                    "DeleteTopics",
                    r.name.map(|n| n.to_string()).unwrap_or_default(),
                    r.error_code,
                ));
            }
        }
        let _ = self.refresh_metadata().await;
        Ok(())
    }

    /// Topic configurations (DescribeConfigs, resource type 2 = TOPIC).
    pub async fn describe_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, ConfigEntry>>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let req = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_string(t.clone()))
                })
                .collect(),
        );
        let resp = self
            .with_retry("DescribeConfigs", || async {
                Ok(self.any_conn().await?.call(&req, 4).await?.0)
            })
            .await?;
        let mut out = BTreeMap::new();
        for r in resp.results {
            if r.error_code != 0 {
                return Err(KafkaError::broker(
                    "DescribeConfigs",
                    r.resource_name.to_string(),
                    r.error_code,
                ));
            }
            let entries = r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        ConfigEntry {
                            value: if c.is_sensitive {
                                None
                            } else {
                                c.value.map(|v| v.to_string())
                            },
                            source: c.config_source,
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        },
                    )
                })
                .collect();
            out.insert(r.resource_name.to_string(), entries);
        }
        Ok(out)
    }

    /// Sets topic configs (IncrementalAlterConfigs, KIP-339: operation 0 = SET; resource type 2
    /// = TOPIC), leaving the topic's other overrides as they are. `configs`: topic -> name ->
    /// value. Errors: the first resource the broker refused, with its message.
    pub async fn set_topic_configs(
        &self,
        configs: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        if configs.is_empty() {
            return Ok(());
        }
        let req = IncrementalAlterConfigsRequest::default().with_resources(
            configs
                .iter()
                .map(|(t, kv)| {
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_string(t.clone()))
                        .with_configs(
                            kv.iter()
                                .map(|(k, v)| {
                                    AlterableConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_config_operation(0)
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let resp = self
            .with_retry("IncrementalAlterConfigs", || async {
                Ok(self.any_conn().await?.call(&req, 1).await?.0)
            })
            .await?;
        for r in resp.responses {
            if r.error_code != 0 {
                return Err(broker_error(
                    "IncrementalAlterConfigs",
                    r.resource_name.to_string(),
                    r.error_code,
                    r.error_message,
                ));
            }
        }
        Ok(())
    }

    /// DeleteRecords: moves each partition's log start offset to the given offset (-1 = the
    /// high watermark). Sent to each partition's leader.
    pub async fn delete_records(
        &self,
        parts: &[(String, i32, i64)],
        timeout_ms: i32,
    ) -> Result<()> {
        self.with_retry("DeleteRecords", || async {
            let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
            for (t, p, o) in parts {
                let (leader, _) = self.leader(t, *p).await?;
                by_leader
                    .entry(leader)
                    .or_default()
                    .entry(t.clone())
                    .or_default()
                    .push((*p, *o));
            }
            for (leader, topics) in by_leader {
                let req = DeleteRecordsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                DeleteRecordsTopic::default()
                                    .with_name(tn(t))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|(p, o)| {
                                                DeleteRecordsPartition::default()
                                                    .with_partition_index(*p)
                                                    .with_offset(*o)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let (resp, _) = self.broker_conn(leader).await?.call(&req, 2).await?;
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code != 0 {
                            return Err(KafkaError::broker(
                                "DeleteRecords",
                                format!("{}-{}", t.name.as_str(), p.partition_index),
                                p.error_code,
                            ));
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// The group coordinator's broker id for `group` (FindCoordinator, key type 0).
    pub async fn group_coordinator(&self, group: &str) -> Result<String> {
        self.with_retry("FindCoordinator", || async {
            let conn = self.any_conn().await?;
            let v = conn.version::<FindCoordinatorRequest>(6)?;
            let req = if v >= 4 {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())])
            } else {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_key(StrBytes::from_string(group.to_string()))
            };
            let resp = conn.call_version(&req, v).await?;
            let (code, host, port) = match resp.coordinators.first() {
                Some(c) if v >= 4 => (c.error_code, c.host.to_string(), c.port),
                _ => (resp.error_code, resp.host.to_string(), resp.port),
            };
            if code != 0 {
                return Err(KafkaError::broker(
                    "FindCoordinator",
                    format!("group {group}"),
                    code,
                ));
            }
            Ok(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            })
        })
        .await
    }

    /// All consumer groups of the cluster (ListGroups on every broker).
    pub async fn list_groups(&self) -> Result<Vec<String>> {
        let brokers: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let mut groups = std::collections::BTreeSet::new();
        for b in brokers {
            let resp = self
                .with_retry("ListGroups", || async {
                    Ok(self
                        .broker_conn(b)
                        .await?
                        .call(&ListGroupsRequest::default(), 4)
                        .await?
                        .0)
                })
                .await?;
            if resp.error_code != 0 {
                return Err(KafkaError::broker(
                    "ListGroups",
                    format!("broker {b}"),
                    resp.error_code,
                ));
            }
            groups.extend(resp.groups.into_iter().map(|g| g.group_id.to_string()));
        }
        Ok(groups.into_iter().collect())
    }

    /// Committed offsets of `group` for every topic it has committed to (OffsetFetch v7 at the
    /// group coordinator, topics = null means all). Returns (topic, partition) -> (offset,
    /// leader epoch, metadata).
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), (i64, i32, Option<String>)>> {
        self.with_retry("OffsetFetch", || async {
            let coord = self.group_coordinator(group).await?;
            let conn = self.conn_to(&coord).await?;
            let req = OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(None);
            let (resp, _) = conn.call(&req, 7).await?;
            if resp.error_code != 0 {
                return Err(KafkaError::broker(
                    "OffsetFetch",
                    format!("group {group}"),
                    resp.error_code,
                ));
            }
            let mut out = BTreeMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code == 0 && p.committed_offset >= 0 {
                        out.insert(
                            (t.name.to_string(), p.partition_index),
                            (
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.map(|m| m.to_string()),
                            ),
                        );
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// The committed offsets of `groups` now (OffsetFetch at each group's coordinator, one
    /// group after the other): group -> (topic, partition) -> (offset, metadata). A group
    /// without commits maps to an empty map. Errors: the first OffsetFetch that fails.
    pub async fn committed_groups(&self, groups: &[String]) -> Result<crate::facts::GroupCommits> {
        let mut out = crate::facts::GroupCommits::new();
        for g in groups {
            let c = self.committed_offsets(g).await?;
            out.insert(
                g.clone(),
                c.into_iter().map(|(k, (o, _, m))| (k, (o, m))).collect(),
            );
        }
        Ok(out)
    }
}

/// A member of a consumer group (DescribeGroups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    /// The member's address as the coordinator saw it, e.g. `/10.0.0.7`.
    pub client_host: String,
}

/// A consumer group as its coordinator describes it (DescribeGroups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead` (a group that
    /// does not exist is `Dead` with no member).
    pub state: String,
    pub members: Vec<GroupMember>,
}

impl KafkaClient {
    /// Describes `group` at its coordinator (DescribeGroups v5).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.with_retry("DescribeGroups", || async {
            let coord = self.group_coordinator(group).await?;
            let conn = self.conn_to(&coord).await?;
            let req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
            let (resp, _) = conn.call(&req, 5).await?;
            let g = resp.groups.into_iter().next().ok_or_else(|| {
                KafkaError::Other(format!("DescribeGroups answered without group {group}"))
            })?;
            if g.error_code != 0 {
                return Err(KafkaError::broker(
                    "DescribeGroups",
                    format!("group {group}"),
                    g.error_code,
                ));
            }
            Ok(GroupDescription {
                group: group.to_string(),
                state: g.group_state.to_string(),
                members: g
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id.to_string(),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                    })
                    .collect(),
            })
        })
        .await
    }

    /// Commits `offsets` ((topic, partition) -> (offset, metadata)) for `group` as an admin
    /// client does (OffsetCommit v8 at the coordinator, generation -1, no member id: accepted
    /// only while the group has no active member; the leader epoch is left unset, -1, since
    /// the source's epochs mean nothing on a target). Idempotent, so retried. Returns the
    /// partitions the coordinator refused, with their error.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &crate::facts::Commits,
    ) -> Result<BTreeMap<(String, i32), KafkaError>> {
        /// (partition, offset, metadata) of one topic.
        type Parts<'a> = Vec<(i32, i64, Option<&'a str>)>;
        let mut by_topic: BTreeMap<&str, Parts> = BTreeMap::new();
        for ((t, p), (o, m)) in offsets {
            by_topic.entry(t).or_default().push((*p, *o, m.as_deref()));
        }
        self.with_retry("OffsetCommit", || async {
            let coord = self.group_coordinator(group).await?;
            let conn = self.conn_to(&coord).await?;
            let topics = by_topic
                .iter()
                .map(|(t, parts)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(tn(t))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, o, m)| {
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(
                                            m.map(|m| StrBytes::from_string(m.to_string())),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_retention_time_ms(-1)
                .with_topics(topics);
            let (resp, _) = conn.call(&req, 8).await?;
            let mut refused = BTreeMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        let e = KafkaError::broker(
                            "OffsetCommit",
                            format!("group {group}, {}/{}", t.name.as_str(), p.partition_index),
                            p.error_code,
                        );
                        // NOT_COORDINATOR and friends: the whole request again, elsewhere.
                        if e.is_retriable() {
                            return Err(e);
                        }
                        refused.insert((t.name.to_string(), p.partition_index), e);
                    }
                }
            }
            Ok(refused)
        })
        .await
    }
}

impl KafkaClient {
    /// Deletes the committed offsets of `group` on `partitions` (OffsetDelete v0 at the group
    /// coordinator, KIP-496): what a rollback does to a partition the snapshot has no offset
    /// for. Kafka accepts it only while no member of the group is subscribed to the topic
    /// (else GROUP_SUBSCRIBED_TO_TOPIC for that partition). Idempotent, so retried. Returns
    /// the partitions the coordinator refused, with their error; a refusal of the whole
    /// request (e.g. GROUP_ID_NOT_FOUND, or a broker without the API) is an error.
    pub async fn delete_committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), KafkaError>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        self.with_retry("OffsetDelete", || async {
            let coord = self.group_coordinator(group).await?;
            let conn = self.conn_to(&coord).await?;
            let topics = by_topic
                .iter()
                .map(|(t, parts)| {
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(tn(t))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    offset_delete_request::OffsetDeleteRequestPartition::default()
                                        .with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect();
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(topics);
            let (resp, _) = conn.call(&req, 0).await?;
            if resp.error_code != 0 {
                return Err(KafkaError::broker(
                    "OffsetDelete",
                    format!("group {group}"),
                    resp.error_code,
                ));
            }
            let mut refused = BTreeMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        let e = KafkaError::broker(
                            "OffsetDelete",
                            format!("group {group}, {}/{}", t.name.as_str(), p.partition_index),
                            p.error_code,
                        );
                        if e.is_retriable() {
                            return Err(e);
                        }
                        refused.insert((t.name.to_string(), p.partition_index), e);
                    }
                }
            }
            Ok(refused)
        })
        .await
    }
}

/// A Produce request for one record batch set of one partition.
fn produce_request(
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(tn(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// The base offset of a Produce reply, or the broker's error for the partition.
pub fn produce_result(resp: ProduceResponse, topic: &str, partition: i32) -> Result<i64> {
    let p = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partition_responses)
        .next()
        .ok_or_else(|| KafkaError::Other(format!("Produce response lacks {topic}-{partition}")))?;
    if p.error_code != 0 {
        let mut e = KafkaError::broker("Produce", format!("{topic}-{partition}"), p.error_code);
        if let (KafkaError::Broker { resource, .. }, Some(m)) = (&mut e, p.error_message) {
            resource.push_str(&format!(" ({m})"));
        }
        return Err(e);
    }
    Ok(p.base_offset)
}

/// A partition's Fetch response being read: the header fields, then [`FetchStream::next_batch`]
/// until `None`.
pub struct FetchStream {
    reader: super::conn::ChunkReader,
    remaining: usize,
    truncated_tail: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl FetchStream {
    /// True when the response carried no record bytes at all.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0 && !self.truncated_tail
    }

    /// True when the response ended in a partial batch (the batch at the fetch offset is larger
    /// than `max_bytes`, or the broker cut the response).
    pub fn truncated(&self) -> bool {
        self.truncated_tail
    }

    /// The next complete record batch, exactly as sent. `Ok(None)` at the end; a truncated
    /// last batch (cut at `max_bytes`) is skipped and also ends the stream, with
    /// `truncated()` telling so.
    pub async fn next_batch(&mut self) -> Result<Option<crate::format::batch::RawBatch>> {
        use crate::format::batch::{BatchHeader, HEADER_LEN, RawBatch};
        if self.remaining < HEADER_LEN {
            self.drain().await?;
            return Ok(None);
        }
        let head = self.reader.take(12).await?;
        let len = 12 + (&head[8..12]).get_i32().max(0) as usize;
        if len > self.remaining || len < HEADER_LEN {
            self.remaining -= 12;
            self.truncated_tail = true;
            self.drain().await?;
            return Ok(None);
        }
        let rest = self.reader.take(len - 12).await?;
        self.remaining -= len;
        let mut whole = bytes::BytesMut::with_capacity(len);
        whole.extend_from_slice(&head);
        whole.extend_from_slice(&rest);
        let bytes = whole.freeze();
        let header = BatchHeader::parse(&bytes).expect("at least a header's worth of bytes");
        if header.magic != 2 {
            self.drain().await?;
            return Err(KafkaError::Other(format!(
                "record batch at offset {} has magic {}: only message format v2 (Kafka >= 0.11) is supported",
                header.base_offset, header.magic
            )));
        }
        Ok(Some(RawBatch {
            header,
            bytes,
            stored_from: None,
        }))
    }

    async fn drain(&mut self) -> Result<()> {
        let n = std::mem::take(&mut self.remaining);
        self.reader.skip(n).await
    }
}
