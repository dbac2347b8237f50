//! `kubectl-kafkabackup`: the kubectl plugin (`kubectl kafkabackup plan -f FILE`).
use clap::Parser;
use kafka_backup_operator::cli::{LogFormat, PluginCli, PluginCommand, init_logging, plan_cmd};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = PluginCli::parse();
    kafka_backup_operator::install_tls_provider();
    init_logging(LogFormat::Text);
    let PluginCommand::Plan(a) = &cli.command;
    match plan_cmd::plan(a).await {
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
