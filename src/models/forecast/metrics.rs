//! Accuracy measures and the two baselines the model is compared with.
//!
//! - MASE: mean absolute error divided by the in-sample MAE of the seasonal
//!   naive forecast (lag 12) on the data up to the forecast origin.
//! - WAPE: Σ|error| / Σ|actual|.
//! - Coverage: share of actuals inside an interval.

/// Seasonal period (months).
pub const PERIOD: usize = 12;

/// In-sample MAE of the seasonal naive forecast, `mean |y[t] - y[t-12]|`:
/// the MASE scale. `None` for fewer than 13 months or a zero MAE.
pub fn seasonal_naive_mae(history: &[f64]) -> Option<f64> {
    if history.len() <= PERIOD {
        return None;
    }
    let n = history.len() - PERIOD;
    let mae = (PERIOD..history.len()).map(|t| (history[t] - history[t - PERIOD]).abs()).sum::<f64>() / n as f64;
    (mae > 0.0).then_some(mae)
}

/// The scale of a series' month-to-month noise, used to size its intervals:
/// the seasonal-naive MAE, else the MAE of the naive (lag 1) forecast, else
/// the mean absolute amount; 0 when all of those are 0.
pub fn noise_scale(history: &[f64]) -> f64 {
    if let Some(s) = seasonal_naive_mae(history) {
        return s;
    }
    if history.len() >= 2 {
        let s = history.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (history.len() - 1) as f64;
        if s > 0.0 {
            return s;
        }
    }
    if history.is_empty() { 0.0 } else { history.iter().map(|v| v.abs()).sum::<f64>() / history.len() as f64 }
}

/// Seasonal naive forecasts 1..=horizon months ahead: the same month one
/// year earlier; the last value where the history is shorter than that.
pub fn seasonal_naive(history: &[f64], horizon: usize) -> Vec<f64> {
    let n = history.len();
    (1..=horizon)
        .map(|h| {
            let back = PERIOD * h.div_ceil(PERIOD);
            if n + h > back { history[n + h - back - 1] } else { history.last().copied().unwrap_or(0.0) }
        })
        .collect()
}

/// Parameters tried for the damped-trend baseline (chosen per series and
/// origin by the smallest in-sample one-step squared error).
const ALPHAS: [f64; 6] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8];
const BETAS: [f64; 4] = [0.01, 0.05, 0.1, 0.2];
const PHIS: [f64; 3] = [0.8, 0.9, 0.98];

/// Holt's damped-trend forecasts 1..=horizon months ahead, on the series
/// deseasonalised by additive month-of-year indices (classical
/// decomposition against a centred 2×12 moving average; only with 24+
/// months). `month0` is the month-of-year (0 = January) of `history[0]`.
pub fn damped_trend(history: &[f64], month0: usize, horizon: usize) -> Vec<f64> {
    let n = history.len();
    if n == 0 {
        return vec![0.0; horizon];
    }
    let season = seasonal_indices(history, month0);
    let z: Vec<f64> = history.iter().enumerate().map(|(t, y)| y - season[(month0 + t) % PERIOD]).collect();
    let mut best = (f64::INFINITY, z[n - 1], 0.0, 1.0);
    for alpha in ALPHAS {
        for beta in BETAS {
            for phi in PHIS {
                let (sse, level, trend) = holt(&z, alpha, beta, phi);
                if sse < best.0 {
                    best = (sse, level, trend, phi);
                }
            }
        }
    }
    let (_, level, trend, phi) = best;
    let mut damp = 0.0;
    (1..=horizon)
        .map(|h| {
            damp += phi.powi(h as i32);
            level + damp * trend + season[(month0 + n - 1 + h) % PERIOD]
        })
        .collect()
}

/// One pass of Holt's damped trend: (one-step SSE, final level, final trend).
fn holt(z: &[f64], alpha: f64, beta: f64, phi: f64) -> (f64, f64, f64) {
    let mut level = z[0];
    let mut trend = 0.0;
    let mut sse = 0.0;
    for &y in &z[1..] {
        let fc = level + phi * trend;
        sse += (y - fc).powi(2);
        let new_level = alpha * y + (1.0 - alpha) * fc;
        trend = beta * (new_level - level) + (1.0 - beta) * phi * trend;
        level = new_level;
    }
    (sse, level, trend)
}

