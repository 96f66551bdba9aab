//! The monthly commission rollup built at publish time answers exactly what
//! the raw facts answer.

use chrono::NaiveDate;
use cip::query::metrics::{self, COMMISSION_ROLLUP, DateRange, Dimension, Filters, Metric, RENEWAL_ROLLUP};
use cip::query::tables::{Scope, register_snapshot};
use datafusion::prelude::SessionContext;

use crate::helpers::TestLake;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn rollup_and_raw_facts_give_identical_figures() {
    let lake = TestLake::new();
    cip::generate::generate(&cip::generate::GenerateOptions {
        out: lake.landing_path(),
        truth: lake.dir.path().join("truth"),
        policies: 3_000,
        seed: 9,
        tenants: 2,
        format: cip::generate::Format::Csv,
        bad_row_rate: 0.0,
        start: d("2021-01-01"),
        end: d("2026-01-01"),
    })
    .unwrap();
    let report = cip::pipelines::batch::ingest(&lake.landing(), &lake.lake(), &Default::default()).await.unwrap();
    let manifest = lake.latest().await.unwrap();
    // One rollup file per tenant, far fewer rows than the facts.
    let tenants = manifest.tenants();
    assert_eq!(manifest.files(COMMISSION_ROLLUP).len(), tenants.len());
    assert!(manifest.rows(COMMISSION_ROLLUP) < manifest.rows("commissions"), "{report:?}");

    let tenant = tenants[0].clone();
    let with = SessionContext::new();
    register_snapshot(&with, &lake.lake(), &manifest, &Scope::Tenant(tenant.clone())).await.unwrap();
    assert_eq!(manifest.files(RENEWAL_ROLLUP).len(), tenants.len());
    assert!(manifest.rows(RENEWAL_ROLLUP) < manifest.rows("policies"));
    let mut facts_only = manifest.clone();
    facts_only.tables.remove(COMMISSION_ROLLUP);
    facts_only.tables.remove(RENEWAL_ROLLUP);
    let without = SessionContext::new();
    register_snapshot(&without, &lake.lake(), &facts_only, &Scope::Tenant(tenant)).await.unwrap();
    assert!(with.table_exist(COMMISSION_ROLLUP).unwrap());
    assert!(!without.table_exist(COMMISSION_ROLLUP).unwrap());

    let range = DateRange::new(d("2023-01-01"), d("2025-07-01"));
    assert!(metrics::fits_rollup(&range));
    let commission_metrics =
        [Metric::GrossCommission, Metric::AgentCommission, Metric::AverageCommissionRate, Metric::RenewalRate];
    let filters = Filters { line_of_business: Some("auto".into()), ..Default::default() };
    for (dims, filters) in [
        (vec![], Filters::default()),
        (vec![Dimension::Agency, Dimension::Month], Filters::default()),
        (vec![Dimension::Agent], Filters::default()),
        (vec![Dimension::Carrier, Dimension::Quarter], filters.clone()),
        (vec![Dimension::LineOfBusiness, Dimension::Year], Filters::default()),
    ] {
        let before = metrics::rollup_reads();
        let a = metrics::compute(&with, &commission_metrics, &range, &dims, &filters).await.unwrap();
        assert!(metrics::rollup_reads() > before, "{dims:?} must read the rollup");
        let b = metrics::compute(&without, &commission_metrics, &range, &dims, &filters).await.unwrap();
        assert!(!a.is_empty());
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{dims:?}");
    }
    // A range that is not whole months is answered from the facts, and still agrees.
    let partial = DateRange::new(d("2024-02-10"), d("2024-11-20"));
    assert!(!metrics::fits_rollup(&partial));
    let a = metrics::compute(&with, &commission_metrics, &partial, &[Dimension::Agency], &Filters::default())
        .await
        .unwrap();
    let b = metrics::compute(&without, &commission_metrics, &partial, &[Dimension::Agency], &Filters::default())
        .await
        .unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
