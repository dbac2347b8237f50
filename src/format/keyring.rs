//! The key-encryption key (KEK) of an encrypted repository and the run data keys it wraps
//! (docs/security.md, docs/format.md "Encryption"): reads and writes the key documents
//! `<backup>/keys/<runId>.json`, unwraps data keys (a Secret's AES-256 key, or AWS KMS
//! Decrypt), and seals and opens manifests. The cryptography is `format::seal`'s.
//!
//! Errors are [`StorageError::Config`] when a key is missing or refused (they name the key
//! id, the Secret or the KMS key, and the fix; never a key byte), [`StorageError::NotFound`]
//! for a run whose key document is gone (crypto-shredded or lost), and
//! [`FormatError::Corrupt`] for a changed key document or manifest.
use std::collections::BTreeMap;
use std::sync::Arc;

use opendal::Operator;
use zeroize::Zeroizing;

use super::FormatError;
use super::layout;
use super::manifest::{GroupSnapshot, RunManifest, RunSeal, to_json};
use super::seal::{self, DataKey, KekRef, KeyDocument, RunKeys};
use crate::storage::kms::KmsClient;
use crate::storage::{self, StorageError};

/// Where the KEK comes from (`storage.encryption`).
pub enum Kek {
    /// `keySecret` + `activeKeyId`: every data key of the Secret is a 32-byte AES-256 KEK
    /// named by its key id.
    Secret {
        secret: String,
        active: String,
        keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
    },
    /// `awsKms`.
    Kms(KmsClient),
}

/// A repository's KEK and a cache of the run data keys unwrapped so far.
pub struct Keyring {
    kek: Kek,
    cache: std::sync::Mutex<BTreeMap<(String, String), Arc<DataKey>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({})", self.active())
    }
}

fn config(m: String) -> StorageError {
    StorageError::Config(m)
}

/// A KMS failure as a storage error: a temporary one (throttling, 5xx, a timeout) stays
/// temporary, so the run is retried; others are configuration errors. `what` prefixes it.
fn kms_error(what: &str, e: crate::storage::kms::KmsError) -> StorageError {
    if e.is_transient() {
        let msg = format!("{what}{e}");
        StorageError::Backend {
            op: "kms",
            path: e.key_id().to_string(),
            source: Box::new(
                opendal::Error::new(opendal::ErrorKind::Unexpected, msg.clone()).set_temporary(),
            ),
            detail: msg,
            hint: String::new(),
        }
    } else {
        config(format!("{what}{e}"))
    }
}

/// The KMS encryption context of run `run` of backup `backup` (docs/security.md).
pub fn kms_context(backup: &str, run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kbo:backup".to_string(), backup.to_string()),
        ("kbo:run".to_string(), run.to_string()),
    ])
}

impl Keyring {
    /// A keyring of Secret `secret`'s data (`key id -> bytes`), encrypting with `active`.
    ///
    /// Errors (naming `field`, the key id, never a value): a value that is not 32 bytes, an
    /// `active` key id the Secret does not hold.
    pub fn from_secret(
        field: &str,
        secret: &str,
        active: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Keyring, StorageError> {
        let mut keys = BTreeMap::new();
        for (id, v) in data {
            let mut k = Zeroizing::new([0u8; 32]);
            if v.len() != 32 {
                return Err(config(format!(
                    "{field}.keySecret: key {id:?} of Secret {secret:?} is {} bytes; each key must be 32 random bytes (e.g. `head -c 32 /dev/urandom > {id}` and `kubectl create secret generic {secret} --from-file={id}`)",
                    v.len()
                )));
            }
            k.copy_from_slice(v);
            keys.insert(id.clone(), k);
        }
        if !keys.contains_key(active) {
            return Err(config(format!(
                "{field}.activeKeyId: Secret {secret:?} has no key {active:?} (it has {:?}): add it, or name one of those",
                keys.keys().collect::<Vec<_>>()
            )));
        }
        Ok(Keyring {
            kek: Kek::Secret {
                secret: secret.into(),
                active: active.into(),
                keys,
            },
            cache: Default::default(),
        })
    }

    /// A keyring whose KEK is a KMS key.
    pub fn from_kms(client: KmsClient) -> Keyring {
        Keyring {
            kek: Kek::Kms(client),
            cache: Default::default(),
        }
    }

    /// The KEK that wraps new data keys.
    pub fn active(&self) -> KekRef {
        match &self.kek {
            Kek::Secret { secret, active, .. } => KekRef::Secret {
                secret: secret.clone(),
                key_id: active.clone(),
            },
            Kek::Kms(c) => KekRef::AwsKms {
                key_id: c.key_id().to_string(),
            },
        }
    }

    fn cached(&self, backup: &str, run: &str) -> Option<Arc<DataKey>> {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&(backup.to_string(), run.to_string())).cloned()
    }

