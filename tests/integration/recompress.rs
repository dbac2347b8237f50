//! Re-compressed producer batches (docs/format.md, "Re-compressed batches"), against the real
//! broker and a filesystem repository: the same topics backed up with `compression: zstd`
//! (batches of gzip, snappy and lz4 re-compressed to zstd) and `compression: keep` (stored as
//! fetched), both restored, and every record checked with confluent-kafka (key, value,
//! headers, timestamp, partition, order; aborted transactions left out). Restored batches
//! carry their producer's codec again, and the lz4 topic's repository shrinks.
use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;
use kafka_backup_operator::format::batch::Codec;
use kafka_backup_operator::format::manifest::RunManifest;
use kafka_backup_operator::format::segment::{FLAG_FROM_MASK, FLAG_FROM_SHIFT, MAGIC};

/// Stored bytes of the topic ending in `suffix`, over all its segments.
fn stored(m: &RunManifest, suffix: &str) -> u64 {
    let t = m.topics.iter().find(|t| t.name.ends_with(suffix)).unwrap();
    let segs = t.partitions.iter().flat_map(|p| &p.segments);
    segs.map(|s| s.stored_bytes).sum()
}

/// The producer codecs the block flags of the topic's segments record (Kafka ids; 0 = as
/// fetched), block by block, read from the segment objects under `root`.
fn block_flags(root: &Path, m: &RunManifest, suffix: &str) -> Vec<u8> {
    let t = m.topics.iter().find(|t| t.name.ends_with(suffix)).unwrap();
    let mut out = Vec::new();
    for s in t.partitions.iter().flat_map(|p| &p.segments) {
        let obj = std::fs::read(root.join(&s.path)).unwrap();
        assert_eq!(&obj[..8], MAGIC);
        let mut pos = 8;
        while pos < obj.len() {
            assert_eq!(&obj[pos..pos + 4], b"KBLK");
            out.push((obj[pos + 5] & FLAG_FROM_MASK) >> FLAG_FROM_SHIFT);
            let len = u32::from_be_bytes(obj[pos + 8..pos + 12].try_into().unwrap());
            pos += 20 + len as usize;
        }
    }
    out
}

/// The codecs of the data batches of `topic`, partition by partition, read with our client.
async fn codecs(topic: &str, partitions: i32) -> Vec<Vec<Codec>> {
    let c = client().await;
    let mut out = Vec::new();
    for p in 0..partitions {
        let (mut next, mut part) = (0, Vec::new());
        loop {
            let mut f = c.fetch_stream(topic, p, next, 4 << 20, 100).await.unwrap();
            let mut any = false;
            while let Some(b) = f.next_batch().await.unwrap() {
                if b.header.last_offset() < next {
                    continue;
                }
                any = true;
                next = b.header.next_offset();
                if !b.header.is_control() {
                    part.push(b.header.codec().unwrap());
                }
            }
            if !any {
                break;
            }
        }
        out.push(part);
    }
    out
}

/// Produces 3000 records to a new 3-partition topic `<prefix>-<codec>` per producer codec, in
/// batches of at most 100 records (so a partition holds many): null and empty keys and values,
/// headers with repeated names and null values, timestamps from 2001 to 2024 inside a batch.
const CODECS: &str = r#"
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, prefix = sys.argv[1], sys.argv[2]
codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(f"{prefix}-{c}", 3, 1, config={"retention.ms": "-1"})
                              for c in codecs]).values():
    f.result(30)
