//! Small builders shared by the commission engine's unit tests.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::schedules::AgentTerms;

/// `YYYY-MM-DD`.
pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// An exact decimal.
pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// An agent of agency G1 named by its id: a manager when it has an
/// override percentage, else a producer.
pub fn agent(id: &str, manager: Option<&str>, split: Option<&str>, override_pct: Option<&str>) -> AgentTerms {
    AgentTerms {
        agent_id: id.into(),
        agency_id: "G1".into(),
        name: id.into(),
        role: if override_pct.is_some() { "manager" } else { "producer" }.into(),
        manager_id: manager.map(String::from),
        split_pct: split.map(dec),
        override_pct: override_pct.map(dec),
    }
}
