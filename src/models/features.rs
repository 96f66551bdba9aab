//! Renewal examples: one row per policy term, with features known at its
//! as-of date. (Owned by the renewal work; see the issue.)
//!
//! polars reads the lake tables and holds the result; the per-term features
//! are computed in plain Rust over interned columns, because every feature is
//! an "as of this row's date" window (trailing retention, policies in force,
//! past cancellations) that is a binary search per row here and a non-equi
//! join per window in a dataframe.
//!
//! Leakage rule: a feature of an example observed at `as_of` uses only
//! policies effective on or before `as_of`, cancellations dated on or before
//! it, and outcomes of terms that expired before it (a renewal counts once
//! the renewing term is effective on or before `as_of`). Agent rows are used
//! for their dates only (hire, and termination once dated ≤ `as_of`).

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

/// Days before expiration at which a training example is observed.
pub const LEAD_DAYS: i64 = 90;
/// Trailing window of the retention rates.
pub const TRAILING_DAYS: i32 = 365;
/// Pseudo-count with which a trailing rate is shrunk toward its parent.
pub const SMOOTHING: f64 = 20.0;
/// Fewest expirations for the "line and carrier last year" baseline rate
/// (else the line's, else the tenant's).
pub const BASELINE_MIN: u32 = 30;
/// Renewal rate assumed before a tenant has any history.
pub const PRIOR_RATE: f64 = 0.8;
/// Window of the line's recent renewal price change.
pub const MARKET_DAYS: i32 = 180;

/// The lake tables the features are built from (one tenant's or all).
pub struct Inputs {
    pub policies: DataFrame,
    pub agents: DataFrame,
    pub commissions: DataFrame,
}

/// Labelled examples: terms that expired on or before `data_date`, observed
/// at `as_of = expiration_date - LEAD_DAYS`, kept when effective on or
/// before `as_of` and not cancelled by then.
pub fn training_examples(inputs: &Inputs, data_date: NaiveDate) -> Result<DataFrame> {
    let book = Book::new(inputs)?;
    let last = day(data_date);
    let rows: Vec<(usize, i32)> = (0..book.len())
        .filter(|&i| book.exp[i] <= last)
        .map(|i| (i, book.exp[i] - LEAD_DAYS as i32))
        .filter(|&(i, as_of)| book.in_force(i, as_of))
        .collect();
    book.examples(rows, true)
}

/// Terms in force at `as_of`, with features as of that date; `label` null.
pub fn scoring_examples(inputs: &Inputs, as_of: NaiveDate) -> Result<DataFrame> {
    let started = std::time::Instant::now();
    let book = Book::new(inputs)?;
    let indexed = started.elapsed();
    let d = day(as_of);
    let rows: Vec<(usize, i32)> = (0..book.len()).filter(|&i| book.in_force(i, d)).map(|i| (i, d)).collect();
    let out = book.examples(rows, false);
    tracing::info!(
        book_ms = indexed.as_millis() as u64,
        examples_ms = (started.elapsed() - indexed).as_millis() as u64,
        "scoring features built"
    );
    out
}

