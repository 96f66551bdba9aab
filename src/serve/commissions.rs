//! `GET /commissions/discrepancies.csv`: the discrepancies of the latest
//! reconciliations as CSV, with the credentials of `/graphql` (the guard:
//! same headers, same 401/403/429 bodies) and the filters of the
//! `discrepancies` field: `carrierId`, `period` (YYYY-MM), `type`
//! (`MISSING`, …), `status` (`OPEN` or `RESOLVED`). Money exact.

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
use crate::commissions::reconcile::DiscrepancyType;
use crate::contract::values::parse_month;
use crate::graphql::commissions::{DiscrepancyFilter, DiscrepancyStatus, discrepancies_csv, filtered_discrepancies};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    carrier_id: Option<String>,
    period: Option<String>,
    #[serde(rename = "type")]
    kind_of: Option<String>,
    status: Option<String>,
}

pub async fn discrepancies(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match respond(&state, &headers, params.ok().map(|q| q.0)).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("discrepancies_csv", outcome, started.elapsed());
    response
}

fn filter_of(p: Params) -> Result<DiscrepancyFilter, ApiError> {
    let period = match p.period.map(|s| s.trim().to_string()) {
        Some(m) if parse_month(&m).is_none() => {
            return Err(ApiError::bad_input(format!("period '{m}' is not YYYY-MM")));
        }
        other => other,
    };
    let kind_of = match p.kind_of.as_deref().map(str::trim) {
        None => None,
        Some(t) => Some(DiscrepancyType::parse(t).ok_or_else(|| {
            ApiError::bad_input(format!(
                "type '{t}' is not one of MISSING, UNDERPAID, OVERPAID, DUPLICATE, UNEXPECTED, RATE_MISMATCH"
            ))
        })?),
    };
    let status = match p.status.as_deref().map(str::trim) {
        None => None,
        Some("OPEN") => Some(DiscrepancyStatus::Open),
        Some("RESOLVED") => Some(DiscrepancyStatus::Resolved),
        Some(s) => return Err(ApiError::bad_input(format!("status '{s}' is not OPEN or RESOLVED"))),
    };
    Ok(DiscrepancyFilter { carrier_id: p.carrier_id, period, kind_of, status })
}

async fn respond(state: &AppState, headers: &HeaderMap, params: Option<Params>) -> Result<Response, ApiError> {
    let Admitted { view, .. } = guard::admit(state, headers, ANALYTICS_READ).await?;
    let Some(p) = params else {
        return Err(ApiError::bad_input("query parameters: carrierId, period (YYYY-MM), type, status"));
    };
    let filter = filter_of(p)?;
    let work = async move {
        let rows = filtered_discrepancies(&view.session, &filter).await.map_err(|e| ApiError::internal(e.message))?;
        discrepancies_csv(&rows).map(|b| (b, rows.len())).map_err(ApiError::internal)
    };
    let (body, total) = guard::in_slot(state, StatusCode::SERVICE_UNAVAILABLE, work).await??;
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"discrepancies.csv\""));
    h.insert("x-total-rows", HeaderValue::from(total as u64));
    Ok(response)
}
