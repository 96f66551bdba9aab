//! The metrics layer: every metric of the data contract ("Metric
//! definitions" in `shared/spec/data-contract.md`) defined once, as
//! DataFusion expressions, and computed for a date range, grouped by any
//! dimensions, under optional filters.
//!
//! The session passed in is already tenant-scoped (see
//! [`register_snapshot`](super::tables::register_snapshot)): nothing here
//! filters by tenant, because the session only holds one tenant's rows.
//!
//! # Families and queries
//!
//! Metrics come in four families, each computed by **one** engine query
//! (one aggregate over one scan) that groups by all requested dimensions at
//! once, whatever the number of agents, agencies or periods:
//!
//! | family | metrics | facts | date of the row |
//! |---|---|---|---|
//! | commission | gross commission, agent commission, average commission rate | commission rows ⟕ their policy | `transaction_date` |
//! | policy | written premium, policy count, new-business count | policies | `effective_date` |
//! | renewal | renewal rate | policies ⟕ set of renewed policy ids | `expiration_date` |
//! | cancellation | cancellation rate | policies (× periods when grouped by time) | `cancellation_date` |
//!
//! So [`compute`] runs one query per family asked for (all 8 metrics: 4
//! queries), [`active_policies`] one, and [`kpis`] two (commission, and one
//! policy query for written premium, active policies and retention).
//! [`queries_run`] counts engine queries process-wide; a session configured
//! with a [`QueryCounter`] extension counts its own.
//!
//! # Semantics where the contract leaves room
//!
//! - A commission row's agency and line of business are its policy's
//!   (left join on `policy_id`). A row whose policy is not in the lake still
//!   counts in totals and for its agent and carrier; its agency and line
//!   group key is `""`, and an agency or line filter excludes it.
//! - Filters apply to the same columns as the dimensions: for commission
//!   metrics agent and carrier are the row's, agency and line the policy's;
//!   for policy metrics all four are the policy's (the *expiring* policy for
//!   renewal, the cancelled/active policy for cancellation).
//! - "Renewed" means some policy of the tenant (under any agent, carrier or
//!   filter) names the expiring policy in `renewal_of`.
//! - Time dimensions bucket each family by its own date. For the
//!   cancellation rate each period is a sub-range `[max(from, period
//!   start), min(to, period end))`: cancellations in it over policies active
//!   at its start.
//! - Groups: with no dimensions there is always exactly one row (zero sums,
//!   zero counts, null rates on empty data). With dimensions, a group
//!   appears when any requested family has a row for it (a commission row,
//!   a policy effective, up for renewal, cancelled or active at the start, in
//!   the range); when the only dimension is a time dimension (a trend),
//!   every period overlapping the range appears, empty ones included.
//!   Rows are sorted by group key.
//! - `from > to` is an error; `from == to` is an empty range.
//!
//! Money is summed as Decimal128 by the engine and converted exactly to
//! [`Decimal`]; rates are `f64` computed from exact numerators and
//! denominators. Filter values and dates enter plans as typed literals,
//! never as SQL text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{Datelike, Days, Months, NaiveDate};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::functions::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{DataFrame, Expr, JoinType, SessionContext, cast, col, in_list, lit, when};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::contract::values::{date_to_days, days_to_date};

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// A metric of the data contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    GrossCommission,
    AgentCommission,
    WrittenPremium,
    PolicyCount,
    NewBusinessCount,
    RenewalRate,
    CancellationRate,
    AverageCommissionRate,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::GrossCommission,
        Metric::AgentCommission,
        Metric::WrittenPremium,
        Metric::PolicyCount,
        Metric::NewBusinessCount,
        Metric::RenewalRate,
        Metric::CancellationRate,
        Metric::AverageCommissionRate,
    ];

    /// Stable snake_case name (API field names, logs).
    pub fn name(self) -> &'static str {
        match self {
            Metric::GrossCommission => "gross_commission",
            Metric::AgentCommission => "agent_commission",
            Metric::WrittenPremium => "written_premium",
            Metric::PolicyCount => "policy_count",
            Metric::NewBusinessCount => "new_business_count",
            Metric::RenewalRate => "renewal_rate",
            Metric::CancellationRate => "cancellation_rate",
            Metric::AverageCommissionRate => "average_commission_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    fn family(self) -> Family {
        match self {
            Metric::GrossCommission | Metric::AgentCommission | Metric::AverageCommissionRate => Family::Commission,
            Metric::WrittenPremium | Metric::PolicyCount | Metric::NewBusinessCount => Family::Policy,
            Metric::RenewalRate => Family::Renewal,
            Metric::CancellationRate => Family::Cancellation,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a metric can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Agency,
    Agent,
    Carrier,
    LineOfBusiness,
    /// Key `"2024-03"`.
    Month,
    /// Key `"2024-Q1"`.
    Quarter,
    /// Key `"2024"`.
    Year,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Agency,
        Dimension::Agent,
        Dimension::Carrier,
        Dimension::LineOfBusiness,
        Dimension::Month,
        Dimension::Quarter,
        Dimension::Year,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Agency => "agency",
            Dimension::Agent => "agent",
            Dimension::Carrier => "carrier",
            Dimension::LineOfBusiness => "line_of_business",
            Dimension::Month => "month",
            Dimension::Quarter => "quarter",
            Dimension::Year => "year",
        }
    }

    pub fn from_name(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn is_time(self) -> bool {
        matches!(self, Dimension::Month | Dimension::Quarter | Dimension::Year)
    }

    /// Column of the facts frames holding an entity dimension.
    fn column(self) -> Option<&'static str> {
        match self {
            Dimension::Agency => Some(AGENCY),
            Dimension::Agent => Some(AGENT),
            Dimension::Carrier => Some(CARRIER),
            Dimension::LineOfBusiness => Some(LINE),
            Dimension::Month | Dimension::Quarter | Dimension::Year => None,
        }
    }

    fn months(self) -> Option<u32> {
        match self {
            Dimension::Month => Some(1),
            Dimension::Quarter => Some(3),
            Dimension::Year => Some(12),
            _ => None,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Half-open date range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Self {
        DateRange { from, to }
    }

    pub fn is_empty(&self) -> bool {
        self.from >= self.to
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d < self.to
    }

    fn check(&self) -> Result<(), MetricsError> {
        if self.from > self.to {
            return Err(MetricsError::InvalidRange { from: self.from, to: self.to });
        }
        Ok(())
    }
}

/// Restrict metrics to one agency, agent, carrier and/or line of business
/// (equality; `None` = no restriction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    pub agency_id: Option<String>,
    pub agent_id: Option<String>,
    pub carrier_id: Option<String>,
    pub line_of_business: Option<String>,
}

