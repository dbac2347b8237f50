//! `kafka-backup-operator`: `crd`, `run`, `plan`, `operator`.
use clap::Parser;
use kafka_backup_operator::cli::{Cli, Command, init_logging, plan_cmd, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let r = match &cli.command {
        Command::Crd => {
            print!("{}", kafka_backup_operator::api::all_crds_yaml());
            Ok(())
        }
        Command::Run(a) => run::run(a).await,
        Command::Plan(a) => plan_cmd::plan(a).await.map(|s| print!("{s}")),
        Command::Operator => Err(anyhow::anyhow!(
            "the operator (Kubernetes controllers) is not part of this build yet: use `run -f` to execute a KafkaBackup or KafkaRestore"
        )),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
