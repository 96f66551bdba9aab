//! Audit of booked commission rows: each row recomputed from the schedules
//! and the splits (`calc.rs`), and listed with the expected and the booked
//! figures where they disagree.
//!
//! What each kind should be, for the row's policy term:
//! - `new` / `renewal`: the calculation of the term (rate of the booked
//!   kind in force on the effective date, the policy's premium);
//! - `chargeback`: the term's pro-rata chargeback at its cancellation date
//!   (the policy's, else the row's date); the rate is the term's;
//! - `adjustment`: round(booked premium change × the term's rate), split;
//! - `override`: round(gross of the row it accompanies — the carrier row
//!   of the same policy and date — × the manager's override percentage),
//!   recomputed from that row's *expected* gross, so an override on a
//!   wrong row is flagged too.
//!
//! The term's rate kind is that of the policy's own `new`/`renewal` row if
//! it has one, else `renewal` when the policy renews another.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::calc::{self, Amounts, TermInput};
use super::load::{CommissionRow, PolicyTerm};
use super::money::{fmt_money, fmt_rate};
use super::schedules::{Agents, Schedules, TermKind};

/// The figures of a row, booked or expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub premium_amount: Decimal,
    pub commission_rate: Decimal,
    pub gross_commission: Decimal,
    pub agent_commission: Decimal,
    pub agency_commission: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub commission_id: String,
    pub policy_id: String,
    pub agent_id: String,
    pub carrier_id: String,
    pub kind: String,
    pub transaction_date: NaiveDate,
    /// The fields that differ (`commission_rate`, `gross_commission`, …).
    pub fields: Vec<&'static str>,
    pub booked: Figures,
    pub expected: Figures,
    pub reason: String,
}

/// A row that cannot be checked, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    pub commission_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub checked: u64,
    pub findings: Vec<Finding>,
    pub unchecked: Vec<Unchecked>,
}

struct Term<'a> {
    policy: &'a PolicyTerm,
    kind: TermKind,
}

impl Term<'_> {
    fn input(&self, cancellation: Option<NaiveDate>) -> TermInput {
        let p = self.policy;
        TermInput {
            carrier_id: p.carrier_id.clone(),
            line_of_business: p.line_of_business.clone(),
            kind: self.kind,
            premium: p.premium,
            effective_date: p.effective_date,
            expiration_date: Some(p.expiration_date),
            agent_id: p.agent_id.clone(),
            cancellation_date: cancellation,
        }
    }
}

fn figures(a: &Amounts, rate: Decimal) -> Figures {
    Figures {
        premium_amount: a.premium,
        commission_rate: rate,
        gross_commission: a.gross,
        agent_commission: a.producer,
        agency_commission: a.agency,
    }
}

fn booked(r: &CommissionRow) -> Figures {
    Figures {
        premium_amount: r.premium_amount,
        commission_rate: r.commission_rate,
        gross_commission: r.gross_commission,
        agent_commission: r.agent_commission,
        agency_commission: r.agency_commission,
    }
}

/// Audit `rows` (a tenant's commission rows) against its schedules, agents
/// and `policies`.
pub fn audit(
    rows: &[CommissionRow],
    policies: &HashMap<String, PolicyTerm>,
    schedules: &Schedules,
    agents: &Agents,
) -> AuditReport {
    // The kind of each policy's own new/renewal row.
    let mut term_kind: HashMap<&str, TermKind> = HashMap::new();
    for r in rows {
        if let Some(k) = TermKind::parse(&r.kind) {
            term_kind.insert(r.policy_id.as_str(), k);
        }
    }
    // Carrier rows by (policy, date), for overrides.
    let mut carrier_rows: HashMap<(&str, NaiveDate), Vec<&CommissionRow>> = HashMap::new();
    for r in rows.iter().filter(|r| r.kind != "override") {
        carrier_rows.entry((r.policy_id.as_str(), r.transaction_date)).or_default().push(r);
    }
    let mut report = AuditReport::default();
    for r in rows {
        match expected(r, policies, schedules, agents, &term_kind, &carrier_rows) {
            Ok(exp) => {
                report.checked += 1;
                let b = booked(r);
                let mut fields = Vec::new();
                for (name, x, y) in [
                    ("premium_amount", exp.premium_amount, b.premium_amount),
                    ("commission_rate", exp.commission_rate, b.commission_rate),
                    ("gross_commission", exp.gross_commission, b.gross_commission),
                    ("agent_commission", exp.agent_commission, b.agent_commission),
                    ("agency_commission", exp.agency_commission, b.agency_commission),
                ] {
                    if x != y {
                        fields.push(name);
                    }
                }
                if fields.is_empty() {
                    continue;
                }
                let reason = reason(r, &exp, &b, policies.get(&r.policy_id), schedules);
                report.findings.push(Finding {
                    commission_id: r.commission_id.clone(),
                    policy_id: r.policy_id.clone(),
                    agent_id: r.agent_id.clone(),
                    carrier_id: r.carrier_id.clone(),
                    kind: r.kind.clone(),
                    transaction_date: r.transaction_date,
                    fields,
                    booked: b,
                    expected: exp,
                    reason,
                });
            }
            Err(why) => report.unchecked.push(Unchecked { commission_id: r.commission_id.clone(), reason: why }),
        }
    }
    report
}

