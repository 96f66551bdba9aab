//! The batch pipeline on a small hand-made landing whose every figure was
//! worked out by hand (see the comments next to the rows).

use cip::lake::{parquet_io, snapshot};
use cip::pipelines::batch::{FailPoint, IngestError, IngestOptions, ingest};
use datafusion::assert_batches_eq;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::helpers::{TestLake, sql_at, tenant};

const HEADER: &str = "tenant_id,commission_id,policy_id,agent_id,carrier_id,transaction_date,kind,premium_amount,commission_rate,gross_commission,agent_commission,agency_commission,status,paid_date,statement_id";

/// Lines 2–14. Valid for t1: C1 (150.00 = 60.00 + 90.00), C2 (-35.50 =
/// -14.20 + -21.30), C10 override (0 = 4.50 - 4.50); for t2: C1 (100.00).
const JANUARY: &[&str] = &[
    "t1,C1,P1,A1,K1,2024-01-15,new,1200.00,0.125,150.00,60.00,90.00,paid,2024-02-10,S1",
    "t1,C2,P1,A1,K1,2024-03-01,chargeback,-284.00,0.125,-35.50,-14.20,-21.30,expected,,",
    "t1,C3,,A1,K1,2024-01-20,new,500,0.1,50,20,30,,,", // 4: missing policy_id
    "t1,C4,P2,A1,K1,2024-13-45,new,500,0.1,50,20,30,,,", // 5: invalid date
    "t1,C5,P2,A1,K1,2024-01-20,new,1.2e3,0.1,50,20,30,,,", // 6: exponent form
    "t1,C6,P2,A1,K1,2024-01-20,new,500,0.1,50.005,20,30.005,,,", // 7: 3 fraction digits
    "t1,C7,P2,A1,K1,2024-01-20,bonus,500,0.1,50,20,30,,,", // 8: unknown kind
    "t1,C1,P1,A1,K1,2024-01-15,new,1200.00,0.125,150.00,70.00,80.00,paid,2024-02-10,S1", // 9: conflicts with line 2
    "t1,C1,P1,A1,K1,2024-01-15,NEW, 1200 ,0.125,150,60,90,Paid,2024-02-10,S1", // 10: same as line 2
    "t1,C8,P2,A1,K1,2024-01-20,new,500,0.1,50.00,20.00,30.01,,,", // 11: gross != agent + agency
    "t1,C9,P2",                                        // 12: 3 fields
    "t2,C1,Q1,B1,K9,2024-01-05,renewal,1000.00,0.1,100.00,25.00,75.00,paid,2024-02-01,S9",
    "t1,C10,P3,A2,K1,2024-02-29,override,0,0.03,0,4.50,-4.50,expected,,",
];

