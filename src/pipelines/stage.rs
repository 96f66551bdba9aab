//! Stage one landing file: parse and validate every record, write the valid
//! rows as Parquet parts per tenant (not yet referenced by any snapshot),
//! and the rejected ones to the run's rejected-records file.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{StringBuilder, UInt64Builder};
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::contract::RejectCode;
use crate::contract::row::{BatchBuilder, Reject, RowParser};
use crate::contract::values::Value;
use crate::lake::parquet_io::{self, MemoryParquet};
use crate::lake::{self, Location};

use super::source::{self, Format, HeaderError, Item, LandingFile, ReadError};

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;
/// Rows per staged Parquet part: bounds the writer's in-memory buffer.
pub const PART_ROWS: u64 = 1 << 20;

/// Key hashes are already uniform: use their low bits as the hash.
#[derive(Default)]
pub struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u128 keys are hashed")
    }
    fn write_u128(&mut self, k: u128) {
        self.0 = k as u64;
    }
}
pub type KeyMap<V> = HashMap<u128, V, BuildHasherDefault<KeyHasher>>;

/// A staged Parquet part: rows of one tenant from one landing file.
#[derive(Debug)]
pub struct StagedPart {
    pub tenant: String,
    pub path: Path,
    pub rows: u64,
    pub bytes: u64,
    /// (key hash, row hash) of each row, in file order.
    pub keys: Vec<(u128, u64)>,
}

/// What staging one file produced.
#[derive(Debug, Default)]
pub struct Staged {
    pub read: u64,
    pub rejected: u64,
    /// Identical repeats of a key within the file (harmless, not landed twice).
    pub duplicates: u64,
    pub rejected_by_code: HashMap<&'static str, u64>,
    pub parts: Vec<StagedPart>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The file could not be read: reported by name, the run goes on.
    #[error("{0}")]
    Unreadable(String),
    /// A CSV header that does not fit the contract (no header, not UTF-8,
    /// required columns missing): reported by name like an unreadable file;
    /// none of its rows was read.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The lake could not be written: the run stops.
    #[error("writing {0}: {1}")]
    Write(String, String),
    #[error("injected failure: {0}")]
    Injected(&'static str),
}

/// What a staging worker needs to know about the run.
pub struct RunCtx {
    pub landing: Location,
    pub lake: Location,
    pub run_id: String,
    pub handle: tokio::runtime::Handle,
    /// Test hook: fail right after the first data part is written.
    pub fail_after_first_part: bool,
    /// The stamps of a streaming micro-batch's rows, written with them.
    pub stamps: Option<Arc<super::resolve::PartitionStamps>>,
    pub parts_written: AtomicBool,
}

impl RunCtx {
    fn put(&self, rel: &str, bytes: bytes::Bytes) -> Result<Path, StageError> {
        let path = self.lake.child(rel);
        self.handle
            .block_on(self.lake.store.put(&path, bytes.into()))
            .map_err(|e| StageError::Write(rel.to_string(), e.to_string()))?;
        Ok(path)
    }
}

struct TenantBuf {
    batch: BatchBuilder,
    writer: Option<MemoryParquet>,
    keys: Vec<(u128, u64)>,
    /// key → (row hash, line) of the first row with that key in this file.
    seen: KeyMap<(u64, u64)>,
    part_no: u32,
    /// The tenant's stamps by key, if the run has any.
    stamps: Option<Arc<KeyMap<crate::contract::Stamp>>>,
}

struct RejectsBuf {
    tenant: StringBuilder,
    line: UInt64Builder,
    code: StringBuilder,
    reason: StringBuilder,
    record: StringBuilder,
}

struct FileStager<'a> {
    ctx: &'a RunCtx,
    file: &'a LandingFile,
    file_no: usize,
    parser: RowParser,
    tenants: HashMap<String, TenantBuf>,
    rejects: RejectsBuf,
    buf: Vec<u8>,
    out: Staged,
}

