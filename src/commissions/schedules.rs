//! Effective-dated terms: carriers' commission schedules and agents' split
//! and override percentages, and which one is in force on a date.
//!
//! Both follow one rule, so that a change only ever *adds* a dated row:
//! a row is in force on `d` when `effective_from <= d` and, if it has an
//! `effective_to`, `d < effective_to` (half-open, as the data contract's
//! ranges are); among the rows in force the one with the latest
//! `effective_from` wins. A new rate from 2025-03-01 is therefore one new
//! row; the old row keeps its (open) end and simply stops winning.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Schedule kinds of the data contract: first term or renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TermKind {
    New,
    Renewal,
}

impl TermKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TermKind::New => "new",
            TermKind::Renewal => "renewal",
        }
    }

    pub fn parse(s: &str) -> Option<TermKind> {
        match s {
            "new" => Some(TermKind::New),
            "renewal" => Some(TermKind::Renewal),
            _ => None,
        }
    }

    pub fn other(self) -> TermKind {
        match self {
            TermKind::New => TermKind::Renewal,
            TermKind::Renewal => TermKind::New,
        }
    }
}

/// One row of `commission_schedules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub carrier_id: String,
    pub line_of_business: String,
    pub kind: TermKind,
    pub rate: Decimal,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
}

impl ScheduleRow {
    pub fn in_force(&self, d: NaiveDate) -> bool {
        self.effective_from <= d && self.effective_to.is_none_or(|to| d < to)
    }
}

type ScheduleKey = (String, String, TermKind);

/// A tenant's schedules, by (carrier, line, kind), each list sorted by
/// `effective_from`.
#[derive(Debug, Default, Clone)]
pub struct Schedules {
    by_key: HashMap<ScheduleKey, Vec<ScheduleRow>>,
}

impl Schedules {
    pub fn new(rows: impl IntoIterator<Item = ScheduleRow>) -> Self {
        let mut by_key: HashMap<ScheduleKey, Vec<ScheduleRow>> = HashMap::new();
        for r in rows {
            by_key.entry((r.carrier_id.clone(), r.line_of_business.clone(), r.kind)).or_default().push(r);
        }
        for rows in by_key.values_mut() {
            rows.sort_by_key(|r| r.effective_from);
        }
        Schedules { by_key }
    }

    /// The row in force on `d` (see the module's rule).
    pub fn in_force(&self, carrier: &str, line: &str, kind: TermKind, d: NaiveDate) -> Option<&ScheduleRow> {
        let rows = self.by_key.get(&(carrier.to_string(), line.to_string(), kind))?;
        rows.iter().rev().find(|r| r.in_force(d))
    }

    /// Every distinct rate of a carrier's line (both kinds, all dates).
    pub fn rates_of(&self, carrier: &str, line: &str) -> Vec<Decimal> {
        let mut out: Vec<Decimal> = [TermKind::New, TermKind::Renewal]
            .iter()
            .filter_map(|k| self.by_key.get(&(carrier.to_string(), line.to_string(), *k)))
            .flatten()
            .map(|r| r.rate.normalize())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// All rows, sorted by carrier, line, kind, start.
    pub fn rows(&self) -> Vec<&ScheduleRow> {
        let mut out: Vec<&ScheduleRow> = self.by_key.values().flatten().collect();
        out.sort_by(|a, b| {
            (&a.carrier_id, &a.line_of_business, a.kind, a.effective_from).cmp(&(
                &b.carrier_id,
                &b.line_of_business,
                b.kind,
                b.effective_from,
            ))
        });
        out
    }
}

/// What the `agents` table says about an agent's pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTerms {
    pub agent_id: String,
    pub agency_id: String,
    pub name: String,
    pub role: String,
    pub manager_id: Option<String>,
    pub split_pct: Option<Decimal>,
    pub override_pct: Option<Decimal>,
}

/// One row of `agent_splits`: from `effective_from` on, the agent's split
/// (and/or override) is this. A `None` leaves that figure as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitChange {
    pub agent_id: String,
    pub effective_from: NaiveDate,
    pub split_pct: Option<Decimal>,
    pub override_pct: Option<Decimal>,
}

/// A tenant's agents and their dated split changes.
#[derive(Debug, Default, Clone)]
pub struct Agents {
    agents: HashMap<String, AgentTerms>,
    /// Per agent, sorted by `effective_from`.
    changes: HashMap<String, Vec<SplitChange>>,
}

impl Agents {
    pub fn new(agents: impl IntoIterator<Item = AgentTerms>, changes: impl IntoIterator<Item = SplitChange>) -> Self {
        let agents = agents.into_iter().map(|a| (a.agent_id.clone(), a)).collect();
        let mut by_agent: HashMap<String, Vec<SplitChange>> = HashMap::new();
        for c in changes {
            by_agent.entry(c.agent_id.clone()).or_default().push(c);
        }
        for v in by_agent.values_mut() {
            v.sort_by_key(|c| c.effective_from);
        }
        Agents { agents, changes: by_agent }
    }

