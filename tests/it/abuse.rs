//! The API tried as a hostile client would, against the real server on a
//! random port: each finding of the hardening review as a test.

use std::collections::BTreeSet;

use cip::config::ServeSettings;
use cip::serve::Application;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{JsonBody, json_of};
use crate::serve::{Auth, BOOK, TestApp};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(app: &TestApp, key: &str) -> Ws {
    let mut req = format!("{}/graphql/ws", app.url.replace("http", "ws")).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {"X-API-Key": key}}).to_string()))
        .await
        .unwrap();
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.expect("the connection is open").unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Send one operation; its `next` payload (after which `complete` follows).
async fn ws_op(ws: &mut Ws, id: &str, query: &str) -> Value {
    ws.send(Message::text(json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string()))
        .await
        .unwrap();
    let next = ws_recv(ws).await;
    assert_eq!((next["id"].as_str(), next["type"].as_str()), (Some(id), Some("next")), "{next}");
    assert_eq!(ws_recv(ws).await, json!({"id": id, "type": "complete"}));
    next["payload"].clone()
}

const G2_QUERY: &str = r#"{ agency(id: "G2") { name } }"#;

#[tokio::test]
async fn each_websocket_operation_passes_the_rate_limit() {
    // A burst of 3 and a refill too slow to matter during the test.
    let app = TestApp::spawn_with(|s| ServeSettings { rate_per_sec: 0.01, rate_burst: 3.0, ..s }).await;
    let mut ws = ws_connect(&app, &app.key_t1).await;
    for i in 1..=3 {
        let p = ws_op(&mut ws, &i.to_string(), G2_QUERY).await;
        assert_eq!(p, json!({"data": {"agency": {"name": "South Agency"}}}), "operation {i}");
    }
    // The 4th and 5th are refused, and the connection stays usable.
    for i in 4..=5 {
        let p = ws_op(&mut ws, &i.to_string(), G2_QUERY).await;
        assert_eq!(p["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{p}");
        assert_eq!(p["errors"][0]["message"], "rate limit exceeded");
        assert!(p["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1, "{p}");
    }
    // The bucket is the credential's: HTTP with the same key is limited too.
    let (status, retry, body) = app.post(Auth::Key(&app.key_t1), G2_QUERY, json!({})).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].as_str()), (429, Some("RATE_LIMITED")));
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn each_websocket_operation_has_the_deadline_and_fresh_credentials() {
    let app = TestApp::spawn_with(|s| ServeSettings { query_timeout_ms: 1, ..s }).await;
    let mut ws = ws_connect(&app, &app.key_t1).await;
    let q = r#"{ agencies { performance(range: {from: "2024-01-01", to: "2025-01-01"}) { grossCommission } } }"#;
    let p = ws_op(&mut ws, "1", q).await;
    assert_eq!(p["errors"][0]["extensions"]["code"], "TIMEOUT", "{p}");
    assert_eq!(p["errors"][0]["message"], "query exceeded 1 ms");
    // A key revoked while the connection is open stops its next operation.
    let id = &app.key_t1["cipk_test_".len().."cipk_test_".len() + 8];
    assert!(cip::auth::keys::revoke(&app.lake.lake(), id).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await; // the server reloads keys every 100 ms
    let p = ws_op(&mut ws, "2", G2_QUERY).await;
    assert_eq!(p["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{p}");
    assert_eq!(p["errors"][0]["message"], "API key revoked");
}

/// Parse `/metrics` with a Prometheus parser: (samples, byte size).
async fn scrape(app: &TestApp) -> (Vec<prometheus_parse::Sample>, usize) {
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    (scrape.samples, text.len())
}

#[tokio::test]
async fn clients_cannot_inflate_or_inject_into_metrics() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let post = |body: Value, key: Option<String>| {
        let mut r = client.post(format!("{}/graphql", app.url)).json_body(&body);
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        r.send()
    };
    // 300 unauthenticated requests with made-up names, one of them an injection.
    let injection = "x\"} 1\nfake_metric 9\n#";
    for i in 0..300 {
        let name = if i == 0 { injection.to_string() } else { format!("Made{i}") };
        let r = post(json!({"query": "{ agencies { id } }", "operationName": name}), None).await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // 100 authenticated ones with distinct (valid) names and one with the injection.
    for i in 0..100 {
        let q = format!("query Op{i} {{ agencies {{ id }} }}");
        let r = post(json!({"query": q}), Some(app.key_t1.clone())).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = post(json!({"query": "{ agencies { id } }", "operationName": injection}), Some(app.key_t1.clone()));
    assert_eq!(r.await.unwrap().status().as_u16(), 200);

    let (samples, size) = scrape(&app).await;
    assert!(samples.iter().all(|s| s.metric.starts_with("cip_")), "an injected metric");
    let requests: Vec<_> = samples.iter().filter(|s| s.metric == "cip_requests_total").collect();
    let count = |op: &str, outcome: &str| -> f64 {
        requests
            .iter()
            .filter(|s| s.labels.get("operation") == Some(op) && s.labels.get("outcome") == Some(outcome))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("unauthenticated", "unauthenticated"), 300.0);
    let operations: BTreeSet<&str> = requests.iter().filter_map(|s| s.labels.get("operation")).collect();
    // Op0..Op63 (the first 64 names), then "other" for Op64..Op99 and the injection, plus "unauthenticated".
    assert_eq!(operations.len(), 66, "{operations:?}");
    // The injection names no operation of its document: an error, under "other".
    assert_eq!((count("other", "ok"), count("other", "error")), (36.0, 1.0));
    assert_eq!(count("Op0", "ok"), 1.0);
    assert!(size < 64 * 1024, "/metrics grew to {size} bytes");
}

#[tokio::test]
async fn the_feed_downloads_and_graphql_wait_for_a_slot_within_the_deadline() {
    let app = TestApp::spawn_with(|s| ServeSettings { query_timeout_ms: 300, max_concurrent_queries: 2, ..s }).await;
    // Every slot is busy (held here): each door must wait for one, and give up at its deadline.
    let held = app.state.slots.clone().acquire_many_owned(2).await.unwrap();
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", app.url)).header("X-API-Key", &app.key_t1).send();
    let started = std::time::Instant::now();
    let resp = get("/feeds/renewals.csv?from=2024-01-01&to=2026-01-01").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = json_of(resp).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert_eq!(body["errors"][0]["message"], "server busy: no query slot free in time");
    assert!(waited >= std::time::Duration::from_millis(300), "{waited:?}");
    // The commission engine's download waits for a slot like the feed.
    let resp = get("/commissions/discrepancies.csv").await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(json_of(resp).await["errors"][0]["extensions"]["code"], "TIMEOUT");
    let (status, _, body) = app.post(Auth::Key(&app.key_t1), G2_QUERY, json!({})).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].as_str()), (503, Some("TIMEOUT")));
    let mut ws = ws_connect(&app, &app.key_t1).await;
    let p = ws_op(&mut ws, "1", G2_QUERY).await;
    assert_eq!(p["errors"][0]["extensions"]["code"], "TIMEOUT", "{p}");
    // With the slots free again the same requests are answered.
    drop(held);
    let resp = get("/feeds/renewals.csv?from=2024-01-01&to=2026-01-01").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(get("/commissions/discrepancies.csv").await.unwrap().status().as_u16(), 200);
    assert_eq!(ws_op(&mut ws, "2", G2_QUERY).await, json!({"data": {"agency": {"name": "South Agency"}}}));
}

/// BOOK plus one tenant-t1 policy of a line whose name has a space.
fn book_with_spaced_line() -> Vec<(&'static str, &'static str)> {
    let mut book = BOOK.to_vec();
    book.push((
        "policies/q.csv",
        "tenant_id,policy_id,policy_number,agency_id,agent_id,carrier_id,customer_id,line_of_business,effective_date,expiration_date,premium,status\n\
         t1,P9,N-9,G2,A3,K2,C9,commercial auto,2024-05-01,2025-05-01,2000.00,active\n",
    ));
    book
}

#[tokio::test]
async fn the_result_cache_keys_on_the_parsed_query() {
    let app = TestApp::spawn_book(&book_with_spaced_line(), |s| s).await;
    let premium = |line: &str| {
        format!(
            r#"{{ report(input: {{metrics: [WRITTEN_PREMIUM], range: {{from: "2024-01-01", to: "2025-01-01"}},
                  filter: {{lineOfBusiness: "{line}"}} }}) {{ rows {{ values {{ amount }} }} }} }}"#
        )
    };
    let amount = |d: &Value| d["report"]["rows"][0]["values"][0]["amount"].clone();
    // P9's 2000.00 is the only premium of "commercial auto".
    assert_eq!(amount(&app.t1(&premium("commercial auto")).await), json!("2000.00"));
    // Two spaces inside the literal: another line, another answer (not the cached one).
    let spaced = app.t1(&premium("commercial  auto")).await;
    assert_ne!(amount(&spaced), json!("2000.00"), "{spaced}");
    assert!(matches!(amount(&spaced), Value::Null) || amount(&spaced) == json!("0.00"), "{spaced}");
    // Layout and comments outside literals share one entry: the second is a hit.
    let (_, before) = scrape_cache(&app).await;
    let packed = premium("commercial auto").split_whitespace().collect::<Vec<_>>().join(" ") + " # a comment";
    assert_eq!(amount(&app.t1(&packed).await), json!("2000.00"));
    let (hits, after) = scrape_cache(&app).await;
    assert_eq!((hits, after), (1.0, before), "one hit, no new miss");
}

