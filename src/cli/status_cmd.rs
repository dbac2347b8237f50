//! `kubectl kafkabackup status [NAME]`: every KafkaBackup, KafkaRestore, KafkaBackupValidation,
//! KafkaOffsetReset and KafkaOffsetRollback of a namespace (or all) as the API server holds
//! them, one line each: phase, last and next run, recoverability window, records and bytes,
//! last validation, retention, and why the last run failed. Read only (list calls alone).
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::OutputFormat;
use crate::api::validation::KafkaBackupValidation;
use crate::api::{
    Condition, ConditionStatus, KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore,
    StatusHeader,
};

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only the resources of this name (of any of the five kinds).
    pub name: Option<String>,
    /// Namespace (default: the namespace of the kubeconfig's current context).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, else the in-cluster
    /// ServiceAccount, as the operator finds it).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// One resource as `status` shows it. Times are RFC 3339; absent fields are unknown or do not
/// apply to the kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the last run finished (`status.completionTime`, or the kind's own last-run time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// When the schedule fires next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// KafkaBackup: `status.firstRecoverabilityPoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recoverable_from: Option<String>,
    /// KafkaBackup: `status.lastRecoverabilityPoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recoverable_to: Option<String>,
    /// Records of the current/last run (stored by a backup, produced by a restore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Bytes of the current/last run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// When the last validation finished (a KafkaBackup: of the newest
    /// KafkaBackupValidation that references it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_validation: Option<String>,
    /// Its verdict: Pass, Fail, Warn or Skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_result: Option<String>,
    /// A KafkaBackup: the KafkaBackupValidation those two come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validated_by: Option<String>,
    /// A KafkaBackup: its retention rules and the last pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Kind-specific detail: the run a restore restores, groups reset or rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why the last run failed: `status.message` of a failed resource, or the failing
    /// condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

fn time(t: &Option<Time>) -> Option<String> {
    t.as_ref().map(|t| t.0.to_string())
}

fn name_of<P: std::fmt::Debug>(p: &Option<P>) -> Option<String> {
    p.as_ref().map(|p| format!("{p:?}"))
}

fn meta_of(m: &kube::api::ObjectMeta) -> (String, String) {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn condition_text(c: &Condition) -> String {
    match (&c.reason, &c.message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => c.type_.clone(),
    }
}

/// Why the last run failed: for a failed phase (Failed, RolledBack, PartiallyCompleted)
/// `status.message`, else its Ready=False condition; in any phase a `Failed` or `Degraded`
/// condition that is True.
pub fn failure(phase: Option<&str>, h: &StatusHeader) -> Option<String> {
    let failed = matches!(phase, Some("Failed" | "RolledBack" | "PartiallyCompleted"));
    let failing = |c: &&Condition| {
        (matches!(c.type_.as_str(), "Failed" | "Degraded") && c.status == ConditionStatus::True)
            || (failed && c.type_ == "Ready" && c.status == ConditionStatus::False)
    };
    if failed && let Some(m) = h.message.as_ref().filter(|m| !m.is_empty()) {
        return Some(m.clone());
    }
    h.conditions.iter().find(failing).map(condition_text)
}

/// `keepLast 7, maxAgeDays 30; last pass 2026-...: deleted 2 of 9 runs` (or its error).
fn retention_text(kb: &KafkaBackup) -> Option<String> {
    let spec = &kb.spec.retention;
    let mut rules = vec![];
    if let Some(k) = spec.keep_last {
        rules.push(format!("keepLast {k}"));
    }
    if let Some(d) = spec.max_age_days {
        rules.push(format!("maxAgeDays {d}"));
    }
    if spec.dry_run {
        rules.push("dryRun".into());
    }
    let mut s = if spec.enabled && !rules.is_empty() {
        rules.join(", ")
    } else {
        "keep all".to_string()
    };
    if let Some(r) = kb.status.as_ref().and_then(|s| s.retention.as_ref()) {
        let when = time(&r.last_retention_time).unwrap_or_else(|| "-".into());
        match &r.error {
            Some(e) => s.push_str(&format!("; last pass {when} failed: {e}")),
            None => s.push_str(&format!(
                "; last pass {when}: deleted {} of {} runs",
                r.deleted_backups.unwrap_or(0),
                r.inspected_backups.unwrap_or(0)
            )),
        }
    }
    Some(s)
}

/// The KafkaBackupValidation of `kbvs` that references `kb` and validated last.
fn validation_of<'a>(
    kb: &KafkaBackup,
    kbvs: &'a [KafkaBackupValidation],
) -> Option<&'a KafkaBackupValidation> {
    let (ns, name) = meta_of(&kb.metadata);
    kbvs.iter()
        .filter(|v| {
            let vns = v.metadata.namespace.clone().unwrap_or_default();
            v.spec.backup_ref.name == name
                && v.spec.backup_ref.namespace.clone().unwrap_or(vns) == ns
        })
        .max_by_key(|v| {
            v.status
                .as_ref()
                .and_then(|s| s.last_validation_time.as_ref().map(|t| t.0))
        })
}