/// Lines 1–3: C11 valid with JSON numbers taken literally (80.5 → 80.50 =
/// 20.12 + 60.38); C12 money in exponent form; a broken line.
const FEBRUARY: &str = r#"{"tenant_id":"t1","commission_id":"C11","policy_id":"P3","agent_id":"A2","carrier_id":"K1","transaction_date":"2024-02-01","kind":"renewal","premium_amount":800,"commission_rate":"0.1","gross_commission":80.5,"agent_commission":"20.12","agency_commission":"60.38","status":null}
{"tenant_id":"t1","commission_id":"C12","policy_id":"P3","agent_id":"A2","carrier_id":"K1","transaction_date":"2024-02-01","kind":"renewal","premium_amount":"800","commission_rate":"0.1","gross_commission":1e2,"agent_commission":"50","agency_commission":"50"}
{broken
"#;

const AGENCIES: &str =
    "tenant_id,agency_id,name,state\nt1,G1,North Agency,OH\nt1,G2,South Agency,TX\nt2,G1,Other Group Agency,CA\n";

fn landing_fixture(t: &TestLake) {
    t.land("commissions/2024-01.csv", &format!("{HEADER}\n{}\n", JANUARY.join("\n")));
    t.land("commissions/2024-02.jsonl", FEBRUARY);
    t.land("agencies/agencies.csv", AGENCIES);
    t.land("policies/notes.xlsx", "PK\u{3}\u{4} not a landing file");
}

async fn run(t: &TestLake) -> Result<cip::pipelines::batch::IngestReport, IngestError> {
    ingest(&t.landing(), &t.lake(), &IngestOptions::default()).await
}

const T1_TOTALS: &str = "
+---+--------+-------+--------+
| n | gross  | agent | agency |
+---+--------+-------+--------+
| 4 | 195.00 | 70.42 | 124.58 |
+---+--------+-------+--------+";

const TOTALS_SQL: &str = "select count(*) as n, sum(gross_commission) as gross, sum(agent_commission) as agent, sum(agency_commission) as agency from commissions";

fn lines(s: &str) -> Vec<&str> {
    s.trim().lines().collect()
}

#[tokio::test]
async fn lands_valid_rows_and_rejects_each_bad_row_with_its_reason() {
    let t = TestLake::new();
    landing_fixture(&t);
    let report = run(&t).await.unwrap();

    assert_eq!(report.snapshot, Some(1));
    assert!(report.published);
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected, c.duplicates), (2, 16, 6, 10, 1));
    assert_eq!(c.upserts.new, 5);
    let reasons: Vec<(&str, u64)> = c.rejected_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        reasons,
        vec![
            ("duplicate_key_conflict", 1),
            ("inconsistent_row", 1),
            ("invalid_date", 1),
            ("invalid_enum", 1),
            ("invalid_money", 2),
            ("malformed_record", 2),
            ("missing_value", 1),
            ("money_precision", 1),
        ]
    );
    let a = &report.entities["agencies"];
    assert_eq!((a.read, a.landed, a.rejected), (3, 3, 0));
    assert_eq!(report.unreadable_files.len(), 1);
    assert_eq!(report.unreadable_files[0].file, "policies/notes.xlsx");
    assert_eq!(report.rows_read, 19);

    assert_batches_eq!(lines(T1_TOTALS), &t.sql(tenant("t1"), TOTALS_SQL).await);
    assert_batches_eq!(
        [
            "+---+--------+-------+--------+",
            "| n | gross  | agent | agency |",
            "+---+--------+-------+--------+",
            "| 1 | 100.00 | 25.00 | 75.00  |",
            "+---+--------+-------+--------+",
        ],
        &t.sql(tenant("t2"), TOTALS_SQL).await
    );
    // Typed storage: dates, decimals and normalised enums.
    assert_batches_eq!(
        [
            "+---------------+------------------+---------+----------------+-----------------+--------+",
            "| commission_id | transaction_date | kind    | premium_amount | commission_rate | status |",
            "+---------------+------------------+---------+----------------+-----------------+--------+",
            "| C1            | 2024-01-15       | new     | 1200.00        | 0.125000        | paid   |",
            "| C11           | 2024-02-01       | renewal | 800.00         | 0.100000        |        |",
            "+---------------+------------------+---------+----------------+-----------------+--------+",
        ],
        &t.sql(
            tenant("t1"),
            "select commission_id, transaction_date, kind, premium_amount, commission_rate, status from commissions where commission_id in ('C1', 'C11') order by commission_id"
        )
        .await
    );
    assert_batches_eq!(
        [
            "+-----------+--------------------+",
            "| agency_id | name               |",
            "+-----------+--------------------+",
            "| G1        | Other Group Agency |",
            "+-----------+--------------------+",
        ],
        &t.sql(tenant("t2"), "select agency_id, name from agencies").await
    );

    // Every bad row is in the rejected-records store with file, line and reason.
    let lake = t.lake();
    let dir = lake.child(&format!("_rejects/{}", report.run_id));
    let files: Vec<_> = lake.store.list(Some(&dir)).try_collect().await.unwrap();
    let mut rejects = Vec::new();
    for f in files {
        for b in parquet_io::read(&lake.store, &f.location, None).await.unwrap() {
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (file, line, code, tenant) = (col("source_file"), col("line"), col("reason_code"), col("tenant_id"));
            let file = file.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            let line = line.as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap();
            let code = code.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            let tenant = tenant.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            for i in 0..b.num_rows() {
                let tenant = if arrow::array::Array::is_null(tenant, i) { "-" } else { tenant.value(i) };
                rejects.push(format!("{} {} {} {}", file.value(i), line.value(i), code.value(i), tenant));
            }
        }
    }
    rejects.sort();
    assert_eq!(
        rejects,
        vec![
            "commissions/2024-01.csv 11 inconsistent_row t1",
            "commissions/2024-01.csv 12 malformed_record t1",
            "commissions/2024-01.csv 4 missing_value t1",
            "commissions/2024-01.csv 5 invalid_date t1",
            "commissions/2024-01.csv 6 invalid_money t1",
            "commissions/2024-01.csv 7 money_precision t1",
            "commissions/2024-01.csv 8 invalid_enum t1",
            "commissions/2024-01.csv 9 duplicate_key_conflict t1",
            "commissions/2024-02.jsonl 2 invalid_money t1",
            "commissions/2024-02.jsonl 3 malformed_record -",
        ]
    );
}

