//! The simulated world: tenants, agencies, producers, carriers, rate schedules
//! and the policy book with its renewal chains.
//!
//! Policies are simulated customer by customer. A customer holds 1–3 policy
//! chains (a bundle). Each chain is a sequence of terms; at the end of a term
//! the chain renews with a probability driven by observable facts (line,
//! tenure, premium change, bundling, producer) or stops. Customers are drawn
//! i.i.d. (arrival date included) until the tenant's share of
//! `GenerateOptions::policies` terms is reached, so stopping early biases
//! nothing.

use chrono::{Datelike, Months, NaiveDate, Weekday};
use rust_decimal::Decimal;

use crate::generate::catalog::{
    self, BUSINESS_SUFFIXES, BUSINESS_TRADES, CARRIERS, CITIES, FIRST_NAMES, LAST_NAMES, Line, SOURCE_SYSTEMS, Segment,
    TenantKind,
};
use crate::generate::rng::Rng;

/// Share of customers that belong to the book in force when the tenant went
/// live on the platform (`start`): their first term in the data falls in the
/// first term after `start` and has no `renewal_of` (its predecessor predates
/// the history).
pub const CONVERTED_BOOK_SHARE: f64 = 0.35;
/// Yearly growth of organic new business.
pub const NEW_BUSINESS_GROWTH: f64 = 0.04;
/// Retention logit per additional term of tenure (capped at 5 terms).
pub const TENURE_LOGIT: f64 = 0.30;
/// Retention logit when the customer holds another policy in force.
pub const BUNDLE_LOGIT: f64 = 1.35;
/// Same, when the only other policies are renters policies.
pub const BUNDLE_RENTERS_LOGIT: f64 = 0.85;
/// Retention logit per unit of premium increase above 5 %, for the increase
/// the current term got at its renewal (observable) and the one offered now.
pub const PRICE_LOGIT_CURRENT: f64 = -7.0;
pub const PRICE_LOGIT_OFFER: f64 = -2.5;
/// Standard deviation of the producer and customer retention effects (logit);
/// the producer effect is clipped to ±`PRODUCER_CLIP`.
pub const PRODUCER_SD: f64 = 0.90;
pub const PRODUCER_CLIP: f64 = 1.8;
pub const CUSTOMER_SD: f64 = 0.30;
/// Probability of a sharp premium increase (+15 % to +40 %) at a renewal.
pub const SHOCK_PROBABILITY: f64 = 0.08;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Producer,
    Manager,
}

pub struct Agency {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub source: &'static str,
    pub weight: f64,
    /// Producer seats: each is a chain of producers (a successor takes over
    /// the book when a producer is terminated).
    pub slots: Vec<Slot>,
}

pub struct Slot {
    /// Agent indices in hiring order; each one's hire date is its
    /// predecessor's termination date.
    pub producers: Vec<u16>,
    pub productivity: f64,
}

pub struct Agent {
    pub id: String,
    pub agency: u16,
    pub name: String,
    pub role: Role,
    pub manager: Option<u16>,
    /// Producer's share of gross commission (fraction 0–1).
    pub split: Option<Decimal>,
    /// Manager's override, a fraction 0–1 of the gross commission of the
    /// rows of the producers reporting to them.
    pub override_pct: Option<Decimal>,
    pub hire: NaiveDate,
    pub termination: Option<NaiveDate>,
    pub retention_effect: f64,
}

impl Agent {
    pub fn active_on(&self, d: NaiveDate) -> bool {
        self.hire <= d && self.termination.is_none_or(|t| d < t)
    }
}

pub struct Carrier {
    pub id: String,
    pub spec: &'static catalog::CarrierSpec,
    pub next_number: u64,
    /// Largest policy number handed out (for "unexpected" statement lines).
    pub max_number: u64,
}

