//! Commission rows of the book: one `new`/`renewal` row per term at the
//! schedule rate in force on the effective date, manager `override` rows,
//! pro-rata `chargeback` rows on cancellation and occasional `adjustment`
//! rows. All money arithmetic is done in `rust_decimal` and rounded to cents
//! half away from zero; amounts are then kept as exact integer cents.

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::generate::book::{Tenant, add_months, days};
use crate::generate::catalog::Line;
use crate::generate::rng::Rng;

/// Probability that a carrier-paid row is never paid (stays `expected`).
pub const UNPAID_RATE: f64 = 0.004;
/// Probability of a premium audit adjustment on an auditable commercial term.
pub const AUDIT_RATE: f64 = 0.30;
/// Probability of a mid-term endorsement adjustment on auto and home terms.
pub const ENDORSEMENT_RATE: f64 = 0.02;
/// Days between a carrier statement and the money reaching the agency.
pub const PAYMENT_LAG_DAYS: i64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    New,
    Renewal,
    Chargeback,
    Override,
    Adjustment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Renewal => "renewal",
            Kind::Chargeback => "chargeback",
            Kind::Override => "override",
            Kind::Adjustment => "adjustment",
        }
    }
}

#[derive(Clone, Debug)]
pub struct CommRec {
    pub date: NaiveDate,
    pub tenant: u16,
    pub policy: u32,
    /// Order of the row within its policy.
    pub seq: u8,
    pub kind: Kind,
    pub agent: u16,
    pub carrier: u16,
    pub rate_micro: u32,
    pub premium: i64,
    pub gross: i64,
    pub agent_amt: i64,
    pub agency_amt: i64,
    pub paid: Option<NaiveDate>,
    /// Paid by the carrier on its statement (never true for overrides).
    pub on_statement: bool,
}

/// Rounds to cents, half away from zero (so a negative amount rounds like its
/// positive counterpart).
pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Exact integer cents of a decimal already rounded to 2 places.
pub fn cents(d: Decimal) -> i64 {
    let mut r = round2(d);
    r.rescale(2);
    i64::try_from(r.mantissa()).expect("amount fits in i64 cents")
}