impl Filters {
    /// The restrictions given, as (facts column, value).
    fn set(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (AGENCY, &self.agency_id),
            (AGENT, &self.agent_id),
            (CARRIER, &self.carrier_id),
            (LINE, &self.line_of_business),
        ]
        .into_iter()
        .filter_map(|(c, v)| Some((c, v.as_deref()?)))
    }
}

/// One metric's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// Exact money.
    Money(Decimal),
    Count(i64),
    /// A fraction (0.25 = 25 %); `None` when the denominator is 0.
    Rate(Option<f64>),
}

impl MetricValue {
    pub fn as_money(&self) -> Option<Decimal> {
        match self {
            MetricValue::Money(m) => Some(*m),
            _ => None,
        }
    }
    pub fn as_count(&self) -> Option<i64> {
        match self {
            MetricValue::Count(c) => Some(*c),
            _ => None,
        }
    }
    pub fn as_rate(&self) -> Option<Option<f64>> {
        match self {
            MetricValue::Rate(r) => Some(*r),
            _ => None,
        }
    }
}

/// One group of a [`compute`] result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// One key per requested dimension, in order.
    pub group: Vec<String>,
    /// One value per requested metric, in order.
    pub values: Vec<MetricValue>,
}

/// Headline figures at an as-of date (see [`kpis`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    pub as_of: NaiveDate,
    /// Gross commission, first of the as-of month up to and including as-of.
    pub mtd_commission: Decimal,
    /// Gross commission, 1 January of the as-of year up to and including as-of.
    pub ytd_commission: Decimal,
    /// Policies active at the as-of date.
    pub active_policies: i64,
    /// Written premium, 1 January up to and including as-of.
    pub written_premium_ytd: Decimal,
    /// Renewal rate over `[as_of - 12 months, as_of)`.
    pub retention_rate_12m: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("query failed: {0}")]
    Engine(#[from] DataFusionError),
    #[error("invalid date range: from {from} is after to {to}")]
    InvalidRange { from: NaiveDate, to: NaiveDate },
    #[error("dimension {0} is not available for {1} (a point-in-time figure has no period)")]
    UnsupportedDimension(Dimension, &'static str),
    #[error("date arithmetic out of range at {0}")]
    DateOutOfRange(NaiveDate),
    #[error("unexpected type {data_type} for result column {column}")]
    UnexpectedType { column: String, data_type: DataType },
    #[error("amount in result column {0} does not fit a decimal")]
    Overflow(String),
}

// ---------------------------------------------------------------------------
// Query counting
// ---------------------------------------------------------------------------

static QUERIES_RUN: AtomicU64 = AtomicU64::new(0);

/// Engine queries run by this module since the process started.
pub fn queries_run() -> u64 {
    QUERIES_RUN.load(Ordering::Relaxed)
}

/// Per-session query counter: add it to the session's config
/// (`SessionConfig::new().with_extension(Arc::new(QueryCounter::default()))`)
/// and every engine query this module runs on that session increments it.
#[derive(Debug, Default)]
pub struct QueryCounter(AtomicU64);

impl QueryCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The session's [`QueryCounter`] value, if it has one.
pub fn queries_run_in(ctx: &SessionContext) -> Option<u64> {
    ctx.state_ref().read().config().get_extension::<QueryCounter>().map(|c| c.get())
}

/// Run one engine query (the only place this module executes a plan).
async fn run(ctx: &SessionContext, df: DataFrame) -> Result<Vec<RecordBatch>, MetricsError> {
    QUERIES_RUN.fetch_add(1, Ordering::Relaxed);
    if let Some(c) = ctx.state_ref().read().config().get_extension::<QueryCounter>() {
        c.0.fetch_add(1, Ordering::Relaxed);
    }
    Ok(df.collect().await?)
}

// ---------------------------------------------------------------------------
// Facts: the rows each family aggregates, with the four entity dimensions
// under the same column names.
// ---------------------------------------------------------------------------

pub(super) const AGENCY: &str = "agency_id";
pub(super) const AGENT: &str = "agent_id";
pub(super) const CARRIER: &str = "carrier_id";
pub(super) const LINE: &str = "line_of_business";

pub(super) const TRANSACTION_DATE: &str = "transaction_date";
const EFFECTIVE_DATE: &str = "effective_date";
pub(super) const EXPIRATION_DATE: &str = "expiration_date";
pub(super) const CANCELLATION_DATE: &str = "cancellation_date";
/// On renewal facts: the policy's own id when some policy renews it, else null.
pub(super) const RENEWED_BY_SOME_POLICY: &str = "renewed_policy_id";
/// How many policies a fact row stands for (1 for a policy).
pub(super) const POLICY_WEIGHT: &str = "policies";
/// Period columns of the cancellation family's period table.
const PERIOD_FROM: &str = "period_from";
const PERIOD_TO: &str = "period_to";

/// Table of monthly commission aggregates built at publish time (see
/// [`commission_rollups`](super::rollups::commission_rollups)).
pub use crate::lake::catalog::COMMISSIONS_MONTHLY as COMMISSION_ROLLUP;
use crate::lake::catalog::{COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER};

/// The monthly commission rollups, narrowest first, each with the entity
/// columns it keeps (all keep the month, `kind` and the three amounts). The
/// narrow ones are the full one summed over the columns they drop.
pub(super) const COMMISSION_ROLLUPS: [(&str, &[&str]); 3] = [
    (COMMISSIONS_MONTHLY_BY_AGENT, &[AGENT, AGENCY]),
    (COMMISSIONS_MONTHLY_BY_CARRIER, &[CARRIER, LINE]),
    (COMMISSION_ROLLUP, &[AGENT, CARRIER, AGENCY, LINE]),
];

/// The commission rollups that can answer a query grouped by `group_by`
/// under `filters`, narrowest first: those keeping every entity column it
/// groups or filters by.
pub fn commission_rollups_for(group_by: &[Dimension], filters: &Filters) -> Vec<&'static str> {
    let needed: Vec<&str> = group_by.iter().filter_map(|d| d.column()).chain(filters.set().map(|(c, _)| c)).collect();
    COMMISSION_ROLLUPS
        .iter()
        .filter(|(_, kept)| needed.iter().all(|c| kept.contains(c)))
        .map(|(table, _)| *table)
        .collect()
}

