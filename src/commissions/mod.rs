//! The commission engine (issue 12): what every policy should pay, to the
//! cent, and whether the carriers paid it.
//!
//! - `money`: the rounding rule (cents, half away from zero);
//! - `schedules`: effective-dated rates, splits and overrides;
//! - `calc`: one term's commission, split, override and chargeback, explained;
//! - `audit`: booked rows that disagree with the schedules and splits;
//! - `normalize`: policy numbers as carriers print them;
//! - `reconcile`: statement lines against booked rows, classified;
//! - `accounting`: journal entries and producer statements of a month;
//! - `upload`: carrier statements as CSV, mapped per carrier;
//! - `columns`: the engine's batches read as one column without a copy;
//! - `load` reads a tenant's view, `store` writes and reads the engine's
//!   own lake tables.
//!
//! Rules, conventions and sources: `docs/commissions.md`.

pub mod accounting;
pub mod audit;
pub mod calc;
pub mod columns;
#[cfg(test)]
mod fixtures;
pub mod load;
pub mod money;
pub mod normalize;
pub mod reconcile;
pub mod schedules;
pub mod store;
pub mod upload;

use std::time::Instant;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::lake::Location;
use crate::lake::catalog::{DISCREPANCIES, RECONCILIATIONS};
use load::Scope;
use reconcile::{Options, Outcome};
use store::{Actor, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommissionError {
    #[error("reading the tenant's commission data")]
    Read(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the time of a reconciliation went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    pub read_ms: u64,
    pub match_ms: u64,
    pub write_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciled {
    pub run_id: String,
    /// The lake version holding the results (`None` when nothing was reconciled).
    pub version: Option<u64>,
    pub tolerance: Decimal,
    pub statement_lines: u64,
    /// Booked rows of the statements reconciled.
    pub booked_rows: u64,
    pub timings: Timings,
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Reconcile the statements of `scope` in the tenant's view and store the
/// run (`reconciliations`, `discrepancies`) in the lake.
pub async fn reconcile_and_store(
    lake: &Location,
    session: &SessionContext,
    tenant: &str,
    scope: &Scope,
    tolerance_cents: i128,
    actor: &Actor,
) -> Result<Reconciled, CommissionError> {
    let started = Instant::now();
    // The three reads overlap: each is partly serial (planning, concatenating).
    let (lines, booked, schedules) =
        futures::try_join!(load::lines(session, scope), load::booked(session, scope), load::schedules(session))?;
    let statements = load::statements_of(&lines, scope);
    let read_ms = ms(started);
    let started = Instant::now();
    let outcome = reconcile::reconcile(&lines, &booked, &schedules, &Options { tolerance_cents }, Some(&statements));
    let match_ms = ms(started);
    let started = Instant::now();
    let run_id = store::new_id("rec-");
    let tolerance = money::from_units(tolerance_cents, 2);
    let version = if outcome.periods.is_empty() {
        None
    } else {
        let batches = vec![
            (RECONCILIATIONS, store::reconciliations_batch(tenant, &run_id, actor, tolerance, &outcome.periods)?),
            (DISCREPANCIES, store::discrepancies_batch(tenant, &run_id, &outcome.discrepancies)?),
        ];
        Some(store::append(lake, tenant, &run_id, batches).await?)
    };
    Ok(Reconciled {
        run_id,
        version,
        tolerance,
        statement_lines: lines.line_id.len() as u64,
        booked_rows: outcome.periods.iter().map(|p| p.booked_rows).sum(),
        timings: Timings { read_ms, match_ms, write_ms: ms(started) },
        outcome,
    })
}

/// Audit the tenant's booked rows (optionally of one carrier and a date range).
pub async fn audit_booked(
    session: &SessionContext,
    filter: &load::RowFilter,
) -> Result<audit::AuditReport, CommissionError> {
    let rows = load::commission_rows(session, filter).await?;
    let ids: std::collections::BTreeSet<String> = rows.iter().map(|r| r.policy_id.clone()).collect();
    let policies =
        load::policies(session, (filter.carrier_id.is_some() || filter.from.is_some()).then_some(&ids)).await?;
    let schedules = load::schedules(session).await?;
    let agents = load::agents(session).await?;
    Ok(audit::audit(&rows, &policies, &schedules, &agents))
}

/// The journal entries of a period (`YYYY-MM`).
pub async fn accounting_export(
    session: &SessionContext,
    period: &str,
) -> Result<Option<Vec<accounting::JournalEntry>>, CommissionError> {
    let Some((from, to)) = reconcile::period_bounds(period) else { return Ok(None) };
    let filter = load::RowFilter { from: Some(from), to: Some(to), ..Default::default() };
    let rows = load::commission_rows(session, &filter).await?;
    let ids = rows.iter().map(|r| r.policy_id.clone()).collect();
    let policies = load::policies(session, Some(&ids)).await?;
    let last_day = to.pred_opt().unwrap_or(from);
    Ok(Some(accounting::journal(period, last_day, &rows, &policies)))
}

/// An agent's statement of a period (`YYYY-MM`).
pub async fn producer_statement(
    session: &SessionContext,
    agent_id: &str,
    period: &str,
) -> Result<Option<accounting::ProducerStatement>, CommissionError> {
    let Some((from, to)) = reconcile::period_bounds(period) else { return Ok(None) };
    let filter =
        load::RowFilter { from: Some(from), to: Some(to), agent_id: Some(agent_id.to_string()), ..Default::default() };
    let rows = load::commission_rows(session, &filter).await?;
    let ids = rows.iter().map(|r| r.policy_id.clone()).collect();
    let policies = load::policies(session, Some(&ids)).await?;
    Ok(Some(accounting::producer_statement(agent_id, period, &rows, &policies)))
}

/// Carrier rows still `expected` (or without a status) whose payment was
/// due before `as_of`: the carrier's statement for the row's month comes
/// in the next month, so a row is due `due_days` after the end of its month.
pub async fn pending(
    session: &SessionContext,
    as_of: NaiveDate,
    due_days: i64,
    carrier_id: Option<String>,
) -> Result<Vec<(load::CommissionRow, NaiveDate)>, CommissionError> {
    let filter = load::RowFilter { carrier_id, to: Some(as_of), ..Default::default() };
    let rows = load::commission_rows(session, &filter).await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.kind != "override" && r.status.as_deref() != Some("paid"))
        .filter_map(|r| {
            let due = due_date(r.transaction_date, due_days);
            (due < as_of).then_some((r, due))
        })
        .collect())
}

/// The end of the row's month plus `due_days`.
pub fn due_date(transaction_date: NaiveDate, due_days: i64) -> NaiveDate {
    use chrono::Datelike;
    let first = NaiveDate::from_ymd_opt(transaction_date.year(), transaction_date.month(), 1).expect("valid");
    let next = first + chrono::Months::new(1);
    next + chrono::Duration::days(due_days - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_due_a_set_number_of_days_after_its_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // 45 days after the end of March: the month ends 2024-03-31, due 2024-05-15.
        assert_eq!(due_date(d("2024-03-05"), 45), d("2024-05-15"));
        assert_eq!(due_date(d("2024-12-31"), 1), d("2025-01-01"));
    }
}
