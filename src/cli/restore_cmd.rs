//! `kubectl kafkabackup restore NAME --to-time T`: a KafkaRestore of the KafkaBackup NAME (read
//! from the API server) to a point in time or to per-partition offsets, printed as YAML for
//! GitOps, or created with `--apply` (its only write).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::api::{ConnectionSpec, KafkaBackup, KafkaRestore, PartitionOffsetBound};

/// `restore` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("end").required(true).args(["to_time", "to_offsets"])))]
pub struct RestoreArgs {
    /// The KafkaBackup to restore from (read from the API server).
    pub backup: String,
    /// Restore the records with a timestamp up to this instant, inclusive (RFC 3339, e.g.
    /// 2026-12-06T10:00:00Z): `pitr.endTime`. Must lie inside the KafkaBackup's recoverability
    /// window (status.firstRecoverabilityPoint .. lastRecoverabilityPoint) when it shows one.
    #[arg(long, value_name = "T")]
    pub to_time: Option<String>,
    /// Restore up to these source offsets, exclusive: a YAML or JSON list of {topic,
    /// partition, offset} (`pitr.endOffsets`).
    #[arg(long, value_name = "FILE")]
    pub to_offsets: Option<PathBuf>,
    /// Restore only records with a timestamp from this instant on (RFC 3339): `pitr.startTime`.
    #[arg(long, value_name = "T")]
    pub from_time: Option<String>,
    /// Only these source topics (names, globs or ~regex), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Restore source topic SRC into topic DST (`topicMapping`); repeat for several.
    #[arg(long = "map", value_name = "SRC=DST", value_parser = parse_map_entry)]
    pub map: Vec<(String, String)>,
    /// Restore into this cluster (bootstrap servers, comma-separated) instead of the backup's
    /// own. Only bootstrapServers is set: add securityProtocol, tlsSecret/caSecret and
    /// saslSecret if that cluster needs TLS or SASL.
    #[arg(long, value_name = "BOOTSTRAP")]
    pub to_cluster: Option<String>,
    /// Restore this run of the backup (`backupRef.backupId`; `kubectl kafkabackup runs`).
    /// Default: the newest complete run.
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
    /// The KafkaRestore's name. Default: <backup>-restore-<yyyymmddhhmmss> (UTC).
    #[arg(long, value_name = "RESTORE_NAME")]
    pub name: Option<String>,
    /// Create missing target topics (`createTopics`).
    #[arg(long)]
    pub create_topics: bool,
    /// Create the KafkaRestore on the API server (the one write this command makes) instead of
    /// printing it.
    #[arg(long)]
    pub apply: bool,
    /// Namespace of the KafkaBackup and of the KafkaRestore (default: the context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, else in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Do not print the plan (on stderr). The plan reads the Secrets the KafkaBackup and the
    /// restore name from the API server and observes the target cluster and the repository
    /// read-only, from where this command runs.
    #[arg(long)]
    pub no_plan: bool,
}

/// `--map SRC=DST`: both sides non-empty.
pub fn parse_map_entry(s: &str) -> Result<(String, String), String> {
    let bad = |why: &str| {
        format!("--map {s:?}: {why}; write --map SOURCE=TARGET, e.g. --map orders=orders-restored")
    };
    let (src, dst) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (src, dst) = (src.trim(), dst.trim());
    if src.is_empty() || dst.is_empty() {
        return Err(bad("a topic name is empty"));
    }
    if dst.contains('=') {
        return Err(bad("more than one '='"));
    }
    Ok((src.to_string(), dst.to_string()))
}

/// The `--map` entries as `topicMapping`: a source given twice is an error.
pub fn topic_mapping(entries: &[(String, String)]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (src, dst) in entries {
        if let Some(old) = out.insert(src.clone(), dst.clone()) {
            anyhow::bail!(
                "--map {src}={dst}: {src} is already mapped to {old}; give each source topic once"
            );
        }
    }
    Ok(out)
}

/// The `--to-offsets` file: a YAML or JSON list of {topic, partition, offset}.
pub fn parse_offsets(text: &str, file: &Path) -> anyhow::Result<Vec<PartitionOffsetBound>> {
    let v: Vec<PartitionOffsetBound> = serde_yaml_ng::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "--to-offsets {}: {e}; the file is a list of {{topic, partition, offset}}, e.g. [{{topic: orders, partition: 0, offset: 1200}}]",
            file.display()
        )
    })?;
    if v.is_empty() {
        anyhow::bail!("--to-offsets {}: the list is empty", file.display());
    }
    Ok(v)
}

