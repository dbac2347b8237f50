//! YAML -> validated resources -> plan, as `plan -f` does it: every document is loaded and
//! validated, and each valid KafkaBackup is compiled against a small synthetic cluster (the
//! topics it names literally, 3 partitions each, with offsets). Errors are fine; a panic, or
//! a plan that breaks its own invariants, is not.
#![no_main]
use std::collections::BTreeMap;

use kafka_backup_operator::api::{Document, load_and_validate, validate_backup};
use kafka_backup_operator::facts::{ClusterMeta, PartitionMeta, PartitionOffsets, TopicMeta};
use kafka_backup_operator::plan::{BackupFacts, compile_backup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = load_and_validate(text, "fuzz.yaml") else {
        return;
    };
    for d in docs {
        let Document::Backup(kb) = d else { continue };
        let Ok(input) = validate_backup(&kb) else {
            continue;
        };
        let mut meta = ClusterMeta::default();
        let mut offsets = BTreeMap::new();
        for t in &kb.spec.topics {
            let name: String = t.chars().filter(|c| !"*?[]{}~".contains(*c)).collect();
            if name.is_empty() {
                continue;
            }
            let partitions = (0..3)
                .map(|p| {
                    offsets.insert(
                        (name.clone(), p),
                        PartitionOffsets {
                            log_start: p as i64,
                            high_watermark: 10 * p as i64 + 5,
                        },
                    );
                    (
                        p,
                        PartitionMeta {
                            leader: 1,
                            leader_epoch: 0,
                            replicas: vec![1],
                        },
                    )
                })
                .collect();
            meta.topics.insert(
                name.clone(),
                TopicMeta {
                    name,
                    topic_id: "00000000-0000-0000-0000-000000000000".into(),
                    is_internal: false,
                    partitions,
                },
            );
        }
        let facts = BackupFacts {
            name: kb.metadata.name.clone().unwrap_or_default(),
            now_ms: 1_796_000_000_000,
            meta,
            offsets,
            configs: BTreeMap::new(),
            previous: None,
            checkpoint: None,
            diverged: BTreeMap::new(),
            log_sizes: Default::default(),
        };
        if let Ok(plan) = compile_backup(&input, &facts) {
            for s in &plan.partitions {
                assert!(
                    facts.offsets.contains_key(&(s.topic.clone(), s.partition)),
                    "a planned partition exists: {s:?}"
                );
            }
        }
    }
});
