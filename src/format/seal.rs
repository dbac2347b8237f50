//! Envelope encryption of a repository (format v3; docs/format.md, "Encryption"): the pure
//! part, no I/O. Every primitive is ring's (AES-256-GCM, HKDF-SHA256, HMAC-SHA256, the
//! system CSPRNG); this module only says which key, nonce and associated data each use gets.
//!
//! - A **data key** (32 random bytes) per backup run, wrapped by the key-encryption key (KEK)
//!   in the run's key document `<backup>/keys/<runId>.json` ([`KeyDocument`]).
//! - A **segment key** per segment object: HKDF-SHA256 of the run's data key with a fresh
//!   32-byte random salt (recorded in the segment's manifest entry and index), info
//!   `kbo segment v1` (the construction of Tink's AES-GCM-HKDF streaming AEAD, RFC 5869).
//! - Each **block** payload (after outer compression) is sealed with AES-256-GCM under the
//!   segment key; nonce = 4 zero bytes ‖ the block's byte position in the object (u64,
//!   big-endian), unique within the object, and a segment key is never used for another
//!   object; associated data = the block header's first 16 bytes (magic, codec, flags, lengths).
//! - The **manifest** is authenticated with HMAC-SHA256 under HKDF(data key, `kbo manifest
//!   mac v1`), and its consumer-group snapshot is sealed under HKDF(data key, `kbo consumer
//!   groups v1`) with a random nonce.
//!
//! Key material lives in [`zeroize::Zeroizing`] buffers and is wiped when dropped; ring's own
//! expanded keys are opaque (ring does not expose them to be wiped).
use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::FormatError;
use super::manifest::SegmentRef;

/// The cipher name recorded in manifests and key documents.
pub const CIPHER: &str = "AES-256-GCM";
/// Bytes of the AES-GCM tag appended to every sealed payload.
pub const TAG_LEN: usize = 16;
/// Bytes of a segment's HKDF salt.
pub const SALT_LEN: usize = 32;
/// Block header flag (byte 5): the payload is sealed.
pub const FLAG_SEALED: u8 = 0x01;

const INFO_SEGMENT: &[u8] = b"kbo segment v1";
const INFO_MAC: &[u8] = b"kbo manifest mac v1";
const INFO_GROUPS: &[u8] = b"kbo consumer groups v1";

fn rng_fill(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random number generator failed");
}

/// A run's data key: 32 bytes, wiped on drop. Debug prints nothing of it.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// 32 fresh bytes from the system CSPRNG.
    pub fn generate() -> DataKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rng_fill(&mut k[..]);
        DataKey(k)
    }

    /// A data key from its 32 bytes (KMS Decrypt's plaintext, an unwrapped key).
    pub fn from_bytes(k: Zeroizing<[u8; 32]>) -> DataKey {
        DataKey(k)
    }

    /// The key bytes (to wrap them).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn prk(&self, salt: &[u8]) -> hkdf::Prk {
        hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.0[..])
    }

    /// The AES-256-GCM key of the segment whose salt is `salt`.
    pub fn segment_key(&self, salt: &[u8]) -> SegmentKey {
        SegmentKey(aead_key(&self.prk(salt), INFO_SEGMENT))
    }

    fn mac_key(&self) -> hmac::Key {
        let prk = self.prk(&[]);
        let okm = prk
            .expand(&[INFO_MAC], hmac::HMAC_SHA256)
            .expect("HKDF output of one hash length");
        hmac::Key::from(okm)
    }
}

fn aead_key(prk: &hkdf::Prk, info: &[u8]) -> LessSafeKey {
    let info = [info];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .expect("HKDF output of 32 bytes");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// A fresh random segment salt, hex (as `SegmentSeal.salt` records it).
pub fn new_salt() -> String {
    let mut s = [0u8; SALT_LEN];
    rng_fill(&mut s);
    hex::encode(s)
}

/// Decodes a segment salt recorded as hex. Errors name `what` (the segment).
pub fn parse_salt(hex_salt: &str, what: &str) -> Result<Vec<u8>, FormatError> {
    match hex::decode(hex_salt) {
        Ok(s) if s.len() == SALT_LEN => Ok(s),
        _ => Err(FormatError::Corrupt(format!(
            "{what}: its encryption salt is not {SALT_LEN} bytes of hex"
        ))),
    }
}

/// The AES-256-GCM key of one segment object.
pub struct SegmentKey(LessSafeKey);

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentKey(..)")
    }
}

