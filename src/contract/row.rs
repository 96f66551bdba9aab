//! One record of an entity: cells → validated typed values → Arrow columns.
//!
//! A record arrives as one optional string per contract column (the CSV and
//! JSON readers map their own layout onto the contract's column order). The
//! whole record is parsed into [`Value`]s before anything is appended, so a
//! rejected row never leaves a partial row in a batch.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, Int64Builder, StringArray,
    StringBuilder,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::values::{Value, parse_cell};
use super::{Entity, Kind, MONEY_PRECISION, MONEY_SCALE, RATE_PRECISION, RATE_SCALE, RejectCode};

/// A row that breaks the contract: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: RejectCode,
    pub message: String,
}

impl Reject {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject { code, message: message.into() }
    }
}

/// Parses and validates records of one entity.
pub struct RowParser {
    entity: Entity,
    key: Vec<usize>,
    rules: Rules,
}

/// Column positions used by the cross-column rules of each entity.
enum Rules {
    None,
    Agents { split: usize, overrides: usize },
    Schedules { from: usize, to: usize },
    Policies { effective: usize, expiration: usize, status: usize, cancellation: usize },
    Commissions { gross: usize, agent: usize, agency: usize },
}

fn pos(entity: Entity, name: &str) -> usize {
    entity.columns().iter().position(|c| c.name == name).expect("contract column")
}

impl RowParser {
    pub fn new(entity: Entity) -> Self {
        let p = |n| pos(entity, n);
        let rules = match entity {
            Entity::Agents => Rules::Agents { split: p("split_pct"), overrides: p("override_pct") },
            Entity::CommissionSchedules => Rules::Schedules { from: p("effective_from"), to: p("effective_to") },
            Entity::Policies => Rules::Policies {
                effective: p("effective_date"),
                expiration: p("expiration_date"),
                status: p("status"),
                cancellation: p("cancellation_date"),
            },
            Entity::Commissions => Rules::Commissions {
                gross: p("gross_commission"),
                agent: p("agent_commission"),
                agency: p("agency_commission"),
            },
            _ => Rules::None,
        };
        RowParser { entity, key: entity.key_indices(), rules }
    }

    pub fn entity(&self) -> Entity {
        self.entity
    }

    /// Parse `cells` (one per contract column, `None` when absent) into
    /// `out`. Cells are trimmed; an empty cell is no value.
    pub fn parse<'a>(&self, cells: &[Option<&'a str>], out: &mut Vec<Value<'a>>) -> Result<(), Reject> {
        out.clear();
        for (col, cell) in self.entity.columns().iter().zip(cells) {
            let raw = cell.map(str::trim).filter(|s| !s.is_empty());
            let value = match raw {
                None if col.required => {
                    return Err(Reject::new(RejectCode::MissingValue, format!("{} is required", col.name)));
                }
                None => Value::Null,
                Some(raw) => parse_cell(col.kind, raw)
                    .map_err(|(code, why)| Reject::new(code, format!("{}: {why}", col.name)))?,
            };
            out.push(value);
        }
        self.check(out)
    }

    /// Rules across columns that the contract states.
    fn check(&self, v: &[Value]) -> Result<(), Reject> {
        let bad = |m: String| Err(Reject::new(RejectCode::InconsistentRow, m));
        match self.rules {
            Rules::None => Ok(()),
            Rules::Agents { split, overrides } => {
                for (i, name) in [(split, "split_pct"), (overrides, "override_pct")] {
                    if let Value::Decimal(m) = v[i]
                        && !(0..=1_000_000).contains(&m)
                    {
                        return bad(format!("{name} must be a fraction between 0 and 1"));
                    }
                }
                Ok(())
            }
            Rules::Schedules { from, to } => match (v[from], v[to]) {
                (Value::Date(f), Value::Date(t)) if t <= f => bad("effective_to must be after effective_from".into()),
                _ => Ok(()),
            },
            Rules::Policies { effective, expiration, status, cancellation } => {
                if let (Value::Date(e), Value::Date(x)) = (v[effective], v[expiration])
                    && x <= e
                {
                    return bad("expiration_date must be after effective_date".into());
                }
                if v[status] == Value::Str("cancelled") && v[cancellation] == Value::Null {
                    return bad("status is cancelled but cancellation_date is empty".into());
                }
                Ok(())
            }
            Rules::Commissions { gross, agent, agency } => match (v[gross], v[agent], v[agency]) {
                (Value::Decimal(g), Value::Decimal(a), Value::Decimal(b)) if g != a + b => {
                    bad("gross_commission must equal agent_commission + agency_commission".into())
                }
                _ => Ok(()),
            },
        }
    }

    /// Identity of the row within its tenant (the entity's key columns).
    pub fn key_hash(&self, values: &[Value], buf: &mut Vec<u8>) -> u128 {
        buf.clear();
        for &i in &self.key {
            encode(buf, &values[i]);
        }
        xxh3_128(buf)
    }

    /// [`RowParser::key_hash`] of a row whose key values (in key order)
    /// are `key`, without the rest of the row.
    pub fn hash_of_key(key: &[Value]) -> u128 {
        let mut buf = Vec::with_capacity(64);
        for v in key {
            encode(&mut buf, v);
        }
        xxh3_128(&buf)
    }

    /// Content of the whole row, to tell an unchanged re-delivery from a change.
    pub fn row_hash(values: &[Value], buf: &mut Vec<u8>) -> u64 {
        buf.clear();
        for v in values {
            encode(buf, v);
        }
        xxh3_64(buf)
    }
}

