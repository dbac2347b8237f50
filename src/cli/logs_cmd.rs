//! `kubectl kafkabackup logs NAME`: the operator's log lines about one resource, read through
//! the API server (pods/log) from the operator's Pods and from the shard Job Pods of that
//! resource. The operator logs JSON (`KBO_LOG_FORMAT=json`, the chart's default); a line is
//! about the resource when one of its spans (or its own fields) names the resource's
//! namespace and name; lines that are not JSON are skipped. Read only.
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

/// The chart's selector of the operator's Pods (`app.kubernetes.io/name`, the chart's name).
pub const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=kafka-backup-operator";

/// A kind by its short name, as `kubectl get kb` knows it.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KindArg {
    Kb,
    Kr,
    Kbv,
    Kor,
    Korb,
}

impl KindArg {
    /// The kind's name, as the operator's spans write it.
    pub fn kind(self) -> &'static str {
        match self {
            KindArg::Kb => "KafkaBackup",
            KindArg::Kr => "KafkaRestore",
            KindArg::Kbv => "KafkaBackupValidation",
            KindArg::Kor => "KafkaOffsetReset",
            KindArg::Korb => "KafkaOffsetRollback",
        }
    }
}

/// Where the plugin finds the API server and the operator's Pods (shared by `logs` and
/// `report`).
#[derive(Debug, Args, Clone)]
pub struct ClusterFlags {
    /// Namespace of the resources (default: the namespace of the kubeconfig's context).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Namespace of the operator's Pods (default: every namespace the user may list Pods in).
    #[arg(long)]
    pub operator_namespace: Option<String>,
    /// Label selector of the operator's Pods.
    #[arg(long, default_value = OPERATOR_SELECTOR)]
    pub selector: String,
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, else the in-cluster
    /// ServiceAccount).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// `logs` arguments.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The resource's name.
    pub name: String,
    /// Only lines about this kind (default: any of the five kinds of that name).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Only lines newer than this: 30s, 15m, 1h, 2d.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// `1h` -> 3600: a number and a unit (s, m, h, d).
pub fn parse_since(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?}: --since takes a number and a unit: 30s, 15m, 1h, 2d");
    let t = s.trim();
    let unit = t.chars().last().ok_or_else(bad)?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(bad()),
    };
    (n > 0).then_some(n * mult).ok_or_else(bad)
}

/// Which resource a log line must be about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Any of the five kinds when None.
    pub kind: Option<&'a str>,
}

impl Subject<'_> {
    /// Whether a span's (or the fields') `kind`, `namespace` and `resource` name it.
    fn names(&self, o: &serde_json::Map<String, Value>) -> bool {
        let s = |k: &str| o.get(k).and_then(Value::as_str);
        let named = s("resource").or(s("backup")) == Some(self.name);
        let kind_ok = self
            .kind
            .is_none_or(|k| s("kind").is_none_or(|found| found == k));
        (named && s("namespace") == Some(self.namespace) && kind_ok)
            || s("object.ref").is_some_and(|r| self.is_ref(r))
    }

    /// kube-runtime's `object.ref`: `Kind.version.group/name.namespace`.
    fn is_ref(&self, r: &str) -> bool {
        let Some((kind, rest)) = r.split_once('.') else {
            return false;
        };
        let Some((_, obj)) = rest.split_once('/') else {
            return false;
        };
        obj == format!("{}.{}", self.name, self.namespace) && self.kind.is_none_or(|k| k == kind)
    }

    /// Whether the parsed line `v` is about this resource: its current span, one of its
    /// spans, or its own fields name it.
    pub fn matches(&self, v: &Value) -> bool {
        let obj = |v: &Value| v.as_object().is_some_and(|o| self.names(o));
        obj(&v["span"])
            || v["spans"].as_array().is_some_and(|a| a.iter().any(obj))
            || obj(&v["fields"])
    }
}

/// A line of the operator's JSON log, or None (not JSON, or not an object).
pub fn parse_line(line: &str) -> Option<Value> {
    let t = line.trim();
    if !t.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(Value::is_object)
}

/// A value as a `key=value` right side: strings bare (quoted when they hold a space).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains(char::is_whitespace) || s.is_empty() => format!("{s:?}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line: `TIME LEVEL message key=value...` (the line's fields by name, then the run of
/// its span).
pub fn format_line(v: &Value) -> String {
    let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "{} {:<5} {}",
        s(&v["timestamp"]),
        s(&v["level"]),
        v["fields"]["message"].as_str().unwrap_or("")
    );
    if let Some(fields) = v["fields"].as_object() {
        for (k, x) in fields.iter().filter(|(k, _)| *k != "message") {
            out.push_str(&format!(" {k}={}", value_text(x)));
        }
    }
    if let Some(run) = v["span"]["run"].as_str()
        && v["fields"].get("run").is_none()
    {
        out.push_str(&format!(" run={run}"));
    }
    out
}

