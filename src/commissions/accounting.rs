//! Month close: journal entries per agency for a period, and producer
//! statements.
//!
//! Accrual basis, by `transaction_date`: every commission row of the
//! period counts for its policy's agency. One journal entry per agency,
//! made of balanced pairs (so debits equal credits to the cent by
//! construction, and a test checks it on every period of the demo data):
//!
//! | pair | debit | credit | amount |
//! |---|---|---|---|
//! | commission income | 1200 Commissions Receivable | 4000 Commission Income | gross of new, renewal and adjustment rows |
//! | chargeback reversals | 4000 Commission Income | 1200 Commissions Receivable | −gross of chargeback rows |
//! | producer payable | 5000 Producer Commission Expense | 2100 Producer Commissions Payable | producers' share of non-chargeback rows |
//! | producer chargebacks | 2100 Producer Commissions Payable | 5000 Producer Commission Expense | −producers' share of chargebacks |
//! | override payable | 5100 Override Expense | 2110 Override Payable | overrides of non-chargeback rows |
//! | override chargebacks | 2110 Override Payable | 5100 Override Expense | −overrides of chargebacks |
//!
//! A pair whose sum is negative (e.g. a month of net negative adjustments)
//! swaps its sides; a zero pair is left out.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::load::{CommissionRow, PolicyTerm};
use super::money::{fmt_money, round_cents};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Account {
    pub code: &'static str,
    pub name: &'static str,
}

pub const RECEIVABLE: Account = Account { code: "1200", name: "Commissions Receivable" };
pub const INCOME: Account = Account { code: "4000", name: "Commission Income" };
pub const PRODUCER_EXPENSE: Account = Account { code: "5000", name: "Producer Commission Expense" };
pub const PRODUCER_PAYABLE: Account = Account { code: "2100", name: "Producer Commissions Payable" };
pub const OVERRIDE_EXPENSE: Account = Account { code: "5100", name: "Override Expense" };
pub const OVERRIDE_PAYABLE: Account = Account { code: "2110", name: "Override Payable" };

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalLine {
    pub account: Account,
    pub debit: Decimal,
    pub credit: Decimal,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// `<period>-<agency>`.
    pub journal_no: String,
    pub agency_id: String,
    /// The last day of the period.
    pub date: NaiveDate,
    pub lines: Vec<JournalLine>,
    pub total_debits: Decimal,
    pub total_credits: Decimal,
}

#[derive(Default)]
struct Sums {
    income: Decimal,
    chargebacks: Decimal,
    producer: Decimal,
    producer_cb: Decimal,
    overrides: Decimal,
    override_cb: Decimal,
}

/// The journal entries of `period` (`YYYY-MM`, whose last day is `date`)
/// from the period's commission rows, one per agency, sorted by agency.
/// Rows whose policy is unknown count for agency `""`.
pub fn journal(
    period: &str,
    date: NaiveDate,
    rows: &[CommissionRow],
    policies: &HashMap<String, PolicyTerm>,
) -> Vec<JournalEntry> {
    let mut by_agency: BTreeMap<String, Sums> = BTreeMap::new();
    // An override row belongs to a chargeback when its own amount is negative.
    for r in rows {
        let agency = policies.get(&r.policy_id).map(|p| p.agency_id.clone()).unwrap_or_default();
        let s = by_agency.entry(agency).or_default();
        match r.kind.as_str() {
            "chargeback" => {
                s.chargebacks -= r.gross_commission;
                s.producer_cb -= r.agent_commission;
            }
            "override" if r.agent_commission < Decimal::ZERO => s.override_cb -= r.agent_commission,
            "override" => s.overrides += r.agent_commission,
            _ => {
                s.income += r.gross_commission;
                s.producer += r.agent_commission;
            }
        }
    }
    by_agency
        .into_iter()
        .map(|(agency, s)| {
            let mut lines = Vec::new();
            let mut pair = |dr: Account, cr: Account, amount: Decimal, what: &str| {
                let amount = round_cents(amount);
                if amount.is_zero() {
                    return;
                }
                let (dr, cr, amount) = if amount > Decimal::ZERO { (dr, cr, amount) } else { (cr, dr, -amount) };
                let zero = round_cents(Decimal::ZERO);
                let description = format!("{what} {period}");
                lines.push(JournalLine { account: dr, debit: amount, credit: zero, description: description.clone() });
                lines.push(JournalLine { account: cr, debit: zero, credit: amount, description });
            };
            pair(RECEIVABLE, INCOME, s.income, "commission income");
            pair(INCOME, RECEIVABLE, s.chargebacks, "chargeback reversals");
            pair(PRODUCER_EXPENSE, PRODUCER_PAYABLE, s.producer, "producer commissions");
            pair(PRODUCER_PAYABLE, PRODUCER_EXPENSE, s.producer_cb, "producer chargebacks");
            pair(OVERRIDE_EXPENSE, OVERRIDE_PAYABLE, s.overrides, "manager overrides");
            pair(OVERRIDE_PAYABLE, OVERRIDE_EXPENSE, s.override_cb, "override chargebacks");
            let total_debits = lines.iter().map(|l| l.debit).sum();
            let total_credits = lines.iter().map(|l| l.credit).sum();
            JournalEntry {
                journal_no: if agency.is_empty() { period.to_string() } else { format!("{period}-{agency}") },
                agency_id: agency,
                date,
                lines,
                total_debits,
                total_credits,
            }
        })
        .collect()
}

