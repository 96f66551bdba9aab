//! The metrics layer on a small hand-made book whose every figure was worked
//! out by hand (tables below, arithmetic next to each assertion).
//!
//! Tenant t1 — agencies G1, G2; agents A1, A2 (G1, managed by M1), M1 (G1,
//! manager), A3, A4 (G2); carriers K1, K2; lines auto, home.
//!
//! Policies (t1):
//!
//! | id  | agency | agent | carrier | line | effective  | expiration | premium | cancelled  | renewal_of |
//! |-----|--------|-------|---------|------|------------|------------|---------|------------|------------|
//! | P0  | G1     | A1    | K1      | auto | 2022-01-01 | 2023-01-01 |  950.00 |            |            |
//! | P1  | G1     | A1    | K1      | auto | 2023-01-01 | 2024-01-01 | 1000.00 |            | P0         |
//! | P2  | G1     | A1    | K1      | auto | 2024-01-01 | 2025-01-01 | 1100.00 |            | P1         |
//! | P3  | G1     | A2    | K2      | home | 2023-02-15 | 2024-02-15 |  800.00 |            |            | lapsed
//! | P4  | G1     | A2    | K1      | home | 2024-02-01 | 2025-02-01 | 1200.00 | 2024-03-10 |            |
//! | P5  | G2     | A3    | K2      | auto | 2023-03-01 | 2024-03-01 |  600.00 |            |            |
//! | P6  | G2     | A3    | K2      | auto | 2024-03-01 | 2025-03-01 |  650.00 |            | P5         |
//! | P7  | G2     | A4    | K1      | home | 2023-06-01 | 2024-06-01 |  900.00 | 2023-12-01 |            | cancelled before expiry
//! | P8  | G2     | A4    | K2      | auto | 2024-03-20 | 2025-03-20 | 1000.00 |            |            |
//! | P9  | G1     | A1    | K2      | home | 2023-09-01 | 2024-09-01 |  700.00 |            |            | not yet expired
//! | P10 | G1     | M1    | K1      | auto | 2023-04-01 | 2024-04-01 |  400.00 |            |            | lapsed
//! | P11 | G2     | A3    | K1      | home | 2024-01-10 | 2025-01-10 |  300.00 |            |            |
//! | P12 | G1     | A2    | K1      | auto | 2024-04-05 | 2025-04-05 | 1500.00 |            |            |
//! | P13 | G2     | A4    | K1      | auto | 2023-07-01 | 2024-07-01 |  450.00 | 2024-01-20 |            |
//!
//! Commission rows (t1); agency and line are the policy's:
//!
//! | id  | policy | agency | agent | carrier | line | date       | kind       | premium  | gross   | agent  |
//! |-----|--------|--------|-------|---------|------|------------|------------|----------|---------|--------|
//! | C9  | P9     | G1     | A1    | K2      | home | 2023-09-05 | new        |   700.00 |   70.00 |  35.00 |
//! | C1  | P2     | G1     | A1    | K1      | auto | 2024-01-15 | renewal    |  1100.00 |  110.00 |  55.00 |
//! | C5  | P2     | G1     | M1    | K1      | auto | 2024-01-15 | override   |     0.00 |    0.00 |  11.00 |
//! | C7  | P11    | G2     | A3    | K1      | home | 2024-01-20 | new        |   300.00 |   45.00 |  18.00 |
//! | C2  | P4     | G1     | A2    | K1      | home | 2024-02-05 | new        |  1200.00 |  180.00 |  90.00 |
//! | C10 | P9     | G1     | A1    | K2      | home | 2024-03-01 | adjustment |     0.00 |   20.00 |  10.00 |
//! | C4  | P6     | G2     | A3    | K2      | auto | 2024-03-05 | renewal    |   650.00 |   65.00 |  26.00 |
//! | C11 | P6     | G2     | M1    | K2      | auto | 2024-03-05 | override   |     0.00 |    0.00 |  13.00 |
//! | C3  | P4     | G1     | A2    | K1      | home | 2024-03-12 | chargeback | -1000.00 | -150.00 | -75.00 |
//! | C6  | P8     | G2     | A4    | K2      | auto | 2024-03-25 | new        |  1000.00 |  110.00 |  44.00 |
//! | C8  | P12    | G1     | A2    | K1      | auto | 2024-04-10 | new        |  1500.00 |  150.00 |  75.00 |
//!
//! C11 pays manager M1 (agency G1) on a G2 policy: it counts for agency G2.
//!
//! Tenant t2 reuses the ids with huge amounts (P1 premium 99999.00, C1 gross
//! 9999.90) and has P20 renewing "P3": if any t2 row reached t1's figures,
//! the totals, or A2's lapsed renewal, would change.

use std::sync::Arc;

use chrono::NaiveDate;
use cip::pipelines::batch::{IngestOptions, ingest};
use cip::query::metrics::{
    DateRange, Dimension, Filters, Kpis, Metric, MetricValue, MetricsError, QueryCounter, Row, active_policies,
    competition_ranks, compute, kpis, queries_run_in,
};
use cip::query::tables::register_snapshot;
use datafusion::prelude::{SessionConfig, SessionContext};
use rust_decimal::Decimal;

use crate::helpers::{TestLake, tenant};

const AGENCIES: &str = "tenant_id,agency_id,name,state
t1,G1,North Agency,OH
t1,G2,South Agency,TX
t2,G1,Elsewhere Agency,CA
";

const AGENTS: &str = "tenant_id,agent_id,agency_id,name,role,manager_id,split_pct,override_pct,hire_date,status
t1,A1,G1,Ann Archer,producer,M1,0.5,,2020-01-06,active
t1,A2,G1,Bo Baker,producer,M1,0.5,,2021-03-01,active
t1,M1,G1,Mia Moss,manager,,,0.01,2015-05-05,active
t1,A3,G2,Cy Cole,producer,,0.4,,2019-09-09,active
t1,A4,G2,Di Dunn,producer,,0.44,,2022-02-02,active
t2,A1,G1,Other Agent,producer,,0.5,,2020-01-01,active
t2,A2,G1,Another Agent,producer,,0.5,,2020-01-01,active
";

