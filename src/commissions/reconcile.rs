//! Matching carrier statement lines to booked commission rows, and
//! classifying every difference.
//!
//! **What is expected on a statement**: every booked row of the carrier
//! whose `transaction_date` falls in the statement's period and whose kind
//! a carrier pays (`new`, `renewal`, `chargeback`, `adjustment`; an
//! `override` is agency-internal and never on a statement).
//!
//! **Match key**: (carrier, period, normalised policy number —
//! `normalize.rs`), then the kind: a line's kind must equal the row's,
//! and a line without a kind may match a row of any kind. Within one key,
//! lines are taken in statement order (statement date, statement id, line
//! id) and rows in booking order (date, commission id):
//!
//! 1. a line whose amount is within the tolerance of an unmatched row's
//!    gross commission matches it (clean);
//! 2. a line left over that repeats an already matched line of the key
//!    (same kind and amount) is a `DUPLICATE`;
//! 3. a line left over takes the next unmatched row of its kind: paid
//!    exactly what the premium at another rate of the carrier's schedule
//!    for that line gives (new/renewal rows) is a `RATE_MISMATCH` (e.g. new
//!    business paid at the renewal rate), otherwise paid less is
//!    `UNDERPAID` and more `OVERPAID` (signed: a chargeback that takes back
//!    too much is underpaid);
//! 4. a line with no row to take is `UNEXPECTED` (paid, nothing booked:
//!    an unknown policy number, or a known one without a row of that kind
//!    in the period), and a row no line took is `MISSING`.
//!
//! Amounts are compared as exact integer cents (the lake's Decimal128(18,
//! 2) units); a difference whose size is at most the tolerance counts as
//! paid in full.
//!
//! Speed: one pass over each side's Arrow columns (the two sides keyed on
//! two threads), no string allocated per row. The key is a 128-bit xxh3
//! hash of the normalised number seeded by carrier and month — two distinct
//! keys would have to collide in 128 bits to be confused. Lines and rows
//! are then sorted by statement (a counting sort) and each statement is
//! matched on its own, with a map small enough to stay in cache, the
//! statements split over two threads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use arrow::array::{Array, Date32Array, Decimal128Array, StringArray};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::columns::Chunked;
use super::money::{fmt_money, fmt_rate, from_units, round_cents};
use super::normalize::normalize_into;
use super::schedules::Schedules;
use crate::contract::values::{days_to_date, parse_month};

/// Statement lines, as columns (`statement_lines`). The columns of one
/// value share their parts (they come from the same batches).
#[derive(Debug, Clone)]
pub struct Lines {
    pub statement_id: Chunked<StringArray>,
    pub line_id: Chunked<StringArray>,
    pub carrier_id: Chunked<StringArray>,
    pub statement_date: Chunked<Date32Array>,
    /// `YYYY-MM`.
    pub period: Chunked<StringArray>,
    pub policy_number: Chunked<StringArray>,
    /// Decimal128(18, 2).
    pub amount: Chunked<Decimal128Array>,
    pub kind: Chunked<StringArray>,
}

/// Booked commission rows (overrides are skipped) with their policy's
/// number and line (`commissions` ⟕ `policies`); columns share their parts.
#[derive(Debug, Clone)]
pub struct Booked {
    pub commission_id: Chunked<StringArray>,
    pub policy_id: Chunked<StringArray>,
    pub carrier_id: Chunked<StringArray>,
    pub transaction_date: Chunked<Date32Array>,
    pub kind: Chunked<StringArray>,
    /// Decimal128(18, 2).
    pub premium: Chunked<Decimal128Array>,
    /// Decimal128(12, 6).
    pub rate: Chunked<Decimal128Array>,
    pub gross: Chunked<Decimal128Array>,
    pub status: Chunked<StringArray>,
    pub statement_id: Chunked<StringArray>,
    /// Null when the row's policy is not in the lake.
    pub policy_number: Chunked<StringArray>,
    pub line_of_business: Chunked<StringArray>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscrepancyType {
    Missing,
    Underpaid,
    Overpaid,
    Duplicate,
    Unexpected,
    RateMismatch,
}

impl DiscrepancyType {
    pub const ALL: [DiscrepancyType; 6] = [
        DiscrepancyType::Missing,
        DiscrepancyType::Underpaid,
        DiscrepancyType::Overpaid,
        DiscrepancyType::Duplicate,
        DiscrepancyType::Unexpected,
        DiscrepancyType::RateMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyType::Missing => "MISSING",
            DiscrepancyType::Underpaid => "UNDERPAID",
            DiscrepancyType::Overpaid => "OVERPAID",
            DiscrepancyType::Duplicate => "DUPLICATE",
            DiscrepancyType::Unexpected => "UNEXPECTED",
            DiscrepancyType::RateMismatch => "RATE_MISMATCH",
        }
    }

    pub fn parse(s: &str) -> Option<DiscrepancyType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One difference between a statement and the books.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discrepancy {
    /// Stable across re-runs over the same data (a hash of what it is
    /// about), so a resolution stays attached to it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind_of: DiscrepancyType,
    pub carrier_id: String,
    pub period: String,
    pub statement_id: Option<String>,
    pub line_id: Option<String>,
    pub commission_id: Option<String>,
    pub policy_id: Option<String>,
    /// As the statement prints it (the policy's own number for `MISSING`).
    pub policy_number: Option<String>,
    /// Commission kind (`new`, `renewal`, `chargeback`, `adjustment`).
    pub kind: Option<String>,
    pub expected: Option<Decimal>,
    pub paid: Option<Decimal>,
    /// paid − expected (a missing side counts as 0).
    pub difference: Decimal,
    pub expected_rate: Option<Decimal>,
    /// The rate the carrier paid at (`RATE_MISMATCH`).
    pub paid_rate: Option<Decimal>,
    pub explanation: String,
}

/// What one (carrier, period) reconciled to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeriodSummary {
    pub carrier_id: String,
    pub period: String,
    pub lines: u64,
    pub booked_rows: u64,
    pub matched: u64,
    pub expected_total: Decimal,
    pub paid_total: Decimal,
    pub discrepancies: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Sorted by carrier, period.
    pub periods: Vec<PeriodSummary>,
    /// Sorted by carrier, period, type, then statement line or commission.
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// A difference of at most this many cents is paid in full (0: exact).
    pub tolerance_cents: i128,
}

