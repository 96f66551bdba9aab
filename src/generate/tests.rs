//! End-to-end tests of the generator: they re-read the written files and
//! check them against the data contract with rules written here, not with
//! the generator's own specs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Format, GenerateOptions, GenerateSummary, generate};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn opts(dir: &Path, policies: usize, tenants: usize, seed: u64, format: Format, bad: f64) -> GenerateOptions {
    GenerateOptions {
        out: dir.join("landing"),
        truth: dir.join("truth"),
        policies,
        seed,
        tenants,
        format,
        bad_row_rate: bad,
        start: date("2021-01-01"),
        end: date("2026-01-01"),
    }
}

/// All files under `dir`, relative path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// One landing record: file (relative to the landing folder), physical line
/// and its values (no value = "").
struct Rec {
    file: String,
    line: u64,
    v: BTreeMap<String, String>,
}

impl Rec {
    fn get(&self, c: &str) -> &str {
        self.v.get(c).map(|s| s.as_str()).unwrap_or("")
    }
}

fn load(landing: &Path, entity: &str) -> Vec<Rec> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(landing.join(entity)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = format!("{entity}/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap();
        if rel.ends_with(".csv") {
            let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            let header: Vec<String> = rdr.headers().unwrap().iter().map(|s| s.to_string()).collect();
            for (i, r) in rdr.records().enumerate() {
                let r = r.unwrap();
                // No embedded newlines: record i is physical line i + 2.
                assert_eq!(r.position().unwrap().line(), i as u64 + 2);
                let v = header.iter().cloned().zip(r.iter().map(|s| s.to_string())).collect();
                out.push(Rec { file: rel.clone(), line: i as u64 + 2, v });
            }
        } else {
            for (i, l) in text.lines().enumerate() {
                let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
                let v = obj
                    .into_iter()
                    .map(|(k, val)| {
                        let s = match val {
                            serde_json::Value::Null => String::new(),
                            serde_json::Value::String(s) => s,
                            other => panic!("non-string value {other} in {rel}:{}", i + 1),
                        };
                        (k, s)
                    })
                    .collect();
                out.push(Rec { file: rel.clone(), line: i as u64 + 1, v });
            }
        }
    }
    out
}

fn required(entity: &str) -> &'static [&'static str] {
    match entity {
        "agencies" => &["tenant_id", "agency_id", "name"],
        "agents" => &["tenant_id", "agent_id", "agency_id", "name", "role"],
        "carriers" => &["tenant_id", "carrier_id", "name"],
        "commission_schedules" => &["tenant_id", "carrier_id", "line_of_business", "kind", "rate", "effective_from"],
        "policies" => &[
            "tenant_id",
            "policy_id",
            "policy_number",
            "agency_id",
            "agent_id",
            "carrier_id",
            "customer_id",
            "line_of_business",
            "effective_date",
            "expiration_date",
            "premium",
            "status",
        ],
        "commissions" => &[
            "tenant_id",
            "commission_id",
            "policy_id",
            "agent_id",
            "carrier_id",
            "transaction_date",
            "kind",
            "premium_amount",
            "commission_rate",
            "gross_commission",
            "agent_commission",
            "agency_commission",
        ],
        "statement_lines" => &[
            "tenant_id",
            "statement_id",
            "line_id",
            "carrier_id",
            "statement_date",
            "period",
            "policy_number",
            "commission_amount",
        ],
        _ => unreachable!(),
    }
}

fn key(entity: &str) -> &'static [&'static str] {
    match entity {
        "agencies" => &["tenant_id", "agency_id"],
        "agents" => &["tenant_id", "agent_id"],
        "carriers" => &["tenant_id", "carrier_id"],
        "commission_schedules" => &["tenant_id", "carrier_id", "line_of_business", "kind", "effective_from"],
        "policies" => &["tenant_id", "policy_id"],
        "commissions" => &["tenant_id", "commission_id"],
        "statement_lines" => &["tenant_id", "statement_id", "line_id"],
        _ => unreachable!(),
    }
}

