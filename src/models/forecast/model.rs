//! The learnt part: one ridge regression (linfa-elasticnet with l1_ratio 0)
//! per modelled series kind and horizon, global across the series of that
//! kind, on level-scaled features ("direct" multi-horizon forecasting), and
//! the interval quantiles of each published kind and horizon.

use anyhow::{Result, anyhow};
use linfa::prelude::*;
use linfa_elasticnet::ElasticNet;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::features::{self, CLIP, NF, TRAIN_MIN_HISTORY};
use super::metrics::{noise_scale, quantile};
use super::reconcile;
use super::series::{Kind, Month, Panel};

pub const HORIZON: usize = 12;
/// The choices of a fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Ridge penalty (linfa's objective: 1/(2n)·‖y − Xw‖² + penalty/2·‖w‖²,
    /// on standardised features).
    pub penalty: f64,
    /// Whether carriers and lines are split from the tenant's total.
    pub cross: bool,
    /// Training rows are those whose target month is among the last this
    /// many months up to the fit's origin (older dynamics are left out).
    pub window: i32,
}

impl Default for Config {
    fn default() -> Config {
        Config { penalty: 0.01, cross: false, window: 36 }
    }
}
/// Kinds with their own models; tenants and agents are sums of these.
pub const MODELLED: [Kind; 4] = [Kind::Agency, Kind::Cell, Kind::Carrier, Kind::Line];
/// Published kinds (each gets its own interval quantiles).
pub const PUBLISHED: [Kind; 5] = [Kind::Tenant, Kind::Agency, Kind::Agent, Kind::Carrier, Kind::Line];
/// Origins whose in-sample errors size the intervals: the last this many.
pub const INTERVAL_WINDOW: i32 = 24;
/// Interval quantiles: 2.5 %, 10 %, 90 %, 97.5 %.
pub const LEVELS: [f64; 4] = [0.025, 0.10, 0.90, 0.975];
/// Used when a kind has too few residuals for quantiles, in units of its
/// noise scale (about ±1.28σ and ±1.96σ of a normal with MAE = 0.8σ).
const FALLBACK_Q: [f64; 4] = [-2.5, -1.6, 1.6, 2.5];

/// A ridge regression on standardised features, solved by linfa's elastic
/// net (l1_ratio 0).
///
/// linfa minimises 1/(2n)·‖y − Xw‖² + penalty/2·‖w‖² by coordinate descent,
/// which costs n·p per sweep and needs thousands of sweeps on correlated
/// features (lags of one series are). The objective depends on the data
/// only through G = X'X/n and b = X'y/n, and ridge is invariant under a
/// rotation of the features. So the features are rotated onto the
/// eigenvectors Q of G, and linfa is given the p × p system with Gram
/// diag(λ) and the same b in that basis: its descent is then exact in one
/// sweep, at a cost independent of n, and gives the same minimiser. (Its
/// duality-gap stop never fires for l1_ratio 0 — the gap it computes keeps
/// ½‖r‖² — so the number of sweeps is capped instead.)
/// Features and target are centred here, so the intercept is the target's
/// mean (linfa's own intercept centres the target only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ridge {
    mean: Vec<f64>,
    sd: Vec<f64>,
    /// Eigenvectors of the standardised features' Gram matrix (columns).
    rotation: Array2<f64>,
    intercept: f64,
    net: ElasticNet<f64>,
}

impl Ridge {
    pub fn fit(x: &Array2<f64>, y: &Array1<f64>, penalty: f64) -> Result<Ridge> {
        let n = x.nrows() as f64;
        let mean = x.mean_axis(Axis(0)).ok_or_else(|| anyhow!("no training rows"))?;
        let sd = x.std_axis(Axis(0), 0.0).mapv(|s| if s > 1e-9 { s } else { 1.0 });
        let xs = (x - &mean) / &sd;
        let intercept = y.mean().unwrap_or(0.0);
        let gram = xs.t().dot(&xs) / n;
        let b = xs.t().dot(&(y - intercept)) / n;
        let (eig, rotation) = symmetric_eigen(&gram);
        let (r, z) = rotated_system(&eig, &rotation.t().dot(&b));
        let net = ElasticNet::params()
            .penalty(penalty)
            .l1_ratio(0.0)
            .with_intercept(false)
            .max_iterations(3)
            .fit(&Dataset::new(r, z))
            .map_err(|e| anyhow!("ridge fit: {e}"))?;
        Ok(Ridge { mean: mean.to_vec(), sd: sd.to_vec(), rotation, intercept, net })
    }

