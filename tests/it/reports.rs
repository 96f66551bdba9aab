//! Custom reports over the real server and the hand-computed `BOOK` of
//! `serve.rs`: ad-hoc reports, saved reports (create, list, run, delete),
//! CSV and Parquet downloads, tenant isolation, permissions and bad input.

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::serve::{Auth, TestApp};

/// t1, G1 only (policies P1, P2, P4; commission rows C1, C2, C3, C5, C6),
/// from 2024-01-01 to 2025-04-01, by quarter and carrier.
const INPUT: &str = r#"{
    metrics: [GROSS_COMMISSION, POLICY_COUNT, AVERAGE_COMMISSION_RATE],
    dimensions: [QUARTER, CARRIER],
    range: {from: "2024-01-01", to: "2025-04-01"},
    filter: {agencyId: "G1"},
    orderBy: [{metric: GROSS_COMMISSION}]
}"#;

const REPORT_FIELDS: &str =
    "columns { name kind dimension metric } rows { dimensions values { amount count rate } } totalRows";

/// A writer of tenant `t`.
fn writer(t: &str) -> String {
    TestApp::token(t, &["analytics:read", "reports:write"])
}

fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_string()
}

/// POST as `auth`; asserts HTTP 200 and returns the body.
async fn gql(app: &TestApp, auth: Auth<'_>, query: &str, variables: Value) -> Value {
    let (status, _, body) = app.post(auth, query, variables).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// POST as `auth`; asserts no errors and returns `data`.
async fn data(app: &TestApp, auth: Auth<'_>, query: &str) -> Value {
    let body = gql(app, auth, query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

struct Download {
    status: u16,
    content_type: String,
    total_rows: Option<String>,
    body: bytes::Bytes,
}

async fn download(app: &TestApp, auth: Auth<'_>, path: &str) -> Download {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.url));
    req = match auth {
        Auth::None => req,
        Auth::Key(k) => req.header("X-API-Key", k),
        Auth::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
    };
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (content_type, total_rows) = (header("content-type").unwrap_or_default(), header("x-total-rows"));
    Download { status: resp.status().as_u16(), content_type, total_rows, body: resp.bytes().await.unwrap() }
}

fn json_of(d: &Download) -> Value {
    serde_json::from_slice(&d.body).unwrap()
}

fn money(a: &str) -> Value {
    json!({"amount": a, "count": null, "rate": null})
}
fn count(n: i64) -> Value {
    json!({"amount": null, "count": n, "rate": null})
}
fn rate(r: Option<f64>) -> Value {
    json!({"amount": null, "count": null, "rate": r})
}

async fn create(app: &TestApp, tenant: &str, name: &str, input: &str) -> Value {
    let q = format!(
        r#"mutation {{ createReport(name: {name:?}, input: {input}) {{ id name createdAt createdBy
             input {{ metrics dimensions range {{ from to }} filter {{ agencyId agentId carrierId lineOfBusiness }}
                      orderBy {{ metric dimension descending }} limit }} }} }}"#
    );
    data(app, Auth::Bearer(writer(tenant)), &q).await["createReport"].clone()
}

