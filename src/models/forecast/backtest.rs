//! Rolling-origin backtest: at each of the last `ORIGINS` months, the models
//! are refitted on the data up to that month only and forecast 1..=12 months
//! ahead; the forecasts with an actual are scored per horizon bucket beside
//! the seasonal naive and the damped-trend baselines made from the same data.

use anyhow::Result;
use serde_json::{Value, json};

use super::metrics::{Acc, damped_trend, noise_scale, seasonal_naive, seasonal_naive_mae};
use super::model::{self, Config, Grid, HORIZON, PUBLISHED};
use super::series::{Kind, Month, Panel, month_date};
use super::{AccuracyRow, BUCKETS, bucket_of};

/// Number of forecast origins (the months before the last one).
pub const ORIGINS: i32 = 24;

/// Accuracy of one series in one bucket: the model and the two baselines.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    pub model: Acc,
    pub seasonal_naive: Acc,
    pub damped_trend: Acc,
}

pub struct Backtest {
    /// Per series and bucket.
    pub scores: Vec<[Scores; 3]>,
    pub origins: Vec<Month>,
}

/// The origins of the backtest: the last `ORIGINS` months before the last
/// one, from the 13th month of the oldest tenant on (earlier ones have no
/// MASE scale).
pub fn origins(panel: &Panel) -> Vec<Month> {
    let first = panel.tenants.iter().map(|t| panel.series[t.total].start).min().unwrap_or(panel.last);
    ((panel.last - ORIGINS).max(first + 12)..panel.last).collect()
}

/// Threads the origins are spread over (each origin's refit is independent).
const THREADS: usize = 2;

pub fn run(panel: &Panel, grid: &Grid, config: &Config) -> Result<Backtest> {
    let origins = origins(panel);
    let parts: Vec<Result<Vec<[Scores; 3]>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|k| {
                let mine: Vec<Month> = origins.iter().copied().skip(k).step_by(THREADS).collect();
                scope.spawn(move || score_origins(panel, grid, config, &mine))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a backtest thread panicked")).collect()
    });
    let mut scores = vec![<[Scores; 3]>::default(); panel.series.len()];
    for part in parts {
        for (acc, p) in scores.iter_mut().zip(part?) {
            for (a, b) in acc.iter_mut().zip(&p) {
                a.model.merge(&b.model);
                a.seasonal_naive.merge(&b.seasonal_naive);
                a.damped_trend.merge(&b.damped_trend);
            }
        }
    }
    Ok(Backtest { scores, origins })
}

/// Scores of the forecasts made at `origins`, per series and bucket.
fn score_origins(panel: &Panel, grid: &Grid, config: &Config, origins: &[Month]) -> Result<Vec<[Scores; 3]>> {
    let mut scores = vec![<[Scores; 3]>::default(); panel.series.len()];
    for &o in origins {
        let at = model::fit_at(panel, grid, o, config)?;
        for (s, ser) in panel.series.iter().enumerate() {
            if !PUBLISHED.contains(&ser.kind) || ser.start > o {
                continue;
            }
            let hist = ser.upto(o);
            let (scale, noise) = (seasonal_naive_mae(hist), noise_scale(hist));
            let sn = seasonal_naive(hist, HORIZON);
            let dt = damped_trend(hist, ser.start.rem_euclid(12) as usize, HORIZON);
            for h in 1..=HORIZON {
                let Some(actual) = ser.at(o + h as i32) else { break };
                let point = at.point[h - 1][s] as f64 / 100.0;
                let q = at.fitted.quantiles(ser.kind, h as u32).map(|q| point + q * noise);
                let acc = &mut scores[s][bucket_of(h as u32)];
                acc.model.add(actual, point, scale);
                acc.model.add_interval(actual, (q[1], q[2]), (q[0], q[3]));
                acc.seasonal_naive.add(actual, sn[h - 1], scale);
                acc.damped_trend.add(actual, dt[h - 1], scale);
            }
        }
    }
    Ok(scores)
}

impl Backtest {
    /// One row per published series and bucket it was scored in.
    pub fn accuracy(&self, panel: &Panel) -> Vec<AccuracyRow> {
        let mut rows = Vec::new();
        for (s, ser) in panel.series.iter().enumerate() {
            let Some(scope) = ser.kind.scope() else { continue };
            for (b, sc) in self.scores[s].iter().enumerate() {
                if sc.model.abs_actual == 0.0 && sc.model.n_intervals == 0 {
                    continue;
                }
                rows.push(AccuracyRow {
                    tenant_id: panel.tenants[ser.tenant].id.clone(),
                    scope,
                    series_id: ser.id.clone(),
                    bucket: BUCKETS[b].to_string(),
                    mase: sc.model.mase(),
                    wape: sc.model.wape(),
                    coverage80: sc.model.coverage80(),
                    coverage95: sc.model.coverage95(),
                    seasonal_naive_mase: sc.seasonal_naive.mase(),
                    damped_trend_mase: sc.damped_trend.mase(),
                });
            }
        }
        rows
    }

