//! Anonymised benchmarks across tenants: per metric (overall and per line
//! of business), the quartiles of agency-level values over every tenant's
//! agencies, published only where at least [`MIN_TENANTS`] tenants
//! contribute, so that no tenant's own figures can be read back.
//!
//! This is the one place that reads more than one tenant; it returns only
//! aggregates, never a row or an identifier.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

use super::metrics::{self, DateRange, Dimension, Filters, Metric, MetricValue, MetricsError};
use super::single_flight::SingleFlight;
use super::view::{SessionLimits, TenantView};
use crate::lake::{Location, Manifest};

/// Fewest tenants whose agencies must contribute before a figure is shown.
pub const MIN_TENANTS: usize = 5;

/// Quartiles of one metric (for one line, or all lines).
#[derive(Debug, Clone, PartialEq)]
pub struct IndustryStat {
    pub metric: Metric,
    /// `None`: all lines together.
    pub line_of_business: Option<String>,
    pub contributing_tenants: usize,
    /// `None` when fewer than [`MIN_TENANTS`] tenants contribute.
    pub quartiles: Option<[MetricValue; 3]>,
}

/// Date ranges whose figures are kept per snapshot; older ones are computed
/// again if asked for.
const CACHED_RANGES: usize = 64;

/// Industry figures of one snapshot, computed once per range: the first
/// caller of a range computes it, concurrent callers of that range wait for
/// its result, other ranges are not held up.
pub struct Industry {
    lake: Location,
    manifest: Arc<Manifest>,
    limits: SessionLimits,
    cache: SingleFlight<(NaiveDate, NaiveDate), Arc<Vec<IndustryStat>>>,
}

impl Industry {
    pub fn new(lake: Location, manifest: Arc<Manifest>, limits: SessionLimits) -> Self {
        Industry { lake, manifest, limits, cache: SingleFlight::new(CACHED_RANGES) }
    }

    pub async fn stats(&self, range: &DateRange) -> Result<Arc<Vec<IndustryStat>>, MetricsError> {
        self.cache.get_or_try_init((range.from, range.to), || async { Ok(Arc::new(self.compute(range).await?)) }).await
    }

    async fn compute(&self, range: &DateRange) -> Result<Vec<IndustryStat>, MetricsError> {
        // (metric, line) → tenant → that tenant's agency values.
        let mut values: BTreeMap<(Metric, Option<String>), BTreeMap<String, Vec<MetricValue>>> = BTreeMap::new();
        for tenant in self.manifest.tenants() {
            let view = TenantView::open(&self.lake, &self.manifest, &tenant, self.limits).await?;
            let none = Filters::default();
            let all = metrics::compute(&view.session, &Metric::ALL, range, &[Dimension::Agency], &none).await?;
            let by_line = metrics::compute(
                &view.session,
                &Metric::ALL,
                range,
                &[Dimension::Agency, Dimension::LineOfBusiness],
                &none,
            )
            .await?;
            for row in all {
                for (m, v) in Metric::ALL.iter().zip(row.values) {
                    values.entry((*m, None)).or_default().entry(tenant.clone()).or_default().push(v);
                }
            }
            for row in by_line {
                let line = row.group[1].clone();
                for (m, v) in Metric::ALL.iter().zip(row.values) {
                    values.entry((*m, Some(line.clone()))).or_default().entry(tenant.clone()).or_default().push(v);
                }
            }
        }
        Ok(values
            .into_iter()
            .map(|((metric, line), by_tenant)| {
                let defined: Vec<MetricValue> =
                    by_tenant.values().flatten().copied().filter(|v| !matches!(v, MetricValue::Rate(None))).collect();
                let tenants: BTreeSet<&String> = by_tenant
                    .iter()
                    .filter(|(_, vs)| vs.iter().any(|v| !matches!(v, MetricValue::Rate(None))))
                    .map(|(t, _)| t)
                    .collect();
                let shown = tenants.len() >= MIN_TENANTS;
                IndustryStat {
                    metric,
                    line_of_business: line,
                    contributing_tenants: tenants.len(),
                    quartiles: shown.then(|| quartiles(&defined)).flatten(),
                }
            })
            .collect())
    }
}