const CARRIERS: &str = "tenant_id,carrier_id,name
t1,K1,Harbor Mutual
t1,K2,Plains Casualty
t2,K1,Far Away Insurance
";

const POLICIES: &str = "tenant_id,policy_id,policy_number,agency_id,agent_id,carrier_id,customer_id,line_of_business,effective_date,expiration_date,premium,status,cancellation_date,renewal_of
t1,P0,N-0,G1,A1,K1,U1,auto,2022-01-01,2023-01-01,950.00,expired,,
t1,P1,N-1,G1,A1,K1,U1,auto,2023-01-01,2024-01-01,1000.00,expired,,P0
t1,P2,N-2,G1,A1,K1,U1,auto,2024-01-01,2025-01-01,1100.00,active,,P1
t1,P3,N-3,G1,A2,K2,U2,home,2023-02-15,2024-02-15,800.00,expired,,
t1,P4,N-4,G1,A2,K1,U3,home,2024-02-01,2025-02-01,1200.00,cancelled,2024-03-10,
t1,P5,N-5,G2,A3,K2,U4,auto,2023-03-01,2024-03-01,600.00,expired,,
t1,P6,N-6,G2,A3,K2,U4,auto,2024-03-01,2025-03-01,650.00,active,,P5
t1,P7,N-7,G2,A4,K1,U5,home,2023-06-01,2024-06-01,900.00,cancelled,2023-12-01,
t1,P8,N-8,G2,A4,K2,U6,auto,2024-03-20,2025-03-20,1000.00,active,,
t1,P9,N-9,G1,A1,K2,U7,home,2023-09-01,2024-09-01,700.00,active,,
t1,P10,N-10,G1,M1,K1,U8,auto,2023-04-01,2024-04-01,400.00,expired,,
t1,P11,N-11,G2,A3,K1,U9,home,2024-01-10,2025-01-10,300.00,active,,
t1,P12,N-12,G1,A2,K1,U10,auto,2024-04-05,2025-04-05,1500.00,active,,
t1,P13,N-13,G2,A4,K1,U11,auto,2023-07-01,2024-07-01,450.00,cancelled,2024-01-20,
t2,P1,X-1,G1,A1,K1,V1,auto,2024-01-15,2025-01-15,99999.00,active,,
t2,P20,X-20,G1,A2,K1,V2,home,2024-02-15,2025-02-15,5000.00,active,,P3
";

const COMMISSIONS: &str = "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission,status,paid_date,statement_id
t1,C1,P2,A1,K1,2024-01-15,renewal,1100.00,0.10,110.00,55.00,55.00,paid,2024-02-10,S1
t1,C2,P4,A2,K1,2024-02-05,new,1200.00,0.15,180.00,90.00,90.00,paid,2024-03-10,S2
t1,C3,P4,A2,K1,2024-03-12,chargeback,-1000.00,0.15,-150.00,-75.00,-75.00,expected,,
t1,C4,P6,A3,K2,2024-03-05,renewal,650.00,0.10,65.00,26.00,39.00,expected,,
t1,C5,P2,M1,K1,2024-01-15,override,0,0.01,0,11.00,-11.00,paid,2024-02-10,S1
t1,C6,P8,A4,K2,2024-03-25,new,1000.00,0.11,110.00,44.00,66.00,expected,,
t1,C7,P11,A3,K1,2024-01-20,new,300.00,0.15,45.00,18.00,27.00,paid,2024-02-10,S1
t1,C8,P12,A2,K1,2024-04-10,new,1500.00,0.10,150.00,75.00,75.00,expected,,
t1,C9,P9,A1,K2,2023-09-05,new,700.00,0.10,70.00,35.00,35.00,paid,2023-10-01,S0
t1,C10,P9,A1,K2,2024-03-01,adjustment,0,0,20.00,10.00,10.00,expected,,
t1,C11,P6,M1,K2,2024-03-05,override,0,0.02,0.00,13.00,-13.00,expected,,
t2,C1,P1,A1,K1,2024-02-01,new,99999.00,0.10,9999.90,4999.95,4999.95,paid,2024-03-01,S9
";

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn range(from: &str, to: &str) -> DateRange {
    DateRange { from: date(from), to: date(to) }
}