    /// Per published scope and bucket: mean and median of the series' MASE,
    /// pooled WAPE and coverage, for the model and both baselines.
    pub fn summary(&self, panel: &Panel) -> Value {
        self.summary_of(panel, None)
    }

    /// [`summary`](Self::summary) over the series of one tenant (index into
    /// `panel.tenants`), or of all with `None`.
    pub fn summary_of(&self, panel: &Panel, tenant: Option<usize>) -> Value {
        let mut scopes = serde_json::Map::new();
        for kind in PUBLISHED {
            let series: Vec<usize> = (0..panel.series.len())
                .filter(|&s| panel.series[s].kind == kind && tenant.is_none_or(|t| panel.series[s].tenant == t))
                .collect();
            let mut buckets = serde_json::Map::new();
            for (b, name) in BUCKETS.iter().enumerate() {
                let pick = |f: fn(&Scores) -> &Acc| -> Value {
                    let mut pooled = Acc::default();
                    let mut mases = Vec::new();
                    for &s in &series {
                        let a = f(&self.scores[s][b]);
                        pooled.merge(a);
                        mases.extend(a.mase());
                    }
                    let mut v = json!({
                        "mase": mean(&mases),
                        "mase_median": median(&mut mases),
                        "series_with_mase": mases.len(),
                        "wape": pooled.wape(),
                    });
                    if pooled.n_intervals > 0 {
                        v["coverage80"] = json!(pooled.coverage80());
                        v["coverage95"] = json!(pooled.coverage95());
                        v["forecasts"] = json!(pooled.n_intervals);
                    }
                    v
                };
                buckets.insert(
                    name.to_string(),
                    json!({
                        "model": pick(|s| &s.model),
                        "seasonal_naive": pick(|s| &s.seasonal_naive),
                        "damped_trend": pick(|s| &s.damped_trend),
                    }),
                );
            }
            let scope = kind.scope().expect("published kinds have a scope");
            scopes.insert(scope.as_str().to_string(), json!({ "series": series.len(), "buckets": buckets }));
        }
        Value::Object(scopes)
    }

    /// Pooled 80 % coverage of all forecasts of a kind (of one tenant's
    /// series with `Some`).
    pub fn coverage80(&self, panel: &Panel, kind: Kind, tenant: Option<usize>) -> Option<f64> {
        let mut pooled = Acc::default();
        for s in (0..panel.series.len())
            .filter(|&s| panel.series[s].kind == kind && tenant.is_none_or(|t| panel.series[s].tenant == t))
        {
            self.scores[s].iter().for_each(|sc| pooled.merge(&sc.model));
        }
        pooled.coverage80()
    }

    /// The tenants behind the pooled summary: the fewest whose series were
    /// scored in any published scope and bucket that has forecasts, and
    /// never more than the tenants of the panel.
    pub fn contributing_tenants(&self, panel: &Panel) -> usize {
        let mut parts: Vec<Vec<&str>> = Vec::new();
        for kind in PUBLISHED {
            for b in 0..BUCKETS.len() {
                parts.push(
                    (0..panel.series.len())
                        .filter(|&s| panel.series[s].kind == kind && self.scores[s][b].model.n_intervals > 0)
                        .map(|s| panel.tenants[panel.series[s].tenant].id.as_str())
                        .collect(),
                );
            }
        }
        parts.push(panel.tenants.iter().map(|t| t.id.as_str()).collect());
        crate::models::registry::contributing_tenants(parts.iter().map(|p| p.iter().copied()))
    }

    /// The origins at which the series of `tenant` were forecast (from its
    /// total's first month on).
    pub fn origins_of(&self, panel: &Panel, tenant: usize) -> Vec<Month> {
        let start = panel.series[panel.tenants[tenant].total].start;
        self.origins.iter().copied().filter(|&o| o >= start).collect()
    }
}

/// The first and last of `origins` as `YYYY-MM`.
pub fn window_of(origins: &[Month]) -> Option<(String, String)> {
    let fmt = |m: Month| month_date(m).format("%Y-%m").to_string();
    Some((fmt(*origins.first()?), fmt(*origins.last()?)))
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn median(v: &mut [f64]) -> Option<f64> {
    (!v.is_empty()).then(|| super::metrics::quantile(v, 0.5))
}