for c in codecs:
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": c, "linger.ms": 20,
                  "batch.num.messages": 100, "acks": "all"})
    for k in range(3000):
        key = None if k % 11 == 0 else (b"" if k % 13 == 0 else f"key-{k % 37}".encode())
        value = None if k % 17 == 0 else (b"" if k % 19 == 0 else
                 (f"{c} record {k} " + "lorem ipsum dolor sit amet " * (k % 25)).encode())
        headers = [("h", None), ("h", b"")] if k % 7 == 0 else [("seq", str(k).encode())]
        ts = 978307200000 + k * 1000 if k % 5 == 0 else 1704067200000 + k
        p.produce(f"{prefix}-{c}", value, key, partition=k % 3, headers=headers, timestamp=ts)
        if k % 500 == 0:
            p.flush(30)
    assert p.flush(30) == 0
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_producer_codec_survives_a_zstd_and_a_keep_backup() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("rc");
    let e = env();
    let out = std::process::Command::new(&e.python)
        .args(["-c", CODECS, &e.bootstrap, &prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let topics: Vec<String> = ["none", "gzip", "snappy", "lz4", "zstd"]
        .iter()
        .map(|c| format!("{prefix}-{c}"))
        .collect();
    let spec = "  stopAtCurrentOffsets: true\n";
    let (kz, kk) = (
        backup_yaml(
            "rcz",
            &[format!("{prefix}-*")],
            &fs_storage(dir.path()),
            spec,
        ),
        backup_yaml(
            "rck",
            &[format!("{prefix}-*")],
            &fs_storage(dir.path()),
            &format!("{spec}  compression: keep\n"),
        ),
    );
    let mz = backup(dir.path(), &[&kz], "rcz").await;
    let mk = backup(dir.path(), &[&kk], "rck").await;
    assert_eq!(
        (mz.compression.as_str(), mk.compression.as_str()),
        ("zstd", "keep")
    );

    // sizes: lz4 shrinks; gzip and snappy do not grow; none and zstd are stored alike
    let size = |suffix: &str| (stored(&mz, suffix), stored(&mk, suffix));
    let (z, k) = size("-lz4");
    assert!(
        z * 10 < k * 9,
        "lz4 topic: zstd repository {z} B, keep {k} B"
    );
    for s in ["-gzip", "-snappy"] {
        let (z, k) = size(s);
        assert!(z < k, "{s}: zstd repository {z} B, keep {k} B");
    }
    for s in ["-none", "-zstd"] {
        let (z, k) = size(s);
        assert_eq!(z, k, "{s} holds no batch of a weaker codec");
    }
    // the blocks say which producer codec their batches had; keep writes no such flag
    for (s, id) in [("-gzip", 1), ("-snappy", 2), ("-lz4", 3)] {
        let flags = block_flags(dir.path(), &mz, s);
        assert!(flags.contains(&id), "{s}: {flags:?}");
        assert!(flags.iter().all(|f| *f == id || *f == 0), "{s}: {flags:?}");
        assert!(block_flags(dir.path(), &mk, s).iter().all(|f| *f == 0));
    }

    for (backup_name, kb, suffix) in [("rcz", &kz, "-z"), ("rck", &kk, "-k")] {
        let name = format!("{backup_name}-restore");
        let kr = restore_yaml(
            &name,
            backup_name,
            &format!("  createTopics: true\n{}", mapping(&topics, suffix)),
        );
        restore(dir.path(), &[kb, &kr], &name).await;
        assert_same(&topics, &suffixed(&topics, suffix), &[]);
        // the target gets the producer's codec back, batch by batch
        for t in &topics {
            let (src, dst) = (codecs(t, 3).await, codecs(&format!("{t}{suffix}"), 3).await);
            assert_eq!(src, dst, "{t}{suffix}");
            assert!(src.iter().all(|p| p.len() > 5), "{t}: {src:?}");
        }
    }
    // a PITR window that cuts batches: their kept records are re-encoded in the producer's codec
    let (start, end) = (1_704_067_201_000i64, 1_704_067_202_000i64);
    let kr = restore_yaml(
        "rcz-pitr",
        "rcz",
        &format!(
            "  createTopics: true\n  pitr:\n    startTimestamp: {start}\n    endTimestamp: {end}\n{}",
            mapping(&topics, "-p")
        ),
    );
    restore(dir.path(), &[&kz, &kr], "rcz-pitr").await;
    let window = [
        "--pitr-start",
        &start.to_string(),
        "--pitr-end",
        &end.to_string(),
    ]
    .map(String::from);
    let window: Vec<&str> = window.iter().map(String::as_str).collect();
    assert_same(&topics, &suffixed(&topics, "-p"), &window);
    let lz4 = codecs(&format!("{prefix}-lz4-p"), 3).await;
    assert!(
        lz4.iter()
            .all(|p| !p.is_empty() && p.iter().all(|c| *c == Codec::Lz4)),
        "{lz4:?}"
    );
}

/// Produces to a new 2-partition `topic`, all with lz4: a transactional producer commits,
/// aborts, then commits again, an idempotent producer writing between; prints the number of
/// committed and aborted records as JSON.
const TXN_LZ4: &str = r#"
import json, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "-1"})]).values():
    f.result(30)