fn money(s: &str) -> MetricValue {
    MetricValue::Money(s.parse::<Decimal>().unwrap())
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn count(n: i64) -> MetricValue {
    MetricValue::Count(n)
}

fn rate(r: f64) -> MetricValue {
    MetricValue::Rate(Some(r))
}

const NULL_RATE: MetricValue = MetricValue::Rate(None);

/// Rates are compared to 1e-12; money and counts exactly.
#[track_caller]
fn assert_rows(actual: &[Row], expected: &[(&[&str], &[MetricValue])]) {
    let render =
        |rows: &[Row]| rows.iter().map(|r| format!("{:?} {:?}", r.group, r.values)).collect::<Vec<_>>().join("\n");
    let msg = || format!("actual:\n{}", render(actual));
    assert_eq!(actual.len(), expected.len(), "{}", msg());
    for (row, (group, values)) in actual.iter().zip(expected) {
        assert_eq!(row.group, group.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{}", msg());
        assert_eq!(row.values.len(), values.len(), "{}", msg());
        for (a, e) in row.values.iter().zip(values.iter()) {
            let same = match (a, e) {
                (MetricValue::Rate(Some(a)), MetricValue::Rate(Some(e))) => (a - e).abs() < 1e-12,
                _ => a == e,
            };
            assert!(same, "group {:?}: got {a:?}, expected {e:?}\n{}", row.group, msg());
        }
    }
}

/// Landed and ingested once per test; sessions are scoped to one tenant and
/// carry a query counter.
struct Book {
    lake: TestLake,
}

impl Book {
    async fn new() -> Book {
        let lake = TestLake::new();
        lake.land("agencies/agencies.csv", AGENCIES);
        lake.land("agents/agents.csv", AGENTS);
        lake.land("carriers/carriers.csv", CARRIERS);
        lake.land("policies/policies.csv", POLICIES);
        lake.land("commissions/commissions.csv", COMMISSIONS);
        let report = ingest(&lake.landing(), &lake.lake(), &IngestOptions::default()).await.unwrap();
        assert_eq!(report.rows_rejected, 0, "{report:?}");
        assert_eq!(report.entities["policies"].landed, 16);
        assert_eq!(report.entities["commissions"].landed, 12);
        Book { lake }
    }

    async fn session(&self, t: &str) -> (SessionContext, Arc<QueryCounter>) {
        let counter = Arc::new(QueryCounter::default());
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_extension(counter.clone()));
        let manifest = self.lake.latest().await.unwrap();
        register_snapshot(&ctx, &self.lake.lake(), &manifest, &tenant(t)).await.unwrap();
        (ctx, counter)
    }
}

const Q1: (&str, &str) = ("2024-01-01", "2024-04-01");

fn q1() -> DateRange {
    range(Q1.0, Q1.1)
}

const COMMISSION_METRICS: [Metric; 3] =
    [Metric::GrossCommission, Metric::AgentCommission, Metric::AverageCommissionRate];

#[tokio::test]
async fn commission_performance_per_agency_agent_carrier_and_line() {
    let book = Book::new().await;
    let (ctx, _) = book.session("t1").await;
    let none = Filters::default();
    let q1 = q1();
    let run = |group_by: &'static [Dimension]| compute(&ctx, &COMMISSION_METRICS, &q1, group_by, &none);

    // Q1 rows: C1 C5 C7 C2 C10 C4 C11 C3 C6 (not C9 2023, not C8 April).
    // gross 110 + 0 + 45 + 180 + 20 + 65 + 0 - 150 + 110 = 380.00
    // agent  55 + 11 + 18 + 90 + 10 + 26 + 13 - 75 + 44 = 192.00
    // rate: new/renewal C1 C7 C2 C4 C6: (110+45+180+65+110) / (1100+300+1200+650+1000) = 510/4250 = 0.12
    assert_rows(&run(&[]).await.unwrap(), &[(&[], &[money("380.00"), money("192.00"), rate(0.12)])]);

    // Agency of the policy: G1 = C1 C5 C2 C10 C3, G2 = C7 C4 C11 C6.
    // G1 gross 110 + 0 + 180 + 20 - 150 = 160; agent 55 + 11 + 90 + 10 - 75 = 91; rate (110+180)/(1100+1200) = 290/2300
    // G2 gross 45 + 65 + 0 + 110 = 220; agent 18 + 26 + 13 + 44 = 101; rate (45+65+110)/(300+650+1000) = 220/1950
    // (M1 belongs to G1, but C11 is on G2's P6: its 13.00 counts for G2.)
    assert_rows(
        &run(&[Dimension::Agency]).await.unwrap(),
        &[
            (&["G1"], &[money("160.00"), money("91.00"), rate(290.0 / 2300.0)]),
            (&["G2"], &[money("220.00"), money("101.00"), rate(220.0 / 1950.0)]),
        ],
    );

    // A1: C1 + C10 = 110 + 20 = 130 (agent 55 + 10 = 65), rate 110/1100 (C10 is an adjustment)
    // A2: C2 + C3 = 180 - 150 = 30 (agent 90 - 75 = 15), rate 180/1200 (the chargeback is out)
    // A3: C7 + C4 = 45 + 65 = 110 (agent 18 + 26 = 44), rate 110/950
    // A4: C6 = 110 (agent 44), rate 110/1000
    // M1: overrides C5 + C11 = gross 0, agent 11 + 13 = 24, no new/renewal premium → null
    assert_rows(
        &run(&[Dimension::Agent]).await.unwrap(),
        &[
            (&["A1"], &[money("130.00"), money("65.00"), rate(0.1)]),
            (&["A2"], &[money("30.00"), money("15.00"), rate(0.15)]),
            (&["A3"], &[money("110.00"), money("44.00"), rate(110.0 / 950.0)]),
            (&["A4"], &[money("110.00"), money("44.00"), rate(0.11)]),
            (&["M1"], &[money("0.00"), money("24.00"), NULL_RATE]),
        ],
    );

    // K1: C1 C5 C7 C2 C3 = 110 + 0 + 45 + 180 - 150 = 185; agent 55 + 11 + 18 + 90 - 75 = 99; rate (110+45+180)/(1100+300+1200) = 335/2600
    // K2: C10 C4 C11 C6 = 20 + 65 + 0 + 110 = 195; agent 10 + 26 + 13 + 44 = 93; rate (65+110)/(650+1000) = 175/1650
    assert_rows(
        &run(&[Dimension::Carrier]).await.unwrap(),
        &[
            (&["K1"], &[money("185.00"), money("99.00"), rate(335.0 / 2600.0)]),
            (&["K2"], &[money("195.00"), money("93.00"), rate(175.0 / 1650.0)]),
        ],
    );

    // Line of the policy: auto = C1 C5 (P2) C4 C11 (P6) C6 (P8) = 110 + 0 + 65 + 0 + 110 = 285,
    //   agent 55 + 11 + 26 + 13 + 44 = 149, rate (110+65+110)/(1100+650+1000) = 285/2750
    // home = C7 (P11) C2 C3 (P4) C10 (P9) = 45 + 180 - 150 + 20 = 95, agent 18 + 90 - 75 + 10 = 43,
    //   rate (45+180)/(300+1200) = 0.15
    assert_rows(
        &run(&[Dimension::LineOfBusiness]).await.unwrap(),
        &[
            (&["auto"], &[money("285.00"), money("149.00"), rate(285.0 / 2750.0)]),
            (&["home"], &[money("95.00"), money("43.00"), rate(0.15)]),
        ],
    );

    // Two dimensions at once: agency × carrier.
    // G1/K1 = C1 C5 C2 C3 = 110 + 0 + 180 - 150 = 140 (agent 55 + 11 + 90 - 75 = 81); G1/K2 = C10 = 20 (10)
    // G2/K1 = C7 = 45 (18); G2/K2 = C4 C11 C6 = 65 + 0 + 110 = 175 (26 + 13 + 44 = 83)
    let rows = compute(
        &ctx,
        &[Metric::GrossCommission, Metric::AgentCommission],
        &q1,
        &[Dimension::Agency, Dimension::Carrier],
        &none,
    )
    .await
    .unwrap();
    assert_rows(
        &rows,
        &[
            (&["G1", "K1"], &[money("140.00"), money("81.00")]),
            (&["G1", "K2"], &[money("20.00"), money("10.00")]),
            (&["G2", "K1"], &[money("45.00"), money("18.00")]),
            (&["G2", "K2"], &[money("175.00"), money("83.00")]),
        ],
    );
}

#[tokio::test]
async fn every_metric_per_agent_costs_one_query_per_family() {
    let book = Book::new().await;
    let (ctx, counter) = book.session("t1").await;
    let before = counter.get();
    let rows = compute(&ctx, &Metric::ALL, &q1(), &[Dimension::Agent], &Filters::default()).await.unwrap();
    // 4 families (commission, policy, renewal, cancellation): 4 engine queries,
    // however many agents there are.
    assert_eq!(counter.get() - before, 4);
    assert_eq!(queries_run_in(&ctx), Some(counter.get()));

    // Order: gross, agent, written premium, policy count, new business,
    // renewal rate, cancellation rate, average commission rate.
    //
    // Policies effective in Q1: P2 (A1, 1100, renewal), P4 (A2, 1200), P6 (A3, 650, renewal),
    //   P8 (A4, 1000), P11 (A3, 300). A3: 650 + 300 = 950, 2 policies, 1 new.
    // Up for renewal in Q1 (expiring in [01-01, 04-01), not cancelled before): P1 (A1, renewed by P2),
    //   P3 (A2, lapsed), P5 (A3, renewed by P6). P10 expires 04-01: out. A4, M1: none → null.
    // Cancelled in Q1: P13 (A4, 01-20), P4 (A2, 03-10).
    // Active at 2024-01-01: P2 P9 (A1), P3 (A2), P5 (A3), P13 (A4), P10 (M1); P1 expires that day,
    //   P7 was cancelled 2023-12-01, P4/P11 not yet effective.
    //   A1 0/2, A2 1/1, A3 0/1, A4 1/1, M1 0/1.
    assert_rows(
        &rows,
        &[
            (
                &["A1"],
                &[
                    money("130.00"),
                    money("65.00"),
                    money("1100.00"),
                    count(1),
                    count(0),
                    rate(1.0),
                    rate(0.0),
                    rate(0.1),
                ],
            ),
            (
                &["A2"],
                &[
                    money("30.00"),
                    money("15.00"),
                    money("1200.00"),
                    count(1),
                    count(1),
                    rate(0.0),
                    rate(1.0),
                    rate(0.15),
                ],
            ),
            (
                &["A3"],
                &[
                    money("110.00"),
                    money("44.00"),
                    money("950.00"),
                    count(2),
                    count(1),
                    rate(1.0),
                    rate(0.0),
                    rate(110.0 / 950.0),
                ],
            ),
            (
                &["A4"],
                &[
                    money("110.00"),
                    money("44.00"),
                    money("1000.00"),
                    count(1),
                    count(1),
                    NULL_RATE,
                    rate(1.0),
                    rate(0.11),
                ],
            ),
            (
                &["M1"],
                &[money("0.00"), money("24.00"), money("0.00"), count(0), count(0), NULL_RATE, rate(0.0), NULL_RATE],
            ),
        ],
    );

    // Ranking by gross commission: A1 130, A2 30, A3 110, A4 110, M1 0 → 1, 4, 2, 2, 5.
    let gross: Vec<Decimal> = rows.iter().map(|r| r.values[0].as_money().unwrap()).collect();
    assert_eq!(competition_ranks(&gross), vec![1, 4, 2, 2, 5]);

    // Whole tenant, all metrics: still 4 queries.
    // written 1100 + 1200 + 650 + 1000 + 300 = 4250, 5 policies, 3 new (P4 P8 P11);
    // renewal 2 of 3 (P1 P5 of P1 P3 P5); cancellation 2 of 6 active at 01-01.
    let before = counter.get();
    let total = compute(&ctx, &Metric::ALL, &q1(), &[], &Filters::default()).await.unwrap();
    assert_eq!(counter.get() - before, 4);
    assert_rows(
        &total,
        &[(
            &[],
            &[
                money("380.00"),
                money("192.00"),
                money("4250.00"),
                count(5),
                count(3),
                rate(2.0 / 3.0),
                rate(2.0 / 6.0),
                rate(0.12),
            ],
        )],
    );

    // Per agency. G1: written P2 + P4 = 2300, 2, 1 new; renewal P1 renewed, P3 lapsed = 1/2;
    //   cancelled P4 over active P2 P3 P9 P10 = 1/4.
    // G2: written P6 + P8 + P11 = 1950, 3, 2 new; renewal P5 renewed (P7 cancelled before expiry is not
    //   up, and expires in June anyway) = 1/1; cancelled P13 over active P5 P13 = 1/2.
    let per_agency = compute(&ctx, &Metric::ALL, &q1(), &[Dimension::Agency], &Filters::default()).await.unwrap();
    assert_rows(
        &per_agency,
        &[
            (
                &["G1"],
                &[
                    money("160.00"),
                    money("91.00"),
                    money("2300.00"),
                    count(2),
                    count(1),
                    rate(0.5),
                    rate(0.25),
                    rate(290.0 / 2300.0),
                ],
            ),
            (
                &["G2"],
                &[
                    money("220.00"),
                    money("101.00"),
                    money("1950.00"),
                    count(3),
                    count(2),
                    rate(1.0),
                    rate(0.5),
                    rate(220.0 / 1950.0),
                ],
            ),
        ],
    );

    // Only the commission family asked for: 1 query.
    let before = counter.get();
    compute(&ctx, &COMMISSION_METRICS, &q1(), &[Dimension::Agent, Dimension::Month], &Filters::default())
        .await
        .unwrap();
    assert_eq!(counter.get() - before, 1);
}

#[tokio::test]
async fn renewal_rate_skips_cancelled_and_unexpired_policies() {
    let book = Book::new().await;
    let (ctx, _) = book.session("t1").await;
    let none = Filters::default();
    let h1 = range("2024-01-01", "2024-07-01");

    // Expiring in H1: P1 (01-01), P3 (02-15), P5 (03-01), P10 (04-01), P7 (06-01).
    // P7 was cancelled 2023-12-01, before its expiration: not up. P13 expires 07-01 (range is
    // half-open, and it was cancelled). P9 (09-01) and P2.. have not expired.
    // Up: P1 P3 P5 P10 = 4; renewed: P1 (by P2), P5 (by P6) = 2 → 0.5.
    // t2's P20 names "P3" in renewal_of, but t2's rows are not in t1's session: P3 stays lapsed.
    let rows = compute(&ctx, &[Metric::RenewalRate], &h1, &[], &none).await.unwrap();
    assert_rows(&rows, &[(&[], &[rate(0.5)])]);

    // Per agent of the expiring policy: A1 P1 1/1; A2 P3 0/1; A3 P5 1/1; M1 P10 0/1; A4 none up (P7) → no row.
    let rows = compute(&ctx, &[Metric::RenewalRate], &h1, &[Dimension::Agent], &none).await.unwrap();
    assert_rows(
        &rows,
        &[(&["A1"], &[rate(1.0)]), (&["A2"], &[rate(0.0)]), (&["A3"], &[rate(1.0)]), (&["M1"], &[rate(0.0)])],
    );

    // Per line: auto P1 P5 P10 → 2/3; home P3 → 0/1 (P7 not up).
    let rows = compute(&ctx, &[Metric::RenewalRate], &h1, &[Dimension::LineOfBusiness], &none).await.unwrap();
    assert_rows(&rows, &[(&["auto"], &[rate(2.0 / 3.0)]), (&["home"], &[rate(0.0)])]);

    // Bucketed by expiration month (a trend: every month of the range appears):
    // Jan P1 1/1, Feb P3 0/1, Mar P5 1/1, Apr P10 0/1, May none, Jun P7 not up → null.
    let rows = compute(&ctx, &[Metric::RenewalRate], &h1, &[Dimension::Month], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (&["2024-01"], &[rate(1.0)]),
            (&["2024-02"], &[rate(0.0)]),
            (&["2024-03"], &[rate(1.0)]),
            (&["2024-04"], &[rate(0.0)]),
            (&["2024-05"], &[NULL_RATE]),
            (&["2024-06"], &[NULL_RATE]),
        ],
    );

    // Moving the end past P9's expiration (2024-09-01) brings it in, unrenewed: 2 of 5.
    let rows = compute(&ctx, &[Metric::RenewalRate], &range("2024-01-01", "2024-09-02"), &[], &none).await.unwrap();
    assert_rows(&rows, &[(&[], &[rate(0.4)])]);
}

