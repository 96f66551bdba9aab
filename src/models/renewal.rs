//! The renewal classifier. (Owned by the renewal work; see the issue and
//! docs/models-renewal.md.)
//!
//! A linfa logistic regression on standardised, hand-shaped features (the
//! premium change as a hinge above 5 %, tenure capped at 5 terms, bundle
//! flags, trailing retention rates as logits, the line one-hot), calibrated
//! by Platt scaling on the 3 months of expirations before the test year.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{Months, NaiveDate};
use linfa::prelude::*;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use ndarray::{Array1, Array2, Axis};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::eval;
use super::features::{date, day};

pub const MODEL_NAME: &str = "renewal";
/// Months of expirations held out for the test.
pub const TEST_MONTHS: u32 = 12;
/// Months of expirations before the test (or, for the served model, the
/// latest months) on which the calibration is fitted.
pub const CALIBRATION_MONTHS: u32 = 3;
/// L2 penalty of the logistic regression (its loss is a sum over rows, so
/// this is negligible at our row counts and only pins down the collinear
/// one-hot levels).
const ALPHA: f64 = 1.0;
/// Rows observed before the tenant has this much history (trailing rates
/// still empty, every tenure 1) are left out of the fit; the test and
/// scoring rows all have it.
pub const MIN_HISTORY_DAYS: i32 = 365;
/// Drivers reported per score.
pub const TOP_DRIVERS: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewalModel {
    /// Design columns, in order (numeric features, then `line=<x>` one-hots).
    pub features: Vec<String>,
    /// Lines with a one-hot column; another line gets none.
    pub lines: Vec<String>,
    /// Standardisation of each design column (training rows).
    #[serde(with = "exact::vec")]
    pub mean: Vec<f64>,
    #[serde(with = "exact::vec")]
    pub sd: Vec<f64>,
    /// Log-odds of renewal per standard deviation of each design column.
    #[serde(with = "exact::vec")]
    pub coef: Vec<f64>,
    #[serde(with = "exact")]
    pub intercept: f64,
    /// Platt calibration: p = σ(a · raw log-odds + b).
    #[serde(with = "exact")]
    pub platt_a: f64,
    #[serde(with = "exact")]
    pub platt_b: f64,
    /// Renewal rate of the rows the regression was fitted on.
    pub base_rate: f64,
    /// Expirations the regression and the calibration were fitted on.
    pub fit_window: (NaiveDate, NaiveDate),
    pub calibration_window: (NaiveDate, NaiveDate),
}

/// Parameters as decimal strings that parse back to the same bits
/// (serde_json's own float parsing may be one ulp off without its
/// `float_roundtrip` feature; Rust's `{:?}` and `parse` are exact).
mod exact {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }

    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for x in v {
                seq.serialize_element(&format!("{x:?}"))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Vec::<String>::deserialize(d)?.iter().map(|x| x.parse().map_err(D::Error::custom)).collect()
        }
    }
}

/// What training measured, for `metrics.json` and the model card.
pub struct TrainReport {
    /// Over all tenants' examples (with `contributing_tenants`).
    pub metrics: serde_json::Value,
    /// The same evaluation over each tenant's own examples, by tenant id.
    pub metrics_by_tenant: BTreeMap<String, serde_json::Value>,
    pub card: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub feature: String,
    pub description: String,
    /// Contribution to the log-odds of renewing, relative to an average term.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub probability: f64,
    pub drivers: Vec<Driver>,
}

/// Numeric design columns: name, driver group.
const NUMERIC: [(&str, &str); 22] = [
    ("tenure", "tenure"),
    ("premium_change", "premium_change"),
    ("premium_rise_over_5pct", "premium_change"),
    ("log_premium", "premium"),
    ("term_months", "term_length"),
    ("bundled", "bundle"),
    ("bundled_renters_only", "bundle"),
    ("other_policies", "bundle"),
    ("bundle_covers_expiration", "bundle"),
    ("customer_renewals", "customer_renewals"),
    ("customer_cancellations", "customer_cancellations"),
    ("customer_lapses", "customer_lapses"),
    ("customer_years", "customer_years"),
    ("producer_years", "producer"),
    ("producer_terminated", "producer"),
    ("producer_rate", "producer_rate"),
    ("agency_rate", "agency_rate"),
    ("carrier_line_rate", "carrier_line_rate"),
    ("line_rate", "line_rate"),
    ("line_recent_change", "market"),
    ("season_sin", "season"),
    ("season_cos", "season"),
];

/// The example columns the model reads.
struct Rows {
    line: Vec<String>,
    premium: Vec<f64>,
    tenure: Vec<f64>,
    change: Vec<f64>,
    term_months: Vec<f64>,
    other: Vec<f64>,
    renters_only: Vec<f64>,
    covering: Vec<f64>,
    renewals: Vec<f64>,
    cancellations: Vec<f64>,
    lapses: Vec<f64>,
    customer_years: Vec<f64>,
    producer_years: Vec<f64>,
    producer_terminated: Vec<f64>,
    producer_rate: Vec<f64>,
    producer_expirations: Vec<f64>,
    agency_rate: Vec<f64>,
    carrier_line_rate: Vec<f64>,
    line_rate: Vec<f64>,
    recent_change: Vec<f64>,
    month: Vec<f64>,
}

