//! `kubectl kafkabackup report`: a gzip tarball for a support case (CloudNativePG's `report`):
//! the five kinds' resources of a namespace (YAML), their Events, the operator Pods' and the
//! namespace's shard Pods' logs, and for each KafkaBackup whose storage opens with the Secrets
//! of the namespace, its repository's run manifests and `repository.json`. No Secret object is
//! written, and every file goes through [`crate::redact::scrub`] with the values of the Secrets
//! read (plain and base64) before it is written. Read only, towards the cluster and storage.
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

use super::logs_cmd::{ClusterFlags, connect, pod_log, pods};
use crate::api::validation::KafkaBackupValidation;
use crate::api::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore, Secrets};
use crate::format::layout;

/// The kinds whose resources and Events go in the report.
const KINDS: [&str; 5] = [
    "KafkaBackup",
    "KafkaRestore",
    "KafkaBackupValidation",
    "KafkaOffsetReset",
    "KafkaOffsetRollback",
];

/// The selector of the shard Job Pods (`operator/jobs.rs`).
const SHARD_SELECTOR: &str =
    "app.kubernetes.io/component=shard,app.kubernetes.io/part-of=kafka-backup-operator";

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The tarball to write (default: kafkabackup-report-<namespace>-<time>.tar.gz).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// The files of a report, by path inside the tarball, notes on what could not be read, and the
/// Secret values read (to hide).
#[derive(Debug, Default)]
pub struct Bundle {
    pub files: Vec<(String, Vec<u8>)>,
    pub notes: Vec<String>,
    pub secrets: Vec<String>,
}

impl Bundle {
    pub fn add(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.push((path.into(), bytes.into()));
    }

    /// The Secret values to hide, each plain and in base64.
    fn hidden(&self) -> Vec<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut all: Vec<String> = self.secrets.clone();
        all.extend(self.secrets.iter().map(|s| b64.encode(s.as_bytes())));
        all
    }

    /// `text` with every URL's userinfo and query and every Secret value read (plain or
    /// base64) replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let all = self.hidden();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        crate::redact::scrub(text, &all)
    }

    /// Objects as YAML documents, without their managedFields, every string scrubbed before
    /// it is serialised (so that a hidden value stays valid YAML: `'***'`).
    pub fn yaml_docs<K: serde::Serialize>(&self, items: &[K]) -> anyhow::Result<String> {
        fn walk(v: &mut serde_json::Value, b: &Bundle) {
            match v {
                serde_json::Value::String(s) => *s = b.scrub(s),
                serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, b)),
                serde_json::Value::Object(m) => m.values_mut().for_each(|x| walk(x, b)),
                _ => {}
            }
        }
        let mut out = String::new();
        for o in items {
            let mut v = serde_json::to_value(o)?;
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            walk(&mut v, self);
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(&v)?);
        }
        Ok(out)
    }

    /// Every file, and the notes, through [`Bundle::scrub`].
    pub fn redact(&mut self) {
        let files = std::mem::take(&mut self.files);
        self.files = (files.into_iter())
            .map(|(p, b)| (p, self.scrub(&String::from_utf8_lossy(&b)).into_bytes()))
            .collect();
        self.notes = self.notes.iter().map(|n| self.scrub(n)).collect();
    }

    /// Writes the files under `root/` into a gzip tarball at `path`; its size in bytes.
    pub fn write_tar_gz(&self, path: &Path, root: &str) -> anyhow::Result<u64> {
        let f = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        for (p, bytes) in &self.files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(now);
            h.set_cksum();
            tar.append_data(&mut h, format!("{root}/{p}"), bytes.as_slice())?;
        }
        tar.into_inner()?.finish()?;
        Ok(std::fs::metadata(path)?.len())
    }

    /// What was written: each file and its bytes, then the tarball.
    pub fn summary(&self, path: &Path, size: u64) -> String {
        let mut out = String::new();
        let w = self.files.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        for (p, b) in &self.files {
            out.push_str(&format!("  {p:<w$}  {} bytes\n", b.len()));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&format!(
            "wrote {} ({size} bytes, {} files)\n",
            path.display(),
            self.files.len()
        ));
        out
    }
}