fn enum_values(entity: &str, col: &str) -> Option<&'static [&'static str]> {
    match (entity, col) {
        ("agents", "role") => Some(&["producer", "manager"]),
        ("agents", "status") => Some(&["active", "terminated"]),
        ("commission_schedules", "kind") => Some(&["new", "renewal"]),
        ("policies", "status") => Some(&["active", "cancelled", "expired"]),
        ("commissions", "kind") => Some(&["new", "renewal", "chargeback", "override", "adjustment"]),
        ("commissions", "status") => Some(&["expected", "paid"]),
        _ => None,
    }
}

const DATE_COLS: &[&str] = &[
    "hire_date",
    "termination_date",
    "effective_from",
    "effective_to",
    "effective_date",
    "expiration_date",
    "cancellation_date",
    "transaction_date",
    "paid_date",
    "statement_date",
];
const MONEY_COLS: &[&str] =
    &["premium", "premium_amount", "gross_commission", "agent_commission", "agency_commission", "commission_amount"];
const RATE_COLS: &[&str] = &["rate", "commission_rate", "split_pct", "override_pct"];

fn is_iso_date(s: &str) -> bool {
    s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// Plain decimal: optional minus, digits, optional fraction. Returns the
/// number of fraction digits.
fn decimal_digits(s: &str) -> Option<usize> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (body.contains('.') != frac.is_empty());
    ok.then_some(frac.len())
}

/// Every contract defect of one row (duplicate keys are checked separately).
fn defects(entity: &str, r: &Rec) -> Vec<&'static str> {
    let mut d = Vec::new();
    if required(entity).iter().any(|c| r.get(c).is_empty()) {
        d.push("missing_value");
    }
    let bad_date = r.v.iter().any(|(c, v)| {
        !v.is_empty()
            && ((DATE_COLS.contains(&c.as_str()) && !is_iso_date(v))
                || (c == "period" && !(v.len() == 7 && is_iso_date(&format!("{v}-01")))))
    });
    if bad_date {
        d.push("invalid_date");
    }
    let money: Vec<&String> =
        r.v.iter().filter(|(c, v)| MONEY_COLS.contains(&c.as_str()) && !v.is_empty()).map(|(_, v)| v).collect();
    if money.iter().any(|v| decimal_digits(v).is_none()) {
        d.push("invalid_money");
    }
    if money.iter().any(|v| decimal_digits(v).is_some_and(|n| n > 2)) {
        d.push("money_precision");
    }
    if r.v.iter().any(|(c, v)| !v.is_empty() && enum_values(entity, c).is_some_and(|ok| !ok.contains(&v.as_str()))) {
        d.push("invalid_enum");
    }
    d
}

/// Rules every clean row must also satisfy.
fn check_clean(entity: &str, r: &Rec) {
    let at = format!("{}:{}", r.file, r.line);
    for (c, v) in &r.v {
        if RATE_COLS.contains(&c.as_str()) && !v.is_empty() {
            let n = decimal_digits(v).unwrap_or_else(|| panic!("rate {v} at {at}"));
            assert!(n <= 6, "rate {v} at {at}");
            let x = Decimal::from_str(v).unwrap();
            assert!(x > Decimal::ZERO && x <= Decimal::new(115, 2), "rate {v} at {at}");
        }
        if MONEY_COLS.contains(&c.as_str()) && !v.is_empty() {
            assert_eq!(decimal_digits(v), Some(2), "money {c}={v} at {at}: exactly 2 fraction digits");
        }
    }
    match entity {
        "policies" => {
            assert!(date(r.get("expiration_date")) > date(r.get("effective_date")), "{at}");
            assert!(Decimal::from_str(r.get("premium")).unwrap() > Decimal::ZERO, "{at}");
            let c = r.get("cancellation_date");
            assert_eq!(c.is_empty(), r.get("status") != "cancelled", "{at}");
        }
        "commissions" => {
            let m = |c| Decimal::from_str(r.get(c)).unwrap();
            assert_eq!(
                m("gross_commission"),
                m("agent_commission") + m("agency_commission"),
                "gross = agent + agency at {at}"
            );
            if r.get("kind") == "override" {
                assert!(m("premium_amount").is_zero() && m("gross_commission").is_zero(), "{at}");
                assert_eq!(r.get("statement_id"), "", "{at}");
            }
            if r.get("kind") == "chargeback" {
                assert!(m("gross_commission") < Decimal::ZERO, "{at}");
            }
            assert_eq!(r.get("status") == "paid", !r.get("paid_date").is_empty(), "{at}");
        }
        "commission_schedules" => {
            let to = r.get("effective_to");
            assert!(to.is_empty() || date(to) > date(r.get("effective_from")), "{at}");
        }
        _ => {}
    }
}

