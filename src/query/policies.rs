//! Policy-level reads: the rows behind the aggregates.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type};
use chrono::NaiveDate;
use datafusion::error::Result;
use datafusion::prelude::{SessionContext, col, lit};
use rust_decimal::Decimal;

use crate::contract::values::{date_to_days, days_to_date};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub id: String,
    pub policy_number: String,
    pub agency_id: String,
    pub agent_id: String,
    pub carrier_id: String,
    pub customer_id: String,
    pub line_of_business: String,
    pub effective_date: NaiveDate,
    pub expiration_date: NaiveDate,
    pub premium: Decimal,
    pub status: String,
    pub cancellation_date: Option<NaiveDate>,
    pub renewal_of: Option<String>,
}

pub(crate) const COLUMNS: [&str; 13] = [
    "policy_id",
    "policy_number",
    "agency_id",
    "agent_id",
    "carrier_id",
    "customer_id",
    "line_of_business",
    "effective_date",
    "expiration_date",
    "premium",
    "status",
    "cancellation_date",
    "renewal_of",
];

fn date_lit(d: NaiveDate) -> datafusion::prelude::Expr {
    lit(datafusion::scalar::ScalarValue::Date32(Some(date_to_days(d))))
}

/// The agency's policies written in `[from, to)`, largest premium first
/// (ties by policy id), at most `limit`.
pub async fn top_by_premium(
    ctx: &SessionContext,
    agency_id: &str,
    from: NaiveDate,
    to: NaiveDate,
    limit: usize,
) -> Result<Vec<PolicyInfo>> {
    let df = ctx
        .table("policies")
        .await?
        .filter(
            col("agency_id")
                .eq(lit(agency_id))
                .and(col("effective_date").gt_eq(date_lit(from)))
                .and(col("effective_date").lt(date_lit(to))),
        )?
        .select_columns(&COLUMNS)?
        .sort(vec![col("premium").sort(false, true), col("policy_id").sort(true, true)])?
        .limit(0, Some(limit))?;
    Ok(rows(&df.collect().await?))
}

pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<PolicyInfo> {
    let mut out = Vec::new();
    for b in batches {
        let s = |i: usize| b.column(i).as_string::<i32>().clone();
        let (id, number, agency, agent, carrier, customer, line, status, renewal) =
            (s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(10), s(12));
        let eff = b.column(7).as_primitive::<Date32Type>();
        let exp = b.column(8).as_primitive::<Date32Type>();
        let premium = b.column(9).as_primitive::<Decimal128Type>();
        let cancel = b.column(11).as_primitive::<Date32Type>();
        for r in 0..b.num_rows() {
            out.push(PolicyInfo {
                id: id.value(r).to_string(),
                policy_number: number.value(r).to_string(),
                agency_id: agency.value(r).to_string(),
                agent_id: agent.value(r).to_string(),
                carrier_id: carrier.value(r).to_string(),
                customer_id: customer.value(r).to_string(),
                line_of_business: line.value(r).to_string(),
                effective_date: days_to_date(eff.value(r)),
                expiration_date: days_to_date(exp.value(r)),
                premium: Decimal::from_i128_with_scale(premium.value(r), 2),
                status: status.value(r).to_string(),
                cancellation_date: (!cancel.is_null(r)).then(|| days_to_date(cancel.value(r))),
                renewal_of: (!renewal.is_null(r)).then(|| renewal.value(r).to_string()),
            });
        }
    }
    out
}
