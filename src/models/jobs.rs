//! The two model jobs behind `cip train` and `cip score`.
//!
//! `train` reads the latest snapshot (every tenant: one global model per
//! kind, whose features are each tenant's own history), fits and evaluates
//! the renewal classifier and the revenue forecaster, and registers both
//! with their evaluation pooled and per tenant (`metrics_by_tenant.json`:
//! what a tenant is shown, see `registry::ModelInfo::metrics_for`).
//! `score` applies the newest registered versions to the latest snapshot and
//! publishes their outputs as lake tables in a new snapshot.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Datelike, Months, NaiveDate};
use polars::prelude::DataFrame;
use serde::Serialize;

use super::features::{self, Inputs};
use super::forecast::{self, ForecastModel};
use super::registry::{self, ModelInfo, NewModel};
use super::renewal::{self, RenewalModel};
use super::{frames, scores};
use crate::contract::values::days_to_date;
use crate::lake::{Location, Manifest, snapshot};
use crate::query::metrics::COMMISSION_ROLLUP;

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// The last day of data; default: the latest date in the lake.
    pub data_date: Option<NaiveDate>,
    /// Also write the renewal model's train/test features here (CSV).
    pub export_features: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub snapshot: u64,
    pub data_date: NaiveDate,
    pub renewal: ModelInfo,
    pub forecast: ModelInfo,
    pub renewal_examples: usize,
    pub timings_ms: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// The scoring date; default: the latest date in the lake.
    pub as_of: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreSummary {
    /// The snapshot published with the outputs.
    pub snapshot: u64,
    pub as_of: NaiveDate,
    pub renewal_model: String,
    pub forecast_model: String,
    pub policies_scored: usize,
    pub forecast_rows: usize,
    /// Policies per second of the model alone, and of features + model.
    pub scoring_rate: f64,
    pub scoring_rate_with_features: f64,
    pub timings_ms: BTreeMap<&'static str, u64>,
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

async fn latest(lake: &Location) -> Result<Manifest> {
    snapshot::latest(lake).await?.context("the lake has no published snapshot: run `cip ingest` first")
}

async fn inputs(lake: &Location, manifest: &Manifest) -> Result<Inputs> {
    Ok(Inputs {
        policies: frames::load(lake, manifest, "policies", None).await?,
        agents: frames::load(lake, manifest, "agents", None).await?,
        commissions: frames::load(lake, manifest, "commissions", None).await?,
    })
}

/// The latest date of any policy or commission: "today" of the data.
pub fn data_date(inputs: &Inputs) -> Result<NaiveDate> {
    let max_of = |df: &DataFrame, col: &str| -> Result<Option<f64>> {
        if df.height() == 0 {
            return Ok(None);
        }
        Ok(frames::to_array1(df, col)?.iter().copied().reduce(f64::max))
    };
    let days = [max_of(&inputs.policies, "effective_date")?, max_of(&inputs.commissions, "transaction_date")?]
        .into_iter()
        .flatten()
        .reduce(f64::max)
        .context("the lake has no policies or commissions")?;
    Ok(days_to_date(days as i32))
}

/// The first day of the last complete month on or before `d`.
pub fn last_complete_month(d: NaiveDate) -> NaiveDate {
    let first = d.with_day(1).expect("day 1");
    let next = first + Months::new(1);
    if d.succ_opt() == Some(next) { first } else { first - Months::new(1) }
}

pub async fn train(lake: &Location, opts: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    let manifest = latest(lake).await?;
    let t = Instant::now();
    let inputs = inputs(lake, &manifest).await?;
    let history = frames::load(lake, &manifest, COMMISSION_ROLLUP, None).await?;
    timings.insert("load", ms(t));
    let data_date = match opts.data_date {
        Some(d) => d,
        None => data_date(&inputs)?,
    };

    let t = Instant::now();
    let examples = features::training_examples(&inputs, data_date)?;
    timings.insert("renewal_features", ms(t));
    if let Some(dir) = &opts.export_features {
        std::fs::create_dir_all(dir)?;
        renewal::export_features(&examples, data_date, dir)?;
    }
    let t = Instant::now();
    let (model, report) = renewal::train(&examples, data_date)?;
    timings.insert("renewal_fit_and_evaluate", ms(t));
    let renewal_info = registry::save(
        lake,
        NewModel {
            name: renewal::MODEL_NAME,
            artifact: &model,
            metrics: report.metrics,
            metrics_by_tenant: report.metrics_by_tenant,
            card: &report.card,
            window_from: report.window_from,
            window_to: report.window_to,
            data_date,
            snapshot: manifest.version,
        },
    )
    .await?;

    let t = Instant::now();
    let last_month = last_complete_month(data_date);
    let (fmodel, freport) = forecast::train(&history, last_month)?;
    timings.insert("forecast_fit_and_backtest", ms(t));
    let forecast_info = registry::save(
        lake,
        NewModel {
            name: forecast::MODEL_NAME,
            artifact: &fmodel,
            metrics: freport.metrics,
            metrics_by_tenant: freport.metrics_by_tenant,
            card: &freport.card,
            window_from: freport.window_from,
            window_to: freport.window_to,
            data_date,
            snapshot: manifest.version,
        },
    )
    .await?;
    timings.insert("total", ms(started));
    Ok(TrainSummary {
        snapshot: manifest.version,
        data_date,
        renewal: renewal_info,
        forecast: forecast_info,
        renewal_examples: examples.height(),
        timings_ms: timings,
    })
}

pub async fn score(lake: &Location, opts: &ScoreOptions) -> Result<ScoreSummary> {
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    let renewal_info =
        registry::latest(lake, renewal::MODEL_NAME).await?.context("no renewal model registered: run `cip train`")?;
    let forecast_info =
        registry::latest(lake, forecast::MODEL_NAME).await?.context("no forecast model registered: run `cip train`")?;
    let model: RenewalModel = registry::load(lake, &renewal_info).await?;
    let fmodel: ForecastModel = registry::load(lake, &forecast_info).await?;
    let manifest = latest(lake).await?;
    let t = Instant::now();
    let inputs = inputs(lake, &manifest).await?;
    let history = frames::load(lake, &manifest, COMMISSION_ROLLUP, None).await?;
    timings.insert("load", ms(t));
    let as_of = match opts.as_of {
        Some(d) => d,
        None => data_date(&inputs)?,
    };

    let t_features = Instant::now();
    let examples = features::scoring_examples(&inputs, as_of)?;
    timings.insert("renewal_features", ms(t_features));
    let t = Instant::now();
    let scored = model.score(&examples)?;
    let model_secs = t.elapsed().as_secs_f64();
    timings.insert("renewal_score", ms(t));
    let all_secs = t_features.elapsed().as_secs_f64();
    let rate = |secs: f64| if secs > 0.0 { (examples.height() as f64 / secs).round() } else { 0.0 };

    let t = Instant::now();
    let last_month = last_complete_month(as_of);
    let forecasts = fmodel.forecast(&history, last_month, 12)?;
    timings.insert("forecast", ms(t));

    let t = Instant::now();
    let run_id = crate::pipelines::batch::new_run_id();
    let mut outputs = BTreeMap::new();
    let policies_scored = scored.len();
    let rows = scores::scored_rows(&examples, scored)?;
    outputs.insert(scores::RENEWAL_SCORES, scores::renewal_batches(&rows, &renewal_info.version)?);
    outputs.insert(scores::FORECASTS, scores::forecast_batches(&forecasts, &forecast_info.version)?);
    outputs.insert(scores::FORECAST_ACCURACY, scores::accuracy_batches(fmodel.accuracy(), &forecast_info.version)?);
    let version = scores::publish(lake, outputs, &run_id).await?;
    timings.insert("publish", ms(t));
    timings.insert("total", ms(started));
    Ok(ScoreSummary {
        snapshot: version,
        as_of,
        renewal_model: renewal_info.version,
        forecast_model: forecast_info.version,
        policies_scored,
        forecast_rows: forecasts.len(),
        scoring_rate: rate(model_secs),
        scoring_rate_with_features: rate(all_secs),
        timings_ms: timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_complete_month_is_the_month_itself_only_on_its_last_day() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(last_complete_month(d(2025, 12, 31)), d(2025, 12, 1));
        assert_eq!(last_complete_month(d(2025, 12, 30)), d(2025, 11, 1));
        assert_eq!(last_complete_month(d(2024, 2, 29)), d(2024, 2, 1));
        assert_eq!(last_complete_month(d(2025, 1, 15)), d(2024, 12, 1));
    }
}
