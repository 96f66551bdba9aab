//! The monthly summary some agencies keep instead of row data: one JSON
//! document per month (`POST /ingest/summary` takes it, `GET
//! /export/commissions` gives it back from the lake).
//!
//! ```json
//! {"month": "2026-03",
//!  "metadata": {"total_gp": "1500.00", "total_transactions": 4, "commission_pct": "0.12"},
//!  "agents":   [{"name": "Ann Lee", "type": "active", "gp": "1000.00", "deals": 3, "commission": "120.00"}],
//!  "managers": [{"name": "Meg Ito", "type": "active", "gp": "0.00", "deals": 0, "commission": "15.00"}]}
//! ```
//!
//! `gp` is the gross premium a person wrote in the month, `deals` the
//! number of policies (transactions) behind it, `commission` what the
//! person earned in the month (for a manager: the override). `type` is the
//! person's standing, `active` or `terminated`. Money and rates are JSON
//! strings or numbers, read from their text (never through a binary float)
//! with the contract's rules: money at most 2 fraction digits, rates at
//! most 6, no exponent. `commission_pct` is a fraction like the contract's
//! other rates (`0.125` = 12.5 %): the agents' commission on their deals
//! over the month's gp, i.e. the contract's average commission rate.
//!
//! A document with any problem is refused whole, every problem named by
//! its field (a month with one agent missing would land totals that look
//! right and are not); what is doubtful but possible (totals off the
//! metadata, many terminations, negative amounts) lands with a warning.

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::values::{parse_cell, parse_month};
use super::{Kind, MONEY_SCALE, RATE_SCALE, RejectCode};

/// Deals in one summary, over all people: each lands as a policy and a
/// commission row, so this bounds one import at about 40,000 events.
pub const MAX_DEALS: u64 = 20_000;
/// People (agents and managers) in one summary.
pub const MAX_PEOPLE: usize = 5_000;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// How far `commission_pct` may be from the figures before a warning:
/// half a percentage point, the rounding of a rate written as whole
/// percents.
pub const COMMISSION_PCT_TOLERANCE: Decimal = Decimal::from_parts(5, 0, 0, false, 3);
/// The share of terminated people above which a summary gets a warning.
pub const TERMINATION_RATE_WARNING: Decimal = Decimal::from_parts(20, 0, 0, false, 2);

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    /// `YYYY-MM`, exactly.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = parse_month(s)?;
        NaiveDate::from_ymd_opt(y, m, 1).map(|first| Month { first })
    }

    pub fn first_day(self) -> NaiveDate {
        self.first
    }

    /// The first day of the next month: the month is `[first_day, next_first_day)`.
    pub fn next_first_day(self) -> NaiveDate {
        self.first + Months::new(1)
    }

    pub fn last_day(self) -> NaiveDate {
        self.next_first_day().pred_opt().expect("a month has a last day")
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A person's standing in the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    Active,
    Terminated,
}

impl Standing {
    const NAMES: &'static [&'static str] = &["active", "terminated"];
}

/// One agent or manager of the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub name: String,
    #[serde(rename = "type")]
    pub standing: Standing,
    /// Exact, 2 fraction digits.
    pub gp: Decimal,
    pub deals: u64,
    /// Exact, 2 fraction digits. A manager's is the override.
    pub commission: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    pub total_gp: Decimal,
    pub total_transactions: u64,
    /// A fraction; `None` (JSON null) when there is no gp to divide by.
    pub commission_pct: Option<Decimal>,
}

impl Metadata {
    /// The metadata the figures imply: `deal_commission` is the commission
    /// on the month's deals (gross commission of `new` and `renewal` rows),
    /// the rate rounded to 6 fraction digits and written without trailing
    /// zeros (`0.12`, not `0.120000`).
    pub fn of(total_gp: Decimal, total_transactions: u64, deal_commission: Decimal) -> Metadata {
        let total_gp = money(total_gp);
        Metadata { total_gp, total_transactions, commission_pct: commission_pct(deal_commission, total_gp) }
    }
}

/// `d` written with the contract's 2 fraction digits (a sum of nothing is
/// `0.00`, not `0`).
pub fn money(mut d: Decimal) -> Decimal {
    d.rescale(MONEY_SCALE as u32);
    d
}

