//! Carrier policy numbers and monthly carrier commission statements, with
//! planted reconciliation discrepancies (the truth goes to
//! `truth/statement_discrepancies.csv`).

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::generate::book::Tenant;
use crate::generate::catalog::{CarrierSpec, FIRST_NAMES, LAST_NAMES};
use crate::generate::commissions::{self, CommRec, Kind, cents, dec, rate_dec, round2};
use crate::generate::rng::Rng;

/// Per paid statement line: probability that the carrier left it off.
pub const MISSING_RATE: f64 = 0.004;
/// ... paid less than the commission (incl. new business at the renewal rate).
pub const UNDERPAID_RATE: f64 = 0.005;
/// ... paid more than the commission.
pub const OVERPAID_RATE: f64 = 0.002;
/// ... printed the line twice (download plus manual entry).
pub const DUPLICATE_RATE: f64 = 0.003;
/// ... followed by a line for a policy the agency does not have.
pub const UNEXPECTED_RATE: f64 = 0.001;

/// The carrier's own policy number of a term (as on the `policies` row).
pub fn own_number(spec: &CarrierSpec, number: u64, term_no: u16) -> String {
    let f = &spec.format;
    let width = f.digits as usize;
    let mut s = String::with_capacity(24);
    s.push_str(f.prefix);
    if !f.prefix.is_empty() {
        s.push_str(f.sep);
    }
    s.push_str(&format!("{number:0width$}"));
    if f.term_suffix {
        s.push_str(f.sep);
        s.push_str(&format!("{term_no:02}"));
    }
    s
}