/// A stable, unambiguous byte encoding of a typed value (tag + payload),
/// shared by parsed rows and rows read back from Parquet.
fn encode(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.push(0),
        Value::Str(s) => {
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Date(d) => {
            buf.push(2);
            buf.extend_from_slice(&d.to_le_bytes());
        }
        Value::Decimal(m) => {
            buf.push(3);
            buf.extend_from_slice(&m.to_le_bytes());
        }
    }
}

/// The typed value at `row` of a stored column.
pub fn value_at(array: &dyn Array, row: usize) -> Value<'_> {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::Str(array.as_any().downcast_ref::<StringArray>().expect("utf8").value(row)),
        DataType::Date32 => Value::Date(array.as_any().downcast_ref::<Date32Array>().expect("date32").value(row)),
        DataType::Decimal128(_, _) => {
            Value::Decimal(array.as_any().downcast_ref::<Decimal128Array>().expect("decimal").value(row))
        }
        other => panic!("no contract column is stored as {other}"),
    }
}

/// Key hashes of stored rows, computed exactly as [`RowParser::key_hash`]
/// does for parsed ones. `batch` must hold the entity's key columns.
pub fn stored_key_hashes(entity: Entity, batch: &RecordBatch) -> Vec<u128> {
    let cols: Vec<&ArrayRef> =
        entity.key().iter().map(|k| batch.column_by_name(k).expect("key column present")).collect();
    let mut buf = Vec::with_capacity(64);
    (0..batch.num_rows())
        .map(|row| {
            buf.clear();
            for c in &cols {
                encode(&mut buf, &value_at(c.as_ref(), row));
            }
            xxh3_128(&buf)
        })
        .collect()
}

