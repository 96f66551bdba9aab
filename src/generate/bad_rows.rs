//! Entity column specs and the bad-row classes planted in the landing files.
//!
//! Every bad row has exactly one defect. Copies get a fresh key (so the only
//! problem is the planted defect), except `duplicate_key_conflict` copies,
//! which keep the key and change one value validly.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::generate::rng::Rng;
use crate::generate::write::{fmt_cents, fmt_date};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    MissingValue = 0,
    InvalidDate = 1,
    InvalidMoney = 2,
    MoneyPrecision = 3,
    InvalidEnum = 4,
    DuplicateKeyConflict = 5,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::MissingValue,
        Reason::InvalidDate,
        Reason::InvalidMoney,
        Reason::MoneyPrecision,
        Reason::InvalidEnum,
        Reason::DuplicateKeyConflict,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingValue => "missing_value",
            Reason::InvalidDate => "invalid_date",
            Reason::InvalidMoney => "invalid_money",
            Reason::MoneyPrecision => "money_precision",
            Reason::InvalidEnum => "invalid_enum",
            Reason::DuplicateKeyConflict => "duplicate_key_conflict",
        }
    }

    pub fn from_code(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Tenant,
    Text,
    Date,
    /// `YYYY-MM`.
    Month,
    /// Money with no cross-column identity.
    Money,
    /// Money that takes part in gross = agent + agency.
    IdentityMoney,
    Rate,
    /// Closed enum: (valid values, invalid examples).
    Enum(&'static [&'static str], &'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
pub struct Col {
    pub required: bool,
    pub ty: Ty,
}

const fn req(ty: Ty) -> Col {
    Col { required: true, ty }
}
const fn opt(ty: Ty) -> Col {
    Col { required: false, ty }
}

/// How a corrupted copy gets a key of its own.
#[derive(Clone, Copy, Debug)]
pub enum Fresh {
    /// Rewrite the id column `"P-0001234"` as `"P-X000017"`.
    Id(usize),
    /// Set a key column to a value no valid row uses.
    Set(usize, &'static str),
}

pub struct EntitySpec {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub cols: &'static [Col],
    /// Columns of the key (tenant_id included).
    pub key: &'static [usize],
    pub fresh: Fresh,
    /// Column changed (validly) in a duplicate-key copy.
    pub dup_col: usize,
}

pub const ROLE: Ty = Ty::Enum(&["producer", "manager"], &["supervisor", "Producer?", "csr"]);
pub const AGENT_STATUS: Ty = Ty::Enum(&["active", "terminated"], &["on_leave", "ACTIVE?", "retired"]);
pub const SCHEDULE_KIND: Ty = Ty::Enum(&["new", "renewal"], &["renew", "NEW?", "first_year"]);
pub const POLICY_STATUS: Ty = Ty::Enum(&["active", "cancelled", "expired"], &["CANCELED?", "lapsed", "pending"]);
pub const COMMISSION_KIND: Ty =
    Ty::Enum(&["new", "renewal", "chargeback", "override", "adjustment"], &["renewed", "charge-back", "bonus"]);
pub const COMMISSION_STATUS: Ty = Ty::Enum(&["expected", "paid"], &["pending", "PAID?", "unpaid"]);

pub static AGENCIES: EntitySpec = EntitySpec {
    name: "agencies",
    columns: &["tenant_id", "agency_id", "name", "state"],
    cols: &[req(Ty::Tenant), req(Ty::Text), req(Ty::Text), opt(Ty::Text)],
    key: &[0, 1],
    fresh: Fresh::Id(1),
    dup_col: 2,
};

pub static AGENTS: EntitySpec = EntitySpec {
    name: "agents",
    columns: &[
        "tenant_id",
        "agent_id",
        "agency_id",
        "name",
        "role",
        "manager_id",
        "split_pct",
        "override_pct",
        "hire_date",
        "status",
        "termination_date",
    ],
    cols: &[
        req(Ty::Tenant),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(ROLE),
        opt(Ty::Text),
        opt(Ty::Rate),
        opt(Ty::Rate),
        opt(Ty::Date),
        opt(AGENT_STATUS),
        opt(Ty::Date),
    ],
    key: &[0, 1],
    fresh: Fresh::Id(1),
    dup_col: 3,
};

pub static CARRIERS: EntitySpec = EntitySpec {
    name: "carriers",
    columns: &["tenant_id", "carrier_id", "name"],
    cols: &[req(Ty::Tenant), req(Ty::Text), req(Ty::Text)],
    key: &[0, 1],
    fresh: Fresh::Id(1),
    dup_col: 2,
};

pub static SCHEDULES: EntitySpec = EntitySpec {
    name: "commission_schedules",
    columns: &["tenant_id", "carrier_id", "line_of_business", "kind", "rate", "effective_from", "effective_to"],
    cols: &[
        req(Ty::Tenant),
        req(Ty::Text),
        req(Ty::Text),
        req(SCHEDULE_KIND),
        req(Ty::Rate),
        req(Ty::Date),
        opt(Ty::Date),
    ],
    key: &[0, 1, 2, 3, 5],
    fresh: Fresh::Set(2, "inland_marine"),
    dup_col: 4,
};

pub static POLICIES: EntitySpec = EntitySpec {
    name: "policies",
    columns: &[
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
        "cancellation_date",
        "renewal_of",
        "source_system",
        "external_id",
    ],
    cols: &[
        req(Ty::Tenant),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Date),
        req(Ty::Date),
        req(Ty::Money),
        req(POLICY_STATUS),
        opt(Ty::Date),
        opt(Ty::Text),
        opt(Ty::Text),
        opt(Ty::Text),
    ],
    key: &[0, 1],
    fresh: Fresh::Id(1),
    dup_col: 10,
};

pub static COMMISSIONS: EntitySpec = EntitySpec {
    name: "commissions",
    columns: &[
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
        "status",
        "paid_date",
        "statement_id",
    ],
    cols: &[
        req(Ty::Tenant),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Date),
        req(COMMISSION_KIND),
        req(Ty::Money),
        req(Ty::Rate),
        req(Ty::IdentityMoney),
        req(Ty::IdentityMoney),
        req(Ty::IdentityMoney),
        opt(COMMISSION_STATUS),
        opt(Ty::Date),
        opt(Ty::Text),
    ],
    key: &[0, 1],
    fresh: Fresh::Id(1),
    dup_col: 5,
};