impl Rows {
    fn read(df: &DataFrame) -> Result<Rows> {
        let f = |c: &str| -> Result<Vec<f64>> { Ok(super::frames::to_array1(df, c)?.to_vec()) };
        Ok(Rows {
            line: super::frames::to_strings(df, "line_of_business")?,
            premium: f("premium")?,
            tenure: f("tenure_terms")?,
            change: f("premium_change")?,
            term_months: f("term_months")?,
            other: f("other_policies")?,
            renters_only: f("others_renters_only")?,
            covering: f("others_covering_expiration")?,
            renewals: f("customer_renewals")?,
            cancellations: f("customer_cancellations")?,
            lapses: f("customer_lapses")?,
            customer_years: f("customer_years")?,
            producer_years: f("producer_years")?,
            producer_terminated: f("producer_terminated")?,
            producer_rate: f("producer_rate")?,
            producer_expirations: f("producer_expirations")?,
            agency_rate: f("agency_rate")?,
            carrier_line_rate: f("carrier_line_rate")?,
            line_rate: f("line_rate")?,
            recent_change: f("line_recent_change")?,
            month: f("exp_month")?,
        })
    }

    fn len(&self) -> usize {
        self.line.len()
    }

    /// The numeric design values of row `i`, in `NUMERIC` order.
    fn numeric(&self, i: usize) -> [f64; NUMERIC.len()] {
        let logit = |p: f64| {
            let p = p.clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        };
        let change = self.change[i].clamp(-0.5, 1.0);
        let angle = 2.0 * std::f64::consts::PI * (self.month[i] - 1.0) / 12.0;
        let bundled = self.other[i] > 0.0 && self.renters_only[i] == 0.0;
        [
            (self.tenure[i] - 1.0).clamp(0.0, 5.0),
            change,
            (change - 0.05).max(0.0),
            (1.0 + self.premium[i].max(0.0)).ln(),
            self.term_months[i],
            f64::from(u8::from(bundled)),
            self.renters_only[i],
            self.other[i].min(3.0),
            f64::from(u8::from(self.covering[i] > 0.0)),
            self.renewals[i].min(10.0).ln_1p(),
            self.cancellations[i].min(3.0),
            self.lapses[i].min(3.0),
            self.customer_years[i].min(10.0),
            self.producer_years[i].max(0.0).ln_1p(),
            self.producer_terminated[i],
            logit(self.producer_rate[i]),
            logit(self.agency_rate[i]),
            logit(self.carrier_line_rate[i]),
            logit(self.line_rate[i]),
            self.recent_change[i],
            angle.sin(),
            angle.cos(),
        ]
    }

    /// Unstandardised design matrix with `lines` one-hot after the numeric columns.
    fn design(&self, lines: &[String]) -> Array2<f64> {
        let p = NUMERIC.len() + lines.len();
        let mut x = Array2::zeros((self.len(), p));
        for i in 0..self.len() {
            let mut row = x.row_mut(i);
            for (j, v) in self.numeric(i).into_iter().enumerate() {
                row[j] = v;
            }
            if let Some(k) = lines.iter().position(|l| *l == self.line[i]) {
                row[NUMERIC.len() + k] = 1.0;
            }
        }
        x
    }
}

fn feature_names(lines: &[String]) -> Vec<String> {
    NUMERIC.iter().map(|(n, _)| n.to_string()).chain(lines.iter().map(|l| format!("line={l}"))).collect()
}