fn expected(
    r: &CommissionRow,
    policies: &HashMap<String, PolicyTerm>,
    schedules: &Schedules,
    agents: &Agents,
    term_kind: &HashMap<&str, TermKind>,
    carrier_rows: &HashMap<(&str, NaiveDate), Vec<&CommissionRow>>,
) -> Result<Figures, String> {
    let policy = policies.get(&r.policy_id).ok_or_else(|| format!("policy {} is not in the lake", r.policy_id))?;
    let kind = term_kind.get(r.policy_id.as_str()).copied().unwrap_or(if policy.renewal_of.is_some() {
        TermKind::Renewal
    } else {
        TermKind::New
    });
    let term = Term { policy, kind };
    let calc = |t: TermInput| calc::calculate(&t, schedules, agents).map_err(|e| e.to_string());
    match r.kind.as_str() {
        "new" | "renewal" => {
            let kind = TermKind::parse(&r.kind).expect("new or renewal");
            let c = calc(Term { policy, kind }.input(None))?;
            Ok(figures(&c.commission, c.rate))
        }
        "chargeback" => {
            let at = policy.cancellation_date.unwrap_or(r.transaction_date);
            let c = calc(term.input(Some(at)))?;
            let cb = c.chargeback.expect("a cancellation gives a chargeback");
            Ok(figures(&cb.amounts, c.rate))
        }
        "adjustment" => {
            let c = calc(term.input(None))?;
            let split = agents.split_on(&policy.agent_id, policy.effective_date);
            let a = Amounts::split(r.premium_amount, calc::gross(r.premium_amount, c.rate), split, None);
            Ok(figures(&a, c.rate))
        }
        "override" => {
            let (manager, pct) = calc::override_of(agents, &policy.agent_id, policy.effective_date)
                .ok_or_else(|| format!("producer {} has no manager with an override", policy.agent_id))?;
            if manager != r.agent_id {
                return Err(format!("override paid to {} but the producer's manager is {manager}", r.agent_id));
            }
            let related = carrier_rows
                .get(&(r.policy_id.as_str(), r.transaction_date))
                .ok_or_else(|| "no carrier row of the same policy and date".to_string())?;
            // Of several rows that day, the one whose override this is.
            let mut best = None;
            for rel in related {
                let exp = expected(rel, policies, schedules, agents, term_kind, carrier_rows)?;
                let ov = crate::commissions::money::round_cents(exp.gross_commission * pct);
                if best.is_none() || ov == r.agent_commission {
                    best = Some(ov);
                }
            }
            let ov = best.expect("at least one related row");
            let zero = crate::commissions::money::round_cents(Decimal::ZERO);
            Ok(Figures {
                premium_amount: zero,
                commission_rate: pct,
                gross_commission: zero,
                agent_commission: ov,
                agency_commission: -ov,
            })
        }
        other => Err(format!("unknown kind {other}")),
    }
}

