//! The monthly summary end to end against the real server: `POST
//! /ingest/summary` through the streaming log into the lake, the figures
//! GraphQL gives afterwards, and `GET /export/commissions` giving the
//! summary back to the cent (every figure worked out by hand below).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{count, json_of};
use crate::serve::TestApp;

/// March 2026 (nothing of `BOOK` falls in it). By hand:
/// - Dana: 1000.00 over 3 deals = 333.34 + 333.33 + 333.33; 100.00 = 33.34 + 33.33 + 33.33.
/// - Eli: terminated, nothing: one 0.00 adjustment so he appears in the month.
/// - Fay: 1450.00 over 2 = 725.00 each; 145.00 = 72.50 each.
/// - Gus (manager): a 7.35 override (gross 0, agency -7.35), no policy.
/// - total gp 2450.00, 5 deals, commission on deals 245.00 / 2450.00 = 0.1;
///   everyone's commission 100 + 0 + 145 + 7.35 = 252.35; 1 of 4 terminated = 25 % > 20 %.
fn march() -> Value {
    json!({
        "month": "2026-03",
        "metadata": {"total_gp": "2450.00", "total_transactions": 5, "commission_pct": "0.1"},
        "agents": [
            {"name": "Dana Park", "type": "active", "gp": "1000.00", "deals": 3, "commission": "100.00"},
            {"name": "Eli Moss", "type": "terminated", "gp": "0.00", "deals": 0, "commission": "0.00"},
            {"name": "Fay Wong", "type": "active", "gp": "1450.00", "deals": 2, "commission": "145.00"}
        ],
        "managers": [
            {"name": "Gus Hale", "type": "active", "gp": "0.00", "deals": 0, "commission": "7.35"}
        ]
    })
}

const MARCH_CSV: &str = "month,list,name,type,gp,deals,commission,commission_pct\n\
    2026-03,agents,Dana Park,active,1000.00,3,100.00,\n\
    2026-03,agents,Eli Moss,terminated,0.00,0,0.00,\n\
    2026-03,agents,Fay Wong,active,1450.00,2,145.00,\n\
    2026-03,managers,Gus Hale,active,0.00,0,7.35,\n\
    2026-03,metadata,,,2450.00,5,,0.1\n";

fn ingest_token(tenant: &str) -> String {
    TestApp::token(tenant, &["ingest:write", "analytics:read"])
}

async fn import(app: &TestApp, token: &str, body: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/ingest/summary", app.url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry, json_of(resp).await)
}

