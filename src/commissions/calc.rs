//! The calculation of one policy term's commission, in `rust_decimal`
//! throughout, with every step written out.
//!
//! 1. **Rate**: the schedule row of (carrier, line, new|renewal) in force on
//!    the term's effective date (`schedules.rs`).
//! 2. **Gross** = round(premium × rate).
//! 3. **Producer** = round(gross × split), the split in force on the
//!    effective date; **agency** = gross − producer (so gross = producer +
//!    agency exactly, as the contract requires of every row).
//! 4. **Override**: when the producer has a manager with an override
//!    percentage, round(gross × override_pct), paid out of the agency's
//!    share (the contract's `override` row: agent = +override, agency =
//!    −override); the agency keeps agency − override.
//! 5. **Chargeback** on cancellation: the unearned part of the term,
//!    −round(gross × unearned days ÷ term days), split as in 3 and 4
//!    (the producer and the manager give back their shares of it).
//!
//! Rounding: to cents, half away from zero, once per figure (`money.rs`).
//! Day count: actual calendar days. A term of `[effective, expiration)`
//! has `expiration − effective` days; coverage ends at the start of the
//! cancellation day, so `expiration − cancellation` days are unearned: a
//! cancellation on the effective date returns everything, one on the last
//! day of the term returns one day's worth, and one on the expiration date
//! returns nothing.
//!
//! The split, override and manager used for every row of a term (its
//! chargeback and adjustments too) are those in force on the term's
//! effective date: a chargeback takes back what was paid, at the shares it
//! was paid with.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::money::{fmt_money, fmt_rate, round_cents};
use super::schedules::{Agents, Schedules, TermKind};

/// A policy term to calculate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermInput {
    pub carrier_id: String,
    pub line_of_business: String,
    pub kind: TermKind,
    pub premium: Decimal,
    pub effective_date: NaiveDate,
    /// Needed only for a cancellation.
    pub expiration_date: Option<NaiveDate>,
    /// The producer.
    pub agent_id: String,
    pub cancellation_date: Option<NaiveDate>,
}

/// The figures of one commission row (and its override).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub premium: Decimal,
    pub gross: Decimal,
    /// The producer's share (`agent_commission`).
    pub producer: Decimal,
    /// gross − producer (`agency_commission`).
    pub agency: Decimal,
    /// The manager's override (0 without one).
    pub override_amount: Decimal,
    /// What the agency keeps: agency − override.
    pub agency_net: Decimal,
}

