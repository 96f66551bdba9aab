//! Renewal examples: one row per policy term, with features known at its
//! as-of date. (Owned by the renewal work; see the issue.)

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

/// Days before expiration at which a training example is observed.
pub const LEAD_DAYS: i64 = 90;

/// The lake tables the features are built from (one tenant's or all).
pub struct Inputs {
    pub policies: DataFrame,
    pub agents: DataFrame,
    pub commissions: DataFrame,
}

/// Labelled examples: terms that expired on or before `data_date`, observed
/// at `as_of = expiration_date - LEAD_DAYS`.
pub fn training_examples(_inputs: &Inputs, _data_date: NaiveDate) -> Result<DataFrame> {
    anyhow::bail!("not built yet")
}

/// Terms in force at `as_of`, with features as of that date; `label` null.
pub fn scoring_examples(_inputs: &Inputs, _as_of: NaiveDate) -> Result<DataFrame> {
    anyhow::bail!("not built yet")
}