/// Every `K` of `ns` as YAML into `b` (`resources/<plural>.yaml`), or a note.
async fn collect_kind<K>(client: &kube::Client, ns: &str, b: &mut Bundle)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let plural = K::plural(&()).into_owned();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(l) => match b.yaml_docs(&l.items) {
            Ok(y) => b.add(format!("resources/{plural}.yaml"), y),
            Err(e) => b.notes.push(format!("{plural}: {e}")),
        },
        Err(e) => b.notes.push(format!("{plural} not listed: {e}")),
    }
}

/// The Events of `ns` about the five kinds (`events.yaml`).
async fn collect_events(client: &kube::Client, ns: &str, b: &mut Bundle) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(l) => {
            let mut ev: Vec<Event> = (l.items.into_iter())
                .filter(|e| {
                    (e.regarding.as_ref())
                        .is_some_and(|r| KINDS.contains(&r.kind.as_deref().unwrap_or_default()))
                })
                .collect();
            ev.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
            match b.yaml_docs(&ev) {
                Ok(y) => b.add("events.yaml", y),
                Err(e) => b.notes.push(format!("events: {e}")),
            }
        }
        Err(e) => b.notes.push(format!("Events not listed: {e}")),
    }
}

/// The logs of the Pods `selector` selects in `ns` (None: all) under `dir/`.
async fn collect_logs(
    client: &kube::Client,
    ns: Option<&str>,
    selector: &str,
    dir: &str,
    b: &mut Bundle,
) {
    let found = match pods(client, ns, selector).await {
        Ok(p) => p,
        Err(e) => return b.notes.push(format!("{dir}: {e}")),
    };
    if found.is_empty() {
        b.notes.push(format!("{dir}: no Pod matches {selector}"));
    }
    for (pns, pod) in found {
        match pod_log(client, &pns, &pod, None).await {
            Ok(text) => b.add(format!("{dir}/{pns}_{pod}.log"), text),
            Err(e) => b.notes.push(e.to_string()),
        }
    }
}

/// The Secrets `kb` names, read from `ns`, and their values (for redaction).
async fn backup_secrets(
    client: &kube::Client,
    ns: &str,
    kb: &KafkaBackup,
    values: &mut Vec<String>,
) -> anyhow::Result<Secrets> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Secrets::new();
    for n in crate::api::secrets::referenced(&kb.spec.kafka_cluster, Some(&kb.spec.storage)) {
        let Some(s) = api.get_opt(&n).await? else {
            continue;
        };
        let mut data: std::collections::BTreeMap<String, Vec<u8>> = (s.data.unwrap_or_default())
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        values.extend(
            data.values()
                .map(|v| String::from_utf8_lossy(v).trim().to_string()),
        );
        out.insert(None, &n, data);
    }
    Ok(out)
}

/// `kb`'s repository: `repository/<name>/repository.json` and each run's manifest.
async fn collect_repository(
    kb: &KafkaBackup,
    secrets: &Secrets,
    b: &mut Bundle,
) -> anyhow::Result<()> {
    let name = kb.metadata.name.clone().unwrap_or_default();
    let pvc_root = Path::new("./kbo-pvc");
    let target =
        crate::observe::storage_target(&kb.spec.storage, secrets, pvc_root, "spec.storage")?;
    let op = target.open_read_only()?;
    if let Some(bytes) = crate::storage::read_opt(&op, &layout::repository(&name)).await? {
        b.add(format!("repository/{name}/repository.json"), bytes);
    }
    for run in crate::storage::list_dirs(&op, &layout::runs_dir(&name)).await? {
        if let Some(bytes) = crate::storage::read_opt(&op, &layout::manifest(&name, &run)).await? {
            b.add(format!("repository/{name}/runs/{run}/manifest.json"), bytes);
        }
    }
    Ok(())
}