#[tokio::test]
async fn rerun_changes_nothing_and_a_later_file_replaces_a_row() {
    let t = TestLake::new();
    landing_fixture(&t);
    let first = run(&t).await.unwrap();
    let v1 = t.latest().await.unwrap();

    let again = run(&t).await.unwrap();
    assert!(!again.published);
    assert_eq!(again.snapshot, Some(1));
    let c = &again.entities["commissions"];
    assert_eq!((c.upserts.new, c.upserts.updated, c.upserts.unchanged), (0, 0, 5));
    assert_eq!(t.latest().await.unwrap(), v1);
    assert_ne!(first.run_id, again.run_id);

    // A later delivery corrects C2: -35.50 becomes -40.00 (= -16.00 + -24.00).
    t.land(
        "commissions/2024-03.csv",
        &format!("{HEADER}\nt1,C2,P1,A1,K1,2024-03-01,chargeback,-320.00,0.125,-40.00,-16.00,-24.00,expected,,\n"),
    );
    let third = run(&t).await.unwrap();
    assert_eq!(third.snapshot, Some(2));
    let c = &third.entities["commissions"];
    assert_eq!((c.upserts.new, c.upserts.updated, c.upserts.unchanged), (0, 1, 4));
    // 195.00 - (-35.50) + (-40.00) = 190.50; 70.42 + 14.20 - 16.00 = 68.62
    assert_batches_eq!(
        [
            "+---+--------+-------+--------+",
            "| n | gross  | agent | agency |",
            "+---+--------+-------+--------+",
            "| 4 | 190.50 | 68.62 | 121.88 |",
            "+---+--------+-------+--------+",
        ],
        &t.sql(tenant("t1"), TOTALS_SQL).await
    );
    // The previous snapshot still reads as it was.
    assert_batches_eq!(lines(T1_TOTALS), &sql_at(&t.lake(), &v1, tenant("t1"), TOTALS_SQL).await);
    // Tenant t2 was untouched: its file is the very same one.
    let v2 = t.latest().await.unwrap();
    let t2 = |m: &cip::lake::Manifest| m.tenant_files("commissions", "t2").cloned().collect::<Vec<_>>();
    assert_eq!(t2(&v1), t2(&v2));
}

#[tokio::test]
async fn within_one_run_the_later_file_wins() {
    let t = TestLake::new();
    t.land("commissions/a.csv", &format!("{HEADER}\n{}\n", JANUARY[0]));
    t.land(
        "commissions/b.csv",
        &format!("{HEADER}\nt1,C1,P1,A1,K1,2024-01-15,new,1200.00,0.125,150.00,75.00,75.00,paid,2024-02-10,S1\n"),
    );
    let r = run(&t).await.unwrap();
    let c = &r.entities["commissions"];
    assert_eq!((c.upserts.new, c.upserts.superseded), (1, 1));
    assert_batches_eq!(
        ["+-------+", "| agent |", "+-------+", "| 75.00 |", "+-------+"],
        &t.sql(tenant("t1"), "select sum(agent_commission) as agent from commissions").await
    );
}

