//! Tests of the forecast: expected values are computed by hand or from the
//! formula that generated the data.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::Decimal;

use super::metrics::{
    Acc, coverage, damped_trend, mase, noise_scale, quantile, seasonal_indices, seasonal_naive, seasonal_naive_mae,
    wape,
};
use super::reconcile::split_cents;
use super::series::{self, Kind, month_date, month_of};
use super::*;

fn ymd(y: i32, m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, 1).unwrap()
}

/// One rollup row: (tenant, month, agent, carrier, agency, line, gross).
type Row<'a> = (&'a str, NaiveDate, &'a str, &'a str, Option<&'a str>, Option<&'a str>, f64);

/// A `commissions_monthly` frame as `frames::load` gives it.
fn frame(rows: &[Row]) -> DataFrame {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let n = rows.len();
    let s = |name: &str, v: Vec<Option<&str>>| Column::new(name.into(), v);
    let days: Vec<i32> = rows.iter().map(|r| (r.1 - epoch).num_days() as i32).collect();
    let gross: Vec<f64> = rows.iter().map(|r| r.6).collect();
    let dec = |name: &str, v: Vec<f64>| Column::new(name.into(), v).cast(&DataType::Decimal(18, 2)).unwrap();
    DataFrame::new(
        n,
        vec![
            s("tenant_id", rows.iter().map(|r| Some(r.0)).collect()),
            Column::new("transaction_date".into(), days).cast(&DataType::Date).unwrap(),
            s("kind", vec![Some("new"); n]),
            s("agent_id", rows.iter().map(|r| Some(r.2)).collect()),
            s("carrier_id", rows.iter().map(|r| Some(r.3)).collect()),
            s("agency_id", rows.iter().map(|r| r.4).collect()),
            s("line_of_business", rows.iter().map(|r| r.5).collect()),
            dec("premium_amount", vec![0.0; n]),
            dec("gross_commission", gross.clone()),
            dec("agent_commission", gross.iter().map(|g| g * 0.4).collect()),
        ],
    )
    .unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn facts_read_cents_dates_and_missing_agencies() {
    let df = frame(&[
        ("t1", ymd(2024, 3), "AG-1", "C-1", Some("AGY-1"), Some("auto"), 1234.56),
        ("t1", ymd(2024, 4), "AG-1", "C-1", None, None, -0.07),
    ]);
    let f = series::facts(&df).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].month, f[0].cents, f[0].agency.as_deref()), (month_of(ymd(2024, 3)), 123456, Some("AGY-1")));
    assert_eq!((f[1].cents, f[1].agency.as_deref(), f[1].line.as_deref()), (-7, None, None));
    assert_eq!(month_date(month_of(ymd(2024, 3))), ymd(2024, 3));
    assert_eq!(month_of(ymd(2024, 1)) - month_of(ymd(2023, 12)), 1);
}

