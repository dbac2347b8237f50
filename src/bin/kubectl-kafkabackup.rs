//! `kubectl-kafkabackup`: the kubectl plugin (`kubectl kafkabackup plan -f FILE`,
//! `kubectl kafkabackup offsets show|diff GROUP`).
use clap::Parser;
use kafka_backup_operator::cli::{
    LogFormat, PluginCli, PluginCommand, init_logging, offsets_cmd, plan_cmd,
};

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
