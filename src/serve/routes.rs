//! HTTP endpoints: GraphQL over HTTP (POST) and WebSocket, health,
//! readiness and Prometheus metrics. Every data request goes through the
//! guard (`super::guard`): over WebSocket, each operation does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Executor};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;

use super::guard::{self, Admitted, ApiError};
use super::hot::HotQuery;
use super::request;
use super::state::{AppState, ResultCache};
use super::stats::UNAUTHENTICATED;
use crate::auth::{ANALYTICS_READ, COMMISSIONS_WRITE};
use crate::graphql::errors::{Code, internal};
use crate::graphql::live::{KpisOnLatest, Live};
use crate::graphql::schema::agency_kpis;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: the version served, and whether this server takes the
/// lake's events now (it holds the stream lease) or only serves queries.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let events = state.stream().is_some();
    match state.version() {
        Some(v) => Json(json!({ "status": "ready", "snapshot": v, "events": events })).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "snapshot": null }))).into_response()
        }
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.stats.render() + &super::memory::render(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `POST /graphql`: one operation per request, its body read up to the
/// configured limit (413 beyond), then the guard, the result cache, a slot
/// and the deadline.
pub async fn graphql(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (label, result) = match parse(&state, &headers, body).await {
        Ok(request) => execute(&state, &headers, request).await,
        Err(e) => (UNAUTHENTICATED.to_string(), Err(e)),
    };
    let (outcome, response) = match result {
        Ok((outcome, response)) => (outcome, response),
        Err(e) => (e.outcome(), e.into_response()),
    };
    state.stats.observe(&label, outcome, started.elapsed());
    response
}

async fn parse(state: &AppState, headers: &HeaderMap, body: Body) -> Result<async_graphql::Request, ApiError> {
    let limits = state.settings.request_limits();
    if let Some(content_type) = request::multipart_type(headers) {
        return parse_upload(state, headers, content_type, body).await;
    }
    let bytes = request::read_body(headers, body, limits.max_body_bytes).await?;
    request::graphql_request(&bytes, &limits)
}

/// A GraphQL multipart request (a statement upload): as large as an ingest
/// body, so only a credential that may write commissions may send one, and
/// that is checked before the body is read. One file at most.
async fn parse_upload(
    state: &AppState,
    headers: &HeaderMap,
    content_type: String,
    body: Body,
) -> Result<async_graphql::Request, ApiError> {
    guard::permitted(state, headers, COMMISSIONS_WRITE)?;
    let limits = state.settings.request_limits();
    let max_file = state.settings.max_ingest_bytes;
    let bytes = request::read_body(headers, body, max_file + limits.max_body_bytes).await?;
    let opts = async_graphql::http::MultipartOptions::default().max_num_files(1).max_file_size(max_file);
    let request =
        async_graphql::http::receive_body(Some(content_type), &bytes[..], opts).await.map_err(|e| match e {
            async_graphql::ParseRequestError::PayloadTooLarge => ApiError::too_large(max_file),
            e => ApiError::bad_input(format!("not a GraphQL multipart request: {e}")),
        })?;
    request::check_query(&request.query, &limits)?;
    Ok(request)
}

/// The operation's metrics label (only once the caller is authenticated)
/// and the outcome with the response.
type Executed = (String, Result<(&'static str, Response), ApiError>);

async fn execute(state: &AppState, headers: &HeaderMap, request: async_graphql::Request) -> Executed {
    let admitted = match guard::admit(state, headers, ANALYTICS_READ).await {
        Ok(a) => a,
        Err(e) if e.code == Code::Unauthenticated => return (UNAUTHENTICATED.into(), Err(e)),
        Err(e) => return (label(state, &request), Err(e)),
    };
    let label = label(state, &request);
    let view = admitted.view.clone();
    let variables = serde_json::to_string(&request.variables).unwrap_or_default();
    let key =
        ResultCache::key(view.version, &view.tenant, &request.query, request.operation_name.as_deref(), &variables);
    if let Some(body) = state.cache.get(key) {
        state.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        state.hot.touch(key);
        return (label, Ok(("ok", json_body(body))));
    }
    state.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
    let hot = HotQuery::new(admitted.principal.clone(), &request, variables);
    let answer = match answer(state, admitted, request).await {
        Ok(r) => r,
        Err(e) => return (label, Err(e)),
    };
    if answer.cacheable() {
        state.cache.put(key, answer.body.clone());
        state.hot.remember(key, hot);
    }
    (label, Ok((if answer.ok { "ok" } else { "error" }, json_body(answer.body))))
}

/// An operation's JSON body, whether it succeeded, and whether it may be
/// cached.
pub(super) struct Answer {
    pub body: bytes::Bytes,
    pub ok: bool,
    /// No field is marked `no_cache` (saved reports and mutations read or
    /// change state that the snapshot version does not capture).
    pub versioned: bool,
}

impl Answer {
    pub fn cacheable(&self) -> bool {
        self.ok && self.versioned
    }
}

/// Run an admitted operation to its JSON body.
pub(super) async fn answer(
    state: &AppState,
    admitted: Admitted,
    request: async_graphql::Request,
) -> Result<Answer, ApiError> {
    let response = run(state, admitted, request, StatusCode::OK).await?;
    Ok(Answer {
        ok: response.errors.is_empty(),
        versioned: response.cache_control.max_age != -1,
        body: bytes::Bytes::from(serde_json::to_vec(&response).unwrap_or_default()),
    })
}

/// Execute an admitted operation in a slot, within the deadline.
async fn run(
    state: &AppState,
    admitted: Admitted,
    mut request: async_graphql::Request,
    overrun_status: StatusCode,
) -> Result<async_graphql::Response, ApiError> {
    request.data = admitted.into_data(state);
    let schema = state.schema.clone();
    let response = guard::in_slot(state, overrun_status, async move { schema.execute(request).await }).await?;
    Ok(with_codes(response))
}

/// Errors raised by resolvers carry their code; the rest come from parsing
/// and validating the query itself: the client's input.
fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for e in &mut response.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", Code::BadInput.as_str());
        }
    }
    response
}

