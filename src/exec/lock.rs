//! The repository lock: a lease object in storage that one writer holds at a time
//! (docs/format.md, "Lock").
//!
//! `<backup>/lock.json` is held by a backup run (and its retention), `<backup>/restores/<name>/
//! lock.json` by a restore. It is created with a conditional write (`If-None-Match: *` on S3,
//! `O_CREAT|O_EXCL` on a filesystem: opendal's `if_not_exists`), renewed every
//! [`HEARTBEAT`] and valid for [`TTL`] after its last renewal, so a writer killed with
//! SIGKILL blocks the next one for at most [`TTL`]. A second writer meets a live lock and is
//! refused with an error that names the holder, its run and when the lock expires. An expired
//! lock, or one whose holder was a process of this host that no longer runs (killed with
//! SIGKILL), is taken over (deleted, then created again conditionally: of two writers taking
//! it over at once, one wins). The operator waits for a locked repository (checked every
//! 15 s, no attempt used up). The holder checks its lock at every renewal; a lock found taken by
//! someone else (after a pause longer than [`TTL`]) stops the run.
use std::time::Duration;

use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::ExecError;
use crate::format::layout::FORMAT;
use crate::format::manifest::{from_json, to_json};
use crate::storage::{self, backend};

/// How long a lock stays valid after its last renewal.
pub const TTL: Duration = Duration::from_secs(60);
/// How often the holder renews it.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The lock document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockDoc {
    pub format: String,
    /// Who holds it: `POD_NAME` (the operator) or the host name, and the process id.
    pub holder: String,
    /// A value unique to this acquisition (the holder's token).
    pub token: String,
    /// What it is held for, e.g. `backup run 20261201T120000.000Z`.
    pub purpose: String,
    pub acquired_at: i64,
    pub renewed_at: i64,
    /// Epoch ms after which another writer may take it over.
    pub expires_at: i64,
}

/// A held lock. Dropping it stops the heartbeat; [`Lock::release`] deletes the object.
pub struct Lock {
    op: Operator,
    path: String,
    token: String,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<Option<String>>,
}

/// This process as a lock holder: `POD_NAME` or the host name, and the pid.
pub fn holder_id() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}/pid {}", std::process::id())
}

/// True when `holder` names a process of this host that no longer runs (a writer killed with
/// SIGKILL here): its lock is stale at once, with no need to wait for it to expire.
pub(crate) fn holder_is_gone(holder: &str) -> bool {
    let me = holder_id();
    let (Some((host, pid)), Some((my_host, my_pid))) =
        (holder.rsplit_once("/pid "), me.rsplit_once("/pid "))
    else {
        return false;
    };
    host == my_host
        && pid != my_pid
        && pid.parse::<u32>().is_ok()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Now, epoch ms.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `ms` (epoch ms) as RFC 3339, for messages.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

async fn read_lock(op: &Operator, path: &str) -> Result<Option<LockDoc>, ExecError> {
    match storage::read_opt(op, path).await? {
        None => Ok(None),
        Some(b) => Ok(Some(from_json(&b, path)?)),
    }
}

/// Creates `path` only if it does not exist; Ok(false) when it exists.
async fn create_new(op: &Operator, path: &str, doc: &LockDoc) -> Result<bool, ExecError> {
    if !op.info().capability().write_with_if_not_exists {
        // A store without conditional writes: check, then write (a narrow race remains).
        if op
            .exists(path)
            .await
            .map_err(|e| backend("stat", path, e))?
        {
            return Ok(false);
        }
        storage::write_all(op, path, to_json(doc)).await?;
        return Ok(true);
    }
    match op.write_with(path, to_json(doc)).if_not_exists(true).await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(backend("write", path, e).into()),
    }
}

/// How long a shard process waits for its shard's lock held by another live process (the
/// last Pod of its Job, still terminating): past the lock's [`TTL`] (60 s), so that the lock
/// of a process killed with SIGKILL has expired by then.
pub const SHARD_LOCK_PATIENCE: Duration = Duration::from_secs(90);