/// A query polled before a publish is answered for the new version before
/// that version is served: the first request after the swap is a cache hit
/// with the new figure, while a query nobody asked still misses.
#[tokio::test]
async fn polled_queries_are_answered_ahead_of_a_new_version() {
    let app = TestApp::spawn().await;
    let q =
        r#"{ agency(id: "G2") { performance(range: {from: "2024-01-01", to: "2025-01-01"}) { grossCommission } } }"#;
    let gross = |d: &Value| d["agency"]["performance"]["grossCommission"].clone();
    assert_eq!(gross(&app.t1(q).await), json!("96.00"));
    app.lake.land(
        "commissions/later.csv",
        "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission\n\
         t1,C7,P3,A3,K1,2024-08-01,adjustment,0,0,4.00,1.60,2.40\n",
    );
    let report =
        cip::pipelines::batch::ingest(&app.lake.landing(), &app.lake.lake(), &Default::default()).await.unwrap();
    assert_eq!(report.snapshot, Some(2));
    for _ in 0..50 {
        if app.get("/ready").await.1.contains(r#""snapshot":2"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (hits, misses) = scrape_cache(&app).await;
    assert_eq!(gross(&app.t1(q).await), json!("100.00")); // 96.00 + 4.00
    assert_eq!(scrape_cache(&app).await, (hits + 1.0, misses), "the new answer was waiting");
    // The answer computed ahead is t1's: t2 asking the same text gets its own
    // (it has no agency G2), computed for it.
    let (_, _, t2) = app.post(Auth::Bearer(TestApp::token("t2", &["analytics:read"])), q, json!({})).await;
    assert_eq!(t2, json!({"data": {"agency": null}}));
    assert_eq!(scrape_cache(&app).await, (hits + 1.0, misses + 1.0));
    // Not asked before the publish: computed on request.
    let other =
        r#"{ agency(id: "G1") { performance(range: {from: "2024-01-01", to: "2025-01-01"}) { grossCommission } } }"#;
    app.t1(other).await;
    assert_eq!(scrape_cache(&app).await, (hits + 1.0, misses + 2.0));
}

/// (cache hits, cache misses) from `/metrics`.
async fn scrape_cache(app: &TestApp) -> (f64, f64) {
    let (samples, _) = scrape(app).await;
    let get = |name: &str| {
        samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap()
    };
    (get("cip_cache_hits_total"), get("cip_cache_misses_total"))
}

#[tokio::test]
async fn request_hygiene_on_size_batches_and_tokens() {
    let app = TestApp::spawn_with(|s| ServeSettings { max_body_bytes: 4096, max_query_tokens: 50, ..s }).await;
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(format!("{}/graphql", app.url))
            .header("X-API-Key", &app.key_t1)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let code = |v: &Value| v["errors"][0]["extensions"]["code"].as_str().map(String::from);
    // Over the body limit: 413 before the body is read whole.
    let big = json!({"query": format!("{{ agencies {{ id }} }} # {}", "x".repeat(5000))}).to_string();
    let r = send(big).await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(code(&json_of(r).await).as_deref(), Some("TOO_LARGE"));
    // A batch is refused.
    let r =
        send(json!([{"query": "{ agencies { id } }"}, {"query": "{ carriers { id } }"}]).to_string()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = json_of(r).await;
    assert_eq!(code(&body).as_deref(), Some("BAD_INPUT"));
    assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("batched operations are not supported"));
    // Over the token count: 20 aliased fields of 6 tokens each.
    let many: String = (0..20).map(|i| format!("a{i}: agencies {{ id }} ")).collect();
    let r = send(json!({"query": format!("{{ {many} }}")}).to_string()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = json_of(r).await;
    assert_eq!(body["errors"][0]["message"], "query over 50 tokens");
    // Not JSON at all.
    let r = send("query { agencies { id } }".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The same token limit over WebSocket.
    let mut ws = ws_connect(&app, &app.key_t1).await;
    let p = ws_op(&mut ws, "1", &format!("{{ {many} }}")).await;
    assert_eq!(p["errors"][0]["message"], "query over 50 tokens", "{p}");
    assert_eq!(p["errors"][0]["extensions"]["code"], "BAD_INPUT");
}

#[tokio::test]
async fn production_settings_refuse_the_test_secret() {
    // The demo serves with these: no bearer token signed with a well-known secret gets in.
    let app = TestApp::spawn().await;
    let settings = ServeSettings::production(&app.lake.lake_url(), "127.0.0.1:0").unwrap();
    assert!(!format!("{settings:?}").contains("test-secret"));
    let server = Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}/graphql", server.port());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    let token = TestApp::token("t1", &["analytics:read"]);
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json_body(&json!({"query": "{ agencies { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn rate_limit_buckets_are_per_tenant_and_subject() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let app = TestApp::spawn_with(|s| ServeSettings { rate_per_sec: 0.01, rate_burst: 2.0, ..s }).await;
    // Two tenants' identity providers both call their user "admin".
    let token = |tenant: &str| {
        let claims = cip::auth::jwt::Claims {
            sub: "admin".into(),
            tenant_id: tenant.into(),
            permissions: vec!["analytics:read".into()],
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"test-secret")).unwrap()
    };
    let q = "{ carriers { id } }";
    for expected in [200, 200, 429] {
        let (status, _, _) = app.post(Auth::Bearer(token("t1")), q, json!({})).await;
        assert_eq!(status, expected);
    }
    // t1's "admin" spent its own bucket, not t2's.
    let (status, _, body) = app.post(Auth::Bearer(token("t2")), q, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["carriers"], json!([{"id": "K1"}]));
}