/// Commission rows, each with its policy's agency and line of business.
///
/// When `range` is whole months and the snapshot has a monthly rollup that
/// keeps every column the query groups or filters by, the narrowest such
/// rollup's rows stand in for the raw ones: they have the same columns
/// (`transaction_date` is the first of the month, amounts are sums per
/// month × kind × the kept columns), so every metric definition below gives
/// the same figure from either.
async fn commission_facts(
    ctx: &SessionContext,
    filters: &Filters,
    range: &DateRange,
    group_by: &[Dimension],
) -> Result<DataFrame, MetricsError> {
    if fits_rollup(range) {
        for table in commission_rollups_for(group_by, filters) {
            if ctx.table_exist(table)? {
                ROLLUP_READS.fetch_add(1, Ordering::Relaxed);
                return apply_filters(ctx.table(table).await?, filters);
            }
        }
    }
    raw_commission_facts(ctx, filters).await
}

/// Whether a range can be answered from monthly aggregates.
pub fn fits_rollup(range: &DateRange) -> bool {
    range.from.day() == 1 && range.to.day() == 1
}

static ROLLUP_READS: AtomicU64 = AtomicU64::new(0);

/// Commission queries answered from the monthly rollup since start.
pub fn rollup_reads() -> u64 {
    ROLLUP_READS.load(Ordering::Relaxed)
}

/// Table of renewal outcomes built at publish time (see
/// [`renewal_rollup`](super::rollups::renewal_rollup)).
pub use crate::lake::catalog::RENEWAL_OUTCOMES as RENEWAL_ROLLUP;

/// Policies that can come up for renewal. Where the snapshot has the
/// renewal-outcome rollup, it stands in for any range: rows per expiration
/// date × agency × agent × carrier × line × renewed-or-not, weighted by
/// their number of policies, with policies cancelled before expiring left
/// out (they are never up). It saves the self-join that finds renewals.
async fn renewal_facts(ctx: &SessionContext, filters: &Filters) -> Result<DataFrame, MetricsError> {
    if ctx.table_exist(RENEWAL_ROLLUP)? {
        ROLLUP_READS.fetch_add(1, Ordering::Relaxed);
        return apply_filters(ctx.table(RENEWAL_ROLLUP).await?, filters);
    }
    policy_facts(ctx, filters, true).await
}

async fn raw_commission_facts(ctx: &SessionContext, filters: &Filters) -> Result<DataFrame, MetricsError> {
    let commissions = ctx.table("commissions").await?.select(vec![
        col("policy_id"),
        col(AGENT),
        col(CARRIER),
        col(TRANSACTION_DATE),
        col("kind"),
        col("premium_amount"),
        col("gross_commission"),
        col("agent_commission"),
    ])?;
    let policies = ctx.table("policies").await?.select(vec![
        col("policy_id").alias("policy_of_commission"),
        col(AGENCY),
        col(LINE),
    ])?;
    let facts = commissions.join(policies, JoinType::Left, &["policy_id"], &["policy_of_commission"], None)?;
    apply_filters(facts, filters)
}

/// Policies; with `renewals`, also [`RENEWED_BY_SOME_POLICY`].
async fn policy_facts(ctx: &SessionContext, filters: &Filters, renewals: bool) -> Result<DataFrame, MetricsError> {
    let policies = ctx.table("policies").await?.select(vec![
        col("policy_id"),
        col(AGENCY),
        col(AGENT),
        col(CARRIER),
        col(LINE),
        col(EFFECTIVE_DATE),
        col(EXPIRATION_DATE),
        col(CANCELLATION_DATE),
        col("premium"),
        col("renewal_of"),
    ])?;
    // Each policy weighs one; a rollup row weighs the policies it stands for.
    let policies = apply_filters(policies, filters)?.with_column(POLICY_WEIGHT, lit(1i64))?;
    if !renewals {
        return Ok(policies);
    }
    // Renewed by any policy of the tenant: the renewing term may belong to
    // another agent, carrier or line, so filters do not apply to it.
    let renewed = ctx
        .table("policies")
        .await?
        .filter(col("renewal_of").is_not_null())?
        .aggregate(vec![col("renewal_of").alias(RENEWED_BY_SOME_POLICY)], vec![])?;
    Ok(policies.join(renewed, JoinType::Left, &["policy_id"], &[RENEWED_BY_SOME_POLICY], None)?)
}

