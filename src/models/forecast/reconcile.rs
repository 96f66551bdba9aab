//! Middle-out reconciliation, in whole cents:
//!
//! - agencies are forecast directly (their models are the most accurate
//!   level with enough volume), rounded to cents;
//! - the tenant is the sum of its agencies (rows without an agency form the
//!   `unassigned` agency, so nothing is lost);
//! - each agency is split over its cells (agent × agency) in proportion to
//!   the cells' own forecasts (negative ones count 0; if all are 0, in
//!   proportion to their trailing level; if that is 0 too, equally), and an
//!   agent is the sum of its cells: agents add up to their agency exactly;
//! - carriers and lines are split from the tenant's total the same way when
//!   `cross` is on, else left as forecast.

use super::features::level;
use super::series::{Month, Panel, TenantNodes};

/// Fills `out[s]` (cents) for every series `s` of tenant `t` at origin `o`
/// from the model forecasts `raw(s)` (currency) of the modelled series.
pub fn cents(panel: &Panel, t: &TenantNodes, o: Month, cross: bool, raw: impl Fn(usize) -> f64, out: &mut [i64]) {
    let exists = |s: usize| panel.series[s].start <= o;
    let own = |s: usize| if exists(s) { to_cents(raw(s)) } else { 0 };
    let mut total = 0;
    for &a in &t.agencies {
        out[a] = own(a);
        total += out[a];
    }
    out[t.total] = total;
    let weights = |nodes: &[usize]| -> Vec<f64> {
        let w: Vec<f64> = nodes.iter().map(|&s| if exists(s) { raw(s).max(0.0) } else { 0.0 }).collect();
        if w.iter().sum::<f64>() > 0.0 {
            return w;
        }
        let w: Vec<f64> = nodes.iter().map(|&s| if exists(s) { level(&panel.series[s], o) } else { 0.0 }).collect();
        if w.iter().sum::<f64>() > 0.0 {
            return w;
        }
        nodes.iter().map(|&s| f64::from(u8::from(exists(s)))).collect()
    };
    for (i, &a) in t.agencies.iter().enumerate() {
        let cells = &t.agency_cells[i];
        for (c, v) in cells.iter().zip(split_cents(out[a], &weights(cells))) {
            out[*c] = v;
        }
    }
    for (i, &g) in t.agents.iter().enumerate() {
        out[g] = t.agent_cells[i].iter().map(|&c| out[c]).sum();
    }
    for nodes in [&t.carriers, &t.lines] {
        if cross {
            for (s, v) in nodes.iter().zip(split_cents(total, &weights(nodes))) {
                out[*s] = v;
            }
        } else {
            nodes.iter().for_each(|&s| out[s] = own(s));
        }
    }
}

pub fn to_cents(v: f64) -> i64 {
    round_cents(v * 100.0)
}

/// Rounds an amount in cents, first to a millionth of a cent: a model
/// reloaded from JSON may differ in the last bit of a float, and that must
/// not flip a half cent.
fn round_cents(c: f64) -> i64 {
    ((c * 1e6).round() / 1e6).round() as i64
}

/// `total` split in proportion to `weights` (non-negative, not all 0) in
/// whole cents that add up to `total` exactly: each part is the difference
/// of the rounded running sums, so no part is off by a cent or more.
pub fn split_cents(total: i64, weights: &[f64]) -> Vec<i64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum <= 0.0 {
        let mut v = vec![0; weights.len()];
        v[0] = total;
        return v;
    }
    let (mut run, mut prev) = (0.0, 0i64);
    let last = weights.len() - 1;
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            run += w / sum * total as f64;
            let cur = if i == last { total } else { round_cents(run) };
            let part = cur - prev;
            prev = cur;
            part
        })
        .collect()
}
