//! The monthly summary's two doors (see `docs/summary-import.md`):
//!
//! - `POST /ingest/summary` lands a summary as contract rows through the
//!   streaming pipeline (the credential's tenant, `ingest:write`, the body
//!   limit, the backlog 503 of `POST /ingest/events`), answered once its
//!   events are durable in the log;
//! - `GET /export/commissions?month=YYYY-MM&format=json|csv` gives any
//!   month of the tenant's lake back in the same shape (`analytics:read`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::guard::{self, Admitted, ApiError};
use super::ingest;
use super::state::AppState;
use crate::auth::ANALYTICS_READ;
use crate::contract::summary::{Month, Refused, Summary, Warning, codes};
use crate::lake::{Location, snapshot};
use crate::pipelines::events::EventChecker;
use crate::pipelines::summary::{self as mapping, Plan, RowCounts, Stored};
use crate::query::summary::month_summary;
use crate::query::view::{SessionLimits, TenantView};

/// Stable `reason`s of the export's refusals.
pub const INVALID_MONTH: &str = codes::INVALID_MONTH;
pub const INVALID_FORMAT: &str = "invalid_format";

/// One lock per tenant: a tenant's imports run one at a time, each after
/// the previous one is committed, so that each reads what the previous
/// one wrote (its withdrawals depend on it).
#[derive(Default)]
pub struct TenantLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl TenantLocks {
    fn of(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().expect("tenant locks").entry(tenant.to_string()).or_default().clone()
    }
}

#[derive(Serialize)]
struct Imported {
    agents: usize,
    managers: usize,
    /// Everyone's commission (agents' and managers' overrides).
    total_commission: Decimal,
}

#[derive(Serialize)]
struct Logged {
    accepted: usize,
    duplicates: usize,
    /// The log sequence holding the events: visible once a lake version
    /// contains it.
    sequence: Option<u64>,
}

#[derive(Serialize)]
struct ImportAnswer {
    month: Month,
    imported: Imported,
    validation_warnings: Vec<Warning>,
    rows: RowCounts,
    events: Logged,
}

/// 200 with what was imported and the warnings; 400 `BAD_INPUT` with
/// `reason` `malformed_body` or `invalid_summary` and each field's
/// `problems`; the refusals of `POST /ingest/events` otherwise.
pub async fn import(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (outcome, response) = match import_summary(&state, &headers, body).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("summary_import", outcome, started.elapsed());
    response
}

fn refused(r: Refused) -> ApiError {
    let message = match r.problems.as_slice() {
        [one] => one.message.clone(),
        many => format!("the summary has {} problems: {}", many.len(), many[0].message),
    };
    ApiError::bad_input_because(r.reason, message, json!({ "problems": r.problems }))
}

async fn import_summary(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (principal, stream, bytes) = ingest::admit(state, headers, body).await?;
    let tenant = principal.tenant_id;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_input_because(codes::MALFORMED_BODY, "the body must be UTF-8 JSON", json!({})))?;
    let summary = Summary::parse(text, &tenant).map_err(refused)?;
    let warnings = summary.warnings();

    let lock = state.summary_locks.of(&tenant);
    let _one_at_a_time = lock.lock().await;
    // Everything logged so far is in the lake before it is read: the rows
    // of an earlier import of this month must be seen to be withdrawn.
    let logged = stream.logged();
    if !stream.committed_within(logged).await {
        return Err(ingest::busy("earlier events are still being committed: retry shortly"));
    }
    let (lake, limits, month, t) = (state.lake.clone(), state.settings.session_limits(), summary.month, tenant.clone());
    let stored =
        guard::in_slot(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            async move { read_stored(&lake, &t, month, limits).await },
        )
        .await?
        .map_err(|e| ApiError::internal(format!("reading the stored summary rows: {e:#}")))?;

    // Building and checking up to ~40,000 events is CPU work.
    let t = tenant.clone();
    let (summary, plan) = tokio::task::spawn_blocking(move || {
        let plan = mapping::plan(&summary, &stored, Utc::now());
        checked(&plan, &t).map(|()| (summary, plan))
    })
    .await
    .map_err(ApiError::internal)??;

    let accepted = stream.accept(&tenant, &plan.events.join("\n")).await.map_err(ingest::log_failed)?;
    if accepted.rejected > 0 {
        // Checked above with the same rules: a bug, not the client's.
        let first = accepted.results.iter().find(|r| r.status == "rejected");
        return Err(ApiError::internal(format!("summary events refused by the stream after the check: {first:?}")));
    }
    let answer = ImportAnswer {
        month: summary.month,
        imported: Imported {
            agents: summary.agents.len(),
            managers: summary.managers.len(),
            total_commission: summary.total_commission(),
        },
        validation_warnings: warnings,
        rows: plan.rows,
        events: Logged { accepted: accepted.accepted, duplicates: accepted.duplicates, sequence: accepted.sequence },
    };
    Ok(Json(answer).into_response())
}

