//! Keeping the lake in shape: compaction, vacuum, checkpoints, history,
//! time travel and the migration from the old manifest format. Every change
//! goes through the one commit path (`snapshot::commit`).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::snapshot::{self, DataFile, LAKE_DIR, LakeCommit, Manifest, Operation, SnapshotError, Tables};
use super::store::Location;
use super::{delta, parquet_io};

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("table {table}: {source}")]
    Table { table: String, source: delta::TableError },
    #[error("compacting {path}: {source}")]
    Parquet { path: String, source: parquet::errors::ParquetError },
    #[error(transparent)]
    Store(#[from] object_store::Error),
    #[error("the lake has no version yet")]
    Empty,
}

/// One partition compacted by `optimize`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Compacted {
    pub table: String,
    pub tenant_id: String,
    pub files_before: usize,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    /// The version published, or `None` when there was nothing to compact.
    pub version: Option<u64>,
    /// The version the compaction was computed on (its parent when published).
    pub base: u64,
    pub compacted: Vec<Compacted>,
    pub files_before: usize,
    pub files_after: usize,
}

/// Which files of a partition `optimize` merges.
#[derive(Debug, Clone, Copy)]
pub struct Compaction {
    /// A partition is compacted once it has this many files to merge (at
    /// least 2).
    pub min_files: usize,
    /// Files of this many bytes or more stay as they are.
    pub small_below: u64,
    /// Merged files are cut at about this many bytes of input.
    pub target_bytes: u64,
}

impl Compaction {
    /// Every file of a partition into one (`cip lake optimize`).
    pub fn all(min_files: usize) -> Self {
        Compaction { min_files, small_below: u64::MAX, target_bytes: u64::MAX }
    }

    /// The small files a streaming writer leaves (one per micro-batch) into
    /// files of up to 64 MiB, leaving large files alone: the cost of a
    /// compaction stays that of the recent small files, however large the
    /// partition has grown, and its memory that of one merged file.
    pub fn small_files(min_files: usize) -> Self {
        Compaction { min_files, small_below: 16 << 20, target_bytes: 64 << 20 }
    }

    /// The groups of `files` (one partition, in order) to merge, each into
    /// one file; empty when fewer than `min_files` are small.
    fn bins<'a>(&self, files: &[&'a DataFile]) -> Vec<Vec<&'a DataFile>> {
        let small: Vec<&DataFile> = files.iter().copied().filter(|f| f.bytes < self.small_below).collect();
        if small.len() < self.min_files.max(2) {
            return Vec::new();
        }
        let mut bins: Vec<Vec<&DataFile>> = vec![Vec::new()];
        let mut bytes = 0u64;
        for f in small {
            let bin = bins.last_mut().expect("one bin at least");
            if !bin.is_empty() && bytes.saturating_add(f.bytes) > self.target_bytes {
                bins.push(Vec::new());
                bytes = 0;
            }
            bins.last_mut().expect("one bin at least").push(f);
            bytes += f.bytes;
        }
        bins.retain(|b| b.len() > 1);
        bins
    }
}

/// Compact every (table, tenant) partition that has at least
/// `how.min_files` files to merge, optionally only of `table` and/or
/// `tenant`. The rows stay the same (the Delta commit says
/// `dataChange: false`), so no answer changes.
pub async fn optimize(
    lake: &Location,
    table: Option<&str>,
    tenant: Option<&str>,
    run_id: &str,
    how: Compaction,
) -> Result<OptimizeReport, MaintenanceError> {
    let op = Operation { name: "optimize", run_id, data_change: false, txn: None, background_checkpoints: false };
    // The files merged on the first attempt. When another writer publishes
    // first (the streaming writer does every second), the retry reuses
    // them: merging again on every new version would never catch up with a
    // writer that commits faster than a compaction takes.
    let planned: std::sync::Mutex<Option<Vec<Merge>>> = std::sync::Mutex::new(None);
    let (version, (compacted, before, after, base)) = snapshot::commit(lake, op, |base| {
        let planned = &planned;
        async move {
            let retry = planned.lock().expect("planned merges").take();
            let merges = match retry {
                Some(merges) => still_mergeable(&base.tables, merges),
                None => plan_merges(lake, &base.tables, table, tenant, run_id, how).await?,
            };
            let mut tables = base.tables.clone();
            for m in &merges {
                let files = tables.get_mut(&m.table).expect("a merge names a table of the base");
                files.retain(|f| !m.inputs.contains(&f.path));
                files.push(m.merged.clone());
            }
            let compacted: Vec<Compacted> = merges
                .iter()
                .map(|m| Compacted {
                    table: m.table.clone(),
                    tenant_id: m.merged.tenant_id.clone(),
                    files_before: m.inputs.len(),
                    rows: m.merged.rows,
                })
                .collect();
            let count = |t: &Tables| t.values().map(Vec::len).sum::<usize>();
            let report = (compacted, count(&base.tables), count(&tables), base.version);
            let changed = !merges.is_empty();
            *planned.lock().expect("planned merges") = Some(merges);
            Ok::<_, MaintenanceError>((changed.then_some(tables), report))
        }
    })
    .await?;
    let version = (!compacted.is_empty()).then_some(version).flatten();
    Ok(OptimizeReport { version, base, compacted, files_before: before, files_after: after })
}