const NONE: u32 = u32::MAX;

/// Kinds a carrier pays, as small integers; `ANY` for a line without one.
fn kind_code(k: Option<&str>) -> u8 {
    match k.map(str::trim) {
        Some("new") => 0,
        Some("renewal") => 1,
        Some("chargeback") => 2,
        Some("adjustment") => 3,
        Some("override") => OVERRIDE,
        None | Some("") => ANY,
        Some(_) => 5,
    }
}
const OVERRIDE: u8 = 4;
const ANY: u8 = u8::MAX;

fn compatible(line: u8, row: u8) -> bool {
    line == ANY || line == row
}

fn month_of_days(days: i32) -> i32 {
    use chrono::Datelike;
    let d = days_to_date(days);
    d.year() * 12 + d.month0() as i32
}

fn month_text(m: i32) -> String {
    format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

fn opt_str(a: &Chunked<StringArray>, i: usize) -> Option<&str> {
    a.get(i)
}

/// (carrier, month index) of a group.
type Key = (u32, i32);

/// A 128-bit hash is its own hash: maps keyed by one use its bits directly.
#[derive(Default)]
pub(crate) struct HashBits(u64);

impl std::hash::Hasher for HashBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

pub(crate) type ByHash = std::hash::BuildHasherDefault<HashBits>;

/// Interns carrier ids.
#[derive(Default)]
struct Carriers<'a> {
    ids: HashMap<&'a str, u32, foldhash::fast::RandomState>,
    names: Vec<&'a str>,
    last: u32,
}

impl<'a> Carriers<'a> {
    fn id(&mut self, c: &'a str) -> u32 {
        // Lines come statement by statement: mostly the carrier of the row before.
        if let Some(&last) = self.names.get(self.last as usize)
            && last == c
        {
            return self.last;
        }
        if let Some(&i) = self.ids.get(c) {
            self.last = i;
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(c, i);
        self.names.push(c);
        i
    }
}

/// The match key of each row of one side: a 128-bit hash of (carrier,
/// month, normalised number), with the carrier (interned per side) and the
/// month kept beside it. Computed for both sides at once, one thread each.
struct Keyed<'a> {
    hash: Vec<u128>,
    /// The line's amount or the row's gross, in cents.
    cents: Vec<i64>,
    carrier: Vec<u32>,
    month: Vec<i32>,
    kind: Vec<u8>,
    carriers: Carriers<'a>,
}

impl<'a> Keyed<'a> {
    fn new(n: usize) -> Self {
        Keyed {
            hash: Vec::with_capacity(n),
            cents: Vec::with_capacity(n),
            carrier: Vec::with_capacity(n),
            month: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            carriers: Carriers::default(),
        }
    }

    /// Seeds of the number hash per interned carrier.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        carrier: &'a str,
        month: i32,
        number: Option<&str>,
        kind: u8,
        cents: i128,
        seeds: &mut Vec<u64>,
        buf: &mut String,
    ) {
        let c = self.carriers.id(carrier);
        if c as usize == seeds.len() {
            seeds.push(xxhash_rust::xxh3::xxh3_64(carrier.as_bytes()));
        }
        let hash = match number {
            Some(n) => {
                normalize_into(n, buf);
                // Another seed per (carrier, month): keys of different statements never meet.
                let seed = seeds[c as usize] ^ (month as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                xxhash_rust::xxh3::xxh3_128_with_seed(buf.as_bytes(), seed)
            }
            // A row without a policy number can be matched by nothing.
            None => u128::MAX,
        };
        self.hash.push(hash);
        // Decimal128(18, 2) units fit in 64 bits.
        self.cents.push(cents as i64);
        self.carrier.push(c);
        self.month.push(month);
        self.kind.push(kind);
    }
}

fn keyed_lines(lines: &Lines) -> Keyed<'_> {
    let (mut out, mut seeds, mut buf) = (Keyed::new(lines.line_id.len()), Vec::new(), String::new());
    // Part by part: the columns share their parts.
    for p in 0..lines.line_id.parts().len() {
        let (carrier, period) = (&lines.carrier_id.parts()[p], &lines.period.parts()[p]);
        let (number, amount, kind) =
            (&lines.policy_number.parts()[p], &lines.amount.parts()[p], &lines.kind.parts()[p]);
        for j in 0..carrier.len() {
            // The lake holds only valid periods (the contract's `YYYY-MM`); a
            // line without one could be matched by nothing and counts nowhere.
            let month = parse_month(period.value(j)).map(|(y, m)| y * 12 + m as i32 - 1);
            let k = kind_code((!kind.is_null(j)).then(|| kind.value(j)));
            let n = month.map(|_| number.value(j));
            out.push(carrier.value(j), month.unwrap_or(0), n, k, amount.value(j), &mut seeds, &mut buf);
        }
    }
    out
}

