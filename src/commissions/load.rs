//! Reading a tenant's schedules, agents, policies, commission rows and
//! statement lines from its view (a DataFusion session that holds only the
//! tenant's files, so every read here is tenant-scoped by construction).
//! Filter values enter as typed literals, never as SQL text.

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Decimal128Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, concat, take};
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use rust_decimal::Decimal;

use super::columns::Chunked;
use super::money::from_units;
use super::reconcile::{Booked, ByHash, Lines, period_bounds};
use super::schedules::{AgentTerms, Agents, ScheduleRow, Schedules, SplitChange, TermKind};
use crate::contract::values::{date_to_days, days_to_date, parse_month};
use crate::contract::{MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION, RATE_SCALE};
use crate::lake::catalog::AGENT_SPLITS;

/// Which carrier statements a reconciliation covers: one carrier or all,
/// one period or every period that has statement lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub carrier_id: Option<String>,
    pub period: Option<String>,
}

/// A policy term as the commission engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTerm {
    pub policy_id: String,
    pub policy_number: String,
    pub agency_id: String,
    pub agent_id: String,
    pub carrier_id: String,
    pub line_of_business: String,
    pub effective_date: NaiveDate,
    pub expiration_date: NaiveDate,
    pub premium: Decimal,
    pub cancellation_date: Option<NaiveDate>,
    pub renewal_of: Option<String>,
}

/// A booked row of `commissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommissionRow {
    pub commission_id: String,
    pub policy_id: String,
    pub agent_id: String,
    pub carrier_id: String,
    pub transaction_date: NaiveDate,
    pub kind: String,
    pub premium_amount: Decimal,
    pub commission_rate: Decimal,
    pub gross_commission: Decimal,
    pub agent_commission: Decimal,
    pub agency_commission: Decimal,
    pub status: Option<String>,
    pub paid_date: Option<NaiveDate>,
    pub statement_id: Option<String>,
}

/// Columns of one result, as the batches the engine returned (not copied
/// into one: see `columns.rs`).
struct Cols(Vec<RecordBatch>);

impl Cols {
    async fn of(df: DataFrame) -> Result<Cols> {
        Ok(Cols(df.collect().await?))
    }
    fn len(&self) -> usize {
        self.0.iter().map(|b| b.num_rows()).sum()
    }
    fn parts(&self, name: &str, to: &DataType) -> Result<Vec<ArrayRef>> {
        self.0
            .iter()
            .map(|b| {
                let col =
                    b.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("no column {name}")))?;
                Ok(cast(col, to)?)
            })
            .collect()
    }
    fn strings(&self, name: &str) -> Result<Chunked<StringArray>> {
        Ok(Chunked::new(self.parts(name, &DataType::Utf8)?.iter().map(|a| a.as_string::<i32>().clone()).collect()))
    }
    fn dates(&self, name: &str) -> Result<Chunked<Date32Array>> {
        Ok(Chunked::new(self.parts(name, &DataType::Date32)?.iter().map(|a| a.as_primitive().clone()).collect()))
    }
    fn money(&self, name: &str) -> Result<Chunked<Decimal128Array>> {
        let t = DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE);
        Ok(Chunked::new(self.parts(name, &t)?.iter().map(|a| a.as_primitive().clone()).collect()))
    }
    fn rates(&self, name: &str) -> Result<Chunked<Decimal128Array>> {
        let t = DataType::Decimal128(RATE_PRECISION, RATE_SCALE);
        Ok(Chunked::new(self.parts(name, &t)?.iter().map(|a| a.as_primitive().clone()).collect()))
    }
}

fn opt_string(a: &Chunked<StringArray>, i: usize) -> Option<String> {
    a.get(i).map(String::from)
}
fn opt_date(a: &Chunked<Date32Array>, i: usize) -> Option<NaiveDate> {
    (!a.is_null(i)).then(|| days_to_date(a.value(i)))
}
fn opt_dec(a: &Chunked<Decimal128Array>, i: usize) -> Option<Decimal> {
    (!a.is_null(i)).then(|| from_units(a.value(i), a.scale()))
}
fn dec(a: &Chunked<Decimal128Array>, i: usize) -> Decimal {
    from_units(a.value(i), a.scale())
}

fn date_lit(d: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(date_to_days(d))))
}

async fn sql(session: &SessionContext, q: &str) -> Result<Cols> {
    Cols::of(session.sql(q).await?).await
}

