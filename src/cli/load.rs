//! Reading `-f` files: documents, Secrets, and which resource to act on.
use std::path::{Path, PathBuf};

use crate::api::validation::KafkaBackupValidation;
use crate::api::{
    ApiError, Document, KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore, Secrets,
    load_and_validate,
};

/// A KafkaRestore another resource refers to, with the KafkaBackup its backupRef names if it
/// was among the files.
pub type RestoreRef = (Box<KafkaRestore>, Option<Box<KafkaBackup>>);

/// A [`RestoreRef`] borrowed, as the flow's `prepare_offset_*` take it.
pub fn borrow_restore(r: &Option<RestoreRef>) -> Option<(&KafkaRestore, Option<&KafkaBackup>)> {
    r.as_ref().map(|(kr, kb)| (&**kr, kb.as_deref()))
}

/// The resource a `run` or `plan` acts on.
pub enum Target {
    Backup(Box<KafkaBackup>),
    /// The restore, and the KafkaBackup its backupRef names if it was among the files.
    Restore(Box<KafkaRestore>, Option<Box<KafkaBackup>>),
    /// The reset, and the KafkaRestore `offsetMappingRef.restoreName` names, if among the files.
    OffsetReset(Box<KafkaOffsetReset>, Option<RestoreRef>),
    /// The rollback, and the KafkaRestore `snapshotRef.restoreRef` names, if among the files.
    OffsetRollback(Box<KafkaOffsetRollback>, Option<RestoreRef>),
    /// The validation, and the KafkaBackup its backupRef names, if among the files.
    Validation(Box<KafkaBackupValidation>, Option<Box<KafkaBackup>>),
}

/// Errors of loading inputs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Choose(String),
}

/// Loads and validates every document of `files`, collects Secrets, and picks the target:
/// `name` if given, else the one resource that no other resource in the files refers to (a
/// KafkaRestore refers to its KafkaBackup, a KafkaOffsetReset to the KafkaRestore of its
/// `offsetMappingRef.restoreName`, a KafkaOffsetRollback to its `snapshotRef.restoreRef` or
/// `offsetResetRef`, a KafkaBackupValidation to its KafkaBackup). Errors: no resource, or
/// several that nothing refers to (`--name` then chooses; the error lists them).
pub fn load(files: &[PathBuf], name: Option<&str>) -> Result<(Target, Secrets), LoadError> {
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| LoadError::Read {
            path: f.display().to_string(),
            reason: e.to_string(),
        })?;
        docs.extend(load_and_validate(&text, &f.display().to_string())?);
    }
    let secrets = Secrets::from_documents(&docs);
    let target = Resources::of(&docs).pick(name)?;
    Ok((target, secrets))
}

/// Adds the Secrets mounted under `dir` (`--secrets-dir`) to `out`: each subdirectory is a
/// Secret of that name, each regular file in it (followed through symlinks, as Kubernetes
/// mounts them) a key with the file's bytes as its value. Entries whose name starts with `.`
/// (the volume's `..data` links) are skipped.
///
/// Errors: `dir` unreadable; a Secret already given in the -f files (which one holds is
/// ambiguous: give it once).
pub fn secrets_dir(dir: &Path, out: &mut Secrets) -> Result<(), LoadError> {
    let read = |p: &Path, e: std::io::Error| LoadError::Read {
        path: p.display().to_string(),
        reason: format!("{e} (--secrets-dir)"),
    };
    let known = out.names();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| read(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for secret in entries {
        let name = secret.file_name().to_string_lossy().into_owned();
        let path = secret.path();
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        if known.contains(&name) {
            return Err(LoadError::Choose(format!(
                "Secret {name:?} is both in the -f files and in --secrets-dir {}: give it once",
                dir.display()
            )));
        }
        let mut data = std::collections::BTreeMap::new();
        for key in std::fs::read_dir(&path).map_err(|e| read(&path, e))? {
            let key = key.map_err(|e| read(&path, e))?;
            let k = key.file_name().to_string_lossy().into_owned();
            let kp = key.path();
            if k.starts_with('.') || !kp.is_file() {
                continue;
            }
            data.insert(k, std::fs::read(&kp).map_err(|e| read(&kp, e))?);
        }
        out.insert(None, &name, data);
    }
    Ok(())
}

/// The resources among the documents, by kind.
struct Resources<'a> {
    backups: Vec<&'a KafkaBackup>,
    restores: Vec<&'a KafkaRestore>,
    resets: Vec<&'a KafkaOffsetReset>,
    rollbacks: Vec<&'a KafkaOffsetRollback>,
    validations: Vec<&'a KafkaBackupValidation>,
}

