//! `kubectl kafkabackup evidence list|get`: the stored evidence reports of a
//! KafkaBackupValidation (found through the files given with -f, like `plan`). Read only.
use super::OutputFormat;
use super::load::{Target, load};

/// The validation's evidence repository (`evidence.storage`, else the backup's), the backup
/// name and the validation name.
async fn open(inputs: &super::Inputs) -> anyhow::Result<(opendal::Operator, String, String)> {
    let (target, secrets) = load(&inputs.files, inputs.name.as_deref())?;
    let Target::Validation(kbv, kb) = target else {
        anyhow::bail!(
            "evidence: the files hold no KafkaBackupValidation (give its YAML, with its KafkaBackup, with -f; --name picks one)"
        );
    };
    let (op, _, _, _) =
        crate::kinds::validation::prepare(&kbv, kb.as_deref(), &secrets, &inputs.pvc_root).await?;
    let ev = crate::kinds::validation::evidence_storage(&kbv, &secrets, &inputs.pvc_root, &op)?;
    Ok((
        ev,
        kbv.spec.backup_ref.name.clone(),
        kbv.metadata.name.clone().unwrap_or_default(),
    ))
}

/// `evidence list`: REPORT ID, GENERATED, SIGNED, PDF, PATH (oldest first).
pub async fn list(inputs: &super::Inputs, output: OutputFormat) -> anyhow::Result<String> {
    let (op, backup, validation) = open(inputs).await?;
    let reports = crate::exec::evidence::list_reports(&op, &backup, &validation).await?;
    Ok(match output {
        OutputFormat::Json => serde_json::to_string_pretty(&reports)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&reports)?,
        OutputFormat::Table => {
            let mut s = format!(
                "{:<40}  {:<24}  {:<6}  {:<3}  PATH\n",
                "REPORT ID", "GENERATED", "SIGNED", "PDF"
            );
            for r in &reports {
                s.push_str(&format!(
                    "{:<40}  {:<24}  {:<6}  {:<3}  {}\n",
                    r.report_id,
                    jiff::Timestamp::from_millisecond(r.generated_at)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    if r.signed { "yes" } else { "no" },
                    if r.pdf { "yes" } else { "no" },
                    r.path
                ));
            }
            if reports.is_empty() {
                s.push_str(&format!("no evidence report of {validation} yet\n"));
            }
            s
        }
    })
}

/// `evidence get ID`: the report, its own checksum checked (a changed report is an error).
pub async fn get(
    inputs: &super::Inputs,
    report_id: &str,
    output: OutputFormat,
) -> anyhow::Result<String> {
    let (op, backup, validation) = open(inputs).await?;
    let path = crate::exec::validate::report_path(&backup, &validation, report_id);
    let bytes = crate::storage::read_opt(&op, &path).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no report {report_id} of validation {validation} ({path}); `evidence list` shows the stored ones"
        )
    })?;
    let report = crate::exec::evidence::read_report(&bytes, &path)?;
    Ok(match output {
        OutputFormat::Json => String::from_utf8_lossy(&bytes).into_owned() + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&report)?,
        OutputFormat::Table => format!(
            "{}report {} of backup {} run {}: {:?}\n",
            crate::report::validation_table(&report),
            report.report_id,
            report.backup.name,
            report.backup.run_id,
            report.result
        ),
    })
}
