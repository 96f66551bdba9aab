//! A monthly summary ([`crate::contract::summary`]) as contract rows, sent
//! as streaming events through the same door as `POST /ingest/events`.
//!
//! - **Who**: one agent row per person, `agent_id` = `summary:<slug of the
//!   name>` (the same person every month), in the agency [`AGENCY_ID`];
//!   agents are `producer`s, managers `manager`s; `type: terminated`
//!   sets `status` and a `termination_date` (the month's last day, or an
//!   earlier one already stored).
//! - **Deals**: a person's `deals` are that many `new` commission rows and
//!   as many synthetic policies (ids `summary:<month>:<slug>:<n>`, carrier
//!   [`CARRIER_ID`], effective on the 1st, a 12-month term), `gp` and (for
//!   agents) `commission` split evenly in cents with the remainder on the
//!   first rows ([`split`]), so every sum is exact and the metrics see the
//!   month's written premium, policy count and commission per agency.
//! - **Without deals**: an agent's commission is one `adjustment` row
//!   (`…:adjustment`, also for 0.00, so the agent appears in the month); a
//!   manager's commission is one `override` row (`…:override`: premium and
//!   gross 0, agent commission the override, agency commission its
//!   negative, per the contract). Neither has a policy.
//! - **Corrections**: a row of an earlier import of the month that the new
//!   summary no longer has is *withdrawn* (the lake has no deletes): it
//!   passes to the agent [`WITHDRAWN_AGENT`], a commission row as a 0.00
//!   `adjustment`, a policy as a flat cancellation with premium 0.00, so
//!   it counts for nobody's money and for no person's figures.
//!
//! Events carry the import's time as `occurred_at` (a later import wins
//! every key) and ids hashed from their content and that time: a re-sent
//! summary upserts identical rows, which change nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Date32Type;
use chrono::{DateTime, Months, NaiveDate, SecondsFormat, Utc};
use datafusion::functions::expr_fn::starts_with;
use datafusion::prelude::{SessionContext, col, lit};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::{Value, json};

use crate::contract::summary::{Month, Person, Standing, Summary, commission_pct, slug};
use crate::contract::values::days_to_date;
use crate::contract::{RATE_PRECISION, RATE_SCALE};

/// Every id a summary import writes starts so, apart from row data's ids.
pub const ID_PREFIX: &str = "summary:";
/// The agency of summary agents and policies (one per tenant).
pub const AGENCY_ID: &str = "summary";
pub const AGENCY_NAME: &str = "Monthly summaries";
/// The carrier of synthetic policies: a summary does not name carriers.
pub const CARRIER_ID: &str = "summary";
pub const CARRIER_NAME: &str = "Carrier not stated (monthly summary)";
pub const LINE_OF_BUSINESS: &str = "unspecified";
pub const SOURCE_SYSTEM: &str = "monthly_summary";
/// Who withdrawn rows belong to: no agent row has this id (a slug has no
/// parentheses), and the export leaves it out.
pub const WITHDRAWN_AGENT: &str = "summary:(withdrawn)";
/// The term of a synthetic policy.
const TERM_MONTHS: u32 = 12;

pub fn agent_id(name: &str) -> String {
    format!("{ID_PREFIX}{}", slug(name))
}

/// The prefix of every policy and commission id of `month`.
pub fn month_prefix(month: Month) -> String {
    format!("{ID_PREFIX}{month}:")
}

/// `total` in `n` parts of whole cents that add up to it exactly: each
/// part is the total over `n` cut to the cent, and the cents left over go
/// one each to the first parts (1000.00 over 3: 333.34, 333.33, 333.33).
pub fn split(total: Decimal, n: u64) -> Vec<Decimal> {
    assert!(n > 0, "split into no parts");
    let cents = (total * Decimal::ONE_HUNDRED).trunc().to_i128().expect("money fits in i128 cents");
    let n = n as i128;
    let (base, left) = (cents / n, cents % n); // the remainder has the total's sign
    (0..n)
        .map(|i| {
            let extra = if i < left.abs() { left.signum() } else { 0 };
            Decimal::from_i128_with_scale(base + extra, 2)
        })
        .collect()
}

/// What the lake already holds of the tenant's summaries, read before an
/// import (see [`stored`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Live (not withdrawn) commission rows of the month: id → policy_id.
    pub commissions: BTreeMap<String, String>,
    /// Live synthetic policies of the month.
    pub policies: BTreeSet<String>,
    /// Summary agents: id → (status, termination_date).
    pub agents: HashMap<String, (Option<String>, Option<NaiveDate>)>,
}