/// Files of one partition merged into one, not yet committed.
struct Merge {
    table: String,
    inputs: std::collections::BTreeSet<String>,
    merged: DataFile,
}

/// Merge the files `how` picks in every partition (of `table`, `tenant`
/// when given) of `tables`.
async fn plan_merges(
    lake: &Location,
    tables: &Tables,
    table: Option<&str>,
    tenant: Option<&str>,
    run_id: &str,
    how: Compaction,
) -> Result<Vec<Merge>, MaintenanceError> {
    let mut merges = Vec::new();
    for (name, files) in tables {
        if table.is_some_and(|t| t != name) {
            continue;
        }
        let mut by_tenant: BTreeMap<&str, Vec<&DataFile>> = BTreeMap::new();
        for f in files {
            by_tenant.entry(f.tenant_id.as_str()).or_default().push(f);
        }
        for (t, group) in by_tenant {
            if tenant.is_some_and(|x| x != t) {
                continue;
            }
            for bin in how.bins(&group) {
                let merged = compact(lake, name, t, &bin, &format!("{run_id}-opt{}", merges.len())).await?;
                let inputs = bin.iter().map(|f| f.path.clone()).collect();
                merges.push(Merge { table: name.clone(), inputs, merged });
            }
        }
    }
    Ok(merges)
}

/// The merges whose every input is still a file of `tables` (a newer
/// version than they were made on): another writer may have replaced a row
/// of one, and its merged file would bring the old row back. The others are
/// dropped (their files are left for vacuum).
fn still_mergeable(tables: &Tables, merges: Vec<Merge>) -> Vec<Merge> {
    merges
        .into_iter()
        .filter(|m| {
            let present =
                tables.get(&m.table).map_or(0, |files| files.iter().filter(|f| m.inputs.contains(&f.path)).count());
            present == m.inputs.len()
        })
        .collect()
}

/// The rows of `files` (one partition) written as one file.
async fn compact(
    lake: &Location,
    table: &str,
    tenant: &str,
    files: &[&DataFile],
    name: &str,
) -> Result<DataFile, MaintenanceError> {
    let mut batches = Vec::new();
    for f in files {
        let read = parquet_io::read(&lake.store, &lake.child(&f.path), None)
            .await
            .map_err(|source| MaintenanceError::Parquet { path: f.path.clone(), source })?;
        batches.extend(read);
    }
    let rel = super::data_file_path(table, tenant, name);
    // An entity's files from before the stamp columns get them as nulls, so
    // that old and new files compact into one.
    let entity = crate::contract::Entity::from_name(table);
    if let Some(e) = entity {
        batches = batches.into_iter().map(|b| crate::contract::row::with_stored_schema(e, b)).collect();
    }
    let first = batches.first().map(|b| b.schema());
    let schema = entity.map(|e| e.schema()).or(first).ok_or_else(|| MaintenanceError::Parquet {
        path: rel.clone(),
        source: parquet::errors::ParquetError::General("no rows to compact".into()),
    })?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let bytes = parquet_io::encode(schema, &batches)
        .map_err(|source| MaintenanceError::Parquet { path: rel.clone(), source })?;
    let size = bytes.len() as u64;
    lake.store.put(&lake.child(&rel), bytes.into()).await?;
    Ok(DataFile { path: rel, tenant_id: tenant.to_string(), rows, bytes: size })
}