/// QuickBooks Online's journal entry import: one line per account line,
/// lines of one entry sharing `JournalNo` (see `docs/commissions.md`).
pub const QBO_COLUMNS: [&str; 7] =
    ["JournalNo", "JournalDate", "AccountName", "Debits", "Credits", "Description", "Name"];
/// Xero's manual journal import: `Amount` positive for a debit, negative
/// for a credit; lines of one journal share `Narration` and `Date`.
pub const XERO_COLUMNS: [&str; 6] = ["Narration", "Date", "Description", "AccountCode", "TaxRate", "Amount"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvLayout {
    QuickBooks,
    Xero,
}

pub fn csv(entries: &[JournalEntry], layout: CsvLayout) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    match layout {
        CsvLayout::QuickBooks => {
            w.write_record(QBO_COLUMNS)?;
            for e in entries {
                for l in &e.lines {
                    let (dr, cr) = (money_or_empty(l.debit), money_or_empty(l.credit));
                    let date = e.date.format("%m/%d/%Y").to_string();
                    w.write_record([
                        e.journal_no.as_str(),
                        date.as_str(),
                        l.account.name,
                        dr.as_str(),
                        cr.as_str(),
                        l.description.as_str(),
                        e.agency_id.as_str(),
                    ])?;
                }
            }
        }
        CsvLayout::Xero => {
            w.write_record(XERO_COLUMNS)?;
            for e in entries {
                for l in &e.lines {
                    let amount = fmt_money(l.debit - l.credit);
                    let date = e.date.format("%d/%m/%Y").to_string();
                    let narration = format!("Commissions {}", e.journal_no);
                    w.write_record([
                        narration.as_str(),
                        date.as_str(),
                        l.description.as_str(),
                        l.account.code,
                        "No GST",
                        amount.as_str(),
                    ])?;
                }
            }
        }
    }
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 text"))
}

fn money_or_empty(d: Decimal) -> String {
    if d.is_zero() { String::new() } else { fmt_money(d) }
}

/// One line of a producer statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    pub commission_id: String,
    pub policy_id: String,
    pub policy_number: Option<String>,
    pub transaction_date: NaiveDate,
    pub kind: String,
    pub premium_amount: Decimal,
    pub gross_commission: Decimal,
    /// The agent's amount: split share, chargeback, or override.
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerStatement {
    pub agent_id: String,
    pub period: String,
    pub lines: Vec<StatementLine>,
    /// Shares of new, renewal and adjustment rows.
    pub commissions: Decimal,
    /// Shares given back on cancellations (negative).
    pub chargebacks: Decimal,
    /// Overrides earned as a manager (chargebacks of overrides included).
    pub overrides: Decimal,
    pub total: Decimal,
}

