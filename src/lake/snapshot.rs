//! Versions of the lake as a whole, over its Delta tables.
//!
//! Every table is a Delta table (`<table>/_delta_log/…`). A version of the
//! lake pins one Delta version of each table, so that readers never serve
//! `commissions` of one publish with the rollups of another:
//!
//! ```text
//! _lake/<version:020>.json    the lake commit: each table's Delta version, and
//!                             for the tables this version changed, the exact
//!                             bytes of their Delta commit entries
//! _lake/_last.json            a hint: the newest version (readers list from it)
//! ```
//!
//! Publishing is one create-if-absent put of the next lake commit: the
//! single point where concurrent writers serialise (the loser re-bases on
//! the new version and tries again, see [`commit`]). Only then are the
//! tables' Delta commit entries written, each create-if-absent with the
//! bytes the lake commit holds; whoever finds one missing (a writer crashed
//! in between) writes it, so "rolled forward" is idempotent and a lake
//! commit is never half-applied for long. Data files are written before the
//! lake commit under names nothing references yet: a crash before it leaves
//! the previous version as it was and only orphans, which `vacuum` removes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::delta::{self, DeltaError, TableCommit};
use super::store::Location;

pub const LAKE_DIR: &str = "_lake";
const LAST: &str = "_lake/_last.json";
/// The manifests of the lake format before Delta (refused with advice).
const OLD_SNAPSHOTS_DIR: &str = "_snapshots";
/// Attempts of [`commit`] before it gives up on a lake that keeps changing.
const MAX_ATTEMPTS: usize = 20;

/// One Parquet file of a table, as a version references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the lake root.
    pub path: String,
    pub tenant_id: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Table name → its live files.
pub type Tables = BTreeMap<String, Vec<DataFile>>;

/// A published version of the lake, as readers see it: every live file of
/// every table, and the Delta version of each table it pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub parent: Option<u64>,
    pub run_id: String,
    pub created_at: String,
    pub tables: Tables,
    /// Table → its Delta version in this lake version.
    #[serde(default)]
    pub delta_versions: BTreeMap<String, u64>,
    /// Table → the id of its Delta table (its `metaData.id`); empty for
    /// tables of lakes written before ids were recorded.
    #[serde(default)]
    pub table_ids: BTreeMap<String, String>,
    /// Application transactions: app id → the highest sequence of its input
    /// that this version contains (the streaming writer's log position).
    #[serde(default)]
    pub txns: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn empty() -> Self {
        Manifest {
            version: 0,
            parent: None,
            run_id: String::new(),
            created_at: String::new(),
            tables: BTreeMap::new(),
            delta_versions: BTreeMap::new(),
            table_ids: BTreeMap::new(),
            txns: BTreeMap::new(),
        }
    }

    pub fn files(&self, table: &str) -> &[DataFile] {
        self.tables.get(table).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Files of `table` holding `tenant`'s rows.
    pub fn tenant_files<'a>(&'a self, table: &str, tenant: &'a str) -> impl Iterator<Item = &'a DataFile> + 'a {
        self.files(table).iter().filter(move |f| f.tenant_id == tenant)
    }

    pub fn rows(&self, table: &str) -> u64 {
        self.files(table).iter().map(|f| f.rows).sum()
    }

    /// Every file of `tenant`, with its table, in a fixed order: two
    /// versions hold the same rows of the tenant when these are equal.
    pub fn tenant_paths<'a>(&'a self, tenant: &'a str) -> Vec<(&'a str, &'a str)> {
        let files = self.tables.iter().flat_map(|(t, files)| files.iter().map(move |f| (t.as_str(), f)));
        files.filter(|(_, f)| f.tenant_id == tenant).map(|(t, f)| (t, f.path.as_str())).collect()
    }

    /// Tenants with at least one file in any table, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.tables.values().flatten().map(|f| f.tenant_id.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

