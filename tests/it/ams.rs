//! AMS adapters end to end: each source's real-shaped payloads
//! (`tests/fixtures/ams/`) posted to `POST /ingest/ams/{source}` on the
//! real server, landed through the streaming pipeline, and read back
//! through GraphQL. Every figure is worked out by hand from the fixtures
//! over `BOOK`, which has nothing in June 2025.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{count, json_of};
use crate::serve::{Auth, TestApp};

const APPLIED_EPIC: &str = include_str!("../fixtures/ams/applied_epic.json");
const EZLYNX: &str = include_str!("../fixtures/ams/ezlynx.json");
const HAWKSOFT: &str = include_str!("../fixtures/ams/hawksoft.json");
const TURBORATER: &str = include_str!("../fixtures/ams/turborater.json");

/// The fixture's payloads, each as compact JSON (for NDJSON bodies).
fn payloads(fixture: &str) -> Vec<String> {
    let v: Vec<Value> = serde_json::from_str(fixture).unwrap();
    v.iter().map(Value::to_string).collect()
}

async fn post(app: &TestApp, source: &str, token: Option<&str>, body: String) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/ingest/ams/{source}", app.url)).body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry, json_of(resp).await)
}

/// (payload, entity, status, code) of each result.
fn outcomes(out: &Value) -> Vec<(u64, Value, Value, Value)> {
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
            (r["payload"].as_u64().unwrap(), field("entity"), field("status"), field("code"))
        })
        .collect()
}

const JUNE: &str = r#"{from: "2025-06-01", to: "2025-07-01"}"#;

fn june_query() -> String {
    format!(
        r#"{{ g1: agency(id: "G1") {{
               performance(range: {JUNE}) {{ writtenPremium policyCount grossCommission agentCommission }}
               topPolicies(range: {JUNE}) {{ id policyNumber customerId lineOfBusiness effectiveDate expirationDate
                                              premium status cancellationDate agent {{ id }} carrier {{ id }} }} }}
             g2: agency(id: "G2") {{ performance(range: {JUNE}) {{ writtenPremium policyCount }} }}
             a1: agent(id: "A1") {{ performance(range: {JUNE}) {{ agentCommission }} }} }}"#
    )
}

