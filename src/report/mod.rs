//! Step 4 of the flow, the words: plan tables, per-group and per-partition result tables,
//! validation tables and closing summaries, as text. One home for the CLI (`cli::run`,
//! `cli::plan_cmd`) and the operator (status messages, Events); no I/O. The outcomes of runs
//! (what `kinds::<kind>::run` returns) are drawn by [`outcome`].
use crate::plan::{BackupPlan, BytesSource, CutMode, EstimateTotal, PlanExecution, RestorePlan};

pub mod outcome;

/// `1.5 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The closing line: records, bytes, duration and throughput.
pub fn summary(what: &str, records: u64, bytes: u64, secs: f64) -> String {
    let secs = secs.max(1e-9);
    format!(
        "{what}: {records} records, {} in {secs:.2} s ({:.1} MB/s, {:.0} records/s)",
        human_bytes(bytes),
        bytes as f64 / 1e6 / secs,
        records as f64 / secs
    )
}

fn cut_text(c: &CutMode) -> String {
    match c {
        CutMode::At(o) => o.to_string(),
        CutMode::CaughtUp => "caught-up".into(),
        CutMode::Never => "continuous".into(),
    }
}

/// A human-readable rendering of a backup plan.
pub fn backup_table(p: &BackupPlan) -> String {
    let mut s = format!(
        "KafkaBackup {}  run {}{}  plan {}\n  storage compression {} (level {}), segments <= {} / {} ms, checkpoint {}, {} partitions in parallel\n",
        p.backup_name,
        p.run_id,
        if p.resumed { " (resuming)" } else { "" },
        p.hash,
        p.compression,
        p.compression_level,
        human_bytes(p.segment_max_bytes),
        p.segment_max_interval_ms,
        p.checkpoint_interval_ms
            .map(|m| format!("every {} s", m / 1000))
            .unwrap_or_else(|| "off".into()),
        p.max_concurrent_partitions
    );
    s.push_str(&format!(
        "  previous run: {}\n  consumer group snapshot: {}\n\nSTEP  TOPIC/PARTITION                     LOG-START  FROM        TO (CUT)    RECORDS     EST. BYTES\n",
        p.previous_run_id.as_deref().unwrap_or("none (full backup)"),
        if p.consumer_group_snapshot { "yes" } else { "no" }
    ));
    let mut i = 1;
    if p.consumer_group_snapshot {
        s.push_str(&format!("{i:<5} snapshot consumer-group offsets\n"));
        i += 1;
    }
    for st in &p.partitions {
        s.push_str(&format!(
            "{i:<5} {:<35} {:<10} {:<11} {:<11} {:<11} {}{}\n",
            format!("{}/{}", st.topic, st.partition),
            st.log_start_offset,
            st.start_offset,
            cut_text(&st.cut),
            st.estimated_records,
            if st.estimated_bytes_from == BytesSource::Unknown {
                "unknown".into()
            } else {
                human_bytes(st.estimated_bytes)
            },
            st.gap
                .as_ref()
                .map(|g| format!("  GAP {}..{}: {}", g.from, g.to, g.reason))
                .unwrap_or_default()
        ));
        i += 1;
    }
    s.push_str(&format!(
        "{i:<5} write manifest runs/{}/manifest.json\n",
        p.run_id
    ));
    s.push_str(&format!(
        "\nTotal: {} records, {}\n",
        p.estimated_records,
        estimate_total(&p.partitions)
    ));
    for note in &p.estimate_notes {
        s.push_str(&format!("  bytes unknown: {note}\n"));
    }
    if let Some(ex) = &p.execution {
        let names: Vec<String> = p
            .partitions
            .iter()
            .map(|st| format!("{}/{}", st.topic, st.partition))
            .collect();
        s.push_str(&shards_table(ex, &names, &[]));
    }
    s
}

