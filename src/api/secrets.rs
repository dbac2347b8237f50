//! [`Secrets`]: Secret values for runs outside a cluster, read from `kind: Secret` documents.
//!
//! In a cluster the controller reads Secrets through the API and can fill a [`Secrets`] with
//! [`Secrets::insert`], so the code that resolves `...Secret` references is the same in both
//! places.

use std::collections::BTreeMap;

use super::common::{KafkaClusterSpec, StorageSpec};
use super::docs::{Document, load_documents};
use super::error::ApiError;

/// Secret data keyed by (namespace, name). A Secret loaded without a namespace matches lookups
/// in any namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    map: BTreeMap<(Option<String>, String), BTreeMap<String, Vec<u8>>>,
}

impl Secrets {
    /// No Secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a Secret.
    pub fn insert(&mut self, namespace: Option<&str>, name: &str, data: BTreeMap<String, Vec<u8>>) {
        self.map
            .insert((namespace.map(str::to_string), name.to_string()), data);
    }

    /// Collect the `Secret` documents among `docs` (others are ignored).
    pub fn from_documents<'a>(docs: impl IntoIterator<Item = &'a Document>) -> Self {
        let mut s = Secrets::new();
        for d in docs {
            if let Document::Secret {
                name,
                namespace,
                data,
            } = d
            {
                s.insert(namespace.as_deref(), name, data.clone());
            }
        }
        s
    }

    /// Parse `yaml` with [`load_documents`] and keep its Secrets (other kinds are ignored but
    /// must still parse). `source` labels errors.
    pub fn from_yaml(yaml: &str, source: &str) -> Result<Self, ApiError> {
        Ok(Self::from_documents(&load_documents(yaml, source)?))
    }

    /// Number of Secrets.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Names of the known Secrets, as `name` or `namespace/name`, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map
            .keys()
            .map(|(ns, n)| match ns {
                Some(ns) => format!("{ns}/{n}"),
                None => n.clone(),
            })
            .collect()
    }

    fn find(&self, namespace: Option<&str>, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        let exact = self
            .map
            .get(&(namespace.map(str::to_string), name.to_string()));
        let fallback = || {
            if namespace.is_some() {
                // A Secret given without a namespace serves every namespace.
                self.map.get(&(None, name.to_string()))
            } else {
                // No namespace asked for: any Secret of that name.
                self.map
                    .iter()
                    .find(|((_, n), _)| n == name)
                    .map(|(_, d)| d)
            }
        };
        exact.or_else(fallback)
    }

    /// The value of `key` in Secret `name` (any namespace; use [`Secrets::get_in`] to pin one).
    ///
    /// Errors: [`ApiError::SecretNotFound`] listing the known Secrets, or
    /// [`ApiError::SecretKeyMissing`] listing the Secret's keys; both say how to fix it.
    pub fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, ApiError> {
        self.get_in(None, name, key)
    }

    /// Like [`Secrets::get`], looking in `namespace` first, then at Secrets given without a
    /// namespace.
    pub fn get_in(
        &self,
        namespace: Option<&str>,
        name: &str,
        key: &str,
    ) -> Result<Vec<u8>, ApiError> {
        let data = self
            .find(namespace, name)
            .ok_or_else(|| ApiError::SecretNotFound {
                name: name.to_string(),
                namespace: namespace.map(str::to_string),
                known: self.names(),
            })?;
        data.get(key)
            .cloned()
            .ok_or_else(|| ApiError::SecretKeyMissing {
                secret: name.to_string(),
                key: key.to_string(),
                available: data.keys().cloned().collect(),
            })
    }

    /// Every key and value of Secret `name` (any namespace). Error
    /// [`ApiError::SecretNotFound`] listing the known Secrets.
    pub fn data(&self, name: &str) -> Result<&BTreeMap<String, Vec<u8>>, ApiError> {
        self.find(None, name)
            .ok_or_else(|| ApiError::SecretNotFound {
                name: name.to_string(),
                namespace: None,
                known: self.names(),
            })
    }

    /// [`Secrets::get`] as UTF-8 text, trailing newline (`\n` or `\r\n`) removed (files made
    /// with `echo` usually have one). Error [`ApiError::SecretNotUtf8`] otherwise.
    pub fn get_string(&self, name: &str, key: &str) -> Result<String, ApiError> {
        let bytes = self.get(name, key)?;
        let mut s = String::from_utf8(bytes).map_err(|_| ApiError::SecretNotUtf8 {
            secret: name.to_string(),
            key: key.to_string(),
        })?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        Ok(s)
    }
}