fn content(r: &Rec) -> String {
    r.v.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("|")
}

/// (entity, file, line) → reason from truth/rejects.csv.
fn truth_rejects(truth: &Path) -> HashMap<(String, String, u64), String> {
    let mut rdr = csv::Reader::from_path(truth.join("rejects.csv")).unwrap();
    let mut out = HashMap::new();
    for r in rdr.records() {
        let r = r.unwrap();
        let prev = out.insert((r[0].to_string(), r[1].to_string(), r[2].parse().unwrap()), r[3].to_string());
        assert!(prev.is_none(), "reject listed twice: {r:?}");
    }
    out
}

const ENTITIES: [&str; 7] =
    ["agencies", "agents", "carriers", "commission_schedules", "policies", "commissions", "statement_lines"];

/// Checks every landing row against the truth: rejected rows have exactly
/// the stated defect, all other rows none. Returns counts per reason.
fn verify_against_truth(dir: &Path, summary: &GenerateSummary) -> BTreeMap<String, u64> {
    let truth = truth_rejects(&dir.join("truth"));
    let mut seen = 0usize;
    let mut counts = BTreeMap::new();
    for entity in ENTITIES {
        let recs = load(&dir.join("landing"), entity);
        let written = summary.rows.iter().find(|(e, _)| e == entity).unwrap().1;
        assert_eq!(recs.len() as u64, written, "{entity}");
        // Keys of valid rows per file (for duplicates) and across files.
        let mut in_file: HashMap<(String, Vec<String>), String> = HashMap::new();
        let mut all_keys: HashSet<Vec<String>> = HashSet::new();
        for r in &recs {
            let mut d = defects(entity, r);
            let k: Vec<String> = key(entity).iter().map(|c| r.get(c).to_string()).collect();
            if d.is_empty() {
                match in_file.get(&(r.file.clone(), k.clone())) {
                    Some(c) => {
                        assert_ne!(c, &content(r), "exact duplicate row at {}:{}", r.file, r.line);
                        d.push("duplicate_key_conflict");
                    }
                    None => {
                        in_file.insert((r.file.clone(), k.clone()), content(r));
                    }
                }
            }
            let stated = truth.get(&(entity.to_string(), r.file.clone(), r.line));
            match stated {
                Some(reason) => {
                    seen += 1;
                    assert_eq!(d, vec![reason.as_str()], "{entity} {}:{} {:?}", r.file, r.line, r.v);
                    *counts.entry(reason.clone()).or_insert(0) += 1;
                }
                None => {
                    assert!(d.is_empty(), "unlisted defect {d:?} at {}:{} {:?}", r.file, r.line, r.v);
                    check_clean(entity, r);
                    assert!(all_keys.insert(k.clone()), "key {k:?} of a valid row repeats across files");
                }
            }
        }
    }
    assert_eq!(seen, truth.len(), "every truth reject points at a written line");
    assert_eq!(seen as u64, summary.bad_rows);
    counts
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let sa = generate(&opts(a.path(), 2000, 2, 11, Format::Csv, 0.01)).unwrap();
    let sb = generate(&opts(b.path(), 2000, 2, 11, Format::Csv, 0.01)).unwrap();
    generate(&opts(c.path(), 2000, 2, 12, Format::Csv, 0.01)).unwrap();
    assert_eq!(sa, sb);
    let (fa, fb, fc) = (snapshot(a.path()), snapshot(b.path()), snapshot(c.path()));
    assert!(fa.len() > 20, "{} files", fa.len());
    assert_eq!(fa, fb);
    let pol = PathBuf::from("landing/policies/policies-2023-0001.csv");
    assert_ne!(fa[&pol], fc[&pol]);
    // Regenerating into the same folder replaces the old files.
    let again = generate(&opts(a.path(), 2000, 2, 11, Format::Csv, 0.01)).unwrap();
    assert_eq!(again, sa);
    assert_eq!(snapshot(a.path()), fb);
}