/// A KafkaBackup's row; `kbvs`: the validations that may reference it.
pub fn backup_row(kb: &KafkaBackup, kbvs: &[KafkaBackupValidation]) -> StatusRow {
    let (namespace, name) = meta_of(&kb.metadata);
    let st = kb.status.clone().unwrap_or_default();
    let phase = name_of(&st.phase);
    let kbv = validation_of(kb, kbvs);
    let kbv_st = kbv.and_then(|v| v.status.as_ref());
    StatusRow {
        kind: "KafkaBackup".into(),
        failure: failure(phase.as_deref(), &st.common),
        namespace,
        name,
        phase,
        last_run: time(&st.common.completion_time).or_else(|| time(&st.last_backup_time)),
        next_run: time(&st.next_scheduled_backup),
        recoverable_from: st.first_recoverability_point,
        recoverable_to: st.last_recoverability_point,
        records: st.records_processed,
        bytes: st.bytes_processed,
        last_validation: kbv_st.and_then(|s| time(&s.last_validation_time)),
        validation_result: kbv_st.and_then(|s| name_of(&s.validation_result)),
        validated_by: kbv.map(|v| meta_of(&v.metadata).1),
        retention: retention_text(kb),
        detail: st.backup_id.map(|id| format!("run {id}")),
    }
}

/// A KafkaRestore's row.
pub fn restore_row(kr: &KafkaRestore) -> StatusRow {
    let (namespace, name) = meta_of(&kr.metadata);
    let st = kr.status.clone().unwrap_or_default();
    let phase = name_of(&st.phase);
    let run = st.backup_id.as_deref().unwrap_or("newest run");
    let mut detail = format!("backup {} ({run})", kr.spec.backup_ref.name);
    if let Some(p) = st.progress_percent {
        detail.push_str(&format!(", {p:.1}%"));
    }
    StatusRow {
        kind: "KafkaRestore".into(),
        failure: failure(phase.as_deref(), &st.common),
        namespace,
        name,
        phase,
        last_run: time(&st.common.completion_time),
        records: st.records_restored,
        bytes: st.bytes_restored,
        detail: Some(detail),
        ..Default::default()
    }
}

/// A KafkaBackupValidation's row.
pub fn validation_row(v: &KafkaBackupValidation) -> StatusRow {
    let (namespace, name) = meta_of(&v.metadata);
    let st = v.status.clone().unwrap_or_default();
    let phase = name_of(&st.phase);
    let checks = st.checks_total.map(|t| {
        format!(
            "backup {}: {} of {t} checks passed",
            v.spec.backup_ref.name,
            st.checks_passed.unwrap_or(0)
        )
    });
    StatusRow {
        kind: "KafkaBackupValidation".into(),
        failure: failure(phase.as_deref(), &st.common),
        namespace,
        name,
        phase,
        last_run: time(&st.common.completion_time).or_else(|| time(&st.last_validation_time)),
        next_run: time(&st.next_scheduled_validation),
        last_validation: time(&st.last_validation_time),
        validation_result: name_of(&st.validation_result),
        detail: checks.or_else(|| Some(format!("backup {}", v.spec.backup_ref.name))),
        ..Default::default()
    }
}