    pub fn predict(&self, x: &Array2<f64>) -> Array1<f64> {
        let mean = Array1::from(self.mean.clone());
        let sd = Array1::from(self.sd.clone());
        self.net.predict(&((x - &mean) / &sd).dot(&self.rotation)) + self.intercept
    }

    /// Coordinate-descent sweeps linfa took.
    #[cfg(test)]
    pub fn steps(&self) -> u32 {
        self.net.n_steps()
    }

    /// Coefficients on the unstandardised features.
    pub fn coefficients(&self) -> Vec<f64> {
        let w = self.rotation.dot(self.net.hyperplane());
        w.iter().zip(&self.sd).map(|(w, s)| w / s).collect()
    }
}

/// The p × p system (R, z) whose linfa objective equals the data's in the
/// rotated basis: R'R/p = diag(λ) and R'z/p = b. Directions without
/// variance get a zero column, which linfa leaves at weight 0 (b is 0
/// there too).
fn rotated_system(eig: &Array1<f64>, b: &Array1<f64>) -> (Array2<f64>, Array1<f64>) {
    let p = eig.len();
    let sp = (p as f64).sqrt();
    let floor = 1e-12 * eig.iter().map(|v| v.abs()).sum::<f64>().max(1e-300);
    let mut r = Array2::zeros((p, p));
    let mut z = Array1::zeros(p);
    for i in 0..p {
        if eig[i] > floor {
            r[[i, i]] = sp * eig[i].sqrt();
            z[i] = sp * b[i] / eig[i].sqrt();
        }
    }
    (r, z)
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic
/// Jacobi rotations.
pub fn symmetric_eigen(m: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let p = m.nrows();
    let mut a = m.clone();
    let mut v = Array2::<f64>::eye(p);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        if off.sqrt() <= 1e-14 * scale {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                if a[[i, j]].abs() <= 1e-300 {
                    continue;
                }
                // The rotation that zeroes a[i][j].
                let theta = (a[[j, j]] - a[[i, i]]) / (2.0 * a[[i, j]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (aki, akj) = (a[[k, i]], a[[k, j]]);
                    a[[k, i]] = c * aki - s * akj;
                    a[[k, j]] = s * aki + c * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[[i, k]], a[[j, k]]);
                    a[[i, k]] = c * aik - s * ajk;
                    a[[j, k]] = s * aik + c * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[[k, i]], v[[k, j]]);
                    v[[k, i]] = c * vki - s * vkj;
                    v[[k, j]] = s * vki + c * vkj;
                }
            }
        }
    }
    (a.diag().to_owned(), v)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fitted {
    pub config: Config,
    /// Last month of the data fitted on.
    pub origin: Month,
    /// Per modelled kind, the models of horizons 1..=12; `None` where there
    /// were too few rows (the same month last year, grown by the
    /// year-on-year growth, stands in).
    pub models: Vec<(Kind, Vec<Option<Ridge>>)>,
    /// Per published kind and horizon, quantiles `LEVELS` of the errors of
    /// its reconciled forecasts divided by the series' noise scale.
    pub quantiles: Vec<(Kind, Vec<[f64; 4]>)>,
}

impl Fitted {
    fn model(&self, kind: Kind, h: u32) -> Option<&Ridge> {
        self.models.iter().find(|(k, _)| *k == kind).and_then(|(_, m)| m[h as usize - 1].as_ref())
    }