#[test]
fn clean_data_satisfies_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 2000, 2, 5, Format::Csv, 0.0);
    let s = generate(&o).unwrap();
    assert_eq!(s.bad_rows, 0);
    let pol_rows = s.rows.iter().find(|(e, _)| e == "policies").unwrap().1;
    assert!((2000..2100).contains(&pol_rows), "{pol_rows} policies");
    let counts = verify_against_truth(dir.path(), &s);
    assert!(counts.is_empty());

    let landing = o.out.clone();
    let comms = load(&landing, "commissions");
    assert!(comms.len() as u64 > pol_rows, "{} commission rows", comms.len());
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for c in &comms {
        let m = |col| Decimal::from_str(c.get(col)).unwrap();
        assert_eq!(m("gross_commission"), m("agent_commission") + m("agency_commission"));
        *kinds.entry(c.get("kind").to_string()).or_default() += 1;
    }
    for k in ["new", "renewal", "chargeback", "override", "adjustment"] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k} rows: {kinds:?}");
    }

    // Renewal chains.
    let policies = load(&landing, "policies");
    let by_id: HashMap<(String, String), &Rec> =
        policies.iter().map(|p| ((p.get("tenant_id").to_string(), p.get("policy_id").to_string()), p)).collect();
    assert_eq!(by_id.len(), policies.len());
    let mut renewals = 0;
    for p in &policies {
        let prev = p.get("renewal_of");
        if prev.is_empty() {
            continue;
        }
        renewals += 1;
        let q = by_id
            .get(&(p.get("tenant_id").to_string(), prev.to_string()))
            .unwrap_or_else(|| panic!("renewal_of {prev} of {} not found in tenant", p.get("policy_id")));
        assert_eq!(q.get("expiration_date"), p.get("effective_date"));
        assert_eq!(q.get("customer_id"), p.get("customer_id"));
        assert_eq!(q.get("line_of_business"), p.get("line_of_business"));
        assert_eq!(q.get("carrier_id"), p.get("carrier_id"));
        assert_eq!(q.get("status"), "expired");
    }
    assert!(renewals > 800, "{renewals} renewals");

    // The new/renewal row of each term is at the schedule rate in force on
    // the effective date, and gross = round(premium × rate) half away from zero.
    let scheds = load(&landing, "commission_schedules");
    let mut checked = 0;
    for c in comms.iter().filter(|c| matches!(c.get("kind"), "new" | "renewal")) {
        let p = by_id[&(c.get("tenant_id").to_string(), c.get("policy_id").to_string())];
        let eff = date(p.get("effective_date"));
        let want_kind = if p.get("renewal_of").is_empty() { "new" } else { "renewal" };
        assert_eq!(c.get("kind"), want_kind);
        assert_eq!(c.get("transaction_date"), p.get("effective_date"));
        assert_eq!(c.get("premium_amount"), p.get("premium"));
        let rates: Vec<&str> = scheds
            .iter()
            .filter(|s| {
                s.get("tenant_id") == p.get("tenant_id")
                    && s.get("carrier_id") == p.get("carrier_id")
                    && s.get("line_of_business") == p.get("line_of_business")
                    && s.get("kind") == want_kind
                    && date(s.get("effective_from")) <= eff
                    && (s.get("effective_to").is_empty() || eff < date(s.get("effective_to")))
            })
            .map(|s| s.get("rate"))
            .collect();
        assert_eq!(rates, vec![c.get("commission_rate")]);
        let gross = (Decimal::from_str(c.get("premium_amount")).unwrap() * Decimal::from_str(rates[0]).unwrap())
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        assert_eq!(Decimal::from_str(c.get("gross_commission")).unwrap(), gross);
        checked += 1;
        if checked == 400 {
            break;
        }
    }
    assert_eq!(checked, 400);
}