#[tokio::test]
async fn report_by_quarter_and_carrier_filtered_ordered_and_limited() {
    let app = TestApp::spawn().await;
    let q = format!(
        r#"{{ top: report(input: {{
                metrics: [GROSS_COMMISSION, POLICY_COUNT, AVERAGE_COMMISSION_RATE],
                dimensions: [QUARTER, CARRIER],
                range: {{from: "2024-01-01", to: "2025-04-01"}},
                filter: {{agencyId: "G1"}},
                orderBy: [{{metric: GROSS_COMMISSION}}],
                limit: 3 }}) {{ {REPORT_FIELDS} }}
              byCarrier: report(input: {{
                metrics: [GROSS_COMMISSION, AVERAGE_COMMISSION_RATE],
                dimensions: [QUARTER, CARRIER],
                range: {{from: "2024-01-01", to: "2025-04-01"}},
                filter: {{agencyId: "G1"}},
                orderBy: [{{dimension: CARRIER, descending: false}}, {{metric: AVERAGE_COMMISSION_RATE}}] }}) {{ rows {{ dimensions values {{ rate }} }} totalRows }}
              byYear: report(input: {{metrics: [GROSS_COMMISSION], dimensions: [YEAR],
                range: {{from: "2024-01-01", to: "2026-01-01"}} }}) {{ rows {{ dimensions values {{ amount }} }} }}
              total: report(input: {{metrics: [WRITTEN_PREMIUM, NEW_BUSINESS_COUNT],
                range: {{from: "2024-01-01", to: "2025-01-01"}}, filter: {{carrierId: "K1", lineOfBusiness: "auto"}} }}) {{ rows {{ dimensions values {{ amount count }} }} totalRows }}
              oneAgent: report(input: {{metrics: [WRITTEN_PREMIUM, AGENT_COMMISSION],
                range: {{from: "2024-01-01", to: "2025-01-01"}}, filter: {{carrierId: "K1", agentId: "A1"}} }}) {{ rows {{ values {{ amount }} }} }} }}"#
    );
    let d = data(&app, Auth::Key(&app.key_t1), &q).await;

    // Groups of G1 from 2024-01-01 to 2025-04-01 (commissions by transaction date, policies by effective date):
    //   2024-Q1 K1: C1 120.00 + C5 0.00 (override)   = 120.00; P1 → 1 policy; rate 120.00 / 1000.00 = 0.12
    //   2024-Q1 K2: C2 225.00                          = 225.00; P2 → 1;        rate 225.00 / 1500.00 = 0.15
    //   2024-Q2 K2: C3 chargeback                      = -168.75; no policy → 0; no new/renewal row → rate null
    //   2025-Q1 K1: C6 110.00                          = 110.00; P4 → 1;        rate 110.00 / 1100.00 = 0.1
    // By gross commission descending, first 3 of 4.
    assert_eq!(
        d["top"],
        json!({
            "columns": [
                {"name": "quarter", "kind": "DIMENSION", "dimension": "QUARTER", "metric": null},
                {"name": "carrier", "kind": "DIMENSION", "dimension": "CARRIER", "metric": null},
                {"name": "gross_commission", "kind": "MONEY", "dimension": null, "metric": "GROSS_COMMISSION"},
                {"name": "policy_count", "kind": "COUNT", "dimension": null, "metric": "POLICY_COUNT"},
                {"name": "average_commission_rate", "kind": "RATE", "dimension": null, "metric": "AVERAGE_COMMISSION_RATE"}],
            "rows": [
                {"dimensions": ["2024-Q1", "K2"], "values": [money("225.00"), count(1), rate(Some(0.15))]},
                {"dimensions": ["2024-Q1", "K1"], "values": [money("120.00"), count(1), rate(Some(0.12))]},
                {"dimensions": ["2025-Q1", "K1"], "values": [money("110.00"), count(1), rate(Some(0.1))]}],
            "totalRows": 4})
    );
    // Carrier ascending, then rate descending with the null rate last: K1 0.12, 0.1; K2 0.15, null.
    assert_eq!(
        d["byCarrier"],
        json!({"rows": [
            {"dimensions": ["2024-Q1", "K1"], "values": [{"rate": null}, {"rate": 0.12}]},
            {"dimensions": ["2025-Q1", "K1"], "values": [{"rate": null}, {"rate": 0.1}]},
            {"dimensions": ["2024-Q1", "K2"], "values": [{"rate": null}, {"rate": 0.15}]},
            {"dimensions": ["2024-Q2", "K2"], "values": [{"rate": null}, {"rate": null}]}],
            "totalRows": 4})
    );
    // Whole tenant by year: 2024 = 120.00 + 225.00 - 168.75 + 96.00 + 0.00 = 272.25; 2025 = C6 110.00.
    assert_eq!(
        d["byYear"]["rows"],
        json!([{"dimensions": ["2024"], "values": [{"amount": "272.25"}]},
               {"dimensions": ["2025"], "values": [{"amount": "110.00"}]}])
    );
    // No dimensions: one row. K1 auto policies effective in 2024: P1 1000.00 + P3 800.00, both new business.
    assert_eq!(
        d["total"],
        json!({"rows": [{"dimensions": [], "values": [{"amount": "1800.00", "count": null}, {"amount": null, "count": 2}]}],
               "totalRows": 1})
    );
    // K1 and A1 in 2024: premium P1 1000.00; agent commission C1 48.00 (C5's 3.60 is M1's).
    assert_eq!(d["oneAgent"]["rows"], json!([{"values": [{"amount": "1000.00"}, {"amount": "48.00"}]}]));
}

