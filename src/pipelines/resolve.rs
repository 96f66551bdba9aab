//! Upsert by key, decided per (entity, tenant) partition: which staged rows
//! land and which stored rows they replace.
//!
//! Rules: within the run, a later file wins over an earlier one (files are
//! taken in name order); a staged row identical to the stored row with the
//! same key changes nothing; a different one replaces it.

use std::sync::Arc;

use super::stage::KeyMap;

/// Rows of one stored file: key hash and row hash per row.
pub struct StoredRows {
    pub keys: Vec<u128>,
    pub hashes: Vec<u64>,
}

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
pub fn resolve(staged: &[&[(u128, u64)]], stored: &[Arc<StoredRows>]) -> Resolution {
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
            if hash == *old_hash {
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
        let stored = [Arc::new(StoredRows { keys: vec![1, 2, 3], hashes: vec![10, 20, 30] })];
        // File A: key 1 unchanged, key 2 changed (21), key 4 new (40).
        // File B (later): key 2 changed again (22), key 5 new.
        let a: &[(u128, u64)] = &[(1, 10), (2, 21), (4, 40)];
        let b: &[(u128, u64)] = &[(2, 22), (5, 50)];
        let r = resolve(&[a, b], &stored);
        assert_eq!(r.staged, vec![vec![false, false, true], vec![true, true]]);
        assert_eq!(r.stored, vec![Some(vec![true, false, true])]);
        assert_eq!(r.counts, UpsertCounts { new: 2, updated: 1, unchanged: 1, superseded: 1 });
    }

    #[test]
    fn rerun_of_the_same_rows_lands_nothing() {
        let stored = [Arc::new(StoredRows { keys: vec![1, 2], hashes: vec![10, 20] })];
        let a: &[(u128, u64)] = &[(1, 10), (2, 20)];
        let r = resolve(&[a], &stored);
        assert_eq!(r.staged, vec![vec![false, false]]);
        assert_eq!(r.stored, vec![None]);
        assert_eq!(r.counts, UpsertCounts { new: 0, updated: 0, unchanged: 2, superseded: 0 });
    }
}