pub struct Schedule {
    pub carrier: u16,
    pub line: Line,
    pub renewal: bool,
    /// Rate in millionths (≤ 6 fraction digits by construction).
    pub rate_micro: u32,
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

pub struct Customer {
    pub first: u16,
    pub last: u16,
    /// For businesses: (trade, suffix) indices.
    pub business: Option<(u16, u16)>,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub customer: u32,
    pub carrier: u16,
    pub agency: u16,
    pub agent: u16,
    pub line: Line,
    pub eff: NaiveDate,
    pub exp: NaiveDate,
    pub premium_cents: i64,
    pub cancel: Option<NaiveDate>,
    /// Index (in the tenant's policy vector) of the term this one renews.
    pub prev: Option<u32>,
    /// Some later term names this one in `renewal_of`.
    pub renewed: bool,
    pub term_no: u16,
    /// Carrier's policy number (shared by the terms of a chain).
    pub number: u64,
    /// Premium change of this term over the previous one, in 1/10000.
    pub change_bp: i32,
    /// Some commission row of this policy appears on a carrier statement.
    pub on_statement: bool,
}

pub struct Tenant {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub kind: TenantKind,
    pub target_terms: usize,
    pub agencies: Vec<Agency>,
    pub agents: Vec<Agent>,
    pub carriers: Vec<Carrier>,
    pub schedules: Vec<Schedule>,
    /// Schedule indices per (carrier, line, kind), sorted by `from`.
    pub schedule_index: Vec<Vec<u32>>,
    pub customers: Vec<Customer>,
    /// Sorted by (effective date, customer, line).
    pub policies: Vec<Policy>,
}

pub fn add_months(d: NaiveDate, m: u32) -> NaiveDate {
    d.checked_add_months(Months::new(m)).expect("date in range")
}

pub fn days(d: NaiveDate, n: i64) -> NaiveDate {
    d + chrono::Duration::days(n)
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid")
}

fn sched_slot(carrier: u16, line: Line, renewal: bool) -> usize {
    usize::from(carrier) * 20 + line.index() * 2 + usize::from(renewal)
}

impl Tenant {
    /// The schedule rate (millionths) in force on `d`.
    pub fn rate_on(&self, carrier: u16, line: Line, renewal: bool, d: NaiveDate) -> u32 {
        let list = &self.schedule_index[sched_slot(carrier, line, renewal)];
        let mut rate = None;
        for &i in list {
            let s = &self.schedules[i as usize];
            if s.from <= d && s.to.is_none_or(|t| d < t) {
                rate = Some(s.rate_micro);
            }
        }
        rate.unwrap_or_else(|| panic!("no schedule for carrier {carrier} {} renewal={renewal} on {d}", line.as_str()))
    }

    pub fn customer_name(&self, c: u32) -> String {
        let c = &self.customers[c as usize];
        match c.business {
            Some((t, s)) => format!(
                "{} {} {}",
                LAST_NAMES[c.last as usize], BUSINESS_TRADES[t as usize], BUSINESS_SUFFIXES[s as usize]
            ),
            None => format!("{} {}", FIRST_NAMES[c.first as usize], LAST_NAMES[c.last as usize]),
        }
    }

