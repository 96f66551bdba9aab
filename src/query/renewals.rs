//! Reads of the models' outputs for the API and the feeds: the renewal
//! scores joined to their policies (most at risk first, keyset-paginated),
//! and a series' forecast and backtest accuracy. All through a tenant's
//! session, so scoped like every other read.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type};
use chrono::NaiveDate;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::policies::{self, PolicyInfo};
use crate::contract::values::{date_to_days, days_to_date};
use crate::lake::catalog::{FORECAST_ACCURACY, FORECASTS, RENEWAL_SCORES};
use crate::models::forecast::{AccuracyRow, SeriesScope};

/// Which scored renewals to list.
#[derive(Debug, Clone, Default)]
pub struct RenewalFilter {
    /// Expiration in `[from, to)`.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub agency_id: Option<String>,
    pub agent_id: Option<String>,
    pub max_probability: Option<f64>,
}

/// A position in the (probability, policy id) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub probability: f64,
    pub policy_id: String,
}

impl Cursor {
    /// Opaque to clients: the probability's exact bits and the id, in hex.
    pub fn encode(&self) -> String {
        let hex: String = self.policy_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{:016x}{hex}", self.probability.to_bits())
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() < 16 || !s.len().is_multiple_of(2) || !s.is_ascii() {
            return None;
        }
        let probability = f64::from_bits(u64::from_str_radix(&s[..16], 16).ok()?);
        let bytes: Option<Vec<u8>> =
            (16..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
        let policy_id = String::from_utf8(bytes?).ok()?;
        probability.is_finite().then_some(Cursor { probability, policy_id })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DriverRow {
    pub feature: String,
    pub description: String,
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenewalRow {
    pub policy: PolicyInfo,
    pub probability: f64,
    pub drivers: Vec<DriverRow>,
    pub tenure_terms: i64,
    pub premium_change: f64,
    pub other_policies: i64,
    pub as_of: NaiveDate,
    pub model_version: String,
    /// Gross commission of the term's new/renewal rows: what renewing it
    /// would earn again.
    pub commission_at_stake: Decimal,
}

fn date_lit(d: NaiveDate) -> Expr {
    lit(datafusion::scalar::ScalarValue::Date32(Some(date_to_days(d))))
}

/// Scores joined to their policies, filtered; columns: the policy's
/// (`policies::COLUMNS` order) then the score's.
async fn scored(ctx: &SessionContext, f: &RenewalFilter) -> Result<DataFrame> {
    let mut pol = ctx.table("policies").await?.select_columns(&policies::COLUMNS)?;
    if let Some(from) = f.from {
        pol = pol.filter(col("expiration_date").gt_eq(date_lit(from)))?;
    }
    if let Some(to) = f.to {
        pol = pol.filter(col("expiration_date").lt(date_lit(to)))?;
    }
    if let Some(a) = &f.agency_id {
        pol = pol.filter(col("agency_id").eq(lit(a.as_str())))?;
    }
    if let Some(a) = &f.agent_id {
        pol = pol.filter(col("agent_id").eq(lit(a.as_str())))?;
    }
    let mut scores = ctx.table(RENEWAL_SCORES).await?.select(vec![
        col("policy_id").alias("scored_policy"),
        col("probability"),
        col("drivers"),
        col("tenure_terms"),
        col("premium_change"),
        col("other_policies"),
        col("as_of"),
        col("model_version"),
    ])?;
    if let Some(p) = f.max_probability {
        scores = scores.filter(col("probability").lt_eq(lit(p)))?;
    }
    pol.join(scores, datafusion::common::JoinType::Inner, &["policy_id"], &["scored_policy"], None)
}

/// How many scored renewals `f` admits.
pub async fn count_renewals(ctx: &SessionContext, f: &RenewalFilter) -> Result<i64> {
    let batches = scored(ctx, f).await?.aggregate(vec![], vec![count(lit(1)).alias("n")])?.collect().await?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0))
}

/// Up to `limit` scored renewals after `after`, lowest probability first
/// (ties by policy id).
pub async fn renewals(
    ctx: &SessionContext,
    f: &RenewalFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<RenewalRow>> {
    let mut df = scored(ctx, f).await?;
    if let Some(c) = after {
        df = df.filter(
            col("probability")
                .gt(lit(c.probability))
                .or(col("probability").eq(lit(c.probability)).and(col("policy_id").gt(lit(c.policy_id.as_str())))),
        )?;
    }
    let df = df
        .sort(vec![col("probability").sort(true, false), col("policy_id").sort(true, false)])?
        .limit(0, Some(limit))?;
    let batches = df.collect().await?;
    let mut rows = Vec::new();
    let infos = policies::rows(&batches);
    let mut i = 0;
    for b in &batches {
        let n = policies::COLUMNS.len() + 1; // + the join key
        let prob = b.column(n).as_primitive::<Float64Type>();
        let drivers = b.column(n + 1).as_string::<i32>();
        let tenure = b.column(n + 2).as_primitive::<Int64Type>();
        let change = b.column(n + 3).as_primitive::<Float64Type>();
        let others = b.column(n + 4).as_primitive::<Int64Type>();
        let as_of = b.column(n + 5).as_primitive::<Date32Type>();
        let version = b.column(n + 6).as_string::<i32>();
        for r in 0..b.num_rows() {
            rows.push(RenewalRow {
                policy: infos[i].clone(),
                probability: prob.value(r),
                drivers: serde_json::from_str(drivers.value(r)).unwrap_or_default(),
                tenure_terms: tenure.value(r),
                premium_change: change.value(r),
                other_policies: others.value(r),
                as_of: days_to_date(as_of.value(r)),
                model_version: version.value(r).to_string(),
                commission_at_stake: Decimal::ZERO,
            });
            i += 1;
        }
    }
    let at_stake = commission_at_stake(ctx, rows.iter().map(|r| r.policy.id.as_str()).collect()).await?;
    for r in &mut rows {
        r.commission_at_stake = at_stake.get(&r.policy.id).copied().unwrap_or(Decimal::ZERO);
    }
    Ok(rows)
}

/// Gross commission of each policy's `new`/`renewal` rows.
async fn commission_at_stake(
    ctx: &SessionContext,
    ids: Vec<&str>,
) -> Result<std::collections::HashMap<String, Decimal>> {
    let mut out = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let df = ctx
        .table("commissions")
        .await?
        .filter(
            col("policy_id")
                .in_list(ids.iter().map(|id| lit(*id)).collect(), false)
                .and(col("kind").in_list(vec![lit("new"), lit("renewal")], false)),
        )?
        .aggregate(vec![col("policy_id")], vec![sum(col("gross_commission")).alias("gross")])?;
    for b in df.collect().await? {
        let id = b.column(0).as_string::<i32>();
        let gross = b.column(1).as_primitive::<Decimal128Type>();
        let scale = match b.schema().field(1).data_type() {
            arrow::datatypes::DataType::Decimal128(_, s) => *s as u32,
            _ => 2,
        };
        for r in 0..b.num_rows() {
            if !gross.is_null(r) {
                out.insert(id.value(r).to_string(), Decimal::from_i128_with_scale(gross.value(r), scale));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForecastPointRow {
    pub month: NaiveDate,
    pub horizon: i32,
    pub point: Decimal,
    pub lower80: Decimal,
    pub upper80: Decimal,
    pub lower95: Decimal,
    pub upper95: Decimal,
    pub model_version: String,
}

/// The forecast of one series (`series_id` empty for the tenant's total),
/// the first `horizon` months.
pub async fn forecast(
    ctx: &SessionContext,
    scope: SeriesScope,
    series_id: &str,
    horizon: u32,
) -> Result<Vec<ForecastPointRow>> {
    let df = ctx
        .table(FORECASTS)
        .await?
        .filter(
            col("scope")
                .eq(lit(scope.as_str()))
                .and(col("series_id").eq(lit(series_id)))
                .and(col("horizon").lt_eq(lit(horizon as i32))),
        )?
        .select_columns(&["month", "horizon", "point", "lower80", "upper80", "lower95", "upper95", "model_version"])?
        .sort(vec![col("horizon").sort(true, false)])?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let month = b.column(0).as_primitive::<Date32Type>();
        let h = b.column(1).as_primitive::<Int32Type>();
        let m = |i: usize, r: usize| {
            Decimal::from_i128_with_scale(b.column(i).as_primitive::<Decimal128Type>().value(r), 2)
        };
        let version = b.column(7).as_string::<i32>();
        for r in 0..b.num_rows() {
            out.push(ForecastPointRow {
                month: days_to_date(month.value(r)),
                horizon: h.value(r),
                point: m(2, r),
                lower80: m(3, r),
                upper80: m(4, r),
                lower95: m(5, r),
                upper95: m(6, r),
                model_version: version.value(r).to_string(),
            });
        }
    }
    Ok(out)
}

/// The backtest accuracy of one series, by horizon bucket (the rows
/// `cip score` wrote, read back).
pub async fn accuracy(ctx: &SessionContext, scope: SeriesScope, series_id: &str) -> Result<Vec<AccuracyRow>> {
    let df = ctx
        .table(FORECAST_ACCURACY)
        .await?
        .filter(col("scope").eq(lit(scope.as_str())).and(col("series_id").eq(lit(series_id))))?
        .select_columns(&[
            "tenant_id",
            "bucket",
            "mase",
            "wape",
            "coverage80",
            "coverage95",
            "seasonal_naive_mase",
            "damped_trend_mase",
        ])?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let tenant = b.column(0).as_string::<i32>();
        let bucket = b.column(1).as_string::<i32>();
        let f = |i: usize, r: usize| {
            let a = b.column(i).as_primitive::<Float64Type>();
            (!a.is_null(r)).then(|| a.value(r))
        };
        for r in 0..b.num_rows() {
            out.push(AccuracyRow {
                tenant_id: tenant.value(r).to_string(),
                scope,
                series_id: series_id.to_string(),
                bucket: bucket.value(r).to_string(),
                mase: f(2, r),
                wape: f(3, r),
                coverage80: f(4, r),
                coverage95: f(5, r),
                seasonal_naive_mase: f(6, r),
                damped_trend_mase: f(7, r),
            });
        }
    }
    // "1-3", "4-6", "7-12" in horizon order.
    out.sort_by_key(|a| a.bucket.split('-').next().and_then(|s| s.parse::<u32>().ok()).unwrap_or(u32::MAX));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_exactly_and_reject_garbage() {
        let c = Cursor { probability: 0.123_456_789_012_345_6, policy_id: "P-ü/42".into() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("xyz"), None);
        assert_eq!(Cursor::decode("zzzzzzzzzzzzzzzz"), None);
        assert_eq!(Cursor::decode(&format!("{:016x}", f64::NAN.to_bits())), None);
    }
}