/// The same number as the carrier prints it on statements (case, separators
/// and leading zeros differ).
pub fn statement_number(spec: &CarrierSpec, number: u64, term_no: u16) -> String {
    let f = &spec.format;
    let st = &spec.statement;
    let width = f.digits as usize;
    let mut s = String::with_capacity(24);
    if st.lower {
        s.push_str(&f.prefix.to_lowercase());
    } else {
        s.push_str(f.prefix);
    }
    if !f.prefix.is_empty() {
        s.push_str(st.sep);
    }
    if st.strip_zeros {
        s.push_str(&number.to_string());
    } else {
        s.push_str(&format!("{number:0width$}"));
    }
    if f.term_suffix {
        s.push_str(st.sep);
        s.push_str(&format!("{term_no:02}"));
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disc {
    Missing,
    Underpaid,
    Overpaid,
    Duplicate,
    Unexpected,
}

impl Disc {
    pub const ALL: [Disc; 5] = [Disc::Missing, Disc::Underpaid, Disc::Overpaid, Disc::Duplicate, Disc::Unexpected];

    pub fn as_str(self) -> &'static str {
        match self {
            Disc::Missing => "missing",
            Disc::Underpaid => "underpaid",
            Disc::Overpaid => "overpaid",
            Disc::Duplicate => "duplicate",
            Disc::Unexpected => "unexpected",
        }
    }
}

/// What a statement line is about.
#[derive(Clone, Copy, Debug)]
pub enum Subject {
    /// A commission row (index into the sorted commission vector).
    Commission(u32),
    /// A policy number the agency does not have, and an insured name.
    Unknown { number: u64, first: u16, last: u16 },
}

#[derive(Clone, Debug)]
pub struct StmtLine {
    pub statement_date: NaiveDate,
    pub tenant: u16,
    pub carrier: u16,
    pub seq: u32,
    /// First day of the statement's period.
    pub period: NaiveDate,
    pub subject: Subject,
    pub amount: i64,
    pub premium: i64,
    pub kind: Kind,
    pub disc: Option<Disc>,
    /// Commission the agency expected (for the truth).
    pub expected: i64,
}

impl StmtLine {
    /// A `Missing` line exists only in the truth, not on the statement.
    pub fn is_printed(&self) -> bool {
        self.disc != Some(Disc::Missing)
    }
}

pub fn statement_id(carrier_id: &str, period: NaiveDate) -> String {
    format!("ST-{carrier_id}-{:04}-{:02}", period.year(), period.month())
}

fn month_start(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid")
}

/// Builds every statement line, sorted by (statement date, tenant, carrier,
/// order on the statement).
pub fn build(tenants: &[Tenant], comms: &[CommRec], seed: u64) -> Vec<StmtLine> {
    let mut rng = Rng::stream(seed, "statements", 0);
    let mut cand: Vec<u32> = (0..comms.len() as u32).filter(|&i| comms[i as usize].on_statement).collect();
    cand.sort_by_key(|&i| {
        let c = &comms[i as usize];
        (c.tenant, c.carrier, month_start(c.date), i)
    });
    let mut next_unknown: Vec<Vec<u64>> =
        tenants.iter().map(|t| t.carriers.iter().map(|c| c.max_number + 1000).collect()).collect();
    let mut lines: Vec<StmtLine> = Vec::with_capacity(cand.len() + cand.len() / 50);
    for &i in &cand {
        let c = &comms[i as usize];
        let t = &tenants[c.tenant as usize];
        let spec = t.carriers[c.carrier as usize].spec;
        let period = month_start(c.date);
        let sdate = commissions::statement_date(c.date, spec.statement_day);
        let base = StmtLine {
            statement_date: sdate,
            tenant: c.tenant,
            carrier: c.carrier,
            seq: lines.len() as u32,
            period,
            subject: Subject::Commission(i),
            amount: c.gross,
            premium: c.premium,
            kind: c.kind,
            disc: None,
            expected: c.gross,
        };
        let r = rng.f64();
        let positive = c.gross >= 100;
        let mut line = base.clone();
        if r < MISSING_RATE {
            line.disc = Some(Disc::Missing);
        } else if r < MISSING_RATE + UNDERPAID_RATE && positive {
            let p = &t.policies[c.policy as usize];
            let at_renewal_rate = if c.kind == Kind::New {
                let rr = rate_dec(t.rate_on(c.carrier, p.line, true, p.eff));
                cents(round2(dec(c.premium) * rr))
            } else {
                0
            };
            line.amount = if at_renewal_rate > 0 && at_renewal_rate < c.gross {
                at_renewal_rate
            } else {
                let pct = Decimal::new(rng.range_i64(50, 95), 2);
                cents(round2(dec(c.gross) * pct))
            };
            line.disc = Some(Disc::Underpaid);
        } else if r < MISSING_RATE + UNDERPAID_RATE + OVERPAID_RATE && positive {
            let pct = Decimal::new(rng.range_i64(105, 150), 2);
            line.amount = cents(round2(dec(c.gross) * pct)).max(c.gross + 1);
            line.disc = Some(Disc::Overpaid);
        }
        let duplicate = line.disc.is_none() && rng.chance(DUPLICATE_RATE);
        lines.push(line);
        if duplicate {
            let mut d = base.clone();
            d.seq = lines.len() as u32;
            d.disc = Some(Disc::Duplicate);
            lines.push(d);
        }
        if rng.chance(UNEXPECTED_RATE) {
            let n = &mut next_unknown[c.tenant as usize][c.carrier as usize];
            *n += 1 + rng.below(5);
            let premium = rng.range_i64(20_000, 300_000);
            let amount = cents(round2(dec(premium) * Decimal::new(rng.range_i64(8, 15), 2)));
            lines.push(StmtLine {
                seq: lines.len() as u32,
                subject: Subject::Unknown {
                    number: *n,
                    first: rng.index(FIRST_NAMES.len()) as u16,
                    last: rng.index(LAST_NAMES.len()) as u16,
                },
                amount,
                premium,
                kind: Kind::New,
                disc: Some(Disc::Unexpected),
                expected: 0,
                ..base
            });
        }
    }
    lines.sort_unstable_by_key(|l| (l.statement_date, l.tenant, l.carrier, l.seq));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::catalog::CARRIERS;

    #[test]
    fn statement_numbers_differ_from_own_numbers() {
        let nbm = &CARRIERS[0];
        assert_eq!(own_number(nbm, 12345, 2), "NBM-0012345-02");
        assert_eq!(statement_number(nbm, 12345, 2), "nbm 12345 02");
        let copper = CARRIERS.iter().find(|c| c.format.prefix.is_empty()).unwrap();
        assert_eq!(own_number(copper, 512_345_678, 1), "0512345678");
        assert_eq!(statement_number(copper, 512_345_678, 1), "512345678");
        for spec in CARRIERS {
            let n = 10u64.pow(spec.format.digits - 2) + 17;
            assert_ne!(own_number(spec, n, 3), statement_number(spec, n, 3), "{}", spec.name);
        }
    }
}