impl Amounts {
    /// Split `gross` (already in cents) by `split` and `override_pct`.
    pub fn split(premium: Decimal, gross: Decimal, split: Option<Decimal>, override_pct: Option<Decimal>) -> Self {
        let gross = round_cents(gross);
        let producer = split.map_or(round_cents(Decimal::ZERO), |s| round_cents(gross * s));
        let agency = round_cents(gross - producer);
        let override_amount = override_pct.map_or(round_cents(Decimal::ZERO), |p| round_cents(gross * p));
        Amounts {
            premium: round_cents(premium),
            gross,
            producer,
            agency,
            override_amount,
            agency_net: round_cents(agency - override_amount),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chargeback {
    pub date: NaiveDate,
    pub term_days: i64,
    pub unearned_days: i64,
    pub amounts: Amounts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calculation {
    pub rate: Decimal,
    pub schedule_from: NaiveDate,
    pub schedule_to: Option<NaiveDate>,
    pub split_pct: Option<Decimal>,
    pub manager_id: Option<String>,
    pub override_pct: Option<Decimal>,
    pub commission: Amounts,
    pub chargeback: Option<Chargeback>,
    /// The explanation, one sentence per step.
    pub steps: Vec<String>,
}

/// Why a term cannot be calculated; `code()` is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("no {kind} schedule of carrier {carrier} for line {line} is in force on {date}")]
    NoSchedule { carrier: String, line: String, kind: &'static str, date: NaiveDate },
    #[error("no agent {0}")]
    UnknownAgent(String),
    #[error("the expiration date {expiration} is not after the effective date {effective}")]
    InvalidTerm { effective: NaiveDate, expiration: NaiveDate },
    #[error("a cancellation needs the term's expiration date")]
    MissingExpiration,
    #[error("the cancellation date {date} is outside the term {effective} to {expiration}")]
    CancellationOutsideTerm { date: NaiveDate, effective: NaiveDate, expiration: NaiveDate },
}

impl CalcError {
    pub fn code(&self) -> &'static str {
        match self {
            CalcError::NoSchedule { .. } => "no_schedule",
            CalcError::UnknownAgent(_) => "unknown_agent",
            CalcError::InvalidTerm { .. } => "invalid_term",
            CalcError::MissingExpiration | CalcError::CancellationOutsideTerm { .. } => "invalid_cancellation",
        }
    }
}

/// Gross commission of a premium at a rate.
pub fn gross(premium: Decimal, rate: Decimal) -> Decimal {
    round_cents(premium * rate)
}

/// The (negative) share of `amount` that a cancellation returns:
/// −round(amount × unearned ÷ term), multiplied before dividing so that
/// exact quotients stay exact.
pub fn unearned(amount: Decimal, unearned_days: i64, term_days: i64) -> Decimal {
    // Rounding half away from zero is symmetric: −round(x) = round(−x).
    round_cents(-(amount * Decimal::from(unearned_days) / Decimal::from(term_days)))
}

/// The manager paid an override on `producer`'s business on `d`, and its
/// percentage (none when the producer has no manager or the manager no
/// override).
pub fn override_of(agents: &Agents, producer: &str, d: NaiveDate) -> Option<(String, Decimal)> {
    let manager = agents.get(producer)?.manager_id.clone()?;
    let pct = agents.override_on(&manager, d)?;
    Some((manager, pct))
}

pub fn calculate(input: &TermInput, schedules: &Schedules, agents: &Agents) -> Result<Calculation, CalcError> {
    let eff = input.effective_date;
    if let Some(exp) = input.expiration_date
        && exp <= eff
    {
        return Err(CalcError::InvalidTerm { effective: eff, expiration: exp });
    }
    let schedule =
        schedules.in_force(&input.carrier_id, &input.line_of_business, input.kind, eff).ok_or_else(|| {
            CalcError::NoSchedule {
                carrier: input.carrier_id.clone(),
                line: input.line_of_business.clone(),
                kind: input.kind.as_str(),
                date: eff,
            }
        })?;
    let agent = agents.get(&input.agent_id).ok_or_else(|| CalcError::UnknownAgent(input.agent_id.clone()))?;
    let split = agents.split_on(&agent.agent_id, eff);
    let over = override_of(agents, &agent.agent_id, eff);
    let rate = schedule.rate;
    let mut steps = Vec::new();
    let until = schedule.effective_to.map_or("open-ended".to_string(), |t| format!("until {t} exclusive"));
    steps.push(format!(
        "rate {}: the {} schedule of carrier {} for {} in force on {} (from {}, {})",
        fmt_rate(rate),
        input.kind.as_str(),
        input.carrier_id,
        input.line_of_business,
        eff,
        schedule.effective_from,
        until
    ));
    let commission = Amounts::split(input.premium, gross(input.premium, rate), split, over.as_ref().map(|o| o.1));
    steps.push(format!(
        "gross = round({} × {}) = {} (cents, half away from zero)",
        fmt_money(input.premium),
        fmt_rate(rate),
        fmt_money(commission.gross)
    ));
    push_shares(&mut steps, &agent.agent_id, split, over.as_ref(), &commission);
    let chargeback = match input.cancellation_date {
        None => None,
        Some(c) => {
            let exp = input.expiration_date.ok_or(CalcError::MissingExpiration)?;
            if c < eff || c > exp {
                return Err(CalcError::CancellationOutsideTerm { date: c, effective: eff, expiration: exp });
            }
            let term_days = (exp - eff).num_days();
            let unearned_days = (exp - c).num_days();
            let premium = unearned(input.premium, unearned_days, term_days);
            let cb_gross = unearned(commission.gross, unearned_days, term_days);
            let amounts = Amounts::split(premium, cb_gross, split, over.as_ref().map(|o| o.1));
            steps.push(format!(
                "cancelled on {c}: {unearned_days} of the term's {term_days} days ({eff} to {exp}) are unearned; \
                 chargeback = −round({} × {unearned_days} ÷ {term_days}) = {}, premium returned {}",
                fmt_money(commission.gross),
                fmt_money(cb_gross),
                fmt_money(premium)
            ));
            push_shares(&mut steps, &agent.agent_id, split, over.as_ref(), &amounts);
            Some(Chargeback { date: c, term_days, unearned_days, amounts })
        }
    };
    Ok(Calculation {
        rate,
        schedule_from: schedule.effective_from,
        schedule_to: schedule.effective_to,
        split_pct: split,
        manager_id: over.as_ref().map(|o| o.0.clone()),
        override_pct: over.map(|o| o.1),
        commission,
        chargeback,
        steps,
    })
}

fn push_shares(
    steps: &mut Vec<String>,
    agent: &str,
    split: Option<Decimal>,
    over: Option<&(String, Decimal)>,
    a: &Amounts,
) {
    match split {
        Some(s) => steps.push(format!(
            "producer {agent} = round({} × split {}) = {}; agency = {} − {} = {}",
            fmt_money(a.gross),
            fmt_rate(s),
            fmt_money(a.producer),
            fmt_money(a.gross),
            fmt_money(a.producer),
            fmt_money(a.agency)
        )),
        None => {
            steps.push(format!("producer {agent} has no split_pct: the agency keeps the whole {}", fmt_money(a.gross)))
        }
    }
    if let Some((manager, pct)) = over {
        steps.push(format!(
            "override to manager {manager} = round({} × {}) = {}, paid out of the agency's share: agency keeps {}",
            fmt_money(a.gross),
            fmt_rate(*pct),
            fmt_money(a.override_amount),
            fmt_money(a.agency_net)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commissions::fixtures::{agent, d, dec};
    use crate::commissions::schedules::ScheduleRow;

    fn s(a: Decimal) -> String {
        a.to_string()
    }

    /// K1 auto: new 12 % until 2024-03-01, 13 % from then; renewal 10 %.
    /// A1 (split 0.40) reports to M1 (override 0.03); A2 (split 0.35) has no manager.
    fn world() -> (Schedules, Agents) {
        let row = |kind, rate: &str, from: &str, to: Option<&str>| ScheduleRow {
            carrier_id: "K1".into(),
            line_of_business: "auto".into(),
            kind,
            rate: dec(rate),
            effective_from: d(from),
            effective_to: to.map(d),
        };
        let schedules = Schedules::new([
            row(TermKind::New, "0.12", "2023-01-01", Some("2024-03-01")),
            row(TermKind::New, "0.13", "2024-03-01", None),
            row(TermKind::Renewal, "0.10", "2023-01-01", None),
        ]);
        let agents = Agents::new(
            [
                agent("A1", Some("M1"), Some("0.40"), None),
                agent("A2", None, Some("0.35"), None),
                agent("M1", None, None, Some("0.03")),
            ],
            [],
        );
        (schedules, agents)
    }

    fn input(agent: &str, premium: &str, eff: &str) -> TermInput {
        TermInput {
            carrier_id: "K1".into(),
            line_of_business: "auto".into(),
            kind: TermKind::New,
            premium: dec(premium),
            effective_date: d(eff),
            expiration_date: None,
            agent_id: agent.into(),
            cancellation_date: None,
        }
    }

    #[test]
    fn the_day_a_new_rate_starts() {
        let (sch, ag) = world();
        // 1000.00 × 0.12 = 120.00 the day before, × 0.13 = 130.00 on the day.
        let before = calculate(&input("A2", "1000.00", "2024-02-29"), &sch, &ag).unwrap();
        assert_eq!((s(before.rate), s(before.commission.gross)), ("0.12".into(), "120.00".into()));
        let on = calculate(&input("A2", "1000.00", "2024-03-01"), &sch, &ag).unwrap();
        assert_eq!((s(on.rate), s(on.commission.gross)), ("0.13".into(), "130.00".into()));
        assert_eq!(on.schedule_from, d("2024-03-01"));
        let renewal = TermInput { kind: TermKind::Renewal, ..input("A2", "1000.00", "2024-03-01") };
        assert_eq!(s(calculate(&renewal, &sch, &ag).unwrap().commission.gross), "100.00");
        let early = calculate(&input("A2", "1000.00", "2022-12-31"), &sch, &ag).unwrap_err();
        assert_eq!(early.code(), "no_schedule");
    }

    #[test]
    fn split_and_override_out_of_the_agency_share() {
        let (sch, ag) = world();
        // 1234.56 × 0.13 = 160.4928 → 160.49; A1 40 % = 64.196 → 64.20; agency 96.29;
        // M1 3 % = 4.8147 → 4.81; agency keeps 96.29 − 4.81 = 91.48.
        let c = calculate(&input("A1", "1234.56", "2024-05-10"), &sch, &ag).unwrap();
        let a = c.commission;
        assert_eq!(
            [a.gross, a.producer, a.agency, a.override_amount, a.agency_net].map(s),
            ["160.49", "64.20", "96.29", "4.81", "91.48"]
        );
        assert_eq!(c.manager_id.as_deref(), Some("M1"));
        assert_eq!(a.gross, a.producer + a.agency);
        assert_eq!(c.steps.len(), 4, "{:#?}", c.steps);
        assert!(c.steps[3].contains("override to manager M1 = round(160.49 × 0.03) = 4.81"), "{}", c.steps[3]);
        // A2 has no manager: no override, the agency keeps its share.
        let c = calculate(&input("A2", "1234.56", "2024-05-10"), &sch, &ag).unwrap().commission;
        assert_eq!(
            [c.producer, c.agency, c.override_amount, c.agency_net].map(s),
            ["56.17", "104.32", "0.00", "104.32"]
        );
        assert_eq!(calculate(&input("Z9", "1.00", "2024-05-10"), &sch, &ag).unwrap_err().code(), "unknown_agent");
    }

    #[test]
    fn chargeback_on_the_first_and_the_last_day_of_a_term() {
        let (sch, ag) = world();
        let term = |cancel: &str| TermInput {
            expiration_date: Some(d("2025-01-01")),
            cancellation_date: Some(d(cancel)),
            ..input("A1", "1000.00", "2024-01-01")
        };
        // 2024 is a leap year: 366 days. Gross 120.00; A1 48.00; M1 3.60.
        let first = calculate(&term("2024-01-01"), &sch, &ag).unwrap().chargeback.unwrap();
        assert_eq!((first.term_days, first.unearned_days), (366, 366));
        let a = first.amounts;
        assert_eq!(
            [a.premium, a.gross, a.producer, a.agency, a.override_amount].map(s),
            ["-1000.00", "-120.00", "-48.00", "-72.00", "-3.60"]
        );
        // Last day: 1 day of 366 unearned: 120 / 366 = 0.3278… → −0.33; premium 2.7322… → −2.73;
        // producer −0.33 × 0.4 = −0.132 → −0.13; agency −0.20; override −0.0099 → −0.01.
        let last = calculate(&term("2024-12-31"), &sch, &ag).unwrap().chargeback.unwrap();
        assert_eq!(last.unearned_days, 1);
        let a = last.amounts;
        assert_eq!(
            [a.premium, a.gross, a.producer, a.agency, a.override_amount].map(s),
            ["-2.73", "-0.33", "-0.13", "-0.20", "-0.01"]
        );
        // Mid-term: 2024-07-01 leaves 184 of 366 days: 120 × 184 / 366 = 60.3278… → −60.33.
        let mid = calculate(&term("2024-07-01"), &sch, &ag).unwrap().chargeback.unwrap();
        assert_eq!(s(mid.amounts.gross), "-60.33");
        // On the expiration date nothing is unearned.
        assert_eq!(s(calculate(&term("2025-01-01"), &sch, &ag).unwrap().chargeback.unwrap().amounts.gross), "0.00");
        assert_eq!(calculate(&term("2023-12-31"), &sch, &ag).unwrap_err().code(), "invalid_cancellation");
        let no_exp = TermInput { expiration_date: None, ..term("2024-07-01") };
        assert_eq!(calculate(&no_exp, &sch, &ag).unwrap_err(), CalcError::MissingExpiration);
        let bad = TermInput { expiration_date: Some(d("2024-01-01")), ..input("A1", "1.00", "2024-01-01") };
        assert_eq!(calculate(&bad, &sch, &ag).unwrap_err().code(), "invalid_term");
    }

    #[test]
    fn negative_and_zero_premiums_and_half_cents() {
        let (sch, ag) = world();
        let c = calculate(&input("A1", "0.00", "2024-05-10"), &sch, &ag).unwrap().commission;
        assert_eq!([c.gross, c.producer, c.agency, c.override_amount].map(s), ["0.00", "0.00", "0.00", "0.00"]);
        // A return premium: −250.50 × 0.13 = −32.565 → −32.57 (half away from zero, like +32.57);
        // producer −13.028 → −13.03; agency −19.54; override −0.9771 → −0.98.
        let c = calculate(&input("A1", "-250.50", "2024-05-10"), &sch, &ag).unwrap().commission;
        assert_eq!(
            [c.gross, c.producer, c.agency, c.override_amount, c.agency_net].map(s),
            ["-32.57", "-13.03", "-19.54", "-0.98", "-18.56"]
        );
        let c = calculate(&input("A1", "250.50", "2024-05-10"), &sch, &ag).unwrap().commission;
        assert_eq!(s(c.gross), "32.57");
        // 101.25 × 0.12 = 12.15 exactly; × 0.35 = 4.2525 → 4.25 (below the half cent).
        let c = calculate(&input("A2", "101.25", "2024-01-10"), &sch, &ag).unwrap().commission;
        assert_eq!([c.gross, c.producer].map(s), ["12.15", "4.25"]);
        // 12.50 × 0.13 = 1.625 → 1.63 (the half cent goes up); × 0.35 = 0.5705 → 0.57.
        let c = calculate(&input("A2", "12.50", "2024-05-10"), &sch, &ag).unwrap().commission;
        assert_eq!([c.gross, c.producer, c.agency].map(s), ["1.63", "0.57", "1.06"]);
    }
}
