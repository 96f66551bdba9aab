//! The GraphQL schema executed directly on a tenant view (no HTTP), to
//! count what resolvers cost.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use cip::graphql::loaders::PerformanceLoader;
use cip::graphql::{ShapeLimits, build_schema};
use cip::lake::snapshot;
use cip::pipelines::batch::{IngestOptions, ingest};
use cip::query::metrics::queries_run_in;
use cip::query::view::{SessionLimits, TenantView};
use serde_json::json;

use crate::helpers::TestLake;
use crate::serve::BOOK;

async fn t1_view() -> (TestLake, Arc<TenantView>) {
    let lake = TestLake::new();
    for (path, body) in BOOK {
        lake.land(path, body);
    }
    ingest(&lake.landing(), &lake.lake(), &IngestOptions::default()).await.unwrap();
    let manifest = snapshot::latest(&lake.lake()).await.unwrap().unwrap();
    let view = TenantView::open(&lake.lake(), &manifest, "t1", SessionLimits::default()).await.unwrap();
    (lake, Arc::new(view))
}

/// Run `query` as t1; returns the data and the engine queries it cost.
async fn run(view: &Arc<TenantView>, query: &str) -> (serde_json::Value, u64) {
    let schema = build_schema(ShapeLimits::default());
    let before = queries_run_in(&view.session).unwrap();
    let loader = DataLoader::new(PerformanceLoader { view: view.clone() }, tokio::spawn);
    let resp = schema.execute(async_graphql::Request::new(query).data(view.clone()).data(loader)).await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
    let after = queries_run_in(&view.session).unwrap();
    (resp.data.into_json().unwrap(), after - before)
}

#[tokio::test]
async fn performance_of_any_number_of_agents_costs_one_query_per_metric_family() {
    let (_lake, view) = t1_view().await;
    let range = r#"{from: "2024-01-01", to: "2025-01-01"}"#;
    let one = format!(
        r#"{{ agency(id: "G2") {{ agents {{ performance(range: {range}) {{ grossCommission renewalRate }} }} }} }}"#
    );
    let all = format!(
        r#"{{ agencies {{ performance(range: {range}) {{ grossCommission }} agents {{ id performance(range: {range}) {{ grossCommission policyCount renewalRate cancellationRate }} }} }} }}"#
    );
    let (data, cost_one) = run(&view, &one).await;
    assert_eq!(
        data,
        json!({"agency": {"agents": [{"performance": {"grossCommission": "96.00", "renewalRate": null}}]}})
    );
    let (data, cost_all) = run(&view, &all).await;
    assert_eq!(data["agencies"][0]["agents"].as_array().unwrap().len(), 3);
    // All four agents' performance: one query per family (commission, policy,
    // renewal, cancellation), whether one agent is asked for or all of them.
    assert_eq!(cost_one, 4);
    // Plus the same four for the agencies' own performance.
    assert_eq!(cost_all, 8);
}

#[tokio::test]
async fn depth_and_complexity_limits_refuse_oversized_queries() {
    let (_lake, view) = t1_view().await;
    let schema = build_schema(ShapeLimits { max_depth: 3, max_complexity: 2000 });
    let deep = "{ agencies { agents { agency { agents { id } } } } }";
    let resp = schema.execute(async_graphql::Request::new(deep).data(view.clone())).await;
    assert_eq!(resp.errors.len(), 1);
    assert_eq!(resp.errors[0].message, "Query is nested too deep.");
    let schema = build_schema(ShapeLimits { max_depth: 20, max_complexity: 5 });
    let wide = "{ agencies { id name state agents { id name role } } }";
    let resp = schema.execute(async_graphql::Request::new(wide).data(view)).await;
    assert_eq!(resp.errors[0].message, "Query is too complex.");
}

/// Quartiles by linear interpolation, written out again here.
fn quartiles_by_hand(mut xs: Vec<rust_decimal::Decimal>) -> Vec<String> {
    xs.sort();
    [1, 2, 3]
        .iter()
        .map(|q| {
            let pos = rust_decimal::Decimal::from(q * (xs.len() as i64 - 1)) / rust_decimal::Decimal::from(4);
            let lo = pos.floor();
            let i = usize::try_from(lo).unwrap();
            let next = xs[(i + 1).min(xs.len() - 1)];
            format!("{:.2}", (xs[i] + (next - xs[i]) * (pos - lo)).round_dp(2))
        })
        .collect()
}

