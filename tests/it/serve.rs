//! The real server on a random port over a small lake whose every figure
//! was worked out by hand (see `BOOK`).

use std::collections::BTreeSet;

use cip::auth::jwt::Claims;
use cip::auth::keys;
use cip::config::ServeSettings;
use cip::pipelines::batch::{IngestOptions, ingest};
use cip::serve::Application;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{JsonBody, TestLake, json_of};

/// Tenant t1: agencies G1 (agents A1, A2, manager M1) and G2 (agent A3);
/// carriers K1, K2. Tenant t2: one of each, with much larger numbers, so
/// that any leak into t1's figures would show.
pub const BOOK: &[(&str, &str)] = &[
    (
        "agencies/a.csv",
        "tenant_id,agency_id,name,state\nt1,G1,North Agency,OH\nt1,G2,South Agency,TX\nt2,G1,Other Group,CA\n",
    ),
    (
        "agents/a.csv",
        "tenant_id,agent_id,agency_id,name,role,manager_id,split_pct,override_pct,hire_date,status\n\
         t1,A1,G1,Ann Lee,producer,M1,0.40,,2020-01-01,active\n\
         t1,A2,G1,Bob Diaz,producer,M1,0.40,,2021-05-01,active\n\
         t1,M1,G1,Meg Ito,manager,,,0.03,2015-01-01,active\n\
         t1,A3,G2,Cat Roy,producer,,0.40,,2019-01-01,active\n\
         t2,B1,G1,Zed Other,producer,,0.40,,2019-01-01,active\n",
    ),
    ("carriers/c.csv", "tenant_id,carrier_id,name\nt1,K1,Harbor Mutual\nt1,K2,Plains Casualty\nt2,K1,Other Carrier\n"),
    (
        "commission_schedules/s.csv",
        "tenant_id,carrier_id,line_of_business,kind,rate,effective_from,effective_to\n\
         t1,K1,auto,new,0.12,2020-01-01,\n\
         t2,K1,auto,new,0.20,2020-01-01,\n",
    ),
    (
        "policies/p.csv",
        "tenant_id,policy_id,policy_number,agency_id,agent_id,carrier_id,customer_id,line_of_business,effective_date,expiration_date,premium,status,cancellation_date,renewal_of\n\
         t1,P1,N-1,G1,A1,K1,C1,auto,2024-01-01,2025-01-01,1000.00,expired,,\n\
         t1,P2,N-2,G1,A2,K2,C2,home,2024-03-01,2025-03-01,1500.00,cancelled,2024-06-01,\n\
         t1,P3,N-3,G2,A3,K1,C3,auto,2024-02-01,2025-02-01,800.00,expired,,\n\
         t1,P4,N-4,G1,A1,K1,C1,auto,2025-01-01,2026-01-01,1100.00,active,,P1\n\
         t2,Q1,Z-1,G1,B1,K1,Z1,auto,2024-01-01,2025-01-01,5000.00,expired,,\n",
    ),
    (
        "commissions/c.csv",
        "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission\n\
         t1,C1,P1,A1,K1,2024-01-15,new,1000.00,0.12,120.00,48.00,72.00\n\
         t1,C2,P2,A2,K2,2024-03-15,new,1500.00,0.15,225.00,90.00,135.00\n\
         t1,C3,P2,A2,K2,2024-06-01,chargeback,-1125.00,0.15,-168.75,-67.50,-101.25\n\
         t1,C4,P3,A3,K1,2024-02-15,new,800.00,0.12,96.00,38.40,57.60\n\
         t1,C5,P1,M1,K1,2024-01-15,override,0,0.03,0,3.60,-3.60\n\
         t1,C6,P4,A1,K1,2025-01-15,renewal,1100.00,0.10,110.00,27.50,82.50\n\
         t2,D1,Q1,B1,K1,2024-01-10,new,5000.00,0.20,1000.00,400.00,600.00\n",
    ),
];

const SECRET: &str = "test-secret";

