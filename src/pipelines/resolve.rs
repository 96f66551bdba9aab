//! Upsert by key, decided per (entity, tenant) partition: which staged rows
//! land and which stored rows they replace.
//!
//! Rules: within the run, a later file wins over an earlier one (files are
//! taken in name order); a staged row identical to the stored row with the
//! same key changes nothing; a different one replaces it — unless both
//! carry a stamp (the event that wrote them) and the stored one is later:
//! then the staged row is stale and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray};

use super::stage::KeyMap;
use crate::contract::{Entity, Stamp};

/// Rows of one stored file: key hash, row hash and stamp per row.
pub struct StoredRows {
    pub keys: Vec<u128>,
    pub hashes: Vec<u64>,
    /// Stamp columns of the file's batches, in row order, from the first
    /// batch with a stamp on (rows past them have none).
    pub stamps: Vec<(Int64Array, StringArray)>,
}

impl StoredRows {
    /// Memory held, for the writer cache's bound.
    pub fn bytes(&self) -> u64 {
        let stamps: usize =
            self.stamps.iter().map(|(at, id)| at.get_array_memory_size() + id.get_array_memory_size()).sum();
        (self.keys.capacity() * 16 + self.hashes.capacity() * 8 + stamps) as u64
    }

    /// Row `r`'s stamp, if the event that wrote it left one.
    pub fn stamp(&self, mut r: usize) -> Option<(i64, &str)> {
        for (at, id) in &self.stamps {
            if r < at.len() {
                return (!at.is_null(r)).then(|| (at.value(r), id.value(r)));
            }
            r -= at.len();
        }
        None
    }
}

/// The stamps of the rows a streaming micro-batch lands, per (entity,
/// tenant) partition and key.
pub type PartitionStamps = HashMap<(Entity, String), Arc<KeyMap<Stamp>>>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    /// Keys not stored before.
    pub new: u64,
    /// Keys stored before with other content: replaced.
    pub updated: u64,
    /// Keys stored before with the same content: nothing to do.
    pub unchanged: u64,
    /// Staged rows replaced by a later file of the same run.
    pub superseded: u64,
    /// Staged rows of events older than the stored row's: nothing to do.
    pub stale: u64,
}

/// Keep-masks: `staged[i][r]` — does row `r` of staged part `i` land;
/// `stored[j]` — `None` if stored file `j` stays whole, else its mask.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolution {
    pub staged: Vec<Vec<bool>>,
    pub stored: Vec<Option<Vec<bool>>>,
    pub counts: UpsertCounts,
}

