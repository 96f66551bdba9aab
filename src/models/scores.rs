//! The models' output tables in the lake, published like any table: one
//! Parquet file per tenant, referenced by a new snapshot that keeps every
//! other table of its parent.
//!
//! - `renewal_scores`: per policy term in force at the scoring date, the
//!   probability of renewal, its top drivers and the facts the API's
//!   recommended actions read.
//! - `forecasts`: per series and month, the point and 80 % / 95 % bounds (Decimal).
//! - `forecast_accuracy`: per series and horizon bucket, the backtest figures.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
};

use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use polars::prelude::DataFrame;
use rust_decimal::Decimal;
use serde::Serialize;

use super::forecast::{AccuracyRow, ForecastRow};
use super::frames;
use super::renewal::{Driver, Score};
use crate::contract::values::{date_to_days, days_to_date};
use crate::lake::{self, DataFile, Location, parquet_io, snapshot};

use crate::lake::catalog::schema_of;
pub use crate::lake::catalog::{
    FORECAST_ACCURACY, FORECASTS, MODEL_OUTPUTS as TABLES, RENEWAL_SCORES, forecast_accuracy_schema, forecasts_schema,
    renewal_scores_schema,
};

#[derive(Serialize)]
struct DriverJson<'a> {
    feature: &'a str,
    description: &'a str,
    contribution: f64,
}

/// One row of `renewal_scores`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRow {
    pub tenant_id: String,
    pub policy_id: String,
    pub as_of: NaiveDate,
    pub expiration_date: NaiveDate,
    pub probability: f64,
    pub drivers: Vec<Driver>,
    pub tenure_terms: i64,
    pub premium_change: f64,
    pub other_policies: i64,
}

/// The scoring examples (see `features::scoring_examples`) with their
/// scores, in the same order.
pub fn scored_rows(examples: &DataFrame, scores: Vec<Score>) -> Result<Vec<ScoredRow>> {
    anyhow::ensure!(examples.height() == scores.len(), "{} examples but {} scores", examples.height(), scores.len());
    let tenants = frames::to_strings(examples, "tenant_id")?;
    let policies = frames::to_strings(examples, "policy_id")?;
    let as_of = frames::to_array1(examples, "as_of")?;
    let expiration = frames::to_array1(examples, "expiration_date")?;
    let tenure = frames::to_array1(examples, "tenure_terms")?;
    let change = frames::to_array1(examples, "premium_change")?;
    let others = frames::to_array1(examples, "other_policies")?;
    Ok(tenants
        .into_iter()
        .zip(policies)
        .zip(scores)
        .enumerate()
        .map(|(i, ((tenant_id, policy_id), s))| ScoredRow {
            tenant_id,
            policy_id,
            as_of: days_to_date(as_of[i] as i32),
            expiration_date: days_to_date(expiration[i] as i32),
            probability: s.probability,
            drivers: s.drivers,
            tenure_terms: tenure[i] as i64,
            premium_change: change[i],
            other_policies: others[i] as i64,
        })
        .collect())
}

/// `rows` grouped by their tenant (one output file per tenant).
fn by_tenant<T>(rows: &[T], tenant: impl Fn(&T) -> &String) -> BTreeMap<&str, Vec<&T>> {
    let mut out: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for r in rows {
        out.entry(tenant(r).as_str()).or_default().push(r);
    }
    out
}

/// `renewal_scores` rows per tenant.
pub fn renewal_batches(rows: &[ScoredRow], version: &str) -> Result<BTreeMap<String, RecordBatch>> {
    let by_tenant = by_tenant(rows, |r| &r.tenant_id);
    let mut out = BTreeMap::new();
    for (tenant, rows) in by_tenant {
        let mut c = (
            StringBuilder::new(),
            StringBuilder::new(),
            Date32Builder::new(),
            Date32Builder::new(),
            Float64Builder::new(),
            StringBuilder::new(),
            Int64Builder::new(),
            Float64Builder::new(),
            Int64Builder::new(),
            StringBuilder::new(),
        );
        for r in rows {
            let drivers: Vec<DriverJson> = r
                .drivers
                .iter()
                .map(|d| DriverJson { feature: &d.feature, description: &d.description, contribution: d.contribution })
                .collect();
            c.0.append_value(tenant);
            c.1.append_value(&r.policy_id);
            c.2.append_value(day(r.as_of));
            c.3.append_value(day(r.expiration_date));
            c.4.append_value(r.probability);
            c.5.append_value(serde_json::to_string(&drivers)?);
            c.6.append_value(r.tenure_terms);
            c.7.append_value(r.premium_change);
            c.8.append_value(r.other_policies);
            c.9.append_value(version);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(c.0.finish()),
            Arc::new(c.1.finish()),
            Arc::new(c.2.finish()),
            Arc::new(c.3.finish()),
            Arc::new(c.4.finish()),
            Arc::new(c.5.finish()),
            Arc::new(c.6.finish()),
            Arc::new(c.7.finish()),
            Arc::new(c.8.finish()),
            Arc::new(c.9.finish()),
        ];
        out.insert(tenant.to_string(), RecordBatch::try_new(renewal_scores_schema(), cols)?);
    }
    Ok(out)
}