pub struct TestApp {
    pub url: String,
    pub lake: TestLake,
    /// The running server's state (its slots, caches, counters).
    pub state: std::sync::Arc<cip::serve::AppState>,
    pub key_t1: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub enum Auth<'a> {
    None,
    Key(&'a str),
    Bearer(String),
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|s| s).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(ServeSettings) -> ServeSettings) -> Self {
        Self::spawn_book(BOOK, adjust).await
    }

    /// The server over a lake of `book` (landing path, content) instead of [`BOOK`].
    pub async fn spawn_book(book: &[(&str, &str)], adjust: impl FnOnce(ServeSettings) -> ServeSettings) -> Self {
        let lake = TestLake::new();
        for (path, body) in book {
            lake.land(path, body);
        }
        let report = ingest(&lake.landing(), &lake.lake(), &IngestOptions::default()).await.unwrap();
        assert_eq!(report.rows_rejected, 0, "{report:?}");
        let scopes = BTreeSet::from(["analytics:read".to_string()]);
        let (key_t1, _) = keys::create(&lake.lake(), "t1", scopes, "test").await.unwrap();
        let settings = adjust(ServeSettings::test_config(&lake.lake_url()));
        let app = Application::build(settings).await.unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp { url, lake, state, key_t1, client: reqwest::Client::new(), stop: Some(tx) }
    }

    pub fn token(tenant: &str, permissions: &[&str]) -> String {
        let claims = Claims {
            sub: format!("user@{tenant}"),
            tenant_id: tenant.into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    /// POST a query; returns the HTTP status, the Retry-After header and the body.
    pub async fn post(&self, auth: Auth<'_>, query: &str, variables: Value) -> (u16, Option<String>, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.url))
            .json_body(&json!({ "query": query, "variables": variables }));
        req = match auth {
            Auth::None => req,
            Auth::Key(k) => req.header("X-API-Key", k),
            Auth::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        (status, retry, json_of(resp).await)
    }

    /// Query as tenant t1 (API key); panics on errors.
    pub async fn t1(&self, query: &str) -> Value {
        let (status, _, body) = self.post(Auth::Key(&self.key_t1), query, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.client.get(format!("{}{path}", self.url)).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl TestApp {
    /// Stop the server cleanly (in-flight requests finish, the stream lease
    /// is given back); the lake stays for whoever else uses it.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

const RANGE_2024: &str = r#"{from: "2024-01-01", to: "2025-01-01"}"#;

#[tokio::test]
async fn agency_performance_and_agent_rankings_for_a_year() {
    let app = TestApp::spawn().await;
    let q = format!(
        r#"{{ agencies {{ id name performance(range: {RANGE_2024}) {{ grossCommission agentCommission writtenPremium
              policyCount newBusinessCount renewalRate cancellationRate averageCommissionRate ranking }}
              agents {{ id performance(range: {RANGE_2024}) {{ grossCommission agentCommission ranking }} }} }} }}"#
    );
    let data = app.t1(&q).await;
    // G1: gross 120.00 + 225.00 - 168.75 + 0 = 176.25; agent 48.00 + 90.00 - 67.50 + 3.60 = 74.10;
    // written 1000.00 + 1500.00; no expirations in 2024 (P1 expires 2025-01-01) → renewal rate null;
    // cancelled P2 / active on 2024-01-01 {P1} = 1.0; average rate (120 + 225) / 2500 = 0.138.
    assert_eq!(
        data["agencies"][0],
        json!({"id": "G1", "name": "North Agency", "performance": {
            "grossCommission": "176.25", "agentCommission": "74.10", "writtenPremium": "2500.00",
            "policyCount": 2, "newBusinessCount": 2, "renewalRate": null, "cancellationRate": 1.0,
            "averageCommissionRate": 0.138, "ranking": 1},
          // A1 120.00, A2 225.00 - 168.75 = 56.25, M1 0.00 (override 3.60 is agent commission)
          "agents": [
            {"id": "A1", "performance": {"grossCommission": "120.00", "agentCommission": "48.00", "ranking": 1}},
            {"id": "A2", "performance": {"grossCommission": "56.25", "agentCommission": "22.50", "ranking": 2}},
            {"id": "M1", "performance": {"grossCommission": "0.00", "agentCommission": "3.60", "ranking": 3}}]})
    );
    // G2: only P3 (no policy active on 2024-01-01 → cancellation rate null).
    assert_eq!(
        data["agencies"][1]["performance"],
        json!({"grossCommission": "96.00", "agentCommission": "38.40", "writtenPremium": "800.00",
               "policyCount": 1, "newBusinessCount": 1, "renewalRate": null, "cancellationRate": null,
               "averageCommissionRate": 0.12, "ranking": 2})
    );
    assert_eq!(
        data["agencies"][1]["agents"],
        json!([{"id": "A3", "performance": {"grossCommission": "96.00", "agentCommission": "38.40", "ranking": 1}}])
    );
}