fn group_of(feature: &str) -> &str {
    NUMERIC.iter().find(|(n, _)| *n == feature).map_or("line", |(_, g)| g)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// P(y = true) whatever class linfa made positive (linfa #393: its positive
/// class is the more frequent label).
pub fn p_true(m: &FittedLogisticRegression<f64, bool>, x: &Array2<f64>) -> Array1<f64> {
    let p = m.predict_probabilities(x);
    if m.labels().pos.class { p } else { p.mapv(|v| 1.0 - v) }
}

/// Logistic regression of `y` on `x`: (coefficients, intercept) of the
/// log-odds of `true`.
pub fn fit_logistic(x: &Array2<f64>, y: &Array1<bool>) -> Result<(Vec<f64>, f64)> {
    let n = x.nrows() as f64;
    let model = LogisticRegression::default()
        .alpha(ALPHA)
        .max_iterations(300)
        // The loss is a sum over rows: scale the tolerance with them.
        .gradient_tolerance(1e-6 * n)
        .fit(&Dataset::new(x.clone(), y.clone()))
        .map_err(|e| anyhow!("logistic regression: {e}"))?;
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok((model.params().iter().map(|c| sign * c).collect(), sign * model.intercept()))
}

/// Platt scaling: (a, b) maximising the likelihood of σ(a·s + b) by Newton's
/// method. Falls back to the identity without both outcomes.
pub fn fit_platt(s: &[f64], y: &[bool]) -> (f64, f64) {
    let pos = y.iter().filter(|&&v| v).count();
    if pos == 0 || pos == y.len() {
        return (1.0, 0.0);
    }
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&s, &y) in s.iter().zip(y) {
            let p = sigmoid(a * s + b);
            let r = p - f64::from(u8::from(y));
            let w = p * (1.0 - p);
            ga += r * s;
            gb += r;
            haa += w * s * s;
            hab += w * s;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    (a, b)
}

/// Row indices of each slice of an out-of-time split.
struct Split {
    fit: Vec<usize>,
    calibration: Vec<usize>,
    test: Vec<usize>,
    fit_window: (NaiveDate, NaiveDate),
    calibration_window: (NaiveDate, NaiveDate),
    test_window: (NaiveDate, NaiveDate),
}

fn months_before(d: NaiveDate, m: u32) -> NaiveDate {
    d.checked_sub_months(Months::new(m)).expect("date in range")
}

/// Test = expirations in the `TEST_MONTHS` up to `end`, calibration = the
/// `CALIBRATION_MONTHS` before, fit = everything earlier. With
/// `test_months = 0` the latest months calibrate (the served recipe).
fn split(expiration: &[i32], history: &[i32], end: NaiveDate, test_months: u32) -> Split {
    let test_from = months_before(end, test_months);
    let cal_from = months_before(test_from, CALIBRATION_MONTHS);
    let first = expiration.iter().copied().min().map_or(cal_from, date);
    let mut s = Split {
        fit: Vec::new(),
        calibration: Vec::new(),
        test: Vec::new(),
        fit_window: (first, cal_from),
        calibration_window: (cal_from + chrono::Duration::days(1), test_from),
        test_window: (test_from + chrono::Duration::days(1), end),
    };
    for (i, &e) in expiration.iter().enumerate() {
        match e {
            e if e > day(end) => {}
            e if e > day(test_from) => s.test.push(i),
            e if e > day(cal_from) => s.calibration.push(i),
            _ if history[i] >= MIN_HISTORY_DAYS => s.fit.push(i),
            _ => {}
        }
    }
    s
}

fn labels_of(df: &DataFrame) -> Result<Vec<bool>> {
    Ok(super::frames::to_bools(df, "label").context("training examples need a label")?.to_vec())
}

fn int_column(df: &DataFrame, col: &str) -> Result<Vec<i32>> {
    let c = df.column(col)?.cast(&DataType::Int32)?;
    c.i32()?.iter().map(|v| v.with_context(|| format!("null {col}"))).collect()
}

/// Each row's expiration (days) and the tenant's history at its as-of date.
fn dates(df: &DataFrame) -> Result<(Vec<i32>, Vec<i32>)> {
    Ok((int_column(df, "expiration_date")?, int_column(df, "history_days")?))
}

fn rate(y: &[bool]) -> f64 {
    y.iter().filter(|&&v| v).count() as f64 / y.len().max(1) as f64
}

/// Fit the regression on `fit` rows and the calibration on `cal` rows.
fn fit_model(rows: &Rows, y: &[bool], s: &Split) -> Result<RenewalModel> {
    if s.fit.is_empty() {
        bail!("no labelled examples before {} to fit on", s.fit_window.1);
    }
    let mut lines: Vec<String> = s.fit.iter().map(|&i| rows.line[i].clone()).collect();
    lines.sort();
    lines.dedup();
    let x = rows.design(&lines).select(Axis(0), &s.fit);
    let mean = x.mean_axis(Axis(0)).expect("rows");
    let sd = x.std_axis(Axis(0), 0.0).mapv(|v| if v > 1e-12 { v } else { 1.0 });
    let z = (&x - &mean) / &sd;
    let yf: Array1<bool> = s.fit.iter().map(|&i| y[i]).collect();
    let (coef, intercept) = fit_logistic(&z, &yf)?;
    let mut model = RenewalModel {
        features: feature_names(&lines),
        lines,
        mean: mean.to_vec(),
        sd: sd.to_vec(),
        coef,
        intercept,
        platt_a: 1.0,
        platt_b: 0.0,
        base_rate: rate(&yf.to_vec()),
        fit_window: s.fit_window,
        calibration_window: s.calibration_window,
    };
    let raw = model.raw_log_odds(&rows.design(&model.lines).select(Axis(0), &s.calibration));
    let yc: Vec<bool> = s.calibration.iter().map(|&i| y[i]).collect();
    (model.platt_a, model.platt_b) = fit_platt(&raw, &yc);
    Ok(model)
}

pub fn train(examples: &DataFrame, data_date: NaiveDate) -> Result<(RenewalModel, TrainReport)> {
    let rows = Rows::read(examples)?;
    let y = labels_of(examples)?;
    let (exp, history) = dates(examples)?;
    let tenants = super::frames::to_strings(examples, "tenant_id")?;
    let baseline_col = examples.column("baseline_rate")?.cast(&DataType::Float64)?;
    let baseline_raw: Vec<Option<f64>> = baseline_col.f64()?.iter().collect();

    // Evaluated model: out of time.
    let started = std::time::Instant::now();
    let split_eval = split(&exp, &history, data_date, TEST_MONTHS);
    let evaluated = fit_model(&rows, &y, &split_eval)?;
    let x_test = rows.design(&evaluated.lines).select(Axis(0), &split_eval.test);
    let p_model = evaluated.probabilities(&x_test);
    let y_test: Vec<bool> = split_eval.test.iter().map(|&i| y[i]).collect();
    let base = evaluated.base_rate;
    let p_overall = vec![base; y_test.len()];
    let p_line_carrier: Vec<f64> = split_eval.test.iter().map(|&i| baseline_raw[i].unwrap_or(base)).collect();
    let eval_seconds = started.elapsed().as_secs_f64();

    // Served model: same recipe on every labelled row, the latest months calibrating.
    let split_served = split(&exp, &history, data_date, 0);
    let served = fit_model(&rows, &y, &split_served)?;

    let window = |w: (NaiveDate, NaiveDate), idx: &[usize]| {
        let yy: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
        json!({"from": w.0, "to": w.1, "rows": idx.len(), "renewal_rate": rate(&yy)})
    };
    // Every part of the pooled figures, as row indices: the pool is shown to
    // a tenant only if each had enough tenants.
    let all: Vec<usize> = (0..examples.height()).collect();
    let parts = [
        &all,
        &split_eval.fit,
        &split_eval.calibration,
        &split_eval.test,
        &split_served.fit,
        &split_served.calibration,
    ];
    let contributing =
        super::registry::contributing_tenants(parts.iter().map(|p| p.iter().map(|&i| tenants[i].as_str())));
    let metrics = json!({
        "name": MODEL_NAME,
        "method": METHOD,
        "data_date": data_date,
        "lead_days": super::features::LEAD_DAYS,
        "rows": examples.height(),
        "contributing_tenants": contributing,
        // Out-of-time test metrics of the evaluated fit and of the two baselines.
        "model": eval::summary(&p_model, &y_test, base),
        "baseline_overall": eval::summary(&p_overall, &y_test, base),
        "baseline_line_carrier": eval::summary(&p_line_carrier, &y_test, base),
        "evaluation": {
            "fit": window(split_eval.fit_window, &split_eval.fit),
            "calibration": window(split_eval.calibration_window, &split_eval.calibration),
            "test": window(split_eval.test_window, &split_eval.test),
            "platt": {"a": evaluated.platt_a, "b": evaluated.platt_b},
            "min_history_days": MIN_HISTORY_DAYS,
            "seconds": eval_seconds,
        },
        "served": {
            "fit": window(split_served.fit_window, &split_served.fit),
            "calibration": window(split_served.calibration_window, &split_served.calibration),
            "platt": {"a": served.platt_a, "b": served.platt_b},
            "coefficients": served.features.iter().zip(&served.coef).map(|(f, c)| (f.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
            "intercept": served.intercept,
        },
    });
    let metrics_by_tenant = by_tenant(&TenantEval {
        data_date,
        tenants: &tenants,
        exp: &exp,
        y: &y,
        baseline_raw: &baseline_raw,
        eval: &split_eval,
        served: &split_served,
        p_model: &p_model,
    });
    let mut card = model_card(&metrics, &served);
    let _ = writeln!(
        card,
        "\nEvaluation per tenant: `metrics_by_tenant.json` ({} tenants), the same figures over each tenant's own \
         examples; a tenant sees the pooled figures above only where at least {} tenants contribute ({} do).",
        metrics_by_tenant.len(),
        super::registry::MIN_TENANTS,
        contributing
    );
    let report =
        TrainReport { metrics, metrics_by_tenant, card, window_from: served.fit_window.0, window_to: data_date };
    Ok((served, report))
}

const METHOD: &str = "linfa logistic regression (standardised numeric + one-hot line), Platt-calibrated";

/// What the per-tenant evaluation reads.
struct TenantEval<'a> {
    data_date: NaiveDate,
    tenants: &'a [String],
    exp: &'a [i32],
    y: &'a [bool],
    baseline_raw: &'a [Option<f64>],
    eval: &'a Split,
    served: &'a Split,
    /// The evaluated model's probabilities of `eval.test`, in its order.
    p_model: &'a [f64],
}

/// Positions in `idx` of each tenant's rows.
fn positions_by_tenant<'a>(idx: &[usize], tenants: &'a [String]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, &i) in idx.iter().enumerate() {
        out.entry(tenants[i].as_str()).or_default().push(k);
    }
    out
}