    /// The insured name as the carrier prints it.
    pub fn statement_name(&self, c: u32, last_first: bool) -> String {
        let cu = &self.customers[c as usize];
        if !last_first || cu.business.is_some() {
            return self.customer_name(c);
        }
        format!("{}, {}", LAST_NAMES[cu.last as usize].to_uppercase(), FIRST_NAMES[cu.first as usize].to_uppercase())
    }
}

/// Relative size of tenant `i` (skewed: one large, several small).
pub fn tenant_weight(i: usize) -> f64 {
    1.0 / ((i + 1) as f64).powf(1.1)
}

/// Builds every tenant's world and simulates its book.
pub fn build_tenants(seed: u64, tenants: usize, policies: usize, start: NaiveDate, end: NaiveDate) -> Vec<Tenant> {
    let total_w: f64 = (0..tenants).map(tenant_weight).sum();
    let mut out = Vec::with_capacity(tenants);
    let mut assigned = 0usize;
    for i in 0..tenants {
        let target = if i + 1 == tenants {
            policies.saturating_sub(assigned)
        } else {
            ((policies as f64) * tenant_weight(i) / total_w).round() as usize
        };
        assigned += target;
        let (id, name, kind) = match catalog::TENANTS.get(i) {
            Some(&(id, name, kind)) => (id.to_string(), name.to_string(), kind),
            None => {
                let kinds = [TenantKind::AgencyGroup, TenantKind::Mixed, TenantKind::PersonalLines, TenantKind::Mga];
                (format!("t-agency-{:03}", i + 1), format!("Agency Network {}", i + 1), kinds[i % kinds.len()])
            }
        };
        let mut t = Tenant {
            index: i,
            id,
            name,
            kind,
            target_terms: target,
            agencies: Vec::new(),
            agents: Vec::new(),
            carriers: Vec::new(),
            schedules: Vec::new(),
            schedule_index: Vec::new(),
            customers: Vec::new(),
            policies: Vec::new(),
        };
        let rel = tenant_weight(i) / tenant_weight(0);
        build_org(&mut t, &mut Rng::stream(seed, "org", i as u64), rel, start, end);
        build_carriers(&mut t, &mut Rng::stream(seed, "carriers", i as u64), start, end);
        simulate_book(&mut t, &mut Rng::stream(seed, "book", i as u64), start, end);
        out.push(t);
    }
    out
}

fn person_name(rng: &mut Rng) -> String {
    format!("{} {}", FIRST_NAMES[rng.index(FIRST_NAMES.len())], LAST_NAMES[rng.index(LAST_NAMES.len())])
}

fn build_org(t: &mut Tenant, rng: &mut Rng, rel_size: f64, start: NaiveDate, end: NaiveDate) {
    let n_agencies = 1 + (5.0 * rel_size.powf(1.5)).round() as usize;
    let primary_source = SOURCE_SYSTEMS[rng.index(SOURCE_SYSTEMS.len())];
    let short = t.name.split_whitespace().next().unwrap_or("Agency").to_string();
    let mut weights = Vec::new();
    for a in 0..n_agencies {
        let w = if a == 0 { 2.0 } else { 0.4 + rng.f64() };
        weights.push(w);
    }
    let wsum: f64 = weights.iter().sum();
    let mut city_order: Vec<usize> = (0..CITIES.len()).collect();
    for i in (1..city_order.len()).rev() {
        let j = rng.index(i + 1);
        city_order.swap(i, j);
    }
    for (a, &w) in weights.iter().enumerate() {
        let (city, state) = CITIES[city_order[a % CITIES.len()]];
        let source = if rng.chance(0.7) { primary_source } else { SOURCE_SYSTEMS[rng.index(SOURCE_SYSTEMS.len())] };
        let agency_idx = a as u16;
        let terms = t.target_terms as f64 * w / wsum;
        let n_slots = ((terms / 8000.0).round() as usize).clamp(2, 60);
        let n_mgr = n_slots.div_ceil(8);
        let mut managers = Vec::new();
        for _ in 0..n_mgr {
            let idx = t.agents.len() as u16;
            let pct = 200 + 50 * rng.range_i64(0, 6); // 0.020 .. 0.050
            t.agents.push(Agent {
                id: String::new(),
                agency: agency_idx,
                name: person_name(rng),
                role: Role::Manager,
                manager: None,
                split: None,
                override_pct: Some(Decimal::new(pct, 4).normalize()),
                hire: days(start, -rng.range_i64(365 * 3, 365 * 20)),
                termination: None,
                retention_effect: 0.0,
            });
            managers.push(idx);
        }
        let mut slots = Vec::new();
        for _ in 0..n_slots {
            let manager = if rng.chance(0.55) { Some(managers[rng.index(managers.len())]) } else { None };
            let mut producers = Vec::new();
            let mut hire = days(start, -rng.range_i64(60, 365 * 15));
            loop {
                let terminate = if producers.is_empty() { 0.25 } else { 0.10 };
                let earliest = days(hire.max(start), 120);
                let latest = days(end, -30);
                let termination = if earliest < latest && rng.chance(terminate) {
                    Some(days(earliest, rng.range_i64(0, (latest - earliest).num_days())))
                } else {
                    None
                };
                let idx = t.agents.len() as u16;
                let split_steps = [25, 30, 35, 40, 40, 40, 45, 50];
                let split = split_steps[rng.index(split_steps.len())];
                t.agents.push(Agent {
                    id: String::new(),
                    agency: agency_idx,
                    name: person_name(rng),
                    role: Role::Producer,
                    manager,
                    split: Some(Decimal::new(split, 2).normalize()),
                    override_pct: None,
                    hire,
                    termination,
                    retention_effect: (PRODUCER_SD * rng.normal()).clamp(-PRODUCER_CLIP, PRODUCER_CLIP),
                });
                producers.push(idx);
                match termination {
                    Some(d) => hire = d,
                    None => break,
                }
            }
            slots.push(Slot { producers, productivity: rng.lognormal_mean(1.0, 0.5) });
        }
        t.agencies.push(Agency {
            id: format!("AGY-{:02}", a + 1),
            name: format!("{short} Insurance - {city}"),
            state,
            source,
            weight: w,
            slots,
        });
    }
    // Ids in hiring order of creation: managers and producers of each agency.
    for (i, ag) in t.agents.iter_mut().enumerate() {
        ag.id = format!("AG-{:04}", i + 1);
    }
}

fn tenant_lines(kind: TenantKind) -> Vec<Line> {
    let mix = kind.segment_mix();
    let segs = [Segment::Personal, Segment::Commercial, Segment::Life, Segment::Health];
    let mut lines = Vec::new();
    for (s, w) in segs.iter().zip(mix) {
        if w > 0.0 {
            for (_, ls) in catalog::bundles(*s) {
                for l in ls.iter() {
                    if !lines.contains(l) {
                        lines.push(*l);
                    }
                }
            }
        }
    }
    lines.sort();
    lines
}

fn build_carriers(t: &mut Tenant, rng: &mut Rng, start: NaiveDate, end: NaiveDate) {
    let lines = tenant_lines(t.kind);
    let mut chosen: Vec<usize> = Vec::new();
    for (i, spec) in CARRIERS.iter().enumerate() {
        if spec.lines.iter().any(|l| lines.contains(l)) && rng.chance(0.7) {
            chosen.push(i);
        }
    }
    for l in &lines {
        if !chosen.iter().any(|&i| CARRIERS[i].lines.contains(l)) {
            let best = CARRIERS
                .iter()
                .enumerate()
                .filter(|(_, s)| s.lines.contains(l))
                .max_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
                .map(|(i, _)| i)
                .expect("every line has a carrier");
            chosen.push(best);
        }
    }
    chosen.sort();
    chosen.dedup();
    for (n, &i) in chosen.iter().enumerate() {
        let spec = &CARRIERS[i];
        let base = 10u64.pow(spec.format.digits.saturating_sub(2));
        let first = base * (1 + rng.below(9)) + rng.below(base);
        t.carriers.push(Carrier { id: format!("C-{:03}", n + 1), spec, next_number: first, max_number: first });
    }
    // Rate schedules: carrier × line × new/renewal, effective-dated.
    t.schedule_index = vec![Vec::new(); t.carriers.len() * 20];
    let quarter = |rng: &mut Rng, lo: i64, hi: i64| lo + 25 * rng.range_i64(0, (hi - lo) / 25);
    let month_span = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32;
    for c in 0..t.carriers.len() {
        for &line in t.carriers[c].spec.lines {
            let p = line.params();
            let new_rate = quarter(rng, p.new_rate.0, p.new_rate.1);
            let ren_hi = p.renewal_rate.1.min(new_rate).max(p.renewal_rate.0);
            let ren_rate = quarter(rng, p.renewal_rate.0, ren_hi);
            for (renewal, rate0, range) in [(false, new_rate, p.new_rate), (true, ren_rate, p.renewal_rate)] {
                let from0 = NaiveDate::from_ymd_opt(start.year() - rng.range_i64(0, 4) as i32, 1, 1).expect("valid");
                let mut rows = vec![(from0, rate0)];
                let changes = if rng.chance(0.3) { if rng.chance(0.3) { 2 } else { 1 } } else { 0 };
                if month_span > 8 {
                    let mut months: Vec<i64> =
                        (0..changes).map(|_| rng.range_i64(3, i64::from(month_span) - 4)).collect();
                    months.sort();
                    months.dedup();
                    for m in months {
                        let at = first_of_month(add_months(start, m as u32));
                        let last = rows.last().expect("nonempty").1;
                        let step = 25 * rng.range_i64(1, 8);
                        let mut next = if rng.chance(0.5) { last + step } else { last - step };
                        next = next.clamp(range.0, range.1);
                        if next == last {
                            next = if last + step <= range.1 { last + step } else { last - step };
                        }
                        if at > rows.last().expect("nonempty").0 {
                            rows.push((at, next));
                        }
                    }
                }
                for k in 0..rows.len() {
                    let to = rows.get(k + 1).map(|r| r.0);
                    let idx = t.schedules.len() as u32;
                    t.schedules.push(Schedule {
                        carrier: c as u16,
                        line,
                        renewal,
                        rate_micro: (rows[k].1 * 100) as u32,
                        from: rows[k].0,
                        to,
                    });
                    t.schedule_index[sched_slot(c as u16, line, renewal)].push(idx);
                }
            }
        }
    }
}

const MONTH_AUTO: [f64; 12] = [1.25, 1.30, 1.25, 1.05, 1.0, 0.95, 0.95, 0.95, 0.9, 0.9, 0.8, 0.7];
const MONTH_HOME: [f64; 12] = [0.8, 0.85, 1.0, 1.1, 1.2, 1.25, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7];
const MONTH_RENTERS: [f64; 12] = [0.9, 0.9, 0.9, 0.9, 1.0, 1.1, 1.2, 1.4, 1.2, 0.9, 0.8, 0.7];
const MONTH_FLAT: [f64; 12] = [1.0; 12];

fn month_weights(line: Line) -> &'static [f64; 12] {
    match line {
        Line::Auto => &MONTH_AUTO,
        Line::Home | Line::Umbrella => &MONTH_HOME,
        Line::Renters => &MONTH_RENTERS,
        _ => &MONTH_FLAT,
    }
}