/// A KafkaOffsetReset's row.
pub fn reset_row(r: &KafkaOffsetReset) -> StatusRow {
    let (namespace, name) = meta_of(&r.metadata);
    let st = r.status.clone().unwrap_or_default();
    let phase = name_of(&st.phase);
    StatusRow {
        kind: "KafkaOffsetReset".into(),
        failure: failure(phase.as_deref(), &st.common),
        namespace,
        name,
        phase,
        last_run: time(&st.common.completion_time),
        detail: st.groups_total.map(|t| {
            format!(
                "groups reset {} of {t}, failed {}",
                st.groups_reset.unwrap_or(0),
                st.groups_failed.unwrap_or(0)
            )
        }),
        ..Default::default()
    }
}

/// A KafkaOffsetRollback's row.
pub fn rollback_row(r: &KafkaOffsetRollback) -> StatusRow {
    let (namespace, name) = meta_of(&r.metadata);
    let st = r.status.clone().unwrap_or_default();
    let phase = name_of(&st.phase);
    StatusRow {
        kind: "KafkaOffsetRollback".into(),
        failure: failure(phase.as_deref(), &st.common),
        namespace,
        name,
        phase,
        last_run: time(&st.common.completion_time),
        detail: st.groups_rolled_back.map(|n| {
            format!(
                "groups rolled back {n}, failed {}",
                st.groups_failed.unwrap_or(0)
            )
        }),
        ..Default::default()
    }
}

/// `12.3 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The table cells of a row, in [`HEADERS`] order (without NAMESPACE).
fn cells(r: &StatusRow) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let validation = match (&r.validation_result, &r.last_validation) {
        (Some(res), Some(t)) => format!("{res} {t}"),
        (Some(res), None) => res.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => "-".into(),
    };
    let window = match (&r.recoverable_from, &r.recoverable_to) {
        (None, None) => "-".into(),
        (f, t) => format!("{} .. {}", o(f), o(t)),
    };
    vec![
        r.kind.clone(),
        r.name.clone(),
        o(&r.phase),
        o(&r.last_run),
        o(&r.next_run),
        window,
        r.records.map_or("-".into(), |n| n.to_string()),
        r.bytes.map_or("-".into(), human_bytes),
        validation,
    ]
}

const HEADERS: [&str; 9] = [
    "KIND",
    "NAME",
    "PHASE",
    "LAST RUN",
    "NEXT RUN",
    "RECOVERABLE WINDOW",
    "RECORDS",
    "BYTES",
    "VALIDATION",
];

/// ANSI colour of a phase: green done, yellow going or waiting, red failed.
fn phase_colour(phase: &str) -> &'static str {
    match phase {
        "Completed" | "Ready" => "\x1b[32m",
        "Running" | "Pending" => "\x1b[33m",
        "Failed" | "RolledBack" | "PartiallyCompleted" => "\x1b[31m",
        _ => "",
    }
}

/// The table: one line per resource (NAMESPACE first when `namespaces`), then its detail,
/// retention and failure on indented lines below it. `colour`: ANSI colours for the phase
/// and the failure (only when stdout is a terminal).
pub fn table(rows: &[StatusRow], namespaces: bool, colour: bool) -> String {
    let mut grid: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| h.to_string()).collect()];
    grid.extend(rows.iter().map(cells));
    if namespaces {
        grid[0].insert(0, "NAMESPACE".into());
        for (g, r) in grid[1..].iter_mut().zip(rows) {
            g.insert(0, r.namespace.clone());
        }
    }
    let cols = grid[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| grid.iter().map(|g| g[c].chars().count()).max().unwrap_or(0))
        .collect();
    let phase_col = if namespaces { 3 } else { 2 };
    let mut out = String::new();
    for (i, g) in grid.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in g.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            let last = c + 1 == cols;
            let col = if colour && i > 0 && c == phase_col {
                phase_colour(cell)
            } else {
                ""
            };
            let reset = if col.is_empty() { "" } else { "\x1b[0m" };
            line.push_str(&format!("{col}{cell}{reset}"));
            if !last {
                line.push_str(&pad);
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i > 0 {
            out.push_str(&notes(&rows[i - 1], colour));
        }
    }
    if rows.is_empty() {
        out.push_str("no KafkaBackup, KafkaRestore, KafkaBackupValidation, KafkaOffsetReset or KafkaOffsetRollback found\n");
    }
    out
}