/// The evaluation of `train` over each tenant's own rows: its examples,
/// windows, and the test metrics of the model and both baselines on its own
/// test rows. Nothing in it comes from another tenant's rows except through
/// the model's own probabilities: the "overall rate" baseline (and the
/// reference of the Brier skill) is the tenant's own fit renewal rate, not
/// the pool's ([`PRIOR_RATE`](super::features::PRIOR_RATE) without fit rows),
/// and a window starts at the tenant's own first expiration.
fn by_tenant(e: &TenantEval) -> BTreeMap<String, serde_json::Value> {
    let all: Vec<usize> = (0..e.tenants.len()).collect();
    let rows = positions_by_tenant(&all, e.tenants);
    let part = |idx: &[usize]| positions_by_tenant(idx, e.tenants);
    let (fit, cal, test) = (part(&e.eval.fit), part(&e.eval.calibration), part(&e.eval.test));
    let (s_fit, s_cal) = (part(&e.served.fit), part(&e.served.calibration));
    let none = Vec::new();
    let mut out = BTreeMap::new();
    for (t, own) in rows {
        // Row indices of tenant `t` in a part (positions mapped back through it).
        let of = |m: &BTreeMap<&str, Vec<usize>>, idx: &[usize]| -> Vec<usize> {
            m.get(t).unwrap_or(&none).iter().map(|&k| idx[k]).collect()
        };
        let first = own.iter().map(|&i| e.exp[i]).min().map(date).unwrap_or(e.data_date);
        let window = |w: (NaiveDate, NaiveDate), idx: &[usize], from_first: bool| {
            let yy: Vec<bool> = idx.iter().map(|&i| e.y[i]).collect();
            let from = if from_first { first } else { w.0 };
            json!({"from": from, "to": w.1, "rows": idx.len(), "renewal_rate": rate(&yy)})
        };
        let fit_rows = of(&fit, &e.eval.fit);
        let base = if fit_rows.is_empty() {
            super::features::PRIOR_RATE
        } else {
            rate(&fit_rows.iter().map(|&i| e.y[i]).collect::<Vec<_>>())
        };
        let test_pos = test.get(t).unwrap_or(&none);
        let test_rows: Vec<usize> = test_pos.iter().map(|&k| e.eval.test[k]).collect();
        let y_test: Vec<bool> = test_rows.iter().map(|&i| e.y[i]).collect();
        let p_model: Vec<f64> = test_pos.iter().map(|&k| e.p_model[k]).collect();
        let p_line_carrier: Vec<f64> = test_rows.iter().map(|&i| e.baseline_raw[i].unwrap_or(base)).collect();
        let figures = json!({
            "name": MODEL_NAME,
            "method": METHOD,
            "data_date": e.data_date,
            "lead_days": super::features::LEAD_DAYS,
            "tenant_id": t,
            "rows": own.len(),
            "model": eval::summary(&p_model, &y_test, base),
            "baseline_overall": eval::summary(&vec![base; y_test.len()], &y_test, base),
            "baseline_line_carrier": eval::summary(&p_line_carrier, &y_test, base),
            "evaluation": {
                "fit": window(e.eval.fit_window, &fit_rows, true),
                "calibration": window(e.eval.calibration_window, &of(&cal, &e.eval.calibration), false),
                "test": window(e.eval.test_window, &test_rows, false),
                "min_history_days": MIN_HISTORY_DAYS,
            },
            "served": {
                "fit": window(e.served.fit_window, &of(&s_fit, &e.served.fit), true),
                "calibration": window(e.served.calibration_window, &of(&s_cal, &e.served.calibration), false),
            },
        });
        out.insert(t.to_string(), figures);
    }
    out
}

