//! [`ApiError`]: errors of loading manifests and resolving Secrets. Every message names the file
//! (and line/column when known), the document and the field, and says how to fix it.

use super::validate::ValidationErrors;

/// Error of [`load_documents`](super::load_documents), [`Secrets`](super::Secrets) lookups and
/// [`Document::validate`](super::Document::validate).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The text is not valid YAML.
    #[error(
        "{source_name}: invalid YAML: {message}; fix the syntax at that position (YAML indents with spaces, not tabs; quote values containing ': ' or starting with '*', '&', '!' or '@')"
    )]
    Yaml {
        /// File name (or other label) the text came from.
        source_name: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message, including `at line L column C`.
        message: String,
    },

    /// A document is YAML but does not fit its kind (unknown field, missing field, wrong type,
    /// unknown enum value). Boxed to keep `ApiError` small.
    #[error("{0}")]
    Parse(Box<ParseError>),

    /// A document with an apiVersion/kind this crate does not read.
    #[error(
        "{source_name}: document {document}: apiVersion {api_version:?} kind {kind:?} is not supported; use apiVersion kafka.oso.sh/v1alpha1 with kind KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback or KafkaBackupValidation, or apiVersion v1 with kind Secret"
    )]
    UnknownKind {
        /// File name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// The document's apiVersion (empty when missing).
        api_version: String,
        /// The document's kind (empty when missing).
        kind: String,
    },

    /// A document parsed but failed validation.
    #[error("{}{kind} {} is invalid:\n{errors}", if source_name.is_empty() { String::new() } else { format!("{source_name}: ") }, if name.is_empty() { "(without metadata.name)".to_string() } else { format!("{name:?}") })]
    Invalid {
        /// File name the document came from (empty when not from a file).
        source_name: String,
        /// Kind of the resource.
        kind: String,
        /// `metadata.name` (empty when missing).
        name: String,
        /// The failures, one `field: message` per line.
        errors: ValidationErrors,
    },

    /// No Secret of that name was given.
    #[error("Secret {name:?}{} not found (known Secrets: {}); pass a file holding a `kind: Secret` document named {name:?} (e.g. `-f secrets.yaml`), or in a cluster create it: kubectl create secret generic {name} --from-literal=<key>=<value>", namespace.as_deref().map(|n| format!(" in namespace {n:?}")).unwrap_or_default(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    SecretNotFound {
        /// Secret name.
        name: String,
        /// Namespace asked for, if any.
        namespace: Option<String>,
        /// Names of the Secrets that are known.
        known: Vec<String>,
    },

    /// The Secret exists but lacks the key.
    #[error("Secret {secret:?} has no key {key:?} (its keys: {}); add {key:?} under the Secret's data (base64) or stringData, or set the resource's ...Key field to the key that holds the value", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    SecretKeyMissing {
        /// Secret name.
        secret: String,
        /// Missing key.
        key: String,
        /// Keys the Secret has.
        available: Vec<String>,
    },

    /// The Secret value is not UTF-8 where text is needed.
    #[error(
        "Secret {secret:?} key {key:?} is not UTF-8 text; store the value itself (e.g. under stringData), not a binary file"
    )]
    SecretNotUtf8 {
        /// Secret name.
        secret: String,
        /// Key.
        key: String,
    },
}

impl ApiError {
    /// [`ApiError::Invalid`] for a resource that was not read from a file (the operator's, or
    /// one built in code): `kind` and `name` (`metadata.name`, if any) head the message.
    pub fn invalid(kind: &str, name: Option<&str>, errors: ValidationErrors) -> ApiError {
        ApiError::Invalid {
            source_name: String::new(),
            kind: kind.to_string(),
            name: name.unwrap_or_default().to_string(),
            errors,
        }
    }
}

/// Details of [`ApiError::Parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File name the text came from.
    pub source_name: String,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name`, when readable.
    pub name: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// serde's message: the field path, what is wrong (naming the unknown/missing field or the
    /// accepted values) and `at line L column C`.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: document {} ({}",
            self.source_name, self.document, self.kind
        )?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        write!(f, "): {}; {}", self.message, self.hint)
    }
}
