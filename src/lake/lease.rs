//! The streaming writer's lease: at most one server takes events for a lake.
//!
//! Two writers on one log would lose acknowledged events: each knows only
//! the segments it wrote, and a commit by one records a log position past
//! segments of the other, which replay then skips and truncation deletes.
//! So a server takes events only while it holds the lake's lease; other
//! servers on the same lake serve queries (read replicas) and take over
//! when the holder stops renewing.
//!
//! ```text
//! _stream/lease/<epoch:020>.json   {"holder": "...", "expires_at_ms": ...}
//! ```
//!
//! The newest epoch is the lease. Taking it is a create-if-absent put of
//! the next epoch, allowed when the newest has expired, was released, or
//! names the same holder (a server restarted under the same name: the
//! previous process is gone, since two cannot listen on one address).
//! The holder renews by rewriting its own epoch with a later expiry, after
//! checking that no newer epoch exists. It counts the lease as its own only
//! until a margin before the expiry it wrote, and a renewal that comes after
//! that moment does not revive it (the server takes a new epoch instead): a
//! successor, which waits for the expiry itself, never overlaps with it
//! unless the two clocks differ by more than the margin.

use std::time::Duration;

use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::store::Location;

pub const LEASE_DIR: &str = "_stream/lease";
/// Epoch files kept behind the newest (for whoever reads the history).
const KEEP: u64 = 2;

fn epoch_path(epoch: u64) -> String {
    format!("{LEASE_DIR}/{epoch:020}.json")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    holder: String,
    /// Unix milliseconds; 0 once released.
    expires_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the stream lease: {0}")]
    Store(#[from] object_store::Error),
    #[error("the stream lease file {0} is unreadable: {1}")]
    Unreadable(String, serde_json::Error),
}

/// Who holds the lease, when it is not us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBy {
    pub holder: String,
    pub expires_at_ms: i64,
}