pub static STATEMENT_LINES: EntitySpec = EntitySpec {
    name: "statement_lines",
    columns: &[
        "tenant_id",
        "statement_id",
        "line_id",
        "carrier_id",
        "statement_date",
        "period",
        "policy_number",
        "commission_amount",
        "insured_name",
        "line_of_business",
        "premium",
        "kind",
    ],
    cols: &[
        req(Ty::Tenant),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Text),
        req(Ty::Date),
        req(Ty::Month),
        req(Ty::Text),
        req(Ty::Money),
        opt(Ty::Text),
        opt(Ty::Text),
        opt(Ty::Money),
        opt(Ty::Text),
    ],
    key: &[0, 1, 2],
    fresh: Fresh::Id(2),
    dup_col: 7,
};

/// All entities in landing order.
pub static ENTITIES: [&EntitySpec; 7] =
    [&AGENCIES, &AGENTS, &CARRIERS, &SCHEDULES, &POLICIES, &COMMISSIONS, &STATEMENT_LINES];

/// Columns of `fields` that can carry `reason`'s defect.
fn candidates(spec: &EntitySpec, fields: &[String], reason: Reason) -> Vec<usize> {
    spec.cols
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            let has = !fields[*i].is_empty();
            match reason {
                Reason::MissingValue => c.required && c.ty != Ty::Tenant && has,
                Reason::InvalidDate => has && matches!(c.ty, Ty::Date | Ty::Month),
                Reason::InvalidMoney => has && matches!(c.ty, Ty::Money | Ty::IdentityMoney),
                Reason::MoneyPrecision => has && c.ty == Ty::Money,
                Reason::InvalidEnum => has && matches!(c.ty, Ty::Enum(..)),
                Reason::DuplicateKeyConflict => false,
            }
        })
        .map(|(i, _)| i)
        .collect()
}

