//! The CLI's shard launcher: `run` of a KafkaBackup or a KafkaRestore with
//! `spec.execution.mode: job` runs each shard of the staged run as a child process of this
//! binary.
//!
//! A child runs `run -f FILES --plan RUN --shard I/N`, the command a Kubernetes Job of the
//! operator will run, and is started again up to the plan's `backoffLimit` times when it
//! fails. Ctrl-C closes the children's standard input, which stops them as Ctrl-C stops a run
//! (a continuous backup's shards end their partitions and write their results). The
//! children's log lines are copied to stderr, prefixed with the shard.
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::Inputs;
use crate::exec::Cancel;
use crate::exec::shard::ShardFailure;
use crate::kinds::shards::ShardLauncher;

/// Launches shards as child processes of the running binary.
pub struct ProcessLauncher {
    /// The running binary.
    pub exe: PathBuf,
    /// The `run` inputs the children get (the same files, name and pvc root).
    pub inputs: Inputs,
    /// `--secrets-dir` of the coordinator, passed on.
    pub secrets_dir: Option<PathBuf>,
    /// Retries of one shard before the run fails (`spec.execution.backoffLimit`).
    pub backoff_limit: u32,
    /// Ctrl-C of the coordinator: stops the children.
    pub cancel: Cancel,
}

/// Lines of a child's stderr kept to say why it failed.
const TAIL_LINES: usize = 5;

impl ProcessLauncher {
    /// The arguments of shard `shard` of `shards` of run `run_id`.
    fn args(&self, run_id: &str, shard: u32, shards: u32) -> Vec<String> {
        let mut a = vec!["run".to_string()];
        for f in &self.inputs.files {
            a.push("-f".into());
            a.push(f.display().to_string());
        }
        if let Some(n) = &self.inputs.name {
            a.push("--name".into());
            a.push(n.clone());
        }
        if let Some(d) = &self.secrets_dir {
            a.push("--secrets-dir".into());
            a.push(d.display().to_string());
        }
        a.push("--pvc-root".into());
        a.push(self.inputs.pvc_root.display().to_string());
        a.extend(["--no-progress".into(), "--stop-on-stdin-eof".into()]);
        a.extend(["--plan".into(), run_id.into()]);
        a.extend(["--shard".into(), format!("{shard}/{shards}")]);
        a
    }

    /// One attempt: Ok when the child exited 0; else the last lines of its stderr.
    async fn attempt(&self, run_id: &str, shard: u32, shards: u32) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.exe)
            .args(self.args(run_id, shard, shards))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.exe.display()))?;
        let mut stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr is piped");
        let copy = async move {
            let mut tail: Vec<String> = Vec::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[shard {shard}/{shards}] {line}");
                if !line.trim().is_empty() {
                    tail.push(line);
                    if tail.len() > TAIL_LINES {
                        tail.remove(0);
                    }
                }
            }
            tail
        };
        let wait = async {
            tokio::select! {
                s = child.wait() => s,
                _ = self.cancel.cancelled() => {
                    stdin.take(); // end of input: the child stops as on Ctrl-C
                    child.wait().await
                }
            }
        };
        let (status, tail) = tokio::join!(wait, copy);
        drop(stdin);
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("exited with {s}: {}", tail.join(" | "))),
            Err(e) => Err(format!("could not wait for the process: {e}")),
        }
    }
}

impl ShardLauncher for ProcessLauncher {
    async fn run_shard(&self, run_id: &str, shard: u32, shards: u32) -> Result<(), ShardFailure> {
        let mut last = String::new();
        for attempt in 0..=self.backoff_limit {
            match self.attempt(run_id, shard, shards).await {
                Ok(()) => return Ok(()),
                Err(why) => {
                    if self.cancel.is_cancelled() {
                        return Err(ShardFailure {
                            message: format!("stopped: {why}"),
                            oom_killed: false,
                        });
                    }
                    tracing::warn!(shard, shards, attempt, error = %why, "shard failed");
                    last = why;
                }
            }
        }
        Err(ShardFailure {
            message: format!("{} attempts: {last}", self.backoff_limit + 1),
            oom_killed: false,
        })
    }
}
