//! The target fence: at most one restore writes to a target topic at a time, whatever
//! repository or state storage each restore uses (docs/format.md, "Target fence").
//!
//! The one thing two restores into the same topic always share is the target cluster, so the
//! fence lives there: a claim log, the single-partition topic [`CLAIMS_TOPIC`]. Kafka orders
//! the records of one partition totally, and every participant decides from that order alone:
//!
//! - A restore appends a **claim** (its token, restore name, holder and target topics), then
//!   reads the log from a few minutes back up to its claim. The claim is **granted** when no
//!   earlier granted claim on a shared topic is still **live** (not released, and its newest
//!   claim or heartbeat at most [`TTL`] older than the new claim). A refused claim appends a
//!   release and fails with [`ExecError::Locked`] naming the holder (the operator waits and
//!   tries again, as for a locked repository).
//! - The holder appends a **heartbeat** every [`HEARTBEAT`] and reads what came after: a later
//!   claim that was granted (this holder was silent for longer than [`TTL`]) means the fence
//!   was lost, and the run stops as a kill would (the journal makes the next attempt exact).
//! - At the end the holder appends a **release**.
//!
//! Two restores started together both append claims; the one whose claim comes first in the
//! log is granted and the other is refused: never both. A claim of the same restore whose
//! holder was a process of this host that no longer runs (killed with SIGKILL) does not block
//! its resumption. Decisions use record timestamps (CreateTime: each writer's clock), so the
//! clocks of the writers must agree to well within [`TTL`].
//!
//! May do: produce to and fetch from [`CLAIMS_TOPIC`], create it, read target offsets. Imports
//! neither `api` nor `observe`.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ExecError;
use super::lock::{HEARTBEAT, TTL, holder_id, holder_is_gone, now_ms, rfc3339};
use crate::format::batch::{self, Codec, Record};
use crate::kafka::KafkaClient;
use crate::kafka::ops::{NewTopic, OffsetSpec};
use crate::plan::{RestorePlan, TargetState};

/// The claim log on the target cluster: one partition, records kept for a day.
pub const CLAIMS_TOPIC: &str = "__kbo_restore_claims";
/// Format tag of a claim record's JSON value.
const CLAIM_FORMAT: &str = "kafka-backup-operator/restore-claim/v1";
/// How far back a reader starts: claims older than this cannot be live ([`TTL`] plus slack
/// for clock differences).
const LOOK_BACK_MS: i64 = 5 * 60_000;
/// Produce timeout for claim records, ms.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// What a claim-log record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimKind {
    Claim,
    Heartbeat,
    Release,
}

/// The JSON value of a claim-log record (the key is the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRecord {
    pub format: String,
    pub kind: ClaimKind,
    /// Unique per acquisition.
    pub token: String,
    /// The KafkaRestore's name.
    pub restore: String,
    /// `POD_NAME` or host name, and pid ([`holder_id`]).
    pub holder: String,
    /// What the restore does, for the refusal message.
    pub purpose: String,
    /// Target topics, sorted.
    pub topics: Vec<String>,
}

/// A record of the log as read back: its offset and timestamp (epoch ms).
#[derive(Debug, Clone)]
pub struct Seen {
    pub offset: i64,
    pub ts: i64,
    pub rec: ClaimRecord,
}

/// Which claims of `log` (in offset order) are granted, by token, and the granted claim that
/// beat each refused one. Pure: every reader of the same records decides the same.
pub fn decide(log: &[Seen]) -> BTreeMap<String, Result<(), Seen>> {
    let ttl = TTL.as_millis() as i64;
    // granted tokens still live: token -> (newest record time, that claim)
    let mut live: HashMap<String, (i64, Seen)> = HashMap::new();
    let mut out = BTreeMap::new();
    for s in log {
        match s.rec.kind {
            ClaimKind::Release => {
                live.remove(&s.rec.token);
            }
            ClaimKind::Heartbeat => {
                // Only a granted holder heartbeats; its claim may lie before the window.
                if !matches!(out.get(&s.rec.token), Some(Err(_))) {
                    live.insert(s.rec.token.clone(), (s.ts, s.clone()));
                }
            }
            ClaimKind::Claim => {
                let beaten_by = live
                    .values()
                    .filter(|(ts, l)| {
                        l.rec.token != s.rec.token
                            && *ts >= s.ts - ttl
                            && l.rec.topics.iter().any(|t| s.rec.topics.contains(t))
                            && !(l.rec.restore == s.rec.restore && holder_is_gone(&l.rec.holder))
                    })
                    .min_by_key(|(_, l)| l.offset)
                    .map(|(_, l)| l.clone());
                match beaten_by {
                    Some(w) => {
                        out.insert(s.rec.token.clone(), Err(w));
                    }
                    None => {
                        out.insert(s.rec.token.clone(), Ok(()));
                        live.insert(s.rec.token.clone(), (s.ts, s.clone()));
                    }
                }
            }
        }
    }
    out
}