fn decimal_builder() -> Decimal128Builder {
    Decimal128Builder::new().with_precision_and_scale(18, 2).expect("valid decimal type")
}

/// A money amount as Decimal128(18, 2) units (cents).
fn cents(d: Decimal) -> Result<i128> {
    let mut d = d.round_dp(2);
    d.rescale(2);
    anyhow::ensure!(d.scale() == 2, "amount {d} does not fit two decimals");
    Ok(d.mantissa())
}

fn day(d: NaiveDate) -> i32 {
    date_to_days(d)
}

/// `forecasts` rows per tenant.
pub fn forecast_batches(rows: &[ForecastRow], version: &str) -> Result<BTreeMap<String, RecordBatch>> {
    let by_tenant = by_tenant(rows, |r| &r.tenant_id);
    let mut out = BTreeMap::new();
    for (tenant, rows) in by_tenant {
        let (mut t, mut scope, mut id, mut month, mut h) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            Date32Builder::new(),
            Int32Builder::new(),
        );
        let mut amounts: Vec<Decimal128Builder> = (0..5).map(|_| decimal_builder()).collect();
        let mut v = StringBuilder::new();
        for r in rows {
            t.append_value(tenant);
            scope.append_value(r.scope.as_str());
            id.append_value(&r.series_id);
            month.append_value(day(r.month));
            h.append_value(r.horizon as i32);
            for (b, x) in amounts.iter_mut().zip([r.point, r.lower80, r.upper80, r.lower95, r.upper95]) {
                b.append_value(cents(x)?);
            }
            v.append_value(version);
        }
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(t.finish()), Arc::new(scope.finish()), Arc::new(id.finish()), Arc::new(month.finish())];
        cols.push(Arc::new(h.finish()));
        for mut b in amounts {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(v.finish()));
        out.insert(tenant.to_string(), RecordBatch::try_new(forecasts_schema(), cols)?);
    }
    Ok(out)
}

/// `forecast_accuracy` rows per tenant.
pub fn accuracy_batches(rows: &[AccuracyRow], version: &str) -> Result<BTreeMap<String, RecordBatch>> {
    let by_tenant = by_tenant(rows, |r| &r.tenant_id);
    let mut out = BTreeMap::new();
    for (tenant, rows) in by_tenant {
        let (mut t, mut scope, mut id, mut bucket, mut v) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut figures: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::new()).collect();
        for r in rows {
            t.append_value(tenant);
            scope.append_value(r.scope.as_str());
            id.append_value(&r.series_id);
            bucket.append_value(&r.bucket);
            let xs = [r.mase, r.wape, r.coverage80, r.coverage95, r.seasonal_naive_mase, r.damped_trend_mase];
            for (b, x) in figures.iter_mut().zip(xs) {
                b.append_option(x.filter(|x| x.is_finite()));
            }
            v.append_value(version);
        }
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(t.finish()), Arc::new(scope.finish()), Arc::new(id.finish()), Arc::new(bucket.finish())];
        for mut b in figures {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(v.finish()));
        out.insert(tenant.to_string(), RecordBatch::try_new(forecast_accuracy_schema(), cols)?);
    }
    Ok(out)
}

/// Write the output tables (table → tenant → rows) and publish a snapshot
/// that replaces those tables whole and keeps every other table of the
/// latest one. A concurrent publish (e.g. an ingest run) is retried on top
/// of the newer snapshot; the files are written once. Returns the version.
pub async fn publish(
    lake: &Location,
    outputs: BTreeMap<&'static str, BTreeMap<String, RecordBatch>>,
    run_id: &str,
) -> Result<u64> {
    let mut written: BTreeMap<&str, Vec<DataFile>> = BTreeMap::new();
    for (table, tenants) in &outputs {
        let schema = schema_of(table).with_context(|| format!("{table} is not a model output table"))?;
        let files = written.entry(table).or_default();
        for (tenant, batch) in tenants {
            let bytes = parquet_io::encode(schema.clone(), std::slice::from_ref(batch))?;
            let rel = lake::data_file_path(table, tenant, run_id);
            let size = bytes.len() as u64;
            lake.store.put(&lake.child(&rel), bytes.into()).await?;
            files.push(DataFile { path: rel, tenant_id: tenant.clone(), rows: batch.num_rows() as u64, bytes: size });
        }
    }
    let op = snapshot::Operation { name: "score", run_id, data_change: true, txn: None, background_checkpoints: false };
    let (version, ()) = snapshot::commit(lake, op, |base| {
        let written = &written;
        async move {
            let mut tables = base.tables.clone();
            for (table, files) in written {
                tables.insert(table.to_string(), files.clone());
            }
            Ok::<_, anyhow::Error>((Some(tables), ()))
        }
    })
    .await?;
    version.context("a version was published")
}
