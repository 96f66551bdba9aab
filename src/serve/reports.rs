//! Downloads of saved reports: `GET /reports/<id>.csv` and
//! `GET /reports/<id>.parquet`, with the credentials of `/graphql` (same
//! headers, same 401/403/429 JSON bodies). The report runs on the caller's
//! tenant view; another tenant's id is simply not found.
//!
//! Money is exact in both formats: CSV `"1234.50"`, Parquet
//! `Decimal128(38, 2)`. Counts are integers, rates floats (empty / null when
//! undefined), dimension keys strings.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow::array::{ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rust_decimal::Decimal;

use super::routes::{Admitted, admit, error_response};
use super::state::AppState;
use crate::graphql::errors::Code;
use crate::graphql::reports::{ReportColumnKind, ReportSpec, ReportStore, ReportTable, run};
use crate::query::metrics::MetricValue;

/// Rows per streamed CSV chunk.
const CSV_CHUNK_ROWS: usize = 1_000;
pub const MONEY_PRECISION: u8 = 38;
pub const MONEY_SCALE: i8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

impl Format {
    fn of(file: &str) -> Option<(&str, Format)> {
        let (id, ext) = file.rsplit_once('.')?;
        match ext {
            "csv" => Some((id, Format::Csv)),
            "parquet" => Some((id, Format::Parquet)),
            _ => None,
        }
    }
}

/// `GET /reports/{file}`: `<id>.csv` or `<id>.parquet`.
pub async fn download(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(file): Path<String>) -> Response {
    let started = Instant::now();
    let (outcome, response) = respond(&state, &headers, &file).await;
    state.stats.observe("report_download", outcome, started.elapsed());
    response
}

fn not_found(file: &str) -> (&'static str, Response) {
    let msg = format!("no saved report at /reports/{file} (use /reports/<id>.csv or /reports/<id>.parquet)");
    ("not_found", error_response(StatusCode::NOT_FOUND, Code::NotFound, &msg))
}

fn internal(cause: impl std::fmt::Display) -> (&'static str, Response) {
    let id = crate::pipelines::batch::new_run_id();
    tracing::error!(error_id = %id, %cause, "report download failed");
    let msg = format!("internal error (reference {id})");
    ("error", error_response(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, &msg))
}

async fn respond(state: &AppState, headers: &HeaderMap, file: &str) -> (&'static str, Response) {
    let Admitted { view, .. } = match admit(state, headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let Some((id, format)) = Format::of(file) else { return not_found(file) };
    let store = ReportStore::new(state.lake.clone());
    let saved = match store.get(&view.tenant, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(file),
        Err(e) => return internal(e),
    };
    let spec = match ReportSpec::from_stored(&saved.definition) {
        Ok(s) => s,
        Err(e) => return internal(format!("saved report {id} no longer validates: {e}")),
    };

    let timeout = state.settings.query_timeout();
    let deadline = Instant::now() + timeout;
    let permit = match tokio::time::timeout(timeout, state.slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => return ("timeout", error_response(StatusCode::SERVICE_UNAVAILABLE, Code::Timeout, "server busy")),
    };
    let engine_started = Instant::now();
    let result = tokio::time::timeout_at(deadline.into(), run(&view, &spec)).await;
    drop(permit);
    state.stats.engine_seconds_micros.fetch_add(engine_started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let table = match result {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return internal(e),
        Err(_) => {
            let msg = format!("report exceeded {} ms", timeout.as_millis());
            return ("timeout", error_response(StatusCode::SERVICE_UNAVAILABLE, Code::Timeout, &msg));
        }
    };

    let total_rows = table.total_rows;
    let (content_type, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", Body::from_stream(csv_stream(table))),
        Format::Parquet => {
            let bytes = match tokio::task::spawn_blocking(move || parquet_bytes(&table)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return internal(e),
                Err(e) => return internal(e),
            };
            ("application/vnd.apache.parquet", Body::from(bytes))
        }
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    // `file` is `<id>.<ext>` with a checked id: safe in a quoted header value.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-total-rows", HeaderValue::from(total_rows as u64));
    ("ok", response)
}

/// A money value exactly, with two fraction digits.
fn money_text(d: Decimal) -> String {
    format!("{:.2}", d)
}

fn cell(v: &MetricValue) -> String {
    match v {
        MetricValue::Money(d) => money_text(*d),
        MetricValue::Count(n) => n.to_string(),
        MetricValue::Rate(Some(r)) => r.to_string(),
        MetricValue::Rate(None) => String::new(),
    }
}

fn csv_chunk(records: impl Iterator<Item = Vec<String>>) -> Bytes {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in records {
        // Writing to memory cannot fail.
        let _ = w.write_record(&r);
    }
    Bytes::from(w.into_inner().unwrap_or_default())
}

/// The header row, then rows in chunks, encoded as they are sent.
fn csv_stream(table: ReportTable) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let header = csv_chunk(std::iter::once(table.columns.iter().map(|c| c.name.clone()).collect()));
    let rows = table.rows.into_iter();
    futures::stream::unfold((Some(header), rows), |(header, mut rows)| async move {
        if let Some(h) = header {
            return Some((Ok(h), (None, rows)));
        }
        let mut n = 0;
        let chunk = csv_chunk(rows.by_ref().take(CSV_CHUNK_ROWS).inspect(|_| n += 1).map(|row| {
            let mut record = row.group;
            record.extend(row.values.iter().map(cell));
            record
        }));
        (n > 0).then_some((Ok(chunk), (None, rows)))
    })
}

/// The report as one Parquet file: dimension keys Utf8, money
/// Decimal128(38, 2), counts Int64, rates Float64 (null when undefined).
pub fn parquet_bytes(table: &ReportTable) -> anyhow::Result<Vec<u8>> {
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    let mut dim = 0;
    let mut metric = 0;
    for c in &table.columns {
        match c.kind {
            ReportColumnKind::Dimension => {
                let i = dim;
                dim += 1;
                fields.push(Field::new(&c.name, DataType::Utf8, false));
                arrays.push(Arc::new(StringArray::from_iter_values(table.rows.iter().map(|r| r.group[i].as_str()))));
            }
            kind => {
                let i = metric;
                metric += 1;
                let values = table.rows.iter().map(|r| r.values[i]);
                match kind {
                    ReportColumnKind::Money => {
                        fields.push(Field::new(&c.name, DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE), false));
                        let cents = values
                            .map(|v| {
                                let mut d = v.as_money().unwrap_or_default();
                                d.rescale(MONEY_SCALE as u32);
                                d.mantissa()
                            })
                            .collect::<Vec<i128>>();
                        let a = Decimal128Array::from(cents).with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?;
                        arrays.push(Arc::new(a));
                    }
                    ReportColumnKind::Count => {
                        fields.push(Field::new(&c.name, DataType::Int64, false));
                        arrays.push(Arc::new(Int64Array::from_iter_values(
                            values.map(|v| v.as_count().unwrap_or_default()),
                        )));
                    }
                    _ => {
                        fields.push(Field::new(&c.name, DataType::Float64, true));
                        arrays.push(Arc::new(Float64Array::from_iter(values.map(|v| v.as_rate().flatten()))));
                    }
                }
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}
