//! The commission engine end to end: generated books recomputed to the
//! cent, every planted statement discrepancy found against the truth files,
//! month close that balances, and the GraphQL fields, download and CLI over
//! a small book whose every figure was worked out by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type};
use chrono::{Datelike, NaiveDate};
use cip::commissions::load::{RowFilter, Scope};
use cip::commissions::store::Actor;
use cip::commissions::{self, money};
use cip::generate::{Format, GenerateOptions, generate};
use cip::pipelines::batch::{IngestOptions, ingest};
use cip::query::view::{SessionLimits, TenantView};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::TestLake;
use crate::serve::{Auth, TestApp};

fn strings(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
    let a = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
    let a = a.as_string::<i32>();
    (0..a.len()).map(|r| (!a.is_null(r)).then(|| a.value(r).to_string())).collect()
}

fn money_col(b: &RecordBatch, i: usize) -> Vec<Option<Decimal>> {
    let a = b.column(i).as_primitive::<Decimal128Type>();
    (0..a.len()).map(|r| (!a.is_null(r)).then(|| money::from_units(a.value(r), a.scale()))).collect()
}

/// Every row of a query as text cells (money with 2 decimals, rates normalised, dates ISO).
async fn rows(view: &TenantView, sql: &str) -> Vec<Vec<String>> {
    let batches = view.session.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<Vec<String>> = (0..b.num_columns())
            .map(|i| match b.column(i).data_type() {
                arrow::datatypes::DataType::Decimal128(_, 2) => {
                    money_col(b, i).into_iter().map(|d| d.map(money::fmt_money).unwrap_or_default()).collect()
                }
                arrow::datatypes::DataType::Decimal128(_, _) => {
                    money_col(b, i).into_iter().map(|d| d.map(money::fmt_rate).unwrap_or_default()).collect()
                }
                arrow::datatypes::DataType::Date32 => {
                    let a = b.column(i).as_primitive::<Date32Type>();
                    (0..a.len())
                        .map(|r| {
                            if a.is_null(r) {
                                String::new()
                            } else {
                                cip::contract::values::days_to_date(a.value(r)).to_string()
                            }
                        })
                        .collect()
                }
                _ => strings(b, i).into_iter().map(Option::unwrap_or_default).collect(),
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    out
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A generated book with the demo's rate of bad rows, ingested.
async fn generated(policies: usize, seed: u64) -> TestLake {
    let t = TestLake::new();
    let opts = GenerateOptions {
        out: t.landing_path(),
        truth: t.dir.path().join("truth"),
        policies,
        seed,
        tenants: 3,
        format: Format::Csv,
        bad_row_rate: 0.0005,
        start: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
        end: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    };
    generate(&opts).unwrap();
    ingest(&t.landing(), &t.lake(), &IngestOptions::default()).await.unwrap();
    t
}

async fn views(t: &TestLake) -> Vec<TenantView> {
    let manifest = t.latest().await.unwrap();
    let mut out = Vec::new();
    for tenant in manifest.tenants() {
        out.push(TenantView::open(&t.lake(), &manifest, &tenant, SessionLimits::default()).await.unwrap());
    }
    out
}

/// The truth's discrepancies of a tenant, as comparable strings (see `expected_of`).
struct Truth {
    rows: Vec<Vec<String>>,
}

impl Truth {
    fn read(t: &TestLake) -> Self {
        let mut r = csv::Reader::from_path(t.dir.path().join("truth/statement_discrepancies.csv")).unwrap();
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            ["tenant_id", "statement_id", "line_id", "policy_id", "type", "expected_amount", "statement_amount"]
        );
        Truth { rows: r.records().map(|x| x.unwrap().iter().map(String::from).collect()).collect() }
    }
}

#[tokio::test]
async fn generated_books_are_recomputed_to_the_cent_and_every_planted_discrepancy_is_found() {
    let t = generated(12_000, 5).await;
    let truth = Truth::read(&t);
    let lake = t.lake();
    let mut planted_by_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut rate_mismatches = 0;
    for view in views(&t).await {
        let tenant = view.tenant.clone();

        // 1. Every booked row the generator wrote is what the schedules and splits give.
        let audit = commissions::audit_booked(&view.session, &RowFilter::default()).await.unwrap();
        let total: usize = rows(&view, "select count(*) from commissions").await[0][0].parse().unwrap();
        assert!(audit.findings.is_empty(), "{tenant}: {:#?}", &audit.findings[..audit.findings.len().min(3)]);
        // Rows that cannot be checked are exactly those whose policy was a planted bad row.
        let orphans = rows(
            &view,
            "select count(*) from commissions c left join policies p on c.policy_id = p.policy_id where p.policy_id is null",
        )
        .await[0][0]
            .parse::<usize>()
            .unwrap();
        assert_eq!((audit.checked as usize, audit.unchecked.len()), (total - orphans, orphans), "{tenant}");
        assert!(audit.unchecked.iter().all(|u| u.reason.ends_with("is not in the lake")));
        eprintln!("{tenant}: {} rows recomputed exactly, {orphans} of a rejected policy", audit.checked);

        // 2. Reconcile every statement of the tenant.
        let r =
            commissions::reconcile_and_store(&lake, &view.session, &tenant, &Scope::default(), 0, &Actor::now("test"))
                .await
                .unwrap();
        let found: Vec<String> = r
            .outcome
            .discrepancies
            .iter()
            .map(|d| {
                let m = |x: Option<Decimal>| x.map(money::fmt_money).unwrap_or_default();
                let o = |x: &Option<String>| x.clone().unwrap_or_default();
                match d.kind_of.as_str() {
                    "MISSING" => format!("MISSING|{}|{}|{}", o(&d.statement_id), o(&d.policy_id), m(d.expected)),
                    t @ ("DUPLICATE" | "UNEXPECTED") => {
                        format!("{t}|{}|{}|{}", o(&d.statement_id), o(&d.line_id), m(d.paid))
                    }
                    t => format!("{t}|{}|{}|{}|{}", o(&d.statement_id), o(&d.line_id), m(d.expected), m(d.paid)),
                }
            })
            .collect();

        // What should be found, computed from the truth and the landed data, not by the matcher:
        // line premium and kind, the policy's carrier and line, every rate of that carrier's line.
        let lines: HashMap<(String, String), (Decimal, String, String)> =
            rows(&view, "select statement_id, line_id, premium, kind, carrier_id from statement_lines")
                .await
                .into_iter()
                .map(|r| ((r[0].clone(), r[1].clone()), (dec(&r[2]), r[3].clone(), r[4].clone())))
                .collect();
        let line_of: HashMap<String, String> = rows(&view, "select policy_id, line_of_business from policies")
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        let mut rates: HashMap<(String, String), BTreeSet<Decimal>> = HashMap::new();
        for r in rows(&view, "select carrier_id, line_of_business, rate from commission_schedules").await {
            rates.entry((r[0].clone(), r[1].clone())).or_default().insert(dec(&r[2]));
        }
        let mut expected: Vec<String> = Vec::new();
        for row in truth.rows.iter().filter(|r| r[0] == tenant) {
            let (st, line, policy, kind, exp, paid) = (&row[1], &row[2], &row[3], row[4].as_str(), &row[5], &row[6]);
            *planted_by_type.entry(kind.to_string()).or_default() += 1;
            expected.push(match kind {
                "missing" => format!("MISSING|{st}|{policy}|{exp}"),
                "duplicate" => format!("DUPLICATE|{st}|{line}|{paid}"),
                "unexpected" => format!("UNEXPECTED|{st}|{line}|{paid}"),
                "underpaid" | "overpaid" => {
                    let (premium, line_kind, carrier) = &lines[&(st.clone(), line.clone())];
                    let at_another_rate = matches!(line_kind.as_str(), "new" | "renewal")
                        && rates[&(carrier.clone(), line_of[policy].clone())].iter().any(|r| {
                            let g = money::round_cents(premium * r);
                            g == dec(paid) && g != dec(exp)
                        });
                    let t = if at_another_rate { "RATE_MISMATCH" } else { &kind.to_uppercase() };
                    rate_mismatches += usize::from(at_another_rate);
                    format!("{t}|{st}|{line}|{exp}|{paid}")
                }
                other => panic!("unknown truth type {other}"),
            });
        }
        // Rows the carrier never paid (still `expected`, so the generator's truth, which lists
        // statement lines, has nothing to say) are missing from their period's statement too.
        let statements: BTreeSet<(String, String)> =
            rows(&view, "select distinct carrier_id, period from statement_lines")
                .await
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect();
        for r in rows(
            &view,
            "select carrier_id, transaction_date, policy_id, gross_commission from commissions \
             where kind <> 'override' and (status is null or status <> 'paid')",
        )
        .await
        {
            if statements.contains(&(r[0].clone(), r[1][..7].to_string())) {
                expected.push(format!("MISSING||{}|{}", r[2], r[3]));
            }
        }
        let (mut found, mut expected) = (found, expected);
        found.sort();
        expected.sort();
        // Precision and recall of 100 %: the same multiset.
        assert_eq!(found, expected, "{tenant}");
    }
    eprintln!("planted {planted_by_type:?}, of which {rate_mismatches} at another schedule rate");
    // The truth planted every type, and new business paid at the renewal rate is named as such.
    for t in ["missing", "underpaid", "overpaid", "duplicate", "unexpected"] {
        assert!(planted_by_type.get(t).copied().unwrap_or(0) >= 3, "{planted_by_type:?}");
    }
    assert!(rate_mismatches >= 3, "{rate_mismatches} rate mismatches in {planted_by_type:?}");

    // 3. Month close balances for every period of the demo data, and its
    // receivable moves by the month's carrier gross.
    for view in views(&t).await {
        let mut months = 0;
        let mut d = NaiveDate::from_ymd_opt(2021, 1, 1).unwrap();
        while d.year() < 2026 {
            let period = format!("{:04}-{:02}", d.year(), d.month());
            let entries = commissions::accounting_export(&view.session, &period).await.unwrap().unwrap();
            let mut receivable = Decimal::ZERO;
            for e in &entries {
                assert_eq!(e.total_debits, e.total_credits, "{} {period} {}", view.tenant, e.agency_id);
                for l in e.lines.iter().filter(|l| l.account.code == "1200") {
                    receivable += l.debit - l.credit;
                }
            }
            let next = d + chrono::Months::new(1);
            let sum = rows(
                &view,
                &format!(
                    "select sum(gross_commission) from commissions where kind <> 'override' \
                     and transaction_date >= date '{d}' and transaction_date < date '{next}'"
                ),
            )
            .await;
            let sum = if sum[0][0].is_empty() { Decimal::ZERO } else { dec(&sum[0][0]) };
            assert_eq!(receivable, sum, "{} {period}", view.tenant);
            months += usize::from(!entries.is_empty());
            d = next;
        }
        assert!(months >= 55, "{}: {months} months with entries", view.tenant);
    }
}

// ---------------------------------------------------------------------------
// The API over a small book
// ---------------------------------------------------------------------------

/// t1: agency G1; producers A1 (split 0.40, manager M1 with override 0.03) and A2 (0.35, no manager);
/// carrier K1 with auto new 12 % until 2024-03-01, 13 % from then, renewal 10 %. P2 was booked at
/// the renewal rate (80.00 instead of 96.00); the statement pays 96.00 for it, 120.00 for P1 and
/// 50.00 for a policy nobody has; C4 was never paid.
/// t2: the same ids with other figures (new 20 %, split 0.50), so any leak would show.
pub const BOOK: &[(&str, &str)] = &[
    ("agencies/a.csv", "tenant_id,agency_id,name,state\nt1,G1,North Agency,OH\nt2,G1,Other Group,CA\n"),
    (
        "agents/a.csv",
        "tenant_id,agent_id,agency_id,name,role,manager_id,split_pct,override_pct,hire_date,status\n\
         t1,A1,G1,Ann Lee,producer,M1,0.40,,2020-01-01,active\n\
         t1,A2,G1,Bob Diaz,producer,,0.35,,2021-05-01,active\n\
         t1,M1,G1,Meg Ito,manager,,,0.03,2015-01-01,active\n\
         t2,A1,G1,Zed Other,producer,,0.50,,2019-01-01,active\n",
    ),
    ("carriers/c.csv", "tenant_id,carrier_id,name\nt1,K1,Harbor Mutual\nt2,K1,Other Carrier\n"),
    (
        "commission_schedules/s.csv",
        "tenant_id,carrier_id,line_of_business,kind,rate,effective_from,effective_to\n\
         t1,K1,auto,new,0.12,2023-01-01,2024-03-01\n\
         t1,K1,auto,new,0.13,2024-03-01,\n\
         t1,K1,auto,renewal,0.10,2023-01-01,\n\
         t2,K1,auto,new,0.20,2020-01-01,\n",
    ),
    (
        "policies/p.csv",
        "tenant_id,policy_id,policy_number,agency_id,agent_id,carrier_id,customer_id,line_of_business,effective_date,expiration_date,premium,status,cancellation_date,renewal_of\n\
         t1,P1,HM-000101,G1,A1,K1,C1,auto,2024-01-01,2025-01-01,1000.00,expired,,\n\
         t1,P2,HM-000102,G1,A2,K1,C2,auto,2024-01-20,2025-01-20,800.00,expired,,\n\
         t1,P3,HM-000103,G1,A2,K1,C3,auto,2024-01-25,2025-01-25,500.00,expired,,\n\
         t2,P1,ZZ-1,G1,A1,K1,Z1,auto,2024-01-01,2025-01-01,5000.00,expired,,\n",
    ),
    (
        "commissions/c.csv",
        "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission,status,paid_date,statement_id\n\
         t1,C1,P1,A1,K1,2024-01-01,new,1000.00,0.12,120.00,48.00,72.00,paid,2024-02-15,ST-K1-2024-01\n\
         t1,C2,P1,M1,K1,2024-01-01,override,0,0.03,0,3.60,-3.60,paid,2024-02-15,\n\
         t1,C3,P2,A2,K1,2024-01-20,new,800.00,0.10,80.00,28.00,52.00,paid,2024-02-15,ST-K1-2024-01\n\
         t1,C4,P3,A2,K1,2024-01-25,new,500.00,0.12,60.00,21.00,39.00,expected,,\n\
         t2,C1,P1,A1,K1,2024-01-01,new,5000.00,0.20,1000.00,500.00,500.00,paid,2024-02-15,ST-K1-2024-01\n",
    ),
    (
        "statement_lines/s.csv",
        "tenant_id,statement_id,line_id,carrier_id,statement_date,period,policy_number,commission_amount,insured_name,line_of_business,premium,kind\n\
         t1,ST-K1-2024-01,L1,K1,2024-02-12,2024-01,hm 101,120.00,Ann Buyer,auto,1000.00,new\n\
         t1,ST-K1-2024-01,L2,K1,2024-02-12,2024-01,HM-0102,96.00,Bo Buyer,auto,800.00,new\n\
         t1,ST-K1-2024-01,L3,K1,2024-02-12,2024-01,HM 999,50.00,Cy Nobody,auto,400.00,new\n\
         t2,ST-K1-2024-01,L1,K1,2024-02-12,2024-01,zz 1,900.00,Zed Buyer,auto,5000.00,new\n",
    ),
];

const WRITE: &[&str] = &["analytics:read", "commissions:write"];

async fn ok(app: &TestApp, tenant: &str, perms: &[&str], q: &str) -> Value {
    let (status, _, body) = app.post(Auth::Bearer(TestApp::token(tenant, perms)), q, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// Poll `q` as `tenant` until `done` holds (the server picks up a new lake version within 100 ms).
async fn until(app: &TestApp, tenant: &str, q: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = ok(app, tenant, &["analytics:read"], q).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never reached: {last}");
}

#[tokio::test]
async fn calculation_schedules_and_splits_over_graphql() {
    let app = TestApp::spawn_book(BOOK, |s| s).await;
    let calc = r#"{ c: calculateCommission(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1234.56",
                       effectiveDate: "2024-05-10", expirationDate: "2025-05-10", agentId: "A1", cancellationDate: "2025-05-09"}) {
                      rate splitPct managerId overridePct scheduleEffectiveFrom
                      commission { gross producer agency overrideAmount agencyNet }
                      chargeback { termDays unearnedDays amounts { premium gross producer agency overrideAmount } } explanation } }"#;
    let c = ok(&app, "t1", &["analytics:read"], calc).await["c"].clone();
    // 1234.56 × 0.13 = 160.4928 → 160.49; A1 40 % 64.20, agency 96.29; M1 3 % 4.81, agency keeps 91.48.
    // Cancelled on the last day: 1 of 365 days; 160.49 / 365 = 0.4397 → −0.44; premium 3.38 → −3.38;
    // A1 −0.176 → −0.18; agency −0.26; M1 −0.0132 → −0.01.
    assert_eq!(
        json!({"rate": c["rate"], "splitPct": c["splitPct"], "managerId": c["managerId"], "overridePct": c["overridePct"],
               "from": c["scheduleEffectiveFrom"], "commission": c["commission"], "chargeback": c["chargeback"]}),
        json!({"rate": "0.13", "splitPct": "0.4", "managerId": "M1", "overridePct": "0.03", "from": "2024-03-01",
               "commission": {"gross": "160.49", "producer": "64.20", "agency": "96.29", "overrideAmount": "4.81", "agencyNet": "91.48"},
               "chargeback": {"termDays": 365, "unearnedDays": 1, "amounts": {"premium": "-3.38", "gross": "-0.44", "producer": "-0.18", "agency": "-0.26", "overrideAmount": "-0.01"}}})
    );
    // Rate, gross, producer, override; cancellation, producer's and manager's chargeback.
    assert_eq!(c["explanation"].as_array().unwrap().len(), 7);

    // Bulk: a bad input gets its own error, the rest are calculated (the same figures as one by one).
    let bulk = r#"{ b: calculateCommissions(inputs: [
        {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-02-29", agentId: "A2"},
        {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-03-01", agentId: "A2"},
        {carrierId: "K1", lineOfBusiness: "home", kind: NEW, premium: "1000.00", effectiveDate: "2024-03-01", agentId: "A2"},
        {carrierId: "K1", lineOfBusiness: "auto", kind: RENEWAL, premium: "-250.50", effectiveDate: "2024-03-01", agentId: "Z9"}])
        { index calculation { rate commission { gross producer } } error { code } } }"#;
    assert_eq!(
        ok(&app, "t1", &["analytics:read"], bulk).await["b"],
        json!([
            {"index": 0, "calculation": {"rate": "0.12", "commission": {"gross": "120.00", "producer": "42.00"}}, "error": null},
            {"index": 1, "calculation": {"rate": "0.13", "commission": {"gross": "130.00", "producer": "45.50"}}, "error": null},
            {"index": 2, "calculation": null, "error": {"code": "no_schedule"}},
            {"index": 3, "calculation": null, "error": {"code": "unknown_agent"}}
        ])
    );
    // One bad input alone is a BAD_INPUT error with the stable reason.
    let (_, _, body) = app
        .post(
            Auth::Bearer(TestApp::token("t1", &["analytics:read"])),
            r#"{ calculateCommission(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1.00", effectiveDate: "2022-01-01", agentId: "A1"}) { rate } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "no_schedule");
    assert_eq!(body["errors"][0]["message"], "no new schedule of carrier K1 for line auto is in force on 2022-01-01");

    // Mutations need commissions:write.
    let set = r#"mutation { setAgentSplit(agentId: "A2", effectiveFrom: "2024-06-01", splitPct: "0.5", note: "new plan") { agentId effectiveFrom splitPct changedBy } }"#;
    let (_, _, body) = app.post(Auth::Bearer(TestApp::token("t1", &["analytics:read"])), set, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let s = ok(&app, "t1", WRITE, set).await;
    assert_eq!(
        s["setAgentSplit"],
        json!({"agentId": "A2", "effectiveFrom": "2024-06-01", "splitPct": "0.5", "changedBy": "user@t1"})
    );
    let sched = r#"mutation { setCommissionSchedule(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, rate: "0.14", effectiveFrom: "2024-07-01"}, note: "carrier letter") { rate effectiveFrom } }"#;
    assert_eq!(
        ok(&app, "t1", WRITE, sched).await["setCommissionSchedule"],
        json!({"rate": "0.14", "effectiveFrom": "2024-07-01"})
    );

    // From 2024-07-01 the new rate and from 2024-06-01 A2's new split apply; the day before, the old ones.
    let q = r#"{ before: calculateCommission(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-06-30", agentId: "A2"}) { rate commission { gross producer } }
                 after: calculateCommission(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-07-01", agentId: "A2"}) { rate commission { gross producer } }
                 may: calculateCommission(input: {carrierId: "K1", lineOfBusiness: "auto", kind: NEW, premium: "1000.00", effectiveDate: "2024-05-31", agentId: "A2"}) { commission { producer } }
                 commissionSchedules(carrierId: "K1", lineOfBusiness: "auto") { kind rate effectiveFrom effectiveTo }
                 agentSplits { agentId effectiveFrom splitPct overridePct changedBy }
                 commissionChanges { changedBy action subject note } }"#;
    let v = until(&app, "t1", q, |v| {
        v["after"]["rate"] == "0.14" && v["commissionChanges"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    // Now that it is served, a second row starting the same day would rewrite history: refused.
    let (_, _, body) = app.post(Auth::Bearer(TestApp::token("t1", WRITE)), sched, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT", "{body}");
    assert_eq!(v["before"], json!({"rate": "0.13", "commission": {"gross": "130.00", "producer": "65.00"}}));
    assert_eq!(v["after"], json!({"rate": "0.14", "commission": {"gross": "140.00", "producer": "70.00"}}));
    assert_eq!(v["may"], json!({"commission": {"producer": "45.50"}}));
    assert_eq!(
        v["commissionSchedules"],
        json!([
            {"kind": "NEW", "rate": "0.12", "effectiveFrom": "2023-01-01", "effectiveTo": "2024-03-01"},
            {"kind": "NEW", "rate": "0.13", "effectiveFrom": "2024-03-01", "effectiveTo": null},
            {"kind": "NEW", "rate": "0.14", "effectiveFrom": "2024-07-01", "effectiveTo": null},
            {"kind": "RENEWAL", "rate": "0.1", "effectiveFrom": "2023-01-01", "effectiveTo": null}
        ])
    );
    assert_eq!(
        v["agentSplits"],
        json!([{"agentId": "A2", "effectiveFrom": "2024-06-01", "splitPct": "0.5", "overridePct": null, "changedBy": "user@t1"}])
    );
    assert_eq!(
        v["commissionChanges"],
        json!([
            {"changedBy": "user@t1", "action": "set_agent_split", "subject": "A2", "note": "new plan"},
            {"changedBy": "user@t1", "action": "set_commission_schedule", "subject": "K1/auto/new", "note": "carrier letter"}
        ])
    );
    // t2 saw none of it.
    let other = ok(
        &app,
        "t2",
        &["analytics:read"],
        "{ agentSplits { agentId } commissionChanges { action } commissionSchedules { rate } }",
    )
    .await;
    assert_eq!(other, json!({"agentSplits": [], "commissionChanges": [], "commissionSchedules": [{"rate": "0.2"}]}));
}

#[tokio::test]
async fn audit_pending_payments_reconciliation_and_month_close_over_graphql() {
    let app = TestApp::spawn_book(BOOK, |s| s).await;
    let audit = r#"{ commissionAudit { checked findings { commissionId fields booked { commissionRate grossCommission } expected { commissionRate grossCommission agentCommission agencyCommission } reason } unchecked { commissionId } } }"#;
    // C3: new business booked at the renewal rate: 800 × 0.12 = 96.00, A2 35 % 33.60, agency 62.40.
    assert_eq!(
        ok(&app, "t1", &["analytics:read"], audit).await["commissionAudit"],
        json!({"checked": 4, "unchecked": [], "findings": [{"commissionId": "C3",
            "fields": ["commission_rate", "gross_commission", "agent_commission", "agency_commission"],
            "booked": {"commissionRate": "0.1", "grossCommission": "80.00"},
            "expected": {"commissionRate": "0.12", "grossCommission": "96.00", "agentCommission": "33.60", "agencyCommission": "62.40"},
            "reason": "new business booked at the renewal rate 0.1 instead of 0.12: gross 80.00 instead of 96.00"}]})
    );

    // C4 (2024-01-25) was due 45 days after January: 2024-03-16.
    let pending = r#"{ pendingCommissions(asOf: "2024-04-01") { commission { commissionId grossCommission status } dueDate daysOverdue } }"#;
    assert_eq!(
        ok(&app, "t1", &["analytics:read"], pending).await["pendingCommissions"],
        json!([{"commission": {"commissionId": "C4", "grossCommission": "60.00", "status": "expected"}, "dueDate": "2024-03-16", "daysOverdue": 16}])
    );

    // Reconcile January's statement of K1.
    let rec = r#"mutation { reconcile(carrierId: "K1", period: "2024-01") { tolerance
        statements { carrierId period lines bookedRows matched expectedTotal paidTotal discrepancies }
        discrepancies { type lineId commissionId policyId expectedAmount paidAmount difference expectedRate paidRate status } } }"#;
    let r = ok(&app, "t1", WRITE, rec).await["reconcile"].clone();
    assert_eq!(
        r,
        json!({"tolerance": "0.00",
        "statements": [{"carrierId": "K1", "period": "2024-01", "lines": 3, "bookedRows": 3, "matched": 1,
                        "expectedTotal": "260.00", "paidTotal": "266.00", "discrepancies": 3}],
        "discrepancies": [
            {"type": "MISSING", "lineId": null, "commissionId": "C4", "policyId": "P3", "expectedAmount": "60.00", "paidAmount": null, "difference": "-60.00", "expectedRate": "0.12", "paidRate": null, "status": "OPEN"},
            {"type": "UNEXPECTED", "lineId": "L3", "commissionId": null, "policyId": null, "expectedAmount": null, "paidAmount": "50.00", "difference": "50.00", "expectedRate": null, "paidRate": null, "status": "OPEN"},
            {"type": "RATE_MISMATCH", "lineId": "L2", "commissionId": "C3", "policyId": "P2", "expectedAmount": "80.00", "paidAmount": "96.00", "difference": "16.00", "expectedRate": "0.1", "paidRate": "0.12", "status": "OPEN"}
        ]})
    );
    let list = r#"{ discrepancies { totalCount totals { type carrierId count open expectedAmount paidAmount difference } items { id type status resolution { resolvedBy note } } } }"#;
    let v = until(&app, "t1", list, |v| v["discrepancies"]["totalCount"] == 3).await;
    assert_eq!(
        v["discrepancies"]["totals"],
        json!([
            {"type": "MISSING", "carrierId": "K1", "count": 1, "open": 1, "expectedAmount": "60.00", "paidAmount": "0.00", "difference": "-60.00"},
            {"type": "UNEXPECTED", "carrierId": "K1", "count": 1, "open": 1, "expectedAmount": "0.00", "paidAmount": "50.00", "difference": "50.00"},
            {"type": "RATE_MISMATCH", "carrierId": "K1", "count": 1, "open": 1, "expectedAmount": "80.00", "paidAmount": "96.00", "difference": "16.00"}
        ])
    );
    let missing_id = v["discrepancies"]["items"][0]["id"].as_str().unwrap().to_string();

    // Resolve it; the log keeps who, when and why.
    let resolve = format!(
        r#"mutation {{ resolveDiscrepancy(id: "{missing_id}", note: "carrier pays in March") {{ status resolution {{ resolvedBy note }} }} }}"#
    );
    assert_eq!(
        ok(&app, "t1", WRITE, &resolve).await["resolveDiscrepancy"],
        json!({"status": "RESOLVED", "resolution": {"resolvedBy": "user@t1", "note": "carrier pays in March"}})
    );
    let open = r#"{ discrepancies(status: OPEN) { totalCount } resolved: discrepancies(status: RESOLVED) { items { type resolution { note } } } }"#;
    let v = until(&app, "t1", open, |v| v["discrepancies"]["totalCount"] == 2).await;
    assert_eq!(v["resolved"]["items"], json!([{"type": "MISSING", "resolution": {"note": "carrier pays in March"}}]));
    // Unknown ids and another tenant's ids are not found.
    let (_, _, body) = app.post(Auth::Bearer(TestApp::token("t2", WRITE)), &resolve, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");

    // The CSV download goes through the guard and holds only the caller's rows.
    let client = reqwest::Client::new();
    let csv_of = |tenant: &str, query: &str| {
        let req = client
            .get(format!("{}/commissions/discrepancies.csv{query}", app.url))
            .header("Authorization", format!("Bearer {}", TestApp::token(tenant, &["analytics:read"])));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, body) = csv_of("t1", "?type=RATE_MISMATCH").await;
    assert_eq!(status, 200);
    let mut lines = body.lines();
    assert_eq!(
        lines.next().unwrap(),
        "discrepancy_id,type,carrier_id,period,statement_id,line_id,commission_id,policy_id,policy_number,kind,expected_amount,paid_amount,difference,expected_rate,paid_rate,status,resolved_by,explanation"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains(",RATE_MISMATCH,K1,2024-01,ST-K1-2024-01,L2,C3,P2,HM-0102,new,80.00,96.00,16.00,0.1,0.12,OPEN,,"),
        "{row}"
    );
    assert_eq!(lines.next(), None);
    assert_eq!(csv_of("t2", "").await, (200, "discrepancy_id,type,carrier_id,period,statement_id,line_id,commission_id,policy_id,policy_number,kind,expected_amount,paid_amount,difference,expected_rate,paid_rate,status,resolved_by,explanation\n".to_string()));
    assert_eq!(csv_of("t1", "?type=NOPE").await.0, 400);
    let (status, _) = {
        let resp = client.get(format!("{}/commissions/discrepancies.csv", app.url)).send().await.unwrap();
        (resp.status().as_u16(), ())
    };
    assert_eq!(status, 401);

    // Mark C4 paid: it leaves the pending list.
    let mark = r#"mutation { markCommissionsPaid(commissionIds: ["C4"], paidDate: "2024-04-02", statementId: "ST-K1-2024-03", note: "late") { marked committed } }"#;
    assert_eq!(ok(&app, "t1", WRITE, mark).await["markCommissionsPaid"], json!({"marked": 1, "committed": true}));
    let v = until(&app, "t1", pending, |v| v["pendingCommissions"] == json!([])).await;
    assert_eq!(v["pendingCommissions"], json!([]));
    let (_, _, body) = app
        .post(
            Auth::Bearer(TestApp::token("t1", WRITE)),
            r#"mutation { markCommissionsPaid(commissionIds: ["C9"], paidDate: "2024-04-02") { marked } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");

    // Month close of January: income 120 + 80 + 60; producers 48 + 28 + 21; M1's override 3.60.
    let close = r#"{ accountingExport(period: "2024-01") { entries { journalNo totalDebits totalCredits lines { accountCode debit credit } } qbo: csv(layout: QUICKBOOKS) }
                     producerStatement(agentId: "A2", period: "2024-01") { lines { commissionId amount } commissions chargebacks overrides total } }"#;
    let v = ok(&app, "t1", &["analytics:read"], close).await;
    let e = &v["accountingExport"]["entries"][0];
    assert_eq!(
        (e["journalNo"].as_str(), e["totalDebits"].as_str(), e["totalCredits"].as_str()),
        (Some("2024-01-G1"), Some("360.60"), Some("360.60"))
    );
    assert_eq!(e["lines"][0], json!({"accountCode": "1200", "debit": "260.00", "credit": "0.00"}));
    assert!(v["accountingExport"]["qbo"].as_str().unwrap().starts_with("JournalNo,JournalDate,AccountName,Debits,Credits,Description,Name\n2024-01-G1,01/31/2024,Commissions Receivable,260.00,,"));
    assert_eq!(
        v["producerStatement"],
        json!({"lines": [{"commissionId": "C3", "amount": "28.00"}, {"commissionId": "C4", "amount": "21.00"}], "commissions": "49.00", "chargebacks": "0.00", "overrides": "0.00", "total": "49.00"})
    );
    let (_, _, body) = app
        .post(
            Auth::Bearer(TestApp::token("t1", &["analytics:read"])),
            r#"{ accountingExport(period: "2024-13") { period } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT");

    // t2 reconciles its own statement with the same ids: its line pays 900.00 of 1000.00.
    let r2 = ok(
        &app,
        "t2",
        WRITE,
        r#"mutation { reconcile(carrierId: "K1", period: "2024-01") { discrepancies { type lineId difference } } }"#,
    )
    .await;
    assert_eq!(
        r2["reconcile"]["discrepancies"],
        json!([{"type": "UNDERPAID", "lineId": "L1", "difference": "-100.00"}])
    );
    let v = until(&app, "t1", r#"{ discrepancies { totalCount } }"#, |_| true).await;
    assert_eq!(v["discrepancies"]["totalCount"], 3);
}

#[test]
fn cli_reconcile_and_accounting_export() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = TestLake::new();
    for (path, body) in BOOK {
        t.land(path, body);
    }
    rt.block_on(ingest(&t.landing(), &t.lake(), &IngestOptions::default())).unwrap();
    let cip = || std::process::Command::new(env!("CARGO_BIN_EXE_cip"));
    let out = cip()
        .args(["reconcile", "--tenant", "t1", "--carrier", "K1", "--period", "2024-01", "--json", "--lake"])
        .arg(t.lake_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types: Vec<&str> = v["discrepancies"].as_array().unwrap().iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["MISSING", "UNEXPECTED", "RATE_MISMATCH"]);
    assert_eq!((v["statement_lines"].as_u64(), v["booked_rows"].as_u64()), (Some(3), Some(3)));
    assert_eq!(v["periods"][0]["paid_total"], "266.00");

    let out = cip()
        .args(["export", "accounting", "--tenant", "t1", "--period", "2024-01", "--format", "xero", "--lake"])
        .arg(t.lake_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Narration,Date,Description,AccountCode,TaxRate,Amount\nCommissions 2024-01-G1,31/01/2024,commission income 2024-01,1200,No GST,260.00\n"), "{text}");
    // Debits and credits sum to zero.
    let sum: Decimal = text.lines().skip(1).map(|l| dec(l.rsplit(',').next().unwrap())).sum();
    assert_eq!(sum, Decimal::ZERO);

    let out =
        cip().args(["reconcile", "--tenant", "t1", "--period", "24-01", "--lake"]).arg(t.lake_url()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not YYYY-MM"));
}

#[tokio::test]
async fn statement_upload_with_a_saved_mapping_lands_all_or_nothing() {
    let app = TestApp::spawn_book(BOOK, |s| s).await;
    let url = format!("{}/commissions/statements?carrierId=K1", app.url);
    let upload = |perms: &'static [&'static str], body: String| post_as_t1(url.clone(), perms, "text/csv".into(), body);
    let header = "Policy No,Comm Amt,Stmt #,Stmt Date,Month,Type\n";
    let good = format!(
        "{header}hm 101,10.00,ST-K1-2024-02,2024-03-12,2024-02,adjustment\nHM-102,12.50,ST-K1-2024-02,2024-03-12,2024-02,new\n"
    );
    assert_eq!(upload(&["analytics:read"], good.clone()).await.0, 403);

    // Without a mapping the file's headers are not the contract's.
    let (status, body) = upload(WRITE, good.clone()).await;
    assert_eq!((status, body["errors"][0]["extensions"]["reason"].as_str()), (400, Some("missing_columns")));
    assert_eq!(
        body["errors"][0]["message"],
        "the file lacks the column(s) statement_id, statement_date, period, policy_number, commission_amount"
    );

    let set = r#"mutation { setStatementMapping(carrierId: "K1", columns: [
        {column: "statement_id", header: "Stmt #"}, {column: "statement_date", header: "Stmt Date"}, {column: "period", header: "Month"},
        {column: "policy_number", header: "Policy No"}, {column: "commission_amount", header: "Comm Amt"}, {column: "kind", header: "Type"}])
        { carrierId columns { column header } changedBy } }"#;
    let m = ok(&app, "t1", WRITE, set).await["setStatementMapping"].clone();
    assert_eq!(
        (m["carrierId"].as_str(), m["changedBy"].as_str(), m["columns"].as_array().unwrap().len()),
        (Some("K1"), Some("user@t1"), 6)
    );
    assert_eq!(m["columns"][0], json!({"column": "commission_amount", "header": "Comm Amt"}));
    until(&app, "t1", "{ statementMappings { carrierId } }", |v| {
        v["statementMappings"] == json!([{"carrierId": "K1"}])
    })
    .await;
    // Another tenant with a carrier K1 of its own sees none of it.
    assert_eq!(
        ok(&app, "t2", &["analytics:read"], "{ statementMappings { carrierId } }").await,
        json!({"statementMappings": []})
    );
    let (_, _, body) = app
        .post(Auth::Bearer(TestApp::token("t1", WRITE)), r#"mutation { setStatementMapping(carrierId: "K1", columns: [{column: "tenant_id", header: "T"}]) { carrierId } }"#, json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT");

    // One bad amount: the whole file is refused and names the record.
    let bad = format!(
        "{header}hm 101,10.00,ST-K1-2024-02,2024-03-12,2024-02,adjustment\nHM-102,12.5x,ST-K1-2024-02,2024-03-12,2024-02,new\n"
    );
    let (status, body) = upload(WRITE, bad).await;
    assert_eq!(status, 400, "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!((ext["reason"].as_str(), ext["problems"].as_array().unwrap().len()), (Some("invalid_records"), 1));
    assert_eq!(
        (ext["problems"][0]["line"].as_u64(), ext["problems"][0]["code"].as_str()),
        (Some(3), Some("invalid_money"))
    );
    // Over the body limit (1 MiB in tests): 413, nothing read.
    let (status, body) = upload(WRITE, format!("{header}{}", "x".repeat(2 << 20))).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].as_str()), (413, Some("TOO_LARGE")));

    let (status, body) = upload(WRITE, good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lines"], 2);
    assert_eq!(body["statements"], json!(["ST-K1-2024-02"]));
    assert_eq!((body["mapping"].as_str(), body["committed"].as_bool()), (Some("saved"), Some(true)));

    // The lines are reconciled like any others.
    assert_uploaded_lines_reconciled(&app).await;
}

/// POST `body` to `url` as tenant t1 holding `perms`: the status and the
/// JSON answer.
async fn post_as_t1(url: String, perms: &[&str], content_type: String, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("Authorization", format!("Bearer {}", TestApp::token("t1", perms)))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap())
}

/// Reconcile t1's carrier K1 for February 2024.
const FEBRUARY_K1: &str = r#"mutation { reconcile(carrierId: "K1", period: "2024-02") { statements { lines paidTotal } discrepancies { type lineId paidAmount } } }"#;

/// The two uploaded lines of the upload tests, once served: February has
/// no booked row, so both are unexpected; 10.00 + 12.50 paid.
async fn assert_uploaded_lines_reconciled(app: &TestApp) {
    let mut r = Value::Null;
    for _ in 0..50 {
        // Committed; the server serves the new version a moment later.
        r = ok(app, "t1", WRITE, FEBRUARY_K1).await["reconcile"].clone();
        if r["statements"][0]["lines"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        r,
        json!({"statements": [{"lines": 2, "paidTotal": "22.50"}], "discrepancies": [
            {"type": "UNEXPECTED", "lineId": "1", "paidAmount": "10.00"},
            {"type": "UNEXPECTED", "lineId": "2", "paidAmount": "12.50"}]})
    );
}

/// A GraphQL multipart request (graphql-multipart-request-spec) built by
/// hand: `operations` with the file variable null, `map` naming it, the file.
fn multipart(query: &str, carrier: &str, file: &str) -> (String, Vec<u8>) {
    let boundary = "cip-test-boundary-7d2f";
    let operations = json!({"query": query, "variables": {"carrierId": carrier, "file": null}}).to_string();
    let mut body = String::new();
    for (name, extra, content) in [
        ("operations", "", operations.as_str()),
        ("map", "", r#"{"0": ["variables.file"]}"#),
        ("0", "; filename=\"statement.csv\"\r\nContent-Type: text/csv", file),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

/// The statement upload through GraphQL (multipart): the same checks as the
/// CSV door — the permission before the body is read, all records or none,
/// the body limit — and the lines reconciled like any others, for the
/// uploading tenant only.
#[tokio::test]
async fn statement_upload_through_graphql_multipart_lands_all_or_nothing() {
    let app = TestApp::spawn_book(BOOK, |s| s).await;
    let query = "mutation($carrierId: ID!, $file: Upload!) { uploadStatement(carrierId: $carrierId, file: $file) { lines statements mapping committed } }";
    let url = format!("{}/graphql", app.url);
    let upload = |perms: &'static [&'static str], file: String| {
        let (content_type, body) = multipart(query, "K1", &file);
        post_as_t1(url.clone(), perms, content_type, body)
    };
    // The contract's own column names: no mapping needed.
    let header = "statement_id,statement_date,period,policy_number,commission_amount,kind\n";
    let good = format!(
        "{header}ST-K1-2024-02,2024-03-12,2024-02,hm 101,10.00,adjustment\nST-K1-2024-02,2024-03-12,2024-02,HM-102,12.50,new\n"
    );

    let (status, body) = upload(&["analytics:read"], good.clone()).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].as_str()), (403, Some("FORBIDDEN")));

    // One bad amount: nothing lands, the record is named.
    let bad = good.replace("12.50", "12.5x");
    let (status, body) = upload(WRITE, bad).await;
    assert_eq!(status, 200, "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!((ext["code"].as_str(), ext["reason"].as_str()), (Some("BAD_INPUT"), Some("invalid_records")));
    assert_eq!(
        (ext["problems"][0]["line"].as_u64(), ext["problems"][0]["code"].as_str()),
        (Some(3), Some("invalid_money"))
    );
    // A file without the contract's columns.
    let (_, body) = upload(WRITE, "Policy,Amount\nHM-1,1.00\n".into()).await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "missing_columns");
    // Over the ingest body limit (1 MiB in tests): 413 before it is parsed.
    let (status, body) = upload(WRITE, format!("{header}{}", "x".repeat(2 << 20))).await;
    assert_eq!((status, body["errors"][0]["extensions"]["code"].as_str()), (413, Some("TOO_LARGE")));

    let (status, body) = upload(WRITE, good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["uploadStatement"],
        json!({"lines": 2, "statements": ["ST-K1-2024-02"], "mapping": "contract", "committed": true})
    );
    // Reconciled like any statement.
    assert_uploaded_lines_reconciled(&app).await;
    // The other tenant's carrier K1 got none of them.
    let r = ok(&app, "t2", WRITE, FEBRUARY_K1).await["reconcile"].clone();
    assert_eq!(r["statements"], json!([]), "{r}");
}