fn block_nonce(pos: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pos.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl SegmentKey {
    /// Seals the payload of the block at byte `pos` in place, appending the 16-byte tag.
    /// `header16`: the block header's first 16 bytes, with `stored_len` already the sealed
    /// length (payload + tag).
    pub fn seal_block(&self, pos: u64, header16: &[u8], payload: &mut Vec<u8>) {
        self.0
            .seal_in_place_append_tag(block_nonce(pos), Aad::from(header16), payload)
            .expect("a block payload is far below AES-GCM's length limit");
    }

    /// Opens a sealed block payload (ciphertext and tag) read from byte `pos`; returns the
    /// plaintext. Errors: [`FormatError::Corrupt`] naming `what` and the position when the
    /// tag does not verify (the bytes were changed, or another key sealed them).
    pub fn open_block(
        &self,
        pos: u64,
        header16: &[u8],
        sealed: &[u8],
        what: &str,
    ) -> Result<Vec<u8>, FormatError> {
        let mut buf = sealed.to_vec();
        let n = self
            .0
            .open_in_place(block_nonce(pos), Aad::from(header16), &mut buf)
            .map_err(|_| {
                FormatError::Corrupt(format!(
                    "{what}: the encrypted block at byte {pos} does not authenticate (AES-GCM tag mismatch): it was changed, or it was sealed by another key; restore the object from a copy or use another run"
                ))
            })?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

/// The HMAC-SHA256 (hex) of a manifest's canonical form: compact JSON of `manifest` with
/// `checksum` null and `seal.mac` empty.
pub fn manifest_mac(key: &DataKey, manifest: &serde_json::Value) -> String {
    hex::encode(hmac::sign(&key.mac_key(), &mac_input(manifest)).as_ref())
}

/// What a manifest's MAC covers: compact JSON, `checksum` null, `seal.mac` empty.
fn mac_input(manifest: &serde_json::Value) -> Vec<u8> {
    let mut v = manifest.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("checksum".into(), serde_json::Value::Null);
    }
    if let Some(s) = v.get_mut("seal").and_then(|s| s.as_object_mut()) {
        s.insert("mac".into(), serde_json::Value::String(String::new()));
    }
    serde_json::to_vec(&v).expect("JSON values always serialise")
}

/// Checks a manifest's MAC ([`manifest_mac`]) in constant time. Errors name `what`.
pub fn verify_manifest_mac(
    key: &DataKey,
    manifest: &serde_json::Value,
    what: &str,
) -> Result<(), FormatError> {
    let stored = manifest
        .get("seal")
        .and_then(|s| s.get("mac"))
        .and_then(|m| m.as_str())
        .and_then(|m| hex::decode(m).ok())
        .unwrap_or_default();
    hmac::verify(&key.mac_key(), &mac_input(manifest), &stored).map_err(|_| {
        FormatError::Corrupt(format!(
            "{what}: its authentication code (HMAC-SHA256 under the run's data key) does not match: the manifest was changed after it was written; restore it from a copy or use another run"
        ))
    })
}

/// Seals `plain` under `key` with a fresh random nonce: base64 of nonce (12 bytes) ‖
/// ciphertext ‖ tag, associated data `aad`.
fn seal_random_nonce(key: &LessSafeKey, aad: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    rng_fill(&mut nonce);
    let mut buf = Zeroizing::new(plain.to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut *buf,
    )
    .expect("far below AES-GCM's length limit");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Opens what [`seal_random_nonce`] sealed; `None` when it does not decode or authenticate.
/// The plaintext is in a buffer wiped when dropped.
fn open_random_nonce(key: &LessSafeKey, aad: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    if raw.len() < 12 + TAG_LEN {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let mut buf = Zeroizing::new(ct.to_vec());
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let n = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf[..])
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

/// Seals `plain` (a consumer-group snapshot's JSON) under the run's groups key: base64 of
/// nonce (12 random bytes) ‖ ciphertext ‖ tag; associated data `aad` (backup and run).
pub fn seal_groups(key: &DataKey, aad: &str, plain: &[u8]) -> String {
    seal_random_nonce(&aead_key(&key.prk(&[]), INFO_GROUPS), aad, plain)
}

/// Opens what [`seal_groups`] sealed. Errors name `what`.
pub fn open_groups(
    key: &DataKey,
    aad: &str,
    sealed: &str,
    what: &str,
) -> Result<Vec<u8>, FormatError> {
    open_random_nonce(&aead_key(&key.prk(&[]), INFO_GROUPS), aad, sealed)
        .map(|b| b.to_vec())
        .ok_or_else(|| {
            FormatError::Corrupt(format!(
                "{what}: the sealed consumer-group snapshot does not authenticate: it was changed or belongs to another run"
            ))
        })
}

/// The data keys of the runs a read needs, unwrapped ahead of it (a restore loads them all
/// before it writes anything). Empty for a plaintext repository.
#[derive(Default, Clone, Debug)]
pub struct RunKeys(std::collections::BTreeMap<String, std::sync::Arc<DataKey>>);

impl RunKeys {
    /// Adds run `run`'s data key.
    pub fn insert(&mut self, run: &str, key: std::sync::Arc<DataKey>) {
        self.0.insert(run.to_string(), key);
    }

    /// Run `run`'s data key, if loaded.
    pub fn get(&self, run: &str) -> Option<&std::sync::Arc<DataKey>> {
        self.0.get(run)
    }

    /// The key of segment `seg`: `None` for a plaintext segment. Errors:
    /// [`FormatError::Key`] when the segment is encrypted and its run's key is not loaded;
    /// [`FormatError::Corrupt`] for a salt that is not 32 bytes of hex.
    pub fn segment_key(&self, seg: &SegmentRef) -> Result<Option<SegmentKey>, FormatError> {
        let Some(s) = &seg.seal else {
            return Ok(None);
        };
        let salt = parse_salt(&s.salt, &seg.path)?;
        match self.0.get(&s.run) {
            Some(k) => Ok(Some(k.segment_key(&salt))),
            None => Err(FormatError::Key(format!(
                "{} is encrypted with the data key of run {}, which is not loaded: set storage.encryption to the backup's key (docs/security.md)",
                seg.path, s.run
            ))),
        }
    }
}

/// Who wrapped a run's data key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum KekRef {
    /// A 32-byte AES-256 key, data key `key_id` of Secret `secret`
    /// (`storage.encryption.keySecret`, `activeKeyId`).
    #[serde(rename_all = "camelCase")]
    Secret { secret: String, key_id: String },
    /// An AWS KMS key (`storage.encryption.awsKms.keyId`).
    #[serde(rename_all = "camelCase")]
    AwsKms { key_id: String },
}

impl std::fmt::Display for KekRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekRef::Secret { secret, key_id } => {
                write!(f, "key id {key_id:?} of Secret {secret:?}")
            }
            KekRef::AwsKms { key_id } => write!(f, "KMS key {key_id:?}"),
        }
    }
}

