//! Reading and writing the lake's Parquet files.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

/// Rows per row group: large enough for good compression and scans, small
/// enough that a writer's buffer stays in the tens of megabytes.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Columns whose values repeat a lot (tenants, agencies, kinds, statuses,
/// dates, rates): dictionary encoding pays off there. Ids and amounts are
/// nearly unique, and interning them costs ingest time for nothing.
fn dictionary_pays(field: &Field) -> bool {
    match field.data_type() {
        DataType::Date32 => true,
        DataType::Decimal128(_, scale) => *scale > crate::contract::MONEY_SCALE,
        DataType::Utf8 => !matches!(
            field.name().as_str(),
            "commission_id"
                | "policy_id"
                | "policy_number"
                | "customer_id"
                | "renewal_of"
                | "external_id"
                | "line_id"
                | "insured_name"
                | "record"
                | "reason"
        ),
        _ => false,
    }
}

/// Rows per row group of a rollup file. Rollups are written sorted by their
/// date, so a query over a year reads the row groups of that year only
/// (row-group statistics prune the rest) instead of decoding every month.
const ROLLUP_ROW_GROUP_ROWS: usize = 8 * 1024;

/// How a file is laid out: facts in large Snappy row groups; rollups, read
/// by every dashboard query and small, in small uncompressed row groups
/// (decompression was the largest cost of a leaderboard in a profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Facts,
    Rollup,
}

fn writer_properties(schema: &Schema, layout: Layout) -> WriterProperties {
    let (compression, rows) = match layout {
        Layout::Facts => (Compression::SNAPPY, ROW_GROUP_ROWS),
        Layout::Rollup => (Compression::UNCOMPRESSED, ROLLUP_ROW_GROUP_ROWS),
    };
    let mut props = WriterProperties::builder().set_compression(compression).set_max_row_group_row_count(Some(rows));
    for field in schema.fields() {
        props = props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), dictionary_pays(field));
    }
    props.build()
}

/// A Parquet file being built in memory, one batch at a time.
pub struct MemoryParquet {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl MemoryParquet {
    pub fn new(schema: SchemaRef) -> Self {
        Self::with_layout(schema, Layout::Facts)
    }

    pub fn with_layout(schema: SchemaRef, layout: Layout) -> Self {
        let props = writer_properties(&schema, layout);
        let writer =
            ArrowWriter::try_new(Vec::with_capacity(8 << 20), schema, Some(props)).expect("valid writer props");
        MemoryParquet { writer, rows: 0 }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(self) -> Result<Bytes, ParquetError> {
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// Encode whole batches as one Parquet file.
pub fn encode(schema: SchemaRef, batches: &[RecordBatch]) -> Result<Bytes, ParquetError> {
    encode_as(schema, batches, Layout::Facts)
}

/// [`encode`] in the given layout.
pub fn encode_as(schema: SchemaRef, batches: &[RecordBatch], layout: Layout) -> Result<Bytes, ParquetError> {
    let mut w = MemoryParquet::with_layout(schema, layout);
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

/// Read a Parquet file, optionally only the named columns. The file is
/// fetched whole: lake files are bounded by the part size.
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, ParquetError> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(fetch(store, path).await?)?;
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    builder.build()?.collect::<Result<Vec<_>, _>>().map_err(ParquetError::from)
}

/// The Arrow schema of a Parquet file in the store. Used once per table, when
/// its first file is committed; the file is fetched whole (lake files are
/// bounded by the part size).
pub async fn read_schema(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<SchemaRef, ParquetError> {
    Ok(ParquetRecordBatchReaderBuilder::try_new(fetch(store, path).await?)?.schema().clone())
}

/// Decode the named columns of a whole Parquet file in batches of
/// `batch_rows`, those named in `dictionaries` as `Dictionary(Int32, Utf8)`:
/// a column written dictionary-encoded then arrives as its few distinct
/// values and one index per row, without a string copied per row.
pub fn decode_dictionaries(
    bytes: Bytes,
    columns: &[&str],
    dictionaries: &[&str],
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, ParquetError> {
    let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())?;
    let fields: Vec<Field> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if dictionaries.contains(&f.name().as_str()) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))),
            _ => f.as_ref().clone(),
        })
        .collect();
    let hinted = Arc::new(Schema::new_with_metadata(fields, plain.schema().metadata().clone()));
    let metadata =
        ArrowReaderMetadata::try_new(plain.metadata().clone(), ArrowReaderOptions::new().with_schema(hinted))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    builder
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()?
        .collect::<Result<Vec<_>, _>>()
        .map_err(ParquetError::from)
}

/// A whole file from the store.
pub async fn fetch(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Bytes, ParquetError> {
    let get = store.get(path).await.map_err(|e| ParquetError::External(Box::new(e)))?;
    get.bytes().await.map_err(|e| ParquetError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// (rows per row group, compression of the first column) of a file.
    fn layout_of(bytes: Bytes) -> (Vec<i64>, Compression) {
        let r = SerializedFileReader::new(bytes).unwrap();
        let m = r.metadata();
        let rows = m.row_groups().iter().map(|g| g.num_rows()).collect();
        (rows, m.row_group(0).column(0).compression())
    }

    #[test]
    fn rollups_are_written_in_small_uncompressed_row_groups() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..20_000))]).unwrap();
        let rollup = encode_as(schema.clone(), std::slice::from_ref(&batch), Layout::Rollup).unwrap();
        assert_eq!(layout_of(rollup), (vec![8192, 8192, 3616], Compression::UNCOMPRESSED));
        let facts = encode(schema, &[batch]).unwrap();
        assert_eq!(layout_of(facts), (vec![20_000], Compression::SNAPPY));
    }
}
