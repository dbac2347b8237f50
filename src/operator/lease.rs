//! Leader election on a Lease, fenced. kube-lease-manager acquires and renews the Lease
//! `kafka-backup-operator`; but when a renewal fails (this replica cut off from the API server)
//! it keeps retrying and never reports the loss, while another replica may take the Lease as
//! soon as it expires. The fence closes that gap: every [`POLL`] the leader reads the Lease, and
//! it counts as leader only while the Lease names it and its last renewal (`spec.renewTime`,
//! written from this replica's own clock) is younger than [`FENCE`]. Renewals come every
//! `LEASE - GRACE` = 12 s, so a healthy leader never trips the fence; a cut-off one stops its
//! runs at 16 s, 4 s before any other replica may take the Lease at 20 s (that margin is also
//! the clock skew between nodes it tolerates).
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;

use super::pool::Pool;

/// Name of the Lease.
pub const LEASE_NAME: &str = "kafka-backup-operator";
/// `spec.leaseDurationSeconds`: another replica may take the Lease this long after its last
/// renewal.
pub const LEASE: Duration = Duration::from_secs(20);
/// The holder renews this long before the Lease would expire (every 12 s).
pub const GRACE: Duration = Duration::from_secs(8);
/// The leader stops its runs when its last renewal the API server confirmed is this old.
pub const FENCE: Duration = Duration::from_secs(16);
/// How often the leader reads the Lease.
pub const POLL: Duration = Duration::from_secs(1);

/// What a read of the Lease said.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseRead {
    /// The Lease as stored: its holder and last renewal.
    Seen {
        holder: Option<String>,
        renewed: Option<Timestamp>,
    },
    /// The API server could not be asked (unreachable, timeout, error).
    Unknown,
}

/// The fence, pure: whether this replica may act as leader at `now`, and the time until which
/// it may (kept across reads that fail). `elected` is what kube-lease-manager reports.
pub fn fenced(
    identity: &str,
    elected: bool,
    read: &LeaseRead,
    fresh_until: Option<Timestamp>,
    now: Timestamp,
) -> (bool, Option<Timestamp>) {
    if !elected {
        return (false, None);
    }
    let fresh_until = match read {
        LeaseRead::Seen {
            holder: Some(h),
            renewed: Some(r),
        } if h == identity => r.checked_add(FENCE).ok(),
        LeaseRead::Seen { .. } => None, // another holder, or none: not ours
        LeaseRead::Unknown => fresh_until,
    };
    (fresh_until.is_some_and(|t| now < t), fresh_until)
}

/// Starts leader election for `identity` with a Lease in `namespace`. The returned receiver is
/// true while this replica is the fenced leader; when it turns false, every run in `pool` is
/// cancelled at the same moment. Errors: the Lease cannot be read or created (RBAC, API server).
pub async fn elect(
    client: Client,
    namespace: &str,
    identity: &str,
    pool: Pool,
) -> anyhow::Result<watch::Receiver<bool>> {
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE.as_secs())
        .with_grace(GRACE.as_secs())
        .build()
        .await?;
    let (mut elected, task) = manager.watch().await;
    let (tx, rx) = watch::channel(false);
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    let identity = identity.to_string();
    tokio::spawn(async move {
        let _task = task; // the manager runs while this loop holds its channel
        let mut fresh_until = None;
        loop {
            // marks the value seen, so `changed()` below waits for the next change
            let is_elected = *elected.borrow_and_update();
            let read = if is_elected {
                read_lease(&leases).await
            } else {
                LeaseRead::Unknown
            };
            let (leading, until) =
                fenced(&identity, is_elected, &read, fresh_until, Timestamp::now());
            fresh_until = until;
            if leading != *tx.borrow() {
                tracing::info!(
                    leading,
                    elected = is_elected,
                    lease = ?read,
                    "leadership changed"
                );
                let _ = tx.send(leading);
                if !leading {
                    // every run is signalled at once (executors stop at their next batch);
                    // waiting for the tasks to end can take longer (a status write retrying)
                    pool.cancel_all().await;
                    tracing::info!("runs stopped after losing leadership");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                r = elected.changed() => if r.is_err() {
                    // the manager stopped (it only does when shutting down): lead no more
                    pool.cancel_all().await;
                    let _ = tx.send(false);
                    return;
                }
            }
        }
    });
    Ok(rx)
}

async fn read_lease(leases: &Api<Lease>) -> LeaseRead {
    match tokio::time::timeout(POLL, leases.get_opt(LEASE_NAME)).await {
        Ok(Ok(Some(l))) => {
            let spec = l.spec.unwrap_or_default();
            LeaseRead::Seen {
                holder: spec.holder_identity,
                renewed: spec.renew_time.map(|t| t.0),
            }
        }
        Ok(Ok(None)) => LeaseRead::Seen {
            holder: None,
            renewed: None,
        },
        _ => LeaseRead::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn seen(holder: &str, renewed: &str) -> LeaseRead {
        LeaseRead::Seen {
            holder: Some(holder.into()),
            renewed: Some(ts(renewed)),
        }
    }

    #[test]
    fn the_leader_acts_only_while_its_confirmed_renewal_is_fresh() {
        let renewed = "2026-01-01T00:00:00Z";
        let at = |s: &str| ts(&format!("2026-01-01T00:00:{s}Z"));
        // confirmed by the API server: leading until renewal + FENCE
        let (ok, until) = fenced("a", true, &seen("a", renewed), None, at("05"));
        assert!(ok);
        assert_eq!(until, Some(at("16")));
        // cut off from the API server: the last confirmation still counts, until the fence
        assert_eq!(
            fenced("a", true, &LeaseRead::Unknown, until, at("15")),
            (true, until)
        );
        assert!(
            !fenced("a", true, &LeaseRead::Unknown, until, at("16")).0,
            "stops at 16 s, 4 s before another replica may take the Lease at 20 s"
        );
        assert!(FENCE + Duration::from_secs(4) <= LEASE && FENCE > LEASE - GRACE + POLL * 2);
        // another holder, no holder, or the manager's own loss: not leading
        assert_eq!(
            fenced("a", true, &seen("b", renewed), until, at("05")),
            (false, None)
        );
        let nobody = LeaseRead::Seen {
            holder: None,
            renewed: None,
        };
        assert_eq!(fenced("a", true, &nobody, until, at("05")), (false, None));
        assert_eq!(
            fenced("a", false, &seen("a", renewed), until, at("05")),
            (false, None)
        );
        // never confirmed yet (elected, but the first read failed): not leading
        assert_eq!(
            fenced("a", true, &LeaseRead::Unknown, None, at("01")),
            (false, None)
        );
    }
}
