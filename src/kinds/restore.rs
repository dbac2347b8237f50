//! KafkaRestore: `prepare` resolves the backup, resumes a journal or observes the target and
//! compiles; `run` executes the plan (or does nothing for a dry run or a restore that is
//! complete) and returns an [`Outcome`] that the CLI and the operator render. With
//! `execution.mode: job`, `run_sharded` coordinates the run and a [`ShardLauncher`] runs its
//! shards, each prepared by `prepare_shard` and run by `run_shard` (`run --plan RUN --shard
//! I/N`, docs/execution.md "Restores").
use std::path::Path;

use opendal::Operator;

use super::shards::ShardLauncher;
use super::{Access, KindError, open};
use super::{encryption, owner};
use crate::api::{ApiError, KafkaBackup, KafkaRestore, Secrets};
use crate::exec::restore_shard::{self, RestoreShardResult, RestoreShardSteps, StagedRestore};
use crate::exec::{ExecContext, RestoreJournal, RestoreOutcome, RestoreStart};
use crate::kafka::KafkaClient;
use crate::observe::{self, ObserveError};
use crate::plan;
use crate::plan::{RestoreFacts, RestorePlan};
use crate::storage::StorageTarget;

/// Connects to a restore's target cluster with its `circuitBreaker`.
async fn connect_restore_target(
    spec: &crate::api::KafkaRestoreSpec,
    secrets: &Secrets,
) -> Result<KafkaClient, KindError> {
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    Ok(KafkaClient::connect(cfg).await?)
}

/// The repository a restore reads (`backupRef.storage`, else its KafkaBackup's storage),
/// opened read-only.
pub(crate) fn restore_repository(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
) -> Result<
    (
        StorageTarget,
        Operator,
        Option<crate::format::keyring::Keyring>,
    ),
    KindError,
> {
    let spec = &kr.spec;
    let storage_spec = super::backup_storage(
        spec.backup_ref.storage.as_ref(),
        &spec.backup_ref.name,
        backup,
    )?;
    let field = if spec.backup_ref.storage.is_some() {
        "spec.backupRef.storage"
    } else {
        "KafkaBackup spec.storage"
    };
    let target = observe::storage_target(&storage_spec, secrets, pvc_root, field)?;
    let keyring = observe::keyring(&storage_spec, secrets, field)?;
    let op = open(&target, Access::ReadOnly)?;
    Ok((target, op, keyring))
}

/// Where restore `kr` keeps its journal, lock, offset map and group snapshots:
/// `spec.stateStorage`, else the repository (`repo`, already resolved), opened for `access`.
fn restore_state(
    kr: &KafkaRestore,
    repo: &StorageTarget,
    secrets: &Secrets,
    pvc_root: &Path,
    access: Access,
) -> Result<Operator, KindError> {
    match &kr.spec.state_storage {
        Some(st) => {
            let target = observe::storage_target(st, secrets, pvc_root, "spec.stateStorage")?;
            open(&target, access)
        }
        None => open(repo, access),
    }
}

/// The complete journal of restore `kr` (its plan names the offset map and carries the
/// backup's group snapshot). Errors name `field` and the fix.
pub(crate) async fn completed_restore(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    field: &str,
) -> Result<(crate::exec::RestoreJournal, Operator), KindError> {
    let name = kr.metadata.name.clone().unwrap_or_default();
    let (repo, _, _) = restore_repository(kr, backup, secrets, pvc_root)?;
    let op = restore_state(kr, &repo, secrets, pvc_root, Access::ReadOnly)?;
    let cfg = |message: String| -> KindError {
        ObserveError::Config {
            field: field.into(),
            message,
        }
        .into()
    };
    match crate::exec::load_journal(&op, &kr.spec.backup_ref.name, &name).await? {
        None => Err(cfg(format!(
            "KafkaRestore {name:?} has no journal in its state storage (spec.stateStorage, else its backup's storage): it has not run"
        ))),
        Some(j) if !j.complete => Err(cfg(format!(
            "KafkaRestore {name:?} has not completed: run it to the end first"
        ))),
        Some(j) => Ok((j, op)),
    }
}