#[tokio::test]
async fn cancellation_rate_and_active_policies() {
    let book = Book::new().await;
    let (ctx, counter) = book.session("t1").await;
    let none = Filters::default();

    // Q1: cancelled P13 (01-20), P4 (03-10) = 2; active at 01-01 = P2 P3 P5 P9 P10 P13 = 6 → 1/3.
    let rows = compute(&ctx, &[Metric::CancellationRate], &q1(), &[], &none).await.unwrap();
    assert_rows(&rows, &[(&[], &[rate(2.0 / 6.0)])]);

    // Monthly, each month over the policies active at its first day:
    // Jan: P13 cancelled / active at 01-01 (6) = 1/6
    // Feb: none / active at 02-01: P2 P3 P4 P5 P9 P10 P11 (P13 cancelled 01-20) = 0/7
    // Mar: P4 / active at 03-01: P2 P4 P6 P9 P10 P11 (P3 expired 02-15, P5 03-01) = 1/6
    let rows = compute(&ctx, &[Metric::CancellationRate], &q1(), &[Dimension::Month], &none).await.unwrap();
    assert_rows(
        &rows,
        &[(&["2024-01"], &[rate(1.0 / 6.0)]), (&["2024-02"], &[rate(0.0)]), (&["2024-03"], &[rate(1.0 / 6.0)])],
    );
    // A range starting mid-month: [2024-01-15, 2024-02-15) → Jan part starts 01-15, Feb part 02-01.
    // Jan part: P13 (01-20) over active at 01-15: P2 P3 P5 P9 P10 P11 P13 = 1/7
    // Feb part: none over the 7 active at 02-01 = 0
    let rows =
        compute(&ctx, &[Metric::CancellationRate], &range("2024-01-15", "2024-02-15"), &[Dimension::Month], &none)
            .await
            .unwrap();
    assert_rows(&rows, &[(&["2024-01"], &[rate(1.0 / 7.0)]), (&["2024-02"], &[rate(0.0)])]);

    // Month × agency: G1 active at 01-01 P2 P3 P9 P10; 02-01 P2 P3 P4 P9 P10; 03-01 P2 P4 P9 P10.
    //                 G2 active at 01-01 P5 P13;      02-01 P5 P11;          03-01 P6 P11.
    // G1: Jan 0/4, Feb 0/5, Mar P4 1/4. G2: Jan P13 1/2, Feb 0/2, Mar 0/2.
    let rows =
        compute(&ctx, &[Metric::CancellationRate], &q1(), &[Dimension::Agency, Dimension::Month], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (&["G1", "2024-01"], &[rate(0.0)]),
            (&["G1", "2024-02"], &[rate(0.0)]),
            (&["G1", "2024-03"], &[rate(0.25)]),
            (&["G2", "2024-01"], &[rate(0.5)]),
            (&["G2", "2024-02"], &[rate(0.0)]),
            (&["G2", "2024-03"], &[rate(0.0)]),
        ],
    );

    // Active at 2024-03-15: P2 P9 P10 (G1; P4 cancelled 03-10), P6 P11 (G2; P8 starts 03-20).
    let before = counter.get();
    let active = active_policies(&ctx, date("2024-03-15"), &none, &[Dimension::Agency]).await.unwrap();
    assert_eq!(counter.get() - before, 1);
    assert_eq!(active, vec![(vec!["G1".to_string()], 3), (vec!["G2".to_string()], 2)]);
    assert_eq!(active_policies(&ctx, date("2024-03-15"), &none, &[]).await.unwrap(), vec![(vec![], 5)]);
    // P4 is cancelled on 2024-03-10: active the day before (6 = the 5 above + P4), not on the day (5).
    assert_eq!(active_policies(&ctx, date("2024-03-09"), &none, &[]).await.unwrap(), vec![(vec![], 6)]);
    assert_eq!(active_policies(&ctx, date("2024-03-10"), &none, &[]).await.unwrap(), vec![(vec![], 5)]);
    // At 2024-01-01 (the cancellation denominator above): 6.
    assert_eq!(active_policies(&ctx, date("2024-01-01"), &none, &[]).await.unwrap(), vec![(vec![], 6)]);
    // On K2 at 03-15: P6, P9.
    let k2 = Filters { carrier_id: Some("K2".into()), ..Default::default() };
    assert_eq!(active_policies(&ctx, date("2024-03-15"), &k2, &[]).await.unwrap(), vec![(vec![], 2)]);
    // Nothing active in 2030, but the ungrouped answer is still one row.
    assert_eq!(active_policies(&ctx, date("2030-01-01"), &none, &[]).await.unwrap(), vec![(vec![], 0)]);
    // A point in time has no month.
    let err = active_policies(&ctx, date("2024-03-15"), &none, &[Dimension::Month]).await.unwrap_err();
    assert!(matches!(err, MetricsError::UnsupportedDimension(Dimension::Month, _)), "{err}");
}

