//! bench/verify_cost.rs - what the integrity chain (format v2, docs/format.md "Integrity chain")
//! costs on a filesystem repository: built and run by bench/verify_cost.sh against a backup it
//! makes (the crate's example `verify_cost`, built in release by the script).
//!
//! Usage: verify_cost REPO_DIR BACKUP_NAME [REPS]
//!
//! For every segment of the backup's newest run (as a restore of the whole backup reads them),
//! the best of REPS (3) passes of each, in seconds:
//!   index        read_verified_index of every segment, 16 at once (the restore's pre-check, 1)
//!   objects      segment_io::verify_objects of every segment (the restore's pre-check, 2)
//!   read_raw     the segments' blocks read in ranged reads of 8 blocks, nothing checked
//!   read_split   the same reads, each block's payload split into batches (split_batches), no
//!                checksum checked: what reading costs without the chain (compression none)
//!   read_checked the same reads through decode_checked (block against its index entry, payload
//!                CRC-32C, each batch's CRC-32C): what the restore does
//!   full         read_verified_segment of every segment (the validation's `objects` check)
//!   crc_mem      CRC-32C of every block payload and batch CRC check, data already in memory
//! Prints one JSON line.
use std::time::Instant;

use bytes::Bytes;
use kafka_backup_operator::format::{batch, manifest, seal::RunKeys, segment, segment_io};

const BLOCKS_PER_READ: usize = 8;

fn best<F: FnMut() -> f64>(reps: usize, mut f: F) -> f64 {
    (0..reps).map(|_| f()).fold(f64::INFINITY, f64::min)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        anyhow::bail!("usage: verify_cost REPO_DIR BACKUP_NAME [REPS]");
    }
    let (root, backup) = (&args[1], &args[2]);
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let op = opendal::Operator::new(opendal::services::Fs::default().root(root))?;

    // the newest run's manifest
    let runs = std::path::Path::new(root).join(backup).join("runs");
    let mut names: Vec<String> = std::fs::read_dir(&runs)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let run = names
        .last()
        .ok_or_else(|| anyhow::anyhow!("no complete run under {runs:?}"))?;
    let mpath = kafka_backup_operator::format::layout::manifest(backup, run);
    let m: manifest::RunManifest = manifest::from_json(&op.read(&mpath).await?.to_bytes(), &mpath)?;
    let refs: Vec<(String, i32, manifest::SegmentRef)> = m
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().flat_map(move |p| {
                p.segments
                    .iter()
                    .map(move |s| (t.name.clone(), p.partition, s.clone()))
            })
        })
        .collect();
    let keys = RunKeys::default();
    let stored: u64 = refs.iter().map(|r| r.2.stored_bytes).sum();

    let mut idx = Vec::new();
    let mut t_index = f64::INFINITY;
    for _ in 0..reps {
        use futures::{StreamExt, TryStreamExt};
        let t = Instant::now();
        let reads: Vec<_> = refs
            .iter()
            .map(|(tp, p, s)| Box::pin(segment_io::read_verified_index(&op, backup, tp, *p, s)))
            .collect();
        idx = futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await?;
        t_index = t_index.min(t.elapsed().as_secs_f64());
    }
    let pairs: Vec<(&manifest::SegmentRef, &manifest::SegmentIndex)> =
        refs.iter().map(|r| &r.2).zip(idx.iter()).collect();
    let blocks: usize = idx.iter().map(|i| i.blocks.len()).sum();

    let mut t_objects = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        segment_io::verify_objects(&op, &pairs, &keys).await?;
        t_objects = t_objects.min(t.elapsed().as_secs_f64());
    }

    // read_raw / read_split / read_checked: mode 0, 1, 2
    let mut mem: Vec<Bytes> = Vec::new();
    let mut times = [f64::INFINITY; 3];
    let mut split_ok = true;
    for _ in 0..reps {
        for (mode, slot) in times.iter_mut().enumerate() {
            let t = Instant::now();
            let mut batches = 0usize;
            for (s, i) in &pairs {
                for group in i.blocks.chunks(BLOCKS_PER_READ) {
                    let (first, last) = (&group[0], &group[group.len() - 1]);
                    let data = op
                        .read_with(&s.path)
                        .range(first.pos..last.pos + last.len)
                        .await?
                        .to_bytes();
                    match mode {
                        0 => {
                            if mem.len() < blocks {
                                for b in group {
                                    let at = (b.pos - first.pos) as usize;
                                    mem.push(data.slice(at..at + b.len as usize));
                                }
                            }
                        }
                        1 => {
                            for b in group {
                                let at = (b.pos - first.pos) as usize;
                                let payload =
                                    data.slice(at + segment::BLOCK_HEADER..at + b.len as usize);
                                match batch::split_batches(&payload) {
                                    Ok(v) => batches += v.len(),
                                    Err(_) => split_ok = false,
                                }
                            }
                        }
                        _ => batches += segment::decode_checked(data, &s.path, group, None)?.len(),
                    }
                }
            }
            std::hint::black_box(batches);
            *slot = slot.min(t.elapsed().as_secs_f64());
        }
    }

    let mut t_full = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for (s, i) in &pairs {
            segment_io::read_verified_segment(&op, s, i, &keys).await?;
        }
        t_full = t_full.min(t.elapsed().as_secs_f64());
    }

    // in memory: payload CRC-32C of every block, then every batch's own CRC check
    let all: Vec<Vec<batch::RawBatch>> = mem
        .iter()
        .map(|b| batch::split_batches(&b.slice(segment::BLOCK_HEADER..)).unwrap_or_default())
        .collect();
    let t_crc = best(reps, || {
        let t = Instant::now();
        let mut x = 0u32;
        for b in &mem {
            x ^= crc32c::crc32c(&b[segment::BLOCK_HEADER..]);
        }
        for v in &all {
            for b in v {
                x ^= batch::verify_crc(b).is_ok() as u32;
            }
        }
        std::hint::black_box(x);
        t.elapsed().as_secs_f64()
    });

    println!(
        "{{\"segments\": {}, \"blocks\": {}, \"stored_bytes\": {}, \"reps\": {}, \"index_s\": {:.4}, \"objects_s\": {:.4}, \"read_raw_s\": {:.4}, \"read_split_s\": {}, \"read_checked_s\": {:.4}, \"full_s\": {:.4}, \"crc_mem_s\": {:.4}}}",
        refs.len(),
        blocks,
        stored,
        reps,
        t_index,
        t_objects,
        times[0],
        if split_ok {
            format!("{:.4}", times[1])
        } else {
            "null".into()
        },
        times[2],
        t_full,
        t_crc
    );
    Ok(())
}
