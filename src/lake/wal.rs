//! The streaming write-ahead log: accepted events, durable before they are
//! acknowledged, until a lake version contains them.
//!
//! ```text
//! _stream/wal/<seq:020>.ndjson   one segment per accepted request: its events, one per line
//! ```
//!
//! A segment is written with a create-if-absent put under the next sequence
//! number, so two acceptors never overwrite each other (the loser takes the
//! next number), and on a local lake it is fsynced (file and directory)
//! before the put counts as done. The streaming writer commits segments in
//! sequence order and records the highest one in the lake version
//! (an application transaction, see `snapshot::Operation::txn`); segments at
//! or below it are deleted afterwards. Because a number is taken before its
//! segment is written, the writer commits only up to the lowest number still
//! being written ([`Wal::durable_through`]): a slow put can never be skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};

use super::store::Location;

pub const WAL_DIR: &str = "_stream/wal";
/// Where an earlier release kept the stamps (latest `occurred_at` and event
/// id per key) of the events each micro-batch applied; removed on open.
pub const STAMPS_DIR: &str = "_stream/stamps";
/// The application id of the streaming writer's transactions.
pub const STREAM_APP: &str = "cip-stream";

fn segment_path(seq: u64) -> String {
    format!("{WAL_DIR}/{seq:020}.ndjson")
}

/// Sequence numbers handed out and not yet durable or abandoned.
#[derive(Default)]
struct Numbers {
    next: u64,
    writing: BTreeSet<u64>,
}

/// A number being written, until dropped.
struct Writing<'a>(&'a Mutex<Numbers>, u64);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("wal lock").writing.remove(&self.1);
    }
}

/// The log of one lake, as one process appends to it.
pub struct Wal {
    lake: Location,
    numbers: Mutex<Numbers>,
    /// Segments durable and not yet committed: seq → bytes, and their sum
    /// (what the ingest doors bound, so a fact waits at most a few batches).
    pending: Mutex<(BTreeMap<u64, u64>, u64)>,
}

impl Wal {
    /// Open the log: numbering continues after the highest segment found
    /// and after `committed` (the lake's recorded transaction), whichever is
    /// higher, so a number is never reused even once its segment is deleted.
    pub async fn open(lake: Location, committed: Option<u64>) -> Result<Self, object_store::Error> {
        let listed = list_sizes(&lake, WAL_DIR).await?;
        let next = listed.last().map(|(s, _)| *s).max(committed).map_or(1, |s| s + 1);
        let pending: BTreeMap<u64, u64> = listed.into_iter().filter(|(s, _)| Some(*s) > committed).collect();
        let total = pending.values().sum();
        Ok(Wal {
            lake,
            numbers: Mutex::new(Numbers { next, writing: BTreeSet::new() }),
            pending: Mutex::new((pending, total)),
        })
    }

