//! The data contract (`shared/spec/data-contract.md`) as code: every entity's
//! columns, their kinds, which are required, the upsert key, and the Arrow
//! schema each entity is stored with. Parsing and validation live in
//! [`values`] (one cell) and [`row`] (one record).

pub mod row;
pub mod summary;
pub mod values;

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Money: exact decimal, 2 fraction digits (contract: at most 2).
pub const MONEY_PRECISION: u8 = 18;
pub const MONEY_SCALE: i8 = 2;
/// Rates and percentages: decimal fractions, at most 6 fraction digits.
pub const RATE_PRECISION: u8 = 12;
pub const RATE_SCALE: i8 = 6;

/// Internal column written with every stored row: a hash of the row's typed
/// content, so that a re-run can tell "unchanged" from "changed" by reading
/// only keys and this column.
pub const ROW_HASH_COLUMN: &str = "_row_hash";

/// Internal columns of rows the streaming writer lands: the `occurred_at`
/// (epoch milliseconds) and `event_id` of the event that wrote the row, its
/// *stamp*. An event older than the stored row's stamp changes nothing, so
/// the order of events per key lives with the row, not in the writer's
/// memory. Null for rows a landing file delivered.
pub const STAMP_AT_COLUMN: &str = "_occurred_at_ms";
pub const STAMP_ID_COLUMN: &str = "_event_id";

/// The order of events for one key: `occurred_at` (epoch ms), then the
/// event id.
pub type Stamp = (i64, String);