/// `commission / gp` as the summary writes it; `None` when gp is 0.
pub fn commission_pct(commission: Decimal, gp: Decimal) -> Option<Decimal> {
    (!gp.is_zero()).then(|| {
        (commission / gp).round_dp_with_strategy(RATE_SCALE as u32, RoundingStrategy::MidpointAwayFromZero).normalize()
    })
}

/// A month's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub month: Month,
    pub metadata: Metadata,
    pub agents: Vec<Person>,
    pub managers: Vec<Person>,
}

/// What is wrong with one field of a refused document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `month`, `metadata.total_gp`, `agents[2].gp`, …
    pub field: String,
    /// Stable: the contract's reject codes (`missing_value`,
    /// `invalid_money`, `money_precision`, `invalid_rate`, `invalid_enum`,
    /// `tenant_mismatch`) and [`codes`].
    pub code: &'static str,
    pub message: String,
}

/// Problem and warning codes of the summary itself.
pub mod codes {
    /// The body is not a JSON object at all.
    pub const MALFORMED_BODY: &str = "malformed_body";
    /// The body is an object with problems in its fields.
    pub const INVALID_SUMMARY: &str = "invalid_summary";
    pub const INVALID_MONTH: &str = "invalid_month";
    /// A field of the wrong JSON type (`agents` not an array, …).
    pub const WRONG_TYPE: &str = "wrong_type";
    /// `deals` or `total_transactions` not a whole number 0 or more.
    pub const INVALID_COUNT: &str = "invalid_count";
    /// A name that is empty, too long, or without a letter or digit.
    pub const INVALID_NAME: &str = "invalid_name";
    /// Two entries naming the same person (same name up to case,
    /// spacing and punctuation).
    pub const DUPLICATE_NAME: &str = "duplicate_name";
    /// Values that cannot land together (gp with no deal to carry it).
    pub const INCONSISTENT_VALUES: &str = "inconsistent_values";
    /// More than [`super::MAX_DEALS`] deals or [`super::MAX_PEOPLE`] people.
    pub const TOO_MANY_ROWS: &str = "too_many_rows";

    // Warnings.
    pub const TOTAL_GP_MISMATCH: &str = "total_gp_mismatch";
    pub const TOTAL_TRANSACTIONS_MISMATCH: &str = "total_transactions_mismatch";
    pub const COMMISSION_PCT_MISMATCH: &str = "commission_pct_mismatch";
    pub const TERMINATION_RATE_HIGH: &str = "termination_rate_high";
    pub const NEGATIVE_VALUE: &str = "negative_value";
    /// Commission with no deal: it lands without a policy, so it counts
    /// for the person and the tenant but for no agency.
    pub const COMMISSION_WITHOUT_DEALS: &str = "commission_without_deals";
}

/// Why a document was refused: [`codes::MALFORMED_BODY`] or
/// [`codes::INVALID_SUMMARY`], and each problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub problems: Vec<Problem>,
}

/// Something doubtful in a document that landed anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

// The document as sent: every field optional and raw, so that each
// problem can be named rather than failing the whole parse.
#[derive(Deserialize)]
struct RawDoc {
    tenant_id: Option<Box<RawValue>>,
    month: Option<Box<RawValue>>,
    metadata: Option<Box<RawValue>>,
    agents: Option<Box<RawValue>>,
    managers: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RawMetadata {
    total_gp: Option<Box<RawValue>>,
    total_transactions: Option<Box<RawValue>>,
    commission_pct: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RawPerson {
    name: Option<Box<RawValue>>,
    #[serde(rename = "type")]
    standing: Option<Box<RawValue>>,
    gp: Option<Box<RawValue>>,
    deals: Option<Box<RawValue>>,
    commission: Option<Box<RawValue>>,
}

/// A JSON scalar by its text: a string's content, or a number's literal
/// text (exactly as sent: `1000.10` stays `1000.10`).
enum Scalar<'a> {
    Text(String),
    Number(&'a str),
    Other,
}

fn scalar(raw: &RawValue) -> Scalar<'_> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).map(Scalar::Text).unwrap_or(Scalar::Other);
    }
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Scalar::Number(text);
    }
    Scalar::Other
}

/// Collects the problems of one document.
struct Reader {
    problems: Vec<Problem>,
}

impl Reader {
    fn problem(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.problems.push(Problem { field: field.to_string(), code, message: format!("{field}: {}", message.into()) });
    }