/// `staged`: (key, row hash) of each staged part's rows, parts in landing
/// order. `stored`: the partition's files in the previous snapshot.
/// `stamps`: the staged rows' stamps by key (streamed rows only).
pub fn resolve(staged: &[&[(u128, u64)]], stored: &[Arc<StoredRows>], stamps: Option<&KeyMap<Stamp>>) -> Resolution {
    let total: usize = staged.iter().map(|p| p.len()).sum();
    let mut winners: KeyMap<(u32, u32, u64)> = KeyMap::with_capacity_and_hasher(total, Default::default());
    for (pi, part) in staged.iter().enumerate() {
        for (ri, &(key, hash)) in part.iter().enumerate() {
            winners.insert(key, (pi as u32, ri as u32, hash));
        }
    }
    let mut counts = UpsertCounts { superseded: (total - winners.len()) as u64, ..Default::default() };
    let mut staged_keep: Vec<Vec<bool>> = staged.iter().map(|p| vec![false; p.len()]).collect();
    for &(pi, ri, _) in winners.values() {
        staged_keep[pi as usize][ri as usize] = true;
    }
    let mut stored_keep = Vec::with_capacity(stored.len());
    for file in stored {
        let mut mask: Option<Vec<bool>> = None;
        for (r, (key, old_hash)) in file.keys.iter().zip(&file.hashes).enumerate() {
            let Some(&(pi, ri, hash)) = winners.get(key) else { continue };
            let incoming = stamps.and_then(|m| m.get(key)).map(|(at, id)| (*at, id.as_str()));
            if let (Some(new), Some(old)) = (incoming, file.stamp(r))
                && old > new
            {
                staged_keep[pi as usize][ri as usize] = false;
                counts.stale += 1;
            } else if hash == *old_hash {
                staged_keep[pi as usize][ri as usize] = false;
                counts.unchanged += 1;
            } else {
                mask.get_or_insert_with(|| vec![true; file.keys.len()])[r] = false;
                counts.updated += 1;
            }
        }
        stored_keep.push(mask);
    }
    let landing: u64 = staged_keep.iter().flatten().filter(|k| **k).count() as u64;
    counts.new = landing - counts.updated;
    Resolution { staged: staged_keep, stored: stored_keep, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_file_wins_and_identical_rows_change_nothing() {
        // Stored: keys 1 (hash 10), 2 (hash 20), 3 (hash 30).
        let stored = [Arc::new(StoredRows { keys: vec![1, 2, 3], hashes: vec![10, 20, 30], stamps: Vec::new() })];
        // File A: key 1 unchanged, key 2 changed (21), key 4 new (40).
        // File B (later): key 2 changed again (22), key 5 new.
        let a: &[(u128, u64)] = &[(1, 10), (2, 21), (4, 40)];
        let b: &[(u128, u64)] = &[(2, 22), (5, 50)];
        let r = resolve(&[a, b], &stored, None);
        assert_eq!(r.staged, vec![vec![false, false, true], vec![true, true]]);
        assert_eq!(r.stored, vec![Some(vec![true, false, true])]);
        assert_eq!(r.counts, UpsertCounts { new: 2, updated: 1, unchanged: 1, superseded: 1, stale: 0 });
    }

    #[test]
    fn rerun_of_the_same_rows_lands_nothing() {
        let stored = [Arc::new(StoredRows { keys: vec![1, 2], hashes: vec![10, 20], stamps: Vec::new() })];
        let a: &[(u128, u64)] = &[(1, 10), (2, 20)];
        let r = resolve(&[a], &stored, None);
        assert_eq!(r.staged, vec![vec![false, false]]);
        assert_eq!(r.stored, vec![None]);
        assert_eq!(r.counts, UpsertCounts { new: 0, updated: 0, unchanged: 2, superseded: 0, stale: 0 });
    }

    #[test]
    fn an_event_older_than_the_stored_rows_event_changes_nothing() {
        // Stored in two batches: keys 1 and 2 stamped (100, "e5"), key 3
        // without a stamp (a landing file's row), key 4 stamped (300, "e1").
        let stamps = vec![
            (Int64Array::from(vec![Some(100), Some(100)]), StringArray::from(vec![Some("e5"), Some("e5")])),
            (Int64Array::from(vec![None, Some(300)]), StringArray::from(vec![None, Some("e1")])),
        ];
        let stored = [Arc::new(StoredRows { keys: vec![1, 2, 3, 4], hashes: vec![10, 20, 30, 40], stamps })];
        assert_eq!(stored[0].stamp(3), Some((300, "e1")));
        assert_eq!(stored[0].stamp(2), None);
        assert_eq!(stored[0].stamp(4), None);
        // Incoming, all changed: key 1 older by time (99), key 2 at the same
        // time but a smaller event id ("e4" < "e5"), key 3 stamped (any stamp
        // beats none), key 4 later (301).
        let a: &[(u128, u64)] = &[(1, 11), (2, 21), (3, 31), (4, 41)];
        let mut incoming = KeyMap::default();
        incoming.insert(1, (99, "e9".to_string()));
        incoming.insert(2, (100, "e4".to_string()));
        incoming.insert(3, (1, "e0".to_string()));
        incoming.insert(4, (301, "e0".to_string()));
        let r = resolve(&[a], &stored, Some(&incoming));
        assert_eq!(r.staged, vec![vec![false, false, true, true]]);
        assert_eq!(r.stored, vec![Some(vec![true, true, false, false])]);
        assert_eq!(r.counts, UpsertCounts { new: 0, updated: 2, unchanged: 0, superseded: 0, stale: 2 });
    }
}