#[tokio::test]
async fn kpis_at_an_as_of_date() {
    let app = TestApp::spawn().await;
    let data = app
        .t1(r#"{ agency(id: "G1") { kpis(asOf: "2024-03-20") { asOf mtdCommission ytdCommission activePolicies writtenPremiumYtd retentionRate12m }
                 later: kpis(asOf: "2025-06-30") { mtdCommission ytdCommission activePolicies writtenPremiumYtd retentionRate12m } } }"#)
        .await;
    // 2024-03-20: MTD = C2 225.00; YTD = 120.00 + 225.00 + 0; active P1, P2; written 2500.00; nothing expired.
    assert_eq!(
        data["agency"]["kpis"],
        json!({"asOf": "2024-03-20", "mtdCommission": "225.00", "ytdCommission": "345.00", "activePolicies": 2,
               "writtenPremiumYtd": "2500.00", "retentionRate12m": null})
    );
    // 2025-06-30: June nothing; YTD = C6 110.00; active P4; written P4 1100.00;
    // up for renewal in the year before: P1 (renewed by P4); P2 was cancelled before expiring → 1/1.
    assert_eq!(
        data["agency"]["later"],
        json!({"mtdCommission": "0.00", "ytdCommission": "110.00", "activePolicies": 1,
               "writtenPremiumYtd": "1100.00", "retentionRate12m": 1.0})
    );
}