    fn required<'a>(&mut self, field: &str, raw: &'a Option<Box<RawValue>>) -> Option<&'a RawValue> {
        if raw.is_none() {
            self.problem(field, RejectCode::MissingValue.as_str(), "is required");
        }
        raw.as_deref()
    }

    /// Money or a rate (`kind`), from a JSON string or number.
    fn decimal(&mut self, field: &str, raw: &RawValue, kind: Kind) -> Option<Decimal> {
        let text = match scalar(raw) {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
            Scalar::Other => {
                let code = if kind == Kind::Money { RejectCode::InvalidMoney } else { RejectCode::InvalidRate };
                self.problem(field, code.as_str(), "must be a decimal number or a string holding one");
                return None;
            }
        };
        let text = text.trim();
        if text.is_empty() {
            self.problem(field, RejectCode::MissingValue.as_str(), "is required");
            return None;
        }
        match parse_cell(kind, text) {
            // Money keeps its 2 fraction digits; a rate is written as sent
            // (`0.12`, not `0.120000`).
            Ok(super::values::Value::Decimal(m)) if kind == Kind::Money => {
                Some(Decimal::from_i128_with_scale(m, MONEY_SCALE as u32))
            }
            Ok(super::values::Value::Decimal(m)) => {
                Some(Decimal::from_i128_with_scale(m, RATE_SCALE as u32).normalize())
            }
            Ok(_) => unreachable!("money and rates parse to decimals"),
            Err((code, why)) => {
                self.problem(field, code.as_str(), why);
                None
            }
        }
    }

    /// A whole number, 0 or more, from a JSON number or string.
    fn count(&mut self, field: &str, raw: &RawValue) -> Option<u64> {
        let text = match scalar(raw) {
            Scalar::Text(s) => s.trim().to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Other => raw.get().to_string(),
        };
        match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                self.problem(field, codes::INVALID_COUNT, format!("'{text}' is not a whole number 0 or more"));
                None
            }
        }
    }

    fn text(&mut self, field: &str, raw: &RawValue) -> Option<String> {
        match scalar(raw) {
            Scalar::Text(s) => Some(s.trim().to_string()),
            _ => {
                self.problem(field, codes::WRONG_TYPE, "must be a string");
                None
            }
        }
    }

    fn array(&mut self, field: &str, raw: &RawValue) -> Vec<Box<RawValue>> {
        serde_json::from_str(raw.get()).unwrap_or_else(|_| {
            self.problem(field, codes::WRONG_TYPE, "must be an array of {name, type, gp, deals, commission}");
            Vec::new()
        })
    }

    fn person(&mut self, field: &str, raw: &RawValue) -> Option<Person> {
        let p: RawPerson = match serde_json::from_str(raw.get()) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("must be an object {{name, type, gp, deals, commission}} ({e})");
                self.problem(field, codes::WRONG_TYPE, why);
                return None;
            }
        };
        let name =
            self.required(&format!("{field}.name"), &p.name).and_then(|r| self.text(&format!("{field}.name"), r));
        let name = name.filter(|n| {
            let f = format!("{field}.name");
            if n.chars().count() > MAX_NAME_CHARS {
                self.problem(&f, codes::INVALID_NAME, format!("is longer than {MAX_NAME_CHARS} characters"));
                false
            } else if slug(n).is_empty() {
                self.problem(&f, codes::INVALID_NAME, format!("'{n}' has no letter or digit"));
                false
            } else {
                true
            }
        });
        let f = format!("{field}.type");
        let standing = match p.standing.as_deref() {
            None => Some(Standing::Active),
            Some(raw) => self.text(&f, raw).and_then(|t| match t.to_ascii_lowercase().as_str() {
                "active" => Some(Standing::Active),
                "terminated" => Some(Standing::Terminated),
                _ => {
                    let why = format!("'{t}' is not one of {}", Standing::NAMES.join("|"));
                    self.problem(&f, RejectCode::InvalidEnum.as_str(), why);
                    None
                }
            }),
        };
        let amount = |r: &mut Self, name: &str, raw: &Option<Box<RawValue>>| {
            let f = format!("{field}.{name}");
            r.required(&f, raw).and_then(|v| r.decimal(&f, v, Kind::Money))
        };
        let gp = amount(self, "gp", &p.gp);
        let commission = amount(self, "commission", &p.commission);
        let f = format!("{field}.deals");
        let deals = self.required(&f, &p.deals).and_then(|v| self.count(&f, v));
        if let (Some(gp), Some(0)) = (gp, deals)
            && !gp.is_zero()
        {
            let why = format!("gp {gp} with 0 deals: premium is written by deals, each carrying its share");
            self.problem(&format!("{field}.gp"), codes::INCONSISTENT_VALUES, why);
            return None;
        }
        Some(Person { name: name?, standing: standing?, gp: gp?, deals: deals?, commission: commission? })
    }
}