/// Additive month-of-year indices summing to zero (all zero with fewer than
/// 24 months).
pub fn seasonal_indices(history: &[f64], month0: usize) -> [f64; PERIOD] {
    let n = history.len();
    let mut idx = [0.0; PERIOD];
    if n < 2 * PERIOD {
        return idx;
    }
    let mut count = [0usize; PERIOD];
    for t in 6..n - 6 {
        // Centred 2×12 moving average: half weight on the two ends.
        let ma = (0.5 * history[t - 6] + history[t - 5..t + 6].iter().sum::<f64>() + 0.5 * history[t + 6]) / 12.0;
        let m = (month0 + t) % PERIOD;
        idx[m] += history[t] - ma;
        count[m] += 1;
    }
    for m in 0..PERIOD {
        if count[m] > 0 {
            idx[m] /= count[m] as f64;
        }
    }
    let mean = idx.iter().sum::<f64>() / PERIOD as f64;
    idx.iter_mut().for_each(|v| *v -= mean);
    idx
}

/// Running sums behind MASE, WAPE and coverage of one series (or scope) in
/// one horizon bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acc {
    /// Σ |error| / scale over pairs with a scale, and their number.
    pub scaled: f64,
    pub n_scaled: usize,
    pub abs_err: f64,
    pub abs_actual: f64,
    pub in80: usize,
    pub in95: usize,
    pub n_intervals: usize,
}

impl Acc {
    /// One forecast of `actual`; `scale` is the MASE scale at its origin.
    pub fn add(&mut self, actual: f64, forecast: f64, scale: Option<f64>) {
        let e = (actual - forecast).abs();
        if let Some(s) = scale {
            self.scaled += e / s;
            self.n_scaled += 1;
        }
        self.abs_err += e;
        self.abs_actual += actual.abs();
    }

    /// Whether `actual` fell inside the 80 % and 95 % intervals.
    pub fn add_interval(&mut self, actual: f64, i80: (f64, f64), i95: (f64, f64)) {
        self.in80 += usize::from(i80.0 <= actual && actual <= i80.1);
        self.in95 += usize::from(i95.0 <= actual && actual <= i95.1);
        self.n_intervals += 1;
    }

    pub fn merge(&mut self, o: &Acc) {
        self.scaled += o.scaled;
        self.n_scaled += o.n_scaled;
        self.abs_err += o.abs_err;
        self.abs_actual += o.abs_actual;
        self.in80 += o.in80;
        self.in95 += o.in95;
        self.n_intervals += o.n_intervals;
    }

    pub fn mase(&self) -> Option<f64> {
        (self.n_scaled > 0).then(|| self.scaled / self.n_scaled as f64)
    }

    pub fn wape(&self) -> Option<f64> {
        (self.abs_actual > 0.0).then(|| self.abs_err / self.abs_actual)
    }

    pub fn coverage80(&self) -> Option<f64> {
        (self.n_intervals > 0).then(|| self.in80 as f64 / self.n_intervals as f64)
    }

    pub fn coverage95(&self) -> Option<f64> {
        (self.n_intervals > 0).then(|| self.in95 as f64 / self.n_intervals as f64)
    }
}

/// MASE of forecasts of `actual` with one scale.
#[cfg(test)]
pub fn mase(actual: &[f64], forecast: &[f64], scale: f64) -> Option<f64> {
    let mut acc = Acc::default();
    let scale = (scale > 0.0).then_some(scale);
    actual.iter().zip(forecast).for_each(|(a, f)| acc.add(*a, *f, scale));
    acc.mase()
}

#[cfg(test)]
pub fn wape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let mut acc = Acc::default();
    actual.iter().zip(forecast).for_each(|(a, f)| acc.add(*a, *f, None));
    acc.wape()
}

/// Share of `actual` inside `[lower, upper]` (bounds included).
#[cfg(test)]
pub fn coverage(actual: &[f64], lower: &[f64], upper: &[f64]) -> Option<f64> {
    let mut acc = Acc::default();
    for ((a, l), u) in actual.iter().zip(lower).zip(upper) {
        acc.add_interval(*a, (*l, *u), (*l, *u));
    }
    acc.coverage80()
}

/// The `q` quantile (0..=1) of `v`, linear between order statistics.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}