fn apply_filters(mut df: DataFrame, filters: &Filters) -> Result<DataFrame, MetricsError> {
    for (column, value) in filters.set() {
        df = df.filter(col(column).eq(lit(value)))?;
    }
    Ok(df)
}

// ---------------------------------------------------------------------------
// Metric definitions: the one place each metric of the contract is written.
// ---------------------------------------------------------------------------

/// Bounds of a half-open window: literals, or the period columns of the
/// cancellation family's period table.
#[derive(Clone)]
struct Window {
    from: Expr,
    to: Expr,
}

impl Window {
    fn of(range: &DateRange) -> Window {
        Window { from: date_lit(range.from), to: date_lit(range.to) }
    }
    fn periods() -> Window {
        Window { from: col(PERIOD_FROM), to: col(PERIOD_TO) }
    }
}

fn date_lit(d: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(date_to_days(d))))
}

/// `date` in `[from, to)`.
fn in_window(date: &str, w: &Window) -> Expr {
    col(date).gt_eq(w.from.clone()).and(col(date).lt(w.to.clone()))
}

fn sum_if(cond: Expr, value: Expr) -> Result<Expr, MetricsError> {
    Ok(sum(when(cond, value).end()?))
}

fn count_if(cond: Expr) -> Result<Expr, MetricsError> {
    Ok(count(when(cond, lit(1i64)).end()?))
}

/// Commission rows that enter the average commission rate.
pub(crate) fn is_new_or_renewal() -> Expr {
    in_list(col("kind"), vec![lit("new"), lit("renewal")], false)
}

/// Gross commission: sum of `gross_commission` of rows with `transaction_date`
/// in the window (chargebacks are negative and subtract).
fn gross_commission(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(in_window(TRANSACTION_DATE, w), col("gross_commission"))
}

/// Agent commission: sum of `agent_commission` of the same rows, for the
/// agent each row names (override rows pay the manager they name).
fn agent_commission(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(in_window(TRANSACTION_DATE, w), col("agent_commission"))
}

/// Average commission rate = this / [`commission_rate_denominator`]: gross
/// commission of `new` and `renewal` rows ...
fn commission_rate_numerator(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(in_window(TRANSACTION_DATE, w).and(is_new_or_renewal()), col("gross_commission"))
}

/// ... over their `premium_amount`.
fn commission_rate_denominator(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(in_window(TRANSACTION_DATE, w).and(is_new_or_renewal()), col("premium_amount"))
}

/// Written premium: sum of `premium` of policies effective in the window.
fn written_premium(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(in_window(EFFECTIVE_DATE, w), col("premium"))
}

/// Policy count: policies effective in the window.
fn policy_count(w: &Window) -> Result<Expr, MetricsError> {
    count_if(in_window(EFFECTIVE_DATE, w))
}

/// New-business count: policies effective in the window with no `renewal_of`.
fn new_business_count(w: &Window) -> Result<Expr, MetricsError> {
    count_if(in_window(EFFECTIVE_DATE, w).and(col("renewal_of").is_null()))
}

/// Active at `d`: `effective_date <= d < expiration_date` and no
/// `cancellation_date <= d`.
fn is_active_at(d: Expr) -> Expr {
    col(EFFECTIVE_DATE)
        .lt_eq(d.clone())
        .and(d.clone().lt(col(EXPIRATION_DATE)))
        .and(col(CANCELLATION_DATE).is_null().or(col(CANCELLATION_DATE).gt(d)))
}

fn active_policies_at(d: Expr) -> Result<Expr, MetricsError> {
    count_if(is_active_at(d))
}

/// Up for renewal: `expiration_date` in the window and not cancelled before
/// it (no `cancellation_date < expiration_date`).
fn is_up_for_renewal(w: &Window) -> Expr {
    in_window(EXPIRATION_DATE, w)
        .and(col(CANCELLATION_DATE).is_null().or(col(CANCELLATION_DATE).gt_eq(col(EXPIRATION_DATE))))
}

/// Renewal rate = [`renewed`] / this.
fn up_for_renewal(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(is_up_for_renewal(w), col(POLICY_WEIGHT))
}

/// Up for renewal and named in some policy's `renewal_of`.
fn renewed(w: &Window) -> Result<Expr, MetricsError> {
    sum_if(is_up_for_renewal(w).and(col(RENEWED_BY_SOME_POLICY).is_not_null()), col(POLICY_WEIGHT))
}

/// Cancellation rate = this / policies active at the window's start.
fn is_cancelled_in(w: &Window) -> Expr {
    in_window(CANCELLATION_DATE, w)
}

fn cancelled(w: &Window) -> Result<Expr, MetricsError> {
    count_if(is_cancelled_in(w))
}

// ---------------------------------------------------------------------------
// Grouping
// ---------------------------------------------------------------------------

/// Where time-dimension keys come from.
enum TimeKeys<'a> {
    /// Computed from this date column of the facts.
    Date(&'a str),
    /// Columns `period_key_<i>` of the period table.
    Periods,
    /// Time dimensions are not allowed (checked before).
    None,
}