impl Summary {
    /// Read a document sent with a credential of `tenant`.
    pub fn parse(text: &str, tenant: &str) -> Result<Summary, Refused> {
        let malformed = |why: String| Refused {
            reason: codes::MALFORMED_BODY,
            problems: vec![Problem {
                field: String::new(),
                code: codes::MALFORMED_BODY,
                message: format!("the body must be a JSON object {{month, metadata, agents, managers}}: {why}"),
            }],
        };
        // An array would otherwise read as the object's fields in order.
        if !text.trim_start().starts_with('{') {
            return Err(malformed("it does not start with '{'".into()));
        }
        let doc: RawDoc = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let mut r = Reader { problems: Vec::new() };
        if let Some(raw) = doc.tenant_id.as_deref()
            && let Some(t) = r.text("tenant_id", raw)
            && t != tenant
        {
            let why = format!("the summary names tenant '{t}', not the credential's");
            r.problem("tenant_id", RejectCode::TenantMismatch.as_str(), why);
        }
        let month = r.required("month", &doc.month).and_then(|raw| r.text("month", raw)).and_then(|m| {
            let parsed = Month::parse(&m);
            if parsed.is_none() {
                r.problem("month", codes::INVALID_MONTH, format!("'{m}' is not a month YYYY-MM"));
            }
            parsed
        });
        let metadata = r.required("metadata", &doc.metadata).and_then(|raw| {
            let m: RawMetadata = match serde_json::from_str(raw.get()) {
                Ok(m) => m,
                Err(e) => {
                    let why = format!("must be an object {{total_gp, total_transactions, commission_pct}} ({e})");
                    r.problem("metadata", codes::WRONG_TYPE, why);
                    return None;
                }
            };
            let gp = r
                .required("metadata.total_gp", &m.total_gp)
                .and_then(|v| r.decimal("metadata.total_gp", v, Kind::Money));
            let deals = r
                .required("metadata.total_transactions", &m.total_transactions)
                .and_then(|v| r.count("metadata.total_transactions", v));
            // Optional: null when the agency had no premium to divide by.
            let pct = match m.commission_pct.as_deref() {
                None => Some(None),
                Some(v) => r.decimal("metadata.commission_pct", v, Kind::Rate).map(Some),
            };
            Some(Metadata { total_gp: gp?, total_transactions: deals?, commission_pct: pct? })
        });
        let agents_raw = r.required("agents", &doc.agents);
        let mut people = |list: &str, raw: Option<&RawValue>| -> Vec<Option<Person>> {
            let Some(raw) = raw else { return Vec::new() };
            let items = r.array(list, raw);
            items.iter().enumerate().map(|(i, p)| r.person(&format!("{list}[{i}]"), p)).collect()
        };
        let agents = people("agents", agents_raw);
        let managers = people("managers", doc.managers.as_deref());
        // One person, one entry: names that slug alike are the same agent.
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let named = agents.iter().enumerate().map(|(i, p)| (format!("agents[{i}]"), p));
        let named = named.chain(managers.iter().enumerate().map(|(i, p)| (format!("managers[{i}]"), p)));
        for (field, p) in named.collect::<Vec<_>>() {
            let Some(p) = p else { continue };
            if let Some(first) = seen.insert(slug(&p.name), field.clone()) {
                let why = format!(
                    "'{}' is the same person as {first} (names are compared without case and punctuation)",
                    p.name
                );
                r.problem(&format!("{field}.name"), codes::DUPLICATE_NAME, why);
            }
        }
        let everyone = agents.len() + managers.len();
        if everyone > MAX_PEOPLE {
            r.problem("agents", codes::TOO_MANY_ROWS, format!("{everyone} people; at most {MAX_PEOPLE} per summary"));
        }
        let deals: u64 = agents.iter().chain(&managers).flatten().map(|p| p.deals).sum();
        if deals > MAX_DEALS {
            r.problem("agents", codes::TOO_MANY_ROWS, format!("{deals} deals; at most {MAX_DEALS} per summary"));
        }
        if !r.problems.is_empty() {
            return Err(Refused { reason: codes::INVALID_SUMMARY, problems: r.problems });
        }
        let all = |v: Vec<Option<Person>>| v.into_iter().map(|p| p.expect("no problems: every person read")).collect();
        Ok(Summary {
            month: month.expect("no problems: a month"),
            metadata: metadata.expect("no problems: metadata"),
            agents: all(agents),
            managers: all(managers),
        })
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.agents.iter().chain(&self.managers)
    }

