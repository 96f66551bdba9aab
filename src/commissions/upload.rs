//! Carrier statements uploaded as CSV: the file's columns mapped onto the
//! contract's `statement_lines` columns by a saved per-carrier mapping
//! (headers differ from carrier to carrier), each record turned into one
//! `statement_lines` row. Values are checked afterwards by the streaming
//! door's own row rules, and the whole file lands or none of it does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::contract::Entity;
use crate::pipelines::events::EventChecker;
use crate::pipelines::stream::{Stream, StreamError};

/// Most records of one upload (a month's statement of a large carrier is
/// far below it).
pub const MAX_RECORDS: usize = 200_000;

/// Contract column → the header the carrier's file uses for it. Columns not
/// named keep their contract name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub columns: BTreeMap<String, String>,
}

/// The `statement_lines` columns a file provides (the tenant comes from the
/// credential and the carrier from the request).
pub fn mappable_columns() -> Vec<&'static str> {
    Entity::StatementLines
        .columns()
        .iter()
        .map(|c| c.name)
        .filter(|c| !matches!(*c, "tenant_id" | "carrier_id"))
        .collect()
}

/// Columns a file must have; `line_id` defaults to the record's number.
fn required(column: &str) -> bool {
    column != "line_id" && Entity::StatementLines.columns().iter().any(|c| c.name == column && c.required)
}

impl Mapping {
    /// A mapping names only mappable columns, each header once, none empty.
    pub fn check(&self) -> Result<(), String> {
        let known = mappable_columns();
        let mut seen = std::collections::BTreeSet::new();
        for (column, header) in &self.columns {
            if !known.contains(&column.as_str()) {
                return Err(format!(
                    "{column} is not a statement_lines column one can map (one of {})",
                    known.join(", ")
                ));
            }
            if header.trim().is_empty() || header.len() > 200 {
                return Err(format!("the header of {column} must be 1 to 200 characters"));
            }
            if !seen.insert(header.trim()) {
                return Err(format!("the header {header:?} is mapped twice"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the file is empty: a header row is needed")]
    Empty,
    #[error("the file lacks the column(s) {}", .0.join(", "))]
    MissingColumns(Vec<String>),
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("more than {MAX_RECORDS} records: split the file")]
    TooManyRecords,
}

impl UploadError {
    /// Stable `reason` of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Empty => "empty_file",
            UploadError::MissingColumns(_) => "missing_columns",
            UploadError::Malformed { .. } => "malformed_record",
            UploadError::TooManyRecords => "too_many_records",
        }
    }
}

/// One row of the file as a contract row (values as text, `null` for an
/// empty cell), with the file's line number.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedRow {
    pub line: u64,
    pub data: Map<String, Value>,
}

/// The rows of `text` (CSV with a header row) for `tenant` and `carrier`.
pub fn rows(text: &str, mapping: &Mapping, tenant: &str, carrier: &str) -> Result<Vec<UploadedRow>, UploadError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| malformed(1, &e))?.clone();
    if headers.is_empty() || headers.iter().all(|h| h.trim().is_empty()) {
        return Err(UploadError::Empty);
    }
    let position = |h: &str| headers.iter().position(|x| x.trim() == h.trim());
    let mut columns: Vec<(&'static str, Option<usize>)> = Vec::new();
    let mut missing = Vec::new();
    for column in mappable_columns() {
        let header = mapping.columns.get(column).map(String::as_str).unwrap_or(column);
        let at = position(header);
        if at.is_none() && (required(column) || mapping.columns.contains_key(column)) {
            missing.push(if header == column { column.to_string() } else { format!("{header} ({column})") });
        }
        columns.push((column, at));
    }
    if !missing.is_empty() {
        return Err(UploadError::MissingColumns(missing));
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2; // the header is line 1
        let record = record.map_err(|e| malformed(line, &e))?;
        if out.len() == MAX_RECORDS {
            return Err(UploadError::TooManyRecords);
        }
        let mut data = Map::new();
        data.insert("tenant_id".into(), Value::String(tenant.to_string()));
        data.insert("carrier_id".into(), Value::String(carrier.to_string()));
        for (column, at) in &columns {
            let cell = at.and_then(|a| record.get(a)).map(str::trim).filter(|v| !v.is_empty());
            let value = match (cell, *column) {
                (Some(v), _) => Value::String(v.to_string()),
                (None, "line_id") => Value::String((line - 1).to_string()),
                (None, _) => Value::Null,
            };
            data.insert(column.to_string(), value);
        }
        out.push(UploadedRow { line, data });
    }
    Ok(out)
}

