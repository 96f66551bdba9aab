//! HTTP endpoints: GraphQL (POST, GraphiQL on GET), health, readiness and
//! Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use async_graphql::dataloader::DataLoader;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use axum::Json;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::state::{AppState, ResultCache};
use crate::auth::{ANALYTICS_READ, Principal};
use crate::graphql::errors::Code;
use crate::graphql::loaders::PerformanceLoader;
use crate::graphql::reports::ReportStore;
use crate::query::industry::Industry;
use crate::query::view::TenantView;

/// A transport-level error in GraphQL's JSON shape.
pub(crate) fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, Json(body)).into_response()
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.version() {
        Some(v) => Json(json!({ "status": "ready", "snapshot": v })).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "snapshot": null }))).into_response()
        }
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.stats.render()).into_response()
}

pub async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").title("cip — GraphiQL").finish())
}

pub async fn graphql(State(state): State<Arc<AppState>>, headers: HeaderMap, req: GraphQLRequest) -> Response {
    let started = Instant::now();
    let request = req.into_inner();
    let operation = request.operation_name.clone().unwrap_or_else(|| operation_label(&request.query));
    let (outcome, response) = execute(&state, &headers, request).await;
    state.stats.observe(&operation, outcome, started.elapsed());
    response
}

/// An admitted caller: who, and the data it may see.
pub(crate) struct Admitted {
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
        data
    }
}

/// The steps every data request takes before it reaches the engine:
/// authenticate (401), require `analytics:read` (403), rate-limit the
/// credential (429), open its tenant's view (503 before any snapshot). On
/// refusal: the outcome label and the response to send.
pub(crate) async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Admitted, (&'static str, Response)> {
    let principal = match state.authenticate(headers) {
        Ok(p) => p,
        Err(e) => {
            return Err((
                "unauthenticated",
                error_response(StatusCode::UNAUTHORIZED, Code::Unauthenticated, &e.to_string()),
            ));
        }
    };
    if !principal.can(ANALYTICS_READ) {
        let msg = format!("this credential lacks the {ANALYTICS_READ} permission");
        return Err(("forbidden", error_response(StatusCode::FORBIDDEN, Code::Forbidden, &msg)));
    }
    if let Err(wait) = state.limiter.check(&principal.subject) {
        let mut r = error_response(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, "rate limit exceeded");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(("rate_limited", r));
    }
    match state.view(&principal.tenant_id).await {
        Ok(Some((view, industry))) => Ok(Admitted { principal, view, industry }),
        Ok(None) => {
            let r = error_response(StatusCode::SERVICE_UNAVAILABLE, Code::NotReady, "no snapshot published yet");
            Err(("not_ready", r))
        }
        Err(e) => {
            tracing::error!(error = %e, "opening tenant view failed");
            Err(("error", error_response(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "internal error")))
        }
    }
}

async fn execute(state: &AppState, headers: &HeaderMap, request: async_graphql::Request) -> (&'static str, Response) {
    let admitted = match admit(state, headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let view = admitted.view.clone();

    let variables = serde_json::to_string(&request.variables).unwrap_or_default();
    let key =
        ResultCache::key(view.version, &view.tenant, &request.query, request.operation_name.as_deref(), &variables);
    if let Some(body) = state.cache.get(key) {
        state.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        return ("ok", json_body(body));
    }
    state.stats.cache_misses.fetch_add(1, Ordering::Relaxed);

    let timeout = state.settings.query_timeout();
    let deadline = Instant::now() + timeout;
    let permit = match tokio::time::timeout(timeout, state.slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => return ("timeout", error_response(StatusCode::SERVICE_UNAVAILABLE, Code::Timeout, "server busy")),
    };
    let mut request = request;
    request.data = admitted.into_data(state);
    let engine_started = Instant::now();
    let result = tokio::time::timeout_at(deadline.into(), state.schema.execute(request)).await;
    drop(permit);
    state.stats.engine_seconds_micros.fetch_add(engine_started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let mut response = match result {
        Ok(r) => r,
        Err(_) => {
            let msg = format!("query exceeded {} ms", timeout.as_millis());
            return ("timeout", error_response(StatusCode::OK, Code::Timeout, &msg));
        }
    };
    // Errors raised by resolvers carry their code; the rest come from
    // parsing and validating the query itself: the client's input.
    for e in &mut response.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", Code::BadInput.as_str());
        }
    }
    let ok = response.errors.is_empty();
    // Fields marked `no_cache` (saved reports, mutations) read or change
    // state that the snapshot version does not capture.
    let cacheable = response.cache_control.max_age != -1;
    let body = bytes::Bytes::from(serde_json::to_vec(&response).unwrap_or_default());
    if ok && cacheable {
        state.cache.put(key, body.clone());
    }
    (if ok { "ok" } else { "error" }, json_body(body))
}

/// GraphQL over WebSocket (graphql-ws and the older
/// subscriptions-transport-ws). Credentials come from the upgrade request's
/// headers or, for browsers that cannot set them, from the
/// `connection_init` payload (`{"X-API-Key": …}` or `{"Authorization": "Bearer …"}`).
pub async fn graphql_ws(
    State(state): State<Arc<AppState>>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let schema = state.schema.clone();
            GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let mut headers = headers;
                    for (name, key) in [
                        ("x-api-key", ["X-API-Key", "x-api-key", "apiKey"]),
                        ("authorization", ["Authorization", "authorization", "authToken"]),
                    ] {
                        let value = key.iter().find_map(|k| payload.get(*k).and_then(|v| v.as_str()));
                        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                            headers.insert(name, v);
                        }
                    }
                    match admit(&state, &headers).await {
                        Ok(admitted) => Ok(admitted.into_data(&state)),
                        Err((outcome, _)) => {
                            let code = if outcome == "forbidden" { Code::Forbidden } else { Code::Unauthenticated };
                            Err(crate::graphql::errors::error(code, outcome))
                        }
                    }
                })
                .serve()
        })
        .into_response()
}

/// The name of the document's operation (`query Dash { … }` → `Dash`), for
/// per-operation metrics when the client sends no `operationName`.
fn operation_label(query: &str) -> String {
    let q = query.trim_start();
    let rest = ["query", "mutation", "subscription"].iter().find_map(|k| q.strip_prefix(k));
    let name: String = match rest {
        Some(r) if r.starts_with(char::is_whitespace) => {
            r.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        }
        _ => String::new(),
    };
    if name.is_empty() { "anonymous".into() } else { name }
}

fn json_body(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::operation_label;

    #[test]
    fn operations_are_labelled_by_their_name() {
        assert_eq!(operation_label("query Dash { agencies { id } }"), "Dash");
        assert_eq!(operation_label("  query Kpis($d: Date!) { x }"), "Kpis");
        assert_eq!(operation_label("{ agencies { id } }"), "anonymous");
        assert_eq!(operation_label("query { x }"), "anonymous");
    }
}