    /// Everyone's commission: what the month pays agents and managers.
    pub fn total_commission(&self) -> Decimal {
        money(self.people().map(|p| p.commission).sum())
    }

    /// The metadata the people's figures imply (what an export of the
    /// landed month recomputes): agents' commission on deals counts toward
    /// the rate; a manager's is an override, paid out of the agency's
    /// share, not commission on the deals.
    pub fn implied_metadata(&self) -> Metadata {
        let gp = self.people().map(|p| p.gp).sum();
        let deals = self.people().map(|p| p.deals).sum();
        let on_deals = self.agents.iter().filter(|p| p.deals > 0).map(|p| p.commission).sum();
        Metadata::of(gp, deals, on_deals)
    }

    /// What is doubtful but landed: totals off the metadata, the
    /// commission rate off `commission_pct`, a termination rate above
    /// [`TERMINATION_RATE_WARNING`], negative amounts, commission that no
    /// deal carries.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut warn = |code, field: &str, message: String| {
            out.push(Warning { code, field: field.to_string(), message: format!("{field}: {message}") })
        };
        let (given, implied) = (&self.metadata, self.implied_metadata());
        if given.total_gp != implied.total_gp {
            let why = format!("is {}, the agents' and managers' gp add up to {}", given.total_gp, implied.total_gp);
            warn(codes::TOTAL_GP_MISMATCH, "metadata.total_gp", why);
        }
        if given.total_transactions != implied.total_transactions {
            let why = format!(
                "is {}, the agents' and managers' deals add up to {}",
                given.total_transactions, implied.total_transactions
            );
            warn(codes::TOTAL_TRANSACTIONS_MISMATCH, "metadata.total_transactions", why);
        }
        if let (Some(pct), Some(actual)) = (given.commission_pct, implied.commission_pct)
            && (pct - actual).abs() > COMMISSION_PCT_TOLERANCE
        {
            let mut why = format!(
                "is {pct}, the agents' commission on deals over gp is {actual} (tolerance {COMMISSION_PCT_TOLERANCE})"
            );
            if pct > Decimal::ONE {
                why.push_str("; commission_pct is a fraction: 0.125 means 12.5 %");
            }
            warn(codes::COMMISSION_PCT_MISMATCH, "metadata.commission_pct", why);
        }
        let everyone = self.people().count();
        let terminated = self.people().filter(|p| p.standing == Standing::Terminated).count();
        if everyone > 0 {
            let rate = Decimal::from(terminated) / Decimal::from(everyone);
            if rate > TERMINATION_RATE_WARNING {
                let why = format!(
                    "{terminated} of {everyone} people are terminated ({} %), above {} %",
                    (rate * Decimal::ONE_HUNDRED).round_dp(1).normalize(),
                    (TERMINATION_RATE_WARNING * Decimal::ONE_HUNDRED).normalize()
                );
                warn(codes::TERMINATION_RATE_HIGH, "agents", why);
            }
        }
        for (list, people) in [("agents", &self.agents), ("managers", &self.managers)] {
            for (i, p) in people.iter().enumerate() {
                for (name, v) in [("gp", p.gp), ("commission", p.commission)] {
                    if v.is_sign_negative() && !v.is_zero() {
                        warn(codes::NEGATIVE_VALUE, &format!("{list}[{i}].{name}"), format!("{v} is negative"));
                    }
                }
                if list == "agents" && p.deals == 0 && !p.commission.is_zero() {
                    let why = format!(
                        "{} with 0 deals lands as an adjustment without a policy: it counts for {} and the \
                         tenant, not for an agency",
                        p.commission, p.name
                    );
                    warn(codes::COMMISSION_WITHOUT_DEALS, &format!("{list}[{i}].commission"), why);
                }
            }
        }
        out
    }
}