/// The label of an operation: its `operationName`, else the name in the
/// document (`query Dash { … }` → `Dash`), bounded by the stats.
fn label(state: &AppState, request: &async_graphql::Request) -> String {
    let named = request.operation_name.clone().or_else(|| document_operation_name(&request.query));
    state.stats.operation_label(named.as_deref())
}

/// The credentials of a WebSocket connection: the upgrade request's headers,
/// completed by the `connection_init` payload. Every operation is admitted
/// with them anew, so a revoked key or an exhausted bucket stops the next
/// operation, not only the next connection.
#[derive(Clone)]
struct WsCredentials(HeaderMap);

/// Runs each WebSocket operation through the guard, as `POST /graphql` does.
#[derive(Clone)]
struct GuardedExecutor {
    state: Arc<AppState>,
}

impl GuardedExecutor {
    async fn operation(&self, headers: HeaderMap, request: async_graphql::Request) -> async_graphql::Response {
        let state = &self.state;
        let started = Instant::now();
        let refused = |e: ApiError| async_graphql::Response::from_errors(vec![e.to_graphql()]);
        let (label, outcome, response) = match request::check_query(&request.query, &state.settings.request_limits()) {
            Err(e) => (UNAUTHENTICATED.to_string(), e.outcome(), refused(e)),
            Ok(()) => match guard::admit(state, &headers, ANALYTICS_READ).await {
                Err(e) if e.code == Code::Unauthenticated => (UNAUTHENTICATED.into(), e.outcome(), refused(e)),
                Err(e) => (label(state, &request), e.outcome(), refused(e)),
                Ok(admitted) => {
                    let label = label(state, &request);
                    match run(state, admitted, request, StatusCode::OK).await {
                        Ok(r) => (label, if r.errors.is_empty() { "ok" } else { "error" }, r),
                        Err(e) => (label, e.outcome(), refused(e)),
                    }
                }
            },
        };
        state.stats.observe(&format!("ws:{label}"), outcome, started.elapsed());
        response
    }

    /// A subscription: admitted once like any operation (credential,
    /// permission, rate limit), then every message computed on the
    /// tenant's newest view in a query slot, within the deadline.
    async fn subscription(
        &self,
        headers: HeaderMap,
        mut request: async_graphql::Request,
    ) -> BoxStream<'static, async_graphql::Response> {
        let state = self.state.clone();
        let refused = |e: ApiError| -> BoxStream<'static, async_graphql::Response> {
            Box::pin(futures::stream::once(std::future::ready(async_graphql::Response::from_errors(vec![
                e.to_graphql(),
            ]))))
        };
        if let Err(e) = request::check_query(&request.query, &state.settings.request_limits()) {
            return refused(e);
        }
        let admitted = match guard::admit(&state, &headers, ANALYTICS_READ).await {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        state.stats.observe(&format!("ws:{}", label(&state, &request)), "ok", std::time::Duration::ZERO);
        let tenant = admitted.principal.tenant_id.clone();
        let mut data = admitted.into_data(&state);
        let on = state.clone();
        let kpis: KpisOnLatest = Arc::new(move |agency, as_of| {
            let (state, tenant) = (on.clone(), tenant.clone());
            Box::pin(async move {
                let Some((view, _)) = state.view(&tenant).await.map_err(internal)? else {
                    return Err(crate::graphql::errors::error(Code::NotReady, "no lake version is served"));
                };
                let work = async move {
                    if view.directory().await.map_err(internal)?.agency(&agency).is_none() {
                        return Ok(None);
                    }
                    agency_kpis(&view, &agency, as_of).await.map(Some)
                };
                guard::in_slot(&state, StatusCode::OK, work).await.map_err(|e| {
                    let e = e.to_graphql();
                    async_graphql::Error { message: e.message, source: None, extensions: e.extensions }
                })?
            })
        });
        data.insert(Live { versions: state.served_versions(), kpis });
        request.data = data;
        Box::pin(state.schema.execute_stream(request).map(with_codes))
    }
}