#[tokio::test]
async fn leaderboard_and_trend() {
    let app = TestApp::spawn().await;
    let data = app
        .t1(&format!(
            r#"{{ leaderboard(by: AGENT, range: {RANGE_2024}) {{ rank key name value {{ amount }} }}
                 byCarrier: leaderboard(by: CARRIER, range: {RANGE_2024}, metric: POLICY_COUNT) {{ rank key value {{ count }} }}
                 trend(metric: GROSS_COMMISSION, range: {{from: "2024-01-01", to: "2024-07-01"}}) {{ key points {{ month value {{ amount }} }} }} }}"#
        ))
        .await;
    let board: Vec<(i64, String, String)> = data["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["rank"].as_i64().unwrap(),
                e["key"].as_str().unwrap().into(),
                e["value"]["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        board,
        vec![
            (1, "A1".into(), "120.00".into()),
            (2, "A3".into(), "96.00".into()),
            (3, "A2".into(), "56.25".into()),
            (4, "M1".into(), "0.00".into())
        ]
    );
    assert_eq!(data["leaderboard"][0]["name"], "Ann Lee");
    // Policies written in 2024 by carrier: K1 {P1, P3} = 2, K2 {P2} = 1.
    assert_eq!(
        data["byCarrier"],
        json!([{"rank": 1, "key": "K1", "value": {"count": 2}}, {"rank": 2, "key": "K2", "value": {"count": 1}}])
    );
    // Jan: 120 + 0 (C1, C5); Feb: 96 (C4); Mar: 225 (C2); Apr, May: 0; Jun: -168.75 (C3).
    let points: Vec<(String, String)> = data["trend"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["month"].as_str().unwrap().into(), p["value"]["amount"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        points,
        [
            ("2024-01", "120.00"),
            ("2024-02", "96.00"),
            ("2024-03", "225.00"),
            ("2024-04", "0.00"),
            ("2024-05", "0.00"),
            ("2024-06", "-168.75")
        ]
        .map(|(m, v)| (m.to_string(), v.to_string()))
    );
}

#[tokio::test]
async fn credentials_permissions_and_limits_answer_with_codes() {
    let app = TestApp::spawn_with(|s| ServeSettings { rate_per_sec: 0.5, rate_burst: 2.0, ..s }).await;
    let q = "{ agencies { id } }";
    let code = |b: &Value| b["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_string();

    let (status, _, body) = app.post(Auth::None, q, json!({})).await;
    assert_eq!((status, code(&body).as_str()), (401, "UNAUTHENTICATED"));
    let (status, _, body) = app.post(Auth::Key("cipk_test_0123456789abcdefghij0123456789ab"), q, json!({})).await;
    assert_eq!((status, code(&body).as_str()), (401, "UNAUTHENTICATED"));
    let (status, _, body) = app.post(Auth::Bearer("a.b.c".into()), q, json!({})).await;
    assert_eq!((status, code(&body).as_str()), (401, "UNAUTHENTICATED"));
    let (status, _, body) = app.post(Auth::Bearer(TestApp::token("t2", &["reports:write"])), q, json!({})).await;
    assert_eq!((status, code(&body).as_str()), (403, "FORBIDDEN"));

    // A JWT for t2 with the permission sees t2's agency only.
    let (status, _, body) = app.post(Auth::Bearer(TestApp::token("t2", &["analytics:read"])), q, json!({})).await;
    assert_eq!((status, body), (200, json!({"data": {"agencies": [{"id": "G1"}]}})));

    // Bad input gets BAD_INPUT, without internals.
    let (_, _, body) = app
        .post(
            Auth::Key(&app.key_t1),
            r#"{ leaderboard(by: AGENT, range: {from: "2024-02-01", to: "2024-01-01"}) { rank } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_INPUT");
    assert!(!body.to_string().contains("DataFusion"));
    app.t1(q).await;
    // The key's burst of 2 is used up; tokens come back at 0.5/s.
    let (status, retry, body) = app.post(Auth::Key(&app.key_t1), q, json!({})).await;
    assert_eq!((status, code(&body).as_str()), (429, "RATE_LIMITED"));
    assert_eq!(retry.as_deref(), Some("2"));
}

#[tokio::test]
async fn health_ready_metrics_and_graphiql() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health").await, (200, r#"{"status":"ok"}"#.to_string()));
    assert_eq!(app.get("/ready").await, (200, r#"{"events":true,"snapshot":1,"status":"ready"}"#.to_string()));
    let (status, page) = app.get("/graphql").await;
    assert_eq!(status, 200);
    assert!(page.contains("graphiql"), "{page}");
    app.t1("query Dash { agencies { id } }").await;
    app.t1("query Dash { agencies { id } }").await;
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains(r#"cip_requests_total{operation="Dash",outcome="ok"} 2"#), "{metrics}");
    assert!(metrics.contains("cip_cache_hits_total 1"), "{metrics}");
    assert!(metrics.contains("cip_snapshot_version 1"), "{metrics}");
}

#[test]
fn schema_file_is_the_served_schema() {
    let served = cip::graphql::sdl();
    let file = std::fs::read_to_string(crate::helpers::project_dir().join("schema.graphql")).unwrap();
    assert!(
        file == served,
        "schema.graphql differs from the served schema; regenerate it with `cip schema > schema.graphql`"
    );
}

#[tokio::test]
async fn a_newly_published_snapshot_is_served_without_restart() {
    let app = TestApp::spawn().await;
    let q = r#"{ agency(id: "G2") { name performance(range: {from: "2024-01-01", to: "2025-01-01"}) { grossCommission } } }"#;
    assert_eq!(app.t1(q).await["agency"]["performance"]["grossCommission"], "96.00");
    app.lake.land(
        "commissions/later.csv",
        "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission\n\
         t1,C7,P3,A3,K1,2024-08-01,adjustment,0,0,4.00,1.60,2.40\n",
    );
    let report = ingest(&app.lake.landing(), &app.lake.lake(), &IngestOptions::default()).await.unwrap();
    assert_eq!(report.snapshot, Some(2));
    // The server polls every 100 ms in tests; give it up to 5 s.
    let mut seen = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = app.t1(q).await["agency"]["performance"]["grossCommission"].clone();
        if seen == "100.00" {
            break;
        }
    }
    assert_eq!(seen, "100.00"); // 96.00 + 4.00
    assert_eq!(app.get("/ready").await.1, r#"{"events":true,"snapshot":2,"status":"ready"}"#);
}

#[tokio::test]
async fn every_root_field_answers_only_with_the_callers_tenant() {
    let app = TestApp::spawn().await;
    let q = format!(
        r#"{{ agencies {{ id name agents {{ id name }} }}
             g1: agency(id: "G1") {{ name kpis(asOf: "2024-12-31") {{ ytdCommission activePolicies writtenPremiumYtd }}
                                    performance(range: {RANGE_2024}) {{ grossCommission writtenPremium ranking }} }}
             retention(range: {{from: "2025-01-01", to: "2026-01-01"}}, groupBy: AGENCY) {{ key upForRenewal renewed }}
             top: agency(id: "G1") {{ topPolicies(range: {RANGE_2024}) {{ id premium }} }}
             g2: agency(id: "G2") {{ name }}
             a1: agent(id: "A1") {{ name }}
             b1: agent(id: "B1") {{ name agency {{ name }} performance(range: {RANGE_2024}) {{ grossCommission ranking }} }}
             carriers {{ id name performance(range: {RANGE_2024}) {{ grossCommission }} }}
             k2: carrier(id: "K2") {{ name }}
             leaderboard(by: AGENCY, range: {RANGE_2024}) {{ key name value {{ amount }} }}
             lines: leaderboard(by: LINE_OF_BUSINESS, range: {RANGE_2024}, metric: WRITTEN_PREMIUM) {{ key value {{ amount }} }}
             trend(metric: GROSS_COMMISSION, range: {{from: "2024-01-01", to: "2024-03-01"}}, groupBy: CARRIER) {{ key points {{ month value {{ amount }} }} }}
             benchmark(agencyId: "G1", range: {RANGE_2024}) {{ subjectName peers {{ metric value {{ amount }} tenantPeers tenantPercentile }} }}
             report(input: {{metrics: [GROSS_COMMISSION, POLICY_COUNT], dimensions: [AGENCY], range: {RANGE_2024}}}) {{ rows {{ dimensions values {{ amount count }} }} }}
             empty: agency(id: "G1") {{ performance(range: {{from: "2030-01-01", to: "2030-02-01"}}) {{ grossCommission policyCount renewalRate cancellationRate averageCommissionRate }} }}
             calc: calculateCommission(input: {{carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-01-01", agentId: "B1"}}) {{ rate commission {{ gross producer }} }}
             bulk: calculateCommissions(inputs: [{{carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "100.00", effectiveDate: "2024-01-01", agentId: "A1"}}]) {{ error {{ code }} }}
             commissionSchedules {{ carrierId rate }}
             agentSplits {{ agentId }}
             pendingCommissions(asOf: "2024-06-01") {{ commission {{ commissionId grossCommission }} dueDate }}
             commissionAudit {{ checked findings {{ commissionId }} }}
             discrepancies {{ totalCount }}
             commissionChanges {{ action }}
             statementMappings {{ carrierId }}
             accountingExport(period: "2024-01") {{ entries {{ journalNo totalDebits }} }}
             producerStatement(agentId: "B1", period: "2024-01") {{ total }} }}"#
    );
    let (status, _, body) = app.post(Auth::Bearer(TestApp::token("t2", &["analytics:read"])), &q, json!({})).await;
    assert_eq!(status, 200);
    // Tenant t2 has one agency G1 with one producer B1, one carrier K1, one policy Q1 (5000.00, auto) and
    // one commission D1 (1000.00 in January 2024); t1 has other rows under the same ids G1 and K1.
    assert_eq!(
        body,
        json!({"data": {
            "agencies": [{"id": "G1", "name": "Other Group", "agents": [{"id": "B1", "name": "Zed Other"}]}],
            "g1": {"name": "Other Group", "kpis": {"ytdCommission": "1000.00", "activePolicies": 1, "writtenPremiumYtd": "5000.00"},
                   "performance": {"grossCommission": "1000.00", "writtenPremium": "5000.00", "ranking": 1}},
            "retention": [{"key": "G1", "upForRenewal": 1, "renewed": 0}],
            "top": {"topPolicies": [{"id": "Q1", "premium": "5000.00"}]},
            "g2": null,
            "a1": null,
            "b1": {"name": "Zed Other", "agency": {"name": "Other Group"}, "performance": {"grossCommission": "1000.00", "ranking": 1}},
            "carriers": [{"id": "K1", "name": "Other Carrier", "performance": {"grossCommission": "1000.00"}}],
            "k2": null,
            "leaderboard": [{"key": "G1", "name": "Other Group", "value": {"amount": "1000.00"}}],
            "lines": [{"key": "auto", "value": {"amount": "5000.00"}}],
            "trend": [{"key": "K1", "points": [{"month": "2024-01", "value": {"amount": "1000.00"}}, {"month": "2024-02", "value": {"amount": "0.00"}}]}],
            // One agency in the tenant: no percentile among one peer.
            "benchmark": {"subjectName": "Other Group", "peers": [
                {"metric": "GROSS_COMMISSION", "value": {"amount": "1000.00"}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "AGENT_COMMISSION", "value": {"amount": "400.00"}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "WRITTEN_PREMIUM", "value": {"amount": "5000.00"}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "POLICY_COUNT", "value": {"amount": null}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "NEW_BUSINESS_COUNT", "value": {"amount": null}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "RENEWAL_RATE", "value": {"amount": null}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "CANCELLATION_RATE", "value": {"amount": null}, "tenantPeers": 1, "tenantPercentile": null},
                {"metric": "AVERAGE_COMMISSION_RATE", "value": {"amount": null}, "tenantPeers": 1, "tenantPercentile": null}]},
            "report": {"rows": [{"dimensions": ["G1"], "values": [{"amount": "1000.00", "count": null}, {"amount": null, "count": 1}]}]},
            // A range with nothing in it: zero sums and null rates.
            "empty": {"performance": {"grossCommission": "0.00", "policyCount": 0, "renewalRate": null, "cancellationRate": null, "averageCommissionRate": null}},
            // The commission engine: t2's schedule (20 %), B1's split (40 %); t1's A1 is unknown here.
            "calc": {"rate": "0.2", "commission": {"gross": "200.00", "producer": "80.00"}},
            "bulk": [{"error": {"code": "unknown_agent"}}],
            "commissionSchedules": [{"carrierId": "K1", "rate": "0.2"}],
            "agentSplits": [],
            // D1 has no status: unpaid, due 45 days after January.
            "pendingCommissions": [{"commission": {"commissionId": "D1", "grossCommission": "1000.00"}, "dueDate": "2024-03-16"}],
            // 5000.00 × 0.20 = 1000.00, B1 40 % = 400.00: as booked.
            "commissionAudit": {"checked": 1, "findings": []},
            "discrepancies": {"totalCount": 0},
            "commissionChanges": [],
            "statementMappings": [],
            "accountingExport": {"entries": [{"journalNo": "2024-01-G1", "totalDebits": "1400.00"}]},
            "producerStatement": {"total": "400.00"}
        }})
    );
    let text = body.to_string();
    for t1_only in ["North Agency", "South Agency", "Ann Lee", "Harbor Mutual", "Plains Casualty", "176.25", "home"] {
        assert!(!text.contains(t1_only), "t1's {t1_only} leaked");
    }
}

#[tokio::test]
async fn retention_by_agency_and_line_and_top_policies() {
    let app = TestApp::spawn().await;
    let data = app
        .t1(r#"{ byAgency: retention(range: {from: "2025-01-01", to: "2026-01-01"}, groupBy: AGENCY) { key name upForRenewal renewed renewalRate }
                 byLine: retention(range: {from: "2025-01-01", to: "2026-01-01"}, groupBy: LINE_OF_BUSINESS) { key upForRenewal renewed renewalRate }
                 agency(id: "G1") { topPolicies(range: {from: "2024-01-01", to: "2026-01-01"}, first: 2) { id policyNumber premium status renewalOf agent { name } carrier { name } } } }"#)
        .await;
    // Expiring in 2025: P1 (G1, auto; renewed by P4), P3 (G2, auto; lapsed);
    // P2 (G1, home) expires 2025-03-01 but was cancelled on 2024-06-01, so it is not up.
    assert_eq!(
        data["byAgency"],
        json!([{"key": "G1", "name": "North Agency", "upForRenewal": 1, "renewed": 1, "renewalRate": 1.0},
               {"key": "G2", "name": "South Agency", "upForRenewal": 1, "renewed": 0, "renewalRate": 0.0}])
    );
    assert_eq!(data["byLine"], json!([{"key": "auto", "upForRenewal": 2, "renewed": 1, "renewalRate": 0.5}]));
    // G1 wrote P1 1000.00, P2 1500.00, P4 1100.00: the two largest are P2, P4.
    assert_eq!(
        data["agency"]["topPolicies"],
        json!([{"id": "P2", "policyNumber": "N-2", "premium": "1500.00", "status": "cancelled", "renewalOf": null,
                "agent": {"name": "Bob Diaz"}, "carrier": {"name": "Plains Casualty"}},
               {"id": "P4", "policyNumber": "N-4", "premium": "1100.00", "status": "active", "renewalOf": "P1",
                "agent": {"name": "Ann Lee"}, "carrier": {"name": "Harbor Mutual"}}])
    );
}

#[tokio::test]
async fn benchmark_an_agent_against_its_peers_and_hide_thin_industry_figures() {
    let app = TestApp::spawn().await;
    let data = app
        .t1(&format!(
            r#"{{ agent: benchmark(agentId: "A2", range: {RANGE_2024}) {{ subjectKind subjectId subjectName industry {{ metric }}
                   peers {{ metric value {{ amount count rate }} agencyPeers agencyPercentile tenantPeers tenantPercentile }} }}
                 agency: benchmark(agencyId: "G1", range: {RANGE_2024}) {{ industry {{ metric lineOfBusiness contributingTenants available median {{ amount }} agencyValue {{ amount }} }} }} }}"#
        ))
        .await;
    let agent = &data["agent"];
    assert_eq!((agent["subjectKind"].as_str(), agent["subjectName"].as_str()), (Some("AGENT"), Some("Bob Diaz")));
    assert_eq!(agent["industry"], json!([]));
    // Gross 2024: G1's agents A1 120.00, A2 56.25, M1 0.00; the tenant adds A3 96.00.
    // A2 among G1: 1 below + half of 1 equal (itself) over 3 = 50 %; among 4: 1.5 / 4 = 37.5 %.
    assert_eq!(
        agent["peers"][0],
        json!({"metric": "GROSS_COMMISSION", "value": {"amount": "56.25", "count": null, "rate": null},
               "agencyPeers": 3, "agencyPercentile": 50.0, "tenantPeers": 4, "tenantPercentile": 37.5})
    );
    // Policy count: A1 1 (P1), A2 1 (P2), M1 0, A3 1 (P3): A2 in G1 → (1 + 1) / 3; tenant → (1 + 1.5) / 4.
    assert!((agent["peers"][3]["agencyPercentile"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(agent["peers"][3]["tenantPercentile"], json!(62.5));
    // Only 2 tenants in this lake: no industry figure is shown.
    let gross = data["agency"]["industry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == "GROSS_COMMISSION" && e["lineOfBusiness"].is_null())
        .unwrap();
    assert_eq!(
        gross,
        &json!({"metric": "GROSS_COMMISSION", "lineOfBusiness": null, "contributingTenants": 2, "available": false,
                "median": null, "agencyValue": {"amount": "176.25"}})
    );
    let (_, _, body) = app
        .post(Auth::Key(&app.key_t1), &format!(r#"{{ benchmark(range: {RANGE_2024}) {{ subjectId }} }}"#), json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT");
    let (_, _, body) = app
        .post(
            Auth::Key(&app.key_t1),
            &format!(r#"{{ benchmark(agentId: "B1", range: {RANGE_2024}) {{ subjectId }} }}"#),
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "t2's agent is not found for t1");
}

#[tokio::test]
async fn graphql_over_websocket_with_credentials_in_connection_init() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let connect = || async {
        let mut req = format!("{}/graphql/ws", app.url.replace("http", "ws")).into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap().0
    };
    let text = |m: Message| serde_json::from_str::<Value>(m.to_text().unwrap()).unwrap();

    let mut ws = connect().await;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {"X-API-Key": app.key_t1}}).to_string()))
        .await
        .unwrap();
    assert_eq!(text(ws.next().await.unwrap().unwrap())["type"], "connection_ack");
    let query = r#"{ agency(id: "G2") { name performance(range: {from: "2024-01-01", to: "2025-01-01"}) { grossCommission } } }"#;
    ws.send(Message::text(json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string()))
        .await
        .unwrap();
    let next = text(ws.next().await.unwrap().unwrap());
    assert_eq!(
        next,
        json!({"id": "1", "type": "next", "payload": {"data": {"agency": {"name": "South Agency", "performance": {"grossCommission": "96.00"}}}}})
    );
    assert_eq!(text(ws.next().await.unwrap().unwrap()), json!({"id": "1", "type": "complete"}));

    // Without credentials the connection is refused.
    let mut ws = connect().await;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    let refused = ws.next().await.unwrap().unwrap();
    assert!(matches!(refused, Message::Close(_)), "{refused:?}");
}

#[tokio::test]
async fn rs256_tokens_and_the_query_timeout() {
    let fixtures = crate::helpers::project_dir().join("tests/fixtures");
    let fixtures = fixtures.display();
    let app = TestApp::spawn_with(|s| ServeSettings {
        jwt_secret: None,
        jwt_public_key: Some(format!("{fixtures}/jwt-test-public.pem").into()),
        query_timeout_ms: 1,
        ..s
    })
    .await;
    let private = std::fs::read(format!("{fixtures}/jwt-test-private.pem")).unwrap();
    let claims = Claims {
        sub: "svc".into(),
        tenant_id: "t1".into(),
        permissions: vec!["analytics:read".into()],
        exp: (chrono::Utc::now().timestamp() + 600) as u64,
    };
    let token = encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_pem(&private).unwrap()).unwrap();
    // An HS256 token is refused when the server verifies RS256.
    let (status, _, _) =
        app.post(Auth::Bearer(TestApp::token("t1", &["analytics:read"])), "{ agencies { id } }", json!({})).await;
    assert_eq!(status, 401);
    // The RS256 token is accepted, and a real query cannot finish in 1 ms.
    let q = format!(r#"{{ agencies {{ performance(range: {RANGE_2024}) {{ grossCommission }} }} }}"#);
    let (status, _, body) = app.post(Auth::Bearer(token), &q, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert_eq!(body["errors"][0]["message"], "query exceeded 1 ms");
}

#[tokio::test]
async fn variables_fragments_and_introspection() {
    let app = TestApp::spawn().await;
    let q = r#"query Perf($id: ID!, $range: DateRange!) {
                 agency(id: $id) { ...Figures }
                 __schema { queryType { name } mutationType { name } }
                 __type(name: "Kpis") { fields { name } }
               }
               fragment Figures on Agency { name performance(range: $range) { grossCommission } }"#;
    let vars = json!({"id": "G2", "range": {"from": "2024-01-01", "to": "2025-01-01"}});
    let (status, _, body) = app.post(Auth::Key(&app.key_t1), q, vars).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["agency"], json!({"name": "South Agency", "performance": {"grossCommission": "96.00"}}));
    assert_eq!(body["data"]["__schema"], json!({"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}));
    let fields: Vec<&str> =
        body["data"]["__type"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        ["asOf", "mtdCommission", "ytdCommission", "activePolicies", "writtenPremiumYtd", "retentionRate12m"]
    );
    // The same query with other variables is another cache entry, not a stale answer.
    let (_, _, body) = app
        .post(Auth::Key(&app.key_t1), q, json!({"id": "G1", "range": {"from": "2024-01-01", "to": "2025-01-01"}}))
        .await;
    assert_eq!(body["data"]["agency"]["performance"]["grossCommission"], "176.25");
}