/// Everything the report holds, redacted with the values of the Secrets read (read first,
/// so that the YAML is scrubbed value by value).
async fn collect(client: &kube::Client, ns: &str, f: &ClusterFlags) -> Bundle {
    let mut b = Bundle::default();
    let kbs = (Api::<KafkaBackup>::namespaced(client.clone(), ns))
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut stores = vec![];
    for kb in &kbs {
        stores.push(backup_secrets(client, ns, kb, &mut b.secrets).await);
    }
    collect_kind::<KafkaBackup>(client, ns, &mut b).await;
    collect_kind::<KafkaRestore>(client, ns, &mut b).await;
    collect_kind::<KafkaBackupValidation>(client, ns, &mut b).await;
    collect_kind::<KafkaOffsetReset>(client, ns, &mut b).await;
    collect_kind::<KafkaOffsetRollback>(client, ns, &mut b).await;
    collect_events(client, ns, &mut b).await;
    let op_ns = f.operator_namespace.as_deref();
    collect_logs(client, op_ns, &f.selector, "operator-logs", &mut b).await;
    collect_logs(client, Some(ns), SHARD_SELECTOR, "shard-logs", &mut b).await;
    for (kb, secrets) in kbs.iter().zip(stores) {
        let name = kb.metadata.name.clone().unwrap_or_default();
        let r = match secrets {
            Ok(s) => collect_repository(kb, &s, &mut b).await,
            Err(e) => Err(anyhow::anyhow!("its Secrets could not be read: {e}")),
        };
        if let Err(e) = r {
            b.notes
                .push(format!("repository of KafkaBackup {name}: {e:#}"));
        }
    }
    let mut readme = format!(
        "kubectl kafkabackup report of namespace {ns}, {}\nSecret values are replaced by ***; no Secret object is included.\n",
        jiff::Timestamp::now()
    );
    for n in &b.notes {
        readme.push_str(&format!("note: {n}\n"));
    }
    b.add("README.txt", readme);
    b.redact();
    b
}

/// `report`: collects, redacts, writes the tarball, says what it wrote.
pub async fn report(args: &ReportArgs) -> anyhow::Result<String> {
    let (client, default_ns) = connect(&args.cluster).await?;
    let ns = args.cluster.namespace.clone().unwrap_or(default_ns);
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let path = (args.output.clone())
        .unwrap_or_else(|| PathBuf::from(format!("kafkabackup-report-{ns}-{stamp}.tar.gz")));
    let b = collect(&client, &ns, &args.cluster).await;
    let size = b.write_tar_gz(&path, &format!("kafkabackup-report-{ns}"))?;
    Ok(b.summary(&path, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_tarball_holds_every_file_and_no_secret_value_plain_or_base64() {
        let secret = "Sup3rSecretKeyValue/abc+def";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let mut b = Bundle::default();
        b.add("resources/kafkabackups.yaml", "name: orders\n");
        b.add(
            "operator-logs/kbo_op.log",
            format!("error with key {secret} at http://u:p@h:1/x?sig=zz\n"),
        );
        b.add("events.yaml", format!("message: {b64}\n"));
        b.notes.push(format!("failed: {secret}"));
        b.secrets = vec![secret.to_string(), "ab".into()];
        // YAML: scrubbed value by value, so the hidden value is still a YAML string
        let obj = serde_json::json!({"metadata": {"name": "x", "managedFields": [{"m": 1}],
            "annotations": {"note": secret}}});
        let y = b.yaml_docs(&[obj]).unwrap();
        assert!(!y.contains(secret) && !y.contains("managedFields"), "{y}");
        let back: serde_json::Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(back["metadata"]["annotations"]["note"], "***", "{y}");
        b.redact();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.tar.gz");
        let size = b.write_tar_gz(&path, "root").unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        let mut raw = vec![];
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(secret) && !text.contains(&b64), "{text}");
        assert!(!text.contains("u:p@") && !text.contains("sig=zz"), "{text}");
        let mut names = vec![];
        let mut ar = tar::Archive::new(raw.as_slice());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            names.push((e.path().unwrap().display().to_string(), s));
        }
        assert_eq!(names.len(), 3);
        assert_eq!(
            names[0],
            (
                "root/resources/kafkabackups.yaml".to_string(),
                "name: orders\n".to_string()
            )
        );
        assert_eq!(names[1].1, "error with key *** at http://h:1/x?***\n");
        let s = b.summary(&path, size);
        assert!(
            s.contains("events.yaml") && s.contains("note: failed: ***"),
            "{s}"
        );
        assert!(s.ends_with(&format!("({size} bytes, 3 files)\n")), "{s}");
    }
}