/// Every event of `plan` passes the streaming door's checks, or the import
/// is refused before any of it is logged (all or nothing).
fn checked(plan: &Plan, tenant: &str) -> Result<(), ApiError> {
    let checker = EventChecker::default();
    let problems: Vec<_> = plan
        .events
        .iter()
        .filter_map(|line| checker.check(line, tenant).err())
        .map(|e| json!({ "field": "", "code": e.reject.code.as_str(), "message": e.reject.message }))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let message = format!("the summary does not make valid rows: {}", problems[0]["message"]);
    Err(ApiError::bad_input_because(codes::INVALID_SUMMARY, message, json!({ "problems": problems })))
}

async fn read_stored(lake: &Location, tenant: &str, month: Month, limits: SessionLimits) -> anyhow::Result<Stored> {
    let Some(manifest) = snapshot::latest(lake).await? else { return Ok(Stored::default()) };
    let view = TenantView::open(lake, &manifest, tenant, limits).await?;
    Ok(mapping::stored(&view.session, month).await?)
}

#[derive(Debug, Deserialize, Default)]
pub struct ExportParams {
    month: Option<String>,
    format: Option<String>,
}

enum Format {
    Json,
    Csv,
}

/// The CSV export's columns: one line per agent and manager (`list`
/// `agents` or `managers`), then one `metadata` line with the totals in
/// `gp` and `deals` and the rate in `commission_pct`.
pub const CSV_COLUMNS: [&str; 8] = ["month", "list", "name", "type", "gp", "deals", "commission", "commission_pct"];

pub async fn export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = match export_month(&state, &headers, params.ok().map(|q| q.0)).await {
        Ok(r) => ("ok", r),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe("commissions_export", outcome, started.elapsed());
    response
}

async fn export_month(
    state: &AppState,
    headers: &HeaderMap,
    params: Option<ExportParams>,
) -> Result<Response, ApiError> {
    let Admitted { view, .. } = guard::admit(state, headers, ANALYTICS_READ).await?;
    let p = params.unwrap_or_default();
    let month = match p.month.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(Month::parse(m).ok_or(m)),
    };
    let month = match month {
        Some(Ok(m)) => m,
        Some(Err(bad)) => {
            let msg = format!("month: '{bad}' is not a month YYYY-MM");
            return Err(ApiError::bad_input_because(INVALID_MONTH, msg, json!({})));
        }
        None => return Err(ApiError::bad_input_because(INVALID_MONTH, "month is required: YYYY-MM", json!({}))),
    };
    let format = match p.format.as_deref().map(|f| f.trim().to_ascii_lowercase()) {
        None => Format::Json,
        Some(f) if f == "json" => Format::Json,
        Some(f) if f == "csv" => Format::Csv,
        Some(f) => {
            let msg = format!("format: '{f}' is not one of json|csv");
            return Err(ApiError::bad_input_because(INVALID_FORMAT, msg, json!({})));
        }
    };
    let work = async move { month_summary(&view.session, month).await };
    let summary = guard::in_slot(state, StatusCode::SERVICE_UNAVAILABLE, work).await?.map_err(ApiError::internal)?;
    let (body, content_type) = match format {
        Format::Json => (serde_json::to_vec(&summary).map_err(ApiError::internal)?, "application/json"),
        Format::Csv => (csv(&summary).map_err(ApiError::internal)?, "text/csv; charset=utf-8"),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if matches!(format, Format::Csv) {
        let name = format!("attachment; filename=\"commissions-{month}.csv\"");
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).map_err(ApiError::internal)?);
    }
    Ok(response)
}

fn csv(s: &Summary) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let month = s.month.to_string();
    for (list, people) in [("agents", &s.agents), ("managers", &s.managers)] {
        for p in people {
            let standing = serde_json::to_value(p.standing).expect("a standing serialises");
            let standing = standing.as_str().expect("a standing is a string");
            let deals = p.deals.to_string();
            let (gp, commission) = (p.gp.to_string(), p.commission.to_string());
            w.write_record([month.as_str(), list, &p.name, standing, &gp, &deals, &commission, ""])?;
        }
    }
    let m = &s.metadata;
    let pct = m.commission_pct.map(|p| p.to_string()).unwrap_or_default();
    let (gp, deals) = (m.total_gp.to_string(), m.total_transactions.to_string());
    w.write_record([month.as_str(), "metadata", "", "", &gp, &deals, "", &pct])?;
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