/// Whether the document is a subscription (its first keyword).
fn is_subscription(query: &str) -> bool {
    request::tokens(query).next() == Some("subscription")
}

impl Executor for GuardedExecutor {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.operation(HeaderMap::new(), request).await
    }

    /// Queries and mutations answer once; a subscription answers as long as
    /// the connection lives, each message under the limits of a query.
    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let this = self.clone();
        let headers = session_data
            .and_then(|d| {
                d.get(&std::any::TypeId::of::<WsCredentials>())?.downcast_ref::<WsCredentials>().map(|c| c.0.clone())
            })
            .unwrap_or_default();
        if is_subscription(&request.query) {
            return Box::pin(futures::stream::once(async move { this.subscription(headers, request).await }).flatten());
        }
        Box::pin(futures::stream::once(async move { this.operation(headers, request).await }))
    }
}

/// How long a WebSocket may stay open without a valid `connection_init`.
const WS_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Keep-alive of graphql-ws connections: unanswered pings close them.
const WS_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// GraphQL over WebSocket (graphql-ws and the older
/// subscriptions-transport-ws). Credentials come from the upgrade request's
/// headers or, for browsers that cannot set them, from the
/// `connection_init` payload (`{"X-API-Key": …}` or `{"Authorization": "Bearer …"}`).
/// A connection with bad credentials is refused at `connection_init`; after
/// that, each operation passes the guard (rate limit, slot, deadline) and a
/// refusal is a GraphQL error on that operation, the connection staying open.
pub async fn graphql_ws(
    State(state): State<Arc<AppState>>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limit = state.settings.max_body_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            let executor = GuardedExecutor { state: state.clone() };
            // A connection that never sends a valid connection_init is dropped
            // after WS_INIT_TIMEOUT; an idle one that stops answering pings too.
            let (initialised, init_seen) = tokio::sync::oneshot::channel::<()>();
            let serve = GraphQLWebSocket::new(stream, executor, protocol)
                .keepalive_timeout(WS_KEEPALIVE)
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
                    let principal = state
                        .authenticate(&headers)
                        .map_err(|e| crate::graphql::errors::error(Code::Unauthenticated, e.to_string()))?;
                    if !principal.can(ANALYTICS_READ) {
                        let msg = format!("this credential lacks the {ANALYTICS_READ} permission");
                        return Err(crate::graphql::errors::error(Code::Forbidden, msg));
                    }
                    let mut data = Data::default();
                    data.insert(WsCredentials(headers));
                    let _ = initialised.send(());
                    Ok(data)
                })
                .serve();
            tokio::pin!(serve);
            tokio::select! {
                _ = &mut serve => return,
                seen = tokio::time::timeout(WS_INIT_TIMEOUT, init_seen) => if !matches!(seen, Ok(Ok(()))) { return },
            }
            serve.await
        })
        .into_response()
}

/// The name of the document's operation (`query Dash { … }` → `Dash`), for
/// per-operation metrics when the client sends no `operationName`.
fn document_operation_name(query: &str) -> Option<String> {
    let mut tokens = request::tokens(query);
    match tokens.next()? {
        "query" | "mutation" | "subscription" => {}
        _ => return None,
    }
    tokens.next().filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')).map(String::from)
}

fn json_body(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::document_operation_name;

    #[test]
    fn operations_are_named_by_their_document() {
        assert_eq!(document_operation_name("query Dash { agencies { id } }").as_deref(), Some("Dash"));
        assert_eq!(document_operation_name("  query Kpis($d: Date!) { x }").as_deref(), Some("Kpis"));
        assert_eq!(document_operation_name("# c\nquery\n  Late { x }").as_deref(), Some("Late"));
        assert_eq!(document_operation_name("{ agencies { id } }"), None);
        assert_eq!(document_operation_name("query { x }"), None);
    }
}
