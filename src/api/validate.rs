//! Validation of the five kinds: field-level rules (garde attributes on the spec structs) plus
//! cross-field rules, reported as [`ValidationErrors`]: a list of `{field, message}` where
//! `field` is a path such as `spec.kafkaCluster.bootstrapServers[0]` and `message` says what is
//! wrong and how to fix it.
//!
//! The same checks run in the controller (before compiling a plan), in the kubectl plugin's
//! `plan` and in the standalone `run`. Rules the API server can enforce are also emitted into
//! the CRD schema as `x-kubernetes-validations` (CEL) and OpenAPI bounds.
//!
//! Everything here is pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use garde::Validate;

use super::backup::{KafkaBackup, KafkaBackupSpec};
pub use super::checks::{
    check_acks, check_cron, check_host_port, check_http_url, check_restore_topic_filter,
    check_rfc3339, check_time_zone, check_topic_name, check_topic_pattern, parse_rfc3339_ms,
    parse_schedule, parse_time_zone,
};
use super::common::{KafkaClusterSpec, StorageSpec, StorageType};
use super::execution::{ExecutionMode, ExecutionSpec};
use super::offset_reset::{KafkaOffsetReset, ResetStrategy};
use super::offset_rollback::KafkaOffsetRollback;
use super::restore::{
    KafkaRestore, KafkaRestoreSpec, PartitionOffsetBound, PitrSpec, RestoreOffsetReset,
    partition_key,
};
use super::validated::{OffsetBounds, ValidatedBackup, ValidatedRestore};
use super::validation::KafkaBackupValidation;

/// One thing wrong with a resource, found by validation or, against the observed facts, by
/// compile ([`crate::plan::CompileError`]). `Display`: `field: message`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.storage.s3.bucket` or
    /// `spec.kafkaCluster.bootstrapServers[0]`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All validation failures of one resource, in field order. Never empty when returned as an
/// error. `Display` prints one `field: message` per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The failures.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }
    /// Append a failure (exact duplicates are dropped; a multi-line message is folded onto one
    /// line so that `Display` stays one failure per line).
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let message: String = message.into();
        let message = if message.contains('\n') {
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            message
        };
        let e = FieldError {
            field: field.into(),
            message,
        };
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
    /// True when there are no failures.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    /// Number of failures.
    pub fn len(&self) -> usize {
        self.errors.len()
    }
    /// Iterate the failures.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }
    /// True when some failure's field equals `field` or lies below it (`spec.pitr` matches
    /// `spec.pitr.endTime`).
    pub fn has_field(&self, field: &str) -> bool {
        self.errors.iter().any(|e| {
            e.field == field
                || e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
    /// `Ok(())` when empty, `Err(self)` otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Append a garde report, prefixing each path with `prefix` (e.g. `spec`) and turning
    /// garde's terse messages into ones with a hint.
    ///
    /// garde reports Rust field names (its `rename` is not applied in 0.23), so every path
    /// component is converted to the camelCase YAML name. This is exact because garde never
    /// descends into maps here (map entries are checked by hand, with the key in `prefix`).
    pub fn extend_garde(&mut self, prefix: &str, report: garde::Report) {
        for (path, error) in report.into_inner() {
            let path = camel_path(&path.to_string());
            let field = match (prefix.is_empty(), path.is_empty()) {
                (_, true) => prefix.to_string(),
                (true, false) => path,
                (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
                (false, false) => format!("{prefix}.{path}"),
            };
            let message = humanize_garde(&field, error.message());
            self.push(field, message);
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// `kafka_cluster.bootstrap_servers[0]` -> `kafkaCluster.bootstrapServers[0]`.
fn camel_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            '_' if !in_index => {
                upper = true;
                continue;
            }
            _ => {}
        }
        if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The last named component of a path: `spec.a.bList[3]` -> `bList`.
fn last_component(field: &str) -> &str {
    let mut f = field;
    while let Some(stripped) = f.strip_suffix(']') {
        match stripped.rfind('[') {
            Some(i) => f = &f[..i],
            None => break,
        }
    }
    f.rsplit('.').next().unwrap_or(f)
}

fn field_hint(field: &str) -> Option<&'static str> {
    Some(match last_component(field) {
        "bootstrapServers" => {
            "list at least one seed broker as host:port, e.g. `bootstrapServers: [\"kafka:9092\"]`"
        }
        "topics" => {
            "list at least one topic name or glob, e.g. `topics: [\"orders\", \"payments-*\"]`"
        }
        "consumerGroups" => "list consumer group ids, e.g. `consumerGroups: [\"order-processor\"]`",
        "connectionsPerBroker" => "use a pool size of at least 1 (default 4)",
        "segmentMaxBytes" => "use at least 1048576 (1 MiB); the default is 134217728 (128 MiB)",
        "name" => "set the name of the referenced object",
        "bucket" => "set the bucket name",
        "region" => {
            "set the region, e.g. us-west-2 (S3-compatible stores accept any, e.g. us-east-1)"
        }
        "claimName" => "set the PersistentVolumeClaim name",
        "path" => "set a directory path",
        "container" => "set the blob container name",
        "accountName" => "set the storage account name",
        "formats" => "list at least one of json, pdf",
        "expectedStatusCode" => "use an HTTP status code between 100 and 599 (default 200)",
        "targetPartitions" => "set the target topic's partition count (at least 1)",
        "defaultReplicationFactor" => "use at least 1, or omit it to use the broker default",
        "maxConcurrentPartitions" => {
            "use at least 1, or omit it for the default (8 backup / 4 restore)"
        }
        "resetOffset" => "offsets start at 0",
        "shards" => "use 1 to 64 Jobs per run (default 1)",
        "backoffLimit" => "use 0 to 20 retries of one shard (default 3)",
        "ttlSecondsAfterFinished" => "use 0 to 2592000 seconds (30 days); the default is 3600",
        _ => return None,
    })
}

fn humanize_garde(field: &str, message: &str) -> String {
    let base = if let Some(n) = message.strip_prefix("length is lower than ") {
        if n == "1" {
            "must not be empty".to_string()
        } else {
            format!("needs at least {n} entries/characters")
        }
    } else if let Some(n) = message.strip_prefix("length is greater than ") {
        format!("must have at most {n} entries/characters")
    } else if let Some(n) = message.strip_prefix("lower than ") {
        format!("must be at least {n}")
    } else if let Some(n) = message.strip_prefix("greater than ") {
        format!("must be at most {n}")
    } else {
        // Our own validators already say what to do.
        return message.to_string();
    };
    match field_hint(field) {
        Some(h) => format!("{base}: {h}"),
        None => format!("{base}; see the field's description in `kubectl explain`"),
    }
}

// ---------------------------------------------------------------------------------------------
// shared cross-field rules
// ---------------------------------------------------------------------------------------------

/// Why `name` is not a Kubernetes object name (an RFC 1123 subdomain: at most 253 characters,
/// lowercase letters, digits, '-' and '.', starting and ending with a letter or digit), or
/// None. Names become storage paths (`<backup>/...`, `restores/<restore>/...`), so a name that
/// passes cannot leave the storage root.
pub fn rfc1123_problem(name: &str) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        Some("is empty".into())
    } else if name.len() > 253 {
        Some(format!("is {} characters long; at most 253", name.len()))
    } else if let Some(c) = name.chars().find(|c| !ok_char(*c)) {
        Some(format!(
            "{name:?} holds {c:?}; a Kubernetes name has lowercase letters, digits, '-' and '.' only"
        ))
    } else if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        Some(format!(
            "{name:?} must start and end with a lowercase letter or digit"
        ))
    } else if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        Some(format!(
            "{name:?} has an empty or over-63-character part between dots"
        ))
    } else {
        None
    }
}