pub async fn schedules(session: &SessionContext) -> Result<Schedules> {
    let c = sql(
        session,
        "select carrier_id, line_of_business, kind, rate, effective_from, effective_to from commission_schedules",
    )
    .await?;
    let (carrier, line, kind) = (c.strings("carrier_id")?, c.strings("line_of_business")?, c.strings("kind")?);
    let (rate, from, to) = (c.rates("rate")?, c.dates("effective_from")?, c.dates("effective_to")?);
    let rows = (0..c.len()).filter_map(|i| {
        Some(ScheduleRow {
            carrier_id: carrier.value(i).to_string(),
            line_of_business: line.value(i).to_string(),
            kind: TermKind::parse(kind.value(i))?,
            rate: dec(&rate, i),
            effective_from: days_to_date(from.value(i)),
            effective_to: opt_date(&to, i),
        })
    });
    Ok(Schedules::new(rows.collect::<Vec<_>>()))
}

pub async fn agents(session: &SessionContext) -> Result<Agents> {
    let c =
        sql(session, "select agent_id, agency_id, name, role, manager_id, split_pct, override_pct from agents").await?;
    let (id, agency, name, role) =
        (c.strings("agent_id")?, c.strings("agency_id")?, c.strings("name")?, c.strings("role")?);
    let (manager, split, over) = (c.strings("manager_id")?, c.rates("split_pct")?, c.rates("override_pct")?);
    let agents: Vec<AgentTerms> = (0..c.len())
        .map(|i| AgentTerms {
            agent_id: id.value(i).to_string(),
            agency_id: agency.value(i).to_string(),
            name: name.value(i).to_string(),
            role: role.value(i).to_string(),
            manager_id: opt_string(&manager, i),
            split_pct: opt_dec(&split, i),
            override_pct: opt_dec(&over, i),
        })
        .collect();
    let c =
        sql(session, &format!("select agent_id, effective_from, split_pct, override_pct from {AGENT_SPLITS}")).await?;
    let (id, from, split, over) =
        (c.strings("agent_id")?, c.dates("effective_from")?, c.rates("split_pct")?, c.rates("override_pct")?);
    let changes: Vec<SplitChange> = (0..c.len())
        .map(|i| SplitChange {
            agent_id: id.value(i).to_string(),
            effective_from: days_to_date(from.value(i)),
            split_pct: opt_dec(&split, i),
            override_pct: opt_dec(&over, i),
        })
        .collect();
    Ok(Agents::new(agents, changes))
}

/// Policies by id; `only` restricts to those ids.
pub async fn policies(
    session: &SessionContext,
    only: Option<&BTreeSet<String>>,
) -> Result<HashMap<String, PolicyTerm>> {
    let mut df = session.table("policies").await?;
    if let Some(ids) = only {
        df = df.filter(col("policy_id").in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false))?;
    }
    let c = Cols::of(df).await?;
    let (id, number, agency, agent) =
        (c.strings("policy_id")?, c.strings("policy_number")?, c.strings("agency_id")?, c.strings("agent_id")?);
    let (carrier, line, eff, exp) = (
        c.strings("carrier_id")?,
        c.strings("line_of_business")?,
        c.dates("effective_date")?,
        c.dates("expiration_date")?,
    );
    let (premium, cancel, renewal_of) = (c.money("premium")?, c.dates("cancellation_date")?, c.strings("renewal_of")?);
    Ok((0..c.len())
        .map(|i| {
            let p = PolicyTerm {
                policy_id: id.value(i).to_string(),
                policy_number: number.value(i).to_string(),
                agency_id: agency.value(i).to_string(),
                agent_id: agent.value(i).to_string(),
                carrier_id: carrier.value(i).to_string(),
                line_of_business: line.value(i).to_string(),
                effective_date: days_to_date(eff.value(i)),
                expiration_date: days_to_date(exp.value(i)),
                premium: dec(&premium, i),
                cancellation_date: opt_date(&cancel, i),
                renewal_of: opt_string(&renewal_of, i),
            };
            (p.policy_id.clone(), p)
        })
        .collect())
}

/// Filters on `commissions`: the carrier, a date range `[from, to)`, an
/// agent, commission ids.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    pub carrier_id: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub agent_id: Option<String>,
    pub commission_ids: Option<Vec<String>>,
    pub policy_ids: Option<Vec<String>>,
}