/// `batch` (read from a stored file) in the entity's stored schema: files
/// written before the stamp columns existed get them as nulls.
pub fn with_stored_schema(entity: Entity, batch: RecordBatch) -> RecordBatch {
    let schema = entity.schema();
    if batch.schema().fields().len() == schema.fields().len() {
        return batch;
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => arrow::array::new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("a stored file has the entity's columns")
}

/// The stamps of a stored batch's rows ([`super::STAMP_AT_COLUMN`],
/// [`super::STAMP_ID_COLUMN`]); `None` for a file written without them.
pub fn stored_stamps(batch: &RecordBatch) -> Option<(arrow::array::Int64Array, arrow::array::StringArray)> {
    let at = batch.column_by_name(super::STAMP_AT_COLUMN)?.as_any().downcast_ref::<arrow::array::Int64Array>()?;
    let id = batch.column_by_name(super::STAMP_ID_COLUMN)?.as_any().downcast_ref::<arrow::array::StringArray>()?;
    Some((at.clone(), id.clone()))
}

enum ColumnBuilder {
    Str(StringBuilder),
    Date(Date32Builder),
    Decimal(Decimal128Builder),
}

/// Accumulates validated rows of one entity into an Arrow batch.
pub struct BatchBuilder {
    entity: Entity,
    columns: Vec<ColumnBuilder>,
    /// Stored as Int64 (the hash's bits): Delta has no unsigned type.
    row_hash: Int64Builder,
    /// The rows' stamps, once one row had one (landing files have none:
    /// their batches get all-null stamp columns at no cost per row).
    stamps: Option<(Int64Builder, StringBuilder)>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(entity: Entity, capacity: usize) -> Self {
        let columns = entity
            .columns()
            .iter()
            .map(|c| match c.kind {
                Kind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
                Kind::Money => ColumnBuilder::Decimal(
                    Decimal128Builder::with_capacity(capacity)
                        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                        .expect("valid precision"),
                ),
                Kind::Rate => ColumnBuilder::Decimal(
                    Decimal128Builder::with_capacity(capacity)
                        .with_precision_and_scale(RATE_PRECISION, RATE_SCALE)
                        .expect("valid precision"),
                ),
                _ => ColumnBuilder::Str(StringBuilder::with_capacity(capacity, capacity * 12)),
            })
            .collect();
        BatchBuilder { entity, columns, row_hash: Int64Builder::with_capacity(capacity), stamps: None, rows: 0 }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append a row parsed by [`RowParser::parse`], with the stamp of the
    /// event that carried it, if any.
    pub fn append(&mut self, values: &[Value], row_hash: u64, stamp: Option<(i64, &str)>) {
        if let Some((at, id)) = stamp {
            let rows = self.rows;
            let (ats, ids) = self.stamps.get_or_insert_with(|| {
                let (mut ats, mut ids) = (Int64Builder::new(), StringBuilder::new());
                ats.append_nulls(rows);
                (0..rows).for_each(|_| ids.append_null());
                (ats, ids)
            });
            ats.append_value(at);
            ids.append_value(id);
        } else if let Some((ats, ids)) = self.stamps.as_mut() {
            ats.append_null();
            ids.append_null();
        }
        for (b, v) in self.columns.iter_mut().zip(values) {
            match (b, v) {
                (ColumnBuilder::Str(b), Value::Str(s)) => b.append_value(s),
                (ColumnBuilder::Str(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Date(b), Value::Date(d)) => b.append_value(*d),
                (ColumnBuilder::Date(b), Value::Null) => b.append_null(),
                (ColumnBuilder::Decimal(b), Value::Decimal(m)) => b.append_value(*m),
                (ColumnBuilder::Decimal(b), Value::Null) => b.append_null(),
                _ => unreachable!("parse_cell yields the value kind of its column"),
            }
        }
        self.row_hash.append_value(row_hash as i64);
        self.rows += 1;
    }

    /// The rows so far as a batch of the entity's stored schema; the builder
    /// is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| match b {
                ColumnBuilder::Str(b) => Arc::new(b.finish()) as ArrayRef,
                ColumnBuilder::Date(b) => Arc::new(b.finish()) as ArrayRef,
                ColumnBuilder::Decimal(b) => Arc::new(b.finish()) as ArrayRef,
            })
            .collect();
        arrays.push(Arc::new(self.row_hash.finish()));
        match self.stamps.take() {
            Some((mut ats, mut ids)) => {
                arrays.push(Arc::new(ats.finish()));
                arrays.push(Arc::new(ids.finish()));
            }
            None => {
                arrays.push(arrow::array::new_null_array(&DataType::Int64, self.rows));
                arrays.push(arrow::array::new_null_array(&DataType::Utf8, self.rows));
            }
        }
        self.rows = 0;
        RecordBatch::try_new(self.entity.schema(), arrays).expect("builders match the entity schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Decimal128Type;

    fn cells(entity: Entity, pairs: &[(&'static str, &'static str)]) -> Vec<Option<&'static str>> {
        entity.columns().iter().map(|c| pairs.iter().find(|(n, _)| *n == c.name).map(|(_, v)| *v)).collect()
    }

    const COMMISSION: &[(&str, &str)] = &[
        ("tenant_id", "t1"),
        ("commission_id", "C1"),
        ("policy_id", "P1"),
        ("agent_id", "A1"),
        ("carrier_id", "K1"),
        ("transaction_date", "2024-03-01"),
        ("kind", "new"),
        ("premium_amount", "1200.00"),
        ("commission_rate", "0.125"),
        ("gross_commission", "150.00"),
        ("agent_commission", "60.00"),
        ("agency_commission", "90"),
    ];

    #[test]
    fn valid_commission_row_round_trips_through_arrow() {
        let p = RowParser::new(Entity::Commissions);
        let mut v = Vec::new();
        p.parse(&cells(Entity::Commissions, COMMISSION), &mut v).unwrap();
        let mut b = BatchBuilder::new(Entity::Commissions, 4);
        let mut buf = Vec::new();
        let h = RowParser::row_hash(&v, &mut buf);
        let k = p.key_hash(&v, &mut buf);
        b.append(&v, h, None);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        let agency = batch.column_by_name("agency_commission").unwrap().as_primitive::<Decimal128Type>();
        assert_eq!(agency.value(0), 9000);
        assert_eq!(stored_key_hashes(Entity::Commissions, &batch), vec![k]);
        // A landing file's row has no stamp: null stamp columns.
        let (at, id) = stored_stamps(&batch).unwrap();
        assert_eq!((at.null_count(), id.null_count()), (1, 1));
    }

    #[test]
    fn a_streamed_rows_stamp_is_stored_beside_it_and_others_stay_null() {
        let p = RowParser::new(Entity::Commissions);
        let mut v = Vec::new();
        p.parse(&cells(Entity::Commissions, COMMISSION), &mut v).unwrap();
        let h = RowParser::row_hash(&v, &mut Vec::new());
        let mut b = BatchBuilder::new(Entity::Commissions, 4);
        b.append(&v, h, None);
        b.append(&v, h, Some((1_700_000_000_000, "ev-2")));
        b.append(&v, h, None);
        let batch = b.finish();
        let (at, id) = stored_stamps(&batch).unwrap();
        let ats: Vec<Option<i64>> = at.iter().collect();
        let ids: Vec<Option<&str>> = id.iter().collect();
        assert_eq!(ats, vec![None, Some(1_700_000_000_000), None]);
        assert_eq!(ids, vec![None, Some("ev-2"), None]);
        // The next batch starts afresh: no stamp, all null.
        b.append(&v, h, None);
        let (at, _) = stored_stamps(&b.finish()).unwrap();
        assert_eq!(at.null_count(), 1);
        // A batch of a file written before the stamp columns gets them.
        let old = batch.project(&(0..batch.num_columns() - 2).collect::<Vec<_>>()).unwrap();
        assert!(stored_stamps(&old).is_none());
        let conformed = with_stored_schema(Entity::Commissions, old);
        assert_eq!(conformed.schema(), Entity::Commissions.schema());
        assert_eq!(stored_stamps(&conformed).unwrap().0.null_count(), 3);
    }

    #[test]
    fn each_defect_gets_its_code() {
        let p = RowParser::new(Entity::Commissions);
        let mut v = Vec::new();
        let with = |name: &'static str, value: &'static str| {
            let mut pairs: Vec<(&str, &str)> = COMMISSION.to_vec();
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
            cells(Entity::Commissions, &pairs)
        };
        let code = |c: Vec<Option<&'static str>>, v: &mut Vec<Value<'static>>| p.parse(&c, v).unwrap_err();
        assert_eq!(
            code(with("policy_id", "  "), &mut v),
            Reject::new(RejectCode::MissingValue, "policy_id is required")
        );
        assert_eq!(code(with("transaction_date", "2023-13-45"), &mut v).code, RejectCode::InvalidDate);
        assert_eq!(code(with("premium_amount", "abc"), &mut v).code, RejectCode::InvalidMoney);
        assert_eq!(code(with("premium_amount", "1.2e3"), &mut v).code, RejectCode::InvalidMoney);
        assert_eq!(code(with("gross_commission", "150.001"), &mut v).code, RejectCode::MoneyPrecision);
        assert_eq!(code(with("kind", "bonus"), &mut v).code, RejectCode::InvalidEnum);
        let r = code(with("agency_commission", "90.01"), &mut v);
        assert_eq!(r.code, RejectCode::InconsistentRow);
    }

    #[test]
    fn row_hash_ignores_formatting_but_not_values() {
        let p = RowParser::new(Entity::Commissions);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut buf = Vec::new();
        p.parse(&cells(Entity::Commissions, COMMISSION), &mut a).unwrap();
        let mut pairs = COMMISSION.to_vec();
        pairs[7] = ("premium_amount", " 1200 ");
        pairs[6] = ("kind", "NEW");
        p.parse(&cells(Entity::Commissions, &pairs), &mut b).unwrap();
        assert_eq!(RowParser::row_hash(&a, &mut buf), RowParser::row_hash(&b, &mut buf));
        pairs[7] = ("premium_amount", "1200.01");
        p.parse(&cells(Entity::Commissions, &pairs), &mut b).unwrap();
        assert_ne!(RowParser::row_hash(&a, &mut buf), RowParser::row_hash(&b, &mut buf));
    }

    #[test]
    fn policy_dates_must_be_ordered() {
        let p = RowParser::new(Entity::Policies);
        let base = [
            ("tenant_id", "t1"),
            ("policy_id", "P1"),
            ("policy_number", "N1"),
            ("agency_id", "G1"),
            ("agent_id", "A1"),
            ("carrier_id", "K1"),
            ("customer_id", "C1"),
            ("line_of_business", "Auto"),
            ("effective_date", "2024-01-01"),
            ("expiration_date", "2024-01-01"),
            ("premium", "500"),
            ("status", "active"),
        ];
        let mut v = Vec::new();
        let r = p.parse(&cells(Entity::Policies, &base), &mut v).unwrap_err();
        assert_eq!(r.message, "expiration_date must be after effective_date");
        let mut ok = base;
        ok[9] = ("expiration_date", "2024-07-01");
        p.parse(&cells(Entity::Policies, &ok), &mut v).unwrap();
        assert_eq!(v[7], Value::Str("Auto"));
    }
}