fn weekday_weight(d: NaiveDate) -> f64 {
    match d.weekday() {
        Weekday::Sat => 0.30,
        Weekday::Sun => 0.12,
        _ => 1.0,
    }
}

/// A new-business effective date in [lo, hi) for `line`: 1 January and
/// first-of-month clustering, month seasonality, quiet weekends and (for
/// organic business) yearly growth.
fn sample_nb_date(rng: &mut Rng, line: Line, lo: NaiveDate, hi: NaiveDate, growth: bool) -> NaiveDate {
    let p = line.params();
    let span = (hi - lo).num_days().max(1);
    let r = rng.f64();
    if r < p.jan1_share {
        let jan1s: Vec<NaiveDate> = (lo.year()..=hi.year())
            .filter_map(|y| NaiveDate::from_ymd_opt(y, 1, 1))
            .filter(|d| *d >= lo && *d < hi)
            .collect();
        if !jan1s.is_empty() {
            return jan1s[rng.index(jan1s.len())];
        }
    } else if r < p.jan1_share + p.first_of_month_share * (1.0 - p.jan1_share) {
        let d = days(lo, rng.range_i64(0, span - 1));
        let f = first_of_month(d);
        let f = if f < lo { add_months(f, 1) } else { f };
        if f < hi {
            return f;
        }
    }
    let mw = month_weights(line);
    let max_m = mw.iter().cloned().fold(0.0, f64::max);
    let years = span as f64 / 365.25;
    let max_g = if growth { (1.0 + NEW_BUSINESS_GROWTH).powf(years) } else { 1.0 };
    loop {
        let off = rng.range_i64(0, span - 1);
        let d = days(lo, off);
        let g = if growth { (1.0 + NEW_BUSINESS_GROWTH).powf(off as f64 / 365.25) } else { 1.0 };
        let w = mw[d.month0() as usize] * weekday_weight(d) * g;
        if rng.f64() * max_m * max_g < w {
            return d;
        }
    }
}