#[test]
fn truth_rejects_are_exactly_the_defective_lines_csv() {
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&opts(dir.path(), 3000, 3, 9, Format::Csv, 0.02)).unwrap();
    assert!(s.bad_rows > 50, "{}", s.bad_rows);
    let counts = verify_against_truth(dir.path(), &s);
    for r in
        ["missing_value", "invalid_date", "invalid_money", "money_precision", "invalid_enum", "duplicate_key_conflict"]
    {
        assert!(counts.get(r).copied().unwrap_or(0) > 0, "no {r}: {counts:?}");
    }
}

#[test]
fn truth_rejects_are_exactly_the_defective_lines_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&opts(dir.path(), 2000, 2, 10, Format::Jsonl, 0.02)).unwrap();
    let counts = verify_against_truth(dir.path(), &s);
    assert_eq!(counts.values().sum::<u64>(), s.bad_rows);
    assert!(counts.len() >= 5, "{counts:?}");
    let first = std::fs::read_to_string(dir.path().join("landing/agencies/agencies-t-acme-0001.jsonl")).unwrap();
    assert!(first.starts_with("{\"tenant_id\":\"t-acme\",\"agency_id\":\"AGY-01\",\"name\":"), "{first}");
}

/// Renewal facts computed from the policy files as the metric defines them.
struct Renewals {
    up: usize,
    renewed: usize,
    mono: (usize, usize),
    bundled: (usize, usize),
}

fn renewal_facts(landing: &Path, end: NaiveDate) -> Renewals {
    let policies = load(landing, "policies");
    let renewed: HashSet<(String, String)> = policies
        .iter()
        .filter(|p| !p.get("renewal_of").is_empty())
        .map(|p| (p.get("tenant_id").to_string(), p.get("renewal_of").to_string()))
        .collect();
    let mut by_customer: HashMap<(String, String), Vec<&Rec>> = HashMap::new();
    for p in &policies {
        by_customer.entry((p.get("tenant_id").to_string(), p.get("customer_id").to_string())).or_default().push(p);
    }
    let in_force = |p: &Rec, d: NaiveDate| {
        let stop = match p.get("cancellation_date") {
            "" => date(p.get("expiration_date")),
            c => date(c).min(date(p.get("expiration_date"))),
        };
        date(p.get("effective_date")) <= d && d < stop
    };
    let mut f = Renewals { up: 0, renewed: 0, mono: (0, 0), bundled: (0, 0) };
    for p in &policies {
        let exp = date(p.get("expiration_date"));
        if !p.get("cancellation_date").is_empty() || exp >= end {
            continue;
        }
        let r = renewed.contains(&(p.get("tenant_id").to_string(), p.get("policy_id").to_string()));
        f.up += 1;
        f.renewed += usize::from(r);
        let probe = exp.pred_opt().unwrap();
        let bundled = by_customer[&(p.get("tenant_id").to_string(), p.get("customer_id").to_string())]
            .iter()
            .any(|o| o.get("policy_id") != p.get("policy_id") && in_force(o, probe));
        let slot = if bundled { &mut f.bundled } else { &mut f.mono };
        slot.0 += 1;
        slot.1 += usize::from(r);
    }
    f
}