/// Days since 1970-01-01 (polars' Date).
pub fn day(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// The date of a polars Date value.
pub fn date(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(i64::from(days))
}

/// Maps keys to dense ids.
struct Interner<K: std::hash::Hash + Eq> {
    ids: PlHashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq> Default for Interner<K> {
    fn default() -> Self {
        Interner { ids: PlHashMap::default() }
    }
}

impl<K: std::hash::Hash + Eq> Interner<K> {
    fn id(&mut self, k: K) -> u32 {
        let n = self.ids.len() as u32;
        *self.ids.entry(k).or_insert(n)
    }
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Expirations of one group (a producer, an agency, …), sorted by date, to
/// count the terms up for renewal and those renewed in any window.
#[derive(Default)]
struct Trail {
    /// (expiration, renewed, renewing term's effective date).
    events: Vec<(i32, bool, i32)>,
    /// Renewed terms up to and including index i−1.
    renewed_before: Vec<u32>,
    /// Renewed terms whose renewal became effective after their expiration
    /// (rare): a window must check when it became known.
    late: Vec<(i32, i32)>,
}

impl Trail {
    fn finish(&mut self) {
        self.events.sort_unstable();
        self.renewed_before = std::iter::once(0)
            .chain(self.events.iter().scan(0u32, |s, e| {
                *s += u32::from(e.1);
                Some(*s)
            }))
            .collect();
        self.late = self.events.iter().filter(|e| e.1 && e.2 > e.0).map(|e| (e.0, e.2)).collect();
    }

    /// (renewed, up for renewal) among expirations in `[as_of − TRAILING_DAYS, as_of)`,
    /// a renewal counting only if effective on or before `as_of`.
    fn window(&self, as_of: i32) -> (u32, u32) {
        let lo = as_of - TRAILING_DAYS;
        let i0 = self.events.partition_point(|e| e.0 < lo);
        let i1 = self.events.partition_point(|e| e.0 < as_of);
        let unknown = self.late.iter().filter(|&&(e, r)| e >= lo && e < as_of && r > as_of).count() as u32;
        (self.renewed_before[i1] - self.renewed_before[i0] - unknown, (i1 - i0) as u32)
    }
}

/// Premium changes of the renewal terms of one tenant's line, by effective date.
#[derive(Default)]
struct Market {
    events: Vec<(i32, f64)>,
    sum_before: Vec<f64>,
}

impl Market {
    fn finish(&mut self) {
        self.events.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        self.sum_before = std::iter::once(0.0)
            .chain(self.events.iter().scan(0.0, |s, e| {
                *s += e.1;
                Some(*s)
            }))
            .collect();
    }

    /// Mean change of renewals effective in `(as_of − MARKET_DAYS, as_of]`,
    /// shrunk toward 3 % with 10 pseudo-renewals.
    fn recent(&self, as_of: i32) -> f64 {
        let i0 = self.events.partition_point(|e| e.0 <= as_of - MARKET_DAYS);
        let i1 = self.events.partition_point(|e| e.0 <= as_of);
        let (sum, n) = (self.sum_before[i1] - self.sum_before[i0], (i1 - i0) as f64);
        (sum + 10.0 * 0.03) / (n + 10.0)
    }
}

/// Kinds of group with a trailing renewal rate.
const PRODUCER: usize = 0;
const AGENCY: usize = 1;
const CARRIER_LINE: usize = 2;
const LINE: usize = 3;
const TENANT: usize = 4;

/// The policy book, interned and linked.
struct Book {
    tenant: Vec<String>,
    policy_id: Vec<String>,
    agency: Vec<String>,
    agent: Vec<String>,
    carrier: Vec<String>,
    customer: Vec<String>,
    line: Vec<String>,
    eff: Vec<i32>,
    exp: Vec<i32>,
    cancel: Vec<Option<i32>>,
    premium: Vec<f64>,
    /// Row of the term this one renews.
    prev: Vec<Option<u32>>,
    /// Earliest effective date of a term renewing this one.
    renewer_eff: Vec<Option<i32>>,
    /// Terms in the chain up to this one (1 = first in the data).
    tenure: Vec<i64>,
    tenant_ix: Vec<u32>,
    /// First effective date per tenant.
    tenant_start: Vec<i32>,
    /// Rows of each (tenant, customer).
    customer_rows: Vec<Vec<u32>>,
    customer_ix: Vec<u32>,
    /// Group id of each row for each kind of group, and the groups' trails.
    group: [Vec<u32>; 5],
    trails: [Vec<Trail>; 5],
    markets: Vec<Market>,
    /// (hire, termination) of each row's producer.
    producer: Vec<Tenure>,
}

fn strings(df: &DataFrame, col: &str) -> Result<Vec<String>> {
    super::frames::to_strings(df, col)
}

fn opt_strings(df: &DataFrame, col: &str) -> Result<Vec<Option<String>>> {
    let c = df.column(col)?.cast(&DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

fn opt_days(df: &DataFrame, col: &str) -> Result<Vec<Option<i32>>> {
    let c = df.column(col)?.cast(&DataType::Date)?.cast(&DataType::Int32)?;
    Ok(c.i32()?.iter().collect())
}

fn days(df: &DataFrame, col: &str) -> Result<Vec<i32>> {
    opt_days(df, col)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.with_context(|| format!("column {col} has a null at row {i}")))
        .collect()
}

impl Book {
    fn new(inputs: &Inputs) -> Result<Book> {
        let df = &inputs.policies;
        // Copying the id columns out of the frame is most of the book's
        // cost: two threads (the machines this runs on have 2 cores).
        let (ids, more) = std::thread::scope(|s| {
            let more = s.spawn(|| -> Result<[Vec<String>; 3]> {
                Ok([strings(df, "carrier_id")?, strings(df, "customer_id")?, strings(df, "line_of_business")?])
            });
            let ids: Result<[Vec<String>; 4]> = (|| {
                Ok([
                    strings(df, "tenant_id")?,
                    strings(df, "policy_id")?,
                    strings(df, "agency_id")?,
                    strings(df, "agent_id")?,
                ])
            })();
            (ids, more.join().expect("column copy thread"))
        });
        let [tenant, policy_id, agency, agent] = ids?;
        let [carrier, customer, line] = more?;
        let renewal_of = opt_strings(df, "renewal_of")?;
        let eff = days(df, "effective_date")?;
        let exp = days(df, "expiration_date")?;
        let cancel = opt_days(df, "cancellation_date")?;
        let premium = super::frames::to_array1(df, "premium")?.to_vec();
        let n = tenant.len();

        let mut tenants = Interner::default();
        let tenant_ix: Vec<u32> = tenant.iter().map(|t| tenants.id(t.as_str())).collect();
        let mut tenant_start = vec![i32::MAX; tenants.len()];
        for i in 0..n {
            let t = &mut tenant_start[tenant_ix[i] as usize];
            *t = (*t).min(eff[i]);
        }

        // Renewal links within a tenant.
        let row_of: PlHashMap<(u32, &str), u32> =
            (0..n).map(|i| ((tenant_ix[i], policy_id[i].as_str()), i as u32)).collect();
        let mut prev = vec![None; n];
        let mut renewer_eff: Vec<Option<i32>> = vec![None; n];
        for i in 0..n {
            if let Some(r) = &renewal_of[i]
                && let Some(&p) = row_of.get(&(tenant_ix[i], r.as_str()))
                && p as usize != i
            {
                prev[i] = Some(p);
                let re = &mut renewer_eff[p as usize];
                *re = Some(re.map_or(eff[i], |e| e.min(eff[i])));
            }
        }
        let tenure = chain_lengths(&prev, &eff);

        let mut customers = Interner::default();
        let customer_ix: Vec<u32> = (0..n).map(|i| customers.id((tenant_ix[i], customer[i].as_str()))).collect();
        let mut customer_rows = vec![Vec::new(); customers.len()];
        for (i, &c) in customer_ix.iter().enumerate() {
            customer_rows[c as usize].push(i as u32);
        }

        let mut interners: [Interner<(u32, &str, &str)>; 5] = Default::default();
        let group: [Vec<u32>; 5] = std::array::from_fn(|k| {
            (0..n)
                .map(|i| {
                    let t = tenant_ix[i];
                    let key = match k {
                        PRODUCER => (t, agent[i].as_str(), ""),
                        AGENCY => (t, agency[i].as_str(), ""),
                        CARRIER_LINE => (t, carrier[i].as_str(), line[i].as_str()),
                        LINE => (t, line[i].as_str(), ""),
                        _ => (t, "", ""),
                    };
                    interners[k].id(key)
                })
                .collect()
        });
        let mut trails: [Vec<Trail>; 5] =
            std::array::from_fn(|k| (0..interners[k].len()).map(|_| Trail::default()).collect());
        let mut markets: Vec<Market> = (0..interners[LINE].len()).map(|_| Market::default()).collect();
        for i in 0..n {
            // Up for renewal: not cancelled before expiration.
            if cancel[i].is_none_or(|c| c >= exp[i]) {
                for k in 0..5 {
                    let r = renewer_eff[i];
                    trails[k][group[k][i] as usize].events.push((exp[i], r.is_some(), r.unwrap_or(i32::MAX)));
                }
            }
            if let Some(p) = prev[i]
                && premium[p as usize] > 0.0
            {
                markets[group[LINE][i] as usize].events.push((eff[i], premium[i] / premium[p as usize] - 1.0));
            }
        }
        trails.iter_mut().flatten().for_each(Trail::finish);
        markets.iter_mut().for_each(Market::finish);

        let producers = producer_dates(&inputs.agents)?;
        let producer = (0..n)
            .map(|i| producers.get(&(tenant[i].as_str(), agent[i].as_str())).copied().unwrap_or((None, None)))
            .collect();
        // The maps borrow the id columns, which move into the book below.
        drop((tenants, row_of, customers, interners, producers));

        Ok(Book {
            tenant,
            policy_id,
            agency,
            agent,
            carrier,
            customer,
            line,
            eff,
            exp,
            cancel,
            premium,
            prev,
            renewer_eff,
            tenure,
            tenant_ix,
            tenant_start,
            customer_rows,
            customer_ix,
            group,
            trails,
            markets,
            producer,
        })
    }

    fn len(&self) -> usize {
        self.tenant.len()
    }

    /// Active at `d` per the data contract.
    fn in_force(&self, i: usize, d: i32) -> bool {
        self.eff[i] <= d && d < self.exp[i] && self.cancel[i].is_none_or(|c| c > d)
    }

    /// Trailing (renewed, up) of row `i`'s group of kind `k` at `as_of`.
    fn trailing(&self, k: usize, i: usize, as_of: i32) -> (u32, u32) {
        self.trails[k][self.group[k][i] as usize].window(as_of)
    }

    fn examples(&self, mut rows: Vec<(usize, i32)>, labelled: bool) -> Result<DataFrame> {
        // Deterministic order whatever the files' order.
        rows.sort_by(|a, b| {
            (self.tenant[a.0].as_str(), self.exp[a.0], self.policy_id[a.0].as_str()).cmp(&(
                self.tenant[b.0].as_str(),
                self.exp[b.0],
                self.policy_id[b.0].as_str(),
            ))
        });
        let mut cols = Columns::default();
        for (i, as_of) in rows {
            self.push(&mut cols, i, as_of, labelled);
        }
        cols.into_frame()
    }

    fn push(&self, c: &mut Columns, i: usize, as_of: i32, labelled: bool) {
        c.tenant_id.push(self.tenant[i].clone());
        c.policy_id.push(self.policy_id[i].clone());
        c.agency_id.push(self.agency[i].clone());
        c.agent_id.push(self.agent[i].clone());
        c.carrier_id.push(self.carrier[i].clone());
        c.customer_id.push(self.customer[i].clone());
        c.line_of_business.push(self.line[i].clone());
        c.as_of.push(as_of);
        c.expiration_date.push(self.exp[i]);
        c.premium.push(self.premium[i]);
        c.label.push(labelled.then_some(self.renewer_eff[i].is_some()));

        c.tenure_terms.push(self.tenure[i]);
        let change = match self.prev[i] {
            Some(p) if self.premium[p as usize] > 0.0 => self.premium[i] / self.premium[p as usize] - 1.0,
            _ => 0.0,
        };
        c.premium_change.push(change);
        c.term_months.push(i64::from(((self.exp[i] - self.eff[i]) as f64 / 30.44).round() as i32));
        c.exp_month.push(i64::from(date(self.exp[i]).month()));
        c.days_to_expiration.push(i64::from(self.exp[i] - as_of));
        c.history_days.push(i64::from(as_of - self.tenant_start[self.tenant_ix[i] as usize]));

        self.push_customer(c, i, as_of);
        self.push_rates(c, i, as_of);

        let (hire, term) = self.producer[i];
        let years = hire.map_or(0.0, |h| f64::from((as_of - h).max(0)) / 365.25);
        c.producer_years.push(years);
        c.producer_terminated.push(term.is_some_and(|t| t <= as_of));
        c.line_recent_change.push(self.markets[self.group[LINE][i] as usize].recent(as_of));
    }

    /// Bundle and history of the customer at `as_of`.
    fn push_customer(&self, c: &mut Columns, i: usize, as_of: i32) {
        let (mut others, mut renters_only, mut cancels, mut lapses) = (0i64, true, 0i64, 0i64);
        let (mut covering, mut renewals) = (0i64, 0i64);
        let mut since = as_of;
        for &j in &self.customer_rows[self.customer_ix[i] as usize] {
            let j = j as usize;
            if self.eff[j] > as_of {
                continue;
            }
            since = since.min(self.eff[j]);
            if j != i && self.in_force(j, as_of) {
                others += 1;
                renters_only &= self.line[j] == "renters";
                // Still in force when this term expires, without a renewal of its own.
                covering += i64::from(self.exp[j] >= self.exp[i]);
            }
            if self.renewer_eff[j].is_some_and(|r| r <= as_of) {
                renewals += 1;
            }
            match self.cancel[j] {
                Some(d) if d <= as_of => cancels += 1,
                Some(d) if d < self.exp[j] => {}
                _ => {
                    let renewed_by_now = self.renewer_eff[j].is_some_and(|r| r <= as_of);
                    if self.exp[j] < as_of && !renewed_by_now {
                        lapses += 1;
                    }
                }
            }
        }
        c.other_policies.push(others);
        c.others_renters_only.push(others > 0 && renters_only);
        c.others_covering_expiration.push(covering);
        c.customer_renewals.push(renewals);
        c.customer_cancellations.push(cancels);
        c.customer_lapses.push(lapses);
        c.customer_years.push(f64::from(as_of - since) / 365.25);
    }

    /// Trailing renewal rates, each shrunk toward its parent's, and the
    /// "line and carrier last year" baseline.
    fn push_rates(&self, c: &mut Columns, i: usize, as_of: i32) {
        let counts: [(u32, u32); 5] = std::array::from_fn(|k| self.trailing(k, i, as_of));
        let shrink = |(r, n): (u32, u32), prior: f64| (f64::from(r) + SMOOTHING * prior) / (f64::from(n) + SMOOTHING);
        let tenant = shrink(counts[TENANT], PRIOR_RATE);
        let line = shrink(counts[LINE], tenant);
        c.tenant_rate.push(tenant);
        c.line_rate.push(line);
        c.carrier_line_rate.push(shrink(counts[CARRIER_LINE], line));
        c.agency_rate.push(shrink(counts[AGENCY], tenant));
        c.producer_rate.push(shrink(counts[PRODUCER], tenant));
        c.producer_expirations.push(i64::from(counts[PRODUCER].1));
        let baseline = [CARRIER_LINE, LINE, TENANT]
            .into_iter()
            .map(|k| counts[k])
            .find(|&(_, n)| n >= BASELINE_MIN)
            .map(|(r, n)| f64::from(r) / f64::from(n));
        c.baseline_rate.push(baseline);
    }
}

/// Terms in each row's renewal chain, the row included.
fn chain_lengths(prev: &[Option<u32>], eff: &[i32]) -> Vec<i64> {
    let mut order: Vec<usize> = (0..prev.len()).collect();
    order.sort_by_key(|&i| eff[i]);
    let mut len = vec![0i64; prev.len()];
    for i in order {
        len[i] = 1 + prev[i].map_or(0, |p| len[p as usize]);
    }
    // A predecessor effective on the same day or later (bad data) has not
    // been counted yet when its successor is: recount those directly.
    for i in 0..prev.len() {
        if prev[i].is_some_and(|p| eff[p as usize] >= eff[i]) {
            len[i] = 2;
        }
    }
    len
}

/// (hire date, termination date) of an agent.
type Tenure = (Option<i32>, Option<i32>);

/// (tenant, agent) → its dates.
fn producer_dates(agents: &DataFrame) -> Result<PlHashMap<(&str, &str), Tenure>> {
    if agents.height() == 0 || agents.column("agent_id").is_err() {
        return Ok(PlHashMap::default());
    }
    let tenant = agents.column("tenant_id")?.str()?;
    let agent = agents.column("agent_id")?.str()?;
    let hire = opt_days(agents, "hire_date")?;
    let term = opt_days(agents, "termination_date")?;
    let mut out = PlHashMap::default();
    for (i, (t, a)) in tenant.iter().zip(agent.iter()).enumerate() {
        if let (Some(t), Some(a)) = (t, a) {
            out.insert((t, a), (hire[i], term[i]));
        }
    }
    Ok(out)
}

/// The output columns, filled row by row.
#[derive(Default)]
struct Columns {
    tenant_id: Vec<String>,
    policy_id: Vec<String>,
    agency_id: Vec<String>,
    agent_id: Vec<String>,
    carrier_id: Vec<String>,
    customer_id: Vec<String>,
    line_of_business: Vec<String>,
    as_of: Vec<i32>,
    expiration_date: Vec<i32>,
    premium: Vec<f64>,
    label: Vec<Option<bool>>,
    tenure_terms: Vec<i64>,
    premium_change: Vec<f64>,
    term_months: Vec<i64>,
    exp_month: Vec<i64>,
    days_to_expiration: Vec<i64>,
    history_days: Vec<i64>,
    other_policies: Vec<i64>,
    others_renters_only: Vec<bool>,
    others_covering_expiration: Vec<i64>,
    customer_renewals: Vec<i64>,
    customer_cancellations: Vec<i64>,
    customer_lapses: Vec<i64>,
    customer_years: Vec<f64>,
    producer_years: Vec<f64>,
    producer_terminated: Vec<bool>,
    producer_rate: Vec<f64>,
    producer_expirations: Vec<i64>,
    agency_rate: Vec<f64>,
    carrier_line_rate: Vec<f64>,
    line_rate: Vec<f64>,
    tenant_rate: Vec<f64>,
    baseline_rate: Vec<Option<f64>>,
    line_recent_change: Vec<f64>,
}

impl Columns {
    fn into_frame(self) -> Result<DataFrame> {
        let n = self.tenant_id.len();
        let date_col = |name: &str, v: Vec<i32>| Column::new(name.into(), v).cast(&DataType::Date);
        let cols = vec![
            Column::new("tenant_id".into(), self.tenant_id),
            Column::new("policy_id".into(), self.policy_id),
            Column::new("agency_id".into(), self.agency_id),
            Column::new("agent_id".into(), self.agent_id),
            Column::new("carrier_id".into(), self.carrier_id),
            Column::new("customer_id".into(), self.customer_id),
            Column::new("line_of_business".into(), self.line_of_business),
            date_col("as_of", self.as_of)?,
            date_col("expiration_date", self.expiration_date)?,
            Column::new("premium".into(), self.premium),
            Column::new("label".into(), self.label),
            Column::new("tenure_terms".into(), self.tenure_terms),
            Column::new("premium_change".into(), self.premium_change),
            Column::new("term_months".into(), self.term_months),
            Column::new("exp_month".into(), self.exp_month),
            Column::new("days_to_expiration".into(), self.days_to_expiration),
            Column::new("history_days".into(), self.history_days),
            Column::new("other_policies".into(), self.other_policies),
            Column::new("others_renters_only".into(), self.others_renters_only),
            Column::new("others_covering_expiration".into(), self.others_covering_expiration),
            Column::new("customer_renewals".into(), self.customer_renewals),
            Column::new("customer_cancellations".into(), self.customer_cancellations),
            Column::new("customer_lapses".into(), self.customer_lapses),
            Column::new("customer_years".into(), self.customer_years),
            Column::new("producer_years".into(), self.producer_years),
            Column::new("producer_terminated".into(), self.producer_terminated),
            Column::new("producer_rate".into(), self.producer_rate),
            Column::new("producer_expirations".into(), self.producer_expirations),
            Column::new("agency_rate".into(), self.agency_rate),
            Column::new("carrier_line_rate".into(), self.carrier_line_rate),
            Column::new("line_rate".into(), self.line_rate),
            Column::new("tenant_rate".into(), self.tenant_rate),
            Column::new("baseline_rate".into(), self.baseline_rate),
            Column::new("line_recent_change".into(), self.line_recent_change),
        ];
        Ok(DataFrame::new(n, cols)?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    /// One policy row of a fixture.
    #[derive(Clone)]
    pub(crate) struct P {
        pub id: &'static str,
        pub agent: &'static str,
        pub customer: &'static str,
        pub line: &'static str,
        pub eff: &'static str,
        pub exp: &'static str,
        pub premium: f64,
        pub cancel: Option<&'static str>,
        pub renewal_of: Option<&'static str>,
    }

    pub(crate) fn policies(rows: &[P]) -> DataFrame {
        let s = |f: &dyn Fn(&P) -> String| rows.iter().map(f).collect::<Vec<String>>();
        let dates = |name: &str, f: &dyn Fn(&P) -> Option<i32>| {
            Column::new(name.into(), rows.iter().map(f).collect::<Vec<Option<i32>>>()).cast(&DataType::Date).unwrap()
        };
        let cols = vec![
            Column::new("tenant_id".into(), s(&|_| "t1".into())),
            Column::new("policy_id".into(), s(&|p| p.id.into())),
            Column::new("policy_number".into(), s(&|p| format!("N-{}", p.id))),
            Column::new("agency_id".into(), s(&|_| "A1".into())),
            Column::new("agent_id".into(), s(&|p| p.agent.into())),
            Column::new("carrier_id".into(), s(&|_| "C1".into())),
            Column::new("customer_id".into(), s(&|p| p.customer.into())),
            Column::new("line_of_business".into(), s(&|p| p.line.into())),
            dates("effective_date", &|p| Some(day(d(p.eff)))),
            dates("expiration_date", &|p| Some(day(d(p.exp)))),
            Column::new("premium".into(), rows.iter().map(|p| p.premium).collect::<Vec<f64>>()),
            Column::new("status".into(), s(&|_| "active".into())),
            dates("cancellation_date", &|p| p.cancel.map(|c| day(d(c)))),
            Column::new(
                "renewal_of".into(),
                rows.iter().map(|p| p.renewal_of.map(str::to_string)).collect::<Vec<Option<String>>>(),
            ),
        ];
        DataFrame::new(rows.len(), cols).unwrap()
    }

    fn agents(termination: Option<&str>) -> DataFrame {
        let cols = vec![
            Column::new("tenant_id".into(), vec!["t1"]),
            Column::new("agent_id".into(), vec!["AG1"]),
            Column::new("hire_date".into(), vec![Some(day(d("2020-10-03")))]).cast(&DataType::Date).unwrap(),
            Column::new("termination_date".into(), vec![termination.map(|t| day(d(t)))]).cast(&DataType::Date).unwrap(),
        ];
        DataFrame::new(1, cols).unwrap()
    }

    fn p(id: &'static str, customer: &'static str, line: &'static str, eff: &'static str, exp: &'static str) -> P {
        P { id, agent: "AG1", customer, line, eff, exp, premium: 1000.0, cancel: None, renewal_of: None }
    }

    /// P2 (renews P1 at +23 %, expires 2024-01-01, observed 2023-10-03)
    /// with a home policy P3 of the same customer in force, and a producer
    /// with one renewal (P1) and one lapse (P4) in the trailing year; P5 was
    /// cancelled, so it is not up for renewal.
    fn base() -> Vec<P> {
        vec![
            p("P1", "K1", "auto", "2022-01-01", "2023-01-01"),
            P { premium: 1230.0, renewal_of: Some("P1"), ..p("P2", "K1", "auto", "2023-01-01", "2024-01-01") },
            p("P3", "K1", "home", "2023-03-01", "2024-03-01"),
            p("P4", "K2", "auto", "2022-02-01", "2023-02-01"),
            P { cancel: Some("2022-05-01"), ..p("P5", "K3", "auto", "2022-03-01", "2023-03-01") },
        ]
    }

    fn inputs(rows: &[P], termination: Option<&str>) -> Inputs {
        Inputs { policies: policies(rows), agents: agents(termination), commissions: DataFrame::empty() }
    }

    fn row_of(df: &DataFrame, policy: &str) -> DataFrame {
        let mask = df.column("policy_id").unwrap().str().unwrap().equal(policy);
        df.filter(&mask).unwrap()
    }

    fn get_f64(df: &DataFrame, col: &str) -> f64 {
        df.column(col).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().get(0).unwrap()
    }

    #[test]
    fn features_of_a_hand_built_book() {
        let ex = training_examples(&inputs(&base(), None), d("2025-12-31")).unwrap();
        // P1, P2, P3, P4 expire by the data date; P5 was cancelled before its as-of.
        let ids: Vec<String> = super::super::frames::to_strings(&ex, "policy_id").unwrap();
        assert_eq!(ids, ["P1", "P4", "P2", "P3"]);
        let p2 = row_of(&ex, "P2");
        assert_eq!(p2.column("as_of").unwrap().get(0).unwrap(), AnyValue::Date(day(d("2023-10-03"))));
        assert_eq!(p2.column("label").unwrap().bool().unwrap().get(0), Some(false));
        assert_eq!(get_f64(&p2, "tenure_terms"), 2.0);
        assert!((get_f64(&p2, "premium_change") - 0.23).abs() < 1e-12);
        assert_eq!(get_f64(&p2, "other_policies"), 1.0);
        assert_eq!(get_f64(&p2, "others_renters_only"), 0.0);
        // P3 expires after P2 (2024-03-01 > 2024-01-01); P1's renewal is known.
        assert_eq!(get_f64(&p2, "others_covering_expiration"), 1.0);
        assert_eq!(get_f64(&p2, "customer_renewals"), 1.0);
        assert_eq!(get_f64(&p2, "term_months"), 12.0);
        assert_eq!(get_f64(&p2, "customer_lapses"), 0.0);
        assert_eq!(get_f64(&p2, "customer_cancellations"), 0.0);
        // Producer and tenant: P1 renewed, P4 lapsed in [2022-10-03, 2023-10-03).
        let tenant = (1.0 + SMOOTHING * PRIOR_RATE) / (2.0 + SMOOTHING);
        assert!((get_f64(&p2, "tenant_rate") - tenant).abs() < 1e-12);
        assert!((get_f64(&p2, "producer_rate") - (1.0 + SMOOTHING * tenant) / (2.0 + SMOOTHING)).abs() < 1e-12);
        assert_eq!(get_f64(&p2, "producer_expirations"), 2.0);
        // Too few expirations for the baseline rate.
        assert_eq!(p2.column("baseline_rate").unwrap().null_count(), 1);
        // Producer hired 3 years before as-of (1095 days).
        assert!((get_f64(&p2, "producer_years") - 1095.0 / 365.25).abs() < 1e-12);
        // No renewal effective in the 180 days before: the prior 3 %.
        assert!((get_f64(&p2, "line_recent_change") - 0.03).abs() < 1e-12);
        // P1 renewed; observed 2022-10-03 with nothing before it.
        let p1 = row_of(&ex, "P1");
        assert_eq!(p1.column("label").unwrap().bool().unwrap().get(0), Some(true));
        assert_eq!(get_f64(&p1, "tenure_terms"), 1.0);
        assert_eq!(get_f64(&p1, "premium_change"), 0.0);
        assert_eq!(get_f64(&p1, "producer_expirations"), 0.0);
        // P3, observed 2023-12-01: P2 is its customer's other policy; P1 renewed, P4 lapsed
        // → customer K1 has no lapse.
        let p3 = row_of(&ex, "P3");
        assert_eq!(get_f64(&p3, "other_policies"), 1.0);
        assert_eq!(get_f64(&p3, "others_covering_expiration"), 0.0);
        assert_eq!(get_f64(&p3, "customer_lapses"), 0.0);
    }

    #[test]
    fn future_rows_change_no_feature() {
        let as_of = "2023-10-03";
        let before = training_examples(&inputs(&base(), None), d("2025-12-31")).unwrap();
        let mut rows = base();
        // A policy of the same customer effective after the as-of date.
        rows.push(p("F1", "K1", "renters", "2023-11-01", "2024-11-01"));
        // The sibling P3 cancelled after the as-of date (it was in force then).
        rows[2].cancel = Some("2023-12-01");
        // Another term of the same producer expiring after as-of, renewed.
        rows.push(p("F2", "K4", "auto", "2022-12-01", "2023-12-01"));
        rows.push(P { renewal_of: Some("F2"), ..p("F3", "K4", "auto", "2023-12-01", "2024-12-01") });
        // The lapsed P4 renewed by a term booked after the as-of date.
        rows.push(P { renewal_of: Some("P4"), ..p("F4", "K2", "auto", "2023-11-15", "2024-11-15") });
        // The producer terminated after the as-of date.
        let after = training_examples(&inputs(&rows, Some("2023-11-20")), d("2025-12-31")).unwrap();
        let (b, a) = (row_of(&before, "P2"), row_of(&after, "P2"));
        assert_eq!(a.column("as_of").unwrap().get(0).unwrap(), AnyValue::Date(day(d(as_of))));
        for name in b.get_column_names() {
            let (x, y) = (b.column(name.as_str()).unwrap(), a.column(name.as_str()).unwrap());
            assert!(
                x.as_materialized_series().equals_missing(y.as_materialized_series()),
                "feature {name} changed: {x:?} vs {y:?}"
            );
        }
        // The plants do matter for a later row: F3, observed 2024-09-02, sees F2 (renewed) and
        // P2 (lapsed) expire in its trailing year (P3 was cancelled) and the producer gone.
        let f3 = row_of(&after, "F3");
        assert_eq!(get_f64(&f3, "producer_expirations"), 2.0);
        assert_eq!(f3.column("producer_terminated").unwrap().bool().unwrap().get(0), Some(true));
    }

    #[test]
    fn scoring_rows_are_the_terms_in_force_with_the_same_features() {
        let inp = inputs(&base(), None);
        let score = scoring_examples(&inp, d("2023-10-03")).unwrap();
        let ids: Vec<String> = super::super::frames::to_strings(&score, "policy_id").unwrap();
        assert_eq!(ids, ["P2", "P3"]);
        assert_eq!(score.column("label").unwrap().null_count(), 2);
        let train = row_of(&training_examples(&inp, d("2025-12-31")).unwrap(), "P2");
        let s2 = row_of(&score, "P2");
        for name in ["tenure_terms", "premium_change", "other_policies", "producer_rate", "customer_years"] {
            assert_eq!(get_f64(&s2, name), get_f64(&train, name), "{name}");
        }
        assert_eq!(get_f64(&s2, "days_to_expiration"), 90.0);
    }
}