/// Why `name` is not a Kubernetes label name (the part after an optional `prefix/` of a label
/// key, and every non-empty label value): at most 63 characters of letters, digits, '-', '_'
/// and '.', starting and ending with a letter or digit. None when it is one.
fn label_name_problem(name: &str) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() {
        Some("is empty".into())
    } else if name.len() > 63 {
        Some(format!("is {} characters long; at most 63", name.len()))
    } else if let Some(c) = name.chars().find(|c| !ok_char(*c)) {
        Some(format!("holds {c:?}"))
    } else if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        Some("must start and end with a letter or digit".into())
    } else {
        None
    }
}

/// Why `key` is not a Kubernetes label key (`[prefix/]name`: the prefix an RFC 1123
/// subdomain, the name as in [`label_name_problem`]), or None.
pub fn label_key_problem(key: &str) -> Option<String> {
    match key.split_once('/') {
        Some((prefix, name)) => rfc1123_problem(prefix)
            .map(|why| format!("has prefix {prefix:?}, which {why}"))
            .or_else(|| label_name_problem(name).map(|why| format!("has a name part that {why}"))),
        None => label_name_problem(key),
    }
}

/// Why `value` is not a Kubernetes label value (empty, or as [`label_name_problem`]), or None.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        label_name_problem(value)
    }
}

/// Cross-field rules of an `execution` block at `path` (the ranges of `shards`,
/// `backoffLimit` and `ttlSecondsAfterFinished` are garde rules on the type): more than one
/// shard needs mode job; `priorityClassName` and `serviceAccountName`, when not empty, are
/// Kubernetes names; `nodeSelector` holds labels. A pvc storage with several shards is
/// accepted here: whether its claim can be mounted by several Pods (ReadWriteMany) is known
/// only from the claim, which the operator checks.
pub fn check_execution(errs: &mut ValidationErrors, path: &str, ex: &ExecutionSpec) {
    if ex.shards > 1 && ex.mode == ExecutionMode::InProcess {
        errs.push(
            format!("{path}.shards"),
            format!(
                "{} needs {path}.mode: job; set mode: job, or remove shards",
                ex.shards
            ),
        );
    }
    if let Some(why) = ex.priority_class().and_then(rfc1123_problem) {
        errs.push(
            format!("{path}.priorityClassName"),
            format!(
                "{why}; use the name of a PriorityClass (kubectl get priorityclass), or remove it"
            ),
        );
    }
    if let Some(why) = ex.service_account().and_then(rfc1123_problem) {
        errs.push(
            format!("{path}.serviceAccountName"),
            format!(
                "{why}; use the name of a ServiceAccount in the resource's namespace, or remove it \
                 to use the chart's runner ServiceAccount"
            ),
        );
    }
    for (key, value) in &ex.node_selector {
        let field = format!("{path}.nodeSelector.{key}");
        if let Some(why) = label_key_problem(key) {
            errs.push(
                field.clone(),
                format!(
                    "key {key:?} {why}; a label key is [prefix/]name: the name 1 to 63 letters, \
                     digits, '-', '_' or '.', starting and ending with a letter or digit, the \
                     prefix a DNS subdomain, e.g. kubernetes.io/arch"
                ),
            );
        }
        if let Some(why) = label_value_problem(value) {
            errs.push(
                field,
                format!(
                    "value {value:?} {why}; a label value is empty or 1 to 63 letters, digits, \
                     '-', '_' or '.', starting and ending with a letter or digit, e.g. amd64"
                ),
            );
        }
    }
}