/// A sentence on what is wrong, naming the likeliest cause.
fn reason(r: &CommissionRow, exp: &Figures, b: &Figures, policy: Option<&PolicyTerm>, schedules: &Schedules) -> String {
    if let (Some(p), Some(kind)) = (policy, TermKind::parse(&r.kind))
        && b.commission_rate != exp.commission_rate
        && let Some(other) = schedules.in_force(&p.carrier_id, &p.line_of_business, kind.other(), p.effective_date)
        && other.rate == b.commission_rate
    {
        let (this, that) = match kind {
            TermKind::New => ("new business", "renewal"),
            TermKind::Renewal => ("a renewal", "new-business"),
        };
        return format!(
            "{this} booked at the {that} rate {} instead of {}: gross {} instead of {}",
            fmt_rate(b.commission_rate),
            fmt_rate(exp.commission_rate),
            fmt_money(b.gross_commission),
            fmt_money(exp.gross_commission)
        );
    }
    let mut parts = Vec::new();
    for (name, x, y, money) in [
        ("premium", exp.premium_amount, b.premium_amount, true),
        ("rate", exp.commission_rate, b.commission_rate, false),
        ("gross", exp.gross_commission, b.gross_commission, true),
        ("agent", exp.agent_commission, b.agent_commission, true),
        ("agency", exp.agency_commission, b.agency_commission, true),
    ] {
        if x != y {
            let f = |v: Decimal| if money { fmt_money(v) } else { fmt_rate(v) };
            parts.push(format!("{name} booked {} expected {}", f(y), f(x)));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commissions::fixtures::{agent, d, dec};
    use crate::commissions::schedules::ScheduleRow;

    #[allow(clippy::too_many_arguments)]
    fn row(
        id: &str,
        agent: &str,
        date: &str,
        kind: &str,
        premium: &str,
        rate: &str,
        g: &str,
        a: &str,
        ag: &str,
    ) -> CommissionRow {
        CommissionRow {
            commission_id: id.into(),
            policy_id: "P1".into(),
            agent_id: agent.into(),
            carrier_id: "K1".into(),
            transaction_date: d(date),
            kind: kind.into(),
            premium_amount: dec(premium),
            commission_rate: dec(rate),
            gross_commission: dec(g),
            agent_commission: dec(a),
            agency_commission: dec(ag),
            status: None,
            paid_date: None,
            statement_id: None,
        }
    }

    #[test]
    fn rows_that_disagree_with_schedules_and_splits_are_listed_with_both_figures() {
        let sch = |kind, rate: &str| ScheduleRow {
            carrier_id: "K1".into(),
            line_of_business: "home".into(),
            kind,
            rate: dec(rate),
            effective_from: d("2020-01-01"),
            effective_to: None,
        };
        let schedules = Schedules::new([sch(TermKind::New, "0.15"), sch(TermKind::Renewal, "0.12")]);
        let agents =
            Agents::new([agent("A1", Some("M1"), Some("0.40"), None), agent("M1", None, None, Some("0.03"))], []);
        let policy = PolicyTerm {
            policy_id: "P1".into(),
            policy_number: "N-1".into(),
            agency_id: "G1".into(),
            agent_id: "A1".into(),
            carrier_id: "K1".into(),
            line_of_business: "home".into(),
            effective_date: d("2024-03-01"),
            expiration_date: d("2025-03-01"),
            premium: dec("1500.00"),
            cancellation_date: Some(d("2024-06-01")),
            renewal_of: None,
        };
        let policies = HashMap::from([("P1".to_string(), policy)]);
        // 1500 × 0.15 = 225.00; A1 90.00; agency 135.00; M1 6.75.
        // Cancelled 2024-06-01: 273 of 365 days unearned: 225 × 273 / 365 = 168.29 → −168.29,
        // premium 1500 × 273 / 365 = 1121.92 → −1121.92; A1 −67.32; agency −100.97; M1 −5.05.
        let rows = vec![
            // booked at the renewal rate: 1500 × 0.12 = 180.00
            row("C1", "A1", "2024-03-01", "new", "1500.00", "0.12", "180.00", "72.00", "108.00"),
            // the override of a correct row would be 6.75; booked on the wrong row it is 5.40
            row("C2", "M1", "2024-03-01", "override", "0.00", "0.03", "0.00", "5.40", "-5.40"),
            row("C3", "A1", "2024-06-01", "chargeback", "-1121.92", "0.15", "-168.29", "-67.32", "-100.97"),
            row("C4", "M1", "2024-06-01", "override", "0.00", "0.03", "0.00", "-5.05", "5.05"),
            // an adjustment of +100.00: 15.00, A1 6.00 — booked with the agent's share 7.00
            row("C5", "A1", "2024-09-01", "adjustment", "100.00", "0.15", "15.00", "7.00", "8.00"),
        ];
        let r = audit(&rows, &policies, &schedules, &agents);
        assert_eq!(r.checked, 5);
        assert!(r.unchecked.is_empty());
        let ids: Vec<&str> = r.findings.iter().map(|f| f.commission_id.as_str()).collect();
        assert_eq!(ids, ["C1", "C2", "C5"]);
        let c1 = &r.findings[0];
        assert_eq!(c1.fields, ["commission_rate", "gross_commission", "agent_commission", "agency_commission"]);
        assert_eq!(
            [
                c1.expected.commission_rate,
                c1.expected.gross_commission,
                c1.expected.agent_commission,
                c1.expected.agency_commission
            ]
            .map(|x| x.to_string()),
            ["0.15", "225.00", "90.00", "135.00"]
        );
        assert_eq!(
            c1.reason,
            "new business booked at the renewal rate 0.12 instead of 0.15: gross 180.00 instead of 225.00"
        );
        assert_eq!(r.findings[1].expected.agent_commission.to_string(), "6.75");
        assert_eq!(r.findings[2].fields, ["agent_commission", "agency_commission"]);
        assert_eq!(r.findings[2].reason, "agent booked 7.00 expected 6.00; agency booked 8.00 expected 9.00");

        // A row whose policy is missing cannot be checked.
        let mut orphan = rows[0].clone();
        orphan.policy_id = "P9".into();
        let r = audit(&[orphan], &policies, &schedules, &agents);
        assert_eq!((r.checked, r.unchecked[0].reason.as_str()), (0, "policy P9 is not in the lake"));
    }
}