/// The agent's rows of the period (`rows` already filtered to the agent).
pub fn producer_statement(
    agent_id: &str,
    period: &str,
    rows: &[CommissionRow],
    policies: &HashMap<String, PolicyTerm>,
) -> ProducerStatement {
    let zero = round_cents(Decimal::ZERO);
    let (mut commissions, mut chargebacks, mut overrides) = (zero, zero, zero);
    let lines = rows
        .iter()
        .filter(|r| r.agent_id == agent_id)
        .map(|r| {
            match r.kind.as_str() {
                "chargeback" => chargebacks += r.agent_commission,
                "override" => overrides += r.agent_commission,
                _ => commissions += r.agent_commission,
            }
            StatementLine {
                commission_id: r.commission_id.clone(),
                policy_id: r.policy_id.clone(),
                policy_number: policies.get(&r.policy_id).map(|p| p.policy_number.clone()),
                transaction_date: r.transaction_date,
                kind: r.kind.clone(),
                premium_amount: r.premium_amount,
                gross_commission: r.gross_commission,
                amount: r.agent_commission,
            }
        })
        .collect();
    ProducerStatement {
        agent_id: agent_id.to_string(),
        period: period.to_string(),
        lines,
        commissions,
        chargebacks,
        overrides,
        total: commissions + chargebacks + overrides,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commissions::fixtures::{d, dec};

    fn row(id: &str, policy: &str, agent: &str, kind: &str, g: &str, a: &str, ag: &str) -> CommissionRow {
        CommissionRow {
            commission_id: id.into(),
            policy_id: policy.into(),
            agent_id: agent.into(),
            carrier_id: "K1".into(),
            transaction_date: d("2024-06-01"),
            kind: kind.into(),
            premium_amount: dec("0.00"),
            commission_rate: dec("0.15"),
            gross_commission: dec(g),
            agent_commission: dec(a),
            agency_commission: dec(ag),
            status: None,
            paid_date: None,
            statement_id: None,
        }
    }
    fn policy(id: &str, agency: &str) -> (String, PolicyTerm) {
        let p = PolicyTerm {
            policy_id: id.into(),
            policy_number: format!("N-{id}"),
            agency_id: agency.into(),
            agent_id: "A1".into(),
            carrier_id: "K1".into(),
            line_of_business: "auto".into(),
            effective_date: d("2024-01-01"),
            expiration_date: d("2025-01-01"),
            premium: dec("1000.00"),
            cancellation_date: None,
            renewal_of: None,
        };
        (id.to_string(), p)
    }

    #[test]
    fn journal_entries_balance_per_agency_and_export_as_qbo_and_xero() {
        let policies = HashMap::from([policy("P1", "G1"), policy("P2", "G1"), policy("P3", "G2")]);
        let rows = vec![
            row("C1", "P1", "A1", "new", "225.00", "90.00", "135.00"),
            row("C2", "P1", "M1", "override", "0.00", "6.75", "-6.75"),
            row("C3", "P2", "A1", "chargeback", "-168.29", "-67.32", "-100.97"),
            row("C4", "P2", "M1", "override", "0.00", "-5.05", "5.05"),
            row("C5", "P3", "A3", "adjustment", "-12.00", "-4.80", "-7.20"),
        ];
        let entries = journal("2024-06", d("2024-06-30"), &rows, &policies);
        assert_eq!(entries.len(), 2);
        let g1 = &entries[0];
        let lines: Vec<(&str, String, String)> =
            g1.lines.iter().map(|l| (l.account.code, l.debit.to_string(), l.credit.to_string())).collect();
        let l = |c: &'static str, dr: &str, cr: &str| (c, dr.to_string(), cr.to_string());
        assert_eq!(
            lines,
            vec![
                l("1200", "225.00", "0.00"),
                l("4000", "0.00", "225.00"),
                l("4000", "168.29", "0.00"),
                l("1200", "0.00", "168.29"),
                l("5000", "90.00", "0.00"),
                l("2100", "0.00", "90.00"),
                l("2100", "67.32", "0.00"),
                l("5000", "0.00", "67.32"),
                l("5100", "6.75", "0.00"),
                l("2110", "0.00", "6.75"),
                l("2110", "5.05", "0.00"),
                l("5100", "0.00", "5.05"),
            ]
        );
        assert_eq!((g1.total_debits.to_string(), g1.total_credits.to_string()), ("562.41".into(), "562.41".into()));
        // G2: a negative adjustment swaps the income pair's sides.
        let g2 = &entries[1];
        assert_eq!(g2.lines[0].account, INCOME);
        assert_eq!(g2.lines[0].debit.to_string(), "12.00");
        assert_eq!(g2.total_debits, g2.total_credits);
        let qbo = csv(&entries[1..], CsvLayout::QuickBooks).unwrap();
        assert_eq!(
            qbo,
            "JournalNo,JournalDate,AccountName,Debits,Credits,Description,Name\n\
             2024-06-G2,06/30/2024,Commission Income,12.00,,commission income 2024-06,G2\n\
             2024-06-G2,06/30/2024,Commissions Receivable,,12.00,commission income 2024-06,G2\n\
             2024-06-G2,06/30/2024,Producer Commissions Payable,4.80,,producer commissions 2024-06,G2\n\
             2024-06-G2,06/30/2024,Producer Commission Expense,,4.80,producer commissions 2024-06,G2\n"
        );
        let xero = csv(&entries[1..2], CsvLayout::Xero).unwrap();
        assert!(xero.starts_with("Narration,Date,Description,AccountCode,TaxRate,Amount\nCommissions 2024-06-G2,30/06/2024,commission income 2024-06,4000,No GST,12.00\n"), "{xero}");
        assert!(xero.contains(",1200,No GST,-12.00\n"), "{xero}");

        let st = producer_statement("M1", "2024-06", &rows, &policies);
        assert_eq!(st.lines.len(), 2);
        assert_eq!(
            [st.commissions, st.chargebacks, st.overrides, st.total].map(|x| x.to_string()),
            ["0.00", "0.00", "1.70", "1.70"]
        );
        let st = producer_statement("A1", "2024-06", &rows, &policies);
        assert_eq!([st.commissions, st.chargebacks, st.total].map(|x| x.to_string()), ["90.00", "-67.32", "22.68"]);
        assert_eq!(st.lines[0].policy_number.as_deref(), Some("N-P1"));
    }
}