struct Chain {
    line: Line,
    carrier: u16,
    term_months: u32,
    /// (effective, end) of each term, end = cancellation or expiration.
    intervals: Vec<(NaiveDate, NaiveDate)>,
    current: u32,
    done: bool,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn pick_carrier(t: &Tenant, rng: &mut Rng, line: Line, prefer: Option<u16>) -> u16 {
    if let Some(c) = prefer
        && t.carriers[c as usize].spec.lines.contains(&line)
        && rng.chance(0.7)
    {
        return c;
    }
    let weights: Vec<f64> =
        t.carriers.iter().map(|c| if c.spec.lines.contains(&line) { c.spec.weight } else { 0.0 }).collect();
    rng.weighted(&weights) as u16
}

fn producer_on(t: &Tenant, agency: u16, slot: usize, d: NaiveDate) -> u16 {
    let s = &t.agencies[agency as usize].slots[slot];
    for &p in &s.producers {
        if t.agents[p as usize].active_on(d) {
            return p;
        }
    }
    *s.producers.last().expect("slot has a producer")
}

/// Premium of a renewal: `prev` × (1 + change), in rust_decimal, to cents.
fn renewed_premium(prev_cents: i64, change_bp: i32) -> i64 {
    let prev = Decimal::new(prev_cents, 2);
    let factor = Decimal::ONE + Decimal::new(i64::from(change_bp), 4);
    let p = (prev * factor).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let cents = p * Decimal::ONE_HUNDRED;
    i64::try_from(cents).expect("premium fits in i64").max(100)
}

/// Cumulative premium level of `line` at the start of `year` relative to the
/// first year of history (new business is priced at the market level).
fn price_level(line: Line, year: i32, start_year: i32) -> f64 {
    let p = line.params();
    (0..(year - start_year).max(0) as usize).map(|k| 1.0 + p.trend[k.min(4)]).product()
}

/// Premium change offered at a renewal, in 1/10000: the line's yearly trend
/// (pro rata for 6-month terms), noise and now and then a sharp increase.
fn draw_change_bp(rng: &mut Rng, line: Line, term_months: u32, year: i32, start_year: i32) -> i32 {
    let p = line.params();
    let yi = ((year - start_year).max(0) as usize).min(4);
    let sd = if line.is_commercial() { 0.06 } else { 0.04 };
    let share = f64::from(term_months) / 12.0;
    let mut c = p.trend[yi] * share + sd * rng.normal();
    if line != Line::Life && rng.chance(SHOCK_PROBABILITY * share) {
        c += 0.15 + 0.25 * rng.f64();
    }
    ((c * 10000.0).round() as i32).clamp(-2000, 6000)
}

fn simulate_book(t: &mut Tenant, rng: &mut Rng, start: NaiveDate, end: NaiveDate) {
    if t.target_terms == 0 {
        return;
    }
    let mix = t.kind.segment_mix();
    let segs = [Segment::Personal, Segment::Commercial, Segment::Life, Segment::Health];
    let agency_w: Vec<f64> = t.agencies.iter().map(|a| a.weight).collect();
    while t.policies.len() < t.target_terms {
        let seg = segs[rng.weighted(&mix)];
        let bundle_list = catalog::bundles(seg);
        let bw: Vec<f64> = bundle_list.iter().map(|b| b.0).collect();
        let lines = bundle_list[rng.weighted(&bw)].1;
        let agency = rng.weighted(&agency_w) as u16;
        let slot_w: Vec<f64> = t.agencies[agency as usize].slots.iter().map(|s| s.productivity).collect();
        let slot = rng.weighted(&slot_w);
        let converted = rng.chance(CONVERTED_BOOK_SHARE);
        let customer = t.customers.len() as u32;
        let business = if seg == Segment::Commercial {
            Some((rng.index(BUSINESS_TRADES.len()) as u16, rng.index(BUSINESS_SUFFIXES.len()) as u16))
        } else {
            None
        };
        t.customers.push(Customer {
            first: rng.index(FIRST_NAMES.len()) as u16,
            last: rng.index(LAST_NAMES.len()) as u16,
            business,
        });
        let customer_effect = CUSTOMER_SD * rng.normal();

        // Carriers and term lengths of the chains.
        let mut chains: Vec<Chain> = Vec::with_capacity(lines.len());
        let mut prefer = None;
        for &line in lines {
            let carrier = pick_carrier(t, rng, line, prefer);
            prefer = Some(carrier);
            let term_months = if line == Line::Auto { t.carriers[carrier as usize].spec.auto_term } else { 12 };
            chains.push(Chain { line, carrier, term_months, intervals: Vec::new(), current: 0, done: false });
        }
        // First effective date of the customer (of its first line).
        let first_line = chains[0].line;
        let arrival = if converted {
            let hi = add_months(start, chains[0].term_months).min(end);
            sample_nb_date(rng, first_line, start, hi, false)
        } else {
            sample_nb_date(rng, first_line, start, end, true)
        };
        let multi = chains.len() > 1;
        for (ci, chain) in chains.iter_mut().enumerate() {
            let eff = if ci == 0 || rng.chance(0.6) { arrival } else { days(arrival, rng.range_i64(1, 120)) };
            if eff >= end {
                chain.done = true;
                continue;
            }
            let slot_agent = producer_on(t, agency, slot, eff);
            let premium = {
                let p = chain.line.params();
                // Redraw outside [min, max] so the bounds do not pile up.
                let level = price_level(chain.line, eff.year(), start.year());
                let (mean, lo, hi) = (p.annual_mean * level, p.min * level, p.max * level);
                let mut annual = rng.lognormal_mean(mean, p.sigma);
                for _ in 0..20 {
                    if (lo..=hi).contains(&annual) {
                        break;
                    }
                    annual = rng.lognormal_mean(mean, p.sigma);
                }
                let annual = annual.clamp(lo, hi);
                let cents = (annual * 100.0).round() as i64;
                cents * i64::from(chain.term_months) / 12
            };
            let idx = push_term(t, rng, chain, customer, agency, slot_agent, eff, premium, None, 1, 0, multi, end);
            chain.current = idx;
        }

        // Renewal loop, in time order of the chains' current term ends.
        loop {
            let mut best: Option<(NaiveDate, usize)> = None;
            for (ci, ch) in chains.iter().enumerate() {
                if ch.done {
                    continue;
                }
                let e = ch.intervals.last().expect("started chain").1;
                if best.is_none_or(|(be, _)| e < be) {
                    best = Some((e, ci));
                }
            }
            let Some((_, ci)) = best else { break };
            let cur = t.policies[chains[ci].current as usize].clone();
            if cur.cancel.is_some() || cur.exp >= end {
                chains[ci].done = true;
                continue;
            }
            // Bundled: another policy of the customer in force the day
            // before this term expires.
            let probe = days(cur.exp, -1);
            let mut others_renters_only = true;
            let mut bundled = false;
            for (cj, other) in chains.iter().enumerate() {
                if cj != ci && other.intervals.iter().any(|&(a, b)| a <= probe && probe < b) {
                    bundled = true;
                    if other.line != Line::Renters {
                        others_renters_only = false;
                    }
                }
            }
            let line = cur.line;
            let p = line.params();
            let offer_bp = draw_change_bp(rng, line, chains[ci].term_months, cur.exp.year(), start.year());
            let d_cur = f64::from(cur.change_bp) / 10000.0;
            let d_next = f64::from(offer_bp) / 10000.0;
            let mut logit = p.renew_logit
                + TENURE_LOGIT * f64::from((cur.term_no - 1).min(5))
                + PRICE_LOGIT_CURRENT * (d_cur - 0.05).max(0.0)
                + PRICE_LOGIT_OFFER * (d_next - 0.05).max(0.0)
                + t.agents[cur.agent as usize].retention_effect
                + customer_effect;
            if bundled {
                logit += if others_renters_only { BUNDLE_RENTERS_LOGIT } else { BUNDLE_LOGIT };
            }
            if !rng.chance(logistic(logit)) {
                chains[ci].done = true;
                continue;
            }
            let premium = renewed_premium(cur.premium_cents, offer_bp);
            let agent = producer_on(t, agency, slot, cur.exp);
            let prev = chains[ci].current;
            let idx = push_term(
                t,
                rng,
                &mut chains[ci],
                customer,
                agency,
                agent,
                cur.exp,
                premium,
                Some(prev),
                cur.term_no + 1,
                offer_bp,
                bundled,
                end,
            );
            t.policies[prev as usize].renewed = true;
            chains[ci].current = idx;
        }
    }
    finish_book(t, rng);
}

#[allow(clippy::too_many_arguments)]
fn push_term(
    t: &mut Tenant,
    rng: &mut Rng,
    chain: &mut Chain,
    customer: u32,
    agency: u16,
    agent: u16,
    eff: NaiveDate,
    premium_cents: i64,
    prev: Option<u32>,
    term_no: u16,
    change_bp: i32,
    bundled: bool,
    end: NaiveDate,
) -> u32 {
    let exp = add_months(eff, chain.term_months);
    let p = chain.line.params();
    let mut pc = p.cancel_per_term * (1.0 + 3.0 * (f64::from(change_bp) / 10000.0 - 0.05).max(0.0));
    if chain.line == Line::Auto && chain.term_months == 12 {
        pc *= 1.6;
    }
    if bundled {
        pc *= 0.6;
    }
    let term_days = (exp - eff).num_days();
    let cancel = if rng.chance(pc) {
        let d = days(eff, rng.range_i64(1, term_days - 1));
        (d < end).then_some(d)
    } else {
        None
    };
    chain.intervals.push((eff, cancel.unwrap_or(exp)));
    let idx = t.policies.len() as u32;
    t.policies.push(Policy {
        customer,
        carrier: chain.carrier,
        agency,
        agent,
        line: chain.line,
        eff,
        exp,
        premium_cents,
        cancel,
        prev,
        renewed: false,
        term_no,
        number: 0,
        change_bp,
        on_statement: false,
    });
    idx
}

/// Sorts the book by effective date, remaps `prev`, and hands out carrier
/// policy numbers (one per chain, in order of first effective date).
fn finish_book(t: &mut Tenant, rng: &mut Rng) {
    let n = t.policies.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&i| {
        let p = &t.policies[i as usize];
        (p.eff, p.customer, p.line, i)
    });
    let mut new_of_old = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        new_of_old[old as usize] = new as u32;
    }
    let mut sorted: Vec<Policy> = Vec::with_capacity(n);
    for &old in &order {
        let mut p = t.policies[old as usize].clone();
        p.prev = p.prev.map(|q| new_of_old[q as usize]);
        sorted.push(p);
    }
    for i in 0..n {
        let number = match sorted[i].prev {
            Some(q) => sorted[q as usize].number,
            None => {
                let c = &mut t.carriers[sorted[i].carrier as usize];
                c.next_number += 1 + rng.below(7);
                c.max_number = c.next_number;
                c.next_number
            }
        };
        sorted[i].number = number;
    }
    t.policies = sorted;
}
