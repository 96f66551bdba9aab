//! The rollups built at publish time from one tenant's facts: the monthly
//! commission rollups and the renewal-outcome rollup that
//! [`metrics`](super::metrics) reads in place of the raw facts.
//!
//! Each rollup row is the raw facts of the metrics layer summed over a
//! group, under the facts' own column names, so that every metric
//! definition gives the same figure from either (tests/it/rollups.rs
//! compares the two on every dimension the rollups keep):
//!
//! - `commissions_monthly`: commission rows joined to their policy (left
//!   join on `policy_id`: agency and line null when the policy is missing),
//!   summed per month × kind × agent × carrier × agency × line; the
//!   narrower ones the same sums over fewer columns (`COMMISSION_ROLLUPS`).
//! - `renewal_outcomes`: policies not cancelled before they expire, counted
//!   per expiration date × agency × agent × carrier × line × renewed by some
//!   policy of the tenant.
//!
//! They are built here in plain Rust rather than as engine queries: one
//! pass over the facts with the group key packed into integers is several
//! times cheaper than a hash join and a six-column string aggregation, and
//! building them is a quarter of a batch run otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Field, Int32Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use chrono::Datelike;
use foldhash::fast::RandomState;

use super::metrics::{
    AGENCY, AGENT, CANCELLATION_DATE, CARRIER, COMMISSION_ROLLUP, COMMISSION_ROLLUPS, EXPIRATION_DATE, LINE,
    POLICY_WEIGHT, RENEWAL_ROLLUP, RENEWED_BY_SOME_POLICY, TRANSACTION_DATE,
};
use crate::contract::Entity;
use crate::contract::values::{date_to_days, days_to_date};

mod state;
pub use state::{Changes, NeedsRebuild, TenantRollups};

/// A built table: name, schema, rows.
pub type Built = (&'static str, SchemaRef, Vec<RecordBatch>);

/// The summed amounts of a commission rollup.
const AMOUNTS: [&str; 3] = ["premium_amount", "gross_commission", "agent_commission"];

/// Columns of `commissions` the commission rollups read.
pub const COMMISSION_COLUMNS: [&str; 8] =
    ["policy_id", AGENT, CARRIER, TRANSACTION_DATE, "kind", AMOUNTS[0], AMOUNTS[1], AMOUNTS[2]];

/// Columns of `policies` the rollups read.
pub const POLICY_COLUMNS: [&str; 8] =
    ["policy_id", AGENCY, AGENT, CARRIER, LINE, EXPIRATION_DATE, CANCELLATION_DATE, "renewal_of"];

/// Low-cardinality string columns, read as dictionaries (see
/// [`decode_dictionaries`](crate::lake::parquet_io::decode_dictionaries)).
pub const DICTIONARY_COLUMNS: [&str; 5] = [AGENT, CARRIER, "kind", AGENCY, LINE];

/// A string of the facts as a small integer; `NULL` for a null.
type Id = u32;
const NULL: Id = Id::MAX;

/// The tenant's few hundred distinct agents, carriers, agencies, lines and
/// kinds, borrowed from the fact batches.
#[derive(Default)]
struct Names<'a> {
    ids: HashMap<&'a str, Id, RandomState>,
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn id(&mut self, s: Option<&'a str>) -> Id {
        let Some(s) = s else { return NULL };
        let next = self.names.len() as Id;
        *self.ids.entry(s).or_insert_with(|| {
            self.names.push(s);
            next
        })
    }

    /// The id of each row of a string column, plain or dictionary-encoded
    /// (then each distinct value is looked up once).
    fn ids(&mut self, a: &'a ArrayRef, name: &str) -> Result<Vec<Id>, ArrowError> {
        ids_of(a, name, |s| self.id(s))
    }
}

/// The id of each row of a string column, plain or dictionary-encoded
/// (then each distinct value is looked up once), by `id`.
pub(super) fn ids_of<'a>(
    a: &'a ArrayRef,
    name: &str,
    mut id: impl FnMut(Option<&'a str>) -> Id,
) -> Result<Vec<Id>, ArrowError> {
    if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
        let values = d.values().as_string_opt::<i32>().ok_or_else(|| not_strings(name))?;
        let of_value: Vec<Id> = (0..values.len()).map(|i| id(value(values, i))).collect();
        let keys = d.keys();
        return Ok((0..d.len())
            .map(|i| if keys.is_valid(i) { of_value[keys.value(i) as usize] } else { NULL })
            .collect());
    }
    let s = a.as_string_opt::<i32>().ok_or_else(|| not_strings(name))?;
    Ok((0..s.len()).map(|i| id(value(s, i))).collect())
}