/// What the flags say, checked and parsed (no I/O).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreRequest {
    pub name: String,
    pub namespace: String,
    pub to_time: Option<String>,
    pub to_offsets: Vec<PartitionOffsetBound>,
    pub from_time: Option<String>,
    pub topics: Vec<String>,
    pub mapping: BTreeMap<String, String>,
    /// `--to-cluster`: bootstrap servers.
    pub to_cluster: Option<Vec<String>>,
    pub backup_id: Option<String>,
    pub create_topics: bool,
}

/// `<backup>-restore-<yyyymmddhhmmss>` at `now` (UTC).
pub fn default_name(backup: &str, now: jiff::Timestamp) -> String {
    format!("{backup}-restore-{}", now.strftime("%Y%m%d%H%M%S"))
}

/// Milliseconds of an RFC 3339 flag value, the error naming the flag.
fn flag_ms(flag: &str, t: &str) -> anyhow::Result<i64> {
    crate::api::checks::parse_rfc3339_ms(t)
        .map_err(|e| anyhow::anyhow!("{flag} {t:?}: {e}; e.g. {flag} 2026-12-06T10:00:00Z"))
}

/// Refuses a `--to-time` outside the backup's recoverability window (when its status shows
/// one), and a `--from-time` after `--to-time` or after the window's end.
pub fn check_window(kb: &KafkaBackup, req: &RestoreRequest) -> anyhow::Result<()> {
    let st = kb.status.as_ref();
    let point = |p: Option<&String>| p.and_then(|p| crate::api::checks::parse_rfc3339_ms(p).ok());
    let first = st.and_then(|s| s.first_recoverability_point.as_ref());
    let last = st.and_then(|s| s.last_recoverability_point.as_ref());
    let name = kb.metadata.name.as_deref().unwrap_or_default();
    let to = req
        .to_time
        .as_deref()
        .map(|t| flag_ms("--to-time", t))
        .transpose()?;
    let from = req
        .from_time
        .as_deref()
        .map(|t| flag_ms("--from-time", t))
        .transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        anyhow::bail!("--from-time is after --to-time: give a --from-time before it");
    }
    if let (Some(t), Some(lo), Some(hi)) = (to, point(first), point(last))
        && (t < lo || t > hi)
    {
        anyhow::bail!(
            "--to-time {}: outside the recoverability window of KafkaBackup {name}, {} .. {} (status.firstRecoverabilityPoint .. lastRecoverabilityPoint): give a --to-time inside it{}",
            req.to_time.as_deref().unwrap_or_default(),
            first.map_or("", |s| s.as_str()),
            last.map_or("", |s| s.as_str()),
            if req.backup_id.is_some() {
                ""
            } else {
                " (the window spans every complete run; without --backup-id the newest run is restored, and its own window is what counts)"
            }
        );
    }
    if let (Some(f), Some(hi)) = (from, point(last))
        && f > hi
    {
        anyhow::bail!(
            "--from-time {}: after the last recoverability point of KafkaBackup {name} ({}): no record to restore; give an earlier --from-time",
            req.from_time.as_deref().unwrap_or_default(),
            last.map_or("", |s| s.as_str())
        );
    }
    Ok(())
}

/// The backup's `kafkaCluster` as the restore's, defaults left out.
fn cluster_of(kb: &KafkaBackup) -> anyhow::Result<Value> {
    let mut c = serde_json::to_value(&kb.spec.kafka_cluster)?;
    if let Some(m) = c.as_object_mut() {
        if kb.spec.kafka_cluster.connection == ConnectionSpec::default() {
            m.remove("connection");
        }
        if m.get("securityProtocol") == Some(&json!("PLAINTEXT")) {
            m.remove("securityProtocol");
        }
    }
    Ok(c)
}

