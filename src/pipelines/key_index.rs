//! Which stored file of a partition holds a key: kept per (entity, tenant)
//! partition by a long-running writer, so that upserting a micro-batch
//! costs what the batch costs, not what the partition holds.
//!
//! Without it, upsert resolution reads the key of every stored row of each
//! partition a batch touches and looks it up among the batch's keys: a
//! streamed partition grows by every batch, so each commit took longer than
//! the last. With it, each staged key is looked up here and only the files
//! that hold one of them are read.
//!
//! The index is brought to the base version's files before each use
//! ([`KeyIndex::diff`], [`KeyIndex::apply`]), whoever wrote them (this
//! writer, a batch run, a compaction), so it is never trusted beyond what
//! it was checked against. It keeps 64 bits of each 128-bit key hash: two
//! keys that share them mark the entry [`MANY`], and a lookup that meets
//! one reads every file of the partition, so a collision costs time, never
//! a wrong answer.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::resolve::StoredRows;
use crate::lake::DataFile;

/// An entry shared by keys of different files: look in every file.
const MANY: u32 = u32::MAX;

/// Hashes an already uniform 64-bit fingerprint by itself.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = k;
    }
}

fn fingerprint(key: u128) -> u64 {
    key as u64
}

/// The files of one partition and, per key fingerprint, the file that
/// holds it.
#[derive(Default)]
pub struct KeyIndex {
    /// Slot → path and rows; `None` once the file left the partition.
    paths: Vec<Option<(String, usize)>>,
    slots: HashMap<String, u32>,
    keys: HashMap<u64, u32, BuildHasherDefault<FingerprintHasher>>,
    /// The partition outgrew the writer's bound for indexes: not indexed.
    pub unindexed: bool,
}

/// Which stored files a batch's keys touch.
#[derive(Debug, PartialEq, Eq)]
pub enum Touched {
    /// Positions (in the partition's file list) of the files to read.
    Files(BTreeSet<usize>),
    /// A fingerprint shared by files: read them all.
    All,
}

impl KeyIndex {
    /// The mark of a partition whose keys are not indexed.
    pub fn unindexed() -> Self {
        KeyIndex { unindexed: true, ..KeyIndex::default() }
    }

