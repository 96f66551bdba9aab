//! What a long-running writer (the streaming pipeline) keeps between its
//! commits so that a small commit costs little on a large book:
//!
//! - the key and row hashes of stored data files, which upsert resolution
//!   reads for every file of a partition it touches. Data files are never
//!   changed once written (a rewrite is a new file), so an entry can never
//!   be stale, whoever wrote the file; the cache is bounded in bytes.
//! - each tenant's rollup state ([`TenantRollups`]) with the lake version
//!   it reflects. A commit on top of exactly that version updates it with
//!   the rows it adds and removes; after any other writer's version the
//!   tenant is rebuilt in full once and kept again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::key_index::KeyIndex;
use super::resolve::StoredRows;
use crate::contract::Entity;
use crate::query::rollups::TenantRollups;

/// Bytes of stored keys, row hashes and stamps kept at most (24 bytes a
/// row, plus ~40 for a streamed row's stamp): the files a writer reads
/// again soon (those it just wrote, and those it rewrites).
const KEY_BYTES: u64 = 128 << 20;

/// Bytes of key indexes kept at most (about 20 bytes a key): some 25 M
/// stored rows. Past it, a partition's index is dropped and its next
/// commit reads every stored key again (and builds it anew).
const INDEX_BYTES: u64 = 512 << 20;

#[derive(Default)]
pub struct WriterCache {
    keys: Mutex<KeyCache>,
    indexes: Mutex<Indexes>,
    /// tenant → (version, state)
    rollups: Mutex<HashMap<String, (u64, TenantRollups)>>,
    /// Tenant rollups updated from a commit's rows (not rebuilt).
    updates: AtomicU64,
}

impl std::fmt::Debug for WriterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterCache").finish_non_exhaustive()
    }
}

/// (entity, tenant) → which file holds each key; and the bytes of all.
#[derive(Default)]
struct Indexes(HashMap<(Entity, String), KeyIndex>, u64);

#[derive(Default)]
struct KeyCache {
    files: HashMap<String, Arc<StoredRows>>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
    bytes: u64,
}

impl WriterCache {
    /// The stored keys of the file at `path` (the store's full path), if kept.
    pub fn keys(&self, path: &str) -> Option<Arc<StoredRows>> {
        self.keys.lock().expect("key cache").files.get(path).cloned()
    }

    pub fn keep_keys(&self, path: &str, rows: Arc<StoredRows>) {
        let mut c = self.keys.lock().expect("key cache");
        if c.files.contains_key(path) {
            return;
        }
        c.bytes += rows.bytes();
        c.files.insert(path.to_string(), rows);
        c.order.push_back(path.to_string());
        // Oldest first: a file rewritten by a later commit is read no more.
        while c.bytes > KEY_BYTES
            && let Some(old) = c.order.pop_front()
        {
            if let Some(r) = c.files.remove(&old) {
                c.bytes -= r.bytes();
            }
        }
    }

    /// Take the partition's key index out (a new one if none is kept).
    pub fn take_index(&self, entity: Entity, tenant: &str) -> KeyIndex {
        let mut m = self.indexes.lock().expect("key indexes");
        match m.0.remove(&(entity, tenant.to_string())) {
            Some(idx) => {
                m.1 -= idx.bytes();
                idx
            }
            None => KeyIndex::default(),
        }
    }

    /// Keep the partition's index, unless the indexes would outgrow their
    /// bound: then the partition is marked unindexed, and its commits read
    /// every stored key (as a batch run does) instead of building it again.
    pub fn keep_index(&self, entity: Entity, tenant: &str, idx: KeyIndex) {
        let mut m = self.indexes.lock().expect("key indexes");
        let idx = if m.1 + idx.bytes() > INDEX_BYTES {
            tracing::warn!(entity = entity.name(), tenant, keys = idx.keys(), "key index over its bound: not kept");
            KeyIndex::unindexed()
        } else {
            idx
        };
        m.1 += idx.bytes();
        m.0.insert((entity, tenant.to_string()), idx);
    }

    /// Take the tenant's rollup state if it reflects `version` (a state of
    /// any other version is dropped: it is of no use any more).
    pub fn take_rollups(&self, tenant: &str, version: u64) -> Option<TenantRollups> {
        let mut m = self.rollups.lock().expect("rollup states");
        match m.remove(tenant) {
            Some((v, state)) if v == version => Some(state),
            _ => None,
        }
    }

    pub fn keep_rollups(&self, tenant: String, version: u64, state: TenantRollups) {
        self.rollups.lock().expect("rollup states").insert(tenant, (version, state));
    }

    /// Every state kept for version `from` now stands for `to`: a version
    /// that changed no fact of their tenants.
    pub fn advance_rollups(&self, from: u64, to: u64) {
        for (v, _) in self.rollups.lock().expect("rollup states").values_mut() {
            if *v == from {
                *v = to;
            }
        }
    }

    /// Bytes held now: (stored keys of files, key indexes), each bounded
    /// (by [`KEY_BYTES`] and [`INDEX_BYTES`]).
    pub fn bytes(&self) -> (u64, u64) {
        let keys = self.keys.lock().expect("key cache").bytes;
        let indexes = self.indexes.lock().expect("key indexes").1;
        (keys, indexes)
    }

    /// The bounds of [`WriterCache::bytes`].
    pub const BOUNDS: (u64, u64) = (KEY_BYTES, INDEX_BYTES);

    pub fn record_update(&self) {
        self.updates.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times a tenant's rollups were updated rather than rebuilt.
    pub fn rollup_updates(&self) -> u64 {
        self.updates.load(Ordering::Relaxed)
    }
}