#[tokio::test]
async fn a_crash_at_any_point_before_publish_leaves_the_previous_snapshot() {
    let t = TestLake::new();
    landing_fixture(&t);
    run(&t).await.unwrap();
    let v1 = t.latest().await.unwrap();
    t.land(
        "commissions/2024-03.csv",
        &format!("{HEADER}\nt1,C2,P1,A1,K1,2024-03-01,chargeback,-320.00,0.125,-40.00,-16.00,-24.00,expected,,\nt1,C20,P9,A1,K1,2024-03-02,new,100,0.1,10,4,6,,,\n"),
    );
    for fail in [FailPoint::AfterFirstPart, FailPoint::BeforePublish] {
        let opts = IngestOptions { fail: Some(fail), ..Default::default() };
        let err = ingest(&t.landing(), &t.lake(), &opts).await.unwrap_err();
        assert!(matches!(err, IngestError::Injected(_)), "{fail:?}: {err}");
        assert_eq!(t.latest().await.unwrap(), v1, "{fail:?}");
        assert_batches_eq!(lines(T1_TOTALS), &t.sql(tenant("t1"), TOTALS_SQL).await);
    }
    // Recovery: the next clean run publishes version 2 with both changes.
    let ok = run(&t).await.unwrap();
    assert_eq!(ok.snapshot, Some(2));
    assert_eq!(snapshot::latest_version(&t.lake()).await.unwrap(), Some(2));
    assert_batches_eq!(
        [
            "+---+--------+-------+--------+",
            "| n | gross  | agent | agency |",
            "+---+--------+-------+--------+",
            "| 5 | 200.50 | 72.62 | 127.88 |",
            "+---+--------+-------+--------+",
        ],
        &t.sql(tenant("t1"), TOTALS_SQL).await
    );
}

#[tokio::test]
async fn a_landing_without_entity_files_is_an_error() {
    let t = TestLake::new();
    t.land("readme.txt", "nothing here");
    let err = run(&t).await.unwrap_err();
    assert!(matches!(err, IngestError::NoFiles(_)), "{err}");
    assert_eq!(t.latest().await, None);
    let lake = t.lake();
    assert!(lake.store.head(&lake.child("_lake/00000000000000000001.json")).await.is_err());
}

#[tokio::test]
async fn landing_and_lake_can_be_any_object_store() {
    // memory:// stores are shared by name within the process.
    let landing = cip::lake::store::open("memory://it-landing/drop").unwrap();
    let lake = cip::lake::store::open("memory://it-lake/lake").unwrap();
    let body = format!("{HEADER}\n{}\n{}\n", JANUARY[0], JANUARY[1]);
    landing.store.put(&landing.child("commissions/x.csv"), body.into()).await.unwrap();
    let report = ingest(&landing, &lake, &IngestOptions::default()).await.unwrap();
    assert_eq!(report.snapshot, Some(1));
    let manifest = snapshot::latest(&lake).await.unwrap().unwrap();
    assert_eq!(manifest.rows("commissions"), 2);
    assert!(manifest.files("commissions")[0].path.starts_with("commissions/tenant_id=t1/"));
    // 150.00 + -35.50
    assert_batches_eq!(
        ["+--------+", "| gross  |", "+--------+", "| 114.50 |", "+--------+"],
        &sql_at(&lake, &manifest, tenant("t1"), "select sum(gross_commission) as gross from commissions").await
    );
}

/// `source_file` of every row in the run's rejected-records store.
async fn rejected_files(t: &TestLake, run_id: &str) -> Vec<String> {
    let lake = t.lake();
    let files: Vec<_> = lake.store.list(Some(&lake.child(&format!("_rejects/{run_id}")))).try_collect().await.unwrap();
    let mut out = Vec::new();
    for f in files {
        for b in parquet_io::read(&lake.store, &f.location, None).await.unwrap() {
            let col = b.column_by_name("source_file").unwrap();
            let col = col.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            out.extend(col.iter().map(|v| v.unwrap().to_string()));
        }
    }
    out.sort();
    out
}

/// (file, error) of each unreadable file of `report`.
fn unreadable(report: &cip::pipelines::batch::IngestReport) -> Vec<(&str, &str)> {
    report.unreadable_files.iter().map(|u| (u.file.as_str(), u.error.as_str())).collect()
}

/// A `HEADER` row without the column `name`, and `row` without its value.
fn without(name: &str, row: &str) -> (String, String) {
    let at = HEADER.split(',').position(|h| h == name).unwrap();
    let drop =
        |s: &str| s.split(',').enumerate().filter(|(i, _)| *i != at).map(|(_, v)| v).collect::<Vec<_>>().join(",");
    (drop(HEADER), drop(row))
}

