//! `kubectl-kafkabackup`: the kubectl plugin (`kubectl kafkabackup plan -f FILE`,
//! `kubectl kafkabackup offsets show|diff GROUP`, `evidence list|get|verify`, `runs`, `status`, `describe run`,
//! `restore NAME --to-time T`, `backup NAME --now`, `logs NAME`, `report`).
use clap::Parser;
use kafka_backup_operator::cli::{
    EvidenceCommand, LogFormat, PluginCli, PluginCommand, init_logging, offsets_cmd, plan_cmd,
};

/// `evidence verify`: the report's bytes, its detached signature and a public key.
fn verify(
    report: &std::path::Path,
    public_key: &std::path::Path,
    signature: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    use kafka_backup_operator::exec::validate::{ReportSignature, verify_report};
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let bytes = read(report)?;
    let sig_path = signature
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| std::path::PathBuf::from(format!("{}.sig", report.display())));
    let sig: ReportSignature = serde_json::from_slice(&read(&sig_path)?)
        .map_err(|e| anyhow::anyhow!("{} is not a signature document: {e}", sig_path.display()))?;
    let pem = String::from_utf8_lossy(&read(public_key)?).into_owned();
    verify_report(&bytes, &sig, &pem)
        .map_err(|e| anyhow::anyhow!("{}: NOT verified: {e}", report.display()))?;
    Ok(format!(
        "{}: verified ({}, key sha256 {})\n",
        report.display(),
        sig.algorithm,
        sig.public_key_sha256
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = PluginCli::parse();
    kafka_backup_operator::install_tls_provider();
    init_logging(LogFormat::Text);
    let r = match &cli.command {
        PluginCommand::Plan(a) => plan_cmd::plan(a).await,
        PluginCommand::Offsets(c) => offsets_cmd::offsets(c).await,
        PluginCommand::Validate(a) => kafka_backup_operator::cli::run::run(a)
            .await
            .map(|()| String::new()),
        PluginCommand::Evidence(EvidenceCommand::Verify {
            report,
            public_key,
            signature,
        }) => verify(report, public_key, signature.as_deref()),
        PluginCommand::Evidence(EvidenceCommand::List { inputs, output }) => {
            kafka_backup_operator::cli::evidence_cmd::list(inputs, *output).await
        }
        PluginCommand::Evidence(EvidenceCommand::Get {
            report_id,
            inputs,
            output,
        }) => kafka_backup_operator::cli::evidence_cmd::get(inputs, report_id, *output).await,
        PluginCommand::Runs(a) => kafka_backup_operator::cli::runs_html::runs(a).await,
        PluginCommand::Keys(c) => kafka_backup_operator::cli::keys_cmd::keys(c).await,
        PluginCommand::Status(a) => kafka_backup_operator::cli::status_cmd::status(a).await,
        PluginCommand::Describe(c) => kafka_backup_operator::cli::describe_cmd::describe(c).await,
        PluginCommand::Logs(a) => kafka_backup_operator::cli::logs_cmd::logs(a).await,
        PluginCommand::Report(a) => kafka_backup_operator::cli::report_cmd::report(a).await,
        PluginCommand::Restore(a) => kafka_backup_operator::cli::restore_cmd::restore(a).await,
        PluginCommand::Backup(a) => kafka_backup_operator::cli::backup_cmd::backup(a).await,
    };
    match r {
        Ok(s) => {
            print!("{s}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