impl Lock {
    /// Takes the lock at `path` for `purpose`, or fails naming the holder of a live lock.
    ///
    /// Errors: [`ExecError::Locked`] when another writer holds a live lock; storage failures.
    pub async fn acquire(op: &Operator, path: &str, purpose: &str) -> Result<Lock, ExecError> {
        let t = now_ms();
        let doc = LockDoc {
            format: FORMAT.into(),
            holder: holder_id(),
            token: format!("{:016x}", rand::random::<u64>()),
            purpose: purpose.into(),
            acquired_at: t,
            renewed_at: t,
            expires_at: t + TTL.as_millis() as i64,
        };
        for _ in 0..3 {
            if create_new(op, path, &doc).await? {
                return Ok(Lock::start(op.clone(), path.to_string(), doc));
            }
            match read_lock(op, path).await {
                Ok(Some(held)) if held.expires_at > now_ms() && !holder_is_gone(&held.holder) => {
                    return Err(ExecError::Locked(format!(
                        "repository locked: {path} is held by {} for {} (renewed {}, expires {}): another writer is using this repository; wait for it to finish, or, if it is gone, for the lock to expire (at most {} s after its last renewal)",
                        held.holder,
                        held.purpose,
                        rfc3339(held.renewed_at),
                        rfc3339(held.expires_at),
                        TTL.as_secs()
                    )));
                }
                Ok(Some(held)) => {
                    tracing::warn!(lock = %path, holder = %held.holder, purpose = %held.purpose,
                        expires = %rfc3339(held.expires_at), "taking over a stale repository lock (its holder stopped without releasing it)");
                }
                // unreadable (damaged) or gone meanwhile: take it over as expired
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(lock = %path, error = %e, "taking over an unreadable repository lock")
                }
            }
            op.delete(path)
                .await
                .map_err(|e| backend("delete", path, e))?;
        }
        Err(ExecError::Locked(format!(
            "repository locked: {path}: could not take the lock (other writers kept taking it)"
        )))
    }

    fn start(op: Operator, path: String, doc: LockDoc) -> Lock {
        let (tx, lost) = tokio::sync::watch::channel(None);
        let token = doc.token.clone();
        let (hop, hpath) = (op.clone(), path.clone());
        let heartbeat = tokio::spawn(async move {
            let mut doc = doc;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match read_lock(&hop, &hpath).await {
                    Ok(Some(held)) if held.token != doc.token => {
                        let _ = tx.send(Some(format!(
                            "repository locked: the repository lock {hpath} was taken over by {} for {} while this run held it (paused longer than {} s?): stopping",
                            held.holder,
                            held.purpose,
                            TTL.as_secs()
                        )));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(lock = %hpath, error = %e, "repository lock not renewed; retrying");
                        continue;
                    }
                    _ => {}
                }
                doc.renewed_at = now_ms();
                doc.expires_at = doc.renewed_at + TTL.as_millis() as i64;
                if let Err(e) = storage::write_all(&hop, &hpath, to_json(&doc)).await {
                    tracing::warn!(lock = %hpath, error = %e, "repository lock not renewed; retrying");
                }
            }
        });
        Lock {
            op,
            path,
            token,
            heartbeat,
            lost,
        }
    }

    /// Resolves when the lock is lost to another writer, with the reason.
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // the heartbeat ended without a loss (never, short of a panic): wait forever
                std::future::pending::<()>().await;
            }
        }
    }

    /// [`Lock::acquire`], waiting while another holder's lock is live: tried again every
    /// [`WATCH_EVERY`] for up to `patience` (a holder killed with SIGKILL blocks for at most
    /// [`TTL`]). What a shard process takes for its shard, since a Kubernetes Job may start
    /// its next Pod while the last one is still terminating.
    ///
    /// Errors: [`ExecError::Locked`] when the lock is still held after `patience`; storage
    /// failures.
    pub async fn acquire_waiting(
        op: &Operator,
        path: &str,
        purpose: &str,
        patience: Duration,
    ) -> Result<Lock, ExecError> {
        let start = std::time::Instant::now();
        loop {
            match Self::acquire(op, path, purpose).await {
                Err(ExecError::Locked(why)) if start.elapsed() < patience => {
                    tracing::info!(lock = path, holder = %why, "waiting for the lock");
                    tokio::time::sleep(WATCH_EVERY).await;
                }
                r => return r,
            }
        }
    }

    /// Runs `work` while holding the lock, then releases it. A lock lost meanwhile stops
    /// `work` (as a kill would: checkpoints and journals make the next attempt exact) and
    /// returns [`ExecError::Locked`].
    pub async fn hold<T>(
        self,
        work: impl std::future::Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        let r = tokio::select! {
            r = work => r,
            why = self.lost() => Err(ExecError::Locked(why)),
        };
        self.release().await;
        r
    }

    /// Deletes the lock if it is still this holder's.
    pub async fn release(self) {
        self.heartbeat.abort();
        if let Ok(Some(held)) = read_lock(&self.op, &self.path).await
            && held.token == self.token
        {
            let _ = self.op.delete(&self.path).await;
        }
    }
}

/// How often a shard looks at the lock its coordinator holds ([`LockWatch`]).
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// A shard's fence (`execution.mode: job`): the coordinator holds the repository lock for the
/// whole run, with the purpose naming the run; a shard process writes only while the lock is
/// held for that purpose and not expired. It reads the lock document at start and every
/// [`WATCH_EVERY`]; a lock that is missing, expired or held for another purpose stops the
/// shard's work, as [`Lock::hold`] stops a run whose lock was taken over. A coordinator that
/// restarts and takes the lock again for the same run keeps its shards going.
pub struct LockWatch {
    op: Operator,
    path: String,
    purpose: String,
}

