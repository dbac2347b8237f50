//! KafkaOffsetReset: `prepare` observes the groups and partitions and compiles the reset; `run`
//! takes the snapshot (where the caller keeps snapshots) and commits.
use std::path::Path;

use super::KindError;
use super::restore::completed_restore;
use crate::api::{KafkaBackup, KafkaRestore, Secrets};
use crate::kafka::KafkaClient;
use crate::observe::{self, ObserveError};
use crate::plan;
use crate::storage::StorageError;

/// A compiled KafkaOffsetReset and the client to run it with.
pub struct PreparedOffsetReset {
    pub plan: plan::OffsetResetPlan,
    pub client: KafkaClient,
}

/// Observes a KafkaOffsetReset's groups and partitions and compiles it. `restore`: the
/// KafkaRestore (and its KafkaBackup) `offsetMappingRef.restoreName` names, for from-mapping.
pub async fn prepare(
    kor: &crate::api::KafkaOffsetReset,
    restore: Option<(&KafkaRestore, Option<&KafkaBackup>)>,
    secrets: &Secrets,
    pvc_root: &Path,
) -> Result<PreparedOffsetReset, KindError> {
    use crate::api::offset_reset::ResetStrategy;
    let spec = &kor.spec;
    let name = kor.metadata.name.clone().unwrap_or_default();
    let client =
        KafkaClient::connect(observe::client_config(&spec.kafka_cluster, secrets)?).await?;
    let committed = observe::committed_groups(&client, &spec.consumer_groups).await?;
    let (mut mapping, mut snapshot) = (None, None);
    if spec.reset_strategy == ResetStrategy::FromMapping
        && let Some(m) = &spec.offset_mapping_ref
    {
        if let Some(rn) = &m.restore_name {
            let Some((kr, kb)) = restore else {
                return Err(ObserveError::Config {
                    field: "spec.offsetMappingRef.restoreName".into(),
                    message: format!(
                        "KafkaRestore {rn:?} is not among the given files: add it and its KafkaBackup with -f, or give offsetMappingRef.path"
                    ),
                }
                .into());
            };
            let (j, op) = completed_restore(
                kr,
                kb,
                secrets,
                pvc_root,
                "spec.offsetMappingRef.restoreName",
            )
            .await?;
            let path = &j.plan.offset_map_path;
            let bytes = crate::storage::read_opt(&op, path).await?.ok_or_else(|| {
                KindError::from(ObserveError::Config {
                    field: "spec.offsetMappingRef.restoreName".into(),
                    message: format!("the offset map {path} of KafkaRestore {rn:?} is missing"),
                })
            })?;
            mapping =
                Some(crate::format::manifest::from_json(&bytes, path).map_err(StorageError::from)?);
            snapshot = (!j.plan.source_groups.is_empty()).then(|| j.plan.source_groups.clone());
        } else if let Some(p) = &m.path {
            let file = match &m.pvc_name {
                Some(pvc) => pvc_root.join(pvc).join(p),
                None => std::path::PathBuf::from(p),
            };
            let bytes = std::fs::read(&file).map_err(|e| {
                KindError::from(ObserveError::Config {
                    field: "spec.offsetMappingRef.path".into(),
                    message: format!("cannot read the offset map {}: {e}", file.display()),
                })
            })?;
            mapping = Some(
                crate::format::manifest::from_json(&bytes, &file.display().to_string())
                    .map_err(StorageError::from)?,
            );
        }
    }
    let meta = client.metadata();
    let available: Vec<String> = meta.topics.keys().cloned().collect();
    let scope = plan::reset_scope_topics(spec, &available, &committed, mapping.as_ref());
    let facts = observe::observe_cluster(&client, &scope, false).await?;
    let mut by_timestamp = std::collections::BTreeMap::new();
    if spec.reset_strategy == ResetStrategy::ToTimestamp {
        let parts: Vec<(String, i32)> = facts.offsets.keys().cloned().collect();
        if !parts.is_empty() {
            by_timestamp = client
                .list_offsets(
                    &parts,
                    crate::kafka::ops::OffsetSpec::Timestamp(spec.reset_timestamp.unwrap_or(0)),
                )
                .await?
                .into_iter()
                .collect();
        }
    }
    let facts = plan::OffsetResetFacts {
        partitions: client
            .metadata()
            .topics
            .values()
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect(),
        offsets: facts.offsets,
        by_timestamp,
        committed,
        mapping,
        snapshot,
    };
    let plan = plan::compile_offset_reset(&name, spec, &facts)?;
    Ok(PreparedOffsetReset { plan, client })
}

/// Runs the compiled reset `prep` at `now_ms`: with `snapshotBeforeReset` (and not a dry run)
/// the groups' committed offsets are saved first through `save` (a file for the CLI, a
/// ConfigMap for the operator; it returns where the snapshot went; None: a resumed run that
/// took its snapshot already), then every group is committed ([`crate::exec::groups`]).
///
/// Errors: the snapshot could not be saved (nothing was committed), or the cluster failed.
/// Groups not done are in the outcome, not an error.
pub async fn run<F, Fut>(
    prep: &PreparedOffsetReset,
    now_ms: i64,
    save: Option<F>,
) -> Result<crate::exec::groups::CommitOutcome, KindError>
where
    F: FnOnce(crate::format::manifest::OffsetSnapshot) -> Fut,
    Fut: std::future::Future<Output = Result<String, crate::exec::ExecError>>,
{
    Ok(crate::exec::groups::run_offset_reset(&prep.plan, &prep.client, now_ms, save).await?)
}