/// The bytes a backup's partition steps are estimated to read: the sum of the known estimates,
/// `12.3 MiB estimated`, and when some are unknown how many steps the sum counts,
/// `12.3 MiB estimated (2 of 3 steps; 1 unknown)`.
fn estimate_total(steps: &[crate::plan::BackupPartitionStep]) -> String {
    let t = EstimateTotal::of(
        steps
            .iter()
            .map(|st| (st.estimated_bytes, st.estimated_bytes_from)),
    );
    if t.unknown == 0 {
        format!("{} estimated", human_bytes(t.bytes))
    } else {
        format!(
            "{} estimated ({} of {} steps; {} unknown)",
            human_bytes(t.bytes),
            t.known,
            t.known + t.unknown,
            t.unknown
        )
    }
}

/// Most characters of a shard's partition list in [`shards_table`] before it is shortened.
const SHARD_LIST_WIDTH: usize = 60;

/// The shards of a run executed as Jobs: one line per shard with its index, its partitions
/// (`topic/partition` from `names`, indexed by [`crate::plan::Shard::partitions`], and
/// `topic (repartitioned)` from `repartitioned`, indexed by `Shard::repartitioned`; shortened
/// to `... (+N more)` past 60 characters) and its estimated bytes, or records when no step of
/// the run has a byte estimate. Starts with a blank line and a heading.
pub fn shards_table(ex: &PlanExecution, names: &[String], repartitioned: &[String]) -> String {
    let by_bytes = ex.shards.iter().any(|sh| sh.estimated_bytes > 0);
    let mut s = format!(
        "\nShards: {} Kubernetes Job(s), a shard retried up to {} time(s)\nSHARD  {:<width$}  {}\n",
        ex.shards.len(),
        ex.backoff_limit,
        "PARTITIONS",
        if by_bytes {
            "EST. BYTES"
        } else {
            "EST. RECORDS"
        },
        width = SHARD_LIST_WIDTH
    );
    for sh in &ex.shards {
        let items: Vec<&str> = sh
            .partitions
            .iter()
            .map(|&i| names.get(i).map_or("?", String::as_str))
            .chain(
                sh.repartitioned
                    .iter()
                    .map(|&i| repartitioned.get(i).map_or("?", String::as_str)),
            )
            .collect();
        s.push_str(&format!(
            "{:<5}  {:<width$}  {}\n",
            sh.index,
            shorten_list(&items, SHARD_LIST_WIDTH),
            if by_bytes {
                human_bytes(sh.estimated_bytes)
            } else {
                sh.estimated_records.to_string()
            },
            width = SHARD_LIST_WIDTH
        ));
    }
    s
}

/// `items` joined by `, `, cut after the last item that fits in `width` characters with
/// ` ... (+N more)` (at least one item is always shown).
fn shorten_list(items: &[&str], width: usize) -> String {
    let full = items.join(", ");
    if full.chars().count() <= width {
        return full;
    }
    let mut out = String::new();
    let mut shown = 0;
    for item in items {
        let more = format!(" ... (+{} more)", items.len() - shown - 1);
        let sep = if shown == 0 { "" } else { ", " };
        if shown > 0 && out.len() + sep.len() + item.len() + more.len() > width {
            break;
        }
        out.push_str(sep);
        out.push_str(item);
        shown += 1;
    }
    if shown == items.len() {
        return out;
    }
    format!("{out} ... (+{} more)", items.len() - shown)
}