pub fn dec(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// A rate with at most 6 fraction digits as integer millionths.
pub fn micro(rate: Decimal) -> u32 {
    let mut r = rate;
    r.rescale(6);
    u32::try_from(r.mantissa()).expect("rate fits in millionths")
}

pub fn rate_dec(micro: u32) -> Decimal {
    Decimal::new(i64::from(micro), 6)
}

/// The date a carrier issues its statement for the month of `d`.
pub fn statement_date(d: NaiveDate, statement_day: u32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid");
    days(add_months(first, 1), i64::from(statement_day) - 1)
}

/// (gross, agent, agency) for a carrier-paid row: agent = round(gross × split),
/// agency = gross − agent, so gross = agent + agency exactly.
fn split_amounts(gross: Decimal, split: Decimal) -> (i64, i64, i64) {
    let g = round2(gross);
    let a = round2(g * split);
    (cents(g), cents(a), cents(g - a))
}

pub fn generate(t: &Tenant, seed: u64, end: NaiveDate, out: &mut Vec<CommRec>, on_statement: &mut [bool]) {
    let mut rng = Rng::stream(seed, "commissions", t.index as u64);
    for (pi, p) in t.policies.iter().enumerate() {
        let agent = &t.agents[p.agent as usize];
        let split = agent.split.expect("policies are written by producers");
        let manager = agent.manager.map(|m| {
            let mgr = &t.agents[m as usize];
            (m, mgr.override_pct.expect("managers have an override"))
        });
        let carrier = &t.carriers[p.carrier as usize];
        let renewal = p.prev.is_some();
        let rate_micro = t.rate_on(p.carrier, p.line, renewal, p.eff);
        let rate = rate_dec(rate_micro);
        let premium = dec(p.premium_cents);
        let term_gross = round2(premium * rate);
        let mut seq = 0u8;

        let mut push =
            |out: &mut Vec<CommRec>, rng: &mut Rng, date: NaiveDate, kind: Kind, prem: Decimal, gross: Decimal| {
                let (g, a, ag) = split_amounts(gross, split);
                let paid_date = days(statement_date(date, carrier.spec.statement_day), PAYMENT_LAG_DAYS);
                let paid = (paid_date < end && !rng.chance(UNPAID_RATE)).then_some(paid_date);
                out.push(CommRec {
                    date,
                    tenant: t.index as u16,
                    policy: pi as u32,
                    seq,
                    kind,
                    agent: p.agent,
                    carrier: p.carrier,
                    rate_micro,
                    premium: cents(prem),
                    gross: g,
                    agent_amt: a,
                    agency_amt: ag,
                    paid,
                    on_statement: paid.is_some(),
                });
                seq += 1;
                if let Some((m, pct)) = manager {
                    // The override is paid out of the agency's share.
                    let ov = cents(dec(g) * pct);
                    out.push(CommRec {
                        date,
                        tenant: t.index as u16,
                        policy: pi as u32,
                        seq,
                        kind: Kind::Override,
                        agent: m,
                        carrier: p.carrier,
                        rate_micro: micro(pct),
                        premium: 0,
                        gross: 0,
                        agent_amt: ov,
                        agency_amt: -ov,
                        paid,
                        on_statement: false,
                    });
                    seq += 1;
                }
            };

        let kind = if renewal { Kind::Renewal } else { Kind::New };
        push(out, &mut rng, p.eff, kind, premium, term_gross);

        if let Some(c) = p.cancel {
            // Pro-rata return of the unearned commission.
            let term_days = Decimal::from((p.exp - p.eff).num_days());
            let remaining = Decimal::from((p.exp - c).num_days());
            let cb_premium = -round2(premium * remaining / term_days);
            let cb_gross = -round2(term_gross * remaining / term_days);
            push(out, &mut rng, c, Kind::Chargeback, cb_premium, cb_gross);
        } else {
            let adjustment = if p.line.is_auditable() && rng.chance(AUDIT_RATE) {
                // Premium audit after expiration: −15 % .. +25 %.
                let date = days(p.exp, rng.range_i64(30, 120));
                Some((date, rng.range_i64(-1500, 2500)))
            } else if matches!(p.line, Line::Auto | Line::Home) && rng.chance(ENDORSEMENT_RATE) {
                let span = (p.exp - p.eff).num_days();
                let date = days(p.eff, rng.range_i64(1, span - 1));
                let bp = rng.range_i64(300, 1500) * if rng.chance(0.6) { 1 } else { -1 };
                Some((date, bp))
            } else {
                None
            };
            if let Some((date, bp)) = adjustment
                && date < end
            {
                let delta = round2(premium * Decimal::new(bp, 4));
                let gross = round2(delta * rate);
                if !gross.is_zero() {
                    push(out, &mut rng, date, Kind::Adjustment, delta, gross);
                }
            }
        }
        on_statement[pi] = out
            .iter()
            .rev()
            .take_while(|r| r.tenant == t.index as u16 && r.policy == pi as u32)
            .any(|r| r.on_statement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn rounding_is_half_away_from_zero_and_split_is_exact() {
        assert_eq!(cents(Decimal::from_str("10.005").unwrap()), 1001);
        assert_eq!(cents(Decimal::from_str("-10.005").unwrap()), -1001);
        assert_eq!(cents(Decimal::from_str("10.015").unwrap()), 1002);
        // 530.27 × 0.1275 = 67.609425 → 67.61; agent 40 % = 27.044 → 27.04
        let g = Decimal::from_str("530.27").unwrap() * Decimal::from_str("0.1275").unwrap();
        assert_eq!(split_amounts(g, Decimal::from_str("0.4").unwrap()), (6761, 2704, 4057));
        // Negative (chargeback) keeps gross = agent + agency: −33.81 × 0.35 = −11.8335 → −11.83
        assert_eq!(
            split_amounts(Decimal::from_str("-33.805").unwrap(), Decimal::from_str("0.35").unwrap()),
            (-3381, -1183, -2198)
        );
    }

    #[test]
    fn statement_dates() {
        let d = NaiveDate::from_ymd_opt(2023, 12, 31).unwrap();
        assert_eq!(statement_date(d, 12), NaiveDate::from_ymd_opt(2024, 1, 12).unwrap());
        let d = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        assert_eq!(statement_date(d, 1), NaiveDate::from_ymd_opt(2023, 2, 1).unwrap());
    }
}