/// Delete the files that no version within `retain_hours` references: those
/// removed from their table longer ago, and those a crashed writer left
/// that are older. Returns the deleted paths (relative to the lake).
pub async fn vacuum(lake: &Location, retain_hours: u64, dry_run: bool) -> Result<Vec<String>, MaintenanceError> {
    let latest = snapshot::latest(lake).await?.ok_or(MaintenanceError::Empty)?;
    let mut deleted = Vec::new();
    for table in latest.delta_versions.keys() {
        let candidates = delta::vacuum_candidates(lake, table, retain_hours)
            .await
            .map_err(|source| MaintenanceError::Table { table: table.clone(), source })?;
        for path in candidates {
            // Never a file the latest version serves (deltalake's rule too).
            if latest.files(table).iter().any(|f| f.path == path) {
                continue;
            }
            if !dry_run {
                match lake.store.delete(&lake.child(&path)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            deleted.push(path);
        }
    }
    Ok(deleted)
}

/// Checkpoint every table at its latest version; returns (table, version).
pub async fn checkpoint(lake: &Location) -> Result<Vec<(String, u64)>, MaintenanceError> {
    let latest = snapshot::latest(lake).await?.ok_or(MaintenanceError::Empty)?;
    let mut done = Vec::new();
    for (table, v) in &latest.delta_versions {
        let at = delta::checkpoint(lake, table, Some(*v))
            .await
            .map_err(|source| MaintenanceError::Table { table: table.clone(), source })?;
        done.push((table.clone(), at));
    }
    Ok(done)
}

/// Every lake version, oldest first (a table with an `entry` is one that
/// version changed).
pub async fn history(lake: &Location) -> Result<Vec<LakeCommit>, MaintenanceError> {
    let metas: Vec<_> = lake.store.list(Some(&lake.child(LAKE_DIR))).try_collect().await?;
    let mut versions: Vec<u64> =
        metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok()).collect();
    versions.sort_unstable();
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        out.push(snapshot::read_commit(lake, v).await?);
    }
    Ok(out)
}

/// The newest version published at or before `at` (RFC 3339), for audits.
pub async fn version_at(lake: &Location, at: chrono::DateTime<chrono::Utc>) -> Result<Option<u64>, MaintenanceError> {
    let Some(latest) = snapshot::latest_version(lake).await? else { return Ok(None) };
    // Versions are published in time order: binary search over them.
    let created = |c: &LakeCommit| chrono::DateTime::parse_from_rfc3339(&c.created_at).map(|d| d.to_utc()).ok();
    let (mut lo, mut hi, mut found) = (1u64, latest, None);
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let c = snapshot::read_commit(lake, mid).await?;
        if created(&c).is_some_and(|t| t <= at) {
            found = Some(mid);
            lo = mid + 1;
        } else {
            if mid == 0 {
                break;
            }
            hi = mid - 1;
        }
    }
    Ok(found)
}

/// Turn a lake of the old manifest format (`_snapshots/`) into Delta tables
/// in place: its newest manifest becomes lake version 1; data files stay
/// where they are. Returns `None` when the lake is already Delta.
pub async fn migrate(lake: &Location, run_id: &str) -> Result<Option<u64>, MaintenanceError> {
    match snapshot::latest_version(lake).await {
        Ok(_) => return Ok(None),
        Err(SnapshotError::OldFormat) => {}
        Err(e) => return Err(e.into()),
    }
    let metas: Vec<_> = lake.store.list(Some(&lake.child("_snapshots"))).try_collect().await?;
    let newest = metas
        .iter()
        .filter_map(|m| Some((m.location.filename()?.strip_suffix(".json")?.parse::<u64>().ok()?, m.location.clone())))
        .max_by_key(|(v, _)| *v)
        .ok_or(MaintenanceError::Empty)?;
    let bytes = lake.store.get(&newest.1).await?.bytes().await?;
    let old: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Corrupt(newest.1.to_string(), e.to_string()))?;
    // Files of the old format stored row hashes as UInt64, which Delta
    // cannot declare: those files are rewritten with the hash's Int64 bits.
    let mut tables = Tables::new();
    for (table, files) in &old.tables {
        let mut next = Vec::with_capacity(files.len());
        for f in files {
            next.push(int64_row_hashes(lake, f).await?);
        }
        tables.insert(table.clone(), next);
    }
    let op = Operation { name: "migrate", run_id, data_change: true, txn: None, background_checkpoints: false };
    Ok(Some(snapshot::publish(lake, &Manifest::empty(), &tables, op).await?))
}

