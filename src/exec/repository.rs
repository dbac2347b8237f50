//! The writers' side of the repository record (`format::repository`, docs/format.md,
//! "Repository identity and version"): a backup run and retention, holding the repository lock,
//! [`claim`] the repository before they write or delete anything. An absent record is created
//! for this owner; a record naming another owner refuses the writer, unless the writer adopts
//! the repository on purpose (annotation `kafka.oso.sh/adopt-repository: <current owner>`).
use opendal::Operator;

use super::ExecError;
use crate::format::layout::{self, FORMAT};
use crate::format::manifest::to_json;
use crate::format::repository::{ADOPT_ANNOTATION, Adoption, Owner, RepositoryRecord};
use crate::format::repository_io::{load_record, scan_legacy};
use crate::storage;

/// Where repository `backup` is, for messages: the store's scheme, bucket or directory, root
/// and the backup's directory (no credential is part of it).
pub fn location(op: &Operator, backup: &str) -> String {
    let info = op.info();
    let root = info.root();
    let root = root.trim_matches('/');
    let name = info.name();
    let mut at = format!("{}://{}", info.scheme(), name.trim_matches('/'));
    if !root.is_empty() && root != name.trim_matches('/') {
        at.push('/');
        at.push_str(root);
    }
    format!("{at}/{backup}/")
}

/// What a writer `owner` (adopting `adopt_from`, if set) may do with a repository whose record
/// is `rec`, at `location`: Ok(None) when it owns it, Ok(Some(adoption)) when it adopts it now,
/// Err(message naming both owners, the location and the fix) otherwise. Pure: the flow checks
/// it when planning, [`claim`] again under the lock.
pub fn check_owner(
    rec: &RepositoryRecord,
    owner: &Owner,
    adopt_from: Option<&Owner>,
    location: &str,
    now_ms: i64,
) -> Result<Option<Adoption>, String> {
    if &rec.owner == owner {
        return Ok(None);
    }
    if adopt_from == Some(&rec.owner) {
        return Ok(Some(Adoption {
            from: rec.owner.clone(),
            to: owner.clone(),
            at: now_ms,
        }));
    }
    let adopt_note = match adopt_from {
        Some(a) => {
            format!(" (annotation {ADOPT_ANNOTATION} says {a}, which is not the current owner)")
        }
        None => String::new(),
    };
    Err(format!(
        "the repository at {location} belongs to KafkaBackup {} (recorded in repository.json there), not to KafkaBackup {owner}{adopt_note}: object names do not hold the namespace, so two KafkaBackups of the same name pointed at the same storage would share runs and one's retention would delete the other's. Nothing was written. Give spec.storage.<type>.prefix (or path) a value of its own, or adopt the repository on purpose with annotation {ADOPT_ANNOTATION}: {}",
        rec.owner, rec.owner,
    ))
}

/// Claims repository `backup` for writer `owner` before it writes or deletes anything; call it
/// holding the repository lock. Absent record: creates it (`legacyRunsUpTo` from the manifests
/// already there). Owned by `owner`: nothing. Owned by another: adopts it when `adopt_from`
/// names that owner (rewrites the owner, appends the adoption), else refuses.
///
/// Errors: [`ExecError::Conflict`] naming both owners, the location and the fix; storage
/// failures; a record that fails its checksum.
pub async fn claim(
    op: &Operator,
    backup: &str,
    owner: &Owner,
    adopt_from: Option<&Owner>,
    now_ms: i64,
) -> Result<RepositoryRecord, ExecError> {
    let path = layout::repository(backup);
    let rec = match Box::pin(load_record(op, backup)).await? {
        Some(mut rec) => {
            match check_owner(&rec, owner, adopt_from, &location(op, backup), now_ms) {
                Ok(None) => return Ok(rec),
                Ok(Some(adoption)) => {
                    tracing::info!(backup, from = %adoption.from, to = %adoption.to, "repository adopted");
                    rec.owner = owner.clone();
                    rec.adoptions.push(adoption);
                }
                Err(msg) => return Err(ExecError::Conflict(msg)),
            }
            rec
        }
        None => RepositoryRecord {
            format: FORMAT.into(),
            created_with_format: FORMAT.into(),
            owner: owner.clone(),
            legacy_runs_up_to: Box::pin(scan_legacy(op, backup)).await?.up_to,
            adoptions: vec![],
            created_at: now_ms,
        },
    };
    Box::pin(storage::write_all(op, &path, to_json(&rec))).await?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owner: &Owner) -> RepositoryRecord {
        RepositoryRecord {
            format: FORMAT.into(),
            created_with_format: FORMAT.into(),
            owner: owner.clone(),
            legacy_runs_up_to: None,
            adoptions: vec![],
            created_at: 0,
        }
    }

    #[test]
    fn another_owner_is_refused_unless_it_adopts_the_current_one() {
        let a = Owner::new(Some("team-a"), "orders");
        let b = Owner::new(Some("team-b"), "orders");
        let r = rec(&a);
        assert_eq!(check_owner(&r, &a, None, "loc", 5), Ok(None));
        let e = check_owner(&r, &b, None, "s3://bkt/p/orders/", 5).unwrap_err();
        for part in [
            "team-a/orders",
            "team-b/orders",
            "s3://bkt/p/orders/",
            "prefix (or path)",
            "kafka.oso.sh/adopt-repository: team-a/orders",
            "recorded in repository.json",
        ] {
            assert!(e.contains(part), "{part} in {e}");
        }
        // adoption names the current owner exactly
        let wrong = Owner::new(Some("team-c"), "orders");
        let e = check_owner(&r, &b, Some(&wrong), "loc", 5).unwrap_err();
        assert!(e.contains("says team-c/orders"), "{e}");
        let adopted = check_owner(&r, &b, Some(&a), "loc", 5).unwrap().unwrap();
        assert_eq!((adopted.from, adopted.to, adopted.at), (a, b, 5));
    }

    #[tokio::test]
    async fn claim_creates_refuses_and_records_adoptions() {
        let dir = tempfile::tempdir().unwrap();
        let op = storage::StorageTarget::Fs {
            root: dir.path().display().to_string(),
        }
        .operator()
        .unwrap();
        let a = Owner::new(Some("team-a"), "kb");
        let b = Owner::new(Some("team-b"), "kb");
        let first = claim(&op, "kb", &a, None, 1).await.unwrap();
        assert_eq!(
            (first.owner.clone(), first.legacy_runs_up_to.clone()),
            (a.clone(), None)
        );
        let e = claim(&op, "kb", &b, None, 2).await.unwrap_err().to_string();
        assert!(e.contains("belongs to KafkaBackup team-a/kb"), "{e}");
        assert_eq!(load_record(&op, "kb").await.unwrap().unwrap(), first);
        let adopted = claim(&op, "kb", &b, Some(&a), 3).await.unwrap();
        assert_eq!(adopted.owner, b);
        assert_eq!(adopted.adoptions.len(), 1);
        assert_eq!(load_record(&op, "kb").await.unwrap().unwrap(), adopted);
        // the former owner is now the other one
        assert!(claim(&op, "kb", &a, None, 4).await.is_err());
    }
}