/// A reason applicable to this row, uniform over the applicable ones.
pub fn choose_reason(spec: &EntitySpec, fields: &[String], rng: &mut Rng) -> Reason {
    let mut ok: Vec<Reason> =
        Reason::ALL[..5].iter().copied().filter(|r| !candidates(spec, fields, *r).is_empty()).collect();
    ok.push(Reason::DuplicateKeyConflict);
    ok[rng.index(ok.len())]
}

/// Gives a copy its own key.
pub fn fresh_key(spec: &EntitySpec, fields: &mut [String], n: u64) {
    match spec.fresh {
        Fresh::Id(c) => {
            let prefix = match fields[c].find('-') {
                Some(p) => fields[c][..=p].to_string(),
                None => String::new(),
            };
            fields[c] = format!("{prefix}X{n:06}");
        }
        Fresh::Set(c, v) => fields[c] = v.to_string(),
    }
}

/// Plants exactly one defect of class `reason` into `fields`.
pub fn corrupt(spec: &EntitySpec, fields: &mut [String], reason: Reason, rng: &mut Rng) {
    let cands = candidates(spec, fields, reason);
    let c = cands[rng.index(cands.len())];
    let v = fields[c].clone();
    fields[c] = match reason {
        Reason::MissingValue => String::new(),
        Reason::InvalidDate => match spec.cols[c].ty {
            Ty::Month => {
                let (y, m) = (&v[0..4], &v[5..7]);
                match rng.index(3) {
                    0 => format!("{y}-13"),
                    1 => format!("{m}/{y}"),
                    _ => format!("{y}-00"),
                }
            }
            _ => {
                let (y, m, d) = (&v[0..4], &v[5..7], &v[8..10]);
                match rng.index(4) {
                    0 => format!("{y}-13-{d}"),
                    1 => format!("{m}/{d}/{y}"),
                    2 => format!("{y}-{m}-32"),
                    _ => format!("{y}-02-30"),
                }
            }
        },
        Reason::InvalidMoney => match rng.index(3) {
            0 => format!("{}x", v.replace('.', ",")),
            1 => "abc".to_string(),
            _ => format!("{}e-2", v.replace('.', "")),
        },
        Reason::MoneyPrecision => format!("{v}{}", 1 + rng.index(9)),
        Reason::InvalidEnum => match spec.cols[c].ty {
            Ty::Enum(_, bad) => bad[rng.index(bad.len())].to_string(),
            _ => unreachable!("enum column"),
        },
        Reason::DuplicateKeyConflict => unreachable!("handled by duplicate_conflict"),
    };
}

