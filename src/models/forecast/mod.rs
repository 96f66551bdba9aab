//! Monthly gross-commission forecasts per tenant, agency, agent, carrier and
//! line, 1–12 months ahead, with 80 % and 95 % intervals, a rolling-origin
//! backtest against two baselines, and middle-out reconciliation.
//!
//! - `series`: the rollup rows as zero-filled monthly series per node.
//! - `features`: level-scaled features known at the forecast origin.
//! - `model`: direct per-horizon ridge regressions (linfa), global across
//!   the series of a kind; interval quantiles from in-sample errors.
//! - `reconcile`: agencies forecast directly, tenant = Σ agencies, agents =
//!   agency × their share; carriers and lines split from the tenant.
//! - `metrics`: MASE, WAPE, coverage, the seasonal-naive and damped-trend baselines.
//! - `backtest`: the rolling-origin evaluation and its summary.
//!
//! Method and measured numbers: docs/models-forecast.md.

mod backtest;
mod features;
mod metrics;
mod model;
mod reconcile;
mod series;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use ndarray::Array2;
use polars::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::features::NF;
use self::model::{Config, Fitted, Grid, HORIZON, MODELLED};
use self::series::{Kind, Panel, month_date, month_of};

pub use self::series::UNASSIGNED;

pub const MODEL_NAME: &str = "revenue_forecast";

/// Horizon buckets of the accuracy rows.
pub const BUCKETS: [&str; 3] = ["1-3", "4-6", "7-12"];