/// The KafkaRestore for `req` of `kb`: apiVersion, kind, metadata and spec only (no status),
/// checked by the operator's own validation.
pub fn build_restore(kb: &KafkaBackup, req: &RestoreRequest) -> anyhow::Result<Value> {
    let mut backup_ref = json!({ "name": kb.metadata.name.clone().unwrap_or_default() });
    if let Some(id) = &req.backup_id {
        backup_ref["backupId"] = json!(id);
    }
    let cluster = match &req.to_cluster {
        Some(servers) => json!({ "bootstrapServers": servers }),
        None => cluster_of(kb)?,
    };
    let mut pitr = serde_json::Map::new();
    if let Some(t) = &req.from_time {
        pitr.insert("startTime".into(), json!(t));
    }
    if let Some(t) = &req.to_time {
        pitr.insert("endTime".into(), json!(t));
    }
    if !req.to_offsets.is_empty() {
        pitr.insert("endOffsets".into(), serde_json::to_value(&req.to_offsets)?);
    }
    let mut spec = json!({ "backupRef": backup_ref, "kafkaCluster": cluster });
    if !req.topics.is_empty() {
        spec["topics"] = json!(req.topics);
    }
    if !req.mapping.is_empty() {
        spec["topicMapping"] = json!(req.mapping);
    }
    spec["pitr"] = Value::Object(pitr);
    if req.create_topics {
        spec["createTopics"] = json!(true);
    }
    let kr = json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaRestore",
        "metadata": { "name": req.name, "namespace": req.namespace },
        "spec": spec,
    });
    let typed: KafkaRestore = serde_json::from_value(kr.clone())?;
    crate::api::validate_restore(&typed).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(kr)
}

/// The YAML to print: a comment line for a `--to-cluster` target, then the object.
pub fn render(kr: &Value, to_cluster: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    if to_cluster {
        out.push_str("# kafkaCluster: bootstrapServers only (--to-cluster); add securityProtocol, tlsSecret/caSecret and saslSecret if that cluster needs TLS or SASL\n");
    }
    out.push_str(&serde_yaml_ng::to_string(kr)?);
    Ok(out)
}

/// The request from the flags, `namespace` resolved and `now` for the default name.
pub fn request(
    args: &RestoreArgs,
    namespace: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<RestoreRequest> {
    let to_offsets = match &args.to_offsets {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--to-offsets {}: {e}", f.display()))?;
            parse_offsets(&text, f)?
        }
        None => vec![],
    };
    let to_cluster = args.to_cluster.as_ref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
    });
    if to_cluster.as_ref().is_some_and(Vec::is_empty) {
        anyhow::bail!("--to-cluster is empty: give the target's bootstrap servers, host:port");
    }
    Ok(RestoreRequest {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| default_name(&args.backup, now)),
        namespace: namespace.to_string(),
        to_time: args.to_time.clone(),
        to_offsets,
        from_time: args.from_time.clone(),
        topics: args.topics.clone(),
        mapping: topic_mapping(&args.map)?,
        to_cluster,
        backup_id: args.backup_id.clone(),
        create_topics: args.create_topics,
    })
}

/// `restore`: reads the KafkaBackup, builds the KafkaRestore, prints it or (`--apply`)
/// creates it.
pub async fn restore(args: &RestoreArgs) -> anyhow::Result<String> {
    let (client, default_ns) =
        super::status_cmd::kube_client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let req = request(args, &ns, jiff::Timestamp::now())?;
    let kbs: Api<KafkaBackup> = Api::namespaced(client.clone(), &ns);
    let kb = kbs.get(&args.backup).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => {
            anyhow::anyhow!("no KafkaBackup {} in namespace {ns}", args.backup)
        }
        e => anyhow::anyhow!("reading KafkaBackup {}: {e}", args.backup),
    })?;
    check_window(&kb, &req)?;
    let kr = build_restore(&kb, &req)?;
    if req.to_cluster.is_some() {
        eprintln!(
            "note: kafkaCluster has bootstrapServers only (--to-cluster): add securityProtocol, tlsSecret/caSecret and saslSecret if that cluster needs TLS or SASL"
        );
    }
    let typed: KafkaRestore = serde_json::from_value(kr.clone())?;
    if !args.no_plan {
        match plan(&client, &ns, &kb, &typed).await {
            Ok(table) => eprint!("{table}"),
            Err(e) => eprintln!(
                "warning: no plan ({e:#}); `kubectl kafkabackup plan -f restore.yaml -f backup.yaml -f secrets.yaml` shows it where the cluster and the storage can be reached"
            ),
        }
    }
    if !args.apply {
        return render(&kr, req.to_cluster.is_some());
    }
    let krs: Api<KafkaRestore> = Api::namespaced(client, &ns);
    krs.create(&PostParams::default(), &typed)
        .await
        .map_err(|e| anyhow::anyhow!("creating KafkaRestore {}: {e}", req.name))?;
    Ok(format!("kafkarestore/{} created\n", req.name))
}