#[test]
fn series_are_zero_filled_from_their_first_month_to_the_last() {
    // Agent AG-2 has rows in January and March only; the panel ends in May.
    let df = frame(&[
        ("t1", ymd(2024, 1), "AG-1", "C-1", Some("AGY-1"), Some("auto"), 10.0),
        ("t1", ymd(2024, 2), "AG-1", "C-1", Some("AGY-1"), Some("auto"), 20.0),
        ("t1", ymd(2024, 2), "AG-2", "C-1", Some("AGY-1"), Some("home"), 5.0),
        ("t1", ymd(2024, 4), "AG-2", "C-1", Some("AGY-1"), Some("home"), 7.5),
        ("t1", ymd(2024, 4), "AG-2", "C-2", None, Some("home"), -2.5),
        ("t1", ymd(2024, 7), "AG-2", "C-2", None, Some("home"), 99.0), // after the last month: ignored
    ]);
    let panel = series::build(&series::facts(&df).unwrap(), month_of(ymd(2024, 5)));
    let get = |kind: Kind, id: &str| panel.series.iter().find(|s| s.kind == kind && s.id == id).unwrap();
    let ag2 = get(Kind::Agent, "AG-2");
    assert_eq!(ag2.start, month_of(ymd(2024, 2)));
    assert_eq!(ag2.values, vec![5.0, 0.0, 5.0, 0.0]);
    assert_eq!(get(Kind::Tenant, "").values, vec![10.0, 25.0, 0.0, 5.0, 0.0]);
    assert_eq!(get(Kind::Agency, "AGY-1").values, vec![10.0, 25.0, 0.0, 7.5, 0.0]);
    assert_eq!(get(Kind::Agency, UNASSIGNED).values, vec![-2.5, 0.0]);
    assert_eq!(get(Kind::Cell, "unassigned/AG-2").values, vec![-2.5, 0.0]);
    assert_eq!(get(Kind::Carrier, "C-2").values, vec![-2.5, 0.0]);
    assert_eq!(get(Kind::Line, "home").values, vec![5.0, 0.0, 5.0, 0.0]);
    // AG-2's agent series is the sum of its two cells.
    let t = &panel.tenants[0];
    let g = t.agents.iter().position(|&s| panel.series[s].id == "AG-2").unwrap();
    assert_eq!(t.agent_cells[g].len(), 2);
}

#[test]
fn seasonal_naive_mae_is_the_mean_absolute_change_over_a_year() {
    let mut h = vec![10.0; 12];
    h.extend([13.0, 8.0]);
    // |13 - 10| and |8 - 10|.
    assert_eq!(seasonal_naive_mae(&h), Some(2.5));
    assert_eq!(seasonal_naive_mae(&h[..12]), None);
    assert_eq!(seasonal_naive_mae(&[5.0; 20]), None);
    // Shorter than 13 months: the naive MAE, then the mean |amount|.
    assert_eq!(noise_scale(&[4.0, 6.0, 3.0]), 2.5);
    assert_eq!(noise_scale(&[-4.0, -4.0]), 4.0);
    assert_eq!(noise_scale(&h), 2.5);
}

#[test]
fn mase_wape_and_coverage_on_hand_examples() {
    // Errors 2 and 3, scale 2.5: (2 + 3) / 2 / 2.5.
    assert_eq!(mase(&[10.0, 20.0], &[12.0, 17.0], 2.5), Some(1.0));
    assert_eq!(mase(&[10.0], &[12.0], 0.0), None);
    // (2 + 3) / (10 + 20); a chargeback month counts by its size.
    assert!(close(wape(&[10.0, -20.0], &[12.0, -17.0]).unwrap(), 1.0 / 6.0, 1e-12));
    assert_eq!(wape(&[0.0], &[1.0]), None);
    // 1 in [0, 2]; 5 not in [6, 8]; 10 in [9, 10] (bounds count).
    assert!(close(coverage(&[1.0, 5.0, 10.0], &[0.0, 6.0, 9.0], &[2.0, 8.0, 10.0]).unwrap(), 2.0 / 3.0, 1e-12));
    // Pairs without a scale count for WAPE but not for MASE.
    let mut acc = Acc::default();
    acc.add(10.0, 14.0, Some(2.0));
    acc.add(10.0, 4.0, None);
    assert_eq!((acc.mase(), acc.wape()), (Some(2.0), Some(0.5)));
    assert_eq!(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
    assert_eq!(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.9), 3.7);
}

#[test]
fn seasonal_naive_takes_the_same_month_a_year_earlier() {
    let h: Vec<f64> = (1..=14).map(f64::from).collect();
    // Origin = month 14; month 15 is 12 after month 3 (value 3), …
    assert_eq!(seasonal_naive(&h, 3), vec![3.0, 4.0, 5.0]);
    // 13 ahead of a 12-month history: two years back, month 1.
    let year: Vec<f64> = (1..=12).map(f64::from).collect();
    assert_eq!(seasonal_naive(&year, 13)[12], 1.0);
    assert_eq!(seasonal_naive(&year, 1), vec![1.0]);
    // Shorter than a year: the last value.
    assert_eq!(seasonal_naive(&[7.0, 9.0], 2), vec![9.0, 9.0]);
}