fn keyed_rows(booked: &Booked) -> Keyed<'_> {
    let (mut out, mut seeds, mut buf) = (Keyed::new(booked.commission_id.len()), Vec::new(), String::new());
    let months = Months::new(&booked.transaction_date);
    for p in 0..booked.commission_id.parts().len() {
        let (carrier, date, kind) =
            (&booked.carrier_id.parts()[p], &booked.transaction_date.parts()[p], &booked.kind.parts()[p]);
        let (number, gross) = (&booked.policy_number.parts()[p], &booked.gross.parts()[p]);
        for j in 0..carrier.len() {
            let month = months.get(date.value(j));
            let k = kind_code((!kind.is_null(j)).then(|| kind.value(j)));
            let n = (!number.is_null(j)).then(|| number.value(j));
            out.push(carrier.value(j), month, n, k, gross.value(j), &mut seeds, &mut buf);
        }
    }
    out
}

/// Counts and sums of one (carrier, period), in cents while matching.
#[derive(Default, Clone)]
struct Tally {
    lines: u64,
    booked_rows: u64,
    matched: u64,
    expected_cents: i128,
    paid_cents: i128,
    discrepancies: u64,
}

/// Month index (year × 12 + month − 1) of each day in `[min, max]`: one
/// calendar conversion per distinct day instead of one per row.
struct Months {
    min: i32,
    of: Vec<i32>,
}

impl Months {
    fn new(days: &Chunked<Date32Array>) -> Self {
        let all = days.parts().iter().flat_map(|p| p.values().iter());
        let (min, max) = all.fold((i32::MAX, i32::MIN), |(a, b), &d| (a.min(d), b.max(d)));
        if min > max {
            return Months { min: 0, of: Vec::new() };
        }
        Months { min, of: (min..=max).map(month_of_days).collect() }
    }
    fn get(&self, day: i32) -> i32 {
        self.of[(day - self.min) as usize]
    }
}

/// Reconcile `lines` against `booked`. With `statements` (carrier, month
/// index), only booked rows of those statements are expected; without,
/// every booked row given is.
pub fn reconcile(
    lines: &Lines,
    booked: &Booked,
    schedules: &Schedules,
    opts: &Options,
    statements: Option<&BTreeSet<(String, i32)>>,
) -> Outcome {
    let (n_rows, n_lines) = (booked.commission_id.len(), lines.line_id.len());
    // Normalising and hashing is most of the work: both sides at once.
    let (kl, kr) = std::thread::scope(|s| {
        let rows = s.spawn(|| keyed_rows(booked));
        let l = keyed_lines(lines);
        (l, rows.join().expect("keying booked rows"))
    });
    // One carrier numbering for both sides.
    let mut carriers = Carriers::default();
    let line_carrier: Vec<u32> = kl.carriers.names.iter().map(|c| carriers.id(c)).collect();
    let row_carrier: Vec<u32> = kr.carriers.names.iter().map(|c| carriers.id(c)).collect();
    let wanted: Option<HashSet<Key, foldhash::fast::RandomState>> =
        statements.map(|s| s.iter().map(|(c, m)| (carriers.id(c), *m)).collect());
    let line_key = |i: usize| (line_carrier[kl.carrier[i] as usize], kl.month[i]);
    let row_key = |i: usize| (row_carrier[kr.carrier[i] as usize], kr.month[i]);
    // Lines without a valid period, overrides and rows of statements not
    // reconciled now take no part.
    let line_in: Vec<bool> = kl.hash.iter().map(|h| *h != u128::MAX).collect();
    let row_in: Vec<bool> = (0..n_rows)
        .map(|i| kr.kind[i] != OVERRIDE && wanted.as_ref().is_none_or(|w| w.contains(&row_key(i))))
        .collect();

    // Each statement (carrier, month) a dense index; lines and rows sorted
    // by it (a counting sort), so that each statement is matched on its own
    // with a small, cache-resident map — and the statements on two threads.
    let months_in = (0..n_lines).filter(|&i| line_in[i]).map(|i| kl.month[i]);
    let months_in = months_in.chain((0..n_rows).filter(|&i| row_in[i]).map(|i| kr.month[i]));
    let (min_month, max_month) = months_in.fold((i32::MAX, i32::MIN), |(a, b), m| (a.min(m), b.max(m)));
    let span = if min_month > max_month { 0 } else { (max_month - min_month + 1) as usize };
    let n_statements = span * carriers.names.len();
    let statement_of = |k: Key| k.0 as usize * span + (k.1 - min_month) as usize;
    let by_statement = |n: usize, keep: &[bool], key: &dyn Fn(usize) -> Key| {
        let mut start = vec![0usize; n_statements + 1];
        for i in (0..n).filter(|&i| keep[i]) {
            start[statement_of(key(i)) + 1] += 1;
        }
        for s in 0..n_statements {
            start[s + 1] += start[s];
        }
        let mut at = start.clone();
        let mut sorted = vec![0u32; start[n_statements]];
        for i in (0..n).filter(|&i| keep[i]) {
            let s = statement_of(key(i));
            sorted[at[s]] = i as u32;
            at[s] += 1;
        }
        (start, sorted)
    };
    let (line_start, lines_sorted) = by_statement(n_lines, &line_in, &line_key);
    let (row_start, rows_sorted) = by_statement(n_rows, &row_in, &row_key);
    let size = |s: usize| line_start[s + 1] - line_start[s] + row_start[s + 1] - row_start[s];
    let busy: Vec<usize> = (0..n_statements).filter(|&s| size(s) > 0).collect();
    // Two halves of about equal work.
    let total: usize = busy.iter().map(|&s| size(s)).sum();
    let mut acc = 0;
    let split = busy.iter().position(|&s| {
        acc += size(s);
        acc * 2 >= total
    });
    let split = split.map_or(busy.len(), |p| p + 1);

    let ctx = Ctx { lines, booked, schedules, opts, carriers: &carriers.names };
    let part = Part {
        ctx: &ctx,
        kl: &kl,
        kr: &kr,
        line_start: &line_start,
        lines_sorted: &lines_sorted,
        row_start: &row_start,
        rows_sorted: &rows_sorted,
        span,
        min_month,
    };
    let ((mut tallies, mut out), (more_tallies, more_out)) = std::thread::scope(|s| {
        let first = s.spawn(|| part.run(&busy[..split]));
        let second = part.run(&busy[split..]);
        (first.join().expect("matching statements"), second)
    });
    tallies.extend(more_tallies);
    out.extend(more_out);
    let mut periods: Vec<PeriodSummary> = tallies
        .into_iter()
        .map(|(s, t)| PeriodSummary {
            carrier_id: carriers.names[s / span].to_string(),
            period: month_text(min_month + (s % span) as i32),
            lines: t.lines,
            booked_rows: t.booked_rows,
            matched: t.matched,
            expected_total: from_units(t.expected_cents, 2),
            paid_total: from_units(t.paid_cents, 2),
            discrepancies: t.discrepancies,
        })
        .collect();
    periods.sort_by(|a, b| (&a.carrier_id, &a.period).cmp(&(&b.carrier_id, &b.period)));
    out.sort_by(|a, b| {
        (&a.carrier_id, &a.period, a.kind_of, &a.statement_id, &a.line_id, &a.commission_id).cmp(&(
            &b.carrier_id,
            &b.period,
            b.kind_of,
            &b.statement_id,
            &b.line_id,
            &b.commission_id,
        ))
    });
    Outcome { periods, discrepancies: out }
}