/// The names of ids (indexed by id), for writing a rollup out.
pub(super) struct NameTable<'n> {
    names: &'n [&'n str],
    /// Each id's place in the names' sorted order (a null first), so that
    /// rows sort by name while comparing integers.
    ranks: Vec<Id>,
}

impl<'n> NameTable<'n> {
    pub(super) fn new(names: &'n [&'n str]) -> Self {
        let mut by_name: Vec<Id> = (0..names.len() as Id).collect();
        by_name.sort_unstable_by_key(|id| names[*id as usize]);
        let mut ranks = vec![0; names.len()];
        for (r, id) in by_name.into_iter().enumerate() {
            ranks[id as usize] = r as Id + 1;
        }
        NameTable { names, ranks }
    }

    fn name(&self, id: Id) -> Option<&'n str> {
        (id != NULL).then(|| self.names[id as usize])
    }

    fn rank(&self, id: Id) -> Id {
        if id == NULL { 0 } else { self.ranks[id as usize] }
    }
}

fn not_strings(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!("rollup input {name} is not a string column"))
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ArrowError> {
    batch.column_by_name(name).ok_or_else(|| ArrowError::SchemaError(format!("rollup input lacks {name}")))
}

fn strings<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray, ArrowError> {
    column(batch, name)?.as_string_opt::<i32>().ok_or_else(|| not_strings(name))
}

fn dates<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b Date32Array, ArrowError> {
    column(batch, name)?
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| ArrowError::SchemaError(format!("rollup input {name} is not a date column")))
}

fn decimals<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b Decimal128Array, ArrowError> {
    column(batch, name)?
        .as_primitive_opt::<Decimal128Type>()
        .ok_or_else(|| ArrowError::SchemaError(format!("rollup input {name} is not a decimal column")))
}