/// What a cell holds, and so how it is parsed and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A tenant id (see [`check_tenant_id`]): it names a directory of the
    /// lake, so only a few safe characters.
    TenantId,
    /// Free text, trimmed.
    Text,
    /// Text from an open set (e.g. `line_of_business`): unknown values are
    /// kept as given, trimmed.
    OpenEnum,
    /// One of a closed set (compared after trimming and lower-casing).
    Enum(&'static [&'static str]),
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM`, stored as text.
    Month,
    /// Decimal string, at most 2 fraction digits, no exponent.
    Money,
    /// Decimal fraction, at most 6 fraction digits, no exponent.
    Rate,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::TenantId | Kind::Text | Kind::OpenEnum | Kind::Enum(_) | Kind::Month => DataType::Utf8,
            Kind::Date => DataType::Date32,
            Kind::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
            Kind::Rate => DataType::Decimal128(RATE_PRECISION, RATE_SCALE),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, required: true }
}
const fn opt(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, required: false }
}

use Kind::*;

pub const ROLES: &[&str] = &["producer", "manager"];
pub const AGENT_STATUSES: &[&str] = &["active", "terminated"];
pub const SCHEDULE_KINDS: &[&str] = &["new", "renewal"];
pub const POLICY_STATUSES: &[&str] = &["active", "cancelled", "expired"];
pub const COMMISSION_KINDS: &[&str] = &["new", "renewal", "chargeback", "override", "adjustment"];
pub const COMMISSION_STATUSES: &[&str] = &["expected", "paid"];

const AGENCIES: &[Column] =
    &[req("tenant_id", TenantId), req("agency_id", Text), req("name", Text), opt("state", Text)];

const AGENTS: &[Column] = &[
    req("tenant_id", TenantId),
    req("agent_id", Text),
    req("agency_id", Text),
    req("name", Text),
    req("role", Enum(ROLES)),
    opt("manager_id", Text),
    opt("split_pct", Rate),
    opt("override_pct", Rate),
    opt("hire_date", Date),
    opt("status", Enum(AGENT_STATUSES)),
    opt("termination_date", Date),
];

const CARRIERS: &[Column] = &[req("tenant_id", TenantId), req("carrier_id", Text), req("name", Text)];

const COMMISSION_SCHEDULES: &[Column] = &[
    req("tenant_id", TenantId),
    req("carrier_id", Text),
    req("line_of_business", OpenEnum),
    req("kind", Enum(SCHEDULE_KINDS)),
    req("rate", Rate),
    req("effective_from", Date),
    opt("effective_to", Date),
];

const POLICIES: &[Column] = &[
    req("tenant_id", TenantId),
    req("policy_id", Text),
    req("policy_number", Text),
    req("agency_id", Text),
    req("agent_id", Text),
    req("carrier_id", Text),
    req("customer_id", Text),
    req("line_of_business", OpenEnum),
    req("effective_date", Date),
    req("expiration_date", Date),
    req("premium", Money),
    req("status", Enum(POLICY_STATUSES)),
    opt("cancellation_date", Date),
    opt("renewal_of", Text),
    opt("source_system", Text),
    opt("external_id", Text),
];

const COMMISSIONS: &[Column] = &[
    req("tenant_id", TenantId),
    req("commission_id", Text),
    req("policy_id", Text),
    req("agent_id", Text),
    req("carrier_id", Text),
    req("transaction_date", Date),
    req("kind", Enum(COMMISSION_KINDS)),
    req("premium_amount", Money),
    req("commission_rate", Rate),
    req("gross_commission", Money),
    req("agent_commission", Money),
    req("agency_commission", Money),
    opt("status", Enum(COMMISSION_STATUSES)),
    opt("paid_date", Date),
    opt("statement_id", Text),
];

const STATEMENT_LINES: &[Column] = &[
    req("tenant_id", TenantId),
    req("statement_id", Text),
    req("line_id", Text),
    req("carrier_id", Text),
    req("statement_date", Date),
    req("period", Month),
    req("policy_number", Text),
    req("commission_amount", Money),
    opt("insured_name", Text),
    opt("line_of_business", OpenEnum),
    opt("premium", Money),
    opt("kind", OpenEnum),
];

/// The entities of the landing layout, in the order a run processes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Agencies,
    Agents,
    Carriers,
    CommissionSchedules,
    Policies,
    Commissions,
    StatementLines,
}

impl Entity {
    pub const ALL: [Entity; 7] = [
        Entity::Agencies,
        Entity::Agents,
        Entity::Carriers,
        Entity::CommissionSchedules,
        Entity::Policies,
        Entity::Commissions,
        Entity::StatementLines,
    ];

    /// Folder name in the landing layout and table name in the lake.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Agencies => "agencies",
            Entity::Agents => "agents",
            Entity::Carriers => "carriers",
            Entity::CommissionSchedules => "commission_schedules",
            Entity::Policies => "policies",
            Entity::Commissions => "commissions",
            Entity::StatementLines => "statement_lines",
        }
    }

    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The singular noun of its streaming events (`<noun>.upserted`).
    pub fn event_noun(self) -> &'static str {
        match self {
            Entity::Agencies => "agency",
            Entity::Agents => "agent",
            Entity::Carriers => "carrier",
            Entity::CommissionSchedules => "commission_schedule",
            Entity::Policies => "policy",
            Entity::Commissions => "commission",
            Entity::StatementLines => "statement_line",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Entity::Agencies => AGENCIES,
            Entity::Agents => AGENTS,
            Entity::Carriers => CARRIERS,
            Entity::CommissionSchedules => COMMISSION_SCHEDULES,
            Entity::Policies => POLICIES,
            Entity::Commissions => COMMISSIONS,
            Entity::StatementLines => STATEMENT_LINES,
        }
    }

    /// The upsert key within a tenant (`tenant_id` is implied: ids are
    /// unique within a tenant only, and rows are partitioned by tenant).
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Entity::Agencies => &["agency_id"],
            Entity::Agents => &["agent_id"],
            Entity::Carriers => &["carrier_id"],
            Entity::CommissionSchedules => &["carrier_id", "line_of_business", "kind", "effective_from"],
            Entity::Policies => &["policy_id"],
            Entity::Commissions => &["commission_id"],
            Entity::StatementLines => &["statement_id", "line_id"],
        }
    }

    /// Positions of the key columns in [`Entity::columns`].
    pub fn key_indices(self) -> Vec<usize> {
        self.key()
            .iter()
            .map(|k| self.columns().iter().position(|c| c.name == *k).expect("key column is a contract column"))
            .collect()
    }

    /// The stored schema: the contract's columns, then [`ROW_HASH_COLUMN`]
    /// and the stamp ([`STAMP_AT_COLUMN`], [`STAMP_ID_COLUMN`]).
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Entity::ALL
                .iter()
                .map(|e| {
                    let mut fields: Vec<Field> =
                        e.columns().iter().map(|c| Field::new(c.name, c.kind.data_type(), !c.required)).collect();
                    // The u64 hash's bits as Int64: Delta (and most readers) have no unsigned type.
                    fields.push(Field::new(ROW_HASH_COLUMN, DataType::Int64, false));
                    fields.push(Field::new(STAMP_AT_COLUMN, DataType::Int64, true));
                    fields.push(Field::new(STAMP_ID_COLUMN, DataType::Utf8, true));
                    Arc::new(Schema::new(fields))
                })
                .collect()
        });
        all[self as usize].clone()
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a row was rejected: a stable code (in the rejected-records store and
/// the run summary) plus a human-readable message naming the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// A required value is empty, null or its column is absent.
    MissingValue,
    /// Not a date `YYYY-MM-DD` (or, for month columns, not `YYYY-MM`).
    InvalidDate,
    /// Not a plain decimal (includes exponent form and thousands separators).
    InvalidMoney,
    /// Money with more than 2 fraction digits.
    MoneyPrecision,
    /// Not a plain decimal, or more than 6 fraction digits.
    InvalidRate,
    /// A value outside a closed set (role, status, kind).
    InvalidEnum,
    /// A second row in the same file with the same key and other content.
    DuplicateKeyConflict,
    /// The values parse but contradict each other (e.g. gross commission
    /// not equal to agent + agency commission).
    InconsistentRow,
    /// The record itself could not be read (bad CSV quoting, wrong number of
    /// fields, invalid JSON or UTF-8).
    MalformedRecord,
    /// A `tenant_id` outside the rule of [`check_tenant_id`].
    InvalidTenantId,
    /// A streaming event naming a tenant other than its credential's.
    TenantMismatch,
    /// A streaming event that changes a row nobody sent (a cancellation of
    /// an unknown policy).
    UnknownKey,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::MissingValue => "missing_value",
            RejectCode::InvalidDate => "invalid_date",
            RejectCode::InvalidMoney => "invalid_money",
            RejectCode::MoneyPrecision => "money_precision",
            RejectCode::InvalidRate => "invalid_rate",
            RejectCode::InvalidEnum => "invalid_enum",
            RejectCode::DuplicateKeyConflict => "duplicate_key_conflict",
            RejectCode::InconsistentRow => "inconsistent_row",
            RejectCode::MalformedRecord => "malformed_record",
            RejectCode::InvalidTenantId => "invalid_tenant_id",
            RejectCode::TenantMismatch => "tenant_mismatch",
            RejectCode::UnknownKey => "unknown_key",
        }
    }
}

/// Longest tenant id accepted.
pub const TENANT_ID_MAX_LEN: usize = 64;

/// The rule for tenant ids, on every door that names a tenant (landing rows,
/// API keys, tokens): 1 to 64 ASCII letters, digits, `_`, `-` or `.`,
/// starting with a letter or digit. A tenant id is a directory name of the
/// lake (`tenant_id=<id>/`, the Delta partition value) and part of object
/// store paths, so `/`, `..`, `%`, `=` or spaces would otherwise reach a
/// path, or be escaped differently by different readers.
pub fn check_tenant_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if id.is_empty() || id.len() > TENANT_ID_MAX_LEN {
        return Err(format!("a tenant id has 1 to {TENANT_ID_MAX_LEN} characters"));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) || !id.chars().all(ok_char) {
        return Err("a tenant id is letters, digits, '_', '-' or '.', starting with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_required_columns_of_their_entity() {
        for e in Entity::ALL {
            for i in e.key_indices() {
                assert!(e.columns()[i].required, "{e}: key {} must be required", e.columns()[i].name);
            }
            assert_eq!(e.columns()[0].name, "tenant_id");
            assert_eq!(Entity::from_name(e.name()), Some(e));
        }
        assert_eq!(Entity::Commissions.key_indices(), vec![1]);
        assert_eq!(Entity::StatementLines.key_indices(), vec![1, 2]);
    }

    #[test]
    fn tenant_ids_are_safe_directory_names() {
        for ok in ["t1", "acme-west", "A.B_c-9", &"x".repeat(64)] {
            assert_eq!(check_tenant_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "..", ".hidden", "-x", "a/b", "a%2Fb", "a b", "a=b", "ü", "a~", &"x".repeat(65)] {
            assert!(check_tenant_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn schema_stores_money_as_decimal128() {
        let s = Entity::Commissions.schema();
        assert_eq!(s.field_with_name("gross_commission").unwrap().data_type(), &DataType::Decimal128(18, 2));
        assert_eq!(s.field_with_name("commission_rate").unwrap().data_type(), &DataType::Decimal128(12, 6));
        assert_eq!(s.field_with_name("transaction_date").unwrap().data_type(), &DataType::Date32);
        // The contract's columns, the row hash and the two stamp columns.
        assert_eq!(s.fields().len(), COMMISSIONS.len() + 3);
        assert_eq!(s.field_with_name(STAMP_AT_COLUMN).unwrap().data_type(), &DataType::Int64);
        assert!(s.field_with_name(STAMP_ID_COLUMN).unwrap().is_nullable());
        assert!(!s.field_with_name("policy_id").unwrap().is_nullable());
        assert!(s.field_with_name("paid_date").unwrap().is_nullable());
    }
}
