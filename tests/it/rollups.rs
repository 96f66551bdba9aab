//! The monthly commission rollups built at publish time answer exactly what
//! the raw facts answer, each query from the narrowest rollup that can.

use chrono::NaiveDate;
use cip::lake::catalog::{COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER, ROLLUPS};
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
    // The narrow rollups: one file per tenant, fewer rows than the full one
    // (on this small, sparse book only a third fewer for carriers).
    for narrow in [COMMISSIONS_MONTHLY_BY_AGENT, COMMISSIONS_MONTHLY_BY_CARRIER] {
        assert_eq!(manifest.files(narrow).len(), tenants.len());
        assert!(manifest.rows(narrow) < manifest.rows(COMMISSION_ROLLUP), "{narrow}");
    }
    let mut facts_only = manifest.clone();
    for rollup in ROLLUPS {
        facts_only.tables.remove(rollup);
    }
    let without = SessionContext::new();
    register_snapshot(&without, &lake.lake(), &facts_only, &Scope::Tenant(tenant)).await.unwrap();
    assert!(with.table_exist(COMMISSION_ROLLUP).unwrap());
    assert!(!without.table_exist(COMMISSION_ROLLUP).unwrap());

    let range = DateRange::new(d("2023-01-01"), d("2025-07-01"));
    assert!(metrics::fits_rollup(&range));
    let commission_metrics =
        [Metric::GrossCommission, Metric::AgentCommission, Metric::AverageCommissionRate, Metric::RenewalRate];
    let filters = Filters { line_of_business: Some("auto".into()), ..Default::default() };
    let agency = Filters { agency_id: Some("AGY-01".into()), ..Default::default() };
    let agent_and_line =
        Filters { agent_id: Some("AG-0001".into()), line_of_business: Some("auto".into()), ..Default::default() };
    for (dims, filters, rollup) in [
        (vec![], Filters::default(), COMMISSIONS_MONTHLY_BY_AGENT),
        (vec![Dimension::Agency, Dimension::Month], Filters::default(), COMMISSIONS_MONTHLY_BY_AGENT),
        (vec![Dimension::Agent], Filters::default(), COMMISSIONS_MONTHLY_BY_AGENT),
        (vec![Dimension::Agent, Dimension::Year], agency.clone(), COMMISSIONS_MONTHLY_BY_AGENT),
        (vec![Dimension::Carrier, Dimension::Quarter], filters.clone(), COMMISSIONS_MONTHLY_BY_CARRIER),
        (vec![Dimension::LineOfBusiness, Dimension::Year], Filters::default(), COMMISSIONS_MONTHLY_BY_CARRIER),
        (vec![Dimension::Carrier], agency.clone(), COMMISSION_ROLLUP),
        (vec![Dimension::Agency, Dimension::LineOfBusiness], Filters::default(), COMMISSION_ROLLUP),
        (vec![], agent_and_line, COMMISSION_ROLLUP),
    ] {
        assert_eq!(metrics::commission_rollups_for(&dims, &filters)[0], rollup, "{dims:?} {filters:?}");
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
