//! Files for CRMs that pull: `GET /feeds/renewals.csv`, the renewal
//! intelligence feed as CSV, with the credentials of `/graphql` (same
//! headers, same 401/403/429 JSON bodies) and the filters of
//! `renewalIntelligence`: `from`, `to` (expiration in `[from, to)`),
//! `agencyId`, `agentId`, `maxProbability`. Most at risk first; money exact.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::guard::{self, Admitted, ApiError};
use super::state::AppState;
use crate::auth::ANALYTICS_READ;
use crate::contract::values::parse_date;
use crate::graphql::models::recommend;
use crate::models::actions;
use crate::query::renewals::{self, RenewalFilter, RenewalRow};
use crate::query::view::TenantView;

/// Rows read from the engine per round.
const PAGE: usize = 5_000;
/// Largest feed; beyond it the client narrows the window.
pub const MAX_ROWS: usize = 200_000;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FeedParams {
    from: Option<String>,
    to: Option<String>,
    agency_id: Option<String>,
    agent_id: Option<String>,
    max_probability: Option<f64>,
}

pub const COLUMNS: [&str; 20] = [
    "policy_id",
    "policy_number",
    "customer_id",
    "agency_id",
    "agency_name",
    "agent_id",
    "producer_name",
    "carrier_id",
    "carrier_name",
    "line_of_business",
    "premium",
    "expiration_date",
    "renewal_probability",
    "risk_level",
    "commission_at_stake",
    "driver_1",
    "driver_2",
    "driver_3",
    "recommended_actions",
    "scored_as_of",
];

pub async fn renewals_csv(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match respond(&state, &headers, params.ok().map(|q| q.0)).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("renewals_feed", outcome, started.elapsed());
    response
}

async fn respond(state: &AppState, headers: &HeaderMap, params: Option<FeedParams>) -> Result<Response, ApiError> {
    let Admitted { view, .. } = guard::admit(state, headers, ANALYTICS_READ).await?;
    let Some(p) = params else {
        return Err(ApiError::bad_input("query parameters: from, to (YYYY-MM-DD), agencyId, agentId, maxProbability"));
    };
    let date = |s: &Option<String>| s.as_deref().map(|s| parse_date(s).ok_or(())).transpose();
    let (Ok(from), Ok(to)) = (date(&p.from), date(&p.to)) else {
        return Err(ApiError::bad_input("from and to are dates YYYY-MM-DD"));
    };
    let filter =
        RenewalFilter { from, to, agency_id: p.agency_id, agent_id: p.agent_id, max_probability: p.max_probability };
    // Every page of engine queries runs in one slot, within one deadline.
    let work = async move { build(&view, &filter).await };
    let (body, total) = guard::in_slot(state, StatusCode::SERVICE_UNAVAILABLE, work).await??;
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"renewals.csv\""));
    h.insert("x-total-rows", HeaderValue::from(total as u64));
    Ok(response)
}

/// The whole feed as CSV, page by page, and its row count.
async fn build(view: &TenantView, filter: &RenewalFilter) -> Result<(Vec<u8>, usize), ApiError> {
    let dir = view.directory().await.map_err(ApiError::internal)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    let mut after = None;
    let mut total = 0usize;
    loop {
        let rows = renewals::renewals(&view.session, filter, after.as_ref(), PAGE).await.map_err(ApiError::internal)?;
        let n = rows.len();
        for r in &rows {
            let _ = w.write_record(record(r, &dir));
        }
        total += n;
        if total > MAX_ROWS {
            return Err(ApiError::bad_input(format!(
                "the feed has more than {MAX_ROWS} rows: narrow the window (from, to)"
            )));
        }
        if n < PAGE {
            break;
        }
        let last = rows.last().expect("a full page");
        after = Some(renewals::Cursor { probability: last.probability, policy_id: last.policy.id.clone() });
    }
    Ok((w.into_inner().map_err(ApiError::internal)?, total))
}

fn record(r: &RenewalRow, dir: &crate::query::view::Directory) -> Vec<String> {
    let p = &r.policy;
    let risk = match actions::risk(r.probability) {
        actions::Risk::High => "HIGH",
        actions::Risk::Medium => "MEDIUM",
        actions::Risk::Low => "LOW",
    };
    let driver = |i: usize| r.drivers.get(i).map(|d| d.description.clone()).unwrap_or_default();
    let actions: Vec<String> =
        recommend(r).into_iter().map(|a| format!("{} by {}: {}", a.code, a.due_by, a.description)).collect();
    vec![
        p.id.clone(),
        p.policy_number.clone(),
        p.customer_id.clone(),
        p.agency_id.clone(),
        dir.agency(&p.agency_id).map(|a| a.name.clone()).unwrap_or_default(),
        p.agent_id.clone(),
        dir.agent(&p.agent_id).map(|a| a.name.clone()).unwrap_or_default(),
        p.carrier_id.clone(),
        dir.carrier(&p.carrier_id).map(|c| c.name.clone()).unwrap_or_default(),
        p.line_of_business.clone(),
        format!("{:.2}", p.premium),
        p.expiration_date.to_string(),
        format!("{:.4}", r.probability),
        risk.to_string(),
        format!("{:.2}", r.commission_at_stake),
        driver(0),
        driver(1),
        driver(2),
        actions.join(" | "),
        r.as_of.to_string(),
    ]
}