fn period_key_column(i: usize) -> String {
    format!("period_key_{i}")
}

fn group_exprs(group_by: &[Dimension], time: &TimeKeys) -> Vec<Expr> {
    group_by
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let e = match (d.column(), time) {
                (Some(c), _) => col(c),
                (None, TimeKeys::Date(date)) => time_key_expr(*d, col(*date)),
                (None, TimeKeys::Periods) => col(period_key_column(i)),
                (None, TimeKeys::None) => unreachable!("time dimensions rejected before planning"),
            };
            e.alias(format!("g{i}"))
        })
        .collect()
}

/// The first day of the period holding `date`; [`grouped`] names it with
/// [`period_key`].
fn time_key_expr(d: Dimension, date: Expr) -> Expr {
    let unit = match d {
        Dimension::Month => "month",
        Dimension::Quarter => "quarter",
        Dimension::Year => "year",
        _ => unreachable!("entity dimension"),
    };
    cast(date_trunc(lit(unit), date), DataType::Date32)
}

/// The key of the period of `dim` holding `d` ("2024-03", "2024-Q1",
/// "2024"); `None` for entity dimensions.
pub fn period_key(dim: Dimension, d: NaiveDate) -> Option<String> {
    match dim {
        Dimension::Month => Some(format!("{:04}-{:02}", d.year(), d.month())),
        Dimension::Quarter => Some(format!("{:04}-Q{}", d.year(), d.month0() / 3 + 1)),
        Dimension::Year => Some(format!("{:04}", d.year())),
        _ => None,
    }
}

/// The periods of `dim` overlapping `range`, each with its key and its part
/// of the range (`[max(from, start), min(to, end))`), in order. Empty for
/// entity dimensions and empty ranges.
pub fn periods(range: &DateRange, dim: Dimension) -> Vec<(String, DateRange)> {
    let Some(months) = dim.months() else { return Vec::new() };
    let mut out = Vec::new();
    if range.is_empty() {
        return out;
    }
    let first_month = (range.from.month0() / months) * months + 1;
    let mut start = NaiveDate::from_ymd_opt(range.from.year(), first_month, 1).expect("first of a month");
    while start < range.to {
        let Some(end) = start.checked_add_months(Months::new(months)) else { break };
        let part = DateRange { from: start.max(range.from), to: end.min(range.to) };
        out.push((period_key(dim, start).expect("time dimension"), part));
        start = end;
    }
    out
}

/// The cancellation family's period table when grouping by time: one row
/// per period of the finest requested time dimension, with its bounds and
/// the key of every requested time dimension.
fn period_table(ctx: &SessionContext, range: &DateRange, group_by: &[Dimension]) -> Result<DataFrame, MetricsError> {
    let finest = group_by.iter().filter_map(|d| d.months().map(|m| (m, *d))).min().expect("a time dimension").1;
    let parts = periods(range, finest);
    let mut fields =
        vec![Field::new(PERIOD_FROM, DataType::Date32, false), Field::new(PERIOD_TO, DataType::Date32, false)];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(parts.iter().map(|(_, r)| date_to_days(r.from)))),
        Arc::new(Date32Array::from_iter_values(parts.iter().map(|(_, r)| date_to_days(r.to)))),
    ];
    for (i, d) in group_by.iter().enumerate().filter(|(_, d)| d.is_time()) {
        fields.push(Field::new(period_key_column(i), DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            parts.iter().map(|(_, r)| period_key(*d, r.from).expect("time dimension")),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DataFusionError::from)?;
    Ok(ctx.read_batch(batch)?)
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// An aggregate's value: a Decimal128 sum (null = no rows = 0) or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Money(Decimal),
    Count(i64),
}

impl Num {
    fn money(self) -> Decimal {
        match self {
            Num::Money(m) => m,
            Num::Count(c) => Decimal::from(c),
        }
    }
    fn count(self) -> i64 {
        match self {
            Num::Count(c) => c,
            Num::Money(m) => m.to_i64().unwrap_or_default(),
        }
    }
    fn is_zero(self) -> bool {
        match self {
            Num::Money(m) => m.is_zero(),
            Num::Count(c) => c == 0,
        }
    }
    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Count(a), Num::Count(b)) => Num::Count(a + b),
            (a, b) => Num::Money(a.money() + b.money()),
        }
    }
}

/// `num / den`, null when `den` is 0.
fn rate(num: Num, den: Num) -> Option<f64> {
    if den.is_zero() {
        return None;
    }
    match (num, den) {
        (Num::Count(n), Num::Count(d)) => Some(n as f64 / d as f64),
        (n, d) => n.money().checked_div(d.money()).and_then(|r| r.to_f64()),
    }
}

type Groups = BTreeMap<Vec<String>, Vec<Num>>;

