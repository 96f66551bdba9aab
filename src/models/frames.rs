//! The seam between the lake and the models: a snapshot's table as one
//! polars `DataFrame`, and frame columns as the `ndarray` 0.16 matrices
//! linfa takes (polars' own `ndarray` feature would bring ndarray 0.17).
//!
//! Files are fetched through the lake's object store, so the same code reads
//! a local, in-memory or S3 lake; polars parses the bytes.

use std::io::Cursor;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use ndarray::{Array1, Array2};
use object_store::ObjectStoreExt;
use polars::prelude::*;

use crate::contract::Entity;
use crate::lake::{DataFile, Location, Manifest};

/// `table` of `manifest` as one frame: every tenant's rows, or only
/// `tenant`'s. A file without a `tenant_id` column (the rollups: their files
/// are per tenant) gets one from the manifest. A contract entity without
/// files gives an empty frame with the entity's columns; any other table
/// without files gives a frame without columns.
pub async fn load(lake: &Location, manifest: &Manifest, table: &str, tenant: Option<&str>) -> Result<DataFrame> {
    let files: Vec<&DataFile> =
        manifest.files(table).iter().filter(|f| tenant.is_none_or(|t| f.tenant_id == t)).collect();
    if files.is_empty() {
        return Ok(empty_frame(table));
    }
    let frames: Vec<DataFrame> = futures::stream::iter(files)
        .map(|f| async move {
            let bytes = lake.store.get(&lake.child(&f.path)).await?.bytes().await?;
            let mut df = ParquetReader::new(Cursor::new(bytes))
                .finish()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading {}", f.path))?;
            if df.column("tenant_id").is_err() {
                let tenant = Column::new_scalar(
                    "tenant_id".into(),
                    Scalar::from(PlSmallStr::from(f.tenant_id.as_str())),
                    df.height(),
                );
                df.with_column(tenant)?;
            }
            anyhow::Ok(df)
        })
        .buffered(8)
        .try_collect()
        .await?;
    let mut frames = frames.into_iter();
    let mut all = frames.next().expect("at least one file");
    for df in frames {
        all.vstack_mut(&df).map_err(anyhow::Error::from).with_context(|| format!("stacking the files of {table}"))?;
    }
    all.rechunk_mut();
    Ok(all)
}

/// An empty frame with the columns of the contract entity `table`.
fn empty_frame(table: &str) -> DataFrame {
    let Some(entity) = Entity::ALL.into_iter().find(|e| e.name() == table) else {
        return DataFrame::empty();
    };
    let schema: Schema = entity
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let dtype = match f.data_type() {
                arrow::datatypes::DataType::Date32 => DataType::Date,
                arrow::datatypes::DataType::Decimal128(p, s) => DataType::Decimal(*p as usize, *s as usize),
                arrow::datatypes::DataType::Int64 => DataType::Int64,
                arrow::datatypes::DataType::Float64 => DataType::Float64,
                arrow::datatypes::DataType::Boolean => DataType::Boolean,
                _ => DataType::String,
            };
            Field::new(f.name().as_str().into(), dtype)
        })
        .collect();
    DataFrame::empty_with_schema(&schema)
}

/// Columns `cols` of `df` as a row-major `n × p` matrix of f64. Dates become
/// days since 1970-01-01, booleans 0/1, decimals their value. A null is an
/// error: features must be filled before they reach a model.
pub fn to_array2(df: &DataFrame, cols: &[&str]) -> Result<Array2<f64>> {
    let (n, p) = (df.height(), cols.len());
    let mut buf = vec![0f64; n * p];
    for (j, name) in cols.iter().enumerate() {
        let c = df.column(name)?.cast(&DataType::Float64)?;
        let ca = c.as_materialized_series().f64()?.clone();
        for (i, v) in ca.iter().enumerate() {
            match v {
                Some(v) => buf[i * p + j] = v,
                None => bail!("column {name} has a null at row {i}"),
            }
        }
    }
    Ok(Array2::from_shape_vec((n, p), buf).expect("n × p values"))
}

/// A column of `df` as a vector of f64 (see [`to_array2`]).
pub fn to_array1(df: &DataFrame, col: &str) -> Result<Array1<f64>> {
    Ok(to_array2(df, &[col])?.column(0).to_owned())
}

/// A boolean column of `df`; a null is an error.
pub fn to_bools(df: &DataFrame, col: &str) -> Result<Array1<bool>> {
    let ca = df.column(col)?.as_materialized_series().bool()?.clone();
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.with_context(|| format!("column {col} has a null at row {i}")))
        .collect::<Result<Vec<bool>>>()
        .map(Array1::from)
}

/// A string column of `df` as owned strings; a null is an error.
pub fn to_strings(df: &DataFrame, col: &str) -> Result<Vec<String>> {
    let ca = df.column(col)?.as_materialized_series().str()?.clone();
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.map(str::to_string).with_context(|| format!("column {col} has a null at row {i}")))
        .collect()
}