fn check_metadata_name(errs: &mut ValidationErrors, name: Option<&str>) {
    match name {
        None => errs.push(
            "metadata.name",
            "is missing; add `metadata: {name: <name>}` (lowercase letters, digits, '-')",
        ),
        Some(n) => {
            if let Some(why) = rfc1123_problem(n) {
                errs.push(
                    "metadata.name",
                    format!("{why} (it names the backup's objects in storage); e.g. orders-backup"),
                );
            }
        }
    }
}

/// `metadata.namespace`, when set, must be a DNS label (RFC 1123: at most 63 characters).
fn check_metadata_namespace(errs: &mut ValidationErrors, ns: Option<&str>) {
    if let Some(ns) = ns {
        let why = rfc1123_problem(ns).or_else(|| {
            (ns.contains('.') || ns.len() > 63)
                .then(|| format!("{ns:?} must be a DNS label: no '.', at most 63 characters"))
        });
        if let Some(why) = why {
            errs.push("metadata.namespace", why);
        }
    }
}

/// Cross-field rules of a `kafkaCluster` block at `path` (garde rules run separately).
pub fn check_kafka_cluster(errs: &mut ValidationErrors, path: &str, kc: &KafkaClusterSpec) {
    let proto = kc.security_protocol;
    if proto.uses_sasl() && kc.sasl_secret.is_none() {
        errs.push(
            format!("{path}.saslSecret"),
            format!(
                "is required because securityProtocol is {proto}; add `saslSecret: {{name: <secret>, \
                 mechanism: SCRAM-SHA-512}}` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512), or use \
                 securityProtocol {}",
                if proto.uses_tls() { "SSL" } else { "PLAINTEXT" }
            ),
        );
    }
    if !proto.uses_sasl() && kc.sasl_secret.is_some() {
        errs.push(
            format!("{path}.securityProtocol"),
            format!(
                "is {proto}, so saslSecret would be ignored; set securityProtocol to SASL_SSL (or \
                 SASL_PLAINTEXT), or remove saslSecret"
            ),
        );
    }
    if !proto.uses_tls() && (kc.tls_secret.is_some() || kc.ca_secret.is_some()) {
        errs.push(
            format!("{path}.securityProtocol"),
            format!(
                "is {proto}, so tlsSecret/caSecret would be ignored; set securityProtocol to SSL \
                 (or SASL_SSL), or remove the TLS Secrets"
            ),
        );
    }
    if let Some(tls) = &kc.tls_secret
        && tls.cert_key.is_some() != tls.key_key.is_some()
    {
        errs.push(
            format!("{path}.tlsSecret"),
            "certKey and keyKey go together (client certificate and its private key for mutual \
             TLS); set both, or neither for server-only TLS",
        );
    }
}