/// Rows an import writes, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    pub agents: usize,
    pub policies: usize,
    pub commissions: usize,
    pub withdrawn_policies: usize,
    pub withdrawn_commissions: usize,
}

/// The events of one import, one JSON object per line, and what they write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub events: Vec<String>,
    pub rows: RowCounts,
}

/// A person's `status` and `termination_date` after a summary of `month`
/// says `standing`, given what is stored. A termination keeps an earlier
/// date already stored (the person was terminated then, not now); an
/// `active` in a month before a stored termination leaves it standing
/// (months may be imported out of order); otherwise `active` clears it.
pub fn standing_after(
    stored: Option<&(Option<String>, Option<NaiveDate>)>,
    month: Month,
    standing: Standing,
) -> (&'static str, Option<NaiveDate>) {
    let stored_termination = match stored {
        Some((Some(status), date)) if status == "terminated" => Some(*date),
        _ => None,
    };
    match (standing, stored_termination) {
        (Standing::Terminated, Some(Some(d))) if d <= month.last_day() => ("terminated", Some(d)),
        (Standing::Terminated, _) => ("terminated", Some(month.last_day())),
        (Standing::Active, Some(Some(d))) if d > month.last_day() => ("terminated", Some(d)),
        (Standing::Active, _) => ("active", None),
    }
}

/// The rate written on a person's commission rows: their commission over
/// their gp, 6 fraction digits; 0 when there is no gp or the ratio does not
/// fit the contract's rate column (metrics compute rates from the sums).
fn row_rate(commission: Decimal, gp: Decimal) -> Decimal {
    let limit = Decimal::from(10i64.pow((RATE_PRECISION as i8 - RATE_SCALE) as u32));
    commission_pct(commission, gp).filter(|r| r.abs() < limit).unwrap_or(Decimal::ZERO)
}

struct Events {
    at: String,
    lines: Vec<String>,
}

impl Events {
    fn push(&mut self, kind: &str, data: Value) {
        let data = data.to_string();
        let id = xxhash_rust::xxh3::xxh3_128(format!("{kind}\n{data}\n{}", self.at).as_bytes());
        let data: Value = serde_json::from_str(&data).expect("serialised JSON reads back");
        let event =
            json!({ "event_id": format!("summary-{id:032x}"), "type": kind, "occurred_at": self.at, "data": data });
        self.lines.push(event.to_string());
    }
}