/// The lines of `text` (a Pod's log) about `subject`, each `(timestamp, formatted)`;
/// `every`: every JSON line counts (a shard Pod's log is all about its resource).
pub fn filter_log(text: &str, subject: &Subject<'_>, every: bool) -> Vec<(String, String)> {
    text.lines()
        .filter_map(parse_line)
        .filter(|v| every || subject.matches(v))
        .map(|v| {
            let ts = v["timestamp"].as_str().unwrap_or("").to_string();
            (ts, format_line(&v))
        })
        .collect()
}

/// A client from `f`'s kubeconfig and context ([`super::status_cmd::kube_client`]) and the
/// context's default namespace.
pub async fn connect(f: &ClusterFlags) -> anyhow::Result<(kube::Client, String)> {
    super::status_cmd::kube_client(f.kubeconfig.as_deref(), f.context.as_deref()).await
}

/// The Pods matching `selector` in `ns` (None: every namespace), as (namespace, name).
pub async fn pods(
    client: &kube::Client,
    ns: Option<&str>,
    selector: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let api: Api<Pod> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| anyhow::anyhow!("listing Pods ({selector}): {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            )
        })
        .collect())
}

/// The log of Pod `ns`/`name`, the lines of the last `since` seconds when given.
pub async fn pod_log(
    client: &kube::Client,
    ns: &str,
    name: &str,
    since: Option<i64>,
) -> anyhow::Result<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = LogParams {
        since_seconds: since,
        ..Default::default()
    };
    api.logs(name, &lp)
        .await
        .map_err(|e| anyhow::anyhow!("the log of Pod {ns}/{name}: {e}"))
}

/// The selector of the shard Job Pods of resource `name` (of `kind` when given), as
/// `operator/jobs.rs` labels them.
pub fn shard_selector(name: &str, kind: Option<&str>) -> String {
    let mut s = format!(
        "app.kubernetes.io/component=shard,kafka.oso.sh/name={}",
        name.chars().take(63).collect::<String>()
    );
    if let Some(k) = kind {
        s.push_str(&format!(",kafka.oso.sh/kind={}", k.to_ascii_lowercase()));
    }
    s
}

