//! Types and root fields of the analytics API.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::Decimal;

use super::errors::{bad_input, internal, not_found};
use super::loaders::{PerfKey, Performance, PerformanceLoader, Subject};
use super::scalars::{Date, Money};
use super::view;
use crate::query::industry::{self, Industry};
use crate::query::metrics::{self, DateRange as Range, Dimension as Dim, Filters, Metric as M, MetricValue};
use crate::query::policies::{self, PolicyInfo};
use crate::query::view::{AgencyInfo, AgentInfo, CarrierInfo, TenantView};

/// A half-open date range `[from, to)`.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct DateRange {
    pub from: Date,
    pub to: Date,
}

impl DateRange {
    fn checked(self) -> Result<Range> {
        if self.to.0 < self.from.0 {
            return Err(bad_input("range.to must not be before range.from"));
        }
        Ok(Range { from: self.from.0, to: self.to.0 })
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Agency,
    Agent,
    Carrier,
    LineOfBusiness,
    Month,
}

impl Dimension {
    fn engine(self) -> Dim {
        match self {
            Dimension::Agency => Dim::Agency,
            Dimension::Agent => Dim::Agent,
            Dimension::Carrier => Dim::Carrier,
            Dimension::LineOfBusiness => Dim::LineOfBusiness,
            Dimension::Month => Dim::Month,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::query::metrics::Metric")]
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
    /// The value of a period without activity.
    fn zero(self) -> MetricValue {
        match self {
            Metric::GrossCommission | Metric::AgentCommission | Metric::WrittenPremium => {
                MetricValue::Money(Decimal::ZERO)
            }
            Metric::PolicyCount | Metric::NewBusinessCount => MetricValue::Count(0),
            Metric::RenewalRate | Metric::CancellationRate | Metric::AverageCommissionRate => MetricValue::Rate(None),
        }
    }
}

/// One metric's value: exactly one of `amount` (money), `count` or `rate`
/// is set, by the metric's kind; `rate` is null when undefined.
#[derive(SimpleObject, Debug, Clone)]
pub struct Value {
    pub amount: Option<Money>,
    pub count: Option<i64>,
    pub rate: Option<f64>,
}

impl Value {
    fn of(v: &MetricValue) -> Self {
        match v {
            MetricValue::Money(d) => Value { amount: Some(Money(*d)), count: None, rate: None },
            MetricValue::Count(n) => Value { amount: None, count: Some(*n), rate: None },
            MetricValue::Rate(r) => Value { amount: None, count: None, rate: *r },
        }
    }

    /// For ordering: money and counts exactly, rates as their decimal.
    fn sort_key(v: &MetricValue) -> Decimal {
        match v {
            MetricValue::Money(d) => *d,
            MetricValue::Count(n) => Decimal::from(*n),
            MetricValue::Rate(r) => r.and_then(Decimal::from_f64_retain).unwrap_or(Decimal::MIN),
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RankedEntry {
    /// 1 = best; ties share the lower number (1, 2, 2, 4).
    pub rank: i32,
    /// Id of the agency, agent or carrier; the line or month otherwise.
    pub key: String,
    pub name: Option<String>,
    pub value: Value,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Point {
    /// `YYYY-MM`.
    pub month: String,
    pub value: Value,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Series {
    /// The group's key (empty for the whole tenant).
    pub key: String,
    pub name: Option<String>,
    pub points: Vec<Point>,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct Kpis {
    pub as_of: Date,
    pub mtd_commission: Money,
    pub ytd_commission: Money,
    pub active_policies: i64,
    pub written_premium_ytd: Money,
    /// Renewal rate over the 12 months before `asOf`.
    #[graphql(name = "retentionRate12m")]
    pub retention_rate_12m: Option<f64>,
}

/// An agency's KPIs on a tenant's view (the `Agency.kpis` field and the
/// `kpisChanged` subscription).
pub(crate) async fn agency_kpis(view: &TenantView, agency_id: &str, as_of: Date) -> Result<Kpis> {
    let filters = Filters { agency_id: Some(agency_id.to_string()), ..Default::default() };
    let rows = metrics::kpis(&view.session, as_of.0, &filters, &[]).await.map_err(internal)?;
    let k = rows.into_iter().next().map(|(_, k)| k).ok_or_else(|| internal("kpis returned no row"))?;
    Ok(Kpis {
        as_of,
        mtd_commission: Money(k.mtd_commission),
        ytd_commission: Money(k.ytd_commission),
        active_policies: k.active_policies,
        written_premium_ytd: Money(k.written_premium_ytd),
        retention_rate_12m: k.retention_rate_12m,
    })
}

/// One policy term.
pub struct Policy(pub(crate) PolicyInfo);

#[Object]
impl Policy {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn policy_number(&self) -> &str {
        &self.0.policy_number
    }
    async fn customer_id(&self) -> &str {
        &self.0.customer_id
    }
    async fn line_of_business(&self) -> &str {
        &self.0.line_of_business
    }
    async fn effective_date(&self) -> Date {
        Date(self.0.effective_date)
    }
    async fn expiration_date(&self) -> Date {
        Date(self.0.expiration_date)
    }
    async fn premium(&self) -> Money {
        Money(self.0.premium)
    }
    /// `active`, `cancelled` or `expired`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn cancellation_date(&self) -> Option<Date> {
        self.0.cancellation_date.map(Date)
    }
    /// The policy this term renews.
    async fn renewal_of(&self) -> Option<ID> {
        self.0.renewal_of.clone().map(ID)
    }
    async fn agent(&self, ctx: &Context<'_>) -> Result<Option<Agent>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agent(&self.0.agent_id).cloned().map(Agent))
    }
    async fn carrier(&self, ctx: &Context<'_>) -> Result<Option<Carrier>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.carrier(&self.0.carrier_id).map(Carrier::from))
    }
}

/// Renewal counts of one group.
#[derive(SimpleObject, Debug, Clone)]
pub struct RetentionRow {
    pub key: String,
    pub name: Option<String>,
    /// Policies expiring in the range that were not cancelled before.
    pub up_for_renewal: i64,
    /// Those of them that a later term names in `renewal_of`.
    pub renewed: i64,
    /// renewed / upForRenewal; null when none were up.
    pub renewal_rate: Option<f64>,
}

/// How the subject compares with its peers on one metric.
#[derive(SimpleObject, Debug, Clone)]
pub struct PeerBenchmark {
    pub metric: Metric,
    pub value: Value,
    /// Producers of the same agency (agents only), the subject included.
    pub agency_peers: Option<i32>,
    /// Percentile rank among them: (peers below + half the peers equal) / peers × 100.
    pub agency_percentile: Option<f64>,
    /// Agents (or agencies) of the tenant, the subject included.
    pub tenant_peers: i32,
    pub tenant_percentile: Option<f64>,
}

/// An anonymised industry figure: quartiles of agency-level values across
/// all tenants, shown only where at least 5 tenants contribute.
#[derive(SimpleObject, Debug, Clone)]
pub struct IndustryBenchmark {
    pub metric: Metric,
    /// Null: all lines together.
    pub line_of_business: Option<String>,
    pub contributing_tenants: i32,
    /// False when fewer than 5 tenants contribute: quartiles are then null.
    pub available: bool,
    pub p25: Option<Value>,
    pub median: Option<Value>,
    pub p75: Option<Value>,
    /// The agency's own value for the same metric and line.
    pub agency_value: Option<Value>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Benchmark {
    /// `AGENT` or `AGENCY`.
    pub subject_kind: Dimension,
    pub subject_id: ID,
    pub subject_name: Option<String>,
    pub peers: Vec<PeerBenchmark>,
    /// Industry quartiles per metric and line (agencies only; empty for agents).
    pub industry: Vec<IndustryBenchmark>,
}

async fn performance(ctx: &Context<'_>, subject: Subject, id: &str, range: DateRange) -> Result<Performance> {
    let r = range.checked()?;
    let loader = ctx.data_unchecked::<DataLoader<PerformanceLoader>>();
    let key = PerfKey { subject, from: r.from, to: r.to, id: id.to_string() };
    Ok(loader.load_one(key).await.map_err(internal)?.unwrap_or_else(Performance::empty))
}

pub struct Agency(pub(crate) AgencyInfo);

#[Object]
impl Agency {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn state(&self) -> Option<&str> {
        self.0.state.as_deref()
    }
    /// Key figures at a date (month- and year-to-date include `asOf`).
    async fn kpis(&self, ctx: &Context<'_>, as_of: Date) -> Result<Kpis> {
        agency_kpis(view(ctx), &self.0.id, as_of).await
    }
    async fn performance(&self, ctx: &Context<'_>, range: DateRange) -> Result<Performance> {
        performance(ctx, Subject::Agency, &self.0.id, range).await
    }
    async fn agents(&self, ctx: &Context<'_>) -> Result<Vec<Agent>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agents.iter().filter(|a| a.agency_id == self.0.id).cloned().map(Agent).collect())
    }
    /// The agency's policies written in the range, largest premium first.
    async fn top_policies(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<Policy>> {
        let r = range.checked()?;
        if !(1..=1000).contains(&first) {
            return Err(bad_input("first must be between 1 and 1000"));
        }
        let rows = policies::top_by_premium(&view(ctx).session, &self.0.id, r.from, r.to, first as usize)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(Policy).collect())
    }
}

pub struct Agent(pub(crate) AgentInfo);

#[Object]
impl Agent {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `producer` or `manager`.
    async fn role(&self) -> &str {
        &self.0.role
    }
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }
    async fn agency(&self, ctx: &Context<'_>) -> Result<Agency> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        let a = dir.agency(&self.0.agency_id).cloned().unwrap_or(AgencyInfo {
            id: self.0.agency_id.clone(),
            name: self.0.agency_id.clone(),
            state: None,
        });
        Ok(Agency(a))
    }
    async fn performance(&self, ctx: &Context<'_>, range: DateRange) -> Result<Performance> {
        performance(ctx, Subject::Agent, &self.0.id, range).await
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Carrier {
    id: ID,
    name: String,
}

#[ComplexObject]
impl Carrier {
    async fn performance(&self, ctx: &Context<'_>, range: DateRange) -> Result<Performance> {
        performance(ctx, Subject::Carrier, &self.id, range).await
    }
}

impl From<&CarrierInfo> for Carrier {
    fn from(c: &CarrierInfo) -> Self {
        Carrier { id: ID(c.id.clone()), name: c.name.clone() }
    }
}

fn months(range: &Range) -> Vec<String> {
    let mut out = Vec::new();
    let mut m = NaiveDate::from_ymd_opt(range.from.year(), range.from.month(), 1).expect("first of month");
    while m < range.to {
        out.push(m.format("%Y-%m").to_string());
        m = m + Months::new(1);
    }
    out
}

pub struct Query;

/// The analytics part of the root query (merged into `Query` with reports).
#[Object(name = "AnalyticsQuery")]
impl Query {
    /// The caller's agencies.
    async fn agencies(&self, ctx: &Context<'_>) -> Result<Vec<Agency>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agencies.iter().cloned().map(Agency).collect())
    }
    async fn agency(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Agency>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agency(&id).cloned().map(Agency))
    }
    async fn agent(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Agent>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agent(&id).cloned().map(Agent))
    }
    async fn carriers(&self, ctx: &Context<'_>) -> Result<Vec<Carrier>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.carriers.iter().map(Carrier::from).collect())
    }
    async fn carrier(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Carrier>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.carrier(&id).map(Carrier::from))
    }

    /// Entries of a dimension ranked by a metric over a range, best first.
    async fn leaderboard(
        &self,
        ctx: &Context<'_>,
        by: Dimension,
        range: DateRange,
        #[graphql(default_with = "Metric::GrossCommission")] metric: Metric,
        agency_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<RankedEntry>> {
        let r = range.checked()?;
        if !(1..=1000).contains(&first) {
            return Err(bad_input("first must be between 1 and 1000"));
        }
        let filters = Filters { agency_id: agency_id.map(|i| i.0), ..Default::default() };
        let v = view(ctx);
        let rows =
            metrics::compute(&v.session, &[M::from(metric)], &r, &[by.engine()], &filters).await.map_err(internal)?;
        let dir = v.directory().await.map_err(internal)?;
        let mut entries: Vec<(String, MetricValue)> =
            rows.into_iter().map(|row| (row.group[0].clone(), row.values[0])).collect();
        entries.sort_by(|a, b| Value::sort_key(&b.1).cmp(&Value::sort_key(&a.1)).then_with(|| a.0.cmp(&b.0)));
        let keys: Vec<Decimal> = entries.iter().map(|(_, v)| Value::sort_key(v)).collect();
        let ranks = metrics::competition_ranks(&keys);
        Ok(entries
            .into_iter()
            .zip(ranks)
            .take(first as usize)
            .map(|((key, value), rank)| RankedEntry {
                rank: rank as i32,
                name: name_of(&dir, by, &key),
                key,
                value: Value::of(&value),
            })
            .collect())
    }

    /// How an agent compares with the producers of its agency and tenant, or
    /// an agency with the tenant's agencies and with the industry. Give
    /// exactly one of `agentId` and `agencyId`.
    async fn benchmark(
        &self,
        ctx: &Context<'_>,
        agent_id: Option<ID>,
        agency_id: Option<ID>,
        range: DateRange,
    ) -> Result<Benchmark> {
        let r = range.checked()?;
        let v = view(ctx);
        let dir = v.directory().await.map_err(internal)?;
        let (kind, id) = match (agent_id, agency_id) {
            (Some(a), None) => (Dimension::Agent, a.0),
            (None, Some(g)) => (Dimension::Agency, g.0),
            _ => return Err(bad_input("give exactly one of agentId and agencyId")),
        };
        let agency_of_agent = match kind {
            Dimension::Agent => Some(dir.agent(&id).ok_or_else(|| not_found("no such agent"))?.agency_id.clone()),
            _ => {
                dir.agency(&id).ok_or_else(|| not_found("no such agency"))?;
                None
            }
        };
        let rows =
            metrics::compute(&v.session, &M::ALL, &r, &[kind.engine()], &Filters::default()).await.map_err(internal)?;
        let by_id: BTreeMap<&str, &Vec<MetricValue>> =
            rows.iter().map(|row| (row.group[0].as_str(), &row.values)).collect();
        // Every directory member is a peer, with zeros when it had no activity.
        let members: Vec<(&str, &str)> = match kind {
            Dimension::Agent => dir.agents.iter().map(|a| (a.id.as_str(), a.agency_id.as_str())).collect(),
            _ => dir.agencies.iter().map(|a| (a.id.as_str(), "")).collect(),
        };
        let value_of =
            |member: &str, i: usize, m: M| by_id.get(member).map(|vs| vs[i]).unwrap_or_else(|| Metric::from(m).zero());
        let peers = M::ALL
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let own = value_of(&id, i, *m);
                let tenant: Vec<MetricValue> = members.iter().map(|(p, _)| value_of(p, i, *m)).collect();
                let agency: Option<Vec<MetricValue>> = agency_of_agent
                    .as_ref()
                    .map(|g| members.iter().filter(|(_, a)| a == g).map(|(p, _)| value_of(p, i, *m)).collect());
                PeerBenchmark {
                    metric: Metric::from(*m),
                    value: Value::of(&own),
                    agency_peers: agency.as_ref().map(|a| a.len() as i32),
                    agency_percentile: agency.as_ref().and_then(|a| industry::percentile_rank(&own, a)),
                    tenant_peers: tenant.len() as i32,
                    tenant_percentile: industry::percentile_rank(&own, &tenant),
                }
            })
            .collect();
        let industry = match kind {
            Dimension::Agency => {
                let stats = ctx.data_unchecked::<Arc<Industry>>().stats(&r).await.map_err(internal)?;
                let filters = Filters { agency_id: Some(id.clone()), ..Default::default() };
                let own_lines = metrics::compute(&v.session, &M::ALL, &r, &[Dim::LineOfBusiness], &filters)
                    .await
                    .map_err(internal)?;
                let own: BTreeMap<Option<String>, &Vec<MetricValue>> = own_lines
                    .iter()
                    .map(|row| (Some(row.group[0].clone()), &row.values))
                    .chain(by_id.get(id.as_str()).map(|vs| (None, *vs)))
                    .collect();
                stats
                    .iter()
                    .map(|s| {
                        let i = M::ALL.iter().position(|m| *m == s.metric).expect("metric in ALL");
                        let q = |k: usize| s.quartiles.as_ref().map(|q| Value::of(&q[k]));
                        IndustryBenchmark {
                            metric: Metric::from(s.metric),
                            line_of_business: s.line_of_business.clone(),
                            contributing_tenants: s.contributing_tenants as i32,
                            available: s.quartiles.is_some(),
                            p25: q(0),
                            median: q(1),
                            p75: q(2),
                            agency_value: own.get(&s.line_of_business).map(|vs| Value::of(&vs[i])),
                        }
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let subject_name = name_of(&dir, kind, &id);
        Ok(Benchmark { subject_kind: kind, subject_id: ID(id), subject_name, peers, industry })
    }

    /// Renewal counts and rate of policies expiring in the range, per group.
    async fn retention(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        group_by: Dimension,
        agency_id: Option<ID>,
    ) -> Result<Vec<RetentionRow>> {
        let r = range.checked()?;
        let filters = Filters { agency_id: agency_id.map(|i| i.0), ..Default::default() };
        let v = view(ctx);
        let rows = metrics::renewal_counts(&v.session, &r, &[group_by.engine()], &filters).await.map_err(internal)?;
        let dir = v.directory().await.map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|c| {
                let key = c.group[0].clone();
                RetentionRow {
                    name: name_of(&dir, group_by, &key),
                    key,
                    up_for_renewal: c.up_for_renewal,
                    renewed: c.renewed,
                    renewal_rate: (c.up_for_renewal > 0).then(|| c.renewed as f64 / c.up_for_renewal as f64),
                }
            })
            .collect())
    }

    /// Monthly points of a metric over a range, one series per group (one
    /// series for the whole tenant without `groupBy`). Months without
    /// activity are zero (null for rates).
    async fn trend(
        &self,
        ctx: &Context<'_>,
        metric: Metric,
        range: DateRange,
        group_by: Option<Dimension>,
        agency_id: Option<ID>,
    ) -> Result<Vec<Series>> {
        let r = range.checked()?;
        if group_by == Some(Dimension::Month) {
            return Err(bad_input("groupBy MONTH is implied by trend; choose another dimension"));
        }
        let filters = Filters { agency_id: agency_id.map(|i| i.0), ..Default::default() };
        let mut dims: Vec<Dim> = group_by.iter().map(|d| d.engine()).collect();
        dims.push(Dim::Month);
        let v = view(ctx);
        let rows = metrics::compute(&v.session, &[M::from(metric)], &r, &dims, &filters).await.map_err(internal)?;
        let dir = v.directory().await.map_err(internal)?;
        let mut by_group: BTreeMap<String, BTreeMap<String, MetricValue>> = BTreeMap::new();
        for row in rows {
            let (key, month) = match group_by {
                Some(_) => (row.group[0].clone(), row.group[1].clone()),
                None => (String::new(), row.group[0].clone()),
            };
            by_group.entry(key).or_default().insert(month, row.values[0]);
        }
        if group_by.is_none() && by_group.is_empty() {
            by_group.insert(String::new(), BTreeMap::new());
        }
        let zero = metric.zero();
        let all_months = months(&r);
        Ok(by_group
            .into_iter()
            .map(|(key, points)| Series {
                name: group_by.and_then(|d| name_of(&dir, d, &key)),
                points: all_months
                    .iter()
                    .map(|m| Point { month: m.clone(), value: Value::of(points.get(m).unwrap_or(&zero)) })
                    .collect(),
                key,
            })
            .collect())
    }
}

fn name_of(dir: &crate::query::view::Directory, by: Dimension, key: &str) -> Option<String> {
    match by {
        Dimension::Agency => dir.agency(key).map(|a| a.name.clone()),
        Dimension::Agent => dir.agent(key).map(|a| a.name.clone()),
        Dimension::Carrier => dir.carrier(key).map(|c| c.name.clone()),
        Dimension::LineOfBusiness | Dimension::Month => None,
    }
}
