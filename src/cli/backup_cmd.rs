//! `kubectl kafkabackup backup NAME --now [--wait]`: asks the operator for one run of a
//! KafkaBackup now (the `kafka.oso.sh/run-now` annotation, its one write) and, with `--wait`,
//! follows that run's status until it completes or fails.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use kube::api::{Api, Patch, PatchParams};

use crate::api::{KafkaBackup, RUN_NOW_ANNOTATION};

/// `backup` arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The KafkaBackup.
    pub backup: String,
    /// Run it now: sets the annotation kafka.oso.sh/run-now to a new value, which the operator
    /// acts on once (the only write this command makes). Required.
    #[arg(long)]
    pub now: bool,
    /// Follow the run until it completes (exit 0) or fails (exit 1), printing its phase,
    /// percent and records as they change.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 90s, 10m, 1h); exit 1 after it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// `90s`, `10m`, `1h`, or seconds alone.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?}: --timeout takes a number with s, m or h, e.g. 10m");
    let t = s.trim();
    let (n, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(secs))
}

/// One look at the KafkaBackup's status while waiting for run-now `token`.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Not finished: the line to print when it changed.
    Progress(String),
    Completed(String),
    Failed(String),
}

/// What `status` says about the run of `token`: finished when `lastRunTrigger` is the token and
/// the phase Completed or Failed.
pub fn seen(status: &serde_json::Value, token: &str) -> Seen {
    let phase = status["phase"].as_str().unwrap_or("-");
    let ours = status["lastRunTrigger"].as_str() == Some(token);
    let records = status["recordsProcessed"].as_u64();
    let line = match (ours, status["progressPercent"].as_f64(), records) {
        (false, _, _) => format!("phase {phase} (waiting for the operator to start the run)"),
        (true, Some(p), Some(r)) => format!("phase {phase}  {p:.1}%  {r} records"),
        (true, None, Some(r)) => format!("phase {phase}  {r} records"),
        (true, _, None) => format!("phase {phase}"),
    };
    match (ours, phase) {
        (true, "Completed") => Seen::Completed(format!(
            "completed: run {} stored {} records",
            status["backupId"].as_str().unwrap_or("-"),
            records.unwrap_or(0)
        )),
        (true, "Failed") => Seen::Failed(format!(
            "run {} failed: {}",
            status["backupId"].as_str().unwrap_or("-"),
            status["message"].as_str().unwrap_or("see its Events")
        )),
        _ => Seen::Progress(line),
    }
}

/// `backup NAME --now [--wait]`.
pub async fn backup(args: &BackupArgs) -> anyhow::Result<String> {
    if !args.now {
        anyhow::bail!(
            "backup {}: say what to do: --now runs it now (the only action of this command)",
            args.backup
        );
    }
    let (client, default_ns) =
        super::status_cmd::kube_client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let kbs: Api<KafkaBackup> = Api::namespaced(client, &ns);
    let token = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: token}}});
    kbs.patch(&args.backup, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => {
                anyhow::anyhow!("no KafkaBackup {} in namespace {ns}", args.backup)
            }
            e => anyhow::anyhow!("annotating KafkaBackup {}: {e}", args.backup),
        })?;
    println!(
        "kafkabackup/{} annotated {RUN_NOW_ANNOTATION}={token}: the operator starts one run now",
        args.backup
    );
    if !args.wait {
        return Ok(String::new());
    }
    wait(&kbs, &args.backup, &token, args.timeout).await
}

/// Polls the status every second until the run of `token` finishes or `timeout` passes.
async fn wait(
    kbs: &Api<KafkaBackup>,
    name: &str,
    token: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let kb = kbs.get_status(name).await?;
        let status = serde_json::to_value(&kb.status)?;
        match seen(&status, token) {
            Seen::Completed(s) => return Ok(s + "\n"),
            Seen::Failed(s) => anyhow::bail!("{s}"),
            Seen::Progress(line) if line != last => {
                println!("{line}");
                last = line;
            }
            Seen::Progress(_) => {}
        }
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "kafkabackup/{name}: the run did not finish within --timeout {}s (last: {last}); it goes on, `kubectl kafkabackup status {name}` follows it",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "m", "10d", "1.5m"] {
            assert!(
                parse_duration(bad).unwrap_err().contains("--timeout"),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_the_run_of_our_token_finishes_the_wait() {
        // the previous run's Completed does not count
        let before = json!({"phase": "Completed", "lastRunTrigger": "old", "recordsProcessed": 5});
        assert!(matches!(seen(&before, "t1"), Seen::Progress(l) if l.contains("waiting")));
        let running = json!({"phase": "Running", "lastRunTrigger": "t1",
                             "progressPercent": 42.0, "recordsProcessed": 420});
        assert_eq!(
            seen(&running, "t1"),
            Seen::Progress("phase Running  42.0%  420 records".into())
        );
        let done = json!({"phase": "Completed", "lastRunTrigger": "t1", "backupId": "r2",
                          "recordsProcessed": 1000});
        assert_eq!(
            seen(&done, "t1"),
            Seen::Completed("completed: run r2 stored 1000 records".into())
        );
        let failed = json!({"phase": "Failed", "lastRunTrigger": "t1", "backupId": "r2",
                            "message": "broker down"});
        assert_eq!(
            seen(&failed, "t1"),
            Seen::Failed("run r2 failed: broker down".into())
        );
    }
}