/// The bucket index of horizon `h` (1..=12).
pub fn bucket_of(h: u32) -> usize {
    match h {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

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
pub struct ForecastModel {
    /// First day of the last month of the training data.
    pub trained_to: NaiveDate,
    fitted: Fitted,
    accuracy: Vec<AccuracyRow>,
}

pub struct TrainReport {
    /// The backtest over all tenants' series (with `contributing_tenants`).
    pub metrics: serde_json::Value,
    /// The same backtest figures over each tenant's own series (its total,
    /// agencies, agents, carriers and lines), by tenant id.
    pub metrics_by_tenant: BTreeMap<String, serde_json::Value>,
    pub card: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
}

/// Fit on `history` (rows of the `commissions_monthly` rollup, all tenants
/// or one) up to and including the month starting `last_month`, and
/// backtest.
pub fn train(history: &DataFrame, last_month: NaiveDate) -> Result<(ForecastModel, TrainReport)> {
    train_with(history, last_month, &Config::default())
}

fn train_with(history: &DataFrame, last_month: NaiveDate, config: &Config) -> Result<(ForecastModel, TrainReport)> {
    let started = Instant::now();
    let panel = series::build(&series::facts(history)?, month_of(last_month));
    if panel.series.is_empty() {
        bail!("no commission history up to {last_month}");
    }
    let grid = Grid::build(&panel);
    let bt = backtest::run(&panel, &grid, config)?;
    let backtest_seconds = started.elapsed().as_secs_f64();
    let fitted = model::fit_at(&panel, &grid, panel.last, config)?.fitted;
    let accuracy = bt.accuracy(&panel);
    let seconds = started.elapsed().as_secs_f64();
    let window_from = month_date(panel.series.iter().map(|s| s.start).min().expect("series"));
    let metrics = report_metrics(&panel, &bt, &fitted, window_from, last_month, seconds, backtest_seconds);
    let metrics_by_tenant = tenant_metrics(&panel, &bt, &fitted, last_month);
    let mut card = card(&metrics, &fitted);
    card.push_str(&format!(
        "\nBacktest per tenant: `metrics_by_tenant.json` ({} tenants), the same figures over each tenant's own series; \
         a tenant sees the pooled figures above only where at least {} tenants contribute ({} do).\n",
        metrics_by_tenant.len(),
        crate::models::registry::MIN_TENANTS,
        metrics["contributing_tenants"],
    ));
    let model = ForecastModel { trained_to: month_date(panel.last), fitted, accuracy };
    Ok((model, TrainReport { metrics, metrics_by_tenant, card, window_from, window_to: month_date(panel.last) }))
}

impl ForecastModel {
    /// Forecasts of every series of `history`, 1..=horizon months after `last_month`.
    pub fn forecast(&self, history: &DataFrame, last_month: NaiveDate, horizon: u32) -> Result<Vec<ForecastRow>> {
        if horizon == 0 || horizon as usize > HORIZON {
            bail!("horizon must be 1..={HORIZON} months, got {horizon}");
        }
        let panel = series::build(&series::facts(history)?, month_of(last_month));
        Ok(forecast_panel(&self.fitted, &panel, horizon))
    }

    /// The backtest accuracy of every series seen in training.
    pub fn accuracy(&self) -> &[AccuracyRow] {
        &self.accuracy
    }
}

/// Reconciled forecasts with intervals of every published series of `panel`
/// from its last month.
fn forecast_panel(fitted: &Fitted, panel: &Panel, horizon: u32) -> Vec<ForecastRow> {
    let o = panel.last;
    let cents: Vec<Vec<i64>> = (1..=horizon).map(|h| reconciled_at_last(fitted, panel, h)).collect();
    let mut rows = Vec::new();
    for (s, ser) in panel.series.iter().enumerate() {
        let Some(scope) = ser.kind.scope() else { continue };
        let noise = metrics::noise_scale(ser.upto(o));
        for h in 1..=horizon {
            let point = cents[h as usize - 1][s];
            let q = fitted.quantiles(ser.kind, h).map(|q| point + reconcile::to_cents(q * noise));
            let dec = |c: i64| Decimal::new(c, 2);
            rows.push(ForecastRow {
                tenant_id: panel.tenants[ser.tenant].id.clone(),
                scope,
                series_id: ser.id.clone(),
                month: month_date(o + h as i32),
                horizon: h,
                point: dec(point),
                lower80: dec(q[1]),
                upper80: dec(q[2]),
                lower95: dec(q[0]),
                upper95: dec(q[3]),
            });
        }
    }
    rows
}

/// Reconciled cents of every series, `h` months after the panel's last month.
fn reconciled_at_last(fitted: &Fitted, panel: &Panel, h: u32) -> Vec<i64> {
    let o = panel.last;
    let mut raw = vec![0.0; panel.series.len()];
    for kind in MODELLED {
        let idx: Vec<usize> = (0..panel.series.len()).filter(|&s| panel.series[s].kind == kind).collect();
        let mut x = Array2::zeros((idx.len(), NF));
        let mut scale = vec![0.0; idx.len()];
        for (i, &s) in idx.iter().enumerate() {
            let mut row = x.row_mut(i);
            let out = row.as_slice_mut().expect("contiguous row");
            let ser = &panel.series[s];
            scale[i] = features::row(ser, ser.parent.map(|p| &panel.series[p]), o, h, out).unwrap_or(0.0);
        }
        for (&s, p) in idx.iter().zip(fitted.predict(kind, h, &x, &scale)) {
            raw[s] = p;
        }
    }
    let mut cents = vec![0i64; panel.series.len()];
    for t in &panel.tenants {
        reconcile::cents(panel, t, o, fitted.config.cross, |s| raw[s], &mut cents);
    }
    cents
}

/// What the model is, in words: the same for the pool and every tenant.
fn method(fitted: &Fitted) -> serde_json::Value {
    json!({
        "learner": "linfa-elasticnet ridge (l1_ratio 0), one per horizon 1-12 and modelled kind (agency, agent-in-agency, carrier, line), global across series, level-scaled features",
        "penalty": fitted.config.penalty,
        "features": features::NAMES,
        "reconciliation": if fitted.config.cross { "middle-out: agencies direct; tenant = sum of agencies; agents = agency x share of their own forecasts; carriers and lines = tenant x share" } else { "middle-out: agencies direct; tenant = sum of agencies; agents = agency x share of their own forecasts; carriers and lines unreconciled" },
        "intervals": format!("quantiles 2.5/10/90/97.5 % of in-sample errors of the reconciled forecasts of the last {} origins, per scope and horizon (pooled with neighbouring horizons), divided by each series' seasonal-naive MAE", model::INTERVAL_WINDOW),
        "damped_trend": "Holt damped trend on additive-deseasonalised data; alpha, beta, phi chosen per series and origin from a grid by one-step SSE",
    })
}

/// The backtest's settings and window.
fn backtest_json(origins: &[series::Month]) -> serde_json::Value {
    let (from, to) = backtest::window_of(origins).unzip();
    json!({
        "origins_from": from,
        "origins_to": to,
        "origins": origins.len(),
        "horizons": HORIZON,
        "mase_scale": "in-sample seasonal naive (lag 12) MAE of the data up to each origin",
        "scope_mase": "mean over series of each series' MASE (median beside it); WAPE and coverage pooled",
    })
}

/// The agency targets, from a `scopes` summary and the agencies' 80 % coverage.
fn targets(scopes: &serde_json::Value, cov: Option<f64>) -> serde_json::Value {
    let agency = |b: &str, what: &str| scopes["agency"]["buckets"][b]["model"][what].as_f64();
    json!({
        "agency_mase_1_3": { "value": agency("1-3", "mase"), "target": "<= 0.9", "met": agency("1-3", "mase").is_some_and(|v| v <= 0.9) },
        "agency_mase_7_12": { "value": agency("7-12", "mase"), "target": "< 1.0", "met": agency("7-12", "mase").is_some_and(|v| v < 1.0) },
        "agency_coverage80": { "value": cov, "target": "0.75..=0.85", "met": cov.is_some_and(|v| (0.75..=0.85).contains(&v)) },
    })
}

fn report_metrics(
    panel: &Panel,
    bt: &backtest::Backtest,
    fitted: &Fitted,
    window_from: NaiveDate,
    last_month: NaiveDate,
    seconds: f64,
    backtest_seconds: f64,
) -> serde_json::Value {
    let scopes = bt.summary(panel);
    let cov = bt.coverage80(panel, Kind::Agency, None);
    let coefficients: serde_json::Map<String, serde_json::Value> = fitted
        .models
        .iter()
        .filter_map(|(k, m)| {
            let ridge = m[0].as_ref()?;
            let named: serde_json::Map<String, serde_json::Value> =
                features::NAMES.iter().zip(ridge.coefficients()).map(|(n, c)| (n.to_string(), json!(c))).collect();
            Some((format!("{k:?}").to_lowercase(), json!(named)))
        })
        .collect();
    json!({
        "model": MODEL_NAME,
        "training_window": { "from": window_from.to_string(), "to": last_month.to_string() },
        "tenants": panel.tenants.len(),
        "contributing_tenants": bt.contributing_tenants(panel),
        "series": panel.series.iter().filter(|s| s.kind.scope().is_some()).count(),
        "method": method(fitted),
        "backtest": backtest_json(&bt.origins),
        "targets": targets(&scopes, cov),
        "scopes": scopes,
        "coefficients_h1": coefficients,
        "train_seconds": seconds,
        "backtest_seconds": backtest_seconds,
    })
}

/// The figures of [`report_metrics`] over each tenant's own series: its
/// backtest origins, scopes, targets and training window; no model
/// parameter and no count of other tenants' series.
fn tenant_metrics(
    panel: &Panel,
    bt: &backtest::Backtest,
    fitted: &Fitted,
    last_month: NaiveDate,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for (ti, t) in panel.tenants.iter().enumerate() {
        let scopes = bt.summary_of(panel, Some(ti));
        let cov = bt.coverage80(panel, Kind::Agency, Some(ti));
        let series = panel.series.iter().filter(|s| s.tenant == ti && s.kind.scope().is_some()).count();
        let from = month_date(panel.series[t.total].start);
        let figures = json!({
            "model": MODEL_NAME,
            "tenant_id": t.id,
            "training_window": { "from": from.to_string(), "to": last_month.to_string() },
            "series": series,
            "method": method(fitted),
            "backtest": backtest_json(&bt.origins_of(panel, ti)),
            "targets": targets(&scopes, cov),
            "scopes": scopes,
        });
        out.insert(t.id.clone(), figures);
    }
    out
}

fn card(metrics: &serde_json::Value, fitted: &Fitted) -> String {
    let f = |v: &serde_json::Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.3}"));
    let mut out = String::new();
    out.push_str(&format!(
        "# Model card: {MODEL_NAME}\n\nMonthly gross commission per tenant, agency, agent, carrier and line, 1–12 months ahead, with 80 % and 95 % intervals.\n\n\
         - Training window: {} .. {} (last complete month), {} tenants.\n\
         - Learner: {}; penalty {}.\n- Features: {}.\n- Reconciliation: {}.\n- Intervals: {}.\n\
         - Backtest: rolling origin, {} origins {} .. {}, horizons 1–12; MASE scaled by the in-sample seasonal-naive MAE at each origin; scope MASE = mean of series MASE.\n\n",
        metrics["training_window"]["from"].as_str().unwrap_or(""),
        metrics["training_window"]["to"].as_str().unwrap_or(""),
        metrics["tenants"],
        metrics["method"]["learner"].as_str().unwrap_or(""),
        fitted.config.penalty,
        features::NAMES.join(", "),
        metrics["method"]["reconciliation"].as_str().unwrap_or(""),
        metrics["method"]["intervals"].as_str().unwrap_or(""),
        metrics["backtest"]["origins"],
        metrics["backtest"]["origins_from"].as_str().unwrap_or("?"),
        metrics["backtest"]["origins_to"].as_str().unwrap_or("?"),
    ));
    out.push_str("| scope | horizon | series | MASE model | seasonal naive | damped trend | WAPE model | s. naive | d. trend | cover 80 | cover 95 |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for scope in ["tenant", "agency", "agent", "carrier", "line"] {
        for b in BUCKETS {
            let v = &metrics["scopes"][scope]["buckets"][b];
            out.push_str(&format!(
                "| {scope} | {b} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                metrics["scopes"][scope]["series"],
                f(&v["model"]["mase"]),
                f(&v["seasonal_naive"]["mase"]),
                f(&v["damped_trend"]["mase"]),
                f(&v["model"]["wape"]),
                f(&v["seasonal_naive"]["wape"]),
                f(&v["damped_trend"]["wape"]),
                f(&v["model"]["coverage80"]),
                f(&v["model"]["coverage95"]),
            ));
        }
    }
    out.push_str(&format!(
        "\nTargets (agency): MASE 1–3 ≤ 0.9: {}; MASE 7–12 < 1.0: {}; 80 % coverage in 75–85 %: {}.\n",
        metrics["targets"]["agency_mase_1_3"]["met"],
        metrics["targets"]["agency_mase_7_12"]["met"],
        metrics["targets"]["agency_coverage80"]["met"],
    ));
    out.push_str(&format!(
        "\nKnown limits: agents' forecasts are shares of their agency's, so a producer's start or termination shows only as it moves their share; a series younger than 13 months has no MASE; models trained to {}.\n",
        month_date(fitted.origin).format("%Y-%m")
    ));
    out
}
