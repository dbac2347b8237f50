//! DescribeLogDirs (KIP-113): the sizes of partitions' logs on the broker that holds them,
//! what a backup's byte estimates start from.
use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::client::KafkaClient;
use super::error::{KafkaError, Result};

impl KafkaClient {
    /// The sizes in bytes of the logs of `parts` on broker `broker` (their leader, for a
    /// backup's estimates): one DescribeLogDirs request (KIP-113; v1-v4 here, the highest the
    /// broker supports: v3 adds the top-level error code, KIP-784; v4 the log directories'
    /// total and usable bytes, KIP-827, which are not needed), retried on retriable errors.
    /// A partition's size is its log's, every segment, from the log directory that holds its
    /// current replica (`is_future_key` false: a future replica being moved by
    /// AlterReplicaLogDirs is not the log fetched).
    ///
    /// Errors: the broker refused (the request needs DESCRIBE on the Cluster resource; a
    /// refusal is CLUSTER_AUTHORIZATION_FAILED in v3+, an empty list of log directories
    /// before), or does not support the API ([`KafkaError::Protocol`]); see
    /// [`log_sizes_of`].
    pub async fn log_dir_sizes(
        &self,
        broker: i32,
        parts: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), u64>> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in parts {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let req = DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|(t, ps)| {
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps.clone())
                })
                .collect(),
        ));
        let resp = self
            .with_retry("DescribeLogDirs", || async {
                Ok(self.broker_conn(broker).await?.call(&req, 4).await?.0)
            })
            .await?;
        log_sizes_of(&resp, broker, parts)
    }
}

/// The sizes of `parts` in a DescribeLogDirs response of broker `broker` (pure). Partitions
/// the broker did not ask about are left out (some brokers answer with every partition they
/// hold); a partition in no log directory is absent from the result; log directories that
/// report an error (e.g. KAFKA_STORAGE_ERROR, offline) are skipped.
///
/// Errors: a top-level error code (v3+, KIP-784), as [`KafkaError::Broker`]; no log
/// directory at all while partitions were asked for, which is how a broker before v3 answers
/// a client not allowed DESCRIBE on the Cluster (KIP-113), as [`KafkaError::Other`].
pub fn log_sizes_of(
    resp: &DescribeLogDirsResponse,
    broker: i32,
    parts: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), u64>> {
    if resp.error_code != 0 {
        return Err(KafkaError::broker(
            "DescribeLogDirs",
            format!("broker {broker}"),
            resp.error_code,
        ));
    }
    if resp.results.is_empty() && !parts.is_empty() {
        return Err(KafkaError::Other(format!(
            "DescribeLogDirs: broker {broker} reported no log directory (a broker refuses so a client without DESCRIBE on the Cluster resource, KIP-113)"
        )));
    }
    let asked: std::collections::BTreeSet<(&str, i32)> =
        parts.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let mut out = BTreeMap::new();
    for dir in resp.results.iter().filter(|d| d.error_code == 0) {
        for t in &dir.topics {
            for p in t.partitions.iter().filter(|p| !p.is_future_key) {
                if p.partition_size >= 0 && asked.contains(&(t.name.as_str(), p.partition_index)) {
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        p.partition_size as u64,
                    );
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };

    fn topic(name: &str, parts: &[(i32, i64, bool)]) -> DescribeLogDirsTopic {
        DescribeLogDirsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, size, future)| {
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p)
                            .with_partition_size(size)
                            .with_is_future_key(future)
                    })
                    .collect(),
            )
    }

    fn asked() -> Vec<(String, i32)> {
        vec![("orders".into(), 0), ("orders".into(), 1)]
    }

    #[test]
    fn sizes_of_the_asked_partitions_current_replicas_in_healthy_dirs() {
        let resp = DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default().with_topics(vec![
                topic("orders", &[(0, 1000, false), (1, 7, true), (2, 5, false)]),
                topic("other", &[(0, 9, false)]),
            ]),
            DescribeLogDirsResult::default()
                .with_topics(vec![topic("orders", &[(1, 2000, false)])]),
            // an offline directory: its figures are not trusted
            DescribeLogDirsResult::default()
                .with_error_code(56)
                .with_topics(vec![topic("orders", &[(0, 1, false)])]),
        ]);
        let got = log_sizes_of(&resp, 1, &asked()).unwrap();
        let want: BTreeMap<(String, i32), u64> =
            [(("orders".into(), 0), 1000), (("orders".into(), 1), 2000)].into();
        assert_eq!(got, want);
    }

    #[test]
    fn a_refusal_is_an_error_in_either_form() {
        // v3+: CLUSTER_AUTHORIZATION_FAILED at the top level (KIP-784)
        let e = log_sizes_of(
            &DescribeLogDirsResponse::default().with_error_code(31),
            3,
            &asked(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("DescribeLogDirs") && e.contains("broker 3"),
            "{e}"
        );
        // before v3: no log directory at all
        let e = log_sizes_of(&DescribeLogDirsResponse::default(), 3, &asked())
            .unwrap_err()
            .to_string();
        assert!(e.contains("DESCRIBE on the Cluster"), "{e}");
        // nothing asked, nothing missing
        assert!(
            log_sizes_of(&DescribeLogDirsResponse::default(), 3, &[])
                .unwrap()
                .is_empty()
        );
    }
}
