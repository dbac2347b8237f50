//! Loading manifests: multi-document YAML -> typed [`Document`]s, dispatching on
//! `apiVersion`/`kind`.
//!
//! Used by the standalone `run`, the kubectl plugin's `plan -f`, and tests. Parsing is strict:
//! unknown fields and unknown enum values are errors that name the field and list the accepted
//! ones, with file name, document number, line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::API_VERSION;
use super::backup::KafkaBackup;
use super::error::{ApiError, ParseError};
use super::offset_reset::KafkaOffsetReset;
use super::offset_rollback::KafkaOffsetRollback;
use super::restore::KafkaRestore;
use super::validate::{self, ValidationErrors};
use super::validation::KafkaBackupValidation;

/// One document of a manifest file.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Document {
    /// `kind: KafkaBackup`.
    Backup(KafkaBackup),
    /// `kind: KafkaRestore`.
    Restore(KafkaRestore),
    /// `kind: KafkaOffsetReset`.
    OffsetReset(KafkaOffsetReset),
    /// `kind: KafkaOffsetRollback`.
    OffsetRollback(KafkaOffsetRollback),
    /// `kind: KafkaBackupValidation`.
    Validation(KafkaBackupValidation),
    /// `apiVersion: v1, kind: Secret`, with `data` base64-decoded and `stringData` merged over
    /// it (as the API server does).
    Secret {
        /// `metadata.name`.
        name: String,
        /// `metadata.namespace`, if given.
        namespace: Option<String>,
        /// Key -> raw bytes.
        data: BTreeMap<String, Vec<u8>>,
    },
}

impl Document {
    /// The document's kind, e.g. `"KafkaBackup"` or `"Secret"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Backup(_) => "KafkaBackup",
            Document::Restore(_) => "KafkaRestore",
            Document::OffsetReset(_) => "KafkaOffsetReset",
            Document::OffsetRollback(_) => "KafkaOffsetRollback",
            Document::Validation(_) => "KafkaBackupValidation",
            Document::Secret { .. } => "Secret",
        }
    }

    /// `metadata.name` (empty when missing; validation reports that).
    pub fn name(&self) -> &str {
        let meta = match self {
            Document::Backup(r) => &r.metadata,
            Document::Restore(r) => &r.metadata,
            Document::OffsetReset(r) => &r.metadata,
            Document::OffsetRollback(r) => &r.metadata,
            Document::Validation(r) => &r.metadata,
            Document::Secret { name, .. } => return name,
        };
        meta.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, if given.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Document::Backup(r) => r.metadata.namespace.as_deref(),
            Document::Restore(r) => r.metadata.namespace.as_deref(),
            Document::OffsetReset(r) => r.metadata.namespace.as_deref(),
            Document::OffsetRollback(r) => r.metadata.namespace.as_deref(),
            Document::Validation(r) => r.metadata.namespace.as_deref(),
            Document::Secret { namespace, .. } => namespace.as_deref(),
        }
    }

    /// Run the kind's validation (see [`validate`]); Secrets are always valid.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            Document::Backup(r) => validate::validate_backup(r).map(|_| ()),
            Document::Restore(r) => validate::validate_restore(r).map(|_| ()),
            Document::OffsetReset(r) => validate::validate_offset_reset(r),
            Document::OffsetRollback(r) => validate::validate_offset_rollback(r),
            Document::Validation(r) => validate::validate_backup_validation(r),
            Document::Secret { .. } => Ok(()),
        }
    }

    /// [`Document::validate`] wrapped as an [`ApiError::Invalid`] naming the source (file
    /// name, may be empty), kind and name.
    pub fn validated(self, source: &str) -> Result<Self, ApiError> {
        match self.validate() {
            Ok(()) => Ok(self),
            Err(errors) => Err(ApiError::Invalid {
                source_name: source.to_string(),
                kind: self.kind().to_string(),
                name: self.name().to_string(),
                errors,
            }),
        }
    }
}

/// Split `yaml` into documents (`---`) and parse each by `apiVersion`/`kind`. Empty documents
/// are skipped; a `kind: List` (as `kubectl get -o yaml` prints) contributes its items.
/// `source` labels errors (usually the file name).
///
/// Errors: a YAML syntax error ([`ApiError::Yaml`], with line and column); a document that does
/// not fit its kind ([`ApiError::Parse`]: serde's message names the unknown field and lists the
/// expected ones, or names the missing field, or lists the accepted enum values); an
/// unsupported apiVersion/kind ([`ApiError::UnknownKind`]). Does not validate: call
/// [`Document::validate`].
pub fn load_documents(yaml: &str, source: &str) -> Result<Vec<Document>, ApiError> {
    let mut out = Vec::new();
    // Two passes over the same stream: the first reads a generic Value to find apiVersion/kind,
    // the second deserializes the typed resource straight from the text so errors keep their
    // line/column and field path.
    let untyped = serde_yaml_ng::Deserializer::from_str(yaml);
    let mut typed = serde_yaml_ng::Deserializer::from_str(yaml);
    for (i, de) in untyped.enumerate() {
        let document = i + 1;
        let typed_de = typed.next();
        let value = Value::deserialize(de).map_err(|e| yaml_error(source, &e))?;
        if value.is_null() {
            continue;
        }
        let Some(typed_de) = typed_de else {
            // Cannot happen: both iterate the same text.
            return Err(ApiError::Yaml {
                source_name: source.to_string(),
                line: None,
                column: None,
                message: format!("document {document} could not be re-read"),
            });
        };
        let head = Head::of(&value, source, document)?;
        if head.api_version == "v1" && head.kind == "List" {
            let items = match value.get("items") {
                Some(Value::Sequence(items)) => items.clone(),
                _ => Vec::new(),
            };
            for item in items {
                let head = Head::of(&item, source, document)?;
                out.push(head.parse(source, document, Input::Value(item))?);
            }
            continue;
        }
        out.push(head.parse(source, document, Input::Text(typed_de))?);
    }
    Ok(out)
}