/// Stage `file` (the `file_no`-th of the run). Blocking: run it on a
/// blocking thread inside the tokio runtime.
pub fn stage_file(
    ctx: &RunCtx,
    file: &LandingFile,
    file_no: usize,
    on_bytes: Box<dyn Fn(u64) + Send>,
) -> Result<Staged, StageError> {
    let format =
        file.format.ok_or_else(|| StageError::Unreadable("unsupported file type (expected .csv or .jsonl)".into()))?;
    let input = source::open(&ctx.landing, &file.path, on_bytes, &ctx.handle)
        .map_err(|e| StageError::Unreadable(describe_io(&e)))?;
    let mut stager = FileStager {
        ctx,
        file,
        file_no,
        parser: RowParser::new(file.entity),
        tenants: HashMap::new(),
        rejects: RejectsBuf {
            tenant: StringBuilder::new(),
            line: UInt64Builder::new(),
            code: StringBuilder::new(),
            reason: StringBuilder::new(),
            record: StringBuilder::new(),
        },
        buf: Vec::with_capacity(256),
        out: Staged::default(),
    };
    let each = |item: Item<'_>| stager.item(item);
    let result = match format {
        Format::Csv => source::read_csv(input, file.entity, each),
        Format::Jsonl => source::read_jsonl(input, file.entity, each).map_err(ReadError::Io),
    };
    match result {
        // Checked before the first record: nothing of the file was staged.
        Err(ReadError::Header(e)) => Err(StageError::Header(e)),
        Err(ReadError::Io(e)) => {
            // Parts already written stay unreferenced; a vacuum removes them.
            Err(StageError::Unreadable(describe_io(&e)))
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => stager.finish(),
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => format!("not a readable file: {e}"),
        _ => format!("read failed: {e}"),
    }
}

impl<'a> FileStager<'a> {
    fn item(&mut self, item: Item<'_>) -> Result<(), StageError> {
        self.out.read += 1;
        match item {
            Item::Malformed { line, reason, raw, tenant } => {
                self.reject(tenant.as_deref(), line, Reject::new(RejectCode::MalformedRecord, reason), &raw);
                Ok(())
            }
            Item::Record(rec) => {
                let mut values = Vec::with_capacity(source::MAX_COLUMNS);
                match self.parser.parse(rec.cells, &mut values) {
                    Err(r) => {
                        let tenant = rec.cells[0].map(str::trim);
                        self.reject(tenant, rec.line, r, &(rec.raw)());
                        Ok(())
                    }
                    Ok(()) => self.accept(&values, rec.line, rec.raw),
                }
            }
        }
    }

    fn accept(&mut self, values: &[Value<'_>], line: u64, raw: &dyn Fn() -> String) -> Result<(), StageError> {
        let Value::Str(tenant) = values[0] else { unreachable!("tenant_id is required") };
        let key = self.parser.key_hash(values, &mut self.buf);
        let hash = RowParser::row_hash(values, &mut self.buf);
        let entity = self.file.entity;
        let t = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_string()).or_insert_with(|| TenantBuf {
                batch: BatchBuilder::new(entity, BATCH_ROWS),
                writer: None,
                keys: Vec::new(),
                seen: KeyMap::default(),
                part_no: 0,
                stamps: self.ctx.stamps.as_ref().and_then(|s| s.get(&(entity, tenant.to_string())).cloned()),
            }),
        };
        if let Some(&(first_hash, first_line)) = t.seen.get(&key) {
            if first_hash == hash {
                self.out.duplicates += 1;
            } else {
                let why = format!("same key as line {first_line} of this file, with different content");
                let tenant = tenant.to_string();
                self.reject(Some(&tenant), line, Reject::new(RejectCode::DuplicateKeyConflict, why), &raw());
            }
            return Ok(());
        }
        t.seen.insert(key, (hash, line));
        t.keys.push((key, hash));
        let stamp = t.stamps.as_ref().and_then(|s| s.get(&key)).map(|(at, id)| (*at, id.as_str()));
        t.batch.append(values, hash, stamp);
        if t.batch.len() >= BATCH_ROWS {
            let tenant = tenant.to_string();
            self.flush(&tenant, false)?;
        }
        Ok(())
    }

    fn reject(&mut self, tenant: Option<&str>, line: u64, r: Reject, raw: &str) {
        self.out.rejected += 1;
        *self.out.rejected_by_code.entry(r.code.as_str()).or_default() += 1;
        let rj = &mut self.rejects;
        rj.tenant.append_option(tenant.filter(|t| !t.is_empty()));
        rj.line.append_value(line);
        rj.code.append_value(r.code.as_str());
        rj.reason.append_value(&r.message);
        rj.record.append_value(raw);
    }

    /// Move the tenant's batch into its writer; with `close`, or when the
    /// part is full, write the part to the lake.
    fn flush(&mut self, tenant: &str, close: bool) -> Result<(), StageError> {
        let entity = self.file.entity;
        let t = self.tenants.get_mut(tenant).expect("tenant buffer");
        if !t.batch.is_empty() {
            let batch = t.batch.finish();
            let w = t.writer.get_or_insert_with(|| MemoryParquet::new(entity.schema()));
            w.write(&batch).map_err(|e| StageError::Write(self.file.name.clone(), e.to_string()))?;
        }
        let full = t.writer.as_ref().is_some_and(|w| w.rows() >= PART_ROWS);
        if !(close || full) {
            return Ok(());
        }
        let Some(w) = t.writer.take() else { return Ok(()) };
        let rows = w.rows();
        let bytes = w.finish().map_err(|e| StageError::Write(self.file.name.clone(), e.to_string()))?;
        let name = format!("{}-{:05}-{:03}", self.ctx.run_id, self.file_no, t.part_no);
        t.part_no += 1;
        let rel = lake::data_file_path(entity.name(), tenant, &name);
        let size = bytes.len() as u64;
        let path = self.ctx.put(&rel, bytes)?;
        let keys = std::mem::take(&mut t.keys);
        debug_assert_eq!(keys.len() as u64, rows);
        self.out.parts.push(StagedPart { tenant: tenant.to_string(), path, rows, bytes: size, keys });
        if self.ctx.fail_after_first_part && !self.ctx.parts_written.swap(true, Ordering::SeqCst) {
            return Err(StageError::Injected("after the first data part"));
        }
        self.ctx.parts_written.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn finish(mut self) -> Result<Staged, StageError> {
        let mut tenants: Vec<String> = self.tenants.keys().cloned().collect();
        tenants.sort();
        for t in &tenants {
            self.flush(t, true)?;
        }
        if self.out.rejected > 0 {
            let n = self.out.rejected as usize;
            let rj = &mut self.rejects;
            let constant = |v: &str| {
                let mut b = StringBuilder::with_capacity(n, n * v.len());
                (0..n).for_each(|_| b.append_value(v));
                Arc::new(b.finish()) as arrow::array::ArrayRef
            };
            let batch = RecordBatch::try_new(
                lake::rejects_schema(),
                vec![
                    constant(&self.ctx.run_id),
                    Arc::new(rj.tenant.finish()),
                    constant(self.file.entity.name()),
                    constant(&self.file.name),
                    Arc::new(rj.line.finish()),
                    Arc::new(rj.code.finish()),
                    Arc::new(rj.reason.finish()),
                    Arc::new(rj.record.finish()),
                ],
            )
            .expect("rejects batch matches its schema");
            let bytes = parquet_io::encode(lake::rejects_schema(), &[batch])
                .map_err(|e| StageError::Write(self.file.name.clone(), e.to_string()))?;
            let rel = lake::rejects_file_path(&self.ctx.run_id, &format!("{:05}", self.file_no));
            self.ctx.put(&rel, bytes)?;
        }
        Ok(self.out)
    }
}