    /// Files of `files` not in the index yet, and indexed paths no longer
    /// among `files`: what [`KeyIndex::apply`] needs the rows of.
    pub fn diff<'a>(&self, files: &'a [DataFile]) -> (Vec<&'a DataFile>, Vec<String>) {
        let now: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let added = files.iter().filter(|f| !self.slots.contains_key(&f.path)).collect();
        let removed = self.slots.keys().filter(|p| !now.contains(p.as_str())).cloned().collect();
        (added, removed)
    }

    /// Forget the `removed` files' keys, then index the `added` files'.
    pub fn apply(&mut self, removed: &[(String, Arc<StoredRows>)], added: &[(String, Arc<StoredRows>)]) {
        for (path, rows) in removed {
            let Some(slot) = self.slots.remove(path) else { continue };
            self.paths[slot as usize] = None;
            for key in &rows.keys {
                let fp = fingerprint(*key);
                if self.keys.get(&fp) == Some(&slot) {
                    self.keys.remove(&fp);
                }
            }
        }
        for (path, rows) in added {
            if self.slots.contains_key(path) {
                continue;
            }
            let slot = match self.paths.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.paths.push(None);
                    self.paths.len() - 1
                }
            } as u32;
            self.paths[slot as usize] = Some((path.clone(), rows.keys.len()));
            self.slots.insert(path.clone(), slot);
            self.keys.reserve(rows.keys.len());
            for key in &rows.keys {
                self.keys.entry(fingerprint(*key)).and_modify(|s| *s = MANY).or_insert(slot);
            }
        }
    }

    /// The files of `files` (the indexed partition, in its order) that
    /// hold any of `keys`.
    pub fn touched<'k>(&self, files: &[DataFile], keys: impl IntoIterator<Item = &'k u128>) -> Touched {
        let mut slots = BTreeSet::new();
        for key in keys {
            match self.keys.get(&fingerprint(*key)) {
                Some(&MANY) => return Touched::All,
                Some(&slot) => {
                    slots.insert(slot);
                }
                None => {}
            }
        }
        let wanted: BTreeSet<&str> =
            slots.iter().filter_map(|s| self.paths[*s as usize].as_ref().map(|(p, _)| p.as_str())).collect();
        Touched::Files(
            files.iter().enumerate().filter(|(_, f)| wanted.contains(f.path.as_str())).map(|(i, _)| i).collect(),
        )
    }

    /// Keys indexed.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Rows of the indexed files among `paths`.
    pub fn rows_of(&self, paths: &[String]) -> usize {
        let slot = |p: &String| self.slots.get(p).and_then(|s| self.paths[*s as usize].as_ref());
        paths.iter().filter_map(slot).map(|(_, rows)| rows).sum()
    }

    /// Memory held, for the writer cache's bound: a hash-table entry (8 +
    /// 4 bytes, padded to 16, one control byte, at most 7/8 full) per key.
    pub fn bytes(&self) -> u64 {
        (self.keys.capacity() * 17 + self.slots.len() * 120) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> DataFile {
        DataFile { path: path.into(), tenant_id: "t1".into(), rows: 0, bytes: 0 }
    }

    fn rows(keys: &[u128]) -> Arc<StoredRows> {
        Arc::new(StoredRows { keys: keys.to_vec(), hashes: vec![0; keys.len()], stamps: Vec::new() })
    }

    #[test]
    fn keys_lead_to_their_files_as_files_come_and_go() {
        let (a, b) = (rows(&[1, 2, 3]), rows(&[4, 5]));
        let mut idx = KeyIndex::default();
        let files = vec![file("a"), file("b")];
        let (added, removed) = idx.diff(&files);
        assert_eq!((added.len(), removed.len()), (2, 0));
        idx.apply(&[], &[("a".into(), a.clone()), ("b".into(), b.clone())]);
        assert_eq!(idx.keys(), 5);
        assert_eq!(idx.rows_of(&["b".to_string(), "x".to_string()]), 2);
        assert_eq!(idx.touched(&files, &[2, 9]), Touched::Files([0].into()));
        assert_eq!(idx.touched(&files, &[5, 1]), Touched::Files([0, 1].into()));
        assert_eq!(idx.touched(&files, &[9]), Touched::Files([].into()));

        // "a" rewritten as "a2" without key 2; key 2 lands in "c".
        let (a2, c) = (rows(&[1, 3]), rows(&[2, 6]));
        let files = vec![file("b"), file("a2"), file("c")];
        let (added, removed) = idx.diff(&files);
        assert_eq!(added.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a2", "c"]);
        assert_eq!(removed, ["a"]);
        idx.apply(&[("a".into(), a.clone())], &[("a2".into(), a2.clone()), ("c".into(), c.clone())]);
        assert_eq!(idx.keys(), 6);
        assert_eq!(idx.touched(&files, &[2]), Touched::Files([2].into()));
        assert_eq!(idx.touched(&files, &[3, 4]), Touched::Files([0, 1].into()));
        // The freed slot is taken again.
        assert_eq!(idx.paths.len(), 3);
    }

    #[test]
    fn keys_that_share_a_fingerprint_send_a_lookup_to_every_file() {
        // Same low 64 bits, different keys, in different files.
        let (k1, k2) = (7u128, (1u128 << 64) | 7);
        let (a, b) = (rows(&[k1, 8]), rows(&[k2]));
        let mut idx = KeyIndex::default();
        let files = vec![file("a"), file("b")];
        idx.apply(&[], &[("a".into(), a.clone()), ("b".into(), b.clone())]);
        assert_eq!(idx.touched(&files, &[k2]), Touched::All);
        assert_eq!(idx.touched(&files, &[8]), Touched::Files([0].into()));
        // Removing one of them keeps the entry shared: still correct.
        idx.apply(&[("b".into(), b.clone())], &[]);
        assert_eq!(idx.touched(&files[..1], &[k1]), Touched::All);
    }
}