    /// Interval offsets (in noise scales) of `kind` at horizon `h`.
    pub fn quantiles(&self, kind: Kind, h: u32) -> [f64; 4] {
        self.quantiles.iter().find(|(k, _)| *k == kind).map_or(FALLBACK_Q, |(_, q)| q[h as usize - 1])
    }

    /// Forecasts (in currency) of rows with features `x` and levels `scale`.
    pub fn predict(&self, kind: Kind, h: u32, x: &Array2<f64>, scale: &[f64]) -> Vec<f64> {
        let scaled: Vec<f64> = match self.model(kind, h) {
            Some(m) if x.nrows() > 0 => m.predict(x).to_vec(),
            // Same month last year, grown by the year-on-year growth.
            _ => (&x.column(features::LAG12) + &x.column(features::LAG12_X_GROWTH)).to_vec(),
        };
        scaled.iter().zip(scale).map(|(p, s)| if *s > 0.0 { p.clamp(-CLIP, CLIP) * s } else { 0.0 }).collect()
    }
}

/// Features of every series at every origin of its history, for every
/// horizon: row `row0[s] + (o - start)` is series `s` at origin `o`.
pub struct Grid {
    pub row0: Vec<usize>,
    /// Per horizon (index h-1), rows × features.
    pub x: Vec<Array2<f64>>,
    /// Level of each row (0: forecast 0).
    pub scale: Vec<f64>,
}

impl Grid {
    pub fn build(panel: &Panel) -> Grid {
        let mut row0 = Vec::with_capacity(panel.series.len());
        let mut n = 0;
        for s in &panel.series {
            row0.push(n);
            n += s.values.len();
        }
        let mut x: Vec<Array2<f64>> = (0..HORIZON).map(|_| Array2::zeros((n, NF))).collect();
        let mut scale = vec![0.0; n];
        for (si, s) in panel.series.iter().enumerate() {
            if !MODELLED.contains(&s.kind) {
                continue;
            }
            let parent = s.parent.map(|p| &panel.series[p]);
            for k in 0..s.values.len() {
                let (r, o) = (row0[si] + k, s.start + k as i32);
                for h in 1..=HORIZON {
                    let mut row = x[h - 1].row_mut(r);
                    let out = row.as_slice_mut().expect("rows of a standard-layout array are contiguous");
                    scale[r] = features::row(s, parent, o, h as u32, out).unwrap_or(0.0);
                }
            }
        }
        Grid { row0, x, scale }
    }

    pub fn row(&self, panel: &Panel, s: usize, o: Month) -> Option<usize> {
        let ser = &panel.series[s];
        (o >= ser.start && o <= panel.last).then(|| self.row0[s] + (o - ser.start) as usize)
    }
}

/// Forecasts made at one origin by the models fitted on data up to it:
/// `point[h-1][s]`, reconciled, in cents.
pub struct AtOrigin {
    pub fitted: Fitted,
    pub point: Vec<Vec<i64>>,
}