/// Run an aggregate whose first `n_keys` columns are group keys and the rest
/// aggregates; keyed by the group's strings (null key = `""`).
async fn grouped(ctx: &SessionContext, df: DataFrame, group_by: &[Dimension]) -> Result<Groups, MetricsError> {
    let n_keys = group_by.len();
    let batches = run(ctx, df).await?;
    let mut out = Groups::new();
    for batch in &batches {
        let schema = batch.schema();
        let keys = (0..n_keys)
            .map(|i| {
                let column = batch.column(i);
                // Periods are grouped on their first day (cheap) and named
                // here, once per group rather than once per row.
                if let Some(days) = column.as_any().downcast_ref::<Date32Array>() {
                    return Ok(days
                        .iter()
                        .map(|d| d.and_then(|d| period_key(group_by[i], days_to_date(d))))
                        .collect::<StringArray>());
                }
                let utf8 = arrow::compute::cast(column, &DataType::Utf8).map_err(DataFusionError::from)?;
                Ok(utf8.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
            })
            .collect::<Result<Vec<_>, MetricsError>>()?;
        for row in 0..batch.num_rows() {
            let key: Vec<String> =
                keys.iter().map(|k| if k.is_null(row) { String::new() } else { k.value(row).to_string() }).collect();
            let mut values = Vec::with_capacity(batch.num_columns() - n_keys);
            for i in n_keys..batch.num_columns() {
                values.push(num_at(batch.column(i), row, schema.field(i).name())?);
            }
            match out.get_mut(&key) {
                // Two engine keys can only meet here as null and "" (ids
                // are never empty in the lake); merge them.
                Some(prev) => prev.iter_mut().zip(values).for_each(|(p, v)| *p = p.add(v)),
                None => {
                    out.insert(key, values);
                }
            }
        }
    }
    Ok(out)
}

fn num_at(array: &ArrayRef, row: usize, name: &str) -> Result<Num, MetricsError> {
    match array.data_type() {
        DataType::Decimal128(_, scale) => {
            let a = array.as_any().downcast_ref::<Decimal128Array>().expect("decimal128");
            if a.is_null(row) {
                return Ok(Num::Money(Decimal::ZERO));
            }
            let scale = u32::try_from(*scale).map_err(|_| MetricsError::Overflow(name.to_string()))?;
            Decimal::try_from_i128_with_scale(a.value(row), scale)
                .map(Num::Money)
                .map_err(|_| MetricsError::Overflow(name.to_string()))
        }
        DataType::Int64 => {
            let a = array.as_any().downcast_ref::<Int64Array>().expect("int64");
            Ok(Num::Count(if a.is_null(row) { 0 } else { a.value(row) }))
        }
        other => Err(MetricsError::UnexpectedType { column: name.to_string(), data_type: other.clone() }),
    }
}

fn aggregates(exprs: Vec<Result<Expr, MetricsError>>) -> Result<Vec<Expr>, MetricsError> {
    exprs.into_iter().enumerate().map(|(i, e)| Ok(e?.alias(format!("m{i}")))).collect()
}

// ---------------------------------------------------------------------------
// compute
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Family {
    /// [gross, agent, rate numerator, rate denominator]
    Commission,
    /// [written premium, policy count, new-business count]
    Policy,
    /// [up for renewal, renewed]
    Renewal,
    /// [cancelled, active at start]
    Cancellation,
}

/// The one query of `family` for `range`, grouped by `group_by`.
async fn family_query(
    ctx: &SessionContext,
    family: Family,
    range: &DateRange,
    group_by: &[Dimension],
    filters: &Filters,
) -> Result<DataFrame, MetricsError> {
    let w = Window::of(range);
    let df = match family {
        Family::Commission => {
            commission_facts(ctx, filters, range, group_by).await?.filter(in_window(TRANSACTION_DATE, &w))?.aggregate(
                group_exprs(group_by, &TimeKeys::Date(TRANSACTION_DATE)),
                aggregates(vec![
                    gross_commission(&w),
                    agent_commission(&w),
                    commission_rate_numerator(&w),
                    commission_rate_denominator(&w),
                ])?,
            )?
        }
        Family::Policy => policy_facts(ctx, filters, false).await?.filter(in_window(EFFECTIVE_DATE, &w))?.aggregate(
            group_exprs(group_by, &TimeKeys::Date(EFFECTIVE_DATE)),
            aggregates(vec![written_premium(&w), policy_count(&w), new_business_count(&w)])?,
        )?,
        Family::Renewal => renewal_facts(ctx, filters).await?.filter(is_up_for_renewal(&w))?.aggregate(
            group_exprs(group_by, &TimeKeys::Date(EXPIRATION_DATE)),
            aggregates(vec![up_for_renewal(&w), renewed(&w)])?,
        )?,
        Family::Cancellation if group_by.iter().any(|d| d.is_time()) => {
            // Each period is its own window: cancellations in it over
            // policies active at its start.
            let p = Window::periods();
            policy_facts(ctx, filters, false)
                .await?
                .join_on(
                    period_table(ctx, range, group_by)?,
                    JoinType::Inner,
                    [is_cancelled_in(&p).or(is_active_at(p.from.clone()))],
                )?
                .aggregate(
                    group_exprs(group_by, &TimeKeys::Periods),
                    aggregates(vec![cancelled(&p), active_policies_at(p.from.clone())])?,
                )?
        }
        Family::Cancellation => policy_facts(ctx, filters, false)
            .await?
            .filter(is_cancelled_in(&w).or(is_active_at(w.from.clone())))?
            .aggregate(
                group_exprs(group_by, &TimeKeys::None),
                aggregates(vec![cancelled(&w), active_policies_at(w.from.clone())])?,
            )?,
    };
    Ok(df)
}

/// Compute `metrics` over `range`, one row per group of `group_by`, under
/// `filters`. One engine query per metric family asked for (see the module
/// documentation for groups, keys and ordering).
pub async fn compute(
    ctx: &SessionContext,
    metrics: &[Metric],
    range: &DateRange,
    group_by: &[Dimension],
    filters: &Filters,
) -> Result<Vec<Row>, MetricsError> {
    range.check()?;
    let families: BTreeSet<Family> = metrics.iter().map(|m| m.family()).collect();
    let mut plans = Vec::with_capacity(families.len());
    for family in families {
        plans.push((family, family_query(ctx, family, range, group_by, filters).await?));
    }
    let results: HashMap<Family, Groups> = futures::future::try_join_all(
        plans
            .into_iter()
            .map(|(family, df)| async move { Ok::<_, MetricsError>((family, grouped(ctx, df, group_by).await?)) }),
    )
    .await?
    .into_iter()
    .collect();

    let mut keys: BTreeSet<Vec<String>> = results.values().flat_map(|g| g.keys().cloned()).collect();
    match group_by {
        [] => {
            keys.insert(Vec::new());
        }
        [d] if d.is_time() => keys.extend(periods(range, *d).into_iter().map(|(k, _)| vec![k])),
        _ => {}
    }
    Ok(keys
        .into_iter()
        .map(|key| {
            let values =
                metrics.iter().map(|m| metric_value(*m, results.get(&m.family()).and_then(|g| g.get(&key)))).collect();
            Row { group: key, values }
        })
        .collect())
}

/// The renewal rate's two counts for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalCounts {
    pub group: Vec<String>,
    /// Policies expiring in the range that were not cancelled before.
    pub up_for_renewal: i64,
    /// Those of them that some policy names in `renewal_of`.
    pub renewed: i64,
}

