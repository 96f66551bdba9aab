//! Custom reports: any metrics × dimensions (time grains included) under
//! filters, ordered and limited; saved per tenant in the lake under
//! `_reports/<tenant_id>/<id>.json`.
//!
//! One validation path ([`ReportSpec`]) serves ad-hoc reports, saved
//! definitions and downloads, and one runner ([`run`]) computes them through
//! the metrics layer on the caller's tenant view, so a report means the same
//! thing in GraphQL, CSV and Parquet.

use std::cmp::Ordering;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use super::errors::{bad_input, forbidden, internal, not_found};
use super::scalars::{Date, Money};
use super::schema::{DateRange, Metric, Value};
use super::view;
use crate::auth::{Principal, REPORTS_WRITE};
use crate::lake::Location;
use crate::query::metrics::{self, DateRange as Range, Dimension as Dim, Filters, Metric as M, MetricValue, Row};
use crate::query::view::TenantView;

/// Folder of the lake holding saved reports, one sub-folder per tenant.
pub const REPORTS_DIR: &str = "_reports";
pub const MAX_METRICS: usize = 8;
pub const MAX_DIMENSIONS: usize = 4;
/// Most rows a report returns (and the default limit).
pub const MAX_ROWS: usize = 100_000;
/// Saved reports a tenant may keep.
pub const MAX_SAVED_REPORTS: usize = 1_000;
const MAX_RANGE_YEARS: i32 = 100;
const MAX_NAME_CHARS: usize = 200;
const MAX_FILTER_CHARS: usize = 256;
const ID_PREFIX: &str = "rpt_";
const ID_RANDOM_CHARS: usize = 16;
const STORED_VERSION: u32 = 1;

// ---------------------------------------------------------------------------
// API types
// ---------------------------------------------------------------------------

/// What a report can be grouped by. Keys: entity ids; the line of
/// business; `2024-03` (month), `2024-Q1` (quarter), `2024` (year).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::query::metrics::Dimension")]
pub enum ReportDimension {
    Agency,
    Agent,
    Carrier,
    LineOfBusiness,
    Month,
    Quarter,
    Year,
}

impl ReportDimension {
    /// Column name (`quarter`, `line_of_business`, …).
    pub fn name(self) -> &'static str {
        Dim::from(self).name()
    }
}

fn metric_kind(m: Metric) -> ReportColumnKind {
    match m {
        Metric::GrossCommission | Metric::AgentCommission | Metric::WrittenPremium => ReportColumnKind::Money,
        Metric::PolicyCount | Metric::NewBusinessCount => ReportColumnKind::Count,
        Metric::RenewalRate | Metric::CancellationRate | Metric::AverageCommissionRate => ReportColumnKind::Rate,
    }
}

/// Restrict a report to one agency, agent, carrier and/or line of business.
#[derive(InputObject, Debug, Clone, Default)]
pub struct ReportFilter {
    pub agency_id: Option<ID>,
    pub agent_id: Option<ID>,
    pub carrier_id: Option<ID>,
    pub line_of_business: Option<String>,
}

/// One ordering key: exactly one of `metric` (a metric of the report) or
/// `dimension` (a dimension of the report). Null rates sort last either way.
#[derive(InputObject, Debug, Clone)]
pub struct ReportOrder {
    pub metric: Option<Metric>,
    pub dimension: Option<ReportDimension>,
    #[graphql(default = true)]
    pub descending: bool,
}

/// A report: one row per group of `dimensions` (one row in all without
/// dimensions), one value per metric, for `range` (half-open `[from, to)`).
#[derive(InputObject, Debug, Clone)]
pub struct ReportInput {
    /// 1 to 8 distinct metrics; one value column each, in this order.
    pub metrics: Vec<Metric>,
    /// Up to 4 distinct dimensions; one key column each, in this order.
    #[graphql(default)]
    pub dimensions: Vec<ReportDimension>,
    /// At most 100 years.
    pub range: DateRange,
    pub filter: Option<ReportFilter>,
    /// Applied in turn; ties (and no ordering) fall back to the dimension
    /// keys, ascending.
    #[graphql(default)]
    pub order_by: Vec<ReportOrder>,
    /// Rows returned, 1 to 100000 (default 100000); `totalRows` counts the
    /// rows before the limit.
    pub limit: Option<i32>,
}