/// Cross-field rules of a `storage` block at `path`: the block matching `storageType` is
/// present, the others are absent, http endpoints are opted into, Azure credentials are
/// exclusive.
pub fn check_storage(errs: &mut ValidationErrors, path: &str, st: &StorageSpec) {
    let ty = st.storage_type;
    let present = [
        (
            StorageType::Pvc,
            st.pvc.is_some(),
            "pvc: {claimName: <pvc>}",
        ),
        (
            StorageType::S3,
            st.s3.is_some(),
            "s3: {bucket: <bucket>, region: <region>}",
        ),
        (
            StorageType::Azure,
            st.azure.is_some(),
            "azure: {container: <container>, accountName: <account>}",
        ),
        (
            StorageType::Gcs,
            st.gcs.is_some(),
            "gcs: {bucket: <bucket>}",
        ),
        (
            StorageType::Filesystem,
            st.filesystem.is_some(),
            "filesystem: {path: /var/backups}",
        ),
    ];
    for (t, is_set, example) in present {
        if t == ty && !is_set {
            errs.push(
                format!("{path}.{t}"),
                format!("is missing: storageType is {ty}, so add `{example}` under storage"),
            );
        }
        if t != ty && is_set {
            errs.push(
                format!("{path}.{t}"),
                format!(
                    "is set but storageType is {ty}, so it would be ignored; set `storageType: {t}` \
                     or remove the {t} block"
                ),
            );
        }
    }
    // Every storage key must stay inside the configured root: no '..' or '.' path segments.
    let escapes = |p: &str| p.split(['/', '\\']).any(|seg| seg == ".." || seg == ".");
    for (field, value) in [
        (
            "s3.prefix",
            st.s3.as_ref().and_then(|x| x.prefix.as_deref()),
        ),
        (
            "azure.prefix",
            st.azure.as_ref().and_then(|x| x.prefix.as_deref()),
        ),
        (
            "gcs.prefix",
            st.gcs.as_ref().and_then(|x| x.prefix.as_deref()),
        ),
        (
            "pvc.subPath",
            st.pvc.as_ref().and_then(|x| x.sub_path.as_deref()),
        ),
    ] {
        if let Some(v) = value.filter(|v| escapes(v)) {
            errs.push(
                format!("{path}.{field}"),
                format!(
                    "{v:?} has a '..' or '.' segment; write the path inside the root without them"
                ),
            );
        }
    }
    if let Some(s3) = &st.s3
        && let Some(ep) = &s3.endpoint
    {
        if ep.starts_with("http://") && !s3.allow_http {
            errs.push(
                format!("{path}.s3.endpoint"),
                format!(
                    "{ep:?} is plain http; set `allowHttp: true` to allow unencrypted traffic (e.g. a \
                     local MinIO), or use an https:// endpoint"
                ),
            );
        } else if !ep.starts_with("http://") && !ep.starts_with("https://") {
            errs.push(
                format!("{path}.s3.endpoint"),
                format!("{ep:?} is not a URL; write it like \"https://minio.example:9000\""),
            );
        }
    }
    if let Some(az) = &st.azure {
        let set: Vec<&str> = [
            ("credentialsSecret", az.credentials_secret.is_some()),
            ("sasTokenSecret", az.sas_token_secret.is_some()),
            (
                "servicePrincipalSecret",
                az.service_principal_secret.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.then_some(n))
        .collect();
        if set.len() > 1 {
            errs.push(
                format!("{path}.azure"),
                format!(
                    "sets {}; these are mutually exclusive: keep exactly one (or none, with \
                     useWorkloadIdentity: true)",
                    set.join(" and ")
                ),
            );
        }
        if az.use_workload_identity && !set.is_empty() {
            errs.push(
                format!("{path}.azure.useWorkloadIdentity"),
                format!(
                    "is true but {} is also set; use workload identity or a Secret, not both",
                    set.join(" and ")
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// per kind
// ---------------------------------------------------------------------------------------------

/// Validate a KafkaBackup (metadata name, every spec rule) into the input its runs compile
/// from ([`ValidatedBackup`]). Pure.
pub fn validate_backup(kb: &KafkaBackup) -> Result<ValidatedBackup, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_metadata_name(&mut errs, kb.metadata.name.as_deref());
    check_metadata_namespace(&mut errs, kb.metadata.namespace.as_deref());
    check_backup_spec(&mut errs, &kb.spec);
    errs.into_result()?;
    Ok(ValidatedBackup::from_valid(&kb.spec))
}

/// The spec part of [`validate_backup`], appending to `errs` with paths under `spec`.
pub fn check_backup_spec(errs: &mut ValidationErrors, spec: &KafkaBackupSpec) {
    if let Err(report) = spec.validate() {
        errs.extend_garde("spec", report);
    }
    check_kafka_cluster(errs, "spec.kafkaCluster", &spec.kafka_cluster);
    check_storage(errs, "spec.storage", &spec.storage);
    check_execution(errs, "spec.execution", &spec.execution);
    if spec.continuous && spec.stop_at_current_offsets {
        errs.push(
            "spec.continuous",
            "continuous and stopAtCurrentOffsets are mutually exclusive: keep stopAtCurrentOffsets: \
             true for a point-in-time backup that stops at the current high watermarks, or \
             continuous: true to stream until stopped",
        );
    }
    if spec.continuous && spec.schedule.is_some() {
        errs.push(
            "spec.schedule",
            "a continuous backup runs until stopped, so it cannot also have a schedule; remove \
             schedule, or set continuous: false (with stopAtCurrentOffsets: true for scheduled \
             point-in-time backups)",
        );
    }
    if let Some((lo, hi)) = spec.compression.level_range()
        && !(lo..=hi).contains(&spec.compression_level)
    {
        errs.push(
            "spec.compressionLevel",
            format!(
                "{} is outside {}'s range {lo}..={hi}; pick a level in that range (default 3)",
                spec.compression_level,
                spec.compression.as_str()
            ),
        );
    }
    if spec.retention.enabled
        && spec.retention.max_age_days.is_none()
        && spec.retention.keep_last.is_none()
    {
        errs.push(
            "spec.retention",
            "enabled: true needs a limit; set maxAgeDays (e.g. 30) and/or keepLast (e.g. 7)",
        );
    }
    if spec.retention.credentials_secret.is_some() && spec.storage.storage_type != StorageType::S3 {
        errs.push(
            "spec.retention.credentialsSecret",
            format!(
                "is an S3 key pair, but storage.storageType is {}: remove it (retention then uses the storage's own credential)",
                spec.storage.storage_type.as_str()
            ),
        );
    }
    if let Some(dup) = first_duplicate(&spec.topics) {
        errs.push(
            "spec.topics",
            format!("lists {dup:?} twice; remove the duplicate"),
        );
    }
}

/// Validate a KafkaRestore into the input it compiles from ([`ValidatedRestore`]: the PITR
/// window in epoch ms, the parsed partition mapping, the group step). Pure.
pub fn validate_restore(kr: &KafkaRestore) -> Result<ValidatedRestore, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_metadata_name(&mut errs, kr.metadata.name.as_deref());
    check_metadata_namespace(&mut errs, kr.metadata.namespace.as_deref());
    let spec = &kr.spec;
    if let Err(report) = spec.validate() {
        errs.extend_garde("spec", report);
    }
    check_kafka_cluster(&mut errs, "spec.kafkaCluster", &spec.kafka_cluster);
    if let Some(st) = &spec.backup_ref.storage {
        check_storage(&mut errs, "spec.backupRef.storage", st);
    }
    if let Some(st) = &spec.state_storage {
        check_storage(&mut errs, "spec.stateStorage", st);
    }
    if let Some(why) = rfc1123_problem(&spec.backup_ref.name) {
        errs.push(
            "spec.backupRef.name",
            format!("{why}: it is the name of a KafkaBackup"),
        );
    }
    check_execution(&mut errs, "spec.execution", &spec.execution);
    let pitr = check_pitr(&mut errs, spec.pitr.as_ref());
    let pitr_offsets = check_pitr_offsets(&mut errs, spec.pitr.as_ref());
    let partition_mapping = check_partition_mapping(&mut errs, &spec.partition_mapping);
    check_restore_topics(&mut errs, spec);
    check_restore_offset_reset(&mut errs, spec.offset_reset.as_ref());
    errs.into_result()?;
    Ok(ValidatedRestore::from_valid(
        spec,
        pitr,
        pitr_offsets,
        partition_mapping,
    ))
}

/// `pitr.startOffsets` and `pitr.endOffsets`: each entry a valid topic name, partition >= 0,
/// offset >= 0, each (topic, partition) once per list, and where both lists name a partition
/// end > start (end == start only with `pitr.allowEmpty`). Returns the bounds by source
/// (topic, partition). Whether the topic is restored and the range meets what the backup run
/// holds is decided at plan time (`compile_restore`), which knows the run.
fn check_pitr_offsets(
    errs: &mut ValidationErrors,
    pitr: Option<&PitrSpec>,
) -> BTreeMap<(String, i32), OffsetBounds> {
    let mut out: BTreeMap<(String, i32), OffsetBounds> = BTreeMap::new();
    let Some(pitr) = pitr else {
        return out;
    };
    for (list, entries) in [
        ("startOffsets", &pitr.start_offsets),
        ("endOffsets", &pitr.end_offsets),
    ] {
        for (i, b) in entries.iter().enumerate() {
            let field = format!("spec.pitr.{list}[{i}]");
            if !check_offset_bound(errs, &field, b) {
                continue;
            }
            let e = out.entry((b.topic.clone(), b.partition)).or_default();
            let slot = if list == "startOffsets" {
                &mut e.start
            } else {
                &mut e.end
            };
            match slot {
                Some((_, first)) => errs.push(
                    field,
                    format!(
                        "names {}/{} again (also spec.pitr.{list}[{first}]): give each partition one bound; remove one of them",
                        b.topic, b.partition
                    ),
                ),
                None => *slot = Some((b.offset, i)),
            }
        }
    }
    for ((topic, partition), b) in &out {
        let (Some((start, _)), Some((end, j))) = (b.start, b.end) else {
            continue;
        };
        let field = format!("spec.pitr.endOffsets[{j}]");
        if end < start {
            errs.push(
                field,
                format!(
                    "end offset {end} of {topic}/{partition} is below its start offset {start}: the range starts after it ends; swap them (start is inclusive, end exclusive)"
                ),
            );
        } else if end == start && !pitr.allow_empty {
            errs.push(
                field,
                format!(
                    "end offset {end} of {topic}/{partition} equals its start offset: the range {start}..{end} is empty (end is exclusive, like Kafka's end offsets); set the end to {} to restore offset {start}, or set pitr.allowEmpty: true to accept an empty restore",
                    start + 1
                ),
            );
        }
    }
    out
}

/// One entry of `pitr.startOffsets`/`endOffsets` at `field`: a valid topic name, partition
/// >= 0, offset >= 0. False (with the errors) when any is wrong.
fn check_offset_bound(errs: &mut ValidationErrors, field: &str, b: &PartitionOffsetBound) -> bool {
    let mut ok = true;
    if let Err(e) = check_topic_name(&b.topic, &()) {
        errs.push(
            format!("{field}.topic"),
            format!("{} (the source topic name, as backed up)", e.message()),
        );
        ok = false;
    }
    if b.partition < 0 {
        errs.push(
            format!("{field}.partition"),
            format!(
                "is {}: partitions start at 0; give the source partition number",
                b.partition
            ),
        );
        ok = false;
    }
    if b.offset < 0 {
        errs.push(
            format!("{field}.offset"),
            format!(
                "is {}: offsets start at 0; give a source offset (Kafka's -1/-2 shortcuts are not accepted), or remove the entry for no bound",
                b.offset
            ),
        );
        ok = false;
    }
    ok
}

/// `pitr`: the window's bounds in epoch ms (the epoch form wins over the RFC 3339 one), and
/// start <= end. A bound that does not parse is reported by the garde rule on its field.
fn check_pitr(errs: &mut ValidationErrors, pitr: Option<&PitrSpec>) -> (Option<i64>, Option<i64>) {
    let Some(pitr) = pitr else {
        return (None, None);
    };
    let (start, end) = (pitr.start_ms().ok().flatten(), pitr.end_ms().ok().flatten());
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        errs.push(
            "spec.pitr",
            format!(
                "the window starts after it ends (start {} > end {}); swap startTime/endTime (or \
                 startTimestamp/endTimestamp; the epoch forms win when both are set)",
                fmt_ms(start),
                fmt_ms(end)
            ),
        );
    }
    (start, end)
}

/// `partitionMapping`: keys are source partition numbers, targets are >= 0. Returns the
/// entries that parse.
fn check_partition_mapping(
    errs: &mut ValidationErrors,
    mapping: &BTreeMap<String, i32>,
) -> BTreeMap<i32, i32> {
    let mut parsed = BTreeMap::new();
    for (key, target) in mapping {
        let field = format!("spec.partitionMapping.{key}");
        match partition_key(key) {
            Some(p) => {
                parsed.insert(p, *target);
            }
            None => errs.push(
                field.clone(),
                format!(
                    "key {key:?} is not a partition number; keys are source partitions (0, 1, ...), \
                     e.g. `partitionMapping: {{\"0\": 1}}`"
                ),
            ),
        }
        if *target < 0 {
            errs.push(
                field,
                format!("target partition {target} is negative; partitions start at 0"),
            );
        }
    }
    parsed
}

/// `topicMapping` (source filters to target topic names) and `repartitioning` (keys are
/// target topic names).
fn check_restore_topics(errs: &mut ValidationErrors, spec: &KafkaRestoreSpec) {
    for (source, target) in &spec.topic_mapping {
        if let Err(e) = check_topic_name(target, &()) {
            errs.push(
                format!("spec.topicMapping.{source}"),
                e.message().to_string(),
            );
        }
        if let Err(e) = check_restore_topic_filter(source, &()) {
            errs.push(
                format!("spec.topicMapping.{source}"),
                e.message().to_string(),
            );
        }
    }
    for (target, rep) in &spec.repartitioning {
        let field = format!("spec.repartitioning.{target}");
        if let Err(e) = check_topic_name(target, &()) {
            errs.push(
                field.clone(),
                format!("{} (keys are target topic names)", e.message()),
            );
        }
        if let Err(report) = rep.validate() {
            errs.extend_garde(&field, report);
        }
    }
}

/// `offsetReset` inside a restore: only strategies that need no extra value, and named groups
/// when enabled.
fn check_restore_offset_reset(errs: &mut ValidationErrors, or: Option<&RestoreOffsetReset>) {
    let Some(or) = or else {
        return;
    };
    if matches!(
        or.strategy,
        ResetStrategy::ToTimestamp | ResetStrategy::ToOffset | ResetStrategy::ShiftBy
    ) {
        errs.push(
            "spec.offsetReset.strategy",
            format!(
                "{} is not available inside a restore; use from-mapping (translate the groups' \
                 committed offsets), to-earliest or to-latest, or create a KafkaOffsetReset",
                or.strategy
            ),
        );
    }
    if or.enabled && or.consumer_groups.is_empty() {
        errs.push(
            "spec.offsetReset.consumerGroups",
            "is empty although offsetReset.enabled is true; list the group ids, or use \
             autoConsumerGroups: true for every group in the backup",
        );
    }
}

/// Validate a KafkaOffsetReset. Pure.
pub fn validate_offset_reset(kor: &KafkaOffsetReset) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_metadata_name(&mut errs, kor.metadata.name.as_deref());
    check_metadata_namespace(&mut errs, kor.metadata.namespace.as_deref());
    let spec = &kor.spec;
    if let Err(report) = spec.validate() {
        errs.extend_garde("spec", report);
    }
    check_kafka_cluster(&mut errs, "spec.kafkaCluster", &spec.kafka_cluster);
    match spec.reset_strategy {
        ResetStrategy::ToTimestamp if spec.reset_timestamp.is_none() => errs.push(
            "spec.resetTimestamp",
            "is required for resetStrategy to-timestamp; set it in epoch milliseconds, e.g. \
             1733054400000 for 2024-12-01T12:00:00Z",
        ),
        ResetStrategy::ToOffset if spec.reset_offset.is_none() => errs.push(
            "spec.resetOffset",
            "is required for resetStrategy to-offset; set the offset (>= 0)",
        ),
        ResetStrategy::ShiftBy if spec.shift_by.is_none() => errs.push(
            "spec.shiftBy",
            "is required for resetStrategy shift-by; set the number of records (negative to \
             re-read), e.g. -1000",
        ),
        _ => {}
    }
    if spec.shift_by.is_some() && spec.reset_strategy != ResetStrategy::ShiftBy {
        errs.push(
            "spec.shiftBy",
            format!(
                "is only used with resetStrategy shift-by (this one is {}); remove it or change \
                 the strategy",
                spec.reset_strategy
            ),
        );
    }
    if spec.reset_timestamp.is_some() && spec.reset_strategy != ResetStrategy::ToTimestamp {
        errs.push(
            "spec.resetTimestamp",
            format!(
                "is only used with resetStrategy to-timestamp (this one is {}); remove it or change \
                 the strategy",
                spec.reset_strategy
            ),
        );
    }
    if spec.reset_offset.is_some() && spec.reset_strategy != ResetStrategy::ToOffset {
        errs.push(
            "spec.resetOffset",
            format!(
                "is only used with resetStrategy to-offset (this one is {}); remove it or change the \
                 strategy",
                spec.reset_strategy
            ),
        );
    }
    if let Some(m) = &spec.offset_mapping_ref {
        if spec.reset_strategy != ResetStrategy::FromMapping {
            errs.push(
                "spec.offsetMappingRef",
                format!(
                    "is only used with resetStrategy from-mapping (this one is {}); remove it or \
                     change the strategy",
                    spec.reset_strategy
                ),
            );
        }
        if m.restore_name.is_none() && m.path.is_none() {
            errs.push(
                "spec.offsetMappingRef",
                "names no mapping; set restoreName (a KafkaRestore in this namespace) or path",
            );
        }
        if m.pvc_name.is_some() && m.path.is_none() {
            errs.push(
                "spec.offsetMappingRef.path",
                "is required with pvcName: give the mapping file's path inside the claim",
            );
        }
    }
    if let Some(dup) = first_duplicate(&spec.consumer_groups) {
        errs.push(
            "spec.consumerGroups",
            format!("lists {dup:?} twice; remove the duplicate"),
        );
    }
    errs.into_result()
}

/// Validate a KafkaOffsetRollback. Pure.
pub fn validate_offset_rollback(korb: &KafkaOffsetRollback) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_metadata_name(&mut errs, korb.metadata.name.as_deref());
    check_metadata_namespace(&mut errs, korb.metadata.namespace.as_deref());
    let spec = &korb.spec;
    if let Err(report) = spec.validate() {
        errs.extend_garde("spec", report);
    }
    check_kafka_cluster(&mut errs, "spec.kafkaCluster", &spec.kafka_cluster);
    if !spec.snapshot_ref.is_specified() {
        errs.push(
            "spec.snapshotRef",
            "names no snapshot; set one of name (a snapshot id), path, restoreRef (a KafkaRestore) \
             or offsetResetRef (a KafkaOffsetReset)",
        );
    }
    if spec.snapshot_ref.pvc_name.is_some() && spec.snapshot_ref.path.is_none() {
        errs.push(
            "spec.snapshotRef.path",
            "is required with pvcName: give the snapshot file's path inside the claim",
        );
    }
    errs.into_result()
}

/// Validate a KafkaBackupValidation. Pure.
pub fn validate_backup_validation(kbv: &KafkaBackupValidation) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_metadata_name(&mut errs, kbv.metadata.name.as_deref());
    check_metadata_namespace(&mut errs, kbv.metadata.namespace.as_deref());
    let spec = &kbv.spec;
    if let Err(report) = spec.validate() {
        errs.extend_garde("spec", report);
    }
    if let Some(kc) = &spec.kafka_cluster {
        check_kafka_cluster(&mut errs, "spec.kafkaCluster", kc);
    }
    if let Some(st) = &spec.backup_ref.storage {
        check_storage(&mut errs, "spec.backupRef.storage", st);
    }
    check_execution(&mut errs, "spec.execution", &spec.execution);
    if let Some(ev) = &spec.evidence {
        if let Some(st) = &ev.storage {
            check_storage(&mut errs, "spec.evidence.storage", st);
        }
        if let Some(sig) = &ev.signing
            && sig.enabled
            && sig.key_secret.is_none()
        {
            errs.push(
                "spec.evidence.signing.keySecret",
                "is required when signing is enabled; add `keySecret: {name: <secret>}` holding an \
                 ECDSA P-256 key pair (private.pem, public.pem)",
            );
        }
    }
    let names: Vec<String> = spec
        .checks
        .custom_webhooks
        .iter()
        .map(|w| w.name.clone())
        .collect();
    if let Some(dup) = first_duplicate(&names) {
        errs.push(
            "spec.checks.customWebhooks",
            format!(
                "has two webhooks named {dup:?}; names identify check results, make them unique"
            ),
        );
    }
    errs.into_result()
}