/// The events that land `summary` over what is `stored`, as of `at`.
pub fn plan(summary: &Summary, stored: &Stored, at: DateTime<Utc>) -> Plan {
    let month = summary.month;
    let first = month.first_day();
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let expires = day(first + Months::new(TERM_MONTHS));
    let mut ev = Events { at: at.to_rfc3339_opts(SecondsFormat::Millis, true), lines: Vec::new() };
    let mut rows = RowCounts::default();
    ev.push("agency.upserted", json!({ "agency_id": AGENCY_ID, "name": AGENCY_NAME }));
    ev.push("carrier.upserted", json!({ "carrier_id": CARRIER_ID, "name": CARRIER_NAME }));
    let policy = |id: &str, agent: &str, premium: Decimal| {
        json!({ "policy_id": id, "policy_number": id, "agency_id": AGENCY_ID, "agent_id": agent,
                "carrier_id": CARRIER_ID, "customer_id": id, "line_of_business": LINE_OF_BUSINESS,
                "effective_date": day(first), "expiration_date": expires, "premium": premium.to_string(),
                "status": "active", "source_system": SOURCE_SYSTEM })
    };
    let commission =
        |id: &str, policy: &str, agent: &str, kind: &str, premium: Decimal, rate: Decimal, amounts: [Decimal; 3]| {
            let [gross, to_agent, to_agency] = amounts;
            json!({ "commission_id": id, "policy_id": policy, "agent_id": agent, "carrier_id": CARRIER_ID,
                "transaction_date": day(first), "kind": kind, "premium_amount": premium.to_string(),
                "commission_rate": rate.to_string(), "gross_commission": gross.to_string(),
                "agent_commission": to_agent.to_string(), "agency_commission": to_agency.to_string() })
        };
    let zero = Decimal::ZERO;
    let prefix = month_prefix(month);
    let mut live: BTreeSet<String> = BTreeSet::new();
    let people = summary.agents.iter().map(|p| (p, "producer")).chain(summary.managers.iter().map(|p| (p, "manager")));
    for (p, role) in people {
        let Person { name, standing, gp, deals, commission: earned } = p;
        let agent = agent_id(name);
        let (status, terminated) = standing_after(stored.agents.get(&agent), month, *standing);
        let mut row =
            json!({ "agent_id": agent, "agency_id": AGENCY_ID, "name": name, "role": role, "status": status });
        if let Some(d) = terminated {
            row["termination_date"] = json!(day(d));
        }
        ev.push("agent.upserted", row);
        rows.agents += 1;
        let producer = role == "producer";
        let key = format!("{prefix}{}", slug(name));
        if *deals > 0 {
            // A manager's own deals carry premium; the override is not commission on them.
            let premiums = split(*gp, *deals);
            let earned_parts = if producer { split(*earned, *deals) } else { vec![zero; *deals as usize] };
            let rate = if producer { row_rate(*earned, *gp) } else { zero };
            for (i, (premium, c)) in premiums.into_iter().zip(earned_parts).enumerate() {
                let id = format!("{key}:{}", i + 1);
                ev.push("policy.upserted", policy(&id, &agent, premium));
                ev.push("commission.upserted", commission(&id, &id, &agent, "new", premium, rate, [c, c, zero]));
                rows.policies += 1;
                rows.commissions += 1;
                live.insert(id);
            }
        }
        if producer && *deals == 0 {
            let id = format!("{key}:adjustment");
            ev.push(
                "commission.upserted",
                commission(&id, &id, &agent, "adjustment", zero, zero, [*earned, *earned, zero]),
            );
            rows.commissions += 1;
            live.insert(id);
        }
        if !producer {
            let id = format!("{key}:override");
            ev.push(
                "commission.upserted",
                commission(&id, &id, &agent, "override", zero, zero, [zero, *earned, -*earned]),
            );
            rows.commissions += 1;
            live.insert(id);
        }
    }
    for (id, policy_id) in stored.commissions.iter().filter(|(id, _)| !live.contains(*id)) {
        ev.push("commission.upserted", commission(id, policy_id, WITHDRAWN_AGENT, "adjustment", zero, zero, [zero; 3]));
        rows.withdrawn_commissions += 1;
    }
    for id in stored.policies.iter().filter(|id| !live.contains(*id)) {
        let mut row = policy(id, WITHDRAWN_AGENT, zero);
        row["status"] = json!("cancelled");
        row["cancellation_date"] = json!(day(first));
        ev.push("policy.upserted", row);
        rows.withdrawn_policies += 1;
    }
    Plan { events: ev.lines, rows }
}

fn date_lit(d: NaiveDate) -> datafusion::prelude::Expr {
    lit(datafusion::scalar::ScalarValue::Date32(Some(crate::contract::values::date_to_days(d))))
}

