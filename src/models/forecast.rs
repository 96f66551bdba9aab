//! Monthly gross-commission forecasts. (Owned by the forecast work; see the issue.)

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub const MODEL_NAME: &str = "revenue_forecast";

/// Which kind of series: the tenant's total or one agency, agent, carrier or line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesScope {
    Tenant,
    Agency,
    Agent,
    Carrier,
    Line,
}

impl SeriesScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesScope::Tenant => "tenant",
            SeriesScope::Agency => "agency",
            SeriesScope::Agent => "agent",
            SeriesScope::Carrier => "carrier",
            SeriesScope::Line => "line",
        }
    }
}

/// One forecast month of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    pub tenant_id: String,
    pub scope: SeriesScope,
    /// Agency/agent/carrier id or line; empty for the tenant's total.
    pub series_id: String,
    /// First day of the forecast month.
    pub month: NaiveDate,
    /// Months after the last month of history (1..=horizon).
    pub horizon: u32,
    pub point: Decimal,
    pub lower80: Decimal,
    pub upper80: Decimal,
    pub lower95: Decimal,
    pub upper95: Decimal,
}

/// Backtest accuracy of one series in one horizon bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    pub tenant_id: String,
    pub scope: SeriesScope,
    pub series_id: String,
    /// "1-3", "4-6" or "7-12".
    pub bucket: String,
    pub mase: Option<f64>,
    pub wape: Option<f64>,
    pub coverage80: Option<f64>,
    pub coverage95: Option<f64>,
    pub seasonal_naive_mase: Option<f64>,
    pub damped_trend_mase: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForecastModel {}

pub struct TrainReport {
    pub metrics: serde_json::Value,
    pub card: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
}

/// Fit on `history` (rows of the `commissions_monthly` rollup, all tenants
/// or one) up to and including the month starting `last_month`, and
/// backtest.
pub fn train(_history: &DataFrame, _last_month: NaiveDate) -> Result<(ForecastModel, TrainReport)> {
    anyhow::bail!("not built yet")
}

impl ForecastModel {
    /// Forecasts of every series of `history`, 1..=horizon months after `last_month`.
    pub fn forecast(&self, _history: &DataFrame, _last_month: NaiveDate, _horizon: u32) -> Result<Vec<ForecastRow>> {
        anyhow::bail!("not built yet")
    }

    /// The backtest accuracy of every series seen in training.
    pub fn accuracy(&self) -> &[AccuracyRow] {
        &[]
    }
}
