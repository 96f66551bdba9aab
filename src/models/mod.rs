//! Models: renewal probability per policy term and commission revenue
//! forecasts. Features are built with polars from the lake's tables, models
//! are learnt with linfa, artifacts are versioned in the lake's object store
//! (`models/<name>/<version>/`), and `cip score` publishes their outputs as
//! lake tables (`renewal_scores`, `forecasts`, `forecast_accuracy`).
//!
//! - `frames`: lake table → polars frame → ndarray (the one seam).
//! - `features`: renewal examples and their features, leak-free by as-of date.
//! - `renewal`: the renewal classifier, its calibration, drivers, evaluation.
//! - `eval`: binary-classification metrics (ROC-AUC, PR-AUC, log-loss, Brier, ECE, lift).
//! - `forecast`: monthly gross-commission forecasts with intervals, backtest, reconciliation.
//! - `registry`: versioned artifacts in the object store; `scores`: the lake tables.

pub mod actions;
pub mod eval;
pub mod features;
pub mod forecast;
pub mod frames;
pub mod jobs;
pub mod registry;
pub mod renewal;
pub mod scores;