/// The part of a name that identifies its person: lower case, letters and
/// digits (any script), every other run of characters one `-`. "Ann Lee",
/// "ann  lee" and "Ann-Lee" are one person.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(agents: &str) -> String {
        format!(
            r#"{{"month": "2026-03", "metadata": {{"total_gp": "1000.00", "total_transactions": 3,
                 "commission_pct": 0.12}}, "agents": {agents}}}"#
        )
    }

    #[test]
    fn money_is_read_from_its_text_as_string_or_number() {
        let s = Summary::parse(
            &doc(r#"[{"name": " Ann Lee ", "type": "Active", "gp": 1000.10, "deals": "3", "commission": "120.5"}]"#),
            "t1",
        )
        .unwrap();
        assert_eq!(s.month.to_string(), "2026-03");
        assert_eq!(
            (s.month.first_day().to_string(), s.month.last_day().to_string()),
            ("2026-03-01".into(), "2026-03-31".into())
        );
        let ann = &s.agents[0];
        assert_eq!((ann.name.as_str(), ann.standing, ann.deals), ("Ann Lee", Standing::Active, 3));
        // Scale 2 from the text: "1000.10" and "120.50", never a float.
        assert_eq!((ann.gp.to_string(), ann.commission.to_string()), ("1000.10".into(), "120.50".into()));
        assert_eq!(s.metadata.commission_pct.unwrap().to_string(), "0.12");
        assert!(s.managers.is_empty());
        // A number too precise for a float survives: 16 digits and cents.
        let s =
            Summary::parse(&doc(r#"[{"name": "A", "gp": 1234567890123456.78, "deals": 1, "commission": 0.01}]"#), "t1")
                .unwrap();
        assert_eq!(s.agents[0].gp.to_string(), "1234567890123456.78");
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let body = r#"{"month": "2026-13", "tenant_id": "t2", "metadata": {"total_gp": "1e3", "total_transactions": -1},
            "agents": [{"name": "Ann", "type": "retired", "gp": "10.005", "deals": 1.5, "commission": true},
                       {"name": "ANN", "gp": "5.00", "deals": 0, "commission": "0"},
                       {"name": "!!", "gp": "0", "deals": 0, "commission": "0"},
                       "Bob"],
            "managers": {"name": "Meg"}}"#;
        let r = Summary::parse(body, "t1").unwrap_err();
        assert_eq!(r.reason, codes::INVALID_SUMMARY);
        let got: Vec<(&str, &str)> = r.problems.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            got,
            vec![
                ("tenant_id", "tenant_mismatch"),
                ("month", "invalid_month"),
                ("metadata.total_gp", "invalid_money"),
                ("metadata.total_transactions", "invalid_count"),
                ("agents[0].type", "invalid_enum"),
                ("agents[0].gp", "money_precision"),
                ("agents[0].commission", "invalid_money"),
                ("agents[0].deals", "invalid_count"),
                ("agents[1].gp", "inconsistent_values"),
                ("agents[2].name", "invalid_name"),
                ("agents[3]", "wrong_type"),
                ("managers", "wrong_type"),
            ]
        );
        assert_eq!(r.problems[5].message, "agents[0].gp: '10.005' has more than 2 fraction digits");
        assert_eq!(r.problems[2].message, "metadata.total_gp: '1e3' is in exponent form");
        // Missing pieces, and the same person twice.
        let r = Summary::parse(
            r#"{"agents": [{"name": "Ann Lee", "gp": "1", "deals": 1, "commission": "0"}],
            "managers": [{"name": "ann-lee", "gp": "0", "deals": 0}]}"#,
            "t1",
        )
        .unwrap_err();
        let got: Vec<(&str, &str)> = r.problems.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            got,
            vec![
                ("month", "missing_value"),
                ("metadata", "missing_value"),
                ("managers[0].commission", "missing_value"),
            ]
        );
        let r = Summary::parse(
            &doc(r#"[{"name": "Ann Lee", "gp": "1", "deals": 1, "commission": "0"},
            {"name": "ann  LEE", "gp": "1", "deals": 1, "commission": "0"}]"#),
            "t1",
        )
        .unwrap_err();
        assert_eq!((r.problems[0].field.as_str(), r.problems[0].code), ("agents[1].name", "duplicate_name"));
        assert_eq!(Summary::parse("[1]", "t1").unwrap_err().reason, codes::MALFORMED_BODY);
        assert_eq!(Summary::parse("{\"month\": ", "t1").unwrap_err().reason, codes::MALFORMED_BODY);
    }

    #[test]
    fn warnings_compare_the_people_with_the_metadata() {
        // gp 600 + 300 + 0 = 900 (metadata says 1000.00); deals 2 + 1 + 0 = 3 (as stated);
        // commission on deals 60 + 33 = 93 over 900 = 0.103333 vs 0.12: off by 0.0167 > 0.005.
        // Terminated 1 of 4 = 25 % > 20 %. Cat: -5.00 commission with 0 deals.
        let s = Summary::parse(
            r#"{"month": "2026-03", "metadata": {"total_gp": "1000.00", "total_transactions": 3, "commission_pct": "0.12"},
                "agents": [{"name": "Ann", "gp": "600.00", "deals": 2, "commission": "60.00"},
                           {"name": "Bob", "type": "terminated", "gp": "300.00", "deals": 1, "commission": "33.00"},
                           {"name": "Cat", "gp": "0", "deals": 0, "commission": "-5.00"}],
                "managers": [{"name": "Meg", "gp": "0", "deals": 0, "commission": "9.30"}]}"#,
            "t1",
        )
        .unwrap();
        let implied = s.implied_metadata();
        assert_eq!(implied.total_gp.to_string(), "900.00");
        assert_eq!(implied.commission_pct.unwrap().to_string(), "0.103333");
        assert_eq!(s.total_commission().to_string(), "97.30"); // 60 + 33 - 5 + 9.30
        let w: Vec<(&str, String)> = s.warnings().into_iter().map(|w| (w.code, w.message)).collect();
        assert_eq!(
            w,
            vec![
                (
                    "total_gp_mismatch",
                    "metadata.total_gp: is 1000.00, the agents' and managers' gp add up to 900.00".into()
                ),
                (
                    "commission_pct_mismatch",
                    "metadata.commission_pct: is 0.12, the agents' commission on deals over gp is 0.103333 \
                     (tolerance 0.005)"
                        .into()
                ),
                ("termination_rate_high", "agents: 1 of 4 people are terminated (25 %), above 20 %".into()),
                ("negative_value", "agents[2].commission: -5.00 is negative".into()),
                (
                    "commission_without_deals",
                    "agents[2].commission: -5.00 with 0 deals lands as an adjustment without a policy: it counts \
                     for Cat and the tenant, not for an agency"
                        .into()
                ),
            ]
        );
        // Within the tolerance and consistent: no warning. 93 / 900 = 0.103333; 0.10 is 0.0033 off.
        let ok = Summary {
            metadata: Metadata { commission_pct: Some(Decimal::new(10, 2)), ..implied.clone() },
            ..s.clone()
        };
        let ok = Summary { agents: ok.agents[..2].to_vec(), ..ok };
        let codes: Vec<&str> = ok.warnings().iter().map(|w| w.code).collect();
        assert_eq!(codes, vec!["termination_rate_high"]); // 1 of 3 terminated
        // A percent where a fraction belongs gets the hint.
        let pct = Summary { metadata: Metadata { commission_pct: Some(Decimal::new(12, 0)), ..implied }, ..s };
        assert!(
            pct.warnings()[0].message.ends_with("commission_pct is a fraction: 0.125 means 12.5 %"),
            "{:?}",
            pct.warnings()
        );
    }

    #[test]
    fn slugs_ignore_case_spacing_and_punctuation() {
        assert_eq!(slug("Ann Lee"), "ann-lee");
        assert_eq!(slug("  ann   LEE! "), "ann-lee");
        assert_eq!(slug("José Núñez-Ortiz"), "josé-núñez-ortiz");
        assert_eq!(slug("O'Brien, Pat"), "o-brien-pat");
        assert_eq!(slug("--"), "");
    }

    #[test]
    fn the_rate_is_rounded_to_six_digits_without_trailing_zeros() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(commission_pct(d("120.00"), d("1000.00")), Some(d("0.12")));
        assert_eq!(commission_pct(d("120.00"), d("1000.00")).unwrap().to_string(), "0.12");
        assert_eq!(commission_pct(d("1.00"), d("3.00")).unwrap().to_string(), "0.333333");
        assert_eq!(commission_pct(d("2.00"), d("3.00")).unwrap().to_string(), "0.666667");
        assert_eq!(commission_pct(d("1.00"), d("0.00")), None);
        // Totals keep 2 fraction digits, also a sum of nothing.
        let none = Metadata::of(Decimal::ZERO, 0, Decimal::ZERO);
        assert_eq!((none.total_gp.to_string(), none.commission_pct), ("0.00".to_string(), None));
    }
}