async fn industry_lake(tenants: usize) -> (TestLake, cip::lake::Manifest) {
    let lake = TestLake::new();
    cip::generate::generate(&cip::generate::GenerateOptions {
        out: lake.landing_path(),
        truth: lake.dir.path().join("truth"),
        policies: 4_000,
        seed: 5,
        tenants,
        format: cip::generate::Format::Csv,
        bad_row_rate: 0.0,
        start: chrono::NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
        end: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    })
    .unwrap();
    ingest(&lake.landing(), &lake.lake(), &IngestOptions::default()).await.unwrap();
    let manifest = snapshot::latest(&lake.lake()).await.unwrap().unwrap();
    (lake, manifest)
}

async fn agency_benchmark(
    lake: &TestLake,
    manifest: &cip::lake::Manifest,
    tenant: &str,
    agency: &str,
) -> serde_json::Value {
    let view = Arc::new(TenantView::open(&lake.lake(), manifest, tenant, SessionLimits::default()).await.unwrap());
    let industry = Arc::new(cip::query::industry::Industry::new(
        lake.lake(),
        Arc::new(manifest.clone()),
        SessionLimits::default(),
    ));
    let q = format!(
        r#"{{ benchmark(agencyId: "{agency}", range: {{from: "2024-01-01", to: "2025-01-01"}}) {{
              industry {{ metric lineOfBusiness contributingTenants available p25 {{ amount }} median {{ amount }} p75 {{ amount }} }} }} }}"#
    );
    let schema = build_schema(ShapeLimits::default());
    let resp = schema.execute(async_graphql::Request::new(q).data(view).data(industry)).await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
    resp.data.into_json().unwrap()
}

#[tokio::test]
async fn industry_quartiles_match_a_direct_cross_tenant_computation() {
    let (lake, manifest) = industry_lake(6).await;
    // Agency-level gross commission of 2024 for every tenant, straight from the tables.
    let sql = "select c.tenant_id, p.agency_id, sum(c.gross_commission) as gross
               from commissions c join policies p on c.tenant_id = p.tenant_id and c.policy_id = p.policy_id
               where c.transaction_date >= date '2024-01-01' and c.transaction_date < date '2025-01-01'
               group by c.tenant_id, p.agency_id";
    let mut gross = Vec::new();
    let mut tenants = std::collections::BTreeSet::new();
    let mut some_agency = None;
    for b in crate::helpers::sql_at(&lake.lake(), &manifest, cip::query::tables::Scope::AllTenants, sql).await {
        use arrow::array::AsArray;
        let t = b.column(0).as_string::<i32>();
        let a = b.column(1).as_string::<i32>();
        let g = b.column(2).as_primitive::<arrow::datatypes::Decimal128Type>();
        for i in 0..b.num_rows() {
            tenants.insert(t.value(i).to_string());
            some_agency.get_or_insert((t.value(i).to_string(), a.value(i).to_string()));
            gross.push(rust_decimal::Decimal::from_i128_with_scale(g.value(i), 2));
        }
    }
    assert_eq!(tenants.len(), 6);
    let expected = quartiles_by_hand(gross);
    let (tenant, agency) = some_agency.unwrap();
    let data = agency_benchmark(&lake, &manifest, &tenant, &agency).await;
    let entry = data["benchmark"]["industry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == "GROSS_COMMISSION" && e["lineOfBusiness"].is_null())
        .unwrap()
        .clone();
    assert_eq!(entry["contributingTenants"], 6);
    assert_eq!(entry["available"], true);
    let got: Vec<String> =
        ["p25", "median", "p75"].iter().map(|k| entry[k]["amount"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn industry_figures_need_five_tenants() {
    let (lake, manifest) = industry_lake(4).await;
    let tenant = manifest.tenants()[0].clone();
    let view = TenantView::open(&lake.lake(), &manifest, &tenant, SessionLimits::default()).await.unwrap();
    let agency = view.directory().await.unwrap().agencies[0].id.clone();
    let data = agency_benchmark(&lake, &manifest, &tenant, &agency).await;
    let industry = data["benchmark"]["industry"].as_array().unwrap();
    assert!(!industry.is_empty());
    for e in industry {
        assert_eq!(e["available"], false, "{e}");
        assert!(e["median"].is_null() && e["p25"].is_null() && e["p75"].is_null());
        assert!(e["contributingTenants"].as_i64().unwrap() <= 4);
    }
}
