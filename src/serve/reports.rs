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

use super::guard::{self, Admitted, ApiError};
use super::state::AppState;
use crate::auth::ANALYTICS_READ;
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
    let (outcome, response) = match respond(&state, &headers, &file).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("report_download", outcome, started.elapsed());
    response
}

fn not_found(file: &str) -> ApiError {
    ApiError::not_found(format!("no saved report at /reports/{file} (use /reports/<id>.csv or /reports/<id>.parquet)"))
}

async fn respond(state: &AppState, headers: &HeaderMap, file: &str) -> Result<Response, ApiError> {
    let Admitted { view, .. } = guard::admit(state, headers, ANALYTICS_READ).await?;
    let Some((id, format)) = Format::of(file) else { return Err(not_found(file)) };
    let store = ReportStore::new(state.lake.clone());
    let saved = store.get(&view.tenant, id).await.map_err(ApiError::internal)?.ok_or_else(|| not_found(file))?;
    let spec = ReportSpec::from_stored(&saved.definition)
        .map_err(|e| ApiError::internal(format!("saved report {id} no longer validates: {e}")))?;
    // The report and, for Parquet, its encoding run in the slot, within the deadline.
    let work = async move {
        let table = run(&view, &spec).await.map_err(ApiError::internal)?;
        let parquet = match format {
            Format::Parquet => Some(parquet_bytes(&table).map_err(ApiError::internal)?),
            Format::Csv => None,
        };
        Ok::<_, ApiError>((table, parquet))
    };
    let (table, parquet) = guard::in_slot(state, StatusCode::SERVICE_UNAVAILABLE, work).await??;

    let total_rows = table.total_rows;
    let (content_type, body) = match parquet {
        None => ("text/csv; charset=utf-8", Body::from_stream(csv_stream(table))),
        Some(bytes) => ("application/vnd.apache.parquet", Body::from(bytes)),
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
    Ok(response)
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