/// `_lake/<version>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeCommit {
    pub version: u64,
    pub parent: Option<u64>,
    pub run_id: String,
    /// `ingest`, `score`, `optimize`, `migrate`, …
    pub operation: String,
    pub created_at: String,
    pub tables: BTreeMap<String, TableState>,
    /// Application transactions as of this version (carried forward from
    /// the parent, updated by the writer that names one): app id → the
    /// highest input sequence contained. Also written to each changed
    /// table's Delta entry as a `txn` action.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub txns: BTreeMap<String, u64>,
}

/// One table in a lake commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub delta_version: u64,
    pub files: u64,
    pub rows: u64,
    /// The Delta table's id (`metaData.id`), fixed at its creation: a table
    /// deleted and created again at the same path is another table, whose
    /// version N is not the old one's (caches key on it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_id: String,
    /// The Delta commit entry this lake version adds (only where it changed
    /// the table): written to `_delta_log/<delta_version>.json` verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("version {0} was published by another writer first")]
    Conflict(u64),
    #[error("lake version {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error(
        "this lake is in cip's old manifest format (_snapshots/), which other tools cannot read: \
         run `cip lake migrate --lake <lake>` to turn it into Delta tables in place, or delete it and ingest again"
    )]
    OldFormat,
    #[error("no lake version {0}")]
    NoSuchVersion(u64),
    #[error(
        "table {table} has a Delta version {version} that no lake version wrote: another tool wrote its log; \
         the lake is written only by cip (remove that entry, or restore the table's _delta_log from a backup)"
    )]
    Foreign { table: String, version: u64 },
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error("reading table {table} at Delta version {version}: {source}")]
    Table { table: String, version: u64, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("the lake kept changing: gave up after {0} attempts")]
    Contended(usize),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

