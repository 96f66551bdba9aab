//! The Delta Lake side of the lake: each table's commit log
//! (`<table>/_delta_log/<version:020>.json`) written as the Delta protocol
//! specifies (protocol 1/2, one partition column `tenant_id`, add/remove
//! actions with `numRecords` stats), so that any Delta reader (delta-rs,
//! DuckDB, Spark, polars) sees exactly the files cip serves.
//!
//! Commit entries are plain JSON lines built here and written with a
//! create-if-absent put, the same primitive delta-rs' default log store uses;
//! their bytes are decided before the lake commit that names them (see
//! `snapshot.rs`), so rolling a commit forward after a crash writes the very
//! same bytes.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use deltalake::DeltaTable;
use deltalake::logstore::{StorageConfig, default_logstore};
use object_store::prefix::PrefixStore;
use serde_json::{Value, json};

use super::snapshot::{DataFile, LakeCommit};
use super::store::Location;

/// A checkpoint every this many Delta versions of a table, so that opening
/// a table reads one Parquet file and at most this many commits.
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// Errors of the deltalake crate, kept as sources.
pub type TableError = Box<dyn std::error::Error + Send + Sync>;

/// The one partition column of every lake table.
pub const PARTITION_COLUMN: &str = "tenant_id";
/// Where a table's log lives, relative to the table.
pub const LOG_DIR: &str = "_delta_log";

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("column {column} of {table}: Arrow type {data_type} has no Delta type")]
    UnsupportedType { table: String, column: String, data_type: DataType },
    #[error("file {0} is not under its table's directory")]
    Foreign(String),
    #[error("a commit entry is not valid Delta JSON: {0}")]
    Entry(String),
}

/// `<table>/_delta_log/<version:020>.json`, relative to the lake root.
pub fn commit_path(table: &str, version: u64) -> String {
    format!("{table}/{LOG_DIR}/{version:020}.json")
}

/// The Delta type of an Arrow column (primitive types only: lake tables are
/// flat). No unsigned 64-bit: Delta's `long` is signed, and readers refuse
/// values above its range (row hashes are stored as their Int64 bits).
fn delta_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 => "long".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int16 => "short".into(),
        DataType::Int8 => "byte".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        _ => return None,
    })
}

/// The Delta `schemaString` of an Arrow schema.
pub fn schema_string(table: &str, schema: &Schema) -> Result<String, DeltaError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            let t = delta_type(f.data_type()).ok_or_else(|| DeltaError::UnsupportedType {
                table: table.to_string(),
                column: f.name().clone(),
                data_type: f.data_type().clone(),
            })?;
            Ok(json!({ "name": f.name(), "type": t, "nullable": f.is_nullable(), "metadata": {} }))
        })
        .collect::<Result<Vec<_>, DeltaError>>()?;
    let mut fields = fields;
    // Tables whose files leave the tenant out (rollups) still declare the
    // partition column: Delta readers take its value from the log.
    if schema.field_with_name(PARTITION_COLUMN).is_err() {
        fields.push(json!({ "name": PARTITION_COLUMN, "type": "string", "nullable": false, "metadata": {} }));
    }
    Ok(json!({ "type": "struct", "fields": fields }).to_string())
}

/// What one commit of a table does.
pub struct TableCommit<'a> {
    pub table: &'a str,
    /// The table's id, written into `metaData` at its creation.
    pub table_id: &'a str,
    /// Set for the table's first commit (version 0): its Arrow schema.
    pub create: Option<&'a Schema>,
    pub removed: Vec<&'a DataFile>,
    pub added: Vec<&'a DataFile>,
    /// `WRITE`, `OPTIMIZE`, … as Delta's commitInfo names it.
    pub operation: &'a str,
    /// False for a rewrite that changes no row (compaction).
    pub data_change: bool,
    pub timestamp_ms: i64,
    pub run_id: &'a str,
    /// The application transaction the commit completes (Delta `txn`).
    pub txn: Option<(&'a str, u64)>,
}

