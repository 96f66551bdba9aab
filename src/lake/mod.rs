//! The lake: Delta Lake tables in an object store, published together as
//! versions of the lake.
//!
//! Layout under the lake root (see `docs/decisions.md`):
//! ```text
//! <table>/tenant_id=<t>/<run_id>-<file>-<part>.parquet   table data
//! <table>/_delta_log/<n:020>.json (+ checkpoints)         the table's Delta log
//! _lake/<version:020>.json                               lake versions: each table's Delta version
//! _rejects/<run_id>/<file>.parquet                       rejected records of a run
//! _runs/<run_id>.json                                    run reports
//! _stream/wal/<seq:020>.ndjson                           streaming events not yet in a lake version
//! _stream/lease/<epoch:020>.json                         which server takes events (lease.rs)
//! ```

pub mod catalog;
pub mod delta;
pub mod lease;
pub mod maintenance;
pub mod parquet_io;
pub mod snapshot;
pub mod store;
pub mod wal;

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub use snapshot::{DataFile, Manifest};
pub use store::Location;

pub const REJECTS_DIR: &str = "_rejects";
pub const RUNS_DIR: &str = "_runs";
/// Table name of the rejected-records store.
pub const REJECTED_RECORDS: &str = "rejected_records";

/// A run's id: its UTC start to the millisecond and a salt, so that names of
/// files a run writes sort by time and never collide.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt = xxhash_rust::xxh3::xxh3_64(
        format!("{}{}", now.timestamp_nanos_opt().unwrap_or_default(), std::process::id()).as_bytes(),
    );
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%S%3fZ"), salt & 0xffff)
}

/// Relative path of a data file of `table` for `tenant`.
pub fn data_file_path(table: &str, tenant: &str, name: &str) -> String {
    format!("{table}/tenant_id={tenant}/{name}.parquet")
}

/// Relative path of a rejected-records file of a run.
pub fn rejects_file_path(run_id: &str, name: &str) -> String {
    format!("{REJECTS_DIR}/{run_id}/{name}.parquet")
}

/// Schema of the rejected-records store: what was refused, where it came
/// from, and why.
pub fn rejects_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("tenant_id", DataType::Utf8, true),
            Field::new("entity", DataType::Utf8, false),
            Field::new("source_file", DataType::Utf8, false),
            Field::new("line", DataType::UInt64, false),
            Field::new("reason_code", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("record", DataType::Utf8, false),
        ]))
    })
    .clone()
}