common = {"bootstrap.servers": bootstrap, "compression.type": "lz4", "linger.ms": 50,
          "batch.size": 1000000, "batch.num.messages": 10000}
t = Producer({**common, "transactional.id": topic + "-txn"})
t.init_transactions(30)
i = Producer({**common, "enable.idempotence": True})
n = {"committed": 0, "aborted": 0}
def send(p, what, count):
    for k in range(count):
        v = (f"{what} {k} " + "some compressible text " * (k % 30)).encode()
        p.produce(topic, v, f"key-{k % 17}".encode(), partition=k % 2,
                  headers=[("what", what.encode())], timestamp=1704067200000 + k)
    p.flush(30)
for outcome in ["committed", "aborted", "committed"]:
    t.begin_transaction()
    send(t, outcome, 400)
    send(i, "idempotent", 200)
    n["committed"] += 200
    t.commit_transaction(30) if outcome == "committed" else t.abort_transaction(30)
    n[outcome] += 400
print(json.dumps(n))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn transactional_lz4_batches_restore_with_their_markers() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("rctxn");
    let e = env();
    let out = std::process::Command::new(&e.python)
        .args(["-c", TXN_LZ4, &e.bootstrap, &topic])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = backup_yaml(
        "rctxn",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let m = backup(dir.path(), &[&kb], "rctxn").await;
    // transactional batches were re-compressed from lz4; the indexes carry every marker
    let flags = block_flags(dir.path(), &m, &topic);
    assert!(flags.contains(&3), "{flags:?}");
    let mut markers = BTreeMap::new();
    for p in &m.topics[0].partitions {
        for s in &p.segments {
            let idx = dir.path().join(s.path.replace(".seg", ".idx.json"));
            let idx: serde_json::Value =
                serde_json::from_slice(&std::fs::read(idx).unwrap()).unwrap();
            for mk in idx["markers"].as_array().unwrap() {
                *markers.entry(mk["commit"].as_bool().unwrap()).or_insert(0) += 1;
            }
            assert!(
                idx["blocks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b["transactional"] == true),
                "{idx}"
            );
        }
    }
    assert_eq!(markers, BTreeMap::from([(false, 2), (true, 4)]));
    let kr = restore_yaml(
        "rctxn-r",
        "rctxn",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    let out = restore(dir.path(), &[&kb, &kr], "rctxn-r").await;
    assert_eq!(
        out.records, 1400,
        "800 committed and 600 idempotent records"
    );
    let (src, dst) = (vec![topic.clone()], vec![format!("{topic}-r")]);
    assert_same(&src, &dst, &[]);
    // aborted records are not in the target even for a read_uncommitted reader
    assert_same(&src, &dst, &["--target-isolation", "read_uncommitted"]);
    let restored = codecs(&dst[0], 2).await;
    assert!(
        restored
            .iter()
            .all(|p| p.len() >= 4 && p.iter().all(|c| *c == Codec::Lz4)),
        "the committed and idempotent batches, in lz4: {restored:?}"
    );
}