fn malformed(line: u64, e: &csv::Error) -> UploadError {
    let line = e.position().map_or(line, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_string(),
        _ => "unreadable CSV record".to_string(),
    };
    UploadError::Malformed { line, reason }
}

/// Most refused records listed in a refusal.
const MAX_PROBLEMS: usize = 100;

/// A statement file checked in full: the events that land its rows (one
/// `statement_line.upserted` each), how many records it had, the statement
/// ids it names.
#[derive(Debug)]
pub struct StatementEvents {
    pub events: Vec<String>,
    pub lines: usize,
    pub statements: Vec<String>,
}

/// Why none of a file's records may land: a stable `reason`
/// (`UploadError::code`, or `invalid_records`), a message, and each
/// refused record's line, code and message (at most 100).
#[derive(Debug)]
pub struct Refused {
    pub reason: &'static str,
    pub message: String,
    pub problems: Vec<Value>,
}

/// A statement file's text: it must be UTF-8 (both upload doors check this
/// first, before the carrier).
pub fn utf8(bytes: Vec<u8>) -> Result<String, Refused> {
    String::from_utf8(bytes).map_err(|_| Refused {
        reason: "not_utf8",
        message: "the file must be UTF-8 CSV".into(),
        problems: Vec::new(),
    })
}

/// The events of a statement file for `tenant` and `carrier`, every record
/// checked with the streaming door's row rules first: all of them, or why
/// not one may land. Both upload doors (CSV body, GraphQL multipart) use it.
pub fn statement_events(
    text: &str,
    mapping: &Mapping,
    tenant: &str,
    carrier: &str,
) -> Result<StatementEvents, Refused> {
    let rows = rows(text, mapping, tenant, carrier).map_err(|e| Refused {
        reason: e.code(),
        message: e.to_string(),
        problems: Vec::new(),
    })?;
    let base = super::store::new_id("cip-statement-");
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let checker = EventChecker::default();
    let mut problems = Vec::new();
    let mut keys: std::collections::HashMap<(String, String), u64> = std::collections::HashMap::new();
    let mut events = Vec::with_capacity(rows.len());
    let mut statements = std::collections::BTreeSet::new();
    for r in &rows {
        let text = |c: &str| r.data.get(c).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let key = (text("statement_id"), text("line_id"));
        if let Some(first) = keys.insert(key.clone(), r.line) {
            let message = format!("statement {} line {} again (first on line {first})", key.0, key.1);
            problems.push(json!({"line": r.line, "code": "duplicate_key_conflict", "message": message}));
            continue;
        }
        statements.insert(key.0);
        let event = json!({"event_id": format!("{base}-{}", r.line), "tenant_id": tenant,
                           "type": "statement_line.upserted", "occurred_at": at, "data": r.data})
        .to_string();
        match checker.check(&event, tenant) {
            Ok(_) => events.push(event),
            Err(e) => {
                problems.push(json!({"line": r.line, "code": e.reject.code.as_str(), "message": e.reject.message}))
            }
        }
    }
    if let Some(first) = problems.first() {
        let message = format!(
            "{} of {} records break the data contract, so none landed; line {}: {}",
            problems.len(),
            rows.len(),
            first["line"],
            first["message"].as_str().unwrap_or_default()
        );
        problems.truncate(MAX_PROBLEMS);
        return Err(Refused { reason: "invalid_records", message, problems });
    }
    Ok(StatementEvents { events, lines: rows.len(), statements: statements.into_iter().collect() })
}

