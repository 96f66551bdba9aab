//! The batch ("nightly") pipeline: landing folder → validated Parquet in
//! the lake → one new snapshot, published atomically.
//!
//! Stages: list the landing files; stage each file in parallel (parse,
//! validate, write Parquet parts nobody references yet, write rejects);
//! resolve upserts per (entity, tenant) partition; rewrite only the files
//! whose rows changed; publish a manifest naming every live file. A failure
//! before the publish leaves the previous snapshot exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::contract::row::{stored_key_hashes, stored_stamps, with_stored_schema};
use crate::contract::{Entity, ROW_HASH_COLUMN, STAMP_AT_COLUMN, STAMP_ID_COLUMN};
use crate::lake::snapshot::{self, SnapshotError, Tables};
use crate::lake::{self, DataFile, Location, Manifest, RUNS_DIR, parquet_io};

use super::key_index::{KeyIndex, Touched};
use super::resolve::{self, PartitionStamps, StoredRows, UpsertCounts};
use super::rollups;
use super::source;
use super::stage::{self, RunCtx, StageError, Staged, StagedPart};
use super::writer_cache::WriterCache;
use crate::query::rollups::{Changes, TenantRollups};

/// Where to make a run fail on purpose (tests prove a crash at any of these
/// points leaves the previous snapshot intact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Right after the first data part is written.
    AfterFirstPart,
    /// After every data file is final, before the manifest is written.
    BeforePublish,
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Files staged in parallel.
    pub workers: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    pub fail: Option<FailPoint>,
    /// The application transaction the run completes (the streaming
    /// writer's log position), recorded in the version it publishes.
    pub txn: Option<(String, u64)>,
    /// What a long-running writer keeps between runs (stored keys, rollup
    /// states); `None` for a one-off run.
    pub cache: Option<Arc<WriterCache>>,
    /// The streaming writer's stamps of the rows it lands: written with the
    /// rows, and a row older than the stored one's stamp changes nothing.
    pub stamps: Option<Arc<PartitionStamps>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        IngestOptions { workers, progress: false, fail: None, txn: None, cache: None, stamps: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no landing files found under {0} (expected <entity>/*.csv|*.jsonl)")]
    NoFiles(String),
    #[error("listing the landing folder: {0}")]
    Landing(object_store::Error),
    #[error("writing the lake: {0}")]
    Write(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("injected failure: {0}")]
    Injected(&'static str),
}

/// Per-entity outcome of a run. `read = landed + rejected`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct EntityCounts {
    pub files: u64,
    pub read: u64,
    pub landed: u64,
    pub rejected: u64,
    /// Identical repeats of a row within one file.
    pub duplicates: u64,
    #[serde(flatten)]
    pub upserts: UpsertCounts,
    pub rejected_by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnreadableFile {
    pub file: String,
    pub error: String,
}

/// What a run did: the `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub run_id: String,
    /// The lake's current version after the run.
    pub snapshot: Option<u64>,
    /// Whether this run published a new version (false when nothing changed).
    pub published: bool,
    pub previous_snapshot: Option<u64>,
    /// How many times the run resolved its rows against a base version:
    /// more than 1 when another writer published first and it re-based.
    pub attempts: u32,
    pub entities: BTreeMap<String, EntityCounts>,
    pub unreadable_files: Vec<UnreadableFile>,
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
}

pub use crate::lake::new_run_id;

/// Ingest every file of `landing` into `lake`.
#[tracing::instrument(skip_all, fields(landing = %landing.prefix, lake = %lake.prefix))]
pub async fn ingest(landing: &Location, lake: &Location, opts: &IngestOptions) -> Result<IngestReport, IngestError> {
    let run = stage(landing, lake, opts).await?;
    publish(lake, run, opts).await
}

/// A run whose landing files are staged (parsed, validated, written as
/// Parquet parts in the lake) and not yet resolved against any version:
/// [`publish`] makes it a version. The streaming writer stages its next
/// micro-batch while the previous one publishes.
pub struct StagedRun {
    run_id: String,
    started: Instant,
    staged_ms: u64,
    entities: BTreeMap<String, EntityCounts>,
    unreadable: Vec<UnreadableFile>,
    partitions: Arc<Partitions>,
}

/// Stage every landing file of a run (see [`StagedRun`]).
pub async fn stage(landing: &Location, lake: &Location, opts: &IngestOptions) -> Result<StagedRun, IngestError> {
    let started = Instant::now();
    let run_id = new_run_id();
    let files = source::list(landing).await.map_err(IngestError::Landing)?;
    if files.is_empty() {
        return Err(IngestError::NoFiles(landing.prefix.to_string()));
    }
    // Also refuses a lake of the old format before any work.
    let previous = snapshot::latest_version(lake).await?;
    tracing::info!(%run_id, files = files.len(), ?previous, "ingest started");

    let progress = progress_bar(opts.progress, files.iter().map(|f| f.size).sum());
    let ctx = Arc::new(RunCtx {
        landing: landing.clone(),
        lake: lake.clone(),
        run_id: run_id.clone(),
        handle: tokio::runtime::Handle::current(),
        fail_after_first_part: opts.fail == Some(FailPoint::AfterFirstPart),
        parts_written: AtomicBool::new(false),
        stamps: opts.stamps.clone(),
    });

    // Stage every file, `workers` at a time, largest first so that the
    // workers finish together (results are put back in landing order).
    let mut order: Vec<(usize, source::LandingFile)> = files.iter().cloned().enumerate().collect();
    order.sort_by_key(|(i, f)| (std::cmp::Reverse(f.size), *i));
    let mut staged: Vec<(usize, Result<Staged, StageError>)> = futures::stream::iter(order)
        .map(|(i, file)| {
            let ctx = ctx.clone();
            let pb = progress.clone();
            tokio::task::spawn_blocking(move || (i, stage::stage_file(&ctx, &file, i, Box::new(move |n| pb.inc(n)))))
        })
        .buffer_unordered(opts.workers.max(1))
        .try_collect()
        .await
        .map_err(|e| IngestError::Write(format!("staging task failed: {e}")))?;
    progress.finish_and_clear();
    staged.sort_by_key(|(i, _)| *i);
    let staged_ms = started.elapsed().as_millis() as u64;

    let mut entities: BTreeMap<String, EntityCounts> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut partitions = Partitions::new();
    for (i, result) in staged {
        let file = &files[i];
        let counts = entities.entry(file.entity.name().to_string()).or_default();
        counts.files += 1;
        match result {
            Ok(s) => {
                counts.read += s.read;
                counts.rejected += s.rejected;
                counts.landed += s.read - s.rejected;
                counts.duplicates += s.duplicates;
                for (code, n) in s.rejected_by_code {
                    *counts.rejected_by_reason.entry(code.to_string()).or_default() += n;
                }
                for part in s.parts {
                    partitions.entry((file.entity, part.tenant.clone())).or_default().push(part);
                }
            }
            Err(e @ (StageError::Unreadable(_) | StageError::Header(_))) => {
                let error = e.to_string();
                tracing::warn!(file = %file.name, %error, "landing file unreadable");
                unreadable.push(UnreadableFile { file: file.name.clone(), error });
            }
            Err(StageError::Injected(at)) => return Err(IngestError::Injected(at)),
            Err(e @ StageError::Write(..)) => return Err(IngestError::Write(e.to_string())),
        }
    }

    Ok(StagedRun { run_id, started, staged_ms, entities, unreadable, partitions: Arc::new(partitions) })
}

/// Resolve a staged run against the latest version and publish it.
pub async fn publish(lake: &Location, run: StagedRun, opts: &IngestOptions) -> Result<IngestReport, IngestError> {
    let StagedRun { run_id, started, staged_ms, mut entities, unreadable, partitions } = run;
    // Resolve upserts against the latest version and publish, on the one
    // commit path: if another writer publishes first, the resolution runs
    // again on top of its version (the staged parts are kept until then).
    let fail_before_publish = opts.fail == Some(FailPoint::BeforePublish);
    let txn = opts.txn.as_ref().map(|(app, seq)| (app.as_str(), *seq));
    let name = if txn.is_some() { "stream" } else { "ingest" };
    // The streaming writer (the one with a transaction) lives on.
    let background_checkpoints = txn.is_some();
    let op = snapshot::Operation { name, run_id: &run_id, data_change: true, txn, background_checkpoints };
    let mut attempt = 0u32;
    let cache = opts.cache.as_ref();
    // Time spent resolving (the rest of the commit is the publish itself).
    let resolve_ms = AtomicU64::new(0);
    let (version, resolution) = snapshot::commit(lake, op, |base| {
        attempt += 1;
        let (partitions, run_id, resolve_ms) = (&partitions, &run_id, &resolve_ms);
        async move {
            let t = Instant::now();
            let r = resolve_all(lake, &base, partitions, run_id, attempt, cache, opts.stamps.as_ref()).await?;
            resolve_ms.fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
            if r.tables.is_some() && fail_before_publish {
                return Err(IngestError::Injected("before publish"));
            }
            Ok((r.tables.clone(), (r, base.version)))
        }
    })
    .await?;
    let (mut resolution, base_version) = resolution;
    if let (Some(cache), Some(v)) = (cache, version.filter(|_| resolution.tables.is_some())) {
        // States left at the base belong to tenants whose facts this
        // version did not change: they hold for it too (otherwise a commit
        // of agencies alone would cost the next one a full rebuild).
        cache.advance_rollups(base_version, v);
        for (tenant, state) in std::mem::take(&mut resolution.states) {
            cache.keep_rollups(tenant, v, state);
        }
    }
    for (entity, counts) in resolution.upserts {
        add_counts(&mut entities.get_mut(entity.name()).expect("entity counted").upserts, counts);
    }
    // Staged parts that were rewritten or superseded are referenced by no
    // version: remove them now (a crash here only leaves orphans for vacuum).
    for part in partitions.values().flatten() {
        if !resolution.kept_parts.contains(&lake.relative(&part.path)) {
            let _ = lake.store.delete(&part.path).await;
        }
    }
    let changed = resolution.tables.is_some();
    if changed {
        let commit_ms = started.elapsed().as_millis() as u64 - staged_ms;
        let resolve_ms = resolve_ms.load(Ordering::Relaxed);
        tracing::info!(version = ?version, staged_ms, commit_ms, resolve_ms, "lake version published");
    }

    let duration = started.elapsed();
    let rows_read: u64 = entities.values().map(|c| c.read).sum();
    let report = IngestReport {
        run_id: run_id.clone(),
        snapshot: version,
        published: changed,
        previous_snapshot: (base_version > 0).then_some(base_version),
        attempts: attempt,
        rows_rejected: entities.values().map(|c| c.rejected).sum(),
        entities,
        unreadable_files: unreadable,
        rows_read,
        duration_ms: duration.as_millis() as u64,
        rows_per_sec: rows_per_sec(rows_read, duration),
    };
    // The run report is a log for people; the snapshot is already published.
    let body = serde_json::to_vec_pretty(&report).expect("report serialises");
    if let Err(e) = lake.store.put(&lake.child(&format!("{RUNS_DIR}/{run_id}.json")), body.into()).await {
        tracing::warn!(error = %e, "could not write the run report");
    }
    Ok(report)
}

/// (entity, tenant) → staged parts in landing order.
type Partitions = BTreeMap<(Entity, String), Vec<StagedPart>>;

/// What resolving the staged partitions against one base version gives.
struct Resolution {
    /// The next version's tables; `None` when no row changed.
    tables: Option<Tables>,
    upserts: BTreeMap<Entity, UpsertCounts>,
    /// Staged parts referenced as they are by `tables`.
    kept_parts: BTreeSet<String>,
    /// Rollup states of the tables, for the writer's cache.
    states: Vec<(String, TenantRollups)>,
}

/// Upsert every staged partition into `base` (later file wins; a changed
/// row replaces its stored row by rewriting only the files that held it)
/// and rebuild the rollups of tenants whose facts changed — or, with a
/// writer's `cache` holding a tenant's rollups of `base`, update them with
/// the rows replaced and landed. Files written here carry the attempt in
/// their names, so a re-run after a conflict never overwrites what an
/// earlier attempt wrote.
async fn resolve_all(
    lake: &Location,
    base: &Manifest,
    partitions: &Arc<Partitions>,
    run_id: &str,
    attempt: u32,
    cache: Option<&Arc<WriterCache>>,
    stamps: Option<&Arc<PartitionStamps>>,
) -> Result<Resolution, IngestError> {
    let mut tables = base.tables.clone();
    let mut changed = false;
    let mut facts_changed: BTreeSet<String> = BTreeSet::new();
    let mut upserts: BTreeMap<Entity, UpsertCounts> = BTreeMap::new();
    let mut kept_parts = BTreeSet::new();
    // Rows replaced and landed, per tenant, for kept rollup states.
    let mut changes: BTreeMap<String, Changes> = BTreeMap::new();
    let started = Instant::now();
    // Resolving hashes every staged key: CPU work, so the partitions resolve
    // two at a time on blocking threads (in order, applied below one by one).
    let resolved: Vec<(Vec<DataFile>, resolve::Resolution)> = futures::stream::iter(partitions.keys())
        .map(|(entity, tenant)| async move {
            let old: Vec<DataFile> = base.tenant_files(entity.name(), tenant).cloned().collect();
            let (all, key) = (partitions.clone(), (*entity, tenant.clone()));
            // A writer's key index names the files that hold a staged key;
            // the others stay as they are without being read.
            let wanted = match cache {
                Some(c) => touched_files(lake, &old, partitions.clone(), key.clone(), c).await?,
                None => None,
            };
            let read: Vec<DataFile> = match &wanted {
                Some(ix) => ix.iter().map(|i| old[*i].clone()).collect(),
                None => old.clone(),
            };
            let stored = read_stored_keys(lake, *entity, &read, cache).await?;
            let stamps = stamps.and_then(|s| s.get(&key)).cloned();
            let mut res = tokio::task::spawn_blocking(move || {
                let keys: Vec<&[(u128, u64)]> = all[&key].iter().map(|p| p.keys.as_slice()).collect();
                resolve::resolve(&keys, &stored, stamps.as_deref())
            })
            .await
            .map_err(|e| IngestError::Write(format!("resolving task failed: {e}")))?;
            if let Some(ix) = wanted {
                let mut masks = vec![None; old.len()];
                for (i, mask) in ix.into_iter().zip(std::mem::take(&mut res.stored)) {
                    masks[i] = mask;
                }
                res.stored = masks;
            }
            Ok::<_, IngestError>((old, res))
        })
        .buffered(2)
        .try_collect()
        .await?;
    let keys_ms = started.elapsed().as_millis() as u64;
    for (((entity, tenant), parts), (old, res)) in partitions.iter().zip(resolved) {
        add_counts(upserts.entry(*entity).or_default(), res.counts);
        // Only a writer that keeps rollup states needs the rows themselves.
        let mut track = (cache.is_some() && matches!(entity, Entity::Commissions | Entity::Policies))
            .then(|| Tracked { entity: *entity, changes: changes.entry(tenant.clone()).or_default() });

        let mut live: Vec<DataFile> = Vec::new();
        for (j, (file, mask)) in old.into_iter().zip(&res.stored).enumerate() {
            match mask {
                None => live.push(file),
                Some(mask) => {
                    changed = true;
                    let name = format!("{run_id}-a{attempt}-u{j:03}");
                    let rel = lake::data_file_path(entity.name(), tenant, &name);
                    let source = lake.child(&file.path);
                    let (kept, dropped) = split_file(lake, &source, mask, track.is_some()).await?;
                    if let Some(t) = track.as_mut() {
                        t.removed().extend(dropped);
                    }
                    if let Some(f) = write_rows(lake, *entity, kept, &rel, tenant).await? {
                        live.push(f);
                    }
                }
            }
        }
        for (part, mask) in parts.iter().zip(&res.staged) {
            let rel = lake.relative(&part.path);
            // Already referenced (an earlier attempt of this run was published
            // after all): it must never be deleted as superseded.
            if base.files(entity.name()).iter().any(|f| f.path == rel) {
                kept_parts.insert(rel.clone());
            }
            if mask.iter().all(|k| *k) {
                changed = true;
                if let Some(t) = track.as_mut() {
                    let rows = parquet_io::read(&lake.store, &part.path, None)
                        .await
                        .map_err(|e| IngestError::Write(format!("reading {rel}: {e}")))?;
                    t.added().extend(rows);
                }
                kept_parts.insert(rel.clone());
                live.push(DataFile { path: rel, tenant_id: tenant.clone(), rows: part.rows, bytes: part.bytes });
                continue;
            }
            if mask.iter().any(|k| *k) {
                changed = true;
                let filtered = rel.replace(".parquet", &format!("-a{attempt}-k.parquet"));
                let (kept, _) = split_file(lake, &part.path, mask, false).await?;
                if let Some(t) = track.as_mut() {
                    t.added().extend(kept.iter().cloned());
                }
                if let Some(f) = write_rows(lake, *entity, kept, &filtered, tenant).await? {
                    live.push(f);
                }
            }
        }
        let files = tables.entry(entity.name().to_string()).or_default();
        let before: Vec<String> = files.iter().filter(|f| &f.tenant_id == tenant).map(|f| f.path.clone()).collect();
        if matches!(entity, Entity::Commissions | Entity::Policies)
            && before != live.iter().map(|f| f.path.clone()).collect::<Vec<_>>()
        {
            facts_changed.insert(tenant.clone());
        }
        files.retain(|f| &f.tenant_id != tenant);
        files.extend(live);
    }
    let written_ms = started.elapsed().as_millis() as u64 - keys_ms;
    tracing::debug!(keys_ms, written_ms, "partitions resolved");
    let mut stale = rollups::stale_tenants(&tables, &facts_changed);
    let mut states = Vec::new();
    let rollup_run = format!("{run_id}-a{attempt}");
    let rollup_error = |e: anyhow::Error| IngestError::Write(format!("building rollups: {e:#}"));
    if !stale.is_empty() {
        changed = true;
    }
    // Tenants whose kept rollups reflect `base`: updated with this run's rows.
    if let Some(cache) = cache {
        for tenant in stale.clone() {
            let Some(state) = cache.take_rollups(&tenant, base.version) else { continue };
            let started = Instant::now();
            let rows = changes.remove(&tenant).unwrap_or_default();
            match rollups::update(lake, &mut tables, &tenant, state, rows, &rollup_run).await.map_err(rollup_error)? {
                Ok(state) => {
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::debug!(%tenant, ms, "rollups updated");
                    cache.record_update();
                    states.push((tenant.clone(), state));
                    stale.remove(&tenant);
                }
                Err(why) => tracing::info!(%tenant, %why, "rollups rebuilt in full"),
            }
        }
    }
    if !stale.is_empty() {
        let started = Instant::now();
        let keep = cache.is_some();
        states.extend(rollups::rebuild(lake, &mut tables, &stale, &rollup_run, keep).await.map_err(rollup_error)?);
        tracing::info!(tenants = stale.len(), ms = started.elapsed().as_millis() as u64, "rollups built");
    }
    Ok(Resolution { tables: changed.then_some(tables), upserts, kept_parts, states })
}

/// Where a partition's replaced and landed rows go, for kept rollup states.
struct Tracked<'a> {
    entity: Entity,
    changes: &'a mut Changes,
}

impl Tracked<'_> {
    fn removed(&mut self) -> &mut Vec<RecordBatch> {
        match self.entity {
            Entity::Commissions => &mut self.changes.removed_commissions,
            _ => &mut self.changes.removed_policies,
        }
    }

    fn added(&mut self) -> &mut Vec<RecordBatch> {
        match self.entity {
            Entity::Commissions => &mut self.changes.added_commissions,
            _ => &mut self.changes.added_policies,
        }
    }
}

fn rows_per_sec(rows: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { (rows as f64 / s).round() } else { 0.0 }
}

fn add_counts(into: &mut UpsertCounts, c: UpsertCounts) {
    into.new += c.new;
    into.updated += c.updated;
    into.unchanged += c.unchanged;
    into.superseded += c.superseded;
    into.stale += c.stale;
}

fn progress_bar(show: bool, total_bytes: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total_bytes);
    pb.set_style(
        ProgressStyle::with_template("{spinner} ingest [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb
}

/// The positions in `files` (a partition's stored files) of those that hold
/// a key of `parts`, from the writer's key index of the partition, brought
/// to exactly `files` first; `None` when every file must be read (the
/// partition is not indexed, or a fingerprint is shared).
async fn touched_files(
    lake: &Location,
    files: &[DataFile],
    partitions: Arc<Partitions>,
    (entity, tenant): (Entity, String),
    cache: &Arc<WriterCache>,
) -> Result<Option<Vec<usize>>, IngestError> {
    let mut idx = cache.take_index(entity, &tenant);
    if idx.unindexed {
        cache.keep_index(entity, &tenant, idx);
        return Ok(None);
    }
    let (added, removed) = idx.diff(files);
    let mut added: Vec<DataFile> = added.into_iter().cloned().collect();
    let mut gone = Vec::new();
    // Most rows gone (a compaction of the whole partition): build afresh
    // rather than take each out.
    if !removed.is_empty() && idx.rows_of(&removed) * 2 >= idx.keys() {
        idx = KeyIndex::default();
        added = files.to_vec();
    } else if !removed.is_empty() {
        let as_file = |path: &String| DataFile { path: path.clone(), tenant_id: tenant.clone(), rows: 0, bytes: 0 };
        let old: Vec<DataFile> = removed.iter().map(as_file).collect();
        match read_stored_keys(lake, entity, &old, Some(cache)).await {
            Ok(rows) => gone = removed.into_iter().zip(rows).collect(),
            // A file no longer readable (vacuumed): build afresh.
            Err(e) => {
                tracing::info!(error = %e, "a file left the partition unreadable: its key index is built anew");
                idx = KeyIndex::default();
                added = files.to_vec();
            }
        }
    }
    let rows = read_stored_keys(lake, entity, &added, Some(cache)).await?;
    let new: Vec<(String, Arc<StoredRows>)> = added.into_iter().map(|f| f.path).zip(rows).collect();
    let files = files.to_vec();
    let key = (entity, tenant.clone());
    // Indexing a compacted partition hashes millions of keys: off the
    // async threads.
    let (idx, touched) = tokio::task::spawn_blocking(move || {
        idx.apply(&gone, &new);
        let staged = partitions[&key].iter().flat_map(|p| p.keys.iter().map(|(k, _)| k));
        let touched = idx.touched(&files, staged);
        (idx, touched)
    })
    .await
    .map_err(|e| IngestError::Write(format!("key index task failed: {e}")))?;
    cache.keep_index(entity, &tenant, idx);
    Ok(match touched {
        Touched::All => None,
        Touched::Files(ix) => Some(ix.into_iter().collect()),
    })
}

/// Keys, row hashes and stamps of a partition's stored files (only those
/// columns are read; a writer's cache keeps them, as files never change).
pub(crate) async fn read_stored_keys(
    lake: &Location,
    entity: Entity,
    files: &[DataFile],
    cache: Option<&Arc<WriterCache>>,
) -> Result<Vec<Arc<StoredRows>>, IngestError> {
    let mut columns: Vec<&str> = entity.key().to_vec();
    columns.extend([ROW_HASH_COLUMN, STAMP_AT_COLUMN, STAMP_ID_COLUMN]);
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let path = lake.child(&f.path);
        if let Some(rows) = cache.and_then(|c| c.keys(path.as_ref())) {
            out.push(rows);
            continue;
        }
        let batches = parquet_io::read(&lake.store, &path, Some(&columns))
            .await
            .map_err(|e| IngestError::Write(format!("reading {}: {e}", f.path)))?;
        let mut rows = StoredRows { keys: Vec::new(), hashes: Vec::new(), stamps: Vec::new() };
        for b in &batches {
            rows.keys.extend(stored_key_hashes(entity, b));
            let h = b.column_by_name(ROW_HASH_COLUMN).expect("row hash column");
            let h = h.as_any().downcast_ref::<arrow::array::Int64Array>().expect("row hash as i64");
            rows.hashes.extend(h.values().iter().map(|v| *v as u64));
            // Landing files' rows have no stamps: only batches with one are
            // kept, after nulls for the rows before them.
            if let Some((at, id)) = stored_stamps(b).filter(|(at, _)| at.null_count() < at.len()) {
                let covered: usize = rows.stamps.iter().map(|(at, _)| at.len()).sum();
                let before = rows.keys.len() - b.num_rows();
                if covered < before {
                    let n = before - covered;
                    rows.stamps.push((arrow::array::Int64Array::new_null(n), arrow::array::StringArray::new_null(n)));
                }
                rows.stamps.push((at, id));
            }
        }
        let rows = Arc::new(rows);
        if let Some(c) = cache {
            c.keep_keys(path.as_ref(), rows.clone());
        }
        out.push(rows);
    }
    Ok(out)
}

/// The rows of `source` that `keep` marks, and (with `dropped`) the others.
async fn split_file(
    lake: &Location,
    source: &Path,
    keep: &[bool],
    dropped: bool,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), IngestError> {
    if !dropped && !keep.iter().any(|k| *k) {
        return Ok((Vec::new(), Vec::new()));
    }
    let batches = parquet_io::read(&lake.store, source, None)
        .await
        .map_err(|e| IngestError::Write(format!("reading {source}: {e}")))?;
    let mut offset = 0;
    let (mut kept, mut others) = (Vec::with_capacity(batches.len()), Vec::new());
    let filter = |b: &RecordBatch, mask: &BooleanArray| {
        filter_record_batch(b, mask).map_err(|e| IngestError::Write(e.to_string()))
    };
    for b in batches {
        let n = b.num_rows();
        let mask = BooleanArray::from(keep[offset..offset + n].to_vec());
        offset += n;
        kept.push(filter(&b, &mask)?);
        if dropped {
            others.push(filter(&b, &arrow::compute::not(&mask).map_err(|e| IngestError::Write(e.to_string()))?)?);
        }
    }
    Ok((kept, others))
}

/// Write `batches` to `rel`; `None` if they hold no row.
async fn write_rows(
    lake: &Location,
    entity: Entity,
    batches: Vec<RecordBatch>,
    rel: &str,
    tenant: &str,
) -> Result<Option<DataFile>, IngestError> {
    let kept = batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    if kept == 0 {
        return Ok(None);
    }
    let batches: Vec<RecordBatch> = batches.into_iter().map(|b| with_stored_schema(entity, b)).collect();
    let bytes = parquet_io::encode(entity.schema(), &batches).map_err(|e| IngestError::Write(e.to_string()))?;
    let size = bytes.len() as u64;
    lake.store.put(&lake.child(rel), bytes.into()).await.map_err(|e| IngestError::Write(format!("{rel}: {e}")))?;
    Ok(Some(DataFile { path: rel.to_string(), tenant_id: tenant.to_string(), rows: kept, bytes: size }))
}