fn first_duplicate(items: &[String]) -> Option<&str> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .find(|i| !seen.insert(i.as_str()))
        .map(String::as_str)
}

fn fmt_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert!(check_host_port("kafka:9092", &()).is_ok());
        assert!(check_host_port("[::1]:9092", &()).is_ok());
        assert!(check_host_port("10.0.0.1:9093", &()).is_ok());
        for bad in [
            "kafka",
            "kafka:",
            "kafka:abc",
            ":9092",
            "kafka:0",
            "PLAINTEXT://kafka:9092",
            "::1:9092",
        ] {
            let e = check_host_port(bad, &()).unwrap_err();
            assert!(e.message().contains("9092"), "{bad}: {}", e.message());
        }
    }

    #[test]
    fn cron_forms() {
        for ok in [
            "0 0 * * * * *",
            "*/5 * * * *",
            "0 30 2 * * *",
            "0 0 0 1 1 * 2030",
            "@daily",
        ] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["every hour", "0 0 * * * * * *", "61 * * * *", ""] {
            let e = parse_schedule(bad).unwrap_err();
            assert!(e.contains("0 0 * * * * *"), "{bad}: {e}");
        }
    }

    #[test]
    fn seed_schedule_is_hourly() {
        let cron = parse_schedule("0 0 * * * * *").unwrap();
        let start: jiff::Zoned = "2024-12-01T12:34:56Z[UTC]".parse().unwrap();
        let next = cron.find_next_occurrence(&start, false).unwrap();
        assert_eq!(next.to_string(), "2024-12-01T13:00:00+00:00[UTC]");
    }

    #[test]
    fn time_zones() {
        assert!(parse_time_zone("UTC").is_ok());
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        assert!(
            parse_time_zone("Mars/Olympus")
                .unwrap_err()
                .contains("Europe/Berlin")
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(
            parse_rfc3339_ms("2024-12-01T12:00:00Z").unwrap(),
            1_733_054_400_000
        );
        assert_eq!(
            parse_rfc3339_ms("2024-12-01T13:00:00+01:00").unwrap(),
            1_733_054_400_000
        );
        assert!(
            parse_rfc3339_ms("2024-12-01 12:00")
                .unwrap_err()
                .contains("2024-12-01T12:00:00Z")
        );
    }

    #[test]
    fn topic_names_and_patterns() {
        assert!(check_topic_name("orders.v1_x-y", &()).is_ok());
        assert!(check_topic_name("bad topic", &()).is_err());
        assert!(check_topic_name("..", &()).is_err());
        assert!(check_topic_pattern("orders-*", &()).is_ok());
        assert!(check_topic_pattern("orders-[", &()).is_err());
        assert!(check_topic_pattern("~orders", &()).is_err());
        assert!(check_restore_topic_filter("~orders-(eu|us)", &()).is_ok());
        assert!(check_restore_topic_filter("~orders-(", &()).is_err());
    }

    #[test]
    fn camel_paths() {
        assert_eq!(
            camel_path("kafka_cluster.bootstrap_servers[0]"),
            "kafkaCluster.bootstrapServers[0]"
        );
        assert_eq!(
            camel_path("checks.custom_webhooks[1].timeout_secs"),
            "checks.customWebhooks[1].timeoutSecs"
        );
        assert_eq!(camel_path("schedule"), "schedule");
    }

    #[test]
    fn last_component_strips_indexes() {
        assert_eq!(
            last_component("spec.kafkaCluster.bootstrapServers[0]"),
            "bootstrapServers"
        );
        assert_eq!(last_component("spec.topics"), "topics");
        assert_eq!(last_component("name"), "name");
    }

    /// A valid KafkaBackup with `execution` set to the YAML block `execution` (indented by
    /// four spaces under `spec.execution`), and its validation errors (empty when valid).
    fn backup_with_execution(execution: &str) -> Vec<FieldError> {
        let yaml = format!(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackup\nmetadata: {{name: b}}\nspec:\n  \
             kafkaCluster: {{bootstrapServers: [\"kafka:9092\"]}}\n  topics: [orders]\n  \
             storage: {{storageType: pvc, pvc: {{claimName: backups}}}}\n  execution:\n{execution}"
        );
        let kb: KafkaBackup = serde_yaml_ng::from_str(&yaml).unwrap();
        match validate_backup(&kb) {
            Ok(_) => vec![],
            Err(e) => e.errors,
        }
    }

    fn one_error(execution: &str) -> FieldError {
        let errs = backup_with_execution(execution);
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn execution_valid_forms() {
        // The example, pvc with several shards (the claim is checked later), defaults.
        let ok = "    mode: job\n    shards: 4\n    resources: {requests: {cpu: 500m, memory: 256Mi}, \
                  limits: {memory: 512Mi}}\n    nodeSelector: {kubernetes.io/arch: amd64, pool: \"\"}\n    \
                  tolerations: [{key: dedicated, operator: Equal, value: kafka, effect: NoSchedule}]\n    \
                  priorityClassName: \"\"\n    serviceAccountName: \"\"\n    backoffLimit: 0\n    \
                  ttlSecondsAfterFinished: 0\n";
        assert_eq!(backup_with_execution(ok), vec![]);
        assert_eq!(backup_with_execution("    mode: in-process\n"), vec![]);
        assert_eq!(backup_with_execution("    shards: 1\n"), vec![]);
        assert_eq!(
            backup_with_execution(
                "    mode: job\n    shards: 64\n    backoffLimit: 20\n    ttlSecondsAfterFinished: 2592000\n"
            ),
            vec![]
        );
    }

    #[test]
    fn execution_shards_need_mode_job() {
        let e = one_error("    shards: 4\n");
        assert_eq!(e.field, "spec.execution.shards");
        assert_eq!(
            e.message,
            "4 needs spec.execution.mode: job; set mode: job, or remove shards"
        );
    }

    #[test]
    fn execution_shards_range() {
        let e = one_error("    mode: job\n    shards: 0\n");
        assert_eq!(e.field, "spec.execution.shards");
        assert!(
            e.message.contains("at least 1") && e.message.contains("1 to 64"),
            "{e}"
        );
        let e = one_error("    mode: job\n    shards: 65\n");
        assert_eq!(e.field, "spec.execution.shards");
        assert!(e.message.contains("at most 64"), "{e}");
    }

    #[test]
    fn execution_backoff_limit_range() {
        let e = one_error("    backoffLimit: -1\n");
        assert_eq!(e.field, "spec.execution.backoffLimit");
        assert!(
            e.message.contains("at least 0") && e.message.contains("0 to 20"),
            "{e}"
        );
        let e = one_error("    backoffLimit: 21\n");
        assert!(e.message.contains("at most 20"), "{e}");
    }

    #[test]
    fn execution_ttl_range() {
        let e = one_error("    ttlSecondsAfterFinished: -5\n");
        assert_eq!(e.field, "spec.execution.ttlSecondsAfterFinished");
        assert!(
            e.message.contains("at least 0") && e.message.contains("3600"),
            "{e}"
        );
        let e = one_error("    ttlSecondsAfterFinished: 2592001\n");
        assert!(e.message.contains("at most 2592000"), "{e}");
    }

    #[test]
    fn execution_names() {
        let e = one_error("    mode: job\n    priorityClassName: High_Priority\n");
        assert_eq!(e.field, "spec.execution.priorityClassName");
        assert!(
            e.message.contains("holds 'H'") && e.message.contains("PriorityClass"),
            "{e}"
        );
        let e = one_error("    mode: job\n    serviceAccountName: team-a-\n");
        assert_eq!(e.field, "spec.execution.serviceAccountName");
        assert!(
            e.message.contains("start and end") && e.message.contains("runner"),
            "{e}"
        );
    }

    #[test]
    fn execution_node_selector_labels() {
        let e = one_error("    nodeSelector: {\"bad key\": x}\n");
        assert_eq!(e.field, "spec.execution.nodeSelector.bad key");
        assert!(e.message.contains("key \"bad key\" holds ' '"), "{e}");
        let e = one_error("    nodeSelector: {Example.COM/arch: x}\n");
        assert!(e.message.contains("prefix \"Example.COM\""), "{e}");
        let e = one_error("    nodeSelector: {pool: \"-kafka\"}\n");
        assert_eq!(e.field, "spec.execution.nodeSelector.pool");
        assert!(
            e.message.contains("value \"-kafka\" must start and end"),
            "{e}"
        );
        assert!(label_key_problem(&format!("a/{}", "x".repeat(64))).is_some());
        assert!(label_key_problem("kubernetes.io/arch").is_none());
        assert!(label_key_problem("/arch").is_some());
        assert!(label_value_problem("").is_none());
    }

    #[test]
    fn execution_in_restore_and_validation() {
        let kr: KafkaRestore = serde_yaml_ng::from_str(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaRestore\nmetadata: {name: r}\nspec:\n  \
             backupRef: {name: b}\n  kafkaCluster: {bootstrapServers: [\"kafka:9092\"]}\n  \
             execution: {shards: 2}\n",
        )
        .unwrap();
        let e = validate_restore(&kr).unwrap_err();
        assert!(e.has_field("spec.execution.shards"), "{e}");
        let kbv: KafkaBackupValidation = serde_yaml_ng::from_str(
            "apiVersion: kafka.oso.sh/v1alpha1\nkind: KafkaBackupValidation\nmetadata: {name: v}\n\
             spec:\n  backupRef: {name: b}\n  execution: {mode: job, backoffLimit: 99}\n",
        )
        .unwrap();
        let e = validate_backup_validation(&kbv).unwrap_err();
        assert!(e.has_field("spec.execution.backoffLimit"), "{e}");
        let mut kr = kr;
        kr.spec.execution.mode = ExecutionMode::Job;
        let v = validate_restore(&kr).unwrap();
        assert_eq!(v.execution.shards, 2);
        assert_eq!(v.execution.mode, ExecutionMode::Job);
    }

    #[test]
    fn has_field_matches_prefixes_only_at_boundaries() {
        let mut e = ValidationErrors::new();
        e.push("spec.pitr.endTime", "x");
        assert!(e.has_field("spec.pitr"));
        assert!(e.has_field("spec.pitr.endTime"));
        assert!(!e.has_field("spec.pit"));
        assert_eq!(e.to_string(), "spec.pitr.endTime: x");
    }
}
