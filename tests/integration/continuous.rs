//! `continuous: true` streams until stopped, then closes its run with everything it saw.
use std::time::{Duration, Instant};

use kafka_backup_operator::cli::load::{Target, load};
use kafka_backup_operator::exec::engine::system_now_ms;
use kafka_backup_operator::exec::{Cancel, ExecContext, Progress, run_backup};
use kafka_backup_operator::format::batch::{Codec, Record, encode_batch};
use kafka_backup_operator::kinds::{Access, backup::prepare as prepare_backup};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn continuous_backup_keeps_up_with_new_records_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("cont");
    produce_sample(&format!("{prefix}-"), 50);
    let topic = format!("{prefix}-snappy");
    let kb = backup_yaml(
        "cont",
        std::slice::from_ref(&topic),
        &fs_storage(dir.path()),
        "  continuous: true\n  segmentMaxIntervalMs: 500\n",
    );
    let f = write_docs(dir.path(), &[&kb]);
    let Target::Backup(kb) = load(&[f], None).unwrap().0 else {
        panic!("a backup")
    };
    let prep = prepare_backup(
        &kb,
        &kafka_backup_operator::api::Secrets::new(),
        dir.path(),
        system_now_ms(),
        Access::ReadWrite,
    )
    .await
    .unwrap();
    let (stop, cancel) = Cancel::new();
    let progress = Progress::new(None);
    let ctx = ExecContext::new(progress.clone(), cancel, None, None);
    let run =
        tokio::spawn(async move { run_backup(&prep.plan, &prep.client, &prep.op, &ctx).await });

    // records produced while the backup runs are picked up
    let wait_for = |n: u64| {
        let progress = progress.clone();
        async move {
            let t = Instant::now();
            while progress.snapshot().0 < n {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "continuous backup saw {} of {n} records",
                    progress.snapshot().0
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(50).await;
    let c = client().await;
    for p in 0..3 {
        let recs: Vec<Record> = (0..10)
            .map(|i| Record {
                offset: 0,
                timestamp: 1_900_000_000_000 + i,
                key: None,
                value: Some(format!("late-{p}-{i}").into()),
                headers: vec![],
            })
            .collect();
        c.produce(
            &topic,
            p,
            encode_batch(&recs, Codec::Snappy).unwrap(),
            -1,
            10_000,
        )
        .await
        .unwrap();
    }
    wait_for(80).await;
    assert!(
        !run.is_finished(),
        "a continuous backup does not stop by itself"
    );
    stop.send(true).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("stops when cancelled")
        .unwrap()
        .expect("completes its run");
    assert_eq!(m.total_records, 80);

    let kr = restore_yaml(
        "cont-r",
        "cont",
        &format!("  createTopics: true\n  topicMapping:\n    {topic}: {topic}-r\n"),
    );
    restore(
        dir.path(),
        &[
            &backup_yaml(
                "cont",
                std::slice::from_ref(&topic),
                &fs_storage(dir.path()),
                "",
            ),
            &kr,
        ],
        "cont-r",
    )
    .await;
    assert_same(std::slice::from_ref(&topic), &[format!("{topic}-r")], &[]);
}
