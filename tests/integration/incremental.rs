use crate::support::*;
use kafka_backup_operator::format::batch::Codec;
use kafka_backup_operator::kafka::ops::OffsetSpec;

async fn append(topic: &str, partitions: i32, n: usize) {
    append_records(topic, partitions, n, "later", Codec::Zstd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn second_run_stores_only_what_is_past_the_previous_cut() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("inc");
    produce_sample(&format!("{prefix}-"), 100);
    let topic = format!("{prefix}-zstd");
    let kb = backup_yaml(
        "inc",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let run1 = backup(dir.path(), &[&kb], "inc").await;
    append(&topic, 3, 25).await;
    // the run id has millisecond resolution
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let run2 = backup(dir.path(), &[&kb], "inc").await;
    assert_eq!(run2.previous_run_id.as_deref(), Some(run1.run_id.as_str()));
    for (p1, p2) in run1.topics[0]
        .partitions
        .iter()
        .zip(&run2.topics[0].partitions)
    {
        assert_eq!(p2.start_offset, p1.cut, "run 2 starts at run 1's cut");
        assert_eq!(p2.cut, p1.cut + 25);
        assert_eq!(p2.covered_from, p1.covered_from);
        // run 2 lists run 1's segments and adds only new ones past the cut
        assert_eq!(&p2.segments[..p1.segments.len()], &p1.segments[..]);
        assert!(
            p2.segments[p1.segments.len()..]
                .iter()
                .all(|s| s.first_offset >= p1.cut)
        );
        assert_eq!(p2.records, p1.records + 25);
    }
    let stored_new: u64 = run2.topics[0]
        .partitions
        .iter()
        .zip(&run1.topics[0].partitions)
        .flat_map(|(p2, p1)| p2.segments.iter().filter(|s| !p1.segments.contains(s)))
        .map(|s| s.records)
        .sum();
    assert_eq!(
        stored_new, 75,
        "only the 75 appended records were fetched again"
    );

    // restore the latest run: everything
    let kr = restore_yaml(
        "inc-all",
        "inc",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-all\n"),
    );
    restore(dir.path(), &[&kb, &kr], "inc-all").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-all")], &[]);
    // restore run 1 by id: only what existed then
    let kr1 = restore_yaml(
        "inc-first",
        "inc",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-first\n"),
    )
    .replace(
        "    name: inc\n",
        &format!("    name: inc\n    backupId: \"{}\"\n", run1.run_id),
    );
    restore(dir.path(), &[&kb, &kr1], "inc-first").await;
    let c = client().await;
    let parts: Vec<(String, i32)> = (0..3).map(|p| (format!("{topic}-first"), p)).collect();
    let hw: i64 = c
        .list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap()
        .values()
        .sum();
    assert_eq!(hw as u64, run1.total_records);
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_group_snapshot_stores_committed_offsets_of_groups_reading_the_topics() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("grp");
    produce_sample(&format!("{prefix}-"), 60);
    let topic = format!("{prefix}-lz4");
    let group = format!("{prefix}-readers");
    let e = env();
    let script = format!(
        "from confluent_kafka import Consumer, TopicPartition\n\
c = Consumer({{'bootstrap.servers': '{}', 'group.id': '{group}', 'enable.auto.commit': False}})\n\
c.commit(offsets=[TopicPartition('{topic}', 0, 7), TopicPartition('{topic}', 2, 11)], asynchronous=False)\n\
c.close()\n",
        e.bootstrap
    );
    let out = std::process::Command::new(&e.python)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = backup_yaml(
        "grp",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  consumerGroupSnapshot: true\n",
    );
    let m = backup(dir.path(), &[&kb], "grp").await;
    let g = m
        .consumer_groups
        .iter()
        .find(|g| g.group_id == group)
        .expect("the group is in the snapshot");
    let mut offs: Vec<(i32, i64)> = g.offsets.iter().map(|o| (o.partition, o.offset)).collect();
    offs.sort();
    assert_eq!(offs, vec![(0, 7), (2, 11)]);
    assert!(g.offsets.iter().all(|o| o.topic == topic));
    // without the flag, no snapshot
    let kb2 = backup_yaml(
        "grp2",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "",
    );
    assert!(
        backup(dir.path(), &[&kb2], "grp2")
            .await
            .consumer_groups
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_old_runs_and_keeps_what_the_latest_needs() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("ret");
    produce_sample(&format!("{prefix}-"), 60);
    let topic = format!("{prefix}-lz4");
    let kb = backup_yaml(
        "ret",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  retention:\n    enabled: true\n    keepLast: 1\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    let mut runs = Vec::new();
    for round in 0..3 {
        if round > 0 {
            append(&topic, 3, 5).await;
        }
        let (ok, out, err) = cli(&["run", "--no-progress", "-f", f.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
        assert!(out.contains("retention: "), "{out}");
        runs.push(
            out.lines()
                .find(|l| l.starts_with("manifest: "))
                .unwrap()
                .to_string(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let manifests: Vec<String> = tree(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("manifest.json"))
        .collect();
    assert_eq!(
        manifests.len(),
        1,
        "keepLast 1: only the newest run stays: {manifests:?}"
    );
    assert!(
        runs[2].ends_with(&manifests[0]),
        "{runs:?} vs {manifests:?}"
    );
    // the latest run lists the first runs' segments (its covered range starts at offset 0):
    // they are kept, and the latest run still restores everything
    let kr = restore_yaml(
        "ret-r",
        "ret",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    restore(dir.path(), &[&kb, &kr], "ret-r").await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}

/// A topic deleted and recreated between two runs on a broker without topic ids (noida-db
/// reports all-zero ids), refilled past the old cut: the second run sees that the previous
/// run's last batch is gone, backs the new topic up from its start as a new incarnation, and
/// a restore of it holds the new records only (nothing spliced from the old topic).
#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_is_backed_up_from_its_start_never_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("recr");
    let first = gen_load(&topic, 1, 1);
    let kb = backup_yaml(
        "rc",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  stopAtCurrentOffsets: true\n",
    );
    let m1 = backup(dir.path(), &[&kb], "rc").await;
    assert_eq!(m1.total_records, first);
    let c = client().await;
    c.delete_topics(std::slice::from_ref(&topic)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = gen_load(&topic, 1, 2);
    assert!(second > first, "refilled past the old cut");
    let m2 = backup(dir.path(), &[&kb], "rc").await;
    let p = &m2.topics[0].partitions[0];
    assert_eq!(p.covered_from, 0);
    assert_eq!(m2.total_records, second, "only the new incarnation: {p:?}");
    assert!(
        p.segments.iter().all(|s| s.path.contains(&m2.run_id)),
        "no segment of the old topic is carried: {:?}",
        p.segments
    );
    assert!(
        p.gaps.iter().any(|g| g.reason.contains("recreated")),
        "{:?}",
        p.gaps
    );
    let target = format!("{topic}-r");
    let kr = restore_yaml(
        "rcr",
        "rc",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {target}\n"),
    );
    let out = restore(dir.path(), &[&kb, &kr], "rcr").await;
    assert_eq!(out.records, second);
    assert_same(&[topic], &[target], &[]);
}
