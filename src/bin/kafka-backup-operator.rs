//! `kafka-backup-operator`: `crd`, `run`, `plan`, `operator`.
use clap::Parser;
use kafka_backup_operator::cli::{Cli, Command, init_logging, plan_cmd, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    kafka_backup_operator::install_tls_provider();
    init_logging(cli.log_format);
    let r = match &cli.command {
        Command::Crd => {
            print!("{}", kafka_backup_operator::api::all_crds_yaml());
            Ok(())
        }
        Command::Run(a) => run::run(a).await,
        Command::Plan(a) => plan_cmd::plan(a).await.map(|s| print!("{s}")),
        Command::Operator(a) => {
            kafka_backup_operator::operator::run(
                a.namespaces.clone(),
                a.pvc_root.clone(),
                a.allow_cross_namespace_refs,
                a.metrics_addr,
                a.leader_election
                    .then(|| kafka_backup_operator::operator::LeaderElection {
                        namespace: a.lease_namespace.clone(),
                        identity: std::env::var("POD_NAME")
                            .unwrap_or_else(|_| format!("kbo-{}", std::process::id())),
                    }),
            )
            .await
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The category is a stable label (docs/architecture.md, "Failure categories").
            let category = e
                .downcast_ref::<kafka_backup_operator::kinds::KindError>()
                .map(|f| f.category())
                .or_else(|| {
                    e.downcast_ref::<kafka_backup_operator::exec::ExecError>()
                        .map(|x| x.category())
                })
                .or_else(|| {
                    e.downcast_ref::<kafka_backup_operator::cli::load::LoadError>()
                        .map(|_| "input")
                });
            match category {
                Some(c) => eprintln!("error [{c}]: {e:#}"),
                None => eprintln!("error: {e:#}"),
            }
            std::process::ExitCode::from(1)
        }
    }
}
