//! The commission engine's part of the API: calculation, schedules and
//! splits, pending payments, the audit of booked rows, reconciliation and
//! its discrepancies, month close. Reads go through the caller's tenant
//! view; every mutation needs `commissions:write`, writes only the caller's
//! tenant and is logged with who and when (`commission_changes`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, InputValueError, InputValueResult, Object, Result, Scalar,
    ScalarType, SimpleObject, Value,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;

use super::errors::{Code, bad_input, error, internal, not_found};
use super::scalars::{Date, Money};
use super::view;
use crate::auth::{COMMISSIONS_WRITE, Principal};
use crate::commissions::accounting::{self, CsvLayout};
use crate::commissions::calc::{self, CalcError, TermInput};
use crate::commissions::load::{self, RowFilter, Scope};
use crate::commissions::money::{fmt_money, fmt_rate};
use crate::commissions::reconcile::{self, DiscrepancyType as Dt};
use crate::commissions::schedules::{Agents, Schedules, TermKind};
use crate::commissions::store::{self, Actor, Change};
use crate::commissions::upload;
use crate::commissions::{self as engine};
use crate::contract::values::{parse_decimal, parse_month};
use crate::contract::{RATE_PRECISION, RATE_SCALE};
use crate::lake::Location;
use crate::lake::catalog::{AGENT_SPLITS, COMMISSION_CHANGES};
use crate::pipelines::stream::Stream;

/// Most inputs of one `calculateCommissions`.
pub const MAX_BULK: usize = 5_000;
/// Most commission ids of one `markCommissionsPaid`.
pub const MAX_MARK: usize = 5_000;

/// What the commission mutations write with: the lake, and the streaming
/// writer for contract rows (absent when a pinned version is served).
#[derive(Clone)]
pub struct CommissionWriter {
    pub lake: Location,
    pub stream: Option<Arc<Stream>>,
    /// The ingest doors' backlog limits (requests, bytes) beyond which an
    /// upload is refused with `RATE_LIMITED`, as they are.
    pub max_backlog: (u64, u64),
}

/// A rate or percentage: a decimal fraction with at most 6 fraction digits
/// as a string, e.g. "0.125" (12.5 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub Decimal);