impl RowFilter {
    fn apply(&self, mut df: DataFrame) -> Result<DataFrame> {
        if let Some(c) = &self.carrier_id {
            df = df.filter(col("carrier_id").eq(lit(c.as_str())))?;
        }
        if let Some(f) = self.from {
            df = df.filter(col("transaction_date").gt_eq(date_lit(f)))?;
        }
        if let Some(t) = self.to {
            df = df.filter(col("transaction_date").lt(date_lit(t)))?;
        }
        if let Some(a) = &self.agent_id {
            df = df.filter(col("agent_id").eq(lit(a.as_str())))?;
        }
        if let Some(ids) = &self.commission_ids {
            df = df.filter(col("commission_id").in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false))?;
        }
        if let Some(ids) = &self.policy_ids {
            df = df.filter(col("policy_id").in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false))?;
        }
        Ok(df)
    }
}

pub async fn commission_rows(session: &SessionContext, f: &RowFilter) -> Result<Vec<CommissionRow>> {
    let c = Cols::of(f.apply(session.table("commissions").await?)?).await?;
    let (id, policy, agent, carrier) =
        (c.strings("commission_id")?, c.strings("policy_id")?, c.strings("agent_id")?, c.strings("carrier_id")?);
    let (date, kind, premium, rate) =
        (c.dates("transaction_date")?, c.strings("kind")?, c.money("premium_amount")?, c.rates("commission_rate")?);
    let (gross, agent_c, agency_c) =
        (c.money("gross_commission")?, c.money("agent_commission")?, c.money("agency_commission")?);
    let (status, paid, statement) = (c.strings("status")?, c.dates("paid_date")?, c.strings("statement_id")?);
    let mut rows: Vec<CommissionRow> = (0..c.len())
        .map(|i| CommissionRow {
            commission_id: id.value(i).to_string(),
            policy_id: policy.value(i).to_string(),
            agent_id: agent.value(i).to_string(),
            carrier_id: carrier.value(i).to_string(),
            transaction_date: days_to_date(date.value(i)),
            kind: kind.value(i).to_string(),
            premium_amount: dec(&premium, i),
            commission_rate: dec(&rate, i),
            gross_commission: dec(&gross, i),
            agent_commission: dec(&agent_c, i),
            agency_commission: dec(&agency_c, i),
            status: opt_string(&status, i),
            paid_date: opt_date(&paid, i),
            statement_id: opt_string(&statement, i),
        })
        .collect();
    rows.sort_by(|a, b| (a.transaction_date, &a.commission_id).cmp(&(b.transaction_date, &b.commission_id)));
    Ok(rows)
}

/// Statement lines of the scope.
pub async fn lines(session: &SessionContext, scope: &Scope) -> Result<Lines> {
    let mut df = session.table("statement_lines").await?;
    if let Some(c) = &scope.carrier_id {
        df = df.filter(col("carrier_id").eq(lit(c.as_str())))?;
    }
    if let Some(p) = &scope.period {
        df = df.filter(col("period").eq(lit(p.as_str())))?;
    }
    let df = df.select_columns(&[
        "statement_id",
        "line_id",
        "carrier_id",
        "statement_date",
        "period",
        "policy_number",
        "commission_amount",
        "kind",
    ])?;
    let c = Cols::of(df).await?;
    Ok(Lines {
        statement_id: c.strings("statement_id")?,
        line_id: c.strings("line_id")?,
        carrier_id: c.strings("carrier_id")?,
        statement_date: c.dates("statement_date")?,
        period: c.strings("period")?,
        policy_number: c.strings("policy_number")?,
        amount: c.money("commission_amount")?,
        kind: c.strings("kind")?,
    })
}

/// Month index (year × 12 + month − 1) of a `YYYY-MM` text.
fn month_index(p: &str) -> Option<i32> {
    parse_month(p).map(|(y, m)| y * 12 + m as i32 - 1)
}

/// The (carrier, period) statements the scope covers: those with lines,
/// and the one named when both carrier and period are given. Periods as
/// month indices (year × 12 + month − 1).
pub fn statements_of(lines: &Lines, scope: &Scope) -> BTreeSet<(String, i32)> {
    let distinct: HashSet<(&str, &str), foldhash::fast::RandomState> =
        (0..lines.line_id.len()).map(|i| (lines.carrier_id.value(i), lines.period.value(i))).collect();
    let mut out: BTreeSet<(String, i32)> =
        distinct.into_iter().filter_map(|(c, p)| Some((c.to_string(), month_index(p)?))).collect();
    if let (Some(c), Some(p)) = (&scope.carrier_id, scope.period.as_deref().and_then(month_index)) {
        out.insert((c.clone(), p));
    }
    out
}