/// Up-for-renewal and renewed counts per group (one engine query); groups
/// with nothing up for renewal are absent.
pub async fn renewal_counts(
    ctx: &SessionContext,
    range: &DateRange,
    group_by: &[Dimension],
    filters: &Filters,
) -> Result<Vec<RenewalCounts>, MetricsError> {
    range.check()?;
    let df = family_query(ctx, Family::Renewal, range, group_by, filters).await?;
    Ok(grouped(ctx, df, group_by)
        .await?
        .into_iter()
        .map(|(group, v)| RenewalCounts { group, up_for_renewal: v[0].count(), renewed: v[1].count() })
        .collect())
}

/// A metric's value from its family's aggregates for one group (`None`: the
/// group has no rows in that family).
fn metric_value(metric: Metric, v: Option<&Vec<Num>>) -> MetricValue {
    let at = |i: usize| v.map_or(Num::Count(0), |v| v[i]);
    match metric {
        Metric::GrossCommission => MetricValue::Money(at(0).money()),
        Metric::AgentCommission => MetricValue::Money(at(1).money()),
        Metric::AverageCommissionRate => MetricValue::Rate(rate(at(2), at(3))),
        Metric::WrittenPremium => MetricValue::Money(at(0).money()),
        Metric::PolicyCount => MetricValue::Count(at(1).count()),
        Metric::NewBusinessCount => MetricValue::Count(at(2).count()),
        Metric::RenewalRate => MetricValue::Rate(rate(at(1), at(0))),
        Metric::CancellationRate => MetricValue::Rate(rate(at(0), at(1))),
    }
}