    /// Bytes of the segments durable and not yet committed.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.lock().expect("wal pending").1
    }

    /// Bytes of the segments durable and not yet committed after `seq`.
    pub fn pending_bytes_after(&self, seq: u64) -> u64 {
        self.pending.lock().expect("wal pending").0.range(seq + 1..).map(|(_, b)| b).sum()
    }

    /// A lake version contains the segments at or below `through`.
    pub fn committed_through(&self, through: u64) {
        let mut p = self.pending.lock().expect("wal pending");
        let rest = p.0.split_off(&(through + 1));
        let done: u64 = p.0.values().sum();
        *p = (rest, p.1 - done);
    }

    /// Make `body` durable as the next segment; its sequence number.
    pub async fn append(&self, body: Bytes) -> Result<u64, object_store::Error> {
        loop {
            let seq = {
                let mut n = self.numbers.lock().expect("wal lock");
                let seq = n.next;
                n.next += 1;
                n.writing.insert(seq);
                seq
            };
            // Cleared however the put ends, also when its task is cancelled:
            // a number left "writing" would stop every later commit.
            let _writing = Writing(&self.numbers, seq);
            match self.put(seq, body.clone()).await {
                Ok(()) => {
                    let mut p = self.pending.lock().expect("wal pending");
                    p.0.insert(seq, body.len() as u64);
                    p.1 += body.len() as u64;
                    return Ok(seq);
                }
                // Another process took this number: take the next one.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn put(&self, seq: u64, body: Bytes) -> Result<(), object_store::Error> {
        let path = self.lake.child(&segment_path(seq));
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.lake.store.put_opts(&path, body.into(), opts).await?;
        if let Some(file) = self.lake.local_path(&path) {
            // The local store renames a finished temporary file into place
            // but does not flush it: a power cut could lose an acknowledged
            // segment without this.
            tokio::task::spawn_blocking(move || fsync_with_dir(&file))
                .await
                .map_err(|e| object_store::Error::Generic { store: "wal", source: Box::new(e) })?
                .map_err(|e| object_store::Error::Generic { store: "wal", source: Box::new(e) })?;
        }
        Ok(())
    }

    /// Every number at or below this is durable or was never acknowledged:
    /// what the writer may commit through.
    pub fn durable_through(&self) -> u64 {
        let n = self.numbers.lock().expect("wal lock");
        n.writing.first().copied().unwrap_or(n.next) - 1
    }

    /// Segments above `after` and at or below `through`, in order.
    pub async fn segments(&self, after: u64, through: u64) -> Result<Vec<u64>, object_store::Error> {
        Ok(list(&self.lake).await?.into_iter().filter(|s| *s > after && *s <= through).collect())
    }

    pub async fn read(&self, seq: u64) -> Result<Bytes, object_store::Error> {
        self.lake.store.get(&self.lake.child(&segment_path(seq))).await?.bytes().await
    }

    /// Delete segments at or below `through` (a lake version contains them).
    pub async fn truncate(&self, through: u64) -> Result<usize, object_store::Error> {
        let mut deleted = 0;
        for seq in list(&self.lake).await?.into_iter().filter(|s| *s <= through) {
            match self.lake.store.delete(&self.lake.child(&segment_path(seq))).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// Delete the stamp files an earlier release kept beside the log (the
/// stamps now live in the rows): a crash midway leaves some, deleted by
/// the next open.
pub async fn remove_stamp_files(lake: &Location) -> Result<usize, object_store::Error> {
    let metas: Vec<_> = match lake.store.list(Some(&lake.child(STAMPS_DIR))).try_collect().await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    for m in &metas {
        match lake.store.delete(&m.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(metas.len())
}

/// Sequence numbers of the segments in the log, ascending.
async fn list(lake: &Location) -> Result<Vec<u64>, object_store::Error> {
    list_dir(lake, WAL_DIR).await
}

async fn list_dir(lake: &Location, dir: &str) -> Result<Vec<u64>, object_store::Error> {
    Ok(list_sizes(lake, dir).await?.into_iter().map(|(s, _)| s).collect())
}

/// (sequence, bytes) of the numbered files in `dir`, ascending.
async fn list_sizes(lake: &Location, dir: &str) -> Result<Vec<(u64, u64)>, object_store::Error> {
    lake.list_numbered(dir, ".ndjson").await
}

fn fsync_with_dir(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numbers_continue_after_segments_and_commits_and_skip_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let lake = super::super::store::open(dir.path().to_str().unwrap()).unwrap();
        let wal = Wal::open(lake.clone(), None).await.unwrap();
        assert_eq!(wal.durable_through(), 0);
        assert_eq!(wal.append(Bytes::from_static(b"a\n")).await.unwrap(), 1);
        // Another process wrote segment 2 meanwhile: this one takes 3.
        lake.store.put(&lake.child(&segment_path(2)), Bytes::from_static(b"x\n").into()).await.unwrap();
        assert_eq!(wal.append(Bytes::from_static(b"b\n")).await.unwrap(), 3);
        assert_eq!(wal.durable_through(), 3);
        assert_eq!(wal.segments(1, 3).await.unwrap(), vec![2, 3]);
        assert_eq!(wal.read(3).await.unwrap(), Bytes::from_static(b"b\n"));
        assert!(dir.path().join("_stream/wal/00000000000000000003.ndjson").is_file());
        assert_eq!(wal.truncate(2).await.unwrap(), 2);
        assert_eq!(wal.segments(0, u64::MAX).await.unwrap(), vec![3]);
        // Reopened: after the highest segment, or the committed number if higher.
        assert_eq!(Wal::open(lake.clone(), None).await.unwrap().durable_through(), 3);
        assert_eq!(Wal::open(lake.clone(), Some(9)).await.unwrap().durable_through(), 9);
    }

    #[tokio::test]
    async fn pending_bytes_count_what_no_version_holds_also_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let lake = super::super::store::open(dir.path().to_str().unwrap()).unwrap();
        let wal = Wal::open(lake.clone(), None).await.unwrap();
        wal.append(Bytes::from_static(b"aaa\n")).await.unwrap(); // 1: 4 bytes
        wal.append(Bytes::from_static(b"bbbbbb\n")).await.unwrap(); // 2: 7 bytes
        wal.append(Bytes::from_static(b"c\n")).await.unwrap(); // 3: 2 bytes
        assert_eq!(wal.pending_bytes(), 13);
        wal.committed_through(2);
        assert_eq!(wal.pending_bytes(), 2);
        // Reopened with segment 1 committed (2 and 3 still to replay): 9.
        assert_eq!(Wal::open(lake.clone(), Some(1)).await.unwrap().pending_bytes(), 9);
        assert_eq!(Wal::open(lake, Some(3)).await.unwrap().pending_bytes(), 0);
    }
}
