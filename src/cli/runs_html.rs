//! `kubectl kafkabackup runs -f backup.yaml [--html FILE]`: the command itself, printing the
//! runs ([`super::runs_cmd`]) and, with `--html`, writing their timeline
//! ([`super::timeline`]) to FILE, the command's only write.
use super::runs_cmd::{RunsArgs, print, rows_and_recoverability};
use super::timeline::render;

/// `runs`: the table (or YAML, JSON) of every complete run, oldest first; with `--html FILE`
/// the timeline page is written there too.
pub async fn runs(args: &RunsArgs) -> anyhow::Result<String> {
    let now = crate::exec::engine::system_now_ms();
    let (name, rows, rec) = rows_and_recoverability(&args.plan.inputs, now).await?;
    if let Some(path) = &args.html {
        std::fs::write(path, render(&name, &rows, &rec, now))
            .map_err(|e| anyhow::anyhow!("runs --html: writing {}: {e}", path.display()))?;
        eprintln!("wrote the timeline of {name} to {}", path.display());
    }
    print(args.plan.output, &name, &rows)
}