    fn remember(&self, backup: &str, run: &str, k: DataKey) -> Arc<DataKey> {
        let k = Arc::new(k);
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.insert((backup.to_string(), run.to_string()), k.clone());
        k
    }

    /// Wraps `dek` for run `run` of `backup` under the active KEK.
    async fn wrap(
        &self,
        backup: &str,
        run: &str,
        dek: &DataKey,
    ) -> Result<(KekRef, String), StorageError> {
        use base64::Engine;
        match &self.kek {
            Kek::Secret { keys, active, .. } => {
                let aad = seal::wrap_aad(backup, run, active);
                Ok((self.active(), seal::wrap_with_kek(&keys[active], dek, &aad)))
            }
            Kek::Kms(c) => {
                let blob = c
                    .encrypt(dek.bytes(), &kms_context(backup, run))
                    .await
                    .map_err(|e| kms_error("", e))?;
                Ok((
                    self.active(),
                    base64::engine::general_purpose::STANDARD.encode(blob),
                ))
            }
        }
    }

    /// The data key of run `run` for writing: the run's key document if an earlier attempt
    /// wrote it (a resumed run), else a fresh key (KMS: GenerateDataKey), wrapped and written
    /// before any data it encrypts.
    ///
    /// `resumed_sealed`: the run resumes with segments its earlier attempt encrypted; their
    /// key document must then exist (a fresh key could not read them).
    pub async fn data_key_for_writing(
        &self,
        op: &Operator,
        backup: &str,
        run: &str,
        now_ms: i64,
        resumed_sealed: bool,
    ) -> Result<Arc<DataKey>, StorageError> {
        let path = layout::run_keys(backup, run);
        if resumed_sealed {
            return self.data_key(op, backup, run).await;
        }
        if let Some(doc) = Self::read_doc_opt(op, backup, run).await? {
            let dek = self.unwrap_doc(&doc).await?;
            return Ok(self.remember(backup, run, dek));
        }
        let (dek, wrapped) = match &self.kek {
            Kek::Kms(c) => {
                use base64::Engine;
                let (plain, blob) = c
                    .generate_data_key(&kms_context(backup, run))
                    .await
                    .map_err(|e| kms_error("", e))?;
                (
                    DataKey::from_bytes(plain),
                    (
                        self.active(),
                        base64::engine::general_purpose::STANDARD.encode(blob),
                    ),
                )
            }
            Kek::Secret { .. } => {
                let dek = DataKey::generate();
                let w = self.wrap(backup, run, &dek).await?;
                (dek, w)
            }
        };
        let doc = KeyDocument {
            format: layout::FORMAT_V3.into(),
            backup_name: backup.into(),
            run_id: run.into(),
            cipher: seal::CIPHER.into(),
            kek: wrapped.0,
            wrapped_key: wrapped.1,
            wrapped_at: now_ms,
        };
        storage::write_all(op, &path, to_json(&doc)).await?;
        Ok(self.remember(backup, run, dek))
    }

