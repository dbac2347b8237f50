//! The sizes of the logs a backup reads, from their leaders (DescribeLogDirs, KIP-113), for
//! its byte estimates; a broker that will not say leaves its partitions unknown, with why.
use std::collections::BTreeMap;

use crate::facts::{ClusterMeta, LogSizes};
use crate::kafka::KafkaClient;

/// The sizes of the logs of `parts` on their leaders (per `meta`), one DescribeLogDirs request
/// per leader, all leaders at once ([`KafkaClient::log_dir_sizes`]). Never fails: estimates
/// are not worth failing a plan or a run for, so a partition without a leader, a broker that
/// refuses the request (it needs DESCRIBE on the Cluster resource) or does not support it,
/// or one that cannot be reached, leaves its partitions out of [`LogSizes::bytes`] and says
/// why in [`LogSizes::unknown`].
pub async fn observe_log_sizes(
    client: &KafkaClient,
    meta: &ClusterMeta,
    parts: &[(String, i32)],
) -> LogSizes {
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut leaderless = 0;
    for (t, p) in parts {
        match meta.topics.get(t).and_then(|m| m.partitions.get(p)) {
            Some(pm) if pm.leader >= 0 => by_leader
                .entry(pm.leader)
                .or_default()
                .push((t.clone(), *p)),
            _ => leaderless += 1,
        }
    }
    let calls = by_leader.iter().map(|(&leader, ps)| async move {
        (leader, ps.len(), client.log_dir_sizes(leader, ps).await)
    });
    let mut out = LogSizes::default();
    if leaderless > 0 {
        out.unknown
            .push(format!("{leaderless} partition(s) have no leader to ask"));
    }
    for (leader, asked, r) in futures::future::join_all(calls).await {
        match r {
            Ok(sizes) => {
                if sizes.len() < asked {
                    out.unknown.push(format!(
                        "broker {leader} reported no log for {} of its {asked} partition(s)",
                        asked - sizes.len()
                    ));
                }
                out.bytes.extend(sizes);
            }
            Err(e) => {
                tracing::info!(broker = leader, error = %e, "no log sizes for the byte estimates");
                out.unknown.push(format!(
                    "broker {leader} gave no log sizes for {asked} partition(s): {e}"
                ));
            }
        }
    }
    out
}