fn commit_name(version: u64) -> String {
    format!("{LAKE_DIR}/{version:020}.json")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The highest published version, if any: from the hint, then listing only
/// the names after it (so opening stays fast after thousands of commits).
pub async fn latest_version(lake: &Location) -> Result<Option<u64>, SnapshotError> {
    let hint = match lake.store.get(&lake.child(LAST)).await {
        Ok(r) => {
            serde_json::from_slice::<serde_json::Value>(&r.bytes().await?).ok().and_then(|v| v["version"].as_u64())
        }
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let latest = match hint {
        // Versions are consecutive (each the create-if-absent put of the
        // next) and the hint is written after its version, so the newest
        // is found by asking for the next names in turn: usually none or
        // one. Listing from the hint instead walked the whole directory on
        // a local disk (a stat per version), a cost that grew with every
        // commit of a day's stream (one a second).
        Some(h) => {
            let mut v = h;
            while exists(lake, &commit_name(v + 1)).await? {
                v += 1;
            }
            Some(v)
        }
        None => {
            let metas: Vec<_> = lake.store.list(Some(&lake.child(LAKE_DIR))).try_collect().await?;
            metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok()).max()
        }
    };
    if latest.is_none() && is_old_format(lake).await? {
        return Err(SnapshotError::OldFormat);
    }
    Ok(latest)
}

async fn exists(lake: &Location, rel: &str) -> Result<bool, SnapshotError> {
    match lake.store.head(&lake.child(rel)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn is_old_format(lake: &Location) -> Result<bool, SnapshotError> {
    let old: Vec<_> = lake.store.list(Some(&lake.child(OLD_SNAPSHOTS_DIR))).try_collect().await?;
    Ok(!old.is_empty())
}

pub async fn read_commit(lake: &Location, version: u64) -> Result<LakeCommit, SnapshotError> {
    let name = commit_name(version);
    let bytes = match lake.store.get(&lake.child(&name)).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Err(SnapshotError::NoSuchVersion(version)),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Corrupt(name, e.to_string()))
}

/// Write the Delta commit entries a lake commit holds that are not there
/// yet. Looks before it writes, so a reader with read-only credentials can
/// read a version whose entries are in place.
async fn roll_forward(lake: &Location, commit: &LakeCommit) -> Result<(), SnapshotError> {
    for (table, state) in &commit.tables {
        let Some(entry) = &state.entry else { continue };
        let path = lake.child(&delta::commit_path(table, state.delta_version));
        for attempt in 0..5u32 {
            match lake.store.get(&path).await {
                Ok(found) => {
                    // Written by another process: it must be these very bytes,
                    // or something other than a lake commit wrote this log.
                    let there = found.bytes().await?;
                    if there.as_ref() != entry.as_bytes() {
                        return Err(foreign(table, state.delta_version));
                    }
                    break;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match lake.store.put_opts(&path, entry.clone().into_bytes().into(), opts).await {
                Ok(_) => break,
                // S3 answers overlapping conditional puts with 409, which
                // object_store reports as "exists" before the object does:
                // look again after a moment.
                Err(object_store::Error::AlreadyExists { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn foreign(table: &str, version: u64) -> SnapshotError {
    SnapshotError::Foreign { table: table.to_string(), version }
}

/// The lake at `version`: each table's live files at its pinned Delta version.
pub async fn read(lake: &Location, version: u64) -> Result<Manifest, SnapshotError> {
    let commit = read_commit(lake, version).await?;
    roll_forward(lake, &commit).await?;
    let mut tables = Tables::new();
    let mut delta_versions = BTreeMap::new();
    let mut table_ids = BTreeMap::new();
    for (table, state) in &commit.tables {
        let files = table_files(lake, table, state).await?;
        tables.insert(table.clone(), files.as_ref().clone());
        delta_versions.insert(table.clone(), state.delta_version);
        table_ids.insert(table.clone(), state.table_id.clone());
    }
    Ok(Manifest {
        version,
        parent: commit.parent,
        run_id: commit.run_id,
        created_at: commit.created_at,
        tables,
        delta_versions,
        table_ids,
        txns: commit.txns,
    })
}

/// File lists of (lake, table, Delta table id, Delta version) seen by this
/// process. A version of a Delta table never changes, so an entry is never
/// stale (a lake rebuilt at the same URL has new table ids); the map only
/// bounds memory.
type FileCache = Mutex<HashMap<CacheKey, Arc<Vec<DataFile>>>>;
type CacheKey = (String, String, String, u64);
const FILE_CACHE_ENTRIES: usize = 512;

fn file_cache() -> &'static FileCache {
    static CACHE: OnceLock<FileCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cache_key(lake: &Location, table: &str, state: &TableState, version: u64) -> CacheKey {
    (lake.object_url(&lake.prefix), table.to_string(), state.table_id.clone(), version)
}

fn remember(key: CacheKey, files: Arc<Vec<DataFile>>) {
    let mut cache = file_cache().lock().expect("file cache lock");
    if cache.len() >= FILE_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, files);
}

/// A table's live files at the version `state` pins: from this process's
/// cache; else the previous version's list with this version's entry
/// applied; else deltalake's replay of the log (from its checkpoint).
async fn table_files(lake: &Location, table: &str, state: &TableState) -> Result<Arc<Vec<DataFile>>, SnapshotError> {
    let v = state.delta_version;
    let cached = |v: u64| file_cache().lock().expect("file cache lock").get(&cache_key(lake, table, state, v)).cloned();
    if let Some(files) = cached(v) {
        return Ok(files);
    }
    let files = match (&state.entry, v.checked_sub(1).and_then(cached)) {
        (Some(entry), Some(previous)) => delta::apply_entry(table, &previous, entry)?,
        _ => delta::live_files(lake, table, v).await.map_err(|source| SnapshotError::Table {
            table: table.to_string(),
            version: v,
            source,
        })?,
    };
    let files = Arc::new(files);
    remember(cache_key(lake, table, state, v), files.clone());
    Ok(files)
}

/// The latest published version, or `None` for a lake never published to.
pub async fn latest(lake: &Location) -> Result<Option<Manifest>, SnapshotError> {
    match latest_version(lake).await? {
        Some(v) => Ok(Some(read(lake, v).await?)),
        None => Ok(None),
    }
}

/// What a writer publishes, for the lake log.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// `ingest`, `score`, `optimize`, `migrate`.
    pub name: &'a str,
    pub run_id: &'a str,
    /// False when the commit changes no row (compaction).
    pub data_change: bool,
    /// An application transaction this commit completes: (app id, the
    /// highest input sequence it contains). Replays skip what it covers.
    pub txn: Option<(&'a str, u64)>,
    /// Write due checkpoints in the background instead of before returning:
    /// for a long-running writer that commits every second (a process that
    /// exits after its commit would lose them).
    pub background_checkpoints: bool,
}

/// Publish `tables` as the version after `base`. Tables whose file set
/// differs from `base` get a Delta commit (their removes and adds); the rest
/// keep their Delta version. [`SnapshotError::Conflict`] if another writer
/// published that version first. Schemas of new tables are read from their
/// first file.
pub async fn publish(
    lake: &Location,
    base: &Manifest,
    tables: &Tables,
    op: Operation<'_>,
) -> Result<u64, SnapshotError> {
    let version = base.version + 1;
    let ts = now_ms();
    let mut states = BTreeMap::new();
    let empty: Vec<DataFile> = Vec::new();
    let names: std::collections::BTreeSet<&String> = tables.keys().chain(base.tables.keys()).collect();
    for table in names {
        let next = tables.get(table).unwrap_or(&empty);
        let old = base.tables.get(table).unwrap_or(&empty);
        let rows = next.iter().map(|f| f.rows).sum();
        let pinned = base.delta_versions.get(table).copied();
        let table_id = match pinned {
            Some(_) => base.table_ids.get(table).cloned().unwrap_or_default(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let old_paths: std::collections::BTreeSet<&str> = old.iter().map(|f| f.path.as_str()).collect();
        let new_paths: std::collections::BTreeSet<&str> = next.iter().map(|f| f.path.as_str()).collect();
        if let Some(v) = pinned.filter(|_| old_paths == new_paths) {
            let state = TableState { delta_version: v, files: next.len() as u64, rows, table_id, entry: None };
            states.insert(table.clone(), state);
            continue;
        }
        if pinned.is_none() && next.is_empty() {
            continue; // a table is created with its first file
        }
        let schema = match pinned {
            Some(_) => None,
            None => Some(
                super::parquet_io::read_schema(&lake.store, &lake.child(&next[0].path))
                    .await
                    .map_err(|e| SnapshotError::Table { table: table.clone(), version: 0, source: Box::new(e) })?,
            ),
        };
        let commit = TableCommit {
            table,
            table_id: &table_id,
            create: schema.as_deref(),
            removed: old.iter().filter(|f| !new_paths.contains(f.path.as_str())).collect(),
            added: next.iter().filter(|f| !old_paths.contains(f.path.as_str())).collect(),
            operation: if op.data_change { "WRITE" } else { "OPTIMIZE" },
            data_change: op.data_change,
            timestamp_ms: ts,
            run_id: op.run_id,
            txn: op.txn,
        };
        let entry = delta::commit_entry(&commit)?;
        let delta_version = pinned.map_or(0, |v| v + 1);
        let state = TableState { delta_version, files: next.len() as u64, rows, table_id, entry: Some(entry) };
        states.insert(table.clone(), state);
    }
    let mut txns = base.txns.clone();
    if let Some((app, seq)) = op.txn {
        // Never backwards: a writer that lost its lease mid-commit must not
        // move the position below what its successor committed.
        let at = txns.entry(app.to_string()).or_insert(seq);
        *at = (*at).max(seq);
    }
    let commit = LakeCommit {
        txns,
        version,
        parent: (base.version > 0).then_some(base.version),
        run_id: op.run_id.to_string(),
        operation: op.name.to_string(),
        created_at: chrono::DateTime::from_timestamp_millis(ts).unwrap_or_default().to_rfc3339(),
        tables: states,
    };
    // A Delta version that this commit would write but that exists already
    // was written by another tool: refuse before any lake commit names it.
    for (table, state) in commit.tables.iter().filter(|(_, s)| s.entry.is_some()) {
        match lake.store.head(&lake.child(&delta::commit_path(table, state.delta_version))).await {
            // Unless a newer lake version wrote it: then this is a lost race.
            Ok(_) => match lake.store.head(&lake.child(&commit_name(version))).await {
                Ok(_) => return Err(SnapshotError::Conflict(version)),
                Err(object_store::Error::NotFound { .. }) => return Err(foreign(table, state.delta_version)),
                Err(e) => return Err(e.into()),
            },
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let body = serde_json::to_vec(&commit).expect("lake commit serialises");
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match lake.store.put_opts(&lake.child(&commit_name(version)), body.into(), opts).await {
        Ok(_) => {}
        // Ours after all when a retried put found its own first attempt.
        Err(object_store::Error::AlreadyExists { .. }) => match read_commit(lake, version).await {
            Ok(there) if there == commit => {}
            Ok(_) => return Err(SnapshotError::Conflict(version)),
            // Unknown whose it is: never guess "another writer's" (a re-run
            // would then treat this run's own files as superseded).
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e.into()),
    }
    // Published: the roll-forward is finished by any reader if it fails here.
    if let Err(e) = roll_forward(lake, &commit).await {
        tracing::warn!(version, error = %e, "rolling the lake commit forward failed; readers will finish it");
    }
    for (table, state) in commit.tables.iter().filter(|(_, s)| s.entry.is_some()) {
        let mut files = tables.get(table).cloned().unwrap_or_default();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        remember(cache_key(lake, table, state, state.delta_version), Arc::new(files));
    }
    // The hint only speeds up finding the newest version: a lost write is harmless.
    let hint = serde_json::json!({ "version": version }).to_string();
    if let Err(e) = lake.store.put(&lake.child(LAST), hint.into_bytes().into()).await {
        tracing::warn!(error = %e, "could not update the lake's latest-version hint");
    }
    delta::after_commit(lake, &commit, op.background_checkpoints).await;
    Ok(version)
}

/// What a writer's step makes of a base version: the tables of the next
/// version (`None`: nothing to publish) and what it reports.
pub type Step<T> = (Option<Tables>, T);

/// The one commit path of every writer: take the latest version, let `step`
/// compute the next tables from it, publish; when another writer published
/// first, run `step` again on the newer version (its earlier files become
/// orphans for vacuum). Returns the version published (or the latest, when
/// `step` had nothing to change) and the report of the step's last run
/// (a step that counts its runs knows how many attempts it took).
pub async fn commit<T, E, F, Fut>(lake: &Location, op: Operation<'_>, mut step: F) -> Result<(Option<u64>, T), E>
where
    F: FnMut(Arc<Manifest>) -> Fut,
    Fut: Future<Output = Result<Step<T>, E>>,
    E: From<SnapshotError>,
{
    // The streaming writer (the one writer with an application transaction)
    // publishes every second or so; a writer whose step takes longer (a
    // batch run re-resolving its partitions) could lose to it every time.
    // After losing TURN_AFTER times in a row such a writer claims the next
    // turn, and the streaming writer waits before publishing until the turn
    // is released or expires.
    let frequent = op.txn.is_some();
    let mut claimed = false;
    let mut outcome = Err(SnapshotError::Contended(MAX_ATTEMPTS).into());
    for attempt in 1..=MAX_ATTEMPTS {
        if !frequent && attempt > TURN_AFTER {
            claimed |= turn::claim(lake, op.run_id).await;
        }
        let base = match latest(lake).await {
            Ok(m) => Arc::new(m.unwrap_or_else(Manifest::empty)),
            Err(e) => {
                outcome = Err(e.into());
                break;
            }
        };
        let (tables, report) = match step(base.clone()).await {
            Ok(r) => r,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        let Some(tables) = tables else {
            outcome = Ok(((base.version > 0).then_some(base.version), report));
            break;
        };
        if frequent {
            turn::wait(lake, op.run_id).await;
        } else if claimed {
            // Still ours while this attempt publishes (its step may have taken long).
            turn::claim(lake, op.run_id).await;
        }
        match publish(lake, &base, &tables, op).await {
            Ok(v) => {
                outcome = Ok((Some(v), report));
                break;
            }
            Err(SnapshotError::Conflict(v)) => {
                tracing::info!(version = v, attempt, "lake version taken by another writer; re-basing");
            }
            Err(e) => {
                outcome = Err(e.into());
                break;
            }
        }
    }
    if claimed {
        turn::release(lake, op.run_id).await;
    }
    outcome
}

/// Losses in a row after which a writer claims the next turn.
const TURN_AFTER: usize = 3;

/// A turn claimed by a writer that keeps losing to the streaming writer:
/// `_lake/_turn.json` naming its run and until when it holds (so a writer
/// that crashed holds nobody back for long).
mod turn {
    use object_store::ObjectStoreExt;

    use super::{LAKE_DIR, Location};

    /// How long a claim holds the streaming writer back at most; renewed
    /// by each attempt of the claimant.
    const HOLD_MS: i64 = 10_000;

    fn path() -> String {
        format!("{LAKE_DIR}/_turn.json")
    }

    /// Claim the next turn (best effort: `false` if it could not be written).
    pub async fn claim(lake: &Location, run_id: &str) -> bool {
        let until = chrono::Utc::now().timestamp_millis() + HOLD_MS;
        let body = serde_json::json!({ "run_id": run_id, "until_ms": until }).to_string();
        lake.store.put(&lake.child(&path()), body.into_bytes().into()).await.is_ok()
    }

    /// Give the turn back, if it is still ours.
    pub async fn release(lake: &Location, run_id: &str) {
        if holder(lake).await.is_some_and(|(r, _)| r == run_id) {
            let _ = lake.store.delete(&lake.child(&path())).await;
        }
    }

    /// Wait while another writer holds a turn: until it expires, and never
    /// longer than a claim lasts by this process's own clock (the
    /// claimant's could be ahead, and a claimant that crashed never releases).
    pub async fn wait(lake: &Location, run_id: &str) {
        let started = std::time::Instant::now();
        while let Some((holder, until)) = holder(lake).await {
            let left = until - chrono::Utc::now().timestamp_millis();
            if holder == run_id || left <= 0 || started.elapsed().as_millis() as i64 >= HOLD_MS {
                return;
            }
            tracing::debug!(%holder, left, "another writer has the turn; waiting");
            tokio::time::sleep(std::time::Duration::from_millis(left.clamp(1, 50) as u64)).await;
        }
    }

    /// (run id, until) of the claim, if any can be read.
    async fn holder(lake: &Location) -> Option<(String, i64)> {
        let bytes = lake.store.get(&lake.child(&path())).await.ok()?.bytes().await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((v["run_id"].as_str()?.to_string(), v["until_ms"].as_i64()?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A claimed turn holds the streaming writer's publish back until the
    /// claimant releases it; the claimant itself and an expired claim hold
    /// nobody back.
    #[tokio::test]
    async fn a_claimed_turn_holds_the_frequent_writer_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let lake = super::super::store::open(dir.path().to_str().unwrap()).unwrap();
        assert!(turn::claim(&lake, "batch-1").await);
        let waiting = tokio::spawn({
            let lake = lake.clone();
            async move { turn::wait(&lake, "stream").await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the stream waits while batch-1 has the turn");
        // Its own claim holds the claimant back not at all.
        tokio::time::timeout(Duration::from_millis(100), turn::wait(&lake, "batch-1")).await.unwrap();
        // Someone else's release does nothing; the claimant's frees the stream.
        turn::release(&lake, "batch-2").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        turn::release(&lake, "batch-1").await;
        tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        // An expired claim (a claimant that crashed) holds nobody back.
        let stale = serde_json::json!({ "run_id": "crashed", "until_ms": chrono::Utc::now().timestamp_millis() - 1 });
        lake.store.put(&lake.child("_lake/_turn.json"), stale.to_string().into_bytes().into()).await.unwrap();
        tokio::time::timeout(Duration::from_millis(100), turn::wait(&lake, "stream")).await.unwrap();
    }
}