/// The lines and rows of every statement, for matching statements apart.
struct Part<'a> {
    ctx: &'a Ctx<'a>,
    kl: &'a Keyed<'a>,
    kr: &'a Keyed<'a>,
    line_start: &'a [usize],
    lines_sorted: &'a [u32],
    row_start: &'a [usize],
    rows_sorted: &'a [u32],
    span: usize,
    min_month: i32,
}

impl Part<'_> {
    /// Match `statements` (dense indices); their tallies and discrepancies.
    fn run(&self, statements: &[usize]) -> (Vec<(usize, Tally)>, Vec<Discrepancy>) {
        let (kl, kr) = (self.kl, self.kr);
        let (booked, lines, opts) = (self.ctx.booked, self.ctx.lines, self.ctx.opts);
        let mut map: HashMap<u128, u32, ByHash> = HashMap::default();
        // Per group, its first line and row (local positions); then a list each.
        let (mut line_head, mut row_head) = (Vec::<u32>::new(), Vec::<u32>::new());
        let (mut line_next, mut row_next) = (Vec::<u32>::new(), Vec::<u32>::new());
        let mut scratch = Scratch::default();
        let (mut e, mut l) = (Vec::new(), Vec::new());
        let mut tallies = Vec::with_capacity(statements.len());
        let mut out = Vec::new();
        for &s in statements {
            let ls = &self.lines_sorted[self.line_start[s]..self.line_start[s + 1]];
            let rs = &self.rows_sorted[self.row_start[s]..self.row_start[s + 1]];
            let key: Key = ((s / self.span) as u32, self.min_month + (s % self.span) as i32);
            map.clear();
            line_head.clear();
            row_head.clear();
            line_next.clear();
            line_next.resize(ls.len(), NONE);
            row_next.clear();
            row_next.resize(rs.len(), NONE);
            let new_group = |line_head: &mut Vec<u32>, row_head: &mut Vec<u32>| {
                line_head.push(NONE);
                row_head.push(NONE);
                (line_head.len() - 1) as u32
            };
            for (j, &li) in ls.iter().enumerate() {
                let g = *map.entry(kl.hash[li as usize]).or_insert_with(|| new_group(&mut line_head, &mut row_head));
                line_next[j] = line_head[g as usize];
                line_head[g as usize] = j as u32;
            }
            for (k, &ri) in rs.iter().enumerate() {
                let hash = kr.hash[ri as usize];
                let g = match map.get(&hash) {
                    Some(&g) => g,
                    // No line of this key: a group of its own (also every row without a policy number).
                    None => new_group(&mut line_head, &mut row_head),
                };
                row_next[k] = row_head[g as usize];
                row_head[g as usize] = k as u32;
            }
            let mut tally = Tally::default();
            for g in 0..line_head.len() {
                let walk = |head: u32, next: &[u32], of: &[u32], out: &mut Vec<u32>| {
                    out.clear();
                    let mut at = head;
                    while at != NONE {
                        out.push(of[at as usize]);
                        at = next[at as usize];
                    }
                };
                walk(row_head[g], &row_next, rs, &mut e);
                walk(line_head[g], &line_next, ls, &mut l);
                // Most keys hold one row and the one line that pays it exactly.
                if let ([r], [li]) = (e.as_slice(), l.as_slice()) {
                    let (r, li) = (*r as usize, *li as usize);
                    let (gross, paid) = (kr.cents[r] as i128, kl.cents[li] as i128);
                    if compatible(kl.kind[li], kr.kind[r]) && (paid - gross).abs() <= opts.tolerance_cents {
                        tally.lines += 1;
                        tally.booked_rows += 1;
                        tally.matched += 1;
                        tally.expected_cents += gross;
                        tally.paid_cents += paid;
                        continue;
                    }
                }
                if e.len() > 1 {
                    e.sort_by(|&a, &b| {
                        let (a, b) = (a as usize, b as usize);
                        (booked.transaction_date.value(a), booked.commission_id.value(a))
                            .cmp(&(booked.transaction_date.value(b), booked.commission_id.value(b)))
                    });
                }
                if l.len() > 1 {
                    l.sort_by(|&a, &b| {
                        let (a, b) = (a as usize, b as usize);
                        (lines.statement_date.value(a), lines.statement_id.value(a), lines.line_id.value(a)).cmp(&(
                            lines.statement_date.value(b),
                            lines.statement_id.value(b),
                            lines.line_id.value(b),
                        ))
                    });
                }
                let before = out.len();
                self.ctx.match_group(&key, &e, &l, &kr.kind, &kl.kind, &mut tally, &mut scratch, &mut out);
                tally.discrepancies += (out.len() - before) as u64;
            }
            tallies.push((s, tally));
        }
        (tallies, out)
    }
}

