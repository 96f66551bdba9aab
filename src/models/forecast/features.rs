//! Features of the direct h-months-ahead models: everything is known at the
//! forecast origin `o` (only months `start..=o` are read) and divided by the
//! series' level (mean |amount| of its last 12 months), so that one model
//! fits series of every size.

use super::series::{Month, Series};

/// Names of the features, in order (the model card lists them).
pub const NAMES: [&str; NF] = [
    "lag12",
    "lag24",
    "lag36",
    "has12",
    "has24",
    "has36",
    "level",
    "recent3",
    "last1",
    "growth",
    "yoy3",
    "age",
    "lag12_x_growth",
    "parent_lag12",
    "parent_lag24",
    "parent_lag36",
    "parent_growth",
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
];
pub const NF: usize = 29;
/// Positions of the features the fallback forecast reads.
pub const LAG12: usize = 0;
pub const LAG12_X_GROWTH: usize = 12;

/// Scaled features and targets are clipped to ±CLIP: a series that starts
/// small and jumps must not dominate a least-squares fit.
pub const CLIP: f64 = 10.0;

/// Months of history a row needs to be used in training.
pub const TRAIN_MIN_HISTORY: i32 = 3;

/// The series as seen at origin `o`.
struct AsOf<'a> {
    s: &'a Series,
    o: Month,
}

impl AsOf<'_> {
    fn y(&self, m: Month) -> Option<f64> {
        if m > self.o { None } else { self.s.at(m) }
    }

    /// Mean of `f(y)` over the available months of `from..=to`.
    fn mean(&self, from: Month, to: Month, f: impl Fn(f64) -> f64) -> Option<f64> {
        let v: Vec<f64> = (from..=to).filter_map(|m| self.y(m)).map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Whether every month from `from` up to the origin is available.
    fn full(&self, from: Month) -> bool {
        from >= self.s.start
    }
}

/// The level a series' forecasts at origin `o` are scaled by: mean |amount|
/// of its last 12 months (0 when they are all zero or it has no history).
pub fn level(s: &Series, o: Month) -> f64 {
    AsOf { s, o }.mean(o - 11, o, f64::abs).unwrap_or(0.0)
}

/// The same-month shapes (amount of the month 12, 24 and 36 months before
/// the target over the level of its year) and the year-on-year growth of
/// `s` at origin `o`; missing ones fall back to the previous.
fn shape(s: &Series, o: Month, target: Month, fallback: f64) -> [f64; 4] {
    let a = AsOf { s, o };
    let level_of = |back: i32| a.mean(o - 11 - back, o - back, f64::abs).filter(|l| *l > 0.0);
    let mut out = [fallback; 3];
    for (k, back) in [12, 24, 36].into_iter().enumerate() {
        let prev = if k == 0 { fallback } else { out[k - 1] };
        out[k] = match (a.y(target - back), level_of(back - 12)) {
            (Some(v), Some(l)) => v / l,
            _ => prev,
        };
    }
    let growth = match (a.full(o - 23), level_of(0)) {
        (true, Some(l)) => (a.mean(o - 11, o, |v| v).unwrap_or(0.0) - a.mean(o - 23, o - 12, |v| v).unwrap_or(0.0)) / l,
        _ => 0.0,
    };
    [out[0], out[1], out[2], growth]
}

/// Fills `out` with the features of `s` at origin `o` for the month `o + h`
/// and returns the level they were scaled by; `None` when that level is 0
/// (the forecast is then 0). `parent`'s shape is a less noisy estimate of
/// the seasonal pattern of a small series.
pub fn row(s: &Series, parent: Option<&Series>, o: Month, h: u32, out: &mut [f64]) -> Option<f64> {
    let a = AsOf { s, o };
    let scale = level(s, o);
    if scale <= 0.0 {
        return None;
    }
    let h = h as i32;
    let target = o + h;
    let prior_level = |back: i32| a.mean(o - 11 - back, o - back, f64::abs).filter(|l| *l > 0.0);
    let recent3 = a.mean(o - 2, o, |v| v).unwrap_or(0.0) / scale;
    let lag12 = a.y(target - 12).map_or(recent3, |v| v / scale);
    let lag24 = match (a.y(target - 24), prior_level(12)) {
        (Some(v), Some(l)) => v / l,
        _ => lag12,
    };
    let lag36 = match (a.y(target - 36), prior_level(24)) {
        (Some(v), Some(l)) => v / l,
        _ => lag24,
    };
    let level_now = a.mean(o - 11, o, |v| v).unwrap_or(0.0);
    let growth = if a.full(o - 23) { (level_now - a.mean(o - 23, o - 12, |v| v).unwrap_or(0.0)) / scale } else { 0.0 };
    let yoy3 = if a.full(o - 14) { recent3 - a.mean(o - 14, o - 12, |v| v).unwrap_or(0.0) / scale } else { 0.0 };
    let history = (o - s.start + 1) as f64;
    let f = [
        lag12,
        lag24,
        lag36,
        f64::from(u8::from(target - 12 >= s.start)),
        f64::from(u8::from(target - 24 >= s.start)),
        f64::from(u8::from(target - 36 >= s.start)),
        level_now / scale,
        recent3,
        a.y(o).unwrap_or(0.0) / scale,
        growth,
        yoy3,
        history.min(36.0) / 36.0,
        // Growth acts on the seasonal amount, not on the level alone.
        lag12 * growth,
    ];
    let own = [lag12, lag24, lag36, growth];
    let p = parent.filter(|p| level(p, o) > 0.0).map_or(own, |p| shape(p, o, target, 1.0));
    for (slot, v) in out.iter_mut().zip(f.into_iter().chain(p)) {
        *slot = v.clamp(-CLIP, CLIP);
    }
    let month0 = target.rem_euclid(12) as usize;
    for (m, slot) in out[17..NF].iter_mut().enumerate() {
        *slot = f64::from(u8::from(m == month0));
    }
    Some(scale)
}