#[tokio::test]
async fn kpis_at_an_as_of_date() {
    let book = Book::new().await;
    let (ctx, counter) = book.session("t1").await;
    let none = Filters::default();
    let as_of = date("2024-03-15");

    let before = counter.get();
    let all = kpis(&ctx, as_of, &none, &[]).await.unwrap();
    assert_eq!(counter.get() - before, 3); // commissions, policies, renewal outcomes
    // MTD [03-01, 03-15]: C10 20 + C4 65 + C11 0 + C3 -150 = -65.00 (C6 on 03-25 is later)
    // YTD [01-01, 03-15]: Jan (C1 110 + C5 0 + C7 45) + Feb (C2 180) + MTD -65 = 270.00
    // Active at 03-15: P2 P6 P9 P10 P11 = 5
    // Written premium YTD: P2 1100 + P11 300 + P4 1200 + P6 650 = 3250.00 (P8 starts 03-20)
    // Retention [2023-03-15, 2024-03-15): expiring P1 (renewed), P3 (lapsed), P5 (renewed) = 2/3
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, Vec::<String>::new());
    let k = &all[0].1;
    assert_eq!(
        (k.as_of, k.mtd_commission, k.ytd_commission, k.active_policies, k.written_premium_ytd),
        (as_of, dec("-65.00"), dec("270.00"), 5, dec("3250.00"))
    );
    assert!((k.retention_rate_12m.unwrap() - 2.0 / 3.0).abs() < 1e-12);

    // Per agent:
    // A1: MTD C10 20; YTD C1 110 + C10 20 = 130; active P2 P9; WP P2 1100; retention P1 1/1
    // A2: MTD C3 -150; YTD 180 - 150 = 30; active none (P4 cancelled 03-10); WP P4 1200; retention P3 0/1
    // A3: MTD C4 65; YTD C7 45 + C4 65 = 110; active P6 P11; WP 650 + 300 = 950; retention P5 1/1
    // A4: nothing YTD (C6 is 03-25), nothing active (P7 P13 cancelled, P8 from 03-20), nothing
    //     expiring in the 12 months → no row.
    // M1: MTD C11 0; YTD C5 0 + C11 0 = 0; active P10; WP 0; P10 expires 04-01 → retention null
    let per_agent = kpis(&ctx, as_of, &none, &[Dimension::Agent]).await.unwrap();
    let kp = |mtd: &str, ytd: &str, active: i64, wp: &str, ret: Option<f64>| Kpis {
        as_of,
        mtd_commission: dec(mtd),
        ytd_commission: dec(ytd),
        active_policies: active,
        written_premium_ytd: dec(wp),
        retention_rate_12m: ret,
    };
    assert_eq!(
        per_agent,
        vec![
            (vec!["A1".to_string()], kp("20.00", "130.00", 2, "1100.00", Some(1.0))),
            (vec!["A2".to_string()], kp("-150.00", "30.00", 0, "1200.00", Some(0.0))),
            (vec!["A3".to_string()], kp("65.00", "110.00", 2, "950.00", Some(1.0))),
            (vec!["M1".to_string()], kp("0.00", "0.00", 1, "0.00", None)),
        ]
    );

    // Filtered to agency G2: MTD C4 65 + C11 0 = 65; YTD C7 45 + 65 = 110; active P6 P11 = 2;
    // WP P6 650 + P11 300 = 950; retention P5 1/1 (P7 not up).
    let g2 = Filters { agency_id: Some("G2".into()), ..Default::default() };
    assert_eq!(
        kpis(&ctx, as_of, &g2, &[]).await.unwrap(),
        vec![(vec![], kp("65.00", "110.00", 2, "950.00", Some(1.0)))]
    );

    // On 2024-01-01: MTD = YTD = nothing on that day (C1 is 01-15) = 0; active 6; WP P2 1100;
    // retention [2023-01-01, 2024-01-01): P0 (expired 2023-01-01, renewed by P1) = 1/1.
    assert_eq!(
        kpis(&ctx, date("2024-01-01"), &none, &[]).await.unwrap(),
        vec![(vec![], Kpis { as_of: date("2024-01-01"), ..kp("0", "0", 6, "1100.00", Some(1.0)) })]
    );

    let err = kpis(&ctx, as_of, &none, &[Dimension::Agent, Dimension::Year]).await.unwrap_err();
    assert!(matches!(err, MetricsError::UnsupportedDimension(Dimension::Year, _)), "{err}");
}