fn value(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn date(a: &Date32Array, i: usize) -> Option<i32> {
    a.is_valid(i).then(|| a.value(i))
}

/// The first day of the month of a date (days since the epoch), each day
/// computed once: a rollup sees a few thousand distinct days.
#[derive(Default)]
struct Months {
    /// Indexed by days since 1970-01-01; 0 while not computed.
    of_day: Vec<i32>,
}

impl Months {
    /// Days cached; earlier and later ones are computed every time.
    const DAYS: usize = 200 * 366;

    fn month_of(days: i32) -> i32 {
        let d = days_to_date(days);
        date_to_days(d.with_day(1).expect("day 1 exists"))
    }

    fn of(&mut self, days: i32) -> i32 {
        let Ok(i) = usize::try_from(days) else { return Self::month_of(days) };
        if i >= Self::DAYS {
            return Self::month_of(days);
        }
        if i >= self.of_day.len() {
            self.of_day.resize(i + 1, 0);
        }
        // 0 doubles as "not computed": January 1970 is computed each time.
        if self.of_day[i] == 0 {
            self.of_day[i] = Self::month_of(days);
        }
        self.of_day[i]
    }
}

// ---------------------------------------------------------------------------
// Commission rollups
// ---------------------------------------------------------------------------

/// The entity columns of the full commission rollup after the month, in
/// the order of its group key (ids of [`Names`]).
const KEY_COLUMNS: [&str; 5] = ["kind", AGENT, CARRIER, AGENCY, LINE];

/// Group key of a commission rollup: month and [`KEY_COLUMNS`]' ids (a
/// narrow rollup sets the columns it drops to `NULL`).
type CommissionKey = (Option<i32>, [Id; 5]);
/// Sums of [`AMOUNTS`]; `None` while every summed value was null.
type Sums = [Option<i128>; 3];

fn add(into: &mut Sums, values: [Option<i128>; 3]) -> Result<(), ArrowError> {
    for (s, v) in into.iter_mut().zip(values) {
        if let Some(v) = v {
            *s = Some(
                s.unwrap_or(0)
                    .checked_add(v)
                    .ok_or_else(|| ArrowError::ComputeError("commission rollup sum overflows".into()))?,
            );
        }
    }
    Ok(())
}

/// The monthly commission rollups of one tenant's facts (the full one
/// first, then the narrower ones), each sorted by month and then by its
/// keys' names, so that a range reads only its row groups.
pub fn commission_rollups(commissions: &[RecordBatch], policies: &[RecordBatch]) -> Result<Vec<Built>, ArrowError> {
    let mut names = Names::default();
    // policy id → (agency, line)
    let rows: usize = policies.iter().map(|b| b.num_rows()).sum();
    let mut policy_of: HashMap<&str, (Id, Id), RandomState> =
        HashMap::with_capacity_and_hasher(rows, RandomState::default());
    for b in policies {
        let ids = strings(b, "policy_id")?;
        let (agencies, lines) = (names.ids(column(b, AGENCY)?, AGENCY)?, names.ids(column(b, LINE)?, LINE)?);
        for i in 0..b.num_rows() {
            if let Some(id) = value(ids, i) {
                policy_of.insert(id, (agencies[i], lines[i]));
            }
        }
    }

    // Groups in first-seen order; the map only finds a group's slot, so that
    // the sums are summed in one dense vector.
    let mut slot_of: HashMap<CommissionKey, u32, RandomState> = HashMap::default();
    let mut full: Vec<(CommissionKey, Sums)> = Vec::new();
    let mut months = Months::default();
    for b in commissions {
        let policy = strings(b, "policy_id")?;
        let kind = names.ids(column(b, "kind")?, "kind")?;
        let agent = names.ids(column(b, AGENT)?, AGENT)?;
        let carrier = names.ids(column(b, CARRIER)?, CARRIER)?;
        let day = dates(b, TRANSACTION_DATE)?;
        let amounts = [decimals(b, AMOUNTS[0])?, decimals(b, AMOUNTS[1])?, decimals(b, AMOUNTS[2])?];
        for i in 0..b.num_rows() {
            let month = date(day, i).map(|d| months.of(d));
            let (agency, line) = value(policy, i).and_then(|p| policy_of.get(p).copied()).unwrap_or((NULL, NULL));
            let key = (month, [kind[i], agent[i], carrier[i], agency, line]);
            let slot = *slot_of.entry(key).or_insert_with(|| {
                full.push((key, [None; 3]));
                (full.len() - 1) as u32
            });
            let values = amounts.map(|a| a.is_valid(i).then(|| a.value(i)));
            add(&mut full[slot as usize].1, values)?;
        }
    }

    commission_tables(full, &NameTable::new(&names.names))
}

/// The commission rollup tables of the full rollup's groups (`full`: each
/// group once, any order): the full one first, then the narrower ones,
/// each sorted by month and then by its keys' names.
pub(super) fn commission_tables(full: Vec<(CommissionKey, Sums)>, names: &NameTable) -> Result<Vec<Built>, ArrowError> {
    let facts = Entity::Commissions.schema();
    let policy_fields = Entity::Policies.schema();
    let key_field = |name: &str| -> Result<Field, ArrowError> {
        match name {
            // From the policy through a left join: null when it is missing.
            AGENCY | LINE => Ok(policy_fields.field_with_name(name)?.clone().with_nullable(true)),
            _ => Ok(facts.field_with_name(name)?.clone()),
        }
    };
    let mut out = Vec::with_capacity(COMMISSION_ROLLUPS.len());
    // The full rollup first: the narrow ones are checked against it.
    let mut tables: Vec<(&'static str, &[&str])> = COMMISSION_ROLLUPS.to_vec();
    tables.sort_by_key(|(t, _)| *t != COMMISSION_ROLLUP);
    for (table, kept) in tables {
        // `kind` and the kept columns, in the order of the key.
        let columns: Vec<usize> =
            (0..KEY_COLUMNS.len()).filter(|j| *j == 0 || kept.contains(&KEY_COLUMNS[*j])).collect();
        let mut rows: Vec<(CommissionKey, Sums)> = if columns.len() == KEY_COLUMNS.len() {
            full.clone()
        } else {
            let mut groups: HashMap<CommissionKey, Sums, RandomState> = HashMap::default();
            for ((month, ids), sums) in &full {
                let mut key = [NULL; 5];
                for j in &columns {
                    key[*j] = ids[*j];
                }
                add(groups.entry((*month, key)).or_insert([None; 3]), *sums)?;
            }
            groups.into_iter().collect()
        };
        rows.sort_unstable_by_key(|((month, ids), _)| (*month, ids.map(|id| names.rank(id))));

        let mut fields = vec![key_field(TRANSACTION_DATE)?];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(Date32Array::from_iter(rows.iter().map(|((m, _), _)| *m)))];
        for j in &columns {
            fields.push(key_field(KEY_COLUMNS[*j])?);
            arrays.push(Arc::new(StringArray::from_iter(rows.iter().map(|((_, ids), _)| names.name(ids[*j])))));
        }
        for (j, a) in AMOUNTS.iter().enumerate() {
            let sum_type = sum_type(facts.field_with_name(a)?.data_type())?;
            let DataType::Decimal128(p, s) = sum_type else { unreachable!("sum_type is decimal") };
            fields.push(Field::new(*a, sum_type, true));
            let sums = Decimal128Array::from_iter(rows.iter().map(|(_, sums)| sums[j]));
            arrays.push(Arc::new(sums.with_precision_and_scale(p, s)?));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        out.push((table, schema, vec![batch]));
    }
    Ok(out)
}

/// The type of a sum of decimals: ten more digits, as the engine's `sum`
/// gives, so that a rollup's money has the type a query over facts has.
fn sum_type(t: &DataType) -> Result<DataType, ArrowError> {
    match t {
        DataType::Decimal128(p, s) => Ok(DataType::Decimal128((*p + 10).min(38), *s)),
        other => Err(ArrowError::SchemaError(format!("commission amount of type {other}"))),
    }
}

// ---------------------------------------------------------------------------
// Renewal rollup
// ---------------------------------------------------------------------------

/// The entity columns of the renewal rollup, in the order of its key.
const RENEWAL_KEY_COLUMNS: [&str; 4] = [AGENCY, AGENT, CARRIER, LINE];

/// Group key of the renewal rollup: expiration date, [`RENEWAL_KEY_COLUMNS`]'
/// ids, renewed.
type RenewalKey = (Option<i32>, [Id; 4], bool);

/// Whether a policy counts in the renewal rollup: not cancelled before it
/// expires (cancelled on the day it expires still counts).
fn up_for_renewal(expiration: Option<i32>, cancellation: Option<i32>) -> bool {
    match cancellation {
        None => true,
        Some(c) => expiration.is_some_and(|e| c >= e),
    }
}

/// The renewal-outcome rollup of one tenant's policies, sorted by
/// expiration date and then by its keys' names.
pub fn renewal_rollup(policies: &[RecordBatch]) -> Result<Built, ArrowError> {
    let rows: usize = policies.iter().map(|b| b.num_rows()).sum();
    let mut renewed: HashSet<&str, RandomState> = HashSet::with_capacity_and_hasher(rows, RandomState::default());
    for b in policies {
        renewed.extend(strings(b, "renewal_of")?.iter().flatten());
    }
    let mut names = Names::default();
    let mut groups: HashMap<RenewalKey, i64, RandomState> = HashMap::default();
    for b in policies {
        let ids = strings(b, "policy_id")?;
        let dims = RENEWAL_KEY_COLUMNS.map(|c| column(b, c).and_then(|a| names.ids(a, c)));
        let [agency, agent, carrier, line] = dims;
        let (agency, agent, carrier, line) = (agency?, agent?, carrier?, line?);
        let (expires, cancelled) = (dates(b, EXPIRATION_DATE)?, dates(b, CANCELLATION_DATE)?);
        for i in 0..b.num_rows() {
            let expiration = date(expires, i);
            if !up_for_renewal(expiration, date(cancelled, i)) {
                continue;
            }
            let is_renewed = value(ids, i).is_some_and(|id| renewed.contains(id));
            *groups.entry((expiration, [agency[i], agent[i], carrier[i], line[i]], is_renewed)).or_default() += 1;
        }
    }
    renewal_table(groups.into_iter().collect(), &NameTable::new(&names.names))
}

/// The renewal rollup table of its groups (each once, any order), sorted
/// by expiration date and then by its keys' names.
pub(super) fn renewal_table(mut rows: Vec<(RenewalKey, i64)>, names: &NameTable) -> Result<Built, ArrowError> {
    rows.sort_unstable_by_key(|((e, ids, r), _)| (*e, ids.map(|id| names.rank(id)), *r));

    let facts = Entity::Policies.schema();
    let mut fields = vec![facts.field_with_name(EXPIRATION_DATE)?.clone()];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Date32Array::from_iter(rows.iter().map(|((e, _, _), _)| *e)))];
    for (j, c) in RENEWAL_KEY_COLUMNS.into_iter().enumerate() {
        fields.push(facts.field_with_name(c)?.clone());
        columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|((_, ids, _), _)| names.name(ids[j])))));
    }
    fields.push(Field::new(RENEWED_BY_SOME_POLICY, DataType::Utf8, true));
    columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|((_, _, r), _)| r.then_some("renewed")))));
    fields.push(Field::new(POLICY_WEIGHT, DataType::Int64, true));
    columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, n)| *n))));
    fields.push(Field::new(CANCELLATION_DATE, DataType::Date32, true));
    columns.push(Arc::new(Date32Array::new_null(rows.len())));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok((RENEWAL_ROLLUP, schema, vec![batch]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn s(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn d(v: &[Option<&str>]) -> ArrayRef {
        let days = v.iter().map(|d| d.map(|d| date_to_days(d.parse().unwrap())));
        Arc::new(Date32Array::from_iter(days))
    }

    fn money(cents: &[i128]) -> ArrayRef {
        Arc::new(Decimal128Array::from(cents.to_vec()).with_precision_and_scale(18, 2).unwrap())
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// P1 renewed by P3; P2 cancelled before it expires; P3 cancelled on
    /// the day it expires (still up for renewal).
    fn policies() -> RecordBatch {
        batch(vec![
            ("policy_id", s(&[Some("P1"), Some("P2"), Some("P3")])),
            (AGENCY, s(&[Some("A1"), Some("A1"), Some("A2")])),
            (AGENT, s(&[Some("G1"), Some("G2"), Some("G1")])),
            (CARRIER, s(&[Some("C1"), Some("C1"), Some("C2")])),
            (LINE, s(&[Some("auto"), Some("home"), Some("auto")])),
            (EXPIRATION_DATE, d(&[Some("2025-03-01"), Some("2025-03-01"), Some("2026-03-01")])),
            (CANCELLATION_DATE, d(&[None, Some("2024-12-01"), Some("2026-03-01")])),
            ("renewal_of", s(&[None, None, Some("P1")])),
        ])
    }

    /// Two January rows of P1 (one group), P3's February renewal, and a
    /// row whose policy is not in the lake (agency and line null).
    fn commissions() -> RecordBatch {
        batch(vec![
            ("policy_id", s(&[Some("P1"), Some("P1"), Some("P3"), Some("P9")])),
            (AGENT, s(&[Some("G1"), Some("G1"), Some("G1"), Some("G2")])),
            (CARRIER, s(&[Some("C1"), Some("C1"), Some("C2"), Some("C1")])),
            (TRANSACTION_DATE, d(&[Some("2025-01-15"), Some("2025-01-31"), Some("2025-02-01"), Some("2025-01-02")])),
            ("kind", s(&[Some("new"), Some("new"), Some("renewal"), Some("new")])),
            (AMOUNTS[0], money(&[100_000, 50_000, 80_000, 10_000])),
            (AMOUNTS[1], money(&[10_000, 5_000, 8_000, 1_000])),
            (AMOUNTS[2], money(&[6_000, 3_000, 4_800, 600])),
        ])
    }

    fn table(built: &Built) -> String {
        pretty_format_batches(&built.2).unwrap().to_string()
    }

    fn schema(built: &Built) -> Vec<String> {
        built.1.fields().iter().map(|f| format!("{} {} {}", f.name(), f.data_type(), f.is_nullable())).collect()
    }

    #[test]
    fn commission_rollups_sum_by_month_and_key_with_the_policy_dimensions() {
        let built = commission_rollups(&[commissions()], &[policies()]).unwrap();
        assert_eq!(
            built.iter().map(|b| b.0).collect::<Vec<_>>(),
            [
                COMMISSION_ROLLUP,
                crate::lake::catalog::COMMISSIONS_MONTHLY_BY_AGENT,
                crate::lake::catalog::COMMISSIONS_MONTHLY_BY_CARRIER
            ]
        );
        // By hand: January new business of G1/C1 is 1000.00 + 500.00; the
        // row of the unknown policy P9 keeps its agent and carrier.
        let full = [
            "+------------------+---------+----------+------------+-----------+------------------+----------------+------------------+------------------+",
            "| transaction_date | kind    | agent_id | carrier_id | agency_id | line_of_business | premium_amount | gross_commission | agent_commission |",
            "+------------------+---------+----------+------------+-----------+------------------+----------------+------------------+------------------+",
            "| 2025-01-01       | new     | G1       | C1         | A1        | auto             | 1500.00        | 150.00           | 90.00            |",
            "| 2025-01-01       | new     | G2       | C1         |           |                  | 100.00         | 10.00            | 6.00             |",
            "| 2025-02-01       | renewal | G1       | C2         | A2        | auto             | 800.00         | 80.00            | 48.00            |",
            "+------------------+---------+----------+------------+-----------+------------------+----------------+------------------+------------------+",
        ];
        assert_eq!(table(&built[0]), full.join("\n"));
        let by_carrier = [
            "+------------------+---------+------------+------------------+----------------+------------------+------------------+",
            "| transaction_date | kind    | carrier_id | line_of_business | premium_amount | gross_commission | agent_commission |",
            "+------------------+---------+------------+------------------+----------------+------------------+------------------+",
            "| 2025-01-01       | new     | C1         |                  | 100.00         | 10.00            | 6.00             |",
            "| 2025-01-01       | new     | C1         | auto             | 1500.00        | 150.00           | 90.00            |",
            "| 2025-02-01       | renewal | C2         | auto             | 800.00         | 80.00            | 48.00            |",
            "+------------------+---------+------------+------------------+----------------+------------------+------------------+",
        ];
        assert_eq!(table(&built[2]), by_carrier.join("\n"));
        // The types and nullability the engine-built rollups had, so that
        // lakes built before keep one schema per table.
        let money =
            ["premium_amount", "gross_commission", "agent_commission"].map(|a| format!("{a} Decimal128(28, 2) true"));
        let head = ["transaction_date Date32 false", "kind Utf8 false"];
        let expect = |keys: &[&str]| -> Vec<String> {
            head.iter().map(|h| h.to_string()).chain(keys.iter().map(|k| k.to_string())).chain(money.clone()).collect()
        };
        assert_eq!(
            schema(&built[0]),
            expect(&[
                "agent_id Utf8 false",
                "carrier_id Utf8 false",
                "agency_id Utf8 true",
                "line_of_business Utf8 true"
            ])
        );
        assert_eq!(schema(&built[1]), expect(&["agent_id Utf8 false", "agency_id Utf8 true"]));
        assert_eq!(schema(&built[2]), expect(&["carrier_id Utf8 false", "line_of_business Utf8 true"]));
        // The same from dictionary-encoded string columns, as the lake's
        // files are read (each distinct value looked up once).
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let as_dictionaries = |b: RecordBatch| {
            let schema = b.schema();
            let columns = schema.fields().iter().zip(b.columns()).map(|(f, c)| {
                let c = if DICTIONARY_COLUMNS.contains(&f.name().as_str()) {
                    arrow::compute::cast(c, &dictionary).unwrap()
                } else {
                    c.clone()
                };
                (f.name().clone(), c)
            });
            RecordBatch::try_from_iter(columns.collect::<Vec<_>>()).unwrap()
        };
        let (c, p) = (as_dictionaries(commissions()), as_dictionaries(policies()));
        let again = commission_rollups(&[c], &[p]).unwrap();
        for (a, b) in built.iter().zip(&again) {
            assert_eq!(table(a), table(b), "{}", a.0);
        }
        // No facts: empty rollups of the same schema.
        let empty = commission_rollups(&[], &[]).unwrap();
        assert_eq!(empty[0].2[0].num_rows(), 0);
        assert_eq!(schema(&empty[0]), schema(&built[0]));
    }

    #[test]
    fn renewal_rollup_counts_policies_up_for_renewal_and_whether_renewed() {
        let built = renewal_rollup(&[policies()]).unwrap();
        let expected = [
            "+-----------------+-----------+----------+------------+------------------+-------------------+----------+-------------------+",
            "| expiration_date | agency_id | agent_id | carrier_id | line_of_business | renewed_policy_id | policies | cancellation_date |",
            "+-----------------+-----------+----------+------------+------------------+-------------------+----------+-------------------+",
            "| 2025-03-01      | A1        | G1       | C1         | auto             | renewed           | 1        |                   |",
            "| 2026-03-01      | A2        | G1       | C2         | auto             |                   | 1        |                   |",
            "+-----------------+-----------+----------+------------+------------------+-------------------+----------+-------------------+",
        ];
        assert_eq!(table(&built), expected.join("\n"));
        assert_eq!(
            schema(&built),
            [
                "expiration_date Date32 false",
                "agency_id Utf8 false",
                "agent_id Utf8 false",
                "carrier_id Utf8 false",
                "line_of_business Utf8 false",
                "renewed_policy_id Utf8 true",
                "policies Int64 true",
                "cancellation_date Date32 true",
            ]
        );
    }
}