/// The indented lines under a row: detail, validated by, retention, failure.
fn notes(r: &StatusRow, colour: bool) -> String {
    let mut s = String::new();
    if let Some(d) = &r.detail {
        s.push_str(&format!("    {d}\n"));
    }
    if let Some(v) = &r.validated_by {
        s.push_str(&format!("    validated by {v}\n"));
    }
    if let Some(ret) = &r.retention {
        s.push_str(&format!("    retention: {ret}\n"));
    }
    if let Some(f) = &r.failure {
        let (a, b) = if colour {
            ("\x1b[31m", "\x1b[0m")
        } else {
            ("", "")
        };
        s.push_str(&format!("    {a}failed: {f}{b}\n"));
    }
    s
}

/// The resources, by kind then namespace and name; only `name` when given.
pub fn rows(
    kbs: &[KafkaBackup],
    krs: &[KafkaRestore],
    kbvs: &[KafkaBackupValidation],
    resets: &[KafkaOffsetReset],
    rollbacks: &[KafkaOffsetRollback],
    name: Option<&str>,
) -> Vec<StatusRow> {
    let mut out: Vec<StatusRow> = kbs.iter().map(|kb| backup_row(kb, kbvs)).collect();
    out.extend(krs.iter().map(restore_row));
    out.extend(kbvs.iter().map(validation_row));
    out.extend(resets.iter().map(reset_row));
    out.extend(rollbacks.iter().map(rollback_row));
    out.retain(|r| name.is_none_or(|n| r.name == n));
    let order = |k: &str| {
        [
            "KafkaBackup",
            "KafkaRestore",
            "KafkaBackupValidation",
            "KafkaOffsetReset",
            "KafkaOffsetRollback",
        ]
        .iter()
        .position(|x| *x == k)
    };
    out.sort_by(|a, b| {
        (order(&a.kind), &a.namespace, &a.name).cmp(&(order(&b.kind), &b.namespace, &b.name))
    });
    out
}

/// A client as kubectl would make one: `--kubeconfig` and `--context`, else KUBECONFIG,
/// ~/.kube/config or the in-cluster ServiceAccount; with the context's namespace.
async fn client(args: &StatusArgs) -> anyhow::Result<(kube::Client, String)> {
    kube_client(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

/// [`client`] from the two flags, for every plugin command that talks to the API server.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<(kube::Client, String)> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let opts = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&opts).await?,
        None => kube::Config::infer().await?,
    };
    let ns = config.default_namespace.clone();
    Ok((kube::Client::try_from(config)?, ns))
}

/// Every object of kind `K` in `ns` (None: all namespaces), or why the kind was skipped: its
/// CRD is not installed (404), or the user may not list it (403). Other errors fail.
async fn list<K>(
    client: &kube::Client,
    ns: Option<&str>,
) -> anyhow::Result<(Vec<K>, Option<String>)>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let plural = K::plural(&());
    match api.list(&ListParams::default()).await {
        Ok(l) => Ok((l.items, None)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok((
            vec![],
            Some(format!(
                "{plural}.kafka.oso.sh is not installed in this cluster (the CRDs: `kafka-backup-operator crd | kubectl apply -f -`, or the chart)"
            )),
        )),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok((
            vec![],
            Some(format!(
                "you may not list {plural}.kafka.oso.sh: {}",
                s.message
            )),
        )),
        Err(e) => Err(anyhow::anyhow!("listing {plural}: {e}")),
    }
}

