//! A month of a tenant's commissions in the shape of the monthly summary
//! (`GET /export/commissions`), for any month of any tenant, imported from
//! a summary or not:
//!
//! - a person is everyone with a commission row whose `transaction_date`
//!   is in the month, a manager when their agent row says `manager`
//!   (agents unknown to the directory are agents, named by their id);
//! - `gp` and `deals`: the sum of `premium_amount` and the number of their
//!   deal rows (`new` and `renewal`, as in the contract's average
//!   commission rate); `commission`: the sum of their `agent_commission`
//!   over all rows (for a manager of a summary: the override);
//! - `type`: `terminated` when the agent's status is `terminated` with no
//!   termination date or one on or before the month's last day;
//! - metadata recomputed: total gp and deals, and `commission_pct` = gross
//!   commission of the deal rows over their premium.
//!
//! People are sorted by name (then id). Rows a corrected summary withdrew
//! (0.00, agent [`WITHDRAWN_AGENT`]) are left out.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int64Type};
use chrono::NaiveDate;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{Expr, SessionContext, cast, col, lit, when};
use datafusion::scalar::ScalarValue;
use rust_decimal::Decimal;

use super::metrics::is_new_or_renewal;
use crate::contract::summary::{Metadata, Month, Person, Standing, Summary};
use crate::contract::values::{date_to_days, days_to_date};
use crate::pipelines::summary::WITHDRAWN_AGENT;

fn date_lit(d: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(date_to_days(d))))
}

/// Money sums widened to 38 digits, still 2 fraction digits.
fn money_sum(e: Expr) -> Expr {
    cast(sum(e), DataType::Decimal128(38, 2))
}

/// One person's figures of the month, before names are attached.
struct Figures {
    agent_id: String,
    gp: Decimal,
    deals: u64,
    commission: Decimal,
    deal_gross: Decimal,
}

pub async fn month_summary(session: &SessionContext, month: Month) -> Result<Summary> {
    let in_month = col("transaction_date")
        .gt_eq(date_lit(month.first_day()))
        .and(col("transaction_date").lt(date_lit(month.next_first_day())));
    let deal = is_new_or_renewal();
    let batches = session
        .table("commissions")
        .await?
        // Rows a corrected summary withdrew are 0.00 and nobody's.
        .filter(in_month.and(col("agent_id").not_eq(lit(WITHDRAWN_AGENT))))?
        .aggregate(
            vec![col("agent_id")],
            vec![
                money_sum(when(deal.clone(), col("premium_amount")).end()?).alias("gp"),
                count(when(deal.clone(), lit(1i64)).end()?).alias("deals"),
                money_sum(col("agent_commission")).alias("commission"),
                money_sum(when(deal, col("gross_commission")).end()?).alias("deal_gross"),
            ],
        )?
        .collect()
        .await?;
    let mut figures = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_string::<i32>();
        let money = |i: usize, r: usize| {
            let a = b.column(i).as_primitive::<Decimal128Type>();
            Decimal::from_i128_with_scale(if a.is_null(r) { 0 } else { a.value(r) }, 2)
        };
        let deals = b.column(2).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            figures.push(Figures {
                agent_id: ids.value(r).to_string(),
                gp: money(1, r),
                deals: deals.value(r) as u64,
                commission: money(3, r),
                deal_gross: money(4, r),
            });
        }
    }
    let batches = session
        .table("agents")
        .await?
        .select_columns(&["agent_id", "name", "role", "status", "termination_date"])?
        .collect()
        .await?;
    // agent id → (name, is a manager, standing in the month)
    let mut directory: HashMap<String, (String, bool, Standing)> = HashMap::new();
    for b in &batches {
        let s = |i: usize| b.column(i).as_string::<i32>();
        let (id, name, role, status) = (s(0), s(1), s(2), s(3));
        let ended = b.column(4).as_primitive::<Date32Type>();
        for r in 0..b.num_rows() {
            let terminated = !status.is_null(r)
                && status.value(r) == "terminated"
                && (ended.is_null(r) || days_to_date(ended.value(r)) <= month.last_day());
            let standing = if terminated { Standing::Terminated } else { Standing::Active };
            directory
                .insert(id.value(r).to_string(), (name.value(r).to_string(), role.value(r) == "manager", standing));
        }
    }
    let metadata = Metadata::of(
        figures.iter().map(|f| f.gp).sum(),
        figures.iter().map(|f| f.deals).sum(),
        figures.iter().map(|f| f.deal_gross).sum(),
    );
    let mut people: Vec<(bool, String, String, Person)> = figures
        .into_iter()
        .map(|f| {
            let (name, manager, standing) =
                directory.get(&f.agent_id).cloned().unwrap_or_else(|| (f.agent_id.clone(), false, Standing::Active));
            let person = Person { name: name.clone(), standing, gp: f.gp, deals: f.deals, commission: f.commission };
            (manager, name, f.agent_id, person)
        })
        .collect();
    people.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
    let (managers, agents): (Vec<_>, Vec<_>) = people.into_iter().partition(|p| p.0);
    Ok(Summary {
        month,
        metadata,
        agents: agents.into_iter().map(|p| p.3).collect(),
        managers: managers.into_iter().map(|p| p.3).collect(),
    })
}
