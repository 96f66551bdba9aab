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