/// What the tenant's session (one tenant's files, see
/// [`crate::query::view::TenantView`]) holds of its summaries of `month`:
/// live (not withdrawn) rows of the month and every summary agent's
/// standing.
pub async fn stored(session: &SessionContext, month: Month) -> datafusion::error::Result<Stored> {
    let prefix = month_prefix(month);
    let mut out = Stored::default();
    let in_month = col("transaction_date")
        .gt_eq(date_lit(month.first_day()))
        .and(col("transaction_date").lt(date_lit(month.next_first_day())));
    let live = |id: &str| starts_with(col(id), lit(prefix.as_str())).and(col("agent_id").not_eq(lit(WITHDRAWN_AGENT)));
    let batches = session
        .table("commissions")
        .await?
        .filter(live("commission_id").and(in_month))?
        .select_columns(&["commission_id", "policy_id"])?
        .collect()
        .await?;
    for b in &batches {
        let (id, policy) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
        for r in 0..b.num_rows() {
            out.commissions.insert(id.value(r).to_string(), policy.value(r).to_string());
        }
    }
    let batches =
        session.table("policies").await?.filter(live("policy_id"))?.select_columns(&["policy_id"])?.collect().await?;
    for b in &batches {
        let id = b.column(0).as_string::<i32>();
        out.policies.extend((0..b.num_rows()).map(|r| id.value(r).to_string()));
    }
    let batches = session
        .table("agents")
        .await?
        .filter(starts_with(col("agent_id"), lit(ID_PREFIX)))?
        .select_columns(&["agent_id", "status", "termination_date"])?
        .collect()
        .await?;
    for b in &batches {
        let (id, status) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
        let date = b.column(2).as_primitive::<Date32Type>();
        for r in 0..b.num_rows() {
            let status = (!status.is_null(r)).then(|| status.value(r).to_string());
            let date = (!date.is_null(r)).then(|| days_to_date(date.value(r)));
            out.agents.insert(id.value(r).to_string(), (status, date));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::events::EventChecker;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn cents_split_evenly_with_the_remainder_first() {
        let parts = |t: &str, n| split(d(t), n).iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(parts("1000.00", 3), ["333.34", "333.33", "333.33"]);
        assert_eq!(parts("100.00", 4), ["25.00", "25.00", "25.00", "25.00"]);
        // 0.05 over 3: 1 cent each, 2 cents left for the first two.
        assert_eq!(parts("0.05", 3), ["0.02", "0.02", "0.01"]);
        // Negative: the cents left are negative too; still adds up (-10.00).
        assert_eq!(parts("-10.00", 3), ["-3.34", "-3.33", "-3.33"]);
        assert_eq!(parts("0.00", 2), ["0.00", "0.00"]);
        assert_eq!(parts("7.5", 1), ["7.50"]);
    }

    #[test]
    fn standing_keeps_the_earliest_termination_and_later_ones() {
        let m = |s| Month::parse(s).unwrap();
        let date = |s: &str| crate::contract::values::parse_date(s).unwrap();
        let stored = |status: &str, d: Option<&str>| (Some(status.to_string()), d.map(date));
        // First termination: the month's last day.
        assert_eq!(standing_after(None, m("2026-03"), Standing::Terminated), ("terminated", Some(date("2026-03-31"))));
        // Still terminated a month later: the March date stands.
        let march = stored("terminated", Some("2026-03-31"));
        assert_eq!(
            standing_after(Some(&march), m("2026-04"), Standing::Terminated),
            ("terminated", Some(date("2026-03-31")))
        );
        // February imported after: active then, the March termination stands.
        assert_eq!(
            standing_after(Some(&march), m("2026-02"), Standing::Active),
            ("terminated", Some(date("2026-03-31")))
        );
        // Active again in May (rehired), or March corrected to active: active.
        assert_eq!(standing_after(Some(&march), m("2026-05"), Standing::Active), ("active", None));
        assert_eq!(standing_after(Some(&march), m("2026-03"), Standing::Active), ("active", None));
        // Terminated in batch data without a date: a summary dates it.
        let undated = stored("terminated", None);
        assert_eq!(
            standing_after(Some(&undated), m("2026-03"), Standing::Terminated),
            ("terminated", Some(date("2026-03-31")))
        );
    }

    fn summary() -> Summary {
        Summary::parse(
            r#"{"month": "2026-03", "metadata": {"total_gp": "1000.00", "total_transactions": 3, "commission_pct": "0.12"},
                "agents": [{"name": "Ann Lee", "gp": "1000.00", "deals": 3, "commission": "120.00"},
                           {"name": "Bob Diaz", "type": "terminated", "gp": "0", "deals": 0, "commission": "15.50"}],
                "managers": [{"name": "Meg Ito", "gp": "0", "deals": 0, "commission": "9.00"}]}"#,
            "t1",
        )
        .unwrap()
    }

    fn data(plan: &Plan) -> Vec<(String, Value)> {
        plan.events
            .iter()
            .map(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                (e["type"].as_str().unwrap().to_string(), e["data"].clone())
            })
            .collect()
    }

    #[test]
    fn a_summary_becomes_rows_whose_sums_are_exact() {
        let at = DateTime::parse_from_rfc3339("2026-04-02T08:00:00Z").unwrap().with_timezone(&Utc);
        let plan = plan(&summary(), &Stored::default(), at);
        assert_eq!(
            plan.rows,
            RowCounts { agents: 3, policies: 3, commissions: 5, withdrawn_policies: 0, withdrawn_commissions: 0 }
        );
        let rows = data(&plan);
        let kinds: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "agency.upserted",
                "carrier.upserted",
                "agent.upserted",
                "policy.upserted",
                "commission.upserted",
                "policy.upserted",
                "commission.upserted",
                "policy.upserted",
                "commission.upserted",
                "agent.upserted",
                "commission.upserted",
                "agent.upserted",
                "commission.upserted",
            ]
        );
        assert_eq!(
            rows[2].1,
            json!({"agent_id": "summary:ann-lee", "agency_id": "summary", "name": "Ann Lee", "role": "producer", "status": "active"})
        );
        // Ann: 1000.00 over 3 deals = 333.34, 333.33, 333.33; 120.00 = 40.00 each; rate 120/1000 = 0.12.
        assert_eq!(
            rows[3].1,
            json!({"policy_id": "summary:2026-03:ann-lee:1", "policy_number": "summary:2026-03:ann-lee:1",
                   "agency_id": "summary", "agent_id": "summary:ann-lee", "carrier_id": "summary",
                   "customer_id": "summary:2026-03:ann-lee:1", "line_of_business": "unspecified",
                   "effective_date": "2026-03-01", "expiration_date": "2027-03-01", "premium": "333.34",
                   "status": "active", "source_system": "monthly_summary"})
        );
        assert_eq!(
            rows[4].1,
            json!({"commission_id": "summary:2026-03:ann-lee:1", "policy_id": "summary:2026-03:ann-lee:1",
                   "agent_id": "summary:ann-lee", "carrier_id": "summary", "transaction_date": "2026-03-01",
                   "kind": "new", "premium_amount": "333.34", "commission_rate": "0.12",
                   "gross_commission": "40.00", "agent_commission": "40.00", "agency_commission": "0"})
        );
        assert_eq!(
            (rows[5].1["premium"].clone(), rows[8].1["premium_amount"].clone()),
            (json!("333.33"), json!("333.33"))
        );
        // Bob: terminated at the month's end; 15.50 with no deal, an adjustment without a policy.
        assert_eq!(rows[9].1["status"], "terminated");
        assert_eq!(rows[9].1["termination_date"], "2026-03-31");
        assert_eq!(
            (rows[10].1["kind"].clone(), rows[10].1["gross_commission"].clone(), rows[10].1["premium_amount"].clone()),
            (json!("adjustment"), json!("15.50"), json!("0"))
        );
        // Meg: the override out of the agency's share.
        assert_eq!(rows[11].1["role"], "manager");
        assert_eq!(
            (
                rows[12].1["kind"].clone(),
                rows[12].1["gross_commission"].clone(),
                rows[12].1["agent_commission"].clone(),
                rows[12].1["agency_commission"].clone()
            ),
            (json!("override"), json!("0"), json!("9.00"), json!("-9.00"))
        );
        // Every event passes the streaming door's own checks.
        let checker = EventChecker::default();
        for line in &plan.events {
            checker.check(line, "t1").unwrap_or_else(|e| panic!("{line}: {e:?}"));
        }
        // The same summary at the same time gives the same events; later, other ids.
        assert_eq!(super::plan(&summary(), &Stored::default(), at).events, plan.events);
        let later = super::plan(&summary(), &Stored::default(), at + chrono::Duration::seconds(1));
        assert_ne!(later.events[0], plan.events[0]);
    }

    #[test]
    fn a_correction_withdraws_what_it_no_longer_has() {
        // Stored: Ann's 3 deals and Cat's adjustment; the correction gives Ann 2 deals and drops Cat.
        let mut s = summary();
        s.agents[0].deals = 2;
        let ids = ["1", "2", "3"].map(|n| format!("summary:2026-03:ann-lee:{n}"));
        let stored = Stored {
            commissions: ids
                .iter()
                .map(|id| (id.clone(), id.clone()))
                .chain([("summary:2026-03:cat:adjustment".to_string(), "summary:2026-03:cat:adjustment".to_string())])
                .collect(),
            policies: ids.iter().cloned().collect(),
            agents: HashMap::new(),
        };
        let plan = plan(&s, &stored, Utc::now());
        assert_eq!((plan.rows.withdrawn_commissions, plan.rows.withdrawn_policies), (2, 1));
        let rows = data(&plan);
        let n = rows.len();
        assert_eq!(
            rows[n - 3].1,
            json!({"commission_id": "summary:2026-03:ann-lee:3", "policy_id": "summary:2026-03:ann-lee:3",
                   "agent_id": "summary:(withdrawn)", "carrier_id": "summary", "transaction_date": "2026-03-01",
                   "kind": "adjustment", "premium_amount": "0", "commission_rate": "0",
                   "gross_commission": "0", "agent_commission": "0", "agency_commission": "0"})
        );
        assert_eq!(
            (rows[n - 2].1["commission_id"].clone(), rows[n - 2].1["agent_id"].clone()),
            (json!("summary:2026-03:cat:adjustment"), json!("summary:(withdrawn)"))
        );
        assert_eq!(
            (
                rows[n - 1].1["policy_id"].clone(),
                rows[n - 1].1["agent_id"].clone(),
                rows[n - 1].1["premium"].clone(),
                rows[n - 1].1["status"].clone(),
                rows[n - 1].1["cancellation_date"].clone()
            ),
            (
                json!("summary:2026-03:ann-lee:3"),
                json!("summary:(withdrawn)"),
                json!("0"),
                json!("cancelled"),
                json!("2026-03-01")
            )
        );
        // Ann's two deals now: 500.00 each.
        assert_eq!(rows[3].1["premium"], "500.00");
    }
}
