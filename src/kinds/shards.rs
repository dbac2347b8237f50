//! The launcher of a sharded run's shards (`execution.mode: job`, docs/execution.md), the same
//! for every kind that runs as shards (KafkaBackup, KafkaRestore): the coordinator of a run
//! (`kinds::<kind>::run_sharded`) asks it to run shard `i` of `n`, and a launch runs
//! `run -f FILES --plan RUN --shard i/N` somewhere: a child process (`cli::shards`) or a
//! Kubernetes Job (the operator). Defines the trait only.
use crate::exec::shard::ShardFailure;

/// Where the shards of a sharded run (`execution.mode: job`) run: child processes of the CLI
/// (`cli::shards`), Kubernetes Jobs (the operator). Kind-agnostic: the launcher is built for
/// one resource and knows how to run it; `run_id` is the run the coordinator staged (a
/// backup's run id; for a restore, the backup run it restores).
pub trait ShardLauncher: Sync {
    /// Runs shard `shard` of `shards` of run `run_id` to its end, with its retries (up to the
    /// plan's `backoffLimit`): Ok once the shard has written its result.
    fn run_shard(
        &self,
        run_id: &str,
        shard: u32,
        shards: u32,
    ) -> impl std::future::Future<Output = Result<(), ShardFailure>> + Send;

    /// The progress the launcher reports its shards' phases into and the cancel signal it
    /// stops on, when it was built for a run of its own (the operator's); a caller that makes
    /// the run's context (a validation's scratch restore) takes them. None (the default): the
    /// caller's context is the run's.
    fn run_context(&self) -> Option<(std::sync::Arc<crate::exec::Progress>, crate::exec::Cancel)> {
        None
    }
}