#[test]
fn seasonal_indices_recover_an_additive_pattern_and_damped_trend_keeps_a_constant() {
    let pattern = [30.0, 20.0, 10.0, 0.0, -10.0, -20.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0];
    // 36 months starting in April (month0 = 3).
    let h: Vec<f64> = (0..36).map(|t| 500.0 + pattern[(3 + t) % 12]).collect();
    let idx = seasonal_indices(&h, 3);
    for m in 0..12 {
        assert!(close(idx[m], pattern[m], 1e-9), "{m}: {} vs {}", idx[m], pattern[m]);
    }
    // The deseasonalised series is the constant 500, so every forecast is
    // 500 plus the target month's index: month 37 is April again.
    let f = damped_trend(&h, 3, 3);
    assert!(close(f[0], 500.0 + pattern[3], 1e-9) && close(f[1], 500.0 + pattern[4], 1e-9), "{f:?}");
    assert_eq!(damped_trend(&[8.0; 5], 0, 2), vec![8.0, 8.0]);
}

#[test]
fn splitting_cents_keeps_the_total_exactly() {
    assert_eq!(split_cents(100, &[1.0, 1.0, 1.0]), vec![33, 34, 33]);
    assert_eq!(split_cents(-101, &[1.0, 0.0, 3.0]), vec![-25, 0, -76]);
    assert_eq!(split_cents(7, &[0.0, 0.0]), vec![7, 0]);
}

#[test]
fn features_do_not_look_past_the_origin() {
    let df = frame(
        &(0..40)
            .map(|m| {
                ("t1", month_date(month_of(ymd(2021, 1)) + m), "AG-1", "C-1", Some("A"), Some("auto"), 100.0 + m as f64)
            })
            .collect::<Vec<_>>(),
    );
    let facts = series::facts(&df).unwrap();
    let panel = series::build(&facts, month_of(ymd(2024, 4)));
    let mut changed = panel.series[1].clone();
    let o = month_of(ymd(2023, 6));
    for m in o + 1..=panel.last {
        changed.values[(m - changed.start) as usize] = -1e6;
    }
    for h in 1..=12 {
        let (mut a, mut b) = ([0.0; features::NF], [0.0; features::NF]);
        assert_eq!(features::row(&panel.series[1], None, o, h, &mut a), features::row(&changed, None, o, h, &mut b));
        assert_eq!(a, b);
    }
    // The level is the mean |amount| of the 12 months up to the origin:
    // months 19..=30 of the series (values 118..=129).
    assert_eq!(features::level(&panel.series[1], o), 123.5);
}

/// Three agencies of one tenant over 2020-01 .. 2024-12 from known formulas:
/// A pure seasonal, B a pure linear trend, C seasonal on a trend; A and C
/// split over two agents each (60/40 and 70/30), carriers and lines mixed.
fn known(month: i32) -> [f64; 3] {
    let t = f64::from(month);
    let season = [1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2][month.rem_euclid(12) as usize];
    [2000.0 * season, 500.0 + 10.0 * (t - 24240.0), (1500.0 + 5.0 * (t - 24240.0)) * season]
}

