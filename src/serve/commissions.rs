//! Two doors of the commission engine, both through the guard.
//!
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

use serde_json::json;

use super::guard::{self, Admitted, ApiError};
use super::state::AppState;
use crate::auth::{ANALYTICS_READ, COMMISSIONS_WRITE};
use crate::commissions::reconcile::DiscrepancyType;
use crate::commissions::store;
use crate::commissions::upload;
use crate::contract::values::parse_month;
use crate::graphql::commissions::{DiscrepancyFilter, DiscrepancyStatus, discrepancies_csv, filtered_discrepancies};
use crate::graphql::errors::Code;

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

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UploadParams {
    carrier_id: Option<String>,
}

/// `POST /commissions/statements?carrierId=…`: a carrier statement as CSV
/// (`commissions:write`), read with the carrier's saved column mapping
/// (`setStatementMapping`; without one the contract's column names), every
/// record checked with the streaming door's row rules, and landed as
/// `statement_lines` rows through that door — all of them or, when any
/// record is refused, none (400 `BAD_INPUT` with `reason` and each
/// record's `problems`). 413 over the ingest body limit.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<UploadParams>, QueryRejection>,
    body: axum::body::Body,
) -> Response {
    let started = Instant::now();
    let carrier = params.ok().and_then(|q| q.0.carrier_id);
    let (outcome, response) = match upload_statement(&state, &headers, carrier, body).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("statement_upload", outcome, started.elapsed());
    response
}

/// A refused file as 400 `BAD_INPUT` with its `reason` and `problems`.
fn refused(r: upload::Refused) -> ApiError {
    ApiError::bad_input_because(r.reason, r.message, json!({"problems": r.problems}))
}

async fn upload_statement(
    state: &AppState,
    headers: &HeaderMap,
    carrier: Option<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (principal, stream, bytes) = super::ingest::admit_with(state, headers, COMMISSIONS_WRITE, body).await?;
    let carrier = carrier.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    let carrier = carrier.ok_or_else(|| ApiError::bad_input("carrierId is required"))?;
    let text = upload::utf8(Vec::from(bytes)).map_err(refused)?;
    let tenant = principal.tenant_id.clone();
    let view = match state.view(&tenant).await.map_err(ApiError::internal)? {
        Some((view, _)) => view,
        None => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, "no snapshot published yet"));
        }
    };
    // The carrier and its mapping, read in a slot like any query.
    let c = carrier.clone();
    let work = async move {
        let known = view.directory().await.map_err(ApiError::internal)?.carrier(&c).is_some();
        let mappings = store::mappings(&view.session).await.map_err(ApiError::internal)?;
        Ok::<_, ApiError>((known, mappings.get(&c).map(|(m, _)| m.clone())))
    };
    let (known, mapping) = guard::in_slot(state, StatusCode::SERVICE_UNAVAILABLE, work).await??;
    if !known {
        return Err(ApiError::not_found(format!("no carrier {carrier}")));
    }
    let mapped = mapping.is_some();
    let t = tenant.clone();
    // Parsing and checking a large file is CPU work: off the async threads.
    let checked = tokio::task::spawn_blocking(move || {
        upload::statement_events(&text, &mapping.unwrap_or_default(), &t, &carrier)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    let landed = upload::land(&stream, &tenant, checked, mapped).await.map_err(|e| match e {
        upload::LandError::Log(e) => super::ingest::log_failed(e),
        e @ upload::LandError::Refused(_) => ApiError::internal(e),
    })?;
    Ok(axum::Json(landed).into_response())
}