#[tokio::test]
async fn a_binary_file_is_unreadable_naming_the_missing_columns_and_the_rest_lands() {
    let t = TestLake::new();
    // C1, C2 and C10 of t1 and C1 of t2: all valid.
    let good = [JANUARY[0], JANUARY[1], JANUARY[11], JANUARY[12]];
    t.land("commissions/2024-01.csv", &format!("{HEADER}\n{}\n", good.join("\n")));
    // 16 bytes of gzip ("hello" compressed, truncated): no newline, so the
    // whole file is one header field, and not UTF-8 (0x8b).
    let junk = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07";
    assert_eq!(junk.len(), 16);
    crate::helpers::write(&t.landing_path().join("commissions/junk.csv"), junk);
    let report = run(&t).await.unwrap();

    // Every required commissions column of the contract, in its order.
    assert_eq!(
        unreadable(&report),
        vec![(
            "commissions/junk.csv",
            "header is not valid UTF-8 (field 1); header lacks required columns: tenant_id, commission_id, \
             policy_id, agent_id, carrier_id, transaction_date, kind, premium_amount, commission_rate, \
             gross_commission, agent_commission, agency_commission"
        )]
    );
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected, c.duplicates), (2, 4, 4, 0, 0));
    assert_eq!(c.upserts.new, 4);
    assert_eq!(report.rows_read, 4);
    assert_eq!(report.rows_rejected, 0);
    assert_eq!(rejected_files(&t, &report.run_id).await, Vec::<String>::new());
    assert_eq!(report.snapshot, Some(1));
    assert_eq!(t.latest().await.unwrap().rows("commissions"), 4);
    // 150.00 + -35.50 + 0
    assert_batches_eq!(
        ["+---+--------+", "| n | gross  |", "+---+--------+", "| 3 | 114.50 |", "+---+--------+"],
        &t.sql(tenant("t1"), "select count(*) as n, sum(gross_commission) as gross from commissions").await
    );
}

#[tokio::test]
async fn a_header_missing_one_required_column_is_unreadable_and_none_of_its_rows_is_read() {
    let t = TestLake::new();
    let rows: Vec<(String, String)> =
        [JANUARY[0], JANUARY[1], JANUARY[12]].iter().map(|r| without("gross_commission", r)).collect();
    let header = &rows[0].0;
    assert_eq!(header.split(',').count(), 14);
    let body: Vec<&str> = rows.iter().map(|(_, r)| r.as_str()).collect();
    t.land("commissions/no-gross.csv", &format!("{header}\n{}\n", body.join("\n")));
    t.land("agencies/agencies.csv", AGENCIES);
    let report = run(&t).await.unwrap();

    assert_eq!(
        unreadable(&report),
        vec![("commissions/no-gross.csv", "header lacks required columns: gross_commission")]
    );
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected), (1, 0, 0, 0));
    assert!(c.rejected_by_reason.is_empty());
    assert_eq!(rejected_files(&t, &report.run_id).await, Vec::<String>::new());
    // The agencies still land; no commissions table at all.
    let a = &report.entities["agencies"];
    assert_eq!((a.files, a.read, a.landed, a.rejected), (1, 3, 3, 0));
    assert_eq!(report.rows_read, 3);
    let m = t.latest().await.unwrap();
    assert_eq!((m.rows("agencies"), m.rows("commissions")), (3, 0));
}

#[tokio::test]
async fn a_header_that_is_not_utf8_is_unreadable() {
    let t = TestLake::new();
    // A Latin-1 export: every contract column is there, plus `libellé` (é = 0xe9).
    let mut body = format!("{HEADER},libell").into_bytes();
    body.extend_from_slice(b"\xe9\n");
    for row in [JANUARY[0], JANUARY[1]] {
        body.extend_from_slice(format!("{row},x\n").as_bytes());
    }
    crate::helpers::write(&t.landing_path().join("commissions/latin1.csv"), &body);
    t.land("agencies/agencies.csv", AGENCIES);
    let report = run(&t).await.unwrap();

    assert_eq!(unreadable(&report), vec![("commissions/latin1.csv", "header is not valid UTF-8 (field 16)")]);
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected), (1, 0, 0, 0));
    assert_eq!(rejected_files(&t, &report.run_id).await, Vec::<String>::new());
    assert_eq!(t.latest().await.unwrap().rows("commissions"), 0);
}