/// Fits the models on data up to `origin`, forecasts from it, and sizes the
/// intervals by the in-sample errors of the reconciled forecasts.
pub fn fit_at(panel: &Panel, grid: &Grid, origin: Month, config: &Config) -> Result<AtOrigin> {
    let mut models = Vec::new();
    for kind in MODELLED {
        let series: Vec<usize> = (0..panel.series.len()).filter(|&s| panel.series[s].kind == kind).collect();
        let mut per_h = Vec::with_capacity(HORIZON);
        for h in 1..=HORIZON as i32 {
            let (mut rows, mut y) = (Vec::new(), Vec::new());
            for &s in &series {
                let ser = &panel.series[s];
                for o in (ser.start + TRAIN_MIN_HISTORY - 1).max(origin - config.window - h + 1)..=origin - h {
                    let r = grid.row(panel, s, o).expect("o is within the series");
                    if grid.scale[r] > 0.0 {
                        rows.push(r);
                        y.push(
                            (ser.at(o + h).expect("target is within the series") / grid.scale[r]).clamp(-CLIP, CLIP),
                        );
                    }
                }
            }
            per_h.push(if rows.len() >= 3 * NF {
                Some(Ridge::fit(&grid.x[h as usize - 1].select(Axis(0), &rows), &Array1::from(y), config.penalty)?)
            } else {
                None
            });
        }
        models.push((kind, per_h));
    }
    let mut fitted = Fitted { config: config.clone(), origin, models, quantiles: Vec::new() };
    // Reconciled forecasts at the origin and at the in-sample origins.
    let first = origin - INTERVAL_WINDOW - HORIZON as i32 + 1;
    let mut point = Vec::with_capacity(HORIZON);
    let mut residuals: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); HORIZON]; PUBLISHED.len()];
    let noise: Vec<f64> = panel.series.iter().map(|s| noise_scale(s.upto(origin))).collect();
    for h in 1..=HORIZON as u32 {
        let raw = raw_forecasts(panel, grid, &fitted, h, first, origin);
        let mut cents = vec![0i64; panel.series.len()];
        for o in first..=origin {
            if o != origin && o + h as i32 > origin {
                continue;
            }
            for t in &panel.tenants {
                reconcile::cents(panel, t, o, config.cross, |s| raw_at(&raw, s, o, first), &mut cents);
            }
            if o == origin {
                point.push(cents.clone());
                continue;
            }
            for (s, ser) in panel.series.iter().enumerate() {
                let Some(k) = PUBLISHED.iter().position(|k| *k == ser.kind) else { continue };
                if o < ser.start + TRAIN_MIN_HISTORY - 1 || noise[s] <= 0.0 {
                    continue;
                }
                let actual = ser.at(o + h as i32).expect("in sample");
                residuals[k][h as usize - 1].push((actual - cents[s] as f64 / 100.0) / noise[s]);
            }
        }
    }
    fitted.quantiles =
        PUBLISHED.iter().enumerate().map(|(k, kind)| (*kind, interval_quantiles(&residuals[k]))).collect();
    Ok(AtOrigin { fitted, point })
}

/// Quantiles per horizon, pooling each horizon with its neighbours; the
/// lower ones at most 0 and the upper ones at least 0.
fn interval_quantiles(res: &[Vec<f64>]) -> Vec<[f64; 4]> {
    (0..HORIZON)
        .map(|h| {
            let mut pool: Vec<f64> =
                (h.saturating_sub(1)..=(h + 1).min(HORIZON - 1)).flat_map(|k| res[k].clone()).collect();
            if pool.len() < 30 {
                return FALLBACK_Q;
            }
            let q = LEVELS.map(|l| quantile(&mut pool, l));
            [q[0].min(0.0), q[1].min(0.0), q[2].max(0.0), q[3].max(0.0)]
        })
        .collect()
}

/// Model forecasts (currency) of every modelled row with origin in
/// `first..=last`, indexed `[s][o - first]`; NaN elsewhere.
fn raw_forecasts(panel: &Panel, grid: &Grid, fitted: &Fitted, h: u32, first: Month, last: Month) -> Vec<Vec<f64>> {
    let width = (last - first + 1) as usize;
    let mut out = vec![Vec::new(); panel.series.len()];
    for kind in MODELLED {
        let mut rows = Vec::new();
        let mut at = Vec::new();
        for (s, ser) in panel.series.iter().enumerate().filter(|(_, ser)| ser.kind == kind) {
            out[s] = vec![f64::NAN; width];
            for o in first.max(ser.start)..=last {
                rows.push(grid.row(panel, s, o).expect("within the series"));
                at.push((s, (o - first) as usize));
            }
        }
        let x = grid.x[h as usize - 1].select(Axis(0), &rows);
        let scale: Vec<f64> = rows.iter().map(|&r| grid.scale[r]).collect();
        for ((s, k), p) in at.into_iter().zip(fitted.predict(kind, h, &x, &scale)) {
            out[s][k] = p;
        }
    }
    out
}

fn raw_at(raw: &[Vec<f64>], s: usize, o: Month, first: Month) -> f64 {
    raw[s].get((o - first) as usize).copied().filter(|v| v.is_finite()).unwrap_or(0.0)
}