/// `status`: lists the five kinds and renders them.
pub async fn status(args: &StatusArgs) -> anyhow::Result<String> {
    let (client, default_ns) = client(args).await?;
    let ns = (!args.all_namespaces).then(|| args.namespace.clone().unwrap_or(default_ns));
    let ns = ns.as_deref();
    let ((kbs, a), (krs, b), (kbvs, c), (resets, d), (rollbacks, e)) = tokio::try_join!(
        list::<KafkaBackup>(&client, ns),
        list::<KafkaRestore>(&client, ns),
        list::<KafkaBackupValidation>(&client, ns),
        list::<KafkaOffsetReset>(&client, ns),
        list::<KafkaOffsetRollback>(&client, ns),
    )?;
    let skipped: Vec<String> = [a, b, c, d, e].into_iter().flatten().collect();
    if skipped.len() == 5 {
        anyhow::bail!("{}", skipped.join("; "));
    }
    for s in &skipped {
        eprintln!("warning: skipped: {s}");
    }
    let rows = rows(&kbs, &krs, &kbvs, &resets, &rollbacks, args.name.as_deref());
    if rows.is_empty()
        && let Some(n) = &args.name
    {
        anyhow::bail!(
            "no resource named {n:?} in {}",
            ns.map_or("any namespace".into(), |n| format!("namespace {n}"))
        );
    }
    Ok(match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
        OutputFormat::Yaml => serde_yaml_ng::to_string(&rows)?,
        OutputFormat::Table => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            table(&rows, args.all_namespaces, colour)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(json: serde_json::Value) -> KafkaBackup {
        serde_json::from_value(json).unwrap()
    }

    fn backup() -> KafkaBackup {
        kb(serde_json::json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {"kafkaCluster": {"bootstrapServers": ["k:9092"]}, "topics": ["orders"],
                     "storage": {"storageType": "filesystem", "filesystem": {"path": "/b"}},
                     "schedule": "0 * * * *",
                     "retention": {"enabled": true, "keepLast": 7}},
            "status": {"phase": "Completed", "completionTime": "2026-12-06T10:00:05Z",
                       "nextScheduledBackup": "2026-12-06T11:00:00Z",
                       "firstRecoverabilityPoint": "2026-12-01T00:00:00.123Z",
                       "lastRecoverabilityPoint": "2026-12-06T09:59:59.999Z",
                       "recordsProcessed": 1200, "bytesProcessed": 3_145_728,
                       "backupId": "20261206T100000.000Z",
                       "retention": {"lastRetentionTime": "2026-12-06T10:00:06Z",
                                     "inspectedBackups": 9, "deletedBackups": 2}}
        }))
    }

    fn validation(name: &str, when: &str, result: &str) -> KafkaBackupValidation {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackupValidation",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"backupRef": {"name": "orders"}},
            "status": {"phase": "Completed", "lastValidationTime": when,
                       "validationResult": result, "checksTotal": 4, "checksPassed": 3}
        }))
        .unwrap()
    }

    fn failed_restore() -> KafkaRestore {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaRestore",
            "metadata": {"name": "orders-dr", "namespace": "team-a"},
            "spec": {"backupRef": {"name": "orders"}, "kafkaCluster": {"bootstrapServers": ["k:9092"]}},
            "status": {"phase": "Failed", "message": "topic orders exists and holds records: set purgeTopics",
                       "completionTime": "2026-12-06T10:30:00Z", "recordsRestored": 0,
                       "conditions": [{"type": "Ready", "status": "False", "reason": "RestoreFailed"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_backup_row_has_its_window_its_newest_validation_and_its_retention() {
        let kbvs = [
            validation("weekly", "2026-12-01T00:00:00Z", "Pass"),
            validation("nightly", "2026-12-06T02:00:00Z", "Fail"),
        ];
        let r = backup_row(&backup(), &kbvs);
        assert_eq!(r.phase.as_deref(), Some("Completed"));
        assert_eq!(r.last_run.as_deref(), Some("2026-12-06T10:00:05Z"));
        assert_eq!(r.next_run.as_deref(), Some("2026-12-06T11:00:00Z"));
        assert_eq!(
            r.recoverable_from.as_deref(),
            Some("2026-12-01T00:00:00.123Z")
        );
        assert_eq!((r.records, r.bytes), (Some(1200), Some(3_145_728)));
        assert_eq!(r.validated_by.as_deref(), Some("nightly"));
        assert_eq!(r.validation_result.as_deref(), Some("Fail"));
        assert_eq!(
            r.retention.as_deref(),
            Some("keepLast 7; last pass 2026-12-06T10:00:06Z: deleted 2 of 9 runs")
        );
        assert_eq!(r.failure, None);
        // a validation of another backup is not this one's
        let mut other = validation("other", "2026-12-07T00:00:00Z", "Pass");
        other.spec.backup_ref.name = "payments".into();
        assert_eq!(backup_row(&backup(), &[other]).validated_by, None);
    }

    #[test]
    fn failure_is_the_message_of_a_failed_phase_or_a_true_degraded_condition() {
        let r = restore_row(&failed_restore());
        assert_eq!(
            r.failure.as_deref(),
            Some("topic orders exists and holds records: set purgeTopics")
        );
        let mut h = StatusHeader {
            conditions: vec![
                Condition::new("Ready", ConditionStatus::False).reason("Running"),
                Condition::new("Degraded", ConditionStatus::True)
                    .reason("StatusWriteFailing")
                    .message("409"),
            ],
            ..Default::default()
        };
        assert_eq!(
            failure(Some("Running"), &h).as_deref(),
            Some("StatusWriteFailing: 409")
        );
        h.conditions.pop();
        assert_eq!(
            failure(Some("Running"), &h),
            None,
            "Ready=False while running"
        );
        assert_eq!(failure(Some("Failed"), &h).as_deref(), Some("Running"));
    }

    #[test]
    fn the_table_aligns_columns_and_puts_notes_under_each_row() {
        let kbvs = [validation("nightly", "2026-12-06T02:00:00Z", "Pass")];
        let rows = rows(&[backup()], &[failed_restore()], &kbvs, &[], &[], None);
        assert_eq!(
            rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ["KafkaBackup", "KafkaRestore", "KafkaBackupValidation"]
        );
        let t = table(&rows, false, false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("KIND "), "{t}");
        let col = |l: &str, h: &str| l.find(h).unwrap();
        // PHASE, RECORDS start at the same column in the header and in each row
        let phase_at = col(lines[0], "PHASE");
        assert_eq!(col(lines[1], "Completed"), phase_at, "{t}");
        let restore = lines
            .iter()
            .find(|l| l.starts_with("KafkaRestore"))
            .unwrap();
        assert_eq!(col(restore, "Failed"), phase_at, "{t}");
        assert!(lines[1].contains("2026-12-01T00:00:00.123Z .. 2026-12-06T09:59:59.999Z"));
        assert!(lines[1].contains("3.0 MiB") && lines[1].contains("Pass 2026-12-06T02:00:00Z"));
        assert!(t.contains("    validated by nightly\n"), "{t}");
        assert!(t.contains("    retention: keepLast 7;"), "{t}");
        assert!(t.contains("    failed: topic orders exists"), "{t}");
        assert!(!t.contains('\x1b'), "no colour off a terminal");
        // colour: only the phase and the failure; -A adds NAMESPACE first
        let t = table(&rows, true, true);
        assert!(t.starts_with("NAMESPACE  KIND"), "{t}");
        assert!(t.contains("\x1b[32mCompleted\x1b[0m") && t.contains("\x1b[31mFailed\x1b[0m"));
        assert!(t.contains("\x1b[31mfailed: topic"), "{t}");
        // NAME filters; nothing found says so
        let only = super::rows(
            &[backup()],
            &[failed_restore()],
            &[],
            &[],
            &[],
            Some("orders-dr"),
        );
        assert_eq!(only.len(), 1);
        assert!(table(&[], false, false).contains("no KafkaBackup"));
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