/// `f` itself, or a copy beside it whose `_row_hash` column holds the
/// UInt64 hashes' bits as Int64.
async fn int64_row_hashes(lake: &Location, f: &DataFile) -> Result<DataFile, MaintenanceError> {
    use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    let parquet_err = |source| MaintenanceError::Parquet { path: f.path.clone(), source };
    let schema = parquet_io::read_schema(&lake.store, &lake.child(&f.path)).await.map_err(parquet_err)?;
    let Ok(i) = schema.index_of(crate::contract::ROW_HASH_COLUMN) else { return Ok(f.clone()) };
    if schema.field(i).data_type() != &DataType::UInt64 {
        return Ok(f.clone());
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(
            |(j, field)| {
                if j == i { field.as_ref().clone().with_data_type(DataType::Int64) } else { field.as_ref().clone() }
            },
        )
        .collect();
    let new_schema = std::sync::Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for b in parquet_io::read(&lake.store, &lake.child(&f.path), None).await.map_err(parquet_err)? {
        let hashes = b.column(i).as_any().downcast_ref::<UInt64Array>().expect("a UInt64 column");
        let bits: ArrayRef =
            std::sync::Arc::new(Int64Array::from_iter_values(hashes.values().iter().map(|h| *h as i64)));
        let mut columns = b.columns().to_vec();
        columns[i] = bits;
        batches.push(RecordBatch::try_new(new_schema.clone(), columns).map_err(|e| parquet_err(e.into()))?);
    }
    let rel = f.path.replace(".parquet", "-delta.parquet");
    let bytes = parquet_io::encode(new_schema, &batches).map_err(parquet_err)?;
    let size = bytes.len() as u64;
    lake.store.put(&lake.child(&rel), bytes.into()).await?;
    Ok(DataFile { path: rel, bytes: size, ..f.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mib: u64) -> DataFile {
        DataFile { path: path.into(), tenant_id: "t1".into(), rows: 1, bytes: mib << 20 }
    }

    fn paths(bins: Vec<Vec<&DataFile>>) -> Vec<Vec<&str>> {
        bins.into_iter().map(|b| b.into_iter().map(|f| f.path.as_str()).collect()).collect()
    }

    #[test]
    fn small_files_merge_in_bins_of_the_target_size_and_large_ones_stay() {
        let files = [file("big", 200), file("a", 30), file("b", 30), file("c", 10), file("d", 3), file("e", 1)];
        let refs: Vec<&DataFile> = files.iter().collect();
        let how = Compaction { min_files: 3, small_below: 40 << 20, target_bytes: 64 << 20 };
        // a + b = 60 MiB; c would make 70: a new bin c + d + e = 14 MiB.
        assert_eq!(paths(how.bins(&refs)), vec![vec!["a", "b"], vec!["c", "d", "e"]]);
        // Fewer small files than min_files: nothing.
        assert!(Compaction { min_files: 6, ..how }.bins(&refs).is_empty());
        // A bin of one file is no merge: with a 30 MiB target, a and b each
        // stand alone and only c + d + e merge.
        assert_eq!(paths(Compaction { target_bytes: 30 << 20, ..how }.bins(&refs)), vec![vec!["c", "d", "e"]]);
        // Everything into one (the CLI).
        assert_eq!(paths(Compaction::all(2).bins(&refs)), vec![vec!["big", "a", "b", "c", "d", "e"]]);
        assert_eq!(Compaction::small_files(2).small_below, 16 << 20);
    }

    /// A compaction re-based on a newer version keeps the merges whose
    /// inputs are all still there (new files beside them change nothing)
    /// and drops one whose input another writer replaced.
    #[test]
    fn a_rebased_compaction_keeps_only_merges_whose_inputs_all_remain() {
        let merge = |inputs: &[&str], out: &str| Merge {
            table: "commissions".into(),
            inputs: inputs.iter().map(|p| p.to_string()).collect(),
            merged: file(out, 1),
        };
        let merges = vec![merge(&["a", "b"], "ab"), merge(&["c", "d"], "cd"), merge(&["e", "f"], "ef")];
        // The newer version: "d" was replaced by "d2" (an upsert), "g" is
        // new, and "e" and "f" are gone (merged by another compaction).
        let tables: Tables =
            [("commissions".to_string(), vec![file("a", 1), file("b", 1), file("c", 1), file("d2", 1), file("g", 1)])]
                .into_iter()
                .collect();
        let kept = still_mergeable(&tables, merges);
        assert_eq!(kept.iter().map(|m| m.merged.path.as_str()).collect::<Vec<_>>(), ["ab"]);
    }
}