/// The plan of `kr` as `plan -f` prints it: the Secrets the backup and the restore name, read
/// from `ns` (a missing one is left out; the lookup that needs it says which), then the restore
/// prepared read-only (target cluster observed, repository read).
async fn plan(
    client: &kube::Client,
    ns: &str,
    kb: &KafkaBackup,
    kr: &KafkaRestore,
) -> anyhow::Result<String> {
    use crate::api::secrets::referenced;
    let mut names = referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage));
    names.extend(referenced(
        &kr.spec.kafka_cluster,
        kr.spec.backup_ref.storage.as_ref(),
    ));
    names.sort();
    names.dedup();
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let mut secrets = crate::api::Secrets::new();
    for n in &names {
        let Some(s) = api
            .get_opt(n)
            .await
            .map_err(|e| anyhow::anyhow!("reading Secret {n}: {e}"))?
        else {
            continue;
        };
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            s.string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        secrets.insert(None, n, data);
    }
    let pvc_root = Path::new("./kbo-pvc");
    let access = crate::kinds::Access::ReadOnly;
    let p = crate::kinds::restore::prepare(kr, Some(kb), &secrets, pvc_root, access).await?;
    Ok(crate::report::restore_table(&p.plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup() -> KafkaBackup {
        serde_json::from_value(json!({
            "apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
            "metadata": {"name": "orders", "namespace": "prod"},
            "spec": {"kafkaCluster": {"bootstrapServers": ["kafka:9092"], "securityProtocol": "SASL_SSL",
                        "saslSecret": {"name": "kafka-user", "mechanism": "SCRAM-SHA-512"}},
                     "topics": ["orders"],
                     "storage": {"storageType": "filesystem", "filesystem": {"path": "/b"}}},
            "status": {"phase": "Completed",
                       "firstRecoverabilityPoint": "2026-12-01T00:00:00.123Z",
                       "lastRecoverabilityPoint": "2026-12-06T09:59:59.999Z"}
        }))
        .unwrap()
    }

    fn req() -> RestoreRequest {
        RestoreRequest {
            name: "orders-restore-20261206100000".into(),
            namespace: "prod".into(),
            to_time: Some("2026-12-05T12:00:00Z".into()),
            mapping: [("orders".to_string(), "orders-r".to_string())].into(),
            create_topics: true,
            ..Default::default()
        }
    }

    #[test]
    fn map_entries_parse_and_bad_ones_name_the_flag_and_the_fix() {
        assert_eq!(
            parse_map_entry("a=b").unwrap(),
            ("a".to_string(), "b".to_string())
        );
        for bad in ["ab", "=b", "a=", "a=b=c"] {
            let e = parse_map_entry(bad).unwrap_err();
            assert!(e.contains("--map") && e.contains("SOURCE=TARGET"), "{e}");
        }
        let twice = [("a".into(), "b".into()), ("a".into(), "c".into())];
        let e = topic_mapping(&twice).unwrap_err().to_string();
        assert!(e.contains("a is already mapped to b"), "{e}");
    }

    #[test]
    fn the_flags_parse_with_clap() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: RestoreArgs,
        }
        let t = T::try_parse_from([
            "x",
            "orders",
            "--to-time",
            "2026-12-05T12:00:00Z",
            "--map",
            "a=b",
            "--map",
            "c=d",
            "--topics",
            "a,c",
            "-n",
            "prod",
        ])
        .unwrap();
        assert_eq!(t.a.map.len(), 2);
        assert_eq!(t.a.topics, ["a", "c"]);
        let e = T::try_parse_from(["x", "orders", "--map", "a"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("SOURCE=TARGET"), "{e}");
        // one of --to-time and --to-offsets, not both
        assert!(T::try_parse_from(["x", "orders"]).is_err());
        let both = [
            "x",
            "orders",
            "--to-time",
            "2026-12-05T12:00:00Z",
            "--to-offsets",
            "f",
        ];
        assert!(T::try_parse_from(both).is_err());
    }

    #[test]
    fn the_restore_names_the_backup_keeps_its_cluster_and_has_no_status() {
        let kr = build_restore(&backup(), &req()).unwrap();
        let yaml = render(&kr, false).unwrap();
        let want = "apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata:
  name: orders-restore-20261206100000
  namespace: prod
spec:
  backupRef:
    name: orders
  createTopics: true
  kafkaCluster:
    bootstrapServers:
    - kafka:9092
    saslSecret:
      mechanism: SCRAM-SHA-512
      name: kafka-user
      passwordKey: password
      usernameKey: username
    securityProtocol: SASL_SSL
  pitr:
    endTime: 2026-12-05T12:00:00Z
  topicMapping:
    orders: orders-r
";
        assert_eq!(yaml, want);
    }

    #[test]
    fn to_cluster_offsets_topics_and_backup_id() {
        let mut r = req();
        r.to_time = None;
        r.from_time = Some("2026-12-02T00:00:00Z".into());
        r.to_cluster = Some(vec!["dr-kafka:9092".into()]);
        r.backup_id = Some("20261206T000000.000Z".into());
        r.topics = vec!["orders".into()];
        let text = "- {topic: orders, partition: 0, offset: 120}\n";
        r.to_offsets = parse_offsets(text, Path::new("o.yaml")).unwrap();
        let kr = build_restore(&backup(), &r).unwrap();
        assert_eq!(
            kr["spec"]["kafkaCluster"],
            json!({"bootstrapServers": ["dr-kafka:9092"]})
        );
        assert_eq!(kr["spec"]["backupRef"]["backupId"], "20261206T000000.000Z");
        assert_eq!(
            kr["spec"]["pitr"],
            json!({"startTime": "2026-12-02T00:00:00Z",
                   "endOffsets": [{"topic": "orders", "partition": 0, "offset": 120}]})
        );
        assert_eq!(kr["spec"]["topics"], json!(["orders"]));
        assert!(kr.get("status").is_none());
        assert!(
            render(&kr, true)
                .unwrap()
                .starts_with("# kafkaCluster: bootstrapServers only")
        );
        // JSON works too; a bad file names the flag and the shape
        let json_list = r#"[{"topic": "orders", "partition": 1, "offset": 5}]"#;
        assert_eq!(
            parse_offsets(json_list, Path::new("o.json")).unwrap()[0].partition,
            1
        );
        let e = parse_offsets("{topic: orders}", Path::new("o.yaml")).unwrap_err();
        assert!(e.to_string().contains("--to-offsets o.yaml"), "{e}");
        // the operator's validation applies: a bad target name is refused
        r.mapping = [("orders".to_string(), "bad name!".to_string())].into();
        assert!(build_restore(&backup(), &r).is_err());
    }

    #[test]
    fn a_to_time_outside_the_window_is_refused_naming_the_flag() {
        let kb = backup();
        check_window(&kb, &req()).unwrap();
        for t in ["2026-11-30T00:00:00Z", "2026-12-06T10:00:00Z"] {
            let mut r = req();
            r.to_time = Some(t.into());
            let e = check_window(&kb, &r).unwrap_err().to_string();
            assert!(
                e.starts_with("--to-time ") && e.contains("give a --to-time inside it"),
                "{e}"
            );
            assert!(
                e.contains("2026-12-01T00:00:00.123Z .. 2026-12-06T09:59:59.999Z"),
                "{e}"
            );
        }
        // the window's own ends are inside
        let mut r = req();
        r.to_time = Some("2026-12-06T09:59:59.999Z".into());
        check_window(&kb, &r).unwrap();
        r.to_time = Some("not a time".into());
        assert!(
            check_window(&kb, &r)
                .unwrap_err()
                .to_string()
                .starts_with("--to-time")
        );
        r.to_time = Some("2026-12-02T00:00:00Z".into());
        r.from_time = Some("2026-12-03T00:00:00Z".into());
        assert!(
            check_window(&kb, &r)
                .unwrap_err()
                .to_string()
                .contains("--from-time is after")
        );
        // no window in status: nothing to check against
        let mut kb = backup();
        kb.status = None;
        r.from_time = None;
        r.to_time = Some("2020-01-01T00:00:00Z".into());
        check_window(&kb, &r).unwrap();
    }

    #[test]
    fn the_default_name_is_the_backup_and_the_time() {
        let now: jiff::Timestamp = "2026-12-06T19:22:33.5Z".parse().unwrap();
        assert_eq!(default_name("orders", now), "orders-restore-20261206192233");
    }
}