    pub fn get(&self, agent_id: &str) -> Option<&AgentTerms> {
        self.agents.get(agent_id)
    }

    /// The latest change on or before `d` that sets the figure, else the
    /// agent row's own value (what the agency system delivered).
    fn on(&self, agent_id: &str, d: NaiveDate, pick: impl Fn(&SplitChange) -> Option<Decimal>) -> Option<Decimal> {
        self.changes.get(agent_id).and_then(|v| v.iter().rev().filter(|c| c.effective_from <= d).find_map(&pick))
    }

    pub fn split_on(&self, agent_id: &str, d: NaiveDate) -> Option<Decimal> {
        self.on(agent_id, d, |c| c.split_pct).or_else(|| self.agents.get(agent_id)?.split_pct)
    }

    pub fn override_on(&self, agent_id: &str, d: NaiveDate) -> Option<Decimal> {
        self.on(agent_id, d, |c| c.override_pct).or_else(|| self.agents.get(agent_id)?.override_pct)
    }

    /// Every dated change, by agent then date.
    pub fn changes(&self) -> Vec<&SplitChange> {
        let mut out: Vec<&SplitChange> = self.changes.values().flatten().collect();
        out.sort_by(|a, b| (&a.agent_id, a.effective_from).cmp(&(&b.agent_id, b.effective_from)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commissions::fixtures::{agent, d, dec};

    fn row(rate: &str, from: &str, to: Option<&str>) -> ScheduleRow {
        ScheduleRow {
            carrier_id: "K1".into(),
            line_of_business: "auto".into(),
            kind: TermKind::New,
            rate: dec(rate),
            effective_from: d(from),
            effective_to: to.map(d),
        }
    }

    #[test]
    fn the_day_a_new_rate_starts_it_wins_and_ends_are_exclusive() {
        // The generator's shape: the old row ends on the day the new one starts.
        let s = Schedules::new([row("0.12", "2023-01-01", Some("2024-03-01")), row("0.13", "2024-03-01", None)]);
        let rate = |day: &str| s.in_force("K1", "auto", TermKind::New, d(day)).map(|r| r.rate);
        assert_eq!(rate("2022-12-31"), None);
        assert_eq!(rate("2023-01-01"), Some(dec("0.12")));
        assert_eq!(rate("2024-02-29"), Some(dec("0.12")));
        assert_eq!(rate("2024-03-01"), Some(dec("0.13")));
        assert_eq!(s.in_force("K1", "auto", TermKind::Renewal, d("2024-03-01")), None);
        assert_eq!(s.in_force("K1", "home", TermKind::New, d("2024-03-01")), None);
    }

    #[test]
    fn an_added_row_supersedes_an_open_ended_one_from_its_start() {
        // setCommissionSchedule adds a row and leaves the old one open.
        let s = Schedules::new([row("0.12", "2023-01-01", None), row("0.11", "2025-07-01", Some("2026-01-01"))]);
        let rate = |day: &str| s.in_force("K1", "auto", TermKind::New, d(day)).unwrap().rate;
        assert_eq!(rate("2025-06-30"), dec("0.12"));
        assert_eq!(rate("2025-07-01"), dec("0.11"));
        // After the added row's end the older open row is in force again.
        assert_eq!(rate("2026-01-01"), dec("0.12"));
        assert_eq!(s.rates_of("K1", "auto"), vec![dec("0.11"), dec("0.12")]);
    }

    #[test]
    fn splits_change_from_their_date_and_fall_back_to_the_agent_row() {
        let agent = agent("A1", Some("M1"), Some("0.40"), None);
        let change = |from: &str, split: Option<&str>, ov: Option<&str>| SplitChange {
            agent_id: "A1".into(),
            effective_from: d(from),
            split_pct: split.map(dec),
            override_pct: ov.map(dec),
        };
        let a =
            Agents::new([agent], [change("2025-01-01", Some("0.45"), None), change("2025-06-01", None, Some("0.02"))]);
        assert_eq!(a.split_on("A1", d("2024-12-31")), Some(dec("0.40")));
        assert_eq!(a.split_on("A1", d("2025-01-01")), Some(dec("0.45")));
        // A later change that sets only the override keeps the split.
        assert_eq!(a.split_on("A1", d("2025-07-01")), Some(dec("0.45")));
        assert_eq!(a.override_on("A1", d("2025-05-31")), None);
        assert_eq!(a.override_on("A1", d("2025-06-01")), Some(dec("0.02")));
        assert_eq!(a.split_on("nobody", d("2025-06-01")), None);
    }
}
