//! The one guard every data request passes, whatever its door (GraphQL over
//! HTTP, each GraphQL operation over WebSocket, report downloads, feeds):
//!
//! authenticate → permission → rate limit → (result cache) → concurrency
//! slot → deadline → stats
//!
//! Each refusal is an [`ApiError`] with a stable `code`, an HTTP status and
//! a message safe to show; it renders as the GraphQL error shape over HTTP
//! and as a GraphQL error over WebSocket.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_graphql::dataloader::DataLoader;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::limits::RateLimiter;
use super::state::AppState;
use crate::auth::Principal;
use crate::graphql::errors::Code;
use crate::graphql::loaders::PerformanceLoader;
use crate::graphql::reports::ReportStore;
use crate::query::industry::Industry;
use crate::query::view::TenantView;

/// A refused or failed request: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
    /// More of `extensions` beside `code`, for doors whose refusals say
    /// more (the summary import's `reason` and each field's `problems`).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None, details: None }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::BadInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Code::TooLarge, format!("request body over {limit} bytes"))
    }

    /// `BAD_INPUT` with a stable `reason` (and more) in `extensions`.
    pub fn bad_input_because(reason: &str, message: impl Into<String>, more: serde_json::Value) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("reason".into(), reason.into());
        if let serde_json::Value::Object(more) = more {
            details.extend(more);
        }
        ApiError { details: Some(details), ..Self::bad_input(message) }
    }

    /// Log the cause with a reference; tell the client only the reference.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = crate::lake::new_run_id();
        tracing::error!(error_id = %id, %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, format!("internal error (reference {id})"))
    }

    fn rate_limited(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            retry_after: Some(secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, "rate limit exceeded")
        }
    }

    /// The outcome label of `/metrics`.
    pub fn outcome(&self) -> &'static str {
        match self.code {
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::BadInput => "bad_input",
            Code::NotFound => "not_found",
            Code::RateLimited => "rate_limited",
            Code::Timeout => "timeout",
            Code::NotReady => "not_ready",
            Code::TooLarge => "too_large",
            Code::Internal => "error",
        }
    }

    /// The same refusal as a GraphQL error (WebSocket operations).
    pub fn to_graphql(&self) -> async_graphql::ServerError {
        let mut e = async_graphql::ServerError::new(self.message.clone(), None);
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", self.code.as_str());
        for (k, v) in self.details.iter().flatten() {
            if let Ok(v) = async_graphql::Value::from_json(v.clone()) {
                ext.set(k, v);
            }
        }
        if let Some(s) = self.retry_after {
            ext.set("retryAfter", s);
        }
        e.extensions = Some(ext);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut extensions = serde_json::Map::new();
        extensions.insert("code".into(), self.code.as_str().into());
        extensions.extend(self.details.unwrap_or_default());
        let body = json!({ "errors": [{ "message": self.message, "extensions": extensions }] });
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// A caller that passed authentication, permission and the rate limit, with
/// the data it may see: its tenant's view of the served snapshot.
pub struct Admitted {
    pub principal: Principal,
    pub view: Arc<TenantView>,
    pub industry: Arc<Industry>,
}

impl Admitted {
    /// What resolvers may use: the caller's tenant view (the only way to
    /// data), its loaders, the industry figures, the principal and the
    /// saved-report store.
    pub fn into_data(self, state: &AppState) -> async_graphql::Data {
        let mut data = async_graphql::Data::default();
        data.insert(DataLoader::new(PerformanceLoader { view: self.view.clone() }, tokio::spawn));
        data.insert(self.view);
        data.insert(self.industry);
        data.insert(self.principal);
        data.insert(ReportStore::new(state.lake.clone()));
        data.insert(state.models());
        data.insert(crate::graphql::commissions::CommissionWriter {
            lake: state.lake.clone(),
            stream: state.stream(),
            max_backlog: (state.settings.max_stream_backlog, state.settings.max_stream_backlog_bytes),
        });
        data
    }
}

/// Authenticate (401), require `permission` (403), take a token of the
/// credential's bucket (429 with `Retry-After`), and open its tenant's view
/// (503 before any snapshot).
pub async fn admit(state: &AppState, headers: &HeaderMap, permission: &str) -> Result<Admitted, ApiError> {
    let principal = authorize(state, headers, permission, &state.limiter)?;
    match state.view(&principal.tenant_id).await {
        Ok(Some((view, industry))) => Ok(Admitted { principal, view, industry }),
        Ok(None) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, "no snapshot published yet")),
        Err(e) => Err(ApiError::internal(format!("opening tenant view failed: {e:#}"))),
    }
}

/// The first steps of [`admit`] for doors that write rather than read
/// (event ingest): authenticate (401), require `permission` (403), take a
/// token of the credential's bucket (429 with `Retry-After`).
pub fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    permission: &str,
    limiter: &RateLimiter,
) -> Result<Principal, ApiError> {
    let principal = permitted(state, headers, permission)?;
    // Buckets are per tenant and subject: two tenants' users named alike
    // (JWT `sub`) never share one.
    limiter.check(&format!("{}\u{0}{}", principal.tenant_id, principal.subject)).map_err(ApiError::rate_limited)?;
    Ok(principal)
}

/// Authenticate (401) and require `permission` (403), taking no token:
/// for a check before a large body is read, the request being admitted
/// (and charged) afterwards.
pub fn permitted(state: &AppState, headers: &HeaderMap, permission: &str) -> Result<Principal, ApiError> {
    let principal = state
        .authenticate(headers)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, Code::Unauthenticated, e.to_string()))?;
    if !principal.can(permission) {
        let msg = format!("this credential lacks the {permission} permission");
        return Err(ApiError::new(StatusCode::FORBIDDEN, Code::Forbidden, msg));
    }
    Ok(principal)
}

/// Run `work` in a concurrency slot on the engine's runtime, within the
/// per-request deadline (which includes the wait for the slot): 503
/// `TIMEOUT` with `Retry-After` when no slot frees in time, `TIMEOUT` with
/// `overrun_status` when the work overruns (GraphQL answers 200 with the
/// error in its body; downloads 503). The slot and the deadline travel with
/// the engine task, and the task is aborted when the request goes away
/// (a client disconnects, a WebSocket operation is stopped): work never
/// outlives its slot. Engine time goes to the stats.
pub async fn in_slot<F>(state: &AppState, overrun_status: StatusCode, work: F) -> Result<F::Output, ApiError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let timeout = state.settings.query_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let permit = match tokio::time::timeout_at(deadline, state.slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            let busy = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Timeout,
                "server busy: no query slot free in time",
            );
            return Err(ApiError { retry_after: Some(1), ..busy });
        }
    };
    let started = Instant::now();
    let task = AbortOnDrop(state.engine.spawn(async move {
        let _slot = permit;
        tokio::time::timeout_at(deadline, work).await
    }));
    let result = task.join().await;
    state.stats.engine_seconds_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    match result {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(_elapsed)) => {
            Err(ApiError::new(overrun_status, Code::Timeout, format!("query exceeded {} ms", timeout.as_millis())))
        }
        Err(join) => Err(ApiError::internal(format!("engine task failed: {join}"))),
    }
}

/// An engine task that is aborted if its request is dropped before it ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort(); // a no-op once the task has finished
    }
}
