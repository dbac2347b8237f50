//! `plan`: observe read-only, compile, print. Writes nothing to Kafka or storage.
use super::load::{Target, load};
use super::report::{backup_table, restore_table};
use super::{OutputFormat, PlanArgs};
use crate::kinds::{
    Access, backup::prepare as prepare_backup, restore::prepare as prepare_restore,
};

/// Runs the `plan` command and returns what to print.
pub async fn plan(args: &PlanArgs) -> anyhow::Result<String> {
    let (target, secrets) = load(&args.inputs.files, args.inputs.name.as_deref())?;
    let now = crate::exec::engine::system_now_ms();
    let out = match target {
        Target::Backup(kb) => {
            let p = prepare_backup(&kb, &secrets, &args.inputs.pvc_root, now, Access::ReadOnly)
                .await?
                .plan;
            render(&p, args.output, backup_table)?
        }
        Target::Restore(kr, kb) => {
            let p = prepare_restore(
                &kr,
                kb.as_deref(),
                &secrets,
                &args.inputs.pvc_root,
                Access::ReadOnly,
            )
            .await?;
            let mut out = render(&p.plan, args.output, restore_table)?;
            if args.output == OutputFormat::Table {
                let rec = crate::format::repository_io::load_record(&p.op, &p.plan.backup_name);
                if let Some(rec) = rec.await? {
                    out.push_str(&format!("repository owner: KafkaBackup {}\n", rec.owner));
                }
                match &p.start {
                    crate::exec::RestoreStart::Resume(_) => out.push_str("resumes an interrupted attempt of this restore: records its earlier attempts wrote are skipped, not produced again\n"),
                    crate::exec::RestoreStart::Complete(j) => out.push_str(&format!(
                        "already complete: this restore wrote its {} records before (journal {}); running it does nothing\n",
                        j.records,
                        crate::format::layout::restore_journal(&p.plan.backup_name, &p.plan.restore_name)
                    )),
                    crate::exec::RestoreStart::Fresh { .. } => {}
                }
            }
            out
        }
        Target::OffsetReset(kor, restore) => {
            let p = crate::kinds::offset_reset::prepare(
                &kor,
                super::load::borrow_restore(&restore),
                &secrets,
                &args.inputs.pvc_root,
            )
            .await?;
            render(&p.plan, args.output, |p| {
                format!(
                    "KafkaOffsetReset {} ({}{}{}), plan {}\n{}",
                    p.name,
                    p.strategy,
                    if p.dry_run { ", dry run" } else { "" },
                    if p.snapshot_before {
                        ", snapshot first"
                    } else {
                        ""
                    },
                    p.hash,
                    super::report::offsets_table(&p.groups)
                )
            })?
        }
        Target::OffsetRollback(korb, restore) => {
            let p = crate::kinds::offset_rollback::prepare(
                &korb,
                super::load::borrow_restore(&restore),
                &secrets,
                &args.inputs.pvc_root,
                &args.inputs.snapshot_dir,
            )
            .await?;
            let table = format!(
                "KafkaOffsetRollback to snapshot {} ({})\n{}",
                p.snapshot_id,
                p.snapshot_path,
                super::report::offsets_table(&p.plans)
            );
            match args.output {
                OutputFormat::Table => table,
                OutputFormat::Json => serde_json::to_string_pretty(&p.plans)? + "\n",
                OutputFormat::Yaml => serde_yaml_ng::to_string(&p.plans)?,
            }
        }
        Target::Validation(kbv, kb) => {
            let (_, m, sha, _) = crate::kinds::validation::prepare(
                &kbv,
                kb.as_deref(),
                &secrets,
                &args.inputs.pvc_root,
            )
            .await?;
            let c = &kbv.spec.checks;
            let segments: usize = m
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.segments.len())
                .sum();
            let on = |b: bool| if b { "run" } else { "skipped" };
            let name = kbv.metadata.name.clone().unwrap_or_default();
            let text = format!(
                "KafkaBackupValidation {name}: backup {} run {} (manifest {})\n\
                 objects               run: {segments} segments and their indexes, sizes and checksums\n\
                 messageCount          {}: every batch CRC-32C, records and timestamps against the manifest (failThreshold {})\n\
                 offsetRange           {}: offset continuity of {} partitions\n\
                 consumerGroupOffsets  {}: {} groups in the snapshot\n\
                 report                {}\n",
                m.backup_name,
                m.run_id,
                sha.as_deref().unwrap_or("v1, no checksum"),
                on(c.message_count.enabled),
                c.message_count.fail_threshold,
                on(c.offset_range.enabled),
                m.topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
                on(c.consumer_group_offsets.enabled),
                m.consumer_groups.len(),
                crate::exec::validate::report_path(
                    &m.backup_name,
                    &name,
                    &format!("{name}-<epoch ms>")
                )
            );
            match args.output {
                OutputFormat::Table => text,
                OutputFormat::Json => serde_json::to_string_pretty(&kbv.spec.checks)? + "\n",
                OutputFormat::Yaml => serde_yaml_ng::to_string(&kbv.spec.checks)?,
            }
        }
    };
    Ok(out)
}

fn render<T: serde::Serialize>(
    p: &T,
    f: OutputFormat,
    table: fn(&T) -> String,
) -> anyhow::Result<String> {
    Ok(match f {
        OutputFormat::Table => table(p),
        OutputFormat::Json => serde_json::to_string_pretty(p)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(p)?,
    })
}
