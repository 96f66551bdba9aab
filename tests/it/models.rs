//! The models' outputs through the API: the renewal feed (GraphQL
//! connection and CSV), forecasts and the model registry, over the hand-made
//! book of `serve::BOOK` plus hand-written scores and forecasts, so that
//! every expected value below is worked out by hand.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cip::models::forecast::{AccuracyRow, ForecastRow, SeriesScope};
use cip::models::registry::{self, NewModel};
use cip::models::renewal::Driver;
use cip::models::scores::{self, ScoredRow};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{JsonBody, json_of};
use crate::serve::{Auth, TestApp};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn money(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn scored(tenant: &str, policy: &str, exp: &str, p: f64, tenure: i64, change: f64, others: i64) -> ScoredRow {
    ScoredRow {
        tenant_id: tenant.into(),
        policy_id: policy.into(),
        as_of: d("2024-11-01"),
        expiration_date: d(exp),
        probability: p,
        drivers: vec![],
        tenure_terms: tenure,
        premium_change: change,
        other_policies: others,
    }
}

fn point(tenant: &str, scope: SeriesScope, id: &str, h: u32, value: &str) -> ForecastRow {
    let v = money(value);
    ForecastRow {
        tenant_id: tenant.into(),
        scope,
        series_id: id.into(),
        month: d("2025-12-01") + chrono::Months::new(h),
        horizon: h,
        point: v,
        lower80: v - Decimal::TEN,
        upper80: v + Decimal::TEN,
        lower95: v - Decimal::ONE_HUNDRED,
        upper95: v + Decimal::ONE_HUNDRED,
    }
}

fn accuracy(bucket: &str, mase: f64) -> AccuracyRow {
    AccuracyRow {
        tenant_id: "t1".into(),
        scope: SeriesScope::Agency,
        series_id: "G1".into(),
        bucket: bucket.into(),
        mase: Some(mase),
        wape: Some(0.1),
        coverage80: Some(0.8),
        coverage95: None,
        seasonal_naive_mase: Some(1.0),
        damped_trend_mase: Some(1.2),
    }
}

/// The server over `BOOK`, then a model registered and outputs published
/// as snapshot 2 (waited for).
async fn app_with_outputs() -> TestApp {
    let app = TestApp::spawn().await;
    let lake = app.lake.lake();
    let mut p1 = scored("t1", "P1", "2025-01-01", 0.30, 1, 0.20, 0);
    p1.drivers = vec![Driver {
        feature: "premium_change".into(),
        description: "Premium rose 20 % at the last renewal".into(),
        contribution: -0.9,
    }];
    let rows = vec![
        p1,
        scored("t1", "P2", "2025-03-01", 0.70, 2, 0.0, 1),
        scored("t1", "P3", "2025-02-01", 0.55, 3, 0.12, 2),
        scored("t1", "P4", "2026-01-01", 0.90, 2, 0.10, 0),
        scored("t2", "Q1", "2025-01-01", 0.80, 1, 0.0, 0),
    ];
    let forecasts = vec![
        point("t1", SeriesScope::Tenant, "", 1, "100.00"),
        point("t1", SeriesScope::Tenant, "", 2, "110.00"),
        point("t1", SeriesScope::Tenant, "", 3, "120.50"),
        point("t1", SeriesScope::Agency, "G1", 1, "60.00"),
        point("t1", SeriesScope::Agency, "G1", 2, "70.00"),
        point("t1", SeriesScope::Agency, "G1", 3, "80.25"),
        point("t2", SeriesScope::Tenant, "", 1, "999.99"),
    ];
    let acc = vec![accuracy("7-12", 0.95), accuracy("1-3", 0.61)];
    let mut outputs = BTreeMap::new();
    outputs.insert(scores::RENEWAL_SCORES, scores::renewal_batches(&rows, "r-1").unwrap());
    outputs.insert(scores::FORECASTS, scores::forecast_batches(&forecasts, "f-1").unwrap());
    outputs.insert(scores::FORECAST_ACCURACY, scores::accuracy_batches(&acc, "f-1").unwrap());
    registry::save(
        &lake,
        NewModel {
            name: "renewal",
            artifact: &vec![1.0f64],
            metrics: json!({"model": {"roc_auc": 0.81}, "contributing_tenants": 2}),
            metrics_by_tenant: BTreeMap::from([
                ("t1".to_string(), json!({"model": {"roc_auc": 0.74}, "rows": 4})),
                ("t2".to_string(), json!({"model": {"roc_auc": 0.93}, "rows": 1})),
            ]),
            card: "# renewal",
            window_from: d("2021-04-01"),
            window_to: d("2024-12-31"),
            data_date: d("2025-12-31"),
            snapshot: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(scores::publish(&lake, outputs, "test-outputs").await.unwrap(), 2);
    for _ in 0..50 {
        if app.get("/ready").await.1.contains("\"snapshot\":2") {
            return app;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not load snapshot 2");
}

const NODE: &str = "cursor node { policy { id policyNumber } customerId producer { name } agency { name } carrier { name }
    lineOfBusiness premium expirationDate daysToExpiration renewalProbability riskLevel
    drivers { feature description contribution } recommendedActions { code dueBy } commissionAtStake scoredAsOf modelVersion }";

fn ids(conn: &Value) -> Vec<String> {
    conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["policy"]["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_renewal_feed_pages_most_at_risk_first_with_reasons_actions_and_commission_at_stake() {
    let app = app_with_outputs().await;
    let q = format!(
        r#"{{ renewalIntelligence(window: {{from: "2025-01-01", to: "2026-02-01"}}, first: 2) {{
              edges {{ {NODE} }} pageInfo {{ hasNextPage endCursor }} totalCount }} }}"#
    );
    let page1 = app.t1(&q).await["renewalIntelligence"].clone();
    assert_eq!(ids(&page1), ["P1", "P3"]);
    assert_eq!(page1["totalCount"], 4);
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    // P1: expires 2025-01-01, 61 days after 2024-11-01; every rule fires:
    // 60 days before = 2024-11-02, 45 before = 2024-11-17, 30 before = 2024-12-02.
    // At stake: its `new` row C1 (120.00); the manager's override row is not the term's commission.
    assert_eq!(
        page1["edges"][0]["node"],
        json!({
            "policy": {"id": "P1", "policyNumber": "N-1"}, "customerId": "C1",
            "producer": {"name": "Ann Lee"}, "agency": {"name": "North Agency"}, "carrier": {"name": "Harbor Mutual"},
            "lineOfBusiness": "auto", "premium": "1000.00", "expirationDate": "2025-01-01", "daysToExpiration": 61,
            "renewalProbability": 0.3, "riskLevel": "HIGH",
            "drivers": [{"feature": "premium_change", "description": "Premium rose 20 % at the last renewal", "contribution": -0.9}],
            "recommendedActions": [
                {"code": "CONTACT_EARLY", "dueBy": "2024-11-02"}, {"code": "REMARKET", "dueBy": "2024-11-17"},
                {"code": "CROSS_SELL", "dueBy": "2024-12-02"}, {"code": "COVERAGE_REVIEW", "dueBy": "2024-12-02"}],
            "commissionAtStake": "120.00", "scoredAsOf": "2024-11-01", "modelVersion": "r-1"
        })
    );
    // P3 (0.55, +12 %, bundled, third term): call (2025-02-01 − 60 = 2024-12-03) and re-market (− 45 = 2024-12-18).
    let p3 = &page1["edges"][1]["node"];
    assert_eq!(
        p3["recommendedActions"],
        json!([{"code": "CONTACT_EARLY", "dueBy": "2024-12-03"}, {"code": "REMARKET", "dueBy": "2024-12-18"}])
    );
    assert_eq!((p3["commissionAtStake"].clone(), p3["riskLevel"].clone()), (json!("96.00"), json!("HIGH")));

    let after = page1["pageInfo"]["endCursor"].as_str().unwrap();
    let q2 = format!(
        r#"{{ renewalIntelligence(window: {{from: "2025-01-01", to: "2026-02-01"}}, first: 2, after: "{after}") {{
              edges {{ {NODE} }} pageInfo {{ hasNextPage endCursor }} totalCount }} }}"#
    );
    let page2 = app.t1(&q2).await["renewalIntelligence"].clone();
    assert_eq!(ids(&page2), ["P2", "P4"]);
    assert_eq!(page2["pageInfo"]["hasNextPage"], false);
    // P2: 0.70, no trigger; at stake its new row 225.00 (the chargeback is not a term's commission).
    let p2 = &page2["edges"][0]["node"];
    assert_eq!((p2["riskLevel"].clone(), p2["recommendedActions"].clone()), (json!("MEDIUM"), json!([])));
    assert_eq!(p2["commissionAtStake"], "225.00");
    // P4: 0.90 but +10 % and single-line: re-market by 2025-11-17, cross-sell by 2025-12-02.
    let p4 = &page2["edges"][1]["node"];
    assert_eq!(
        p4["recommendedActions"],
        json!([{"code": "REMARKET", "dueBy": "2025-11-17"}, {"code": "CROSS_SELL", "dueBy": "2025-12-02"}])
    );
    assert_eq!((p4["commissionAtStake"].clone(), p4["riskLevel"].clone()), (json!("110.00"), json!("LOW")));
}