/// `<backup>/keys/<runId>.json`: a run's wrapped data key. Public data: without the KEK the
/// wrapped key is useless. Deleting it (and its copies) makes the run unreadable
/// (crypto-shredding; docs/security.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyDocument {
    /// `kafka-backup-operator/v3`.
    pub format: String,
    pub backup_name: String,
    pub run_id: String,
    /// [`CIPHER`].
    pub cipher: String,
    pub kek: KekRef,
    /// Base64. Secret KEK: nonce (12 random bytes) ‖ AES-256-GCM(KEK, data key) ‖ tag, with
    /// associated data [`wrap_aad`]. KMS: the CiphertextBlob of GenerateDataKey/Encrypt with
    /// encryption context `kbo:backup`, `kbo:run`.
    pub wrapped_key: String,
    /// Epoch ms of the (re-)wrapping.
    pub wrapped_at: i64,
}

/// Parses a key document named `what` (format tag, checksum, cipher): the pure part of
/// `keyring::Keyring::read_doc`, which then checks the backup and run it names.
///
/// Errors: [`FormatError::Corrupt`] for bytes that are not a key document (bad JSON, checksum
/// mismatch), [`FormatError::Version`] for another format tag or cipher.
pub fn parse_key_doc(bytes: &[u8], what: &str) -> Result<KeyDocument, FormatError> {
    let doc: KeyDocument = super::manifest::from_json(bytes, what)?;
    if doc.format != super::layout::FORMAT_V3 || doc.cipher != CIPHER {
        return Err(FormatError::Version(format!(
            "{what}: a key document of format {:?} with cipher {:?}; this build reads {} with {CIPHER}",
            doc.format,
            doc.cipher,
            super::layout::FORMAT_V3,
        )));
    }
    Ok(doc)
}

/// Associated data of a Secret-wrapped data key: binds it to its backup, run and key id, so a
/// key document moved to another run or relabelled does not unwrap.
pub fn wrap_aad(backup: &str, run: &str, key_id: &str) -> String {
    format!("kbo data key v1\0{backup}\0{run}\0{key_id}")
}