#[tokio::test]
async fn an_empty_csv_file_is_unreadable() {
    let t = TestLake::new();
    t.land("commissions/empty.csv", "");
    t.land("agencies/agencies.csv", AGENCIES);
    let report = run(&t).await.unwrap();

    assert_eq!(unreadable(&report), vec![("commissions/empty.csv", "header missing: the file is empty")]);
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected), (1, 0, 0, 0));
    assert_eq!(report.entities["agencies"].landed, 3);
    assert_eq!(report.snapshot, Some(1));
}

#[tokio::test]
async fn json_lines_have_no_header_and_bad_content_is_never_silent() {
    let t = TestLake::new();
    // Row by row: a row without a required key is rejected, the others land.
    let (_, no_gross) = without("gross_commission", JANUARY[1]);
    let keys: Vec<&str> = HEADER.split(',').filter(|h| *h != "gross_commission").collect();
    let obj: serde_json::Map<String, serde_json::Value> =
        keys.iter().zip(no_gross.split(',')).map(|(k, v)| (k.to_string(), v.into())).collect();
    let good = FEBRUARY.lines().next().unwrap();
    t.land("commissions/a.jsonl", &format!("{good}\n{}\n", serde_json::Value::Object(obj)));
    // Not JSON on any line: every line is a malformed record.
    t.land("commissions/b.jsonl", "PK\u{3}\u{4} zipped\nstill, not json\n");
    // Not UTF-8: the file is unreadable.
    crate::helpers::write(&t.landing_path().join("commissions/c.jsonl"), b"\x1f\x8b\x08\x00\xcb\x48\n");
    let report = run(&t).await.unwrap();

    assert_eq!(
        unreadable(&report),
        vec![("commissions/c.jsonl", "not a readable file: stream did not contain valid UTF-8")]
    );
    let c = &report.entities["commissions"];
    assert_eq!((c.files, c.read, c.landed, c.rejected), (3, 4, 1, 3));
    let reasons: Vec<(&str, u64)> = c.rejected_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(reasons, vec![("malformed_record", 2), ("missing_value", 1)]);
    assert_eq!(
        rejected_files(&t, &report.run_id).await,
        vec!["commissions/a.jsonl", "commissions/b.jsonl", "commissions/b.jsonl"]
    );
}

#[tokio::test]
async fn a_tenant_id_that_is_no_safe_directory_name_is_rejected_and_the_rest_lands() {
    let t = TestLake::new();
    // Lines 2–7: only t1 and t-2.b are tenant ids the lake can hold.
    t.land(
        "agencies/agencies.csv",
        "tenant_id,agency_id,name,state\nt1,G1,North,OH\n../t2,G1,Up,OH\na/b,G1,Slash,OH\nt 3,G1,Space,OH\nt%2F,G1,Escaped,OH\nt-2.b,G1,Dotted,TX\n",
    );
    let report = run(&t).await.unwrap();
    let a = &report.entities["agencies"];
    assert_eq!((a.read, a.landed, a.rejected), (6, 2, 4));
    let reasons: Vec<(&str, u64)> = a.rejected_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(reasons, vec![("invalid_tenant_id", 4)]);
    // No directory but the two valid tenants' was written under the table.
    let lake = t.lake();
    let mut dirs: Vec<String> = lake
        .store
        .list(Some(&lake.child("agencies")))
        .map_ok(|m| lake.relative(&m.location))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| !p.contains("_delta_log"))
        .map(|p| p.rsplit_once('/').unwrap().0.to_string())
        .collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs, vec!["agencies/tenant_id=t-2.b", "agencies/tenant_id=t1"]);
    assert_batches_eq!(
        [
            "+-----------+-------+",
            "| agency_id | name  |",
            "+-----------+-------+",
            "| G1        | North |",
            "+-----------+-------+"
        ],
        &t.sql(tenant("t1"), "select agency_id, name from agencies").await
    );
}
