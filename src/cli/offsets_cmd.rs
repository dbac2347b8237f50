//! `kubectl kafkabackup offsets show|diff`: consumer-group offsets, read only.
use std::collections::BTreeMap;

use serde::Serialize;

use super::load::{Target, load};
use super::{ClusterArgs, OffsetsCommand, OutputFormat};
use crate::kafka::{ClientConfig, KafkaClient};

/// One row of `offsets show` / `offsets diff`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    /// Committed now (None: no commit).
    pub committed: Option<i64>,
    /// show: log start; diff: the offset the snapshot or the mapping says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
    /// High watermark minus committed (records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// diff: `same`, `differs`, `missing` (no commit now) or `extra` (a commit the reference
    /// does not have).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The report of an offsets command.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetsReport {
    pub group: String,
    pub state: String,
    /// `client-id@host` of each member.
    pub members: Vec<String>,
    /// diff: what the rows are compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    pub rows: Vec<OffsetRow>,
}

async fn connect(c: &ClusterArgs) -> anyhow::Result<KafkaClient> {
    let cfg = if c.files.is_empty() {
        ClientConfig::plaintext(vec![c.bootstrap.clone().unwrap_or_default()])
    } else {
        let (target, secrets) = load(&c.files, c.name.as_deref())?;
        let cluster = match &target {
            Target::Backup(kb) => &kb.spec.kafka_cluster,
            Target::Restore(kr, _) => &kr.spec.kafka_cluster,
            Target::OffsetReset(k, _) => &k.spec.kafka_cluster,
            Target::OffsetRollback(k, _) => &k.spec.kafka_cluster,
            Target::Validation(v, _) => v.spec.kafka_cluster.as_ref().ok_or_else(|| {
                anyhow::anyhow!("the KafkaBackupValidation in the files has no kafkaCluster")
            })?,
        };
        crate::observe::client_config(cluster, &secrets)?
    };
    Ok(KafkaClient::connect(cfg).await?)
}

/// Runs an offsets command; returns what to print. Errors: the cluster unreachable, files
/// that do not load, a snapshot or map that does not parse or fails its checksum.
pub async fn offsets(cmd: &OffsetsCommand) -> anyhow::Result<String> {
    let (group, cluster) = match cmd {
        OffsetsCommand::Show { group, cluster, .. }
        | OffsetsCommand::Diff { group, cluster, .. } => (group, cluster),
    };
    let client = connect(cluster).await?;
    let d = client.describe_group(group).await?;
    let committed = client.committed_offsets(group).await?;
    let mut report = OffsetsReport {
        group: group.clone(),
        state: d.state.clone(),
        members: d
            .members
            .iter()
            .map(|m| format!("{}@{}", m.client_id, m.client_host))
            .collect(),
        against: None,
        rows: vec![],
    };
    match cmd {
        OffsetsCommand::Show { topics, .. } => {
            let parts: Vec<(String, i32)> = committed
                .keys()
                .filter(|(t, _)| topics.is_empty() || topics.contains(t))
                .cloned()
                .collect();
            /// (topic, partition) -> offset.
            type Offsets = std::collections::HashMap<(String, i32), i64>;
            let (lo, hi): (Offsets, Offsets) = if parts.is_empty() {
                (Default::default(), Default::default())
            } else {
                (
                    client
                        .list_offsets(&parts, crate::kafka::ops::OffsetSpec::Earliest)
                        .await?,
                    client
                        .list_offsets(&parts, crate::kafka::ops::OffsetSpec::Latest)
                        .await?,
                )
            };
            for k in parts {
                let (o, _, m) = committed[&k].clone();
                let h = hi.get(&k).copied();
                report.rows.push(OffsetRow {
                    topic: k.0.clone(),
                    partition: k.1,
                    committed: Some(o),
                    expected: None,
                    log_start: lo.get(&k).copied(),
                    high_watermark: h,
                    lag: h.map(|h| h - o),
                    metadata: m,
                    status: None,
                });
            }
        }
        OffsetsCommand::Diff {
            snapshot, mapping, ..
        } => {
            // the reference: (topic, partition) -> expected offset
            let mut want: BTreeMap<(String, i32), i64> = BTreeMap::new();
            if let Some(p) = snapshot {
                let snap = crate::exec::groups::read_snapshot(p)?;
                report.against = Some(format!("snapshot {} ({})", snap.id, p.display()));
                for g in snap.groups.iter().filter(|g| &g.group_id == group) {
                    for o in &g.offsets {
                        want.insert((o.topic.clone(), o.partition), o.offset);
                    }
                }
            } else if let Some(p) = mapping {
                let bytes = std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                let map: crate::format::manifest::OffsetMap =
                    crate::format::manifest::from_json(&bytes, &p.display().to_string())?;
                report.against = Some(format!(
                    "offset map of restore {} ({})",
                    map.restore_name,
                    p.display()
                ));
                for pm in &map.partitions {
                    if let Some((o, _, _)) =
                        committed.get(&(pm.source_topic.clone(), pm.source_partition))
                        && let Some(t) = crate::plan::translate_position(pm, *o)
                    {
                        want.insert((pm.target_topic.clone(), pm.target_partition), t);
                    }
                }
            }
            let keys: std::collections::BTreeSet<(String, i32)> = want
                .keys()
                .cloned()
                .chain(
                    committed
                        .keys()
                        .filter(|k| snapshot.is_some() || want.contains_key(*k))
                        .cloned(),
                )
                .collect();
            for k in keys {
                let now = committed.get(&k).map(|c| c.0);
                let exp = want.get(&k).copied();
                let status = match (now, exp) {
                    (Some(a), Some(b)) if a == b => "same",
                    (Some(_), Some(_)) => "differs",
                    (None, Some(_)) => "missing",
                    _ => "extra",
                };
                report.rows.push(OffsetRow {
                    topic: k.0.clone(),
                    partition: k.1,
                    committed: now,
                    expected: exp,
                    log_start: None,
                    high_watermark: None,
                    lag: None,
                    metadata: committed.get(&k).and_then(|c| c.2.clone()),
                    status: Some(status.into()),
                });
            }
        }
    }
    Ok(match cluster.output {
        OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&report)?,
        OutputFormat::Table => table(&report),
    })
}

fn table(r: &OffsetsReport) -> String {
    let mut out = format!(
        "group {} (state {}, {} member(s){})\n",
        r.group,
        r.state,
        r.members.len(),
        if r.members.is_empty() {
            String::new()
        } else {
            format!(": {}", r.members.join(", "))
        }
    );
    if let Some(a) = &r.against {
        out.push_str(&format!("against {a}\n"));
    }
    let diff = r.against.is_some();
    let head: Vec<&str> = if diff {
        vec!["TOPIC", "PARTITION", "COMMITTED", "EXPECTED", "STATUS"]
    } else {
        vec![
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG START",
            "HIGH WATERMARK",
            "LAG",
            "METADATA",
        ]
    };
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for x in &r.rows {
        rows.push(if diff {
            vec![
                x.topic.clone(),
                x.partition.to_string(),
                opt(x.committed),
                opt(x.expected),
                x.status.clone().unwrap_or_default(),
            ]
        } else {
            vec![
                x.topic.clone(),
                x.partition.to_string(),
                opt(x.committed),
                opt(x.log_start),
                opt(x.high_watermark),
                opt(x.lag),
                x.metadata.clone().unwrap_or_default(),
            ]
        });
    }
    let n = rows[0].len();
    let w: Vec<usize> = (0..n)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