#[test]
fn retention_is_realistic_and_bundles_renew_more() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 6000, 2, 21, Format::Csv, 0.0);
    generate(&o).unwrap();
    let f = renewal_facts(&o.out, o.end);
    assert!(f.up > 3000, "{} up for renewal", f.up);
    let rate = f.renewed as f64 / f.up as f64;
    assert!((0.78..=0.92).contains(&rate), "renewal rate {rate}");
    let mono = f.mono.1 as f64 / f.mono.0 as f64;
    let bundled = f.bundled.1 as f64 / f.bundled.0 as f64;
    assert!(f.mono.0 > 500 && f.bundled.0 > 500, "{:?} {:?}", f.mono, f.bundled);
    assert!(bundled > mono + 0.05, "bundled {bundled} vs mono-line {mono}");
    assert!(bundled > 0.88, "bundled {bundled}");
}

#[test]
fn statement_discrepancy_truth_matches_the_statements() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 20000, 2, 3, Format::Csv, 0.0);
    generate(&o).unwrap();
    let lines = load(&o.out, "statement_lines");
    let by_line: HashMap<(&str, &str), &Rec> =
        lines.iter().map(|l| ((l.get("tenant_id"), l.get("line_id")), l)).collect();
    assert_eq!(by_line.len(), lines.len());
    let comms = load(&o.out, "commissions");
    let paid_on: HashSet<(&str, &str, &str)> = comms
        .iter()
        .filter(|c| c.get("status") == "paid")
        .map(|c| (c.get("tenant_id"), c.get("statement_id"), c.get("policy_id")))
        .collect();
    let mut rdr = csv::Reader::from_path(o.truth.join("statement_discrepancies.csv")).unwrap();
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        ["tenant_id", "statement_id", "line_id", "policy_id", "type", "expected_amount", "statement_amount"]
    );
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for r in rdr.records() {
        let r = r.unwrap();
        let (tid, sid, lid, pid, ty, expected, stated) = (&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]);
        *types.entry(ty.to_string()).or_default() += 1;
        if ty == "missing" {
            assert!(lid.is_empty() && stated.is_empty() && !expected.is_empty());
            // Paid, with that statement id, yet not printed on the statement.
            assert!(paid_on.contains(&(tid, sid, pid)), "{tid} {sid} {pid}");
            continue;
        }
        let line = by_line[&(tid, lid)];
        assert_eq!(line.get("statement_id"), sid);
        assert_eq!(line.get("commission_amount"), stated);
        let (st, ex) = (Decimal::from_str(stated).unwrap(), Decimal::from_str(expected).unwrap_or_default());
        match ty {
            "underpaid" => assert!(st < ex, "{r:?}"),
            "overpaid" => assert!(st > ex, "{r:?}"),
            "duplicate" => {
                assert_eq!(st, ex);
                // An identical earlier line of the same statement, other line id.
                let twins = lines
                    .iter()
                    .filter(|l| {
                        l.get("tenant_id") == tid
                            && l.get("statement_id") == sid
                            && l.get("policy_number") == line.get("policy_number")
                            && l.get("commission_amount") == stated
                    })
                    .count();
                assert!(twins >= 2, "{r:?}");
            }
            "unexpected" => assert!(pid.is_empty() && expected.is_empty(), "{r:?}"),
            other => panic!("unknown type {other}"),
        }
        if ty != "unexpected" {
            assert!(paid_on.contains(&(tid, sid, pid)), "{tid} {sid} {pid}");
        }
    }
    for t in ["missing", "underpaid", "overpaid", "duplicate", "unexpected"] {
        assert!(types.get(t).copied().unwrap_or(0) > 0, "no {t}: {types:?}");
    }
}
