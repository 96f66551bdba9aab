//! The models' part of the API: the renewal-intelligence feed (a Relay
//! connection), revenue forecasts with their backtest accuracy, and the
//! registered models. Read from the caller's tenant view like every field.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject, types::Json};
use chrono::{Datelike, NaiveDate};

use super::errors::{bad_input, internal, not_found};
use super::scalars::{Date, Money};
use super::schema::{Agency, Agent, Carrier, DateRange, Dimension, Policy};
use super::view;
use crate::models::actions::{self, Facts, Risk};
use crate::models::forecast::SeriesScope;
use crate::models::registry::ModelInfo;
use crate::query::renewals::{self, Cursor, RenewalFilter, RenewalRow};

/// Largest page of the renewal feed.
pub const MAX_PAGE: i32 = 500;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskLevel {
    /// Renewal probability below 60 %.
    High,
    /// 60 % to 80 %.
    Medium,
    /// 80 % and above.
    Low,
}

impl From<Risk> for RiskLevel {
    fn from(r: Risk) -> Self {
        match r {
            Risk::High => RiskLevel::High,
            Risk::Medium => RiskLevel::Medium,
            Risk::Low => RiskLevel::Low,
        }
    }
}

/// A reason behind a renewal probability.
#[derive(SimpleObject, Debug, Clone)]
pub struct RenewalDriver {
    /// The model feature, e.g. `premium_change`.
    pub feature: String,
    /// In words, with the policy's own value.
    pub description: String,
    /// Effect on the log-odds of renewing against an average term
    /// (negative = lowers the probability).
    pub contribution: f64,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RecommendedAction {
    /// CONTACT_EARLY, REMARKET, CROSS_SELL or COVERAGE_REVIEW.
    pub code: String,
    pub description: String,
    pub due_by: Date,
}

/// An upcoming renewal with its probability, reasons and what to do.
pub struct RenewalOpportunity(RenewalRow);

#[Object]
impl RenewalOpportunity {
    async fn policy(&self) -> Policy {
        Policy(self.0.policy.clone())
    }
    async fn customer_id(&self) -> &str {
        &self.0.policy.customer_id
    }
    /// The producer of the policy.
    async fn producer(&self, ctx: &Context<'_>) -> Result<Option<Agent>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agent(&self.0.policy.agent_id).cloned().map(Agent))
    }
    async fn agency(&self, ctx: &Context<'_>) -> Result<Option<Agency>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.agency(&self.0.policy.agency_id).cloned().map(Agency))
    }
    async fn carrier(&self, ctx: &Context<'_>) -> Result<Option<Carrier>> {
        let dir = view(ctx).directory().await.map_err(internal)?;
        Ok(dir.carrier(&self.0.policy.carrier_id).map(Carrier::from))
    }
    async fn line_of_business(&self) -> &str {
        &self.0.policy.line_of_business
    }
    async fn premium(&self) -> Money {
        Money(self.0.policy.premium)
    }
    async fn expiration_date(&self) -> Date {
        Date(self.0.policy.expiration_date)
    }
    /// Days from the scoring date to expiration.
    async fn days_to_expiration(&self) -> i64 {
        (self.0.policy.expiration_date - self.0.as_of).num_days()
    }
    /// Calibrated probability that a later term renews this one.
    async fn renewal_probability(&self) -> f64 {
        self.0.probability
    }
    async fn risk_level(&self) -> RiskLevel {
        actions::risk(self.0.probability).into()
    }
    /// The top reasons, most negative first.
    async fn drivers(&self) -> Vec<RenewalDriver> {
        self.0
            .drivers
            .iter()
            .map(|d| RenewalDriver {
                feature: d.feature.clone(),
                description: d.description.clone(),
                contribution: d.contribution,
            })
            .collect()
    }
    async fn recommended_actions(&self) -> Vec<RecommendedAction> {
        recommend(&self.0)
            .into_iter()
            .map(|a| RecommendedAction { code: a.code.to_string(), description: a.description, due_by: Date(a.due_by) })
            .collect()
    }
    /// Gross commission of the current term (new/renewal rows): what a
    /// renewal would earn again, and a lapse would lose.
    async fn commission_at_stake(&self) -> Money {
        Money(self.0.commission_at_stake)
    }
    async fn scored_as_of(&self) -> Date {
        Date(self.0.as_of)
    }
    async fn model_version(&self) -> &str {
        &self.0.model_version
    }
}

pub fn recommend(r: &RenewalRow) -> Vec<actions::Action> {
    actions::recommend(&Facts {
        probability: r.probability,
        premium_change: r.premium_change,
        other_policies: r.other_policies,
        tenure_terms: r.tenure_terms,
        line_of_business: &r.policy.line_of_business,
        expiration_date: r.policy.expiration_date,
        as_of: r.as_of,
    })
}

#[derive(SimpleObject)]
pub struct RenewalEdge {
    pub cursor: String,
    pub node: RenewalOpportunity,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct RenewalConnection {
    pub edges: Vec<RenewalEdge>,
    pub page_info: PageInfo,
    /// Renewals matching the filters, over all pages.
    pub total_count: i64,
}

/// One forecast month.
#[derive(SimpleObject, Debug, Clone)]
pub struct ForecastPoint {
    /// `YYYY-MM`.
    pub month: String,
    pub value: Money,
    pub lower80: Money,
    pub upper80: Money,
    pub lower95: Money,
    pub upper95: Money,
}

/// Rolling-origin backtest of the series, by horizon bucket.
#[derive(SimpleObject, Debug, Clone)]
pub struct ForecastAccuracy {
    /// `1-3`, `4-6` or `7-12` months ahead.
    pub horizons: String,
    /// Mean absolute scaled error (scaled by the in-sample seasonal naive).
    pub mase: Option<f64>,
    /// Weighted absolute percentage error.
    pub wape: Option<f64>,
    /// Share of actuals inside the 80 % / 95 % intervals.
    pub coverage80: Option<f64>,
    pub coverage95: Option<f64>,
    pub seasonal_naive_mase: Option<f64>,
    pub damped_trend_mase: Option<f64>,
}

/// Monthly gross commission ahead, with intervals.
#[derive(SimpleObject)]
pub struct Forecast {
    pub scope: Dimension,
    /// The agency, agent, carrier or line; null for the tenant's total.
    pub id: Option<ID>,
    pub model_version: String,
    pub points: Vec<ForecastPoint>,
    pub accuracy: Vec<ForecastAccuracy>,
}

#[derive(SimpleObject)]
pub struct TrainingWindow {
    pub from: Date,
    pub to: Date,
}

/// A registered model version (one entry of the shared catalog).
pub struct Model {
    catalog: Arc<ModelCatalog>,
    index: usize,
}

impl Model {
    fn info(&self) -> &ModelInfo {
        &self.catalog.0[self.index]
    }
}

#[Object]
impl Model {
    async fn name(&self) -> &str {
        &self.info().name
    }
    async fn version(&self) -> &str {
        &self.info().version
    }
    /// RFC 3339.
    async fn trained_at(&self) -> &str {
        &self.info().trained_at
    }
    async fn training_window(&self) -> TrainingWindow {
        TrainingWindow { from: Date(self.info().window_from), to: Date(self.info().window_to) }
    }
    /// The last day of data when it was trained.
    async fn data_date(&self) -> Date {
        Date(self.info().data_date)
    }
    /// Its evaluation, the model beside its baselines: `tenant` = the figures
    /// over the calling tenant's own examples and series; `pooled` = over
    /// all tenants, null unless at least `min_tenants` contributed;
    /// `contributing_tenants` = how many did.
    async fn metrics(&self, ctx: &Context<'_>) -> Json<serde_json::Value> {
        Json(self.info().metrics_for(&view(ctx).tenant))
    }
}

/// The registered models the server knows (loaded with each snapshot),
/// each with its pooled and per-tenant evaluation
/// ([`ModelInfo::metrics_by_tenant`]).
#[derive(Default)]
pub struct ModelCatalog(pub Vec<ModelInfo>);

#[derive(Default)]
pub struct ModelsQuery;

#[Object]
impl ModelsQuery {
    /// Upcoming renewals, most at risk first: policies in force at the
    /// scoring date whose expiration falls in `window`.
    #[allow(clippy::too_many_arguments)]
    async fn renewal_intelligence(
        &self,
        ctx: &Context<'_>,
        window: DateRange,
        agency_id: Option<ID>,
        agent_id: Option<ID>,
        max_probability: Option<f64>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<RenewalConnection> {
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(bad_input(format!("first must be between 1 and {MAX_PAGE}")));
        }
        if window.to.0 < window.from.0 {
            return Err(bad_input("window.to must not be before window.from"));
        }
        let after = match after {
            Some(s) => Some(Cursor::decode(&s).ok_or_else(|| bad_input("after is not a cursor of this feed"))?),
            None => None,
        };
        let filter = RenewalFilter {
            from: Some(window.from.0),
            to: Some(window.to.0),
            agency_id: agency_id.map(|i| i.0),
            agent_id: agent_id.map(|i| i.0),
            max_probability,
        };
        let session = &view(ctx).session;
        let mut rows =
            renewals::renewals(session, &filter, after.as_ref(), first as usize + 1).await.map_err(internal)?;
        let total_count = renewals::count_renewals(session, &filter).await.map_err(internal)?;
        let has_next_page = rows.len() > first as usize;
        rows.truncate(first as usize);
        let edges: Vec<RenewalEdge> = rows
            .into_iter()
            .map(|r| RenewalEdge {
                cursor: Cursor { probability: r.probability, policy_id: r.policy.id.clone() }.encode(),
                node: RenewalOpportunity(r),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Ok(RenewalConnection { edges, page_info: PageInfo { has_next_page, end_cursor }, total_count })
    }

    /// Monthly gross commission forecast of the tenant (no `id`) or of one
    /// agency, agent, carrier or line, `horizon` (1–12) months ahead.
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        scope: Dimension,
        id: Option<ID>,
        #[graphql(default = 12)] horizon: i32,
    ) -> Result<Option<Forecast>> {
        if !(1..=12).contains(&horizon) {
            return Err(bad_input("horizon must be between 1 and 12"));
        }
        let (series_scope, series_id) = match (scope, &id) {
            (Dimension::Month, _) => {
                return Err(bad_input("forecasts are by AGENCY, AGENT, CARRIER or LINE_OF_BUSINESS"));
            }
            (_, None) => (SeriesScope::Tenant, String::new()),
            (Dimension::Agency, Some(id)) => (SeriesScope::Agency, id.0.clone()),
            (Dimension::Agent, Some(id)) => (SeriesScope::Agent, id.0.clone()),
            (Dimension::Carrier, Some(id)) => (SeriesScope::Carrier, id.0.clone()),
            (Dimension::LineOfBusiness, Some(id)) => (SeriesScope::Line, id.0.clone()),
        };
        let v = view(ctx);
        if let Some(id) = &id {
            let dir = v.directory().await.map_err(internal)?;
            let known = match scope {
                Dimension::Agency => dir.agency(id).is_some(),
                Dimension::Agent => dir.agent(id).is_some(),
                Dimension::Carrier => dir.carrier(id).is_some(),
                _ => true,
            };
            if !known {
                return Err(not_found(format!("no {} with id {}", series_scope.as_str(), id.0)));
            }
        }
        let points =
            renewals::forecast(&v.session, series_scope, &series_id, horizon as u32).await.map_err(internal)?;
        let Some(first) = points.first() else { return Ok(None) };
        let model_version = first.model_version.clone();
        let accuracy = renewals::accuracy(&v.session, series_scope, &series_id).await.map_err(internal)?;
        Ok(Some(Forecast {
            scope,
            id,
            model_version,
            points: points
                .into_iter()
                .map(|p| ForecastPoint {
                    month: month_label(p.month),
                    value: Money(p.point),
                    lower80: Money(p.lower80),
                    upper80: Money(p.upper80),
                    lower95: Money(p.lower95),
                    upper95: Money(p.upper95),
                })
                .collect(),
            accuracy: accuracy
                .into_iter()
                .map(|a| ForecastAccuracy {
                    horizons: a.bucket,
                    mase: a.mase,
                    wape: a.wape,
                    coverage80: a.coverage80,
                    coverage95: a.coverage95,
                    seasonal_naive_mase: a.seasonal_naive_mase,
                    damped_trend_mase: a.damped_trend_mase,
                })
                .collect(),
        }))
    }

    /// Registered model versions, newest first per model.
    async fn models(&self, ctx: &Context<'_>) -> Vec<Model> {
        ctx.data_opt::<Arc<ModelCatalog>>()
            .map(|c| (0..c.0.len()).map(|index| Model { catalog: c.clone(), index }).collect())
            .unwrap_or_default()
    }
}

fn month_label(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}