#[tokio::test]
async fn monthly_and_quarterly_trends() {
    let book = Book::new().await;
    let (ctx, _) = book.session("t1").await;
    let none = Filters::default();
    let jan_to_may = range("2024-01-01", "2024-06-01");
    let metrics = [Metric::GrossCommission, Metric::WrittenPremium, Metric::PolicyCount];

    // Gross by transaction month: Jan C1 110 + C5 0 + C7 45 = 155; Feb C2 180;
    //   Mar C10 20 + C4 65 + C11 0 + C3 -150 + C6 110 = 45; Apr C8 150; May none = 0.
    // Written premium by effective month: Jan P2 1100 + P11 300 = 1400 (2); Feb P4 1200 (1);
    //   Mar P6 650 + P8 1000 = 1650 (2); Apr P12 1500 (1); May 0.
    let rows = compute(&ctx, &metrics, &jan_to_may, &[Dimension::Month], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (&["2024-01"], &[money("155.00"), money("1400.00"), count(2)]),
            (&["2024-02"], &[money("180.00"), money("1200.00"), count(1)]),
            (&["2024-03"], &[money("45.00"), money("1650.00"), count(2)]),
            (&["2024-04"], &[money("150.00"), money("1500.00"), count(1)]),
            (&["2024-05"], &[money("0"), money("0"), count(0)]),
        ],
    );

    // Quarters: Q1 = 155 + 180 + 45 = 380, written 1400 + 1200 + 1650 = 4250 (5);
    //           Q2 part (Apr–May) = 150, written 1500 (1).
    let rows = compute(&ctx, &metrics, &jan_to_may, &[Dimension::Quarter], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (&["2024-Q1"], &[money("380.00"), money("4250.00"), count(5)]),
            (&["2024-Q2"], &[money("150.00"), money("1500.00"), count(1)]),
        ],
    );

    // Years over 2023-2024: 2023 gross C9 70; written P1 1000 + P3 800 + P5 600 + P7 900 + P9 700 +
    //   P10 400 + P13 450 = 4850 (7). 2024 gross 380 + 150 = 530; written 4250 + 1500 = 5750 (6).
    let rows = compute(&ctx, &metrics, &range("2023-01-01", "2025-01-01"), &[Dimension::Year], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (&["2023"], &[money("70.00"), money("4850.00"), count(7)]),
            (&["2024"], &[money("530.00"), money("5750.00"), count(6)]),
        ],
    );

    // Agent × month: no filling (only groups with data). A2: Feb C2 180, Mar C3 -150, Apr C8 150.
    let a2 = Filters { agent_id: Some("A2".into()), ..Default::default() };
    let rows = compute(&ctx, &[Metric::GrossCommission], &jan_to_may, &[Dimension::Agent, Dimension::Month], &a2)
        .await
        .unwrap();
    assert_rows(
        &rows,
        &[
            (&["A2", "2024-02"], &[money("180.00")]),
            (&["A2", "2024-03"], &[money("-150.00")]),
            (&["A2", "2024-04"], &[money("150.00")]),
        ],
    );
}