#[Scalar(name = "Rate")]
impl ScalarType for Rate {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => parse_decimal(s.trim(), RATE_SCALE as u32, RATE_PRECISION as u32)
                .map(|m| Rate(Decimal::from_i128_with_scale(m, RATE_SCALE as u32).normalize()))
                .map_err(|_| InputValueError::custom("expected a decimal string with at most 6 fraction digits")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(fmt_rate(self.0))
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    New,
    Renewal,
}

impl From<ScheduleKind> for TermKind {
    fn from(k: ScheduleKind) -> Self {
        match k {
            ScheduleKind::New => TermKind::New,
            ScheduleKind::Renewal => TermKind::Renewal,
        }
    }
}

impl From<TermKind> for ScheduleKind {
    fn from(k: TermKind) -> Self {
        match k {
            TermKind::New => ScheduleKind::New,
            TermKind::Renewal => ScheduleKind::Renewal,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::commissions::reconcile::DiscrepancyType")]
pub enum DiscrepancyType {
    Missing,
    Underpaid,
    Overpaid,
    Duplicate,
    Unexpected,
    RateMismatch,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscrepancyStatus {
    Open,
    Resolved,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalLayout {
    /// QuickBooks Online journal entry import.
    Quickbooks,
    /// Xero manual journal import.
    Xero,
}

/// A policy term to calculate.
#[derive(InputObject, Debug, Clone)]
pub struct CommissionInput {
    pub carrier_id: ID,
    pub line_of_business: String,
    pub kind: ScheduleKind,
    pub premium: Money,
    pub effective_date: Date,
    /// Needed for a cancellation.
    pub expiration_date: Option<Date>,
    /// The producer.
    pub agent_id: ID,
    pub cancellation_date: Option<Date>,
}

impl CommissionInput {
    fn term(&self) -> TermInput {
        TermInput {
            carrier_id: self.carrier_id.0.clone(),
            line_of_business: self.line_of_business.trim().to_string(),
            kind: self.kind.into(),
            premium: self.premium.0,
            effective_date: self.effective_date.0,
            expiration_date: self.expiration_date.map(|d| d.0),
            agent_id: self.agent_id.0.clone(),
            cancellation_date: self.cancellation_date.map(|d| d.0),
        }
    }
}

/// The figures of one commission row.
#[derive(SimpleObject, Debug, Clone)]
pub struct CommissionAmounts {
    pub premium: Money,
    pub gross: Money,
    /// The producer's share.
    pub producer: Money,
    /// gross − producer (the row's `agency_commission`).
    pub agency: Money,
    /// The manager's override, paid out of the agency's share.
    pub override_amount: Money,
    /// What the agency keeps: agency − override.
    pub agency_net: Money,
}

impl From<&calc::Amounts> for CommissionAmounts {
    fn from(a: &calc::Amounts) -> Self {
        CommissionAmounts {
            premium: Money(a.premium),
            gross: Money(a.gross),
            producer: Money(a.producer),
            agency: Money(a.agency),
            override_amount: Money(a.override_amount),
            agency_net: Money(a.agency_net),
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Chargeback {
    pub date: Date,
    pub term_days: i32,
    pub unearned_days: i32,
    pub amounts: CommissionAmounts,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct CommissionCalculation {
    pub rate: Rate,
    pub schedule_effective_from: Date,
    pub schedule_effective_to: Option<Date>,
    pub split_pct: Option<Rate>,
    pub manager_id: Option<ID>,
    pub override_pct: Option<Rate>,
    pub commission: CommissionAmounts,
    pub chargeback: Option<Chargeback>,
    /// Each step of the calculation in words.
    pub explanation: Vec<String>,
}

impl From<calc::Calculation> for CommissionCalculation {
    fn from(c: calc::Calculation) -> Self {
        CommissionCalculation {
            rate: Rate(c.rate),
            schedule_effective_from: Date(c.schedule_from),
            schedule_effective_to: c.schedule_to.map(Date),
            split_pct: c.split_pct.map(Rate),
            manager_id: c.manager_id.map(ID),
            override_pct: c.override_pct.map(Rate),
            commission: (&c.commission).into(),
            chargeback: c.chargeback.map(|cb| Chargeback {
                date: Date(cb.date),
                term_days: cb.term_days as i32,
                unearned_days: cb.unearned_days as i32,
                amounts: (&cb.amounts).into(),
            }),
            explanation: c.steps,
        }
    }
}

/// Why one input of a bulk calculation failed: `code` is stable
/// (`no_schedule`, `unknown_agent`, `invalid_term`, `invalid_cancellation`).
#[derive(SimpleObject, Debug, Clone)]
pub struct CalculationError {
    pub code: String,
    pub message: String,
}

/// One input's result: exactly one of `calculation` and `error`.
#[derive(SimpleObject, Debug, Clone)]
pub struct CalculationResult {
    pub index: i32,
    pub calculation: Option<CommissionCalculation>,
    pub error: Option<CalculationError>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct CommissionSchedule {
    pub carrier_id: ID,
    pub line_of_business: String,
    pub kind: ScheduleKind,
    pub rate: Rate,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

#[derive(InputObject, Debug, Clone)]
pub struct ScheduleInput {
    pub carrier_id: ID,
    pub line_of_business: String,
    pub kind: ScheduleKind,
    pub rate: Rate,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

/// A statement column and the header a carrier's file uses for it.
#[derive(InputObject, Debug, Clone)]
pub struct ColumnMappingInput {
    /// A `statement_lines` column of the data contract (not tenant_id or carrier_id).
    pub column: String,
    pub header: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ColumnMapping {
    pub column: String,
    pub header: String,
}

/// How a carrier's statement files name the contract's columns
/// (`POST /commissions/statements?carrierId=…` reads files with it).
#[derive(SimpleObject, Debug, Clone)]
pub struct StatementMapping {
    pub carrier_id: ID,
    pub columns: Vec<ColumnMapping>,
    pub changed_at: String,
    pub changed_by: String,
}

/// What `uploadStatement` landed.
#[derive(SimpleObject, Debug, Clone)]
pub struct StatementUpload {
    /// Records of the file (all landed).
    pub lines: u64,
    /// The statement ids the file names.
    pub statements: Vec<String>,
    /// `saved` (the carrier's column mapping read it) or `contract`.
    pub mapping: String,
    /// Whether a lake version held the rows within 10 s of the upload
    /// (otherwise they are durable and land shortly).
    pub committed: bool,
}

/// A refused file as `BAD_INPUT`, with the `reason` and refused records of
/// the CSV door's answer.
fn refused(r: upload::Refused) -> async_graphql::Error {
    let problems = Value::from_json(serde_json::Value::Array(r.problems)).unwrap_or(Value::Null);
    bad_input(r.message).extend_with(|_, e| {
        e.set("reason", r.reason);
        e.set("problems", problems.clone());
    })
}

fn statement_mapping(carrier: String, m: &crate::commissions::upload::Mapping, c: &Change) -> StatementMapping {
    StatementMapping {
        carrier_id: ID(carrier),
        columns: m
            .columns
            .iter()
            .map(|(column, header)| ColumnMapping { column: column.clone(), header: header.clone() })
            .collect(),
        changed_at: c.changed_at.clone(),
        changed_by: c.changed_by.clone(),
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct AgentSplit {
    pub agent_id: ID,
    pub effective_from: Date,
    pub split_pct: Option<Rate>,
    pub override_pct: Option<Rate>,
    pub change_id: ID,
    pub changed_at: String,
    pub changed_by: String,
}

/// One entry of the log of changes (who, when, what).
#[derive(SimpleObject, Debug, Clone)]
pub struct CommissionChange {
    pub change_id: ID,
    pub changed_at: String,
    pub changed_by: String,
    /// `set_commission_schedule`, `set_agent_split`, `mark_commissions_paid`, `resolve_discrepancy`.
    pub action: String,
    pub subject: String,
    /// The change as JSON.
    pub detail: String,
    pub note: Option<String>,
}

impl From<Change> for CommissionChange {
    fn from(c: Change) -> Self {
        CommissionChange {
            change_id: ID(c.change_id),
            changed_at: c.changed_at,
            changed_by: c.changed_by,
            action: c.action,
            subject: c.subject,
            detail: c.detail,
            note: c.note,
        }
    }
}

/// A booked commission row.
#[derive(SimpleObject, Debug, Clone)]
pub struct BookedCommission {
    pub commission_id: ID,
    pub policy_id: ID,
    pub agent_id: ID,
    pub carrier_id: ID,
    pub transaction_date: Date,
    pub kind: String,
    pub premium_amount: Money,
    pub commission_rate: Rate,
    pub gross_commission: Money,
    pub agent_commission: Money,
    pub agency_commission: Money,
    pub status: Option<String>,
    pub paid_date: Option<Date>,
    pub statement_id: Option<String>,
}

impl From<&load::CommissionRow> for BookedCommission {
    fn from(r: &load::CommissionRow) -> Self {
        BookedCommission {
            commission_id: ID(r.commission_id.clone()),
            policy_id: ID(r.policy_id.clone()),
            agent_id: ID(r.agent_id.clone()),
            carrier_id: ID(r.carrier_id.clone()),
            transaction_date: Date(r.transaction_date),
            kind: r.kind.clone(),
            premium_amount: Money(r.premium_amount),
            commission_rate: Rate(r.commission_rate.normalize()),
            gross_commission: Money(r.gross_commission),
            agent_commission: Money(r.agent_commission),
            agency_commission: Money(r.agency_commission),
            status: r.status.clone(),
            paid_date: r.paid_date.map(Date),
            statement_id: r.statement_id.clone(),
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct PendingCommission {
    pub commission: BookedCommission,
    pub due_date: Date,
    pub days_overdue: i32,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct MarkedPaid {
    pub marked: i32,
    /// Whether the rows were committed to the lake before the answer (else
    /// they are durable in the event log and land within moments).
    pub committed: bool,
    pub change_id: ID,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct AuditFigures {
    pub premium_amount: Money,
    pub commission_rate: Rate,
    pub gross_commission: Money,
    pub agent_commission: Money,
    pub agency_commission: Money,
}

impl From<&crate::commissions::audit::Figures> for AuditFigures {
    fn from(f: &crate::commissions::audit::Figures) -> Self {
        AuditFigures {
            premium_amount: Money(f.premium_amount),
            commission_rate: Rate(f.commission_rate.normalize()),
            gross_commission: Money(f.gross_commission),
            agent_commission: Money(f.agent_commission),
            agency_commission: Money(f.agency_commission),
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct AuditFinding {
    pub commission_id: ID,
    pub policy_id: ID,
    pub agent_id: ID,
    pub carrier_id: ID,
    pub kind: String,
    pub transaction_date: Date,
    pub fields: Vec<String>,
    pub booked: AuditFigures,
    pub expected: AuditFigures,
    pub reason: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct UncheckedRow {
    pub commission_id: ID,
    pub reason: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct CommissionAudit {
    pub checked: i32,
    pub findings: Vec<AuditFinding>,
    pub unchecked: Vec<UncheckedRow>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Resolution {
    pub resolved_at: String,
    pub resolved_by: String,
    pub note: Option<String>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Discrepancy {
    pub id: ID,
    #[graphql(name = "type")]
    pub kind_of: DiscrepancyType,
    pub carrier_id: ID,
    pub period: String,
    pub statement_id: Option<String>,
    pub line_id: Option<String>,
    pub commission_id: Option<ID>,
    pub policy_id: Option<ID>,
    pub policy_number: Option<String>,
    /// Commission kind: new, renewal, chargeback, adjustment.
    pub kind: Option<String>,
    pub expected_amount: Option<Money>,
    pub paid_amount: Option<Money>,
    /// paid − expected.
    pub difference: Money,
    pub expected_rate: Option<Rate>,
    pub paid_rate: Option<Rate>,
    pub explanation: String,
    pub status: DiscrepancyStatus,
    pub resolution: Option<Resolution>,
}

impl Discrepancy {
    fn of(d: reconcile::Discrepancy, r: Option<store::Resolution>) -> Self {
        Discrepancy {
            id: ID(d.id),
            kind_of: d.kind_of.into(),
            carrier_id: ID(d.carrier_id),
            period: d.period,
            statement_id: d.statement_id,
            line_id: d.line_id,
            commission_id: d.commission_id.map(ID),
            policy_id: d.policy_id.map(ID),
            policy_number: d.policy_number,
            kind: d.kind,
            expected_amount: d.expected.map(Money),
            paid_amount: d.paid.map(Money),
            difference: Money(d.difference),
            expected_rate: d.expected_rate.map(Rate),
            paid_rate: d.paid_rate.map(Rate),
            explanation: d.explanation,
            status: if r.is_some() { DiscrepancyStatus::Resolved } else { DiscrepancyStatus::Open },
            resolution: r.map(|r| Resolution { resolved_at: r.resolved_at, resolved_by: r.resolved_by, note: r.note }),
        }
    }
}

/// Count and sums of a group of discrepancies.
#[derive(SimpleObject, Debug, Clone)]
pub struct DiscrepancyTotal {
    #[graphql(name = "type")]
    pub kind_of: DiscrepancyType,
    pub carrier_id: ID,
    pub count: i32,
    pub open: i32,
    pub expected_amount: Money,
    pub paid_amount: Money,
    pub difference: Money,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct DiscrepancyList {
    /// Totals per type and carrier of every discrepancy matching the filters.
    pub totals: Vec<DiscrepancyTotal>,
    pub total_count: i32,
    /// The first `first` of them.
    pub items: Vec<Discrepancy>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct StatementSummary {
    pub carrier_id: ID,
    pub period: String,
    pub lines: i32,
    pub booked_rows: i32,
    pub matched: i32,
    pub expected_total: Money,
    pub paid_total: Money,
    pub discrepancies: i32,
}

impl From<&reconcile::PeriodSummary> for StatementSummary {
    fn from(p: &reconcile::PeriodSummary) -> Self {
        StatementSummary {
            carrier_id: ID(p.carrier_id.clone()),
            period: p.period.clone(),
            lines: p.lines as i32,
            booked_rows: p.booked_rows as i32,
            matched: p.matched as i32,
            expected_total: Money(p.expected_total),
            paid_total: Money(p.paid_total),
            discrepancies: p.discrepancies as i32,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Reconciliation {
    pub run_id: ID,
    pub tolerance: Money,
    pub statements: Vec<StatementSummary>,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct JournalLine {
    pub account_code: String,
    pub account_name: String,
    pub debit: Money,
    pub credit: Money,
    pub description: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct JournalEntry {
    pub journal_no: String,
    pub agency_id: ID,
    pub date: Date,
    pub lines: Vec<JournalLine>,
    pub total_debits: Money,
    pub total_credits: Money,
}

pub struct AccountingExport {
    period: String,
    entries: Vec<accounting::JournalEntry>,
}

#[Object]
impl AccountingExport {
    async fn period(&self) -> &str {
        &self.period
    }
    /// One balanced entry per agency.
    async fn entries(&self) -> Vec<JournalEntry> {
        self.entries
            .iter()
            .map(|e| JournalEntry {
                journal_no: e.journal_no.clone(),
                agency_id: ID(e.agency_id.clone()),
                date: Date(e.date),
                lines: e
                    .lines
                    .iter()
                    .map(|l| JournalLine {
                        account_code: l.account.code.to_string(),
                        account_name: l.account.name.to_string(),
                        debit: Money(l.debit),
                        credit: Money(l.credit),
                        description: l.description.clone(),
                    })
                    .collect(),
                total_debits: Money(e.total_debits),
                total_credits: Money(e.total_credits),
            })
            .collect()
    }
    /// The entries as an accounting system's journal import CSV.
    async fn csv(&self, layout: JournalLayout) -> Result<String> {
        let layout = match layout {
            JournalLayout::Quickbooks => CsvLayout::QuickBooks,
            JournalLayout::Xero => CsvLayout::Xero,
        };
        accounting::csv(&self.entries, layout).map_err(internal)
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ProducerStatementLine {
    pub commission_id: ID,
    pub policy_id: ID,
    pub policy_number: Option<String>,
    pub transaction_date: Date,
    pub kind: String,
    pub premium_amount: Money,
    pub gross_commission: Money,
    pub amount: Money,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ProducerStatement {
    pub agent_id: ID,
    pub period: String,
    pub lines: Vec<ProducerStatementLine>,
    pub commissions: Money,
    pub chargebacks: Money,
    pub overrides: Money,
    pub total: Money,
}

// ---------------------------------------------------------------------------

fn checked_period(p: &str) -> Result<String> {
    let p = p.trim();
    parse_month(p).map(|_| p.to_string()).ok_or_else(|| bad_input(format!("period '{p}' is not a month YYYY-MM")))
}

async fn terms(ctx: &Context<'_>) -> Result<(Schedules, Agents)> {
    let session = &view(ctx).session;
    let schedules = load::schedules(session).await.map_err(internal)?;
    let agents = load::agents(session).await.map_err(internal)?;
    Ok((schedules, agents))
}

fn calc_error(e: &CalcError) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    let code = e.code();
    bad_input(e.to_string()).extend_with(|_, x| x.set("reason", code))
}

fn require<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    super::reports::require(ctx, COMMISSIONS_WRITE)
}

fn writer<'a>(ctx: &Context<'a>) -> Result<&'a CommissionWriter> {
    ctx.data::<CommissionWriter>().map_err(|_| internal("no commission writer in request data"))
}

fn stream<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Stream>> {
    writer(ctx)?.stream.as_ref().ok_or_else(|| {
        error(
            Code::NotReady,
            "this server takes no writes now (a pinned version, or another server takes the lake's events): retry",
        )
    })
}

/// The log refused a write: the lease moved to another server (retry), or
/// the log could not be written (internal).
fn stream_failed(e: crate::pipelines::stream::StreamError) -> async_graphql::Error {
    match e {
        crate::pipelines::stream::StreamError::NotHolder => {
            error(Code::NotReady, "another server takes this lake's writes now: retry")
        }
        e => internal(e),
    }
}

fn check_note(note: &Option<String>) -> Result<()> {
    if note.as_ref().is_some_and(|n| n.chars().count() > 2_000 || n.chars().any(|c| c.is_control() && c != '\n')) {
        return Err(bad_input("note: at most 2000 characters, no control characters"));
    }
    Ok(())
}

/// Land contract rows (one event per row) through the streaming door and
/// wait until they are committed; `Ok(false)` if that takes too long.
async fn land(ctx: &Context<'_>, noun: &str, rows: Vec<serde_json::Value>, actor: &Actor) -> Result<bool> {
    let stream = stream(ctx)?;
    let tenant = &view(ctx).tenant;
    let at = actor.at_text();
    // One fresh base per request, numbered per row: ids never repeat.
    let base = store::new_id("cip-commissions-");
    let events: Vec<String> = rows
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            json!({"event_id": format!("{base}-{i}"), "tenant_id": tenant, "type": format!("{noun}.upserted"),
                   "occurred_at": at, "data": data})
            .to_string()
        })
        .collect();
    let accepted = stream.accept(tenant, &events.join("\n")).await.map_err(stream_failed)?;
    if let Some(r) = accepted.results.iter().find(|r| r.status == "rejected") {
        return Err(bad_input(r.reason.clone().unwrap_or_else(|| "the row breaks the data contract".into())));
    }
    let Some(seq) = accepted.sequence else { return Ok(true) };
    Ok(stream.committed_within(seq).await)
}

/// Append one change to the log.
async fn log_change(
    ctx: &Context<'_>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
    note: Option<String>,
) -> Result<String> {
    let tenant = &view(ctx).tenant;
    let change_id = store::new_id("chg-");
    let change = Change {
        change_id: change_id.clone(),
        changed_at: actor.at_text(),
        changed_by: actor.subject.clone(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail: detail.to_string(),
        note,
    };
    let batch = store::change_batch(tenant, &[change]).map_err(internal)?;
    store::append(&writer(ctx)?.lake, tenant, &change_id, vec![(COMMISSION_CHANGES, batch)]).await.map_err(internal)?;
    Ok(change_id)
}

#[derive(Default)]
pub struct CommissionsQuery;

#[Object]
impl CommissionsQuery {
    /// A policy term's commission from the tenant's schedules and splits,
    /// step by step (see docs/commissions.md for the rules).
    async fn calculate_commission(&self, ctx: &Context<'_>, input: CommissionInput) -> Result<CommissionCalculation> {
        let (schedules, agents) = terms(ctx).await?;
        calc::calculate(&input.term(), &schedules, &agents).map(Into::into).map_err(|e| calc_error(&e))
    }

    /// Many terms at once (at most 5000); a bad input gets its own error
    /// and the others are calculated.
    async fn calculate_commissions(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<CommissionInput>,
    ) -> Result<Vec<CalculationResult>> {
        if inputs.len() > MAX_BULK {
            return Err(bad_input(format!("at most {MAX_BULK} inputs per request")));
        }
        let (schedules, agents) = terms(ctx).await?;
        Ok(inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match calc::calculate(&input.term(), &schedules, &agents) {
                Ok(c) => CalculationResult { index: i as i32, calculation: Some(c.into()), error: None },
                Err(e) => CalculationResult {
                    index: i as i32,
                    calculation: None,
                    error: Some(CalculationError { code: e.code().to_string(), message: e.to_string() }),
                },
            })
            .collect())
    }

    /// The tenant's schedule rows, by carrier, line, kind, start.
    async fn commission_schedules(
        &self,
        ctx: &Context<'_>,
        carrier_id: Option<ID>,
        line_of_business: Option<String>,
    ) -> Result<Vec<CommissionSchedule>> {
        let (schedules, _) = terms(ctx).await?;
        Ok(schedules
            .rows()
            .into_iter()
            .filter(|r| carrier_id.as_ref().is_none_or(|c| c.0 == r.carrier_id))
            .filter(|r| line_of_business.as_ref().is_none_or(|l| l.trim() == r.line_of_business))
            .map(|r| CommissionSchedule {
                carrier_id: ID(r.carrier_id.clone()),
                line_of_business: r.line_of_business.clone(),
                kind: r.kind.into(),
                rate: Rate(r.rate.normalize()),
                effective_from: Date(r.effective_from),
                effective_to: r.effective_to.map(Date),
            })
            .collect())
    }

    /// Dated split and override changes (`setAgentSplit`), by agent and date.
    async fn agent_splits(&self, ctx: &Context<'_>, agent_id: Option<ID>) -> Result<Vec<AgentSplit>> {
        let rows = store_splits(ctx).await?;
        Ok(rows.into_iter().filter(|s| agent_id.as_ref().is_none_or(|a| a.0 == s.agent_id.0)).collect())
    }

    /// Carrier-paid rows not paid by their due date (the end of their month
    /// plus `dueDays`), oldest first.
    #[graphql(cache_control(no_cache))]
    async fn pending_commissions(
        &self,
        ctx: &Context<'_>,
        as_of: Date,
        #[graphql(default = 45)] due_days: i32,
        carrier_id: Option<ID>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<PendingCommission>> {
        if !(0..=366).contains(&due_days) || !(1..=10_000).contains(&first) {
            return Err(bad_input("dueDays is 0 to 366 and first 1 to 10000"));
        }
        let rows = engine::pending(&view(ctx).session, as_of.0, due_days as i64, carrier_id.map(|c| c.0))
            .await
            .map_err(internal)?;
        Ok(rows
            .iter()
            .take(first as usize)
            .map(|(r, due)| PendingCommission {
                commission: r.into(),
                due_date: Date(*due),
                days_overdue: (as_of.0 - *due).num_days() as i32,
            })
            .collect())
    }

    /// Booked rows whose rate or amounts disagree with the schedules and
    /// splits, with the expected and the booked figures.
    async fn commission_audit(
        &self,
        ctx: &Context<'_>,
        carrier_id: Option<ID>,
        range: Option<super::schema::DateRange>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<CommissionAudit> {
        if !(1..=10_000).contains(&first) {
            return Err(bad_input("first is 1 to 10000"));
        }
        if let Some(r) = range
            && r.to.0 < r.from.0
        {
            return Err(bad_input("range.to must not be before range.from"));
        }
        let filter = RowFilter {
            carrier_id: carrier_id.map(|c| c.0),
            from: range.map(|r| r.from.0),
            to: range.map(|r| r.to.0),
            ..Default::default()
        };
        let report = engine::audit_booked(&view(ctx).session, &filter).await.map_err(internal)?;
        Ok(CommissionAudit {
            checked: report.checked as i32,
            findings: report
                .findings
                .iter()
                .take(first as usize)
                .map(|f| AuditFinding {
                    commission_id: ID(f.commission_id.clone()),
                    policy_id: ID(f.policy_id.clone()),
                    agent_id: ID(f.agent_id.clone()),
                    carrier_id: ID(f.carrier_id.clone()),
                    kind: f.kind.clone(),
                    transaction_date: Date(f.transaction_date),
                    fields: f.fields.iter().map(|s| s.to_string()).collect(),
                    booked: (&f.booked).into(),
                    expected: (&f.expected).into(),
                    reason: f.reason.clone(),
                })
                .collect(),
            unchecked: report
                .unchecked
                .into_iter()
                .take(first as usize)
                .map(|u| UncheckedRow { commission_id: ID(u.commission_id), reason: u.reason })
                .collect(),
        })
    }

    /// Discrepancies of the latest reconciliation of each statement, with
    /// totals per type and carrier.
    #[graphql(cache_control(no_cache))]
    async fn discrepancies(
        &self,
        ctx: &Context<'_>,
        carrier_id: Option<ID>,
        period: Option<String>,
        #[graphql(name = "type")] kind_of: Option<DiscrepancyType>,
        status: Option<DiscrepancyStatus>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<DiscrepancyList> {
        if !(0..=10_000).contains(&first) {
            return Err(bad_input("first is 0 to 10000"));
        }
        let period = period.as_deref().map(checked_period).transpose()?;
        let filter =
            DiscrepancyFilter { carrier_id: carrier_id.map(|c| c.0), period, kind_of: kind_of.map(Into::into), status };
        let all = filtered_discrepancies(&view(ctx).session, &filter).await?;
        let mut totals: BTreeMap<(Dt, String), DiscrepancyTotal> = BTreeMap::new();
        for d in &all {
            let x = &d.discrepancy;
            let t = totals.entry((x.kind_of, x.carrier_id.clone())).or_insert_with(|| DiscrepancyTotal {
                kind_of: x.kind_of.into(),
                carrier_id: ID(x.carrier_id.clone()),
                count: 0,
                open: 0,
                expected_amount: Money(Decimal::new(0, 2)),
                paid_amount: Money(Decimal::new(0, 2)),
                difference: Money(Decimal::new(0, 2)),
            });
            t.count += 1;
            t.open += i32::from(d.resolution.is_none());
            t.expected_amount.0 += x.expected.unwrap_or_default();
            t.paid_amount.0 += x.paid.unwrap_or_default();
            t.difference.0 += x.difference;
        }
        let total_count = all.len() as i32;
        Ok(DiscrepancyList {
            totals: totals.into_values().collect(),
            total_count,
            items: all.into_iter().take(first as usize).map(|d| Discrepancy::of(d.discrepancy, d.resolution)).collect(),
        })
    }

    /// The saved statement column mappings, by carrier.
    #[graphql(cache_control(no_cache))]
    async fn statement_mappings(&self, ctx: &Context<'_>) -> Result<Vec<StatementMapping>> {
        let all = store::mappings(&view(ctx).session).await.map_err(internal)?;
        Ok(all.into_iter().map(|(carrier, (m, c))| statement_mapping(carrier, &m, &c)).collect())
    }

    /// The log of changes made through the commission mutations, oldest first.
    #[graphql(cache_control(no_cache))]
    async fn commission_changes(&self, ctx: &Context<'_>, action: Option<String>) -> Result<Vec<CommissionChange>> {
        let changes = store::changes(&view(ctx).session, action.as_deref()).await.map_err(internal)?;
        Ok(changes.into_iter().map(Into::into).collect())
    }

    /// Month close: journal entries per agency for `period` (YYYY-MM) whose
    /// debits equal credits, with QuickBooks Online and Xero CSV.
    async fn accounting_export(&self, ctx: &Context<'_>, period: String) -> Result<AccountingExport> {
        let period = checked_period(&period)?;
        let entries =
            engine::accounting_export(&view(ctx).session, &period).await.map_err(internal)?.unwrap_or_default();
        Ok(AccountingExport { period, entries })
    }

    /// An agent's rows of a period: shares, chargebacks and overrides with
    /// totals (`NOT_FOUND` for an agent the tenant does not have).
    async fn producer_statement(&self, ctx: &Context<'_>, agent_id: ID, period: String) -> Result<ProducerStatement> {
        let period = checked_period(&period)?;
        let v = view(ctx);
        if v.directory().await.map_err(internal)?.agent(&agent_id).is_none() {
            return Err(not_found("no such agent"));
        }
        let s = engine::producer_statement(&v.session, &agent_id, &period)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("period checked"))?;
        Ok(ProducerStatement {
            agent_id: ID(s.agent_id),
            period: s.period,
            lines: s
                .lines
                .into_iter()
                .map(|l| ProducerStatementLine {
                    commission_id: ID(l.commission_id),
                    policy_id: ID(l.policy_id),
                    policy_number: l.policy_number,
                    transaction_date: Date(l.transaction_date),
                    kind: l.kind,
                    premium_amount: Money(l.premium_amount),
                    gross_commission: Money(l.gross_commission),
                    amount: Money(l.amount),
                })
                .collect(),
            commissions: Money(s.commissions),
            chargebacks: Money(s.chargebacks),
            overrides: Money(s.overrides),
            total: Money(s.total),
        })
    }
}

async fn store_splits(ctx: &Context<'_>) -> Result<Vec<AgentSplit>> {
    let session = &view(ctx).session;
    let df = session
        .sql(&format!(
            "select agent_id, effective_from, split_pct, override_pct, change_id, changed_at, changed_by from {AGENT_SPLITS} \
             order by agent_id, effective_from, changed_at"
        ))
        .await
        .map_err(internal)?;
    let batches = df.collect().await.map_err(internal)?;
    let mut out = Vec::new();
    for b in &batches {
        use arrow::array::{Array, AsArray};
        let s = |i: usize| b.column(i).as_string::<i32>();
        let dates = b.column(1).as_primitive::<arrow::datatypes::Date32Type>();
        let rate = |c: usize, r: usize| {
            let a = b.column(c).as_primitive::<arrow::datatypes::Decimal128Type>();
            (!a.is_null(r)).then(|| Rate(crate::commissions::money::from_units(a.value(r), a.scale()).normalize()))
        };
        for r in 0..b.num_rows() {
            out.push(AgentSplit {
                agent_id: ID(s(0).value(r).to_string()),
                effective_from: Date(crate::contract::values::days_to_date(dates.value(r))),
                split_pct: rate(2, r),
                override_pct: rate(3, r),
                change_id: ID(s(4).value(r).to_string()),
                changed_at: s(5).value(r).to_string(),
                changed_by: s(6).value(r).to_string(),
            });
        }
    }
    Ok(out)
}

/// Filters of the discrepancy list and its CSV download.
#[derive(Debug, Clone, Default)]
pub struct DiscrepancyFilter {
    pub carrier_id: Option<String>,
    pub period: Option<String>,
    pub kind_of: Option<Dt>,
    pub status: Option<DiscrepancyStatus>,
}

pub async fn filtered_discrepancies(
    session: &datafusion::prelude::SessionContext,
    f: &DiscrepancyFilter,
) -> Result<Vec<store::StoredDiscrepancy>> {
    let all = store::current_discrepancies(session).await.map_err(internal)?;
    Ok(all
        .into_iter()
        .filter(|d| f.carrier_id.as_ref().is_none_or(|c| *c == d.discrepancy.carrier_id))
        .filter(|d| f.period.as_ref().is_none_or(|p| *p == d.discrepancy.period))
        .filter(|d| f.kind_of.is_none_or(|t| t == d.discrepancy.kind_of))
        .filter(|d| match f.status {
            None => true,
            Some(DiscrepancyStatus::Open) => d.resolution.is_none(),
            Some(DiscrepancyStatus::Resolved) => d.resolution.is_some(),
        })
        .collect())
}

/// CSV columns of a discrepancy download.
pub const DISCREPANCY_COLUMNS: [&str; 18] = [
    "discrepancy_id",
    "type",
    "carrier_id",
    "period",
    "statement_id",
    "line_id",
    "commission_id",
    "policy_id",
    "policy_number",
    "kind",
    "expected_amount",
    "paid_amount",
    "difference",
    "expected_rate",
    "paid_rate",
    "status",
    "resolved_by",
    "explanation",
];

pub fn discrepancies_csv(rows: &[store::StoredDiscrepancy]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(DISCREPANCY_COLUMNS)?;
    for s in rows {
        let d = &s.discrepancy;
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let m = |v: Option<Decimal>| v.map(fmt_money).unwrap_or_default();
        let r = |v: Option<Decimal>| v.map(fmt_rate).unwrap_or_default();
        w.write_record([
            d.id.clone(),
            d.kind_of.as_str().to_string(),
            d.carrier_id.clone(),
            d.period.clone(),
            o(&d.statement_id),
            o(&d.line_id),
            o(&d.commission_id),
            o(&d.policy_id),
            o(&d.policy_number),
            o(&d.kind),
            m(d.expected),
            m(d.paid),
            fmt_money(d.difference),
            r(d.expected_rate),
            r(d.paid_rate),
            if s.resolution.is_some() { "RESOLVED" } else { "OPEN" }.to_string(),
            s.resolution.as_ref().map(|x| x.resolved_by.clone()).unwrap_or_default(),
            d.explanation.clone(),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[derive(Default)]
pub struct CommissionsMutation;

#[Object]
impl CommissionsMutation {
    /// Add a dated schedule row (a `commission_schedules` row landed through
    /// the streaming door). History is never rewritten: from its
    /// `effectiveFrom` on the new row wins over older ones; a row starting
    /// the same day for the same carrier, line and kind is refused.
    #[graphql(cache_control(no_cache))]
    async fn set_commission_schedule(
        &self,
        ctx: &Context<'_>,
        input: ScheduleInput,
        note: Option<String>,
    ) -> Result<CommissionSchedule> {
        let principal = require(ctx)?;
        check_note(&note)?;
        let line = input.line_of_business.trim().to_string();
        if line.is_empty() || input.carrier_id.trim().is_empty() {
            return Err(bad_input("carrierId and lineOfBusiness must not be empty"));
        }
        if input.rate.0 < Decimal::ZERO {
            return Err(bad_input("rate must not be negative"));
        }
        if input.effective_to.is_some_and(|t| t.0 <= input.effective_from.0) {
            return Err(bad_input("effectiveTo must be after effectiveFrom"));
        }
        let v = view(ctx);
        if v.directory().await.map_err(internal)?.carrier(&input.carrier_id).is_none() {
            return Err(not_found("no such carrier"));
        }
        let (schedules, _) = terms(ctx).await?;
        let kind: TermKind = input.kind.into();
        if schedules.rows().iter().any(|r| {
            r.carrier_id == input.carrier_id.0
                && r.line_of_business == line
                && r.kind == kind
                && r.effective_from == input.effective_from.0
        }) {
            return Err(bad_input(
                "a schedule row of this carrier, line and kind starts on that day already: add one with another effectiveFrom",
            ));
        }
        let actor = Actor::now(&principal.subject);
        let date = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        let row = json!({
            "tenant_id": v.tenant, "carrier_id": input.carrier_id.0, "line_of_business": line, "kind": kind.as_str(),
            "rate": fmt_rate(input.rate.0), "effective_from": date(input.effective_from.0),
            "effective_to": input.effective_to.map(|d| date(d.0)),
        });
        land(ctx, "commission_schedule", vec![row.clone()], &actor).await?;
        let subject = format!("{}/{}/{}", input.carrier_id.0, line, kind.as_str());
        log_change(ctx, &actor, store::SET_SCHEDULE, &subject, row, note).await?;
        Ok(CommissionSchedule {
            carrier_id: input.carrier_id,
            line_of_business: line,
            kind: input.kind,
            rate: Rate(input.rate.0.normalize()),
            effective_from: input.effective_from,
            effective_to: input.effective_to,
        })
    }

    /// From `effectiveFrom` on, the agent's split (and/or override) is this:
    /// a dated row of `agent_splits`, logged with who and when.
    #[graphql(cache_control(no_cache))]
    async fn set_agent_split(
        &self,
        ctx: &Context<'_>,
        agent_id: ID,
        effective_from: Date,
        split_pct: Option<Rate>,
        override_pct: Option<Rate>,
        note: Option<String>,
    ) -> Result<AgentSplit> {
        let principal = require(ctx)?;
        check_note(&note)?;
        if split_pct.is_none() && override_pct.is_none() {
            return Err(bad_input("give splitPct, overridePct or both"));
        }
        if [split_pct, override_pct].iter().flatten().any(|r| r.0 < Decimal::ZERO || r.0 > Decimal::ONE) {
            return Err(bad_input("splitPct and overridePct are fractions from 0 to 1"));
        }
        let v = view(ctx);
        if v.directory().await.map_err(internal)?.agent(&agent_id).is_none() {
            return Err(not_found("no such agent"));
        }
        let actor = Actor::now(&principal.subject);
        let change_id = store::new_id("chg-");
        let row = store::SplitRow {
            agent_id: agent_id.0.clone(),
            effective_from: effective_from.0,
            split_pct: split_pct.map(|r| r.0),
            override_pct: override_pct.map(|r| r.0),
        };
        let detail = json!({"agent_id": agent_id.0, "effective_from": effective_from.0.to_string(),
                            "split_pct": split_pct.map(|r| fmt_rate(r.0)), "override_pct": override_pct.map(|r| fmt_rate(r.0))});
        let change = Change {
            change_id: change_id.clone(),
            changed_at: actor.at_text(),
            changed_by: actor.subject.clone(),
            action: store::SET_SPLIT.to_string(),
            subject: agent_id.0.clone(),
            detail: detail.to_string(),
            note,
        };
        let batches = vec![
            (AGENT_SPLITS, store::split_batch(&v.tenant, &change_id, &actor, &row).map_err(internal)?),
            (COMMISSION_CHANGES, store::change_batch(&v.tenant, &[change]).map_err(internal)?),
        ];
        // Both in one lake version: the split and its log entry land together.
        store::append(&writer(ctx)?.lake, &v.tenant, &change_id, batches).await.map_err(internal)?;
        Ok(AgentSplit {
            agent_id,
            effective_from,
            split_pct,
            override_pct,
            change_id: ID(change_id),
            changed_at: actor.at_text(),
            changed_by: actor.subject,
        })
    }

    /// Mark booked rows paid (status `paid`, `paidDate`, and the statement
    /// if given): the rows are landed again through the streaming door with
    /// those columns changed, and the change is logged.
    #[graphql(cache_control(no_cache))]
    async fn mark_commissions_paid(
        &self,
        ctx: &Context<'_>,
        commission_ids: Vec<ID>,
        paid_date: Date,
        statement_id: Option<String>,
        note: Option<String>,
    ) -> Result<MarkedPaid> {
        let principal = require(ctx)?;
        check_note(&note)?;
        if commission_ids.is_empty() || commission_ids.len() > MAX_MARK {
            return Err(bad_input(format!("give 1 to {MAX_MARK} commission ids")));
        }
        let mut ids: Vec<String> = commission_ids.into_iter().map(|i| i.0).collect();
        ids.sort();
        ids.dedup();
        let v = view(ctx);
        let filter = RowFilter { commission_ids: Some(ids.clone()), ..Default::default() };
        let rows = load::commission_rows(&v.session, &filter).await.map_err(internal)?;
        let found: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.commission_id.as_str()).collect();
        let unknown: Vec<&String> = ids.iter().filter(|i| !found.contains(i.as_str())).take(10).collect();
        if !unknown.is_empty() {
            return Err(not_found(format!("no commission rows {unknown:?}")));
        }
        let actor = Actor::now(&principal.subject);
        let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        let events: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "tenant_id": v.tenant, "commission_id": r.commission_id, "policy_id": r.policy_id, "agent_id": r.agent_id,
                    "carrier_id": r.carrier_id, "transaction_date": day(r.transaction_date), "kind": r.kind,
                    "premium_amount": fmt_money(r.premium_amount), "commission_rate": fmt_rate(r.commission_rate),
                    "gross_commission": fmt_money(r.gross_commission), "agent_commission": fmt_money(r.agent_commission),
                    "agency_commission": fmt_money(r.agency_commission), "status": "paid", "paid_date": day(paid_date.0),
                    "statement_id": statement_id.clone().or_else(|| r.statement_id.clone()),
                })
            })
            .collect();
        let committed = land(ctx, "commission", events, &actor).await?;
        let detail = json!({"commission_ids": ids, "paid_date": day(paid_date.0), "statement_id": statement_id});
        let subject = if ids.len() == 1 { ids[0].clone() } else { format!("{} commissions", ids.len()) };
        let change_id = log_change(ctx, &actor, store::MARK_PAID, &subject, detail, note).await?;
        Ok(MarkedPaid { marked: rows.len() as i32, committed, change_id: ID(change_id) })
    }

    /// Reconcile a carrier's statement of a period (YYYY-MM) against the
    /// booked rows; the run and its discrepancies are stored in the lake.
    /// `tolerance`: a difference of at most this much counts as paid (0.00).
    #[graphql(cache_control(no_cache))]
    async fn reconcile(
        &self,
        ctx: &Context<'_>,
        carrier_id: ID,
        period: String,
        tolerance: Option<Money>,
    ) -> Result<Reconciliation> {
        let principal = require(ctx)?;
        let period = checked_period(&period)?;
        let tolerance = tolerance.map_or(Decimal::ZERO, |t| t.0);
        if tolerance < Decimal::ZERO {
            return Err(bad_input("tolerance must not be negative"));
        }
        let v = view(ctx);
        if v.directory().await.map_err(internal)?.carrier(&carrier_id).is_none() {
            return Err(not_found("no such carrier"));
        }
        let scope = Scope { carrier_id: Some(carrier_id.0), period: Some(period) };
        let actor = Actor::now(&principal.subject);
        let cents = crate::commissions::money::cents(tolerance);
        let r = engine::reconcile_and_store(&writer(ctx)?.lake, &v.session, &v.tenant, &scope, cents, &actor)
            .await
            .map_err(internal)?;
        Ok(Reconciliation {
            run_id: ID(r.run_id),
            tolerance: Money(r.tolerance),
            statements: r.outcome.periods.iter().map(Into::into).collect(),
            discrepancies: r.outcome.discrepancies.into_iter().map(|d| Discrepancy::of(d, None)).collect(),
        })
    }

    /// Save how a carrier's statement files name the contract's
    /// `statement_lines` columns; columns not named keep their own name. A
    /// new mapping replaces the carrier's previous one (both stay in the log).
    #[graphql(cache_control(no_cache))]
    async fn set_statement_mapping(
        &self,
        ctx: &Context<'_>,
        carrier_id: ID,
        columns: Vec<ColumnMappingInput>,
        note: Option<String>,
    ) -> Result<StatementMapping> {
        let principal = require(ctx)?;
        check_note(&note)?;
        let mut mapping = crate::commissions::upload::Mapping::default();
        for c in &columns {
            if mapping.columns.insert(c.column.trim().to_string(), c.header.trim().to_string()).is_some() {
                return Err(bad_input(format!("the column {} is mapped twice", c.column.trim())));
            }
        }
        mapping.check().map_err(bad_input)?;
        if view(ctx).directory().await.map_err(internal)?.carrier(&carrier_id).is_none() {
            return Err(not_found("no such carrier"));
        }
        let actor = Actor::now(&principal.subject);
        let detail = serde_json::to_value(&mapping).map_err(internal)?;
        let change_id = log_change(ctx, &actor, store::SET_MAPPING, &carrier_id, detail.clone(), note.clone()).await?;
        let change = Change {
            change_id,
            changed_at: actor.at_text(),
            changed_by: actor.subject,
            action: store::SET_MAPPING.to_string(),
            subject: carrier_id.0.clone(),
            detail: detail.to_string(),
            note,
        };
        Ok(statement_mapping(carrier_id.0, &mapping, &change))
    }

    /// Upload a carrier statement as CSV: a GraphQL multipart request
    /// (the file as the variable `file`; at most `--max-ingest-bytes`, like
    /// `POST /commissions/statements`), read with the carrier's saved column
    /// mapping (`setStatementMapping`; without one the contract's column
    /// names). Every record is checked with the streaming door's row rules
    /// and either all land as `statement_lines` rows or none does
    /// (`BAD_INPUT` with `reason` and each refused record in `problems`).
    #[graphql(cache_control(no_cache))]
    async fn upload_statement(
        &self,
        ctx: &Context<'_>,
        carrier_id: ID,
        file: async_graphql::Upload,
    ) -> Result<StatementUpload> {
        let principal = require(ctx)?;
        let stream = stream(ctx)?;
        let (max_requests, max_bytes) = writer(ctx)?.max_backlog;
        if stream.backlog() >= max_requests || stream.backlog_bytes() >= max_bytes {
            return Err(error(Code::RateLimited, "ingest backlog full: retry shortly"));
        }
        let carrier = carrier_id.trim().to_string();
        if carrier.is_empty() {
            return Err(bad_input("carrierId is required"));
        }
        let content = file.value(ctx).map_err(|e| bad_input(format!("file: {e}")))?.content;
        let text = upload::utf8(Vec::from(content)).map_err(refused)?;
        let v = view(ctx);
        if v.directory().await.map_err(internal)?.carrier(&carrier).is_none() {
            return Err(not_found(format!("no carrier {carrier}")));
        }
        let mapping = store::mappings(&v.session).await.map_err(internal)?.get(&carrier).map(|(m, _)| m.clone());
        let mapped = mapping.is_some();
        let tenant = principal.tenant_id.clone();
        // Parsing and checking a large file is CPU work: off the async threads.
        let t = tenant.clone();
        let checked = tokio::task::spawn_blocking(move || {
            upload::statement_events(&text, &mapping.unwrap_or_default(), &t, &carrier)
        })
        .await
        .map_err(internal)?
        .map_err(refused)?;
        let landed = upload::land(stream, &tenant, checked, mapped).await.map_err(|e| match e {
            upload::LandError::Log(e) => stream_failed(e),
            e => internal(e),
        })?;
        Ok(StatementUpload {
            lines: landed.lines as u64,
            statements: landed.statements,
            mapping: landed.mapping.to_string(),
            committed: landed.committed,
        })
    }

    /// Mark a discrepancy resolved with a note: an entry of the change log
    /// (who, when, why), never rewritten; a later resolution supersedes it.
    #[graphql(cache_control(no_cache))]
    async fn resolve_discrepancy(&self, ctx: &Context<'_>, id: ID, note: String) -> Result<Discrepancy> {
        let principal = require(ctx)?;
        let note = note.trim().to_string();
        if note.is_empty() {
            return Err(bad_input("a resolution needs a note"));
        }
        check_note(&Some(note.clone()))?;
        if !reconcile::is_discrepancy_id(&id) {
            return Err(not_found("no such discrepancy"));
        }
        let all = store::current_discrepancies(&view(ctx).session).await.map_err(internal)?;
        let d = all.into_iter().find(|d| d.discrepancy.id == id.0).ok_or_else(|| not_found("no such discrepancy"))?;
        let actor = Actor::now(&principal.subject);
        let detail = json!({"type": d.discrepancy.kind_of.as_str(), "carrier_id": d.discrepancy.carrier_id, "period": d.discrepancy.period, "run_id": d.run_id});
        let change_id = log_change(ctx, &actor, store::RESOLVE, &id, detail, Some(note.clone())).await?;
        let resolution =
            store::Resolution { change_id, resolved_at: actor.at_text(), resolved_by: actor.subject, note: Some(note) };
        Ok(Discrepancy::of(d.discrepancy, Some(resolution)))
    }
}