fn known_frame() -> DataFrame {
    let mut rows = Vec::new();
    for m in month_of(ymd(2020, 1))..=month_of(ymd(2024, 12)) {
        let [a, b, c] = known(m);
        let d = month_date(m);
        let round = |v: f64| (v * 100.0).round() / 100.0;
        rows.push(("t1", d, "AG-1", "C-1", Some("A"), Some("auto"), round(a * 0.6)));
        rows.push(("t1", d, "AG-2", "C-2", Some("A"), Some("home"), round(a * 0.4)));
        rows.push(("t1", d, "AG-3", "C-1", Some("B"), Some("home"), round(b)));
        rows.push(("t1", d, "AG-4", "C-2", Some("C"), Some("auto"), round(c * 0.7)));
        rows.push(("t1", d, "AG-5", "C-1", Some("C"), Some("auto"), round(c * 0.3)));
    }
    frame(&rows)
}

#[test]
fn known_patterns_are_forecast_within_one_percent() {
    let df = known_frame();
    let (model, report) = train(&df, ymd(2024, 12)).unwrap();
    let rows = model.forecast(&df, ymd(2024, 12), 12).unwrap();
    for (i, agency) in ["A", "B", "C"].iter().enumerate() {
        let mut worst: f64 = 0.0;
        for r in rows.iter().filter(|r| r.scope == SeriesScope::Agency && r.series_id == *agency) {
            let truth = known(month_of(r.month))[i];
            let got: f64 = r.point.try_into().unwrap();
            worst = worst.max((got / truth - 1.0).abs());
        }
        println!("{agency}: worst relative error {worst:.5}");
        assert!(worst < 0.01, "{agency}: {worst}");
    }
    assert_eq!(rows.iter().filter(|r| r.scope == SeriesScope::Agency).count(), 36);
    assert_eq!(report.window_to, ymd(2024, 12));
    assert_eq!(report.window_from, ymd(2020, 1));
}

#[test]
fn agents_add_up_to_their_agency_and_agencies_to_the_tenant() {
    let df = known_frame();
    // Carriers and lines are left as forecast by default; with `cross` they
    // are split from the tenant's total and add up to it too.
    for cross in [false, true] {
        let config = model::Config { cross, ..model::Config::default() };
        let (model, _) = train_with(&df, ymd(2024, 12), &config).unwrap();
        let rows = model.forecast(&df, ymd(2024, 12), 12).unwrap();
        let agency_of = BTreeMap::from([("AG-1", "A"), ("AG-2", "A"), ("AG-3", "B"), ("AG-4", "C"), ("AG-5", "C")]);
        let mut sums: BTreeMap<(NaiveDate, SeriesScope, String), Decimal> = BTreeMap::new();
        for r in &rows {
            let parent = match r.scope {
                SeriesScope::Agent => (SeriesScope::Agency, agency_of[r.series_id.as_str()].to_string()),
                SeriesScope::Tenant => continue,
                scope => (scope, String::new()),
            };
            *sums.entry((r.month, parent.0, parent.1)).or_default() += r.point;
        }
        let point = |scope: SeriesScope, id: &str, month: NaiveDate| {
            rows.iter().find(|r| r.scope == scope && r.series_id == id && r.month == month).unwrap().point
        };
        for h in 1..=12 {
            let month = month_date(month_of(ymd(2024, 12)) + h);
            for agency in ["A", "B", "C"] {
                let agents = sums[&(month, SeriesScope::Agency, agency.to_string())];
                assert_eq!(agents, point(SeriesScope::Agency, agency, month));
            }
            let tenant = point(SeriesScope::Tenant, "", month);
            assert_eq!(sums[&(month, SeriesScope::Agency, String::new())], tenant);
            let carriers = sums[&(month, SeriesScope::Carrier, String::new())];
            let lines = sums[&(month, SeriesScope::Line, String::new())];
            if cross {
                assert_eq!((carriers, lines), (tenant, tenant));
            } else {
                // Unreconciled, but each is close to the truth: within 2 %.
                let t: f64 = tenant.try_into().unwrap();
                let c: f64 = carriers.try_into().unwrap();
                assert!(close(c, t, 0.02 * t), "{month}: {c} vs {t}");
            }
        }
    }
}

