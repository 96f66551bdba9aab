//! The renewal classifier. (Owned by the renewal work; see the issue.)

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

pub const MODEL_NAME: &str = "renewal";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewalModel {}

/// What training measured, for `metrics.json` and the model card.
pub struct TrainReport {
    pub metrics: serde_json::Value,
    pub card: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub feature: String,
    pub description: String,
    /// Contribution to the log-odds of renewing, relative to an average term.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub probability: f64,
    pub drivers: Vec<Driver>,
}

pub fn train(_examples: &DataFrame, _data_date: NaiveDate) -> Result<(RenewalModel, TrainReport)> {
    anyhow::bail!("not built yet")
}

impl RenewalModel {
    pub fn score(&self, _examples: &DataFrame) -> Result<Vec<Score>> {
        anyhow::bail!("not built yet")
    }
}

/// Write the split the evaluation used (train.csv, test.csv with the model's
/// input features and `label`) for an outside comparison.
pub fn export_features(_examples: &DataFrame, _data_date: NaiveDate, _dir: &std::path::Path) -> Result<()> {
    anyhow::bail!("not built yet")
}