/// 25th, 50th and 75th percentiles by linear interpolation between closest
/// ranks (money exact in decimals, rounded to the cent; counts as whole
/// numbers rounded half-even; rates as floats). `None` for no values.
pub fn quartiles(values: &[MetricValue]) -> Option<[MetricValue; 3]> {
    let first = values.first()?;
    let at = |p: Decimal| -> MetricValue {
        match first {
            MetricValue::Rate(_) => {
                let mut xs: Vec<f64> =
                    values.iter().filter_map(|v| if let MetricValue::Rate(r) = v { *r } else { None }).collect();
                xs.sort_by(f64::total_cmp);
                let pos = p.to_string().parse::<f64>().unwrap_or(0.0) * (xs.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                MetricValue::Rate(Some(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)))
            }
            _ => {
                let mut xs: Vec<Decimal> = values
                    .iter()
                    .map(|v| match v {
                        MetricValue::Money(d) => *d,
                        MetricValue::Count(c) => Decimal::from(*c),
                        MetricValue::Rate(_) => Decimal::ZERO,
                    })
                    .collect();
                xs.sort();
                let pos = p * Decimal::from(xs.len() - 1);
                let lo = pos.floor();
                let (l, h) = (usize::try_from(lo).unwrap_or(0), usize::try_from(pos.ceil()).unwrap_or(0));
                let x = xs[l] + (xs[h] - xs[l]) * (pos - lo);
                match first {
                    MetricValue::Count(_) => MetricValue::Count(i64::try_from(x.round()).unwrap_or_default()),
                    _ => MetricValue::Money(x.round_dp(2)),
                }
            }
        }
    };
    let q = |n: f64| Decimal::from_f64(n).expect("constant");
    Some([at(q(0.25)), at(q(0.5)), at(q(0.75))])
}

/// Percentile rank of `value` among `peers` (which include the subject):
/// (peers below + half the peers equal) / peers × 100. `None` with fewer
/// than two peers or an undefined value.
pub fn percentile_rank(value: &MetricValue, peers: &[MetricValue]) -> Option<f64> {
    let key = |v: &MetricValue| -> Option<f64> {
        match v {
            MetricValue::Money(d) => d.to_string().parse().ok(),
            MetricValue::Count(c) => Some(*c as f64),
            MetricValue::Rate(r) => *r,
        }
    };
    let x = key(value)?;
    let ks: Vec<f64> = peers.iter().filter_map(key).collect();
    if ks.len() < 2 {
        return None;
    }
    let below = ks.iter().filter(|k| **k < x).count() as f64;
    let equal = ks.iter().filter(|k| **k == x).count() as f64;
    Some((below + 0.5 * equal) / ks.len() as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(xs: &[i64]) -> Vec<MetricValue> {
        xs.iter().map(|c| MetricValue::Money(Decimal::new(*c, 2))).collect()
    }

    #[test]
    fn quartiles_interpolate_exactly_for_money() {
        // 10.00 20.00 30.00 40.00 → positions 0.75, 1.5, 2.25
        let q = quartiles(&money(&[4000, 1000, 3000, 2000])).unwrap();
        assert_eq!(
            q,
            [
                MetricValue::Money(Decimal::new(1750, 2)),
                MetricValue::Money(Decimal::new(2500, 2)),
                MetricValue::Money(Decimal::new(3250, 2)),
            ]
        );
        let q = quartiles(&[MetricValue::Count(1), MetricValue::Count(2), MetricValue::Count(10)]).unwrap();
        // positions 0.5 → 1.5 → 2 (half-even), 1 → 2, 1.5 → 6
        assert_eq!(q, [MetricValue::Count(2), MetricValue::Count(2), MetricValue::Count(6)]);
        let q = quartiles(&[MetricValue::Rate(Some(0.8)), MetricValue::Rate(Some(0.9))]).unwrap();
        let MetricValue::Rate(Some(median)) = q[1] else { panic!("a rate") };
        assert!((median - 0.85).abs() < 1e-12, "{median}");
        assert_eq!(quartiles(&[]), None);
    }

    #[test]
    fn percentile_ranks_use_the_midpoint_for_ties() {
        let peers = money(&[100, 200, 200, 400]);
        assert_eq!(percentile_rank(&MetricValue::Money(Decimal::new(400, 2)), &peers), Some(87.5));
        assert_eq!(percentile_rank(&MetricValue::Money(Decimal::new(200, 2)), &peers), Some(50.0));
        assert_eq!(percentile_rank(&MetricValue::Money(Decimal::new(100, 2)), &peers), Some(12.5));
        assert_eq!(percentile_rank(&MetricValue::Rate(None), &peers), None);
        assert_eq!(percentile_rank(&MetricValue::Count(1), &[MetricValue::Count(1)]), None);
    }
}