#[test]
fn a_reloaded_model_gives_identical_forecasts_and_ordered_intervals() {
    let df = known_frame();
    let (model, _) = train(&df, ymd(2024, 12)).unwrap();
    let json = serde_json::to_string(&model).unwrap();
    let back: ForecastModel = serde_json::from_str(&json).unwrap();
    let (a, b) = (model.forecast(&df, ymd(2024, 12), 12).unwrap(), back.forecast(&df, ymd(2024, 12), 12).unwrap());
    assert_eq!(a, b);
    // JSON floats may come back one ulp off; the forecasts above are in cents.
    for (x, y) in model.accuracy().iter().zip(back.accuracy()) {
        assert_eq!((&x.series_id, &x.bucket), (&y.series_id, &y.bucket));
        assert!(close(x.mase.unwrap_or(0.0), y.mase.unwrap_or(0.0), 1e-12));
    }
    // 1 tenant + 3 agencies + 5 agents + 2 carriers + 2 lines, 12 months each.
    assert_eq!(a.len(), 13 * 12);
    for r in &a {
        assert!(
            r.lower95 <= r.lower80 && r.lower80 <= r.point && r.point <= r.upper80 && r.upper80 <= r.upper95,
            "{r:?}"
        );
        assert_eq!(r.month, month_date(month_of(ymd(2024, 12)) + r.horizon as i32));
    }
}

/// Trains on a real lake and prints the report. `CIP_MODELS_LAKE=/path`;
/// optional `CIP_MODELS_LAST=YYYY-MM-01` (default: the last month with
/// rows), `CIP_FORECAST_PENALTY`, `CIP_FORECAST_CROSS=0|1`.
#[tokio::test]
#[ignore]
async fn demo_lake_report() {
    let Ok(path) = std::env::var("CIP_MODELS_LAKE") else {
        eprintln!("set CIP_MODELS_LAKE");
        return;
    };
    let lake = crate::lake::store::open(&path).unwrap();
    let manifest = crate::lake::snapshot::latest(&lake).await.unwrap().expect("the lake has a snapshot");
    let started = std::time::Instant::now();
    let df = crate::models::frames::load(&lake, &manifest, "commissions_monthly", None).await.unwrap();
    let loaded = started.elapsed().as_secs_f64();
    let last = match std::env::var("CIP_MODELS_LAST") {
        Ok(d) => d.parse().unwrap(),
        Err(_) => month_date(series::facts(&df).unwrap().iter().map(|f| f.month).max().unwrap()),
    };
    let mut config = model::Config::default();
    if let Ok(p) = std::env::var("CIP_FORECAST_PENALTY") {
        config.penalty = p.parse().unwrap();
    }
    if let Ok(w) = std::env::var("CIP_FORECAST_WINDOW") {
        config.window = w.parse().unwrap();
    }
    if let Ok(c) = std::env::var("CIP_FORECAST_CROSS") {
        config.cross = c == "1";
    }
    let started = std::time::Instant::now();
    let (model, report) = train_with(&df, last, &config).unwrap();
    let trained = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let rows = model.forecast(&df, last, 12).unwrap();
    let forecast = started.elapsed().as_secs_f64();
    println!("{}", report.card);
    println!("{}", serde_json::to_string_pretty(&report.metrics).unwrap());
    println!(
        "rollup rows {}, load {loaded:.2}s, train+backtest {trained:.2}s, forecast {} rows {forecast:.3}s, last month {last}",
        df.height(),
        rows.len()
    );
}