/// Import and wait until the version holding it is the one served.
async fn import_visible(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, _, out) = import(app, token, &body.to_string()).await;
    assert_eq!(status, 200, "{out}");
    let seq = out["events"]["sequence"].as_u64().expect("events logged");
    let stream = app.state.stream().expect("a streaming writer");
    tokio::time::timeout(Duration::from_secs(20), stream.wait_committed(seq)).await.expect("committed within 20 s");
    let latest = app.lake.latest().await.unwrap().version;
    let started = Instant::now();
    while app.state.version() != Some(latest) {
        assert!(started.elapsed() < Duration::from_secs(20), "version {latest} not served after 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

/// `GET /export/commissions`: status, content type, body.
async fn export(app: &TestApp, token: &str, query: &str) -> (u16, String, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}/export/commissions?{query}", app.url))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

async fn export_json(app: &TestApp, token: &str, month: &str) -> Value {
    let (status, kind, body) = export(app, token, &format!("month={month}&format=json")).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"), "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn graphql(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, _, body) = app.post(crate::serve::Auth::Bearer(token.to_string()), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

const MARCH_FIGURES: &str = r#"{
  agency(id: "summary") { name performance(range: {from: "2026-03-01", to: "2026-04-01"}) {
    grossCommission agentCommission writtenPremium policyCount } }
  dana: agent(id: "summary:dana-park") { name role status performance(range: {from: "2026-03-01", to: "2026-04-01"}) {
    agentCommission writtenPremium policyCount } }
  fay: agent(id: "summary:fay-wong") { performance(range: {from: "2026-03-01", to: "2026-04-01"}) { agentCommission } }
  eli: agent(id: "summary:eli-moss") { status }
  gus: agent(id: "summary:gus-hale") { role performance(range: {from: "2026-03-01", to: "2026-04-01"}) { agentCommission } }
  trend(metric: AGENT_COMMISSION, range: {from: "2026-03-01", to: "2026-04-01"}) { points { month value { amount } } }
}"#;

#[tokio::test]
async fn a_summary_lands_and_comes_back_to_the_cent() {
    let app = TestApp::spawn().await;
    let token = ingest_token("t1");
    let out = import_visible(&app, &token, &march()).await;
    assert_eq!(out["month"], "2026-03");
    assert_eq!(out["imported"], json!({"agents": 3, "managers": 1, "total_commission": "252.35"}));
    assert_eq!(
        out["validation_warnings"],
        json!([{"code": "termination_rate_high", "field": "agents",
                "message": "agents: 1 of 4 people are terminated (25 %), above 20 %"}])
    );
    // 4 agents; 5 deal policies; 3 + 1 + 2 + 1 commission rows; with the
    // agency and the carrier 2 + 4 + 5 + 7 = 18 events.
    assert_eq!((out["events"]["accepted"].clone(), out["events"]["duplicates"].clone()), (json!(18), json!(0)));
    assert_eq!(
        out["rows"],
        json!({"agents": 4, "policies": 5, "commissions": 7, "withdrawn_policies": 0, "withdrawn_commissions": 0})
    );
    // The agency's figures count rows on its (synthetic) policies: deals only, so
    // gross = agent commission = 100 + 145 = 245.00; the override and Eli's
    // adjustment have no policy. The tenant's agent commission has them all: 252.35.
    let figures = graphql(&app, &token, MARCH_FIGURES).await;
    assert_eq!(
        figures,
        json!({
            "agency": {"name": "Monthly summaries", "performance": {"grossCommission": "245.00",
                "agentCommission": "245.00", "writtenPremium": "2450.00", "policyCount": 5}},
            "dana": {"name": "Dana Park", "role": "producer", "status": "active", "performance":
                {"agentCommission": "100.00", "writtenPremium": "1000.00", "policyCount": 3}},
            "fay": {"performance": {"agentCommission": "145.00"}},
            "eli": {"status": "terminated"},
            "gus": {"role": "manager", "performance": {"agentCommission": "7.35"}},
            "trend": [{"points": [{"month": "2026-03", "value": {"amount": "252.35"}}]}]
        })
    );

    // The export gives the input back exactly, as JSON and as CSV.
    assert_eq!(export_json(&app, &token, "2026-03").await, march());
    let (status, kind, csv) = export(&app, &token, "month=2026-03&format=csv").await;
    assert_eq!((status, kind.as_str(), csv.as_str()), (200, "text/csv; charset=utf-8", MARCH_CSV));
    // Stored exactly so: Dana's three deals split to the cent.
    let cents = app
        .lake
        .sql(
            crate::helpers::tenant("t1"),
            "SELECT commission_id, premium_amount, agent_commission FROM commissions \
             WHERE agent_id = 'summary:dana-park' ORDER BY commission_id",
        )
        .await;
    let table = datafusion::arrow::util::pretty::pretty_format_batches(&cents).unwrap().to_string();
    assert_eq!(
        table,
        "+-----------------------------+----------------+------------------+\n\
         | commission_id               | premium_amount | agent_commission |\n\
         +-----------------------------+----------------+------------------+\n\
         | summary:2026-03:dana-park:1 | 333.34         | 33.34            |\n\
         | summary:2026-03:dana-park:2 | 333.33         | 33.33            |\n\
         | summary:2026-03:dana-park:3 | 333.33         | 33.33            |\n\
         +-----------------------------+----------------+------------------+"
    );

    // Posting it again doubles nothing: the same rows, figures and export.
    let again = import_visible(&app, &token, &march()).await;
    assert_eq!(again["imported"], out["imported"]);
    assert_eq!(again["rows"]["withdrawn_commissions"], 0);
    let n = |sql: &'static str| count(&app.lake, "t1", sql);
    assert_eq!(n("SELECT count(*) FROM commissions WHERE commission_id LIKE 'summary:%'").await, 7);
    assert_eq!(n("SELECT count(*) FROM policies WHERE policy_id LIKE 'summary:%'").await, 5);
    assert_eq!(n("SELECT count(*) FROM agents WHERE agent_id LIKE 'summary:%'").await, 4);
    assert_eq!(graphql(&app, &token, MARCH_FIGURES).await, figures);
    assert_eq!(export_json(&app, &token, "2026-03").await, march());
}

#[tokio::test]
async fn a_corrected_summary_replaces_the_month() {
    let app = TestApp::spawn().await;
    let token = ingest_token("t1");
    import_visible(&app, &token, &march()).await;
    // Dana had 2 deals, not 3 (800.00, 80.00 = 400.00 / 40.00 each); Fay is not in March at all.
    // Totals 800.00, 2 deals, 80.00 / 800.00 = 0.1.
    let corrected = json!({
        "month": "2026-03",
        "metadata": {"total_gp": "800.00", "total_transactions": 2, "commission_pct": "0.1"},
        "agents": [
            {"name": "Dana Park", "type": "active", "gp": "800.00", "deals": 2, "commission": "80.00"},
            {"name": "Eli Moss", "type": "terminated", "gp": "0.00", "deals": 0, "commission": "0.00"}
        ],
        "managers": [{"name": "Gus Hale", "type": "active", "gp": "0.00", "deals": 0, "commission": "7.35"}]
    });
    let out = import_visible(&app, &token, &corrected).await;
    // Withdrawn: Dana's third deal and Fay's two, each a commission row and a policy.
    assert_eq!(
        out["rows"],
        json!({"agents": 3, "policies": 2, "commissions": 4, "withdrawn_policies": 3, "withdrawn_commissions": 3})
    );
    assert_eq!(export_json(&app, &token, "2026-03").await, corrected);
    let figures = graphql(&app, &token, MARCH_FIGURES).await;
    // Money follows the correction; the policy count keeps the 3 withdrawn
    // policies (flat cancellations at premium 0.00: the lake has no deletes).
    assert_eq!(
        figures["agency"]["performance"],
        json!({"grossCommission": "80.00", "agentCommission": "80.00", "writtenPremium": "800.00", "policyCount": 5})
    );
    assert_eq!(
        figures["dana"]["performance"],
        json!({"agentCommission": "80.00", "writtenPremium": "800.00", "policyCount": 2})
    );
    assert_eq!(figures["fay"]["performance"]["agentCommission"], "0.00");
    assert_eq!(figures["trend"][0]["points"][0]["value"]["amount"], "87.35");
    // Posting the first version again brings it back whole.
    import_visible(&app, &token, &march()).await;
    assert_eq!(export_json(&app, &token, "2026-03").await, march());
}

#[tokio::test]
async fn any_month_of_row_data_exports_in_the_summary_shape() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("t1", &["analytics:read"]);
    // BOOK, January 2024: C1 (Ann Lee, new, premium 1000.00, gross 120.00, agent 48.00)
    // and C5 (Meg Ito's 3.60 override). Rate 120 / 1000 = 0.12.
    assert_eq!(
        export_json(&app, &token, "2024-01").await,
        json!({"month": "2024-01",
               "metadata": {"total_gp": "1000.00", "total_transactions": 1, "commission_pct": "0.12"},
               "agents": [{"name": "Ann Lee", "type": "active", "gp": "1000.00", "deals": 1, "commission": "48.00"}],
               "managers": [{"name": "Meg Ito", "type": "active", "gp": "0.00", "deals": 0, "commission": "3.60"}]})
    );
    // June 2024: only C3, Bob Diaz's chargeback: no deal, -67.50; no gp, so no rate.
    assert_eq!(
        export_json(&app, &token, "2024-06").await,
        json!({"month": "2024-06",
               "metadata": {"total_gp": "0.00", "total_transactions": 0, "commission_pct": null},
               "agents": [{"name": "Bob Diaz", "type": "active", "gp": "0.00", "deals": 0, "commission": "-67.50"}],
               "managers": []})
    );
    // A month with nothing: empty lists, zero totals.
    let (_, _, csv) = export(&app, &token, "month=2023-01&format=csv").await;
    assert_eq!(csv, "month,list,name,type,gp,deals,commission,commission_pct\n2023-01,metadata,,,0.00,0,,\n");
}

#[tokio::test]
async fn tenants_never_meet_through_the_summary_doors() {
    let app = TestApp::spawn().await;
    let (t1, t2) = (ingest_token("t1"), ingest_token("t2"));
    // t2's own March: one agent, 1 deal of 500.00 paying 50.00.
    let t2_march = json!({"month": "2026-03",
        "metadata": {"total_gp": "500.00", "total_transactions": 1, "commission_pct": "0.1"},
        "agents": [{"name": "Zoe Other", "type": "active", "gp": "500.00", "deals": 1, "commission": "50.00"}],
        "managers": []});
    import_visible(&app, &t2, &t2_march).await;
    // A t1 credential naming t2 is refused whole; nothing of it is logged.
    let mut intruding = march();
    intruding["tenant_id"] = json!("t2");
    let (status, _, out) = import(&app, &t1, &intruding.to_string()).await;
    assert_eq!(status, 400, "{out}");
    let ext = &out["errors"][0]["extensions"];
    assert_eq!((ext["code"].clone(), ext["reason"].clone()), (json!("BAD_INPUT"), json!("invalid_summary")));
    assert_eq!(ext["problems"][0]["code"], "tenant_mismatch");
    // t1 imports its own March: it lands in t1 only.
    import_visible(&app, &t1, &march()).await;
    assert_eq!(export_json(&app, &t2, "2026-03").await, t2_march);
    let t1_export = export_json(&app, &t1, "2026-03").await;
    assert_eq!(t1_export, march());
    assert!(!t1_export.to_string().contains("Zoe"), "{t1_export}");
    assert_eq!(count(&app.lake, "t2", "SELECT count(*) FROM agents WHERE agent_id LIKE 'summary:%'").await, 1);
    assert_eq!(count(&app.lake, "t1", "SELECT count(*) FROM agents WHERE name = 'Zoe Other'").await, 0);
}

#[tokio::test]
async fn bad_requests_get_stable_codes_and_the_ingest_limits() {
    let app = TestApp::spawn_with(|s| cip::config::ServeSettings { max_ingest_bytes: 4096, ..s }).await;
    let token = ingest_token("t1");
    let reason = |out: &Value| out["errors"][0]["extensions"]["reason"].as_str().unwrap_or_default().to_string();
    let (status, _, out) = import(&app, &token, "not json").await;
    assert_eq!((status, reason(&out)), (400, "malformed_body".to_string()), "{out}");
    let mut bad = march();
    bad["month"] = json!("March");
    bad["agents"][0]["gp"] = json!("1,000.00");
    let (status, _, out) = import(&app, &token, &bad.to_string()).await;
    assert_eq!((status, reason(&out)), (400, "invalid_summary".to_string()));
    assert_eq!(
        out["errors"][0]["extensions"]["problems"],
        json!([{"field": "month", "code": "invalid_month", "message": "month: 'March' is not a month YYYY-MM"},
               {"field": "agents[0].gp", "code": "invalid_money", "message": "agents[0].gp: '1,000.00' is not a decimal amount"}])
    );
    assert_eq!(out["errors"][0]["message"], "the summary has 2 problems: month: 'March' is not a month YYYY-MM");
    // The ingest door's limits: the body size and the scope.
    let (status, _, out) = import(&app, &token, &" ".repeat(5000)).await;
    assert_eq!((status, out["errors"][0]["extensions"]["code"].clone()), (413, json!("TOO_LARGE")));
    let reader = TestApp::token("t1", &["analytics:read"]);
    let (status, _, _) = import(&app, &reader, &march().to_string()).await;
    assert_eq!(status, 403);
    // Nothing of the refused ones landed.
    assert_eq!(count(&app.lake, "t1", "SELECT count(*) FROM agents WHERE agent_id LIKE 'summary:%'").await, 0);

    // The export: month and format named, and its own scope.
    let code = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        (v["errors"][0]["extensions"]["code"].clone(), v["errors"][0]["extensions"]["reason"].clone())
    };
    let (status, _, body) = export(&app, &token, "format=json").await;
    assert_eq!((status, code(&body)), (400, (json!("BAD_INPUT"), json!("invalid_month"))));
    let (status, _, body) = export(&app, &token, "month=2026-3").await;
    assert_eq!((status, code(&body)), (400, (json!("BAD_INPUT"), json!("invalid_month"))));
    let (status, _, body) = export(&app, &token, "month=2026-03&format=xlsx").await;
    assert_eq!((status, code(&body)), (400, (json!("BAD_INPUT"), json!("invalid_format"))));
    let writer = TestApp::token("t1", &["ingest:write"]);
    let (status, _, body) = export(&app, &writer, "month=2026-03").await;
    assert_eq!((status, code(&body).0), (403, json!("FORBIDDEN")));
}

#[tokio::test]
async fn a_full_backlog_answers_503_with_retry_after() {
    // A backlog of 0 requests is always full.
    let app = TestApp::spawn_with(|s| cip::config::ServeSettings { max_stream_backlog: 0, ..s }).await;
    let (status, retry, out) = import(&app, &ingest_token("t1"), &march().to_string()).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{out}");
    assert_eq!(out["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(count(&app.lake, "t1", "SELECT count(*) FROM agents WHERE agent_id LIKE 'summary:%'").await, 0);
}