/// [`load_documents`] then [`Document::validate`] on each; the first invalid document is
/// returned as [`ApiError::Invalid`].
pub fn load_and_validate(yaml: &str, source: &str) -> Result<Vec<Document>, ApiError> {
    load_documents(yaml, source)?
        .into_iter()
        .map(|d| d.validated(source))
        .collect()
}

enum Input<'de> {
    Text(serde_yaml_ng::Deserializer<'de>),
    Value(Value),
}

impl Input<'_> {
    fn deserialize<T: DeserializeOwned>(self) -> Result<T, serde_yaml_ng::Error> {
        match self {
            Input::Text(de) => T::deserialize(de),
            Input::Value(v) => serde_yaml_ng::from_value(v),
        }
    }
}

struct Head {
    api_version: String,
    kind: String,
    name: Option<String>,
}

impl Head {
    fn of(value: &Value, source: &str, document: usize) -> Result<Head, ApiError> {
        if !value.is_mapping() {
            return Err(ApiError::Parse(Box::new(ParseError {
                source_name: source.to_string(),
                document,
                kind: "?".to_string(),
                name: None,
                line: None,
                column: None,
                message: "the document is not a mapping".to_string(),
                hint: "each document must be a Kubernetes object with apiVersion, kind, metadata \
                       and spec; check the indentation"
                    .to_string(),
            })));
        }
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        Ok(Head {
            api_version: s(value.get("apiVersion")).unwrap_or_default(),
            kind: s(value.get("kind")).unwrap_or_default(),
            name: s(value.get("metadata").and_then(|m| m.get("name"))),
        })
    }

    fn parse(&self, source: &str, document: usize, input: Input<'_>) -> Result<Document, ApiError> {
        let err = |e: serde_yaml_ng::Error| self.parse_error(source, document, &e);
        if self.api_version == API_VERSION {
            return Ok(match self.kind.as_str() {
                "KafkaBackup" => Document::Backup(input.deserialize().map_err(err)?),
                "KafkaRestore" => Document::Restore(input.deserialize().map_err(err)?),
                "KafkaOffsetReset" => Document::OffsetReset(input.deserialize().map_err(err)?),
                "KafkaOffsetRollback" => {
                    Document::OffsetRollback(input.deserialize().map_err(err)?)
                }
                "KafkaBackupValidation" => Document::Validation(input.deserialize().map_err(err)?),
                _ => return Err(self.unknown(source, document)),
            });
        }
        if self.api_version == "v1" && self.kind == "Secret" {
            let secret: k8s_openapi::api::core::v1::Secret = input.deserialize().map_err(err)?;
            let Some(name) = secret.metadata.name.filter(|n| !n.is_empty()) else {
                return Err(ApiError::Parse(Box::new(ParseError {
                    source_name: source.to_string(),
                    document,
                    kind: "Secret".to_string(),
                    name: None,
                    line: None,
                    column: None,
                    message: "metadata.name is missing".to_string(),
                    hint: "add `metadata: {name: <secret-name>}`".to_string(),
                })));
            };
            let mut data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in secret.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            return Ok(Document::Secret {
                name,
                namespace: secret.metadata.namespace,
                data,
            });
        }
        Err(self.unknown(source, document))
    }

    fn unknown(&self, source: &str, document: usize) -> ApiError {
        ApiError::UnknownKind {
            source_name: source.to_string(),
            document,
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
        }
    }

    fn parse_error(&self, source: &str, document: usize, e: &serde_yaml_ng::Error) -> ApiError {
        let message = e.to_string();
        let hint = if message.contains("unknown field") {
            "check the spelling (field names are camelCase) against the expected fields listed; \
             see crds.md or `kubectl explain`"
        } else if message.contains("missing field") {
            "add the required field at that path"
        } else if message.contains("unknown variant") {
            "use one of the listed values (they are case-sensitive)"
        } else if message.contains("invalid type") || message.contains("invalid value") {
            "check the value's type: lists need `- item` entries, numbers and booleans are unquoted, \
             epoch fields are integers in milliseconds"
        } else if self.kind == "Secret" && message.starts_with("data.") {
            "Secret `data` values must be base64; put plain text under stringData instead"
        } else {
            "fix the value at that position"
        };
        ApiError::Parse(Box::new(ParseError {
            source_name: source.to_string(),
            document,
            kind: self.kind.clone(),
            name: self.name.clone(),
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
            message,
            hint: hint.to_string(),
        }))
    }
}

fn yaml_error(source: &str, e: &serde_yaml_ng::Error) -> ApiError {
    ApiError::Yaml {
        source_name: source.to_string(),
        line: e.location().map(|l| l.line()),
        column: e.location().map(|l| l.column()),
        message: e.to_string(),
    }
}