fn reject_time_dimensions(group_by: &[Dimension], what: &'static str) -> Result<(), MetricsError> {
    match group_by.iter().find(|d| d.is_time()) {
        Some(d) => Err(MetricsError::UnsupportedDimension(*d, what)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Point-in-time figures
// ---------------------------------------------------------------------------

/// Policies active at `at`, per group of `group_by` (entity dimensions only).
/// One engine query. With no dimensions: one row with an empty key.
pub async fn active_policies(
    ctx: &SessionContext,
    at: NaiveDate,
    filters: &Filters,
    group_by: &[Dimension],
) -> Result<Vec<(Vec<String>, i64)>, MetricsError> {
    reject_time_dimensions(group_by, "active policies")?;
    let d = date_lit(at);
    let df = policy_facts(ctx, filters, false)
        .await?
        .filter(is_active_at(d.clone()))?
        .aggregate(group_exprs(group_by, &TimeKeys::None), aggregates(vec![active_policies_at(d)])?)?;
    let groups = grouped(ctx, df, group_by).await?;
    Ok(groups.into_iter().map(|(k, v)| (k, v[0].count())).collect())
}

/// Headline figures at `as_of`, per group of `group_by` (entity dimensions
/// only; empty → one row with an empty key). Two engine queries.
///
/// - MTD / YTD commission: gross commission over `[first of month/year, as_of]`.
/// - Active policies at `as_of`.
/// - Written premium YTD over `[1 January, as_of]`.
/// - Retention 12m: renewal rate over `[as_of - 12 months, as_of)` — the
///   contract's half-open range ending at the as-of date, so a policy
///   expiring on the as-of day itself is not yet judged (its renewal may
///   land that day). `as_of - 12 months` clamps to the month's end (29
///   February → 28 February).
///
/// A group appears when it has a commission row YTD, or a policy effective
/// YTD, active at `as_of`, or up for renewal in the 12 months.
pub async fn kpis(
    ctx: &SessionContext,
    as_of: NaiveDate,
    filters: &Filters,
    group_by: &[Dimension],
) -> Result<Vec<(Vec<String>, Kpis)>, MetricsError> {
    reject_time_dimensions(group_by, "KPIs")?;
    let through = as_of.checked_add_days(Days::new(1)).ok_or(MetricsError::DateOutOfRange(as_of))?;
    let year_start = NaiveDate::from_ymd_opt(as_of.year(), 1, 1).ok_or(MetricsError::DateOutOfRange(as_of))?;
    let month_start = as_of.with_day(1).ok_or(MetricsError::DateOutOfRange(as_of))?;
    let ytd_range = DateRange::new(year_start, through);
    let ytd = Window::of(&ytd_range);
    let mtd = Window::of(&DateRange::new(month_start, through));
    let retention_from = as_of.checked_sub_months(Months::new(12)).ok_or(MetricsError::DateOutOfRange(as_of))?;
    let retention = Window::of(&DateRange::new(retention_from, as_of));
    let at = date_lit(as_of);

    let commission = commission_facts(ctx, filters, &ytd_range, group_by)
        .await?
        .filter(in_window(TRANSACTION_DATE, &ytd))?
        .aggregate(
            group_exprs(group_by, &TimeKeys::None),
            aggregates(vec![gross_commission(&mtd), gross_commission(&ytd)])?,
        )?;
    let policy = policy_facts(ctx, filters, false)
        .await?
        .filter(in_window(EFFECTIVE_DATE, &ytd).or(is_active_at(at.clone())))?
        .aggregate(
            group_exprs(group_by, &TimeKeys::None),
            aggregates(vec![written_premium(&ytd), active_policies_at(at)])?,
        )?;
    let renewal = renewal_facts(ctx, filters).await?.filter(is_up_for_renewal(&retention))?.aggregate(
        group_exprs(group_by, &TimeKeys::None),
        aggregates(vec![up_for_renewal(&retention), renewed(&retention)])?,
    )?;
    let (commission, policy, renewal) = futures::try_join!(
        grouped(ctx, commission, group_by),
        grouped(ctx, policy, group_by),
        grouped(ctx, renewal, group_by)
    )?;

    let mut keys: BTreeSet<Vec<String>> =
        commission.keys().chain(policy.keys()).chain(renewal.keys()).cloned().collect();
    if group_by.is_empty() {
        keys.insert(Vec::new());
    }
    Ok(keys
        .into_iter()
        .map(|key| {
            let c = |i: usize| commission.get(&key).map_or(Num::Count(0), |v| v[i]);
            let p = |i: usize| policy.get(&key).map_or(Num::Count(0), |v| v[i]);
            let r = |i: usize| renewal.get(&key).map_or(Num::Count(0), |v| v[i]);
            let k = Kpis {
                as_of,
                mtd_commission: c(0).money(),
                ytd_commission: c(1).money(),
                written_premium_ytd: p(0).money(),
                active_policies: p(1).count(),
                retention_rate_12m: rate(r(1), r(0)),
            };
            (key, k)
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Ranking
// ---------------------------------------------------------------------------

/// Competition ranks ("1224"): 1 = highest; equal values share the lower
/// rank number and the next distinct value skips: `[10, 8, 8, 5]` →
/// `[1, 2, 2, 4]`. Ranks follow the input order.
pub fn competition_ranks(values: &[Decimal]) -> Vec<u32> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    values.iter().map(|v| 1 + sorted.partition_point(|x| x > v) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }
    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn competition_ranks_share_the_lower_number_and_skip() {
        assert_eq!(competition_ranks(&[d("10"), d("8"), d("8"), d("5")]), vec![1, 2, 2, 4]);
        // Input order is kept; 1.0 and 1.00 are equal; negatives rank last.
        assert_eq!(competition_ranks(&[d("5"), d("-1"), d("10"), d("8.0"), d("8.00")]), vec![4, 5, 1, 2, 2]);
        assert_eq!(competition_ranks(&[d("3"), d("3"), d("3")]), vec![1, 1, 1]);
        assert_eq!(competition_ranks(&[d("1"), d("2"), d("2"), d("3"), d("3"), d("3")]), vec![6, 4, 4, 1, 1, 1]);
        assert_eq!(competition_ranks(&[d("0")]), vec![1]);
        assert_eq!(competition_ranks(&[]), Vec::<u32>::new());
    }

    #[test]
    fn period_keys_and_parts() {
        assert_eq!(period_key(Dimension::Month, date("2024-03-31")).unwrap(), "2024-03");
        assert_eq!(period_key(Dimension::Quarter, date("2024-03-31")).unwrap(), "2024-Q1");
        assert_eq!(period_key(Dimension::Quarter, date("2024-10-01")).unwrap(), "2024-Q4");
        assert_eq!(period_key(Dimension::Year, date("2024-10-01")).unwrap(), "2024");
        assert_eq!(period_key(Dimension::Agent, date("2024-10-01")), None);

        let r = DateRange::new(date("2024-01-15"), date("2024-03-10"));
        let months = periods(&r, Dimension::Month);
        assert_eq!(
            months,
            vec![
                ("2024-01".to_string(), DateRange::new(date("2024-01-15"), date("2024-02-01"))),
                ("2024-02".to_string(), DateRange::new(date("2024-02-01"), date("2024-03-01"))),
                ("2024-03".to_string(), DateRange::new(date("2024-03-01"), date("2024-03-10"))),
            ]
        );
        let quarters = periods(&DateRange::new(date("2023-11-30"), date("2024-04-01")), Dimension::Quarter);
        let keys: Vec<&str> = quarters.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["2023-Q4", "2024-Q1"]);
        assert_eq!(quarters[0].1.from, date("2023-11-30"));
        assert!(periods(&DateRange::new(date("2024-01-01"), date("2024-01-01")), Dimension::Year).is_empty());
        assert!(periods(&r, Dimension::Carrier).is_empty());
    }

    #[test]
    fn rates_are_null_on_a_zero_denominator_and_exact_otherwise() {
        assert_eq!(rate(Num::Count(1), Num::Count(0)), None);
        assert_eq!(rate(Num::Money(d("5")), Num::Money(d("0.00"))), None);
        assert_eq!(rate(Num::Count(2), Num::Count(4)), Some(0.5));
        assert_eq!(rate(Num::Money(d("510.00")), Num::Money(d("4250.00"))), Some(0.12));
    }

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        for d in Dimension::ALL {
            assert_eq!(Dimension::from_name(d.name()), Some(d));
        }
    }
}