fn kek_key(kek: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, kek).expect("32-byte key"))
}

/// Wraps `dek` under a 32-byte KEK: base64 of nonce ‖ ciphertext ‖ tag.
pub fn wrap_with_kek(kek: &[u8; 32], dek: &DataKey, aad: &str) -> String {
    seal_random_nonce(&kek_key(kek), aad, dek.bytes())
}

/// Unwraps what [`wrap_with_kek`] wrapped. `None` when it does not authenticate (another
/// KEK, another run, or changed bytes).
pub fn unwrap_with_kek(kek: &[u8; 32], wrapped: &str, aad: &str) -> Option<DataKey> {
    let plain = open_random_nonce(&kek_key(kek), aad, wrapped)?;
    let mut key = Zeroizing::new([0u8; 32]);
    (plain.len() == 32).then(|| {
        key.copy_from_slice(&plain);
        DataKey(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_opens_only_at_its_position_with_its_header_and_key() {
        let dk = DataKey::generate();
        let salt = parse_salt(&new_salt(), "s").unwrap();
        let k = dk.segment_key(&salt);
        let head = b"KBLK\x04\x01\0\0\0\0\0\x20\0\0\0\x10";
        let mut p = b"sixteen bytes!!!".to_vec();
        k.seal_block(8, head, &mut p);
        assert_eq!(p.len(), 16 + TAG_LEN);
        assert!(!p.windows(7).any(|w| w == b"sixteen"));
        assert_eq!(k.open_block(8, head, &p, "s").unwrap(), b"sixteen bytes!!!");
        // another position, header, salt or data key: refused, naming the position
        let e = k.open_block(28, head, &p, "seg").unwrap_err().to_string();
        assert!(e.contains("seg: the encrypted block at byte 28"), "{e}");
        let mut h2 = *head;
        h2[4] = 3;
        assert!(k.open_block(8, &h2, &p, "s").is_err());
        let other = dk.segment_key(&parse_salt(&new_salt(), "s").unwrap());
        assert!(other.open_block(8, head, &p, "s").is_err());
        let mut flipped = p.clone();
        flipped[3] ^= 1;
        assert!(k.open_block(8, head, &flipped, "s").is_err());
    }

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_kek_and_binding() {
        let kek = [7u8; 32];
        let dk = DataKey::generate();
        let aad = wrap_aad("b", "r1", "k1");
        let w = wrap_with_kek(&kek, &dk, &aad);
        assert_eq!(unwrap_with_kek(&kek, &w, &aad).unwrap().bytes(), dk.bytes());
        assert!(unwrap_with_kek(&[8u8; 32], &w, &aad).is_none());
        assert!(unwrap_with_kek(&kek, &w, &wrap_aad("b", "r2", "k1")).is_none());
        assert!(unwrap_with_kek(&kek, "not base64!", &aad).is_none());
        assert!(!w.contains(&base64::engine::general_purpose::STANDARD.encode(dk.bytes())));
    }

    #[test]
    fn the_manifest_mac_covers_every_field_but_itself_and_the_checksum() {
        let dk = DataKey::generate();
        let mut v = serde_json::json!({"runId": "r1", "checksum": null, "seal": {"mac": ""}, "totalRecords": 5});
        let mac = manifest_mac(&dk, &v);
        v["seal"]["mac"] = serde_json::Value::String(mac);
        v["checksum"] = serde_json::Value::String("sha256:x".into());
        verify_manifest_mac(&dk, &v, "m").unwrap();
        let mut changed = v.clone();
        changed["totalRecords"] = 6.into();
        let e = verify_manifest_mac(&dk, &changed, "m").unwrap_err();
        assert!(e.to_string().contains("m: its authentication code"), "{e}");
        assert!(verify_manifest_mac(&DataKey::generate(), &v, "m").is_err());
    }

    #[test]
    fn sealed_groups_round_trip_and_bind_their_run() {
        let dk = DataKey::generate();
        let s = seal_groups(&dk, "b/r1", b"[{\"groupId\":\"g\"}]");
        assert_eq!(
            open_groups(&dk, "b/r1", &s, "m").unwrap(),
            b"[{\"groupId\":\"g\"}]"
        );
        assert!(open_groups(&dk, "b/r2", &s, "m").is_err());
        assert!(open_groups(&dk, "b/r1", "AAAA", "m").is_err());
    }
}