    /// Reads run `run`'s key document (checked: format, checksum, backup and run), if any.
    async fn read_doc_opt(
        op: &Operator,
        backup: &str,
        run: &str,
    ) -> Result<Option<KeyDocument>, StorageError> {
        let path = layout::run_keys(backup, run);
        let Some(bytes) = storage::read_opt(op, &path).await? else {
            return Ok(None);
        };
        let doc = seal::parse_key_doc(&bytes, &path)?;
        if doc.backup_name != backup || doc.run_id != run {
            return Err(FormatError::Corrupt(format!(
                "{path}: the key document names backup {:?} run {}, not this run",
                doc.backup_name, doc.run_id
            ))
            .into());
        }
        Ok(Some(doc))
    }

    /// Reads run `run`'s key document (checked: format, checksum, backup and run).
    pub async fn read_doc(
        op: &Operator,
        backup: &str,
        run: &str,
    ) -> Result<KeyDocument, StorageError> {
        Self::read_doc_opt(op, backup, run).await?.ok_or_else(|| {
            StorageError::NotFound(format!(
                "run {run} of backup {backup:?} has no key document ({}): its data key was destroyed (crypto-shredded) or lost, so its records cannot be decrypted; restore another run, or restore the key document from a copy",
                layout::run_keys(backup, run)
            ))
        })
    }

    /// The data key of run `run` of `backup` (cached after the first unwrap). Errors name
    /// the key id and the Secret (or the KMS key) when the KEK that wrapped it is not at hand.
    pub async fn data_key(
        &self,
        op: &Operator,
        backup: &str,
        run: &str,
    ) -> Result<Arc<DataKey>, StorageError> {
        if let Some(k) = self.cached(backup, run) {
            return Ok(k);
        }
        let doc = Self::read_doc(op, backup, run).await?;
        let dek = self.unwrap_doc(&doc).await?;
        Ok(self.remember(backup, run, dek))
    }

    async fn unwrap_doc(&self, doc: &KeyDocument) -> Result<DataKey, StorageError> {
        use base64::Engine;
        let (backup, run) = (&doc.backup_name, &doc.run_id);
        match (&self.kek, &doc.kek) {
            (Kek::Secret { secret, keys, .. }, KekRef::Secret { key_id, .. }) => {
                let Some(kek) = keys.get(key_id) else {
                    return Err(config(format!(
                        "run {run} of backup {backup:?} is encrypted under key id {key_id:?}, which Secret {secret:?} (storage.encryption.keySecret) does not hold (it has {:?}): add that key back to the Secret to read this run",
                        keys.keys().collect::<Vec<_>>()
                    )));
                };
                seal::unwrap_with_kek(kek, &doc.wrapped_key, &seal::wrap_aad(backup, run, key_id))
                    .ok_or_else(|| {
                        config(format!(
                            "run {run} of backup {backup:?}: key id {key_id:?} of Secret {secret:?} does not unwrap the run's data key (the key's bytes changed, or the key document was altered)"
                        ))
                    })
            }
            (Kek::Kms(c), KekRef::AwsKms { key_id }) => {
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(&doc.wrapped_key)
                    .map_err(|_| {
                        FormatError::Corrupt(format!(
                            "{}: wrappedKey is not base64",
                            layout::run_keys(backup, run)
                        ))
                    })?;
                if key_id != c.key_id() {
                    tracing::debug!(stored = %key_id, configured = %c.key_id(), "the run's data key names another KMS key id form; KMS decides");
                }
                let plain = c
                    .decrypt(&blob, &kms_context(backup, run))
                    .await
                    .map_err(|e| {
                        kms_error(
                            &format!(
                                "run {run} of backup {backup:?} (data key wrapped by KMS key {key_id:?}): "
                            ),
                            e,
                        )
                    })?;
                Ok(DataKey::from_bytes(plain))
            }
            (_, stored) => Err(config(format!(
                "run {run} of backup {backup:?} is encrypted under {stored}, but storage.encryption names {}: configure the key-encryption key the run was written with",
                self.active()
            ))),
        }
    }