#[tokio::test]
async fn filters_narrow_every_family() {
    let book = Book::new().await;
    let (ctx, _) = book.session("t1").await;

    // Carrier K1, line home: commissions C7 (P11) 45, C2 180, C3 -150 (P4) → gross 75, agent 18 + 90 - 75 = 33;
    // rate (45 + 180)/(300 + 1200) = 0.15. Policies effective in Q1: P4 1200, P11 300 → 1500, 2, 2 new.
    // Renewal: no K1 home policy expires in Q1 (P7 in June) → null. Cancellation: P4 cancelled, but no
    // K1 home policy active at 01-01 (P7 cancelled 2023-12-01) → null.
    let k1_home =
        Filters { carrier_id: Some("K1".into()), line_of_business: Some("home".into()), ..Default::default() };
    let rows = compute(&ctx, &Metric::ALL, &q1(), &[], &k1_home).await.unwrap();
    assert_rows(
        &rows,
        &[(
            &[],
            &[money("75.00"), money("33.00"), money("1500.00"), count(2), count(2), NULL_RATE, NULL_RATE, rate(0.15)],
        )],
    );

    // The agency filter is on the policy's agency: manager M1 (of G1) restricted to G1 keeps only
    // C5 (on P2) = 11.00 of agent commission; C11 (on G2's P6) is G2's.
    let m1 =
        |agency: &str| Filters { agency_id: Some(agency.into()), agent_id: Some("M1".into()), ..Default::default() };
    let metrics = [Metric::AgentCommission];
    assert_rows(&compute(&ctx, &metrics, &q1(), &[], &m1("G1")).await.unwrap(), &[(&[], &[money("11.00")])]);
    assert_rows(&compute(&ctx, &metrics, &q1(), &[], &m1("G2")).await.unwrap(), &[(&[], &[money("13.00")])]);

    // Agency G2 grouped by agent: commissions A3 C7 + C4 = 110, A4 C6 110, M1 C11 0 (agent 13).
    let g2 = Filters { agency_id: Some("G2".into()), ..Default::default() };
    let rows = compute(&ctx, &[Metric::GrossCommission, Metric::AgentCommission], &q1(), &[Dimension::Agent], &g2)
        .await
        .unwrap();
    assert_rows(
        &rows,
        &[
            (&["A3"], &[money("110.00"), money("44.00")]),
            (&["A4"], &[money("110.00"), money("44.00")]),
            (&["M1"], &[money("0.00"), money("13.00")]),
        ],
    );

    // Filter values are values, not SQL: a quote-laden id matches nothing.
    let evil = Filters { agent_id: Some("A1' OR '1'='1".into()), ..Default::default() };
    let rows = compute(&ctx, &Metric::ALL, &q1(), &[], &evil).await.unwrap();
    assert_rows(
        &rows,
        &[(&[], &[money("0"), money("0"), money("0"), count(0), count(0), NULL_RATE, NULL_RATE, NULL_RATE])],
    );
    let unknown = Filters { carrier_id: Some("K9".into()), ..Default::default() };
    assert!(compute(&ctx, &Metric::ALL, &q1(), &[Dimension::Agent], &unknown).await.unwrap().is_empty());
}

