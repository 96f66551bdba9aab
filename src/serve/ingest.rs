//! `POST /ingest/events`: streaming events from agency systems, answered
//! only once the accepted ones are durable in the write-ahead log.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::{self, ApiError};
use super::request;
use super::state::AppState;
use crate::auth::INGEST_WRITE;
use crate::graphql::errors::Code;

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
    let principal = guard::authorize(state, headers, INGEST_WRITE, &state.ingest_limiter)?;
    let Some(stream) = state.stream.get() else {
        let msg = "this server serves a pinned lake version and takes no events";
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, msg));
    };
    if stream.backlog() >= state.settings.max_stream_backlog {
        let busy =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::RateLimited, "ingest backlog full: retry shortly");
        return Err(ApiError { retry_after: Some(1), ..busy });
    }
    let bytes = request::read_body(headers, body, state.settings.max_ingest_bytes).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_input("the body must be UTF-8 JSON"))?;
    match stream.accept(&principal.tenant_id, text).await {
        Ok(accepted) => Ok(Json(accepted).into_response()),
        Err(e) => {
            // Nothing of this request was acknowledged: the client retries.
            let e = ApiError::internal(format!("writing the event log: {e}"));
            Err(ApiError { status: StatusCode::SERVICE_UNAVAILABLE, retry_after: Some(1), ..e })
        }
    }
}