    /// The data keys of every run in `runs` (deduplicated), all unwrapped before a read
    /// begins: a missing key fails here, before anything is written.
    pub async fn run_keys<'a>(
        &self,
        op: &Operator,
        backup: &str,
        runs: impl IntoIterator<Item = &'a str>,
    ) -> Result<RunKeys, StorageError> {
        let mut out = RunKeys::default();
        let wanted: std::collections::BTreeSet<String> =
            runs.into_iter().map(str::to_string).collect();
        for run in &wanted {
            out.insert(run, self.data_key(op, backup, run).await?);
        }
        Ok(out)
    }

    /// Re-wraps run `run`'s data key under the active KEK (rotation without rewriting data).
    /// Returns false when it already is.
    pub async fn rewrap(
        &self,
        op: &Operator,
        backup: &str,
        run: &str,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let doc = Self::read_doc(op, backup, run).await?;
        if doc.kek == self.active() {
            return Ok(false);
        }
        let dek = self.unwrap_doc(&doc).await?;
        let (kek, wrapped_key) = self.wrap(backup, run, &dek).await?;
        let new = KeyDocument {
            kek,
            wrapped_key,
            wrapped_at: now_ms,
            ..doc
        };
        storage::write_all(op, &layout::run_keys(backup, run), to_json(&new)).await?;
        Ok(true)
    }
}

/// Seals manifest `m` of a run written with data key `dek` under `kek`: its consumer-group
/// snapshot is encrypted (the manifest's `consumerGroups` left empty), and `seal.mac`
/// authenticates every other field.
pub fn seal_manifest(dek: &DataKey, kek: &KekRef, m: &mut RunManifest) {
    let groups = std::mem::take(&mut m.consumer_groups);
    let aad = format!("{}/{}", m.backup_name, m.run_id);
    let sealed = (!groups.is_empty()).then(|| {
        seal::seal_groups(
            dek,
            &aad,
            &serde_json::to_vec(&groups).expect("groups serialise"),
        )
    });
    m.format = layout::FORMAT_V3.into();
    m.seal = Some(RunSeal {
        cipher: seal::CIPHER.into(),
        kek: kek.to_string(),
        consumer_groups: sealed,
        mac: String::new(),
    });
    let v = serde_json::to_value(&*m).expect("manifests serialise");
    let mac = seal::manifest_mac(dek, &v);
    if let Some(s) = m.seal.as_mut() {
        s.mac = mac;
    }
}

/// Checks an encrypted manifest with its run's data key and opens its consumer-group
/// snapshot in place. Every segment it lists must be encrypted too.
pub fn open_manifest(dek: &DataKey, m: &mut RunManifest, what: &str) -> Result<(), FormatError> {
    let v = serde_json::to_value(&*m).expect("manifests serialise");
    seal::verify_manifest_mac(dek, &v, what)?;
    for t in &m.topics {
        for p in &t.partitions {
            if let Some(s) = p.segments.iter().find(|s| s.seal.is_none()) {
                return Err(FormatError::Corrupt(format!(
                    "{what}: the run is encrypted but lists plaintext segment {}",
                    s.path
                )));
            }
        }
    }
    let aad = format!("{}/{}", m.backup_name, m.run_id);
    if let Some(sealed) = m.seal.as_ref().and_then(|s| s.consumer_groups.clone()) {
        let plain = seal::open_groups(dek, &aad, &sealed, what)?;
        let groups: Vec<GroupSnapshot> = serde_json::from_slice(&plain)
            .map_err(|e| FormatError::Corrupt(format!("{what}: sealed groups: {e}")))?;
        m.consumer_groups = groups;
    }
    Ok(())
}