#[tokio::test]
async fn saved_reports_are_created_listed_run_downloaded_and_deleted() {
    let app = TestApp::spawn().await;
    let list = "{ savedReports { id name } }";
    assert_eq!(data(&app, Auth::Key(&app.key_t1), list).await, json!({"savedReports": []}));

    let saved = create(&app, "t1", "Quarterly by carrier", INPUT).await;
    let id = saved["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rpt_") && id.len() == 20, "{id}");
    assert!(saved["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(saved["createdBy"], "user@t1");
    assert_eq!(
        saved["input"],
        json!({"metrics": ["GROSS_COMMISSION", "POLICY_COUNT", "AVERAGE_COMMISSION_RATE"], "dimensions": ["QUARTER", "CARRIER"],
               "range": {"from": "2024-01-01", "to": "2025-04-01"},
               "filter": {"agencyId": "G1", "agentId": null, "carrierId": null, "lineOfBusiness": null},
               "orderBy": [{"metric": "GROSS_COMMISSION", "dimension": null, "descending": true}], "limit": null})
    );
    // Stored in the lake, per tenant.
    let lake = app.lake.lake();
    let file = lake.child(&format!("_reports/t1/{id}.json"));
    let stored: Value = serde_json::from_slice(&lake.store.get(&file).await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!((stored["tenant_id"].as_str(), stored["name"].as_str()), (Some("t1"), Some("Quarterly by carrier")));

    // Any reader of the tenant sees it (the list is not served from the result cache).
    let one = json!({"id": id, "name": "Quarterly by carrier"});
    assert_eq!(data(&app, Auth::Key(&app.key_t1), list).await, json!({"savedReports": [one]}));
    let q = format!(r#"{{ savedReport(id: "{id}") {{ id name input {{ limit }} }} }}"#);
    assert_eq!(
        data(&app, Auth::Key(&app.key_t1), &q).await,
        json!({"savedReport": {"id": id, "name": "Quarterly by carrier", "input": {"limit": null}}})
    );

    // Run: all 4 groups (see the first test), by gross commission descending.
    let q = format!(
        r#"{{ runSavedReport(id: "{id}") {{ rows {{ dimensions values {{ amount count rate }} }} totalRows }} }}"#
    );
    assert_eq!(
        data(&app, Auth::Key(&app.key_t1), &q).await["runSavedReport"],
        json!({"rows": [
            {"dimensions": ["2024-Q1", "K2"], "values": [money("225.00"), count(1), rate(Some(0.15))]},
            {"dimensions": ["2024-Q1", "K1"], "values": [money("120.00"), count(1), rate(Some(0.12))]},
            {"dimensions": ["2025-Q1", "K1"], "values": [money("110.00"), count(1), rate(Some(0.1))]},
            {"dimensions": ["2024-Q2", "K2"], "values": [money("-168.75"), count(0), rate(None)]}],
            "totalRows": 4})
    );

    // CSV: money as exact decimals, the undefined rate as an empty cell.
    let csv = download(&app, Auth::Key(&app.key_t1), &format!("/reports/{id}.csv")).await;
    assert_eq!((csv.status, csv.content_type.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(csv.total_rows.as_deref(), Some("4"));
    assert_eq!(
        std::str::from_utf8(&csv.body).unwrap(),
        "quarter,carrier,gross_commission,policy_count,average_commission_rate\n\
         2024-Q1,K2,225.00,1,0.15\n\
         2024-Q1,K1,120.00,1,0.12\n\
         2025-Q1,K1,110.00,1,0.1\n\
         2024-Q2,K2,-168.75,0,\n"
    );

    // Parquet, with a bearer token this time: money is Decimal128(38, 2), never a float.
    let pq = download(&app, Auth::Bearer(TestApp::token("t1", &["analytics:read"])), &format!("/reports/{id}.parquet"))
        .await;
    assert_eq!((pq.status, pq.content_type.as_str()), (200, "application/vnd.apache.parquet"));
    let batches: Vec<_> =
        ParquetRecordBatchReaderBuilder::try_new(pq.body).unwrap().build().unwrap().collect::<Result<_, _>>().unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let schema = batch.schema();
    let types: Vec<(&str, &DataType)> = schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
    assert_eq!(
        types,
        vec![
            ("quarter", &DataType::Utf8),
            ("carrier", &DataType::Utf8),
            ("gross_commission", &DataType::Decimal128(38, 2)),
            ("policy_count", &DataType::Int64),
            ("average_commission_rate", &DataType::Float64)
        ]
    );
    let strings =
        |i: usize| batch.column(i).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(strings(0), ["2024-Q1", "2024-Q1", "2025-Q1", "2024-Q2"]);
    assert_eq!(strings(1), ["K2", "K1", "K1", "K2"]);
    let gross = batch.column(2).as_primitive::<Decimal128Type>();
    // Cents: 225.00, 120.00, 110.00, -168.75.
    assert_eq!(gross.values().to_vec(), vec![22500i128, 12000, 11000, -16875]);
    assert_eq!(gross.value_as_string(3), "-168.75");
    assert_eq!(batch.column(3).as_primitive::<Int64Type>().values().to_vec(), vec![1i64, 1, 1, 0]);
    let rates: Vec<Option<f64>> = batch.column(4).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(rates, vec![Some(0.15), Some(0.12), Some(0.1), None]);

    // Delete; afterwards the id is unknown everywhere.
    let del = format!(r#"mutation {{ deleteReport(id: "{id}") }}"#);
    assert_eq!(data(&app, Auth::Bearer(writer("t1")), &del).await, json!({"deleteReport": true}));
    assert!(matches!(lake.store.head(&file).await, Err(object_store::Error::NotFound { .. })));
    assert_eq!(data(&app, Auth::Key(&app.key_t1), list).await, json!({"savedReports": []}));
    let q = format!(r#"{{ savedReport(id: "{id}") {{ id }} }}"#);
    assert_eq!(data(&app, Auth::Key(&app.key_t1), &q).await, json!({"savedReport": null}));
    let q = format!(r#"{{ runSavedReport(id: "{id}") {{ totalRows }} }}"#);
    assert_eq!(code(&gql(&app, Auth::Key(&app.key_t1), &q, json!({})).await), "NOT_FOUND");
    assert_eq!(code(&gql(&app, Auth::Bearer(writer("t1")), &del, json!({})).await), "NOT_FOUND");
    let gone = download(&app, Auth::Key(&app.key_t1), &format!("/reports/{id}.csv")).await;
    assert_eq!((gone.status, code(&json_of(&gone)).as_str()), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn a_tenant_never_sees_runs_downloads_or_deletes_another_tenants_report() {
    let app = TestApp::spawn().await;
    let id = create(&app, "t1", "Mine", INPUT).await["id"].as_str().unwrap().to_string();
    let t2 = || Auth::Bearer(writer("t2"));

    assert_eq!(data(&app, t2(), "{ savedReports { id } }").await, json!({"savedReports": []}));
    let q = format!(r#"{{ savedReport(id: "{id}") {{ id }} }}"#);
    assert_eq!(data(&app, t2(), &q).await, json!({"savedReport": null}));
    let q = format!(r#"{{ runSavedReport(id: "{id}") {{ totalRows }} }}"#);
    assert_eq!(code(&gql(&app, t2(), &q, json!({})).await), "NOT_FOUND");
    let q = format!(r#"mutation {{ deleteReport(id: "{id}") }}"#);
    assert_eq!(code(&gql(&app, t2(), &q, json!({})).await), "NOT_FOUND");
    for ext in ["csv", "parquet"] {
        let d = download(&app, t2(), &format!("/reports/{id}.{ext}")).await;
        assert_eq!((d.status, code(&json_of(&d)).as_str()), (404, "NOT_FOUND"), "{ext}");
    }

    // t2's own report holds t2's figures only (D1: 1000.00 in 2024) and stays out of t1's list.
    let own =
        create(&app, "t2", "Theirs", r#"{metrics: [GROSS_COMMISSION], range: {from: "2024-01-01", to: "2025-01-01"}}"#)
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
    let d = download(&app, t2(), &format!("/reports/{own}.csv")).await;
    assert_eq!((d.status, std::str::from_utf8(&d.body).unwrap()), (200, "gross_commission\n1000.00\n"));
    let d = download(&app, Auth::Key(&app.key_t1), &format!("/reports/{own}.csv")).await;
    assert_eq!(d.status, 404);
    assert_eq!(
        data(&app, Auth::Key(&app.key_t1), "{ savedReports { id } }").await,
        json!({"savedReports": [{"id": id}]})
    );

    // t1's report is untouched by t2's attempts.
    let d = download(&app, Auth::Key(&app.key_t1), &format!("/reports/{id}.csv")).await;
    assert_eq!((d.status, d.total_rows.as_deref()), (200, Some("4")));
}

#[tokio::test]
async fn writes_need_reports_write_and_downloads_need_the_graphql_credentials() {
    let app = TestApp::spawn().await;
    // The API key only has analytics:read.
    let q = format!(r#"mutation {{ createReport(name: "x", input: {INPUT}) {{ id }} }}"#);
    let body = gql(&app, Auth::Key(&app.key_t1), &q, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let lake = app.lake.lake();
    let reports: Vec<_> =
        futures::TryStreamExt::try_collect(lake.store.list(Some(&lake.child("_reports")))).await.unwrap();
    assert!(reports.is_empty(), "{reports:?}");
    let id = create(&app, "t1", "Mine", INPUT).await["id"].as_str().unwrap().to_string();
    let del = format!(r#"mutation {{ deleteReport(id: "{id}") }}"#);
    assert_eq!(code(&gql(&app, Auth::Key(&app.key_t1), &del, json!({})).await), "FORBIDDEN");
    let read_only = TestApp::token("t1", &["analytics:read"]);
    assert_eq!(code(&gql(&app, Auth::Bearer(read_only), &del, json!({})).await), "FORBIDDEN");
    assert_eq!(
        data(&app, Auth::Key(&app.key_t1), "{ savedReports { id } }").await,
        json!({"savedReports": [{"id": id}]})
    );

    let path = format!("/reports/{id}.csv");
    let d = download(&app, Auth::None, &path).await;
    assert_eq!((d.status, code(&json_of(&d)).as_str()), (401, "UNAUTHENTICATED"));
    let d = download(&app, Auth::Key("cipk_test_0123456789abcdefghij0123456789ab"), &path).await;
    assert_eq!((d.status, code(&json_of(&d)).as_str()), (401, "UNAUTHENTICATED"));
    let d = download(&app, Auth::Bearer(TestApp::token("t1", &["reports:write"])), &path).await;
    assert_eq!((d.status, code(&json_of(&d)).as_str()), (403, "FORBIDDEN"));
    for path in [
        format!("/reports/{id}.xlsx"),
        format!("/reports/{id}"),
        "/reports/..%2F_keys.csv".into(),
        "/reports/nope.parquet".into(),
    ] {
        let d = download(&app, Auth::Key(&app.key_t1), &path).await;
        assert_eq!((d.status, code(&json_of(&d)).as_str()), (404, "NOT_FOUND"), "{path}");
    }
}

#[tokio::test]
async fn bad_report_inputs_answer_bad_input() {
    let app = TestApp::spawn().await;
    let base = json!({"metrics": ["GROSS_COMMISSION"], "range": {"from": "2024-01-01", "to": "2025-01-01"}});
    let with = |patch: Value| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        v
    };
    let all_metrics = json!([
        "GROSS_COMMISSION",
        "AGENT_COMMISSION",
        "WRITTEN_PREMIUM",
        "POLICY_COUNT",
        "NEW_BUSINESS_COUNT",
        "RENEWAL_RATE",
        "CANCELLATION_RATE",
        "AVERAGE_COMMISSION_RATE"
    ]);
    let mut nine = all_metrics.as_array().unwrap().clone();
    nine.push(json!("GROSS_COMMISSION"));
    let cases = [
        ("no metric", with(json!({"metrics": []}))),
        ("nine metrics", with(json!({"metrics": nine}))),
        ("a metric twice", with(json!({"metrics": ["POLICY_COUNT", "POLICY_COUNT"]}))),
        ("five dimensions", with(json!({"dimensions": ["AGENCY", "AGENT", "CARRIER", "LINE_OF_BUSINESS", "YEAR"]}))),
        ("a dimension twice", with(json!({"dimensions": ["AGENT", "AGENT"]}))),
        ("an unknown dimension", with(json!({"dimensions": ["WEEK"]}))),
        ("a reversed range", with(json!({"range": {"from": "2025-01-01", "to": "2024-01-01"}}))),
        ("a range over 100 years", with(json!({"range": {"from": "1900-01-01", "to": "2000-01-02"}}))),
        ("a bad date", with(json!({"range": {"from": "2024-02-30", "to": "2025-01-01"}}))),
        ("limit 0", with(json!({"limit": 0}))),
        ("limit over 100000", with(json!({"limit": 100_001}))),
        ("an order by nothing", with(json!({"orderBy": [{"descending": false}]}))),
        (
            "an order by two columns",
            with(json!({"dimensions": ["AGENT"], "orderBy": [{"metric": "GROSS_COMMISSION", "dimension": "AGENT"}]})),
        ),
        ("an order by a metric not in the report", with(json!({"orderBy": [{"metric": "POLICY_COUNT"}]}))),
        ("an order by a dimension not in the report", with(json!({"orderBy": [{"dimension": "AGENT"}]}))),
        (
            "an order by one column twice",
            with(
                json!({"orderBy": [{"metric": "GROSS_COMMISSION"}, {"metric": "GROSS_COMMISSION", "descending": false}]}),
            ),
        ),
        ("an empty filter id", with(json!({"filter": {"agencyId": ""}}))),
    ];
    for (what, input) in cases {
        let body = gql(
            &app,
            Auth::Key(&app.key_t1),
            "query($i: ReportInput!) { report(input: $i) { totalRows } }",
            json!({"i": input}),
        )
        .await;
        assert_eq!(code(&body), "BAD_INPUT", "{what}: {body}");
        assert!(!body.to_string().contains("DataFusion"), "{what}: {body}");
        // Saving validates the same way.
        let body = gql(
            &app,
            Auth::Bearer(writer("t1")),
            "mutation($i: ReportInput!) { createReport(name: \"r\", input: $i) { id } }",
            json!({"i": input}),
        )
        .await;
        assert_eq!(code(&body), "BAD_INPUT", "save {what}: {body}");
    }
    for name in ["", "   ", &"x".repeat(201)] {
        let body = gql(
            &app,
            Auth::Bearer(writer("t1")),
            "mutation($n: String!, $i: ReportInput!) { createReport(name: $n, input: $i) { id } }",
            json!({"n": name, "i": base}),
        )
        .await;
        assert_eq!(code(&body), "BAD_INPUT", "name {name:?}: {body}");
    }
    // Nothing was saved.
    assert_eq!(data(&app, Auth::Key(&app.key_t1), "{ savedReports { id } }").await, json!({"savedReports": []}));
    // The limits themselves are accepted: 8 metrics × 4 dimensions, limit 100000.
    let ok = with(
        json!({"metrics": all_metrics, "dimensions": ["AGENCY", "CARRIER", "LINE_OF_BUSINESS", "MONTH"], "limit": 100_000}),
    );
    let body = gql(
        &app,
        Auth::Key(&app.key_t1),
        "query($i: ReportInput!) { report(input: $i) { totalRows } }",
        json!({"i": ok}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
}