/// `logs`: the operator Pods' and the shard Pods' lines about the resource, oldest first.
pub async fn logs(args: &LogsArgs) -> anyhow::Result<String> {
    let (client, default_ns) = connect(&args.cluster).await?;
    let ns = args.cluster.namespace.clone().unwrap_or(default_ns);
    let kind = args.kind.map(KindArg::kind);
    let subject = Subject {
        namespace: &ns,
        name: &args.name,
        kind,
    };
    let operators = pods(
        &client,
        args.cluster.operator_namespace.as_deref(),
        &args.cluster.selector,
    )
    .await?;
    if operators.is_empty() {
        eprintln!(
            "warning: no operator Pod matches {} (--selector, --operator-namespace)",
            args.cluster.selector
        );
    }
    let shards = pods(&client, Some(&ns), &shard_selector(&args.name, kind)).await?;
    let mut lines = vec![];
    let sources = (operators.iter().map(|p| (p, false))).chain(shards.iter().map(|p| (p, true)));
    for ((pns, pod), every) in sources {
        match pod_log(&client, pns, pod, args.since).await {
            Ok(text)
                if !every
                    && !text.trim().is_empty()
                    && !text.lines().any(|l| parse_line(l).is_some()) =>
            {
                eprintln!(
                    "warning: the log of Pod {pns}/{pod} holds no JSON line (the chart's logFormat: json)"
                )
            }
            Ok(text) => lines.extend(
                filter_log(&text, &subject, every)
                    .into_iter()
                    .map(|(ts, l)| (ts, format!("{l} pod={pod}"))),
            ),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (_, l) in lines {
        out.push_str(&crate::redact::scrub(&l, &[]));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines the operator wrote (KBO_LOG_FORMAT=json, RUST_LOG=kafka_backup_operator=debug) for
    /// KafkaBackup orders2 and KafkaRestore orders-dr of namespace kbo-logcap-31305, and lines
    /// about nothing in particular.
    const LOG: &str = r#"{"timestamp":"2026-12-06T19:16:25.806878Z","level":"INFO","fields":{"message":"controllers starting (None = all namespaces)","namespaces":"[Some(\"kbo-logcap-31305\")]"},"target":"kafka_backup_operator::operator"}
{"timestamp":"2026-12-06T19:16:29.134536Z","level":"DEBUG","fields":{"message":"segment complete","topic":"logcap-31305","partition":0,"path":"orders2/data/logcap-31305/0/00000000000000000000-20261206T191629.077Z.seg","bytes":532998},"target":"kafka_backup_operator::format::segment_io","span":{"kind":"KafkaBackup","namespace":"kbo-logcap-31305","resource":"orders2","run":"generation-1","name":"run"},"spans":[{"object.reason":"object updated","object.ref":"KafkaBackup.v1alpha1.kafka.oso.sh/orders2.kbo-logcap-31305","name":"reconciling object"},{"kind":"KafkaBackup","namespace":"kbo-logcap-31305","resource":"orders2","name":"reconcile"},{"kind":"KafkaBackup","namespace":"kbo-logcap-31305","resource":"orders2","run":"generation-1","name":"run"}]}
2026-12-06T19:16:29.2Z  INFO kafka_backup_operator: a text line about orders2 in kbo-logcap-31305
{"timestamp":"2026-12-06T19:15:51.510158Z","level":"INFO","fields":{"message":"run waits for its input","waiting_for":"KafkaBackup \"orders\" has no complete run yet (phase: Running); the restore starts once it has one"},"target":"kafka_backup_operator::operator::retry","span":{"kind":"KafkaRestore","namespace":"kbo-logcap-31305","resource":"orders-dr","run":"generation-1","name":"run"},"spans":[{"object.reason":"object updated","object.ref":"KafkaRestore.v1alpha1.kafka.oso.sh/orders-dr.kbo-logcap-31305","name":"reconciling object"},{"kind":"KafkaRestore","namespace":"kbo-logcap-31305","resource":"orders-dr","name":"reconcile"},{"kind":"KafkaRestore","namespace":"kbo-logcap-31305","resource":"orders-dr","run":"generation-1","name":"run"}]}
{"timestamp":"2026-12-06T19:16:30.000000Z","level":"WARN","fields":{"message":"reconcile failed","error":"conflict"},"target":"kube_runtime::controller","spans":[{"object.reason":"object updated","object.ref":"KafkaBackup.v1alpha1.kafka.oso.sh/orders2.other-ns","name":"reconciling object"}]}
not json at all
{"timestamp":"2026-12-06T19:16:16.364263Z","level":"INFO","fields":{"message":"graceful shutdown requested, press ctrl+c again to force shutdown"},"target":"kube_runtime::controller"}
"#;

    fn subject<'a>(name: &'a str, kind: Option<&'a str>) -> Subject<'a> {
        Subject {
            namespace: "kbo-logcap-31305",
            name,
            kind,
        }
    }

    #[test]
    fn only_the_json_lines_whose_spans_name_the_resource_are_kept() {
        let got = filter_log(LOG, &subject("orders2", None), false);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "2026-12-06T19:16:29.134536Z");
        assert_eq!(
            got[0].1,
            "2026-12-06T19:16:29.134536Z DEBUG segment complete bytes=532998 partition=0 path=orders2/data/logcap-31305/0/00000000000000000000-20261206T191629.077Z.seg topic=logcap-31305 run=generation-1"
        );
        let dr = filter_log(LOG, &subject("orders-dr", Some("KafkaRestore")), false);
        assert_eq!(dr.len(), 1, "{dr:?}");
        assert!(
            dr[0].1.starts_with(
                "2026-12-06T19:15:51.510158Z INFO  run waits for its input waiting_for=\"KafkaBackup"
            ),
            "{}",
            dr[0].1
        );
        // another kind of that name, another namespace, a name that is a prefix: nothing
        assert!(filter_log(LOG, &subject("orders-dr", Some("KafkaBackup")), false).is_empty());
        assert!(filter_log(LOG, &subject("orders", None), false).is_empty());
        let other = Subject {
            namespace: "other-ns",
            name: "orders2",
            kind: None,
        };
        let got = filter_log(LOG, &other, false);
        assert_eq!(got.len(), 1, "kube-runtime's object.ref: {got:?}");
        assert!(got[0].1.contains("WARN  reconcile failed error=conflict"));
        // a shard Pod's log: every JSON line, the text lines still skipped
        assert_eq!(filter_log(LOG, &subject("x", None), true).len(), 5);
    }

    #[test]
    fn a_field_naming_the_resource_counts_too() {
        let line = r#"{"timestamp":"t","level":"WARN","fields":{"message":"backup sync failed","namespace":"ns","backup":"orders","error":"e"}}"#;
        let s = Subject {
            namespace: "ns",
            name: "orders",
            kind: Some("KafkaBackup"),
        };
        assert!(s.matches(&parse_line(line).unwrap()));
        assert!(parse_line("[1,2]").is_none() && parse_line("{broken").is_none());
    }

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("1h"), Ok(3600));
        assert_eq!(parse_since("30s"), Ok(30));
        assert_eq!(parse_since("15m"), Ok(900));
        assert_eq!(parse_since("2d"), Ok(172800));
        for bad in ["", "h", "1", "0h", "-1h", "1w", "1.5h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shard_pods_are_selected_by_the_labels_jobs_carry() {
        assert_eq!(
            shard_selector("orders", Some("KafkaBackup")),
            "app.kubernetes.io/component=shard,kafka.oso.sh/name=orders,kafka.oso.sh/kind=kafkabackup"
        );
        assert_eq!(
            shard_selector("orders", None),
            "app.kubernetes.io/component=shard,kafka.oso.sh/name=orders"
        );
    }
}