#[tokio::test]
async fn the_renewal_feed_filters_by_probability_agency_agent_and_half_open_window() {
    let app = app_with_outputs().await;
    let run = |args: &str| {
        format!(r#"{{ renewalIntelligence({args}) {{ edges {{ cursor node {{ policy {{ id }} }} }} totalCount }} }}"#)
    };
    let all = r#"window: {from: "2024-01-01", to: "2027-01-01"}"#;
    let risky = app.t1(&run(&format!("{all}, maxProbability: 0.6"))).await["renewalIntelligence"].clone();
    assert_eq!((ids(&risky), risky["totalCount"].clone()), (vec!["P1".to_string(), "P3".into()], json!(2)));
    let g2 = app.t1(&run(&format!(r#"{all}, agencyId: "G2""#))).await["renewalIntelligence"].clone();
    assert_eq!(ids(&g2), ["P3"]);
    let a1 = app.t1(&run(&format!(r#"{all}, agentId: "A1""#))).await["renewalIntelligence"].clone();
    assert_eq!(ids(&a1), ["P1", "P4"]);
    // [2025-01-02, 2025-03-01): P3 (2025-02-01) only; P1 expires before, P2 on the excluded end.
    let w = app.t1(&run(r#"window: {from: "2025-01-02", to: "2025-03-01"}"#)).await["renewalIntelligence"].clone();
    assert_eq!(ids(&w), ["P3"]);

    for (args, code) in [(format!("{all}, first: 0"), "BAD_INPUT"), (format!(r#"{all}, after: "zz""#), "BAD_INPUT")] {
        let (status, _, body) = app.post(Auth::Key(&app.key_t1), &run(&args), json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
    }
}

#[tokio::test]
async fn forecasts_give_months_bounds_and_backtest_accuracy_of_the_asked_series() {
    let app = app_with_outputs().await;
    let data = app
        .t1(r#"{ g1: forecast(scope: AGENCY, id: "G1", horizon: 2) { scope id modelVersion
                    points { month value lower80 upper80 lower95 upper95 }
                    accuracy { horizons mase wape coverage80 coverage95 seasonalNaiveMase dampedTrendMase } }
                 total: forecast(scope: AGENCY) { id points { month value } }
                 a1: forecast(scope: AGENT, id: "A1") { id } }"#)
        .await;
    assert_eq!(
        data["g1"],
        json!({"scope": "AGENCY", "id": "G1", "modelVersion": "f-1",
               "points": [
                   {"month": "2026-01", "value": "60.00", "lower80": "50.00", "upper80": "70.00", "lower95": "-40.00", "upper95": "160.00"},
                   {"month": "2026-02", "value": "70.00", "lower80": "60.00", "upper80": "80.00", "lower95": "-30.00", "upper95": "170.00"}],
               "accuracy": [
                   {"horizons": "1-3", "mase": 0.61, "wape": 0.1, "coverage80": 0.8, "coverage95": null, "seasonalNaiveMase": 1.0, "dampedTrendMase": 1.2},
                   {"horizons": "7-12", "mase": 0.95, "wape": 0.1, "coverage80": 0.8, "coverage95": null, "seasonalNaiveMase": 1.0, "dampedTrendMase": 1.2}]})
    );
    assert_eq!(
        data["total"],
        json!({"id": null, "points": [{"month": "2026-01", "value": "100.00"}, {"month": "2026-02", "value": "110.00"}, {"month": "2026-03", "value": "120.50"}]})
    );
    // A known agent without a forecast: null, not an error.
    assert_eq!(data["a1"], Value::Null);
    for (q, code) in [
        (r#"{ forecast(scope: AGENCY, id: "G9") { id } }"#, "NOT_FOUND"),
        (r#"{ forecast(scope: MONTH) { id } }"#, "BAD_INPUT"),
        (r#"{ forecast(scope: AGENCY, horizon: 13) { id } }"#, "BAD_INPUT"),
    ] {
        let (_, _, body) = app.post(Auth::Key(&app.key_t1), q, json!({})).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{q}: {body}");
    }
}

#[tokio::test]
async fn models_lists_registered_versions_with_their_metrics() {
    let app = app_with_outputs().await;
    let data = app.t1("{ models { name version trainedAt trainingWindow { from to } dataDate metrics } }").await;
    let m = &data["models"][0];
    assert_eq!(data["models"].as_array().unwrap().len(), 1);
    assert_eq!(m["name"], "renewal");
    assert_eq!(m["trainingWindow"], json!({"from": "2021-04-01", "to": "2024-12-31"}));
    assert_eq!(m["dataDate"], "2025-12-31");
    // Its own figures only: two tenants contributed, fewer than the 5 the pool needs.
    assert_eq!(
        m["metrics"],
        json!({"tenant": {"model": {"roc_auc": 0.74}, "rows": 4}, "pooled": null, "contributing_tenants": 2, "min_tenants": 5})
    );
    assert_eq!(m["version"].as_str().unwrap().len(), "20261123T160501123Z".len());
    // t2 sees its own, whatever it asks.
    let (_, _, body) =
        app.post(Auth::Bearer(TestApp::token("t2", &["analytics:read"])), "{ models { metrics } }", json!({})).await;
    assert_eq!(
        body["data"]["models"][0]["metrics"]["tenant"],
        json!({"model": {"roc_auc": 0.93}, "rows": 1}),
        "{body}"
    );
    assert_eq!(body["data"]["models"][0]["metrics"]["pooled"], Value::Null);
}

#[tokio::test]
async fn the_csv_feed_carries_the_same_rows_and_refuses_without_credentials() {
    let app = app_with_outputs().await;
    let client = reqwest::Client::new();
    let url = format!("{}/feeds/renewals.csv?from=2025-01-01&to=2026-02-01&maxProbability=0.6", app.url);
    let resp = client.get(&url).header("X-API-Key", &app.key_t1).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(resp.headers()["x-total-rows"], "2");
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, cip::serve::feeds::COLUMNS);
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][..18],
        [
            "P1",
            "N-1",
            "C1",
            "G1",
            "North Agency",
            "A1",
            "Ann Lee",
            "K1",
            "Harbor Mutual",
            "auto",
            "1000.00",
            "2025-01-01",
            "0.3000",
            "HIGH",
            "120.00",
            "Premium rose 20 % at the last renewal",
            "",
            ""
        ]
    );
    assert!(rows[0][18].starts_with("CONTACT_EARLY by 2024-11-02: Renewal probability 30 %"), "{}", rows[0][18]);
    assert_eq!(rows[0][19], "2024-11-01");
    assert_eq!(rows[1][..3], ["P3", "N-3", "C3"]);

    let (status, body) = app.get("/feeds/renewals.csv").await;
    assert_eq!(status, 401);
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let resp = client.get(format!("{}/feeds/renewals.csv?from=tomorrow", app.url)).header("X-API-Key", &app.key_t1);
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("BAD_INPUT"));
}

#[tokio::test]
async fn another_tenant_sees_only_its_own_scores_forecasts_and_feed() {
    let app = app_with_outputs().await;
    let token = TestApp::token("t2", &["analytics:read"]);
    let q = r#"{ renewalIntelligence(window: {from: "2020-01-01", to: "2030-01-01"}) {
                   edges { node { policy { id } producer { name } premium renewalProbability commissionAtStake } } totalCount }
                 total: forecast(scope: AGENCY) { points { month value } }
                 g1: forecast(scope: AGENCY, id: "G1") { points { value } } }"#;
    let (status, _, body) = app.post(Auth::Bearer(token.clone()), q, json!({})).await;
    assert_eq!(status, 200);
    // t2 has the one policy Q1 (5000.00, new commission 1000.00) and one forecast row; its agency G1 has none.
    assert_eq!(
        body,
        json!({"data": {
            "renewalIntelligence": {"edges": [{"node": {"policy": {"id": "Q1"}, "producer": {"name": "Zed Other"},
                "premium": "5000.00", "renewalProbability": 0.8, "commissionAtStake": "1000.00"}}], "totalCount": 1},
            "total": {"points": [{"month": "2026-01", "value": "999.99"}]},
            "g1": null}})
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/feeds/renewals.csv", app.url))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("Q1,Z-1,Z1,G1,Other Group,B1,Zed Other,"), "{text}");
}

/// `cip train` then `cip score` on a small generated book: the scored
/// population is exactly the contract's active policies at the scoring date
/// (counted here by SQL), a reloaded model gives the stored probabilities,
/// and forecasts add up: agencies to the tenant, agents to their agency.
#[tokio::test(flavor = "multi_thread")]
async fn train_and_score_a_generated_book_end_to_end() {
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int64Type};
    use cip::models::jobs::{self, ScoreOptions, TrainOptions};
    use cip::models::renewal::{self, RenewalModel};
    use std::collections::HashMap;

    use crate::helpers::{sql_at, tenant};

    let t = generated_lake(11, 2).await;
    let lake = t.lake();

    let trained = jobs::train(&lake, &TrainOptions::default()).await.unwrap();
    assert_eq!(trained.data_date, d("2025-12-31"));
    assert!(trained.renewal_examples > 1_000, "{trained:?}");
    let scored = jobs::score(&lake, &ScoreOptions::default()).await.unwrap();
    assert_eq!(scored.as_of, d("2025-12-31"));
    let manifest = t.latest().await.unwrap();
    assert_eq!(manifest.version, scored.snapshot);

    let count = |b: &[RecordBatch]| b[0].column(0).as_primitive::<Int64Type>().value(0);
    let mut total_scored = 0;
    for tenant_id in manifest.tenants() {
        // Active at d: effective_date <= d < expiration_date, no cancellation_date <= d.
        let active = sql_at(
            &lake,
            &manifest,
            tenant(&tenant_id),
            "select count(*) from policies where effective_date <= date '2025-12-31' and expiration_date > date '2025-12-31'
             and (cancellation_date is null or cancellation_date > date '2025-12-31')",
        )
        .await;
        let scores = sql_at(&lake, &manifest, tenant(&tenant_id), "select count(*) from renewal_scores").await;
        assert_eq!(count(&scores), count(&active), "tenant {tenant_id}");
        assert!(count(&active) > 100);
        total_scored += count(&scores);
    }
    assert_eq!(total_scored as usize, scored.policies_scored);

    // The registered model, reloaded from the lake, gives the stored probabilities.
    let info = cip::models::registry::latest(&lake, renewal::MODEL_NAME).await.unwrap().unwrap();
    let model: RenewalModel = cip::models::registry::load(&lake, &info).await.unwrap();
    let inputs = cip::models::features::Inputs {
        policies: cip::models::frames::load(&lake, &manifest, "policies", None).await.unwrap(),
        agents: cip::models::frames::load(&lake, &manifest, "agents", None).await.unwrap(),
        commissions: cip::models::frames::load(&lake, &manifest, "commissions", None).await.unwrap(),
    };
    let examples = cip::models::features::scoring_examples(&inputs, d("2025-12-31")).unwrap();
    let again = model.score(&examples).unwrap();
    let ids = cip::models::frames::to_strings(&examples, "policy_id").unwrap();
    let tenants = cip::models::frames::to_strings(&examples, "tenant_id").unwrap();
    let stored = sql_at(
        &lake,
        &manifest,
        cip::query::tables::Scope::AllTenants,
        "select tenant_id, policy_id, probability, as_of from renewal_scores",
    )
    .await;
    let mut by_key = HashMap::new();
    for b in &stored {
        for r in 0..b.num_rows() {
            assert_eq!(b.column(3).as_primitive::<Date32Type>().value(r), 20453); // 2025-12-31
            let p = b.column(2).as_primitive::<Float64Type>().value(r);
            assert!((0.0..=1.0).contains(&p));
            let key = (
                b.column(0).as_string::<i32>().value(r).to_string(),
                b.column(1).as_string::<i32>().value(r).to_string(),
            );
            by_key.insert(key, p);
        }
    }
    assert_eq!(by_key.len(), again.len());
    for ((tn, id), s) in tenants.iter().zip(&ids).zip(&again) {
        assert_eq!(by_key[&(tn.clone(), id.clone())], s.probability, "{tn}/{id}");
    }

    // Forecasts in cents: Σ agencies = tenant, Σ agents (of one agency) = agency, every month.
    for tenant_id in manifest.tenants() {
        let rows =
            sql_at(&lake, &manifest, tenant(&tenant_id), "select scope, series_id, horizon, point from forecasts")
                .await;
        let mut sums: HashMap<(String, String, i32), i128> = HashMap::new();
        for b in &rows {
            for r in 0..b.num_rows() {
                let scope = b.column(0).as_string::<i32>().value(r).to_string();
                let id = b.column(1).as_string::<i32>().value(r).to_string();
                let h = b.column(2).as_primitive::<arrow::datatypes::Int32Type>().value(r);
                let cents = b.column(3).as_primitive::<Decimal128Type>().value(r);
                sums.insert((scope, id, h), cents);
            }
        }
        let pairs = sql_at(
            &lake,
            &manifest,
            tenant(&tenant_id),
            "select arrow_cast(agent_id, 'Utf8'), arrow_cast(agency_id, 'Utf8') from commissions_monthly
             where agency_id is not null group by agent_id, agency_id",
        )
        .await;
        let mut agencies_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut agents_of: HashMap<String, Vec<String>> = HashMap::new();
        for b in &pairs {
            for r in 0..b.num_rows() {
                let (agent, agency) =
                    (b.column(0).as_string::<i32>().value(r), b.column(1).as_string::<i32>().value(r));
                agencies_of.entry(agent.to_string()).or_default().push(agency.to_string());
                agents_of.entry(agency.to_string()).or_default().push(agent.to_string());
            }
        }
        // Agencies whose every agent works only for them: Σ agents = agency.
        agents_of.retain(|_, agents| agents.iter().all(|a| agencies_of[a].len() == 1));
        for h in 1..=12 {
            let tenant_total = sums[&("tenant".to_string(), String::new(), h)];
            let agencies: i128 = sums.iter().filter(|((s, _, hh), _)| s == "agency" && *hh == h).map(|(_, v)| *v).sum();
            assert_eq!(agencies, tenant_total, "{tenant_id} h{h}");
            let mut checked = 0;
            for (agency, agents) in &agents_of {
                if agents.iter().all(|a| sums.contains_key(&("agent".to_string(), a.clone(), h))) {
                    let s: i128 = agents.iter().map(|a| sums[&("agent".to_string(), a.clone(), h)]).sum();
                    assert_eq!(s, sums[&("agency".to_string(), agency.clone(), h)], "{tenant_id} {agency} h{h}");
                    checked += 1;
                }
            }
            assert!(checked > 0, "no agency checked");
        }
    }
}

/// POST `query` as `tenant` (a JWT) to the server at `url`; panics on errors.
async fn graphql_as(url: &str, tenant: &str, query: &str) -> Value {
    let token = TestApp::token(tenant, &["analytics:read"]);
    let resp = reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .header("Authorization", format!("Bearer {token}"))
        .json_body(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = json_of(resp).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() <= 1e-12 * b.abs().max(1.0))
}

/// `cip train` over a generated lake of three tenants, then the real server:
/// each tenant's `models { metrics }` is its own evaluation, equal to figures
/// worked out for that tenant alone from the lake (its test and fit examples
/// and their renewal rates by SQL over its policies; its forecast backtest
/// from the `forecast_accuracy` rows of its own series), differs from the
/// other tenants', and carries no pooled figure with fewer than 5 tenants.
#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_sees_its_own_evaluation_and_no_pool_below_five_tenants() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use cip::models::jobs::{self, ScoreOptions, TrainOptions};

    use crate::helpers::{sql_at, tenant};

    let t = generated_lake(5, 3).await;
    let lake = t.lake();
    // The test year is 2025 whatever the last generated date.
    let train_opts = TrainOptions { data_date: Some(d("2025-12-31")), ..Default::default() };
    let trained = jobs::train(&lake, &train_opts).await.unwrap();
    assert_eq!(trained.data_date, d("2025-12-31"));
    jobs::score(&lake, &ScoreOptions { as_of: Some(d("2025-12-31")) }).await.unwrap();
    let manifest = t.latest().await.unwrap();
    let tenants = manifest.tenants();
    assert_eq!(tenants.len(), 3);

    let app = cip::serve::Application::build(cip::config::ServeSettings::test_config(&t.lake_url())).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // Each tenant's examples (observed 90 days before expiration, effective and not cancelled by then; renewed
    // = a later term names it), its test year (expirations in 2025) and its fit rows (expirations up to
    // 2024-09-30, observed at least 365 days after the tenant's first effective date), by SQL.
    let by_sql = "with r as (select distinct renewal_of as id from policies where renewal_of is not null and renewal_of <> policy_id),
        e as (select p.expiration_date as exp, p.expiration_date - interval '90 days' as as_of,
                     case when r.id is null then 0 else 1 end as renewed
              from policies p left join r on r.id = p.policy_id
              where p.effective_date <= p.expiration_date - interval '90 days'
                and (p.cancellation_date is null or p.cancellation_date > p.expiration_date - interval '90 days')
                and p.expiration_date <= date '2025-12-31'),
        s as (select min(effective_date) + interval '365 days' as ripe from policies)
        select cast(count(*) as bigint),
          cast(sum(case when exp > date '2024-12-31' then 1 else 0 end) as bigint),
          cast(sum(case when exp > date '2024-12-31' then renewed else 0 end) as bigint),
          cast(sum(case when exp <= date '2024-09-30' and as_of >= s.ripe then 1 else 0 end) as bigint),
          cast(sum(case when exp <= date '2024-09-30' and as_of >= s.ripe then renewed else 0 end) as bigint)
        from e cross join s";
    let q = "{ models { name metrics } }";
    let mut seen: Vec<Value> = Vec::new();
    for tn in &tenants {
        let data = graphql_as(&url, tn, q).await;
        let models = data["models"].as_array().unwrap();
        assert_eq!(models.len(), 2, "{data}");
        let renewal = &models.iter().find(|m| m["name"] == "renewal").unwrap()["metrics"];
        let forecast = &models.iter().find(|m| m["name"] == "revenue_forecast").unwrap()["metrics"];
        for m in [renewal, forecast] {
            // Three tenants: the pooled figures are withheld, and the count says why.
            assert_eq!(m["pooled"], Value::Null, "{m}");
            assert_eq!(m["contributing_tenants"], 3);
            assert_eq!(m["min_tenants"], 5);
            assert_eq!(m["tenant"]["tenant_id"], tn.as_str());
        }

        let b = sql_at(&lake, &manifest, tenant(tn), by_sql).await;
        let c = |k: usize| b[0].column(k).as_primitive::<Int64Type>().value(0);
        let (rows, test, test_renewed, fit, fit_renewed) = (c(0), c(1), c(2), c(3), c(4));
        assert!(test > 100 && fit > 100, "{tn}: test {test}, fit {fit}");
        let own = &renewal["tenant"];
        assert_eq!(own["rows"], rows, "{tn}");
        assert_eq!(own["evaluation"]["test"]["rows"], test, "{tn}");
        assert!(close(&own["evaluation"]["test"]["renewal_rate"], test_renewed as f64 / test as f64), "{tn}: {own}");
        assert_eq!(own["evaluation"]["fit"]["rows"], fit, "{tn}");
        assert!(close(&own["evaluation"]["fit"]["renewal_rate"], fit_renewed as f64 / fit as f64), "{tn}");
        // The reliability table counts exactly its test examples; the "overall rate" baseline predicts its own
        // fit renewal rate for every one, so its one filled bin holds them all and observes its test rate.
        let bins = |s: &Value| -> Vec<i64> {
            s["reliability"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).collect()
        };
        assert_eq!(bins(&own["model"]).iter().sum::<i64>(), test);
        assert!(close(&own["baseline_overall"]["mean_predicted"], fit_renewed as f64 / fit as f64), "{tn}");
        let filled: Vec<&Value> = own["baseline_overall"]["reliability"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["count"].as_i64().unwrap() > 0)
            .collect();
        assert_eq!(filled.len(), 1);
        assert_eq!(filled[0]["count"], test);
        assert!(close(&filled[0]["observed_rate"], test_renewed as f64 / test as f64));
        assert!(own.get("served").unwrap().get("coefficients").is_none());

        // The forecast: its total's backtest is the tenant-scope row of `forecast_accuracy`; its agency MASE is
        // the mean over its agencies' rows.
        let acc = sql_at(
            &lake,
            &manifest,
            tenant(tn),
            "select arrow_cast(bucket, 'Utf8'), mase, wape, coverage80 from forecast_accuracy where scope = 'tenant'",
        )
        .await;
        let mut buckets = 0;
        for batch in &acc {
            for r in 0..batch.num_rows() {
                let bucket = batch.column(0).as_string::<i32>().value(r);
                let f = |k: usize| batch.column(k).as_primitive::<Float64Type>().value(r);
                assert!(batch.column(1).is_valid(r) && batch.column(3).is_valid(r));
                let m = &forecast["tenant"]["scopes"]["tenant"]["buckets"][bucket]["model"];
                assert!(
                    close(&m["mase"], f(1)) && close(&m["wape"], f(2)) && close(&m["coverage80"], f(3)),
                    "{tn} {bucket}: {m}"
                );
                buckets += 1;
            }
        }
        assert_eq!(buckets, 3, "{tn}");
        let agencies = sql_at(
            &lake,
            &manifest,
            tenant(tn),
            "select arrow_cast(bucket, 'Utf8'), avg(mase), cast(count(mase) as bigint) from forecast_accuracy
             where scope = 'agency' and mase is not null group by bucket",
        )
        .await;
        let mut checked = 0;
        for batch in &agencies {
            for r in 0..batch.num_rows() {
                let bucket = batch.column(0).as_string::<i32>().value(r);
                let m = &forecast["tenant"]["scopes"]["agency"]["buckets"][bucket]["model"];
                let mean = batch.column(1).as_primitive::<Float64Type>().value(r);
                assert!(m["mase"].as_f64().is_some_and(|v| (v - mean).abs() < 1e-9), "{tn} {bucket}: {m} vs {mean}");
                assert_eq!(m["series_with_mase"], batch.column(2).as_primitive::<Int64Type>().value(r));
                checked += 1;
            }
        }
        assert_eq!(checked, 3, "{tn}");
        // Nothing of another tenant: no id of theirs anywhere in the answer.
        let text = data.to_string();
        for other in tenants.iter().filter(|o| *o != tn) {
            assert!(!text.contains(&format!("\"{other}\"")), "{tn} sees {other}");
        }
        seen.push(json!({"renewal": own, "forecast": forecast["tenant"]}));
    }
    // Different tenants, different figures.
    assert_ne!(seen[0]["renewal"]["evaluation"]["test"], seen[1]["renewal"]["evaluation"]["test"]);
    assert_ne!(seen[0]["renewal"]["model"], seen[1]["renewal"]["model"]);
    assert_ne!(seen[0]["forecast"]["scopes"], seen[1]["forecast"]["scopes"]);
    let _ = stop.send(());
}

/// A generated book of 6,000 policy terms over 2021–2025 (clean), ingested.
async fn generated_lake(seed: u64, tenants: usize) -> crate::helpers::TestLake {
    use cip::generate::{Format, GenerateOptions, generate};
    use cip::pipelines::batch::{IngestOptions, ingest};

    let t = crate::helpers::TestLake::new();
    let opts = GenerateOptions {
        out: t.landing_path(),
        truth: t.lake_path().with_extension("truth"),
        policies: 6_000,
        seed,
        tenants,
        format: Format::Csv,
        bad_row_rate: 0.0,
        start: d("2021-01-01"),
        end: d("2026-01-01"),
    };
    generate(&opts).unwrap();
    ingest(&t.landing(), &t.lake(), &IngestOptions::default()).await.unwrap();
    t
}
