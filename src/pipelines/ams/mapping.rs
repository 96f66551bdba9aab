//! A declarative mapping from one source system's payload to contract rows
//! (`src/pipelines/mappings/<source>.toml`): the file's format, its checks
//! against the contract when it is loaded, and the mapping of a payload to
//! the streaming events its rows become. The file format is described in
//! `docs/ams-adapters.md`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_128;

use super::convert;
use super::path::{FieldPath, Found, canonical, object};
use crate::contract::row::Reject;
use crate::contract::values::parse_cell;
use crate::contract::{Entity, Kind, MONEY_SCALE, RATE_SCALE, RejectCode};

// ---- The file as written -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    /// The `{source}` of `POST /ingest/ams/{source}`.
    source: String,
    #[allow(dead_code)]
    description: Option<String>,
    /// Date patterns (chrono `strftime`) for every date column, unless a
    /// column names its own.
    #[serde(default)]
    date_formats: Vec<String>,
    event: EventSpec,
    /// Named value maps (`Active = "active"`), matched ignoring case.
    #[serde(default)]
    maps: BTreeMap<String, BTreeMap<String, String>>,
    targets: Vec<TargetSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    /// Source fields whose values, joined, identify one version of the
    /// record (its id and its modification time); without it, a hash of
    /// the payload.
    id: Option<Vec<String>>,
    /// The source field with the time the record changed.
    occurred_at: String,
    /// Patterns for `occurred_at` besides RFC 3339 (read as UTC).
    #[serde(default)]
    occurred_at_formats: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    /// The contract entity of the rows (`policies`, `commissions`, …).
    entity: String,
    /// A source array: one row per element, its paths relative to the
    /// element (`$.` for the payload's root).
    each: Option<String>,
    /// Only when this holds (e.g. a commission block is present).
    when: Option<ConditionSpec>,
    columns: BTreeMap<String, ColumnSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    path: String,
    /// Holds only for these values (ignoring case); any value when empty.
    #[serde(default)]
    is: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ColumnSpec {
    /// `column = "Source.Path"`.
    Path(String),
    Full(Box<ColumnTable>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnTable {
    path: Option<String>,
    /// A constant (`source_system = { value = "applied_epic" }`).
    value: Option<String>,
    /// Money: the first column's amount minus the second's.
    difference: Option<[String; 2]>,
    /// Used when the path finds nothing.
    default: Option<String>,
    /// A value map of `[maps]`.
    map: Option<String>,
    /// Date patterns of this column.
    date_formats: Option<Vec<String>>,
    /// A rate written in percent (`12` = 0.12).
    #[serde(default)]
    percent: bool,
    /// Put before the value (ids that would clash with other sources').
    prefix: Option<String>,
    /// Only set when this holds (e.g. a cancellation date only for a cancelled status).
    when: Option<ConditionSpec>,
}

// ---- Checked and compiled -------------------------------------------------

/// Why a mapping file cannot be used: names the file's source and the defect.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("mapping {file}: {source}")]
    Toml {
        file: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("mapping {file}: {why}")]
    Invalid { file: String, why: String },
}

/// One source's compiled mapping.
#[derive(Debug)]
pub struct Adapter {
    source: String,
    event_id: Option<Vec<FieldPath>>,
    occurred_at: FieldPath,
    occurred_at_formats: Vec<String>,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Target {
    entity: Entity,
    each: Option<FieldPath>,
    when: Option<Condition>,
    columns: Vec<Column>,
}

#[derive(Debug)]
struct Condition {
    path: FieldPath,
    is: Vec<String>,
}

#[derive(Debug)]
struct Column {
    name: &'static str,
    kind: Kind,
    required: bool,
    from: ColumnSource,
    default: Option<String>,
    map: Option<HashMap<String, String>>,
    date_formats: Vec<String>,
    percent: bool,
    prefix: Option<String>,
    when: Option<Condition>,
}

#[derive(Debug)]
enum ColumnSource {
    Path(FieldPath),
    Value(String),
    /// Positions of the two money columns, in the target's columns.
    Difference(usize, usize),
}

impl Adapter {
    /// Parse and check the mapping `text` of source `name` against the
    /// contract: every target column exists in its entity, every required
    /// column is mapped or given a value, constants and map results are
    /// values the column accepts.
    pub fn load(name: &str, text: &str) -> Result<Self, MappingError> {
        let file: MappingFile =
            toml::from_str(text).map_err(|source| MappingError::Toml { file: name.to_string(), source })?;
        let invalid = |why: String| MappingError::Invalid { file: name.to_string(), why };
        if file.source != name {
            return Err(invalid(format!("source is '{}', registered as '{name}'", file.source)));
        }
        let path = |p: &str| FieldPath::parse(p).map_err(invalid);
        let formats = |f: &[String], what: &str| -> Result<Vec<String>, MappingError> {
            for pattern in f {
                check_pattern(pattern).map_err(|why| invalid(format!("{what}: {why}")))?;
            }
            Ok(f.to_vec())
        };
        let date_formats = formats(&file.date_formats, "date_formats")?;
        let event_id = match &file.event.id {
            Some(paths) if paths.is_empty() => return Err(invalid("event.id names no field".into())),
            Some(paths) => Some(paths.iter().map(|p| path(p)).collect::<Result<Vec<_>, _>>()?),
            None => None,
        };
        let condition = |c: &Option<ConditionSpec>| -> Result<Option<Condition>, MappingError> {
            c.as_ref().map(|c| Ok(Condition { path: path(&c.path)?, is: c.is.clone() })).transpose()
        };
        if file.targets.is_empty() {
            return Err(invalid("no targets".into()));
        }
        let mut targets = Vec::new();
        for t in &file.targets {
            let entity =
                Entity::from_name(&t.entity).ok_or_else(|| invalid(format!("no contract entity '{}'", t.entity)))?;
            let what = |col: &str| format!("{}.{col}", entity.name());
            let mut columns: Vec<Column> = Vec::new();
            for (col_name, spec) in &t.columns {
                let col = entity
                    .columns()
                    .iter()
                    .find(|c| c.name == col_name)
                    .ok_or_else(|| invalid(format!("{} is not a column of the contract", what(col_name))))?;
                if col.kind == Kind::TenantId {
                    return Err(invalid(format!("{}: the tenant comes from the credential", what(col_name))));
                }
                let table = match spec {
                    ColumnSpec::Path(p) => ColumnTable { path: Some(p.clone()), ..ColumnTable::default() },
                    ColumnSpec::Full(t) => (**t).clone(),
                };
                let sources = [table.path.is_some(), table.value.is_some(), table.difference.is_some()];
                if sources.iter().filter(|s| **s).count() != 1 {
                    return Err(invalid(format!("{}: give exactly one of path, value, difference", what(col_name))));
                }
                let map = match &table.map {
                    Some(m) => {
                        let entries = file
                            .maps
                            .get(m)
                            .ok_or_else(|| invalid(format!("{}: no map '{m}' in [maps]", what(col_name))))?;
                        if let Kind::Enum(_) = col.kind {
                            for to in entries.values() {
                                parse_cell(col.kind, to.trim())
                                    .map_err(|(_, why)| invalid(format!("map {m} for {}: {why}", what(col_name))))?;
                            }
                        }
                        Some(entries.iter().map(|(k, v)| (k.trim().to_ascii_lowercase(), v.clone())).collect())
                    }
                    None => None,
                };
                if table.percent && col.kind != Kind::Rate {
                    return Err(invalid(format!("{}: percent is for rate columns", what(col_name))));
                }
                if table.date_formats.is_some() && col.kind != Kind::Date {
                    return Err(invalid(format!("{}: date_formats is for date columns", what(col_name))));
                }
                if table.prefix.is_some() && !matches!(col.kind, Kind::Text | Kind::OpenEnum) {
                    return Err(invalid(format!("{}: prefix is for text columns", what(col_name))));
                }
                let from = match (&table.path, &table.value) {
                    (Some(p), _) => ColumnSource::Path(path(p)?),
                    (None, Some(v)) => ColumnSource::Value(v.clone()),
                    // Resolved below, once every column is known.
                    (None, None) => ColumnSource::Difference(usize::MAX, usize::MAX),
                };
                let date_formats = match &table.date_formats {
                    Some(f) => formats(f, &what(col_name))?,
                    None => date_formats.clone(),
                };
                if col.kind == Kind::Date && date_formats.is_empty() {
                    return Err(invalid(format!("{}: no date_formats", what(col_name))));
                }
                let column = Column {
                    name: col.name,
                    kind: col.kind,
                    required: col.required,
                    from,
                    default: table.default.clone(),
                    map,
                    date_formats,
                    percent: table.percent,
                    prefix: table.prefix.clone(),
                    when: condition(&table.when)?,
                };
                // Constants and defaults are read like source values: check them now.
                for constant in table.value.iter().chain(table.default.iter()) {
                    column.convert(constant).map_err(|(_, expected)| {
                        invalid(format!("{}: '{constant}' is not {expected}", what(col_name)))
                    })?;
                    if let Kind::Enum(_) = col.kind {
                        parse_cell(col.kind, constant.trim())
                            .map_err(|(_, why)| invalid(format!("{}: {why}", what(col_name))))?;
                    }
                }
                columns.push(column);
            }
            // Differences refer to two money columns taken from the payload.
            for (i, spec) in t.columns.values().enumerate() {
                let ColumnSpec::Full(table) = spec else { continue };
                let Some([a, b]) = &table.difference else { continue };
                let name = columns[i].name;
                let position = |n: &str| {
                    columns
                        .iter()
                        .position(|c| {
                            c.name == n && c.kind == Kind::Money && !matches!(c.from, ColumnSource::Difference(..))
                        })
                        .ok_or_else(|| {
                            invalid(format!("{}: difference of '{n}', not a mapped money column", what(name)))
                        })
                };
                if columns[i].kind != Kind::Money {
                    return Err(invalid(format!("{}: difference is for money columns", what(name))));
                }
                columns[i].from = ColumnSource::Difference(position(a)?, position(b)?);
            }
            for c in entity.columns().iter().filter(|c| c.required && c.kind != Kind::TenantId) {
                if !columns.iter().any(|m| m.name == c.name) {
                    return Err(invalid(format!("required column {} is not mapped", what(c.name))));
                }
            }
            targets.push(Target {
                entity,
                each: t.each.as_deref().map(path).transpose()?,
                when: condition(&t.when)?,
                columns,
            });
        }
        Ok(Adapter {
            source: file.source,
            event_id,
            occurred_at: path(&file.event.occurred_at)?,
            occurred_at_formats: formats(&file.event.occurred_at_formats, "event.occurred_at_formats")?,
            targets,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A chrono pattern that parses (no unknown `%` specifier).
fn check_pattern(pattern: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return Err(format!("'{pattern}' is not a valid date pattern"));
    }
    Ok(())
}

// ---- Mapping a payload ---------------------------------------------------

/// One row of a payload as a streaming event, ready for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedEvent {
    pub entity: Entity,
    pub event_id: String,
    /// The event as one JSON line (the format of `POST /ingest/events`).
    pub line: String,
}

impl Condition {
    fn holds(&self, root: &RawValue, here: &RawValue) -> bool {
        match self.path.find(root, here) {
            Found::Scalar(v) => self.is.is_empty() || self.is.iter().any(|w| w.eq_ignore_ascii_case(v.trim())),
            Found::Missing | Found::Compound => false,
        }
    }
}

fn reject(code: RejectCode, message: String) -> Reject {
    Reject::new(code, message)
}

impl Adapter {
    /// The events of one payload (one JSON object): a row per target (per
    /// element for `each` targets) whose condition holds. A payload that
    /// the mapping cannot read is refused as a whole, naming the source
    /// field: no row of it is logged.
    pub fn map(&self, payload: &str) -> Result<Vec<MappedEvent>, Reject> {
        let malformed = |why: String| reject(RejectCode::MalformedRecord, why);
        let root: &RawValue =
            serde_json::from_str(payload.trim()).map_err(|e| malformed(format!("the payload is not JSON: {e}")))?;
        let top = object(root).ok_or_else(|| malformed("the payload is not a JSON object".into()))?;
        // A relay serving several tenants may say whose payload it is; the
        // event checker refuses one that is not the credential's.
        let tenant = match top.get("tenant_id").map(|v| serde_json::from_str::<Option<String>>(v.get())) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(t))) => Some(t),
            Some(Err(_)) => return Err(malformed("tenant_id must be a string".into())),
        };
        let mut payload_hash: Option<u128> = None;
        let mut events = Vec::new();
        for target in &self.targets {
            if target.when.as_ref().is_some_and(|c| !c.holds(root, root)) {
                continue;
            }
            let rows: Vec<(Option<usize>, &RawValue)> = match &target.each {
                None => vec![(None, root)],
                Some(each) => each
                    .find_array(root, root)
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (Some(i), r))
                    .collect(),
            };
            for (index, here) in rows {
                let data = self.row(target, root, here, tenant.as_deref())?;
                let noun = target.entity.event_noun();
                let event_id = match &self.event_id {
                    Some(paths) => {
                        let mut parts = Vec::with_capacity(paths.len());
                        for p in paths {
                            match p.find(root, here) {
                                Found::Scalar(v) => parts.push(v.trim().to_string()),
                                _ => return Err(missing(&p.text, "the event id")),
                            }
                        }
                        format!("{}:{noun}:{}", self.source, parts.join(":"))
                    }
                    None => {
                        let h = *payload_hash.get_or_insert_with(|| {
                            let mut text = String::new();
                            canonical(root, &mut text);
                            xxh3_128(text.as_bytes())
                        });
                        match index {
                            Some(i) => format!("{}:{noun}:{h:032x}:{i}", self.source),
                            None => format!("{}:{noun}:{h:032x}", self.source),
                        }
                    }
                };
                let occurred_at = match self.occurred_at.find(root, here) {
                    Found::Scalar(v) => convert::timestamp(&v, &self.occurred_at_formats).ok_or_else(|| {
                        let why = format!("{}: '{v}' is not a timestamp (occurred_at)", self.occurred_at.text);
                        reject(RejectCode::InvalidDate, why)
                    })?,
                    _ => return Err(missing(&self.occurred_at.text, "occurred_at")),
                };
                let event = serde_json::json!({
                    "event_id": event_id,
                    "type": format!("{noun}.upserted"),
                    "occurred_at": occurred_at,
                    "data": data,
                });
                events.push(MappedEvent {
                    entity: target.entity,
                    event_id,
                    line: serde_json::to_string(&event).expect("events serialise"),
                });
            }
        }
        if events.is_empty() {
            let what: Vec<String> = self
                .targets
                .iter()
                .map(|t| match &t.each {
                    Some(each) => format!("{} (one per {})", t.entity.name(), each.text),
                    None => t.entity.name().to_string(),
                })
                .collect();
            let why = format!("the payload holds no rows to map: expected {}", what.join(", "));
            return Err(reject(RejectCode::MissingValue, why));
        }
        Ok(events)
    }

    /// One target row as the contract's JSON object (values as text).
    fn row(
        &self,
        target: &Target,
        root: &RawValue,
        here: &RawValue,
        tenant: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Reject> {
        let entity = target.entity.name();
        let mut values: Vec<Option<String>> = Vec::with_capacity(target.columns.len());
        let mut amounts: Vec<Option<rust_decimal::Decimal>> = Vec::with_capacity(target.columns.len());
        for col in &target.columns {
            let at = format!("{entity}.{}", col.name);
            let raw: Option<(String, String)> = match &col.from {
                _ if col.when.as_ref().is_some_and(|c| !c.holds(root, here)) => None,
                ColumnSource::Value(v) => Some((v.clone(), "a constant".to_string())),
                ColumnSource::Difference(..) => None,
                ColumnSource::Path(p) => match p.find(root, here) {
                    Found::Scalar(v) => Some((v.trim().to_string(), p.text.clone())),
                    Found::Missing => col.default.clone().map(|d| (d, p.text.clone())),
                    Found::Compound => {
                        let why = format!("{}: expected one value, found an object or array ({at})", p.text);
                        return Err(reject(RejectCode::MalformedRecord, why));
                    }
                },
            };
            let Some((raw, field)) = raw else {
                if col.required && !matches!(col.from, ColumnSource::Difference(..)) {
                    let field = match &col.from {
                        ColumnSource::Path(p) => p.text.clone(),
                        _ => col.name.to_string(),
                    };
                    return Err(missing(&field, &at));
                }
                values.push(None);
                amounts.push(None);
                continue;
            };
            let mapped = match &col.map {
                Some(m) => m.get(&raw.to_ascii_lowercase()).cloned().unwrap_or(raw),
                None => raw,
            };
            let (text, amount) = col
                .convert(&mapped)
                .map_err(|(code, what)| reject(code, format!("{field}: '{mapped}' is not {what} ({at})")))?;
            values.push(Some(text));
            amounts.push(amount);
        }
        for (i, col) in target.columns.iter().enumerate() {
            if let ColumnSource::Difference(a, b) = col.from {
                match (amounts[a], amounts[b]) {
                    (Some(x), Some(y)) => values[i] = Some(convert::plain(x - y, MONEY_SCALE as u32)),
                    _ if col.required => {
                        let why =
                            format!("{} needs {} and {}", col.name, target.columns[a].name, target.columns[b].name);
                        return Err(reject(RejectCode::MissingValue, format!("{why} ({entity}.{})", col.name)));
                    }
                    _ => {}
                }
            }
        }
        let mut row = serde_json::Map::new();
        if let Some(t) = tenant {
            row.insert("tenant_id".into(), t.into());
        }
        for (col, v) in target.columns.iter().zip(values) {
            if let Some(v) = v {
                row.insert(col.name.into(), v.into());
            }
        }
        Ok(row)
    }
}

impl Column {
    /// A source value (after its value map) as the contract's text, and
    /// the exact amount of a money column; or the reject code and what the
    /// value should have been.
    fn convert(&self, value: &str) -> Result<(String, Option<rust_decimal::Decimal>), (RejectCode, String)> {
        match self.kind {
            Kind::Date => {
                let d = convert::date(value, &self.date_formats).ok_or_else(|| {
                    (RejectCode::InvalidDate, format!("a date in the form {}", self.date_formats.join(" or ")))
                })?;
                Ok((d.format("%Y-%m-%d").to_string(), None))
            }
            Kind::Money => {
                let d = convert::money(value).ok_or((RejectCode::InvalidMoney, "an amount".to_string()))?;
                Ok((convert::plain(d, MONEY_SCALE as u32), Some(d)))
            }
            Kind::Rate => {
                let d = convert::rate(value, self.percent).ok_or((RejectCode::InvalidRate, "a rate".to_string()))?;
                Ok((convert::plain(d, RATE_SCALE as u32), None))
            }
            // A value of a closed set that no map turned into one goes on
            // to the contract's check, which names it with its own code.
            Kind::Enum(_) => Ok((value.trim().to_string(), None)),
            _ => Ok((format!("{}{value}", self.prefix.as_deref().unwrap_or("")), None)),
        }
    }
}

fn missing(field: &str, what: &str) -> Reject {
    reject(RejectCode::MissingValue, format!("missing required field {field} ({what})"))
}