/// The file's path relative to its table (`tenant_id=<t>/<name>.parquet`),
/// percent-encoded as Delta paths are URIs (`=` and `/` kept).
fn table_path(table: &str, f: &DataFile) -> Result<String, DeltaError> {
    let rel = f
        .path
        .strip_prefix(table)
        .and_then(|p| p.strip_prefix('/'))
        .ok_or_else(|| DeltaError::Foreign(f.path.clone()))?;
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~=/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The bytes of a commit entry: newline-delimited actions.
pub fn commit_entry(c: &TableCommit<'_>) -> Result<String, DeltaError> {
    let mut lines: Vec<Value> = Vec::with_capacity(c.added.len() + c.removed.len() + 3);
    lines.push(json!({ "commitInfo": {
        "timestamp": c.timestamp_ms,
        "operation": c.operation,
        "operationParameters": {
            "mode": if c.removed.is_empty() { "Append" } else { "Overwrite" },
            "partitionBy": format!("[\"{PARTITION_COLUMN}\"]"),
        },
        "engineInfo": concat!("cip/", env!("CARGO_PKG_VERSION")),
        "isBlindAppend": c.removed.is_empty(),
        "operationMetrics": {
            "numAddedFiles": c.added.len().to_string(),
            "numRemovedFiles": c.removed.len().to_string(),
            "numOutputRows": c.added.iter().map(|f| f.rows).sum::<u64>().to_string(),
        },
        "txnId": c.run_id,
    }}));
    if let Some(schema) = c.create {
        lines.push(json!({ "protocol": { "minReaderVersion": 1, "minWriterVersion": 2 } }));
        lines.push(json!({ "metaData": {
            "id": c.table_id,
            "name": c.table,
            "format": { "provider": "parquet", "options": {} },
            "schemaString": schema_string(c.table, schema)?,
            "partitionColumns": [PARTITION_COLUMN],
            "configuration": {},
            "createdTime": c.timestamp_ms,
        }}));
    }
    if let Some((app, version)) = c.txn {
        lines.push(json!({ "txn": { "appId": app, "version": version, "lastUpdated": c.timestamp_ms } }));
    }
    let removed: BTreeSet<&str> = c.removed.iter().map(|f| f.path.as_str()).collect();
    for f in &c.removed {
        lines.push(json!({ "remove": {
            "path": table_path(c.table, f)?,
            "deletionTimestamp": c.timestamp_ms,
            "dataChange": c.data_change,
            "extendedFileMetadata": true,
            "partitionValues": { PARTITION_COLUMN: f.tenant_id },
            "size": f.bytes,
            "tags": {},
        }}));
    }
    for f in c.added.iter().filter(|f| !removed.contains(f.path.as_str())) {
        lines.push(json!({ "add": {
            "path": table_path(c.table, f)?,
            "partitionValues": { PARTITION_COLUMN: f.tenant_id },
            "size": f.bytes,
            "modificationTime": c.timestamp_ms,
            "dataChange": c.data_change,
            "stats": json!({ "numRecords": f.rows }).to_string(),
        }}));
    }
    // One action per line, as delta-rs writes them.
    Ok(lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"))
}

/// `files` (a table's live files at one version) after the commit `entry`
/// of the next version: its removes and adds applied. Lets a reader that
/// knows the previous version skip deltalake's log replay.
pub fn apply_entry(table: &str, files: &[DataFile], entry: &str) -> Result<Vec<DataFile>, DeltaError> {
    let mut live: std::collections::BTreeMap<String, DataFile> =
        files.iter().map(|f| (f.path.clone(), f.clone())).collect();
    for line in entry.lines().filter(|l| !l.trim().is_empty()) {
        let action: Value = serde_json::from_str(line).map_err(|e| DeltaError::Entry(e.to_string()))?;
        let path = |a: &Value| -> Result<String, DeltaError> {
            let p = a["path"].as_str().ok_or_else(|| DeltaError::Entry("an action without a path".into()))?;
            Ok(format!("{table}/{}", percent_decode(p)))
        };
        if let Some(r) = action.get("remove") {
            live.remove(&path(r)?);
        } else if let Some(a) = action.get("add") {
            let rows = a["stats"]
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|s| s["numRecords"].as_u64())
                .unwrap_or(0);
            let f = DataFile {
                path: path(a)?,
                tenant_id: a["partitionValues"][PARTITION_COLUMN].as_str().unwrap_or_default().to_string(),
                rows,
                bytes: a["size"].as_u64().unwrap_or(0),
            };
            live.insert(f.path.clone(), f);
        }
    }
    Ok(live.into_values().collect())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `table` of the lake opened with deltalake, at `version` (or its latest):
/// on the lake's own object store (so every scheme cip opens works,
/// without deltalake's storage features), prefixed at the table's root.
pub async fn open(lake: &Location, table: &str, version: Option<u64>) -> Result<DeltaTable, TableError> {
    let url = url::Url::parse(&lake.object_url(&lake.child(table)))?;
    let prefixed = Arc::new(PrefixStore::new(lake.store.clone(), lake.child(table)));
    let log_store = default_logstore(prefixed, lake.store.clone(), &url, &StorageConfig::default());
    let mut t = DeltaTable::new(log_store);
    match version {
        Some(v) => t.load_version(v).await?,
        None => t.load().await?,
    }
    Ok(t)
}

/// The live files of `table` at Delta `version` (from its add actions).
pub async fn live_files(lake: &Location, table: &str, version: u64) -> Result<Vec<DataFile>, TableError> {
    match live_files_by_name(lake, table, version).await {
        Ok(Some(files)) => return Ok(files),
        Ok(None) => {}
        Err(e) => tracing::debug!(table, version, error = %e, "reading the log by name failed; replaying it"),
    }
    replayed_files(lake, table, version).await
}

/// The live files of `table` at `version` read without listing its log:
/// the checkpoint `_last_checkpoint` names and the commits after it up to
/// `version`, each by its name. `None` where that does not apply (no
/// checkpoint, one newer than `version`, one in several parts, or a shape
/// this reader does not know): then deltalake replays the log, which
/// lists it first. A log that takes a commit a second holds some 86,000
/// entries after a day, and listing them (a stat each on a local disk)
/// made every opening of the lake slower as it aged.
pub async fn live_files_by_name(
    lake: &Location,
    table: &str,
    version: u64,
) -> Result<Option<Vec<DataFile>>, TableError> {
    let get = |rel: String| async move { lake.get_opt(&rel).await };
    let Some(last) = get(format!("{table}/{LOG_DIR}/_last_checkpoint")).await? else { return Ok(None) };
    let last: Value = serde_json::from_slice(&last)?;
    let Some(at) = last["version"].as_u64() else { return Ok(None) };
    if at > version || !last["parts"].is_null() {
        return Ok(None);
    }
    let Some(checkpoint) = get(format!("{table}/{LOG_DIR}/{at:020}.checkpoint.parquet")).await? else {
        return Ok(None);
    };
    let Some(mut files) = checkpoint_adds(table, checkpoint)? else { return Ok(None) };
    for v in at + 1..=version {
        let Some(entry) = get(commit_path(table, v)).await? else { return Ok(None) };
        files = apply_entry(table, &files, std::str::from_utf8(&entry)?)?;
    }
    Ok(Some(files))
}

/// The add actions of a (single-part) checkpoint as files, sorted by path;
/// `None` if its columns are not of the types delta-rs writes.
fn checkpoint_adds(table: &str, bytes: bytes::Bytes) -> Result<Option<Vec<DataFile>>, TableError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let Some(add_root) = builder.parquet_schema().root_schema().get_fields().iter().position(|f| f.name() == "add")
    else {
        return Ok(None);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [add_root]);
    let mut files = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let Some(add) = batch.column_by_name("add").and_then(|c| c.as_struct_opt()) else { return Ok(None) };
        let column = |name: &str| add.column_by_name(name);
        let (Some(path), Some(size), Some(stats), Some(parts)) = (
            column("path").and_then(|c| c.as_string_opt::<i32>()),
            column("size").and_then(|c| c.as_primitive_opt::<Int64Type>()),
            column("stats").and_then(|c| c.as_string_opt::<i32>()),
            column("partitionValues").and_then(|c| c.as_map_opt()),
        ) else {
            return Ok(None);
        };
        for i in (0..add.len()).filter(|i| add.is_valid(*i) && path.is_valid(*i)) {
            let entries = parts.value(i);
            let (Some(keys), Some(values)) =
                (entries.column(0).as_string_opt::<i32>(), entries.column(1).as_string_opt::<i32>())
            else {
                return Ok(None);
            };
            let tenant = (0..keys.len())
                .find(|k| keys.value(*k) == PARTITION_COLUMN && values.is_valid(*k))
                .map(|k| values.value(k).to_string())
                .unwrap_or_default();
            let rows = (stats.is_valid(i))
                .then(|| serde_json::from_str::<Value>(stats.value(i)).ok())
                .flatten()
                .and_then(|s| s["numRecords"].as_u64())
                .unwrap_or(0);
            files.push(DataFile {
                path: format!("{table}/{}", percent_decode(path.value(i))),
                tenant_id: tenant,
                rows,
                bytes: if size.is_valid(i) { size.value(i).max(0) as u64 } else { 0 },
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(files))
}

/// The live files of `table` at `version` as deltalake's replay of the log
/// gives them.
pub async fn replayed_files(lake: &Location, table: &str, version: u64) -> Result<Vec<DataFile>, TableError> {
    let t = open(lake, table, Some(version)).await?;
    let snapshot = t.snapshot()?;
    let mut files = Vec::with_capacity(snapshot.log_data().num_files());
    for f in snapshot.log_data().iter() {
        let tenant = f.partition_values_map().get(PARTITION_COLUMN).cloned().flatten().unwrap_or_default();
        files.push(DataFile {
            path: format!("{table}/{}", f.path()),
            tenant_id: tenant,
            rows: f.num_records().unwrap_or(0) as u64,
            bytes: f.size().max(0) as u64,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// After a lake commit: checkpoint each table it brought to a multiple of
/// [`CHECKPOINT_INTERVAL`]. Best effort: a missing checkpoint only makes
/// opening that table slower.
pub async fn after_commit(lake: &Location, commit: &LakeCommit, background: bool) {
    let due: Vec<(String, u64)> = commit
        .tables
        .iter()
        .filter(|(_, s)| s.entry.is_some() && s.delta_version > 0 && s.delta_version % CHECKPOINT_INTERVAL == 0)
        .map(|(t, s)| (t.clone(), s.delta_version))
        .collect();
    if due.is_empty() {
        return;
    }
    if !background {
        return checkpoint_all(lake, due).await;
    }
    // A writer that commits every second must not wait for checkpoints:
    // one run at a time in the background; a due one skipped because a run
    // is busy is taken by the table's next multiple of the interval.
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if RUNNING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        tracing::debug!(tables = due.len(), "checkpoints skipped: a checkpoint run is still busy");
        return;
    }
    let lake = lake.clone();
    tokio::spawn(async move {
        checkpoint_all(&lake, due).await;
        RUNNING.store(false, std::sync::atomic::Ordering::Release);
    });
}

async fn checkpoint_all(lake: &Location, due: Vec<(String, u64)>) {
    for (table, v) in due {
        if let Err(e) = checkpoint(lake, &table, Some(v)).await {
            tracing::warn!(%table, version = v, error = %first_line(&e), "checkpoint failed");
        }
    }
}

/// Write a checkpoint of `table` at `version` (default: its latest);
/// returns the version checkpointed.
pub async fn checkpoint(lake: &Location, table: &str, version: Option<u64>) -> Result<u64, TableError> {
    let t = open(lake, table, version).await?;
    deltalake::checkpoints::create_checkpoint(&t, None).await?;
    Ok(t.version().unwrap_or(0))
}

/// Files under `table` that no version within `retain_hours` references:
/// tombstones older than that, and files that no commit ever added
/// (a crashed writer's) that are older than that. deltalake computes the
/// list (a dry run, so nothing is committed to the log, which only lake
/// commits write); the caller deletes.
pub async fn vacuum_candidates(lake: &Location, table: &str, retain_hours: u64) -> Result<Vec<String>, TableError> {
    let t = open(lake, table, None).await?;
    let (_, metrics) = t
        .vacuum()
        .with_retention_period(chrono::Duration::hours(retain_hours as i64))
        .with_enforce_retention_duration(false)
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_dry_run(true)
        .await?;
    Ok(metrics.files_deleted.into_iter().map(|f| format!("{table}/{f}")).collect())
}

/// The first line of an error (deltalake's errors may carry a backtrace).
pub fn first_line(e: &TableError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;

    use super::*;

    fn file(path: &str, tenant: &str, rows: u64) -> DataFile {
        DataFile { path: path.into(), tenant_id: tenant.into(), rows, bytes: 100 + rows }
    }

    #[test]
    fn a_first_commit_has_protocol_metadata_and_adds() {
        let schema = Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("premium", DataType::Decimal128(18, 2), false),
            Field::new("effective_date", DataType::Date32, true),
            Field::new("_row_hash", DataType::Int64, false),
        ]);
        let a = file("policies/tenant_id=t1/r1.parquet", "t1", 3);
        let c = TableCommit {
            table: "policies",
            table_id: "0b9c6f1e-1d7e-4c54-9a53-2f0a61d6b7e4",
            create: Some(&schema),
            removed: vec![],
            added: vec![&a],
            operation: "WRITE",
            data_change: true,
            timestamp_ms: 1_700_000_000_000,
            run_id: "r1",
            txn: None,
        };
        let text = commit_entry(&c).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
        let meta = &lines[2]["metaData"];
        assert_eq!(meta["partitionColumns"], json!(["tenant_id"]));
        assert_eq!(meta["id"], "0b9c6f1e-1d7e-4c54-9a53-2f0a61d6b7e4");
        let schema: Value = serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
        let types: Vec<&str> =
            schema["fields"].as_array().unwrap().iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["string", "decimal(18,2)", "date", "long"]);
        assert_eq!(
            lines[3],
            json!({"add": {"path": "tenant_id=t1/r1.parquet", "partitionValues": {"tenant_id": "t1"}, "size": 103,
                   "modificationTime": 1_700_000_000_000i64, "dataChange": true, "stats": "{\"numRecords\":3}"}})
        );
    }

    #[test]
    fn later_commits_remove_and_add_and_encode_paths() {
        let old = file("commissions/tenant_id=t 1/a.parquet", "t 1", 5);
        let new = file("commissions/tenant_id=t 1/b.parquet", "t 1", 6);
        let c = TableCommit {
            table: "commissions",
            table_id: "",
            create: None,
            removed: vec![&old],
            added: vec![&new],
            operation: "WRITE",
            data_change: true,
            timestamp_ms: 5,
            run_id: "r2",
            txn: Some(("cip-stream", 7)),
        };
        let lines: Vec<Value> = commit_entry(&c).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["txn"], serde_json::json!({ "appId": "cip-stream", "version": 7, "lastUpdated": 5 }));
        assert_eq!(lines[2]["remove"]["path"], "tenant_id=t%201/a.parquet");
        assert_eq!(lines[2]["remove"]["size"], 105);
        assert_eq!(lines[3]["add"]["path"], "tenant_id=t%201/b.parquet");
        assert_eq!(lines[0]["commitInfo"]["operationMetrics"]["numRemovedFiles"], "1");
        // Applying the entry to the old file list gives the new one, paths decoded.
        let applied = apply_entry("commissions", std::slice::from_ref(&old), &commit_entry(&c).unwrap()).unwrap();
        assert_eq!(applied, vec![new.clone()]);
        let foreign = file("policies/tenant_id=t/x.parquet", "t", 1);
        let bad = TableCommit { added: vec![&foreign], removed: vec![], ..c };
        assert!(matches!(commit_entry(&bad), Err(DeltaError::Foreign(_))));
    }
}