/// The claim log as one reader sees it.
struct ClaimLog {
    client: KafkaClient,
    /// Next offset to fetch.
    next: i64,
    records: Vec<Seen>,
}

impl ClaimLog {
    /// Creates the topic if it is missing and positions the reader [`LOOK_BACK_MS`] back.
    async fn open(client: &KafkaClient) -> Result<ClaimLog, ExecError> {
        let meta = client
            .load_metadata(Some(&[CLAIMS_TOPIC.to_string()]))
            .await?;
        if !meta.topics.contains_key(CLAIMS_TOPIC) {
            let topic = NewTopic {
                name: CLAIMS_TOPIC.into(),
                partitions: 1,
                replication_factor: -1,
                configs: [
                    ("retention.ms".to_string(), "86400000".to_string()),
                    ("cleanup.policy".to_string(), "delete".to_string()),
                ]
                .into(),
            };
            match client.create_topics(&[topic], PRODUCE_TIMEOUT_MS).await {
                Ok(()) => {}
                // created by another restore meanwhile
                Err(crate::kafka::KafkaError::Broker { code: 36, .. }) => {}
                Err(e) => {
                    return Err(ExecError::Failed(format!(
                        "cannot create the restore claim log {CLAIMS_TOPIC} on the target cluster ({e}): a restore fences its target topics there so that two restores never write one topic at once; grant the restore's principal Create, Write and Read on topic {CLAIMS_TOPIC}, or create it (1 partition)"
                    )));
                }
            }
        }
        let part = [(CLAIMS_TOPIC.to_string(), 0)];
        let from = client
            .list_offsets(&part, OffsetSpec::Timestamp(now_ms() - LOOK_BACK_MS))
            .await?;
        let next = match from.get(&part[0]).copied() {
            Some(o) if o >= 0 => o,
            _ => client
                .list_offsets(&part, OffsetSpec::Latest)
                .await?
                .get(&part[0])
                .copied()
                .unwrap_or(0),
        };
        Ok(ClaimLog {
            client: client.clone(),
            next,
            records: vec![],
        })
    }

    /// Appends one record; returns its offset.
    async fn append(&self, rec: &ClaimRecord) -> Result<i64, ExecError> {
        append(&self.client, rec).await
    }

