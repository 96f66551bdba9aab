//! `POST /ingest/events`: streaming events from agency systems, answered
//! only once the accepted ones are durable in the write-ahead log; and
//! `POST /ingest/ams/{source}`: a source system's own payloads, mapped to
//! the same events (`pipelines::ams`) behind the same door.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::guard::{self, ApiError};
use super::request;
use super::state::AppState;
use crate::auth::{INGEST_WRITE, Principal};
use crate::graphql::errors::Code;
use crate::pipelines::ams;
use crate::pipelines::stream::{Stream, StreamError};

/// One event (a JSON object) or an NDJSON batch, for the credential's
/// tenant: 200 with each event's outcome (accepted, duplicate, or rejected
/// with the batch pipeline's reason code); 413 over the body limit; 503
/// with `Retry-After` while the log holds more uncommitted requests than
/// the configured backlog, or when the log cannot be written.
pub async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match accept(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (principal, stream, body) = admit(state, headers, body).await?;
    let text = utf8(body)?;
    match stream.accept(&principal.tenant_id, &text).await {
        Ok(accepted) => Ok(Json(accepted).into_response()),
        Err(e) => Err(log_failed(e)),
    }
}

/// Payloads of `{source}` (one JSON object, a JSON array or NDJSON) for
/// the credential's tenant: 200 with each row's outcome naming its payload
/// (a payload the mapping refuses is reported with its code and reason,
/// and the others go on); 404 `NOT_FOUND` for a source cip has no mapping
/// for; otherwise the statuses of [`events`].
pub async fn ams(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept_ams(&state, &source, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn accept_ams(state: &AppState, source: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (principal, stream, body) = admit(state, headers, body).await?;
    let Some(adapter) = ams::adapter(source) else {
        let msg = format!("no AMS source '{source}': one of {}", ams::source_names());
        return Err(ApiError::not_found(msg));
    };
    let text = utf8(body)?;
    let payloads = ams::split_payloads(&text).map_err(ApiError::bad_input)?;
    let payloads = payloads.into_iter().map(str::to_string).collect();
    match ams::ingest(&stream, adapter, &principal.tenant_id, payloads).await {
        Ok(accepted) => Ok(Json(accepted).into_response()),
        Err(e) => Err(log_failed(e)),
    }
}

/// The steps every ingest door takes: the credential with `ingest:write`
/// (401/403/429), a streaming writer (503 on a pinned version), the body
/// within the ingest limit (413), and room in the backlog (503 with
/// `Retry-After`). The body is read before the backlog is checked: a
/// client still sending when the answer comes would see its connection
/// reset instead of the 503 and its `Retry-After`.
pub(super) async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Principal, Arc<Stream>, Bytes), ApiError> {
    admit_with(state, headers, INGEST_WRITE, body).await
}

/// [`admit`] for a door that lands rows under another permission (statement uploads).
pub(super) async fn admit_with(
    state: &AppState,
    headers: &HeaderMap,
    permission: &str,
    body: Body,
) -> Result<(Principal, Arc<Stream>, Bytes), ApiError> {
    let principal = guard::authorize(state, headers, permission, &state.ingest_limiter)?;
    let Some(stream) = state.stream() else {
        return Err(not_holder(state));
    };
    let body = request::read_body(headers, body, state.settings.max_ingest_bytes).await?;
    if stream.backlog() >= state.settings.max_stream_backlog
        || stream.backlog_bytes() >= state.settings.max_stream_backlog_bytes
    {
        return Err(busy("ingest backlog full: retry shortly"));
    }
    Ok((principal, stream, body))
}

/// An ingest body as UTF-8 text.
fn utf8(body: Bytes) -> Result<String, ApiError> {
    String::from_utf8(Vec::from(body)).map_err(|_| ApiError::bad_input("the body must be UTF-8 JSON"))
}

/// 503 with `Retry-After: 1`.
pub(super) fn busy(message: &str) -> ApiError {
    ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::RateLimited, message) }
}

/// 503 for a server that takes no events: it serves a pinned version (for
/// good), or another server holds the lake's stream lease (`Retry-After`:
/// a client retrying finds this server again after a take-over).
fn not_holder(state: &AppState) -> ApiError {
    if state.settings.pinned() {
        let msg = "this server serves a pinned lake version and takes no events";
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, msg);
    }
    let msg = "another server takes this lake's events now: send them there, or retry";
    ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, msg) }
}

/// The log could not be written: nothing of the request was acknowledged,
/// so the client retries.
pub(super) fn log_failed(e: StreamError) -> ApiError {
    if let StreamError::NotHolder = e {
        let msg = "this server's turn to take the lake's events ended: retry";
        return ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, msg)
        };
    }
    let e = ApiError::internal(format!("writing the event log: {e}"));
    ApiError { status: StatusCode::SERVICE_UNAVAILABLE, retry_after: Some(1), ..e }
}