/// Names of every Secret (of the resource's namespace) `cluster` and `storage` refer to (storage credentials and
/// `storage.encryption`'s key-encryption key or KMS credentials included), sorted, once each.
pub fn referenced(cluster: &KafkaClusterSpec, storage: Option<&StorageSpec>) -> Vec<String> {
    let mut names = Vec::new();
    names.extend(cluster.tls_secret.as_ref().map(|s| s.name.clone()));
    names.extend(cluster.ca_secret.as_ref().map(|s| s.name.clone()));
    names.extend(cluster.sasl_secret.as_ref().map(|s| s.name.clone()));
    if let Some(st) = storage {
        names.extend(
            st.s3
                .as_ref()
                .and_then(|s| s.credentials_secret.as_ref())
                .map(|s| s.name.clone()),
        );
        if let Some(a) = &st.azure {
            names.extend(a.credentials_secret.as_ref().map(|s| s.name.clone()));
            names.extend(a.sas_token_secret.as_ref().map(|s| s.name.clone()));
            names.extend(a.service_principal_secret.as_ref().map(|s| s.name.clone()));
        }
        names.extend(
            st.gcs
                .as_ref()
                .and_then(|g| g.credentials_secret.as_ref())
                .map(|s| s.name.clone()),
        );
        // storage.encryption: the key-encryption key's Secret, or the KMS client's key pair
        if let Some(e) = &st.encryption {
            names.extend(e.key_secret.as_ref().map(|s| s.name.clone()));
            names.extend(
                e.aws_kms
                    .as_ref()
                    .and_then(|k| k.credentials_secret.as_ref())
                    .map(|s| s.name.clone()),
            );
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: s3-credentials
type: Opaque
data:
  AWS_ACCESS_KEY_ID: QUtJQUVYQU1QTEU=
  AWS_SECRET_ACCESS_KEY: c2VjcmV0
---
apiVersion: v1
kind: Secret
metadata:
  name: kafka-sasl
  namespace: kafka
stringData:
  username: alice
  password: "p@ss: word"
data:
  password: aWdub3JlZA==
"#;

    #[test]
    fn data_is_base64_decoded() {
        let s = Secrets::from_yaml(YAML, "secrets.yaml").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.get("s3-credentials", "AWS_ACCESS_KEY_ID").unwrap(),
            b"AKIAEXAMPLE"
        );
        assert_eq!(
            s.get_string("s3-credentials", "AWS_SECRET_ACCESS_KEY")
                .unwrap(),
            "secret"
        );
    }

    #[test]
    fn string_data_is_plain_and_wins_over_data() {
        let s = Secrets::from_yaml(YAML, "secrets.yaml").unwrap();
        assert_eq!(s.get_string("kafka-sasl", "username").unwrap(), "alice");
        assert_eq!(
            s.get_string("kafka-sasl", "password").unwrap(),
            "p@ss: word"
        );
        assert_eq!(
            s.get_in(Some("kafka"), "kafka-sasl", "username").unwrap(),
            b"alice"
        );
        // A Secret without namespace serves any namespace.
        assert!(
            s.get_in(Some("other"), "s3-credentials", "AWS_ACCESS_KEY_ID")
                .is_ok()
        );
        // A namespaced Secret does not serve another namespace.
        assert!(s.get_in(Some("other"), "kafka-sasl", "username").is_err());
    }

    #[test]
    fn missing_key_names_secret_key_and_fix() {
        let s = Secrets::from_yaml(YAML, "secrets.yaml").unwrap();
        let msg = s
            .get("s3-credentials", "AWS_SESSION_TOKEN")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"s3-credentials\""), "{msg}");
        assert!(msg.contains("\"AWS_SESSION_TOKEN\""), "{msg}");
        assert!(
            msg.contains("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
            "{msg}"
        );
        assert!(msg.contains("stringData"), "{msg}");
    }

    #[test]
    fn missing_secret_lists_known_and_says_how_to_create() {
        let s = Secrets::from_yaml(YAML, "secrets.yaml").unwrap();
        let msg = s
            .get("gcs-key", "SERVICE_ACCOUNT_JSON")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"gcs-key\" not found"), "{msg}");
        assert!(msg.contains("kafka/kafka-sasl"), "{msg}");
        assert!(
            msg.contains("kubectl create secret generic gcs-key"),
            "{msg}"
        );
        assert!(
            Secrets::new()
                .get("x", "y")
                .unwrap_err()
                .to_string()
                .contains("none")
        );
    }

    #[test]
    fn bad_base64_is_a_parse_error_with_hint() {
        let bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata:\n  k: '%%%'\n";
        let msg = Secrets::from_yaml(bad, "bad.yaml").unwrap_err().to_string();
        assert!(msg.contains("bad.yaml"), "{msg}");
        assert!(msg.contains("stringData"), "{msg}");
    }

    #[test]
    fn non_utf8_value() {
        let mut s = Secrets::new();
        s.insert(
            None,
            "bin",
            BTreeMap::from([("k".to_string(), vec![0xff, 0xfe])]),
        );
        assert!(matches!(
            s.get_string("bin", "k"),
            Err(ApiError::SecretNotUtf8 { .. })
        ));
        assert_eq!(s.get("bin", "k").unwrap(), vec![0xff, 0xfe]);
    }
}