#[tokio::test]
async fn empty_ranges_give_zero_sums_and_null_rates() {
    let book = Book::new().await;
    let (ctx, counter) = book.session("t1").await;
    let none = Filters::default();
    let zeros: &[MetricValue] =
        &[money("0"), money("0"), money("0"), count(0), count(0), NULL_RATE, NULL_RATE, NULL_RATE];

    // Nothing happens in January 2030 and nothing is active on its first day.
    let rows = compute(&ctx, &Metric::ALL, &range("2030-01-01", "2030-02-01"), &[], &none).await.unwrap();
    assert_rows(&rows, &[(&[], zeros)]);
    assert!(
        compute(&ctx, &Metric::ALL, &range("2030-01-01", "2030-02-01"), &[Dimension::Agent], &none)
            .await
            .unwrap()
            .is_empty()
    );
    // A trend over an empty period still lists its months.
    let rows =
        compute(&ctx, &Metric::ALL, &range("2030-01-01", "2030-03-01"), &[Dimension::Month], &none).await.unwrap();
    assert_rows(&rows, &[(&["2030-01"], zeros), (&["2030-02"], zeros)]);

    // from == to: empty. Sums and counts are 0; cancellation rate is 0 cancelled over the 6 policies
    // active at 2024-01-01 = 0 (the contract's formula), the other rates are null.
    let rows = compute(&ctx, &Metric::ALL, &range("2024-01-01", "2024-01-01"), &[], &none).await.unwrap();
    assert_rows(
        &rows,
        &[(&[], &[money("0"), money("0"), money("0"), count(0), count(0), NULL_RATE, rate(0.0), NULL_RATE])],
    );
    assert!(
        compute(&ctx, &Metric::ALL, &range("2024-01-01", "2024-01-01"), &[Dimension::Month], &none)
            .await
            .unwrap()
            .is_empty()
    );

    // Reversed range: an error, and no query.
    let before = counter.get();
    let err = compute(&ctx, &Metric::ALL, &range("2024-02-01", "2024-01-01"), &[], &none).await.unwrap_err();
    assert!(matches!(err, MetricsError::InvalidRange { .. }), "{err}");
    assert_eq!(counter.get(), before);
    // No metrics asked: no query, one empty row.
    assert_eq!(compute(&ctx, &[], &q1(), &[], &none).await.unwrap(), vec![Row { group: vec![], values: vec![] }]);
    assert_eq!(counter.get(), before);
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_rows() {
    let book = Book::new().await;
    let none = Filters::default();

    // t2: C1 9999.90 (agent 4999.95) on P1 (99999.00, effective 2024-01-15); P20 (5000.00, 02-15)
    // renews "P3", which t2 does not have. Active at 03-15: P1, P20.
    let (t2, _) = book.session("t2").await;
    let rows = compute(&t2, &Metric::ALL, &q1(), &[Dimension::Agent], &none).await.unwrap();
    assert_rows(
        &rows,
        &[
            (
                &["A1"],
                &[
                    money("9999.90"),
                    money("4999.95"),
                    money("99999.00"),
                    count(1),
                    count(1),
                    NULL_RATE,
                    NULL_RATE,
                    rate(0.1),
                ],
            ),
            (&["A2"], &[money("0"), money("0"), money("5000.00"), count(1), count(0), NULL_RATE, NULL_RATE, NULL_RATE]),
        ],
    );
    assert_eq!(active_policies(&t2, date("2024-03-15"), &none, &[]).await.unwrap(), vec![(vec![], 2)]);

    // t1's figures are t1's alone: totals as computed above, A1 still 130.00, P3 still lapsed.
    let (t1, _) = book.session("t1").await;
    let rows = compute(&t1, &[Metric::GrossCommission, Metric::WrittenPremium], &q1(), &[Dimension::Agency], &none)
        .await
        .unwrap();
    assert_rows(
        &rows,
        &[(&["G1"], &[money("160.00"), money("2300.00")]), (&["G2"], &[money("220.00"), money("1950.00")])],
    );
    let a2 = Filters { agent_id: Some("A2".into()), ..Default::default() };
    let rows = compute(&t1, &[Metric::RenewalRate], &q1(), &[], &a2).await.unwrap();
    assert_rows(&rows, &[(&[], &[rate(0.0)])]);
    let k = kpis(&t1, date("2024-03-15"), &none, &[]).await.unwrap();
    assert_eq!((k[0].1.ytd_commission, k[0].1.active_policies), (dec("270.00"), 5));
}