impl LockWatch {
    /// Checks that the lock at `path` is held for `purpose` now.
    ///
    /// Errors: [`ExecError::Locked`] naming what the lock says instead; storage failures.
    pub async fn start(op: &Operator, path: &str, purpose: &str) -> Result<LockWatch, ExecError> {
        let w = LockWatch {
            op: op.clone(),
            path: path.into(),
            purpose: purpose.into(),
        };
        w.check().await?;
        Ok(w)
    }

    /// Reads the lock once: Ok while it is held for this watch's purpose and not expired.
    pub async fn check(&self) -> Result<(), ExecError> {
        let lost = |why: String| {
            Err(ExecError::Locked(format!(
                "repository lock lost: {} {why}; this shard of {} stops writing (the run's coordinator is gone or another writer took over; the coordinator's next attempt resumes from the shards' checkpoints)",
                self.path, self.purpose
            )))
        };
        match read_lock(&self.op, &self.path).await? {
            None => lost("does not exist".into()),
            Some(held) if held.purpose != self.purpose => {
                lost(format!("is held by {} for {}", held.holder, held.purpose))
            }
            Some(held) if held.expires_at <= now_ms() => lost(format!(
                "expired at {} (its holder {} stopped renewing it)",
                rfc3339(held.expires_at),
                held.holder
            )),
            Some(_) => Ok(()),
        }
    }

    /// Runs `work` while the lock stays held for this watch's purpose, looking every
    /// [`WATCH_EVERY`]; a lost lock stops `work` (as a kill would: the shard's checkpoint makes
    /// the next attempt exact) and returns [`ExecError::Locked`]. A failed read is retried at
    /// the next look (a lock that cannot be read for [`TTL`] counts as lost).
    pub async fn hold<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        let watch = async {
            let mut unreadable_since: Option<std::time::Instant> = None;
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                match self.check().await {
                    Ok(()) => unreadable_since = None,
                    Err(e @ ExecError::Locked(_)) => return e,
                    Err(e) => {
                        let since = *unreadable_since.get_or_insert_with(std::time::Instant::now);
                        tracing::warn!(lock = %self.path, error = %e, "repository lock not readable; trying again");
                        if since.elapsed() >= TTL {
                            return ExecError::Locked(format!(
                                "repository lock lost: {} could not be read for {} s ({e}); this shard stops writing",
                                self.path,
                                TTL.as_secs()
                            ));
                        }
                    }
                }
            }
        };
        tokio::select! {
            r = work => r,
            e = watch => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_writer_is_refused_naming_the_holder_and_an_expired_lock_is_taken_over() {
        let op = crate::storage::StorageTarget::Memory.operator().unwrap();
        let first = Lock::acquire(&op, "kb/lock.json", "backup run r1")
            .await
            .unwrap();
        let e = match Lock::acquire(&op, "kb/lock.json", "backup run r2").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("two writers held the lock"),
        };
        assert!(
            e.contains(&holder_id()) && e.contains("backup run r1") && e.contains("expires"),
            "{e}"
        );
        first.release().await;
        let second = Lock::acquire(&op, "kb/lock.json", "backup run r2")
            .await
            .unwrap();
        // a holder killed without releasing: its lock expires and is taken over
        second.heartbeat.abort();
        let mut stale: LockDoc =
            from_json(&op.read("kb/lock.json").await.unwrap().to_vec(), "lock").unwrap();
        stale.expires_at = now_ms() - 1;
        op.write("kb/lock.json", to_json(&stale)).await.unwrap();
        let third = Lock::acquire(&op, "kb/lock.json", "backup run r3")
            .await
            .unwrap();
        third.release().await;
        assert!(op.read("kb/lock.json").await.is_err(), "released");
    }

    #[tokio::test]
    async fn a_shard_watch_passes_while_the_run_holds_the_lock_and_fails_once_another_run_does() {
        let op = crate::storage::StorageTarget::Memory.operator().unwrap();
        let path = "kb/lock.json";
        let e = LockWatch::start(&op, path, "backup run r1")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let held = Lock::acquire(&op, path, "backup run r1").await.unwrap();
        let w = LockWatch::start(&op, path, "backup run r1").await.unwrap();
        assert_eq!(w.hold(async { Ok(7) }).await.unwrap(), 7);
        held.release().await;
        let _other = Lock::acquire(&op, path, "backup run r2").await.unwrap();
        let e = w.check().await.err().unwrap();
        assert!(matches!(e, ExecError::Locked(_)), "{e}");
        assert!(e.to_string().contains("backup run r2"), "{e}");
    }
}