    /// Reads every record up to the high watermark (at least past `until`).
    async fn catch_up(&mut self, until: i64) -> Result<(), ExecError> {
        for _ in 0..10_000 {
            let mut stream = self
                .client
                .fetch_stream(CLAIMS_TOPIC, 0, self.next, 1 << 20, 100)
                .await?;
            let hwm = stream.high_watermark;
            while let Some(b) = stream.next_batch().await? {
                let next = b.header.next_offset();
                if !b.header.is_control() {
                    for r in batch::decode_records(&b)? {
                        if r.offset < self.next {
                            continue;
                        }
                        match r
                            .value
                            .as_deref()
                            .map(serde_json::from_slice::<ClaimRecord>)
                        {
                            Some(Ok(rec)) if rec.format == CLAIM_FORMAT => {
                                self.records.push(Seen {
                                    offset: r.offset,
                                    ts: r.timestamp,
                                    rec,
                                })
                            }
                            _ => tracing::warn!(
                                topic = CLAIMS_TOPIC,
                                offset = r.offset,
                                "a record of the restore claim log is not a claim: ignored"
                            ),
                        }
                    }
                }
                self.next = self.next.max(next);
            }
            if self.next >= hwm && self.next > until {
                return Ok(());
            }
            if self.next >= hwm {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Err(ExecError::Failed(format!(
            "the restore claim log {CLAIMS_TOPIC} could not be read up to offset {until}"
        )))
    }
}

/// Appends one record to the claim log (key: the token; value: the JSON); returns its offset.
async fn append(client: &KafkaClient, rec: &ClaimRecord) -> Result<i64, ExecError> {
    let value = serde_json::to_vec(rec).map_err(|e| ExecError::Failed(e.to_string()))?;
    let batch = batch::encode_batch(
        &[Record {
            offset: 0,
            timestamp: now_ms(),
            key: Some(Bytes::from(rec.token.clone())),
            value: Some(Bytes::from(value)),
            headers: vec![],
        }],
        Codec::None,
    )?;
    Ok(client
        .produce(CLAIMS_TOPIC, 0, batch, -1, PRODUCE_TIMEOUT_MS)
        .await?)
}

/// A granted claim on target topics. Dropping it stops the heartbeat; [`TargetFence::hold`]
/// releases it.
pub struct TargetFence {
    log_client: KafkaClient,
    rec: ClaimRecord,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<Option<String>>,
}

impl TargetFence {
    /// Claims `topics` for restore `restore` (`purpose` says what it does).
    ///
    /// Errors: [`ExecError::Locked`] naming the restore that holds one of the topics; Kafka
    /// failures; a claim log that cannot be created (ACLs: the message says which).
    pub async fn acquire(
        client: &KafkaClient,
        restore: &str,
        purpose: &str,
        topics: &[String],
    ) -> Result<TargetFence, ExecError> {
        let mut log = ClaimLog::open(client).await?;
        let rec = ClaimRecord {
            format: CLAIM_FORMAT.into(),
            kind: ClaimKind::Claim,
            token: format!("{:016x}", rand::random::<u64>()),
            restore: restore.into(),
            holder: holder_id(),
            purpose: purpose.into(),
            topics: topics.to_vec(),
        };
        let at = log.append(&rec).await?;
        log.catch_up(at).await?;
        let verdict = decide(&log.records).remove(&rec.token);
        if let Some(Err(w)) = verdict {
            let mut release = rec.clone();
            release.kind = ClaimKind::Release;
            let _ = log.append(&release).await;
            let shared: Vec<String> = w
                .rec
                .topics
                .iter()
                .filter(|t| topics.contains(t))
                .cloned()
                .collect();
            return Err(ExecError::Locked(format!(
                "target locked: topic(s) {shared:?} are being written by restore {:?} ({}, held by {}, last seen {}): two restores into one topic would write its records twice. Wait for it to finish (the operator retries by itself), or restore into another topic (topicMapping). A holder that stopped without releasing is ignored {} s after it was last seen",
                w.rec.restore,
                w.rec.purpose,
                w.rec.holder,
                rfc3339(w.ts),
                TTL.as_secs()
            )));
        }
        let (tx, lost) = tokio::sync::watch::channel(None);
        let heartbeat = tokio::spawn(beat(log, rec.clone(), at, tx));
        Ok(TargetFence {
            log_client: client.clone(),
            rec,
            heartbeat,
            lost,
        })
    }

    /// Resolves when the fence is lost to another restore, with the reason.
    async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work` while holding the fence, then releases it. A fence lost meanwhile stops
    /// `work` and returns [`ExecError::Locked`].
    pub async fn hold<T>(
        self,
        work: impl std::future::Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        let r = tokio::select! {
            r = work => r,
            why = self.lost() => Err(ExecError::Locked(why)),
        };
        self.heartbeat.abort();
        let mut release = self.rec.clone();
        release.kind = ClaimKind::Release;
        if let Err(e) = append(&self.log_client, &release).await {
            tracing::warn!(topic = CLAIMS_TOPIC, error = %e,
                "the restore's claim was not released; it lapses by itself after {} s", TTL.as_secs());
        }
        r
    }
}

/// The holder's heartbeat: appends a heartbeat every [`HEARTBEAT`] and reports a later
/// granted claim on a shared topic as the fence lost.
async fn beat(
    mut log: ClaimLog,
    rec: ClaimRecord,
    claimed_at: i64,
    tx: tokio::sync::watch::Sender<Option<String>>,
) {
    let mut hb = rec.clone();
    hb.kind = ClaimKind::Heartbeat;
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let at = match log.append(&hb).await {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(topic = CLAIMS_TOPIC, error = %e, "restore claim not renewed; retrying");
                continue;
            }
        };
        if let Err(e) = log.catch_up(at).await {
            tracing::warn!(topic = CLAIMS_TOPIC, error = %e, "restore claim log not read; retrying");
            continue;
        }
        let granted = decide(&log.records);
        if let Some(w) = log.records.iter().find(|s| {
            s.offset > claimed_at
                && s.rec.kind == ClaimKind::Claim
                && s.rec.token != rec.token
                && s.rec.topics.iter().any(|t| rec.topics.contains(t))
                && matches!(granted.get(&s.rec.token), Some(Ok(())))
        }) {
            let _ = tx.send(Some(format!(
                "target locked: restore {:?} ({}) claimed topic(s) {:?} while this restore held them (it was silent for longer than {} s?): stopping",
                w.rec.restore,
                w.rec.holder,
                w.rec.topics,
                TTL.as_secs()
            )));
            return;
        }
        // keep the window bounded: records older than the look-back cannot matter
        let horizon = now_ms() - LOOK_BACK_MS;
        log.records
            .retain(|s| s.ts >= horizon || s.rec.token == rec.token);
    }
}

/// Checks, after the fence is held and before anything is written, that the targets are as
/// the plan saw them: a topic the plan creates does not exist yet, and a partition the plan
/// found empty is still empty. A restore that finished (or another writer) in between would
/// otherwise have its records doubled.
///
/// Errors: [`ExecError::Conflict`] naming the topic or partition and the fix (run again: the
/// next plan sees the target as it is).
pub async fn check_targets_unchanged(
    plan: &RestorePlan,
    client: &KafkaClient,
) -> Result<(), ExecError> {
    let mut expect: BTreeMap<(String, i32), TargetState> = BTreeMap::new();
    for s in &plan.partitions {
        expect.insert((s.target_topic.clone(), s.target_partition), s.target_state);
    }
    for r in &plan.repartitioned {
        for t in r.targets() {
            expect.insert(t, r.target_state);
        }
    }
    let topics: BTreeSet<String> = expect.keys().map(|(t, _)| t.clone()).collect();
    let topics: Vec<String> = topics.into_iter().collect();
    let meta = client.load_metadata(Some(&topics)).await?;
    let created: BTreeSet<String> = plan.create_topics.iter().map(|t| t.name.clone()).collect();
    let mut check: Vec<(String, i32)> = vec![];
    for ((t, p), state) in &expect {
        let exists = meta.topics.contains_key(t);
        match state {
            TargetState::Created if exists && created.contains(t) => {
                check.push((t.clone(), *p));
            }
            TargetState::Empty => check.push((t.clone(), *p)),
            _ => {}
        }
    }
    if check.is_empty() {
        return Ok(());
    }
    let start = client.list_offsets(&check, OffsetSpec::Earliest).await?;
    let end = client.list_offsets(&check, OffsetSpec::Latest).await?;
    let mut changed = vec![];
    for k in &check {
        let (a, b) = (
            start.get(k).copied().unwrap_or(0),
            end.get(k).copied().unwrap_or(0),
        );
        if b > a {
            changed.push(format!("{}-{} (offsets {a}..{b})", k.0, k.1));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(ExecError::Conflict(format!(
        "target partitions received records after this restore was planned: {}; another restore or producer wrote them. Nothing was written by this restore. Run it again to plan against the target as it is now (purgeTopics or appendToExisting decide what happens to those records)",
        changed.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(offset: i64, ts: i64, kind: ClaimKind, token: &str, topics: &[&str]) -> Seen {
        Seen {
            offset,
            ts,
            rec: ClaimRecord {
                format: CLAIM_FORMAT.into(),
                kind,
                token: token.into(),
                restore: format!("r-{token}"),
                holder: "other-host/pid 1".into(),
                purpose: "restore".into(),
                topics: topics.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn the_first_claim_wins_and_a_refused_claim_does_not_block_later_ones() {
        use ClaimKind::*;
        let log = vec![
            seen(0, 1_000, Claim, "a", &["t"]),
            seen(1, 1_001, Claim, "b", &["t", "u"]),
            seen(2, 1_002, Claim, "c", &["u"]),
            seen(3, 1_003, Claim, "d", &["v"]),
        ];
        let d = decide(&log);
        assert!(d["a"].is_ok());
        assert_eq!(d["b"].as_ref().unwrap_err().rec.token, "a");
        assert!(d["c"].is_ok(), "b was refused, so it holds nothing");
        assert!(d["d"].is_ok(), "another topic");
    }

    #[test]
    fn released_and_silent_claims_lapse_and_heartbeats_keep_a_claim_live() {
        use ClaimKind::*;
        let ttl = TTL.as_millis() as i64;
        let log = vec![
            seen(0, 0, Claim, "a", &["t"]),
            seen(1, 10, Release, "a", &["t"]),
            seen(2, 20, Claim, "b", &["t"]),
            seen(3, 20 + ttl / 2, Heartbeat, "b", &["t"]),
            seen(4, 20 + ttl, Claim, "c", &["t"]),
            seen(5, 20 + ttl / 2 + ttl + 1, Claim, "d", &["t"]),
            // a heartbeat whose claim lies before the window still holds
            seen(6, 10 * ttl, Heartbeat, "z", &["w"]),
            seen(7, 10 * ttl + 5, Claim, "e", &["w"]),
        ];
        let d = decide(&log);
        assert!(d["b"].is_ok(), "a released");
        assert_eq!(d["c"].as_ref().unwrap_err().rec.token, "b");
        assert!(d["d"].is_ok(), "b silent for longer than the TTL");
        assert_eq!(d["e"].as_ref().unwrap_err().rec.token, "z");
    }
}