/// A copy with the same key and one value changed (still valid).
pub fn duplicate_conflict(spec: &EntitySpec, fields: &[String]) -> Vec<String> {
    let mut copy = fields.to_vec();
    let c = spec.dup_col;
    let v = &fields[c];
    copy[c] = match spec.cols[c].ty {
        Ty::Date => {
            let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").expect("valid date");
            fmt_date(d + chrono::Duration::days(1))
        }
        Ty::Money | Ty::IdentityMoney => {
            let d = Decimal::from_str(v).expect("valid money") + Decimal::ONE;
            let mut cents = d * Decimal::ONE_HUNDRED;
            cents.rescale(0);
            fmt_cents(i64::try_from(cents.mantissa()).expect("fits"))
        }
        Ty::Rate => {
            let d = Decimal::from_str(v).expect("valid rate") + Decimal::new(1, 3);
            d.normalize().to_string()
        }
        _ => format!("{v} II"),
    };
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator writes from its own column specs; they must say what
    /// the contract module says, so that the two cannot drift apart.
    #[test]
    fn specs_agree_with_the_contract() {
        use crate::contract::{Entity, Kind};
        let specs = [&AGENCIES, &AGENTS, &CARRIERS, &SCHEDULES, &POLICIES, &COMMISSIONS, &STATEMENT_LINES];
        for spec in specs {
            let entity = Entity::from_name(spec.name).expect("a contract entity");
            let contract = entity.columns();
            let names: Vec<&str> = contract.iter().map(|c| c.name).collect();
            assert_eq!(spec.columns, names.as_slice(), "{}", spec.name);
            for ((col, c), name) in spec.cols.iter().zip(contract).zip(&names) {
                assert_eq!(col.required, c.required, "{}.{name}", spec.name);
                if let (Ty::Enum(valid, invalid), Kind::Enum(allowed)) = (col.ty, c.kind) {
                    assert_eq!(valid, allowed, "{}.{name}", spec.name);
                    assert!(invalid.iter().all(|v| !allowed.iter().any(|a| a.eq_ignore_ascii_case(v))));
                }
                assert_eq!(matches!(col.ty, Ty::Enum(..)), matches!(c.kind, Kind::Enum(_)), "{}.{name}", spec.name);
            }
            let mut key: Vec<usize> = vec![0];
            key.extend(entity.key_indices());
            assert_eq!(spec.key, key.as_slice(), "{}", spec.name);
        }
    }

    fn row(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn duplicate_copy_changes_one_value_validly() {
        let r = row(&[
            "t-acme",
            "CM-1",
            "P-1",
            "AG-1",
            "C-1",
            "2023-12-31",
            "new",
            "100.00",
            "0.1",
            "10.00",
            "4.00",
            "6.00",
            "paid",
            "2024-01-20",
            "ST-1",
        ]);
        let c = duplicate_conflict(&COMMISSIONS, &r);
        assert_eq!(c[5], "2024-01-01");
        assert_eq!(c[..5], r[..5]);
        assert_eq!(c[6..], r[6..]);
        let p = row(&[
            "t",
            "P-1",
            "N",
            "A",
            "AG",
            "C",
            "CU",
            "auto",
            "2023-01-01",
            "2023-07-01",
            "-0.50",
            "active",
            "",
            "",
            "",
            "",
        ]);
        assert_eq!(duplicate_conflict(&POLICIES, &p)[10], "0.50");
        let s = row(&["t", "C-1", "auto", "new", "0.125", "2020-01-01", ""]);
        assert_eq!(duplicate_conflict(&SCHEDULES, &s)[4], "0.126");
    }

    #[test]
    fn fresh_keys_and_single_defects() {
        let mut r = row(&["t-acme", "P-0001234", "x"]);
        fresh_key(&CARRIERS, &mut r, 17);
        assert_eq!(r[1], "P-X000017");
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let mut p = row(&[
                "t",
                "P-1",
                "N",
                "A",
                "AG",
                "C",
                "CU",
                "auto",
                "2023-01-05",
                "2023-07-05",
                "530.00",
                "active",
                "",
                "",
                "",
                "",
            ]);
            let orig = p.clone();
            let reason = choose_reason(&POLICIES, &p, &mut rng);
            if reason == Reason::DuplicateKeyConflict {
                continue;
            }
            corrupt(&POLICIES, &mut p, reason, &mut rng);
            let changed: Vec<usize> = (0..p.len()).filter(|&i| p[i] != orig[i]).collect();
            assert_eq!(changed.len(), 1, "{reason:?} {p:?}");
            let i = changed[0];
            match reason {
                Reason::MissingValue => assert_eq!(p[i], ""),
                Reason::InvalidDate => {
                    assert!(NaiveDate::parse_from_str(&p[i], "%Y-%m-%d").is_err())
                }
                Reason::InvalidMoney => {
                    assert!(Decimal::from_str(&p[i]).is_err() || p[i].contains('e'))
                }
                Reason::MoneyPrecision => assert_eq!(p[i].len(), "530.005".len()),
                Reason::InvalidEnum => {
                    assert!(!["active", "cancelled", "expired"].contains(&p[i].as_str()))
                }
                Reason::DuplicateKeyConflict => unreachable!(),
            }
        }
    }
}