/// The lease, held.
#[derive(Debug)]
pub struct Lease {
    lake: Location,
    holder: String,
    epoch: u64,
    ttl: Duration,
    /// Unix milliseconds until which this process may act as the holder.
    valid_until_ms: i64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How long before its written expiry a holder stops counting on a lease.
fn margin(ttl: Duration) -> i64 {
    (ttl.as_millis() / 3) as i64
}

/// Take the lease for `holder` if nobody else holds it. With `restarted`
/// (a server starting), a lease under its own name is taken back at once:
/// the process that held it is gone. A running server that lost its lease
/// waits like anyone else, so that two live processes given the same name
/// by mistake do not take it from each other in turn.
pub async fn acquire(
    lake: &Location,
    holder: &str,
    ttl: Duration,
    restarted: bool,
) -> Result<Result<Lease, HeldBy>, LeaseError> {
    acquire_at(lake, holder, ttl, restarted, now_ms).await
}

async fn acquire_at(
    lake: &Location,
    holder: &str,
    ttl: Duration,
    restarted: bool,
    now: impl Fn() -> i64,
) -> Result<Result<Lease, HeldBy>, LeaseError> {
    loop {
        let newest = newest(lake).await?;
        let next = match &newest {
            Some((_, r)) if (r.holder != holder || !restarted) && r.expires_at_ms > now() => {
                return Ok(Err(HeldBy { holder: r.holder.clone(), expires_at_ms: r.expires_at_ms }));
            }
            Some((epoch, _)) => epoch + 1,
            None => 1,
        };
        let at = now();
        let record = Record { holder: holder.to_string(), expires_at_ms: at + ttl.as_millis() as i64 };
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match lake.store.put_opts(&lake.child(&epoch_path(next)), body(&record).into(), opts).await {
            Ok(_) => {
                let lease = Lease {
                    lake: lake.clone(),
                    holder: holder.to_string(),
                    epoch: next,
                    ttl,
                    valid_until_ms: record.expires_at_ms - margin(ttl),
                };
                lease.forget_before(next).await;
                return Ok(Ok(lease));
            }
            // Another server took this epoch first: look again.
            Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Lease {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Unix milliseconds until which this process may act as the holder.
    pub fn valid_until_ms(&self) -> i64 {
        self.valid_until_ms
    }

    /// Still ours (locally: no store access).
    pub fn is_valid(&self) -> bool {
        now_ms() < self.valid_until_ms
    }

    /// Extend the lease. `Ok(false)`: it is lost (a newer epoch exists, or
    /// this renewal came too late to count); the server stops taking events.
    pub async fn renew(&mut self) -> Result<bool, LeaseError> {
        self.renew_at(now_ms).await
    }

    async fn renew_at(&mut self, now: impl Fn() -> i64) -> Result<bool, LeaseError> {
        if now() >= self.valid_until_ms {
            return Ok(false);
        }
        if newest(&self.lake).await?.map(|(e, _)| e) != Some(self.epoch) {
            self.valid_until_ms = 0;
            return Ok(false);
        }
        let record = Record { holder: self.holder.clone(), expires_at_ms: now() + self.ttl.as_millis() as i64 };
        self.lake.store.put(&self.lake.child(&epoch_path(self.epoch)), body(&record).into()).await?;
        // A successor could only have started after the expiry it read, which
        // is after the old validity ended: still ours if that has not passed.
        if now() >= self.valid_until_ms {
            return Ok(false);
        }
        self.valid_until_ms = record.expires_at_ms - margin(self.ttl);
        Ok(true)
    }

    /// Give the lease up at once (a graceful stop): the next server takes
    /// it without waiting for the expiry.
    pub async fn release(self) -> Result<(), LeaseError> {
        if newest(&self.lake).await?.map(|(e, _)| e) == Some(self.epoch) {
            let record = Record { holder: self.holder.clone(), expires_at_ms: 0 };
            self.lake.store.put(&self.lake.child(&epoch_path(self.epoch)), body(&record).into()).await?;
        }
        Ok(())
    }

    /// Delete epochs older than the last [`KEEP`] (best effort: a file left
    /// behind is deleted by the next holder).
    async fn forget_before(&self, epoch: u64) {
        let Ok(epochs) = epochs(&self.lake).await else { return };
        for e in epochs.into_iter().filter(|e| e + KEEP < epoch) {
            let _ = self.lake.store.delete(&self.lake.child(&epoch_path(e))).await;
        }
    }
}

fn body(r: &Record) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(r).expect("a lease record serialises"))
}

async fn epochs(lake: &Location) -> Result<Vec<u64>, object_store::Error> {
    Ok(lake.list_numbered(LEASE_DIR, ".json").await?.into_iter().map(|(e, _)| e).collect())
}

/// The newest epoch and its record.
async fn newest(lake: &Location) -> Result<Option<(u64, Record)>, LeaseError> {
    let Some(epoch) = epochs(lake).await?.last().copied() else { return Ok(None) };
    let path = epoch_path(epoch);
    // None: deleted by a holder's clean-up between the list and the read.
    let Some(bytes) = lake.get_opt(&path).await? else { return Box::pin(newest(lake)).await };
    let record = serde_json::from_slice(&bytes).map_err(|e| LeaseError::Unreadable(path, e))?;
    Ok(Some((epoch, record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn lake() -> (tempfile::TempDir, Location) {
        let dir = tempfile::tempdir().unwrap();
        let lake = super::super::store::open(dir.path().to_str().unwrap()).unwrap();
        (dir, lake)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let (_dir, lake) = lake();
        let t0 = 1_000_000_000_000;
        let mut a = acquire_at(&lake, "a:1", TTL, true, || t0).await.unwrap().unwrap();
        assert_eq!(a.epoch(), 1);
        // Valid until the written expiry minus a third of the TTL.
        assert_eq!(a.valid_until_ms(), t0 + 30_000 - 10_000);
        // b finds a's lease and its expiry.
        let held = acquire_at(&lake, "b:1", TTL, true, || t0 + 29_999).await.unwrap().unwrap_err();
        assert_eq!(held, HeldBy { holder: "a:1".into(), expires_at_ms: t0 + 30_000 });
        // a renews at +15 s: expiry +45 s, valid until +35 s.
        assert!(a.renew_at(|| t0 + 15_000).await.unwrap());
        assert_eq!(a.valid_until_ms(), t0 + 35_000);
        assert!(acquire_at(&lake, "b:1", TTL, true, || t0 + 44_999).await.unwrap().is_err());
        // a stops renewing: b takes epoch 2 once the expiry has passed ...
        let b = acquire_at(&lake, "b:1", TTL, true, || t0 + 45_000).await.unwrap().unwrap();
        assert_eq!(b.epoch(), 2);
        // ... and a, late, cannot renew, nor could it have before (a newer epoch).
        assert!(!a.renew_at(|| t0 + 46_000).await.unwrap());
        let mut a2 = Lease { valid_until_ms: i64::MAX, ..a };
        assert!(!a2.renew_at(|| t0 + 46_000).await.unwrap(), "a newer epoch exists");
        assert_eq!(a2.valid_until_ms(), 0);
        // Released: c takes it at once, long before b's expiry.
        b.release().await.unwrap();
        let c = acquire_at(&lake, "c:1", TTL, true, || t0 + 46_000).await.unwrap().unwrap();
        assert_eq!(c.epoch(), 3);
    }

    #[tokio::test]
    async fn the_same_holder_takes_its_lease_again_at_once_and_old_epochs_go() {
        let (dir, lake) = lake();
        let t0 = 1_000_000_000_000;
        for epoch in 1..=5 {
            // A restart under the same name (the process before was killed).
            let l = acquire_at(&lake, "host:8080", TTL, true, || t0 + epoch as i64).await.unwrap().unwrap();
            assert_eq!(l.epoch(), epoch);
        }
        // Epochs 3, 4, 5 are kept; 1 and 2 deleted.
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join(LEASE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["00000000000000000003.json", "00000000000000000004.json", "00000000000000000005.json"]);
        // Another name still waits for the expiry, and so does the same
        // name when it is not a restart (a running server that lost it).
        assert!(acquire_at(&lake, "other:8080", TTL, true, || t0 + 10).await.unwrap().is_err());
        assert!(acquire_at(&lake, "host:8080", TTL, false, || t0 + 10).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_renewal_that_comes_too_late_does_not_revive_the_lease() {
        let (_dir, lake) = lake();
        let t0 = 1_000_000_000_000;
        let mut a = acquire_at(&lake, "a:1", TTL, true, || t0).await.unwrap().unwrap();
        // Valid until +20 s; a renewal at +20 s is too late even though
        // nobody took the lease (b could have read the expiry any moment).
        assert!(!a.renew_at(|| t0 + 20_000).await.unwrap());
    }
}