/// Kind of a report column.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportColumnKind {
    /// A dimension's key (a string).
    Dimension,
    /// Exact money (`Value.amount`; CSV "1234.50", Parquet Decimal128(38, 2)).
    Money,
    /// `Value.count`.
    Count,
    /// A fraction (`Value.rate`; null when undefined).
    Rate,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportColumn {
    /// `quarter`, `carrier`, `gross_commission`, … (the CSV header).
    pub name: String,
    pub kind: ReportColumnKind,
    /// Set on dimension columns.
    pub dimension: Option<ReportDimension>,
    /// Set on metric columns.
    pub metric: Option<Metric>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ReportRow {
    /// One key per dimension column, in order.
    pub dimensions: Vec<String>,
    /// One value per metric column, in order.
    pub values: Vec<Value>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Report {
    /// Dimension columns, then metric columns.
    pub columns: Vec<ReportColumn>,
    pub rows: Vec<ReportRow>,
    /// Rows before the limit.
    pub total_rows: i32,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportRange {
    pub from: Date,
    pub to: Date,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportFilterDefinition {
    pub agency_id: Option<ID>,
    pub agent_id: Option<ID>,
    pub carrier_id: Option<ID>,
    pub line_of_business: Option<String>,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportOrderDefinition {
    pub metric: Option<Metric>,
    pub dimension: Option<ReportDimension>,
    pub descending: bool,
}

/// A saved report's definition (what `ReportInput` it was created with).
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReportDefinition {
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<ReportDimension>,
    pub range: ReportRange,
    /// Null when the report has no filter.
    pub filter: Option<ReportFilterDefinition>,
    pub order_by: Vec<ReportOrderDefinition>,
    pub limit: Option<i32>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct SavedReport {
    pub id: ID,
    pub name: String,
    pub input: ReportDefinition,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The subject of the credential that created it.
    pub created_by: String,
}

// ---------------------------------------------------------------------------
// Validated reports
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Metric(Metric),
    Dimension(ReportDimension),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderKey {
    pub by: OrderBy,
    pub descending: bool,
}

/// A report definition that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSpec {
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<ReportDimension>,
    pub range: Range,
    pub filters: Filters,
    pub order_by: Vec<OrderKey>,
    /// As given (`None`: up to [`MAX_ROWS`]).
    pub limit: Option<usize>,
}

fn checked_filter(what: &str, v: Option<String>) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Err(format!("filter.{what} must not be empty")),
        Some(s) if s.chars().count() > MAX_FILTER_CHARS => {
            Err(format!("filter.{what} must be at most {MAX_FILTER_CHARS} characters"))
        }
        Some(s) => Ok(Some(s)),
    }
}

impl ReportSpec {
    /// Validate a report; the error is a message for the client.
    pub fn new(
        metrics: Vec<Metric>,
        dimensions: Vec<ReportDimension>,
        range: Range,
        filters: Filters,
        order_by: Vec<(Option<Metric>, Option<ReportDimension>, bool)>,
        limit: Option<i64>,
    ) -> Result<Self, String> {
        if metrics.is_empty() || metrics.len() > MAX_METRICS {
            return Err(format!("metrics must hold 1 to {MAX_METRICS} metrics"));
        }
        if let Some(m) = metrics.iter().enumerate().find(|(i, m)| metrics[..*i].contains(m)) {
            return Err(format!("metric {} is listed twice", M::from(*m.1)));
        }
        if dimensions.len() > MAX_DIMENSIONS {
            return Err(format!("dimensions must hold at most {MAX_DIMENSIONS} dimensions"));
        }
        if let Some(d) = dimensions.iter().enumerate().find(|(i, d)| dimensions[..*i].contains(d)) {
            return Err(format!("dimension {} is listed twice", d.1.name()));
        }
        if range.to < range.from {
            return Err("range.to must not be before range.from".into());
        }
        let span_ok = range.from.checked_add_months(chrono::Months::new(12 * MAX_RANGE_YEARS as u32));
        if span_ok.is_some_and(|limit| range.to > limit) {
            return Err(format!("range must span at most {MAX_RANGE_YEARS} years"));
        }
        let filters = Filters {
            agency_id: checked_filter("agencyId", filters.agency_id)?,
            agent_id: checked_filter("agentId", filters.agent_id)?,
            carrier_id: checked_filter("carrierId", filters.carrier_id)?,
            line_of_business: checked_filter("lineOfBusiness", filters.line_of_business)?,
        };
        let mut keys: Vec<OrderKey> = Vec::with_capacity(order_by.len());
        for (i, (metric, dimension, descending)) in order_by.into_iter().enumerate() {
            let by = match (metric, dimension) {
                (Some(m), None) if metrics.contains(&m) => OrderBy::Metric(m),
                (Some(m), None) => {
                    return Err(format!("orderBy[{i}]: metric {} is not one of the report's metrics", M::from(m)));
                }
                (None, Some(d)) if dimensions.contains(&d) => OrderBy::Dimension(d),
                (None, Some(d)) => {
                    return Err(format!("orderBy[{i}]: dimension {} is not one of the report's dimensions", d.name()));
                }
                _ => return Err(format!("orderBy[{i}]: give exactly one of metric or dimension")),
            };
            if keys.iter().any(|k| k.by == by) {
                return Err(format!("orderBy[{i}]: the same column is ordered twice"));
            }
            keys.push(OrderKey { by, descending });
        }
        let limit = match limit {
            None => None,
            Some(n) if (1..=MAX_ROWS as i64).contains(&n) => Some(n as usize),
            Some(_) => return Err(format!("limit must be between 1 and {MAX_ROWS}")),
        };
        Ok(ReportSpec { metrics, dimensions, range, filters, order_by: keys, limit })
    }

    pub fn from_input(input: ReportInput) -> Result<Self, String> {
        let f = input.filter.unwrap_or_default();
        ReportSpec::new(
            input.metrics,
            input.dimensions,
            Range { from: input.range.from.0, to: input.range.to.0 },
            Filters {
                agency_id: f.agency_id.map(|i| i.0),
                agent_id: f.agent_id.map(|i| i.0),
                carrier_id: f.carrier_id.map(|i| i.0),
                line_of_business: f.line_of_business,
            },
            input.order_by.into_iter().map(|o| (o.metric, o.dimension, o.descending)).collect(),
            input.limit.map(i64::from),
        )
    }

    pub fn from_stored(d: &StoredDefinition) -> Result<Self, String> {
        let metric = |n: &str| M::from_name(n).map(Metric::from).ok_or_else(|| format!("unknown metric '{n}'"));
        let dimension =
            |n: &str| Dim::from_name(n).map(ReportDimension::from).ok_or_else(|| format!("unknown dimension '{n}'"));
        let metrics = d.metrics.iter().map(|n| metric(n)).collect::<Result<Vec<_>, _>>()?;
        let dimensions = d.dimensions.iter().map(|n| dimension(n)).collect::<Result<Vec<_>, _>>()?;
        let order_by = d
            .order_by
            .iter()
            .map(|o| {
                Ok((
                    o.metric.as_deref().map(metric).transpose()?,
                    o.dimension.as_deref().map(dimension).transpose()?,
                    o.descending,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        ReportSpec::new(
            metrics,
            dimensions,
            Range { from: d.from, to: d.to },
            d.filter.clone(),
            order_by,
            d.limit.map(i64::from),
        )
    }

    pub fn stored(&self) -> StoredDefinition {
        StoredDefinition {
            metrics: self.metrics.iter().map(|m| M::from(*m).name().to_string()).collect(),
            dimensions: self.dimensions.iter().map(|d| d.name().to_string()).collect(),
            from: self.range.from,
            to: self.range.to,
            filter: self.filters.clone(),
            order_by: self
                .order_by
                .iter()
                .map(|k| StoredOrder {
                    metric: match k.by {
                        OrderBy::Metric(m) => Some(M::from(m).name().to_string()),
                        OrderBy::Dimension(_) => None,
                    },
                    dimension: match k.by {
                        OrderBy::Dimension(d) => Some(d.name().to_string()),
                        OrderBy::Metric(_) => None,
                    },
                    descending: k.descending,
                })
                .collect(),
            limit: self.limit.map(|n| n as u32),
        }
    }

    pub fn definition(&self) -> ReportDefinition {
        let f = &self.filters;
        let any_filter =
            f.agency_id.is_some() || f.agent_id.is_some() || f.carrier_id.is_some() || f.line_of_business.is_some();
        ReportDefinition {
            metrics: self.metrics.clone(),
            dimensions: self.dimensions.clone(),
            range: ReportRange { from: Date(self.range.from), to: Date(self.range.to) },
            filter: any_filter.then(|| ReportFilterDefinition {
                agency_id: f.agency_id.clone().map(ID),
                agent_id: f.agent_id.clone().map(ID),
                carrier_id: f.carrier_id.clone().map(ID),
                line_of_business: f.line_of_business.clone(),
            }),
            order_by: self
                .order_by
                .iter()
                .map(|k| ReportOrderDefinition {
                    metric: match k.by {
                        OrderBy::Metric(m) => Some(m),
                        OrderBy::Dimension(_) => None,
                    },
                    dimension: match k.by {
                        OrderBy::Dimension(d) => Some(d),
                        OrderBy::Metric(_) => None,
                    },
                    descending: k.descending,
                })
                .collect(),
            limit: self.limit.map(|n| n as i32),
        }
    }

    /// Dimension columns, then metric columns.
    pub fn columns(&self) -> Vec<ReportColumn> {
        let dims = self.dimensions.iter().map(|d| ReportColumn {
            name: d.name().to_string(),
            kind: ReportColumnKind::Dimension,
            dimension: Some(*d),
            metric: None,
        });
        let metrics = self.metrics.iter().map(|m| ReportColumn {
            name: M::from(*m).name().to_string(),
            kind: metric_kind(*m),
            dimension: None,
            metric: Some(*m),
        });
        dims.chain(metrics).collect()
    }
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// A computed report: rows hold dimension keys and values in column order.
#[derive(Debug, Clone)]
pub struct ReportTable {
    pub columns: Vec<ReportColumn>,
    pub rows: Vec<Row>,
    /// Rows before the limit.
    pub total_rows: usize,
}

/// Money and counts exactly; null rates last whatever the direction.
fn compare_values(a: &MetricValue, b: &MetricValue, descending: bool) -> Ordering {
    let natural = match (a, b) {
        (MetricValue::Money(x), MetricValue::Money(y)) => x.cmp(y),
        (MetricValue::Count(x), MetricValue::Count(y)) => x.cmp(y),
        (MetricValue::Rate(x), MetricValue::Rate(y)) => match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(y),
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
        },
        // One metric has one kind; not reached.
        _ => Ordering::Equal,
    };
    if descending { natural.reverse() } else { natural }
}

fn sort_rows(spec: &ReportSpec, rows: &mut [Row]) {
    let keys: Vec<(OrderBy, usize, bool)> = spec
        .order_by
        .iter()
        .map(|k| {
            let at = match k.by {
                OrderBy::Metric(m) => spec.metrics.iter().position(|x| *x == m),
                OrderBy::Dimension(d) => spec.dimensions.iter().position(|x| *x == d),
            };
            (k.by, at.expect("validated: ordered columns are in the report"), k.descending)
        })
        .collect();
    rows.sort_by(|a, b| {
        for (by, at, descending) in &keys {
            let o = match by {
                OrderBy::Metric(_) => compare_values(&a.values[*at], &b.values[*at], *descending),
                OrderBy::Dimension(_) => {
                    let o = a.group[*at].cmp(&b.group[*at]);
                    if *descending { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.group.cmp(&b.group)
    });
}

/// Compute `spec` on the tenant's view: one engine query per metric family.
pub async fn run(view: &TenantView, spec: &ReportSpec) -> Result<ReportTable, metrics::MetricsError> {
    let ms: Vec<M> = spec.metrics.iter().map(|m| M::from(*m)).collect();
    let dims: Vec<Dim> = spec.dimensions.iter().map(|d| Dim::from(*d)).collect();
    let mut rows = metrics::compute(&view.session, &ms, &spec.range, &dims, &spec.filters).await?;
    sort_rows(spec, &mut rows);
    let total_rows = rows.len();
    rows.truncate(spec.limit.unwrap_or(MAX_ROWS));
    Ok(ReportTable { columns: spec.columns(), rows, total_rows })
}

fn value_of(v: &MetricValue) -> Value {
    match v {
        MetricValue::Money(d) => Value { amount: Some(Money(*d)), count: None, rate: None },
        MetricValue::Count(n) => Value { amount: None, count: Some(*n), rate: None },
        MetricValue::Rate(r) => Value { amount: None, count: None, rate: *r },
    }
}

impl From<ReportTable> for Report {
    fn from(t: ReportTable) -> Self {
        Report {
            columns: t.columns,
            rows: t
                .rows
                .into_iter()
                .map(|r| ReportRow { values: r.values.iter().map(value_of).collect(), dimensions: r.group })
                .collect(),
            total_rows: i32::try_from(t.total_rows).unwrap_or(i32::MAX),
        }
    }
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

/// How a saved definition is stored (names are the metrics layer's
/// snake_case names, dates ISO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDefinition {
    pub metrics: Vec<String>,
    #[serde(default)]
    pub dimensions: Vec<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(default, with = "stored_filter")]
    pub filter: Filters,
    #[serde(default)]
    pub order_by: Vec<StoredOrder>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOrder {
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub dimension: Option<String>,
    pub descending: bool,
}

mod stored_filter {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::query::metrics::Filters;

    #[derive(Serialize, Deserialize, Default)]
    struct F {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agency_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carrier_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line_of_business: Option<String>,
    }

    pub fn serialize<S: Serializer>(f: &Filters, s: S) -> Result<S::Ok, S::Error> {
        F {
            agency_id: f.agency_id.clone(),
            agent_id: f.agent_id.clone(),
            carrier_id: f.carrier_id.clone(),
            line_of_business: f.line_of_business.clone(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Filters, D::Error> {
        let f = F::deserialize(d)?;
        Ok(Filters {
            agency_id: f.agency_id,
            agent_id: f.agent_id,
            carrier_id: f.carrier_id,
            line_of_business: f.line_of_business,
        })
    }
}

/// One saved report, as stored in `_reports/<tenant_id>/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub version: u32,
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: String,
    pub created_by: String,
    pub definition: StoredDefinition,
}

/// Whether `id` has the shape of a report id (`rpt_` + 16 alphanumerics);
/// anything else is never looked up.
pub fn is_report_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|r| r.len() == ID_RANDOM_CHARS && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn new_id() -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(ID_RANDOM_CHARS).map(char::from).collect();
    format!("{ID_PREFIX}{random}")
}

/// Saved reports in the lake. Every operation takes the tenant: a tenant's
/// reports live in its own folder, and a record is returned only when the
/// tenant and id inside it match the ones asked for.
#[derive(Clone, Debug)]
pub struct ReportStore {
    lake: Location,
}

impl ReportStore {
    pub fn new(lake: Location) -> Self {
        ReportStore { lake }
    }

    /// `_reports/<tenant>/`: the tenant id is one path segment whatever it
    /// holds (`/` and `..` are escaped).
    fn dir(&self, tenant: &str) -> Path {
        self.lake.child(REPORTS_DIR).join(PathPart::from(tenant))
    }

    fn path(&self, tenant: &str, id: &str) -> Path {
        self.dir(tenant).join(PathPart::from(format!("{id}.json")))
    }

    /// Save a new report; fails when the tenant already has
    /// [`MAX_SAVED_REPORTS`] (`Ok(None)`).
    pub async fn create(
        &self,
        tenant: &str,
        created_by: &str,
        name: &str,
        spec: &ReportSpec,
    ) -> Result<Option<StoredReport>, object_store::Error> {
        let existing = self.lake.store.list_with_delimiter(Some(&self.dir(tenant))).await?;
        if existing.objects.len() >= MAX_SAVED_REPORTS {
            return Ok(None);
        }
        let mut attempts = 0;
        loop {
            let report = StoredReport {
                version: STORED_VERSION,
                id: new_id(),
                tenant_id: tenant.to_string(),
                name: name.to_string(),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                created_by: created_by.to_string(),
                definition: spec.stored(),
            };
            let body = serde_json::to_vec_pretty(&report).expect("report serialises");
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.lake.store.put_opts(&self.path(tenant, &report.id), body.into(), opts).await {
                Ok(_) => return Ok(Some(report)),
                // A fresh id collided: draw another.
                Err(object_store::Error::AlreadyExists { .. }) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The tenant's report `id`, if it exists.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredReport>, object_store::Error> {
        if !is_report_id(id) {
            return Ok(None);
        }
        let path = self.path(tenant, id);
        let bytes = match self.lake.store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(parse_record(&path, &bytes, tenant, id))
    }

    /// The tenant's reports, oldest first.
    pub async fn list(&self, tenant: &str) -> Result<Vec<StoredReport>, object_store::Error> {
        // Only the tenant's own folder, not below it.
        let listing = self.lake.store.list_with_delimiter(Some(&self.dir(tenant))).await?;
        let store = &self.lake.store;
        let mut out: Vec<StoredReport> = futures::stream::iter(listing.objects)
            .filter_map(|m| async move {
                let id = m.location.filename()?.strip_suffix(".json")?.to_string();
                is_report_id(&id).then_some((m.location, id))
            })
            .map(|(path, id)| async move {
                match store.get(&path).await {
                    Ok(r) => Ok(parse_record(&path, &r.bytes().await?, tenant, &id)),
                    // Deleted since listed.
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Delete the tenant's report `id`; `false` if there is none.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<bool, object_store::Error> {
        if self.get(tenant, id).await?.is_none() {
            return Ok(false);
        }
        match self.lake.store.delete(&self.path(tenant, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

fn parse_record(path: &Path, bytes: &[u8], tenant: &str, id: &str) -> Option<StoredReport> {
    match serde_json::from_slice::<StoredReport>(bytes) {
        Ok(r) if r.tenant_id == tenant && r.id == id => Some(r),
        Ok(_) => {
            tracing::warn!(file = %path, "saved report whose tenant or id does not match its path skipped");
            None
        }
        Err(e) => {
            tracing::warn!(file = %path, error = %e, "unreadable saved report skipped");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Resolvers
// ---------------------------------------------------------------------------

fn store<'a>(ctx: &Context<'a>) -> Result<&'a ReportStore> {
    ctx.data::<ReportStore>().map_err(|_| internal("no report store in request data"))
}

/// The caller, if its credential has `permission` (else `FORBIDDEN`).
pub(crate) fn require<'a>(ctx: &Context<'a>, permission: &str) -> Result<&'a Principal> {
    let p = ctx.data::<Principal>().map_err(|_| internal("no principal in request data"))?;
    if !p.can(permission) {
        return Err(forbidden(format!("this credential lacks the {permission} permission")));
    }
    Ok(p)
}

fn saved(r: StoredReport) -> Result<SavedReport> {
    let spec = ReportSpec::from_stored(&r.definition)
        .map_err(|e| internal(format!("saved report {} no longer validates: {e}", r.id)))?;
    Ok(SavedReport {
        id: ID(r.id),
        name: r.name,
        input: spec.definition(),
        created_at: r.created_at,
        created_by: r.created_by,
    })
}

async fn execute(ctx: &Context<'_>, spec: &ReportSpec) -> Result<Report> {
    Ok(run(view(ctx), spec).await.map_err(internal)?.into())
}

fn no_such_report(id: &str) -> async_graphql::Error {
    not_found(format!("no saved report with id {id:?}"))
}

/// Report fields of the query root.
#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// Run a report without saving it.
    async fn report(&self, ctx: &Context<'_>, input: ReportInput) -> Result<Report> {
        let spec = ReportSpec::from_input(input).map_err(bad_input)?;
        execute(ctx, &spec).await
    }

    /// The tenant's saved reports, oldest first.
    #[graphql(cache_control(no_cache))]
    async fn saved_reports(&self, ctx: &Context<'_>) -> Result<Vec<SavedReport>> {
        let reports = store(ctx)?.list(&view(ctx).tenant).await.map_err(internal)?;
        reports.into_iter().map(saved).collect()
    }

    #[graphql(cache_control(no_cache))]
    async fn saved_report(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SavedReport>> {
        store(ctx)?.get(&view(ctx).tenant, &id).await.map_err(internal)?.map(saved).transpose()
    }

    /// Run a saved report on the current snapshot (`NOT_FOUND` if there is
    /// no such report). Download it as `GET /reports/<id>.csv` or `.parquet`.
    #[graphql(cache_control(no_cache))]
    async fn run_saved_report(&self, ctx: &Context<'_>, id: ID) -> Result<Report> {
        let r = store(ctx)?.get(&view(ctx).tenant, &id).await.map_err(internal)?.ok_or_else(|| no_such_report(&id))?;
        let spec = ReportSpec::from_stored(&r.definition)
            .map_err(|e| internal(format!("saved report {} no longer validates: {e}", r.id)))?;
        execute(ctx, &spec).await
    }
}

/// Report fields of the mutation root (permission `reports:write`).
#[derive(Default)]
pub struct ReportsMutation;

#[Object]
impl ReportsMutation {
    /// Save a report for the tenant (name: 1 to 200 characters).
    #[graphql(cache_control(no_cache))]
    async fn create_report(&self, ctx: &Context<'_>, name: String, input: ReportInput) -> Result<SavedReport> {
        let principal = require(ctx, REPORTS_WRITE)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(bad_input(format!("name must be 1 to {MAX_NAME_CHARS} characters without control characters")));
        }
        let spec = ReportSpec::from_input(input).map_err(bad_input)?;
        let created =
            store(ctx)?
                .create(&view(ctx).tenant, &principal.subject, name, &spec)
                .await
                .map_err(internal)?
                .ok_or_else(|| bad_input(format!("a tenant can keep at most {MAX_SAVED_REPORTS} saved reports")))?;
        saved(created)
    }

    /// Delete a saved report (`NOT_FOUND` if there is no such report).
    #[graphql(cache_control(no_cache))]
    async fn delete_report(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        require(ctx, REPORTS_WRITE)?;
        if store(ctx)?.delete(&view(ctx).tenant, &id).await.map_err(internal)? {
            Ok(true)
        } else {
            Err(no_such_report(&id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn spec() -> ReportSpec {
        ReportSpec::new(
            vec![Metric::GrossCommission, Metric::RenewalRate],
            vec![ReportDimension::Quarter, ReportDimension::Carrier],
            Range { from: d("2024-01-01"), to: d("2025-01-01") },
            Filters { agency_id: Some("G1".into()), ..Default::default() },
            vec![(Some(Metric::RenewalRate), None, true), (None, Some(ReportDimension::Carrier), false)],
            Some(10),
        )
        .unwrap()
    }

    #[test]
    fn stored_definitions_round_trip() {
        let s = spec();
        let json = serde_json::to_string(&s.stored()).unwrap();
        assert_eq!(
            json,
            r#"{"metrics":["gross_commission","renewal_rate"],"dimensions":["quarter","carrier"],"from":"2024-01-01","to":"2025-01-01","filter":{"agency_id":"G1"},"order_by":[{"metric":"renewal_rate","dimension":null,"descending":true},{"metric":null,"dimension":"carrier","descending":false}],"limit":10}"#
        );
        let back: StoredDefinition = serde_json::from_str(&json).unwrap();
        assert_eq!(ReportSpec::from_stored(&back).unwrap(), s);
    }

    #[test]
    fn rows_sort_by_keys_with_null_rates_last_then_by_group() {
        let s = spec();
        let row = |q: &str, k: &str, r: Option<f64>| Row {
            group: vec![q.into(), k.into()],
            values: vec![MetricValue::Money(Default::default()), MetricValue::Rate(r)],
        };
        let mut rows = vec![
            row("2024-Q1", "K2", None),
            row("2024-Q2", "K1", Some(0.5)),
            row("2024-Q1", "K1", Some(0.5)),
            row("2024-Q3", "K1", Some(1.0)),
            row("2024-Q1", "K3", None),
        ];
        sort_rows(&s, &mut rows);
        let keys: Vec<String> = rows.iter().map(|r| r.group.join("/")).collect();
        // Rate descending (nulls last), then carrier ascending, then the group.
        assert_eq!(keys, ["2024-Q3/K1", "2024-Q1/K1", "2024-Q2/K1", "2024-Q1/K2", "2024-Q1/K3"]);
    }

    #[test]
    fn ids_are_checked_before_any_lookup() {
        assert!(is_report_id(&new_id()));
        for bad in
            ["", "rpt_", "rpt_../../t2/x", "rpt_abcdefghijklmnop/", "xyz_abcdefghijklmnop", "rpt_abcdefghijklmnoq1"]
        {
            assert!(!is_report_id(bad), "{bad}");
        }
    }
}