impl RenewalModel {
    fn standardise(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &Array1::from(self.mean.clone())) / &Array1::from(self.sd.clone())
    }

    /// Uncalibrated log-odds of renewal of unstandardised design rows.
    fn raw_log_odds(&self, x: &Array2<f64>) -> Vec<f64> {
        let z = self.standardise(x);
        (z.dot(&Array1::from(self.coef.clone())) + self.intercept).to_vec()
    }

    fn calibrate(&self, raw: f64) -> f64 {
        sigmoid(self.platt_a * raw + self.platt_b)
    }

    fn probabilities(&self, x: &Array2<f64>) -> Vec<f64> {
        self.raw_log_odds(x).into_iter().map(|r| self.calibrate(r)).collect()
    }

    pub fn score(&self, examples: &DataFrame) -> Result<Vec<Score>> {
        let rows = Rows::read(examples)?;
        let x = rows.design(&self.lines);
        let z = self.standardise(&x);
        let mut out = Vec::with_capacity(rows.len());
        for (i, zi) in z.axis_iter(Axis(0)).enumerate() {
            let mut raw = self.intercept;
            // Contributions summed per driver group, in NUMERIC order then line.
            let mut groups: Vec<(&str, f64)> = Vec::with_capacity(16);
            for (j, (&zj, &c)) in zi.iter().zip(&self.coef).enumerate() {
                let contribution = c * zj;
                raw += contribution;
                let g = group_of(&self.features[j]);
                match groups.iter_mut().find(|(name, _)| *name == g) {
                    Some(e) => e.1 += contribution,
                    None => groups.push((g, contribution)),
                }
            }
            // Risks first: the most negative contributions.
            groups.sort_by(|a, b| a.1.total_cmp(&b.1));
            let drivers = groups
                .into_iter()
                .take(TOP_DRIVERS)
                .map(|(g, contribution)| Driver {
                    feature: g.to_string(),
                    description: describe(g, &rows, i),
                    contribution,
                })
                .collect();
            out.push(Score { probability: self.calibrate(raw), drivers });
        }
        Ok(out)
    }
}

fn pct(v: f64) -> String {
    format!("{:.0} %", 100.0 * v)
}

/// A driver in words, from the row's actual values.
fn describe(group: &str, r: &Rows, i: usize) -> String {
    match group {
        "tenure" => match r.tenure[i] as i64 {
            1 => "First term with the agency".to_string(),
            t => format!("Term {t} with the agency (renewed {} times)", t - 1),
        },
        "premium_change" => {
            let c = r.change[i];
            if r.tenure[i] <= 1.0 {
                "First term: no premium change yet".to_string()
            } else if c >= 0.005 {
                format!("Premium rose {} at the last renewal", pct(c))
            } else if c <= -0.005 {
                format!("Premium fell {} at the last renewal", pct(-c))
            } else {
                "Premium unchanged at the last renewal".to_string()
            }
        }
        "premium" => format!("Premium of {:.0} per term", r.premium[i]),
        "term_length" => format!("{}-month term", r.term_months[i] as i64),
        "bundle" => match (r.other[i] as i64, r.renters_only[i] > 0.0) {
            (0, _) => "No other policy with the agency (single-line customer)".to_string(),
            (n, true) => format!("Bundled with renters only ({n} other polic{})", if n == 1 { "y" } else { "ies" }),
            (n, false) => format!("Customer holds {n} other polic{} in force", if n == 1 { "y" } else { "ies" }),
        },
        "customer_cancellations" => match r.cancellations[i] as i64 {
            0 => "Customer never cancelled a policy".to_string(),
            n => format!("Customer cancelled {n} polic{} before", if n == 1 { "y" } else { "ies" }),
        },
        "customer_lapses" => match r.lapses[i] as i64 {
            0 => "Customer never let a policy lapse".to_string(),
            n => format!("Customer let {n} polic{} lapse before", if n == 1 { "y" } else { "ies" }),
        },
        "customer_years" => format!("Customer for {:.1} years", r.customer_years[i]),
        "customer_renewals" => match r.renewals[i] as i64 {
            0 => "Customer has not renewed a policy yet".to_string(),
            n => format!("Customer renewed {n} term{} before", if n == 1 { "" } else { "s" }),
        },
        "producer" if r.producer_terminated[i] > 0.0 => "Producer has left the agency".to_string(),
        "producer" => format!("Producer hired {:.1} years ago", r.producer_years[i]),
        "producer_rate" => format!(
            "Producer's renewal rate {} over the last 12 months ({} expirations)",
            pct(r.producer_rate[i]),
            r.producer_expirations[i] as i64
        ),
        "agency_rate" => format!("Agency's renewal rate {} over the last 12 months", pct(r.agency_rate[i])),
        "carrier_line_rate" => {
            format!("Carrier's {} renewal rate {} over the last 12 months", r.line[i], pct(r.carrier_line_rate[i]))
        }
        "line_rate" => format!("{} renewal rate {} over the last 12 months", r.line[i], pct(r.line_rate[i])),
        "market" => format!("{} renewals repriced {:+.1} % on average lately", r.line[i], 100.0 * r.recent_change[i]),
        "season" => format!("Expires in {}", month_name(r.month[i] as u32)),
        _ => format!("Line of business: {}", r.line[i]),
    }
}

fn month_name(m: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(m.clamp(1, 12) - 1) as usize]
}