/// Policies by the 128-bit xxh3 hash of their id (no string comparisons;
/// two ids would have to collide in 128 bits to be confused), with their
/// number and line as single arrays to take from.
struct PolicyIndex {
    index: HashMap<u128, u32, ByHash>,
    numbers: ArrayRef,
    lines: ArrayRef,
}

impl PolicyIndex {
    fn of(p: &Cols) -> Result<Self> {
        let ids = p.strings("policy_id")?;
        let mut index: HashMap<u128, u32, ByHash> = HashMap::with_capacity_and_hasher(ids.len(), ByHash::default());
        for i in 0..ids.len() {
            index.insert(Self::hash(ids.value(i)), i as u32);
        }
        let single = |name: &str| -> Result<ArrayRef> {
            let parts = p.parts(name, &DataType::Utf8)?;
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(if refs.is_empty() { arrow::array::new_empty_array(&DataType::Utf8) } else { concat(&refs)? })
        };
        Ok(PolicyIndex { index, numbers: single("policy_number")?, lines: single("line_of_business")? })
    }

    fn hash(id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128(id.as_bytes())
    }

    fn get(&self, id: &str) -> Option<u32> {
        self.index.get(&Self::hash(id)).copied()
    }
}

/// Booked rows of the scope (overrides too: the matcher skips them, which
/// is cheaper than a filter that copies every column), with their policy's
/// number and line (null when the policy is not in the lake).
///
/// The two tables are read side by side and joined here on a hash map of
/// policy ids: a DataFusion hash join of the same took 1.2 s of a 2.8 s
/// reconciliation of 1 M lines (dev build); this takes a fraction of it.
pub async fn booked(session: &SessionContext, scope: &Scope) -> Result<Booked> {
    // Overrides are skipped by the matcher: filtering here would copy every column once more.
    let mut df = session.table("commissions").await?;
    if let Some(c) = &scope.carrier_id {
        df = df.filter(col("carrier_id").eq(lit(c.as_str())))?;
    }
    if let Some((from, to)) = scope.period.as_deref().and_then(period_bounds) {
        df = df.filter(col("transaction_date").gt_eq(date_lit(from)).and(col("transaction_date").lt(date_lit(to))))?;
    }
    let df = df.select_columns(&[
        "commission_id",
        "policy_id",
        "carrier_id",
        "transaction_date",
        "kind",
        "premium_amount",
        "commission_rate",
        "gross_commission",
        "status",
        "statement_id",
    ])?;
    let policies =
        session.table("policies").await?.select_columns(&["policy_id", "policy_number", "line_of_business"])?;
    // The policies are fewer: their index is built while the commission rows
    // are still being read.
    let policy_index = async {
        let p = Cols::of(policies).await?;
        tokio::task::spawn_blocking(move || PolicyIndex::of(&p))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
    };
    let (c, policies) = futures::try_join!(Cols::of(df), policy_index)?;
    let (row_policy, kind) = (c.strings("policy_id")?, c.strings("kind")?);
    // Per part of the rows, each row's policy and its number and line.
    // Probing is mostly cache misses: half the parts on another thread.
    let probe = |parts: std::ops::Range<usize>| -> Result<Vec<(StringArray, StringArray)>> {
        parts
            .map(|q| {
                let (ids, kinds) = (&row_policy.parts()[q], &kind.parts()[q]);
                let at: UInt32Array = (0..ids.len())
                    // The matcher skips overrides: they need no policy.
                    .map(|j| if kinds.value(j) == "override" { None } else { policies.get(ids.value(j)) })
                    .collect();
                let number = take(&policies.numbers, &at, None)?.as_string::<i32>().clone();
                let line = take(&policies.lines, &at, None)?.as_string::<i32>().clone();
                Ok((number, line))
            })
            .collect()
    };
    let n = row_policy.parts().len();
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| probe(n / 2..n));
        (probe(0..n / 2), second.join().expect("probing policies"))
    });
    let (numbers, lines_of): (Vec<StringArray>, Vec<StringArray>) = first?.into_iter().chain(second?).unzip();
    Ok(Booked {
        commission_id: c.strings("commission_id")?,
        policy_id: c.strings("policy_id")?,
        carrier_id: c.strings("carrier_id")?,
        transaction_date: c.dates("transaction_date")?,
        kind: c.strings("kind")?,
        premium: c.money("premium_amount")?,
        rate: c.rates("commission_rate")?,
        gross: c.money("gross_commission")?,
        status: c.strings("status")?,
        statement_id: c.strings("statement_id")?,
        policy_number: Chunked::new(numbers),
        line_of_business: Chunked::new(lines_of),
    })
}
