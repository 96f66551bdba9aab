//! The generator and the pipeline checked against each other: every figure
//! in the lake is recomputed here from the CSV text with exact decimal
//! arithmetic, and every defect the generator planted must come back as a
//! reject with the reason it was planted for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, Int64Type, UInt64Type};
use chrono::NaiveDate;
use cip::contract::{Entity, Kind};
use cip::generate::{Format, GenerateOptions, generate};
use cip::lake::parquet_io;
use cip::pipelines::batch::{IngestOptions, IngestReport, ingest};
use cip::query::tables::Scope;
use futures::TryStreamExt;
use rust_decimal::Decimal;

use crate::helpers::TestLake;

fn options(t: &TestLake, format: Format, bad_row_rate: f64) -> GenerateOptions {
    GenerateOptions {
        out: t.landing_path(),
        truth: t.dir.path().join("truth"),
        policies: 3_000,
        seed: 11,
        tenants: 3,
        format,
        bad_row_rate,
        start: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
        end: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    }
}

/// (file, line, reason) of every planted defect.
fn planted(truth: &Path) -> BTreeSet<(String, u64, String)> {
    let mut r = csv::Reader::from_path(truth.join("rejects.csv")).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[1].to_string(), rec[2].parse().unwrap(), rec[3].to_string())
        })
        .collect()
}

/// (file, line, reason) of every reject the run stored.
async fn stored_rejects(t: &TestLake, report: &IngestReport) -> BTreeSet<(String, u64, String)> {
    let lake = t.lake();
    let dir = lake.child(&format!("_rejects/{}", report.run_id));
    let files: Vec<_> = lake.store.list(Some(&dir)).try_collect().await.unwrap();
    let mut out = BTreeSet::new();
    for f in files {
        for b in parquet_io::read(&lake.store, &f.location, None).await.unwrap() {
            let file = b.column_by_name("source_file").unwrap().as_string::<i32>().clone();
            let line = b.column_by_name("line").unwrap().as_primitive::<UInt64Type>().clone();
            let code = b.column_by_name("reason_code").unwrap().as_string::<i32>().clone();
            for i in 0..b.num_rows() {
                out.insert((file.value(i).to_string(), line.value(i), code.value(i).to_string()));
            }
        }
    }
    out
}

/// Per entity and tenant: row count and the sum of every money column,
/// recomputed from the landing CSV text (rows the truth says are bad are
/// skipped; a later row with the same key replaces an earlier one).
fn expected_from_csv(landing: &Path, bad: &BTreeSet<(String, u64, String)>) -> BTreeMap<String, String> {
    let bad_lines: BTreeSet<(String, u64)> = bad.iter().map(|(f, l, _)| (f.clone(), *l)).collect();
    let mut out = BTreeMap::new();
    for entity in Entity::ALL {
        let mut files: Vec<_> = std::fs::read_dir(landing.join(entity.name()))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        // (tenant, key) → row as column → text
        let mut rows: HashMap<(String, Vec<String>), HashMap<String, String>> = HashMap::new();
        for path in files {
            let rel = format!("{}/{}", entity.name(), path.file_name().unwrap().to_str().unwrap());
            let mut r = csv::Reader::from_path(&path).unwrap();
            let headers = r.headers().unwrap().clone();
            for rec in r.records() {
                let rec = rec.unwrap();
                let line = rec.position().unwrap().line();
                if bad_lines.contains(&(rel.clone(), line)) {
                    continue;
                }
                let row: HashMap<String, String> =
                    headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.trim().to_string())).collect();
                let key = entity.key().iter().map(|k| row[*k].clone()).collect();
                rows.insert((row["tenant_id"].clone(), key), row);
            }
        }
        let money: Vec<&str> = entity.columns().iter().filter(|c| c.kind == Kind::Money).map(|c| c.name).collect();
        let mut per_tenant: BTreeMap<String, (u64, Vec<Decimal>)> = BTreeMap::new();
        for ((tenant, _), row) in rows {
            let e = per_tenant.entry(tenant).or_insert_with(|| (0, vec![Decimal::ZERO; money.len()]));
            e.0 += 1;
            for (i, m) in money.iter().enumerate() {
                if let Some(v) = row.get(*m).filter(|v| !v.is_empty()) {
                    e.1[i] += Decimal::from_str(v).unwrap();
                }
            }
        }
        for (tenant, (n, sums)) in per_tenant {
            let sums: Vec<String> = sums.iter().map(|d| format!("{d:.2}")).collect();
            out.insert(format!("{} {tenant}", entity.name()), format!("{n} {}", sums.join(" ")));
        }
    }
    out
}

/// The same figures, from the lake through DataFusion.
async fn actual_from_lake(t: &TestLake) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entity in Entity::ALL {
        let money: Vec<&str> = entity.columns().iter().filter(|c| c.kind == Kind::Money).map(|c| c.name).collect();
        let sums: String = money.iter().map(|m| format!(", coalesce(sum({m}), 0)")).collect();
        let sql = format!("select tenant_id, count(*) {sums} from {} group by tenant_id", entity.name());
        for b in t.sql(Scope::AllTenants, &sql).await {
            for i in 0..b.num_rows() {
                let tenant = b.column(0).as_string::<i32>().value(i);
                let n = b.column(1).as_primitive::<Int64Type>().value(i);
                let sums: Vec<String> = (2..b.num_columns())
                    .map(|c| {
                        let col = b.column(c).as_primitive::<Decimal128Type>();
                        assert!(!col.is_null(i));
                        Decimal::from_i128_with_scale(col.value(i), 2).to_string()
                    })
                    .collect();
                out.insert(format!("{} {tenant}", entity.name()), format!("{n} {}", sums.join(" ")));
            }
        }
    }
    out
}

#[tokio::test]
async fn generated_landing_lands_to_the_cent_and_every_planted_defect_is_rejected() {
    let t = TestLake::new();
    let opts = options(&t, Format::Csv, 0.01);
    generate(&opts).unwrap();
    let report = ingest(&t.landing(), &t.lake(), &IngestOptions::default()).await.unwrap();
    assert!(report.unreadable_files.is_empty());

    let truth = planted(&opts.truth);
    let reasons: BTreeSet<&str> = truth.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        BTreeSet::from([
            "duplicate_key_conflict",
            "invalid_date",
            "invalid_enum",
            "invalid_money",
            "missing_value",
            "money_precision"
        ]),
        "the generator plants every class of defect"
    );
    assert_eq!(stored_rejects(&t, &report).await, truth);
    assert_eq!(report.rows_rejected, truth.len() as u64);

    let expected = expected_from_csv(&t.landing_path(), &truth);
    assert!(expected.keys().any(|k| k.starts_with("commissions ")));
    assert_eq!(actual_from_lake(&t).await, expected);
}

#[tokio::test]
async fn csv_and_json_lines_of_one_book_land_the_same_figures() {
    let csv = TestLake::new();
    generate(&options(&csv, Format::Csv, 0.0)).unwrap();
    ingest(&csv.landing(), &csv.lake(), &IngestOptions::default()).await.unwrap();
    let jsonl = TestLake::new();
    generate(&options(&jsonl, Format::Jsonl, 0.0)).unwrap();
    let report = ingest(&jsonl.landing(), &jsonl.lake(), &IngestOptions::default()).await.unwrap();
    assert_eq!(report.rows_rejected, 0);
    let figures = actual_from_lake(&csv).await;
    assert!(figures.len() >= 3 * 7, "every entity for every tenant: {figures:?}");
    assert_eq!(actual_from_lake(&jsonl).await, figures);
}