fn model_card(m: &serde_json::Value, served: &RenewalModel) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: renewal probability\n");
    let _ = writeln!(
        s,
        "Calibrated probability that a policy term is renewed (a later term names it in `renewal_of`), \
         observed {} days before expiration.\n",
        m["lead_days"]
    );
    let _ = writeln!(s, "- Method: {}.", m["method"].as_str().unwrap_or_default());
    let _ = writeln!(s, "- Features: {}.", served.features.join(", "));
    let w = &m["evaluation"];
    for k in ["fit", "calibration", "test"] {
        let _ = writeln!(
            s,
            "- Evaluation {k}: expirations {} … {}, {} rows, renewal rate {:.3}.",
            w[k]["from"].as_str().unwrap_or_default(),
            w[k]["to"].as_str().unwrap_or_default(),
            w[k]["rows"],
            w[k]["renewal_rate"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let _ = writeln!(
        s,
        "- Served model: the same recipe refitted on expirations {} … {} and calibrated on {} … {}.\n",
        served.fit_window.0, served.fit_window.1, served.calibration_window.0, served.calibration_window.1
    );
    let _ = writeln!(s, "| metric (test) | model | overall rate | line × carrier last year |");
    let _ = writeln!(s, "|---|---|---|---|");
    for k in ["roc_auc", "pr_auc", "log_loss", "brier", "brier_skill", "ece", "low_decile_lift"] {
        let f = |v: &serde_json::Value| v[k].as_f64().map_or("–".to_string(), |x| format!("{x:.4}"));
        let _ = writeln!(
            s,
            "| {k} | {} | {} | {} |",
            f(&m["model"]),
            f(&m["baseline_overall"]),
            f(&m["baseline_line_carrier"])
        );
    }
    let _ = writeln!(
        s,
        "\nKnown limits: tenure counts terms in the data only (a book converted onto the platform starts at 1); \
         the premium offered at renewal is not observed; trailing rates of new producers and agencies are shrunk \
         toward the tenant's; a term cancelled after the observation date counts as not renewed."
    );
    s
}

/// Design columns (unstandardised) and `label` of the evaluation's split:
/// `train.csv` = fit and calibration rows, `test.csv` = the test year.
pub fn export_features(examples: &DataFrame, data_date: NaiveDate, dir: &Path) -> Result<()> {
    let rows = Rows::read(examples)?;
    let y = labels_of(examples)?;
    let (exp, history) = dates(examples)?;
    let s = split(&exp, &history, data_date, TEST_MONTHS);
    let mut lines: Vec<String> = s.fit.iter().map(|&i| rows.line[i].clone()).collect();
    lines.sort();
    lines.dedup();
    let x = rows.design(&lines);
    let names = feature_names(&lines);
    std::fs::create_dir_all(dir)?;
    let train: Vec<usize> = s.fit.iter().chain(&s.calibration).copied().collect();
    for (file, idx) in [("train.csv", &train), ("test.csv", &s.test)] {
        let path = dir.join(file);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("{path:?}"))?);
        writeln!(w, "{},label", names.join(","))?;
        for &i in idx.iter() {
            for v in x.row(i) {
                write!(w, "{v},")?;
            }
            writeln!(w, "{}", u8::from(y[i]))?;
        }
        w.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand08::rngs::SmallRng;
    use rand08::{Rng, SeedableRng};

    #[test]
    fn label_mapping_holds_with_a_minority_of_true() {
        // x = 1 exactly when y is true; 10 % true: linfa makes `false` its positive class.
        let n = 1000;
        let x = Array2::from_shape_fn((n, 1), |(i, _)| if i % 10 == 0 { 1.0 } else { 0.0 });
        let y: Array1<bool> = (0..n).map(|i| i % 10 == 0).collect();
        let raw = LogisticRegression::default().fit(&Dataset::new(x.clone(), y.clone())).unwrap();
        assert!(!raw.labels().pos.class);
        let probe = Array2::from_shape_vec((2, 1), vec![1.0, 0.0]).unwrap();
        let p = p_true(&raw, &probe);
        assert!(p[0] > 0.9 && p[1] < 0.1, "p_true {p:?}");
        // Our coefficients are oriented to `true` and reproduce p_true.
        let (coef, b) = fit_logistic(&x, &y).unwrap();
        assert!(coef[0] > 0.0);
        let fitted = LogisticRegression::default()
            .alpha(ALPHA)
            .max_iterations(300)
            .gradient_tolerance(1e-6 * n as f64)
            .fit(&Dataset::new(x, y))
            .unwrap();
        let q = p_true(&fitted, &probe);
        assert!((sigmoid(coef[0] + b) - q[0]).abs() < 1e-12);
        assert!((sigmoid(b) - q[1]).abs() < 1e-12);
    }

    #[test]
    fn platt_recovers_a_known_slope_and_offset() {
        let mut rng = SmallRng::seed_from_u64(7);
        let s: Vec<f64> = (0..40_000).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let y: Vec<bool> = s.iter().map(|&s| rng.r#gen::<f64>() < sigmoid(2.0 * s - 0.5)).collect();
        let (a, b) = fit_platt(&s, &y);
        assert!((a - 2.0).abs() < 0.08, "a = {a}");
        assert!((b + 0.5).abs() < 0.06, "b = {b}");
    }

    /// Examples with the columns the model reads; renewal follows a known
    /// logit: 1.5 − 4·max(change − 5 %, 0) + 1.2·bundled.
    fn synthetic(n: usize, seed: u64) -> DataFrame {
        let mut rng = SmallRng::seed_from_u64(seed);
        let start = day(NaiveDate::from_ymd_opt(2021, 1, 1).unwrap());
        let mut cols: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        let (mut label, mut exp, mut line) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let change: f64 = if rng.gen_bool(0.15) { rng.gen_range(0.15..0.4) } else { rng.gen_range(-0.05..0.1) };
            let other = f64::from(rng.gen_range(0..3u8));
            let logit = 1.5 - 4.0 * (change - 0.05).max(0.0) + if other > 0.0 { 1.2 } else { 0.0 };
            label.push(rng.r#gen::<f64>() < sigmoid(logit));
            exp.push(start + rng.gen_range(0..1826));
            line.push(if rng.gen_bool(0.5) { "auto" } else { "home" }.to_string());
            for (c, v) in [
                ("premium", rng.gen_range(300.0..3000.0)),
                ("tenure_terms", f64::from(rng.gen_range(1..7u8))),
                ("premium_change", change),
                ("term_months", 12.0),
                ("other_policies", other),
                ("others_renters_only", 0.0),
                ("others_covering_expiration", other),
                ("customer_renewals", 0.0),
                ("customer_cancellations", f64::from(rng.gen_range(0..2u8))),
                ("customer_lapses", 0.0),
                ("customer_years", rng.gen_range(0.0..5.0)),
                ("producer_years", rng.gen_range(0.0..10.0)),
                ("producer_terminated", 0.0),
                ("producer_rate", rng.gen_range(0.7..0.9)),
                ("producer_expirations", 50.0),
                ("agency_rate", rng.gen_range(0.75..0.85)),
                ("carrier_line_rate", rng.gen_range(0.75..0.85)),
                ("line_rate", 0.8),
                ("line_recent_change", 0.04),
                ("exp_month", f64::from(rng.gen_range(1..13u8))),
            ] {
                cols.entry(c).or_default().push(v);
            }
        }
        let mut columns: Vec<Column> = cols.into_iter().map(|(c, v)| Column::new(c.into(), v)).collect();
        columns.push(Column::new("label".into(), label));
        columns.push(Column::new("line_of_business".into(), line));
        columns.push(Column::new("expiration_date".into(), exp).cast(&DataType::Date).unwrap());
        columns.push(Column::new("baseline_rate".into(), vec![None::<f64>; n]));
        columns.push(Column::new("history_days".into(), vec![1000i64; n]));
        // Two tenants, every third row the second's.
        let tenant: Vec<&str> = (0..n).map(|i| if i % 3 == 2 { "t2" } else { "t1" }).collect();
        columns.push(Column::new("tenant_id".into(), tenant));
        DataFrame::new(n, columns).unwrap()
    }

    #[test]
    fn each_tenant_gets_the_evaluation_of_its_own_rows() {
        let ex = synthetic(6000, 11);
        let data_date = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let (_, report) = train(&ex, data_date).unwrap();
        let (m, by) = (&report.metrics, &report.metrics_by_tenant);
        assert_eq!(m["contributing_tenants"], 2);
        assert_eq!(by.keys().collect::<Vec<_>>(), ["t1", "t2"]);
        // By hand from the frame: each tenant's test rows (expirations in 2025) and their renewal rate;
        // its fit rows (up to 2024-09-30) and theirs, which the "overall rate" baseline predicts.
        let y = labels_of(&ex).unwrap();
        let (exp, _) = dates(&ex).unwrap();
        let tenants = super::super::frames::to_strings(&ex, "tenant_id").unwrap();
        let d = |s: &str| day(s.parse().unwrap());
        for t in ["t1", "t2"] {
            let mine = |lo: i32, hi: i32| -> Vec<bool> {
                (0..y.len()).filter(|&i| tenants[i] == t && exp[i] > lo && exp[i] <= hi).map(|i| y[i]).collect()
            };
            let test = mine(d("2024-12-31"), d("2025-12-31"));
            let fit = mine(i32::MIN, d("2024-09-30"));
            let f = &by[t];
            assert_eq!(f["tenant_id"], t);
            assert_eq!(f["rows"], tenants.iter().filter(|x| *x == t).count());
            assert_eq!(f["evaluation"]["test"]["rows"], test.len());
            assert_eq!(f["evaluation"]["test"]["renewal_rate"].as_f64().unwrap(), rate(&test));
            assert_eq!(f["evaluation"]["fit"]["rows"], fit.len());
            let counts: u64 =
                f["model"]["reliability"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
            assert_eq!(counts, test.len() as u64);
            let overall = &f["baseline_overall"];
            assert!((overall["mean_predicted"].as_f64().unwrap() - rate(&fit)).abs() < 1e-12);
            assert!(f.get("served").unwrap().get("coefficients").is_none(), "no pooled parameter per tenant");
        }
        // The tenants' parts add up to the pool's.
        for k in ["fit", "calibration", "test"] {
            let sum: u64 = by.values().map(|f| f["evaluation"][k]["rows"].as_u64().unwrap()).sum();
            assert_eq!(sum, m["evaluation"][k]["rows"].as_u64().unwrap(), "{k}");
        }
        assert_ne!(by["t1"]["model"]["log_loss"], by["t2"]["model"]["log_loss"]);
        assert!(report.card.contains("Evaluation per tenant"), "{}", report.card);
    }

    #[test]
    fn trains_reloads_and_explains() {
        let ex = synthetic(6000, 11);
        let (model, report) = train(&ex, NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()).unwrap();
        // The hinge carries the price effect (negative), the bundle flag a positive one.
        let coef = |f: &str| model.coef[model.features.iter().position(|n| n == f).unwrap()];
        assert!(coef("premium_rise_over_5pct") < -0.2, "{}", coef("premium_rise_over_5pct"));
        assert!(coef("bundled") > 0.2, "{}", coef("bundled"));
        let auc = report.metrics["model"]["roc_auc"].as_f64().unwrap();
        let base_auc = report.metrics["baseline_overall"]["roc_auc"].as_f64().unwrap();
        assert!(auc > 0.65 && base_auc == 0.5, "auc {auc}, baseline {base_auc}");

        // serde round trip: identical probabilities.
        let json = serde_json::to_string(&model).unwrap();
        let back: RenewalModel = serde_json::from_str(&json).unwrap();
        let (s1, s2) = (model.score(&ex).unwrap(), back.score(&ex).unwrap());
        assert_eq!(s1, s2);

        // Row 0's probability and drivers, recomputed by hand from the coefficients.
        let rows = Rows::read(&ex).unwrap();
        let x = rows.design(&model.lines);
        let z: Vec<f64> = (0..model.coef.len()).map(|j| (x[[0, j]] - model.mean[j]) / model.sd[j]).collect();
        let raw: f64 = model.intercept + z.iter().zip(&model.coef).map(|(z, c)| z * c).sum::<f64>();
        assert!((s1[0].probability - sigmoid(model.platt_a * raw + model.platt_b)).abs() < 1e-12);
        let bundle: f64 = (5..9).map(|j| model.coef[j] * z[j]).sum();
        let mut groups: Vec<(&str, f64)> = vec![];
        for (j, f) in model.features.iter().enumerate() {
            let g = group_of(f);
            match groups.iter_mut().find(|e| e.0 == g) {
                Some(e) => e.1 += model.coef[j] * z[j],
                None => groups.push((g, model.coef[j] * z[j])),
            }
        }
        groups.sort_by(|a, b| a.1.total_cmp(&b.1));
        let names: Vec<&str> = s1[0].drivers.iter().map(|d| d.feature.as_str()).collect();
        assert_eq!(names, groups.iter().take(3).map(|g| g.0).collect::<Vec<_>>());
        if let Some(d) = s1[0].drivers.iter().find(|d| d.feature == "bundle") {
            assert!((d.contribution - bundle).abs() < 1e-12);
        }
    }

    #[test]
    fn descriptions_read_the_values() {
        let ex = synthetic(3, 5);
        let mut rows = Rows::read(&ex).unwrap();
        rows.change[0] = 0.23;
        rows.tenure[0] = 3.0;
        rows.other[0] = 0.0;
        rows.producer_rate[0] = 0.78;
        rows.producer_expirations[0] = 41.0;
        assert_eq!(describe("premium_change", &rows, 0), "Premium rose 23 % at the last renewal");
        assert_eq!(describe("tenure", &rows, 0), "Term 3 with the agency (renewed 2 times)");
        assert_eq!(describe("bundle", &rows, 0), "No other policy with the agency (single-line customer)");
        assert_eq!(
            describe("producer_rate", &rows, 0),
            "Producer's renewal rate 78 % over the last 12 months (41 expirations)"
        );
    }

    #[test]
    fn split_is_out_of_time() {
        let e = |s: &str| day(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        let exp =
            [e("2024-09-30"), e("2024-10-01"), e("2024-12-31"), e("2025-01-01"), e("2025-12-31"), e("2026-01-01")];
        let history = [400, 10, 400, 400, 400, 400];
        let s = split(&exp, &history, NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(), 12);
        assert_eq!((s.fit, s.calibration, s.test), (vec![0], vec![1, 2], vec![3, 4]));
        let history = [10, 10, 400, 400, 400, 400];
        let s = split(&exp, &history, NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(), 12);
        assert!(s.fit.is_empty(), "a row without a year of history is not fitted on");
    }

    /// Train and score on a real lake: `CIP_MODELS_LAKE=/path cargo test --release --lib renewal -- --ignored --nocapture`
    /// (`CIP_MODELS_EXPORT=dir` also writes the sklearn comparison's CSVs).
    #[tokio::test(flavor = "multi_thread")]
    #[ignore]
    async fn lake_experiment() {
        let Ok(path) = std::env::var("CIP_MODELS_LAKE") else { return };
        let data_date = std::env::var("CIP_MODELS_DATA_DATE")
            .ok()
            .map_or(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(), |s| s.parse().unwrap());
        let t0 = std::time::Instant::now();
        let lake = crate::lake::store::open(&path).unwrap();
        let manifest = crate::lake::snapshot::latest(&lake).await.unwrap().expect("a published lake");
        let load = |t: &'static str| {
            let (lake, manifest) = (&lake, &manifest);
            async move { crate::models::frames::load(lake, manifest, t, None).await.unwrap() }
        };
        let inputs = super::super::features::Inputs {
            policies: load("policies").await,
            agents: load("agents").await,
            commissions: DataFrame::empty(),
        };
        let t_load = t0.elapsed();
        let ex = super::super::features::training_examples(&inputs, data_date).unwrap();
        let t_feat = t0.elapsed();
        let (model, report) = train(&ex, data_date).unwrap();
        let t_train = t0.elapsed();
        println!("{}", serde_json::to_string_pretty(&report.metrics).unwrap());
        println!("{}", report.card);
        println!(
            "policies {} examples {} | load {:.1}s features {:.1}s train {:.1}s (total {:.1}s)",
            inputs.policies.height(),
            ex.height(),
            t_load.as_secs_f64(),
            (t_feat - t_load).as_secs_f64(),
            (t_train - t_feat).as_secs_f64(),
            t_train.as_secs_f64()
        );
        let s0 = std::time::Instant::now();
        let sc = super::super::features::scoring_examples(&inputs, data_date).unwrap();
        let s1 = std::time::Instant::now();
        let scores = model.score(&sc).unwrap();
        let s2 = std::time::Instant::now();
        println!(
            "scoring {} policies: features {:.2}s, model {:.3}s = {:.0} policies/s (model only), {:.0}/s with features",
            scores.len(),
            (s1 - s0).as_secs_f64(),
            (s2 - s1).as_secs_f64(),
            scores.len() as f64 / (s2 - s1).as_secs_f64(),
            scores.len() as f64 / (s2 - s0).as_secs_f64()
        );
        for s in scores.iter().take(3) {
            println!("{:.3} {:?}", s.probability, s.drivers);
        }
        if let Ok(dir) = std::env::var("CIP_MODELS_EXPORT") {
            export_features(&ex, data_date, Path::new(&dir)).unwrap();
            std::fs::write(Path::new(&dir).join("metrics.json"), report.metrics.to_string()).unwrap();
        }
    }
}