/// What an upload landed: its records, statements, whether the carrier's
/// saved mapping or the contract's column names read it, the log sequence
/// of its events and whether a lake version holds them yet (it waits up to
/// 10 s for one).
#[derive(Debug, Serialize)]
pub struct Landed {
    pub lines: usize,
    pub statements: Vec<String>,
    pub mapping: &'static str,
    pub sequence: Option<u64>,
    pub committed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LandError {
    /// The log could not be written: nothing was acknowledged.
    #[error(transparent)]
    Log(#[from] StreamError),
    /// The stream refused a row the check had passed (a defect).
    #[error("statement rows refused by the stream after the check: {0}")]
    Refused(String),
}

/// Log a checked file's events durably and wait (bounded) for their commit.
pub async fn land(
    stream: &std::sync::Arc<Stream>,
    tenant: &str,
    checked: StatementEvents,
    mapped: bool,
) -> Result<Landed, LandError> {
    let accepted = stream.accept(tenant, &checked.events.join("\n")).await?;
    if accepted.rejected > 0 {
        let first = accepted.results.iter().find(|r| r.status == "rejected");
        return Err(LandError::Refused(format!("{first:?}")));
    }
    let committed = match accepted.sequence {
        Some(seq) => stream.committed_within(seq).await,
        None => true,
    };
    Ok(Landed {
        lines: checked.lines,
        statements: checked.statements,
        mapping: if mapped { "saved" } else { "contract" },
        sequence: accepted.sequence,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> Mapping {
        Mapping { columns: pairs.iter().map(|(c, h)| (c.to_string(), h.to_string())).collect() }
    }

    #[test]
    fn a_carriers_headers_are_mapped_onto_the_contract_columns() {
        let m = mapping(&[
            ("statement_id", "Stmt #"),
            ("statement_date", "Stmt Date"),
            ("period", "Month"),
            ("policy_number", "Policy No"),
            ("commission_amount", "Comm Amt"),
        ]);
        assert_eq!(m.check(), Ok(()));
        let text = "Policy No,Comm Amt,Stmt #,Stmt Date,Month,Insured\n\
                    hm 101,120.00,S-1,2024-02-12,2024-01,Ann\n\
                    \"HM-102\", 96.00 ,S-1,2024-02-12,2024-01,\n";
        let rows = rows(text, &m, "t1", "K1").unwrap();
        assert_eq!(rows.len(), 2);
        let r = &rows[1];
        assert_eq!(r.line, 3);
        assert_eq!(r.data["policy_number"], "HM-102");
        assert_eq!(r.data["commission_amount"], "96.00");
        assert_eq!(r.data["carrier_id"], "K1");
        assert_eq!(r.data["tenant_id"], "t1");
        // No line id in the file: the record's number; no kind column: null.
        assert_eq!(r.data["line_id"], "2");
        assert_eq!(r.data["kind"], Value::Null);
        // "Insured" is not mapped (insured_name keeps its name): ignored.
        assert_eq!(r.data["insured_name"], Value::Null);
    }

    #[test]
    fn missing_columns_bad_records_and_bad_mappings_are_named() {
        let none = Mapping::default();
        let err = rows("statement_id,period\nS,2024-01\n", &none, "t1", "K1").unwrap_err();
        assert_eq!(
            err,
            UploadError::MissingColumns(vec![
                "statement_date".into(),
                "policy_number".into(),
                "commission_amount".into()
            ])
        );
        assert_eq!(err.code(), "missing_columns");
        let m = mapping(&[("commission_amount", "Comm")]);
        let err = rows("statement_id,statement_date,period,policy_number\n", &m, "t1", "K1").unwrap_err();
        assert_eq!(err.to_string(), "the file lacks the column(s) Comm (commission_amount)");
        let text = "statement_id,statement_date,period,policy_number,commission_amount\nS,2024-02-01,2024-01,N1,1.00\nS,2024-02-01\n";
        assert_eq!(
            rows(text, &none, "t1", "K1").unwrap_err(),
            UploadError::Malformed { line: 3, reason: "2 fields where the header has 5".into() }
        );
        assert_eq!(rows("", &none, "t1", "K1").unwrap_err(), UploadError::Empty);
        assert!(mapping(&[("tenant_id", "T")]).check().unwrap_err().starts_with("tenant_id is not"));
        assert_eq!(mapping(&[("period", "X"), ("kind", "X")]).check().unwrap_err(), "the header \"X\" is mapped twice");
    }
}