#[test]
fn ridge_matches_the_closed_form() {
    // y = 2 + 3x on x = 0..4: mean(y) = 8; standardised x has variance 1 and
    // covariance 3·√2 with y, so the ridge slope on x is 3 / (1 + penalty).
    let x = ndarray::Array2::from_shape_vec((5, 1), vec![0.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
    let y = ndarray::Array1::from(vec![2.0, 5.0, 8.0, 11.0, 14.0]);
    let m = model::Ridge::fit(&x, &y, 0.5).unwrap();
    let p = m.predict(&ndarray::Array2::from_shape_vec((2, 1), vec![2.0, 4.0]).unwrap());
    assert!(close(p[0], 8.0, 1e-6) && close(p[1], 12.0, 1e-6), "{p}");
    assert!(close(m.coefficients()[0], 2.0, 1e-6));
    // Two copies of a column share the weight.
    let x2 = ndarray::concatenate![ndarray::Axis(1), x, x];
    let m2 = model::Ridge::fit(&x2, &y, 1e-9).unwrap();
    let p2 = m2.predict(&ndarray::Array2::from_shape_vec((1, 2), vec![4.0, 4.0]).unwrap());
    assert!(close(p2[0], 14.0, 1e-4), "{p2}");
}

#[test]
#[ignore]
fn ridge_timing() {
    let df = known_frame();
    let panel = series::build(&series::facts(&df).unwrap(), month_of(ymd(2024, 12)));
    let t = std::time::Instant::now();
    let grid = model::Grid::build(&panel);
    println!("grid {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let at = model::fit_at(&panel, &grid, panel.last, &model::Config::default()).unwrap();
    println!("fit_at {:?}", t.elapsed());
    for (k, ms) in &at.fitted.models {
        println!("{k:?} {:?}", ms.iter().map(|m| m.as_ref().map(|m| m.steps())).collect::<Vec<_>>());
    }
    let t = std::time::Instant::now();
    for s in &panel.series {
        metrics::damped_trend(&s.values, 0, 12);
    }
    println!("damped {:?}", t.elapsed());
}

#[test]
fn jacobi_eigenvectors_diagonalise_a_symmetric_matrix() {
    // [[2, 1], [1, 2]] has eigenvalues 1 and 3 on (1, -1)/√2 and (1, 1)/√2.
    let m = ndarray::array![[2.0, 1.0], [1.0, 2.0]];
    let (e, v) = model::symmetric_eigen(&m);
    let mut sorted = e.to_vec();
    sorted.sort_by(f64::total_cmp);
    assert!(close(sorted[0], 1.0, 1e-12) && close(sorted[1], 3.0, 1e-12), "{e}");
    let back = v.dot(&ndarray::Array2::from_diag(&e)).dot(&v.t());
    assert!(back.iter().zip(m.iter()).all(|(a, b)| close(*a, *b, 1e-12)), "{back}");
    assert!(close(v.column(0).dot(&v.column(1)), 0.0, 1e-12));
}

#[test]
fn a_five_month_history_is_forecast_by_its_recent_level_with_fallback_intervals() {
    // Too few rows for any model: the fallback is the same month last year
    // grown by the yearly growth; without a year of history that is the mean
    // of the last 3 months (300, 400, 500 → 400). No backtest origin exists,
    // so the intervals are the fallback quantiles (±1.6 and ±2.5) times the
    // naive MAE (100).
    let rows: Vec<Row> =
        (1..=5).map(|m| ("t1", ymd(2025, m), "AG-1", "C-1", Some("A"), Some("auto"), 100.0 * f64::from(m))).collect();
    let df = frame(&rows);
    let (model, report) = train(&df, ymd(2025, 5)).unwrap();
    assert!(model.accuracy().is_empty());
    assert_eq!(report.metrics["backtest"]["origins"], 0);
    let out = model.forecast(&df, ymd(2025, 5), 3).unwrap();
    assert_eq!(out.len(), 5 * 3);
    let d = |v: i64| Decimal::new(v * 100, 2);
    for r in &out {
        assert_eq!(
            (r.point, r.lower80, r.upper80, r.lower95, r.upper95),
            (d(400), d(240), d(560), d(150), d(650)),
            "{r:?}"
        );
    }
    assert!(model.forecast(&df, ymd(2025, 5), 13).is_err());
}

#[test]
fn each_tenant_gets_the_backtest_of_its_own_series() {
    // t1: the known book; t2: agencies A and B only, three times as large, from 2022 on.
    let mut rows = Vec::new();
    for m in month_of(ymd(2020, 1))..=month_of(ymd(2024, 12)) {
        let [a, b, c] = known(m);
        let d = month_date(m);
        let round = |v: f64| (v * 100.0).round() / 100.0;
        rows.push(("t1", d, "AG-1", "C-1", Some("A"), Some("auto"), round(a * 0.6)));
        rows.push(("t1", d, "AG-2", "C-2", Some("A"), Some("home"), round(a * 0.4)));
        rows.push(("t1", d, "AG-3", "C-1", Some("B"), Some("home"), round(b)));
        rows.push(("t1", d, "AG-5", "C-1", Some("C"), Some("auto"), round(c)));
        if m >= month_of(ymd(2022, 1)) {
            rows.push(("t2", d, "Z-1", "C-9", Some("A"), Some("auto"), round(3.0 * a + 7.0 * f64::from(m % 5))));
            rows.push(("t2", d, "Z-2", "C-9", Some("B"), Some("home"), round(3.0 * b)));
        }
    }
    let df = frame(&rows);
    let (model, report) = train(&df, ymd(2024, 12)).unwrap();
    let (pooled, by) = (&report.metrics, &report.metrics_by_tenant);
    assert_eq!(pooled["contributing_tenants"], 2);
    assert_eq!(by.keys().collect::<Vec<_>>(), ["t1", "t2"]);
    // Each tenant's scope figures are those of its own series' accuracy rows
    // (the rows the API serves per series): the tenant's total alone, and the
    // mean MASE of its agencies.
    for t in ["t1", "t2"] {
        let f = &by[t];
        assert_eq!(f["tenant_id"], t);
        for b in BUCKETS {
            let own: Vec<&AccuracyRow> =
                model.accuracy().iter().filter(|r| r.tenant_id == t && r.bucket == b).collect();
            let total = own.iter().find(|r| r.scope == SeriesScope::Tenant).unwrap();
            let m = &f["scopes"]["tenant"]["buckets"][b]["model"];
            assert_eq!(m["mase"].as_f64(), total.mase, "{t} {b}");
            assert_eq!(m["wape"].as_f64(), total.wape, "{t} {b}");
            assert_eq!(m["coverage80"].as_f64(), total.coverage80, "{t} {b}");
            let agencies: Vec<f64> =
                own.iter().filter(|r| r.scope == SeriesScope::Agency).filter_map(|r| r.mase).collect();
            let mean = agencies.iter().sum::<f64>() / agencies.len() as f64;
            let got = f["scopes"]["agency"]["buckets"][b]["model"]["mase"].as_f64().unwrap();
            assert!(close(got, mean, 1e-12), "{t} {b}: {got} vs {mean}");
            assert_eq!(f["scopes"]["agency"]["buckets"][b]["model"]["series_with_mase"], agencies.len());
        }
        assert!(f.get("coefficients_h1").is_none() && f.get("tenants").is_none(), "no pooled figure per tenant");
    }
    assert_eq!(by["t1"]["scopes"]["agency"]["series"], 3);
    assert_eq!(by["t2"]["scopes"]["agency"]["series"], 2);
    assert_eq!(by["t1"]["training_window"]["from"], "2020-01-01");
    assert_eq!(by["t2"]["training_window"]["from"], "2022-01-01");
    // t2 starts in 2022: it was forecast only from its first month on.
    assert!(by["t2"]["backtest"]["origins"].as_u64().unwrap() <= pooled["backtest"]["origins"].as_u64().unwrap());
    assert_ne!(by["t1"]["scopes"]["tenant"], by["t2"]["scopes"]["tenant"]);
    assert!(report.card.contains("Backtest per tenant"), "{}", report.card);
}