fn name_of(m: &kube::api::ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

impl<'a> Resources<'a> {
    fn of(docs: &'a [Document]) -> Self {
        let mut r = Resources {
            backups: vec![],
            restores: vec![],
            resets: vec![],
            rollbacks: vec![],
            validations: vec![],
        };
        for d in docs {
            match d {
                Document::Backup(b) => r.backups.push(b),
                Document::Restore(x) => r.restores.push(x),
                Document::OffsetReset(x) => r.resets.push(x),
                Document::OffsetRollback(x) => r.rollbacks.push(x),
                Document::Validation(x) => r.validations.push(x),
                _ => {}
            }
        }
        r
    }

    fn find_backup(&self, n: &str) -> Option<Box<KafkaBackup>> {
        (self.backups.iter())
            .find(|b| name_of(&b.metadata) == n)
            .map(|b| Box::new((*b).clone()))
    }

    fn find_restore(&self, n: Option<&String>) -> Option<RestoreRef> {
        let n = n?;
        (self.restores.iter())
            .find(|r| &name_of(&r.metadata) == n)
            .map(|r| {
                let kb = self.find_backup(&r.spec.backup_ref.name);
                (Box::new((*r).clone()), kb)
            })
    }

    /// Every resource as (kind, name, the resources it refers to as (kind, name), target).
    #[allow(clippy::type_complexity)]
    fn all(&self) -> Vec<(&'static str, String, Vec<(&'static str, String)>, Target)> {
        let mut v = Vec::new();
        for b in &self.backups {
            let t = Target::Backup(Box::new((*b).clone()));
            v.push(("KafkaBackup", name_of(&b.metadata), vec![], t));
        }
        for r in &self.restores {
            let refs = vec![("KafkaBackup", r.spec.backup_ref.name.clone())];
            let t = Target::Restore(
                Box::new((*r).clone()),
                self.find_backup(&r.spec.backup_ref.name),
            );
            v.push(("KafkaRestore", name_of(&r.metadata), refs, t));
        }
        for r in &self.resets {
            let rn = (r.spec.offset_mapping_ref.as_ref()).and_then(|m| m.restore_name.as_ref());
            let refs = rn
                .map(|n| ("KafkaRestore", n.clone()))
                .into_iter()
                .collect();
            let t = Target::OffsetReset(Box::new((*r).clone()), self.find_restore(rn));
            v.push(("KafkaOffsetReset", name_of(&r.metadata), refs, t));
        }
        for r in &self.rollbacks {
            let sr = &r.spec.snapshot_ref;
            let mut refs: Vec<(&'static str, String)> = vec![];
            refs.extend(sr.restore_ref.iter().map(|n| ("KafkaRestore", n.clone())));
            refs.extend(
                sr.offset_reset_ref
                    .iter()
                    .map(|n| ("KafkaOffsetReset", n.clone())),
            );
            let t = Target::OffsetRollback(
                Box::new((*r).clone()),
                self.find_restore(sr.restore_ref.as_ref()),
            );
            v.push(("KafkaOffsetRollback", name_of(&r.metadata), refs, t));
        }
        for x in &self.validations {
            let refs = vec![("KafkaBackup", x.spec.backup_ref.name.clone())];
            let kb = self.find_backup(&x.spec.backup_ref.name);
            let t = Target::Validation(Box::new((*x).clone()), kb);
            v.push(("KafkaBackupValidation", name_of(&x.metadata), refs, t));
        }
        v
    }

    /// The resource named `name`, else the only one nothing else refers to.
    fn pick(&self, name: Option<&str>) -> Result<Target, LoadError> {
        let all = self.all();
        if let Some(n) = name {
            // one name in several kinds: the one that refers to the others wins
            return (all.into_iter().rev())
                .find(|(_, m, _, _)| m == n)
                .map(|(.., t)| t)
                .ok_or_else(|| LoadError::Choose(format!(
                    "no KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback or KafkaBackupValidation named {n:?} in the given files"
                )));
        }
        let referenced: Vec<(&str, String)> = all
            .iter()
            .flat_map(|(_, _, refs, _)| refs.clone())
            .collect();
        let mut roots: Vec<_> = all
            .into_iter()
            .filter(|(k, m, _, _)| !referenced.iter().any(|(rk, rn)| rk == k && rn == m))
            .collect();
        match roots.len() {
            0 => Err(LoadError::Choose(
                "the files hold no KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback or KafkaBackupValidation".into(),
            )),
            1 => Ok(roots.remove(0).3),
            _ => Err(LoadError::Choose(format!(
                "the files hold several resources that no other one refers to ({}): choose one with --name",
                roots
                    .iter()
                    .map(|(k, m, _, _)| format!("{k} {m}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_dir_reads_a_secret_volume_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = dir.path().join("s3-creds");
        // what the kubelet writes: the keys as links into a timestamped directory
        let data = s3.join("..2026_12_06_00_00_00.1");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("AWS_ACCESS_KEY_ID"), b"AKIA").unwrap();
        std::os::unix::fs::symlink("..2026_12_06_00_00_00.1", s3.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/AWS_ACCESS_KEY_ID", s3.join("AWS_ACCESS_KEY_ID"))
            .unwrap();
        std::fs::write(dir.path().join("stray-file"), b"x").unwrap();
        let mut secrets = Secrets::new();
        secrets_dir(dir.path(), &mut secrets).unwrap();
        assert_eq!(secrets.names(), vec!["s3-creds".to_string()]);
        assert_eq!(
            secrets.get("s3-creds", "AWS_ACCESS_KEY_ID").unwrap(),
            b"AKIA"
        );
        assert_eq!(secrets.data("s3-creds").unwrap().len(), 1);
        // a Secret given twice is refused, naming it
        let err = secrets_dir(dir.path(), &mut secrets)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3-creds") && err.contains("give it once"),
            "{err}"
        );
        // a missing directory names the flag
        let err = secrets_dir(&dir.path().join("nope"), &mut Secrets::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--secrets-dir"), "{err}");
    }

    fn fixtures(names: &[&str]) -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/full");
        names.iter().map(|n| dir.join(n)).collect()
    }

    fn picked(names: &[&str], name: Option<&str>) -> Result<String, String> {
        match load(&fixtures(names), name) {
            Ok((Target::Backup(_), _)) => Ok("KafkaBackup".into()),
            Ok((Target::Restore(_, kb), _)) => Ok(format!("KafkaRestore with={}", kb.is_some())),
            Ok((Target::OffsetReset(_, r), _)) => {
                Ok(format!("KafkaOffsetReset with={}", r.is_some()))
            }
            Ok((Target::OffsetRollback(_, r), _)) => {
                Ok(format!("KafkaOffsetRollback with={}", r.is_some()))
            }
            Ok((Target::Validation(_, kb), _)) => {
                Ok(format!("KafkaBackupValidation with={}", kb.is_some()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn the_resource_that_refers_to_the_others_is_picked_for_every_kind() {
        let p = |files: &[&str]| picked(files, None).unwrap();
        assert_eq!(p(&["backup.yaml"]), "KafkaBackup");
        assert_eq!(
            p(&["restore.yaml", "backup.yaml"]),
            "KafkaRestore with=true"
        );
        assert_eq!(
            p(&["validation.yaml", "backup.yaml"]),
            "KafkaBackupValidation with=true"
        );
        // the rollback refers to the reset and the restore, which refers to the backup
        assert_eq!(
            p(&["offsets.yaml", "restore.yaml", "backup.yaml"]),
            "KafkaOffsetRollback with=true"
        );
    }

    #[test]
    fn name_is_needed_only_when_truly_ambiguous_and_the_error_lists_the_candidates() {
        let files = ["restore.yaml", "validation.yaml", "backup.yaml"];
        let e = picked(&files, None).unwrap_err();
        assert!(
            e.contains("KafkaRestore full-restore")
                && e.contains("KafkaBackupValidation full-validation")
                && e.contains("--name")
                && !e.contains("KafkaBackup full-backup"),
            "{e}"
        );
        assert_eq!(
            picked(&files, Some("full-validation")).unwrap(),
            "KafkaBackupValidation with=true"
        );
        assert_eq!(
            picked(&["offsets.yaml", "restore.yaml"], Some("full-reset")).unwrap(),
            "KafkaOffsetReset with=true"
        );
        let e = picked(&files, Some("nope")).unwrap_err();
        assert!(e.contains("named \"nope\""), "{e}");
    }
}