/// Buffers of `match_group`, reused from one key to the next.
#[derive(Default)]
struct Scratch {
    row_taken: Vec<bool>,
    line_row: Vec<Option<usize>>,
}

struct Ctx<'a> {
    lines: &'a Lines,
    booked: &'a Booked,
    schedules: &'a Schedules,
    opts: &'a Options,
    carriers: &'a [&'a str],
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn match_group(
        &self,
        key: &Key,
        rows: &[u32],
        lines: &[u32],
        row_kind: &[u8],
        line_kind: &[u8],
        summary: &mut Tally,
        scratch: &mut Scratch,
        out: &mut Vec<Discrepancy>,
    ) {
        let (b, s) = (self.booked, self.lines);
        let gross = |r: u32| b.gross.value(r as usize);
        let amount = |l: u32| s.amount.value(l as usize);
        summary.booked_rows += rows.len() as u64;
        summary.lines += lines.len() as u64;
        summary.expected_cents += rows.iter().map(|&r| gross(r)).sum::<i128>();
        summary.paid_cents += lines.iter().map(|&l| amount(l)).sum::<i128>();
        let row_taken = &mut scratch.row_taken;
        row_taken.clear();
        row_taken.resize(rows.len(), false);
        // The row each line took, if any.
        let line_row = &mut scratch.line_row;
        line_row.clear();
        line_row.resize(lines.len(), None);
        // 1. exact (within tolerance) matches
        for (li, &l) in lines.iter().enumerate() {
            let found = rows.iter().enumerate().position(|(ri, &r)| {
                !row_taken[ri]
                    && compatible(line_kind[l as usize], row_kind[r as usize])
                    && (amount(l) - gross(r)).abs() <= self.opts.tolerance_cents
            });
            if let Some(ri) = found {
                row_taken[ri] = true;
                line_row[li] = Some(ri);
                summary.matched += 1;
            }
        }
        // 2–4. lines left over, in statement order
        for (li, &l) in lines.iter().enumerate() {
            if line_row[li].is_some() {
                continue;
            }
            let repeats = (0..li).find(|&earlier| {
                let e = lines[earlier];
                line_row[earlier].is_some() && amount(e) == amount(l) && line_kind[e as usize] == line_kind[l as usize]
            });
            if let Some(first) = repeats {
                let first_line = lines[first];
                let explanation = format!(
                    "repeats line {} of statement {} ({} for the same policy, period and kind)",
                    s.line_id.value(first_line as usize),
                    s.statement_id.value(first_line as usize),
                    fmt_money(from_units(amount(l), 2))
                );
                out.push(self.line_discrepancy(key, DiscrepancyType::Duplicate, l, None, explanation));
                continue;
            }
            let next = rows
                .iter()
                .enumerate()
                .position(|(ri, &r)| !row_taken[ri] && compatible(line_kind[l as usize], row_kind[r as usize]));
            match next {
                Some(ri) => {
                    row_taken[ri] = true;
                    line_row[li] = Some(ri);
                    out.push(self.paid_differently(key, l, rows[ri]));
                }
                None => {
                    let kind = opt_str(&s.kind, l as usize).unwrap_or("any");
                    let explanation = format!(
                        "paid {} for policy number {} with no booked {kind} commission of carrier {} in {}",
                        fmt_money(from_units(amount(l), 2)),
                        s.policy_number.value(l as usize),
                        self.carriers[key.0 as usize],
                        month_text(key.1)
                    );
                    out.push(self.line_discrepancy(key, DiscrepancyType::Unexpected, l, None, explanation));
                }
            }
        }
        for (ri, &r) in rows.iter().enumerate() {
            if !row_taken[ri] {
                out.push(self.missing(key, r));
            }
        }
    }

    /// A line paired with a row whose gross it does not pay.
    fn paid_differently(&self, key: &Key, l: u32, r: u32) -> Discrepancy {
        let (b, s) = (self.booked, self.lines);
        let (r, li) = (r as usize, l as usize);
        let paid = s.amount.value(li);
        let expected = b.gross.value(r);
        let rate = from_units(b.rate.value(r), b.rate.scale());
        let kind = opt_str(&b.kind, r).unwrap_or_default();
        let premium = from_units(b.premium.value(r), 2);
        let paid_rate = match (kind, opt_str(&b.line_of_business, r)) {
            ("new" | "renewal", Some(line)) => self
                .schedules
                .rates_of(self.carriers[key.0 as usize], line)
                .into_iter()
                .filter(|x| *x != rate.normalize())
                .find(|x| super::calc::gross(premium, *x).mantissa() == paid),
            _ => None,
        };
        let (paid_d, expected_d) = (from_units(paid, 2), from_units(expected, 2));
        let (t, explanation) = match paid_rate {
            Some(pr) => (
                DiscrepancyType::RateMismatch,
                format!(
                    "paid {} = round({} × {}), a rate of the carrier's schedule for this line, instead of {} at the booked rate {}",
                    fmt_money(paid_d),
                    fmt_money(premium),
                    fmt_rate(pr),
                    fmt_money(expected_d),
                    fmt_rate(rate)
                ),
            ),
            None if paid < expected => (
                DiscrepancyType::Underpaid,
                format!(
                    "paid {} against {} booked: {} short",
                    fmt_money(paid_d),
                    fmt_money(expected_d),
                    fmt_money(expected_d - paid_d)
                ),
            ),
            None => (
                DiscrepancyType::Overpaid,
                format!(
                    "paid {} against {} booked: {} over",
                    fmt_money(paid_d),
                    fmt_money(expected_d),
                    fmt_money(paid_d - expected_d)
                ),
            ),
        };
        let mut d = self.line_discrepancy(key, t, l, Some(r as u32), explanation);
        d.expected_rate = Some(rate.normalize());
        d.paid_rate = paid_rate;
        d
    }

    fn line_discrepancy(
        &self,
        key: &Key,
        t: DiscrepancyType,
        l: u32,
        row: Option<u32>,
        explanation: String,
    ) -> Discrepancy {
        let (b, s) = (self.booked, self.lines);
        let li = l as usize;
        let paid = from_units(s.amount.value(li), 2);
        let expected = row.map(|r| from_units(b.gross.value(r as usize), 2));
        let statement_id = s.statement_id.value(li).to_string();
        let line_id = s.line_id.value(li).to_string();
        let commission_id = row.map(|r| b.commission_id.value(r as usize).to_string());
        Discrepancy {
            id: discrepancy_id(
                t,
                self.carriers[key.0 as usize],
                key.1,
                Some(&statement_id),
                Some(&line_id),
                commission_id.as_deref(),
            ),
            kind_of: t,
            carrier_id: self.carriers[key.0 as usize].to_string(),
            period: month_text(key.1),
            statement_id: Some(statement_id),
            line_id: Some(line_id),
            policy_id: row.map(|r| b.policy_id.value(r as usize).to_string()),
            commission_id,
            policy_number: Some(s.policy_number.value(li).to_string()),
            kind: opt_str(&s.kind, li).or_else(|| row.and_then(|r| opt_str(&b.kind, r as usize))).map(String::from),
            difference: paid - expected.unwrap_or_default(),
            expected,
            paid: Some(paid),
            expected_rate: None,
            paid_rate: None,
            explanation,
        }
    }

    fn missing(&self, key: &Key, r: u32) -> Discrepancy {
        let b = self.booked;
        let ri = r as usize;
        let expected = from_units(b.gross.value(ri), 2);
        let commission_id = b.commission_id.value(ri).to_string();
        let kind = opt_str(&b.kind, ri).unwrap_or_default();
        let booked_as = match (opt_str(&b.status, ri), opt_str(&b.statement_id, ri)) {
            (Some("paid"), Some(st)) => format!("booked as paid on statement {st}"),
            (Some(status), _) => format!("status {status}"),
            (None, _) => "no status".to_string(),
        };
        let explanation = format!(
            "booked {kind} commission {commission_id} of {} ({booked_as}) is on no statement line of carrier {} for {}",
            fmt_money(expected),
            self.carriers[key.0 as usize],
            month_text(key.1)
        );
        Discrepancy {
            id: discrepancy_id(
                DiscrepancyType::Missing,
                self.carriers[key.0 as usize],
                key.1,
                None,
                None,
                Some(&commission_id),
            ),
            kind_of: DiscrepancyType::Missing,
            carrier_id: self.carriers[key.0 as usize].to_string(),
            period: month_text(key.1),
            statement_id: opt_str(&b.statement_id, ri).map(String::from),
            line_id: None,
            commission_id: Some(commission_id),
            policy_id: Some(b.policy_id.value(ri).to_string()),
            policy_number: opt_str(&b.policy_number, ri).map(String::from),
            kind: Some(kind.to_string()),
            expected: Some(expected),
            paid: None,
            difference: -expected,
            expected_rate: Some(from_units(b.rate.value(ri), b.rate.scale()).normalize()),
            paid_rate: None,
            explanation,
        }
    }
}