/// Wait until the stream has committed `seq` and the served figures show it.
async fn visible(app: &TestApp, seq: u64, done: impl Fn(&Value) -> bool) -> Value {
    app.state.stream().unwrap().wait_committed(seq).await;
    let started = Instant::now();
    loop {
        let data = app.t1(&june_query()).await;
        if done(&data) {
            return data;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "rows not visible after 20 s: {data}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_sources_payloads_land_as_the_rows_worked_out_by_hand() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("t1", &["ingest:write"]);
    let before = app.t1(&june_query()).await;
    assert_eq!(
        before["g1"]["performance"],
        json!({"writtenPremium": "0.00", "policyCount": 0, "grossCommission": "0.00", "agentCommission": "0.00"})
    );

    // Applied Epic, as a JSON array: policy 48213 with its commission, and
    // policy 48250 without an effective date (refused; the others land).
    let (status, _, epic) = post(&app, "applied_epic", Some(&token), APPLIED_EPIC.to_string()).await;
    assert_eq!(status, 200, "{epic}");
    assert_eq!(
        (epic["source"].clone(), epic["payloads"].clone(), epic["accepted"].clone(), epic["rejected"].clone()),
        (json!("applied_epic"), json!(2), json!(2), json!(1))
    );
    assert_eq!(
        outcomes(&epic),
        vec![
            (0, json!("policies"), json!("accepted"), Value::Null),
            (0, json!("commissions"), json!("accepted"), Value::Null),
            (1, Value::Null, json!("rejected"), json!("missing_value")),
        ]
    );
    assert_eq!(epic["results"][0]["event_id"], "applied_epic:policy:48213:2025-06-02T09:15:00");
    assert_eq!(epic["results"][2]["reason"], "missing required field Policy.EffectiveDate (policies.effective_date)");
    // EZLynx: one webhook, the body a single JSON object.
    let (status, _, ez) = post(&app, "ezlynx", Some(&token), payloads(EZLYNX)[0].clone()).await;
    assert_eq!((status, outcomes(&ez)), (200, vec![(0, json!("policies"), json!("accepted"), Value::Null)]));
    // HawkSoft: a client with two policies, as NDJSON.
    let (status, _, hs) = post(&app, "hawksoft", Some(&token), payloads(HAWKSOFT).join("\n")).await;
    assert_eq!((status, hs["accepted"].clone()), (200, json!(2)), "{hs}");
    // TurboRater: a sold quote.
    let (status, _, tr) = post(&app, "turborater", Some(&token), TURBORATER.to_string()).await;
    assert_eq!((status, tr["accepted"].clone()), (200, json!(1)), "{tr}");

    let last = tr["sequence"].as_u64().unwrap();
    let after = visible(&app, last, |d| d["g1"]["performance"]["policyCount"] == json!(4)).await;
    // G1 in June: Epic 1234.50 + HawkSoft 1500.25 + HawkSoft 300.00 (cancelled, still
    // written) + TurboRater 642.00 = 3676.75 over 4 policies; the one commission is
    // Epic's 148.14, of which producer A1's 59.26. Epic's refused 999.99 is nowhere.
    assert_eq!(
        after["g1"]["performance"],
        json!({"writtenPremium": "3676.75", "policyCount": 4, "grossCommission": "148.14", "agentCommission": "59.26"})
    );
    assert_eq!(after["a1"]["performance"], json!({"agentCommission": "59.26"}));
    // G2: EZLynx's 812 alone.
    assert_eq!(after["g2"]["performance"], json!({"writtenPremium": "812.00", "policyCount": 1}));
    assert_eq!(
        after["g1"]["topPolicies"],
        json!([
            {"id": "6c1e2f0a-3b7d-4c55-9a1e-0f2b3c4d5e6f", "policyNumber": "HM-550-1023", "customerId": "4417",
             "lineOfBusiness": "home", "effectiveDate": "2025-06-10", "expirationDate": "2026-06-10",
             "premium": "1500.25", "status": "active", "cancellationDate": null, "agent": {"id": "A2"}, "carrier": {"id": "K2"}},
            {"id": "48213", "policyNumber": "HO-2231-77", "customerId": "10077",
             "lineOfBusiness": "home", "effectiveDate": "2025-06-01", "expirationDate": "2026-06-01",
             "premium": "1234.50", "status": "active", "cancellationDate": null, "agent": {"id": "A1"}, "carrier": {"id": "K1"}},
            {"id": "TR-Q-88123", "policyNumber": "AP-20931-77", "customerId": "TR-C-3301",
             "lineOfBusiness": "auto", "effectiveDate": "2025-06-05", "expirationDate": "2025-12-05",
             "premium": "642.00", "status": "active", "cancellationDate": null, "agent": {"id": "A2"}, "carrier": {"id": "K1"}},
            {"id": "9d8e7f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a", "policyNumber": "UM-550-1024", "customerId": "4417",
             "lineOfBusiness": "umbrella", "effectiveDate": "2025-06-05", "expirationDate": "2026-06-05",
             "premium": "300.00", "status": "cancelled", "cancellationDate": "2025-06-20", "agent": {"id": "A2"}, "carrier": {"id": "K1"}}
        ])
    );
    // Where each row came from, as the contract's optional columns keep it.
    let sources = "SELECT count(*) FROM policies WHERE (source_system = 'applied_epic' AND external_id = '48213') \
                   OR (source_system = 'ezlynx' AND external_id = '90311') OR (source_system = 'hawksoft') \
                   OR (source_system = 'turborater' AND external_id = 'Q-88123')";
    assert_eq!(count(&app.lake, "t1", sources).await, 5);
    assert_eq!(count(&app.lake, "t1", "SELECT count(*) FROM policies WHERE policy_number = 'PA-7781-02'").await, 0);

    // Sent again (a retry): every row a duplicate, nothing logged; the refusal repeated.
    let (status, _, again) = post(&app, "applied_epic", Some(&token), APPLIED_EPIC.to_string()).await;
    assert_eq!(
        (
            status,
            again["accepted"].clone(),
            again["duplicates"].clone(),
            again["rejected"].clone(),
            again["sequence"].clone()
        ),
        (200, json!(0), json!(2), json!(1), Value::Null)
    );
}

#[tokio::test]
async fn a_t1_credential_cannot_land_rows_in_t2() {
    let app = TestApp::spawn().await;
    let t2_figures =
        format!(r#"{{ agency(id: "G1") {{ performance(range: {JUNE}) {{ writtenPremium policyCount }} }} }}"#);
    let t2 = Auth::Bearer(TestApp::token("t2", &["analytics:read"]));
    let (_, _, t2_before) = app.post(t2, &t2_figures, json!({})).await;
    assert_eq!(t2_before["data"]["agency"]["performance"], json!({"writtenPremium": "0.00", "policyCount": 0}));

    // The EZLynx webhook twice: once naming tenant t2, once (another policy) naming t1.
    let ez = payloads(EZLYNX)[0].clone();
    let for_t2 = ez.replacen('{', r#"{"tenant_id":"t2","#, 1).replace("G2", "G1");
    let for_t1 = ez
        .replacen('{', r#"{"tenant_id":"t1","#, 1)
        .replace("7f3c9a2e-5b1d-4e8f-a6c0-2d9e4b7a1f03", "0b5e1d44-9c2a-4f7e-8d13-6a2b9c0e7f11")
        .replace("90311", "90312");
    let token = TestApp::token("t1", &["ingest:write"]);
    let (status, _, out) = post(&app, "ezlynx", Some(&token), format!("[{for_t2},{for_t1}]")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        outcomes(&out),
        vec![
            (0, json!("policies"), json!("rejected"), json!("tenant_mismatch")),
            (1, json!("policies"), json!("accepted"), Value::Null),
        ]
    );
    assert_eq!(out["results"][0]["reason"], "data names tenant 't2', not the credential's");
    // t1's own row lands (G2, 812.00) …
    let seq = out["sequence"].as_u64().unwrap();
    let after = visible(&app, seq, |d| d["g2"]["performance"]["policyCount"] == json!(1)).await;
    assert_eq!(after["g2"]["performance"], json!({"writtenPremium": "812.00", "policyCount": 1}));
    // … and t2 has nothing new: the same figures, no EZLynx row in its partition.
    let t2 = Auth::Bearer(TestApp::token("t2", &["analytics:read"]));
    let (_, _, t2_after) = app.post(t2, &t2_figures, json!({})).await;
    assert_eq!(t2_after["data"], t2_before["data"]);
    assert_eq!(count(&app.lake, "t2", "SELECT count(*) FROM policies WHERE source_system = 'ezlynx'").await, 0);
}

#[tokio::test]
async fn the_ams_door_checks_source_credentials_scope_size_and_backlog() {
    let app = TestApp::spawn_with(|s| cip::config::ServeSettings { max_ingest_bytes: 2048, ..s }).await;
    let writer = TestApp::token("t1", &["ingest:write"]);
    let one = payloads(EZLYNX)[0].clone();
    let code = |v: &Value| v["errors"][0]["extensions"]["code"].clone();
    // An unknown source: 404 with a stable code and the sources named.
    let (status, _, body) = post(&app, "ams360", Some(&writer), one.clone()).await;
    assert_eq!((status, code(&body)), (404, json!("NOT_FOUND")));
    assert_eq!(body["errors"][0]["message"], "no AMS source 'ams360': one of applied_epic|ezlynx|hawksoft|turborater");
    // No credential, a read-only one.
    let (status, _, _) = post(&app, "ezlynx", None, one.clone()).await;
    assert_eq!(status, 401);
    let reader = TestApp::token("t1", &["analytics:read"]);
    let (status, _, body) = post(&app, "ezlynx", Some(&reader), one.clone()).await;
    assert_eq!((status, code(&body)), (403, json!("FORBIDDEN")));
    // Over the body limit: 413, nothing logged.
    let big = vec![one.clone(); 6].join("\n");
    assert!(big.len() > 2048);
    let (status, _, body) = post(&app, "ezlynx", Some(&writer), big).await;
    assert_eq!((status, code(&body)), (413, json!("TOO_LARGE")));
    assert_eq!(app.state.stream().unwrap().backlog(), 0);
    // A body that is no payload list at all.
    let (status, _, body) = post(&app, "ezlynx", Some(&writer), "[{\"a\": 1},".to_string()).await;
    assert_eq!((status, code(&body)), (400, json!("BAD_INPUT")));

    // A full backlog: 503 with Retry-After, as on /ingest/events.
    let busy = TestApp::spawn_with(|s| cip::config::ServeSettings { max_stream_backlog: 0, ..s }).await;
    let (status, retry, body) = post(&busy, "hawksoft", Some(&writer), payloads(HAWKSOFT)[0].clone()).await;
    assert_eq!((status, retry.as_deref(), code(&body)), (503, Some("1"), json!("RATE_LIMITED")));
}