/// The PITR lines of a restore plan's header: the time window, and the `pitr.startOffsets`/
/// `endOffsets` when there are any (`PITR offsets (source topic/partition, start inclusive ..
/// end exclusive): orders/0 [5..12), orders/1 [5..)`).
fn pitr_lines(p: &RestorePlan) -> String {
    let ms = |v: Option<i64>| {
        v.map(|m| {
            jiff::Timestamp::from_millisecond(m)
                .map(|t| format!("{t} ({m})"))
                .unwrap_or(m.to_string())
        })
        .unwrap_or_else(|| "-".into())
    };
    let mut s = format!(
        "  PITR window: {} .. {} (inclusive)\n",
        ms(p.pitr_start),
        ms(p.pitr_end)
    );
    if !p.pitr_offsets.is_empty() {
        let o = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let bounds: Vec<String> = p
            .pitr_offsets
            .iter()
            .map(|b| format!("{}/{} [{}..{})", b.topic, b.partition, o(b.start), o(b.end)))
            .collect();
        s.push_str(&format!(
            "  PITR offsets (source topic/partition, start inclusive .. end exclusive): {}\n",
            bounds.join(", ")
        ));
    }
    s
}

/// A human-readable rendering of a restore plan.
pub fn restore_table(p: &RestorePlan) -> String {
    let mut s = format!(
        "KafkaRestore {}  from backup {} run {}  plan {}{}\n{}  produce acks={} batch<={} records timeout={} ms, {} partitions in parallel\n\nSTEP  ACTION\n",
        p.restore_name,
        p.backup_name,
        p.backup_run_id,
        p.hash,
        if p.dry_run {
            "  [dryRun: nothing will be executed]"
        } else {
            ""
        },
        pitr_lines(p),
        p.produce_acks,
        p.produce_batch_records,
        p.produce_timeout_ms,
        p.max_concurrent_partitions
    );
    let mut i = 1;
    for t in &p.create_topics {
        s.push_str(&format!(
            "{i:<5} create topic {} ({} partitions, replication {}, configs {:?})\n",
            t.name,
            t.partitions,
            if t.replication_factor < 0 {
                "broker default".to_string()
            } else {
                t.replication_factor.to_string()
            },
            t.configs
        ));
        i += 1;
    }
    for (t, part) in &p.purge {
        s.push_str(&format!(
            "{i:<5} purge {t}/{part} (DeleteRecords up to the high watermark)\n"
        ));
        i += 1;
    }
    for st in &p.partitions {
        s.push_str(&format!(
            "{i:<5} restore {}/{} offsets {}..{} -> {}/{} ({})  ~{} records, {}, {} segment(s)\n",
            st.source_topic,
            st.source_partition,
            st.from,
            st.to,
            st.target_topic,
            st.target_partition,
            match st.target_state {
                crate::plan::TargetState::Created => "new topic",
                crate::plan::TargetState::Empty => "empty",
                crate::plan::TargetState::Purged => "purged first",
                crate::plan::TargetState::Appended => "appended after its records",
            },
            st.estimated_records,
            human_bytes(st.estimated_bytes),
            st.segments.len()
        ));
        i += 1;
    }
    for r in &p.repartitioned {
        s.push_str(&format!(
            "{i:<5} restore {} partitions {} -> {} repartitioned into {} partitions by {} ({})  ~{} records, {}\n",
            r.source_topic,
            r.sources
                .iter()
                .map(|x| format!("{}[{}..{}]", x.source_partition, x.from, x.to))
                .collect::<Vec<_>>()
                .join(","),
            r.target_topic,
            r.target_partitions,
            match r.strategy {
                crate::api::restore::RepartitionStrategy::Murmur2 =>
                    "murmur2(key) (keyless: round robin)",
                crate::api::restore::RepartitionStrategy::Automatic => "round robin",
            },
            match r.target_state {
                crate::plan::TargetState::Created => "new topic",
                crate::plan::TargetState::Empty => "empty",
                crate::plan::TargetState::Purged => "purged first",
                crate::plan::TargetState::Appended => "appended after its records",
            },
            r.estimated_records,
            human_bytes(r.estimated_bytes),
        ));
        i += 1;
    }
    for t in p
        .create_topics
        .iter()
        .filter(|t| !t.configs_after_data.is_empty())
    {
        s.push_str(&format!(
            "{i:<5} set configs of {} after the data {:?}\n",
            t.name, t.configs_after_data
        ));
        i += 1;
    }
    s.push_str(&format!("{i:<5} write offset map {}\n", p.offset_map_path));
    if let Some(g) = &p.groups {
        i += 1;
        let names: Vec<&str> = if g.only.is_empty() {
            p.source_groups
                .iter()
                .map(|x| x.group_id.as_str())
                .collect()
        } else {
            g.only.iter().map(|x| x.as_str()).collect()
        };
        if g.snapshot_before {
            s.push_str(&format!(
                "{i:<5} snapshot the target's offsets of {} group(s) (kept {} h)\n",
                names.len(),
                g.snapshot_retention_hours
            ));
            i += 1;
        }
        s.push_str(&format!(
            "{i:<5} commit consumer groups ({}{}): {}\n",
            g.strategy,
            if g.auto_rollback {
                ", roll back on failure"
            } else {
                ""
            },
            if names.is_empty() {
                "none in the snapshot".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    s.push_str(&format!(
        "\nTotal: ~{} records, {} to read\n",
        p.estimated_records,
        human_bytes(p.estimated_bytes)
    ));
    s.push_str(&restore_shards(p));
    s
}

/// [`shards_table`] of a restore run as Jobs; empty in process.
fn restore_shards(p: &RestorePlan) -> String {
    let Some(ex) = &p.execution else {
        return String::new();
    };
    let names: Vec<String> = p
        .partitions
        .iter()
        .map(|st| format!("{}/{}", st.source_topic, st.source_partition))
        .collect();
    let repartitioned: Vec<String> = p
        .repartitioned
        .iter()
        .map(|r| format!("{} (repartitioned)", r.source_topic))
        .collect();
    shards_table(ex, &names, &repartitioned)
}

/// The per-group results of a consumer-group step: GROUP, OUTCOME, PARTITIONS, MESSAGE.
pub fn groups_table(results: &[crate::exec::groups::GroupResult]) -> String {
    let w = results
        .iter()
        .map(|r| r.group.len())
        .max()
        .unwrap_or(0)
        .max("GROUP".len());
    let mut out = format!(
        "{:<w$}  {:<9}  {:>10}  MESSAGE\n",
        "GROUP", "OUTCOME", "PARTITIONS"
    );
    for r in results {
        let dup = if r.duplicates > 0 {
            format!(
                "{} record(s) will be read again (repartitioned topic: docs/offsets.md); ",
                r.duplicates
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<w$}  {:<9}  {:>10}  {dup}{}\n",
            r.group,
            format!("{:?}", r.outcome),
            r.partitions,
            r.message.as_deref().unwrap_or("")
        ));
    }
    out
}

/// The per-partition table of group commits: GROUP, TOPIC, PARTITION, CURRENT, NEW, LAG
/// BEFORE and AFTER (high watermark minus offset, records), FROM; then the skipped positions.
pub fn offsets_table(plans: &[crate::plan::GroupOffsetPlan]) -> String {
    let mut rows = vec![[
        "GROUP".to_string(),
        "TOPIC".into(),
        "PARTITION".into(),
        "CURRENT".into(),
        "NEW".into(),
        "LAG BEFORE".into(),
        "LAG AFTER".into(),
        "FROM".into(),
    ]];
    let dash = || "-".to_string();
    for p in plans {
        for c in &p.changes {
            let lag = |o: Option<i64>| match (c.high_watermark, o) {
                (Some(h), Some(o)) => (h - o).to_string(),
                _ => dash(),
            };
            rows.push([
                p.group.clone(),
                c.topic.clone(),
                c.partition.to_string(),
                c.current.map(|o| o.to_string()).unwrap_or_else(dash),
                c.new.to_string(),
                lag(c.current),
                lag(Some(c.new)),
                c.from.clone(),
            ]);
        }
    }
    let mut w = [0usize; 8];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if (2..7).contains(&i) {
                    format!("{c:>width$}", width = w[i])
                } else {
                    format!("{c:<width$}", width = w[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for p in plans {
        for s in &p.skipped {
            out.push_str(&format!("{}: skipped {s}\n", p.group));
        }
    }
    out
}

/// A validation report as a table: CHECK, OUTCOME, MS, FIGURES, then each failure.
pub fn validation_table(r: &crate::exec::validate::ValidationReport) -> String {
    let mut out = format!(
        "validation {} of backup {} run {}: {:?}\n",
        r.validation, r.backup.name, r.backup.run_id, r.result
    );
    let w = r
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(22);
    out.push_str(&format!(
        "{:<w$}  {:<7}  {:>7}  FIGURES\n",
        "CHECK", "OUTCOME", "MS"
    ));
    for c in &r.checks {
        let figs: Vec<String> = c.figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "{:<w$}  {:<7}  {:>7}  {}\n",
            c.name,
            format!("{:?}", c.outcome),
            c.duration_ms,
            figs.join(" ")
        ));
        for f in &c.failures {
            out.push_str(&format!("    {f}\n"));
        }
        for n in &c.notes {
            out.push_str(&format!("    note: {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanExecutionMode, Shard};

    fn shard(index: u32, partitions: Vec<usize>, bytes: u64, records: u64) -> Shard {
        Shard {
            index,
            partitions,
            repartitioned: vec![],
            estimated_bytes: bytes,
            estimated_records: records,
        }
    }

    #[test]
    fn shards_table_lists_partitions_and_bytes() {
        let names: Vec<String> = (0..3).map(|p| format!("orders/{p}")).collect();
        let mut s1 = shard(1, vec![1], 1024, 10);
        s1.repartitioned = vec![0];
        let ex = PlanExecution {
            mode: PlanExecutionMode::Job,
            shards: vec![shard(0, vec![0, 2], 3 * 1024 * 1024, 30), s1],
            backoff_limit: 3,
        };
        let t = shards_table(&ex, &names, &["payments (repartitioned)".into()]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            "Shards: 2 Kubernetes Job(s), a shard retried up to 3 time(s)"
        );
        assert!(lines[2].starts_with("SHARD  PARTITIONS") && lines[2].ends_with("EST. BYTES"));
        assert!(lines[3].starts_with("0      orders/0, orders/2 "), "{t}");
        assert!(lines[3].ends_with("  3.0 MiB"), "{t}");
        assert!(
            lines[4].starts_with("1      orders/1, payments (repartitioned) "),
            "{t}"
        );
        assert!(lines[4].ends_with("  1.0 KiB"), "{t}");
    }

    #[test]
    fn shards_table_shows_records_without_byte_estimates() {
        let ex = PlanExecution {
            mode: PlanExecutionMode::Job,
            shards: vec![shard(0, vec![0], 0, 42)],
            backoff_limit: 0,
        };
        let t = shards_table(&ex, &["t/0".into()], &[]);
        assert!(t.contains("EST. RECORDS"), "{t}");
        assert!(t.lines().last().unwrap().ends_with("  42"), "{t}");
    }

    #[test]
    fn long_partition_lists_are_shortened() {
        let names: Vec<String> = (0..40).map(|p| format!("orders/{p}")).collect();
        let items: Vec<&str> = names.iter().map(String::as_str).collect();
        let s = shorten_list(&items, SHARD_LIST_WIDTH);
        assert!(s.len() <= SHARD_LIST_WIDTH, "{s}");
        assert!(s.starts_with("orders/0, orders/1, "), "{s}");
        let shown = s.matches("orders/").count();
        assert!(s.ends_with(&format!(" ... (+{} more)", 40 - shown)), "{s}");
        assert_eq!(shorten_list(&["a", "b"], 60), "a, b");
        let long = "x".repeat(70);
        assert_eq!(shorten_list(&[&long], 60), long);
        assert_eq!(
            shorten_list(&[&long, "y"], 60),
            format!("{long} ... (+1 more)")
        );
    }
}