/// `D` + 16 hex digits of a hash of what the discrepancy is about.
fn discrepancy_id(
    t: DiscrepancyType,
    carrier: &str,
    month: i32,
    statement: Option<&str>,
    line: Option<&str>,
    commission: Option<&str>,
) -> String {
    let text = format!(
        "{}\u{0}{carrier}\u{0}{month}\u{0}{}\u{0}{}\u{0}{}",
        t.as_str(),
        statement.unwrap_or_default(),
        line.unwrap_or_default(),
        commission.unwrap_or_default()
    );
    format!("D{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Whether `s` is shaped like a discrepancy id.
pub fn is_discrepancy_id(s: &str) -> bool {
    s.len() == 17 && s.starts_with('D') && s[1..].bytes().all(|c| c.is_ascii_hexdigit())
}

/// Parse a tolerance given as money (`"0.05"`) into cents.
pub fn tolerance_cents(s: &str) -> Option<i128> {
    let d = Decimal::from_str(s.trim()).ok()?;
    (d >= Decimal::ZERO && d.scale() <= 2).then(|| round_cents(d).mantissa())
}

/// The first day of a `YYYY-MM` period, and of the month after it.
pub fn period_bounds(period: &str) -> Option<(NaiveDate, NaiveDate)> {
    let (y, m) = parse_month(period)?;
    let from = NaiveDate::from_ymd_opt(y, m, 1)?;
    Some((from, from + chrono::Months::new(1)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commissions::fixtures::d;
    use crate::commissions::schedules::{ScheduleRow, TermKind};
    use crate::contract::values::date_to_days;

    fn money(v: Vec<Option<i128>>) -> Chunked<Decimal128Array> {
        Decimal128Array::from(v).with_precision_and_scale(18, 2).unwrap().into()
    }
    fn strs(v: Vec<Option<&str>>) -> Chunked<StringArray> {
        StringArray::from(v).into()
    }

    /// (commission, policy, number, date, kind, premium, rate in millionths, gross, status, statement)
    type Row<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, &'a str, i128, i128, i128, &'a str, Option<&'a str>);

    pub(crate) fn booked(rows: &[Row]) -> Booked {
        Booked {
            commission_id: strs(rows.iter().map(|r| Some(r.0)).collect()),
            policy_id: strs(rows.iter().map(|r| Some(r.1)).collect()),
            carrier_id: strs(rows.iter().map(|_| Some("K1")).collect()),
            transaction_date: Date32Array::from(rows.iter().map(|r| date_to_days(d(r.3))).collect::<Vec<_>>()).into(),
            kind: strs(rows.iter().map(|r| Some(r.4)).collect()),
            premium: money(rows.iter().map(|r| Some(r.5)).collect()),
            rate: Decimal128Array::from(rows.iter().map(|r| r.6).collect::<Vec<_>>())
                .with_precision_and_scale(12, 6)
                .unwrap()
                .into(),
            gross: money(rows.iter().map(|r| Some(r.7)).collect()),
            status: strs(rows.iter().map(|r| Some(r.8)).collect()),
            statement_id: strs(rows.iter().map(|r| r.9).collect()),
            policy_number: strs(rows.iter().map(|r| r.2).collect()),
            line_of_business: strs(rows.iter().map(|_| Some("auto")).collect()),
        }
    }

    /// (line, period, number, amount, kind)
    pub(crate) fn lines(ls: &[(&str, &str, &str, i128, Option<&str>)]) -> Lines {
        Lines {
            statement_id: strs(
                ls.iter().map(|l| Some(if l.1 == "2024-03" { "ST-K1-2024-03" } else { "ST-K1-2024-04" })).collect(),
            ),
            line_id: strs(ls.iter().map(|l| Some(l.0)).collect()),
            carrier_id: strs(ls.iter().map(|_| Some("K1")).collect()),
            statement_date: Date32Array::from(vec![date_to_days(d("2024-04-12")); ls.len()]).into(),
            period: strs(ls.iter().map(|l| Some(l.1)).collect()),
            policy_number: strs(ls.iter().map(|l| Some(l.2)).collect()),
            amount: money(ls.iter().map(|l| Some(l.3)).collect()),
            kind: strs(ls.iter().map(|l| l.4).collect()),
        }
    }

    pub(crate) fn schedules() -> Schedules {
        let row = |kind, rate: &str| ScheduleRow {
            carrier_id: "K1".into(),
            line_of_business: "auto".into(),
            kind,
            rate: Decimal::from_str(rate).unwrap(),
            effective_from: d("2020-01-01"),
            effective_to: None,
        };
        Schedules::new([row(TermKind::New, "0.15"), row(TermKind::Renewal, "0.12")])
    }

    const PAID: &str = "paid";

    fn fixture() -> (Lines, Booked) {
        let st = Some("ST-K1-2024-03");
        let b = booked(&[
            ("C1", "P1", Some("NBM-0000101-01"), "2024-03-05", "new", 100000, 150000, 15000, PAID, st),
            ("C2", "P2", Some("NBM-0000102-01"), "2024-03-10", "new", 80000, 150000, 12000, PAID, st),
            ("C3", "P3", Some("NBM-0000103-01"), "2024-03-11", "renewal", 50000, 120000, 6000, PAID, st),
            ("C4", "P4", Some("NBM-0000104-01"), "2024-03-12", "renewal", 100000, 120000, 12000, PAID, st),
            ("C5", "P5", Some("NBM-0000105-01"), "2024-03-13", "new", 70000, 150000, 10500, PAID, st),
            ("C6", "P1", Some("NBM-0000101-01"), "2024-03-20", "chargeback", -50000, 150000, -7500, PAID, st),
            ("C7", "P6", Some("NBM-0000106-01"), "2024-03-21", "renewal", 40000, 120000, 4800, PAID, st),
            ("C8", "P7", Some("NBM-0000107-01"), "2024-03-22", "new", 100000, 150000, 15000, PAID, st),
            ("C9", "P1", Some("NBM-0000101-01"), "2024-03-05", "override", 0, 30000, 0, PAID, None),
            ("C10", "P1", Some("NBM-0000101-01"), "2024-04-02", "adjustment", 6667, 150000, 1000, "expected", None),
        ]);
        let l = lines(&[
            ("L01", "2024-03", "nbm 101 01", 15000, Some("new")),
            ("L02", "2024-03", "nbm 102 01", 9600, Some("new")),
            ("L03", "2024-03", "nbm 103 01", 5000, Some("renewal")),
            ("L04", "2024-03", "NBM-104-01", 13000, Some("renewal")),
            ("L06", "2024-03", "NBM 101 01", -7500, Some("chargeback")),
            ("L07", "2024-03", "nbm 106 01", 4800, None),
            ("L08", "2024-03", "nbm 106 01", 4800, None),
            ("L09", "2024-03", "nbm 999 01", 8800, Some("new")),
            ("L10", "2024-03", "nbm 107 01", 14999, Some("new")),
            ("L11", "2024-03", "nbm 101 01", 1000, Some("adjustment")),
        ]);
        (l, b)
    }

    fn types(o: &Outcome) -> Vec<(String, &'static str, String)> {
        o.discrepancies
            .iter()
            .map(|d| {
                let subject = d.line_id.clone().or_else(|| d.commission_id.clone()).unwrap();
                (d.period.clone(), d.kind_of.as_str(), subject)
            })
            .collect()
    }

    #[test]
    fn every_kind_of_difference_is_found_and_clean_lines_are_not_flagged() {
        let (l, b) = fixture();
        let o = reconcile(&l, &b, &schedules(), &Options::default(), None);
        let t = |p: &str, k: &'static str, s: &str| (p.to_string(), k, s.to_string());
        assert_eq!(
            types(&o),
            vec![
                t("2024-03", "MISSING", "C5"),
                t("2024-03", "UNDERPAID", "L03"),
                t("2024-03", "UNDERPAID", "L10"),
                t("2024-03", "OVERPAID", "L04"),
                t("2024-03", "DUPLICATE", "L08"),
                t("2024-03", "UNEXPECTED", "L09"),
                t("2024-03", "UNEXPECTED", "L11"),
                t("2024-03", "RATE_MISMATCH", "L02"),
                t("2024-04", "MISSING", "C10"),
            ]
        );
        let by = |s: &str| {
            o.discrepancies
                .iter()
                .find(|d| {
                    d.line_id.as_deref() == Some(s) || d.commission_id.as_deref() == Some(s) && d.line_id.is_none()
                })
                .unwrap()
        };
        // New business at the renewal rate: 800.00 × 0.12 = 96.00 instead of 120.00 at 0.15.
        let rm = by("L02");
        assert_eq!(
            (rm.expected, rm.paid, rm.difference),
            (Some(Decimal::new(12000, 2)), Some(Decimal::new(9600, 2)), Decimal::new(-2400, 2))
        );
        assert_eq!(
            (rm.expected_rate.unwrap().to_string(), rm.paid_rate.unwrap().to_string()),
            ("0.15".into(), "0.12".into())
        );
        assert_eq!(rm.commission_id.as_deref(), Some("C2"));
        assert_eq!(by("L03").difference.to_string(), "-10.00");
        assert_eq!(by("L04").difference.to_string(), "10.00");
        assert_eq!(by("L10").difference.to_string(), "-0.01");
        let missing = by("C5");
        assert_eq!(
            (missing.expected.unwrap().to_string(), missing.paid, missing.statement_id.as_deref()),
            ("105.00".into(), None, Some("ST-K1-2024-03"))
        );
        assert!(missing.explanation.contains("booked as paid on statement ST-K1-2024-03"), "{}", missing.explanation);
        assert!(by("L08").explanation.starts_with("repeats line L07"), "{}", by("L08").explanation);
        assert_eq!(by("L09").policy_number.as_deref(), Some("nbm 999 01"));
        // Per period: 10 lines and 8 carrier rows in March (the override is no carrier row).
        assert_eq!(o.periods.len(), 2);
        let m = &o.periods[0];
        assert_eq!((m.lines, m.booked_rows, m.matched, m.discrepancies), (10, 8, 3, 8));
        assert_eq!((m.expected_total.to_string(), m.paid_total.to_string()), ("678.00".into(), "694.99".into()));
        let a = &o.periods[1];
        assert_eq!(
            (a.period.as_str(), a.lines, a.booked_rows, a.expected_total.to_string()),
            ("2024-04", 0, 1, "10.00".into())
        );
        // Ids are stable across runs and distinct.
        let again = reconcile(&l, &b, &schedules(), &Options::default(), None);
        assert_eq!(again, o);
        let mut ids: Vec<&str> = o.discrepancies.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 9);
        assert!(ids.iter().all(|i| is_discrepancy_id(i)));
    }

    #[test]
    fn a_tolerance_absorbs_small_differences() {
        let (l, b) = fixture();
        let o = reconcile(&l, &b, &schedules(), &Options { tolerance_cents: 1 }, None);
        assert!(!o.discrepancies.iter().any(|d| d.line_id.as_deref() == Some("L10")));
        assert_eq!(o.periods[0].matched, 4);
        assert_eq!(tolerance_cents("0.01"), Some(1));
        assert_eq!(tolerance_cents("5"), Some(500));
        assert_eq!(tolerance_cents("-1"), None);
        assert_eq!(tolerance_cents("0.001"), None);
        assert_eq!(period_bounds("2024-12"), Some((d("2024-12-01"), d("2025-01-01"))));
        assert_eq!(period_bounds("2024-13"), None);
    }
}

#[cfg(test)]
mod more_tests {
    use super::tests::{booked, lines, schedules};
    use super::*;

    #[test]
    fn rows_without_a_policy_number_are_missing_each_in_its_own_period() {
        // Their policy is not in the lake: nothing to match on, never one group.
        let b = booked(&[
            ("C1", "P8", None, "2024-03-05", "new", 10000, 150000, 1500, "paid", None),
            ("C2", "P9", None, "2024-04-05", "new", 20000, 150000, 3000, "paid", None),
        ]);
        let l = lines(&[("L1", "2024-03", "nbm 1 01", 1500, Some("new"))]);
        let o = reconcile(&l, &b, &schedules(), &Options::default(), None);
        let got: Vec<(&str, &str, Option<&str>)> = o
            .discrepancies
            .iter()
            .map(|d| (d.period.as_str(), d.kind_of.as_str(), d.commission_id.as_deref().or(d.line_id.as_deref())))
            .collect();
        assert_eq!(
            got,
            [
                ("2024-03", "MISSING", Some("C1")),
                ("2024-03", "UNEXPECTED", Some("L1")),
                ("2024-04", "MISSING", Some("C2"))
            ]
        );
        let per: Vec<(&str, u64, u64, String)> = o
            .periods
            .iter()
            .map(|p| (p.period.as_str(), p.lines, p.booked_rows, p.expected_total.to_string()))
            .collect();
        assert_eq!(per, [("2024-03", 1, 1, "15.00".to_string()), ("2024-04", 0, 1, "30.00".to_string())]);
    }
}
