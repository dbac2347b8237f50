//! The flow glue shared by the CLI and the operator: dereference -> observe -> compile for
//! each kind, returning the compiled plan together with the live client and storage handles
//! the executor needs. `plan` stops after compile; `run` and the operator go on to execute.
use std::path::Path;

use opendal::Operator;

use crate::api::{ApiError, KafkaBackup, KafkaRestore, Secrets};
use crate::exec::{ExecError, RestoreStart};
use crate::kafka::KafkaClient;
use crate::observe::{self, ObserveError};
use crate::plan::{self, BackupFacts, BackupPlan, CompileError, RestoreFacts, RestorePlan};
use crate::storage::{StorageError, StorageTarget};

/// Errors of the flow, one variant per layer.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("the plan cannot be compiled:\n{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl FlowError {
    /// True when running again later may succeed: a broker or the storage was unreachable or
    /// answered with a retriable error. Invalid specs and refused plans are never transient.
    pub fn is_transient(&self) -> bool {
        match self {
            FlowError::Observe(ObserveError::Kafka(e)) => e.is_retriable(),
            FlowError::Observe(ObserveError::Storage(e)) => e.is_transient(),
            FlowError::Exec(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The failure category (see [`ExecError::category`]); `input` for a spec or setting that
    /// cannot work, `plan-refused` for a plan that cannot be compiled.
    pub fn category(&self) -> &'static str {
        match self {
            FlowError::Api(_) => "input",
            FlowError::Observe(ObserveError::Api(_))
            | FlowError::Observe(ObserveError::Config { .. }) => "input",
            FlowError::Observe(ObserveError::Kafka(e)) => e.category(),
            FlowError::Observe(ObserveError::Storage(e)) => e.category(),
            FlowError::Compile(_) => "plan-refused",
            FlowError::Exec(e) => e.category(),
        }
    }

    /// True when the backup repository holds no complete run of the restore's backup yet.
    pub fn no_complete_run(&self) -> bool {
        matches!(
            self,
            FlowError::Observe(ObserveError::Storage(StorageError::NoCompleteRun { .. }))
        )
    }
}

impl From<crate::kafka::KafkaError> for FlowError {
    fn from(e: crate::kafka::KafkaError) -> Self {
        FlowError::Observe(e.into())
    }
}
impl From<crate::storage::StorageError> for FlowError {
    fn from(e: crate::storage::StorageError) -> Self {
        FlowError::Observe(e.into())
    }
}

/// How storage is opened: `ReadOnly` never creates anything (plan, dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

fn open(target: &StorageTarget, access: Access) -> Result<Operator, FlowError> {
    Ok(match access {
        Access::ReadOnly => target.open_read_only()?,
        Access::ReadWrite => target.operator()?,
    })
}

/// A compiled backup with its handles.
pub struct PreparedBackup {
    pub plan: BackupPlan,
    pub client: KafkaClient,
    pub op: Operator,
    pub storage: StorageTarget,
}

/// Connects to a restore's target cluster with its `circuitBreaker`.
async fn connect_restore_target(
    spec: &crate::api::KafkaRestoreSpec,
    secrets: &Secrets,
) -> Result<KafkaClient, FlowError> {
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    Ok(KafkaClient::connect(cfg).await?)
}

/// Observes the cluster and the repository of `kb` and compiles its next run.
pub async fn prepare_backup(
    kb: &KafkaBackup,
    secrets: &Secrets,
    pvc_root: &Path,
    now_ms: i64,
    access: Access,
) -> Result<PreparedBackup, FlowError> {
    let spec = &kb.spec;
    let name = kb.metadata.name.clone().unwrap_or_default();
    let target = observe::storage_target(&spec.storage, secrets, pvc_root, "spec.storage")?;
    let mut cfg = observe::client_config(&spec.kafka_cluster, secrets)?;
    cfg.breaker = observe::breaker_config(&spec.circuit_breaker);
    // Observe and compile read-only; storage is opened for writing only once the plan stands.
    let mut op = open(&target, Access::ReadOnly)?;
    let client = KafkaClient::connect(cfg).await?;
    let meta = client.metadata();
    let available: Vec<(String, bool)> = meta
        .topics
        .values()
        .map(|t| (t.name.clone(), t.is_internal))
        .collect();
    let (selected, _) = plan::select_topics(&spec.topics, &spec.exclude_topics, &available);
    let facts = observe::observe_cluster(&client, &selected, true).await?;
    let repo = observe::load_repo_state(&op, &name).await?;
    let diverged = match &repo.latest {
        Some(prev) => {
            observe::diverged_partitions(&client, prev, &facts.offsets, &facts.configs).await?
        }
        None => Default::default(),
    };
    let facts = BackupFacts {
        name,
        now_ms,
        meta: facts.meta,
        offsets: facts.offsets,
        configs: facts.configs,
        previous: repo.latest,
        checkpoint: repo.checkpoint,
        diverged,
    };
    let plan = plan::compile_backup(spec, &facts)?;
    if access == Access::ReadWrite {
        op = open(&target, access)?;
    }
    Ok(PreparedBackup {
        plan,
        client,
        op,
        storage: target,
    })
}

/// A compiled restore with its handles.
pub struct PreparedRestore {
    pub plan: RestorePlan,
    /// Fresh, or the resumption of an interrupted attempt (then `plan` is the journal's).
    pub start: RestoreStart,
    pub client: KafkaClient,
    pub op: Operator,
    pub storage: StorageTarget,
}

/// Resolves the backup a KafkaRestore refers to (`backup`: the KafkaBackup named by
/// `backupRef.name`, needed unless `backupRef.storage` is inline), loads the run manifest,
/// observes the target cluster and compiles. A journal of this restore with the same data
/// ([`plan::restore_data_hash`]) is taken instead: incomplete, it is resumed (its plan is kept:
/// the targets now hold its own records, which a fresh compile would refuse, and the executor
/// skips what was already written); complete, the restore does nothing
/// ([`RestoreStart::Complete`]).
pub async fn prepare_restore(
    kr: &KafkaRestore,
    backup: Option<&KafkaBackup>,
    secrets: &Secrets,
    pvc_root: &Path,
    access: Access,
) -> Result<PreparedRestore, FlowError> {
    let spec = &kr.spec;
    let storage_spec = match (&spec.backup_ref.storage, backup) {
        (Some(s), _) => s.clone(),
        (None, Some(kb)) => kb.spec.storage.clone(),
        (None, None) => {
            return Err(ObserveError::Config {
                field: "spec.backupRef.name".into(),
                message: format!(
                    "KafkaBackup {:?} is not among the given files and backupRef.storage is not set: add the KafkaBackup's YAML with -f, or give backupRef.storage",
                    spec.backup_ref.name
                ),
            }
            .into());
        }
    };
    let field = if spec.backup_ref.storage.is_some() {
        "spec.backupRef.storage"
    } else {
        "KafkaBackup spec.storage"
    };
    let target = observe::storage_target(&storage_spec, secrets, pvc_root, field)?;
    let mut op = open(&target, Access::ReadOnly)?;
    let restore_name = kr.metadata.name.clone().unwrap_or_default();
    let spec_hash = plan::restore_data_hash(spec);
    let journal = crate::exec::load_journal(&op, &spec.backup_ref.name, &restore_name)
        .await?
        .filter(|j| j.spec_hash == spec_hash);
    if let Some(j) = journal {
        // The same data as the journal's attempt: continue it (or, complete, do nothing),
        // with this spec's rate limits, concurrency and timeout. The batch size stays the
        // first attempt's, so that the records already written are skipped exactly.
        let mut plan = j.plan.clone();
        plan.dry_run = spec.dry_run;
        plan.max_concurrent_partitions = spec.max_concurrent_partitions();
        plan.records_per_sec = spec.rate_limiting.records_limit();
        plan.bytes_per_sec = spec.rate_limiting.bytes_limit();
        plan.produce_timeout_ms = spec.produce_timeout_ms;
        // The group options are not part of the data: this spec's apply.
        plan.groups = plan::restore_groups_plan(spec);
        let client = connect_restore_target(spec, secrets).await?;
        if access == Access::ReadWrite && !spec.dry_run {
            op = open(&target, access)?;
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
        });
    }
    let manifest = match &spec.backup_ref.backup_id {
        Some(id) => observe::load_manifest(&op, &spec.backup_ref.name, id).await?,
        None => observe::latest_complete_run(&op, &spec.backup_ref.name).await?,
    };
    let client = connect_restore_target(spec, secrets).await?;
    let targets: Vec<String> = manifest
        .topics
        .iter()
        .map(|t| spec.target_topic(&t.name).to_string())
        .collect();
    let facts = observe::observe_cluster(&client, &targets, true).await?;
    let facts = RestoreFacts {
        restore_name,
        manifest,
        target: facts.meta,
        target_offsets: facts.offsets,
        target_configs: facts.configs,
    };
    let plan = plan::compile_restore(spec, &facts)?;
    if access == Access::ReadWrite && !plan.dry_run {
        op = open(&target, access)?;
    }
    Ok(PreparedRestore {
        plan,
        start: RestoreStart::Fresh { spec_hash },
        client,
        op,
        storage: target,
    })
}

/// Applies `kb`'s retention to its repository after a successful run: lists every complete run,
/// compiles what to prune ([`plan::compile_retention`]) and deletes it (nothing in dry run).
pub async fn apply_retention(
    kb: &KafkaBackup,
    op: &Operator,
    now_ms: i64,
) -> Result<plan::RetentionPlan, FlowError> {
    let name = kb.metadata.name.clone().unwrap_or_default();
    let runs = observe::load_complete_manifests(op, &name).await?;
    let plan = plan::compile_retention(&kb.spec.retention, &runs, now_ms);
    if !plan.dry_run {
        let lock = crate::exec::lock::Lock::acquire(
            op,
            &crate::format::layout::backup_lock(&name),
            "retention",
        )
        .await
        .map_err(FlowError::Exec)?;
        lock.hold(crate::exec::run_retention(&plan, op, &name))
            .await
            .map_err(FlowError::Exec)?;
    }
    Ok(plan)
}