/// A compiled restore with its handles.
pub struct PreparedRestore {
    pub plan: RestorePlan,
    /// Fresh, or the resumption of an interrupted attempt (then `plan` is the journal's).
    pub start: RestoreStart,
    pub client: KafkaClient,
    /// The backup repository, read-only: a restore never writes to it unless it is also
    /// `state` (the default).
    pub op: Operator,
    pub storage: StorageTarget,
    /// Where the restore writes its journal, lock, offset map and group snapshots
    /// (`spec.stateStorage`, default the repository): read-write unless the restore is a plan
    /// or a dry run.
    pub state: Operator,
    /// The repository's key-encryption key (`storage.encryption`), for the run's context.
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

/// Resolves the backup a KafkaRestore refers to (`backup`: the KafkaBackup named by
/// `backupRef.name`, needed unless `backupRef.storage` is inline), loads the run manifest,
/// observes the target cluster and compiles. A journal of this restore with the same data
/// ([`plan::restore_data_hash`]) is taken instead: incomplete, it is resumed (its plan is kept:
/// the targets now hold its own records, which a fresh compile would refuse, and the executor
/// skips what was already written); complete, the restore does nothing
/// ([`RestoreStart::Complete`]).
pub async fn prepare(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    access: Access,
) -> Result<PreparedRestore, KindError> {
    let spec = &kr.spec;
    // The normalised input compile takes (the spec's rules have their one home there).
    let input = crate::api::validate_restore(kr)
        .map_err(|e| ApiError::invalid("KafkaRestore", kr.metadata.name.as_deref(), e))?;
    let (target, op, keyring) = restore_repository(kr, backup, secrets, pvc_root)?;
    let keyring = keyring.map(std::sync::Arc::new);
    let inline = spec.backup_ref.storage.is_some();
    owner::check_reader_repository(&op, &spec.backup_ref.name, backup, inline).await?;
    let restore_name = kr.metadata.name.clone().unwrap_or_default();
    let spec_hash = plan::restore_data_hash(spec);
    let mut state = restore_state(kr, &target, secrets, pvc_root, Access::ReadOnly)?;
    let journal = crate::exec::load_journal(&state, &spec.backup_ref.name, &restore_name)
        .await?
        .filter(|j| j.spec_hash == spec_hash);
    if let Some(j) = journal {
        // The same data as the journal's attempt: continue it (or, complete, do nothing),
        // with this attempt's rate limits, concurrency, timeout and group options.
        let plan = plan::resumed_restore(&j.plan, &input);
        let client = connect_restore_target(spec, secrets).await?;
        if access == Access::ReadWrite && !input.dry_run {
            state = restore_state(kr, &target, secrets, pvc_root, access)?;
        }
        let start = if j.complete {
            RestoreStart::Complete(Box::new(j))
        } else {
            RestoreStart::Resume(Box::new(j))
        };
        return Ok(PreparedRestore {
            plan,
            start,
            client,
            op,
            storage: target,
            state,
            keyring,
        });
    }
    let mut manifest = match &spec.backup_ref.backup_id {
        Some(id) => observe::load_manifest(&op, &spec.backup_ref.name, id).await?,
        None => observe::latest_complete_run(&op, &spec.backup_ref.name).await?,
    };
    let field = if inline {
        "spec.backupRef.storage"
    } else {
        "KafkaBackup spec.storage"
    };
    encryption::open_run(&op, keyring.as_deref(), &mut manifest, field).await?;
    let client = connect_restore_target(spec, secrets).await?;
    let targets: Vec<String> = manifest
        .topics
        .iter()
        .map(|t| input.target_topic(&t.name).to_string())
        .collect();
    let facts = observe::observe_cluster(&client, &targets, true).await?;
    let facts = RestoreFacts {
        restore_name,
        manifest,
        target: facts.meta,
        target_offsets: facts.offsets,
        target_configs: facts.configs,
    };
    let plan = plan::compile_restore(&input, &facts)?;
    if access == Access::ReadWrite && !plan.dry_run {
        state = restore_state(kr, &target, secrets, pvc_root, access)?;
    }
    Ok(PreparedRestore {
        plan,
        start: RestoreStart::Fresh { spec_hash },
        client,
        op,
        storage: target,
        state,
        keyring,
    })
}

impl PreparedRestore {
    /// The outcome when there is nothing to execute: a dry run, or a restore whose journal is
    /// complete with its consumer-group step done or not asked for. None: [`run`] executes.
    pub fn nothing_to_run(&self) -> Option<Outcome> {
        if self.plan.dry_run {
            return Some(Outcome::DryRun);
        }
        match &self.start {
            RestoreStart::Complete(j) if self.plan.groups.is_none() || j.groups_done => {
                Some(Outcome::AlreadyComplete(j.clone()))
            }
            _ => None,
        }
    }
}

/// What a restore run did.
pub enum Outcome {
    /// `dryRun`: nothing was executed; the plan is what there is to show.
    DryRun,
    /// This restore wrote its data before and its consumer-group step is done or not asked
    /// for (its journal): nothing was read or written.
    AlreadyComplete(Box<RestoreJournal>),
    /// The data was restored now (or, after an earlier attempt, only the consumer groups were
    /// carried over now: [`RestoreOutcome::already_complete`]).
    Ran(Box<RestoreOutcome>),
}

impl Outcome {
    /// The one message for a restore whose data is in but some consumer groups were not
    /// carried over (refused with live members, or failed), for the CLI and for status (the
    /// operator tags it with the category `groups-not-carried`); None when every group was.
    /// The run is to be retried: only the group step runs again.
    pub fn groups_not_carried(&self, restore_name: &str) -> Option<String> {
        let Outcome::Ran(out) = self else {
            return None;
        };
        let failed = out.failed_groups();
        (!failed.is_empty()).then(|| {
            format!(
                "restore {restore_name}: the data is restored, but {} of {} consumer groups were not carried over ({}); fix what the table says and run again: only the groups are retried",
                failed.len(),
                out.groups.len(),
                failed.iter().map(|g| g.group.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// Runs the prepared restore `prep` with the progress, cancellation and limits of `ctx` (the
/// repository's key-encryption key is added from `prep`): nothing for a dry run or for a
/// restore whose journal is complete with its groups done, else the executor
/// ([`crate::exec::run_restore`]: resumes from the journal, then the consumer-group step).
///
/// Errors: the executor's ([`KindError::Exec`]; a cancelled run is
/// [`KindError::is_cancelled`]). Groups not carried over are not an error here: see
/// [`Outcome::groups_not_carried`].
pub async fn run(prep: &PreparedRestore, ctx: &ExecContext) -> Result<Outcome, KindError> {
    if let Some(out) = prep.nothing_to_run() {
        return Ok(out);
    }
    let plan = &prep.plan;
    if plan.execution.is_some() {
        tracing::warn!(restore = %plan.restore_name,
            "spec.execution.mode job: this restore moves the data in this process (the operator runs shards as Kubernetes Jobs only with the chart's jobs.enabled, KBO_JOB_DEFAULTS): docs/execution.md");
    }
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let out =
        crate::exec::run_restore(plan, &prep.start, &prep.client, &prep.op, &prep.state, &ctx)
            .await?;
    Ok(Outcome::Ran(Box::new(out)))
}

/// Runs the prepared sharded restore `prep` (`prep.plan.execution` set) as [`run`] does, with
/// its data moved by shards: the coordinator (this call) holds the restore's lock and target
/// fence, prepares the targets and writes the journal once, stages the run in the state
/// storage, has `launcher` run every shard without a result (`run_id`: the backup run the
/// restore reads), then writes the offset map, completes the journal and runs the
/// consumer-group step once. Nothing runs for a dry run or a complete restore (as [`run`]).
///
/// Errors: [`KindError::Exec`] with [`crate::exec::ExecError::ShardsFailed`] naming the
/// failed shards (the others' results are kept for the next attempt); the run's other errors.
pub async fn run_sharded<L: ShardLauncher>(
    prep: &PreparedRestore,
    ctx: &ExecContext,
    launcher: &L,
) -> Result<Outcome, KindError> {
    if let Some(out) = prep.nothing_to_run() {
        return Ok(out);
    }
    let plan = &prep.plan;
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let shards: Vec<RestoreShardSteps> = match &plan.execution {
        Some(e) => (e.shards.iter())
            .map(|s| RestoreShardSteps {
                partitions: s.partitions.clone(),
                repartitioned: s.repartitioned.clone(),
            })
            .collect(),
        None => vec![RestoreShardSteps {
            partitions: (0..plan.partitions.len()).collect(),
            repartitioned: (0..plan.repartitioned.len()).collect(),
        }],
    };
    let run_id = plan.backup_run_id.clone();
    let launch = |i: u32, n: u32| launcher.run_shard(&run_id, i, n);
    let (client, op, state) = (&prep.client, &prep.op, &prep.state);
    let out = restore_shard::coordinate_restore(
        plan,
        &prep.start,
        shards,
        client,
        op,
        state,
        &ctx,
        launch,
    )
    .await?;
    Ok(Outcome::Ran(Box::new(out)))
}

/// One shard of a staged sharded restore, ready to run: the staging read from the restore's
/// state storage and the handles of the repository, the state storage and the target cluster.
pub struct PreparedRestoreShard {
    pub staged: StagedRestore,
    pub shard: u32,
    pub client: KafkaClient,
    /// The backup repository (read).
    pub op: Operator,
    /// The restore's state storage (the staging, the shard's result).
    pub state: Operator,
    pub keyring: Option<std::sync::Arc<crate::format::keyring::Keyring>>,
}

impl PreparedRestoreShard {
    /// The shard's rate limits: `spec.rateLimiting` holds for the restore, so each of its N
    /// shards gets 1/N of it (bytes/s, records/s; at least 1).
    pub fn limits(&self) -> crate::exec::Limits {
        let n = self.staged.shards.len().max(1) as u64;
        let share = |l: Option<u64>| l.map(|v| (v / n).max(1));
        let plan = &self.staged.plan;
        crate::exec::Limits::new(share(plan.bytes_per_sec), share(plan.records_per_sec))
    }
}

/// Reads shard `shard` of `shards` of the staged restore `kr` (`run --plan RUN --shard i/N`,
/// what a Job runs; `run_id`, when given, must be the backup run the restore reads) and
/// connects to the target cluster and the storages.
///
/// Errors: an invalid `kr` (as [`prepare`]); nothing staged or another run staged (naming
/// `--plan`); `shards` not the staged count or `shard` out of range (naming `--shard`);
/// connection failures.
pub async fn prepare_shard(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    run_id: Option<&str>,
    (shard, shards): (u32, u32),
) -> Result<PreparedRestoreShard, KindError> {
    crate::api::validate_restore(kr)
        .map_err(|e| ApiError::invalid("KafkaRestore", kr.metadata.name.as_deref(), e))?;
    let (target, op, keyring) = restore_repository(kr, backup, secrets, pvc_root)?;
    let state = restore_state(kr, &target, secrets, pvc_root, Access::ReadWrite)?;
    let name = kr.metadata.name.clone().unwrap_or_default();
    let staged =
        restore_shard::load_staged(&state, &kr.spec.backup_ref.name, &name, run_id).await?;
    if staged.shards.len() as u32 != shards {
        return Err(crate::exec::ExecError::Input(format!(
            "--shard {shard}/{shards}: restore {name} was staged with {} shards; fix --shard",
            staged.shards.len()
        ))
        .into());
    }
    staged.steps(shard)?;
    let client = connect_restore_target(&kr.spec, secrets).await?;
    Ok(PreparedRestoreShard {
        staged,
        shard,
        client,
        op,
        state,
        keyring: keyring.map(std::sync::Arc::new),
    })
}

/// Runs the prepared restore shard ([`restore_shard::run_restore_shard`]) with the progress,
/// cancellation and limits of `ctx`.
pub async fn run_shard(
    prep: &PreparedRestoreShard,
    ctx: &ExecContext,
) -> Result<RestoreShardResult, KindError> {
    let ctx = ctx.clone().with_keyring(prep.keyring.clone());
    let (staged, shard) = (&prep.staged, prep.shard);
    Ok(
        restore_shard::run_restore_shard(staged, shard, &prep.client, &prep.op, &prep.state, &ctx)
            .await?,
    )
}
