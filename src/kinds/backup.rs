//! KafkaBackup: `prepare` observes the cluster and the repository and compiles the next run;
//! `run` executes it and applies the backup's retention after a successful run. The CLI and
//! the operator call these two and render the [`Outcome`] (`report`, status).
use std::path::Path;

use opendal::Operator;

use super::{Access, KindError, open};
use super::{encryption, owner};
use crate::api::{ApiError, KafkaBackup, Secrets};
use crate::exec::shard::{ShardResult, StagedRun};
use crate::exec::{self, ExecContext};
use crate::format::manifest::RunManifest;
use crate::kafka::KafkaClient;
use crate::observe::{self};
use crate::plan;
use crate::plan::{BackupFacts, BackupPlan};
use crate::storage::StorageTarget;

/// The shard launcher (its home is [`super::shards`]; kept here for the callers that name it
/// `kinds::backup::ShardLauncher`).
pub use super::shards::ShardLauncher;

/// A compiled backup with its handles.
pub struct PreparedBackup {
    pub plan: BackupPlan,
    pub client: KafkaClient,
    pub op: Operator,
    pub storage: StorageTarget,
    /// The repository's key-encryption key (`storage.encryption`), for the run's context.
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

/// A KafkaBackup validated and its references resolved: what a run and a shard both start
/// from.
struct Resolved {
    /// The normalised input compile takes (the spec's rules have their one home there).
    input: crate::api::ValidatedBackup,
    name: String,
    target: StorageTarget,
    keyring: Option<crate::format::keyring::Keyring>,
    cfg: crate::kafka::ClientConfig,
}

/// Validates `kb` and resolves its storage, key-encryption key and cluster connection.
fn resolve(kb: &KafkaBackup, secrets: &Secrets, pvc_root: &Path) -> Result<Resolved, KindError> {
    let spec = &kb.spec;
    let input = crate::api::validate_backup(kb)
        .map_err(|e| ApiError::invalid("KafkaBackup", kb.metadata.name.as_deref(), e))?;
    let target = observe::storage_target(&spec.storage, secrets, pvc_root, "spec.storage")?;
    let keyring = observe::keyring(&spec.storage, secrets, "spec.storage")?;
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    Ok(Resolved {
        input,
        name: kb.metadata.name.clone().unwrap_or_default(),
        target,
        keyring,
        cfg,
    })
}

/// Observes the cluster and the repository of `kb` and compiles its next run.
pub async fn prepare(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
    access: Access,
) -> Result<PreparedBackup, KindError> {
    let Resolved {
        input,
        name,
        target,
        keyring,
        cfg,
    } = resolve(kb, secrets, pvc_root)?;
    // Observe and compile read-only; storage is opened for writing only once the plan stands.
    let mut op = open(&target, Access::ReadOnly)?;
    let client = KafkaClient::connect(cfg).await?;
    let meta = client.metadata();
    let available: Vec<(String, bool)> = meta
        .topics
        .values()
        .map(|t| (t.name.clone(), t.is_internal))
        .collect();
    let (selected, _) = plan::select_topics(&input.topics, &input.exclude_topics, &available);
    let facts = observe::observe_cluster(&client, &selected, true).await?;
    let mut repo = observe::load_repo_state(&op, &name).await?;
    // The previous run is authenticated before the new one continues from it.
    if let Some(prev) = repo.latest.as_mut() {
        encryption::open_run(&op, keyring.as_ref(), prev, "spec.storage").await?;
    }
    if let Some(c) = &repo.checkpoint {
        encryption::check_checkpoint(keyring.as_ref(), c, "spec.storage")?;
    }
    let diverged = match &repo.latest {
        Some(prev) => {
            observe::diverged_partitions(&client, prev, &facts.offsets, &facts.configs).await?
        }
        None => Default::default(),
    };
    let parts: Vec<(String, i32)> = facts.offsets.keys().cloned().collect();
    let log_sizes = observe::observe_log_sizes(&client, &facts.meta, &parts).await;
    let facts = BackupFacts {
        name,
        now_ms,
        meta: facts.meta,
        offsets: facts.offsets,
        configs: facts.configs,
        previous: repo.latest,
        checkpoint: repo.checkpoint,
        diverged,
        log_sizes,
    };
    let mut plan = plan::compile_backup(&input, &facts)?;
    if plan.execution.is_some()
        && let Some(staged) =
            exec::shard::staged_run(&op, &plan.backup_name, plan.previous_run_id.as_deref()).await?
    {
        // An earlier attempt of a sharded run staged it: it resumes as staged (run id, cut,
        // shards), whatever the cluster shows now.
        plan = staged.plan;
    }
    (plan.owner, plan.adopt_from) = owner::backup_owner(&kb.metadata)?;
    let adopt = plan.adopt_from.as_ref();
    owner::check_backup_repository(&op, &plan.backup_name, &plan.owner, adopt, now_ms).await?;
    if access == Access::ReadWrite {
        // storage.s3.objectLock on a bucket without Object Lock: refused before any write
        crate::storage::object_lock::require_bucket_lock(&target).await?;
        op = open(&target, access)?;
    }
    Ok(PreparedBackup {
        plan,
        client,
        op,
        storage: target,
        keyring: keyring.map(std::sync::Arc::new),
    })
}

/// What a backup run produced.
pub struct Outcome {
    /// The manifest of the completed run.
    pub manifest: RunManifest,
    /// `spec.retention.enabled`: what retention pruned after the run (its plan), or why it
    /// failed. A failed retention does not fail the run: the run's data is complete.
    pub retention: Option<Result<plan::RetentionPlan, KindError>>,
}

/// Runs the compiled backup `prep` of `kb` with the progress, cancellation and limits of `ctx`
/// (the repository's key-encryption key is added from `prep`), then, after a successful run
/// and with `retention.enabled`, its retention ([`super::retention`]; `secrets` and
/// `pvc_root` open the retention's own storage credential).
///
/// Errors: the run's ([`KindError::Exec`]; a cancelled run is [`KindError::is_cancelled`]).
pub async fn run(
    kb: &KafkaBackup,
    prep: &PreparedBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    ctx: &ExecContext,
) -> Result<Outcome, KindError> {
    if prep.plan.execution.is_some() {
        tracing::warn!(backup = %prep.plan.backup_name,
            "spec.execution.mode job: this run moves the data in this process (the operator runs shards as Kubernetes Jobs only with the chart's jobs.enabled, KBO_JOB_DEFAULTS): docs/execution.md");
    }
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let manifest = crate::exec::run_backup(&prep.plan, &prep.client, &prep.op, &ctx).await?;
    with_retention(kb, prep, secrets, pvc_root, &ctx, manifest).await
}

/// Runs the compiled sharded backup `prep` of `kb` (`prep.plan.execution` set): stages it,
/// has `launcher` run every shard without a result, commits the manifest once all have
/// finished, then applies retention as [`run`] does.
///
/// Errors: [`KindError::Exec`] with [`exec::ExecError::ShardsFailed`] naming the failed
/// shards (the others' work is kept for the next attempt); the run's other errors.
pub async fn run_sharded<L: ShardLauncher>(
    kb: &KafkaBackup,
    prep: &PreparedBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    ctx: &ExecContext,
    launcher: &L,
) -> Result<Outcome, KindError> {
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let plan = &prep.plan;
    let shards: Vec<Vec<usize>> = match &plan.execution {
        Some(e) => e.shards.iter().map(|s| s.partitions.clone()).collect(),
        None => vec![(0..plan.partitions.len()).collect()],
    };
    let n = shards.len() as u32;
    let run_id = plan.run_id.clone();
    let launch = |i: u32| launcher.run_shard(&run_id, i, n);
    let manifest =
        exec::shard::coordinate_backup(plan, shards, &prep.client, &prep.op, &ctx, launch).await?;
    with_retention(kb, prep, secrets, pvc_root, &ctx, manifest).await
}

/// The outcome of a completed run, with `spec.retention` applied after it.
async fn with_retention(
    kb: &KafkaBackup,
    prep: &PreparedBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    ctx: &ExecContext,
    manifest: RunManifest,
) -> Result<Outcome, KindError> {
    let retention = if kb.spec.retention.enabled {
        let pruned = async {
            let op = super::retention::storage(kb, secrets, pvc_root, &prep.op)?;
            super::retention::apply(kb, &op, (ctx.now_ms)()).await
        };
        Some(pruned.await)
    } else {
        None
    };
    Ok(Outcome {
        manifest,
        retention,
    })
}

/// One shard of a staged run, ready to run: the staging read from the repository and the
/// handles of the KafkaBackup's cluster and storage.
pub struct PreparedShard {
    pub staged: StagedRun,
    pub shard: u32,
    pub client: KafkaClient,
    pub op: Operator,
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

impl PreparedShard {
    /// The shard's rate limits: `spec.rateLimiting` holds for the run, so each of its N shards
    /// gets 1/N of it (bytes/s, records/s; at least 1).
    pub fn limits(&self) -> crate::exec::Limits {
        let n = self.staged.shards.len().max(1) as u64;
        let share = |l: Option<u64>| l.map(|v| (v / n).max(1));
        let plan = &self.staged.plan;
        crate::exec::Limits::new(share(plan.bytes_per_sec), share(plan.records_per_sec))
    }
}

/// Reads shard `shard` of `shards` of the staged run `run_id` of `kb` (`run --plan RUN
/// --shard i/N`, what a Job runs) and connects to the cluster and the storage.
///
/// Errors: an invalid `kb` (as [`prepare`]); a run that is not staged; `shards` not the
/// staged count or `shard` out of range ([`KindError::Api`]-like input errors naming
/// `--shard`); connection failures.
pub async fn prepare_shard(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    run_id: &str,
    (shard, shards): (u32, u32),
) -> Result<PreparedShard, KindError> {
    let Resolved {
        name,
        target,
        keyring,
        cfg,
        ..
    } = resolve(kb, secrets, pvc_root)?;
    let op = open(&target, Access::ReadWrite)?;
    let staged = exec::shard::load_staged(&op, &name, run_id).await?;
    if staged.shards.len() as u32 != shards {
        return Err(exec::ExecError::Input(format!(
            "--shard {shard}/{shards}: run {run_id} was staged with {} shards; fix --shard",
            staged.shards.len()
        ))
        .into());
    }
    staged.steps(shard)?;
    let client = KafkaClient::connect(cfg).await?;
    Ok(PreparedShard {
        staged,
        shard,
        client,
        op,
        keyring: keyring.map(std::sync::Arc::new),
    })
}

/// Runs the prepared shard (`exec::shard::run_backup_shard`) with the progress, cancellation
/// and limits of `ctx`.
pub async fn run_shard(prep: &PreparedShard, ctx: &ExecContext) -> Result<ShardResult, KindError> {
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let staged = &prep.staged;
    Ok(exec::shard::run_backup_shard(staged, prep.shard, &prep.client, &prep.op, &ctx).await?)
}
